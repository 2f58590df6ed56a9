/* Channel ops: concatenation along dim 1, a channel slice and a channel
 * shuffle, for tensors [N, C, ...] of 2 to 4 dims (inner = product of the
 * dims after C), and the
 * strided spatial subsample of NCHW planes that FactorizedReduce needs.
 * All copy: a channel range of an NCHW tensor is N strided blocks, not a
 * contiguous view. Backward adds the matching blocks of dy back. */
#include <string.h>

#include "core/tape.h"

static long inner_size(const dp_tensor *t)
{
    long in = 1;
    for (int d = 2; d < t->ndim; d++) in *= t->shape[d];
    return in;
}

/* ---- concat ---- */

static void concat_backward_node(dp_ctx *c, dp_node *nd)
{
    const dp_tensor *y = nd->out;
    const long N = y->shape[0], Cy = y->shape[1], inner = inner_size(y);
    long c0 = 0;
    for (int i = 0; i < nd->nin; i++) {
        dp_tensor *x = dp_node_in(nd, i);
        const long Cx = x->shape[1], blk = Cx * inner;
        float *dx = dp_grad(c, x);
        if (c->status != DP_OK) return;
        if (dx)
            for (long n = 0; n < N; n++) {
                const float *src = y->grad + (n * Cy + c0) * inner;
                float *dst = dx + n * blk;
                for (long j = 0; j < blk; j++) dst[j] += src[j];
            }
        c0 += Cx;
    }
}

dp_tensor *dp_concat(dp_ctx *c, int n, dp_tensor **xs)
{
    if (n < 1 || !xs) return dp_fail(c, DP_ERR_ARG, "concat: %d inputs", n);
    for (int i = 0; i < n; i++)
        if (!xs[i]) return NULL;
    const dp_tensor *x0 = xs[0];
    if (x0->ndim < 2) return dp_fail(c, DP_ERR_SHAPE, "concat: input 0 is %d-d (need [N, C, ...])", x0->ndim);
    long ctot = 0;
    for (int i = 0; i < n; i++) {
        const dp_tensor *x = xs[i];
        int ok = x->ndim == x0->ndim && x->shape[0] == x0->shape[0];
        for (int d = 2; ok && d < x->ndim; d++) ok = x->shape[d] == x0->shape[d];
        if (!ok)
            return dp_fail(c, DP_ERR_SHAPE, "concat: input %d is [%d,%d,%d,%d] (%d-d), input 0 is [%d,%d,%d,%d] (%d-d)",
                           i, x->shape[0], x->shape[1], x->shape[2], x->shape[3], x->ndim, x0->shape[0], x0->shape[1],
                           x0->shape[2], x0->shape[3], x0->ndim);
        ctot += x->shape[1];
    }
    if (ctot > 0x7fffffff) return dp_fail(c, DP_ERR_SHAPE, "concat: %ld channels", ctot);
    int shape[DP_MAX_DIMS];
    memcpy(shape, x0->shape, sizeof shape);
    shape[1] = (int)ctot;
    dp_tensor *y = dp_tensor_new(c, x0->ndim, shape);
    if (!y) return NULL;
    const long N = shape[0], inner = inner_size(y);
    long c0 = 0;
    for (int i = 0; i < n; i++) {
        const long blk = xs[i]->shape[1] * inner;
        for (long b = 0; b < N; b++)
            memcpy(y->data + (b * ctot + c0) * inner, xs[i]->data + b * blk, (size_t)blk * sizeof(float));
        c0 += xs[i]->shape[1];
    }
    dp_node *nd = dp_tape_push(c, concat_backward_node, "concat", y, n, xs);
    if (!nd && c->status != DP_OK) return NULL;
    return y;
}

/* ---- slice ---- */

