/* dp_conv2d: finite-difference gradient checks over a grid of configurations
 * (stride, pad, dilation, groups incl. depthwise, 1x1/3x3/5x5, bias or not,
 * H != W, batch 1 and 3, first-layer style inputs without a gradient), and
 * forward values against a naive direct convolution in double.
 *
 * Tolerances
 *  - gradients: gc_defaults() (h 1e-2, |a - n| <= 1e-3 + 1e-2 max(|a|, |n|)).
 *    Convolution is linear in each input, so the central difference has no
 *    truncation error; what is left is float rounding of the forward,
 *    ~1e-6 relative per output, divided by 2h: far below the tolerance.
 *  - forward: |y - ref| <= 1e-5 (1 + sum |w x| over the window), i.e. a few
 *    float ulps per accumulated term (GEMM sums in another order than the
 *    double reference). */
#include <criterion/criterion.h>
#include "timeout.h"
#include <criterion/parameterized.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/conv_depthwise.h"
#include "core/tape.h"
#include "gradcheck.h"

typedef struct conv_case {
    int N, C, H, W, O, k, stride, pad, dil, groups, bias;
    int x_no_grad; /* the input is data (first layer): only w and b are checked */
    int kw;        /* kernel width when it differs from the height k (0: square) */
} conv_case;

static int kwidth(const conv_case *p) { return p->kw ? p->kw : p->k; }

static dp_tensor *build_conv(dp_ctx *c, dp_tensor **in, void *arg)
{
    const conv_case *p = arg;
    return dp_conv2d(c, in[0], in[1], p->bias ? in[2] : NULL, p->stride, p->pad, p->dil, p->groups);
}

static int set_inputs(const conv_case *p, gc_input *ins)
{
    ins[0] = (gc_input){.ndim = 4, .shape = {p->N, p->C, p->H, p->W}, .lo = -1, .hi = 1, .no_grad = p->x_no_grad};
    ins[1] = (gc_input){.ndim = 4, .shape = {p->O, p->C / p->groups, p->k, kwidth(p)}, .lo = -0.5f, .hi = 0.5f};
    ins[2] = (gc_input){.ndim = 1, .shape = {p->O}, .lo = -0.5f, .hi = 0.5f};
    return p->bias ? 3 : 2;
}

