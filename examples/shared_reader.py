"""A shared, file-backed arena written by one process and read by another.

The writer allocates arrays in an arena backed by a file (Flags.SHARED), publishes their
offsets, and a second process maps the same file read-only with `map()` and reads them back
with `view(offset, shape, dtype)`.

    python examples/shared_reader.py
"""
import subprocess
import sys
import tempfile

import numpy as np

from arena import ArenaOptions, Flags

READER = """
import sys, numpy as np
from arena import ArenaOptions, Flags
path, offset, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
r = ArenaOptions(1 << 30).with_file(path).with_flags(Flags.SHARED).map()
v = r.view(offset, n, np.float64)          # a read-only array over the writer's bytes
print(f"reader sees {n} values, sum {v.sum():.1f}, writeable={v.flags.writeable}")
"""


def main():
    with tempfile.NamedTemporaryFile(suffix=".arena") as f:
        w = ArenaOptions(1 << 30).with_file(f.name).with_flags(Flags.SHARED).reserve()
        data = w.array(np.arange(1000, dtype=np.float64))
        w.flush()
        print(f"writer put {data.size} values at offset {w.offset_of(data)}, sum {data.sum():.1f}")
        out = subprocess.run([sys.executable, "-c", READER, f.name, str(w.offset_of(data)),
                              str(data.size)], capture_output=True, text=True, check=True)
        print(out.stdout.strip())
        del data
        w.close()


if __name__ == "__main__":
    main()
