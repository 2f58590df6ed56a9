/* Optimizers, learning-rate schedules and gradient clipping on flat float ranges.
 *
 * Where this sits: after the allreduce has left the averaged gradient in the flat
 * gradient buffer, the trainer calls dp_optimizer_step() on (params, grads, n).
 * Nothing here knows about models, tensors or MPI: a "parameter" is a float in a
 * range, and optimizer state is one more flat range (checkpointable as one block).
 *
 * Reference: the update rules are those of PyTorch 1.13 (torch.optim.SGD, Adam,
 * AdamW, torch.nn.utils.clip_grad_norm_, CosineAnnealingLR); each .c file quotes
 * the formula it implements. Results agree with torch to float rounding, not
 * bit-for-bit: torch keeps betas and lr as Python doubles, here they are floats.
 *
 * Ownership: dp_optimizer owns its state buffer (dp_optimizer_init allocates,
 * dp_optimizer_free releases). The raw kernels allocate nothing; params, grads
 * and state are the caller's and must not overlap (they are restrict-qualified). */
#ifndef DPTRAIN_OPTIM_H
#define DPTRAIN_OPTIM_H

#include <stddef.h>

#include "dptrain/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------- */
/* Optimizers                                                                 */
/* ------------------------------------------------------------------------- */

typedef enum dp_opt_kind {
    DP_OPT_SGD,   /* torch.optim.SGD: momentum, dampening, Nesterov, L2 weight decay */
    DP_OPT_ADAM,  /* torch.optim.Adam: weight decay added to the gradient (L2) */
    DP_OPT_ADAMW, /* torch.optim.AdamW: decoupled weight decay, p *= 1 - lr*wd */
} dp_opt_kind;

/* Hyper-parameters other than the learning rate (which changes per step and is
 * passed to every step call). Fields an optimizer does not use are ignored. */
typedef struct dp_opt_config {
    dp_opt_kind kind;
    float momentum;     /* SGD: 0 disables the momentum buffer */
    float dampening;    /* SGD: buf = momentum*buf + (1-dampening)*g */
    float weight_decay; /* all: L2 (SGD, Adam) or decoupled (AdamW) */
    int nesterov;       /* SGD: needs momentum > 0 and dampening == 0 (as torch) */
    float beta1, beta2; /* Adam/AdamW: decay of the first and second moments */
    float eps;          /* Adam/AdamW: added to sqrt(v_hat), outside the sqrt */
} dp_opt_config;

/* An optimizer over one flat range of n parameters.
 *   state:   SGD with momentum: the momentum buffer [n]; SGD without: NULL;
 *            Adam/AdamW: m [n] followed by v [n]. One allocation, so a
 *            checkpoint saves/restores it as the single range (state, state_n).
 *   t:       steps taken so far. Part of the checkpoint: Adam's bias correction
 *            and SGD's "first step copies the gradient" both depend on it. */
typedef struct dp_optimizer {
    dp_opt_config cfg;
    size_t n;
    float *state;
    size_t state_n;
    long t;
} dp_optimizer;

/*! The PyTorch defaults for `k`: SGD momentum 0, dampening 0, weight decay 0,
 *  no Nesterov; Adam betas (0.9, 0.999), eps 1e-8, weight decay 0; AdamW the
 *  same but weight decay 1e-2.
 *  @return the config (kind set to `k`). */
dp_opt_config dp_opt_defaults(dp_opt_kind k);

/*! Parses "sgd", "adam" or "adamw" (case-sensitive) into `*out`.
 *  @return DP_OK, or DP_ERR_ARG with a message naming the bad name. */
dp_status dp_opt_kind_parse(const char *name, dp_opt_kind *out);

/*! @return "sgd", "adam", "adamw" or "unknown". */
const char *dp_opt_kind_name(dp_opt_kind k);

/*! Checks a config the way torch's constructors do (momentum, weight decay,
 *  eps >= 0; betas in [0, 1); Nesterov needs momentum > 0 and dampening == 0).
 *  @return DP_OK, or DP_ERR_ARG with a message naming the field. */
dp_status dp_opt_config_check(const dp_opt_config *cfg);

/*! Checks `cfg`, copies it and allocates zeroed state for n parameters; t = 0.
 *  On failure `*o` is left empty (safe to pass to dp_optimizer_free).
 *  @return DP_OK, DP_ERR_ARG (bad config) or DP_ERR_NOMEM. */
dp_status dp_optimizer_init(dp_optimizer *o, const dp_opt_config *cfg, size_t n);

/*! One update of params[0..n) from grads[0..n) with learning rate `lr`;
 *  increments o->t first (so the first call is step 1, as torch counts).
 *  Allocates nothing; params, grads and o->state must not overlap. */
void dp_optimizer_step(dp_optimizer *o, float *params, const float *grads, float lr);

/*! Releases the state and zeroes `*o`. Accepts NULL and an already-freed optimizer. */
void dp_optimizer_free(dp_optimizer *o);

/*! @return the number of state floats an optimizer with `cfg` keeps for n
 *  parameters (0, n or 2n), or 0 when 2n would overflow size_t. */
size_t dp_opt_state_size(const dp_opt_config *cfg, size_t n);

/* Raw kernels on ranges, for callers that step sub-ranges themselves (e.g. the
 * architecture weights of a DARTS search with their own optimizer, or a bucket
 * at a time). `t` is the 1-based index of the step being taken (the value
 * dp_optimizer::t has after its increment); every sub-range of one logical step
 * must get the same t. cfg->kind is not consulted by dp_sgd_update;
 * dp_adam_update reads it to choose L2 (DP_OPT_ADAM) or decoupled (DP_OPT_ADAMW)
 * weight decay. */

