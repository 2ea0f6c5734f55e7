"""Arena: one reservation, a commit frontier, a bump pointer, per-level frames, the ndarrays.

The layers, one direction of use (each a file included here, so that the hot path never
crosses a module boundary):

- ``_mapping.pxi``: the OS layer (reserve, commit, protect, files); knows no NumPy;
- ``_frames.pxi``: frames, marks and liveness (the safety core);
- ``_convert.pxi``: argument conversion (shapes, dtypes, alignment, order);
- ``_heap.pxi``, ``_numpy_handler.pxi``: NumPy's allocations (NEP 49) over the bump;
- ``_growable.pxi``: Growable, the top allocation of an arena of its own growing in place;
- ``_shared*.pxi``: one arena for several processes (an atomic bump in shared memory);
- ``_arena.pxi`` and this file: the Arena (bump, the ndarray facade, lifetime, policy).

Safety rests on one rule: every array handed out has as its base a ``_Frame`` of the mark
level it was allocated in, so a frame's reference count (less the arena's own reference)
is the number of live views of that level. Releasing, resetting, closing and protection
changes refuse with BufferError while views that they would break are alive.
"""
import operator
import os

import numpy as np

cimport numpy as cnp
from libc.stdint cimport uintptr_t

from arena._mman cimport PROT_EXEC, PROT_NONE, PROT_READ, PROT_WRITE

from ._errors import ArenaError  # no-cython-lint (arena._core.ArenaError, as the stub says)
from ._errors import ArenaFullError, CommitError, os_error
from ._format import format_bytes
from ._options import ArenaOptions, Flags, Protection, UnsafeFlags

cnp.import_array()

cdef int RW = PROT_READ | PROT_WRITE

# Which live views a protection change tolerates.
cdef enum ViewRule:
    ANY_VIEWS
    NO_WRITABLE_VIEWS
    NO_VIEWS

