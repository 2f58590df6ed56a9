/* dsi-prepare: query-docid corpora -> DSI dataset dirs (layout in
 * shards/README.md, "DSI datasets").
 *
 *   inputs ─▶ corpus (docs in first-seen order, queries in input order)
 *          ─▶ drop within-document repeats, then every query (lower-cased,
 *             whitespace collapsed) that belongs to more than one document
 *          ─▶ drop documents left with < 2 queries; optional random subset
 *          ─▶ per document: shuffle its queries, train = ceil(n (1 - f)),
 *             at least 1 train and 1 test
 *          ─▶ the text each document is indexed from:
 *             split text (default): its text (Debian description, docs
 *             file; else its train queries joined) with every test query
 *             cut out; then a test query still inside any indexed text or
 *             train query is left out of the test set (holdout.c)
 *             split queries: its docs-file text or its TRAIN queries joined
 *          ─▶ indexing examples from that text
 *          ─▶ tokenise once ─▶ out/ (every document) and out/m<S>/<k>/
 *             (document groups: random deal or k-means over TF-IDF of the
 *             train queries), each written file by file, manifest last.
 *
 * Random streams (dp_rng, seed = cfg->seed): PURPOSE_LIMIT for the document
 * subset, PURPOSE_SPLIT for the train/test shuffles, PURPOSE_INDEX for the
 * indexing examples, PURPOSE_MEMBERS (rank = S) for the random member deal.
 * Everything is a function of the inputs and the seed. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dptrain/fsutil.h"
#include "dptrain/data.h"
#include "dptrain/report.h"
#include "dptrain/rng.h"
#include "dsi/data_internal.h"

enum {
    PURPOSE_LIMIT = DP_STREAM_USER + 1,
    PURPOSE_SPLIT = DP_STREAM_USER + 2,
    PURPOSE_INDEX = DP_STREAM_USER + 3,
    PURPOSE_MEMBERS = DP_STREAM_USER + 4,
    KMEANS_ITERS = 25,
    SPAN_MIN = 3,
    SPAN_MAX = 12,
    SUBSET_TRIES = 64,
};

/* ============================================================ config */

void dp_dsi_prepare_defaults(dp_dsi_prepare_config *c)
{
    memset(c, 0, sizeof *c);
    dp_dsi_tok_defaults(&c->tok);
    c->index_examples = 4;
    c->test_fraction = 0.5;
    c->min_words = 3;
    c->seed = 1;
}

static dp_status check_config(const dp_dsi_prepare_config *c)
{
    dp_status rc = dp_dsi_tok_check(&c->tok);
    if (rc != DP_OK) return rc;
    int debian = c->debian_packages[0] || c->debian_translations[0];
    if (debian && c->queries[0])
        return dp_errorf(DP_ERR_ARG, "dsi-prepare: give either the Debian lists or a queries TSV, not both");
    if (!debian && !c->queries[0])
        return dp_errorf(DP_ERR_ARG, "dsi-prepare: no input (Debian Packages + Translation-en, or a queries TSV)");
    if (debian && (!c->debian_packages[0] || !c->debian_translations[0]))
        return dp_errorf(DP_ERR_ARG, "dsi-prepare: the Debian input needs both the Packages and the Translation-en file");
    if (debian && c->docs[0])
        return dp_errorf(DP_ERR_ARG, "dsi-prepare: a docs TSV goes with a queries TSV, not the Debian lists");
    if (!c->out[0]) return dp_errorf(DP_ERR_ARG, "dsi-prepare: no output directory");
    if (c->nmembers < 0 || c->nmembers > 8) return dp_errorf(DP_ERR_ARG, "dsi-prepare: %d member counts, at most 8", c->nmembers);
    for (int i = 0; i < c->nmembers; i++)
        if (c->members[i] < 2 || c->members[i] > 4096)
            return dp_errorf(DP_ERR_ARG, "dsi-prepare: members = %d outside [2, 4096]", c->members[i]);
    if (c->index_examples < 0 || c->index_examples > 1000)
        return dp_errorf(DP_ERR_ARG, "dsi-prepare: index_examples = %d outside [0, 1000]", c->index_examples);
    if (!(c->test_fraction > 0 && c->test_fraction < 1))
        return dp_errorf(DP_ERR_ARG, "dsi-prepare: test_fraction = %g outside (0, 1)", c->test_fraction);
    if (c->limit_docs < 0) return dp_errorf(DP_ERR_ARG, "dsi-prepare: limit_docs = %ld < 0", c->limit_docs);
    if (c->min_words < 1 || c->min_words > 1000)
        return dp_errorf(DP_ERR_ARG, "dsi-prepare: min_words = %d outside [1, 1000]", c->min_words);
    if (c->split != DP_DSI_SPLIT_TEXT && c->split != DP_DSI_SPLIT_QUERIES)
        return dp_errorf(DP_ERR_ARG, "dsi-prepare: split = %d (0 text, 1 queries)", (int)c->split);
    return DP_OK;
}

