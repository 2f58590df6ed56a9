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
#include "timeout.h"
#include <criterion/parameterized.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

ParameterizedTest(pool_case *p, maxpool2d, gradcheck, .timeout = DP_TIMEOUT(60))
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

ParameterizedTest(pool_case *p, avgpool2d, gradcheck, .timeout = DP_TIMEOUT(60))
{
    gc_input in = {.ndim = 4, .shape = {p->N, p->C, p->H, p->W}, .lo = -1, .hi = 1};
    char name[96];
    snprintf(name, sizeof name, "avgpool N%d C%d %dx%d k%d s%d p%d", p->N, p->C, p->H, p->W, p->k, p->stride, p->pad);
    gc_result r;
    cr_assert(gc_check(name, 1, &in, build_avg, p, NULL, &r), "%s: worst %s", name, r.worst);
}

Test(global_avgpool, gradcheck, .timeout = DP_TIMEOUT(30))
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

ParameterizedTest(pool_case *p, pool, forward_matches_naive, .timeout = DP_TIMEOUT(30))
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

Test(avgpool2d, divisor_counts_only_real_cells, .timeout = DP_TIMEOUT(10))
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

Test(maxpool2d, gradient_goes_to_the_winner_only, .timeout = DP_TIMEOUT(10))
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

Test(pool, rejects_bad_arguments, .timeout = DP_TIMEOUT(10))
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

/* ---- the 3x3 pad-1 kernels, stride 1 and 2 (src/core/ops_pool.c) ----
 * Each shape below runs under the default kernels (built for AVX2 where the
 * CPU has it), their portable build, and the plain loops: gradient checks for
 * both pools; and, against the plain loops, on uniform data, on data full of
 * ties and zeros, and on data with infinities and NaNs: max-pool values and
 * winners bit for bit (the winners through the backward: with dy all
 * distinct, dx matches only if every output routed to the same cell), and
 * average-pool forward and backward within float rounding of their 9-term
 * sums taken in another order. */

void dp_pool_set_kernels(int mode); /* ops_pool.c, for tests: 0 default, 1 portable build, 2 plain loops */

typedef struct pool3_param {
    pool_case c;
    int mode;
} pool3_param;

/* N C H W k s p */
static const pool_case pool3_cases[] = {
    {2, 3, 7, 7, 3, 1, 1},   {2, 3, 7, 7, 3, 2, 1},   /* the search's 7x7 maps */
    {1, 2, 1, 1, 3, 1, 1},   {1, 2, 1, 1, 3, 2, 1},   /* 1x1: one cell per window */
    {1, 2, 1, 9, 3, 1, 1},   {1, 2, 9, 1, 3, 2, 1},   /* one row, one column */
    {1, 2, 2, 3, 3, 1, 1},   {1, 2, 2, 2, 3, 2, 1},   /* every window at a border */
    {2, 2, 9, 11, 3, 1, 1},  {2, 2, 9, 11, 3, 2, 1},  /* odd sizes (stride 2: per-row path) */
    {2, 2, 10, 12, 3, 2, 1}, {1, 2, 11, 10, 3, 2, 1}, /* even widths: flat row pass */
    {1, 2, 28, 28, 3, 1, 1}, {1, 2, 28, 28, 3, 2, 1}, {2, 2, 14, 14, 3, 2, 1}, {1, 3, 17, 19, 3, 1, 1},
};
#define N_POOL3 (sizeof pool3_cases / sizeof pool3_cases[0])
static const char *const pool3_modes[3] = {"default", "portable", "loops"};
static pool3_param pool3_grad_params[N_POOL3 * 3], pool3_cmp_params[N_POOL3 * 2];

ParameterizedTestParameters(pool3, gradcheck)
{
    for (size_t i = 0; i < N_POOL3; i++)
        for (int m = 0; m < 3; m++) pool3_grad_params[i * 3 + m] = (pool3_param){pool3_cases[i], m};
    return cr_make_param_array(pool3_param, pool3_grad_params, N_POOL3 * 3);
}

ParameterizedTest(pool3_param *q, pool3, gradcheck, .timeout = DP_TIMEOUT(60))
{
    const pool_case *p = &q->c;
    dp_pool_set_kernels(q->mode);
    char name[96];
    gc_result r;
    gc_input in = {.ndim = 4, .shape = {p->N, p->C, p->H, p->W}, .init = gc_init_distinct};
    snprintf(name, sizeof name, "maxpool (%s) N%d C%d %dx%d s%d", pool3_modes[q->mode], p->N, p->C, p->H, p->W,
             p->stride);
    cr_assert(gc_check(name, 1, &in, build_max, (void *)p, NULL, &r), "%s: worst %s", name, r.worst);
    in = (gc_input){.ndim = 4, .shape = {p->N, p->C, p->H, p->W}, .lo = -1, .hi = 1};
    snprintf(name, sizeof name, "avgpool (%s) N%d C%d %dx%d s%d", pool3_modes[q->mode], p->N, p->C, p->H, p->W,
             p->stride);
    cr_assert(gc_check(name, 1, &in, build_avg, (void *)p, NULL, &r), "%s: worst %s", name, r.worst);
}

