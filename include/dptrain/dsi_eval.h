/* Asking trained DSI ensembles: scoring them on test pairs, the BM25
 * baseline, and answering a stream of queries (what `dptrain dsi-eval` and
 * `dsi-query` run; src/dsi/evaluate.c).
 *
 *   --run DIR | --models A,B --dp_dsi_ensemble_open--> members over the ranks
 *   test pairs ---dp_dsi_eval_ensemble--> one row per merge (rank 0)
 *   DATA/train.tsv + test pairs --dp_dsi_eval_bm25--> one row (no MPI)
 *   query lines (rank 0's file or stdin) --dp_dsi_serve--> a callback per query (rank 0)
 *
 * Every function returning dp_status sets dp_errmsg() on failure. In the
 * collective calls a failure on one rank fails every rank; ranks that only
 * learn of another's failure return DP_ERR_MPI, so a caller that reports
 * DP_ERR_MPI on rank 0 only prints each message once. */
#ifndef DPTRAIN_DSI_EVAL_H
#define DPTRAIN_DSI_EVAL_H

#include <mpi.h>
#include <stdint.h>

#include "dptrain/dsi.h"
#include "dptrain/dsi_train.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dp_dsi_eval_config {
    char run[512];      /* member checkpoints run/member-0/model.dsi, member-1, ... up to the first missing */
    char models[4096];  /* or these comma-separated checkpoint paths (used when run is "") */
    int k;              /* results per query, 1..1000 */
    int beams;          /* beam width inside each member, 1..64 */
    int only;           /* >= 0: member `only` alone; -1: every member */
    int agg;            /* a dp_dsi_agg: that merge alone; -1: every merge (dp_dsi_serve: confidence) */
    float abstain;      /* dp_dsi_ensemble_abstain's alpha (0: members always answer) */
    long limit;         /* evaluation: the first `limit` test pairs (0: all) */
    float k1, b;        /* BM25 */
    int threads;        /* OpenBLAS threads per rank */
} dp_dsi_eval_config;

/*! k 10, beams 10, only -1, agg -1, abstain 32 (as measured: benchmarks/RESULTS.md §9; with one member
 *  abstaining changes no ranking), limit 0, k1 0.9, b 0.4, threads 1, no checkpoints. */
void dp_dsi_eval_defaults(dp_dsi_eval_config *cfg);

/*! Sets the OpenBLAS threads, loads the members named by cfg->run or
 *  cfg->models over comm (dp_dsi_ensemble_load: collective) and applies
 *  cfg->abstain. *out is the caller's (dp_dsi_ensemble_free); NULL on failure.
 *  @return DP_OK, DP_ERR_IO (cfg->run holds no member-0/model.dsi; checked on
 *  every rank), or what dp_dsi_ensemble_load returns. */
dp_status dp_dsi_ensemble_open(const dp_dsi_eval_config *cfg, MPI_Comm comm, dp_dsi_ensemble **out);

enum { DP_DSI_EVAL_ROWS = 4 }; /* at most one row per merge */

/* One line of dsi-eval's table. */
typedef struct dp_dsi_eval_row {
    char method[64];    /* "confidence<S>", "vote<S>", "joint<S>" (S members), "member<M>", "bm25(<k1>,<b>)" */
    dp_dsi_metrics m;   /* sums over m.queries queries */
    double seconds;     /* wall time of the answers (BM25: index build included) */
} dp_dsi_eval_row;

/*! Answers the first min(limit, n) queries of `test` with the ensemble and
 *  scores each answer list against the pair's docid (a docid no member knows
 *  is a miss). Collective over the ensemble's communicator. One row per merge:
 *  confidence, vote and joint; cfg->agg >= 0 keeps that one, and cfg->only >= 0
 *  gives the single row "member<M>" (one member's ranking is the same under
 *  every merge). rows[0 .. *nrows) are filled on rank 0; *nrows = 0 elsewhere.
 *  @return DP_OK, DP_ERR_ARG (beams, only), DP_ERR_NOMEM, DP_ERR_MPI. */
dp_status dp_dsi_eval_ensemble(dp_dsi_ensemble *e, const dp_dsi_pairs *test, const dp_dsi_eval_config *cfg,
                               dp_dsi_eval_row rows[DP_DSI_EVAL_ROWS], int *nrows);

/*! The BM25 baseline on one process: an index over data_dir/train.tsv
 *  (document = its training queries joined, docids as named there) with
 *  cfg->k1 and cfg->b, the top cfg->k of each of the first min(limit, n)
 *  queries of `test` scored into *row.
 *  @return DP_OK, or dp_dsi_pairs_load's and dp_bm25_build's errors. */
dp_status dp_dsi_eval_bm25(const char *data_dir, const dp_dsi_pairs *test, const dp_dsi_eval_config *cfg,
                           dp_dsi_eval_row *row);

/*! Called on rank 0 for each answered query: query numbers start at 1 (in
 *  input order, empty lines included); docs[0 .. k) are global document ids
 *  (dp_dsi_ensemble_doc_name), best first, -1 after the last result, with
 *  their merged scores. The arrays are the server's, valid during the call. */
typedef void (*dp_dsi_answer_fn)(void *ctx, long query, const int32_t *docs, const float *scores, int k);

/*! Longest query line dp_dsi_serve takes, in bytes without its newline; a longer one is refused. */
#define DP_DSI_QUERY_MAX (1 << 20)

typedef struct dp_dsi_serve_stats {
    long queries;           /* answered */
    double p50_ms, p99_ms;  /* per-query latency quantiles on rank 0 (0 without queries) */
} dp_dsi_serve_stats;

/*! Answers queries one at a time with merge cfg->agg (confidence when -1):
 *  rank 0 reads whole lines ("\r\n" dropped) from the file `queries` (NULL
 *  or "": stdin) and broadcasts each to every rank of the ensemble's
 *  communicator, which answers it collectively; rank 0 then calls
 *  answer(ctx, ...). Ends at the end of the input or at the first error; a
 *  line over DP_DSI_QUERY_MAX bytes or holding a NUL byte is an error
 *  (DP_ERR_FORMAT naming the line), never split or cut.
 *  *st (may be NULL) is filled on rank 0.
 *  @return DP_OK; DP_ERR_IO "<file>: cannot open" on rank 0 (DP_ERR_MPI on
 *  the others); DP_ERR_NOMEM on a rank out of memory (DP_ERR_MPI on the
 *  others); or dp_dsi_ensemble_query's errors. */
dp_status dp_dsi_serve(dp_dsi_ensemble *e, const char *queries, const dp_dsi_eval_config *cfg,
                       dp_dsi_answer_fn answer, void *ctx, dp_dsi_serve_stats *st);

#ifdef __cplusplus
}
#endif
#endif
