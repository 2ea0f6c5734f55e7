"""File-backed and shared arenas, checked through the file on disk and other processes."""
import io
import os

import numpy as np
import pytest

import arena
from arena import ArenaOptions, Flags
from helpers import check_child, smaps

MiB = 1 << 20


def test_shared_file_arena_writes_reach_the_file(tmp_path):
    path = tmp_path / "data.bin"
    a = ArenaOptions(1 << 30).with_file(path).with_flags(Flags.SHARED).reserve()
    assert a.used == 0
    x = a.array(np.arange(1000, dtype=np.int64))
    assert os.path.getsize(path) == a.committed  # committing grew the file
    a.flush()
    assert os.path.getsize(path) == a.used == 8000  # and flushing cut it to what is used
    a.flush(0, 4096, asynchronous=True)
    on_disk = np.fromfile(path, dtype=np.int64, count=1000)
    assert np.array_equal(on_disk, np.arange(1000))
    with pytest.raises(ValueError):
        a.flush(0, a.committed + 1)
    with pytest.raises(ValueError):
        a.flush(-1)
    del x
    a.close()


def test_private_file_arena_leaves_the_file_alone(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(b"\x01" * 10000)
    a = ArenaOptions(1 << 20).with_file(path).reserve()
    assert a.used == 10000  # existing contents count as used, never handed out again
    v = a.view(0, 10000, np.uint8)
    assert (v == 1).all()
    v[:] = 2
    x = a.full(100, 9, dtype=np.uint8)
    assert a.offset_of(x) >= 10000
    assert path.read_bytes()[:10000] == b"\x01" * 10000


def test_opening_a_file_does_not_change_it(tmp_path):
    path = tmp_path / "small.bin"
    path.write_bytes(b"abc")
    a = ArenaOptions(1 << 30).with_file(path).with_flags(Flags.SHARED).reserve()
    assert os.path.getsize(path) == 3 and a.used == 3
    assert bytes(a.view(0, 3, np.uint8)) == b"abc"
    y = a.full(10, 7, dtype=np.uint8)  # allocating grows it, so nothing is lost past EOF
    assert os.path.getsize(path) >= a.offset_of(y) + 10
    a.flush()
    assert path.read_bytes()[a.offset_of(y):a.offset_of(y) + 10] == b"\x07" * 10


def test_file_object_and_fd_and_offset(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"\x00" * 8192 + b"\x05" * 100)
    with open(path, "r+b") as f:
        a = ArenaOptions(1 << 20).with_file(f, offset=8192).with_flags(Flags.SHARED).reserve()
        assert a.used == 100 and (a.view(0, 100, np.uint8) == 5).all()
    a.close()  # one writer at a time
    fd = os.open(path, os.O_RDWR)
    try:
        b = ArenaOptions(1 << 20).with_file(fd).with_flags(Flags.SHARED).reserve()
        assert b.used == 8292
    finally:
        os.close(fd)  # the arena keeps its own duplicate
    assert (b.view(8192, 100, np.uint8) == 5).all()


def test_read_only_map_of_a_file_in_another_process(tmp_path):
    path = tmp_path / "shared.bin"
    writer = ArenaOptions(1 << 30).with_file(path).with_flags(Flags.SHARED).reserve()
    x = writer.array(np.linspace(0, 1, 5000))
    offset = writer.offset_of(x)
    writer.flush()
    out = check_child(f"""
        import numpy as np, arena
        r = arena.ArenaOptions(1 << 30).with_file({str(path)!r}).with_flags(
            arena.Flags.SHARED).map()
        v = r.view({offset}, 5000, np.float64)
        assert not v.flags.writeable
        try:
            r.empty(3)
        except ValueError:
            print('no allocations in a read-only arena')
        print(repr(float(v.sum())), r.protection.name)
    """)
    lines = out.splitlines()
    assert lines[0] == "no allocations in a read-only arena"
    assert lines[1] == f"{float(x.sum())!r} READ"


def test_anonymous_shared_memory_is_shared_with_forked_children():
    out = check_child("""
        import os, numpy as np, arena
        a = arena.ArenaOptions(1 << 30).with_flags(arena.Flags.SHARED).reserve()
        x = a.zeros(1000, np.int64)
        pid = os.fork()
        if pid == 0:
            x[:] = 42
            y = a.full(10, 5)    # the child can keep allocating
            os._exit(0 if y.sum() == 50 else 1)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status), int(x.sum()))
    """)
    assert out.split() == ["0", "42000"]


def test_private_arena_after_fork_is_private():
    out = check_child("""
        import os, numpy as np, arena
        a = arena.Arena(1 << 30)
        x = a.full(1000, 1, dtype=np.int64)
        pid = os.fork()
        if pid == 0:
            x[:] = 42
            y = a.zeros(1 << 20)  # the child keeps allocating and committing
            os._exit(0 if y.sum() == 0 and x.sum() == 42000 else 1)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status), int(x.sum()))
    """)
    assert out.split() == ["0", "1000"]


def test_shared_decommit_frees_memory():
    a = ArenaOptions(1 << 30).with_flags(Flags.SHARED).reserve()
    x = a.alloc(64 * MiB)
    x[:] = 1
    del x
    a.reset(decommit=True)
    z = a.zeros(1000, np.uint8)
    assert not z.any() and a.committed <= 2 * MiB


def test_huge_pages_with_a_file_is_refused(tmp_path):
    if len(arena.page_sizes()) < 2:
        pytest.skip("no hugetlb sizes")
    with pytest.raises(ValueError, match="anonymous"):
        ArenaOptions(1 << 30).with_file(tmp_path / "x").with_page_size(
            arena.page_sizes()[1]).reserve()


def test_map_of_missing_file_is_filenotfound(tmp_path):
    with pytest.raises(FileNotFoundError):
        ArenaOptions(1 << 20).with_file(tmp_path / "nope").map()


# -- zeros, private files, growth by use, one writer, files not open for writing --------------

def arena_rss(a):
    return smaps(a.address, a.address + a.reserved).get("Rss", 0)


def test_zeros_on_fresh_shared_memory_and_grown_files_writes_nothing(tmp_path):
    """Fresh pages of a memfd, of a file where it grows, and anonymous pages all read as
    zeros: ``zeros`` writes only over bytes the arena handed out before (v1 wrote the whole
    array on a Flags.SHARED arena: +64 MiB RSS here, and every page of the file dirty)."""
    n = 64 * MiB
    makers = {
        "memfd": lambda: ArenaOptions(1 << 30).with_flags(Flags.SHARED).reserve(),
        "shared-file": lambda: ArenaOptions(1 << 30).with_file(tmp_path / "s")
        .with_flags(Flags.SHARED).reserve(),
        "private-file": lambda: ArenaOptions(1 << 30).with_file(tmp_path / "p").reserve(),
        "anonymous": lambda: arena.Arena(1 << 30),
    }
    for name, make in makers.items():
        a = make()
        z = a.zeros(n, np.uint8)
        assert arena_rss(a) < 4 * MiB, (name, arena_rss(a))
        del z
        a.reset()
        x = a.full(1000, 3.0)   # memory the arena handed out before is cleared
        del x
        a.reset()
        z = a.zeros(1000)
        assert not z.any(), name
        del z
        a.close()
    assert os.stat(tmp_path / "s").st_blocks * 512 < 4 * MiB   # no page of it was written


def test_private_file_arena_never_modifies_the_file(tmp_path):
    """Without Flags.SHARED the mapping is copy-on-write: the arena reads the file's bytes
    and writes nothing back, nor grows it (v1: 80 bytes became 4096 after one zeros(4))."""
    path = tmp_path / "small.bin"
    original = bytes(range(80))
    path.write_bytes(original)
    mtime = os.stat(path).st_mtime_ns
    a = ArenaOptions(1 << 30).with_file(path).reserve()
    assert a.used == 80 and bytes(a.view(0, 80, np.uint8)) == original
    z = a.zeros(4)
    assert not z.any() and a.offset_of(z) == 128
    big = a.full(3 * MiB, 7, dtype=np.uint8)      # far past the file's only page
    a.view(0, 80, np.uint8)[:] = 0                # even its own bytes, through a view
    a.flush()
    a.commit(64 * MiB)
    assert (big == 7).all()
    del z, big
    a.reset(decommit=True)
    y = a.zeros(1000)
    assert not y.any()
    del y
    a.close()
    assert path.read_bytes() == original and os.stat(path).st_mtime_ns == mtime


def test_shared_file_grows_by_what_is_used(tmp_path):
    """Reopening a file four times to append one 8-byte record each: the file holds the
    records (64-byte aligned) and nothing more (v1: an 8 MiB file, records 2 MiB apart).
    While the arena is open the file grows by commit steps (one ftruncate per step, not per
    allocation); flush() and close() cut it back to what was used, and so does dropping the
    arena without closing it once its last array is gone."""
    path = tmp_path / "log.bin"
    offsets = []
    for i in range(4):
        a = ArenaOptions(1 << 30).with_file(path).with_flags(Flags.SHARED).reserve()
        r = a.full(1, float(i))
        offsets.append(a.offset_of(r))
        assert os.path.getsize(path) >= a.used
        a.flush()
        assert os.path.getsize(path) == a.used
        del r
        if i % 2:
            a.close()
        else:
            del a                    # no close(): the mapping's end trims the file
    assert offsets == [0, 64, 128, 192] and os.path.getsize(path) == 200
    data = path.read_bytes()
    assert [np.frombuffer(data[o:o + 8])[0] for o in offsets] == [0.0, 1.0, 2.0, 3.0]
    b = ArenaOptions(1 << 30).with_file(path).with_flags(Flags.SHARED).reserve()
    b.commit(10000)                  # an explicit commit backs what it asks for
    assert os.path.getsize(path) >= 10000
    b.close()
    assert os.path.getsize(path) == 200
    out = check_child(f"""
        import os, arena
        a = arena.ArenaOptions(1 << 30).with_file({str(path)!r}).with_flags(
            arena.Flags.SHARED).reserve()
        x = a.full(1, 4.0)
        if os.fork() == 0:           # a child shares the mapping: it never trims the file
            y = a.full(1, 5.0)
            os._exit(0)
        os.wait()
        del x
        a.close()                    # nor does the parent after a fork: the child may have
        print(os.path.getsize({str(path)!r}) > 264)  # written past what the parent used
    """)
    assert out.split() == ["True"]


def test_a_second_writer_of_a_file_is_refused_naming_it(tmp_path):
    """A file-backed arena opened for writing holds the file (an OFD lock): a second writer,
    by path, fd or file object, in this process or another, gets an error naming the file
    (v1: both handed out the same offsets). map() (read-only) is always allowed."""
    path = tmp_path / "one-writer.bin"
    w = ArenaOptions(1 << 20).with_file(path).with_flags(Flags.SHARED).reserve()
    x = w.full(10, 1.0)
    with open(path, "r+b") as f:
        fd = os.open(path, os.O_RDWR)
        try:
            for given in (path, str(path), f, fd):
                for flags in (Flags.SHARED, Flags(0)):
                    with pytest.raises(OSError, match="already open for writing") as e:
                        ArenaOptions(1 << 20).with_file(given).with_flags(flags).reserve()
                    assert e.value.filename == str(path) and str(path) in str(e.value)
        finally:
            os.close(fd)
    r = ArenaOptions(1 << 20).with_file(path).with_flags(Flags.SHARED).map()
    assert (r.view(0, 10) == 1.0).all()
    out = check_child(f"""
        import arena
        try:
            arena.ArenaOptions(1 << 20).with_file({str(path)!r}).with_flags(
                arena.Flags.SHARED).reserve()
        except OSError as exc:
            print(type(exc).__name__, exc.filename)
    """)
    assert out.split() == ["BlockingIOError", str(path)]
    del x
    w.close()
    w2 = ArenaOptions(1 << 20).with_file(path).with_flags(Flags.SHARED).reserve()
    assert w2.used == 80
    w2.close()
    a = ArenaOptions(1 << 20).with_file(tmp_path / "a", 0).with_flags(Flags.SHARED).reserve()
    b = ArenaOptions(1 << 20).with_file(tmp_path / "a", 1 << 20).with_flags(Flags.SHARED)
    b = b.reserve()                  # another range of the same file: no conflict
    a.close(), b.close()


def test_a_file_not_open_for_writing_is_refused_at_reserve(tmp_path):
    """v1 accepted a file opened 'rb' and failed at the first allocation with
    "ftruncate ... Invalid argument"."""
    path = tmp_path / "ro.bin"
    path.write_bytes(b"\x05" * 100)
    with open(path, "rb") as f:
        for flags in (Flags.SHARED, Flags(0)):
            opts = ArenaOptions(1 << 20).with_file(f).with_flags(flags)
            for make in (opts.reserve, opts.map_mut):
                with pytest.raises(io.UnsupportedOperation, match="not open for writing") as e:
                    make()
                assert str(path) in str(e.value)
            r = opts.map()           # reading it is fine
            assert (r.view(0, 100, np.uint8) == 5).all()
            r.close()
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(ValueError, match="not open for writing"):
            ArenaOptions(1 << 20).with_file(fd).reserve()
    finally:
        os.close(fd)


@pytest.mark.parametrize("flag", [Flags(0), Flags.POPULATE, Flags.LOCKED, Flags.NO_RESERVE,
                                  Flags.NO_CORE_DUMP, Flags.TRANSPARENT_HUGE_PAGES,
                                  Flags.SEQUENTIAL, Flags.RANDOM_ACCESS, Flags.STACK],
                         ids=lambda f: f.name or "none")
@pytest.mark.parametrize("shared", [False, True], ids=["private", "shared"])
def test_file_rules_hold_for_every_flag(tmp_path, flag, shared):
    """The README's file claims, flag by flag: zeros are zero over reused bytes, a private
    arena leaves the file as it was, a shared one holds exactly what it used once closed,
    and a second writer is refused."""
    path = tmp_path / "f"
    original = bytes(range(256)) * 3
    path.write_bytes(original)
    opts = ArenaOptions(1 << 24).with_file(path).with_commit_step(1 << 16).with_flags(flag)
    if shared:
        opts = opts.with_flags(Flags.SHARED)
    a = opts.reserve()
    assert a.used == len(original) and bytes(a.view(0, 16, np.uint8)) == original[:16]
    x = a.full(5000, 0xAA, dtype=np.uint8)
    with pytest.raises(OSError, match="already open for writing"):
        opts.reserve()
    del x
    a.reset()
    z = a.zeros(20000, np.uint8)     # over the file's own bytes and the freed ones
    assert not z.any()
    z[:] = 7
    end = a.used
    del z
    a.close()
    if shared:
        assert path.read_bytes() == b"\x07" * 20000 and end == 20000
    else:
        assert path.read_bytes() == original
