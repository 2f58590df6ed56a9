/* Stragglers: each rank's compute and wait time per step (--rank-times).
 *
 * A synchronous step lasts as long as its slowest rank's compute; the others
 * wait in the allreduce. Every rank records, per step, its compute (the step's
 * time less the time blocked in collectives) and its wait, in a preallocated
 * buffer; the buffers go to rank 0 in one MPI_Gather when full, at an epoch's
 * end and at a stop (the ranks take the same steps, so they flush together),
 * never per step. Rank 0 counts which rank computed longest in each step,
 * writes an epoch summary (and with mode step, one record per step) to
 * metrics.jsonl, and prints the run's summary at the end, with what the
 * stragglers cost: per step, the slowest rank's compute less the median's
 * (the time the median rank waits on it). */
#ifndef DPTRAIN_RANK_TIMES_H
#define DPTRAIN_RANK_TIMES_H

#include <stdio.h>

#include "dptrain/report.h"
#include "dptrain/sync.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { DP_RANK_TIMES_OFF = 0, DP_RANK_TIMES_EPOCH = 1, DP_RANK_TIMES_STEP = 2 };

typedef struct dp_rank_times {
    int mode;            /* DP_RANK_TIMES_*: OFF records nothing */
    int rank, size;
    long n, cap;         /* steps held since the last flush; room */
    long first;          /* global step (from 1) of the first held */
    double *mine;        /* [cap][2]: compute, wait (seconds) */
    double *all;         /* rank 0: [size][cap][2] */
    char *line;          /* rank 0: one metrics record */
    size_t line_cap;
    long *slowest, *ep_slowest; /* rank 0: [size] steps in which the rank computed longest: run, epoch */
    double *sum, *ep_sum;       /* rank 0: [size][2] compute and wait: run, epoch */
    long steps, ep_steps;       /* rank 0: steps counted: run, epoch */
    double lost, ep_lost;       /* rank 0: sum over steps of the slowest compute less the median: what
                                   stragglers cost a synchronous job (run, epoch) */
    double *sorted;             /* rank 0: [size] one step's computes, sorted */
} dp_rank_times;

/*! Buffers for mode at this rank of size (nothing for OFF). DP_ERR_NOMEM if they do not fit. */
dp_status dp_rank_times_init(dp_rank_times *t, int mode, int rank, int size);
void dp_rank_times_free(dp_rank_times *t);

/*! This rank's times of global step `step`; true when the buffer is full and must be flushed now (every
 *  rank reaches it at the same step). */
static inline int dp_rank_times_record(dp_rank_times *t, long step, double compute_s, double wait_s)
{
    if (!t->mode) return 0;
    if (t->n == 0) t->first = step;
    t->mine[2 * t->n] = compute_s > 0 ? compute_s : 0;
    t->mine[2 * t->n + 1] = wait_s > 0 ? wait_s : 0;
    return ++t->n == t->cap;
}

/*! Collective: the held steps to rank 0, counted and (mode step) written as "ranks" records; with
 *  epoch_end, the epoch's "ranks_epoch" summary too. */
dp_status dp_rank_times_flush(dp_rank_times *t, dp_sync *s, dp_report *rep, unsigned epoch, int epoch_end);

/*! Rank 0: which ranks were slowest how often, with mean compute and wait per step, to f. */
void dp_rank_times_print(const dp_rank_times *t, FILE *f);

#ifdef __cplusplus
}
#endif
#endif
