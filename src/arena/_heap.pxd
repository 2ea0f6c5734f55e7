# The NEP 49 heap's state: the blocks NumPy allocates through the arena's handler, kept out of
# band (the arena's own arrays lie between them, so no in-band header could find a neighbour).
# Its functions live in _heap.pxi.
from libc.stdint cimport int32_t, uint8_t, uint64_t


ctypedef struct HBlock:
    size_t start, size          # bytes from the arena's base; both multiples of HEAP_GRAIN
    int32_t left, right         # the heap blocks that end where it starts / start where it ends
    int32_t prev, next          # the free list of its size class (or the record pool)
    int32_t older, newer        # the purge queue, oldest free first
    uint64_t freed_at           # coarse monotonic ns when it became free
    uint8_t state               # BLOCK_LIVE, BLOCK_FREE, BLOCK_PINNED
    bint purged                 # every whole page inside it reads as zero

ctypedef struct HTable:
    # Open addressing with linear probing: a block's start -> its record.
    size_t* keys
    int32_t* vals
    size_t mask                 # capacity - 1 (a power of two), or 0 before the first use
    size_t count

ctypedef struct Heap:
    HBlock* recs                # the record pool
    int32_t nrecs, caprecs, spare   # used, room for, first spare record (-1: none)
    HTable index
    uint64_t fl_bitmap          # two-level segregated fit: non-empty first levels
    uint8_t sl_bitmap[64]       # non-empty second levels per first level
    int32_t heads[64][8]        # free lists per size class
    int32_t oldest, newest      # the purge queue
    int32_t top                 # the highest block, if the heap knows it (else -1)
    uint64_t purge_delay_ns     # UINT64_MAX: never purge on its own
    size_t top_dirty            # end of what the heap gave back to the bump pointer
    uint64_t top_freed_at       # when a freed block last reached top_dirty
    Py_ssize_t live             # live blocks (each counts as a view)
    size_t live_bytes           # bytes in live blocks
    size_t small                # requests below this go to NumPy's default allocator
