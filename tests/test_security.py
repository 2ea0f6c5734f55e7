"""The guarantees of README "Security", each checked from outside the arena (/proc/self/maps,
smaps VmFlags, a real core dump), and the documented limits that stay outside them."""
import ctypes
import resource

import numpy as np
import pytest

import arena
import arena._core  # noqa: F401  (its .so mappings are not news later)
from arena import Arena, ArenaOptions, Flags, Protection, UnsafeFlags
from helpers import hugetlb_pool, map_count, run_child

MiB = 1 << 20
HUGE = 2 * MiB


def mappings(a):
    """(perms, VmFlags) of every mapping inside the arena's reservation, from smaps."""
    found, cur = [], None
    lo_a, hi_a = a.address, a.address + a.reserved
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()
            if "-" in head[0] and ":" not in head[0]:
                lo, hi = (int(x, 16) for x in head[0].split("-"))
                cur = [head[1], set()] if lo < hi_a and hi > lo_a else None
                if cur is not None:
                    found.append(cur)
            elif cur is not None and head[0] == "VmFlags:":
                cur[1].update(head[1:])
    return found


def variants(tmp_path):
    yield "plain", ArenaOptions(64 * MiB)
    yield "shared", ArenaOptions(64 * MiB).with_flags(Flags.SHARED)
    yield "thp", ArenaOptions(64 * MiB).with_flags(Flags.TRANSPARENT_HUGE_PAGES)
    yield "file", ArenaOptions(64 * MiB).with_file(tmp_path / "f")
    yield "populate", ArenaOptions(64 * MiB).with_flags(Flags.POPULATE | Flags.NO_RESERVE)
    if HUGE in arena.page_sizes():
        yield "hugetlb", ArenaOptions(64 * MiB).with_page_size(HUGE)


def lifecycle(a):
    """Every operation that maps, commits, decommits, protects or locks: yields after each."""
    yield "reserve"
    if a.page_size == HUGE:
        return  # committing hugetlb memory needs a pool: test_no_core_dump_hugetlb does it
    x = a.zeros(1000)
    yield "allocate"
    a.commit(8 * MiB)
    yield "commit"
    with a.numpy_allocator():
        y = np.ones(1000)
    yield "numpy allocator"
    del x, y
    a.decommit()
    yield "decommit"
    a.make_read_only()
    yield "make_read_only"
    a.commit(8 * MiB)
    yield "commit while read-only"
    a.make_exec()
    yield "make_exec"
    a.make_none()
    yield "make_none"
    a.make_mut()
    yield "make_mut"
    a.lock()
    yield "lock"
    a.unlock()
    a.reset(decommit=True)
    yield "reset(decommit=True)"


# -- NO_CORE_DUMP ------------------------------------------------------------------------------

def test_no_core_dump_on_every_mapping_through_the_lifecycle(tmp_path):
    for name, opts in variants(tmp_path):
        a = opts.with_flags(Flags.NO_CORE_DUMP).reserve()
        plain = opts.reserve() if name not in ("file", "hugetlb") else None
        for step in lifecycle(a):
            maps = mappings(a)
            assert maps and all("dd" in flags for _, flags in maps), (name, step, maps)
            assert sum(1 for _ in maps) >= 1
        if plain is not None:
            plain.commit(MiB)
            assert not any("dd" in flags for _, flags in mappings(plain)), name
            plain.close()
        a.close()


@pytest.mark.root
def test_no_core_dump_hugetlb_committed():
    if HUGE not in arena.page_sizes():
        pytest.skip("no 2 MiB hugetlb pages")
    with hugetlb_pool(HUGE, 2):
        a = ArenaOptions(64 * MiB).with_page_size(HUGE).with_flags(Flags.NO_CORE_DUMP).reserve()
        x = a.alloc(HUGE)
        x[:] = 1
        assert all("dd" in flags for _, flags in mappings(a))
        del x
        a.reset(decommit=True)
        a.close()


