# The Arena's own functions, private to arena._core (not part of the cimportable face): the
# allocation path (limit, checks, commit on demand, bump, ndarray construction) and the state
# changes that span the layers (decommit, protection, adopting a file's contents).
# Included by _core.pyx after the layers it uses.

from cpython.pyport cimport PY_SSIZE_T_MAX
from cpython.ref cimport Py_INCREF
from libc.string cimport memset

from arena._npyapi cimport PyArray_NewFromDescr, PyArray_SetBaseObject
from arena._overflow cimport arena_add_overflow, arena_mul_overflow
from arena._pyapi cimport (PyFloat_AS_DOUBLE, PyFloat_CheckExact, PyList_CheckExact,
                           PyLong_AsLongLongAndOverflow, PyLong_CheckExact, Py_REFCNT, PyObject,
                           PyList_GET_ITEM, PyList_GET_SIZE)

cdef void _update_limit(Arena a) noexcept:
    a.writable = a.base != NULL and (a.map.prot & RW) == RW
    if not a.writable:
        a.limit = 0
    elif a.map.shared and a.map.fd >= 0 and a.map.file_known < a.map.committed:
        a.limit = a.map.file_known  # the slow path grows the file first
    else:
        a.limit = a.map.committed
    if a.sh is not None:
        a.limit = 0  # the inline bump is not atomic: every allocation takes _shared_take


cdef int _check_open(Arena a) except -1:
    if a.base == NULL:
        raise ValueError("the arena is closed")
    return 0


cdef int _check_readable(Arena a) except -1:
    _check_open(a)
    if not (a.map.prot & PROT_READ):
        raise ValueError("the arena is not readable: no views until make_read_only() "
                         "or make_mut()")
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
    if a.sh is not None:
        _check_open(a)
        return _shared_commit(a, end)
    try:
        mapping_commit(a.map, end, (a.map.prot & PROT_WRITE) != 0 or not a.map.file_backed)
    finally:
        _update_limit(a)  # a grown file moves the limit even when the commit fails
    return 0


cdef inline size_t _fresh_from(Arena a) noexcept:
    """Offset from which the arena's bytes are known to read as zeros: only what it handed
    out before (``touched``; for a file, what the file held when opened too) can be
    dirty, unless a fork shares the mapping (mapping_fresh_from) or it is shared by several
    processes (any of which may have written any page)."""
    if a.sh is not None:
        return a.map.reserved
    return mapping_fresh_from(a.map, a.touched)


cdef char* _bump(Arena a, size_t nbytes, size_t align) except NULL:
    """Bump ``nbytes`` aligned to ``align``, committing on demand; counts no allocation
    (the arena's own arrays count in alloc_slow, the NumPy heap's blocks do not)."""
    cdef char* p = arena_bump_uncounted(a, nbytes, align)
    cdef size_t start, end
    if p != NULL:
        return p
    if a.sh is not None:
        return _shared_bump(a, nbytes, align)
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


cdef inline object _wrap(Arena a, char* data, int nd, cnp.npy_intp* dims, cnp.dtype descr,
                         int flags, object base):
    return _wrap_strided(data, nd, dims, NULL, descr, flags, base)


cdef inline object _wrap_strided(char* data, int nd, cnp.npy_intp* dims,
                                 cnp.npy_intp* strides, cnp.dtype descr, int flags,
                                 object base):
    """An ndarray over ``data`` whose base is ``base`` (a frame, or a shared arena's
    lease); ``strides`` NULL for contiguous."""
    Py_INCREF(descr)  # both calls steal a reference
    arr = PyArray_NewFromDescr(<void*>cnp.ndarray, <void*>descr, nd, dims, strides, data,
                               flags, NULL)
    Py_INCREF(base)
    PyArray_SetBaseObject(<cnp.ndarray>arr, base)
    return arr


cdef object _new(Arena a, object shape, object dtype, object order, object align, bint zero):
    """empty/zeros: every conversion first (each may run the caller's code), then one
    bump and one ndarray."""
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
    if order is not _C:  # the default object: skip the string comparison
        flags |= _order_flag(order)
    return _place(a, nd, dims, descr, nbytes, al, flags, zero)


cdef inline object _place(Arena a, int nd, cnp.npy_intp* dims, cnp.dtype descr, size_t nbytes,
                          size_t align, int flags, bint zero):
    """The allocation itself, once every argument is converted: nothing in here runs the
    caller's Python code, so nothing can allocate on top of it before its array holds its
    frame."""
    if a.sh is not None:
        return _shared_array(a, nbytes, align, nd, dims, descr, flags, zero)
    cdef size_t fresh = _fresh_from(a)
    cdef char* p = <char*>a.alloc_raw(nbytes, align)
    if zero and p - a.base < <Py_ssize_t>fresh:
        memset(p, 0, min(nbytes, fresh - <size_t>(p - a.base)))
    return _wrap(a, p, nd, dims, descr, flags, _top_frame(a))


