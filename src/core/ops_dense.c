/* Dense ops: matmul and linear on OpenBLAS sgemm, per-channel bias, the
 * elementwise add/mul/scale, the DARTS weighted sum, and the reshape/flatten
 * views.
 *
 * Every op computes its output into a new arena tensor and, when a gradient is
 * wanted, pushes a node whose backward accumulates (+=) into the inputs'
 * gradient buffers. Semantics follow PyTorch: dp_matmul = torch.mm with
 * optional transposes, dp_linear = torch.nn.functional.linear (y = x W^T + b),
 * dp_reshape/dp_flatten = Tensor.view (shares storage and gradient). */
#include <string.h>

#include <cblas.h>

#include "core/tape.h"

/* ------------------------------------------------------------------ helpers */

static int same_shape(const dp_tensor *a, const dp_tensor *b)
{
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

static dp_tensor *shape_mismatch(dp_ctx *c, const char *op, const dp_tensor *a, const dp_tensor *b)
{
    return dp_fail(c, DP_ERR_SHAPE, "%s: shapes differ ([%d,%d,%d,%d]/%dd vs [%d,%d,%d,%d]/%dd)", op, a->shape[0],
                   a->shape[1], a->shape[2], a->shape[3], a->ndim, b->shape[0], b->shape[1], b->shape[2],
                   b->shape[3], b->ndim);
}

/* g [n] += s * dy [n] */
static void axpy_acc(float *restrict g, const float *restrict dy, float s, long n)
{
    for (long i = 0; i < n; i++) g[i] += s * dy[i];
}

/* g [n] += dy [n] * v [n] */
static void mul_acc(float *restrict g, const float *restrict dy, const float *restrict v, long n)
{
    for (long i = 0; i < n; i++) g[i] += dy[i] * v[i];
}

/* ------------------------------------------------------------------ matmul */

/* ip: 0 trans_a, 1 trans_b, 2 M, 3 N, 4 K */
static void matmul_backward(dp_ctx *c, dp_node *nd)
{
    dp_tensor *a = nd->in[0], *b = nd->in[1];
    const int ta = nd->ip[0], tb = nd->ip[1], M = nd->ip[2], N = nd->ip[3], K = nd->ip[4];
    const int lda = ta ? M : K, ldb = tb ? K : N;
    const float *dC = nd->out->grad; /* [M,N] */
    float *ga = dp_grad(c, a);
    float *gb = dp_grad(c, b);
    if (ga) {
        if (!ta) /* dA [M,K] += dC [M,N] op(b)^T */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, tb ? CblasNoTrans : CblasTrans, M, K, N, 1.0f, dC, N, b->data,
                        ldb, 1.0f, ga, K);
        else /* dA^T: a is [K,M]; dA [K,M] += op(b) dC^T */
            cblas_sgemm(CblasRowMajor, tb ? CblasTrans : CblasNoTrans, CblasTrans, K, M, N, 1.0f, b->data, ldb, dC,
                        N, 1.0f, ga, M);
    }
    if (gb) {
        if (!tb) /* dB [K,N] += op(a)^T dC */
            cblas_sgemm(CblasRowMajor, ta ? CblasNoTrans : CblasTrans, CblasNoTrans, K, N, M, 1.0f, a->data, lda, dC,
                        N, 1.0f, gb, N);
        else /* b is [N,K]; dB [N,K] += dC^T op(a) */
            cblas_sgemm(CblasRowMajor, CblasTrans, ta ? CblasTrans : CblasNoTrans, N, K, M, 1.0f, dC, N, a->data,
                        lda, 1.0f, gb, K);
    }
}

