# The memory of an arena shared by several processes (_shared.pxi): making the two memfds or
# attaching to another process's, mapping the data PROT_NONE in this process, backing pages
# in the memfd (fallocate) before they are handed out, committing them here lazily, and
# punching free pages out for every process. Included by _core.pyx after _shared.pxi.

import stat

# -- making and attaching --------------------------------------------------------------------

cdef int _reserve(Arena a, options, int prot) except -1:
    """Reserve ``a``'s mapping: multi-process for Flags.SHARED without a file."""
    if Flags.SHARED not in options.flags or options.file is not None:
        return mapping_reserve(a.map, options, prot)
    cdef _Shared sh = options._sh if isinstance(options, _AttachOptions) else None
    cdef Mapping* m
    cdef int err
    cdef struct_stat st
    if sh is not None:  # the mapping this process has already (for arrays it received)
        a.sh = sh
        a.region = sh.region
        a.map = &a.region.m
        sh.arena = <PyObject*>a
        a.opts = _ctl_options(sh.ctl)
        return 0
    sh = _Shared()
    m = a.map
    if options.size > _MAX_SHARED_SIZE:
        raise ValueError(f"a shared arena holds at most {_MAX_SHARED_SIZE} bytes")
    a.sh = sh
    sh.region = a.region
    sh.arena = <PyObject*>a
    m.prot = prot
    m.flags = int(options.flags)
    m.page = options.page_size
    m.step = options.commit_step
    m.hugetlb = options.huge_page_size is not None
    m.shared = True
    m.reserved = options.size
    m.file_known = m.reserved
    fds = options._fds if isinstance(options, _AttachOptions) else None
    if fds is None:
        mfd = MFD_CLOEXEC | ((MFD_HUGETLB | (_log2(m.page) << MAP_HUGE_SHIFT)) if m.hugetlb
                             else 0)
        m.fd = memfd_create(b"arena", mfd)
        if m.fd < 0:
            err = errno
            raise os_error(err, "memfd_create")
        sh.ctl_fd = memfd_create(b"arena-control", MFD_CLOEXEC)
        if sh.ctl_fd < 0 or fallocate(sh.ctl_fd, 0, 0, CTL_SIZE) != 0:
            err = errno
            raise os_error(err, "memfd_create (control block)")
    else:
        m.fd, sh.ctl_fd = fds[0], fds[1]  # ours from here on
        fds[0] = fds[1] = -1
    p = mmap(NULL, CTL_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, sh.ctl_fd, 0)
    if p == MAP_FAILED:
        err = errno
        raise os_error(err, "mmap of the control block", CTL_SIZE, True)
    sh.ctl = <arena_ctl_t*>p
    if fstat(m.fd, &st) != 0:
        err = errno
        raise os_error(err, "fstat")
    if fds is None:
        _ctl_init(sh.ctl, options, st)
    elif sh.ctl.data_dev != st.st_dev or sh.ctl.data_ino != st.st_ino:
        raise ValueError("the descriptors given are not one shared arena's")
    sh.id = bytes(sh.ctl.id[:16])
    sh.ctl_ino = os.fstat(sh.ctl_fd).st_ino
    sh.pg = arena_load(&sh.ctl.punch_gen)
    _map_data(m, options)
    _advise(m)
    a.opts = _ctl_options(sh.ctl) if fds is not None else options
    _track(sh)
    return 0


cdef int _ctl_init(arena_ctl_t* c, options, struct_stat st) except -1:
    ident = os.urandom(16)
    c.magic = ARENA_CTL_MAGIC
    c.version = ARENA_CTL_VERSION
    c.ctl_size = sizeof(arena_ctl_t)
    c.reserved = options.size
    c.page = options.page_size
    c.step = options.commit_step
    c.alignment = options.alignment
    c.flags = int(options.flags)
    c.explicit_page = options._page_size or 0
    c.data_dev = st.st_dev
    c.data_ino = st.st_ino
    c.creator = getpid()
    for i in range(16):
        c.id[i] = ident[i]
    return 0


