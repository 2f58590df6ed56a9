/* Sparse scoring (src/core/ops_sparse.c): gradient checks with respect to the
 * posting weights and the scale against central differences, forward values
 * against a dense reference (a repeated term counts twice), and argument errors.
 *
 * Tolerance: y is bilinear in (w, s), so the central difference is exact up to
 * float rounding: h = 0.05, atol 1e-3, rtol 1e-3. */
#include <criterion/criterion.h>
#include "timeout.h"
#include <string.h>

#include "core/tape.h"
#include "gradcheck_assert.h"

/* 4 terms over 5 documents; term 2 has no postings */
static const int64_t OFF[5] = {0, 3, 5, 5, 9};
static const int32_t DOC[9] = {0, 2, 4, 1, 2, 0, 1, 3, 4};
static const dp_postings P = {.nterms = 4, .ndocs = 5, .off = OFF, .doc = DOC};
/* row 0: terms 0, 3; row 1: term 3 twice and 1; row 2: none; row 3: 2 (empty list) and 0 */
static const int32_t TERMS[7] = {0, 3, 3, 1, 3, 2, 0};
static const int32_t TOFF[5] = {0, 2, 5, 5, 7};

static dp_tensor *build_score(dp_ctx *c, dp_tensor **in, void *arg)
{
    (void)arg;
    return dp_sparse_score(c, in[0], in[1], &P, TERMS, TOFF, 4);
}

Test(sparse_score, gradcheck_weights_and_scale, .timeout = DP_TIMEOUT(60))
{
    gc_input in[2] = {{.ndim = 1, .shape = {9}, .lo = -1, .hi = 2}, {.ndim = 1, .shape = {1}, .lo = 0.5, .hi = 1.5}};
    gc_opts o = gc_defaults();
    o.h = 0.05;
    o.atol = 1e-3;
    o.rtol = 1e-3;
    CHECK_GRAD("sparse_score", 2, in, build_score, NULL, &o);
}

Test(sparse_score, forward_matches_dense_reference, .timeout = DP_TIMEOUT(30))
{
    float w[9], s = 0.75f;
    for (int p = 0; p < 9; p++) w[p] = 0.5f + (float)p;
    /* reference: a dense [terms, docs] matrix, each row's counts times it */
    float M[4][5] = {{0}};
    for (int t = 0; t < 4; t++)
        for (int64_t p = OFF[t]; p < OFF[t + 1]; p++) M[t][DOC[p]] += w[p];
    dp_ctx c;
    dp_ctx_init(&c);
    dp_tensor *W = dp_tensor_wrap(&c, w, 1, (int[]){9});
    dp_tensor *S = dp_tensor_wrap(&c, &s, 1, (int[]){1});
    dp_tensor *y = dp_sparse_score(&c, W, S, &P, TERMS, TOFF, 4);
    cr_assert_not_null(y, "%s", dp_errmsg());
    cr_assert_eq(y->shape[0], 4);
    cr_assert_eq(y->shape[1], 5);
    for (int n = 0; n < 4; n++)
        for (int d = 0; d < 5; d++) {
            float want = 0;
            for (int k = TOFF[n]; k < TOFF[n + 1]; k++) want += M[TERMS[k]][d];
            want *= s;
            cr_assert_float_eq(y->data[n * 5 + d], want, 1e-5f, "y[%d,%d] = %g, want %g", n, d, y->data[n * 5 + d], want);
        }
    /* row 1 counts term 3 twice: document 4 gets 2 w[8] + nothing from term 1 */
    cr_assert_float_eq(y->data[1 * 5 + 4], s * 2 * w[8], 1e-5f);
    /* the no-tape kernel adds the same into a wider row */
    float y2[4 * 7];
    for (int i = 0; i < 28; i++) y2[i] = 1.0f;
    dp_sparse_score_add(y2, 7, s, w, &P, TERMS, TOFF, 4);
    for (int n = 0; n < 4; n++)
        for (int d = 0; d < 5; d++) cr_assert_float_eq(y2[n * 7 + d], 1.0f + y->data[n * 5 + d], 1e-5f);
    cr_assert_eq(y2[0 * 7 + 6], 1.0f);
    dp_ctx_free(&c);
}

Test(sparse_score, rejects_bad_arguments, .timeout = DP_TIMEOUT(30))
{
    float w[9] = {0}, s = 1, w8[8] = {0}, s2[2] = {0};
    dp_ctx c;
    dp_ctx_init(&c);
    dp_tensor *W = dp_tensor_wrap(&c, w, 1, (int[]){9});
    dp_tensor *S = dp_tensor_wrap(&c, &s, 1, (int[]){1});
    cr_assert_null(dp_sparse_score(&c, W, S, &P, (int32_t[]){0, 4}, (int32_t[]){0, 2}, 1));
    cr_assert_eq(c.status, DP_ERR_ARG);
    cr_assert(strstr(dp_errmsg(), "terms[1] = 4"), "%s", dp_errmsg());
    dp_ctx_reset(&c);
    cr_assert_null(dp_sparse_score(&c, W, S, &P, TERMS, (int32_t[]){0, 2, 1}, 2));
    cr_assert(strstr(dp_errmsg(), "toff[2]"), "%s", dp_errmsg());
    dp_ctx_reset(&c);
    cr_assert_null(dp_sparse_score(&c, dp_tensor_wrap(&c, w8, 1, (int[]){8}), S, &P, TERMS, TOFF, 4));
    cr_assert_eq(c.status, DP_ERR_SHAPE);
    cr_assert(strstr(dp_errmsg(), "8 weights"), "%s", dp_errmsg());
    dp_ctx_reset(&c);
    cr_assert_null(dp_sparse_score(&c, W, dp_tensor_wrap(&c, s2, 1, (int[]){2}), &P, TERMS, TOFF, 4));
    cr_assert_eq(c.status, DP_ERR_SHAPE);
    dp_ctx_reset(&c);
    cr_assert_null(dp_sparse_score(&c, W, S, &P, TERMS, TOFF, 0));
    cr_assert_eq(c.status, DP_ERR_ARG);
    dp_ctx_free(&c);
}
