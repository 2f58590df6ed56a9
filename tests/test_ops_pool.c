/* Pooling ops: gradient checks (max-pool on distinct values so +-h never
 * changes a window's winner; avg-pool with padding, whose divisor counts only
 * real cells), and forward checks: avg-pool divisor at the borders, max-pool
 * never selecting a padding cell, both against naive references.
 *
 * Tolerances: gradients use gc_defaults() (h 1e-2, atol 1e-3, rtol 1e-2); the
 * ops are piecewise linear and gc_init_distinct keeps values 0.05 apart, so
 * the finite difference is exact up to float rounding. Forward values: max is
 * exact (it copies an input); averages within 1e-6 relative of a double sum. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/tape.h"
#include "gradcheck.h"

typedef struct pool_case {
    int N, C, H, W, k, stride, pad;
} pool_case;

static dp_tensor *build_max(dp_ctx *c, dp_tensor **in, void *arg)
{
    const pool_case *p = arg;
    return dp_maxpool2d(c, in[0], p->k, p->stride, p->pad);
}

static dp_tensor *build_avg(dp_ctx *c, dp_tensor **in, void *arg)
{
    const pool_case *p = arg;
    return dp_avgpool2d(c, in[0], p->k, p->stride, p->pad);
}

static dp_tensor *build_gap(dp_ctx *c, dp_tensor **in, void *arg)
{
    (void)arg;
    return dp_global_avgpool(c, in[0]);
}

/* N C H W k s p */
static pool_case cases[] = {
    {2, 3, 6, 8, 2, 2, 0}, /* the reference CNN's 2x2/2 (own loop), H != W */
    {1, 2, 7, 5, 2, 2, 0}, /* odd sizes: the last row/column is dropped; rows of 2 (< 4) */
    {2, 2, 6, 14, 2, 2, 0}, /* rows of 7 outputs: 4 + an overlapping last 4 */
    {1, 3, 9, 11, 2, 2, 0}, /* rows of 5, odd W */
    {3, 2, 7, 6, 3, 2, 1}, /* overlapping windows with padding */
    {2, 2, 5, 5, 3, 1, 1}, /* stride 1 */
    {1, 3, 6, 7, 2, 1, 1}, /* pad 1 on a 2x2 window */
    {2, 1, 9, 7, 3, 3, 0}, /* stride == k, not 2 */
    {3, 2, 8, 9, 4, 3, 2}, /* pad 2, stride != k */
    {1, 2, 9, 8, 5, 2, 2}, /* 5x5 windows: divisors 9..25 */
};

