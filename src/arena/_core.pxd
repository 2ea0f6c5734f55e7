# The C-level face of the arena, for `from arena._core cimport Arena` in other Cython code:
# alloc_raw and the inline, GIL-free arena_bump. Raw pointers they return are not views: the
# caller keeps them valid (no reset, release or close while it uses them) and serialises
# access across threads. Everything below "private" is arena._core's own state.
cimport cython

from arena._heap cimport Heap
from arena._mapping cimport Mapping


cdef class Arena


cdef inline char* arena_bump_uncounted(Arena a, size_t nbytes, size_t align) noexcept nogil:
    """The bump itself, in committed memory; NULL when the slow path must serve. Does not
    count an allocation (the NumPy heap takes its blocks from here too)."""
    cdef size_t start = (a.nused + align - 1) & ~(align - 1)
    if align == 0 or (align & (align - 1)) != 0 or align > a.page or start < a.nused:
        return NULL
    if start >= a.limit or nbytes > a.limit - start:
        return NULL
    a.nused = start + nbytes
    if a.nused > a.touched:
        a.touched = a.nused
    return a.base + start


cdef inline void* arena_bump(Arena a, size_t nbytes, size_t align) noexcept nogil:
    """Bump-allocate from committed memory without the GIL; NULL when the caller must take
    the GIL and call ``a.alloc_raw`` (commit needed, arena closed or not writable, or
    ``align`` not a power of two)."""
    cdef char* p = arena_bump_uncounted(a, nbytes, align)
    if p != NULL:
        a.nalloc += 1
    return p


cdef class _Region:
    # Owns one mapping (the OS layer's state): unmapped when the arena and the last view
    # that uses it are gone.
    cdef Mapping m


@cython.final
cdef class Arena:
    # The bump state. ``limit`` is how far the inline bump may go: the commit frontier (or
    # the end of the file known to cover it), and 0 while ``writable`` is false.
    cdef char* base
    cdef size_t nused, limit, touched, page
    cdef Py_ssize_t nalloc

    cdef void* alloc_slow(self, size_t nbytes, size_t align) except NULL

    cdef inline void* alloc_raw(self, size_t nbytes, size_t align) except NULL:
        """Bump-allocate ``nbytes`` aligned to ``align`` (a power of two up to the page
        size), committing on demand. Not a view: reset/release do not wait for it."""
        cdef void* p = arena_bump(self, nbytes, align)
        if p != NULL:
            return p
        return self.alloc_slow(nbytes, align)

    # -- private to arena._core ------------------------------------------------------------
    cdef bint writable              # open, and its pages readable and writable
    cdef _Region region
    cdef Mapping* map               # region.m
    cdef Heap heap                  # NumPy's blocks (_heap.pxi)
    cdef list frames_rw, frames_ro  # one _Frame per mark level (_frames.pxi)
    cdef size_t level_start         # where the newest mark level starts
    cdef Py_ssize_t next_serial
    cdef size_t view_end            # end of the furthest view() since a reset/release below it
    cdef size_t high_water_before   # high water before the last decommit
    cdef size_t align               # default alignment of sub-allocations
    cdef object dtypes              # a _DtypeCache (_convert.pxi)
    cdef object opts
    cdef object sh                  # _Shared (_shared.pxi) of a multi-process arena, else None
