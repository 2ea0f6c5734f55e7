"""Arenas shared by several processes (``Flags.SHARED`` without a file), against API.md's
"v2: arenas shared by several processes": processes allocating at once without overlap,
the arena and its arrays through ``multiprocessing`` with every start method, liveness across
processes (a holder that exits, one that is SIGKILLed at any instant), exhaustion in one
process, descriptors and mappings over many pool runs (the state machine with a second
process is in test_shared_fuzz.py). Multi-process scenarios run in a fresh interpreter, so that a crash or a kill fails
one test; the worker functions live in a module written next to each scenario (spawn and
forkserver children import them by name).
"""
import os
import pickle
import textwrap
from multiprocessing.reduction import ForkingPickler

import numpy as np
import pytest

import arena
from arena import ArenaOptions, Flags
from helpers import check_child, hugetlb_pool

METHODS = ["fork", "spawn", "forkserver"]
MiB = 1 << 20

WORKERS = '''
import os, signal, sys, time
import numpy as np
import arena

A = None


def init(a):
    global A
    A = a


def stamp(i, n=1000):
    """A result made in the worker: n int64 holding i."""
    x = A.empty(n, np.int64)
    x[:] = i
    return x


def inspect(x):
    """What the worker sees of an array it was sent: its sum, offset and writability."""
    return int(x.sum()), A.offset_of(x), bool(x.flags.writeable), os.getpid()


def bump(x):
    x += 1
    return x


def stamp_with(a, i):
    return a.full(10, i, dtype=np.int64)


def hammer(a, m, seed, out):
    """m allocations of random sizes and alignments, each stamped; report every span ever
    handed out and the stamps of those kept."""
    rng = np.random.default_rng(seed)
    me = os.getpid()
    spans, keep = [], []
    for i in range(m):
        n = int(rng.integers(0, 300))
        x = a.empty(n, np.int64, align=int(rng.choice([8, 64, 4096])))
        x[:] = me * 100_000 + i
        spans.append((a.offset_of(x), 8 * n))
        if rng.random() < 0.5:
            keep.append((i, x))
    for i, x in keep:
        assert (x == me * 100_000 + i).all(), "a kept array changed"
    out.put((me, spans, [(a.offset_of(x), x.size, me * 100_000 + i) for i, x in keep]))


def hold(a, n, conn):
    """Allocate n arrays, report their offsets, then hold them until killed or told."""
    xs = [a.full(100, i, dtype=np.int64) for i in range(n)]
    conn.send([a.offset_of(x) for x in xs])
    conn.recv()


def churn(a, conn):
    """Allocate, stamp, drop and try to release as fast as possible until killed (a release
    is refused while another churner holds a view above the mark)."""
    rng = np.random.default_rng(os.getpid())
    conn.send("go")
    keep = []
    while True:
        x = a.empty(int(rng.integers(1, 2000)), np.int64)
        x[:] = 7
        keep.append(x)
        if len(keep) > 50:
            assert all((k == 7).all() for k in keep), "a live array changed"
            keep.clear()
            m = a.mark()
            t = a.zeros(10)
            del t
            try:
                a.release(m)
            except BufferError:
                pass


def exhaust(a, conn):
    """Allocate until the arena is full: MemoryError here, nothing broken elsewhere."""
    xs = []
    try:
        while True:
            xs.append(a.full(4096, 3, dtype=np.uint8))
    except MemoryError as exc:
        ok = all((x == 3).all() for x in xs)
        conn.send((type(exc).__name__, len(xs), ok))
    conn.recv()


def via_pipe(conn):
    """The arena comes through a Pipe, an array goes back, and the parent's write is seen."""
    a = conn.recv()
    x = a.full(1000, 7, dtype=np.int64)
    conn.send(x)
    conn.recv()
    conn.send(int(x.sum()))
    conn.recv()


def via_queue(q_in, q_out):
    """Only arrays come through the queue: the arena is mapped on the way."""
    x = q_in.get()
    y = x[::2]
    y[:] = 5
    q_out.put((int(x.sum()), y))
    q_in.get()


def sleep_holding(x, conn):
    conn.send(int(x.sum()))
    conn.recv()
'''


