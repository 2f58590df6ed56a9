/* Asking trained ensembles (include/dptrain/dsi_eval.h): the member
 * checkpoints of a run, test-pair evaluation of the ensemble's merges and of
 * the BM25 baseline, and the query server behind `dsi-query`.
 *
 *   run dir / list -> paths -> dp_dsi_ensemble_load (members over the ranks)
 *   test pairs -> dp_dsi_ensemble_query (all at once) -> dp_dsi_metrics per merge
 *   text.tsv (else train.tsv) -> one text per docid -> dp_bm25_build -> dp_bm25_search per test query
 *   rank 0 reads a line -> MPI_Bcast -> dp_dsi_ensemble_query (one query) -> callback
 *
 * The server answers one query at a time, as a user would ask, so its
 * latencies are those of a single query through every member and the gather
 * to rank 0. */
#define _GNU_SOURCE
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dptrain/dsi_eval.h"
#include "dptrain/infile.h"
#include "dptrain/report.h"
#include "dptrain/text.h"
#include "dsi/data_internal.h"
#include "dsi/ensemble_internal.h"

void dp_dsi_eval_defaults(dp_dsi_eval_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->k = 10;
    cfg->beams = 10;
    cfg->only = -1;
    cfg->agg = -1;
    /* members abstain by coverage: the 4-member ensemble's Hits@10 went from 0.86 to 0.968 of the
     * centralised model's at A = 32 (benchmarks/RESULTS.md §9); one member's ranking it leaves as is */
    cfg->abstain = 32;
    cfg->k1 = 0.9f;
    cfg->b = 0.4f;
    cfg->threads = 1;
}

static long first_n(const dp_dsi_eval_config *cfg, const dp_dsi_pairs *test)
{
    return cfg->limit > 0 && cfg->limit < test->n ? cfg->limit : test->n;
}

/* ------------------------------------------------------------ members */

/* Checkpoint paths of run/member-0, member-1, ... (until one is missing) or
 * of the list, NUL-terminated back to back in *a; *n of them. */
static dp_status member_paths(const dp_dsi_eval_config *cfg, dsi_arena *a, int *n)
{
    int64_t off;
    if (!cfg->run[0]) {
        char buf[sizeof cfg->models];
        snprintf(buf, sizeof buf, "%s", cfg->models);
        for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            if (dsi_arena_add(a, t, strlen(t), &off) != DP_OK) return DP_ERR_NOMEM;
            (*n)++;
        }
        return DP_OK;
    }
    for (;; (*n)++) {
        char path[700];
        struct stat st;
        snprintf(path, sizeof path, "%s/member-%d/model.dsi", cfg->run, *n);
        if (stat(path, &st)) break;
        if (dsi_arena_add(a, path, strlen(path), &off) != DP_OK) return DP_ERR_NOMEM;
    }
    if (!*n)
        return dp_errorf(DP_ERR_IO, "%s: no member-0/model.dsi (was dsi-train run with --out %s?)", cfg->run, cfg->run);
    return DP_OK;
}

dp_status dp_dsi_ensemble_open(const dp_dsi_eval_config *cfg, MPI_Comm comm, dp_dsi_ensemble **out)
{
    *out = NULL;
    openblas_set_num_threads(cfg->threads);
    dsi_arena a = {0};
    int n = 0;
    char **paths = NULL;
    dp_status rc = member_paths(cfg, &a, &n);
    if (rc == DP_OK && !(paths = dsi_names_block(a.buf, a.len, n)))
        rc = dp_errorf(DP_ERR_NOMEM, "ensemble: out of memory");
    if (rc == DP_OK) rc = dp_dsi_ensemble_load((const char *const *)paths, n, comm, out);
    free(paths);
    dsi_arena_free(&a);
    if (rc == DP_OK) dp_dsi_ensemble_abstain(*out, cfg->abstain);
    return rc;
}

/* ------------------------------------------------------------ evaluation */

typedef long (*doc_lookup)(const void *ctx, const char *docid);

/* Test pairs whose docid the model does not know can only be misses: rank 0 warns with their count and a
 * few of them, and a test set with no known docid is refused (its zeros would measure nothing). */
