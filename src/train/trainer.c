/* The training loop for image classifiers, one rank or many.
 *
 * Per optimizer step, on every rank:
 *   for each of `accumulate` micro-batches: assemble this rank's batch
 *   (uint8 -> normalised float through a lookup table), forward,
 *   cross-entropy, backward into the flat gradient buffer with the loss
 *   weighted by this rank's share of the global batch; on the last
 *   micro-batch the buckets are allreduced while backward runs;
 *   then one small allreduce of the step's statistics (loss, accuracy, stop
 *   and non-finite flags) so every rank agrees, clipping, and the optimizer
 *   on the flat parameters. Nothing in the step allocates once the arena has
 *   grown on the first step.
 *
 * Reproducibility: the shuffling stream's state at the start of the current
 * epoch is what the checkpoint saves, so a resumed run regenerates the same
 * permutation and skips the steps already taken. */
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "dptrain/fault.h"
#include "dptrain/nas.h"
#include "dptrain/ops.h"
#include "train/run.h"

#define LOG_EVERY 50
#define MAX_SKIP_RUN 50         /* skipped steps in a row before giving up */

static volatile sig_atomic_t stop_requested;

void dp_train_request_stop(void) { stop_requested = 1; }

static dp_status load_data(run *r)
{
    const dp_train_config *cfg = r->cfg;
    /* global sampler: every rank holds the whole split; shard: its own shards */
    int global = cfg->sampler == DP_SAMPLER_GLOBAL;
    dp_status rc = dp_image_set_load(cfg->data, "train", global ? 0 : r->rank, global ? 1 : r->size, cfg->limit,
                                     &r->train);
    if (rc != DP_OK) return rc;
    rc = dp_image_set_load(cfg->data, "test", r->rank, r->size, cfg->test_limit, &r->test);
    if (rc != DP_OK) return rc;
    if (r->train.split_total == 0) return dp_errorf(DP_ERR_ARG, "%s: the train split is empty", cfg->data);
    if (r->test.n && (r->test.c != r->train.c || r->test.h != r->train.h || r->test.w != r->train.w))
        return dp_errorf(DP_ERR_FORMAT, "%s: train and test images differ in shape", cfg->data);
    dp_image_norm_lut(r->lut);
    r->feat = (long)r->train.c * r->train.h * r->train.w;
    long bmax = cfg->batch > cfg->eval_batch ? cfg->batch : cfg->eval_batch;
    r->x = aligned_alloc(64, ((size_t)bmax * (size_t)r->feat * sizeof(float) + 63) / 64 * 64);
    r->y = malloc((size_t)bmax * sizeof *r->y);
    if (!r->x || !r->y) return dp_errorf(DP_ERR_NOMEM, "batch buffers: out of memory");
    return DP_OK;
}

/* The reference's Cutout on the normalised batch: a side x side square at a
 * uniform centre (clipped at the border) set to 0, every channel. The draws
 * come from the dropout stream, which checkpoints carry, so resume is exact. */
static void cutout(run *r, long bs)
{
    int c = r->train.c, h = r->train.h, w = r->train.w, half = r->cfg->cutout / 2;
    for (long i = 0; i < bs; i++) {
        int cy = (int)dp_rng_below(&r->ctx.dropout_rng, (uint64_t)h);
        int cx = (int)dp_rng_below(&r->ctx.dropout_rng, (uint64_t)w);
        int y1 = cy - half < 0 ? 0 : cy - half, y2 = cy + half > h ? h : cy + half;
        int x1 = cx - half < 0 ? 0 : cx - half, x2 = cx + half > w ? w : cx + half;
        for (int ch = 0; ch < c; ch++)
            for (int y = y1; y < y2; y++)
                memset(r->x + (((size_t)i * c + ch) * h + y) * w + x1, 0, (size_t)(x2 - x1) * sizeof(float));
    }
}

static dp_tensor *batch_tensor(run *r, long bs)
{
    int shape[4] = {(int)bs, r->train.c, r->train.h, r->train.w};
    return dp_tensor_wrap(&r->ctx, r->x, 4, shape);
}

