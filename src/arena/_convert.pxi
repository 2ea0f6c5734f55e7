# Argument conversion for the allocation calls: order, align, shape, byte sizes and dtypes,
# each checked so that a size never wraps. Every one of these may run the caller's Python
# code (``__index__``, ``__len__``, ``__iter__``, a ``dtype`` property, ``__eq__``), which may
# itself allocate from the arena, reset it or close it: the allocation calls finish every
# conversion before they touch the bump pointer. Included by _core.pyx.

cimport cython
from cpython.pyport cimport PY_SSIZE_T_MAX

from arena._overflow cimport arena_mul_overflow
from arena._pyapi cimport (PyLong_CheckExact, PyObject, PyTuple_CheckExact,
                           PyUnicode_CheckExact, Py_XDECREF, Py_XINCREF)

_C = "C"  # default arguments, recognised by identity on the hot path
_K = "K"

# Dtype specs whose np.dtype() can never change: the cache may keep them (see _DtypeCache).
cdef tuple _BUILTIN_SPECS = (float, int, complex, bool, bytes, str)


cdef int _order_flag(object order) except -1:
    if order is None or order == "C" or order == "c":
        return 0
    if order == "F" or order == "f":
        return cnp.NPY_ARRAY_F_CONTIGUOUS
    raise ValueError(f"order must be 'C' or 'F', got {order!r}")


cdef size_t _check_align(object align, size_t page) except 0:
    cdef Py_ssize_t a
    if isinstance(align, bool):
        raise TypeError("align must be an integer")
    a = operator.index(align)
    if a <= 0 or (a & (a - 1)) != 0:
        raise ValueError(f"align must be a power of two, got {a}")
    if <size_t>a > page:
        raise ValueError(f"align {a} is larger than the arena's page size {page}")
    return <size_t>a


cdef object _shape_items(object shape):
    """The entries of a non-int shape, as NumPy reads them (a tuple, any sequence, or a
    0-d or 1-D integer ndarray)."""
    cdef cnp.ndarray arr
    if isinstance(shape, cnp.ndarray):
        arr = <cnp.ndarray>shape
        if (<object>arr).dtype.kind not in "iu":
            raise TypeError(f"a shape array must hold integers, not {(<object>arr).dtype}")
        if cnp.PyArray_NDIM(arr) > 1:
            raise TypeError("a shape array must be 0-d or 1-D")
        return (<object>arr).reshape(-1).tolist()
    if isinstance(shape, bool):
        raise TypeError("shape must be an int or a sequence of ints, not bool")
    if hasattr(shape, "__index__"):
        return (operator.index(shape),)
    if hasattr(shape, "__len__") and len(shape) > cnp.NPY_MAXDIMS:
        raise ValueError(f"maximum supported dimension for an ndarray is "
                         f"{cnp.NPY_MAXDIMS}, found {len(shape)}")
    try:
        return tuple(shape)
    except TypeError:
        raise TypeError(f"shape must be an int or a sequence of ints, "
                        f"not {type(shape).__name__}") from None


cdef int _parse_shape(object shape, cnp.npy_intp* dims) except -1:
    """Fill ``dims``; return the number of dimensions."""
    cdef Py_ssize_t d
    cdef int nd = 0
    if PyLong_CheckExact(shape):
        d = shape
        if d < 0:
            raise ValueError("negative dimensions are not allowed")
        dims[0] = d
        return 1
    items = shape if PyTuple_CheckExact(shape) else _shape_items(shape)
    if len(items) > cnp.NPY_MAXDIMS:
        raise ValueError(f"maximum supported dimension for an ndarray is {cnp.NPY_MAXDIMS}, "
                         f"found {len(items)}")
    for item in items:
        if PyLong_CheckExact(item):
            d = item
        elif isinstance(item, bool):
            raise TypeError("shape entries must be integers, not bool")
        else:
            d = operator.index(item)
        if d < 0:
            raise ValueError("negative dimensions are not allowed")
        if nd == cnp.NPY_MAXDIMS:  # a sequence whose length changed while it was read
            raise ValueError(f"maximum supported dimension for an ndarray is "
                             f"{cnp.NPY_MAXDIMS}")
        dims[nd] = d
        nd += 1
    return nd


cdef size_t _nbytes(int nd, cnp.npy_intp* dims, size_t itemsize) except? 0:
    cdef size_t total = itemsize
    cdef int i
    for i in range(nd):
        if arena_mul_overflow(total, <size_t>dims[i], &total):
            raise ValueError("array is too big: its byte size overflows")
    for i in range(nd):
        if dims[i] == 0:
            return 0
    if total > <size_t>PY_SSIZE_T_MAX:
        raise ValueError("array is too big: its byte size exceeds the largest array NumPy allows")
    return total


cdef enum:
    DTYPE_CACHE = 8


@cython.final
cdef class _DtypeCache:
    """The dtypes of the last few dtype specs, keyed by identity: np.dtype() costs more than
    the rest of an allocation, and a loop cycling through a handful of dtypes must not miss.
    Identity is a sound key only for specs that cannot change after the call, so only those
    are kept: exact strings, dtype instances, NumPy's scalar types and the builtin types. A
    list, dict or tuple spec (mutable, or holding mutable parts), or an object with a
    ``dtype`` attribute, is read afresh at every call."""
    cdef PyObject* keys[DTYPE_CACHE]
    cdef PyObject* vals[DTYPE_CACHE]
    cdef int next

    def __dealloc__(self):
        cdef int i
        for i in range(DTYPE_CACHE):
            Py_XDECREF(self.keys[i])
            Py_XDECREF(self.vals[i])

    cdef inline PyObject* get(self, object key) noexcept:
        cdef int i
        for i in range(DTYPE_CACHE):
            if self.keys[i] == <PyObject*>key:
                return self.vals[i]
        return NULL

    cdef void put(self, object key, cnp.dtype val) noexcept:
        cdef int i = self.next
        Py_XDECREF(self.keys[i])
        Py_XDECREF(self.vals[i])
        Py_XINCREF(<PyObject*>key)
        Py_XINCREF(<PyObject*>val)
        self.keys[i] = <PyObject*>key
        self.vals[i] = <PyObject*>val
        self.next = (i + 1) % DTYPE_CACHE


cdef inline bint _immutable_spec(object spec, cnp.dtype d):
    if (<object>d).metadata is not None:  # may hold anything, the arena included
        return False
    if PyUnicode_CheckExact(spec) or isinstance(spec, cnp.dtype):
        return True
    # A class is only as fixed as what np.dtype() reads from it: NumPy's own scalar types
    # map to themselves; any other class (say, with a ``dtype`` attribute) may change.
    return type(spec) is type and (<void*>d.typeobj == <void*>spec or spec in _BUILTIN_SPECS)


cdef cnp.dtype _resolve_dtype(Arena a, object dtype):
    """The dtype for ``dtype``: checked once (no Python objects), cached when it cannot
    change."""
    cdef _DtypeCache cache = <_DtypeCache>a.dtypes
    cdef PyObject* hit = cache.get(dtype)
    cdef cnp.dtype d
    if hit != NULL:
        return <cnp.dtype>hit
    d = <cnp.dtype>dtype if isinstance(dtype, cnp.dtype) else np.dtype(dtype)
    od = <object>d
    if od.hasobject:
        raise TypeError(f"dtype {d} holds Python objects, which cannot live in an arena")
    if d.itemsize == 0 and od.kind in "SUV":
        d = np.dtype((od.type, 1))
    if _immutable_spec(dtype, d):
        cache.put(dtype, d)
    return d
