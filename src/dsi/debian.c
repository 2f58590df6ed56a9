/* The Debian package index as a DSI corpus: docid = package name, queries =
 * the short description and the sentences of the long description.
 *
 *   Packages (apt-cache dumpavail)        Translation-en (apt-helper cat-file)
 *   Package / Description / -md5          Package / Description-md5 / Description-en
 *          │ pass 1: one doc per name,             │ pass 2: keep only the md5s
 *          │ md5 wanted, own description kept      │ some package wants (first wins)
 *          └──────────────── join on Description-md5 ┘
 *                     per package, in Packages order: the translation's
 *                     description, else the Packages' own Description
 *
 * A description is stored as its field value: the first line (the short
 * description), then '\n' and each continuation line as written (with its
 * leading space). Both files are streamed stanza by stanza (RFC 822 style:
 * blank lines separate stanzas, a line opening with a space or tab continues
 * the field before it); a second "Package:" inside one stanza starts a new
 * one, so concatenated files without a trailing blank line still parse. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dsi/data_internal.h"

enum { F_NONE, F_PACKAGE, F_DESC, F_MD5, F_OTHER };

typedef struct stanza {
    char package[256];
    char md5[64];
    char *desc; /* field value: short line, then "\n<continuation line>"... */
    size_t desc_len, desc_cap;
    int has_package, has_desc, has_md5, field;
} stanza;

static dp_status desc_append(stanza *s, const char *p, size_t n, int newline)
{
    if (!dsi_reserve(&s->desc, &s->desc_cap, s->desc_len + n + 2, 1))
        return dp_errorf(DP_ERR_NOMEM, "debian: out of memory");
    if (newline) s->desc[s->desc_len++] = '\n';
    memcpy(s->desc + s->desc_len, p, n);
    s->desc_len += n;
    s->desc[s->desc_len] = '\0';
    return DP_OK;
}

static void stanza_reset(stanza *s)
{
    s->package[0] = s->md5[0] = '\0';
    s->desc_len = 0;
    if (s->desc) s->desc[0] = '\0';
    s->has_package = s->has_desc = s->has_md5 = 0;
    s->field = F_NONE;
}

/* Called with each complete stanza. */
typedef dp_status (*stanza_fn)(void *ctx, const stanza *s, const char *path, long line);

/* Streams the stanzas of `path`; `desc_field` is "Description" or "Description-en". */
static dp_status read_stanzas(const char *path, const char *desc_field, stanza_fn fn, void *ctx)
{
    dsi_lines r;
    dp_status rc = dsi_lines_open(&r, NULL, path);
    if (rc != DP_OK) return rc;
    stanza s = {0};
    stanza_reset(&s);
    size_t dlen = strlen(desc_field);
    long start = 1;
    while (rc == DP_OK) {
        const long len = dsi_lines_next(&r) ? r.len : -1;
        if (len < 0 && r.rc != DP_OK) break;
        char *buf = r.buf;
        /* A blank (or whitespace-only) line ends a stanza; so does the end of
         * the file, and a second Package field. */
        int blank = 1;
        for (long i = 0; i < len && blank; i++) blank = buf[i] == ' ' || buf[i] == '\t';
        int new_pkg = !blank && s.has_package && strncasecmp(buf, "Package:", 8) == 0;
        if (blank || new_pkg) {
            if (s.has_package || s.has_desc || s.has_md5) rc = fn(ctx, &s, path, start);
            stanza_reset(&s);
            start = blank ? r.line + 1 : r.line;
            if (len < 0 || rc != DP_OK) break;
            if (blank) continue;
        }
        if (buf[0] == ' ' || buf[0] == '\t') {
            if (s.field == F_DESC) rc = desc_append(&s, buf, (size_t)len, 1);
            continue;
        }
        char *colon = memchr(buf, ':', (size_t)len);
        if (!colon) {
            rc = dp_errorf(DP_ERR_FORMAT, "%s:%ld: not a 'Field: value' line", path, r.line);
            break;
        }
        size_t klen = (size_t)(colon - buf);
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t') v++;
        size_t vlen = (size_t)(buf + len - v);
        while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t')) vlen--;
        s.field = F_OTHER;
        if (klen == 7 && !strncasecmp(buf, "Package", 7)) {
            if (vlen == 0 || vlen >= sizeof s.package) {
                rc = dp_errorf(DP_ERR_FORMAT, "%s:%ld: package name %s", path, r.line, vlen ? "too long" : "empty");
                break;
            }
            memcpy(s.package, v, vlen);
            s.package[vlen] = '\0';
            s.has_package = 1;
            s.field = F_PACKAGE;
        } else if (klen == 15 && !strncasecmp(buf, "Description-md5", 15)) {
            if (vlen >= sizeof s.md5) {
                rc = dp_errorf(DP_ERR_FORMAT, "%s:%ld: Description-md5 too long", path, r.line);
                break;
            }
            memcpy(s.md5, v, vlen);
            s.md5[vlen] = '\0';
            s.has_md5 = vlen > 0;
            s.field = F_MD5;
        } else if (klen == dlen && !strncasecmp(buf, desc_field, dlen)) {
            s.desc_len = 0;
            rc = desc_append(&s, v, vlen, 0);
            s.has_desc = 1;
            s.field = F_DESC;
        }
    }
    free(s.desc);
    return dsi_lines_close(&r, rc);
}

