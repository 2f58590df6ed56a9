/* `dptrain dsi-train`, `dsi-query`, `dsi-eval`: flags -> the dsi room -> tables. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
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

static const char *const docid_names[] = {"atomic", "semantic", NULL};     /* dp_dsi_docid_kind */
static const char *const head_init_names[] = {"random", "prototypes", NULL}; /* head_init 0, 1 */
static const char *const head_names[] = {"dot", "cosine", "auto", NULL};    /* dp_dsi_head_kind, then HEAD_AUTO */
enum { HEAD_AUTO = 2 }; /* cosine with atomic ids, dot with semantic ones (the decoder has no cosine head) */
static const char *const encoder_names[] = {"bag", "transformer", "idf", "idf-mean", NULL}; /* dp_dsi_encoder_kind */

/* dsi-train's own flags */
static const dp_cli_opt o_members = {.name = "members", .arg = "S", .help = "ensemble members (must divide P)",
                                     .kind = DP_CLI_INT, .lo = 1, .hi = 1024, .show_default = 1};
static const dp_cli_opt o_docids = {.name = "docids", .arg = "KIND",
                                    .help = "atomic | semantic (hierarchical k-means ids)", .kind = DP_CLI_CHOICE,
                                    .choices = docid_names, .show_default = 1};
static const dp_cli_opt o_kmeans_k = {.name = "kmeans-k", .arg = "K", .help = "semantic: clusters per level",
                                      .kind = DP_CLI_INT, .lo = 2, .hi = 1000, .show_default = 1};
static const dp_cli_opt o_leaf = {.name = "leaf", .arg = "N",
                                  .help = "semantic: largest group given positional last digits", .kind = DP_CLI_INT,
                                  .lo = 1, .hi = 65535, .show_default = 1};
static const dp_cli_opt o_embed = {.name = "embed", .arg = "D", .help = "embedding width", .kind = DP_CLI_INT, .lo = 1,
                                   .hi = 4096, .show_default = 1};
static const dp_cli_opt o_hidden = {.name = "hidden", .arg = "H", .help = "encoder width (transformer: the FFN's)",
                                    .kind = DP_CLI_INT, .lo = 1, .hi = 16384, .show_default = 1};
static const dp_cli_opt o_layers = {.name = "layers", .arg = "N",
                                    .help = "encoder layers (bag: ReLU layers; transformer: blocks)",
                                    .kind = DP_CLI_INT, .lo = 0, .hi = 8, .show_default = 1};
static const dp_cli_opt o_dropout = {.name = "dropout", .arg = "P", .help = "encoder dropout probability",
                                     .kind = DP_CLI_FLOAT, .lo = 0, .hi = 0.99, .show_default = 1};
static const dp_cli_opt o_encoder = {
    .name = "encoder", .arg = "KIND",
    .help = "bag (mean of the n-gram embeddings, then --layers ReLU layers) |\n"
            "transformer (--layers pre-norm blocks of width --embed over the\n"
            "features in order, FFN width --hidden, --heads heads; mean-pooled) |\n"
            "idf-mean (the bag's mean weighted by a learned score per row that\n"
            "starts at its IDF) | idf (idf-mean beside the max over the bag)",
    .kind = DP_CLI_CHOICE, .choices = encoder_names, .show_default = 1};
static const dp_cli_opt o_heads = {.name = "heads", .arg = "N", .help = "transformer: attention heads (dividing --embed)",
                                   .kind = DP_CLI_INT, .lo = 1, .hi = 4096, .show_default = 1};
/* an int flag bound to a uint32_t field: the range keeps the value's bits the same in both */
static const dp_cli_opt o_embed_rows = {
    .name = "embed-rows", .arg = "N",
    .help = "embedding table rows; token id t reads row t % N, so data prepared\n"
            "with more --buckets keeps a finer vocabulary, same table",
    .kind = DP_CLI_INT, .lo = 1, .hi = 1 << 30, .show_default = 1};
static const dp_cli_opt o_epochs = {.name = "epochs", .arg = "N",
                                    .help = "passes over the training queries, 0 = evaluate the initial model only",
                                    .kind = DP_CLI_INT, .lo = 0, .hi = 100000, .show_default = 1};
