/* The Transformer ops (src/core/ops_layernorm.c, ops_attention.c): gradient
 * checks of layer norm (x, gamma, beta; with and without the affine part)
 * and of packed multi-head self-attention (sequences of length 0, 1 and
 * more; 1, 2 and 3 heads), forward values against double references written
 * here, the sequence boundary (a token never sees another sequence), and
 * argument errors.
 *
 * Tolerance: both ops are smooth; inputs uniform in [-1, 1] (layer norm:
 * [-2, 2], whose rows keep a spread of O(1) so 1/std stays small), the
 * default h = 1e-2, atol 1e-3, rtol 1e-2 of gc_defaults, every element
 * checked. The forward references agree to 1e-5 (float sums of <= 16 terms). */
#include <criterion/criterion.h>
#include "timeout.h"
#include <criterion/parameterized.h>
#include <math.h>
#include <string.h>

#include "core/tape.h"
#include "gradcheck_assert.h"

static void fill(float *x, long n, uint64_t seed, float lo, float hi)
{
    dp_rng r;
    dp_rng_seed(&r, seed, DP_STREAM_USER, 0);
    dp_init_uniform(&r, x, (size_t)n, lo, hi);
}

/* ------------------------------------------------------------------ layer norm */

typedef struct ln_case {
    int ndim, shape[3];
    int gamma, beta;
} ln_case;

static dp_tensor *build_ln(dp_ctx *c, dp_tensor **in, void *arg)
{
    ln_case *p = arg;
    return dp_layernorm(c, in[0], p->gamma ? in[1] : NULL, p->beta ? in[2] : NULL, 1e-5f);
}

