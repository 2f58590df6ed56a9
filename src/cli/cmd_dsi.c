/* `dptrain dsi-train`, `dsi-query`, `dsi-eval`: flags -> the dsi room -> tables. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/flags.h"
#include "dptrain/dsi_eval.h"
#include "dptrain/dsi_train.h"

static const char train_usage[] =
    "usage: mpirun -np P dptrain dsi-train --data DIR [options]\n"
    "\n"
    "Trains a DSI model (query -> docid) per ensemble member. The P ranks form --members S\n"
    "member communicators of P/S ranks; member k trains data-parallel on DIR/m<S>/<k> (S = 1:\n"
    "DIR itself, the centralised model) and never talks to the other members. Each member's\n"
    "rank 0 writes OUT/member-<k>/model.dsi and metrics.jsonl. Prints one row per member:\n"
    "docs, queries, seconds, examples/s per rank, Hits@1 on training queries and Hits@1/10\n"
    "and MRR@10 on its own test queries.\n"
    "\n"
    "  --data DIR            dataset made by dsi-prepare (required)\n"
    "  --out DIR             run directory (default: none saved)\n"
    "  --members S           ensemble members (default 1; must divide P)\n"
    "  --docids KIND         atomic (default) | semantic (hierarchical k-means ids)\n"
    "  --kmeans-k K          semantic: clusters per level (default 10)\n"
    "  --leaf N              semantic: largest group given positional last digits (default 100)\n"
    "  --embed D             embedding width (default 128)   --hidden H  (default 256)\n"
    "  --layers N            encoder ReLU layers (default 2) --dropout P (default 0)\n"
    "  --embed-rows N        embedding table rows (default 262144); token id t reads row t % N, so\n"
    "                        data prepared with more --buckets keeps a finer vocabulary, same table\n"
    "  --epochs N            (default 10)  --batch B per rank (default 256)  --lr LR (Adam, 1e-3)\n"
    "  --weight-decay WD     Adam L2 on the dense parameters (default 0)\n"
    "  --index-ratio R       indexing examples per training query in each epoch (default 1)\n"
    "  --token-drop P        drop each input token with probability P in training (default 0)\n"
    "  --head-init KIND      atomic head: random (default) | prototypes (row d = the mean encoding\n"
    "                        of document d's training queries and indexing examples)\n"
    "  --head KIND           atomic head: dot (default, W h + b) | cosine (s cos(h, w_d): members'\n"
    "                        logits on one scale, for the ensemble's merge)\n"
    "  --head-scale S        cosine head: the fixed scale s (default 16)\n"
    "  --beams N             beams of the final evaluation (default 10)\n"
    "  --eval-limit N        evaluate at most N queries per split (default: all test, 10000 train)\n"
    "  --seed S              (default 1)\n"
    "  --watchdog SECONDS    a collective without progress this long: report every rank, abort (default 300, 0 = off)\n"
    "  --allreduce ring|mpi  --bucket-mb MB  --no-overlap  --threads N  --quiet  -h, --help\n";

enum {
    O_DATA = 256, O_OUT, O_MEMBERS, O_DOCIDS, O_KK, O_LEAF, O_EMBED, O_HIDDEN, O_LAYERS, O_DROPOUT, O_EPOCHS,
    O_BATCH, O_LR, O_WD, O_IRATIO, O_TDROP, O_BEAMS, O_ELIMIT, O_SEED, O_ALLREDUCE, O_BUCKET, O_NO_OVERLAP,
    O_THREADS, O_QUIET, O_RUN, O_MODELS, O_K, O_AGG, O_ONLY, O_TEST, O_LIMIT, O_BM25, O_K1, O_B, O_QUERIES,
    O_LATENCY, O_JSON, O_HEADINIT, O_WATCHDOG, O_HEAD, O_HEADSCALE, O_ABSTAIN, O_EROWS,
};

static const struct option train_opts[] = {
    {"data", 1, 0, O_DATA}, {"out", 1, 0, O_OUT}, {"members", 1, 0, O_MEMBERS}, {"docids", 1, 0, O_DOCIDS},
    {"kmeans-k", 1, 0, O_KK}, {"leaf", 1, 0, O_LEAF}, {"embed", 1, 0, O_EMBED}, {"hidden", 1, 0, O_HIDDEN},
    {"layers", 1, 0, O_LAYERS}, {"dropout", 1, 0, O_DROPOUT}, {"epochs", 1, 0, O_EPOCHS}, {"batch", 1, 0, O_BATCH},
    {"lr", 1, 0, O_LR}, {"weight-decay", 1, 0, O_WD}, {"index-ratio", 1, 0, O_IRATIO},
    {"token-drop", 1, 0, O_TDROP}, {"beams", 1, 0, O_BEAMS}, {"eval-limit", 1, 0, O_ELIMIT}, {"seed", 1, 0, O_SEED},
    {"allreduce", 1, 0, O_ALLREDUCE}, {"bucket-mb", 1, 0, O_BUCKET}, {"no-overlap", 0, 0, O_NO_OVERLAP},
    {"threads", 1, 0, O_THREADS}, {"quiet", 0, 0, O_QUIET}, {"head-init", 1, 0, O_HEADINIT}, {"watchdog", 1, 0, O_WATCHDOG},
    {"head", 1, 0, O_HEAD}, {"head-scale", 1, 0, O_HEADSCALE}, {"embed-rows", 1, 0, O_EROWS}, {"help", 0, 0, 'h'},
    {0, 0, 0, 0},
};

static dp_status unknown(const char *cmd, char **argv)
{
    return dp_errorf(DP_ERR_ARG, "unknown or incomplete flag '%s' (see dptrain %s --help)", argv[optind - 1], cmd);
}

static dp_status parse_train(int argc, char **argv, dp_dsi_train_config *c, int *help)
{
    dp_status rc = DP_OK;
    long l;
    int ch;
    optind = 1;
    opterr = 0;
    while (rc == DP_OK && (ch = getopt_long(argc, argv, "h", train_opts, NULL)) != -1) {
        const char *a = optarg;
        switch (ch) {
        case O_DATA: rc = dp_flag_str("--data", a, c->data, sizeof c->data); break;
        case O_OUT: rc = dp_flag_str("--out", a, c->out, sizeof c->out); break;
        case O_MEMBERS: rc = dp_flag_int("--members", a, 1, 1024, &c->members); break;
        case O_DOCIDS:
            if (!strcmp(a, "atomic")) c->docids = DP_DSI_ATOMIC;
            else if (!strcmp(a, "semantic")) c->docids = DP_DSI_SEMANTIC;
            else rc = dp_errorf(DP_ERR_ARG, "--docids '%s': expected atomic or semantic", a);
            break;
        case O_KK: rc = dp_flag_int("--kmeans-k", a, 2, 1000, &c->kmeans_k); break;
        case O_LEAF: rc = dp_flag_int("--leaf", a, 1, 65535, &c->leaf); break;
        case O_EMBED: rc = dp_flag_int("--embed", a, 1, 4096, &c->model.embed); break;
        case O_HIDDEN: rc = dp_flag_int("--hidden", a, 1, 16384, &c->model.hidden); break;
        case O_LAYERS: rc = dp_flag_int("--layers", a, 0, 8, &c->model.layers); break;
        case O_DROPOUT: rc = dp_flag_float("--dropout", a, 0, 0.99, &c->model.dropout); break;
        case O_EPOCHS: rc = dp_flag_int("--epochs", a, 0, 100000, &c->epochs); break;
        case O_BATCH: rc = dp_flag_int("--batch", a, 1, 65536, &c->batch); break;
        case O_LR: rc = dp_flag_float("--lr", a, 1e-9, 9.99, &c->lr); break;
        case O_WD: rc = dp_flag_float("--weight-decay", a, 0, 0.99, &c->weight_decay); break;
        case O_IRATIO: rc = dp_flag_float("--index-ratio", a, 0, 100, &c->index_ratio); break;
        case O_TDROP: rc = dp_flag_float("--token-drop", a, 0, 0.99, &c->token_drop); break;
        case O_HEADINIT:
            if (!strcmp(a, "random")) c->head_init = 0;
            else if (!strcmp(a, "prototypes")) c->head_init = 1;
            else rc = dp_errorf(DP_ERR_ARG, "--head-init '%s': expected random or prototypes", a);
            break;
        case O_HEAD:
            if (!strcmp(a, "dot")) c->model.head = DP_DSI_HEAD_DOT;
            else if (!strcmp(a, "cosine")) c->model.head = DP_DSI_HEAD_COSINE;
            else rc = dp_errorf(DP_ERR_ARG, "--head '%s': expected dot or cosine", a);
            break;
        case O_HEADSCALE: rc = dp_flag_float("--head-scale", a, 1e-3, 1000, &c->model.head_scale); break;
        case O_EROWS:
            rc = dp_flag_long("--embed-rows", a, 1, 1L << 30, &l);
            c->model.buckets = (uint32_t)l;
            break;
        case O_BEAMS: rc = dp_flag_int("--beams", a, 1, 64, &c->eval_beams); break;
        case O_ELIMIT: rc = dp_flag_long("--eval-limit", a, 0, 1L << 40, &c->eval_limit); break;
        case O_SEED:
            rc = dp_flag_long("--seed", a, 0, 0x7fffffffffffffffL, &l);
            c->seed = (uint64_t)l;
            break;
        case O_ALLREDUCE: {
            int algo = 0;
            rc = dp_flag_allreduce(a, &algo);
            c->allreduce = (dp_allreduce_algo)algo;
            break;
        }
        case O_BUCKET: rc = dp_flag_float("--bucket-mb", a, 1e-6, 4096, &c->bucket_mb); break;
        case O_NO_OVERLAP: c->overlap = 0; break;
        case O_THREADS: rc = dp_flag_int("--threads", a, 1, 256, &c->threads); break;
        case O_WATCHDOG: rc = dp_flag_double("--watchdog", a, 0, 86400, &c->watchdog_s); break;
        case O_QUIET: c->quiet = 1; break;
        case 'h': *help = 1; return DP_OK;
        default: rc = unknown("dsi-train", argv);
        }
    }
    if (rc == DP_OK && optind < argc) rc = dp_errorf(DP_ERR_ARG, "unexpected argument '%s'", argv[optind]);
    return rc;
}

static double frac(const dp_dsi_metrics *m, double v) { return m->queries ? v / (double)m->queries : 0; }

int dp_cmd_dsi_train(int argc, char **argv, MPI_Comm comm)
{
    int rank = dp_cli_rank(comm), size = 1;
    if (comm != MPI_COMM_NULL) MPI_Comm_size(comm, &size);
    dp_dsi_train_config cfg;
    dp_dsi_train_defaults(&cfg);
    int help = 0;
    dp_status rc = parse_train(argc, argv, &cfg, &help);
    if (help) {
        fputs(train_usage, stdout);
        return 0;
    }
    if (rc == DP_OK) rc = dp_dsi_train_check(&cfg);
    if (rc == DP_OK && comm != MPI_COMM_NULL && size % cfg.members)
        rc = dp_errorf(DP_ERR_ARG, "--members %d does not divide the %d ranks", cfg.members, size);
    if (rc != DP_OK) {
        if (rank == 0) fprintf(stderr, "dptrain dsi-train: %s\n", dp_errmsg());
        return 2;
    }
    if (comm == MPI_COMM_NULL) return DP_CLI_FLAGS_OK;
    dp_dsi_train_result *res = calloc((size_t)cfg.members, sizeof *res);
    rc = res ? dp_dsi_train_run(&cfg, comm, res) : DP_ERR_NOMEM;
    if (rc != DP_OK) {
        if (rc != DP_ERR_MPI || rank == 0) fprintf(stderr, "dptrain dsi-train: error: %s\n", dp_errmsg());
        free(res);
        return 1;
    }
    if (rank == 0) {
        printf("member ranks docs train_q test_q epochs train_s q_per_s_rank loss train_hits1 test_hits1 test_hits10 test_mrr10 params_mb\n");
        for (int k = 0; k < cfg.members; k++) {
            const dp_dsi_train_result *r = &res[k];
            printf("%d %d %d %ld %ld %d %.1f %.0f %.4f %.4f %.4f %.4f %.4f %.1f\n", r->member, r->ranks, r->ndocs,
                   r->train_queries, r->test_queries, r->epochs, r->train_s, r->queries_per_s, r->loss,
                   frac(&r->train_m, r->train_m.hits1), frac(&r->test_m, r->test_m.hits1),
                   frac(&r->test_m, r->test_m.hits10), frac(&r->test_m, r->test_m.mrr10), r->params_mb);
        }
    }
    free(res);
    return 0;
}

/* ------------------------------------------------------------ query / eval */

