"""Sizes and times for people: the one formatter of the package (the Arena repr, the
command-line tools and the benchmarks).

Pure Python with no imports from the rest of arena, so that the core can use it without
depending on the tools.
"""
from __future__ import annotations

_BYTE_UNITS = (("GiB", 30), ("MiB", 20), ("KiB", 10))
_TIME_UNITS = (("s", 1.0), ("ms", 1e-3), ("us", 1e-6))


def format_bytes(n: int | None, exact: bool = False) -> str:
    """``n`` bytes in the largest binary unit it reaches, one decimal (the Arena repr).

    ``exact=True`` never rounds: the largest unit that divides ``n``, as a whole number,
    for page sizes and limits, where "1.5 MiB" could hide a byte that matters. ``None``
    is a limit that is not set.

    >>> format_bytes(1 << 30), format_bytes(4096), format_bytes(8000), format_bytes(100)
    ('1.0 GiB', '4.0 KiB', '7.8 KiB', '100 B')
    >>> format_bytes(2 << 20, exact=True), format_bytes(1536 << 10, exact=True)
    ('2 MiB', '1536 KiB')
    >>> format_bytes(0), format_bytes(1000, exact=True), format_bytes(None)
    ('0 B', '1000 B', 'unlimited')
    """
    if n is None:
        return "unlimited"
    for unit, shift in _BYTE_UNITS:
        if n >= 1 << shift:
            if not exact:
                return f"{n / (1 << shift):.1f} {unit}"
            if n % (1 << shift) == 0:
                return f"{n >> shift} {unit}"
    return f"{n} B"


def format_time(seconds: float) -> str:
    """``seconds`` in s, ms, us or ns, three significant digits.

    >>> format_time(1.5), format_time(0.00141), format_time(1.18e-5), format_time(2e-9)
    ('1.5 s', '1.41 ms', '11.8 us', '2 ns')
    """
    for unit, scale in _TIME_UNITS:
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"
