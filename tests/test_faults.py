"""Fault injection, every scenario in a child process: the OS refuses memory, map slots, locked
pages or file growth. Each refusal must be the documented exception (MemoryError —
``CommitError`` — for the OS refusing memory, OSError with the errno otherwise), leave the
arena as it was (same used/committed/live views, same bytes) and usable once the pressure is
gone, with no SIGBUS/SIGSEGV and no mapping (or file descriptor) left behind.

Each child prints one ``fault <kind>`` line per fault it injected; the parent counts them.
"""
import os
import subprocess
import textwrap

import pytest

import arena
from helpers import check_child, hugetlb_pool

# Every test here exhausts a resource and counts the process's mappings and descriptors.
pytestmark = pytest.mark.rlimit

MiB = 1 << 20
HUGE = 2 * MiB

# Shared by every child: probes of the process from outside the arena, and the check that a
# refused call changed nothing.
PRELUDE = """
import ctypes, errno, gc, mmap, os, resource, sys
import numpy as np
import arena, arena._core   # loaded now: its .so mappings are not news later
from arena import ArenaOptions, CommitError, Flags, PageSize

def maps():
    with open('/proc/self/maps') as f:
        return sum(1 for _ in f)

OURS = ('memfd:arena', 'anon_hugepage', '/tmp/')

def footprint(*arenas):
    # What arena code could leak, read from /proc/self/maps without building big objects:
    # the number of PROT_NONE, memfd, hugetlb and temporary-file mappings outside the given
    # arenas, and the bytes mapped inside each arena's reservation (always exactly the
    # reservation, however the kernel splits it: a rolled-back commit that populated some
    # pages of a private mapping stays a separate mapping of the same range).
    spans = [(x.address, x.address + x.reserved) for x in arenas]
    inside = [0] * len(spans)
    outside = 0
    with open('/proc/self/maps') as f:
        for line in f:
            rng, perms = line.split(None, 2)[:2]
            lo, hi = (int(v, 16) for v in rng.split('-'))
            for i, (s, e) in enumerate(spans):
                if lo < e and hi > s:
                    inside[i] += min(hi, e) - max(lo, s)
                    break
            else:
                outside += perms.startswith('---') or (any(o in line for o in OURS)
                                                        and not line.rstrip().endswith('.so'))
    assert inside == [x.reserved for x in arenas], (inside, [x.reserved for x in arenas])
    return outside

def fds():
    return len(os.listdir('/proc/self/fd'))

def state(a):
    return (a.used, a.committed, a.num_allocations, a.live_views, a.levels, a.protection)

def refused(what, call, a=None, exc=MemoryError, err=None, keep=()):
    # ``call`` must raise ``exc`` (with errno ``err``) and change neither the arena (its
    # numbers, the bytes of the arrays in ``keep``) nor the mappings and fds of the process.
    ours = (a,) if a is not None else ()
    before = (state(a) if a is not None else None, footprint(*ours), fds(),
              [bytes(k) for k in keep])
    try:
        call()
    except exc as e:
        if err is not None:
            assert e.errno == err, (what, e.errno, e)
        gc.collect()
        after = (state(a) if a is not None else None, footprint(*ours), fds(),
                 [bytes(k) for k in keep])
        assert after == before, (what, before[:3], after[:3])
        print('fault', what, type(e).__name__)
        return e
    raise AssertionError(f'{what}: not refused')
"""


def child(code, prefix="", **kwargs):
    return check_child(PRELUDE + prefix + textwrap.dedent(code), **kwargs)


def faults(out):
    found = [line.split()[1] for line in out.splitlines() if line.startswith("fault ")]
    print("faults injected:", len(found), found)   # shown with pytest -s
    return found


def vm_data_limit_code(extra):
    return f"""
        with open('/proc/self/status') as f:
            data = [int(l.split()[1]) * 1024 for l in f if l.startswith('VmData')][0]
        soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
        resource.setrlimit(resource.RLIMIT_DATA, (data + {extra}, hard))
    """


