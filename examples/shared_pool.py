"""Results of a process pool in a shared arena: workers allocate, the parent gets views.

Two workers fill arrays allocated from one ``Flags.SHARED`` arena and return them. What
crosses the pipe is an offset, not the bytes: the parent receives arrays over the same
memory (``a.offset_of`` works on them), reduces them, drops them and resets the arena for
the next round. The same code returning ``np.empty`` arrays would pickle every byte.

    python examples/shared_pool.py [--results N] [--mib M] [--rounds R]
"""
import argparse
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from arena import ArenaOptions, Flags

shared = None  # the arena, in each worker


def init(a):
    global shared
    shared = a


def simulate(seed, n):
    """One result, allocated in the shared arena and filled in place."""
    out = shared.empty(n)
    np.random.default_rng(seed).standard_normal(out=out)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=int, default=24)
    ap.add_argument("--mib", type=int, default=32, help="MiB per result")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    n = args.mib * (1 << 20) // 8
    a = ArenaOptions(1 << 40).with_flags(Flags.SHARED).reserve()  # 1 TiB of address space
    with ProcessPoolExecutor(2, initializer=init, initargs=(a,)) as pool:
        for round_ in range(args.rounds):
            start = time.perf_counter()
            results = list(pool.map(simulate, range(args.results), [n] * args.results))
            in_arena = all(a.offset_of(r) >= 0 for r in results)
            means = [float(r.mean()) for r in results]
            seconds = time.perf_counter() - start
            print(f"round {round_}: {len(results)} results of {args.mib} MiB, views of the "
                  f"arena: {in_arena}, largest |mean| {max(map(abs, means)):.4f}")
            print(f"  {seconds * 1e3:.0f} ms; arena used {a.used >> 20} MiB by "
                  f"{a.num_allocations} allocations from {a.stats()['processes']} process(es)")
            del results
            a.reset()  # every view is gone: the next round reuses the same pages
    print(f"after the pool: used {a.used}, committed {a.committed >> 20} MiB")
    a.close()


if __name__ == "__main__":
    main()
