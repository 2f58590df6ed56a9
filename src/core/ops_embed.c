/* Embedding-bag: the sparse input layer of the DSI models.
 *
 * As PyTorch's F.embedding_bag(ids, w, offsets, mode='sum'|'mean'|'max') with
 * include_last_offset=True (offsets has nbags + 1 entries): bag b sums,
 * averages or takes the elementwise max of rows ids[offsets[b] .. offsets[b+1])
 * of w [V,D]; an empty bag gives a zero row in every mode. A fourth pooling
 * weighs each entry by a per-row score u [V], softmax-normalised over the bag
 * (an IDF-weighted mean when e^u = idf). The backward adds into the used rows
 * of dw (and du) only (the rest of the gradient buffer is untouched), once per
 * occurrence, so a repeated id accumulates. */
#include <math.h>

#include "core/tape.h"

/* ids/offsets describe nbags bags of rows of a [V, .] table (the checks every
 * bag op makes before it reads a row); 0 after dp_fail naming op and entry */
static int bags_ok(dp_ctx *c, const char *op, int V, const int32_t *ids, const int32_t *offsets, int nbags)
{
    if (!ids && offsets[nbags] > offsets[0]) return dp_fail(c, DP_ERR_ARG, "%s: ids is NULL", op), 0;
    if (offsets[0] < 0) return dp_fail(c, DP_ERR_ARG, "%s: offsets[0] = %d is negative", op, (int)offsets[0]), 0;
    for (int b = 0; b < nbags; b++) {
        if (offsets[b + 1] < offsets[b])
            return dp_fail(c, DP_ERR_ARG, "%s: offsets[%d] = %d < offsets[%d] = %d (must not decrease)", op, b + 1,
                           (int)offsets[b + 1], b, (int)offsets[b]),
                   0;
        for (int32_t k = offsets[b]; k < offsets[b + 1]; k++)
            if (ids[k] < 0 || ids[k] >= V)
                return dp_fail(c, DP_ERR_ARG, "%s: bag %d, ids[%d] = %d outside [0, %d)", op, b, (int)k, (int)ids[k],
                               V),
                       0;
    }
    return 1;
}

/* y_b [D] += s * w_row [D] */
static void row_axpy(float *restrict y, const float *restrict w, float s, int D)
{
    for (int j = 0; j < D; j++) y[j] += s * w[j];
}

/* y [nbags,D] = per-bag sum (mean: average) of rows of w [V,D] */
static void embedding_bag_forward(float *restrict y, const float *restrict w, const int32_t *restrict ids,
                                  const int32_t *restrict offsets, int nbags, int D, int mean)
{
    for (int b = 0; b < nbags; b++) {
        float *restrict yb = y + (long)b * D;
        for (int j = 0; j < D; j++) yb[j] = 0.0f;
        const int32_t lo = offsets[b], hi = offsets[b + 1];
        const float s = mean && hi > lo ? 1.0f / (float)(hi - lo) : 1.0f;
        for (int32_t k = lo; k < hi; k++) row_axpy(yb, w + (long)ids[k] * D, s, D);
    }
}

/* dw [V,D] rows ids[k] += s_b dy_b [D] for every k in bag b */
static void embedding_bag_backward_k(float *restrict dw, const float *restrict dy, const int32_t *restrict ids,
                                     const int32_t *restrict offsets, int nbags, int D, int mean)
{
    for (int b = 0; b < nbags; b++) {
        const int32_t lo = offsets[b], hi = offsets[b + 1];
        const float s = mean && hi > lo ? 1.0f / (float)(hi - lo) : 1.0f;
        for (int32_t k = lo; k < hi; k++) row_axpy(dw + (long)ids[k] * D, dy + (long)b * D, s, D);
    }
}

/* ip: 0 nbags, 1 D, 2 mean; saved: 0 ids, 1 offsets */
static void embedding_bag_backward(dp_ctx *c, dp_node *nd)
{
    float *gw = dp_grad(c, nd->in[0]);
    if (gw) embedding_bag_backward_k(gw, nd->out->grad, nd->saved[0], nd->saved[1], nd->ip[0], nd->ip[1], nd->ip[2]);
}

