# Arenas shared by several processes (Flags.SHARED without a file): the control block.
#
# Every process maps the same two memfds: the data, reserved PROT_NONE in each process and
# made accessible (mprotect) there lazily, and a small control block that holds the
# allocation state. Processes change it with atomics only, so one killed at any instant
# leaves no lock held and the state consistent:
#
# - ``word``: the bump offset (low 48 bits) and a sequence (high 16). An allocation is one
#   compare-and-swap moving the offset up. Freeing (reset, release) reads the word, checks
#   every process's slot, then swaps the offset down: an allocation or a view registered in
#   between changed the word, so the swap fails and the check runs again. Registering a view
#   of bytes already handed out (a received array, ``view``) bumps the sequence for that.
# - a slot per process: pid and start time (a dead or recycled pid is told apart, and its
#   views count as gone), and ``top``, the end of its highest live view, stored before its
#   swap on the word so that a freer who sees the swap sees the view.
# - ``gen`` and a ring of the floors of the last RING frees: an array pickled in one process
#   and unpickled in another is checked against the frees in between, and refused rather than
#   aliased if its bytes were freed in transit.
# - backing: pages are allocated in the memfd (fallocate) before they are handed out, so an
#   empty hugetlb pool or a memory limit is a MemoryError, never a SIGBUS; fallocate never
#   shrinks the file, unlike a racing ftruncate. decommit first moves the bump over what it
#   punches, so that nothing can be handed out there meanwhile.
#
# Every array gets its own base object, a _Lease, kept in a list sorted by end offset: when
# views die in any order, ``top`` stays exact. The memfds themselves (making, attaching,
# backing, decommit) are in _shared_memory.pxi, pickling through multiprocessing in
# _shared_pickle.pxi. Included by _core.pyx.

cimport cython
from libc.errno cimport EINTR, ENOSPC, ESRCH
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memcmp
from posix.signal cimport kill
from posix.types cimport off_t
from posix.unistd cimport getpid

from arena._atomic cimport (arena_cas, arena_fetch_add, arena_load, arena_max, arena_store,
                            arena_yield)
from arena._mman cimport MAP_FIXED, MFD_CLOEXEC, PROT_NONE, PROT_READ, PROT_WRITE

import time

from ._errors import ArenaError

cdef extern from "<fcntl.h>" nogil:
    int fallocate(int fd, int mode, off_t offset, off_t length)
    int FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE

cdef extern from * nogil:
    """
    #include <stddef.h>
    #define ARENA_CTL_MAGIC 0x616e6572612d6374ULL  /* "arena-ct" */
    #define ARENA_CTL_VERSION 1
    #define ARENA_RING 512
    #define ARENA_SLOTS 256
    #define ARENA_OFF_MASK ((1ULL << 48) - 1)
    #define ARENA_SEQ_ONE (1ULL << 48)
    typedef struct {
        int64_t pid;            /* 0 free; > 0 its owner; < 0 being claimed by -pid */
        uint64_t start_time;    /* the owner's, in clock ticks after boot (/proc/PID/stat) */
        uint64_t top;           /* end of the owner's highest live view; 0 for none */
        uint64_t views;         /* the owner's live views */
        uint64_t nalloc;        /* allocations the owner made, not yet folded into adjust */
        uint64_t high_water;
        int32_t data_fd, ctl_fd;/* the owner's descriptors, reachable as /proc/PID/fd/N */
        uint64_t spare;
    } arena_slot_t;
    typedef struct {
        uint64_t magic, version, ctl_size, reserved, page, step, alignment, flags;
        uint64_t explicit_page, data_dev, data_ino, creator;
        unsigned char id[16];
        uint64_t regs;          /* views registered over bytes already handed out (ever) */
        uint64_t spare0;
        uint64_t word, spare1[7];
        uint64_t gen, committed, attempted, punch_gen, hw_base, nslots;
        int64_t adjust;
        uint64_t dirty;         /* bytes below it may have been written (with the bump) */
        uint64_t ring[ARENA_RING];
        arena_slot_t slots[ARENA_SLOTS];
    } arena_ctl_t;
    _Static_assert(sizeof(arena_slot_t) == 64, "a slot fills one cache line");
    _Static_assert(offsetof(arena_ctl_t, word) == 128, "the word has its own cache line");
    _Static_assert(offsetof(arena_ctl_t, gen) == 192, "rarely written fields after it");
    _Static_assert(offsetof(arena_ctl_t, slots) % 64 == 0, "slots on cache lines");
    """
    uint64_t ARENA_CTL_MAGIC, ARENA_CTL_VERSION, ARENA_OFF_MASK, ARENA_SEQ_ONE
    int ARENA_RING, ARENA_SLOTS
    ctypedef struct arena_slot_t:
        int64_t pid
        uint64_t start_time, top, views, nalloc, high_water
        int data_fd, ctl_fd
    ctypedef struct arena_ctl_t:
        uint64_t magic, version, ctl_size, reserved, page, step, alignment, flags
        uint64_t explicit_page, data_dev, data_ino, creator
        unsigned char id[16]
        uint64_t regs, word
        uint64_t gen, committed, attempted, punch_gen, hw_base, nslots
        int64_t adjust
        uint64_t dirty
        uint64_t ring[512]
        arena_slot_t slots[256]