/* ============================================================ drop rules */

static int lower(unsigned char ch) { return ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch; }

/* FNV-1a over the lower-cased bytes (queries are already whitespace-squashed,
 * so this is the normalised form), with the document mixed in when by_doc. */
static uint64_t query_hash(const char *s, int32_t doc, int by_doc)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (uint64_t)lower((unsigned char)*s)) * 0x100000001b3ull;
    if (by_doc) h = (h ^ (uint64_t)(uint32_t)doc) * 0x9e3779b97f4a7c15ull;
    return h ^ (h >> 29);
}

static int query_equal(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if (lower((unsigned char)*a) != lower((unsigned char)*b)) return 0;
    return *a == *b;
}

/* canon[q] = the first query (in input order) equal to q after normalisation
 * (and of the same document when by_doc); queries with skip[q] are left out. */
static dp_status canon_pass(const dsi_corpus *c, int by_doc, const uint8_t *skip, int32_t *canon)
{
    size_t cap = 1024;
    while (cap < 2 * (size_t)c->nq) cap *= 2;
    int32_t *slot = malloc(cap * sizeof *slot);
    if (!slot) return dp_errorf(DP_ERR_NOMEM, "dsi-prepare: out of memory (query table of %zu)", cap);
    for (size_t i = 0; i < cap; i++) slot[i] = -1;
    for (long q = 0; q < c->nq; q++) {
        canon[q] = (int32_t)q;
        if (skip && skip[q]) continue;
        const char *s = dsi_corpus_query(c, q);
        size_t h = (size_t)query_hash(s, c->qdoc[q], by_doc) & (cap - 1);
        for (; slot[h] >= 0; h = (h + 1) & (cap - 1)) {
            int32_t j = slot[h];
            if ((!by_doc || c->qdoc[j] == c->qdoc[q]) && query_equal(dsi_corpus_query(c, j), s)) {
                canon[q] = j;
                break;
            }
        }
        if (slot[h] < 0) slot[h] = (int32_t)q;
    }
    free(slot);
    return DP_OK;
}

/* ============================================================ state */

typedef struct ex_set {  /* one split's examples, central document ids */
    dp_dsi_set set;      /* doc, off, tok */
    int64_t *text;       /* [n] query offsets in the corpus arena (train, test); NULL for index */
    int64_t cap;
    size_t tok_cap;
} ex_set;

typedef struct prep {
    const dp_dsi_prepare_config *cfg;
    dsi_corpus c;
    int D;               /* documents kept */
    int32_t *src;        /* [D] corpus document of central document d */
    ex_set split[3];     /* train, test, index */
    long *ws;            /* word starts of the text being indexed */
    size_t ws_cap;
    dsi_arena itexts;    /* split text: what each document is indexed from (text.tsv) */
    int64_t *itext;      /* [D] offsets in itexts */
    dp_dsi_prepare_stats st;
} prep;

enum { TRAIN, TEST, INDEX };
static const char *const split_name[3] = {"train", "test", "index"};

static dp_status ex_add(prep *p, ex_set *e, int32_t doc, const char *text, int64_t text_off)
{
    const int cap_tok = p->cfg->tok.max_tokens;
    dp_dsi_set *s = &e->set;
    const int64_t had = e->cap;
    dp_status rc = dsi_set_reserve(s, &e->cap, &e->tok_cap, cap_tok, INT64_MAX, "dsi-prepare");
    if (rc != DP_OK) return rc;
    if (text_off >= 0 && e->cap != had && !dsi_resize(&e->text, (size_t)e->cap, sizeof *e->text))
        return dp_errorf(DP_ERR_NOMEM, "dsi-prepare: out of memory");
    /* ids < buckets <= 2^30: the uint32 the tokenizer writes reads back as the same int32 */
    int nt = dp_dsi_tokenize(&p->cfg->tok, text, (uint32_t *)s->tok + s->off[s->n], cap_tok);
    s->doc[s->n] = doc;
    if (e->text) e->text[s->n] = text_off;
    s->off[s->n + 1] = s->off[s->n] + nt;
    s->n++;
    return DP_OK;
}

static void prep_free(prep *p)
{
    dsi_corpus_free(&p->c);
    free(p->src);
    for (int i = 0; i < 3; i++) {
        dp_dsi_set_free(&p->split[i].set);
        free(p->split[i].text);
    }
    free(p->ws);
    dsi_arena_free(&p->itexts);
    free(p->itext);
}

/* ============================================================ selection */

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Drop rules, subset, then per-document queries: qfirst[d] .. qfirst[d+1]
 * into qlist (corpus query ids in input order). */
