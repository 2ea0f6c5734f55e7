"""A hypothesis state machine over allocation and lifetime, against a plain Python model.

The model is a dict of live allocations (offset, size, level, the byte pattern written) and
a stack of marks; after every step the arena must agree with it.
"""
import ctypes
import os

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from arena import ArenaFullError, ArenaOptions

settings.register_profile("ci", max_examples=200, stateful_step_count=50, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=2000, stateful_step_count=100, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

SIZE = 1 << 18
DTYPES = [np.uint8, np.int16, np.float32, np.float64, np.complex128]
shapes = st.one_of(st.integers(0, 300),
                   st.lists(st.integers(0, 24), min_size=0, max_size=3).map(tuple))


def round_up(n, k):
    return -(-n // k) * k


def raw(x, nbytes):
    """The bytes under ``x`` read through ctypes, so the probe is not itself a view."""
    return np.ctypeslib.as_array((ctypes.c_uint8 * nbytes).from_address(x.ctypes.data))


class ArenaMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.arena = ArenaOptions(SIZE).with_commit_step(16384).reserve()
        self.live = {}      # key -> (array, offset, nbytes, level, pattern byte)
        self.marks = []     # (Mark, used at the mark)
        self.used = 0
        self.count = 0
        self.key = 0

    def level(self):
        return len(self.marks)

    @rule(shape=shapes, dtype=st.sampled_from(DTYPES), kind=st.sampled_from(
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
        if start + nbytes > SIZE:
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
            raw(x, nbytes)[:] = pattern
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
                assert (raw(x, nbytes) == pattern).all()
                spans.append((start, start + nbytes))
        spans.sort()
        for (_, e0), (s1, _) in zip(spans, spans[1:]):
            assert e0 <= s1

    def teardown(self):
        self.live.clear()
        self.marks.clear()
        try:
            self.arena.close()
        except BufferError:
            pass  # a failing step's traceback may still hold a view; the failure is reported


TestArenaMachine = ArenaMachine.TestCase