/* One micro-batch: forward, loss, backward with the loss weighted by this
 * rank's share of the global batch. sync: allreduce the buckets. */
static dp_status micro_step(run *r, long micro, long global_bs, int sync, double *stats)
{
    dp_ctx *c = &r->ctx;
    long first, bs = dp_sampler_local(&r->sampler, micro, &first);
    dp_ctx_reset(c);
    c->training = 1;
    c->grad_enabled = 1;
    if (bs > 0) {
        dp_image_set_batch(&r->train, r->lut, r->sampler.perm, first, bs, r->x, r->y);
        if (r->cfg->cutout) cutout(r, bs);
        if (dp_fault_point("forward") == DP_FAULT_NAN) r->x[0] = NAN; /* a damaged input pixel */
        long correct = 0;
        dp_tensor *loss = dp_cross_entropy(c, r->m->forward(r->m, c, batch_tensor(r, bs)), r->y, &correct);
        if (!loss) return c->status ? c->status : dp_errorf(DP_ERR_SHAPE, "forward failed");
        double l = loss->data[0];
        if (!isfinite(l)) stats[4] += 1; /* every rank learns it from the statistics allreduce */
        stats[0] += isfinite(l) ? l * (double)bs : 0;
        stats[1] += (double)correct;
        stats[2] += (double)bs;
        /* SUM over ranks of (bs / global_bs) * mean-loss gradient = the global-batch mean
         * (weighting here saves the allreduce a pass dividing by P) */
        float w = (float)((double)bs / (double)global_bs * r->st.loss_scale);
        if (sync) dp_sync_begin(&r->sync, c);
        dp_status rc = dp_backward_scaled(c, loss, w);
        if (rc != DP_OK) return rc;
    }
    if (sync) dp_fault_point("allreduce"); /* with overlap, the buckets are on the wire now */
    return sync ? dp_sync_end(&r->sync, c) : DP_OK;
}

/* The parameter (or buffer) whose range of the flat buffer holds index i. */
static const char *param_at(const dp_params *p, size_t i)
{
    for (int k = 0; k < p->count; k++)
        if (!p->items[k]->is_buffer && i >= p->items[k]->offset && i < p->items[k]->offset + (size_t)p->items[k]->t.n)
            return p->items[k]->name;
    return "?";
}

/* A NaN/Inf loss or gradient, seen alike by every rank (the loss through the
 * statistics allreduce, gradients after the allreduce). stop: an error naming
 * the step and the first non-finite tensor. skip: the update is dropped and the
 * loss scale halved (GradScaler's backoff); error-feedback residuals, kept in
 * scaled units, follow the scale. */
static void set_loss_scale(run *r, double scale)
{
    if (r->sync.residual) {
        float f = (float)(scale / r->st.loss_scale);
        for (size_t i = 0; i < r->sync.state_n; i++) /* state is the residual (and DGC's velocity) */
            r->sync.residual[i] = isfinite(r->sync.residual[i]) ? r->sync.residual[i] * f : 0.0f;
    }
    r->st.loss_scale = scale;
    r->st.clean_steps = 0;
}

static dp_status nonfinite_step(run *r, const char *what, int *skipped)
{
    const dp_train_config *cfg = r->cfg;
    long step = (long)r->st.step + 1;
    if (cfg->on_nonfinite == DP_NONFINITE_STOP)
        return dp_errorf(DP_ERR_NONFINITE, "step %ld (epoch %u): %s; lower --lr, add --clip, or --on-nonfinite skip",
                         step, r->st.epoch + 1, what);
    if (++r->st.skip_run > MAX_SKIP_RUN)
        return dp_errorf(DP_ERR_NONFINITE, "step %ld (epoch %u): %d steps in a row were not finite (last: %s); giving up",
                         step, r->st.epoch + 1, MAX_SKIP_RUN + 1, what);
    double old = r->st.loss_scale;
    set_loss_scale(r, old > 0x1p-24 ? old * 0.5 : old);
    r->st.skipped++;
    if (r->rank == 0 && !cfg->quiet)
        fprintf(stderr, "step %ld: %s: update skipped, loss scale %g -> %g\n", step, what, old, r->st.loss_scale);
    dp_report_json(&r->rep, "{\"kind\":\"skip\",\"step\":%ld,\"loss_scale\":%g,\"why\":\"%s\"}", step,
                   r->st.loss_scale, what);
    *skipped = 1;
    return DP_OK;
}

