/* Row-wise L2 normalisation (torch.nn.functional.normalize(x, dim=-1, eps)):
 *   y = x / max(|x|, eps) over the last dimension.
 * Backward, per row with n = |x|:
 *   n > eps:  dx = (dy - y <dy, y>) / n   (the projection off y: scaling x
 *             does not move y)
 *   n <= eps: dx = dy / eps               (the op is linear there)
 * The norms are recomputed from x in the backward instead of kept. Sums in
 * double: a row can be the 48k-wide head of a DSI model's transpose. */
#include <math.h>

#include "dptrain/rownorm.h"
#include "core/tape.h"

static double row_norm(const float *x, int D)
{
    double s = 0.0;
    for (int j = 0; j < D; j++) s += (double)x[j] * x[j];
    return sqrt(s);
}

float dp_row_inv_norm(const float *x, int D, float eps)
{
    const double n = row_norm(x, D);
    return (float)(1.0 / (n > eps ? n : eps));
}

void dp_row_inv_norms(float *inv, const float *x, long rows, int D, float eps)
{
    for (long r = 0; r < rows; r++) inv[r] = dp_row_inv_norm(x + r * D, D, eps);
}

/* ip: 0 D; fp: 0 eps */
static void l2norm_backward(dp_ctx *c, dp_node *nd)
{
    float *g = dp_grad(c, nd->in[0]);
    if (!g) return;
    const int D = nd->ip[0];
    const float eps = nd->fp[0];
    const float *x = nd->in[0]->data, *y = nd->out->data, *dy = nd->out->grad;
    const long R = nd->out->n / D;
    for (long r = 0; r < R; r++) {
        const long o = r * D;
        const double n = row_norm(x + o, D);
        if (n > eps) {
            double dot = 0.0;
            for (int j = 0; j < D; j++) dot += (double)dy[o + j] * y[o + j];
            const float inv = (float)(1.0 / n), fd = (float)dot;
            for (int j = 0; j < D; j++) g[o + j] += (dy[o + j] - y[o + j] * fd) * inv;
        } else {
            for (int j = 0; j < D; j++) g[o + j] += dy[o + j] / eps;
        }
    }
}

dp_tensor *dp_l2norm_rows(dp_ctx *c, dp_tensor *x, float eps)
{
    if (!x) return NULL;
    if (!(eps > 0.0f) || isinf(eps)) return dp_fail(c, DP_ERR_ARG, "l2norm: eps %g (must be finite and > 0)", eps);
    const int D = x->shape[x->ndim - 1];
    dp_tensor *y = dp_tensor_new(c, x->ndim, x->shape);
    if (!y) return NULL;
    const long R = D ? x->n / D : 0;
    for (long r = 0; r < R; r++) {
        const float inv = dp_row_inv_norm(x->data + r * D, D, eps);
        for (int j = 0; j < D; j++) y->data[r * D + j] = x->data[r * D + j] * inv;
    }
    dp_node *nd = dp_tape_push(c, l2norm_backward, "l2norm", y, 1, &x);
    if (nd) {
        nd->ip[0] = D;
        nd->fp[0] = eps;
    }
    return y;
}
