/* The weighted and max embedding bags (src/core/ops_embed.c): central
 * finite-difference gradient checks with an empty bag, one-entry bags and
 * repeated ids (within a bag and across bags), forward values by hand, the
 * equal-score case against the mean bag bit for bit, the rows-used-only
 * gradient, and bad scores/ids.
 *
 * Tolerances: the softmax bag is smooth in u (h = 1e-2, the defaults); the max
 * bag is piecewise linear, so its rows are spread apart (gc_init_distinct:
 * 0.05 between any two values, more than 2h) and no perturbation changes a
 * winner: there the difference is exact up to rounding (h = 1e-2, atol 1e-4). */
#include <criterion/criterion.h>
#include "timeout.h"
#include <criterion/parameterized.h>
#include <math.h>
#include <string.h>

#include "core/tape.h"
#include "gradcheck_assert.h"

typedef struct bag_case {
    int V, D, nbags;
    int32_t offsets[8];
    int32_t ids[16];
} bag_case;

static bag_case *cases(size_t *n)
{
    static bag_case c[] = {
        /* bag 1 empty, id 2 repeated within bag 0 and across bags, rows 5/6 unused */
        {7, 3, 4, {0, 3, 3, 5, 8}, {2, 0, 2, 4, 1, 2, 3, 2}},
        {1, 1, 1, {0, 1}, {0}},
        {1, 2, 2, {0, 0, 3}, {0, 0, 0}},
        {13, 5, 3, {0, 1, 7, 7}, {12, 0, 0, 11, 6, 6, 6}},
        {4, 7, 5, {0, 2, 2, 2, 4, 4}, {3, 3, 1, 0}},
        /* offsets not starting at 0 */
        {9, 4, 3, {2, 4, 9, 10}, {8, 8, 1, 5, 7, 3, 2, 6, 4, 0}},
    };
    *n = sizeof c / sizeof c[0];
    return c;
}

static dp_tensor *build_softmax(dp_ctx *c, dp_tensor **in, void *arg)
{
    bag_case *p = arg;
    return dp_embedding_bag_softmax(c, in[0], in[1], p->ids, p->offsets, p->nbags);
}

static dp_tensor *build_max(dp_ctx *c, dp_tensor **in, void *arg)
{
    bag_case *p = arg;
    return dp_embedding_bag_max(c, in[0], p->ids, p->offsets, p->nbags);
}

ParameterizedTestParameters(embedding_bag_softmax, gradcheck)
{
    size_t n;
    bag_case *c = cases(&n);
    return cr_make_param_array(bag_case, c, n);
}

ParameterizedTest(bag_case *p, embedding_bag_softmax, gradcheck, .timeout = DP_TIMEOUT(60))
{
    /* scores spread over [-2, 2]: weights far from uniform, so the u gradient is not ~0 */
    gc_input in[2] = {
        {.ndim = 2, .shape = {p->V, p->D}, .lo = -1, .hi = 1},
        {.ndim = 1, .shape = {p->V}, .lo = -2, .hi = 2},
    };
    gc_opts o = gc_defaults();
    CHECK_GRAD("embedding_bag_softmax", 2, in, build_softmax, p, &o);
}

ParameterizedTestParameters(embedding_bag_max, gradcheck)
{
    size_t n;
    bag_case *c = cases(&n);
    return cr_make_param_array(bag_case, c, n);
}

ParameterizedTest(bag_case *p, embedding_bag_max, gradcheck, .timeout = DP_TIMEOUT(60))
{
    gc_input in = {.ndim = 2, .shape = {p->V, p->D}, .init = gc_init_distinct};
    gc_opts o = gc_defaults();
    o.atol = 1e-4;
    o.rtol = 1e-3;
    CHECK_GRAD("embedding_bag_max", 1, &in, build_max, p, &o);
}