static dp_status select_docs(prep *p, int64_t **qfirst_out, int32_t **qlist_out)
{
    const dsi_corpus *c = &p->c;
    const long nd = c->docs.n, nq = c->nq;
    dp_status rc = DP_OK;
    int32_t *canon = malloc((size_t)(nq + 1) * sizeof *canon);
    uint8_t *dup = calloc((size_t)nq + 1, 1), *shared = calloc((size_t)nq + 1, 1);
    int64_t *cnt = calloc((size_t)nd + 1, sizeof *cnt);
    int32_t *central = malloc((size_t)(nd + 1) * sizeof *central);
    int64_t *qfirst = NULL;
    int32_t *qlist = NULL;
    if (!canon || !dup || !shared || !cnt || !central) {
        rc = dp_errorf(DP_ERR_NOMEM, "dsi-prepare: out of memory (%ld queries)", nq);
        goto done;
    }
    /* 1. a query repeated inside one document counts once */
    if ((rc = canon_pass(c, 1, NULL, canon)) != DP_OK) goto done;
    for (long q = 0; q < nq; q++) dup[q] = canon[q] != q;
    /* 2. a query of several documents is dropped from all of them */
    if ((rc = canon_pass(c, 0, dup, canon)) != DP_OK) goto done;
    for (long q = 0; q < nq; q++)
        if (!dup[q] && canon[q] != q) shared[canon[q]] = 1;
    for (long q = 0; q < nq; q++) {
        if (dup[q]) continue;
        if (shared[canon[q]]) p->st.dropped_shared_queries++;
        else cnt[c->qdoc[q]]++;
    }
    /* 3. documents left with fewer than two queries go */
    long kept = 0;
    for (long d = 0; d < nd; d++)
        if (cnt[d] >= 2) central[kept++] = (int32_t)d;
    p->st.dropped_docs = nd - kept;
    if (kept == 0) {
        rc = dp_errorf(DP_ERR_FORMAT, "dsi-prepare: no document keeps two queries (%ld documents, %ld queries read)",
                       nd, nq);
        goto done;
    }
    /* 4. a random subset, back in input order */
    if (p->cfg->limit_docs > 0 && p->cfg->limit_docs < kept) {
        dp_rng r;
        dp_rng_seed(&r, p->cfg->seed, PURPOSE_LIMIT, 0);
        dp_rng_shuffle_i32(&r, central, (size_t)kept);
        kept = p->cfg->limit_docs;
        qsort(central, (size_t)kept, sizeof *central, cmp_i32);
    }
    if (kept > INT32_MAX / 2) {
        rc = dp_errorf(DP_ERR_ARG, "dsi-prepare: %ld documents, at most %d", kept, INT32_MAX / 2);
        goto done;
    }
    p->D = (int)kept;
    p->src = malloc((size_t)kept * sizeof *p->src);
    qfirst = calloc((size_t)kept + 1, sizeof *qfirst);
    if (!p->src || !qfirst) {
        rc = dp_errorf(DP_ERR_NOMEM, "dsi-prepare: out of memory");
        goto done;
    }
    memcpy(p->src, central, (size_t)kept * sizeof *central);
    /* corpus document -> central index (reusing cnt: -1 = not kept) */
    int64_t *cidx = cnt;
    for (long d = 0; d < nd; d++) cidx[d] = -1;
    for (int d = 0; d < p->D; d++) cidx[p->src[d]] = d;
    for (long q = 0; q < nq; q++)
        if (!dup[q] && !shared[canon[q]] && cidx[c->qdoc[q]] >= 0) qfirst[cidx[c->qdoc[q]] + 1]++;
    for (int d = 0; d < p->D; d++) qfirst[d + 1] += qfirst[d];
    qlist = malloc((size_t)qfirst[p->D] * sizeof *qlist + 1);
    int64_t *fill = malloc((size_t)p->D * sizeof *fill + 1);
    if (!qlist || !fill) {
        free(fill);
        rc = dp_errorf(DP_ERR_NOMEM, "dsi-prepare: out of memory");
        goto done;
    }
    memcpy(fill, qfirst, (size_t)p->D * sizeof *fill);
    for (long q = 0; q < nq; q++)
        if (!dup[q] && !shared[canon[q]] && cidx[c->qdoc[q]] >= 0) qlist[fill[cidx[c->qdoc[q]]]++] = (int32_t)q;
    free(fill);
done:
    free(canon);
    free(dup);
    free(shared);
    free(cnt);
    free(central);
    if (rc != DP_OK) {
        free(qfirst);
        free(qlist);
        qfirst = NULL;
        qlist = NULL;
    }
    *qfirst_out = qfirst;
    *qlist_out = qlist;
    return rc;
}

/* ============================================================ examples */

