/* Channel ops: concat along dim 1 (3 and 5 inputs of different channel
 * counts, 4-d and 2-d), channel slices and the channel shuffle; gradient checks plus exact forward
 * layout checks. Tolerances: gc_defaults(); the ops copy, so the forward is
 * exact and the finite difference is exact up to float rounding. */
#include <criterion/criterion.h>
#include "timeout.h"
#include <criterion/parameterized.h>
#include <stdio.h>
#include <string.h>

#include "core/tape.h"
#include "gradcheck.h"

typedef struct concat_case {
    int n, ndim, N, H, W;
    int ch[5];
} concat_case;

static dp_tensor *build_concat(dp_ctx *c, dp_tensor **in, void *arg)
{
    const concat_case *p = arg;
    return dp_concat(c, p->n, in);
}

static concat_case concat_cases[] = {
    {3, 4, 2, 3, 4, {1, 3, 2}},       /* the brief's case: 3 inputs, different channel counts */
    {3, 4, 1, 5, 2, {2, 1, 4}},       /* batch 1, odd sizes */
    {5, 4, 3, 2, 3, {1, 2, 1, 3, 2}}, /* more than 3 inputs: the node keeps an array */
    {3, 2, 4, 1, 1, {3, 1, 2}},       /* [N, F] features */
    {1, 4, 2, 3, 3, {2}},             /* a single input: a copy */
};

ParameterizedTestParameters(concat, gradcheck)
{
    return cr_make_param_array(concat_case, concat_cases, sizeof concat_cases / sizeof concat_cases[0]);
}

ParameterizedTest(concat_case *p, concat, gradcheck, .timeout = DP_TIMEOUT(30))
{
    gc_input ins[5];
    for (int i = 0; i < p->n; i++)
        ins[i] = (gc_input){.ndim = p->ndim, .shape = {p->N, p->ch[i], p->H, p->W}, .lo = -1, .hi = 1};
    gc_result r;
    cr_assert(gc_check("concat", p->n, ins, build_concat, p, NULL, &r), "worst %s", r.worst);
    long want = 0;
    for (int i = 0; i < p->n; i++) want += (long)p->N * p->ch[i] * (p->ndim == 4 ? p->H * p->W : 1);
    cr_assert_eq(r.checked, want, "every element of every input is checked");
}

Test(concat, forward_layout, .timeout = DP_TIMEOUT(10))
{
    dp_ctx c;
    dp_ctx_init(&c);
    /* x_i[n][ch][j] = 1000 i + 100 n + 10 ch + j */
    static float a[2 * 1 * 3], b[2 * 3 * 3], d[2 * 2 * 3];
    float *bufs[3] = {a, b, d};
    int chs[3] = {1, 3, 2};
    dp_tensor *xs[3];
    for (int i = 0; i < 3; i++) {
        for (int n = 0; n < 2; n++)
            for (int ch = 0; ch < chs[i]; ch++)
                for (int j = 0; j < 3; j++) bufs[i][(n * chs[i] + ch) * 3 + j] = 1000 * i + 100 * n + 10 * ch + j;
        int shape[4] = {2, chs[i], 1, 3};
        xs[i] = dp_tensor_wrap(&c, bufs[i], 4, shape);
    }
    dp_tensor *y = dp_concat(&c, 3, xs);
    cr_assert_not_null(y);
    cr_assert_eq(y->shape[1], 6);
    int src[6] = {0, 1, 1, 1, 2, 2}, sch[6] = {0, 0, 1, 2, 0, 1};
    for (int n = 0; n < 2; n++)
        for (int ch = 0; ch < 6; ch++)
            for (int j = 0; j < 3; j++)
                cr_assert_eq(y->data[(n * 6 + ch) * 3 + j], 1000 * src[ch] + 100 * n + 10 * sch[ch] + j);
    dp_ctx_free(&c);
}

Test(concat, rejects_mismatched_shapes, .timeout = DP_TIMEOUT(10))
{
    dp_ctx c;
    dp_ctx_init(&c);
    static float buf[64];
    int s1[4] = {2, 1, 3, 3}, s2[4] = {2, 1, 3, 2};
    dp_tensor *xs[2] = {dp_tensor_wrap(&c, buf, 4, s1), dp_tensor_wrap(&c, buf, 4, s2)};
    cr_assert_null(dp_concat(&c, 2, xs));
    cr_assert_eq(c.status, DP_ERR_SHAPE);
    dp_ctx_free(&c);
}

/* ---- slice ---- */

typedef struct slice_case {
    int ndim, N, C, H, W, c0, c1;
} slice_case;

static dp_tensor *build_slice(dp_ctx *c, dp_tensor **in, void *arg)
{
    const slice_case *p = arg;
    return dp_slice(c, in[0], p->c0, p->c1);
}

static slice_case slice_cases[] = {
    {4, 3, 5, 2, 3, 1, 4}, /* middle channels */
    {4, 1, 4, 3, 5, 0, 1}, /* first channel, batch 1 */
    {4, 2, 3, 3, 2, 2, 3}, /* last channel */
    {4, 2, 3, 2, 2, 0, 3}, /* everything */
    {2, 4, 7, 1, 1, 2, 6}, /* [N, F] */
};

