# Shared arenas through multiprocessing: what multiprocessing's ForkingPickler sends for a
# shared arena and for its arrays is descriptors and offsets, never the bytes.
#
# - The arena travels with multiprocessing.reduction.DupFd (as multiprocessing.heap.Arena
#   does): inherited at spawn/forkserver start, passed over a Unix socket (SCM_RIGHTS)
#   otherwise. Plain pickle refuses it (Arena.__reduce__).
# - An array whose base is a _Lease (every array a shared arena hands out, and every slice
#   or view NumPy makes of one) travels as (arena, offset, shape, strides, dtype); a
#   reducer for exact ndarrays is registered with ForkingPickler when this process first
#   makes or maps a shared arena, and sends every other ndarray as NumPy would. The
#   receiver uses the arena if it maps it already; otherwise it opens the descriptors of a
#   process that holds it through /proc/PID/fd (no socket, nothing to clean up when the
#   message is never read).
# - A fork child gets a slot of its own for the views it inherited.
# Included by _core.pyx after _shared.pxi.

import pickle
import weakref
from _thread import get_ident

_registry = {}                  # arena id -> weakref to the newest _Shared of it here
_everyone = weakref.WeakSet()   # every _Shared of this process
_reducers = {"registered": False, "ndarray": None}


def _forget(ref, bytes ident):
    if _registry.get(ident) is ref:
        del _registry[ident]


cdef int _track(_Shared sh) except -1:
    _registry[sh.id] = weakref.ref(sh, lambda ref, ident=sh.id: _forget(ref, ident))
    _everyone.add(sh)
    if not _reducers["registered"]:
        from multiprocessing.reduction import ForkingPickler
        _reducers["ndarray"] = ForkingPickler._extra_reducers.get(np.ndarray)
        ForkingPickler.register(Arena, _reduce_arena)
        ForkingPickler.register(np.ndarray, _reduce_ndarray)
        _reducers["registered"] = True
    return 0


cdef int _untrack(_Shared sh) except -1:
    ref = _registry.get(sh.id)
    if ref is not None and ref() is sh:
        del _registry[sh.id]
    return 0


cdef _Shared _lookup(bytes ident):
    ref = _registry.get(ident)
    cdef _Shared sh = ref() if ref is not None else None
    if sh is None or sh.ctl == NULL:
        return None
    return sh


cdef object _open_arena(_Shared sh):
    if sh.arena == NULL or (<Arena><object>sh.arena).base == NULL:
        return None
    return <object>sh.arena


# A fork child holds the views it inherits, in a slot of its own that its after-fork handler
# claims. Until then this process holds them for it: from before the fork, a "fork hold" in
# its slot covers every view it has had since (seen by the other processes) and refuses its
# own reset and release (another thread may drop its copies while the forking one waits).
# The hold goes when the child writes to a pipe once it has published them, or when the
# pipe closes: the child died first, or there was none (a failed fork still runs the
# after-in-parent handlers). Each forking thread has its own pipe: threads may fork at once.
_forking = {}   # forking thread -> (pipe or None, the _Shared it holds)


cdef bint _holds_views(_Shared sh):
    return sh.ctl != NULL and (sh.nleases > 0 or (
        sh.arena != NULL and (<Arena>sh.arena).heap.live > 0))


cdef int _end_hold(list held) except -1:
    cdef _Shared sh
    for sh in held:
        sh.forks -= 1
        if sh.forks == 0:
            sh.fork_hold = 0
            _publish(sh)
    return 0


cdef int _close_pipe(pipe) except -1:
    if pipe is not None:
        os.close(pipe[0])
        os.close(pipe[1])
    return 0


