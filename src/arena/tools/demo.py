"""``python -m arena demo``: a Gray-Scott reaction-diffusion simulation, run with plain NumPy
temporaries and with arena-backed temporaries, timed and checked against each other.

The model: two chemical concentrations ``U`` and ``V`` on an ``n x n`` grid (float64), with
the border cells held fixed; each step is one explicit Euler update ::

    U += dt * (Du * lap(U) - U*V*V + F * (1 - U))
    V += dt * (Dv * lap(V) + U*V*V - (F + k) * V)

with the 5-point Laplacian. At the default size every temporary is ~30 MiB, so plain NumPy
gets fresh memory from the OS (mmap, page faults, zeroing, munmap) for each of them, every
step; the arena faults its pages in once and then hands the same, already mapped memory out
again after each step's scope ends.

Variants:

``numpy``            :func:`step_numpy`, plain expressions (NumPy makes the temporaries).
``arena``            :func:`step_arena`, the same arithmetic in the same order, with the
                     temporaries from ``Arena.empty_like`` and every ufunc writing via ``out=``;
                     one ``with a.scope():`` per step.
``numpy_allocator``  (added automatically once ``Arena.numpy_allocator`` exists)
                     :func:`step_numpy` unchanged inside ``with a.numpy_allocator():``.

Each variant runs in a fresh process (multiprocessing "spawn"), so ``ru_maxrss`` (a process-wide
high-water mark that never goes down) and the page-fault counters belong to that variant alone.
One catch: at ``exec`` Linux carries the high-water RSS of the image being replaced (the parent's,
when the child was made with vfork) into the new program's ``ru_maxrss``. So the parent keeps
its own footprint small while children run: each child saves its final fields to a temporary
directory and the parent compares them only after the last child has finished. ``VmHWM`` from
``/proc/self/status`` (per address space, so immune to this) is recorded as a cross-check.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import time

import numpy as np

from .. import Arena, ArenaOptions, Flags, PageSize, _system
from .._format import format_bytes

DEFAULT_SIZE = 2000
DEFAULT_STEPS = 80
MIN_SIZE = 8

# Gray-Scott parameters ("coral" pattern); grid spacing 1. Explicit Euler is stable for
# Du * dt <= 0.25.
DU, DV, FEED, KILL, DT = 0.16, 0.08, 0.060, 0.062, 1.0
FEED_KILL = FEED + KILL

HUGE_PAGE_CHOICES = ("none", "thp", "hugetlb")
HUGETLB_SIZE = int(PageSize.SIZE_2M)
TEMPORARIES_PER_STEP = 4          # what step_arena takes from the arena in one step
DTYPE = np.float64


# -- the model ----------------------------------------------------------------------------------

def initial_fields(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``U = 1, V = 0`` with square seeds of ``V`` at random places, and a little noise.

    Deterministic for a given ``(n, seed)``: every variant starts from identical fields.
    """
    rng = np.random.default_rng(seed)
    U = np.ones((n, n), DTYPE)
    V = np.zeros((n, n), DTYPE)
    r = max(2, n // 100)                       # half-width of a seed square
    count = max(1, (n // 50) ** 2 // 4)
    for y, x in rng.integers(r + 1, n - r - 1, size=(count, 2)):
        U[y - r:y + r, x - r:x + r] = 0.50
        V[y - r:y + r, x - r:x + r] = 0.25
    # Noise a block of rows at a time, so that making the fields leaves no large temporaries
    # in the process's peak RSS (the high-water mark before the step loop starts).
    for r0 in range(1, n - 1, 256):
        r1 = min(r0 + 256, n - 1)
        U[r0:r1, 1:-1] -= 0.02 * rng.random((r1 - r0, n - 2))
        V[r0:r1, 1:-1] += 0.02 * rng.random((r1 - r0, n - 2))
    return U, V


def step_numpy(U: np.ndarray, V: np.ndarray) -> None:
    """One step in plain NumPy: every expression makes fresh temporaries."""
    u = U[1:-1, 1:-1]
    v = V[1:-1, 1:-1]
    lu = U[:-2, 1:-1] + U[2:, 1:-1] + U[1:-1, :-2] + U[1:-1, 2:] - 4.0 * u
    lv = V[:-2, 1:-1] + V[2:, 1:-1] + V[1:-1, :-2] + V[1:-1, 2:] - 4.0 * v
    uvv = u * v * v
    du = DU * lu - uvv + FEED * (1.0 - u)
    dv = DV * lv + uvv - FEED_KILL * v
    u += DT * du
    v += DT * dv


def _laplacian(F: np.ndarray, out: np.ndarray, t: np.ndarray) -> None:
    """``out = F[:-2] + F[2:] + F[:, :-2] + F[:, 2:] - 4.0 * f`` on the interior ``f`` of
    ``F``, left to right as Python evaluates :func:`step_numpy`'s expression; ``t`` is
    scratch."""
    np.add(F[:-2, 1:-1], F[2:, 1:-1], out=out)
    np.add(out, F[1:-1, :-2], out=out)
    np.add(out, F[1:-1, 2:], out=out)
    np.multiply(4.0, F[1:-1, 1:-1], out=t)
    np.subtract(out, t, out=out)


def step_arena(U: np.ndarray, V: np.ndarray, a: Arena) -> None:
    """One step with the temporaries from the arena: :func:`step_numpy`'s operations, one
    ufunc call each, in the same order and with the same operands (so the same roundings).

    Call it inside ``with a.scope():`` (or follow it with ``a.reset()``): its temporaries
    are locals, dead once it returns, so the scope can end.
    """
    u = U[1:-1, 1:-1]
    v = V[1:-1, 1:-1]
    lu = a.empty_like(u)
    lv = a.empty_like(v)
    uvv = a.empty_like(u)
    t = a.empty_like(u)
    _laplacian(U, lu, t)
    _laplacian(V, lv, t)
    # uvv = u * v * v
    np.multiply(u, v, out=uvv)
    np.multiply(uvv, v, out=uvv)
    # du = DU * lu - uvv + FEED * (1.0 - u)                  (du reuses lu)
    np.multiply(DU, lu, out=lu)
    np.subtract(lu, uvv, out=lu)
    np.subtract(1.0, u, out=t)
    np.multiply(FEED, t, out=t)
    np.add(lu, t, out=lu)
    # dv = DV * lv + uvv - FEED_KILL * v                     (dv reuses lv)
    np.multiply(DV, lv, out=lv)
    np.add(lv, uvv, out=lv)
    np.multiply(FEED_KILL, v, out=t)
    np.subtract(lv, t, out=lv)
    # u += DT * du; v += DT * dv
    np.multiply(DT, lu, out=lu)
    np.add(u, lu, out=u)
    np.multiply(DT, lv, out=lv)
    np.add(v, lv, out=v)


# -- variants -------------------------------------------------------------------------------------

def has_numpy_allocator() -> bool:
    return hasattr(Arena, "numpy_allocator")


def available_variants() -> list[str]:
    """The variants this build can run, plain NumPy first (the reference)."""
    names = ["numpy", "arena"]
    # HOOK (third variant): NumPy's own temporaries from the arena, via the NEP 49 handler.
    # Picked up automatically as soon as Arena.numpy_allocator() exists; see _loop below.
    if has_numpy_allocator():
        names.append("numpy_allocator")
    return names


def arena_bytes_needed(n: int) -> int:
    """Bytes ``step_arena`` takes from the arena in one step (alignment included)."""
    tmp = (n - 2) * (n - 2) * np.dtype(DTYPE).itemsize
    return (TEMPORARIES_PER_STEP - 1) * (-(-tmp // 64) * 64) + tmp   # 64-byte alignment


def arena_options(n: int, huge_pages: str) -> ArenaOptions:
    # Reserving address space is free (PROT_NONE; pages are committed as the arena fills), so
    # reserve generously: the numpy_allocator variant's needs depend on NumPy's call pattern.
    field = n * n * np.dtype(DTYPE).itemsize
    size = max(1 << 30, 32 * field)
    size = -(-size // HUGETLB_SIZE) * HUGETLB_SIZE
    options = ArenaOptions(size)
    if huge_pages == "thp":
        options = options.with_flags(Flags.TRANSPARENT_HUGE_PAGES)
    elif huge_pages == "hugetlb":
        options = options.with_page_size(PageSize.SIZE_2M)
    return options


class _Progress:
    """A ``\\r`` progress bar on stderr (only drawn when asked, i.e. stderr is a terminal)."""

    def __init__(self, label: str, total: int, enabled: bool):
        self.label, self.total, self.enabled = label, total, enabled
        self.shown = -1

    def __call__(self, done: int) -> None:
        if not self.enabled:
            return
        width = 30
        filled = done * width // self.total
        if filled == self.shown and done != self.total:
            return
        self.shown = filled
        bar = "#" * filled + "-" * (width - filled)
        sys.stderr.write(f"\r  {self.label:<16} [{bar}] {done}/{self.total} steps")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\r" + " " * 72 + "\r")
            sys.stderr.flush()


def _loop(name: str, U: np.ndarray, V: np.ndarray, steps: int, a: Arena | None, tick) -> None:
    if name == "numpy":
        for i in range(steps):
            step_numpy(U, V)
            tick(i + 1)
        return
    assert a is not None, f"variant {name} needs an arena"
    if name == "arena":
        for i in range(steps):
            with a.scope():              # everything step_arena allocated is freed here
                step_arena(U, V, a)
            tick(i + 1)
    elif name == "numpy_allocator":
        # The plain-NumPy step, unchanged, with NumPy's own temporaries bump-allocated from
        # the arena (NEP 49). The handler reuses memory NumPy frees, so the loop runs in
        # bounded arena memory.
        with a.numpy_allocator():
            for i in range(steps):
                step_numpy(U, V)
                tick(i + 1)
    else:
        raise ValueError(f"unknown variant {name!r}")


def _proc_kib(path: str, key: str) -> int | None:
    """The ``key:  N kB`` line of a /proc file such as /proc/meminfo, in bytes; None if
    the file or the line is missing."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def run_variant(name: str, n: int, steps: int, seed: int, huge_pages: str,
                progress: bool = False) -> dict:
    """Run one variant in this process; the result dict holds the final fields.

    Meant to run in a fresh process: ``peak_rss`` is this process's ``ru_maxrss``.
    """
    U, V = initial_fields(n, seed)
    v_mean_initial = float(V.mean())
    a = None
    if name != "numpy":
        a = arena_options(n, huge_pages).reserve()
    bar = _Progress(name, steps, progress)
    before = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    try:
        _loop(name, U, V, steps, a, bar)
    finally:
        seconds = time.perf_counter() - t0
        bar.close()
    after = resource.getrusage(resource.RUSAGE_SELF)
    result = {
        "name": name,
        "seconds": seconds,
        "steps_per_second": steps / seconds if seconds > 0 else float("inf"),
        # ru_maxrss is in KiB on Linux.
        "peak_rss_bytes": after.ru_maxrss * 1024,
        "rss_before_loop_bytes": before.ru_maxrss * 1024,
        # Peak RSS of this address space, immune to the exec carry-over of ru_maxrss.
        "vm_hwm_bytes": _proc_kib("/proc/self/status", "VmHWM"),
        "minor_faults": after.ru_minflt - before.ru_minflt,
        "major_faults": after.ru_majflt - before.ru_majflt,
        "v_mean_initial": v_mean_initial,
        "v_mean_final": float(V.mean()),
    }
    if a is not None:
        result["arena_high_water_bytes"] = a.high_water
        result["arena_committed_bytes"] = a.committed
        a.close()
    result["fields"] = (U, V)
    return result


def _field_paths(directory: str, name: str) -> tuple[str, str]:
    return (os.path.join(directory, f"{name}-U.npy"), os.path.join(directory, f"{name}-V.npy"))


def _child(conn, directory, name, n, steps, seed, huge_pages, progress) -> None:
    """Entry point of a spawned process: run one variant, save its final fields in
    ``directory`` and send back the measurements (or an error)."""
    try:
        try:
            result = run_variant(name, n, steps, seed, huge_pages, progress)
            for path, field in zip(_field_paths(directory, name), result.pop("fields")):
                np.save(path, field)
        except MemoryError as exc:
            result = {"error": _memory_error_message(exc, n, huge_pages)}
        except (OSError, ValueError) as exc:
            result = {"error": f"variant {name!r} failed: {type(exc).__name__}: {exc}"}
        except KeyboardInterrupt:     # Ctrl-C reaches the whole process group: the parent
            return                    # reports it; no traceback from here
        conn.send(result)
    finally:
        conn.close()


def _run_in_child(directory, name, n, steps, seed, huge_pages, progress) -> dict:
    ctx = multiprocessing.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child,
                       args=(send, directory, name, n, steps, seed, huge_pages, progress),
                       name=f"arena-demo-{name}")
    proc.start()
    send.close()
    try:
        try:
            result = recv.recv()
        except EOFError:
            result = None
        proc.join()
    finally:
        if proc.is_alive():
            proc.terminate()
            proc.join()
        recv.close()
    if result is None:
        return {"error": f"variant {name!r}: its process died (exit code {proc.exitcode})"}
    return result


# -- checks before starting ------------------------------------------------------------------------

def _fill_hint(pages: int) -> str:
    hint = (f"fill it as root with `echo {pages} > /sys/kernel/mm/hugepages/hugepages-"
            f"{HUGETLB_SIZE // 1024}kB/nr_hugepages`")
    if _system.default_huge_page_size() == HUGETLB_SIZE:
        hint += f" (or `sysctl vm.nr_hugepages={pages}`)"
    return hint


def _hugetlb_pages_needed(n: int) -> int:
    return -(-arena_bytes_needed(n) // HUGETLB_SIZE)


def _memory_error_message(exc: MemoryError, n: int, huge_pages: str) -> str:
    if huge_pages == "hugetlb":
        pool = _system.hugetlb_pools().get(HUGETLB_SIZE, {"total": 0})
        return (f"the 2 MiB hugetlb pool ran out ({exc}); "
                f"{_fill_hint(pool['total'] + _hugetlb_pages_needed(n))}")
    return f"out of memory: {exc}"


def _check_hugetlb(n: int) -> str | None:
    """None if the 2 MiB pool can back the arena variant, else a one-line reason."""
    pools = _system.hugetlb_pools()
    need = _hugetlb_pages_needed(n)
    if HUGETLB_SIZE not in pools:
        return "--huge-pages hugetlb: this kernel offers no 2 MiB hugetlb pages"
    free = pools[HUGETLB_SIZE]["free"]
    if free < need:
        state = "is empty" if free == 0 else f"has {free} free pages"
        return (f"--huge-pages hugetlb needs {need} free 2 MiB huge pages for a {n}x{n} grid "
                f"but the pool {state}; {_fill_hint(pools[HUGETLB_SIZE]['total'] - free + need)}")
    return None


# -- the command --------------------------------------------------------------------------------

def _int_at_least(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value
    parse.__name__ = "int"
    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=_int_at_least(MIN_SIZE), default=DEFAULT_SIZE,
                        metavar="N", help=f"grid cells per side (default {DEFAULT_SIZE})")
    parser.add_argument("--steps", type=_int_at_least(1), default=DEFAULT_STEPS, metavar="S",
                        help=f"time steps per variant (default {DEFAULT_STEPS})")
    # NumPy madvises huge pages for its own arrays of 4 MiB and up, so a THP arena is the
    # like-for-like default wherever the kernel has transparent huge pages.
    default_pages = "thp" if _system.thp_mode() in ("always", "madvise") else "none"
    parser.add_argument("--huge-pages", choices=HUGE_PAGE_CHOICES, default=default_pages,
                        help="page kind backing the arena: none (4 KiB pages), thp "
                             "(Flags.TRANSPARENT_HUGE_PAGES) or hugetlb (with_page_size(2 MiB); "
                             "needs a filled hugetlb pool). Default: thp where the kernel has "
                             f"transparent huge pages, else none (here: {default_pages})")
    parser.add_argument("--seed", type=_int_at_least(0), default=0,
                        help="seed of the initial condition (default 0)")
    parser.add_argument("--json", action="store_true",
                        help="print the results as JSON instead of a table")


def _error(message: str) -> int:
    print(f"python -m arena demo: error: {message}", file=sys.stderr)
    return 1


def run(args: argparse.Namespace) -> int:
    n, steps = args.size, args.steps
    field_bytes = n * n * np.dtype(DTYPE).itemsize
    available = _proc_kib("/proc/meminfo", "MemAvailable")
    # Fields + a step's temporaries in a child, its copy in transit and two pairs here.
    estimate = 14 * field_bytes
    if available is not None and estimate > available:
        return _error(f"a {n}x{n} grid needs about {format_bytes(estimate)} but only "
                      f"{format_bytes(available)} is available; use a smaller --size")
    if args.huge_pages == "hugetlb":
        why = _check_hugetlb(n)
        if why:
            return _error(why)

    names = available_variants()
    progress = sys.stderr.isatty()
    if progress:
        print(f"Gray-Scott {n}x{n}, {steps} steps, {len(names)} variants, each in a fresh "
              "process:", file=sys.stderr)
    results = []
    try:
        with tempfile.TemporaryDirectory(prefix="arena-demo-") as directory:
            # No large arrays in this process until the last child is done (see the module
            # docstring: a child's ru_maxrss starts from the parent's high-water mark).
            for name in names:
                r = _run_in_child(directory, name, n, steps, args.seed, args.huge_pages,
                                  progress)
                if "error" in r:
                    return _error(r["error"])
                results.append(r)
            _compare(directory, results)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    base = results[0]["seconds"]
    for r in results:
        r["speedup_vs_numpy"] = base / r["seconds"] if r["seconds"] > 0 else float("inf")
    all_equal = all(r["equal_to_numpy"] for r in results)
    report = {
        "model": "gray-scott",
        "size": n,
        "steps": steps,
        "dtype": np.dtype(DTYPE).name,
        "seed": args.seed,
        "huge_pages": args.huge_pages,
        "thp_mode": _system.thp_mode(),
        "numpy_version": np.__version__,
        "cpu_count": os.cpu_count(),
        "measurement": "each variant in a fresh spawned process; seconds = wall time of the "
                       "step loop; peak_rss = that process's ru_maxrss; faults = getrusage "
                       "deltas over the loop",
        "check": "np.array_equal (bit-identical final U and V)",
        "numpy_allocator_available": has_numpy_allocator(),
        "variants": results,
        "all_equal": all_equal,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(render_table(report))
    if not all_equal:
        print("python -m arena demo: error: the variants' final fields differ "
              "(see above)", file=sys.stderr)
        return 1
    return 0


def _compare(directory: str, results: list[dict]) -> None:
    """Exact comparison of every variant's final fields with plain NumPy's (the first)."""
    reference = [np.load(p) for p in _field_paths(directory, results[0]["name"])]
    for r in results:
        fields = [np.load(p) for p in _field_paths(directory, r["name"])]
        r["equal_to_numpy"] = all(np.array_equal(f, g) for f, g in zip(fields, reference))
        r["max_abs_diff"] = max(float(np.max(np.abs(f - g), initial=0.0))
                                for f, g in zip(fields, reference))
        del fields


def render_table(report: dict) -> str:
    n, steps = report["size"], report["steps"]
    lines = [
        f"Gray-Scott reaction-diffusion: {n}x{n} {report['dtype']} grid, {steps} steps, "
        f"seed {report['seed']}, arena pages: {report['huge_pages']} "
        f"(THP mode {report['thp_mode']}), NumPy {report['numpy_version']}",
        f"Each temporary is {format_bytes((n - 2) ** 2 * np.dtype(report['dtype']).itemsize)}. "
        "Each variant runs in a fresh process, so peak RSS (ru_maxrss) is its own.",
        "",
    ]
    header = ("variant", "time (s)", "steps/s", "vs numpy", "peak RSS", "loop +RSS",
              "minor flt", "major flt", "same result")
    rows = []
    for r in report["variants"]:
        rows.append((
            r["name"],
            f"{r['seconds']:.2f}" if r["seconds"] >= 10 else f"{r['seconds']:.3f}",
            f"{r['steps_per_second']:.1f}",
            f"{r['speedup_vs_numpy']:.2f}x",
            format_bytes(r["peak_rss_bytes"]),
            format_bytes(r["peak_rss_bytes"] - r["rss_before_loop_bytes"]),
            f"{r['minor_faults']:,}",
            f"{r['major_faults']:,}",
            "reference" if r["name"] == "numpy" else ("yes" if r["equal_to_numpy"] else
                                                       f"NO (max |diff| {r['max_abs_diff']:.3g})"),
        ))
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]

    def fmt(row):
        return "  ".join(c.ljust(w) if i in (0, 8) else c.rjust(w)
                         for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    lines.append(fmt(header))
    lines.append("  ".join("-" * w for w in widths))
    lines += [fmt(row) for row in rows]
    lines.append("")
    v0, v1 = report["variants"][0]["v_mean_initial"], report["variants"][0]["v_mean_final"]
    lines.append(f"mean V: {v0:.6f} at the start, {v1:.6f} after {steps} steps")
    verdict = ("identical in every variant" if report["all_equal"]
               else "DIFFERENT between variants")
    lines.append(f"check: final U and V are {verdict} (np.array_equal, exact: each variant "
                 "does the same correctly rounded IEEE-754 operations in the same order, so "
                 "any difference would be a bug, not rounding)")
    lines.append("vs numpy = plain NumPy's time / this variant's time; loop +RSS = growth of "
                 "the peak during the step loop; faults counted over the step loop.")
    if report["huge_pages"] == "hugetlb":
        lines.append("note: hugetlb pages are not counted in RSS, so the arena variants' peak "
                     "RSS leaves out the arena's own memory.")
    if not report["numpy_allocator_available"]:
        lines.append("numpy_allocator variant: not in this build (Arena.numpy_allocator "
                     "missing); it is added automatically when present.")
    return "\n".join(lines)