/* N C H W O k s p d g bias x_no_grad */
static conv_case grad_cases[] = {
    {1, 2, 5, 7, 3, 3, 1, 1, 1, 1, 1, 0, 0},  /* same-size 3x3, H != W: flat im2col path */
    {3, 3, 6, 5, 4, 3, 2, 0, 1, 1, 0, 0, 0},  /* stride 2, no pad, no bias */
    {2, 2, 7, 6, 2, 3, 1, 2, 2, 1, 1, 0, 0},  /* dilation 2, pad 2 (same size) */
    {1, 4, 9, 8, 4, 5, 2, 2, 1, 1, 1, 0, 0},  /* 5x5 stride 2 */
    {2, 2, 6, 7, 3, 5, 1, 2, 1, 1, 1, 0, 0},  /* 5x5 pad 2 same size */
    {3, 4, 5, 6, 6, 3, 1, 1, 1, 2, 1, 0, 0},  /* groups 2 */
    {2, 4, 9, 8, 4, 3, 2, 1, 2, 2, 0, 0, 0},  /* groups 2, stride 2, dilation 2 */
    {2, 4, 6, 5, 4, 3, 1, 1, 1, 4, 1, 0, 0},  /* depthwise */
    {3, 3, 7, 6, 3, 5, 2, 2, 1, 3, 0, 0, 0},  /* depthwise 5x5 stride 2 */
    {1, 3, 7, 5, 3, 3, 1, 2, 2, 3, 1, 0, 0},  /* depthwise dilation 2 */
    {2, 2, 5, 6, 4, 3, 1, 1, 1, 2, 1, 0, 0},  /* depthwise with channel multiplier 2 */
    {2, 3, 4, 5, 5, 1, 1, 0, 1, 1, 1, 0, 0},  /* 1x1: x is its own column block */
    {3, 4, 3, 2, 2, 1, 1, 0, 1, 2, 1, 0, 0},  /* 1x1 grouped, tiny images: tiles of 3 */
    {2, 3, 5, 7, 2, 1, 2, 0, 1, 1, 0, 0, 0},  /* 1x1 stride 2 */
    {3, 2, 5, 5, 3, 3, 1, 0, 1, 1, 1, 0, 0},  /* valid 3x3 (Wo != W): per-row im2col */
    {1, 2, 4, 5, 2, 3, 1, 2, 1, 1, 1, 0, 0},  /* pad 2 on 3x3: output larger than input */
    {3, 2, 3, 3, 3, 3, 1, 1, 1, 1, 1, 0, 0},  /* 3x3 images in tiles of 3 (scatter path) */
    {3, 1, 6, 7, 4, 3, 1, 1, 1, 1, 1, 1, 0},  /* first layer: Cin 1, input without grad */
    {1, 3, 8, 6, 4, 3, 2, 1, 1, 1, 1, 1, 0},  /* stride 2, input without grad */
    {3, 1, 5, 4, 2, 3, 1, 1, 1, 1, 1, 0, 0},  /* Cin 1 with an input gradient */
    {2, 3, 5, 6, 4, 1, 1, 1, 1, 1, 1, 0, 3}, /* 1x3 kernel, pad 1: Wo == W, Ho != H */
    {1, 2, 6, 5, 3, 3, 2, 1, 1, 1, 0, 0, 5}, /* 3x5 kernel, stride 2 */
    /* images with >= 192 output cells get one GEMM each, so dW sums over calls */
    {3, 2, 14, 15, 3, 3, 1, 1, 1, 1, 1, 0, 0}, /* per-image GEMMs */
    {3, 4, 14, 14, 4, 3, 1, 1, 1, 2, 1, 0, 0}, /* per-image, per-group GEMMs */
    {2, 3, 16, 13, 2, 1, 1, 0, 1, 1, 1, 0, 0}, /* 1x1 per image: dx by GEMM with beta 1 */
    {5, 2, 5, 10, 3, 3, 1, 1, 1, 1, 0, 0, 0},  /* 50 cells: tiles of 4 images, then 1 */
    /* K = Cin/G*kh*kw <= 12 takes the AVX2 small-K kernels where the CPU has
     * them (the Cin 1, 1x3 and small 1x1 cases above); these 1x1 convs have
     * K = 16 and so take sgemm */
    {2, 16, 14, 14, 3, 1, 1, 0, 1, 1, 1, 0, 0}, /* 1x1, sgemm on x itself */
    {3, 16, 3, 4, 2, 1, 1, 0, 1, 2, 1, 0, 0},   /* 1x1 grouped: K 8 per group, small-K kernels */
    {3, 16, 3, 4, 2, 1, 1, 0, 1, 1, 0, 0, 0},   /* 1x1 tiled, K 16 */
};

ParameterizedTestParameters(conv2d, gradcheck)
{
    return cr_make_param_array(conv_case, grad_cases, sizeof grad_cases / sizeof grad_cases[0]);
}

ParameterizedTest(conv_case *p, conv2d, gradcheck, .timeout = DP_TIMEOUT(60))
{
    gc_input ins[3];
    int nin = set_inputs(p, ins);
    char name[128];
    snprintf(name, sizeof name, "conv2d N%d C%d %dx%d O%d k%dx%d s%d p%d d%d g%d b%d", p->N, p->C, p->H, p->W, p->O,
             p->k, kwidth(p), p->stride, p->pad, p->dil, p->groups, p->bias);
    gc_result r;
    cr_assert(gc_check(name, nin, ins, build_conv, p, NULL, &r), "%s: worst %s", name, r.worst);
    cr_assert_gt(r.checked, 0);
}

/* ---- forward against a naive direct convolution ---- */

static void naive_conv(double *y, double *mag, const float *x, const float *w, const float *b, const conv_case *p,
                       int Ho, int Wo)
{
    const int Cg = p->C / p->groups, Og = p->O / p->groups;
    for (int n = 0; n < p->N; n++)
        for (int o = 0; o < p->O; o++)
            for (int oh = 0; oh < Ho; oh++)
                for (int ow = 0; ow < Wo; ow++) {
                    double s = b ? b[o] : 0.0, m = b ? fabs(b[o]) : 0.0;
                    const int g = o / Og;
                    for (int ci = 0; ci < Cg; ci++)
                        for (int ki = 0; ki < p->k; ki++)
                            for (int kj = 0; kj < kwidth(p); kj++) {
                                int ih = oh * p->stride - p->pad + ki * p->dil;
                                int iw = ow * p->stride - p->pad + kj * p->dil;
                                if (ih < 0 || ih >= p->H || iw < 0 || iw >= p->W) continue;
                                double t = (double)w[((o * Cg + ci) * p->k + ki) * kwidth(p) + kj] *
                                           x[(((long)n * p->C + g * Cg + ci) * p->H + ih) * p->W + iw];
                                s += t;
                                m += fabs(t);
                            }
                    long i = (((long)n * p->O + o) * Ho + oh) * Wo + ow;
                    y[i] = s;
                    mag[i] = m;
                }
}

