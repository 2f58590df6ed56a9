/* dsi-prepare's text split (DP_DSI_SPLIT_TEXT): the document text is the
 * index and no test query is a substring of anything indexed or trained on.
 *
 * The no-leak property is checked with an oracle of its own (lower-cased
 * copies and strstr), on corpora built so that leaks are there to be made:
 * every test sentence sits in its own document's text, some in upper case,
 * and some inside another document's text. The same oracle run on the texts
 * as given finds every test query, so it is not vacuous; and the first split
 * (DP_DSI_SPLIT_QUERIES) over the same input indexes those texts as given.
 * BM25 is shown to index text.tsv (words that only the text holds are found)
 * and the indexing examples to come from the same text. The two helpers of
 * holdout.c are checked against brute force. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include "timeout.h"
#include "test_data_util.h"
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/data.h"
#include "dptrain/dsi.h"
#include "dptrain/dsi_eval.h"
#include "dsi/data_internal.h"

static char dir[256];

static void setup(void) { td_tmpdir(dir, sizeof dir); }
static void teardown(void) { td_rmtree(dir); }

TestSuite(dsi_split, .init = setup, .fini = teardown, .timeout = DP_TIMEOUT(30));

/* ------------------------------------------------------------ oracle */

static char *lowered(const char *s)
{
    char *t = strdup(s);
    for (char *p = t; *p; p++) *p = (char)tolower((unsigned char)*p);
    return t;
}

/* 1 when needle occurs in hay, ASCII case folded (the oracle: no code of the library). */
static int inside(const char *hay, const char *needle)
{
    char *h = lowered(hay), *n = lowered(needle);
    int in = strstr(h, n) != NULL;
    free(h);
    free(n);
    return in;
}

/* A two-column TSV: col0[i] TAB col1[i], n lines; free with free_tsv. */
typedef struct tsv {
    long n;
    char **a, **b;
} tsv;

static tsv read_tsv(const char *in, const char *name)
{
    char p[512];
    td_path(p, sizeof p, in, name);
    size_t len;
    char *buf = (char *)td_read(p, &len);
    tsv t = {0, malloc((len + 1) * sizeof(char *)), malloc((len + 1) * sizeof(char *))};
    buf[len] = '\0';
    for (char *s = buf; *s;) {
        char *e = strchr(s, '\n');
        cr_assert_not_null(e, "%s: last line without newline", p);
        *e = '\0';
        char *tab = strchr(s, '\t');
        cr_assert_not_null(tab, "%s: no tab in '%s'", p, s);
        *tab = '\0';
        t.a[t.n] = strdup(s);
        t.b[t.n++] = strdup(tab + 1);
        s = e + 1;
    }
    free(buf);
    return t;
}

static void free_tsv(tsv *t)
{
    for (long i = 0; i < t->n; i++) free(t->a[i]), free(t->b[i]);
    free(t->a);
    free(t->b);
}

/* Test queries of dataset `ds` found inside its text.tsv or its train.tsv queries (0 = no leak). */
static long leaks(const char *ds)
{
    tsv te = read_tsv(ds, "test.tsv"), tr = read_tsv(ds, "train.tsv"), tx = read_tsv(ds, "text.tsv");
    long n = 0;
    for (long i = 0; i < te.n; i++) {
        int in = 0;
        for (long j = 0; j < tx.n && !in; j++) in = inside(tx.a[j], te.a[i]);
        for (long j = 0; j < tr.n && !in; j++) in = inside(tr.a[j], te.a[i]);
        if (in) fprintf(stderr, "leak: test query '%s' (%s) is shown to the model\n", te.a[i], te.b[i]);
        n += in;
    }
    free_tsv(&te);
    free_tsv(&tr);
    free_tsv(&tx);
    return n;
}

/* ------------------------------------------------------------ corpus */

enum { NDOCS = 30 };

static int nsent(int k) { return 3 + k % 3; }

/* Sentence j of document k; upper = 1: as the text writes it for j == 1 (shouting). */
static void sentence(int k, int j, int upper, char *out, size_t cap)
{
    snprintf(out, cap, "%s k%d does thing%d well.", upper ? "PACKAGE" : "Package", k, j);
    if (upper)
        for (char *p = out; *p; p++) *p = (char)toupper((unsigned char)*p);
}

/* queries.tsv: every sentence of every document; docs.tsv: each document's
 * text, holding its sentences (sentence 1 in upper case), a marker word no
 * query has, and sentence 0 of the next document inside a longer one. */
