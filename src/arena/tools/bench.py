"""``python -m arena bench``: the headline comparisons, arena against its peer, in one process.

Seven cases, each with a target for the ratio arena time / peer time (``alloc_raw``: for the
time itself; ``growable``: for its rows, below), and the NEP 49 heap's cases in
:mod:`arena.tools.bench_heap`:

===============  ===============================================  =====================  ======
case             arena                                            peer                   target
===============  ===============================================  =====================  ======
empty            ``a.empty(8, np.float64)``, per call             ``np.empty``           0.5
calls            ``a.empty(8, d)`` cycling three dtypes; and      ``np.empty``;          1
                 ``a.array([1.0, 2.0, 3.0])``                     ``np.array``           (each)
step             three 8 MiB temporaries per step, ``reset()``    ``np.empty_like``      0.3
touch            commit and write 512 MiB on transparent huge     the same on 4 KiB      0.25
                 pages
reset            ``reset()`` after a million allocations          drop a million arrays  0.001
numpy_allocator  ``y = np.sqrt(x * 2.0 + y) - np.abs(y - x)`` on  the same expression,   0.5
                 8 MiB arrays inside ``a.numpy_allocator()``      NumPy's allocator
alloc_raw        ``alloc_raw(64, 16)`` from a module that         ``np.empty(8)``        2 ns
                 cimports ``arena._core``                         (information only)     (time)
growable         build 256 MiB from 64 KiB chunks with            list of chunks +       0.5
                 ``Growable.extend``: time, and peak RSS          ``np.concatenate``     0.55
===============  ===============================================  =====================  ======

``numpy_allocator`` has a row for a plain (4 KiB page) arena and one for a
``Flags.TRANSPARENT_HUGE_PAGES`` arena; the target sits on the row whose pages match what
NumPy's own allocator gets (see :func:`case_numpy_allocator`), and each row's note gives
the *compute floor*: the same ufuncs writing with ``out=`` into preallocated buffers, which
no allocator can beat. ``alloc_raw`` is skipped, with a note, when Cython or a C compiler
is missing; it also has a row for the inline ``nogil`` ``arena_bump``. ``growable``
(:mod:`arena.tools.bench_growable`) runs each build in a fresh process, for honest peak RSS,
and adds rows against a doubling buffer with ``np.resize`` and ``np.append`` per chunk
(target: faster, ratio < 1) and ``append`` of one float against ``list.append`` (<= 3).

Times are best-of-N (the minimum is the run least disturbed by the rest of the machine,
as :mod:`timeit` argues); arena and peer repeats alternate so that drift hits both. When
pyarrow or cymem is installed, ``empty`` gains rows against them too, without targets.
The full run takes about 20 s on two cores (3 s of it building the Cython module),
``growable`` 20 s more (its builds' processes); ``--quick`` about half of that. The
Dask cases (:mod:`.bench_dask`: ``dask``, ``dask_cluster``; skipped without Dask) add
about four minutes, ``--quick`` two.
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import resource
import shutil
import sys
import tempfile
import time
import timeit
from dataclasses import dataclass, field, replace

import numpy as np

from .. import Arena, ArenaOptions, Flags, _system, cython_example
# exact=True for sizes: they are plan sizes and whole huge pages, and a label reads
# "8 MiB", not "8.0 MiB".
from .._format import format_bytes, format_time
from .bench_report import environment, fmt_count, fmt_ratio, render

# numpy_allocator runs first: plain NumPy's time there depends on whether glibc still holds
# freed 8 MiB blocks, and the other cases' allocations change that. The NEP 49 heap's cases
# (bench_heap) come after it for the same reason; the shared arena's (bench_shared), which
# fork worker processes, come last.
CASES = ("numpy_allocator", "heap", "calloc", "purge", "fromiter", "empty", "calls", "step",
         "touch",
         "reset", "alloc_raw", "growable", "dask", "dask_cluster", "shared")

KiB, MiB = 1 << 10, 1 << 20


@dataclass(frozen=True)
class Plan:
    """How much work each case does: sizes, calls per repeat and repeats.

    ``full`` is what the targets are quoted for; ``quick`` keeps the sizes and cuts repeats;
    ``smoke`` shrinks the sizes too, so that a test can run every case in well under a second.
    """

    empty_number: int
    empty_repeat: int
    step_elements: int
    step_number: int
    step_repeat: int
    touch_bytes: int
    touch_repeat: int
    reset_allocations: int
    reset_repeat: int
    expr_elements: int
    expr_steps: int
    expr_repeat: int
    raw_count: int
    raw_repeat: int
    grow_bytes: int
    grow_chunk: int
    grow_append_bytes: int
    grow_repeat: int
    append_number: int
    append_repeat: int


FULL = Plan(empty_number=100_000, empty_repeat=7,
            step_elements=MiB, step_number=20, step_repeat=5,
            touch_bytes=512 * MiB, touch_repeat=9,
            reset_allocations=1_000_000, reset_repeat=5,
            expr_elements=MiB, expr_steps=20, expr_repeat=5,
            raw_count=10_000_000, raw_repeat=7,
            grow_bytes=256 * MiB, grow_chunk=64 * KiB, grow_append_bytes=16 * MiB,
            grow_repeat=5, append_number=1_000_000, append_repeat=7)
QUICK = replace(FULL, empty_number=50_000, empty_repeat=3, step_number=10, step_repeat=3,
                touch_repeat=2, reset_repeat=2, expr_steps=10, expr_repeat=3, raw_repeat=3,
                grow_repeat=3, append_repeat=3)  # the same sizes, fewer repeats
SMOKE = Plan(empty_number=2_000, empty_repeat=2,
             step_elements=16 * KiB, step_number=3, step_repeat=2,
             touch_bytes=8 * MiB, touch_repeat=1,
             reset_allocations=10_000, reset_repeat=2,
             expr_elements=16 * KiB, expr_steps=2, expr_repeat=2,
             raw_count=10_000, raw_repeat=2,
             grow_bytes=MiB, grow_chunk=64 * KiB, grow_append_bytes=256 * KiB,
             grow_repeat=1, append_number=10_000, append_repeat=2)


@dataclass
class Result:
    """One row of the table: the arena side, the peer side and how they compare.

    ``target`` bounds the ratio (``target_unit == "ratio"``) or, where no peer makes a fair
    ratio, the arena's figure itself (``"seconds"``, ``"bytes"``); ``met`` judges whichever it
    is. The figures are seconds, bytes where ``unit`` is ``"B"``, counts where ``"count"``. A
    skipped row (``skipped``) has no times; its note says why. ``extra`` holds further
    figures for ``--json`` (the note states them for the table).
    """

    case: str
    arena_label: str
    arena_seconds: float
    peer_label: str
    peer_seconds: float
    target: float | None
    repeats: int
    note: str = ""
    per: str = "call"
    target_unit: str = "ratio"
    unit: str = "s"
    skipped: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        return None if self.skipped else self.arena_seconds / self.peer_seconds

    @property
    def met(self) -> bool | None:
        if self.target is None or self.skipped:
            return None
        value = self.ratio if self.target_unit == "ratio" else self.arena_seconds
        return value is not None and value <= self.target

    def as_dict(self) -> dict:
        def seconds(s):
            return None if self.skipped else s
        return {
            "case": self.case,
            "arena": {"label": self.arena_label, "seconds": seconds(self.arena_seconds)},
            "peer": {"label": self.peer_label, "seconds": seconds(self.peer_seconds)},
            "per": self.per,
            "ratio": self.ratio,
            "target": self.target,
            "target_unit": self.target_unit,
            "unit": self.unit,
            "met": self.met,
            "skipped": self.skipped,
            "repeats": self.repeats,
            "note": self.note,
            "extra": self.extra,
        }


# -- timing ---------------------------------------------------------------------------------


class OneShot:
    """A ``timeit.Timer`` look-alike for work that must start from fresh state every time.

    ``setup()`` returns a state (untimed), ``run(state)`` is timed once with the garbage
    collector off, as timeit does, and ``teardown(state)`` cleans up (untimed).
    """

    def __init__(self, setup, run, teardown=None):
        self.setup, self.run, self.teardown = setup, run, teardown

    def timeit(self, number=1):
        total = 0.0
        for _ in range(number):
            state = self.setup()
            enabled = gc.isenabled()
            gc.disable()
            try:
                start = time.perf_counter()
                self.run(state)
                total += time.perf_counter() - start
            finally:
                if enabled:
                    gc.enable()
            if self.teardown is not None:
                self.teardown(state)
        return total


class SelfTimed:
    """A ``timeit.Timer`` look-alike for a compiled loop that times itself.

    ``run(number)`` makes ``number`` calls and returns the seconds per call it measured
    (the Cython consumer's ``time_*`` functions); ``setup()`` runs untimed before it.
    """

    def __init__(self, run, setup=None):
        self.run, self.setup = run, setup

    def timeit(self, number=1):
        if self.setup is not None:
            self.setup()
        return self.run(number) * number


def best_of(timers, repeat, number, progress):
    """Best time per call of each timer, repeats interleaved across the timers.

    ``number`` is the calls per repeat: one count for every timer, or a list, one each.
    """
    numbers = list(number) if isinstance(number, (list, tuple)) else [number] * len(timers)
    best = [math.inf] * len(timers)
    for r in range(repeat):
        for i, timer in enumerate(timers):
            best[i] = min(best[i], timer.timeit(numbers[i]) / numbers[i])
        progress.tick(r + 1, repeat)
    return best


class Progress:
    """Progress on stderr: one line per finished case; a spinner too when stderr is a tty."""

    SPIN = "|/-\\"

    def __init__(self, stream, total):
        self.stream, self.total = stream, total
        self.live = stream.isatty()
        self.index, self.case, self.started, self.spins = 0, "", 0.0, 0

    def start(self, case):
        self.index += 1
        self.case, self.started = case, time.perf_counter()
        self._draw("starting")

    def tick(self, done, total):
        self._draw(f"repeat {done}/{total}")

    def _draw(self, what):
        if self.live:
            self.spins += 1
            spin = self.SPIN[self.spins % len(self.SPIN)]
            self.stream.write(f"\r\x1b[K{spin} [{self.index}/{self.total}] {self.case}: {what}")
            self.stream.flush()

    def done(self, summary):
        line = (f"[{self.index}/{self.total}] {self.case}: {summary} "
                f"({time.perf_counter() - self.started:.1f} s)")
        self.stream.write(("\r\x1b[K" if self.live else "") + line + "\n")
        self.stream.flush()


# -- the cases ------------------------------------------------------------------------------


def case_empty(plan: Plan, progress: Progress) -> list[Result]:
    """(a) ``a.empty(8, np.float64)`` against ``np.empty(8, np.float64)``, per call."""
    n = plan.empty_number
    # Every repeat makes n 64-byte allocations; timeit runs the setup (the reset) untimed
    # before each repeat, so the arena never holds more than one repeat's worth.
    a = Arena(max(4 * n * 64, 64 * MiB))
    try:
        a.commit(n * 64)
        timers = [timeit.Timer("empty(8, f8)", setup="reset()",
                               globals={"empty": a.empty, "f8": np.float64, "reset": a.reset}),
                  timeit.Timer("empty(8, f8)", globals={"empty": np.empty, "f8": np.float64})]
        # (row name, peer label, note) for each peer timer after the arena's.
        peers = [("empty", "np.empty(8, float64)", "")]
        try:
            import pyarrow  # type: ignore  # optional peer, untyped or absent
        except ImportError:
            pass
        else:
            timers.append(timeit.Timer(
                "frombuffer(allocate(64), f8)",
                globals={"frombuffer": np.frombuffer, "allocate": pyarrow.allocate_buffer,
                         "f8": np.float64}))
            peers.append(("empty/pyarrow", "np.frombuffer(pa.allocate_buffer(64))",
                          f"pyarrow's default ({pyarrow.default_memory_pool().backend_name}) "
                          "memory pool"))
        try:
            from cymem.cymem import Address  # type: ignore  # optional peer
        except ImportError:
            pass
        else:
            timers.append(timeit.Timer("Address(8, 8)", globals={"Address": Address}))
            peers.append(("empty/cymem", "cymem Address(8, 8)",
                          "calloc + free, no ndarray: a floor, not a like-for-like peer"))
        for timer in timers:  # warm caches and the commit before anything is timed
            timer.timeit(min(n, 1000))
        best = best_of(timers, plan.empty_repeat, n, progress)
    finally:
        a.close()
    rows = []
    for i, (name, label, note) in enumerate(peers):
        rows.append(Result(name, "a.empty(8, float64)", best[0], label, best[i + 1],
                           0.5 if i == 0 else None, plan.empty_repeat, note))
    return rows


def case_calls(plan: Plan, progress: Progress) -> list[Result]:
    """(a2) Where v1 lagged NumPy: ``a.empty`` cycling through three dtypes (v1's two-entry
    dtype cache thrashed: 1.45x) and ``a.array`` of a short list of floats (v1 built a
    temporary array and copied it with ``np.copyto``: 2.8x). Target: not slower than NumPy."""
    n = plan.empty_number
    a = Arena(max(8 * n * 64, 64 * MiB))
    try:
        a.commit(4 * n * 64)
        names = {"a_empty": a.empty, "a_array": a.array, "np_empty": np.empty,
                 "np_array": np.array, "reset": a.reset, "d0": np.float64, "d1": np.float32,
                 "d2": np.int32}
        cycle = "{}(8, d0); {}(8, d1); {}(8, d2)"
        timers = [timeit.Timer(cycle.format(*["a_empty"] * 3), setup="reset()", globals=names),
                  timeit.Timer(cycle.format(*["np_empty"] * 3), globals=names),
                  timeit.Timer("a_array([1.0, 2.0, 3.0])", setup="reset()", globals=names),
                  timeit.Timer("np_array([1.0, 2.0, 3.0])", globals=names)]
        for timer in timers:
            timer.timeit(min(n, 1000))
        best = best_of(timers, plan.empty_repeat, n, progress)
    finally:
        a.close()
    return [Result("calls", "a.empty(8, d), d: float64, float32, int32",
                   best[0], "np.empty(8, d), same dtypes", best[1], 1.0, plan.empty_repeat,
                   per="3 calls"),
            Result("calls/array", "a.array([1.0, 2.0, 3.0])", best[2],
                   "np.array([1.0, 2.0, 3.0])", best[3], 1.0, plan.empty_repeat)]


def step(x, empty_like):
    """The ``step`` case's work: three temporaries from ``empty_like``, each filled by a
    ufunc with ``out=``."""
    t1 = empty_like(x)
    np.multiply(x, 2.0, out=t1)
    t2 = empty_like(x)
    np.add(t1, x, out=t2)
    t3 = empty_like(x)
    np.subtract(t2, t1, out=t3)


def case_step(plan: Plan, progress: Progress) -> list[Result]:
    """(b) A step with three temporaries the size of the state: arena + reset vs numpy.

    Two arenas: one on transparent huge pages (the configuration this README recommends for
    arrays of MiBs, and the page kind NumPy's own allocator asks for at 4 MiB and up, so
    the fair row for the target) and one on 4 KiB pages, shown for reference."""
    x = np.random.default_rng(0).random(plan.step_elements)
    size_needed = 4 * x.nbytes + 64 * MiB
    thp = ArenaOptions(size_needed).with_flags(Flags.TRANSPARENT_HUGE_PAGES).reserve()
    small = Arena(size_needed)

    def arena_step(a):
        def run():
            step(x, a.empty_like)
            a.reset()
        return run

    def numpy_step():
        step(x, np.empty_like)

    timers = [arena_step(thp), arena_step(small), numpy_step]
    try:
        for timer in timers:  # first touch of the arenas' pages happens here, untimed
            timer()
        best = best_of([timeit.Timer(t) for t in timers], plan.step_repeat, plan.step_number,
                       progress)
    finally:
        thp.close()
        small.close()
    size = format_bytes(x.nbytes, exact=True)
    peer = f"3 x {size} np.empty_like"
    return [Result("step", f"3 x {size} a.empty_like + reset(), THP", best[0], peer, best[2],
                   0.3, plan.step_repeat, "ufunc with out= into each temporary; target on the "
                   "THP arena (NumPy's allocator madvises huge pages at 4 MiB and up)",
                   per="step"),
            Result("step/4k", f"3 x {size} a.empty_like + reset(), 4 KiB", best[1], peer,
                   best[2], None, plan.step_repeat, "the same on 4 KiB pages", per="step")]


def case_touch(plan: Plan, progress: Progress, how: str) -> list[Result]:
    """(c) Commit and write ``touch_bytes`` freshly reserved: THP against 4 KiB pages."""
    n = plan.touch_bytes
    huge = {}

    def make(flags):
        def setup():
            return ArenaOptions(n).with_flags(flags).reserve()

        def run(a):
            a.commit(n)
            x = a.empty(n, np.uint8)
            if how == "fill":
                x[:] = 1
            else:
                x[::_system.page_size()] = 1
            if flags:
                huge["bytes"] = _huge_page_bytes(a.address, a.reserved)
            del x

        return OneShot(setup, run, Arena.close)

    timers = [make(Flags.TRANSPARENT_HUGE_PAGES), make(Flags(0))]
    # One untimed round first: on a VM, guest memory never touched before costs the host a
    # fault too, and that would land on whichever side happened to go first.
    for timer in timers:
        timer.timeit(1)
    best = best_of(timers, plan.touch_repeat, 1, progress)
    size = format_bytes(n, exact=True)
    what = ("x[:] = 1 (every byte)" if how == "fill"
            else f"x[::{_system.page_size()}] = 1 (one byte a page)")
    mode = _system.thp_mode()
    note = (f"THP mode {mode}; {format_bytes(huge.get('bytes', 0), exact=True)} of {size} on "
            f"huge pages; touch: {what}")
    return [Result("touch", f"{size} commit + touch, THP", best[0],
                   f"{size} commit + touch, 4 KiB pages", best[1], 0.25, plan.touch_repeat,
                   note, per="buffer")]


def case_reset(plan: Plan, progress: Progress) -> list[Result]:
    """(d) ``reset()`` after N allocations against dropping N live numpy arrays."""
    n = plan.reset_allocations
    a = Arena(2 * n * 64 + 64 * MiB)
    f8 = np.float64

    def arena_setup():
        empty = a.empty
        for _ in range(n):
            empty(8, f8)

    def numpy_setup():
        empty = np.empty
        return [empty(8, f8) for _ in range(n)]

    timers = [OneShot(arena_setup, lambda _: a.reset()),
              OneShot(numpy_setup, list.clear)]
    try:
        best = best_of(timers, plan.reset_repeat, 1, progress)
    finally:
        a.close()
    count = fmt_count(n)
    return [Result("reset", f"reset() after {count} a.empty(8)", best[0],
                   f"drop {count} np.empty(8) arrays", best[1], 0.001, plan.reset_repeat,
                   "allocations made untimed; arena arrays dropped as made", per="free")]


def expression(x, y, steps):
    """``steps`` steps of the ``numpy_allocator`` case's expression, as a user writes it."""
    for _ in range(steps):
        y = np.sqrt(x * 2.0 + y) - np.abs(y - x)
    return y


def expression_out(x, y, steps, scratch, result):
    """The same ufunc calls :func:`expression` makes, each writing into a preallocated
    buffer: no allocation at all, the floor any allocator could reach.

    NumPy computes ``x * 2.0 + y`` and ``a - b`` of two temporaries in place (temporary
    elision, for arrays of 256 KiB and more), so a step is six ufunc calls with four
    arrays alive at the peak: ``scratch`` (two buffers) for the temporaries, ``result``
    (two) for the new ``y``, written alternately so that the old ``y`` stays readable.
    Returns the final ``y``, equal to :func:`expression`'s.
    """
    t, u = scratch
    for k in range(steps):
        out = result[k & 1]
        np.multiply(x, 2.0, out=t)
        np.add(t, y, out=t)
        np.sqrt(t, out=out)
        np.subtract(y, x, out=t)
        np.absolute(t, out=u)
        np.subtract(out, u, out=out)
        y = out
    return y


def _numpy_madvises_hugepages() -> bool:
    """Whether NumPy's default allocator asks for huge pages (MADV_HUGEPAGE, arrays of
    4 MiB and more; on by default on Linux kernels that support it)."""
    multiarray = getattr(getattr(np, "_core", None), "multiarray", None)
    if multiarray is None:  # NumPy 1.x
        multiarray = np.core.multiarray  # type: ignore[attr-defined]
    get = getattr(multiarray, "_get_madvise_hugepage", None)
    return bool(get()) if get is not None else False


def case_numpy_allocator(plan: Plan, progress: Progress) -> list[Result]:
    """(e) An unmodified NumPy expression inside ``a.numpy_allocator()`` against plain NumPy.

    Two arena rows: a plain one (4 KiB pages) and a ``Flags.TRANSPARENT_HUGE_PAGES`` one.
    The target goes on the row whose pages match the peer's: NumPy's default allocator
    madvises arrays of 4 MiB and more for huge pages, so where THP is available to it
    (mode 'always', or 'madvise' with NumPy's madvise on) the THP row compares like with
    like and the 4 KiB row carries a page-size handicap; otherwise the 4 KiB row does.
    The compute floors (:func:`expression_out` into 4 KiB-page, THP and ``np.empty``
    buffers) run interleaved with the rest and go into the notes as floor / plain NumPy.

    The peer depends on the state of glibc's heap: in a fresh process it gives NumPy's
    8 MiB blocks back to the kernel on free and faults them in again the next step; after
    many small allocations (the ``reset`` case) the top of the heap is pinned, glibc keeps
    the blocks and plain NumPy runs at about the floor. The note gives the peer's page
    faults a step so that a reader can tell which state a run measured.
    """
    n, steps = plan.expr_elements, plan.expr_steps
    rng = np.random.default_rng(0)
    x, y0 = rng.random(n), rng.random(n)
    nbytes = x.nbytes
    thp_flags = Flags.TRANSPARENT_HUGE_PAGES
    # Room for the four arrays alive at the peak (see expression_out), with slack.
    plain = Arena(8 * nbytes + 64 * MiB)
    thp = ArenaOptions(8 * nbytes + 64 * MiB).with_flags(thp_flags).reserve()
    floor_4k = Arena(4 * nbytes + 64 * MiB)
    floor_thp = ArenaOptions(4 * nbytes + 64 * MiB).with_flags(thp_flags).reserve()
    arenas = (plain, thp, floor_4k, floor_thp)

    def in_arena(a):
        def run(_):
            with a.numpy_allocator():
                y = expression(x, y0, steps)
                del y
        return OneShot(lambda: None, run)

    def floor(empty):
        buffers = [empty(n) for _ in range(4)]
        for b in buffers:
            b.fill(0.0)  # first touch here, not in a timed run

        def run(_):
            expression_out(x, y0, steps, buffers[:2], buffers[2:])
        return OneShot(lambda: None, run), buffers

    floors = timers = None
    try:
        floors = [floor(floor_4k.empty), floor(floor_thp.empty), floor(np.empty)]
        faults = []  # minor page faults of each timed plain-NumPy run

        def numpy_run(_):
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            expression(x, y0, steps)
            faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)

        timers = [in_arena(plain), in_arena(thp), OneShot(lambda: None, numpy_run)]
        timers += [timer for timer, _ in floors]
        # One untimed round first: the arenas commit and touch their pages, glibc settles
        # its mmap threshold, and every side's code paths are warm.
        for timer in timers:
            timer.timeit(1)
        del faults[:]
        best = [b / steps for b in best_of(timers, plan.expr_repeat, 1, progress)]
        numpy_faults = min(faults) / steps
        high_water = plain.high_water
        huge = _huge_page_bytes(thp.address, thp.reserved)
    finally:
        floors = timers = None  # the floor buffers are views: drop them before closing
        for a in arenas:
            a.close()
    arena_4k, arena_thp, numpy, floor_4k_s, floor_thp_s, floor_np_s = best

    mode = _system.thp_mode()
    madvise = _numpy_madvises_hugepages()
    on_thp = mode == "always" or (mode == "madvise" and madvise)
    why = (f"NumPy's own allocator gets huge pages for arrays >= 4 MiB here (THP mode {mode}, "
           f"NumPy madvise {'on' if madvise else 'off'}), so only the THP arena matches its "
           "page kind" if on_thp else
           f"NumPy's own allocator gets no huge pages here (THP mode {mode}, NumPy madvise "
           f"{'on' if madvise else 'off'}), so the 4 KiB arena matches its page kind")
    size = format_bytes(nbytes, exact=True)
    arena_label = f"{size} expr in a.numpy_allocator()"
    peer_label = f"{size} expr, NumPy's allocator"
    r = lambda s: fmt_ratio(s / numpy)  # noqa: E731
    floor_def = ("compute floor (the same 6 ufuncs a step with out= into 4 preallocated "
                 "buffers, no allocation) / plain NumPy")
    # glibc either hands NumPy's big blocks back to the kernel on free (a fresh heap: the
    # next step faults them in again) or keeps them (a heap whose top is pinned, as after
    # many small allocations): the peer's time depends on which, so say which it was.
    peer_faults = f"plain NumPy took {numpy_faults:.0f} page faults a step" + (
        " (glibc kept its freed blocks: little for an allocator to save)"
        if numpy_faults < 1 else "")
    note_4k = (f"4 KiB-page arena, high water {high_water / nbytes:.2f} x {size}; {peer_faults}; "
               f"{floor_def}: "
               f"{r(floor_4k_s)} in 4 KiB-page buffers, {r(floor_np_s)} in np.empty buffers; "
               + ("target on the THP row" if on_thp else f"target here: {why}"))
    note_thp = (f"THP arena, {format_bytes(huge, exact=True)} on huge pages; compute floor in "
                f"THP buffers / plain NumPy: {r(floor_thp_s)}; "
                + (f"target here: {why}" if on_thp else "target on the 4 KiB row"))

    def extra(floor_s, floor_label):
        return {"floor_seconds": floor_s, "floor_ratio": floor_s / numpy,
                "floor_label": floor_label, "numpy_floor_seconds": floor_np_s,
                "numpy_floor_ratio": floor_np_s / numpy, "high_water": high_water,
                "numpy_minor_faults_per_step": numpy_faults}

    return [
        Result("numpy_allocator", arena_label, arena_4k, peer_label, numpy,
               None if on_thp else 0.5, plan.expr_repeat, note_4k, per="step",
               extra=extra(floor_4k_s, "out= into 4 KiB-page arena buffers")),
        Result("numpy_allocator/thp", arena_label + ", THP", arena_thp, peer_label, numpy,
               0.5 if on_thp else None, plan.expr_repeat, note_thp, per="step",
               extra=extra(floor_thp_s, "out= into THP arena buffers") | {"huge_bytes": huge}),
    ]