static const dp_cli_opt o_lr = {.name = "lr", .arg = "LR",
                                .help = "Adam learning rate (default 0.001; 0.01 with --docids semantic)",
                                .kind = DP_CLI_FLOAT, .lo = 1e-9, .hi = 9.99};
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
    .help = "atomic head: random | prototypes (row d = the mean encoding of\n"
            "document d's training queries and indexing examples)",
    .kind = DP_CLI_CHOICE, .choices = head_init_names, .show_default = 1};
static const dp_cli_opt o_head = {
    .name = "head", .arg = "KIND",
    .help = "atomic head: dot (W h + b) | cosine (s cos(h, w_d): members' logits\n"
            "on one scale, for the ensemble's merge) | auto (cosine; dot with\n"
            "--docids semantic)",
    .kind = DP_CLI_CHOICE, .choices = head_names, .show_default = 1};
static const dp_cli_opt o_head_scale = {.name = "head-scale", .arg = "S", .help = "cosine head: the fixed scale s",
                                        .kind = DP_CLI_FLOAT, .lo = 1e-3, .hi = 1000, .show_default = 1};
static const char *const lexical_names[] = {"off", "on", "auto", NULL}; /* dp_dsi_lexical_mode */
static const dp_cli_opt o_lexical = {
    .name = "lexical", .arg = "MODE",
    .help = "a lexical head beside the dense one, one weight per (word,\n"
            "document) of the indexed text (text.tsv, else train.tsv), starting\n"
            "as BM25's (k1 0.9, b 0.4), trained with the rest: on | off | auto\n"
            "(on with atomic ids and a text to index)",
    .kind = DP_CLI_CHOICE, .choices = lexical_names, .show_default = 1};
static const dp_cli_opt o_lex_scale = {.name = "lexical-scale", .arg = "S",
                                       .help = "lexical head: its learned scale's start (1: BM25's scores)",
                                       .kind = DP_CLI_FLOAT, .lo = 1e-3, .hi = 1000, .show_default = 1};
static const dp_cli_opt o_lex_lr = {.name = "lexical-lr-mult", .arg = "M",
                                    .help = "lexical head: its learning rate is --lr times M (0: BM25's weights kept)",
                                    .kind = DP_CLI_FLOAT, .lo = 0, .hi = 100, .show_default = 1};
static const dp_cli_opt o_lex_drop = {.name = "lexical-drop", .arg = "P",
                                      .help = "lexical head: leave each word of a training example out with\n"
                                              "probability P (its text is in the index; a test query's is not)",
                                      .kind = DP_CLI_FLOAT, .lo = 0, .hi = 0.99, .show_default = 1};
static const dp_cli_opt o_beams = {.name = "beams", .arg = "N", .help = "beams of the final evaluation", .kind = DP_CLI_INT,
                                   .lo = 1, .hi = 64, .show_default = 1};
static const dp_cli_opt o_eval_limit = {
    .name = "eval-limit", .arg = "N",
    .help = "evaluate at most N queries per split (0: all test, 10000 train)", .kind = DP_CLI_LONG, .lo = 0,
    .hi = 0x1p40};

static dp_dsi_train_config tcfg;
static int head_choice; /* --head: a dp_dsi_head_kind or HEAD_AUTO, resolved in train_check */
static float lr_recipe;  /* the recipe's rate for atomic ids; --lr unset is 0 until train_check */

