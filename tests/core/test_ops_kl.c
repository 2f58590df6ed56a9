/* KL divergence to soft targets (dp_kl_soft_targets, src/core/ops_loss.c):
 * gradients against central differences over shapes and temperatures (targets
 * with zeros among them), the value against a direct double formula, zero
 * loss and gradient where the student's softened probabilities are the
 * target, and bad targets named.
 *
 * Tolerance: as cross-entropy's (smooth, scalar output); with t < 1 the
 * third derivative grows as 1/t^3, so the step is 1e-2 * t. */
#include <criterion/criterion.h>
#include "timeout.h"
#include <criterion/parameterized.h>
#include <math.h>
#include <string.h>

#include "core/tape.h"
#include "gradcheck_assert.h"

typedef struct kl_case {
    int N, C;
    float t;
    int zeros; /* put exact zeros in the target */
    float p[64];
} kl_case;

/* Target rows: softmax of random values, or with every third class ruled out. */
static void make_target(kl_case *k, unsigned seed)
{
    dp_rng r;
    dp_rng_seed(&r, seed, DP_STREAM_USER, 0);
    dp_init_uniform(&r, k->p, k->N * k->C, -2, 2);
    for (int i = 0; i < k->N; i++) {
        float *row = k->p + i * k->C;
        double z = 0;
        for (int j = 0; j < k->C; j++) {
            row[j] = k->zeros && k->C > 1 && j % 3 == 1 ? 0.0f : expf(row[j]);
            z += row[j];
        }
        for (int j = 0; j < k->C; j++) row[j] = (float)(row[j] / z);
    }
}

static dp_tensor *build_kl(dp_ctx *c, dp_tensor **in, void *arg)
{
    kl_case *k = arg;
    return dp_kl_soft_targets(c, in[0], k->p, k->t);
}