PRELUDE = """\
import gc, multiprocessing as mp, os, random, signal, time
from concurrent.futures import ProcessPoolExecutor
import numpy as np
import arena, workers
from arena import ArenaOptions, Flags, PageSize
from arena._system import mapping_stats


def shared(size, flags=Flags(0)):
    return ArenaOptions(size).with_flags(Flags.SHARED | flags).reserve()


class forked:  # a fork child that runs ``steps`` one at a time, each when step() says
    def __init__(self, *steps):
        go_r, self.go = os.pipe()
        self.done, done_w = os.pipe()
        self.left = len(steps) + 1
        self.pid = os.fork()
        if self.pid == 0:
            os.close(self.go); os.close(self.done)
            code = 0
            try:
                for step in steps + (lambda: None,):
                    os.read(go_r, 1)
                    step()
                    os.write(done_w, b".")
            except BaseException:
                import traceback
                traceback.print_exc()
                code = 1
            os._exit(code)
        os.close(go_r); os.close(done_w)

    def step(self):
        self.left -= 1
        os.write(self.go, b".")
        assert os.read(self.done, 1) == b".", "the child failed"

    def finish(self):
        while self.left:
            self.step()
        _, status = os.waitpid(self.pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status


def refused(call, error, says=""):  # call() must raise error, saying ``says``
    try:
        call()
    except error as exc:
        assert says in str(exc), exc
    else:
        raise AssertionError(f"{call} did not raise {error.__name__}")
"""


def run(tmp_path, code, method="fork", timeout=300):
    """Run PRELUDE and then ``code`` as the main module of a fresh interpreter, with ``ctx``
    the multiprocessing context of ``method``, next to a module ``workers`` of WORKERS;
    its output (a failure fails the test)."""
    (tmp_path / "workers.py").write_text(WORKERS)
    main = (f"{PRELUDE}\nif __name__ == '__main__':\n    ctx = mp.get_context({method!r})\n"
            + textwrap.indent(textwrap.dedent(code), "    "))
    (tmp_path / "main.py").write_text(main)
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    return check_child(f"import runpy, sys; sys.argv = ['main.py']; "
                       f"runpy.run_path({str(tmp_path / 'main.py')!r}, run_name='__main__')",
                       timeout=timeout, env={"PYTHONPATH": path})


def shared(size=1 << 30, flags=Flags.SHARED):
    return ArenaOptions(size).with_flags(Flags.SHARED | flags).reserve()


# -- in one process ------------------------------------------------------------------------------


def test_plain_pickle_refuses_the_arena_and_copies_its_arrays():
    a = shared()
    with pytest.raises(TypeError, match="multiprocessing"):
        pickle.dumps(a)
    with pytest.raises(TypeError, match="private"):
        ForkingPickler.dumps(arena.Arena(1 << 20))
    x = a.full(100, 3.0)
    y = pickle.loads(pickle.dumps(x))
    assert (y == 3).all() and y.base is None
    with pytest.raises(ValueError):
        a.offset_of(y)
    del x, y
    a.close()


def test_forking_pickler_round_trip_is_the_same_memory():
    a = shared()
    x = a.full((10, 20), 1.5)
    views = [x, x[::2, 3:], x.T, x[:, ::-3], x.view(np.int64), x.reshape(-1)[5:5]]
    for v in views:
        w = ForkingPickler.loads(ForkingPickler.dumps(v))
        assert type(w) is np.ndarray and w.shape == v.shape and w.strides == v.strides
        assert w.__array_interface__["data"][0] == v.__array_interface__["data"][0]
        assert w.dtype == v.dtype and w.flags.writeable
    w = ForkingPickler.loads(ForkingPickler.dumps(x[::2, 3:]))
    w[:] = -1
    assert (x[::2, 3:] == -1).all() and a.live_views == 2
    # Anything else is pickled as NumPy pickles it: a copy.
    for other in (np.ones(5), np.frombuffer(memoryview(x).cast("B")), np.ma.masked_array(x)):
        c = ForkingPickler.loads(ForkingPickler.dumps(other))
        assert c.__array_interface__["data"][0] != other.__array_interface__["data"][0]
    # NumPy's own allocations inside numpy_allocator() are heap blocks, not views: copied.
    with a.numpy_allocator():
        n = np.arange(1000.0)
    c = ForkingPickler.loads(ForkingPickler.dumps(n))
    assert (c == n).all() and c.__array_interface__["data"][0] != a.address + a.offset_of(n)
    with pytest.raises(BufferError):
        a.reset()
    del w, x, views, v, n, other, c
    a.reset()
    assert a.live_views == 0 and a.used == 0


