/* A search's checkpoint, <out>/search.dpc, written at the end of every epoch:
 * weights, batch-norm statistics, alpha, both optimizers, every rank's streams
 * and error-feedback buffers, gold's pruning mask. `--resume` reads it on rank
 * 0, checks it against this run, broadcasts what every rank holds alike and
 * scatters what each holds alone, so the resumed search goes on exactly as the
 * uninterrupted one would. Same file format as training's (docs/CHECKPOINT.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/checkpoint.h"
#include "nas/search_run.h"

#define NAS_CK_VERSION 1u

enum { /* section tags after training's (1..7) */
    NAS_CK_ALPHA = 16, NAS_CK_AOPTIM, NAS_CK_RNG, NAS_CK_MASK, NAS_CK_WRES, NAS_CK_ARES,
};

typedef struct nas_ck_state {
    uint32_t version, ranks;
    int32_t epochs_done, pad;
    int64_t step, last_prune, wopt_t, aopt_t;
    uint64_t n_w, n_buf, n_alpha, n_wopt, n_aopt, n_mask, n_wres, n_ares;
} nas_ck_state;

/* A rank's streams at an epoch's end (the next permutations are drawn from them). */
typedef struct nas_ck_rng {
    dp_rng shuffle_t, shuffle_v, noise, dropout;
} nas_ck_rng;

static void ck_path(const srch *s, char *path, size_t n) { snprintf(path, n, "%s/search.dpc", s->cfg->out); }

static size_t mask_n(const srch *s) { return (size_t)NAS_ROWS * (size_t)s->nops; }

static nas_ck_state state_now(const srch *s, int epochs_done)
{
    const dp_params *wp = &s->sn->model->params;
    return (nas_ck_state){.version = NAS_CK_VERSION, .ranks = (uint32_t)s->size, .epochs_done = epochs_done,
                          .step = s->step, .last_prune = s->last_prune, .wopt_t = s->wopt.t,
                          .aopt_t = s->aopt.t, .n_w = wp->n, .n_buf = wp->nbuf, .n_alpha = s->sn->alpha.n,
                          .n_wopt = s->wopt.state_n, .n_aopt = s->aopt.state_n, .n_mask = mask_n(s),
                          .n_wres = s->wsync.state ? s->wsync.state_n : 0,
                          .n_ares = s->async.state ? s->async.state_n : 0};
}

