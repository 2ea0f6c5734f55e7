"""Sub-allocations: shapes, dtypes, alignment, order, and refusals that change nothing."""
import numpy as np
import pytest

import arena
from arena import Arena, ArenaFullError, ArenaOptions

DTYPES = [np.bool_, np.int8, np.uint16, np.int32, np.int64, np.float16, np.float32,
          np.float64, np.complex128, np.longdouble, "S5", "U3", "datetime64[ns]",
          np.dtype([("x", "f4"), ("y", "i8")]), np.dtype(("f8", (2, 3)))]


@pytest.fixture
def a():
    return Arena(1 << 26)


def in_arena(a, x):
    start = x.__array_interface__["data"][0]
    return a.address <= start and start + x.nbytes <= a.address + a.reserved


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_empty_any_dtype(a, dtype):
    x = a.empty((3, 4), dtype)
    ref = np.empty((3, 4), dtype)
    assert x.shape == ref.shape and x.dtype == ref.dtype and x.nbytes == ref.nbytes
    assert in_arena(a, x)
    assert x.flags.c_contiguous and x.flags.writeable and not x.flags.owndata


def test_kinds(a):
    z = a.zeros((5, 5), np.int32)
    assert (z == 0).all() and z.dtype == np.int32
    f = a.full((2, 3), 4.5)
    assert f.dtype == np.float64 and (f == 4.5).all()
    f2 = a.full(4, 7, dtype=np.uint8)
    assert f2.tolist() == [7, 7, 7, 7]
    proto = np.arange(12, dtype=np.float32).reshape(3, 4)
    e = a.empty_like(proto)
    assert e.shape == (3, 4) and e.dtype == np.float32
    zl = a.zeros_like(proto, dtype=np.int16)
    assert zl.dtype == np.int16 and not zl.any()
    c = a.array(proto)
    assert np.array_equal(c, proto) and in_arena(a, c) and c.dtype == proto.dtype
    c[0, 0] = 99
    assert proto[0, 0] == 0
    c2 = a.array([[1, 2], [3, 4]], dtype=np.int64)
    assert c2.tolist() == [[1, 2], [3, 4]]
    raw = a.alloc(100)
    assert raw.dtype == np.uint8 and raw.shape == (100,)
    assert all(in_arena(a, x) for x in (z, f, f2, e, zl, c, c2, raw))


def test_allocations_do_not_overlap_and_are_aligned(a):
    arrays = [a.empty(n, np.uint8) for n in (1, 63, 64, 65, 1000, 0, 7)]
    spans = sorted((a.offset_of(x), a.offset_of(x) + x.nbytes) for x in arrays)
    for (s0, e0), (s1, _) in zip(spans, spans[1:]):
        assert e0 <= s1
    for x in arrays:
        assert a.offset_of(x) % 64 == 0


@pytest.mark.parametrize("align", [1, 2, 8, 64, 256, 4096])
def test_align(a, align):
    a.alloc(3)
    x = a.empty(5, np.uint8, align=align)
    assert x.__array_interface__["data"][0] % align == 0


@pytest.mark.parametrize("align", [0, -1, 3, 48, 8192, 1 << 40])
def test_bad_align(a, align):
    before = a.used
    with pytest.raises(ValueError):
        a.empty(5, align=align)
    assert a.used == before


def test_bad_align_type(a):
    with pytest.raises(TypeError):
        a.empty(5, align=2.0)
    with pytest.raises(TypeError):
        a.empty(5, align=True)


def test_default_alignment_option():
    with ArenaOptions(1 << 20).with_alignment(512).reserve() as a:
        a.alloc(1)
        assert a.offset_of(a.alloc(1)) == 512


def test_fortran_order(a):
    x = a.empty((3, 4), np.float64, order="F")
    assert x.flags.f_contiguous and not x.flags.c_contiguous
    x[...] = np.arange(12).reshape(3, 4)
    assert np.array_equal(x, np.arange(12).reshape(3, 4))
    y = a.empty_like(x)
    assert y.flags.f_contiguous
    with pytest.raises(ValueError):
        a.empty(3, order="Z")


def test_zero_size(a):
    x = a.empty((0, 5))
    y = a.empty(0, np.uint8)
    assert x.size == 0 and y.size == 0 and x.shape == (0, 5)
    assert a.used == 0
    assert a.offset_of(x) == 0


def test_zeros_after_reuse_are_zero(a):
    x = a.full(1000, 255, dtype=np.uint8)
    del x
    a.reset()
    z = a.zeros(1000, np.uint8)
    assert not z.any()


