"""Large buffers: commit and first-touch 512 MiB on 4 KiB pages, THP and hugetlb.

The timed part is everything between "I want 512 MiB" and "every page is written": the
arena's commit (an mprotect, plus the prefault for hugetlb) and the touch; NumPy's and
mmap's allocation and touch. The buffer stays alive until teardown, so unmapping never
lands in the figure. Touch 'stride' writes one byte per 4 KiB page (page faults alone);
'fill' writes every byte (faults plus memory bandwidth).

NumPy itself madvises allocations of 4 MiB and more with MADV_HUGEPAGE
(``np._core.multiarray._get_madvise_hugepage()``), so on a THP 'madvise' kernel its peer
figures are THP figures. hugetlb cases are skipped unless the 2 MiB pool has 512 MiB free.
"""
import mmap

import numpy as np

from arena import Arena

from .common import (GiB, MiB, PAGE_KINDS, arena_options, huge_page_bytes, resident_bytes,
                     touch)

NBYTES = 512 * MiB
TOUCH = ["stride", "fill"]


def _close(a):
    # The runner calls teardown even when setup skipped before making the arena.
    if a is not None:
        a.close()


class _OneShot:
    # A second call in the same sample would find the pages already faulted: one call per
    # setup, no warmup, few repeats (each is a fresh 512 MiB).
    number = 1
    warmup_time = 0
    repeat = (1, 3, 5.0)
    timeout = 300


class FirstTouch(_OneShot):
    """Arena: commit 512 MiB and write every page, per page backing and touch."""

    params = [PAGE_KINDS, TOUCH]
    param_names = ["pages", "touch"]

    def setup(self, pages, how):
        self.x = self.arena = None
        self.arena = arena_options(NBYTES, pages).reserve()

    def teardown(self, pages, how):
        self.x = None
        _close(self.arena)

    def time_arena_commit_touch(self, pages, how):
        a = self.arena
        a.commit(NBYTES)
        x = a.empty(NBYTES, np.uint8)
        touch(x, how)
        self.x = x


class FirstTouchPeers(_OneShot):
    """NumPy and mmap: allocate 512 MiB and write every page."""

    params = [TOUCH]
    param_names = ["touch"]

    def setup(self, how):
        self.x = None
        self.map = None

    def teardown(self, how):
        self.x = None
        if self.map is not None:
            self.map.close()

    def time_numpy_empty_touch(self, how):
        x = np.empty(NBYTES, np.uint8)
        touch(x, how)
        self.x = x

    def time_numpy_zeros_touch(self, how):
        x = np.zeros(NBYTES, np.uint8)
        touch(x, how)
        self.x = x

    def time_mmap_frombuffer_touch(self, how):
        self.map = mmap.mmap(-1, NBYTES)
        x = np.frombuffer(self.map, np.uint8)
        touch(x, how)
        self.x = x


class Populate(_OneShot):
    """Arena with ``Flags.POPULATE``: the kernel prefaults at commit (MADV_POPULATE_WRITE)."""

    params = [PAGE_KINDS]
    param_names = ["pages"]

    def setup(self, pages):
        self.arena = None
        self.arena = arena_options(NBYTES, pages, populate=True).reserve()

    def teardown(self, pages):
        _close(self.arena)

    def time_arena_commit_populate(self, pages):
        self.arena.commit(NBYTES)


class Residency:
    """What 512 MiB committed and touched (one byte a page) costs in memory, per backing."""

    params = [PAGE_KINDS]
    param_names = ["pages"]
    unit = "bytes"
    timeout = 300

    def setup(self, pages):
        self.arena = None
        self.arena = a = arena_options(NBYTES, pages).reserve()
        a.commit(NBYTES)
        touch(a.empty(NBYTES, np.uint8), "stride")

    def teardown(self, pages):
        _close(self.arena)

    def _resident(self):
        return resident_bytes(self.arena.address, self.arena.reserved)

    def track_rss_after_touch(self, pages):
        return self._resident()

    def track_huge_page_bytes_after_touch(self, pages):
        # 0 for THP means the kernel fell back to 4 KiB pages (fragmentation, defrag policy).
        return huge_page_bytes(self.arena.address, self.arena.reserved)

    def track_committed_after_touch(self, pages):
        return self.arena.committed

    def track_rss_after_reset_decommit(self, pages):
        self.arena.reset(decommit=True)
        return self._resident()

    def track_committed_for_one_byte(self, pages):
        # The commit granularity: one byte commits a whole commit step (2 MiB by default).
        a = self.arena
        a.reset(decommit=True)
        a.empty(1, np.uint8)
        return a.committed


class Footprint:
    """Peak RSS where memory is the point (the process baseline is in every figure)."""

    timeout = 300

    def peakmem_numpy_zeros_512mib_filled(self):
        x = np.zeros(NBYTES, np.uint8)
        x[:] = 1

    def peakmem_arena_512mib_filled(self):
        with Arena(NBYTES) as a:
            x = a.empty(NBYTES, np.uint8)
            x[:] = 1
            del x

    def peakmem_numpy_8mib_filled(self):
        x = np.zeros(8 * MiB, np.uint8)
        x[:] = 1

    def peakmem_arena_reserve_64gib_fill_8mib(self):
        # Reserving address space costs no memory: this should match the 8 MiB NumPy figure.
        with Arena(64 * GiB) as a:
            x = a.empty(8 * MiB, np.uint8)
            x[:] = 1
            del x
