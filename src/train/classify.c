/* Image classification as a task of the one loop (dptrain/task.h):
 * `dptrain train`.
 *
 * A step, on every rank: for each of `accumulate` micro-batches assemble this
 * rank's batch (uint8 -> normalised float through a lookup table), forward,
 * cross-entropy, backward into the flat gradient buffer with the loss weighted
 * by this rank's share of the global batch; on the last micro-batch the
 * buckets are allreduced while backward runs. The update clips and steps the
 * optimizer on the flat parameters. Nothing in the step allocates once the
 * arena has grown on the first step. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/data.h"
#include "dptrain/fault.h"
#include "dptrain/image_task.h"
#include "dptrain/nas.h"
#include "dptrain/netdesc.h"
#include "dptrain/ops.h"
#include "dptrain/safetensors.h"
#include "dptrain/task.h"
#include "dptrain/train.h"

/* A rank's streams: the shuffling stream at the start of the current epoch
 * (the permutation is regenerated from it) and the dropout stream. */
typedef struct ck_rng {
    dp_rng epoch_shuffle, dropout;
} ck_rng;

typedef struct classify {
    const dp_train_config *cfg;
    dp_model *m;
    dp_image_set train, test;
    dp_sampler sampler;
    dp_optimizer opt;
    dp_schedule sched;
    dp_ctx ctx;
    dp_image_batch b;
    float *aug;        /* --augment: one image's scratch, then the padding value of each channel */
    long opt_steps_per_epoch;
    dp_rng shuffle;    /* state at the start of the current epoch */
    dp_rng after;      /* after this epoch's permutation: the next epoch's start */
    ck_rng streams;    /* a checkpoint's copy of the streams */
    int64_t opt_t;     /* a checkpoint's optimizer step count */
    int epochs_done;   /* last epoch's figures, for dp_train_result */
    double train_loss, train_acc, test_loss, test_acc;
    char config_text[DP_CONFIG_TEXT_CAP];
    dp_safetensors init; /* --init: the file, read at build, copied into the parameters at load */
} classify;

/* A description read from a file joins the configuration text as its canonical JSON, so that ranks and
 * resumes compare the network, not the path, and a checkpoint alone rebuilds it. A shipped name is its
 * own record (model=NAME), as in checkpoints written before descriptions existed. */
static dp_status add_description(classify *c)
{
    if (dp_netdesc_shipped(c->cfg->model)) return DP_OK;
    size_t len = strlen(c->config_text), cap = sizeof c->config_text;
    int n = snprintf(c->config_text + len, cap - len, "model_json=%s\n", c->m->desc);
    if (n < 0 || (size_t)n >= cap - len)
        return dp_errorf(DP_ERR_ARG, "%s: the description does not fit the configuration text (%d bytes)",
                         c->cfg->model, DP_CONFIG_TEXT_CAP);
    return DP_OK;
}

/* --model (a description), or --arch: the genotype's network, whose content joins the
 * configuration text so that ranks and resumes compare the cell, not the path. */
static dp_status build_model(classify *c, const dp_model_shape *shape, const dp_genotype *g)
{
    const dp_train_config *cfg = c->cfg;
    dp_status rc;
    if (!cfg->arch[0]) {
        rc = dp_model_build(cfg->model, shape, &c->m);
        return rc == DP_OK ? add_description(c) : rc;
    }
    rc = dp_darts_net_build(g, cfg->layers, cfg->channels, cfg->drop_path, shape, &c->m);
    if (rc != DP_OK) return rc;
    char text[DP_GENOTYPE_TEXT_MAX];
    size_t len = strlen(c->config_text), cap = sizeof c->config_text;
    int tl = dp_genotype_format(g, text, sizeof text);
    int n = snprintf(c->config_text + len, cap - len, "genotype=%s\n", text);
    if (tl < 0 || (size_t)tl >= sizeof text || n < 0 || (size_t)n >= cap - len)
        return dp_errorf(DP_ERR_NOMEM, "%s: the genotype does not fit the configuration text", cfg->arch);
    return DP_OK;
}

/* --init's refusal, with the flag that would skip an extra tensor. */
static dp_status init_error(const classify *c, dp_status rc)
{
    char why[1024];
    snprintf(why, sizeof why, "%s", dp_errmsg());
    return dp_errorf(rc, "--init %s%s", why,
                     !c->cfg->init_partial && strstr(why, "is not a parameter or buffer")
                         ? " (--init-partial skips such tensors)" : "");
}

