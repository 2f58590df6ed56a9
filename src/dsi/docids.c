/* Document identifiers and their prefix trie.
 *
 * Atomic: one digit, the document index. Semantic (Tay et al. 2022, DSI,
 * sec. 3.2 "Semantically structured identifiers"): the documents are split
 * into k clusters by k-means over their TF-IDF vectors (kmeans.c); each
 * cluster of more than `leaf` documents is split again, recursively, and a
 * cluster of at most `leaf` documents numbers them 0..size-1 (in document
 * order), which is the id's last digit:
 *
 *      root --k-means--> 0 .. k-1 --k-means--> 0 .. k-1 --position--> 0 .. leaf-1
 *
 * A group k-means leaves in one cluster is dealt round-robin (so every level
 * divides its group by at least 2 and the recursion ends); at depth
 * DP_DSI_MAXLEN - 1 the remaining group is numbered by position whatever its
 * size. Empty clusters are skipped, so a node's digits are 0..count-1.
 * Each group's k-means seed is derived from (seed, its prefix): the ids are a
 * function of (x, k, leaf, seed).
 *
 * The trie (dp_dsi_docids_index): the ids are sorted lexicographically
 * (duplicates and prefixes are then neighbours and are rejected), and the
 * nodes are made breadth-first, so nodes of one depth are contiguous
 * (level_base) and a node's children are contiguous and sorted by digit. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/dsi.h"

enum { KM_ITERS = 10 };

static void trie_free(dp_dsi_trie *t)
{
    free(t->depth);
    free(t->first);
    free(t->count);
    free(t->digit);
    free(t->doc);
    free(t->level_base);
    memset(t, 0, sizeof *t);
}

void dp_dsi_docids_free(dp_dsi_docids *ids)
{
    if (!ids) return;
    free(ids->len);
    free(ids->code);
    free(ids->leaf);
    trie_free(&ids->trie);
    memset(ids, 0, sizeof *ids);
}

dp_status dp_dsi_docids_atomic(int ndocs, dp_dsi_docids *out)
{
    memset(out, 0, sizeof *out);
    if (ndocs < 1 || ndocs > 65536)
        return dp_errorf(DP_ERR_ARG, "atomic docids: %d documents (1..65536: a digit is 16 bits)", ndocs);
    out->kind = DP_DSI_ATOMIC;
    out->ndocs = ndocs;
    out->maxlen = 1;
    out->len = malloc((size_t)ndocs);
    out->code = malloc((size_t)ndocs * sizeof *out->code);
    if (!out->len || !out->code) {
        dp_dsi_docids_free(out);
        return dp_errorf(DP_ERR_NOMEM, "atomic docids: out of memory (%d documents)", ndocs);
    }
    for (int d = 0; d < ndocs; d++) {
        out->len[d] = 1;
        out->code[d] = (uint16_t)d;
    }
    dp_status rc = dp_dsi_docids_index(out);
    if (rc != DP_OK) dp_dsi_docids_free(out);
    return rc;
}

/* ------------------------------------------------------------------ semantic */

typedef struct sem_state {
    const dp_sparse_rows *x;
    int k, leaf;
    uint64_t seed;
    uint16_t prefix[DP_DSI_MAXLEN];
    uint8_t *len;   /* [ndocs] */
    uint16_t *code; /* [ndocs * DP_DSI_MAXLEN] while building */
} sem_state;

/* A seed per group, from the run's seed and the group's prefix (FNV-1a, then splitmix64's finaliser). */
static uint64_t group_seed(const sem_state *s, int depth)
{
    uint64_t h = 1469598103934665603ull ^ s->seed;
    h = (h ^ (uint64_t)depth) * 1099511628211ull;
    for (int l = 0; l < depth; l++) h = (h ^ s->prefix[l]) * 1099511628211ull;
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    return h ^ (h >> 31);
}

