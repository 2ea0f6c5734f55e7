"""Helpers shared by the benchmark modules (no benchmarks here).

asv imports every module in the suite, so nothing in this file may be named ``time_*``,
``peakmem_*``, ``track_*`` or ``mem_*``.
"""
import ctypes
import os

import numpy as np

import arena
from arena import ArenaOptions, Flags, PageSize
from arena._format import format_bytes
from arena._system import mapping_stats

MiB = 1 << 20
GiB = 1 << 30

_libc = ctypes.CDLL(None, use_errno=True)

#: Page backings the large-buffer benchmarks compare.
PAGE_KINDS = ["4k", "thp", "hugetlb"]

# Reusable arenas keyed by size. The asv runner in use may re-run setup before every timed
# call; building a fresh arena each time would put its first commit (mprotect, page faults)
# into calls that are meant to time the bump pointer alone.
_warm = {}


def warm_arena(nbytes):
    """An arena of at least ``nbytes`` whose first ``nbytes`` are committed and touched.

    The arena is shared between calls with the same ``nbytes`` and comes back reset, so the
    caller must have dropped every array it allocated from it before asking again.

    Parameters
    ----------
    nbytes : int
        Bytes the caller will use between resets.

    Returns
    -------
    arena.Arena
    """
    a = _warm.get(nbytes)
    if a is None:
        a = arena.Arena(max(2 * nbytes, 64 * MiB))
        touched = a.zeros(nbytes, np.uint8)
        touched[:] = 1
        del touched
        _warm[nbytes] = a
    a.reset()
    return a


def hugetlb_free_bytes(page=PageSize.SIZE_2M):
    """Bytes free in the hugetlb pool of ``page``-sized pages (0 when the kernel has none)."""
    pool = arena.system_info()["hugetlb"].get(int(page))
    return 0 if pool is None else pool["free"] * int(page)


def arena_options(nbytes, kind, *, populate=False):
    """Options for an ``nbytes`` arena backed by ``kind`` pages ('4k', 'thp' or 'hugetlb').

    Raises
    ------
    NotImplementedError
        When this machine cannot provide ``kind`` (asv records the benchmark as skipped):
        THP mode 'never', or a hugetlb pool with fewer free 2 MiB pages than ``nbytes`` needs.
    """
    opts = ArenaOptions(nbytes)
    if populate:
        opts = opts.with_flags(Flags.POPULATE)
    if kind == "4k":
        return opts
    if kind == "thp":
        if arena.system_info()["thp_mode"] in (None, "never"):
            raise NotImplementedError("transparent huge pages are disabled (THP mode 'never')")
        return opts.with_flags(Flags.TRANSPARENT_HUGE_PAGES)
    if kind == "hugetlb":
        if PageSize.SIZE_2M not in arena.page_sizes():
            raise NotImplementedError("this kernel offers no 2 MiB hugetlb pages")
        free = hugetlb_free_bytes(PageSize.SIZE_2M)
        if free < nbytes:
            raise NotImplementedError(
                f"the 2 MiB hugetlb pool has {format_bytes(free, exact=True)} free, "
                f"{format_bytes(nbytes, exact=True)} needed "
                f"(as root: echo {nbytes // (2 * MiB)} > "
                "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages)")
        return opts.with_page_size(PageSize.SIZE_2M)
    raise ValueError(f"unknown page kind {kind!r}")


def touch(x, how):
    """Write to every page of the uint8 array ``x``.

    ``how`` is 'stride' (one byte per 4 KiB page: the page-fault cost alone) or 'fill'
    (every byte: faults plus memory bandwidth, what ``np.ones`` would pay).
    """
    if how == "stride":
        x[::4096] = 1
    elif how == "fill":
        x[:] = 1
    else:
        raise ValueError(f"unknown touch {how!r}")


def resident_bytes(address, length):
    """Bytes of ``[address, address + length)`` resident in memory, counted with mincore(2).

    Exact for this range alone: smaps' Rss would also count a neighbouring anonymous
    mapping that the kernel merged into the same VMA. ``address`` must be page-aligned.
    """
    page = arena.page_size()
    npages = -(-length // page)
    vec = (ctypes.c_ubyte * npages)()
    if _libc.mincore(ctypes.c_void_p(address), ctypes.c_size_t(length), vec) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mincore: {os.strerror(err)}")
    return int(np.count_nonzero(np.frombuffer(vec, np.uint8) & 1)) * page


def huge_page_bytes(address, length):
    """Bytes backed by huge pages (transparent or hugetlb) in mappings overlapping the range.

    Mappings that asked for huge pages carry their own VMA flags, so the kernel does not
    merge them with neighbours and the overlap is the arena's alone.
    """
    m = mapping_stats(address, length)
    return sum(m.get(k, 0) for k in ("AnonHugePages", "Private_Hugetlb", "Shared_Hugetlb"))
