"""Every size, offset, alignment and shape argument at its limits.

Each value goes to every call that takes such an argument. A plain Python oracle says what
must happen: success with exactly the asked-for size inside the arena, or ValueError /
TypeError / OverflowError / MemoryError. A refusal must leave the arena as it was (numbers
and bytes); a success must never be a wrapped size or a pointer outside ``[0, used)``.
"""
import ctypes
import operator
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest

import arena
from arena import Arena, ArenaOptions

PAGE = arena.page_size()
RESERVED = 16 << 20
MAX_SSIZE = 2 ** 63 - 1
MIN_SSIZE = -(2 ** 63)
MAX_OPT = 2 ** 62

INTS = [0, 1, 7, 8, 64, 100, PAGE, PAGE + 1, 2 * PAGE, 2 ** 21, 2 ** 31 - 1, 2 ** 31, 2 ** 32,
        2 ** 53 + 1, 2 ** 60, 2 ** 61, 2 ** 62, 2 ** 62 + 1, MAX_SSIZE, 2 ** 63, 2 ** 64 - 1,
        2 ** 64, 2 ** 65, 2 ** 200, -1, -8, -PAGE, -(2 ** 31), -(2 ** 62), MIN_SSIZE,
        MIN_SSIZE - 1, -(2 ** 64), -(2 ** 200)]
NUMPY_INTS = [np.int8(8), np.uint8(255), np.int16(-1), np.uint16(4096), np.int32(2 ** 31 - 1),
              np.int64(MAX_SSIZE), np.int64(MIN_SSIZE), np.uint64(2 ** 64 - 1),
              np.uint64(64), np.intp(PAGE), np.uint32(2 ** 32 - 1)]
NOT_INTS = [True, False, np.True_, np.False_, 1.0, 0.0, -0.0, 8.0, 1.5, float("nan"),
            float("inf"), -float("inf"), np.float64(8.0), np.float32(64), np.float16(1),
            1 + 0j, "8", b"8", None, Decimal(8), Fraction(8, 1), object()]
VALUES = INTS + NUMPY_INTS + NOT_INTS


def vid(v):
    return f"{type(v).__name__}({v!r})"[:40]


def as_int(v):
    """The integer an index argument means, or None if it must be refused with TypeError."""
    if isinstance(v, (bool, np.bool_)) or not hasattr(type(v), "__index__"):
        return None
    return operator.index(v)


def as_count(v):
    """The element count a bare shape argument means (bytes are a sequence of ints)."""
    if isinstance(v, bytes):
        return int(np.prod(tuple(v)))
    return as_int(v)


def fits_ssize(n):
    return MIN_SSIZE <= n <= MAX_SSIZE


@pytest.fixture
def arena_with_data():
    x = ArenaOptions(RESERVED).with_commit_step(PAGE).reserve()
    keep = x.full(1000, 7, dtype=np.uint8)      # [0, 1000)
    return x, keep


def snapshot(a, keep):
    return (a.used, a.committed, a.num_allocations, a.live_views, a.levels, a.high_water,
            a.protection, ctypes.string_at(a.address, keep.nbytes))


def run(a, keep, call, expect):
    """``expect``: "ok", or an exception class (tuple) that must be raised with nothing
    changed. Returns the call's result on success."""
    before = snapshot(a, keep)
    if expect == "ok":
        return call()
    try:
        result = call()
    except expect:
        assert snapshot(a, keep) == before
        return None
    raise AssertionError(f"expected {expect}, got {result!r}")


def check_inside(a, x, nbytes):
    """A successful allocation or view: exactly ``nbytes``, inside ``[0, used)``."""
    p = x.__array_interface__["data"][0]
    assert x.nbytes == nbytes
    assert a.address <= p and p + nbytes <= a.address + a.used <= a.address + a.reserved


def alloc_expect(n, itemsize, a):
    """What an allocation of ``n`` items of ``itemsize`` bytes must do."""
    if n is None:
        return TypeError
    if not fits_ssize(n):
        return (OverflowError, ValueError)
    if n < 0:
        return ValueError
    if n * itemsize > MAX_SSIZE:
        return ValueError          # the byte size overflows
    if n * itemsize > a.available - 64:
        return MemoryError
    return "ok"


# -- allocations -----------------------------------------------------------------------------

@pytest.mark.parametrize("value", VALUES, ids=vid)
@pytest.mark.parametrize("call", ["alloc", "empty", "zeros", "full", "empty-tuple",
                                  "zeros-2d", "empty_like-shape"])
