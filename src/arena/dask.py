"""Per-thread arenas for Dask: every worker thread allocates NumPy's arrays from its own arena.

Dask runs each task in a pool thread, where no ``numpy_allocator()`` block is active, so the
chunk-sized results and temporaries of every task come from NumPy's default allocator, which
maps, faults in and unmaps them again and again. :class:`ArenaExecutor` is a
:class:`concurrent.futures.ThreadPoolExecutor` whose every thread owns an arena and runs
each call inside that arena's :meth:`~arena.Arena.numpy_allocator`; :class:`ArenaPlugin`
installs one as the default executor of every ``distributed`` worker.

Needs the optional extra: ``pip install 'arena[dask]'`` (``import arena`` never imports Dask).

>>> import dask.array as da
>>> from arena.dask import ArenaExecutor
>>> x = da.ones((1000, 1000), chunks=250)
>>> with ArenaExecutor(max_workers=2) as pool:
...     total = float((x * 2).sum().compute(scheduler="threads", pool=pool))
...     used = [s["high_water"] > 0 for s in pool.stats()]
>>> total, any(used)
(2000000.0, True)
"""
from __future__ import annotations

import contextvars
import importlib.util
import os
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor


def _missing_extra() -> str | None:
    """The first of the extra's packages that is not installed, or None."""
    for name in ("dask", "distributed"):
        if importlib.util.find_spec(name) is None:
            return name
    return None


if _missing_extra() is not None:
    raise ImportError(f"arena.dask needs Dask and distributed ({_missing_extra()} is not "
                      "installed): pip install 'arena[dask]'", name=_missing_extra())

import distributed  # noqa: E402

from . import _system  # noqa: E402
from ._core import Arena  # noqa: E402
from ._options import ArenaOptions, Flags  # noqa: E402

__all__ = ["ArenaExecutor", "ArenaPlugin", "DEFAULT_PURGE_DELAY", "default_options"]

# A Dask thread frees a task's temporaries and reuses them in its next task, often more than
# the arena's own 0.25 s later, so they were purged and faulted in again between tasks: 8,200
# faults a computation of the bench's expression (8000^2) against 250 with 2 s and 15 never
# purging. Two seconds outlast a task (Dask advises 100 ms and more); an idle thread's arena
# gives its memory back that long after its last task (see ArenaExecutor).
DEFAULT_PURGE_DELAY = 2.0


def default_options() -> ArenaOptions:
    """The options each thread's arena gets when :class:`ArenaExecutor` is given none.

    - Reservation: this machine's physical memory rounded up to a power of two (at least
      1 GiB), per thread. Reserving costs no memory, and a thread's arena holds every
      result its tasks return until they are freed, which may be all a worker holds.
    - Transparent huge pages where the kernel offers them (THP mode ``always`` or
      ``madvise``): chunks are MiBs, and memory given back and touched again faults in
      2 MiB at a time.
    - Purge delay :data:`DEFAULT_PURGE_DELAY` (2 s) instead of the arena's 0.25 s.

    Examples
    --------
    >>> from arena.dask import default_options
    >>> opts = default_options()
    >>> opts.purge_delay, opts.size >= 1 << 30
    (2.0, True)
    """
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    size = 1 << max(30, (physical - 1).bit_length())
    opts = ArenaOptions(size).with_purge_delay(DEFAULT_PURGE_DELAY)
    if _system.thp_mode() in ("always", "madvise"):
        opts = opts.with_flags(Flags.TRANSPARENT_HUGE_PAGES)
    return opts


def _check_options(options) -> ArenaOptions:
    if options is None:
        return default_options()
    if not isinstance(options, ArenaOptions):
        raise TypeError(f"options must be an ArenaOptions or None, not {type(options).__name__}")
    if options.file is not None:
        raise ValueError("every thread reserves its own arena from the options; a file can "
                         "back only one of them (use options without with_file)")
    return options


def _entered_context(fn) -> contextvars.Context | None:
    """The :class:`contextvars.Context` that ``fn`` runs its work in, when it shows one.

    NumPy's allocator is a context variable, so a call that enters another context (a copy
    made by the submitter) would not see the handler set in the thread's own context. Two
    shapes are known: a bound ``Context.run`` (dask's ``ContextAwareThreadPoolExecutor``)
    and a function closing over exactly one context (distributed's
    ``run_in_executor_with_context``, which every task on a worker goes through).
    """
    owner = getattr(fn, "__self__", None)
    if isinstance(owner, contextvars.Context):
        return owner
    found = []
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        if isinstance(value, contextvars.Context):
            found.append(value)
    return found[0] if len(found) == 1 else None