/* --init: the file is read and checked against the model on every rank at build
 * time, before the data loads, so a rank that cannot read it fails the build; its
 * content hash joins the configuration text: ranks must hold the same bytes, and
 * a resume must name a file of the same content. */
static dp_status read_init(classify *c)
{
    const dp_train_config *cfg = c->cfg;
    if (!cfg->init[0]) return DP_OK;
    dp_status rc = dp_safetensors_read(cfg->init, &c->init);
    if (rc == DP_OK) rc = dp_safetensors_check_params(&c->init, &c->m->params, cfg->init_partial, NULL, 0);
    if (rc != DP_OK) return init_error(c, rc);
    size_t len = strlen(c->config_text), cap = sizeof c->config_text;
    int n = snprintf(c->config_text + len, cap - len, "init=%016llx\n", (unsigned long long)c->init.hash);
    if (n < 0 || (size_t)n >= cap - len)
        return dp_errorf(DP_ERR_NOMEM, "%s: the --init hash does not fit the configuration text", cfg->init);
    return DP_OK;
}

/* After the parameters are initialised: the file's tensors replace them (rank 0's are broadcast next). */
static dp_status apply_init(classify *c, const dp_driver *d)
{
    const dp_train_config *cfg = c->cfg;
    if (!cfg->init[0]) return DP_OK;
    char skipped[1024];
    dp_status rc = dp_safetensors_load_params(&c->init, &c->m->params, cfg->init_partial, skipped, sizeof skipped);
    if (rc != DP_OK) return init_error(c, rc);
    if (!cfg->run.quiet && d->rank == 0) {
        if (skipped[0]) fprintf(stderr, "init: %s: skipped tensors the model does not have: %s\n", cfg->init, skipped);
        fprintf(stderr, "init: %s: %d tensors loaded (params_xxh3=%016llx)\n", cfg->init,
                c->m->params.count, (unsigned long long)dp_params_hash(&c->m->params));
    }
    dp_safetensors_free(&c->init); /* the tensors live in the parameters now */
    return DP_OK;
}

static dp_status build(void *t, dp_driver *d, dp_task_info *info)
{
    classify *c = t;
    const dp_train_config *cfg = c->cfg;
    (void)d;
    dp_train_config_format(cfg, c->config_text, sizeof c->config_text);
    dp_model_shape shape = {0, 0, 0, 0};
    uint64_t manifest_hash = 0;
    dp_genotype g; /* first: a bad --arch is reported whatever the data */
    dp_status rc = cfg->arch[0] ? dp_genotype_load(cfg->arch, &g) : DP_OK;
    if (rc == DP_OK) rc = dp_image_shape(cfg->run.data, &shape, &manifest_hash);
    if (rc == DP_OK) rc = build_model(c, &shape, &g);
    if (rc == DP_OK) rc = read_init(c);
    info->sync = dp_run_sync_opts(&cfg->run);
    info->params = c->m ? &c->m->params : NULL;
    info->resume_key = dp_train_config_resume_key;
    size_t len = strlen(c->config_text);
    /* the input shape lets a checkpoint alone rebuild its model (dp_trained_load) */
    len += (size_t)snprintf(c->config_text + len, sizeof c->config_text - len, "manifest=%016llx\nshape=%d,%d,%d,%d\n",
                            (unsigned long long)manifest_hash, shape.c, shape.h, shape.w, shape.classes);
    /* and its statistics let eval and predict normalise other data as this training did */
    if (rc == DP_OK && len < sizeof c->config_text)
        dp_image_norm_format(cfg->run.data, c->config_text + len, sizeof c->config_text - len);
    snprintf(info->config_text, info->config_cap, "%s", c->config_text);
    return rc;
}