def test_array_freed_in_transit_is_refused():
    a = shared()
    x = a.full(100, 2.0)
    keep = a.full(10, 1.0)
    data = ForkingPickler.dumps(x)
    kept = ForkingPickler.dumps(keep)
    m = a.mark()
    t = a.zeros(10)
    del t
    a.release(m)                 # frees above ``keep``: both still valid
    assert ForkingPickler.loads(data)[0] == 2 and ForkingPickler.loads(kept)[0] == 1
    del x, keep
    a.reset()
    y = a.full(100, 9.0)         # the same bytes, handed out again
    with pytest.raises(BufferError, match="freed"):
        ForkingPickler.loads(data)
    assert (y == 9).all()


def test_figures_are_arena_wide_and_views_are_checked():
    a = shared(1 << 24)
    x = a.zeros(100)
    assert a.used == 800 and a.num_allocations == 1 and a.high_water == 800
    assert a.committed == 2 * MiB and a.stats()["processes"] == 1
    v = a.view(0, 10)
    with pytest.raises(ValueError, match="reaches past"):
        a.view(0, 101)
    m = a.mark()
    y = a.zeros(10)
    with pytest.raises(BufferError):
        a.release(m)
    del y
    assert a.release(m) is None and a.purge() is None and a.decommit() is None
    assert a.used == 800 and a.num_allocations == 1 and a.live_views == 2
    del x, v
    assert a.reset(decommit=True) is None
    assert a.used == 0 and a.committed == 0 and a.high_water == 912
    a.close()
    with pytest.raises(ValueError):
        print(a.used)


def test_alloc_raw_and_failed_copy_roll_back():
    a = shared(1 << 24)
    with pytest.raises(ValueError):
        a.full(10, "not a number", dtype=np.float64)
    assert a.used == 0 and a.num_allocations == 0
    x = a.array(np.arange(5))
    assert a.offset_of(x) == 0 and a.num_allocations == 1
    with pytest.raises(ValueError):
        a.array(["x"], dtype=np.float64)
    assert a.used == 40


def test_numpy_allocator_churn_reuses_one_block():
    """The heap goes idle at every ``del``: it keeps its free block and takes it back, instead
    of fresh memory each time (64 MiB hold 2048 blocks of 32 KiB)."""
    a = shared(64 * MiB)
    with a.numpy_allocator():
        for _ in range(100_000):
            x = np.empty(4096)
            del x
        assert a.used <= 64 * 1024
        y = np.ones(4096)
    assert a.used <= 64 * 1024 and a.live_views == 1
    with pytest.raises(BufferError):
        a.reset()
    del y
    a.reset()
    assert a.used == 0


def test_a_growable_on_a_shared_arena_keeps_its_items():
    g = ArenaOptions(1 << 30).with_flags(Flags.SHARED).growable(float)
    g.extend(np.arange(11000.0))
    for i in range(100):
        g.append(float(i))
    where = g.array.__array_interface__["data"][0]
    g.truncate(500, decommit=True)      # punches past the items, not from the shared bump
    assert g.committed == 4096 and float(g.array.sum()) == 124750.0
    g.extend(np.ones(5))
    assert len(g) == 505 and float(g.array.sum()) == 124755.0
    assert g.array.__array_interface__["data"][0] == where
    g.close()