/* Indexing examples of one document from its text (squashed: words
 * separated by single spaces): even ones a random contiguous
 * span of SPAN_MIN..SPAN_MAX words, odd ones a random subset (each word kept
 * with p = 1/2, redrawn until at least two are kept). A span is a substring
 * of the text; a subset is not, and may string a held-out query's words
 * together again: one holding any of held[0 .. nheld) is redrawn, and after
 * SUBSET_TRIES such draws a span stands in for it. */
static dp_status index_examples(prep *p, int32_t doc, const char *text, const char *const *held, long nheld,
                                dp_rng *r, char **out, size_t *out_cap)
{
    size_t n = strlen(text);
    if (!dsi_reserve(out, out_cap, n + 1, 1))
        return dp_errorf(DP_ERR_NOMEM, "dsi-prepare: out of memory");
    /* word starts (text is squashed: words are separated by one space) */
    long nw = 0;
    for (size_t i = 0; i < n; i++)
        if (i == 0 || text[i - 1] == ' ') nw++;
    if (nw == 0) return DP_OK;
    if (!dsi_reserve(&p->ws, &p->ws_cap, (size_t)nw, sizeof *p->ws))
        return dp_errorf(DP_ERR_NOMEM, "dsi-prepare: out of memory");
    long *ws = p->ws;
    nw = 0;
    for (size_t i = 0; i < n; i++)
        if (i == 0 || text[i - 1] == ' ') ws[nw++] = (long)i;
    for (int k = 0; k < p->cfg->index_examples; k++) {
        size_t len = 0;
#define ADD_WORD(j)                                                                         \
    do {                                                                                    \
        size_t a_ = (size_t)ws[j], b_ = (j) + 1 < nw ? (size_t)ws[(j) + 1] - 1 : n;         \
        if (len) (*out)[len++] = ' ';                                                       \
        memcpy(*out + len, text + a_, b_ - a_);                                             \
        len += b_ - a_;                                                                     \
    } while (0)
        int span = k % 2 == 0 || nw <= 2;
        if (!span) {
            for (int tries = 0;;) {
                long kept = 0;
                len = 0;
                for (long j = 0; j < nw; j++)
                    if (dp_rng_u64(r) >> 63) {
                        ADD_WORD(j);
                        kept++;
                    }
                if (kept < 2) continue;
                (*out)[len] = '\0';
                long h = 0;
                while (h < nheld && !dsi_inside_folded(*out, held[h])) h++;
                if (h == nheld) break;
                if (++tries == SUBSET_TRIES) {
                    span = 1;
                    break;
                }
            }
        }
        if (span) {
            len = 0;
            long L = SPAN_MIN + (long)dp_rng_below(r, SPAN_MAX - SPAN_MIN + 1);
            if (L > nw) L = nw;
            long s = (long)dp_rng_below(r, (uint64_t)(nw - L + 1));
            for (long j = s; j < s + L; j++) ADD_WORD(j);
        }
#undef ADD_WORD
        (*out)[len] = '\0';
        dp_status rc = ex_add(p, &p->split[INDEX], doc, *out, -1);
        if (rc != DP_OK) return rc;
    }
    return DP_OK;
}

/* The train queries of document d joined by spaces into *buf. */
static dp_status join_train(prep *p, const int32_t *q, long ntrain, char **buf, size_t *cap)
{
    size_t need = 1, len = 0;
    for (long i = 0; i < ntrain; i++) need += strlen(dsi_corpus_query(&p->c, q[i])) + 1;
    if (!dsi_reserve(buf, cap, need, 1)) return dp_errorf(DP_ERR_NOMEM, "dsi-prepare: out of memory");
    for (long i = 0; i < ntrain; i++) {
        const char *s = dsi_corpus_query(&p->c, q[i]);
        size_t l = strlen(s);
        if (len) (*buf)[len++] = ' ';
        memcpy(*buf + len, s, l);
        len += l;
    }
    (*buf)[len] = '\0';
    return DP_OK;
}

/* Split text: p->itext[d] = document d's text (its own, else its train
 * queries joined) with every one of its test queries cut out; gone[i] = 1 for
 * each test query (qlist position i) still inside any document's indexed text
 * or any train query: it leaves the test set. */
