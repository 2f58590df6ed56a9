/* Batches and evaluation of the image tasks (see dptrain/image_task.h). */
#include "dptrain/image_task.h"

#include <stdlib.h>
#include <string.h>

#include "dptrain/ops.h"

dp_status dp_image_shape(const char *dir, dp_model_shape *shape, uint64_t *hash)
{
    dp_manifest *man = NULL;
    dp_status rc = dp_manifest_load(dir, &man);
    if (rc != DP_OK) return rc;
    const uint32_t *p = man->schema.param;
    *shape = (dp_model_shape){(int)p[0], (int)p[1], (int)p[2], (int)p[3]};
    *hash = dp_manifest_hash(man);
    dp_manifest_free(man);
    return DP_OK;
}

int dp_image_norm_format(const char *dir, char *buf, size_t cap)
{
    dp_manifest *m = NULL;
    if (dp_manifest_load(dir, &m) != DP_OK) return 0; /* the trainer's own load reports it */
    int c = (int)m->schema.param[0], vec = m->schema.kind != DP_SCHEMA_IMAGE_U8;
    size_t len = 0;
    int fits = c <= DP_NORM_MAX_CHANNELS;
    fits = fits && (len = (size_t)snprintf(buf, cap, "norm=")) < cap;
    for (int ch = 0; fits && ch < c; ch++) {
        /* the values dp_image_set_load gives the set: the manifest's, or its defaults */
        float mean = m->nstats ? (float)m->mean[ch] : vec ? 0.0f : DP_IMAGE_DEFAULT_MEAN;
        float std = m->nstats ? (float)m->std[ch] : vec ? 1.0f : DP_IMAGE_DEFAULT_STD;
        int n = snprintf(buf + len, cap - len, "%s%.9g/%.9g", ch ? "," : "", (double)mean, (double)std);
        fits = n > 0 && (len += (size_t)n) < cap;
    }
    fits = fits && (len += (size_t)snprintf(buf + len, cap - len, "\n")) < cap;
    dp_manifest_free(m);
    if (!fits && cap) buf[0] = 0;
    return fits ? (int)len : 0;
}

dp_status dp_image_train_load(const dp_run_config *run, const dp_sync *sync, dp_image_set *out)
{
    int global = run->sampler == DP_SAMPLER_GLOBAL;
    return dp_image_set_load(run->data, "train", global ? 0 : sync->rank, global ? 1 : sync->size, run->limit, out);
}

dp_status dp_image_batch_init(dp_image_batch *b, const dp_image_set *set, const dp_run_config *run)
{
    long max_batch = run->batch > run->eval_batch ? run->batch : run->eval_batch;
    b->eval_slice = run->batch < DP_EVAL_SLICE ? run->batch : DP_EVAL_SLICE;
    b->lut = malloc(dp_image_norm_size(set) * sizeof *b->lut);
    if (b->lut) dp_image_norm_fill(set, b->lut);
    size_t feat = (size_t)set->c * (size_t)set->h * (size_t)set->w;
    b->x = aligned_alloc(64, ((size_t)max_batch * feat * sizeof(float) + 63) / 64 * 64);
    b->y = malloc((size_t)max_batch * sizeof *b->y);
    if (!b->lut || !b->x || !b->y) return dp_errorf(DP_ERR_NOMEM, "batch buffers: out of memory");
    return DP_OK;
}

dp_tensor *dp_image_batch_get(dp_image_batch *b, dp_ctx *ctx, const dp_image_set *set, const int32_t *idx, long first,
                              long bs)
{
    dp_image_set_batch(set, b->lut, idx, first, bs, b->x, b->y);
    int shape[4] = {(int)bs, set->c, set->h, set->w};
    return dp_tensor_wrap(ctx, b->x, 4, shape);
}

dp_status dp_image_evaluate(dp_image_batch *b, dp_ctx *ctx, dp_model *m, const dp_image_set *set, long lo, long hi,
                            int eval_batch, dp_sync *sync, double *loss_out, double *acc_out)
{
    return dp_image_evaluate_confusion(b, ctx, m, set, lo, hi, eval_batch, sync, NULL, loss_out, acc_out);
}

/* confusion[label * classes + first argmax] += 1 for each row of logits [bs, classes] (the argmax
 * dp_cross_entropy counts as correct, so the diagonal sums to its count) */
static void confusion_add(double *confusion, const float *logits, const int32_t *y, long bs, int classes)
{
    for (long i = 0; i < bs; i++) {
        const float *r = logits + (size_t)i * (size_t)classes;
        int arg = 0;
        for (int k = 1; k < classes; k++)
            if (r[k] > r[arg]) arg = k;
        confusion[(size_t)y[i] * (size_t)classes + (size_t)arg] += 1;
    }
}

/* logits [bs, classes] of images [first, first + bs) of b->x, forwarded eval_slice images at a time; each
 * slice's arena space is given back once its rows are copied out. Inference treats every image on its own
 * (batch norm uses its running statistics), so the rows are those of one forward over the whole batch, and
 * the loss below is computed over the same logits as before. */
