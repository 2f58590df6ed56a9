/* The search's end with --select perturb: perturbation-based selection
 * (dptrain/nas_select.h) on the held-out half, data-parallel, and
 * --reselect: the supernet of a finished (or stopped) search read back from
 * its search.dpc, so that a cell can be chosen again without searching.
 *
 * Evaluation: the first --select-batches global batches of the held-out half
 * in their stored order (no shuffle: every evaluation sees the same images),
 * each rank its slice, batch-norm on batch statistics (synchronised across
 * ranks as in the search); the counts are summed through the sync's
 * allreduce and rank 0's sums broadcast, so every rank takes every decision
 * alike. Tuning: --select-tune weight steps (SGD, the search's momentum
 * buffer, the search's final learning rate) on the training half, also in
 * stored order, with the edges decided so far projected. The weights, batch-
 * norm statistics and momentum are put back afterwards: the search's result
 * (and its parameter hash) is the supernet the search trained. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dptrain/fsutil.h"
#include "dptrain/nas_select.h"
#include "dptrain/text.h"
#include "nas/search_run.h"
#include "nas/strategy.h"

/* First image of this rank's part of global batch i of a half (the sampler's slicing, unshuffled). */
static long batch_first(const srch *s, long i)
{
    const long b = s->cfg->run.batch;
    return s->cfg->run.sampler == DP_SAMPLER_GLOBAL ? (i * s->d->size + s->d->rank) * b : i * b;
}

static dp_status sel_eval(void *user, const float *w, const float *alive, double *v)
{
    srch *s = user;
    dp_status rc = DP_OK;
    for (long i = 0; i < s->sel_batches && rc == DP_OK; i++) {
        dp_ctx_reset(&s->ctx);
        dp_tensor *x = dp_image_batch_get(&s->b, &s->ctx, &s->va, NULL, batch_first(s, i), s->cfg->run.batch);
        rc = dp_supernet_eval_weights(s->sn, &s->ctx, x, s->b.y, w, alive, v);
    }
    dp_status rs = dp_sync_sum(&s->d->sync, v, 3);
    if (rs == DP_OK) rs = dp_sync_bcast(&s->d->sync, v, 3 * sizeof *v); /* one set of bits decides on every rank */
    return rc != DP_OK ? rc : rs;
}

static dp_status sel_tune(void *user, const float *w, const float *alive)
{
    srch *s = user;
    const dp_search_config *cfg = s->cfg;
    dp_params *wp = &s->sn->model->params;
    dp_ctx *c = &s->ctx;
    for (int k = 0; k < cfg->select_tune; k++) {
        const long i = s->tune_pos++ % s->steps;
        dp_params_zero_grad(wp);
        dp_ctx_reset(c);
        c->training = 1;
        c->grad_enabled = 1;
        dp_tensor *x = dp_image_batch_get(&s->b, c, &s->tr, NULL, batch_first(s, i), cfg->run.batch);
        long correct = 0;
        dp_tensor *logits = x ? dp_supernet_forward_host(s->sn, c, x, w, alive) : NULL;
        dp_tensor *loss = logits ? dp_cross_entropy(c, logits, s->b.y, &correct) : NULL;
        dp_status rc = loss ? DP_OK : c->status != DP_OK ? c->status : dp_errorf(DP_ERR_SHAPE, "tuning: forward failed");
        if (rc == DP_OK) {
            dp_sync_begin(&s->d->sync, c);
            rc = dp_backward_scaled(c, loss, 1.0f / (float)s->d->size); /* equal batches: the mean over ranks */
        }
        dp_status rs = dp_sync_end(&s->d->sync, c); /* every rank joins, even one whose forward failed */
        if (rc == DP_OK) rc = rs;
        if (rc != DP_OK) return rc;
        double sq = dp_sum_squares(wp->grad, wp->n); /* the averaged gradient: the same on every rank */
        if (!isfinite(sq))
            return dp_errorf(DP_ERR_NONFINITE, "--select-tune: step %ld of the tuning has a non-finite gradient "
                             "(try --select-tune 0)", s->tune_pos);
        if (cfg->w_clip > 0) dp_clip_grad_norm(wp->grad, wp->n, cfg->w_clip);
        dp_optimizer_step(&s->wopt, wp->data, wp->grad, cfg->w_min_lr);
    }
    return DP_OK;
}

