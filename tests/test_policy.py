"""Memory-policy flags, each checked from outside the arena: /proc/self/smaps fields and
VmFlags, RSS, and the hugetlb pool's counters."""
import os

import pytest

import arena
from arena import ArenaOptions, Flags, PageSize
from helpers import check_child, hugetlb_pool, smaps

MiB = 1 << 20


def arena_smaps(a):
    return smaps(a.address, a.address + a.reserved)


def committed_smaps(a):
    return smaps(a.address, a.address + a.committed)


@pytest.mark.skipif(arena.system_info()["thp_mode"] not in ("always", "madvise"),
                    reason="transparent huge pages are off on this kernel")
def test_transparent_huge_pages_back_touched_memory():
    a = ArenaOptions(1 << 30).with_flags(Flags.TRANSPARENT_HUGE_PAGES).reserve()
    assert a.address % (2 * MiB) == 0
    assert "hg" in arena_smaps(a)["VmFlags"]
    x = a.alloc(64 * MiB)
    x[:] = 1
    huge = arena_smaps(a)["AnonHugePages"]
    assert huge >= 32 * MiB, f"only {huge} bytes on huge pages"
    plain = ArenaOptions(1 << 30).reserve()
    y = plain.alloc(64 * MiB)
    y[:] = 1
    if arena.system_info()["thp_mode"] == "madvise":
        assert arena_smaps(plain)["AnonHugePages"] == 0
    assert "hg" not in arena_smaps(plain)["VmFlags"]


def test_populate_prefaults_at_commit():
    a = ArenaOptions(1 << 30).with_flags(Flags.POPULATE).with_commit_step(32 * MiB).reserve()
    a.commit(1)
    assert a.committed == 32 * MiB
    assert committed_smaps(a)["Rss"] == 32 * MiB
    lazy = ArenaOptions(1 << 30).with_commit_step(32 * MiB).reserve()
    lazy.commit(1)
    assert committed_smaps(lazy)["Rss"] == 0


@pytest.mark.rlimit
def test_locked_flag_and_lock_unlock():
    a = ArenaOptions(1 << 30).with_flags(Flags.LOCKED).with_commit_step(MiB).reserve()
    a.commit(2 * MiB)
    m = committed_smaps(a)
    assert m["Locked"] == 2 * MiB and "lo" in m["VmFlags"]
    a.commit(3 * MiB)  # locked as committed
    assert committed_smaps(a)["Locked"] == 3 * MiB
    b = ArenaOptions(1 << 30).with_commit_step(MiB).reserve()
    b.commit(MiB)
    assert committed_smaps(b)["Locked"] == 0
    b.lock()
    assert committed_smaps(b)["Locked"] == MiB
    b.commit(2 * MiB)
    assert committed_smaps(b)["Locked"] == 2 * MiB
    b.unlock()
    assert committed_smaps(b)["Locked"] == 0
    b.commit(3 * MiB)
    assert committed_smaps(b)["Locked"] == 0


@pytest.mark.root
@pytest.mark.rlimit
def test_lock_beyond_memlock_limit_is_memoryerror():
    out = check_child("""
        import os, resource
        import arena
        a = arena.ArenaOptions(1 << 30).with_commit_step(1 << 20).reserve()
        a.commit(64 << 20)
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (1 << 20, 1 << 20))
        os.setuid(65534)  # root ignores RLIMIT_MEMLOCK
        try:
            a.lock()
        except MemoryError as exc:
            print('refused', type(exc).__name__)
        assert a.committed == 64 << 20
        x = a.zeros(10); assert x.sum() == 0
        b = arena.ArenaOptions(1 << 30).with_flags(arena.Flags.LOCKED).reserve()
        try:
            b.alloc(8 << 20)
        except MemoryError as exc:
            print('refused', type(exc).__name__)
        assert b.used == 0 and b.committed == 0
    """)
    assert out.split() == ["refused", "CommitError", "refused", "CommitError"]


@pytest.mark.parametrize("flag,vmflag", [(Flags.NO_CORE_DUMP, "dd"), (Flags.NO_RESERVE, "nr"),
                                         (Flags.SEQUENTIAL, "sr"),
                                         (Flags.RANDOM_ACCESS, "rr")])
def test_flags_show_in_vmflags(flag, vmflag):
    a = ArenaOptions(1 << 30).with_flags(flag).reserve()
    a.commit(MiB)
    assert vmflag in committed_smaps(a)["VmFlags"]
    assert vmflag in arena_smaps(a)["VmFlags"]
    plain = ArenaOptions(1 << 30).reserve()
    plain.commit(MiB)
    assert vmflag not in committed_smaps(plain)["VmFlags"]


def test_stack_is_accepted():
    with ArenaOptions(1 << 20).with_flags(Flags.STACK).reserve() as a:
        x = a.zeros(10)
        assert x.sum() == 0
        del x


