"""Hypothesis state machines over the public API, each checked against a plain Python model.

``ArenaMachine`` covers allocation and marks: its model is a dict of live allocations (offset,
size, level, the byte pattern written) and a stack of marks; after every step the arena must
agree with it.

``FuzzMachine`` covers the whole public API: every allocation kind, views, slices,
``view``/``offset_of`` with good and bad offsets, scopes (with leaks and exceptions), reset
with and without decommit, commit/decommit, protection changes, NumPy's own allocations
(NEP 49, including ``realloc`` through ``ndarray.resize``), bad arguments of every kind,
hostile arguments (an ``__index__``, ``__float__``, ``__array__`` or ``dtype`` attribute
that allocates from the same arena, and sometimes raises), dtype specs edited between
calls, and marks and resets from another thread.
After every step:

* every live array still holds its bytes (read through ctypes, so that the probe is not
  itself a view), and no two live allocations overlap;
* ``used``, ``committed``, ``high_water``, ``num_allocations``, ``live_views``, ``levels``
  and ``protection`` equal the model's;
* every refused call raised the documented error and changed nothing.

Both run under the hypothesis profile conftest.py loads: ``ci`` when ``HYPOTHESIS_PROFILE``
is unset (a few thousand steps each, well under a minute), ``long`` with
``HYPOTHESIS_PROFILE=long`` (far more).
"""
import ctypes
import threading

import numpy as np
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, initialize, invariant, precondition,
                                 rule)

import arena
from arena import Arena, ArenaFullError, ArenaOptions, Flags, Protection, UnsafeFlags
from helpers import close_after_run

PAGE = arena.page_size()
R, W, X = 1, 2, 4
DTYPES = [np.dtype(t) for t in ("u1", "i2", "f4", "f8", "c16", "S3", "M8[s]")]
BAD_DTYPES = [object, "O", np.dtype([("a", "f8"), ("b", "O")]), np.dtypes.StringDType()]
STEPS = [0]  # steps run, across examples (reported by the test)

small_shapes = st.one_of(st.integers(0, 64),
                         st.lists(st.integers(0, 12), min_size=0, max_size=3).map(tuple))
aligns = st.one_of(st.none(), st.sampled_from([1, 2, 8, 16, 64, 256, 4096]))


