/* Checkpoints of a data-parallel run: rank 0 gathers every rank's streams and
 * writes; on resume rank 0 reads, checks, and broadcasts parameters,
 * buffers, optimizer state and position, and scatters the streams. Every
 * rank learns rank 0's status, so all of them stop on a bad checkpoint. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dptrain/checkpoint.h"
#include "train/run.h"

static dp_status gather_rngs(run *r, ck_rng *all)
{
    ck_rng mine = {r->shuffle, r->ctx.dropout_rng};
    return dp_sync_gather0(&r->sync, &mine, sizeof mine, all);
}

dp_status dp_run_save(run *r)
{
    if (!r->cfg->out[0]) return DP_OK;
    dp_sync_phase(&r->sync, "checkpoint save", (long)r->st.step);
    ck_rng *rngs = r->rank == 0 ? calloc((size_t)r->size, sizeof *rngs) : NULL;
    ck_rng dummy;
    float *residuals = NULL;
    dp_status rc = gather_rngs(r, rngs ? rngs : &dummy);
    if (rc == DP_OK) rc = dp_sync_gather_state(&r->sync, &residuals);
    if (rc == DP_OK && r->rank == 0) {
        ck_state st = r->st;
        st.version = CK_STATE_VERSION;
        st.opt_t = r->opt.t;
        st.n_params = r->m->params.n;
        st.n_buffers = r->m->params.nbuf;
        st.n_opt = r->opt.state_n;
        st.layout = dp_params_layout_hash(&r->m->params);
        st.ranks = r->size;
        dp_ck_section s[] = {
            {DP_CK_CONFIG, r->config_text, strlen(r->config_text)},
            {DP_CK_STATE, &st, sizeof st},
            {DP_CK_PARAMS, r->m->params.data, r->m->params.n * sizeof(float)},
            {DP_CK_BUFFERS, r->m->params.buffers, r->m->params.nbuf * sizeof(float)},
            {DP_CK_OPTIM, r->opt.state, r->opt.state_n * sizeof(float)},
            {DP_CK_RNG, rngs, (size_t)r->size * sizeof *rngs},
            {DP_CK_RESIDUAL, residuals, (size_t)r->size * r->sync.state_n * sizeof(float)},
        };
        rc = dp_checkpoint_write_keep(r->ckpt, s, residuals ? 7 : 6, r->cfg->keep_checkpoints);
        if (rc != DP_OK) {
            char why[1024];
            snprintf(why, sizeof why, "%s", dp_errmsg());
            if (r->saved_step >= 0)
                rc = dp_errorf(rc, "checkpoint of step %lld not written (%s); %s still holds step %ld", (long long)st.step,
                               why, r->ckpt, r->saved_step);
            else
                rc = dp_errorf(rc, "checkpoint of step %lld not written (%s)", (long long)st.step, why);
        }
    }
    free(rngs);
    free(residuals);
    rc = dp_sync_root_status(&r->sync, rc);
    if (rc == DP_OK) r->saved_step = (long)r->st.step;
    return rc;
}

static dp_status check_sections(run *r, const char *path, const dp_checkpoint *ck, ck_state *st, const ck_rng **rngs,
                                const float **residuals)
{
    const dp_ck_section *cfg = dp_checkpoint_find(ck, DP_CK_CONFIG), *s = dp_checkpoint_find(ck, DP_CK_STATE),
                        *pa = dp_checkpoint_find(ck, DP_CK_PARAMS), *bu = dp_checkpoint_find(ck, DP_CK_BUFFERS),
                        *op = dp_checkpoint_find(ck, DP_CK_OPTIM), *rn = dp_checkpoint_find(ck, DP_CK_RNG);
    if (!cfg || !s || !pa || !bu || !op || !rn)
        return dp_errorf(DP_ERR_FORMAT, "%s: a section is missing (config, state, params, buffers, optimizer, rng)",
                         path);
    if (s->size != sizeof *st)
        return dp_errorf(DP_ERR_FORMAT, "%s: state section has %llu bytes, expected %zu", path,
                         (unsigned long long)s->size, sizeof *st);
    memcpy(st, s->data, sizeof *st);
    if (st->version != CK_STATE_VERSION)
        return dp_errorf(DP_ERR_FORMAT, "%s: state version %u (this build reads %u)", path, st->version,
                         CK_STATE_VERSION);
    char key[64];
    char *saved = strndup(cfg->data, cfg->size);
    int bad = !saved || dp_checkpoint_config_diff(saved, r->config_text, dp_train_config_resume_key, key, sizeof key);
    free(saved);
    if (bad) return dp_errorf(DP_ERR_ARG, "%s: --resume with a different configuration: field '%s' differs", path, key);
    if (st->ranks != r->size || rn->size != (size_t)r->size * sizeof(ck_rng))
        return dp_errorf(DP_ERR_ARG, "%s: written by a run of %d ranks, this run has %d (resume with -np %d)", path,
                         st->ranks, r->size, st->ranks);
    if (st->layout != dp_params_layout_hash(&r->m->params) || pa->size != r->m->params.n * sizeof(float) ||
        bu->size != r->m->params.nbuf * sizeof(float) || op->size != r->opt.state_n * sizeof(float))
        return dp_errorf(DP_ERR_FORMAT, "%s: parameter layout differs from model '%s' (%zu parameters)", path,
                         r->cfg->model, r->m->params.n);
    if (st->micro_in_epoch < 0 || st->micro_in_epoch > r->sampler.steps || (int)st->epoch > r->cfg->epochs)
        return dp_errorf(DP_ERR_FORMAT, "%s: position (epoch %u, step in epoch %lld) out of range", path,
                         st->epoch, (long long)st->micro_in_epoch);
    const dp_ck_section *re = dp_checkpoint_find(ck, DP_CK_RESIDUAL);
    size_t want = r->sync.state ? (size_t)r->size * r->sync.state_n * sizeof(float) : 0;
    if ((re ? re->size : 0) != want)
        return dp_errorf(DP_ERR_FORMAT, "%s: error-feedback section has %llu bytes, this run needs %zu", path,
                         (unsigned long long)(re ? re->size : 0), want);
    memcpy(r->m->params.data, pa->data, pa->size);
    memcpy(r->m->params.buffers, bu->data, bu->size);
    if (op->size) memcpy(r->opt.state, op->data, op->size);
    *rngs = rn->data;
    *residuals = re ? re->data : NULL;
    return DP_OK;
}

/* checkpoint.dpc, or when that cannot be read (damaged, truncated, missing
 * after a crash between rotation steps) the newest older one that can:
 * checkpoint.dpc.1, .2, ... Only unreadable files are passed over; a
 * readable checkpoint of another configuration is an error, not skipped. */
