/* The search loop: data-parallel bilevel (or gold's one-level) steps on the
 * supernet, per-epoch evaluation on the held-out half, and the genotype.
 *
 * Per step, on every rank (bilevel):
 *   alpha step: held-out batch -> forward -> cross-entropy (+ lambda E[cost])
 *     -> backward into alpha only (the weights' gradients, which first-order
 *     DARTS computes and throws away, are not computed) -> allreduce alpha's
 *     gradient -> clip -> Adam;
 *   weight step: training batch -> forward -> backward into the weights only,
 *     buckets allreduced while backward runs -> clip -> SGD (cosine lr).
 * Both gradients are weighted by this rank's share of the global batch and
 * summed, as in the trainer, so P ranks x batch b take the step of one rank
 * with batch P b (exactly so with --sampler global).
 * What differs between strategies (one-level or bilevel, the temperature,
 * Gumbel noise before each pass) comes from the strategy's record
 * (strategy.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nas/search_run.h"
#include "nas/strategy.h"


static void trainable(dp_params *p, int on)
{
    for (int i = 0; i < p->count; i++)
        if (!p->items[i]->is_buffer) p->items[i]->t.requires_grad = on;
}

/* Gradients of one batch into the weights (want_w) and/or alpha (want_a),
 * averaged over the ranks. stats += loss sum, correct, images, non-finite. */
static dp_status grads_at(srch *s, const dp_image_set *set, const dp_sampler *smp, long step, int want_w, int want_a,
                          double *stats)
{
    dp_ctx *c = &s->ctx;
    dp_params *wp = &s->sn->model->params, *ap = &s->sn->alpha;
    long first, bs = dp_sampler_local(smp, step, &first), gbs = dp_sampler_global(smp, step);
    if (want_w) dp_params_zero_grad(wp);
    if (want_a) dp_params_zero_grad(ap);
    trainable(wp, want_w);
    trainable(ap, want_a);
    if (s->strat->before_pass) s->strat->before_pass(s); /* gumbel: every rank draws, batch or not */
    dp_ctx_reset(c);
    c->training = 1;
    c->grad_enabled = 1;
    s->d->sync.step = s->async.step = (uint64_t)nas_step(s); /* keys the codec's rounding, so a resume rounds alike */
    dp_status rc = DP_OK;
    s->kl_bs = 0;
    if (bs > 0) {
        dp_tensor *in = dp_image_batch_get(&s->b, c, set, smp->perm, first, bs);
        const float *soft = NULL; /* --self-distill: the teachers' probabilities on the training half */
        if (set == &s->tr && s->cfg->self_distill > 0) rc = nas_distill_targets(s, in, bs, &soft);
        long correct = 0;
        dp_tensor *logits = rc == DP_OK ? s->sn->model->forward(s->sn->model, c, in) : NULL;
        dp_tensor *loss = dp_cross_entropy(c, logits, s->b.y, &correct);
        dp_tensor *obj = loss;
        if (loss && soft) {
            const float t = s->cfg->distill_temp;
            dp_tensor *kl = dp_kl_soft_targets(c, logits, soft, t);
            obj = dp_add(c, loss, dp_scale(c, kl, s->cfg->self_distill * t * t));
            if (kl) s->kl_last = kl->data[0], s->kl_bs = (double)bs;
        }
        if (loss && want_a && s->cfg->cost_weight > 0)
            obj = dp_add(c, obj, dp_scale(c, dp_supernet_expected_cost(c, s->sn, s->cost), s->cfg->cost_weight));
        if (rc == DP_OK && !obj) rc = c->status ? c->status : dp_errorf(DP_ERR_SHAPE, "supernet forward failed");
        if (rc == DP_OK) {
            double l = loss->data[0];
            if (!isfinite(obj->data[0])) stats[DP_STAT_NONFINITE] += 1;
            stats[DP_STAT_LOSS] += isfinite(l) ? l * (double)bs : 0;
            stats[DP_STAT_CORRECT] += (double)correct;
            stats[DP_STAT_SEEN] += (double)bs;
            if (want_w) dp_sync_begin(&s->d->sync, c);
            rc = dp_backward_scaled(c, obj, (float)((double)bs / (double)gbs));
        }
    }
    /* every rank joins the allreduces, even one whose forward failed, so none waits forever */
    dp_status rs = want_w ? dp_sync_end(&s->d->sync, c) : DP_OK;
    if (rs == DP_OK && want_a) rs = dp_sync_end(&s->async, NULL);
    trainable(wp, 1);
    trainable(ap, 1);
    return rc != DP_OK ? rc : rs;
}

/* Second order (DARTS eq. 7-8): the alpha gradient at w' = w - xi dL_train/dw,
 * minus xi times the Hessian-vector product by central differences at
 * w +- eps dL_val/dw'. The SGD momentum term of the reference's w' is left
 * out. Leaves the result in alpha's gradient and the weights as they were. */
