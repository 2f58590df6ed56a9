/* darts: sum_k softmax(alpha)_k op_k(x), bilevel (first or second order); with no
 * temperature schedule T stays 1, so the mixing is temperature's at T = 1. */
#include "nas/strategy.h"

const nas_strategy nas_strategy_darts = {
    .name = "darts",
    .bilevel = 1,
    .flags = NAS_FLAG_UNROLLED,
    .mix = nas_softmax_mix,
    .host_row = nas_softmax_host_row,
};
