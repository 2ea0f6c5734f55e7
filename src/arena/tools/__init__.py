"""The command line's tools: ``info``, ``demo`` and ``bench`` (``python -m arena``).

Nothing in the core imports this package; it uses the arena as a user would, plus
:mod:`arena._system` for the machine's facts and :mod:`arena._format` for sizes and times.
"""