static conv_case fwd_cases[] = {
    {2, 3, 7, 9, 4, 3, 1, 1, 1, 1, 1, 0, 0},    {3, 4, 8, 6, 6, 3, 2, 1, 1, 2, 1, 0, 0},
    {2, 4, 9, 9, 4, 3, 1, 2, 2, 1, 0, 0, 0},    {2, 6, 7, 8, 6, 3, 1, 1, 1, 6, 1, 0, 0},
    {2, 6, 11, 10, 6, 5, 2, 2, 1, 6, 0, 0, 0},  {3, 8, 4, 5, 6, 1, 1, 0, 1, 2, 1, 0, 0},
    {5, 3, 2, 3, 4, 3, 1, 1, 1, 1, 1, 0, 0},    {2, 4, 10, 7, 8, 5, 1, 0, 1, 1, 1, 0, 0},
    {2, 32, 14, 14, 64, 3, 1, 1, 1, 1, 1, 0, 0}, /* the reference CNN's second layer */
    {2, 1, 28, 28, 32, 3, 1, 1, 1, 1, 1, 0, 0},  /* and its first */
    {2, 4, 9, 7, 6, 3, 3, 2, 2, 2, 1, 0, 0},
    {2, 3, 6, 9, 4, 1, 1, 1, 1, 1, 1, 0, 5}, /* 1x5 kernel */
    {3, 4, 7, 6, 4, 5, 1, 2, 1, 4, 1, 0, 3}, /* depthwise 5x3 */
};

ParameterizedTestParameters(conv2d, forward_matches_naive)
{
    return cr_make_param_array(conv_case, fwd_cases, sizeof fwd_cases / sizeof fwd_cases[0]);
}

ParameterizedTest(conv_case *p, conv2d, forward_matches_naive, .timeout = DP_TIMEOUT(30))
{
    dp_rng r;
    dp_rng_seed(&r, 5, DP_STREAM_USER, 0);
    int xs[4] = {p->N, p->C, p->H, p->W}, ws[4] = {p->O, p->C / p->groups, p->k, kwidth(p)}, bs[1] = {p->O};
    long nx = dp_shape_numel(4, xs), nw = dp_shape_numel(4, ws);
    float *x = malloc(nx * sizeof *x), *w = malloc(nw * sizeof *w), *b = malloc(p->O * sizeof *b);
    dp_init_uniform(&r, x, nx, -1, 1);
    dp_init_uniform(&r, w, nw, -1, 1);
    dp_init_uniform(&r, b, p->O, -1, 1);
    dp_ctx c;
    dp_ctx_init(&c);
    dp_tensor *tx = dp_tensor_wrap(&c, x, 4, xs), *tw = dp_tensor_wrap(&c, w, 4, ws);
    dp_tensor *tb = dp_tensor_wrap(&c, b, 1, bs);
    dp_tensor *y = dp_conv2d(&c, tx, tw, p->bias ? tb : NULL, p->stride, p->pad, p->dil, p->groups);
    cr_assert_not_null(y, "%s", dp_errmsg());
    const int Ho = (p->H + 2 * p->pad - p->dil * (p->k - 1) - 1) / p->stride + 1;
    const int Wo = (p->W + 2 * p->pad - p->dil * (kwidth(p) - 1) - 1) / p->stride + 1;
    cr_assert_eq(y->shape[0], p->N);
    cr_assert_eq(y->shape[1], p->O);
    cr_assert_eq(y->shape[2], Ho);
    cr_assert_eq(y->shape[3], Wo);
    double *ref = malloc(y->n * sizeof *ref), *mag = malloc(y->n * sizeof *mag);
    naive_conv(ref, mag, x, w, p->bias ? b : NULL, p, Ho, Wo);
    for (long i = 0; i < y->n; i++)
        cr_assert(fabs(y->data[i] - ref[i]) <= 1e-5 * (1.0 + mag[i]), "elem %ld: %g vs %g", i, y->data[i], ref[i]);
    free(ref);
    free(mag);
    dp_ctx_free(&c);
    free(x);
    free(w);
    free(b);
}

