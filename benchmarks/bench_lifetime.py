"""Freeing wholesale: ``reset`` after a million allocations, marks and scopes.

The reset benchmarks time only the freeing: the million allocations are made in setup, and
``number = 1`` makes asv re-run setup before every timed call, so each call frees a
freshly built million. The numpy peer drops a list of a million live arrays; the third
case keeps arena arrays alive too, to show that dropping the array objects themselves (not
the memory) is what is left to pay.
"""
import numpy as np

from .common import warm_arena

N_ALLOC = 1_000_000
BATCH = 1000
ITEMS = 8  # float64 elements per allocation: 64 bytes, one arena alignment unit


class _FreeAMillion:
    number = 1
    warmup_time = 0
    repeat = (1, 5, 3.0)
    timeout = 300


class ArenaReset(_FreeAMillion):
    """``reset()`` after a million allocations that were dropped as they were made."""

    def setup(self):
        self.arena = a = warm_arena(N_ALLOC * ITEMS * 8)
        empty, f8 = a.empty, np.float64
        for _ in range(N_ALLOC):
            empty(ITEMS, f8)

    def time_arena_reset(self):
        self.arena.reset()


class ArenaDropAndReset(_FreeAMillion):
    """A million arena arrays still alive: drop them, then ``reset()``."""

    def setup(self):
        self.arena = a = warm_arena(N_ALLOC * ITEMS * 8)
        empty, f8 = a.empty, np.float64
        self.arrays = [empty(ITEMS, f8) for _ in range(N_ALLOC)]

    def teardown(self):
        # The next setup resets the shared arena, which refuses while these are alive.
        self.arrays = None

    def time_arena_drop_and_reset(self):
        self.arrays.clear()
        self.arena.reset()


class NumpyDrop(_FreeAMillion):
    """A million NumPy arrays alive: drop them (one free() each)."""

    def setup(self):
        empty, f8 = np.empty, np.float64
        self.arrays = [empty(ITEMS, f8) for _ in range(N_ALLOC)]

    def time_numpy_drop(self):
        self.arrays.clear()


class MarksAndScopes:
    """``BATCH`` short-lived allocations, each freed by a mark/release pair or a scope.

    Figures are per ``BATCH`` calls; ``time_numpy_empty`` is the same loop with NumPy
    allocating and freeing, ``time_arena_empty_then_reset`` the arena without the per-call
    bookkeeping.
    """

    def setup(self):
        self.arena = warm_arena(BATCH * ITEMS * 8)
        self.batch = range(BATCH)

    def time_mark_release(self):
        a = self.arena
        mark, release, empty, f8 = a.mark, a.release, a.empty, np.float64
        for _ in self.batch:
            m = mark()
            empty(ITEMS, f8)
            release(m)

    def time_scope(self):
        a = self.arena
        scope, empty, f8 = a.scope, a.empty, np.float64
        for _ in self.batch:
            with scope():
                empty(ITEMS, f8)

    def time_mark_release_nothing(self):
        # The bookkeeping alone.
        a = self.arena
        mark, release = a.mark, a.release
        for _ in self.batch:
            release(mark())

    def time_reset_empty_arena(self):
        reset = self.arena.reset
        for _ in self.batch:
            reset()

    def time_arena_empty_then_reset(self):
        a = self.arena
        empty, f8 = a.empty, np.float64
        for _ in self.batch:
            empty(ITEMS, f8)
        a.reset()

    def time_numpy_empty(self):
        empty, f8 = np.empty, np.float64
        for _ in self.batch:
            empty(ITEMS, f8)
