/* `dptrain dsi-train`, `dsi-query`, `dsi-eval`: flags -> the dsi room -> tables. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/flags.h"
#include "cli/options.h"
#include "dptrain/dsi_eval.h"
#include "dptrain/dsi_train.h"

static const char train_header[] =
    "usage: mpirun -np P dptrain dsi-train --data DIR [options]\n"
    "\n"
    "Trains a DSI model (query -> docid) per ensemble member. The P ranks form --members S\n"
    "member communicators of P/S ranks; member k trains data-parallel on DIR/m<S>/<k> (S = 1:\n"
    "DIR itself, the centralised model) and never talks to the other members. Each member's\n"
    "rank 0 writes OUT/member-<k>/model.dsi and metrics.jsonl. Prints one row per member:\n"
    "docs, queries, seconds, examples/s per rank, Hits@1 on training queries and Hits@1/10\n"
    "and MRR@10 on its own test queries. --data is required.\n"
    "\n";

static dp_status parse_docids(const dp_cli_opt *o, const char *a, void *field)
{
    (void)o;
    if (!strcmp(a, "atomic")) *(dp_dsi_docid_kind *)field = DP_DSI_ATOMIC;
    else if (!strcmp(a, "semantic")) *(dp_dsi_docid_kind *)field = DP_DSI_SEMANTIC;
    else return dp_errorf(DP_ERR_ARG, "--docids '%s': expected atomic or semantic", a);
    return DP_OK;
}

static dp_status parse_head_init(const dp_cli_opt *o, const char *a, void *field)
{
    (void)o;
    if (!strcmp(a, "random")) *(int *)field = 0;
    else if (!strcmp(a, "prototypes")) *(int *)field = 1;
    else return dp_errorf(DP_ERR_ARG, "--head-init '%s': expected random or prototypes", a);
    return DP_OK;
}

static dp_status parse_head(const dp_cli_opt *o, const char *a, void *field)
{
    (void)o;
    if (!strcmp(a, "dot")) *(int *)field = (int)DP_DSI_HEAD_DOT;
    else if (!strcmp(a, "cosine")) *(int *)field = (int)DP_DSI_HEAD_COSINE;
    else return dp_errorf(DP_ERR_ARG, "--head '%s': expected dot or cosine", a);
    return DP_OK;
}

static dp_status parse_embed_rows(const dp_cli_opt *o, const char *a, void *field)
{
    long l = 0;
    dp_status rc = dp_flag_long("--embed-rows", a, (long)o->lo, (long)o->hi, &l);
    if (rc == DP_OK) *(uint32_t *)field = (uint32_t)l;
    return rc;
}

/* dsi-train's own flags */
static const dp_cli_opt o_members = {.name = "members", .arg = "S", .help = "ensemble members (must divide P)",
                                     .kind = DP_CLI_INT, .lo = 1, .hi = 1024, .show_default = 1};
static const dp_cli_opt o_docids = {.name = "docids", .arg = "KIND",
                                    .help = "atomic (default) | semantic (hierarchical k-means ids)",
                                    .kind = DP_CLI_CUSTOM, .parse = parse_docids};
static const dp_cli_opt o_kmeans_k = {.name = "kmeans-k", .arg = "K", .help = "semantic: clusters per level",
                                      .kind = DP_CLI_INT, .lo = 2, .hi = 1000, .show_default = 1};
static const dp_cli_opt o_leaf = {.name = "leaf", .arg = "N",
                                  .help = "semantic: largest group given positional last digits", .kind = DP_CLI_INT,
                                  .lo = 1, .hi = 65535, .show_default = 1};
static const dp_cli_opt o_embed = {.name = "embed", .arg = "D", .help = "embedding width", .kind = DP_CLI_INT, .lo = 1,
                                   .hi = 4096, .show_default = 1};
static const dp_cli_opt o_hidden = {.name = "hidden", .arg = "H", .help = "encoder width", .kind = DP_CLI_INT, .lo = 1,
                                    .hi = 16384, .show_default = 1};
static const dp_cli_opt o_layers = {.name = "layers", .arg = "N", .help = "encoder ReLU layers", .kind = DP_CLI_INT,
                                    .lo = 0, .hi = 8, .show_default = 1};
static const dp_cli_opt o_dropout = {.name = "dropout", .arg = "P", .help = "encoder dropout probability",
                                     .kind = DP_CLI_FLOAT, .lo = 0, .hi = 0.99, .show_default = 1};
static const dp_cli_opt o_embed_rows = {
    .name = "embed-rows", .arg = "N",
    .help = "embedding table rows (default 262144); token id t reads row t % N, so\n"
            "data prepared with more --buckets keeps a finer vocabulary, same table",
    .kind = DP_CLI_CUSTOM, .lo = 1, .hi = 1 << 30, .parse = parse_embed_rows};
static const dp_cli_opt o_epochs = {.name = "epochs", .arg = "N",
                                    .help = "passes over the training queries, 0 = evaluate the initial model only",
                                    .kind = DP_CLI_INT, .lo = 0, .hi = 100000, .show_default = 1};
static const dp_cli_opt o_lr = {.name = "lr", .arg = "LR", .help = "Adam learning rate", .kind = DP_CLI_FLOAT,
                                .lo = 1e-9, .hi = 9.99, .show_default = 1};
static const dp_cli_opt o_wd = {.name = "weight-decay", .arg = "WD", .help = "Adam L2 on the dense parameters",
                                .kind = DP_CLI_FLOAT, .lo = 0, .hi = 0.99, .show_default = 1};
static const dp_cli_opt o_index_ratio = {.name = "index-ratio", .arg = "R",
                                         .help = "indexing examples per training query in each epoch",
                                         .kind = DP_CLI_FLOAT, .lo = 0, .hi = 100, .show_default = 1};
