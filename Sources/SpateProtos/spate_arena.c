#include "spate_arena.h"
#include <stdlib.h>
#include <string.h>

typedef struct Chunk {
    struct Chunk *next;
    size_t size;
    size_t used;
    _Alignas(16) unsigned char data[];
} Chunk;

struct SpateArena {
    Chunk *head;            /* current chunk, newest first */
    size_t used_total;      /* bytes handed out since reset */
    size_t peak;            /* the largest used_total seen */
    size_t initial;         /* the first chunk's size, restored by trim */
    ProtobufCAllocator allocator;
};

static Chunk *chunk_new(size_t size) {
    Chunk *c = malloc(sizeof(Chunk) + size);
    if (c == NULL) return NULL;
    c->next = NULL;
    c->size = size;
    c->used = 0;
    return c;
}

static void *arena_pb_alloc(void *data, size_t size) { return spate_arena_alloc((SpateArena *)data, size); }
static void arena_pb_free(void *data, void *ptr) { (void)data; (void)ptr; }

SpateArena *spate_arena_create(size_t initial_bytes) {
    SpateArena *a = calloc(1, sizeof(SpateArena));
    if (a == NULL) return NULL;
    a->initial = initial_bytes < 4096 ? 4096 : initial_bytes;
    a->head = chunk_new(a->initial);
    if (a->head == NULL) { free(a); return NULL; }
    a->allocator.alloc = arena_pb_alloc;
    a->allocator.free = arena_pb_free;
    a->allocator.allocator_data = a;
    return a;
}

void spate_arena_destroy(SpateArena *a) {
    if (a == NULL) return;
    Chunk *c = a->head;
    while (c != NULL) { Chunk *n = c->next; free(c); c = n; }
    free(a);
}

void spate_arena_reset(SpateArena *a) {
    if (a->head->next != NULL) {
        /* Several chunks were needed: replace them by one that fits the peak. */
        Chunk *c = a->head;
        while (c != NULL) { Chunk *n = c->next; free(c); c = n; }
        size_t want = a->peak + a->peak / 4;
        a->head = chunk_new(want);
        if (a->head == NULL) a->head = chunk_new(4096);
    }
    if (a->head != NULL) a->head->used = 0;
    a->used_total = 0;
}

void spate_arena_trim(SpateArena *a, size_t max_bytes) {
    if (spate_arena_capacity(a) <= max_bytes && a->peak <= max_bytes) {
        spate_arena_reset(a);
        return;
    }
    /* A rare huge batch: give its memory back and start again from the first chunk's size. */
    Chunk *c = a->head;
    while (c != NULL) { Chunk *n = c->next; free(c); c = n; }
    a->head = chunk_new(a->initial);
    a->peak = 0;
    a->used_total = 0;
}

void *spate_arena_alloc(SpateArena *a, size_t size) {
    size_t need = (size + 15u) & ~(size_t)15u;
    if (a->head == NULL) return NULL;
    if (a->head->size - a->head->used < need) {
        size_t grow = a->head->size * 2;
        if (grow < need) grow = need;
        Chunk *c = chunk_new(grow);
        if (c == NULL) return NULL;
        c->next = a->head;
        a->head = c;
    }
    void *p = a->head->data + a->head->used;
    a->head->used += need;
    a->used_total += need;
    if (a->used_total > a->peak) a->peak = a->used_total;
    return p;
}

char *spate_arena_strndup(SpateArena *a, const char *src, size_t len) {
    char *p = spate_arena_alloc(a, len + 1);
    if (p == NULL) return NULL;
    if (len > 0) memcpy(p, src, len);
    p[len] = '\0';
    return p;
}

ProtobufCAllocator *spate_arena_allocator(SpateArena *a) { return &a->allocator; }
size_t spate_arena_used(const SpateArena *a) { return a->used_total; }
size_t spate_arena_capacity(const SpateArena *a) {
    size_t total = 0;
    for (const Chunk *c = a->head; c != NULL; c = c->next) total += c->size;
    return total;
}