cdef size_t CTL_SIZE = round_up(sizeof(arena_ctl_t), 4096)
cdef uint64_t SEQ_MASK = ~ARENA_OFF_MASK
cdef uint64_t FLOOR_NONE = ARENA_OFF_MASK  # a free that freed nothing (its swap failed)
# Offsets live in 48 bits; x86-64 and arm64 user space is 47 or 48 bits wide anyway.
_MAX_SHARED_SIZE = 1 << 47
# How long reset/release wait for another process's views to go before refusing (0.1 s in
# all): a pool worker drops its result just after sending it, and the parent may already
# have it and reset by then.
_GRACE = (0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.037)


cdef struct LeaseNode:
    LeaseNode* prev
    LeaseNode* next
    size_t key              # end of the bytes the view covers (its start + 1 when empty)


@cython.final
cdef class _Shared:
    """This process's hold on a shared arena: the control block, its slot and its live views.
    Outlives the Arena object while arrays from it are alive."""
    cdef arena_ctl_t* ctl       # NULL once detached
    cdef int ctl_fd
    cdef object ctl_ino         # the control block's inode: what a holder's fd must show
    cdef int slot               # this process's slot, or -1 until it needs one
    cdef bytes id
    cdef _Region region         # the data mapping
    cdef PyObject* arena        # the open Arena over ``region`` (borrowed), or NULL
    cdef _Frame orphan          # frame of arrays received while no Arena is open here
    cdef LeaseNode* first
    cdef LeaseNode* last
    cdef Py_ssize_t nleases
    cdef size_t lo, hi          # [lo, hi) is allocated in the memfd, as far as we know...
    cdef uint64_t pg            # ...since decommit's punch counter was pg
    cdef size_t before, end     # the bump before and after our last allocation (rollback)
    cdef uint64_t taken         # the word our last allocation's swap left (rollback)
    cdef size_t heap_top        # past every block the NEP 49 heap keeps (_shared_heap.pxi)
    cdef uint64_t heap_gen      # the free count when the heap last had no live block
    cdef int busy               # threads in code that runs Python with ``ctl`` in hand
    cdef int forks              # forks of this process in flight (_shared_pickle.pxi)...
    cdef size_t fork_hold       # ...whose children may inherit views up to here
    cdef object __weakref__

    def __cinit__(self):
        self.ctl_fd = -1
        self.slot = -1

    def __dealloc__(self):
        _shared_detach(self)


@cython.final
@cython.freelist(64)
@cython.no_gc
cdef class _Lease:
    """Base object of every array from a shared arena (one per allocation or received
    array): a slice or view of one keeps it alive, and its death updates the process's
    slot."""
    cdef _Frame frame
    cdef _Shared sh
    cdef size_t lo
    cdef LeaseNode node

    def __dealloc__(self):
        cdef _Shared sh = self.sh
        if sh is None:
            return
        if self.node.prev != NULL:
            self.node.prev.next = self.node.next
        else:
            sh.first = self.node.next
        if self.node.next != NULL:
            self.node.next.prev = self.node.prev
        else:
            sh.last = self.node.prev
        sh.nleases -= 1
        _publish(sh)

    def __repr__(self):
        return f"<arena shared view at offset {self.lo}>"