def test_rlimit_data_refuses_commit_on_every_path():
    out = child("""
        a = ArenaOptions(1 << 34).with_commit_step(1 << 20).reserve()
        keep = a.full(1000, 3.0)
        p = ArenaOptions(1 << 34).with_flags(Flags.POPULATE).with_commit_step(1 << 20).reserve()
        pk = p.full(100, 5, dtype=np.int32)
        ro = ArenaOptions(1 << 32).reserve()
        ro.commit(512 << 20)
        ro.make_read_only()
        start_maps = maps()
    """ + vm_data_limit_code(64 << 20) + """
        G = 1 << 30
        refused('data-alloc', lambda: a.empty(G, np.uint8), a, err=errno.ENOMEM, keep=[keep])
        refused('data-zeros', lambda: a.zeros((G // 8,)), a, keep=[keep])
        refused('data-full', lambda: a.full(G // 8, 1.0), a, keep=[keep])
        refused('data-array', lambda: a.array(np.broadcast_to(np.int8(1), (G,))), a, keep=[keep])
        refused('data-commit', lambda: a.commit(G), a, keep=[keep])
        def numpy_call():
            with a.numpy_allocator():
                np.empty(G, np.uint8)
        refused('data-numpy-handler', numpy_call, a, keep=[keep])
        refused('data-populate', lambda: p.alloc(G), p, keep=[pk])
        refused('data-make-mut', ro.make_mut, ro)        # RO -> RW of 512 MiB is charged
        assert ro.protection == arena.Protection.READ
        assert ctypes.string_at(ro.address, 10) == bytes(10)   # still readable
        m = a.mark()
        refused('data-in-scope', lambda: a.alloc(G), a, keep=[keep])
        a.release(m)
        # Still usable within the limit, and fully once it is lifted.
        x = a.zeros(1000)
        assert x.sum() == 0 and keep.sum() == 3000.0
        resource.setrlimit(resource.RLIMIT_DATA, (resource.RLIM_INFINITY,) * 2)
        y = a.alloc(G); y[::1 << 20] = 1
        z = p.alloc(64 << 20)
        ro.make_mut()
        assert int(y.sum()) == G >> 20 and pk.sum() == 500
        del x, y, z, keep, pk
        for ar in (a, p, ro):
            ar.close()
        assert maps() <= start_maps - 3, (maps(), start_maps)   # every arena unmapped
    """)
    assert len(faults(out)) == 9 and all(f.startswith("data-") for f in faults(out))


def test_rlimit_as_refuses_the_reservation_without_leaks(tmp_path):
    out = child(f"""
        resource.setrlimit(resource.RLIMIT_AS, (1 << 33, resource.RLIM_INFINITY))
        T = 1 << 40
        # Each says which limit refused: ENOMEM alone reads "Cannot allocate memory" for
        # RLIMIT_AS and vm.max_map_count alike.
        for e in (refused('as-plain', lambda: arena.Arena(T)),
                  refused('as-shared', lambda: ArenaOptions(T).with_flags(Flags.SHARED)
                          .reserve()),
                  refused('as-thp', lambda: ArenaOptions(T)
                          .with_flags(Flags.TRANSPARENT_HUGE_PAGES).reserve()),
                  refused('as-file', lambda: ArenaOptions(T)
                          .with_file({str(tmp_path / 'f')!r}).reserve())):
            assert 'RLIMIT_AS' in str(e) and 'max_map_count' not in str(e), e
        if {HUGE} in arena.page_sizes():
            refused('as-hugetlb', lambda: ArenaOptions(T).with_page_size({HUGE}).reserve())
        a = arena.Arena(1 << 30)          # what fits still works
        x = a.zeros(10); assert x.sum() == 0
    """)
    assert len(faults(out)) >= 4