/* One optimizer step over micro-batches [m0, m1) of the epoch. */
static dp_status opt_step(run *r, long m0, long m1, double *stats)
{
    const dp_train_config *cfg = r->cfg;
    long global_bs = 0;
    for (long m = m0; m < m1; m++) global_bs += dp_sampler_global(&r->sampler, m);
    dp_params_zero_grad(&r->m->params);
    memset(stats, 0, 5 * sizeof *stats);
    r->sync.codec_on = (cfg->codec.kind != DP_CODEC_NONE || cfg->codec.wire_zstd_level || cfg->sparse) &&
                       r->st.step >= cfg->codec_start;
    r->sync.step = (uint64_t)r->st.step;
    dp_fault_context(r->rank, (long)r->st.step + 1);
    dp_sync_phase(&r->sync, "forward/backward", (long)r->st.step + 1);
    char why[1200] = "";
    for (long m = m0; m < m1; m++) {
        dp_status rc = micro_step(r, m, global_bs, m == m1 - 1, stats);
        /* a codec rejected a NaN/Inf: every rank got this from the same ring */
        if (rc == DP_ERR_NONFINITE && m == m1 - 1) {
            snprintf(why, sizeof why, "the allreduce met a non-finite or out-of-range gradient (%s)", dp_errmsg());
            rc = DP_OK;
        }
        if (rc != DP_OK) return rc;
    }
    stats[3] = stop_requested ? 1 : 0;
    dp_status rc = dp_sync_sum(&r->sync, stats, 5);
    if (rc != DP_OK) return rc;
    int skipped = 0;
    float *g = r->m->params.grad;
    size_t n = r->m->params.n, bad = n;
    if (!why[0] && stats[4] > 0)
        snprintf(why, sizeof why, "the loss is not finite on %.0f rank(s)", stats[4]);
    if (!why[0] && (bad = dp_grad_unscale_check(g, n, (float)(1.0 / r->st.loss_scale))) < n)
        snprintf(why, sizeof why, "non-finite gradient after the allreduce, first in '%s' (element %zu of the flat buffer)",
                 param_at(&r->m->params, bad), bad);
    if (why[0]) {
        rc = nonfinite_step(r, why, &skipped);
        if (rc != DP_OK || skipped) return rc;
    }
    r->st.skip_run = 0;
    if (++r->st.clean_steps >= cfg->loss_scale_growth && r->st.loss_scale < cfg->loss_scale) {
        set_loss_scale(r, r->st.loss_scale * 2); /* back toward --loss-scale, never above it */
        if (r->rank == 0 && !cfg->quiet)
            fprintf(stderr, "step %ld: %ld clean steps, loss scale %g -> %g\n", (long)r->st.step + 1,
                    cfg->loss_scale_growth, r->st.loss_scale / 2, r->st.loss_scale);
        dp_report_json(&r->rep, "{\"kind\":\"loss_scale\",\"step\":%ld,\"loss_scale\":%g}", (long)r->st.step + 1,
                       r->st.loss_scale);
    }
    if (cfg->clip > 0) dp_clip_grad_norm(g, n, cfg->clip);
    dp_optimizer_step(&r->opt, r->m->params.data, g, dp_schedule_lr(&r->sched, (long)r->st.step));
    dp_fault_point("step");
    /* Batch-norm running statistics follow each rank's own batches: keep rank
     * 0's everywhere (DDP's broadcast_buffers), so that replicas, evaluation
     * and checkpoints (which hold rank 0's) agree. */
    if (r->size > 1 && r->m->params.nbuf)
        return dp_sync_bcast(&r->sync, r->m->params.buffers, r->m->params.nbuf * sizeof(float));
    return DP_OK;
}