dp_status nas_save(srch *s, int epochs_done)
{
    if (!s->cfg->out[0]) return DP_OK;
    dp_sync_phase(&s->wsync, "search checkpoint", s->step);
    nas_ck_rng mine = {s->shuffle_t, s->shuffle_v, s->noise, s->ctx.dropout_rng};
    nas_ck_rng *rngs = s->rank == 0 ? calloc((size_t)s->size, sizeof *rngs) : NULL;
    float *wres = NULL, *ares = NULL;
    dp_status rc = s->rank == 0 && !rngs ? dp_errorf(DP_ERR_NOMEM, "search checkpoint: out of memory") : DP_OK;
    if (rc == DP_OK) rc = dp_sync_gather0(&s->wsync, &mine, sizeof mine, rngs);
    if (rc == DP_OK) rc = dp_sync_gather_state(&s->wsync, &wres);
    if (rc == DP_OK) rc = dp_sync_gather_state(&s->async, &ares);
    if (rc == DP_OK && s->rank == 0) {
        nas_ck_state st = state_now(s, epochs_done);
        const dp_params *wp = &s->sn->model->params;
        const size_t P = (size_t)s->size;
        dp_ck_section sec[] = {
            {DP_CK_CONFIG, s->config_text, strlen(s->config_text)},
            {DP_CK_STATE, &st, sizeof st},
            {DP_CK_PARAMS, wp->data, wp->n * sizeof(float)},
            {DP_CK_BUFFERS, wp->buffers, wp->nbuf * sizeof(float)},
            {NAS_CK_ALPHA, s->sn->alpha.data, s->sn->alpha.n * sizeof(float)},
            {DP_CK_OPTIM, s->wopt.state, s->wopt.state_n * sizeof(float)},
            {NAS_CK_AOPTIM, s->aopt.state, s->aopt.state_n * sizeof(float)},
            {NAS_CK_RNG, rngs, P * sizeof *rngs},
            {NAS_CK_MASK, s->mask, mask_n(s) * sizeof(float)},
            {NAS_CK_WRES, wres, P * st.n_wres * sizeof(float)},
            {NAS_CK_ARES, ares, P * st.n_ares * sizeof(float)},
        };
        char path[600];
        ck_path(s, path, sizeof path);
        rc = dp_checkpoint_write(path, sec, (int)(sizeof sec / sizeof sec[0]));
    }
    free(rngs);
    free(wres);
    free(ares);
    return dp_sync_all_ok(&s->wsync, rc, "writing the search checkpoint");
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

/* Rank 0: reads and checks everything before anything of this run is touched. */
static dp_status read_checked(srch *s, const char *path, dp_checkpoint *ck, nas_ck_state *st, const void **v)
{
    dp_status rc = dp_checkpoint_read(path, ck);
    if (rc != DP_OK) return rc;
    const void *raw = NULL;
    const dp_ck_section *c = dp_checkpoint_find(ck, DP_CK_CONFIG);
    if (!c) return dp_errorf(DP_ERR_FORMAT, "%s: the config section is missing (not a search checkpoint?)", path);
    char key[64], *saved = strndup(c->data, c->size);
    int bad = !saved || dp_checkpoint_config_diff(saved, s->config_text, NULL, key, sizeof key);
    free(saved);
    if (bad)
        return dp_errorf(DP_ERR_ARG, "%s: --resume with a different configuration: field '%s' differs "
                         "(a search resumes with the flags and rank count it was started with)", path, key);
    if ((rc = section(ck, path, DP_CK_STATE, "state", sizeof *st, &raw)) != DP_OK) return rc;
    memcpy(st, raw, sizeof *st);
    nas_ck_state now = state_now(s, 0);
    if (st->version != NAS_CK_VERSION)
        return dp_errorf(DP_ERR_FORMAT, "%s: search state version %u (this build reads %u)", path, st->version,
                         NAS_CK_VERSION);
    if (st->n_w != now.n_w || st->n_buf != now.n_buf || st->n_alpha != now.n_alpha || st->n_wopt != now.n_wopt ||
        st->n_aopt != now.n_aopt || st->n_mask != now.n_mask || st->n_wres != now.n_wres || st->n_ares != now.n_ares)
        return dp_errorf(DP_ERR_FORMAT, "%s: sizes differ from this supernet (%llu weights, %llu alphas saved; "
                         "%llu and %llu here)", path, (unsigned long long)st->n_w, (unsigned long long)st->n_alpha,
                         (unsigned long long)now.n_w, (unsigned long long)now.n_alpha);
    if (st->epochs_done >= s->cfg->epochs && st->step == (int64_t)st->epochs_done * s->steps)
        return dp_errorf(DP_ERR_ARG, "%s: this search is complete (%d of %d epochs); nothing to resume", path,
                         st->epochs_done, s->cfg->epochs);
    if (st->epochs_done < 1 || st->epochs_done > s->cfg->epochs || st->step != (int64_t)st->epochs_done * s->steps)
        return dp_errorf(DP_ERR_FORMAT, "%s: position out of range (epoch %d, step %lld; %ld steps per epoch)", path,
                         st->epochs_done, (long long)st->step, s->steps);
    const size_t P = (size_t)s->size;
    const uint32_t tags[] = {DP_CK_PARAMS, DP_CK_BUFFERS, NAS_CK_ALPHA, DP_CK_OPTIM, NAS_CK_AOPTIM,
                             NAS_CK_RNG, NAS_CK_MASK, NAS_CK_WRES, NAS_CK_ARES};
    const char *names[] = {"weights", "buffers", "alpha", "weight optimizer", "alpha optimizer",
                           "streams", "mask", "weight error-feedback", "alpha error-feedback"};
    const uint64_t want[] = {st->n_w * 4, st->n_buf * 4, st->n_alpha * 4, st->n_wopt * 4, st->n_aopt * 4,
                             P * sizeof(nas_ck_rng), st->n_mask * 4, P * st->n_wres * 4, P * st->n_ares * 4};
    for (int k = 0; k < 9 && rc == DP_OK; k++) rc = section(ck, path, tags[k], names[k], want[k], &v[k]);
    return rc;
}

static dp_status bcast_into(srch *s, float *dst, const void *src, size_t n)
{
    if (s->rank == 0 && n) memcpy(dst, src, n * sizeof(float));
    return dp_sync_bcast(&s->wsync, dst, n * sizeof(float));
}

dp_status nas_resume(srch *s, int *epochs_done)
{
    dp_checkpoint ck;
    memset(&ck, 0, sizeof ck);
    nas_ck_state st;
    memset(&st, 0, sizeof st);
    const void *v[9] = {0};
    char path[600];
    ck_path(s, path, sizeof path);
    dp_status rc = s->rank == 0 ? read_checked(s, path, &ck, &st, v) : DP_OK;
    rc = dp_sync_root_status(&s->wsync, rc);
    dp_params *wp = &s->sn->model->params;
    if (rc == DP_OK) rc = dp_sync_bcast(&s->wsync, &st, sizeof st);
    if (rc == DP_OK) rc = bcast_into(s, wp->data, v[0], wp->n);
    if (rc == DP_OK) rc = bcast_into(s, wp->buffers, v[1], wp->nbuf);
    if (rc == DP_OK) rc = bcast_into(s, s->sn->alpha.data, v[2], s->sn->alpha.n);
    if (rc == DP_OK) rc = bcast_into(s, s->wopt.state, v[3], s->wopt.state_n);
    if (rc == DP_OK) rc = bcast_into(s, s->aopt.state, v[4], s->aopt.state_n);
    if (rc == DP_OK) rc = bcast_into(s, s->mask, v[6], mask_n(s));
    nas_ck_rng mine;
    if (rc == DP_OK) rc = dp_sync_scatter0(&s->wsync, v[5], sizeof mine, &mine);
    if (rc == DP_OK) rc = dp_sync_scatter_state(&s->wsync, v[7]);
    if (rc == DP_OK) rc = dp_sync_scatter_state(&s->async, v[8]);
    if (rc == DP_OK) {
        s->step = st.step;
        s->last_prune = st.last_prune;
        s->wopt.t = st.wopt_t;
        s->aopt.t = st.aopt_t;
        s->shuffle_t = mine.shuffle_t;
        s->shuffle_v = mine.shuffle_v;
        s->noise = mine.noise;
        s->ctx.dropout_rng = mine.dropout;
        *epochs_done = st.epochs_done;
    }
    dp_checkpoint_free(&ck);
    return rc;
}
