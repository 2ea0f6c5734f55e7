# NEP 49 handler: NumPy's array data comes from an arena inside ``with a.numpy_allocator():``.
# The capsule's context holds a strong reference to the arena, and NumPy keeps the capsule
# alive for as long as any array it allocated lives, so the arena outlives its blocks.
# Callbacks run with the GIL: NumPy allocates array data with it held, and the arena's
# bookkeeping is Python-level state. Included by _core.pyx.

from cpython.pycapsule cimport PyCapsule_GetPointer, PyCapsule_New
from cpython.ref cimport Py_DECREF, Py_INCREF
from libc.stdint cimport uintptr_t
from libc.stdio cimport snprintf
from libc.stdlib cimport free, malloc

from arena._npyapi cimport PyDataMem_Handler, PyDataMem_SetHandler
from arena._overflow cimport arena_mul_overflow


cdef void* _handler_malloc(void* ctx, size_t size) noexcept with gil:
    try:
        return heap_alloc(<Arena>ctx, size, False)
    except BaseException:  # NumPy turns NULL into its own MemoryError
        return NULL


cdef void* _handler_calloc(void* ctx, size_t nelem, size_t elsize) noexcept with gil:
    cdef size_t size
    if arena_mul_overflow(nelem, elsize, &size):
        return NULL
    try:
        return heap_alloc(<Arena>ctx, size, True)
    except BaseException:
        return NULL


cdef void* _handler_realloc(void* ctx, void* ptr, size_t size) noexcept with gil:
    try:
        return heap_realloc(<Arena>ctx, ptr, size)
    except BaseException:
        return NULL


cdef void _handler_free(void* ctx, void* ptr, size_t size) noexcept with gil:
    heap_free(<Arena>ctx, ptr)


cdef void _handler_destroy(object capsule) noexcept:
    cdef PyDataMem_Handler* handler = <PyDataMem_Handler*>PyCapsule_GetPointer(
        capsule, "mem_handler")
    if handler != NULL:
        Py_DECREF(<object>handler.allocator.ctx)
        free(handler)


cdef object _handler_capsule(Arena arena):
    cdef PyDataMem_Handler* handler = <PyDataMem_Handler*>malloc(sizeof(PyDataMem_Handler))
    if handler == NULL:
        raise MemoryError()
    snprintf(handler.name, sizeof(handler.name), b"arena_%zx", <size_t><uintptr_t><void*>arena)
    handler.version = 1
    handler.allocator.ctx = <void*>arena
    handler.allocator.malloc = _handler_malloc
    handler.allocator.calloc = _handler_calloc
    handler.allocator.realloc = _handler_realloc
    handler.allocator.free = _handler_free
    Py_INCREF(arena)
    try:
        return PyCapsule_New(handler, "mem_handler", _handler_destroy)
    except BaseException:
        Py_DECREF(arena)
        free(handler)
        raise


class NumpyAllocator:
    """Context manager from :meth:`Arena.numpy_allocator`; re-entrant and nestable."""

    def __init__(self, Arena arena):
        self._arena = arena
        self._saved = []

    def __enter__(self):
        if self._arena.closed:
            raise ValueError("the arena is closed")
        self._saved.append(PyDataMem_SetHandler(_handler_capsule(self._arena)))
        return self._arena

    def __exit__(self, exc_type, exc, tb):
        PyDataMem_SetHandler(self._saved.pop())
        return False
