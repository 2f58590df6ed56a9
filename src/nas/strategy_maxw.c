/* maxw (sharpDARTS' Max-W weighting): sum_k (1 - max_j w_j + w_k) op_k(x)
 * with w = softmax(alpha), bilevel. The op alpha favours weighs 1, as it will
 * in the derived cell, and the others 1 less their distance to it, so every
 * op keeps training near full weight while alpha decides; softmax's 1/8 at
 * the start is what lets the cheap ops pull ahead while the convolutions are
 * untrained. The row's shift 1 - max_j w_j passes no gradient (the paper
 * detaches it), so the alpha gradient is softmax's at the shifted forward.
 * Host side (alpha.csv, derivation): softmax(alpha). */
#include "nas/strategy.h"

static dp_tensor *maxw_mix(dp_ctx *c, const dp_nas_mix *m, dp_tensor *a, long off)
{
    dp_tensor *w = nas_softmax_mix(c, m, a, off);
    dp_tensor *shift = w ? dp_tensor_new(c, w->ndim, w->shape) : NULL;
    if (!shift) return NULL;
    const int n = w->shape[w->ndim - 1];
    for (long r = 0; r < w->n / n; r++) {
        const float *wr = w->data + r * n;
        float mx = wr[0];
        for (int k = 1; k < n; k++) mx = wr[k] > mx ? wr[k] : mx;
        for (int k = 0; k < n; k++) shift->data[r * n + k] = 1.0f - mx;
    }
    return dp_add(c, w, shift);
}

const nas_strategy nas_strategy_maxw = {
    .name = "maxw",
    .bilevel = 1,
    .flags = NAS_FLAG_UNROLLED,
    .mix = maxw_mix,
    .host_row = nas_softmax_host_row,
};
