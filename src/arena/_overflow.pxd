# Checked size arithmetic: every n * itemsize and offset + size goes through these, so that a
# size never wraps.

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
