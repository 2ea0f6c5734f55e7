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


def os_error(err: int, what: str) -> Exception:
    """The exception for errno ``err`` from ``what``: a CommitError (a MemoryError) when the
    OS refused memory, else the OSError subclass Python picks for that errno."""
    if err in (_errno.ENOMEM, _errno.EAGAIN):
        return CommitError(err, f"{what}: {os.strerror(err)}")
    return OSError(err, f"{what}: {os.strerror(err)}")