static const dp_cli_bind train_binds[] = {
    DP_CLI_HEADING("data and model:"),
    DP_CLI_BIND(dp_cli_data, tcfg.run.data),
    DP_CLI_BIND(o_members, tcfg.members),
    DP_CLI_BIND(o_docids, tcfg.docids),
    DP_CLI_BIND(o_kmeans_k, tcfg.kmeans_k),
    DP_CLI_BIND(o_leaf, tcfg.leaf),
    DP_CLI_BIND(o_encoder, tcfg.model.encoder),
    DP_CLI_BIND(o_heads, tcfg.model.heads),
    DP_CLI_BIND(o_embed, tcfg.model.embed),
    DP_CLI_BIND(o_hidden, tcfg.model.hidden),
    DP_CLI_BIND(o_layers, tcfg.model.layers),
    DP_CLI_BIND(o_dropout, tcfg.model.dropout),
    DP_CLI_BIND(o_embed_rows, tcfg.model.buckets),
    DP_CLI_BIND(o_head_init, tcfg.head_init),
    DP_CLI_BIND(o_head, head_choice),
    DP_CLI_BIND(o_head_scale, tcfg.model.head_scale),
    DP_CLI_BIND(o_lexical, tcfg.lexical),
    DP_CLI_BIND(o_lex_scale, tcfg.model.lex_scale),
    DP_CLI_BIND(o_lex_lr, tcfg.lexical_lr_mult),
    DP_CLI_BIND(o_lex_drop, tcfg.lexical_drop),
    DP_CLI_HEADING("optimisation:"),
    DP_CLI_BIND(o_epochs, tcfg.run.epochs),
    DP_CLI_BIND(dp_cli_batch, tcfg.run.batch),
    DP_CLI_BIND(o_lr, tcfg.lr),
    DP_CLI_BIND(o_wd, tcfg.weight_decay),
    DP_CLI_BIND(o_index_ratio, tcfg.index_ratio),
    DP_CLI_BIND(o_token_drop, tcfg.token_drop),
    DP_CLI_BIND(dp_cli_seed, tcfg.run.seed),
    DP_CLI_HEADING("data-parallel:"),
    DP_CLI_BIND(dp_cli_allreduce, tcfg.run.allreduce),
    DP_CLI_BIND(dp_cli_allreduce_table, tcfg.run.allreduce_table),
    DP_CLI_BIND(dp_cli_sync_every, tcfg.run.sync_every),
    DP_CLI_BIND(dp_cli_rank_times, tcfg.run.rank_times),
    DP_CLI_BIND(dp_cli_bucket_mb, tcfg.run.bucket_mb),
    DP_CLI_BIND(dp_cli_no_overlap, tcfg.run.overlap),
    DP_CLI_HEADING("run:"),
    DP_CLI_BIND(dp_cli_out, tcfg.run.out),
    DP_CLI_BIND(dp_cli_overwrite, tcfg.run.overwrite),
    DP_CLI_BIND(o_beams, tcfg.eval_beams),
    DP_CLI_BIND(o_eval_limit, tcfg.eval_limit),
    DP_CLI_BIND(dp_cli_threads, tcfg.run.threads),
    DP_CLI_BIND(dp_cli_quiet, tcfg.run.quiet),
    DP_CLI_HEADING("faults:"),
    DP_CLI_BIND(dp_cli_watchdog, tcfg.run.watchdog_s),
    DP_CLI_END,
};

static void train_defaults(void)
{
    dp_dsi_train_recipe(&tcfg);
    head_choice = HEAD_AUTO;
    lr_recipe = tcfg.lr;
    tcfg.lr = 0; /* unset: train_check picks it by docid kind */
}

static dp_status train_check(int ranks)
{
    tcfg.model.head = head_choice != HEAD_AUTO          ? (dp_dsi_head_kind)head_choice
                      : tcfg.docids == DP_DSI_ATOMIC ? DP_DSI_HEAD_COSINE
                                                      : DP_DSI_HEAD_DOT;
    /* at the atomic head's rate the level decoder does not fit its own training queries within the default
     * epochs; ten times that rate does (benchmarks/RESULTS.md §18) */
    if (tcfg.lr == 0) tcfg.lr = tcfg.docids == DP_DSI_ATOMIC ? lr_recipe : 0.01f;
    return dp_dsi_train_check(&tcfg, ranks);
}

static double frac(const dp_dsi_metrics *m, double v) { return m->queries ? v / (double)m->queries : 0; }

