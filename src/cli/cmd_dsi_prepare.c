/* `dptrain dsi-prepare`: query-docid corpora (Debian package index or TSV)
 * -> DSI dataset dirs (dp_dsi_prepare; layout in shards/README.md). */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/flags.h"
#include "dptrain/dsi.h"

static const char usage[] =
    "usage: dptrain dsi-prepare (--debian-packages FILE --debian-translations FILE | --queries TSV [--docs TSV])\n"
    "                           --out DIR [options]\n"
    "\n"
    "Builds DSI datasets: tokenised query shards, docs.tsv, train.tsv/test.tsv (format:\n"
    "shards/README.md, \"DSI datasets\"). Queries shared by several documents are dropped,\n"
    "then documents left with fewer than two queries; each document's queries are split\n"
    "into train and test.\n"
    "  --debian-packages FILE      `apt-cache dumpavail` output (docid = package name)\n"
    "  --debian-translations FILE  Translation-en text (`/usr/lib/apt/apt-helper cat-file`)\n"
    "  --queries TSV               query-docid pairs: ORCAS (query_id, query, doc_id, url) or\n"
    "                              plain (query, docid), told apart by the column count\n"
    "  --docs TSV                  docid<TAB>text: indexing examples come from the text\n"
    "                              (default: from each document's training queries)\n"
    "  --out DIR                   the central dataset; members go to DIR/m<S>/<k>/\n"
    "  --members LIST              ensemble sizes to write, e.g. 2,4,8 (each 2..4096, at most 8)\n"
    "  --kmeans-members            group documents by k-means over TF-IDF of their train\n"
    "                              queries (default: a random deal, sizes within 1)\n"
    "  --index-examples N          indexing examples per document, 0..1000 (default 4)\n"
    "  --test-fraction F           of each document's queries, 0.01..0.99 (default 0.5)\n"
    "  --limit-docs N              keep a random subset of N documents (default 0 = all)\n"
    "  --min-words N               words a long-description sentence needs, 1..1000 (default 3)\n"
    "  --split-lists               also cut long descriptions at paragraph breaks and bullets\n"
    "  --buckets N                 token hash buckets, 1..2^30 (default 262144)\n"
    "  --max-tokens N              features kept per text, 1..65536 (default 256)\n"
    "  --no-bigrams, --no-trigrams leave out word pairs / character 3-grams\n"
    "  --seed N                    random seed (default 1)\n";

/* "2,4,8" -> members[], each range-checked under the flag's name. */
static dp_status parse_members(const char *s, dp_dsi_prepare_config *cfg)
{
    char buf[256], *save = NULL;
    dp_status rc = dp_flag_str("--members", s, buf, sizeof buf);
    if (rc != DP_OK) return rc;
    cfg->nmembers = 0;
    for (char *t = strtok_r(buf, ",", &save); t && rc == DP_OK; t = strtok_r(NULL, ",", &save)) {
        if (cfg->nmembers == 8) return dp_errorf(DP_ERR_ARG, "--members: more than 8 sizes in '%s'", s);
        rc = dp_flag_int("--members", t, 2, 4096, &cfg->members[cfg->nmembers++]);
    }
    if (rc == DP_OK && cfg->nmembers == 0) rc = dp_errorf(DP_ERR_ARG, "--members: '%s' names no size", s);
    return rc;
}

