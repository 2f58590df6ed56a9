/* Ranking for DSI (src/dsi/rank.c, src/dsi/bm25.c): De-DSI aggregation of the
 * members' beams (confidence and vote) on hand-made beams, retrieval metrics
 * (Hits@1/5/10, MRR@10, duplicates ignored), and BM25 on a tiny corpus whose
 * scores are written out by hand below, then against a brute-force scorer on a
 * random corpus. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include "timeout.h"

#include "dptrain/dsi.h"

/* ============================================================ aggregation */

static double sm(const double *s, int n, int i) /* softmax_i of s[0..n) */
{
    double z = 0.0;
    for (int j = 0; j < n; j++)
        z += exp(s[j]);
    return exp(s[i]) / z;
}

Test(dsi_aggregate, confidence_hand_made, .timeout = DP_TIMEOUT(10))
{
    /* member 0 returns 5, 7, 9; member 1 returns 7, 5 and an empty slot */
    const int32_t d0[] = {5, 7, 9}, d1[] = {7, 5, -1};
    const float s0[] = {-0.1f, -1.0f, -2.0f}, s1[] = {-0.5f, -0.7f, 123.0f};
    const int32_t *docs[] = {d0, d1};
    const float *sc[] = {s0, s1};
    const int nb[] = {3, 3};
    const double a[] = {-0.1, -1.0, -2.0}, b[] = {-0.5, -0.7}; /* the slot's 123 is ignored */
    const double c5 = sm(a, 3, 0) + sm(b, 2, 1); /* 0.5466 + 0.4502 */
    const double c7 = sm(a, 3, 1) + sm(b, 2, 0); /* 0.2222 + 0.5498 */
    const double c9 = sm(a, 3, 2);               /* 0.0817 */
    cr_assert(c5 > c7 && c7 > c9);
    int32_t out[8];
    float os[8];
    int n = dp_dsi_aggregate(DP_DSI_AGG_CONFIDENCE, 2, nb, docs, sc, 8, out, os);
    cr_assert_eq(n, 3);
    cr_expect_eq(out[0], 5);
    cr_expect_eq(out[1], 7);
    cr_expect_eq(out[2], 9);
    cr_expect_float_eq(os[0], c5, 1e-6);
    cr_expect_float_eq(os[1], c7, 1e-6);
    cr_expect_float_eq(os[2], c9, 1e-6);
    cr_expect_float_eq(os[0] + os[1] + os[2], 2.0, 1e-6); /* one unit per member */
    /* k below the distinct count, NULL scores */
    n = dp_dsi_aggregate(DP_DSI_AGG_CONFIDENCE, 2, nb, docs, sc, 2, out, NULL);
    cr_assert_eq(n, 2);
    cr_expect(5 == out[0] && 7 == out[1]);
    cr_expect_eq(dp_dsi_aggregate(DP_DSI_AGG_CONFIDENCE, 2, nb, docs, sc, 0, out, os), 0);
}