/* ------------------------------------------------------------ passes */

typedef struct debian_ctx {
    dsi_corpus *c;
    dsi_intern md5s;     /* md5 -> id */
    struct pkg {
        long md5;        /* md5 id or -1 */
        int64_t desc;    /* own description in `descs`, -1: none */
    } *pkg;              /* [doc] */
    int64_t *md5_desc;   /* [md5 id] translated description in `descs`, -1: not seen yet */
    size_t pkg_cap, md5_cap;
    dsi_arena descs;
} debian_ctx;

static dp_status on_package(void *vctx, const stanza *s, const char *path, long line)
{
    debian_ctx *x = vctx;
    if (!s->has_package) return dp_errorf(DP_ERR_FORMAT, "%s:%ld: stanza without a Package field", path, line);
    long before = x->c->docs.n;
    long doc = dsi_corpus_doc(x->c, s->package, strlen(s->package));
    if (doc < 0) return DP_ERR_NOMEM;
    if (doc < before) return DP_OK; /* the first stanza naming a package wins */
    if (!dsi_reserve(&x->pkg, &x->pkg_cap, (size_t)doc + 1, sizeof *x->pkg))
        return dp_errorf(DP_ERR_NOMEM, "debian: out of memory");
    x->pkg[doc] = (struct pkg){-1, -1};
    if (s->has_md5) {
        int is_new;
        long id = dsi_intern_get(&x->md5s, s->md5, strlen(s->md5), 1, &is_new);
        if (id < 0) return dp_errorf(DP_ERR_NOMEM, "debian: out of memory");
        if (!dsi_reserve(&x->md5_desc, &x->md5_cap, (size_t)id + 1, sizeof *x->md5_desc))
            return dp_errorf(DP_ERR_NOMEM, "debian: out of memory");
        if (is_new) x->md5_desc[id] = -1;
        x->pkg[doc].md5 = id;
    }
    if (s->has_desc && s->desc_len > 0) return dsi_arena_add(&x->descs, s->desc, s->desc_len, &x->pkg[doc].desc);
    return DP_OK;
}

static dp_status on_translation(void *vctx, const stanza *s, const char *path, long line)
{
    (void)path, (void)line;
    debian_ctx *x = vctx;
    if (!s->has_md5 || !s->has_desc) return DP_OK;
    long id = dsi_intern_get(&x->md5s, s->md5, strlen(s->md5), 0, NULL);
    if (id < 0 || x->md5_desc[id] >= 0) return DP_OK; /* nobody wants it, or already have it */
    return dsi_arena_add(&x->descs, s->desc, s->desc_len, &x->md5_desc[id]);
}

/* ------------------------------------------------------------ sentences */

/* Adds the sentences of text[0..n) (squashed: single spaces) with at least
 * min_words words: cut after '.', '!' or '?' followed by a space or the end. */
static dp_status add_sentences(dsi_corpus *c, long doc, char *text, size_t n, int min_words)
{
    n = dsi_squash_space(text, n);
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        int cut = i == n || ((text[i] == '.' || text[i] == '!' || text[i] == '?') && (i + 1 == n || text[i + 1] == ' '));
        if (!cut) continue;
        size_t end = i < n ? i + 1 : n;
        if (end > start) {
            char save = text[end];
            text[end] = '\0';
            int words = dsi_count_words(text + start);
            dp_status rc = DP_OK;
            if (words >= min_words) rc = dsi_corpus_add_query(c, doc, text + start, end - start);
            text[end] = save;
            if (rc != DP_OK) return rc;
        }
        start = end + 1; /* past the space */
        i = end;
    }
    return DP_OK;
}

