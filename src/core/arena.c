/* The per-step arena: a list of chunks handed out by bumping a pointer.
 *
 * The first chunk is, where the system allows it, a reservation of address
 * space as large as the machine's memory (mmap, MAP_NORESERVE): pages become
 * memory only when first touched, and they stay mapped across resets, so the
 * arena never moves, never grows by copying, and its pages are faulted in
 * once, by the first step, instead of once into the doubling chunks of the
 * first step and again into the merged chunk of the second (a ResNet-20 step
 * on batch 64 uses 140 MB: 100k page faults saved). The reservation asks for
 * transparent huge pages, which also cuts the TLB misses of the im2col and
 * GEMM passes over the activations.
 *
 * Without it (a strict overcommit policy, an address-space limit, an ASan
 * build) chunks come
 * from malloc: a reset that finds several chunks (or one smaller than the
 * high water) replaces them by one chunk of the high-water size, so a steady
 * training loop stops calling malloc after its first step. */
#include <stdlib.h>
#include <unistd.h>
/* not under AddressSanitizer: its redzones around malloc'd chunks catch a write past the arena's end */
#if (defined(__unix__) || defined(__APPLE__)) && !defined(__SANITIZE_ADDRESS__)
#include <sys/mman.h>
#define ARENA_CAN_RESERVE 1
#endif

#include "dptrain/tensor.h"

#define ARENA_ALIGN 64
#define ARENA_MIN_CHUNK (4u << 20)

struct dp_arena_chunk {
    dp_arena_chunk *next;
    size_t cap, used;
    char *base;
    int mapped; /* base is a reservation: munmap, not free */
};

#ifdef ARENA_CAN_RESERVE
/* The reservation's size: the machine's physical memory (an arena cannot
 * usefully outgrow it); 0 where that is unknown. */
static size_t reserve_size(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0) return (size_t)pages * (size_t)page;
    return 0;
}
#endif

/* A chunk over a reservation of address space, or 0 when the system refuses one. */
static int chunk_reserve(dp_arena_chunk *ch, size_t cap)
{
#ifdef ARENA_CAN_RESERVE
    size_t size = reserve_size();
    if (size < cap) return 0;
    int flags = MAP_PRIVATE | MAP_ANONYMOUS;
#ifdef MAP_NORESERVE
    flags |= MAP_NORESERVE;
#endif
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, flags, -1, 0);
    if (p == MAP_FAILED) return 0;
#ifdef MADV_HUGEPAGE
    (void)madvise(p, size, MADV_HUGEPAGE); /* a hint: without it the pages are 4 KiB */
#endif
    ch->base = p;
    ch->cap = size;
    ch->mapped = 1;
    return 1;
#else
    (void)ch, (void)cap;
    return 0;
#endif
}

static dp_arena_chunk *chunk_new(dp_arena *a, size_t cap)
{
    dp_arena_chunk *ch = malloc(sizeof *ch);
    if (!ch) return NULL;
    ch->used = 0;
    ch->next = NULL;
    if (chunk_reserve(ch, cap)) {
        a->sys_allocs++;
        return ch;
    }
    ch->mapped = 0;
    ch->base = aligned_alloc(ARENA_ALIGN, (cap + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN);
    if (!ch->base) {
        free(ch);
        return NULL;
    }
    ch->cap = cap;
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
#ifdef ARENA_CAN_RESERVE
        if (ch->mapped)
            munmap(ch->base, ch->cap);
        else
#endif
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
