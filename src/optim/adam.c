/* Adam and AdamW on one flat range, with bias correction.
 *
 * Follows PyTorch 1.13 (_single_tensor_adam / _single_tensor_adamw), per element,
 * at step t (1-based):
 *     Adam:  g = g + wd * p                       (L2: decay goes through the moments)
 *     AdamW: p = p * (1 - lr * wd)                (decoupled: Loshchilov & Hutter 2019)
 *     m = beta1 * m + (1 - beta1) * g
 *     v = beta2 * v + (1 - beta2) * g * g
 *     step_size = lr / (1 - beta1^t)
 *     denom     = sqrt(v) / sqrt(1 - beta2^t) + eps   (eps outside the sqrt)
 *     p = p - step_size * m / denom
 * Scalars are formed in double and rounded once, as torch does with its Python
 * floats, and the per-element expressions keep torch's operation order
 * ((step_size*m)/denom, ((1-beta2)*g)*g), so results differ from torch only by
 * the float rounding of the betas/lr themselves.
 *
 * Both variants share one loop: Adam runs it with decay = 1, AdamW with l2 = 0.
 * p*1 and g + 0*p are exact for finite values, so neither pays a branch. */
#include "dptrain/optim.h"

#include <math.h>

static void adam_loop(float *restrict p, const float *restrict g,
                      float *restrict m, float *restrict v, size_t n,
                      float l2, float decay, float b1, float c1, float b2, float c2,
                      float step_size, float bc2_sqrt, float eps)
{
    for (size_t i = 0; i < n; i++) {
        float pi = p[i];
        float gi = g[i] + l2 * pi;
        float mi = m[i] * b1 + c1 * gi;
        float vi = v[i] * b2 + (c2 * gi) * gi;
        m[i] = mi;
        v[i] = vi;
        /* sqrtf vectorises only without errno; sources.cmake sets -fno-math-errno. */
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        p[i] = pi * decay - (step_size * mi) / denom;
    }
}

void dp_adam_update(float *restrict params, const float *restrict grads,
                    float *restrict m, float *restrict v, size_t n,
                    const dp_opt_config *cfg, float lr, long t)
{
    const double b1 = cfg->beta1, b2 = cfg->beta2, wd = cfg->weight_decay;
    const int decoupled = DP_OPT_ADAMW == cfg->kind;
    if (t < 1)
        t = 1; /* step 0 would divide by a zero bias correction */

    const double bc1 = 1.0 - pow(b1, (double)t);
    const double bc2 = 1.0 - pow(b2, (double)t);
    const float l2 = decoupled ? 0.0f : (float)wd;
    const float decay = decoupled ? (float)(1.0 - (double)lr * wd) : 1.0f;

    adam_loop(params, grads, m, v, n, l2, decay,
              (float)b1, (float)(1.0 - b1), (float)b2, (float)(1.0 - b2),
              (float)((double)lr / bc1), (float)sqrt(bc2), cfg->eps);
}