static dp_status hold_out(prep *p, const int64_t *qfirst, const int32_t *qlist, const long *ntrain, uint8_t *gone)
{
    char *buf = NULL;
    size_t cap = 0;
    dp_status rc = DP_OK;
    if (!(p->itext = malloc((size_t)p->D * sizeof *p->itext)))
        return dp_errorf(DP_ERR_NOMEM, "dsi-prepare: out of memory");
    for (int d = 0; d < p->D && rc == DP_OK; d++) {
        const int32_t *q = qlist + qfirst[d];
        const long n = (long)(qfirst[d + 1] - qfirst[d]);
        const int64_t own = p->c.text[p->src[d]];
        if (own >= 0) {
            const char *t = dsi_arena_str(&p->c.strs, own);
            size_t l = strlen(t);
            if (!dsi_reserve(&buf, &cap, l + 1, 1)) rc = dp_errorf(DP_ERR_NOMEM, "dsi-prepare: out of memory");
            else memcpy(buf, t, l + 1);
        } else {
            rc = join_train(p, q, ntrain[d], &buf, &cap);
        }
        if (rc != DP_OK) break;
        size_t len = strlen(buf);
        for (long i = ntrain[d]; i < n; i++) p->st.cut_from_text += dsi_cut_all(buf, &len, dsi_corpus_query(&p->c, q[i]));
        rc = dsi_arena_add(&p->itexts, buf, len, &p->itext[d]);
    }
    free(buf);
    if (rc != DP_OK) return rc;
    /* needles: the test queries; haystacks: every indexed text, then every train query */
    long ntest = 0, nhay = p->D;
    for (int d = 0; d < p->D; d++) {
        ntest += (long)(qfirst[d + 1] - qfirst[d]) - ntrain[d];
        nhay += ntrain[d];
    }
    const char **needle = malloc((size_t)ntest * sizeof *needle + 1), **hay = malloc((size_t)nhay * sizeof *hay);
    long *at = malloc((size_t)ntest * sizeof *at + 1);
    uint8_t *found = malloc((size_t)ntest + 1);
    if (!needle || !hay || !at || !found) rc = dp_errorf(DP_ERR_NOMEM, "dsi-prepare: out of memory");
    long t = 0, h = 0;
    for (int d = 0; d < p->D && rc == DP_OK; d++) {
        hay[h++] = dsi_arena_str(&p->itexts, p->itext[d]);
        for (int64_t i = qfirst[d]; i < qfirst[d + 1]; i++) {
            const char *s = dsi_corpus_query(&p->c, qlist[i]);
            if (i - qfirst[d] < ntrain[d]) hay[h++] = s;
            else needle[t] = s, at[t++] = (long)i;
        }
    }
    if (rc == DP_OK) rc = dsi_find_inside(needle, ntest, hay, nhay, found);
    for (long i = 0; i < ntest && rc == DP_OK; i++)
        if (found[i]) gone[at[i]] = 1, p->st.dropped_test_in_text++;
    free(needle);
    free(hay);
    free(at);
    free(found);
    return rc;
}

static dp_status build_examples(prep *p, const int64_t *qfirst, int32_t *qlist)
{
    const dp_dsi_prepare_config *cfg = p->cfg;
    const int text_split = cfg->split == DP_DSI_SPLIT_TEXT;
    dp_rng rs, ri;
    dp_rng_seed(&rs, cfg->seed, PURPOSE_SPLIT, 0);
    dp_rng_seed(&ri, cfg->seed, PURPOSE_INDEX, 0);
    char *joined = NULL, *ex = NULL;
    size_t jcap = 0, ecap = 0;
    const char **held = NULL;
    size_t held_cap = 0;
    long *ntrain = malloc((size_t)p->D * sizeof *ntrain);
    uint8_t *gone = calloc((size_t)qfirst[p->D] + 1, 1);
    dp_status rc = ntrain && gone ? DP_OK : dp_errorf(DP_ERR_NOMEM, "dsi-prepare: out of memory");
    /* each document's queries shuffled: the first ntrain train, the rest test */
    for (int d = 0; d < p->D && rc == DP_OK; d++) {
        long n = (long)(qfirst[d + 1] - qfirst[d]);
        dp_rng_shuffle_i32(&rs, qlist + qfirst[d], (size_t)n);
        long nt = (long)ceil((double)n * (1.0 - cfg->test_fraction) - 1e-9);
        if (nt < 1) nt = 1;
        if (nt > n - 1) nt = n - 1;
        ntrain[d] = nt;
    }
    if (rc == DP_OK && text_split) rc = hold_out(p, qfirst, qlist, ntrain, gone);
    for (int d = 0; d < p->D && rc == DP_OK; d++) {
        int32_t *q = qlist + qfirst[d];
        long n = (long)(qfirst[d + 1] - qfirst[d]), nheld = 0;
        for (long i = 0; i < n && rc == DP_OK; i++) {
            if (i >= ntrain[d] && gone[qfirst[d] + i]) continue;
            rc = ex_add(p, &p->split[i < ntrain[d] ? TRAIN : TEST], d, dsi_corpus_query(&p->c, q[i]), p->c.qtext[q[i]]);
        }
        if (rc != DP_OK || cfg->index_examples == 0) continue;
        const char *text;
        if (text_split) {
            text = dsi_arena_str(&p->itexts, p->itext[d]);
            if (!dsi_reserve(&held, &held_cap, (size_t)n, sizeof *held)) {
                rc = dp_errorf(DP_ERR_NOMEM, "dsi-prepare: out of memory");
                break;
            }
            for (long i = ntrain[d]; i < n; i++)
                if (!gone[qfirst[d] + i]) held[nheld++] = dsi_corpus_query(&p->c, q[i]);
        } else if (cfg->docs[0] && p->c.text[p->src[d]] >= 0) {
            text = dsi_arena_str(&p->c.strs, p->c.text[p->src[d]]); /* the docs file's text, as given */
        } else { /* its training queries joined (never a test query) */
            if ((rc = join_train(p, q, ntrain[d], &joined, &jcap)) != DP_OK) break;
            text = joined;
        }
        rc = index_examples(p, d, text, held, nheld, &ri, &ex, &ecap);
    }
    free(joined);
    free(ex);
    free(held);
    free(ntrain);
    free(gone);
    p->st.train_queries = p->split[TRAIN].set.n;
    p->st.test_queries = p->split[TEST].set.n;
    p->st.index_examples = p->split[INDEX].set.n;
    return rc;
}

