/* Batch-norm (src/core/ops_norm.c): gradient checks for x, gamma and beta in
 * train and eval mode, with and without affine, 2-D and 4-D; forward values
 * (zero mean / unit variance per channel in training, the eval formula), the
 * running-statistics update against PyTorch's formula, and argument errors.
 *
 * Tolerance. With batch statistics every x of a channel moves the mean and
 * variance of all M outputs of that channel and the third derivative grows
 * like 1/std^3, so the truncation error h^2/6 |f'''| dominates for small M
 * (M = 3: ~2e-3 at h = 1e-2). We take h = 5e-3 (worst error seen ~5e-4, the
 * float rounding noise ~6e-8 |out| M / 2h stays ~1e-4) and atol 5e-4, rtol
 * 5e-3 (half the default); inputs are uniform in [-2, 2] so the per-channel
 * std stays O(1). With running statistics (eval) the op is affine in x, gamma
 * and beta, so the difference is exact up to rounding: h = 0.1, atol 1e-4,
 * rtol 1e-3.
 *
 * Row-wise L2 normalisation (src/core/ops_l2norm.c) at the end. */
#include <criterion/criterion.h>
#include "timeout.h"
#include <criterion/parameterized.h>
#include <math.h>
#include <string.h>

#include "core/tape.h"
#include "gradcheck_assert.h"


#define EPS 1e-5f
#define MOMENTUM 0.1f

static void fill(float *x, long n, uint64_t seed, float lo, float hi)
{
    dp_rng r;
    dp_rng_seed(&r, seed, DP_STREAM_USER, 0);
    dp_init_uniform(&r, x, (size_t)n, lo, hi);
}

typedef struct bn_case {
    int ndim, shape[4];
    int affine, eval, running; /* running: pass running stats (else NULL) */
    float rm[8], rv[8];
} bn_case;

static dp_tensor *build_bn(dp_ctx *c, dp_tensor **in, void *arg)
{
    bn_case *p = arg;
    c->training = !p->eval;
    return dp_batchnorm(c, in[0], p->affine ? in[1] : NULL, p->affine ? in[2] : NULL, p->running ? p->rm : NULL,
                        p->running ? p->rv : NULL, MOMENTUM, EPS);
}

#define RS                                                                                                    \
    .rm = {0.3f, -0.2f, 0.1f, 0.5f, -0.4f, 0, 0.2f, -0.1f}, .rv = {0.5f, 1.5f, 0.8f, 1.2f, 2.0f, 0.7f, 1.0f, 0.9f}

