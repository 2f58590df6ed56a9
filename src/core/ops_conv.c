/* 2-D convolution (dp_conv2d): forward and backward kernels on OpenBLAS.
 *
 * Layout: x [N, Cin, H, W], w [Cout, Cin/G, kh, kw] (row-major = a GEMM matrix
 * [Cout, K] per group, K = Cin/G*kh*kw), y [N, Cout, Ho, Wo], P = Ho*Wo.
 * The im2col + GEMM scheme of Caffe / PyTorch's slow_conv2d (Chellapilla et
 * al., "High performance convolutional neural networks for document
 * processing", 2006):
 *
 *   forward, per image (or tile of T small images) and group g:
 *     col  [K, T*P]  = im2col(x_n)                (skipped for 1x1/s1/p0, T = 1)
 *     y_ng [Og, P]   = W_g [Og, K] . col          straight into NCHW (T = 1):
 *                                                 bias pre-filled, beta = 1
 *   backward, same loop, col recomputed from x (cheaper than keeping N*K*P
 *   floats: the block stays in L2 instead of streaming through DRAM twice):
 *     db   += row sums of dY_ng                   while dY_n is in cache
 *     dW_g += dY_ng [Og, T*P] . col^T             beta = 1 into the grad buffer
 *     dcol  = W_g^T . dY_ng ; dx_n += col2im(dcol)   only if x wants a grad
 *                                                 (a first layer skips it)
 *
 * One GEMM per image rather than one over the whole batch: sgemm is as fast
 * on [64 x 196 x 288] as on [64 x 12544 x 288], and the per-image blocks (col, dcol, y_n) stay in L2 and need no scatter to NCHW.
 * Images with few output cells (P < DP_CONV_TILE_COLS) go T at a time so the
 * GEMM stays wide; their results pass through an [Og, T*P] buffer to NCHW.
 *
 * Special cases:
 *  - Cin/G == 1, G > 1 (depthwise, any channel multiplier): the direct
 *    kernels of conv_depthwise.c instead of G GEMMs with one-row operands;
 *  - K <= DP_SMALLK_MAX (12) on an AVX2/FMA CPU (a first layer on one-channel
 *    images: K = 9): conv_smallk.c kernels for y and dW/db, where sgemm is
 *    slow; dX, when wanted, still goes through sgemm;
 *  - groups 1, dilation 1, 16k output (dX: input) channels, kh*kw > 1, K > 12
 *    on an AVX-512F CPU (unless DP_CONV=gemm): conv_direct.c / conv_direct_dw.c
 *    kernels for y, dX and dW/db, each where its fits_* says so;
 *    the rest of the pass stays on the GEMM path below;
 *  - the first GEMM conv of a process runs dp_blas_warm() (blas_warm.c:
 *    without it these per-image sgemm calls are slow in a fresh process).
 * All scratch (col, dcol, tiles) comes from the context's arena. */
#include <cblas.h>
#include <string.h>

#include "core/blas_warm.h"
#include "core/conv_depthwise.h"
#include "core/conv_direct.h"
#include "core/conv_smallk.h"
#include "core/im2col.h"
#include "core/tape.h"

/* Minimum GEMM width (columns) before images are grouped into tiles. */
#define DP_CONV_TILE_COLS 192

typedef struct conv_plan {
    dp_conv_geom g;
    int T;        /* images per GEMM */
    int direct;   /* Cg == 1 && groups > 1: conv_depthwise.c */
    int is1x1;    /* 1x1, stride 1, pad 0: x_n is its own column block */
    int smallk;   /* K <= DP_SMALLK_MAX on an AVX2/FMA CPU: conv_smallk.c kernels, T = 1 */
    int direct_fwd, direct_dx, direct_dw; /* conv_direct*.c kernels (AVX-512F) for y, dX, dW/db */
} conv_plan;

