/* gold: GOLD-NAS-style one-level search with gradual pruning. After the
 * warm-up epochs, every --prune-every steps the weakest live ops (smallest
 * sigmoid(alpha)) are masked out, as many per round as it takes to reach one
 * op per edge by the end of the search; an edge always keeps one op. Each
 * round records a trade-off point (held-out accuracy against FLOPs) in
 * gold_tradeoff.csv. With --flops-budget the final derived network is then
 * pruned further until it fits: a hard bound, not a penalty. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nas/search_run.h"
#include "nas/strategy.h"

#define TRADEOFF_EVAL 1000 /* held-out images per trade-off point: a point per round must stay cheap */

/* ---- mixing: sigmoid(alpha)_k * mask_k, one-level ---- */

static dp_tensor *gold_mix(dp_ctx *c, const dp_nas_mix *m, dp_tensor *a, long off)
{
    dp_tensor *w = dp_sigmoid(c, a);
    return m->mask ? dp_mul(c, w, dp_tensor_wrap(c, (float *)m->mask + off, a->ndim, a->shape)) : w;
}

static void gold_host_row(const float *a, const float *mask, float temp, int n, float *w)
{
    (void)temp;
    for (int k = 0; k < n; k++) w[k] = mask[k] / (1.0f + expf(-a[k]));
}

/* the none columns start pruned: gold's sigmoid weights do not compete through a softmax */
static void gold_setup(srch *s)
{
    for (int k = 0; k < s->rows * s->nops; k++)
        if (s->sn->cfg.ops[k % s->nops] == DP_NAS_NONE) s->mask[k] = 0.0f;
    s->sn->mix.mask = s->mask;
}

static dp_status gold_open_outputs(srch *s)
{
    dp_status rc = nas_csv_open(s, "gold_tradeoff.csv", &s->gold_csv);
    if (rc == DP_OK && !s->cfg->run.resume)
        fprintf(s->gold_csv, "step,alive_ops,supernet_mflops,derived_mflops,heldout_acc\n");
    return rc;
}

/* ---- pruning ---- */

static int alive_in_row(const srch *s, int r)
{
    int a = 0;
    for (int k = 0; k < s->nops; k++) a += s->mask[r * s->nops + k] > 0;
    return a;
}

static double supernet_mflops(const srch *s)
{
    double f = 0;
    for (int k = 0; k < s->rows * s->nops; k++) f += s->mask[k] > 0 ? s->flops[k] : 0;
    return f / 1e6 + s->fixed_mflops;
}

/* Masks the live op with the smallest weight among rows [r0, r1) that keep another. */
static int prune_weakest(srch *s, int r0, int r1)
{
    float w[NAS_MAX_ROWS * DP_NAS_NUM_OPS];
    nas_host_weights(s, w);
    int best = -1;
    for (int r = r0; r < r1; r++) {
        if (alive_in_row(s, r) <= 1) continue;
        for (int k = 0; k < s->nops; k++) {
            int i = r * s->nops + k;
            if (s->mask[i] > 0 && (best < 0 || w[i] < w[best])) best = i;
        }
    }
    if (best >= 0) s->mask[best] = 0;
    return best >= 0;
}

static dp_status record_point(srch *s, int pruned)
{
    double loss, acc;
    dp_status rc = nas_evaluate(s, TRADEOFF_EVAL, &loss, &acc);
    if (rc != DP_OK) return rc;
    dp_genotype g;
    rc = nas_derive(s, &g);
    if (rc != DP_OK) return rc;
    int alive = 0;
    for (int r = 0; r < s->rows; r++) alive += alive_in_row(s, r);
    if (s->gold_csv) {
        fprintf(s->gold_csv, "%ld,%d,%.4f,%.4f,%.4f\n", nas_step(s), alive, supernet_mflops(s), nas_genotype_mflops(s, &g),
                acc);
        fflush(s->gold_csv);
    }
    if (!s->cfg->run.quiet && s->d->rank == 0 && pruned) {
        dp_report_end_bar(&s->d->rep);
        fprintf(stderr, "gold: step %ld pruned %d op(s): %d live, supernet %.2f MFLOPs, derived %.2f MFLOPs, held-out acc %.4f\n",
                nas_step(s), pruned, alive, supernet_mflops(s), nas_genotype_mflops(s, &g), acc);
    }
    return DP_OK;
}

static dp_status gold_maybe_prune(srch *s, int epoch)
{
    if (epoch < s->cfg->warmup_epochs || nas_step(s) - s->last_prune < s->cfg->prune_every) return DP_OK;
    s->last_prune = nas_step(s);
    int excess[DP_NAS_MAX_CELLS] = {0}, any = 0;
    const int types = s->rows / DP_NAS_EDGES;
    for (int r = 0; r < s->rows; r++) excess[r / DP_NAS_EDGES] += alive_in_row(s, r) - 1;
    for (int t = 0; t < types; t++) any |= excess[t];
    if (!any) return DP_OK;
    long rounds_left = (s->total_steps - nas_step(s)) / s->cfg->prune_every;
    if (rounds_left < 1) rounds_left = 1;
    int pruned = 0;
    for (int t = 0; t < types; t++) {
        long n = (excess[t] + rounds_left - 1) / rounds_left;
        for (long j = 0; j < n; j++) pruned += prune_weakest(s, t * DP_NAS_EDGES, (t + 1) * DP_NAS_EDGES);
    }
    return record_point(s, pruned);
}

static dp_status gold_finish(srch *s)
{
    dp_status rc = record_point(s, 0);
    if (rc != DP_OK || s->cfg->flops_budget <= 0) return rc;
    /* the hard bound: drop the chosen op that costs most until the derived cells fit */
    for (int guard = 0; guard < s->rows * s->nops; guard++) {
        dp_genotype g;
        rc = nas_derive(s, &g);
        if (rc != DP_OK) return rc;
        double f = nas_genotype_mflops(s, &g);
        if (f <= s->cfg->flops_budget) {
            if (!s->cfg->run.quiet && s->d->rank == 0)
                fprintf(stderr, "gold: derived network %.2f MFLOPs within the budget of %.2f\n", f, s->cfg->flops_budget);
            return record_point(s, 0);
        }
        int worst = -1;
        double worst_f = 0;
        for (int t = 0; t < dp_genotype_cells(&g); t++)
            for (int j = 0; j < 2 * DP_NAS_NODES; j++) {
                int i = nas_chosen(s, &g, t, j);
                if (i >= 0 && s->mask[i] > 0 && s->flops[i] > worst_f) worst = i, worst_f = s->flops[i];
            }
        if (worst < 0) break;
        s->mask[worst] = 0;
    }
    return dp_errorf(DP_ERR_ARG, "--flops-budget %.3g MFLOPs: no derivable network of this space fits (the fixed part alone is %.3g)",
                     s->cfg->flops_budget, s->fixed_mflops);
}

const nas_strategy nas_strategy_gold = {
    .name = "gold",
    .bilevel = 0,
    .flags = NAS_FLAG_FLOPS_BUDGET,
    .mix = gold_mix,
    .host_row = gold_host_row,
    .setup = gold_setup,
    .open_outputs = gold_open_outputs,
    .after_step = gold_maybe_prune,
    .finish = gold_finish,
};
