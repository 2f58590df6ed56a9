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

#include "dptrain/infile.h"
#include "dptrain/fsutil.h"
#include "dsi/data_internal.h"

/* ============================================================ arena */

dp_status dsi_arena_add(dsi_arena *a, const char *s, size_t n, int64_t *off)
{
    if (!dsi_reserve(&a->buf, &a->cap, a->len + n + 1, 1))
        return dp_errorf(DP_ERR_NOMEM, "dsi: out of memory (%zu bytes of text)", a->len + n + 1);
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

int dsi_resize(void *pp, size_t n, size_t size)
{
    void *p; /* *pp is a T *: copied, not read through a void ** */
    memcpy(&p, pp, sizeof p);
    if (!(p = realloc(p, n * size + 1))) return 0;
    memcpy(pp, &p, sizeof p);
    return 1;
}

int dsi_reserve(void *pp, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap) return 1;
    size_t c = *cap > 1024 ? *cap : 1024;
    while (c < need) c *= 2;
    if (!dsi_resize(pp, c, size)) return 0;
    *cap = c;
    return 1;
}

char **dsi_names_block(const char *blob, size_t len, long n)
{
    char **names = malloc((size_t)n * sizeof *names + len + 1);
    if (!names) return NULL;
    char *s = (char *)(names + n);
    if (len) memcpy(s, blob, len); /* (blob may be NULL when empty) */
    for (long i = 0; i < n; i++) {
        names[i] = s;
        s += strlen(s) + 1;
    }
    return names;
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

dp_status dsi_lines_open(dsi_lines *r, const char *dir, const char *name)
{
    memset(r, 0, sizeof *r);
    dp_status rc = dir ? dp_path_join(r->path, sizeof r->path, dir, name) : DP_OK;
    if (!dir && snprintf(r->path, sizeof r->path, "%s", name) >= (int)sizeof r->path)
        rc = dp_errorf(DP_ERR_ARG, "%s: path too long", name);
    if (rc != DP_OK) return rc;
    return dp_fopen_regular(r->path, 0, &r->f);
}

int dsi_lines_next(dsi_lines *r)
{
    ssize_t n;
    if (r->rc != DP_OK || (n = getline(&r->buf, &r->cap, r->f)) < 0) return 0;
    r->line++;
    if (n > 0 && r->buf[n - 1] == '\n') r->buf[--n] = '\0';
    if (n > 0 && r->buf[n - 1] == '\r') r->buf[--n] = '\0';
    r->len = (long)n;
    if (memchr(r->buf, '\0', (size_t)n))
        r->rc = dp_errorf(DP_ERR_FORMAT, "%s:%ld: NUL byte in a text line", r->path, r->line);
    return r->rc == DP_OK;
}

dp_status dsi_lines_close(dsi_lines *r, dp_status rc)
{
    if (rc == DP_OK) rc = r->rc;
    if (rc == DP_OK && ferror(r->f)) rc = dp_errorf(DP_ERR_IO, "%s: read error after line %ld", r->path, r->line);
    fclose(r->f);
    free(r->buf);
    r->f = NULL;
    r->buf = NULL;
    return rc;
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

dp_status dp_dsi_pairs_load(const char *path, int dedupe, dp_dsi_pairs *out)
{
    memset(out, 0, sizeof *out);
    dsi_lines r;
    dp_status rc = dsi_lines_open(&r, NULL, path);
    if (rc != DP_OK) return rc;
    dsi_arena a = {0};     /* pair i is "query\0docid" at off[i] */
    dsi_intern seen = {0}; /* dedupe: the lines "query\tdocid" kept */
    int64_t *off = NULL;
    long n = 0;
    size_t cap = 0;
    while (rc == DP_OK && dsi_lines_next(&r)) {
        if (r.len == 0) continue;
        char *tab = memchr(r.buf, '\t', (size_t)r.len);
        if (!tab) {
            rc = dp_errorf(DP_ERR_FORMAT, "%s:%ld: no tab (want query<TAB>docid)", path, r.line);
            break;
        }
        size_t ql = (size_t)(tab - r.buf), dl = (size_t)r.len - ql - 1;
        if (memchr(tab + 1, '\t', dl)) {
            rc = dp_errorf(DP_ERR_FORMAT, "%s:%ld: more than two tab-separated fields (want query<TAB>docid)",
                           path, r.line);
            break;
        }
        if (ql == 0 || dl == 0) {
            rc = dp_errorf(DP_ERR_FORMAT, "%s:%ld: empty %s", path, r.line, ql == 0 ? "query" : "docid");
            break;
        }
        int is_new = 1;
        if (dedupe && dsi_intern_get(&seen, r.buf, (size_t)r.len, 1, &is_new) < 0)
            rc = dp_errorf(DP_ERR_NOMEM, "%s: out of memory at line %ld", path, r.line);
        if (rc != DP_OK || !is_new) continue;
        if (!dsi_reserve(&off, &cap, (size_t)n + 1, sizeof *off)) {
            rc = dp_errorf(DP_ERR_NOMEM, "%s: out of memory at line %ld", path, r.line);
            break;
        }
        *tab = '\0';
        if ((rc = dsi_arena_add(&a, r.buf, (size_t)r.len, &off[n])) == DP_OK) n++;
    }
    rc = dsi_lines_close(&r, rc);
    dsi_intern_free(&seen);
    /* One block of 2n pointers (query, then docid) into the arena, whose first
     * string is query 0: dp_dsi_pairs_free frees query[0] and query. */
    if (rc == DP_OK && !(out->query = malloc((size_t)(2 * n + 1) * sizeof *out->query)))
        rc = dp_errorf(DP_ERR_NOMEM, "%s: out of memory for %ld pairs", path, n);
    if (rc != DP_OK) {
        free(off);
        dsi_arena_free(&a);
        memset(out, 0, sizeof *out);
        return rc;
    }
    out->n = n;
    snprintf(out->source, sizeof out->source, "%s", path);
    out->docid = out->query + n;
    for (long i = 0; i < n; i++) {
        out->query[i] = a.buf + off[i];
        out->docid[i] = out->query[i] + strlen(out->query[i]) + 1;
    }
    if (n == 0) dsi_arena_free(&a);
    free(off);
    return DP_OK;
}

void dp_dsi_pairs_free(dp_dsi_pairs *p)
{
    if (!p) return;
    if (p->query && p->n > 0) free(p->query[0]); /* the arena: query 0 is its first string */
    free(p->query);
    memset(p, 0, sizeof *p);
}