static dp_status check_known(const dp_dsi_pairs *test, long n, doc_lookup find, const void *ctx, const char *who,
                             int rank)
{
    const char *src = test->source[0] ? test->source : "test pairs";
    if (n == 0) return dp_errorf(DP_ERR_FORMAT, "%s: no test pairs", src);
    long unknown = 0;
    char eg[3 * DP_ESCAPE_CAP + 8] = "";
    for (long i = 0; i < n; i++) {
        if (find(ctx, test->docid[i]) >= 0) continue;
        if (unknown++ < 3) {
            size_t l = strlen(eg);
            snprintf(eg + l, sizeof eg - l, "%s'%s'", l ? ", " : "", DP_ESC(test->docid[i]));
        }
    }
    if (unknown == n)
        return dp_errorf(DP_ERR_FORMAT, "%s: none of the %ld test docids is known to %s (e.g. %s): nothing to score",
                         src, n, who, eg);
    if (unknown && rank == 0)
        fprintf(stderr, "warning: %s: %ld of %ld test pairs name a docid %s does not know, counted as misses (e.g. %s)\n",
                src, unknown, n, who, eg);
    return DP_OK;
}

static long ensemble_lookup(const void *e, const char *docid) { return dp_dsi_ensemble_doc_id(e, docid); }

static long intern_lookup(const void *t, const char *docid)
{
    return dsi_intern_get((dsi_intern *)t, docid, strlen(docid), 0, NULL); /* a lookup never adds */
}

dp_status dp_dsi_eval_ensemble(dp_dsi_ensemble *e, const dp_dsi_pairs *test, const dp_dsi_eval_config *cfg,
                               dp_dsi_eval_row rows[DP_DSI_EVAL_ROWS], int *nrows)
{
    *nrows = 0;
    openblas_set_num_threads(cfg->threads);
    const long nq = first_n(cfg, test);
    const int k = cfg->k;
    dp_dsi_agg how[DP_DSI_EVAL_ROWS] = {DP_DSI_AGG_CONFIDENCE, DP_DSI_AGG_VOTE, DP_DSI_AGG_JOINT, DP_DSI_AGG_LOGITS};
    int nhow = cfg->agg >= 0 || cfg->only >= 0 ? 1 : DP_DSI_EVAL_ROWS;
    if (cfg->agg >= 0) how[0] = (dp_dsi_agg)cfg->agg;
    int32_t *out[DP_DSI_EVAL_ROWS] = {NULL};
    float *score[DP_DSI_EVAL_ROWS] = {NULL};
    int rank = 0;
    if (dsi_ensemble_comm(e) != MPI_COMM_NULL) MPI_Comm_rank(dsi_ensemble_comm(e), &rank);
    /* every rank holds the names and the pairs, so every rank decides alike */
    dp_status rc = check_known(test, nq, ensemble_lookup, e, "the ensemble", rank);
    for (int a = 0; a < nhow && rc == DP_OK; a++) {
        out[a] = malloc((size_t)nq * (size_t)k * sizeof *out[a] + 1);
        score[a] = malloc((size_t)nq * (size_t)k * sizeof *score[a] + 1);
        if (!out[a] || !score[a]) rc = dp_errorf(DP_ERR_NOMEM, "eval: out of memory for %ld answers", nq);
    }
    double t0 = dp_now();
    if (rc == DP_OK)
        rc = dp_dsi_ensemble_query(e, (const char *const *)test->query, (int)nq, cfg->beams, cfg->only, how, nhow,
                                   k, out, score);
    double secs = dp_now() - t0;
    if (rc == DP_OK && rank == 0) {
        const int n = dp_dsi_ensemble_members(e);
        for (int a = 0; a < nhow; a++) {
            dp_dsi_eval_row *r = &rows[a];
            memset(r, 0, sizeof *r);
            for (long i = 0; i < nq; i++) {
                int32_t g = dp_dsi_ensemble_doc_id(e, test->docid[i]);
                dp_dsi_metrics_add(&r->m, out[a] + (size_t)i * k, k, g >= 0 ? g : -2);
            }
            if (cfg->only >= 0) snprintf(r->method, sizeof r->method, "member%d", cfg->only);
            else
                snprintf(r->method, sizeof r->method, "%s%d",
                         how[a] == DP_DSI_AGG_VOTE     ? "vote"
                         : how[a] == DP_DSI_AGG_JOINT  ? "joint"
                         : how[a] == DP_DSI_AGG_LOGITS ? "logits"
                                                       : "confidence",
                         n);
            r->seconds = secs;
        }
        *nrows = nhow;
    }
    for (int a = 0; a < DP_DSI_EVAL_ROWS; a++) {
        free(out[a]);
        free(score[a]);
    }
    return rc;
}

