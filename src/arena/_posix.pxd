# The one place for C declarations: what Cython's own posix/*.pxd lacks or spells differently.
# Python.h (pyconfig.h) defines _GNU_SOURCE, so glibc exposes the Linux-only names below.

cdef extern from "<sys/mman.h>" nogil:
    void* MAP_FAILED
    int PROT_NONE, PROT_READ, PROT_WRITE, PROT_EXEC
    int MAP_PRIVATE, MAP_SHARED, MAP_ANONYMOUS, MAP_NORESERVE, MAP_FIXED
    int MAP_HUGETLB, MAP_HUGE_SHIFT
    int MADV_DONTNEED, MADV_HUGEPAGE, MADV_DONTDUMP, MADV_SEQUENTIAL, MADV_RANDOM
    int MADV_POPULATE_READ, MADV_POPULATE_WRITE, MADV_REMOVE
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

cdef extern from "<unistd.h>" nogil:
    int ftruncate(int fd, long length)
    int close(int fd)
    int dup(int fd)

cdef extern from "<sys/stat.h>" nogil:
    struct stat:
        long st_size
    int fstat(int fd, stat* buf)

cdef extern from "<fcntl.h>" nogil:
    int open(const char* path, int flags, ...)
    int O_RDONLY, O_RDWR, O_CREAT, O_CLOEXEC

cdef extern from "<errno.h>" nogil:
    int errno
    int ENOMEM, EFAULT, EAGAIN, EINVAL

cdef extern from "<string.h>" nogil:
    void* memset(void* s, int c, size_t n)
    void* memcpy(void* dst, const void* src, size_t n)
    void* memmove(void* dst, const void* src, size_t n)

cdef extern from "<stdlib.h>" nogil:
    void* malloc(size_t n)
    void* realloc(void* p, size_t n)
    void free(void* p)

cdef extern from "Python.h":
    ctypedef struct PyObject
    Py_ssize_t Py_REFCNT(PyObject* o)
    PyObject* PyList_GET_ITEM(object lst, Py_ssize_t i)
    Py_ssize_t PyList_GET_SIZE(object lst)
    bint PyLong_CheckExact(object o)
    bint PyTuple_CheckExact(object o)

cdef extern from * nogil:
    """
    static inline int arena_mul_overflow(size_t a, size_t b, size_t *out) {
        return __builtin_mul_overflow(a, b, out);
    }
    static inline int arena_add_overflow(size_t a, size_t b, size_t *out) {
        return __builtin_add_overflow(a, b, out);
    }
    """
    bint arena_mul_overflow(size_t a, size_t b, size_t* out)
    bint arena_add_overflow(size_t a, size_t b, size_t* out)

from numpy cimport npy_intp, ndarray

cdef extern from "numpy/arrayobject.h":
    # Left commented out in NumPy's own .pxd; takes raw pointers and steals ``descr``.
    object PyArray_NewFromDescr(void* subtype, void* descr, int nd, npy_intp* dims,
                                npy_intp* strides, void* data, int flags, void* obj)
    int PyArray_SetBaseObject(ndarray arr, object base) except -1  # steals ``base``

    # NEP 49: NumPy's data allocation handler, a PyCapsule named "mem_handler".
    ctypedef struct PyDataMemAllocator:
        void* ctx
        void* (*malloc)(void* ctx, size_t size) noexcept nogil
        void* (*calloc)(void* ctx, size_t nelem, size_t elsize) noexcept nogil
        void* (*realloc)(void* ctx, void* ptr, size_t new_size) noexcept nogil
        void (*free)(void* ctx, void* ptr, size_t size) noexcept nogil
    ctypedef struct PyDataMem_Handler:
        char name[127]
        unsigned char version
        PyDataMemAllocator allocator
    object PyDataMem_SetHandler(object handler)
