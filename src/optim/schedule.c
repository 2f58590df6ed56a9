/* Learning-rate schedules: constant, step decay, cosine and cosine power annealing, each with
 * an optional linear warm-up prefix. Pure functions of the step index, so the
 * trainer needs no schedule state in its checkpoint.
 *
 * After warm-up the decay runs on t = step - warmup (see optim.h for why):
 *     constant: base
 *     step:     base * gamma^floor(t / step_size)             torch StepLR
 *     cosine:   min + (base - min) * (1 + cos(pi * t / T)) / 2,  T = total - warmup
 *               (torch CosineAnnealingLR's closed form), clamped to min for t >= T
 *     cospow:   min + (base - min) * (p^c - 1) / (p - 1),  c = (1 + cos(pi * t / T)) / 2
 *               (sharpDARTS' cosine power annealing, per step where its code is per epoch)
 * Warm-up: base * (step + 1) / warmup for step < warmup. Counting from step+1
 * means the first step already moves (lr = base/warmup, not 0, which would be a
 * wasted step) and the last warm-up step reaches base, meeting the decay
 * schedule's t = 0 value without a jump. */
#include "dptrain/optim.h"
#include "optim/names.h"

#include <math.h>
#include <string.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

static const char *const sched_names[] = {
    [DP_SCHED_CONSTANT] = "constant", [DP_SCHED_STEP] = "step", [DP_SCHED_COSINE] = "cosine",
    [DP_SCHED_COSPOW] = "cospow",
};

const char *dp_schedule_kind_name(dp_sched_kind k)
{
    return (unsigned)k < DP_NAMES_N(sched_names) ? sched_names[k] : "unknown";
}

dp_status dp_schedule_kind_parse(const char *name, dp_sched_kind *out)
{
    const int k = dp_names_find(sched_names, DP_NAMES_N(sched_names), name);
    if (k >= 0) {
        *out = (dp_sched_kind)k;
        return DP_OK;
    }
    return dp_errorf(DP_ERR_ARG, "unknown lr schedule \"%s\" (expected constant, step, cosine or cospow)",
                     name ? name : "(null)");
}

dp_status dp_schedule_check(const dp_schedule *s)
{
    const char *name = dp_schedule_kind_name(s->kind);
    if ((unsigned)s->kind >= DP_NAMES_N(sched_names))
        return dp_errorf(DP_ERR_ARG, "lr schedule: unknown kind %d", (int)s->kind);
    if (!(s->base_lr >= 0.0f) || isinf(s->base_lr))
        return dp_errorf(DP_ERR_ARG, "%s schedule: base_lr %g must be finite and >= 0",
                         name, (double)s->base_lr);
    if (s->warmup < 0)
        return dp_errorf(DP_ERR_ARG, "%s schedule: warmup %ld must be >= 0", name, s->warmup);
    if (DP_SCHED_STEP == s->kind) {
        if (s->step_size <= 0)
            return dp_errorf(DP_ERR_ARG, "step schedule: step_size %ld must be > 0", s->step_size);
        if (!(s->gamma >= 0.0f) || isinf(s->gamma))
            return dp_errorf(DP_ERR_ARG, "step schedule: gamma %g must be finite and >= 0",
                             (double)s->gamma);
    }
    if (DP_SCHED_COSINE == s->kind || DP_SCHED_COSPOW == s->kind) {
        if (s->total <= s->warmup)
            return dp_errorf(DP_ERR_ARG, "%s schedule: total %ld must exceed warmup %ld",
                             name, s->total, s->warmup);
        if (!(s->min_lr >= 0.0f && s->min_lr <= s->base_lr))
            return dp_errorf(DP_ERR_ARG, "%s schedule: min_lr %g must be in [0, base_lr %g]",
                             name, (double)s->min_lr, (double)s->base_lr);
    }
    if (DP_SCHED_COSPOW == s->kind && !(s->power > 1.0f && s->power <= 1e6f))
        return dp_errorf(DP_ERR_ARG, "cospow schedule: power %g must be in (1, 1e6] (1 is cosine)",
                         (double)s->power);
    return DP_OK;
}

float dp_schedule_lr(const dp_schedule *s, long step)
{
    const double base = s->base_lr;
    if (step < 0)
        step = 0;
    if (step < s->warmup)
        return (float)(base * (double)(step + 1) / (double)s->warmup);

    const long t = step - s->warmup;
    switch (s->kind) {
    case DP_SCHED_CONSTANT:
        return s->base_lr;
    case DP_SCHED_STEP:
        if (s->step_size <= 0)
            return s->base_lr;
        return (float)(base * pow((double)s->gamma, (double)(t / s->step_size)));
    case DP_SCHED_COSINE:
    case DP_SCHED_COSPOW: {
        const long T = s->total - s->warmup;
        const double lo = s->min_lr, p = s->power;
        if (T <= 0 || t >= T)
            return s->min_lr;
        double c = (1.0 + cos(M_PI * (double)t / (double)T)) / 2.0;
        if (DP_SCHED_COSPOW == s->kind && p > 1.0)
            c = expm1(c * log(p)) / (p - 1.0); /* expm1 keeps p near 1 exact enough to meet cosine */
        return (float)(lo + (base - lo) * c);
    }
    }
    return s->base_lr;
}
