/* Cross-entropy (src/core/ops_loss.c): gradient checks over shapes, the value
 * and correct count against a direct double formula, stability with huge
 * logits, and the label range error.
 *
 * Tolerance: the loss is smooth; h = 1e-2 gives a truncation error
 * h^2/6 |f'''| with |f'''| <= 1/N, and the scalar output makes the rounding
 * noise ~6e-8 |loss| / 2h ~ 1e-5. atol 1e-4, rtol 1e-3 (10x tighter than the
 * default). */
#include <criterion/criterion.h>
#include "timeout.h"
#include <criterion/parameterized.h>
#include <math.h>
#include <string.h>

#include "core/tape.h"
#include "gradcheck_assert.h"


typedef struct ce_case {
    int N, C;
    int32_t labels[16];
} ce_case;

static dp_tensor *build_ce(dp_ctx *c, dp_tensor **in, void *arg)
{
    ce_case *p = arg;
    return dp_cross_entropy(c, in[0], p->labels, NULL);
}

ParameterizedTestParameters(cross_entropy, gradcheck)
{
    static ce_case cases[] = {
        {1, 1, {0}},
        {1, 3, {2}},
        {3, 7, {0, 6, 3}},
        {13, 5, {0, 1, 2, 3, 4, 4, 3, 2, 1, 0, 2, 2, 1}},
        {7, 13, {12, 0, 5, 5, 7, 1, 11}},
    };
    return cr_make_param_array(ce_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(ce_case *p, cross_entropy, gradcheck, .timeout = DP_TIMEOUT(60))
{
    gc_input in = {.ndim = 2, .shape = {p->N, p->C}, .lo = -3, .hi = 3};
    gc_opts o = gc_defaults();
    o.atol = 1e-4;
    o.rtol = 1e-3;
    CHECK_GRAD("cross_entropy", 1, &in, build_ce, p, &o);
}

/* a scaled loss: checks that the backward uses the incoming gradient */
static dp_tensor *build_ce_scaled(dp_ctx *c, dp_tensor **in, void *arg)
{
    ce_case *p = arg;
    return dp_scale(c, dp_cross_entropy(c, in[0], p->labels, NULL), -3.5f);
}

Test(cross_entropy, gradcheck_with_upstream_gradient, .timeout = DP_TIMEOUT(60))
{
    static ce_case p = {4, 6, {5, 0, 2, 2}};
    gc_input in = {.ndim = 2, .shape = {4, 6}, .lo = -3, .hi = 3};
    gc_opts o = gc_defaults();
    o.atol = 1e-4;
    o.rtol = 1e-3;
    CHECK_GRAD("cross_entropy*-3.5", 1, &in, build_ce_scaled, &p, &o);
}

Test(cross_entropy, value_and_correct_count_match_direct_formula, .timeout = DP_TIMEOUT(30))
{
    enum { N = 9, C = 5 };
    float x[N * C];
    int32_t labels[N];
    dp_rng r;
    dp_rng_seed(&r, 3, DP_STREAM_USER, 0);
    dp_init_uniform(&r, x, N * C, -4, 4);
    long want_correct = 0;
    for (int i = 0; i < N; i++) {
        int arg = 0;
        for (int j = 1; j < C; j++)
            if (x[i * C + j] > x[i * C + arg]) arg = j;
        labels[i] = i % 3 == 0 ? arg : (int32_t)((arg + 1 + i) % C); /* some right, some wrong */
        if (labels[i] == arg) want_correct++;
    }
    x[4 * C + 1] = 900.0f; /* huge logits: no overflow */
    x[5 * C + 2] = -900.0f;
    labels[4] = 1; /* the argmax row: loss ~ 0, counted correct */
    want_correct = 0;
    double want = 0;
    for (int i = 0; i < N; i++) {
        double m = -INFINITY, z = 0;
        int arg = 0;
        for (int j = 0; j < C; j++) {
            m = fmax(m, x[i * C + j]);
            if (x[i * C + j] > x[i * C + arg]) arg = j;
        }
        for (int j = 0; j < C; j++) z += exp(x[i * C + j] - m);
        want += -(x[i * C + labels[i]] - m - log(z));
        want_correct += arg == labels[i];
    }
    want /= N;
    dp_ctx c;
    dp_ctx_init(&c);
    long correct = -1;
    dp_tensor *loss = dp_cross_entropy(&c, dp_tensor_wrap(&c, x, 2, (int[]){N, C}), labels, &correct);
    cr_assert_not_null(loss, "%s", dp_errmsg());
    cr_assert_eq(loss->n, 1);
    cr_assert(isfinite(loss->data[0]));
    cr_assert_float_eq(loss->data[0], want, 1e-5 * fmax(1.0, fabs(want)), "loss %g want %g", loss->data[0], want);
    cr_assert_eq(correct, want_correct);
    cr_assert_gt(want_correct, 0);
    cr_assert_lt(want_correct, N);
    dp_ctx_free(&c);
}

Test(cross_entropy, uniform_logits_give_log_c, .timeout = DP_TIMEOUT(30))
{
    float x[4 * 10] = {0};
    int32_t labels[4] = {0, 3, 9, 5};
    dp_ctx c;
    dp_ctx_init(&c);
    dp_tensor *loss = dp_cross_entropy(&c, dp_tensor_wrap(&c, x, 2, (int[]){4, 10}), labels, NULL);
    cr_assert_not_null(loss);
    cr_assert_float_eq(loss->data[0], log(10.0), 1e-6);
    dp_ctx_free(&c);
}

Test(cross_entropy, label_out_of_range_names_row_and_label, .timeout = DP_TIMEOUT(30))
{
    float x[3 * 4] = {0};
    int32_t labels[3] = {1, 3, 4};
    dp_ctx c;
    dp_ctx_init(&c);
    long correct = 0;
    cr_assert_null(dp_cross_entropy(&c, dp_tensor_wrap(&c, x, 2, (int[]){3, 4}), labels, &correct));
    cr_assert_eq(c.status, DP_ERR_ARG);
    cr_assert(strstr(dp_errmsg(), "row 2") && strstr(dp_errmsg(), "label 4"), "%s", dp_errmsg());
    dp_ctx_reset(&c);
    labels[2] = -1;
    cr_assert_null(dp_cross_entropy(&c, dp_tensor_wrap(&c, x, 2, (int[]){3, 4}), labels, NULL));
    cr_assert(strstr(dp_errmsg(), "label -1"), "%s", dp_errmsg());
    dp_ctx_reset(&c);
    cr_assert_null(dp_cross_entropy(&c, dp_tensor_wrap(&c, x, 1, (int[]){12}), labels, NULL));
    cr_assert_eq(c.status, DP_ERR_SHAPE);
    dp_ctx_free(&c);
}