static const char query_usage[] =
    "usage: [mpirun -np P] dptrain dsi-query (--run DIR | --models A,B,..) [options]\n"
    "\n"
    "Answers queries with an ensemble of DSI members (members spread over the P ranks, beams\n"
    "gathered to rank 0): a query per line on stdin -> one line per result:\n"
    "  <query number> <rank> <docid> <score>\n"
    "  --run DIR             every DIR/member-<k>/model.dsi        --models LIST  checkpoint files\n"
    "  -k K                  results per query (default 10)        --beams N (default 5)\n"
    "  --agg confidence|vote|joint  De-DSI's summed softmax of each member's beam scores (default),\n"
    "                        one vote per member, or each member's own probabilities renormalised\n"
    "                        over every member's beams together\n"
    "  --only M              member M alone\n"
    "  --abstain ALPHA       a member may answer \"none of mine\" with probability 1 - c^ALPHA, c = the\n"
    "                        share of the query's tokens it saw in training (default 0: never)\n"
    "  --queries FILE        read queries from FILE instead of stdin, answered one at a time\n"
    "  --latency             print per-query latency p50/p99 (ms) to stderr at the end\n"
    "  --threads N           OpenBLAS threads (default 1)   -h, --help\n";

static const char eval_usage[] =
    "usage: [mpirun -np P] dptrain dsi-eval (--run DIR | --models A,B,.. | --bm25 DATA) --test TSV [options]\n"
    "\n"
    "Hits@1, Hits@5, Hits@10 and MRR@10 over the query<TAB>docid pairs of --test (duplicate pairs\n"
    "removed), for the confidence, vote and joint ensembles (or BM25 over DATA/train.tsv,\n"
    "each document = its training queries joined). One row per method; --json adds JSON lines.\n"
    "  --run DIR | --models LIST   member checkpoints (see dsi-query)\n"
    "  --only M              member M alone\n"
    "  --bm25 DATA           BM25 baseline instead of DSI   --k1 K1 (0.9)  --b B (0.4)\n"
    "  --agg NAME            one merge only (confidence, vote, joint: see dsi-query)\n"
    "  --abstain ALPHA       members may abstain (see dsi-query)\n"
    "  -k K (10)  --beams N (default 10)  --limit N  first N test pairs  --threads N  --json  -h\n";

