/* Private to the DSI data side (dataset.c, pairs.c, debian.c, corpus.c,
 * prepare.c, the docid tables of dsi_query.c and evaluate.c, bm25.c's arrays,
 * and tests/dsi/test_dsi_data.c): a string interner, a growable byte arena,
 * array growth, line reading, and the raw corpus the input parsers fill before
 * dp_dsi_prepare applies its drop, split and member rules.
 *
 *   Debian Packages + Translation-en ─┐
 *   queries TSV (ORCAS or plain) ─────┼─▶ dsi_corpus (docs in first-seen order,
 *   docs TSV (text, optional) ────────┘   queries in input order) ─▶ dp_dsi_prepare */
#ifndef DP_DSI_DATA_INTERNAL_H
#define DP_DSI_DATA_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "dptrain/dsi.h"

/* The helpers below (arena, interner, text) live in pairs.c; dsi_set_reserve
 * in dataset.c; the corpus and the TSV readers in corpus.c. */

/* ------------------------------------------------------------ arena */
/* NUL-terminated strings back to back in one growing buffer, named by offset
 * (pointers would move on growth). */
typedef struct dsi_arena {
    char *buf;
    size_t len, cap;
} dsi_arena;

/* Appends s[0..n) and a NUL; *off receives its offset. DP_ERR_NOMEM. */
dp_status dsi_arena_add(dsi_arena *a, const char *s, size_t n, int64_t *off);
static inline const char *dsi_arena_str(const dsi_arena *a, int64_t off) { return a->buf + off; }
void dsi_arena_free(dsi_arena *a);

/* The n NUL-terminated strings at blob[0 .. len) (back to back, as many as
 * that) as one block: n pointers, then a copy of the strings; freed whole.
 * NULL when out of memory. */
char **dsi_names_block(const char *blob, size_t len, long n);

/* Resizes the array *pp (a T **) to n elements of `size` bytes; 0 when out of
 * memory, the array then as it was. */
int dsi_resize(void *pp, size_t n, size_t size);
/* Room for `need` elements in the array *pp of *cap elements, *cap doubled
 * (from 1024 at least) as far as needed; 0 when out of memory, as above. */
int dsi_reserve(void *pp, size_t *cap, size_t need, size_t size);

/* ------------------------------------------------------------ interner */
/* Strings -> dense ids 0, 1, 2 ... in first-seen order (docids, md5 sums).
 * Open addressing over XXH3 hashes; keys live in the interner's own arena. */
typedef struct dsi_intern {
    long n;           /* strings held */
    int64_t *off;     /* [n] key offsets in `keys` */
    dsi_arena keys;
    long *slot;       /* [cap] id or -1 */
    size_t cap;       /* power of two */
} dsi_intern;

/* The id of s[0..n): an existing one, or a new one when `add` (*is_new = 1).
 * Returns -1 when absent and !add, -2 when out of memory. */
long dsi_intern_get(dsi_intern *t, const char *s, size_t n, int add, int *is_new);
static inline const char *dsi_intern_str(const dsi_intern *t, long id) { return t->keys.buf + t->off[id]; }
void dsi_intern_free(dsi_intern *t);

/* ------------------------------------------------------------ text */
/* A text file read line by line: dsi_lines_open, then while dsi_lines_next
 * returns 1, line r.line (from 1) is r.buf[0 .. r.len), NUL-terminated, "\n"
 * and a trailing "\r" dropped; then dsi_lines_close. Lines are C strings
 * here, so a line holding a NUL byte ends the loop with r.rc an error naming
 * path:line. */
typedef struct dsi_lines {
    FILE *f;
    char path[4096];
    char *buf;
    size_t cap;
    long len, line;
    dp_status rc;
} dsi_lines;

/* Opens dir/name (dir NULL: name); DP_ERR_IO "<path>: open: <why>". */
dp_status dsi_lines_open(dsi_lines *r, const char *dir, const char *name);
/* 1 with the next line; 0 at the end, on a read error or at a NUL byte. */
int dsi_lines_next(dsi_lines *r);
/* Closes the file and returns rc, else r->rc, else a read error naming the file. */
dp_status dsi_lines_close(dsi_lines *r, dp_status rc);
/* Collapses runs of whitespace (ASCII space, \t .. \r, 0x1c .. 0x1f, and the
 * UTF-8 Unicode spaces such as U+00A0 and U+2000 .. U+200A) in s[0..n) to
 * one ' ' and trims both ends, in place; returns the new length (s is
 * NUL-terminated at it). */
