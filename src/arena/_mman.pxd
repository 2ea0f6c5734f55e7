# <sys/mman.h> and memfd, with the Linux names Cython's posix/mman.pxd lacks
# (MADV_POPULATE_*, MAP_HUGE_SHIFT, MFD_*). Python.h defines _GNU_SOURCE, so glibc exposes them.

cdef extern from "<sys/mman.h>" nogil:
    void* MAP_FAILED
    int PROT_NONE, PROT_READ, PROT_WRITE, PROT_EXEC
    int MAP_PRIVATE, MAP_SHARED, MAP_ANONYMOUS, MAP_NORESERVE, MAP_FIXED
    int MAP_HUGETLB, MAP_HUGE_SHIFT
    int MADV_DONTNEED, MADV_HUGEPAGE, MADV_DONTDUMP, MADV_SEQUENTIAL, MADV_RANDOM
    int MADV_POPULATE_READ, MADV_POPULATE_WRITE, MADV_REMOVE
    int MADV_NOHUGEPAGE
    int MS_SYNC, MS_ASYNC
    int MFD_CLOEXEC, MFD_HUGETLB
    void* mmap(void* addr, size_t length, int prot, int flags, int fd, long offset)
    int munmap(void* addr, size_t length)
    int mprotect(void* addr, size_t length, int prot)
    int madvise(void* addr, size_t length, int advice)
    int mlock(const void* addr, size_t length)
    int munlock(const void* addr, size_t length)
    int msync(void* addr, size_t length, int flags)
    int memfd_create(const char* name, unsigned int flags)