static dp_status evaluate(run *r, double *loss_out, double *acc_out)
{
    dp_ctx *c = &r->ctx;
    dp_sync_phase(&r->sync, "evaluation", (long)r->st.step);
    double v[3] = {0, 0, (double)r->test.n};
    for (long first = 0; first < r->test.n; first += r->cfg->eval_batch) {
        long bs = r->test.n - first < r->cfg->eval_batch ? r->test.n - first : r->cfg->eval_batch;
        dp_ctx_reset(c);
        c->training = 0;
        c->grad_enabled = 0;
        dp_image_set_batch(&r->test, r->lut, NULL, first, bs, r->x, r->y);
        long k = 0;
        dp_tensor *loss = dp_cross_entropy(c, r->m->forward(r->m, c, batch_tensor(r, bs)), r->y, &k);
        if (!loss) return c->status;
        v[0] += (double)loss->data[0] * (double)bs;
        v[1] += (double)k;
    }
    c->training = 1;
    c->grad_enabled = 1;
    dp_status rc = dp_sync_sum(&r->sync, v, 3);
    if (rc != DP_OK) return rc;
    *loss_out = v[2] ? v[0] / v[2] : 0;
    *acc_out = v[2] ? v[1] / v[2] : 0;
    return DP_OK;
}

static dp_status agree(run *r, uint64_t manifest_hash)
{
    char text[8192];
    snprintf(text, sizeof text, "%sranks=%d\nmanifest=%016llx\nlayout=%016llx\n", r->config_text, r->size,
             (unsigned long long)manifest_hash, (unsigned long long)dp_params_layout_hash(&r->m->params));
    return dp_sync_agree(&r->sync, text);
}

/* --model by name, or --arch: the genotype's network, whose content joins the
 * configuration text so that ranks and resumes compare the cell, not the path. */
static dp_status build_model(run *r, const dp_model_shape *shape, const dp_genotype *g)
{
    const dp_train_config *cfg = r->cfg;
    if (!cfg->arch[0]) return dp_model_build(cfg->model, shape, &r->m);
    dp_status rc = dp_darts_net_build(g, cfg->layers, cfg->channels, cfg->drop_path, shape, &r->m);
    if (rc != DP_OK) return rc;
    char text[1024];
    size_t len = strlen(r->config_text), cap = sizeof r->config_text;
    int tl = dp_genotype_format(g, text, sizeof text);
    int n = snprintf(r->config_text + len, cap - len, "genotype=%s\n", text);
    if (tl < 0 || (size_t)tl >= sizeof text || n < 0 || (size_t)n >= cap - len)
        return dp_errorf(DP_ERR_NOMEM, "%s: the genotype does not fit the configuration text", cfg->arch);
    return DP_OK;
}

/* Rank 0, at start-up: the run directory must hold a checkpoint being written
 * next to the newest one kept, or the first save would fail hours in. */
static dp_status check_out_space(run *r)
{
    const dp_train_config *cfg = r->cfg;
    if (r->rank != 0 || !cfg->out[0]) return DP_OK;
    struct statvfs fs;
    if (statvfs(cfg->out, &fs) != 0) return dp_errorf(DP_ERR_IO, "%s: statvfs: %s", cfg->out, strerror(errno));
    double floats = (double)r->m->params.n + (double)r->m->params.nbuf + (double)r->opt.state_n +
                    (double)r->size * (double)r->sync.state_n;
    double need = 2.0 * (floats * 4.0 + 65536.0), avail = (double)fs.f_bavail * (double)fs.f_frsize;
    if (avail < need)
        return dp_errorf(DP_ERR_IO, "%s: %.1f MiB free, a checkpoint needs about %.1f MiB (the one kept and the one "
                         "being written): free space or choose another --out", cfg->out, avail / 1048576.0,
                         need / 1048576.0);
    if (avail < need / 2.0 * (cfg->keep_checkpoints + 1) && !cfg->quiet)
        fprintf(stderr, "warning: %s: %.1f MiB free holds fewer than the %d checkpoints --keep-checkpoints asks for\n",
                cfg->out, avail / 1048576.0, cfg->keep_checkpoints);
    return DP_OK;
}

