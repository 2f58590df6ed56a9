/* A search's checkpoint sections, <out>/search.dpc: the driver writes the
 * configuration, position, weights, batch-norm statistics and the weights'
 * error feedback; these add alpha, both optimizers, every rank's streams,
 * alpha's error feedback and gold's pruning mask. Rank 0 checks them on
 * --resume, then shares what every rank holds alike and scatters what each
 * holds alone, so the resumed search goes on exactly as the uninterrupted one
 * would. Same file format as training's (docs/CHECKPOINT.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/checkpoint.h"
#include "nas/search_run.h"

enum { /* the task's own section tags */
    NAS_CK_ALPHA = DP_CK_TASK_FIRST, NAS_CK_AOPTIM, NAS_CK_RNG, NAS_CK_MASK, NAS_CK_ARES,
};


static size_t mask_n(const srch *s) { return (size_t)NAS_ROWS * (size_t)s->nops; }

dp_status nas_ck_save(void *t, dp_driver *d, dp_ck_section *sec, int *n)
{
    srch *s = t;
    nas_ck_rng mine = {s->shuffle_t, s->shuffle_v, s->noise, s->ctx.dropout_rng}, dummy;
    s->ck.rngs = d->rank == 0 ? calloc((size_t)d->size, sizeof *s->ck.rngs) : NULL;
    dp_status rc = d->rank == 0 && !s->ck.rngs ? dp_errorf(DP_ERR_NOMEM, "search checkpoint: out of memory") : DP_OK;
    rc = dp_sync_all_ok(s->ws, rc, "search checkpoint");
    if (rc == DP_OK) rc = dp_sync_gather0(s->ws, &mine, sizeof mine, s->ck.rngs ? s->ck.rngs : &dummy);
    if (rc == DP_OK) rc = dp_sync_gather_state(&s->async, &s->ck.ares);
    s->ck.counts = (nas_ck_counts){s->last_prune, s->wopt.t, s->aopt.t};
    const size_t P = (size_t)d->size;
    int k = 0;
    sec[k++] = (dp_ck_section){NAS_CK_ALPHA, s->sn->alpha.data, s->sn->alpha.n * sizeof(float)};
    sec[k++] = (dp_ck_section){DP_CK_OPTIM, s->wopt.state, s->wopt.state_n * sizeof(float)};
    sec[k++] = (dp_ck_section){NAS_CK_AOPTIM, s->aopt.state, s->aopt.state_n * sizeof(float)};
    sec[k++] = (dp_ck_section){NAS_CK_RNG, s->ck.rngs, P * sizeof *s->ck.rngs};
    sec[k++] = (dp_ck_section){NAS_CK_MASK, s->mask, mask_n(s) * sizeof(float)};
    sec[k++] = (dp_ck_section){NAS_CK_ARES, s->ck.ares, s->ck.ares ? P * s->async.state_n * sizeof(float) : 0};
    sec[k++] = (dp_ck_section){DP_CK_TASK, &s->ck.counts, sizeof s->ck.counts};
    *n = k;
    return rc;
}

void nas_ck_saved(void *t)
{
    srch *s = t;
    free(s->ck.rngs);
    free(s->ck.ares);
    s->ck.rngs = NULL, s->ck.ares = NULL;
}

/* The section `tag` of exactly `want` bytes, or an error naming it. */
static dp_status section(const dp_checkpoint *ck, const char *path, uint32_t tag, const char *what, uint64_t want,
                         const void **out)
{
    const dp_ck_section *x = dp_checkpoint_find(ck, tag);
    if (!x) return dp_errorf(DP_ERR_FORMAT, "%s: the %s section is missing", path, what);
    if (x->size != want)
        return dp_errorf(DP_ERR_FORMAT, "%s: the %s section has %llu bytes, this search needs %llu", path, what,
                         (unsigned long long)x->size, (unsigned long long)want);
    *out = x->data;
    return DP_OK;
}

dp_status nas_ck_restore(void *t, dp_driver *d, const dp_checkpoint *ck, const char *path)
{
    srch *s = t;
    if ((int)d->st.epoch >= s->cfg->run.epochs)
        return dp_errorf(DP_ERR_ARG, "%s: this search is complete (%u of %d epochs); nothing to resume", path,
                         d->st.epoch, s->cfg->run.epochs);
    const size_t P = (size_t)d->size;
    const void *v[7] = {0};
    const uint32_t tags[] = {NAS_CK_ALPHA, DP_CK_OPTIM, NAS_CK_AOPTIM, NAS_CK_RNG, NAS_CK_MASK, NAS_CK_ARES, DP_CK_TASK};
    const char *names[] = {"alpha", "weight optimizer", "alpha optimizer", "streams", "mask", "alpha error-feedback",
                           "counters"};
    const uint64_t want[] = {s->sn->alpha.n * 4, s->wopt.state_n * 4, s->aopt.state_n * 4, P * sizeof(nas_ck_rng),
                             mask_n(s) * 4, s->async.state ? P * s->async.state_n * 4 : 0, sizeof(nas_ck_counts)};
    dp_status rc = DP_OK;
    for (int k = 0; k < 7 && rc == DP_OK; k++) rc = section(ck, path, tags[k], names[k], want[k], &v[k]);
    if (rc != DP_OK) return rc;
    memcpy(s->sn->alpha.data, v[0], want[0]);
    if (want[1]) memcpy(s->wopt.state, v[1], want[1]);
    if (want[2]) memcpy(s->aopt.state, v[2], want[2]);
    memcpy(s->mask, v[4], want[4]);
    memcpy(&s->ck.counts, v[6], sizeof s->ck.counts);
    s->ck.in_rngs = v[3];
    s->ck.in_ares = want[5] ? v[5] : NULL;
    return DP_OK;
}

dp_status nas_ck_share(void *t, dp_driver *d)
{
    srch *s = t;
    nas_ck_rng mine;
    dp_status rc = dp_sync_bcast(s->ws, s->sn->alpha.data, s->sn->alpha.n * sizeof(float));
    if (rc == DP_OK) rc = dp_sync_bcast(s->ws, s->wopt.state, s->wopt.state_n * sizeof(float));
    if (rc == DP_OK) rc = dp_sync_bcast(s->ws, s->aopt.state, s->aopt.state_n * sizeof(float));
    if (rc == DP_OK) rc = dp_sync_bcast(s->ws, s->mask, mask_n(s) * sizeof(float));
    if (rc == DP_OK) rc = dp_sync_bcast(s->ws, &s->ck.counts, sizeof s->ck.counts);
    if (rc == DP_OK) rc = dp_sync_scatter0(s->ws, s->ck.in_rngs, sizeof mine, &mine);
    if (rc == DP_OK) rc = dp_sync_scatter_state(&s->async, s->ck.in_ares);
    s->ck.in_rngs = s->ck.in_ares = NULL;
    if (rc != DP_OK) return rc;
    (void)d;
    s->last_prune = s->ck.counts.last_prune;
    s->wopt.t = s->ck.counts.wopt_t;
    s->aopt.t = s->ck.counts.aopt_t;
    s->shuffle_t = mine.shuffle_t;
    s->shuffle_v = mine.shuffle_v;
    s->noise = mine.noise;
    s->ctx.dropout_rng = mine.dropout;
    return DP_OK;
}
