"""Commit frontier, decommit, introspection; failures that must leave the arena unchanged."""
import errno

import numpy as np
import pytest

from arena import Arena, ArenaOptions
from helpers import check_child, rss, run_child, smaps

MiB = 1 << 20


def test_commit_frontier_grows_by_step():
    with ArenaOptions(1 << 30).with_commit_step(MiB).reserve() as a:
        assert a.committed == 0 and a.commit_step == MiB
        x = a.empty(10)
        assert a.committed == MiB
        y = a.empty(MiB)  # 8 MiB
        assert a.committed == 9 * MiB
        m = smaps(a.address, a.address + a.reserved)
        assert m["Size"] == a.reserved  # reservation intact, split in two mappings
        del x, y


def test_committed_memory_is_accessible_and_rest_is_not():
    out = run_child("""
        import ctypes, sys
        from arena import Arena
        a = Arena(1 << 24)
        a.commit(4096)
        ctypes.memset(a.address, 1, 4096)
        sys.stdout.write('ok\\n'); sys.stdout.flush()
        ctypes.memset(a.address + a.committed, 1, 1)
        print('not reached')
    """)
    assert out.stdout == "ok\n" and out.returncode == -11  # the PROT_NONE guard faults


def test_commit_and_decommit_rss():
    a = Arena(1 << 30)
    a.commit(256 * MiB)
    assert a.committed == 256 * MiB
    x = a.alloc(64 * MiB)
    x[:] = 1
    del x
    a.reset()
    touched = smaps(a.address, a.address + a.reserved)["Rss"]
    assert touched >= 64 * MiB
    a.decommit()
    assert a.committed == 0
    assert smaps(a.address, a.address + a.reserved)["Rss"] < MiB
    y = a.zeros(100)
    assert a.committed > 0 and y.sum() == 0


def test_decommit_keeps_used_pages():
    a = Arena(1 << 30)
    keep = a.full(1000, 9.0)
    a.commit(64 * MiB)
    m = a.mark()
    tmp = a.alloc(32 * MiB)
    tmp[:] = 1
    del tmp
    a.release(m)
    a.decommit()
    assert a.committed == 8192  # the page holding the last used byte stays
    assert keep.sum() == 9000.0


@pytest.mark.rlimit
def test_reset_decommit_drops_rss():
    a = Arena(1 << 30)
    x = a.alloc(128 * MiB)
    x[:] = 7
    base = rss()
    del x
    a.reset(decommit=True)
    assert a.committed == 0 and a.used == 0
    assert rss() < base - 100 * MiB
    z = a.zeros(1000, np.uint8)
    assert not z.any()


def test_commit_bounds():
    a = Arena(1 << 20)
    with pytest.raises(ValueError):
        a.commit(-1)
    with pytest.raises(ValueError):
        a.commit((1 << 20) + 1)
    with pytest.raises(TypeError):
        a.commit(1.0)
    a.commit(1 << 20)
    assert a.committed == 1 << 20


def test_introspection_and_repr():
    a = Arena(1 << 30)
    x = a.zeros(1000)
    s = a.stats()
    assert s["used"] == 8000 == a.used
    assert s["reserved"] == 1 << 30 == a.reserved
    assert s["available"] == a.reserved - a.used == a.available
    assert s["committed"] == a.committed >= a.used
    assert s["num_allocations"] == 1 and s["live_views"] == 1 and s["high_water"] == 8000
    assert s["address"] == a.address and a.page_size == 4096
    r = repr(a)
    assert "used=7.8 KiB" in r and "reserved=1.0 GiB" in r and "live_views=1" in r
    del x
    a.reset()
    assert a.high_water == 8000 and a.used == 0


@pytest.mark.rlimit
def test_commit_refused_by_rlimit_is_memoryerror_and_changes_nothing():
    out = check_child("""
        import resource, numpy as np
        import arena
        a = arena.ArenaOptions(1 << 34).with_commit_step(1 << 20).reserve()
        keep = a.full(1000, 3.0)
        used, committed = a.used, a.committed
        soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
        with open('/proc/self/status') as f:
            data = [int(l.split()[1]) * 1024 for l in f if l.startswith('VmData')][0]
        resource.setrlimit(resource.RLIMIT_DATA, (data + (64 << 20), hard))
        try:
            a.empty(1 << 30, np.uint8)
        except MemoryError as exc:
            assert isinstance(exc, arena.CommitError), type(exc)
            print('refused:', exc)
        else:
            raise SystemExit('commit was not refused')
        assert (a.used, a.committed) == (used, committed), (a.used, a.committed)
        assert keep.sum() == 3000.0
        x = a.zeros(1000)          # still usable within the limit
        assert x.sum() == 0 and a.used > used
        resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))
        y = a.empty(1 << 30, np.uint8)   # and fully usable once the limit is lifted
        y[::4096] = 1
        print('ok')
    """)
    assert "refused:" in out and out.rstrip().endswith("ok")


@pytest.mark.rlimit
def test_reserve_failure_is_memoryerror():
    out = check_child("""
        import resource, arena
        resource.setrlimit(resource.RLIMIT_AS, (1 << 32, resource.RLIM_INFINITY))
        try:
            arena.Arena(1 << 40)
        except MemoryError as exc:
            print('MemoryError', exc)
    """)
    assert out.startswith("MemoryError")


def test_failed_syscall_is_oserror_with_errno(tmp_path):
    with pytest.raises(IsADirectoryError) as info:
        ArenaOptions(1 << 20).with_file(tmp_path).reserve()
    assert info.value.errno == errno.EISDIR
    a = Arena(1 << 20)
    with pytest.raises(ValueError):
        a.flush(0, 1 << 21)
