/* `dptrain dsi-prepare`: query-docid corpora (Debian package index or TSV)
 * -> DSI dataset dirs (dp_dsi_prepare; layout in shards/README.md). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/options.h"
#include "dptrain/dsi.h"

static const char header[] =
    "usage: dptrain dsi-prepare (--debian-packages FILE --debian-translations FILE | --queries TSV [--docs TSV])\n"
    "                           --out DIR [options]\n"
    "\n"
    "Builds DSI datasets: tokenised query shards, docs.tsv, train.tsv/test.tsv, text.tsv (format:\n"
    "shards/README.md, \"DSI datasets\"). Queries shared by several documents are dropped,\n"
    "then documents left with fewer than two queries; each document's queries are split\n"
    "into train and test. The document's text is its index (--split text): the test queries\n"
    "are cut out of it, and one still inside any indexed text or training query is left out,\n"
    "so no test query is ever shown to the model or to BM25. Written beside --out and renamed\n"
    "into place when complete.\n"
    "\n";

static const char *const split_names[] = {"text", "queries", NULL}; /* dp_dsi_split_kind */

/* "2,4,8" -> members[], each range-checked under the flag's name. */
static dp_status parse_members(const dp_cli_opt *o, const char *s, void *field)
{
    dp_dsi_prepare_config *cfg = field;
    char buf[256], *save = NULL;
    if (strlen(s) >= sizeof buf) return dp_errorf(DP_ERR_ARG, "--members: value longer than %zu characters", sizeof buf - 1);
    strcpy(buf, s);
    dp_status rc = DP_OK;
    cfg->nmembers = 0;
    for (char *t = strtok_r(buf, ",", &save); t && rc == DP_OK; t = strtok_r(NULL, ",", &save)) {
        if (cfg->nmembers == 8) return dp_errorf(DP_ERR_ARG, "--members: more than 8 sizes in '%s'", s);
        long v = 0;
        rc = dp_cli_long("--members", t, (long)o->lo, (long)o->hi, &v);
        cfg->members[cfg->nmembers++] = (int)v;
    }
    if (rc == DP_OK && cfg->nmembers == 0) rc = dp_errorf(DP_ERR_ARG, "--members: '%s' names no size", s);
    return rc;
}

static const dp_cli_opt o_packages = {.name = "debian-packages", .arg = "FILE",
                                      .help = "`apt-cache dumpavail` output (docid = package name)", .kind = DP_CLI_STR,
                                      .cap = 512};
static const dp_cli_opt o_translations = {.name = "debian-translations", .arg = "FILE",
                                          .help = "Translation-en text (`/usr/lib/apt/apt-helper cat-file`)",
                                          .kind = DP_CLI_STR, .cap = 512};
static const dp_cli_opt o_queries = {.name = "queries", .arg = "TSV",
                                     .help = "query-docid pairs: ORCAS (query_id, query, doc_id, url) or\n"
                                             "plain (query, docid), told apart by the column count",
                                     .kind = DP_CLI_STR, .cap = 512};
static const dp_cli_opt o_docs = {.name = "docs", .arg = "TSV",
                                  .help = "docid<TAB>text: the documents' text (default: a document's\n"
                                          "text is its training queries joined)",
                                  .kind = DP_CLI_STR, .cap = 512};
static const dp_cli_opt o_split = {
    .name = "split", .arg = "KIND",
    .help = "text: the document text (Debian: its description; --docs; else its\n"
            "training queries) is what the model and BM25 index, test queries cut out\n"
            "of it (text.tsv); queries: the first split, indexing examples from the\n"
            "training queries (or --docs as given), BM25 over train.tsv",
    .kind = DP_CLI_CHOICE, .choices = split_names, .show_default = 1};
static const dp_cli_opt o_out = {.name = "out", .arg = "DIR", .help = "the central dataset; members go to DIR/m<S>/<k>/",
                                 .kind = DP_CLI_STR, .cap = 512};
static const dp_cli_opt o_members = {.name = "members", .arg = "LIST",
                                     .help = "ensemble sizes to write, e.g. 2,4,8 (each 2..4096, at most 8)",
                                     .kind = DP_CLI_CUSTOM, .lo = 2, .hi = 4096, .parse = parse_members};
static const dp_cli_opt o_kmeans = {.name = "kmeans-members",
                                    .help = "group documents by k-means over TF-IDF of their train\n"
                                            "queries (default: a random deal, sizes within 1)",
                                    .kind = DP_CLI_ON};
static const dp_cli_opt o_index = {.name = "index-examples", .arg = "N", .help = "indexing examples per document",
                                   .kind = DP_CLI_INT, .lo = 0, .hi = 1000, .show_default = 1};
static const dp_cli_opt o_test_fraction = {.name = "test-fraction", .arg = "F", .help = "of each document's queries",
                                           .kind = DP_CLI_FLOAT, .lo = 0.01, .hi = 0.99, .show_default = 1};
static const dp_cli_opt o_limit_docs = {.name = "limit-docs", .arg = "N",
                                        .help = "keep a random subset of N documents, 0 = all", .kind = DP_CLI_LONG,
                                        .lo = 0, .hi = INT_MAX / 2, .show_default = 1};
