"""A shared arena's NEP 49 heap (``numpy_allocator()``) across processes: its blocks hold the
arena while live, are taken back before reuse after the heap was idle, are dropped when
another process freed them, and are never reused by both sides of a fork. Each scenario runs
in a fresh interpreter through test_shared's ``run``.
"""
import pytest

from test_shared import run


@pytest.mark.slow
def test_numpy_allocator_blocks_of_another_process_hold_the_arena(tmp_path):
    run(tmp_path, """
        a = shared(1 << 28)
        blocks = []

        def in_child():
            with a.numpy_allocator():            # blocks handed out from the shared bump
                blocks.extend([np.ones(1 << 16), np.ones(1 << 16) * 2])

        child = forked(in_child, blocks.clear)   # then the heap is empty: it holds nothing
        child.step()
        x = a.zeros(10)                          # after the child's blocks
        assert a.offset_of(x) >= 2 * 8 * (1 << 16)
        del x
        refused(a.reset, BufferError, f"process {child.pid}")   # its NumPy arrays
        child.step()
        a.reset()
        child.finish()
        """)


def test_numpy_heap_reuse_after_idle_is_published(tmp_path):
    """A process whose NumPy heap went idle (last block freed) holds nothing, and keeps its
    free blocks: reusing one must publish it again (before: reset in another process
    succeeded, and both processes used the same bytes)."""
    run(tmp_path, """
        a = shared(1 << 28)
        N = 1 << 17
        box = []

        def reuse():
            with a.numpy_allocator():
                x = np.ones(N)
            del x                                # idle: its free block is kept
            with a.numpy_allocator():
                box.append(np.zeros(N))          # reuses it

        def write():
            assert (box[0] == 0).all(), "the parent's array was handed out over mine"
            box[0][:] = 1

        child = forked(reuse, write, box.clear)
        child.step()
        refused(a.reset, BufferError, f"process {child.pid}")
        z = a.full(N, 7.0)
        child.step()
        assert (z == 7).all()
        del z
        child.step()
        a.reset()
        child.finish()
        """)


def test_numpy_heap_drops_blocks_another_process_freed(tmp_path):
    """Free blocks an idle heap kept may be freed by another process's reset and handed out
    again there: the heap must not hand them out as well (before: the child's np.zeros
    cleared the parent's array)."""
    run(tmp_path, """
        a = shared(1 << 28)
        N = 1 << 17
        box = []

        def keep_a_free_block():
            with a.numpy_allocator():
                x = np.ones(N)
            del x

        def allocate():
            with a.numpy_allocator():
                box.append(np.zeros(N))
            assert (box[0] == 0).all()

        child = forked(keep_a_free_block, allocate, lambda: box[0].fill(1))
        child.step()
        a.reset()                                # allowed: nothing is live anywhere
        z = a.full(N, 7.0)
        child.step()
        child.step()
        assert (z == 7).all()
        child.finish()
        """)


def test_numpy_heap_blocks_are_never_reused_by_both_sides_of_a_fork(tmp_path):
    """At a fork the child inherits the heap: its free blocks and the arrays over its live
    ones. Neither process may hand out what the other reuses or still holds (before: the
    parent reused the block of an array the child inherited, and both reused a free one)."""
    run(tmp_path, """
        a = shared(1 << 28)
        N = 1 << 17
        with a.numpy_allocator():
            held, free, keep = np.ones(N), np.ones(N), np.ones(N)
        del free                                 # a free block, the heap still live
        box = []

        def take():
            with a.numpy_allocator():
                box.append(np.full(N, 2.0))

        def check():
            assert (held == 1).all(), "the parent reused the block of an inherited array"
            assert (box[0] == 2).all(), "both processes reused one free block"

        child = forked(take, check)
        del held                                 # the child still holds its copy
        child.step()
        with a.numpy_allocator():
            mine = [np.full(N, 3.0) for _ in range(2)]
        child.step()
        assert all((m == 3).all() for m in mine)
        child.finish()
        """)


def test_numpy_allocator_churn_with_another_process_churning_at_once(tmp_path):
    """Two processes allocate and free a NumPy temporary in a loop at once: each reuses
    its block (64 MiB would be full after 2048 fresh ones), and neither's is the other's."""
    run(tmp_path, """
        import traceback
        a = shared(64 << 20)

        def churn(stamp):
            with a.numpy_allocator():
                for i in range(50_000):
                    x = np.empty(4096)
                    x.fill(stamp)
                    assert x[0] == stamp and x[-1] == stamp, "another process's block"
                    del x

        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                churn(2.0)
            except BaseException:
                traceback.print_exc()
                code = 1
            os._exit(code)
        churn(1.0)
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
        assert a.used <= 1 << 20, a.used
        a.reset()
        """)


@pytest.mark.slow
def test_numpy_heap_against_resets_of_another_process(tmp_path):
    """One process allocates and frees NumPy arrays in a loop (its heap idle between rounds),
    another resets whenever it may and fills arrays of its own: no array of either changes
    under it (before: about one round in 5000 found its arrays overwritten)."""
    run(tmp_path, """
        import traceback
        a = shared(64 << 20)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                rng = np.random.default_rng(1)
                end = time.time() + 3
                while time.time() < end:
                    with a.numpy_allocator():
                        xs = [np.full(int(rng.integers(200, 20000)), 2.0)
                              for _ in range(int(rng.integers(1, 4)))]
                        assert all((x == 2).all() for x in xs), "the heap handed out freed bytes"
                        del xs
            except BaseException:
                traceback.print_exc()
                code = 1
            os._exit(code)
        end = time.time() + 3
        while time.time() < end:
            try:
                a.reset()
            except BufferError:
                pass
            zs = [a.full(5000, 7.0) for _ in range(3)]
            time.sleep(0.0001)
            assert all((z == 7).all() for z in zs), "the child's heap wrote into my arrays"
            del zs
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
        """)
