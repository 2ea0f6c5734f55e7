# NEP 49 handler: NumPy's array data comes from an arena inside ``with a.numpy_allocator():``.
#
# The callbacks are C. Requests below the arena's small threshold go straight to NumPy's own
# handler (malloc with its bucket cache: nothing is faster for tiny arrays), the rest to the
# heap; ``free`` and ``realloc`` tell the two apart by address, and a small block NumPy grows
# past the threshold moves into the arena. The heap's state is guarded by the GIL. NumPy
# holds it for most calls but not all (np.fromstring's parser reallocs with threads
# allowed), so the callbacks are nogil and take the GIL unless PyGILState_Check says this
# thread has it: the common case then costs a check instead of PyGILState_Ensure/Release.
# Every SMALL_CHECK (64) small requests, a pending purge gets its chance to run, so that
# memory is given back even when the only NumPy calls left are small ones.
#
# The capsule's context holds a strong reference to the arena, and NumPy keeps the capsule
# alive for as long as any array it allocated lives, so the arena outlives its blocks.
# Included by _core.pyx.

from cpython.exc cimport PyErr_Clear
from cpython.pycapsule cimport PyCapsule_GetPointer, PyCapsule_New
from cpython.ref cimport Py_DECREF, Py_INCREF, PyObject
from libc.stdint cimport uintptr_t
from libc.stdio cimport snprintf
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

from arena._npyapi cimport (PyDataMem_DefaultHandler, PyDataMem_GetHandler, PyDataMem_Handler,
                            PyDataMemAllocator, PyDataMem_SetHandler)
from arena._overflow cimport arena_mul_overflow
from arena._pyapi cimport PyGILState_Check

cdef enum:
    SMALL_CHECK = 64
    # A small block from NumPy's allocator carries its size in a header (keeping malloc's
    # 16-byte alignment): when NumPy grows it past the threshold (np.fromiter and
    # ndarray.resize start small), realloc moves it into the arena and must know what to copy.
    SMALL_HEADER = 16

ctypedef struct HandlerCtx:
    PyObject* arena             # a strong reference
    Heap* heap                  # &arena.heap
    char** base                 # &arena.base: NULL once the arena is closed
    size_t reserved
    size_t small                # requests below this go to NumPy's own handler
    unsigned int countdown      # small requests until the next look at pending purges
    PyDataMemAllocator* numpy   # NumPy's own handler


# -- the heap's side, with the GIL held ------------------------------------------------------

# heap_alloc and heap_realloc raise on failure; called through these types they just return
# NULL with the error set, which the callback clears (NumPy raises its own MemoryError): no
# try/except, whose exception-state bookkeeping cost more than the heap's work.
ctypedef void* (*HeapAlloc)(Arena, size_t, bint) noexcept
ctypedef void* (*HeapRealloc)(Arena, void*, size_t) noexcept
cdef HeapAlloc heap_alloc_or_null = <HeapAlloc>heap_alloc
cdef HeapRealloc heap_realloc_or_null = <HeapRealloc>heap_realloc


cdef void* _held_alloc(HandlerCtx* c, size_t size, bint zero) noexcept:
    cdef void* p = heap_alloc_or_null(<Arena>c.arena, size, zero)
    if p == NULL:
        PyErr_Clear()
    return p


cdef void* _held_realloc(HandlerCtx* c, void* ptr, size_t size) noexcept:
    cdef void* p = heap_realloc_or_null(<Arena>c.arena, ptr, size)
    if p == NULL:
        PyErr_Clear()
    return p


cdef void* _held_free(HandlerCtx* c, void* ptr, size_t size) noexcept:
    heap_free(<Arena>c.arena, ptr)
    return NULL


cdef void* _held_tick(HandlerCtx* c, void* ptr, size_t size) noexcept:
    if heap_purge_pending(c.heap):
        heap_tick(<Arena>c.arena)
    return NULL


