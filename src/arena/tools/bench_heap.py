"""``python -m arena bench`` cases for the NEP 49 heap behind ``numpy_allocator()``.

========  ===============================================================  =============
case      what                                                             target
========  ===============================================================  =============
heap      n live ``np.full(8, i)`` made, half freed in random order, made   <= 1.0 (1e5)
          again, n = 1e3, 1e4, 1e5; small temporaries ``x + 1.0``         <= 1.0
calloc    ``np.zeros(10**7)``: then summed, then filled, never touched     <= 1.0, 1.0, -
purge     RSS 1 s after freeing a 1 GiB temporary (one more NumPy call)    <= 64 MiB
fromiter  ``np.fromiter`` of 5e6 floats: arena high water / array bytes    <= 1.6
========  ===============================================================  =============

The ``heap`` rows run twice: with the default small threshold (requests below 1 KiB go to
NumPy's own allocator, as ``np.full(8, i)`` does) and with threshold 0, where the arena's
heap serves every array: its time per array must not grow with n. ``calloc`` targets sit on
the transparent-huge-page arena, whose pages match what NumPy's allocator gets for arrays of
4 MiB and more here; the 4 KiB arena rows are information.
"""
from __future__ import annotations

import contextlib
import gc
import random
import resource
import time

import numpy as np

from .. import Arena, ArenaOptions, Flags
from .._format import format_bytes
from .bench import MiB, OneShot, Plan, Progress, Result, best_of

HEAP_CASES = ("heap", "calloc", "purge", "fromiter")


def _sizes(plan: Plan) -> tuple[int, ...]:
    return (1000, 10_000) if plan.empty_number < 10_000 else (1000, 10_000, 100_000)


