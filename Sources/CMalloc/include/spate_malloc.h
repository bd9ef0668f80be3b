#ifndef SPATE_MALLOC_H
#define SPATE_MALLOC_H

#if defined(__GLIBC__) || __has_include(<malloc.h>)
#include <malloc.h>
#endif

/// Sets glibc's mmap threshold (M_MMAP_THRESHOLD, which also stops glibc from raising it on
/// its own): blocks of `bytes` and more are mapped on their own and unmapped when freed.
/// Returns 1 on success, 0 where there is no such setting. (Swift's Glibc module does not
/// export <malloc.h>.)
static inline int spate_set_mmap_threshold(int bytes) {
#ifdef M_MMAP_THRESHOLD
    return mallopt(M_MMAP_THRESHOLD, bytes);
#else
    (void)bytes;
    return 0;
#endif
}

#endif
