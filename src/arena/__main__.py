"""Command line: ``python -m arena info``."""
from __future__ import annotations

import argparse
import sys

from . import _info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m arena",
        description="arena: a memory arena for NumPy on Linux.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    info = commands.add_parser(
        "info", help="what this machine offers and what each flag will do here",
        description="Print page sizes, transparent huge pages, hugetlb pools, overcommit "
                    "and limits, and whether each arena flag and page size works here.")
    info.add_argument("--json", action="store_true", help="print the facts as JSON")
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "info":
        print(_info.render_json() if args.json else _info.render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
