"""The ``growable`` case of ``python -m arena bench``: an array built from chunks of unknown
count, with a :class:`~arena.Growable` against what a user would write instead.

Builds (``grow_bytes`` of float64 from ``grow_chunk``-byte chunks, each chunk a fresh array
as a reader or a sensor hands it over):

* ``growable``: ``g.extend(chunk)``, the array is ``g.array``;
* ``concatenate``: a list of the chunks, then ``np.concatenate`` (twice the data at the end);
* ``resize``: a doubling buffer, ``np.resize`` when full (copies at each doubling);
* ``append``: ``arr = np.append(arr, chunk)`` per chunk, quadratic, so on ``grow_append_bytes``
  (the same chunks, fewer of them), against a Growable of that size.

Each build runs in a fresh process, so that neither its time nor its peak RSS depends on
what this process's heap holds: the child imports everything and warms the code paths on a
few chunks, then resets its peak RSS (``/proc/self/clear_refs``), times the build and
reports the peak RSS above its resident size before the build. Builds of the different
kinds alternate, repeat after repeat; the time is the best of the repeats and the peak the
lowest. ``append`` one float per call against ``list.append`` is timed in this process,
a fresh Growable and list for each repeat.
"""
from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
import timeit

import numpy as np

import arena

from .._format import format_bytes
from .bench import Result

KiB, MiB = 1 << 10, 1 << 20
KINDS = ("growable", "concatenate", "resize", "append")


