/* The state of one search, shared by the loop (search.c), its per-epoch
 * outputs (search_out.c) and the strategies' hooks (strategy.h). Private to
 * src/nas. */
#ifndef DP_NAS_SEARCH_RUN_H
#define DP_NAS_SEARCH_RUN_H

#include <stdio.h>

#include "dptrain/image_task.h"
#include "dptrain/search.h"
#include "dptrain/task.h"

#define NAS_MAX_ROWS (DP_NAS_MAX_CELLS * DP_NAS_EDGES) /* alpha rows at most: 14 per cell type */

struct nas_strategy;

/* Counters a checkpoint keeps besides the driver's position. */
typedef struct nas_ck_counts {
    int64_t last_prune, wopt_t, aopt_t;
} nas_ck_counts;

/* Early stopping's and self-distillation's counters (only with --stop-stable, --stop-free or --self-distill). */
typedef struct nas_ck_levers {
    int32_t streak;         /* epochs since alpha moves whose cell was the one before them */
    int32_t base_epoch;     /* base was derived after this many epochs (-1: not yet) */
    int32_t stop_epoch;     /* the epoch the search ended early after (0: it has not) */
    int32_t stop_reason;    /* dp_search_stop */
    int32_t kept_epoch;     /* the epoch whose cell is the result */
    int32_t snaps, snap_next; /* --self-distill: snapshots held, the slot the next one goes to */
    int32_t pad;
    dp_genotype base, kept; /* the cell the next epoch's is compared with; the result's */
} nas_ck_levers;

/* A rank's streams: the shufflers at the current epoch's start, the others as they are. */
typedef struct nas_ck_rng {
    dp_rng shuffle_t, shuffle_v, noise, dropout;
} nas_ck_rng;

typedef struct srch {
    const dp_search_config *cfg;
    dp_search_result *res;      /* filled as epochs end */
    dp_driver *d;               /* the loop driving this search: ranks and the weights' sync */
    dp_supernet_config net;
    const struct nas_strategy *strat; /* the table's record of cfg->strategy */
    dp_supernet *sn;
    int nops;
    int rows;                   /* alpha rows: 14 per cell type (normal, reduce; or one per layer) */
    dp_sync async;              /* alpha's */
    dp_image_set all;           /* this rank's images; tr and va alias its halves */
    dp_image_set tr, va;
    dp_sampler str, sva;
    dp_optimizer wopt, aopt;
    dp_schedule wsched;
    dp_ctx ctx;
    dp_rng shuffle_t, shuffle_v, noise; /* the shufflers at their epoch-start state */
    dp_rng after_t, after_v;    /* after this epoch's permutations */
    int alpha_on;               /* this step moves alpha */
    dp_image_batch b;
    float t_start, t_end, temp; /* temperature now */
    float *gumbel, *mask;       /* [rows * nops]: this pass's noise (gumbel); 1 = op alive (gold prunes) */
    double *flops;              /* [rows * nops] per-sample FLOPs of each (cell type, edge, op), all cells */
    float *cost;                /* [rows * nops] the penalty's cost: MFLOPs or ms */
    double fixed_mflops;        /* stem, preprocessing, head */
    float *wbak, *vbuf, *abuf;  /* unrolled: weights, d L_val / d w', d L_val / d alpha */
    long steps, vsteps;         /* per epoch: full global batches only (every rank has images for SyncBN) */
    long total_steps;
    FILE *alpha_csv, *gold_csv;
    long last_prune;
    nas_ck_rng ck_rng;          /* a checkpoint's copy of the streams */
    nas_ck_counts ck_counts;    /* and of the counters */
    int epoch0;                 /* epochs done before this session (--resume) */
    /* --select perturb and sample (search_select.c) */
    long sel_batches;           /* held-out global batches per evaluation */
    long tune_pos;              /* training batches the tuning has taken */
    FILE *sel_csv;              /* rank 0: perturb.csv or sample.jsonl */
    long reselect_step;         /* --reselect: the step the checkpoint was written at */
    /* --stop-stable, --stop-free, --self-distill (early_stop.c, distill.c) */
    nas_ck_levers lev;
    dp_supernet *teacher;       /* the snapshots are loaded into it for their forward; never stepped */
    float *snaps;               /* [voters][weights + alpha]: the supernet at the ends of recent epochs */
    float *soft;                /* [batch * classes]: the teachers' mean softmax(z / T) of this pass */
    int teacher_slot;           /* the snapshot the teacher holds (-1: none) */
    double kl_last, kl_bs;      /* the last pass's KL and images (0: no term) */
    double kl_sum, kl_seen;     /* this epoch's weight steps, this rank: KL x images, images */
} srch;

