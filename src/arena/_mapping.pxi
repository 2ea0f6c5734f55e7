# The OS layer (mmap-rs's os_impl): reserve, commit, uncommit, populate, lock, protect, flush
# and the file behind a mapping. Functions over a ``Mapping`` struct; nothing here knows about
# NumPy, frames or the bump pointer. Included by _core.pyx.

from libc.errno cimport EACCES, EAGAIN, EFAULT, EINVAL, ENOMEM, errno
from libc.string cimport memset
from libc.stdint cimport uintptr_t
from posix cimport fcntl, unistd
from posix.unistd cimport getpid
from posix.stat cimport fstat, struct_stat

from arena._fcntl cimport F_OFD_SETLK
from arena._pthread cimport pthread_atfork
from arena._mman cimport (MADV_DONTDUMP, MADV_DONTNEED, MADV_HUGEPAGE, MADV_POPULATE_READ,
                          MADV_POPULATE_WRITE, MADV_RANDOM, MADV_REMOVE, MADV_SEQUENTIAL,
                          MAP_ANONYMOUS, MAP_FAILED, MAP_FIXED, MAP_HUGE_SHIFT, MAP_HUGETLB,
                          MAP_NORESERVE, MAP_PRIVATE, MAP_SHARED, MFD_CLOEXEC, MFD_HUGETLB,
                          MS_ASYNC, MS_SYNC, PROT_NONE, PROT_READ, PROT_WRITE, madvise,
                          memfd_create, mlock, mmap, mprotect, msync, munlock, munmap)

import io

from ._errors import ArenaFullError, CommitError, os_error
from ._options import Flags, UnsafeFlags

cdef unsigned int F_POPULATE = Flags.POPULATE
cdef unsigned int F_SHARED = Flags.SHARED
cdef unsigned int F_NO_RESERVE = Flags.NO_RESERVE
cdef unsigned int F_THP = Flags.TRANSPARENT_HUGE_PAGES
cdef unsigned int F_LOCKED = Flags.LOCKED
cdef unsigned int F_NO_CORE_DUMP = Flags.NO_CORE_DUMP
cdef unsigned int F_SEQUENTIAL = Flags.SEQUENTIAL
cdef unsigned int F_RANDOM = Flags.RANDOM_ACCESS
cdef size_t THP_SIZE = 2 << 20


cdef extern from * nogil:
    """
    /* Fallback prefault for kernels without MADV_POPULATE_*: read and write back one byte
       a page, so that contents are kept. */
    static void arena_touch(char *p, size_t n, size_t page, int write) {
        for (size_t i = 0; i < n; i += page) {
            volatile char *q = (volatile char *)(p + i);
            char c = *q;
            if (write) *q = c;
        }
    }
    """
    void arena_touch(char* p, size_t n, size_t page, int write)


# fork() calls this process has made. A child of a fork shares a MAP_SHARED mapping and can
# write anywhere in it without the parent knowing: after a fork, no shared byte is known to
# be fresh any more (see mapping_fresh_from).
cdef unsigned long _forks = 0


# fork() calls this process is the child of (the parent's count is not moved by them): state
# that a thread of the parent was in the middle of is not in that thread's hands here.
cdef unsigned long _fork_children = 0


cdef void _count_fork() noexcept nogil:
    global _forks
    _forks += 1


cdef void _count_fork_child() noexcept nogil:
    global _fork_children
    _fork_children += 1


pthread_atfork(_count_fork, NULL, _count_fork_child)


cdef inline size_t mapping_fresh_from(Mapping* m, size_t touched) noexcept nogil:
    """Offset from which the mapping reads as zeros, given that this process wrote nothing
    at or above ``touched``: anonymous pages, a memfd and a file where it grows all start
    zeroed, but after a fork the child may have written any shared page."""
    if m.shared and m.forks != _forks:
        return m.reserved
    return touched


cdef inline size_t round_up(size_t n, size_t multiple) noexcept nogil:
    return (n + multiple - 1) // multiple * multiple


cdef int _log2(size_t n) noexcept nogil:
    cdef int k = 0
    while (<size_t>1 << k) < n:
        k += 1
    return k


