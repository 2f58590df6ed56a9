/* darts: sum_k softmax(alpha)_k op_k(x), bilevel (first or second order). */
#include "nas/strategy.h"

static dp_tensor *darts_mix(dp_ctx *c, const dp_nas_mix *m, dp_tensor *a, long off)
{
    (void)m, (void)off;
    return dp_softmax(c, a, 1.0f);
}

static void darts_host_row(const float *a, const float *mask, float temp, int n, float *w)
{
    (void)mask, (void)temp;
    nas_softmax_row(a, n, 1.0f, w);
}

const nas_strategy nas_strategy_darts = {
    .name = "darts",
    .t_start = 1.0f,
    .t_end = 1.0f,
    .bilevel = 1,
    .flags = NAS_FLAG_UNROLLED,
    .mix = darts_mix,
    .host_row = darts_host_row,
};
