/* `auto`'s decision table: which allreduce for which message size, for one
 * world shape (nodes x ranks per node). Measured by `dptrain tune-allreduce`
 * (src/cli/cmd_tune.c) as Open MPI's coll/tuned dynamic rules files and NCCL's
 * tuner are; parsed here, loaded once per engine (rank 0 reads, every rank
 * parses the broadcast bytes, so all make the same choice for every call),
 * never consulted with MPI per call. Format in comm.h. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm/comm_internal.h"
#include "dptrain/infile.h"

#define TABLE_MAGIC "dptrain-allreduce-table"
#define TABLE_VERSION 1
#define TABLE_TEXT_MAX (64 * 1024)

static void table_clear(dp_allreduce_table *t)
{
    memset(t, 0, sizeof *t);
}

void dp_allreduce_table_default(int nodes, int per_node, dp_allreduce_table *out)
{
    table_clear(out);
    out->nodes = nodes;
    out->per_node = per_node;
    snprintf(out->source, sizeof out->source, "built-in");
    out->max_bytes[0] = (uint64_t)8 << 20; /* RESULTS.md §3, §4b: the ring ahead from 16 MiB at 2-16 ranks */
    out->algo[0] = DP_ALLREDUCE_MPI;
    out->nrules = 2;
    out->max_bytes[1] = UINT64_MAX;
    out->algo[1] = DP_ALLREDUCE_RING;
    if (nodes > 1 && per_node > 1) {
        /* Small messages: the hierarchy's 2 (L-1) intra-node steps and its three
         * phases cost more latency than MPI's recursive doubling saves in bytes. */
        out->max_bytes[0] = (uint64_t)64 << 10;
        out->algo[1] = 0 == (nodes & (nodes - 1)) ? DP_ALLREDUCE_HIER_RD : DP_ALLREDUCE_HIER;
    }
}

dp_allreduce_algo dp_allreduce_table_choose(const dp_allreduce_table *t, uint64_t bytes)
{
    if (NULL == t || t->nrules < 1)
        return DP_ALLREDUCE_RING;
    for (int i = 0; i < t->nrules; i++)
        if (bytes <= t->max_bytes[i])
            return t->algo[i];
    return t->algo[t->nrules - 1];
}

int dp_allreduce_table_add(dp_allreduce_table *t, uint64_t bytes, const dp_allreduce_algo *algos,
                           const double *med, int na, double margin_pct)
{
    const double keep = 1.0 - margin_pct / 100.0;
    const int have_prev = t->nrules > 0;
    int best = 0, mpi = -1, prev = -1;
    for (int a = 0; a < na; a++) {
        if (med[a] < med[best])
            best = a;
        if (DP_ALLREDUCE_MPI == algos[a])
            mpi = a;
        if (have_prev && algos[a] == t->algo[t->nrules - 1])
            prev = a;
    }
    /* Incumbents, MPI_Allreduce first: a challenger's win inside the margin may
     * be noise. The previous size's choice second, so that noise does not flip
     * the choice between two close algorithms from one size to the next (it is
     * then still faster than MPI's: MPI is not within the margin of the best). */
    if (mpi >= 0 && best != mpi && med[best] > med[mpi] * keep)
        best = mpi;
    else if (prev >= 0 && best != prev && med[best] > med[prev] * keep)
        best = prev;
    if (have_prev && t->algo[t->nrules - 1] == algos[best]) {
        t->max_bytes[t->nrules - 1] = bytes;
    } else if (t->nrules < DP_ALLREDUCE_TABLE_RULES) {
        /* The last rule ends at the previous measured size; a size between that
         * one and this takes the nearer one's choice (by ratio: the geometric
         * mean is the boundary), not always the larger one's. */
        if (have_prev && t->max_bytes[t->nrules - 1] < bytes) {
            const uint64_t lo = t->max_bytes[t->nrules - 1];
            uint64_t mid = (uint64_t)sqrt((double)lo * (double)bytes);
            if (mid < lo)
                mid = lo;
            if (mid >= bytes)
                mid = bytes - 1;
            t->max_bytes[t->nrules - 1] = mid;
        }
        t->max_bytes[t->nrules] = bytes;
        t->algo[t->nrules++] = algos[best];
    } else { /* full: the last rule covers the rest */
        t->max_bytes[t->nrules - 1] = bytes;
    }
    return best;
}