def _ctl_check(int ctl_fd, bytes ident):
    """The options of the shared arena whose control block ``ctl_fd`` is (ValueError if
    it is none, or another arena than ``ident``)."""
    # A descriptor reached through /proc may since name another file: reading a mapping
    # past a shorter file's end would kill this process with SIGBUS.
    st = os.fstat(ctl_fd)
    if not stat.S_ISREG(st.st_mode) or st.st_size < CTL_SIZE:
        raise ValueError("not a shared arena's control block")
    cdef void* p = mmap(NULL, CTL_SIZE, PROT_READ, MAP_SHARED, ctl_fd, 0)
    cdef arena_ctl_t* c = <arena_ctl_t*>p
    if p == MAP_FAILED:
        raise ValueError("not a shared arena's control block")
    try:
        if c.magic != ARENA_CTL_MAGIC or c.version != ARENA_CTL_VERSION or \
                c.ctl_size != sizeof(arena_ctl_t):
            raise ValueError("not a shared arena's control block (or another arena version)")
        if ident is not None and memcmp(c.id, <char*>ident, 16) != 0:
            raise ValueError("another shared arena's control block")
        return _ctl_options(c)
    finally:
        munmap(p, CTL_SIZE)


cdef object _ctl_options(arena_ctl_t* c):
    opts = (ArenaOptions(c.reserved).with_flags(Flags(c.flags))
            .with_commit_step(c.step).with_alignment(c.alignment))
    if c.explicit_page:
        opts = opts.with_page_size(c.explicit_page)
    return opts


class _AttachOptions(ArenaOptions):
    """Options of a shared arena to attach to, with the descriptors it comes in."""
    __slots__ = ("_fds", "_sh")

    def __init__(self, options, data_fd, ctl_fd, sh=None):
        for name in ArenaOptions.__slots__:
            object.__setattr__(self, name, getattr(options, name))
        object.__setattr__(self, "_fds", [data_fd, ctl_fd])
        object.__setattr__(self, "_sh", sh)  # a mapping this process has, to open again


