"""A third-party module that cimports arena._core, built in a temporary folder."""
import numpy as np
import pytest

import arena
import arena.cython_example

pytestmark = pytest.mark.slow   # building the consumer module takes seconds


@pytest.fixture(scope="module")
def consumer(tmp_path_factory):
    return arena.cython_example.build(tmp_path_factory.mktemp("consumer"))


def test_alloc_raw_from_c(consumer):
    a = arena.Arena(1 << 30)
    a.zeros(3)
    off = consumer.fill_range(a, 1000)
    assert off == 64 and a.used == 64 + 8000 and a.num_allocations == 2
    v = a.view(off, 1000, np.float64)
    assert np.array_equal(v, np.arange(1000.0))


def test_alloc_raw_errors_propagate(consumer):
    a = arena.Arena(1 << 20)
    with pytest.raises(MemoryError):
        consumer.fill_range(a, 1 << 20)
    assert a.used == 0
    a.make_read_only()
    with pytest.raises(ValueError):
        consumer.fill_range(a, 10)


def test_nogil_bump_commits_through_the_slow_path(consumer):
    a = arena.ArenaOptions(1 << 30).with_commit_step(1 << 20).reserve()
    last = consumer.bump_nogil(a, 100000, 48)  # 4.8 MB: crosses the frontier four times
    assert last == (100000 - 1) * 48 and a.used == 100000 * 48
    assert a.committed == 5 << 20 and a.num_allocations == 100000


def test_nogil_bump_refuses_without_room(consumer):
    a = arena.Arena(1 << 20)
    with pytest.raises(MemoryError):
        consumer.bump_nogil(a, 1 << 20, 16)


def test_timers_run(consumer):
    a = arena.Arena(1 << 30)
    a.commit(1 << 30)
    per_call, _ = consumer.time_alloc_raw(a, 100000, 16)
    per_bump, _ = consumer.time_arena_bump(a, 100000, 16)
    assert per_call > 0 and per_bump > 0 and a.num_allocations == 200000