/* Ids for the documents rows[0..n) (ascending), whose ids start with prefix[0..depth).
 * assign/tmp are the scratch positions of rows (same offset from the array start). */
static dp_status sem_split(sem_state *s, int *rows, int *assign, int *tmp, int n, int depth)
{
    if (n <= s->leaf || depth == DP_DSI_MAXLEN - 1) {
        if (n > 65536)
            return dp_errorf(DP_ERR_ARG, "semantic docids: %d documents left at depth %d (a digit is 16 bits)", n,
                             depth);
        for (int i = 0; i < n; i++) {
            uint16_t *c = s->code + (long)rows[i] * DP_DSI_MAXLEN;
            memcpy(c, s->prefix, (size_t)depth * sizeof *c);
            c[depth] = (uint16_t)i;
            s->len[rows[i]] = (uint8_t)(depth + 1);
        }
        return DP_OK;
    }
    const int k = s->k;
    dp_status rc = dp_kmeans(s->x, rows, n, k, KM_ITERS, group_seed(s, depth), assign);
    if (rc != DP_OK) return rc;
    int *size = calloc(3 * (size_t)k + 2, sizeof *size); /* size [k + 1], then digit [k], start [k + 1] */
    if (!size) return dp_errorf(DP_ERR_NOMEM, "semantic docids: out of memory");
    int *digit = size + k + 1, *start = digit + k;
    for (int i = 0; i < n; i++) size[assign[i]]++;
    int nonempty = 0;
    for (int j = 0; j < k; j++) nonempty += size[j] > 0;
    if (nonempty < 2) { /* k-means could not split the group: deal it out */
        memset(size, 0, (size_t)k * sizeof *size);
        for (int i = 0; i < n; i++) size[assign[i] = i % k]++;
    }
    /* digits: the non-empty clusters in cluster order; stable partition of rows by digit */
    int m = 0;
    for (int j = 0; j < k; j++) digit[j] = size[j] ? m++ : -1;
    start[0] = 0;
    for (int j = 0, q = 0; j < k; j++)
        if (size[j]) {
            start[q + 1] = start[q] + size[j];
            q++;
        }
    int *fill = size; /* reuse: next free slot per digit */
    for (int q = 0; q < m; q++) fill[q] = start[q];
    for (int i = 0; i < n; i++) tmp[fill[digit[assign[i]]]++] = rows[i];
    memcpy(rows, tmp, (size_t)n * sizeof *rows);
    for (int q = 0; q < m && rc == DP_OK; q++) {
        s->prefix[depth] = (uint16_t)q;
        rc = sem_split(s, rows + start[q], assign + start[q], tmp + start[q], start[q + 1] - start[q], depth + 1);
    }
    free(size);
    return rc;
}