static dp_status setup(run *r, MPI_Comm comm)
{
    const dp_train_config *cfg = r->cfg;
    openblas_set_num_threads(cfg->threads);
    dp_train_config_format(cfg, r->config_text, sizeof r->config_text);
    if (comm != MPI_COMM_NULL) {
        MPI_Comm_rank(comm, &r->rank);
        MPI_Comm_size(comm, &r->size);
    }
    /* The model first: its layout is part of what the ranks compare, and
     * the comparison must come before anything that could fail on one rank only. */
    dp_model_shape shape = {0, 0, 0, 0};
    uint64_t manifest_hash = 0;
    dp_manifest *man = NULL;
    dp_genotype g; /* first: a bad --arch is reported whatever the data */
    dp_status rc = cfg->arch[0] ? dp_genotype_load(cfg->arch, &g) : DP_OK;
    if (rc == DP_OK) rc = dp_manifest_load(cfg->data, &man);
    if (rc == DP_OK) {
        shape = (dp_model_shape){(int)man->schema.param[0], (int)man->schema.param[1], (int)man->schema.param[2],
                                 (int)man->schema.param[3]};
        manifest_hash = dp_manifest_hash(man);
        dp_manifest_free(man);
    }
    dp_status rc_model = rc == DP_OK ? build_model(r, &shape, &g) : rc;
    dp_sync_opts so = {.algo = cfg->allreduce, .bucket_bytes = (size_t)((double)cfg->bucket_mb * 1048576.0),
                       .overlap = cfg->overlap, .codec = cfg->codec};
    so.codec.seed = cfg->seed;
    so.sparse = cfg->sparse;
    so.topk_fraction = cfg->topk_fraction;
    so.topk_momentum = cfg->dgc_momentum;
    so.powersgd_rank = cfg->powersgd_rank;
    static const dp_params none;
    rc = dp_sync_init(&r->sync, comm, r->m ? &r->m->params : &none, &so);
    /* from here every wait on other ranks is watched, set-up included: a rank stuck loading its
     * shards is reported like one stuck in a step */
    if (rc == DP_OK) rc = dp_sync_watchdog(&r->sync, cfg->watchdog_s);
    if (rc != DP_OK) return rc;
    dp_fault_context(r->rank, 0);
    /* A rank that failed to build must not leave the others waiting. */
    rc = dp_sync_all_ok(&r->sync, rc_model, "building the model");
    if (rc != DP_OK) return rc;
    rc = agree(r, manifest_hash);
    if (rc != DP_OK) return rc;

    dp_sync_phase(&r->sync, "loading the data", 0);
    dp_fault_point("load");
    rc = dp_sync_all_ok(&r->sync, load_data(r), "loading the data");
    if (rc != DP_OK) return rc;
    long *n_ranks = malloc((size_t)r->size * sizeof *n_ranks);
    if (!n_ranks) return dp_errorf(DP_ERR_NOMEM, "out of memory");
    rc = dp_sync_allgather_long(&r->sync, r->train.n, n_ranks);
    if (rc == DP_OK) rc = dp_sampler_init(&r->sampler, (dp_sampler_kind)cfg->sampler, r->rank, r->size, cfg->batch, n_ranks);
    free(n_ranks);
    if (rc != DP_OK) return rc;
    r->opt_steps_per_epoch = (r->sampler.steps + cfg->accumulate - 1) / cfg->accumulate;

    dp_rng init;
    dp_rng_seed(&init, cfg->seed, DP_STREAM_INIT, 0);
    dp_params_init(&r->m->params, &init);
    dp_opt_config oc = cfg->opt;
    /* one rank sends nothing, so no top-k runs: --dgc's momentum goes back to the optimizer */
    if (r->size == 1 && cfg->dgc_momentum > 0) oc.momentum = cfg->dgc_momentum;
    rc = dp_optimizer_init(&r->opt, &oc, r->m->params.n);
    if (rc != DP_OK) return rc;
    r->sched = (dp_schedule){.kind = cfg->schedule, .base_lr = cfg->lr, .min_lr = cfg->min_lr,
                             .gamma = cfg->step_gamma, .step_size = cfg->step_size, .warmup = cfg->warmup,
                             .total = (long)cfg->epochs * r->opt_steps_per_epoch};
    rc = dp_schedule_check(&r->sched);
    if (rc != DP_OK) return rc;
    dp_ctx_init(&r->ctx);
    dp_rng_seed(&r->ctx.dropout_rng, cfg->seed, DP_STREAM_DROPOUT, (uint32_t)r->rank);
    dp_rng_seed(&r->shuffle, cfg->seed, DP_STREAM_SHUFFLE, cfg->sampler == DP_SAMPLER_GLOBAL ? 0 : (uint32_t)r->rank);
    if (cfg->out[0]) snprintf(r->ckpt, sizeof r->ckpt, "%s/checkpoint.dpc", cfg->out);
    dp_sync_phase(&r->sync, "opening the run directory", 0);
    rc = dp_report_open(&r->rep, r->rank == 0 ? cfg->out : NULL, cfg->progress, cfg->quiet || r->rank != 0);
    if (rc == DP_OK) rc = check_out_space(r);
    rc = dp_sync_all_ok(&r->sync, rc, "opening the run directory");
    if (rc != DP_OK) return rc;
    r->st.loss_scale = cfg->loss_scale;
    r->saved_step = -1;
    if (cfg->resume) {
        dp_sync_phase(&r->sync, "loading the checkpoint", 0);
        rc = dp_run_load(r);
        if (rc != DP_OK) return rc;
        if (!cfg->quiet && r->rank == 0)
            fprintf(stderr, "resumed %s at epoch %u, step %lld\n", r->ckpt, r->st.epoch + 1, (long long)r->st.step);
    } else {
        /* replicas start from rank 0's parameters */
        rc = dp_sync_bcast(&r->sync, r->m->params.data, r->m->params.n * sizeof(float));
        if (rc == DP_OK) rc = dp_sync_bcast(&r->sync, r->m->params.buffers, r->m->params.nbuf * sizeof(float));
        if (rc != DP_OK) return rc;
    }
    r->first_step = (long)r->st.step;
    char codec[64];
    dp_train_codec_name(cfg, codec, sizeof codec);
    if (!cfg->quiet && r->rank == 0)
        fprintf(stderr,
                "dptrain train: %s, %zu parameters, %ld train / %ld test images, %d rank(s) x batch %d (global %d), "
                "%s lr %g, %d bucket(s), allreduce %s%s, codec %s%s\n",
                r->m->name, r->m->params.n, r->train.split_total, r->test.split_total, r->size, cfg->batch,
                cfg->batch * r->size * cfg->accumulate, dp_opt_kind_name(cfg->opt.kind), cfg->lr, r->sync.nb,
                cfg->allreduce == DP_ALLREDUCE_MPI ? "mpi" : "ring", r->sync.overlap ? " overlapped" : "",
                codec, cfg->codec.wire_zstd_level ? " + zstd" : "");
    return DP_OK;
}

