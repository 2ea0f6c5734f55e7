# The NEP 49 heap: the blocks NumPy allocates through the arena's handler, freed in any order.
#
# A real allocator (anchors: TLSF, mimalloc, jemalloc): O(1) malloc and free whatever the
# number of live blocks.
# - Records out of band, in a pool, found through a hash table by a block's start; blocks that
#   touch (no arena array between them) are linked, so neighbours are found without a search.
# - Free blocks in two-level segregated free lists (8 classes per power of two, bitmaps to
#   find the first non-empty one): a good fit in O(1), split whenever the rest is a block.
# - A freed block merges with free neighbours at once; one that ends at the bump pointer goes
#   back to it.
# - Purge: blocks free for longer than the purge delay give their whole pages back
#   (MADV_DONTNEED), lazily from the allocator's own calls, oldest first; a steady loop that
#   reuses its temporaries sooner never has them purged. Blocks of PURGE_AT_ONCE and more
#   go back as soon as they are freed.
# Blocks under a live view() (below view_end) are never handed out again: pinned lazily when
# a search meets them. Fresh memory comes from the arena's bump pointer (_bump), never below
# the newest mark. In a shared arena, blocks are never given back to the bump, and kept ones
# are taken back before reuse after the heap was idle (_shared_heap.pxi). Included by
# _core.pyx.

from libc.stdint cimport int32_t, uint64_t, uint8_t, UINT64_MAX
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy, memset
from posix.time cimport CLOCK_MONOTONIC_COARSE, clock_gettime, timespec

from arena._heap cimport HBlock, Heap, HTable
from arena._mman cimport MADV_DONTNEED, MADV_REMOVE, madvise

from ._errors import ArenaFullError

cdef extern from * nogil:
    """
    static inline int arena_clz64(unsigned long long x) { return __builtin_clzll(x); }
    static inline int arena_ctz64(unsigned long long x) { return __builtin_ctzll(x); }
    """
    int arena_clz64(unsigned long long x)
    int arena_ctz64(unsigned long long x)

cdef enum:
    HEAP_GRAIN = 64             # block sizes and starts are multiples of this
    HEAP_GRAIN_SHIFT = 6
    SL_SHIFT = 3                # 8 second-level classes per power of two
    SL_COUNT = 8
    FL_COUNT = 64
    NO_REC = -1
    BLOCK_UNUSED = 0            # a spare record
    BLOCK_LIVE = 1
    BLOCK_FREE = 2
    BLOCK_PINNED = 3            # free, but under a view(): never handed out again
    CALLOC_GIVE_BACK = 32 << 20  # calloc of this much on THP: pages back to the kernel
    # A freed block this large goes back to the OS at once, purge delay or not (unless the
    # delay is None), as glibc's mmap threshold and jemalloc's oversize_threshold do: keeping
    # it would cost the machine more memory than faulting it in again costs time, and
    # neighbours that check free memory (NumPy's own tests do) see it gone.
    PURGE_AT_ONCE = 256 << 20
    # Blocks one lazy purge gives back at most (a madvise each): the rest waits for the next
    # call, so that no NumPy call stalls on thousands of freed holes at once.
    PURGE_BUDGET = 16

cdef size_t KEY_EMPTY = <size_t>-1


cdef inline uint64_t coarse_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts)
    return <uint64_t>ts.tv_sec * 1000000000 + <uint64_t>ts.tv_nsec


# -- the index: open addressing, linear probing, backward-shift deletion ---------------------

cdef inline size_t _slot(HTable* t, size_t key) noexcept nogil:
    return <size_t>((<uint64_t>key * <uint64_t>0x9E3779B97F4A7C15) >> 20) & t.mask


cdef int32_t _ht_get(HTable* t, size_t key) noexcept nogil:
    cdef size_t i
    if t.mask == 0:
        return NO_REC
    i = _slot(t, key)
    while t.keys[i] != KEY_EMPTY:
        if t.keys[i] == key:
            return t.vals[i]
        i = (i + 1) & t.mask
    return NO_REC