cdef object _place_copy(Arena a, int nd, cnp.npy_intp* dims, cnp.dtype descr,
                        size_t align, int flags, object src):
    """_place, then copy ``src`` in: an array already of ``descr`` and broadcastable, or a
    builtin or NumPy scalar, cast as np.full casts it. Neither runs Python code, so should
    the copy fail (a scalar out of the dtype's range), the bytes are provably the call's own
    and go back, unless a view reached past them meanwhile."""
    cdef size_t used = a.nused, end
    cdef Py_ssize_t nalloc = a.nalloc
    out = _place(a, nd, dims, descr, _nbytes(nd, dims, descr.itemsize), align, flags, False)
    end = a.nused
    try:
        if isinstance(src, cnp.ndarray):
            cnp.PyArray_CopyInto(<cnp.ndarray>out, <cnp.ndarray>src)
        else:
            np.copyto(out, src, casting="unsafe")
    except BaseException:
        if Py_REFCNT(<PyObject*>out) == 1 and a.nused == end and a.view_end <= used:
            del out
            if a.sh is not None:
                _shared_rollback(a, end)
            else:
                a.nused = used
                a.nalloc = nalloc
        raise
    return out


cdef object _full(Arena a, shape, fill_value, dtype, order, align):
    """full(): a fill value that may run Python code when converted (anything but a builtin
    or NumPy scalar) is converted to the dtype before the bump, into a small array of its
    own shape; a scalar is cast straight into the new array, as np.full does."""
    cdef cnp.npy_intp dims[64]
    cdef int nd = _parse_shape(shape, dims)
    cdef cnp.dtype descr
    if dtype is None:
        val = fill_value if isinstance(fill_value, cnp.ndarray) else np.asarray(fill_value)
        descr = _resolve_dtype(a, val.dtype)
    else:
        descr = _resolve_dtype(a, dtype)
        if type(fill_value) in _SCALARS or isinstance(fill_value, np.generic):
            val = fill_value
        else:
            src = fill_value if isinstance(fill_value, cnp.ndarray) else np.asarray(fill_value)
            val = np.empty(src.shape, descr)
            np.copyto(val, src, casting="unsafe")
    cdef size_t al = a.align if align is None else _check_align(align, a.page)
    cdef int flags = cnp.NPY_ARRAY_WRITEABLE | _order_flag(order)
    if isinstance(val, cnp.ndarray):
        _check_broadcast(<cnp.ndarray>val, nd, dims)
    return _place_copy(a, nd, dims, descr, al, flags, val)


cdef tuple _SCALARS = (float, int, bool, complex)


cdef int _check_broadcast(cnp.ndarray val, int nd, cnp.npy_intp* dims) except -1:
    if cnp.PyArray_NDIM(val) == 0:
        return 0
    shape = tuple([dims[i] for i in range(nd)])
    vshape = (<object>val).shape
    if np.broadcast_shapes(vshape, shape) != shape:
        raise ValueError(f"could not broadcast fill_value of shape {vshape} into an array "
                         f"of shape {shape}")
    return 0


cdef cnp.dtype _F8 = np.dtype(np.float64)
cdef cnp.dtype _I8 = np.dtype(np.int64)


cdef object _array_from_list(Arena a, list obj, cnp.dtype want, size_t align):
    """array() of a flat list of Python floats (or ints that fit an int64): NumPy's own
    discovery costs more than the whole allocation, and this is the common literal. Returns
    None for anything else. The scan runs no Python code, so the list cannot change
    between it and the copy."""
    cdef Py_ssize_t i, n = PyList_GET_SIZE(obj)
    cdef PyObject* item
    cdef bint floats = True, ints = True
    cdef int overflow
    cdef cnp.npy_intp dims[1]
    if n == 0:
        return None
    for i in range(n):
        item = PyList_GET_ITEM(obj, i)
        if PyFloat_CheckExact(<object>item):
            ints = False
        elif PyLong_CheckExact(<object>item):
            floats = False
            PyLong_AsLongLongAndOverflow(item, &overflow)
            if overflow:
                return None
        else:
            return None
        if not floats and not ints:
            return None
    descr = _F8 if floats else _I8
    if want is not None and want is not descr:
        return None
    dims[0] = n
    out = _place(a, 1, dims, descr, <size_t>n * 8, align, cnp.NPY_ARRAY_WRITEABLE, False)
    cdef double* f = <double*>cnp.PyArray_DATA(<cnp.ndarray>out)
    cdef long long* q = <long long*>f
    if PyList_GET_SIZE(obj) != n:
        raise RuntimeError("the list changed while it was copied")
    for i in range(n):
        item = PyList_GET_ITEM(obj, i)
        if floats and PyFloat_CheckExact(<object>item):
            f[i] = PyFloat_AS_DOUBLE(item)
        elif not floats and PyLong_CheckExact(<object>item):
            q[i] = PyLong_AsLongLongAndOverflow(item, &overflow)
        else:
            raise RuntimeError("the list changed while it was copied")
    return out


