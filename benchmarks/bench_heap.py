"""The NEP 49 heap behind ``numpy_allocator()``, against NumPy's own allocator.

``LiveArrays``: ``n`` live ``np.full(8, i)`` arrays, half freed in random order, made again,
for n = 1e3, 1e4, 1e5: with the default small threshold (NumPy's allocator serves arrays this
small) and with threshold 0, where the arena's heap serves them all; the time per array must
not grow with n (v1: 86x NumPy's time at 1e5). ``Temporaries``: 50,000 ``x + 1.0`` on 10
elements. ``Calloc``: ``np.zeros(10**7)`` then summed, filled or never touched, on a 4 KiB and
a transparent-huge-page arena. ``FromIter``: ``np.fromiter`` of 5e6 floats grows through
realloc; ``track_`` gives the arena's high water over the array's bytes.
"""
import contextlib
import random

import numpy as np

from arena import ArenaOptions, Flags


def _context(kind):
    if kind == "numpy":
        return contextlib.nullcontext, None
    opts = ArenaOptions(1 << 34)
    if kind == "arena heap for all":
        opts = opts.with_small_threshold(0)
    elif kind == "thp arena":
        opts = opts.with_flags(Flags.TRANSPARENT_HUGE_PAGES)
    a = opts.reserve()
    return a.numpy_allocator, a


class LiveArrays:
    params = ([1000, 10_000, 100_000], ["numpy", "arena", "arena heap for all"])
    param_names = ["n", "allocator"]
    timeout = 120

    def setup(self, n, kind):
        self.ctx, self.arena = _context(kind)
        order = list(range(n))
        random.Random(1).shuffle(order)
        self.half = order[: n // 2]

    def teardown(self, n, kind):
        if self.arena is not None:
            self.arena.close()

    def time_make_free_half_make_again(self, n, kind):
        with self.ctx():
            keep = [np.full(8, i) for i in range(n)]
            for i in self.half:
                keep[i] = None
            for i in self.half:
                keep[i] = np.full(8, i)
            del keep


class Temporaries:
    params = ["numpy", "arena", "arena heap for all"]
    param_names = ["allocator"]

    def setup(self, kind):
        self.ctx, self.arena = _context(kind)
        self.x = np.ones(10)

    def teardown(self, kind):
        if self.arena is not None:
            self.arena.close()

    def time_50000_small_temporaries(self, kind):
        x = self.x
        with self.ctx():
            for _ in range(50_000):
                y = x + 1.0
            del y


class Calloc:
    params = (["summed", "filled", "never touched"], ["numpy", "arena", "thp arena"])
    param_names = ["then", "allocator"]

    def setup(self, then, kind):
        self.ctx, self.arena = _context(kind)
        self.use = {"summed": np.sum, "filled": lambda z: z.fill(1.0),
                    "never touched": lambda z: None}[then]
        self.time_zeros(then, kind)  # the arena commits and touches its pages once

    def teardown(self, then, kind):
        if self.arena is not None:
            self.arena.close()

    def time_zeros(self, then, kind):
        with self.ctx():
            z = np.zeros(10**7)
            self.use(z)
            del z


class FromIter:
    params = ["numpy", "arena"]
    param_names = ["allocator"]
    timeout = 120

    def setup(self, kind):
        self.ctx, self.arena = _context(kind)

    def teardown(self, kind):
        if self.arena is not None:
            self.arena.close()

    def _run(self):
        with self.ctx():
            y = np.fromiter((float(i) for i in range(5_000_000)), float)
        return y

    def time_fromiter(self, kind):
        self._run()

    def track_high_water_over_bytes(self, kind):
        y = self._run()
        if self.arena is None:
            return 1.0
        ratio = self.arena.high_water / y.nbytes
        del y
        return ratio

    track_high_water_over_bytes.unit = "ratio"