cdef int _ht_resize(HTable* t, size_t capacity) except -1:
    cdef size_t* keys = <size_t*>malloc(capacity * sizeof(size_t))
    cdef int32_t* vals = <int32_t*>malloc(capacity * sizeof(int32_t))
    cdef size_t* old_keys = t.keys
    cdef int32_t* old_vals = t.vals
    cdef size_t old_cap = t.mask + 1 if t.mask else 0, i, j
    if keys == NULL or vals == NULL:
        free(keys)
        free(vals)
        raise MemoryError()
    memset(keys, 0xFF, capacity * sizeof(size_t))
    t.keys, t.vals, t.mask = keys, vals, capacity - 1
    for i in range(old_cap):
        if old_keys[i] != KEY_EMPTY:
            j = _slot(t, old_keys[i])
            while keys[j] != KEY_EMPTY:
                j = (j + 1) & t.mask
            keys[j] = old_keys[i]
            vals[j] = old_vals[i]
    free(old_keys)
    free(old_vals)
    return 0


cdef void _ht_put(HTable* t, size_t key, int32_t val) noexcept nogil:
    """Needs room: heap_reserve first."""
    cdef size_t i = _slot(t, key)
    while t.keys[i] != KEY_EMPTY:
        if t.keys[i] == key:
            t.vals[i] = val
            return
        i = (i + 1) & t.mask
    t.keys[i] = key
    t.vals[i] = val
    t.count += 1


cdef void _ht_del(HTable* t, size_t key) noexcept nogil:
    cdef size_t i, j, home
    if t.mask == 0:
        return
    i = _slot(t, key)
    while t.keys[i] != key:
        if t.keys[i] == KEY_EMPTY:
            return
        i = (i + 1) & t.mask
    # Shift back the entries whose probe passed through slot i.
    j = i
    while True:
        j = (j + 1) & t.mask
        if t.keys[j] == KEY_EMPTY:
            break
        home = _slot(t, t.keys[j])
        if (j > i and (home <= i or home > j)) or (j < i and (home <= i and home > j)):
            t.keys[i] = t.keys[j]
            t.vals[i] = t.vals[j]
            i = j
    t.keys[i] = KEY_EMPTY
    t.count -= 1


# -- records ---------------------------------------------------------------------------------

cdef int heap_reserve(Heap* h) except -1:
    """Room for two more records and index entries: what an allocation, a split or a realloc
    does after this cannot fail, so that nothing it began has to be undone."""
    cdef HBlock* grown
    cdef int32_t cap
    if h.nrecs + 2 > h.caprecs:
        if h.caprecs >= (1 << 30):
            raise MemoryError("too many NumPy blocks in one arena")
        cap = h.caprecs * 2 if h.caprecs else 256
        grown = <HBlock*>realloc(h.recs, cap * sizeof(HBlock))
        if grown == NULL:
            raise MemoryError()
        h.recs = grown
        h.caprecs = cap
    if (h.index.count + 2) * 2 > h.index.mask + 1:  # keep the load under one half
        _ht_resize(&h.index, (h.index.mask + 1) * 2 if h.index.mask else 64)
    return 0


cdef int32_t _rec_new(Heap* h, size_t start, size_t size, uint8_t state) noexcept nogil:
    """Needs room: heap_reserve first."""
    cdef int32_t i
    if h.spare != NO_REC:
        i = h.spare
        h.spare = h.recs[i].next
    else:
        i = h.nrecs
        h.nrecs += 1
    h.recs[i].start = start
    h.recs[i].size = size
    h.recs[i].state = state
    h.recs[i].purged = False
    h.recs[i].prev = h.recs[i].next = NO_REC
    h.recs[i].older = h.recs[i].newer = NO_REC
    h.recs[i].left = h.recs[i].right = NO_REC
    return i


cdef inline void _rec_del(Heap* h, int32_t i) noexcept nogil:
    h.recs[i].state = BLOCK_UNUSED
    h.recs[i].next = h.spare
    h.spare = i


# -- size classes (two-level segregated fit) ------------------------------------------------

