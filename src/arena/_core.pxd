# The C-level face of the arena, for `from arena._core cimport Arena` in other Cython code.
# Raw pointers from alloc_raw / arena_bump are not views: the caller keeps them valid
# (no reset, release or close while it uses them) and serialises access across threads.
cimport cython
cimport numpy as cnp


cdef class Arena


cdef inline void* arena_bump(Arena a, size_t nbytes, size_t align) noexcept nogil:
    """Bump-allocate from committed memory without the GIL; NULL when the caller must take
    the GIL and call ``a.alloc_raw`` (commit needed, arena closed or not writable, or
    ``align`` not a power of two)."""
    cdef size_t start = (a.nused + align - 1) & ~(align - 1)
    if align == 0 or (align & (align - 1)) != 0 or align > a.page or start < a.nused:
        return NULL
    if start >= a.limit or nbytes > a.limit - start:  # limit 0: not writable or closed
        return NULL
    a.nused = start + nbytes
    if a.nused > a.touched:
        a.touched = a.nused
    a.nalloc += 1
    return a.base + start


cdef class _Region:
    """One mapping: unmapped when the arena and the last view that uses it are gone."""
    cdef char* base
    cdef size_t size
    cdef int fd
    cdef int unmap(self) except -1


cdef class _Frame:
    """Base object of every array of one mark level (one for writable, one for read-only
    arrays): its reference count is the number of live views of that level."""
    cdef readonly _Region region
    cdef size_t start
    cdef Py_ssize_t nalloc_start
    cdef Py_ssize_t serial


cdef class Mark:
    cdef object owner
    cdef Py_ssize_t level
    cdef Py_ssize_t serial
    cdef size_t start


ctypedef struct Block:
    # A block NumPy allocated through the arena's NEP 49 handler.
    size_t start
    size_t size
    bint live


@cython.final
cdef class Arena:
    cdef _Region region
    cdef char* base
    cdef size_t nreserved, ncommitted, nused, limit
    cdef size_t touched, high_water_before
    cdef size_t view_end  # end of the furthest view() since the last reset/release below it
    cdef size_t page, step, align
    cdef int prot
    cdef unsigned int flags
    cdef bint locked, file_backed, shared, hugetlb
    cdef size_t file_offset, file_known
    cdef Py_ssize_t nalloc
    cdef Py_ssize_t next_serial
    cdef Block* blocks
    cdef Py_ssize_t nblocks, capblocks, live_blocks
    cdef list frames_rw
    cdef list frames_ro
    cdef object dtype_key, dtype_val, dtype_key2, dtype_val2
    cdef object opts

    cdef void* alloc_slow(self, size_t nbytes, size_t align) except NULL

    cdef inline void* alloc_raw(self, size_t nbytes, size_t align) except NULL:
        """Bump-allocate ``nbytes`` aligned to ``align`` (a power of two up to the page
        size), committing on demand. Not a view: reset/release do not wait for it."""
        cdef void* p = arena_bump(self, nbytes, align)
        if p != NULL:
            return p
        return self.alloc_slow(nbytes, align)
    cdef int commit_to(self, size_t end) except -1
    cdef Py_ssize_t views_since(self, Py_ssize_t level, bint writable_only)
    cdef int check_open(self) except -1

    # NumPy's allocations (NEP 49): stack order with best-fit reuse of dead blocks.
    cdef void* block_alloc(self, size_t size, bint zero) except NULL
    cdef void* block_realloc(self, void* ptr, size_t size) except NULL
    cdef void block_free(self, void* ptr) noexcept
    cdef Py_ssize_t _find_block(self, char* p) noexcept
    cdef Py_ssize_t _live_blocks_above(self, size_t offset) noexcept
    cdef void _drop_blocks_from(self, size_t offset) noexcept
    cdef void _remove_block(self, Py_ssize_t i) noexcept
    cdef int _insert_block(self, Py_ssize_t i, size_t start, size_t size, bint live) except -1

    cdef _map(self)
    cdef int _commit(self, size_t end, bint grow) except -1
    cdef long _file_size(self) except -2
    cdef int _grow_file(self, size_t upto) except -1
    cdef int _open_file(self, file) except -1
    cdef _advise_reservation(self)
    cdef _adopt_file_contents(self)
    cdef _push_frame(self, size_t start)
    cdef _Frame _readonly_frame(self, Py_ssize_t level)
    cdef void _update_limit(self)
    cdef int _check_allocatable(self) except -1
    cdef int _populate(self, char* p, size_t n) noexcept nogil
    cdef int _prepare(self, char* p, size_t n) noexcept nogil
    cdef void _uncommit(self, size_t start, size_t end) noexcept nogil
    cdef void _shrink_file(self, long old_size) noexcept nogil
    cdef object _wrap(self, char* data, int nd, cnp.npy_intp* dims, cnp.dtype descr,
                      int flags, _Frame frame)
    cdef cnp.dtype _resolve_dtype(self, object dtype)
    cdef object _new(self, object shape, object dtype, object order, object align, int fill)
    cdef void _rollback(self, size_t used, Py_ssize_t nalloc, size_t expected_used)
    cdef object _like(self, prototype, dtype, order, shape, align, int fill)
    cdef _decommit_above(self, size_t used)
    cdef _protect(self, int prot, int forbid_views, str what)


