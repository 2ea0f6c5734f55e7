"""``python -m arena info | demo | bench``: the parser and the commands live in
:mod:`arena.tools`."""
import sys

from .tools.cli import main

if __name__ == "__main__":
    sys.exit(main())
