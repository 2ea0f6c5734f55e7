"""The options builder (modelled on mmap-rs ``MmapOptions``) and its enums.

Everything is validated at the ``with_*`` call that can judge it, so that a bad value is
reported where it was written, not later at ``reserve()``.
"""
from __future__ import annotations

import enum
import io
import numbers
import operator
import os

from . import _system


class Flags(enum.IntFlag):
    """Memory-policy flags for :meth:`ArenaOptions.with_flags`; combine them with ``|``.

    Examples
    --------
    >>> from arena import ArenaOptions, Flags
    >>> opts = ArenaOptions(1 << 30).with_flags(Flags.TRANSPARENT_HUGE_PAGES | Flags.POPULATE)
    >>> Flags.POPULATE in opts.flags
    True
    """

    SHARED = 1 << 0
    POPULATE = 1 << 1
    NO_RESERVE = 1 << 2
    HUGE_PAGES = 1 << 3
    TRANSPARENT_HUGE_PAGES = 1 << 4
    LOCKED = 1 << 5
    NO_CORE_DUMP = 1 << 6
    SEQUENTIAL = 1 << 7
    RANDOM_ACCESS = 1 << 8
    STACK = 1 << 9


class UnsafeFlags(enum.IntFlag):
    """Flags that give up a safety guarantee, for :meth:`ArenaOptions.with_unsafe_flags`.

    ``MAP_FIXED`` makes :meth:`ArenaOptions.with_address` binding (replacing whatever is
    mapped there); ``JIT`` allows pages that are writable and executable at once.

    Examples
    --------
    >>> from arena import ArenaOptions, UnsafeFlags
    >>> jit = ArenaOptions(1 << 20).with_unsafe_flags(UnsafeFlags.JIT).map_exec_mut()
    >>> jit.protection.name
    'READ_WRITE_EXECUTE'
    """

    MAP_FIXED = 1 << 0
    JIT = 1 << 1


class PageSize(enum.IntEnum):
    """Page sizes in bytes, for :meth:`ArenaOptions.with_page_size`.

    Examples
    --------
    >>> from arena import PageSize
    >>> PageSize.SIZE_2M == 2 * 1024 * 1024
    True
    """

    SIZE_4K = 1 << 12
    SIZE_64K = 1 << 16
    SIZE_512K = 1 << 19
    SIZE_1M = 1 << 20
    SIZE_2M = 1 << 21
    SIZE_8M = 1 << 23
    SIZE_16M = 1 << 24
    SIZE_32M = 1 << 25
    SIZE_256M = 1 << 28
    SIZE_512M = 1 << 29
    SIZE_1G = 1 << 30
    SIZE_2G = 1 << 31
    SIZE_16G = 1 << 34


class Protection(enum.IntFlag):
    """Page protection; the values are Linux's ``PROT_*`` bits.

    Examples
    --------
    >>> import arena
    >>> a = arena.Arena(1 << 20)
    >>> a.protection == arena.Protection.READ | arena.Protection.WRITE
    True
    """

    NONE = 0
    READ = 1
    WRITE = 2
    EXECUTE = 4
    READ_WRITE = 3
    READ_EXECUTE = 5
    READ_WRITE_EXECUTE = 7


# Sizes and offsets stay below 2**62 so that no sum of two of them wraps a size_t.
MAX_SIZE = 1 << 62
DEFAULT_ALIGNMENT = 64
DEFAULT_COMMIT_STEP = 2 << 20
# numpy_allocator(): memory NumPy freed and did not reuse for this long goes back to the OS.
# A steady loop reuses its temporaries within one step, so it is never purged; one that
# pauses between steps (plotting, I/O) faults its temporaries in again after a pause longer
# than this (a 0.3 s pause with a 0.25 s delay measured 4x the page faults of plain NumPy),
# so a second. Blocks of 256 MiB and more go back at once whatever the delay.
DEFAULT_PURGE_DELAY = 1.0
# numpy_allocator(): smaller requests go to NumPy's own allocator (its bucket cache serves
# sizes below 1 KiB faster than any heap can, and module-level arrays do not pin the arena).
DEFAULT_SMALL_THRESHOLD = 1024