static const dp_cli_opt o_min_words = {.name = "min-words", .arg = "N",
                                       .help = "words a long-description sentence needs", .kind = DP_CLI_INT, .lo = 1,
                                       .hi = 1000, .show_default = 1};
static const dp_cli_opt o_split_lists = {.name = "split-lists",
                                   .help = "also cut long descriptions at paragraph breaks and bullets",
                                   .kind = DP_CLI_ON};
/* an int flag bound to a uint32_t field: the range keeps the value's bits the same in both */
static const dp_cli_opt o_buckets = {.name = "buckets", .arg = "N", .help = "token hash buckets", .kind = DP_CLI_INT,
                                     .lo = 1, .hi = 1 << 30, .show_default = 1};
static const dp_cli_opt o_max_tokens = {.name = "max-tokens", .arg = "N", .help = "features kept per text",
                                        .kind = DP_CLI_INT, .lo = 1, .hi = 65536, .show_default = 1};
static const dp_cli_opt o_no_bigrams = {.name = "no-bigrams", .help = "leave out word pairs", .kind = DP_CLI_OFF};
static const dp_cli_opt o_overwrite = {.name = "overwrite",
                                       .help = "replace --out even if it holds another dataset or other\n"
                                               "files (default: only an earlier dsi-prepare output)",
                                       .kind = DP_CLI_ON};
static const dp_cli_opt o_no_trigrams = {.name = "no-trigrams", .help = "leave out character 3-grams",
                                         .kind = DP_CLI_OFF};

static dp_dsi_prepare_config cfg;

static const dp_cli_bind binds[] = {
    DP_CLI_BIND(o_packages, cfg.debian_packages),
    DP_CLI_BIND(o_translations, cfg.debian_translations),
    DP_CLI_BIND(o_queries, cfg.queries),
    DP_CLI_BIND(o_docs, cfg.docs),
    DP_CLI_BIND(o_out, cfg.out),
    DP_CLI_BIND(o_overwrite, cfg.overwrite),
    DP_CLI_BIND(o_split, cfg.split),
    DP_CLI_BIND(o_members, cfg),
    DP_CLI_BIND(o_kmeans, cfg.kmeans_members),
    DP_CLI_BIND(o_index, cfg.index_examples),
    DP_CLI_BIND(o_test_fraction, cfg.test_fraction),
    DP_CLI_BIND(o_limit_docs, cfg.limit_docs),
    DP_CLI_BIND(o_min_words, cfg.min_words),
    DP_CLI_BIND(o_split_lists, cfg.split_lists),
    DP_CLI_BIND(o_buckets, cfg.tok.buckets),
    DP_CLI_BIND(o_max_tokens, cfg.tok.max_tokens),
    DP_CLI_BIND(o_no_bigrams, cfg.tok.bigrams),
    DP_CLI_BIND(o_no_trigrams, cfg.tok.trigrams),
    DP_CLI_BIND(dp_cli_seed, cfg.seed),
    DP_CLI_END,
};

static void defaults(void) { dp_dsi_prepare_defaults(&cfg); }

static dp_status check(int ranks)
{
    (void)ranks;
    DP_CHECK(cfg.out[0], "--out DIR is required");
    DP_CHECK(!cfg.queries[0] || !(cfg.debian_packages[0] || cfg.debian_translations[0]),
             "--queries and --debian-* exclude each other");
    DP_CHECK(cfg.queries[0] || (cfg.debian_packages[0] && cfg.debian_translations[0]),
             "give --queries TSV, or both --debian-packages and --debian-translations");
    DP_CHECK(!cfg.docs[0] || cfg.queries[0], "--docs goes with --queries");
    return DP_OK;
}

static dp_status run(MPI_Comm comm, int rank)
{
    (void)comm, (void)rank;
    dp_dsi_prepare_stats st;
    dp_status rc = dp_dsi_prepare(&cfg, &st);
    if (rc != DP_OK) return rc;
    printf("dsi-prepare: %s docs=%ld train=%ld test=%ld index=%ld dropped_shared_queries=%ld dropped_docs=%ld", cfg.out,
           st.docs, st.train_queries, st.test_queries, st.index_examples, st.dropped_shared_queries, st.dropped_docs);
    if (cfg.split == DP_DSI_SPLIT_TEXT)
        printf(" split=text cut_from_text=%ld dropped_test_in_text=%ld", st.cut_from_text, st.dropped_test_in_text);
    else
        printf(" split=queries");
    if (cfg.nmembers) {
        printf(" members=");
        for (int i = 0; i < cfg.nmembers; i++) printf("%s%d", i ? "," : "", cfg.members[i]);
        printf(" (%s)", cfg.kmeans_members ? "k-means" : "random");
    }
    printf(" %.2f s\n", st.seconds);
    return DP_OK;
}

static const dp_cli_command dsi_prepare = {.name = "dsi-prepare", .header = header, .binds = binds,
                                           .defaults = defaults, .check = check, .run = run};

int dp_cmd_dsi_prepare(int argc, char **argv, MPI_Comm comm)
{
    /* as in shard: every rank checks the flags before MPI starts, rank 0 alone works */
    if (comm != MPI_COMM_NULL && dp_cli_rank(comm) != 0) return 0;
    return dp_cli_run(&dsi_prepare, argc, argv, comm);
}
