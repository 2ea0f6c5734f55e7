# The Arena's own functions, private to arena._core (not part of the cimportable face): the
# allocation path (limit, checks, commit on demand, bump, ndarray construction) and the state
# changes that span the layers (decommit, protection, adopting a file's contents).
# Included by _core.pyx after the layers it uses.

from cpython.pyport cimport PY_SSIZE_T_MAX
from cpython.ref cimport Py_INCREF
from libc.string cimport memset

from arena._npyapi cimport PyArray_NewFromDescr, PyArray_SetBaseObject
from arena._overflow cimport arena_mul_overflow
from arena._pyapi cimport PyLong_CheckExact

cdef void _update_limit(Arena a) noexcept:
    a.writable = a.base != NULL and (a.map.prot & RW) == RW
    if not a.writable:
        a.limit = 0
    elif a.map.shared and a.map.fd >= 0 and a.map.file_known < a.map.committed:
        a.limit = a.map.file_known  # the slow path grows the file first
    else:
        a.limit = a.map.committed


cdef int _check_open(Arena a) except -1:
    if a.base == NULL:
        raise ValueError("the arena is closed")
    return 0


cdef int _check_allocatable(Arena a) except -1:
    _check_open(a)
    if not (a.map.prot & PROT_READ):
        raise ValueError("the arena is not readable (protection "
                         f"{Protection(a.map.prot)!r}): no allocations until make_mut()")
    if not (a.map.prot & PROT_WRITE):
        raise ValueError("the arena is not writable (protection "
                         f"{Protection(a.map.prot)!r}): no allocations until make_mut()")
    return 0


cdef int _commit_to(Arena a, size_t end) except -1:
    """Make sure ``[0, end)`` is committed (and, for a writable file, that the file covers
    it); on failure nothing changes."""
    # A read-only arena never grows a user's file; its own memfd (Flags.SHARED without a
    # file) is not the user's, and grows whatever the protection.
    try:
        mapping_commit(a.map, end, (a.map.prot & PROT_WRITE) != 0 or not a.map.file_backed)
    finally:
        _update_limit(a)  # a grown file moves the limit even when the commit fails
    return 0


cdef inline size_t _fresh_from(Arena a) noexcept:
    """Offset from which the arena's bytes are known to read as zeros: only what it handed
    out before (``touched``; for a file, what the file held when opened too) can be
    dirty, unless a fork shares the mapping (mapping_fresh_from)."""
    return mapping_fresh_from(a.map, a.touched)


cdef char* _bump(Arena a, size_t nbytes, size_t align) except NULL:
    """Bump ``nbytes`` aligned to ``align``, committing on demand; counts no allocation
    (the arena's own arrays count in alloc_slow, the NumPy heap's blocks do not)."""
    cdef char* p = arena_bump_uncounted(a, nbytes, align)
    cdef size_t start, end
    if p != NULL:
        return p
    _check_allocatable(a)
    if align == 0 or (align & (align - 1)) != 0 or align > a.page:
        raise ValueError(f"align must be a power of two up to {a.page}, got {align}")
    start = round_up(a.nused, align)
    if start > a.map.reserved or nbytes > a.map.reserved - start:
        raise ArenaFullError(f"allocation of {nbytes} bytes does not fit: "
                             f"{a.map.reserved - min(start, a.map.reserved)} of "
                             f"{a.map.reserved} bytes left")
    end = start + nbytes
    _commit_to(a, end)
    a.nused = end
    if end > a.touched:
        a.touched = end
    return a.base + start


cdef object _wrap(Arena a, char* data, int nd, cnp.npy_intp* dims, cnp.dtype descr,
                  int flags, _Frame frame):
    Py_INCREF(descr)  # both calls steal a reference
    arr = PyArray_NewFromDescr(<void*>cnp.ndarray, <void*>descr, nd, dims, NULL, data,
                               flags, NULL)
    Py_INCREF(frame)
    PyArray_SetBaseObject(<cnp.ndarray>arr, frame)
    return arr


