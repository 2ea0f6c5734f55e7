"""Processes: fork with private and shared arenas, arenas collected while views live, arenas
alive at interpreter shutdown, and thousands of arenas without mapping or fd growth."""
import gc
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import arena._core  # noqa: F401  (loaded up front: its .so is not a mapping we leak)
from arena import Arena, ArenaOptions, Flags
from helpers import check_child, map_count, run_child

MiB = 1 << 20


def fd_count():
    return len(os.listdir("/proc/self/fd"))


def test_fork_private_arena_child_allocates_parent_unchanged():
    out = check_child("""
        import os, numpy as np, arena
        a = arena.ArenaOptions(1 << 30).with_commit_step(1 << 20).reserve()
        x = a.full(1 << 18, 7, dtype=np.int32)
        used = a.used
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(r)
                x[:] = 1                          # copy-on-write: the parent keeps its 7s
                ys = [a.full(1 << 16, 9, dtype=np.int32) for _ in range(64)]  # 16 MiB more
                assert a.offset_of(ys[0]) == used  # same bookkeeping, own memory
                with a.numpy_allocator():
                    z = np.arange(1e5)
                del ys, z
                m = a.mark(); t = a.zeros(10); del t; a.release(m)
                os.write(w, str(a.used).encode())
                os._exit(0)
            except BaseException as exc:
                os.write(w, repr(exc).encode())
                os._exit(1)
        os.close(w)
        msg = os.read(r, 200).decode()
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, msg
        assert int(msg) >= used + (16 << 20)         # the child did allocate
        assert a.used == used and (x == 7).all()      # the parent saw none of it
        y = a.full(1 << 16, 3, dtype=np.int32)        # ...and allocates where it left off
        assert a.offset_of(y) == used and (x == 7).all()
        print('ok')
    """)
    assert out.strip() == "ok"


def test_fork_shared_arena_bytes_and_bookkeeping_are_shared():
    """Flags.SHARED: children see and write the same bytes, and the bump pointer is the
    arena's, not the process's: what a child allocates, the parent never hands out again
    (test_shared.py has the rest of the multi-process contract)."""
    out = check_child("""
        import os, numpy as np, arena
        a = arena.ArenaOptions(1 << 28).with_flags(arena.Flags.SHARED).reserve()
        x = a.zeros(1 << 16, np.int64)
        used = a.used
        pid = os.fork()
        if pid == 0:
            x[:] = np.arange(1 << 16)          # visible to the parent
            y = a.full(16, 5, dtype=np.int64)  # after everything the parent allocated
            os._exit(0 if a.offset_of(y) == used else 1)
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        assert (x == np.arange(1 << 16)).all()
        assert a.used == used + 128 and a.num_allocations == 2
        assert (a.view(used, 16, np.int64) == 5).all()
        z = a.zeros(16, np.int64)              # after the child's allocation
        assert a.offset_of(z) == used + 128 and not z.any()
        print('ok')
    """)
    assert out.strip() == "ok"


def live_arenas():
    return sum(isinstance(o, Arena) for o in gc.get_objects())


@pytest.mark.rlimit
def test_arenas_collected_with_views_alive():
    gc.collect()
    before_maps, before_fds, before_arenas = map_count(), fd_count(), live_arenas()
    keep = []
    for i in range(20):
        opts = ArenaOptions(64 * MiB)
        if i % 4 == 1:
            opts = opts.with_flags(Flags.SHARED)
        if i % 4 == 2:
            opts = opts.with_flags(Flags.TRANSPARENT_HUGE_PAGES)
        a = Arena(opts)
        x = a.full(1000, float(i))
        m = a.mark()
        y = a.full(10, -1.0)
        v = a.view(a.offset_of(x), 10)
        keep.append((x[::2], y, v))    # slices and views only: the arena object goes
        del a, x, y, v, m
    gc.collect()
    assert live_arenas() == before_arenas
    for i, (x, y, v) in enumerate(keep):
        assert (x == i).all() and (y == -1).all() and (v == i).all()
        x[:] = 0                        # still mapped and writable
        assert v[0] == 0
    # NumPy-handler arrays keep their arena alive (the handler capsule holds it), and it
    # is collected with the last of them.
    a = Arena(64 * MiB)
    with a.numpy_allocator():
        z = np.full(100, 3.0)
    del a
    gc.collect()
    assert live_arenas() == before_arenas + 1 and (z == 3).all()
    # A cycle through an arena and its view: collected by the cycle collector.
    cyc = []
    a = Arena(64 * MiB)
    cyc.extend([a, a.zeros(10), cyc])
    del a, cyc, z
    gc.collect()
    assert live_arenas() == before_arenas
    assert map_count() > before_maps + 10     # the 20 views still hold their mappings
    del keep, x, y, v
    gc.collect()
    assert map_count() <= before_maps + 2 and fd_count() == before_fds


