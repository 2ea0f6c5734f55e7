"""A Growable on a file: a valid .npy at every flush and close, reopened to append, refusing
files it cannot append to (and leaving them as they were), and surviving a crash up to its
last flush."""
import os
import signal
import struct

import numpy as np
import pytest

from arena import ArenaOptions, Flags, _npy
from helpers import run_child

MiB = 1 << 20
ROWS = np.dtype([("t", "<f8"), ("id", "<i4"), ("xyz", "<f4", (3,))])


def options(path, size=1 << 30):
    return ArenaOptions(size).with_file(path).with_flags(Flags.SHARED)


def header_size(path):
    with open(path, "rb") as f:
        return _npy.header_length(f.read(_npy.PREAMBLE), str(path))


def test_a_valid_npy_at_every_flush_and_close(tmp_path):
    path = tmp_path / "log.npy"
    g = options(path).growable(np.float32, item_shape=3)
    assert np.load(path).shape == (0, 3)  # valid from the start
    expected = []
    for k in range(5):
        rows = np.full((10_000 * k + 1, 3), k, np.float32)
        g.extend(rows)
        expected.append(rows)
        g.flush()
        want = np.concatenate(expected)
        assert np.array_equal(np.load(path), want)
        mapped = np.load(path, mmap_mode="r")
        assert np.array_equal(mapped, want) and mapped.dtype == np.float32
        del mapped
    g.append([1, 2, 3])
    g.close()
    want = np.concatenate(expected + [np.array([[1, 2, 3]], np.float32)])
    assert np.array_equal(np.load(path), want)
    # Closed, the file is exactly the header and the items (no commit-step slack).
    assert os.path.getsize(path) == header_size(path) + want.nbytes
    assert header_size(path) % 64 == 0


@pytest.mark.parametrize("dtype, item_shape, make", [
    (np.float64, (), lambda k: np.arange(k, dtype=np.float64)),
    (np.int16, (2, 3), lambda k: np.arange(6 * k, dtype=np.int16).reshape(k, 2, 3)),
    (ROWS, (), lambda k: np.array([(i, i, (i, i, i)) for i in range(k)], ROWS)),
    ("U4", (), lambda k: np.array([str(i) for i in range(k)], "U4")),
])
def test_reopen_appends(tmp_path, dtype, item_shape, make):
    path = tmp_path / "data.npy"
    parts = []
    for k in (3, 0, 5, 1):
        with options(path).growable(dtype, item_shape) as g:
            assert len(g) == sum(len(p) for p in parts)
            part = make(k)
            g.extend(part)
            parts.append(part)
        assert np.array_equal(np.load(path), np.concatenate(parts))


def test_appends_to_what_np_save_wrote(tmp_path):
    path = tmp_path / "saved.npy"
    saved = np.arange(12, dtype=np.int32).reshape(4, 3)
    np.save(path, saved)
    with options(path).growable(np.int32, 3) as g:
        assert np.array_equal(g.array, saved)
        g.append([12, 13, 14])
    assert np.array_equal(np.load(path), np.arange(15, dtype=np.int32).reshape(5, 3))
    np.save(path, np.arange(3.0))  # a 1-D Fortran-ordered file is the same bytes
    with options(path).growable(float) as g:
        g.extend([3.0])
    assert np.load(path).tolist() == [0.0, 1.0, 2.0, 3.0]


def test_unicode_field_names_use_format_3(tmp_path):
    path = tmp_path / "u.npy"
    dtype = np.dtype([("Δt", "<f8")])
    with options(path).growable(dtype) as g:
        g.extend(np.array([(1.5,), (2.5,)], dtype))
    assert path.read_bytes()[6] == 3
    assert np.load(path)["Δt"].tolist() == [1.5, 2.5]
    with options(path).growable(dtype) as g:
        g.append((3.5,))
    assert len(np.load(path)) == 3


def test_long_headers_use_format_2():
    dtype = np.dtype([(f"field_{i}", "<f4") for i in range(5000)])
    layout = _npy.new_layout(dtype, ())
    header = layout.header(7)
    assert header[6] == 2 and len(header) == layout.data_offset and len(header) % 64 == 0
    found = _npy.parse(header, "x")
    assert found.dtype == dtype and found.shape == (7,)