static dp_status read_newest(run *r, dp_checkpoint *ck, char *path, size_t cap)
{
    snprintf(path, cap, "%s", r->ckpt);
    dp_status rc = dp_checkpoint_read(path, ck);
    if (rc == DP_OK) return DP_OK;
    char first[1024];
    snprintf(first, sizeof first, "%s", dp_errmsg());
    for (int i = 1; i < 1000; i++) {
        snprintf(path, cap, "%s.%d", r->ckpt, i);
        if (access(path, F_OK) != 0) break;
        if (dp_checkpoint_read(path, ck) == DP_OK) {
            fprintf(stderr, "warning: %s; resuming from the older %s\n", first, path);
            return DP_OK;
        }
        fprintf(stderr, "warning: %s\n", dp_errmsg());
    }
    return dp_errorf(rc, "%s", first);
}

dp_status dp_run_load(run *r)
{
    dp_checkpoint ck;
    memset(&ck, 0, sizeof ck);
    const ck_rng *rngs = NULL;
    const float *residuals = NULL;
    dp_status rc = DP_OK;
    if (r->rank == 0) {
        char path[1100];
        rc = read_newest(r, &ck, path, sizeof path);
        if (rc == DP_OK) rc = check_sections(r, path, &ck, &r->st, &rngs, &residuals);
        if (rc == DP_OK) r->saved_step = (long)r->st.step;
    }
    rc = dp_sync_root_status(&r->sync, rc);
    if (rc == DP_OK) rc = dp_sync_bcast(&r->sync, &r->st, sizeof r->st);
    if (rc == DP_OK) rc = dp_sync_bcast(&r->sync, r->m->params.data, r->m->params.n * sizeof(float));
    if (rc == DP_OK) rc = dp_sync_bcast(&r->sync, r->m->params.buffers, r->m->params.nbuf * sizeof(float));
    if (rc == DP_OK) rc = dp_sync_bcast(&r->sync, r->opt.state, r->opt.state_n * sizeof(float));
    ck_rng mine;
    if (rc == DP_OK) rc = dp_sync_scatter0(&r->sync, rngs, sizeof mine, &mine);
    if (rc == DP_OK) rc = dp_sync_scatter_state(&r->sync, residuals);
    if (rc == DP_OK) {
        r->opt.t = r->st.opt_t;
        r->shuffle = mine.epoch_shuffle;
        r->ctx.dropout_rng = mine.dropout;
    }
    dp_checkpoint_free(&ck);
    return rc;
}
