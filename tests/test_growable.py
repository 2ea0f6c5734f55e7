"""Growable: growth in place, views and their liveness, bad input, capacity, reentrancy, and a
hypothesis state machine against a plain list. Files (.npy) are in test_growable_npy.py."""
import gc
import pickle
import textwrap
import threading
import tracemalloc

import numpy as np
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import arena
from arena import ArenaFullError, ArenaOptions, Flags, Growable
from arena._system import mapping_stats, thp_mode
from helpers import check_child, close_after_run

MiB = 1 << 20


def test_growth_never_moves_or_copies():
    g = Growable(np.float32, item_shape=3)
    g.append([1, 2, 3])
    first = g.array
    address = first.ctypes.data
    for k in range(40):  # far past the first commit step and onto huge pages
        g.extend(np.full((10_000, 3), k, np.float32))
    assert g.array.ctypes.data == address
    assert first.tolist() == [[1, 2, 3]]
    assert g.shape == (400_001, 3) and len(g) == 400_001
    assert g.nbytes == 400_001 * 12 and g.committed >= g.nbytes
    assert (g.array[1:10_001] == 0).all() and (g.array[-10_000:] == 39).all()
    first[0, 0] = 7  # a view of the same bytes, writable
    assert g[0, 0] == 7


def test_properties_and_repr():
    g = Growable("i2", (2, 3), capacity_bytes=1 << 20)
    assert g.dtype == np.int16 and g.item_shape == (2, 3) and g.shape == (0, 2, 3)
    assert g.capacity == (1 << 20) // 12
    assert "len=0" in repr(g) and "int16" in repr(g) and "(2, 3)" in repr(g)
    g.close()
    assert g.closed and "closed" in repr(g)


@pytest.mark.parametrize("dtype, item_shape, want", [
    (("f8", (3,)), (), ("f8", (3,))),
    (("f8", (3,)), 2, ("f8", (2, 3))),
    ("S0", (), ("S1", ())),
    (np.dtype([("t", "f8"), ("xyz", "f4", 3)]), [4], (np.dtype([("t", "f8"), ("xyz", "f4", 3)]),
                                                      (4,))),
    ("M8[ms]", [2], ("M8[ms]", (2,))),
])
def test_item_types_follow_numpy(dtype, item_shape, want):
    g = Growable(dtype, item_shape)
    assert (g.dtype, g.item_shape) == (np.dtype(want[0]), want[1])
    assert g.array.shape == np.empty((0,) + want[1], want[0]).shape


@pytest.mark.parametrize("dtype, item_shape, error", [
    (object, (), TypeError),
    ([("a", "f8"), ("b", "O")], (), TypeError),
    (float, -1, ValueError),
    (float, (2, -3), ValueError),
    (float, True, TypeError),
    (float, (1.5,), TypeError),
    (float, (1,) * 64, ValueError),
    ("not a dtype", (), TypeError),
])
def test_bad_item_types(dtype, item_shape, error):
    with pytest.raises(error):
        Growable(dtype, item_shape)


@pytest.mark.parametrize("capacity", [0, -1, 1.5, True, "1"])
def test_bad_capacity(capacity):
    with pytest.raises((TypeError, ValueError)):
        Growable(capacity_bytes=capacity)


def test_indexing_as_on_the_array():
    g = Growable(int)
    g.extend(range(10))
    assert g[3] == 3 and g[-1] == 9 and isinstance(g[3], np.integer)
    assert g[2:5].tolist() == [2, 3, 4] and g[::-3].tolist() == [9, 6, 3, 0]
    assert g[[0, 9]].tolist() == [0, 9] and g[g.array > 7].tolist() == [8, 9]
    g[0] = 100
    g[1:3] = [-1, -2]
    assert g.array[:4].tolist() == [100, -1, -2, 3]
    assert list(g)[:2] == [100, -1] and np.asarray(g).sum() == g.array.sum()
    assert np.shares_memory(np.asarray(g), g.array)
    assert np.asarray(g, dtype=float).dtype == float
    assert not np.shares_memory(np.array(g, copy=True), g.array)
    with pytest.raises(ValueError):
        np.asarray(g, dtype=float, copy=False)
    with pytest.raises(IndexError):
        g[10]
    rows = Growable(float, 2)
    rows.extend([[1, 2], [3, 4]])
    assert rows[1].tolist() == [3, 4] and rows[:, 1].tolist() == [2, 4]
    assert [r.tolist() for r in rows] == [[1, 2], [3, 4]]


