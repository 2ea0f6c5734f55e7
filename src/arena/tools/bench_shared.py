"""``python -m arena bench`` cases for arenas shared by several processes (``Flags.SHARED``).

============  ====================================================================  ======
case          what                                                                  target
============  ====================================================================  ======
shared        ProcessPoolExecutor, 2 workers, 24 results of 32 MiB: time with the    0.25
              results allocated in a shared arena / returned normally (pickled)
shared/rss    the parent's RSS growth for those results, arena / pickled             0.6
shared/empty  ``a.empty(8)`` on a shared arena / on a private arena                  1.5
============  ====================================================================  ======

Both sides do the same work in the workers (``empty`` and ``fill`` of each result) and in the
parent (hold the 24 results and check the stamp at both ends of each). The arena's results
travel as an offset and are views of the same memory in the parent, so the parent maps only
the pages it reads; pickled results cross a pipe and are copied into the parent. The note of
``shared/rss`` also gives the RSS growth when the parent reads every byte: the arena's
results then map into the parent as well (shared pages, the same ones the workers wrote: no
copy), so the two sides come close; the proportional set size (each shared page divided
among the processes that map it) shows the difference that remains. Times are best of
interleaved repeats: the arena reuses its pages after ``reset()``, the pickled side
allocates fresh memory every batch, as code returning arrays from a pool does; the arena's
first (cold) batch is in the note.
"""
from __future__ import annotations

import gc
import multiprocessing
import resource
import timeit
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from .. import Arena, ArenaOptions, Flags
from .._format import format_bytes, format_time
from .bench import MiB, Plan, Progress, Result, best_of

SHARED_CASES = ("shared",)

_ARENA = None


def _init(a):
    global _ARENA
    _ARENA = a


def _make_in_arena(n, i):
    x = _ARENA.empty(n, np.float64)
    x.fill(i)
    return x


def _make_plain(n, i):
    x = np.empty(n, np.float64)
    x.fill(i)
    return x


def _status(name, path="/proc/self/status"):
    with open(path) as f:
        for line in f:
            if line.startswith(name + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where that is refused."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def _batch(pool, make, n, count, read_all):
    """Run one batch; (seconds, RSS growth at the peak while the results are held, counted
    as at least one page so that a ratio exists, and the growth of the proportional set
    size while they are: the parent's share of pages that other processes map too)."""
    gc.collect()
    peak_ok = _reset_peak()
    before = _status("VmRSS")
    pss = _status("Pss", "/proc/self/smaps_rollup")
    start = timeit.default_timer()
    results = list(pool.map(make, [n] * count, range(count)))
    for i, r in enumerate(results):
        if r[0] != i or r[-1] != i:
            raise AssertionError(f"result {i} holds {r[0]}, {r[-1]}")
        if read_all and r.sum() != i * n:
            raise AssertionError(f"result {i} does not add up")
    seconds = timeit.default_timer() - start
    grew = (_status("VmHWM") if peak_ok else _status("VmRSS")) - before
    pss = _status("Pss", "/proc/self/smaps_rollup") - pss
    del results, r
    return seconds, max(grew, resource.getpagesize()), pss


def case_shared(plan: Plan, progress: Progress) -> list[Result]:
    """Results of a process pool in a shared arena against results returned normally; and
    the shared arena's ``empty`` against a private arena's."""
    smoke = plan.empty_number < 10_000
    count, nbytes = (4, 256 * 1024) if smoke else (24, 32 * MiB)
    repeat = 2 if smoke else max(3, plan.step_repeat)
    n = nbytes // 8
    ctx = multiprocessing.get_context("fork")
    a = ArenaOptions(2 * count * nbytes + 64 * MiB).with_flags(Flags.SHARED).reserve()
    pools = [ProcessPoolExecutor(2, mp_context=ctx, initializer=_init, initargs=(a,)),
             ProcessPoolExecutor(2, mp_context=ctx)]
    try:
        for pool in pools:  # start the workers before any array exists (fork copies views)
            list(pool.map(abs, range(4)))
        cold = _batch(pools[0], _make_in_arena, n, count, False)[0]
        a.reset()
        best = [float("inf")] * 2
        rss = [0, 0]
        for r in range(repeat):
            for side, (pool, make) in enumerate(zip(pools, (_make_in_arena, _make_plain))):
                seconds, grew, _ = _batch(pool, make, n, count, False)
                best[side] = min(best[side], seconds)
                rss[side] = grew
                if side == 0:
                    a.reset()
            progress.tick(r + 1, repeat)
        read_all = []
        for pool, make in zip(pools, (_make_in_arena, _make_plain)):
            read_all.append(_batch(pool, make, n, count, True)[1:])
            a.reset()
    finally:
        for pool in pools:
            pool.shutdown()
        a.close()
    label = f"{count} x {format_bytes(nbytes)} results"
    rows = [
        Result("shared", f"{label} in a shared arena", best[0],
               f"{label} returned normally (pickled)", best[1], 0.25, repeat, per="batch",
               note=f"ProcessPoolExecutor (fork), 2 workers, empty + fill in the worker; the "
                    f"arena's first batch, committing its pages: {format_time(cold)} (ratio "
                    f"{cold / best[1]:.3f})",
               extra={"cold_seconds": cold}),
        Result("shared/rss", f"parent RSS growth, {label} in a shared arena", rss[0],
               "parent RSS growth, pickled", rss[1], 0.6, 1, per="batch", unit="B",
               note=f"the parent holds the results and checks a stamp at both ends of each; "
                    f"reading every byte instead: {format_bytes(read_all[0][0])} (shared "
                    f"pages the workers wrote, no copy) against {format_bytes(read_all[1][0])} "
                    f"(ratio {read_all[0][0] / read_all[1][0]:.2f}); the proportional set "
                    f"size then grows by {format_bytes(max(read_all[0][1], 0))} against "
                    f"{format_bytes(max(read_all[1][1], 0))}",
               extra={"read_all_arena": read_all[0][0], "read_all_pickled": read_all[1][0],
                      "read_all_pss_arena": read_all[0][1],
                      "read_all_pss_pickled": read_all[1][1]}),
    ]
    rows.append(_case_empty(plan, progress))
    return rows


def _case_empty(plan: Plan, progress: Progress) -> Result:
    number = plan.empty_number
    size = max(4 * number * 64, 64 * MiB)
    shared = ArenaOptions(size).with_flags(Flags.SHARED).reserve()
    private = Arena(size)
    try:
        timers = []
        for a in (shared, private):
            a.commit(number * 64)
            timers.append(timeit.Timer("empty(8, f8)", setup="reset()",
                                       globals={"empty": a.empty, "f8": np.float64,
                                                "reset": a.reset}))
        for timer in timers:
            timer.timeit(min(number, 1000))
        best = best_of(timers, plan.empty_repeat, number, progress)
    finally:
        shared.close()
        private.close()
    return Result("shared/empty", "a.empty(8, float64), shared arena", best[0],
                  "the same, private arena", best[1], 1.5, plan.empty_repeat,
                  note="a shared arena bumps with a compare-and-swap in shared memory and "
                       "gives every array a base object of its own (its process's live views "
                       "are published for the others)")


RUNNERS = {"shared": case_shared}
