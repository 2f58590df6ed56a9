/* Tests for the learning-rate schedules (src/optim/schedule.c): values at the
 * warm-up boundaries, step-decay drops and cosine endpoints, worked out by hand
 * in the comments; plus name parsing and validation. */
#include <criterion/criterion.h>
#include "timeout.h"

#include <math.h>
#include <string.h>

#include "dptrain/optim.h"

static void expect_lr(const dp_schedule *s, long step, double want)
{
    double got = dp_schedule_lr(s, step);
    cr_expect(fabs(got - want) <= 1e-7 + 1e-6 * fabs(want), "%s, step %ld: got %.9g, want %.9g",
              dp_schedule_kind_name(s->kind), step, got, want);
}

Test(optim_schedule, constant, .timeout = DP_TIMEOUT(10))
{
    dp_schedule s = {.kind = DP_SCHED_CONSTANT, .base_lr = 0.1f};
    cr_assert_eq(dp_schedule_check(&s), DP_OK, "%s", dp_errmsg());
    expect_lr(&s, 0, 0.1);
    expect_lr(&s, 12345, 0.1);
    expect_lr(&s, -3, 0.1);
}

/* Warm-up over 4 steps: base*(s+1)/4 = .025 .05 .075 .1, then base. */
Test(optim_schedule, constant_warmup, .timeout = DP_TIMEOUT(10))
{
    dp_schedule s = {.kind = DP_SCHED_CONSTANT, .base_lr = 0.1f, .warmup = 4};
    cr_assert_eq(dp_schedule_check(&s), DP_OK, "%s", dp_errmsg());
    expect_lr(&s, -1, 0.025); /* negative steps count as step 0 */
    expect_lr(&s, 0, 0.025);
    expect_lr(&s, 1, 0.05);
    expect_lr(&s, 2, 0.075);
    expect_lr(&s, 3, 0.1);
    expect_lr(&s, 4, 0.1);
    expect_lr(&s, 1000, 0.1);
}

/* StepLR: 0.1 * 0.1^floor(s/3): 0.1 for 0..2, 0.01 for 3..5, 0.001 from 6. */
Test(optim_schedule, step_decay, .timeout = DP_TIMEOUT(10))
{
    dp_schedule s = {.kind = DP_SCHED_STEP, .base_lr = 0.1f, .gamma = 0.1f, .step_size = 3};
    cr_assert_eq(dp_schedule_check(&s), DP_OK, "%s", dp_errmsg());
    expect_lr(&s, 0, 0.1);
    expect_lr(&s, 2, 0.1);
    expect_lr(&s, 3, 0.01);
    expect_lr(&s, 5, 0.01);
    expect_lr(&s, 6, 0.001);
    expect_lr(&s, 9, 0.0001);
}

/* With warm-up 2 the decay clock starts at step 2: 0.05, 0.1, then 0.1 until
 * step 2+3 = 5 where it drops to 0.01, and 0.001 at step 8. */
Test(optim_schedule, step_decay_warmup, .timeout = DP_TIMEOUT(10))
{
    dp_schedule s = {.kind = DP_SCHED_STEP, .base_lr = 0.1f, .gamma = 0.1f, .step_size = 3,
                     .warmup = 2};
    cr_assert_eq(dp_schedule_check(&s), DP_OK, "%s", dp_errmsg());
    expect_lr(&s, 0, 0.05);
    expect_lr(&s, 1, 0.1);
    expect_lr(&s, 2, 0.1);
    expect_lr(&s, 4, 0.1);
    expect_lr(&s, 5, 0.01);
    expect_lr(&s, 7, 0.01);
    expect_lr(&s, 8, 0.001);
}

/* Cosine from 1 to 0.1 over 10 steps: 0.1 + 0.45*(1 + cos(pi*s/10)).
 *   s=0: 1;  s=3: cos(0.3pi)=0.587785252 -> 0.814503363;  s=5: 0.55;
 *   s=10: 0.1, and it stays there (clamped) at s=20 where torch would be back at 1. */
Test(optim_schedule, cosine, .timeout = DP_TIMEOUT(10))
{
    dp_schedule s = {.kind = DP_SCHED_COSINE, .base_lr = 1.0f, .min_lr = 0.1f, .total = 10};
    cr_assert_eq(dp_schedule_check(&s), DP_OK, "%s", dp_errmsg());
    expect_lr(&s, 0, 1.0);
    expect_lr(&s, 3, 0.814503363);
    expect_lr(&s, 5, 0.55);
    expect_lr(&s, 9, 0.1 + 0.45 * (1.0 + cos(0.9 * 3.14159265358979)));
    expect_lr(&s, 10, 0.1);
    expect_lr(&s, 20, 0.1);
}

