/* Per-rank batch selection (see sampler.h). */
#include "dptrain/sampler.h"

#include <stdlib.h>
#include <string.h>

#include "dptrain/sync.h"

static long clampl(long v, long lo, long hi) { return v < lo ? lo : v > hi ? hi : v; }

dp_status dp_sampler_init(dp_sampler *s, dp_sampler_kind kind, int rank, int size, int batch, const long *n_ranks)
{
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->rank = rank;
    s->size = size;
    s->batch = batch;
    s->n = n_ranks[rank];
    s->n_ranks = malloc((size_t)size * sizeof *s->n_ranks);
    s->perm = malloc((size_t)(s->n ? s->n : 1) * sizeof *s->perm);
    if (!s->n_ranks || !s->perm) return dp_errorf(DP_ERR_NOMEM, "sampler: out of memory");
    memcpy(s->n_ranks, n_ranks, (size_t)size * sizeof *n_ranks);
    if (kind == DP_SAMPLER_GLOBAL) {
        for (int r = 0; r < size; r++)
            if (n_ranks[r] != s->n)
                return dp_errorf(DP_ERR_MPI, "sampler global: rank %d holds %ld images, rank %d holds %ld", r,
                                 n_ranks[r], rank, s->n);
        long g = (long)size * batch;
        s->steps = (s->n + g - 1) / g;
    } else {
        long most = 0;
        for (int r = 0; r < size; r++) most = n_ranks[r] > most ? n_ranks[r] : most;
        s->steps = (most + batch - 1) / batch;
    }
    for (long i = 0; i < s->n; i++) s->perm[i] = (int32_t)i;
    return DP_OK;
}

dp_status dp_sampler_make(dp_sampler *s, dp_sampler_kind kind, dp_sync *sync, int batch, long n)
{
    long *n_ranks = malloc((size_t)sync->size * sizeof *n_ranks);
    if (!n_ranks) return dp_errorf(DP_ERR_NOMEM, "sampler: out of memory");
    dp_status rc = dp_sync_allgather_long(sync, n, n_ranks);
    if (rc == DP_OK) rc = dp_sampler_init(s, kind, sync->rank, sync->size, batch, n_ranks);
    free(n_ranks);
    return rc;
}

void dp_sampler_shuffle(dp_sampler *s, dp_rng *r)
{
    for (long i = 0; i < s->n; i++) s->perm[i] = (int32_t)i;
    dp_rng_shuffle_i32(r, s->perm, (size_t)s->n);
}

long dp_sampler_local(const dp_sampler *s, long step, long *first)
{
    long f = s->kind == DP_SAMPLER_GLOBAL ? step * s->size * s->batch + (long)s->rank * s->batch : step * s->batch;
    *first = f;
    return clampl(s->n - f, 0, s->batch);
}

long dp_sampler_global(const dp_sampler *s, long step)
{
    if (s->kind == DP_SAMPLER_GLOBAL) {
        long g = (long)s->size * s->batch;
        return clampl(s->n - step * g, 0, g);
    }
    long total = 0;
    for (int r = 0; r < s->size; r++) total += clampl(s->n_ranks[r] - step * s->batch, 0, s->batch);
    return total;
}

void dp_sampler_free(dp_sampler *s)
{
    free(s->n_ranks);
    free(s->perm);
    memset(s, 0, sizeof *s);
}