static const dp_cli_opt o_token_drop = {.name = "token-drop", .arg = "P",
                                        .help = "drop each input token with probability P in training",
                                        .kind = DP_CLI_FLOAT, .lo = 0, .hi = 0.99, .show_default = 1};
static const dp_cli_opt o_head_init = {
    .name = "head-init", .arg = "KIND",
    .help = "atomic head: random (default) | prototypes (row d = the mean encoding\n"
            "of document d's training queries and indexing examples)",
    .kind = DP_CLI_CUSTOM, .parse = parse_head_init};
static const dp_cli_opt o_head = {
    .name = "head", .arg = "KIND",
    .help = "atomic head: dot (default, W h + b) | cosine (s cos(h, w_d): members'\n"
            "logits on one scale, for the ensemble's merge)",
    .kind = DP_CLI_CUSTOM, .parse = parse_head};
static const dp_cli_opt o_head_scale = {.name = "head-scale", .arg = "S", .help = "cosine head: the fixed scale s",
                                        .kind = DP_CLI_FLOAT, .lo = 1e-3, .hi = 1000, .show_default = 1};
static const dp_cli_opt o_beams = {.name = "beams", .arg = "N", .help = "beams of the final evaluation", .kind = DP_CLI_INT,
                                   .lo = 1, .hi = 64, .show_default = 1};
static const dp_cli_opt o_eval_limit = {
    .name = "eval-limit", .arg = "N",
    .help = "evaluate at most N queries per split (0: all test, 10000 train)", .kind = DP_CLI_LONG, .lo = 0,
    .hi = 0x1p40};

#define NBINDS 48

static void bind_train_flags(dp_cli_bind *b, dp_dsi_train_config *c)
{
    const dp_cli_bind binds[] = {
        DP_CLI_HEADING("data and model:"),
        DP_CLI_BIND(dp_cli_data, c->data),
        DP_CLI_BIND(o_members, c->members),
        DP_CLI_BIND(o_docids, c->docids),
        DP_CLI_BIND(o_kmeans_k, c->kmeans_k),
        DP_CLI_BIND(o_leaf, c->leaf),
        DP_CLI_BIND(o_embed, c->model.embed),
        DP_CLI_BIND(o_hidden, c->model.hidden),
        DP_CLI_BIND(o_layers, c->model.layers),
        DP_CLI_BIND(o_dropout, c->model.dropout),
        DP_CLI_BIND(o_embed_rows, c->model.buckets),
        DP_CLI_BIND(o_head_init, c->head_init),
        DP_CLI_BIND(o_head, c->model.head),
        DP_CLI_BIND(o_head_scale, c->model.head_scale),
        DP_CLI_HEADING("optimisation:"),
        DP_CLI_BIND(o_epochs, c->epochs),
        DP_CLI_BIND(dp_cli_batch, c->batch),
        DP_CLI_BIND(o_lr, c->lr),
        DP_CLI_BIND(o_wd, c->weight_decay),
        DP_CLI_BIND(o_index_ratio, c->index_ratio),
        DP_CLI_BIND(o_token_drop, c->token_drop),
        DP_CLI_BIND(dp_cli_seed, c->seed),
        DP_CLI_HEADING("data-parallel:"),
        DP_CLI_BIND(dp_cli_allreduce, c->allreduce),
        DP_CLI_BIND(dp_cli_bucket_mb, c->bucket_mb),
        DP_CLI_BIND(dp_cli_no_overlap, c->overlap),
        DP_CLI_HEADING("run:"),
        DP_CLI_BIND(dp_cli_out, c->out),
        DP_CLI_BIND(o_beams, c->eval_beams),
        DP_CLI_BIND(o_eval_limit, c->eval_limit),
        DP_CLI_BIND(dp_cli_threads, c->threads),
        DP_CLI_BIND(dp_cli_quiet, c->quiet),
        DP_CLI_HEADING("faults:"),
        DP_CLI_BIND(dp_cli_watchdog, c->watchdog_s),
        DP_CLI_END,
    };
    _Static_assert(sizeof binds / sizeof binds[0] <= NBINDS, "NBINDS too small");
    memcpy(b, binds, sizeof binds);
}

enum { /* dsi-query and dsi-eval (dsi-train's flags are declared above) */
    O_RUN = 256, O_MODELS, O_BEAMS, O_AGG, O_ONLY, O_TEST, O_LIMIT, O_BM25, O_K1, O_B, O_QUERIES, O_LATENCY,
    O_THREADS, O_JSON, O_ABSTAIN,
};

static dp_status unknown(const char *cmd, char **argv)
{
    return dp_errorf(DP_ERR_ARG, "unknown or incomplete flag '%s' (see dptrain %s --help)", argv[optind - 1], cmd);
}

static double frac(const dp_dsi_metrics *m, double v) { return m->queries ? v / (double)m->queries : 0; }

int dp_cmd_dsi_train(int argc, char **argv, MPI_Comm comm)
{
    int rank = dp_cli_rank(comm), size = 1;
    if (comm != MPI_COMM_NULL) MPI_Comm_size(comm, &size);
    dp_dsi_train_config cfg;
    dp_dsi_train_defaults(&cfg);
    dp_cli_bind binds[NBINDS];
    bind_train_flags(binds, &cfg);
    int help = 0;
    dp_status rc = dp_cli_parse("dsi-train", argc, argv, binds, &help);
    if (help) { /* defaults as they are, whatever flags came before --help */
        dp_dsi_train_defaults(&cfg);
        dp_cli_help(stdout, train_header, binds, NULL);
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