dp_tensor *dp_matmul(dp_ctx *c, dp_tensor *a, dp_tensor *b, int trans_a, int trans_b)
{
    if (!a || !b) return NULL;
    if (!dp_check_ndim(c, "matmul", a, 2) || !dp_check_ndim(c, "matmul", b, 2)) return NULL;
    trans_a = !!trans_a;
    trans_b = !!trans_b;
    const int M = trans_a ? a->shape[1] : a->shape[0], K = trans_a ? a->shape[0] : a->shape[1];
    const int Kb = trans_b ? b->shape[1] : b->shape[0], N = trans_b ? b->shape[0] : b->shape[1];
    if (K != Kb)
        return dp_fail(c, DP_ERR_SHAPE, "matmul: inner dims differ: op(a) [%d,%d] @ op(b) [%d,%d] (trans %d,%d)", M,
                       K, Kb, N, trans_a, trans_b);
    dp_tensor *y = dp_tensor_new(c, 2, (int[]){M, N});
    if (!y) return NULL;
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N, K, 1.0f,
                a->data, trans_a ? M : K, b->data, trans_b ? K : N, 0.0f, y->data, N);
    dp_node *nd = dp_tape_push(c, matmul_backward, "matmul", y, 2, (dp_tensor *[]){a, b});
    if (nd) {
        nd->ip[0] = trans_a;
        nd->ip[1] = trans_b;
        nd->ip[2] = M;
        nd->ip[3] = N;
        nd->ip[4] = K;
    }
    return y;
}

/* ------------------------------------------------------------------ linear */

/* y [N,out] = x [N,in] w^T [in,out] + b [out] (b may be NULL) */
static void linear_forward(float *restrict y, const float *restrict x, const float *restrict w,
                           const float *restrict b, int N, int in, int out)
{
    if (b)
        for (int r = 0; r < N; r++) memcpy(y + (long)r * out, b, (size_t)out * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, out, in, 1.0f, x, in, w, in, b ? 1.0f : 0.0f, y, out);
}

/* db [out] += column sums of dy [N,out] */
static void colsum_acc(float *restrict db, const float *restrict dy, int N, int out)
{
    for (int r = 0; r < N; r++) {
        const float *restrict row = dy + (long)r * out;
        for (int j = 0; j < out; j++) db[j] += row[j];
    }
}

/* ip: 0 N, 1 in, 2 out */
static void linear_backward(dp_ctx *c, dp_node *nd)
{
    dp_tensor *x = nd->in[0], *w = nd->in[1], *b = nd->in[2];
    const int N = nd->ip[0], in = nd->ip[1], out = nd->ip[2];
    const float *dy = nd->out->grad; /* [N,out] */
    float *gx = dp_grad(c, x);
    float *gw = dp_grad(c, w);
    float *gb = b ? dp_grad(c, b) : NULL;
    if (gx) /* dx [N,in] += dy [N,out] w [out,in] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, in, out, 1.0f, dy, out, w->data, in, 1.0f, gx, in);
    if (gw) /* dw [out,in] += dy^T [out,N] x [N,in], straight into the grad buffer */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, N, 1.0f, dy, out, x->data, in, 1.0f, gw, in);
    if (gb) colsum_acc(gb, dy, N, out);
}

dp_tensor *dp_linear(dp_ctx *c, dp_tensor *x, dp_tensor *w, dp_tensor *b)
{
    if (!x || !w) return NULL;
    if (!dp_check_ndim(c, "linear x", x, 2) || !dp_check_ndim(c, "linear w", w, 2)) return NULL;
    const int N = x->shape[0], in = x->shape[1], out = w->shape[0];
    if (w->shape[1] != in)
        return dp_fail(c, DP_ERR_SHAPE, "linear: x [%d,%d] needs w [out,%d], got w [%d,%d]", N, in, in, w->shape[0],
                       w->shape[1]);
    if (b && b->n != out) return dp_fail(c, DP_ERR_SHAPE, "linear: bias has %ld elements, w has %d rows", b->n, out);
    dp_tensor *y = dp_tensor_new(c, 2, (int[]){N, out});
    if (!y) return NULL;
    linear_forward(y->data, x->data, w->data, b ? b->data : NULL, N, in, out);
    dp_node *nd = dp_tape_push(c, linear_backward, "linear", y, 3, (dp_tensor *[]){x, w, b});
    if (nd) {
        nd->ip[0] = N;
        nd->ip[1] = in;
        nd->ip[2] = out;
    }
    return y;
}

/* ------------------------------------------------------------------ bias_add */

/* y [N,C,S] = x [N,C,S] + b [C]; S = product of dims after 1 (1 for 2-D). */
static void bias_add_forward(float *restrict y, const float *restrict x, const float *restrict b, int N, int C,
                             long S)
{
    if (S == 1) {
        for (int r = 0; r < N; r++) {
            const float *restrict xr = x + (long)r * C;
            float *restrict yr = y + (long)r * C;
            for (int j = 0; j < C; j++) yr[j] = xr[j] + b[j];
        }
        return;
    }
    for (long nc = 0; nc < (long)N * C; nc++) {
        const float bc = b[nc % C];
        const float *restrict xs = x + nc * S;
        float *restrict ys = y + nc * S;
        for (long s = 0; s < S; s++) ys[s] = xs[s] + bc;
    }
}