cdef inline _Shared _sh(Arena a):
    return <_Shared>a.sh


cdef inline void _publish(_Shared sh) noexcept:
    """Publish this process's live views: their count and the end of the highest, which
    covers the NEP 49 heap's blocks while any is live (they are views too)."""
    cdef arena_slot_t* s
    cdef size_t top
    if sh.ctl == NULL:
        return
    top = sh.last.key if sh.last != NULL else 0
    if sh.arena != NULL and (<Arena>sh.arena).heap.live and sh.heap_top > top:
        top = sh.heap_top
    if sh.forks:
        # Until the child has its own slot, its inherited views are ours to publish, and
        # any view alive since the fork began may be among them (fork() itself comes after
        # the other at-fork handlers, which may let other threads run).
        sh.fork_hold = max(sh.fork_hold, top)
        top = sh.fork_hold
    if sh.slot >= 0:
        s = &sh.ctl.slots[sh.slot]
        arena_store(&s.views, <uint64_t>sh.nleases)
        arena_store(&s.top, top)


cdef void _lease_link(_Shared sh, _Lease lease, _Frame frame, size_t lo,
                      size_t key) noexcept:
    """Insert ``lease`` in the list by key (from the tail: new views are usually highest)."""
    cdef LeaseNode* p = sh.last
    cdef LeaseNode* n = &lease.node
    lease.frame = frame
    lease.sh = sh
    lease.lo = lo
    n.key = key
    while p != NULL and p.key > key:
        p = p.prev
    n.prev = p
    n.next = p.next if p != NULL else sh.first
    if p != NULL:
        p.next = n
    else:
        sh.first = n
    if n.next != NULL:
        n.next.prev = n
    else:
        sh.last = n
    sh.nleases += 1
    _publish(sh)


# -- processes and their slots -------------------------------------------------------------