/* t[d] = docid d's texts (text.tsv: the one it is indexed from; train.tsv:
 * its training queries) joined by spaces, docids numbered in first-seen order
 * (t: tr->n NULLs, room for every docid). */
static dp_status bm25_texts(const dp_dsi_pairs *tr, dsi_intern *docs, char **t)
{
    for (long i = 0; i < tr->n; i++) {
        long d = dsi_intern_get(docs, tr->docid[i], strlen(tr->docid[i]), 1, NULL);
        if (d < 0) return dp_errorf(DP_ERR_NOMEM, "bm25: out of memory");
        const size_t l = t[d] ? strlen(t[d]) + 1 : 0, a = strlen(tr->query[i]) + 1; /* l: its text and a space */
        char *s = realloc(t[d], l + a);
        if (!s) return dp_errorf(DP_ERR_NOMEM, "bm25: out of memory");
        if (l) s[l - 1] = ' ';
        memcpy(s + l, tr->query[i], a);
        t[d] = s;
    }
    return DP_OK;
}

dp_status dp_dsi_eval_bm25(const char *data_dir, const dp_dsi_pairs *test, const dp_dsi_eval_config *cfg,
                           dp_dsi_eval_row *row)
{
    enum { K_MAX = 1000 };
    if (cfg->k < 1 || cfg->k > K_MAX) return dp_errorf(DP_ERR_ARG, "bm25: k %d outside [1, %d]", cfg->k, K_MAX);
    openblas_set_num_threads(cfg->threads);
    char path[700];
    struct stat sb;
    /* the text split's text.tsv (what the DSI model indexes), else the training queries */
    snprintf(path, sizeof path, "%s/text.tsv", data_dir);
    if (stat(path, &sb) != 0) snprintf(path, sizeof path, "%s/train.tsv", data_dir);
    dp_dsi_pairs tr;
    dp_status rc = dp_dsi_pairs_load(path, 0, &tr);
    if (rc != DP_OK) return rc;
    dsi_intern docs = {0};
    char **texts = calloc((size_t)tr.n + 1, sizeof *texts);
    rc = texts ? bm25_texts(&tr, &docs, texts) : dp_errorf(DP_ERR_NOMEM, "bm25: out of memory");
    dp_bm25 *ix = NULL;
    if (rc == DP_OK) rc = check_known(test, first_n(cfg, test), intern_lookup, &docs, path, 0);
    double t0 = dp_now();
    if (rc == DP_OK) rc = dp_bm25_build((int)docs.n, (const char *const *)texts, cfg->k1, cfg->b, &ix);
    if (rc == DP_OK) {
        int32_t top[K_MAX];
        float sc[K_MAX];
        memset(row, 0, sizeof *row);
        const long n = first_n(cfg, test);
        for (long i = 0; i < n; i++) {
            int got = dp_bm25_search(ix, test->query[i], cfg->k, top, sc);
            long g = dsi_intern_get(&docs, test->docid[i], strlen(test->docid[i]), 0, NULL);
            dp_dsi_metrics_add(&row->m, top, got, g >= 0 ? (int32_t)g : -2);
        }
        snprintf(row->method, sizeof row->method, "bm25(%.2g,%.2g)", cfg->k1, cfg->b);
        row->seconds = dp_now() - t0;
    }
    dp_bm25_free(ix);
    if (texts)
        for (long d = 0; d < docs.n; d++) free(texts[d]);
    free(texts);
    dsi_intern_free(&docs);
    dp_dsi_pairs_free(&tr);
    return rc;
}

/* ------------------------------------------------------------ serving */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The q-quantile of v[0 .. n) (sorted in place): the smallest value with at least q n values at or below it. */
static double quantile(double *v, long n, double q)
{
    if (!n) return 0;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    long i = (long)ceil(q * (double)n) - 1;
    return v[i < 0 ? 0 : i];
}

/* One line from rank 0's stream to every rank: 1 with a line in buf, 0 at the end or (*rc set) when rank 0
 * refused the line; every rank learns which. */