@pytest.mark.rlimit
def test_no_core_dump_keeps_arena_bytes_out_of_a_real_core_file(tmp_path):
    """A process aborts with a NO_CORE_DUMP arena (private and shared) and a plain one: the
    plain arena's bytes are in the core file, the others' are not. The patterns are
    computed in place (``out=``), so they never exist outside the arenas."""
    with open("/proc/sys/kernel/core_pattern") as f:
        pattern = f.read().strip()
    if pattern.startswith("|") or "/" in pattern:
        pytest.skip(f"core files go to {pattern!r}, not to the working directory")
    if resource.getrlimit(resource.RLIMIT_CORE)[1] == 0:
        pytest.skip("core dumps are disabled by the hard limit")
    out = run_child(f"""
        import os, resource, numpy as np, arena
        from arena import ArenaOptions, Flags
        os.chdir({str(tmp_path)!r})
        resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY,) * 2)
        def fill(a, k, c):
            x = a.alloc(1 << 16)  # the pattern is computed in place: it exists nowhere else
            np.multiply(np.arange(1 << 16, dtype=np.uint8), k, out=x)
            np.add(x, c, out=x)
            return x
        secret = ArenaOptions(1 << 24).with_flags(Flags.NO_CORE_DUMP).reserve()
        shared = ArenaOptions(1 << 24).with_flags(Flags.NO_CORE_DUMP | Flags.SHARED).reserve()
        plain = arena.Arena(1 << 24)
        keep = fill(secret, 7, 13), fill(shared, 13, 3), fill(plain, 11, 5)
        os.abort()
    """)
    assert out.returncode == -6, out.stderr
    cores = [p for p in tmp_path.iterdir() if p.name.startswith(pattern.split("%")[0])]
    if not cores:
        pytest.skip("no core file was written (core dumps disabled for this process?)")
    data = cores[0].read_bytes()

    def window(k, c):
        return ((np.arange(256) * k + c) % 256).astype(np.uint8).tobytes()

    assert window(11, 5) in data           # the control: arena bytes do reach core files
    assert window(7, 13) not in data       # ...except with NO_CORE_DUMP, private
    assert window(13, 3) not in data       # ...and shared


# -- W^X ---------------------------------------------------------------------------------------

def writable_and_executable(a):
    return [p for p, _ in mappings(a) if "w" in p and "x" in p]


@pytest.mark.rlimit
def test_w_xor_x_on_every_path_without_jit(tmp_path):
    before = map_count()
    for name, opts in variants(tmp_path):
        with pytest.raises(PermissionError):
            opts.map_exec_mut()
        for prot in (Protection.READ_WRITE_EXECUTE, Protection.WRITE | Protection.EXECUTE):
            with pytest.raises(PermissionError):
                Arena(opts, prot)
        with pytest.raises(PermissionError):
            opts.with_unsafe_flags(UnsafeFlags.MAP_FIXED).with_address(None).map_exec_mut()
        for maker in (opts.reserve, opts.map_exec, opts.map, opts.map_none):
            a = maker()
            prot = a.protection
            for step in lifecycle(a) if maker is opts.reserve else ["made"]:
                assert not writable_and_executable(a), (name, step)
                with pytest.raises(PermissionError):
                    a.make_exec_mut()
                assert not writable_and_executable(a), (name, step)
            if maker is not opts.reserve:
                assert a.protection == prot
                a.commit(MiB) if name != "hugetlb" else None
                assert not writable_and_executable(a)
            a.close()
    assert map_count() <= before + 2   # refused constructions left no mapping behind


def test_executable_arenas_hand_out_no_writable_memory():
    a = ArenaOptions(MiB).map_exec()
    with pytest.raises(ValueError):
        a.zeros(10)                          # no allocations while not writable
    b = Arena(MiB)
    code = b.array(np.frombuffer(b"\xc3", np.uint8))
    with pytest.raises(BufferError):
        b.make_exec()                        # a writable view is alive
    off = b.offset_of(code)
    del code
    b.make_exec()
    v = b.view(off, 1, np.uint8)
    assert not v.flags.writeable
    with pytest.raises(ValueError):
        v.flags.writeable = True
    with pytest.raises(ValueError, match="readable and writable"):
        with b.numpy_allocator():   # refused at the door: the arena is not writable
            np.ones(1024)
    with pytest.raises(BufferError):
        b.make_none()                        # read-only views block make_none
    del v