static dp_status load_data(classify *c, dp_driver *d)
{
    const dp_train_config *cfg = c->cfg;
    dp_status rc = dp_image_train_load(&cfg->run, &d->sync, &c->train);
    if (rc != DP_OK) return rc;
    rc = dp_image_set_load(cfg->run.data, "test", d->rank, d->size, cfg->test_limit, &c->test);
    if (rc != DP_OK) return rc;
    if (c->train.split_total == 0) return dp_errorf(DP_ERR_ARG, "%s: the train split is empty", cfg->run.data);
    if (c->test.n && (c->test.c != c->train.c || c->test.h != c->train.h || c->test.w != c->train.w))
        return dp_errorf(DP_ERR_FORMAT, "%s: train and test images differ in shape", cfg->run.data);
    if (cfg->augment && c->train.h == 1 && c->train.w == 1)
        return dp_errorf(DP_ERR_ARG, "--augment: %s holds vectors (1x1 images of %d features): crop and flip are for "
                         "images", cfg->run.data, c->train.c);
    size_t img = (size_t)c->train.c * c->train.h * c->train.w;
    if (cfg->augment && !(c->aug = malloc((img + (size_t)c->train.c) * sizeof(float))))
        return dp_errorf(DP_ERR_NOMEM, "--augment: out of memory");
    rc = dp_image_batch_init(&c->b, &c->train, &cfg->run);
    /* torchvision pads the pixels with 0 before Normalize: the padding is pixel 0 normalised, per channel
     * (u8 images: the lookup table holds 256 values per channel) */
    for (int ch = 0; cfg->augment && ch < c->train.c; ch++) c->aug[img + (size_t)ch] = c->b.lut[(size_t)ch * 256];
    return rc;
}

static dp_status load(void *t, dp_driver *d)
{
    classify *c = t;
    const dp_train_config *cfg = c->cfg;
    dp_status rc = dp_sync_all_ok(&d->sync, load_data(c, d), "loading the data");
    dp_sampler_kind kind = (dp_sampler_kind)cfg->run.sampler;
    if (rc == DP_OK) rc = dp_sampler_make(&c->sampler, kind, &d->sync, cfg->run.batch, c->train.n);
    if (rc != DP_OK) return rc;
    c->opt_steps_per_epoch = (c->sampler.steps + cfg->accumulate - 1) / cfg->accumulate;

    dp_rng init;
    dp_rng_seed(&init, cfg->run.seed, DP_STREAM_INIT, 0);
    dp_params_init(&c->m->params, &init);
    rc = apply_init(c, d);
    if (rc != DP_OK) return rc;
    dp_opt_config oc = cfg->opt;
    /* one rank sends nothing, so no top-k runs: --dgc's momentum goes back to the optimizer */
    if (d->size == 1 && cfg->run.codec.dgc_momentum > 0) oc.momentum = cfg->run.codec.dgc_momentum;
    rc = dp_optimizer_init(&c->opt, &oc, c->m->params.n);
    if (rc != DP_OK) return rc;
    d->ckpt_floats = (double)c->opt.state_n;
    c->sched = (dp_schedule){.kind = cfg->schedule, .base_lr = cfg->lr, .min_lr = cfg->min_lr,
                             .gamma = cfg->step_gamma, .step_size = cfg->step_size, .warmup = cfg->warmup,
                             .total = (long)cfg->run.epochs * c->opt_steps_per_epoch, .power = cfg->lr_power};
    rc = dp_schedule_check(&c->sched);
    if (rc != DP_OK) return rc;
    dp_ctx_init(&c->ctx);
    dp_rng_seed(&c->ctx.dropout_rng, cfg->run.seed, DP_STREAM_DROPOUT, (uint32_t)d->rank);
    dp_rng_seed(&c->shuffle, cfg->run.seed, DP_STREAM_SHUFFLE,
                cfg->run.sampler == DP_SAMPLER_GLOBAL ? 0 : (uint32_t)d->rank);
    return DP_OK;
}

static dp_status start(void *t, dp_driver *d)
{
    classify *c = t;
    const dp_train_config *cfg = c->cfg;
    char codec[64], autod[768];
    dp_compress_name(&cfg->run.codec, codec, sizeof codec);
    dp_sync_auto_desc(&d->sync, autod, sizeof autod);
    if (!cfg->run.quiet && d->rank == 0)
        fprintf(stderr,
                "dptrain train: %s, %zu parameters, %ld train / %ld test images, %d rank(s) x batch %d (global %d), "
                "%s lr %g, %d bucket(s), allreduce %s%s%s, codec %s%s\n",
                c->m->name, c->m->params.n, c->train.split_total, c->test.split_total, d->size, cfg->run.batch,
                cfg->run.batch * d->size * cfg->accumulate, dp_opt_kind_name(cfg->opt.kind), cfg->lr, d->sync.nb,
                dp_allreduce_algo_name(cfg->run.allreduce), autod, d->sync.overlap ? " overlapped" : "",
                codec, cfg->run.codec.wire_zstd_level ? " + zstd" : "");
    return DP_OK;
}

