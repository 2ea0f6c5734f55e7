"""The bench's report: the table, its number formats and the environment line."""
from __future__ import annotations

import os
import platform

import numpy as np

from .. import _system
from .._format import format_bytes, format_time


def fmt_count(n: int) -> str:
    return f"{n:.0e}".replace("e+0", "e") if n >= 10_000 else str(n)


def fmt_ratio(r: float | None) -> str:
    if r is None:
        return "-"
    return f"{r:.3f}" if r >= 0.01 else f"{r:.1e}"


def render(results: list, header: str) -> str:
    """The results as an aligned text table, followed by each row's note."""
    rows = [("case", "per", "arena", "time", "peer", "time", "ratio", "target", "met")]
    for r in results:
        if r.target is None:
            target = "-"
        elif r.target_unit == "seconds":
            target = f"<= {format_time(r.target)}"
        elif r.target_unit == "bytes":
            target = f"<= {format_bytes(int(r.target))}"
        else:
            target = f"<= {r.target:g}"
        if r.skipped:
            times, met = ("-", "-", "-"), "skipped"
        else:
            fmt = {"s": format_time, "count": lambda n: f"{n:.0f}"}.get(
                r.unit, lambda b: format_bytes(int(b)))
            times = (fmt(r.arena_seconds), fmt(r.peer_seconds), fmt_ratio(r.ratio))
            met = "-" if r.met is None else ("yes" if r.met else "no")
        rows.append((r.case, r.per, r.arena_label, times[0], r.peer_label, times[1], times[2],
                     target, met))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    right = {3, 5, 6}
    lines = [header, ""]
    for k, row in enumerate(rows):
        cells = [c.rjust(w) if i in right else c.ljust(w)
                 for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.append("")
    lines.append("time: best of the repeats, per the unit in 'per'; ratio: arena time / "
                 "peer time; met: ratio <= target (arena time <= target where the target "
                 "is a time)")
    for r in results:
        if r.note:
            lines.append(f"{r.case}: {r.note}")
    return "\n".join(lines)


def environment(plan_name: str) -> dict:
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "thp_mode": _system.thp_mode(),
        "plan": plan_name,
    }
