# The NEP 49 heap of a shared arena (Flags.SHARED without a file).
#
# While the heap has a live block, this process's slot publishes ``heap_top``, which lies past
# every block the heap keeps, free ones included: no other process frees them meanwhile.
# When its last live block goes, the heap stops holding the bump (a process that merely keeps
# NumPy's freed blocks must not make every other process's reset and release refuse), and
# its free blocks are unprotected from then on: another process may free them and hand them
# out again. So before the heap hands out anything again it takes them back the way
# _shared_register takes a received array: publish first, then look at the frees since it
# went idle and change the word, so that a freer who missed the published top fails its
# swap. What a free went below is dropped instead. Keeping the blocks (rather than forgetting
# them when idle) is what lets ``for ...: x = np.empty(n); del x`` reuse one block in every
# process at once, with no free (and no entry in the ring of frees) per iteration.
# These run inside NumPy's malloc and free: no Python code. Included by _shared.pxi.


cdef void _shared_heap_idle(Arena a) noexcept:
    """The heap's last live block was freed: its blocks no longer hold the bump."""
    cdef _Shared sh = _sh(a)
    if sh.ctl == NULL:
        return
    # The count first: a free that sees the top gone takes a later number, which
    # _shared_heap_wake then sees.
    sh.heap_gen = arena_load(&sh.ctl.gen)
    _publish(sh)


cdef void _shared_heap_wake(Arena a) noexcept:
    """The idle heap is about to hand out a block: make the blocks it kept this process's
    again (published, none freed since it went idle), or forget them."""
    cdef _Shared sh = _sh(a)
    cdef arena_ctl_t* c = sh.ctl
    cdef arena_slot_t* s
    cdef uint64_t w, g, floor, key, top
    if a.heap.fl_bitmap == 0 or c == NULL or sh.slot < 0:
        # Nothing to reuse, or no slot to publish it in (a fork child that inherited only
        # free blocks): the rest are pinned or stale. Fresh blocks publish themselves.
        if a.heap.fl_bitmap != 0:
            heap_drop_from(a, 0)
        sh.heap_top = 0
        return
    s = &c.slots[sh.slot]
    top = sh.last.key if sh.last != NULL else 0
    while True:
        key = sh.heap_top
        if key > top:
            arena_store(&s.top, key)
            arena_fetch_add(&c.regs, 1)  # as _shared_register: a free scanning now rescans
        w = arena_load(&c.word)
        g = arena_load(&c.gen)
        floor = min(_floor_since(c, sh.heap_gen, FLOOR_NONE), w & ARENA_OFF_MASK)
        if floor < key:
            heap_drop_from(a, floor)  # another process may have handed those bytes out
            sh.heap_top = floor
            sh.heap_gen = g
            if a.heap.fl_bitmap == 0:
                sh.heap_top = 0
                _publish(sh)
                return
            continue
        if arena_cas(&c.word, &w, (w & ARENA_OFF_MASK) | ((w + ARENA_SEQ_ONE) & SEQ_MASK)):
            return


cdef void _shared_heap_forking(_Shared sh) noexcept:
    """Before a fork: the child inherits the NumPy arrays over the live blocks and holds
    them (as views) until it frees them, so neither process may hand one out again."""
    cdef Arena a
    if sh.arena == NULL:
        return
    a = <Arena>sh.arena
    if a.heap.live and sh.heap_top > a.view_end:
        a.view_end = sh.heap_top  # the heap pins what lies below when it meets it


cdef void _shared_heap_forked(_Shared sh) noexcept:
    """In a fork child: free blocks are the parent's to reuse (the live ones are pinned)."""
    cdef Arena a
    if sh.arena == NULL:
        return
    a = <Arena>sh.arena
    if a.heap.live == 0:
        heap_drop_from(a, 0)
        sh.heap_top = 0