static void conv_plan_init(conv_plan *p, const dp_tensor *x, const dp_tensor *w, int stride, int pad, int dil,
                           int groups)
{
    dp_conv_geom *g = &p->g;
    g->N = x->shape[0];
    g->C = x->shape[1];
    g->H = x->shape[2];
    g->W = x->shape[3];
    g->O = w->shape[0];
    g->kh = w->shape[2];
    g->kw = w->shape[3];
    g->stride = stride;
    g->pad = pad;
    g->dil = dil;
    g->groups = groups;
    g->Cg = g->C / groups;
    g->Og = g->O / groups;
    g->K = g->Cg * g->kh * g->kw;
    g->Ho = (g->H + 2 * pad - dil * (g->kh - 1) - 1) / stride + 1;
    g->Wo = (g->W + 2 * pad - dil * (g->kw - 1) - 1) / stride + 1;
    g->P = (long)g->Ho * g->Wo;
    p->direct = g->Cg == 1 && groups > 1;
    p->is1x1 = g->kh == 1 && g->kw == 1 && stride == 1 && pad == 0;
    p->smallk = !p->direct && g->K <= DP_SMALLK_MAX && dp_smallk_available();
    const int avx512 = !p->direct && !p->smallk && dp_direct_available();
    p->direct_fwd = avx512 && dp_direct_fits_forward(g);
    p->direct_dx = avx512 && dp_direct_fits_dx(g);
    p->direct_dw = avx512 && dp_direct_fits_dw(g);
    long t = (DP_CONV_TILE_COLS + g->P - 1) / g->P;
    p->T = p->smallk ? 1 : (int)(t < 1 ? 1 : t > g->N ? g->N : t);
}

/* Sum of x[0..n) with 8 independent partial sums, so the loop pipelines and
 * vectorises (a single float accumulator is a serial add chain). */
static float sum_f(const float *x, long n)
{
    float acc[8] = {0};
    long i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += x[i + j];
    float s = 0.0f;
    for (; i < n; i++) s += x[i];
    return s + ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

/* ---- GEMM kernels ---- */

/* The column block of images [n0, n0 + tn), group gi: x itself for one 1x1
 * image, else their im2col side by side in col. */
static const float *conv_cols(const conv_plan *pl, float *col, const float *x, int n0, int tn, int gi)
{
    const dp_conv_geom *g = &pl->g;
    const long HW = (long)g->H * g->W, ldc = tn * g->P;
    if (pl->is1x1 && tn == 1) return x + ((long)n0 * g->C + (long)gi * g->Cg) * HW;
    for (int t = 0; t < tn; t++)
        dp_im2col(g, col + t * g->P, ldc, x + ((long)(n0 + t) * g->C + (long)gi * g->Cg) * HW);
    return col;
}

/* y [N, O, Ho, Wo] <- x [N, C, H, W] (*) w [O, Cg, kh, kw] + b [O] or NULL.
 * col: scratch [K, T*P] (unused for 1x1 with T == 1); tmp: scratch [Og, T*P] (T > 1). */
static void conv2d_gemm_forward(float *y, const float *x, const float *w, const float *b, const conv_plan *pl,
                                float *col, float *tmp)
{
    const dp_conv_geom *g = &pl->g;
    const long P = g->P;
    for (int n0 = 0; n0 < g->N; n0 += pl->T) {
        const int tn = g->N - n0 < pl->T ? g->N - n0 : pl->T;
        const long ldc = tn * P;
        for (int gi = 0; gi < g->groups; gi++) {
            const float *wg = w + (long)gi * g->Og * g->K;
            const float *B = conv_cols(pl, col, x, n0, tn, gi);
            if (pl->smallk) {
                dp_smallk_forward(y + ((long)n0 * g->O + (long)gi * g->Og) * P, wg, b ? b + gi * g->Og : NULL, B,
                                  ldc, g->Og, g->K, P);
                continue;
            }
            if (tn == 1) {
                float *yg = y + ((long)n0 * g->O + (long)gi * g->Og) * P;
                float beta = 0.0f;
                if (b) {
                    for (int o = 0; o < g->Og; o++) {
                        const float bo = b[gi * g->Og + o];
                        for (long i = 0; i < P; i++) yg[o * P + i] = bo;
                    }
                    beta = 1.0f;
                }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g->Og, (int)P, g->K, 1.0f, wg, g->K, B,
                            (int)ldc, beta, yg, (int)P);
                continue;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g->Og, (int)ldc, g->K, 1.0f, wg, g->K, B, (int)ldc,
                        0.0f, tmp, (int)ldc);
            for (int t = 0; t < tn; t++)
                for (int o = 0; o < g->Og; o++) {
                    float *yr = y + ((long)(n0 + t) * g->O + (long)gi * g->Og + o) * P;
                    const float *tr = tmp + o * ldc + t * P;
                    const float bo = b ? b[gi * g->Og + o] : 0.0f;
                    for (long i = 0; i < P; i++) yr[i] = tr[i] + bo;
                }
        }
    }
}