@pytest.mark.parametrize("dtype", ["f8", "i8", "f4", "u1", "i8", ">f8", "c16", "?", "M8[s]",
                                   "U3"])
@pytest.mark.parametrize("value", [1.75, -3, 2**70, 1e300, "7", "x", None, True, 1 + 2j,
                                   np.float32(2.5), np.int8(-4), [1.0], "2020-01-01",
                                   np.datetime64(5, "s")])
def test_append_converts_as_setitem_does(dtype, value):
    want = np.zeros(1, dtype)
    g = Growable(dtype)
    g.append(1 if dtype != "M8[s]" else np.datetime64(1, "s"))
    try:
        with np.errstate(all="ignore"):
            want[0] = value
    except Exception as exc:
        with pytest.raises(type(exc)):
            with np.errstate(all="ignore"):
                g.append(value)
        assert len(g) == 1
    else:
        with np.errstate(all="ignore"):
            g.append(value)
        assert len(g) == 2 and g.array[1:].tobytes() == want.tobytes()


def test_extend_forms():
    g = Growable(np.int32, 2)
    g.extend(np.arange(4).reshape(2, 2))                  # an array: one copy
    g.extend(np.arange(20).reshape(5, 4)[:, ::2][:2])     # strided
    g.extend([[9, 9]])                                    # a list
    g.extend((i, i) for i in range(3))                  # a generator, chunked
    g.extend(memoryview(np.array([[7, 8]], np.int32)))    # a buffer
    g.extend(np.empty((0, 2)))
    g.extend([])
    assert g.array.tolist() == [[0, 1], [2, 3], [0, 2], [4, 6], [9, 9], [0, 0], [1, 1],
                                [2, 2], [7, 8]]
    b = Growable(np.uint8)
    b.extend(b"ab")  # bytes and strings are iterables of items, as for list.extend
    assert b.array.tolist() == [97, 98]
    b.extend(b)      # from itself: the array so far is copied after it
    assert b.array.tolist() == [97, 98, 97, 98]


@pytest.mark.parametrize("values, error", [
    (5, TypeError),
    (None, TypeError),
    (np.float64(1.0), ValueError),  # array-like, 0-d
    (np.array(1.0), ValueError),
    (np.ones((2, 3)), ValueError),
    ([[1, 2], [3]], ValueError),
    ([1, "x"], ValueError),
    ("abc", ValueError),
    (np.array(["a"]), ValueError),
])
def test_bad_extend_adds_nothing(values, error):
    g = Growable(float)
    g.extend([1.0, 2.0])
    with pytest.raises(error):
        g.extend(values)
    assert g.array.tolist() == [1.0, 2.0]
    g.append(3.0)
    assert g.array.tolist() == [1.0, 2.0, 3.0]


def test_a_failing_iterable_adds_nothing():
    g = Growable(float)
    g.append(-1.0)

    def items(fail_at):
        for i in range(fail_at):
            yield float(i)
        raise KeyError("the source broke")

    for fail_at in (0, 5, 100_000):  # 100_000 items: several chunks were already copied
        with pytest.raises(KeyError):
            g.extend(items(fail_at))
        assert g.array.tolist() == [-1.0]
    with pytest.raises(ValueError):
        g.extend([0.0] * 100_000 + ["not a number"])
    g.extend(float(i) for i in range(3))
    assert g.array.tolist() == [-1.0, 0.0, 1.0, 2.0]


def test_wrong_item_shape():
    g = Growable(float, 3)
    for item in (1.0, [1, 2], [[1, 2, 3]], np.ones(4), "abc"):
        with pytest.raises(ValueError):
            g.append(item)
    for values in ([1, 2, 3], [[1, 2]], np.ones((2, 3, 1)), [[1], [2]]):
        with pytest.raises(ValueError):
            g.extend(values)
    assert len(g) == 0
    g.append(np.arange(6.0)[::2])  # any strides
    assert g.array.tolist() == [[0, 2, 4]]


