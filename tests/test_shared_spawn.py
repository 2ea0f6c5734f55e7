"""A shared arena and its arrays sent together to a process being started, and received in
either order: one mapping per process, every array counted by the Arena opened there. Each
scenario runs as the main module of a fresh interpreter (spawn and forkserver children
import it by name)."""
import os
import textwrap

import pytest

from helpers import check_child

MAIN = '''
import os, sys, multiprocessing as mp
import numpy as np
from arena import ArenaOptions, Flags

def memfd_maps():
    """How many arena data memfds this process maps (its areas may be several)."""
    with open("/proc/self/maps") as f:
        return len({line.split()[4] for line in f if "memfd:arena " in line})

def both(a, x, tail):
    """In the child: the arena and two of its arrays, started with them."""
    assert a.offset_of(x) == 0 and a.offset_of(tail) > 0 and (x == 5).all()
    assert a.live_views == 2 and memfd_maps() == 1, (a.live_views, memfd_maps())

def arrays_first(q, done):
    """In the child: send an array, then its arena (the receiver maps it at the first)."""
    a = ArenaOptions(1 << 30).with_flags(Flags.SHARED).reserve()
    x = a.full(4, 6.0)
    q.put(x); q.put(a)
    del x
    done.wait(30)
'''


def run(tmp_path, method, code):
    (tmp_path / "main.py").write_text(MAIN + f"\nif __name__ == '__main__':\n"
                                      f"    ctx = mp.get_context({method!r})\n"
                                      + textwrap.indent(textwrap.dedent(code), "    "))
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    return check_child(f"import runpy; runpy.run_path({str(tmp_path / 'main.py')!r}, "
                       "run_name='__main__')", timeout=120, env={"PYTHONPATH": path})


@pytest.mark.parametrize("method", ["spawn", "forkserver"])  # (fork pickles no arguments)
def test_a_process_started_with_the_arena_and_its_arrays(tmp_path, method):
    """Before: under spawn, 'bad value(s) in fds_to_keep' (each reference passed the same
    descriptors again)."""
    run(tmp_path, method, """
        a = ArenaOptions(1 << 30).with_flags(Flags.SHARED).reserve()
        x = a.full(1, 5.0)
        tail = a.full(1, 0.0)
        for _ in range(3):
            p = ctx.Process(target=both, args=(a, x, tail))
            p.start(); p.join()
            assert p.exitcode == 0, p.exitcode
        with ctx.Pool(2, initializer=both, initargs=(a, x, a.view(8, 1))) as pool:
            assert pool.map(abs, [-1, -2]) == [1, 2]
        """)


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_an_array_received_before_its_arena_counts_in_that_arena(tmp_path, method):
    """Before: the arena arriving second was mapped again, a second Arena that did not see
    the array (offset_of refused it, live_views 0)."""
    run(tmp_path, method, """
        q, done = ctx.Queue(), ctx.Event()
        p = ctx.Process(target=arrays_first, args=(q, done)); p.start()
        x = q.get(timeout=30); b = q.get(timeout=30)
        assert b.offset_of(x) == 0 and (x == 6).all()
        assert b.live_views == 1 and memfd_maps() == 1, (b.live_views, memfd_maps())
        try:
            b.reset()
            raise AssertionError("reset went through under a live array")
        except BufferError as exc:
            assert "1 view(s) are still alive" in str(exc), exc
        y = b.full(4, -9.0)
        assert (x == 6).all() and b.offset_of(y) >= 32
        del x, y
        done.set(); p.join()
        b.reset()
        """)