/* dx [N, C, H, W] +=, dw [O, Cg, kh, kw] +=, db [O] += from dy [N, O, Ho, Wo];
 * any of dx/dw/db may be NULL. col/dcol: scratch [K, T*P]; dyt: scratch
 * [Og, T*P] (T > 1). */
static void conv2d_gemm_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w,
                                 const conv_plan *pl, float *col, float *dcol, float *dyt)
{
    const dp_conv_geom *g = &pl->g;
    const long HW = (long)g->H * g->W, P = g->P;
    for (int n0 = 0; n0 < g->N; n0 += pl->T) {
        const int tn = g->N - n0 < pl->T ? g->N - n0 : pl->T;
        const long ldc = tn * P;
        for (int gi = 0; gi < g->groups; gi++) {
            const float *wg = w + (long)gi * g->Og * g->K;
            const float *dyg = dy + ((long)n0 * g->O + (long)gi * g->Og) * P;
            long ldy = P;
            if (tn > 1) {
                for (int t = 0; t < tn; t++)
                    for (int o = 0; o < g->Og; o++)
                        memcpy(dyt + o * ldc + t * P, dyg + ((long)t * g->O + o) * P, (size_t)P * sizeof(float));
                dyg = dyt;
                ldy = ldc;
            }
            const int fused_db = pl->smallk && dw; /* the small-K kernel sums db in its dW pass */
            if (db && !fused_db)
                for (int o = 0; o < g->Og; o++) {
                    float s = 0.0f;
                    for (int t = 0; t < tn; t++) s += sum_f(dy + ((long)(n0 + t) * g->O + (long)gi * g->Og + o) * P, P);
                    db[gi * g->Og + o] += s;
                }
            if (dw) {
                const float *B = conv_cols(pl, col, x, n0, tn, gi);
                if (fused_db)
                    dp_smallk_backward(dw + (long)gi * g->Og * g->K, db ? db + gi * g->Og : NULL, dyg, B, ldc, g->Og,
                                       g->K, P);
                else
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g->Og, g->K, (int)ldc, 1.0f, dyg, (int)ldy,
                                B, (int)ldc, 1.0f, dw + (long)gi * g->Og * g->K, g->K);
            }
            if (dx) {
                float *dxg = dx + ((long)n0 * g->C + (long)gi * g->Cg) * HW;
                if (pl->is1x1 && tn == 1) {
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, g->Cg, (int)P, g->Og, 1.0f, wg, g->K, dyg,
                                (int)ldy, 1.0f, dxg, (int)P);
                    continue;
                }
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, g->K, (int)ldc, g->Og, 1.0f, wg, g->K, dyg,
                            (int)ldy, 0.0f, dcol, (int)ldc);
                for (int t = 0; t < tn; t++) dp_col2im(g, dxg + (long)t * g->C * HW, dcol + t * P, ldc);
            }
        }
    }
}

/* ---- the op ---- */

static void conv2d_backward_node(dp_ctx *c, dp_node *nd)
{
    dp_tensor *x = nd->in[0], *w = nd->in[1], *b = nd->in[2];
    conv_plan pl;
    conv_plan_init(&pl, x, w, nd->ip[0], nd->ip[1], nd->ip[2], nd->ip[3]);
    float *dx = dp_grad(c, x), *dw = dp_grad(c, w), *db = b ? dp_grad(c, b) : NULL;
    if (c->status != DP_OK) return;
    const float *dy = nd->out->grad;
    if (pl.direct) {
        if (!dp_dwconv_backward(c, dx, dw, dy, x->data, w->data, &pl.g)) return;
        if (db)
            for (int n = 0; n < pl.g.N; n++)
                for (int o = 0; o < pl.g.O; o++) db[o] += sum_f(dy + ((long)n * pl.g.O + o) * pl.g.P, pl.g.P);
        return;
    }
    if (pl.direct_dx && dx) {
        float *s = dp_scratch(c, dp_direct_dx_scratch(&pl.g));
        if (!s) return;
        dp_direct_dx(dx, dy, w->data, &pl.g, s);
        dx = NULL;
    }
    if (pl.direct_dw && dw) {
        float *s = dp_scratch(c, dp_direct_dw_scratch(&pl.g));
        if (!s) return;
        dp_direct_dw(dw, db, dy, x->data, &pl.g, s);
        dw = db = NULL;
    }
    if (!dx && !dw && !db) return;
    const size_t colsz = (size_t)pl.g.K * pl.T * pl.g.P * sizeof(float);
    float *col = dw && !(pl.is1x1 && pl.T == 1) ? dp_scratch(c, colsz) : NULL;
    float *dcol = dx && !(pl.is1x1 && pl.T == 1) ? dp_scratch(c, colsz) : NULL;
    float *dyt = pl.T > 1 ? dp_scratch(c, (size_t)pl.g.Og * pl.T * pl.g.P * sizeof(float)) : NULL;
    if (c->status != DP_OK) return;
    conv2d_gemm_backward(dx, dw, db, dy, x->data, w->data, &pl, col, dcol, dyt);
}

