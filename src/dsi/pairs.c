/* Query<TAB>docid pair files (dsi-eval's test file, train.tsv / test.tsv of a
 * dataset dir) and the small text helpers the DSI data side shares: a byte
 * arena, a string interner and line reading (declared in data_internal.h).
 *
 * A pairs file is read line by line; every string lands in one arena, so a
 * loaded file costs two pointers per pair plus its text. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "dsi/data_internal.h"

/* ============================================================ arena */

dp_status dsi_arena_add(dsi_arena *a, const char *s, size_t n, int64_t *off)
{
    if (a->len + n + 1 > a->cap) {
        size_t cap = a->cap ? a->cap : 4096;
        while (cap < a->len + n + 1) cap *= 2;
        char *b = realloc(a->buf, cap);
        if (!b) return dp_errorf(DP_ERR_NOMEM, "dsi: out of memory (%zu bytes of text)", cap);
        a->buf = b;
        a->cap = cap;
    }
    memcpy(a->buf + a->len, s, n);
    a->buf[a->len + n] = '\0';
    *off = (int64_t)a->len;
    a->len += n + 1;
    return DP_OK;
}

void dsi_arena_free(dsi_arena *a)
{
    free(a->buf);
    memset(a, 0, sizeof *a);
}

/* ============================================================ interner */

static dp_status intern_grow(dsi_intern *t)
{
    size_t cap = t->cap ? 2 * t->cap : 1024;
    long *slot = malloc(cap * sizeof *slot);
    int64_t *off = realloc(t->off, cap / 2 * sizeof *off);
    if (!slot || !off) {
        free(slot);
        if (off) t->off = off;
        return dp_errorf(DP_ERR_NOMEM, "dsi: out of memory (string table of %zu)", cap);
    }
    t->off = off;
    for (size_t i = 0; i < cap; i++) slot[i] = -1;
    for (long id = 0; id < t->n; id++) {
        const char *k = dsi_intern_str(t, id);
        size_t h = (size_t)XXH3_64bits(k, strlen(k)) & (cap - 1);
        while (slot[h] >= 0) h = (h + 1) & (cap - 1);
        slot[h] = id;
    }
    free(t->slot);
    t->slot = slot;
    t->cap = cap;
    return DP_OK;
}

long dsi_intern_get(dsi_intern *t, const char *s, size_t n, int add, int *is_new)
{
    if (is_new) *is_new = 0;
    if (t->cap == 0) {
        if (!add) return -1;
        if (intern_grow(t) != DP_OK) return -2;
    }
    size_t h = (size_t)XXH3_64bits(s, n) & (t->cap - 1);
    for (; t->slot[h] >= 0; h = (h + 1) & (t->cap - 1)) {
        const char *k = dsi_intern_str(t, t->slot[h]);
        if (strncmp(k, s, n) == 0 && k[n] == '\0') return t->slot[h];
    }
    if (!add) return -1;
    if ((size_t)(t->n + 1) * 2 > t->cap) { /* load <= 1/2; off has cap/2 entries */
        if (intern_grow(t) != DP_OK) return -2;
        return dsi_intern_get(t, s, n, add, is_new);
    }
    int64_t off;
    if (dsi_arena_add(&t->keys, s, n, &off) != DP_OK) return -2;
    t->off[t->n] = off;
    t->slot[h] = t->n;
    if (is_new) *is_new = 1;
    return t->n++;
}

void dsi_intern_free(dsi_intern *t)
{
    free(t->off);
    free(t->slot);
    dsi_arena_free(&t->keys);
    memset(t, 0, sizeof *t);
}

/* ============================================================ text */

long dsi_getline(char **buf, size_t *cap, FILE *f)
{
    ssize_t n = getline(buf, cap, f);
    if (n < 0) return -1;
    if (n > 0 && (*buf)[n - 1] == '\n') (*buf)[--n] = '\0';
    if (n > 0 && (*buf)[n - 1] == '\r') (*buf)[--n] = '\0';
    return (long)n;
}

static int is_space(unsigned char ch) { return ch == ' ' || (ch >= '\t' && ch <= '\r') || (ch >= 0x1c && ch <= 0x1f); }

/* Bytes of the Unicode space at s (UTF-8: U+0085, U+00A0, U+1680, U+2000..U+200A,
 * U+2028, U+2029, U+202F, U+205F, U+3000), or 0. Descriptions use no-break and
 * hair spaces between words; they separate words like ' ' does. */
static int uni_space(const unsigned char *s, size_t left)
{
    if (left >= 2 && s[0] == 0xc2 && (s[1] == 0x85 || s[1] == 0xa0)) return 2;
    if (left < 3) return 0;
    if (s[0] == 0xe1 && s[1] == 0x9a && s[2] == 0x80) return 3;
    if (s[0] == 0xe2 && s[1] == 0x80 && (s[2] <= 0x8a || s[2] == 0xa8 || s[2] == 0xa9 || s[2] == 0xaf)) return 3;
    if (s[0] == 0xe2 && s[1] == 0x81 && s[2] == 0x9f) return 3;
    if (s[0] == 0xe3 && s[1] == 0x80 && s[2] == 0x80) return 3;
    return 0;
}

size_t dsi_squash_space(char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t o = 0;
    int gap = 0;
    for (size_t i = 0; i < n;) {
        int w = is_space(u[i]) ? 1 : u[i] >= 0xc2 ? uni_space(u + i, n - i) : 0;
        if (w) {
            gap = o > 0;
            i += (size_t)w;
            continue;
        }
        if (gap) s[o++] = ' ';
        gap = 0;
        s[o++] = s[i++];
    }
    s[o] = '\0';
    return o;
}

