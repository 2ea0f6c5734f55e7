# NumPy C API that numpy's own __init__.pxd leaves out: array construction over foreign
# memory, and the NEP 49 data allocation handler.
from cpython.ref cimport PyObject
from numpy cimport npy_intp, ndarray

cdef extern from "numpy/arrayobject.h":
    # Left commented out in NumPy's .pxd; takes raw pointers and steals ``descr``.
    object PyArray_NewFromDescr(void* subtype, void* descr, int nd, npy_intp* dims,
                                npy_intp* strides, void* data, int flags, void* obj)
    int PyArray_SetBaseObject(ndarray arr, object base) except -1  # steals ``base``

    # NEP 49: NumPy's data allocation handler, a PyCapsule named "mem_handler". NumPy calls
    # it without the GIL on some paths (np.fromstring's parser reallocs with threads allowed).
    ctypedef struct PyDataMemAllocator:
        void* ctx
        void* (*malloc)(void* ctx, size_t size) noexcept nogil
        void* (*calloc)(void* ctx, size_t nelem, size_t elsize) noexcept nogil
        void* (*realloc)(void* ctx, void* ptr, size_t new_size) noexcept nogil
        void (*free)(void* ctx, void* ptr, size_t size) noexcept nogil
    ctypedef struct PyDataMem_Handler:
        char name[127]
        unsigned char version
        PyDataMemAllocator allocator
    object PyDataMem_SetHandler(object handler)
    object PyDataMem_GetHandler()
    PyObject* PyDataMem_DefaultHandler  # NumPy's own handler (malloc with its bucket cache)

cdef extern from "numpy/arrayobject.h":
    # One Python value into one item's bytes, converting as ``arr[i] = value`` does.
    # Takes the descriptor as a raw pointer (the Growable passes <void*>descr).
    int PyArray_Pack(void* descr, void* item, object value) except -1
