# The OS layer's state (the counterpart of mmap-rs's os_impl): one reserved mapping and its
# commit frontier. Its functions live in _mapping.pxi; it knows nothing of NumPy or arenas.

ctypedef struct Mapping:
    char* base              # NULL once unmapped
    size_t reserved         # bytes of address space
    size_t committed        # [0, committed) has protection ``prot``; the rest is PROT_NONE
    size_t page             # the page size backing the mapping (a huge size for hugetlb)
    size_t step             # commit granularity
    int prot
    int fd                  # the file or memfd behind the mapping, or -1
    unsigned int flags      # arena.Flags bits: populate, lock, advice
    bint hugetlb
    bint shared             # MAP_SHARED
    bint file_backed        # a user's file (not our own memfd)
    bint locked             # lock() asked for: commits are mlocked too
    unsigned long forks     # fork() calls of the process when it was mapped
    int pid                 # the process that mapped it
    size_t file_offset      # where the mapping starts in the file
    size_t file_known       # bytes past file_offset the file is known to hold
    size_t file_initial     # ... and held when mapped (a trim never goes below it)
    size_t file_used        # ... that the arena handed out: where a trim stops
    # A user's file is only ever written through a MAP_SHARED mapping: a private arena maps
    # the pages the file has (copy-on-write) and anonymous memory above them, so it never
    # grows, shrinks or writes the file.