def test_allocation_sizes(arena_with_data, call, value):
    a, keep = arena_with_data
    bare = call in ("empty", "zeros", "full")
    n = as_count(value) if bare else as_int(value)
    make, itemsize = {
        "alloc": (lambda: a.alloc(value), 1),
        "empty": (lambda: a.empty(value), 8),
        "zeros": (lambda: a.zeros(value, np.int16), 2),
        "full": (lambda: a.full(value, 3, np.int32), 4),
        "empty-tuple": (lambda: a.empty((value,), np.uint8), 1),
        "zeros-2d": (lambda: a.zeros((2, value), np.float32), 8),
        "empty_like-shape": (lambda: a.empty_like(keep, shape=(value, 1)), 1),
    }[call]
    expect = alloc_expect(n, itemsize, a)
    x = run(a, keep, make, expect)
    if x is not None:
        check_inside(a, x, n * itemsize)
        if call == "zeros":
            assert not x.any()
        if call == "full":
            assert (x == 3).all()


@pytest.mark.parametrize("value", VALUES, ids=vid)
def test_alignment(arena_with_data, value):
    a, keep = arena_with_data
    n = as_int(value)
    if value is None:
        expect, n = "ok", a.alignment   # None: the arena's default alignment
    elif n is None:
        expect = TypeError
    elif not fits_ssize(n):
        expect = (OverflowError, ValueError)
    elif n <= 0 or n & (n - 1) or n > PAGE:
        expect = ValueError
    else:
        expect = "ok"
    x = run(a, keep, lambda: a.empty(3, np.uint8, align=value), expect)
    if x is not None:
        check_inside(a, x, 3)
        assert x.__array_interface__["data"][0] % n == 0


SHAPES = [((), 1), ((0,), 0), ((0, 2 ** 62), 0), ((1,) * 64, 1), ([2, 3], 6), (range(3), 0),
          ((1,) * 65, ValueError), ((2 ** 32, 2 ** 32), ValueError),
          ((2 ** 31, 2 ** 31, 4), ValueError), ((2 ** 62, 2 ** 62, 0), ValueError),
          ((MAX_SSIZE, 2), ValueError), ((-1,), ValueError), ((2, -1), ValueError),
          ((2 ** 63,), OverflowError), ((MIN_SSIZE - 1,), OverflowError),
          ((1.0,), TypeError), ((True,), TypeError), ((np.True_,), TypeError),
          (([1],), TypeError), ((None,), TypeError), (("1",), TypeError),
          (range(10 ** 12), ValueError), (tuple(range(1000)), ValueError),
          ("ab", TypeError), (b"\x01\x02", 2), ({}, 1), (np.int64(5), 5), (np.uint8(0), 0),
          (2 ** 25, MemoryError), ((2 ** 12, 2 ** 12), MemoryError)]


@pytest.mark.parametrize("shape,outcome", SHAPES, ids=lambda v: vid(v) if not isinstance(
    v, int) or isinstance(v, bool) else str(v))
@pytest.mark.parametrize("call", ["empty", "view"])
def test_shapes(arena_with_data, call, shape, outcome):
    """Shapes: tuples of every length up to NumPy's limit, huge and negative dimensions,
    dimensions whose product overflows (with and without a zero), non-integers."""
    a, keep = arena_with_data
    if isinstance(outcome, type):
        expect = outcome
    else:
        expect = "ok"
    if call == "view" and expect is MemoryError:
        expect = ValueError        # a view past ``used`` is a ValueError
    if call == "view" and isinstance(outcome, int) and outcome > a.used:
        expect = ValueError
    make = (lambda: a.empty(shape, np.uint8)) if call == "empty" else \
        (lambda: a.view(0, shape, np.uint8))
    x = run(a, keep, make, expect)
    if x is not None:
        check_inside(a, x, outcome)


# -- views and offsets -----------------------------------------------------------------------

@pytest.mark.parametrize("value", VALUES, ids=vid)
def test_view_offset(arena_with_data, value):
    a, keep = arena_with_data
    n = as_int(value)
    if n is None:
        expect = TypeError
    elif not fits_ssize(n):
        expect = (OverflowError, ValueError)
    elif n < 0 or n + 8 > a.used:
        expect = ValueError
    else:
        expect = "ok"
    x = run(a, keep, lambda: a.view(value, 2, np.uint32), expect)
    if x is not None:
        check_inside(a, x, 8)
        assert a.offset_of(x) == n


@pytest.mark.parametrize("value", VALUES, ids=vid)
def test_view_count(arena_with_data, value):
    a, keep = arena_with_data
    n = as_count(value)
    expect = alloc_expect(n, 2, a)
    if expect == "ok" and 2 * n > a.used:
        expect = ValueError
    if expect is MemoryError:
        expect = ValueError
    x = run(a, keep, lambda: a.view(0, value, np.uint16), expect)
    if x is not None:
        check_inside(a, x, 2 * n)


@pytest.mark.parametrize("value", VALUES + [np.zeros(3), np.zeros(0), [1, 2], memoryview(b"x")],
                         ids=vid)
def test_offset_of_non_arena_objects(arena_with_data, value):
    a, keep = arena_with_data
    expect = ValueError if isinstance(value, np.ndarray) else TypeError
    run(a, keep, lambda: a.offset_of(value), expect)


