/* The training loop for image classifiers (one rank).
 *
 * Per step: assemble the batch (uint8 -> normalised float through a lookup
 * table), forward, cross-entropy, backward into the flat gradient buffer,
 * optional global-norm clipping, optimizer step on the flat parameters.
 * Nothing in the step allocates once the arena has grown on the first step.
 *
 * Reproducibility: the shuffling stream's state at the start of the current
 * epoch is what the checkpoint saves, so a resumed run regenerates the same
 * permutation and skips the steps already taken. */
#include <cblas.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/checkpoint.h"
#include "dptrain/data.h"
#include "dptrain/ops.h"
#include "dptrain/train.h"
#include "train/report.h"

/* Fashion-MNIST's pixel statistics on [0,1] (the usual normalisation). */
#define PIXEL_MEAN 0.2860f
#define PIXEL_STD 0.3530f
#define LOG_EVERY 50
#define CK_STATE_VERSION 1u

static volatile sig_atomic_t stop_requested;

void dp_train_request_stop(void) { stop_requested = 1; }

typedef struct ck_state {
    uint32_t version, epoch;
    int64_t step, step_in_epoch;
    dp_rng epoch_shuffle, dropout;
    double ep_loss_sum, train_time;
    int64_t ep_correct, ep_seen, opt_t;
    uint64_t n_params, n_buffers, n_opt, layout;
} ck_state;

typedef struct run {
    const dp_train_config *cfg;
    dp_model *m;
    dp_image_set train, test;
    dp_optimizer opt;
    dp_schedule sched;
    dp_ctx ctx;
    dp_report rep;
    float lut[256];
    float *x;         /* [batch, c*h*w] */
    int32_t *y, *perm;
    long feat, steps_per_epoch;
    dp_rng shuffle;   /* state at the start of the current epoch */
    ck_state st;
    char ckpt[1024];
} run;

static dp_status load_data(run *r)
{
    const dp_train_config *cfg = r->cfg;
    dp_status rc = dp_image_set_load(cfg->data, "train", 0, 1, cfg->limit, &r->train);
    if (rc != DP_OK) return rc;
    rc = dp_image_set_load(cfg->data, "test", 0, 1, cfg->test_limit, &r->test);
    if (rc != DP_OK) return rc;
    if (r->train.n == 0) return dp_errorf(DP_ERR_ARG, "%s: the train split is empty", cfg->data);
    if (r->test.c != r->train.c || r->test.h != r->train.h || r->test.w != r->train.w)
        return dp_errorf(DP_ERR_FORMAT, "%s: train and test images differ in shape", cfg->data);
    for (int v = 0; v < 256; v++) r->lut[v] = ((float)v / 255.0f - PIXEL_MEAN) / PIXEL_STD;
    r->feat = (long)r->train.c * r->train.h * r->train.w;
    r->steps_per_epoch = (r->train.n + cfg->batch - 1) / cfg->batch; /* last batch may be short */
    long bmax = cfg->batch > cfg->eval_batch ? cfg->batch : cfg->eval_batch;
    r->x = aligned_alloc(64, ((size_t)bmax * (size_t)r->feat * sizeof(float) + 63) / 64 * 64);
    r->y = malloc((size_t)bmax * sizeof *r->y);
    r->perm = malloc((size_t)r->train.n * sizeof *r->perm);
    if (!r->x || !r->y || !r->perm) return dp_errorf(DP_ERR_NOMEM, "batch buffers: out of memory");
    return DP_OK;
}

static void fill_batch(run *r, const dp_image_set *s, const int32_t *idx, long first, long bs)
{
    for (long i = 0; i < bs; i++) {
        long k = idx ? idx[first + i] : first + i;
        const uint8_t *px = s->pixels + (size_t)k * (size_t)r->feat;
        float *dst = r->x + (size_t)i * (size_t)r->feat;
        for (long j = 0; j < r->feat; j++) dst[j] = r->lut[px[j]];
        r->y[i] = s->labels[k];
    }
}

static dp_tensor *batch_tensor(run *r, long bs)
{
    int shape[4] = {(int)bs, r->train.c, r->train.h, r->train.w};
    return dp_tensor_wrap(&r->ctx, r->x, 4, shape);
}

