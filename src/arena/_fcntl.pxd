# <fcntl.h> names Cython's posix/fcntl.pxd lacks: open file description (OFD) locks, which
# belong to one open of a file (not to the process), so two arenas of one process exclude
# each other just as two processes do. Python.h defines _GNU_SOURCE, so glibc exposes them.

cdef extern from "<fcntl.h>" nogil:
    int F_OFD_SETLK