static void sel_probe(void *user, const dp_nas_probe *p)
{
    srch *s = user;
    if (!s->sel_csv) return;
    static const char *const phase[] = {"supernet", "op", "edge"};
    const double acc = p->v[1] > 0 ? p->v[0] / p->v[1] : 0, loss = p->v[1] > 0 ? p->v[2] / p->v[1] : 0;
    fprintf(s->sel_csv, "%s,%s,%d,%s,%.6f,%.6f,%d\n", phase[p->phase + 1],
            p->cell < 0 ? "-" : p->cell ? "reduce" : "normal", p->edge, p->col >= 0 ? dp_nas_op_name(s->sn->cfg.ops[p->col]) : "-",
            acc, loss, p->kept);
    if (p->kept) fflush(s->sel_csv); /* a decision at a time: the file shows how far a long selection is */
}

/* The weights, batch-norm statistics and momentum tuning moves, kept aside and put back. */
typedef struct sel_backup { float *w, *buf, *opt; } sel_backup;

static dp_status backup_take(srch *s, sel_backup *b)
{
    const dp_params *wp = &s->sn->model->params;
    b->w = malloc(wp->n * sizeof(float));
    b->buf = malloc((wp->nbuf + 1) * sizeof(float));
    b->opt = malloc((s->wopt.state_n + 1) * sizeof(float));
    if (!b->w || !b->buf || !b->opt) {
        free(b->w), free(b->buf), free(b->opt);
        *b = (sel_backup){0}; /* nothing to put back */
        return dp_errorf(DP_ERR_NOMEM, "--select: out of memory keeping the weights aside");
    }
    memcpy(b->w, wp->data, wp->n * sizeof(float));
    if (wp->nbuf) memcpy(b->buf, wp->buffers, wp->nbuf * sizeof(float));
    if (s->wopt.state_n) memcpy(b->opt, s->wopt.state, s->wopt.state_n * sizeof(float));
    return DP_OK;
}

static void backup_put(srch *s, sel_backup *b)
{
    const dp_params *wp = &s->sn->model->params;
    if (b->w) memcpy(wp->data, b->w, wp->n * sizeof(float));
    if (b->buf && wp->nbuf) memcpy(wp->buffers, b->buf, wp->nbuf * sizeof(float));
    if (b->opt && s->wopt.state_n) memcpy(s->wopt.state, b->opt, s->wopt.state_n * sizeof(float));
    free(b->w), free(b->buf), free(b->opt);
}

/* What both selections do first: the evaluation's batch count, rank 0's log file (header given), the
 * strategy's evaluation weights, and the weights kept aside (put back by sel_end). */
static dp_status sel_begin(srch *s, const char *file, const char *header, sel_backup *bk)
{
    const dp_search_config *cfg = s->cfg;
    s->sel_batches = cfg->select_batches < s->vsteps ? cfg->select_batches : s->vsteps;
    s->tune_pos = 0;
    dp_status rc = DP_OK;
    char path[700];
    snprintf(path, sizeof path, "%s/%s", cfg->run.out, file);
    if (s->d->rank == 0 && cfg->run.out[0]) {
        rc = dp_open_output(path, 0, &s->sel_csv);
        if (rc == DP_OK) fputs(header, s->sel_csv);
    }
    rc = dp_sync_all_ok(&s->d->sync, rc, file);
    if (rc != DP_OK) return rc;
    if (s->strat->before_eval) s->strat->before_eval(s);
    return dp_sync_all_ok(&s->d->sync, backup_take(s, bk), "--select");
}

