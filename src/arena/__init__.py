"""arena: a memory arena for NumPy on Linux.

Reserve a large address range once, commit pages as it fills, and hand out NumPy arrays at
bump-pointer speed; free them wholesale with ``reset()``, marks and scopes.

>>> import numpy as np, arena
>>> with arena.Arena(1 << 30) as a:
...     with a.scope():
...         t = a.zeros((256, 256), np.float32)
...         shape = t.shape
...         del t
...     print(shape, a.used)
(256, 256) 0
"""
from ._core import Arena, Growable, Mark
from ._errors import ArenaError, ArenaFullError, CommitError
from ._options import ArenaOptions, Flags, PageSize, Protection, UnsafeFlags
from ._system import allocation_granularity, page_size, page_sizes, system_info

__version__ = "0.1.0"

__all__ = [
    "Arena", "ArenaError", "ArenaFullError", "ArenaOptions", "CommitError", "Flags", "Growable",
    "Mark", "PageSize", "Protection", "UnsafeFlags", "allocation_granularity", "page_size",
    "page_sizes", "system_info",
]