@pytest.mark.rlimit
def test_default_commit_is_charged_no_reserve_is_not():
    out = check_child("""
        import arena
        def committed_as():
            for line in open('/proc/meminfo'):
                if line.startswith('Committed_AS'):
                    return int(line.split()[1]) * 1024
        plain = arena.ArenaOptions(1 << 34).reserve()
        free = arena.ArenaOptions(1 << 34).with_flags(arena.Flags.NO_RESERVE).reserve()
        before = committed_as(); free.commit(1 << 30); after_free = committed_as()
        plain.commit(1 << 30); after_plain = committed_as()
        print(after_free - before, after_plain - after_free)
    """)
    no_reserve_delta, plain_delta = map(int, out.split())
    assert plain_delta >= 900 * MiB  # the mprotect commit is charged...
    assert no_reserve_delta < 200 * MiB  # ...and NO_RESERVE is not (other processes drift)


def test_placement_hint_and_map_fixed():
    probe = arena.Arena(64 * MiB)
    free_addr = probe.address
    probe.close()
    a = ArenaOptions(64 * MiB).with_address(free_addr).reserve()
    assert a.address == free_addr  # the hint is taken when the range is free
    b = ArenaOptions(64 * MiB).with_address(free_addr).reserve()
    assert b.address != free_addr  # ...and only a hint when it is not
    a.close()
    c = (ArenaOptions(64 * MiB).with_address(free_addr)
         .with_unsafe_flags(arena.UnsafeFlags.MAP_FIXED).reserve())
    assert c.address == free_addr
    with pytest.raises(ValueError):
        ArenaOptions(MiB).with_unsafe_flags(arena.UnsafeFlags.MAP_FIXED).reserve()


def test_huge_pages_unavailable_size_is_valueerror():
    offered = arena.page_sizes()
    missing = [p for p in PageSize if p not in offered]
    with pytest.raises(ValueError, match="offers"):
        ArenaOptions(1 << 30).with_page_size(missing[0])


HUGE = 2 * MiB


@pytest.mark.root
@pytest.mark.rlimit
def test_hugetlb_commit_exhaustion_is_memoryerror_never_sigbus():
    if HUGE not in arena.page_sizes():
        pytest.skip("no 2 MiB hugetlb pages")
    with hugetlb_pool(HUGE, 8):
        out = check_child(f"""
            import numpy as np, arena
            from arena import ArenaOptions, PageSize, Flags
            def free():
                return int(open('/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages').read())
            start = free()
            a = ArenaOptions(1 << 34).with_page_size(PageSize.SIZE_2M).reserve()
            assert a.page_size == {HUGE} and a.reserved % {HUGE} == 0
            assert a.commit_step % {HUGE} == 0
            x = a.alloc(6 << 20); x[:] = 7
            assert free() == start - 3
            used, committed = a.used, a.committed
            try:
                a.alloc(64 << 20)
            except MemoryError as exc:
                print('refused', type(exc).__name__)
            assert (a.used, a.committed) == (used, committed)
            assert free() == start - 3, free()      # the populated pages were given back
            assert int(x.sum()) == 7 * (6 << 20)
            y = a.alloc(4 << 20); y[:] = 1          # what is left of the pool still works
            assert free() == start - 5
            b = ArenaOptions(1 << 30).with_flags(Flags.HUGE_PAGES).reserve()
            assert b.page_size == {HUGE}
            del x, y; a.reset(decommit=True)
            assert free() == start, (free(), start)
            print('ok')
        """)
        assert out.split() == ["refused", "CommitError", "ok"]


@pytest.mark.root
def test_hugetlb_pages_show_in_smaps():
    if HUGE not in arena.page_sizes():
        pytest.skip("no 2 MiB hugetlb pages")
    with hugetlb_pool(HUGE, 4):
        out = check_child(f"""
            import sys; sys.path.insert(0, {os.path.dirname(__file__)!r})
            from helpers import smaps
            import arena
            a = arena.ArenaOptions(1 << 30).with_page_size({HUGE}).reserve()
            x = a.alloc(4 << 20); x[:] = 1
            m = smaps(a.address, a.address + a.committed)
            print(m['KernelPageSize'] // m['mappings'], m['Private_Hugetlb'])
        """)
        assert out.split() == [str(HUGE), str(4 * MiB)]


@pytest.mark.slow
@pytest.mark.root
@pytest.mark.rlimit
def test_hugetlb_1g_when_a_page_can_be_had():
    giant = 1 << 30
    if giant not in arena.page_sizes():
        pytest.skip("no 1 GiB hugetlb pages")
    with hugetlb_pool(giant, 1):
        out = check_child("""
            import arena
            a = arena.ArenaOptions(1 << 34).with_page_size(arena.PageSize.SIZE_1G).reserve()
            x = a.alloc(1 << 20); x[:] = 3
            try:
                a.alloc(1 << 30)
            except MemoryError:
                print('refused')
            print(a.page_size, a.committed, int(x[-1]))
        """)
        assert out.split() == ["refused", str(giant), str(giant), "3"]


@pytest.mark.rlimit
def test_decommit_keeps_the_rest_locked():
    a = ArenaOptions(1 << 30).with_flags(Flags.LOCKED).with_commit_step(MiB).reserve()
    x = a.alloc(MiB + 1)
    a.commit(8 * MiB)
    a.decommit()
    assert a.committed == MiB + 4096
    assert committed_smaps(a)["Locked"] == MiB + 4096
    del x