/* The weights back, the log closed, and the ranks' choices compared: one that differs is a bug, stop on it. */
static dp_status sel_end(srch *s, sel_backup *bk, dp_status rc, const dp_genotype *g, double t0, int evals)
{
    backup_put(s, bk);
    if (s->sel_csv) fclose(s->sel_csv);
    s->sel_csv = NULL;
    if (rc != DP_OK) return rc;
    s->res->select_s = dp_now() - t0;
    s->res->select_evals = evals;
    char text[DP_GENOTYPE_TEXT_MAX + 32] = "selected_genotype=";
    const size_t pre = strlen(text);
    dp_genotype_format(g, text + pre, sizeof text - pre - 1);
    strcat(text, "\n");
    return dp_sync_agree(&s->d->sync, text);
}

dp_status nas_select_perturb_run(srch *s, dp_genotype *g)
{
    const dp_search_config *cfg = s->cfg;
    const size_t n = (size_t)s->rows * (size_t)s->nops;
    float w[NAS_MAX_ROWS * DP_NAS_NUM_OPS], alive[NAS_MAX_ROWS * DP_NAS_NUM_OPS];
    nas_host_weights(s, w);
    memcpy(alive, s->mask, n * sizeof *alive); /* what a pruning strategy removed stays removed */
    sel_backup bk = {0};
    dp_status rc = sel_begin(s, "perturb.csv", "phase,cell,edge,op_removed,acc,loss,kept\n", &bk);
    dp_nas_perturb p = {.ops = s->sn->cfg.ops, .nops = s->nops, .w = w, .alive = alive, .seed = cfg->run.seed,
                        .eval = sel_eval, .tune = cfg->select_tune > 0 ? sel_tune : NULL, .user = s,
                        .probe = sel_probe};
    dp_nas_perturb_stats st;
    memset(&st, 0, sizeof st);
    const double t0 = dp_now();
    if (rc == DP_OK) rc = dp_nas_select_perturb(&p, g, &st);
    rc = sel_end(s, &bk, rc, g, t0, st.evals);
    s->res->select_base_acc = st.base_acc;
    if (rc == DP_OK && !cfg->run.quiet && s->d->rank == 0)
        fprintf(stderr, "perturbation selection: %d evaluations of %ld x %d held-out images per rank, %d tunings of %d "
                        "steps, %.1f s; supernet accuracy on them %.4f\n",
                st.evals, s->sel_batches, cfg->run.batch, st.tunes, cfg->select_tune, s->res->select_s, st.base_acc);
    return rc;
}

/* --select-candidates: the cells, each file's name kept for the log. */
typedef struct sample_run {
    srch *s;
    dp_genotype *given;
    char (*names)[520];
    int ngiven;
} sample_run;

static int json_file(const struct dirent *e)
{
    const size_t n = strlen(e->d_name);
    return e->d_name[0] != '.' && n > 5 && !strcmp(e->d_name + n - 5, ".json");
}

/* Every rank reads them (the same files): a genotype file, or a directory's *.json in name order. Each is
 * checked against the supernet's op set here, so a bad one is named by its file. */