/* A whole decimal number (no sign, no space), into *v. */
static int parse_u64(const char *s, uint64_t *v)
{
    if (!isdigit((unsigned char)s[0]))
        return 0;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno || *end)
        return 0;
    *v = x;
    return 1;
}

static dp_allreduce_algo algo_of(const char *w)
{
    for (int a = 0; a < DP_ALLREDUCE_NALGOS; a++)
        if (!strcmp(w, dp_allreduce_algo_name((dp_allreduce_algo)a)))
            return (dp_allreduce_algo)a;
    return DP_ALLREDUCE_NALGOS;
}

#define BAD(field, ...)                                                                                         \
    do {                                                                                                      \
        char what_[256];                                                                                       \
        snprintf(what_, sizeof what_, __VA_ARGS__);                                                          \
        return dp_errorf(DP_ERR_ARG, "%s:%d: %s: %s", file, lineno, field, what_);                          \
    } while (0)

dp_status dp_allreduce_table_parse(const char *text, const char *file, dp_allreduce_table *out)
{
    table_clear(out);
    if (NULL == file)
        file = "(table)";
    snprintf(out->source, sizeof out->source, "%s", file);
    int lineno = 0, header = 0, have_nodes = 0, have_rpn = 0;
    char line[512];
    for (const char *p = text; *p;) {
        size_t len = strcspn(p, "\n");
        lineno++;
        if (len >= sizeof line)
            BAD("line", "longer than %zu bytes", sizeof line - 1);
        memcpy(line, p, len);
        line[len] = '\0';
        p += len + ('\n' == p[len]);
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        size_t n = strlen(line);
        while (n && isspace((unsigned char)line[n - 1]))
            line[--n] = '\0';
        char *key = line;
        while (isspace((unsigned char)*key))
            key++;
        if (!*key)
            continue;
        char *val = key + strcspn(key, " \t");
        if (*val) {
            *val++ = '\0';
            while (isspace((unsigned char)*val))
                val++;
        }
        if (!header) {
            uint64_t v = 0;
            if (strcmp(key, TABLE_MAGIC))
                BAD("header", "expected '%s %d' as the first line, found '%s'", TABLE_MAGIC, TABLE_VERSION, key);
            if (!parse_u64(val, &v) || TABLE_VERSION != v)
                BAD("version", "'%s' (this build reads version %d)", val, TABLE_VERSION);
            header = 1;
            continue;
        }
        uint64_t v = 0;
        if (!strcmp(key, "nodes") || !strcmp(key, "ranks_per_node")) {
            int *have = 'n' == key[0] ? &have_nodes : &have_rpn;
            if (*have)
                BAD(key, "given twice");
            if (!parse_u64(val, &v) || v < 1 || v > 1000000)
                BAD(key, "'%s' is not a whole number in [1, 1000000]", val);
            *have = 1;
            *('n' == key[0] ? &out->nodes : &out->per_node) = (int)v;
        } else if (!strcmp(key, "hosts")) {
            if (strlen(val) >= sizeof out->hosts)
                BAD("hosts", "longer than %zu characters", sizeof out->hosts - 1);
            snprintf(out->hosts, sizeof out->hosts, "%s", val);
        } else if (!strcmp(key, "mpi")) {
            snprintf(out->mpi, sizeof out->mpi, "%s", val);
        } else if (isdigit((unsigned char)key[0])) {
            if (!parse_u64(key, &v))
                BAD("max_bytes", "'%s' is not a whole number of bytes", key);
            if (out->nrules && v <= out->max_bytes[out->nrules - 1])
                BAD("max_bytes", "%" PRIu64 " is not above the previous rule's %" PRIu64 " (rules ascend)", v,
                    out->max_bytes[out->nrules - 1]);
            if (!*val)
                BAD("algorithm", "missing after max_bytes %" PRIu64, v);
            if (strcspn(val, " \t") != strlen(val))
                BAD("algorithm", "'%s': one word expected", val);
            dp_allreduce_algo a = algo_of(val);
            if (DP_ALLREDUCE_AUTO == a || a >= DP_ALLREDUCE_NALGOS)
                BAD("algorithm", "'%s' (expected ring, mpi, hier, hier-rd or rd)", val);
            if (out->nrules >= DP_ALLREDUCE_TABLE_RULES)
                BAD("max_bytes", "more than %d rules", DP_ALLREDUCE_TABLE_RULES);
            out->max_bytes[out->nrules] = v;
            out->algo[out->nrules++] = a;
        } else {
            BAD("field", "unknown field '%s' (expected nodes, ranks_per_node, hosts, mpi or 'max_bytes algorithm')",
                key);
        }
    }
    if (0 == lineno)
        lineno = 1;
    if (!header)
        BAD("header", "empty table (expected '%s %d')", TABLE_MAGIC, TABLE_VERSION);
    if (!have_nodes)
        BAD("nodes", "missing");
    if (!have_rpn)
        BAD("ranks_per_node", "missing");
    if (!out->nrules)
        BAD("max_bytes", "no 'max_bytes algorithm' rules");
    return DP_OK;
}