dp_tensor *dp_embedding_bag(dp_ctx *c, dp_tensor *w, const int32_t *ids, const int32_t *offsets, int nbags, int mean)
{
    if (!w) return NULL;
    if (!offsets) return dp_fail(c, DP_ERR_ARG, "embedding_bag: no offsets");
    if (!dp_check_ndim(c, "embedding_bag", w, 2)) return NULL;
    if (nbags < 1) return dp_fail(c, DP_ERR_ARG, "embedding_bag: %d bags", nbags);
    const int V = w->shape[0], D = w->shape[1];
    if (!bags_ok(c, "embedding_bag", V, ids, offsets, nbags)) return NULL;
    dp_tensor *y = dp_tensor_new(c, 2, (int[]){nbags, D});
    if (!y) return NULL;
    mean = !!mean;
    embedding_bag_forward(y->data, w->data, ids, offsets, nbags, D, mean);
    dp_node *nd = dp_tape_push(c, embedding_bag_backward, "embedding_bag", y, 1, &w);
    if (nd) {
        nd->ip[0] = nbags;
        nd->ip[1] = D;
        nd->ip[2] = mean;
        nd->saved[0] = (void *)ids;
        nd->saved[1] = (void *)offsets;
    }
    return y;
}

/* ---- softmax-weighted bag ---- */

static float dot(const float *restrict a, const float *restrict b, int D)
{
    float s = 0.0f;
    for (int j = 0; j < D; j++) s += a[j] * b[j];
    return s;
}

/* ip: 0 nbags, 1 D; saved: 0 ids, 1 offsets, 2 the entries' weights a [offsets[nbags]] */
static void embedding_bag_softmax_backward(dp_ctx *c, dp_node *nd)
{
    dp_tensor *W = nd->in[0], *U = nd->in[1];
    float *gw = dp_grad(c, W), *gu = dp_grad(c, U);
    const int nbags = nd->ip[0], D = nd->ip[1];
    const int32_t *ids = nd->saved[0], *off = nd->saved[1];
    const float *a = nd->saved[2], *dy = nd->out->grad, *y = nd->out->data, *w = W->data;
    for (int b = 0; b < nbags; b++) {
        const float *g = dy + (long)b * D;
        /* y_b = sum_k a_k e_k with a = softmax(u): dy_b/du_k = a_k (e_k - y_b) */
        const float s = gu ? dot(y + (long)b * D, g, D) : 0.0f;
        for (int32_t k = off[b]; k < off[b + 1]; k++) {
            const long r = ids[k];
            if (gu) gu[r] += a[k] * (dot(w + r * D, g, D) - s);
            if (gw) row_axpy(gw + r * D, g, a[k], D);
        }
    }
}

dp_tensor *dp_embedding_bag_softmax(dp_ctx *c, dp_tensor *w, dp_tensor *u, const int32_t *ids,
                                    const int32_t *offsets, int nbags)
{
    if (!w || !u) return NULL;
    if (!offsets) return dp_fail(c, DP_ERR_ARG, "embedding_bag_softmax: no offsets");
    if (!dp_check_ndim(c, "embedding_bag_softmax", w, 2)) return NULL;
    if (nbags < 1) return dp_fail(c, DP_ERR_ARG, "embedding_bag_softmax: %d bags", nbags);
    const int V = w->shape[0], D = w->shape[1];
    if (u->n != V)
        return dp_fail(c, DP_ERR_SHAPE, "embedding_bag_softmax: %ld row scores for a table of %d rows", u->n, V);
    if (!bags_ok(c, "embedding_bag_softmax", V, ids, offsets, nbags)) return NULL;
    dp_tensor *y = dp_tensor_new(c, 2, (int[]){nbags, D});
    float *a = dp_scratch(c, ((size_t)offsets[nbags] + 1) * sizeof *a);
    if (!y || !a) return y ? dp_fail(c, DP_ERR_NOMEM, "embedding_bag_softmax: out of memory") : NULL;
    const float *uw = u->data;
    for (int b = 0; b < nbags; b++) {
        float *restrict yb = y->data + (long)b * D;
        for (int j = 0; j < D; j++) yb[j] = 0.0f;
        const int32_t lo = offsets[b], hi = offsets[b + 1];
        if (hi == lo) continue;
        float mx = uw[ids[lo]], z = 0.0f;
        for (int32_t k = lo + 1; k < hi; k++) mx = fmaxf(mx, uw[ids[k]]);
        for (int32_t k = lo; k < hi; k++) z += a[k] = expf(uw[ids[k]] - mx);
        for (int32_t k = lo; k < hi; k++) {
            a[k] /= z;
            row_axpy(yb, w->data + (long)ids[k] * D, a[k], D);
        }
    }
    dp_node *nd = dp_tape_push(c, embedding_bag_softmax_backward, "embedding_bag_softmax", y, 2, (dp_tensor *[]){w, u});
    if (nd) {
        nd->ip[0] = nbags;
        nd->ip[1] = D;
        nd->saved[0] = (void *)ids;
        nd->saved[1] = (void *)offsets;
        nd->saved[2] = a;
    }
    return y;
}

