"""The command line: ``python -m arena info`` and argument errors."""
import json
import subprocess
import sys

import arena


def run(*args):
    return subprocess.run([sys.executable, "-m", "arena", *args], capture_output=True,
                          text=True, timeout=120)


def test_info_table():
    out = run("info")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "base page size" in text and "transparent huge pages" in text
    for flag in arena.Flags:
        assert flag.name in text
    for size, pool in arena.system_info()["hugetlb"].items():
        assert f"{pool['free']} free of {pool['total']}" in text
    if arena.system_info()["thp_mode"]:
        assert arena.system_info()["thp_mode"] in text


def test_info_json_matches_system_info():
    out = run("info", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    info = arena.system_info()
    assert data["page_size"] == info["page_size"]
    assert data["page_sizes"] == list(info["page_sizes"])
    assert set(data["flags"]) >= {f.name for f in arena.Flags}


def test_bad_arguments_one_line_error():
    out = run("frobnicate")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "invalid choice" in out.stderr and len(out.stderr.splitlines()) == 1
    for bad in (["demo", "--size", "-3"], ["bench", "--cases", "nope"], ["info", "--frob"]):
        out = run(*bad)
        assert out.returncode == 2 and len(out.stderr.splitlines()) == 1, (bad, out.stderr)
    out = run("--help")
    assert out.returncode == 0 and "info" in out.stdout
