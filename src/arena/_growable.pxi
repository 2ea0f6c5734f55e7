# Growable: an array that grows in place. It owns an arena whose one allocation is its items;
# growing commits pages above them (mapping_commit through _commit_to), so the address never
# changes, nothing is copied, and every view handed out stays valid. On a file the first
# bytes are a .npy header (_npy.py) whose count field flush() rewrites in place.
# Included by _core.pyx after _arena.pxi, whose _commit_to, _wrap and _decommit_above it uses.

cimport cython
from arena._pyapi cimport PyFloat_AS_DOUBLE, PyFloat_CheckExact, PyObject
from cpython.long cimport PyLong_AsLongLong
from cpython.buffer cimport PyObject_CheckBuffer
from libc.stdio cimport snprintf
from libc.string cimport memcpy, memmove
from posix cimport unistd

from arena._mman cimport MADV_NOHUGEPAGE, madvise
from arena._npyapi cimport PyArray_Pack

import itertools

from . import _npy, _system

# What append can store without NumPy: a Python float into native float64, an int into
# native int64.
cdef enum FastKind:
    FAST_NONE
    FAST_F8
    FAST_I8

# Growable() keeps its first bytes on small pages (a few items cost a page, not 2 MiB) and
# the rest on transparent huge pages, as NumPy madvises arrays of 4 MiB and more.
cdef size_t SMALL_HEAD = 4 << 20
# Items per chunk when extend consumes an iterable of unknown length.
cdef Py_ssize_t CHUNK_BYTES = 1 << 18
# Read once: __dealloc__ writes the count with no Python left to ask.
cdef int COUNT_WIDTH = _npy.COUNT_WIDTH


cdef class _GrowFrame(_Frame):
    """Base object of the views over a Growable's first ``count`` items: its reference
    count, less the Growable's own, is the number of live views that may reach that far."""
    cdef Py_ssize_t count

    def __repr__(self):
        return f"<arena frame of the first {self.count} items of a Growable>"