def test_scalar_shape_forms(a):
    assert a.empty(np.int64(3)).shape == (3,)
    assert a.empty([2, np.int32(3)]).shape == (2, 3)
    assert a.empty(()).shape == ()
    with pytest.raises(TypeError):
        a.empty(2.5)
    with pytest.raises(TypeError):
        a.empty((2, "x"))
    with pytest.raises(ValueError):
        a.empty((2, -1))
    with pytest.raises(ValueError):
        a.empty(-1)
    with pytest.raises(ValueError):
        a.empty((1,) * 65)


@pytest.mark.parametrize("dtype", [object, np.dtype([("a", "O")]), np.dtype(("O", 2))])
def test_object_dtypes_refused(a, dtype):
    with pytest.raises(TypeError):
        a.empty(3, dtype)
    with pytest.raises(TypeError):
        a.array([object(), 1])
    with pytest.raises(TypeError):
        a.full(2, object())
    assert a.used == 0 and a.num_allocations == 0


@pytest.mark.parametrize("shape", [(1 << 62, 4), (1 << 40, 1 << 40), (2**63 - 1,),
                                   (1 << 31, 1 << 31, 1 << 31)])
def test_overflowing_shapes_never_wrap(a, shape):
    with pytest.raises((ValueError, MemoryError, OverflowError)):
        a.empty(shape, np.float64)
    assert a.used == 0 and a.live_views == 0


def test_huge_ints_refused(a):
    with pytest.raises((ValueError, OverflowError)):
        a.empty(2**64)
    with pytest.raises((ValueError, OverflowError)):
        a.alloc(2**64)


def test_beyond_reservation_is_memoryerror_and_changes_nothing(a):
    keep = a.full(10, 3.0)
    used = a.used
    with pytest.raises(MemoryError):
        a.empty(a.reserved)
    with pytest.raises(ArenaFullError):
        a.alloc(a.available + 1)
    assert a.used == used and keep.tolist() == [3.0] * 10
    x = a.alloc(a.available, align=1)
    assert x.size == a.reserved - used and a.available == 0


def test_full_failure_rolls_back(a):
    used = a.used
    with pytest.raises((TypeError, ValueError)):
        a.full(3, "not a number", dtype=np.float64)
    assert a.used == used and a.num_allocations == 0 and a.live_views == 0


def test_view_and_offset_of(a):
    x = a.array(np.arange(10, dtype=np.int32))
    off = a.offset_of(x)
    v = a.view(off + 8, (2, 2), np.int32)
    assert v.tolist() == [[2, 3], [4, 5]]
    v[0, 0] = -1
    assert x[2] == -1
    assert a.offset_of(x[3:]) == off + 12
    assert a.offset_of(x[::-1]) == off + 36
    with pytest.raises(ValueError):
        a.view(a.used - 3, 1, np.int32)
    with pytest.raises(ValueError):
        a.view(-1, 1)
    with pytest.raises(ValueError):
        a.view(0, 1 << 62, np.float64)
    with pytest.raises(ValueError):
        a.offset_of(np.arange(3))
    with pytest.raises(TypeError):
        a.offset_of([1, 2])
    with Arena(1 << 20) as other:
        y = other.zeros(3)
        with pytest.raises(ValueError):
            a.offset_of(y)
        del y


def test_platform_queries():
    assert arena.page_size() == 4096 or arena.page_size() > 0
    assert arena.allocation_granularity() % arena.page_size() == 0
    sizes = arena.page_sizes()
    assert sizes[0] == arena.page_size() and list(sizes) == sorted(set(sizes))
    info = arena.system_info()
    for key in ("page_size", "page_sizes", "thp_mode", "hugetlb", "overcommit_memory",
                "max_map_count", "memlock_limit"):
        assert key in info
    assert set(info["hugetlb"]) == set(sizes[1:])
    assert info["thp_mode"] in ("always", "madvise", "never", None)


def test_full_failure_keeps_what_the_conversion_allocated(a):
    class Sneaky:
        """A fill value whose conversion allocates from the same arena, then fails."""
        def __float__(self):
            self.kept = a.full(4, 5.0)
            raise ValueError("no")

    sneaky = Sneaky()
    with pytest.raises(ValueError):
        a.full(3, sneaky, dtype=np.float64)
    # The rollback must not free memory that a later allocation (the conversion's) holds.
    assert a.used == a.offset_of(sneaky.kept) + 32 and (sneaky.kept == 5.0).all()
    again = a.zeros(4)
    assert a.offset_of(again) >= a.offset_of(sneaky.kept) + 32