/* u = log(idf): sum idf_t e_t / sum idf_t, by hand in double */
Test(embedding_bag_softmax, forward_is_the_weighted_mean, .timeout = DP_TIMEOUT(30))
{
    enum { V = 5, D = 3, NB = 3 };
    float w[V * D], u[V];
    const double idf[V] = {0.3, 2.0, 5.5, 1.0, 0.01};
    for (int i = 0; i < V * D; i++) w[i] = (float)((i * 7) % 11) - 5.0f;
    for (int r = 0; r < V; r++) u[r] = (float)log(idf[r]);
    const int32_t ids[] = {0, 2, 2, 4, /* */ 1, /* (empty) */};
    const int32_t off[NB + 1] = {0, 4, 5, 5};
    dp_ctx c;
    dp_ctx_init(&c);
    dp_tensor *W = dp_tensor_wrap(&c, w, 2, (int[]){V, D}), *U = dp_tensor_wrap(&c, u, 1, (int[]){V});
    dp_tensor *y = dp_embedding_bag_softmax(&c, W, U, ids, off, NB);
    cr_assert_not_null(y, "%s", dp_errmsg());
    cr_assert(y->shape[0] == NB && y->shape[1] == D);
    for (int j = 0; j < D; j++) {
        double num = 0, den = 0;
        for (int k = 0; k < 4; k++) {
            num += idf[ids[k]] * w[ids[k] * D + j];
            den += idf[ids[k]];
        }
        cr_assert_float_eq(y->data[j], num / den, 1e-5, "bag 0 [%d]: %g, by hand %g", j, y->data[j], num / den);
        cr_assert_float_eq(y->data[D + j], w[1 * D + j], 1e-6, "a one-entry bag is its row");
        cr_assert_eq(y->data[2 * D + j], 0.0f, "an empty bag is zero");
    }
    dp_ctx_free(&c);
}

/* equal scores: exactly the mean bag (the weights 1/n as the mean's) */
Test(embedding_bag_softmax, equal_scores_are_the_mean_bit_for_bit, .timeout = DP_TIMEOUT(30))
{
    size_t n;
    bag_case *cs = cases(&n);
    for (size_t i = 0; i < n; i++) {
        const bag_case *p = &cs[i];
        float w[13 * 7], u[13];
        for (int k = 0; k < p->V * p->D; k++) w[k] = sinf((float)k * 1.7f) * 3.0f;
        for (int r = 0; r < p->V; r++) u[r] = 0.75f;
        dp_ctx c;
        dp_ctx_init(&c);
        dp_tensor *W = dp_tensor_wrap(&c, w, 2, (int[]){p->V, p->D}), *U = dp_tensor_wrap(&c, u, 1, (int[]){p->V});
        dp_tensor *a = dp_embedding_bag_softmax(&c, W, U, p->ids, p->offsets, p->nbags);
        dp_tensor *b = dp_embedding_bag(&c, W, p->ids, p->offsets, p->nbags, 1);
        cr_assert(a && b, "%s", dp_errmsg());
        cr_assert_eq(memcmp(a->data, b->data, (size_t)a->n * sizeof(float)), 0, "case %zu: softmax bag != mean bag", i);
        dp_ctx_free(&c);
    }
}

Test(embedding_bag_softmax, gradient_touches_only_used_rows, .timeout = DP_TIMEOUT(30))
{
    enum { V = 6, D = 2, NB = 2 };
    float w[V * D], u[V], gw[V * D], gu[V];
    for (int i = 0; i < V * D; i++) w[i] = (float)i * 0.3f - 1.0f;
    for (int r = 0; r < V; r++) u[r] = (float)r * 0.5f - 1.0f;
    const int32_t ids[] = {1, 4, 1, 3};
    const int32_t off[NB + 1] = {0, 3, 4};
    dp_ctx c;
    dp_ctx_init(&c);
    dp_tensor *W = dp_tensor_wrap(&c, w, 2, (int[]){V, D}), *U = dp_tensor_wrap(&c, u, 1, (int[]){V});
    W->requires_grad = U->requires_grad = 1;
    for (int i = 0; i < V * D; i++) gw[i] = 7.0f;
    for (int r = 0; r < V; r++) gu[r] = 7.0f;
    W->grad = gw;
    U->grad = gu;
    dp_tensor *y = dp_embedding_bag_softmax(&c, W, U, ids, off, NB);
    cr_assert_not_null(y, "%s", dp_errmsg());
    float dy[NB * D] = {1.0f, -2.0f, 0.5f, 3.0f};
    y->grad = dy;
    cr_assert_eq(dp_backward(&c, y), DP_OK, "%s", dp_errmsg());
    const int unused[] = {0, 2, 5};
    for (int q = 0; q < 3; q++) {
        const int r = unused[q];
        cr_assert_eq(gu[r], 7.0f, "row %d's score is unused", r);
        for (int j = 0; j < D; j++) cr_assert_eq(gw[r * D + j], 7.0f, "row %d is unused", r);
    }
    /* bag 1 holds row 3 alone: weight 1 whatever u, so no gradient to its score */
    cr_assert_float_eq(gu[3], 7.0f, 1e-6);
    for (int j = 0; j < D; j++) cr_assert_float_eq(gw[3 * D + j], 7.0f + dy[D + j], 1e-6);
    cr_assert(fabsf(gu[1] - 7.0f) > 1e-3f && fabsf(gu[4] - 7.0f) > 1e-3f, "bag 0's scores get gradients");
    dp_ctx_free(&c);
}