def test_capacity_is_enforced_and_leaves_the_length_alone():
    g = Growable(float, capacity_bytes=4096)
    assert g.capacity == 512
    g.extend(np.arange(511.0))
    with pytest.raises(ArenaFullError) as exc:
        g.extend([1.0, 2.0])
    assert isinstance(exc.value, MemoryError) and len(g) == 511
    with pytest.raises(ArenaFullError):
        g.extend(float(i) for i in range(2))
    with pytest.raises(ArenaFullError):
        g.reserve(513)
    g.append(1.0)
    with pytest.raises(ArenaFullError):
        g.append(2.0)
    assert len(g) == 512 and g[-1] == 1.0
    g.truncate(0)
    g.extend(np.ones(512))
    assert g.array.sum() == 512


def test_reserve_commits_ahead():
    g = Growable(float, capacity_bytes=1 << 30)
    g.reserve(3_000_000)
    committed = g.committed
    assert committed >= 24_000_000 and len(g) == 0
    for _ in range(1000):
        g.append(1.0)
    g.extend(np.zeros(2_000_000))
    assert g.committed == committed
    g.reserve(5)  # less than there is: nothing to do
    for bad, error in ((-1, ValueError), (1.0, TypeError), (True, TypeError)):
        with pytest.raises(error):
            g.reserve(bad)


def test_truncate_refuses_while_a_view_reaches_past_the_cut():
    g = Growable(float)
    g.extend(np.arange(10.0))
    whole = g.array
    head = g[:3]           # reaches items 0..2 exactly
    row = g[4]             # a scalar: a copy, not a view
    middle = g[2:6:2]      # items 2 and 4
    with pytest.raises(BufferError, match="cannot truncate to 5 items: 1 view"):
        g.truncate(5)      # `whole` reaches item 9
    del whole
    g.truncate(5)          # `middle` ends at item 4
    with pytest.raises(BufferError):
        g.truncate(4)
    del middle
    g.truncate(3)
    with pytest.raises(BufferError):
        g.clear()
    g.extend([30.0, 40.0])  # overwrites what truncate dropped; `head` is untouched
    assert head.tolist() == [0, 1, 2] and g.array.tolist() == [0, 1, 2, 30, 40]
    assert row == 4.0
    sliced = g.array[:1]   # a slice of g.array keeps all of g.array alive
    with pytest.raises(BufferError):
        g.truncate(2)
    del sliced, head
    g.clear()
    assert len(g) == 0
    for bad, error in ((1, ValueError), (-1, ValueError), (0.0, TypeError), (False, TypeError)):
        with pytest.raises(error):
            g.truncate(bad)


def test_truncate_and_decommit_give_memory_back():
    g = Growable(np.uint8, capacity_bytes=1 << 30)
    g.extend(np.ones(64 * MiB, np.uint8))
    assert g.committed >= 64 * MiB
    g.truncate(MiB, decommit=True)
    assert g.committed < 4 * MiB
    g.reserve(32 * MiB)
    g.decommit()
    assert g.committed < 4 * MiB and (g.array == 1).all()
    g.clear(decommit=True)
    assert g.committed == 0
    g.extend([1, 2])
    assert g.array.tolist() == [1, 2]


def test_views_outlive_the_growable():
    g = Growable(float)
    g.extend(np.arange(100_000.0))
    v = g[10:20]
    w = g.array
    del g
    gc.collect()
    assert v.tolist() == list(range(10, 20)) and w[-1] == 99_999.0


def test_close_and_context_manager():
    g = Growable()
    g.append(1.0)
    v = g.array
    with pytest.raises(BufferError, match="cannot close: 1 view"):
        g.close()
    del v
    g.close()
    g.close()
    for use in (lambda: len(g), lambda: g.append(1.0), lambda: g.extend([1.0]),
                lambda: g.array, lambda: g[0], lambda: g.truncate(0), lambda: g.reserve(1),
                lambda: g.flush(), lambda: g.shape, lambda: g.decommit()):
        with pytest.raises(ValueError, match="closed"):
            use()
    with pytest.raises(KeyError):
        with Growable() as h:
            h.append(2.0)
            kept = h.array
            raise KeyError("the block failed")  # its view is alive: close() must not mask it
    assert not h.closed and kept.tolist() == [2.0]
    with pytest.raises(ValueError):
        Growable.__new__(Growable).append(1.0)  # never opened counts as closed


