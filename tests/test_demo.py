"""``python -m arena demo`` and ``examples/simulation_loop.py``: small, fast runs.

The command runs in a subprocess (it spawns one child process per variant); the step
functions are also checked in-process at a tiny size.
"""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import arena
from arena.tools import demo as _demo

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "simulation_loop.py"


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _run(*argv, timeout=120):
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True,
                          cwd=ROOT, env=_env(), timeout=timeout)


def _demo_run(*args):
    return _run("-m", "arena", "demo", *args)


def _expected_variants():
    names = ["numpy", "arena"]
    if hasattr(arena.Arena, "numpy_allocator"):
        names.append("numpy_allocator")
    return names


@pytest.fixture(scope="module")
def small_json():
    out = _demo_run("--size", "64", "--steps", "20", "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout), out


def test_json_has_every_variant_and_they_agree(small_json):
    report, _ = small_json
    assert report["size"] == 64 and report["steps"] == 20
    assert [v["name"] for v in report["variants"]] == _expected_variants()
    assert report["all_equal"] is True
    for v in report["variants"]:
        assert v["equal_to_numpy"] is True, v["name"]
        assert v["max_abs_diff"] == 0.0
        assert v["seconds"] > 0 and v["steps_per_second"] > 0
        assert v["peak_rss_bytes"] > 0
        assert v["peak_rss_bytes"] >= v["rss_before_loop_bytes"]
        assert v["minor_faults"] >= 0 and v["major_faults"] >= 0
        assert v["speedup_vs_numpy"] > 0
        # Same final state everywhere, and the simulation did evolve the field.
        assert v["v_mean_final"] == report["variants"][0]["v_mean_final"]
        assert v["v_mean_final"] != v["v_mean_initial"]
    assert report["variants"][0]["speedup_vs_numpy"] == 1.0


@pytest.mark.rlimit
def test_peak_rss_is_the_childs_own():
    """ru_maxrss of a spawned child starts at the parent's high-water mark (carried over at
    exec); the parent keeps it low, so each child's ru_maxrss is its own VmHWM."""
    out = _demo_run("--size", "1000", "--steps", "2", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    for v in report["variants"]:
        assert v["vm_hwm_bytes"] > 1000 * 1000 * 8 * 2          # at least the two fields
        assert abs(v["peak_rss_bytes"] - v["vm_hwm_bytes"]) < 1 << 20, v["name"]
    assert report["all_equal"] is True


def test_no_progress_bar_when_stderr_is_not_a_terminal(small_json):
    _, out = small_json
    assert "\r" not in out.stderr and "\r" not in out.stdout


def test_table_output():
    out = _demo_run("--size", "32", "--steps", "5", "--seed", "3")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("variant"))
    rows = [line.split()[0] for line in lines[header + 2:header + 2 + len(_expected_variants())]]
    assert rows == _expected_variants()
    assert "identical in every variant" in out.stdout
    assert "32x32" in lines[0] and "5 steps" in lines[0] and "seed 3" in lines[0]


def test_seed_changes_the_initial_condition():
    a = _demo.initial_fields(64, 0)
    b = _demo.initial_fields(64, 0)
    c = _demo.initial_fields(64, 1)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


@pytest.mark.parametrize("args, fragment", [
    (["--size", "abc"], "--size"),
    (["--size", "4"], "at least"),
    (["--steps", "0"], "--steps"),
    (["--huge-pages", "giant"], "invalid choice"),
    (["--seed", "-1"], "--seed"),
    (["--bogus"], "unrecognized arguments"),
])
def test_bad_arguments_give_one_error_line(args, fragment):
    out = _demo_run(*args)
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    errors = [line for line in out.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and fragment in errors[0]
    assert out.stdout == ""


def test_hugetlb():
    """A pool too small: one error line, exit 1. A filled pool: the variants run and agree."""
    pools = arena.system_info()["hugetlb"]
    need = _demo._hugetlb_pages_needed(64)
    out = _demo_run("--size", "64", "--steps", "2", "--huge-pages", "hugetlb", "--json")
    if _demo.HUGETLB_SIZE in pools and pools[_demo.HUGETLB_SIZE]["free"] >= need:
        assert out.returncode == 0, out.stderr
        report = json.loads(out.stdout)
        assert report["huge_pages"] == "hugetlb" and report["all_equal"] is True
        return
    assert out.returncode == 1
    assert "Traceback" not in out.stderr and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "hugetlb" in lines[0]
    if _demo.HUGETLB_SIZE in pools:
        assert "nr_hugepages" in lines[0]


def test_step_arena_matches_step_numpy_and_frees_its_temporaries():
    U1, V1 = _demo.initial_fields(48, 7)
    U2, V2 = U1.copy(), V1.copy()
    with arena.Arena(1 << 24) as a:
        for _ in range(10):
            _demo.step_numpy(U1, V1)
            with a.scope():
                _demo.step_arena(U2, V2, a)
            assert a.used == 0 and a.live_views == 0
        assert a.high_water == _demo.arena_bytes_needed(48)
    assert np.array_equal(U1, U2) and np.array_equal(V1, V2)
    assert not np.array_equal(V1, _demo.initial_fields(48, 7)[1])


def test_example_simulation_loop():
    out = _run(str(EXAMPLE), timeout=60)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "same as plain NumPy, bit for bit: True" in text
    used, field = map(int, re.search(r"used (\d+) bytes \(the field alone is (\d+) bytes\)",
                                     text).groups())
    assert used == field == 256 * 256 * 8
    assert "keeping a temporary past its scope: BufferError" in text
    assert int(re.search(r"after del and release: used (\d+) bytes", text).group(1)) == field
    hot = float(re.search(r"below the hot edge: ([0-9.]+)", text).group(1))
    assert 0.0 < hot < 1.0


def test_numpy_allocator_hook(monkeypatch):
    """The third variant's code path: step_numpy unchanged inside a.numpy_allocator()."""
    import contextlib

    entered = []

    class FakeArena:
        def numpy_allocator(self):
            entered.append(True)
            return contextlib.nullcontext()

    U1, V1 = _demo.initial_fields(32, 2)
    U2, V2 = U1.copy(), V1.copy()
    _demo._loop("numpy_allocator", U1, V1, 3, FakeArena(), lambda done: None)
    for _ in range(3):
        _demo.step_numpy(U2, V2)
    assert entered == [True]
    assert np.array_equal(U1, U2) and np.array_equal(V1, V2)
    monkeypatch.setattr(_demo, "has_numpy_allocator", lambda: True)
    assert _demo.available_variants() == ["numpy", "arena", "numpy_allocator"]


def test_empty_hugetlb_pool_message(monkeypatch, capsys):
    """The empty-pool error, whatever this machine's pool holds (checked before any child)."""
    import argparse

    monkeypatch.setattr(_demo._system, "hugetlb_pools",
                        lambda: {_demo.HUGETLB_SIZE: {"total": 0, "free": 0}})
    parser = argparse.ArgumentParser()
    _demo.add_arguments(parser)
    assert _demo.run(parser.parse_args(["--huge-pages", "hugetlb"])) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    need = _demo._hugetlb_pages_needed(_demo.DEFAULT_SIZE)
    assert len(lines) == 1 and "pool is empty" in lines[0]
    assert f"echo {need} > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages" in lines[0]