enum { /* the task's own checkpoint sections (docs/CHECKPOINT.md) */
    NAS_CK_ALPHA = DP_CK_TASK_FIRST, NAS_CK_AOPTIM, NAS_CK_RNG, NAS_CK_MASK, NAS_CK_ARES, NAS_CK_LEVERS,
    NAS_CK_TEACHERS,
};

/* search_out.c */
/*! Mixing weights of the current alpha as the strategy sees them (its
 *  host_row: softmax, at the current temperature for temperature; gold:
 *  sigmoid times mask), host-side. */
void nas_host_weights(const srch *s, float *w);
dp_status nas_outputs_open(srch *s);
/*! <out>/name for rank 0's rows: created, or appended to by a resumed search. */
dp_status nas_csv_open(const srch *s, const char *name, FILE **f);
void nas_outputs_close(srch *s);
/*! alpha.csv rows, genotype_epochN.json + genotype.json, skip warning. */
dp_status nas_epoch_outputs(srch *s, int epoch, dp_genotype *g, int *skips);
/*! normal.dot / reduction.dot, and PNGs when graphviz's dot is installed. */
void nas_draw_cells(srch *s, const dp_genotype *g);
/*! The index into the [rows * nops] tables of g's j-th chosen op of cell type t (0 normal, 1 reduce; or layer),
 *  or -1 when the op is none of this supernet's. */
int nas_chosen(const srch *s, const dp_genotype *g, int t, int j);
/*! MFLOPs of the derived network of g (cells from the FLOPs table, plus the fixed part). */
double nas_genotype_mflops(const srch *s, const dp_genotype *g);
/*! Derives the genotype of the current alpha. */
dp_status nas_derive(const srch *s, dp_genotype *g);

/*! The derived network of g at --retrain-layers x --retrain-channels: trainable parameters and forward
 *  MFLOPs per image (the counts dptrain train reports for it); -1 when it cannot be built. */
void nas_retrain_figures(const srch *s, const dp_genotype *g, double *params, double *mflops);
/*! Pools and skips among the normal cell's 8 ops (per layer: the most in one normal cell). */
int nas_param_free(const dp_genotype *g);
/*! alpha_normal.png / alpha_reduce.png from alpha.csv (gnuplot, when installed). */
void nas_plot_alpha(srch *s);

/* search_select.c */
/*! --select perturb: perturbation-based selection on the held-out half into g (collective). */
dp_status nas_select_perturb_run(srch *s, dp_genotype *g);
/*! --select sample: alpha's cell (g in) and --select-samples random cells ranked through the supernet on the
 *  held-out half; the best into g (collective). */
dp_status nas_select_sample_run(srch *s, dp_genotype *g);
/*! --reselect: weights, statistics, alpha, mask and counters from <out>/search.dpc (collective). */
dp_status nas_reselect_load(srch *s);

/* Optimizer steps taken (the driver's count). */
static inline long nas_step(const srch *s) { return (long)s->d->st.step; }

/* search.c */
/*! Gradients of one search step at sampler step i: alpha's step (bilevel:
 *  taken here, before the weights' pass) and the weights' gradients; stats
 *  (DP_NSTATS) this rank's. */
dp_status nas_search_step(srch *s, long i, double *stats);
/*! The rest of the step once it is known finite: one-level alpha, then the weights. */
void nas_search_update(srch *s);
dp_status nas_evaluate(srch *s, long limit, double *loss, double *acc);

/* early_stop.c */
/*! Whether s keeps the levers' section (any of --stop-stable, --stop-free, --self-distill). */
int nas_levers_on(const dp_search_config *cfg);
/*! At the start of a search (not a resumed one): the cell of the initial alpha, the first compared with. */
dp_status nas_stop_start(srch *s);
/*! At the end of epoch `epoch` (0-based), with its cell g agreed by the ranks: the rules; on a stop sets
 *  s->d->finish_early, prints and logs why. */
void nas_stop_check(srch *s, int epoch, const dp_genotype *g);
/*! --resume: the levers' counters checked against the run; a search that ended early is not resumed. */
dp_status nas_levers_restored(srch *s);

/* distill.c */
/*! --self-distill: the teacher supernet and the preallocated snapshots and targets. */
dp_status nas_distill_setup(srch *s);
void nas_distill_free(srch *s);
/*! The teachers' mean softmax(z / T) of this pass's input into s->soft (*soft = s->soft), or *soft = NULL
 *  before the first snapshot. Runs the teachers' forwards without the tape (collective: synchronised
 *  batch-norm), their activations given back to the arena. */
dp_status nas_distill_targets(srch *s, dp_tensor *in, long bs, const float **soft);
/*! The end of an epoch: this epoch's mean KL over the ranks into s->res, and the supernet as the newest
 *  snapshot (collective). */
dp_status nas_distill_epoch_end(srch *s);

#endif
