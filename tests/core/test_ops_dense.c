/* Dense ops (src/core/ops_dense.c): finite-difference gradient checks for
 * matmul (all trans flags), linear (with/without bias), bias_add (2-D, 3-D,
 * 4-D), add, mul, scale, weighted_sum (with a zero-op member), the
 * reshape/flatten views; forward values against double references; shape
 * errors; and the no-malloc-after-warm-up rule of the hot path.
 *
 * Tolerance: every op here is linear in each input (matmul/mul/weighted_sum
 * are bilinear, x*x is quadratic), so the central difference is exact up to
 * float rounding whatever the step. We take h = 0.1 to keep the rounding
 * noise of the float forwards (~6e-8 |out| / 2h per affected output) small,
 * and check with atol 2e-5, rtol 2e-4 (50x tighter than the default; the
 * worst error seen is ~3e-6, on a 16x13 @ 13x9 matmul). */
#include <criterion/criterion.h>
#include "timeout.h"
#include <criterion/parameterized.h>
#include <math.h>
#include <string.h>

#include "core/tape.h"
#include "gradcheck_assert.h"

static gc_opts lin_opts(void)
{
    gc_opts o = gc_defaults();
    o.h = 0.1;
    o.atol = 2e-5;
    o.rtol = 2e-4;
    return o;
}


static void fill(float *x, long n, uint64_t seed)
{
    dp_rng r;
    dp_rng_seed(&r, seed, DP_STREAM_USER, 0);
    dp_init_uniform(&r, x, (size_t)n, -1.0f, 1.0f);
}

/* ------------------------------------------------------------------ matmul */

typedef struct mm_case {
    int M, K, N, ta, tb;
} mm_case;

static dp_tensor *build_matmul(dp_ctx *c, dp_tensor **in, void *arg)
{
    const mm_case *p = arg;
    return dp_matmul(c, in[0], in[1], p->ta, p->tb);
}

ParameterizedTestParameters(matmul, gradcheck)
{
    static mm_case cases[] = {
        {1, 1, 1, 0, 0}, {3, 7, 5, 0, 0}, {3, 7, 5, 1, 0}, {3, 7, 5, 0, 1}, {3, 7, 5, 1, 1},
        {13, 1, 7, 1, 1}, {1, 13, 3, 0, 1}, {7, 3, 1, 1, 0}, {16, 13, 9, 0, 0},
    };
    return cr_make_param_array(mm_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(mm_case *p, matmul, gradcheck, .timeout = DP_TIMEOUT(60))
{
    gc_input ins[2] = {
        {.ndim = 2, .shape = {p->ta ? p->K : p->M, p->ta ? p->M : p->K}, .lo = -1, .hi = 1},
        {.ndim = 2, .shape = {p->tb ? p->N : p->K, p->tb ? p->K : p->N}, .lo = -1, .hi = 1},
    };
    gc_opts o = lin_opts();
    CHECK_GRAD("matmul", 2, ins, build_matmul, p, &o);
}

Test(matmul, forward_matches_double_reference_for_all_trans_flags, .timeout = DP_TIMEOUT(30))
{
    const int M = 5, K = 7, N = 3;
    float a[35], b[21];
    fill(a, 35, 1);
    fill(b, 21, 2);
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            dp_ctx c;
            dp_ctx_init(&c);
            dp_tensor *A = dp_tensor_wrap(&c, a, 2, ta ? (int[]){K, M} : (int[]){M, K});
            dp_tensor *B = dp_tensor_wrap(&c, b, 2, tb ? (int[]){N, K} : (int[]){K, N});
            dp_tensor *y = dp_matmul(&c, A, B, ta, tb);
            cr_assert_not_null(y, "%s", dp_errmsg());
            cr_assert_eq(y->shape[0], M);
            cr_assert_eq(y->shape[1], N);
            cr_assert_not(y->requires_grad);
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++) {
                    double s = 0;
                    for (int k = 0; k < K; k++)
                        s += (double)(ta ? a[k * M + i] : a[i * K + k]) * (tb ? b[j * K + k] : b[k * N + j]);
                    cr_assert_float_eq(y->data[i * N + j], s, 1e-5, "ta %d tb %d (%d,%d)", ta, tb, i, j);
                }
            dp_ctx_free(&c);
        }
}