cdef class _Region:
    """Owns one mapping: unmapped when the arena and the last view that uses it are gone."""

    def __cinit__(self):
        self.m.base = NULL
        self.m.fd = -1

    def __dealloc__(self):
        if self.m.base != NULL:
            munmap(self.m.base, self.m.reserved)
            mapping_trim_file(&self.m, self.m.file_used)
        if self.m.fd >= 0:
            unistd.close(self.m.fd)


cdef int mapping_reserve(Mapping* m, options, int prot) except -1:
    """Reserve ``options.size`` bytes PROT_NONE (a file, a memfd or anonymous memory) and
    advise it as the flags ask; on failure nothing stays mapped or open."""
    cdef int mflags, err, fd = -1
    cdef size_t length = options.size, extra = 0, head, have = 0
    cdef void* hint = NULL
    cdef void* p
    cdef char* start
    m.prot = prot
    m.forks = _forks
    m.pid = getpid()
    m.flags = int(options.flags)
    m.page = options.page_size
    m.step = options.commit_step
    m.hugetlb = options.huge_page_size is not None
    m.shared = (m.flags & F_SHARED) != 0
    m.reserved = length
    if options.file is not None:
        if m.hugetlb:
            raise ValueError("explicit huge pages need anonymous memory: drop with_file "
                             "or the huge page size")
        writer = (prot & PROT_WRITE) != 0
        fd, name = _open_file(options.file, writer)
        m.fd = fd  # owned from here on: the region closes it
        m.file_backed = True
        m.file_offset = options.offset
        if writer:
            _lock_file(fd, m.file_offset, length, name)
        have = <size_t>mapping_file_size(m)
        have = have - min(have, m.file_offset)
        m.file_initial = have
    elif m.shared:
        mfd = MFD_CLOEXEC
        if m.hugetlb:
            mfd |= MFD_HUGETLB | (_log2(m.page) << MAP_HUGE_SHIFT)
        fd = memfd_create(b"arena", mfd)
        if fd < 0:
            err = errno
            raise os_error(err, "memfd_create")
    m.fd = fd  # owned from here on: the region closes it
    mflags = MAP_SHARED if m.shared else MAP_PRIVATE
    if not m.shared:
        fd = -1  # private: anonymous memory, with the file's own pages mapped over its head
    if fd < 0:
        mflags |= MAP_ANONYMOUS
    if m.hugetlb and fd < 0:
        mflags |= MAP_HUGETLB | (_log2(m.page) << MAP_HUGE_SHIFT)
    if m.hugetlb or (m.flags & F_NO_RESERVE):
        # hugetlb without NORESERVE reserves the whole size from the pool up front.
        mflags |= MAP_NORESERVE
    if options.address is not None:
        hint = <void*><uintptr_t>options.address
        if UnsafeFlags.MAP_FIXED in options.unsafe_flags:
            mflags |= MAP_FIXED
    elif UnsafeFlags.MAP_FIXED in options.unsafe_flags:
        raise ValueError("UnsafeFlags.MAP_FIXED needs an address (with_address)")
    if (m.flags & F_THP) and fd < 0 and hint == NULL:
        extra = THP_SIZE
    if length + extra < length:
        raise ValueError("size too large")
    p = mmap(hint, length + extra, PROT_NONE, mflags, fd, <long>m.file_offset if fd >= 0 else 0)
    if p == MAP_FAILED:
        err = errno
        raise os_error(err, f"mmap of {length} bytes", length + extra, True)
    start = <char*>p
    if extra:
        # Over-reserved by one huge page: trim head and tail to a 2 MiB-aligned range.
        head = round_up(<size_t><uintptr_t>p, THP_SIZE) - <size_t><uintptr_t>p
        if head:
            munmap(p, head)
        if extra - head:
            munmap(start + head + length, extra - head)
        start = start + head
    m.base = start
    if m.file_backed and not m.shared and have:
        _map_file_head(m, mflags & MAP_NORESERVE, min(round_up(have, m.page), length))
    _advise(m)
    return 0


