"""Dask with an arena per worker thread: the threaded scheduler, then a LocalCluster.

Computes ``(sin(x)**2 + cos(x)**2 - 1 + x * x.T).sum()`` with a plain thread pool and with
an ``ArenaExecutor``, then on a two-worker ``LocalCluster`` with and without ``ArenaPlugin``,
and prints the times, the page faults, the arenas' high water and whether the results agree.
Needs the extra (``pip install 'arena[dask]'``); without it, says so and exits 0.

    python examples/dask_arena.py [--size 8000] [--chunk 2000] [--no-cluster]
"""
import argparse
import resource
import time
from concurrent.futures import ThreadPoolExecutor


def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def timed(compute):
    f0, t0 = faults(), time.perf_counter()
    value = float(compute())
    return value, time.perf_counter() - t0, faults() - f0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8000, help="the array is SIZE x SIZE")
    parser.add_argument("--chunk", type=int, default=2000, help="chunks are CHUNK x CHUNK")
    parser.add_argument("--no-cluster", action="store_true", help="threaded scheduler only")
    args = parser.parse_args()
    try:
        import dask.array as da
        from distributed import Client, LocalCluster

        from arena.dask import ArenaExecutor, ArenaPlugin
    except ImportError as exc:
        print(f"skipped: {exc}")
        return

    def expression():
        x = da.random.default_rng(0).random((args.size, args.size), chunks=args.chunk)
        return (da.sin(x) ** 2 + da.cos(x) ** 2 - 1 + x * x.T).sum()

    with ThreadPoolExecutor(2) as plain, ArenaExecutor(2) as pool:
        for name, p in (("ThreadPoolExecutor(2)", plain), ("ArenaExecutor(2)", pool)):
            expression().compute(scheduler="threads", pool=p)  # warm up: the arenas grow
            value, took, n = timed(lambda: expression().compute(scheduler="threads", pool=p))  # noqa: B023
            print(f"threads, {name:21}: {took:6.2f} s, {n:7d} page faults, sum = {value!r}")
        high = sum(s["high_water"] for s in pool.stats())
        print(f"ArenaExecutor: {len(pool.stats())} thread arenas, high water "
              f"{high / (1 << 20):.0f} MiB in all")
    if args.no_cluster:
        return

    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address="127.0.0.1:0") \
            as cluster, Client(cluster) as client:
        client.compute(expression()).result()  # warm up: the workers import what they need
        value, took, _ = timed(lambda: client.compute(expression()).result())
        print(f"cluster, no plugin  : {took:6.2f} s, sum = {value!r}")
        client.register_plugin(ArenaPlugin())
        client.compute(expression()).result()  # warm up
        value, took, _ = timed(lambda: client.compute(expression()).result())
        print(f"cluster, ArenaPlugin: {took:6.2f} s, sum = {value!r}")
        high = client.run(
            lambda dask_worker: sum(s["high_water"] for s in dask_worker.executor.stats()))
        print("ArenaPlugin: worker arenas' high water "
              + ", ".join(f"{h / (1 << 20):.0f} MiB" for h in high.values()))


if __name__ == "__main__":  # LocalCluster starts its workers by spawning this module
    main()
