/* `dptrain search`: DARTS-family architecture search on an image shard set,
 * data-parallel over the ranks of a communicator.
 *
 * The training split (after --limit) is cut in two halves: weights train on
 * the first, alpha on the second (the held-out half, as the reference's
 * train_portion 0.5). Each step, bilevel strategies take an alpha step on a
 * held-out batch (Adam), then a weight step on a training batch (SGD); gold
 * takes one step of both on the training batch. Both gradients are averaged
 * across ranks through the same allreduce and codec as `dptrain train`, so
 * every rank holds the same weights and the same alpha. */
#ifndef DPTRAIN_SEARCH_H
#define DPTRAIN_SEARCH_H

#include <mpi.h>

#include "dptrain/supernet.h"
#include "dptrain/train.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dp_search_config {
    dp_run_config run;     /* the shared options; out: alpha.csv, genotype*.json, metrics.jsonl, cells .dot/.png,
                              search.dpc; limit: first N training images, halved into train / held-out;
                              codec: ring codecs on both gradients, an after-backward compressor (top-k,
                              PowerSGD) on the weights only (alpha stays dense) */
    dp_supernet_config net;
    dp_nas_strategy strategy;
    long eval_limit;       /* evaluate on at most N held-out images per epoch (0 = all) */
    /* weights: SGD */
    float w_lr, w_min_lr, w_momentum, w_wd, w_clip;
    dp_sched_kind w_schedule; /* cosine (DARTS) or cospow (sharpDARTS) */
    float w_lr_power;         /* cospow: the exponent order */
    /* alpha: Adam */
    float a_lr, a_beta1, a_beta2, a_wd, a_clip;
    int unrolled;          /* second-order alpha gradient (finite-difference Hessian-vector product) */
    float t_start, t_end;  /* temperature: exponential T schedule; gumbel: linear tau schedule; 0: the
                              strategy's default (dp_search_temperatures) */
    float cost_weight;     /* lambda of the expected-cost penalty on the alpha objective (0 = off) */
    char cost_table[512];  /* latency table from --profile-ops ("" = FLOPs) */
    double flops_budget;   /* gold: hard bound on the derived network's MFLOPs (0 = none) */
    int prune_every;       /* gold: steps between pruning rounds */
    int warmup_epochs;     /* gold: epochs before the first pruning */
    int arch_warmup;       /* bilevel: epochs of weight steps only before alpha starts to move */
    int skip_warn;         /* warn when the normal cell has at least this many skip connections */
    int stop_after;        /* stop after this many epochs, checkpoint written (0 = never) */
    /* choosing the cell (dptrain/nas_select.h); none of these is part of the configuration a resume compares */
    int select;            /* dp_nas_select: alpha (magnitude, default), perturb or sample */
    int select_batches;    /* perturb, sample: held-out global batches per evaluation */
    int select_samples;    /* sample: random cells ranked beside alpha's */
    char select_candidates[512]; /* sample: a genotype file, or a directory whose *.json files are ranked too ("" = none) */
    int select_tune;       /* perturb: weight steps between decisions (0 = none) */
    int reselect;          /* choose again from <out>/search.dpc, no search (same flags as the search) */
    int retrain_layers, retrain_channels; /* the derived network's size for its reported parameters and FLOPs */
    int free_warn;         /* warn when the normal cell has at least this many parameter-free ops */
    /* early stopping (DARTS+), checked at each epoch end once alpha moves (after --arch-warmup); off at 0 */
    int stop_stable;       /* end the search once the derived cell has not changed for N epochs */
    int stop_free;         /* end it once the normal cell has >= K parameter-free ops; the cell kept is the
                              epoch before's (the last one under K) */
    /* SD-DARTS (Zhu et al. 2021): the training loss gains lambda T^2 KL(teacher || student) at temperature T,
     * the teacher being the supernet (weights and alpha) at the ends of the last V epochs, probabilities
     * averaged (voting); 0 = off */
    float self_distill;
    float distill_temp;
    int distill_voters;
} dp_search_config;