/* ---- checkpoints ---- */

static dp_status save_checkpoint(run *r)
{
    if (!r->cfg->out[0]) return DP_OK;
    char text[4096];
    dp_train_config_format(r->cfg, text, sizeof text);
    r->st.version = CK_STATE_VERSION;
    r->st.epoch_shuffle = r->shuffle;
    r->st.dropout = r->ctx.dropout_rng;
    r->st.opt_t = r->opt.t;
    r->st.n_params = r->m->params.n;
    r->st.n_buffers = r->m->params.nbuf;
    r->st.n_opt = r->opt.state_n;
    r->st.layout = dp_params_layout_hash(&r->m->params);
    dp_ck_section s[] = {
        {DP_CK_CONFIG, text, strlen(text)},
        {DP_CK_STATE, &r->st, sizeof r->st},
        {DP_CK_PARAMS, r->m->params.data, r->m->params.n * sizeof(float)},
        {DP_CK_BUFFERS, r->m->params.buffers, r->m->params.nbuf * sizeof(float)},
        {DP_CK_OPTIM, r->opt.state, r->opt.state_n * sizeof(float)},
    };
    return dp_checkpoint_write(r->ckpt, s, 5);
}

/* The first key whose value differs, ignoring keys a resumed run may change. */
static int config_mismatch(const char *saved, const char *now, char *key, size_t kn)
{
    const char *a = saved, *b = now;
    while (*a && *b) {
        size_t la = strcspn(a, "\n"), lb = strcspn(b, "\n");
        size_t ka = strcspn(a, "=");
        if ((la != lb || memcmp(a, b, la)) && strncmp(a, "epochs=", 7)) {
            snprintf(key, kn, "%.*s", (int)(ka < la ? ka : la), a);
            return 1;
        }
        a += la + (a[la] == '\n');
        b += lb + (b[lb] == '\n');
    }
    if (*a || *b) {
        snprintf(key, kn, "(number of fields)");
        return 1;
    }
    return 0;
}

static dp_status load_checkpoint(run *r)
{
    dp_checkpoint ck;
    dp_status rc = dp_checkpoint_read(r->ckpt, &ck);
    if (rc != DP_OK) return rc;
    const dp_ck_section *cfg = dp_checkpoint_find(&ck, DP_CK_CONFIG), *st = dp_checkpoint_find(&ck, DP_CK_STATE),
                        *pa = dp_checkpoint_find(&ck, DP_CK_PARAMS), *bu = dp_checkpoint_find(&ck, DP_CK_BUFFERS),
                        *op = dp_checkpoint_find(&ck, DP_CK_OPTIM);
    char text[4096], key[64];
    dp_train_config_format(r->cfg, text, sizeof text);
    if (!cfg || !st || !pa || !bu || !op) {
        rc = dp_errorf(DP_ERR_FORMAT, "%s: a section is missing (config, state, params, buffers, optimizer)", r->ckpt);
    } else if (st->size != sizeof(ck_state)) {
        rc = dp_errorf(DP_ERR_FORMAT, "%s: state section has %llu bytes, expected %zu", r->ckpt,
                       (unsigned long long)st->size, sizeof(ck_state));
    } else {
        char *saved = strndup(cfg->data, cfg->size);
        int bad = saved && config_mismatch(saved, text, key, sizeof key);
        free(saved);
        memcpy(&r->st, st->data, sizeof r->st);
        if (bad)
            rc = dp_errorf(DP_ERR_ARG, "%s: --resume with a different configuration: field '%s' differs", r->ckpt, key);
        else if (r->st.version != CK_STATE_VERSION)
            rc = dp_errorf(DP_ERR_FORMAT, "%s: state version %u (this build reads %u)", r->ckpt, r->st.version,
                           CK_STATE_VERSION);
        else if (r->st.layout != dp_params_layout_hash(&r->m->params) || pa->size != r->m->params.n * sizeof(float) ||
                 bu->size != r->m->params.nbuf * sizeof(float) || op->size != r->opt.state_n * sizeof(float))
            rc = dp_errorf(DP_ERR_FORMAT, "%s: parameter layout differs from model '%s' (%zu parameters)", r->ckpt,
                           r->cfg->model, r->m->params.n);
        else if (r->st.step_in_epoch < 0 || r->st.step_in_epoch > r->steps_per_epoch)
            rc = dp_errorf(DP_ERR_FORMAT, "%s: step in epoch %lld out of range", r->ckpt,
                           (long long)r->st.step_in_epoch);
    }
    if (rc == DP_OK) {
        memcpy(r->m->params.data, pa->data, pa->size);
        memcpy(r->m->params.buffers, bu->data, bu->size);
        if (op->size) memcpy(r->opt.state, op->data, op->size);
        r->opt.t = r->st.opt_t;
        r->shuffle = r->st.epoch_shuffle;
        r->ctx.dropout_rng = r->st.dropout;
    }
    dp_checkpoint_free(&ck);
    return rc;
}