# -- many processes --------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_processes_allocate_at_once_without_overlap(tmp_path, method):
    out = run(tmp_path, """
        a = shared(1 << 30)
        mine = a.full(1000, -1, dtype=np.int64)
        q = ctx.Queue()
        N, M = 4, 1500
        ps = [ctx.Process(target=workers.hammer, args=(a, M, s, q), daemon=True)
              for s in range(N)]
        for p in ps:
            p.start()
        reports = [q.get(timeout=120) for _ in ps]
        for p in ps:
            p.join(60)
            assert p.exitcode == 0, p.exitcode
        spans = [(a.offset_of(mine), 8000)]
        for pid, s, kept in reports:
            spans += s
            for off, n, value in kept:      # still intact after their process is gone
                assert (a.view(off, n, np.int64) == value).all()
        spans.sort()
        ends = [o + n for o, n in spans]
        assert all(e <= o for e, (o, _) in zip(ends, spans[1:])), "allocations overlap"
        assert a.num_allocations == N * M + 1 and a.used >= max(ends)
        assert (mine == -1).all() and len({r[0] for r in reports}) == N
        print("ok", len(spans))
        """, method=method)
    assert out.split() == ["ok", str(4 * 1500 + 1)]


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_pool_initargs_arguments_and_results_every_start_method(tmp_path, method):
    run(tmp_path, """
        a = shared(1 << 30)
        with ProcessPoolExecutor(2, mp_context=ctx, initializer=workers.init,
                                 initargs=(a,)) as pool:
            rs = list(pool.map(workers.stamp, range(6)))
            offsets = [a.offset_of(r) for r in rs]   # results over the arena, no copy
            assert [int(r[0]) for r in rs] == list(range(6))
            rs[0][:] = 100                            # arguments: views the other way
            seen = list(pool.map(workers.inspect, [rs[0], rs[1][::3]]))
            assert [s[:3] for s in seen] == [(100000, offsets[0], True),
                                             (1 * 334, offsets[1], True)]
            back = pool.submit(workers.bump, rs[2]).result()
            assert a.offset_of(back) == offsets[2] and (rs[2] == 3).all()
            made = list(pool.map(workers.stamp_with, [a, a], [7, 8]))  # the arena itself
            assert [int(m.sum()) for m in made] == [70, 80]
        with ctx.Pool(2, initializer=workers.init, initargs=(a,)) as pool:
            more = pool.map(workers.stamp, range(6, 10))
            assert [a.offset_of(m) for m in more] and int(more[-1][-1]) == 9
            assert pool.apply(workers.inspect, (more[0],))[:2] == (6000, a.offset_of(more[0]))
        assert a.num_allocations == 12
        del rs, back, made, more, seen
        a.reset()
        """, method=method)


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_pipe_and_queue_and_a_receiver_without_the_arena(tmp_path, method):
    run(tmp_path, """
        a = shared(1 << 28)
        here, there = ctx.Pipe()
        p = ctx.Process(target=workers.via_pipe, args=(there,), daemon=True)
        p.start()
        here.send(a)                         # the arena through a Pipe
        x = here.recv()                      # an array back
        assert a.offset_of(x) == 0 and int(x.sum()) == 7000
        x[:] = 1
        here.send("look")
        assert here.recv() == 1000           # the child sees the parent's write
        here.send("done"); p.join(30)
        # A process that never had the arena: an array in a Queue maps it on arrival.
        q_in, q_out = ctx.Queue(), ctx.Queue()
        p = ctx.Process(target=workers.via_queue, args=(q_in, q_out), daemon=True)
        p.start()
        y = a.zeros(100, np.int64)
        q_in.put(y)
        total, z = q_out.get(timeout=60)
        assert total == 250 and (y[::2] == 5).all() and (y[1::2] == 0).all()
        assert a.offset_of(z) == a.offset_of(y) and z.strides == (16,)
        q_in.put("done"); p.join(30)
        # ... and an array as a Process argument (inherited descriptors at spawn).
        p = ctx.Process(target=workers.sleep_holding, args=(y, there), daemon=True)
        p.start()
        assert here.recv() == 250
        here.send("done"); p.join(30)
        assert p.exitcode == 0
        """, method=method)