@cython.final
@cython.no_gc_clear  # __dealloc__ writes the .npy count, so its fields must still be there
cdef class Growable:
    """Growable(dtype=float, item_shape=(), *, capacity_bytes=1 << 40)

    An array that grows in place, without ever moving or copying what it holds.

    It reserves ``capacity_bytes`` of address space (costing no memory) and commits pages
    as items arrive: :attr:`array` is a view over the items so far, and every view handed
    out stays valid and at the same address while the Growable grows. Peak memory is the
    data itself, where a list of chunks and ``np.concatenate`` need twice that and a
    doubling buffer copies at every growth.

    Parameters
    ----------
    dtype : data-type, optional
        Any NumPy dtype that holds no Python objects (TypeError otherwise). A subarray
        dtype such as ``("f8", (3,))`` adds its shape to ``item_shape``, as NumPy does.
    item_shape : int or tuple of ints, optional
        Shape of one item: ``()`` for scalars, ``(3,)`` for xyz rows, and so on.
    capacity_bytes : int, optional
        Address space to reserve (default 1 TiB); :attr:`capacity` items fit in it.

    Notes
    -----
    Items past the first 4 MiB lie on transparent huge pages where the kernel offers them.
    ``ArenaOptions(size).growable(dtype, item_shape)`` makes one with every arena option
    (huge pages, populate, a file that stays a valid ``.npy``). Each Growable reserves its
    own range: the default 1 TiB leaves room for about a hundred in a 47-bit address space.

    Truncation is checked, not trusted: :meth:`truncate` and :meth:`clear` raise
    BufferError while a live view covers an item they would drop. A view counts as
    reaching as far as what it was taken from: ``g.array`` and ``np.asarray(g)`` the whole
    length at the time, ``g[...]`` exactly the items it reaches; a slice of ``g.array``
    counts as all of ``g.array`` (it keeps ``g.array`` alive).

    Examples
    --------
    >>> import numpy as np, arena
    >>> g = arena.Growable(np.float32, item_shape=3)
    >>> g.append([1, 2, 3])
    >>> g.extend(np.ones((2, 3)))
    >>> first = g.array
    >>> g.extend(np.zeros((100_000, 3)))           # commits more pages; nothing moves
    >>> first.shape, g.shape, np.shares_memory(first, g.array)
    ((3, 3), (100003, 3), True)
    >>> g.array.ctypes.data == first.ctypes.data
    True
    """
    cdef Arena a
    cdef char* base          # a.base, NULL once closed
    cdef size_t data         # offset of item 0: 0, or the .npy header's length
    cdef size_t end          # offset just past the last item
    cdef size_t limit        # how far append may write without the slow path; 0 while busy
    cdef size_t isz          # bytes per item
    cdef Py_ssize_t n, cap
    cdef FastKind fast
    cdef bint busy           # converting or copying with Python code or threads able to run
    cdef unsigned long busy_gen  # _fork_children (_mapping.pxi) when busy was set
    cdef cnp.dtype descr
    cdef tuple ishape
    cdef int nd              # 1 + len(item_shape)
    cdef cnp.npy_intp dims[65]  # (n,) + item_shape; _parse_shape may fill 64 after [0]
    cdef list frames         # _GrowFrame, one per length views were taken at
    cdef Py_ssize_t compact_at
    cdef object cache        # a view of all items for indexing, never handed out
    cdef bint npy            # a .npy file: the count field at count_at
    cdef size_t count_at

    def __cinit__(self):
        self.frames = []
        self.compact_at = 16

    def __init__(self, dtype=float, item_shape=(), *, capacity_bytes=1 << 40):
        options = ArenaOptions(capacity_bytes)
        small_head = _system.thp_mode() in ("always", "madvise")
        if small_head:
            options = options.with_flags(Flags.TRANSPARENT_HUGE_PAGES)
        _growable_open(self, options, dtype, item_shape, small_head)

    def __dealloc__(self):
        # A Growable dropped without close() still leaves its file a .npy of its items.
        if self.base != NULL and self.npy and self.a is not None:
            _write_count(self)
            unistd.ftruncate(self.a.map.fd, <long>self.end)

    # -- adding items ------------------------------------------------------------------------

    def append(self, item):
        """append(item)

        Add one item: a scalar, or an array-like of :attr:`item_shape`. It converts as
        ``g.array[i] = item`` would (ValueError or TypeError otherwise, and the length
        stays as it was).

        Examples
        --------
        >>> import arena
        >>> g = arena.Growable(int)
        >>> for v in (3, 1, 4):
        ...     g.append(v)
        >>> g.array
        array([3, 1, 4])
        >>> g.append("five")
        Traceback (most recent call last):
            ...
        ValueError: invalid literal for int() with base 10: 'five'
        >>> len(g)
        3
        """
        cdef size_t end = self.end + self.isz
        cdef char* p
        if end > self.limit:
            _make_room(self, 1)
        p = self.base + self.end
        if self.fast == FAST_F8 and PyFloat_CheckExact(item):
            (<double*>p)[0] = PyFloat_AS_DOUBLE(<PyObject*>item)
        elif self.fast == FAST_I8 and PyLong_CheckExact(item):
            (<long long*>p)[0] = PyLong_AsLongLong(item)
        else:
            _put_one(self, p, item)
        self.end = end
        self.n += 1

    def extend(self, values):
        """extend(values)

        Add the items of ``values``, converted as ``np.asarray(values, dtype)`` converts
        them: an array-like of shape ``(k,) + item_shape`` (one conversion, one copy), or
        any iterable of items, consumed in chunks of about 256 KiB, never held whole. All
        or nothing: if converting any item fails, or the iterable raises, none is added.

        Examples
        --------
        >>> import numpy as np, arena
        >>> g = arena.Growable(np.int16, item_shape=2)
        >>> g.extend(np.arange(6).reshape(3, 2))
        >>> g.extend((i, -i) for i in range(2))     # a generator, in chunks
        >>> g.array.tolist()
        [[0, 1], [2, 3], [4, 5], [0, 0], [1, -1]]
        >>> g.extend([[1, 2], [3]])
        Traceback (most recent call last):
            ...
        ValueError: setting an array element with a sequence. ...
        >>> len(g)
        5
        """
        cdef cnp.ndarray arr
        _check_usable(self)
        if isinstance(values, (cnp.ndarray, list, tuple)) or _array_like(values):
            arr = _as_items(self, values, False)
            _commit_items(self, self.n, arr.shape[0])
            _copy_in(self, self.end, arr)
            self.n += arr.shape[0]
            self.end += <size_t>arr.shape[0] * self.isz
        else:
            _extend_iter(self, values)

    # -- the items -------------------------------------------------------------------------

    @property
    def array(self):
        """An ndarray over the items so far (shape :attr:`shape`). It stays valid and at
        the same address while the Growable grows; it does not see items added later."""
        _check_growable_open(self)
        return _view_upto(self, self.n)

    def __array__(self, dtype=None, copy=None):
        arr = self.array
        if dtype is not None and np.dtype(dtype) != arr.dtype:
            if copy is False:
                raise ValueError(f"a Growable of {arr.dtype} cannot be viewed as {dtype}")
            return arr.astype(dtype)
        return arr.copy() if copy else arr

    def __getitem__(self, key):
        cache = _indexable(self)
        r = cache[key]
        if isinstance(r, cnp.ndarray) and \
                cnp.PyArray_BASE(<cnp.ndarray>r) == <PyObject*>cache:
            return _rebased(self, <cnp.ndarray>r)  # a view of the cache, not a copy
        return r

    def __setitem__(self, key, value):
        _indexable(self)[key] = value

    def __iter__(self):
        return iter(self.array)

    def __len__(self):
        _check_growable_open(self)
        return self.n

    @property
    def shape(self):
        """``(len(g),) + item_shape``."""
        _check_growable_open(self)
        return (self.n,) + self.ishape

    @property
    def dtype(self):
        """The items' dtype."""
        return self.descr

    @property
    def item_shape(self):
        """The shape of one item."""
        return self.ishape

    @property
    def nbytes(self):
        """Bytes the items take (``len(g) * bytes per item``)."""
        _check_growable_open(self)
        return <size_t>self.n * self.isz

    @property
    def capacity(self):
        """How many items fit in the reservation; growing past it raises ArenaFullError."""
        return self.cap

    @property
    def committed(self):
        """Bytes committed (the .npy header included, on a file)."""
        _check_growable_open(self)
        return self.a.map.committed

    @property
    def closed(self):
        """True once :meth:`close` has run."""
        return self.base == NULL

    # -- memory ------------------------------------------------------------------------------

    def reserve(self, n):
        """reserve(n)

        Commit room for at least ``n`` items now (prefaulted with ``Flags.POPULATE``), so
        that appends up to ``n`` never commit. ArenaFullError past :attr:`capacity`.

        Examples
        --------
        >>> import arena
        >>> g = arena.Growable(float, capacity_bytes=1 << 30)
        >>> g.reserve(1_000_000)
        >>> g.committed >= 8_000_000, len(g)
        (True, 0)
        """
        cdef Py_ssize_t k = _count_arg(n, "n")
        _check_usable(self)
        if k > self.n:
            _commit_items(self, self.n, k - self.n)

    def truncate(self, n, *, decommit=False):
        """truncate(n, *, decommit=False)

        Keep the first ``n`` items (``0 <= n <= len(g)``). BufferError while a live view
        covers an item past ``n`` (see the class notes for how far a view reaches).
        ``decommit=True`` also returns the pages past the items to the OS.

        Examples
        --------
        >>> import numpy as np, arena
        >>> g = arena.Growable()
        >>> g.extend(np.arange(5.0))
        >>> head, whole = g[:2], g.array
        >>> g.truncate(2)
        Traceback (most recent call last):
            ...
        BufferError: cannot truncate to 2 items: 1 view(s) reaching past them are still alive (drop them first, e.g. with del)
        >>> del whole
        >>> g.truncate(2); head, len(g)
        (array([0., 1.]), 2)
        """
        cdef Py_ssize_t k = _count_arg(n, "n")
        _check_usable(self)
        if k > self.n:
            raise ValueError(f"cannot truncate {self.n} items to {k}: truncate only shrinks")
        _drop_views_past(self, k, f"truncate to {k} items")
        self.n = k
        self.end = self.data + <size_t>k * self.isz
        if decommit:
            self.decommit()

    def clear(self, *, decommit=False):
        """clear(*, decommit=False)

        Drop every item: ``truncate(0)``. BufferError while a live view of an item exists.

        Examples
        --------
        >>> import arena
        >>> g = arena.Growable()
        >>> g.extend([1.0, 2.0]); g.clear(decommit=True)
        >>> len(g), g.committed
        (0, 0)
        """
        self.truncate(0, decommit=decommit)

    def decommit(self):
        """decommit()

        Return the committed pages past the items to the OS (after :meth:`truncate`, or
        a :meth:`reserve` that went unused): :attr:`committed` shrinks, RSS drops.
        """
        _check_usable(self)
        _sync_arena(self)
        _decommit_above(self.a, self.end)
        _set_busy(self, False)

    # -- files and lifetime ----------------------------------------------------------------

    def flush(self):
        """flush()

        On a file: write the items to it, then rewrite the ``.npy`` header's count, so
        that the file is a valid ``.npy`` of the items so far (``np.load`` reads them) and
        a crash later loses nothing before this point. Without a file: nothing to do.
        """
        _check_growable_open(self)
        if not self.npy:
            return
        mapping_flush(self.a.map, self.data, self.end - self.data, False)
        _write_count(self)
        mapping_flush(self.a.map, 0, self.data, False)

    def close(self):
        """close()

        Flush, trim the file to the items (on a file) and unmap; idempotent. BufferError
        while views of the items are alive. Afterwards every use raises ValueError.

        Examples
        --------
        >>> import arena
        >>> with arena.Growable() as g:
        ...     g.append(1.5)
        ...     total = float(g.array.sum())
        >>> total, g.closed
        (1.5, True)
        """
        cdef Py_ssize_t live
        if self.base == NULL:
            return
        _check_usable(self)
        self.cache = None
        live = _views_past(self, -1)
        if live:
            raise BufferError(f"cannot close: {live} view(s) of its items are still alive")
        if self.npy:
            self.flush()
            # A crash before this leaves trailing bytes past the items, which np.load
            # ignores; a clean close leaves exactly the .npy.
            unistd.ftruncate(self.a.map.fd, <long>self.end)
        self.a.close()
        self.base = NULL
        self.limit = 0
        del self.frames[:]

    def __enter__(self):
        _check_growable_open(self)
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
            return False
        try:  # do not mask the exception; the views its traceback holds keep the memory
            self.close()
        except (BufferError, RuntimeError):
            pass
        return False

    def __repr__(self):
        if self.base == NULL:
            return f"<arena.Growable closed dtype={self.descr}>"
        where = f" file={self.a.opts.file!r}" if self.npy else ""
        return (f"<arena.Growable len={self.n} dtype={self.descr} "
                f"item_shape={self.ishape} committed={format_bytes(self.a.map.committed)} "
                f"capacity={self.cap}{where}>")

    def __reduce__(self):
        raise TypeError("a Growable cannot be pickled (it owns a memory mapping); "
                        "pickle g.array, or put it on a file")


