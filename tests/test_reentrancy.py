"""Arguments whose conversion runs Python code that uses the same arena.

NumPy and the arena convert shape entries (``__index__``), ``align``, ``dtype`` (a ``dtype``
attribute), fill values (``__float__``, ``__array__``) and objects to copy: any of them can
allocate from the arena, reset it, close it, or raise. v1's ``full()`` recorded the bump
pointer before converting and, when the call then failed, "rolled back" over the array the
conversion had allocated: the next allocation got the same bytes. Every allocating call now
converts everything before it touches the bump pointer (and rolls back only what is provably
its own), so whatever the conversion allocated stays live and untouched.
"""
import numpy as np
import pytest

import arena
from helpers import check_child


class Hostile:
    """Allocates ``a.full(4, 7.0)`` from the arena whenever NumPy or the arena converts it,
    then raises (``fail``) or answers ``value``."""

    def __init__(self, a, held, value=4, fail=True):
        self.a, self.held, self.value, self.fail = a, held, value, fail

    def _hit(self):
        self.held.append(self.a.full(4, 7.0))
        if self.fail:
            raise ValueError("hostile conversion")

    def __index__(self):
        self._hit()
        return self.value

    def __float__(self):
        self._hit()
        return float(self.value)

    def __array__(self, dtype=None, copy=None):
        self._hit()
        return np.full(3, float(self.value), dtype=dtype)

    @property
    def dtype(self):  # np.dtype(obj) reads obj.dtype
        self._hit()
        return np.dtype(np.float64)


# (name, call(a, h)) for every allocating call and every argument NumPy or the arena converts
CALLS = [
    ("empty-shape", lambda a, h: a.empty(h)),
    ("empty-shape-entry", lambda a, h: a.empty((2, h))),
    ("empty-dtype", lambda a, h: a.empty(3, h)),
    ("empty-align", lambda a, h: a.empty(3, align=h)),
    ("zeros-shape-entry", lambda a, h: a.zeros((h,))),
    ("zeros-dtype", lambda a, h: a.zeros(3, h)),
    ("full-shape-entry", lambda a, h: a.full((h,), "oops", dtype=float)),
    ("full-shape-entry-ok", lambda a, h: a.full((h,), 1.0)),
    ("full-fill-float", lambda a, h: a.full(3, h, dtype=float)),
    ("full-fill-array", lambda a, h: a.full(3, h)),
    ("full-dtype", lambda a, h: a.full(3, 1.0, dtype=h)),
    ("full-align", lambda a, h: a.full(3, 1.0, align=h)),
    ("empty_like-prototype", lambda a, h: a.empty_like(h)),
    ("empty_like-shape", lambda a, h: a.empty_like(np.ones(3), shape=(h,))),
    ("zeros_like-dtype", lambda a, h: a.zeros_like(np.ones(3), dtype=h)),
    ("array-__array__", lambda a, h: a.array(h)),
    ("array-items", lambda a, h: a.array([h, h], dtype=float)),
    ("array-dtype", lambda a, h: a.array([1.0, 2.0], dtype=h)),
    ("array-ndmin", lambda a, h: a.array([1.0], ndmin=h)),
    ("alloc-nbytes", lambda a, h: a.alloc(h)),
    ("alloc-align", lambda a, h: a.alloc(8, align=h)),
    ("view-offset", lambda a, h: a.view(h, 1)),
    ("view-shape", lambda a, h: a.view(0, (h,))),
    ("view-dtype", lambda a, h: a.view(0, 1, h)),
]


@pytest.mark.parametrize("fail", [True, False], ids=["raises", "answers"])
@pytest.mark.parametrize("name,call", CALLS, ids=[c[0] for c in CALLS])
def test_conversion_that_allocates_never_loses_its_array(name, call, fail):
    a = arena.Arena(1 << 20)
    a.full(64, 0.5)              # something in use, so that views have bytes to cover
    held = []
    h = Hostile(a, held, value=64 if "align" in name else 4, fail=fail)
    try:
        out = call(a, h)
    except (ValueError, TypeError):
        out = None               # refused: the conversion's error, or NumPy's about it
    assert held, "the hostile conversion never ran"
    later = [a.full(4, -1.0) for _ in range(3)]
    for x in held:
        assert (x == 7.0).all(), f"{name}: an array the conversion allocated was reused"
        for y in later + ([out] if out is not None and out.base is not None else []):
            if y is out and name.startswith("view"):
                continue         # a view may cover anything in use, by design
            assert not np.shares_memory(x, y), name
    assert a.live_views >= len(held) + len(later)


def test_full_with_an_index_that_allocates_then_an_unconvertible_fill():
    """The issue's example, verbatim: v1 gave ``b`` the bytes of ``held[0]``."""
    a = arena.Arena(1 << 20)
    held = []

    class N:
        def __index__(self):
            held.append(a.full(4, 7.0))
            return 4

    with pytest.raises(ValueError):
        a.full((N(),), "oops", dtype=float)
    b = a.full(4, -1.0)
    assert held[0].tolist() == [7.0] * 4 and not np.shares_memory(held[0], b)


def test_a_conversion_that_closes_or_resets_the_arena():
    """Code run by a conversion may reset or close the arena; the call then sees it (a
    closed arena is ValueError), and never hands out memory of a closed mapping (v1: a
    view over the unmapped range, read in a child process: SIGSEGV)."""
    out = check_child("""
        import numpy as np, arena
        a = arena.Arena(1 << 20)
        a.alloc(1000)

        class Closer:
            def __index__(self):
                a.close()
                return 1000

        try:
            v = a.view(0, (Closer(),), np.uint8)
            print('view', int(v.sum()))
        except ValueError as exc:
            print('refused:', exc)
        b = arena.Arena(1 << 20)

        class Resetter:
            def __index__(self):
                b.reset()
                return 4

        x = b.full((Resetter(),), 2.0)
        y = b.full(4, 3.0)
        print(int(x.sum()), int(y.sum()), int(np.shares_memory(x, y)))
    """)
    assert out.splitlines() == ["refused: the arena is closed", "8 12 0"]