cdef inline void _class_of(size_t size, int* fl, int* sl) noexcept nogil:
    """The class that holds blocks of ``size`` bytes."""
    cdef size_t u = size >> HEAP_GRAIN_SHIFT
    cdef int t
    if u < SL_COUNT:
        fl[0] = 0
        sl[0] = <int>u
    else:
        t = 63 - arena_clz64(u)
        fl[0] = t - SL_SHIFT + 1
        sl[0] = <int>((u >> (t - SL_SHIFT)) ^ SL_COUNT)


cdef int32_t _find_fit(Heap* h, size_t size) noexcept nogil:
    """A free block of at least ``size`` bytes (good fit: from the first non-empty class
    whose every block is large enough), or NO_REC."""
    cdef size_t u = size >> HEAP_GRAIN_SHIFT
    cdef int t, fl, sl
    cdef unsigned int bits
    cdef uint64_t fbits
    if u >= SL_COUNT:
        t = 63 - arena_clz64(u)
        u += (<size_t>1 << (t - SL_SHIFT)) - 1
    _class_of(u << HEAP_GRAIN_SHIFT, &fl, &sl)
    if fl >= FL_COUNT:
        return NO_REC
    bits = h.sl_bitmap[fl] & (0xFF << sl) & 0xFF
    if bits == 0:
        if fl + 1 >= FL_COUNT:
            return NO_REC
        fbits = h.fl_bitmap & (~<uint64_t>0 << (fl + 1))
        if fbits == 0:
            return NO_REC
        fl = arena_ctz64(fbits)
        bits = h.sl_bitmap[fl]
    sl = arena_ctz64(bits)
    return h.heads[fl][sl]


cdef void _list_push(Heap* h, int32_t i) noexcept nogil:
    cdef int fl, sl
    _class_of(h.recs[i].size, &fl, &sl)
    h.recs[i].prev = NO_REC
    h.recs[i].next = h.heads[fl][sl]
    if h.heads[fl][sl] != NO_REC:
        h.recs[h.heads[fl][sl]].prev = i
    h.heads[fl][sl] = i
    h.sl_bitmap[fl] |= <uint8_t>(1 << sl)
    h.fl_bitmap |= <uint64_t>1 << fl


cdef void _list_remove(Heap* h, int32_t i) noexcept nogil:
    cdef int fl, sl
    cdef int32_t p = h.recs[i].prev, n = h.recs[i].next
    if p != NO_REC:
        h.recs[p].next = n
    else:
        _class_of(h.recs[i].size, &fl, &sl)
        h.heads[fl][sl] = n
        if n == NO_REC:
            h.sl_bitmap[fl] &= <uint8_t>~(1 << sl)
            if h.sl_bitmap[fl] == 0:
                h.fl_bitmap &= ~(<uint64_t>1 << fl)
    if n != NO_REC:
        h.recs[n].prev = p


# -- the purge queue (oldest free block first) ---------------------------------------------

cdef void _queue_push(Heap* h, int32_t i, uint64_t now) noexcept nogil:
    h.recs[i].freed_at = now
    h.recs[i].newer = NO_REC
    h.recs[i].older = h.newest
    if h.newest != NO_REC:
        h.recs[h.newest].newer = i
    else:
        h.oldest = i
    h.newest = i


cdef void _queue_remove(Heap* h, int32_t i) noexcept nogil:
    cdef int32_t o = h.recs[i].older, n = h.recs[i].newer
    if o != NO_REC:
        h.recs[o].newer = n
    elif h.oldest == i:
        h.oldest = n
    else:
        return  # not queued
    if n != NO_REC:
        h.recs[n].older = o
    else:
        h.newest = o
    h.recs[i].older = h.recs[i].newer = NO_REC


# -- free blocks ---------------------------------------------------------------------------

cdef inline void _free_insert(Heap* h, int32_t i, uint64_t now) noexcept nogil:
    """Make record ``i`` a free block: in its size class, and queued for purging unless
    already purged."""
    h.recs[i].state = BLOCK_FREE
    _list_push(h, i)
    if not h.recs[i].purged:
        _queue_push(h, i, now)


cdef inline void _free_remove(Heap* h, int32_t i) noexcept nogil:
    """Take free block ``i`` out of its class and the queue."""
    _list_remove(h, i)
    _queue_remove(h, i)


