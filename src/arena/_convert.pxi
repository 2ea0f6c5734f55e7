# Argument conversion for the allocation calls: order, align, shape, byte sizes and dtypes,
# each checked so that a size never wraps. Included by _core.pyx.

from cpython.pyport cimport PY_SSIZE_T_MAX

from arena._overflow cimport arena_mul_overflow
from arena._pyapi cimport PyLong_CheckExact, PyTuple_CheckExact

_C = "C"


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
    if PyTuple_CheckExact(shape):
        items = shape
    elif isinstance(shape, bool):
        raise TypeError("shape must be an int or a sequence of ints, not bool")
    elif hasattr(shape, "__index__"):
        d = operator.index(shape)
        if d < 0:
            raise ValueError("negative dimensions are not allowed")
        dims[0] = d
        return 1
    else:
        if hasattr(shape, "__len__") and len(shape) > cnp.NPY_MAXDIMS:
            raise ValueError(f"maximum supported dimension for an ndarray is "
                             f"{cnp.NPY_MAXDIMS}, found {len(shape)}")
        try:
            items = tuple(shape)
        except TypeError:
            raise TypeError(f"shape must be an int or a sequence of ints, "
                            f"not {type(shape).__name__}") from None
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


cdef cnp.dtype _resolve_dtype(Arena a, object dtype):
    """The dtype for ``dtype``, from a two-entry cache keyed by identity: simulations use
    one or two dtypes, and np.dtype() costs more than the rest of an allocation."""
    cdef cnp.dtype d
    if dtype is a.dtype_key:
        return <cnp.dtype>a.dtype_val
    if dtype is a.dtype_key2:
        a.dtype_key, a.dtype_key2 = a.dtype_key2, a.dtype_key
        a.dtype_val, a.dtype_val2 = a.dtype_val2, a.dtype_val
        return <cnp.dtype>a.dtype_val
    d = <cnp.dtype>dtype if isinstance(dtype, cnp.dtype) else np.dtype(dtype)
    od = <object>d
    if od.hasobject:
        raise TypeError(f"dtype {d} holds Python objects, which cannot live in an arena")
    if d.itemsize == 0 and od.kind in "SUV":
        d = np.dtype((od.type, 1))
    a.dtype_key2, a.dtype_val2 = a.dtype_key, a.dtype_val
    a.dtype_key, a.dtype_val = dtype, d
    return d