def _proc_stat(pid):
    """(state, start time) of process ``pid`` from /proc, or None if there is none."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2:].split()  # the name may hold spaces and parens
    return fields[0], int(fields[19])


cdef bint _slot_alive(_Shared sh, arena_slot_t* s, int64_t pid):
    """Whether process ``pid`` of slot ``s`` may still hold views: alive (not a zombie), the
    process that took the slot (not a new one that got its pid), and still holding the
    control block (a process that called exec after fork holds nothing: CLOEXEC)."""
    cdef bint claiming = pid < 0
    if claiming:
        pid = -pid
    if pid == 0 or (kill(<int>pid, 0) != 0 and errno == ESRCH):
        return False
    st = _proc_stat(pid)
    if st is None:
        return _proc_stat("self") is None  # without /proc, kill() is all there is to go by
    if st[0] in (b"Z", b"X", b"x"):
        return False
    if claiming:
        return True
    start_time = arena_load(&s.start_time)
    if start_time and st[1] != start_time:
        return False
    try:
        return os.stat(f"/proc/{pid}/fd/{s.ctl_fd}").st_ino == sh.ctl_ino
    except FileNotFoundError:
        return False
    except OSError:
        return True  # not ours to look at: assume it holds


cdef void _fold(arena_ctl_t* c, arena_slot_t* s) noexcept nogil:
    """Move a slot's counts into the arena's totals before the slot is freed or reused."""
    arena_fetch_add(<uint64_t*>&c.adjust, arena_load(&s.nalloc))
    arena_max(&c.hw_base, arena_load(&s.high_water))
    arena_store(&s.nalloc, 0)
    arena_store(&s.high_water, 0)
    arena_store(&s.top, 0)
    arena_store(&s.views, 0)


cdef int _claim(_Shared sh) except -1:
    """Take a free slot, or one whose process is gone, for this process."""
    cdef int64_t me = getpid()
    if sh.slot >= 0:
        return 0
    if sh.ctl == NULL:
        raise ValueError("the arena is closed")
    sh.busy += 1  # from here close() refuses: reading /proc runs Python code
    try:
        st = _proc_stat(me)
        if sh.slot >= 0:
            return 0  # another thread claimed one meanwhile
        return _claim_slot(sh, sh.ctl, me, st[1] if st is not None else 0)
    finally:
        sh.busy -= 1


cdef int _claim_slot(_Shared sh, arena_ctl_t* c, int64_t me, start_time) except -1:
    cdef arena_slot_t* s
    cdef uint64_t cur
    cdef int i, sweep
    for sweep in range(2):
        for i in range(ARENA_SLOTS):
            s = &c.slots[i]
            cur = arena_load(<uint64_t*>&s.pid)
            if cur != 0 and (sweep == 0 or _slot_alive(sh, s, <int64_t>cur)):
                continue
            if sh.slot >= 0:
                return 0  # another thread claimed one while _slot_alive ran Python code
            if not arena_cas(<uint64_t*>&s.pid, &cur, <uint64_t>(-me)):
                continue
            if cur != 0:
                _fold(c, s)  # a dead owner's allocations stay in the arena's totals
            arena_store(&s.start_time, start_time)
            s.data_fd = sh.region.m.fd
            s.ctl_fd = sh.ctl_fd
            arena_store(&s.top, 0)
            arena_store(&s.views, 0)
            arena_store(<uint64_t*>&s.pid, <uint64_t>me)
            arena_max(&c.nslots, i + 1)
            sh.slot = i
            return 0
    raise ArenaError(f"all {ARENA_SLOTS} process slots of the shared arena are held by "
                     "live processes")


cdef void _slot_free(_Shared sh) noexcept nogil:
    cdef arena_slot_t* s
    if sh.slot < 0 or sh.ctl == NULL:
        return
    s = &sh.ctl.slots[sh.slot]
    if <int64_t>arena_load(<uint64_t*>&s.pid) == getpid():
        _fold(sh.ctl, s)
        arena_store(<uint64_t*>&s.pid, 0)
    sh.slot = -1


cdef void _shared_detach(_Shared sh) noexcept nogil:
    """Give up the slot and unmap the control block (this process only)."""
    if sh.ctl != NULL:
        _slot_free(sh)
        munmap(sh.ctl, CTL_SIZE)
        sh.ctl = NULL
    if sh.ctl_fd >= 0:
        unistd.close(sh.ctl_fd)
        sh.ctl_fd = -1


cdef object _holder_above(_Shared sh, uint64_t floor):
    """(pid, views) of a live process other than this slot with a view reaching past
    ``floor``, or None."""
    cdef arena_ctl_t* c = sh.ctl
    cdef arena_slot_t* s
    cdef uint64_t i, n = arena_load(&c.nslots)
    cdef int64_t pid
    for i in range(n):
        if <int>i == sh.slot:
            continue
        s = &c.slots[i]
        pid = <int64_t>arena_load(<uint64_t*>&s.pid)
        if pid <= 0 or arena_load(&s.top) <= floor:
            continue
        if _slot_alive(sh, s, pid):
            return pid, arena_load(&s.views)
    return None


cdef object _holder(_Shared sh, uint64_t floor):
    """_holder_above, or () while a child this process is forking may inherit a view
    reaching past ``floor`` and has not published it yet. The hold is looked at first: once
    it is gone, the child's slot shows its views."""
    if sh.fork_hold > floor:
        return ()
    return _holder_above(sh, floor)


def _live_processes(Arena a):
    """(pid, live views) of every live process that holds a slot of shared arena ``a``."""
    cdef _Shared sh = _sh(a)
    cdef arena_slot_t* s
    cdef uint64_t i
    cdef int64_t pid
    _check_open(a)
    out = []
    sh.busy += 1
    try:
        for i in range(arena_load(&sh.ctl.nslots)):
            s = &sh.ctl.slots[i]
            pid = <int64_t>arena_load(<uint64_t*>&s.pid)
            if pid > 0 and _slot_alive(sh, s, pid):
                out.append((pid, arena_load(&s.views)))
    finally:
        sh.busy -= 1
    return out


# -- the ring of frees -----------------------------------------------------------------------

cdef inline void _ring_put(arena_ctl_t* c, uint64_t g, uint64_t floor) noexcept nogil:
    arena_store(&c.ring[g % ARENA_RING], ((g & 0xFFFF) << 48) | floor)