cdef int32_t _split(Heap* h, int32_t i, size_t size, uint8_t state) noexcept nogil:
    """Cut block ``i`` after ``size`` bytes; the rest becomes a new record of ``state``
    (not yet filed anywhere but the index), which is returned. Needs room: heap_reserve."""
    cdef size_t start = h.recs[i].start
    cdef int32_t j = _rec_new(h, start + size, h.recs[i].size - size, state)
    _ht_put(&h.index, start + size, j)
    h.recs[j].purged = h.recs[i].purged
    h.recs[j].left = i
    h.recs[j].right = h.recs[i].right
    if h.recs[i].right != NO_REC:
        h.recs[h.recs[i].right].left = j
    h.recs[i].right = j
    h.recs[i].size = size
    if h.top == i:
        h.top = j
    return j


cdef void _merge(Heap* h, int32_t i, int32_t j) noexcept nogil:
    """Block ``i`` absorbs its right neighbour ``j`` (already out of every list)."""
    h.recs[i].size += h.recs[j].size
    h.recs[i].right = h.recs[j].right
    if h.recs[j].right != NO_REC:
        h.recs[h.recs[j].right].left = i
    if h.top == j:
        h.top = i
    _ht_del(&h.index, h.recs[j].start)
    _rec_del(h, j)


cdef inline bint _purge_zeroes(Arena a) noexcept nogil:
    """Whether purged pages read as zeros: private anonymous memory (DONTNEED) and our own
    memfd (MADV_REMOVE) do; a user's file gives its contents back."""
    return not a.map.file_backed


cdef bint _purgeable(Arena a) noexcept nogil:
    """Hugetlb pages purged would come back from the pool at the next touch, which can
    SIGBUS when it is empty; locked pages are meant to stay. A shared arena's pages above
    this process's blocks may be another process's (its own decommit punches them)."""
    return not a.map.hugetlb and not a.map.locked and not (a.map.flags & F_LOCKED) and \
        a.sh is None


cdef void _give_back(Arena a, size_t start, size_t end) noexcept nogil:
    """Return the whole pages inside ``[start, end)`` to the OS; the range stays committed."""
    cdef size_t first = round_up(start, a.page), last = end // a.page * a.page
    if last > a.map.committed:
        last = a.map.committed
    if first < last:
        madvise(a.base + first, last - first,
                MADV_REMOVE if a.map.shared and not a.map.file_backed else MADV_DONTNEED)


cdef void _purge_block(Arena a, int32_t i) noexcept nogil:
    """Give back a free block's pages, except those a live view() may show (below
    view_end), whose bytes must stay as they are."""
    cdef Heap* h = &a.heap
    cdef size_t start = h.recs[i].start
    _queue_remove(h, i)
    _give_back(a, max(start, a.view_end), start + h.recs[i].size)
    h.recs[i].purged = _purge_zeroes(a) and start >= a.view_end


cdef void heap_purge_above(Arena a) noexcept nogil:
    """Give back what lies above the bump pointer, up to what was ever handed out."""
    cdef size_t keep = round_up(a.nused, a.page)
    if a.touched > keep:
        _give_back(a, keep, round_up(a.touched, a.page))
        if _purge_zeroes(a):
            a.high_water_before = max(a.high_water_before, a.touched)
            a.touched = keep
    a.heap.top_dirty = 0


cdef void heap_purge(Arena a, bint everything, uint64_t now, int budget) noexcept nogil:
    """Purge the free blocks that have waited the purge delay (all of them with
    ``everything``; at most ``budget`` of them unless it is negative), and the memory above
    the bump pointer the heap left there."""
    cdef Heap* h = &a.heap
    if not _purgeable(a):
        return
    while h.oldest != NO_REC and budget != 0 and (
            everything or now - h.recs[h.oldest].freed_at >= h.purge_delay_ns):
        _purge_block(a, h.oldest)
        budget -= 1
    if h.top_dirty > a.nused and (everything or now - h.top_freed_at >= h.purge_delay_ns):
        heap_purge_above(a)