static dp_status unrolled_alpha(srch *s, long i_tr, long i_va, double *stats)
{
    dp_params *wp = &s->sn->model->params, *ap = &s->sn->alpha;
    size_t n = wp->n, na = ap->n;
    float *w = wp->data, *g = wp->grad, xi = dp_schedule_lr(&s->wsched, nas_step(s)), wd = s->cfg->w_wd;
    float gp[NAS_MAX_ROWS * (DP_NAS_NUM_OPS + 1)]; /* alpha, and beta with edge normalisation */
    double scratch[DP_NSTATS] = {0};
    dp_status rc = grads_at(s, &s->tr, &s->str, i_tr, 1, 0, scratch);
    if (rc != DP_OK) return rc;
    memcpy(s->wbak, w, n * sizeof *w);
    for (size_t j = 0; j < n; j++) w[j] -= xi * (g[j] + wd * w[j]);
    rc = grads_at(s, &s->va, &s->sva, i_va, 1, 1, stats);
    if (rc != DP_OK) return rc;
    memcpy(s->vbuf, g, n * sizeof *g);
    memcpy(s->abuf, ap->grad, na * sizeof *ap->grad);
    float eps = (float)(0.01 / (sqrt(dp_sum_squares(s->vbuf, n)) + 1e-12));
    for (int sign = 1; sign >= -1; sign -= 2) {
        for (size_t j = 0; j < n; j++) w[j] = s->wbak[j] + (float)sign * eps * s->vbuf[j];
        rc = grads_at(s, &s->tr, &s->str, i_tr, 0, 1, scratch);
        if (rc != DP_OK) return rc;
        if (sign == 1) memcpy(gp, ap->grad, na * sizeof *gp);
    }
    for (size_t k = 0; k < na; k++) ap->grad[k] = s->abuf[k] - xi * (gp[k] - ap->grad[k]) / (2 * eps);
    memcpy(w, s->wbak, n * sizeof *w);
    return DP_OK;
}

static void set_temperature(srch *s)
{
    double p = s->total_steps ? (double)nas_step(s) / (double)s->total_steps : 0;
    s->temp = s->strat->temperature ? s->strat->temperature(s->t_start, s->t_end, p) : 1.0f;
    s->sn->mix.temperature = s->temp;
}

dp_status nas_search_step(srch *s, long i, double *stats)
{
    const dp_search_config *cfg = s->cfg;
    dp_params *ap = &s->sn->alpha;
    set_temperature(s);
    double astats[DP_NSTATS] = {0};
    long i_va = i % s->vsteps;
    dp_status rc;
    /* warm-up: the weights learn before alpha judges them, against the early bias to parameter-free ops */
    int alpha_on = s->alpha_on = nas_step(s) >= (long)cfg->arch_warmup * s->steps;
    if (!s->strat->bilevel)
        rc = grads_at(s, &s->tr, &s->str, i, 1, alpha_on, stats);
    else if (!alpha_on)
        rc = DP_OK;
    else if (cfg->unrolled)
        rc = unrolled_alpha(s, i, i_va, astats);
    else
        rc = grads_at(s, &s->va, &s->sva, i_va, 0, 1, astats);
    if (rc != DP_OK) return rc;
    stats[DP_STAT_NONFINITE] += astats[DP_STAT_NONFINITE];
    if (s->strat->bilevel) {
        /* the weight step sees the alpha just taken, as the reference's architect.step then model step */
        if (alpha_on && cfg->a_clip > 0) dp_clip_grad_norm(ap->grad, ap->n, cfg->a_clip);
        if (alpha_on) dp_optimizer_step(&s->aopt, ap->data, ap->grad, cfg->a_lr);
        rc = grads_at(s, &s->tr, &s->str, i, 1, 0, stats);
    }
    /* the step's last pass is its weight (or one-level) pass: its distillation term is the step's */
    s->kl_sum += s->kl_last * s->kl_bs, s->kl_seen += s->kl_bs;
    return rc;
}

void nas_search_update(srch *s)
{
    const dp_search_config *cfg = s->cfg;
    dp_params *wp = &s->sn->model->params, *ap = &s->sn->alpha;
    if (!s->strat->bilevel && s->alpha_on) {
        if (cfg->a_clip > 0) dp_clip_grad_norm(ap->grad, ap->n, cfg->a_clip);
        dp_optimizer_step(&s->aopt, ap->data, ap->grad, cfg->a_lr);
    }
    if (cfg->w_clip > 0) dp_clip_grad_norm(wp->grad, wp->n, cfg->w_clip);
    dp_optimizer_step(&s->wopt, wp->data, wp->grad, dp_schedule_lr(&s->wsched, nas_step(s)));
}

dp_status nas_evaluate(srch *s, long limit, double *loss, double *acc)
{
    /* global sampler: every rank holds the whole held-out half, so each takes its slice */
    long lo = 0, hi = s->va.n;
    if (s->cfg->run.sampler == DP_SAMPLER_GLOBAL)
        lo = s->va.n * s->d->rank / s->d->size, hi = s->va.n * (s->d->rank + 1) / s->d->size;
    if (limit > 0) {
        long per = (limit + s->d->size - 1) / s->d->size;
        if (hi - lo > per) hi = lo + per;
    }
    if (s->strat->before_eval) s->strat->before_eval(s); /* gumbel: no noise */
    return dp_image_evaluate(&s->b, &s->ctx, s->sn->model, &s->va, lo, hi, s->cfg->run.eval_batch, &s->d->sync, loss,
                             acc);
}