/* ---- behaviour around the gradients ---- */

Test(conv2d, input_without_grad_gets_none_and_bias_grad_is_dy_sum, .timeout = DP_TIMEOUT(30))
{
    dp_ctx c;
    dp_ctx_init(&c);
    int xs[4] = {3, 2, 6, 5}, ws[4] = {4, 2, 3, 3}, bs[1] = {4};
    static float x[3 * 2 * 6 * 5], w[4 * 2 * 3 * 3], b[4], gw[4 * 2 * 3 * 3], gb[4];
    dp_rng r;
    dp_rng_seed(&r, 3, DP_STREAM_USER, 0);
    dp_init_uniform(&r, x, sizeof x / sizeof *x, -1, 1);
    dp_init_uniform(&r, w, sizeof w / sizeof *w, -1, 1);
    dp_tensor *tx = dp_tensor_wrap(&c, x, 4, xs), *tw = dp_tensor_wrap(&c, w, 4, ws);
    dp_tensor *tb = dp_tensor_wrap(&c, b, 1, bs);
    tw->grad = gw;
    tw->requires_grad = 1;
    tb->grad = gb;
    tb->requires_grad = 1;
    dp_tensor *y = dp_conv2d(&c, tx, tw, tb, 1, 1, 1, 1);
    cr_assert_not_null(y);
    float *dy = dp_grad(&c, y);
    for (long i = 0; i < y->n; i++) dy[i] = (float)(i % 7) - 3.0f;
    cr_assert_eq(dp_backward(&c, y), DP_OK, "%s", dp_errmsg());
    cr_assert_null(tx->grad, "the input asked for no gradient");
    const long P = (long)y->shape[2] * y->shape[3];
    for (int o = 0; o < 4; o++) {
        double s = 0;
        for (int n = 0; n < 3; n++)
            for (long i = 0; i < P; i++) s += dy[((long)n * 4 + o) * P + i];
        cr_assert_float_eq(gb[o], s, 1e-4, "bias %d: %g vs %g", o, gb[o], s);
    }
    dp_ctx_free(&c);
}

/* Backward must add to gradients already there (another consumer of x, or
 * gradient accumulation over micro-batches): grads pre-filled with 1 end up
 * as 1 + the fresh gradient. */
static conv_case accum_cases[] = {
    {3, 2, 14, 15, 3, 3, 1, 1, 1, 1, 1, 0, 0}, /* per-image GEMM */
    {5, 2, 5, 10, 3, 3, 2, 1, 1, 1, 1, 0, 0},  /* tiles */
    {2, 3, 16, 13, 2, 1, 1, 0, 1, 1, 1, 0, 0}, /* 1x1 */
    {2, 4, 9, 8, 4, 3, 1, 1, 1, 4, 1, 0, 0},   /* depthwise */
    {2, 3, 7, 7, 3, 3, 1, 1, 1, 3, 1, 0, 0},   /* depthwise, rows narrower than a vector (masked adds) */
    {2, 3, 9, 11, 3, 5, 1, 2, 1, 3, 1, 0, 0},  /* depthwise 5x5, width 11 (overlapping last block) */
    {2, 4, 9, 10, 4, 3, 2, 1, 1, 4, 1, 0, 0},  /* depthwise stride 2 (phases) */
};

ParameterizedTestParameters(conv2d, backward_accumulates)
{
    return cr_make_param_array(conv_case, accum_cases, sizeof accum_cases / sizeof accum_cases[0]);
}