cdef int _map_data(Mapping* m, options) except -1:
    """The PROT_NONE reservation over the data memfd (2 MiB-aligned for THP)."""
    cdef int err, flags = MAP_SHARED | MAP_NORESERVE
    cdef void* hint = NULL
    cdef void* p
    cdef char* start
    cdef size_t extra = 0, head
    if options.address is not None:
        hint = <void*><uintptr_t>options.address
        if UnsafeFlags.MAP_FIXED in options.unsafe_flags:
            flags |= MAP_FIXED
    elif (m.flags & F_THP) and not m.hugetlb:
        extra = THP_SIZE
    if extra:
        # Reserve anonymous space with room to align, then map the memfd over the aligned
        # part (a file mapping cannot be trimmed at its head: its offsets would move).
        p = mmap(NULL, m.reserved + extra, PROT_NONE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        if p == MAP_FAILED:
            err = errno
            raise os_error(err, f"mmap of {m.reserved} bytes", m.reserved + extra, True)
        head = round_up(<size_t><uintptr_t>p, THP_SIZE) - <size_t><uintptr_t>p
        start = <char*>p + head
        if mmap(start, m.reserved, PROT_NONE, flags | MAP_FIXED, m.fd, 0) == MAP_FAILED:
            err = errno
            munmap(p, m.reserved + extra)
            raise os_error(err, f"mmap of {m.reserved} bytes", m.reserved + extra, True)
        if head:
            munmap(p, head)
        if extra - head:
            munmap(start + m.reserved, extra - head)
        m.base = start
        return 0
    p = mmap(hint, m.reserved, PROT_NONE, flags, m.fd, 0)
    if p == MAP_FAILED:
        err = errno
        raise os_error(err, f"mmap of {m.reserved} bytes", m.reserved + extra, True)
    m.base = <char*>p
    return 0


# -- backing and local commit ----------------------------------------------------------------

cdef int _local_commit(Mapping* m, size_t new) except -1:
    """Make ``[0, new)`` accessible in this process (the memfd already backs it)."""
    cdef size_t old = m.committed, n
    cdef int err
    if new <= old:
        return 0
    n = new - old
    if mprotect(m.base + old, n, m.prot) != 0:
        err = errno
        raise os_error(err, f"committing {n} bytes (mprotect)", n)
    err = _prepare(m, m.base + old, n)
    if err:
        munlock(m.base + old, n)
        madvise(m.base + old, n, MADV_DONTNEED)  # this process's page tables only
        mprotect(m.base + old, n, PROT_NONE)
        if err == EFAULT or err == ENOMEM or err == EAGAIN:
            raise CommitError(err, f"the OS refused to back {n} bytes: {os.strerror(err)}")
        raise os_error(err, f"committing {n} bytes")
    m.committed = new
    return 0


cdef int _shared_back(Mapping* m, _Shared sh, size_t start, size_t end) except -1:
    """Make sure the memfd holds pages for ``[start, end)`` (up to the commit step past it)
    and that this process can touch them."""
    cdef arena_ctl_t* c = sh.ctl
    cdef uint64_t pg = arena_load(&c.punch_gen)
    cdef size_t lo, hi
    cdef int rc, err
    if end <= start:
        return 0  # an empty array touches nothing
    if pg != sh.pg:
        sh.lo = sh.hi = 0  # a decommit punched pages: trust nothing we knew
        sh.pg = pg
    hi = min(round_up(end, m.step), m.reserved)
    if not (sh.lo <= start and end <= sh.hi):
        lo = start // m.page * m.page
        if sh.lo <= lo < sh.hi:
            lo = sh.hi
        arena_max(&c.attempted, hi)
        while True:
            rc = fallocate(m.fd, 0, <off_t>lo, <off_t>(hi - lo))
            if rc == 0 or errno != EINTR:
                break
        if rc != 0:
            err = errno
            if err == ENOSPC or err == ENOMEM:
                why = " (the hugetlb pool has too few free pages)" if m.hugetlb else ""
                raise CommitError(err, f"the OS refused to back {hi - lo} bytes: "
                                  f"{os.strerror(err)}{why}")
            raise os_error(err, f"fallocate of {hi - lo} bytes of the shared arena")
        if lo <= sh.hi and hi >= sh.lo and sh.hi > sh.lo:
            sh.lo, sh.hi = min(lo, sh.lo), max(hi, sh.hi)
        else:
            sh.lo, sh.hi = start // m.page * m.page, hi
        arena_max(&c.committed, hi)
    if end > m.committed:
        _local_commit(m, min(hi, sh.hi))  # no further than what is known to be backed
    return 0


# -- decommit ------------------------------------------------------------------------------

cdef int _shared_decommit(Arena a, size_t used) except -1:
    """Punch the pages above the bump (and above ``used``: a Growable's items) out of the
    memfd, for every process: reserved first (the bump moved over them), so nothing is
    handed out there while they go."""
    cdef _Shared sh = _sh(a)
    cdef arena_ctl_t* c
    cdef Mapping* m = a.map
    cdef uint64_t w, cur, keep, top, held, x
    cdef int tries, err = 0
    if sh.slot < 0:
        _claim(sh)  # the hold is published in this process's slot
    c = sh.ctl
    for tries in range(8):
        w = arena_load(&c.word)
        cur = w & ARENA_OFF_MASK
        keep = round_up(max(cur, used), m.page)
        top = arena_load(&c.attempted)
        if keep >= top:
            break
        held = top | (w & SEQ_MASK)
        # Published as if a view reached ``top``: another process's reset or release waits
        # (then refuses) while the punch runs, instead of moving the bump down so that a third
        # allocates and writes in the range being punched (its bytes read as zeros after).
        if top > arena_load(&c.slots[sh.slot].top):
            arena_store(&c.slots[sh.slot].top, top)
            arena_fetch_add(&c.regs, 1)
        if not arena_cas(&c.word, &w, held):
            _publish(sh)
            continue
        arena_fetch_add(&c.punch_gen, 1)
        # Punched pages read as zeros again. Lowered before the punch, not after: a process
        # that writes above ``keep`` once the punch is over and frees raises it again, and a
        # lowering after that would hide its bytes from zeros(). (A page written during the
        # punch is not lost: the kernel holds faults in a range being punched until it ends.)
        x = arena_load(&c.dirty)
        if x > keep:
            arena_cas(&c.dirty, &x, keep)  # a failed swap leaves it higher: only errs safe
        if fallocate(m.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, <off_t>keep,
                     <off_t>(top - keep)) != 0:
            err = errno
            arena_max(&c.dirty, top)  # nothing was punched, perhaps
        x = top
        arena_cas(&c.attempted, &x, keep)
        x = arena_load(&c.committed)
        if x <= top:
            arena_cas(&c.committed, &x, min(x, keep))
        arena_cas(&c.word, &held, cur | ((held + ARENA_SEQ_ONE) & SEQ_MASK))
        _publish(sh)
        break
    keep = round_up(max(arena_load(&c.word) & ARENA_OFF_MASK, used), m.page)
    if keep < m.committed:  # this process's own page tables and guard pages
        mapping_uncommit_local(m, keep)
    if err:
        raise os_error(err, "fallocate (punching the shared arena's free pages)")
    return 0


cdef void mapping_uncommit_local(Mapping* m, size_t keep) noexcept nogil:
    cdef size_t n = m.committed - keep
    munlock(m.base + keep, n)
    madvise(m.base + keep, n, MADV_DONTNEED)
    mprotect(m.base + keep, n, PROT_NONE)
    m.committed = keep


cdef int _shared_commit(Arena a, size_t end) except -1:
    if end:
        _shared_back(a.map, _sh(a), 0, end)
    return 0