def bad_files(tmp_path):
    """(name, bytes, message) of files a float64 Growable must refuse."""
    def npy(array, **kw):
        path = tmp_path / "tmp.npy"
        np.save(path, array, **kw)
        return path.read_bytes()

    def raw(text, pad=True):  # a version 1.0 header around ``text``
        text += b" " * (-(len(text) + 11) % 64 if pad else 0) + b"\n"
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text

    cramped = raw(b"{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }",
                  pad=False) + bytes(16)
    return [
        ("other dtype", npy(np.arange(3, dtype=np.int32)),
         r"holds items of dtype int32 and item shape \(\), not the Growable's dtype float64"),
        ("other item shape", npy(np.zeros((2, 3))),
         r"item shape \(3,\), not the Growable's dtype float64 and item shape \(\)"),
        ("0-d", npy(np.float64(1.0)), "0-d"),
        ("not npy", b"hello, world" * 10, "not a .npy file"),
        ("short", b"\x93NUMPY", "not a .npy file"),
        ("truncated data", npy(np.arange(100.0))[:200], "promises 100 items"),
        ("truncated header", npy(np.arange(3.0))[:50], "truncated"),
        ("bad header", raw(b"{'descr': nope}"), "cannot be read"),
        ("wrong keys", raw(b"{'shape': (1,)}"), "descr, fortran_order"),
        ("bad shape", raw(b"{'descr': '<f8', 'fortran_order': False, 'shape': (-1,), }"),
         "not a tuple of sizes"),
        ("bad descr", raw(b"{'descr': 'zz', 'fortran_order': False, 'shape': (1,), }"),
         "descr cannot be read"),
        ("version 9", b"\x93NUMPY\x09\x00" + bytes(100), "version 9.0"),
        ("cramped header", cramped, "no room to rewrite the count"),
    ]


def test_files_it_cannot_append_to_are_left_alone(tmp_path):
    for name, content, message in bad_files(tmp_path):
        path = tmp_path / "bad.npy"
        path.write_bytes(content)
        with pytest.raises(ValueError, match=message):
            options(path).growable(np.float64)
        assert path.read_bytes() == content, name
    path = tmp_path / "fortran.npy"
    np.save(path, np.asfortranarray(np.zeros((3, 2))))
    with pytest.raises(ValueError, match="Fortran-ordered"):
        options(path).growable(np.float64, 2)


def test_reservation_too_small_for_the_file(tmp_path):
    path = tmp_path / "big.npy"
    np.save(path, np.zeros(100_000))
    with pytest.raises(ValueError, match="more than the reservation"):
        options(path, size=64 * 1024).growable(np.float64)


def test_needs_a_shared_mapping_at_offset_zero(tmp_path):
    path = tmp_path / "x.npy"
    with pytest.raises(ValueError, match="Flags.SHARED"):
        ArenaOptions(MiB).with_file(path).growable(float)
    with pytest.raises(ValueError, match="offset 0"):
        ArenaOptions(MiB).with_file(path, offset=4096).with_flags(Flags.SHARED).growable()
    assert not path.exists() or path.stat().st_size == 0


def test_file_objects_and_descriptors(tmp_path):
    path = tmp_path / "f.npy"
    with open(path, "w+b") as f:
        with options(f).growable(np.int64) as g:
            g.extend(range(5))
        fd = os.open(path, os.O_RDWR)
        try:
            with options(fd).growable(np.int64) as g:
                g.append(5)
        finally:
            os.close(fd)
    assert np.load(path).tolist() == list(range(6))


def test_truncate_shrinks_the_file(tmp_path):
    path = tmp_path / "t.npy"
    with options(path).growable(np.float64) as g:
        g.extend(np.arange(1000.0))
        g.truncate(10, decommit=True)
        g.flush()
        assert np.load(path).tolist() == list(range(10))
        g.extend([-1.0])
    assert np.load(path).tolist() == list(range(10)) + [-1.0]
    assert os.path.getsize(path) == header_size(path) + 11 * 8


def test_dropped_without_close_still_leaves_a_npy(tmp_path):
    path = tmp_path / "d.npy"
    g = options(path).growable(np.float64)
    g.extend(np.arange(50.0))
    view = g[:5]
    del g  # the view keeps the mapping; the header is written all the same
    assert np.load(path).tolist() == list(range(50))
    assert view.tolist() == list(range(5))


CRASH = """
import os, signal, sys
import numpy as np
from arena import ArenaOptions, Flags
g = ArenaOptions(1 << 30).with_file(sys.argv[1]).with_flags(Flags.SHARED).growable(
    np.float64, item_shape=2)
g.extend(np.arange(2000.0).reshape(1000, 2))
if sys.argv[2] == "flush":
    g.flush()
g.extend(np.full((500, 2), -1.0))           # never flushed
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("flushed", [True, False])
def test_a_crash_loses_nothing_before_the_last_flush(tmp_path, flushed):
    path = tmp_path / "crash.npy"
    out = run_child(f"import sys; sys.argv[1:] = [{str(path)!r}, "
                    f"{'flush' if flushed else 'none'!r}]\n" + CRASH)
    assert out.returncode == -signal.SIGKILL, out.stderr
    want = np.arange(2000.0).reshape(1000, 2) if flushed else np.zeros((0, 2))
    assert np.array_equal(np.load(path), want)
    assert np.array_equal(np.load(path, mmap_mode="r"), want)
    with options(path).growable(np.float64, 2) as g:  # reopened: appends after the flush
        assert len(g) == len(want)
        g.append([7.0, 8.0])
    assert np.array_equal(np.load(path), np.concatenate([want, [[7.0, 8.0]]]))
    assert os.path.getsize(path) == header_size(path) + (len(want) + 1) * 16