int dsi_count_words(const char *s)
{
    int n = 0, in = 0;
    for (; *s; s++) {
        int sp = is_space((unsigned char)*s);
        n += !sp && !in;
        in = !sp;
    }
    return n;
}

/* ============================================================ pairs */

/* Exact-pair dedupe: open addressing over pair indices, keyed by the
 * hash of "query\tdocid". */
typedef struct pair_set {
    long *slot;
    size_t cap;
} pair_set;

static uint64_t pair_hash(const char *q, const char *d)
{
    return XXH3_64bits_withSeed(d, strlen(d), XXH3_64bits(q, strlen(q)));
}

dp_status dp_dsi_pairs_load(const char *path, int dedupe, dp_dsi_pairs *out)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return dp_errorf(DP_ERR_IO, "%s: open: %s", path, strerror(errno));
    dsi_arena a = {0};
    int64_t *qo = NULL, *dof = NULL;
    uint64_t *hash = NULL;
    pair_set set = {0};
    long n = 0, cap = 0, line = 0, len;
    char *buf = NULL;
    size_t bcap = 0;
    dp_status rc = DP_OK;
    while ((len = dsi_getline(&buf, &bcap, f)) >= 0) {
        line++;
        if (len == 0) continue;
        if (memchr(buf, '\0', (size_t)len)) { /* it would cut a field short, even to nothing */
            rc = dp_errorf(DP_ERR_FORMAT, "%s:%ld: NUL byte in a text line", path, line);
            break;
        }
        char *tab = memchr(buf, '\t', (size_t)len);
        if (!tab) {
            rc = dp_errorf(DP_ERR_FORMAT, "%s:%ld: no tab (want query<TAB>docid)", path, line);
            break;
        }
        *tab = '\0';
        char *doc = tab + 1;
        size_t ql = (size_t)(tab - buf), dl = (size_t)(buf + len - doc);
        if (memchr(doc, '\t', dl)) {
            rc = dp_errorf(DP_ERR_FORMAT, "%s:%ld: more than two tab-separated fields (want query<TAB>docid)",
                           path, line);
            break;
        }
        if (ql == 0 || dl == 0) {
            rc = dp_errorf(DP_ERR_FORMAT, "%s:%ld: empty %s", path, line, ql == 0 ? "query" : "docid");
            break;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 1024;
            int64_t *q2 = realloc(qo, (size_t)cap * sizeof *qo);
            if (q2) qo = q2;
            int64_t *d2 = realloc(dof, (size_t)cap * sizeof *dof);
            if (d2) dof = d2;
            uint64_t *h2 = realloc(hash, (size_t)cap * sizeof *hash);
            if (h2) hash = h2;
            if (!q2 || !d2 || !h2) {
                rc = dp_errorf(DP_ERR_NOMEM, "%s: out of memory at line %ld", path, line);
                break;
            }
        }
        if (dedupe) {
            uint64_t h = pair_hash(buf, doc);
            if ((size_t)(n + 1) * 2 > set.cap) {
                size_t nc = set.cap ? 2 * set.cap : 2048;
                long *ns = malloc(nc * sizeof *ns);
                if (!ns) {
                    rc = dp_errorf(DP_ERR_NOMEM, "%s: out of memory at line %ld", path, line);
                    break;
                }
                for (size_t i = 0; i < nc; i++) ns[i] = -1;
                for (long i = 0; i < n; i++) {
                    size_t s = (size_t)hash[i] & (nc - 1);
                    while (ns[s] >= 0) s = (s + 1) & (nc - 1);
                    ns[s] = i;
                }
                free(set.slot);
                set.slot = ns;
                set.cap = nc;
            }
            size_t s = (size_t)h & (set.cap - 1);
            int dup = 0;
            for (; set.slot[s] >= 0; s = (s + 1) & (set.cap - 1)) {
                long j = set.slot[s];
                if (hash[j] == h && !strcmp(a.buf + qo[j], buf) && !strcmp(a.buf + dof[j], doc)) {
                    dup = 1;
                    break;
                }
            }
            if (dup) continue;
            set.slot[s] = n;
            hash[n] = h;
        }
        if ((rc = dsi_arena_add(&a, buf, ql, &qo[n])) != DP_OK || (rc = dsi_arena_add(&a, doc, dl, &dof[n])) != DP_OK)
            break;
        n++;
    }
    if (rc == DP_OK && ferror(f)) rc = dp_errorf(DP_ERR_IO, "%s: read error after line %ld", path, line);
    fclose(f);
    free(buf);
    free(set.slot);
    free(hash);
    if (rc == DP_OK) {
        /* One block of 2n pointers (query, then docid) into the arena, whose
         * first string is query 0: dp_dsi_pairs_free frees query[0] and query. */
        out->query = malloc((size_t)(2 * n + 1) * sizeof *out->query);
        if (!out->query) rc = dp_errorf(DP_ERR_NOMEM, "%s: out of memory for %ld pairs", path, n);
    }
    if (rc != DP_OK) {
        free(qo);
        free(dof);
        dsi_arena_free(&a);
        memset(out, 0, sizeof *out);
        return rc;
    }
    out->n = n;
    out->docid = out->query + n;
    for (long i = 0; i < n; i++) {
        out->query[i] = a.buf + qo[i];
        out->docid[i] = a.buf + dof[i];
    }
    if (n == 0) dsi_arena_free(&a);
    free(qo);
    free(dof);
    return DP_OK;
}

void dp_dsi_pairs_free(dp_dsi_pairs *p)
{
    if (!p) return;
    if (p->query && p->n > 0) free(p->query[0]); /* the arena: query 0 is its first string */
    free(p->query);
    memset(p, 0, sizeof *p);
}
