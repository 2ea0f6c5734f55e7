"""What this machine offers: page sizes, transparent huge pages, hugetlb pools and limits.

Everything here reads ``/sys``, ``/proc`` and ``sysconf`` on demand; nothing is cached
because the hugetlb pools and limits change while a process runs.
"""
from __future__ import annotations

import mmap
import os
import resource

_HUGEPAGES_DIR = "/sys/kernel/mm/hugepages"
_THP_ENABLED = "/sys/kernel/mm/transparent_hugepage/enabled"


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _read_int(path: str) -> int | None:
    text = _read(path)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def page_size() -> int:
    """Base page size in bytes.

    Examples
    --------
    >>> import arena
    >>> arena.page_size() in (4096, 16384, 65536)
    True
    """
    return mmap.PAGESIZE


def allocation_granularity() -> int:
    """Alignment a mapping's start must have (the page size on Linux).

    Examples
    --------
    >>> import arena
    >>> arena.allocation_granularity() == arena.page_size()
    True
    """
    return mmap.ALLOCATIONGRANULARITY


def _hugetlb_sizes() -> list[int]:
    try:
        names = os.listdir(_HUGEPAGES_DIR)
    except OSError:
        return []
    sizes = []
    for name in names:
        if name.startswith("hugepages-") and name.endswith("kB"):
            sizes.append(int(name[len("hugepages-"):-2]) * 1024)
    return sorted(sizes)


def page_sizes() -> tuple[int, ...]:
    """Every page size the kernel offers, ascending, the base page first.

    Examples
    --------
    >>> import arena
    >>> sizes = arena.page_sizes()
    >>> sizes[0] == arena.page_size() and list(sizes) == sorted(sizes)
    True
    """
    return (page_size(), *[s for s in _hugetlb_sizes() if s != page_size()])


def default_huge_page_size() -> int | None:
    """The kernel's default hugetlb page size (``Hugepagesize`` in /proc/meminfo), or None."""
    text = _read("/proc/meminfo") or ""
    for line in text.splitlines():
        if line.startswith("Hugepagesize:"):
            return int(line.split()[1]) * 1024
    return None


def thp_mode() -> str | None:
    """Transparent huge page mode: 'always', 'madvise', 'never', or None if absent."""
    text = _read(_THP_ENABLED)
    if text is None or "[" not in text:
        return None
    return text[text.index("[") + 1:text.index("]")]


def hugetlb_pools() -> dict[int, dict[str, int]]:
    """``{size: {'total': n, 'free': n}}`` for each hugetlb page size."""
    pools = {}
    for size in _hugetlb_sizes():
        base = f"{_HUGEPAGES_DIR}/hugepages-{size // 1024}kB"
        pools[size] = {
            "total": _read_int(f"{base}/nr_hugepages") or 0,
            "free": _read_int(f"{base}/free_hugepages") or 0,
        }
    return pools


def _limit(which: int) -> int | None:
    soft, _hard = resource.getrlimit(which)
    return None if soft == resource.RLIM_INFINITY else soft


def map_count() -> int:
    """The number of memory mappings of this process (what vm.max_map_count limits), read
    in raw chunks so that counting needs no memory mapping of its own.

    Examples
    --------
    >>> from arena._system import map_count
    >>> map_count() > 0
    True
    """
    fd = os.open("/proc/self/maps", os.O_RDONLY)
    try:
        n = 0
        while chunk := os.read(fd, 65536):
            n += chunk.count(b"\n")
        return n
    finally:
        os.close(fd)


def vm_status() -> dict:
    """The ``Vm*`` lines of ``/proc/self/status``, in bytes.

    Examples
    --------
    >>> from arena._system import vm_status
    >>> vm_status()["VmSize"] > 0
    True
    """
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Vm") and line.rstrip().endswith(" kB"):
                key, value = line.split(":", 1)
                out[key] = int(value.split()[0]) * 1024
    return out


def system_info() -> dict:
    """What this machine offers, as a dict.

    Keys: ``page_size``, ``page_sizes``, ``default_huge_page_size``, ``thp_mode``,
    ``hugetlb`` (``{size: {'total': n, 'free': n}}``), ``overcommit_memory``,
    ``max_map_count``, ``memlock_limit``, ``data_limit`` and ``address_space_limit``
    (bytes, None when unlimited), ``kernel``.

    Examples
    --------
    >>> import arena
    >>> info = arena.system_info()
    >>> info["page_size"] == arena.page_size()
    True
    >>> info["thp_mode"] in ("always", "madvise", "never", None)
    True
    """
    return {
        "page_size": page_size(),
        "page_sizes": page_sizes(),
        "default_huge_page_size": default_huge_page_size(),
        "thp_mode": thp_mode(),
        "hugetlb": hugetlb_pools(),
        "overcommit_memory": _read_int("/proc/sys/vm/overcommit_memory"),
        "max_map_count": _read_int("/proc/sys/vm/max_map_count"),
        "memlock_limit": _limit(resource.RLIMIT_MEMLOCK),
        "data_limit": _limit(resource.RLIMIT_DATA),
        "address_space_limit": _limit(resource.RLIMIT_AS),
        "kernel": os.uname().release,
    }


def mapping_stats(address: int, length: int, pid: int | str = "self") -> dict:
    """Sum the kB fields (as bytes) of every mapping overlapping ``[address, address +
    length)`` in ``/proc/<pid>/smaps``, with their ``VmFlags`` as a set and the number of
    ``mappings``: how a test or benchmark sees from outside what the kernel did.

    Examples
    --------
    >>> import arena
    >>> from arena._system import mapping_stats
    >>> a = arena.Arena(1 << 20)
    >>> a.commit(4096)
    >>> m = mapping_stats(a.address, a.reserved)
    >>> m["mappings"], m["Size"] >= a.reserved   # (a neighbour the kernel merged adds to Size)
    (2, True)
    """
    end = address + length
    totals: dict = {"VmFlags": set(), "mappings": 0}
    inside = False
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split(None, 1)[0]
            if not head.endswith(":"):
                lo, hi = (int(v, 16) for v in head.split("-"))
                inside = lo < end and hi > address
                totals["mappings"] += inside
            elif inside and head == "VmFlags:":
                totals["VmFlags"].update(line.split()[1:])
            elif inside and line.rstrip().endswith(" kB"):
                totals[head[:-1]] = totals.get(head[:-1], 0) + int(line.split()[1]) * 1024
    return totals