def test_cannot_be_pickled():
    with pytest.raises(TypeError, match="pickled"):
        pickle.dumps(Growable())


class Hostile:
    """A value whose conversion calls back into the Growable that is storing it."""

    def __init__(self, g, action):
        self.g, self.action = g, action

    def __float__(self):
        self.action(self.g)
        return 5.0


@pytest.mark.parametrize("action", [
    lambda g: g.append(1.0),
    lambda g: g.extend([1.0] * 10_000),
    lambda g: g.truncate(0, decommit=True),
    lambda g: g.decommit(),
    lambda g: g.reserve(10**6),
    lambda g: g.close(),
])
def test_callbacks_cannot_change_it_mid_append(action):
    g = Growable(float)
    g.extend([1.0, 2.0])
    with pytest.raises(RuntimeError, match="cannot change"):
        g.append(Hostile(g, action))
    with pytest.raises(RuntimeError, match="cannot change"):
        g.extend([Hostile(g, action)])
    with pytest.raises(RuntimeError, match="cannot change"):
        g.extend(Hostile(g, action) for _ in range(3))
    assert g.array.tolist() == [1.0, 2.0]
    g.append(3.0)
    assert g.array.tolist() == [1.0, 2.0, 3.0]


def test_callbacks_may_read_it():
    g = Growable(float)
    g.extend([1.0, 2.0])
    seen = []

    def items():
        for i in range(3):
            seen.append((len(g), g.array.sum(), g[0]))  # staged items are not counted yet
            g.flush()
            yield float(i)

    g.extend(items())
    assert seen == [(2, 3.0, 1.0)] * 3 and len(g) == 5


def test_extend_of_an_array_makes_no_temporary():
    g = Growable(float, capacity_bytes=1 << 30)
    x = np.arange(4 * MiB, dtype=float)  # 32 MiB
    tracemalloc.start()
    try:
        g.extend(x)
        g.extend(x[::-1][::-1])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MiB and len(g) == 8 * MiB


def test_an_iterable_is_consumed_in_chunks():
    g = Growable(float, capacity_bytes=1 << 30)
    n = 2_000_000  # materialised as a list of floats: about 64 MiB
    tracemalloc.start()
    try:
        g.extend(float(i) for i in range(n))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * MiB
    assert len(g) == n and g[-1] == n - 1


def test_threads_append_without_losing_items():
    g = Growable(np.int64)

    def work(k):
        for i in range(20_000):
            g.append(k * 1_000_000 + i)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(g.array.tolist()) == sorted(k * 1_000_000 + i for k in range(4)
                                              for i in range(20_000))


def test_options_growable_uses_the_options():
    g = ArenaOptions(8 * MiB).with_flags(Flags.POPULATE).with_commit_step(MiB).growable("u1")
    assert g.capacity == 8 * MiB
    g.append(1)
    assert g.committed == MiB
    with pytest.raises(TypeError):
        arena._core._growable_from_options("not options")


@pytest.mark.skipif(thp_mode() not in ("always", "madvise"), reason="no transparent huge pages")
def test_small_head_then_huge_pages():
    g = Growable(np.uint8, capacity_bytes=64 * MiB)
    g.append(1)
    start = g.array.ctypes.data
    head, rest = mapping_stats(start, 4096), mapping_stats(start + 8 * MiB, 4096)
    assert "nh" in head["VmFlags"] and "hg" in rest["VmFlags"]
    opts = ArenaOptions(64 * MiB).growable(np.uint8)  # the options say no huge pages
    opts.append(1)
    assert "hg" not in mapping_stats(opts.array.ctypes.data + 8 * MiB, 4096)["VmFlags"]


# -- the state machine --------------------------------------------------------------------------

values = st.floats(allow_nan=False, width=32)
CAPACITY = 4096  # items of float32: 16 KiB, so that ArenaFullError comes up