static dp_status train_run(MPI_Comm comm, int rank)
{
    dp_dsi_train_result *res = calloc((size_t)tcfg.members, sizeof *res);
    dp_status rc = res ? dp_dsi_train_run(&tcfg, comm, res) : DP_ERR_NOMEM;
    if (rc == DP_OK && rank == 0) {
        printf("member ranks docs train_q test_q epochs train_s q_per_s_rank loss train_hits1 test_hits1 test_hits10 test_mrr10 params_mb\n");
        for (int k = 0; k < tcfg.members; k++) {
            const dp_dsi_train_result *r = &res[k];
            printf("%d %d %d %ld %ld %d %.1f %.0f %.4f %.4f %.4f %.4f %.4f %.1f\n", r->member, r->ranks, r->ndocs,
                   r->train_queries, r->test_queries, r->epochs, r->train_s, r->queries_per_s, r->loss,
                   frac(&r->train_m, r->train_m.hits1), frac(&r->test_m, r->test_m.hits1),
                   frac(&r->test_m, r->test_m.hits10), frac(&r->test_m, r->test_m.mrr10), r->params_mb);
        }
    }
    free(res);
    return rc;
}

/* members fail apart: a member's ranks agree on its error, its rank 0 says why */
static const dp_cli_command dsi_train = {.name = "dsi-train", .header = train_header, .binds = train_binds,
                                         .defaults = train_defaults, .check = train_check, .run = train_run,
                                         .split_world = 1};

int dp_cmd_dsi_train(int argc, char **argv, MPI_Comm comm) { return dp_cli_run(&dsi_train, argc, argv, comm); }

/* ------------------------------------------------------------ query / eval */

static const char query_header[] =
    "usage: [mpirun -np P] dptrain dsi-query (--run DIR | --models A,B,..) [options]\n"
    "\n"
    "Answers queries with an ensemble of DSI members (members spread over the P ranks, beams\n"
    "gathered to rank 0): a query per line on stdin -> one line per result:\n"
    "  <query number> <rank> <docid> <score>\n"
    "A line over 1 MiB or holding a NUL byte stops it with an error naming the line.\n"
    "\n";

_Static_assert(DP_DSI_QUERY_MAX == 1 << 20, "dsi-query's help says 1 MiB");

static const char eval_header[] =
    "usage: [mpirun -np P] dptrain dsi-eval (--run DIR | --models A,B,.. | --bm25 DATA) --test TSV [options]\n"
    "\n"
    "Hits@1, Hits@5, Hits@10 and MRR@10 over the query<TAB>docid pairs of --test (duplicate pairs\n"
    "removed), for the confidence, vote, joint and logits ensembles (or BM25 over DATA/text.tsv, the\n"
    "text each document is indexed from; datasets without it: DATA/train.tsv, each document =\n"
    "its training queries joined). One row per method; --json adds JSON lines.\n"
    "\n";

static const char *const agg_names[] = {"confidence", "vote", "joint", "logits", NULL}; /* dp_dsi_agg */

/* dsi-query's and dsi-eval's flags */
static const dp_cli_opt o_run = {.name = "run", .arg = "DIR", .help = "every DIR/member-<k>/model.dsi",
                                 .kind = DP_CLI_STR, .cap = 512};
static const dp_cli_opt o_models = {.name = "models", .arg = "LIST", .help = "checkpoint files, comma-separated",
                                    .kind = DP_CLI_STR, .cap = 4096};
static const dp_cli_opt o_k = {.name = "-k", .arg = "K", .help = "results per query", .kind = DP_CLI_INT, .lo = 1,
                               .hi = 1000, .show_default = 1};
static const dp_cli_opt o_member_beams = {.name = "beams", .arg = "N", .help = "beams inside each member",
                                          .kind = DP_CLI_INT, .lo = 1, .hi = 64, .show_default = 1};
static const dp_cli_opt o_agg = {
    .name = "agg", .arg = "NAME",
    .help = "confidence: De-DSI's summed softmax of each member's beam scores; vote: one vote\n"
            "per member; joint: each member's own probabilities renormalised over every member's\n"
            "beams together; logits (dsi-query's default): one softmax over every member's beam\n"
            "logits, as if their documents were one head (the cosine and lexical heads keep the\n"
            "members' logits on one scale; semantic ids: the same as joint) (dsi-eval: that merge only)",
    .kind = DP_CLI_CHOICE, .choices = agg_names};