ParameterizedTestParameters(slice, gradcheck)
{
    return cr_make_param_array(slice_case, slice_cases, sizeof slice_cases / sizeof slice_cases[0]);
}

ParameterizedTest(slice_case *p, slice, gradcheck, .timeout = DP_TIMEOUT(30))
{
    gc_input in = {.ndim = p->ndim, .shape = {p->N, p->C, p->H, p->W}, .lo = -1, .hi = 1};
    gc_result r;
    cr_assert(gc_check("slice", 1, &in, build_slice, p, NULL, &r), "worst %s", r.worst);
}

Test(slice, forward_layout_and_bad_ranges, .timeout = DP_TIMEOUT(10))
{
    dp_ctx c;
    dp_ctx_init(&c);
    static float x[2 * 4 * 3];
    for (int i = 0; i < 24; i++) x[i] = (float)i;
    int shape[3] = {2, 4, 3};
    dp_tensor *tx = dp_tensor_wrap(&c, x, 3, shape);
    dp_tensor *y = dp_slice(&c, tx, 1, 3);
    cr_assert_not_null(y);
    cr_assert(y->ndim == 3 && y->shape[0] == 2 && y->shape[1] == 2 && y->shape[2] == 3);
    float want[12] = {3, 4, 5, 6, 7, 8, 15, 16, 17, 18, 19, 20};
    for (int i = 0; i < 12; i++) cr_assert_eq(y->data[i], want[i]);
    cr_assert_null(dp_slice(&c, tx, 2, 2));
    cr_assert_eq(c.status, DP_ERR_ARG);
    dp_ctx_reset(&c);
    tx = dp_tensor_wrap(&c, x, 3, shape);
    cr_assert_null(dp_slice(&c, tx, 0, 5));
    cr_assert_eq(c.status, DP_ERR_ARG);
    dp_ctx_free(&c);
}

/* ---- subsample (FactorizedReduce's pixel grids) ----
 * The op copies (or zero-fills), so as for concat the finite difference is
 * exact up to float rounding: gc_defaults(). */

typedef struct sub_case {
    int N, C, H, W, stride, offset;
    int ho, wo; /* 0: dp_subsample's own size */
} sub_case;

static dp_tensor *build_subsample(dp_ctx *c, dp_tensor **in, void *arg)
{
    const sub_case *p = arg;
    return p->ho ? dp_subsample_pad(c, in[0], p->stride, p->offset, p->ho, p->wo)
                 : dp_subsample(c, in[0], p->stride, p->offset);
}

static sub_case sub_cases[] = {
    {2, 3, 6, 6, 2, 0, 0, 0}, /* even grid */
    {2, 3, 6, 6, 2, 1, 0, 0}, /* odd grid */
    {1, 2, 7, 5, 2, 1, 0, 0}, /* odd sizes: 3 x 2 */
    {2, 1, 7, 5, 3, 2, 0, 0}, /* stride 3 */
    {2, 2, 7, 5, 2, 1, 4, 3}, /* odd grid padded to ceil(H/2): last row and column zero */
    {1, 3, 4, 4, 1, 0, 0, 0}, /* stride 1: a copy */
};

ParameterizedTestParameters(subsample, gradcheck)
{
    return cr_make_param_array(sub_case, sub_cases, sizeof sub_cases / sizeof sub_cases[0]);
}

ParameterizedTest(sub_case *p, subsample, gradcheck, .timeout = DP_TIMEOUT(30))
{
    gc_input in = {.ndim = 4, .shape = {p->N, p->C, p->H, p->W}, .lo = -1, .hi = 1};
    gc_result r;
    cr_assert(gc_check("subsample", 1, &in, build_subsample, p, NULL, &r), "worst %s", r.worst);
    cr_assert_eq(r.checked, (long)p->N * p->C * p->H * p->W);
}

