"""``python -m arena bench``: every case runs and reports consistent numbers.

The ``--smoke`` plan shrinks sizes and repeats so that all of this takes a few seconds
(most of it building the Cython consumer once, for ``alloc_raw``);
its figures mean nothing, so nothing here checks a timing against a target.
"""
import json

import numpy as np
import pytest

from arena.tools import bench as _bench
from arena.__main__ import main


def run_json(capsys, *extra):
    assert main(["bench", "--smoke", "--json", *extra]) == 0
    out, err = capsys.readouterr()
    return json.loads(out), err


@pytest.mark.slow
def test_json_has_every_case_with_consistent_ratios(capsys):
    doc, err = run_json(capsys)
    cases = {c["case"]: c for c in doc["cases"]}
    assert set(_bench.CASES) <= set(cases)
    for name, case in cases.items():
        assert case["arena"]["label"] and case["peer"]["label"], name
        assert case["target_unit"] in ("ratio", "seconds", "bytes"), name
        if case["skipped"]:  # alloc_raw without Cython or a compiler, dask without Dask
            assert name.startswith(("alloc_raw", "dask")) and case["note"].startswith("skipped: ")
            assert case["arena"]["seconds"] is None and case["ratio"] is None
            assert case["met"] is None
            continue
        arena, peer = case["arena"]["seconds"], case["peer"]["seconds"]
        assert peer > 0 and (arena > 0 or case["unit"] in ("B", "count")), name  # 0 B, 0 faults
        assert case["ratio"] == pytest.approx(arena / peer, rel=1e-12), name
        judged = case["ratio"] if case["target_unit"] == "ratio" else arena
        if case["target"] is None:
            assert case["met"] is None, name
        else:
            assert case["met"] == (judged <= case["target"]), name
    # (the last row of each name: heap's is its largest count, calloc's the untouched zeros)
    # (the Dask cases: test_dask's bench rows)
    mine = [name for name in _bench.CASES
            if not name.startswith(("numpy_allocator", "dask", "calls"))]
    assert {name: cases[name]["target"] for name in mine} == {
        "empty": 0.5, "step": 0.3, "touch": 0.25, "reset": 0.001, "alloc_raw": 2e-9,
        "heap": 1.0, "calloc": None, "purge": 64 << 20, "fromiter": 1.6, "growable": 0.5,
        "shared": 0.25}
    units = {name: cases[name]["target_unit"] for name in mine}
    assert units.pop("alloc_raw") == "seconds" and units.pop("purge") == "bytes"
    assert set(units.values()) == {"ratio"}
    assert [c["target"] for c in doc["cases"] if c["case"] == "calloc/thp"] == [1.0, 1.0, None]
    assert cases["heap/temporaries"]["target"] == 1.0
    assert cases["calls"]["target"] == cases["calls/array"]["target"] == 1
    assert doc["environment"]["plan"] == "smoke"
    # Progress: one line per case on stderr, nothing else on stdout but the JSON.
    assert [line.split(":")[0] for line in err.splitlines()] == [
        f"[{i}/{len(_bench.CASES)}] {name}" for i, name in enumerate(_bench.CASES, 1)]


def test_shared_rows(capsys):
    doc, _ = run_json(capsys, "--cases", "shared")
    batch, rss, empty = doc["cases"]
    assert [r["case"] for r in doc["cases"]] == ["shared", "shared/rss", "shared/empty"]
    assert [r["target"] for r in doc["cases"]] == [0.25, 0.6, 1.5]
    assert {r["target_unit"] for r in doc["cases"]} == {"ratio"}
    assert batch["per"] == "batch" and batch["extra"]["cold_seconds"] > 0
    assert rss["unit"] == "B" and "pickled" in rss["peer"]["label"]
    assert rss["extra"]["read_all_pickled"] > 0 and "reading every byte" in rss["note"]
    assert "private arena" in empty["peer"]["label"]


def test_numpy_allocator_rows(capsys):
    doc, _ = run_json(capsys, "--cases", "numpy_allocator")
    plain, thp = doc["cases"]
    assert (plain["case"], thp["case"]) == ("numpy_allocator", "numpy_allocator/thp")
    # The peer is one measurement shared by both rows; exactly one row carries the target.
    assert plain["peer"] == thp["peer"]
    assert sorted([plain["target"], thp["target"]], key=str) == [0.5, None]
    targeted = plain if plain["target"] is not None else thp
    other = thp if targeted is plain else plain
    assert "target here" in targeted["note"] and "target on the" in other["note"]
    for row in (plain, thp):
        assert row["per"] == "step" and row["ratio"] == pytest.approx(
            row["arena"]["seconds"] / row["peer"]["seconds"], rel=1e-12)
        extra = row["extra"]
        assert extra["floor_seconds"] > 0 and extra["numpy_floor_seconds"] > 0
        assert extra["floor_ratio"] == pytest.approx(
            extra["floor_seconds"] / row["peer"]["seconds"], rel=1e-12)
        assert extra["numpy_minor_faults_per_step"] >= 0
        assert "compute floor" in row["note"]
        # Four arrays alive at the peak, whatever the allocator does with them.
        assert extra["high_water"] >= 4 * 16 * 1024 * 8


