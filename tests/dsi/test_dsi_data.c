/* The DSI data side: the Debian parser on hand-written Packages and
 * Translation-en snippets, the query TSV layouts, the drop rules with counts
 * worked out by hand, the stratified train/test split, determinism, ensemble
 * member splits, prepare -> dp_dsi_data_load round trips, damaged datasets
 * rejected with the file named, and pair files. */
#define _GNU_SOURCE /* strcasestr */
#include <criterion/criterion.h>
#include "timeout.h"
#include "test_data_util.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dptrain/data.h"
#include "dptrain/dsi.h"
#include "dsi/data_internal.h"

static char dir[256];

static void setup(void) { td_tmpdir(dir, sizeof dir); }
static void teardown(void) { td_rmtree(dir); }

TestSuite(dsi_data, .init = setup, .fini = teardown, .timeout = DP_TIMEOUT(30));

/* ------------------------------------------------------------ helpers */

static void write_text(const char *name, const char *text, char *path, size_t cap)
{
    td_path(path, cap, dir, name);
    td_write(path, text, strlen(text));
}

/* The lines of a file (NULL-terminated array; free with free_lines). */
static char **read_lines(const char *path, long *n)
{
    size_t len;
    char *b = (char *)td_read(path, &len);
    b[len] = '\0';
    long cap = 16, k = 0;
    char **lines = malloc((size_t)cap * sizeof *lines);
    for (char *s = b; *s;) {
        char *e = strchr(s, '\n');
        cr_assert_not_null(e, "%s: last line without newline", path);
        *e = '\0';
        if (k + 1 >= cap) lines = realloc(lines, (size_t)(cap *= 2) * sizeof *lines);
        lines[k++] = strdup(s);
        s = e + 1;
    }
    lines[k] = NULL;
    free(b);
    *n = k;
    return lines;
}

/* The lines of file `name` in directory `in`. */
static char **read_lines_in(const char *in, const char *name, long *n)
{
    char p[512];
    td_path(p, sizeof p, in, name);
    return read_lines(p, n);
}

static void free_lines(char **l)
{
    for (long i = 0; l[i]; i++) free(l[i]);
    free(l);
}

static int same_file(const char *a, const char *b)
{
    size_t la, lb;
    unsigned char *x = td_read(a, &la), *y = td_read(b, &lb);
    int same = la == lb && memcmp(x, y, la) == 0;
    free(x);
    free(y);
    return same;
}

/* The queries of document `name` in the corpus, in order, "|"-joined. */
static void corpus_queries(const dsi_corpus *c, const char *name, char *out, size_t cap)
{
    long d = dsi_intern_get((dsi_intern *)&c->docs, name, strlen(name), 0, NULL);
    cr_assert_geq(d, 0, "no document %s", name);
    out[0] = '\0';
    for (long q = 0; q < c->nq; q++)
        if (c->qdoc[q] == d) {
            if (out[0]) strncat(out, "|", cap - strlen(out) - 1);
            strncat(out, dsi_corpus_query(c, q), cap - strlen(out) - 1);
        }
}

static void tsv_config(dp_dsi_prepare_config *cfg, const char *queries, const char *out)
{
    dp_dsi_prepare_defaults(cfg);
    snprintf(cfg->queries, sizeof cfg->queries, "%s", queries);
    td_path(cfg->out, sizeof cfg->out, dir, out);
}

/* tsv_config with one ensemble of `members` members (written under out/m<members>/). */
static void member_config(dp_dsi_prepare_config *cfg, const char *queries, const char *out, int members)
{
    tsv_config(cfg, queries, out);
    cfg->members[0] = members;
    cfg->nmembers = 1;
}

/* A plain TSV of `ndocs` documents; document k ("doc<k>") has nq(k) queries
 * of three words each that no other query shares ("d<k>q<j>a d<k>q<j>b ..."). */