Test(subsample, forward_picks_the_grid_and_pads_with_zeros, .timeout = DP_TIMEOUT(10))
{
    dp_ctx c;
    dp_ctx_init(&c);
    /* x[n][ch][h][w] = 1000 n + 100 ch + 10 h + w, 2 x 2 x 5 x 7 */
    static float x[2 * 2 * 5 * 7];
    for (int n = 0; n < 2; n++)
        for (int ch = 0; ch < 2; ch++)
            for (int h = 0; h < 5; h++)
                for (int w = 0; w < 7; w++) x[((n * 2 + ch) * 5 + h) * 7 + w] = 1000 * n + 100 * ch + 10 * h + w;
    dp_tensor *X = dp_tensor_wrap(&c, x, 4, (int[]){2, 2, 5, 7});
    for (int off = 0; off < 2; off++) {
        dp_tensor *y = dp_subsample(&c, X, 2, off);
        cr_assert_not_null(y, "%s", dp_errmsg());
        const int ho = (5 - off + 1) / 2, wo = (7 - off + 1) / 2; /* ceil((H - offset) / 2) */
        cr_assert(y->shape[0] == 2 && y->shape[1] == 2 && y->shape[2] == ho && y->shape[3] == wo, "offset %d: %dx%d",
                  off, y->shape[2], y->shape[3]);
        for (int n = 0; n < 2; n++)
            for (int ch = 0; ch < 2; ch++)
                for (int i = 0; i < ho; i++)
                    for (int j = 0; j < wo; j++)
                        cr_assert_eq(y->data[((n * 2 + ch) * ho + i) * wo + j],
                                     1000 * n + 100 * ch + 10 * (off + 2 * i) + off + 2 * j);
    }
    dp_tensor *z = dp_subsample_pad(&c, X, 2, 1, 3, 4); /* the odd grid is 2 x 3: one zero row and column */
    cr_assert_not_null(z);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++) {
            const float want = i < 2 && j < 3 ? 100 + 10 * (1 + 2 * i) + 1 + 2 * j : 0;
            cr_assert_eq(z->data[(1 * 3 + i) * 4 + j], want, "(%d,%d)", i, j); /* n 0, ch 1 */
        }
    cr_assert_null(dp_subsample(&c, X, 0, 0));
    cr_assert_eq(c.status, DP_ERR_ARG);
    dp_ctx_reset(&c);
    X = dp_tensor_wrap(&c, x, 4, (int[]){2, 2, 5, 7});
    cr_assert_null(dp_subsample(&c, X, 2, 5)); /* offset past the input */
    cr_assert_eq(c.status, DP_ERR_ARG);
    dp_ctx_free(&c);
}

/* ---- channel shuffle (PC-DARTS' interleaving of the sampled and bypassed channels) ----
 * A copy, so the finite difference is exact up to float rounding: gc_defaults(). */

typedef struct shuffle_case {
    int ndim, N, C, H, W, groups;
} shuffle_case;

static dp_tensor *build_shuffle(dp_ctx *c, dp_tensor **in, void *arg)
{
    const shuffle_case *p = arg;
    return dp_channel_shuffle(c, in[0], p->groups);
}

static shuffle_case shuffle_cases[] = {
    {4, 2, 8, 3, 2, 4}, /* PC-DARTS' K = 4 */
    {4, 1, 6, 2, 3, 2}, /* K = 2, batch 1 */
    {4, 2, 6, 1, 2, 3}, /* groups that are not a power of 2 */
    {4, 2, 4, 2, 2, 1}, /* one group: a copy */
    {2, 3, 6, 1, 1, 6}, /* [N, F], as many groups as channels: a copy too */
};

ParameterizedTestParameters(channel_shuffle, gradcheck)
{
    return cr_make_param_array(shuffle_case, shuffle_cases, sizeof shuffle_cases / sizeof shuffle_cases[0]);
}

ParameterizedTest(shuffle_case *p, channel_shuffle, gradcheck, .timeout = DP_TIMEOUT(30))
{
    gc_input in = {.ndim = p->ndim, .shape = {p->N, p->C, p->H, p->W}, .lo = -1, .hi = 1};
    gc_result r;
    cr_assert(gc_check("channel_shuffle", 1, &in, build_shuffle, p, NULL, &r), "worst %s", r.worst);
    cr_assert_eq(r.checked, (long)p->N * p->C * (p->ndim == 4 ? p->H * p->W : 1), "every element is checked");
}

Test(channel_shuffle, forward_interleaves_and_bad_groups, .timeout = DP_TIMEOUT(10))
{
    dp_ctx c;
    dp_ctx_init(&c);
    /* x[n][ch][j] = 100 n + 10 ch + j, 2 x 6 x 2; 2 groups of 3: y's channels are x's 0 3 1 4 2 5 */
    static float x[2 * 6 * 2];
    for (int n = 0; n < 2; n++)
        for (int ch = 0; ch < 6; ch++)
            for (int j = 0; j < 2; j++) x[(n * 6 + ch) * 2 + j] = 100 * n + 10 * ch + j;
    dp_tensor *tx = dp_tensor_wrap(&c, x, 3, (int[]){2, 6, 2});
    dp_tensor *y = dp_channel_shuffle(&c, tx, 2);
    cr_assert_not_null(y, "%s", dp_errmsg());
    cr_assert(y->ndim == 3 && y->shape[0] == 2 && y->shape[1] == 6 && y->shape[2] == 2);
    const int src[6] = {0, 3, 1, 4, 2, 5};
    for (int n = 0; n < 2; n++)
        for (int ch = 0; ch < 6; ch++)
            for (int j = 0; j < 2; j++)
                cr_assert_eq(y->data[(n * 6 + ch) * 2 + j], 100 * n + 10 * src[ch] + j, "n %d ch %d j %d", n, ch, j);
    cr_assert_null(dp_channel_shuffle(&c, tx, 4));
    cr_assert_eq(c.status, DP_ERR_ARG);
    cr_assert(strstr(dp_errmsg(), "4 groups"), "%s", dp_errmsg());
    dp_ctx_reset(&c);
    tx = dp_tensor_wrap(&c, x, 3, (int[]){2, 6, 2});
    cr_assert_null(dp_channel_shuffle(&c, tx, 0));
    cr_assert_eq(c.status, DP_ERR_ARG);
    dp_ctx_free(&c);
}