ParameterizedTest(conv_case *p, conv2d, backward_accumulates, .timeout = DP_TIMEOUT(30))
{
    int xs[4] = {p->N, p->C, p->H, p->W}, ws[4] = {p->O, p->C / p->groups, p->k, kwidth(p)}, bs[1] = {p->O};
    long n[3] = {dp_shape_numel(4, xs), dp_shape_numel(4, ws), p->O};
    float *data[3], *fresh[3], *acc[3];
    dp_rng r;
    dp_rng_seed(&r, 8, DP_STREAM_USER, 0);
    for (int i = 0; i < 3; i++) {
        data[i] = malloc(n[i] * sizeof(float));
        fresh[i] = malloc(n[i] * sizeof(float));
        acc[i] = malloc(n[i] * sizeof(float));
        dp_init_uniform(&r, data[i], n[i], -1, 1);
        for (long j = 0; j < n[i]; j++) fresh[i][j] = 0.0f, acc[i][j] = 1.0f;
    }
    for (int pass = 0; pass < 2; pass++) {
        dp_ctx c;
        dp_ctx_init(&c);
        dp_tensor *t[3] = {dp_tensor_wrap(&c, data[0], 4, xs), dp_tensor_wrap(&c, data[1], 4, ws),
                           dp_tensor_wrap(&c, data[2], 1, bs)};
        for (int i = 0; i < 3; i++) {
            t[i]->grad = pass ? acc[i] : fresh[i];
            t[i]->requires_grad = 1;
        }
        dp_tensor *y = dp_conv2d(&c, t[0], t[1], t[2], p->stride, p->pad, p->dil, p->groups);
        cr_assert_not_null(y, "%s", dp_errmsg());
        float *dy = dp_grad(&c, y);
        for (long j = 0; j < y->n; j++) dy[j] = (float)(j % 5) * 0.25f - 0.5f;
        cr_assert_eq(dp_backward(&c, y), DP_OK, "%s", dp_errmsg());
        dp_ctx_free(&c);
    }
    const char *names[3] = {"x", "w", "b"};
    for (int i = 0; i < 3; i++)
        for (long j = 0; j < n[i]; j++)
            cr_assert(fabsf(acc[i][j] - 1.0f - fresh[i][j]) <= 1e-5f * (1.0f + fabsf(fresh[i][j])),
                      "grad %s[%ld]: %g, want 1 + %g", names[i], j, acc[i][j], fresh[i][j]);
    for (int i = 0; i < 3; i++) {
        free(data[i]);
        free(fresh[i]);
        free(acc[i]);
    }
}

Test(conv2d, rejects_bad_shapes, .timeout = DP_TIMEOUT(10))
{
    dp_ctx c;
    dp_ctx_init(&c);
    int xs[4] = {1, 3, 5, 5}, ws[4] = {4, 2, 3, 3}, big[4] = {4, 3, 7, 7};
    static float x[75], w[4 * 3 * 7 * 7];
    dp_tensor *tx = dp_tensor_wrap(&c, x, 4, xs), *tw = dp_tensor_wrap(&c, w, 4, ws);
    cr_assert_null(dp_conv2d(&c, tx, tw, NULL, 1, 1, 1, 1)); /* w has 2 input channels, x 3 */
    cr_assert_eq(c.status, DP_ERR_SHAPE);
    dp_ctx_reset(&c);
    tx = dp_tensor_wrap(&c, x, 4, xs);
    tw = dp_tensor_wrap(&c, w, 4, big);
    cr_assert_null(dp_conv2d(&c, tx, tw, NULL, 1, 0, 1, 1)); /* 7x7 kernel on a 5x5 input */
    cr_assert_eq(c.status, DP_ERR_SHAPE);
    dp_ctx_reset(&c);
    cr_assert_null(dp_conv2d(&c, NULL, tw, NULL, 1, 0, 1, 1));
    cr_assert_eq(c.status, DP_OK, "a NULL input propagates without a new error");
    dp_ctx_free(&c);
}

/* ---- depthwise kernels (src/core/conv_depthwise.c) ----
 * Every geometry below runs under each kernel set: the default one (on an
 * AVX2/FMA CPU the row-blocked kernels for 3 or 5 kernel rows and dilation 1
 * or 2 at stride 1, and for forward and dW at stride 2 with dilation 2; the
 * flat AVX2 kernels otherwise), the portable C kernels, and the reference
 * loops. Each is gradient-checked; its forward, dX, dW and db are compared
 * with a double-precision reference within 1e-5 (1 + sum of |terms|) (float
 * rounding of up to ~100-term sums, in any order); the fast sets are also
 * compared with the reference loops directly, and the default set with a
 * second run of itself, bit for bit. */

typedef struct dw_case {
    int N, C, H, W, mult, kh, kw, stride, pad, dil, bias;
} dw_case;

typedef struct dw_param {
    dw_case c;
    int mode;
} dw_param;

