"""Protection changes, the view rules that guard them, and W^X."""
import pytest

from arena import Arena, ArenaOptions, Protection, UnsafeFlags
from helpers import check_child, run_child


def perms(a):
    """Permission strings of the mappings covering the committed range."""
    found = set()
    with open("/proc/self/maps") as f:
        for line in f:
            lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
            if lo < a.address + a.committed and hi > a.address:
                found.add(line.split()[1])
    return found


def test_read_only_rules():
    a = Arena(1 << 26)
    x = a.full(10, 1.0)
    with pytest.raises(BufferError):
        a.make_read_only()
    assert a.protection == Protection.READ_WRITE
    off = a.offset_of(x)
    del x
    a.make_read_only()
    assert a.protection == Protection.READ and perms(a) == {"r--p"}
    v = a.view(off, 10)
    assert not v.flags.writeable and v.sum() == 10
    with pytest.raises(ValueError):
        v.flags.writeable = True
    with pytest.raises(ValueError):
        a.empty(3)
    a.commit(a.committed + (4 << 20))  # later commits get the current protection
    assert perms(a) == {"r--p"}
    a.make_mut()  # read-only views may stay alive
    w = a.zeros(3)
    assert w.flags.writeable and perms(a) == {"rw-p"}
    with pytest.raises(BufferError):
        a.reset()  # v and w are alive
    del v, w
    a.reset()


def test_none_rules():
    a = Arena(1 << 20)
    a.zeros(10)  # dropped at once
    ro = a.view(0, 10)
    with pytest.raises(BufferError):
        a.make_none()
    del ro
    a.make_none()
    assert perms(a) == {"---p"}
    with pytest.raises(ValueError):
        a.view(0, 10)
    with pytest.raises(ValueError):
        a.zeros(1)
    a.make_mut()
    assert a.view(0, 10).sum() == 0


def test_none_really_blocks_access():
    out = run_child("""
        import ctypes, sys, arena
        a = arena.Arena(1 << 20); a.commit(4096)
        a.make_none()
        sys.stdout.write('ok\\n'); sys.stdout.flush()
        ctypes.string_at(a.address, 1)
    """)
    assert out.stdout == "ok\n" and out.returncode == -11


def test_w_xor_x():
    with pytest.raises(PermissionError):
        ArenaOptions(1 << 20).map_exec_mut()
    a = Arena(1 << 20)
    with pytest.raises(PermissionError):
        a.make_exec_mut()
    assert a.protection == Protection.READ_WRITE
    j = ArenaOptions(1 << 20).with_unsafe_flags(UnsafeFlags.JIT).map_exec_mut()
    j.commit(4096)
    assert perms(j) == {"rwxp"} and j.protection == Protection.READ_WRITE_EXECUTE
    x = a.zeros(4)
    with pytest.raises(BufferError):
        a.make_exec()
    del x
    a.make_exec()
    assert perms(a) == {"r-xp"}


def test_map_variants():
    assert ArenaOptions(1 << 20).map().protection == Protection.READ
    assert ArenaOptions(1 << 20).map_none().protection == Protection.NONE
    assert ArenaOptions(1 << 20).map_exec().protection == Protection.READ_EXECUTE
    assert ArenaOptions(1 << 20).map_mut().protection == Protection.READ_WRITE


def test_jit_machine_code_runs():
    out = check_child("""
        import ctypes, numpy as np, arena
        a = arena.Arena(1 << 20)
        code = a.array(np.frombuffer(bytes([0xB8, 0x2A, 0, 0, 0, 0xC3]), np.uint8))  # mov eax, 42; ret
        addr = a.address + a.offset_of(code)
        del code
        a.make_exec()
        print(ctypes.CFUNCTYPE(ctypes.c_int)(addr)())
    """)
    assert out.strip() == "42"
