"""pytest plugin: every test of a run inside ``numpy_allocator()`` of one shared arena.

Loaded by ``.ci/numpy-suite`` with ``-p arena_plugin`` to run NumPy's own tests with the
arena serving NumPy's allocations; ``ARENA_SUITE_SIZE`` sets the reservation (default 1 TiB
of address space, committed as used) and ``ARENA_SUITE_THRESHOLD`` the small threshold.
"""
import os

import pytest

import arena

_ARENA = arena.ArenaOptions(int(os.environ.get("ARENA_SUITE_SIZE", 1 << 40))) \
    .with_small_threshold(int(os.environ.get("ARENA_SUITE_THRESHOLD", 1024))).reserve()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    with _ARENA.numpy_allocator():
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    with _ARENA.numpy_allocator():
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item):
    with _ARENA.numpy_allocator():
        yield


def pytest_terminal_summary(terminalreporter):
    s = _ARENA.stats()
    terminalreporter.write_line(
        f"arena: high water {s['high_water'] >> 20} MiB, committed {s['committed'] >> 20} MiB, "
        f"used {s['used'] >> 20} MiB, live views {s['live_views']}")
