"""``python -m arena bench`` cases for :mod:`arena.dask`, against the same pool without arenas.

============  ===========================================================  ======
case          what                                                         target
============  ===========================================================  ======
dask          ``(sin(x)**2 + cos(x)**2 - 1 + x * x.T).sum()`` on a          <= 0.85
              16000 x 16000 array in 2000 x 2000 chunks, threaded
              scheduler: ``ArenaExecutor(2)`` / ``ThreadPoolExecutor(2)``
dask/faults   the same runs' minor page faults                             <= 0.1
dask/high     the ArenaExecutor's arenas' high water (summed over its      <= 1.5
water         threads) after 15 computations / after the first
dask_cluster  the same expression on a 2-worker ``LocalCluster``            <= 0.9
              (processes, a thread each) with ``ArenaPlugin`` / without;
              the results must be identical (a difference is an error)
============  ===========================================================  ======

``x`` is ``dask.array.random.default_rng(0).random``: each chunk is made in the task that
needs it, from a seed the graph fixes, so every run computes the same numbers and no 2 GiB
array ever exists whole. Each side runs once untimed first, then the repeats alternate
between the sides; times are best of the repeats, faults the median. The cases are
skipped, with a note, when Dask is not installed (``pip install 'arena[dask]'``).
The full run takes about four minutes on two idle cores: one computation takes 4-8 s.
"""
from __future__ import annotations

import gc
import os
import resource
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .._format import format_bytes
from .bench import FULL, QUICK, Plan, Progress, Result

DASK_CASES = ("dask", "dask_cluster")


@dataclass(frozen=True)
class DaskPlan:
    n: int                 # the array is n x n float64
    chunk: int
    repeat: int            # timed repeats a side (after one untimed run each)
    cluster_repeat: int    # the same on the clusters, noisier: four processes on two cores
    computations: int      # ArenaExecutor computations in all, for the high water
    processes: bool        # LocalCluster workers in processes (the smoke plan: threads)


DASK_FULL = DaskPlan(n=16_000, chunk=2_000, repeat=3, cluster_repeat=4, computations=15,
                     processes=True)
DASK_QUICK = DaskPlan(n=16_000, chunk=2_000, repeat=1, cluster_repeat=1, computations=15,
                      processes=True)
DASK_SMOKE = DaskPlan(n=400, chunk=100, repeat=1, cluster_repeat=1, computations=3,
                      processes=False)


def _dask_plan(plan: Plan) -> DaskPlan:
    return DASK_FULL if plan is FULL else DASK_QUICK if plan is QUICK else DASK_SMOKE


def missing() -> str | None:
    """Why the Dask cases cannot run here, or None when they can."""
    try:
        import arena.dask  # noqa: F401
    except ImportError as exc:
        return str(exc)
    return None


def expression(p: DaskPlan):
    """The benchmarked Dask expression, a fresh graph each call (no cached results)."""
    import dask.array as da
    x = da.random.default_rng(0).random((p.n, p.n), chunks=p.chunk)
    return (da.sin(x) ** 2 + da.cos(x) ** 2 - 1 + x * x.T).sum()


def _minflt() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _load() -> str:
    return "/".join(f"{v:.2f}" for v in os.getloadavg())


def _secs(times) -> str:
    return "[" + ", ".join(f"{t:.2f}" for t in times) + "] s"


def _skipped(names, why):
    return [Result(name, label, float("nan"), peer, float("nan"), target, 0,
                   f"skipped: {why}", skipped=True) for name, label, peer, target in names]


def _size(p: DaskPlan) -> str:
    return f"{p.n}^2 in {p.chunk}^2 chunks"


def case_dask(plan: Plan, progress: Progress) -> list[Result]:
    """The threaded scheduler with 2 threads: time, page faults, high water."""
    p = _dask_plan(plan)
    size = _size(p)
    rows = [("dask", f"{size}, ArenaExecutor(2)", "ThreadPoolExecutor(2)", 0.85),
            ("dask/faults", "minor faults, ArenaExecutor(2)", "ThreadPoolExecutor(2)", 0.1),
            ("dask/high water", f"arena high water after {p.computations}",
             "after the first", 1.5)]
    why = missing()
    if why is not None:
        return _skipped(rows, why)
    from ..dask import ArenaExecutor
    load_before = _load()
    arena_pool, plain_pool = ArenaExecutor(2), ThreadPoolExecutor(2)
    high_water = lambda: sum(s["high_water"] for s in arena_pool.stats())  # noqa: E731
    times: dict[str, list[float]] = {"arena": [], "plain": []}
    faults: dict[str, list[int]] = {"arena": [], "plain": []}
    results = set()

    def run(side):
        pool = arena_pool if side == "arena" else plain_pool
        expr = expression(p)
        gc.collect()
        f0, t0 = _minflt(), time.perf_counter()
        value = expr.compute(scheduler="threads", pool=pool)
        t, f = time.perf_counter() - t0, _minflt() - f0
        results.add(float(value))
        return t, f

    try:
        run("arena")
        first = high_water()
        run("plain")
        done = 1  # ArenaExecutor computations so far
        for _ in range(p.repeat):
            for side in ("arena", "plain"):
                t, f = run(side)
                times[side].append(t)
                faults[side].append(f)
            done += 1
            progress.tick(done, p.computations)
        while done < p.computations:  # the rest of the high-water runs, untimed
            run("arena")
            done += 1
            progress.tick(done, p.computations)
        last = high_water()
        live = [s["live_views"] for s in arena_pool.stats()]
    finally:
        arena_pool.shutdown()
        plain_pool.shutdown()
    if len(results) != 1:
        raise RuntimeError(f"dask: results differ between runs: {sorted(results)}")
    t_arena, t_plain = min(times["arena"]), min(times["plain"])
    f_arena, f_plain = statistics.median(faults["arena"]), statistics.median(faults["plain"])
    f_plain = max(f_plain, 1)  # (the smoke plan's tiny runs may fault nothing: no ratio)
    load = f"load {load_before} before, {_load()} after"
    opts = arena_pool.options
    flags = "THP" if opts.flags else "4 KiB pages"
    return [
        Result("dask", rows[0][1], t_arena, rows[0][2], t_plain, 0.85, p.repeat,
               f"threaded scheduler; ArenaExecutor defaults ({flags}, purge delay "
               f"{opts.purge_delay} s, {format_bytes(opts.size)} reserved a thread); "
               f"results identical ({results.pop()!r}); times {_secs(times['arena'])} "
               f"against {_secs(times['plain'])}; {load}", per="compute",
               extra={"arena_seconds": times["arena"], "plain_seconds": times["plain"],
                      "load": load}),
        Result("dask/faults", rows[1][1], f_arena, rows[1][2], f_plain, 0.1, p.repeat,
               f"median of the timed runs (arena {faults['arena']}, plain "
               f"{faults['plain']}); each arena run follows a plain one long enough for "
               "the idle purge to have given its memory back", per="compute", unit="count",
               extra={"arena_faults": faults["arena"], "plain_faults": faults["plain"]}),
        Result("dask/high water", f"arena high water after {p.computations}", last,
               "after the first", first, 1.5, p.computations, f"summed over the "
               f"{len(live)} thread arenas: {format_bytes(first)} after the first, "
               f"{format_bytes(last)} after {p.computations}; live arrays left {sum(live)}",
               per="run", unit="B", extra={"first": first, "last": last}),
    ]