/* db [C] += sum over n and s of dy [N,C,S] */
static void bias_sum_acc(float *restrict db, const float *restrict dy, int N, int C, long S)
{
    if (S == 1) {
        colsum_acc(db, dy, N, C);
        return;
    }
    for (long nc = 0; nc < (long)N * C; nc++) {
        db[nc % C] += dp_sum_lanes(dy + nc * S, S);
    }
}

/* ip: 0 N, 1 C; saved: none; S = n / (N C) */
static void bias_add_backward(dp_ctx *c, dp_node *nd)
{
    dp_tensor *x = nd->in[0], *b = nd->in[1];
    const int N = nd->ip[0], C = nd->ip[1];
    const long S = x->n / ((long)N * C);
    const float *dy = nd->out->grad;
    float *gx = dp_grad(c, x);
    float *gb = dp_grad(c, b);
    if (gx) axpy_acc(gx, dy, 1.0f, x->n);
    if (gb) bias_sum_acc(gb, dy, N, C, S);
}

dp_tensor *dp_bias_add(dp_ctx *c, dp_tensor *x, dp_tensor *b)
{
    if (!x || !b) return NULL;
    if (x->ndim < 2) return dp_fail(c, DP_ERR_SHAPE, "bias_add: x needs at least 2 dims [N,C,...], got %d", x->ndim);
    const int N = x->shape[0], C = x->shape[1];
    if (b->n != C) return dp_fail(c, DP_ERR_SHAPE, "bias_add: bias has %ld elements, x has %d channels", b->n, C);
    dp_tensor *y = dp_tensor_new(c, x->ndim, x->shape);
    if (!y) return NULL;
    bias_add_forward(y->data, x->data, b->data, N, C, x->n / ((long)N * C));
    dp_node *nd = dp_tape_push(c, bias_add_backward, "bias_add", y, 2, (dp_tensor *[]){x, b});
    if (nd) {
        nd->ip[0] = N;
        nd->ip[1] = C;
    }
    return y;
}

/* ------------------------------------------------------------------ add / mul / scale */

static void add_backward(dp_ctx *c, dp_node *nd)
{
    const float *dy = nd->out->grad;
    const long n = nd->out->n;
    dp_tensor *a = nd->in[0], *b = nd->in[1];
    /* da = dy: the first input with no gradient yet takes dy's block as it is
     * (not when a == b, whose two accumulations would then read what they write) */
    int i = a != b && dp_grad_take(nd, a) ? 1 : 0;
    for (; i < 2; i++) {
        int fresh;
        float *g = dp_grad_fresh(c, nd->in[i], &fresh);
        if (!g) continue;
        if (fresh)
            memcpy(g, dy, (size_t)n * sizeof *g);
        else
            axpy_acc(g, dy, 1.0f, n);
    }
}

dp_tensor *dp_add(dp_ctx *c, dp_tensor *a, dp_tensor *b)
{
    if (!a || !b) return NULL;
    if (!same_shape(a, b)) return shape_mismatch(c, "add", a, b);
    dp_tensor *y = dp_tensor_new(c, a->ndim, a->shape);
    if (!y) return NULL;
    const float *restrict pa = a->data, *restrict pb = b->data;
    float *restrict py = y->data;
    for (long i = 0; i < y->n; i++) py[i] = pa[i] + pb[i];
    dp_tape_push(c, add_backward, "add", y, 2, (dp_tensor *[]){a, b});
    return y;
}

/* g [n] = y > 0 ? dy : 0; g may be dy (no restrict on the two) */
static void relu_mask(float *g, const float *dy, const float *restrict y, long n)
{
    if (g == dy) {
        float *restrict d = g;
        for (long i = 0; i < n; i++) {
            float v = d[i];
            d[i] = y[i] > 0.0f ? v : 0.0f;
        }
        return;
    }
    float *restrict o = g;
    const float *restrict d = dy;
    for (long i = 0; i < n; i++) {
        float v = d[i];
        o[i] = y[i] > 0.0f ? v : 0.0f;
    }
}