cdef object _array(Arena a, obj, dtype, copy, order, ndmin, align):
    """array(): NumPy's conversion of ``obj`` first (it may run the caller's code:
    ``__array__``, ``__float__``, sequences), then one bump and a copy that runs none."""
    cdef cnp.npy_intp dims[64]
    cdef cnp.dtype descr = None
    cdef cnp.ndarray src
    cdef int k, nd, i
    cdef int flags = cnp.NPY_ARRAY_WRITEABLE
    if order is not _K:  # the default object: skip the checks
        if order is None:
            order = _K
        if not isinstance(order, str) or order.upper() not in ("K", "A", "C", "F"):
            raise ValueError(f"order must be one of 'K', 'A', 'C', 'F', got {order!r}")
        order = order.upper()
    if PyLong_CheckExact(ndmin):
        k = ndmin
    elif isinstance(ndmin, bool):
        raise TypeError("ndmin must be an integer")
    else:
        k = operator.index(ndmin)
    if k < 0 or k > cnp.NPY_MAXDIMS:
        raise ValueError(f"ndmin must be in [0, {cnp.NPY_MAXDIMS}], got {k}")
    cdef size_t al = a.align if align is None else _check_align(align, a.page)
    if dtype is not None:
        descr = _resolve_dtype(a, dtype)
    if copy is not True and copy is not None and copy:  # 1, np.True_, ...: a copy
        copy = True
    if copy is not True:
        same = _in_place(a, obj, descr, order, k)
        if same is not None:
            return same
        if copy is not None:
            raise ValueError("array(copy=False): a copy is needed to put the data in the "
                             "arena; pass copy=None to copy only when needed")
    if k <= 1 and PyList_CheckExact(obj):
        out = _array_from_list(a, <list>obj, descr, al)
        if out is not None:
            return out
    src = np.asarray(obj, dtype=descr, order="C" if order == "C" else
                     "F" if order == "F" else "K")
    descr = _resolve_dtype(a, src.dtype)
    nd = cnp.PyArray_NDIM(src)
    k = max(k - nd, 0)
    for i in range(k):
        dims[i] = 1
    for i in range(nd):
        dims[k + i] = cnp.PyArray_DIMS(src)[i]
    if order == "F" or (order in ("K", "A") and cnp.PyArray_IS_F_CONTIGUOUS(src) and
                        not cnp.PyArray_IS_C_CONTIGUOUS(src)):
        flags |= cnp.NPY_ARRAY_F_CONTIGUOUS
    return _place_copy(a, k + nd, dims, descr, al, flags, src)


cdef object _in_place(Arena a, obj, cnp.dtype descr, str order, int ndmin):
    """``obj`` itself (or a view with ``ndmin`` dimensions) when it already is an array in
    this arena of the asked dtype and order: array(copy=None/False) needs no copy then."""
    cdef cnp.ndarray x
    cdef size_t p
    if not isinstance(obj, cnp.ndarray) or a.base == NULL:
        return None
    x = <cnp.ndarray>obj
    p = <size_t><uintptr_t>cnp.PyArray_DATA(x)
    if p < <size_t><uintptr_t>a.base or p - <size_t><uintptr_t>a.base >= a.map.reserved:
        return None
    if descr is not None and not np.can_cast((<object>x).dtype, descr, casting="equiv"):
        return None
    if (order == "C" and not cnp.PyArray_IS_C_CONTIGUOUS(x)) or \
            (order == "F" and not cnp.PyArray_IS_F_CONTIGUOUS(x)):
        return None
    if cnp.PyArray_NDIM(x) >= ndmin:
        return x
    return (<object>x).reshape((1,) * (ndmin - cnp.PyArray_NDIM(x)) + (<object>x).shape)


cdef object _like(Arena a, prototype, dtype, order, subok, shape, align, bint zero):
    cdef cnp.ndarray proto
    if not isinstance(prototype, cnp.ndarray):
        prototype = np.asarray(prototype)
    proto = <cnp.ndarray>prototype
    if order is None or order == "K" or order == "A" or order == "k" or order == "a":
        fortran = cnp.PyArray_IS_F_CONTIGUOUS(proto) and not cnp.PyArray_IS_C_CONTIGUOUS(proto)
        order = "F" if fortran else "C"
    return _new(a, (<object>proto).shape if shape is None else shape,
                (<object>proto).dtype if dtype is None else dtype, order, align, zero)


