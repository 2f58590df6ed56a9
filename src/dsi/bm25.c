/* BM25 (Robertson & Zaragoza 2009, "The Probabilistic Relevance Framework:
 * BM25 and Beyond"): the lexical baseline of the DSI benchmarks, over the
 * text each document is indexed from (dsi-prepare's text.tsv; datasets of the
 * queries split: its training queries joined).
 *
 * Our own implementation: Debian ships no C library for BM25 ranking over an
 * in-memory corpus that would fit (Xapian is C++ and wants its own on-disk
 * database; Lucene/Pyserini and rank_bm25 are Java/Python), and the whole thing
 * is a hash map and posting lists.
 *
 *   score(q, d) = sum over query words t of
 *                 idf(t) * tf(t,d) (k1 + 1) / (tf(t,d) + k1 (1 - b + b dl(d) / avgdl))
 *   idf(t)      = log(1 + (N - df(t) + 0.5) / (df(t) + 0.5))     (Lucene's, > 0)
 *
 * Words are dp_dsi_words' 64-bit hashes of the lower-cased words (a collision
 * merges two words: at 64 bits, improbable for any vocabulary here). A word
 * repeated in the query counts once per occurrence, as in rank_bm25's
 * get_scores and in Lucene's BooleanQuery with a repeated SHOULD clause; this
 * is the plain sum above over the query's word list, not its word set.
 *
 * Index: an open-addressing map word hash -> term; postings of every term in
 * one CSR array, in document order. The fraction in the sum depends only on
 * (t, d), so build stores idf * fraction as each posting's weight (and each
 * term's largest weight, its bound) and a search is one float add per posting.
 * Scores accumulate in a per-index scratch of N floats; only the touched
 * documents are then read (a list of them) and reset. Top-k keeps a min-heap
 * in the caller's arrays. dp_bm25_search is therefore not thread-safe on one
 * index (one index per thread if needed).
 *
 * Pruning (MaxScore's bound, Turtle & Flood 1995, applied term at a time):
 * query terms go in decreasing bound order (rare words first); before each
 * term, if the bounds of the terms left sum below the k-th best score so far
 * (theta), no untouched document can enter the top k, so the remaining
 * (frequent, low-idf) terms only update documents already touched that can
 * still reach theta. Exact: the top k equals the exhaustive one, scores bit for
 * bit (each document adds its terms in the same order either way); tested
 * against k above PRUNE_KMAX, which never prunes. With Zipf-distributed words
 * most postings belong to a few frequent terms, which is what pruning skips
 * (timings in benchmarks/RESULTS.md §11). */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/dsi.h"
#include "dptrain/idsort.h"
#include "dsi/data_internal.h"

enum { QUERY_WORDS_MAX = 1024 }; /* words of a query beyond this are ignored */
enum { PRUNE_KMAX = 256 };       /* searches for more than this many skip pruning */
/* Safety factor on the pruning bound: a float sum of a document's weights may
 * exceed the exact sum of their bounds by rounding (< 1e-6 relative for the few
 * terms of a query), so a bound must clear theta by more than that. */
#define PRUNE_SLACK 1.0001
/* A pruned term gallops when its list is this many times longer than the
 * candidates (a gallop costs ~log2 of the gap in mispredicted branches, a scan
 * one branch-free add a posting), else it scans. */
#define GALLOP_RATIO 32

struct dp_bm25 {
    int ndocs;
    float k1, b, avgdl;
    /* map: slot -> term + 1 (0 = empty), keyed by the word hash */
    uint64_t *key;
    int32_t *val;
    uint64_t mask; /* slots - 1 */
    int nterms;
    int64_t *off;  /* [nterms + 1]: term t's postings are [off[t], off[t+1]) */
    int32_t *pdoc; /* posting documents, ascending within a term */
    float *pw;     /* posting weights idf * tf (k1+1) / (tf + k1 (1 - b + b dl/avgdl)) */
    float *ub;     /* [nterms] the largest weight in each term's postings */
    int32_t *dl;   /* [ndocs] words per document */
    float *acc;    /* [ndocs] search scratch, all zero between searches */
    int32_t *touched; /* [ndocs] documents with acc > 0 in the current search */
    int32_t *tmp;     /* [ndocs] radix sort scratch */
};

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* The slot of word h: its own, or the empty one where it goes (the map is
 * sized for every word of the corpus, so an empty slot always exists). */