Test(matmul, rejects_mismatched_inner_dims, .timeout = DP_TIMEOUT(30))
{
    dp_ctx c;
    dp_ctx_init(&c);
    float buf[12] = {0};
    dp_tensor *a = dp_tensor_wrap(&c, buf, 2, (int[]){3, 4});
    dp_tensor *b = dp_tensor_wrap(&c, buf, 2, (int[]){3, 4});
    cr_assert_null(dp_matmul(&c, a, b, 0, 0));
    cr_assert_eq(c.status, DP_ERR_SHAPE);
    cr_assert(strstr(dp_errmsg(), "matmul"), "%s", dp_errmsg());
    /* sticky: a later valid op still records nothing new, and NULL propagates */
    cr_assert_null(dp_relu(&c, NULL));
    cr_assert_not_null(dp_matmul(&c, a, b, 0, 1)); /* [3,4] @ [4,3]^T ok */
    cr_assert_eq(c.status, DP_ERR_SHAPE);
    dp_ctx_free(&c);
}

/* ------------------------------------------------------------------ linear */

typedef struct lin_case {
    int N, in, out, bias;
} lin_case;

static dp_tensor *build_linear(dp_ctx *c, dp_tensor **in, void *arg)
{
    const lin_case *p = arg;
    return dp_linear(c, in[0], in[1], p->bias ? in[2] : NULL);
}

