"""The scripts in examples/ run and print what they promise."""
import pathlib
import platform
import subprocess
import sys

import numpy as np
import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def run(name, *args):
    out = subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_huge_array_on_thp():
    out = run("huge_array.py", "--gib", "0.0625")
    assert "64 MiB touched" in out and "sum = 8388608" in out
    huge_kib = int(out.split("AnonHugePages:")[1].split()[0])
    assert huge_kib > 0  # transparent huge pages really backed it


def test_shared_reader():
    out = run("shared_reader.py").splitlines()
    assert out[0] == "writer put 1000 values at offset 0, sum 499500.0"
    assert out[1] == "reader sees 1000 values, sum 499500.0, writeable=False"


@pytest.mark.skipif(platform.machine() != "x86_64", reason="emits x86-64 code")
def test_tiny_jit():
    assert run("tiny_jit.py").strip() == "add42(100) = 142; protection = READ_EXECUTE"


def test_sensor_log(tmp_path):
    path = tmp_path / "sensor.npy"
    out = run("sensor_log.py", "--bursts", "20", "--path", str(path)).splitlines()
    n = int(out[0].split()[1])
    assert out[0] == f"logged {n} rows of (time, temperature, pressure) in 20 bursts"
    assert out[1] == "the first view is still valid and in place: True"
    assert out[2].startswith(f"np.load sees {n} rows, mean temperature 21.5, file ")
    assert out[2].endswith(f" = header + {n * 24}")
    assert out[3] == f"reopened with {n} rows, appended one: {n + 1}"
    log = np.load(path)
    assert log.shape == (n + 1, 3) and (np.diff(log[:, 0]) > 0).all()


@pytest.mark.slow
def test_dask_arena():
    out = run("dask_arena.py", "--size", "800", "--chunk", "200")
    if out.startswith("skipped:"):  # without the extra the example says so and exits 0
        assert "arena[dask]" in out
        pytest.skip(out.strip())
    sums = {line.rsplit("sum = ", 1)[1] for line in out.splitlines() if "sum = " in line}
    assert len(sums) == 1, out  # identical results, with and without arenas
    assert "ArenaExecutor: 2 thread arenas" in out and "ArenaPlugin: worker arenas'" in out


def test_shared_pool():
    out = run("shared_pool.py", "--results", "6", "--mib", "2").splitlines()
    for round_, (head, figures) in enumerate([out[0:2], out[2:4]]):
        assert head.startswith(f"round {round_}: 6 results of 2 MiB, views of the arena: "
                               "True, largest |mean| ")
        assert figures.endswith("arena used 12 MiB by 6 allocations from 3 process(es)")
    assert out[4] == "after the pool: used 0, committed 12 MiB"
