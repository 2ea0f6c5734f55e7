"""Command line: ``python -m arena info | demo | bench`` (``arena/__main__.py`` calls
:func:`main`)."""
from __future__ import annotations

import argparse

# Aliased: main() names its subparsers info, demo and bench.
from . import bench as _bench, demo as _demo, info as _info


class _Parser(argparse.ArgumentParser):
    """Bad arguments: one line on stderr and exit status 2, no usage dump, no traceback."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), run the command, return the exit status."""
    parser = _Parser(
        prog="python -m arena",
        description="arena: a memory arena for NumPy on Linux.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    info = commands.add_parser(
        "info", help="what this machine offers and what each flag will do here",
        description="Print page sizes, transparent huge pages, hugetlb pools, overcommit "
                    "and limits, and whether each arena flag and page size works here.")
    info.add_argument("--json", action="store_true", help="print the facts as JSON")
    demo = commands.add_parser(
        "demo", help="a simulation with arena-backed temporaries against plain NumPy",
        description="Run a Gray-Scott reaction-diffusion simulation with plain NumPy "
                    "temporaries and with arena-backed ones, check that the results are "
                    "identical, and print a table of times, memory and page faults.")
    _demo.add_arguments(demo)
    bench = commands.add_parser(
        "bench", help="the headline comparisons against NumPy, with targets",
        description="Time arena against its peer side by side in one process and print "
                    "times, ratios (arena/peer) and whether each target is met.")
    _bench.add_arguments(bench)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "info":
        print(_info.render_json() if args.json else _info.render())
    elif args.command == "demo":
        return _demo.run(args)
    elif args.command == "bench":
        return _bench.run(args)
    return 0

