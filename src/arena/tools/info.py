"""``python -m arena info``: the machine's facts, and for each flag whether it works here.

Each flag is judged by trying it: a small arena is made with it and a page committed, in a
child process for hugetlb sizes, since a kernel without MADV_POPULATE_WRITE could SIGBUS.
"""
from __future__ import annotations

import json
import subprocess
import sys

from .. import ArenaOptions, Flags, _system
# exact=True throughout: a page size or a limit rounded to "1.5 MiB" would misstate it.
from .._format import format_bytes


def _try(options: ArenaOptions) -> str | None:
    """None if an arena with these options reserves and commits one page, else why not."""
    try:
        with options.reserve() as a:
            a.commit(a.page_size)
    except (OSError, ValueError, NotImplementedError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


_PROBE = """
import sys, arena
try:
    with arena.ArenaOptions({size}).with_page_size({size}).reserve() as a:
        a.commit({size})
except MemoryError as exc:
    print("MemoryError:", exc)
"""


def _try_hugetlb(size: int) -> str | None:
    out = subprocess.run([sys.executable, "-c", _PROBE.format(size=size)],
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        return f"probe died ({out.returncode}): {out.stderr.strip()[-200:]}"
    return out.stdout.strip() or None


# One shared arena, two processes: the child's allocation must land after the parent's,
# and an array sent through multiprocessing's pickler must arrive over the same memory.
_PROBE_SHARED = """
import os, sys, numpy as np, arena
from multiprocessing.reduction import ForkingPickler
opts = arena.ArenaOptions(1 << 30).with_flags(arena.Flags.SHARED){extra}
a = opts.reserve()
x = a.full(1000, 1.0)
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    y = a.full(1000, 2.0)
    os.write(w, str(a.offset_of(y)).encode())
    os._exit(0)
child = int(os.read(r, 64))
os.waitpid(pid, 0)
z = ForkingPickler.loads(ForkingPickler.dumps(x))
if child < a.offset_of(x) + x.nbytes or a.offset_of(z) != a.offset_of(x):
    print("the processes' allocations overlap")
"""


def _try_shared(extra: str = "") -> str | None:
    out = subprocess.run([sys.executable, "-c", _PROBE_SHARED.format(extra=extra)],
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        return f"probe failed ({out.returncode}): {out.stderr.strip().splitlines()[-1:]}"
    return out.stdout.strip() or None


def _shmem_thp_mode() -> str | None:
    try:
        with open("/sys/kernel/mm/transparent_hugepage/shmem_enabled") as f:
            text = f.read()
    except OSError:
        return None
    return text[text.index("[") + 1:text.index("]")] if "[" in text else None


def shared_report(info: dict) -> list[tuple[str, bool, str]]:
    """Rows for arenas shared by several processes (Flags.SHARED without a file)."""
    import multiprocessing
    methods = ", ".join(multiprocessing.get_all_start_methods())
    why = _try_shared()
    rows = [("SHARED across processes", why is None,
             why or f"one arena for many processes; start methods here: {methods}")]
    shmem = _shmem_thp_mode()
    rows.append(("SHARED + TRANSPARENT_HUGE_PAGES", shmem in ("always", "within_size",
                                                             "advise", "force"),
                 f"shmem THP mode is {shmem!r}" + (": shared arenas get base pages (the hint "
                                                   "is accepted)" if shmem in ("never", "deny",
                                                                                None) else "")))
    for size, pool in info["hugetlb"].items():
        name = f"SHARED + with_page_size({format_bytes(size, exact=True)})"
        if pool["free"] == 0:
            rows.append((name, False, "the pool is empty (see above)"))
            continue
        why = _try_shared(f".with_page_size({size})")
        rows.append((name, why is None, why or "memfd hugetlb; an empty pool is a "
                     "MemoryError in the process that allocates"))
    return rows


def flag_report() -> list[tuple[str, bool, str]]:
    """``[(name, works, note)]`` for each flag and hugetlb page size."""
    info = _system.system_info()
    rows = []
    notes = {
        Flags.SHARED: "MAP_SHARED; anonymous shared memory (memfd) without a file",
        Flags.POPULATE: "prefault at commit with MADV_POPULATE_WRITE",
        Flags.NO_RESERVE: "MAP_NORESERVE: no commit charge",
        Flags.TRANSPARENT_HUGE_PAGES: f"MADV_HUGEPAGE; THP mode is {info['thp_mode']}",
        Flags.LOCKED: "mlock as committed; RLIMIT_MEMLOCK "
                      f"{format_bytes(info['memlock_limit'], exact=True)}",
        Flags.NO_CORE_DUMP: "MADV_DONTDUMP",
        Flags.SEQUENTIAL: "MADV_SEQUENTIAL",
        Flags.RANDOM_ACCESS: "MADV_RANDOM",
        Flags.STACK: "accepted; no effect on Linux",
    }
    for flag, note in notes.items():
        why = _try(ArenaOptions(1 << 22).with_flags(flag))
        if flag is Flags.TRANSPARENT_HUGE_PAGES and why is None and info["thp_mode"] == "never":
            why = "THP mode is 'never': the hint is accepted but has no effect"
        rows.append((str(flag.name), why is None, why or note))
    default = info["default_huge_page_size"]
    for size, pool in info["hugetlb"].items():
        name = f"with_page_size({format_bytes(size, exact=True)})"
        if size == default:
            name = f"HUGE_PAGES, {name}"
        if pool["free"] == 0:
            rows.append((name, False, f"the {format_bytes(size, exact=True)} hugetlb pool is "
                         "empty: fill it with `echo 8 > /sys/kernel/mm/hugepages/"
                         f"hugepages-{size // 1024}kB/nr_hugepages` (as root)"))
            continue
        why = _try_hugetlb(size)
        rows.append((name, why is None,
                     why or f"{pool['free']} of {pool['total']} pages free; committing past "
                     "the pool raises MemoryError"))
    return rows + shared_report(info)


def render() -> str:
    info = _system.system_info()
    lines = ["Machine", "-------"]
    facts = [
        ("kernel", info["kernel"]),
        ("base page size", format_bytes(info["page_size"], exact=True)),
        ("page sizes", ", ".join(format_bytes(s, exact=True) for s in info["page_sizes"])),
        ("default huge page", format_bytes(info["default_huge_page_size"], exact=True)
         if info["default_huge_page_size"] else "none"),
        ("transparent huge pages", info["thp_mode"] or "not available"),
        ("shmem huge pages", _shmem_thp_mode() or "not available"),
        ("overcommit_memory", {0: "0 (heuristic)", 1: "1 (always)", 2: "2 (strict)"}.get(
            info["overcommit_memory"], str(info["overcommit_memory"]))),
        ("max_map_count", str(info["max_map_count"])),
        ("RLIMIT_MEMLOCK", format_bytes(info["memlock_limit"], exact=True)),
        ("RLIMIT_DATA", format_bytes(info["data_limit"], exact=True)),
        ("RLIMIT_AS", format_bytes(info["address_space_limit"], exact=True)),
    ]
    for size, pool in info["hugetlb"].items():
        facts.append((f"hugetlb {format_bytes(size, exact=True)} pool",
                      f"{pool['free']} free of {pool['total']}"))
    width = max(len(k) for k, _ in facts)
    lines += [f"{k:<{width}}  {v}" for k, v in facts]
    lines += ["", "What works here", "---------------"]
    rows = flag_report()
    width = max(len(r[0]) for r in rows)
    lines += [f"{name:<{width}}  {'yes' if ok else 'NO '}  {note}" for name, ok, note in rows]
    return "\n".join(lines)


def render_json() -> str:
    info = _system.system_info()
    info["hugetlb"] = {str(k): v for k, v in info["hugetlb"].items()}
    info["flags"] = {}
    for name, ok, note in flag_report():
        for part in name.split(", "):
            info["flags"][part] = {"works": ok, "note": note}
    return json.dumps(info, indent=2)
