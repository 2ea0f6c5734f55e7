"""A hypothesis state machine over one file: a Flags.SHARED writer that allocates, resets,
flushes and is closed and reopened; readers (``map()``); private arenas over the same file;
second writers. (The allocation machines are in test_fuzz.py; this one lives apart to keep
each module readable.)

The model is ``content``, the bytes the file must hold. After every step:

* the file on disk holds ``content`` and, while the writer is open, zeros past it (it grows
  by commit steps); after a flush or close exactly ``content`` (it grows by what is used);
  a private arena never changes it;
* every live array of the writer still holds its bytes, and no two overlap;
* a second writer, by path, descriptor or file object, shared or private, is refused with an
  OSError naming the file while the writer is open.
"""
import os
import shutil
import tempfile

import numpy as np
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from arena import ArenaFullError, ArenaOptions, Flags

SIZE = 1 << 16


def round_up(n, k):
    return -(-n // k) * k


class FileMachine(RuleBasedStateMachine):
    @initialize(initial=st.binary(max_size=300), step=st.sampled_from([4096, 16384]))
    def start(self, initial, step):
        self.dir = tempfile.mkdtemp(prefix="arena-fuzz-")
        self.path = os.path.join(self.dir, "f")
        with open(self.path, "wb") as f:
            f.write(initial)
        self.content = bytearray(initial)
        self.opts = ArenaOptions(SIZE).with_file(self.path).with_commit_step(step)
        self.live = {}      # key -> (array, offset, pattern)
        self.key = 0
        self.w = None
        self.open_writer()

    def open_writer(self):
        self.w = self.opts.with_flags(Flags.SHARED).reserve()
        self.used = len(self.content)
        assert self.w.used == self.used

    def close_writer(self):
        self.live.clear()
        self.w.close()
        self.w = None

    def teardown(self):
        if not hasattr(self, "dir"):
            return
        self.live.clear()
        if self.w is not None:
            try:
                self.w.close()
            except BufferError:
                pass  # a failing step's traceback may hold a view; the failure is reported
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- the writer ------------------------------------------------------------------------------

    @precondition(lambda self: self.w is not None)
    @rule(n=st.integers(1, 9000), zero=st.booleans(), align=st.sampled_from([None, 8, 4096]))
    def allocate(self, n, zero, align):
        start = round_up(self.used, align or 64)
        make = (lambda: self.w.zeros(n, np.uint8, align=align)) if zero else \
            (lambda: self.w.empty(n, np.uint8, align=align))
        if start + n > SIZE:
            with pytest.raises(ArenaFullError):
                make()
            return
        x = make()
        assert self.w.offset_of(x) == start
        if zero:
            assert not x.any(), "zeros over bytes the file held before"
        pattern = self.key % 251 + 1
        x[:] = pattern
        if start + n > len(self.content):
            self.content.extend(bytes(start + n - len(self.content)))
        self.content[start:start + n] = bytes([pattern]) * n
        self.used = start + n
        self.live[self.key] = (x, start, pattern)
        self.key += 1

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    def drop(self, data):
        del self.live[data.draw(st.sampled_from(sorted(self.live)))]

    @precondition(lambda self: self.w is not None)
    @rule()
    def reset(self):
        if self.live:
            with pytest.raises(BufferError):
                self.w.reset()
            return
        self.w.reset()
        self.used = 0

    @precondition(lambda self: self.w is not None)
    @rule()
    def flush(self):
        self.w.flush()
        self.check_file(exact=True)   # flush() cuts the file back to what is used

    @precondition(lambda self: self.w is not None)
    @rule()
    def reopen(self):
        """Close and open again: what the file holds counts as used."""
        self.close_writer()
        self.check_file(exact=True)   # close() cuts it back too
        self.open_writer()

    @precondition(lambda self: self.w is not None)
    @rule(how=st.sampled_from(["path", "fd", "file"]), shared=st.booleans())
    def second_writer(self, how, shared):
        opts = ArenaOptions(SIZE).with_flags(Flags.SHARED if shared else Flags(0))
        fd = os.open(self.path, os.O_RDWR)
        f = open(self.path, "r+b")
        try:
            given = {"path": self.path, "fd": fd, "file": f}[how]
            with pytest.raises(OSError, match="already open for writing") as e:
                opts.with_file(given).reserve()
            assert e.value.filename == self.path
        finally:
            f.close()
            os.close(fd)

    # -- readers and private arenas --------------------------------------------------------------

    @rule(shared=st.booleans())
    def reader(self, shared):
        r = self.opts.with_flags(Flags.SHARED if shared else Flags(0)).map()
        assert r.used == os.path.getsize(self.path) >= len(self.content)
        if self.content:
            assert bytes(r.view(0, len(self.content), np.uint8)) == self.content
        r.close()

    @rule(n=st.integers(1, 20000), scribble=st.booleans())
    def private_arena(self, n, scribble):
        """A private arena over the file (once the writer is closed: it is a writer too)
        reads the file's bytes and changes nothing in it, whatever it does."""
        reopen = self.w is not None
        if reopen:
            self.close_writer()
        p = self.opts.reserve()
        assert p.used == len(self.content)
        if self.content:
            v = p.view(0, len(self.content), np.uint8)
            assert bytes(v) == self.content
            if scribble:
                v[:] = 0xEE
            del v
        if round_up(p.used, 64) + n <= SIZE:  # (``available`` does not know the alignment)
            x = p.full(n, 0xAB, dtype=np.uint8)
            assert (x == 0xAB).all()
            del x
        else:
            with pytest.raises(ArenaFullError):
                p.full(n, 0xAB, dtype=np.uint8)
        p.flush()
        p.close()
        if reopen:
            self.open_writer()

    # -- invariants ----------------------------------------------------------------------------------

    def check_file(self, exact):
        with open(self.path, "rb") as f:
            data = f.read()
        if exact:
            assert data == self.content
        else:  # grown by commit steps: zeros past what is used
            n = len(self.content)
            assert data[:n] == self.content and not data[n:].strip(b"\0")

    @invariant()
    def file_holds_the_model(self):
        if hasattr(self, "path"):
            self.check_file(exact=self.w is None)

    @invariant()
    def live_arrays_intact_and_disjoint(self):
        if not hasattr(self, "live"):
            return
        spans = []
        for x, start, pattern in self.live.values():
            assert (x == pattern).all()
            spans.append((start, start + x.nbytes))
        spans.sort()
        for (_, e0), (s1, _) in zip(spans, spans[1:]):
            assert e0 <= s1


@pytest.mark.slow
class TestFileMachine(FileMachine.TestCase):
    pass
