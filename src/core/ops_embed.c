/* Embedding-bag: the sparse input layer of the DSI models.
 *
 * As PyTorch's F.embedding_bag(ids, w, offsets, mode='sum'|'mean') with
 * include_last_offset=True (offsets has nbags + 1 entries): bag b sums or
 * averages rows ids[offsets[b] .. offsets[b+1]) of w [V,D]; an empty bag gives
 * a zero row in both modes. The backward adds into the used rows of dw only
 * (the rest of the gradient buffer is untouched), once per occurrence, so a
 * repeated id accumulates. */
#include "core/tape.h"

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
    if (!ids && offsets[nbags] > offsets[0]) return dp_fail(c, DP_ERR_ARG, "embedding_bag: ids is NULL");
    if (offsets[0] < 0) return dp_fail(c, DP_ERR_ARG, "embedding_bag: offsets[0] = %d is negative", (int)offsets[0]);
    for (int b = 0; b < nbags; b++) {
        if (offsets[b + 1] < offsets[b])
            return dp_fail(c, DP_ERR_ARG, "embedding_bag: offsets[%d] = %d < offsets[%d] = %d (must not decrease)",
                           b + 1, (int)offsets[b + 1], b, (int)offsets[b]);
        for (int32_t k = offsets[b]; k < offsets[b + 1]; k++)
            if (ids[k] < 0 || ids[k] >= V)
                return dp_fail(c, DP_ERR_ARG, "embedding_bag: bag %d, ids[%d] = %d outside [0, %d)", b, (int)k,
                               (int)ids[k], V);
    }
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