cdef object _new(Arena a, object shape, object dtype, object order, object align, bint zero):
    """empty/zeros: one bump, one ndarray; ``zero`` clears what may be dirty."""
    cdef cnp.npy_intp dims[64]
    cdef Py_ssize_t d
    cdef int nd
    cdef cnp.dtype descr
    cdef size_t nbytes
    if PyLong_CheckExact(shape):  # the common 1-D case, without a call
        d = shape
        if d < 0:
            raise ValueError("negative dimensions are not allowed")
        dims[0] = d
        nd = 1
        descr = _resolve_dtype(a, dtype)
        if arena_mul_overflow(<size_t>descr.itemsize, <size_t>d, &nbytes) or \
                nbytes > <size_t>PY_SSIZE_T_MAX:
            raise ValueError("array is too big: its byte size overflows")
    else:
        nd = _parse_shape(shape, dims)
        descr = _resolve_dtype(a, dtype)
        nbytes = _nbytes(nd, dims, descr.itemsize)
    cdef size_t al = a.align if align is None else _check_align(align, a.page)
    cdef int flags = cnp.NPY_ARRAY_WRITEABLE
    cdef size_t fresh = _fresh_from(a)
    cdef char* p
    if order is not _C:  # the default object: skip the string comparison
        flags |= _order_flag(order)
    p = <char*>a.alloc_raw(nbytes, al)
    if zero and p - a.base < <Py_ssize_t>fresh:
        memset(p, 0, min(nbytes, fresh - <size_t>(p - a.base)))
    return _wrap(a, p, nd, dims, descr, flags, _top_frame(a))


cdef void _rollback(Arena a, size_t used, Py_ssize_t nalloc, size_t expected_used) noexcept:
    if a.nused == expected_used and a.view_end <= used:
        a.nused = used
        a.nalloc = nalloc


cdef object _like(Arena a, prototype, dtype, order, shape, align, bint zero):
    cdef cnp.ndarray proto
    if not isinstance(prototype, cnp.ndarray):
        prototype = np.asarray(prototype)
    proto = <cnp.ndarray>prototype
    if order == "K" or order == "A" or order == "k" or order == "a":
        fortran = cnp.PyArray_IS_F_CONTIGUOUS(proto) and not cnp.PyArray_IS_C_CONTIGUOUS(proto)
        order = "F" if fortran else "C"
    return _new(a, (<object>proto).shape if shape is None else shape,
                (<object>proto).dtype if dtype is None else dtype, order, align, zero)


cdef int _decommit_above(Arena a, size_t used) except -1:
    cdef size_t keep = round_up(used, a.page)
    if keep >= a.map.committed:
        return 0
    mapping_decommit_from(a.map, keep)
    a.high_water_before = max(a.high_water_before, a.touched)
    if not a.map.file_backed and a.touched > keep:
        a.touched = max(keep, used)
    _update_limit(a)
    return 0


cdef int _protect(Arena a, int prot, ViewRule rule, str what) except -1:
    """Change the protection of the committed range, refusing while views ``rule`` forbids
    are alive."""
    cdef Py_ssize_t live
    _check_open(a)
    if (prot & PROT_WRITE) and (prot & PROT_EXEC) and \
            UnsafeFlags.JIT not in a.opts.unsafe_flags:
        raise PermissionError("writable and executable pages need UnsafeFlags.JIT (W^X)")
    if rule != ANY_VIEWS:
        live = _views_since(a, 0, rule == NO_WRITABLE_VIEWS)
        if live:
            kind = "writable view(s)" if rule == NO_WRITABLE_VIEWS else "view(s)"
            raise BufferError(f"cannot {what}: {live} {kind} still alive")
    try:
        mapping_protect(a.map, prot, what)
    finally:
        _update_limit(a)
    return 0


cdef int _adopt_file_contents(Arena a) except -1:
    """What the file already holds (past the offset) counts as used: never handed out."""
    cdef size_t size = <size_t>mapping_file_size(a.map)
    if size > a.map.file_offset:
        a.map.file_known = size - a.map.file_offset
        a.nused = min(a.map.file_known, a.map.reserved)
        a.touched = a.nused
        mapping_commit(a.map, a.nused, False)  # opening a file never changes it
    return 0