def _growable_from_options(options, dtype=float, item_shape=()):
    """``ArenaOptions.growable``'s way in: a Growable on an arena made from ``options``."""
    cdef Growable g = Growable.__new__(Growable)
    _growable_open(g, options, dtype, item_shape, False)
    return g


# -- opening ---------------------------------------------------------------------------------

cdef int _growable_open(Growable g, options, dtype, item_shape, bint small_head) except -1:
    cdef size_t room
    if g.a is not None:
        raise TypeError("this Growable is already open")
    if not isinstance(options, ArenaOptions):
        raise TypeError(f"options must be an ArenaOptions, not {type(options).__name__}")
    # Everything about the items is checked before a file is opened or created.
    g.descr, g.ishape = _item_type(dtype, item_shape, g.dims)
    g.nd = 1 + len(g.ishape)
    g.isz = _nbytes(g.nd - 1, &g.dims[1], g.descr.itemsize)
    if options.file is not None:
        if Flags.SHARED not in options.flags:
            raise ValueError("a Growable on a file needs Flags.SHARED: a private mapping "
                             "never writes its items to the file")
        if options.offset:
            raise ValueError(f"a Growable's .npy file starts at offset 0, not {options.offset}")
    g.a = Arena(options)
    try:
        if small_head:
            # Advice: a refusal costs only the small pages of the head.
            madvise(g.a.base, min(SMALL_HEAD, g.a.map.reserved), MADV_NOHUGEPAGE)
        if g.a.map.file_backed:
            _open_npy(g)
        room = (g.a.map.reserved - g.data) // g.isz if g.isz else <size_t>PY_SSIZE_T_MAX
        g.cap = <Py_ssize_t>min(room, <size_t>PY_SSIZE_T_MAX)
    except BaseException:
        g.a.close()
        g.a = None
        raise
    g.end = g.data + <size_t>g.n * g.isz
    g.base = g.a.base
    _sync_arena(g)
    _set_busy(g, False)
    descr = <object>g.descr
    if g.nd == 1 and descr.isnative and descr.itemsize == 8 and g.data % 8 == 0:
        g.fast = FAST_F8 if descr.kind == "f" else FAST_I8 if descr.kind == "i" else FAST_NONE
    return 0