static const dw_case dw_cases[] = {
    /* N C  H   W mult kh kw s  p  d bias */
    {2, 3, 7, 7, 1, 3, 3, 1, 1, 1, 0},    /* 7x7: rows narrower than a vector (masked) */
    {2, 2, 9, 11, 1, 3, 3, 1, 1, 1, 1},   /* width 11: a whole block, then one overlapping it */
    {1, 2, 8, 16, 1, 3, 3, 1, 1, 1, 0},   /* width a multiple of 8 */
    {2, 3, 1, 1, 1, 3, 3, 1, 1, 1, 1},    /* 1x1 image */
    {2, 2, 19, 17, 1, 3, 3, 1, 1, 1, 0},  /* 19 rows: bands of 7 + 6 + 6 */
    {2, 2, 7, 7, 1, 5, 5, 1, 2, 1, 0},    /* sep_conv_5x5 */
    {1, 3, 10, 13, 1, 5, 5, 1, 2, 1, 1},
    {2, 2, 7, 7, 1, 3, 3, 1, 2, 2, 0},    /* dil_conv_3x3 */
    {1, 2, 12, 9, 1, 3, 3, 1, 2, 2, 1},
    {2, 2, 7, 7, 1, 5, 5, 1, 4, 2, 0},    /* dil_conv_5x5 */
    {1, 2, 9, 10, 1, 5, 5, 1, 4, 2, 1},
    {2, 2, 7, 7, 1, 3, 3, 2, 1, 1, 0},    /* stride 2 */
    {1, 2, 9, 11, 1, 3, 3, 2, 1, 1, 1},   /* stride 2, odd width >= 8 */
    {1, 2, 10, 12, 1, 3, 3, 2, 1, 1, 0},  /* stride 2, even sizes */
    {2, 2, 11, 9, 1, 5, 5, 2, 2, 1, 1},
    {1, 2, 10, 11, 1, 3, 3, 2, 2, 2, 0},  /* stride 2, dilation 2: every tap in phase (0, 0) */
    {1, 2, 12, 13, 1, 5, 5, 2, 4, 2, 1},
    {2, 2, 7, 7, 2, 3, 3, 2, 2, 2, 1},    /* ... on 7x7 (4x4 output: masked), multiplier 2 */
    {2, 2, 8, 9, 1, 3, 5, 1, 1, 2, 0},    /* 3x5, dilation 2, pad 1 (output smaller than input) */
    {2, 2, 9, 8, 1, 5, 3, 1, 2, 1, 1},    /* 5x3 */
    {1, 2, 9, 10, 1, 7, 7, 1, 3, 1, 0},   /* 7x7 kernel: flat kernels at stride 1 */
    {2, 3, 6, 7, 1, 1, 1, 1, 0, 1, 1},    /* 1x1 kernel */
    {1, 2, 11, 10, 1, 3, 3, 1, 3, 3, 0},  /* dilation 3 */
    {1, 2, 13, 11, 1, 3, 3, 3, 1, 1, 1},  /* stride 3: 9 phases */
    {2, 2, 8, 9, 1, 3, 3, 1, 0, 1, 0},    /* no padding */
    {1, 2, 6, 7, 1, 3, 3, 1, 3, 1, 1},    /* padding past the kernel's reach */
    {2, 2, 9, 7, 2, 3, 3, 1, 1, 1, 1},    /* channel multiplier 2 */
    {2, 2, 9, 10, 2, 5, 5, 2, 2, 1, 0},   /* multiplier 2, stride 2 */
};
#define N_DW_CASES (sizeof dw_cases / sizeof dw_cases[0])
static const int dw_modes[3] = {DP_DW_AUTO, DP_DW_PORTABLE, DP_DW_REFERENCE};
static const char *const dw_mode_names[3] = {"default", "portable", "reference"};
static dw_param dw_params[N_DW_CASES * 3];

static void dw_fill_params(void)
{
    for (size_t i = 0; i < N_DW_CASES; i++)
        for (int m = 0; m < 3; m++) dw_params[i * 3 + m] = (dw_param){dw_cases[i], dw_modes[m]};
}

static int dw_out(int n, int k, int s, int p, int d) { return (n + 2 * p - d * (k - 1) - 1) / s + 1; }

static dp_tensor *build_dw(dp_ctx *c, dp_tensor **in, void *arg)
{
    const dw_case *p = &((const dw_param *)arg)->c;
    return dp_conv2d(c, in[0], in[1], p->bias ? in[2] : NULL, p->stride, p->pad, p->dil, p->C);
}

ParameterizedTestParameters(depthwise, gradcheck)
{
    dw_fill_params();
    return cr_make_param_array(dw_param, dw_params, N_DW_CASES * 3);
}

