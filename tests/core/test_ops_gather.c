/* Row gather (src/core/ops_gather.c): gradient checks with repeated and
 * unused rows on 2-D and 3-D inputs, forward values, the rows-used-only
 * gradient, and index errors.
 *
 * Tolerance: the op is linear in x, so the central difference is exact up to
 * rounding: h = 0.1, atol 1e-4, rtol 1e-3. */
#include <criterion/criterion.h>
#include "timeout.h"
#include <criterion/parameterized.h>
#include <string.h>

#include "core/tape.h"
#include "gradcheck_assert.h"

typedef struct gr_case {
    int ndim, shape[3], m;
    int32_t idx[8];
} gr_case;

static dp_tensor *build_gather(dp_ctx *c, dp_tensor **in, void *arg)
{
    gr_case *p = arg;
    return dp_gather_rows(c, in[0], p->idx, p->m);
}

ParameterizedTestParameters(gather_rows, gradcheck)
{
    static gr_case cases[] = {
        {2, {5, 3}, 6, {4, 0, 4, 2, 4, 0}}, /* 4 three times, 1 and 3 unused */
        {2, {1, 1}, 3, {0, 0, 0}},
        {3, {4, 2, 3}, 5, {3, 1, 1, 0, 3}},
        {2, {7, 4}, 1, {6}},
    };
    return cr_make_param_array(gr_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(gr_case *p, gather_rows, gradcheck, .timeout = DP_TIMEOUT(60))
{
    gc_input in = {.ndim = p->ndim, .lo = -1, .hi = 1};
    memcpy(in.shape, p->shape, sizeof p->shape);
    gc_opts o = gc_defaults();
    o.h = 0.1;
    o.atol = 1e-4;
    o.rtol = 1e-3;
    CHECK_GRAD("gather_rows", 1, &in, build_gather, p, &o);
}

Test(gather_rows, forward_and_rows_used_only, .timeout = DP_TIMEOUT(30))
{
    enum { N = 4, D = 3, M = 3 };
    float x[N * D], gx[N * D];
    for (int i = 0; i < N * D; i++) x[i] = (float)i;
    const int32_t idx[M] = {2, 0, 2};
    dp_ctx c;
    dp_ctx_init(&c);
    dp_tensor *X = dp_tensor_wrap(&c, x, 2, (int[]){N, D});
    X->requires_grad = 1;
    for (int i = 0; i < N * D; i++) gx[i] = 5.0f;
    X->grad = gx;
    dp_tensor *y = dp_gather_rows(&c, X, idx, M);
    cr_assert_not_null(y, "%s", dp_errmsg());
    cr_assert_eq(y->shape[0], M);
    cr_assert_eq(y->shape[1], D);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < D; j++) cr_assert_eq(y->data[i * D + j], x[idx[i] * D + j]);
    float dy[M * D];
    for (int i = 0; i < M * D; i++) dy[i] = 1.0f + (float)i;
    y->grad = dy;
    cr_assert_eq(dp_backward(&c, y), DP_OK, "%s", dp_errmsg());
    for (int j = 0; j < D; j++) {
        cr_assert_eq(gx[0 * D + j], 5.0f + dy[1 * D + j]);
        cr_assert_eq(gx[1 * D + j], 5.0f); /* unused rows untouched */
        cr_assert_eq(gx[2 * D + j], 5.0f + dy[0 * D + j] + dy[2 * D + j]);
        cr_assert_eq(gx[3 * D + j], 5.0f);
    }
    dp_ctx_free(&c);
}

Test(gather_rows, rejects_bad_indices, .timeout = DP_TIMEOUT(30))
{
    float x[6] = {0};
    dp_ctx c;
    dp_ctx_init(&c);
    dp_tensor *X = dp_tensor_wrap(&c, x, 2, (int[]){3, 2});
    cr_assert_null(dp_gather_rows(&c, X, (int32_t[]){0, 3}, 2));
    cr_assert_eq(c.status, DP_ERR_ARG);
    cr_assert(strstr(dp_errmsg(), "idx[1] = 3"), "%s", dp_errmsg());
    dp_ctx_reset(&c);
    cr_assert_null(dp_gather_rows(&c, X, (int32_t[]){-1}, 1));
    dp_ctx_reset(&c);
    cr_assert_null(dp_gather_rows(&c, X, NULL, 1));
    dp_ctx_reset(&c);
    cr_assert_null(dp_gather_rows(&c, X, (int32_t[]){0}, 0));
    dp_ctx_free(&c);
}
