/* Pointwise activations (relu, exact gelu, tanh, sigmoid), softmax and
 * log-softmax over the last dim, inverted dropout, and the straight-through
 * one-hot of GDAS (Dong & Yang 2019).
 *
 * PyTorch semantics: F.gelu(approximate='none') = x * Phi(x) with erf;
 * F.softmax(x / t, dim=-1) and F.log_softmax(x, dim=-1), both shifted by the
 * row max for stability; F.dropout keeps an element with probability 1 - p and
 * scales it by 1 / (1 - p) in training, and is the identity in eval (or p = 0). */
#include <math.h>
#include <string.h>

#include "core/tape.h"

/* ------------------------------------------------------------------ pointwise */

/* y [n] = max(x, 0) */
static void relu_forward(float *restrict y, const float *restrict x, long n)
{
    for (long i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

/* dx [n] += dy [n] * (y > 0); y [n] the forward output (PyTorch: zero gradient at 0) */
static void relu_backward_k(float *restrict dx, const float *restrict dy, const float *restrict y, long n)
{
    /* Load dy unconditionally so the select vectorises. */
    for (long i = 0; i < n; i++) {
        float g = dy[i];
        dx[i] += y[i] > 0.0f ? g : 0.0f;
    }
}

#define INV_SQRT2 0.70710678118654752440f
#define INV_SQRT_2PI 0.39894228040143267794f

/* y [n] = x Phi(x) = 0.5 x (1 + erf(x / sqrt 2)) */
static void gelu_forward(float *restrict y, const float *restrict x, long n)
{
    for (long i = 0; i < n; i++) y[i] = 0.5f * x[i] * (1.0f + erff(x[i] * INV_SQRT2));
}

/* dx [n] += dy [n] * (Phi(x) + x phi(x)); x [n] the forward input */
static void gelu_backward_k(float *restrict dx, const float *restrict dy, const float *restrict x, long n)
{
    for (long i = 0; i < n; i++) {
        const float cdf = 0.5f * (1.0f + erff(x[i] * INV_SQRT2));
        const float pdf = INV_SQRT_2PI * expf(-0.5f * x[i] * x[i]);
        dx[i] += dy[i] * (cdf + x[i] * pdf);
    }
}

/* y [n] = tanh(x) */
static void tanh_forward(float *restrict y, const float *restrict x, long n)
{
    for (long i = 0; i < n; i++) y[i] = tanhf(x[i]);
}

/* dx [n] += dy [n] * (1 - y^2); y [n] the forward output */
static void tanh_backward_k(float *restrict dx, const float *restrict dy, const float *restrict y, long n)
{
    for (long i = 0; i < n; i++) dx[i] += dy[i] * (1.0f - y[i] * y[i]);
}

/* y [n] = 1 / (1 + exp(-x)); exp overflows to inf for x < -88 and y becomes 0, never NaN */
static void sigmoid_forward(float *restrict y, const float *restrict x, long n)
{
    for (long i = 0; i < n; i++) y[i] = 1.0f / (1.0f + expf(-x[i]));
}

/* dx [n] += dy [n] * y (1 - y); y [n] the forward output */
static void sigmoid_backward_k(float *restrict dx, const float *restrict dy, const float *restrict y, long n)
{
    for (long i = 0; i < n; i++) dx[i] += dy[i] * y[i] * (1.0f - y[i]);
}

/* Each activation's kernels; the backward reads v = the forward output y, or
 * the input x where it needs it (gelu). */
enum { PW_RELU, PW_GELU, PW_TANH, PW_SIGMOID };
static const struct {
    const char *name;
    void (*forward)(float *restrict y, const float *restrict x, long n);
    void (*backward)(float *restrict dx, const float *restrict dy, const float *restrict v, long n);
    int reads_x;
} pointwise_ops[] = {
    [PW_RELU] = {"relu", relu_forward, relu_backward_k, 0},
    [PW_GELU] = {"gelu", gelu_forward, gelu_backward_k, 1},
    [PW_TANH] = {"tanh", tanh_forward, tanh_backward_k, 0},
    [PW_SIGMOID] = {"sigmoid", sigmoid_forward, sigmoid_backward_k, 0},
};

/* dy [n] *= (y > 0), in place: the relu backward of an input that takes dy's block */
static void relu_mask_inplace(float *restrict dy, const float *restrict y, long n)
{
    for (long i = 0; i < n; i++) {
        float g = dy[i];
        dy[i] = y[i] > 0.0f ? g : 0.0f;
    }
}

/* ip: 0 the op */
static void pointwise_backward(dp_ctx *c, dp_node *nd)
{
    const int op = nd->ip[0];
    if (op == PW_RELU) {
        /* x's first gradient is dy masked: mask dy's own block instead of zeroing a new one and adding */
        float *dy = nd->out->grad;
        if (dp_grad_take(nd, nd->in[0])) {
            relu_mask_inplace(dy, nd->out->data, nd->out->n);
            return;
        }
    }
    float *g = dp_grad(c, nd->in[0]);
    if (g)
        pointwise_ops[op].backward(g, nd->out->grad, pointwise_ops[op].reads_x ? nd->in[0]->data : nd->out->data,
                                   nd->out->n);
}

static dp_tensor *pointwise(dp_ctx *c, dp_tensor *x, int op)
{
    if (!x) return NULL;
    dp_tensor *y = dp_tensor_new(c, x->ndim, x->shape);
    if (!y) return NULL;
    pointwise_ops[op].forward(y->data, x->data, x->n);
    dp_node *nd = dp_tape_push(c, pointwise_backward, pointwise_ops[op].name, y, 1, &x);
    if (nd) nd->ip[0] = op;
    return y;
}

dp_tensor *dp_relu(dp_ctx *c, dp_tensor *x) { return pointwise(c, x, PW_RELU); }
dp_tensor *dp_gelu(dp_ctx *c, dp_tensor *x) { return pointwise(c, x, PW_GELU); }
dp_tensor *dp_tanh(dp_ctx *c, dp_tensor *x) { return pointwise(c, x, PW_TANH); }
dp_tensor *dp_sigmoid(dp_ctx *c, dp_tensor *x) { return pointwise(c, x, PW_SIGMOID); }

/* ------------------------------------------------------------------ softmax / log-softmax */

static float row_max(const float *restrict x, int D)
{
    float m = x[0];
    for (int j = 1; j < D; j++) m = x[j] > m ? x[j] : m;
    return m;
}

/* y [R,D] = softmax(x [R,D] * s) per row, s = 1 / temperature > 0 */
static void softmax_forward(float *restrict y, const float *restrict x, long R, int D, float s)
{
    for (long r = 0; r < R; r++) {
        const float *restrict xr = x + r * D;
        float *restrict yr = y + r * D;
        const float m = row_max(xr, D); /* max(x s) = s max(x) for s > 0 */
        float sum = 0.0f;
        for (int j = 0; j < D; j++) {
            yr[j] = expf((xr[j] - m) * s);
            sum += yr[j];
        }
        const float inv = 1.0f / sum;
        for (int j = 0; j < D; j++) yr[j] *= inv;
    }
}

/* dx [R,D] += s * y * (dy - <dy, y>) per row; y [R,D] the forward output */
static void softmax_backward_k(float *restrict dx, const float *restrict dy, const float *restrict y, long R, int D,
                               float s)
{
    for (long r = 0; r < R; r++) {
        const float *restrict dyr = dy + r * D, *restrict yr = y + r * D;
        float *restrict dxr = dx + r * D;
        float dot = 0.0f;
        for (int j = 0; j < D; j++) dot += dyr[j] * yr[j];
        for (int j = 0; j < D; j++) dxr[j] += s * yr[j] * (dyr[j] - dot);
    }
}

/* ip: 0 D; fp: 0 s = 1/t */
static void softmax_backward(dp_ctx *c, dp_node *nd)
{
    float *g = dp_grad(c, nd->in[0]);
    const int D = nd->ip[0];
    if (g) softmax_backward_k(g, nd->out->grad, nd->out->data, nd->out->n / D, D, nd->fp[0]);
}

dp_tensor *dp_softmax(dp_ctx *c, dp_tensor *x, float t)
{
    if (!x) return NULL;
    if (!(t > 0.0f) || isinf(t)) return dp_fail(c, DP_ERR_ARG, "softmax: temperature %g (must be finite and > 0)", t);
    const int D = x->shape[x->ndim - 1];
    dp_tensor *y = dp_tensor_new(c, x->ndim, x->shape);
    if (!y) return NULL;
    softmax_forward(y->data, x->data, x->n / D, D, 1.0f / t);
    dp_node *nd = dp_tape_push(c, softmax_backward, "softmax", y, 1, &x);
    if (nd) {
        nd->ip[0] = D;
        nd->fp[0] = 1.0f / t;
    }
    return y;
}

/* y [R,D] = x - logsumexp(x) per row */
static void log_softmax_forward(float *restrict y, const float *restrict x, long R, int D)
{
    for (long r = 0; r < R; r++) {
        const float *restrict xr = x + r * D;
        float *restrict yr = y + r * D;
        const float m = row_max(xr, D);
        float sum = 0.0f;
        for (int j = 0; j < D; j++) sum += expf(xr[j] - m);
        const float lse = m + logf(sum);
        for (int j = 0; j < D; j++) yr[j] = xr[j] - lse;
    }
}

/* dx [R,D] += dy - exp(y) * sum(dy) per row; y [R,D] the forward output */
static void log_softmax_backward_k(float *restrict dx, const float *restrict dy, const float *restrict y, long R, int D)
{
    for (long r = 0; r < R; r++) {
        const float *restrict dyr = dy + r * D, *restrict yr = y + r * D;
        float *restrict dxr = dx + r * D;
        float sum = 0.0f;
        for (int j = 0; j < D; j++) sum += dyr[j];
        for (int j = 0; j < D; j++) dxr[j] += dyr[j] - expf(yr[j]) * sum;
    }
}

/* ip: 0 D */
static void log_softmax_backward(dp_ctx *c, dp_node *nd)
{
    float *g = dp_grad(c, nd->in[0]);
    const int D = nd->ip[0];
    if (g) log_softmax_backward_k(g, nd->out->grad, nd->out->data, nd->out->n / D, D);
}

dp_tensor *dp_log_softmax(dp_ctx *c, dp_tensor *x)
{
    if (!x) return NULL;
    const int D = x->shape[x->ndim - 1];
    dp_tensor *y = dp_tensor_new(c, x->ndim, x->shape);
    if (!y) return NULL;
    log_softmax_forward(y->data, x->data, x->n / D, D);
    dp_node *nd = dp_tape_push(c, log_softmax_backward, "log_softmax", y, 1, &x);
    if (nd) nd->ip[0] = D;
    return y;
}

/* ------------------------------------------------------------------ dropout */

/* saved[0]: mask [n] holding 0 or 1/(1-p) (arena scratch) */
static void dropout_backward(dp_ctx *c, dp_node *nd)
{
    float *g = dp_grad(c, nd->in[0]);
    if (g) {
        float *restrict gx = g;
        const float *restrict dy = nd->out->grad, *restrict m = nd->saved[0];
        for (long i = 0; i < nd->out->n; i++) gx[i] += dy[i] * m[i];
    }
}

dp_tensor *dp_dropout(dp_ctx *c, dp_tensor *x, float p)
{
    if (!x) return NULL;
    if (!(p >= 0.0f && p <= 1.0f)) return dp_fail(c, DP_ERR_ARG, "dropout: p = %g outside [0, 1]", p);
    if (!c->training || p == 0.0f) return x; /* identity, as F.dropout(training=False): the input itself */
    dp_tensor *y = dp_tensor_new(c, x->ndim, x->shape);
    if (!y) return NULL;
    dp_node *nd = dp_tape_push(c, dropout_backward, "dropout", y, 1, &x);
    float *mask = NULL;
    if (nd) {
        mask = dp_scratch(c, (size_t)x->n * sizeof(float));
        if (!mask) return NULL;
        nd->saved[0] = mask;
    }
    const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f; /* p = 1 drops everything */
    const float *restrict px = x->data;
    float *restrict py = y->data;
    for (long i = 0; i < x->n; i++) {
        const float m = dp_rng_uniform(&c->dropout_rng) >= p ? scale : 0.0f;
        py[i] = px[i] * m;
        if (mask) mask[i] = m;
    }
    return y;
}

/* ------------------------------------------------------------------ straight-through one-hot */

/* y [R,D] = one-hot of each row's first maximum of x [R,D] */
static void onehot_forward(float *restrict y, const float *restrict x, long R, int D)
{
    for (long r = 0; r < R; r++) {
        const float *xr = x + r * D;
        int best = 0;
        for (int j = 1; j < D; j++)
            if (xr[j] > xr[best]) best = j;
        memset(y + r * D, 0, (size_t)D * sizeof(float));
        y[r * D + best] = 1.0f;
    }
}

/* The gradient the hard sample passes to the soft one unchanged (straight-through). */
static void onehot_st_backward(dp_ctx *c, dp_node *nd)
{
    float *g = dp_grad(c, nd->in[0]);
    if (!g) return;
    const float *restrict dy = nd->out->grad;
    for (long i = 0; i < nd->out->n; i++) g[i] += dy[i];
}

dp_tensor *dp_onehot_st(dp_ctx *c, dp_tensor *soft)
{
    if (!soft) return NULL;
    const int D = soft->shape[soft->ndim - 1];
    dp_tensor *y = dp_tensor_new(c, soft->ndim, soft->shape);
    if (!y) return NULL;
    onehot_forward(y->data, soft->data, soft->n / D, D);
    if (!dp_tape_push(c, onehot_st_backward, "onehot_st", y, 1, &soft) && c->status != DP_OK) return NULL;
    return y;
}
