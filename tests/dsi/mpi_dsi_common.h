/* What mpi_dsi.c and mpi_dsi_idf.c share: the synthetic dataset's
 * preparation, the metric fractions, and the P x b against 1 x Pb training
 * pair their equivalence cases compare. A header of static functions, not a
 * .c of its own: CHECK and its counters (mpi_check.h) are per program file. */
#ifndef DP_TEST_MPI_DSI_COMMON_H
#define DP_TEST_MPI_DSI_COMMON_H

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "dptrain/dsi_train.h"
#include "mpi_check.h"

static inline double frac(const dp_dsi_metrics *m, double v) { return m->queries ? v / (double)m->queries : 0; }

/* |a - b| / |a| in the L2 norm */
static inline double rel_l2_diff(const float *a, const float *b, size_t n)
{
    double d = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        s += (double)a[i] * a[i];
    }
    return s > 0 ? sqrt(d / s) : sqrt(d);
}

/* Rank 0 writes tmp/queries.tsv with write_corpus and prepares it into data
 * (buckets 2^14, no indexing examples; `members` > 0: also a split for that
 * many members); every rank waits until the dataset is there. */
static inline void prepare_dataset(const char *tmp, const char *data, void (*write_corpus)(const char *path), int members)
{
    if (g_rank == 0) {
        char tsv[400];
        snprintf(tsv, sizeof tsv, "%s/queries.tsv", tmp);
        write_corpus(tsv);
        dp_dsi_prepare_config pc;
        dp_dsi_prepare_defaults(&pc);
        snprintf(pc.queries, sizeof pc.queries, "%s", tsv);
        snprintf(pc.out, sizeof pc.out, "%s", data);
        pc.tok.buckets = 1u << 14;
        pc.members[0] = members;
        pc.nmembers = members > 0;
        pc.index_examples = 0;
        if (dp_dsi_prepare(&pc, NULL) != DP_OK) {
            fprintf(stderr, "prepare: %s\n", dp_errmsg());
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
    }
    MPI_Barrier(MPI_COMM_WORLD); /* the dataset is there before any rank reads it */
}

/* c (batch b per rank) trained by one member over every rank into tmp/eq-p,
 * then on rank 0 alone with batch P b into tmp/eq-1; rank 0 loads both
 * member files into *p and *one. Returns 1 on rank 0 when both models came
 * back, else 0; the caller frees both members in any case (zeroed members free as nothing). */
static inline int train_p_and_one(const dp_dsi_train_config *c, const char *tmp, dp_dsi_member *p, dp_dsi_member *one)
{
    memset(p, 0, sizeof *p);
    memset(one, 0, sizeof *one);
    dp_dsi_train_config cp = *c;
    snprintf(cp.run.out, sizeof cp.run.out, "%s/eq-p", tmp);
    dp_dsi_train_result res;
    CHECK_OK(dp_dsi_train_member(&cp, g_size > 1 ? MPI_COMM_WORLD : MPI_COMM_NULL, 0, &res));
    if (g_rank != 0) return 0;
    dp_dsi_train_config c1 = cp;
    c1.run.batch = cp.run.batch * g_size;
    snprintf(c1.run.out, sizeof c1.run.out, "%s/eq-1", tmp);
    CHECK_OK(dp_dsi_train_member(&c1, MPI_COMM_NULL, 0, &res));
    char pa[600], pb[600];
    snprintf(pa, sizeof pa, "%s/member-0/model.dsi", cp.run.out);
    snprintf(pb, sizeof pb, "%s/member-0/model.dsi", c1.run.out);
    CHECK_OK(dp_dsi_member_load(pa, p));
    CHECK_OK(dp_dsi_member_load(pb, one));
    return p->model && one->model;
}

#endif
