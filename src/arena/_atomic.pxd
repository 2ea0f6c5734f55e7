# GCC __atomic builtins on 64-bit words, for state that several processes update in shared
# memory (_shared.pxi): lock-free, so a process killed at any instant leaves no lock held.
# The read side acquires and the write side releases; compare-and-swap is sequentially
# consistent, which is what orders a process's published view before its claim on the bump.
from libc.stdint cimport uint64_t

cdef extern from * nogil:
    """
    #include <stdint.h>
    #include <sched.h>
    static inline uint64_t arena_load(uint64_t *p) {
        return __atomic_load_n(p, __ATOMIC_ACQUIRE);
    }
    static inline void arena_store(uint64_t *p, uint64_t v) {
        __atomic_store_n(p, v, __ATOMIC_RELEASE);
    }
    static inline int arena_cas(uint64_t *p, uint64_t *expected, uint64_t desired) {
        return __atomic_compare_exchange_n(p, expected, desired, 0, __ATOMIC_SEQ_CST,
                                           __ATOMIC_ACQUIRE);
    }
    static inline uint64_t arena_fetch_add(uint64_t *p, uint64_t v) {
        return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
    }
    /* Raise *p to at least v (never lowers it). */
    static inline void arena_max(uint64_t *p, uint64_t v) {
        uint64_t cur = __atomic_load_n(p, __ATOMIC_ACQUIRE);
        while (cur < v && !__atomic_compare_exchange_n(p, &cur, v, 0, __ATOMIC_SEQ_CST,
                                                      __ATOMIC_ACQUIRE)) {}
    }
    static inline void arena_yield(void) { sched_yield(); }
    """
    uint64_t arena_load(uint64_t* p)
    void arena_store(uint64_t* p, uint64_t v)
    bint arena_cas(uint64_t* p, uint64_t* expected, uint64_t desired)
    uint64_t arena_fetch_add(uint64_t* p, uint64_t v)
    void arena_max(uint64_t* p, uint64_t v)
    void arena_yield()
