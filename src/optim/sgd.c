/* SGD with momentum, dampening, Nesterov and L2 weight decay on one flat range.
 *
 * Follows torch.optim.SGD (PyTorch 1.13, _single_tensor_sgd), per element:
 *     d   = g + wd * p
 *     buf = d                                   on the first step (buffer is None)
 *     buf = momentum * buf + (1 - dampening) * d    afterwards
 *     d   = nesterov ? d + momentum * buf : buf     (only when momentum != 0)
 *     p   = p - lr * d
 * The optimizer object (optimizer.c) calls this with its own buffer; callers with
 * their own sub-ranges call it directly.
 *
 * Each case gets its own copy of one inlined loop (sgd_loop with constant
 * flags) so that no per-element branch on the config is left for the
 * vectoriser to see through. Weight decay is always applied: g + 0*p == g for
 * every finite p, and one loop shape is cheaper than doubling the cases. */
#include "dptrain/optim.h"

/* first: torch clones d into the buffer instead of decaying a zero buffer,
 * which matters when dampening != 0 (the first step is not damped). */
static inline __attribute__((always_inline)) void sgd_loop(float *restrict p, const float *restrict g,
                                                           float *restrict buf, size_t n, float lr, float wd,
                                                           float mom, float keep, const int first,
                                                           const int nesterov)
{
    for (size_t i = 0; i < n; i++) {
        float d = g[i] + wd * p[i];
        float b = first ? d : buf[i] * mom + keep * d;
        buf[i] = b;
        p[i] -= lr * (nesterov ? d + mom * b : b);
    }
}

static void sgd_plain(float *restrict p, const float *restrict g, size_t n,
                      float lr, float wd)
{
    for (size_t i = 0; i < n; i++) {
        float d = g[i] + wd * p[i];
        p[i] -= lr * d;
    }
}

void dp_sgd_update(float *restrict params, const float *restrict grads,
                   float *restrict buf, size_t n,
                   const dp_opt_config *cfg, float lr, long t)
{
    const float wd = cfg->weight_decay;
    const float mom = cfg->momentum;
    /* torch computes 1 - dampening in double and rounds once to float. */
    const float keep = (float)(1.0 - (double)cfg->dampening);

    if (mom == 0.0f) {
        sgd_plain(params, grads, n, lr, wd);
    } else if (t <= 1) {
        if (cfg->nesterov)
            sgd_loop(params, grads, buf, n, lr, wd, mom, keep, 1, 1);
        else
            sgd_loop(params, grads, buf, n, lr, wd, mom, keep, 1, 0);
    } else if (cfg->nesterov) {
        sgd_loop(params, grads, buf, n, lr, wd, mom, keep, 0, 1);
    } else {
        sgd_loop(params, grads, buf, n, lr, wd, mom, keep, 0, 0);
    }
}