static int next_line(FILE *in, const char *what, long lineno, int rank, MPI_Comm comm, char *buf, size_t cap,
                     dp_status *rc)
{
    int len = -1; /* -1: the end, -2: rank 0 refused the line (its message says why) */
    if (rank == 0) {
        size_t n = 0;
        int eof = 0;
        *rc = dp_line_read(in, what, lineno, buf, cap, &n, &eof);
        len = *rc != DP_OK ? -2 : eof ? -1 : (int)n;
    }
    if (comm != MPI_COMM_NULL) MPI_Bcast(&len, 1, MPI_INT, 0, comm);
    if (len == -2 && rank != 0) *rc = dp_errorf(DP_ERR_FORMAT, "rank %d: rank 0 refused a query line", rank);
    if (len < 0) return 0;
    if (comm != MPI_COMM_NULL) MPI_Bcast(buf, len + 1, MPI_CHAR, 0, comm);
    return 1;
}

dp_status dp_dsi_serve(dp_dsi_ensemble *e, const char *queries, const dp_dsi_eval_config *cfg,
                       dp_dsi_answer_fn answer, void *ctx, dp_dsi_serve_stats *st)
{
    MPI_Comm comm = dsi_ensemble_comm(e);
    int rank = 0;
    if (comm != MPI_COMM_NULL) MPI_Comm_rank(comm, &rank);
    if (st) memset(st, 0, sizeof *st);
    openblas_set_num_threads(cfg->threads);
    const int k = cfg->k;
    /* logits: 4 members at 0.97 of the centralised Hits@10 where confidence was at 0.93 (RESULTS.md §16) */
    const dp_dsi_agg how = cfg->agg >= 0 ? (dp_dsi_agg)cfg->agg : DP_DSI_AGG_LOGITS;
    int32_t *out = malloc((size_t)k * sizeof *out);
    float *score = malloc((size_t)k * sizeof *score);
    char *line = malloc(DP_DSI_QUERY_MAX + 1); /* on every rank: rank 0 broadcasts each line */
    FILE *in = stdin;
    /* every rank learns whether rank 0 has its input and every rank its buffers */
    int ok[2] = {1, out && score && line}; /* input, memory */
    char why[512] = "";
    if (rank == 0 && queries && queries[0] && dp_fopen_regular(queries, 0, &in) != DP_OK) {
        snprintf(why, sizeof why, "%s", dp_errmsg());
        ok[0] = 0;
    }
    int all[2] = {ok[0], ok[1]};
    if (comm != MPI_COMM_NULL) MPI_Allreduce(ok, all, 2, MPI_INT, MPI_MIN, comm);
    dp_status rc = DP_OK;
    if (!ok[0]) rc = dp_errorf(DP_ERR_IO, "%s", why);
    else if (!ok[1]) rc = dp_errorf(DP_ERR_NOMEM, "query: out of memory");
    else if (!all[0]) rc = dp_errorf(DP_ERR_MPI, "rank %d: rank 0 cannot open the queries", rank);
    else if (!all[1]) rc = dp_errorf(DP_ERR_MPI, "rank %d: another rank is out of memory", rank);
    double *lat = NULL;
    long nq = 0, nlat = 0;
    size_t cap = 0;
    int lat_ok = 1;
    const char *what = queries && queries[0] ? queries : "stdin";
    for (long lineno = 1; rc == DP_OK && next_line(in, what, lineno, rank, comm, line, DP_DSI_QUERY_MAX + 1, &rc);
         lineno++) {
        const char *q = line;
        double t0 = dp_now();
        rc = dp_dsi_ensemble_query(e, &q, 1, cfg->beams, cfg->only, &how, 1, k, &out, &score);
        double dt = dp_now() - t0;
        if (rc != DP_OK || rank != 0) continue;
        /* without memory for another latency the server goes on answering: the
         * other ranks are already waiting for the next line */
        if (lat_ok && !dsi_reserve(&lat, &cap, (size_t)nlat + 1, sizeof *lat)) lat_ok = 0;
        if ((size_t)nlat < cap) lat[nlat++] = dt * 1e3;
        answer(ctx, ++nq, out, score, k);
    }
    if (rank == 0 && in && in != stdin) fclose(in);
    if (rc == DP_OK && rank == 0 && st) {
        st->queries = nq;
        st->p50_ms = quantile(lat, nlat, 0.5);
        st->p99_ms = quantile(lat, nlat, 0.99);
    }
    free(lat);
    free(line);
    free(out);
    free(score);
    return rc;
}