static const struct option q_opts[] = {
    {"run", 1, 0, O_RUN}, {"models", 1, 0, O_MODELS}, {"beams", 1, 0, O_BEAMS}, {"agg", 1, 0, O_AGG},
    {"only", 1, 0, O_ONLY}, {"test", 1, 0, O_TEST}, {"limit", 1, 0, O_LIMIT}, {"bm25", 1, 0, O_BM25},
    {"k1", 1, 0, O_K1}, {"b", 1, 0, O_B}, {"queries", 1, 0, O_QUERIES}, {"latency", 0, 0, O_LATENCY},
    {"threads", 1, 0, O_THREADS}, {"json", 0, 0, O_JSON}, {"abstain", 1, 0, O_ABSTAIN}, {"help", 0, 0, 'h'},
    {0, 0, 0, 0},
};

/* The flags of dsi-query and dsi-eval: the room's request plus what only the command uses. */
typedef struct qflags {
    dp_dsi_eval_config ask;
    char test[512], bm25[512], queries[512];
    int latency, json;
} qflags;

static dp_status parse_q(const char *cmd, int argc, char **argv, qflags *f, int *help)
{
    dp_dsi_eval_config *c = &f->ask;
    dp_status rc = DP_OK;
    int ch;
    optind = 1;
    opterr = 0;
    while (rc == DP_OK && (ch = getopt_long(argc, argv, "hk:", q_opts, NULL)) != -1) {
        const char *a = optarg;
        switch (ch) {
        case O_RUN: rc = dp_flag_str("--run", a, c->run, sizeof c->run); break;
        case O_MODELS: rc = dp_flag_str("--models", a, c->models, sizeof c->models); break;
        case 'k': rc = dp_flag_int("-k", a, 1, 1000, &c->k); break;
        case O_BEAMS: rc = dp_flag_int("--beams", a, 1, 64, &c->beams); break;
        case O_AGG:
            if (!strcmp(a, "confidence")) c->agg = DP_DSI_AGG_CONFIDENCE;
            else if (!strcmp(a, "vote")) c->agg = DP_DSI_AGG_VOTE;
            else if (!strcmp(a, "joint")) c->agg = DP_DSI_AGG_JOINT;
            else rc = dp_errorf(DP_ERR_ARG, "--agg '%s': expected confidence, vote or joint", a);
            break;
        case O_ONLY: rc = dp_flag_int("--only", a, 0, 4095, &c->only); break;
        case O_TEST: rc = dp_flag_str("--test", a, f->test, sizeof f->test); break;
        case O_LIMIT: rc = dp_flag_long("--limit", a, 0, 1L << 40, &c->limit); break;
        case O_BM25: rc = dp_flag_str("--bm25", a, f->bm25, sizeof f->bm25); break;
        case O_K1: rc = dp_flag_float("--k1", a, 0, 100, &c->k1); break;
        case O_B: rc = dp_flag_float("--b", a, 0, 1, &c->b); break;
        case O_QUERIES: rc = dp_flag_str("--queries", a, f->queries, sizeof f->queries); break;
        case O_LATENCY: f->latency = 1; break;
        case O_THREADS: rc = dp_flag_int("--threads", a, 1, 256, &c->threads); break;
        case O_JSON: f->json = 1; break;
        case O_ABSTAIN: rc = dp_flag_float("--abstain", a, 0, 1000, &c->abstain); break;
        case 'h': *help = 1; return DP_OK;
        default: rc = unknown(cmd, argv);
        }
    }
    if (rc == DP_OK && optind < argc) rc = dp_errorf(DP_ERR_ARG, "unexpected argument '%s'", argv[optind]);
    if (rc == DP_OK && !*help && !f->bm25[0] && !c->run[0] == !c->models[0])
        rc = dp_errorf(DP_ERR_ARG, "give exactly one of --run DIR and --models LIST");
    return rc;
}