cdef tuple _item_type(dtype, item_shape, cnp.npy_intp* dims):
    """(dtype, item shape) as a NumPy array of them would have; fills ``dims[1:]``."""
    cdef int i, nd
    cdef list shape = []
    d = np.dtype(dtype)
    sub = ()
    if d.subdtype is not None:
        d, sub = d.subdtype
    nd = _parse_shape(item_shape, &dims[1])
    if nd + len(sub) + 1 > cnp.NPY_MAXDIMS:
        raise ValueError(f"an item of {nd + len(sub)} dimensions leaves no room for the "
                         f"first axis (NumPy allows {cnp.NPY_MAXDIMS})")
    for i, s in enumerate(sub):
        dims[1 + nd + i] = s
    if d.hasobject:
        raise TypeError(f"dtype {d} holds Python objects, which cannot live in an arena")
    if d.itemsize == 0 and d.kind in "SUV":
        d = np.dtype((d.type, 1))
    for i in range(nd + len(sub)):
        shape.append(dims[1 + i])
    return d, tuple(shape)


cdef int _open_npy(Growable g) except -1:
    """Adopt the file's items (same dtype and item shape) or write a new header."""
    cdef Arena a = g.a
    cdef size_t size = a.nused  # the file's bytes, adopted by the arena
    cdef size_t total, preamble = _npy.PREAMBLE
    f = a.opts.file
    name = os.fsdecode(f) if isinstance(f, (str, bytes, os.PathLike)) else repr(f)
    if size == 0:
        layout = _npy.new_layout(g.descr, g.ishape)
        total = layout.data_offset
        _commit_to(a, total)
        g.n = 0
    else:
        total = _npy.header_length(a.base[:min(size, preamble)], name)
        if total > size or total > _npy.MAX_HEADER:
            raise ValueError(f"{name}: its .npy header ({total} bytes) is truncated or too "
                             "large")
        layout, count = _npy.existing_layout(a.base[:total], g.descr, g.ishape, name)
        if g.isz and count > (a.map.reserved - total) // g.isz:
            raise ValueError(f"{name} holds {count} items of {g.isz} bytes: more than the "
                             f"reservation of {a.map.reserved} bytes has room for")
        if g.isz and count > (a.map.file_known - total) // g.isz:
            raise ValueError(f"{name}: its header promises {count} items of {g.isz} bytes, "
                             f"but it holds {a.map.file_known - total} bytes after the header")
        g.n = count
    header = layout.header(g.n)
    assert <size_t>len(header) == total
    memcpy(a.base, <char*>header, total)
    g.data = total
    g.count_at = layout.count_at
    g.npy = True
    mapping_flush(a.map, 0, total, False)
    return 0