static const dp_cli_opt o_only = {.name = "only", .arg = "M", .help = "member M alone", .kind = DP_CLI_INT, .lo = 0,
                                  .hi = 4095};
static const dp_cli_opt o_abstain = {
    .name = "abstain", .arg = "ALPHA",
    .help = "a member may answer \"none of mine\" with probability 1 - c^ALPHA, c = the\n"
            "share of the query's tokens it saw in training, 0 = never",
    .kind = DP_CLI_FLOAT, .lo = 0, .hi = 1000, .show_default = 1};
static const dp_cli_opt o_queries = {.name = "queries", .arg = "FILE",
                                     .help = "read queries from FILE instead of stdin, answered one at a time",
                                     .kind = DP_CLI_STR, .cap = 512};
static const dp_cli_opt o_latency = {.name = "latency", .help = "print per-query latency p50/p99 (ms) to stderr at the end",
                                     .kind = DP_CLI_ON};
static const dp_cli_opt o_test = {.name = "test", .arg = "TSV", .help = "the query<TAB>docid pairs scored (required)",
                                  .kind = DP_CLI_STR, .cap = 512};
static const dp_cli_opt o_bm25 = {.name = "bm25", .arg = "DATA", .help = "BM25 baseline over DATA/text.tsv instead of DSI",
                                  .kind = DP_CLI_STR, .cap = 512};
static const dp_cli_opt o_k1 = {.name = "k1", .arg = "K1", .help = "BM25 k1", .kind = DP_CLI_FLOAT, .lo = 0, .hi = 100,
                                .show_default = 1};
static const dp_cli_opt o_b = {.name = "b", .arg = "B", .help = "BM25 b", .kind = DP_CLI_FLOAT, .lo = 0, .hi = 1,
                               .show_default = 1};
static const dp_cli_opt o_pairs = {.name = "limit", .arg = "N", .help = "the first N test pairs only, 0 = all",
                                   .kind = DP_CLI_LONG, .lo = 0, .hi = 0x1p40, .show_default = 1};
static const dp_cli_opt o_json = {.name = "json", .help = "also print each row as a JSON line", .kind = DP_CLI_ON};

/* The flags of dsi-query and dsi-eval: the room's request plus what only the command uses. */
static struct {
    dp_dsi_eval_config ask;
    char test[512], bm25[512], queries[512];
    int latency, json;
} q;

/* both commands take every flag, each using its own */
static const dp_cli_bind q_binds[] = {
    DP_CLI_HEADING("members:"),
    DP_CLI_BIND(o_run, q.ask.run),
    DP_CLI_BIND(o_models, q.ask.models),
    DP_CLI_BIND(o_only, q.ask.only),
    DP_CLI_BIND(o_abstain, q.ask.abstain),
    DP_CLI_BIND(o_member_beams, q.ask.beams),
    DP_CLI_BIND(o_agg, q.ask.agg),
    DP_CLI_BIND(o_k, q.ask.k),
    DP_CLI_BIND(dp_cli_threads, q.ask.threads),
    DP_CLI_HEADING("dsi-query:"),
    DP_CLI_BIND(o_queries, q.queries),
    DP_CLI_BIND(o_latency, q.latency),
    DP_CLI_HEADING("dsi-eval:"),
    DP_CLI_BIND(o_test, q.test),
    DP_CLI_BIND(o_pairs, q.ask.limit),
    DP_CLI_BIND(o_bm25, q.bm25),
    DP_CLI_BIND(o_k1, q.ask.k1),
    DP_CLI_BIND(o_b, q.ask.b),
    DP_CLI_BIND(o_json, q.json),
    DP_CLI_END,
};

static void q_defaults(int beams)
{
    memset(&q, 0, sizeof q);
    dp_dsi_eval_defaults(&q.ask);
    q.ask.beams = beams;
}

static void query_defaults(void) { q_defaults(5); }
static void eval_defaults(void) { q_defaults(10); }