/* The permutation is a function of the epoch-start stream state. */
static long epoch_begin(void *t, dp_driver *d)
{
    classify *c = t;
    c->m->progress = (float)d->st.epoch / (float)c->cfg->run.epochs; /* drop-path ramp, as the reference */
    c->after = c->shuffle;
    dp_sampler_shuffle(&c->sampler, &c->after);
    return c->sampler.steps;
}

/* The reference's Cutout on the normalised batch: a side x side square at a
 * uniform centre (clipped at the border) set to 0, every channel. The draws
 * come from the dropout stream, which checkpoints carry, so resume is exact. */
static void cutout(classify *c, long bs)
{
    int ch_n = c->train.c, h = c->train.h, w = c->train.w, half = c->cfg->cutout / 2;
    for (long i = 0; i < bs; i++) {
        int cy = (int)dp_rng_below(&c->ctx.dropout_rng, (uint64_t)h);
        int cx = (int)dp_rng_below(&c->ctx.dropout_rng, (uint64_t)w);
        int y1 = cy - half < 0 ? 0 : cy - half, y2 = cy + half > h ? h : cy + half;
        int x1 = cx - half < 0 ? 0 : cx - half, x2 = cx + half > w ? w : cx + half;
        for (int ch = 0; ch < ch_n; ch++)
            for (int y = y1; y < y2; y++)
                memset(c->b.x + (((size_t)i * ch_n + ch) * h + y) * w + x1, 0, (size_t)(x2 - x1) * sizeof(float));
    }
}

/* One micro-batch: forward, loss, backward with the loss weighted by this
 * rank's share of the global batch. sync: allreduce the buckets. */
static dp_status micro_step(classify *c, dp_driver *d, long micro, long global_bs, int sync, double *stats)
{
    dp_ctx *x = &c->ctx;
    long first, bs = dp_sampler_local(&c->sampler, micro, &first);
    dp_ctx_reset(x);
    x->training = 1;
    x->grad_enabled = 1;
    if (bs > 0) {
        dp_tensor *in = dp_image_batch_get(&c->b, x, &c->train, c->sampler.perm, first, bs);
        if (c->cfg->augment) {
            size_t img = (size_t)c->train.c * c->train.h * c->train.w;
            dp_image_crop_flip(c->b.x, bs, c->train.c, c->train.h, c->train.w, c->cfg->crop_pad, c->aug + img,
                               &c->ctx.dropout_rng, c->aug);
        }
        if (c->cfg->cutout) cutout(c, bs);
        if (dp_fault_point("forward") == DP_FAULT_NAN) c->b.x[0] = NAN; /* a damaged input pixel */
        long correct = 0;
        dp_tensor *loss = dp_cross_entropy(x, c->m->forward(c->m, x, in), c->b.y, &correct);
        if (!loss) return x->status ? x->status : dp_errorf(DP_ERR_SHAPE, "forward failed");
        double l = loss->data[0];
        if (!isfinite(l)) stats[DP_STAT_NONFINITE] += 1; /* every rank learns it from the statistics allreduce */
        stats[DP_STAT_LOSS] += isfinite(l) ? l * (double)bs : 0;
        stats[DP_STAT_CORRECT] += (double)correct;
        stats[DP_STAT_SEEN] += (double)bs;
        /* SUM over ranks of (bs / global_bs) * mean-loss gradient = the global-batch mean
         * (weighting here saves the allreduce a pass dividing by P) */
        float w = (float)((double)bs / (double)global_bs * d->st.loss_scale);
        if (sync) dp_sync_begin(&d->sync, x);
        dp_status rc = dp_backward_scaled(x, loss, w);
        if (rc != DP_OK) return rc;
    }
    if (sync) dp_fault_point("allreduce"); /* with overlap, the buckets are on the wire now */
    return sync ? dp_sync_end(&d->sync, x) : DP_OK;
}

