/* The per-step arena: a list of chunks handed out by bumping a pointer.
 * A reset that finds several chunks (or one smaller than the high water)
 * replaces them by one chunk of the high-water size, so a steady training
 * loop stops calling malloc after its first step. */
#include <stdlib.h>

#include "dptrain/tensor.h"

#define ARENA_ALIGN 64
#define ARENA_MIN_CHUNK (4u << 20)

struct dp_arena_chunk {
    dp_arena_chunk *next;
    size_t cap, used;
    char *base;
};

static dp_arena_chunk *chunk_new(dp_arena *a, size_t cap)
{
    dp_arena_chunk *ch = malloc(sizeof *ch);
    if (!ch) return NULL;
    ch->base = aligned_alloc(ARENA_ALIGN, (cap + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN);
    if (!ch->base) {
        free(ch);
        return NULL;
    }
    ch->cap = cap;
    ch->used = 0;
    ch->next = NULL;
    a->sys_allocs++;
    return ch;
}

void *dp_arena_alloc(dp_arena *a, size_t bytes)
{
    size_t need = (bytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    if (need < bytes) return NULL;
    dp_arena_chunk *ch = a->head;
    if (!ch || ch->cap - ch->used < need) {
        size_t cap = need > ARENA_MIN_CHUNK ? need : ARENA_MIN_CHUNK;
        if (ch && cap < ch->cap * 2) cap = ch->cap * 2;
        dp_arena_chunk *nc = chunk_new(a, cap);
        if (!nc) return NULL;
        nc->next = ch;
        a->head = ch = nc;
    }
    void *p = ch->base + ch->used;
    ch->used += need;
    a->used += need;
    if (a->used > a->high_water) a->high_water = a->used;
    return p;
}

/* frees the chunks from ch up to (not including) stop; NULL: to the end */
static void chunks_free(dp_arena_chunk *ch, const dp_arena_chunk *stop)
{
    while (ch && ch != stop) {
        dp_arena_chunk *next = ch->next;
        free(ch->base);
        free(ch);
        ch = next;
    }
}

void dp_arena_reset(dp_arena *a)
{
    /* also when a released chunk left the one that remains short of the high water */
    if (a->head && (a->head->next || a->head->cap < a->high_water)) {
        chunks_free(a->head, NULL);
        a->head = chunk_new(a, a->high_water);
    }
    if (a->head) a->head->used = 0;
    a->used = 0;
}

void dp_arena_free(dp_arena *a)
{
    chunks_free(a->head, NULL);
    a->head = NULL;
    a->used = 0;
}

dp_arena_mark dp_arena_get_mark(const dp_arena *a)
{
    return (dp_arena_mark){a->head, a->head ? a->head->used : 0, a->used};
}

void dp_arena_release(dp_arena *a, dp_arena_mark m)
{
    /* Chunks added since the mark are freed, not kept for the next reset to
     * merge: in the first step a recomputed segment grows the arena, and
     * keeping every segment's chunk would cost the memory recomputation saves. */
    chunks_free(a->head, m.head);
    a->head = m.head;
    if (a->head) a->head->used = m.chunk_used;
    a->used = m.used;
}
