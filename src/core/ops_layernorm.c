/* Layer normalisation over the last dimension (torch.nn.functional.layer_norm
 * with normalized_shape = (D,)): per row of D floats,
 *   xhat = (x - mean) / sqrt(var + eps)   (biased variance, as PyTorch)
 *   y    = xhat * gamma + beta            (gamma, beta [D]; either may be NULL)
 * Backward, per row with g = dy * gamma (dy where there is no gamma):
 *   dx = rstd (g - mean(g) - xhat mean(g xhat))
 *   dgamma += dy xhat,  dbeta += dy   (summed over rows)
 * Each row's mean and rstd are kept (2 floats a row, arena), xhat is
 * recomputed from x in the backward rather than stored. The per-row sums
 * run in double: a row whose mean is large against its spread would lose
 * the variance to cancellation in float. */
#include <math.h>
#include <string.h>

#include "core/tape.h"

/* y [R,D], mean/rstd [R] from x [R,D] */
static void layernorm_forward(float *restrict y, float *restrict mean, float *restrict rstd, const float *restrict x,
                              const float *restrict g, const float *restrict b, long R, int D, float eps)
{
    for (long r = 0; r < R; r++) {
        const float *restrict xr = x + r * D;
        float *restrict yr = y + r * D;
        double s = 0.0;
        for (int j = 0; j < D; j++) s += xr[j];
        const double m = s / D;
        double v = 0.0;
        for (int j = 0; j < D; j++) v += (xr[j] - m) * (xr[j] - m);
        const float mf = (float)m, rs = (float)(1.0 / sqrt(v / D + (double)eps));
        mean[r] = mf;
        rstd[r] = rs;
        for (int j = 0; j < D; j++) {
            const float h = (xr[j] - mf) * rs;
            yr[j] = (g ? h * g[j] : h) + (b ? b[j] : 0.0f);
        }
    }
}

/* ip: 0 D; saved: 0 mean [R], 1 rstd [R]; in: x, gamma, beta */
static void layernorm_backward(dp_ctx *c, dp_node *nd)
{
    dp_tensor *x = nd->in[0], *gamma = nd->in[1], *beta = nd->in[2];
    const int D = nd->ip[0];
    const long R = x->n / D;
    const float *mean = nd->saved[0], *rstd = nd->saved[1], *dy = nd->out->grad;
    const float *g = gamma ? gamma->data : NULL;
    float *gx = dp_grad(c, x);
    float *gg = gamma ? dp_grad(c, gamma) : NULL;
    float *gb = beta ? dp_grad(c, beta) : NULL;
    for (long r = 0; r < R; r++) {
        const float *restrict xr = x->data + r * D, *restrict dyr = dy + r * D;
        const float m = mean[r], rs = rstd[r];
        if (gg)
            for (int j = 0; j < D; j++) gg[j] += dyr[j] * (xr[j] - m) * rs;
        if (gb)
            for (int j = 0; j < D; j++) gb[j] += dyr[j];
        if (!gx) continue;
        double sg = 0.0, sgh = 0.0;
        for (int j = 0; j < D; j++) {
            const float gj = g ? dyr[j] * g[j] : dyr[j];
            sg += gj;
            sgh += (double)gj * (xr[j] - m) * rs;
        }
        const float a = (float)(sg / D), bm = (float)(sgh / D);
        float *restrict gxr = gx + r * D;
        for (int j = 0; j < D; j++) {
            const float gj = g ? dyr[j] * g[j] : dyr[j];
            gxr[j] += rs * (gj - a - (xr[j] - m) * rs * bm);
        }
    }
}

dp_tensor *dp_layernorm(dp_ctx *c, dp_tensor *x, dp_tensor *gamma, dp_tensor *beta, float eps)
{
    if (!x) return NULL;
    if (!(eps > 0.0f) || isinf(eps)) return dp_fail(c, DP_ERR_ARG, "layernorm: eps %g (must be finite and > 0)", eps);
    const int D = x->shape[x->ndim - 1];
    if (D < 1) return dp_fail(c, DP_ERR_SHAPE, "layernorm: last dim is %d", D);
    if (gamma && gamma->n != D)
        return dp_fail(c, DP_ERR_SHAPE, "layernorm: gamma has %ld elements, the last dim is %d", gamma->n, D);
    if (beta && beta->n != D)
        return dp_fail(c, DP_ERR_SHAPE, "layernorm: beta has %ld elements, the last dim is %d", beta->n, D);
    const long R = x->n / D;
    dp_tensor *y = dp_tensor_new(c, x->ndim, x->shape);
    float *stats = dp_scratch(c, (size_t)(2 * R + 1) * sizeof *stats);
    if (!y || !stats) return NULL;
    layernorm_forward(y->data, stats, stats + R, x->data, gamma ? gamma->data : NULL, beta ? beta->data : NULL, R, D,
                      eps);
    dp_node *nd = dp_tape_push(c, layernorm_backward, "layernorm", y, 3, (dp_tensor *[]){x, gamma, beta});
    if (nd) {
        nd->ip[0] = D;
        nd->saved[0] = stats;
        nd->saved[1] = stats + R;
    }
    return y;
}