/* ---- steps ---- */

static dp_status train_step(run *r, long first, long bs, double *loss_out, long *correct)
{
    dp_ctx *c = &r->ctx;
    dp_ctx_reset(c);
    c->training = 1;
    c->grad_enabled = 1;
    fill_batch(r, &r->train, r->perm, first, bs);
    dp_params_zero_grad(&r->m->params);
    dp_tensor *logits = r->m->forward(r->m, c, batch_tensor(r, bs));
    dp_tensor *loss = dp_cross_entropy(c, logits, r->y, correct);
    if (!loss) return c->status ? c->status : dp_errorf(DP_ERR_SHAPE, "forward failed");
    if (!isfinite(loss->data[0]))
        return dp_errorf(DP_ERR_NONFINITE, "step %lld (epoch %u): loss is %g; lower --lr or add --clip",
                         (long long)r->st.step + 1, r->st.epoch + 1, loss->data[0]);
    *loss_out = loss->data[0];
    dp_status rc = dp_backward(c, loss);
    if (rc != DP_OK) return rc;
    if (r->cfg->clip > 0) dp_clip_grad_norm(r->m->params.grad, r->m->params.n, r->cfg->clip);
    float lr = dp_schedule_lr(&r->sched, (long)r->st.step);
    dp_optimizer_step(&r->opt, r->m->params.data, r->m->params.grad, lr);
    return DP_OK;
}

static dp_status evaluate(run *r, double *loss_out, double *acc_out)
{
    dp_ctx *c = &r->ctx;
    double loss_sum = 0;
    long correct = 0;
    for (long first = 0; first < r->test.n; first += r->cfg->eval_batch) {
        long bs = r->test.n - first < r->cfg->eval_batch ? r->test.n - first : r->cfg->eval_batch;
        dp_ctx_reset(c);
        c->training = 0;
        c->grad_enabled = 0;
        fill_batch(r, &r->test, NULL, first, bs);
        long k = 0;
        dp_tensor *loss = dp_cross_entropy(c, r->m->forward(r->m, c, batch_tensor(r, bs)), r->y, &k);
        if (!loss) return c->status;
        loss_sum += (double)loss->data[0] * (double)bs;
        correct += k;
    }
    c->training = 1;
    c->grad_enabled = 1;
    *loss_out = r->test.n ? loss_sum / (double)r->test.n : 0;
    *acc_out = r->test.n ? (double)correct / (double)r->test.n : 0;
    return DP_OK;
}