/* One result line per document of a query's answer. */
static void print_answer(void *ctx, long query, const int32_t *docs, const float *scores, int k)
{
    const dp_dsi_ensemble *e = ctx;
    for (int i = 0; i < k && docs[i] >= 0; i++)
        printf("%ld\t%d\t%s\t%.6f\n", query, i + 1, dp_dsi_ensemble_doc_name(e, docs[i]), scores[i]);
    fflush(stdout);
}

int dp_cmd_dsi_query(int argc, char **argv, MPI_Comm comm)
{
    int rank = dp_cli_rank(comm);
    qflags f = {.latency = 0};
    dp_dsi_eval_defaults(&f.ask);
    f.ask.beams = 5;
    int help = 0;
    dp_status rc = parse_q("dsi-query", argc, argv, &f, &help);
    if (help) {
        fputs(query_usage, stdout);
        return 0;
    }
    if (rc != DP_OK) {
        if (rank == 0) fprintf(stderr, "dptrain dsi-query: %s\n", dp_errmsg());
        return 2;
    }
    if (comm == MPI_COMM_NULL) return DP_CLI_FLAGS_OK;
    dp_dsi_ensemble *e = NULL;
    rc = dp_dsi_ensemble_open(&f.ask, comm, &e);
    dp_dsi_serve_stats st;
    if (rc == DP_OK) rc = dp_dsi_serve(e, f.queries, &f.ask, print_answer, e, &st);
    if (rc != DP_OK && (rank == 0 || rc != DP_ERR_MPI)) fprintf(stderr, "dptrain dsi-query: error: %s\n", dp_errmsg());
    if (rc == DP_OK && rank == 0 && f.latency)
        fprintf(stderr, "latency: queries=%ld members=%d beams=%d p50_ms=%.3f p99_ms=%.3f\n", st.queries,
                dp_dsi_ensemble_members(e), f.ask.beams, st.p50_ms, st.p99_ms);
    dp_dsi_ensemble_free(e);
    return rc == DP_OK ? 0 : 1;
}

