# The NEP 49 block heap's state: the blocks NumPy allocated through the arena's handler.
# Its functions live in _heap.pxi.

ctypedef struct Block:
    size_t start
    size_t size
    bint live

ctypedef struct Heap:
    Block* blocks           # sorted by start; dead blocks are reused
    Py_ssize_t n, cap       # blocks in use, room for
    Py_ssize_t live         # live blocks (each counts as a view)
