# A third-party module using arena's Cython API: `from arena._core cimport Arena`.
# Built by arena.cython_example.build() for the tests and benchmarks; a template for users.
from libc.stdint cimport uintptr_t
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC

from arena._core cimport Arena, arena_bump


def fill_range(Arena a, Py_ssize_t n):
    """Allocate n doubles with alloc_raw, write 0..n-1, return their offset in the arena."""
    cdef double* p = <double*>a.alloc_raw(n * sizeof(double), 64)
    cdef Py_ssize_t i
    for i in range(n):
        p[i] = i
    return <size_t><uintptr_t>p - a.address


def bump_nogil(Arena a, Py_ssize_t count, size_t nbytes):
    """Bump ``count`` blocks without the GIL; commit through alloc_raw when the inline bump
    says the committed range is used up. Returns the offset of the last block."""
    cdef Py_ssize_t _i
    cdef void* p = NULL
    for _i in range(count):
        with nogil:
            p = arena_bump(a, nbytes, 16)
        if p == NULL:
            p = a.alloc_raw(nbytes, 16)
    return <size_t><uintptr_t>p - a.address


cdef double _now() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


def time_alloc_raw(Arena a, Py_ssize_t count, size_t nbytes):
    """Seconds per ``alloc_raw(nbytes, 16)`` over ``count`` calls (the arena must have room;
    commit first so that the loop measures the bump, not the kernel)."""
    cdef Py_ssize_t _i
    cdef void* p
    cdef uintptr_t sink = 0
    cdef double t0 = _now()
    for _i in range(count):
        p = a.alloc_raw(nbytes, 16)
        sink ^= <uintptr_t>p
    cdef double t1 = _now()
    return (t1 - t0) / count, sink


def time_arena_bump(Arena a, Py_ssize_t count, size_t nbytes):
    """Seconds per inline ``arena_bump`` (committed memory only)."""
    cdef Py_ssize_t _i
    cdef void* p
    cdef uintptr_t sink = 0
    cdef double t0, t1
    with nogil:
        t0 = _now()
        for _i in range(count):
            p = arena_bump(a, nbytes, 16)
            sink ^= <uintptr_t>p
        t1 = _now()
    return (t1 - t0) / count, sink