int dp_cmd_dsi_prepare(int argc, char **argv, MPI_Comm comm)
{
    /* as in shard: every rank checks the flags before MPI starts, rank 0 alone works */
    int rank = dp_cli_rank(comm);
    if (comm != MPI_COMM_NULL && rank != 0) return 0;
    enum { O_PKG = 256, O_TR, O_Q, O_DOCS, O_OUT, O_MEM, O_KM, O_IDX, O_TF, O_LIM, O_MINW, O_SPLIT, O_BUCK, O_MAXT,
           O_NOBI, O_NOTRI, O_SEED };
    static const struct option opts[] = {
        {"debian-packages", 1, 0, O_PKG}, {"debian-translations", 1, 0, O_TR}, {"queries", 1, 0, O_Q},
        {"docs", 1, 0, O_DOCS}, {"out", 1, 0, O_OUT}, {"members", 1, 0, O_MEM}, {"kmeans-members", 0, 0, O_KM},
        {"index-examples", 1, 0, O_IDX}, {"test-fraction", 1, 0, O_TF}, {"limit-docs", 1, 0, O_LIM},
        {"min-words", 1, 0, O_MINW}, {"split-lists", 0, 0, O_SPLIT}, {"buckets", 1, 0, O_BUCK},
        {"max-tokens", 1, 0, O_MAXT}, {"no-bigrams", 0, 0, O_NOBI}, {"no-trigrams", 0, 0, O_NOTRI},
        {"seed", 1, 0, O_SEED}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    dp_dsi_prepare_config cfg;
    dp_dsi_prepare_defaults(&cfg);
    dp_status rc = DP_OK;
    long v = 0;
    float f = 0;
    int ch;
    optind = 1;
    opterr = 0;
    while (rc == DP_OK && (ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case O_PKG: rc = dp_flag_str("--debian-packages", optarg, cfg.debian_packages, sizeof cfg.debian_packages); break;
        case O_TR:
            rc = dp_flag_str("--debian-translations", optarg, cfg.debian_translations, sizeof cfg.debian_translations);
            break;
        case O_Q: rc = dp_flag_str("--queries", optarg, cfg.queries, sizeof cfg.queries); break;
        case O_DOCS: rc = dp_flag_str("--docs", optarg, cfg.docs, sizeof cfg.docs); break;
        case O_OUT: rc = dp_flag_str("--out", optarg, cfg.out, sizeof cfg.out); break;
        case O_MEM: rc = parse_members(optarg, &cfg); break;
        case O_KM: cfg.kmeans_members = 1; break;
        case O_IDX: rc = dp_flag_int("--index-examples", optarg, 0, 1000, &cfg.index_examples); break;
        case O_TF:
            rc = dp_flag_float("--test-fraction", optarg, 0.01, 0.99, &f);
            cfg.test_fraction = f;
            break;
        case O_LIM: rc = dp_flag_long("--limit-docs", optarg, 0, INT_MAX / 2, &cfg.limit_docs); break;
        case O_MINW: rc = dp_flag_int("--min-words", optarg, 1, 1000, &cfg.min_words); break;
        case O_SPLIT: cfg.split_lists = 1; break;
        case O_BUCK:
            rc = dp_flag_long("--buckets", optarg, 1, 1L << 30, &v);
            cfg.tok.buckets = (uint32_t)v;
            break;
        case O_MAXT: rc = dp_flag_int("--max-tokens", optarg, 1, 65536, &cfg.tok.max_tokens); break;
        case O_NOBI: cfg.tok.bigrams = 0; break;
        case O_NOTRI: cfg.tok.trigrams = 0; break;
        case O_SEED:
            rc = dp_flag_long("--seed", optarg, 0, LONG_MAX, &v);
            cfg.seed = (uint64_t)v;
            break;
        case 'h': fputs(usage, stdout); return 0;
        default: rc = dp_errorf(DP_ERR_ARG, "unknown or incomplete flag '%s'", argv[optind - 1]);
        }
    }
    if (rc == DP_OK && optind < argc) rc = dp_errorf(DP_ERR_ARG, "unexpected argument '%s'", argv[optind]);
    if (rc == DP_OK && !cfg.out[0]) rc = dp_errorf(DP_ERR_ARG, "--out DIR is required");
    if (rc == DP_OK && cfg.queries[0] && (cfg.debian_packages[0] || cfg.debian_translations[0]))
        rc = dp_errorf(DP_ERR_ARG, "--queries and --debian-* exclude each other");
    if (rc == DP_OK && !cfg.queries[0] && !(cfg.debian_packages[0] && cfg.debian_translations[0]))
        rc = dp_errorf(DP_ERR_ARG, "give --queries TSV, or both --debian-packages and --debian-translations");
    if (rc == DP_OK && cfg.docs[0] && !cfg.queries[0]) rc = dp_errorf(DP_ERR_ARG, "--docs goes with --queries");
    if (rc != DP_OK) {
        if (rank == 0) fprintf(stderr, "dptrain dsi-prepare: %s (see dptrain dsi-prepare --help)\n", dp_errmsg());
        return 2;
    }
    if (comm == MPI_COMM_NULL) return DP_CLI_FLAGS_OK;
    dp_dsi_prepare_stats st;
    rc = dp_dsi_prepare(&cfg, &st);
    if (rc != DP_OK) {
        fprintf(stderr, "dptrain dsi-prepare: error: %s\n", dp_errmsg());
        return 1;
    }
    printf("dsi-prepare: %s docs=%ld train=%ld test=%ld index=%ld dropped_shared_queries=%ld dropped_docs=%ld", cfg.out,
           st.docs, st.train_queries, st.test_queries, st.index_examples, st.dropped_shared_queries, st.dropped_docs);
    if (cfg.nmembers) {
        printf(" members=");
        for (int i = 0; i < cfg.nmembers; i++) printf("%s%d", i ? "," : "", cfg.members[i]);
        printf(" (%s)", cfg.kmeans_members ? "k-means" : "random");
    }
    printf(" %.2f s\n", st.seconds);
    return 0;
}