cdef inline bint heap_purge_pending(Heap* h) noexcept nogil:
    return h.oldest != NO_REC or h.top_dirty != 0


cdef uint64_t heap_tick(Arena a) noexcept nogil:
    """Read the coarse clock (the free path's time stamp) and purge what is due; 0 when
    purging is off. Allocations never read it: a free follows soon enough."""
    cdef Heap* h = &a.heap
    cdef uint64_t now
    if h.purge_delay_ns == UINT64_MAX:
        return 0
    now = coarse_ns()
    if (h.oldest != NO_REC and now - h.recs[h.oldest].freed_at >= h.purge_delay_ns) or \
            (h.top_dirty > a.nused and now - h.top_freed_at >= h.purge_delay_ns):
        heap_purge(a, False, now, PURGE_BUDGET)
    return now


# -- malloc, realloc, free ------------------------------------------------------------------

cdef inline size_t _block_size(size_t size) noexcept nogil:
    return (size + HEAP_GRAIN - 1) & ~(<size_t>HEAP_GRAIN - 1) if size else HEAP_GRAIN


cdef void _zero(Arena a, size_t start, size_t size) noexcept nogil:
    """Zero ``[start, start + size)`` for calloc. On transparent huge pages a large range
    goes back to the kernel instead (whole 2 MiB pages): a read then maps the huge zero page
    and a write faults in a zeroed huge page at about memset's speed, which is what NumPy's
    own calloc gets from fresh memory (glibc mmaps requests of 32 MiB and more; smaller ones
    it memsets too). On 4 KiB pages a fault costs more than memset, which therefore serves
    everywhere else."""
    cdef size_t end = start + size, first, last
    if size >= CALLOC_GIVE_BACK and (a.map.flags & F_THP) and _purge_zeroes(a) and \
            _purgeable(a):
        first = round_up(start, THP_SIZE)
        last = end // THP_SIZE * THP_SIZE
        if first < last:
            memset(a.base + start, 0, first - start)
            memset(a.base + last, 0, end - last)
            madvise(a.base + first, last - first,
                    MADV_REMOVE if a.map.shared else MADV_DONTNEED)
            return
    memset(a.base + start, 0, size)


cdef void _clear(Arena a, int32_t i, size_t size) noexcept nogil:
    """Zero the first ``size`` bytes of reused block ``i``: only its partial pages if it was
    purged (the kernel zeroes the rest on touch), else all of them."""
    cdef size_t start = a.heap.recs[i].start, end = start + size
    cdef size_t first = round_up(start, a.page), last = end // a.page * a.page
    if a.heap.recs[i].purged and first < last:
        memset(a.base + start, 0, first - start)
        memset(a.base + last, 0, end - last)
    else:
        _zero(a, start, size)


cdef void* heap_alloc(Arena a, size_t size, bint zero) except NULL:
    """A block of ``size`` bytes for NumPy: a good fit among the free blocks, else fresh
    memory from the bump pointer."""
    cdef Heap* h = &a.heap
    cdef size_t need, fresh, start, end
    cdef int32_t i, j
    cdef uint64_t now = h.recs[h.newest].freed_at if h.newest != NO_REC else 0
    cdef char* p
    if not a.writable:
        _check_allocatable(a)
    if size > a.map.reserved:
        raise ArenaFullError(f"{size} bytes do not fit in the arena")
    heap_reserve(h)
    need = _block_size(size)
    if h.live == 0 and a.sh is not None:
        _shared_heap_wake(a)  # its free blocks held nothing while it was idle
    while True:
        i = _find_fit(h, need)
        if i == NO_REC:
            break
        _free_remove(h, i)
        start = h.recs[i].start
        if start < a.view_end:
            # Under a view: keep the part below view_end out of use for good.
            h.recs[i].state = BLOCK_PINNED
            end = round_up(a.view_end, HEAP_GRAIN)
            if start + h.recs[i].size > end:
                _free_insert(h, _split(h, i, end - start, BLOCK_FREE), now)
            continue
        if h.recs[i].size - need >= HEAP_GRAIN:  # split off the rest
            _free_insert(h, _split(h, i, need, BLOCK_FREE), now)
        h.recs[i].state = BLOCK_LIVE
        h.live += 1
        h.live_bytes += h.recs[i].size
        if zero:
            _clear(a, i, size)
        h.recs[i].purged = False
        return a.base + start
    fresh = _fresh_from(a)
    p = _bump(a, need, HEAP_GRAIN)
    start = <size_t>(p - a.base)
    i = _rec_new(h, start, need, BLOCK_LIVE)
    _ht_put(&h.index, start, i)
    j = h.top
    if j != NO_REC and h.recs[j].start + h.recs[j].size == start:
        h.recs[i].left = j
        h.recs[j].right = i
    h.top = i
    h.live += 1
    h.live_bytes += need
    if zero and start < fresh:
        _zero(a, start, min(size, fresh - start))
    return p