cdef uint64_t _ring_floor(arena_ctl_t* c, uint64_t g) noexcept nogil:
    """Where free number ``g`` moved the bump to (FLOOR_NONE if nowhere); 0 when that is not
    known (its process died between taking the number and writing the entry)."""
    cdef uint64_t e, ahead
    cdef int spins
    for spins in range(2000):
        e = arena_load(&c.ring[g % ARENA_RING])
        ahead = ((e >> 48) - g) & 0xFFFF
        if ahead == 0:
            return e & ARENA_OFF_MASK
        if ahead < 0x8000:
            return 0  # overwritten by a later free
        if spins > 100:
            arena_yield()
    return 0


cdef uint64_t _floor_since(arena_ctl_t* c, uint64_t g0, uint64_t start) noexcept nogil:
    """The lowest the bump has been since free number ``g0``, given it was at ``start``."""
    cdef uint64_t g, now = arena_load(&c.gen), floor = start
    if now - g0 >= <uint64_t>ARENA_RING:
        return 0
    for g in range(g0 + 1, now + 1):
        floor = min(floor, _ring_floor(c, g))
    return floor


# -- allocation ------------------------------------------------------------------------------

cdef Py_ssize_t _shared_take(Arena a, _Shared sh, size_t nbytes, size_t align,
                             bint view) except -1:
    """Claim ``nbytes`` at the arena-wide bump, publishing the coming view first: a lease
    the caller links with ``view``, else a NEP 49 heap block (or a raw allocation, which
    alloc_slow unpublishes)."""
    cdef arena_ctl_t* c = sh.ctl
    cdef Mapping* m = a.map
    cdef arena_slot_t* s
    cdef uint64_t w, cur, start, end, key, top, new
    if not a.writable:
        _check_allocatable(a)
    if align == 0 or (align & (align - 1)) != 0 or align > a.page:
        raise ValueError(f"align must be a power of two up to {a.page}, got {align}")
    if sh.slot < 0:
        _claim(sh)
    s = &c.slots[sh.slot]
    top = max(arena_load(&s.top), sh.fork_hold)  # never lower it: the heap, a fork's hold
    w = arena_load(&c.word)
    while True:
        cur = w & ARENA_OFF_MASK
        start = (cur + align - 1) & ~(<uint64_t>align - 1)
        if start > m.reserved or nbytes > m.reserved - start:
            raise ArenaFullError(f"allocation of {nbytes} bytes does not fit: "
                                 f"{m.reserved - min(start, m.reserved)} of "
                                 f"{m.reserved} bytes left")
        end = start + nbytes
        if start < sh.lo or end > sh.hi or end > m.committed or \
                arena_load(&c.punch_gen) != sh.pg:
            _shared_back(m, sh, start, end)
        key = end if nbytes else start + 1
        if not view and key > sh.heap_top:
            sh.heap_top = key
        if key > top:
            arena_store(&s.top, key)
        new = end | ((w + (ARENA_SEQ_ONE if end == cur else 0)) & SEQ_MASK)
        if arena_cas(&c.word, &w, new):
            break
    arena_store(&s.nalloc, s.nalloc + 1)
    if end > s.high_water:
        arena_store(&s.high_water, end)
    sh.before, sh.end, sh.taken = cur, end, new
    a.nused = end
    return start


cdef object _shared_array(Arena a, size_t nbytes, size_t align, int nd, cnp.npy_intp* dims,
                          cnp.dtype descr, int flags, bint zero):
    """_new's allocation in a shared arena: an array whose base is a lease of its own (the
    memory may have been another process's before: ``zero`` clears it all)."""
    cdef _Shared sh = _sh(a)
    cdef _Lease lease = _Lease.__new__(_Lease)
    cdef Py_ssize_t start = _shared_take(a, sh, nbytes, align, True)
    cdef size_t fresh
    _lease_link(sh, lease, _top_frame(a), start, start + nbytes if nbytes else start + 1)
    if zero:
        # Pages never handed out since the memfd got them read as zeros: only what lies
        # below the highest bump since then (or the last decommit) may be dirty.
        fresh = max(arena_load(&sh.ctl.dirty), sh.before)
        if <size_t>start < fresh:
            memset(a.base + start, 0, min(nbytes, fresh - <size_t>start))
    return _wrap(a, a.base + start, nd, dims, descr, flags, lease)