def chunks(total: int, chunk: int):
    """``total`` bytes of float64 as fresh ``chunk``-byte arrays (copies of a small source,
    so that making them costs the same for every kind of build)."""
    n = chunk // 8
    source = np.arange(16 * n, dtype=np.float64)
    for k in range(total // chunk):
        start = (k % 16) * n
        yield source[start:start + n].copy()


def build(kind: str, total: int, chunk: int) -> np.ndarray:
    """The array of ``total`` bytes, built as ``kind`` does it."""
    parts = chunks(total, chunk)
    if kind == "growable":
        g = arena.Growable(np.float64)
        for part in parts:
            g.extend(part)
        return g.array
    if kind == "concatenate":
        return np.concatenate(list(parts))
    if kind == "resize":
        buf, n = np.empty(chunk // 8), 0
        for part in parts:
            if n + len(part) > len(buf):
                buf = np.resize(buf, 2 * len(buf))
            buf[n:n + len(part)] = part
            n += len(part)
        return buf[:n]
    if kind == "append":
        arr = np.empty(0)
        for part in parts:
            arr = np.append(arr, part)
        return arr
    raise ValueError(f"unknown build {kind!r}")


def _status_bytes(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * KiB
    raise OSError(f"no {key} in /proc/self/status")


def _warm_memory(nbytes: int) -> None:
    """Touch and give back ``nbytes``, on huge pages where the kernel offers them. On a
    virtual machine the host faults the first touch of guest memory too, costing far more
    than the guest's own fault; the build then gets pages the host already backs, as a
    long-running machine's processes do, whichever kind of build runs first."""
    flags = arena.Flags.TRANSPARENT_HUGE_PAGES if arena.system_info()["thp_mode"] in (
        "always", "madvise") else arena.Flags(0)
    with arena.ArenaOptions(nbytes).with_flags(flags).reserve() as a:
        x = a.empty(nbytes, np.uint8)
        x[::4096] = 1
        del x


def child(kind: str, total: int, chunk: int) -> dict:
    """One build in this (fresh) process: seconds, peak RSS above the resident size before
    it, and a checksum that every kind must agree on."""
    build(kind, 4 * chunk, chunk)  # first calls, lazy imports, the allocator's first pages
    _warm_memory(3 * total)
    gc.collect()
    before = _status_bytes("VmRSS")
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        reset = True
    except OSError:
        reset = False
    start = time.perf_counter()
    result = build(kind, total, chunk)
    seconds = time.perf_counter() - start
    peak = _status_bytes("VmHWM") - before
    return {"kind": kind, "seconds": seconds, "peak": peak, "peak_reset": reset,
            "nbytes": int(result.nbytes), "checksum": float(result[::509].sum())}


def run_child(kind: str, total: int, chunk: int) -> dict:
    """:func:`child` in a fresh interpreter that imports this same ``arena``."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(arena.__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in [env.get("PYTHONPATH")] if p])
    code = ("import json, sys; from arena.tools.bench_growable import child; "
            "print(json.dumps(child(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))")
    out = subprocess.run([sys.executable, "-c", code, kind, str(total), str(chunk)],
                         capture_output=True, text=True, env=env, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"the {kind} build failed in its child process:\n{out.stderr}")
    return json.loads(out.stdout.splitlines()[-1])


def builds(plan, progress) -> dict:
    """Best time and lowest peak of each build, repeats interleaved across the kinds."""
    jobs = [(kind, plan.grow_bytes) for kind in KINDS if kind != "append"]
    jobs += [("growable", plan.grow_append_bytes), ("append", plan.grow_append_bytes)]
    best: dict = {}
    for r in range(plan.grow_repeat):
        for kind, total in jobs:
            got = run_child(kind, total, plan.grow_chunk)
            key = (kind, total)
            if key in best:
                if best[key]["checksum"] != got["checksum"]:
                    raise RuntimeError(f"the {kind} build gave another result")
                got["seconds"] = min(got["seconds"], best[key]["seconds"])
                got["peak"] = min(got["peak"], best[key]["peak"])
            best[key] = got
        progress.tick(r + 1, plan.grow_repeat)
    for total in {t for _, t in jobs}:
        sums = {b["checksum"] for (_, t), b in best.items() if t == total}
        if len(sums) != 1:
            raise RuntimeError(f"the builds of {total} bytes disagree: {sums}")
    return best


def append_times(plan, progress) -> tuple[float, float]:
    """Seconds per ``append(1.0)``: a Growable, a list; fresh ones for every repeat."""
    timers = [timeit.Timer("append(1.0)", setup="append = make().append",
                           globals={"make": lambda: arena.Growable(np.float64)}),
              timeit.Timer("append(1.0)", setup="append = [].append")]
    for t in timers:
        t.timeit(1000)
    best = [float("inf")] * 2
    for r in range(plan.append_repeat):
        for i, t in enumerate(timers):
            best[i] = min(best[i], t.timeit(plan.append_number) / plan.append_number)
        progress.tick(r + 1, plan.append_repeat)
    return best[0], best[1]


def case_growable(plan, progress) -> list[Result]:
    """The rows of the ``growable`` case."""
    got = builds(plan, progress)
    g_time, l_time = append_times(plan, progress)
    big, small, chunk = plan.grow_bytes, plan.grow_append_bytes, plan.grow_chunk
    b = lambda n: format_bytes(n, exact=True)  # noqa: E731
    grow, concat, resize = (got[(k, big)] for k in ("growable", "concatenate", "resize"))
    grow_small, append = got[("growable", small)], got[("append", small)]
    what = f"{b(big)} from {b(chunk)} chunks"
    label = f"{what}, g.extend"
    fresh = ("each build in a fresh process, best of "
             f"{plan.grow_repeat} interleaved; chunks are fresh arrays")
    reset = all(v["peak_reset"] for v in got.values())
    rss_how = ("VmHWM reset before the build, minus the RSS before it" if reset else
               "VmHWM minus the RSS before the build (clear_refs unavailable: the peak "
               "includes the warm-up's)")
    extra = {"builds": {f"{k} {b(t)}": v for (k, t), v in got.items()}}
    return [
        Result("growable", label, grow["seconds"],
               f"{what}, list + np.concatenate", concat["seconds"], 0.5, plan.grow_repeat,
               fresh, per="build", extra=extra),
        Result("growable/rss", label, grow["peak"],
               f"{what}, list + np.concatenate", concat["peak"], 0.55, plan.grow_repeat,
               f"peak RSS: {rss_how}; np.resize doubling peaked at "
               f"{format_bytes(resize['peak'])}", per="peak RSS", unit="B"),
        Result("growable/resize", label, grow["seconds"],
               f"{what}, doubling buffer + np.resize", resize["seconds"], 1.0,
               plan.grow_repeat, "target: faster than the peer", per="build"),
        Result("growable/np.append", f"{b(small)} from {b(chunk)} chunks, g.extend",
               grow_small["seconds"], f"{b(small)} from {b(chunk)} chunks, np.append per chunk",
               append["seconds"], 1.0, plan.grow_repeat,
               f"target: faster than the peer; np.append copies everything each call, so on "
               f"{b(small)}: {b(big)} would copy {b(big // chunk * big // 2)}", per="build"),
        Result("growable/append", "g.append(1.0)", g_time, "list.append(1.0)",
               l_time, 3.0, plan.append_repeat,
               f"{plan.append_number:,} calls a repeat into a fresh Growable(float64) / "
               "list", per="call"),
    ]
