/* temperature: sum_k softmax(alpha / T)_k op_k(x), T decaying exponentially
 * from t_start to t_end over the search (default 1 -> 0.05), bilevel. */
#include <math.h>

#include "nas/strategy.h"

static float temperature_at(float t_start, float t_end, double p)
{
    return (float)(t_start * pow(t_end / t_start, p));
}

const nas_strategy nas_strategy_temperature = {
    .name = "temperature",
    .t_start = 1.0f,
    .t_end = 0.05f,
    .bilevel = 1,
    .flags = NAS_FLAG_UNROLLED,
    .temperature = temperature_at,
    .mix = nas_softmax_mix,
    .host_row = nas_softmax_host_row,
};
