"""Shared test helpers: run code in a child process, read /proc/self/smaps, set a hugetlb pool.

Test modules import these with ``from helpers import ...``: ``pythonpath = ["tests"]`` in
pyproject.toml puts this directory on ``sys.path`` under every ``--import-mode``. Child
processes that need one insert ``os.path.dirname(__file__)`` into their ``sys.path`` first.
Fixtures, hooks and the hypothesis profiles live in conftest.py.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap

import pytest

from arena._system import mapping_stats


def run_child(code: str, timeout: float = 120, env: dict | None = None):
    """Run ``code`` in a fresh interpreter; crash-prone scenarios go here so that a SIGBUS
    or SIGSEGV fails one test instead of the whole run."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def check_child(code: str, **kwargs) -> str:
    out = run_child(code, **kwargs)
    assert out.returncode == 0, (f"child exited with {out.returncode}\n"
                                 f"stdout:\n{out.stdout}\nstderr:\n{out.stderr}")
    return out.stdout


def close_after_run(*objs) -> None:
    """Close the arenas or Growables of a state machine at its teardown. After a failing
    step its traceback may still hold a view, so close() raises BufferError: the step's
    failure is what hypothesis reports, not that."""
    for obj in objs:
        try:
            obj.close()
        except BufferError:
            pass


def smaps(start: int, end: int, pid: str = "self") -> dict:
    """kB fields (in bytes), VmFlags and mapping count of ``[start, end)`` from smaps."""
    return mapping_stats(start, end - start, pid)


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGESIZE")


def map_count() -> int:
    with open("/proc/self/maps") as f:
        return sum(1 for _ in f)


@contextlib.contextmanager
def hugetlb_pool(size: int, pages: int):
    """Set the ``size`` hugetlb pool to ``pages`` pages (root only) and restore it after;
    skip when it cannot be set or does not fill."""
    path = f"/sys/kernel/mm/hugepages/hugepages-{size // 1024}kB/nr_hugepages"
    if not os.path.exists(path):
        pytest.skip(f"no {size}-byte hugetlb pages on this kernel")
    with open(path) as f:
        old = int(f.read())
    try:
        with open(path, "w") as f:
            f.write(str(old + pages))
    except OSError as exc:
        pytest.skip(f"cannot set the hugetlb pool ({exc}); run as root")
    try:
        with open(path) as f:
            got = int(f.read())
        if got < old + pages:
            pytest.skip(f"the kernel gave {got - old} of {pages} huge pages (fragmented memory)")
        yield pages
    finally:
        with open(path, "w") as f:
            f.write(str(old))