Test(embedding_bag_max, forward_by_hand_and_without_tape, .timeout = DP_TIMEOUT(30))
{
    enum { V = 4, D = 3, NB = 3 };
    const float w[V * D] = {1, -5, 2, /* */ 0, 4, 2, /* */ -3, -1, 9, /* */ 7, -8, -8};
    const int32_t ids[] = {0, 1, 2, /* */ 3, /* (empty) */};
    const int32_t off[NB + 1] = {0, 3, 4, 4};
    const float want[NB * D] = {1, 4, 9, /* */ 7, -8, -8, /* */ 0, 0, 0};
    for (int grad = 0; grad < 2; grad++) {
        dp_ctx c;
        dp_ctx_init(&c);
        c.grad_enabled = grad;
        dp_tensor *W = dp_tensor_wrap(&c, (float *)w, 2, (int[]){V, D});
        W->requires_grad = 1;
        float gw[V * D] = {0};
        W->grad = gw;
        dp_tensor *y = dp_embedding_bag_max(&c, W, ids, off, NB);
        cr_assert_not_null(y, "%s", dp_errmsg());
        for (int i = 0; i < NB * D; i++) cr_assert_eq(y->data[i], want[i], "grad %d, [%d]: %g", grad, i, y->data[i]);
        if (grad) {
            float dy[NB * D];
            for (int i = 0; i < NB * D; i++) dy[i] = (float)(i + 1);
            y->grad = dy;
            cr_assert_eq(dp_backward(&c, y), DP_OK, "%s", dp_errmsg());
            /* bag 0: [0] from row 0, [1] from row 1, [2] from row 2; bag 1: row 3; the empty bag: nothing */
            const float gwant[V * D] = {1, 0, 0, /* */ 0, 2, 0, /* */ 0, 0, 3, /* */ 4, 5, 6};
            for (int i = 0; i < V * D; i++) cr_assert_eq(gw[i], gwant[i], "dw[%d] = %g, expected %g", i, gw[i], gwant[i]);
        }
        dp_ctx_free(&c);
    }
}

Test(embedding_bag_softmax, rejects_bad_scores_and_ids, .timeout = DP_TIMEOUT(30))
{
    float w[5 * 2] = {0}, u[5] = {0};
    dp_ctx c;
    dp_ctx_init(&c);
    dp_tensor *W = dp_tensor_wrap(&c, w, 2, (int[]){5, 2}), *U4 = dp_tensor_wrap(&c, u, 1, (int[]){4});
    const int32_t ok[] = {0, 1, 2};
    cr_assert_null(dp_embedding_bag_softmax(&c, W, U4, ok, (int32_t[]){0, 3}, 1));
    cr_assert_eq(c.status, DP_ERR_SHAPE);
    cr_assert(strstr(dp_errmsg(), "4 row scores") && strstr(dp_errmsg(), "5 rows"), "%s", dp_errmsg());
    dp_ctx_reset(&c);
    W = dp_tensor_wrap(&c, w, 2, (int[]){5, 2});
    dp_tensor *U = dp_tensor_wrap(&c, u, 1, (int[]){5});
    const int32_t bad[] = {0, 4, 5};
    cr_assert_null(dp_embedding_bag_softmax(&c, W, U, bad, (int32_t[]){0, 1, 3}, 2));
    cr_assert_eq(c.status, DP_ERR_ARG);
    cr_assert(strstr(dp_errmsg(), "embedding_bag_softmax") && strstr(dp_errmsg(), "ids[2] = 5"), "%s", dp_errmsg());
    dp_ctx_reset(&c);
    W = dp_tensor_wrap(&c, w, 2, (int[]){5, 2});
    cr_assert_null(dp_embedding_bag_max(&c, W, bad, (int32_t[]){0, 1, 3}, 2));
    cr_assert(strstr(dp_errmsg(), "embedding_bag_max") && strstr(dp_errmsg(), "bag 1"), "%s", dp_errmsg());
    dp_ctx_reset(&c);
    W = dp_tensor_wrap(&c, w, 2, (int[]){5, 2});
    cr_assert_null(dp_embedding_bag_max(&c, W, ok, (int32_t[]){0, 2, 1}, 2));
    cr_assert(strstr(dp_errmsg(), "must not decrease"), "%s", dp_errmsg());
    dp_ctx_free(&c);
}
