// A bump allocator for protobuf-c. unpack() through it allocates the message, the repeated
// arrays, strings and bytes from a few large chunks; freeing is a no-op and reset() makes the
// whole arena reusable for the next batch. Not thread-safe: one arena per thread.
#ifndef SPATE_ARENA_H
#define SPATE_ARENA_H
#include <stddef.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>

typedef struct SpateArena SpateArena;

/// A new arena whose first chunk holds `initial_bytes`; NULL when out of memory.
SpateArena *spate_arena_create(size_t initial_bytes);
void spate_arena_destroy(SpateArena *arena);
/// Forgets every allocation. Keeps one chunk large enough for the peak seen so far.
void spate_arena_reset(SpateArena *arena);
/// Like reset, but when the arena holds more than `max_bytes` (or its peak was above it) every
/// chunk is freed and one of the initial size kept: a huge message does not pin its memory.
void spate_arena_trim(SpateArena *arena, size_t max_bytes);
/// 16-byte aligned memory valid until the next reset; NULL when out of memory.
void *spate_arena_alloc(SpateArena *arena, size_t size);
/// Copies `len` bytes into the arena and appends a NUL (for C strings).
char *spate_arena_strndup(SpateArena *arena, const char *src, size_t len);
/// The protobuf-c allocator view of the arena.
ProtobufCAllocator *spate_arena_allocator(SpateArena *arena);
/// Bytes handed out since the last reset.
size_t spate_arena_used(const SpateArena *arena);
/// Bytes currently reserved from the system.
size_t spate_arena_capacity(const SpateArena *arena);
#endif