def _before_fork():
    cdef _Shared sh
    stale = _forking.pop(get_ident(), None)
    if stale is not None:  # this thread's last fork never got to its after-fork handler
        _close_pipe(stale[0])
        _end_hold(stale[1])
    held = []
    for sh in list(_everyone):
        _shared_heap_forking(sh)
        if sh.ctl != NULL:  # even without views now: another thread may make one
            sh.forks += 1
            _publish(sh)
            held.append(sh)
    if held:
        try:
            pipe = os.pipe()
        except OSError:
            pipe = None  # the hold goes at once: the child publishes when it can
        _forking[get_ident()] = (pipe, held)


def _after_fork_in_parent():
    entry = _forking.pop(get_ident(), None)
    if entry is None:
        return
    pipe, held = entry
    if pipe is None:
        # No pipe could be made (no descriptor left): nothing tells when the child has taken
        # its views over, so this process keeps holding them for it, for good.
        _held_for_good.extend(held)
        return
    said = b""
    try:
        os.close(pipe[1])
        try:
            said = os.read(pipe[0], 1)
        finally:
            os.close(pipe[0])
    finally:
        if said == b"n":  # the child found no slot to hold its views in: hold them for it
            _held_for_good.extend(held)
        else:
            _end_hold(held)


_held_for_good = []


cdef void _bump_sequence(arena_ctl_t* c) noexcept nogil:
    # A free that read the word before our slot showed the views then fails its swap and
    # looks at the slots again (as _shared_register does for a view).
    cdef uint64_t w = arena_load(&c.word)
    arena_fetch_add(&c.regs, 1)
    while not arena_cas(&c.word, &w, (w & ARENA_OFF_MASK) | ((w + ARENA_SEQ_ONE) & SEQ_MASK)):
        pass


def _after_fork_in_child():
    global _obtaining
    cdef _Shared sh
    mine = _forking.pop(get_ident(), None)
    _obtaining = threading.RLock()  # a parent's thread may have held it: it is not here
    _held_for_good.clear()
    homeless = False
    try:
        for pipe, _ in _forking.values():  # other threads' forks: their children answer them
            _close_pipe(pipe)
        _forking.clear()
        for sh in list(_everyone):
            sh.slot = -1
            _shared_heap_forked(sh)
            sh.busy = 0  # it counted threads of the parent: none of them is here
            sh.forks = 0
            sh.fork_hold = 0
            if _holds_views(sh):
                try:
                    _claim(sh)
                except ArenaError:
                    homeless = True  # the parent holds its views for good instead
                    continue
                _publish(sh)
                _bump_sequence(sh.ctl)
    finally:
        if mine is not None and mine[0] is not None:
            r, w = mine[0]
            os.close(r)
            os.write(w, b"n" if homeless else b"x")
            os.close(w)


os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                    after_in_child=_after_fork_in_child)


# -- sending ---------------------------------------------------------------------------------

cdef object _source(_Shared sh, bint with_fds):
    """How a receiver finds the arena: its id, descriptors to inherit or to fetch (if
    asked), and processes whose /proc/PID/fd hold it."""
    from multiprocessing import context, reduction
    cdef int data_fd = sh.region.m.fd, ctl_fd = sh.ctl_fd
    cdef arena_slot_t* s
    cdef uint64_t i
    cdef int64_t pid, me = getpid()
    if sh.ctl == NULL:
        raise ValueError("the arena is closed")
    holders = [(me, data_fd, ctl_fd)]
    sh.busy += 1  # close() refuses meanwhile: a garbage collection here may run any code
    try:
        for i in range(arena_load(&sh.ctl.nslots)):
            s = &sh.ctl.slots[i]
            pid = <int64_t>arena_load(<uint64_t*>&s.pid)
            if pid > 0 and pid != me and len(holders) < 8:
                holders.append((pid, s.data_fd, s.ctl_fd))
    finally:
        sh.busy -= 1
    popen = context.get_spawning_popen()
    fds = None
    if popen is not None:
        # A process being started inherits each descriptor once (a second copy of one in
        # its list fails the start: "bad value(s) in fds_to_keep"): only the first reference
        # to the arena in what it is sent carries them, the later ones find it mapped.
        sent = popen.__dict__.setdefault("_arena_sent", set())
        if sh.id not in sent:
            sent.add(sh.id)
            fds = (popen.DupFd(popen.duplicate_for_child(data_fd)),
                   popen.DupFd(popen.duplicate_for_child(ctl_fd)))
    elif with_fds:
        fds = (reduction.DupFd(data_fd), reduction.DupFd(ctl_fd))
    return sh.id, fds, holders


