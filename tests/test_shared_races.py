"""A shared arena's calls that run Python code partway (they read /proc, wait for other
processes, allocate objects whose garbage collection may run finalizers): whatever that code
does to the arena meanwhile (close it, reset it, claim a slot), the call errs instead of
crashing, and no two live arrays get the same bytes. Each scenario runs in a fresh
interpreter (a crash fails one test); the finalizer that closes the arena stands for any
code another thread could run there.
"""
import textwrap

import pytest

from helpers import check_child

CLOSER = """
import gc, os, sys
import numpy as np
from arena import Arena, ArenaOptions, Flags

def shared(size=1 << 24):
    return ArenaOptions(size).with_flags(Flags.SHARED).reserve()

class Closer:  # closes ``a`` from a finalizer at the next garbage collection
    def __init__(self, a):
        self.a, self.me = a, self
    def __del__(self):
        if not self.a.closed:
            try:
                self.a.close()
                print("finalizer closed it", flush=True)
            except BufferError as exc:
                print("finalizer refused:", exc, flush=True)

def collect_at_next_allocation():
    gc.disable(); gc.set_threshold(1); gc.enable()
"""


def scenario(code):
    return check_child(CLOSER + textwrap.dedent(code), timeout=120)


def test_first_allocation_claims_its_slot_while_a_finalizer_closes():
    out = scenario("""
        a = shared()
        Closer(a)
        collect_at_next_allocation()
        x = a.zeros(10)        # the claim reads /proc/self/stat: a collection runs there
        gc.disable()
        assert (x == 0).all() and not a.closed
        """)
    assert "finalizer refused: cannot close: another thread is in" in out


def test_reset_while_a_finalizer_closes():
    scenario("""
        a = shared()
        x = a.zeros(10); del x
        Closer(a)
        collect_at_next_allocation()
        try:
            a.reset()          # its new first level is made before the checks
        except ValueError as exc:
            assert "closed" in str(exc)
        gc.disable()
        """)


@pytest.mark.parametrize("kind", ["shared", "private"])
def test_view_of_a_read_only_arena_while_a_finalizer_closes(kind):
    scenario(f"""
        a = shared() if {kind!r} == "shared" else Arena(1 << 24)
        x = a.full(10, 3.0); del x
        a.make_read_only()
        Closer(a)
        collect_at_next_allocation()
        try:
            v = a.view(0, 10)
            assert a.closed is False and v.sum() == 30
        except (RuntimeError, ValueError) as exc:
            assert "closed" in str(exc), exc
        gc.disable()
        """)


def test_pickling_an_arena_while_a_finalizer_closes():
    scenario("""
        from multiprocessing.reduction import ForkingPickler
        for n in range(1, 12):   # a collection at each point of the reduction in turn
            a = shared()
            Closer(a)
            gc.collect(); gc.disable()
            gc.set_threshold(n); gc.enable()
            try:
                ForkingPickler.dumps(a)
            except (ValueError, OSError) as exc:
                assert "closed" in str(exc) or exc.errno is not None, exc
            gc.disable(); gc.set_threshold(700); gc.enable()
        """)


def test_a_stale_holder_descriptor_naming_a_short_file_is_refused():
    """An array's pickle names (pid, fds) to open through /proc. If the sender closed the
    arena and those numbers now name an empty file, the receiver refuses (it read past the
    file's end before: SIGBUS)."""
    out = scenario("""
        import tempfile
        from multiprocessing.reduction import ForkingPickler
        r, w = os.pipe()
        recv = os.fork()
        if recv == 0:
            os.close(w); data = b""
            while chunk := os.read(r, 1 << 16):
                data += chunk
            try:
                ForkingPickler.loads(data)
                print("receiver: got it")
            except Exception as exc:
                print("receiver:", type(exc).__name__, exc, flush=True)
            os._exit(0)
        os.close(r)
        a = shared()
        x = a.full(10, 1.0)
        payload = bytes(ForkingPickler.dumps(x))
        holders = ForkingPickler._extra_reducers[np.ndarray](x)[1][0][2]
        del x; a.close()
        empty = tempfile.TemporaryFile()
        for fd in holders[0][1:]:
            os.dup2(empty.fileno(), fd)
        os.write(w, payload); os.close(w)
        _, status = os.waitpid(recv, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
        """)
    assert "receiver: ArenaError cannot map the shared arena" in out


def test_a_failed_fill_never_gives_back_bytes_another_process_views():
    """full() whose fill value fails after the bump gives its bytes back, unless anything
    happened on the bump since, a view another process registered over them included (which
    moves only the word's sequence). Statistical: a child views offset 0 as soon as it is in
    use, while the parent's failing full()s take and give back offset 0; up to 20 s."""
    out = scenario("""
        import fcntl, time
        a = shared()
        N = 1 << 10
        r1, w1 = os.pipe(); r2, w2 = os.pipe()
        pid = os.fork()
        if pid == 0:
            deadline = time.time() + 20
            while time.time() < deadline:
                try:
                    v = a.view(0, N, np.int64)
                    break
                except ValueError:
                    pass
            else:
                os.write(w1, b"n"); os._exit(0)
            os.write(w1, b"v"); os.read(r2, 1)
            os._exit(0 if (v != 7).all() else 3)   # the parent's next array is not under it
        fcntl.fcntl(r1, fcntl.F_SETFL, os.O_NONBLOCK)
        while True:
            try:
                a.full(N, 2**70, dtype=np.int64)   # OverflowError after the bump
            except OverflowError:
                pass
            try:
                said = os.read(r1, 1)
                break
            except BlockingIOError:
                pass
        if said == b"v":
            z = a.full(N, 7, dtype=np.int64)
            assert a.offset_of(z) >= N * 8, a.offset_of(z)
            os.write(w2, b".")
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
        print("child viewed:", said)
        """)
    assert "child viewed:" in out