# -- state -------------------------------------------------------------------------------------

cdef int _check_growable_open(Growable g) except -1:
    if g.base == NULL:
        raise ValueError("the Growable is closed")
    return 0


cdef int _check_usable(Growable g) except -1:
    """Open, and not in the middle of an append or extend that may run Python code."""
    _check_growable_open(g)
    if g.busy and g.busy_gen != _fork_children:
        _set_busy(g, False)  # set by a thread of the parent this process was forked from
    if g.busy:
        raise RuntimeError("the Growable cannot change while an append or extend is "
                           "converting or copying items (called back from that code)")
    return 0


cdef void _set_busy(Growable g, bint busy) noexcept:
    # limit 0 sends append's fast path to _make_room, which refuses while busy.
    g.busy = busy
    g.busy_gen = _fork_children
    g.limit = 0 if busy or g.base == NULL else g.a.limit


cdef void _sync_arena(Growable g) noexcept:
    g.a.nused = g.end
    if g.end > g.a.touched:
        g.a.touched = g.end


cdef void _write_count(Growable g) noexcept:
    cdef char field[32]
    snprintf(field, sizeof(field), "%-*zd", COUNT_WIDTH, g.n)
    memcpy(g.base + g.count_at, field, COUNT_WIDTH)


cdef Py_ssize_t _count_arg(object n, str what) except -1:
    if isinstance(n, bool):
        raise TypeError(f"{what} must be an integer, not bool")
    cdef Py_ssize_t k = operator.index(n)
    if k < 0:
        raise ValueError(f"{what} must be >= 0, got {k}")
    return k


