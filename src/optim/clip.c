/* Gradient clipping by global L2 norm, as torch.nn.utils.clip_grad_norm_ (1.13):
 *     total = sqrt(sum g^2)
 *     coef  = min(max_norm / (total + 1e-6), 1)
 *     g    *= coef
 * Split into sum-of-squares / coefficient / scale so a gradient spread over
 * several ranges (buckets, parameter groups) or ranks can be clipped by its
 * global norm: add the sums (MPI_SUM across ranks), then scale each range. */
#include "dptrain/optim.h"

#include <math.h>

#include "dptrain/floatscan.h"

double dp_sum_squares(const float *g, size_t n)
{
    /* Eight independent double accumulators: one running sum is a serial chain
     * the compiler may not reorder (no -ffast-math), eight give it vector lanes,
     * and double keeps ~1e7 squares from losing the small ones. */
    double acc[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            acc[k] += (double)g[i + k] * (double)g[i + k];
    for (; i < n; i++)
        acc[0] += (double)g[i] * (double)g[i];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

float dp_clip_coef(double total_norm, float max_norm)
{
    if (!isfinite(total_norm))
        return 1.0f;
    double coef = (double)max_norm / (total_norm + 1e-6);
    return coef < 1.0 ? (float)coef : 1.0f;
}

void dp_grad_scale(float *g, size_t n, float s)
{
    for (size_t i = 0; i < n; i++)
        g[i] *= s;
}

float dp_clip_grad_norm(float *g, size_t n, float max_norm)
{
    double norm = sqrt(dp_sum_squares(g, n));
    float coef = dp_clip_coef(norm, max_norm);
    if (coef < 1.0f)
        dp_grad_scale(g, n, coef);
    return (float)norm;
}

size_t dp_grad_unscale_check(float *g, size_t n, float mul)
{
    size_t bad = dp_floats_find_bad(g, n, 0.0f);
    if (bad < n) return bad;
    if (mul != 1.0f) dp_grad_scale(g, n, mul);
    return n;
}
