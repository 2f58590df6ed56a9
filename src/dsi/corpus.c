/* The raw corpus of dsi-prepare (documents in first-seen order, their
 * queries in input order) and the TSV readers that fill it: query-docid pairs
 * (ORCAS's four columns or plain query<TAB>docid, told apart by the column
 * count) and the optional docid<TAB>text documents. The Debian reader that
 * also fills it is debian.c; what is done with it, prepare.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsi/data_internal.h"
/* ============================================================ corpus */

long dsi_corpus_doc(dsi_corpus *c, const char *name, size_t n)
{
    int is_new;
    long d = dsi_intern_get(&c->docs, name, n, 1, &is_new);
    if (d < 0) {
        dp_errorf(DP_ERR_NOMEM, "dsi: out of memory (%ld documents)", c->docs.n);
        return -1;
    }
    if (is_new) {
        if (!dsi_reserve(&c->text, &c->text_cap, (size_t)d + 1, sizeof *c->text)) {
            dp_errorf(DP_ERR_NOMEM, "dsi: out of memory (%ld documents)", c->docs.n);
            return -1;
        }
        c->text[d] = -1;
    }
    return d;
}

dp_status dsi_corpus_add_query(dsi_corpus *c, long doc, char *text, size_t n)
{
    n = dsi_squash_space(text, n);
    if (n == 0) return DP_OK;
    if (c->nq >= INT32_MAX) return dp_errorf(DP_ERR_ARG, "dsi: more than %d queries", INT32_MAX);
    if (c->nq == c->q_cap) {
        long cap = c->q_cap ? 2 * c->q_cap : 16384;
        if (!dsi_resize(&c->qdoc, (size_t)cap, sizeof *c->qdoc) ||
            !dsi_resize(&c->qtext, (size_t)cap, sizeof *c->qtext))
            return dp_errorf(DP_ERR_NOMEM, "dsi: out of memory (%ld queries)", c->nq);
        c->q_cap = cap;
    }
    dp_status rc = dsi_arena_add(&c->strs, text, n, &c->qtext[c->nq]);
    if (rc != DP_OK) return rc;
    c->qdoc[c->nq++] = (int32_t)doc;
    return DP_OK;
}

void dsi_corpus_free(dsi_corpus *c)
{
    dsi_intern_free(&c->docs);
    free(c->text);
    free(c->qdoc);
    free(c->qtext);
    dsi_arena_free(&c->strs);
    memset(c, 0, sizeof *c);
}

/* ============================================================ TSV inputs */

/* Splits line into at most `max` tab-separated fields; returns the count (up to max + 1). */
static int split_tabs(char *line, char **field, size_t *len, int max)
{
    int n = 0;
    char *p = line;
    for (;;) {
        char *tab = strchr(p, '\t');
        if (n < max) {
            field[n] = p;
            len[n] = tab ? (size_t)(tab - p) : strlen(p);
        }
        n++;
        if (!tab || n > max) return n;
        *tab = '\0';
        p = tab + 1;
    }
}

dp_status dsi_read_queries_tsv(const char *path, dsi_corpus *c)
{
    dsi_lines r;
    dp_status rc = dsi_lines_open(&r, NULL, path);
    if (rc != DP_OK) return rc;
    char *field[4];
    size_t flen[4];
    int cols = 0; /* 2 = plain, 4 = ORCAS; set by the first line */
    while (rc == DP_OK && dsi_lines_next(&r)) {
        if (r.len == 0) continue;
        int n = split_tabs(r.buf, field, flen, 4);
        if (cols == 0) {
            if (n != 2 && n != 4) {
                rc = dp_errorf(DP_ERR_FORMAT, "%s:%ld: %d tab-separated fields; want 2 (query, docid) or 4 "
                               "(ORCAS: query_id, query, doc_id, url)", path, r.line, n);
                break;
            }
            cols = n;
        } else if (n != cols) {
            rc = dp_errorf(DP_ERR_FORMAT, "%s:%ld: %d tab-separated fields where line 1 set the %s layout (%d)",
                           path, r.line, n > 4 ? 5 : n, cols == 4 ? "ORCAS" : "plain", cols);
            break;
        }
        int qi = cols == 4 ? 1 : 0, di = cols == 4 ? 2 : 1;
        size_t dl = dsi_squash_space(field[di], flen[di]);
        size_t ql = dsi_squash_space(field[qi], flen[qi]);
        if (ql == 0 || dl == 0) {
            rc = dp_errorf(DP_ERR_FORMAT, "%s:%ld: empty %s", path, r.line, ql == 0 ? "query" : "docid");
            break;
        }
        long doc = dsi_corpus_doc(c, field[di], dl);
        rc = doc < 0 ? DP_ERR_NOMEM : dsi_corpus_add_query(c, doc, field[qi], ql);
    }
    return dsi_lines_close(&r, rc);
}

dp_status dsi_read_docs_tsv(const char *path, dsi_corpus *c, const uint8_t *keep)
{
    dsi_lines r;
    dp_status rc = dsi_lines_open(&r, NULL, path);
    if (rc != DP_OK) return rc;
    while (rc == DP_OK && dsi_lines_next(&r)) {
        if (r.len == 0) continue;
        char *tab = memchr(r.buf, '\t', (size_t)r.len);
        if (!tab) {
            rc = dp_errorf(DP_ERR_FORMAT, "%s:%ld: no tab (want docid<TAB>text)", path, r.line);
            break;
        }
        *tab = '\0';
        size_t dl = dsi_squash_space(r.buf, (size_t)(tab - r.buf));
        long d = dsi_intern_get(&c->docs, r.buf, dl, 0, NULL);
        if (d < 0 || !keep[d] || c->text[d] >= 0) continue; /* unknown, dropped, or seen */
        char *t = tab + 1;
        size_t tl = (size_t)(r.buf + r.len - t);
        for (size_t i = 0; i < tl; i++)
            if (t[i] == '\t') t[i] = ' '; /* text may hold tabs: they separate nothing here */
        tl = dsi_squash_space(t, tl);
        if (tl > DSI_TEXT_MAX) { /* keep the first words, cut at a space */
            tl = DSI_TEXT_MAX;
            while (tl > 0 && t[tl] != ' ') tl--;
            if (tl == 0) tl = DSI_TEXT_MAX;
        }
        if (tl > 0) rc = dsi_arena_add(&c->strs, t, tl, &c->text[d]);
    }
    return dsi_lines_close(&r, rc);
}