# -- growing -----------------------------------------------------------------------------------

cdef int _make_room(Growable g, Py_ssize_t k) except -1:
    _check_usable(g)
    return _commit_items(g, g.n, k)


cdef int _commit_items(Growable g, Py_ssize_t have, Py_ssize_t k) except -1:
    """Commit room for ``k`` items after the first ``have``; on failure nothing changes."""
    if k > g.cap - have:
        raise ArenaFullError(f"{k} more item(s) do not fit: the reservation holds {g.cap} "
                             f"items of {g.isz} bytes and {have} are in use")
    _commit_to(g.a, g.data + <size_t>(have + k) * g.isz)
    _set_busy(g, g.busy)
    return 0


cdef int _put_one(Growable g, char* p, object item) except -1:
    """append's slow path: convert ``item`` into the item at ``p``."""
    _check_usable(g)
    cdef cnp.ndarray arr
    if g.nd == 1:
        _set_busy(g, True)  # the conversion may call __float__, __index__, ...
        try:
            PyArray_Pack(<void*>g.descr, p, item)
        finally:
            _set_busy(g, False)
    else:
        arr = _as_items(g, item, True)
        _copy_in(g, <size_t>(p - g.base), arr)
    return 0


cdef bint _array_like(object values):
    # Bytes and strings are iterables of items here, as for list.extend.
    if isinstance(values, (bytes, bytearray, str)):
        return False
    return PyObject_CheckBuffer(values) or hasattr(values, "__array__") or \
        hasattr(values, "__array_interface__") or hasattr(values, "__array_struct__")


