"""The options builder: immutability, validation at the with_* call, read-back."""
import io
import os

import pytest

import arena
from arena import ArenaOptions, Flags, PageSize, Protection, UnsafeFlags


def test_builder_is_immutable():
    base = ArenaOptions(1000)
    derived = base.with_flags(Flags.POPULATE).with_commit_step(5000).with_alignment(128)
    assert base.flags == Flags(0) and base.alignment == 64
    assert derived.flags == Flags.POPULATE and derived.alignment == 128
    assert derived.commit_step == 8192  # rounded up to the page size
    assert base.size == 4096  # rounded up to the page size
    with pytest.raises(AttributeError):
        base.size = 5
    with pytest.raises(AttributeError):
        base._size = 5
    assert base == ArenaOptions(1000) and base != derived
    assert hash(base) == hash(ArenaOptions(1000))
    assert "POPULATE" in repr(derived)


def test_flags_or_together():
    o = ArenaOptions(1 << 20).with_flags(Flags.POPULATE).with_flags(Flags.NO_CORE_DUMP)
    assert o.flags == Flags.POPULATE | Flags.NO_CORE_DUMP
    u = ArenaOptions(1 << 20).with_unsafe_flags(UnsafeFlags.JIT)
    assert u.unsafe_flags == UnsafeFlags.JIT


@pytest.mark.parametrize("size", [0, -1, -(1 << 70), 1 << 63])
def test_bad_size(size):
    with pytest.raises(ValueError):
        ArenaOptions(size)


@pytest.mark.parametrize("size", [1.5, "10", None, True])
def test_bad_size_type(size):
    with pytest.raises(TypeError):
        ArenaOptions(size)


def test_validation_at_with_calls():
    o = ArenaOptions(1 << 20)
    with pytest.raises(ValueError):
        o.with_alignment(3)
    with pytest.raises(ValueError):
        o.with_alignment(0)
    with pytest.raises(ValueError):
        o.with_alignment(1 << 20)
    with pytest.raises(ValueError):
        o.with_commit_step(0)
    with pytest.raises(ValueError):
        o.with_address(4097)
    with pytest.raises(ValueError):
        o.with_address(-4096)
    with pytest.raises(ValueError):
        o.with_file("/tmp/x", offset=100)
    with pytest.raises(ValueError):
        o.with_file("/tmp/x", offset=-4096)
    with pytest.raises(TypeError):
        o.with_file(3.5)
    with pytest.raises(TypeError):
        o.with_file(io.StringIO("text"))
    with pytest.raises(ValueError):
        o.with_file(-1)
    with pytest.raises(TypeError):
        o.with_flags(UnsafeFlags.JIT)
    with pytest.raises(TypeError):
        o.with_unsafe_flags(Flags.SHARED)
    with pytest.raises(ValueError):
        o.with_flags(1 << 20)
    with pytest.raises(ValueError):
        o.with_flags(Flags.HUGE_PAGES | Flags.TRANSPARENT_HUGE_PAGES)
    with pytest.raises(ValueError):
        o.with_flags(Flags.SEQUENTIAL).with_flags(Flags.RANDOM_ACCESS)
    assert o.with_flags(int(Flags.POPULATE)).flags == Flags.POPULATE


def test_page_size_validation_names_offered_sizes():
    o = ArenaOptions(1 << 20)
    with pytest.raises(ValueError) as info:
        o.with_page_size(12345)
    for size in arena.page_sizes():
        assert str(size) in str(info.value)
    unoffered = [p for p in PageSize if p not in arena.page_sizes()]
    if unoffered:
        with pytest.raises(ValueError):
            o.with_page_size(unoffered[0])
    assert o.with_page_size(arena.page_size()).page_size == arena.page_size()
    if len(arena.page_sizes()) > 1:
        huge = arena.page_sizes()[1]
        h = o.with_page_size(huge)
        assert h.page_size == huge and h.size % huge == 0 and h.commit_step % huge == 0
        with pytest.raises(ValueError):
            h.with_flags(Flags.TRANSPARENT_HUGE_PAGES)


def test_read_back(tmp_path):
    path = tmp_path / "f"
    o = (ArenaOptions(10 << 20).with_address(1 << 40).with_file(path, 8192)
         .with_unsafe_flags(UnsafeFlags.MAP_FIXED))
    assert o.address == 1 << 40 and o.file == path and o.offset == 8192
    assert o.unsafe_flags == UnsafeFlags.MAP_FIXED and o.size == 10 << 20
    assert o.with_address(None).address is None


def test_enums():
    assert [m.name for m in Flags] == ["SHARED", "POPULATE", "NO_RESERVE", "HUGE_PAGES",
                                       "TRANSPARENT_HUGE_PAGES", "LOCKED", "NO_CORE_DUMP",
                                       "SEQUENTIAL", "RANDOM_ACCESS", "STACK"]
    assert {m.name for m in UnsafeFlags} == {"MAP_FIXED", "JIT"}
    assert PageSize.SIZE_2M == 2 << 20 and PageSize.SIZE_16G == 16 << 30
    assert len(PageSize) == 13
    assert Protection.NONE == 0 and Protection.READ_WRITE == Protection.READ | Protection.WRITE
    assert os.sysconf("SC_PAGESIZE") == arena.page_size()


def test_arena_constructor_forms():
    with arena.Arena(ArenaOptions(5000)) as a:
        assert a.reserved == 8192 and a.options == ArenaOptions(5000)
    with pytest.raises(TypeError):
        arena.Arena("big")
    with pytest.raises(TypeError):
        arena.Arena(True)
    with pytest.raises(ValueError):
        arena.Arena(0)


def test_options_pickle_by_value(tmp_path):
    """Options travel to other processes (a Dask worker plugin, a pool's initargs)."""
    import copy
    import pickle
    opts = (ArenaOptions(1 << 30).with_flags(Flags.TRANSPARENT_HUGE_PAGES)
            .with_commit_step(1 << 22).with_purge_delay(None).with_small_threshold(0))
    back = pickle.loads(pickle.dumps(opts))
    assert back == opts and back.purge_delay is None and back.flags == opts.flags
    assert copy.deepcopy(opts) == opts
    with pytest.raises(AttributeError):
        back.size = 5  # still immutable
    path = str(tmp_path / "a.arena")
    assert pickle.loads(pickle.dumps(ArenaOptions(1 << 20).with_file(path))).file == path
    with open(path, "wb") as f, pytest.raises(TypeError, match="give with_file"):
        pickle.dumps(ArenaOptions(1 << 20).with_file(f))