cdef int _map_file_head(Mapping* m, int noreserve, size_t n) except -1:
    """Map the file's own pages, copy-on-write, over the head of a private reservation:
    the arena reads the file's bytes there, and everything it writes anywhere stays in
    this process. (Pages past the file's end would raise SIGBUS: above the head the
    reservation stays anonymous.)"""
    cdef int err
    if mmap(m.base, n, PROT_NONE, MAP_PRIVATE | MAP_FIXED | noreserve, m.fd,
            <long>m.file_offset) == MAP_FAILED:
        err = errno
        mapping_unmap(m)
        raise os_error(err, f"mmap of the file's first {n} bytes", n, True)
    return 0


cdef tuple _open_file(file, bint writable):
    """An open of our own of ``file`` (a path, an fd or a file object), and its name for
    messages. An fd or a file object is opened again through /proc/self/fd rather than
    dup()ed: a dup shares the caller's open file description, and with it the OFD lock, so
    two arenas over one descriptor would not exclude each other."""
    cdef int fd, err, given, mode
    if isinstance(file, int) or hasattr(file, "fileno"):
        if isinstance(file, int):
            given = file
        else:
            if hasattr(file, "flush"):
                file.flush()
            given = file.fileno()
        mode = fcntl.fcntl(given, fcntl.F_GETFL)
        if mode < 0:
            err = errno
            raise os_error(err, f"fcntl of file descriptor {given}")
        try:
            name = os.readlink(f"/proc/self/fd/{given}")
        except OSError:
            name = f"file descriptor {given}" if isinstance(file, int) else repr(file)
        mode &= fcntl.O_ACCMODE
        if writable and mode != fcntl.O_RDWR:
            raise io.UnsupportedOperation(
                f"{name} is not open for {'writing' if mode == fcntl.O_RDONLY else 'reading'}: "
                "a writable arena (reserve(), map_mut()) needs it open for reading and "
                "writing ('r+b', 'w+b' or os.O_RDWR); map() only reads it")
        if not writable and mode == fcntl.O_WRONLY:
            raise io.UnsupportedOperation(f"{name} is not open for reading")
        fd = fcntl.open(os.fsencode(f"/proc/self/fd/{given}"),
                        fcntl.O_CLOEXEC | (fcntl.O_RDWR if writable else fcntl.O_RDONLY))
        if fd < 0:  # no /proc: share the caller's open (and its lock) instead
            fd = fcntl.fcntl(given, fcntl.F_DUPFD_CLOEXEC, 0)
    else:
        path = os.fsencode(file)
        flags = fcntl.O_CLOEXEC | (fcntl.O_RDWR | fcntl.O_CREAT if writable else fcntl.O_RDONLY)
        fd = fcntl.open(path, flags, 0o644)
        name = os.fsdecode(path)
    if fd < 0:
        err = errno
        raise os_error(err, f"open {name}")
    return fd, name


cdef int _lock_file(int fd, size_t offset, size_t length, str name) except -1:
    """Hold ``[offset, offset + length)`` of the file for this arena alone: two writers would
    hand out the same offsets. An OFD lock belongs to this open of the file, so it excludes
    other arenas of this process as well as other processes, and goes with the last
    descriptor of the open (the region's). File systems without OFD locks go unlocked."""
    cdef fcntl.flock fl
    cdef int err
    memset(&fl, 0, sizeof(fl))
    fl.l_type = fcntl.F_WRLCK
    fl.l_whence = fcntl.SEEK_SET
    fl.l_start = <fcntl.off_t>offset
    fl.l_len = <fcntl.off_t>length
    if fcntl.fcntl(fd, F_OFD_SETLK, &fl) == 0:
        return 0
    err = errno
    if err == EAGAIN or err == EACCES:
        raise OSError(err, "the file is already open for writing by another arena (in this "
                           "process or another): a file has one writer at a time; close "
                           "that arena first, or open this one read-only with map()", name)
    return 0


cdef int _advise(Mapping* m) except -1:
    """madvise the whole reservation as the flags ask: the advice sticks to the mapping, so
    pages committed later inherit it."""
    cdef int err
    for flag, advice, name in ((F_THP, MADV_HUGEPAGE, "MADV_HUGEPAGE"),
                               (F_NO_CORE_DUMP, MADV_DONTDUMP, "MADV_DONTDUMP"),
                               (F_SEQUENTIAL, MADV_SEQUENTIAL, "MADV_SEQUENTIAL"),
                               (F_RANDOM, MADV_RANDOM, "MADV_RANDOM")):
        if (m.flags & flag) and madvise(m.base, m.reserved, advice):
            err = errno
            mapping_unmap(m)
            raise os_error(err, f"madvise({name})")
    return 0