size_t dsi_squash_space(char *s, size_t n);
/* Number of whitespace-separated words of s. */
int dsi_count_words(const char *s);

/* ------------------------------------------------------------ examples */
/* Room in s for example s->n with ntok tokens (doc[n], off[n + 1], tok up to
 * off[n] + ntok), each array grown by doubling: *ex_cap examples (at most
 * max_ex), *tok_cap tokens; off[0] = 0 from the first growth on. DP_ERR_NOMEM
 * names `who` (dataset.c). */
dp_status dsi_set_reserve(dp_dsi_set *s, int64_t *ex_cap, size_t *tok_cap, int64_t ntok, int64_t max_ex,
                          const char *who);

/* ------------------------------------------------------------ held-out text */
/* holdout.c; matching folds ASCII letters only, as the tokenizer does. */
/* Cuts every occurrence of pat (non-empty) out of s[0 .. *len) (NUL-terminated
 * there), a space left in its place and the spaces squashed; *len updated.
 * Returns the number cut. */
long dsi_cut_all(char *s, size_t *len, const char *pat);
/* found[i] = 1 when needle i (non-empty) occurs inside any of the nh haystacks. */
dp_status dsi_find_inside(const char *const *needle, long nn, const char *const *hay, long nh, uint8_t *found);
/* 1 when needle (non-empty) occurs inside s. */
int dsi_inside_folded(const char *s, const char *needle);

/* ------------------------------------------------------------ corpus */
/* What the input parsers produce: documents (docid strings, optional text)
 * and queries, each belonging to one document, whitespace-normalised. */
typedef struct dsi_corpus {
    dsi_intern docs;   /* docid -> document index, in first-seen order */
    int64_t *text;     /* [docs.n] offset of the document's text in `strs`, -1: none */
    size_t text_cap;
    long nq, q_cap;
    int32_t *qdoc;     /* [nq] */
    int64_t *qtext;    /* [nq] offsets in `strs` */
    dsi_arena strs;
} dsi_corpus;

/* The index of docid name[0..n), added if new; -1 when out of memory (message set). */
long dsi_corpus_doc(dsi_corpus *c, const char *name, size_t n);
/* Adds a query (whitespace squashed; text[0..n) is modified) of document doc;
 * an empty query is skipped. */
dp_status dsi_corpus_add_query(dsi_corpus *c, long doc, char *text, size_t n);
static inline const char *dsi_corpus_query(const dsi_corpus *c, long q) { return c->strs.buf + c->qtext[q]; }
void dsi_corpus_free(dsi_corpus *c);

/* Debian: Packages (apt-cache dumpavail) joined with Translation-en on
 * Description-md5 (debian.c). One document per package name (the first
 * stanza naming it), in Packages order; queries: the short description, then
 * each sentence of at least min_words words of the long description; text:
 * the whole description, squashed (every query is a substring of it). The
 * long description's lines are joined and cut after '.', '!' or '?' followed
 * by a space or the end; with split_lists also at paragraph breaks (" .")
 * and before list bullets ("* ", "- ", "+ " opening a line). */
dp_status dsi_read_debian(const char *packages, const char *translations, int min_words, int split_lists,
                          dsi_corpus *c);

/* Query-docid TSV, layout detected from the first line's column count:
 * 4 = ORCAS (query_id, query, doc_id, url), 2 = plain (query, docid); every
 * line must have the same count. Empty lines are skipped; an empty query or
 * docid is a format error naming file:line (corpus.c). */
dp_status dsi_read_queries_tsv(const char *path, dsi_corpus *c);
/* docid<TAB>text: attaches text (squashed, cut to DSI_TEXT_MAX bytes at a word
 * boundary) to the documents of c with keep[doc] != 0; other lines are skipped
 * without being stored; the first line naming a document wins (corpus.c). */
enum { DSI_TEXT_MAX = 16384 };
dp_status dsi_read_docs_tsv(const char *path, dsi_corpus *c, const uint8_t *keep);

/* ------------------------------------------------------------ BM25 */
/* BM25's posting weight idf(df) tf (k1 + 1) / (tf + k1 (1 - b + b dl / avgdl)),
 * idf = log(1 + (N - df + 0.5) / (df + 0.5)), at least FLT_MIN (bm25.c). */
float dsi_bm25_weight(int ndocs, int64_t df, int32_t tf, int32_t dl, float avgdl, float k1, float b);

#endif