cdef char* _shared_bump(Arena a, size_t nbytes, size_t align) except NULL:
    """A raw allocation (alloc_raw): not a view, so nothing published."""
    return a.base + _shared_take(a, _sh(a), nbytes, align, False)


cdef void _shared_rollback(Arena a, size_t expected_end) noexcept:
    """Give back our last allocation if nothing happened on the bump since (full/array):
    the word must be the very one our swap left, sequence included, since a view another
    process registered over those bytes meanwhile moves the sequence only."""
    cdef _Shared sh = _sh(a)
    cdef arena_ctl_t* c = sh.ctl
    cdef uint64_t w = arena_load(&c.word)
    if sh.end != expected_end or w != sh.taken or sh.slot < 0:
        return
    arena_max(&c.dirty, sh.end)  # before the bump goes down: its bytes were written
    if arena_cas(&c.word, &w, sh.before | ((w + ARENA_SEQ_ONE) & SEQ_MASK)):
        arena_store(&c.slots[sh.slot].nalloc, c.slots[sh.slot].nalloc - 1)
        sh.end = sh.before


cdef _Lease _shared_register(_Shared sh, Mapping* m, _Frame frame, size_t lo, size_t hi,
                             uint64_t gen, bint received):
    """A lease over ``[lo, hi)``, bytes already handed out: for view(), or for an array
    received from another process (``gen``: the free count when it was sent)."""
    cdef arena_ctl_t* c
    cdef arena_slot_t* s
    cdef uint64_t w, key = hi if hi > lo else lo + 1, top, g
    cdef _Lease lease = _Lease.__new__(_Lease)
    if sh.slot < 0:
        _claim(sh)
    c = sh.ctl
    s = &c.slots[sh.slot]
    top = arena_load(&s.top)  # never lower it here: it covers the heap, a fork's hold
    if key > top:
        arena_store(&s.top, key)
        arena_fetch_add(&c.regs, 1)  # a free scanning the slots now must scan again
    w = arena_load(&c.word)
    while True:
        if hi > (w & ARENA_OFF_MASK):
            _publish(sh)
            if received:
                raise BufferError("the array's memory was freed (reset or release) while "
                                  "it was sent from another process")
            raise ValueError(f"view of {hi - lo} bytes at offset {lo} reaches past the "
                             f"{w & ARENA_OFF_MASK} bytes in use")
        if received and not _unfreed_since(c, gen, key):
            _publish(sh)
            raise BufferError("the array's memory may have been freed (reset or release) "
                              "while it was sent from another process")
        if arena_cas(&c.word, &w, (w & ARENA_OFF_MASK) | ((w + ARENA_SEQ_ONE) & SEQ_MASK)):
            break
    if hi > m.committed:
        _local_commit(m, min(round_up(hi, m.page), m.reserved))
    _lease_link(sh, lease, frame, lo, key)
    return lease


cdef bint _unfreed_since(arena_ctl_t* c, uint64_t g0, uint64_t key) noexcept nogil:
    """Whether no free since number ``g0`` went below ``key``."""
    return _floor_since(c, g0, FLOOR_NONE) >= key


# -- lifetime --------------------------------------------------------------------------------

cdef int _free_to(Arena a, _Shared sh, uint64_t floor, str what) except -1:
    """Move the bump down to ``floor`` unless a live view of another process reaches past
    it; 1 if it moved. (This process's own views are the caller's to check first; they are
    checked again here, after the last Python code before the swap.)"""
    sh.busy += 1
    try:
        return _free_to_floor(a, sh, floor, what)
    finally:
        sh.busy -= 1


