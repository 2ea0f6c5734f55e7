"""asv benchmark suite for arena: one module per area (allocation, step, pages, lifetime).

Run from the repository root with the package importable, e.g. after an in-place build::

    ASV_PYTHONPATH=$PWD asv run --python=same --quick
"""
