"""Deterministic performance gate: instructions per operation on arena's hot paths.

Every path (``_instructions_paths.py``) runs in its own interpreter under
``valgrind --tool=callgrind``. Start-up, imports, set-up and warm-up run uninstrumented;
then the process runs the path's loop with ``n1`` and with ``n2`` operations, and callgrind
dumps its count before and after each loop, so

    instructions per operation = (Ir(loop of n2 ops) - Ir(loop of n1 ops)) / (n2 - n1)

with everything but the operations themselves (the call into the loop, the dump) cancelling.
Instruction counts do not depend on the machine's load, so a small tolerance (3 % by
default) catches a real change in the code that runs.

Heap layout. With CPython's own small-object allocator (pymalloc), what a loop costs
depends on where its temporaries land: a block that fills or empties a memory pool costs a
few instructions more on every iteration, and which one happens depends on everything
allocated before, so an unrelated edit (or the same code installed by pip instead of built
in place) moved ``reset`` by 1 % and the options builder by 0.1 %. The measured process
therefore runs with ``PYTHONMALLOC=malloc``: glibc's per-size caches cost the same wherever
a block lands, and the counts agree to a hundredth of an instruction between builds and
checkouts (the counts include glibc's malloc instead of pymalloc, the same in baseline and
now). In addition every loop is measured in ``--layouts`` (default 3) heap layouts, each
shifted by keeping one more block of every small size class, and the smallest count is
kept; all are printed.

Repeatability. Every path is measured in two separate processes (``--runs``, default 2);
their counts must agree to ``REPEAT_SPREAD_LIMIT`` or the measurement is reported as broken.

    python benchmarks/instructions.py                      # compare with the baseline
    python benchmarks/instructions.py --tolerance 5
    python benchmarks/instructions.py --json result.json   # '-' for stdout
    python benchmarks/instructions.py --update --reason "why the counts moved"

The interpreter running this script is the one measured, with ``arena`` importable (an
installed wheel, or ``PYTHONPATH=src`` after ``python setup.py build_ext --inplace``). It
needs valgrind (with its headers, ``valgrind/callgrind.h``: Debian's valgrind package has
them) and a C compiler. Counts depend on the interpreter, NumPy, the compiler and the build
flags too: the baseline records the environment and a mismatch is printed with the table.

Exit status: 0 within tolerance, 1 a path grew by more than the tolerance, 2 the measurement
failed (valgrind, its headers or the C compiler missing, a run crashed or did not do its
work, counts not repeatable, baseline missing or without a path).

asv imports every module in ``benchmarks/``: nothing here is named like a benchmark and
importing this module has no side effects.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import itertools
import json
import os
import pathlib
import platform
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time

try:  # imported by asv as benchmarks.instructions
    from ._instructions_paths import PATHS, GateError
except ImportError:  # run as a script: its folder is sys.path[0]
    from _instructions_paths import PATHS, GateError

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
BASELINE = HERE / "instructions-baseline.json"
CHILD = HERE / "_instructions_paths.py"
DEFAULT_TOLERANCE = 3.0  # percent growth of a path that fails the gate
DEFAULT_LAYOUTS = 3
DEFAULT_RUNS = 2
# Two runs of a path (separate processes) may differ by this much (percent of the
# per-operation count) before the measurement counts as not repeatable. They agree exactly.
REPEAT_SPREAD_LIMIT = 0.1

HOOKS_C = r"""
#include <valgrind/callgrind.h>
void gate_start(void) { CALLGRIND_START_INSTRUMENTATION; CALLGRIND_ZERO_STATS; }
void gate_dump(const char *label) { CALLGRIND_DUMP_STATS_AT(label); }
"""

_LOG = sys.stdout


def _log(*args):
    print(*args, file=_LOG, flush=True)


def _child_env():
    """The measured process's environment: fixed hash seed, the C library's malloc (see
    "Heap layout"), single-threaded BLAS (OpenBLAS worker threads spin a variable number of
    instructions), no PYTHON*, MALLOC_* or GLIBC_TUNABLES setting from outside but
    PYTHONPATH."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "MALLOC_", "GLIBC_TUNABLES")) or k == "PYTHONPATH"}
    env.update({
        "PYTHONHASHSEED": "0",
        "PYTHONMALLOC": "malloc",
        "PYTHONDONTWRITEBYTECODE": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "LC_ALL": "C",
    })
    return env