typedef struct dp_search_result {
    int epochs_done;
    int stopped_early;         /* stop_after: the checkpoint holds the rest */
    long steps;
    double train_loss, train_acc, val_loss, val_acc; /* last epoch */
    double train_images_per_s; /* weight-step images (all ranks) per second of search steps */
    double epoch_s;            /* mean seconds per epoch (steps only, evaluation excluded) */
    double peak_rss_mb;        /* largest over the ranks */
    double wall_s;
    double derived_mflops;     /* forward MFLOPs per image of the derived network's cells (cost table) */
    int skips;
    dp_genotype genotype;
    float alpha[DP_NAS_MAX_CELLS * DP_NAS_EDGES * (DP_NAS_NUM_OPS + 1)]; /* the final alpha (then beta with
                                                                            edge normalisation), nalpha floats */
    int nalpha;
    float *weights;            /* the final supernet weights (free with dp_search_result_free) */
    uint64_t params_hash;      /* XXH3-64 of the final weights, batch-norm statistics and alpha (replicas agree) */
    size_t nweights;
    dp_genotype genotype_alpha; /* magnitude selection's cell (genotype itself with --select alpha) */
    int param_free;            /* pools and skips among the normal cell's 8 ops */
    double retrain_params;     /* the derived network at retrain_layers x retrain_channels: parameters */
    double retrain_mflops;     /* and forward MFLOPs per image (dptrain train's count) */
    double select_s;           /* --select perturb: seconds, evaluations, the supernet's accuracy before;
                                * sample: seconds, evaluations, alpha's cell's accuracy */
    int select_evals;
    double select_base_acc;
    int early_stop;            /* dp_search_stop: why the search ended before --epochs (0: it did not) */
    int stop_epoch;            /* the epoch it ended after (0: none) */
    int kept_epoch;            /* the epoch whose cell the result is (--stop-free: the one before the stop) */
    double distill_kl;         /* --self-distill: the last epoch's mean KL(teacher || student) of the weight steps */
} dp_search_result;

/* Why a search ended early (dp_search_result.early_stop). */
typedef enum dp_search_stop { DP_SEARCH_STOP_NONE, DP_SEARCH_STOP_STABLE, DP_SEARCH_STOP_FREE } dp_search_stop;
/*! "none", "stable" (--stop-stable), "free" (--stop-free). */
const char *dp_search_stop_name(int why);

void dp_search_config_defaults(dp_search_config *cfg);
dp_status dp_search_config_check(const dp_search_config *cfg);
/*! The temperature schedule's ends: the flags, or the strategy's defaults
 *  (darts, gold: 1; temperature: 1 -> 0.05; gumbel: 10 -> 0.1). */
void dp_search_temperatures(const dp_search_config *cfg, float *t_start, float *t_end);
/*! key=value lines of every field (compared across ranks). */
int dp_search_config_format(const dp_search_config *cfg, char *buf, size_t n);
/*! Runs the search on the ranks of comm (MPI_COMM_NULL: alone). Every rank
 *  returns the same status and genotype. */
dp_status dp_search_run(const dp_search_config *cfg, MPI_Comm comm, dp_search_result *res);

void dp_search_result_free(dp_search_result *res);

/*! Times forward + backward of every primitive at every (C, H, W, stride)
 *  the supernet of cfg->net uses, batch cfg->batch, and writes the table
 *  (op C H W stride ms) to `path` atomically. */
dp_status dp_search_profile_ops(const dp_search_config *cfg, const char *path);
/*! Reads such a table; the returned cost function looks entries up (a
 *  missing entry is an error reported by dp_search_run). */
typedef struct dp_cost_table dp_cost_table;
dp_status dp_cost_table_load(const char *path, dp_cost_table **out);
double dp_cost_table_lookup(int op, int C, int H, int W, int stride, void *table);
void dp_cost_table_free(dp_cost_table *t);

#ifdef __cplusplus
}
#endif
#endif