class _ThreadArena:
    """A pool thread's arena and what the idle purge needs to know about it."""

    __slots__ = ("arena", "busy", "last_done")

    def __init__(self, arena: Arena):
        self.arena = arena
        self.busy = False
        self.last_done = 0.0


class _IdlePurge:
    """Gives back the free memory of thread arenas idle for the purge delay, from a thread.

    The heap purges lazily, from NumPy's own calls, which stop when a thread waits for work:
    what its last call freed would stay resident for as long as it waits. The thread holds
    this object, never the executor, so an executor dropped without ``shutdown()`` is still
    collected (and stops it)."""

    def __init__(self, delay: float, name: str):
        self.delay, self.name = delay, name
        self.cond = threading.Condition()
        self.idle: set[_ThreadArena] = set()  # finished a call since their last purge
        self.stopping = False
        self.thread: threading.Thread | None = None

    def went_idle(self, record: _ThreadArena) -> None:
        with self.cond:
            if self.stopping:
                return
            self.idle.add(record)
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, daemon=True, name=self.name)
                self.thread.start()
            self.cond.notify()

    def stop(self) -> None:
        with self.cond:
            self.stopping = True
            self.idle.clear()
            self.cond.notify_all()

    def _run(self) -> None:
        while True:
            with self.cond:
                due: list[_ThreadArena] = []
                while not due:
                    if self.stopping:
                        return
                    now = time.monotonic()
                    for r in list(self.idle):
                        if r.busy:  # back at work: its next call ends with went_idle
                            self.idle.discard(r)
                        elif now - r.last_done >= self.delay:
                            self.idle.discard(r)
                            due.append(r)
                    if not due:
                        self.cond.wait(min((r.last_done + self.delay - now for r in self.idle),
                                           default=None))
            for r in due:
                if not r.busy and not r.arena.closed:
                    r.arena.purge()


class _NamedThreadPool(type):
    # distributed runs a task through its context-propagating path (the worker's thread
    # state, get_worker(), task metrics) only for an executor whose type's string contains
    # "ThreadPoolExecutor"; any other executor gets a bare call with no worker context.
    def __repr__(cls):
        return f"<class '{cls.__module__}.{cls.__qualname__}' (a ThreadPoolExecutor)>"


