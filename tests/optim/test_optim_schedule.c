/* Tests for the learning-rate schedules (src/optim/schedule.c): values at the
 * warm-up boundaries, step-decay drops and cosine endpoints, worked out by hand
 * in the comments; plus name parsing and validation. */
#include <criterion/criterion.h>
#include "timeout.h"

#include <math.h>
#include <string.h>

#include "dptrain/optim.h"

/* A schedule and the rates it must give at chosen steps, worked out by hand in the comments. The
 * list of points ends at the first zero rate (every rate checked here is above 0). */
typedef struct {
    const char *name;
    dp_schedule s;
    struct {
        long step;
        double lr;
    } at[8];
} lr_case;

static const lr_case lr_cases[] = {
    {"constant", {.kind = DP_SCHED_CONSTANT, .base_lr = 0.1f}, {{0, 0.1}, {12345, 0.1}, {-3, 0.1}}},
    /* Warm-up over 4 steps: base*(s+1)/4 = .025 .05 .075 .1, then base; negative steps count as
     * step 0. */
    {"constant_warmup",
     {.kind = DP_SCHED_CONSTANT, .base_lr = 0.1f, .warmup = 4},
     {{-1, 0.025}, {0, 0.025}, {1, 0.05}, {2, 0.075}, {3, 0.1}, {4, 0.1}, {1000, 0.1}}},
    /* StepLR: 0.1 * 0.1^floor(s/3): 0.1 for 0..2, 0.01 for 3..5, 0.001 from 6. */
    {"step_decay",
     {.kind = DP_SCHED_STEP, .base_lr = 0.1f, .gamma = 0.1f, .step_size = 3},
     {{0, 0.1}, {2, 0.1}, {3, 0.01}, {5, 0.01}, {6, 0.001}, {9, 0.0001}}},
    /* With warm-up 2 the decay clock starts at step 2: 0.05, 0.1, then 0.1 until
     * step 2+3 = 5 where it drops to 0.01, and 0.001 at step 8. */
    {"step_decay_warmup",
     {.kind = DP_SCHED_STEP, .base_lr = 0.1f, .gamma = 0.1f, .step_size = 3, .warmup = 2},
     {{0, 0.05}, {1, 0.1}, {2, 0.1}, {4, 0.1}, {5, 0.01}, {7, 0.01}, {8, 0.001}}},
    /* Cosine from 1 to 0.1 over 10 steps: 0.1 + 0.45*(1 + cos(pi*s/10)).
     *   s=0: 1;  s=3: cos(0.3pi)=0.587785252 -> 0.814503363;  s=5: 0.55;  s=9: cos(0.9pi) = -0.951056516;
     *   s=10: 0.1, and it stays there (clamped) at s=20 where torch would be back at 1. */
    {"cosine",
     {.kind = DP_SCHED_COSINE, .base_lr = 1.0f, .min_lr = 0.1f, .total = 10},
     {{0, 1.0}, {3, 0.814503363}, {5, 0.55}, {9, 0.1 + 0.45 * (1.0 - 0.951056516295154)}, {10, 0.1}, {20, 0.1}}},
    /* Warm-up 5 then cosine over T = 15 - 5 = 10: 0.2, 0.4, ... 1.0 at step 4,
     * 1.0 again at step 5 (t = 0), 0.55 at step 10 (t = 5), 0.1 at 15. */
    {"cosine_warmup",
     {.kind = DP_SCHED_COSINE, .base_lr = 1.0f, .min_lr = 0.1f, .total = 15, .warmup = 5},
     {{0, 0.2}, {3, 0.8}, {4, 1.0}, {5, 1.0}, {8, 0.814503363}, {10, 0.55}, {15, 0.1}, {16, 0.1}}},
    /* Cosine power annealing from 1 to 0.1 over 10 steps, p = 10: 0.1 + 0.9 (10^c - 1) / 9 with cosine's
     * fraction c = (1 + cos(pi s / 10)) / 2.  s=0: c=1 -> 1;  s=3: c=0.793892626, 10^c=6.22146448 -> 0.622146448;
     * s=5: c=1/2 -> 0.1 + (sqrt(10) - 1) / 10 = sqrt(10) / 10;  s=9: c=0.024471742, 10^c=1.05796608 -> 0.105796608;
     * s=10: 0.1, clamped after. */
    {"cospow",
     {.kind = DP_SCHED_COSPOW, .base_lr = 1.0f, .min_lr = 0.1f, .total = 10, .power = 10.0f},
     {{0, 1.0}, {3, 0.622146448}, {5, 0.316227766}, {9, 0.105796608}, {10, 0.1}, {20, 0.1}}},
    /* The same after a warm-up of 5 steps: 0.2 .. 1.0, then the curve above shifted by 5. */
    {"cospow_warmup",
     {.kind = DP_SCHED_COSPOW, .base_lr = 1.0f, .min_lr = 0.1f, .total = 15, .warmup = 5, .power = 10.0f},
     {{0, 0.2}, {4, 1.0}, {5, 1.0}, {8, 0.622146448}, {10, 0.316227766}, {15, 0.1}}},
};

