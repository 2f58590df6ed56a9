/* The search's configuration: the reference DARTS hyper-parameters as
 * defaults, range checks naming the flag, and the text the ranks compare. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "dptrain/search.h"
#include "nas/strategy.h"

void dp_search_config_defaults(dp_search_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    dp_run_config_defaults(&cfg->run);
    snprintf(cfg->run.data, sizeof cfg->run.data, "shards/fashion-mnist");
    dp_supernet_config_defaults(&cfg->net);
    cfg->strategy = DP_NAS_DARTS;
    cfg->run.eval_batch = 64; /* the arena holds a whole forward: a large eval batch would set the peak memory */
    cfg->w_lr = 0.025f, cfg->w_min_lr = 0.001f, cfg->w_momentum = 0.9f, cfg->w_wd = 3e-4f, cfg->w_clip = 5.0f;
    cfg->w_schedule = DP_SCHED_COSINE, cfg->w_lr_power = 10.0f;
    cfg->a_lr = 3e-4f, cfg->a_beta1 = 0.5f, cfg->a_beta2 = 0.999f, cfg->a_wd = 1e-3f, cfg->a_clip = 10.0f;
    cfg->prune_every = 50;
    cfg->warmup_epochs = 1;
    cfg->skip_warn = 4;
    cfg->select = 0; /* DP_NAS_SELECT_ALPHA */
    cfg->select_batches = 8;
    cfg->select_tune = 0;
    cfg->select_samples = 100;
    cfg->retrain_layers = 8, cfg->retrain_channels = 16; /* benchmarks/bench_nas_retrain.sh's recipe */
    cfg->free_warn = 5;
    cfg->distill_temp = 1.0f;
    cfg->distill_voters = 1;
}

#define POS(v, flag) DP_CHECK(isfinite(v) && (v) > 0 && (v) < 1e9, "%s: %g must be > 0", flag, (double)(v))
#define NONNEG(v, flag) DP_CHECK(isfinite(v) && (v) >= 0 && (v) < 1e9, "%s: %g must be >= 0", flag, (double)(v))