def _reduce_arena(Arena a):
    if a.sh is None:
        raise TypeError("only a Flags.SHARED arena without a file goes to other processes; "
                        "this one is private to its process")
    _check_open(a)
    return _rebuild_arena, (_source(_sh(a), True),)


def _reduce_ndarray(x):
    """ForkingPickler's reducer for ndarrays: arrays over a shared arena as offsets, every
    other array as NumPy pickles it."""
    base = x.base
    while type(base) is np.ndarray:  # NumPy stops collapsing a view's base at the array
        base = base.base             # whose base is not an ndarray: here, the lease's
    if type(base) is _Lease:
        token = _token(<_Lease>base, <cnp.ndarray>x)
        if token is not None:
            return token
    previous = _reducers["ndarray"]
    if previous is not None:
        return previous(x)
    return x.__reduce_ex__(pickle.DEFAULT_PROTOCOL)


cdef object _token(_Lease l, cnp.ndarray x):
    cdef _Shared sh = l.sh
    cdef Mapping* m = &sh.region.m
    cdef Py_ssize_t off
    cdef uint64_t gen
    if sh.ctl == NULL or m.base == NULL:
        return None
    off = <char*>cnp.PyArray_DATA(x) - m.base
    if off < 0 or <size_t>off > m.reserved:
        return None
    gen = arena_load(&sh.ctl.gen)  # before any Python code: an earlier count only errs safe
    y = <object>x
    return _rebuild_array, (_source(sh, False), off, y.shape, y.strides, y.dtype,
                            bool(y.flags.writeable), gen)


# -- receiving -------------------------------------------------------------------------------

def _rebuild_arena(source):
    return _obtain(source, True)[0]


def _rebuild_array(source, Py_ssize_t offset, shape, strides, dtype, bint writeable,
                   uint64_t gen):
    arena, sh = _obtain(source, False)  # ``arena`` stays alive until the lease is made
    return _receive(sh, offset, shape, strides, dtype, writeable, gen)


def _obtain(source, bint want_arena):
    """(Arena or None, _Shared) for ``source``: the mapping this process has, else a new one
    from the descriptors sent along or from a holder's /proc/PID/fd. One thread at a time:
    two receiving at once would each map the arena (a lock of this process only)."""
    with _obtaining:
        return _obtain_locked(source, want_arena)


_obtaining = threading.RLock()


def _obtain_locked(source, bint want_arena):
    ident, fds, holders = source
    got = []
    if fds is not None:
        for f in fds:
            try:
                got.append(f.detach())  # always: the sender keeps a duplicate until then
            except (OSError, EOFError):
                break
    sh = _lookup(ident)
    if sh is not None:
        for fd in got:
            os.close(fd)
        arena = _open_arena(sh)
        if arena is None and want_arena:  # mapped for arrays received before: one mapping
            if sh.ctl == NULL:
                raise ValueError("the shared arena was closed in this process")
            arena = Arena(_AttachOptions(_ctl_options(sh.ctl), -1, -1, sh))
        return arena, sh
    if len(got) != 2:
        for fd in got:
            os.close(fd)
        got = _open_from_proc(ident, holders)
    arena = _attach(got[0], got[1], ident)
    sh = _sh(<Arena>arena)
    if not want_arena:  # mapped for arrays only: they count in the orphan frame, which an
        sh.arena = NULL  # Arena opened here later takes over (the mapping stays one)
    return arena, sh