cdef int32_t _live_block(Arena a, void* ptr) noexcept nogil:
    cdef int32_t i
    if a.base == NULL or <char*>ptr < a.base or <char*>ptr >= a.base + a.map.reserved:
        return NO_REC
    i = _ht_get(&a.heap.index, (<size_t>(<char*>ptr - a.base)))
    if i == NO_REC or a.heap.recs[i].state != BLOCK_LIVE:
        return NO_REC
    return i


cdef void heap_free(Arena a, void* ptr) noexcept:
    """Free a live block: merge it with free neighbours, give it back to the bump pointer if
    it ends there, else file it by size. Unknown pointers are ignored."""
    cdef Heap* h = &a.heap
    cdef int32_t i = _live_block(a, ptr), j
    cdef size_t end, floor, freed
    cdef uint64_t now
    if i == NO_REC:
        return
    now = heap_tick(a)
    freed = h.recs[i].size  # (the at-once purge goes by what was freed, not what it merged into)
    h.live -= 1
    if h.live == 0 and a.sh is not None:
        _shared_heap_idle(a)
    h.live_bytes -= freed
    h.recs[i].state = BLOCK_FREE
    h.recs[i].purged = False
    j = h.recs[i].right
    if j != NO_REC and h.recs[j].state == BLOCK_FREE:
        _free_remove(h, j)
        _merge(h, i, j)
    j = h.recs[i].left
    if j != NO_REC and h.recs[j].state == BLOCK_FREE:
        _free_remove(h, j)
        _merge(h, j, i)
        i = j
        h.recs[i].purged = False
    end = h.recs[i].start + h.recs[i].size
    floor = max(a.level_start, a.view_end)
    if end == a.nused and h.recs[i].start >= floor and a.sh is None:
        a.nused = h.recs[i].start  # back to the bump pointer, never below the newest mark
        if end >= h.top_dirty:
            # The freed top reaches as high as the heap has been: all above the bump pointer
            # is as recently used as now. (Lower blocks coming and going on top leave the
            # time alone: what lies above them stays unused.)
            h.top_dirty = end
            h.top_freed_at = now
        j = h.recs[i].left
        if j != NO_REC:
            h.recs[j].right = NO_REC
        h.top = j  # the highest block left, or unknown
        _ht_del(&h.index, h.recs[i].start)
        _rec_del(h, i)
        if freed >= PURGE_AT_ONCE and now and _purgeable(a):
            heap_purge_above(a)
        return
    _free_insert(h, i, now)
    if freed >= PURGE_AT_ONCE and now and _purgeable(a):
        _purge_block(a, i)