_consumer: list = []  # (module, why) once built


def consumer():
    """(module, "") with ``arena.cython_example`` built, once per process, or (None, why)
    when this machine cannot build it: Cython, a C compiler or the Python headers missing.
    Any other build failure is an error. (Memoised by hand: stubtest cannot read the
    signature through functools.cache.)"""
    if not _consumer:
        why = cython_example.missing_toolchain()
        if why is not None:
            _consumer.append((None, why))
        else:
            folder = tempfile.mkdtemp(prefix="arena-bench-")
            try:
                _consumer.append((cython_example.build(folder), ""))
            finally:  # the extension stays loaded after its file is gone
                shutil.rmtree(folder, ignore_errors=True)
    return _consumer[0]


ALLOC_RAW_TARGET = 2e-9  # seconds per call


def case_alloc_raw(plan: Plan, progress: Progress) -> list[Result]:
    """(f) ``alloc_raw`` and the inline ``arena_bump`` called from a third-party Cython
    module, per allocation. The target is absolute (no peer allocates from C through a
    comparable API); the ratio against ``np.empty(8)`` is information."""
    module, why = consumer()
    nbytes, n = 64, plan.raw_count
    labels = [("alloc_raw", f"alloc_raw({nbytes}, 16) via cimport", ALLOC_RAW_TARGET),
              ("alloc_raw/arena_bump", f"arena_bump({nbytes}, 16), inline nogil", None)]
    peer_label = "np.empty(8, float64)"
    if module is None:
        return [Result(name, label, math.nan, peer_label, math.nan, target, 0,
                       f"skipped: {why}", target_unit="seconds", skipped=True)
                for name, label, target in labels]
    a = Arena(n * nbytes + 64 * MiB)
    try:
        a.commit(n * nbytes)  # so that the loops time the bump, never a commit
        committed = a.committed
        timers: list = [SelfTimed(lambda k: module.time_alloc_raw(a, k, nbytes)[0], a.reset),
                  SelfTimed(lambda k: module.time_arena_bump(a, k, nbytes)[0], a.reset),
                  timeit.Timer("empty(8, f8)", globals={"empty": np.empty, "f8": np.float64})]
        numbers = [n, n, plan.empty_number]
        for timer, number in zip(timers, numbers):
            timer.timeit(min(number, 100_000))
        best = best_of(timers, plan.raw_repeat, numbers, progress)
        grew = a.committed != committed
        a.reset()
    finally:
        a.close()
    count = fmt_count(n)
    how = (f"{count} calls a repeat from arena.cython_example (built once), arena committed "
           f"up front{' (but it grew: the loop included a commit)' if grew else ''} and "
           "reset between repeats")
    notes = [f"target is the time itself (<= {format_time(ALLOC_RAW_TARGET)} a call), 'met' "
             "judges that: no peer allocates from C through a comparable API; the ratio to "
             f"np.empty(8) (a Python call making an ndarray) is information only; {how}",
             "the inline bump alone, without the GIL; no target"]
    return [Result(name, label, seconds, peer_label, best[2], target, plan.raw_repeat, note,
                   target_unit="seconds")
            for (name, label, target), seconds, note in zip(labels, best[:2], notes)]