def round_up(n, k):
    return -(-n // k) * k


def addr(x):
    return x.__array_interface__["data"][0]


def raw(address, n):
    """Bytes at ``address`` read by ctypes: no array, so no view is made."""
    return ctypes.string_at(address, n) if n else b""


# -- ArenaMachine: allocation and marks ---------------------------------------------------------

ALLOC_SIZE = 1 << 18
ALLOC_DTYPES = [np.uint8, np.int16, np.float32, np.float64, np.complex128]
alloc_shapes = st.one_of(st.integers(0, 300),
                         st.lists(st.integers(0, 24), min_size=0, max_size=3).map(tuple))


def raw_array(x, nbytes):
    """The bytes under ``x`` read through ctypes, so the probe is not itself a view."""
    return np.ctypeslib.as_array((ctypes.c_uint8 * nbytes).from_address(x.ctypes.data))


class ArenaMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.arena = ArenaOptions(ALLOC_SIZE).with_commit_step(16384).reserve()
        self.live = {}      # key -> (array, offset, nbytes, level, pattern byte)
        self.marks = []     # (Mark, used at the mark)
        self.used = 0
        self.count = 0
        self.key = 0

    def level(self):
        return len(self.marks)

    @rule(shape=alloc_shapes, dtype=st.sampled_from(ALLOC_DTYPES), kind=st.sampled_from(
        ["empty", "zeros", "full", "alloc", "array"]), order=st.sampled_from("CF"),
        align=st.one_of(st.none(), st.sampled_from([1, 8, 64, 512, 4096])))
    def allocate(self, shape, dtype, kind, order, align):
        dt = np.dtype(dtype)
        if kind == "alloc":
            n = shape if isinstance(shape, int) else int(np.prod(shape))
            nbytes, make = n, lambda: self.arena.alloc(n, align=align)
        else:
            nbytes = int(np.prod(shape)) * dt.itemsize
            make = {
                "empty": lambda: self.arena.empty(shape, dt, order=order, align=align),
                "zeros": lambda: self.arena.zeros(shape, dt, order=order, align=align),
                "full": lambda: self.arena.full(shape, 3, dt, order=order, align=align),
                "array": lambda: self.arena.array(np.ones(shape, dt), align=align),
            }[kind]
        start = round_up(self.used, align or 64)
        if start + nbytes > ALLOC_SIZE:
            try:
                make()
            except ArenaFullError:
                assert self.arena.used == self.used
                return
            raise AssertionError("allocation past the reservation succeeded")
        x = make()
        if nbytes:
            assert self.arena.offset_of(x) == start
        if kind == "zeros":
            assert not x.any()
        if kind == "full":
            assert (x == 3).all()
        if kind == "array":
            assert (x == 1).all()
        assert x.ctypes.data % (align or 64) == 0
        pattern = self.key % 251
        if nbytes:
            raw_array(x, nbytes)[:] = pattern
        self.used = start + nbytes
        self.count += 1
        self.live[self.key] = (x, start, nbytes, self.level(), pattern)
        self.key += 1

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    def drop(self, data):
        key = data.draw(st.sampled_from(sorted(self.live)))
        del self.live[key]

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    def slice_and_view(self, data):
        key = data.draw(st.sampled_from(sorted(self.live)))
        x, start, nbytes, level, pattern = self.live[key]
        if nbytes:
            v = self.arena.view(start, nbytes, np.uint8)
            assert (v == pattern).all()
            flat = x.reshape(-1, order="A")  # a view for C and F order alike
            assert self.arena.offset_of(flat[len(flat) // 2:]) >= start

    @rule()
    def mark(self):
        self.marks.append((self.arena.mark(), self.used, self.count))

    @precondition(lambda self: self.marks)
    @rule(data=st.data())
    def release(self, data):
        i = data.draw(st.integers(0, len(self.marks) - 1))
        mark, used, count = self.marks[i]
        blocked = any(level > i for (_, _, _, level, _) in self.live.values())
        try:
            self.arena.release(mark)
        except BufferError:
            assert blocked
            return
        assert not blocked
        del self.marks[i:]
        self.used, self.count = used, count

    @rule()
    def reset(self):
        try:
            self.arena.reset()
        except BufferError:
            assert self.live
            return
        assert not self.live
        self.marks.clear()
        self.used = self.count = 0

    @precondition(lambda self: self.marks)
    @rule()
    def release_twice_is_valueerror(self):
        mark, used, count = self.marks[-1]
        if any(level == len(self.marks) for (_, _, _, level, _) in self.live.values()):
            return
        self.arena.release(mark)
        self.marks.pop()
        self.used, self.count = used, count
        try:
            self.arena.release(mark)
        except ValueError:
            return
        raise AssertionError("a released mark was accepted again")

    @invariant()
    def agrees_with_model(self):
        assert self.arena.used == self.used
        assert self.arena.num_allocations == self.count
        assert self.arena.live_views == len(self.live)
        assert self.arena.levels == len(self.marks) + 1

    @invariant()
    def live_data_intact_and_disjoint(self):
        spans = []
        for x, start, nbytes, _, pattern in self.live.values():
            if nbytes:
                assert (raw_array(x, nbytes) == pattern).all()
                spans.append((start, start + nbytes))
        spans.sort()
        for (_, e0), (s1, _) in zip(spans, spans[1:]):
            assert e0 <= s1

    def teardown(self):
        self.live.clear()
        self.marks.clear()
        close_after_run(self.arena)


@pytest.mark.slow
class TestArenaMachine(ArenaMachine.TestCase):
    pass


# -- FuzzMachine: the whole API -------------------------------------------------------------------

class Item:
    """One array the arena handed out (kind "arena"), an ``a.view`` ("view") or an array
    NumPy allocated through the NEP 49 handler ("block"). ``objs`` holds the array and the
    slices made of it: the item is alive while any of them is."""

    __slots__ = ("kind", "start", "nbytes", "level", "writable", "snap", "objs")

    def __init__(self, kind, obj, start, nbytes, level, writable, snap):
        self.kind, self.start, self.nbytes = kind, start, nbytes
        self.level, self.writable, self.snap = level, writable, snap
        self.objs = [obj]


class Block:
    __slots__ = ("start", "size", "key")

    def __init__(self, start, size, key):
        self.start, self.size, self.key = start, size, key  # key None: dead

    @property
    def end(self):
        return self.start + self.size


class HostileError(Exception):
    """Raised by a hostile conversion (after it allocated from the arena)."""


class Hostile:
    """Runs ``hit`` (an allocation from the arena, maybe an exception) whenever NumPy or the
    arena converts it; each subclass offers one conversion."""

    def __init__(self, hit, value):
        self.hit, self.value = hit, value


class HostileIndex(Hostile):
    def __index__(self):
        self.hit()
        return self.value


class HostileFloat(Hostile):
    def __float__(self):
        self.hit()
        return float(self.value)

    def __int__(self):
        self.hit()
        return int(self.value)


class HostileArray(Hostile):
    def __array__(self, dtype=None, copy=None):
        self.hit()
        return np.full(self.value, 1.0, dtype=dtype)


class HostileDtype(Hostile):
    @property
    def dtype(self):
        self.hit()
        return self.value


# name -> (arena, hit, n, dtype, align) -> (call, bytes it allocates, its alignment or None)
HOSTILE_CALLS = {
    "empty-shape-entry": lambda a, hit, n, dt, al: (
        lambda: a.empty((2, HostileIndex(hit, n)), dt), 2 * n * dt.itemsize, None),
    "zeros-dtype-attribute": lambda a, hit, n, dt, al: (
        lambda: a.zeros(n, HostileDtype(hit, dt)), n * dt.itemsize, None),
    "full-fill-float": lambda a, hit, n, dt, al: (
        lambda: a.full(n, HostileFloat(hit, 2), dt), n * dt.itemsize, None),
    "full-fill-array": lambda a, hit, n, dt, al: (
        lambda: a.full((2, 3), HostileArray(hit, 3)), 48, None),
    "array-__array__": lambda a, hit, n, dt, al: (
        lambda: a.array(HostileArray(hit, n)), 8 * n, None),
    "array-items": lambda a, hit, n, dt, al: (
        lambda: a.array([HostileFloat(hit, 1)] * 2, dtype=dt), 2 * dt.itemsize, None),
    "like-shape-entry": lambda a, hit, n, dt, al: (
        lambda: a.empty_like(np.ones(2, dt), shape=(HostileIndex(hit, n),)),
        n * dt.itemsize, None),
    "alloc-nbytes": lambda a, hit, n, dt, al: (
        lambda: a.alloc(HostileIndex(hit, n)), n, None),
    "empty-align": lambda a, hit, n, dt, al: (
        lambda: a.empty(n, dt, align=HostileIndex(hit, al)), n * dt.itemsize, al),
}


class Refused(Exception):
    """The model's prediction that a call fails with ``exc``."""

    def __init__(self, exc):
        super().__init__(exc)
        self.exc = exc


class FuzzMachine(RuleBasedStateMachine):
    # -- set-up ------------------------------------------------------------------------------

    @initialize(size=st.sampled_from([1 << 16, 1 << 18, 1 << 20]),
                step=st.sampled_from([PAGE, 4 * PAGE, 16 * PAGE]),
                align=st.sampled_from([8, 64, 512]), jit=st.booleans(),
                flags=st.sets(st.sampled_from([Flags.POPULATE, Flags.NO_CORE_DUMP,
                                               Flags.NO_RESERVE, Flags.RANDOM_ACCESS])),
                small=st.sampled_from([0, 1024]), purge=st.sampled_from([None, 0.0]))
    def start(self, size, step, align, jit, flags, small, purge):
        opts = (ArenaOptions(size).with_commit_step(step).with_alignment(align)
                .with_small_threshold(small).with_purge_delay(purge))
        for f in flags:
            opts = opts.with_flags(f)
        if jit:
            opts = opts.with_unsafe_flags(UnsafeFlags.JIT)
        self.a = opts.reserve()
        self.other = Arena(1 << 16)
        self.foreign = self.other.zeros(4)
        self.reserved, self.step, self.align, self.jit = size, step, align, jit
        self.small = small
        self.used = self.nalloc = self.committed = self.hw = 0
        self.prot = R | W
        self.levels = [(None, 0, 0)]  # (Mark, start, nalloc at the mark)
        self.other_marks = set()      # ids of the marks other threads made
        self.dead_marks = []
        self.items = {}
        self.blocks = []
        self.view_end = 0
        self.next_key = 0
        self.pattern = 1

    def teardown(self):
        if not hasattr(self, "a"):
            return
        self.items.clear()
        self.foreign = None
        close_after_run(self.a, self.other)

    # -- the model -----------------------------------------------------------------------------

    def rw(self):
        return self.prot & (R | W) == (R | W)

    def views_since(self, level, writable_only=False):
        n = sum(1 for it in self.items.values() if it.kind != "block" and it.level >= level
                and (it.writable or not writable_only))
        start = self.levels[level][1]
        return n + sum(1 for b in self.blocks if b.key is not None and b.end > start)

    def m_commit(self, end):
        if end <= self.committed:
            return
        new = round_up(end, self.step)
        if new > self.reserved:
            new = round_up(end, PAGE)
        self.committed = new

    def m_bump(self, nbytes, align):
        """Predict an arena allocation; raise Refused when it must fail."""
        if not self.rw():
            raise Refused(ValueError)
        start = round_up(self.used, align)
        if start > self.reserved or nbytes > self.reserved - start:
            raise Refused(ArenaFullError)
        self.m_commit(start + nbytes)
        self.used = start + nbytes
        self.hw = max(self.hw, self.used)
        self.nalloc += 1
        return start

    def m_block_room(self, size):
        """Whether NumPy's request of ``size`` bytes may fail: where the arena is not writable
        or the block would not fit on top (a free block might still serve it)."""
        need = round_up(max(size, 1), 64)
        return not self.rw() or round_up(self.used, 64) + need > self.reserved

    def m_block_add(self, y, key):
        """A block the heap placed where it chose: check what must hold of it, then follow
        the arena's bump pointer (the heap's placement is its own, not the model's)."""
        start = addr(y) - self.a.address
        need = round_up(max(y.nbytes, 1), 64)
        assert start % 64 == 0 and 0 <= start and start + need <= self.a.used
        self.blocks.append(Block(start, need, key))
        self.m_follow_heap(grew=True)
        return start

    def m_block_free(self, key):
        self.blocks = [b for b in self.blocks if b.key != key]
        self.m_follow_heap(grew=False)

    def m_follow_heap(self, grew):
        """The heap moves the bump pointer only up when it takes fresh memory (``grew``), only
        down when a freed block goes back to it, and never below the newest mark, a view() or a live
        allocation; the model then takes the arena's numbers."""
        a = self.a
        used = a.used
        if grew is not None:
            assert (used >= self.used) if grew else (used <= self.used), (used, self.used, grew)
        floor = max([self.levels[-1][1], self.view_end] +
                    [b.end for b in self.blocks] +
                    [it.start + it.nbytes for it in self.items.values()
                     if it.kind != "block" and it.nbytes])
        assert used >= min(floor, self.used), (used, floor)
        assert used <= a.committed <= self.reserved and a.committed % PAGE == 0
        assert a.high_water >= max(used, self.hw)
        self.used, self.committed, self.hw = used, a.committed, a.high_water

    def m_drop_blocks_from(self, offset):
        assert all(b.end <= offset for b in self.blocks)  # else the release had refused

    def snapshot(self):
        return (self.a.used, self.a.committed, self.a.high_water, self.a.num_allocations,
                self.a.live_views, self.a.levels, self.a.protection, self.a.available)

    def add(self, kind, obj, start, nbytes, level, writable, write_pattern):
        key = self.next_key
        self.next_key += 1
        if write_pattern and nbytes:
            ctypes.memset(self.a.address + start, self.pattern, nbytes)
            self.pattern = self.pattern % 251 + 1
        snap = raw(self.a.address + start, nbytes)
        self.items[key] = Item(kind, obj, start, nbytes, level, writable, snap)
        return key

    def kill(self, key):
        it = self.items.pop(key)
        it.objs.clear()
        if it.kind == "block":
            self.m_block_free(key)

    def expect_refusal(self, call, exc):
        """``call`` must raise ``exc`` and change nothing."""
        before = self.snapshot()
        try:
            call()
        except exc:
            pass
        except BaseException as other:
            raise AssertionError(f"expected {exc}, got {type(other).__name__}: {other}") from other
        else:
            raise AssertionError(f"expected {exc}, the call succeeded")
        assert self.snapshot() == before

    # -- allocation ----------------------------------------------------------------------------

    @rule(kind=st.sampled_from(["empty", "zeros", "full", "empty_like", "zeros_like", "array",
                                "alloc"]),
          shape=small_shapes, dtype=st.sampled_from(DTYPES), order=st.sampled_from("CF"),
          align=aligns)
    def allocate(self, kind, shape, dtype, order, align):
        STEPS[0] += 1
        a = self.a
        proto = np.ones(shape, dtype, order=order)
        if kind == "alloc":
            n = shape if isinstance(shape, int) else int(np.prod(shape))
            nbytes, make = n, lambda: a.alloc(n, align=align)
        else:
            nbytes = proto.nbytes
            make = {
                "empty": lambda: a.empty(shape, dtype, order=order, align=align),
                "zeros": lambda: a.zeros(shape, dtype, order=order, align=align),
                "full": lambda: a.full(shape, 1, dtype, order=order, align=align),
                "empty_like": lambda: a.empty_like(proto, align=align),
                "zeros_like": lambda: a.zeros_like(proto, align=align),
                "array": lambda: a.array(proto, align=align),
            }[kind]
        saved = (self.used, self.committed, self.hw, self.nalloc)
        try:
            start = self.m_bump(nbytes, align or self.align)
        except Refused as r:
            self.used, self.committed, self.hw, self.nalloc = saved
            return self.expect_refusal(make, r.exc)
        x = make()
        assert addr(x) == a.address + start and addr(x) % (align or self.align) == 0
        assert x.nbytes == nbytes and x.flags.writeable and not x.flags.owndata
        if kind != "alloc":
            assert x.shape == proto.shape and x.dtype == dtype
            if x.ndim > 1 and 0 not in x.shape and 1 not in x.shape:
                assert x.flags.f_contiguous == (order == "F")
        if kind in ("zeros", "zeros_like"):
            assert not raw(addr(x), nbytes).strip(b"\0")
        elif kind in ("full", "array"):
            assert np.array_equal(x, proto)
        self.add("arena", x, start, nbytes, len(self.levels) - 1, True, True)

    @rule(nbytes=st.integers(0, 1 << 21), align=aligns)
    def allocate_large(self, nbytes, align):
        """Sizes around and past the reservation: ArenaFullError and nothing changes."""
        STEPS[0] += 1
        saved = (self.used, self.committed, self.hw, self.nalloc)
        try:
            start = self.m_bump(nbytes, align or self.align)
        except Refused as r:
            self.used, self.committed, self.hw, self.nalloc = saved
            return self.expect_refusal(lambda: self.a.alloc(nbytes, align=align), r.exc)
        x = self.a.alloc(nbytes, align=align)
        assert addr(x) == self.a.address + start
        self.add("arena", x, start, nbytes, len(self.levels) - 1, True, True)

    # -- views ----------------------------------------------------------------------------------

    @precondition(lambda self: self.items)
    @rule(data=st.data(), how=st.sampled_from(["flat", "half", "step", "T", "drop"]))
    def slice_or_drop(self, data, how):
        """Drop one of an item's arrays, or make a slice of it (which keeps it alive)."""
        STEPS[0] += 1
        key = data.draw(st.sampled_from(sorted(self.items)))
        it = self.items[key]
        if how == "drop":
            i = data.draw(st.integers(0, len(it.objs) - 1))
            del it.objs[i]
            if not it.objs:
                self.kill(key)
            return
        x = it.objs[0]   # the array, or a (maybe non-contiguous) slice of it
        y = {"flat": lambda: x.view(),
             "half": lambda: x[..., x.shape[-1] // 2:] if x.ndim else x.view(),
             "step": lambda: x[..., ::2] if x.ndim else x.view(),
             "T": lambda: x.T}[how]()
        assert y.base is not None   # a view, never a copy
        if y.size:
            off = self.a.offset_of(y)
            assert it.start <= off and off + y.nbytes <= it.start + it.nbytes
        it.objs.append(y)
        assert self.a.live_views == self.views_since(0)  # slices are not new views

    @rule(data=st.data(), dtype=st.sampled_from(DTYPES), order=st.sampled_from("CF"))
    def view(self, data, dtype, order):
        """a.view over bytes in use (of a live item or anywhere below ``used``)."""
        STEPS[0] += 1
        a = self.a
        live = [it for it in self.items.values() if it.nbytes]
        if live and data.draw(st.booleans()):
            it = data.draw(st.sampled_from(live))
            off = it.start + data.draw(st.integers(0, it.nbytes - 1))
        else:
            off = data.draw(st.integers(0, self.used))
        count = data.draw(st.integers(0, max(0, (self.used - off) // dtype.itemsize)))
        shape = data.draw(st.sampled_from([count, (count,), (1, count)]))
        if not self.prot & R:
            return self.expect_refusal(lambda: a.view(off, shape, dtype, order=order),
                                       ValueError)
        v = a.view(off, shape, dtype, order=order)
        nbytes = count * dtype.itemsize
        assert addr(v) == a.address + off and v.nbytes == nbytes
        assert v.flags.writeable == bool(self.prot & W)
        last = off + nbytes - 1 if nbytes else off
        level = max(i for i, (_, s, _) in enumerate(self.levels) if i == 0 or s <= last)
        self.view_end = max(self.view_end, off + nbytes)
        self.add("view", v, off, nbytes, level, bool(self.prot & W), False)

    @rule(data=st.data())
    def bad_view(self, data):
        STEPS[0] += 1
        a, used = self.a, self.used
        off, shape, dtype, exc = data.draw(st.sampled_from([
            (-1, 1, "u1", ValueError), (used + 1, 0, "u1", ValueError),
            (0, used + 1, "u1", ValueError), (used, 1, "u1", ValueError),
            (max(used - 1, 0), 2, "u1", ValueError), (2 ** 63 - 1, 1, "u1", ValueError),
            (2 ** 64, 1, "u1", OverflowError), (-(2 ** 63), 1, "u1", ValueError),
            (True, 1, "u1", TypeError), (1.0, 1, "u1", TypeError), ("0", 1, "u1", TypeError),
            (0, -1, "u1", ValueError), (0, 2 ** 62, "f8", ValueError),
            (0, (2 ** 32, 2 ** 32), "u1", ValueError), (0, (2 ** 63 - 1, 0), "f8", ValueError),
            (0, (1,) * 65, "u1", ValueError), (0, 1.5, "u1", TypeError),
            (0, True, "u1", TypeError), (0, 1, object, TypeError),
            (0, 1, "no such dtype", TypeError)]))
        if not self.prot & R:
            exc = ValueError  # the protection is checked first
        self.expect_refusal(lambda: a.view(off, shape, dtype), exc)

    @rule(data=st.data())
    def offset_of(self, data):
        STEPS[0] += 1
        a = self.a
        sized = [it for it in self.items.values() if it.nbytes]
        if sized and data.draw(st.booleans()):
            it = data.draw(st.sampled_from(sized))
            for x in it.objs:   # the array itself, or slices of it once it was dropped
                off = a.offset_of(x)
                assert it.start <= off <= it.start + it.nbytes
                if x.nbytes == it.nbytes:
                    assert off == it.start
            return
        bad, exc = data.draw(st.sampled_from([(np.zeros(3), ValueError), (3, TypeError),
                                              (None, TypeError), (self.foreign, ValueError),
                                              ([1, 2], TypeError)]))
        self.expect_refusal(lambda: a.offset_of(bad), exc)

    # -- lifetime ---------------------------------------------------------------------------------

    @rule()
    def mark(self):
        STEPS[0] += 1
        m = self.a.mark()
        assert m.offset == self.used
        self.levels.append((m, self.used, self.nalloc))

    def m_release(self, level):
        _, start, nalloc = self.levels[level]
        self.used, self.nalloc = start, nalloc
        self.m_drop_blocks_from(start)
        self.dead_marks += [m for m, _, _ in self.levels[level:]]
        del self.levels[level:]
        self.view_end = min(self.view_end, start)

    @precondition(lambda self: len(self.levels) > 1)
    @rule(data=st.data())
    def release(self, data):
        STEPS[0] += 1
        level = data.draw(st.integers(1, len(self.levels) - 1))
        m = self.levels[level][0]
        if self.views_since(level):
            return self.expect_refusal(lambda: self.a.release(m), BufferError)
        self.a.release(m)
        self.m_release(level)

    @rule(data=st.data())
    def bad_release(self, data):
        STEPS[0] += 1
        choices = [(None, TypeError), (3, TypeError), (self.other.mark(), ValueError),
                   (arena.Mark(), ValueError)]
        if self.dead_marks:
            choices.append((data.draw(st.sampled_from(self.dead_marks)), ValueError))
        m, exc = data.draw(st.sampled_from(choices))
        self.expect_refusal(lambda: self.a.release(m), exc)

    @rule(n=st.integers(0, 4), leak=st.booleans(), raise_inside=st.booleans(),
          shape=small_shapes)
    def scope(self, n, leak, raise_inside, shape):
        """``with a.scope():``; leaking a view makes the exit refuse (BufferError) or, with an
        exception on its way, keep the level without masking the exception."""
        STEPS[0] += 1
        a = self.a
        kept = []
        level = len(self.levels)
        caught = None
        try:
            with a.scope() as m:
                self.levels.append((m, self.used, self.nalloc))
                for _ in range(n):
                    try:
                        start = self.m_bump(int(np.prod(shape)) * 4, self.align)
                    except Refused as r:
                        self.expect_refusal(lambda: a.empty(shape, np.float32), r.exc)
                        continue
                    t = a.empty(shape, np.float32)
                    assert addr(t) == a.address + start
                    if leak:
                        kept.append(self.add("arena", t, start, t.nbytes, level, True, True))
                    del t
                if raise_inside:
                    raise KeyError("inside the scope")
        except (KeyError, BufferError) as exc:
            caught = type(exc)
        blocked = self.views_since(level) > 0
        if raise_inside:
            assert caught is KeyError
        else:
            assert caught is (BufferError if blocked else None)
        if not blocked:
            self.m_release(level)
        else:
            assert a.levels == len(self.levels)

    @rule(decommit=st.booleans())
    def reset(self, decommit):
        STEPS[0] += 1
        if self.views_since(0):
            return self.expect_refusal(lambda: self.a.reset(decommit=decommit), BufferError)
        self.a.reset(decommit=decommit)
        self.m_release(1) if len(self.levels) > 1 else None
        self.used = self.nalloc = self.view_end = 0
        self.blocks.clear()
        if decommit:
            self.committed = 0

    @rule(what=st.sampled_from(["mark", "reset"]))
    def from_another_thread(self, what):
        """Marks are one stack per arena: while this thread has a mark open, another
        thread's mark() or reset() raises RuntimeError and changes nothing (v1: levels of
        two threads interleaved); otherwise it works as here, and a mark made by a thread
        that has ended is anyone's to release."""
        STEPS[0] += 1
        open_here = [m for m, _, _ in self.levels[1:] if id(m) not in self.other_marks]
        refused = bool(open_here) if what == "reset" else \
            len(self.levels) > 1 and id(self.levels[-1][0]) not in self.other_marks
        out = []

        def run():
            try:
                out.append(getattr(self.a, what)())
            except BaseException as exc:  # noqa: BLE001 - checked below, in this thread
                out.append(exc)

        before = self.snapshot()
        t = threading.Thread(target=run)
        t.start()
        t.join()
        (got,) = out
        if refused or (what == "reset" and self.views_since(0)):
            kind = RuntimeError if refused else BufferError
            assert isinstance(got, kind), got
            assert self.snapshot() == before
            return
        assert not isinstance(got, BaseException), got
        if what == "mark":
            assert got.offset == self.used
            self.levels.append((got, self.used, self.nalloc))
            self.other_marks.add(id(got))
        else:
            self.m_release(1) if len(self.levels) > 1 else None
            self.used = self.nalloc = self.view_end = 0
            self.blocks.clear()

    # -- memory control ----------------------------------------------------------------------------

    @rule(data=st.data())
    def commit(self, data):
        STEPS[0] += 1
        n = data.draw(st.one_of(st.integers(0, self.reserved),
                                st.sampled_from([-1, self.reserved + 1, 2 ** 64, 1.0, True,
                                                 "1", None])))
        if isinstance(n, bool) or not isinstance(n, int):
            return self.expect_refusal(lambda: self.a.commit(n), TypeError)
        if n < 0 or n > self.reserved:
            return self.expect_refusal(lambda: self.a.commit(n), ValueError)
        self.a.commit(n)
        self.m_commit(n)

    @rule()
    def decommit(self):
        STEPS[0] += 1
        self.a.decommit()
        self.committed = min(self.committed, round_up(self.used, PAGE))

    @rule(data=st.data())
    def flush(self, data):
        STEPS[0] += 1
        c = self.committed
        off, size, exc = data.draw(st.sampled_from([
            (0, None, None), (0, c, None), (c, 0, None), (0, c + 1, ValueError),
            (-1, None, ValueError), (-(2 ** 63), None, ValueError), (c + 1, None, ValueError),
            (2 ** 64, None, OverflowError), (True, None, TypeError), (0, 1.5, TypeError)]))
        if exc is None:
            self.a.flush(off, size)
        else:
            self.expect_refusal(lambda: self.a.flush(off, size), exc)

    # -- protection ---------------------------------------------------------------------------------

    @rule(what=st.sampled_from(["make_none", "make_read_only", "make_mut", "make_exec",
                                "make_exec_mut"]))
    def protect(self, what):
        STEPS[0] += 1
        call = getattr(self.a, what)
        prot, forbid = {"make_none": (0, 2), "make_read_only": (R, 1), "make_mut": (R | W, 0),
                        "make_exec": (R | X, 1), "make_exec_mut": (R | W | X, 0)}[what]
        if prot == R | W | X and not self.jit:
            return self.expect_refusal(call, PermissionError)
        if forbid and self.views_since(0, writable_only=forbid == 1):
            return self.expect_refusal(call, BufferError)
        call()
        self.prot = prot
        assert self.a.protection == Protection(prot)

    # -- NumPy's allocations (NEP 49) -------------------------------------------------------------

    @rule(ops=st.lists(st.tuples(st.sampled_from(["empty", "zeros", "copy"]),
                                 st.integers(0, 3000), st.sampled_from(DTYPES[:5])),
                       min_size=1, max_size=4))
    def numpy_allocator(self, ops):
        STEPS[0] += 1
        a = self.a
        if not self.rw():  # refused at the door, with the reason
            return self.expect_refusal(lambda: a.numpy_allocator().__enter__(), ValueError)
        made = []
        with a.numpy_allocator() as same:  # only allocations in here: any other NumPy call
            assert same is a                # would allocate its temporaries from the arena
            for kind, n, dtype in ops:
                sources = [it for it in self.items.values() if it.kind != "view"]
                if kind == "copy" and sources:
                    src = sources[n % len(sources)].objs[0]
                    make, size = src.copy, src.nbytes
                else:
                    kind, src = ("zeros" if kind == "copy" else kind), None
                    make, size = (lambda: getattr(np, kind)(n, dtype)), n * dtype.itemsize
                if size < self.small:  # NumPy's own allocator serves it
                    y = make()
                    assert not (a.address <= addr(y) < a.address + self.reserved)
                    made.append((y, None, kind, src, raw(addr(y), y.nbytes)))
                    continue
                if self.m_block_room(size):
                    try:
                        y = make()
                    except MemoryError:
                        assert self.snapshot()[:4] == (self.used, self.committed, self.hw,
                                                      self.nalloc)
                        continue
                else:
                    y = make()
                fresh = raw(addr(y), y.nbytes)
                key = self.next_key
                start = self.m_block_add(y, key)
                assert self.add("block", y, start, y.nbytes, None, True, True) == key
                made.append((y, start, kind, src, fresh))
                del y
        for y, start, kind, src, fresh in made:
            assert y.flags.owndata and (start is None or addr(y) == a.address + start)
            if kind == "zeros":
                assert not fresh.strip(b"\0")
            elif kind == "copy":
                assert fresh == src.tobytes()  # C order, as ndarray.copy() makes it
        del made

    @precondition(lambda self: any(it.kind == "block" and len(it.objs) == 1 and
                                   it.objs[0].flags.owndata for it in self.items.values()))
    @rule(data=st.data(), n=st.integers(1, 20000))
    def resize_numpy_array(self, data, n):
        """ndarray.resize: NumPy reallocs through the array's own handler (the arena's)."""
        STEPS[0] += 1
        key = data.draw(st.sampled_from(sorted(k for k, it in self.items.items()
                                               if it.kind == "block" and len(it.objs) == 1
                                               and it.objs[0].flags.owndata)))
        it = self.items[key]
        x = it.objs[0]
        size = n * x.itemsize
        old = it.snap
        before = self.snapshot()
        try:
            x.resize(n, refcheck=False)
        except MemoryError:  # only when no room is left on top, and then nothing changed
            assert size > self.reserved or self.m_block_room(size)
            assert self.snapshot() == before
            return
        self.blocks = [b for b in self.blocks if b.key != key]
        start = addr(x) - self.a.address
        need = round_up(max(size, 1), 64)
        assert start % 64 == 0 and x.nbytes == size and start + need <= self.a.used
        self.blocks.append(Block(start, need, key))
        self.m_follow_heap(grew=None)  # grown on top, moved (up, then the old freed), shrunk
        it.start, it.nbytes = start, size
        it.snap = raw(addr(x), size)
        keep = min(len(old), size)
        assert it.snap[:keep] == old[:keep] and not it.snap[keep:].strip(b"\0")
        # NumPy zero-fills the grown tail in place: a.view()s of the block's own bytes (its
        # aliases, legitimately) see that; nothing else may.
        for v in self.items.values():
            if v.kind == "view" and v.start < start + need and start < v.start + v.nbytes:
                v.snap = raw(self.a.address + v.start, v.nbytes)

    # -- hostile arguments and mutable dtype specs ------------------------------------------------------

    def hostile_hit(self, fail):
        """What a hostile conversion does: allocate from this very arena (an allocation the
        model predicts, like any other) and maybe raise."""
        try:
            start = self.m_bump(32, self.align)
        except Refused:
            pass                            # the arena could not serve it: no allocation
        else:
            x = self.a.full(4, 7.0)
            assert addr(x) == self.a.address + start
            self.add("arena", x, start, 32, len(self.levels) - 1, True, True)
        if fail:
            raise HostileError("hostile conversion")

    @rule(call=st.sampled_from(sorted(HOSTILE_CALLS)), n=st.integers(0, 40),
          dtype=st.sampled_from(DTYPES[:5]), al=st.sampled_from([8, 64, 256]),
          fail=st.booleans())
    def hostile_argument(self, call, n, dtype, al, fail):
        """An argument of an allocating call whose ``__index__``, ``__float__``,
        ``__array__`` or ``dtype`` attribute allocates from the same arena and sometimes
        raises: what it allocated stays live and intact (v1's full() freed it), and the call
        itself allocates after it or not at all."""
        STEPS[0] += 1
        make, nbytes, align = HOSTILE_CALLS[call](self.a, lambda: self.hostile_hit(fail), n,
                                                  dtype, al)
        try:
            x = make()
        except HostileError:
            assert fail
            return
        except (ValueError, MemoryError) as exc:
            assert not fail
            try:
                self.m_bump(nbytes, align or self.align)
            except Refused as r:
                assert isinstance(exc, r.exc), (exc, r.exc)
                return
            raise AssertionError(f"{call} refused ({exc!r}) where the model allocates") \
                from None
        assert not fail
        start = self.m_bump(nbytes, align or self.align)
        assert addr(x) == self.a.address + start and x.nbytes == nbytes
        self.add("arena", x, start, nbytes, len(self.levels) - 1, True, True)

    @rule(n=st.integers(0, 6), first=st.sampled_from(DTYPES[:5]),
          then=st.sampled_from(DTYPES[:5]), as_dict=st.booleans())
    def mutable_dtype_spec(self, n, first, then, as_dict):
        """A list or dict dtype spec edited between two calls: the second call (and a view)
        must use the edited spec (v1's identity-keyed cache gave the old dtype)."""
        STEPS[0] += 1
        spec = {"names": ["a"], "formats": [first]} if as_dict else [("a", first)]
        for _ in range(2):
            want = np.dtype(spec)
            try:
                start = self.m_bump(n * want.itemsize, self.align)
            except Refused as r:
                self.expect_refusal(lambda: self.a.empty(n, spec), r.exc)
            else:
                x = self.a.empty(n, spec)
                assert x.dtype == want and addr(x) == self.a.address + start
                self.add("arena", x, start, x.nbytes, len(self.levels) - 1, True, True)
            if self.prot & R and self.used >= want.itemsize:
                assert self.a.view(0, 1, spec).dtype == want
                self.view_end = max(self.view_end, want.itemsize)
            if as_dict:
                spec["formats"][0] = then
            else:
                spec.append(("b", then))

    # -- bad arguments -----------------------------------------------------------------------------------

    @rule(data=st.data())
    def bad_allocation(self, data):
        """Every kind of bad argument: the documented error, and nothing changes."""
        STEPS[0] += 1
        a = self.a
        full = MemoryError if self.rw() else ValueError  # fits-nowhere vs not-writable
        call, exc = data.draw(st.sampled_from([
            (lambda: a.empty(-1), ValueError), (lambda: a.empty((2, -1)), ValueError),
            (lambda: a.empty(2.5), TypeError), (lambda: a.empty(True), TypeError),
            (lambda: a.empty((True,)), TypeError), (lambda: a.empty(np.True_), TypeError),
            (lambda: a.empty((1,) * 65), ValueError), (lambda: a.empty(range(10 ** 12)),
                                                       ValueError),
            (lambda: a.empty("ab"), TypeError), (lambda: a.empty(None), TypeError),
            (lambda: a.empty(2 ** 63), OverflowError), (lambda: a.empty(2 ** 62), ValueError),
            (lambda: a.empty((2 ** 32, 2 ** 32)), ValueError),
            (lambda: a.empty((2 ** 40, 2 ** 40, 0)), ValueError),
            (lambda: a.empty(3, order="X"), ValueError),
            (lambda: a.empty(3, align=0), ValueError), (lambda: a.empty(3, align=3), ValueError),
            (lambda: a.empty(3, align=-64), ValueError),
            (lambda: a.empty(3, align=2 * PAGE), ValueError),
            (lambda: a.empty(3, align=True), TypeError), (lambda: a.empty(3, align=8.0), TypeError),
            (lambda: a.empty(3, align=2 ** 64), OverflowError),
            (lambda: a.alloc(-1), ValueError), (lambda: a.alloc(2 ** 64), OverflowError),
            (lambda: a.alloc(True), TypeError), (lambda: a.alloc(1.0), TypeError),
            (lambda: a.alloc(np.uint64(2 ** 64 - 1)), OverflowError),
            (lambda: a.alloc(self.reserved + 1), full),
            (lambda: a.empty(2 ** 61, np.uint8), full),
            (lambda: a.full(3, object()), TypeError),
            (lambda: a.array([1, "a", None]), TypeError),
            (lambda: a.zeros_like(np.zeros(3, object)), TypeError),
            (lambda: a.empty_like(np.zeros(3), shape=-1), ValueError),
            (lambda: a.make_exec_mut(), PermissionError if not self.jit else None),
            (lambda: a.reset(True), TypeError),
        ] + [(lambda d=d: a.empty(3, d), TypeError) for d in BAD_DTYPES]))
        if exc is None:
            return
        self.expect_refusal(call, exc)

    @rule()
    def full_with_unconvertible_value_changes_nothing(self):
        """``full`` converts its fill value before it allocates: a value that cannot be
        converted changes nothing at all (v1 allocated first and rolled back)."""
        STEPS[0] += 1
        self.expect_refusal(lambda: self.a.full(10, "x", dtype=float), ValueError)

    # -- invariants -----------------------------------------------------------------------------------

    @invariant()
    def agrees_with_model(self):
        if not hasattr(self, "a"):
            return
        a = self.a
        s = a.stats()
        assert s["used"] == a.used == self.used
        assert s["committed"] == a.committed == self.committed
        assert s["high_water"] == a.high_water == self.hw
        assert s["num_allocations"] == a.num_allocations == self.nalloc
        assert s["live_views"] == a.live_views == self.views_since(0)
        assert s["levels"] == a.levels == len(self.levels)
        assert s["protection"] == a.protection == Protection(self.prot)
        assert s["available"] == self.reserved - self.used and s["reserved"] == self.reserved

    @invariant()
    def live_bytes_intact_and_disjoint(self):
        if not hasattr(self, "a"):
            return
        base = self.a.address
        spans = []
        for it in self.items.values():
            assert it.objs
            assert raw(base + it.start, it.nbytes) == it.snap, f"bytes of a live {it.kind} " \
                "array changed"
            assert it.start + it.nbytes <= self.used or not it.nbytes  # (an empty array
            # may sit past ``used`` once a NumPy block below it is popped: it covers nothing)
            if it.kind != "view" and it.nbytes:
                spans.append((it.start, it.start + it.nbytes))
        spans.sort()
        for (s0, e0), (s1, e1) in zip(spans, spans[1:]):
            assert e0 <= s1, f"live allocations overlap: [{s0}, {e0}) and [{s1}, {e1})"
        assert self.foreign.sum() == 0


@pytest.mark.slow
class TestFuzz(FuzzMachine.TestCase):
    def runTest(self):
        """The machine, then a guard against a precondition or health check quietly starving
        it: the ``ci`` profile must fuzz thousands of steps."""
        STEPS[0] = 0
        super().runTest()
        print(f"fuzzed {STEPS[0]} steps")
        assert STEPS[0] >= 2000, STEPS[0]

    runTest.is_hypothesis_test = True
    runTest._hypothesis_state_machine_class = FuzzMachine
