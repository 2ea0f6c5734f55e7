"""Arena: one reservation, a commit frontier, a bump pointer and per-level frames.

Safety rests on one rule: every array handed out has as its base a ``_Frame`` of the mark
level it was allocated in, so a frame's reference count (less the arena's own reference)
is the number of live views of that level. Releasing, resetting, closing and protection
changes refuse with BufferError while views that they would break are alive.
"""
import operator
import os

import numpy as np

cimport numpy as cnp
from cpython.ref cimport Py_INCREF
from cpython.pyport cimport PY_SSIZE_T_MAX
from libc.stdint cimport uintptr_t

from arena._posix cimport *

from ._options import ArenaOptions, Flags, Protection, UnsafeFlags

cnp.import_array()


class ArenaError(Exception):
    """Base class of the arena's own errors.

    Examples
    --------
    >>> import arena
    >>> issubclass(arena.ArenaFullError, arena.ArenaError)
    True
    """


class ArenaFullError(ArenaError, MemoryError):
    """An allocation does not fit in what is left of the reservation (a MemoryError).

    Examples
    --------
    >>> import arena
    >>> a = arena.Arena(4096)
    >>> try:
    ...     a.alloc(4097)
    ... except MemoryError as exc:
    ...     print(type(exc).__name__, a.used)
    ArenaFullError 0
    """


class CommitError(ArenaError, MemoryError):
    """The operating system refused to commit memory (commit charge, rlimit, hugetlb pool).

    ``errno`` holds the error number the system call returned. Raised, for example, when
    RLIMIT_DATA or the commit charge refuses an ``mprotect``, when a hugetlb pool runs out
    (``MADV_POPULATE_WRITE`` fails instead of a SIGBUS), or when mlock hits RLIMIT_MEMLOCK.

    Examples
    --------
    >>> import errno, arena
    >>> exc = arena.CommitError(errno.ENOMEM, "the OS refused to back 2097152 bytes")
    >>> isinstance(exc, MemoryError), exc.errno == errno.ENOMEM
    (True, True)
    """

    def __init__(self, errno, message):
        super().__init__(message)
        self.errno = errno


cdef int F_POPULATE = Flags.POPULATE
cdef int F_SHARED = Flags.SHARED
cdef int F_NO_RESERVE = Flags.NO_RESERVE
cdef int F_THP = Flags.TRANSPARENT_HUGE_PAGES
cdef int F_LOCKED = Flags.LOCKED
cdef int F_NO_CORE_DUMP = Flags.NO_CORE_DUMP
cdef int F_SEQUENTIAL = Flags.SEQUENTIAL
cdef int F_RANDOM = Flags.RANDOM_ACCESS
cdef int RW = PROT_READ | PROT_WRITE
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


cdef inline size_t round_up(size_t n, size_t multiple) noexcept nogil:
    return (n + multiple - 1) // multiple * multiple


cdef object os_error(int err, str what):
    """OSError (the right subclass) for errno ``err``; MemoryError's subclass for ENOMEM."""
    if err == ENOMEM or err == EAGAIN:
        return CommitError(err, f"{what}: {os.strerror(err)}")
    return OSError(err, f"{what}: {os.strerror(err)}")


cdef class _Region:
    def __cinit__(self):
        self.base = NULL
        self.size = 0
        self.fd = -1

    cdef int unmap(self) except -1:
        cdef int err
        if self.base != NULL:
            if munmap(self.base, self.size) != 0:
                err = errno
                raise os_error(err, "munmap")
            self.base = NULL
        if self.fd >= 0:
            close(self.fd)
            self.fd = -1
        return 0

    def __dealloc__(self):
        if self.base != NULL:
            munmap(self.base, self.size)
        if self.fd >= 0:
            close(self.fd)


cdef class _Frame:
    def __repr__(self):
        return f"<arena frame at offset {self.start}>"


cdef class Mark:
    """A checkpoint from :meth:`Arena.mark`, for :meth:`Arena.release`.

    ``arena`` is the arena it belongs to and ``offset`` the bump pointer when it was taken.

    Examples
    --------
    >>> import arena
    >>> a = arena.Arena(1 << 20)
    >>> x = a.alloc(100)
    >>> m = a.mark()
    >>> m.offset, m.arena is a
    (100, True)
    """

    @property
    def arena(self):
        """The :class:`Arena` this mark belongs to."""
        return self.owner

    @property
    def offset(self):
        """The bump pointer (bytes from the arena's start) when the mark was taken."""
        return self.start

    def __repr__(self):
        return f"<arena.Mark level={self.level} offset={self.start}>"


cdef class _Scope:
    cdef Arena arena
    cdef Mark mark

    def __cinit__(self, Arena arena):
        self.arena = arena

    def __enter__(self):
        self.mark = self.arena.mark()
        return self.mark

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.arena.release(self.mark)
            return False
        # An exception is on its way and its traceback may hold views: release if we can,
        # otherwise keep the level (its memory stays valid) rather than mask the exception.
        try:
            self.arena.release(self.mark)
        except (BufferError, ValueError):
            pass
        return False


_C = "C"


cdef int _order_flag(object order) except -1:
    if order is None or order == "C" or order == "c":
        return 0
    if order == "F" or order == "f":
        return cnp.NPY_ARRAY_F_CONTIGUOUS
    raise ValueError(f"order must be 'C' or 'F', got {order!r}")


cdef size_t _check_align(object align, size_t page) except 0:
    cdef Py_ssize_t a
    if isinstance(align, bool):
        raise TypeError("align must be an integer")
    a = operator.index(align)
    if a <= 0 or (a & (a - 1)) != 0:
        raise ValueError(f"align must be a power of two, got {a}")
    if <size_t>a > page:
        raise ValueError(f"align {a} is larger than the arena's page size {page}")
    return <size_t>a


cdef int _parse_shape(object shape, cnp.npy_intp* dims) except -1:
    """Fill ``dims``; return the number of dimensions."""
    cdef Py_ssize_t d
    cdef int nd = 0
    if PyLong_CheckExact(shape):
        d = shape
        if d < 0:
            raise ValueError("negative dimensions are not allowed")
        dims[0] = d
        return 1
    if PyTuple_CheckExact(shape):
        items = shape
    elif isinstance(shape, bool):
        raise TypeError("shape must be an int or a sequence of ints, not bool")
    elif hasattr(shape, "__index__"):
        d = operator.index(shape)
        if d < 0:
            raise ValueError("negative dimensions are not allowed")
        dims[0] = d
        return 1
    else:
        if hasattr(shape, "__len__") and len(shape) > cnp.NPY_MAXDIMS:
            raise ValueError(f"maximum supported dimension for an ndarray is "
                             f"{cnp.NPY_MAXDIMS}, found {len(shape)}")
        try:
            items = tuple(shape)
        except TypeError:
            raise TypeError(f"shape must be an int or a sequence of ints, "
                            f"not {type(shape).__name__}") from None
    if len(items) > cnp.NPY_MAXDIMS:
        raise ValueError(f"maximum supported dimension for an ndarray is {cnp.NPY_MAXDIMS}, "
                         f"found {len(items)}")
    for item in items:
        if PyLong_CheckExact(item):
            d = item
        elif isinstance(item, bool):
            raise TypeError("shape entries must be integers, not bool")
        else:
            d = operator.index(item)
        if d < 0:
            raise ValueError("negative dimensions are not allowed")
        dims[nd] = d
        nd += 1
    return nd