/*! SGD on n floats. `buf` [n] is the momentum buffer and may be NULL when
 *  cfg->momentum == 0. On t == 1 the buffer is set to the gradient (torch's
 *  "buffer is None" case), so its previous contents do not matter. */
void dp_sgd_update(float *restrict params, const float *restrict grads,
                   float *restrict buf, size_t n,
                   const dp_opt_config *cfg, float lr, long t);

/*! Adam/AdamW on n floats with first moment m [n] and second moment v [n]
 *  (both zero before step 1). t must be >= 1. */
void dp_adam_update(float *restrict params, const float *restrict grads,
                    float *restrict m, float *restrict v, size_t n,
                    const dp_opt_config *cfg, float lr, long t);

/* ------------------------------------------------------------------------- */
/* Learning-rate schedules                                                    */
/* ------------------------------------------------------------------------- */

typedef enum dp_sched_kind {
    DP_SCHED_CONSTANT, /* base_lr */
    DP_SCHED_STEP,     /* base_lr * gamma^floor(t / step_size) (torch StepLR) */
    DP_SCHED_COSINE,   /* min + (base-min)*(1+cos(pi*t/T))/2 (CosineAnnealingLR) */
    DP_SCHED_COSPOW,   /* min + (base-min)*(p^c - 1)/(p - 1), c = (1+cos(pi*t/T))/2 (sharpDARTS) */
} dp_sched_kind;

/* A schedule is a pure function of the step index; it holds no state, so a
 * resumed run only needs the step count from its checkpoint.
 *
 * Warm-up (warmup = W > 0) is a prefix: for step s < W the lr rises linearly,
 *     lr(s) = base_lr * (s + 1) / W        (base/W on the first step, base at s = W-1),
 * and the decay schedule then runs on t = s - W, i.e. it starts from base_lr right
 * after the warm-up. For cosine T = total - W, so lr reaches min_lr at step
 * `total` and stays there (clamped, where torch's closed form would rise again).
 * Step decay's drops therefore fall at steps W + k*step_size.
 *
 * Cosine power annealing (Hundt et al. 2019, sharpDARTS) raises the exponent
 * order p to cosine's own fraction c and rescales p^c to [min, base]: it falls
 * faster than cosine early and slower late (at T/2 it is 1/(sqrt(p) + 1) of
 * the way up from min, 0.24 for p = 10, where cosine is at 1/2); p -> 1 is
 * cosine. */
typedef struct dp_schedule {
    dp_sched_kind kind;
    float base_lr;
    float min_lr;    /* cosine: the floor reached at `total` */
    float gamma;     /* step: factor applied every step_size steps */
    long step_size;  /* step: > 0 */
    long warmup;     /* all: linear warm-up steps, 0 for none */
    long total;      /* cosine, cospow: total steps including the warm-up */
    float power;     /* cospow: the exponent order p > 1 (sharpDARTS: 10) */
} dp_schedule;

/*! The learning rate for optimizer step `step` (0-based: the first step is 0).
 *  Negative steps are treated as 0. Never fails; an invalid schedule (see
 *  dp_schedule_check) gives a defined but meaningless value.
 *  @return the lr to pass to dp_optimizer_step. */
float dp_schedule_lr(const dp_schedule *s, long step);

/*! Checks fields for the schedule's kind (step_size > 0 for step, total > warmup
 *  for cosine and cospow, power > 1 for cospow, warmup >= 0, lrs >= 0).
 *  @return DP_OK, or DP_ERR_ARG with a message naming the field. */
dp_status dp_schedule_check(const dp_schedule *s);

/*! Parses "constant", "step", "cosine" or "cospow" into `*out`.
 *  @return DP_OK, or DP_ERR_ARG with a message listing the accepted names. */
dp_status dp_schedule_kind_parse(const char *name, dp_sched_kind *out);

/*! @return "constant", "step", "cosine", "cospow" or "unknown". */
const char *dp_schedule_kind_name(dp_sched_kind k);

/* ------------------------------------------------------------------------- */
/* Gradient clipping                                                          */
/* ------------------------------------------------------------------------- */

/*! @return sum of g[i]^2 over n floats, accumulated in double. Sums over several
 *  ranges (or an MPI_SUM over ranks) add up to the global squared norm. */
double dp_sum_squares(const float *g, size_t n);

/*! The factor torch's clip_grad_norm_ multiplies gradients by:
 *  max_norm / (total_norm + 1e-6), capped at 1.
 *  @return that factor, or 1 when total_norm is not finite (nothing sensible
 *  to scale by; the caller should check the norm and skip the step). */
float dp_clip_coef(double total_norm, float max_norm);

/*! Multiplies g[0..n) by `s` in place. */
void dp_grad_scale(float *g, size_t n, float s);

/*! Clips g[0..n) by its L2 norm, as torch.nn.utils.clip_grad_norm_: when the
 *  norm exceeds max_norm, g is scaled by max_norm/(norm + 1e-6). For a gradient
 *  split over several ranges, combine dp_sum_squares, then dp_clip_coef and
 *  dp_grad_scale on each range.
 *  @return the norm before clipping (may be inf/NaN; g is then left unchanged). */
float dp_clip_grad_norm(float *g, size_t n, float max_norm);

/*! Loss scaling's second half: multiplies g[0..n) by `mul` (untouched when
 *  mul == 1) and finds the first NaN or Inf. Branch-free in the common all-finite
 *  case so it vectorises.
 *  @return the index of the first non-finite value (before scaling), or n. */
size_t dp_grad_unscale_check(float *g, size_t n, float mul);

#ifdef __cplusplus
}
#endif
#endif