def _no_aslr_prefix():
    """``setarch <arch> -R`` (no address-space randomisation) where it works, else []."""
    setarch = shutil.which("setarch")
    if setarch is None:
        return []
    cmd = [setarch, platform.machine(), "-R"]
    try:
        ok = subprocess.run(cmd + ["true"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    return cmd if ok else []


def _valgrind_version():
    if shutil.which("valgrind") is None:
        raise GateError("valgrind is not installed (apt-get install valgrind): "
                        "the instruction-count gate cannot run")
    proc = subprocess.run(["valgrind", "--version"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise GateError(f"valgrind --version failed: {proc.stderr.strip()}")
    return proc.stdout.strip()


def _build_hooks(tmp):
    """A tiny shared library whose functions issue callgrind's client requests."""
    src, lib = pathlib.Path(tmp) / "hooks.c", pathlib.Path(tmp) / "hooks.so"
    src.write_text(HOOKS_C)
    cc = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    try:
        proc = subprocess.run(cc + ["-O2", "-shared", "-fPIC", "-o", str(lib), str(src)],
                              capture_output=True, text=True)
    except OSError as e:
        raise GateError(f"no C compiler ({cc[0]}): {e}") from None
    if proc.returncode != 0:
        raise GateError("cannot build the callgrind hooks (is valgrind/callgrind.h "
                        f"installed? it comes with valgrind):\n{proc.stderr}")
    return lib


def _build_consumer(folder):
    try:
        import arena.cython_example
    except ImportError as e:
        raise GateError(f"cannot import arena.cython_example: {e}") from None
    try:
        arena.cython_example.build(folder)
    except Exception as e:  # the builder's RuntimeError carries the compiler output
        raise GateError(f"building the cimport consumer failed: {e}") from None


def _environment(env):
    """What the counts depend on besides arena's code, read from the measured interpreter."""
    probe = ("import json, platform, sysconfig, numpy, arena._core as c; "
             "print(json.dumps({'python': platform.python_version(), "
             "'numpy': numpy.__version__, 'cc': sysconfig.get_config_var('CC'), "
             "'arena_core': c.__file__}))")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          env=env, cwd=ROOT)
    if proc.returncode != 0:
        raise GateError(f"cannot import numpy and arena in {sys.executable}:\n{proc.stderr}")
    return json.loads(proc.stdout)


class _Runner:
    def __init__(self, tmp, hooks, consumer_dir, layouts):
        self.tmp, self.hooks, self.consumer_dir = tmp, hooks, consumer_dir
        self.layouts = layouts
        self.env = _child_env()
        self.prefix = _no_aslr_prefix()
        self.serial = itertools.count(1)  # next() is atomic: safe with --jobs

    def cmd(self, path, layouts):
        return [sys.executable, str(CHILD), path.name, str(path.n1), str(path.n2),
                str(layouts), str(self.hooks), str(self.consumer_dir)]

    def check(self, path, layouts, proc, what):
        tail = f"\n--- stdout:\n{proc.stdout[-2000:]}\n--- stderr:\n{proc.stderr[-4000:]}"
        if proc.returncode != 0:
            raise GateError(f"{path.name}: {what} exited with status {proc.returncode}{tail}")
        got = [json.loads(ln) for ln in proc.stdout.splitlines() if ln.startswith("{")]
        want = [{"layout": k, "n": n, "result": path.expect(n)}
                for k in range(layouts) for n in (path.n1, path.n2)]
        if got != want:
            raise GateError(f"{path.name}: {what} did not do its work:\n got {got}\n "
                            f"expected {want}{tail}")

    def smoke(self, path):
        """Run the path once without valgrind (the client requests do nothing there)."""
        proc = subprocess.run(self.cmd(path, 1), capture_output=True, text=True,
                              env=self.env, cwd=ROOT, timeout=600)
        self.check(path, 1, proc, "the plain run (no valgrind)")

    def run(self, path):
        """Instructions per operation in each layout, from one process under callgrind."""
        out = pathlib.Path(self.tmp) / f"callgrind.{path.name}.{next(self.serial)}"
        cmd = self.prefix + ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                             "--dump-line=no", f"--callgrind-out-file={out}"]
        proc = subprocess.run(cmd + self.cmd(path, self.layouts), capture_output=True,
                              text=True, env=self.env, cwd=ROOT, timeout=1800)
        self.check(path, self.layouts, proc, "the valgrind run")
        dumps = {}
        for f in pathlib.Path(self.tmp).glob(out.name + ".*"):
            text = f.read_text()
            desc = re.search(r"^desc: Trigger: Client Request: (.+)$", text, re.M)
            summary = re.search(r"^summary:\s*(\d+)", text, re.M)
            events = re.search(r"^events:\s*(\S+)", text, re.M)
            if desc and summary and events and events.group(1) == "Ir":
                dumps[desc.group(1).strip()] = int(summary.group(1))
            f.unlink()
        pathlib.Path(out).unlink(missing_ok=True)
        per_layout = []
        for k in range(self.layouts):
            labels = [f"{path.name} layout {k} {s}" for s in ("n1", "n2")]
            missing = [lb for lb in labels if lb not in dumps]
            if missing:
                raise GateError(f"{path.name}: callgrind wrote no count for {missing} "
                                f"(dumps: {sorted(dumps)}):\n{proc.stderr[-4000:]}")
            i1, i2 = dumps[labels[0]], dumps[labels[1]]
            per_op = (i2 - i1) / (path.n2 - path.n1)
            if per_op <= 0:
                raise GateError(f"{path.name}: {path.n2} operations counted no more "
                                f"instructions than {path.n1} ({i2} vs {i1}) in layout {k}")
            per_layout.append(per_op)
        return per_layout


def measure(names, layouts, runs, jobs):
    """{name: [per-layout per-op counts, one list per run]} and the environment."""
    version = _valgrind_version()
    info = _environment(_child_env())
    info["valgrind"] = version
    results = {}
    with tempfile.TemporaryDirectory(prefix="arena-instructions-") as tmp:
        hooks = _build_hooks(tmp)
        consumer_dir = pathlib.Path(tmp) / "consumer"
        if "alloc_raw" in names:
            t = time.monotonic()
            _build_consumer(consumer_dir)
            _log(f"built the cimport consumer in {time.monotonic() - t:.1f} s")
        runner = _Runner(tmp, hooks, consumer_dir, layouts)
        info["aslr_disabled"] = bool(runner.prefix)
        for name in names:
            runner.smoke(PATHS[name])
        _log(f"instructions per operation in layouts 0..{layouts - 1}, {runs} run(s) each:")
        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
            for name in names:
                t = time.monotonic()
                got = list(pool.map(lambda _: runner.run(PATHS[name]), range(runs)))  # noqa: B023
                results[name] = got
                _log(f"  {name:<11} " + " | ".join(" ".join(f"{v:.2f}" for v in r)
                                                   for r in got)
                     + f"   ({time.monotonic() - t:.1f} s)")
    return results, info


def _git(*args):
    try:
        proc = subprocess.run(["git", *args], capture_output=True, text=True, cwd=ROOT)
    except OSError:
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def _commit(baseline_file):
    head = _git("rev-parse", "HEAD")
    if head is None:
        return "unknown"
    exclude = []
    if baseline_file.resolve().is_relative_to(ROOT):
        exclude = [f":(exclude){baseline_file.resolve().relative_to(ROOT)}"]
    dirty = _git("status", "--porcelain", "--untracked-files=no", "--", ".", *exclude)
    return head + ("-dirty" if dirty else "")


def main(argv=None):
    global _LOG
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--update", action="store_true",
                    help="rewrite the baseline with this measurement (needs --reason)")
    ap.add_argument("--reason", help="why the baseline changes (stored in the baseline)")
    ap.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE, metavar="PCT",
                    help=f"fail when a path grows by more than PCT percent "
                         f"(default {DEFAULT_TOLERANCE:g})")
    ap.add_argument("--layouts", type=int, default=DEFAULT_LAYOUTS,
                    help=f"heap layouts per path; the smallest count is kept "
                         f"(default {DEFAULT_LAYOUTS})")
    ap.add_argument("--runs", type=int, default=DEFAULT_RUNS,
                    help=f"processes per path, which must agree (default {DEFAULT_RUNS})")
    ap.add_argument("--jobs", type=int, default=1, help="valgrind runs at a time (default 1)")
    ap.add_argument("--json", metavar="FILE",
                    help="also write the result as JSON to FILE ('-': stdout; the table "
                         "then goes to stderr)")
    ap.add_argument("--baseline", type=pathlib.Path, default=BASELINE,
                    help="baseline file (default benchmarks/instructions-baseline.json)")
    ap.add_argument("--only", action="append", choices=list(PATHS), metavar="PATH",
                    help=f"measure only this path (repeatable; one of {', '.join(PATHS)}); "
                         "not with --update")
    args = ap.parse_args(argv)

    if args.json == "-":
        _LOG = sys.stderr
    if args.update and not (args.reason and args.reason.strip()):
        ap.error("--update needs --reason 'why the counts move'")
    if args.update and args.only:
        ap.error("--update measures every path; drop --only")
    for opt in ("layouts", "runs", "jobs"):
        if getattr(args, opt) < 1:
            ap.error(f"--{opt} must be at least 1")

    started = time.monotonic()
    names = args.only or list(PATHS)
    baseline = None
    try:
        if not args.update:
            try:
                baseline = json.loads(args.baseline.read_text())
                base_paths = baseline["paths"]
            except (OSError, ValueError, KeyError) as e:
                raise GateError(f"cannot read the baseline {args.baseline}: {e!r} "
                                "(write one with --update --reason ...)") from None
            missing = [n for n in names if n not in base_paths]
            if missing:
                raise GateError(f"the baseline has no count for {', '.join(missing)}: "
                                "update it with --update --reason ...")
        _log(f"instruction counts under valgrind (callgrind) for {sys.executable}")
        results, info = measure(names, args.layouts, args.runs, args.jobs)
    except GateError as e:
        print(f"instructions: ERROR: {e}", file=sys.stderr)
        return 2

    rc = 0
    problems = []
    rows = []
    for n in names:
        runs = results[n]
        mins = [min(r) for r in runs]
        now = min(mins)
        spread = 100.0 * (max(mins) - now) / now
        if spread > REPEAT_SPREAD_LIMIT:
            problems.append(f"ERROR: {n}: separate runs disagree by {spread:.3f} % "
                            f"({', '.join(f'{m:.2f}' for m in mins)}): the count is not "
                            "repeatable here, so the gate cannot judge it")
            rc = 2
        rows.append({"path": n, "now": round(now, 2), "layouts": [round(v, 2) for v in runs[0]],
                     "runs": [[round(v, 2) for v in r] for r in runs],
                     "run_spread_pct": spread})

    _log("")
    if baseline is not None:
        _log(f"baseline: commit {baseline.get('commit', '?')}, "
             f"reason: {baseline.get('reason', '?')}")
        benv = baseline.get("environment", {})
        diffs = [f"{k} {benv.get(k)} -> {info.get(k)}" for k in ("python", "numpy", "valgrind")
                 if benv.get(k) != info.get(k)]
        if diffs:
            _log("WARNING: measured in another environment than the baseline ("
                 + "; ".join(diffs) + "): a change may come from there, not from arena")
        _log(f"{'path':<12} {'baseline':>11} {'now':>11} {'change':>9}   "
             "per layout (the smallest counts)")
        for row in rows:
            n = row["path"]
            b = base_paths[n]["instructions_per_op"]
            change = 100.0 * (row["now"] - b) / b
            row.update(baseline=b, change_pct=round(change, 3))
            note = ""
            if change > args.tolerance:
                note = "   <-- SLOWER"
                problems.append(f"FAIL: {n} grew by {change:+.2f} % ({b:.2f} -> "
                                f"{row['now']:.2f} instructions per operation; tolerance "
                                f"{args.tolerance:g} %)")
                rc = max(rc, 1)
            elif change < -args.tolerance:
                note = "   (fewer: update the baseline to keep the gain)"
            _log(f"{n:<12} {b:>11.2f} {row['now']:>11.2f} {change:>+8.2f}%   "
                 + " ".join(f"{v:.2f}" for v in row["layouts"]) + note)
    else:
        _log(f"{'path':<12} {'now':>11}   per layout (the smallest counts)")
        for row in rows:
            _log(f"{row['path']:<12} {row['now']:>11.2f}   "
                 + " ".join(f"{v:.2f}" for v in row["layouts"]))

    elapsed = time.monotonic() - started
    _log(f"({len(names)} paths, {args.layouts} layouts, {args.runs} runs each, "
         f"in {elapsed:.0f} s)")

    if args.update and rc == 0:
        doc = {
            "reason": args.reason.strip(),
            "commit": _commit(args.baseline),
            "measured": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"),
            "tool": "valgrind --tool=callgrind --instr-atstart=no, dumps around each loop",
            "method": "(Ir(loop of n2 ops) - Ir(loop of n1 ops)) / (n2 - n1); PYTHONHASHSEED=0, "
                      "PYTHONMALLOC=malloc, no ASLR, single-threaded BLAS, gc disabled; "
                      "smallest of "
                      f"{args.layouts} heap layouts",
            "environment": {k: info[k] for k in ("python", "numpy", "valgrind", "cc")},
            "paths": {r["path"]: {"statement": PATHS[r["path"]].statement,
                                  "n1": PATHS[r["path"]].n1, "n2": PATHS[r["path"]].n2,
                                  "instructions_per_op": r["now"],
                                  "layouts": r["layouts"]}
                      for r in rows},
        }
        args.baseline.write_text(json.dumps(doc, indent=2) + "\n")
        _log(f"baseline written to {args.baseline} (commit {doc['commit']})")

    if args.json:
        out = {"ok": rc == 0, "status": rc, "tolerance_pct": args.tolerance,
               "environment": info, "elapsed_s": round(elapsed, 1), "problems": problems,
               "baseline_commit": None if baseline is None else baseline.get("commit"),
               "paths": rows}
        text = json.dumps(out, indent=2) + "\n"
        if args.json == "-":
            sys.stdout.write(text)
        else:
            pathlib.Path(args.json).write_text(text)

    for p in problems:
        print(f"instructions: {p}", file=sys.stderr)
    if rc == 0:
        _log("instructions: OK" + ("" if baseline is None else
                                   f" (no path grew by more than {args.tolerance:g} %)"))
    elif args.update:
        print("instructions: baseline NOT written", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
