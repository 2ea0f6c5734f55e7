# The NEP 49 block heap: the blocks NumPy allocates through the arena's handler. Stack
# order with best-fit reuse of dead blocks; it takes fresh memory from the arena's bump
# pointer (_bump) and never reaches below. Included by _core.pyx.

from libc.stdlib cimport realloc

from arena._heap cimport Block
from libc.string cimport memcpy, memmove, memset

from ._errors import ArenaFullError


cdef void* heap_alloc(Arena a, size_t size, bint zero) except NULL:
    """A block for NumPy: the best-fitting dead block, else a bump on top."""
    cdef Heap* h = &a.heap
    cdef Py_ssize_t i, best = -1
    cdef size_t need, touched = _fresh_from(a)
    cdef char* p
    _check_allocatable(a)
    if size > a.map.reserved:
        raise ArenaFullError(f"{size} bytes do not fit in the arena")
    need = round_up(size if size else 1, 64)
    for i in range(h.n):
        if not h.blocks[i].live and h.blocks[i].size >= need and \
                h.blocks[i].start >= a.view_end and \
                (best < 0 or h.blocks[i].size < h.blocks[best].size):
            best = i
    if best >= 0:
        if h.blocks[best].size - need >= 65536:  # split off what a large block spares
            _heap_insert(h, best + 1, h.blocks[best].start + need,
                         h.blocks[best].size - need, False)
            h.blocks[best].size = need
        h.blocks[best].live = True
        h.live += 1
        p = a.base + h.blocks[best].start
        if zero:
            memset(p, 0, size)
        return p
    p = _bump(a, need, 64)
    try:
        _heap_insert(h, h.n, <size_t>(p - a.base), need, True)
    except BaseException:
        a.nused = <size_t>(p - a.base)
        raise
    h.live += 1
    if zero and <size_t>(p - a.base) < touched:
        memset(p, 0, min(size, touched - <size_t>(p - a.base)))
    return p


cdef void* heap_realloc(Arena a, void* ptr, size_t size) except NULL:
    cdef Heap* h = &a.heap
    cdef Py_ssize_t i
    cdef size_t need, end
    cdef void* q
    if ptr == NULL:
        return heap_alloc(a, size, False)
    if size > a.map.reserved:
        raise ArenaFullError(f"{size} bytes do not fit in the arena")
    i = _heap_find(a, <char*>ptr)
    if i < 0:
        raise ValueError("realloc of memory the arena did not hand to NumPy")
    need = round_up(size if size else 1, 64)
    if need <= h.blocks[i].size:
        return ptr
    end = h.blocks[i].start + h.blocks[i].size
    if i == h.n - 1 and end == a.nused and h.blocks[i].start + need <= a.map.reserved:
        _check_allocatable(a)
        _commit_to(a, h.blocks[i].start + need)
        h.blocks[i].size = need
        a.nused = h.blocks[i].start + need
        a.touched = max(a.touched, a.nused)
        return ptr
    q = heap_alloc(a, size, False)
    i = _heap_find(a, <char*>ptr)
    memcpy(q, ptr, h.blocks[i].size)
    heap_free(a, ptr)
    return q


cdef void heap_free(Arena a, void* ptr) noexcept:
    cdef Heap* h = &a.heap
    cdef Py_ssize_t i = _heap_find(a, <char*>ptr)
    cdef size_t floor
    if i < 0:
        return
    h.blocks[i].live = False
    h.live -= 1
    if i + 1 < h.n and not h.blocks[i + 1].live and \
            h.blocks[i].start + h.blocks[i].size == h.blocks[i + 1].start:
        h.blocks[i].size += h.blocks[i + 1].size
        _heap_remove(h, i + 1)
    if i > 0 and not h.blocks[i - 1].live and \
            h.blocks[i - 1].start + h.blocks[i - 1].size == h.blocks[i].start:
        h.blocks[i - 1].size += h.blocks[i].size
        _heap_remove(h, i)
    if a.base == NULL:
        return
    # Pop dead blocks off the top, but never below the newest mark.
    floor = max(_top_frame(a).start, a.view_end)
    while h.n and not h.blocks[h.n - 1].live and h.blocks[h.n - 1].start >= floor and \
            h.blocks[h.n - 1].start + h.blocks[h.n - 1].size == a.nused:
        a.nused = h.blocks[h.n - 1].start
        h.n -= 1


cdef Py_ssize_t heap_live_above(Heap* h, size_t offset) noexcept:
    """Live blocks that reach past ``offset``."""
    cdef Py_ssize_t i, n = 0
    if h.live == 0:
        return 0
    i = h.n - 1
    while i >= 0 and h.blocks[i].start + h.blocks[i].size > offset:
        n += h.blocks[i].live
        i -= 1
    return n


cdef void heap_drop_from(Heap* h, size_t offset) noexcept:
    """Forget the blocks from ``offset`` up (released by a mark or reset)."""
    while h.n and h.blocks[h.n - 1].start >= offset:
        h.n -= 1
    # A dead block that reaches past ``offset`` (coalesced or grown across a mark) keeps only
    # its part below: the rest is handed out again by the bump pointer. (A live one would
    # have made the release refuse.)
    if h.n and h.blocks[h.n - 1].start + h.blocks[h.n - 1].size > offset:
        h.blocks[h.n - 1].size = offset - h.blocks[h.n - 1].start


cdef Py_ssize_t _heap_find(Arena a, char* p) noexcept:
    cdef Heap* h = &a.heap
    cdef Py_ssize_t i
    cdef size_t off
    if a.base == NULL or p < a.base:
        return -1
    off = <size_t>(p - a.base)
    i = h.n - 1
    while i >= 0:
        if h.blocks[i].start == off and h.blocks[i].live:
            return i
        i -= 1
    return -1


cdef void _heap_remove(Heap* h, Py_ssize_t i) noexcept:
    memmove(&h.blocks[i], &h.blocks[i + 1], (h.n - i - 1) * sizeof(Block))
    h.n -= 1


cdef int _heap_insert(Heap* h, Py_ssize_t i, size_t start, size_t size, bint live) except -1:
    cdef Block* grown
    if h.n == h.cap:
        grown = <Block*>realloc(h.blocks, (h.cap * 2 + 16) * sizeof(Block))
        if grown == NULL:
            raise MemoryError()
        h.blocks = grown
        h.cap = h.cap * 2 + 16
    memmove(&h.blocks[i + 1], &h.blocks[i], (h.n - i) * sizeof(Block))
    h.blocks[i].start = start
    h.blocks[i].size = size
    h.blocks[i].live = live
    h.n += 1
    return 0