dp_tensor *dp_conv2d(dp_ctx *c, dp_tensor *x, dp_tensor *w, dp_tensor *b, int stride, int pad, int dilation,
                     int groups)
{
    if (!x || !w) return NULL;
    if (!dp_check_ndim(c, "conv2d x", x, 4) || !dp_check_ndim(c, "conv2d w", w, 4)) return NULL;
    if (stride < 1 || pad < 0 || dilation < 1 || groups < 1)
        return dp_fail(c, DP_ERR_ARG, "conv2d: stride %d, pad %d, dilation %d, groups %d (need >= 1, >= 0, >= 1, >= 1)",
                       stride, pad, dilation, groups);
    const int cin = x->shape[1], cout = w->shape[0];
    if (cin % groups || cout % groups || w->shape[1] * groups != cin)
        return dp_fail(c, DP_ERR_SHAPE, "conv2d: x has %d channels, w is [%d,%d,%d,%d], groups %d", cin, cout,
                       w->shape[1], w->shape[2], w->shape[3], groups);
    if (b && (b->ndim != 1 || b->n != cout))
        return dp_fail(c, DP_ERR_SHAPE, "conv2d: bias has %ld elements (%d-d), want [%d]", b->n, b->ndim, cout);
    conv_plan pl;
    conv_plan_init(&pl, x, w, stride, pad, dilation, groups);
    if (x->shape[2] + 2 * pad < dilation * (pl.g.kh - 1) + 1 || x->shape[3] + 2 * pad < dilation * (pl.g.kw - 1) + 1)
        return dp_fail(c, DP_ERR_SHAPE, "conv2d: %dx%d kernel (dilation %d) larger than the %dx%d input padded by %d",
                       pl.g.kh, pl.g.kw, dilation, x->shape[2], x->shape[3], pad);
    int shape[4] = {pl.g.N, cout, pl.g.Ho, pl.g.Wo};
    dp_tensor *y = dp_tensor_new(c, 4, shape);
    if (!y) return NULL;
    const float *bd = b ? b->data : NULL;
    if (!pl.direct && !(pl.direct_fwd && pl.direct_dx && pl.direct_dw)) dp_blas_warm(); /* a pass runs sgemm */
    if (pl.direct) {
        if (!dp_dwconv_forward(c, y->data, x->data, w->data, bd, &pl.g)) return NULL;
    } else if (pl.direct_fwd) {
        float *s = dp_scratch(c, dp_direct_forward_scratch(&pl.g));
        if (!s) return NULL;
        dp_direct_forward(y->data, x->data, w->data, bd, &pl.g, s);
    } else {
        float *col = pl.is1x1 && pl.T == 1 ? NULL : dp_scratch(c, (size_t)pl.g.K * pl.T * pl.g.P * sizeof(float));
        float *tmp = pl.T > 1 ? dp_scratch(c, (size_t)pl.g.Og * pl.T * pl.g.P * sizeof(float)) : NULL;
        if (c->status != DP_OK) return NULL;
        conv2d_gemm_forward(y->data, x->data, w->data, bd, &pl, col, tmp);
    }
    dp_tensor *in[3] = {x, w, b};
    dp_node *nd = dp_tape_push(c, conv2d_backward_node, "conv2d", y, b ? 3 : 2, in);
    if (!nd) return c->status == DP_OK ? y : NULL;
    nd->ip[0] = stride;
    nd->ip[1] = pad;
    nd->ip[2] = dilation;
    nd->ip[3] = groups;
    return y;
}