/* Warm-up 5 then cosine over T = 15 - 5 = 10: 0.2, 0.4, ... 1.0 at step 4,
 * 1.0 again at step 5 (t = 0), 0.55 at step 10 (t = 5), 0.1 at 15. */
Test(optim_schedule, cosine_warmup, .timeout = DP_TIMEOUT(10))
{
    dp_schedule s = {.kind = DP_SCHED_COSINE, .base_lr = 1.0f, .min_lr = 0.1f, .total = 15,
                     .warmup = 5};
    cr_assert_eq(dp_schedule_check(&s), DP_OK, "%s", dp_errmsg());
    expect_lr(&s, 0, 0.2);
    expect_lr(&s, 3, 0.8);
    expect_lr(&s, 4, 1.0);
    expect_lr(&s, 5, 1.0);
    expect_lr(&s, 8, 0.814503363);
    expect_lr(&s, 10, 0.55);
    expect_lr(&s, 15, 0.1);
    expect_lr(&s, 16, 0.1);
}

/* Cosine to 0 over a long run is monotone non-increasing after warm-up. */
Test(optim_schedule, cosine_monotone, .timeout = DP_TIMEOUT(10))
{
    dp_schedule s = {.kind = DP_SCHED_COSINE, .base_lr = 3e-4f, .min_lr = 0.0f, .total = 5000,
                     .warmup = 100};
    float prev = dp_schedule_lr(&s, 99);
    for (long k = 100; k <= 5000; k++) {
        float lr = dp_schedule_lr(&s, k);
        cr_assert(lr <= prev && lr >= 0.0f, "step %ld: %g after %g", k, (double)lr, (double)prev);
        prev = lr;
    }
    cr_expect_eq(prev, 0.0f);
}

Test(optim_schedule, parse_names, .timeout = DP_TIMEOUT(10))
{
    dp_sched_kind k = DP_SCHED_CONSTANT;
    cr_expect_eq(dp_schedule_kind_parse("cosine", &k), DP_OK);
    cr_expect_eq(k, DP_SCHED_COSINE);
    cr_expect_eq(dp_schedule_kind_parse("step", &k), DP_OK);
    cr_expect_eq(k, DP_SCHED_STEP);
    cr_expect_eq(dp_schedule_kind_parse("constant", &k), DP_OK);
    cr_expect_eq(k, DP_SCHED_CONSTANT);

    cr_expect_eq(dp_schedule_kind_parse("cos", &k), DP_ERR_ARG);
    cr_expect_eq(k, DP_SCHED_CONSTANT, "failed parse must not write *out");
    cr_expect(strstr(dp_errmsg(), "\"cos\"") && strstr(dp_errmsg(), "constant, step or cosine"),
              "message: %s", dp_errmsg());
    cr_expect_eq(dp_schedule_kind_parse("", &k), DP_ERR_ARG);
    cr_expect_eq(dp_schedule_kind_parse(NULL, &k), DP_ERR_ARG);
    cr_expect_str_eq(dp_schedule_kind_name(DP_SCHED_STEP), "step");
}

Test(optim_schedule, check_rejects, .timeout = DP_TIMEOUT(10))
{
    dp_schedule s = {.kind = DP_SCHED_COSINE, .base_lr = 1.0f, .total = 10, .warmup = 10};
    cr_expect_eq(dp_schedule_check(&s), DP_ERR_ARG);
    cr_expect(strstr(dp_errmsg(), "total"), "message: %s", dp_errmsg());
    s = (dp_schedule){.kind = DP_SCHED_STEP, .base_lr = 1.0f, .gamma = 0.5f};
    cr_expect_eq(dp_schedule_check(&s), DP_ERR_ARG);
    cr_expect(strstr(dp_errmsg(), "step_size"), "message: %s", dp_errmsg());
    s = (dp_schedule){.kind = DP_SCHED_CONSTANT, .base_lr = 1.0f, .warmup = -1};
    cr_expect_eq(dp_schedule_check(&s), DP_ERR_ARG);
    s = (dp_schedule){.kind = DP_SCHED_COSINE, .base_lr = 1.0f, .min_lr = 2.0f, .total = 5};
    cr_expect_eq(dp_schedule_check(&s), DP_ERR_ARG);
    cr_expect(strstr(dp_errmsg(), "min_lr"), "message: %s", dp_errmsg());
}
