/* The optimizer object the trainer and checkpoint code hold: a config, a step
 * count and one flat state buffer, dispatching to the SGD or Adam kernels.
 *
 * State layout (one allocation so a checkpoint writes it as one range):
 *     SGD, momentum != 0:  [ buf 0..n )
 *     SGD, momentum == 0:  nothing (state == NULL, state_n == 0)
 *     Adam / AdamW:        [ m 0..n | v n..2n ) */
#include "dptrain/optim.h"
#include "optim/names.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

dp_opt_config dp_opt_defaults(dp_opt_kind k)
{
    /* torch.optim defaults (1.13). Adam's betas/eps are filled in for SGD too so
     * that switching kind on a default config gives sane values. */
    dp_opt_config c = {
        .kind = k, .momentum = 0.0f, .dampening = 0.0f, .weight_decay = 0.0f,
        .nesterov = 0, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f,
    };
    if (DP_OPT_ADAMW == k)
        c.weight_decay = 1e-2f;
    return c;
}

static const char *const kind_names[] = {
    [DP_OPT_SGD] = "sgd", [DP_OPT_ADAM] = "adam", [DP_OPT_ADAMW] = "adamw",
};

const char *dp_opt_kind_name(dp_opt_kind k)
{
    return (unsigned)k < DP_NAMES_N(kind_names) ? kind_names[k] : "unknown";
}

dp_status dp_opt_kind_parse(const char *name, dp_opt_kind *out)
{
    const int k = dp_names_find(kind_names, DP_NAMES_N(kind_names), name);
    if (k >= 0) {
        *out = (dp_opt_kind)k;
        return DP_OK;
    }
    return dp_errorf(DP_ERR_ARG, "unknown optimizer \"%s\" (expected sgd, adam or adamw)",
                     name ? name : "(null)");
}

/* The checks are written "!(x >= 0)" so that NaN fails them too. */
dp_status dp_opt_config_check(const dp_opt_config *c)
{
    if (DP_OPT_SGD != c->kind && DP_OPT_ADAM != c->kind && DP_OPT_ADAMW != c->kind)
        return dp_errorf(DP_ERR_ARG, "optimizer config: unknown kind %d", (int)c->kind);
    if (!(c->weight_decay >= 0.0f) || isinf(c->weight_decay))
        return dp_errorf(DP_ERR_ARG, "optimizer config: weight_decay %g must be finite and >= 0",
                         (double)c->weight_decay);
    if (DP_OPT_SGD == c->kind) {
        if (!(c->momentum >= 0.0f) || isinf(c->momentum))
            return dp_errorf(DP_ERR_ARG, "sgd config: momentum %g must be finite and >= 0",
                             (double)c->momentum);
        if (!(c->dampening >= 0.0f && c->dampening <= 1.0f))
            return dp_errorf(DP_ERR_ARG, "sgd config: dampening %g must be in [0, 1]",
                             (double)c->dampening);
        /* Same rule and reason as torch: Nesterov looks ahead along the momentum
         * buffer, which does not exist without momentum and is rescaled by dampening. */
        if (c->nesterov && (c->momentum <= 0.0f || c->dampening != 0.0f))
            return dp_errorf(DP_ERR_ARG, "sgd config: nesterov needs momentum > 0 and "
                             "dampening == 0 (got momentum %g, dampening %g)",
                             (double)c->momentum, (double)c->dampening);
        return DP_OK;
    }
    const char *name = dp_opt_kind_name(c->kind);
    if (!(c->beta1 >= 0.0f && c->beta1 < 1.0f))
        return dp_errorf(DP_ERR_ARG, "%s config: beta1 %g must be in [0, 1)", name, (double)c->beta1);
    if (!(c->beta2 >= 0.0f && c->beta2 < 1.0f))
        return dp_errorf(DP_ERR_ARG, "%s config: beta2 %g must be in [0, 1)", name, (double)c->beta2);
    if (!(c->eps >= 0.0f) || isinf(c->eps))
        return dp_errorf(DP_ERR_ARG, "%s config: eps %g must be finite and >= 0", name, (double)c->eps);
    return DP_OK;
}

size_t dp_opt_state_size(const dp_opt_config *cfg, size_t n)
{
    switch (cfg->kind) {
    case DP_OPT_SGD:
        return cfg->momentum != 0.0f ? n : 0;
    case DP_OPT_ADAM:
    case DP_OPT_ADAMW:
        return n > SIZE_MAX / 2 / sizeof(float) ? 0 : 2 * n;
    }
    return 0;
}

dp_status dp_optimizer_init(dp_optimizer *o, const dp_opt_config *cfg, size_t n)
{
    memset(o, 0, sizeof *o);
    dp_status rc = dp_opt_config_check(cfg);
    if (DP_OK != rc)
        return rc;

    size_t state_n = dp_opt_state_size(cfg, n);
    if (0 == state_n && DP_OPT_SGD != cfg->kind && n > 0)
        return dp_errorf(DP_ERR_NOMEM, "%s: state for %zu parameters overflows size_t",
                         dp_opt_kind_name(cfg->kind), n);
    float *state = NULL;
    if (state_n > 0) {
        /* Zeroed: Adam's moments start at 0; SGD's buffer is overwritten on step 1
         * but zero keeps a checkpoint taken before any step deterministic. */
        state = calloc(state_n, sizeof *state);
        if (!state)
            return dp_errorf(DP_ERR_NOMEM, "%s: cannot allocate %zu state floats",
                             dp_opt_kind_name(cfg->kind), state_n);
    }
    o->cfg = *cfg;
    o->n = n;
    o->state = state;
    o->state_n = state_n;
    o->t = 0;
    return DP_OK;
}

void dp_optimizer_step(dp_optimizer *o, float *params, const float *grads, float lr)
{
    o->t++;
    switch (o->cfg.kind) {
    case DP_OPT_SGD:
        dp_sgd_update(params, grads, o->state, o->n, &o->cfg, lr, o->t);
        break;
    case DP_OPT_ADAM:
    case DP_OPT_ADAMW:
        dp_adam_update(params, grads, o->state, o->state + o->n, o->n, &o->cfg, lr, o->t);
        break;
    }
}

void dp_optimizer_free(dp_optimizer *o)
{
    if (!o)
        return;
    free(o->state);
    memset(o, 0, sizeof *o);
}