cdef int mapping_unmap(Mapping* m) except -1:
    cdef int err
    if m.base != NULL:
        if munmap(m.base, m.reserved) != 0:
            err = errno
            raise os_error(err, "munmap")
        m.base = NULL
        m.committed = 0
    if m.fd >= 0:
        unistd.close(m.fd)
        m.fd = -1
    return 0


cdef long mapping_file_size(Mapping* m) except -2:
    """Bytes of the file behind the mapping (from its start, not the offset)."""
    cdef struct_stat st
    cdef int err
    if fstat(m.fd, &st) != 0:
        err = errno
        raise os_error(err, "fstat")
    return st.st_size


cdef int _grow_file(Mapping* m, size_t upto) except -1:
    """Make the file cover ``[0, upto)``: bytes written past its end would be lost and pages
    past its end raise SIGBUS."""
    cdef long size
    cdef int err
    if upto <= m.file_known:
        return 0
    size = mapping_file_size(m)
    if <size_t>size < m.file_offset + upto:
        if unistd.ftruncate(m.fd, <long>(m.file_offset + upto)) != 0:
            err = errno
            raise os_error(err, "ftruncate (growing the file)")
    m.file_known = max(upto, <size_t>size - min(<size_t>size, m.file_offset))
    return 0


cdef void mapping_trim_file(Mapping* m, size_t used) noexcept nogil:
    """Give a shared file back what commit steps grew it by past ``used`` (bytes past the
    offset the arena handed out, at least what the file held when mapped): the file grows
    by what is used. Only the process that mapped it, with no fork since (a child could
    have written past ``used``), and only when no one else grew the file further."""
    cdef struct_stat st
    cdef size_t keep = max(used, m.file_initial)
    if not (m.shared and m.file_backed and m.fd >= 0) or m.forks != _forks or \
            getpid() != m.pid or keep >= m.file_known or fstat(m.fd, &st) != 0:
        return
    if <size_t>st.st_size == m.file_offset + m.file_known and \
            unistd.ftruncate(m.fd, <long>(m.file_offset + keep)) == 0:
        m.file_known = keep


cdef void _shrink_file(Mapping* m, long old_size) noexcept nogil:
    if old_size >= 0:
        unistd.ftruncate(m.fd, old_size)
        m.file_known = min(m.file_known, <size_t>old_size - min(<size_t>old_size, m.file_offset))


cdef int mapping_commit(Mapping* m, size_t end, bint grow) except -1:
    """Make ``[0, end)`` accessible with ``m.prot`` (rounded up to the commit step); with
    ``grow``, make the file or memfd behind a shared mapping cover it first (a page past a
    file's end raises SIGBUS). On failure nothing changes."""
    cdef size_t new, old = m.committed, n, have
    cdef int err
    cdef long old_size = -1
    cdef bint backed = m.shared and m.fd >= 0
    if end <= old:
        if grow and backed and end > m.file_known:
            _grow_file(m, old)
        return 0
    if end > m.reserved:
        raise ArenaFullError(f"{end} bytes do not fit in the {m.reserved}-byte reservation")
    new = round_up(end, m.step)
    if new > m.reserved or new < end or (backed and not grow):
        new = round_up(end, m.page)
    n = new - old
    if backed:
        old_size = mapping_file_size(m)
        have = <size_t>old_size - min(<size_t>old_size, m.file_offset)
        if grow:
            _grow_file(m, new)
            if have >= new:
                old_size = -1  # nothing to shrink back on failure
        else:
            old_size = -1
            if round_up(have, m.page) < new:
                raise ValueError(f"cannot commit {new} bytes of a file that holds {have} "
                                 "past the offset without writing to it")
    if mprotect(m.base + old, n, m.prot) != 0:
        err = errno
        _shrink_file(m, old_size)
        raise os_error(err, f"committing {n} bytes (mprotect)", n)
    err = _prepare(m, m.base + old, n)
    if err:
        mapping_uncommit(m, old, new)
        _shrink_file(m, old_size)
        if err == EFAULT or err == ENOMEM or err == EAGAIN:
            raise CommitError(err, f"the OS refused to back {n} bytes: {os.strerror(err)}"
                              + (" (the hugetlb pool has too few free pages)"
                                 if m.hugetlb else ""))
        raise os_error(err, f"committing {n} bytes")
    m.committed = new
    return 0