cdef cnp.ndarray _as_items(Growable g, object values, bint one):
    """``values`` as an array of the dtype and of shape ``item_shape`` (``one``) or
    ``(k,) + item_shape``; ValueError otherwise. Busy meanwhile: NumPy may call back into
    Python (``__array__``, ``__float__``, iteration) and that code must not change ``g``."""
    cdef bint was = g.busy
    _set_busy(g, True)
    try:
        arr = np.asarray(values, dtype=g.descr)
    finally:
        _set_busy(g, was)
    if not one and arr.shape == (0,):  # an empty list has no item shape to check
        return <cnp.ndarray>np.empty((0,) + g.ishape, g.descr)
    got = arr.shape if one else arr.shape[1:]
    if got != g.ishape or (not one and arr.ndim == 0):
        want = "an item of shape " + str(g.ishape) if one else \
            "items of shape (k,) + " + str(g.ishape)
        raise ValueError(f"{'append' if one else 'extend'} takes {want}, got an array of "
                         f"shape {arr.shape}")
    return <cnp.ndarray>arr


cdef int _copy_in(Growable g, size_t offset, cnp.ndarray arr) except -1:
    """Copy ``arr`` (the Growable's dtype) to ``offset``, which is committed."""
    cdef bint was = g.busy
    if cnp.PyArray_IS_C_CONTIGUOUS(arr):
        memmove(g.base + offset, cnp.PyArray_DATA(arr), <size_t>cnp.PyArray_NBYTES(arr))
        return 0
    Py_INCREF(g.descr)  # stolen
    dst = PyArray_NewFromDescr(<void*>cnp.ndarray, <void*>g.descr, cnp.PyArray_NDIM(arr),
                               cnp.PyArray_DIMS(arr), NULL, g.base + offset,
                               cnp.NPY_ARRAY_WRITEABLE, NULL)
    _set_busy(g, True)  # NumPy may release the GIL for the copy
    try:
        cnp.PyArray_CopyInto(<cnp.ndarray>dst, arr)
    finally:
        _set_busy(g, was)
    return 0