include "_mapping.pxi"
include "_frames.pxi"
include "_convert.pxi"
include "_heap.pxi"
include "_numpy_handler.pxi"
include "_shared.pxi"
include "_arena.pxi"
include "_growable.pxi"


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
        _arena_init(self, size_or_options, protection)

    cdef void* alloc_slow(self, size_t nbytes, size_t align) except NULL:
        """alloc_raw's way when the inline bump cannot serve: commit, or say why not."""
        cdef void* p = _bump(self, nbytes, align)
        self.nalloc += 1
        _shared_unpublish(self)  # a raw pointer is no view (a shared arena published it)
        return p

    def numpy_allocator(self):
        """numpy_allocator()

        ``with a.numpy_allocator():`` makes NumPy allocate array data from this arena in
        the current thread and context (NEP 49). Those arrays count as views: reset,
        release, close and protection changes refuse while they live, and they stay valid
        after the block. The arena runs a real heap for them: blocks freed in any order are
        reused (good fit, merged with free neighbours, given back to the bump pointer when
        on top) at a cost that does not grow with the number of live arrays; ``realloc``
        of the top block grows in place. Requests below ``options.small_threshold`` bytes
        (1 KiB by default) go to NumPy's own allocator, which is fastest for tiny arrays.
        Memory freed and not reused for ``options.purge_delay`` seconds is given back to
        the OS (see :meth:`purge`). An arena that runs out raises MemoryError from the
        NumPy call that asked; a closed or not read/write arena refuses to enter.

        Arrays that outlive the block keep the arena in use: a NumPy submodule imported
        for the first time inside the block may keep large module-level arrays for the
        life of the process (small ones go to NumPy's allocator). Import such modules
        before entering the block.

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
        _check_numpy_allocatable(self)
        return NumpyAllocator(self)

    def purge(self):
        """purge()

        Give back to the OS now every whole page the arena holds committed but does not
        use: above the bump pointer, and inside blocks NumPy freed (``numpy_allocator``).
        ``committed`` and the mapping stay; RSS drops, and the pages read as zeros when
        next touched (a file-backed arena's read as the file). Inside
        ``numpy_allocator()`` this also happens on its own for memory left unused longer
        than ``options.purge_delay``. Hugetlb and locked arenas keep their pages.

        Examples
        --------
        >>> import numpy as np, arena
        >>> a = arena.Arena(1 << 30)
        >>> with a.numpy_allocator():
        ...     big = np.ones(1 << 22)    # 32 MiB from the arena
        >>> del big                       # on top: back to the bump pointer
        >>> a.purge()                     # and its pages back to the OS
        >>> a.used, a.committed >= 32 << 20
        (0, True)
        """
        _shared_purge(self)  # (checks it is open) a shared arena: for every process
        if _purgeable(self):
            heap_purge(self, True, 0, -1)
            heap_purge_above(self)

    def __dealloc__(self):
        _arena_dealloc(self)
        if self.map != NULL:  # the region (alive while arrays are) trims the file at unmap
            self.map.file_used = self.touched

    # -- sub-allocations ---------------------------------------------------------------------

    def empty(self, shape, dtype=float, order=_C, *, align=None):
        """empty(shape, dtype=float, order="C", *, align=None)

        An uninitialised array in the arena.

        Parameters
        ----------
        shape : int or sequence of ints
            A 1-D integer ndarray too, as NumPy takes.
        dtype : data-type, optional
            Any NumPy dtype that holds no Python objects (TypeError otherwise). A list or
            dict spec is read afresh at every call.
        order : {'C', 'F'}, optional
        align : int, optional
            Alignment of the first byte: a power of two up to the arena's page size.
            Default: the arena's alignment (64 unless ``with_alignment`` said otherwise).

        Notes
        -----
        Every argument is converted before the arena's bump pointer moves: conversions that
        run Python code (``__index__``, a ``dtype`` attribute), even code that allocates from
        this arena and then fails, leave nothing behind and free nothing of theirs.

        Examples
        --------
        >>> import numpy as np, arena
        >>> a = arena.Arena(1 << 20)
        >>> x = a.empty((2, 3), np.int32, "F", align=4096)
        >>> x.shape, x.flags.f_contiguous, a.offset_of(x) % 4096
        ((2, 3), True, 0)
        >>> a.empty(np.array([2, 2]), "u1").shape
        (2, 2)
        """
        return _new(self, shape, dtype, order, align, False)

    def zeros(self, shape, dtype=float, order=_C, *, align=None):
        """zeros(shape, dtype=float, order="C", *, align=None)

        A zero-filled array in the arena. Only bytes the arena handed out before are written:
        fresh pages (anonymous, a memfd, a file where it grows) already read as zeros.

        Examples
        --------
        >>> import numpy as np, arena
        >>> a = arena.Arena(1 << 20)
        >>> a.zeros(3, np.int64)
        array([0, 0, 0])
        """
        return _new(self, shape, dtype, order, align, True)

    def full(self, shape, fill_value, dtype=None, order="C", *, align=None):
        """full(shape, fill_value, dtype=None, order="C", *, align=None)

        An array filled with ``fill_value`` (a scalar or an array broadcastable to
        ``shape``); the dtype defaults to ``fill_value``'s. As :func:`numpy.full`,
        ``fill_value`` is cast unsafely. It is converted before anything is allocated: a
        value that cannot be converted changes nothing in the arena.

        Examples
        --------
        >>> import arena
        >>> a = arena.Arena(1 << 20)
        >>> a.full((2, 2), 7.5)
        array([[7.5, 7.5],
               [7.5, 7.5]])
        >>> a.full((2, 3), [1, 2, 3], "u1", "F").flags.f_contiguous
        True
        """
        return _full(self, shape, fill_value, dtype, order, align)

    def empty_like(self, prototype, dtype=None, order="K", subok=True, shape=None, *,
                   align=None):
        """empty_like(prototype, dtype=None, order="K", subok=True, shape=None, *, align=None)

        Like :func:`numpy.empty_like`, with the memory in the arena. ``order="K"`` keeps a
        Fortran-ordered prototype Fortran-ordered. ``subok`` is accepted for NumPy's sake:
        the result is always a base ``ndarray``, as its memory is the arena's.

        Examples
        --------
        >>> import numpy as np, arena
        >>> a = arena.Arena(1 << 20)
        >>> t = a.empty_like(np.ones((4, 5), np.float32))
        >>> t.shape, t.dtype
        ((4, 5), dtype('float32'))
        >>> a.empty_like(t, np.int8, "C", True, (2, 2)).shape
        (2, 2)
        """
        return _like(self, prototype, dtype, order, subok, shape, align, False)

    def zeros_like(self, prototype, dtype=None, order="K", subok=True, shape=None, *,
                   align=None):
        """zeros_like(prototype, dtype=None, order="K", subok=True, shape=None, *, align=None)

        Like :func:`numpy.zeros_like`, with the memory in the arena.

        Examples
        --------
        >>> import numpy as np, arena
        >>> a = arena.Arena(1 << 20)
        >>> a.zeros_like(np.arange(3))
        array([0, 0, 0])
        """
        return _like(self, prototype, dtype, order, subok, shape, align, True)

    def array(self, obj, dtype=None, *, copy=True, order=_K, ndmin=0, align=None):
        """array(obj, dtype=None, *, copy=True, order="K", ndmin=0, align=None)

        ``obj`` (anything :func:`numpy.array` takes) in the arena. ``copy=True`` always
        copies; ``copy=None`` returns ``obj`` itself when it already is an array of this
        arena with the dtype and order asked for, and ``copy=False`` then insists (ValueError
        when a copy is needed). ``ndmin`` prepends ones to the shape, as NumPy does.
        ``obj`` is converted (which may run its ``__array__``, ``__float__``...) before the
        arena allocates anything.

        Examples
        --------
        >>> import arena
        >>> a = arena.Arena(1 << 20)
        >>> x = a.array([[1, 2], [3, 4]], dtype="u1")
        >>> x, a.offset_of(x)
        (array([[1, 2],
               [3, 4]], dtype=uint8), 0)
        >>> a.array(x, copy=None) is x, a.array([1.0, 2.0], ndmin=2).shape
        (True, (1, 2))
        """
        return _array(self, obj, dtype, copy, order, ndmin, align)

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
        return _new(self, operator.index(nbytes), np.uint8, "C", align, False)

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
        return _view(self, offset, shape, dtype, order)

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
        _check_open(self)
        if not isinstance(x, cnp.ndarray):
            raise TypeError(f"offset_of takes a numpy.ndarray, not {type(x).__name__}")
        cdef size_t p = <size_t><uintptr_t>cnp.PyArray_DATA(<cnp.ndarray>x)
        cdef size_t b = <size_t><uintptr_t>self.base
        if p < b or p - b > self.map.reserved or (p - b == self.map.reserved and x.nbytes):
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
        cdef Mark m = Mark()
        cdef _Frame f = _Frame()  # made before the check: see _push_this_frame
        while _check_open(self) or _check_thread(self, PyList_GET_SIZE(self.frames_rw) - 1, "mark"):
            pass  # another thread ran: look again
        m.owner = self
        m.level = PyList_GET_SIZE(self.frames_rw)
        m.start = _used(self)
        _push_this_frame(self, f, m.start)
        m.serial = (<_Frame>self.frames_rw[m.level]).serial
        return m

    def release(self, Mark mark not None):
        """release(mark)

        Free everything allocated since ``mark`` (and every later mark). BufferError while
        views allocated since then are alive (in a shared arena: in any process, given 0.1 s
        to go); ValueError for a mark already released or from another arena.

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
        if mark.owner is not self:
            raise ValueError("the mark belongs to another arena")
        cdef Py_ssize_t level = mark.level
        while _check_open(self) or _check_mark(self, mark) or _check_thread(self, level, "release the mark"):
            pass  # another thread ran: look again
        cdef Py_ssize_t live = _views_since(self, level, False)
        if live:
            raise BufferError(f"cannot release: {live} view(s) allocated since the mark are "
                              "still alive (drop them first, e.g. with del)")
        _shared_release(self, level)  # another process's views since the mark refuse too
        cdef _Frame f = <_Frame>self.frames_rw[level]
        self.nused = f.start
        self.view_end = min(self.view_end, f.start)
        self.nalloc = f.nalloc_start
        heap_drop_from(self, f.start)
        _drop_levels_from(self, level)

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
        _check_open(self)
        return _Scope(self)

    def reset(self, *, decommit=False):
        """reset(*, decommit=False)

        Free everything, in O(1). BufferError while any view is alive (in a shared arena: in
        any process, given 0.1 s to go). ``decommit=True`` also returns the committed pages
        to the OS (RSS drops).

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
        cdef _Frame base = _Frame()  # made before the checks: see _push_this_frame
        while _check_open(self) or _check_thread(self, 1, "reset"):
            pass  # another thread ran: look again
        cdef Py_ssize_t live = _views_since(self, 0, False)
        if live:
            raise BufferError(f"cannot reset: {live} view(s) are still alive "
                              "(drop them first, e.g. with del)")
        _shared_reset(self)  # another process's views refuse too
        self.nused = 0
        self.view_end = 0
        self.nalloc = 0
        heap_drop_from(self, 0)
        _drop_levels_from(self, 0)
        _push_this_frame(self, base, 0)
        if decommit:
            _decommit_above(self, 0)

    def close(self):
        """close()

        Unmap the arena; idempotent. BufferError while views are alive. Afterwards every
        use raises ValueError. A shared arena is unmapped in this process only.

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
        _check_idle(self)  # a shared arena's other threads
        cdef Py_ssize_t live = _views_since(self, 0, False)
        if live:
            raise BufferError(f"cannot close: {live} view(s) are still alive")
        mapping_trim_file(self.map, self.touched)
        mapping_unmap(self.map)
        self.base = NULL
        _update_limit(self)
        _drop_levels_from(self, 0)
        _shared_close(self)

    def __enter__(self):
        _check_open(self)
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
        _check_open(self)
        if isinstance(nbytes, bool):
            raise TypeError("nbytes must be an integer")
        n = operator.index(nbytes)
        if n < 0 or n > self.map.reserved:
            raise ValueError(f"nbytes must be in [0, {self.map.reserved}], got {n}")
        _commit_to(self, <size_t>n)

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
        _check_open(self)
        _decommit_above(self, self.nused)

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
        _check_open(self)
        mapping_lock(self.map)

    def unlock(self):
        """unlock()

        munlock the committed range; later commits are not locked (unless ``Flags.LOCKED``).
        See :meth:`lock`.
        """
        _check_open(self)
        mapping_unlock(self.map)

    def flush(self, offset=0, size=None, *, asynchronous=False):
        """flush(offset=0, size=None, *, asynchronous=False)

        msync ``[offset, offset + size)`` of a file-backed arena to its file (the whole
        committed range by default). ValueError if the range is not committed. A
        ``Flags.SHARED`` file is then cut back to what the arena handed out: it grows by
        commit steps while in use, and by what is used once flushed or closed.

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
        _check_open(self)
        if isinstance(offset, bool) or isinstance(size, bool):
            raise TypeError("offset and size must be integers")
        cdef Py_ssize_t off = operator.index(offset)
        if off < 0:  # before the subtraction below, which would overflow
            raise ValueError(f"flush offset must be >= 0, got {off}")
        cdef Py_ssize_t n = (<Py_ssize_t>self.map.committed - off) if size is None \
            else operator.index(size)
        if off < 0 or n < 0 or <size_t>off > self.map.committed or \
                <size_t>n > self.map.committed - <size_t>off:
            raise ValueError(f"flush range [{off}, {off}+{n}) is outside the "
                             f"{self.map.committed} committed bytes")
        mapping_flush(self.map, <size_t>off, <size_t>n, asynchronous)
        mapping_trim_file(self.map, self.touched)
        _update_limit(self)

    # -- protection --------------------------------------------------------------------------

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
        _protect(self, PROT_NONE, NO_VIEWS, "make the arena inaccessible")

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
        _protect(self, PROT_READ, NO_WRITABLE_VIEWS, "make the arena read-only")

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
        _protect(self, RW, ANY_VIEWS, "make the arena writable")

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
        _protect(self, PROT_READ | PROT_EXEC, NO_WRITABLE_VIEWS, "make the arena executable")

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
        _protect(self, RW | PROT_EXEC, ANY_VIEWS, "make the arena writable and executable")

    @property
    def protection(self):
        """The current :class:`Protection` of committed pages."""
        return Protection(self.map.prot)

    # -- introspection ----------------------------------------------------------------------------

    @property
    def address(self):
        """Address of the arena's first byte."""
        _check_open(self)
        return <size_t><uintptr_t>self.base

    @property
    def reserved(self):
        """Bytes of address space reserved."""
        _check_open(self)
        return self.map.reserved

    @property
    def committed(self):
        """Bytes committed (accessible) from the start of the arena."""
        return _figure(self, "committed")

    @property
    def used(self):
        """Bytes up to the bump pointer."""
        return _figure(self, "used")

    @property
    def available(self):
        """Bytes left for allocations (``reserved - used``)."""
        return _figure(self, "available")

    @property
    def high_water(self):
        """The largest ``used`` seen since the arena was made."""
        return _figure(self, "high_water")

    @property
    def num_allocations(self):
        """Allocations made and not yet freed by reset or release."""
        return _figure(self, "num_allocations")

    @property
    def live_views(self):
        """Arrays (and views of them) alive that use the arena's memory."""
        _check_open(self)
        return _views_since(self, 0, False)

    @property
    def page_size(self):
        """The page size backing the arena (a huge page size with hugetlb)."""
        return self.page

    @property
    def commit_step(self):
        """Bytes committed at a time as the bump pointer crosses the frontier."""
        return self.map.step

    @property
    def alignment(self):
        """Default alignment of sub-allocations."""
        return self.align

    @property
    def levels(self):
        """Mark levels in use (1 + the number of unreleased marks)."""
        _check_open(self)
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
        _check_open(self)
        return _stats(self)

    def __repr__(self):
        return _repr(self)

    def __reduce__(self):
        raise TypeError("an Arena cannot be pickled (one made with Flags.SHARED and no file goes "
                        "to other processes through multiprocessing)")