cdef int _populate(Mapping* m, char* p, size_t n) noexcept nogil:
    """Prefault ``[p, p+n)``; an errno on failure (never SIGBUS for hugetlb)."""
    cdef int advice
    if not (m.prot & PROT_READ):
        return 0
    advice = MADV_POPULATE_WRITE if (m.prot & PROT_WRITE) else MADV_POPULATE_READ
    if madvise(p, n, advice) == 0:
        return 0
    if errno == EINVAL and not m.hugetlb:
        arena_touch(p, n, m.page, m.prot & PROT_WRITE)
        return 0
    return errno


cdef int _prepare(Mapping* m, char* p, size_t n) noexcept nogil:
    """Populate and lock freshly committed pages as the flags ask; an errno on failure."""
    cdef int err
    if m.hugetlb or (m.flags & F_POPULATE):
        err = _populate(m, p, n)
        if err:
            return err
    if (m.locked or (m.flags & F_LOCKED)) and (m.prot & PROT_READ):
        if mlock(p, n) != 0:
            return errno
    return 0


cdef void mapping_uncommit(Mapping* m, size_t start, size_t end) noexcept nogil:
    """Return ``[start, end)`` to the OS and make it inaccessible. Shared anonymous memory
    needs MADV_REMOVE: DONTNEED would only unmap it and keep the memfd's pages."""
    cdef char* p = m.base + start
    cdef size_t n = end - start
    if n == 0:
        return
    munlock(p, n)  # DONTNEED fails on locked pages
    if m.shared and not m.file_backed:
        madvise(p, n, MADV_REMOVE)
    else:
        madvise(p, n, MADV_DONTNEED)
    mprotect(p, n, PROT_NONE)


cdef void mapping_decommit_from(Mapping* m, size_t keep) noexcept nogil:
    """Uncommit everything from ``keep`` (page-aligned) up: ``committed`` shrinks."""
    if keep < m.committed:
        mapping_uncommit(m, keep, m.committed)
        m.committed = keep


cdef int mapping_protect(Mapping* m, int prot, str what) except -1:
    """Give the committed range (and what is committed later) protection ``prot``; on
    failure the old protection stays."""
    cdef int err, old = m.prot
    if m.committed and mprotect(m.base, m.committed, prot) != 0:
        err = errno
        mprotect(m.base, m.committed, old)
        raise os_error(err, f"mprotect ({what})", m.committed)
    m.prot = prot
    if m.committed and m.hugetlb and not (old & PROT_READ) and (prot & PROT_READ):
        # Hugetlb pages are only safe to touch once populated.
        err = _populate(m, m.base, m.committed)
        if err:
            m.prot = old
            mprotect(m.base, m.committed, old)
            raise CommitError(err, f"the OS refused to back the arena: {os.strerror(err)}")
    return 0


cdef int mapping_lock(Mapping* m) except -1:
    """mlock the committed range, and every page committed from now on."""
    cdef int err
    if m.committed and mlock(m.base, m.committed) != 0:
        err = errno
        if not (m.locked or (m.flags & F_LOCKED)):  # undo a partial lock only
            munlock(m.base, m.committed)
        raise os_error(err, f"mlock of {m.committed} bytes")
    m.locked = True
    return 0


cdef int mapping_unlock(Mapping* m) except -1:
    cdef int err
    if m.committed and munlock(m.base, m.committed) != 0:
        err = errno
        raise os_error(err, "munlock")
    m.locked = False
    return 0


cdef int mapping_flush(Mapping* m, size_t start, size_t length, bint asynchronous) except -1:
    """msync ``[start, start + length)`` (``start`` rounded down to a page)."""
    cdef int err
    cdef size_t first = start // m.page * m.page
    length += start - first
    if length and msync(m.base + first, length, MS_ASYNC if asynchronous else MS_SYNC):
        err = errno
        raise os_error(err, "msync")
    return 0