ParameterizedTestParameters(maxpool2d, gradcheck)
{
    return cr_make_param_array(pool_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(pool_case *p, maxpool2d, gradcheck, .timeout = 60)
{
    gc_input in = {.ndim = 4, .shape = {p->N, p->C, p->H, p->W}, .init = gc_init_distinct};
    char name[96];
    snprintf(name, sizeof name, "maxpool N%d C%d %dx%d k%d s%d p%d", p->N, p->C, p->H, p->W, p->k, p->stride, p->pad);
    gc_result r;
    cr_assert(gc_check(name, 1, &in, build_max, p, NULL, &r), "%s: worst %s", name, r.worst);
}

ParameterizedTestParameters(avgpool2d, gradcheck)
{
    return cr_make_param_array(pool_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(pool_case *p, avgpool2d, gradcheck, .timeout = 60)
{
    gc_input in = {.ndim = 4, .shape = {p->N, p->C, p->H, p->W}, .lo = -1, .hi = 1};
    char name[96];
    snprintf(name, sizeof name, "avgpool N%d C%d %dx%d k%d s%d p%d", p->N, p->C, p->H, p->W, p->k, p->stride, p->pad);
    gc_result r;
    cr_assert(gc_check(name, 1, &in, build_avg, p, NULL, &r), "%s: worst %s", name, r.worst);
}

Test(global_avgpool, gradcheck, .timeout = 30)
{
    gc_input in = {.ndim = 4, .shape = {3, 4, 5, 7}, .lo = -1, .hi = 1};
    gc_result r;
    cr_assert(gc_check("global_avgpool", 1, &in, build_gap, NULL, NULL, &r), "worst %s", r.worst);
}

/* ---- forward against naive references ---- */

/* Max / mean of the real cells of window (oh, ow) of plane xp; *count gets their number. */
static void naive_window(const float *xp, const pool_case *p, int oh, int ow, double *mx, double *mean, int *count)
{
    double m = -INFINITY, s = 0;
    int cnt = 0;
    for (int i = 0; i < p->k; i++)
        for (int j = 0; j < p->k; j++) {
            int ih = oh * p->stride - p->pad + i, iw = ow * p->stride - p->pad + j;
            if (ih < 0 || ih >= p->H || iw < 0 || iw >= p->W) continue;
            double v = xp[ih * p->W + iw];
            m = v > m ? v : m;
            s += v;
            cnt++;
        }
    *mx = m;
    *mean = s / cnt;
    *count = cnt;
}

/* Runs both pools on x and compares every output with naive_window. */
static void check_pools(const pool_case *p, const float *x)
{
    dp_ctx c;
    dp_ctx_init(&c);
    int xs[4] = {p->N, p->C, p->H, p->W};
    dp_tensor *tx = dp_tensor_wrap(&c, (float *)x, 4, xs);
    dp_tensor *mx = dp_maxpool2d(&c, tx, p->k, p->stride, p->pad);
    dp_tensor *av = dp_avgpool2d(&c, tx, p->k, p->stride, p->pad);
    cr_assert(mx && av, "%s", dp_errmsg());
    const int Ho = (p->H + 2 * p->pad - p->k) / p->stride + 1, Wo = (p->W + 2 * p->pad - p->k) / p->stride + 1;
    cr_assert(mx->shape[2] == Ho && mx->shape[3] == Wo && av->shape[2] == Ho && av->shape[3] == Wo);
    for (long pl = 0; pl < (long)p->N * p->C; pl++)
        for (int oh = 0; oh < Ho; oh++)
            for (int ow = 0; ow < Wo; ow++) {
                double m, mean;
                int cnt;
                naive_window(x + pl * p->H * p->W, p, oh, ow, &m, &mean, &cnt);
                long i = (pl * Ho + oh) * Wo + ow;
                cr_assert_eq(mx->data[i], (float)m, "max plane %ld (%d,%d): %g vs %g", pl, oh, ow, mx->data[i], m);
                cr_assert(fabs(av->data[i] - mean) <= 1e-6 * (1 + fabs(mean)),
                          "avg plane %ld (%d,%d): %g vs %g over %d cells", pl, oh, ow, av->data[i], mean, cnt);
            }
    dp_ctx_free(&c);
}

ParameterizedTestParameters(pool, forward_matches_naive)
{
    return cr_make_param_array(pool_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(pool_case *p, pool, forward_matches_naive, .timeout = 30)
{
    long n = (long)p->N * p->C * p->H * p->W;
    float *x = malloc(n * sizeof *x);
    dp_rng r;
    dp_rng_seed(&r, 11, DP_STREAM_USER, 0);
    dp_init_uniform(&r, x, n, -1, 1);
    check_pools(p, x);
    /* all negative: a padding cell (0 if it were counted) must never win */
    for (long i = 0; i < n; i++) x[i] = -1.0f - fabsf(x[i]);
    check_pools(p, x);
    free(x);
}

Test(avgpool2d, divisor_counts_only_real_cells, .timeout = 10)
{
    /* ones in, 3x3 windows with pad 1: every output is exactly 1 (a
     * count_include_pad divisor would give 4/9 in the corners, 6/9 on edges) */
    dp_ctx c;
    dp_ctx_init(&c);
    static float x[2 * 5 * 4];
    for (int i = 0; i < 40; i++) x[i] = 1.0f;
    int xs[4] = {1, 2, 5, 4};
    dp_tensor *y = dp_avgpool2d(&c, dp_tensor_wrap(&c, x, 4, xs), 3, 1, 1);
    cr_assert_not_null(y);
    for (long i = 0; i < y->n; i++) cr_assert_eq(y->data[i], 1.0f, "elem %ld = %g", i, y->data[i]);
    /* ramp x[h][w] = 4h + w: the corner window (0,0) covers {0,1,4,5} -> 2.5 */
    for (int i = 0; i < 20; i++) x[i] = (float)i;
    dp_ctx_reset(&c);
    y = dp_avgpool2d(&c, dp_tensor_wrap(&c, x, 4, xs), 3, 1, 1);
    cr_assert_float_eq(y->data[0], 2.5f, 1e-6);
    cr_assert_float_eq(y->data[3], 4.5f, 1e-6); /* (0,3): {2,3,6,7} */
    cr_assert_float_eq(y->data[5], 5.0f, 1e-6); /* (1,1): 0..2 x 0..2 -> mean 5 */
    dp_ctx_free(&c);
}

Test(maxpool2d, gradient_goes_to_the_winner_only, .timeout = 10)
{
    dp_ctx c;
    dp_ctx_init(&c);
    float x[16] = {-5, -4, -9, -9, -3, -6, -9, -1, -9, -9, -9, -9, -9, -2, -9, -9}, gx[16] = {0};
    int xs[4] = {1, 1, 4, 4};
    dp_tensor *tx = dp_tensor_wrap(&c, x, 4, xs);
    tx->grad = gx;
    tx->requires_grad = 1;
    dp_tensor *y = dp_maxpool2d(&c, tx, 2, 2, 1); /* 3x3 output, corner windows are 1 real cell */
    cr_assert_not_null(y);
    cr_assert_eq(y->shape[2], 3);
    float want[9] = {-5, -4, -9, -3, -6, -1, -9, -2, -9};
    for (int i = 0; i < 9; i++) cr_assert_eq(y->data[i], want[i], "elem %d = %g", i, y->data[i]);
    float *dy = dp_grad(&c, y);
    for (int i = 0; i < 9; i++) dy[i] = (float)(i + 1);
    cr_assert_eq(dp_backward(&c, y), DP_OK);
    float sum = 0;
    for (int i = 0; i < 16; i++) sum += gx[i];
    cr_assert_float_eq(sum, 45.0f, 1e-6, "every output routes its whole gradient to one cell");
    cr_assert_eq(gx[0], 1.0f);
    cr_assert_eq(gx[4], 4.0f);
    cr_assert_eq(gx[5], 5.0f);
    cr_assert_eq(gx[7], 6.0f);
    cr_assert_eq(gx[13], 8.0f);
    dp_ctx_free(&c);
}

Test(pool, rejects_bad_arguments, .timeout = 10)
{
    dp_ctx c;
    dp_ctx_init(&c);
    static float x[16];
    int xs[4] = {1, 1, 4, 4};
    cr_assert_null(dp_maxpool2d(&c, dp_tensor_wrap(&c, x, 4, xs), 2, 2, 2)); /* pad > k/2 */
    cr_assert_eq(c.status, DP_ERR_ARG);
    dp_ctx_reset(&c);
    cr_assert_null(dp_avgpool2d(&c, dp_tensor_wrap(&c, x, 4, xs), 5, 1, 0)); /* window > input */
    cr_assert_eq(c.status, DP_ERR_SHAPE);
    dp_ctx_reset(&c);
    int xs2[2] = {4, 4};
    cr_assert_null(dp_global_avgpool(&c, dp_tensor_wrap(&c, x, 2, xs2)));
    cr_assert_eq(c.status, DP_ERR_SHAPE);
    dp_ctx_free(&c);
}
