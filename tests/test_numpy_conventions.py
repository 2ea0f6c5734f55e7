"""The allocation calls follow NumPy's conventions (API.md, "v2: NumPy conventions"): the
positional order of NumPy's signatures, ``array(copy, ndmin)``, shapes given as integer
ndarrays, and dtype specs read afresh when they can change (v1 cached them by identity, so
a list or dict spec edited after one call gave the old dtype at the next)."""
import numpy as np
import pytest

import arena
from arena import ArenaOptions


@pytest.fixture
def a():
    return arena.Arena(1 << 24)


# -- dtype specs that can change ----------------------------------------------------------------

def test_a_list_dtype_spec_edited_between_calls_gives_the_new_dtype(a):
    spec = [("x", "f8")]
    first = a.empty(2, spec)
    spec.append(("y", "i4"))
    assert first.dtype.names == ("x",)
    calls = {
        "empty": lambda: a.empty(2, spec), "zeros": lambda: a.zeros(2, spec),
        "full": lambda: a.full(2, 0, spec), "empty_like": lambda: a.empty_like(first, spec),
        "zeros_like": lambda: a.zeros_like(first, spec),
        "array": lambda: a.array(np.zeros(2, spec), dtype=spec),
        "view": lambda: a.view(0, 1, spec),
    }
    for name, call in calls.items():
        assert call().dtype.names == ("x", "y"), name
    spec[1] = ("y", "u1")
    assert a.zeros(1, spec).dtype == np.dtype([("x", "f8"), ("y", "u1")])


def test_a_dict_dtype_spec_edited_between_calls_gives_the_new_dtype(a):
    spec = {"names": ["a"], "formats": ["u1"]}
    assert a.empty(1, spec).dtype.itemsize == 1
    spec["formats"][0] = "f8"
    assert a.empty(1, spec).dtype.itemsize == 8
    assert a.view(0, 1, spec).dtype.itemsize == 8


def test_an_object_with_a_dtype_attribute_is_read_afresh(a):
    class Spec:
        dtype = np.dtype("u1")

    assert a.empty(1, Spec).dtype == np.uint8 and a.empty(1, Spec()).dtype == np.uint8
    Spec.dtype = np.dtype("f4")
    assert a.empty(1, Spec).dtype == np.float32 and a.empty(1, Spec()).dtype == np.float32


def test_cycling_through_many_dtypes_gives_each_its_own(a):
    specs = [np.float64, "f4", np.int32, "u1", float, np.dtype("c8"), "i2", "S3", int, "M8[s]"]
    for _ in range(3):
        for spec in specs:
            assert a.empty(1, spec).dtype == np.dtype(spec)


# -- signatures ---------------------------------------------------------------------------------

def test_order_is_positional_as_in_numpy(a):
    assert a.empty((2, 3), float, "F").flags.f_contiguous
    assert a.zeros((2, 3), "u1", "F").flags.f_contiguous
    x = a.full((2, 3), 1.5, None, "F")
    assert x.flags.f_contiguous and x.dtype == np.float64 and (x == 1.5).all()
    with pytest.raises(ValueError):
        a.empty(3, float, "X")


def test_like_calls_take_numpys_positional_order(a):
    proto = np.ones((3, 4), np.float32, order="F")
    for like in (a.empty_like, a.zeros_like):
        x = like(proto, np.int16, "C", True, (2, 5))
        assert x.shape == (2, 5) and x.dtype == np.int16 and x.flags.c_contiguous
        assert type(x) is np.ndarray
        assert like(proto).flags.f_contiguous            # "K" keeps the prototype's order
        m = like(np.ma.ones(3), subok=False)
        assert type(m) is np.ndarray and m.shape == (3,)


def test_array_copy_and_ndmin(a):
    x = a.array([[1, 2], [3, 4]])
    assert a.array(x, copy=None) is x and a.array(x, copy=False) is x
    assert a.array(x, dtype=np.int64, copy=None) is x
    y = a.array(x)                                  # copy=True: always a copy
    assert y is not x and not np.shares_memory(x, y) and (y == x).all()
    z = a.array(x, dtype=np.float32, copy=None)     # another dtype: a copy is needed
    assert z.dtype == np.float32 and a.offset_of(z) > a.offset_of(y)
    outside = np.arange(3.0)
    c = a.array(outside, copy=None)
    assert a.offset_of(c) >= 0 and not np.shares_memory(c, outside)
    with pytest.raises(ValueError, match="copy"):
        a.array(outside, copy=False)
    with pytest.raises(ValueError, match="copy"):
        a.array([1.0, 2.0], copy=False)
    assert a.array(5.0, ndmin=2).shape == (1, 1)
    assert a.array([1.0, 2.0], ndmin=3).shape == (1, 1, 2)
    assert a.array(x, ndmin=3).shape == (1, 2, 2)
    v = a.array(x, copy=None, ndmin=3)
    assert v.shape == (1, 2, 2) and np.shares_memory(v, x)
    f = a.array(np.ones((2, 3), order="F"), order="K")
    assert f.flags.f_contiguous
    assert a.array(np.ones((2, 3), order="F"), order="C").flags.c_contiguous
    with pytest.raises(ValueError):
        a.array([1.0], ndmin=65)
    with pytest.raises(ValueError):
        a.array([1.0], order="Q")


def test_array_of_python_lists_matches_numpy(a):
    for obj in ([1.0, 2.0, 3.0], [1, 2, 3], [1, 2.5], [True, False], [2 ** 63, 1],
                [[1.0, 2.0], [3.0, 4.0]], [1.0, 1j], [], [0.5] * 1000,
                [np.float32(1.5), 2.0], [-2 ** 63, 2 ** 63 - 1]):
        mine, numpys = a.array(obj), np.array(obj)
        assert mine.dtype == numpys.dtype and mine.shape == numpys.shape, obj
        assert np.array_equal(mine, numpys), obj
        assert a.offset_of(mine) >= 0
    with pytest.raises(TypeError):
        a.array([1, 2 ** 70])                        # NumPy makes an object array of it
    assert a.array([1.0, 2.0], dtype=np.float32).dtype == np.float32
    assert a.array([1, 2], dtype=float).dtype == np.float64


def test_a_shape_may_be_an_integer_ndarray(a):
    for shape in (np.array([2, 3]), np.array([2, 3], np.uint8), np.array(4), np.array([5]),
                  np.int64(3), [np.int32(2), 3]):
        mine, numpys = a.empty(shape), np.empty(shape)
        assert mine.shape == numpys.shape, shape
        assert a.zeros(shape).shape == a.full(shape, 1).shape == numpys.shape
        assert a.empty_like(np.ones(2), shape=shape).shape == numpys.shape
    assert a.view(0, np.array([2]), "u1").shape == (2,)
    for bad in (np.array([2.0, 3.0]), np.array([True, False]), np.array([[2, 3]])):
        with pytest.raises(TypeError):
            a.empty(bad)
        with pytest.raises(TypeError):
            np.empty(bad)
    with pytest.raises(ValueError):
        a.empty(np.array([2, -1]))


def test_options_have_mmap_rs_reservation_names():
    opts = ArenaOptions(1 << 20)
    assert opts.reserve_mut().protection == arena.Protection.READ_WRITE
    assert opts.reserve_none().protection == arena.Protection.NONE
    assert opts.reserve_exec().protection == arena.Protection.READ_EXECUTE