/* The long description from `p` (after the short line): its sentences as
 * queries (buf: the paragraph or list item being joined), its joined lines
 * appended to tx[0 .. *tlen). */
static dp_status add_long(dsi_corpus *c, long doc, const char *p, int min_words, int split_lists, char *buf,
                          char *tx, size_t *tlen)
{
    dp_status rc = DP_OK;
    /* The long description, joined into *buf one paragraph (or, with
     * split_lists, one list item) at a time. */
    size_t len = 0;
    for (; rc == DP_OK;) {
        const char *e = strchr(p, '\n');
        size_t ll = e ? (size_t)(e - p) : strlen(p);
        const char *l = p;
        if (ll > 0 && (*l == ' ' || *l == '\t')) l++, ll--; /* the continuation mark */
        const char *t = l;
        size_t tl = ll;
        while (tl > 0 && (*t == ' ' || *t == '\t')) t++, tl--;
        while (tl > 0 && (t[tl - 1] == ' ' || t[tl - 1] == '\t')) tl--;
        int is_break = tl == 1 && t[0] == '.'; /* " ." (tolerating "  ." and " . ") */
        int bullet = split_lists && tl >= 2 && (t[0] == '*' || t[0] == '-' || t[0] == '+') && t[1] == ' ';
        if (split_lists && (is_break || bullet)) {
            rc = add_sentences(c, doc, buf, len, min_words);
            len = 0;
        }
        if (bullet) t += 2, tl -= 2;
        if (!is_break && rc == DP_OK) {
            if (len > 0) buf[len++] = ' ';
            memcpy(buf + len, t, tl);
            len += tl;
            tx[(*tlen)++] = ' ';
            memcpy(tx + *tlen, t, tl);
            *tlen += tl;
        }
        if (!e) break;
        p = e + 1;
    }
    if (rc == DP_OK) rc = add_sentences(c, doc, buf, len, min_words);
    return rc;
}

/* One description (field value as stored) -> the document's queries, and
 * its text: the short description, then the long one's lines joined by
 * spaces as the sentences see them (paragraph marks left out, bullets cut
 * with split_lists), squashed, so every query is a substring of it. */
static dp_status add_description(dsi_corpus *c, long doc, const char *desc, int min_words, int split_lists,
                                 char **buf, size_t *cap, char **tx, size_t *tx_cap)
{
    size_t n = strlen(desc);
    if (!dsi_reserve(buf, cap, n + 1, 1) || !dsi_reserve(tx, tx_cap, n + 2, 1))
        return dp_errorf(DP_ERR_NOMEM, "debian: out of memory");
    const char *nl = strchr(desc, '\n');
    size_t short_len = nl ? (size_t)(nl - desc) : n, tl_all = short_len;
    memcpy(*buf, desc, short_len);
    memcpy(*tx, desc, short_len);
    dp_status rc = dsi_corpus_add_query(c, doc, *buf, short_len);
    if (rc == DP_OK && nl) rc = add_long(c, doc, nl + 1, min_words, split_lists, *buf, *tx, &tl_all);
    if (rc == DP_OK) {
        tl_all = dsi_squash_space(*tx, tl_all);
        if (tl_all > 0) rc = dsi_arena_add(&c->strs, *tx, tl_all, &c->text[doc]);
    }
    return rc;
}

dp_status dsi_read_debian(const char *packages, const char *translations, int min_words, int split_lists,
                          dsi_corpus *c)
{
    debian_ctx x = {.c = c};
    char *buf = NULL, *tx = NULL;
    size_t cap = 0, tx_cap = 0;
    dp_status rc = read_stanzas(packages, "Description", on_package, &x);
    if (rc == DP_OK && translations && translations[0])
        rc = read_stanzas(translations, "Description-en", on_translation, &x);
    for (long d = 0; d < c->docs.n && rc == DP_OK; d++) {
        long id = x.pkg[d].md5;
        int64_t off = id >= 0 && x.md5_desc[id] >= 0 ? x.md5_desc[id] : x.pkg[d].desc;
        if (off >= 0)
            rc = add_description(c, d, dsi_arena_str(&x.descs, off), min_words, split_lists, &buf, &cap, &tx, &tx_cap);
    }
    free(buf);
    free(tx);
    free(x.pkg);
    free(x.md5_desc);
    dsi_intern_free(&x.md5s);
    dsi_arena_free(&x.descs);
    return rc;
}