static void write_corpus(char *qp, char *dp, size_t cap)
{
    td_path(qp, cap, dir, "queries.tsv");
    td_path(dp, cap, dir, "docs.tsv");
    FILE *q = fopen(qp, "w"), *d = fopen(dp, "w");
    cr_assert(q && d);
    char s[128];
    for (int k = 0; k < NDOCS; k++) {
        fprintf(d, "doc%d\tIntro of k%d.", k, k);
        for (int j = 0; j < nsent(k); j++) {
            sentence(k, j, 0, s, sizeof s);
            fprintf(q, "%s\tdoc%d\n", s, k);
            sentence(k, j, j == 1, s, sizeof s);
            fprintf(d, " %s", s);
        }
        sentence((k + 1) % NDOCS, 0, 0, s, sizeof s);
        fprintf(d, " Unlike the other one (%s) marker%dz is ours.\n", s, k);
    }
    fclose(q);
    fclose(d);
}

static void prepare(const char *qp, const char *dp, dp_dsi_split_kind split, const char *out,
                    dp_dsi_prepare_config *cfg, dp_dsi_prepare_stats *st)
{
    dp_dsi_prepare_defaults(cfg);
    snprintf(cfg->queries, sizeof cfg->queries, "%s", qp);
    snprintf(cfg->docs, sizeof cfg->docs, "%s", dp);
    td_path(cfg->out, sizeof cfg->out, dir, out);
    cfg->split = split;
    cfg->tok.bigrams = cfg->tok.trigrams = 0; /* words only: an example's tokens name its words */
    cfg->index_examples = 6;
    cfg->members[0] = 3;
    cfg->nmembers = 1;
    cr_assert_eq(dp_dsi_prepare(cfg, st), DP_OK, "%s", dp_errmsg());
}

static void split_rule_is(const char *ds, const char *want)
{
    dp_manifest *m = NULL;
    cr_assert_eq(dp_manifest_load(ds, &m), DP_OK, "%s", dp_errmsg());
    cr_assert_str_eq(m->split_rule, want, "%s: split-rule '%s', want '%s'", ds, m->split_rule, want);
    dp_manifest_free(m);
}

/* ------------------------------------------------------------ tests */

Test(dsi_split, no_test_query_inside_indexed_text)
{
    char qp[512], dp[512];
    write_corpus(qp, dp, sizeof qp);
    dp_dsi_prepare_config cfg;
    dp_dsi_prepare_stats st;
    prepare(qp, dp, DP_DSI_SPLIT_TEXT, "text", &cfg, &st);
    cr_assert_eq(st.docs, NDOCS);
    cr_assert_gt(st.test_queries, 0);
    /* every held-out sentence was in its own text; upper-cased ones too */
    cr_assert_geq(st.cut_from_text, st.test_queries);
    /* a test sentence quoted in the previous document's text cannot stay a test query */
    cr_assert_gt(st.dropped_test_in_text, 0);
    cr_assert_eq(leaks(cfg.out), 0);
    char m[512];
    for (int k = 0; k < 3; k++) { /* and in every member's dataset */
        char sub[32];
        snprintf(sub, sizeof sub, "text/m3/%d", k);
        td_path(m, sizeof m, dir, sub);
        cr_assert_eq(leaks(m), 0, "%s", m);
        split_rule_is(m, "text");
    }
    split_rule_is(cfg.out, "text");

    /* the oracle has teeth: the texts as given hold every test query */
    tsv te = read_tsv(cfg.out, "test.tsv");
    long found = 0;
    {
        size_t len;
        char *docs = (char *)td_read(dp, &len);
        docs = realloc(docs, len + 1);
        docs[len] = '\0';
        for (long i = 0; i < te.n; i++) found += inside(docs, te.a[i]);
        free(docs);
    }
    cr_assert_eq(found, te.n, "%ld of %ld test queries in the texts as given", found, te.n);
    free_tsv(&te);
}

/* text.tsv is each document's text less its test queries: its own words
 * (the marker) stay, every train query is in it, and the indexing examples
 * are made of its words and no others. */
