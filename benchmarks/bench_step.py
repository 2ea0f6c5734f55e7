"""A simulation step with three 8 MiB temporaries: arena + reset against ``np.empty_like``.

Each step makes three temporaries the size of the state (``empty_like`` followed by a ufunc
with ``out=``) and drops them at the end, as a time-stepping loop does. NumPy pays
malloc/free (mmap/munmap and fresh page faults at this size) every step; the arena reuses
pages committed and touched once, in setup, because first touch is not the point here
(``bench_pages`` measures it).
"""
import numpy as np

from arena import Arena

from .common import MiB, warm_arena

N = MiB  # float64 elements: one 8 MiB temporary
STEPS = 10  # steps per peakmem_ run, enough for allocator caches to show


_state = []


def state():
    """The 8 MiB state array, made once per process: the runner may re-run setup before
    every call, and a fresh array each time would change what the allocator has cached."""
    if not _state:
        _state.append(np.random.default_rng(0).random(N))
    return _state[0]


def step(x, empty_like):
    """One step: three temporaries from ``empty_like``, each filled by a ufunc."""
    t1 = empty_like(x)
    np.multiply(x, 2.0, out=t1)
    t2 = empty_like(x)
    np.add(t1, x, out=t2)
    t3 = empty_like(x)
    np.subtract(t2, t1, out=t3)


class Step:
    """Time of one step, per way of getting the temporaries."""

    def setup(self):
        self.x = state()
        self.arena = warm_arena(3 * self.x.nbytes + 3 * 64)

    def time_numpy_empty_like(self):
        step(self.x, np.empty_like)

    def time_arena_reset(self):
        a = self.arena
        step(self.x, a.empty_like)
        a.reset()

    def time_arena_scope(self):
        a = self.arena
        with a.scope():
            step(self.x, a.empty_like)

    def time_numpy_expressions(self):
        # The same arithmetic as plain expressions (NumPy allocates the temporaries): the
        # baseline for StepNumpyAllocator.
        x = self.x
        t1 = x * 2.0
        t2 = t1 + x
        t2 - t1


class StepNumpyAllocator:
    """The same step written as plain expressions, with NumPy allocating from the arena (NEP 49).

    Skipped while the arena has no ``numpy_allocator``.
    """

    def setup(self):
        self.x = state()
        self.arena = warm_arena(3 * self.x.nbytes + 3 * 64)
        if not hasattr(self.arena, "numpy_allocator"):
            raise NotImplementedError("Arena.numpy_allocator is not available in this build")

    def time_arena_numpy_allocator(self):
        a, x = self.arena, self.x
        with a.numpy_allocator():
            t1 = x * 2.0
            t2 = t1 + x
            t3 = t2 - t1
            del t1, t2, t3
        a.reset()


class StepMemory:
    """Peak memory of ``STEPS`` steps: the arena holds exactly three temporaries."""

    def setup(self):
        self.x = state()

    def peakmem_numpy_empty_like(self):
        for _ in range(STEPS):
            step(self.x, np.empty_like)

    def peakmem_arena_reset(self):
        with Arena(64 * MiB) as a:
            for _ in range(STEPS):
                step(self.x, a.empty_like)
                a.reset()