static void teardown(run *r)
{
    dp_report_close(&r->rep);
    dp_ctx_free(&r->ctx);
    dp_optimizer_free(&r->opt);
    dp_sync_free(&r->sync);
    dp_sampler_free(&r->sampler);
    dp_model_free(r->m);
    dp_image_set_free(&r->train);
    dp_image_set_free(&r->test);
    free(r->x);
    free(r->y);
}

static void stopped(run *r, dp_train_result *res)
{
    dp_report_end_bar(&r->rep);
    if (!r->cfg->quiet && r->rank == 0)
        fprintf(stderr, "stopped after step %lld: checkpoint %s\n", (long long)r->st.step, r->ckpt);
    res->stopped_early = 1;
}

static dp_status end_epoch(run *r, dp_train_result *res, double t_ep, double t_start, long seen0)
{
    dp_report_end_bar(&r->rep);
    double test_loss = 0, test_acc = 0;
    dp_status rc = evaluate(r, &test_loss, &test_acc);
    if (rc != DP_OK) return rc;
    res->train_loss = r->st.ep_seen ? r->st.ep_loss_sum / (double)r->st.ep_seen : 0;
    res->train_acc = r->st.ep_seen ? (double)r->st.ep_correct / (double)r->st.ep_seen : 0;
    res->test_loss = test_loss;
    res->test_acc = test_acc;
    res->epochs_done = (int)r->st.epoch + 1;
    double sps = (double)(r->st.ep_seen - seen0) / (dp_now() - t_ep);
    if (!r->cfg->quiet && r->rank == 0)
        fprintf(stderr, "epoch %u/%d: train loss %.4f acc %.4f | test loss %.4f acc %.4f | %.0f samples/s\n",
                r->st.epoch + 1, r->cfg->epochs, res->train_loss, res->train_acc, test_loss, test_acc, sps);
    dp_report_json(&r->rep,
                   "{\"kind\":\"epoch\",\"epoch\":%u,\"step\":%lld,\"train_loss\":%.6f,\"train_acc\":%.6f,"
                   "\"test_loss\":%.6f,\"test_acc\":%.6f,\"lr\":%.6g,\"samples_per_s\":%.1f,\"ranks\":%d,"
                   "\"wall_s\":%.3f}",
                   r->st.epoch + 1, (long long)r->st.step, res->train_loss, res->train_acc, test_loss, test_acc,
                   dp_schedule_lr(&r->sched, (long)r->st.step - 1), sps, r->size, dp_now() - t_start);
    return DP_OK;
}