Test(dsi_aggregate, vote_counts_members_once, .timeout = DP_TIMEOUT(10))
{
    /* m0: 1, 2, 2 (2 twice: one vote, both beams add to its confidence)
     * m1: 2, 3     m2: 3, 4     -> votes: 2 -> 2, 3 -> 2, 1 -> 1, 4 -> 1;
     * best beam positions: 2 -> 0 (m1), 3 -> 0 (m2), 1 -> 0, 4 -> 1 */
    const int32_t d0[] = {1, 2, 2}, d1[] = {2, 3}, d2[] = {3, 4};
    const float s0[] = {0.0f, -1.0f, -1.0f}, s1[] = {-3.0f, 0.0f}, s2[] = {0.0f, -0.2f};
    const int32_t *docs[] = {d0, d1, d2};
    const float *sc[] = {s0, s1, s2};
    const int nb[] = {3, 2, 2};
    const double a[] = {0, -1, -1}, b[] = {-3, 0}, c[] = {0, -0.2};
    const double c1 = sm(a, 3, 0), c2 = sm(a, 3, 1) + sm(a, 3, 2) + sm(b, 2, 0);
    const double c3 = sm(b, 2, 1) + sm(c, 2, 0), c4 = sm(c, 2, 1);
    cr_assert(c3 > c2 && c1 > c4, "the test's premise: 3 beats 2 on confidence, 1 beats 4");
    int32_t out[8];
    float os[8];
    int n = dp_dsi_aggregate(DP_DSI_AGG_VOTE, 3, nb, docs, sc, 8, out, os);
    cr_assert_eq(n, 4);
    /* 2 and 3 tie on votes and position: the smaller id first, although 3 has the higher confidence */
    cr_expect(2 == out[0] && 3 == out[1] && 1 == out[2] && 4 == out[3], "%d %d %d %d", out[0], out[1],
              out[2], out[3]);
    cr_expect(2.0f == os[0] && 2.0f == os[1] && 1.0f == os[2] && 1.0f == os[3]);
    /* confidence on the same beams */
    n = dp_dsi_aggregate(DP_DSI_AGG_CONFIDENCE, 3, nb, docs, sc, 8, out, os);
    cr_assert_eq(n, 4);
    double want[] = {c1, c2, c3, c4};
    for (int i = 0; i < 4; i++)
        cr_expect_float_eq(os[i], want[out[i] - 1], 1e-6, "doc %d", out[i]);
    for (int i = 1; i < 4; i++)
        cr_expect(os[i - 1] >= os[i]);
}

Test(dsi_aggregate, ties_by_smaller_doc, .timeout = DP_TIMEOUT(10))
{
    /* equal scores inside each member: every document 0.5 (confidence ties -> ids 10 20 30 40);
     * one vote each, positions 30 -> 0, 20 -> 0, 10 -> 1, 40 -> 1 (vote: 20 30 10 40) */
    const int32_t d0[] = {30, 10}, d1[] = {20, 40};
    const float s0[] = {-1.0f, -1.0f}, s1[] = {-4.0f, -4.0f};
    const int32_t *docs[] = {d0, d1};
    const float *sc[] = {s0, s1};
    const int nb[] = {2, 2};
    int32_t out[4];
    float os[4];
    for (int how = 0; how < 2; how++) {
        int n = dp_dsi_aggregate((dp_dsi_agg)how, 2, nb, docs, sc, 4, out, os);
        cr_assert_eq(n, 4);
        const int32_t *want = how == DP_DSI_AGG_VOTE ? (const int32_t[]){20, 30, 10, 40} : (const int32_t[]){10, 20, 30, 40};
        cr_expect(want[0] == out[0] && want[1] == out[1] && want[2] == out[2] && want[3] == out[3],
                  "how %d: %d %d %d %d", how, out[0], out[1], out[2], out[3]);
    }
}

Test(dsi_aggregate, empty_members_and_slots, .timeout = DP_TIMEOUT(10))
{
    const int32_t d0[] = {-1, -1}, d1[] = {8}, d2[] = {0};
    const float s0[] = {0, 0}, s1[] = {-50.0f}, s2[] = {0};
    const int32_t *docs[] = {d0, d1, d2};
    const float *sc[] = {s0, s1, s2};
    const int nb[] = {2, 1, 0}; /* member 2 returned nothing */
    int32_t out[4];
    float os[4];
    int n = dp_dsi_aggregate(DP_DSI_AGG_CONFIDENCE, 3, nb, docs, sc, 4, out, os);
    cr_assert_eq(n, 1);
    cr_expect_eq(out[0], 8);
    cr_expect_float_eq(os[0], 1.0, 1e-7); /* a lone beam has p = 1 whatever its score */
    const int none[] = {0, 0, 0};
    cr_expect_eq(dp_dsi_aggregate(DP_DSI_AGG_VOTE, 3, none, docs, sc, 4, out, os), 0);
    /* a member whose scores are all -inf is uniform over its beams */
    const int32_t d3[] = {1, 2};
    const float s3[] = {-INFINITY, -INFINITY};
    const int32_t *docs3[] = {d3};
    const float *sc3[] = {s3};
    const int nb3[] = {2};
    n = dp_dsi_aggregate(DP_DSI_AGG_CONFIDENCE, 1, nb3, docs3, sc3, 4, out, os);
    cr_assert_eq(n, 2);
    cr_expect(1 == out[0] && 2 == out[1] && 0.5f == os[0] && 0.5f == os[1]);
}

