"""A very large array on huge pages: reserve far more than needed, commit as it grows.

Uses transparent huge pages (no setup needed on kernels in 'madvise' or 'always' mode), or
explicit 2 MiB hugetlb pages with --hugetlb when the pool has room
(`echo 512 > /proc/sys/vm/nr_hugepages` as root).

    python examples/huge_array.py [--hugetlb] [--gib 1]
"""
import argparse
import time

import numpy as np

from arena import ArenaOptions, Flags, PageSize


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hugetlb", action="store_true", help="explicit 2 MiB hugetlb pages")
    parser.add_argument("--gib", type=float, default=1.0, help="array size in GiB")
    args = parser.parse_args()
    nbytes = int(args.gib * (1 << 30))
    options = ArenaOptions(1 << 40)  # 1 TiB of address space costs nothing until committed
    if args.hugetlb:
        options = options.with_page_size(PageSize.SIZE_2M)
    else:
        options = options.with_flags(Flags.TRANSPARENT_HUGE_PAGES)
    with options.reserve() as a:
        start = time.perf_counter()
        try:
            x = a.zeros(nbytes // 8, np.float64)
            x[:] = 1.0  # first touch: faults in 2 MiB pages, not 4 KiB ones
        except MemoryError as exc:
            raise SystemExit(f"not enough huge pages: {exc}") from exc
        took = time.perf_counter() - start
        with open("/proc/self/smaps_rollup") as f:
            huge = [line for line in f if line.startswith(("AnonHugePages", "Private_Hugetlb"))]
        kind = f"{a.page_size >> 20} MiB hugetlb" if args.hugetlb else "transparent huge"
        print(f"{nbytes >> 20} MiB touched in {took * 1e3:.0f} ms on {kind} pages; "
              f"sum = {x.sum():.0f}")
        print("".join(huge).strip())
        del x


if __name__ == "__main__":
    main()