/* ============================================================ writing */

/* A text file built in memory, then written atomically (dp_write_file_atomic). */
typedef struct tfile {
    FILE *f;
    char *text;
    size_t len;
    char path[4096];
} tfile;

static dp_status tfile_open(tfile *t, const char *dir, const char *name)
{
    dp_status rc = dp_path_join(t->path, sizeof t->path, dir, name);
    if (rc != DP_OK) return rc;
    if (!(t->f = open_memstream(&t->text, &t->len))) return dp_errorf(DP_ERR_NOMEM, "%s: out of memory", t->path);
    return DP_OK;
}

static dp_status tfile_close(tfile *t, dp_status rc)
{
    if (!t->f) return rc;
    if (fclose(t->f) != 0 && rc == DP_OK) rc = dp_errorf(DP_ERR_NOMEM, "%s: out of memory", t->path);
    t->f = NULL;
    if (rc == DP_OK) rc = dp_write_file_atomic(t->path, t->text, t->len);
    free(t->text);
    t->text = NULL;
    return rc;
}

/* One dataset dir holding the central documents with local[d] >= 0 (local
 * index local[d]; local == NULL: all, identity). */
static dp_status write_dataset(prep *p, const char *dir, const int32_t *local)
{
    const dp_dsi_tok_config *tok = &p->cfg->tok;
    dp_status rc = dp_mkdir_p(dir);
    if (rc == DP_OK) rc = dp_manifest_remove(dir);
    if (rc != DP_OK) return rc;
    tfile t = {0};
    /* tokenizer.txt */
    rc = tfile_open(&t, dir, "tokenizer.txt");
    if (rc == DP_OK)
        fprintf(t.f, "# dptrain DSI tokenizer (dp_dsi_tok_config); format in shards/README.md\n"
                     "buckets=%" PRIu32 "\nwords=%d\nbigrams=%d\ntrigrams=%d\nmax_tokens=%d\n",
                tok->buckets, tok->words, tok->bigrams, tok->trigrams, tok->max_tokens);
    if ((rc = tfile_close(&t, rc)) != DP_OK) return rc;
    /* docs.tsv: line i = docid of local document i (central order is kept) */
    rc = tfile_open(&t, dir, "docs.tsv");
    for (int d = 0; d < p->D && rc == DP_OK; d++)
        if (!local || local[d] >= 0) fprintf(t.f, "%s\n", dsi_intern_str(&p->c.docs, p->src[d]));
    if ((rc = tfile_close(&t, rc)) != DP_OK) return rc;
    /* train.tsv, test.tsv: query<TAB>docid */
    for (int sp = TRAIN; sp <= TEST; sp++) {
        char name[32];
        snprintf(name, sizeof name, "%s.tsv", split_name[sp]);
        const ex_set *e = &p->split[sp];
        rc = tfile_open(&t, dir, name);
        for (long i = 0; i < e->set.n && rc == DP_OK; i++) {
            int32_t d = e->set.doc[i];
            if (local && local[d] < 0) continue;
            fprintf(t.f, "%s\t%s\n", dsi_arena_str(&p->c.strs, e->text[i]), dsi_intern_str(&p->c.docs, p->src[d]));
        }
        if ((rc = tfile_close(&t, rc)) != DP_OK) return rc;
    }
    /* text.tsv (split text): text<TAB>docid, what the document is indexed from (BM25 reads it) */
    if (p->itext) {
        rc = tfile_open(&t, dir, "text.tsv");
        for (int d = 0; d < p->D && rc == DP_OK; d++) {
            const char *s = dsi_arena_str(&p->itexts, p->itext[d]);
            if ((!local || local[d] >= 0) && s[0]) fprintf(t.f, "%s\t%s\n", s, dsi_intern_str(&p->c.docs, p->src[d]));
        }
        if ((rc = tfile_close(&t, rc)) != DP_OK) return rc;
    }
    /* shards, then the manifest */
    dp_manifest m = {0};
    /* no line: the queries split, as every manifest written before the line existed (same bytes, same hash) */
    if (p->cfg->split == DP_DSI_SPLIT_TEXT) snprintf(m.split_rule, sizeof m.split_rule, "text");
    dp_manifest_shard shards[3];
    memset(shards, 0, sizeof shards);
    snprintf(m.name, sizeof m.name, "dsi");
    m.schema = dp_shard_schema_tokens(tok->buckets);
    m.shards = shards;
    uint8_t *rec = malloc(4 * ((size_t)tok->max_tokens + 1));
    if (!rec) return dp_errorf(DP_ERR_NOMEM, "dsi-prepare: out of memory");
    for (int sp = TRAIN; sp <= INDEX && rc == DP_OK; sp++) {
        if (sp == INDEX && p->cfg->index_examples == 0) break;
        const dp_dsi_set *s = &p->split[sp].set;
        dp_manifest_shard *ms = &shards[m.nshards];
        snprintf(ms->split, sizeof ms->split, "%s", split_name[sp]);
        snprintf(ms->file, sizeof ms->file, "%s-00000.dps", split_name[sp]);
        char path[4096];
        dp_shard_writer *w = NULL;
        dp_shard_info info;
        rc = dp_path_join(path, sizeof path, dir, ms->file);
        if (rc == DP_OK) rc = dp_shard_writer_open(path, &m.schema, &w);
        for (long i = 0; i < s->n && rc == DP_OK; i++) {
            int32_t d = s->doc[i];
            if (local && local[d] < 0) continue;
            uint32_t v = (uint32_t)(local ? local[d] : d);
            size_t len = 0;
            for (int64_t j = s->off[i] - 1; j < s->off[i + 1]; j++, len += 4) {
                if (j >= s->off[i]) v = (uint32_t)s->tok[j];
                rec[len] = (uint8_t)v, rec[len + 1] = (uint8_t)(v >> 8);
                rec[len + 2] = (uint8_t)(v >> 16), rec[len + 3] = (uint8_t)(v >> 24);
            }
            rc = dp_shard_writer_add(w, rec, len);
        }
        if (rc != DP_OK) {
            dp_shard_writer_abort(w);
            break;
        }
        if ((rc = dp_shard_writer_close(w, &info)) != DP_OK) break;
        ms->records = info.record_count;
        ms->crc32 = info.payload_crc32;
        m.nshards++;
    }
    free(rec);
    if (rc == DP_OK) rc = dp_manifest_save(dir, &m);
    return rc;
}