cdef int _free_to_floor(Arena a, _Shared sh, uint64_t floor, str what) except -1:
    cdef arena_ctl_t* c = sh.ctl
    cdef uint64_t w, g, regs
    cdef Py_ssize_t waited = 0
    while True:
        # The word and the count of registered views are read before the scan: a view
        # registered after its slot was scanned moves the count (scan again) or the word (the
        # swap fails). The sequence in the word alone would wrap after 65536 registrations.
        w = arena_load(&c.word)
        regs = arena_load(&c.regs)
        holder = _holder(sh, floor)  # even with nothing to free: an empty view counts
        if holder is not None:
            if waited == len(_GRACE) and holder == ():
                raise BufferError(f"cannot {what}: a child this process is forking is still "
                                  "taking over the views of the shared arena's memory it "
                                  "inherited (if it found no process slot, or no pipe could "
                                  "be made for the fork, this process holds them for good)")
            if waited == len(_GRACE):
                held = f"{holder[1]} live view(s)" if holder[1] else \
                    "NumPy blocks (from numpy_allocator())"
                raise BufferError(f"cannot {what}: process {holder[0]} holds {held} of the "
                                  "shared arena's memory (a process holds what it allocated, "
                                  "received or, after fork, inherited, until it drops it or "
                                  "exits)")
            time.sleep(_GRACE[waited])
            waited += 1
            continue
        if arena_load(&c.regs) != regs:
            continue
        # Looking at the holders ran Python code: another thread of this process may have
        # allocated past the floor meanwhile. From this check to the swap none runs.
        if (sh.last != NULL and sh.last.key > floor) or heap_live_above(&a.heap, floor):
            raise BufferError(f"cannot {what}: views in this process reach past what it would "
                              "free (allocated by another thread meanwhile, or received before "
                              "this Arena was opened here): drop them first")
        if sh.fork_hold > floor:
            continue  # another thread began a fork meanwhile: wait for its child
        if floor >= (w & ARENA_OFF_MASK):
            return 0
        g = arena_fetch_add(&c.gen, 1) + 1
        arena_max(&c.dirty, w & ARENA_OFF_MASK)  # what was handed out may have been written
        if arena_cas(&c.word, &w, floor | ((w + ARENA_SEQ_ONE) & SEQ_MASK)):
            _ring_put(c, g, floor)
            return 1
        _ring_put(c, g, FLOOR_NONE)


cdef int64_t _total_nalloc(arena_ctl_t* c) noexcept nogil:
    cdef uint64_t i, n = arena_load(&c.nslots)
    cdef int64_t total = <int64_t>arena_load(<uint64_t*>&c.adjust)
    for i in range(n):
        total += <int64_t>arena_load(&c.slots[i].nalloc)
    return total


cdef int _set_nalloc(arena_ctl_t* c, int64_t target) except -1:
    arena_fetch_add(<uint64_t*>&c.adjust, <uint64_t>(target - _total_nalloc(c)))
    return 0


cdef int _shared_frame(Arena a, _Frame f) except -1:
    """A new mark level (_push_frame): the free count and the arena-wide allocations now."""
    cdef _Shared sh = _sh(a)
    f.gen = arena_load(&sh.ctl.gen)
    f.nalloc_start = _total_nalloc(sh.ctl)
    return 0


cdef int _shared_release(Arena a, Py_ssize_t level) except -1:
    """release(): this process's views since the mark are already checked; free down to
    the lowest the bump has been since the mark, unless a view reaches past it here (one
    below the mark that another process's release freed around) or in another process."""
    if a.sh is None:
        return 0
    cdef _Shared sh = _sh(a)
    cdef _Frame f = <_Frame>a.frames_rw[level]
    cdef uint64_t floor = _floor_since(sh.ctl, f.gen, f.start)
    cdef Py_ssize_t nalloc_start = f.nalloc_start
    if arena_load(&sh.ctl.gen) - f.gen >= <uint64_t>ARENA_RING:
        # Too many frees since the mark to tell how low they went (this process's inner
        # releases count too): free down to the mark only. Safe: another process's free
        # below a view of ours is refused, and what lies above the mark is scanned for.
        floor = f.start
    f = None  # a frame held while _free_to runs Python code would count as a live view
    if (sh.last != NULL and sh.last.key > floor) or heap_live_above(&a.heap, floor):
        raise BufferError("cannot release: a view of memory another process's release freed "
                          "around the mark is still alive (drop it first, e.g. with del)")
    _free_to(a, sh, floor, "release")
    _set_nalloc(sh.ctl, min(nalloc_start, _total_nalloc(sh.ctl)))
    heap_drop_from(a, floor)  # its free blocks up there may be handed to anyone now
    sh.heap_top = min(sh.heap_top, floor)
    return 0


