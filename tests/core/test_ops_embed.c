/* Embedding-bag (src/core/ops_embed.c): gradient checks in sum and mean mode
 * with an empty bag and repeated ids, forward values, the rows-used-only
 * gradient, and id/offset errors.
 *
 * Tolerance: the op is linear in w, so the central difference is exact up to
 * rounding: h = 0.1, atol 1e-4, rtol 1e-3 (ten times tighter than default). */
#include <criterion/criterion.h>
#include "timeout.h"
#include <criterion/parameterized.h>
#include <math.h>
#include <string.h>

#include "core/tape.h"
#include "gradcheck_assert.h"


typedef struct eb_case {
    int V, D, nbags, mean;
    int32_t offsets[8];
    int32_t ids[16];
} eb_case;

static dp_tensor *build_eb(dp_ctx *c, dp_tensor **in, void *arg)
{
    eb_case *p = arg;
    return dp_embedding_bag(c, in[0], p->ids, p->offsets, p->nbags, p->mean);
}

ParameterizedTestParameters(embedding_bag, gradcheck)
{
    static eb_case cases[] = {
        /* bag 1 empty, id 2 repeated within bag 0 and across bags, rows 5/6 unused */
        {7, 3, 4, 0, {0, 3, 3, 5, 8}, {2, 0, 2, 4, 1, 2, 3, 2}},
        {7, 3, 4, 1, {0, 3, 3, 5, 8}, {2, 0, 2, 4, 1, 2, 3, 2}},
        {1, 1, 1, 0, {0, 1}, {0}},
        {1, 1, 2, 1, {0, 0, 3}, {0, 0, 0}},
        {13, 5, 3, 1, {0, 1, 7, 7}, {12, 0, 0, 11, 6, 6, 6}},
        {13, 5, 3, 0, {0, 1, 7, 7}, {12, 0, 0, 11, 6, 6, 6}},
        {4, 7, 5, 1, {0, 2, 2, 2, 4, 4}, {3, 3, 1, 0}},
    };
    return cr_make_param_array(eb_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(eb_case *p, embedding_bag, gradcheck, .timeout = DP_TIMEOUT(60))
{
    gc_input in = {.ndim = 2, .shape = {p->V, p->D}, .lo = -1, .hi = 1};
    gc_opts o = gc_defaults();
    o.h = 0.1;
    o.atol = 1e-4;
    o.rtol = 1e-3;
    CHECK_GRAD(p->mean ? "embedding_bag mean" : "embedding_bag sum", 1, &in, build_eb, p, &o);
}

Test(embedding_bag, forward_and_gradient_touch_only_used_rows, .timeout = DP_TIMEOUT(30))
{
    enum { V = 6, D = 4, NB = 3 };
    float w[V * D], gw[V * D];
    for (int i = 0; i < V * D; i++) w[i] = (float)(i + 1) * 0.25f;
    const int32_t ids[] = {1, 4, 1, 3};
    const int32_t offsets[NB + 1] = {0, 3, 3, 4}; /* bag 1 empty */
    for (int mean = 0; mean < 2; mean++) {
        dp_ctx c;
        dp_ctx_init(&c);
        dp_tensor *W = dp_tensor_wrap(&c, w, 2, (int[]){V, D});
        W->requires_grad = 1;
        for (int i = 0; i < V * D; i++) gw[i] = 7.0f; /* sentinel: unused rows must keep it */
        W->grad = gw;
        dp_tensor *y = dp_embedding_bag(&c, W, ids, offsets, NB, mean);
        cr_assert_not_null(y, "%s", dp_errmsg());
        cr_assert_eq(y->shape[0], NB);
        cr_assert_eq(y->shape[1], D);
        for (int j = 0; j < D; j++) {
            const double b0 = (double)w[1 * D + j] + w[4 * D + j] + w[1 * D + j];
            cr_assert_float_eq(y->data[0 * D + j], mean ? b0 / 3 : b0, 1e-6);
            cr_assert_eq(y->data[1 * D + j], 0.0f);
            cr_assert_eq(y->data[2 * D + j], w[3 * D + j]);
        }
        float dy[NB * D];
        for (int i = 0; i < NB * D; i++) dy[i] = 1.0f + (float)i;
        y->grad = dy;
        cr_assert_eq(dp_backward(&c, y), DP_OK, "%s", dp_errmsg());
        const float s0 = mean ? 1.0f / 3.0f : 1.0f;
        for (int j = 0; j < D; j++) {
            cr_assert_float_eq(gw[1 * D + j], 7.0f + 2 * s0 * dy[j], 1e-5); /* id 1 twice */
            cr_assert_float_eq(gw[4 * D + j], 7.0f + s0 * dy[j], 1e-5);
            cr_assert_float_eq(gw[3 * D + j], 7.0f + dy[2 * D + j], 1e-5);
            cr_assert_eq(gw[0 * D + j], 7.0f);
            cr_assert_eq(gw[2 * D + j], 7.0f);
            cr_assert_eq(gw[5 * D + j], 7.0f);
        }
        dp_ctx_free(&c);
    }
}

Test(embedding_bag, rejects_bad_ids_and_offsets, .timeout = DP_TIMEOUT(30))
{
    float w[5 * 2] = {0};
    dp_ctx c;
    dp_ctx_init(&c);
    dp_tensor *W = dp_tensor_wrap(&c, w, 2, (int[]){5, 2});
    const int32_t bad_id[] = {0, 4, 5};
    cr_assert_null(dp_embedding_bag(&c, W, bad_id, (int32_t[]){0, 1, 3}, 2, 0));
    cr_assert_eq(c.status, DP_ERR_ARG);
    cr_assert(strstr(dp_errmsg(), "bag 1") && strstr(dp_errmsg(), "ids[2] = 5"), "%s", dp_errmsg());
    dp_ctx_reset(&c); /* invalidates W: wrap again */
    W = dp_tensor_wrap(&c, w, 2, (int[]){5, 2});
    const int32_t neg[] = {-1};
    cr_assert_null(dp_embedding_bag(&c, W, neg, (int32_t[]){0, 1}, 1, 1));
    cr_assert(strstr(dp_errmsg(), "-1"), "%s", dp_errmsg());
    dp_ctx_reset(&c); /* invalidates W: wrap again */
    W = dp_tensor_wrap(&c, w, 2, (int[]){5, 2});
    const int32_t ok[] = {0, 1, 2};
    cr_assert_null(dp_embedding_bag(&c, W, ok, (int32_t[]){0, 2, 1}, 2, 0));
    cr_assert(strstr(dp_errmsg(), "offsets"), "%s", dp_errmsg());
    dp_ctx_reset(&c); /* invalidates W: wrap again */
    W = dp_tensor_wrap(&c, w, 2, (int[]){5, 2});
    cr_assert_not_null(dp_embedding_bag(&c, W, NULL, (int32_t[]){0, 0, 0}, 2, 1), "%s", dp_errmsg());
    dp_ctx_free(&c);
}