/* Both pools forward and backward under kernel set `mode`; y* [n_out], dx* [n_in] */
static void pool3_run(const pool_case *p, int mode, float *x, const float *dy, float *ymax, float *dxmax, float *yavg,
                      float *dxavg)
{
    int xs[4] = {p->N, p->C, p->H, p->W};
    const long nx = (long)p->N * p->C * p->H * p->W;
    dp_pool_set_kernels(mode);
    for (int avg = 0; avg < 2; avg++) {
        dp_ctx c;
        dp_ctx_init(&c);
        dp_tensor *tx = dp_tensor_wrap(&c, x, 4, xs);
        float *dx = avg ? dxavg : dxmax;
        memset(dx, 0, (size_t)nx * sizeof *dx);
        tx->grad = dx;
        tx->requires_grad = 1;
        dp_tensor *y = avg ? dp_avgpool2d(&c, tx, 3, p->stride, 1) : dp_maxpool2d(&c, tx, 3, p->stride, 1);
        cr_assert_not_null(y, "%s", dp_errmsg());
        memcpy(avg ? yavg : ymax, y->data, (size_t)y->n * sizeof(float));
        memcpy(dp_grad(&c, y), dy, (size_t)y->n * sizeof(float));
        cr_assert_eq(dp_backward(&c, y), DP_OK, "%s", dp_errmsg());
        dp_ctx_free(&c);
    }
    dp_pool_set_kernels(0);
}

static int same_float(float a, float b) { return (isnan(a) && isnan(b)) || a == b; }

ParameterizedTestParameters(pool3, matches_loops)
{
    for (size_t i = 0; i < N_POOL3; i++)
        for (int m = 0; m < 2; m++) pool3_cmp_params[i * 2 + m] = (pool3_param){pool3_cases[i], m};
    return cr_make_param_array(pool3_param, pool3_cmp_params, N_POOL3 * 2);
}

ParameterizedTest(pool3_param *q, pool3, matches_loops, .timeout = DP_TIMEOUT(30))
{
    const pool_case *p = &q->c;
    const int Ho = (p->H - 1) / p->stride + 1, Wo = (p->W - 1) / p->stride + 1;
    const long nx = (long)p->N * p->C * p->H * p->W, ny = (long)p->N * p->C * Ho * Wo;
    float *x = malloc(nx * sizeof *x), *dy = malloc(ny * sizeof *dy), *buf[8];
    for (int i = 0; i < 8; i++) buf[i] = malloc((i % 2 ? nx : ny) * sizeof(float)); /* y, dx pairs */
    dp_rng r;
    dp_rng_seed(&r, 31, DP_STREAM_USER, 0);
    for (long i = 0; i < ny; i++) dy[i] = (float)(i + 1) / (float)ny; /* distinct: shows every routing */
    for (int data = 0; data < 3; data++) {
        dp_init_uniform(&r, x, nx, -1, 1);
        if (data == 1) /* ties: ReLU-like zeros and a few repeated values */
            for (long i = 0; i < nx; i++) x[i] = x[i] < 0 ? 0.0f : (float)(int)(x[i] * 4) / 4;
        if (data == 2) /* specials */
            for (long i = 0; i < nx; i++) {
                const uint64_t u = dp_rng_u64(&r) % 16;
                if (u == 0) x[i] = NAN;
                if (u == 1) x[i] = -INFINITY;
                if (u == 2) x[i] = INFINITY;
            }
        pool3_run(p, q->mode, x, dy, buf[0], buf[1], buf[2], buf[3]);
        pool3_run(p, 2, x, dy, buf[4], buf[5], buf[6], buf[7]);
        for (long i = 0; i < ny; i++)
            cr_assert(same_float(buf[0][i], buf[4][i]), "max (%s, data %d) y[%ld]: %g vs loops %g",
                      pool3_modes[q->mode], data, i, buf[0][i], buf[4][i]);
        cr_assert(!memcmp(buf[1], buf[5], nx * sizeof(float)), "max (%s, data %d): winners differ from the loops'",
                  pool3_modes[q->mode], data);
        for (long i = 0; i < ny; i++) {
            const float a = buf[2][i], b = buf[6][i];
            cr_assert(same_float(a, b) || fabsf(a - b) <= 1e-6f * (1 + fabsf(b)),
                      "avg (%s, data %d) y[%ld]: %.9g vs loops %.9g", pool3_modes[q->mode], data, i, a, b);
        }
        for (long i = 0; i < nx; i++) {
            const float a = buf[3][i], b = buf[7][i];
            cr_assert(fabsf(a - b) <= 1e-6f * (1 + fabsf(b)), "avg (%s, data %d) dx[%ld]: %.9g vs loops %.9g",
                      pool3_modes[q->mode], data, i, a, b);
        }
    }
    for (int i = 0; i < 8; i++) free(buf[i]);
    free(x);
    free(dy);
}
