"""NEP 49: NumPy's own allocations from the arena inside ``with a.numpy_allocator():``."""
import threading

import numpy as np
import pytest

from arena import ArenaOptions
from helpers import check_child

MiB = 1 << 20
handler_name = np._core.multiarray.get_handler_name


def heap_arena(size):
    """An arena whose heap serves every NumPy request, however small (the v1 behaviour these
    tests were written for): the default sends requests below 1 KiB to NumPy's allocator."""
    return ArenaOptions(size).with_small_threshold(0).reserve()


def inside(a, x):
    p = x.__array_interface__["data"][0]
    return a.address <= p < a.address + a.reserved


def test_allocations_inside_land_in_the_arena_outside_do_not():
    a = heap_arena(1 << 30)
    x = np.ones(1000)
    with a.numpy_allocator() as same:
        assert same is a
        assert handler_name().startswith("arena_")
        y = x * 2
        z = np.zeros((10, 10))
        e = np.empty(0)
    w = x * 2
    assert handler_name() == "default_allocator"
    assert inside(a, y) and inside(a, z) and not inside(a, w) and not inside(a, x)
    assert handler_name(y).startswith("arena_")
    assert (z == 0).all() and (y == 2).all() and e.size == 0
    assert a.live_views == 3


def test_handler_arrays_count_as_views_and_outlive_the_block():
    a = heap_arena(1 << 30)
    with a.numpy_allocator():
        y = np.arange(1000.0)
    for refused in (a.reset, a.close, a.make_read_only, a.make_none):
        with pytest.raises(BufferError):
            refused()
    m = a.mark()
    a.release(m)  # y is below the mark: not in the way
    assert y.sum() == 499500.0
    del y
    a.reset()
    a.close()


def test_release_refuses_while_handler_blocks_above_the_mark_live():
    a = heap_arena(1 << 30)
    m = a.mark()
    with a.numpy_allocator():
        y = np.ones(100)
    with pytest.raises(BufferError):
        a.release(m)
    del y
    a.release(m)
    assert a.used == 0


def test_calloc_zeroes_reused_memory():
    a = heap_arena(1 << 30)
    with a.numpy_allocator():
        dirty = np.full(1 << 16, 7.0)
        del dirty
        clean = np.zeros(1 << 16)
    assert inside(a, clean) and not clean.any()


def test_loop_of_temporaries_runs_in_bounded_memory():
    a = heap_arena(256 * MiB)
    n = (512 << 10) // 8
    rng = np.random.default_rng(0)
    x, y = rng.random(n), rng.random(n)
    ref = y.copy()
    for _ in range(50):
        ref = np.sqrt(x * 2.0 + ref) - np.abs(ref - x)
    with a.numpy_allocator():
        for _ in range(2000):
            y = np.sqrt(x * 2.0 + y) - np.abs(y - x)
            if _ == 49:
                assert np.array_equal(y, ref)
    assert a.high_water <= 8 * MiB, a.high_water
    assert inside(a, y)


def test_exhaustion_is_memoryerror_and_nothing_else_breaks():
    a = heap_arena(4 * MiB)
    with a.numpy_allocator():
        keep = np.ones(1000)
        with pytest.raises(MemoryError):
            np.empty(8 * MiB)
        more = keep + 1
    assert (more == 2).all() and (keep == 1).all()
    assert np.ones(8 * MiB, np.uint8).sum() == 8 * MiB  # outside the block: NumPy's allocator


def test_thread_isolation():
    a = heap_arena(1 << 30)
    seen = {}

    def other():
        seen["name"] = handler_name()
        seen["inside"] = inside(a, np.ones(100))

    with a.numpy_allocator():
        t = threading.Thread(target=other)
        t.start()
        t.join()
        mine = np.ones(100)
    assert seen == {"name": "default_allocator", "inside": False}
    assert inside(a, mine)


def test_nested_blocks_two_arenas_and_raising():
    a, b = heap_arena(1 << 30), heap_arena(1 << 30)
    with a.numpy_allocator():
        x = np.ones(10)
        with b.numpy_allocator():
            y = np.ones(10)
            with a.numpy_allocator():
                z = np.ones(10)
            w = np.ones(10)
        v = np.ones(10)
    assert inside(a, x) and inside(b, y) and inside(a, z) and inside(b, w) and inside(a, v)
    with pytest.raises(KeyError):
        with a.numpy_allocator():
            raise KeyError("boom")
    assert handler_name() == "default_allocator"


def test_realloc_by_resize():
    a = heap_arena(1 << 30)
    with a.numpy_allocator():
        x = np.arange(10.0)
        x.resize(1000, refcheck=False)  # grows in place: x is the top block
        assert inside(a, x) and x[9] == 9.0 and (x[10:] == 0).all()
        y = np.arange(5.0)
        x.resize(5000, refcheck=False)  # y sits above: moves
        assert inside(a, x) and x[9] == 9.0 and y.sum() == 10.0
        x.resize(3, refcheck=False)
        assert x.tolist() == [0.0, 1.0, 2.0]
        r = np.resize(np.arange(3), 7)
    assert inside(a, r) and r.tolist() == [0, 1, 2, 0, 1, 2, 0]


def test_closed_arena_handler_never_touches_freed_memory():
    out = check_child("""
        import gc, numpy as np, arena
        a = arena.ArenaOptions(1 << 30).with_small_threshold(0).reserve()
        cm = a.numpy_allocator()
        with cm:
            a.close()
            try:
                np.ones(10)
            except MemoryError:
                print('refused after close')
            del a; gc.collect()   # the installed handler still holds the closed arena
            try:
                np.ones(10)
            except MemoryError:
                print('refused again')
        try:
            with cm:
                pass
        except ValueError:
            x = np.ones(10)
            print('ok', x.sum())
    """)
    assert out.split("\n")[:3] == ["refused after close", "refused again", "ok 10.0"]


def test_handler_keeps_arena_alive_while_its_arrays_live():
    out = check_child("""
        import gc, numpy as np, arena
        a = arena.ArenaOptions(1 << 30).with_small_threshold(0).reserve()
        with a.numpy_allocator():
            y = np.full(1 << 20, 3.0)
        del a; gc.collect()
        assert y.sum() == 3 << 20
        y[:] = 1
        del y; gc.collect()
        print('ok')
    """)
    assert out.strip() == "ok"


def test_thp_arena_serves_numpy():
    a = ArenaOptions(1 << 30).with_flags(__import__("arena").Flags.TRANSPARENT_HUGE_PAGES).reserve()
    with a.numpy_allocator():
        y = np.ones(4 * MiB)
    assert inside(a, y) and y.sum() == 4 * MiB