/* relu(a + b) as one op (a residual block's end): the backward masks dy by the
 * output, then hands it on as add_backward does. */
static void add_relu_backward(dp_ctx *c, dp_node *nd)
{
    const long n = nd->out->n;
    float *dy = nd->out->grad, *g = dy;
    /* the mask goes into dy's own block, unless the block is borrowed (a recomputed segment's output) */
    if (nd->out->grad_pooled) {
        relu_mask(dy, dy, nd->out->data, n);
    } else {
        g = dp_scratch(c, (size_t)n * sizeof *g);
        if (!g) return;
        relu_mask(g, dy, nd->out->data, n);
    }
    dp_tensor *a = nd->in[0], *b = nd->in[1];
    int i = a != b && g == nd->out->grad && dp_grad_take(nd, a) ? 1 : 0;
    for (; i < 2; i++) {
        int fresh;
        float *gi = dp_grad_fresh(c, nd->in[i], &fresh);
        if (!gi) continue;
        if (fresh)
            memcpy(gi, g, (size_t)n * sizeof *gi);
        else
            axpy_acc(gi, g, 1.0f, n);
    }
}

dp_tensor *dp_add_relu(dp_ctx *c, dp_tensor *a, dp_tensor *b)
{
    if (!a || !b) return NULL;
    if (!same_shape(a, b)) return shape_mismatch(c, "add_relu", a, b);
    dp_tensor *y = dp_tensor_new(c, a->ndim, a->shape);
    if (!y) return NULL;
    const float *restrict pa = a->data, *restrict pb = b->data;
    float *restrict py = y->data;
    for (long i = 0; i < y->n; i++) {
        const float v = pa[i] + pb[i];
        py[i] = v > 0.0f ? v : 0.0f;
    }
    dp_tape_push(c, add_relu_backward, "add_relu", y, 2, (dp_tensor *[]){a, b});
    return y;
}

static void mul_backward(dp_ctx *c, dp_node *nd)
{
    dp_tensor *a = nd->in[0], *b = nd->in[1];
    const float *dy = nd->out->grad;
    float *ga = dp_grad(c, a);
    if (ga) mul_acc(ga, dy, b->data, a->n); /* da += dy * b */
    float *gb = dp_grad(c, b);
    if (gb) mul_acc(gb, dy, a->data, b->n); /* db += dy * a */
}

dp_tensor *dp_mul(dp_ctx *c, dp_tensor *a, dp_tensor *b)
{
    if (!a || !b) return NULL;
    if (!same_shape(a, b)) return shape_mismatch(c, "mul", a, b);
    dp_tensor *y = dp_tensor_new(c, a->ndim, a->shape);
    if (!y) return NULL;
    const float *pa = a->data, *pb = b->data; /* may alias each other (x * x) */
    float *restrict py = y->data;
    for (long i = 0; i < y->n; i++) py[i] = pa[i] * pb[i];
    dp_tape_push(c, mul_backward, "mul", y, 2, (dp_tensor *[]){a, b});
    return y;
}

/* fp: 0 s */
static void scale_backward(dp_ctx *c, dp_node *nd)
{
    float *g = dp_grad(c, nd->in[0]);
    if (g) axpy_acc(g, nd->out->grad, nd->fp[0], nd->out->n);
}

dp_tensor *dp_scale(dp_ctx *c, dp_tensor *a, float s)
{
    if (!a) return NULL;
    dp_tensor *y = dp_tensor_new(c, a->ndim, a->shape);
    if (!y) return NULL;
    const float *restrict pa = a->data;
    float *restrict py = y->data;
    for (long i = 0; i < y->n; i++) py[i] = s * pa[i];
    dp_node *nd = dp_tape_push(c, scale_backward, "scale", y, 1, &a);
    if (nd) nd->fp[0] = s;
    return y;
}

/* ------------------------------------------------------------------ weighted sum (DARTS mixed op) */

/* Inputs on the node: xs[0..n) then w. ip: 0 n; saved[0]: &w_off (long, arena). */
static void weighted_sum_backward(dp_ctx *c, dp_node *nd)
{
    const int n = nd->ip[0];
    dp_tensor *w = dp_node_in(nd, n);
    const long w_off = *(const long *)nd->saved[0];
    const float *dy = nd->out->grad;
    const long len = nd->out->n;
    float *gw = dp_grad(c, w);
    for (int i = 0; i < n; i++) {
        dp_tensor *x = dp_node_in(nd, i);
        if (!x) continue; /* the zero op: no input, no contribution to dw either */
        float *gx = dp_grad(c, x);
        if (gx) axpy_acc(gx, dy, w->data[w_off + i], len);       /* dx_i += w_i dy */
        if (gw) gw[w_off + i] += cblas_sdot((int)len, dy, 1, x->data, 1); /* dw_i += <dy, x_i> */
    }
}