dp_status dp_dsi_docids_semantic(const dp_sparse_rows *x, int k, int leaf, uint64_t seed, dp_dsi_docids *out)
{
    memset(out, 0, sizeof *out);
    if (!x || x->n < 1) return dp_errorf(DP_ERR_ARG, "semantic docids: no documents");
    if (k < 2 || k > 65536) return dp_errorf(DP_ERR_ARG, "semantic docids: k = %d (2..65536)", k);
    if (leaf < 1 || leaf > 65536) return dp_errorf(DP_ERR_ARG, "semantic docids: leaf = %d (1..65536)", leaf);
    const int n = x->n;
    sem_state s = {.x = x, .k = k, .leaf = leaf, .seed = seed};
    int *rows = malloc((size_t)n * sizeof *rows);
    int *assign = malloc((size_t)n * sizeof *assign); /* scratch, indexed like rows */
    int *tmp = malloc((size_t)n * sizeof *tmp);
    s.len = malloc((size_t)n);
    s.code = calloc((size_t)n * DP_DSI_MAXLEN, sizeof *s.code);
    dp_status rc = DP_OK;
    if (!rows || !assign || !tmp || !s.len || !s.code) {
        rc = dp_errorf(DP_ERR_NOMEM, "semantic docids: out of memory (%d documents)", n);
        goto done;
    }
    for (int d = 0; d < n; d++) rows[d] = d;
    rc = sem_split(&s, rows, assign, tmp, n, 0);
    if (rc != DP_OK) goto done;
    int maxlen = 1;
    for (int d = 0; d < n; d++)
        if (s.len[d] > maxlen) maxlen = s.len[d];
    out->kind = DP_DSI_SEMANTIC;
    out->ndocs = n;
    out->maxlen = maxlen;
    out->len = s.len;
    s.len = NULL;
    out->code = calloc((size_t)n * maxlen, sizeof *out->code);
    if (!out->code) {
        rc = dp_errorf(DP_ERR_NOMEM, "semantic docids: out of memory (%d documents)", n);
        goto done;
    }
    for (int d = 0; d < n; d++)
        memcpy(out->code + (long)d * maxlen, s.code + (long)d * DP_DSI_MAXLEN, (size_t)maxlen * sizeof *out->code);
    rc = dp_dsi_docids_index(out);
done:
    if (rc != DP_OK) dp_dsi_docids_free(out);
    free(rows);
    free(assign);
    free(tmp);
    free(s.len);
    free(s.code);
    return rc;
}

/* ------------------------------------------------------------------ trie */

/* <0, 0, >0: id a before, equal to, after id b (a proper prefix comes first) */
static int code_cmp(const dp_dsi_docids *ids, int a, int b)
{
    const uint16_t *ca = ids->code + (long)a * ids->maxlen, *cb = ids->code + (long)b * ids->maxlen;
    const int la = ids->len[a], lb = ids->len[b];
    for (int l = 0; l < la && l < lb; l++)
        if (ca[l] != cb[l]) return ca[l] < cb[l] ? -1 : 1;
    return (la > lb) - (la < lb);
}

/* qsort_r order of document indices: by id, then by index (a stable sort's order) */
static int ord_cmp(const void *a, const void *b, void *ids)
{
    const int x = *(const int *)a, y = *(const int *)b, c = code_cmp(ids, x, y);
    return c ? c : (x > y) - (x < y);
}

/* 1 if id a is a prefix of (or equal to) id b */
static int is_prefix(const dp_dsi_docids *ids, int a, int b)
{
    if (ids->len[a] > ids->len[b]) return 0;
    return !memcmp(ids->code + (long)a * ids->maxlen, ids->code + (long)b * ids->maxlen,
                   (size_t)ids->len[a] * sizeof *ids->code);
}

static void format_id(char *buf, size_t cap, const dp_dsi_docids *ids, int d)
{
    size_t o = 0;
    buf[0] = 0;
    for (int l = 0; l < ids->len[d] && o + 8 < cap; l++)
        o += (size_t)snprintf(buf + o, cap - o, l ? "-%u" : "%u", ids->code[(long)d * ids->maxlen + l]);
}