ParameterizedTest(dw_param *p, depthwise, gradcheck, .timeout = DP_TIMEOUT(60))
{
    const dw_case *q = &p->c;
    dp_dwconv_set_kernels(p->mode);
    gc_input ins[3] = {
        {.ndim = 4, .shape = {q->N, q->C, q->H, q->W}, .lo = -1, .hi = 1},
        {.ndim = 4, .shape = {q->C * q->mult, 1, q->kh, q->kw}, .lo = -0.5f, .hi = 0.5f},
        {.ndim = 1, .shape = {q->C * q->mult}, .lo = -0.5f, .hi = 0.5f},
    };
    char name[128];
    snprintf(name, sizeof name, "depthwise %s N%d C%d %dx%d m%d k%dx%d s%d p%d d%d b%d", dw_mode_names[p->mode],
             q->N, q->C, q->H, q->W, q->mult, q->kh, q->kw, q->stride, q->pad, q->dil, q->bias);
    gc_result r;
    cr_assert(gc_check(name, q->bias ? 3 : 2, ins, build_dw, p, NULL, &r), "%s: worst %s", name, r.worst);
    cr_assert_gt(r.checked, 0);
}

/* Forward and backward of one depthwise conv under kernel set `mode`, into
 * y, dx, dw, db (zeroed here; db only with a bias). */
static void dw_run(const dw_case *q, int mode, const float *x, const float *w, const float *b, const float *dy,
                   float *y, float *dx, float *dw, float *db)
{
    const int O = q->C * q->mult;
    int xs[4] = {q->N, q->C, q->H, q->W}, ws[4] = {O, 1, q->kh, q->kw}, bs[1] = {O};
    dp_dwconv_set_kernels(mode);
    dp_ctx c;
    dp_ctx_init(&c);
    dp_tensor *tx = dp_tensor_wrap(&c, (float *)x, 4, xs), *tw = dp_tensor_wrap(&c, (float *)w, 4, ws);
    dp_tensor *tb = q->bias ? dp_tensor_wrap(&c, (float *)b, 1, bs) : NULL;
    memset(dx, 0, (size_t)tx->n * sizeof *dx);
    memset(dw, 0, (size_t)tw->n * sizeof *dw);
    tx->grad = dx;
    tw->grad = dw;
    tx->requires_grad = tw->requires_grad = 1;
    if (tb) {
        memset(db, 0, (size_t)O * sizeof *db);
        tb->grad = db;
        tb->requires_grad = 1;
    }
    dp_tensor *ty = dp_conv2d(&c, tx, tw, tb, q->stride, q->pad, q->dil, q->C);
    cr_assert_not_null(ty, "%s", dp_errmsg());
    memcpy(y, ty->data, (size_t)ty->n * sizeof *y);
    memcpy(dp_grad(&c, ty), dy, (size_t)ty->n * sizeof *dy);
    cr_assert_eq(dp_backward(&c, ty), DP_OK, "%s", dp_errmsg());
    dp_ctx_free(&c);
    dp_dwconv_set_kernels(DP_DW_AUTO);
}

static void dw_check(const char *what, const float *v, const double *ref, const double *mag, long n, double tol,
                     const char *mode)
{
    for (long i = 0; i < n; i++)
        cr_assert(fabs(v[i] - ref[i]) <= tol * (1.0 + mag[i]), "%s (%s) elem %ld: %.9g vs %.9g", what, mode, i, v[i],
                  ref[i]);
}

ParameterizedTestParameters(depthwise, matches_reference)
{
    dw_fill_params();
    return cr_make_param_array(dw_param, dw_params, N_DW_CASES * 3);
}