int dp_allreduce_table_format(const dp_allreduce_table *t, char *buf, size_t n)
{
    size_t k = 0;
    int w = snprintf(buf, n, "%s %d\nnodes %d\nranks_per_node %d\n", TABLE_MAGIC, TABLE_VERSION, t->nodes,
                     t->per_node);
    if (w < 0 || (size_t)w >= n)
        return -1;
    k = (size_t)w;
    if (t->hosts[0] || t->mpi[0]) {
        w = snprintf(buf + k, n - k, "hosts %s\nmpi %s\n", t->hosts[0] ? t->hosts : "-", t->mpi[0] ? t->mpi : "-");
        if (w < 0 || (size_t)w >= n - k)
            return -1;
        k += (size_t)w;
    }
    w = snprintf(buf + k, n - k, "# max_bytes algorithm: a message of b bytes takes the first rule with b <= "
                                 "max_bytes, the last one past them all\n");
    if (w < 0 || (size_t)w >= n - k)
        return -1;
    k += (size_t)w;
    for (int i = 0; i < t->nrules; i++) {
        w = snprintf(buf + k, n - k, "%" PRIu64 " %s\n", t->max_bytes[i], dp_allreduce_algo_name(t->algo[i]));
        if (w < 0 || (size_t)w >= n - k)
            return -1;
        k += (size_t)w;
    }
    return (int)k;
}

/* The file's text, NUL-terminated, in *out (malloc'd), at most TABLE_TEXT_MAX bytes. */
static dp_status read_text(const char *path, char **out)
{
    *out = NULL;
    FILE *f;
    dp_status st = dp_fopen_regular(path, 0, &f);
    if (DP_OK != st)
        return st;
    char *buf = malloc(TABLE_TEXT_MAX + 1);
    if (NULL == buf) {
        fclose(f);
        return dp_errorf(DP_ERR_NOMEM, "allreduce table %s: out of memory", path);
    }
    size_t n = fread(buf, 1, TABLE_TEXT_MAX + 1, f);
    int err = ferror(f);
    fclose(f);
    if (err || n > TABLE_TEXT_MAX) {
        free(buf);
        return err ? dp_errorf(DP_ERR_IO, "allreduce table %s: read error", path)
                   : dp_errorf(DP_ERR_ARG, "allreduce table %s: larger than %d bytes", path, TABLE_TEXT_MAX);
    }
    buf[n] = '\0';
    if (strlen(buf) != n) {
        free(buf);
        return dp_errorf(DP_ERR_ARG, "allreduce table %s: holds a NUL byte (not a text file)", path);
    }
    *out = buf;
    return DP_OK;
}

dp_status dp_allreduce_table_read(const char *path, dp_allreduce_table *out)
{
    char *text;
    dp_status st = read_text(path, &text);
    if (DP_OK == st)
        st = dp_allreduce_table_parse(text, path, out);
    free(text);
    return st;
}

static uint64_t fnv1a(uint64_t h, const char *s)
{
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(a, b);
}