def _huge_page_bytes(address: int, length: int) -> int:
    """AnonHugePages of the mappings overlapping the range, from /proc/self/smaps."""
    try:
        return _system.mapping_stats(address, length).get("AnonHugePages", 0)
    except OSError:
        return 0


# -- command line ---------------------------------------------------------------------------


def _case_list(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    unknown = [s for s in names if s not in CASES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown case(s) {', '.join(unknown) or '(none given)'}; choose from "
            f"{', '.join(CASES)}")
    return names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``bench``'s options to ``parser``."""
    parser.add_argument("--json", action="store_true",
                        help="print the results as JSON on stdout (progress stays on stderr)")
    parser.add_argument("--quick", action="store_true",
                        help="fewer repeats (same sizes): about half the time")
    parser.add_argument("--cases", type=_case_list, default=CASES, metavar="LIST",
                        help=f"comma-separated subset of {','.join(CASES)} (default: all)")
    parser.add_argument("--touch", choices=("fill", "stride"), default="stride",
                        help="touch case: one byte a 4 KiB page (stride, default: the first "
                             "touch of every page, page faults alone) or every byte (fill: "
                             "adds a 512 MiB memset to both sides)")
    # Tiny sizes and single repeats, for the test suite: the figures mean nothing.
    parser.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    """Run the cases ``args`` selects and print the table (or JSON); return the exit code."""
    plan_name = "smoke" if args.smoke else "quick" if args.quick else "full"
    plan = {"smoke": SMOKE, "quick": QUICK, "full": FULL}[plan_name]
    from . import bench_dask, bench_heap, bench_shared  # they build on this module's timing
    progress = Progress(sys.stderr, len(args.cases))
    results: list[Result] = []
    for case in args.cases:
        progress.start(case)
        if case == "empty":
            rows = case_empty(plan, progress)
        elif case == "calls":
            rows = case_calls(plan, progress)
        elif case == "step":
            rows = case_step(plan, progress)
        elif case == "touch":
            rows = case_touch(plan, progress, args.touch)
        elif case == "reset":
            rows = case_reset(plan, progress)
        elif case == "numpy_allocator":
            rows = case_numpy_allocator(plan, progress)
        elif case in bench_heap.RUNNERS:
            rows = bench_heap.RUNNERS[case](plan, progress)
        elif case in bench_dask.RUNNERS:
            rows = bench_dask.RUNNERS[case](plan, progress)
        elif case in bench_shared.RUNNERS:
            rows = bench_shared.RUNNERS[case](plan, progress)
        elif case == "alloc_raw":
            rows = case_alloc_raw(plan, progress)
        else:
            from .bench_growable import case_growable  # it imports Result from here
            rows = case_growable(plan, progress)
        head = rows[0]
        if head.skipped:
            progress.done(head.note)
        elif head.unit != "s":
            progress.done(f"arena {format_bytes(int(head.arena_seconds))}, peer "
                          f"{format_bytes(int(head.peer_seconds))}, ratio {fmt_ratio(head.ratio)}")
        else:
            progress.done(f"arena {format_time(head.arena_seconds)}, peer "
                          f"{format_time(head.peer_seconds)}, ratio {fmt_ratio(head.ratio)}")
        results.extend(rows)
    env = environment(plan_name)
    if args.json:
        print(json.dumps({"environment": env, "cases": [r.as_dict() for r in results]},
                         indent=2))
    else:
        header = (f"arena bench ({plan_name}): Python {env['python']}, NumPy {env['numpy']}, "
                  f"Linux {env['kernel']}, {env['cpus']} CPUs, THP {env['thp_mode']}")
        print(render(results, header))
    return 0