static dp_status candidates_load(sample_run *r)
{
    const char *path = r->s->cfg->select_candidates;
    if (!path[0]) return DP_OK;
    struct stat sb;
    if (stat(path, &sb) != 0) return dp_errorf(DP_ERR_IO, "--select-candidates: %s: %s", path, strerror(errno));
    struct dirent **list = NULL;
    int n = 1;
    if (S_ISDIR(sb.st_mode)) {
        n = scandir(path, &list, json_file, alphasort);
        if (n < 0) return dp_errorf(DP_ERR_IO, "--select-candidates: %s: %s", path, strerror(errno));
        if (n == 0) {
            free(list);
            return dp_errorf(DP_ERR_ARG, "--select-candidates: %s holds no *.json genotype", path);
        }
    }
    r->given = calloc((size_t)n, sizeof *r->given);
    r->names = calloc((size_t)n, sizeof *r->names);
    dp_status rc = r->given && r->names ? DP_OK : dp_errorf(DP_ERR_NOMEM, "--select-candidates: out of memory");
    float w[NAS_MAX_ROWS * DP_NAS_NUM_OPS], alive[NAS_MAX_ROWS * DP_NAS_NUM_OPS];
    for (int i = 0; i < n && rc == DP_OK; i++) {
        char file[800];
        if (list) snprintf(file, sizeof file, "%s/%s", path, list[i]->d_name);
        else snprintf(file, sizeof file, "%s", path);
        snprintf(r->names[i], sizeof r->names[i], "%s", list ? list[i]->d_name : path);
        rc = dp_genotype_load(file, &r->given[i]);
        if (rc == DP_OK) rc = dp_nas_genotype_weights(&r->given[i], r->s->sn->cfg.ops, r->s->nops, w, alive);
        if (rc != DP_OK) rc = dp_errorf(rc, "--select-candidates: %s: %s", file, dp_errmsg());
        r->ngiven = i + 1;
    }
    for (int i = 0; list && i < n; i++) free(list[i]);
    free(list);
    return rc;
}

static dp_status sample_eval(void *user, const float *w, const float *alive, double *v)
{
    return sel_eval(((sample_run *)user)->s, w, alive, v);
}

static void sample_probe(void *user, int index, const dp_genotype *g, const double *v, int best)
{
    const sample_run *r = user;
    srch *s = r->s;
    if (!s->sel_csv) return;
    char text[DP_GENOTYPE_TEXT_MAX];
    dp_genotype_format(g, text, sizeof text);
    const char *source = index == 0 ? "alpha" : index <= r->ngiven ? r->names[index - 1] : "random";
    fprintf(s->sel_csv, "{\"index\":%d,\"source\":", index);
    dp_json_string(s->sel_csv, source);
    fprintf(s->sel_csv, ",\"acc\":%.6f,\"loss\":%.6f,\"best\":%d,\"mflops\":%.4f,\"genotype\":%s}\n",
            v[1] > 0 ? v[0] / v[1] : 0, v[1] > 0 ? v[2] / v[1] : 0, best, nas_genotype_mflops(s, g), text);
}

dp_status nas_select_sample_run(srch *s, dp_genotype *g)
{
    const dp_search_config *cfg = s->cfg;
    float w[NAS_MAX_ROWS * DP_NAS_NUM_OPS], alive[NAS_MAX_ROWS * DP_NAS_NUM_OPS];
    const dp_genotype first = *g; /* alpha's cell */
    sample_run r = {.s = s};
    dp_status rc = dp_sync_all_ok(&s->d->sync, candidates_load(&r), "--select-candidates");
    sel_backup bk = {0};
    if (rc == DP_OK) rc = sel_begin(s, "sample.jsonl", "", &bk);
    dp_nas_sample p = {.ops = s->sn->cfg.ops, .nops = s->nops, .first = &first, .given = r.given, .ngiven = r.ngiven,
                       .samples = cfg->select_samples, .seed = cfg->run.seed, .w = w, .alive = alive,
                       .eval = sample_eval, .user = &r, .probe = sample_probe};
    dp_nas_sample_stats st;
    memset(&st, 0, sizeof st);
    const double t0 = dp_now();
    if (rc == DP_OK) rc = dp_nas_select_sample(&p, g, &st);
    rc = sel_end(s, &bk, rc, g, t0, st.evals); /* also closes the log when the backup failed */
    free(r.given);
    free(r.names);
    s->res->select_base_acc = st.first_acc;
    if (rc == DP_OK && !cfg->run.quiet && s->d->rank == 0)
        fprintf(stderr, "sample selection: alpha's cell, %d given and %d random cells on %ld x %d held-out images per "
                        "rank, %.1f s; alpha's cell %.4f (rank %d of %d), chosen: candidate %d, %.4f\n",
                r.ngiven, cfg->select_samples, s->sel_batches, cfg->run.batch, s->res->select_s, st.first_acc,
                st.first_rank, st.evals, st.chosen, st.best_acc);
    return rc;
}

