/* Which images a rank trains on at each step.
 *
 * shard  (default, scalable): every rank holds its own shards and its own
 *        shuffling stream; step i takes the i-th run of `batch` indices of the
 *        rank's permutation. An epoch lasts ceil(max over ranks of n / batch)
 *        steps; a rank whose shards run out early contributes an empty batch.
 * global (exact, DistributedSampler-style): every rank holds the whole split
 *        and the same permutation; step i's global batch is the i-th run of
 *        P * batch indices and rank r takes the r-th slice of it. Then P ranks
 *        x batch B compute the same update as 1 rank x batch P*B.
 * Either way the global batch size of each step is known to every rank, so a
 * rank weights its mean loss by local/global and the averaged gradient is the
 * mean over the global batch. */
#ifndef DP_TRAIN_SAMPLER_H
#define DP_TRAIN_SAMPLER_H

#include <stdint.h>

#include "dptrain/rng.h"
#include "dptrain/status.h"

struct dp_sync;

typedef enum dp_sampler_kind { DP_SAMPLER_SHARD, DP_SAMPLER_GLOBAL } dp_sampler_kind;

typedef struct dp_sampler {
    dp_sampler_kind kind;
    int rank, size, batch;
    long n;          /* images this rank holds */
    long *n_ranks;   /* shard: every rank's n */
    long steps;      /* steps per epoch, equal on every rank */
    int32_t *perm;   /* [n] */
} dp_sampler;

/*! n_ranks: every rank's image count (gathered by the caller); copied. */
dp_status dp_sampler_init(dp_sampler *s, dp_sampler_kind kind, int rank, int size, int batch, const long *n_ranks);
/*! Collective over the ranks of sync: dp_sampler_init with every rank's n. */
dp_status dp_sampler_make(dp_sampler *s, dp_sampler_kind kind, struct dp_sync *sync, int batch, long n);
/*! The epoch's permutation from the stream (which advances). */
void dp_sampler_shuffle(dp_sampler *s, dp_rng *r);
/*! This rank's batch at `step`: returns its size (0..batch); *first indexes perm. */
long dp_sampler_local(const dp_sampler *s, long step, long *first);
/*! The number of images all ranks together train on at `step`. */
long dp_sampler_global(const dp_sampler *s, long step);
void dp_sampler_free(dp_sampler *s);

#endif