static uint64_t slot_of(const dp_bm25 *ix, uint64_t h)
{
    uint64_t s = h & ix->mask;
    while (0 != ix->val[s] && ix->key[s] != h)
        s = (s + 1) & ix->mask;
    return s;
}

/* The term of word h, added if new. */
static int32_t intern(dp_bm25 *ix, uint64_t h)
{
    const uint64_t s = slot_of(ix, h);
    if (0 == ix->val[s]) {
        ix->key[s] = h;
        ix->val[s] = ++ix->nterms;
    }
    return ix->val[s] - 1;
}

/* Words of text into *buf (grown as needed). @return the count or -1 (no memory). */
static long words_of(const char *text, uint64_t **buf, size_t *cap)
{
    if (NULL == text)
        return 0;
    for (;;) {
        int n = dp_dsi_words(text, *buf, (int)*cap);
        if ((size_t)n < *cap)
            return n;
        if (*cap >= (1u << 30) || !dsi_reserve(buf, cap, *cap + 1, sizeof **buf))
            return -1;
    }
}

dp_status dp_bm25_build(int ndocs, const char *const *texts, float k1, float b, dp_bm25 **out)
{
    if (NULL == out)
        return dp_errorf(DP_ERR_ARG, "dp_bm25_build: out is NULL");
    *out = NULL;
    if (ndocs < 0 || (ndocs > 0 && NULL == texts))
        return dp_errorf(DP_ERR_ARG, "dp_bm25_build: %d documents, texts %p", ndocs, (const void *)texts);
    if (!(k1 >= 0.0f) || !isfinite(k1) || !(b >= 0.0f && b <= 1.0f))
        return dp_errorf(DP_ERR_ARG, "dp_bm25_build: k1 = %g (need >= 0), b = %g (need 0..1)", (double)k1,
                         (double)b);

    dp_bm25 *ix = calloc(1, sizeof *ix);
    size_t wcap = 1024;
    uint64_t *w = malloc(wcap * sizeof *w);
    /* (term, tf) per distinct word of each document, documents in order */
    int32_t *tt = NULL, *ttf = NULL;
    int64_t *doff = NULL; /* [ndocs + 1] into tt/ttf */
    int64_t np = 0;
    size_t tt_cap = 0, ttf_cap = 0;
    if (NULL == ix || NULL == w)
        goto done;
    ix->ndocs = ndocs;
    ix->k1 = k1;
    ix->b = b;
    ix->dl = calloc((size_t)ndocs + 1, sizeof *ix->dl);
    ix->acc = calloc((size_t)ndocs + 1, sizeof *ix->acc);
    ix->touched = malloc(((size_t)ndocs + 1) * sizeof *ix->touched);
    ix->tmp = malloc(((size_t)ndocs + 1) * sizeof *ix->tmp);
    doff = malloc(((size_t)ndocs + 1) * sizeof *doff);
    if (!ix->dl || !ix->acc || !ix->touched || !ix->tmp || !doff)
        goto done;

    /* Pass 1: words of every document; the map is sized from the total. */
    int64_t total = 0;
    for (int d = 0; d < ndocs; d++) {
        long n = words_of(texts[d], &w, &wcap);
        if (n < 0)
            goto done;
        ix->dl[d] = (int32_t)n;
        total += n;
    }
    uint64_t slots = 16;
    while (slots < 2 * (uint64_t)total + 16)
        slots *= 2;
    ix->mask = slots - 1;
    ix->key = malloc(slots * sizeof *ix->key);
    ix->val = calloc(slots, sizeof *ix->val);
    if (!ix->key || !ix->val)
        goto done;

    /* Pass 2: distinct words of each document with their counts. */
    doff[0] = 0;
    for (int d = 0; d < ndocs; d++) {
        long n = words_of(texts[d], &w, &wcap);
        if (n < 0)
            goto done;
        qsort(w, (size_t)n, sizeof *w, cmp_u64);
        if (!dsi_reserve(&tt, &tt_cap, (size_t)(np + n), sizeof *tt) ||
            !dsi_reserve(&ttf, &ttf_cap, (size_t)(np + n), sizeof *ttf))
            goto done;
        for (long i = 0; i < n;) {
            long j = i;
            while (j < n && w[j] == w[i])
                j++;
            tt[np] = intern(ix, w[i]);
            ttf[np] = (int32_t)(j - i);
            np++;
            i = j;
        }
        doff[d + 1] = np;
    }
    ix->avgdl = ndocs > 0 ? (float)((double)total / ndocs) : 0.0f;

    /* CSR by term (counting sort keeps documents ascending within a term). */
    const int T = ix->nterms;
    ix->off = calloc((size_t)T + 1, sizeof *ix->off);
    ix->pdoc = malloc(((size_t)np + 1) * sizeof *ix->pdoc);
    ix->pw = malloc(((size_t)np + 1) * sizeof *ix->pw);
    ix->ub = calloc((size_t)T + 1, sizeof *ix->ub);
    if (!ix->off || !ix->pdoc || !ix->pw || !ix->ub)
        goto done;
    for (int64_t i = 0; i < np; i++)
        ix->off[tt[i] + 1]++;
    for (int t = 0; t < T; t++)
        ix->off[t + 1] += ix->off[t];
    int64_t *fill = malloc(((size_t)T + 1) * sizeof *fill);
    if (NULL == fill)
        goto done;
    memcpy(fill, ix->off, ((size_t)T + 1) * sizeof *fill);
    for (int d = 0; d < ndocs; d++) {
        for (int64_t i = doff[d]; i < doff[d + 1]; i++) {
            const int t = tt[i];
            int64_t at = fill[t]++;
            ix->pdoc[at] = d;
            const float wt = dsi_bm25_weight(ndocs, ix->off[t + 1] - ix->off[t], ttf[i], ix->dl[d], ix->avgdl, k1, b);
            ix->pw[at] = wt;
            if (wt > ix->ub[t])
                ix->ub[t] = wt;
        }
    }
    free(fill);
    *out = ix;
done:
    free(tt);
    free(ttf);
    free(doff);
    free(w);
    if (*out)
        return DP_OK;
    dp_bm25_free(ix);
    return dp_errorf(DP_ERR_NOMEM, "dp_bm25_build: out of memory indexing %d documents", ndocs);
}