dp_tensor *dp_image_logits(dp_image_batch *b, dp_ctx *ctx, dp_model *m, const dp_image_set *set, long first,
                           long bs)
{
    dp_tensor *x = dp_image_batch_get(b, ctx, set, NULL, first, bs);
    int shape[2] = {(int)bs, m->in.classes};
    dp_tensor *logits = x ? dp_tensor_new(ctx, 2, shape) : NULL;
    if (!logits) return NULL;
    const long feat = (long)set->c * set->h * set->w;
    const long slice = b->eval_slice > 0 ? b->eval_slice : bs;
    for (long s = 0; s < bs; s += slice) {
        const long sl = bs - s < slice ? bs - s : slice;
        dp_arena_mark mark = dp_arena_get_mark(&ctx->arena);
        int xs[4] = {(int)sl, set->c, set->h, set->w};
        dp_tensor *out = m->forward(m, ctx, dp_tensor_wrap(ctx, x->data + s * feat, 4, xs));
        if (!out) return NULL;
        if (out->n != sl * m->in.classes) {
            ctx->status = dp_errorf(DP_ERR_SHAPE, "evaluation: the model gives %ld outputs for %ld images of %d classes",
                                    out->n, sl, m->in.classes);
            return NULL;
        }
        memcpy(logits->data + s * m->in.classes, out->data, (size_t)out->n * sizeof(float));
        dp_arena_release(&ctx->arena, mark);
    }
    return logits;
}

dp_status dp_image_evaluate_confusion(dp_image_batch *b, dp_ctx *ctx, dp_model *m, const dp_image_set *set, long lo,
                                      long hi, int eval_batch, dp_sync *sync, double *confusion, double *loss_out,
                                      double *acc_out)
{
    double v[3] = {0, 0, (double)(hi - lo)};
    dp_status rc = DP_OK;
    for (long first = lo; first < hi; first += eval_batch) {
        long bs = hi - first < eval_batch ? hi - first : eval_batch;
        dp_ctx_reset(ctx);
        ctx->training = 0;
        ctx->grad_enabled = 0;
        long k = 0;
        dp_tensor *logits = dp_image_logits(b, ctx, m, set, first, bs);
        dp_tensor *loss = logits ? dp_cross_entropy(ctx, logits, b->y, &k) : NULL;
        if (!loss) {
            rc = ctx->status ? ctx->status : dp_errorf(DP_ERR_SHAPE, "evaluation: forward failed");
            break;
        }
        v[0] += (double)loss->data[0] * (double)bs;
        v[1] += (double)k;
        if (confusion) confusion_add(confusion, logits->data, b->y, bs, m->in.classes);
    }
    ctx->training = 1;
    ctx->grad_enabled = 1;
    /* every rank joins the sum, even one whose forward failed, so none waits forever */
    rc = dp_sync_all_ok(sync, rc, "evaluation");
    if (rc == DP_OK) rc = dp_sync_sum(sync, v, 3);
    int nc = m->in.classes;
    if (rc == DP_OK && confusion) rc = dp_sync_sum(sync, confusion, nc * nc);
    if (rc != DP_OK) return rc;
    *loss_out = v[2] ? v[0] / v[2] : 0;
    *acc_out = v[2] ? v[1] / v[2] : 0;
    return DP_OK;
}

/* Output pixel (y, k) of an image is input (y + dy, (flip ? w-1-k : k) + dx), or its channel's fill outside it: the
 * crop at offset (dy + p, dx + p) of the image padded by p, then mirrored. */
void dp_image_crop_flip(float *x, long bs, int c, int h, int w, int pad, const float *fill, dp_rng *r, float *scratch)
{
    size_t img = (size_t)c * h * w;
    for (long i = 0; i < bs; i++) {
        int dy = (int)dp_rng_below(r, (uint64_t)(2 * pad + 1)) - pad;
        int dx = (int)dp_rng_below(r, (uint64_t)(2 * pad + 1)) - pad;
        int flip = (int)dp_rng_below(r, 2);
        float *im = x + (size_t)i * img;
        memcpy(scratch, im, img * sizeof(float));
        for (int ch = 0; ch < c; ch++)
            for (int y = 0; y < h; y++) {
                float *dst = im + ((size_t)ch * h + y) * w;
                int sy = y + dy;
                if (sy < 0 || sy >= h) {
                    for (int k = 0; k < w; k++) dst[k] = fill[ch];
                    continue;
                }
                const float *src = scratch + ((size_t)ch * h + sy) * w;
                for (int k = 0; k < w; k++) {
                    int sx = (flip ? w - 1 - k : k) + dx;
                    dst[k] = sx >= 0 && sx < w ? src[sx] : fill[ch];
                }
            }
    }
}

void dp_image_batch_free(dp_image_batch *b)
{
    free(b->lut);
    free(b->x);
    free(b->y);
}