@pytest.mark.slow
def test_a_holder_that_exits_and_one_that_is_killed(tmp_path):
    run(tmp_path, """
        a = shared(1 << 28)
        shm = sorted(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else []
        fds = len(os.listdir("/proc/self/fd"))
        for how in ("exit", "kill", "kill-unreaped"):
            here, there = ctx.Pipe()
            p = ctx.Process(target=workers.hold, args=(a, 5, there), daemon=True)
            p.start()
            offsets = here.recv()
            m = a.mark() if how == "exit" else None
            refused(a.reset, BufferError, f"process {p.pid} holds 5 live view(s)")
            if how == "exit":
                here.send("go"); p.join(30)
                assert p.exitcode == 0       # it never dropped its arrays
            else:
                os.kill(p.pid, signal.SIGKILL)
                if how == "kill":
                    p.join(30)
                else:                        # a zombie: dead, but not yet reaped
                    while open(f"/proc/{p.pid}/stat").read().split(")")[1].split()[0] != "Z":
                        time.sleep(0.01)
            a.reset()                        # its views count as gone
            assert a.used == 0 and a.num_allocations == 0
            x = a.full(100, 1, dtype=np.int64)
            assert a.offset_of(x) == 0 and a.stats()["processes"] == 1
            del x
            p.join(30)
            p.close(); here.close(); there.close()
        a.reset(decommit=True)
        assert a.committed == 0
        after = sorted(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else []
        assert after == shm and len(os.listdir("/proc/self/fd")) == fds
        """)


@pytest.mark.slow
def test_processes_killed_at_any_instant_leave_the_arena_consistent(tmp_path):
    out = run(tmp_path, """
        a = shared(1 << 33)
        keep = a.full(1 << 16, 42, dtype=np.int64)
        rnd = random.Random(5)
        for round_ in range(12):
            pipes = [ctx.Pipe() for _ in range(3)]
            ps = [ctx.Process(target=workers.churn, args=(a, t), daemon=True)
                  for _, t in pipes]
            for p in ps:
                p.start()
            for h, _ in pipes:
                h.recv()
            for p in ps:                     # at a random instant each
                time.sleep(rnd.random() * 0.03)
                os.kill(p.pid, signal.SIGKILL)
            for p in ps:
                p.join(30)
                assert p.exitcode == -signal.SIGKILL
            # The survivors go on: allocations do not overlap, nothing is held.
            y = a.full(1000, round_, dtype=np.int64)
            z = a.full(1000, -round_, dtype=np.int64)
            assert a.offset_of(z) >= a.offset_of(y) + 8000
            assert (keep == 42).all() and (y == round_).all()
            m = a.mark(); t = a.zeros(5); del t; a.release(m)
            del y, z
        # Everything the dead held counts as gone: a full reset works, and a new batch of
        # processes allocates from zero without overlap.
        del keep
        a.reset()
        q = ctx.Queue()
        ps = [ctx.Process(target=workers.hammer, args=(a, 500, s, q), daemon=True)
              for s in range(3)]
        for p in ps:
            p.start()
        spans = sorted(s for _ in ps for s in q.get(timeout=60)[1])
        for p in ps:
            p.join(30)
        assert spans[0][0] == 0
        assert all(o0 + n0 <= o1 for (o0, n0), (o1, _) in zip(spans, spans[1:]))
        print("ok", a.num_allocations)
        """, timeout=600)
    assert out.split() == ["ok", "1500"]


@pytest.mark.slow
def test_exhaustion_in_one_process_is_its_memoryerror_only(tmp_path):
    out = run(tmp_path, """
        a = shared(4 << 20)
        h1, t1 = ctx.Pipe(); h2, t2 = ctx.Pipe()
        holder = ctx.Process(target=workers.hold, args=(a, 100, t1), daemon=True)
        holder.start()
        held = h1.recv()
        filler = ctx.Process(target=workers.exhaust, args=(a, t2), daemon=True)
        filler.start()
        kind, n, intact = h2.recv()
        assert kind == "ArenaFullError" and n > 900 and intact, (kind, n, intact)
        assert a.available < 4096
        # The holder's arrays are intact; the parent gets MemoryError too, nothing else.
        for i, off in enumerate(held):
            assert (a.view(off, 100, np.int64) == i).all()
        refused(lambda: a.empty(1000), MemoryError)
        x = a.empty(0)                       # what fits still works
        h1.send("go"); h2.send("go")
        holder.join(30); filler.join(30)
        assert holder.exitcode == filler.exitcode == 0
        del x
        a.reset()
        y = a.full(100_000, 1.0)
        print("ok", a.offset_of(y))
        """)
    assert out.split() == ["ok", "0"]


