/* dp_floats_find_bad (see floatscan.h): integer compares on the bit patterns, so the compiler
 * vectorises the pass and NaN needs no special case (its exponent is all ones, like Inf's). */
#include "dptrain/floatscan.h"

#include <stdint.h>
#include <string.h>

static uint32_t abs_bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u & 0x7FFFFFFFu;
}

size_t dp_floats_find_bad(const float *x, size_t n, float limit)
{
    const uint32_t lim = limit > 0 ? abs_bits(limit) : 0x7F800000u;
    uint32_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad |= abs_bits(x[i]) >= lim;
    if (!bad) return n;
    for (size_t i = 0; i < n; i++)
        if (abs_bits(x[i]) >= lim) return i;
    return n;
}