dp_status dp_search_config_check(const dp_search_config *cfg)
{
    const dp_supernet_config *n = &cfg->net;
    const nas_strategy *st = nas_strategy_of(cfg->strategy);
    char names[256];
    DP_CHECK(st, "--strategy: %d is not a strategy", (int)cfg->strategy);
    DP_CHECK(n->layers >= 1 && n->layers <= 64, "--layers: %d is out of range [1, 64]", n->layers);
    DP_CHECK(n->channels >= 1 && n->channels <= 1024, "--channels: %d is out of range [1, 1024]", n->channels);
    DP_CHECK(!n->per_layer || n->layers <= DP_NAS_MAX_CELLS, "--cell-per-layer: %d layers (a genotype holds at most %d "
             "cells)", n->layers, DP_NAS_MAX_CELLS);
    DP_CHECK(!n->per_layer || cfg->select == 0, "--cell-per-layer: --select %s chooses a shared normal and reduction "
             "cell; a cell per layer is chosen by alpha's magnitude (--select alpha)", cfg->select == 1 ? "perturb" : "sample");
    DP_CHECK(n->recompute >= 0 && n->recompute <= 64, "--recompute: %d is out of range [0, 64]", n->recompute);
    DP_CHECK(n->partial_channels >= 0 && n->partial_channels <= 64, "--partial-channels: %d is out of range [1, 64]",
             n->partial_channels);
    DP_CHECK(n->partial_channels <= 1 || n->channels % (2 * n->partial_channels) == 0,
             "--partial-channels %d needs --channels divisible by %d (C/K even, FactorizedReduce halves it); %d is not",
             n->partial_channels, 2 * n->partial_channels, n->channels);
    DP_CHECK(n->nops >= 1 && n->nops <= DP_NAS_NUM_OPS, "--ops: %d primitives (need 1..%d)", n->nops, DP_NAS_NUM_OPS);
    int non_none = 0;
    for (int k = 0; k < n->nops; k++) non_none += n->ops[k] != DP_NAS_NONE;
    DP_CHECK(non_none >= 1, "--ops: the set needs at least one primitive other than none");
    dp_status rc = dp_run_config_check(&cfg->run, 1);
    if (rc != DP_OK) return rc;
    DP_CHECK(cfg->eval_limit >= 0, "--eval-limit: %ld is negative", cfg->eval_limit);
    POS(cfg->w_lr, "--lr");
    DP_CHECK(isfinite(cfg->w_min_lr) && cfg->w_min_lr >= 0 && cfg->w_min_lr <= cfg->w_lr,
             "--min-lr: %g is out of range [0, lr=%g]", cfg->w_min_lr, cfg->w_lr);
    DP_CHECK(cfg->w_schedule == DP_SCHED_COSINE || cfg->w_schedule == DP_SCHED_COSPOW,
             "--schedule %s: the search anneals its weights' lr with cosine or cospow",
             dp_schedule_kind_name(cfg->w_schedule));
    DP_CHECK(isfinite(cfg->w_lr_power) && cfg->w_lr_power > 1 && cfg->w_lr_power <= 1e6,
             "--lr-power: %g must be in (1, 1e6] (1 is --schedule cosine)", cfg->w_lr_power);
    DP_CHECK(cfg->w_momentum >= 0 && cfg->w_momentum < 1, "--momentum: %g is out of range [0, 1)", cfg->w_momentum);
    NONNEG(cfg->w_wd, "--weight-decay");
    NONNEG(cfg->w_clip, "--clip");
    POS(cfg->a_lr, "--arch-lr");
    DP_CHECK(cfg->a_beta1 >= 0 && cfg->a_beta1 < 1, "--arch-beta1: %g is out of range [0, 1)", cfg->a_beta1);
    DP_CHECK(cfg->a_beta2 >= 0 && cfg->a_beta2 < 1, "--arch-beta2: %g is out of range [0, 1)", cfg->a_beta2);
    NONNEG(cfg->a_wd, "--arch-weight-decay");
    NONNEG(cfg->a_clip, "--arch-clip");
    NONNEG(cfg->t_start, "--t-start");
    NONNEG(cfg->t_end, "--t-end");
    NONNEG(cfg->cost_weight, "--cost-weight");
    DP_CHECK(isfinite(cfg->flops_budget) && cfg->flops_budget >= 0, "--flops-budget: %g must be >= 0 (MFLOPs)",
             cfg->flops_budget);
    DP_CHECK(!cfg->flops_budget || (st->flags & NAS_FLAG_FLOPS_BUDGET), "--flops-budget is a bound of --strategy %s",
             nas_strategy_list(NAS_FLAG_FLOPS_BUDGET, 1, names, sizeof names));
    DP_CHECK(!cfg->unrolled || (st->flags & NAS_FLAG_UNROLLED), "--unrolled needs a bilevel strategy (not %s)",
             nas_strategy_list(NAS_FLAG_UNROLLED, 0, names, sizeof names));
    DP_CHECK(cfg->prune_every >= 1, "--prune-every: %d must be >= 1", cfg->prune_every);
    DP_CHECK(cfg->warmup_epochs >= 0, "--warmup-epochs: %d is negative", cfg->warmup_epochs);
    DP_CHECK(cfg->arch_warmup >= 0 && cfg->arch_warmup < cfg->run.epochs, "--arch-warmup: %d must be in [0, epochs=%d)",
             cfg->arch_warmup, cfg->run.epochs);
    DP_CHECK(cfg->skip_warn >= 1 && cfg->skip_warn <= 8, "--skip-warn: %d is out of range [1, 8]", cfg->skip_warn);
    DP_CHECK(cfg->stop_after >= 0 && cfg->stop_after <= cfg->run.epochs,
             "--stop-after: %d is out of range [1, epochs=%d]", cfg->stop_after, cfg->run.epochs);
    DP_CHECK(cfg->run.out[0] || !cfg->stop_after, "--stop-after needs --out DIR (the checkpoint is <out>/search.dpc)");
    DP_CHECK(cfg->select >= 0 && cfg->select <= 2, "--select: %d is not alpha, perturb or sample", cfg->select);
    DP_CHECK(cfg->select_samples >= 0 && cfg->select_samples <= 1000000,
             "--select-samples: %d is out of range [0, 1000000]", cfg->select_samples);
    DP_CHECK(!cfg->select_candidates[0] || cfg->select == 2,
             "--select-candidates ranks cells with --select sample (this run selects by %s)",
             cfg->select == 1 ? "perturb" : "alpha");
    DP_CHECK(cfg->select_batches >= 1 && cfg->select_batches <= 1000000, "--select-batches: %d is out of range [1, 1000000]",
             cfg->select_batches);
    DP_CHECK(cfg->select_tune >= 0 && cfg->select_tune <= 1000000, "--select-tune: %d is out of range [0, 1000000]",
             cfg->select_tune);
    DP_CHECK(cfg->run.out[0] || !cfg->reselect, "--reselect needs --out DIR (the finished search's directory)");
    DP_CHECK(!cfg->reselect || !cfg->run.resume, "--reselect and --resume: choose one (--reselect searches nothing)");
    DP_CHECK(cfg->retrain_layers >= 1 && cfg->retrain_layers <= 1000, "--retrain-layers: %d is out of range [1, 1000]",
             cfg->retrain_layers);
    DP_CHECK(cfg->retrain_channels >= 1 && cfg->retrain_channels <= 4096,
             "--retrain-channels: %d is out of range [1, 4096]", cfg->retrain_channels);
    DP_CHECK(cfg->free_warn >= 1 && cfg->free_warn <= 8, "--free-warn: %d is out of range [1, 8]", cfg->free_warn);
    /* the levers: each off at its default */
    DP_CHECK(cfg->stop_stable >= 0 && cfg->stop_stable <= 100000, "--stop-stable: %d is out of range [1, 100000]",
             cfg->stop_stable);
    DP_CHECK(!cfg->stop_stable || cfg->arch_warmup + cfg->stop_stable < cfg->run.epochs,
             "--stop-stable %d: the earliest stop is after epoch %d (--arch-warmup %d + %d epochs of an unchanged "
             "cell), not before the last of --epochs %d: it could never end the search early",
             cfg->stop_stable, cfg->arch_warmup + cfg->stop_stable, cfg->arch_warmup, cfg->stop_stable,
             cfg->run.epochs);
    DP_CHECK(cfg->stop_free >= 0 && cfg->stop_free <= 8, "--stop-free: %d is out of range [1, 8] (the normal cell "
             "has 8 ops)", cfg->stop_free);
    DP_CHECK(!cfg->stop_free || !st->finish, "--stop-free keeps the cell of the epoch before the stop; --strategy %s "
             "chooses its cell by a final pruning: use --free-warn to be told instead", st->name);
    NONNEG(cfg->self_distill, "--self-distill");
    POS(cfg->distill_temp, "--distill-temp");
    DP_CHECK(cfg->distill_voters >= 1 && cfg->distill_voters <= 16, "--distill-voters: %d is out of range [1, 16]",
             cfg->distill_voters);
    DP_CHECK(cfg->self_distill > 0 || (cfg->distill_temp == 1.0f && cfg->distill_voters == 1),
             "--distill-temp / --distill-voters shape the self-distillation term: give --self-distill LAMBDA > 0 "
             "too (it is off)");
    return DP_OK;
}

