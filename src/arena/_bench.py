"""``python -m arena bench``: the headline comparisons, arena against its peer, in one process.

Four cases, each with a target for the ratio arena time / peer time:

========  =====================================================  =====================  ======
case      arena                                                  peer                   target
========  =====================================================  =====================  ======
empty     ``a.empty(8, np.float64)``, per call                   ``np.empty``           0.5
step      three 8 MiB temporaries per step, ``reset()`` after    ``np.empty_like``      0.3
touch     commit and write 512 MiB on transparent huge pages     the same on 4 KiB      0.25
reset     ``reset()`` after a million allocations                drop a million arrays  0.001
========  =====================================================  =====================  ======

Times are best-of-N (the minimum is the run least disturbed by the rest of the machine,
as :mod:`timeit` argues); arena and peer repeats alternate so that drift hits both. When
pyarrow or cymem is installed, ``empty`` gains rows against them too, without targets.
The full run takes about 10 s on two cores; ``--quick`` about half of that.
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import sys
import time
import timeit
from dataclasses import dataclass

import numpy as np

from ._core import Arena
from ._options import ArenaOptions, Flags
from . import _system

CASES = ("empty", "step", "touch", "reset")

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


FULL = Plan(empty_number=100_000, empty_repeat=7,
            step_elements=MiB, step_number=20, step_repeat=5,
            touch_bytes=512 * MiB, touch_repeat=5,
            reset_allocations=1_000_000, reset_repeat=5)
QUICK = Plan(empty_number=50_000, empty_repeat=3,
             step_elements=MiB, step_number=10, step_repeat=3,
             touch_bytes=512 * MiB, touch_repeat=2,
             reset_allocations=1_000_000, reset_repeat=2)
SMOKE = Plan(empty_number=2_000, empty_repeat=2,
             step_elements=16 * KiB, step_number=3, step_repeat=2,
             touch_bytes=8 * MiB, touch_repeat=1,
             reset_allocations=10_000, reset_repeat=2)


@dataclass
class Result:
    """One row of the table: the arena side, the peer side and how they compare."""

    case: str
    arena_label: str
    arena_seconds: float
    peer_label: str
    peer_seconds: float
    target: float | None
    repeats: int
    note: str = ""
    per: str = "call"

    @property
    def ratio(self) -> float:
        return self.arena_seconds / self.peer_seconds

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.ratio <= self.target

    def as_dict(self) -> dict:
        return {
            "case": self.case,
            "arena": {"label": self.arena_label, "seconds": self.arena_seconds},
            "peer": {"label": self.peer_label, "seconds": self.peer_seconds},
            "per": self.per,
            "ratio": self.ratio,
            "target": self.target,
            "met": self.met,
            "repeats": self.repeats,
            "note": self.note,
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


def best_of(timers, repeat, number, progress):
    """Best time per call of each timer, repeats interleaved across the timers."""
    best = [math.inf] * len(timers)
    for r in range(repeat):
        for i, timer in enumerate(timers):
            best[i] = min(best[i], timer.timeit(number) / number)
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
            import pyarrow  # type: ignore[import-untyped]
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
            from cymem.cymem import Address  # type: ignore[import-untyped]
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


def case_step(plan: Plan, progress: Progress) -> list[Result]:
    """(b) A step with three temporaries the size of the state: arena + reset vs numpy."""
    x = np.random.default_rng(0).random(plan.step_elements)
    a = Arena(4 * x.nbytes + 64 * MiB)

    def temporaries(empty_like):
        t1 = empty_like(x)
        np.multiply(x, 2.0, out=t1)
        t2 = empty_like(x)
        np.add(t1, x, out=t2)
        t3 = empty_like(x)
        np.subtract(t2, t1, out=t3)

    def arena_step():
        temporaries(a.empty_like)
        a.reset()

    def numpy_step():
        temporaries(np.empty_like)

    try:
        arena_step()  # first touch of the arena's pages happens here, untimed
        numpy_step()
        best = best_of([timeit.Timer(arena_step), timeit.Timer(numpy_step)],
                       plan.step_repeat, plan.step_number, progress)
    finally:
        a.close()
    size = _fmt_bytes(x.nbytes)
    return [Result("step", f"3 x {size} a.empty_like + reset()", best[0],
                   f"3 x {size} np.empty_like", best[1], 0.3, plan.step_repeat,
                   "ufunc with out= into each temporary", per="step")]


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
    size = _fmt_bytes(n)
    what = ("x[:] = 1 (every byte)" if how == "fill"
            else f"x[::{_system.page_size()}] = 1 (one byte a page)")
    mode = _system.thp_mode()
    note = (f"THP mode {mode}; {_fmt_bytes(huge.get('bytes', 0))} of {size} on huge pages; "
            f"touch: {what}")
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
    count = f"{n:.0e}".replace("e+0", "e") if n >= 10_000 else str(n)
    return [Result("reset", f"reset() after {count} a.empty(8)", best[0],
                   f"drop {count} np.empty(8) arrays", best[1], 0.001, plan.reset_repeat,
                   "allocations made untimed; arena arrays dropped as made", per="free")]


# -- reporting ------------------------------------------------------------------------------


def _fmt_time(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def _fmt_bytes(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):g} {unit}"
    return f"{n} B"


def _fmt_ratio(r: float) -> str:
    return f"{r:.3f}" if r >= 0.01 else f"{r:.1e}"


def _huge_page_bytes(address: int, length: int) -> int:
    """AnonHugePages of the mappings overlapping the range, from /proc/self/smaps."""
    end, total, inside = address + length, 0, False
    try:
        with open("/proc/self/smaps") as f:
            for line in f:
                head = line.split(None, 1)[0]
                if not head.endswith(":"):
                    lo, hi = (int(v, 16) for v in head.split("-"))
                    inside = lo < end and hi > address
                elif inside and head == "AnonHugePages:":
                    total += int(line.split()[1]) * KiB
    except OSError:
        return 0
    return total


def render(results: list[Result], header: str) -> str:
    """The results as an aligned text table, followed by each row's note."""
    rows = [("case", "per", "arena", "time", "peer", "time", "ratio", "target", "met")]
    for r in results:
        rows.append((r.case, r.per, r.arena_label, _fmt_time(r.arena_seconds), r.peer_label,
                     _fmt_time(r.peer_seconds), _fmt_ratio(r.ratio),
                     "-" if r.target is None else f"<= {r.target:g}",
                     "-" if r.met is None else ("yes" if r.met else "no")))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    right = {3, 5, 6}
    lines = [header, ""]
    for k, row in enumerate(rows):
        cells = [c.rjust(w) if i in right else c.ljust(w)
                 for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.append("")
    lines.append("time: best of the repeats, per the unit in 'per'; ratio: arena time / "
                 "peer time; met: ratio <= target")
    for r in results:
        if r.note:
            lines.append(f"{r.case}: {r.note}")
    return "\n".join(lines)


def _environment(plan_name: str) -> dict:
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "thp_mode": _system.thp_mode(),
        "plan": plan_name,
    }


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
    parser.add_argument("--touch", choices=("fill", "stride"), default="fill",
                        help="touch case: write every byte (fill, default) or one byte a "
                             "4 KiB page (stride: page faults alone)")
    # Tiny sizes and single repeats, for the test suite: the figures mean nothing.
    parser.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    """Run the cases ``args`` selects and print the table (or JSON); return the exit code."""
    plan_name = "smoke" if args.smoke else "quick" if args.quick else "full"
    plan = {"smoke": SMOKE, "quick": QUICK, "full": FULL}[plan_name]
    progress = Progress(sys.stderr, len(args.cases))
    results: list[Result] = []
    for case in args.cases:
        progress.start(case)
        if case == "empty":
            rows = case_empty(plan, progress)
        elif case == "step":
            rows = case_step(plan, progress)
        elif case == "touch":
            rows = case_touch(plan, progress, args.touch)
        else:
            rows = case_reset(plan, progress)
        head = rows[0]
        progress.done(f"arena {_fmt_time(head.arena_seconds)}, peer "
                      f"{_fmt_time(head.peer_seconds)}, ratio {_fmt_ratio(head.ratio)}")
        results.extend(rows)
    env = _environment(plan_name)
    if args.json:
        print(json.dumps({"environment": env, "cases": [r.as_dict() for r in results]},
                         indent=2))
    else:
        header = (f"arena bench ({plan_name}): Python {env['python']}, NumPy {env['numpy']}, "
                  f"Linux {env['kernel']}, {env['cpus']} CPUs, THP {env['thp_mode']}")
        print(render(results, header))
    return 0
