"""A simulation step: three 8 MiB temporaries (arena + reset against ``np.empty_like``), and
an unmodified NumPy expression with NumPy allocating from the arena (NEP 49).

``Step``: each step makes three temporaries the size of the state (``empty_like`` followed
by a ufunc with ``out=``) and drops them at the end, as a time-stepping loop does. NumPy pays
malloc/free (mmap/munmap and fresh page faults at this size) every step; the arena reuses
pages committed and touched once, in setup, because first touch is not the point here
(``bench_pages`` measures it).

``StepNumpyAllocator``: ``y = np.sqrt(x * 2.0 + y) - np.abs(y - x)`` on 8 MiB float64
arrays, as written, under NumPy's allocator and inside ``a.numpy_allocator()`` of a 4 KiB-page
and a transparent-huge-page arena; and the compute floor, the same ufuncs writing with
``out=`` into preallocated buffers, which no allocator can beat.
"""
import numpy as np

from arena import Arena
from arena.tools.bench import expression, step
from arena.tools.bench import expression_out as _expression_out

from .common import MiB, arena_options, warm_arena

N = MiB  # float64 elements: one 8 MiB temporary
STEPS = 10  # steps per peakmem_ run, enough for allocator caches to show
EXPR_STEPS = 10  # expression steps per StepNumpyAllocator call


_state = []


def state():
    """The 8 MiB state array, made once per process: the runner may re-run setup before
    every call, and a fresh array each time would change what the allocator has cached."""
    if not _state:
        rng = np.random.default_rng(0)
        _state.append(rng.random(N))
        _state.append(rng.random(N))  # the expression's initial y
    return _state[0]


def state_y():
    """The expression's initial ``y``, 8 MiB, made with :func:`state`."""
    state()
    return _state[1]


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


def expression_out(x, y, steps, buffers):
    """:func:`arena.tools.bench.expression_out` with the four buffers in one tuple."""
    t, u, r0, r1 = buffers
    return _expression_out(x, y, steps, (t, u), (r0, r1))


# Per process and allocator: (arena for numpy_allocator, floor buffers). Made and warmed
# once, because the runner may re-run setup before every call.
_expr_cache = {}


def _expr_memory(allocator):
    got = _expr_cache.get(allocator)
    if got is None:
        x, nbytes = state(), state().nbytes
        if allocator == "numpy":
            arena, empty = None, np.empty
        else:
            kind = {"arena_4k": "4k", "arena_thp": "thp"}[allocator]
            # Room for the four arrays alive at the peak, with slack; a second arena of the
            # same kind holds the floor's buffers.
            arena = arena_options(8 * nbytes + 64 * MiB, kind).reserve()
            empty = arena_options(4 * nbytes + 64 * MiB, kind).reserve().empty
        buffers = [empty(N) for _ in range(4)]
        for b in buffers:
            b.fill(0.0)  # first touch here, not in a timed call
        if arena is not None:  # commit and touch the arena's pages untimed
            with arena.numpy_allocator():
                expression(x, state_y(), 2)
        got = _expr_cache[allocator] = (arena, buffers)
    return got


class StepNumpyAllocator:
    """``y = np.sqrt(x * 2.0 + y) - np.abs(y - x)``, ``EXPR_STEPS`` steps per call, 8 MiB.

    ``allocator``: 'numpy' (NumPy's default allocator: the baseline), 'arena_4k' and
    'arena_thp' (inside ``a.numpy_allocator()`` of an arena with 4 KiB pages or
    ``Flags.TRANSPARENT_HUGE_PAGES``; the latter is skipped where THP is off).
    ``time_expression`` is the expression as written; ``time_floor_out`` the same ufuncs
    with ``out=`` into four buffers from that allocator, allocated once: the compute floor.
    NumPy's default allocator madvises arrays of 4 MiB and more for huge pages, so on a
    kernel with THP 'madvise' 'arena_thp' is the like-for-like page kind.
    """

    params = [["numpy", "arena_4k", "arena_thp"]]
    param_names = ["allocator"]

    def setup(self, allocator):
        self.x, self.y = state(), state_y()
        if allocator != "numpy" and not hasattr(Arena, "numpy_allocator"):
            raise NotImplementedError("Arena.numpy_allocator is not available in this build")
        self.arena, self.buffers = _expr_memory(allocator)

    def time_expression(self, allocator):
        a, x, y = self.arena, self.x, self.y
        if a is None:
            expression(x, y, EXPR_STEPS)
        else:
            with a.numpy_allocator():
                y = expression(x, y, EXPR_STEPS)
                del y

    def time_floor_out(self, allocator):
        expression_out(self.x, self.y, EXPR_STEPS, self.buffers)


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