ParameterizedTestParameters(linear, gradcheck)
{
    static lin_case cases[] = {
        {1, 1, 1, 1}, {1, 1, 1, 0}, {3, 7, 5, 1}, {3, 7, 5, 0}, {13, 3, 7, 1}, {7, 13, 1, 0}, {16, 9, 13, 1},
    };
    return cr_make_param_array(lin_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(lin_case *p, linear, gradcheck, .timeout = DP_TIMEOUT(60))
{
    gc_input ins[3] = {
        {.ndim = 2, .shape = {p->N, p->in}, .lo = -1, .hi = 1},
        {.ndim = 2, .shape = {p->out, p->in}, .lo = -1, .hi = 1},
        {.ndim = 1, .shape = {p->out}, .lo = -1, .hi = 1},
    };
    gc_opts o = lin_opts();
    CHECK_GRAD("linear", p->bias ? 3 : 2, ins, build_linear, p, &o);
}

Test(linear, forward_matches_double_reference, .timeout = DP_TIMEOUT(30))
{
    enum { N = 4, IN = 6, OUT = 5 };
    float x[N * IN], w[OUT * IN], b[OUT];
    fill(x, N * IN, 3);
    fill(w, OUT * IN, 4);
    fill(b, OUT, 5);
    for (int with_bias = 0; with_bias < 2; with_bias++) {
        dp_ctx c;
        dp_ctx_init(&c);
        dp_tensor *y = dp_linear(&c, dp_tensor_wrap(&c, x, 2, (int[]){N, IN}),
                                 dp_tensor_wrap(&c, w, 2, (int[]){OUT, IN}),
                                 with_bias ? dp_tensor_wrap(&c, b, 1, (int[]){OUT}) : NULL);
        cr_assert_not_null(y, "%s", dp_errmsg());
        for (int i = 0; i < N; i++)
            for (int o = 0; o < OUT; o++) {
                double s = with_bias ? b[o] : 0.0;
                for (int k = 0; k < IN; k++) s += (double)x[i * IN + k] * w[o * IN + k];
                cr_assert_float_eq(y->data[i * OUT + o], s, 1e-5);
            }
        dp_ctx_free(&c);
    }
}

Test(linear, rejects_bad_shapes, .timeout = DP_TIMEOUT(30))
{
    dp_ctx c;
    dp_ctx_init(&c);
    float buf[64] = {0};
    dp_tensor *x = dp_tensor_wrap(&c, buf, 2, (int[]){2, 3});
    cr_assert_null(dp_linear(&c, x, dp_tensor_wrap(&c, buf, 2, (int[]){4, 5}), NULL));
    cr_assert_eq(c.status, DP_ERR_SHAPE);
    dp_ctx_reset(&c); /* invalidates x */
    x = dp_tensor_wrap(&c, buf, 2, (int[]){2, 3});
    cr_assert_null(dp_linear(&c, x, dp_tensor_wrap(&c, buf, 2, (int[]){4, 3}), dp_tensor_wrap(&c, buf, 1, (int[]){3})));
    cr_assert(strstr(dp_errmsg(), "bias"), "%s", dp_errmsg());
    dp_ctx_free(&c);
}

/* ------------------------------------------------------------------ bias_add */

typedef struct shape_case {
    int ndim, shape[4];
} shape_case;

static dp_tensor *build_bias_add(dp_ctx *c, dp_tensor **in, void *arg)
{
    (void)arg;
    return dp_bias_add(c, in[0], in[1]);
}

ParameterizedTestParameters(bias_add, gradcheck)
{
    static shape_case cases[] = {
        {2, {1, 1}}, {2, {3, 5}}, {2, {13, 7}}, {3, {2, 3, 5}}, {4, {2, 3, 4, 5}}, {4, {1, 1, 3, 3}}, {4, {3, 7, 1, 1}},
    };
    return cr_make_param_array(shape_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(shape_case *p, bias_add, gradcheck, .timeout = DP_TIMEOUT(60))
{
    gc_input ins[2] = {
        {.ndim = p->ndim, .shape = {p->shape[0], p->shape[1], p->shape[2], p->shape[3]}, .lo = -1, .hi = 1},
        {.ndim = 1, .shape = {p->shape[1]}, .lo = -1, .hi = 1},
    };
    gc_opts o = lin_opts();
    CHECK_GRAD("bias_add", 2, ins, build_bias_add, NULL, &o);
}

Test(bias_add, forward_adds_per_channel_in_2d_and_4d, .timeout = DP_TIMEOUT(30))
{
    float x[2 * 3 * 2 * 2], b[3] = {1.0f, -2.0f, 0.5f};
    fill(x, 24, 6);
    dp_ctx c;
    dp_ctx_init(&c);
    dp_tensor *y4 =
        dp_bias_add(&c, dp_tensor_wrap(&c, x, 4, (int[]){2, 3, 2, 2}), dp_tensor_wrap(&c, b, 1, (int[]){3}));
    dp_tensor *y2 = dp_bias_add(&c, dp_tensor_wrap(&c, x, 2, (int[]){8, 3}), dp_tensor_wrap(&c, b, 1, (int[]){3}));
    cr_assert(y4 && y2, "%s", dp_errmsg());
    for (int i = 0; i < 24; i++) {
        cr_assert_eq(y4->data[i], x[i] + b[(i / 4) % 3]);
        cr_assert_eq(y2->data[i], x[i] + b[i % 3]);
    }
    cr_assert_null(dp_bias_add(&c, dp_tensor_wrap(&c, x, 2, (int[]){6, 4}), dp_tensor_wrap(&c, b, 1, (int[]){3})));
    cr_assert_eq(c.status, DP_ERR_SHAPE);
    dp_ctx_free(&c);
}

/* ------------------------------------------------------------------ add / mul / scale */

typedef struct ew_case {
    int op; /* 0 add, 1 mul, 2 scale, 3 mul(x, x), 4 add(x, x) */
    shape_case s;
} ew_case;

static dp_tensor *build_elementwise(dp_ctx *c, dp_tensor **in, void *arg)
{
    const ew_case *p = arg;
    switch (p->op) {
    case 0: return dp_add(c, in[0], in[1]);
    case 1: return dp_mul(c, in[0], in[1]);
    case 2: return dp_scale(c, in[0], -1.75f);
    case 3: return dp_mul(c, in[0], in[0]);
    default: return dp_add(c, in[0], in[0]);
    }
}

ParameterizedTestParameters(elementwise, gradcheck)
{
    static ew_case cases[] = {
        {0, {1, {1}}}, {0, {2, {3, 7}}}, {0, {4, {2, 3, 1, 5}}}, {1, {1, {1}}}, {1, {2, {3, 7}}},
        {1, {4, {2, 3, 1, 5}}}, {2, {1, {13}}}, {2, {3, {3, 1, 7}}}, {3, {2, {7, 3}}}, {4, {2, {7, 3}}},
    };
    return cr_make_param_array(ew_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(ew_case *p, elementwise, gradcheck, .timeout = DP_TIMEOUT(60))
{
    gc_input in = {.ndim = p->s.ndim, .shape = {p->s.shape[0], p->s.shape[1], p->s.shape[2], p->s.shape[3]},
                   .lo = -2, .hi = 2};
    gc_input ins[2] = {in, in};
    static const char *names[] = {"add", "mul", "scale", "mul(x,x)", "add(x,x)"};
    gc_opts o = lin_opts();
    CHECK_GRAD(names[p->op], p->op <= 1 ? 2 : 1, ins, build_elementwise, p, &o);
}

/* ------------------------------------------------------------------ add_relu */

/* relu(a + b) fused. The relu is piecewise linear, so the difference is exact
 * away from its kink: a is kept >= 0.1 from 0 and b within 0.05 of it, so
 * a + b stays >= 0.05 from 0, beyond the step h = 0.01. Cases: two inputs;
 * one input twice (a == b); a also used after the op, so that its gradient
 * already holds the later use's part when add_relu's backward runs (the
 * accumulating path, not the one that takes dy's block). */
typedef struct ar_case {
    int op; /* 0 add_relu(a, b), 1 add_relu(a, a), 2 add_relu(a, b) * a */
    shape_case s;
} ar_case;

static dp_tensor *build_add_relu(dp_ctx *c, dp_tensor **in, void *arg)
{
    const ar_case *p = arg;
    switch (p->op) {
    case 0: return dp_add_relu(c, in[0], in[1]);
    case 1: return dp_add_relu(c, in[0], in[0]);
    default: return dp_mul(c, dp_add_relu(c, in[0], in[1]), in[0]);
    }
}

ParameterizedTestParameters(add_relu, gradcheck)
{
    static ar_case cases[] = {
        {0, {2, {3, 7}}}, {0, {4, {2, 3, 2, 5}}}, {1, {2, {7, 3}}}, {2, {2, {5, 4}}}, {2, {4, {2, 3, 1, 5}}},
    };
    return cr_make_param_array(ar_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(ar_case *p, add_relu, gradcheck, .timeout = DP_TIMEOUT(60))
{
    gc_input a = {.ndim = p->s.ndim,
                  .shape = {p->s.shape[0], p->s.shape[1], p->s.shape[2], p->s.shape[3]},
                  .init = gc_init_away_from_zero};
    gc_input b = a;
    b.init = NULL;
    b.lo = -0.05f;
    b.hi = 0.05f;
    gc_input ins[2] = {a, b};
    static const char *names[] = {"add_relu", "add_relu(a,a)", "add_relu(a,b)*a"};
    gc_opts o = lin_opts();
    o.h = 0.01;
    CHECK_GRAD(names[p->op], p->op == 1 ? 1 : 2, ins, build_add_relu, p, &o);
}

/* The fused op gives the bits of relu(add(a, b)): output and both gradients. */
Test(add_relu, same_bits_as_add_then_relu, .timeout = DP_TIMEOUT(30))
{
    dp_ctx c;
    dp_ctx_init(&c);
    enum { N = 4 * 3 * 5 * 7 };
    const int shape[4] = {4, 3, 5, 7};
    float *v = dp_scratch(&c, 5 * N * sizeof(float));
    fill(v, 3 * N, 21);
    memcpy(v + 3 * N, v, 2 * N * sizeof(float)); /* the second pair: the same a, b */
    dp_tensor *a[2], *b[2], *y[2];
    for (int k = 0; k < 2; k++) {
        a[k] = dp_tensor_wrap(&c, v + (k ? 3 : 0) * N, 4, shape);
        b[k] = dp_tensor_wrap(&c, v + (k ? 4 : 1) * N, 4, shape);
        a[k]->requires_grad = b[k]->requires_grad = 1;
        y[k] = k ? dp_add_relu(&c, a[k], b[k]) : dp_relu(&c, dp_add(&c, a[k], b[k]));
        cr_assert_not_null(y[k]);
    }
    int zeros = 0;
    for (int i = 0; i < N; i++) zeros += y[1]->data[i] == 0.0f;
    cr_assert(zeros > N / 5 && zeros < N - N / 5, "%d of %d outputs clipped: not a test of the mask", zeros, N);
    cr_assert(memcmp(y[0]->data, y[1]->data, N * sizeof(float)) == 0, "outputs differ");
    for (int k = 1; k >= 0; k--) { /* the fused graph is the newer: walk it first */
        memcpy(dp_grad(&c, y[k]), v + 2 * N, N * sizeof(float));
        cr_assert_eq(dp_backward(&c, y[k]), DP_OK);
    }
    cr_assert(memcmp(a[0]->grad, a[1]->grad, N * sizeof(float)) == 0, "da differs");
    cr_assert(memcmp(b[0]->grad, b[1]->grad, N * sizeof(float)) == 0, "db differs");
    dp_ctx_free(&c);
}

Test(elementwise, forward_values_and_shape_check, .timeout = DP_TIMEOUT(30))
{
    float a[6] = {1, -2, 3, -4, 5, -6}, b[6] = {0.5f, 0.25f, -1, 2, 0, 3};
    dp_ctx c;
    dp_ctx_init(&c);
    dp_tensor *A = dp_tensor_wrap(&c, a, 2, (int[]){2, 3}), *B = dp_tensor_wrap(&c, b, 2, (int[]){2, 3});
    dp_tensor *s = dp_add(&c, A, B), *m = dp_mul(&c, A, B), *k = dp_scale(&c, A, 0.5f);
    cr_assert(s && m && k);
    for (int i = 0; i < 6; i++) {
        cr_assert_eq(s->data[i], a[i] + b[i]);
        cr_assert_eq(m->data[i], a[i] * b[i]);
        cr_assert_eq(k->data[i], 0.5f * a[i]);
    }
    cr_assert_null(dp_add(&c, A, dp_tensor_wrap(&c, b, 2, (int[]){3, 2})));
    cr_assert_eq(c.status, DP_ERR_SHAPE);
    dp_ctx_free(&c);
}

/* ------------------------------------------------------------------ weighted_sum */

typedef struct ws_case {
    int n, null_at; /* null_at = -1: every member present */
    long w_off;
    shape_case s;
} ws_case;

/* in[0..n) are the members (the one at null_at is replaced by NULL), in[n] is w. */
static dp_tensor *build_weighted_sum(dp_ctx *c, dp_tensor **in, void *arg)
{
    const ws_case *p = arg;
    dp_tensor *xs[7];
    for (int i = 0; i < p->n; i++) xs[i] = i == p->null_at ? NULL : in[i];
    return dp_weighted_sum(c, p->n, xs, in[p->n], p->w_off);
}

ParameterizedTestParameters(weighted_sum, gradcheck)
{
    static ws_case cases[] = {
        {1, -1, 0, {1, {1}}},         {3, -1, 0, {2, {3, 5}}},    {4, 2, 1, {2, {3, 5}}},
        {5, 0, 3, {4, {2, 3, 1, 7}}}, {7, 6, 0, {1, {13}}},       {2, 1, 2, {3, {1, 3, 3}}},
    };
    return cr_make_param_array(ws_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(ws_case *p, weighted_sum, gradcheck, .timeout = DP_TIMEOUT(60))
{
    gc_input ins[8];
    for (int i = 0; i < p->n; i++)
        ins[i] = (gc_input){.ndim = p->s.ndim,
                            .shape = {p->s.shape[0], p->s.shape[1], p->s.shape[2], p->s.shape[3]},
                            .lo = -1,
                            .hi = 1,
                            .no_grad = i == p->null_at}; /* not passed to the op: nothing to check */
    /* w has a margin of 2 beyond the used window: those entries must get exactly zero gradient */
    ins[p->n] = (gc_input){.ndim = 1, .shape = {(int)p->w_off + p->n + 2}, .lo = -1, .hi = 1};
    gc_opts o = lin_opts();
    CHECK_GRAD("weighted_sum", p->n + 1, ins, build_weighted_sum, p, &o);
}

Test(weighted_sum, forward_and_zero_op_gets_no_weight_gradient, .timeout = DP_TIMEOUT(30))
{
    float x0[6], x2[6], w[5] = {9, 0.5f, -2.0f, 3.0f, 9};
    fill(x0, 6, 7);
    fill(x2, 6, 8);
    dp_ctx c;
    dp_ctx_init(&c);
    dp_tensor *W = dp_tensor_wrap(&c, w, 1, (int[]){5});
    W->requires_grad = 1;
    dp_tensor *xs[3] = {dp_tensor_wrap(&c, x0, 2, (int[]){2, 3}), NULL, dp_tensor_wrap(&c, x2, 2, (int[]){2, 3})};
    dp_tensor *y = dp_weighted_sum(&c, 3, xs, W, 1);
    cr_assert_not_null(y, "%s", dp_errmsg());
    for (int i = 0; i < 6; i++) cr_assert_float_eq(y->data[i], 0.5 * x0[i] + 3.0 * x2[i], 1e-6);
    float seed[6] = {1, 1, 1, 1, 1, 1};
    y->grad = seed;
    cr_assert_eq(dp_backward(&c, y), DP_OK, "%s", dp_errmsg());
    double s0 = 0, s2 = 0;
    for (int i = 0; i < 6; i++) {
        s0 += x0[i];
        s2 += x2[i];
    }
    cr_assert_float_eq(W->grad[1], s0, 1e-5);
    cr_assert_eq(W->grad[2], 0.0f);
    cr_assert_float_eq(W->grad[3], s2, 1e-5);
    cr_assert_eq(W->grad[0], 0.0f);
    cr_assert_eq(W->grad[4], 0.0f);
    /* errors: all members zero, window outside w, shapes differ (a reset
     * invalidates the arena tensor structs, so they are wrapped again) */
#define REWRAP()                                                                                                  \
    do {                                                                                                          \
        dp_ctx_reset(&c);                                                                                         \
        W = dp_tensor_wrap(&c, w, 1, (int[]){5});                                                                 \
        xs[0] = dp_tensor_wrap(&c, x0, 2, (int[]){2, 3});                                                         \
        xs[1] = NULL;                                                                                             \
        xs[2] = dp_tensor_wrap(&c, x2, 2, (int[]){2, 3});                                                         \
    } while (0)
    REWRAP();
    cr_assert_null(dp_weighted_sum(&c, 2, (dp_tensor *[]){NULL, NULL}, W, 0));
    cr_assert_eq(c.status, DP_ERR_ARG);
    REWRAP();
    cr_assert_null(dp_weighted_sum(&c, 3, xs, W, 3));
    cr_assert_eq(c.status, DP_ERR_ARG);
    REWRAP();
    xs[1] = dp_tensor_wrap(&c, x0, 2, (int[]){3, 2});
    cr_assert_null(dp_weighted_sum(&c, 3, xs, W, 0));
    cr_assert_eq(c.status, DP_ERR_SHAPE);
#undef REWRAP
    dp_ctx_free(&c);
}

/* ------------------------------------------------------------------ reuse */

/* A tensor used twice: every backward must add (+=) into the gradient buffer,
 * never overwrite it (the checker starts from zeroed leaf gradients, so a
 * single use cannot tell "=" from "+="). */
typedef struct reuse_case {
    int op; /* 0 matmul a^T a, 1 linear twice, 2 bias_add twice, 3 weighted_sum with a repeated member */
} reuse_case;

static dp_tensor *build_reuse(dp_ctx *c, dp_tensor **in, void *arg)
{
    const reuse_case *p = arg;
    switch (p->op) {
    case 0: return dp_add(c, dp_matmul(c, in[0], in[0], 1, 0), dp_matmul(c, in[0], in[1], 1, 1));
    case 1: return dp_add(c, dp_linear(c, in[0], in[1], in[2]), dp_linear(c, in[0], in[1], in[2]));
    case 2: return dp_bias_add(c, dp_bias_add(c, in[0], in[1]), in[1]);
    default: return dp_weighted_sum(c, 3, (dp_tensor *[]){in[0], NULL, in[0]}, in[1], 0);
    }
}

ParameterizedTestParameters(reuse, gradcheck)
{
    static reuse_case cases[] = {{0}, {1}, {2}, {3}};
    return cr_make_param_array(reuse_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(reuse_case *p, reuse, gradcheck, .timeout = DP_TIMEOUT(60))
{
    static const gc_input sets[4][3] = {
        {{.ndim = 2, .shape = {5, 3}, .lo = -1, .hi = 1}, {.ndim = 2, .shape = {3, 5}, .lo = -1, .hi = 1}},
        {{.ndim = 2, .shape = {4, 7}, .lo = -1, .hi = 1},
         {.ndim = 2, .shape = {3, 7}, .lo = -1, .hi = 1},
         {.ndim = 1, .shape = {3}, .lo = -1, .hi = 1}},
        {{.ndim = 4, .shape = {2, 3, 2, 2}, .lo = -1, .hi = 1}, {.ndim = 1, .shape = {3}, .lo = -1, .hi = 1}},
        {{.ndim = 2, .shape = {3, 5}, .lo = -1, .hi = 1}, {.ndim = 1, .shape = {3}, .lo = -1, .hi = 1}},
    };
    static const int nin[4] = {2, 3, 2, 2};
    gc_opts o = lin_opts();
    CHECK_GRAD("reuse", nin[p->op], sets[p->op], build_reuse, p, &o);
}

/* ------------------------------------------------------------------ views */

/* reshape [2,3,4] -> [6,4] -> flatten (no-op [6,4]) then mul by in[1] [6,4]; and
 * flatten [3,2,2,1] -> [3,4] @ linear. The checker's output must be a real op. */
static dp_tensor *build_views(dp_ctx *c, dp_tensor **in, void *arg)
{
    (void)arg;
    dp_tensor *v = dp_flatten(c, dp_reshape(c, in[0], 2, (int[]){6, 4}));
    return dp_mul(c, v, in[1]);
}

static dp_tensor *build_flatten_linear(dp_ctx *c, dp_tensor **in, void *arg)
{
    (void)arg;
    return dp_linear(c, dp_flatten(c, in[0]), in[1], NULL);
}

Test(views, gradcheck_through_reshape_and_flatten, .timeout = DP_TIMEOUT(60))
{
    gc_opts o = lin_opts();
    gc_input a[2] = {{.ndim = 3, .shape = {2, 3, 4}, .lo = -1, .hi = 1},
                     {.ndim = 2, .shape = {6, 4}, .lo = -1, .hi = 1}};
    CHECK_GRAD("reshape+flatten", 2, a, build_views, NULL, &o);
    gc_input b[2] = {{.ndim = 4, .shape = {3, 2, 2, 1}, .lo = -1, .hi = 1},
                     {.ndim = 2, .shape = {5, 4}, .lo = -1, .hi = 1}};
    CHECK_GRAD("flatten+linear", 2, b, build_flatten_linear, NULL, &o);
}

Test(views, share_data_and_gradient, .timeout = DP_TIMEOUT(30))
{
    float x[24];
    fill(x, 24, 9);
    dp_ctx c;
    dp_ctx_init(&c);
    dp_tensor *X = dp_tensor_wrap(&c, x, 4, (int[]){2, 3, 2, 2});
    dp_tensor *f = dp_flatten(&c, X);
    cr_assert_not_null(f);
    cr_assert_eq(f->ndim, 2);
    cr_assert_eq(f->shape[0], 2);
    cr_assert_eq(f->shape[1], 12);
    cr_assert_eq(f->data, x);
    cr_assert_not(f->requires_grad); /* x takes no gradient */
    cr_assert_null(f->grad);
    X->requires_grad = 1;
    dp_tensor *r = dp_reshape(&c, X, 1, (int[]){24});
    cr_assert(r->requires_grad);
    cr_assert_not_null(X->grad);
    cr_assert_eq(r->grad, X->grad);
    cr_assert_null(dp_reshape(&c, X, 2, (int[]){5, 5}));
    cr_assert_eq(c.status, DP_ERR_SHAPE);
    dp_ctx_free(&c);
}

/* ------------------------------------------------------------------ hot path */

/* A small MLP step through most ops, repeated: after the first step the arena
 * has its high-water chunk and the tape its capacity, so later steps must take
 * nothing from the system (the ops use dp_scratch only). */
Test(hot_path, no_system_allocation_after_the_first_step, .timeout = DP_TIMEOUT(60))
{
    enum { N = 8, IN = 13, HID = 7, OUT = 3 };
    float x[N * IN], w1[HID * IN], b1[HID], w2[OUT * HID], b2[OUT], g1[HID * IN], gb1[HID], g2[OUT * HID], gb2[OUT];
    int32_t labels[N];
    fill(x, N * IN, 10);
    fill(w1, HID * IN, 11);
    fill(b1, HID, 12);
    fill(w2, OUT * HID, 13);
    fill(b2, OUT, 14);
    for (int i = 0; i < N; i++) labels[i] = i % OUT;
    dp_ctx c;
    dp_ctx_init(&c);
    long after_warmup = -1, cap = -1;
    for (int step = 0; step < 6; step++) {
        dp_tensor *X = dp_tensor_wrap(&c, x, 2, (int[]){N, IN});
        dp_tensor *W1 = dp_tensor_wrap(&c, w1, 2, (int[]){HID, IN}), *B1 = dp_tensor_wrap(&c, b1, 1, (int[]){HID});
        dp_tensor *W2 = dp_tensor_wrap(&c, w2, 2, (int[]){OUT, HID}), *B2 = dp_tensor_wrap(&c, b2, 1, (int[]){OUT});
        W1->grad = g1, B1->grad = gb1, W2->grad = g2, B2->grad = gb2;
        W1->requires_grad = B1->requires_grad = W2->requires_grad = B2->requires_grad = 1;
        dp_tensor *h = dp_dropout(&c, dp_relu(&c, dp_linear(&c, X, W1, B1)), 0.25f);
        dp_tensor *m = dp_matmul(&c, h, W2, 0, 1); /* [N,OUT] */
        dp_tensor *s = dp_scale(&c, dp_add(&c, dp_mul(&c, m, m), dp_tanh(&c, m)), 0.5f);
        dp_tensor *z = dp_bias_add(&c, dp_reshape(&c, dp_flatten(&c, s), 2, (int[]){N, OUT}), B2);
        dp_tensor *loss = dp_cross_entropy(&c, z, labels, NULL);
        cr_assert_not_null(loss, "%s", dp_errmsg());
        cr_assert_eq(dp_backward(&c, loss), DP_OK, "%s", dp_errmsg());
        if (step == 1) {
            after_warmup = c.arena.sys_allocs;
            cap = c.tape.cap;
        }
        dp_ctx_reset(&c);
    }
    cr_assert_eq(c.arena.sys_allocs, after_warmup);
    cr_assert_eq(c.tape.cap, cap);
    dp_ctx_free(&c);
}
