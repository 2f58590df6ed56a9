/* Tests for gradient clipping by global norm (src/optim/clip.c), following
 * torch.nn.utils.clip_grad_norm_: unchanged below the threshold, scaled to the
 * threshold above it, combinable across ranges through dp_sum_squares. */
#include <criterion/criterion.h>
#include "timeout.h"

#include <math.h>
#include <string.h>

#include "dptrain/optim.h"

static double naive_norm(const float *g, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)g[i] * g[i];
    return sqrt(s);
}

/* {3, 4} has norm 5; with max 10 nothing changes and 5 is returned. */
Test(optim_clip, below_threshold_unchanged, .timeout = DP_TIMEOUT(10))
{
    float g[2] = {3.0f, 4.0f};
    float norm = dp_clip_grad_norm(g, 2, 10.0f);
    cr_expect_float_eq(norm, 5.0f, 1e-6);
    cr_expect_eq(g[0], 3.0f);
    cr_expect_eq(g[1], 4.0f);
    /* exactly at the threshold: coef = 5/(5+1e-6) < 1, a 2e-7 shrink, as torch does */
    norm = dp_clip_grad_norm(g, 2, 5.0f);
    cr_expect_float_eq(norm, 5.0f, 1e-6);
    cr_expect(fabs(naive_norm(g, 2) - 5.0) < 1e-5);
}

/* Max 1: g becomes {3,4} * 1/(5 + 1e-6) = {0.6, 0.8} to ~1e-7, norm 1. */
Test(optim_clip, above_threshold_scaled, .timeout = DP_TIMEOUT(10))
{
    float g[2] = {3.0f, 4.0f};
    float norm = dp_clip_grad_norm(g, 2, 1.0f);
    cr_expect_float_eq(norm, 5.0f, 1e-6);
    cr_expect_float_eq(g[0], 0.6f, 1e-6);
    cr_expect_float_eq(g[1], 0.8f, 1e-6);
    cr_expect(fabs(naive_norm(g, 2) - 1.0) <= 1e-5, "norm after: %.9g", naive_norm(g, 2));
}

/* A longer vector of odd length (exercises the 8-lane body and its tail). */
Test(optim_clip, long_vector, .timeout = DP_TIMEOUT(10))
{
    enum { N = 1001 };
    static float g[N];
    for (int i = 0; i < N; i++)
        g[i] = (float)sin(0.37 * i) * (float)(1 + i % 7);
    double want = naive_norm(g, N);
    cr_expect(fabs(sqrt(dp_sum_squares(g, N)) - want) <= 1e-12 * want);
    float norm = dp_clip_grad_norm(g, N, 0.5f);
    cr_expect(fabs(norm - want) <= 1e-6 * want, "norm %.9g want %.9g", (double)norm, want);
    cr_expect(fabs(naive_norm(g, N) - 0.5) <= 1e-5, "after: %.9g", naive_norm(g, N));
    for (size_t n = 0; n < 20; n++) /* every tail length from 0 */
        cr_expect(fabs(sqrt(dp_sum_squares(g, n)) - naive_norm(g, n)) <= 1e-12);
}

/* A gradient in two ranges clipped by its global norm equals the whole clipped at once. */
Test(optim_clip, ranges_combine, .timeout = DP_TIMEOUT(10))
{
    enum { N = 50, CUT = 17 };
    float whole[N], split[N];
    for (int i = 0; i < N; i++)
        whole[i] = split[i] = (float)(i % 9) - 4.0f;
    float norm = dp_clip_grad_norm(whole, N, 2.0f);
    double total = sqrt(dp_sum_squares(split, CUT) + dp_sum_squares(split + CUT, N - CUT));
    cr_expect(fabs(total - norm) <= 1e-6 * total);
    float coef = dp_clip_coef(total, 2.0f);
    cr_expect(coef < 1.0f);
    dp_grad_scale(split, CUT, coef);
    dp_grad_scale(split + CUT, N - CUT, coef);
    for (int i = 0; i < N; i++)
        cr_expect(fabs(whole[i] - split[i]) <= 1e-6f, "i=%d: %g vs %g", i, (double)whole[i],
                  (double)split[i]);
}

Test(optim_clip, nonfinite_and_empty, .timeout = DP_TIMEOUT(10))
{
    float g[3] = {1.0f, INFINITY, 2.0f};
    float norm = dp_clip_grad_norm(g, 3, 1.0f);
    cr_expect(isinf(norm));
    cr_expect(g[0] == 1.0f && isinf(g[1]) && g[2] == 2.0f, "non-finite norm must leave g alone");
    g[1] = NAN;
    cr_expect(isnan(dp_clip_grad_norm(g, 3, 1.0f)));
    cr_expect_eq(dp_clip_grad_norm(NULL, 0, 1.0f), 0.0f);
    cr_expect_eq(dp_clip_coef(0.0, 1.0f), 1.0f);
    /* torch's +1e-6: at norm == max the factor is 5/(5+1e-6) = 0.9999998, not 1 */
    cr_expect(dp_clip_coef(5.0, 5.0f) < 1.0f);
    cr_expect_float_eq(dp_clip_coef(5.0, 5.0f), 5.0 / (5.0 + 1e-6), 6e-8); /* float ulp near 1 */
}
