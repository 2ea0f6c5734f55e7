# Frames and liveness: the safety core. Every array the arena hands out has as its base a
# _Frame of the mark level it was allocated in, so a frame's reference count, less the
# arena's own reference, is the number of live views of that level. Included by _core.pyx.

import threading

from cpython.pyport cimport PY_SSIZE_T_MAX
from cpython.pythread cimport PyThread_get_thread_ident

from arena._pyapi cimport Py_REFCNT, PyList_GET_ITEM, PyList_GET_SIZE, PyList_SetSlice, PyObject


cdef class _Frame:
    """Base object of every array of one mark level (one for writable, one for read-only
    arrays): its reference count is the number of live views of that level."""
    cdef readonly _Region region
    cdef size_t start
    cdef Py_ssize_t nalloc_start
    cdef Py_ssize_t serial
    cdef unsigned long thread       # the thread that made the mark (0: the base level)
    cdef unsigned long long gen     # a shared arena's free count at the mark (_shared.pxi)

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
    cdef object owner
    cdef Py_ssize_t level
    cdef Py_ssize_t serial
    cdef size_t start

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
    """``with a.scope():``. Marks are one stack per arena, not per thread (see
    _check_thread): a scope is left in the thread that entered it."""
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
        except (BufferError, ValueError, RuntimeError):
            pass
        return False


cdef int _push_this_frame(Arena a, _Frame f, size_t start) except -1:
    """Push a frame made beforehand: nothing in here allocates a Python object, so no
    garbage collection (and no thread switch inside a finaliser) can come between a
    _check_thread and the push it allowed."""
    f.region = a.region
    f.start = start
    f.thread = PyThread_get_thread_ident() if PyList_GET_SIZE(a.frames_rw) else 0
    f.nalloc_start = a.nalloc
    f.serial = a.next_serial
    a.next_serial += 1
    a.frames_rw.append(f)
    a.frames_ro.append(None)
    a.level_start = start
    if a.sh is not None:
        _shared_frame(a, f)  # where frees by other processes since this level began are told
    return 0


cdef inline _Frame _top_frame(Arena a):
    return <_Frame><object>PyList_GET_ITEM(a.frames_rw, PyList_GET_SIZE(a.frames_rw) - 1)


cdef _Frame _readonly_frame(Arena a, Py_ssize_t level):
    cdef _Frame f
    if PyList_GET_ITEM(a.frames_ro, level) == <PyObject*>None:
        f = _Frame()  # a garbage collection here may run code that resets or closes the arena
        if level >= PyList_GET_SIZE(a.frames_ro):
            raise RuntimeError("the arena was reset or closed while a view of it was being made")
        if PyList_GET_ITEM(a.frames_ro, level) == <PyObject*>None:
            f.region = a.region
            f.start = (<_Frame>a.frames_rw[level]).start
            a.frames_ro[level] = f
    return <_Frame>a.frames_ro[level]


cdef int _make_readonly_frames(Arena a) except -1:
    """Every level's read-only frame, made before a caller's last checks (see above)."""
    cdef Py_ssize_t i = 0
    while i < PyList_GET_SIZE(a.frames_ro):
        _readonly_frame(a, i)
        i += 1
    return 0


cdef Py_ssize_t _views_since(Arena a, Py_ssize_t level, bint writable_only):
    """Live views allocated at mark level ``level`` or above (reads reference counts of
    borrowed pointers, so no temporary reference inflates them)."""
    cdef Py_ssize_t i, n = 0
    cdef PyObject* f
    for i in range(level, PyList_GET_SIZE(a.frames_rw)):
        n += Py_REFCNT(PyList_GET_ITEM(a.frames_rw, i)) - 1
        if not writable_only:
            f = PyList_GET_ITEM(a.frames_ro, i)
            if f != <PyObject*>None:
                n += Py_REFCNT(f) - 1
    if level < PyList_GET_SIZE(a.frames_rw):
        n += heap_live_above(&a.heap,
                             (<_Frame><object>PyList_GET_ITEM(a.frames_rw, level)).start)
    return n


cdef int _drop_levels_from(Arena a, Py_ssize_t level) except -1:
    """Forget mark levels ``level`` and up (their memory is free again)."""
    # (PyList_SetSlice: ``del lst[level:]`` would build a slice object on every reset)
    PyList_SetSlice(a.frames_rw, level, PY_SSIZE_T_MAX, NULL)
    PyList_SetSlice(a.frames_ro, level, PY_SSIZE_T_MAX, NULL)
    if level:
        a.level_start = (<_Frame>a.frames_rw[level - 1]).start
    return 0


cdef int _check_mark(Arena a, Mark mark) except -1:
    if mark.level >= PyList_GET_SIZE(a.frames_rw) or \
            (<_Frame><object>PyList_GET_ITEM(a.frames_rw, mark.level)).serial != mark.serial:
        raise ValueError("the mark was already released (or the arena was reset)")
    return 0


cdef int _check_thread(Arena a, Py_ssize_t level, str what) except -1:
    """Marks and scopes are one stack per arena: levels opened by two threads interleave,
    and neither could be released without the other's. So while a thread has a mark open,
    only that thread may mark, release or reset (other threads may still allocate: their
    arrays land in its level). Refuse anything else, naming the thread, rather than give
    BufferErrors and stale levels later. A mark whose thread has ended no longer holds.

    1 when it had to run Python code to tell (another thread may have run meanwhile, so the
    caller checks its state again), else 0. It holds no frame while Python code runs: that
    reference would count as a live view in the other thread's release."""
    cdef unsigned long me = PyThread_get_thread_ident(), other
    cdef Py_ssize_t i = max(level, 1)
    while i < PyList_GET_SIZE(a.frames_rw):
        other = (<_Frame><object>PyList_GET_ITEM(a.frames_rw, i)).thread
        i += 1
        if other == me or other == 0:
            continue
        owner = next((t for t in threading.enumerate() if t.ident == other), None)
        if owner is not None:
            raise RuntimeError(
                f"cannot {what}: thread {owner.name!r} has a mark or scope open on this "
                f"arena (level {i - 1}). Marks and scopes are one stack per arena, not per "
                "thread: give each thread its own arena, or leave the scope first")
        _forget_thread(a, other)  # its thread is gone: its levels are anyone's
        return 1
    return 0


cdef void _forget_thread(Arena a, unsigned long thread) noexcept:
    cdef Py_ssize_t i
    cdef _Frame f
    for i in range(PyList_GET_SIZE(a.frames_rw)):
        f = <_Frame><object>PyList_GET_ITEM(a.frames_rw, i)
        if f.thread == thread:
            f.thread = 0