/* The posting weight; the lexical head (lexicon.c) starts from the same. The
 * types are the index's (dl an int, avgdl a float: b dl / avgdl is a float
 * product), so the weights stay the bits they were. */
float dsi_bm25_weight(int ndocs, int64_t df, int32_t tf, int32_t dl, float avgdl, float k1, float b)
{
    const double N = ndocs, dfd = (double)df, tfd = tf;
    const double norm = k1 * (1.0 - b + (avgdl > 0 ? b * dl / avgdl : 0.0));
    const double idf = log(1.0 + (N - dfd + 0.5) / (dfd + 0.5));
    float wt = (float)(idf * tfd * (k1 + 1.0) / (tfd + norm));
    if (!(wt >= FLT_MIN)) /* > 0 always (idf > 0), so a first touch shows as acc == 0 */
        wt = FLT_MIN;
    return wt;
}

/* Heap order: a ranks below b (lower score, or equal score and larger doc). */
static int below(float sa, int32_t da, float sb, int32_t db)
{
    return sa < sb || (sa == sb && da > db);
}

static void swap_hits(int32_t *docs, float *sc, int i, int j)
{
    float ts = sc[i];
    sc[i] = sc[j];
    sc[j] = ts;
    int32_t td = docs[i];
    docs[i] = docs[j];
    docs[j] = td;
}