# The same functions typed as callable without the GIL: only called after PyGILState_Check.
ctypedef void* (*AllocHeld)(HandlerCtx*, size_t, bint) noexcept nogil
ctypedef void* (*PtrHeld)(HandlerCtx*, void*, size_t) noexcept nogil
cdef AllocHeld alloc_held = <AllocHeld>_held_alloc
cdef PtrHeld realloc_held = <PtrHeld>_held_realloc
cdef PtrHeld free_held = <PtrHeld>_held_free
cdef PtrHeld tick_held = <PtrHeld>_held_tick


cdef inline void* _heap_alloc(HandlerCtx* c, size_t size, bint zero) noexcept nogil:
    if PyGILState_Check():
        return alloc_held(c, size, zero)
    with gil:
        return _held_alloc(c, size, zero)


cdef inline void* _with_gil(PtrHeld held, HandlerCtx* c, void* ptr, size_t size) noexcept nogil:
    if PyGILState_Check():
        return held(c, ptr, size)
    with gil:
        return held(c, ptr, size)


# -- NumPy's side: small blocks with a size header -----------------------------------------

cdef inline bint _ours(HandlerCtx* c, void* ptr) noexcept nogil:
    return c.base[0] != NULL and <char*>ptr >= c.base[0] and <char*>ptr < c.base[0] + c.reserved


cdef inline void* _small_malloc(HandlerCtx* c, size_t size, bint zero) noexcept nogil:
    cdef char* p
    c.countdown -= 1
    if c.countdown == 0:
        c.countdown = SMALL_CHECK
        _with_gil(tick_held, c, NULL, 0)
    if zero:
        p = <char*>c.numpy.calloc(c.numpy.ctx, 1, size + SMALL_HEADER)
    else:
        p = <char*>c.numpy.malloc(c.numpy.ctx, size + SMALL_HEADER)
    if p == NULL:
        return NULL
    (<size_t*>p)[0] = size
    return p + SMALL_HEADER


cdef inline void _small_free(HandlerCtx* c, void* ptr) noexcept nogil:
    cdef char* p = <char*>ptr - SMALL_HEADER
    c.numpy.free(c.numpy.ctx, p, (<size_t*>p)[0] + SMALL_HEADER)


# -- the callbacks ---------------------------------------------------------------------------

cdef void* _handler_malloc(void* ctx, size_t size) noexcept nogil:
    cdef HandlerCtx* c = <HandlerCtx*>ctx
    if size < c.small:
        return _small_malloc(c, size, False)
    return _heap_alloc(c, size, False)


cdef void* _handler_calloc(void* ctx, size_t nelem, size_t elsize) noexcept nogil:
    cdef HandlerCtx* c = <HandlerCtx*>ctx
    cdef size_t size
    if arena_mul_overflow(nelem, elsize, &size):
        return NULL
    if size < c.small:
        return _small_malloc(c, size, True)
    return _heap_alloc(c, size, True)


cdef void* _handler_realloc(void* ctx, void* ptr, size_t size) noexcept nogil:
    cdef HandlerCtx* c = <HandlerCtx*>ctx
    cdef char* p
    cdef void* q
    cdef size_t old
    if ptr == NULL:
        return _handler_malloc(ctx, size)
    if _ours(c, ptr):
        return _with_gil(realloc_held, c, ptr, size)
    p = <char*>ptr - SMALL_HEADER
    old = (<size_t*>p)[0]
    if size < c.small:  # stays small
        p = <char*>c.numpy.realloc(c.numpy.ctx, p, size + SMALL_HEADER)
        if p == NULL:
            return NULL
        (<size_t*>p)[0] = size
        return p + SMALL_HEADER
    q = _heap_alloc(c, size, False)  # grown past the threshold: into the arena
    if q == NULL:  # the arena cannot (closed, read-only, full): it stays NumPy's
        p = <char*>c.numpy.realloc(c.numpy.ctx, p, size + SMALL_HEADER)
        if p == NULL:
            return NULL
        (<size_t*>p)[0] = size
        return p + SMALL_HEADER
    memcpy(q, ptr, old)
    _small_free(c, ptr)
    return q