dp_status dp_dsi_docids_index(dp_dsi_docids *ids)
{
    trie_free(&ids->trie);
    free(ids->leaf);
    ids->leaf = NULL;
    memset(ids->width, 0, sizeof ids->width);
    const int n = ids->ndocs, L = ids->maxlen;
    if (n < 1 || L < 1 || L > DP_DSI_MAXLEN || !ids->len || !ids->code)
        return dp_errorf(DP_ERR_FORMAT, "docids: %d documents, maxlen %d (1..%d)", n, L, DP_DSI_MAXLEN);
    if (ids->kind != DP_DSI_ATOMIC && ids->kind != DP_DSI_SEMANTIC)
        return dp_errorf(DP_ERR_FORMAT, "docids: kind %d", (int)ids->kind);
    long cap = 1;
    for (int d = 0; d < n; d++) {
        if (ids->len[d] < 1 || ids->len[d] > L)
            return dp_errorf(DP_ERR_FORMAT, "docids: document %d has length %d (1..%d)", d, ids->len[d], L);
        cap += ids->len[d];
    }
    dp_status rc = DP_OK;
    dp_dsi_trie *t = &ids->trie;
    int *ord = malloc((size_t)n * sizeof *ord);
    int *lo = malloc((size_t)cap * sizeof *lo), *hi = malloc((size_t)cap * sizeof *hi);
    t->depth = malloc((size_t)cap * sizeof *t->depth);
    t->first = malloc((size_t)cap * sizeof *t->first);
    t->count = malloc((size_t)cap * sizeof *t->count);
    t->digit = malloc((size_t)cap * sizeof *t->digit);
    t->doc = malloc((size_t)cap * sizeof *t->doc);
    t->level_base = malloc(((size_t)L + 2) * sizeof *t->level_base);
    ids->leaf = malloc((size_t)n * sizeof *ids->leaf);
    if (!ord || !lo || !hi || !t->depth || !t->first || !t->count || !t->digit || !t->doc || !t->level_base ||
        !ids->leaf) {
        rc = dp_errorf(DP_ERR_NOMEM, "docids: out of memory (%d documents)", n);
        goto done;
    }
    for (int d = 0; d < n; d++) ord[d] = d;
    qsort_r(ord, (size_t)n, sizeof *ord, ord_cmp, ids);
    for (int i = 0; i + 1 < n; i++)
        if (is_prefix(ids, ord[i], ord[i + 1])) {
            char a[128], b[128];
            format_id(a, sizeof a, ids, ord[i]);
            format_id(b, sizeof b, ids, ord[i + 1]);
            const int same = ids->len[ord[i]] == ids->len[ord[i + 1]];
            rc = dp_errorf(DP_ERR_FORMAT, "docids: documents %d (%s) and %d (%s): %s", ord[i], a, ord[i + 1], b,
                           same ? "same id" : "the first id is a prefix of the second");
            goto done;
        }
    /* breadth-first: the nodes of depth l are expanded in order, each into
     * the runs of equal digit l of its (sorted) range of documents */
    int nn = 1;
    t->depth[0] = 0;
    t->digit[0] = -1;
    lo[0] = 0;
    hi[0] = n;
    t->level_base[0] = 0;
    for (int l = 0; l <= L; l++) {
        const int end = nn;
        for (int v = t->level_base[l]; v < end; v++) {
            t->doc[v] = -1;
            t->first[v] = -1;
            t->count[v] = 0;
            if (ids->len[ord[lo[v]]] == l) { /* prefix-free: the range is this one document */
                t->doc[v] = ord[lo[v]];
                ids->leaf[ord[lo[v]]] = v;
                continue;
            }
            t->first[v] = nn;
            for (int i = lo[v]; i < hi[v];) {
                const uint16_t dg = ids->code[(long)ord[i] * L + l];
                int e = i + 1;
                while (e < hi[v] && ids->code[(long)ord[e] * L + l] == dg) e++;
                t->depth[nn] = l + 1;
                t->digit[nn] = dg;
                lo[nn] = i;
                hi[nn] = e;
                if (dg + 1 > ids->width[l]) ids->width[l] = dg + 1;
                nn++;
                t->count[v]++;
                i = e;
            }
        }
        t->level_base[l + 1] = end;
    }
    t->nnodes = nn;
    if (ids->kind == DP_DSI_ATOMIC)
        for (int d = 0; d < n; d++)
            if (L != 1 || ids->code[d] != d) {
                rc = dp_errorf(DP_ERR_FORMAT, "docids: atomic, but document %d's id is not the digit %d", d, d);
                goto done;
            }
done:
    free(ord);
    free(lo);
    free(hi);
    if (rc != DP_OK) {
        trie_free(t);
        free(ids->leaf);
        ids->leaf = NULL;
        memset(ids->width, 0, sizeof ids->width);
    }
    return rc;
}