def _live_arrays(n: int, ctx):
    """n live arrays, half freed in random order, made again: the v1 heap's cliff."""
    order = list(range(n))
    random.Random(1).shuffle(order)
    half = order[: n // 2]

    def run(_):
        with ctx():
            keep = [np.full(8, i) for i in range(n)]
            for i in half:
                keep[i] = None
            for i in half:
                keep[i] = np.full(8, i)
            del keep
    return OneShot(lambda: None, run)


def _temporaries(count: int, ctx):
    x = np.ones(10)

    def run(_):
        with ctx():
            for _ in range(count):
                y = x + 1.0
            del y
    return OneShot(lambda: None, run)


def case_heap(plan: Plan, progress: Progress) -> list[Result]:
    """Many live arrays freed in any order, and small temporaries, against plain NumPy."""
    repeat = max(2, plan.empty_repeat)
    default = Arena(1 << 34)
    every = ArenaOptions(1 << 34).with_small_threshold(0).reserve()
    rows = []
    try:
        for n in _sizes(plan):
            timers = [_live_arrays(n, default.numpy_allocator),
                      _live_arrays(n, every.numpy_allocator),
                      _live_arrays(n, contextlib.nullcontext)]
            t_default, t_every, t_numpy = best_of(timers, repeat, 1, progress)
            per = 2 * n  # arrays made per run
            label = f"{n:.0e} live np.full(8, i), half freed at random, made again"
            rows.append(Result("heap", label, t_default / per, "NumPy's allocator",
                               t_numpy / per, 1.0 if n == max(_sizes(plan)) else None, repeat,
                               per="array"))
            rows.append(Result("heap/threshold 0", label + ", arena heap for all",
                               t_every / per, "NumPy's allocator", t_numpy / per, None, repeat,
                               per="array"))
        count = 50_000 if plan.empty_number >= 10_000 else 2_000
        timers = [_temporaries(count, default.numpy_allocator),
                  _temporaries(count, every.numpy_allocator),
                  _temporaries(count, contextlib.nullcontext)]
        t_default, t_every, t_numpy = best_of(timers, repeat, 1, progress)
        rows.append(Result("heap/temporaries", f"{count} x small temporaries x + 1.0",
                           t_default / count, "NumPy's allocator", t_numpy / count, 1.0,
                           repeat, per="call"))
        rows.append(Result("heap/temporaries 0", f"{count} x + 1.0, arena heap for all",
                           t_every / count, "NumPy's allocator", t_numpy / count, None,
                           repeat, per="call"))
    finally:
        default.close()
        every.close()
    every_rows = [r for r in rows if r.case == "heap/threshold 0"]
    flat = [r.arena_seconds for r in every_rows]
    peer = [r.peer_seconds for r in every_rows]
    rows[1].note = ("arena heap for every array: time per array at n = "
                    + ", ".join(f"{t * 1e9:.0f} ns" for t in flat)
                    + f" (largest / smallest {max(flat) / min(flat):.2f}; NumPy's own "
                    f"{max(peer) / min(peer):.2f})")
    return rows


def case_calloc(plan: Plan, progress: Progress) -> list[Result]:
    """``np.zeros(10**7)`` summed, filled, and never touched, inside the block and outside."""
    n = 10**7 if plan.empty_number >= 10_000 else 10**5
    repeat = max(3, plan.expr_repeat)
    plain = Arena(1 << 34)
    thp = ArenaOptions(1 << 34).with_flags(Flags.TRANSPARENT_HUGE_PAGES).reserve()
    patterns = {
        "then summed": lambda z: z.sum(),
        "then filled": lambda z: z.fill(1.0),
        "never touched": lambda z: None,
    }
    rows = []
    try:
        for name, use in patterns.items():
            def timer(ctx, use=use):
                def run(_):
                    with ctx():
                        z = np.zeros(n)
                        use(z)
                        del z
                return OneShot(lambda: None, run)
            timers = [timer(thp.numpy_allocator), timer(plain.numpy_allocator),
                      timer(contextlib.nullcontext)]
            for t in timers:
                t.timeit(1)  # the arenas commit and touch their pages once, untimed
            t_thp, t_plain, t_numpy = best_of(timers, repeat, 1, progress)
            label = f"np.zeros({n:.0e}) {name}"
            target = None if name == "never touched" else 1.0
            rows.append(Result("calloc/thp", label + ", THP arena", t_thp, "NumPy's allocator",
                               t_numpy, target, repeat))
            rows.append(Result("calloc", label + ", 4 KiB arena", t_plain, "NumPy's allocator",
                               t_numpy, None, repeat))
    finally:
        plain.close()
        thp.close()
    return rows


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def case_purge(plan: Plan, progress: Progress) -> list[Result]:
    """RSS one second after a 1 GiB temporary was freed, with one more NumPy call between."""
    size = 1 << 30 if plan.empty_number >= 10_000 else 16 * MiB
    a = Arena(1 << 34)
    try:
        gc.collect()
        before = _rss()
        with a.numpy_allocator():
            big = np.ones(size // 8)
            peak = _rss()
            del big
            time.sleep(1.0)
            np.ones(1024).sum()  # one more NumPy call that allocates from the arena
        after = _rss()
    finally:
        a.close()
    progress.tick(1, 1)
    grew = max(after - before, 0)
    return [Result("purge", f"RSS after a {format_bytes(size)} temporary was freed, 1 s on",
                   grew, "RSS before it", before, 64 * MiB, 1, per="run", unit="B",
                   target_unit="bytes",
                   note=f"RSS {format_bytes(before)} before, {format_bytes(peak)} with the "
                        f"temporary, {format_bytes(after)} after; purge delay "
                        f"{a.options.purge_delay} s",
                   extra={"rss_before": before, "rss_peak": peak, "rss_after": after})]


def case_fromiter(plan: Plan, progress: Progress) -> list[Result]:
    """``np.fromiter`` grows its buffer by realloc: on top of the arena, in place."""
    n = 5_000_000 if plan.empty_number >= 10_000 else 50_000
    a = Arena(1 << 34)
    try:
        with a.numpy_allocator():
            t0 = time.perf_counter()
            y = np.fromiter((float(i) for i in range(n)), float, count=-1)
            t_arena = time.perf_counter() - t0
        high = a.high_water
        nbytes = y.nbytes
        del y
        t0 = time.perf_counter()
        y = np.fromiter((float(i) for i in range(n)), float, count=-1)
        t_numpy = time.perf_counter() - t0
        del y
    finally:
        a.close()
    progress.tick(1, 1)
    return [Result("fromiter", f"np.fromiter of {n:.0e} floats: arena high water", high,
                   "the array's bytes", nbytes, 1.6, 1, per="run", unit="B",
                   note=f"high water {format_bytes(high)} for {format_bytes(nbytes)}; time "
                        f"{t_arena:.2f} s in the arena, {t_numpy:.2f} s with NumPy's "
                        "allocator", extra={"seconds": t_arena, "numpy_seconds": t_numpy})]


RUNNERS = {"heap": case_heap, "calloc": case_calloc, "purge": case_purge,
           "fromiter": case_fromiter}