def test_jit_only_through_unsafe_flags():
    with pytest.raises(TypeError):
        ArenaOptions(MiB).with_flags(UnsafeFlags.JIT)
    with pytest.raises(TypeError):
        ArenaOptions(MiB).with_unsafe_flags(Flags.POPULATE)   # same bit value as JIT
    a = ArenaOptions(MiB).with_flags(2).reserve()            # 2 is Flags.POPULATE here
    assert a.options.flags == Flags.POPULATE and not a.options.unsafe_flags
    with pytest.raises(PermissionError):
        a.make_exec_mut()
    j = ArenaOptions(MiB).with_unsafe_flags(UnsafeFlags.JIT).reserve()
    j.commit(4096)
    j.make_exec_mut()
    assert writable_and_executable(j) and j.protection == Protection.READ_WRITE_EXECUTE


# -- MAP_FIXED -----------------------------------------------------------------------------------

def test_placement_replaces_nothing_without_map_fixed():
    victim = Arena(16 * MiB)
    data = victim.full(1000, 42, dtype=np.int64)
    for opts in (ArenaOptions(16 * MiB).with_address(victim.address),
                 ArenaOptions(16 * MiB).with_address(victim.address).with_flags(1)):  # SHARED
        a = opts.reserve()
        assert a.address != victim.address and (data == 42).all()
        a.close()
    with pytest.raises(ValueError):           # MAP_FIXED needs an address
        ArenaOptions(MiB).with_unsafe_flags(UnsafeFlags.MAP_FIXED).reserve()
    with pytest.raises(TypeError):            # and cannot come in through Flags
        ArenaOptions(MiB).with_flags(UnsafeFlags.MAP_FIXED)
    # With the unsafe flag the address is binding: documented to replace what is there.
    out = run_child("""
        import numpy as np, arena
        from arena import ArenaOptions, UnsafeFlags
        victim = arena.Arena(1 << 24)
        data = victim.full(1000, 42, dtype=np.int64)
        a = (ArenaOptions(1 << 24).with_address(victim.address)
             .with_unsafe_flags(UnsafeFlags.MAP_FIXED).reserve())
        print(a.address == victim.address)   # (data now points into the new PROT_NONE range)
    """)
    assert out.returncode == 0 and out.stdout.split()[0] == "True"


# -- no unmap or protect under a live view ------------------------------------------------------

def numpy_handler_array(a):
    with a.numpy_allocator():
        return np.ones(1024)  # 8 KiB: the arena's heap, not NumPy's small-block allocator


HOLDERS = {  # each keeps only a derived object alive, never the array the arena made
    "slice": lambda a: a.full(100, 3.0)[10:20],
    "transpose": lambda a: a.zeros((4, 5)).T,
    "reshape": lambda a: a.zeros(20).reshape(4, 5),
    "memoryview": lambda a: memoryview(a.full(10, 1.0)),
    "frombuffer": lambda a: np.frombuffer(memoryview(a.full(10, 1.0)), np.float64),
    "ctypes from_buffer": lambda a: (ctypes.c_char * 8).from_buffer(a.full(1, 1.0)),
    "view": lambda a: (a.zeros(8), a.view(0, 8, np.uint8))[1],
    "numpy handler": numpy_handler_array,
}


@pytest.mark.parametrize("kind", HOLDERS)
def test_every_kind_of_live_view_blocks_unmap_and_protect(kind):
    a = Arena(MiB)
    holder = HOLDERS[kind](a)
    assert a.live_views == 1
    m = a.mark()
    for refused in (a.close, a.reset, a.make_none, a.make_read_only, a.make_exec,
                    lambda: a.reset(decommit=True)):
        with pytest.raises(BufferError):
            refused()
    a.release(m)                       # a mark made after it: not in the way
    assert not a.closed and a.protection == Protection.READ_WRITE
    assert len(bytes(memoryview(holder))) > 0   # still mapped and readable
    del holder
    assert a.live_views == 0
    a.close()


# -- regressions: no two live arrays share bytes (NEP 49 bookkeeping) ---------------------------

def test_dead_numpy_block_coalesced_across_a_mark_is_not_handed_out_again():
    a = Arena(16 * MiB)
    with a.numpy_allocator():
        first = np.empty(10)
    m = a.mark()
    del first                      # dead, kept: it lies below the mark
    with a.numpy_allocator():
        second = np.empty(100)     # right after it, in the marked level
    del second                     # coalesces with the first across the mark
    a.release(m)
    z = a.full(100, 1.0)           # bump allocation at the mark
    with a.numpy_allocator():
        w = np.empty(100)
    w[:] = 2.0
    assert not np.shares_memory(z, w) and (z == 1).all()