static void sift_down(int32_t *docs, float *sc, int n, int i)
{
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && below(sc[l], docs[l], sc[m], docs[m]))
            m = l;
        if (r < n && below(sc[r], docs[r], sc[m], docs[m]))
            m = r;
        if (m == i)
            return;
        swap_hits(docs, sc, i, m);
        i = m;
    }
}

/* The best k of the touched documents (score acc[d]) as a heap in docs/sc
 * whose root is the worst of them; returns how many (< k: fewer touched). */
static int top_k(const float *acc, const int32_t *touched, int nt, int k, int32_t *docs, float *sc)
{
    int n = 0;
    for (int j = 0; j < nt; j++) {
        const int32_t d = touched[j];
        const float s = acc[d];
        if (!(s > 0.0f)) /* (cannot happen: every weight is > 0) */
            continue;
        if (n < k) {
            docs[n] = d;
            sc[n] = s;
            n++;
            if (n == k)
                for (int m = k / 2 - 1; m >= 0; m--)
                    sift_down(docs, sc, k, m);
        } else if (below(sc[0], docs[0], s, d)) {
            docs[0] = d;
            sc[0] = s;
            sift_down(docs, sc, k, 0);
        }
    }
    if (n < k)
        for (int m = n / 2 - 1; m >= 0; m--)
            sift_down(docs, sc, n, m);
    return n;
}

/* A query term: its term id, how often the query has it, and c * (the largest
 * weight in its postings), an upper bound of what it adds to any score. */
typedef struct qterm {
    int32_t t, c;
    float ub;
} qterm;

/* a before b: by term id (merge repeats) or by larger bound, then term id. */
static int qterm_before(const qterm *a, const qterm *b, int by_bound)
{
    if (by_bound && a->ub != b->ub)
        return a->ub > b->ub;
    return a->t < b->t;
}

/* Insertion sort: queries have a few words (at most QUERY_WORDS_MAX). Here and
 * below, not qsort: glibc's may malloc, and this runs per query. */
static void sort_qterms(qterm *a, int n, int by_bound)
{
    for (int i = 1; i < n; i++) {
        qterm v = a[i];
        int j = i;
        for (; j > 0 && qterm_before(&v, &a[j - 1], by_bound); j--)
            a[j] = a[j - 1];
        a[j] = v;
    }
}

/* The k-th largest of acc[touched[0..nt)) (nt >= k, k <= PRUNE_KMAX). */
static float kth_best(const float *acc, const int32_t *touched, int nt, int k)
{
    int32_t d[PRUNE_KMAX];
    float h[PRUNE_KMAX];
    top_k(acc, touched, nt, k, d, h);
    return h[0];
}

/* First position p in [lo, hi) with a[p] >= d (a ascending), galloping from lo. */
static int64_t gallop(const int32_t *a, int64_t lo, int64_t hi, int32_t d)
{
    int64_t step = 1, prev = lo;
    while (lo < hi && a[lo] < d) {
        prev = lo + 1;
        lo += step;
        step *= 2;
    }
    if (lo > hi)
        lo = hi;
    while (prev < lo) { /* a[prev - 1] < d, a[lo] >= d or lo == hi */
        int64_t mid = prev + (lo - prev) / 2;
        if (a[mid] < d)
            prev = mid + 1;
        else
            lo = mid;
    }
    return lo;
}