static dp_status run_epochs(run *r, dp_train_result *res)
{
    const dp_train_config *cfg = r->cfg;
    double t_start = dp_now(), stats[5], win[3] = {0, 0, 0};
    long k = cfg->accumulate;
    for (; (int)r->st.epoch < cfg->epochs; r->st.epoch++) {
        r->m->progress = (float)r->st.epoch / (float)cfg->epochs; /* drop-path ramp, as the reference */
        /* The permutation is a function of the epoch-start stream state. */
        dp_rng epoch_start = r->shuffle;
        dp_sampler_shuffle(&r->sampler, &r->shuffle);
        dp_rng after = r->shuffle;
        r->shuffle = epoch_start;
        if (r->st.micro_in_epoch == 0) r->st.ep_loss_sum = 0, r->st.ep_correct = r->st.ep_seen = 0;
        double t_ep = dp_now();
        long seen0 = (long)r->st.ep_seen, micro0 = (long)r->st.micro_in_epoch;
        long steps = r->sampler.steps;
        int stop_at_end = 0; /* agreed by every rank: from the statistics or --stop-after */
        while (r->st.micro_in_epoch < steps) {
            long m0 = r->st.micro_in_epoch, m1 = m0 + k < steps ? m0 + k : steps;
            double t0 = dp_now();
            dp_status rc = opt_step(r, m0, m1, stats);
            if (rc != DP_OK) return rc;
            r->st.train_time += dp_now() - t0;
            r->st.step++;
            r->st.micro_in_epoch = m1;
            r->st.ep_loss_sum += stats[0];
            r->st.ep_correct += (int64_t)stats[1];
            r->st.ep_seen += (int64_t)stats[2];
            double now = dp_now(), sps = (double)((long)r->st.ep_seen - seen0) / (now - t_ep + 1e-9);
            double ep_loss = r->st.ep_loss_sum / (double)(r->st.ep_seen ? r->st.ep_seen : 1),
                   ep_acc = (double)r->st.ep_correct / (double)(r->st.ep_seen ? r->st.ep_seen : 1);
            double eta = (double)(steps - m1) * (now - t_ep) / (double)(m1 - micro0);
            dp_report_progress(&r->rep, now, (int)r->st.epoch + 1, cfg->epochs, m1, steps, ep_loss, ep_acc, sps, eta);
            for (int i = 0; i < 3; i++) win[i] += stats[i];
            if (r->st.step % LOG_EVERY == 0 && win[2] > 0) {
                /* the mean over the last LOG_EVERY steps, so curves show the trend, not an epoch average */
                dp_report_json(&r->rep,
                               "{\"kind\":\"step\",\"epoch\":%u,\"step\":%lld,\"loss\":%.6f,\"acc\":%.6f,\"lr\":%.6g,"
                               "\"samples_per_s\":%.1f,\"comm_wait_s\":%.4f}",
                               r->st.epoch + 1, (long long)r->st.step, win[0] / win[2], win[1] / win[2],
                               dp_schedule_lr(&r->sched, (long)r->st.step - 1), sps, r->sync.comm_wait_s);
                win[0] = win[1] = win[2] = 0;
            }
            if (cfg->check_replicas && r->st.step % cfg->check_replicas == 0 &&
                (rc = dp_sync_check_replicas(&r->sync, &r->m->params, (long)r->st.step)) != DP_OK)
                return rc;
            /* stats[3] counts ranks asked to stop: all ranks see the same sum */
            int stop = stats[3] > 0 || (cfg->stop_after && r->st.step >= cfg->stop_after);
            int periodic = cfg->checkpoint_every && r->st.step % cfg->checkpoint_every == 0;
            if (r->st.micro_in_epoch < steps) {
                if ((stop || periodic) && (rc = dp_run_save(r)) != DP_OK) return rc;
                if (stop) {
                    stopped(r, res);
                    return DP_OK;
                }
            } else {
                stop_at_end = stop; /* finish the epoch's bookkeeping, then stop below */
            }
        }
        dp_status rc = end_epoch(r, res, t_ep, t_start, seen0);
        if (rc != DP_OK) return rc;
        /* Epoch done: the next epoch starts from the stream state after this permutation. */
        r->shuffle = after;
        r->st.micro_in_epoch = 0;
        r->st.epoch++;
        rc = dp_run_save(r);
        r->st.epoch--;
        if (rc != DP_OK) return rc;
        if (stop_at_end && (int)r->st.epoch + 1 < cfg->epochs) {
            r->st.epoch++;
            stopped(r, res);
            return DP_OK;
        }
    }
    return DP_OK;
}