cdef int _extend_iter(Growable g, object values) except -1:
    """extend from an iterable of unknown length: chunks staged past the items, counted
    only once the iterable is exhausted, so a failure adds nothing."""
    cdef Py_ssize_t staged = 0, k
    cdef size_t at = g.end
    cdef Py_ssize_t chunk = max(1, CHUNK_BYTES // <Py_ssize_t>max(g.isz, <size_t>1))
    cdef cnp.ndarray arr
    it = iter(values)
    _set_busy(g, True)
    try:
        while True:
            items = list(itertools.islice(it, chunk))
            if not items:
                break
            arr = _as_items(g, items, False)
            k = arr.shape[0]
            _commit_items(g, g.n + staged, k)
            _copy_in(g, at, arr)
            staged += k
            at += <size_t>k * g.isz
    finally:
        _set_busy(g, False)
    g.n += staged
    g.end = at
    return 0


# -- views and liveness -------------------------------------------------------------------------

cdef _GrowFrame _frame_for(Growable g, Py_ssize_t count):
    """The frame for views over the first ``count`` items: the newest if it matches, else a
    new one. Frames only the list holds are dropped from the end at once, and from the
    middle whenever the list has doubled."""
    cdef Py_ssize_t i, k = PyList_GET_SIZE(g.frames)
    cdef PyObject* f
    cdef _GrowFrame frame
    if k and (<_GrowFrame>PyList_GET_ITEM(g.frames, k - 1)).count == count:
        return <_GrowFrame>PyList_GET_ITEM(g.frames, k - 1)
    while k and Py_REFCNT(PyList_GET_ITEM(g.frames, k - 1)) == 1:
        k -= 1
    del g.frames[k:]
    if k >= g.compact_at:
        alive = []
        for i in range(k):
            f = PyList_GET_ITEM(g.frames, i)
            if Py_REFCNT(f) > 1:
                alive.append(<object>f)
        g.frames = alive
        g.compact_at = max(16, 2 * PyList_GET_SIZE(alive))
    frame = _GrowFrame()
    frame.region = g.a.region
    frame.start = g.data
    frame.count = count
    g.frames.append(frame)
    return frame


cdef object _view_upto(Growable g, Py_ssize_t count):
    g.dims[0] = count
    return _wrap(g.a, g.base + g.data, g.nd, g.dims, g.descr, cnp.NPY_ARRAY_WRITEABLE,
                 _frame_for(g, count))


cdef object _indexable(Growable g):
    """A view of every item, kept for indexing; rebuilt when the length has changed."""
    _check_growable_open(g)
    if g.cache is None or cnp.PyArray_DIMS(<cnp.ndarray>g.cache)[0] != g.n:
        g.cache = None  # first, so that its frame can be dropped
        g.cache = _view_upto(g, g.n)
    return g.cache


cdef object _rebased(Growable g, cnp.ndarray r):
    """The view ``r`` of the items again, with the frame of exactly the items it reaches,
    so that truncate() is refused only for views that really reach past the cut."""
    cdef int i, nd = cnp.PyArray_NDIM(r)
    cdef cnp.npy_intp* shape = cnp.PyArray_DIMS(r)
    cdef cnp.npy_intp* strides = cnp.PyArray_STRIDES(r)
    cdef Py_ssize_t last = (<char*>cnp.PyArray_DATA(r)) - (g.base + g.data)
    cdef Py_ssize_t count = 0
    for i in range(nd):
        if shape[i] == 0:
            break
        if strides[i] > 0:
            last += (shape[i] - 1) * strides[i]
    else:
        last += cnp.PyArray_ITEMSIZE(r) - 1
        count = last // <Py_ssize_t>g.isz + 1 if g.isz else 0
    descr = <object><void*>cnp.PyArray_DESCR(r)
    Py_INCREF(descr)  # stolen
    out = PyArray_NewFromDescr(<void*>cnp.ndarray, <void*>descr, nd, shape, strides,
                               cnp.PyArray_DATA(r),
                               cnp.PyArray_FLAGS(r) & cnp.NPY_ARRAY_WRITEABLE, NULL)
    frame = _frame_for(g, count)
    Py_INCREF(frame)
    PyArray_SetBaseObject(<cnp.ndarray>out, frame)
    return out


cdef Py_ssize_t _views_past(Growable g, Py_ssize_t n) noexcept:
    """Live views that may reach past the first ``n`` items (any view for n = -1); reads
    reference counts of borrowed pointers, so no temporary reference inflates them."""
    cdef Py_ssize_t i, live = 0
    cdef PyObject* f
    for i in range(PyList_GET_SIZE(g.frames)):
        f = PyList_GET_ITEM(g.frames, i)
        if (<_GrowFrame>f).count > n:
            live += Py_REFCNT(f) - 1
    return live


cdef int _drop_views_past(Growable g, Py_ssize_t n, str what) except -1:
    """Refuse with BufferError while views reach past ``n`` items; else forget their
    frames, so that a frame's count never exceeds the items that exist."""
    cdef Py_ssize_t live
    if g.cache is not None and g.n > n:
        g.cache = None
    live = _views_past(g, n)
    if live:
        raise BufferError(f"cannot {what}: {live} view(s) reaching past them are still "
                          "alive (drop them first, e.g. with del)")
    g.frames = [f for f in g.frames if (<_GrowFrame>f).count <= n]
    return 0
