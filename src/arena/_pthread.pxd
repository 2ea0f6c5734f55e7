# <pthread.h>: fork handlers. Python's os.register_at_fork sees only os.fork(); these run
# for every fork() of the process (multiprocessing, C extensions) and need no Python.

cdef extern from "<pthread.h>" nogil:
    int pthread_atfork(void (*prepare)() noexcept nogil, void (*parent)() noexcept nogil,
                       void (*child)() noexcept nogil)
