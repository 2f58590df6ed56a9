/* The gradient pool (see dp_gradpool in tensor.h): free lists by size class.
 *
 * A request is rounded up to its class (4 classes per octave, so a block is
 * less than 25% larger than asked) and takes a free block of its class, or
 * else of the next two classes, before it allocates. With fixed shapes the
 * same requests meet the same blocks every step, so nothing is allocated
 * after the first (blocks may be up to 25% larger than before). With shapes that change every step (the DSI transformer packs
 * queries of different lengths, so [T, E] with a new T each step), exact
 * sizes made a new bin and new blocks every step and kept them all: the pool
 * grew by ~65 MB a step until the kernel killed the rank. Classes let a
 * step reuse the blocks of a slightly different one, and a block that has
 * not been handed out in the last IDLE_STEPS (64) steps that used the pool is
 * freed at reset, so the pool follows what recent steps need. Steps that
 * take nothing from the pool (evaluation) do not age it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/tape.h"

#define HEADER 64 /* keeps the payload 64-byte aligned */
#define UNIT 64   /* the smallest class and the rounding of every class */
#define NBINS 232 /* classes up to 2^63 bytes (see class_of) */
#define LOOK_UP 2 /* how many larger classes a request may take a block from */
#define IDLE_STEPS 64

struct dp_grad_block {
    dp_grad_block *next_free, *next_all;
    size_t bytes; /* the class's size */
    long last;    /* the pool's clock when it was last handed out */
    int bin;
};
struct dp_grad_bin {
    dp_grad_block *free;
};

/* The class of a request of `bytes` and its size. u = bytes in UNITs; u <= 4:
 * class u - 1; otherwise with 2^k < u <= 2^(k+1), the octave is split into 4
 * steps of 2^(k-2) units: class 4 + 4 (k - 2) + (q - 5), q = ceil(u / 2^(k-2))
 * in 5 .. 8. */
static int class_of(size_t bytes, size_t *size)
{
    size_t u = bytes / UNIT + (bytes % UNIT != 0);
    if (u == 0) u = 1;
    if (u <= 4) {
        *size = u * UNIT;
        return (int)u - 1;
    }
    int k = 0;
    for (size_t v = u - 1; v > 1; v >>= 1) k++;
    const size_t step = (size_t)1 << (k - 2);
    const size_t q = u / step + (u % step != 0);
    *size = q * step * UNIT;
    return 4 + 4 * (k - 2) + (int)(q - 5);
}

float *dp_gradpool_get(dp_gradpool *p, size_t bytes)
{
    if (bytes > SIZE_MAX / 2) return NULL;
    if (!p->bins) {
        p->bins = calloc(NBINS, sizeof *p->bins);
        if (!p->bins) return NULL;
        p->nbins = NBINS;
    }
    size_t size;
    const int c = class_of(bytes, &size);
    dp_grad_block *blk = NULL;
    for (int b = c; b <= c + LOOK_UP && b < NBINS && !blk; b++)
        if ((blk = p->bins[b].free)) p->bins[b].free = blk->next_free;
    if (!blk) {
        char *mem = aligned_alloc(HEADER, HEADER + size);
        if (!mem) return NULL;
        blk = (dp_grad_block *)mem;
        blk->bytes = size;
        blk->bin = c;
        blk->next_all = p->all;
        p->all = blk;
        p->held += size;
        p->sys_allocs++;
    }
    blk->next_free = NULL;
    blk->last = p->clock;
    p->busy = 1;
    p->live += blk->bytes;
    if (p->live > p->high_water) p->high_water = p->live;
    return (float *)((char *)blk + HEADER);
}

void dp_gradpool_put(dp_gradpool *p, float *g)
{
    dp_grad_block *blk = (dp_grad_block *)((char *)g - HEADER);
    blk->next_free = p->bins[blk->bin].free;
    p->bins[blk->bin].free = blk;
    p->live -= blk->bytes;
}

void dp_gradpool_reset(dp_gradpool *p)
{
    if (p->busy) p->clock++;
    p->busy = 0;
    for (int i = 0; i < p->nbins; i++) p->bins[i].free = NULL;
    dp_grad_block **link = &p->all;
    while (*link) {
        dp_grad_block *b = *link;
        if (p->clock - b->last > IDLE_STEPS) {
            *link = b->next_all;
            p->held -= b->bytes;
            free(b);
            continue;
        }
        b->next_free = p->bins[b->bin].free;
        p->bins[b->bin].free = b;
        link = &b->next_all;
    }
    p->live = 0;
}

void dp_gradpool_free(dp_gradpool *p)
{
    for (dp_grad_block *b = p->all; b;) {
        dp_grad_block *next = b->next_all;
        free(b);
        b = next;
    }
    free(p->bins);
    memset(p, 0, sizeof *p);
}