/* member[d] in [0, S) for every central document. */
static dp_status assign_members(prep *p, int S, const dp_sparse_rows *x, int32_t *member)
{
    if (p->D < S) return dp_errorf(DP_ERR_ARG, "dsi-prepare: %d members but only %d documents", S, p->D);
    if (x) {
        int *rows = malloc((size_t)p->D * sizeof *rows), *assign = malloc((size_t)p->D * sizeof *assign);
        dp_status rc = rows && assign ? DP_OK : dp_errorf(DP_ERR_NOMEM, "dsi-prepare: out of memory");
        for (int d = 0; d < p->D && rc == DP_OK; d++) rows[d] = d;
        if (rc == DP_OK)
            rc = dp_kmeans(x, rows, p->D, S, KMEANS_ITERS, p->cfg->seed + (uint64_t)S * 0x9e3779b97f4a7c15ull, assign);
        for (int d = 0; d < p->D && rc == DP_OK; d++) member[d] = assign[d];
        free(rows);
        free(assign);
        if (rc != DP_OK) return rc;
        long *size = calloc((size_t)S, sizeof *size);
        if (!size) return dp_errorf(DP_ERR_NOMEM, "dsi-prepare: out of memory");
        for (int d = 0; d < p->D; d++) {
            if (member[d] < 0 || member[d] >= S) {
                free(size);
                return dp_errorf(DP_ERR_ARG, "dsi-prepare: k-means put document %d in group %d of %d", d, member[d], S);
            }
            size[member[d]]++;
        }
        for (int k = 0; k < S; k++)
            if (size[k] == 0) {
                free(size);
                return dp_errorf(DP_ERR_ARG, "dsi-prepare: k-means left member %d of %d empty", k, S);
            }
        free(size);
        return DP_OK;
    }
    int32_t *perm = malloc((size_t)p->D * sizeof *perm);
    if (!perm) return dp_errorf(DP_ERR_NOMEM, "dsi-prepare: out of memory");
    for (int d = 0; d < p->D; d++) perm[d] = d;
    dp_rng r;
    dp_rng_seed(&r, p->cfg->seed, PURPOSE_MEMBERS, (uint32_t)S);
    dp_rng_shuffle_i32(&r, perm, (size_t)p->D);
    for (int i = 0; i < p->D; i++) member[perm[i]] = i % S;
    free(perm);
    return DP_OK;
}