def test_compute_floor_computes_the_expression():
    rng = np.random.default_rng(1)
    x, y = rng.random(100_000), rng.random(100_000)  # big enough for temporary elision
    buffers = [np.empty_like(x) for _ in range(4)]
    for steps in (1, 2, 3):
        floor = _bench.expression_out(x, y, steps, buffers[:2], buffers[2:])
        assert np.array_equal(floor, _bench.expression(x, y, steps))
    assert np.array_equal(y, np.random.default_rng(1).random(200_000)[100_000:])


def test_alloc_raw_rows(capsys):
    doc, _ = run_json(capsys, "--cases", "alloc_raw")
    raw, bump = doc["cases"]
    assert (raw["case"], bump["case"]) == ("alloc_raw", "alloc_raw/arena_bump")
    assert raw["target"] == 2e-9 and raw["target_unit"] == "seconds"
    assert bump["target"] is None and bump["met"] is None
    if raw["skipped"]:
        pytest.skip(raw["note"])
    assert raw["peer"] == bump["peer"] and "np.empty" in raw["peer"]["label"]
    assert raw["met"] == (raw["arena"]["seconds"] <= 2e-9)
    for row in (raw, bump):
        assert row["ratio"] == pytest.approx(
            row["arena"]["seconds"] / row["peer"]["seconds"], rel=1e-12)


def test_alloc_raw_is_skipped_without_a_compiler(capsys, monkeypatch):
    monkeypatch.setattr(_bench, "consumer", lambda: (None, "no C compiler (cc not found)"))
    doc, err = run_json(capsys, "--cases", "alloc_raw")
    assert [c["case"] for c in doc["cases"]] == ["alloc_raw", "alloc_raw/arena_bump"]
    for row in doc["cases"]:
        assert row["skipped"] and row["met"] is None and row["ratio"] is None
        assert row["arena"]["seconds"] is None and row["peer"]["seconds"] is None
        assert row["note"] == "skipped: no C compiler (cc not found)"
    assert "skipped: no C compiler" in err
    assert main(["bench", "--smoke", "--cases", "alloc_raw"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines()
               if line.startswith("alloc_raw "))
    assert row.split()[-1] == "skipped" and "<= 2 ns" in row


def test_cases_selects_a_subset_in_order(capsys):
    doc, _ = run_json(capsys, "--cases", "reset,step")
    assert [c["case"] for c in doc["cases"]] == ["reset", "step", "step/4k"]


def test_touch_stride_is_named_in_the_note(capsys):
    doc, _ = run_json(capsys, "--cases", "touch", "--touch", "stride")
    (case,) = doc["cases"]
    assert "one byte a page" in case["note"]


def test_unknown_case_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--cases", "empty,nope"])
    assert exc.value.code == 2
    assert "nope" in capsys.readouterr().err


def test_table_has_target_and_met_columns(capsys):
    assert main(["bench", "--smoke", "--cases", "empty,reset,alloc_raw"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("case"))
    assert header.split() == ["case", "per", "arena", "time", "peer", "time", "ratio",
                              "target", "met"]
    row = next(line for line in out.splitlines() if line.startswith("reset "))
    assert row.split()[-1] in ("yes", "no")
    assert "<= 0.001" in row
    row = next(line for line in out.splitlines() if line.startswith("alloc_raw "))
    assert "<= 2 ns" in row and row.split()[-1] in ("yes", "no", "skipped")


def test_growable_rows(capsys):
    doc, _ = run_json(capsys, "--cases", "growable")
    rows = {c["case"]: c for c in doc["cases"]}
    assert list(rows) == ["growable", "growable/rss", "growable/resize", "growable/np.append",
                          "growable/append"]
    assert {name: (r["target"], r["unit"]) for name, r in rows.items()} == {
        "growable": (0.5, "s"), "growable/rss": (0.55, "B"), "growable/resize": (1.0, "s"),
        "growable/np.append": (1.0, "s"), "growable/append": (3.0, "s")}
    rss = rows["growable/rss"]
    assert rss["per"] == "peak RSS"
    assert rss["arena"]["seconds"] > 0 and rss["peer"]["seconds"] > 0  # bytes, from children
    assert rows["growable"]["arena"]["seconds"] == rows["growable/resize"]["arena"]["seconds"]
    builds = rows["growable"]["extra"]["builds"]
    assert len({b["checksum"] for k, b in builds.items() if k.endswith(" 1 MiB")}) == 1
    assert main(["bench", "--smoke", "--cases", "growable"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines()
               if line.startswith("growable/rss "))
    assert "MiB" in row and "<= 0.55" in row


def test_growable_builds_agree():
    from arena.tools.bench_growable import build
    want = build("concatenate", 1 << 20, 1 << 14)
    for kind in ("growable", "resize", "append"):
        assert np.array_equal(build(kind, 1 << 20, 1 << 14), want), kind


def test_bench_skips_without_dask(capsys, monkeypatch):
    from arena.tools import bench_dask
    monkeypatch.setattr(bench_dask, "missing", lambda: "no dask here")
    assert main(["bench", "--smoke", "--json", "--cases", "dask,dask_cluster"]) == 0
    cases = json.loads(capsys.readouterr().out)["cases"]
    assert [c["case"] for c in cases] == ["dask", "dask/faults", "dask/high water",
                                          "dask_cluster"]
    assert all(c["skipped"] and c["note"] == "skipped: no dask here" for c in cases)
