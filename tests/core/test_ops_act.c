/* Activations, softmax/log-softmax and dropout (src/core/ops_act.c):
 * finite-difference gradient checks over several shapes, forward values
 * against double references, and dropout's statistics and modes.
 *
 * Tolerances:
 *  - smooth ops (gelu, tanh, sigmoid, softmax, log-softmax): h = 1e-2, so the
 *    truncation error of the central difference is h^2/6 |f'''| <~ 5e-5 and
 *    the rounding noise of the float forwards ~6e-8 |out| / 2h ~ 1e-5 per
 *    affected output; atol 2e-4, rtol 2e-3 (5x tighter than the default).
 *  - relu: inputs spread by gc_init_distinct (|x| >= 0.025 > h), so no step
 *    crosses the kink and relu is linear on each side: h = 1e-2, atol 1e-4,
 *    rtol 1e-3.
 *  - dropout: with the mask fixed (the checker reseeds c->dropout_rng before
 *    every pass) the op is linear: h = 0.1, atol 1e-4, rtol 1e-3. */
#include <criterion/criterion.h>
#include "timeout.h"
#include <criterion/parameterized.h>
#include <math.h>
#include <string.h>

#include "core/tape.h"
#include "gradcheck_assert.h"


static gc_opts opts(double h, double atol, double rtol)
{
    gc_opts o = gc_defaults();
    o.h = h;
    o.atol = atol;
    o.rtol = rtol;
    return o;
}

static void fill(float *x, long n, uint64_t seed, float lo, float hi)
{
    dp_rng r;
    dp_rng_seed(&r, seed, DP_STREAM_USER, 0);
    dp_init_uniform(&r, x, (size_t)n, lo, hi);
}

/* ------------------------------------------------------------------ pointwise */

enum { OP_RELU, OP_GELU, OP_TANH, OP_SIGMOID };
static const char *pw_names[] = {"relu", "gelu", "tanh", "sigmoid"};

typedef struct pw_case {
    int op, ndim, shape[4];
} pw_case;

static dp_tensor *build_pointwise(dp_ctx *c, dp_tensor **in, void *arg)
{
    const pw_case *p = arg;
    switch (p->op) {
    case OP_RELU: return dp_relu(c, in[0]);
    case OP_GELU: return dp_gelu(c, in[0]);
    case OP_TANH: return dp_tanh(c, in[0]);
    default: return dp_sigmoid(c, in[0]);
    }
}