@pytest.mark.root
def test_hugetlb_pool_exhausted_mid_commit():
    if HUGE not in arena.page_sizes():
        pytest.skip("no 2 MiB hugetlb pages")
    with hugetlb_pool(HUGE, 4):
        out = child("""
            F = '/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages'
            def free():
                with open(F) as f:
                    return int(f.read())
            start = free()
            assert start >= 4
            opts = ArenaOptions(1 << 34).with_page_size(PageSize.SIZE_2M)
            # Another arena holds one page: an 8 MiB commit step (4 pages) populates three
            # and then finds the pool empty.
            thief = opts.reserve(); t = thief.alloc(1); t[:] = 1
            a = opts.with_commit_step(8 << 20).reserve()
            refused('hugetlb-alloc', lambda: a.alloc(1), a)
            assert free() == start - 1, free()             # the three pages went back
            refused('hugetlb-commit', lambda: a.commit(1), a)
            def numpy_call():
                with a.numpy_allocator():
                    np.ones(1024)  # 8 KiB: the arena's heap, not NumPy's small-block allocator
            refused('hugetlb-numpy-handler', numpy_call, a)
            s = opts.with_flags(Flags.SHARED).with_commit_step(8 << 20).reserve()
            refused('hugetlb-shared', lambda: s.alloc(1), s)
            # A shared arena keeps the pages its failed fallocate got (another process may
            # be growing the memfd over them) until decommit gives them back.
            assert start - 4 <= free() <= start - 1, free()
            s.decommit()
            assert free() == start - 1, free()
            # Committed while inaccessible (nothing populated), then made readable: the
            # populate in make_mut fails; the protection stays NONE, no SIGBUS, and decommit
            # gives back what the attempt populated.
            n = opts.with_commit_step(8 << 20).map_none()
            n.commit(1)
            refused('hugetlb-make-mut', n.make_mut, n)
            assert n.protection == arena.Protection.NONE
            n.decommit()
            assert free() == start - 1, free()
            # Once the thief lets go, the same calls succeed.
            del t; thief.reset(decommit=True)
            x = a.alloc(8 << 20); x[:] = 7
            assert free() == start - 4 and int(x[-1]) == 7
            del x; a.reset(decommit=True)
            y = s.alloc(1 << 20); y[:] = 1; del y; s.reset(decommit=True)
            assert free() == start, (free(), start)
        """)
        assert len(faults(out)) == 5


# Fill the process's map slots (vm.max_map_count) one at a time: in a PROT_NONE region, give
# page i protection READ (i even) or READ|WRITE (i odd), in order, so that each page becomes
# one more mapping. No sysctl is touched, so no other process on the machine is affected.
FILL_MAPS = """
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                      ctypes.c_int, ctypes.c_long]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
P = mmap.PAGESIZE
LIMIT = int(open('/proc/sys/vm/max_map_count').read())
N = LIMIT + 64
filler = libc.mmap(None, N * P, 0, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | 0x4000, -1, 0)
assert filler not in (None, ctypes.c_void_p(-1).value)
split, extra = [], []

def fill():
    # Take every free map slot: the kernel lets mprotect split a mapping while the count is
    # below vm.max_map_count and mmap add one while it is not above it.
    while True:
        i = len(split)
        assert i < N
        if libc.mprotect(filler + i * P, P, 1 + (i & 1)) != 0:
            assert ctypes.get_errno() == errno.ENOMEM
            break
        split.append(i)
    while True:
        p = libc.mmap(None, P, 1 + (len(extra) & 1), mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS,
                      -1, 0)
        if p in (None, ctypes.c_void_p(-1).value):
            return
        extra.append(p)

def free_slots(n):
    for _ in range(n):   # the last page merges back into the PROT_NONE tail
        if extra:
            libc.munmap(extra.pop(), P)
        else:
            libc.mprotect(filler + split.pop() * P, P, 0)
"""


