"""Small allocations at NumPy's small-array sizes: ``Arena.empty`` against ``np.empty`` and peers.

Each timed call makes ``BATCH`` float64 arrays of ``n`` elements and drops each one at once,
so a sample is long enough for the clock to resolve 100 ns operations even when the runner
times calls one by one. Read every figure as "time per 1000 allocations". The arena is reset
at the end of each call, so it never grows past one batch whatever ``number`` asv picks.
The sizes straddle NumPy's small-allocation cache (1024 bytes: 127 vs 128 elements).
"""
import mmap

import numpy as np

from .common import warm_arena

try:
    from cymem.cymem import Address as _CymemAddress
except ImportError:
    _CymemAddress = None

try:
    import pyarrow as _pa
except ImportError:
    _pa = None

SIZES = [1, 4, 16, 64, 127, 128, 256, 512]
BATCH = 1000
ALIGN = 64  # the arena's default alignment; the hand-rolled slab below uses the same


def _padded(nbytes):
    return -(-nbytes // ALIGN) * ALIGN


class SmallAlloc:
    """``BATCH`` arrays of ``n`` float64 each, from the arena, NumPy and mmap."""

    params = [SIZES]
    param_names = ["n"]

    def setup(self, n):
        self.arena = warm_arena(BATCH * _padded(SIZES[-1] * 8))
        self.batch = range(BATCH)
        step = _padded(n * 8)
        self.offsets = range(0, BATCH * step, step)
        self.slab = mmap.mmap(-1, BATCH * step)

    def teardown(self, n):
        self.slab.close()

    def time_arena_empty(self, n):
        a = self.arena
        empty, f8 = a.empty, np.float64
        for _ in self.batch:
            empty(n, f8)
        a.reset()

    def time_numpy_empty(self, n):
        empty, f8 = np.empty, np.float64
        for _ in self.batch:
            empty(n, f8)

    def time_mmap_slab_frombuffer(self, n):
        # What a user hand-rolls without arena: one mapping, arrays at bump offsets.
        slab, frombuffer, f8 = self.slab, np.frombuffer, np.float64
        for off in self.offsets:
            frombuffer(slab, f8, n, off)

    def time_mmap_per_array(self, n):
        # One mapping per array: the syscall pair (mmap, munmap) dominates.
        anon, frombuffer, f8, nbytes = mmap.mmap, np.frombuffer, np.float64, n * 8
        for _ in self.batch:
            frombuffer(anon(-1, nbytes), f8)


class CymemAlloc:
    """``BATCH`` cymem allocations of ``n`` float64 each.

    cymem's ``Pool.alloc`` is cdef-only; ``Address`` (calloc, freed on dealloc) is what
    Python code can reach. It yields an address, not an array: a floor, not a like-for-like
    peer.
    """

    params = [SIZES]
    param_names = ["n"]

    def setup(self, n):
        if _CymemAddress is None:
            raise NotImplementedError("cymem is not installed")
        self.batch = range(BATCH)

    def time_cymem_address(self, n):
        address = _CymemAddress
        for _ in self.batch:
            address(n, 8)


class PyArrowAlloc:
    """``BATCH`` arrays of ``n`` float64 each over pyarrow buffers from a memory pool."""

    params = [SIZES, ["system", "jemalloc", "mimalloc"]]
    param_names = ["n", "pool"]

    def setup(self, n, pool):
        if _pa is None:
            raise NotImplementedError("pyarrow is not installed")
        # ArrowNotImplementedError (a NotImplementedError) when pyarrow lacks that pool.
        self.pool = getattr(_pa, f"{pool}_memory_pool")()
        self.batch = range(BATCH)

    def time_pyarrow_allocate_buffer(self, n, pool):
        allocate, frombuffer, f8, nbytes, mp = (_pa.allocate_buffer, np.frombuffer, np.float64,
                                                n * 8, self.pool)
        for _ in self.batch:
            frombuffer(allocate(nbytes, memory_pool=mp), f8)


class NumpyCalls:
    """Where v1 lagged NumPy: ``empty`` cycling through three dtypes (its two-entry dtype
    cache thrashed) and ``array`` of a short list of floats (a temporary array and a
    ``np.copyto``). ``BATCH`` rounds of each; the arena side must not be slower."""

    def setup(self):
        self.arena = warm_arena(BATCH * 3 * ALIGN)
        self.batch = range(BATCH)

    def time_arena_empty_three_dtypes(self):
        a = self.arena
        empty, d0, d1, d2 = a.empty, np.float64, np.float32, np.int32
        for _ in self.batch:
            empty(8, d0)
            empty(8, d1)
            empty(8, d2)
        a.reset()

    def time_numpy_empty_three_dtypes(self):
        empty, d0, d1, d2 = np.empty, np.float64, np.float32, np.int32
        for _ in self.batch:
            empty(8, d0)
            empty(8, d1)
            empty(8, d2)

    def time_arena_array_list(self):
        a = self.arena
        array = a.array
        for _ in self.batch:
            array([1.0, 2.0, 3.0])
        a.reset()

    def time_numpy_array_list(self):
        array = np.array
        for _ in self.batch:
            array([1.0, 2.0, 3.0])
