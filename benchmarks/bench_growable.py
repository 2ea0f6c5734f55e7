"""Growable: an array built from chunks of unknown count, against what a user would write
instead, and ``append`` of one float against ``list.append``.

``Build``: 256 MiB of float64 from 64 KiB chunks, each a fresh array, by ``build``: a
Growable (``g.extend(chunk)``), a list of the chunks and ``np.concatenate`` (twice the data
at the end), a doubling buffer with ``np.resize``. ``peakmem_build`` is where the Growable
shows most: peak memory is the data itself. ``BuildByAppend``: ``np.append`` per chunk copies
everything each call, so it builds 16 MiB (256 MiB would copy 512 GiB), against a Growable of
the same size. The builds are :func:`arena.tools.bench_growable.build`, the ones ``python -m
arena bench`` runs (each in a fresh process there, for its peak RSS).
"""
import numpy as np

from arena import Growable
from arena.tools.bench_growable import build

from .common import MiB

NBYTES = 256 * MiB
CHUNK = 64 * 1024
APPEND_NBYTES = 16 * MiB
CALLS = 10_000  # appends per timed call


class Build:
    """256 MiB from 64 KiB chunks: time and peak memory, per way of building."""

    params = [["growable", "concatenate", "resize"]]
    param_names = ["build"]
    timeout = 300

    def time_build(self, kind):
        build(kind, NBYTES, CHUNK)

    def peakmem_build(self, kind):
        build(kind, NBYTES, CHUNK)


class BuildByAppend:
    """16 MiB from 64 KiB chunks: np.append per chunk against a Growable."""

    params = [["growable", "append"]]
    param_names = ["build"]
    timeout = 300

    def time_build(self, kind):
        build(kind, APPEND_NBYTES, CHUNK)


class AppendOne:
    """``append(1.0)``, ``CALLS`` per timed call: a Growable against a list."""

    def setup(self):
        self.g = Growable(np.float64)
        self.list = []

    def teardown(self):
        self.g.close()

    def time_growable_append(self):
        append = self.g.append
        for _ in range(CALLS):
            append(1.0)

    def time_list_append(self):
        append = self.list.append
        for _ in range(CALLS):
            append(1.0)