static dp_status query_check(int ranks)
{
    (void)ranks;
    DP_CHECK(q.bm25[0] || !q.ask.run[0] != !q.ask.models[0], "give exactly one of --run DIR and --models LIST");
    return DP_OK;
}

static dp_status eval_check(int ranks)
{
    dp_status rc = query_check(ranks);
    if (rc == DP_OK && !q.test[0]) rc = dp_errorf(DP_ERR_ARG, "--test TSV is required");
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

static dp_status query_run(MPI_Comm comm, int rank)
{
    dp_dsi_ensemble *e = NULL;
    dp_status rc = dp_dsi_ensemble_open(&q.ask, comm, &e);
    dp_dsi_serve_stats st;
    if (rc == DP_OK) rc = dp_dsi_serve(e, q.queries, &q.ask, print_answer, e, &st);
    if (rc == DP_OK && rank == 0 && q.latency)
        fprintf(stderr, "latency: queries=%ld members=%d beams=%d p50_ms=%.3f p99_ms=%.3f\n", st.queries,
                dp_dsi_ensemble_members(e), q.ask.beams, st.p50_ms, st.p99_ms);
    dp_dsi_ensemble_free(e);
    return rc;
}

static const dp_cli_command dsi_query = {.name = "dsi-query", .header = query_header, .binds = q_binds,
                                         .defaults = query_defaults, .check = query_check, .run = query_run};

int dp_cmd_dsi_query(int argc, char **argv, MPI_Comm comm) { return dp_cli_run(&dsi_query, argc, argv, comm); }

static void print_header(void)
{
    printf("%-12s %8s %7s %7s %7s %7s %9s\n", "method", "queries", "hits1", "hits5", "hits10", "mrr10", "seconds");
}

static void print_row(const dp_dsi_eval_row *r)
{
    const dp_dsi_metrics *m = &r->m;
    double n = m->queries ? (double)m->queries : 1;
    printf("%-12s %8ld %7.4f %7.4f %7.4f %7.4f %9.1f\n", r->method, m->queries, m->hits1 / n, m->hits5 / n,
           m->hits10 / n, m->mrr10 / n, r->seconds);
    if (q.json)
        printf("{\"method\":\"%s\",\"queries\":%ld,\"hits1\":%.6f,\"hits5\":%.6f,\"hits10\":%.6f,\"mrr10\":%.6f,"
               "\"seconds\":%.3f}\n",
               r->method, m->queries, m->hits1 / n, m->hits5 / n, m->hits10 / n, m->mrr10 / n, r->seconds);
}

static dp_status eval_run(MPI_Comm comm, int rank)
{
    dp_dsi_pairs test = {0};
    dp_status rc = dp_dsi_pairs_load(q.test, 1, &test);
    dp_dsi_eval_row rows[DP_DSI_EVAL_ROWS];
    int nrows = 0;
    if (rc == DP_OK && q.bm25[0]) {
        if (rank == 0) { /* one process: the baseline needs no ranks */
            rc = dp_dsi_eval_bm25(q.bm25, &test, &q.ask, &rows[0]);
            if (rc == DP_OK) print_header(), print_row(&rows[0]);
        }
        dp_dsi_pairs_free(&test);
        return rc;
    }
    dp_dsi_ensemble *e = NULL;
    if (rc == DP_OK) rc = dp_dsi_ensemble_open(&q.ask, comm, &e);
    if (rc == DP_OK) rc = dp_dsi_eval_ensemble(e, &test, &q.ask, rows, &nrows);
    if (rc == DP_OK && rank == 0) {
        print_header();
        for (int a = 0; a < nrows; a++) print_row(&rows[a]);
    }
    dp_dsi_ensemble_free(e);
    dp_dsi_pairs_free(&test);
    return rc;
}

static const dp_cli_command dsi_eval = {.name = "dsi-eval", .header = eval_header, .binds = q_binds,
                                        .defaults = eval_defaults, .check = eval_check, .run = eval_run};

int dp_cmd_dsi_eval(int argc, char **argv, MPI_Comm comm) { return dp_cli_run(&dsi_eval, argc, argv, comm); }
