/* gumbel (GDAS): h = one_hot(argmax softmax((alpha + g) / tau)) in the
 * forward, the soft softmax's gradient in the backward (straight-through);
 * only the sampled op is computed. tau falls linearly from t_start to t_end
 * (default 10 -> 0.1). The noise g is drawn before every training pass from a
 * stream every rank shares, so the ranks sample alike; evaluation runs
 * without noise. Bilevel. Host side (alpha.csv, derivation): softmax(alpha). */
#include <math.h>
#include <string.h>

#include "nas/search_run.h"
#include "nas/strategy.h"

static float gumbel_tau(float t_start, float t_end, double p)
{
    return (float)(t_start - (t_start - t_end) * p);
}

static dp_tensor *gumbel_mix(dp_ctx *c, const dp_nas_mix *m, dp_tensor *a, long off)
{
    if (!m->gumbel) {
        if (c->status == DP_OK)
            c->status = dp_errorf(DP_ERR_ARG, "supernet: gumbel strategy without noise (mix.gumbel is NULL)");
        return NULL;
    }
    dp_tensor *g = dp_tensor_wrap(c, (float *)m->gumbel + off, a->ndim, a->shape);
    return dp_onehot_st(c, dp_softmax(c, dp_add(c, a, g), m->temperature));
}

static void gumbel_host_row(const float *a, const float *mask, float temp, int n, float *w)
{
    (void)mask, (void)temp;
    nas_softmax_row(a, n, 1.0f, w);
}

static void gumbel_setup(srch *s) { s->sn->mix.gumbel = s->gumbel; }

/* every rank draws, batch or not */
static void gumbel_draw(srch *s)
{
    long n = (long)s->rows * s->nops;
    for (long k = 0; k < n; k++) {
        float u = dp_rng_uniform(&s->noise);
        s->gumbel[k] = -logf(-logf(u * 0.999998f + 1e-6f));
    }
}

static void gumbel_clear(srch *s) { memset(s->gumbel, 0, (size_t)s->rows * (size_t)s->nops * sizeof(float)); }

const nas_strategy nas_strategy_gumbel = {
    .name = "gumbel",
    .t_start = 10.0f,
    .t_end = 0.1f,
    .bilevel = 1,
    .sampled = 1,
    .flags = NAS_FLAG_UNROLLED,
    .temperature = gumbel_tau,
    .mix = gumbel_mix,
    .host_row = gumbel_host_row,
    .setup = gumbel_setup,
    .before_pass = gumbel_draw,
    .before_eval = gumbel_clear,
};