static dp_status setup(run *r)
{
    const dp_train_config *cfg = r->cfg;
    openblas_set_num_threads(cfg->threads);
    dp_status rc = load_data(r);
    if (rc != DP_OK) return rc;
    dp_model_shape shape = {r->train.c, r->train.h, r->train.w, r->train.classes};
    rc = dp_model_build(cfg->model, &shape, &r->m);
    if (rc != DP_OK) return rc;
    dp_rng init;
    dp_rng_seed(&init, cfg->seed, DP_STREAM_INIT, 0);
    dp_params_init(&r->m->params, &init);
    rc = dp_optimizer_init(&r->opt, &cfg->opt, r->m->params.n);
    if (rc != DP_OK) return rc;
    r->sched = (dp_schedule){.kind = cfg->schedule, .base_lr = cfg->lr, .min_lr = cfg->min_lr,
                             .gamma = cfg->step_gamma, .step_size = cfg->step_size, .warmup = cfg->warmup,
                             .total = (long)cfg->epochs * r->steps_per_epoch};
    rc = dp_schedule_check(&r->sched);
    if (rc != DP_OK) return rc;
    dp_ctx_init(&r->ctx);
    dp_rng_seed(&r->ctx.dropout_rng, cfg->seed, DP_STREAM_DROPOUT, 0);
    dp_rng_seed(&r->shuffle, cfg->seed, DP_STREAM_SHUFFLE, 0);
    if (cfg->out[0]) snprintf(r->ckpt, sizeof r->ckpt, "%s/checkpoint.dpc", cfg->out);
    rc = dp_report_open(&r->rep, cfg->out, cfg->progress, cfg->quiet);
    if (rc != DP_OK) return rc;
    if (cfg->resume) {
        rc = load_checkpoint(r);
        if (rc != DP_OK) return rc;
        if (!cfg->quiet)
            fprintf(stderr, "resumed %s at epoch %u step %lld\n", r->ckpt, r->st.epoch + 1, (long long)r->st.step);
    }
    if (!cfg->quiet)
        fprintf(stderr, "dptrain train: %s, %zu parameters, %ld train / %ld test images, batch %d, %s lr %g\n",
                cfg->model, r->m->params.n, r->train.n, r->test.n, cfg->batch, dp_opt_kind_name(cfg->opt.kind),
                cfg->lr);
    return DP_OK;
}

static void teardown(run *r)
{
    dp_report_close(&r->rep);
    dp_ctx_free(&r->ctx);
    dp_optimizer_free(&r->opt);
    dp_model_free(r->m);
    dp_image_set_free(&r->train);
    dp_image_set_free(&r->test);
    free(r->x);
    free(r->y);
    free(r->perm);
}

