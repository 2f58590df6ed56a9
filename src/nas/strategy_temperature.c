/* temperature: sum_k softmax(alpha / T)_k op_k(x), T decaying exponentially
 * from t_start to t_end over the search (default 1 -> 0.05), bilevel. */
#include <math.h>

#include "nas/strategy.h"

static float temperature_at(float t_start, float t_end, double p)
{
    return (float)(t_start * pow(t_end / t_start, p));
}

static dp_tensor *temperature_mix(dp_ctx *c, const dp_nas_mix *m, dp_tensor *a, long off)
{
    (void)off;
    return dp_softmax(c, a, m->temperature);
}

static void temperature_host_row(const float *a, const float *mask, float temp, int n, float *w)
{
    (void)mask;
    nas_softmax_row(a, n, temp, w);
}

const nas_strategy nas_strategy_temperature = {
    .name = "temperature",
    .t_start = 1.0f,
    .t_end = 0.05f,
    .bilevel = 1,
    .flags = NAS_FLAG_UNROLLED,
    .temperature = temperature_at,
    .mix = temperature_mix,
    .host_row = temperature_host_row,
};