/* ---- --reselect: the supernet of <out>/search.dpc ---- */

static int reselect_key(const char *key)
{
    return strcmp(key, "ranks") != 0; /* another rank count reads the same supernet */
}

/* Rank 0: section `tag` of ck into dst, exactly `bytes` long. */
static dp_status section_into(const dp_checkpoint *ck, const char *path, uint32_t tag, const char *what, void *dst,
                              size_t bytes)
{
    const dp_ck_section *x = dp_checkpoint_find(ck, tag);
    if (!x && !bytes) return DP_OK;
    if (!x) return dp_errorf(DP_ERR_FORMAT, "%s: the %s section is missing", path, what);
    if (x->size != bytes)
        return dp_errorf(DP_ERR_FORMAT, "%s: the %s section has %llu bytes, this supernet needs %zu", path, what,
                         (unsigned long long)x->size, bytes);
    if (bytes) memcpy(dst, x->data, bytes);
    return DP_OK;
}

static dp_status reselect_read(srch *s, const char *path, dp_drive_state *st, nas_ck_counts *counts)
{
    dp_params *wp = &s->sn->model->params, *ap = &s->sn->alpha;
    dp_checkpoint ck;
    memset(&ck, 0, sizeof ck);
    dp_status rc = dp_checkpoint_read(path, &ck);
    if (rc != DP_OK) {
        dp_checkpoint_free(&ck);
        return dp_errorf(rc, "--reselect: %s (the search's checkpoint: run the search with --out first)", dp_errmsg());
    }
    const dp_ck_section *cf = dp_checkpoint_find(&ck, DP_CK_CONFIG);
    char key[64];
    char *saved = cf && cf->size < DP_CONFIG_TEXT_CAP && !memchr(cf->data, 0, cf->size) ? strndup(cf->data, cf->size)
                                                                                       : NULL;
    if (!saved)
        rc = dp_errorf(DP_ERR_FORMAT, "%s: no readable configuration section", path);
    else if (dp_checkpoint_config_diff(saved, s->d->config_text, reselect_key, key, sizeof key))
        rc = dp_errorf(DP_ERR_ARG, "%s: --reselect with a different configuration (field '%s' differs): give the "
                       "flags the search was run with", path, key);
    free(saved);
    if (rc == DP_OK) rc = section_into(&ck, path, DP_CK_STATE, "state", st, sizeof *st);
    if (rc == DP_OK && (st->n_params != wp->n || st->n_buffers != wp->nbuf || st->layout != dp_params_layout_hash(wp)))
        rc = dp_errorf(DP_ERR_FORMAT, "%s: its parameter layout is not this supernet's", path);
    if (rc == DP_OK) rc = section_into(&ck, path, DP_CK_PARAMS, "parameters", wp->data, wp->n * sizeof(float));
    if (rc == DP_OK) rc = section_into(&ck, path, DP_CK_BUFFERS, "buffers", wp->buffers, wp->nbuf * sizeof(float));
    if (rc == DP_OK) rc = section_into(&ck, path, NAS_CK_ALPHA, "alpha", ap->data, ap->n * sizeof(float));
    if (rc == DP_OK) rc = section_into(&ck, path, DP_CK_OPTIM, "weight optimizer", s->wopt.state, s->wopt.state_n * sizeof(float));
    if (rc == DP_OK)
        rc = section_into(&ck, path, NAS_CK_MASK, "mask", s->mask, (size_t)s->rows * (size_t)s->nops * sizeof(float));
    if (rc == DP_OK) rc = section_into(&ck, path, DP_CK_TASK, "counters", counts, sizeof *counts);
    if (rc == DP_OK && nas_levers_on(s->cfg)) /* --stop-free's kept cell is the search's result */
        rc = section_into(&ck, path, NAS_CK_LEVERS, "early-stop and self-distillation", &s->lev, sizeof s->lev);
    if (rc == DP_OK && s->lev.stop_reason && dp_genotype_check(&s->lev.kept) != DP_OK)
        rc = dp_errorf(DP_ERR_FORMAT, "%s: the early-stop section's kept cell is not a genotype", path);
    if (rc == DP_OK && (st->step < 0 || st->step > s->total_steps || counts->last_prune < 0 || counts->last_prune > st->step))
        rc = dp_errorf(DP_ERR_FORMAT, "%s: step %lld out of range for this search (%ld steps)", path,
                       (long long)st->step, s->total_steps);
    for (size_t k = 0; rc == DP_OK && k < (size_t)s->rows * (size_t)s->nops; k++)
        if (s->mask[k] != 0.0f && s->mask[k] != 1.0f) rc = dp_errorf(DP_ERR_FORMAT, "%s: the mask holds %g", path, s->mask[k]);
    dp_checkpoint_free(&ck);
    return rc;
}