def case_dask_cluster(plan: Plan, progress: Progress) -> list[Result]:
    """Two 2-worker LocalClusters side by side, one with ArenaPlugin; runs alternate."""
    p = _dask_plan(plan)
    label = f"{_size(p)}, LocalCluster 2 x 1 thread"
    rows = [("dask_cluster", label + " + ArenaPlugin", "the same without", 0.9)]
    why = missing()
    if why is not None:
        return _skipped(rows, why)
    from distributed import Client, LocalCluster, get_task_stream

    from ..dask import ArenaPlugin
    load_before = _load()
    kw = dict(n_workers=2, threads_per_worker=1, processes=p.processes,
              dashboard_address="127.0.0.1:0")
    times: dict[str, list[float]] = {"arena": [], "plain": []}
    faults: dict[str, list[int]] = {"arena": [], "plain": []}
    busy: dict[str, list[float]] = {"arena": [], "plain": []}  # seconds in tasks, summed
    results = set()

    def worker_faults(client):
        return sum(client.run(_minflt).values()) if p.processes else _minflt()

    with LocalCluster(**kw) as with_plugin, LocalCluster(**kw) as without, \
            Client(with_plugin, set_as_default=False) as arena_client, \
            Client(without, set_as_default=False) as plain_client:
        arena_client.register_plugin(ArenaPlugin())
        clients = {"arena": arena_client, "plain": plain_client}

        def run(side):
            client = clients[side]
            expr = expression(p)
            f0 = worker_faults(client)
            with get_task_stream(client=client) as stream:
                t0 = time.perf_counter()
                value = client.compute(expr).result()
                t = time.perf_counter() - t0
            f = worker_faults(client) - f0
            results.add(float(value))
            busy[side].append(sum(ss["stop"] - ss["start"] for task in stream.data
                                  for ss in task["startstops"] if ss["action"] == "compute"))
            return t, f

        run("arena")
        run("plain")
        busy["arena"].clear()
        busy["plain"].clear()
        for r in range(p.cluster_repeat):
            for side in ("arena", "plain"):
                t, f = run(side)
                times[side].append(t)
                faults[side].append(f)
            progress.tick(r + 1, p.cluster_repeat)
        high = arena_client.run(
            lambda dask_worker: [s["high_water"] for s in dask_worker.executor.stats()])
    if len(results) != 1:
        raise RuntimeError(f"dask_cluster: results differ: {sorted(results)}")
    in_use = all(h and all(v > 0 for v in h) for h in high.values())
    where = "worker processes'" if p.processes else "this process's (workers in threads)"
    note = (f"results identical ({results.pop()!r}); plugin in use on every worker: "
            f"{'yes' if in_use else 'NO'} (arena high water "
            f"{', '.join(format_bytes(sum(h)) for h in high.values())}); {where} minor faults "
            f"a run, median: {statistics.median(faults['arena']):.0f} with the plugin, "
            f"{statistics.median(faults['plain']):.0f} without; time in tasks, summed over "
            f"the workers, median: {statistics.median(busy['arena']):.2f} s with, "
            f"{statistics.median(busy['plain']):.2f} s without; times {_secs(times['arena'])} "
            f"against {_secs(times['plain'])}; load {load_before} before, "
            f"{_load()} after")
    return [Result("dask_cluster", rows[0][1], min(times["arena"]), rows[0][2],
                   min(times["plain"]), 0.9, p.cluster_repeat, note, per="compute",
                   extra={"arena_seconds": times["arena"], "plain_seconds": times["plain"],
                          "arena_faults": faults["arena"], "plain_faults": faults["plain"],
                          "arena_task_seconds": busy["arena"],
                          "plain_task_seconds": busy["plain"], "plugin_in_use": in_use})]


RUNNERS = {"dask": case_dask, "dask_cluster": case_dask_cluster}