ParameterizedTestParameters(kl_soft, gradcheck)
{
    static kl_case cases[] = {
        {1, 1, 1.0f, 0, {0}}, {1, 3, 1.0f, 0, {0}}, {3, 7, 4.0f, 0, {0}},
        {5, 10, 2.0f, 1, {0}}, {6, 5, 0.5f, 1, {0}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) make_target(&cases[i], 11 + (unsigned)i);
    return cr_make_param_array(kl_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(kl_case *k, kl_soft, gradcheck, .timeout = DP_TIMEOUT(60))
{
    gc_input in = {.ndim = 2, .shape = {k->N, k->C}, .lo = -3, .hi = 3};
    gc_opts o = gc_defaults();
    o.h = 1e-2 * fmin(1.0, k->t);
    o.atol = 1e-4;
    o.rtol = 1e-3;
    CHECK_GRAD("kl_soft_targets", 1, &in, build_kl, k, &o);
}

/* a scaled loss: the backward uses the incoming gradient */
static dp_tensor *build_kl_scaled(dp_ctx *c, dp_tensor **in, void *arg)
{
    kl_case *k = arg;
    return dp_scale(c, dp_kl_soft_targets(c, in[0], k->p, k->t), -2.5f);
}

Test(kl_soft, gradcheck_with_upstream_gradient, .timeout = DP_TIMEOUT(60))
{
    static kl_case k = {4, 6, 3.0f, 1, {0}};
    make_target(&k, 5);
    gc_input in = {.ndim = 2, .shape = {4, 6}, .lo = -3, .hi = 3};
    gc_opts o = gc_defaults();
    o.atol = 1e-4;
    o.rtol = 1e-3;
    CHECK_GRAD("kl_soft_targets*-2.5", 1, &in, build_kl_scaled, &k, &o);
}

Test(kl_soft, value_matches_direct_formula, .timeout = DP_TIMEOUT(30))
{
    enum { N = 7, C = 9 };
    kl_case k = {N, C, 2.5f, 1, {0}};
    make_target(&k, 9);
    float x[N * C];
    dp_rng r;
    dp_rng_seed(&r, 4, DP_STREAM_USER, 0);
    dp_init_uniform(&r, x, N * C, -5, 5);
    x[3 * C + 2] = 800.0f; /* huge logits: no overflow */
    double want = 0;
    for (int i = 0; i < N; i++) {
        double m = -INFINITY, z = 0;
        for (int j = 0; j < C; j++) m = fmax(m, x[i * C + j] / k.t);
        for (int j = 0; j < C; j++) z += exp(x[i * C + j] / k.t - m);
        for (int j = 0; j < C; j++) {
            double p = k.p[i * C + j], logq = x[i * C + j] / k.t - m - log(z);
            if (p > 0) want += p * (log(p) - logq);
        }
    }
    want /= N;
    dp_ctx c;
    dp_ctx_init(&c);
    dp_tensor *loss = dp_kl_soft_targets(&c, dp_tensor_wrap(&c, x, 2, (int[]){N, C}), k.p, k.t);
    cr_assert_not_null(loss, "%s", dp_errmsg());
    cr_assert(isfinite(loss->data[0]));
    cr_assert_gt(want, 0.1);
    cr_assert_float_eq(loss->data[0], want, 1e-5 * fmax(1.0, fabs(want)), "loss %g want %g", loss->data[0], want);
    dp_ctx_free(&c);
}

/* The target is softmax(x / t) itself: the loss and its gradient vanish (to rounding). */
Test(kl_soft, zero_at_the_target, .timeout = DP_TIMEOUT(30))
{
    enum { N = 3, C = 5 };
    const float t = 3.0f;
    float x[N * C], p[N * C];
    dp_rng r;
    dp_rng_seed(&r, 8, DP_STREAM_USER, 0);
    dp_init_uniform(&r, x, N * C, -4, 4);
    for (int i = 0; i < N; i++) {
        double z = 0;
        for (int j = 0; j < C; j++) z += exp(x[i * C + j] / t);
        for (int j = 0; j < C; j++) p[i * C + j] = (float)(exp(x[i * C + j] / t) / z);
    }
    dp_ctx c;
    dp_ctx_init(&c);
    dp_tensor *xt = dp_tensor_wrap(&c, x, 2, (int[]){N, C});
    xt->requires_grad = 1;
    dp_tensor *loss = dp_kl_soft_targets(&c, xt, p, t);
    cr_assert_not_null(loss, "%s", dp_errmsg());
    cr_assert(fabsf(loss->data[0]) < 1e-6f, "loss %g at the target", loss->data[0]);
    cr_assert_eq(dp_backward(&c, loss), DP_OK);
    cr_assert_not_null(xt->grad);
    for (int i = 0; i < N * C; i++) cr_assert(fabsf(xt->grad[i]) < 1e-6f, "grad[%d] = %g", i, xt->grad[i]);
    dp_ctx_free(&c);
}

Test(kl_soft, bad_targets_named, .timeout = DP_TIMEOUT(30))
{
    float x[2 * 3] = {0}, p[2 * 3] = {0.2f, 0.3f, 0.5f, 0.5f, 0.5f, 0.5f}; /* row 1 sums to 1.5 */
    dp_ctx c;
    dp_ctx_init(&c);
    dp_tensor *xt = dp_tensor_wrap(&c, x, 2, (int[]){2, 3});
    cr_assert_null(dp_kl_soft_targets(&c, xt, p, 1.0f));
    cr_assert(strstr(dp_errmsg(), "row 1") && strstr(dp_errmsg(), "sums to"), "%s", dp_errmsg());
    dp_ctx_reset(&c);
    p[3] = -0.1f, p[4] = 0.6f, p[5] = 0.5f;
    xt = dp_tensor_wrap(&c, x, 2, (int[]){2, 3});
    cr_assert_null(dp_kl_soft_targets(&c, xt, p, 1.0f));
    cr_assert(strstr(dp_errmsg(), "row 1") && strstr(dp_errmsg(), "probability"), "%s", dp_errmsg());
    dp_ctx_reset(&c);
    p[3] = 0.3f, p[4] = 0.2f;
    xt = dp_tensor_wrap(&c, x, 2, (int[]){2, 3});
    cr_assert_null(dp_kl_soft_targets(&c, xt, p, 0.0f));
    cr_assert(strstr(dp_errmsg(), "temperature"), "%s", dp_errmsg());
    dp_ctx_reset(&c);
    xt = dp_tensor_wrap(&c, x, 2, (int[]){2, 3});
    cr_assert_not_null(dp_kl_soft_targets(&c, xt, p, 1.0f), "%s", dp_errmsg());
    dp_ctx_free(&c);
}