dp_status nas_reselect_load(srch *s)
{
    dp_driver *d = s->d;
    dp_params *wp = &s->sn->model->params, *ap = &s->sn->alpha;
    dp_drive_state st;
    nas_ck_counts counts;
    memset(&st, 0, sizeof st);
    memset(&counts, 0, sizeof counts);
    char path[700];
    snprintf(path, sizeof path, "%s/search.dpc", s->cfg->run.out);
    dp_status rc = d->rank == 0 ? reselect_read(s, path, &st, &counts) : DP_OK;
    rc = dp_sync_root_status(&d->sync, rc);
    if (rc == DP_OK) rc = dp_sync_bcast(&d->sync, &st, sizeof st);
    if (rc == DP_OK) rc = dp_sync_bcast(&d->sync, &counts, sizeof counts);
    if (rc == DP_OK) rc = dp_sync_bcast(&d->sync, wp->data, wp->n * sizeof(float));
    if (rc == DP_OK) rc = dp_sync_bcast(&d->sync, wp->buffers, wp->nbuf * sizeof(float));
    if (rc == DP_OK) rc = dp_sync_bcast(&d->sync, ap->data, ap->n * sizeof(float));
    if (rc == DP_OK) rc = dp_sync_bcast(&d->sync, s->wopt.state, s->wopt.state_n * sizeof(float));
    if (rc == DP_OK) rc = dp_sync_bcast(&d->sync, s->mask, (size_t)s->rows * (size_t)s->nops * sizeof(float));
    if (rc == DP_OK) rc = dp_sync_bcast(&d->sync, &s->lev, sizeof s->lev);
    if (rc != DP_OK) return rc;
    s->last_prune = counts.last_prune;
    s->wopt.t = counts.wopt_t;
    s->aopt.t = counts.aopt_t;
    s->res->epochs_done = (int)st.epoch;
    s->reselect_step = (long)st.step;
    /* the temperature of the last step taken, as the search's own end sees it */
    const double p = s->total_steps && st.step > 0 ? (double)(st.step - 1) / (double)s->total_steps : 0;
    s->temp = s->strat->temperature ? s->strat->temperature(s->t_start, s->t_end, p) : 1.0f;
    s->sn->mix.temperature = s->temp;
    if (!s->cfg->run.quiet && d->rank == 0)
        fprintf(stderr, "--reselect: %s, epoch %u of %d, step %lld\n", path, st.epoch, s->cfg->run.epochs,
                (long long)st.step);
    return DP_OK;
}