ParameterizedTestParameters(batchnorm, gradcheck)
{
    static bn_case cases[] = {
        /* training, 2-D and 4-D, affine or not */
        {2, {3, 1}, 1, 0, 1, RS},
        {2, {7, 3}, 1, 0, 1, RS},
        {2, {13, 5}, 0, 0, 1, RS},
        {2, {7, 3}, 0, 0, 0, RS},
        {4, {1, 3, 1, 3}, 1, 0, 1, RS},
        {4, {2, 3, 2, 3}, 1, 0, 1, RS},
        {4, {2, 3, 2, 3}, 0, 0, 1, RS},
        {4, {3, 2, 1, 1}, 1, 0, 0, RS},
        {3, {2, 4, 5}, 1, 0, 1, RS},
        /* eval with running statistics: M = 1 allowed */
        {2, {1, 3}, 1, 1, 1, RS},
        {2, {7, 5}, 0, 1, 1, RS},
        {4, {2, 3, 2, 3}, 1, 1, 1, RS},
        {4, {1, 7, 1, 3}, 0, 1, 1, RS},
        /* eval without running statistics: batch statistics, as PyTorch with track_running_stats=False */
        {4, {2, 3, 2, 3}, 1, 1, 0, RS},
    };
    return cr_make_param_array(bn_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(bn_case *p, batchnorm, gradcheck, .timeout = DP_TIMEOUT(60))
{
    const int C = p->shape[1];
    gc_input ins[3] = {
        {.ndim = p->ndim, .shape = {p->shape[0], p->shape[1], p->shape[2], p->shape[3]}, .lo = -2, .hi = 2},
        {.ndim = 1, .shape = {C}, .lo = 0.5f, .hi = 1.5f},
        {.ndim = 1, .shape = {C}, .lo = -1, .hi = 1},
    };
    gc_opts o = gc_defaults();
    if (!p->eval || !p->running) { /* batch statistics: nonlinear */
        o.h = 5e-3;
        o.atol = 5e-4;
        o.rtol = 5e-3;
    } else { /* running statistics: affine in x, gamma, beta */
        o.h = 0.1;
        o.atol = 1e-4;
        o.rtol = 1e-3;
    }
    CHECK_GRAD(p->eval ? "batchnorm eval" : "batchnorm train", p->affine ? 3 : 1, ins, build_bn, p, &o);
}

/* x, gamma and beta each used by two batch-norms: the backward must
 * accumulate (+=) into their gradients. */
static dp_tensor *build_bn_reuse(dp_ctx *c, dp_tensor **in, void *arg)
{
    (void)arg;
    dp_tensor *y1 = dp_batchnorm(c, in[0], in[1], in[2], NULL, NULL, MOMENTUM, EPS);
    dp_tensor *y2 = dp_batchnorm(c, in[0], in[1], in[2], NULL, NULL, MOMENTUM, EPS);
    return dp_add(c, y1, dp_mul(c, y2, y2));
}

Test(batchnorm, gradcheck_with_inputs_reused, .timeout = DP_TIMEOUT(60))
{
    gc_input ins[3] = {
        {.ndim = 4, .shape = {2, 3, 2, 3}, .lo = -2, .hi = 2},
        {.ndim = 1, .shape = {3}, .lo = 0.5f, .hi = 1.5f},
        {.ndim = 1, .shape = {3}, .lo = -1, .hi = 1},
    };
    gc_opts o = gc_defaults();
    o.h = 5e-3;
    o.atol = 5e-4;
    o.rtol = 5e-3;
    CHECK_GRAD("batchnorm reuse", 3, ins, build_bn_reuse, NULL, &o);
}

/* In place, no affine: the input goes through a copy (the op overwrites its
 * input, and the checker re-runs the forward on the same leaf), and the copy
 * is then squared so the backward sees a gradient that is not constant. */
static dp_tensor *build_bn_inplace(dp_ctx *c, dp_tensor **in, void *arg)
{
    bn_case *p = arg;
    c->training = !p->eval;
    dp_tensor *y = dp_batchnorm_inplace(c, dp_scale(c, in[0], 1.0f), p->running ? p->rm : NULL,
                                        p->running ? p->rv : NULL, MOMENTUM, EPS);
    return dp_mul(c, y, dp_add(c, y, in[0]));
}

ParameterizedTestParameters(batchnorm, gradcheck_inplace)
{
    static bn_case cases[] = {
        {2, {7, 3}, 0, 0, 1, RS}, {4, {2, 3, 2, 3}, 0, 0, 1, RS}, {4, {3, 2, 3, 5}, 0, 0, 0, RS},
        {4, {2, 3, 2, 3}, 0, 1, 1, RS}, /* eval: running statistics */
    };
    return cr_make_param_array(bn_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(bn_case *p, batchnorm, gradcheck_inplace, .timeout = DP_TIMEOUT(60))
{
    gc_input ins[1] = {{.ndim = p->ndim, .shape = {p->shape[0], p->shape[1], p->shape[2], p->shape[3]}, .lo = -2, .hi = 2}};
    gc_opts o = gc_defaults();
    if (!p->eval) {
        o.h = 5e-3;
        o.atol = 5e-4;
        o.rtol = 5e-3;
    }
    CHECK_GRAD("batchnorm in place", 1, ins, build_bn_inplace, p, &o);
}

/* The in-place op computes what the plain one does, and its output is x's memory. */
Test(batchnorm, inplace_matches_plain, .timeout = DP_TIMEOUT(30))
{
    dp_ctx c;
    dp_ctx_init(&c);
    int shape[4] = {3, 4, 5, 5};
    float a[300], b[300];
    fill(a, 300, 7, -3, 3);
    memcpy(b, a, sizeof a);
    float rm1[4] = {0}, rv1[4] = {1, 1, 1, 1}, rm2[4] = {0}, rv2[4] = {1, 1, 1, 1};
    dp_tensor *xa = dp_tensor_wrap(&c, a, 4, shape), *xb = dp_tensor_wrap(&c, b, 4, shape);
    dp_tensor *ya = dp_batchnorm(&c, xa, NULL, NULL, rm1, rv1, MOMENTUM, EPS);
    dp_tensor *yb = dp_batchnorm_inplace(&c, xb, rm2, rv2, MOMENTUM, EPS);
    cr_assert(ya && yb);
    cr_expect(yb->data == b, "the output is not the input's memory");
    for (int i = 0; i < 300; i++) cr_expect(fabsf(ya->data[i] - yb->data[i]) <= 1e-6f, "elem %d: %g vs %g", i, ya->data[i], yb->data[i]);
    for (int j = 0; j < 4; j++) cr_expect(rm1[j] == rm2[j] && rv1[j] == rv2[j], "running stats of channel %d differ", j);
    dp_ctx_free(&c);
}

/* ---- batch-norm + relu fused (dp_batchnorm_relu) ---- */

static dp_tensor *build_bn_relu(dp_ctx *c, dp_tensor **in, void *arg)
{
    bn_case *p = arg;
    c->training = !p->eval;
    return dp_batchnorm_relu(c, in[0], p->affine ? in[1] : NULL, p->affine ? in[2] : NULL,
                             p->running ? p->rm : NULL, p->running ? p->rv : NULL, MOMENTUM, EPS);
}

ParameterizedTestParameters(batchnorm_relu, gradcheck)
{
    static bn_case cases[] = {
        {2, {7, 3}, 1, 0, 1, RS}, {4, {2, 3, 2, 3}, 1, 0, 1, RS}, {4, {2, 3, 3, 5}, 0, 0, 0, RS},
        {3, {2, 4, 5}, 1, 0, 1, RS}, {4, {2, 3, 2, 3}, 1, 1, 1, RS}, /* eval: running statistics */
    };
    return cr_make_param_array(bn_case, cases, sizeof cases / sizeof cases[0]);
}

/* The relu's kink: a normalised value within ~h of 0 would make the
 * difference quotient straddle it; the checker's seeded inputs leave none that
 * close (such a case would show up as a failure, never as a pass). */
ParameterizedTest(bn_case *p, batchnorm_relu, gradcheck, .timeout = DP_TIMEOUT(60))
{
    const int C = p->shape[1];
    gc_input ins[3] = {
        {.ndim = p->ndim, .shape = {p->shape[0], p->shape[1], p->shape[2], p->shape[3]}, .lo = -2, .hi = 2},
        {.ndim = 1, .shape = {C}, .lo = 0.5f, .hi = 1.5f},
        {.ndim = 1, .shape = {C}, .lo = -1, .hi = 1},
    };
    gc_opts o = gc_defaults();
    if (!p->eval) {
        o.h = 5e-3;
        o.atol = 5e-4;
        o.rtol = 5e-3;
    } else {
        o.h = 1e-2;
        o.atol = 1e-4;
        o.rtol = 1e-3;
    }
    CHECK_GRAD(p->eval ? "batchnorm_relu eval" : "batchnorm_relu train", p->affine ? 3 : 1, ins, build_bn_relu, p,
               &o);
}

/* The fused op gives the bits of relu(batchnorm(x)): output, running
 * statistics, and the gradients of x, gamma and beta for the same upstream
 * gradient, in training and in eval, 2-D and 4-D. */
Test(batchnorm_relu, same_bits_as_batchnorm_then_relu, .timeout = DP_TIMEOUT(30))
{
    static const int shapes[2][4] = {{16, 5, 1, 1}, {4, 3, 7, 9}};
    for (int sh = 0; sh < 2; sh++)
        for (int eval = 0; eval < 2; eval++) {
            const int ndim = sh ? 4 : 2, N = shapes[sh][0], C = shapes[sh][1];
            const long n = (long)N * C * shapes[sh][2] * shapes[sh][3];
            dp_ctx c;
            dp_ctx_init(&c);
            c.training = !eval;
            float *x = dp_scratch(&c, 2 * n * sizeof(float)), *dz = dp_scratch(&c, n * sizeof(float));
            float gb[2][8], bb[2][8], rm[2][8], rv[2][8];
            fill(x, n, 11 + sh, -3, 3);
            memcpy(x + n, x, n * sizeof(float));
            fill(dz, n, 12 + sh, -1, 1);
            fill(gb[0], C, 13, 0.5f, 1.5f);
            fill(bb[0], C, 14, -1, 1);
            fill(rm[0], C, 15, -0.5f, 0.5f);
            fill(rv[0], C, 16, 0.5f, 1.5f);
            memcpy(gb[1], gb[0], sizeof gb[0]);
            memcpy(bb[1], bb[0], sizeof bb[0]);
            memcpy(rm[1], rm[0], sizeof rm[0]);
            memcpy(rv[1], rv[0], sizeof rv[0]);
            dp_tensor *xs[2], *g[2], *b[2], *z[2];
            int zeros = 0;
            for (int k = 0; k < 2; k++) {
                int cs[1] = {C};
                xs[k] = dp_tensor_wrap(&c, x + k * n, ndim, shapes[sh]);
                g[k] = dp_tensor_wrap(&c, gb[k], 1, cs);
                b[k] = dp_tensor_wrap(&c, bb[k], 1, cs);
                xs[k]->requires_grad = g[k]->requires_grad = b[k]->requires_grad = 1;
                z[k] = k ? dp_batchnorm_relu(&c, xs[k], g[k], b[k], rm[k], rv[k], MOMENTUM, EPS)
                         : dp_relu(&c, dp_batchnorm(&c, xs[k], g[k], b[k], rm[k], rv[k], MOMENTUM, EPS));
                cr_assert_not_null(z[k]);
            }
            for (long i = 0; i < n; i++) zeros += z[1]->data[i] == 0.0f;
            cr_assert(zeros > n / 5 && zeros < n - n / 5, "%d of %ld outputs clipped: not a test of the mask", zeros,
                      n);
            cr_assert(memcmp(z[0]->data, z[1]->data, n * sizeof(float)) == 0, "outputs differ (shape %d eval %d)",
                      sh, eval);
            cr_assert(memcmp(rm[0], rm[1], C * sizeof(float)) == 0 && memcmp(rv[0], rv[1], C * sizeof(float)) == 0,
                      "running statistics differ");
            for (int k = 1; k >= 0; k--) { /* the fused graph's nodes are the newer: walk it first */
                memcpy(dp_grad(&c, z[k]), dz, n * sizeof(float));
                cr_assert_eq(dp_backward(&c, z[k]), DP_OK);
            }
            cr_assert(memcmp(xs[0]->grad, xs[1]->grad, n * sizeof(float)) == 0, "dx differs (shape %d eval %d)", sh,
                      eval);
            cr_assert(memcmp(g[0]->grad, g[1]->grad, C * sizeof(float)) == 0, "dgamma differs");
            cr_assert(memcmp(b[0]->grad, b[1]->grad, C * sizeof(float)) == 0, "dbeta differs");
            dp_ctx_free(&c);
        }
}

/* Per-channel mean and biased variance of a [N,C,S] buffer, in double. */
static void channel_moments(const float *x, int N, int C, int S, int j, double *mean, double *var)
{
    double s = 0, q = 0;
    for (int n = 0; n < N; n++)
        for (int k = 0; k < S; k++) s += x[((long)n * C + j) * S + k];
    s /= (double)N * S;
    for (int n = 0; n < N; n++)
        for (int k = 0; k < S; k++) {
            const double d = x[((long)n * C + j) * S + k] - s;
            q += d * d;
        }
    *mean = s;
    *var = q / ((double)N * S);
}

Test(batchnorm, train_normalises_and_updates_running_stats, .timeout = DP_TIMEOUT(30))
{
    /* 2-D [N,C] and 4-D [N,C,H,W]; channel j gets offset 3j and scale 1 + j so
     * the statistics differ per channel */
    const int cases[2][4] = {{6, 3, 1, 1}, {3, 3, 4, 5}};
    for (int t = 0; t < 2; t++) {
        const int N = cases[t][0], C = cases[t][1], S = cases[t][2] * cases[t][3];
        float x[3 * 3 * 20], rm[3] = {0.5f, -1, 2}, rv[3] = {1, 2, 0.5f}, g[3] = {1.5f, 0.5f, 2}, b[3] = {0.1f, -2, 3};
        fill(x, (long)N * C * S, 10 + t, -1, 1);
        for (int n = 0; n < N; n++)
            for (int j = 0; j < C; j++)
                for (int k = 0; k < S; k++) {
                    float *v = &x[((long)n * C + j) * S + k];
                    *v = *v * (1 + j) + 3 * j;
                }
        float rm0[3], rv0[3];
        memcpy(rm0, rm, sizeof rm);
        memcpy(rv0, rv, sizeof rv);
        dp_ctx c;
        dp_ctx_init(&c);
        const int shape4[4] = {N, C, cases[t][2], cases[t][3]};
        dp_tensor *X = dp_tensor_wrap(&c, x, t ? 4 : 2, shape4);
        dp_tensor *plain = dp_batchnorm(&c, X, NULL, NULL, NULL, NULL, MOMENTUM, EPS);
        dp_tensor *aff = dp_batchnorm(&c, X, dp_tensor_wrap(&c, g, 1, (int[]){C}), dp_tensor_wrap(&c, b, 1, (int[]){C}),
                                      rm, rv, MOMENTUM, EPS);
        cr_assert(plain && aff, "%s", dp_errmsg());
        const double M = (double)N * S;
        for (int j = 0; j < C; j++) {
            double xm, xv, pm, pv, am, av;
            channel_moments(x, N, C, S, j, &xm, &xv);
            channel_moments(plain->data, N, C, S, j, &pm, &pv);
            channel_moments(aff->data, N, C, S, j, &am, &av);
            cr_assert_float_eq(pm, 0.0, 1e-5, "case %d channel %d mean %g", t, j, pm);
            cr_assert_float_eq(pv, xv / (xv + EPS), 1e-4, "case %d channel %d var %g", t, j, pv);
            cr_assert_float_eq(am, b[j], 1e-5);
            cr_assert_float_eq(av, (double)g[j] * g[j] * xv / (xv + EPS), 1e-4 * g[j] * g[j]);
            /* PyTorch: running = (1 - m) running + m stat, unbiased var */
            cr_assert_float_eq(rm[j], (1 - MOMENTUM) * rm0[j] + MOMENTUM * xm, 1e-5, "running mean %d", j);
            cr_assert_float_eq(rv[j], (1 - MOMENTUM) * rv0[j] + MOMENTUM * xv * M / (M - 1), 1e-5 * (1 + rv[j]),
                               "running var %d: %g", j, rv[j]);
        }
        dp_ctx_free(&c);
    }
}

Test(batchnorm, eval_uses_running_stats_and_leaves_them, .timeout = DP_TIMEOUT(30))
{
    enum { N = 2, C = 3, S = 4 };
    float x[N * C * S], rm[C] = {0.5f, -1, 2}, rv[C] = {1, 2, 0.5f}, g[C] = {1.5f, 0.5f, 2}, b[C] = {0.1f, -2, 3};
    fill(x, N * C * S, 20, -2, 2);
    dp_ctx c;
    dp_ctx_init(&c);
    c.training = 0;
    dp_tensor *y = dp_batchnorm(&c, dp_tensor_wrap(&c, x, 4, (int[]){N, C, 2, 2}), dp_tensor_wrap(&c, g, 1, (int[]){C}),
                                dp_tensor_wrap(&c, b, 1, (int[]){C}), rm, rv, MOMENTUM, EPS);
    cr_assert_not_null(y, "%s", dp_errmsg());
    for (int n = 0; n < N; n++)
        for (int j = 0; j < C; j++)
            for (int k = 0; k < S; k++) {
                const long i = ((long)n * C + j) * S + k;
                const double want = (x[i] - (double)rm[j]) / sqrt((double)rv[j] + EPS) * g[j] + b[j];
                cr_assert_float_eq(y->data[i], want, 1e-5 * (1 + fabs(want)));
            }
    cr_assert_eq(rm[0], 0.5f);
    cr_assert_eq(rv[2], 0.5f);
    /* one sample per channel is fine in eval */
    dp_tensor *one = dp_batchnorm(&c, dp_tensor_wrap(&c, x, 2, (int[]){1, C}), NULL, NULL, rm, rv, MOMENTUM, EPS);
    cr_assert_not_null(one, "%s", dp_errmsg());
    dp_ctx_free(&c);
}

Test(batchnorm, errors, .timeout = DP_TIMEOUT(30))
{
    float x[12] = {0}, rm[3] = {0}, rv[3] = {1, 1, 1};
    dp_ctx c;
    dp_ctx_init(&c);
    /* training with one value per channel: PyTorch raises too */
    cr_assert_null(dp_batchnorm(&c, dp_tensor_wrap(&c, x, 2, (int[]){1, 3}), NULL, NULL, rm, rv, MOMENTUM, EPS));
    cr_assert_eq(c.status, DP_ERR_SHAPE);
    cr_assert(strstr(dp_errmsg(), "more than 1 value"), "%s", dp_errmsg());
    dp_ctx_reset(&c);
    cr_assert_null(dp_batchnorm(&c, dp_tensor_wrap(&c, x, 2, (int[]){4, 3}), dp_tensor_wrap(&c, x, 1, (int[]){4}),
                                NULL, NULL, NULL, MOMENTUM, EPS));
    cr_assert_eq(c.status, DP_ERR_SHAPE);
    dp_ctx_reset(&c);
    cr_assert_null(dp_batchnorm(&c, dp_tensor_wrap(&c, x, 2, (int[]){4, 3}), NULL, NULL, rm, NULL, MOMENTUM, EPS));
    cr_assert_eq(c.status, DP_ERR_ARG);
    dp_ctx_reset(&c);
    cr_assert_null(dp_batchnorm(&c, dp_tensor_wrap(&c, x, 1, (int[]){12}), NULL, NULL, NULL, NULL, MOMENTUM, EPS));
    cr_assert_eq(c.status, DP_ERR_SHAPE);
    dp_ctx_free(&c);
}

/* ------------------------------------------------------------------ row-wise L2 normalisation */
/* y = x / max(|x|, eps): smooth away from |x| = eps, so central differences at
 * h = 1e-3 on rows of norm O(1) (truncation ~h^2 |f'''| ~ 1e-6) are held to
 * atol 1e-4; the tiny-row cases stay inside |x| < eps, where the op is linear. */
typedef struct l2_case {
    int ndim, shape[4];
    float lo, hi, eps;
} l2_case;

static dp_tensor *build_l2(dp_ctx *c, dp_tensor **in, void *arg)
{
    const l2_case *p = arg;
    return dp_l2norm_rows(c, in[0], p->eps);
}

ParameterizedTestParameters(l2norm, gradcheck)
{
    static l2_case cases[] = {
        {2, {3, 7}, -2, 2, 1e-12f},   {2, {5, 1}, 0.5f, 2, 1e-12f}, {1, {13}, -1, 1, 1e-12f},
        {3, {2, 3, 5}, -2, 2, 1e-6f}, {2, {4, 3}, -1e-3f, 1e-3f, 1.0f}, /* every row below eps: linear */
    };
    return cr_make_param_array(l2_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(l2_case *p, l2norm, gradcheck, .timeout = DP_TIMEOUT(60))
{
    gc_input in = {.ndim = p->ndim, .shape = {p->shape[0], p->shape[1], p->shape[2], p->shape[3]}, .lo = p->lo,
                   .hi = p->hi};
    gc_opts o = gc_defaults();
    o.h = 1e-3;
    o.atol = 1e-4;
    o.rtol = 1e-3;
    CHECK_GRAD("l2norm", 1, &in, build_l2, p, &o);
}

Test(l2norm, unit_rows_match_double_and_zero_rows_stay_zero, .timeout = DP_TIMEOUT(30))
{
    enum { R = 4, D = 6 };
    float x[R * D];
    fill(x, R * D, 7, -3, 3);
    for (int j = 0; j < D; j++) x[2 * D + j] = 0.0f; /* row 2: zero */
    x[3 * D] = 1e30f;                                 /* row 3: a square that overflows float */
    dp_ctx c;
    dp_ctx_init(&c);
    dp_tensor *y = dp_l2norm_rows(&c, dp_tensor_wrap(&c, x, 2, (int[]){R, D}), 1e-12f);
    cr_assert_not_null(y, "%s", dp_errmsg());
    for (int r = 0; r < R; r++) {
        double n = 0, s = 0;
        for (int j = 0; j < D; j++) n += (double)x[r * D + j] * x[r * D + j];
        n = sqrt(n);
        for (int j = 0; j < D; j++) {
            const double ref = r == 2 ? 0.0 : x[r * D + j] / n;
            cr_assert_float_eq(y->data[r * D + j], ref, 1e-6, "row %d col %d: %g, expected %g", r, j,
                               (double)y->data[r * D + j], ref);
            s += (double)y->data[r * D + j] * y->data[r * D + j];
        }
        cr_assert_float_eq(s, r == 2 ? 0.0 : 1.0, 1e-5, "row %d: |y|^2 = %g", r, s);
    }
    dp_ctx_reset(&c);
    cr_assert_null(dp_l2norm_rows(&c, dp_tensor_wrap(&c, x, 2, (int[]){R, D}), 0.0f));
    cr_assert_eq(c.status, DP_ERR_ARG);
    dp_ctx_free(&c);
}