static dp_status member_dir(char *out, size_t cap, const char *root, int S, int k)
{
    int n = snprintf(out, cap, "%s/m%d/%d", root, S, k);
    if (n < 0 || (size_t)n >= cap) return dp_errorf(DP_ERR_ARG, "%s/m%d/%d: path too long", root, S, k);
    return DP_OK;
}

static dp_status write_all(prep *p)
{
    const dp_dsi_prepare_config *cfg = p->cfg;
    char dir[4096];
    /* cfg->out is a fresh directory (dp_dsi_prepare): no member dir of an earlier run is left */
    dp_status rc = write_dataset(p, cfg->out, NULL);
    if (rc != DP_OK || cfg->nmembers == 0) return rc;

    dp_sparse_rows x = {0};
    int32_t *member = malloc((size_t)p->D * sizeof *member), *local = malloc((size_t)p->D * sizeof *local);
    if (!member || !local) rc = dp_errorf(DP_ERR_NOMEM, "dsi-prepare: out of memory");
    if (rc == DP_OK && cfg->kmeans_members) rc = dp_dsi_tfidf(&p->split[TRAIN].set, p->D, cfg->tok.buckets, &x);
    for (int i = 0; i < cfg->nmembers && rc == DP_OK; i++) {
        const int S = cfg->members[i];
        rc = assign_members(p, S, cfg->kmeans_members ? &x : NULL, member);
        for (int k = 0; k < S && rc == DP_OK; k++) {
            int32_t n = 0;
            for (int d = 0; d < p->D; d++) local[d] = member[d] == k ? n++ : -1;
            if ((rc = member_dir(dir, sizeof dir, cfg->out, S, k)) == DP_OK) rc = write_dataset(p, dir, local);
        }
    }
    if (cfg->kmeans_members) dp_sparse_rows_free(&x);
    free(member);
    free(local);
    return rc;
}

/* ============================================================ entry */

dp_status dp_dsi_prepare(const dp_dsi_prepare_config *cfg, dp_dsi_prepare_stats *st)
{
    const double t0 = dp_now();
    if (st) memset(st, 0, sizeof *st);
    dp_status rc = check_config(cfg);
    if (rc != DP_OK) return rc;
    /* refused before any work when --out holds another dataset; written beside it, renamed at the end */
    static const char *const ours[] = {"tokenizer.txt", "docs.tsv", "train.tsv", "test.tsv", "text.tsv", NULL};
    dp_dataset_dir dd;
    if ((rc = dp_dataset_dir_begin(&dd, cfg->out, "dsi", DP_SCHEMA_TOKENS, ours, 1, cfg->overwrite)) != DP_OK)
        return rc;
    dp_dsi_prepare_config into = *cfg;
    if (snprintf(into.out, sizeof into.out, "%s", dd.tmp) >= (int)sizeof into.out) {
        dp_dataset_dir_abort(&dd);
        return dp_errorf(DP_ERR_ARG, "%s: path too long", dd.tmp);
    }
    prep p = {.cfg = &into};
    int64_t *qfirst = NULL;
    int32_t *qlist = NULL;
    if (cfg->queries[0]) rc = dsi_read_queries_tsv(cfg->queries, &p.c);
    else rc = dsi_read_debian(cfg->debian_packages, cfg->debian_translations, cfg->min_words, cfg->split_lists, &p.c);
    if (rc == DP_OK) rc = select_docs(&p, &qfirst, &qlist);
    if (rc == DP_OK && cfg->docs[0]) {
        uint8_t *keep = calloc((size_t)p.c.docs.n + 1, 1);
        if (!keep) rc = dp_errorf(DP_ERR_NOMEM, "dsi-prepare: out of memory");
        for (int d = 0; d < p.D && rc == DP_OK; d++) keep[p.src[d]] = 1;
        if (rc == DP_OK) rc = dsi_read_docs_tsv(cfg->docs, &p.c, keep);
        free(keep);
    }
    if (rc == DP_OK) rc = build_examples(&p, qfirst, qlist);
    free(qfirst);
    free(qlist);
    if (rc == DP_OK) rc = write_all(&p);
    if (rc == DP_OK) rc = dp_dataset_dir_commit(&dd);
    else dp_dataset_dir_abort(&dd);
    p.st.docs = p.D;
    p.st.seconds = dp_now() - t0;
    if (st && rc == DP_OK) *st = p.st;
    prep_free(&p);
    return rc;
}