Test(optim_schedule, rates, .timeout = DP_TIMEOUT(10))
{
    for (size_t c = 0; c < sizeof lr_cases / sizeof lr_cases[0]; c++) {
        const lr_case *k = &lr_cases[c];
        cr_assert_eq(dp_schedule_check(&k->s), DP_OK, "%s: %s", k->name, dp_errmsg());
        for (size_t i = 0; i < sizeof k->at / sizeof k->at[0] && k->at[i].lr != 0; i++) {
            double got = dp_schedule_lr(&k->s, k->at[i].step), want = k->at[i].lr;
            cr_expect(fabs(got - want) <= 1e-7 + 1e-6 * fabs(want), "%s, step %ld: got %.9g, want %.9g", k->name,
                      k->at[i].step, got, want);
        }
    }
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

/* Cosine power annealing lies below cosine everywhere inside the run (it falls faster early), falls
 * monotonically, and meets cosine as p -> 1: at p = 1 + 1e-4 the two differ by less than 1e-4 of base. */
Test(optim_schedule, cospow_against_cosine, .timeout = DP_TIMEOUT(10))
{
    dp_schedule cs = {.kind = DP_SCHED_COSINE, .base_lr = 0.025f, .min_lr = 0.001f, .total = 4000, .warmup = 50};
    dp_schedule cp = cs, near = cs;
    cp.kind = near.kind = DP_SCHED_COSPOW;
    cp.power = 10.0f, near.power = 1.0001f;
    cr_assert_eq(dp_schedule_check(&cp), DP_OK, "%s", dp_errmsg());
    float prev = dp_schedule_lr(&cp, 49);
    for (long k = 50; k <= 4000; k++) {
        float c = dp_schedule_lr(&cs, k), p = dp_schedule_lr(&cp, k), q = dp_schedule_lr(&near, k);
        cr_assert(p <= prev, "step %ld: %g after %g", k, (double)p, (double)prev);
        if (k > 50 && k < 4000) cr_assert(p < c, "step %ld: cospow %g is not below cosine %g", k, (double)p, (double)c);
        cr_assert(fabsf(q - c) < 1e-4f * 0.025f, "step %ld: p = 1.0001 gives %.9g, cosine %.9g", k, (double)q, (double)c);
        prev = p;
    }
    cr_expect_eq(prev, 0.001f);
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
    cr_expect_eq(dp_schedule_kind_parse("cospow", &k), DP_OK);
    cr_expect_eq(k, DP_SCHED_COSPOW);
    cr_expect_str_eq(dp_schedule_kind_name(DP_SCHED_COSPOW), "cospow");
    k = DP_SCHED_CONSTANT;

    cr_expect_eq(dp_schedule_kind_parse("cos", &k), DP_ERR_ARG);
    cr_expect_eq(k, DP_SCHED_CONSTANT, "failed parse must not write *out");
    cr_expect(strstr(dp_errmsg(), "\"cos\"") && strstr(dp_errmsg(), "constant, step, cosine or cospow"),
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
    s = (dp_schedule){.kind = DP_SCHED_COSPOW, .base_lr = 1.0f, .total = 5, .power = 1.0f};
    cr_expect_eq(dp_schedule_check(&s), DP_ERR_ARG);
    cr_expect(strstr(dp_errmsg(), "power") && strstr(dp_errmsg(), "cospow"), "message: %s", dp_errmsg());
    s.power = 10.0f, s.warmup = 5;
    cr_expect_eq(dp_schedule_check(&s), DP_ERR_ARG);
    cr_expect(strstr(dp_errmsg(), "cospow schedule: total"), "message: %s", dp_errmsg());
}