@pytest.mark.slow
def test_release_waits_for_views_since_the_mark_in_any_process(tmp_path):
    run(tmp_path, """
        a = shared(1 << 28)
        before = a.full(10, 1.0)
        m = a.mark()
        new = []                                 # the child holds ``before`` and a new one
        child = forked(lambda: new.append(a.full(10, 2.0)), new.clear)
        child.step()
        refused(lambda: a.release(m), BufferError, f"process {child.pid}")
        child.step()                             # drops the new one, keeps ``before``
        a.release(m)
        assert a.used == 80
        child.finish()
        """)


def test_a_thread_allocating_while_release_waits_for_another_process(tmp_path):
    """release() gives another process's views 0.1 s to go, and looking at them runs Python
    code: a thread of this process that allocates past the mark meanwhile makes the release
    refuse (before: the release went on and freed that thread's live array)."""
    run(tmp_path, """
        import threading, time
        a = shared(1 << 28)
        m = a.mark()
        new, kept = [], []
        child = forked(lambda: new.append(a.full(10, 2.0)), new.clear)
        child.step()                             # the child holds a view past the mark

        def allocate():                          # inside release's wait for the child
            time.sleep(0.005)
            kept.append(a.full(1000, 3.0))
            child.step()                         # the child drops its view

        t = threading.Thread(target=allocate)
        t.start()
        refused(lambda: a.release(m), BufferError, "views in this process reach past")
        t.join()
        y = a.full(1000, 4.0)
        assert (kept[0] == 3).all() and (y == 4).all()
        del y, kept[:]
        a.release(m)
        assert a.used == 0
        child.finish()
        """)


def test_close_from_another_thread_while_release_waits_is_refused(tmp_path):
    """close() in one thread while another's release() waits for another process's views
    (and reads /proc with the control block in hand): refused, not a crash."""
    run(tmp_path, """
        import threading, time
        a = shared(1 << 28)
        m = a.mark()
        new, out = [], []
        child = forked(lambda: new.append(a.full(10, 2.0)), new.clear)
        child.step()                             # the child holds a view past the mark

        def close():                             # inside release's wait for the child
            time.sleep(0.005)
            refused(a.close, BufferError, "another thread is in a reset, release")
            out.append(a.closed)

        t = threading.Thread(target=close)
        t.start()
        refused(lambda: a.release(m), BufferError, f"process {child.pid}")
        t.join()
        assert out == [False]
        child.step()                             # the child drops its view
        a.release(m)
        a.close()
        child.finish()
        """)


@pytest.mark.slow
def test_fork_child_holds_the_views_it_inherited_and_close_is_local(tmp_path):
    run(tmp_path, """
        a = shared(1 << 28)
        box = [a.full(10, 1.0)]

        def in_child():
            box[0][:] = 5                        # its inherited view still works...
            box.clear()
            a.close()                            # ...and close() is this process's only

        child = forked(in_child)
        assert (box.pop() == 1).all()
        refused(a.reset, BufferError, f"process {child.pid} holds 1 live view")
        child.step()
        a.reset()                                # the child dropped it and closed
        y = a.full(10, 2.0)
        assert (y == 2).all() and a.offset_of(y) == 0
        child.finish()
        """)


@pytest.mark.slow
def test_a_child_that_execs_holds_nothing(tmp_path):
    run(tmp_path, """
        import subprocess, sys
        a = shared(1 << 28)
        x = a.full(10, 1.0)
        # preexec_fn makes subprocess run the at-fork hooks: the child takes a slot for the
        # view it inherits, then exec drops everything (the descriptors are CLOEXEC).
        p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                             preexec_fn=lambda: None)
        del x
        a.reset()
        assert [pid for pid, _ in arena._core._live_processes(a)] in ([], [os.getpid()])
        p.kill(); p.wait()
        """)


@pytest.mark.slow
@pytest.mark.parametrize("flags", [Flags.TRANSPARENT_HUGE_PAGES, Flags.POPULATE,
                                   Flags.NO_CORE_DUMP, Flags.LOCKED,
                                   Flags.POPULATE | Flags.NO_CORE_DUMP])
