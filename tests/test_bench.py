"""``python -m arena bench``: every case runs and reports consistent numbers.

The ``--smoke`` plan shrinks sizes and repeats so that all of this takes about a second;
its figures mean nothing, so nothing here checks a timing against a target.
"""
import json

import pytest

from arena import _bench
from arena.__main__ import main


def run_json(capsys, *extra):
    assert main(["bench", "--smoke", "--json", *extra]) == 0
    out, err = capsys.readouterr()
    return json.loads(out), err


def test_json_has_every_case_with_consistent_ratios(capsys):
    doc, err = run_json(capsys)
    cases = {c["case"]: c for c in doc["cases"]}
    assert set(_bench.CASES) <= set(cases)
    for name, case in cases.items():
        arena, peer = case["arena"]["seconds"], case["peer"]["seconds"]
        assert arena > 0 and peer > 0, name
        assert case["ratio"] == pytest.approx(arena / peer, rel=1e-12), name
        assert case["arena"]["label"] and case["peer"]["label"], name
        if case["target"] is None:
            assert case["met"] is None, name
        else:
            assert case["met"] == (case["ratio"] <= case["target"]), name
    assert {name: cases[name]["target"] for name in _bench.CASES} == {
        "empty": 0.5, "step": 0.3, "touch": 0.25, "reset": 0.001}
    assert doc["environment"]["plan"] == "smoke"
    # Progress: one line per case on stderr, nothing else on stdout but the JSON.
    assert [line.split(":")[0] for line in err.splitlines()] == [
        f"[{i}/4] {name}" for i, name in enumerate(_bench.CASES, 1)]


def test_cases_selects_a_subset_in_order(capsys):
    doc, _ = run_json(capsys, "--cases", "reset,step")
    assert [c["case"] for c in doc["cases"]] == ["reset", "step"]


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
    assert main(["bench", "--smoke", "--cases", "empty,reset"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("case"))
    assert header.split() == ["case", "per", "arena", "time", "peer", "time", "ratio",
                              "target", "met"]
    row = next(line for line in out.splitlines() if line.startswith("reset "))
    assert row.split()[-1] in ("yes", "no")
    assert "<= 0.001" in row