ParameterizedTest(dw_param *p, depthwise, matches_reference, .timeout = DP_TIMEOUT(30))
{
    const dw_case *q = &p->c;
    const int O = q->C * q->mult, T = q->kh * q->kw;
    const int Ho = dw_out(q->H, q->kh, q->stride, q->pad, q->dil), Wo = dw_out(q->W, q->kw, q->stride, q->pad, q->dil);
    const long nx = (long)q->N * q->C * q->H * q->W, nw = (long)O * T, ny = (long)q->N * O * Ho * Wo;
    float *x = malloc(nx * sizeof *x), *w = malloc(nw * sizeof *w), *b = malloc(O * sizeof *b);
    float *dy = malloc(ny * sizeof *dy);
    dp_rng r;
    dp_rng_seed(&r, 21, DP_STREAM_USER, 0);
    dp_init_uniform(&r, x, nx, -1, 1);
    dp_init_uniform(&r, w, nw, -1, 1);
    dp_init_uniform(&r, b, O, -1, 1);
    dp_init_uniform(&r, dy, ny, -1, 1);

    /* the double reference, with the sums of |terms| that bound the rounding */
    double *yr = calloc(ny, sizeof *yr), *ym = calloc(ny, sizeof *ym), *xr = calloc(nx, sizeof *xr);
    double *xm = calloc(nx, sizeof *xm), *wr = calloc(nw, sizeof *wr), *wm = calloc(nw, sizeof *wm);
    double *br = calloc(O, sizeof *br), *bm = calloc(O, sizeof *bm);
    for (int n = 0; n < q->N; n++)
        for (int o = 0; o < O; o++)
            for (int oh = 0; oh < Ho; oh++)
                for (int ow = 0; ow < Wo; ow++) {
                    const long yi = (((long)n * O + o) * Ho + oh) * Wo + ow;
                    if (q->bias) yr[yi] = b[o], ym[yi] = fabs(b[o]), br[o] += dy[yi], bm[o] += fabs(dy[yi]);
                    for (int ki = 0; ki < q->kh; ki++)
                        for (int kj = 0; kj < q->kw; kj++) {
                            const int ih = oh * q->stride - q->pad + ki * q->dil;
                            const int iw = ow * q->stride - q->pad + kj * q->dil;
                            if (ih < 0 || ih >= q->H || iw < 0 || iw >= q->W) continue;
                            const long xi = (((long)n * q->C + o / q->mult) * q->H + ih) * q->W + iw;
                            const long wi = (long)o * T + ki * q->kw + kj;
                            yr[yi] += (double)w[wi] * x[xi];
                            ym[yi] += fabs((double)w[wi] * x[xi]);
                            xr[xi] += (double)w[wi] * dy[yi];
                            xm[xi] += fabs((double)w[wi] * dy[yi]);
                            wr[wi] += (double)dy[yi] * x[xi];
                            wm[wi] += fabs((double)dy[yi] * x[xi]);
                        }
                }

    float *y = malloc(ny * sizeof *y), *dx = malloc(nx * sizeof *dx), *dw = malloc(nw * sizeof *dw);
    float *db = malloc(O * sizeof *db);
    const char *mn = dw_mode_names[p->mode];
    dw_run(q, p->mode, x, w, b, dy, y, dx, dw, db);
    dw_check("y", y, yr, ym, ny, 1e-5, mn);
    dw_check("dx", dx, xr, xm, nx, 1e-5, mn);
    dw_check("dw", dw, wr, wm, nw, 1e-5, mn);
    if (q->bias) dw_check("db", db, br, bm, O, 1e-5, mn);

    float *y2 = malloc(ny * sizeof *y2), *dx2 = malloc(nx * sizeof *dx2), *dw2 = malloc(nw * sizeof *dw2);
    float *db2 = malloc(O * sizeof *db2);
    if (p->mode != DP_DW_REFERENCE) {
        /* against the plain loops, in float */
        dw_run(q, DP_DW_REFERENCE, x, w, b, dy, y2, dx2, dw2, db2);
        for (long i = 0; i < ny; i++)
            cr_assert(fabs(y[i] - y2[i]) <= 2e-5 * (1 + ym[i]), "y (%s) elem %ld: %.9g vs loops %.9g", mn, i, y[i],
                      y2[i]);
        for (long i = 0; i < nx; i++)
            cr_assert(fabs(dx[i] - dx2[i]) <= 2e-5 * (1 + xm[i]), "dx (%s) elem %ld: %.9g vs loops %.9g", mn, i, dx[i],
                      dx2[i]);
        for (long i = 0; i < nw; i++)
            cr_assert(fabs(dw[i] - dw2[i]) <= 2e-5 * (1 + wm[i]), "dw (%s) elem %ld: %.9g vs loops %.9g", mn, i, dw[i],
                      dw2[i]);
    }
    if (p->mode == DP_DW_AUTO) {
        /* run to run: bit for bit */
        dw_run(q, DP_DW_AUTO, x, w, b, dy, y2, dx2, dw2, db2);
        cr_assert(!memcmp(y, y2, ny * sizeof *y), "y differs between two runs");
        cr_assert(!memcmp(dx, dx2, nx * sizeof *dx), "dx differs between two runs");
        cr_assert(!memcmp(dw, dw2, nw * sizeof *dw), "dw differs between two runs");
    }
    free(y2), free(dx2), free(dw2), free(db2);
    free(y), free(dx), free(dw), free(db);
    free(yr), free(ym), free(xr), free(xm), free(wr), free(wm), free(br), free(bm);
    free(x), free(w), free(b), free(dy);
}