def test_numpy_block_grown_across_a_mark_is_not_handed_out_again():
    a = Arena(16 * MiB)
    with a.numpy_allocator():
        x = np.zeros(10)
    m = a.mark()
    x.resize(100000, refcheck=False)   # realloc grows the top block in place, over the mark
    y = a.zeros(10)
    del y, x
    a.release(m)
    z = a.full(1000, 1.0)
    with a.numpy_allocator():
        w = np.empty(1000)
    w[:] = 2.0
    assert not np.shares_memory(z, w) and (z == 1).all()


def test_view_over_numpy_block_survives_the_block():
    a = Arena(16 * MiB)
    with a.numpy_allocator():
        y = np.ones(1000)
    keep = a.zeros(10)
    v = a.view(a.offset_of(y), 1000, np.float64)
    del y                                   # freed: the view still covers its bytes
    z = a.full(1000, 5.0)
    with a.numpy_allocator():
        w = np.full(1000, 7.0)
    assert (v == 1).all() and not np.shares_memory(v, z) and not np.shares_memory(v, w)
    del keep


def test_failed_full_does_not_free_bytes_a_view_made_meanwhile_covers():
    """full() converts its fill value before it allocates: code the conversion runs can
    neither view the bytes full() will fill (they are not in use yet) nor lose what it
    allocated itself when full() then fails."""
    a = Arena(MiB)
    a.zeros(8)
    seen = []

    class Evil:
        def __float__(self):
            with pytest.raises(ValueError):
                a.view(64, 10, np.float64)            # the bytes full() would fill
            seen.append(a.full(10, 42.0))             # an allocation of its own
            raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        a.full(10, Evil(), dtype=float)
    z = a.full(10, 1.0)
    assert not np.shares_memory(seen[0], z) and (seen[0] == 42.0).all()


def test_zero_byte_allocation_respects_the_protection():
    for a in (ArenaOptions(MiB).map_none(), ArenaOptions(MiB).map(),
              ArenaOptions(MiB).map_exec()):
        for call in (lambda: a.alloc(0), lambda: a.empty(0), lambda: a.zeros((0, 3))):
            with pytest.raises(ValueError):
                call()
        assert a.live_views == 0 and a.used == 0


def test_shared_arena_zeros_are_zero_after_another_process_wrote():
    out = run_child("""
        import os, numpy as np, arena
        a = arena.ArenaOptions(1 << 24).with_flags(arena.Flags.SHARED).reserve()
        pid = os.fork()
        if pid == 0:
            a.full(1000, 5.0)
            os._exit(0)
        os.waitpid(pid, 0)
        with a.numpy_allocator():
            n = np.zeros(1000)
        z = a.zeros(2000)
        print(int(z.any()), int(n.any()))
    """)
    assert out.returncode == 0 and out.stdout.split() == ["0", "0"], out.stderr


# -- documented limits ----------------------------------------------------------------------------

def test_limit_truncating_a_shared_file_under_an_arena_is_sigbus(tmp_path):
    """Outside the guarantees: another process (here: the same one, by path) shrinking the
    file under a file-backed arena makes the next touch SIGBUS. The arena cannot prevent it;
    README "Security" says so."""
    out = run_child(f"""
        import os, sys, numpy as np, arena
        a = arena.ArenaOptions(1 << 24).with_file({str(tmp_path / 'f')!r}).with_flags(
            arena.Flags.SHARED).reserve()
        x = a.full(1 << 20, 1, dtype=np.uint8)
        os.truncate({str(tmp_path / 'f')!r}, 0)
        sys.stdout.write('truncated\\n'); sys.stdout.flush()
        x[:] = 2
    """)
    assert out.stdout == "truncated\n" and out.returncode == -7   # SIGBUS


def test_limit_w_xor_x_is_per_mapping(tmp_path):
    """Outside the guarantees: a file mapped writable by one arena and executable by another
    gives writable and executable *addresses* for the same bytes, each mapping obeying W^X."""
    path = tmp_path / "code"
    w = ArenaOptions(MiB).with_file(path).with_flags(Flags.SHARED).reserve()
    code = w.array(np.frombuffer(b"\xb8\x2a\x00\x00\x00\xc3", np.uint8))
    x = ArenaOptions(MiB).with_file(path).map_exec()
    assert not writable_and_executable(w) and not writable_and_executable(x)
    assert x.view(0, 6, np.uint8).tobytes() == code.tobytes()
    del code
