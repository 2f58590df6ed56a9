/* Training DSI ensemble members, saving and loading them, and answering
 * queries with an ensemble (De-DSI).
 *
 *   world --MPI_Comm_split--> S member communicators of P/S ranks
 *   member k: its dataset dir -> docids (atomic | semantic) -> model ->
 *     steps: encoder + head on the tape; dense gradients through the ring in
 *     buckets (dp_sync), the embedding table's touched rows through
 *     dp_rows_allreduce, Adam on the dense buffer, lazy Adam on those rows
 *   -> out/member-<k>/model.dsi (+ docs.tsv, metrics.jsonl)
 *
 * Members never exchange a message while training: each one's collectives
 * run on its own communicator only (tests/mpi_dsi.c counts them). */
#ifndef DPTRAIN_DSI_TRAIN_H
#define DPTRAIN_DSI_TRAIN_H

#include <mpi.h>

#include "dptrain/comm.h"
#include "dptrain/dsi.h"
#include "dptrain/task.h"

#ifdef __cplusplus
extern "C" {
#endif

/* --lexical: auto is on where it can be (atomic docids, data tokenized with words, a text.tsv or train.tsv
 * to index), else off. */
typedef enum dp_dsi_lexical_mode { DP_DSI_LEXICAL_OFF = 0, DP_DSI_LEXICAL_ON = 1, DP_DSI_LEXICAL_AUTO = 2 } dp_dsi_lexical_mode;

typedef struct dp_dsi_train_config {
    dp_run_config run;       /* the shared options; data: with members S > 1, member k reads data/m<S>/<k>;
                                out: out/member-<k>/ per member ("" = save nothing) */
    int members;
    dp_dsi_model_config model;
    dp_dsi_docid_kind docids;
    int kmeans_k, leaf;      /* semantic ids: clusters per level, largest leaf group */
    float lr, weight_decay;  /* Adam; weight decay on the dense parameters only */
    float index_ratio;       /* indexing examples mixed in per training query (0 = none) */
    float token_drop;        /* each input token dropped with this probability in training */
    int head_init;           /* atomic: 1 = each head row starts as its document's mean query encoding */
    int lexical;             /* dp_dsi_lexical_mode: a lexical head beside the dense one, its posting weights starting
                                as BM25's (k1 0.9, b 0.4) over the member's indexed text (text.tsv, else train.tsv) */
    float lexical_lr_mult;   /* the lexical head's weights and scale learn at lr times this (0: BM25's kept) */
    float lexical_drop;      /* each word of a training example left out of the lexical head with this probability */
    int eval_beams;          /* beams for the end-of-training evaluation */
    long eval_limit;         /* evaluate on at most this many queries per split (0: every test query, 10000 training ones) */
} dp_dsi_train_config;

typedef struct dp_dsi_train_result {
    int member, ranks, ndocs, epochs;
    long train_queries, test_queries, steps;
    double train_s;          /* training steps only */
    double queries_per_s;    /* training examples per second per rank */
    double loss;             /* last epoch's mean loss */
    dp_dsi_metrics train_m;  /* on (at most eval_limit) training queries */
    dp_dsi_metrics test_m;   /* on the member's test queries */
    double params_mb;        /* model size: parameters in MiB */
} dp_dsi_train_result;

/*! The plain model the tests build on: dot head from a random init, 10 epochs,
 *  Adam 1e-3, batch 256, indexing examples at ratio 1. */
void dp_dsi_train_defaults(dp_dsi_train_config *cfg);
/*! dp_dsi_train_defaults plus what learns (dsi-train's defaults, measured in
 *  benchmarks/RESULTS.md §9 and §16): prototype head init, cosine head at scale 64, no
 *  dropout, the lexical head where it can be (auto) at scale 4 with half of a training example's words dropped. The cosine head needs atomic ids: with semantic ones set model.head
 *  to DP_DSI_HEAD_DOT (dsi-train's --head auto does). */
void dp_dsi_train_recipe(dp_dsi_train_config *cfg);
/*! DP_ERR_ARG naming the flag of the first out-of-range field, or naming both
 *  when cfg->members does not divide `ranks` (0: not known yet). */
dp_status dp_dsi_train_check(const dp_dsi_train_config *cfg, int ranks);

/*! Trains member `member` on the ranks of `comm` (MPI_COMM_NULL or one rank:
 *  alone). Every rank of comm returns the same status and result. */
dp_status dp_dsi_train_member(const dp_dsi_train_config *cfg, MPI_Comm comm, int member, dp_dsi_train_result *res);

/*! Splits `world` into cfg->members member communicators (ranks k P/S ..
 *  (k+1) P/S - 1 form member k; P % S != 0 is an error naming both) and trains
 *  every member. res[0 .. members) is filled on world rank 0. */
dp_status dp_dsi_train_run(const dp_dsi_train_config *cfg, MPI_Comm world, dp_dsi_train_result *res);

/* ------------------------------------------------------------ members */

typedef struct dp_dsi_member {
    char path[512];
    dp_dsi_model *model;
    dp_dsi_tok_config tok;
    char **names;            /* [model->ids.ndocs] docid strings */
} dp_dsi_member;

/*! Writes a member checkpoint atomically: model config, docids, parameters,
 *  tokenizer and docid names. */
dp_status dp_dsi_member_save(const char *path, const dp_dsi_model *m, const dp_dsi_tok_config *tok,
                             char *const *names, const char *config_text);
/*! Loads a member checkpoint, checking every size against the file. */
dp_status dp_dsi_member_load(const char *path, dp_dsi_member *out);
void dp_dsi_member_free(dp_dsi_member *mb);

/* ------------------------------------------------------------ ensembles */
/* dptrain/dsi_eval.h builds on these: opening a run's members, evaluation
 * on test pairs, the BM25 baseline and the query server. */

typedef struct dp_dsi_ensemble dp_dsi_ensemble;

/*! Loads member checkpoints paths[0 .. n) over the ranks of comm (member m
 *  on rank m % P; MPI_COMM_NULL: all here). Every rank learns every docid
 *  name (from each checkpoint's names section) to map members' documents to
 *  one global numbering. Collective over comm. */
dp_status dp_dsi_ensemble_load(const char *const *paths, int n, MPI_Comm comm, dp_dsi_ensemble **out);
/*! Number of members, and of distinct docids over all members. */
int dp_dsi_ensemble_members(const dp_dsi_ensemble *e);
int dp_dsi_ensemble_docs(const dp_dsi_ensemble *e);
/*! Global id of a docid string, or -1. */
int32_t dp_dsi_ensemble_doc_id(const dp_dsi_ensemble *e, const char *docid);
const char *dp_dsi_ensemble_doc_name(const dp_dsi_ensemble *e, int32_t id);

/*! Answers nq queries (collective: every rank passes the same queries; only
 *  rank 0's outputs are filled). Each member runs beam search with `beams`;
 *  `only` >= 0 restricts to that member alone. For each aggregation in
 *  how[0 .. nhow), out[a][q * k ..] and score[a][q * k ..] get the top k
 *  global ids (-1 padded). */
dp_status dp_dsi_ensemble_query(dp_dsi_ensemble *e, const char *const *queries, int nq, int beams, int only,
                                const dp_dsi_agg *how, int nhow, int k, int32_t **out, float **score);
/*! alpha > 0: every member may abstain, with probability 1 - coverage^alpha
 *  (coverage: the fraction of the query's tokens in the member's vocabulary);
 *  its documents' probabilities are scaled by coverage^alpha. 0 (the
 *  default): De-DSI's members, which always answer. */
void dp_dsi_ensemble_abstain(dp_dsi_ensemble *e, float alpha);
void dp_dsi_ensemble_free(dp_dsi_ensemble *e);

#ifdef __cplusplus
}
#endif
#endif