def _index(value, what: str) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{what} must be an integer, not bool")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{what} must be an integer, not {type(value).__name__}") from None


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _check_flag_combination(flags: Flags, page_size: int | None) -> None:
    if Flags.HUGE_PAGES in flags and Flags.TRANSPARENT_HUGE_PAGES in flags:
        raise ValueError("HUGE_PAGES (hugetlb) and TRANSPARENT_HUGE_PAGES exclude each other")
    if page_size is not None and Flags.TRANSPARENT_HUGE_PAGES in flags:
        raise ValueError("with_page_size (hugetlb) and TRANSPARENT_HUGE_PAGES exclude each other")
    if Flags.SEQUENTIAL in flags and Flags.RANDOM_ACCESS in flags:
        raise ValueError("SEQUENTIAL and RANDOM_ACCESS exclude each other")
    if Flags.HUGE_PAGES in flags and page_size is None and _system.default_huge_page_size() is None:
        raise ValueError("HUGE_PAGES: this kernel offers no hugetlb pages")


class ArenaOptions:
    """Immutable builder for an :class:`Arena`: every ``with_*`` returns a new one.

    Parameters
    ----------
    size : int
        Bytes of address space to reserve (> 0), rounded up to the page size in use.
        Reserving costs no memory: pages are committed as the arena fills.

    Examples
    --------
    >>> import numpy as np
    >>> from arena import ArenaOptions, Flags
    >>> opts = ArenaOptions(1 << 30).with_flags(Flags.TRANSPARENT_HUGE_PAGES)
    >>> opts.size, bool(opts.flags & Flags.TRANSPARENT_HUGE_PAGES)
    (1073741824, True)
    >>> with opts.reserve() as a:
    ...     x = a.zeros(1000, np.float32)
    ...     print(float(x.sum()))
    ...     del x  # close() refuses while arrays from the arena are alive
    0.0
    """

    __slots__ = ("_size", "_flags", "_unsafe_flags", "_page_size", "_commit_step",
                 "_alignment", "_address", "_file", "_offset", "_purge_delay",
                 "_small_threshold")
    _size: int
    _flags: Flags
    _unsafe_flags: UnsafeFlags
    _page_size: int | None
    _commit_step: int
    _alignment: int
    _address: int | None
    _file: object
    _offset: int
    _purge_delay: float | None
    _small_threshold: int

    def __init__(self, size: int):
        size = _index(size, "size")
        if size <= 0:
            raise ValueError(f"size must be positive, got {size}")
        if size > MAX_SIZE:
            raise ValueError(f"size {size} is larger than any address space ({MAX_SIZE})")
        _set = object.__setattr__
        _set(self, "_size", size)
        _set(self, "_flags", Flags(0))
        _set(self, "_unsafe_flags", UnsafeFlags(0))
        _set(self, "_page_size", None)
        _set(self, "_commit_step", DEFAULT_COMMIT_STEP)
        _set(self, "_alignment", DEFAULT_ALIGNMENT)
        _set(self, "_address", None)
        _set(self, "_file", None)
        _set(self, "_offset", 0)
        _set(self, "_purge_delay", DEFAULT_PURGE_DELAY)
        _set(self, "_small_threshold", DEFAULT_SMALL_THRESHOLD)

    def _replace(self, **changes) -> ArenaOptions:
        new = object.__new__(ArenaOptions)
        for name in self.__slots__:  # (getattr only for what does not change)
            object.__setattr__(new, name, changes[name] if name in changes else
                               getattr(self, name))
        return new

    def __setattr__(self, name, value):
        raise AttributeError("ArenaOptions is immutable; use the with_* methods")

    def __delattr__(self, name):
        raise AttributeError("ArenaOptions is immutable; use the with_* methods")

    def __reduce__(self):
        # Options travel by value to other processes (a Dask worker plugin, a process pool's
        # initargs); a file object or descriptor means nothing there, a path does.
        if self._file is not None and not isinstance(self._file, (str, bytes, os.PathLike)):
            raise TypeError("ArenaOptions backed by a file object or descriptor cannot be "
                            "pickled; give with_file() the path instead")
        return (_options_from_state, (tuple((n, getattr(self, n)) for n in self.__slots__),))

    def _key(self):
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other):
        if not isinstance(other, ArenaOptions):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self):
        return hash(tuple(k if not hasattr(k, "fileno") else id(k) for k in self._key()))

    def __repr__(self):
        parts = [f"size={self._size}"]
        if self._flags:
            parts.append(f"flags={self._flags!r}")
        if self._unsafe_flags:
            parts.append(f"unsafe_flags={self._unsafe_flags!r}")
        if self._page_size is not None:
            parts.append(f"page_size={self._page_size}")
        parts.append(f"commit_step={self.commit_step}")
        parts.append(f"alignment={self._alignment}")
        if self._address is not None:
            parts.append(f"address={self._address:#x}")
        if self._file is not None:
            parts.append(f"file={self._file!r}, offset={self._offset}")
        if self._purge_delay != DEFAULT_PURGE_DELAY:
            parts.append(f"purge_delay={self._purge_delay}")
        if self._small_threshold != DEFAULT_SMALL_THRESHOLD:
            parts.append(f"small_threshold={self._small_threshold}")
        return f"ArenaOptions({', '.join(parts)})"

    # -- builder --------------------------------------------------------------------------

    def with_address(self, address: int | None) -> ArenaOptions:
        """Place the arena at ``address`` (a hint; binding only with ``UnsafeFlags.MAP_FIXED``).

        The address must be a multiple of the allocation granularity; None removes it.

        Examples
        --------
        >>> from arena import ArenaOptions
        >>> ArenaOptions(1 << 20).with_address(0x7e0000000000).address == 0x7e0000000000
        True
        >>> ArenaOptions(1 << 20).with_address(4097)
        Traceback (most recent call last):
            ...
        ValueError: address 0x1001 is not a multiple of the allocation granularity 4096
        """
        if address is not None:
            address = _index(address, "address")
            if address <= 0 or address >= MAX_SIZE:
                raise ValueError(f"address {address:#x} is outside the user address space")
            if address % _system.allocation_granularity():
                raise ValueError(f"address {address:#x} is not a multiple of the allocation "
                                 f"granularity {_system.allocation_granularity()}")
        return self._replace(_address=address)

    def with_file(self, file, offset: int = 0) -> ArenaOptions:
        """Back the arena by a file: a path, an open binary file object or a file descriptor.

        ``offset`` (bytes into the file) must be a multiple of the page size. Existing
        contents are kept and count as used. With ``Flags.SHARED`` writes reach the file,
        which grows as the arena commits and is cut back to what was used at ``flush()``
        and ``close()``; without it the file is mapped copy-on-write and never changed. An
        arena opened for writing holds the file: a second writer gets an OSError naming it
        (``map()`` is always allowed), and a file object or fd must be open read/write.

        Examples
        --------
        >>> import os, tempfile
        >>> from arena import ArenaOptions, Flags
        >>> path = os.path.join(tempfile.mkdtemp(), "a.bin")
        >>> a = ArenaOptions(1 << 20).with_file(path).with_flags(Flags.SHARED).reserve()
        >>> x = a.full(3, 7, dtype="u1")
        >>> a.flush()
        >>> with open(path, "rb") as f:
        ...     f.read(3)
        b'\\x07\\x07\\x07'
        """
        offset = _index(offset, "offset")
        if offset < 0 or offset >= MAX_SIZE:
            raise ValueError(f"offset must be in [0, 2**62), got {offset}")
        if offset % _system.page_size():
            raise ValueError(f"offset {offset} is not a multiple of the page size "
                             f"{_system.page_size()}")
        if isinstance(file, bool):
            raise TypeError("file must be a path, a binary file object or a file descriptor")
        if isinstance(file, int):
            if file < 0:
                raise ValueError(f"file descriptor must be >= 0, got {file}")
        elif isinstance(file, (str, bytes, os.PathLike)):
            if not os.fspath(file):
                raise ValueError("file path is empty")
        elif hasattr(file, "fileno"):
            if isinstance(file, io.TextIOBase):
                raise TypeError("file object must be opened in binary mode")
        else:
            raise TypeError("file must be a path, a binary file object or a file descriptor, "
                            f"not {type(file).__name__}")
        return self._replace(_file=file, _offset=offset)

    def with_flags(self, flags: Flags) -> ArenaOptions:
        """OR ``flags`` (:class:`Flags`) into the current flags.

        Flags that exclude each other (``HUGE_PAGES`` with ``TRANSPARENT_HUGE_PAGES``,
        ``SEQUENTIAL`` with ``RANDOM_ACCESS``) raise ValueError here.

        Examples
        --------
        >>> from arena import ArenaOptions, Flags
        >>> o = ArenaOptions(1 << 20).with_flags(Flags.POPULATE).with_flags(Flags.NO_CORE_DUMP)
        >>> o.flags == Flags.POPULATE | Flags.NO_CORE_DUMP
        True
        """
        flags = self._flags | _as_flag(flags, Flags, "flags")
        _check_flag_combination(flags, self._page_size)
        return self._replace(_flags=flags)

    def with_unsafe_flags(self, flags: UnsafeFlags) -> ArenaOptions:
        """OR ``flags`` (:class:`UnsafeFlags`) into the current unsafe flags.

        Examples
        --------
        >>> from arena import ArenaOptions, UnsafeFlags
        >>> ArenaOptions(1 << 20).with_unsafe_flags(UnsafeFlags.JIT).unsafe_flags.name
        'JIT'
        """
        return self._replace(_unsafe_flags=self._unsafe_flags | _as_flag(flags, UnsafeFlags,
                                                                         "unsafe flags"))

    def with_page_size(self, size: int) -> ArenaOptions:
        """Back the arena with explicit (hugetlb) pages of ``size`` bytes.

        ``size`` is a :class:`PageSize` or an int; a size the kernel does not offer raises
        ValueError naming the sizes it does. The base page size means no hugetlb pages.
        Committing hugetlb memory when the pool is empty raises MemoryError, never SIGBUS.

        Examples
        --------
        >>> import arena
        >>> from arena import ArenaOptions, PageSize
        >>> o = ArenaOptions(5 << 20).with_page_size(PageSize.SIZE_2M)
        >>> o.page_size, o.size    # the size is rounded to whole huge pages
        (2097152, 6291456)
        """
        size = _index(size, "page size")
        offered = _system.page_sizes()
        if size not in offered:
            names = ", ".join(_size_name(s) for s in offered)
            raise ValueError(f"page size {size} is not offered by this kernel; it offers {names}")
        page = None if size == _system.page_size() else size
        _check_flag_combination(self._flags, page)
        return self._replace(_page_size=page)

    def with_commit_step(self, nbytes: int) -> ArenaOptions:
        """Commit memory in steps of ``nbytes`` (rounded up to the page size in use).

        Examples
        --------
        >>> from arena import ArenaOptions
        >>> ArenaOptions(1 << 30).with_commit_step(10000).commit_step
        12288
        """
        nbytes = _index(nbytes, "commit step")
        if nbytes <= 0 or nbytes > MAX_SIZE:
            raise ValueError(f"commit step must be in (0, 2**62], got {nbytes}")
        return self._replace(_commit_step=nbytes)

    def with_alignment(self, nbytes: int) -> ArenaOptions:
        """Default alignment of sub-allocations: a power of two up to the page size.

        Examples
        --------
        >>> from arena import ArenaOptions
        >>> a = ArenaOptions(1 << 20).with_alignment(256).reserve()
        >>> x = a.alloc(1); y = a.alloc(1)
        >>> a.offset_of(y)
        256
        """
        nbytes = _index(nbytes, "alignment")
        if nbytes <= 0 or nbytes & (nbytes - 1):
            raise ValueError(f"alignment must be a power of two, got {nbytes}")
        if nbytes > _system.page_size():
            raise ValueError(f"alignment {nbytes} is larger than the page size "
                             f"{_system.page_size()}")
        return self._replace(_alignment=nbytes)

    def with_purge_delay(self, seconds: float | None) -> ArenaOptions:
        """Inside ``numpy_allocator()``, give memory NumPy freed back to the OS once it has
        stayed unused for ``seconds`` (default 1); None never does (``purge()`` still
        does, on demand).

        Purging is lazy: it happens in the allocator's own calls, so a steady loop that
        reuses its temporaries every step is never purged and faulted in again. A freed
        block of 256 MiB or more goes back at once (unless the delay is None), as glibc and
        jemalloc do with very large blocks.

        Examples
        --------
        >>> from arena import ArenaOptions
        >>> ArenaOptions(1 << 30).with_purge_delay(2).purge_delay
        2.0
        >>> ArenaOptions(1 << 30).with_purge_delay(None).purge_delay is None
        True
        >>> ArenaOptions(1 << 30).with_purge_delay(-1)
        Traceback (most recent call last):
            ...
        ValueError: purge delay must be a number of seconds >= 0 (or None), got -1
        """
        if seconds is not None:
            if isinstance(seconds, bool) or not isinstance(seconds, numbers.Real):
                raise TypeError("purge delay must be a number of seconds or None, not "
                                f"{type(seconds).__name__}")
            if not 0 <= seconds <= 1e9:  # also refuses NaN
                raise ValueError(f"purge delay must be a number of seconds >= 0 (or None), "
                                 f"got {seconds}")
            seconds = float(seconds)
        return self._replace(_purge_delay=seconds)

    def with_small_threshold(self, nbytes: int) -> ArenaOptions:
        """Inside ``numpy_allocator()``, NumPy's requests below ``nbytes`` (default 1024) go
        to NumPy's own allocator instead of the arena; 0 sends every request to the arena.

        NumPy's allocator keeps a cache of small blocks that no heap beats, and small
        arrays that a module keeps for the life of the process then never pin the arena.

        Examples
        --------
        >>> from arena import ArenaOptions
        >>> ArenaOptions(1 << 30).with_small_threshold(0).small_threshold
        0
        """
        nbytes = _index(nbytes, "small threshold")
        if nbytes < 0 or nbytes > MAX_SIZE:
            raise ValueError(f"small threshold must be in [0, 2**62], got {nbytes}")
        return self._replace(_small_threshold=nbytes)

    # -- read back --------------------------------------------------------------------------

    @property
    def purge_delay(self) -> float | None:
        """Seconds before freed NumPy memory goes back to the OS (None: never on its own)."""
        return self._purge_delay

    @property
    def small_threshold(self) -> int:
        """NumPy requests below this many bytes go to NumPy's own allocator."""
        return self._small_threshold

    @property
    def size(self) -> int:
        """Bytes to reserve, rounded up to :attr:`page_size`."""
        return _round_up(self._size, self.page_size)

    @property
    def flags(self) -> Flags:
        """The :class:`Flags` set so far."""
        return self._flags

    @property
    def unsafe_flags(self) -> UnsafeFlags:
        """The :class:`UnsafeFlags` set so far."""
        return self._unsafe_flags

    @property
    def page_size(self) -> int:
        """The page size in use: the explicit huge size, the default huge size with
        ``Flags.HUGE_PAGES``, else the base page size."""
        if self._page_size is not None:
            return self._page_size
        if Flags.HUGE_PAGES in self._flags:
            return _system.default_huge_page_size() or _system.page_size()
        return _system.page_size()

    @property
    def huge_page_size(self) -> int | None:
        """The hugetlb page size if explicit huge pages are in use, else None."""
        page = self.page_size
        return page if page != _system.page_size() else None

    @property
    def commit_step(self) -> int:
        """Bytes committed at a time, rounded up to :attr:`page_size`."""
        return _round_up(self._commit_step, self.page_size)

    @property
    def alignment(self) -> int:
        """Default alignment of sub-allocations in bytes."""
        return self._alignment

    @property
    def address(self) -> int | None:
        """The placement address, or None."""
        return self._address

    @property
    def file(self):
        """The backing file as given to :meth:`with_file` (path, file object or fd), or None."""
        return self._file

    @property
    def offset(self) -> int:
        """Bytes into the backing file where the arena starts."""
        return self._offset

    # -- build -----------------------------------------------------------------------------

    def reserve(self):
        """Reserve the arena; committed pages are read/write. Same as :meth:`map_mut`.

        Examples
        --------
        >>> from arena import ArenaOptions
        >>> a = ArenaOptions(1 << 30).reserve()
        >>> a.reserved, a.committed, a.protection.name
        (1073741824, 0, 'READ_WRITE')
        """
        return _arena_class()(self, Protection.READ_WRITE)

    def map_mut(self):
        """Reserve the arena; committed pages are read/write.

        Examples
        --------
        >>> from arena import ArenaOptions
        >>> ArenaOptions(1 << 20).map_mut().protection.name
        'READ_WRITE'
        """
        return _arena_class()(self, Protection.READ_WRITE)

    def map(self):
        """Reserve the arena with committed pages read-only (for example a file viewed
        read-only: its arrays are read-only views). Allocations raise ValueError.

        Examples
        --------
        >>> from arena import ArenaOptions
        >>> ArenaOptions(1 << 20).map().protection.name
        'READ'
        """
        return _arena_class()(self, Protection.READ)

    def map_none(self):
        """Reserve the arena with committed pages inaccessible until a ``make_*`` call.

        Examples
        --------
        >>> from arena import ArenaOptions
        >>> a = ArenaOptions(1 << 20).map_none()
        >>> a.make_mut(); a.zeros(2)
        array([0., 0.])
        """
        return _arena_class()(self, Protection.NONE)

    def map_exec(self):
        """Reserve the arena with committed pages read/execute.

        Examples
        --------
        >>> from arena import ArenaOptions
        >>> ArenaOptions(1 << 20).map_exec().protection.name
        'READ_EXECUTE'
        """
        return _arena_class()(self, Protection.READ_EXECUTE)

    def map_exec_mut(self):
        """Reserve the arena read/write/execute; PermissionError unless ``UnsafeFlags.JIT``.

        Examples
        --------
        >>> from arena import ArenaOptions
        >>> ArenaOptions(1 << 20).map_exec_mut()
        Traceback (most recent call last):
            ...
        PermissionError: writable and executable pages need UnsafeFlags.JIT (W^X)
        """
        return _arena_class()(self, Protection.READ_WRITE_EXECUTE)

    def growable(self, dtype=float, item_shape=()):
        """A :class:`Growable` on an arena made from these options: the reservation size,
        huge pages, populate, and a file (with ``Flags.SHARED``) that stays a valid ``.npy``
        of the items at every ``flush()`` and ``close()``. Reopening a ``.npy`` of the same
        dtype and item shape appends after its items; another one raises ValueError.

        Examples
        --------
        >>> import os, tempfile, numpy as np
        >>> from arena import ArenaOptions, Flags
        >>> path = os.path.join(tempfile.mkdtemp(), "log.npy")
        >>> opts = ArenaOptions(1 << 30).with_file(path).with_flags(Flags.SHARED)
        >>> with opts.growable(np.float32, item_shape=2) as g:
        ...     g.extend([[1, 2], [3, 4]])
        >>> with opts.growable(np.float32, item_shape=2) as g:   # appends
        ...     g.append([5, 6])
        >>> np.load(path)
        array([[1., 2.],
               [3., 4.],
               [5., 6.]], dtype=float32)
        """
        from ._core import _growable_from_options
        return _growable_from_options(self, dtype, item_shape)

    # -- mmap-rs's reservation names (MmapOptions::reserve_*) --------------------------------

    def reserve_mut(self):
        """The same as :meth:`reserve` (mmap-rs's name): committed pages read/write.

        Examples
        --------
        >>> from arena import ArenaOptions
        >>> ArenaOptions(1 << 20).reserve_mut().protection.name
        'READ_WRITE'
        """
        return self.reserve()

    def reserve_none(self):
        """The same as :meth:`map_none` (mmap-rs's name): committed pages inaccessible.

        Examples
        --------
        >>> from arena import ArenaOptions
        >>> ArenaOptions(1 << 20).reserve_none().protection.name
        'NONE'
        """
        return self.map_none()

    def reserve_exec(self):
        """The same as :meth:`map_exec` (mmap-rs's name): committed pages read/execute.

        Examples
        --------
        >>> from arena import ArenaOptions
        >>> ArenaOptions(1 << 20).reserve_exec().protection.name
        'READ_EXECUTE'
        """
        return self.map_exec()


def _arena_class():
    from ._core import Arena
    return Arena


def _as_flag(value, kind, what: str):
    if isinstance(value, kind):
        return value
    if isinstance(value, enum.Enum) or isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be {kind.__name__}, not {type(value).__name__}")
    everything = 0
    for member in kind:
        everything |= member.value
    if value < 0 or value & ~everything:
        raise ValueError(f"{value:#x} holds bits that are not {kind.__name__}")
    return kind(value)


def _size_name(size: int) -> str:
    for unit, shift in (("G", 30), ("M", 20), ("K", 10)):
        if size >= 1 << shift and size % (1 << shift) == 0:
            return f"{size >> shift}{unit} ({size})"
    return str(size)


def _options_from_state(state) -> ArenaOptions:
    """Unpickle an :class:`ArenaOptions` from its ``(slot, value)`` pairs."""
    new = object.__new__(ArenaOptions)
    for name, value in state:
        object.__setattr__(new, name, value)
    return new