static dp_status run_epochs(run *r, dp_train_result *res)
{
    const dp_train_config *cfg = r->cfg;
    double t_start = dp_now();
    for (; (int)r->st.epoch < cfg->epochs; r->st.epoch++) {
        /* The permutation is a function of the epoch-start stream state. */
        dp_rng epoch_start = r->shuffle;
        for (long i = 0; i < r->train.n; i++) r->perm[i] = (int32_t)i;
        dp_rng_shuffle_i32(&r->shuffle, r->perm, (size_t)r->train.n);
        dp_rng after = r->shuffle;
        r->shuffle = epoch_start;
        if (r->st.step_in_epoch == 0) r->st.ep_loss_sum = 0, r->st.ep_correct = r->st.ep_seen = 0;
        double t_ep = dp_now(), seen0 = (double)r->st.ep_seen;
        while (r->st.step_in_epoch < r->steps_per_epoch) {
            long first = r->st.step_in_epoch * cfg->batch;
            long bs = r->train.n - first < cfg->batch ? r->train.n - first : cfg->batch;
            double loss = 0;
            long correct = 0;
            double t0 = dp_now();
            dp_status rc = train_step(r, first, bs, &loss, &correct);
            if (rc != DP_OK) return rc;
            r->st.train_time += dp_now() - t0;
            r->st.step++;
            r->st.step_in_epoch++;
            r->st.ep_loss_sum += loss * (double)bs;
            r->st.ep_correct += correct;
            r->st.ep_seen += bs;
            double now = dp_now(), sps = ((double)r->st.ep_seen - seen0) / (now - t_ep + 1e-9);
            double ep_loss = r->st.ep_loss_sum / (double)r->st.ep_seen,
                   ep_acc = (double)r->st.ep_correct / (double)r->st.ep_seen;
            double eta = (double)(r->train.n - r->st.ep_seen) / (sps + 1e-9);
            dp_report_progress(&r->rep, now, (int)r->st.epoch + 1, cfg->epochs, r->st.step_in_epoch,
                               r->steps_per_epoch, ep_loss, ep_acc, sps, eta);
            if (r->st.step % LOG_EVERY == 0)
                dp_report_json(&r->rep,
                               "{\"kind\":\"step\",\"epoch\":%u,\"step\":%lld,\"loss\":%.6f,\"acc\":%.6f,\"lr\":%.6g,"
                               "\"samples_per_s\":%.1f}",
                               r->st.epoch + 1, (long long)r->st.step, ep_loss, ep_acc,
                               dp_schedule_lr(&r->sched, (long)r->st.step - 1), sps);
            int stop = stop_requested || (cfg->stop_after && r->st.step >= cfg->stop_after);
            int periodic = cfg->checkpoint_every && r->st.step % cfg->checkpoint_every == 0;
            if ((stop || periodic) && r->st.step_in_epoch < r->steps_per_epoch) {
                if ((rc = save_checkpoint(r)) != DP_OK) return rc;
            }
            if (stop) {
                if (r->st.step_in_epoch == r->steps_per_epoch) break; /* finish the epoch's bookkeeping */
                dp_report_end_bar(&r->rep);
                if (!cfg->quiet) fprintf(stderr, "stopped after step %lld: checkpoint %s\n", (long long)r->st.step, r->ckpt);
                res->stopped_early = 1;
                return DP_OK;
            }
        }
        dp_report_end_bar(&r->rep);
        double test_loss = 0, test_acc = 0;
        dp_status rc = evaluate(r, &test_loss, &test_acc);
        if (rc != DP_OK) return rc;
        res->train_loss = r->st.ep_loss_sum / (double)r->st.ep_seen;
        res->train_acc = (double)r->st.ep_correct / (double)r->st.ep_seen;
        res->test_loss = test_loss;
        res->test_acc = test_acc;
        res->epochs_done = (int)r->st.epoch + 1;
        double sps = (double)r->st.ep_seen / (dp_now() - t_ep);
        if (!cfg->quiet)
            fprintf(stderr, "epoch %u/%d: train loss %.4f acc %.4f | test loss %.4f acc %.4f | %.0f samples/s\n",
                    r->st.epoch + 1, cfg->epochs, res->train_loss, res->train_acc, test_loss, test_acc, sps);
        dp_report_json(&r->rep,
                       "{\"kind\":\"epoch\",\"epoch\":%u,\"step\":%lld,\"train_loss\":%.6f,\"train_acc\":%.6f,"
                       "\"test_loss\":%.6f,\"test_acc\":%.6f,\"lr\":%.6g,\"samples_per_s\":%.1f,\"wall_s\":%.3f}",
                       r->st.epoch + 1, (long long)r->st.step, res->train_loss, res->train_acc, test_loss, test_acc,
                       dp_schedule_lr(&r->sched, (long)r->st.step - 1), sps, dp_now() - t_start);
        /* Epoch done: the next epoch starts from the stream state after this permutation. */
        r->shuffle = after;
        r->st.step_in_epoch = 0;
        r->st.epoch++;
        rc = save_checkpoint(r);
        r->st.epoch--;
        if (rc != DP_OK) return rc;
        int stop = stop_requested || (cfg->stop_after && r->st.step >= cfg->stop_after);
        if (stop && (int)r->st.epoch + 1 < cfg->epochs) {
            if (!cfg->quiet) fprintf(stderr, "stopped after step %lld: checkpoint %s\n", (long long)r->st.step, r->ckpt);
            res->stopped_early = 1;
            return DP_OK;
        }
    }
    return DP_OK;
}

dp_status dp_train_run(const dp_train_config *cfg, dp_train_result *res)
{
    memset(res, 0, sizeof *res);
    dp_status rc = dp_train_config_check(cfg);
    if (rc != DP_OK) return rc;
    run r;
    memset(&r, 0, sizeof r);
    r.cfg = cfg;
    double t0 = dp_now();
    rc = setup(&r);
    if (rc == DP_OK) rc = run_epochs(&r, res);
    res->steps = (long)r.st.step;
    res->wall_s = dp_now() - t0;
    if (r.st.train_time > 0 && r.steps_per_epoch) {
        /* samples over the time spent inside training steps, resumed parts included */
        long epochs = (long)r.st.step / r.steps_per_epoch, rest = (long)r.st.step % r.steps_per_epoch;
        res->train_samples_per_s = ((double)epochs * (double)r.train.n + (double)rest * cfg->batch) / r.st.train_time;
    }
    teardown(&r);
    return rc;
}