Test(dsi_split, the_text_is_the_index)
{
    char qp[512], dp[512];
    write_corpus(qp, dp, sizeof qp);
    dp_dsi_prepare_config cfg;
    dp_dsi_prepare_stats st;
    prepare(qp, dp, DP_DSI_SPLIT_TEXT, "text", &cfg, &st);
    tsv tx = read_tsv(cfg.out, "text.tsv"), tr = read_tsv(cfg.out, "train.tsv");
    cr_assert_eq(tx.n, NDOCS);
    dp_dsi_data d;
    cr_assert_eq(dp_dsi_data_load(cfg.out, &d), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(d.index.n, NDOCS * cfg.index_examples);
    for (long i = 0; i < tx.n; i++) {
        cr_assert_str_eq(tx.b[i], d.names[i], "text.tsv line %ld", i + 1);
        char marker[32];
        snprintf(marker, sizeof marker, "marker%ldz", i);
        cr_assert(strstr(tx.a[i], marker), "%s lost the words only its text has: '%s'", tx.b[i], tx.a[i]);
        for (long j = 0; j < tr.n; j++)
            if (!strcmp(tr.b[j], tx.b[i]))
                cr_assert(inside(tx.a[i], tr.a[j]), "train query '%s' not in %s's text", tr.a[j], tx.b[i]);
    }
    for (long e = 0; e < d.index.n; e++) {
        const int doc = d.index.doc[e];
        uint32_t w[512];
        int nw = dp_dsi_tokenize(&cfg.tok, tx.a[doc], w, 512);
        for (int64_t j = d.index.off[e]; j < d.index.off[e + 1]; j++) {
            int ok = 0;
            for (int u = 0; u < nw && !ok; u++) ok = (uint32_t)d.index.tok[j] == w[u];
            cr_assert(ok, "index example %ld of %s: a token not of its text.tsv line", e, d.names[doc]);
        }
    }
    dp_dsi_data_free(&d);
    free_tsv(&tx);
    free_tsv(&tr);
}

/* BM25 indexes text.tsv: a query of the words only a document's text has
 * (never one of its queries) finds that document first. Over the first
 * split's data (train.tsv) the same queries find nothing. */
Test(dsi_split, bm25_indexes_the_same_text)
{
    char qp[512], dp[512];
    write_corpus(qp, dp, sizeof qp);
    dp_dsi_prepare_config cfg;
    dp_dsi_prepare_stats st;
    char *q[NDOCS], *id[NDOCS];
    for (int k = 0; k < NDOCS; k++) {
        q[k] = malloc(32), id[k] = malloc(32);
        snprintf(q[k], 32, "marker%dz", k);
        snprintf(id[k], 32, "doc%d", k);
    }
    dp_dsi_pairs pairs = {.n = NDOCS, .query = q, .docid = id};
    dp_dsi_eval_config ec;
    dp_dsi_eval_defaults(&ec);
    dp_dsi_eval_row row;
    prepare(qp, dp, DP_DSI_SPLIT_TEXT, "text", &cfg, &st);
    cr_assert_eq(dp_dsi_eval_bm25(cfg.out, &pairs, &ec, &row), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(row.m.queries, NDOCS);
    cr_assert_float_eq(row.m.hits1, NDOCS, 1e-9, "BM25 Hits@1 %g of %d: not over text.tsv", row.m.hits1, NDOCS);
    prepare(qp, dp, DP_DSI_SPLIT_QUERIES, "queries", &cfg, &st);
    cr_assert_eq(dp_dsi_eval_bm25(cfg.out, &pairs, &ec, &row), DP_OK, "%s", dp_errmsg());
    cr_assert_float_eq(row.m.hits1, 0, 1e-9);
    for (int k = 0; k < NDOCS; k++) free(q[k]), free(id[k]);
}

/* The first split is still there behind DP_DSI_SPLIT_QUERIES: no text.tsv, no
 * split-rule line, the same queries in train and test as the text split
 * before its leak rule, and index examples from the text as given, which
 * holds its test queries. */
Test(dsi_split, queries_split_as_before)
{
    char qp[512], dp[512], p[512];
    write_corpus(qp, dp, sizeof qp);
    dp_dsi_prepare_config cfg;
    dp_dsi_prepare_stats st, st_text;
    prepare(qp, dp, DP_DSI_SPLIT_QUERIES, "queries", &cfg, &st);
    td_path(p, sizeof p, cfg.out, "text.tsv");
    FILE *f = fopen(p, "r");
    cr_assert_null(f, "the queries split wrote text.tsv");
    split_rule_is(cfg.out, "");
    cr_assert_eq(st.cut_from_text, 0);
    cr_assert_eq(st.dropped_test_in_text, 0);
    prepare(qp, dp, DP_DSI_SPLIT_TEXT, "text", &cfg, &st_text);
    cr_assert_eq(st_text.train_queries, st.train_queries);
    cr_assert_eq(st_text.test_queries + st_text.dropped_test_in_text, st.test_queries);
}

/* Debian: the text is the whole description (sentences too short to be
 * queries included), every query a substring of it; the text split cuts the
 * test sentences out of it. */
Test(dsi_split, debian_description_is_the_text)
{
    char pk[512], tr[512];
    td_path(pk, sizeof pk, dir, "Packages");
    td_path(tr, sizeof tr, dir, "Translation-en");
    FILE *f = fopen(pk, "w");
    for (int k = 0; k < 12; k++)
        fprintf(f, "Package: pkg%d\nDescription: Tool number %d for tests\n Pkg%d reads files fast. Short one.\n"
                   " .\n It writes pkg%d logs too. And keeps them for k%d days!\n\n", k, k, k, k, k);
    fclose(f);
    td_write(tr, "", 0);
    dsi_corpus c = {0};
    cr_assert_eq(dsi_read_debian(pk, tr, 3, 0, &c), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(c.docs.n, 12);
    cr_assert_str_eq(dsi_arena_str(&c.strs, c.text[3]), "Tool number 3 for tests Pkg3 reads files fast. Short one. "
                                                         "It writes pkg3 logs too. And keeps them for k3 days!");
    for (long q = 0; q < c.nq; q++)
        cr_assert(strstr(dsi_arena_str(&c.strs, c.text[c.qdoc[q]]), dsi_corpus_query(&c, q)),
                  "query '%s' is not in its text", dsi_corpus_query(&c, q));
    dsi_corpus_free(&c);

    dp_dsi_prepare_config cfg;
    dp_dsi_prepare_defaults(&cfg);
    snprintf(cfg.debian_packages, sizeof cfg.debian_packages, "%s", pk);
    snprintf(cfg.debian_translations, sizeof cfg.debian_translations, "%s", tr);
    td_path(cfg.out, sizeof cfg.out, dir, "deb");
    dp_dsi_prepare_stats st;
    cr_assert_eq(dp_dsi_prepare(&cfg, &st), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(st.docs, 12);
    cr_assert_eq(st.test_queries, 12 * 2);
    cr_assert_eq(st.cut_from_text, 12 * 2);
    cr_assert_eq(leaks(cfg.out), 0);
    tsv tx = read_tsv(cfg.out, "text.tsv");
    for (long i = 0; i < tx.n; i++) cr_assert(strstr(tx.a[i], "Short one."), "'%s'", tx.a[i]);
    free_tsv(&tx);
}

/* ------------------------------------------------------------ holdout.c */

Test(dsi_split, cut_all_folds_case_and_squashes)
{
    char s[] = "Foo bar. BAZ qux. FOO BAR. end foo bar.";
    size_t len = strlen(s);
    cr_assert_eq(dsi_cut_all(s, &len, "foo bar."), 3);
    cr_assert_str_eq(s, "BAZ qux. end");
    cr_assert_eq(len, strlen(s));
    cr_assert_eq(dsi_cut_all(s, &len, "nothing"), 0);
    cr_assert_str_eq(s, "BAZ qux. end");
    char t[] = "aaaa";
    len = 4;
    cr_assert_eq(dsi_cut_all(t, &len, "aa"), 2);
    cr_assert_str_eq(t, "");
}

Test(dsi_split, find_inside_equals_brute_force)
{
    /* a small alphabet, so short needles (under the 8-byte key) and long ones both hit and miss */
    enum { NN = 300, NH = 40 };
    char *needle[NN], *hay[NH];
    uint8_t found[NN];
    srand(11);
    const char alpha[] = "abAB c.";
    for (int i = 0; i < NN; i++) {
        int n = 1 + rand() % 12;
        needle[i] = malloc((size_t)n + 1);
        for (int j = 0; j < n; j++) needle[i][j] = alpha[rand() % 7];
        needle[i][n] = '\0';
    }
    for (int i = 0; i < NH; i++) {
        int n = rand() % 60;
        hay[i] = malloc((size_t)n + 1);
        for (int j = 0; j < n; j++) hay[i][j] = alpha[rand() % 7];
        hay[i][n] = '\0';
    }
    cr_assert_eq(dsi_find_inside((const char *const *)needle, NN, (const char *const *)hay, NH, found), DP_OK);
    int hits = 0;
    for (int i = 0; i < NN; i++) {
        int want = 0;
        for (int j = 0; j < NH && !want; j++) want = inside(hay[j], needle[i]);
        cr_assert_eq(found[i], want, "needle '%s': found %d, brute force %d", needle[i], found[i], want);
        cr_assert_eq(dsi_inside_folded(hay[i % NH], needle[i]), inside(hay[i % NH], needle[i]));
        hits += want;
    }
    cr_assert(hits > 20 && hits < NN - 20, "%d hits of %d: the case is not mixed", hits, NN);
    for (int i = 0; i < NN; i++) free(needle[i]);
    for (int i = 0; i < NH; i++) free(hay[i]);
}