static void print_header(void)
{
    printf("%-12s %8s %7s %7s %7s %7s %9s\n", "method", "queries", "hits1", "hits5", "hits10", "mrr10", "seconds");
}

static void print_row(const qflags *f, const dp_dsi_eval_row *r)
{
    const dp_dsi_metrics *m = &r->m;
    double q = m->queries ? (double)m->queries : 1;
    printf("%-12s %8ld %7.4f %7.4f %7.4f %7.4f %9.1f\n", r->method, m->queries, m->hits1 / q, m->hits5 / q,
           m->hits10 / q, m->mrr10 / q, r->seconds);
    if (f->json)
        printf("{\"method\":\"%s\",\"queries\":%ld,\"hits1\":%.6f,\"hits5\":%.6f,\"hits10\":%.6f,\"mrr10\":%.6f,"
               "\"seconds\":%.3f}\n",
               r->method, m->queries, m->hits1 / q, m->hits5 / q, m->hits10 / q, m->mrr10 / q, r->seconds);
}

int dp_cmd_dsi_eval(int argc, char **argv, MPI_Comm comm)
{
    int rank = dp_cli_rank(comm);
    qflags f = {.latency = 0};
    dp_dsi_eval_defaults(&f.ask);
    int help = 0;
    dp_status rc = parse_q("dsi-eval", argc, argv, &f, &help);
    if (help) {
        fputs(eval_usage, stdout);
        return 0;
    }
    if (rc == DP_OK && !f.test[0]) rc = dp_errorf(DP_ERR_ARG, "--test TSV is required");
    if (rc != DP_OK) {
        if (rank == 0) fprintf(stderr, "dptrain dsi-eval: %s\n", dp_errmsg());
        return 2;
    }
    if (comm == MPI_COMM_NULL) return DP_CLI_FLAGS_OK;
    dp_dsi_pairs test = {0};
    rc = dp_dsi_pairs_load(f.test, 1, &test);
    dp_dsi_eval_row rows[DP_DSI_EVAL_ROWS];
    int nrows = 0;
    if (rc == DP_OK && f.bm25[0]) {
        if (rank == 0) { /* one process: the baseline needs no ranks */
            print_header();
            rc = dp_dsi_eval_bm25(f.bm25, &test, &f.ask, &rows[0]);
            if (rc == DP_OK) print_row(&f, &rows[0]);
        }
        if (rc != DP_OK) fprintf(stderr, "dptrain dsi-eval: error: %s\n", dp_errmsg());
        dp_dsi_pairs_free(&test);
        return rc == DP_OK ? 0 : 1;
    }
    dp_dsi_ensemble *e = NULL;
    if (rc == DP_OK) rc = dp_dsi_ensemble_open(&f.ask, comm, &e);
    if (rc == DP_OK) rc = dp_dsi_eval_ensemble(e, &test, &f.ask, rows, &nrows);
    if (rc == DP_OK && rank == 0) {
        print_header();
        for (int a = 0; a < nrows; a++) print_row(&f, &rows[a]);
    }
    if (rc != DP_OK && (rank == 0 || rc != DP_ERR_MPI)) fprintf(stderr, "dptrain dsi-eval: error: %s\n", dp_errmsg());
    dp_dsi_ensemble_free(e);
    dp_dsi_pairs_free(&test);
    return rc == DP_OK ? 0 : 1;
}