dp_status dp_allreduce_hosts_hash(MPI_Comm comm, char out[17])
{
    int size = 1, len = 0;
    MPI_Comm_size(comm, &size);
    char mine[MPI_MAX_PROCESSOR_NAME + 1] = {0};
    MPI_Get_processor_name(mine, &len);
    char *all = calloc((size_t)size, sizeof mine);
    if (NULL == all)
        return dp_errorf(DP_ERR_NOMEM, "allreduce table: out of memory");
    int rc = MPI_Allgather(mine, (int)sizeof mine, MPI_CHAR, all, (int)sizeof mine, MPI_CHAR, comm);
    if (MPI_SUCCESS != rc) {
        free(all);
        return dp_mpi_errorf(rc, "allreduce table: MPI_Allgather of the host names failed");
    }
    qsort(all, (size_t)size, sizeof mine, cmp_name);
    uint64_t h = 0xcbf29ce484222325ull;
    for (int i = 0; i < size; i++)
        if (0 == i || strcmp(all + i * sizeof mine, all + (i - 1) * sizeof mine))
            h = fnv1a(fnv1a(h, all + i * sizeof mine), "\n");
    free(all);
    snprintf(out, 17, "%016" PRIx64, h);
    return DP_OK;
}

dp_status dp_allreduce_table_load(MPI_Comm comm, const char *path, int nodes, int per_node,
                                  dp_allreduce_table *out)
{
    int rank = 0;
    MPI_Comm_rank(comm, &rank);
    /* Rank 0 decides (its flag, else its environment: a launcher may not pass
     * DP_ALLREDUCE_TABLE to every host), reads, and sends [status, length,
     * path] then the text: every rank takes the same branch and parses the
     * same bytes. */
    char where[512] = {0};
    char *text = NULL;
    long hdr[2] = {DP_OK, -1}; /* length -1: no table, the built-in rule */
    char msg[1024] = {0};
    if (0 == rank) {
        if (NULL == path || !path[0])
            path = getenv("DP_ALLREDUCE_TABLE");
        if (path && path[0]) {
            snprintf(where, sizeof where, "%s", path);
            dp_status st = read_text(path, &text);
            hdr[0] = st;
            hdr[1] = text ? (long)strlen(text) : 0;
            if (DP_OK != st)
                snprintf(msg, sizeof msg, "%s", dp_errmsg());
        }
    }
    int rc = MPI_Bcast(hdr, 2, MPI_LONG, 0, comm);
    if (MPI_SUCCESS == rc)
        rc = MPI_Bcast(where, (int)sizeof where, MPI_CHAR, 0, comm);
    if (MPI_SUCCESS == rc && DP_OK != hdr[0])
        rc = MPI_Bcast(msg, (int)sizeof msg, MPI_CHAR, 0, comm);
    if (MPI_SUCCESS == rc && DP_OK == hdr[0] && hdr[1] >= 0) {
        if (0 != rank && NULL == (text = calloc((size_t)hdr[1] + 1, 1)))
            MPI_Abort(comm, 1); /* a few KiB: the broadcast cannot be skipped on one rank */
        rc = MPI_Bcast(text, (int)hdr[1], MPI_CHAR, 0, comm);
    }
    dp_status st;
    if (MPI_SUCCESS != rc)
        st = dp_mpi_errorf(rc, "allreduce table %s: broadcast from rank 0 failed", where);
    else if (DP_OK != hdr[0])
        st = dp_errorf((dp_status)hdr[0], "%s", msg);
    else if (hdr[1] < 0) {
        dp_allreduce_table_default(nodes, per_node, out);
        st = DP_OK;
    } else
        st = dp_allreduce_table_parse(text, where, out);
    free(text);
    if (DP_OK != st || hdr[1] < 0)
        return st;
    if (out->nodes != nodes || out->per_node != per_node) {
        if (0 == rank)
            fprintf(stderr, "dptrain: warning: allreduce table %s was measured on %d node(s) x %d rank(s) per "
                            "node, this run is %d x %d: using the built-in rule instead (run dptrain "
                            "tune-allreduce on this shape)\n", where, out->nodes, out->per_node, nodes, per_node);
        dp_allreduce_table_default(nodes, per_node, out);
        return DP_OK;
    }
    if (out->hosts[0] && strcmp(out->hosts, "-")) {
        char mine[17];
        if (DP_OK != (st = dp_allreduce_hosts_hash(comm, mine)))
            return st;
        if (strcmp(mine, out->hosts) && 0 == rank)
            fprintf(stderr, "dptrain: note: allreduce table %s was measured on other hosts (hash %s, here %s); "
                            "using it, as the shape matches\n", where, out->hosts, mine);
    }
    return DP_OK;
}
