/* Choosing the cell from a trained supernet without trusting alpha's
 * magnitude: perturbation-based selection (Wang et al. 2021, "Rethinking
 * Architecture Selection in Differentiable NAS").
 *
 * Magnitude selection keeps the op of largest alpha; in short searches that is
 * often a parameter-free pool, whose alpha grew while the convolutions were
 * still untrained. Perturbation selection asks the supernet instead:
 *   ops     edge by edge (random order, both cell types per round), remove
 *           each candidate op in turn and measure held-out accuracy; keep the
 *           op whose removal hurts most, and from then on the edge carries
 *           that op alone (weight 1);
 *   edges   node by node (random order), remove each incoming edge in turn;
 *           keep the two whose removal hurts most, drop the others;
 * with an optional fine-tuning of the supernet's weights between rounds (the
 * paper tunes a few epochs; here a number of steps chosen by the caller).
 * "Hurts most" is the lowest number of correct predictions; ties go to the
 * higher loss, then to the earlier column or edge.
 *
 * The algorithm is written against two callbacks (evaluate, tune), so that it
 * runs on any supernet and any data split; the search (src/nas) gives it the
 * held-out half, data-parallel, and tests give it hand-built supernets. */
#ifndef DPTRAIN_NAS_SELECT_H
#define DPTRAIN_NAS_SELECT_H

#include "dptrain/supernet.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How a search turns its supernet into a genotype. */
typedef enum dp_nas_select { DP_NAS_SELECT_ALPHA, DP_NAS_SELECT_PERTURB, DP_NAS_SELECT_SAMPLE } dp_nas_select;

const char *dp_nas_select_name(dp_nas_select s);
/*! "alpha", "perturb" or "sample"; DP_ERR_ARG names --select. */
dp_status dp_nas_select_parse(const char *name, dp_nas_select *out);

/*! Evaluates the supernet with mixing weights w [2 * 14 * nops] (normal rows,
 *  then reduce rows) where column k of a row is computed when alive[] != 0.
 *  v[0] = correct predictions, v[1] = examples, v[2] = loss sum; every rank
 *  of a data-parallel caller must get the same three numbers. */
typedef dp_status (*dp_nas_eval_fn)(void *user, const float *w, const float *alive, double *v);
/*! 1 when evaluation a is strictly better than b: more correct, then a lower loss (both selections' order). */
static inline int dp_nas_eval_better(const double *a, const double *b)
{
    return a[0] > b[0] || (a[0] == b[0] && a[2] < b[2]);
}
/*! Trains the supernet's weights a little with the current w and alive. */
typedef dp_status (*dp_nas_tune_fn)(void *user, const float *w, const float *alive);

/* One measurement, for the caller's log. */
typedef struct dp_nas_probe {
    int phase;      /* 0: op removed, 1: edge removed, -1: nothing removed (the supernet as handed over) */
    int cell;       /* 0 normal, 1 reduce */
    int edge;       /* 0..13 */
    int col;        /* the op column removed (phase 0), -1 otherwise */
    double v[3];    /* what eval returned */
    int kept;       /* 1 on the record of the choice: the op (phase 0) or the edge (phase 1) kept */
} dp_nas_probe;

typedef struct dp_nas_perturb {
    const int *ops;   /* ops[k] names column k */
    int nops;
    float *w;         /* [2 * 14 * nops] in: the search's mixing weights; out: chosen ops 1, the rest 0 */
    float *alive;     /* [2 * 14 * nops] in: 1 = op present (a pruning strategy's mask); out: the derived cells */
    uint64_t seed;    /* the order of edges and nodes */
    dp_nas_eval_fn eval;
    dp_nas_tune_fn tune; /* NULL: no tuning */
    void *user;
    void (*probe)(void *user, const dp_nas_probe *p); /* NULL: no log */
} dp_nas_perturb;

typedef struct dp_nas_perturb_stats {
    int evals;        /* eval calls */
    int tunes;        /* tune calls */
    double base_acc;  /* accuracy of the supernet as handed over */
} dp_nas_perturb_stats;

/*! Runs the selection; fills g (for each node the more important edge first).
 *  An edge with no op present (pruned whole) is never evaluated and is kept
 *  only when its node has fewer than two others. stats may be NULL. */
dp_status dp_nas_select_perturb(const dp_nas_perturb *p, dp_genotype *g, dp_nas_perturb_stats *stats);

/* One-shot selection among sampled cells: random search with weight sharing (Li and Talwalkar 2019), the
 * evaluation single-path one-shot NAS uses (Guo et al. 2020). Each candidate cell is the supernet with only
 * its ops on its edges, each at weight 1, measured on held-out data through the same eval callback; the cell
 * with the most correct predictions wins, ties to the lower loss, then to the earlier candidate. The first
 * candidate is the caller's (alpha's cell), then the `ngiven` cells of `given` (a user's candidates), then
 * `samples` uniformly random cells of the op set. */
typedef struct dp_nas_sample {
    const int *ops;             /* ops[k] names column k */
    int nops;
    const dp_genotype *first;   /* evaluated first; NULL: none */
    const dp_genotype *given;   /* then these ngiven cells (NULL when 0) */
    int ngiven;
    int samples;                /* then this many random cells (>= 0; at least one candidate in all) */
    uint64_t seed;              /* the random cells' stream: the same on every rank */
    float *w, *alive;           /* [2 * 14 * nops] scratch the evaluations are given */
    dp_nas_eval_fn eval;
    void *user;
    /* NULL: no log. index counts the candidates in the order above; best: 1 when g leads so far */
    void (*probe)(void *user, int index, const dp_genotype *g, const double *v, int best);
} dp_nas_sample;

typedef struct dp_nas_sample_stats {
    int evals;            /* candidates evaluated */
    int chosen;           /* the winner's index */
    double first_acc;     /* the first candidate's accuracy (`first`, else the first random cell) */
    double best_acc;      /* the winner's */
    int first_rank;       /* 1 + the candidates strictly better than the first */
} dp_nas_sample_stats;

/*! Runs the selection; fills g with the winner. stats may be NULL. */
dp_status dp_nas_select_sample(const dp_nas_sample *p, dp_genotype *g, dp_nas_sample_stats *stats);

/*! The mixing weights of genotype g alone: w 1 and alive 1 at its op on each of its edges, 0 elsewhere
 *  ([2 * 14 * nops], normal rows then reduce rows). DP_ERR_ARG names an op outside ops[] (or none). */
dp_status dp_nas_genotype_weights(const dp_genotype *g, const int *ops, int nops, float *w, float *alive);

/*! One evaluation batch of supernet sn in training mode without a tape (batch
 *  normalisation on the batch's statistics, as the supernet was trained and
 *  as Wang et al. evaluate: removing an op shifts the statistics the running
 *  averages were taken with), with mixing weights w and alive as above and
 *  labels y: adds correct, examples and loss sum to v. x lives in c's arena: the
 *  caller resets c before making it. */
dp_status dp_supernet_eval_weights(dp_supernet *sn, dp_ctx *c, dp_tensor *x, const int32_t *y, const float *w,
                                   const float *alive, double *v);

#ifdef __cplusplus
}
#endif
#endif