ParameterizedTestParameters(pointwise, gradcheck)
{
    static pw_case cases[] = {
        {OP_RELU, 1, {1}},           {OP_RELU, 2, {3, 7}},     {OP_RELU, 4, {2, 3, 5, 7}},
        {OP_GELU, 1, {1}},           {OP_GELU, 2, {3, 7}},     {OP_GELU, 4, {2, 3, 1, 13}},
        {OP_TANH, 1, {13}},          {OP_TANH, 3, {3, 1, 7}},  {OP_SIGMOID, 1, {1}},
        {OP_SIGMOID, 2, {13, 7}},    {OP_SIGMOID, 4, {1, 3, 3, 3}},
    };
    return cr_make_param_array(pw_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(pw_case *p, pointwise, gradcheck, .timeout = DP_TIMEOUT(60))
{
    gc_input in = {.ndim = p->ndim, .shape = {p->shape[0], p->shape[1], p->shape[2], p->shape[3]}, .lo = -3, .hi = 3};
    gc_opts o = opts(1e-2, 2e-4, 2e-3);
    if (p->op == OP_RELU) {
        in.init = gc_init_distinct;
        o = opts(1e-2, 1e-4, 1e-3);
    }
    CHECK_GRAD(pw_names[p->op], 1, &in, build_pointwise, p, &o);
}

Test(pointwise, forward_matches_double_reference, .timeout = DP_TIMEOUT(30))
{
    float x[64];
    fill(x, 60, 1, -6, 6);
    x[60] = 0.0f, x[61] = -100.0f, x[62] = 100.0f, x[63] = -0.0f;
    dp_ctx c;
    dp_ctx_init(&c);
    dp_tensor *X = dp_tensor_wrap(&c, x, 1, (int[]){64});
    dp_tensor *r = dp_relu(&c, X), *g = dp_gelu(&c, X), *t = dp_tanh(&c, X), *s = dp_sigmoid(&c, X);
    cr_assert(r && g && t && s, "%s", dp_errmsg());
    for (int i = 0; i < 64; i++) {
        const double v = x[i];
        cr_assert_eq(r->data[i], v > 0 ? x[i] : 0.0f);
        cr_assert_float_eq(g->data[i], 0.5 * v * (1.0 + erf(v / sqrt(2.0))), 1e-5, "gelu(%g)", v);
        cr_assert_float_eq(t->data[i], tanh(v), 1e-6, "tanh(%g)", v);
        cr_assert_float_eq(s->data[i], 1.0 / (1.0 + exp(-v)), 1e-6, "sigmoid(%g)", v);
        cr_assert(isfinite(s->data[i]) && isfinite(g->data[i]));
    }
    cr_assert_eq(s->data[61], 0.0f);
    cr_assert_eq(s->data[62], 1.0f);
    cr_assert_eq(g->data[61], -0.0f);
    dp_ctx_free(&c);
}

/* ------------------------------------------------------------------ softmax / log-softmax */

typedef struct sm_case {
    int log; /* 0 softmax, 1 log-softmax */
    float t;
    int ndim, shape[4];
} sm_case;

static dp_tensor *build_softmax(dp_ctx *c, dp_tensor **in, void *arg)
{
    const sm_case *p = arg;
    return p->log ? dp_log_softmax(c, in[0]) : dp_softmax(c, in[0], p->t);
}

ParameterizedTestParameters(softmax, gradcheck)
{
    static sm_case cases[] = {
        {0, 1.0f, 2, {1, 1}},  {0, 1.0f, 2, {3, 7}},     {0, 0.5f, 2, {3, 7}},     {0, 2.5f, 1, {13}},
        {0, 0.3f, 3, {2, 3, 5}}, {0, 1.0f, 4, {1, 2, 3, 13}}, {1, 1.0f, 2, {1, 1}}, {1, 1.0f, 2, {3, 7}},
        {1, 1.0f, 1, {13}},    {1, 1.0f, 4, {2, 1, 3, 5}},
    };
    return cr_make_param_array(sm_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(sm_case *p, softmax, gradcheck, .timeout = DP_TIMEOUT(60))
{
    gc_input in = {.ndim = p->ndim, .shape = {p->shape[0], p->shape[1], p->shape[2], p->shape[3]}, .lo = -2, .hi = 2};
    gc_opts o = opts(1e-2, 2e-4, 2e-3);
    CHECK_GRAD(p->log ? "log_softmax" : "softmax", 1, &in, build_softmax, p, &o);
}

Test(softmax, rows_sum_to_one_and_match_double_with_temperature, .timeout = DP_TIMEOUT(30))
{
    enum { R = 5, D = 9 };
    float x[R * D];
    fill(x, R * D, 2, -4, 4);
    x[D] = 1000.0f; /* row 1: a huge logit must not overflow */
    x[2 * D] = -1000.0f;
    const float temps[] = {1.0f, 0.5f, 3.0f};
    dp_ctx c;
    dp_ctx_init(&c);
    dp_tensor *X = dp_tensor_wrap(&c, x, 2, (int[]){R, D});
    for (int k = 0; k < 3; k++) {
        const double t = temps[k];
        dp_tensor *y = dp_softmax(&c, X, temps[k]);
        dp_tensor *ly = dp_log_softmax(&c, X);
        cr_assert(y && ly, "%s", dp_errmsg());
        for (int r = 0; r < R; r++) {
            double m = -INFINITY, z = 0, zl = 0, sum = 0;
            for (int j = 0; j < D; j++) m = fmax(m, x[r * D + j]);
            for (int j = 0; j < D; j++) {
                z += exp((x[r * D + j] - m) / t);
                zl += exp(x[r * D + j] - m);
            }
            for (int j = 0; j < D; j++) {
                const double ref = exp((x[r * D + j] - m) / t) / z;
                cr_assert_float_eq(y->data[r * D + j], ref, 1e-6, "t %g row %d col %d", t, r, j);
                cr_assert_float_eq(ly->data[r * D + j], x[r * D + j] - m - log(zl), 1e-4);
                cr_assert(isfinite(ly->data[r * D + j]));
                sum += y->data[r * D + j];
            }
            cr_assert_float_eq(sum, 1.0, 1e-5, "t %g row %d sums to %g", t, r, sum);
        }
    }
    cr_assert_null(dp_softmax(&c, X, 0.0f));
    cr_assert_eq(c.status, DP_ERR_ARG);
    dp_ctx_free(&c);
}

/* x feeds several ops at once: every backward must accumulate (+=) into dx. */
static dp_tensor *build_act_reuse(dp_ctx *c, dp_tensor **in, void *arg)
{
    (void)arg;
    dp_tensor *x = in[0];
    dp_tensor *a = dp_add(c, dp_softmax(c, x, 0.7f), dp_mul(c, dp_log_softmax(c, x), dp_tanh(c, x)));
    return dp_add(c, a, dp_mul(c, dp_gelu(c, x), dp_sigmoid(c, x)));
}

Test(softmax, gradcheck_with_x_reused_by_every_op, .timeout = DP_TIMEOUT(60))
{
    gc_input in = {.ndim = 2, .shape = {3, 7}, .lo = -2, .hi = 2};
    gc_opts o = opts(1e-2, 2e-4, 2e-3);
    CHECK_GRAD("act reuse", 1, &in, build_act_reuse, NULL, &o);
}

/* ------------------------------------------------------------------ dropout */

typedef struct do_case {
    float p;
    int eval;
} do_case;

/* dropout then a multiply by in[1], so that the eval/p = 0 identity (which
 * returns x itself) still ends in an op node the checker can seed. */
static dp_tensor *build_dropout(dp_ctx *c, dp_tensor **in, void *arg)
{
    const do_case *p = arg;
    c->training = !p->eval;
    return dp_mul(c, dp_dropout(c, in[0], p->p), in[1]);
}

ParameterizedTestParameters(dropout, gradcheck)
{
    static do_case cases[] = {{0.3f, 0}, {0.5f, 0}, {0.9f, 0}, {0.0f, 0}, {0.5f, 1}, {1.0f, 0}};
    return cr_make_param_array(do_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(do_case *p, dropout, gradcheck, .timeout = DP_TIMEOUT(60))
{
    gc_input ins[2] = {{.ndim = 2, .shape = {7, 13}, .lo = -1, .hi = 1},
                       {.ndim = 2, .shape = {7, 13}, .lo = -1, .hi = 1}};
    gc_opts o = opts(0.1, 1e-4, 1e-3);
    CHECK_GRAD("dropout", 2, ins, build_dropout, p, &o);
}

Test(dropout, keeps_about_1_minus_p_and_scales_by_its_inverse, .timeout = DP_TIMEOUT(30))
{
    enum { N = 200000 };
    static float x[N];
    fill(x, N, 3, 0.5f, 1.5f); /* nonzero, so a zero output means dropped */
    const float ps[] = {0.1f, 0.5f, 0.8f};
    dp_ctx c;
    dp_ctx_init(&c);
    for (int k = 0; k < 3; k++) {
        const float p = ps[k];
        dp_tensor *y = dp_dropout(&c, dp_tensor_wrap(&c, x, 1, (int[]){N}), p);
        cr_assert_not_null(y, "%s", dp_errmsg());
        long kept = 0;
        for (long i = 0; i < N; i++) {
            if (y->data[i] == 0.0f) continue;
            kept++;
            cr_assert_float_eq(y->data[i], x[i] / (1.0 - p), 1e-6 * x[i] / (1.0 - p), "elem %ld", i);
        }
        /* binomial: sd of the kept fraction = sqrt(p (1-p) / N) <= 1.2e-3; allow 5 sd */
        cr_assert_float_eq((double)kept / N, 1.0 - p, 6e-3, "p %g kept %ld of %d", p, kept, N);
    }
    dp_ctx_free(&c);
}

Test(dropout, identity_in_eval_or_p_zero_zero_at_p_one, .timeout = DP_TIMEOUT(30))
{
    float x[21];
    fill(x, 21, 4, -1, 1);
    dp_ctx c;
    dp_ctx_init(&c);
    dp_tensor *X = dp_tensor_wrap(&c, x, 2, (int[]){3, 7});
    cr_assert_eq(dp_dropout(&c, X, 0.0f), X);
    c.training = 0;
    dp_tensor *e = dp_dropout(&c, X, 0.7f);
    cr_assert_eq(e, X);
    for (int i = 0; i < 21; i++) cr_assert_eq(e->data[i], x[i]);
    c.training = 1;
    dp_tensor *z = dp_dropout(&c, X, 1.0f);
    cr_assert_not_null(z);
    for (int i = 0; i < 21; i++) cr_assert_eq(z->data[i], 0.0f);
    cr_assert_null(dp_dropout(&c, X, 1.5f));
    cr_assert_eq(c.status, DP_ERR_ARG);
    dp_ctx_free(&c);
}

Test(dropout, mask_follows_the_rng_and_backward_uses_it, .timeout = DP_TIMEOUT(30))
{
    float x[50];
    fill(x, 50, 5, 0.5f, 1.0f);
    dp_ctx c;
    dp_ctx_init(&c);
    dp_rng_seed(&c.dropout_rng, 42, DP_STREAM_DROPOUT, 0);
    dp_tensor *X = dp_tensor_wrap(&c, x, 1, (int[]){50});
    X->requires_grad = 1;
    dp_tensor *a = dp_dropout(&c, X, 0.4f);
    float ya[50];
    memcpy(ya, a->data, sizeof ya);
    float seed[50];
    for (int i = 0; i < 50; i++) seed[i] = 1.0f;
    a->grad = seed;
    cr_assert_eq(dp_backward(&c, a), DP_OK, "%s", dp_errmsg());
    for (int i = 0; i < 50; i++) cr_assert_float_eq(X->grad[i], ya[i] / x[i], 1e-6); /* dx = mask */
    dp_ctx_reset(&c);
    dp_rng_seed(&c.dropout_rng, 42, DP_STREAM_DROPOUT, 0);
    X = dp_tensor_wrap(&c, x, 1, (int[]){50});
    dp_tensor *b = dp_dropout(&c, X, 0.4f);
    cr_assert_arr_eq(b->data, ya, sizeof ya);
    dp_ctx_free(&c);
}

/* ------------------------------------------------------------------ straight-through one-hot */

/* The forward is piecewise constant, so finite differences would give zero:
 * the defined gradient is the identity, checked exactly (d soft = d out). */
Test(onehot_st, forward_is_first_argmax_backward_is_identity, .timeout = DP_TIMEOUT(10))
{
    enum { R = 4, D = 5 };
    float x[R * D] = {0.1f, 0.7f, 0.2f, 0.7f, 0.0f,  /* tie: the first 0.7 */
                      -3, -1, -2, -5, -4,           /* all negative */
                      9, 1, 1, 1, 1,                /* first column */
                      0.2f, 0.2f, 0.2f, 0.2f, 0.2f}; /* all equal: column 0 */
    const int want[R] = {1, 1, 0, 0};
    dp_ctx c;
    dp_ctx_init(&c);
    dp_tensor *X = dp_tensor_wrap(&c, x, 2, (int[]){R, D});
    X->requires_grad = 1;
    dp_tensor *y = dp_onehot_st(&c, X);
    cr_assert_not_null(y, "%s", dp_errmsg());
    cr_assert(y->ndim == 2 && y->shape[0] == R && y->shape[1] == D);
    for (int r = 0; r < R; r++)
        for (int j = 0; j < D; j++) cr_assert_eq(y->data[r * D + j], j == want[r] ? 1.0f : 0.0f, "row %d col %d", r, j);
    float seed[R * D], gx[R * D];
    fill(seed, R * D, 7, -1, 1);
    for (int i = 0; i < R * D; i++) gx[i] = 0.5f; /* backward accumulates onto what is there */
    X->grad = gx;
    y->grad = seed;
    cr_assert_eq(dp_backward(&c, y), DP_OK, "%s", dp_errmsg());
    for (int i = 0; i < R * D; i++) cr_assert_eq(gx[i], 0.5f + seed[i]);
    dp_ctx_free(&c);
}

/* Through a softmax (GDAS's hard sample of softmax(x / t)): the gradient that
 * reaches x is the softmax backward of d out, checked against the plain
 * softmax path seeded with the same d out. */
Test(onehot_st, composes_with_softmax_like_the_soft_path, .timeout = DP_TIMEOUT(10))
{
    enum { R = 3, D = 6 };
    float x[R * D], seed[R * D], g_st[R * D] = {0}, g_soft[R * D] = {0};
    fill(x, R * D, 8, -2, 2);
    fill(seed, R * D, 9, -1, 1);
    float *grads[2] = {g_st, g_soft};
    for (int pass = 0; pass < 2; pass++) {
        dp_ctx c;
        dp_ctx_init(&c);
        dp_tensor *X = dp_tensor_wrap(&c, x, 2, (int[]){R, D});
        X->requires_grad = 1;
        X->grad = grads[pass];
        dp_tensor *s = dp_softmax(&c, X, 0.5f);
        dp_tensor *y = pass == 0 ? dp_onehot_st(&c, s) : dp_scale(&c, s, 1.0f);
        cr_assert_not_null(y);
        y->grad = seed;
        cr_assert_eq(dp_backward(&c, y), DP_OK);
        dp_ctx_free(&c);
    }
    for (int i = 0; i < R * D; i++) cr_assert_float_eq(g_st[i], g_soft[i], 1e-7f, "elem %d", i);
}