cdef int _shared_reset(Arena a) except -1:
    """reset(): this process's views are already checked; the other processes' now."""
    if a.sh is None:
        return 0
    cdef _Shared sh = _sh(a)
    _free_to(a, sh, 0, "reset")
    _set_nalloc(sh.ctl, 0)
    sh.heap_top = 0
    return 0


cdef void _arena_dealloc(Arena a) noexcept:
    """Arena.__dealloc__: free the heap's records; a shared arena's _Shared (alive while
    arrays are) no longer has its Arena."""
    heap_dealloc(&a.heap)
    if a.sh is not None and (<_Shared>a.sh).arena == <PyObject*>a:
        (<_Shared>a.sh).arena = NULL


cdef void _shared_unpublish(Arena a) noexcept:
    """After alloc_raw's slow path: a raw pointer is no view, though published as one."""
    if a.sh is not None:
        _publish(_sh(a))


cdef int _shared_purge(Arena a) except -1:
    _check_open(a)
    if a.sh is not None:
        _shared_decommit(a, 0)
    return 0


cdef int _check_idle(Arena a) except -1:
    """close(): unmapping the control block under a thread whose reset, release or slot claim
    is running Python code (it waits, it reads /proc) would crash that thread."""
    if a.sh is None:
        return 0
    if _sh(a).busy:
        raise BufferError("cannot close: another thread is in a reset, release or first "
                          "allocation of this shared arena")
    if _sh(a).nleases:  # (views of an Arena object over this mapping that no longer exists)
        raise BufferError(f"cannot close: {_sh(a).nleases} view(s) are still alive")
    return 0


cdef int _shared_close(Arena a) except -1:
    """After close() unmapped the data here: give up the slot and the control block."""
    if a.sh is None:
        return 0
    cdef _Shared sh = _sh(a)
    sh.arena = NULL
    _untrack(sh)
    _shared_detach(sh)
    return 0


cdef object _view_base(Arena a, _Frame frame, size_t lo, size_t hi):
    """The base of a view() over ``[lo, hi)``: its frame, or a lease in a shared arena."""
    if a.sh is None:
        return frame
    return _shared_register(_sh(a), a.map, frame, lo, hi, 0, False)


# -- introspection ---------------------------------------------------------------------------

cdef inline size_t _used(Arena a) noexcept:
    """Bytes up to the bump: the arena-wide figure in a shared arena."""
    if a.sh is None:
        return a.nused
    return arena_load(&_sh(a).ctl.word) & ARENA_OFF_MASK


cdef object _figure(Arena a, str name):
    """The property ``name`` (committed, used, available, high_water, num_allocations):
    arena-wide in a shared arena."""
    _check_open(a)
    if a.sh is None:
        if name == "committed":
            return a.map.committed
        if name == "used" or name == "available":
            return a.nused if name == "used" else a.map.reserved - a.nused
        return a.nalloc if name == "num_allocations" else max(a.touched, a.high_water_before)
    if name == "used" or name == "available":
        return _used(a) if name == "used" else a.map.reserved - _used(a)
    return _shared_figure(a, name)


cdef object _shared_figure(Arena a, str name):
    """``committed``, ``high_water`` or ``num_allocations`` of a shared arena, arena-wide."""
    cdef arena_ctl_t* c
    cdef uint64_t i, hw
    _check_open(a)
    c = _sh(a).ctl
    if name == "committed":
        return arena_load(&c.committed)
    if name == "num_allocations":
        return max(0, _total_nalloc(c))
    hw = arena_load(&c.hw_base)
    for i in range(arena_load(&c.nslots)):
        hw = max(hw, arena_load(&c.slots[i].high_water))
    return hw


cdef int _shared_stats(Arena a, dict d) except -1:
    for name in ("committed", "high_water", "num_allocations"):
        d[name] = _shared_figure(a, name)
    d["used"] = _used(a)
    d["available"] = a.map.reserved - d["used"]
    d["processes"] = len(_live_processes(a))
    return 0


include "_shared_heap.pxi"
include "_shared_memory.pxi"
include "_shared_pickle.pxi"