def test_offset_of_arrays_at_the_edges(arena_with_data):
    a, keep = arena_with_data
    assert a.offset_of(keep) == 0 and a.offset_of(keep[999:]) == 999
    assert a.offset_of(a.view(a.used, 0, np.uint8)) == a.used   # zero bytes at ``used``
    other = Arena(1 << 20)
    for foreign in (other.zeros(4), np.zeros(4), np.empty(0)):
        with pytest.raises(ValueError):
            a.offset_of(foreign)
    end = a.address + a.reserved   # arrays over raw addresses (never read): at the end...
    past = np.frombuffer((ctypes.c_char * 8).from_address(end), np.uint8)
    empty_at_end = np.frombuffer((ctypes.c_char * 0).from_address(end), np.uint8)
    before = np.frombuffer((ctypes.c_char * 8).from_address(a.address - 8), np.uint8)
    with pytest.raises(ValueError):
        a.offset_of(past)
    with pytest.raises(ValueError):
        a.offset_of(before)
    assert a.offset_of(empty_at_end) == a.reserved


# -- memory control ---------------------------------------------------------------------------

@pytest.mark.parametrize("value", VALUES, ids=vid)
def test_commit(arena_with_data, value):
    a, keep = arena_with_data
    n = as_int(value)
    if n is None:
        expect = TypeError
    elif n < 0 or n > a.reserved:
        expect = ValueError
    else:
        expect = "ok"
    run(a, keep, lambda: a.commit(value), expect)
    if expect == "ok":
        assert a.committed >= n and a.committed % PAGE == 0 and a.committed <= a.reserved


@pytest.mark.parametrize("value", VALUES, ids=vid)
@pytest.mark.parametrize("which", ["offset", "size"])
def test_flush(arena_with_data, which, value):
    a, keep = arena_with_data
    n = as_int(value)
    if n is None and not (which == "size" and value is None):
        expect = TypeError
    elif n is None:
        expect = "ok"                  # size=None: the whole committed range
    elif not fits_ssize(n):
        expect = (OverflowError, ValueError)
    elif n < 0 or n > a.committed:
        expect = ValueError
    else:
        expect = "ok"
    call = (lambda: a.flush(value)) if which == "offset" else (lambda: a.flush(0, value))
    run(a, keep, call, expect)


# -- options and construction ------------------------------------------------------------------

def bounded(n, lo_exclusive, hi_inclusive):
    if n is None:
        return TypeError
    return "ok" if lo_exclusive < n <= hi_inclusive else ValueError


@pytest.mark.parametrize("value", VALUES, ids=vid)
@pytest.mark.parametrize("method", ["ArenaOptions", "with_commit_step", "with_alignment",
                                    "with_address", "with_page_size", "with_file-offset"])
def test_options(tmp_path, method, value):
    base = ArenaOptions(1 << 20)
    n = as_int(value)
    if method == "ArenaOptions":
        expect, call = bounded(n, 0, MAX_OPT), lambda: ArenaOptions(value)
    elif method == "with_commit_step":
        expect, call = bounded(n, 0, MAX_OPT), lambda: base.with_commit_step(value)
    elif method == "with_alignment":
        expect = bounded(n, 0, PAGE)
        if expect == "ok" and n & (n - 1):
            expect = ValueError
        call = lambda: base.with_alignment(value)  # noqa: E731
    elif method == "with_address":
        expect = "ok" if value is None else bounded(n, 0, MAX_OPT - 1)
        if expect == "ok" and value is not None and n % PAGE:
            expect = ValueError
        call = lambda: base.with_address(value)  # noqa: E731
    elif method == "with_page_size":
        expect = TypeError if n is None else ("ok" if n in arena.page_sizes() else ValueError)
        call = lambda: base.with_page_size(value)  # noqa: E731
    else:
        expect = bounded(n, -1, MAX_OPT - 1)
        if expect == "ok" and n % PAGE:
            expect = ValueError
        call = lambda: base.with_file(tmp_path / "f", offset=value)  # noqa: E731
    before = (base.size, base.commit_step, base.alignment, base.address, base.file)
    if expect == "ok":
        opts = call()
        assert isinstance(opts, ArenaOptions) and opts is not base
    else:
        with pytest.raises(expect):
            call()
    assert (base.size, base.commit_step, base.alignment, base.address, base.file) == before


@pytest.mark.parametrize("value", VALUES, ids=vid)
def test_arena_constructor(value):
    n = as_int(value)
    expect = bounded(n, 0, MAX_OPT)
    if expect != "ok":
        with pytest.raises(expect):
            Arena(value)
        return
    try:
        a = Arena(value)
    except MemoryError:
        assert n > 1 << 46                     # only sizes no address space holds
        return
    assert a.reserved == -(-n // PAGE) * PAGE and a.used == 0
    a.close()