cdef size_t _nbytes(int nd, cnp.npy_intp* dims, size_t itemsize) except? 0:
    cdef size_t total = itemsize
    cdef int i
    for i in range(nd):
        if arena_mul_overflow(total, <size_t>dims[i], &total):
            raise ValueError("array is too big: its byte size overflows")
    for i in range(nd):
        if dims[i] == 0:
            return 0
    if total > <size_t>PY_SSIZE_T_MAX:
        raise ValueError("array is too big: its byte size exceeds the largest array NumPy allows")
    return total


cdef class Arena:
    """Arena(size_or_options)

    A bump allocator over one reserved address range, handing out NumPy arrays.

    Parameters
    ----------
    size_or_options : int or ArenaOptions
        Bytes to reserve (the same as ``ArenaOptions(size).reserve()``) or the options.

    Notes
    -----
    Memory is returned wholesale with :meth:`reset`, :meth:`mark`/:meth:`release` and
    :meth:`scope`; each refuses with BufferError while arrays it would free are alive.

    Examples
    --------
    >>> import numpy as np
    >>> from arena import Arena
    >>> with Arena(1 << 30) as a:
    ...     x = a.zeros((3, 4), np.float32)
    ...     x += 1
    ...     print(x.sum(), a.offset_of(x), a.used)
    ...     del x
    12.0 0 48
    """

    def __cinit__(self, size_or_options, protection=Protection.READ_WRITE):
        self.base = NULL
        self.blocks = NULL
        self.frames_rw = []
        self.frames_ro = []
        if isinstance(size_or_options, ArenaOptions):
            options = size_or_options
        elif not isinstance(size_or_options, bool) and hasattr(size_or_options, "__index__"):
            options = ArenaOptions(size_or_options)  # int, numpy integers: validated there
        else:
            raise TypeError("Arena() takes a size in bytes or an ArenaOptions, "
                            f"not {type(size_or_options).__name__}")
        if not isinstance(protection, Protection):
            raise TypeError("protection must be a Protection")
        self.opts = options
        self.prot = int(protection)
        if (self.prot & PROT_WRITE) and (self.prot & PROT_EXEC) and \
                UnsafeFlags.JIT not in options.unsafe_flags:
            raise PermissionError("writable and executable pages need UnsafeFlags.JIT (W^X)")
        self.flags = int(options.flags)
        self.page = options.page_size
        self.hugetlb = options.huge_page_size is not None
        self.nreserved = options.size
        self.step = options.commit_step
        self.align = options.alignment
        self.shared = (self.flags & F_SHARED) != 0
        self.region = _Region()
        self._map()
        self.base = self.region.base
        self.high_water_before = 0
        self.next_serial = 0
        self._push_frame(0)
        if self.file_backed:
            self._adopt_file_contents()
        self._update_limit()

    cdef _map(self):
        cdef int mflags, err, fd = -1
        cdef size_t length = self.nreserved, extra = 0, head
        cdef void* hint = NULL
        cdef void* p
        cdef char* start
        options = self.opts
        if options.file is not None:
            if self.hugetlb:
                raise ValueError("explicit huge pages need anonymous memory: drop with_file "
                                 "or the huge page size")
            fd = self._open_file(options.file)
            self.file_backed = True
            self.file_offset = options.offset
        elif self.shared:
            name = b"arena"
            mfd = MFD_CLOEXEC
            if self.hugetlb:
                mfd |= MFD_HUGETLB | (_log2(self.page) << MAP_HUGE_SHIFT)
            fd = memfd_create(name, mfd)
            if fd < 0:
                err = errno
                raise os_error(err, "memfd_create")
        self.region.fd = fd
        mflags = MAP_SHARED if self.shared else MAP_PRIVATE
        if fd < 0:
            mflags |= MAP_ANONYMOUS
        if self.hugetlb and fd < 0:
            mflags |= MAP_HUGETLB | (_log2(self.page) << MAP_HUGE_SHIFT)
        if self.hugetlb or (self.flags & F_NO_RESERVE):
            # hugetlb without NORESERVE reserves the whole size from the pool up front.
            mflags |= MAP_NORESERVE
        if options.address is not None:
            hint = <void*><uintptr_t>options.address
            if UnsafeFlags.MAP_FIXED in options.unsafe_flags:
                mflags |= MAP_FIXED
        elif UnsafeFlags.MAP_FIXED in options.unsafe_flags:
            raise ValueError("UnsafeFlags.MAP_FIXED needs an address (with_address)")
        if (self.flags & F_THP) and fd < 0 and hint == NULL:
            extra = THP_SIZE
        if length + extra < length:
            raise ValueError("size too large")
        p = mmap(hint, length + extra, PROT_NONE, mflags, fd, <long>self.file_offset)
        if p == MAP_FAILED:
            err = errno
            raise os_error(err, f"mmap of {length} bytes")
        start = <char*>p
        if extra:
            # Over-reserved by one huge page: trim head and tail to a 2 MiB-aligned range.
            head = round_up(<size_t><uintptr_t>p, THP_SIZE) - <size_t><uintptr_t>p
            if head:
                munmap(p, head)
            if extra - head:
                munmap(start + head + length, extra - head)
            start = start + head
        self.region.base = start
        self.region.size = length
        self._advise_reservation()

    cdef int _open_file(self, file) except -1:
        cdef int fd, err
        if isinstance(file, int):
            fd = dup(file)
            what = f"file descriptor {file}"
        elif hasattr(file, "fileno"):
            if hasattr(file, "flush"):
                file.flush()
            fd = dup(file.fileno())
            what = repr(file)
        else:
            path = os.fsencode(file)
            flags = O_CLOEXEC | (O_RDWR | O_CREAT if self.prot & PROT_WRITE else O_RDONLY)
            fd = open(path, flags, 0o644)
            what = os.fsdecode(path)
        if fd < 0:
            err = errno
            raise os_error(err, f"open {what}")
        return fd

    cdef _advise_reservation(self):
        """madvise the whole reservation as the flags ask: the advice sticks to the mapping,
        so pages committed later inherit it."""
        cdef int err
        for flag, advice, name in ((F_THP, MADV_HUGEPAGE, "MADV_HUGEPAGE"),
                                   (F_NO_CORE_DUMP, MADV_DONTDUMP, "MADV_DONTDUMP"),
                                   (F_SEQUENTIAL, MADV_SEQUENTIAL, "MADV_SEQUENTIAL"),
                                   (F_RANDOM, MADV_RANDOM, "MADV_RANDOM")):
            if (self.flags & flag) and madvise(self.region.base, self.region.size, advice):
                err = errno
                self.region.unmap()
                raise os_error(err, f"madvise({name})")

    cdef _adopt_file_contents(self):
        """What the file already holds (past the offset) counts as used: never handed out."""
        cdef size_t size = <size_t>self._file_size()
        if size > self.file_offset:
            self.file_known = size - self.file_offset
            self.nused = min(self.file_known, self.nreserved)
            self.touched = self.nused
            self._commit(self.nused, False)  # opening a file never changes it

    cdef _push_frame(self, size_t start):
        cdef _Frame f = _Frame()
        f.region = self.region
        f.start = start
        f.nalloc_start = self.nalloc
        f.serial = self.next_serial
        self.next_serial += 1
        self.frames_rw.append(f)
        self.frames_ro.append(None)

    cdef _Frame _readonly_frame(self, Py_ssize_t level):
        cdef _Frame f
        ro = self.frames_ro[level]
        if ro is None:
            f = _Frame()
            f.region = self.region
            f.start = (<_Frame>self.frames_rw[level]).start
            self.frames_ro[level] = f
            return f
        return <_Frame>ro

    cdef void _update_limit(self):
        if self.base != NULL and (self.prot & RW) == RW:
            self.limit = self.ncommitted
            if self.region.fd >= 0 and self.file_known < self.limit:
                self.limit = self.file_known  # the slow path grows the file first
        else:
            self.limit = 0

    # -- checks --------------------------------------------------------------------------

    cdef int check_open(self) except -1:
        if self.base == NULL:
            raise ValueError("the arena is closed")
        return 0

    cdef int _check_allocatable(self) except -1:
        self.check_open()
        if not (self.prot & PROT_READ):
            raise ValueError("the arena is not readable (protection "
                             f"{Protection(self.prot)!r}): no allocations until make_mut()")
        if not (self.prot & PROT_WRITE):
            raise ValueError("the arena is not writable (protection "
                             f"{Protection(self.prot)!r}): no allocations until make_mut()")
        return 0

    cdef Py_ssize_t views_since(self, Py_ssize_t level, bint writable_only):
        """Live views allocated at mark level ``level`` or above (reads reference counts of
        borrowed pointers, so no temporary reference inflates them)."""
        cdef Py_ssize_t i, n = 0
        cdef PyObject* f
        for i in range(level, PyList_GET_SIZE(self.frames_rw)):
            n += Py_REFCNT(PyList_GET_ITEM(self.frames_rw, i)) - 1
            if not writable_only:
                f = PyList_GET_ITEM(self.frames_ro, i)
                if f != <PyObject*>None:
                    n += Py_REFCNT(f) - 1
        if level < PyList_GET_SIZE(self.frames_rw):
            n += self._live_blocks_above(
                (<_Frame><object>PyList_GET_ITEM(self.frames_rw, level)).start)
        return n

    # -- commit ----------------------------------------------------------------------------

    cdef int commit_to(self, size_t end) except -1:
        """Make sure ``[0, end)`` is committed (and, for a writable file, that the file
        covers it); on failure nothing changes."""
        # A read-only arena never grows a user's file; its own memfd (Flags.SHARED without a
        # file) is not the user's, and grows whatever the protection.
        return self._commit(end, (self.prot & PROT_WRITE) != 0 or not self.file_backed)

    cdef long _file_size(self) except -2:
        cdef stat st
        cdef int err
        if fstat(self.region.fd, &st) != 0:
            err = errno
            raise os_error(err, "fstat")
        return st.st_size

    cdef int _grow_file(self, size_t upto) except -1:
        """Make the file cover ``[0, upto)``: bytes written past its end would be lost and
        pages past its end raise SIGBUS. Returns nothing to undo (-1 never returned)."""
        cdef long size
        cdef int err
        if upto <= self.file_known:
            return 0
        size = self._file_size()
        if <size_t>size < self.file_offset + upto:
            if ftruncate(self.region.fd, <long>(self.file_offset + upto)) != 0:
                err = errno
                raise os_error(err, "ftruncate (growing the file)")
        self.file_known = max(upto, <size_t>size - min(<size_t>size, self.file_offset))
        self._update_limit()
        return 0

    cdef int _commit(self, size_t end, bint grow) except -1:
        cdef size_t new, old = self.ncommitted, n, have
        cdef int err
        cdef long old_size = -1
        if end <= old:
            if grow and self.region.fd >= 0 and end > self.file_known:
                self._grow_file(old)
            return 0
        if end > self.nreserved:
            raise ArenaFullError(f"{end} bytes do not fit in the {self.nreserved}-byte "
                                 "reservation")
        new = round_up(end, self.step)
        if new > self.nreserved or new < end or (self.region.fd >= 0 and not grow):
            new = round_up(end, self.page)
        n = new - old
        if self.region.fd >= 0:
            old_size = self._file_size()
            have = <size_t>old_size - min(<size_t>old_size, self.file_offset)
            if grow:
                self._grow_file(new)
                if have >= new:
                    old_size = -1  # nothing to shrink back on failure
            else:
                old_size = -1
                if round_up(have, self.page) < new:
                    raise ValueError(f"cannot commit {new} bytes of a file that holds {have} "
                                     "past the offset without writing to it")
        if mprotect(self.base + old, n, self.prot) != 0:
            err = errno
            self._shrink_file(old_size)
            raise os_error(err, f"committing {n} bytes (mprotect)")
        err = self._prepare(self.base + old, n)
        if err:
            self._uncommit(old, new)
            self._shrink_file(old_size)
            if err == EFAULT or err == ENOMEM or err == EAGAIN:
                raise CommitError(err, f"the OS refused to back {n} bytes: {os.strerror(err)}"
                                  + (" (the hugetlb pool has too few free pages)"
                                     if self.hugetlb else ""))
            raise os_error(err, f"committing {n} bytes")
        self.ncommitted = new
        self._update_limit()
        return 0

    cdef int _populate(self, char* p, size_t n) noexcept nogil:
        """Prefault ``[p, p+n)``; an errno on failure (never SIGBUS for hugetlb)."""
        cdef int advice
        if not (self.prot & PROT_READ):
            return 0
        advice = MADV_POPULATE_WRITE if (self.prot & PROT_WRITE) else MADV_POPULATE_READ
        if madvise(p, n, advice) == 0:
            return 0
        if errno == EINVAL and not self.hugetlb:
            arena_touch(p, n, self.page, self.prot & PROT_WRITE)
            return 0
        return errno

    cdef int _prepare(self, char* p, size_t n) noexcept nogil:
        """Populate and lock freshly committed pages as the flags ask; an errno on failure."""
        cdef int err
        if self.hugetlb or (self.flags & F_POPULATE):
            err = self._populate(p, n)
            if err:
                return err
        if (self.locked or (self.flags & F_LOCKED)) and (self.prot & PROT_READ):
            if mlock(p, n) != 0:
                return errno
        return 0

    cdef void _uncommit(self, size_t start, size_t end) noexcept nogil:
        """Return ``[start, end)`` to the OS and make it inaccessible. Shared anonymous
        memory needs MADV_REMOVE: DONTNEED would only unmap it and keep the memfd's pages."""
        cdef char* p = self.base + start
        cdef size_t n = end - start
        if n == 0:
            return
        munlock(p, n)  # DONTNEED fails on locked pages
        if self.shared and not self.file_backed:
            madvise(p, n, MADV_REMOVE)
        else:
            madvise(p, n, MADV_DONTNEED)
        mprotect(p, n, PROT_NONE)

    cdef void _shrink_file(self, long old_size) noexcept nogil:
        if old_size >= 0:
            ftruncate(self.region.fd, old_size)
            self.file_known = min(self.file_known, <size_t>old_size -
                                  min(<size_t>old_size, self.file_offset))

    # -- the allocation path ------------------------------------------------------------------

    cdef void* alloc_slow(self, size_t nbytes, size_t align) except NULL:
        """alloc_raw's way when the inline bump cannot serve: commit, or say why not."""
        cdef size_t start, end
        self._check_allocatable()
        if align == 0 or (align & (align - 1)) != 0 or align > self.page:
            raise ValueError(f"align must be a power of two up to {self.page}, got {align}")
        start = round_up(self.nused, align)
        if start > self.nreserved or nbytes > self.nreserved - start:
            raise ArenaFullError(f"allocation of {nbytes} bytes does not fit: "
                                 f"{self.nreserved - min(start, self.nreserved)} of "
                                 f"{self.nreserved} bytes left")
        end = start + nbytes
        self.commit_to(end)
        self.nused = end
        if end > self.touched:
            self.touched = end
        self.nalloc += 1
        return self.base + start

    cdef object _wrap(self, char* data, int nd, cnp.npy_intp* dims, cnp.dtype descr,
                      int flags, _Frame frame):
        Py_INCREF(descr)  # both calls steal a reference
        arr = PyArray_NewFromDescr(<void*>cnp.ndarray, <void*>descr, nd, dims, NULL, data,
                                   flags, NULL)
        Py_INCREF(frame)
        PyArray_SetBaseObject(<cnp.ndarray>arr, frame)
        return arr

    cdef cnp.dtype _resolve_dtype(self, object dtype):
        """The dtype for ``dtype``, from a two-entry cache keyed by identity: simulations
        use one or two dtypes, and np.dtype() costs more than the rest of an allocation."""
        cdef cnp.dtype d
        if dtype is self.dtype_key:
            return <cnp.dtype>self.dtype_val
        if dtype is self.dtype_key2:
            self.dtype_key, self.dtype_key2 = self.dtype_key2, self.dtype_key
            self.dtype_val, self.dtype_val2 = self.dtype_val2, self.dtype_val
            return <cnp.dtype>self.dtype_val
        d = <cnp.dtype>dtype if isinstance(dtype, cnp.dtype) else np.dtype(dtype)
        od = <object>d
        if od.hasobject:
            raise TypeError(f"dtype {d} holds Python objects, which cannot live in an arena")
        if d.itemsize == 0 and od.kind in "SUV":
            d = np.dtype((od.type, 1))
        self.dtype_key2, self.dtype_val2 = self.dtype_key, self.dtype_val
        self.dtype_key, self.dtype_val = dtype, d
        return d

    cdef object _new(self, object shape, object dtype, object order, object align, int fill):
        """empty/zeros: one bump, one ndarray; ``fill`` 1 zeroes what may be dirty."""
        cdef cnp.npy_intp dims[64]
        cdef Py_ssize_t d
        cdef int nd
        cdef cnp.dtype descr
        cdef size_t nbytes
        if PyLong_CheckExact(shape):  # the common 1-D case, without a call
            d = shape
            if d < 0:
                raise ValueError("negative dimensions are not allowed")
            dims[0] = d
            nd = 1
            descr = self._resolve_dtype(dtype)
            if arena_mul_overflow(<size_t>descr.itemsize, <size_t>d, &nbytes) or \
                    nbytes > <size_t>PY_SSIZE_T_MAX:
                raise ValueError("array is too big: its byte size overflows")
        else:
            nd = _parse_shape(shape, dims)
            descr = self._resolve_dtype(dtype)
            nbytes = _nbytes(nd, dims, descr.itemsize)
        cdef size_t a = self.align if align is None else _check_align(align, self.page)
        cdef int flags = cnp.NPY_ARRAY_WRITEABLE
        # Bytes past ``touched`` are fresh zero pages, unless another process (a fork of a
        # shared arena, another mapping of the file) may have written them.
        cdef size_t touched = self.nreserved if self.region.fd >= 0 else self.touched
        cdef char* p
        if order is not _C:  # the default object: skip the string comparison
            flags |= _order_flag(order)
        p = <char*>self.alloc_raw(nbytes, a)
        if fill and p - self.base < <Py_ssize_t>touched:
            memset(p, 0, min(nbytes, touched - <size_t>(p - self.base)))
        return self._wrap(p, nd, dims, descr, flags,
                          <_Frame><object>PyList_GET_ITEM(self.frames_rw,
                                                          PyList_GET_SIZE(self.frames_rw) - 1))

    cdef void _rollback(self, size_t used, Py_ssize_t nalloc, size_t expected_used):
        if self.nused == expected_used and self.view_end <= used:
            self.nused = used
            self.nalloc = nalloc

    # -- NumPy's own allocations (NEP 49) ----------------------------------------------------------

    cdef void* block_alloc(self, size_t size, bint zero) except NULL:
        """A block for NumPy: the best-fitting dead block, else a bump on top."""
        cdef Py_ssize_t i, best = -1
        cdef size_t need, touched = self.nreserved if self.region.fd >= 0 else self.touched
        cdef char* p
        self._check_allocatable()
        if size > self.nreserved:
            raise ArenaFullError(f"{size} bytes do not fit in the arena")
        need = round_up(size if size else 1, 64)
        for i in range(self.nblocks):
            if not self.blocks[i].live and self.blocks[i].size >= need and \
                    self.blocks[i].start >= self.view_end and \
                    (best < 0 or self.blocks[i].size < self.blocks[best].size):
                best = i
        if best >= 0:
            if self.blocks[best].size - need >= 65536:  # split off what a large block spares
                self._insert_block(best + 1, self.blocks[best].start + need,
                                   self.blocks[best].size - need, False)
                self.blocks[best].size = need
            self.blocks[best].live = True
            self.live_blocks += 1
            p = self.base + self.blocks[best].start
            if zero:
                memset(p, 0, size)
            return p
        p = <char*>self.alloc_raw(need, 64)
        self.nalloc -= 1  # num_allocations counts the arena's own arrays
        try:
            self._insert_block(self.nblocks, <size_t>(p - self.base), need, True)
        except BaseException:
            self.nused = <size_t>(p - self.base)
            raise
        self.live_blocks += 1
        if zero and <size_t>(p - self.base) < touched:
            memset(p, 0, min(size, touched - <size_t>(p - self.base)))
        return p

    cdef void* block_realloc(self, void* ptr, size_t size) except NULL:
        cdef Py_ssize_t i
        cdef size_t need, end
        cdef void* q
        if ptr == NULL:
            return self.block_alloc(size, False)
        if size > self.nreserved:
            raise ArenaFullError(f"{size} bytes do not fit in the arena")
        i = self._find_block(<char*>ptr)
        if i < 0:
            raise ValueError("realloc of memory the arena did not hand to NumPy")
        need = round_up(size if size else 1, 64)
        if need <= self.blocks[i].size:
            return ptr
        end = self.blocks[i].start + self.blocks[i].size
        if i == self.nblocks - 1 and end == self.nused and \
                self.blocks[i].start + need <= self.nreserved:
            self._check_allocatable()
            self.commit_to(self.blocks[i].start + need)
            self.blocks[i].size = need
            self.nused = self.blocks[i].start + need
            self.touched = max(self.touched, self.nused)
            return ptr
        q = self.block_alloc(size, False)
        i = self._find_block(<char*>ptr)
        memcpy(q, ptr, self.blocks[i].size)
        self.block_free(ptr)
        return q

    cdef void block_free(self, void* ptr) noexcept:
        cdef Py_ssize_t i = self._find_block(<char*>ptr)
        cdef size_t floor
        if i < 0:
            return
        self.blocks[i].live = False
        self.live_blocks -= 1
        if i + 1 < self.nblocks and not self.blocks[i + 1].live and \
                self.blocks[i].start + self.blocks[i].size == self.blocks[i + 1].start:
            self.blocks[i].size += self.blocks[i + 1].size
            self._remove_block(i + 1)
        if i > 0 and not self.blocks[i - 1].live and \
                self.blocks[i - 1].start + self.blocks[i - 1].size == self.blocks[i].start:
            self.blocks[i - 1].size += self.blocks[i].size
            self._remove_block(i)
        if self.base == NULL:
            return
        # Pop dead blocks off the top, but never below the newest mark.
        floor = (<_Frame><object>PyList_GET_ITEM(
            self.frames_rw, PyList_GET_SIZE(self.frames_rw) - 1)).start
        floor = max(floor, self.view_end)
        while self.nblocks and not self.blocks[self.nblocks - 1].live and \
                self.blocks[self.nblocks - 1].start >= floor and \
                self.blocks[self.nblocks - 1].start + self.blocks[self.nblocks - 1].size \
                == self.nused:
            self.nused = self.blocks[self.nblocks - 1].start
            self.nblocks -= 1

    cdef Py_ssize_t _find_block(self, char* p) noexcept:
        cdef Py_ssize_t i
        cdef size_t off
        if self.base == NULL or p < self.base:
            return -1
        off = <size_t>(p - self.base)
        i = self.nblocks - 1
        while i >= 0:
            if self.blocks[i].start == off and self.blocks[i].live:
                return i
            i -= 1
        return -1

    cdef Py_ssize_t _live_blocks_above(self, size_t offset) noexcept:
        cdef Py_ssize_t i, n = 0
        if self.live_blocks == 0:
            return 0
        i = self.nblocks - 1
        while i >= 0 and self.blocks[i].start + self.blocks[i].size > offset:
            n += self.blocks[i].live
            i -= 1
        return n

    cdef void _drop_blocks_from(self, size_t offset) noexcept:
        while self.nblocks and self.blocks[self.nblocks - 1].start >= offset:
            self.nblocks -= 1
        # A dead block that reaches past ``offset`` (coalesced or grown across a mark) keeps
        # only its part below: the rest is handed out again by the bump pointer. (A live
        # one would have made the release refuse.)
        if self.nblocks and self.blocks[self.nblocks - 1].start + \
                self.blocks[self.nblocks - 1].size > offset:
            self.blocks[self.nblocks - 1].size = offset - self.blocks[self.nblocks - 1].start

    cdef void _remove_block(self, Py_ssize_t i) noexcept:
        memmove(&self.blocks[i], &self.blocks[i + 1], (self.nblocks - i - 1) * sizeof(Block))
        self.nblocks -= 1

    cdef int _insert_block(self, Py_ssize_t i, size_t start, size_t size, bint live) except -1:
        cdef Block* grown
        if self.nblocks == self.capblocks:
            grown = <Block*>realloc(self.blocks, (self.capblocks * 2 + 16) * sizeof(Block))
            if grown == NULL:
                raise MemoryError()
            self.blocks = grown
            self.capblocks = self.capblocks * 2 + 16
        memmove(&self.blocks[i + 1], &self.blocks[i], (self.nblocks - i) * sizeof(Block))
        self.blocks[i].start = start
        self.blocks[i].size = size
        self.blocks[i].live = live
        self.nblocks += 1
        return 0

    def numpy_allocator(self):
        """numpy_allocator()

        ``with a.numpy_allocator():`` makes NumPy allocate array data from this arena in
        the current thread and context (NEP 49). Those arrays count as views: reset,
        release, close and protection changes refuse while they live, and they stay valid
        after the block. Memory NumPy frees is reused (best fit, and popped off the top in
        stack order), so a loop that makes and drops temporaries stays in bounded memory.
        An arena that runs out raises MemoryError from the NumPy call that asked.

        Examples
        --------
        >>> import numpy as np, arena
        >>> a = arena.Arena(1 << 30)
        >>> x = np.ones(1 << 20)
        >>> with a.numpy_allocator():
        ...     y = np.sqrt(x * 2.0 + x) - np.abs(x - 3.0)
        >>> a.offset_of(y) >= 0, a.live_views
        (True, 1)
        >>> del y
        >>> a.used
        0
        """
        self.check_open()
        from ._numpy_handler import NumpyAllocator
        return NumpyAllocator(self)

    def __dealloc__(self):
        free(self.blocks)

    # -- sub-allocations ---------------------------------------------------------------------

    def empty(self, shape, dtype=float, *, order=_C, align=None):
        """empty(shape, dtype=float, *, order="C", align=None)

        An uninitialised array in the arena.

        Parameters
        ----------
        shape : int or tuple of ints
        dtype : data-type, optional
            Any NumPy dtype that holds no Python objects (TypeError otherwise).
        order : {'C', 'F'}, optional
        align : int, optional
            Alignment of the first byte: a power of two up to the arena's page size.
            Default: the arena's alignment (64 unless ``with_alignment`` said otherwise).

        Examples
        --------
        >>> import numpy as np, arena
        >>> a = arena.Arena(1 << 20)
        >>> x = a.empty((2, 3), np.int32, order="F", align=4096)
        >>> x.shape, x.flags.f_contiguous, a.offset_of(x) % 4096
        ((2, 3), True, 0)
        """
        return self._new(shape, dtype, order, align, 0)

    def zeros(self, shape, dtype=float, *, order=_C, align=None):
        """zeros(shape, dtype=float, *, order="C", align=None)

        A zero-filled array in the arena (memory fresh from the OS is not written again).

        Examples
        --------
        >>> import numpy as np, arena
        >>> a = arena.Arena(1 << 20)
        >>> a.zeros(3, np.int64)
        array([0, 0, 0])
        """
        return self._new(shape, dtype, order, align, 1)

    def full(self, shape, fill_value, dtype=None, *, order="C", align=None):
        """full(shape, fill_value, dtype=None, *, order="C", align=None)

        An array filled with ``fill_value``; the dtype defaults to ``fill_value``'s.

        Examples
        --------
        >>> import arena
        >>> a = arena.Arena(1 << 20)
        >>> a.full((2, 2), 7.5)
        array([[7.5, 7.5],
               [7.5, 7.5]])
        """
        if dtype is None:
            dtype = np.asarray(fill_value).dtype
        cdef size_t used = self.nused
        cdef Py_ssize_t nalloc = self.nalloc
        arr = self._new(shape, dtype, order, align, 0)
        cdef size_t end = self.nused  # the copy may run Python code that allocates on top
        try:
            np.copyto(arr, fill_value, casting="unsafe")
        except BaseException:
            del arr
            self._rollback(used, nalloc, end)
            raise
        return arr

    def empty_like(self, prototype, dtype=None, order="K", shape=None, *, align=None):
        """empty_like(prototype, dtype=None, order="K", shape=None, *, align=None)

        Like :func:`numpy.empty_like`, with the memory in the arena. ``order="K"`` keeps a
        Fortran-ordered prototype Fortran-ordered.

        Examples
        --------
        >>> import numpy as np, arena
        >>> a = arena.Arena(1 << 20)
        >>> t = a.empty_like(np.ones((4, 5), np.float32))
        >>> t.shape, t.dtype
        ((4, 5), dtype('float32'))
        """
        return self._like(prototype, dtype, order, shape, align, 0)

    def zeros_like(self, prototype, dtype=None, order="K", shape=None, *, align=None):
        """zeros_like(prototype, dtype=None, order="K", shape=None, *, align=None)

        Like :func:`numpy.zeros_like`, with the memory in the arena.

        Examples
        --------
        >>> import numpy as np, arena
        >>> a = arena.Arena(1 << 20)
        >>> a.zeros_like(np.arange(3))
        array([0, 0, 0])
        """
        return self._like(prototype, dtype, order, shape, align, 1)

    cdef object _like(self, prototype, dtype, order, shape, align, int fill):
        cdef cnp.ndarray proto
        if not isinstance(prototype, cnp.ndarray):
            prototype = np.asarray(prototype)
        proto = <cnp.ndarray>prototype
        if order == "K" or order == "A" or order == "k" or order == "a":
            fortran = cnp.PyArray_IS_F_CONTIGUOUS(proto) and not cnp.PyArray_IS_C_CONTIGUOUS(proto)
            order = "F" if fortran else "C"
        return self._new((<object>proto).shape if shape is None else shape,
                         (<object>proto).dtype if dtype is None else dtype, order, align, fill)

    def array(self, obj, dtype=None, *, order="K", align=None):
        """array(obj, dtype=None, *, order="K", align=None)

        A copy of ``obj`` (anything :func:`numpy.asarray` takes) in the arena.

        Examples
        --------
        >>> import arena
        >>> a = arena.Arena(1 << 20)
        >>> x = a.array([[1, 2], [3, 4]], dtype="u1")
        >>> x, a.offset_of(x)
        (array([[1, 2],
               [3, 4]], dtype=uint8), 0)
        """
        src = np.asarray(obj, dtype=dtype)
        cdef size_t used = self.nused
        cdef Py_ssize_t nalloc = self.nalloc
        out = self._like(src, None, order, None, align, 0)
        cdef size_t end = self.nused
        try:
            np.copyto(out, src, casting="no")
        except BaseException:
            del out
            self._rollback(used, nalloc, end)
            raise
        return out

    def alloc(self, nbytes, *, align=None):
        """alloc(nbytes, *, align=None)

        ``nbytes`` raw bytes as a 1-D uint8 array.

        Examples
        --------
        >>> import arena
        >>> a = arena.Arena(1 << 20)
        >>> b = a.alloc(10, align=16)
        >>> b.dtype, b.shape
        (dtype('uint8'), (10,))
        """
        if isinstance(nbytes, bool):
            raise TypeError("nbytes must be an integer")
        return self._new(operator.index(nbytes), np.uint8, "C", align, 0)

    def view(self, offset, shape, dtype=float, *, order="C"):
        """view(offset, shape, dtype=float, *, order="C")

        An array over bytes the arena already holds, starting ``offset`` bytes from
        :attr:`address`. The bytes must lie in ``[0, used)``: a view never covers memory a
        later allocation could hand out again. It counts as a view of the newest mark level
        whose bytes it covers, and is read-only while the arena is not writable.

        Examples
        --------
        >>> import numpy as np, arena
        >>> a = arena.Arena(1 << 20)
        >>> x = a.array(np.arange(4, dtype=np.int32))
        >>> a.view(a.offset_of(x) + 4, 2, np.int32)
        array([1, 2], dtype=int32)
        """
        cdef cnp.npy_intp dims[64]
        cdef Py_ssize_t off, level
        cdef size_t nbytes, end, last
        cdef int flags
        self.check_open()
        if not (self.prot & PROT_READ):
            raise ValueError("the arena is not readable: no views until make_read_only() "
                             "or make_mut()")
        if isinstance(offset, bool):
            raise TypeError("offset must be an integer")
        off = operator.index(offset)
        if off < 0:
            raise ValueError(f"offset must be >= 0, got {off}")
        nd = _parse_shape(shape, dims)
        descr = self._resolve_dtype(dtype)
        nbytes = _nbytes(nd, dims, descr.itemsize)
        if arena_add_overflow(<size_t>off, nbytes, &end) or end > self.nused or \
                <size_t>off > self.nused:
            raise ValueError(f"view of {nbytes} bytes at offset {off} reaches past the "
                             f"{self.nused} bytes in use")
        last = end - 1 if nbytes else <size_t>off
        if end > self.view_end:
            self.view_end = end  # NumPy-handler blocks below it are never handed out again
        level = PyList_GET_SIZE(self.frames_rw) - 1
        while level > 0 and (<_Frame>self.frames_rw[level]).start > last:
            level -= 1
        flags = _order_flag(order)
        if self.prot & PROT_WRITE:
            frame = self.frames_rw[level]
            flags |= cnp.NPY_ARRAY_WRITEABLE
        else:
            frame = self._readonly_frame(level)
        return self._wrap(self.base + off, nd, dims, descr, flags, frame)

    def offset_of(self, x):
        """offset_of(x)

        Offset of the first byte of arena array ``x`` from :attr:`address`; ValueError if
        ``x``'s memory is not in this arena.

        Examples
        --------
        >>> import arena
        >>> a = arena.Arena(1 << 20)
        >>> x = a.alloc(100); y = a.alloc(8, align=128)
        >>> a.offset_of(y), a.offset_of(y[4:])
        (128, 132)
        """
        self.check_open()
        if not isinstance(x, cnp.ndarray):
            raise TypeError(f"offset_of takes a numpy.ndarray, not {type(x).__name__}")
        cdef size_t p = <size_t><uintptr_t>cnp.PyArray_DATA(<cnp.ndarray>x)
        cdef size_t b = <size_t><uintptr_t>self.base
        if p < b or p - b > self.nreserved or (p - b == self.nreserved and x.nbytes):
            raise ValueError("the array's memory is not in this arena")
        return p - b

    # -- lifetime ----------------------------------------------------------------------------

    def mark(self):
        """mark()

        A checkpoint: :meth:`release` frees everything allocated after it.

        Examples
        --------
        >>> import arena
        >>> a = arena.Arena(1 << 20)
        >>> keep = a.zeros(8)
        >>> m = a.mark()
        >>> tmp = a.zeros(1000)
        >>> del tmp
        >>> a.release(m)
        >>> a.used
        64
        """
        self.check_open()
        cdef Mark m = Mark()
        m.owner = self
        m.level = PyList_GET_SIZE(self.frames_rw)
        m.start = self.nused
        self._push_frame(self.nused)
        m.serial = (<_Frame>self.frames_rw[m.level]).serial
        return m

    def release(self, Mark mark not None):
        """release(mark)

        Free everything allocated since ``mark`` (and every later mark). BufferError while
        views allocated since then are alive; ValueError for a mark already released or
        from another arena.

        Examples
        --------
        >>> import arena
        >>> a = arena.Arena(1 << 20)
        >>> m = a.mark()
        >>> t = a.zeros(10)
        >>> a.release(m)
        Traceback (most recent call last):
            ...
        BufferError: cannot release: 1 view(s) allocated since the mark are still alive (drop them first, e.g. with del)
        >>> del t
        >>> a.release(m)
        >>> a.used
        0
        """
        self.check_open()
        if mark.owner is not self:
            raise ValueError("the mark belongs to another arena")
        cdef Py_ssize_t level = mark.level
        if level >= PyList_GET_SIZE(self.frames_rw) or \
                (<_Frame>self.frames_rw[level]).serial != mark.serial:
            raise ValueError("the mark was already released (or the arena was reset)")
        cdef Py_ssize_t live = self.views_since(level, False)
        if live:
            raise BufferError(f"cannot release: {live} view(s) allocated since the mark are "
                              "still alive (drop them first, e.g. with del)")
        cdef _Frame f = <_Frame>self.frames_rw[level]
        self.nused = f.start
        self.view_end = min(self.view_end, f.start)
        self.nalloc = f.nalloc_start
        self._drop_blocks_from(f.start)
        del self.frames_rw[level:]
        del self.frames_ro[level:]

    def scope(self):
        """scope()

        ``with a.scope():`` marks on entry and releases on exit. Views made inside must be
        gone by the end of the block (BufferError otherwise).

        Examples
        --------
        >>> import numpy as np, arena
        >>> a = arena.Arena(1 << 20)
        >>> x = np.arange(1000.0)
        >>> with a.scope():
        ...     t = a.empty_like(x)
        ...     total = float(np.multiply(x, 2, out=t).sum())
        ...     del t
        >>> total, a.used
        (999000.0, 0)
        """
        self.check_open()
        return _Scope(self)

    def reset(self, *, decommit=False):
        """reset(*, decommit=False)

        Free everything, in O(1). BufferError while any view is alive. ``decommit=True``
        also returns the committed pages to the OS (RSS drops).

        Examples
        --------
        >>> import arena
        >>> a = arena.Arena(1 << 20)
        >>> x = a.zeros(100)
        >>> del x
        >>> a.reset()
        >>> a.used, a.num_allocations
        (0, 0)
        """
        self.check_open()
        cdef Py_ssize_t live = self.views_since(0, False)
        if live:
            raise BufferError(f"cannot reset: {live} view(s) are still alive "
                              "(drop them first, e.g. with del)")
        self.nused = 0
        self.view_end = 0
        self.nalloc = 0
        self._drop_blocks_from(0)
        del self.frames_rw[:]
        del self.frames_ro[:]
        self._push_frame(0)
        if decommit:
            self._decommit_above(0)

    def close(self):
        """close()

        Unmap the arena; idempotent. BufferError while views are alive. Afterwards every
        use raises ValueError.

        Examples
        --------
        >>> import arena
        >>> a = arena.Arena(1 << 20)
        >>> a.close(); a.close()
        >>> a.closed
        True
        >>> a.zeros(1)
        Traceback (most recent call last):
            ...
        ValueError: the arena is closed
        """
        if self.base == NULL:
            return
        cdef Py_ssize_t live = self.views_since(0, False)
        if live:
            raise BufferError(f"cannot close: {live} view(s) are still alive")
        self.region.unmap()
        self.base = NULL
        self.ncommitted = 0
        self._update_limit()
        del self.frames_rw[:]
        del self.frames_ro[:]

    def __enter__(self):
        self.check_open()
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
            return False
        try:  # do not mask the exception; the views its traceback holds keep the memory
            self.close()
        except BufferError:
            pass
        return False

    @property
    def options(self):
        """The :class:`ArenaOptions` the arena was made from."""
        return self.opts

    @property
    def closed(self):
        """True once :meth:`close` has run."""
        return self.base == NULL

    # -- memory control --------------------------------------------------------------------------

    def commit(self, nbytes):
        """commit(nbytes)

        Make sure the first ``nbytes`` are committed (prefaulted with ``Flags.POPULATE``).

        Examples
        --------
        >>> import arena
        >>> a = arena.Arena(1 << 30)
        >>> a.commit(10 << 20)
        >>> a.committed >= 10 << 20
        True
        """
        self.check_open()
        if isinstance(nbytes, bool):
            raise TypeError("nbytes must be an integer")
        n = operator.index(nbytes)
        if n < 0 or n > self.nreserved:
            raise ValueError(f"nbytes must be in [0, {self.nreserved}], got {n}")
        self.commit_to(<size_t>n)

    def decommit(self):
        """decommit()

        Return committed pages above the bump pointer to the OS: ``committed`` shrinks to
        the page holding the last used byte and RSS drops.

        Examples
        --------
        >>> import arena
        >>> a = arena.Arena(1 << 30)
        >>> x = a.alloc(100)
        >>> a.commit(64 << 20); a.decommit()
        >>> a.committed
        4096
        """
        self.check_open()
        self._decommit_above(self.nused)

    cdef _decommit_above(self, size_t used):
        cdef size_t keep = round_up(used, self.page)
        if keep >= self.ncommitted:
            return
        self._uncommit(keep, self.ncommitted)
        self.high_water_before = max(self.high_water_before, self.touched)
        if not self.file_backed and self.touched > keep:
            self.touched = max(keep, used)
        self.ncommitted = keep
        self._update_limit()

    def lock(self):
        """lock()

        mlock the committed range, and every page committed from now on, until
        :meth:`unlock`. MemoryError if RLIMIT_MEMLOCK does not allow it.

        Examples
        --------
        >>> import arena
        >>> a = arena.Arena(1 << 20)
        >>> a.commit(4096); a.lock(); a.unlock()
        """
        self.check_open()
        cdef int err
        if self.ncommitted and mlock(self.base, self.ncommitted) != 0:
            err = errno
            if not (self.locked or (self.flags & F_LOCKED)):  # undo a partial lock only
                munlock(self.base, self.ncommitted)
            raise os_error(err, f"mlock of {self.ncommitted} bytes")
        self.locked = True

    def unlock(self):
        """unlock()

        munlock the committed range; later commits are not locked (unless ``Flags.LOCKED``).
        See :meth:`lock`.
        """
        self.check_open()
        cdef int err
        if self.ncommitted and munlock(self.base, self.ncommitted) != 0:
            err = errno
            raise os_error(err, "munlock")
        self.locked = False

    def flush(self, offset=0, size=None, *, asynchronous=False):
        """flush(offset=0, size=None, *, asynchronous=False)

        msync ``[offset, offset + size)`` of a file-backed arena to its file (the whole
        committed range by default). ValueError if the range is not committed.

        Examples
        --------
        >>> import arena
        >>> a = arena.Arena(1 << 20)
        >>> x = a.zeros(10)
        >>> a.flush(0, 80, asynchronous=True)
        >>> a.flush(0, 1 << 30)
        Traceback (most recent call last):
            ...
        ValueError: flush range [0, 0+1073741824) is outside the 4096 committed bytes
        """
        self.check_open()
        if isinstance(offset, bool) or isinstance(size, bool):
            raise TypeError("offset and size must be integers")
        cdef Py_ssize_t off = operator.index(offset)
        if off < 0:  # before the subtraction below, which would overflow
            raise ValueError(f"flush offset must be >= 0, got {off}")
        cdef Py_ssize_t n = (<Py_ssize_t>self.ncommitted - off) if size is None \
            else operator.index(size)
        if off < 0 or n < 0 or <size_t>off > self.ncommitted or \
                <size_t>n > self.ncommitted - <size_t>off:
            raise ValueError(f"flush range [{off}, {off}+{n}) is outside the "
                             f"{self.ncommitted} committed bytes")
        cdef size_t start = <size_t>off // self.page * self.page
        cdef size_t length = <size_t>off + <size_t>n - start
        cdef int err
        if length and msync(self.base + start, length, MS_ASYNC if asynchronous else MS_SYNC):
            err = errno
            raise os_error(err, "msync")

    # -- protection --------------------------------------------------------------------------

    cdef _protect(self, int prot, int forbid_views, str what):
        """Change the protection of the committed range; ``forbid_views`` 2 refuses with any
        live view, 1 with a live writable view."""
        cdef int err
        cdef Py_ssize_t live
        self.check_open()
        if (prot & PROT_WRITE) and (prot & PROT_EXEC) and \
                UnsafeFlags.JIT not in self.opts.unsafe_flags:
            raise PermissionError("writable and executable pages need UnsafeFlags.JIT (W^X)")
        if forbid_views:
            live = self.views_since(0, forbid_views == 1)
            if live:
                kind = "writable view(s)" if forbid_views == 1 else "view(s)"
                raise BufferError(f"cannot {what}: {live} {kind} still alive")
        if self.ncommitted and mprotect(self.base, self.ncommitted, prot) != 0:
            err = errno
            mprotect(self.base, self.ncommitted, self.prot)
            raise os_error(err, f"mprotect ({what})")
        cdef int old = self.prot
        self.prot = prot
        if self.ncommitted and self.hugetlb and not (old & PROT_READ) and (prot & PROT_READ):
            # Hugetlb pages are only safe to touch once populated.
            err = self._populate(self.base, self.ncommitted)
            if err:
                self.prot = old
                mprotect(self.base, self.ncommitted, old)
                raise CommitError(err, f"the OS refused to back the arena: {os.strerror(err)}")
        self._update_limit()

    def make_none(self):
        """make_none()

        Make the arena inaccessible. BufferError while any view is alive.

        Examples
        --------
        >>> import arena
        >>> a = arena.Arena(1 << 20)
        >>> a.make_none(); a.protection.name
        'NONE'
        >>> a.view(0, 0)
        Traceback (most recent call last):
            ...
        ValueError: the arena is not readable: no views until make_read_only() or make_mut()
        """
        self._protect(PROT_NONE, 2, "make the arena inaccessible")

    def make_read_only(self):
        """make_read_only()

        Make the arena read-only. BufferError while a writable view is alive; views made
        afterwards are read-only arrays.

        Examples
        --------
        >>> import arena
        >>> a = arena.Arena(1 << 20)
        >>> off = a.offset_of(a.full(4, 2.0))
        >>> a.make_read_only()
        >>> v = a.view(off, 4); v.flags.writeable, float(v.sum())
        (False, 8.0)
        """
        self._protect(PROT_READ, 1, "make the arena read-only")

    def make_mut(self):
        """make_mut()

        Make the arena read/write (read-only views stay read-only arrays).

        Examples
        --------
        >>> from arena import ArenaOptions
        >>> a = ArenaOptions(1 << 20).map()
        >>> a.make_mut(); a.zeros(1)
        array([0.])
        """
        self._protect(RW, 0, "make the arena writable")

    def make_exec(self):
        """make_exec()

        Make the arena read/execute. BufferError while a writable view is alive.

        Examples
        --------
        >>> import arena
        >>> a = arena.Arena(1 << 20)
        >>> a.make_exec(); a.protection.name
        'READ_EXECUTE'
        """
        self._protect(PROT_READ | PROT_EXEC, 1, "make the arena executable")

    def make_exec_mut(self):
        """make_exec_mut()

        Make the arena read/write/execute; PermissionError unless the arena was made with
        ``UnsafeFlags.JIT``.

        Examples
        --------
        >>> from arena import ArenaOptions, UnsafeFlags
        >>> a = ArenaOptions(1 << 20).with_unsafe_flags(UnsafeFlags.JIT).reserve()
        >>> a.make_exec_mut(); a.protection.name
        'READ_WRITE_EXECUTE'
        """
        self._protect(RW | PROT_EXEC, 0, "make the arena writable and executable")

    @property
    def protection(self):
        """The current :class:`Protection` of committed pages."""
        return Protection(self.prot)

    # -- introspection ----------------------------------------------------------------------------

    @property
    def address(self):
        """Address of the arena's first byte."""
        self.check_open()
        return <size_t><uintptr_t>self.base

    @property
    def reserved(self):
        """Bytes of address space reserved."""
        self.check_open()
        return self.nreserved

    @property
    def committed(self):
        """Bytes committed (accessible) from the start of the arena."""
        self.check_open()
        return self.ncommitted

    @property
    def used(self):
        """Bytes up to the bump pointer."""
        self.check_open()
        return self.nused

    @property
    def available(self):
        """Bytes left for allocations (``reserved - used``)."""
        self.check_open()
        return self.nreserved - self.nused

    @property
    def high_water(self):
        """The largest ``used`` seen since the arena was made."""
        self.check_open()
        return max(self.touched, self.high_water_before)

    @property
    def num_allocations(self):
        """Allocations made and not yet freed by reset or release."""
        self.check_open()
        return self.nalloc

    @property
    def live_views(self):
        """Arrays (and views of them) alive that use the arena's memory."""
        self.check_open()
        return self.views_since(0, False)

    @property
    def page_size(self):
        """The page size backing the arena (a huge page size with hugetlb)."""
        return self.page

    @property
    def commit_step(self):
        """Bytes committed at a time as the bump pointer crosses the frontier."""
        return self.step

    @property
    def alignment(self):
        """Default alignment of sub-allocations."""
        return self.align

    @property
    def levels(self):
        """Mark levels in use (1 + the number of unreleased marks)."""
        self.check_open()
        return PyList_GET_SIZE(self.frames_rw)

    def stats(self):
        """stats()

        The introspection numbers as a dict.

        Examples
        --------
        >>> import arena
        >>> a = arena.Arena(1 << 20)
        >>> x = a.zeros(10)
        >>> s = a.stats()
        >>> s["used"], s["num_allocations"], s["live_views"]
        (80, 1, 1)
        """
        self.check_open()
        return {
            "address": self.address,
            "reserved": self.nreserved,
            "committed": self.ncommitted,
            "used": self.nused,
            "available": self.nreserved - self.nused,
            "high_water": self.high_water,
            "num_allocations": self.nalloc,
            "live_views": self.views_since(0, False),
            "levels": PyList_GET_SIZE(self.frames_rw),
            "page_size": self.page,
            "commit_step": self.step,
            "protection": Protection(self.prot),
        }

    def __repr__(self):
        if self.base == NULL:
            return "<arena.Arena closed>"
        flags = f" flags={Flags(self.flags)!r}" if self.flags else ""
        return (f"<arena.Arena at {self.address:#x} used={_fmt(self.nused)} "
                f"committed={_fmt(self.ncommitted)} reserved={_fmt(self.nreserved)} "
                f"allocations={self.nalloc} live_views={self.views_since(0, False)} "
                f"levels={PyList_GET_SIZE(self.frames_rw)} page={_fmt(self.page)} "
                f"protection={Protection(self.prot).name}{flags}>")

    def __reduce__(self):
        raise TypeError("an Arena cannot be pickled (it owns a memory mapping)")


cdef int _log2(size_t n):
    cdef int k = 0
    while (<size_t>1 << k) < n:
        k += 1
    return k


def _fmt(size_t n):
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= (<size_t>1 << shift):
            return f"{n / (1 << shift):.1f} {unit}"
    return f"{n} B"
