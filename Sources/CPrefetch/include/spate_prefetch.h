#ifndef SPATE_PREFETCH_H
#define SPATE_PREFETCH_H

/// Asks the processor to bring the cache line holding `p` into its caches, for a read soon.
/// Unlike a load, a prefetch retires at once: a loop of them over a message's lookups keeps as
/// many misses in flight as the memory system allows, without waiting for any.
static inline __attribute__((always_inline)) void spate_prefetch(const void *p) { __builtin_prefetch(p, 0, 3); }

#endif
