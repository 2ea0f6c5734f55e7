"""The arena's errors, and the one place where an errno becomes an exception.

The classes say ``arena`` as their module, which is where users import them from.
"""
from __future__ import annotations

import errno as _errno
import os


class ArenaError(Exception):
    """Base class of the arena's own errors.

    Examples
    --------
    >>> import arena
    >>> issubclass(arena.ArenaFullError, arena.ArenaError)
    True
    """

    __module__ = "arena"


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

    __module__ = "arena"


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

    __module__ = "arena"

    def __init__(self, errno: int, message: str):
        super().__init__(message)
        self.errno = errno


def os_error(err: int, what: str, nbytes: int | None = None,
             reserving: bool = False) -> Exception:
    """The exception for errno ``err`` from ``what``: a CommitError (a MemoryError) when the
    OS refused memory, else the OSError subclass Python picks for that errno. An ENOMEM
    for ``nbytes`` says which limit refused (ENOMEM alone cannot tell them apart).

    Examples
    --------
    >>> import errno
    >>> from arena._errors import os_error
    >>> type(os_error(errno.EBADF, "msync")).__name__
    'OSError'
    """
    if err in (_errno.ENOMEM, _errno.EAGAIN):
        why = _why_no_memory(nbytes, reserving) if err == _errno.ENOMEM else ""
        return CommitError(err, f"{what}: {os.strerror(err)}{why}")
    return OSError(err, f"{what}: {os.strerror(err)}")


def _why_no_memory(nbytes: int | None, reserving: bool) -> str:
    """Which limit an ENOMEM of a reservation (mmap) or a commit (mprotect) most likely hit:
    the process's map count against vm.max_map_count, RLIMIT_AS (address space, for a
    reservation) or RLIMIT_DATA (writable private memory, for a commit), else the commit
    charge. Read from /proc only here, on the way to an error; at the map-count limit even
    that may fail, and then the map count is the answer."""
    from . import _system
    try:
        limit = _system._read_int("/proc/sys/vm/max_map_count")
        count = _system.map_count()
        if limit is not None and count >= limit - 2:
            return (f" (the process has {count} memory mappings and vm.max_map_count is "
                    f"{limit})")
        status = _system.vm_status()
        for name, key, applies in (("RLIMIT_AS", "VmSize", True),
                                   ("RLIMIT_DATA", "VmData", not reserving)):
            cap = _system._limit(getattr(_system.resource, name))
            if applies and cap is not None and key in status and \
                    status[key] + (nbytes or 0) > cap:
                used = status[key]
                return (f" ({name} is {cap} bytes: {used} in use, {nbytes} more asked)")
        if reserving:
            return ""
        return (" (the commit charge: vm.overcommit_memory is "
                f"{_system._read_int('/proc/sys/vm/overcommit_memory')})")
    except Exception:  # noqa: BLE001 - at the map-count limit /proc itself cannot be read
        return " (most likely vm.max_map_count: /proc cannot even be read)"