def _open_from_proc(bytes ident, holders):
    for pid, data_fd, ctl_fd in holders:
        fds = []
        try:
            for fd in (data_fd, ctl_fd):
                fds.append(os.open(f"/proc/{pid}/fd/{fd}",
                                   os.O_RDWR | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK))
            _ctl_check(fds[1], ident)
            return fds
        except (OSError, ValueError):
            for fd in fds:
                os.close(fd)
    raise ArenaError("cannot map the shared arena in this process: no process that holds "
                     "it lets its descriptors be opened through /proc/PID/fd; send the arena "
                     "itself here first (for example in a pool's initargs)")


def _attach(int data_fd, int ctl_fd, bytes ident):
    """An Arena over the shared arena whose descriptors these are (taken over)."""
    opts = None
    try:
        opts = _AttachOptions(_ctl_check(ctl_fd, ident), data_fd, ctl_fd)
        return Arena(opts)
    finally:
        for fd in (opts._fds if opts is not None else (data_fd, ctl_fd)):
            if fd >= 0:
                os.close(fd)


cdef _Frame _shared_base_frame(Arena a):
    """The first mark level of a new Arena: in a shared arena mapped here for arrays received
    before, the frame they count in (so that reset and close see them)."""
    cdef _Shared sh = a.sh
    cdef _Frame f
    if sh is None or sh.orphan is None:
        return _Frame()
    f, sh.orphan = sh.orphan, None
    return f


cdef _Frame _receive_frame(_Shared sh, size_t last, bint writable):
    """The frame a received array counts in: the newest mark level of this process's
    Arena whose bytes it covers, or the orphan frame when no Arena is open here."""
    cdef Arena a
    cdef Py_ssize_t level
    arena = _open_arena(sh)
    if arena is None:
        if sh.orphan is None:
            sh.orphan = _Frame()
            sh.orphan.region = sh.region
        return sh.orphan
    a = <Arena>arena
    level = PyList_GET_SIZE(a.frames_rw) - 1
    while level > 0 and (<_Frame>a.frames_rw[level]).start > last:
        level -= 1
    return <_Frame>a.frames_rw[level] if writable else _readonly_frame(a, level)


cdef object _receive(_Shared sh, Py_ssize_t offset, shape, strides, dtype, bint writeable,
                     uint64_t gen):
    cdef cnp.npy_intp dims[64]
    cdef cnp.npy_intp steps[64]
    cdef Mapping* m = &sh.region.m
    cdef cnp.dtype descr = np.dtype(dtype)
    cdef int i, nd = len(shape)
    if descr.hasobject:
        raise TypeError(f"dtype {descr} holds Python objects, which cannot live in an arena")
    if nd > 64 or len(strides) != nd:
        raise ValueError("a shared array's shape and strides do not match")
    lo = hi = offset
    empty = False
    for i in range(nd):
        dims[i], steps[i] = shape[i], strides[i]
        if shape[i] < 0:
            raise ValueError("negative dimensions are not allowed")
        empty = empty or shape[i] == 0
        if shape[i]:
            reach = (shape[i] - 1) * strides[i]
            lo, hi = (lo + reach, hi) if reach < 0 else (lo, hi + reach)
    hi = offset if empty else hi + descr.itemsize
    lo = offset if empty else lo
    if m.base == NULL:
        raise ValueError("the arena is closed in this process")
    if lo < 0 or hi > m.reserved:
        raise ValueError("a shared array reaches outside its arena")
    if not (m.prot & PROT_READ):
        raise ValueError("the arena is not readable in this process: no views until "
                         "make_read_only() or make_mut()")
    writeable = writeable and (m.prot & PROT_WRITE) != 0
    frame = _receive_frame(sh, hi - 1 if hi > lo else lo, writeable)
    lease = _shared_register(sh, m, frame, lo, hi, gen, True)
    return _wrap_strided(m.base + offset, nd, dims, steps, descr,
                         cnp.NPY_ARRAY_WRITEABLE if writeable else 0, lease)