cdef object _view(Arena a, offset, shape, dtype, order):
    """Arena.view: every conversion first, then the checks against the arena as it is after
    them (they may run code that allocates, resets or closes it)."""
    cdef cnp.npy_intp dims[64]
    cdef Py_ssize_t off, level
    cdef size_t nbytes, end, last
    cdef int flags
    _check_readable(a)
    if isinstance(offset, bool):
        raise TypeError("offset must be an integer")
    off = operator.index(offset)
    if off < 0:
        raise ValueError(f"offset must be >= 0, got {off}")
    nd = _parse_shape(shape, dims)
    descr = _resolve_dtype(a, dtype)
    nbytes = _nbytes(nd, dims, descr.itemsize)
    flags = _order_flag(order)
    if a.base != NULL and not (a.map.prot & PROT_WRITE):
        _make_readonly_frames(a)
    _check_readable(a)  # again: the conversions may have run code that closed it
    if arena_add_overflow(<size_t>off, nbytes, &end) or end > _used(a) or \
            <size_t>off > _used(a):
        raise ValueError(f"view of {nbytes} bytes at offset {off} reaches past the "
                         f"{_used(a)} bytes in use")
    last = end - 1 if nbytes else <size_t>off
    if end > a.view_end:
        a.view_end = end  # NumPy-handler blocks below it are never handed out again
    level = PyList_GET_SIZE(a.frames_rw) - 1
    while level > 0 and (<_Frame>a.frames_rw[level]).start > last:
        level -= 1
    if a.map.prot & PROT_WRITE:
        frame = a.frames_rw[level]
        flags |= cnp.NPY_ARRAY_WRITEABLE
    else:
        frame = _readonly_frame(a, level)
    return _wrap(a, a.base + off, nd, dims, descr, flags, _view_base(a, frame, off, end))


cdef int _decommit_above(Arena a, size_t used) except -1:
    if a.sh is not None:
        return _shared_decommit(a, used)
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


cdef int _arena_init(Arena a, size_or_options, protection) except -1:
    """Arena.__cinit__: options, checks, the reservation, the first mark level."""
    a.base = NULL
    a.dtypes = _DtypeCache()
    a.frames_rw = []
    a.frames_ro = []
    if isinstance(size_or_options, ArenaOptions):
        options = size_or_options
    elif not isinstance(size_or_options, bool) and hasattr(size_or_options, "__index__"):
        options = ArenaOptions(size_or_options)  # int, numpy integers: validated there
    else:
        raise TypeError("Arena() takes a size in bytes or an ArenaOptions, "
                        f"not {type(size_or_options).__name__}")
    if not isinstance(protection, Protection):
        raise TypeError("protection must be a Protection")
    a.opts = options
    prot = int(protection)
    if (prot & PROT_WRITE) and (prot & PROT_EXEC) and \
            UnsafeFlags.JIT not in options.unsafe_flags:
        raise PermissionError("writable and executable pages need UnsafeFlags.JIT (W^X)")
    a.page = options.page_size
    a.align = options.alignment
    a.region = _Region()
    a.map = &a.region.m
    _reserve(a, options, prot)
    a.base = a.map.base
    heap_init(a, options)
    _push_this_frame(a, _shared_base_frame(a), 0)
    if a.map.file_backed:
        _adopt_file_contents(a)
    _update_limit(a)
    return 0


cdef dict _stats(Arena a):
    """Arena.stats()."""
    d = {
        "address": a.address,
        "reserved": a.map.reserved,
        "committed": a.map.committed,
        "used": a.nused,
        "available": a.map.reserved - a.nused,
        "high_water": a.high_water,
        "num_allocations": a.nalloc,
        "live_views": _views_since(a, 0, False),
        "levels": PyList_GET_SIZE(a.frames_rw),
        "page_size": a.page,
        "commit_step": a.map.step,
        "protection": Protection(a.map.prot),
    }
    if a.sh is not None:
        _shared_stats(a, d)  # the arena-wide figures, and the processes that hold it
    return d


cdef str _repr(Arena a):
    """Arena.__repr__()."""
    if a.base == NULL:
        return "<arena.Arena closed>"
    flags = f" flags={Flags(a.map.flags)!r}" if a.map.flags else ""
    b = format_bytes
    return (f"<arena.Arena at {a.address:#x} used={b(a.used)} "
            f"committed={b(a.committed)} reserved={b(a.map.reserved)} "
            f"allocations={a.num_allocations} live_views={_views_since(a, 0, False)} "
            f"levels={PyList_GET_SIZE(a.frames_rw)} page={b(a.page)} "
            f"protection={Protection(a.map.prot).name}{flags}>")