int dp_bm25_search(const dp_bm25 *ix, const char *query, int k, int32_t *docs, float *scores)
{
    if (NULL == ix || NULL == query || k <= 0)
        return 0;
    uint64_t q[QUERY_WORDS_MAX];
    qterm qt[QUERY_WORDS_MAX];
    const int nw = dp_dsi_words(query, q, QUERY_WORDS_MAX);

    /* Query terms with their multiplicity, largest bound first. */
    int nq = 0;
    for (int i = 0; i < nw; i++) {
        const int32_t t = ix->val[slot_of(ix, q[i])] - 1; /* -1: not in the corpus */
        if (t >= 0)
            qt[nq++] = (qterm){.t = t, .c = 1};
    }
    sort_qterms(qt, nq, 0);
    int u = 0;
    for (int i = 0; i < nq; i++) {
        if (u > 0 && qt[u - 1].t == qt[i].t)
            qt[u - 1].c++;
        else
            qt[u++] = qt[i];
    }
    nq = u;
    for (int i = 0; i < nq; i++)
        qt[i].ub = (float)qt[i].c * ix->ub[qt[i].t];
    sort_qterms(qt, nq, 1);
    double rest[QUERY_WORDS_MAX + 1]; /* rest[i]: bound of what terms i.. can add */
    rest[nq] = 0.0;
    for (int i = nq - 1; i >= 0; i--)
        rest[i] = rest[i + 1] + qt[i].ub;

    /* Every term, in that order, over all its postings -- until no document that
     * is still untouched can reach the k-th best score (MaxScore's test). */
    float *acc = ix->acc;
    int32_t *touched = ix->touched;
    int nt = 0, i = 0;
    float theta = 0.0f;
    for (; i < nq; i++) {
        if (i > 0 && k <= PRUNE_KMAX && nt >= k) {
            theta = kth_best(acc, touched, nt, k);
            if (rest[i] * PRUNE_SLACK < (double)theta)
                break;
        }
        const float c = (float)qt[i].c;
        const int32_t t = qt[i].t;
        for (int64_t p = ix->off[t]; p < ix->off[t + 1]; p++) {
            const int32_t d = ix->pdoc[p];
            if (0.0f == acc[d]) /* weights are > 0: first touch */
                touched[nt++] = d;
            acc[d] += c * ix->pw[p];
        }
    }
    if (i < nq) {
        /* Terms i..: only the documents already touched (acc > 0) that can
         * still reach theta. Each term either scans its postings, adding where
         * acc > 0 (branch-free), or, when the candidates are
         * few against its list, gallops to each of them in doc order; after each
         * term theta rises and the candidates are pruned again. */
        int sorted = 0;
        for (; i < nq; i++) {
            int nc = 0;
            for (int j = 0; j < nt; j++) {
                const int32_t d = touched[j];
                if ((double)acc[d] + rest[i] * PRUNE_SLACK >= (double)theta)
                    touched[nc++] = d;
                else
                    acc[d] = 0.0f;
            }
            nt = nc; /* pruning keeps the order */
            const float c = (float)qt[i].c;
            const int32_t t = qt[i].t;
            int64_t p = ix->off[t];
            const int64_t end = ix->off[t + 1];
            if ((int64_t)nt * GALLOP_RATIO < end - p) {
                if (!sorted)
                    dp_sort_ids(touched, ix->tmp, (size_t)nt, (size_t)ix->ndocs);
                sorted = 1;
                for (int j = 0; j < nt && p < end; j++) {
                    p = gallop(ix->pdoc, p, end, touched[j]);
                    if (p < end && ix->pdoc[p] == touched[j])
                        acc[touched[j]] += c * ix->pw[p];
                }
            } else {
                for (; p < end; p++) {
                    float *a = &acc[ix->pdoc[p]];
                    *a += *a > 0.0f ? c * ix->pw[p] : 0.0f;
                }
            }
            if (nt >= k && i + 1 < nq)
                theta = kth_best(acc, touched, nt, k);
        }
    }

    /* The best k, sorted best first (heap sort: the worst goes to the end); acc back to zero. */
    const int n = top_k(acc, touched, nt, k, docs, scores);
    for (int j = 0; j < nt; j++)
        acc[touched[j]] = 0.0f;
    for (int m = n - 1; m > 0; m--) {
        swap_hits(docs, scores, 0, m);
        sift_down(docs, scores, m, 0);
    }
    return n;
}

void dp_bm25_free(dp_bm25 *ix)
{
    if (NULL == ix)
        return;
    free(ix->key);
    free(ix->val);
    free(ix->off);
    free(ix->pdoc);
    free(ix->pw);
    free(ix->ub);
    free(ix->dl);
    free(ix->acc);
    free(ix->touched);
    free(ix->tmp);
    free(ix);
}