dp_status dp_train_run(const dp_train_config *cfg, MPI_Comm comm, dp_train_result *res)
{
    memset(res, 0, sizeof *res);
    dp_status rc = dp_train_config_check(cfg);
    if (rc != DP_OK) return rc;
    run r;
    memset(&r, 0, sizeof r);
    r.cfg = cfg;
    r.size = 1;
    stop_requested = 0;
    double t0 = dp_now();
    rc = setup(&r, comm);
    if (rc == DP_OK) rc = run_epochs(&r, res);
    res->steps = (long)r.st.step;
    res->ranks = r.size;
    res->wall_s = dp_now() - t0;
    res->comm_wait_s = r.sync.comm_wait_s;
    res->skipped_steps = (long)r.st.skipped;
    res->loss_scale = (float)r.st.loss_scale;
    if (r.m) res->params_hash = dp_params_hash(&r.m->params);
    long session_steps = (long)r.st.step - r.first_step;
    if (session_steps > 0) {
        double wire, raw;
        dp_sync_wire_bytes(&r.sync, &wire, &raw);
        res->wire_bytes_per_step = wire / (double)session_steps;
        res->raw_bytes_per_step = raw / (double)session_steps;
    }
    if (r.st.train_time > 0 && r.sampler.steps) {
        /* samples (all ranks) over the time spent inside training steps, resumed parts included */
        long spe = r.opt_steps_per_epoch, epochs = (long)r.st.step / spe, rest = (long)r.st.step % spe;
        double per_epoch = (double)r.train.split_total;
        double samples = (double)epochs * per_epoch + (double)rest * cfg->batch * cfg->accumulate * r.size;
        res->train_samples_per_s = samples / r.st.train_time;
    }
    teardown(&r);
    return rc;
}
