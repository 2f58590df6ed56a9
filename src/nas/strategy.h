/* The search strategies as a table: everything that differs between darts,
 * temperature, gumbel and gold, in one record per strategy. Each strategy is
 * one file (strategy_darts.c, strategy_temperature.c, strategy_gumbel.c,
 * gold.c) defining its record; strategy.c lists them by dp_nas_strategy.
 * Adding a strategy: its enum value (supernet.h), its file, its table entry.
 * Nothing outside those files tests which strategy runs. Private to src/nas. */
#ifndef DP_NAS_STRATEGY_H
#define DP_NAS_STRATEGY_H

#include <stddef.h>

#include "dptrain/supernet.h"

struct srch; /* search_run.h */

/* flags a strategy accepts (others are refused by dp_search_config_check) */
enum {
    NAS_FLAG_UNROLLED = 1u << 0,     /* --unrolled: bilevel strategies */
    NAS_FLAG_FLOPS_BUDGET = 1u << 1, /* --flops-budget: a final pruning to a bound */
};

typedef struct nas_strategy {
    const char *name;      /* --strategy NAME, dp_nas_strategy_name */
    float t_start, t_end;  /* default ends of the temperature schedule (dp_search_temperatures) */
    int bilevel;           /* 1: an alpha step on a held-out batch, then a weight step;
                            * 0: one step of both on the training batch */
    int sampled;           /* the forward computes only ops of non-zero weight (one-hot samples) */
    unsigned flags;        /* NAS_FLAG_*: flags it accepts */

    /* T at progress p in [0, 1] of the search; NULL: T = 1 */
    float (*temperature)(float t_start, float t_end, double p);
    /* supernet forward: [14, nops] mixing weights of alpha rows `a` (on the
     * tape), `off` the rows' offset into m->gumbel / m->mask */
    dp_tensor *(*mix)(dp_ctx *c, const dp_nas_mix *m, dp_tensor *a, long off);
    /* host side (alpha.csv, derivation, pruning): one row of n weights from
     * alpha row a, its mask row and the current temperature */
    void (*host_row)(const float *a, const float *mask, float temp, int n, float *w);

    /* hooks into the search, NULL = nothing to do */
    void (*setup)(struct srch *s);                  /* after alpha, mask (all 1) and sn->mix are set */
    void (*before_pass)(struct srch *s);            /* before each training forward/backward */
    void (*before_eval)(struct srch *s);            /* before evaluating on the held-out half */
    dp_status (*open_outputs)(struct srch *s);      /* rank 0 with --out: extra files */
    dp_status (*after_step)(struct srch *s, int epoch); /* between steps */
    dp_status (*finish)(struct srch *s);            /* after the last epoch; the genotype is derived again */
} nas_strategy;

/*! The record of s, or NULL when s is no strategy. */
const nas_strategy *nas_strategy_of(dp_nas_strategy s);
/*! The names of the strategies whose flags have (has = 1) or lack (has = 0)
 *  `flag` (0: all), as "a, b or c", into buf. */
const char *nas_strategy_list(unsigned flag, int has, char *buf, size_t n);
/*! Host-side softmax of a row at temperature t (t = 1: exact softmax). */
void nas_softmax_row(const float *a, int n, float t, float *w);
/*! mix and host_row of a softmax at the current temperature (darts, temperature). */
dp_tensor *nas_softmax_mix(dp_ctx *c, const dp_nas_mix *m, dp_tensor *a, long off);
void nas_softmax_host_row(const float *a, const float *mask, float temp, int n, float *w);

#endif
