"""The suite's own markers (pyproject.toml) are on the tests that need them.

``.ci/sanitize`` runs everything but ``rlimit`` tests under ASan, and ``-m "not root"`` is how
an unprivileged run leaves out what it cannot do: a resource-counting or privileged test that
forgot its marker breaks those runs. Read from the source (not from a collection), so the
check does not depend on which tests a run selects.
"""
import ast
import pathlib
import re

import pytest

TESTS = pathlib.Path(__file__).resolve().parent

NEEDS = {
    # Source that makes a test an ``rlimit`` one: it sets a resource limit, or counts mappings,
    # descriptors, resident, locked or committed memory, or the free pages of a hugetlb pool.
    "rlimit": re.compile(r"setrlimit\(|\bmap_count\(\)|\bfd_count\(\)|\bmaps\(\)|\bfds\(\)"
                         r"|\brss\(\)|['\"]Locked['\"]|Committed_AS|vm_hwm|free_hugepages"),
    # ... and a ``root`` one: it sets a hugetlb pool or mounts a file system.
    "root": re.compile(r"\bhugetlb_pool\(|['\"]mount['\"]|\btiny_tmpfs\b"),
}


def marks_of(decorators):
    """Names of the ``pytest.mark.<name>`` decorators (called or not) in ``decorators``."""
    found = set()
    for d in decorators:
        node = d.func if isinstance(d, ast.Call) else d
        text = ast.unparse(node)
        if text.startswith("pytest.mark."):
            found.add(text.split(".")[2])
    return found


def module_marks(tree):
    """Marks of ``pytestmark = pytest.mark.<name>`` (or a list of them) at module level."""
    found = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets):
            values = node.value.elts if isinstance(node.value, (ast.List, ast.Tuple)) else [
                node.value]
            found |= marks_of(values)
    return found


def scan_suite():
    """(test id, its marks, its source with the fixtures it uses) for every test function."""
    for path in sorted(TESTS.glob("test_*.py")):
        source = path.read_text()
        tree = ast.parse(source)
        inherited = module_marks(tree)
        fixtures = {node.name: ast.get_source_segment(source, node) for node in tree.body
                    if isinstance(node, ast.FunctionDef) and not node.name.startswith("test")}
        scopes = [(node, inherited) for node in tree.body]
        for node, marks in scopes:
            if isinstance(node, ast.ClassDef):
                scopes += [(n, marks | marks_of(node.decorator_list)) for n in node.body]
            elif isinstance(node, ast.FunctionDef) and node.name.startswith("test"):
                text = ast.get_source_segment(source, node)
                for arg in node.args.args:   # a fixture's own source counts (tiny_tmpfs)
                    text += fixtures.get(arg.arg, "") + arg.arg
                yield f"{path.name}::{node.name}", marks | marks_of(node.decorator_list), text


ALL = list(scan_suite())


def test_the_scan_finds_the_suite():
    names = {name for name, _, _ in ALL}
    assert len(names) == len(ALL) > 150
    assert {"test_faults.py::test_many_arenas_until_the_map_slots_run_out",
            "test_markers.py::test_the_scan_finds_the_suite"} <= names


@pytest.mark.parametrize("marker", NEEDS)
def test_resource_and_privileged_tests_carry_their_marker(marker):
    missing = [name for name, marks, text in ALL
               if NEEDS[marker].search(text) and marker not in marks]
    assert not missing, f"tests that need @pytest.mark.{marker}: {missing}"
    assert any(marker in marks for _, marks, _ in ALL)