/* ---- max bag ---- */

/* ip: 0 nbags, 1 D; saved: 0 the row each output element came from [nbags * D] (-1: an empty bag) */
static void embedding_bag_max_backward(dp_ctx *c, dp_node *nd)
{
    float *gw = dp_grad(c, nd->in[0]);
    if (!gw) return;
    const long n = (long)nd->ip[0] * nd->ip[1];
    const int D = nd->ip[1];
    const int32_t *arg = nd->saved[0];
    const float *dy = nd->out->grad;
    for (long i = 0; i < n; i++)
        if (arg[i] >= 0) gw[(long)arg[i] * D + i % D] += dy[i];
}

dp_tensor *dp_embedding_bag_max(dp_ctx *c, dp_tensor *w, const int32_t *ids, const int32_t *offsets, int nbags)
{
    if (!w) return NULL;
    if (!offsets) return dp_fail(c, DP_ERR_ARG, "embedding_bag_max: no offsets");
    if (!dp_check_ndim(c, "embedding_bag_max", w, 2)) return NULL;
    if (nbags < 1) return dp_fail(c, DP_ERR_ARG, "embedding_bag_max: %d bags", nbags);
    const int V = w->shape[0], D = w->shape[1];
    if (!bags_ok(c, "embedding_bag_max", V, ids, offsets, nbags)) return NULL;
    dp_tensor *y = dp_tensor_new(c, 2, (int[]){nbags, D});
    int32_t *arg = c->grad_enabled && w->requires_grad ? dp_scratch(c, (size_t)nbags * D * sizeof *arg) : NULL;
    if (!y || (c->grad_enabled && w->requires_grad && !arg))
        return y ? dp_fail(c, DP_ERR_NOMEM, "embedding_bag_max: out of memory") : NULL;
    for (int b = 0; b < nbags; b++) {
        float *restrict yb = y->data + (long)b * D;
        int32_t *ab = arg ? arg + (long)b * D : NULL;
        const int32_t lo = offsets[b], hi = offsets[b + 1];
        if (hi == lo) {
            for (int j = 0; j < D; j++) yb[j] = 0.0f;
            if (ab)
                for (int j = 0; j < D; j++) ab[j] = -1;
            continue;
        }
        const float *w0 = w->data + (long)ids[lo] * D;
        for (int j = 0; j < D; j++) yb[j] = w0[j];
        if (ab)
            for (int j = 0; j < D; j++) ab[j] = ids[lo];
        /* ties keep the first entry */
        for (int32_t k = lo + 1; k < hi; k++) {
            const float *wr = w->data + (long)ids[k] * D;
            if (ab) {
                for (int j = 0; j < D; j++)
                    if (wr[j] > yb[j]) yb[j] = wr[j], ab[j] = ids[k];
            } else {
                for (int j = 0; j < D; j++) yb[j] = wr[j] > yb[j] ? wr[j] : yb[j];
            }
        }
    }
    dp_node *nd = dp_tape_push(c, embedding_bag_max_backward, "embedding_bag_max", y, 1, &w);
    if (nd) {
        nd->ip[0] = nbags;
        nd->ip[1] = D;
        nd->saved[0] = arg;
    }
    return y;
}