cdef void _handler_free(void* ctx, void* ptr, size_t size) noexcept nogil:
    cdef HandlerCtx* c = <HandlerCtx*>ctx
    if _ours(c, ptr):
        _with_gil(free_held, c, ptr, size)
    elif ptr != NULL:
        _small_free(c, ptr)


cdef void _handler_destroy(object capsule) noexcept:
    cdef PyDataMem_Handler* handler = <PyDataMem_Handler*>PyCapsule_GetPointer(
        capsule, "mem_handler")
    cdef HandlerCtx* c
    if handler != NULL:
        c = <HandlerCtx*>handler.allocator.ctx
        Py_DECREF(<object>c.arena)
        free(c)
        free(handler)


cdef object _handler_capsule(Arena arena):
    cdef PyDataMem_Handler* numpy = <PyDataMem_Handler*>PyCapsule_GetPointer(
        <object>PyDataMem_DefaultHandler, "mem_handler")
    cdef PyDataMem_Handler* handler = <PyDataMem_Handler*>malloc(sizeof(PyDataMem_Handler))
    cdef HandlerCtx* c = <HandlerCtx*>malloc(sizeof(HandlerCtx))
    if handler == NULL or c == NULL:
        free(handler)
        free(c)
        raise MemoryError()
    c.arena = <PyObject*>arena
    c.heap = &arena.heap
    c.countdown = SMALL_CHECK
    c.base = &arena.base
    c.reserved = arena.map.reserved
    c.small = arena.heap.small
    c.numpy = &numpy.allocator
    snprintf(handler.name, sizeof(handler.name), b"arena_%zx", <size_t><uintptr_t><void*>arena)
    handler.version = 1
    handler.allocator.ctx = c
    handler.allocator.malloc = _handler_malloc
    handler.allocator.calloc = _handler_calloc
    handler.allocator.realloc = _handler_realloc
    handler.allocator.free = _handler_free
    Py_INCREF(arena)
    try:
        return PyCapsule_New(handler, "mem_handler", _handler_destroy)
    except BaseException:
        Py_DECREF(arena)
        free(c)
        free(handler)
        raise


class NumpyAllocator:
    """Context manager from :meth:`Arena.numpy_allocator`; re-entrant and nestable.

    Blocks end in the order they began, in the context that began them: an exit that finds
    another handler installed (two blocks held open by generators and ended out of order, or
    a generator suspended in the block and finished in another thread) raises RuntimeError
    and leaves NumPy's handler alone, rather than put back a handler that is not its own.
    """

    def __init__(self, Arena arena):
        self._arena = arena
        self._saved = []  # (the handler before, ours), one pair per entry

    def __enter__(self):
        _check_numpy_allocatable(self._arena)
        ours = _handler_capsule(self._arena)
        self._saved.append((PyDataMem_SetHandler(ours), ours))
        return self._arena

    def __exit__(self, exc_type, exc, tb):
        before, ours = self._saved.pop()
        if PyDataMem_GetHandler() is not ours:
            raise RuntimeError("numpy_allocator() blocks must end in the order they began, "
                               "in the thread (context) that began them")
        PyDataMem_SetHandler(before)
        _purge_due(self._arena)
        return False


cdef int _purge_due(Arena a) except -1:
    """At the end of a block, what has waited the purge delay goes back (no later call may
    come to do it); what was freed recently stays for the next block."""
    if a.base != NULL and heap_purge_pending(&a.heap) and a.heap.purge_delay_ns != UINT64_MAX:
        heap_purge(a, False, coarse_ns(), -1)
    return 0


cdef int _check_numpy_allocatable(Arena a) except -1:
    """Refuse to enter the block where every NumPy call would fail, saying why."""
    if a.base == NULL:
        raise ValueError("numpy_allocator() on a closed arena")
    if (a.map.prot & RW) != RW:
        raise ValueError(f"numpy_allocator() needs a readable and writable arena; its "
                         f"protection is {Protection(a.map.prot)!r} (make_mut() first)")
    return 0