static dp_status step(void *t, dp_driver *d, long pos, long *next, double *stats)
{
    classify *c = t;
    const dp_train_config *cfg = c->cfg;
    long m0 = pos, m1 = m0 + cfg->accumulate < *next ? m0 + cfg->accumulate : *next;
    long global_bs = 0, first;
    /* local SGD: this rank's own mean gradient (its weights sum to 1 over its micro-batches) */
    for (long m = m0; m < m1; m++)
        global_bs += d->local_sgd ? dp_sampler_local(&c->sampler, m, &first) : dp_sampler_global(&c->sampler, m);
    if (global_bs == 0) global_bs = 1; /* a rank with no images this step: nothing is weighted */
    dp_params_zero_grad(&c->m->params);
    d->sync.codec_on = dp_compress_on(&cfg->run.codec, d->st.step);
    d->sync.step = (uint64_t)d->st.step;
    for (long m = m0; m < m1; m++) {
        dp_status rc = micro_step(c, d, m, global_bs, m == m1 - 1 && !d->local_sgd, stats);
        /* a codec rejected a NaN/Inf: every rank got this from the same ring */
        if (rc == DP_ERR_NONFINITE && m == m1 - 1) {
            snprintf(d->nonfinite, sizeof d->nonfinite,
                     "the allreduce met a non-finite or out-of-range gradient (%s)", dp_errmsg());
            rc = DP_OK;
        }
        if (rc != DP_OK) return rc;
    }
    *next = m1;
    return DP_OK;
}

static dp_status update(void *t, dp_driver *d)
{
    classify *c = t;
    const dp_train_config *cfg = c->cfg;
    float *g = c->m->params.grad;
    if (cfg->clip > 0) dp_clip_grad_norm(g, c->m->params.n, cfg->clip);
    dp_optimizer_step(&c->opt, c->m->params.data, g, dp_schedule_lr(&c->sched, (long)d->st.step));
    if (d->local_sgd) {
        if (!d->sync_now) return DP_OK; /* no collective at all between syncs, not even the buffers' */
        /* The momentum (Adam's moments) is averaged with the parameters: after a sync every rank holds the
         * same state, so a checkpoint (rank 0's optimizer state) resumes every rank exactly, and each window
         * starts from the mean direction. Lin et al. 2020 keep it local; that would need per-rank state in
         * the checkpoint and saves one vector per H steps. */
        dp_status rc = dp_sync_average(&d->sync, c->m->params.data, c->m->params.n);
        if (rc == DP_OK) rc = dp_sync_average(&d->sync, c->opt.state, c->opt.state_n);
        if (rc != DP_OK) return rc;
    }
    /* Batch-norm running statistics follow each rank's own batches: keep rank
     * 0's everywhere (DDP's broadcast_buffers), so that replicas, evaluation
     * and checkpoints (which hold rank 0's) agree. */
    if (d->size > 1 && c->m->params.nbuf)
        return dp_sync_bcast(&d->sync, c->m->params.buffers, c->m->params.nbuf * sizeof(float));
    return DP_OK;
}

static double lr(void *t, long step) { return dp_schedule_lr(&((classify *)t)->sched, step); }

static dp_status epoch_end(void *t, dp_driver *d, const dp_epoch *e)
{
    classify *c = t;
    dp_sync_phase(&d->sync, "evaluation", (long)d->st.step);
    dp_status rc = dp_image_evaluate(&c->b, &c->ctx, c->m, &c->test, 0, c->test.n, c->cfg->run.eval_batch, &d->sync,
                                     &c->test_loss, &c->test_acc);
    if (rc != DP_OK) return rc;
    c->train_loss = e->seen ? e->loss / e->seen : 0;
    c->train_acc = e->seen ? e->correct / e->seen : 0;
    c->epochs_done = (int)d->st.epoch + 1;
    double now = dp_now(), sps = e->seen_now / (now - e->began);
    if (!c->cfg->run.quiet && d->rank == 0)
        fprintf(stderr, "epoch %u/%d: train loss %.4f acc %.4f | test loss %.4f acc %.4f | %.0f samples/s\n",
                d->st.epoch + 1, c->cfg->run.epochs, c->train_loss, c->train_acc, c->test_loss, c->test_acc, sps);
    dp_report_json(&d->rep,
                   "{\"kind\":\"epoch\",\"epoch\":%u,\"step\":%lld,\"train_loss\":%.6f,\"train_acc\":%.6f,"
                   "\"test_loss\":%.6f,\"test_acc\":%.6f,\"lr\":%.6g,\"samples_per_s\":%.1f,\"ranks\":%d,"
                   "\"wall_s\":%.3f}",
                   d->st.epoch + 1, (long long)d->st.step, c->train_loss, c->train_acc, c->test_loss, c->test_acc,
                   dp_schedule_lr(&c->sched, (long)d->st.step - 1), sps, d->size, now - d->t_start);
    c->shuffle = c->after; /* the next epoch starts from the stream state after this permutation */
    return DP_OK;
}