ParameterizedTestParameters(layernorm, gradcheck)
{
    static ln_case cases[] = {
        {2, {3, 4}, 1, 1},  {2, {5, 7}, 1, 1}, {2, {1, 2}, 1, 1},  {3, {2, 3, 6}, 1, 1},
        {2, {4, 5}, 0, 0},  {2, {4, 5}, 1, 0}, {2, {4, 5}, 0, 1},  {2, {6, 16}, 1, 1},
    };
    return cr_make_param_array(ln_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(ln_case *p, layernorm, gradcheck, .timeout = DP_TIMEOUT(60))
{
    const int D = p->shape[p->ndim - 1];
    gc_input in[3] = {
        {.ndim = p->ndim, .shape = {p->shape[0], p->shape[1], p->shape[2]}, .lo = -2, .hi = 2},
        {.ndim = 1, .shape = {D}, .lo = 0.5f, .hi = 1.5f, .no_grad = !p->gamma},
        {.ndim = 1, .shape = {D}, .lo = -1, .hi = 1, .no_grad = !p->beta},
    };
    gc_opts o = gc_defaults();
    o.max_checks = 4096;
    CHECK_GRAD("layernorm", 3, in, build_ln, p, &o);
}

Test(layernorm, forward_against_double, .timeout = DP_TIMEOUT(30))
{
    enum { R = 5, D = 9 };
    float x[R * D], g[D], b[D];
    fill(x, R * D, 1, -3, 5);
    fill(g, D, 2, -1, 1);
    fill(b, D, 3, -1, 1);
    for (int j = 0; j < D; j++) x[2 * D + j] = 1000.0f + 0.01f * (float)j; /* a large mean over a small spread */
    dp_ctx c;
    dp_ctx_init(&c);
    c.grad_enabled = 0;
    dp_tensor *X = dp_tensor_wrap(&c, x, 2, (int[]){R, D}), *G = dp_tensor_wrap(&c, g, 1, (int[]){D}),
              *B = dp_tensor_wrap(&c, b, 1, (int[]){D});
    dp_tensor *y = dp_layernorm(&c, X, G, B, 1e-5f), *y0 = dp_layernorm(&c, X, NULL, NULL, 1e-5f);
    cr_assert(y && y0, "%s", dp_errmsg());
    for (int r = 0; r < R; r++) {
        double m = 0, v = 0;
        for (int j = 0; j < D; j++) m += x[r * D + j];
        m /= D;
        for (int j = 0; j < D; j++) v += (x[r * D + j] - m) * (x[r * D + j] - m);
        v /= D;
        for (int j = 0; j < D; j++) {
            const double h = (x[r * D + j] - m) / sqrt(v + 1e-5);
            /* float x near 1000 carries ~6e-5 of rounding: the normalised row keeps it, relative to a spread of 0.026 */
            const double tol = r == 2 ? 5e-3 : 1e-5;
            cr_assert_float_eq(y0->data[r * D + j], h, tol, "row %d col %d: %g vs %g", r, j, y0->data[r * D + j], h);
            cr_assert_float_eq(y->data[r * D + j], h * g[j] + b[j], tol * 2, "row %d col %d (affine)", r, j);
        }
    }
    dp_ctx_free(&c);
}

Test(layernorm, argument_errors, .timeout = DP_TIMEOUT(30))
{
    float x[12] = {0}, g[4] = {0};
    dp_ctx c;
    dp_ctx_init(&c);
    dp_tensor *X = dp_tensor_wrap(&c, x, 2, (int[]){3, 4}), *G = dp_tensor_wrap(&c, g, 1, (int[]){3});
    cr_assert_null(dp_layernorm(&c, X, G, NULL, 1e-5f));
    cr_assert_eq(c.status, DP_ERR_SHAPE);
    cr_assert(strstr(dp_errmsg(), "gamma has 3 elements, the last dim is 4"), "%s", dp_errmsg());
    dp_ctx_reset(&c);
    cr_assert_null(dp_layernorm(&c, X, NULL, G, 1e-5f));
    cr_assert(strstr(dp_errmsg(), "beta has 3"), "%s", dp_errmsg());
    dp_ctx_reset(&c);
    cr_assert_null(dp_layernorm(&c, X, NULL, NULL, 0.0f));
    cr_assert_eq(c.status, DP_ERR_ARG);
    cr_assert(strstr(dp_errmsg(), "eps"), "%s", dp_errmsg());
    dp_ctx_free(&c);
}

/* ------------------------------------------------------------------ self-attention */

typedef struct att_case {
    int nbags, heads, E;
    int32_t offsets[6];
} att_case;

static dp_tensor *build_att(dp_ctx *c, dp_tensor **in, void *arg)
{
    att_case *p = arg;
    return dp_self_attention(c, in[0], p->offsets, p->nbags, p->heads);
}

ParameterizedTestParameters(self_attention, gradcheck)
{
    static att_case cases[] = {
        {1, 1, 2, {0, 3}},              /* one sequence, one head */
        {3, 2, 4, {0, 2, 2, 6}},        /* an empty sequence between two */
        {4, 3, 6, {0, 1, 4, 5, 7}},     /* length-1 sequences (their softmax is 1: no gradient to Q, K) */
        {2, 2, 8, {0, 5, 9}},
        {5, 1, 3, {0, 0, 3, 3, 4, 6}},  /* empty first and third */
    };
    return cr_make_param_array(att_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(att_case *p, self_attention, gradcheck, .timeout = DP_TIMEOUT(60))
{
    gc_input in = {.ndim = 2, .shape = {p->offsets[p->nbags], 3 * p->E}, .lo = -1, .hi = 1};
    gc_opts o = gc_defaults();
    o.max_checks = 4096;
    CHECK_GRAD("self_attention", 1, &in, build_att, p, &o);
}

/* A composed pre-norm block: x + Wo attn(Wqkv LN(x)) (the ops as the encoder uses them, gradients into x and both
 * projections through one tape). */
static dp_tensor *build_block(dp_ctx *c, dp_tensor **in, void *arg)
{
    att_case *p = arg;
    dp_tensor *a = dp_layernorm(c, in[0], in[1], in[2], 1e-5f);
    dp_tensor *o = dp_self_attention(c, dp_linear(c, a, in[3], NULL), p->offsets, p->nbags, p->heads);
    return dp_add(c, in[0], dp_linear(c, o, in[4], NULL));
}

Test(self_attention, gradcheck_prenorm_block, .timeout = DP_TIMEOUT(60))
{
    static att_case p = {3, 2, 4, {0, 3, 4, 7}};
    const int E = p.E, T = p.offsets[p.nbags];
    gc_input in[5] = {
        {.ndim = 2, .shape = {T, E}, .lo = -2, .hi = 2},
        {.ndim = 1, .shape = {E}, .lo = 0.5f, .hi = 1.5f},
        {.ndim = 1, .shape = {E}, .lo = -1, .hi = 1},
        {.ndim = 2, .shape = {3 * E, E}, .lo = -1, .hi = 1},
        {.ndim = 2, .shape = {E, E}, .lo = -1, .hi = 1},
    };
    gc_opts o = gc_defaults();
    o.max_checks = 4096;
    CHECK_GRAD("pre-norm attention block", 5, in, build_block, &p, &o);
}

/* out[t] by the definition, in double */
static void att_reference(double *out, const float *qkv, const int32_t *off, int nbags, int H, int E)
{
    const int dh = E / H, W = 3 * E;
    for (int b = 0; b < nbags; b++)
        for (int h = 0; h < H; h++)
            for (int i = off[b]; i < off[b + 1]; i++) {
                double s[16], m = -INFINITY, sum = 0;
                for (int j = off[b]; j < off[b + 1]; j++) {
                    double d = 0;
                    for (int k = 0; k < dh; k++) d += (double)qkv[i * W + h * dh + k] * qkv[j * W + E + h * dh + k];
                    s[j - off[b]] = d / sqrt((double)dh);
                    if (s[j - off[b]] > m) m = s[j - off[b]];
                }
                for (int j = 0; j < off[b + 1] - off[b]; j++) sum += s[j] = exp(s[j] - m);
                for (int k = 0; k < dh; k++) {
                    double o = 0;
                    for (int j = off[b]; j < off[b + 1]; j++) o += s[j - off[b]] / sum * qkv[j * W + 2 * E + h * dh + k];
                    out[i * E + h * dh + k] = o;
                }
            }
}

Test(self_attention, forward_against_double_and_sequences_apart, .timeout = DP_TIMEOUT(30))
{
    enum { T = 10, E = 6, H = 2, NB = 4 };
    const int32_t off[NB + 1] = {0, 4, 4, 5, 10};
    float qkv[T * 3 * E];
    fill(qkv, T * 3 * E, 7, -2, 2);
    double ref[T * E];
    att_reference(ref, qkv, off, NB, H, E);
    dp_ctx c;
    dp_ctx_init(&c);
    c.grad_enabled = 0;
    dp_tensor *X = dp_tensor_wrap(&c, qkv, 2, (int[]){T, 3 * E});
    dp_tensor *y = dp_self_attention(&c, X, off, NB, H);
    cr_assert_not_null(y, "%s", dp_errmsg());
    cr_assert(y->shape[0] == T && y->shape[1] == E);
    for (int i = 0; i < T * E; i++) cr_assert_float_eq(y->data[i], ref[i], 1e-5, "elem %d: %g vs %g", i, y->data[i], ref[i]);
    /* a length-1 sequence attends to itself only: its output is its own value */
    for (int k = 0; k < E; k++) cr_assert_float_eq(y->data[4 * E + k], qkv[4 * 3 * E + 2 * E + k], 1e-6);
    /* changing sequence 3 leaves sequence 0's outputs as they were, bit for bit */
    float before[4 * E];
    memcpy(before, y->data, sizeof before);
    for (int i = 5 * 3 * E; i < T * 3 * E; i++) qkv[i] = -qkv[i] + 0.5f;
    dp_tensor *y2 = dp_self_attention(&c, X, off, NB, H);
    cr_assert_not_null(y2, "%s", dp_errmsg());
    cr_assert_eq(memcmp(before, y2->data, sizeof before), 0, "sequence 0 saw sequence 3");
    int moved = 0;
    for (int i = 5 * E; i < T * E; i++) moved |= y2->data[i] != y->data[i];
    cr_assert(moved, "the test's premise: sequence 3's outputs changed");
    dp_ctx_free(&c);
}

Test(self_attention, argument_errors, .timeout = DP_TIMEOUT(30))
{
    float x[5 * 12] = {0};
    dp_ctx c;
    dp_ctx_init(&c);
    dp_tensor *X = dp_tensor_wrap(&c, x, 2, (int[]){5, 12});
    const int32_t good[] = {0, 2, 5}, short_[] = {0, 2, 4}, down[] = {0, 3, 2, 5};
    cr_assert_null(dp_self_attention(&c, X, good, 2, 3)); /* E = 4 not divisible by 3 heads */
    cr_assert_eq(c.status, DP_ERR_SHAPE);
    cr_assert(strstr(dp_errmsg(), "3 heads"), "%s", dp_errmsg());
    dp_ctx_reset(&c);
    cr_assert_null(dp_self_attention(&c, X, short_, 2, 2));
    cr_assert(strstr(dp_errmsg(), "offsets run 0 .. 4, the rows 0 .. 5"), "%s", dp_errmsg());
    dp_ctx_reset(&c);
    cr_assert_null(dp_self_attention(&c, X, down, 3, 2));
    cr_assert(strstr(dp_errmsg(), "must not decrease"), "%s", dp_errmsg());
    dp_ctx_reset(&c);
    cr_assert_not_null(dp_self_attention(&c, X, good, 2, 2), "%s", dp_errmsg());
    dp_ctx_free(&c);
}