/* Softmax is shift-invariant per member; the confidences sum to the members that
 * returned something; many members x beams take the heap path. */
Test(dsi_aggregate, invariants_random, .timeout = DP_TIMEOUT(30))
{
    enum { NM = 80, NB = 64 }; /* 5120 beams > the 4096 on the stack */
    static int32_t dd[NM][NB];
    static float ss[NM][NB], sh[NM][NB];
    const int32_t *docs[NM];
    const float *sc[NM], *scs[NM];
    int nb[NM];
    uint64_t x = 12345;
    for (int m = 0; m < NM; m++) {
        nb[m] = m % 7 == 3 ? 0 : NB - m % 5;
        float shift = (float)(m % 9) - 4.0f;
        for (int i = 0; i < NB; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            dd[m][i] = (x >> 33) % 11 == 0 ? -1 : (int32_t)((x >> 40) % 300);
            ss[m][i] = -(float)((x >> 20) % 1000) / 100.0f;
            sh[m][i] = ss[m][i] + shift;
        }
        docs[m] = dd[m];
        sc[m] = ss[m];
        scs[m] = sh[m];
    }
    static int32_t out[400], out2[400];
    static float os[400], os2[400];
    int n = dp_dsi_aggregate(DP_DSI_AGG_CONFIDENCE, NM, nb, docs, sc, 400, out, os);
    int n2 = dp_dsi_aggregate(DP_DSI_AGG_CONFIDENCE, NM, nb, docs, scs, 400, out2, os2);
    cr_assert(n > 100 && n <= 300);
    cr_assert_eq(n, n2);
    int members = 0;
    for (int m = 0; m < NM; m++)
        members += nb[m] > 0;
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        sum += os[i];
        cr_expect_float_eq(os[i], os2[i], 1e-5, "shift changed position %d", i);
        if (i > 0)
            cr_expect(os[i - 1] > os[i] || (os[i - 1] == os[i] && out[i - 1] < out[i]), "order at %d", i);
        for (int j = 0; j < i; j++)
            cr_assert_neq(out[i], out[j], "doc %d twice", out[i]);
    }
    cr_expect_float_eq(sum, (double)members, 1e-3);
    n = dp_dsi_aggregate(DP_DSI_AGG_VOTE, NM, nb, docs, sc, 400, out, os);
    for (int i = 1; i < n; i++)
        cr_expect(os[i - 1] >= os[i]);
    cr_expect(os[0] <= (float)members);
}

/* ============================================================ metrics */