static void slice_backward_node(dp_ctx *c, dp_node *nd)
{
    dp_tensor *x = nd->in[0];
    float *dx = dp_grad(c, x);
    if (!dx) return;
    const long N = x->shape[0], Cx = x->shape[1], inner = inner_size(x);
    const long c0 = nd->ip[0], blk = (long)nd->out->shape[1] * inner;
    for (long n = 0; n < N; n++) {
        float *dst = dx + (n * Cx + c0) * inner;
        const float *src = nd->out->grad + n * blk;
        for (long j = 0; j < blk; j++) dst[j] += src[j];
    }
}

dp_tensor *dp_slice(dp_ctx *c, dp_tensor *x, int c0, int c1)
{
    if (!x) return NULL;
    if (x->ndim < 2) return dp_fail(c, DP_ERR_SHAPE, "slice: input is %d-d (need [N, C, ...])", x->ndim);
    if (c0 < 0 || c1 <= c0 || c1 > x->shape[1])
        return dp_fail(c, DP_ERR_ARG, "slice: channels [%d, %d) of %d", c0, c1, x->shape[1]);
    int shape[DP_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[1] = c1 - c0;
    dp_tensor *y = dp_tensor_new(c, x->ndim, shape);
    if (!y) return NULL;
    const long N = x->shape[0], Cx = x->shape[1], inner = inner_size(x), blk = (long)(c1 - c0) * inner;
    for (long n = 0; n < N; n++)
        memcpy(y->data + n * blk, x->data + (n * Cx + c0) * inner, (size_t)blk * sizeof(float));
    dp_node *nd = dp_tape_push(c, slice_backward_node, "slice", y, 1, &x);
    if (!nd) return c->status == DP_OK ? y : NULL;
    nd->ip[0] = c0;
    return y;
}

/* ---- channel shuffle ---- */

/* y channel j G + g <- x channel g (C / G) + j: the (G, C / G) channel grid
 * transposed. dir 0 copies x into y (forward), dir 1 adds dy into dx. */
static void shuffle_copy(float *x, float *y, long N, long C, long G, long inner, int dir)
{
    const long m = C / G;
    for (long n = 0; n < N; n++)
        for (long g = 0; g < G; g++)
            for (long j = 0; j < m; j++) {
                float *xs = x + (n * C + g * m + j) * inner, *ys = y + (n * C + j * G + g) * inner;
                if (dir == 0)
                    memcpy(ys, xs, (size_t)inner * sizeof(float));
                else
                    for (long i = 0; i < inner; i++) xs[i] += ys[i];
            }
}

static void shuffle_backward_node(dp_ctx *c, dp_node *nd)
{
    dp_tensor *x = nd->in[0];
    float *dx = dp_grad(c, x);
    if (!dx) return;
    shuffle_copy(dx, nd->out->grad, x->shape[0], x->shape[1], nd->ip[0], inner_size(x), 1);
}

dp_tensor *dp_channel_shuffle(dp_ctx *c, dp_tensor *x, int groups)
{
    if (!x) return NULL;
    if (x->ndim < 2) return dp_fail(c, DP_ERR_SHAPE, "channel shuffle: input is %d-d (need [N, C, ...])", x->ndim);
    if (groups < 1 || x->shape[1] % groups)
        return dp_fail(c, DP_ERR_ARG, "channel shuffle: %d groups do not divide %d channels", groups, x->shape[1]);
    dp_tensor *y = dp_tensor_new(c, x->ndim, x->shape);
    if (!y) return NULL;
    shuffle_copy(x->data, y->data, x->shape[0], x->shape[1], groups, inner_size(x), 0);
    dp_node *nd = dp_tape_push(c, shuffle_backward_node, "channel_shuffle", y, 1, &x);
    if (!nd) return c->status == DP_OK ? y : NULL;
    nd->ip[0] = groups;
    return y;
}

/* ---- subsample ---- */

/* One strided grid of each [H, W] plane: y [P, Ho, Wo] = x [P, H, W] at rows
 * offset + stride i and columns offset + stride j, zero where that lies past
 * the input (only dp_subsample_pad asks for such cells). */
typedef struct sub_geom {
    long planes;
    int H, W, Ho, Wo, s, o;
} sub_geom;

/* Rows and columns of the output that read a real input cell. */
static int sub_valid(int n_in, int n_out, int s, int o)
{
    const int v = n_in > o ? (n_in - o + s - 1) / s : 0;
    return v < n_out ? v : n_out;
}

/* back = 0: y <- x's grid (zero past the input); back = 1: x's grid += y, the
 * zero cells having had no input. */
static inline __attribute__((always_inline)) void subsample_k(float *x, float *y, const sub_geom *g, const int back)
{
    const int vh = sub_valid(g->H, g->Ho, g->s, g->o), vw = sub_valid(g->W, g->Wo, g->s, g->o);
    for (long p = 0; p < g->planes; p++) {
        float *xp = x + p * g->H * g->W + (long)g->o * g->W + g->o;
        float *yp = y + p * g->Ho * g->Wo;
        for (int i = 0; i < (back ? vh : g->Ho); i++) {
            float *yr = yp + (long)i * g->Wo;
            if (i >= vh) {
                memset(yr, 0, (size_t)g->Wo * sizeof(float));
                continue;
            }
            float *xr = xp + (long)i * g->s * g->W;
            if (back) {
                for (int j = 0; j < vw; j++) xr[(long)j * g->s] += yr[j];
                continue;
            }
            for (int j = 0; j < vw; j++) yr[j] = xr[(long)j * g->s];
            for (int j = vw; j < g->Wo; j++) yr[j] = 0.0f;
        }
    }
}

static void sub_geom_of(sub_geom *g, const dp_tensor *x, const dp_tensor *y, int stride, int offset)
{
    g->planes = (long)x->shape[0] * x->shape[1];
    g->H = x->shape[2];
    g->W = x->shape[3];
    g->Ho = y->shape[2];
    g->Wo = y->shape[3];
    g->s = stride;
    g->o = offset;
}

/* ip: 0 stride, 1 offset */
static void subsample_backward_node(dp_ctx *c, dp_node *nd)
{
    float *dx = dp_grad(c, nd->in[0]);
    if (!dx) return;
    sub_geom g;
    sub_geom_of(&g, nd->in[0], nd->out, nd->ip[0], nd->ip[1]);
    subsample_k(dx, nd->out->grad, &g, 1);
}

dp_tensor *dp_subsample_pad(dp_ctx *c, dp_tensor *x, int stride, int offset, int ho, int wo)
{
    if (!x) return NULL;
    if (!dp_check_ndim(c, "subsample", x, 4)) return NULL;
    if (stride < 1 || offset < 0 || ho < 1 || wo < 1)
        return dp_fail(c, DP_ERR_ARG, "subsample: stride %d, offset %d, output %dx%d of a %dx%d input", stride,
                       offset, ho, wo, x->shape[2], x->shape[3]);
    dp_tensor *y = dp_tensor_new(c, 4, (int[]){x->shape[0], x->shape[1], ho, wo});
    if (!y) return NULL;
    sub_geom g;
    sub_geom_of(&g, x, y, stride, offset);
    subsample_k(x->data, y->data, &g, 0);
    dp_node *nd = dp_tape_push(c, subsample_backward_node, "subsample", y, 1, &x);
    if (!nd) return c->status == DP_OK ? y : NULL;
    nd->ip[0] = stride;
    nd->ip[1] = offset;
    return y;
}

dp_tensor *dp_subsample(dp_ctx *c, dp_tensor *x, int stride, int offset)
{
    if (!x) return NULL;
    if (!dp_check_ndim(c, "subsample", x, 4)) return NULL;
    if (stride < 1 || offset < 0 || offset >= x->shape[2] || offset >= x->shape[3])
        return dp_fail(c, DP_ERR_ARG, "subsample: stride %d, offset %d of a %dx%d input", stride, offset,
                       x->shape[2], x->shape[3]);
    const int ho = (x->shape[2] - offset + stride - 1) / stride, wo = (x->shape[3] - offset + stride - 1) / stride;
    return dp_subsample_pad(c, x, stride, offset, ho, wo);
}