@pytest.mark.slow
def test_map_count_exhausted_gives_memoryerror_never_a_crash(tmp_path):
    out = child(prefix=FILL_MAPS, code=f"""
        baseline = maps()
        ready = arena.Arena(1 << 24)       # made before the slots run out
        keep = ready.full(1000, 2.0)
        ready.commit(8 << 20)
        used_probe = arena.Arena(1 << 24)
        big = used_probe.alloc(3 * P)
        pp = arena.Arena(1 << 24)
        pp.commit(4 << 20)
        fill()
        e = refused('maps-reserve', lambda: arena.Arena(1 << 20))
        assert 'vm.max_map_count' in str(e) and 'RLIMIT' not in str(e), e
        refused('maps-reserve-shared', lambda: ArenaOptions(1 << 20).with_flags(Flags.SHARED)
                .reserve())
        refused('maps-reserve-thp', lambda: ArenaOptions(1 << 24)
                .with_flags(Flags.TRANSPARENT_HUGE_PAGES).reserve())
        refused('maps-reserve-file', lambda: ArenaOptions(1 << 20)
                .with_file({str(tmp_path / 'f')!r}).reserve())
        # Calls that need no new mapping still work at the limit.
        m = ready.mark()
        x = ready.zeros(100)
        del x
        ready.release(m)
        # A protection change needs no new mapping unless the kernel merged the committed
        # range with a neighbouring mapping of the same kind: then it is refused, unchanged.
        for change in (pp.make_read_only, pp.make_none, pp.make_exec, pp.make_mut):
            before = (state(pp), footprint(pp))
            try:
                change()
            except MemoryError as e:
                assert (state(pp), footprint(pp)) == before
                print('fault maps-protect', type(e).__name__)
        # A new arena (one PROT_NONE mapping) when a slot is free; then none is left for
        # its first commit (which splits the mapping).
        free_slots(1)
        a = arena.Arena(1 << 24)
        fill()
        e = refused('maps-commit', lambda: a.zeros(10), a)
        assert 'vm.max_map_count' in str(e), e
        refused('maps-commit-explicit', lambda: a.commit(1), a)
        def numpy_call():
            with a.numpy_allocator():
                np.ones(1024)  # 8 KiB: the arena's heap, not NumPy's small-block allocator
        refused('maps-numpy-handler', numpy_call, a)
        # Decommitting part of a committed range at the limit: never a crash; the arena
        # stays consistent (what it keeps stays readable).
        del big
        used_probe.reset()
        b = used_probe.alloc(1)
        used_probe.decommit()
        assert used_probe.committed == P and used_probe.view(0, 1, np.uint8).size == 1
        assert keep.sum() == 2000.0
        free_slots(2)
        x = a.zeros(10)                    # freed slots make the commit work
        assert x.sum() == 0 and a.used == 80
        del x, b, keep
        for ar in (a, ready, used_probe, pp):
            ar.close()
        free_slots(len(extra))
        del split[:]
        libc.munmap(filler, N * P)
        assert maps() <= baseline, (maps(), baseline)  # arenas and filler all gone
    """)
    assert len(faults(out)) >= 7


def test_many_arenas_until_the_map_slots_run_out():
    # At the limit even reading /proc needs mappings, so nothing is probed there: a mapping
    # or descriptor leaked by a refused call would still be there once every arena is closed.
    out = child("""
        baseline, baseline_fds = maps(), fds()
        arenas, n, refusals = [None] * 70000, 0, 0   # no list growth at the limit
        while refusals < 3:
            try:
                a = arena.Arena(1 << 16)
            except MemoryError:
                refusals += 1
                print('fault maps-many-reserve MemoryError')
                continue
            try:
                a.commit(1)
            except MemoryError:
                assert a.committed == 0 and a.used == 0
                refusals += 1
                print('fault maps-many-commit MemoryError')
            arenas[n] = a
            n += 1
        for i in range(n):           # no slice: at the limit a large list cannot be mapped
            arenas[i].close()
        del arenas, a
        gc.collect()
        assert maps() <= baseline + 2, (maps(), baseline)
        assert fds() == baseline_fds, (fds(), baseline_fds)
        print('arenas', n)
    """, timeout=300, env={"PYTHONMALLOC": "malloc"})
    # PYTHONMALLOC=malloc: CPython's own small-object arenas are new mappings too and would
    # fail near the limit; glibc's malloc falls back to brk, which adds none.
    assert len(faults(out)) == 3
    assert int(out.split("arenas")[-1]) > 20000