def test_memory_policy_flags_in_every_process(tmp_path, flags):
    run(tmp_path, f"""
        a = shared(1 << 28, Flags({int(flags)}))
        x = a.full(1 << 18, 1.0)

        def in_child():
            y = a.full(1 << 18, 2.0)
            assert (y == 2).all() and (x == 1).all()
            if Flags.NO_CORE_DUMP in a.options.flags:
                assert "dd" in mapping_stats(a.address, a.reserved)["VmFlags"]

        forked(in_child).finish()
        assert a.used == 2 * 8 * (1 << 18)
        assert (a.view(8 << 18, 1 << 18) == 2).all()
        """)


@pytest.mark.root
def test_hugetlb_shared_arena_across_processes(tmp_path):
    if 2 * MiB not in arena.page_sizes():
        pytest.skip("no 2 MiB hugetlb pages")
    with hugetlb_pool(2 * MiB, 4):
        run(tmp_path, """
            a = ArenaOptions(1 << 30).with_page_size(PageSize.SIZE_2M) \\
                .with_flags(Flags.SHARED).reserve()
            x = a.full(1 << 18, 1.0)             # one huge page
            pid = os.fork()
            if pid == 0:
                y = a.full(1 << 18, 2.0)         # the next one, from the child
                try:
                    a.alloc(8 << 20)             # more than the pool has left
                except MemoryError:
                    os._exit(0 if (y == 2).all() else 2)
                os._exit(1)
            _, status = os.waitpid(pid, 0)
            assert os.WEXITSTATUS(status) == 0, status
            assert (a.view(2 << 20, 1 << 18) == 2).all() and (x == 1).all()
            del x
            a.reset(decommit=True)
            """)


@pytest.mark.slow
@pytest.mark.rlimit
def test_no_descriptor_mapping_or_file_left_over_many_pool_runs(tmp_path):
    run(tmp_path, """

        def fd_count():
            return len(os.listdir("/proc/self/fd"))

        def map_count(ours=False):
            with open("/proc/self/maps") as f:
                return sum(1 for line in f if not ours or "memfd:arena" in line)

        def names():
            return sorted(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else []

        def one_run(a, method):
            ctx = mp.get_context(method)
            with ProcessPoolExecutor(2, mp_context=ctx, initializer=workers.init,
                                     initargs=(a,)) as pool:
                rs = list(pool.map(workers.stamp, range(8)))
                assert [int(r[0]) for r in rs] == list(range(8))
                list(pool.map(workers.inspect, rs))
            del rs
            a.reset()

        if __name__ == '__main__':
            a = shared(1 << 30)
            for method in ("fork", "spawn"):
                one_run(a, method)               # warm: the forkserver-less machinery
            gc.collect()
            fds, maps, shm, mine = fd_count(), map_count(), names(), map_count(ours=True)
            for i in range(20):
                one_run(a, ("fork", "spawn")[i % 2])
            for _ in range(50):  # the executors' own pipes close as their threads wind down
                gc.collect()
                if fd_count() == fds:
                    break
                time.sleep(0.1)
            assert fd_count() == fds, (fd_count(), fds)
            # (the pools' threads may leave glibc a malloc arena or a cached stack or two)
            assert map_count() <= maps + 16, (map_count(), maps)
            assert map_count(ours=True) <= mine + 1, (map_count(ours=True), mine)
            assert names() == shm
            a.close()
            gc.collect()
            assert fd_count() == fds - 2         # the data and control memfds
        """, timeout=600)


def test_nothing_is_created_under_a_name():
    def names():
        found = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                found.append(os.readlink(f"/proc/self/fd/{fd}"))
            except OSError:
                pass  # the directory's own descriptor, gone by now
        return found

    before = names()
    a = shared(1 << 24)
    x = a.zeros(10)
    new = names()
    for name in before:
        new.remove(name)
    assert sorted(new) == ["/memfd:arena (deleted)", "/memfd:arena-control (deleted)"]
    del x
    a.close()
    assert sorted(names()) == sorted(before)
