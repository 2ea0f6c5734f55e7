"""A sensor log of unknown length, parsed line by line into a .npy file that grows in place.

A Growable on a file (Flags.SHARED) holds one row per line: (time, temperature, pressure).
Nothing is preallocated and no list of rows is kept: each burst of lines goes straight
into the file's mapping, the flush after each burst leaves a valid .npy (np.load reads it,
and a crash later would lose nothing before that flush), and a view taken at the start is
still valid, at the same address, when the log is a hundred times longer. Reopening the
file appends after its rows.

    python examples/sensor_log.py [--bursts 50] [--path sensor.npy]
"""
import argparse
import os
import tempfile

import numpy as np

from arena import ArenaOptions, Flags


def sensor_lines(burst, rng):
    """One burst of text lines from the sensor: a few hundred to a few thousand of them."""
    for i in range(int(rng.integers(200, 4000))):
        t = burst * 60.0 + i * 0.01
        yield f"{t:.2f},{21.5 + rng.normal(0, 0.3):.3f},{1013 + rng.normal(0, 2):.2f}\n"


def parse(lines):
    for line in lines:
        t, temperature, pressure = line.split(",")
        yield float(t), float(temperature), float(pressure)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bursts", type=int, default=50)
    parser.add_argument("--path", help="the .npy file (default: one in a new temporary "
                                       "directory)")
    args = parser.parse_args()
    path = args.path or os.path.join(tempfile.mkdtemp(), "sensor.npy")
    options = ArenaOptions(1 << 30).with_file(path).with_flags(Flags.SHARED)
    rng = np.random.default_rng(7)

    with options.growable(np.float64, item_shape=3) as log:
        log.extend(parse(sensor_lines(0, rng)))
        first = log[:100]                      # a view of the first 100 rows
        address = first.ctypes.data
        for burst in range(1, args.bursts):
            log.extend(parse(sensor_lines(burst, rng)))
            log.flush()                        # a valid .npy of every row so far
        rows = len(log)
        print(f"logged {rows} rows of (time, temperature, pressure) in {args.bursts} bursts")
        print(f"the first view is still valid and in place: "
              f"{first.ctypes.data == address and first[0, 0] == 0.0}")
        del first                              # close() refuses while views are alive

    saved = np.load(path, mmap_mode="r")
    print(f"np.load sees {len(saved)} rows, mean temperature {saved[:, 1].mean():.1f}, "
          f"file {os.path.getsize(path)} bytes = header + {saved.nbytes}")
    del saved

    with options.growable(np.float64, item_shape=3) as log:   # reopened: appends
        log.append((args.bursts * 60.0, 21.5, 1013.0))
        print(f"reopened with {rows} rows, appended one: {len(log)}")


if __name__ == "__main__":
    main()