static void synth_queries(const char *name, int ndocs, int (*nq)(int), char *path, size_t cap)
{
    td_path(path, cap, dir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    for (int j = 0; j < 12; j++) /* interleaved: a document's queries are not contiguous */
        for (int k = 0; k < ndocs; k++)
            if (j < nq(k)) fprintf(f, "d%dq%da d%dq%db d%dq%dc\tdoc%d\n", k, j, k, j, k, j, k);
    fclose(f);
}

static int nq_cycle(int k) { return 2 + k % 10; }
static int nq_three(int k) { return 3 + (k % 2); }

/* docid -> number of lines naming it in a query<TAB>docid file */
static int lines_of(char **lines, const char *docid)
{
    int n = 0;
    for (long i = 0; lines[i]; i++) {
        const char *t = strchr(lines[i], '\t');
        cr_assert_not_null(t, "no tab in '%s'", lines[i]);
        n += !strcmp(t + 1, docid);
    }
    return n;
}

/* ------------------------------------------------------------ Debian */

static const char packages_txt[] =
    "Package: alpha\n"
    "Version: 1\n"
    "Description: Alpha tool for testing\n"
    "Description-md5: aaaa1111\n"
    "Tag: devel::lang,\n"
    " role::program\n"
    "\n"
    "Package: beta\n"
    "Description: Beta short\n"
    "Description-md5: bbbb2222\n"
    "\n"
    "Package: gamma\n"
    "Description: Gamma fallback short description\n"
    "Description-md5: cccc3333\n"
    "\n"
    "Package: alpha\n"
    "Description: Second alpha stanza is ignored\n"
    "Description-md5: dddd4444\n"
    "\n"
    "Package: delta\n"
    "Description: Delta engine\n"
    " Delta has its own long text here. Second sentence is fine.\n"
    "Package: epsilon\n" /* no blank line: a second Package field starts a stanza */
    "Description: no md5 here\n";

static const char translation_txt[] =
    "Package: alpha\n"
    "Description-md5: aaaa1111\n"
    "Description-en: Alpha tool for testing\n"
    " Alpha parses   things well. It also counts words!  Does it\n"
    " work across lines? Yes it does.\n"
    " .\n"
    " Tiny one.\n"
    " .\n"
    " The list:\n"
    "  * first bullet item here\n"
    "  * second bullet item.\n"
    " e.g. this stays joined\n"
    "\n"
    "Package: beta-other-name\n"
    "Description-md5: bbbb2222\n"
    "Description-en: Beta translated short\n"
    " Beta long sentence number one.\n"
    "Package: zeta\n"
    "Description-md5: ffff9999\n"
    "Description-en: Nobody wants this\n"
    " Unused text here.\n";

static void read_debian(int min_words, int split_lists, dsi_corpus *c)
{
    char pk[512], tr[512];
    write_text("Packages", packages_txt, pk, sizeof pk);
    write_text("Translation-en", translation_txt, tr, sizeof tr);
    memset(c, 0, sizeof *c);
    cr_assert_eq(dsi_read_debian(pk, tr, min_words, split_lists, c), DP_OK, "%s", dp_errmsg());
}

Test(dsi_data, debian_sentences_md5_join_and_fallback)
{
    dsi_corpus c;
    read_debian(3, 0, &c);
    cr_assert_eq(c.docs.n, 5, "one document per package name");
    const char *order[] = {"alpha", "beta", "gamma", "delta", "epsilon"};
    for (int i = 0; i < 5; i++) cr_assert_str_eq(dsi_intern_str(&c.docs, i), order[i]);
    char q[2048];
    corpus_queries(&c, "alpha", q, sizeof q);
    /* " ." lines are skipped, lines joined, cut after . ! ? + space; "Tiny one." and
     * "e.g." have fewer than 3 words; the bullets stay inside their sentence. */
    cr_assert_str_eq(q, "Alpha tool for testing|Alpha parses things well.|It also counts words!|"
                        "Does it work across lines?|Yes it does.|"
                        "The list: * first bullet item here * second bullet item.|this stays joined");
    corpus_queries(&c, "beta", q, sizeof q); /* joined on the md5, whatever the Package field says */
    cr_assert_str_eq(q, "Beta translated short|Beta long sentence number one.");
    corpus_queries(&c, "gamma", q, sizeof q); /* no translation: the Packages short description */
    cr_assert_str_eq(q, "Gamma fallback short description");
    corpus_queries(&c, "delta", q, sizeof q); /* a long description in Packages itself */
    cr_assert_str_eq(q, "Delta engine|Delta has its own long text here.|Second sentence is fine.");
    corpus_queries(&c, "epsilon", q, sizeof q);
    cr_assert_str_eq(q, "no md5 here");
    dsi_corpus_free(&c);
}

/* The queries read_debian(min_words, split_lists) makes of package alpha, joined by '|'. */
static void expect_alpha_queries(int min_words, int split_lists, const char *want)
{
    dsi_corpus c;
    char q[2048];
    read_debian(min_words, split_lists, &c);
    corpus_queries(&c, "alpha", q, sizeof q);
    cr_assert_str_eq(q, want);
    dsi_corpus_free(&c);
}

Test(dsi_data, debian_min_words_and_split_lists)
{
    expect_alpha_queries(2, 0, "Alpha tool for testing|Alpha parses things well.|It also counts words!|"
                               "Does it work across lines?|Yes it does.|Tiny one.|"
                               "The list: * first bullet item here * second bullet item.|this stays joined");
    /* paragraph breaks and bullets cut too; "The list:" is 2 words; a line
     * that is not a bullet continues the item before it */
    expect_alpha_queries(3, 1, "Alpha tool for testing|Alpha parses things well.|It also counts words!|"
                               "Does it work across lines?|Yes it does.|first bullet item here|"
                               "second bullet item.|this stays joined");
}

Test(dsi_data, debian_bad_input_named)
{
    char pk[512], tr[512];
    write_text("Packages", "Package: a\nDescription: x y z\n\nthis line has no colon\n", pk, sizeof pk);
    write_text("Translation-en", "", tr, sizeof tr);
    dsi_corpus c = {0};
    cr_assert_eq(dsi_read_debian(pk, tr, 3, 0, &c), DP_ERR_FORMAT);
    cr_assert(strstr(dp_errmsg(), "Packages:4:"), "%s", dp_errmsg());
    dsi_corpus_free(&c);
    char missing[512];
    td_path(missing, sizeof missing, dir, "nope");
    write_text("Packages", "Package: a\nDescription: x y z\n", pk, sizeof pk);
    cr_assert_eq(dsi_read_debian(pk, missing, 3, 0, &c), DP_ERR_IO);
    cr_assert(strstr(dp_errmsg(), "nope"), "%s", dp_errmsg());
    dsi_corpus_free(&c);
}

/* ------------------------------------------------------------ TSV layouts */

Test(dsi_data, orcas_and_plain_tsv)
{
    char orcas[512], plain[512];
    write_text("orcas.tsv",
               "1\tcheap  flights\tD100\thttp://a.example/\n"
               "2\tflight deals\tD100\thttp://a.example/\n"
               "\n"
               "3\tweather today\tD7\thttp://b.example/x\r\n",
               orcas, sizeof orcas);
    write_text("plain.tsv", "how to cook rice\tdocA\nrice cooker\tdocB\nboil rice \tdocA\n", plain, sizeof plain);
    dsi_corpus c = {0};
    char q[512];
    cr_assert_eq(dsi_read_queries_tsv(orcas, &c), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(c.docs.n, 2);
    cr_assert_eq(c.nq, 3);
    corpus_queries(&c, "D100", q, sizeof q);
    cr_assert_str_eq(q, "cheap flights|flight deals");
    corpus_queries(&c, "D7", q, sizeof q);
    cr_assert_str_eq(q, "weather today");
    dsi_corpus_free(&c);
    cr_assert_eq(dsi_read_queries_tsv(plain, &c), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(c.docs.n, 2);
    corpus_queries(&c, "docA", q, sizeof q);
    cr_assert_str_eq(q, "how to cook rice|boil rice");
    dsi_corpus_free(&c);

    char bad[512];
    write_text("mixed.tsv", "a b\tdoc1\n1\tq\tdoc2\turl\n", bad, sizeof bad);
    cr_assert_eq(dsi_read_queries_tsv(bad, &c), DP_ERR_FORMAT);
    cr_assert(strstr(dp_errmsg(), "mixed.tsv:2:"), "%s", dp_errmsg());
    dsi_corpus_free(&c);
    write_text("three.tsv", "a\tb\tc\n", bad, sizeof bad);
    cr_assert_eq(dsi_read_queries_tsv(bad, &c), DP_ERR_FORMAT);
    cr_assert(strstr(dp_errmsg(), "three.tsv:1:"), "%s", dp_errmsg());
    dsi_corpus_free(&c);
    write_text("empty.tsv", "a\tb\n  \tdoc\n", bad, sizeof bad);
    cr_assert_eq(dsi_read_queries_tsv(bad, &c), DP_ERR_FORMAT);
    cr_assert(strstr(dp_errmsg(), "empty.tsv:2: empty query"), "%s", dp_errmsg());
    dsi_corpus_free(&c);
}

/* ------------------------------------------------------------ drop rules */

Test(dsi_data, drop_rules_counted_by_hand)
{
    char qp[512];
    write_text("q.tsv",
               "alpha one\td1\n"
               "shared query\td1\n"
               "alpha two\td1\n"
               "Shared  Query\td2\n" /* the same query after lower-casing and squashing */
               "beta one\td2\n"
               "beta two\td2\n"
               "beta three\td2\n"
               "gamma only\td3\n"    /* one query: dropped */
               "delta one\td4\n"
               "SHARED QUERY\td4\n"  /* d4 keeps one query: dropped */
               "eps one\td5\n"
               "EPS  one\td5\n"      /* a repeat inside d5 counts once */
               "eps two\td5\n",
               qp, sizeof qp);
    dp_dsi_prepare_config cfg;
    tsv_config(&cfg, qp, "out");
    dp_dsi_prepare_stats st;
    cr_assert_eq(dp_dsi_prepare(&cfg, &st), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(st.docs, 3);                   /* d1, d2, d5 */
    cr_assert_eq(st.dropped_shared_queries, 3); /* from d1, d2 and d4 */
    cr_assert_eq(st.dropped_docs, 2);           /* d3, d4 */
    cr_assert_eq(st.train_queries, 1 + 2 + 1);  /* ceil(2/2), ceil(3/2), ceil(2/2) */
    cr_assert_eq(st.test_queries, 1 + 1 + 1);
    cr_assert_eq(st.index_examples, 3 * 4);
    char p[512];
    long n;
    char **docs = read_lines_in(cfg.out, "docs.tsv", &n);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(docs[0], "d1");
    cr_assert_str_eq(docs[1], "d2");
    cr_assert_str_eq(docs[2], "d5");
    free_lines(docs);
    for (int sp = 0; sp < 2; sp++) {
        td_path(p, sizeof p, cfg.out, sp ? "test.tsv" : "train.tsv");
        char **l = read_lines(p, &n);
        for (long i = 0; i < n; i++) {
            cr_assert_null(strcasestr(l[i], "shared"), "%s kept '%s'", p, l[i]);
            cr_assert_null(strchr(strchr(l[i], '\t') + 1, '\t'), "two tabs in '%s'", l[i]);
        }
        free_lines(l);
    }
    /* nothing survives: an error, not an empty dataset */
    write_text("none.tsv", "a b\td1\nc d\td2\n", qp, sizeof qp);
    tsv_config(&cfg, qp, "none");
    cr_assert_eq(dp_dsi_prepare(&cfg, &st), DP_ERR_FORMAT);
}

/* ------------------------------------------------------------ split */

static void check_split(double tf)
{
    char qp[512];
    synth_queries("q.tsv", 30, nq_cycle, qp, sizeof qp);
    dp_dsi_prepare_config cfg;
    tsv_config(&cfg, qp, "out");
    cfg.test_fraction = tf;
    dp_dsi_prepare_stats st;
    cr_assert_eq(dp_dsi_prepare(&cfg, &st), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(st.docs, 30);
    long ntr, nte;
    char **tr = read_lines_in(cfg.out, "train.tsv", &ntr);
    char **te = read_lines_in(cfg.out, "test.tsv", &nte);
    long want_tr = 0, want_te = 0;
    for (int k = 0; k < 30; k++) {
        int n = nq_cycle(k);
        int t = (int)ceil(n * (1 - tf) - 1e-9);
        if (t > n - 1) t = n - 1;
        char id[32];
        snprintf(id, sizeof id, "doc%d", k);
        cr_assert_eq(lines_of(tr, id), t, "tf %g: %s has %d queries, want %d train", tf, id, n, t);
        cr_assert_eq(lines_of(te, id), n - t, "tf %g: %s test", tf, id);
        cr_assert_geq(n - t, 1);
        want_tr += t;
        want_te += n - t;
    }
    cr_assert_eq(st.train_queries, want_tr);
    cr_assert_eq(st.test_queries, want_te);
    cr_assert_eq(ntr, want_tr);
    cr_assert_eq(nte, want_te);
    /* every query lands exactly once */
    for (long i = 0; tr[i]; i++)
        for (long j = 0; te[j]; j++) cr_assert_str_neq(tr[i], te[j]);
    free_lines(tr);
    free_lines(te);
}

Test(dsi_data, stratified_split_half) { check_split(0.5); }
Test(dsi_data, stratified_split_30_percent) { check_split(0.3); }

/* ------------------------------------------------------------ determinism */

Test(dsi_data, same_seed_same_bytes)
{
    char qp[512];
    synth_queries("q.tsv", 40, nq_cycle, qp, sizeof qp);
    dp_dsi_prepare_config cfg;
    member_config(&cfg, qp, "a", 3);
    cfg.seed = 7;
    dp_dsi_prepare_stats st;
    cr_assert_eq(dp_dsi_prepare(&cfg, &st), DP_OK, "%s", dp_errmsg());
    member_config(&cfg, qp, "b", 3);
    cfg.seed = 7;
    cr_assert_eq(dp_dsi_prepare(&cfg, &st), DP_OK, "%s", dp_errmsg());
    tsv_config(&cfg, qp, "c");
    cfg.seed = 8;
    cr_assert_eq(dp_dsi_prepare(&cfg, &st), DP_OK, "%s", dp_errmsg());
    const char *files[] = {"docs.tsv", "train.tsv", "test.tsv", "tokenizer.txt", "manifest.txt",
                           "train-00000.dps", "test-00000.dps", "index-00000.dps", "m3/1/train.tsv",
                           "m3/2/docs.tsv", "m3/0/index-00000.dps"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char a[512], b[512], x[512];
        snprintf(x, sizeof x, "a/%s", files[i]);
        td_path(a, sizeof a, dir, x);
        snprintf(x, sizeof x, "b/%s", files[i]);
        td_path(b, sizeof b, dir, x);
        cr_assert(same_file(a, b), "%s differs between two runs with seed 7", files[i]);
    }
    char a[512], c[512];
    td_path(a, sizeof a, dir, "a/train.tsv");
    td_path(c, sizeof c, dir, "c/train.tsv");
    cr_assert(!same_file(a, c), "seed 8 split like seed 7");
}

Test(dsi_data, limit_docs_is_a_seeded_subset)
{
    char qp[512];
    synth_queries("q.tsv", 40, nq_cycle, qp, sizeof qp);
    dp_dsi_prepare_config cfg;
    dp_dsi_prepare_stats st;
    tsv_config(&cfg, qp, "a");
    cfg.limit_docs = 10;
    cr_assert_eq(dp_dsi_prepare(&cfg, &st), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(st.docs, 10);
    tsv_config(&cfg, qp, "b");
    cfg.limit_docs = 10;
    cr_assert_eq(dp_dsi_prepare(&cfg, &st), DP_OK, "%s", dp_errmsg());
    char a[512], b[512];
    td_path(a, sizeof a, dir, "a/docs.tsv");
    td_path(b, sizeof b, dir, "b/docs.tsv");
    cr_assert(same_file(a, b));
    long n;
    char **d = read_lines(a, &n);
    cr_assert_eq(n, 10);
    for (long i = 1; i < n; i++) /* input order kept: doc<k> with k rising */
        cr_assert_lt(atoi(d[i - 1] + 3), atoi(d[i] + 3));
    free_lines(d);
}

/* ------------------------------------------------------------ members */

static void check_members(int kmeans)
{
    enum { NDOCS = 41 };
    char qp[512];
    synth_queries("q.tsv", NDOCS, nq_three, qp, sizeof qp);
    dp_dsi_prepare_config cfg;
    tsv_config(&cfg, qp, "out");
    cfg.members[0] = 2;
    cfg.members[1] = 3;
    cfg.members[2] = 8;
    cfg.nmembers = 3;
    cfg.kmeans_members = kmeans;
    dp_dsi_prepare_stats st;
    cr_assert_eq(dp_dsi_prepare(&cfg, &st), DP_OK, "%s", dp_errmsg());
    long ncentral, ntr_central;
    char **central = read_lines_in(cfg.out, "docs.tsv", &ncentral);
    char **tr_central = read_lines_in(cfg.out, "train.tsv", &ntr_central);
    cr_assert_eq(ncentral, NDOCS);
    for (int m = 0; m < cfg.nmembers; m++) {
        int S = cfg.members[m];
        int owner[NDOCS];
        for (int i = 0; i < NDOCS; i++) owner[i] = -1;
        long train_lines = 0;
        for (int k = 0; k < S; k++) {
            char sub[64], mdir[512];
            snprintf(sub, sizeof sub, "out/m%d/%d", S, k);
            td_path(mdir, sizeof mdir, dir, sub);
            long nd, ntr, nte;
            char **docs = read_lines_in(mdir, "docs.tsv", &nd);
            char **tr = read_lines_in(mdir, "train.tsv", &ntr);
            char **te = read_lines_in(mdir, "test.tsv", &nte);
            cr_assert_gt(nd, 0, "%s: empty member", mdir);
            if (!kmeans) cr_assert(nd == NDOCS / S || nd == NDOCS / S + 1, "%s: %ld documents", mdir, nd);
            long covered_tr = 0, covered_te = 0;
            for (long i = 0; i < nd; i++) {
                int c = atoi(docs[i] + 3);
                cr_assert_eq(owner[c], -1, "%s is in two members of m%d", docs[i], S);
                owner[c] = k;
                covered_tr += lines_of(tr, docs[i]);
                covered_te += lines_of(te, docs[i]);
                cr_assert_eq(lines_of(tr, docs[i]), lines_of(tr_central, docs[i]));
            }
            /* every query line of the member names one of its documents */
            cr_assert_eq(covered_tr, ntr, "%s: a train query of another member's document", mdir);
            cr_assert_eq(covered_te, nte, "%s: a test query of another member's document", mdir);
            train_lines += ntr;
            dp_dsi_data d;
            cr_assert_eq(dp_dsi_data_load(mdir, &d), DP_OK, "%s", dp_errmsg());
            cr_assert_eq(d.ndocs, nd);
            cr_assert_eq(d.train.n, ntr);
            cr_assert_eq(d.test.n, nte);
            cr_assert_eq(d.index.n, nd * cfg.index_examples);
            for (long i = 0; i < d.train.n; i++) /* a record's doc names the query's docid */
                cr_assert_str_eq(d.names[d.train.doc[i]], strchr(tr[i], '\t') + 1);
            dp_dsi_data_free(&d);
            free_lines(docs);
            free_lines(tr);
            free_lines(te);
        }
        for (int i = 0; i < NDOCS; i++) cr_assert_neq(owner[i], -1, "doc%d in no member of m%d", i, S);
        cr_assert_eq(train_lines, ntr_central);
    }
    free_lines(central);
    free_lines(tr_central);
}

Test(dsi_data, random_members_partition_documents) { check_members(0); }
Test(dsi_data, kmeans_members_partition_documents) { check_members(1); }

Test(dsi_data, rerun_retires_old_member_sets)
{
    char qp[512], p[512];
    synth_queries("q.tsv", 12, nq_three, qp, sizeof qp);
    dp_dsi_prepare_config cfg;
    dp_dsi_prepare_stats st;
    member_config(&cfg, qp, "out", 3);
    cr_assert_eq(dp_dsi_prepare(&cfg, &st), DP_OK, "%s", dp_errmsg());
    td_path(p, sizeof p, dir, "out/m3/2/manifest.txt");
    struct stat sb;
    cr_assert_eq(stat(p, &sb), 0);
    cfg.members[0] = 2;
    cfg.seed = 99;
    cr_assert_eq(dp_dsi_prepare(&cfg, &st), DP_OK, "%s", dp_errmsg());
    cr_assert_neq(stat(p, &sb), 0, "m3/2 from the first run is still a dataset");
    td_path(p, sizeof p, dir, "out/m2/1/manifest.txt");
    cr_assert_eq(stat(p, &sb), 0);
}

/* ------------------------------------------------------------ round trip */

Test(dsi_data, prepare_load_round_trip)
{
    char qp[512];
    synth_queries("q.tsv", 25, nq_cycle, qp, sizeof qp);
    dp_dsi_prepare_config cfg;
    tsv_config(&cfg, qp, "out");
    cfg.tok.buckets = 1 << 12;
    cfg.tok.max_tokens = 40;
    cfg.index_examples = 5;
    dp_dsi_prepare_stats st;
    cr_assert_eq(dp_dsi_prepare(&cfg, &st), DP_OK, "%s", dp_errmsg());
    dp_dsi_data d;
    cr_assert_eq(dp_dsi_data_load(cfg.out, &d), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(d.ndocs, 25);
    cr_assert_eq(d.tok.buckets, 1u << 12);
    cr_assert_eq(d.tok.max_tokens, 40);
    cr_assert_eq(d.tok.bigrams, 1);
    cr_assert_eq(d.index.n, 25 * 5);
    cr_assert_eq(d.index.n, st.index_examples);
    cr_assert_neq(d.manifest_hash, 0);
    for (int sp = 0; sp < 2; sp++) {
        const dp_dsi_set *s = sp ? &d.test : &d.train;
        char p[512];
        long n;
        td_path(p, sizeof p, cfg.out, sp ? "test.tsv" : "train.tsv");
        char **l = read_lines(p, &n);
        cr_assert_eq(s->n, n);
        cr_assert_eq(n, sp ? st.test_queries : st.train_queries);
        for (long i = 0; i < n; i++) {
            char *tab = strchr(l[i], '\t');
            *tab = '\0';
            cr_assert_str_eq(d.names[s->doc[i]], tab + 1);
            uint32_t want[64];
            int nt = dp_dsi_tokenize(&cfg.tok, l[i], want, 64);
            cr_assert_eq(s->off[i + 1] - s->off[i], nt, "%s line %ld", p, i + 1);
            for (int j = 0; j < nt; j++) cr_assert_eq((uint32_t)s->tok[s->off[i] + j], want[j]);
        }
        free_lines(l);
    }
    dp_dsi_data_free(&d);
}

/* Words-only tokens: an indexing example's tokens must all come from its
 * document's train queries (each query's words are its own, so a test query
 * or another document would show), and spans / subsets have their sizes. */
Test(dsi_data, index_examples_from_train_queries_only)
{
    char qp[512];
    synth_queries("q.tsv", 20, nq_cycle, qp, sizeof qp);
    dp_dsi_prepare_config cfg;
    tsv_config(&cfg, qp, "out");
    cfg.tok.bigrams = cfg.tok.trigrams = 0;
    cfg.index_examples = 6;
    dp_dsi_prepare_stats st;
    cr_assert_eq(dp_dsi_prepare(&cfg, &st), DP_OK, "%s", dp_errmsg());
    dp_dsi_data d;
    cr_assert_eq(dp_dsi_data_load(cfg.out, &d), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(d.index.n, 20 * 6);
    for (long i = 0; i < d.index.n; i++) {
        int doc = d.index.doc[i];
        long nt = (long)(d.index.off[i + 1] - d.index.off[i]);
        long words = 0; /* the document's train words */
        for (long t = 0; t < d.train.n; t++) words += d.train.doc[t] == doc ? d.train.off[t + 1] - d.train.off[t] : 0;
        long k = i % 6; /* a document's examples are consecutive: span, subset, span ... */
        long lo = k % 2 == 0 ? (words < 3 ? words : 3) : 2, hi = k % 2 == 0 ? 12 : words;
        cr_assert(nt >= lo && nt <= hi, "index %ld (%s): %ld words of %ld", i, k % 2 ? "subset" : "span", nt, words);
        for (long j = d.index.off[i]; j < d.index.off[i + 1]; j++) {
            int found = 0;
            for (long t = 0; t < d.train.n && !found; t++)
                if (d.train.doc[t] == doc)
                    for (long u = d.train.off[t]; u < d.train.off[t + 1]; u++) found |= d.train.tok[u] == d.index.tok[j];
            cr_assert(found, "index example %ld of %s holds a word of no train query", i, d.names[doc]);
        }
    }
    dp_dsi_data_free(&d);
}

Test(dsi_data, index_examples_from_docs_text)
{
    char qp[512], dp[512];
    synth_queries("q.tsv", 6, nq_three, qp, sizeof qp);
    td_path(dp, sizeof dp, dir, "docs.tsv");
    FILE *f = fopen(dp, "w");
    fprintf(f, "unknown\tignored text\n");
    for (int k = 0; k < 6; k++)
        fprintf(f, "doc%d\tbody%d one\tbody%d two body%d three body%d four body%d five\n", k, k, k, k, k, k);
    fprintf(f, "doc0\tsecond line for doc0 is ignored\n");
    fclose(f);
    dp_dsi_prepare_config cfg;
    tsv_config(&cfg, qp, "out");
    snprintf(cfg.docs, sizeof cfg.docs, "%s", dp);
    cfg.tok.bigrams = cfg.tok.trigrams = 0;
    dp_dsi_prepare_stats st;
    cr_assert_eq(dp_dsi_prepare(&cfg, &st), DP_OK, "%s", dp_errmsg());
    dp_dsi_data d;
    cr_assert_eq(dp_dsi_data_load(cfg.out, &d), DP_OK, "%s", dp_errmsg());
    for (long i = 0; i < d.index.n; i++) {
        int doc = d.index.doc[i];
        char text[256];
        snprintf(text, sizeof text, "body%d one body%d two body%d three body%d four body%d five", doc, doc, doc, doc,
                 doc);
        uint32_t w[16];
        int nw = dp_dsi_tokenize(&cfg.tok, text, w, 16);
        for (long j = d.index.off[i]; j < d.index.off[i + 1]; j++) {
            int found = 0;
            for (int u = 0; u < nw; u++) found |= (uint32_t)d.index.tok[j] == w[u];
            cr_assert(found, "index example %ld of %s: a word not from its text", i, d.names[doc]);
        }
    }
    dp_dsi_data_free(&d);
}

/* ------------------------------------------------------------ damage */

static void prepare_small(char *out, size_t cap)
{
    char qp[512];
    synth_queries("q.tsv", 8, nq_three, qp, sizeof qp);
    dp_dsi_prepare_config cfg;
    tsv_config(&cfg, qp, "out");
    dp_dsi_prepare_stats st;
    cr_assert_eq(dp_dsi_prepare(&cfg, &st), DP_OK, "%s", dp_errmsg());
    snprintf(out, cap, "%s", cfg.out);
}

static void expect_load_error(const char *ds, dp_status want, const char *needle)
{
    dp_dsi_data d;
    dp_status rc = dp_dsi_data_load(ds, &d);
    cr_assert_eq(rc, want, "status %d, want %d: %s", rc, want, dp_errmsg());
    cr_assert(strstr(dp_errmsg(), needle), "message '%s' lacks '%s'", dp_errmsg(), needle);
    cr_assert_null(d.names, "a failed load leaves nothing allocated");
}

Test(dsi_data, truncated_shard_rejected)
{
    char ds[512], p[512];
    prepare_small(ds, sizeof ds);
    td_path(p, sizeof p, ds, "train-00000.dps");
    size_t n;
    free(td_read(p, &n));
    td_truncate(p, (long)n - 7);
    expect_load_error(ds, DP_ERR_FORMAT, "train-00000.dps");
}

Test(dsi_data, corrupt_shard_rejected)
{
    char ds[512], p[512];
    prepare_small(ds, sizeof ds);
    td_path(p, sizeof p, ds, "test-00000.dps");
    td_flip(p, DP_SHARD_HEADER_SIZE + 12, 0x40);
    expect_load_error(ds, DP_ERR_FORMAT, "test-00000.dps");
}

Test(dsi_data, doc_beyond_docs_tsv_rejected)
{
    char ds[512], p[512];
    prepare_small(ds, sizeof ds);
    td_path(p, sizeof p, ds, "docs.tsv");
    td_write(p, "doc0\ndoc1\ndoc2\n", 15); /* 3 of the 8 documents */
    expect_load_error(ds, DP_ERR_FORMAT, "train-00000.dps: record ");
    expect_load_error(ds, DP_ERR_FORMAT, ">= 3 (docs.tsv)");
}

Test(dsi_data, tokenizer_mismatch_rejected)
{
    char ds[512], p[512];
    prepare_small(ds, sizeof ds);
    td_path(p, sizeof p, ds, "tokenizer.txt");
    const char *t = "buckets=1024\nwords=1\nbigrams=1\ntrigrams=1\nmax_tokens=256\n";
    td_write(p, t, strlen(t));
    expect_load_error(ds, DP_ERR_FORMAT, "tokenizer.txt buckets=1024");
    t = "buckets=262144\nwords=1\nbigrams=1\nmax_tokens=256\n";
    td_write(p, t, strlen(t));
    expect_load_error(ds, DP_ERR_FORMAT, "tokenizer.txt: no 'trigrams='");
}

/* A hand-made dataset: 2 documents, buckets 100, train records as given. */
static void hand_dataset(const uint32_t *const *recs, const size_t *lens, int n)
{
    char p[512];
    write_text("tokenizer.txt", "buckets=100\nwords=1\nbigrams=0\ntrigrams=0\nmax_tokens=8\n", p, sizeof p);
    write_text("docs.tsv", "x\ny\n", p, sizeof p);
    dp_shard_schema s = dp_shard_schema_tokens(100);
    dp_manifest_shard sh[2] = {{"train", "train-00000.dps", 0, 0}, {"test", "test-00000.dps", 0, 0}};
    for (int k = 0; k < 2; k++) {
        dp_shard_writer *w;
        td_path(p, sizeof p, dir, sh[k].file);
        cr_assert_eq(dp_shard_writer_open(p, &s, &w), DP_OK);
        for (int i = 0; k == 0 && i < n; i++) cr_assert_eq(dp_shard_writer_add(w, recs[i], lens[i]), DP_OK, "%s", dp_errmsg());
        dp_shard_info info;
        cr_assert_eq(dp_shard_writer_close(w, &info), DP_OK);
        sh[k].records = info.record_count;
        sh[k].crc32 = info.payload_crc32;
    }
    dp_manifest m = {.name = "dsi", .schema = s, .nshards = 2, .shards = sh};
    cr_assert_eq(dp_manifest_save(dir, &m), DP_OK);
}

Test(dsi_data, bad_records_rejected)
{
    uint32_t good[3] = {1, 5, 99}, badtok[3] = {0, 7, 100}, baddoc[2] = {2, 3};
    const uint32_t *r1[2] = {good, badtok};
    size_t l1[2] = {12, 12};
    hand_dataset(r1, l1, 2);
    expect_load_error(dir, DP_ERR_FORMAT, "train-00000.dps: record 1: token 100 >= 100 buckets");
    const uint32_t *r2[2] = {good, baddoc};
    size_t l2[2] = {12, 8};
    hand_dataset(r2, l2, 2);
    expect_load_error(dir, DP_ERR_FORMAT, "train-00000.dps: record 1: document 2 >= 2 (docs.tsv)");
    const uint32_t *r3[2] = {good, good};
    size_t l3[2] = {12, 0};
    hand_dataset(r3, l3, 2);
    expect_load_error(dir, DP_ERR_FORMAT, "train-00000.dps: record 1: 0 bytes");
    hand_dataset(r1, l1, 1); /* and the good one alone loads, the test split empty */
    dp_dsi_data d;
    cr_assert_eq(dp_dsi_data_load(dir, &d), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(d.train.n, 1);
    cr_assert_eq(d.train.doc[0], 1);
    cr_assert_eq(d.train.off[1], 2);
    cr_assert_eq(d.train.tok[1], 99);
    cr_assert_eq(d.test.n, 0);
    cr_assert_eq(d.index.n, 0);
    cr_assert_eq(d.index.off[0], 0);
    cr_assert_str_eq(d.names[1], "y");
    dp_dsi_data_free(&d);
}

Test(dsi_data, missing_manifest_is_no_dataset)
{
    char ds[512], p[512];
    prepare_small(ds, sizeof ds);
    td_path(p, sizeof p, ds, "manifest.txt");
    cr_assert_eq(remove(p), 0);
    expect_load_error(ds, DP_ERR_IO, "manifest.txt");
}

/* ------------------------------------------------------------ config */

Test(dsi_data, config_errors)
{
    dp_dsi_prepare_config cfg;
    dp_dsi_prepare_stats st;
    dp_dsi_prepare_defaults(&cfg);
    cr_assert_eq(cfg.index_examples, 4);
    cr_assert_float_eq(cfg.test_fraction, 0.5, 1e-12);
    cr_assert_eq(cfg.min_words, 3);
    snprintf(cfg.out, sizeof cfg.out, "%s/o", dir);
    cr_assert_eq(dp_dsi_prepare(&cfg, &st), DP_ERR_ARG); /* no input */
    snprintf(cfg.queries, sizeof cfg.queries, "q.tsv");
    snprintf(cfg.debian_packages, sizeof cfg.debian_packages, "P");
    cr_assert_eq(dp_dsi_prepare(&cfg, &st), DP_ERR_ARG); /* both inputs */
    cfg.debian_packages[0] = '\0';
    cfg.test_fraction = 1;
    cr_assert_eq(dp_dsi_prepare(&cfg, &st), DP_ERR_ARG);
    cfg.test_fraction = 0.5;
    cfg.members[0] = 1;
    cfg.nmembers = 1;
    cr_assert_eq(dp_dsi_prepare(&cfg, &st), DP_ERR_ARG);
    cfg.nmembers = 0;
    cfg.tok.buckets = 0;
    cr_assert_eq(dp_dsi_prepare(&cfg, &st), DP_ERR_ARG);
}

Test(dsi_data, more_members_than_documents)
{
    char qp[512];
    synth_queries("q.tsv", 3, nq_three, qp, sizeof qp);
    dp_dsi_prepare_config cfg;
    member_config(&cfg, qp, "out", 4);
    dp_dsi_prepare_stats st;
    cr_assert_eq(dp_dsi_prepare(&cfg, &st), DP_ERR_ARG);
    cr_assert(strstr(dp_errmsg(), "4 members but only 3 documents"), "%s", dp_errmsg());
}

/* ------------------------------------------------------------ pairs */

Test(dsi_data, pairs_dedupe_and_errors)
{
    char p[512];
    write_text("pairs.tsv", "q1\td1\nq1\td1\nq2\td1\nq1\td2\n\nq2\td1\r\n", p, sizeof p);
    dp_dsi_pairs pr;
    cr_assert_eq(dp_dsi_pairs_load(p, 0, &pr), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(pr.n, 5);
    dp_dsi_pairs_free(&pr);
    cr_assert_eq(dp_dsi_pairs_load(p, 1, &pr), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(pr.n, 3);
    const char *wq[3] = {"q1", "q2", "q1"}, *wd[3] = {"d1", "d1", "d2"};
    for (int i = 0; i < 3; i++) {
        cr_assert_str_eq(pr.query[i], wq[i]);
        cr_assert_str_eq(pr.docid[i], wd[i]);
    }
    dp_dsi_pairs_free(&pr);
    dp_dsi_pairs_free(&pr); /* twice is harmless */

    /* many pairs: the table grows, the dedupe holds */
    td_path(p, sizeof p, dir, "big.tsv");
    FILE *f = fopen(p, "w");
    for (int r = 0; r < 2; r++)
        for (int i = 0; i < 5000; i++) fprintf(f, "query %d\tdoc%d\n", i, i % 97);
    fclose(f);
    cr_assert_eq(dp_dsi_pairs_load(p, 1, &pr), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(pr.n, 5000);
    cr_assert_str_eq(pr.query[4999], "query 4999");
    cr_assert_str_eq(pr.docid[4999], "doc52");
    dp_dsi_pairs_free(&pr);

    write_text("bad.tsv", "q1\td1\nno tab here\n", p, sizeof p);
    cr_assert_eq(dp_dsi_pairs_load(p, 1, &pr), DP_ERR_FORMAT);
    cr_assert(strstr(dp_errmsg(), "bad.tsv:2: no tab"), "%s", dp_errmsg());
    cr_assert_eq(pr.n, 0);
    write_text("bad.tsv", "q1\td1\nq2\t\n", p, sizeof p);
    cr_assert_eq(dp_dsi_pairs_load(p, 0, &pr), DP_ERR_FORMAT);
    cr_assert(strstr(dp_errmsg(), "bad.tsv:2: empty docid"), "%s", dp_errmsg());
    write_text("bad.tsv", "q1\td1\turl\n", p, sizeof p);
    cr_assert_eq(dp_dsi_pairs_load(p, 0, &pr), DP_ERR_FORMAT);
    cr_assert(strstr(dp_errmsg(), "bad.tsv:1:"), "%s", dp_errmsg());
    td_path(p, sizeof p, dir, "missing.tsv");
    cr_assert_eq(dp_dsi_pairs_load(p, 0, &pr), DP_ERR_IO);
    cr_assert(strstr(dp_errmsg(), "missing.tsv"), "%s", dp_errmsg());
}
