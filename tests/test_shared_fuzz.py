"""A state machine over a shared arena and a second process (test_shared.py has the rest).

``SharedMachine`` drives the parent and a forked child through a pipe: each allocates,
drops, sends its arrays to the other (which then holds a view of the same bytes), resets,
marks and releases, against a model of every live allocation (who holds it, where, which
byte it was filled with) and of the arena-wide bump. After every step: ``used`` and
``num_allocations`` agree with the model, every live array in either process still holds
its bytes, and no two live allocations overlap. Refusals (BufferError while the other
process holds a view, MemoryError when full) must come exactly when the model says.
"""
import multiprocessing as mp

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from arena import ArenaOptions, Flags


# -- a state machine with a second process -------------------------------------------------------

def child_loop(conn, a):
    """The second process: allocates, drops, receives and sends arrays, resets, on request
    (each in a function of its own, so that no local variable keeps an array alive)."""
    held = {}

    def alloc(key, n, align, value):
        x = a.empty(n, np.uint8, align=align)
        x[:] = value
        held[key] = x
        return a.offset_of(x)

    def take(key, x):
        held[key] = x
        return a.offset_of(x)

    def check(values):
        return [k for k, x in held.items() if not (x == values[k]).all()]

    commands = {"alloc": alloc, "take": take, "give": held.__getitem__,
                "drop": held.pop, "check": check, "reset": lambda: a.reset()}
    while True:
        cmd, *args = conn.recv()
        if cmd == "exit":
            held.clear()
            conn.send(("ok", None))
            return
        try:
            result = commands[cmd](*args)
            conn.send(("ok", None if cmd == "drop" else result))
        except Exception as exc:  # noqa: BLE001 - sent back to the machine, which judges it
            conn.send((type(exc).__name__, str(exc)))
        result = None


class SharedMachine(RuleBasedStateMachine):
    """A parent and a forked child on one shared arena, against a model of every live
    allocation (who holds it, where, what bytes) and of the arena-wide bump."""

    def __init__(self):
        super().__init__()
        self.a = ArenaOptions(1 << 22).with_flags(Flags.SHARED).with_alignment(8).reserve()
        self.conn, there = mp.Pipe()
        self.child = mp.get_context("fork").Process(target=child_loop, args=(there, self.a))
        self.child.start()
        self.items = {}     # key -> [start, nbytes, value, holders: set of "P"/"C"]
        self.mine = {}      # key -> the parent's array
        self.used = self.nalloc = 0
        self.marks = []     # (Mark, used, nalloc)
        self.next = 0

    def ask(self, *cmd):
        self.conn.send(cmd)
        status, value = self.conn.recv()
        return status, value

    def teardown(self):
        self.mine.clear()
        try:
            self.ask("exit")
        finally:
            self.child.join(10)
            self.conn.close()
            try:
                self.a.close()
            except BufferError:
                pass

    def bump(self, n, align):
        start = -(-self.used // align) * align
        if start + n > self.a.reserved:
            return None
        self.used = start + n
        self.nalloc += 1
        return start

    def live_above(self, floor):
        return any(it[0] + max(it[1], 1) > floor and it[3] for it in self.items.values())

    @rule(n=st.integers(0, 5000), align=st.sampled_from([1, 8, 64, 4096]),
          who=st.sampled_from("PC"))
    def allocate(self, n, align, who):
        key, value = self.next, self.next % 251
        self.next += 1
        start = self.bump(n, align)
        if who == "P":
            if start is None:
                with pytest.raises(MemoryError):
                    self.a.empty(n, np.uint8, align=align)
                return
            x = self.a.empty(n, np.uint8, align=align)
            x[:] = value
            self.mine[key] = x
            assert self.a.offset_of(x) == start
        else:
            status, off = self.ask("alloc", key, n, align, value)
            if start is None:
                assert status == "ArenaFullError"
                return
            assert status == "ok" and off == start, (status, off, start)
        self.items[key] = [start, n, value, {who}]

    @precondition(lambda self: self.items)
    @rule(data=st.data())
    def drop(self, data):
        key = data.draw(st.sampled_from(sorted(self.items)))
        it = self.items[key]
        who = data.draw(st.sampled_from(sorted(it[3]))) if it[3] else None
        if who == "P":
            del self.mine[key]
        elif who == "C":
            assert self.ask("drop", key)[0] == "ok"
        if who:
            it[3].discard(who)

    @precondition(lambda self: self.items)
    @rule(data=st.data())
    def send(self, data):
        """An array through the pipe to the process that lacks it: the same bytes."""
        key = data.draw(st.sampled_from(sorted(self.items)))
        it = self.items[key]
        if "P" in it[3] and "C" not in it[3]:
            status, off = self.ask("take", key, self.mine[key])
            assert status == "ok" and off == it[0]
            it[3].add("C")
        elif "C" in it[3] and "P" not in it[3]:
            status, x = self.ask("give", key)
            assert status == "ok" and self.a.offset_of(x) == it[0] and (x == it[2]).all()
            self.mine[key] = x
            it[3].add("P")

    @rule(who=st.sampled_from("PC"))
    def reset(self, who):
        busy = self.live_above(0)
        if who == "P":
            if busy:
                with pytest.raises(BufferError):
                    self.a.reset()
                return
            self.a.reset()
        else:
            status, _ = self.ask("reset")
            assert status == ("BufferError" if busy else "ok"), status
            if busy:
                return
        self.items = {k: it for k, it in self.items.items() if it[3]}
        assert not self.items
        self.used = self.nalloc = 0
        self.marks.clear()

    @rule()
    def mark(self):
        self.marks.append((self.a.mark(), self.used, self.nalloc))

    @precondition(lambda self: self.marks)
    @rule()
    def release(self):
        m, used, nalloc = self.marks[-1]
        if self.live_above(used):
            with pytest.raises(BufferError):
                self.a.release(m)
            return
        self.a.release(m)
        self.marks.pop()
        self.used, self.nalloc = min(self.used, used), min(self.nalloc, nalloc)

    @invariant()
    def agrees(self):
        assert self.a.used == self.used and self.a.num_allocations == self.nalloc
        for key, x in self.mine.items():
            assert (x == self.items[key][2]).all(), f"the parent's array {key} changed"
        held = {k: it[2] for k, it in self.items.items() if "C" in it[3]}
        status, bad = self.ask("check", held)
        assert status == "ok" and bad == [], bad
        spans = sorted((it[0], it[0] + it[1]) for it in self.items.values() if it[3] and it[1])
        assert all(e0 <= s1 for (_, e0), (s1, _) in zip(spans, spans[1:])), spans


@pytest.mark.slow
class TestSharedMachine(SharedMachine.TestCase):
    settings = settings(max_examples=100, stateful_step_count=40, deadline=None)