class GrowableMachine(RuleBasedStateMachine):
    """Growable(float32) against a list. Views are held with the items they were taken
    over and how far they reach; after every step each still reads what it read then,
    the array is the list, and the address never changed."""

    def __init__(self):
        super().__init__()
        self.g = Growable(np.float32, capacity_bytes=CAPACITY * 4)
        self.model = []
        self.views = []  # (array, expected contents, items it reaches)
        self.address = self.g.array.ctypes.data

    def _add(self, items, call):
        items = [float(np.float32(v)) for v in items]
        if len(self.model) + len(items) > CAPACITY:
            with pytest.raises(ArenaFullError):
                call()
        else:
            call()
            self.model.extend(items)

    @rule(v=values)
    def append(self, v):
        self._add([v], lambda: self.g.append(v))

    @rule(vs=st.lists(values, max_size=300), how=st.sampled_from(["array", "list", "iter"]))
    def extend(self, vs, how):
        src = {"array": lambda: np.array(vs, np.float32), "list": lambda: vs,
               "iter": lambda: iter(vs)}[how]
        self._add(vs, lambda: self.g.extend(src()))

    @rule(k=st.integers(0, 20_000))
    def extend_large(self, k):
        self._add([7.0] * k, lambda: self.g.extend(np.full(k, 7, np.float32)))

    @rule(vs=st.lists(values, max_size=50), bad=st.sampled_from(["x", [1, 2], object()]))
    def extend_fails(self, vs, bad):
        with pytest.raises((ValueError, TypeError)):
            self.g.extend(list(vs) + [bad])

    @rule(data=st.data(), how=st.sampled_from(["array", "slice", "step"]))
    def take_view(self, data, how):
        n = len(self.model)
        if how == "array":
            self.views.append((self.g.array, list(self.model), n))
            return
        a = data.draw(st.integers(0, n))
        b = data.draw(st.integers(a, n))
        key = slice(a, b) if how == "slice" else slice(b, a, -1)
        reached = range(n)[key]
        self.views.append((self.g[key], self.model[key], max(reached, default=-1) + 1))

    @precondition(lambda self: self.views)
    @rule(data=st.data())
    def drop_view(self, data):
        self.views.pop(data.draw(st.integers(0, len(self.views) - 1)))

    @rule(data=st.data(), decommit=st.booleans())
    def truncate(self, data, decommit):
        k = data.draw(st.integers(0, len(self.model)))
        if any(reach > k for _, _, reach in self.views):
            with pytest.raises(BufferError):
                self.g.truncate(k, decommit=decommit)
        else:
            self.g.truncate(k, decommit=decommit)
            del self.model[k:]

    @rule(k=st.integers(0, CAPACITY + 10))
    def reserve(self, k):
        if k > CAPACITY:
            with pytest.raises(ArenaFullError):
                self.g.reserve(k)
        else:
            self.g.reserve(k)

    @rule()
    def decommit(self):
        self.g.decommit()

    @invariant()
    def agrees_with_the_model(self):
        assert self.g.array.tolist() == self.model and len(self.g) == len(self.model)
        assert self.g.array.ctypes.data == self.address
        for v, items, _ in self.views:
            assert v.tolist() == items

    def teardown(self):
        self.views.clear()
        close_after_run(self.g)


@pytest.mark.slow
class TestGrowableMachine(GrowableMachine.TestCase):
    pass


def test_a_fork_child_can_grow_a_growable_busy_in_another_thread_of_the_parent():
    """A thread of the parent is inside extend() (its generator runs: the Growable refuses
    to change meanwhile) when another thread forks. That thread does not exist in the child:
    the child's copy is not busy (before: every change refused, for good)."""
    out = check_child(textwrap.dedent("""
        import os, threading
        import numpy as np
        from arena import Growable
        g = Growable(np.float64)
        inside, leave = threading.Event(), threading.Event()
        def items():
            yield 1.0
            inside.set()
            leave.wait(30)
            yield 2.0
        t = threading.Thread(target=g.extend, args=(items(),))
        t.start()
        inside.wait(30)
        try:
            g.append(0.0)
            raise AssertionError("the parent's Growable changed while busy")
        except RuntimeError:
            pass
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                g.append(3.0)
                code = 0 if g.array[-1] == 3.0 else 2
            except BaseException as exc:
                print("child:", exc, flush=True)
                code = 1
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        leave.set()
        t.join()
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
        assert list(g.array) == [1.0, 2.0]
        print("ok")
        """))
    assert "ok" in out