int dp_search_config_format(const dp_search_config *cfg, char *buf, size_t n)
{
    const dp_supernet_config *s = &cfg->net;
    char codec[64];
    dp_compress_name(&cfg->run.codec, codec, sizeof codec);
    int len = snprintf(buf, n,
                       "data=%s\nlayers=%d\nchannels=%d\nstem=%d\nin=%dx%dx%d/%d\nstrategy=%s\nepochs=%d\nbatch=%d\n"
                       "eval_batch=%d\nlimit=%ld\neval_limit=%ld\nsampler=%d\nw=%g/%g/%g/%g/%g\na=%g/%g/%g/%g/%g\n"
                       "unrolled=%d\narch_warmup=%d\nt=%g/%g\ncost_weight=%g\ncost_table=%s\nflops_budget=%g\nprune=%d/%d\n"
                       "seed=%llu\nallreduce=%d\ncodec=%s/%d\nrecompute=%d\nops=",
                       cfg->run.data, s->layers, s->channels, s->stem_multiplier, s->in.c, s->in.h, s->in.w,
                       s->in.classes, dp_nas_strategy_name(cfg->strategy), cfg->run.epochs, cfg->run.batch,
                       cfg->run.eval_batch, cfg->run.limit, cfg->eval_limit, cfg->run.sampler, cfg->w_lr,
                       cfg->w_min_lr, cfg->w_momentum, cfg->w_wd, cfg->w_clip, cfg->a_lr, cfg->a_beta1, cfg->a_beta2, cfg->a_wd, cfg->a_clip, cfg->unrolled, cfg->arch_warmup,
                       cfg->t_start, cfg->t_end, cfg->cost_weight, cfg->cost_table, cfg->flops_budget,
                       cfg->prune_every, cfg->warmup_epochs, (unsigned long long)cfg->run.seed, (int)cfg->run.allreduce,
                       codec, cfg->run.codec.wire_zstd_level, s->recompute);
    for (int k = 0; k < s->nops && len > 0 && (size_t)len < n; k++)
        len += snprintf(buf + len, n - (size_t)len, "%s%s", k ? "," : "", dp_nas_op_name(s->ops[k]));
    if (len > 0 && (size_t)len < n) len += snprintf(buf + len, n - (size_t)len, "\n");
    /* last: a checkpoint written before these keys resumes (only the saved keys are compared) */
    if (len > 0 && (size_t)len < n)
        len += snprintf(buf + len, n - (size_t)len, "partial_channels=%d\nedge_norm=%d\n",
                        s->partial_channels > 1 ? s->partial_channels : 1, dp_supernet_edge_norm(s));
    /* only when on: the text (and every checkpoint) of a search without them is unchanged */
    if ((cfg->stop_stable || cfg->stop_free) && len > 0 && (size_t)len < n)
        len += snprintf(buf + len, n - (size_t)len, "stop=%d/%d\n", cfg->stop_stable, cfg->stop_free);
    if (cfg->w_schedule != DP_SCHED_COSINE && len > 0 && (size_t)len < n)
        len += snprintf(buf + len, n - (size_t)len, "schedule=%s/%g\n", dp_schedule_kind_name(cfg->w_schedule),
                        cfg->w_lr_power);
    if (cfg->self_distill > 0 && len > 0 && (size_t)len < n)
        len += snprintf(buf + len, n - (size_t)len, "distill=%g/%g/%d\n", cfg->self_distill, cfg->distill_temp,
                        cfg->distill_voters);
    if (s->per_layer && len > 0 && (size_t)len < n) len += snprintf(buf + len, n - (size_t)len, "per_layer=1\n");
    return len;
}

void dp_search_temperatures(const dp_search_config *cfg, float *t_start, float *t_end)
{
    /* the strategy's defaults: temperature 1 -> 0.05, gumbel (GDAS's tau) 10 -> 0.1, others 1 */
    const nas_strategy *st = nas_strategy_of(cfg->strategy);
    float s = st ? st->t_start : 1.0f, e = st ? st->t_end : 1.0f;
    *t_start = cfg->t_start > 0 ? cfg->t_start : s;
    *t_end = cfg->t_end > 0 ? cfg->t_end : e;
}

const char *dp_search_stop_name(int why)
{
    return why == DP_SEARCH_STOP_STABLE ? "stable" : why == DP_SEARCH_STOP_FREE ? "free" : "none";
}
