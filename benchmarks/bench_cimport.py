"""Allocation from C: ``alloc_raw`` and the inline ``nogil`` ``arena_bump`` called from a
third-party Cython module that cimports ``arena._core`` (``arena.cython_example``).

``setup_cache`` builds the module once for the whole run (about 3 s) into the cache
folder, where the benchmarks run; ``setup`` loads it once per process. The loops are
compiled and time themselves (``time_alloc_raw`` / ``time_arena_bump`` return seconds per
call), so these are ``track_`` benchmarks in ns per allocation: best of ``REPEAT`` runs of
``COUNT`` 64-byte allocations, with the arena committed up front (the loops time the bump,
never a commit) and reset between runs. Skipped when Cython, a C compiler or the Python
headers are missing.
"""
import os

import arena
import arena.cython_example

from .common import MiB

COUNT = 10_000_000
NBYTES = 64  # the bytes of np.empty(8, float64)
REPEAT = 5

_loaded = {}  # per process: the consumer module and its arena


def _load(folder):
    if "consumer" not in _loaded:
        module = arena.cython_example.load(folder)
        a = arena.Arena(COUNT * NBYTES + 64 * MiB)
        a.commit(COUNT * NBYTES)
        _loaded["consumer"], _loaded["arena"] = module, a
    return _loaded["consumer"], _loaded["arena"]


class CImportAlloc:
    """Nanoseconds per 64-byte allocation from C."""

    timeout = 300

    def setup_cache(self):
        why = arena.cython_example.missing_toolchain()
        if why is not None:
            return {"skip": why}
        folder = os.path.abspath("consumer")  # the cache folder: kept for the benchmarks
        arena.cython_example.build(folder)
        return {"folder": folder}

    def setup(self, cache):
        if "skip" in cache:
            raise NotImplementedError(cache["skip"])
        self.consumer, self.arena = _load(cache["folder"])

    def _best_ns(self, loop):
        a, best = self.arena, float("inf")
        for _ in range(REPEAT):
            a.reset()
            best = min(best, loop(a, COUNT, NBYTES)[0])
        a.reset()
        return best * 1e9

    def track_alloc_raw(self, cache):
        return self._best_ns(self.consumer.time_alloc_raw)

    track_alloc_raw.unit = "ns"

    def track_arena_bump(self, cache):
        return self._best_ns(self.consumer.time_arena_bump)

    track_arena_bump.unit = "ns"