cdef void* heap_realloc(Arena a, void* ptr, size_t size) except NULL:
    """Grow or shrink a live block: in place when it is on top (commit more) or its free
    neighbour has room, else move it once."""
    cdef Heap* h = &a.heap
    cdef int32_t i, j
    cdef size_t need, start, end, old
    cdef void* q
    if ptr == NULL:
        return heap_alloc(a, size, False)
    i = _live_block(a, ptr)
    if i == NO_REC:
        raise ValueError("realloc of memory the arena did not hand to NumPy")
    if size > a.map.reserved:
        raise ArenaFullError(f"{size} bytes do not fit in the arena")
    heap_reserve(h)
    need = _block_size(size)
    start = h.recs[i].start
    old = h.recs[i].size
    end = start + old
    if need > old and end == a.nused and a.sh is None:  # (a shared bump moves by CAS only)
        _check_allocatable(a)
        if need > a.map.reserved - start:
            raise ArenaFullError(f"{size} bytes do not fit in what is left of the arena")
        _commit_to(a, start + need)
        a.nused = start + need
        if a.nused > a.touched:
            a.touched = a.nused
        h.recs[i].size = need
        h.live_bytes += need - old
        return ptr
    if need > old:
        j = h.recs[i].right
        if j == NO_REC or h.recs[j].state != BLOCK_FREE or h.recs[j].start < a.view_end or \
                old + h.recs[j].size < need:
            q = heap_alloc(a, size, False)
            memcpy(q, ptr, old)
            heap_free(a, ptr)
            return q
        _free_remove(h, j)  # absorb the free neighbour, then hand back what is not needed
        h.live_bytes += h.recs[j].size
        _merge(h, i, j)
    if h.recs[i].size - need >= HEAP_GRAIN:
        _split(h, i, need, BLOCK_LIVE)  # a live block of its own, then freed like any other
        h.live += 1
        heap_free(a, a.base + start + need)
    return ptr


# -- bulk changes: release, reset, statistics ------------------------------------------------

cdef Py_ssize_t heap_live_above(Heap* h, size_t offset) noexcept:
    """Live blocks that reach past ``offset``."""
    cdef Py_ssize_t n = 0
    cdef int32_t i
    if h.live == 0 or offset == 0:
        return h.live
    for i in range(h.nrecs):
        if h.recs[i].state == BLOCK_LIVE and h.recs[i].start + h.recs[i].size > offset:
            n += 1
    return n


cdef void heap_drop_from(Arena a, size_t offset) noexcept:
    """Forget the blocks from ``offset`` up (a release or reset freed that memory; a live
    one there would have made it refuse). A free block reaching past ``offset`` keeps its
    part below."""
    cdef Heap* h = &a.heap
    cdef int32_t i
    if offset == 0:
        h.top_dirty = 0
        if h.nrecs == 0:
            return  # nothing to forget (the common reset: no NumPy blocks)
        h.nrecs = 0
        h.spare = NO_REC
        h.top = NO_REC
        if h.index.mask:
            memset(h.index.keys, 0xFF, (h.index.mask + 1) * sizeof(size_t))
        h.index.count = 0
        h.fl_bitmap = 0
        memset(h.sl_bitmap, 0, sizeof(h.sl_bitmap))
        memset(h.heads, 0xFF, sizeof(h.heads))
        h.oldest = h.newest = NO_REC
        return
    h.top = NO_REC
    for i in range(h.nrecs):
        if h.recs[i].state == BLOCK_UNUSED or h.recs[i].start + h.recs[i].size < offset:
            continue
        if h.recs[i].start >= offset:
            if h.recs[i].state == BLOCK_FREE:
                _free_remove(h, i)
            _ht_del(&h.index, h.recs[i].start)
            _rec_del(h, i)
            continue
        # It reaches offset: it becomes the top block, and loses what lay above.
        if h.recs[i].start + h.recs[i].size > offset:
            if h.recs[i].state == BLOCK_FREE:
                _free_remove(h, i)
                h.recs[i].size = offset - h.recs[i].start
                _free_insert(h, i, 0)
            else:
                h.recs[i].size = offset - h.recs[i].start
        h.recs[i].right = NO_REC
        h.top = i


cdef int heap_init(Arena a, options) except -1:
    cdef Heap* h = &a.heap
    delay = options.purge_delay
    h.purge_delay_ns = UINT64_MAX if delay is None else <uint64_t>(delay * 1e9)
    h.small = options.small_threshold
    h.spare = NO_REC
    h.oldest = h.newest = NO_REC
    h.top = NO_REC
    memset(h.heads, 0xFF, sizeof(h.heads))
    return 0


cdef void heap_dealloc(Heap* h) noexcept:
    free(h.recs)
    free(h.index.keys)
    free(h.index.vals)
    h.recs = NULL
    h.index.keys = NULL
    h.index.vals = NULL