class ArenaExecutor(ThreadPoolExecutor, metaclass=_NamedThreadPool):
    """ArenaExecutor(max_workers=None, options=None, **thread_pool_keywords)

    A :class:`~concurrent.futures.ThreadPoolExecutor` whose every thread owns an arena and
    runs each submitted call inside that arena's ``numpy_allocator()``.

    Parameters
    ----------
    max_workers : int, optional
        Threads, as for ``ThreadPoolExecutor`` (default ``min(32, os.cpu_count() + 4)``).
    options : ArenaOptions, optional
        Each thread reserves its arena from these (at its first call); default
        :func:`default_options`. Options backed by a file are refused (ValueError).

    Notes
    -----
    Arrays a call returns live in its thread's arena and may be freed later by any thread,
    or kept as long as the caller likes: each keeps its arena mapped. A thread whose last
    call ended ``options.purge_delay`` seconds ago gives its arena's free memory back to the
    OS (``Arena.purge()``), so the process's RSS reflects what is live when the pool is idle.
    ``shutdown(wait=True)`` (or leaving ``with``) closes the arenas that hold no array; an
    arena with live arrays is left to them and unmapped when the last one goes.

    Examples
    --------
    >>> import numpy as np
    >>> from arena.dask import ArenaExecutor
    >>> with ArenaExecutor(max_workers=2) as pool:
    ...     y = pool.submit(np.arange, 1000.0).result()
    ...     (s,) = [s for s in pool.stats() if s["live_views"]]
    >>> float(y.sum()), s["live_views"]
    (499500.0, 1)
    >>> del y                                   # the arena goes with its last array
    """

    def __init__(self, max_workers: int | None = None, options: ArenaOptions | None = None,
                 *, thread_name_prefix: str = "", initializer=None, initargs=()):
        self.options = _check_options(options)
        super().__init__(max_workers, thread_name_prefix or "ArenaExecutor",
                         initializer, initargs)
        self._local = threading.local()
        self._records: list[_ThreadArena] = []
        self._final: list[dict] | None = None  # stats as they were at shutdown
        self._lock = threading.Lock()
        delay = self.options.purge_delay
        self._purge = None if delay is None else _IdlePurge(
            delay, f"{self._thread_name_prefix}-purge")
        if self._purge is not None:
            weakref.finalize(self, self._purge.stop)

    # -- running calls ----------------------------------------------------------------------

    def submit(self, fn, /, *args, **kwargs):
        return super().submit(self._call, fn, args, kwargs)

    submit.__doc__ = ThreadPoolExecutor.submit.__doc__

    def _thread_arena(self) -> _ThreadArena:
        record = getattr(self._local, "record", None)
        if record is None:
            record = _ThreadArena(self.options.reserve())
            self._local.record = record
            with self._lock:
                self._records.append(record)
        return record

    def _call(self, fn, args, kwargs):
        record = self._thread_arena()
        record.busy = True
        try:
            block = record.arena.numpy_allocator()
            ctx = _entered_context(fn)
            if ctx is not None:
                try:
                    ctx.run(block.__enter__)
                except RuntimeError:  # entered elsewhere: fn cannot run in it either
                    ctx = None
            if ctx is None:
                with block:
                    return fn(*args, **kwargs)
            try:
                return fn(*args, **kwargs)
            finally:
                ctx.run(block.__exit__, None, None, None)
        finally:
            record.busy = False
            record.last_done = time.monotonic()
            if self._purge is not None:
                self._purge.went_idle(record)

    # -- introspection and shutdown ---------------------------------------------------------

    def stats(self) -> list[dict]:
        """One :meth:`Arena.stats` dict per thread arena, in the order the threads made them.

        Threads reserve their arena at their first call, so a fresh pool has none. After
        ``shutdown(wait=True)``, the numbers as they were at shutdown.

        Examples
        --------
        >>> from arena.dask import ArenaExecutor
        >>> pool = ArenaExecutor(max_workers=1)
        >>> pool.stats()
        []
        >>> pool.submit(sum, [1, 2]).result()
        3
        >>> [s["live_views"] for s in pool.stats()]
        [0]
        >>> pool.shutdown()
        """
        with self._lock:
            if self._final is not None:
                return [dict(s) for s in self._final]
            records = list(self._records)
        return [r.arena.stats() for r in records]

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop the threads, as ``ThreadPoolExecutor.shutdown``; with ``wait``, also close
        every arena that holds no array and give back the free memory of the others.

        Arenas holding arrays stay mapped for them (closing them would raise BufferError)
        and are unmapped when the last of those arrays is gone. ``wait=False`` leaves the
        arenas as they are, still running calls, until the executor is garbage collected.
        """
        if self._purge is not None:
            self._purge.stop()
        super().shutdown(wait=wait, cancel_futures=cancel_futures)
        if not wait:
            return
        if self._purge is not None and self._purge.thread is not None:
            self._purge.thread.join()
        with self._lock:
            if self._final is not None:
                return
            records, self._records = self._records, []
            final = []
            for r in records:
                a = r.arena
                a.purge()
                final.append(a.stats())
                if a.live_views == 0:
                    a.close()  # no array can appear: the threads are gone
            self._final = final


class ArenaPlugin(distributed.WorkerPlugin):
    """ArenaPlugin(options=None)

    A ``distributed`` worker plugin: on every worker, an :class:`ArenaExecutor` with the
    worker's thread count becomes the default executor; teardown restores the old one.

    Parameters
    ----------
    options : ArenaOptions, optional
        For each thread's arena, as in :class:`ArenaExecutor` (sent to the workers by value).

    Examples
    --------
    >>> from distributed import Client, LocalCluster
    >>> from arena.dask import ArenaPlugin
    >>> with LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
    ...                   dashboard_address="127.0.0.1:0") as cluster, \\
    ...         Client(cluster) as client:
    ...     _ = client.register_plugin(ArenaPlugin())   # {worker: {"status": "OK"}}
    ...     kind = client.run(lambda dask_worker: type(dask_worker.executor).__name__)
    >>> list(kind.values())
    ['ArenaExecutor']
    """

    name = "arena"  # registering another ArenaPlugin replaces this one (teardown, setup)
    idempotent = False

    def __init__(self, options: ArenaOptions | None = None):
        self.options = None if options is None else _check_options(options)
        self._installed: dict[int, tuple[object, ArenaExecutor]] = {}

    def __getstate__(self):
        return {"options": self.options}  # executors stay where they were installed

    def __setstate__(self, state):
        self.options = state["options"]
        self._installed = {}

    def setup(self, worker):
        previous = worker.executors.get("default")
        executor = ArenaExecutor(worker.state.nthreads, self.options,
                                 thread_name_prefix=f"{worker.name}-Dask-Arena-Threads")
        # One plugin object may serve several workers of one process (processes=False).
        self._installed[id(worker)] = (previous, executor)
        worker.executors["default"] = executor

    def teardown(self, worker):
        previous, executor = self._installed.pop(id(worker), (None, None))
        if executor is None:
            return
        if worker.executors.get("default") is executor:
            if previous is None:
                del worker.executors["default"]
            else:
                worker.executors["default"] = previous
        # Calls still running finish in their arenas; the event loop must not wait for them.
        executor.shutdown(wait=False)