def test_mlock_refused_by_memlock_limit_for_an_unprivileged_process():
    out = child("""
        a = ArenaOptions(1 << 30).with_commit_step(1 << 20).reserve()
        a.commit(64 << 20)
        keep = a.full(100, 4.0)
        locked = ArenaOptions(1 << 30).with_flags(Flags.LOCKED).with_commit_step(256 << 10)
        small = locked.reserve()
        s = small.full(100, 6, dtype=np.int16)   # 256 KiB locked, within the limit
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (1 << 20, 1 << 20))
        sys.path.insert(0, %r)
        from helpers import smaps                # imported while root can read it
        if os.geteuid() == 0:
            os.setuid(65534)                     # root ignores RLIMIT_MEMLOCK
        def locked_bytes(x):
            return smaps(x.address, x.address + x.reserved).get('Locked', 0)
        refused('mlock-lock', a.lock, a, err=errno.ENOMEM, keep=[keep])
        assert locked_bytes(a) == 0
        b = locked.reserve()
        refused('mlock-locked-alloc', lambda: b.alloc(8 << 20), b)
        refused('mlock-locked-commit', lambda: b.commit(8 << 20), b)
        def numpy_call():
            with b.numpy_allocator():
                np.empty(8 << 20, np.uint8)
        refused('mlock-numpy-handler', numpy_call, b)
        refused('mlock-grow-locked', lambda: small.alloc(4 << 20), small, keep=[s])
        assert locked_bytes(small) == 256 << 10 and locked_bytes(b) == 0
        x = b.zeros(1000)                        # within the limit: works, and is locked
        assert x.sum() == 0 and locked_bytes(b) == b.committed
        c = ArenaOptions(1 << 30).with_commit_step(256 << 10).reserve()
        c.commit(1)
        c.lock()                                 # what fits in the limit still locks
        assert locked_bytes(c) == 256 << 10 and keep.sum() == 400.0
    """ % os.path.dirname(__file__))
    assert len(faults(out)) == 5


def test_file_growth_refused_by_rlimit_fsize_is_oserror(tmp_path):
    path = tmp_path / "grow"
    out = child(f"""
        a = (ArenaOptions(1 << 26).with_file({str(path)!r}).with_flags(Flags.SHARED)
             .with_commit_step(1 << 16).reserve())
        keep = a.full(1000, 9.0)
        size = os.path.getsize({str(path)!r})
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, resource.RLIM_INFINITY))
        refused('fsize-alloc', lambda: a.alloc(2 << 20), a, exc=OSError, err=errno.EFBIG,
                keep=[keep])
        e = refused('fsize-commit', lambda: a.commit(2 << 20), a, exc=OSError, keep=[keep])
        assert not isinstance(e, MemoryError)
        assert os.path.getsize({str(path)!r}) == size
        x = a.zeros(1000)                         # below the limit: fine
        resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)
        y = a.alloc(4 << 20); y[:] = 1
        a.flush()
        assert keep.sum() == 9000.0 and os.path.getsize({str(path)!r}) >= 4 << 20
    """)
    assert faults(out) == ["fsize-alloc", "fsize-commit"]


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 1 MiB tmpfs (root only): a full file system under a file-backed arena."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


@pytest.mark.root
def test_full_filesystem_with_populate_is_memoryerror(tiny_tmpfs):
    """With Flags.POPULATE the pages are backed at commit, so a full file system is a
    CommitError there and the file shrinks back (without it, see test_security: SIGBUS on
    first touch is a documented limit of file-backed memory)."""
    path = tiny_tmpfs / "pop"
    out = child(f"""
        a = (ArenaOptions(16 << 20).with_file({str(path)!r})
             .with_flags(Flags.SHARED | Flags.POPULATE)
             .with_commit_step(1 << 12).reserve())
        x = a.alloc(512 << 10); x[:] = 3
        refused('enospc-populate', lambda: a.alloc(1 << 20), a, keep=[x])
        assert os.path.getsize({str(path)!r}) == 512 << 10
        y = a.alloc(64 << 10); y[:] = 1            # what the file system has left works
        assert int(x.sum()) == 3 * (512 << 10)
    """)
    assert faults(out) == ["enospc-populate"]
