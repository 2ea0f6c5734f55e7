"""Arenas shared by several processes (``Flags.SHARED``), against what a pool does without one.

``PoolResults``: a ``ProcessPoolExecutor`` (fork, 2 workers) makes 24 results of 32 MiB
(``empty`` and ``fill`` in the worker); the parent holds them and checks a stamp at both ends
of each. With ``shared arena`` the results are allocated in a shared arena and reach the
parent as views of the same memory; with ``pickled`` they are returned normally, through the
pipe. ``track_parent_rss_growth`` is the parent's peak RSS growth during one batch.
``SharedEmpty``: ``a.empty(8)`` on a shared arena against a private one (1000 calls a sample).
The command-line twin is ``python -m arena bench --cases shared``.
"""
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from arena import ArenaOptions, Flags
from arena.tools.bench_shared import _batch, _init, _make_in_arena, _make_plain

from .common import MiB

COUNT, NBYTES = 24, 32 * MiB


class PoolResults:
    params = ["shared arena", "pickled"]
    param_names = ["results"]
    timeout = 300
    number = 1
    repeat = (3, 5, 60.0)

    def setup(self, kind):
        ctx = multiprocessing.get_context("fork")
        if kind == "shared arena":
            self.arena = ArenaOptions(2 * COUNT * NBYTES).with_flags(Flags.SHARED).reserve()
            self.pool = ProcessPoolExecutor(2, mp_context=ctx, initializer=_init,
                                            initargs=(self.arena,))
            self.make = _make_in_arena
        else:
            self.arena = None
            self.pool = ProcessPoolExecutor(2, mp_context=ctx)
            self.make = _make_plain
        list(self.pool.map(abs, range(4)))  # workers up before any array exists
        self.batch()                         # the arena commits its pages once, untimed

    def teardown(self, kind):
        self.pool.shutdown()
        if self.arena is not None:
            self.arena.close()

    def batch(self):
        if self.arena is not None:
            self.arena.reset()  # before, not after: the workers have dropped their views
        return _batch(self.pool, self.make, NBYTES // 8, COUNT, False)

    def time_24_results_of_32_mib(self, kind):
        self.batch()

    def track_parent_rss_growth(self, kind):
        return self.batch()[1]

    track_parent_rss_growth.unit = "bytes"


class SharedEmpty:
    params = ["shared", "private"]
    param_names = ["arena"]

    def setup(self, kind):
        opts = ArenaOptions(256 * MiB)
        self.arena = (opts.with_flags(Flags.SHARED) if kind == "shared" else opts).reserve()
        self.arena.commit(1000 * 64)

    def teardown(self, kind):
        self.arena.close()

    def time_empty_8_x1000(self, kind):
        a = self.arena
        empty, f8 = a.empty, np.float64
        for _ in range(1000):
            empty(8, f8)
        a.reset()
