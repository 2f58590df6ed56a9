/* The gradient pool (see dp_gradpool in tensor.h): exact-size free lists.
 * A training graph uses a few dozen distinct tensor sizes, so a linear scan of
 * the bins is cheaper than hashing. */
#include <stdlib.h>
#include <string.h>

#include "core/tape.h"

#define HEADER 64 /* keeps the payload 64-byte aligned */

struct dp_grad_block {
    dp_grad_block *next_free, *next_all;
    size_t bytes;
    int bin;
};
struct dp_grad_bin {
    size_t bytes;
    dp_grad_block *free;
};

static int bin_of(dp_gradpool *p, size_t bytes)
{
    for (int i = 0; i < p->nbins; i++)
        if (p->bins[i].bytes == bytes) return i;
    if (p->nbins == p->cap) {
        int cap = p->cap ? 2 * p->cap : 32;
        dp_grad_bin *b = realloc(p->bins, (size_t)cap * sizeof *b);
        if (!b) return -1;
        p->bins = b, p->cap = cap;
    }
    p->bins[p->nbins] = (dp_grad_bin){bytes, NULL};
    return p->nbins++;
}

float *dp_gradpool_get(dp_gradpool *p, size_t bytes)
{
    int b = bin_of(p, bytes);
    if (b < 0) return NULL;
    dp_grad_block *blk = p->bins[b].free;
    if (blk) {
        p->bins[b].free = blk->next_free;
    } else {
        char *mem = aligned_alloc(HEADER, HEADER + (bytes + HEADER - 1) / HEADER * HEADER);
        if (!mem) return NULL;
        blk = (dp_grad_block *)mem;
        blk->bytes = bytes;
        blk->bin = b;
        blk->next_all = p->all;
        p->all = blk;
        p->sys_allocs++;
    }
    blk->next_free = NULL;
    p->live += bytes;
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
    for (int i = 0; i < p->nbins; i++) p->bins[i].free = NULL;
    for (dp_grad_block *b = p->all; b; b = b->next_all) {
        b->next_free = p->bins[b->bin].free;
        p->bins[b->bin].free = b;
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