def test_arenas_alive_at_interpreter_shutdown(tmp_path):
    """Arenas with live views, marks, open scopes, NEP 49 arrays, an active handler,
    shared/file/THP flags and reference cycles, all alive when the interpreter exits:
    exit status 0 and nothing on stderr, in development mode (-X dev shows
    ResourceWarnings and checks the allocators) as in a plain run."""
    code = f"""
        import sys, gc, numpy as np, arena
        from arena import Arena, ArenaOptions, Flags
        keep = []
        for flags in (Flags(0), Flags.SHARED, Flags.TRANSPARENT_HUGE_PAGES, Flags.NO_CORE_DUMP):
            a = ArenaOptions(1 << 28).with_flags(flags).reserve()
            x = a.full(1000, 1.0)
            m = a.mark()
            y = a.view(0, 10)
            with a.numpy_allocator():
                z = np.arange(100.0)
            keep.append((a, x, m, y, z))
        f = ArenaOptions(1 << 24).with_file({str(tmp_path / 'f')!r}).reserve()
        fx = f.zeros(100)
        cyc = [Arena(1 << 24)]
        cyc.append(cyc[0].zeros(5)); cyc.append(cyc)
        del cyc
        scope = keep[0][0].scope(); scope.__enter__(); t = keep[0][0].zeros(3)
        handler = keep[1][0].numpy_allocator(); handler.__enter__()
        w = np.ones(50)            # from the handler still installed at exit
        ro = Arena(1 << 20); ro.zeros(1); ro.make_read_only(); v = ro.view(0, 1)
        print('exiting')
    """
    for flags in ([], ["-X", "dev"]):
        env = {"PYTHONWARNINGS": "error"} if not flags else {}
        out = subprocess.run([sys.executable, *flags, "-c", textwrap.dedent(code)],
                             capture_output=True, text=True, timeout=120,
                             env={**os.environ, **env})
        assert out.returncode == 0, out.stderr
        assert out.stdout == "exiting\n" and out.stderr == "", out.stderr


def test_exit_inside_numpy_allocator_block_and_from_a_thread():
    out = run_child("""
        import threading, numpy as np, arena, sys
        a = arena.Arena(1 << 26)
        def t():
            with a.numpy_allocator():
                global y
                y = np.arange(1000.0)
        th = threading.Thread(target=t); th.start(); th.join()
        with a.numpy_allocator():
            x = np.ones(10)
            sys.exit(3)
    """)
    assert out.returncode == 3 and out.stderr == ""


@pytest.mark.rlimit
@pytest.mark.parametrize("flags", [Flags(0), Flags.SHARED, Flags.TRANSPARENT_HUGE_PAGES,
                                   Flags.NO_CORE_DUMP | Flags.POPULATE])
def test_thousands_of_arenas_without_mapping_or_fd_growth(flags):
    n = 3000 if flags == Flags(0) else 750
    opts = ArenaOptions(4 * MiB).with_flags(flags).with_commit_step(64 << 10)
    for _ in range(20):  # warm up allocator caches before the baseline
        Arena(opts).close()
    gc.collect()
    before_maps, before_fds = map_count(), fd_count()
    peak = 0
    for i in range(n):
        a = Arena(opts)
        x = a.zeros(1000)
        if i % 2:
            del x
            a.close()          # closed explicitly...
        else:
            del x, a           # ...or dropped
        if i % 500 == 0:
            peak = max(peak, map_count())
    gc.collect()
    assert map_count() <= before_maps + 2, (map_count(), before_maps)
    assert peak <= before_maps + 8
    assert fd_count() == before_fds