dp_tensor *dp_weighted_sum(dp_ctx *c, int n, dp_tensor **xs, dp_tensor *w, long w_off)
{
    if (!w) return NULL;
    if (!xs) return dp_fail(c, DP_ERR_ARG, "weighted_sum: no member array");
    if (n < 1) return dp_fail(c, DP_ERR_ARG, "weighted_sum: %d members", n);
    if (w_off < 0 || w_off + n > w->n)
        return dp_fail(c, DP_ERR_ARG, "weighted_sum: weights [%ld, %ld) outside w of %ld elements", w_off, w_off + n,
                       w->n);
    const dp_tensor *ref = NULL;
    for (int i = 0; i < n; i++) {
        if (!xs[i]) continue;
        if (!ref)
            ref = xs[i];
        else if (!same_shape(ref, xs[i]))
            return dp_fail(c, DP_ERR_SHAPE, "weighted_sum: member %d has another shape than the first member", i);
    }
    if (!ref) return dp_fail(c, DP_ERR_ARG, "weighted_sum: all %d members are the zero op (no shape)", n);
    dp_tensor *y = dp_tensor_new(c, ref->ndim, ref->shape);
    if (!y) return NULL;
    memset(y->data, 0, (size_t)y->n * sizeof(float));
    for (int i = 0; i < n; i++)
        if (xs[i]) cblas_saxpy((int)y->n, w->data[w_off + i], xs[i]->data, 1, y->data, 1);

    dp_tensor **in = dp_scratch(c, (size_t)(n + 1) * sizeof *in);
    if (!in) return NULL;
    memcpy(in, xs, (size_t)n * sizeof *in);
    in[n] = w;
    dp_node *nd = dp_tape_push(c, weighted_sum_backward, "weighted_sum", y, n + 1, in);
    if (nd) {
        long *off = dp_scratch(c, sizeof *off);
        if (!off) return NULL;
        *off = w_off;
        nd->ip[0] = n;
        nd->saved[0] = off;
    }
    return y;
}

/* ------------------------------------------------------------------ views */

/* A view: same data; when a gradient is wanted its grad aliases x's buffer,
 * so whatever accumulates into the view lands in x's gradient (no tape node). */
static dp_tensor *make_view(dp_ctx *c, dp_tensor *x, int ndim, const int *shape, const char *op)
{
    if (ndim < 1 || ndim > DP_MAX_DIMS) return dp_fail(c, DP_ERR_SHAPE, "%s: %d dims (1..4 allowed)", op, ndim);
    for (int i = 0; i < ndim; i++)
        if (shape[i] <= 0) return dp_fail(c, DP_ERR_SHAPE, "%s: dim %d has size %d", op, i, shape[i]);
    if (dp_shape_numel(ndim, shape) != x->n)
        return dp_fail(c, DP_ERR_SHAPE, "%s: %ld elements cannot be viewed as %ld", op, x->n,
                       dp_shape_numel(ndim, shape));
    dp_tensor *v = dp_scratch(c, sizeof *v);
    if (!v) return NULL;
    memset(v, 0, sizeof *v);
    dp_tensor_set_shape(v, ndim, shape);
    v->data = x->data;
    if (c->grad_enabled && x->requires_grad) {
        v->grad = dp_grad(c, x);
        if (!v->grad) return NULL;
        v->requires_grad = 1;
    }
    return v;
}

dp_tensor *dp_reshape(dp_ctx *c, dp_tensor *x, int ndim, const int *shape)
{
    if (!x) return NULL;
    if (!shape) return dp_fail(c, DP_ERR_ARG, "reshape: no shape");
    return make_view(c, x, ndim, shape, "reshape");
}

dp_tensor *dp_flatten(dp_ctx *c, dp_tensor *x)
{
    if (!x) return NULL;
    const int N = x->shape[0];
    return make_view(c, x, 2, (int[]){N, (int)(x->n / N)}, "flatten");
}
