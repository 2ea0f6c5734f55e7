"""Lifetime: frames count views; marks, scopes, reset and close refuse while views live."""
import gc
import weakref

import numpy as np
import pytest

from arena import Arena
from helpers import check_child, map_count


def test_views_keep_memory_alive_after_arena_is_dropped():
    a = Arena(1 << 20)
    x = a.full(1000, 7, dtype=np.int64)
    y = x[10:20]
    del a
    gc.collect()
    assert (x == 7).all() and (y == 7).all()
    y[:] = 3
    assert x[10] == 3


def test_slices_and_views_count_through_their_parent():
    a = Arena(1 << 20)
    x = a.zeros(100)
    m = a.mark()
    t = a.zeros(100)
    s = t[::2].reshape(5, 10).T
    mv = memoryview(t)
    del t
    with pytest.raises(BufferError):
        a.release(m)
    del s
    with pytest.raises(BufferError):
        a.release(m)
    del mv
    a.release(m)
    assert a.used == 800
    assert x.sum() == 0


def test_live_views_counts_arrays_handed_out():
    a = Arena(1 << 20)
    xs = [a.empty(4) for _ in range(5)]
    assert a.live_views == 5
    view = xs[0][1:]
    assert a.live_views == 5
    del xs[:3]
    assert a.live_views == 3
    del xs
    assert a.live_views == 1
    del view
    assert a.live_views == 0


def test_mark_release_nested():
    a = Arena(1 << 20)
    a.zeros(8)
    m1 = a.mark()
    a.zeros(8)
    m2 = a.mark()
    a.zeros(100)
    assert a.levels == 3 and a.num_allocations == 3
    a.release(m1)  # releases m2's level too
    assert a.used == 64 and a.num_allocations == 1 and a.levels == 1
    with pytest.raises(ValueError):
        a.release(m2)
    with pytest.raises(ValueError):
        a.release(m1)


def test_release_refusal_changes_nothing():
    a = Arena(1 << 20)
    m = a.mark()
    t = a.full(10, 1.0)
    used, n = a.used, a.num_allocations
    with pytest.raises(BufferError):
        a.release(m)
    assert a.used == used and a.num_allocations == n and t.sum() == 10
    del t
    a.release(m)
    assert a.used == 0


def test_old_level_views_do_not_block_release():
    a = Arena(1 << 20)
    keep = a.full(4, 2.0)
    m = a.mark()
    tmp = a.empty(10)
    del tmp
    a.release(m)
    assert keep.tolist() == [2.0] * 4


def test_mark_from_other_arena_and_wrong_type():
    a, b = Arena(1 << 20), Arena(1 << 20)
    with pytest.raises(ValueError):
        a.release(b.mark())
    with pytest.raises(TypeError):
        a.release(0)


def test_reset_invalidates_marks_and_refuses_with_views():
    a = Arena(1 << 20)
    m = a.mark()
    x = a.zeros(10)
    with pytest.raises(BufferError):
        a.reset()
    assert a.used == 80
    del x
    a.reset()
    assert a.used == 0 and a.levels == 1
    with pytest.raises(ValueError):
        a.release(m)


def test_scope():
    a = Arena(1 << 20)
    with a.scope() as m:
        t = a.zeros(100)
        assert a.used == 800 and m.offset == 0
        del t
    assert a.used == 0
    with pytest.raises(BufferError):
        with a.scope():
            leak = a.zeros(10)
    assert leak.sum() == 0


def test_scope_does_not_mask_exceptions():
    a = Arena(1 << 20)
    with pytest.raises(KeyError):
        with a.scope():
            t = a.zeros(10)
            raise KeyError("x")
    # t is still alive, so its level was kept rather than freed under it.
    assert a.levels == 2 and a.used == 80 and t.sum() == 0
    with pytest.raises(ZeroDivisionError):
        with a.scope():
            a.zeros(10)
            raise ZeroDivisionError
    assert a.levels == 2 and a.used == 80
    del t
    a.reset()
    assert a.used == 0


def test_view_counts_in_newest_level_it_covers():
    a = Arena(1 << 20)
    a.zeros(8)
    m = a.mark()
    a.zeros(8)
    v_old = a.view(0, 64, np.uint8)  # covers only the first level
    a.release(m)  # not blocked by v_old
    m = a.mark()
    t = a.zeros(8)
    del t
    v_new = a.view(0, 72, np.uint8)  # reaches into the marked level
    with pytest.raises(BufferError):
        a.release(m)
    del v_new
    a.release(m)
    del v_old


def test_close_rules():
    a = Arena(1 << 20)
    x = a.zeros(4)
    with pytest.raises(BufferError):
        a.close()
    assert not a.closed and x.sum() == 0
    del x
    a.close()
    a.close()
    assert a.closed
    for call in (lambda: a.empty(1), lambda: a.zeros(1), lambda: a.mark(), lambda: a.reset(),
                 lambda: a.commit(10), lambda: a.decommit(), lambda: a.view(0, 1),
                 lambda: a.used, lambda: a.stats(), lambda: a.scope(), lambda: a.alloc(1),
                 lambda: a.offset_of(np.zeros(1)), lambda: a.make_read_only(),
                 lambda: a.lock(), lambda: a.flush()):
        with pytest.raises(ValueError, match="closed"):
            call()
    assert "closed" in repr(a)


def test_context_manager_closes():
    with Arena(1 << 20) as a:
        a.zeros(3)
    assert a.closed


def test_context_manager_with_live_view_raises():
    with pytest.raises(BufferError):
        with Arena(1 << 20) as a:
            x = a.zeros(3)
    assert not a.closed and x.sum() == 0


@pytest.mark.rlimit
def test_collected_arena_unmaps():
    before = map_count()
    for _ in range(50):
        a = Arena(1 << 30)
        a.zeros(1000)
        del a
    gc.collect()
    assert map_count() <= before + 2


def test_arena_without_views_is_freed_by_refcount():
    a = Arena(1 << 20)
    ref = weakref.ref(a) if hasattr(a, "__weakref__") else None
    x = a.zeros(3)
    del x
    del a
    if ref is not None:
        assert ref() is None


def test_dropping_arena_with_views_then_views_unmaps():
    check_child("""
        import gc, numpy as np
        from arena import Arena
        a = Arena(1 << 30)
        x = a.full(1 << 20, 5, dtype=np.uint8)
        addr = a.address
        del a; gc.collect()
        assert int(x.sum()) == 5 << 20
        assert any(l.startswith(format(addr, 'x')) for l in open('/proc/self/maps'))
        del x; gc.collect()
        assert not any(l.startswith(format(addr, 'x')) for l in open('/proc/self/maps'))
    """)