Test(dsi_metrics, positions, .timeout = DP_TIMEOUT(10))
{
    dp_dsi_metrics m = {0};
    const int32_t r[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    dp_dsi_metrics_add(&m, r, 12, 1); /* 1st */
    cr_expect(1 == m.queries && 1 == m.hits1 && 1 == m.hits5 && 1 == m.hits10 && 1.0 == m.mrr10);
    dp_dsi_metrics_add(&m, r, 12, 3); /* 3rd */
    cr_expect(2 == m.queries && 1 == m.hits1 && 2 == m.hits5 && 2 == m.hits10);
    cr_expect_float_eq(m.mrr10, 1.0 + 1.0 / 3.0, 1e-12);
    dp_dsi_metrics_add(&m, r, 12, 10); /* 10th: counts for hits10, 1/10 */
    cr_expect(2 == m.hits5 && 3 == m.hits10);
    cr_expect_float_eq(m.mrr10, 1.0 + 1.0 / 3.0 + 0.1, 1e-12);
    dp_dsi_metrics_add(&m, r, 12, 11); /* 11th: nothing */
    dp_dsi_metrics_add(&m, r, 12, 99); /* absent */
    dp_dsi_metrics_add(&m, NULL, 0, 1); /* empty ranking */
    cr_expect(6 == m.queries && 1 == m.hits1 && 2 == m.hits5 && 3 == m.hits10);
    cr_expect_float_eq(m.mrr10, 1.0 + 1.0 / 3.0 + 0.1, 1e-12);
}

Test(dsi_metrics, duplicates_and_empty_slots_ignored, .timeout = DP_TIMEOUT(10))
{
    dp_dsi_metrics m = {0};
    const int32_t r[] = {4, 4, -1, 4, 9}; /* distinct: 4, 9 -> gold 9 is 2nd */
    dp_dsi_metrics_add(&m, r, 5, 9);
    cr_expect(0 == m.hits1 && 1 == m.hits5 && 1 == m.hits10);
    cr_expect_float_eq(m.mrr10, 0.5, 1e-12);
    /* 9 distinct documents, each repeated, then gold: 10th distinct */
    int32_t r2[40];
    int n = 0;
    for (int d = 0; d < 9; d++) {
        r2[n++] = d;
        r2[n++] = d;
        r2[n++] = 0;
    }
    r2[n++] = 77;
    dp_dsi_metrics_add(&m, r2, n, 77);
    cr_expect(2 == m.hits10 && 1 == m.hits5);
    cr_expect_float_eq(m.mrr10, 0.6, 1e-12);
}

/* ============================================================ BM25 */

/* N = 4 documents, 10 words, avgdl = 2.5:
 *   d0 "Apple banana, apple!"         dl 3: apple 2, banana 1
 *   d1 "banana cherry"                dl 2: banana 1, cherry 1
 *   d2 "cherry cherry cherry date"    dl 4: cherry 3, date 1
 *   d3 "elderberry"                   dl 1
 * df: apple 1, banana 2, cherry 2, date 1, elderberry 1
 *   idf(df 1) = ln(1 + (4 - 1 + 0.5) / (1 + 0.5)) = ln(1 + 3.5/1.5) = 1.2039728
 *   idf(df 2) = ln(1 + (4 - 2 + 0.5) / (2 + 0.5)) = ln 2            = 0.6931472 */
static const char *const k_docs[] = {"Apple banana, apple!", "banana cherry", "cherry cherry cherry date",
                                     "elderberry"};

/* idf * tf (k1 + 1) / (tf + k1 (1 - b + b dl / 2.5)) */
static double term(double idf, double tf, double dl, double k1, double b)
{
    return idf * tf * (k1 + 1.0) / (tf + k1 * (1.0 - b + b * dl / 2.5));
}

static void expect_ranking(const dp_bm25 *ix, const char *q, int k, int n_want, const int32_t *want_docs,
                           const double *want_scores)
{
    int32_t docs[16];
    float sc[16];
    int n = dp_bm25_search(ix, q, k, docs, sc);
    cr_assert_eq(n, n_want, "query '%s': %d results, want %d", q, n, n_want);
    for (int i = 0; i < n; i++) {
        cr_expect_eq(docs[i], want_docs[i], "query '%s' position %d: doc %d, want %d", q, i, docs[i],
                     want_docs[i]);
        cr_expect_float_eq(sc[i], want_scores[i], 1e-5 * want_scores[i], "query '%s' doc %d: %.7f, want %.7f", q,
                           docs[i], (double)sc[i], want_scores[i]);
    }
}

static void hand_corpus(double k1, double b)
{
    dp_bm25 *ix = NULL;
    cr_assert_eq(dp_bm25_build(4, k_docs, (float)k1, (float)b, &ix), DP_OK, "%s", dp_errmsg());
    const double i1 = log(1.0 + 3.5 / 1.5), i2 = log(2.0);

    /* "banana cherry": d1 has both; d2 cherry x3; d0 banana x1 */
    const double s1 = term(i2, 1, 2, k1, b) + term(i2, 1, 2, k1, b);
    const double s2 = term(i2, 3, 4, k1, b);
    const double s0 = term(i2, 1, 3, k1, b);
    cr_assert(s1 > s2 && s2 > s0, "premise of the ordering");
    expect_ranking(ix, "banana cherry", 10, 3, (int32_t[]){1, 2, 0}, (double[]){s1, s2, s0});
    expect_ranking(ix, "BANANA  Cherry?", 2, 2, (int32_t[]){1, 2}, (double[]){s1, s2}); /* k < matches */

    /* "apple date": d0 apple x2 (idf 1.204), d2 date x1 */
    const double a0 = term(i1, 2, 3, k1, b), a2 = term(i1, 1, 4, k1, b);
    expect_ranking(ix, "apple date", 10, 2, (int32_t[]){0, 2}, (double[]){a0, a2});
    /* a repeated query word adds once per occurrence */
    expect_ranking(ix, "apple apple", 10, 1, (int32_t[]){0}, (double[]){2 * a0});
    expect_ranking(ix, "elderberry", 1, 1, (int32_t[]){3}, (double[]){term(i1, 1, 1, k1, b)});

    /* empty, punctuation only, unknown words: nothing */
    int32_t docs[4];
    float sc[4];
    cr_expect_eq(dp_bm25_search(ix, "", 4, docs, sc), 0);
    cr_expect_eq(dp_bm25_search(ix, " ,;! ", 4, docs, sc), 0);
    cr_expect_eq(dp_bm25_search(ix, "fig grape", 4, docs, sc), 0);
    cr_expect_eq(dp_bm25_search(ix, "banana", 0, docs, sc), 0);
    dp_bm25_free(ix);
}

Test(bm25, hand_checked_k1_09_b_04, .timeout = DP_TIMEOUT(10)) { hand_corpus(0.9, 0.4); }
Test(bm25, hand_checked_k1_15_b_075, .timeout = DP_TIMEOUT(10)) { hand_corpus(1.5, 0.75); }

Test(bm25, hand_checked_numbers, .timeout = DP_TIMEOUT(10))
{
    /* the same scores with every number written out, k1 = 0.9, b = 0.4:
     * d1 for "banana cherry" = 2 * 0.6931472 * 1.9 / (1 + 0.9 * (0.6 + 0.4 * 2 / 2.5)) = 1.4408968 */
    dp_bm25 *ix;
    cr_assert_eq(dp_bm25_build(4, k_docs, 0.9f, 0.4f, &ix), DP_OK);
    int32_t d[4];
    float s[4];
    cr_assert_eq(dp_bm25_search(ix, "banana cherry", 4, d, s), 3);
    cr_expect_eq(d[0], 1);
    cr_expect_float_eq(s[0], 2 * 0.6931472 * 1.9 / (1 + 0.9 * (0.6 + 0.4 * 2 / 2.5)), 1e-5);
    cr_expect_float_eq(s[0], 1.4408968, 1e-5);
    /* d0 for "apple": 1.2039728 * 2 * 1.9 / (2 + 0.9 * (0.6 + 0.4 * 3 / 2.5)) = 1.5394000 */
    cr_assert_eq(dp_bm25_search(ix, "apple", 4, d, s), 1);
    cr_expect_float_eq(s[0], 1.5394000, 1e-5);
    dp_bm25_free(ix);
}

Test(bm25, ties_by_smaller_doc_and_empty_corpus, .timeout = DP_TIMEOUT(10))
{
    const char *const t[] = {"x y", "z", "y x", "", NULL, "x y"};
    dp_bm25 *ix;
    cr_assert_eq(dp_bm25_build(6, t, 1.2f, 0.75f, &ix), DP_OK);
    int32_t d[6];
    float s[6];
    cr_assert_eq(dp_bm25_search(ix, "x", 6, d, s), 3);
    cr_expect(0 == d[0] && 2 == d[1] && 5 == d[2]);
    cr_expect(s[0] == s[1] && s[1] == s[2]);
    cr_assert_eq(dp_bm25_search(ix, "x", 1, d, s), 1);
    cr_expect_eq(d[0], 0);
    dp_bm25_free(ix);

    cr_assert_eq(dp_bm25_build(0, NULL, 0.9f, 0.4f, &ix), DP_OK);
    cr_expect_eq(dp_bm25_search(ix, "x", 3, d, s), 0);
    dp_bm25_free(ix);
    dp_bm25_free(NULL);
    cr_expect_eq(dp_bm25_build(2, t, -1.0f, 0.4f, &ix), DP_ERR_ARG);
    cr_expect_eq(dp_bm25_build(2, t, 0.9f, 1.5f, &ix), DP_ERR_ARG);
}

/* Random corpus against a brute-force scorer written from the formula. */
Test(bm25, random_vs_brute_force, .timeout = DP_TIMEOUT(60))
{
    enum { ND = 300, NQ = 200, V = 60, K = 10 };
    static char text[ND][400];
    const char *texts[ND];
    uint64_t x = 99;
#define NEXT() (x = x * 6364136223846793005ull + 1442695040888963407ull, x >> 33)
    for (int d = 0; d < ND; d++) {
        int nw = (int)(NEXT() % 30), len = 0;
        for (int i = 0; i < nw; i++)
            len += snprintf(text[d] + len, sizeof text[d] - (size_t)len, "w%d ", (int)(NEXT() % V));
        texts[d] = text[d];
    }
    /* brute force: word ids straight from the text */
    static int tf[ND][V], dl[ND], df[V];
    double total = 0;
    for (int d = 0; d < ND; d++) {
        const char *p = text[d];
        int w, n;
        while (1 == sscanf(p, "w%d %n", &w, &n)) {
            tf[d][w]++;
            dl[d]++;
            p += n;
        }
        total += dl[d];
        for (int v = 0; v < V; v++)
            df[v] += tf[d][v] > 0;
    }
    const double avgdl = total / ND, k1 = 0.9, b = 0.4;
    dp_bm25 *ix;
    cr_assert_eq(dp_bm25_build(ND, texts, (float)k1, (float)b, &ix), DP_OK);
    for (int q = 0; q < NQ; q++) {
        int qw[5], nq = 1 + (int)(NEXT() % 5);
        char qs[64];
        int len = 0;
        for (int i = 0; i < nq; i++) {
            qw[i] = (int)(NEXT() % (V + 5)); /* some words in no document */
            len += snprintf(qs + len, sizeof qs - (size_t)len, "W%d, ", qw[i]);
        }
        double want[ND];
        int nz = 0;
        for (int d = 0; d < ND; d++) {
            want[d] = 0;
            for (int i = 0; i < nq; i++) {
                int v = qw[i];
                if (v >= V || 0 == tf[d][v])
                    continue;
                double idf = log(1.0 + (ND - df[v] + 0.5) / (df[v] + 0.5));
                want[d] += idf * tf[d][v] * (k1 + 1) / (tf[d][v] + k1 * (1 - b + b * dl[d] / avgdl));
            }
            nz += want[d] > 0;
        }
        int32_t got[K];
        float gs[K];
        int n = dp_bm25_search(ix, qs, K, got, gs);
        cr_assert_eq(n, nz < K ? nz : K, "query '%s'", qs);
        for (int i = 0; i < n; i++) {
            cr_assert_float_eq(gs[i], want[got[i]], 1e-4, "query '%s' doc %d", qs, got[i]);
            /* nothing outside the list beats the last one listed (up to rounding) */
            if (i + 1 < n)
                cr_assert(gs[i] >= gs[i + 1]);
        }
        if (n == K)
            for (int d = 0; d < ND; d++) {
                int listed = 0;
                for (int i = 0; i < n; i++)
                    listed |= got[i] == d;
                if (!listed)
                    cr_assert(want[d] <= gs[K - 1] + 1e-4, "query '%s': doc %d (%.6f) missing", qs, d, want[d]);
            }
    }
    dp_bm25_free(ix);
#undef NEXT
}

/* Top-10 with MaxScore pruning equals the exhaustive search (k above the
 * pruning limit of 256, cut to 10) bit for bit, on a Zipf-like corpus where
 * frequent words (df near N) make pruning kick in. Also against brute force. */
Test(bm25, pruned_equals_exhaustive, .timeout = DP_TIMEOUT(60))
{
    enum { ND = 3000, NQ = 600, V = 2000, K = 10 };
    static char text[ND][200];
    static char qtext[NQ][100];
    const char *texts[ND];
    uint64_t x = 4242;
#define NEXT() (x = x * 6364136223846793005ull + 1442695040888963407ull, x >> 33)
    /* word v with probability ~ 1 / (v + 1): v = floor(V^u) - 1 for uniform u */
#define ZIPF() ((int)floor(pow((double)V, (double)(NEXT() % 1000000) / 1e6)) - 1)
    for (int d = 0; d < ND; d++) {
        int nw = 3 + (int)(NEXT() % 20), len = 0;
        for (int i = 0; i < nw; i++)
            len += snprintf(text[d] + len, sizeof text[d] - (size_t)len, "w%d ", ZIPF());
        texts[d] = text[d];
    }
    for (int q = 0; q < NQ; q++) {
        int nw = 1 + (int)(NEXT() % 8), len = 0;
        for (int i = 0; i < nw; i++)
            len += snprintf(qtext[q] + len, sizeof qtext[q] - (size_t)len, "w%d ", ZIPF());
    }
    dp_bm25 *ix;
    cr_assert_eq(dp_bm25_build(ND, texts, 1.5f, 0.75f, &ix), DP_OK);
    static int32_t d1[K], d2[300];
    static float s1[K], s2[300];
    long full = 0;
    for (int q = 0; q < NQ; q++) {
        int n1 = dp_bm25_search(ix, qtext[q], K, d1, s1);
        int n2 = dp_bm25_search(ix, qtext[q], 300, d2, s2);
        cr_assert_eq(n1, n2 < K ? n2 : K, "query '%s'", qtext[q]);
        full += n1 == K;
        for (int i = 0; i < n1; i++)
            cr_assert(d1[i] == d2[i] && s1[i] == s2[i], "query '%s' position %d: %d %.8g vs %d %.8g", qtext[q], i,
                      d1[i], (double)s1[i], d2[i], (double)s2[i]);
    }
    cr_expect(full > NQ / 2, "most queries fill the top 10 (%ld)", full);
    dp_bm25_free(ix);
#undef ZIPF
#undef NEXT
}

Test(dsi_aggregate, joint_softmax_over_all_members, .timeout = DP_TIMEOUT(10))
{
    /* scores: member 0 is sure (5, 4), member 1 is not (1, 0). Confidence gives each
     * member a mass of 1 (docs 1 and 3 tie at 0.731); joint normalises over all four. */
    const int32_t d0[] = {1, 2}, d1[] = {3, 4};
    const float s0[] = {5.0f, 4.0f}, s1[] = {1.0f, 0.0f};
    const int32_t *docs[] = {d0, d1};
    const float *sc[] = {s0, s1};
    const int nb[] = {2, 2};
    int32_t out[4];
    float os[4];
    int n = dp_dsi_aggregate(DP_DSI_AGG_CONFIDENCE, 2, nb, docs, sc, 4, out, os);
    cr_assert_eq(n, 4);
    cr_expect(1 == out[0] && 3 == out[1] && 2 == out[2] && 4 == out[3], "%d %d %d %d", out[0], out[1], out[2], out[3]);
    cr_expect_float_eq(os[0], os[1], 1e-7);
    n = dp_dsi_aggregate(DP_DSI_AGG_JOINT, 2, nb, docs, sc, 4, out, os);
    cr_assert_eq(n, 4);
    cr_expect(1 == out[0] && 2 == out[1] && 3 == out[2] && 4 == out[3], "%d %d %d %d", out[0], out[1], out[2], out[3]);
    const double z = exp(5.0) + exp(4.0) + exp(1.0) + 1.0;
    const double want[] = {exp(5.0) / z, exp(4.0) / z, exp(1.0) / z, 1.0 / z};
    for (int i = 0; i < 4; i++) cr_expect_float_eq(os[i], want[i], 1e-6, "rank %d", i);
}

/* An abstention takes its share of its member's softmax and never comes out:
 * member 0 (docs 1, 2, abstaining at log 0.6) passes on 0.3 and 0.1, member 1
 * (doc 3) all of its mass; without the abstention member 0's doc 1 would come
 * first (0.75 against 3's 1.0 ... and 2's 0.25). Vote ignores it. */
Test(dsi_aggregate, abstention_holds_mass_and_is_no_document, .timeout = DP_TIMEOUT(10))
{
    const int32_t d0[] = {1, 2, DP_DSI_ABSTAIN}, d1[] = {3, -1};
    const float s0[] = {logf(0.3f), logf(0.1f), logf(0.6f)}, s1[] = {0.0f, 5.0f};
    const int32_t *docs[] = {d0, d1};
    const float *sc[] = {s0, s1};
    const int nb[] = {3, 2};
    int32_t out[8];
    float os[8];
    int n = dp_dsi_aggregate(DP_DSI_AGG_CONFIDENCE, 2, nb, docs, sc, 8, out, os);
    cr_assert_eq(n, 3);
    cr_expect(3 == out[0] && 1 == out[1] && 2 == out[2], "%d %d %d", out[0], out[1], out[2]);
    cr_expect_float_eq(os[0], 1.0, 1e-6);
    cr_expect_float_eq(os[1], 0.3, 1e-6);
    cr_expect_float_eq(os[2], 0.1, 1e-6);
    /* joint: one softmax over all five entries' worth (0.3, 0.1, 0.6, 1 -> /2) */
    n = dp_dsi_aggregate(DP_DSI_AGG_JOINT, 2, nb, docs, sc, 8, out, os);
    cr_assert_eq(n, 3);
    cr_expect(3 == out[0] && 1 == out[1] && 2 == out[2]);
    cr_expect_float_eq(os[0], 0.5, 1e-6);
    cr_expect_float_eq(os[1], 0.15, 1e-6);
    n = dp_dsi_aggregate(DP_DSI_AGG_VOTE, 2, nb, docs, sc, 8, out, os);
    cr_assert_eq(n, 3);
    for (int i = 0; i < n; i++) cr_expect_neq(out[i], DP_DSI_ABSTAIN);
    /* a member that only abstains adds nothing */
    const int32_t d2[] = {DP_DSI_ABSTAIN};
    const float s2[] = {0.0f};
    const int32_t *docs2[] = {d2, d1};
    const float *sc2[] = {s2, s1};
    const int nb2[] = {1, 2};
    n = dp_dsi_aggregate(DP_DSI_AGG_CONFIDENCE, 2, nb2, docs2, sc2, 8, out, os);
    cr_assert_eq(n, 1);
    cr_expect_eq(out[0], 3);
}
