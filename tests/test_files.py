"""File-backed and shared arenas, checked through the file on disk and other processes."""
import os

import numpy as np
import pytest

import arena
from arena import ArenaOptions, Flags
from helpers import check_child

MiB = 1 << 20


def test_shared_file_arena_writes_reach_the_file(tmp_path):
    path = tmp_path / "data.bin"
    a = ArenaOptions(1 << 30).with_file(path).with_flags(Flags.SHARED).reserve()
    assert a.used == 0
    x = a.array(np.arange(1000, dtype=np.int64))
    assert os.path.getsize(path) == a.committed  # committing grew the file
    a.flush()
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
