"""arena.dask against the same pool without arenas (the figures of ``python -m arena bench``'s
``dask`` and ``dask_cluster`` cases).

``ThreadedExpression``: ``(sin(x)**2 + cos(x)**2 - 1 + x * x.T).sum()`` on a 16000 x 16000
array in 2000 x 2000 chunks, threaded scheduler, 2 threads, with a ``ThreadPoolExecutor`` and
with an ``ArenaExecutor``: time, and minor page faults of one computation (``track_``).
``HighWater``: the ArenaExecutor's arenas' high water after 15 computations over that after
the first, on 8000 x 8000 in the same chunks (the same tasks, a quarter as many: 15 runs of
the full size would take minutes). ``Cluster``: the expression on a 2-worker
``LocalCluster`` (processes, a thread each) without and with ``ArenaPlugin``.
Every benchmark is skipped where Dask is not installed (``pip install 'arena[dask]'``).
"""
import resource
from concurrent.futures import ThreadPoolExecutor

N, CHUNK = 16_000, 2_000


def _need_dask():
    from arena.tools.bench_dask import missing
    why = missing()
    if why is not None:
        raise NotImplementedError(why)


def _expression(n=N):
    from arena.tools.bench_dask import DaskPlan, expression
    return expression(DaskPlan(n=n, chunk=CHUNK, repeat=1, cluster_repeat=1, computations=1,
                               processes=True))


class _Computations:
    """A call is one computation of seconds: run once a sample, no warm-up calls."""

    number = 1
    rounds = 1
    warmup_time = 0
    timeout = 900


class ThreadedExpression(_Computations):
    params = ["ThreadPoolExecutor", "ArenaExecutor"]
    param_names = ["pool"]
    repeat = 3

    def setup(self, kind):
        _need_dask()
        from arena.dask import ArenaExecutor
        self.pool = ArenaExecutor(2) if kind == "ArenaExecutor" else ThreadPoolExecutor(2)
        self._compute()  # the arenas grow to their working size once, untimed

    def teardown(self, kind):
        self.pool.shutdown()

    def _compute(self):
        return _expression().compute(scheduler="threads", pool=self.pool)

    def time_compute(self, kind):
        self._compute()

    def track_minor_faults(self, kind):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        self._compute()
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    track_minor_faults.unit = "faults"


class HighWater(_Computations):

    def setup(self):
        _need_dask()

    def track_high_water_after_15_over_first(self):
        from arena.dask import ArenaExecutor
        with ArenaExecutor(2) as pool:
            total = lambda: sum(s["high_water"] for s in pool.stats())  # noqa: E731
            _expression(N // 2).compute(scheduler="threads", pool=pool)
            first = total()
            for _ in range(14):
                _expression(N // 2).compute(scheduler="threads", pool=pool)
            return total() / first

    track_high_water_after_15_over_first.unit = "ratio"


class Cluster(_Computations):
    params = ["without", "ArenaPlugin"]
    param_names = ["plugin"]
    repeat = 2

    def setup(self, kind):
        _need_dask()
        from distributed import Client, LocalCluster

        from arena.dask import ArenaPlugin
        self.cluster = LocalCluster(n_workers=2, threads_per_worker=1,
                                    dashboard_address="127.0.0.1:0")
        self.client = Client(self.cluster, set_as_default=False)
        if kind == "ArenaPlugin":
            self.client.register_plugin(ArenaPlugin())
        self.client.compute(_expression()).result()  # warm up

    def teardown(self, kind):
        self.client.close()
        self.cluster.close()

    def time_compute(self, kind):
        self.client.compute(_expression()).result()