/* ------------------------------------------------------------ checkpoints */

static int parts(void *t, dp_driver *d, dp_ck_part *p)
{
    classify *c = t;
    (void)d;
    c->streams = (ck_rng){c->shuffle, c->ctx.dropout_rng};
    c->opt_t = c->opt.t;
    p[0] = (dp_ck_part){DP_CK_OPTIM, "optimizer", c->opt.state, c->opt.state_n * sizeof(float), 0};
    p[1] = (dp_ck_part){DP_CK_RNG, "streams", &c->streams, sizeof c->streams, 1};
    p[2] = (dp_ck_part){DP_CK_TASK, "counters", &c->opt_t, sizeof c->opt_t, 0};
    return 3;
}

static dp_status restored(void *t, dp_driver *d)
{
    classify *c = t;
    if (c->opt_t < 0 || c->opt_t > d->st.step) /* one optimizer step per step at most */
        return dp_errorf(DP_ERR_FORMAT, "%s: counters: optimizer step count %lld out of range for this run (must be "
                         "in [0, step %lld])", d->ckpt, (long long)c->opt_t, (long long)d->st.step);
    c->opt.t = c->opt_t;
    c->shuffle = c->streams.epoch_shuffle;
    c->ctx.dropout_rng = c->streams.dropout;
    return DP_OK;
}

static void task_free(void *t)
{
    classify *c = t;
    dp_ctx_free(&c->ctx);
    dp_optimizer_free(&c->opt);
    dp_sampler_free(&c->sampler);
    dp_model_free(c->m);
    dp_safetensors_free(&c->init);
    dp_image_set_free(&c->train);
    dp_image_set_free(&c->test);
    dp_image_batch_free(&c->b);
    free(c->aug);
}

static const dp_task_ops classify_ops = {
    .name = "train", .build = build, .load = load, .start = start, .epoch_begin = epoch_begin, .step = step,
    .update = update, .epoch_end = epoch_end, .parts = parts, .restored = restored, .lr = lr,
    .free = task_free, .local_sgd = 1,
};

dp_status dp_train_run(const dp_train_config *cfg, MPI_Comm comm, dp_train_result *res)
{
    memset(res, 0, sizeof *res);
    dp_status rc = dp_train_config_check(cfg);
    if (rc != DP_OK) return rc;
    dp_run_opts o = {.run = cfg->run};
    o.log_every = 50;
    classify c;
    memset(&c, 0, sizeof c);
    c.cfg = cfg;
    dp_driver d;
    double t0 = dp_now();
    rc = dp_drive(&classify_ops, &c, &o, comm, &d);
    res->epochs_done = c.epochs_done;
    res->stopped_early = d.stopped;
    res->steps = (long)d.st.step;
    res->ranks = d.size;
    res->wall_s = dp_now() - t0;
    res->comm_wait_s = d.sync.comm_wait_s;
    res->skipped_steps = (long)d.st.skipped;
    res->loss_scale = (float)d.st.loss_scale;
    res->train_loss = c.train_loss, res->train_acc = c.train_acc;
    res->test_loss = c.test_loss, res->test_acc = c.test_acc;
    if (c.m) {
        res->params_hash = dp_params_hash(&c.m->params);
        res->params = (long)c.m->params.n;
        res->mflops = c.m->flops_per_sample / 1e6;
    }
    long session_steps = (long)d.st.step - d.first_step;
    if (session_steps > 0) {
        double wire, raw;
        dp_sync_wire_bytes(&d.sync, &wire, &raw);
        res->wire_bytes_per_step = wire / (double)session_steps;
        res->raw_bytes_per_step = raw / (double)session_steps;
    }
    if (d.st.train_time > 0 && c.sampler.steps) {
        /* samples (all ranks) over the time spent inside training steps, resumed parts included */
        long spe = c.opt_steps_per_epoch, epochs = (long)d.st.step / spe, rest = (long)d.st.step % spe;
        double samples = (double)epochs * (double)c.train.split_total +
                         (double)rest * cfg->run.batch * cfg->accumulate * d.size;
        res->train_samples_per_s = samples / d.st.train_time;
    }
    dp_drive_free(&d);
    task_free(&c);
    return rc;
}
