/* The lexical head's posting pattern and its BM25 init (issue 23).
 *
 * BM25 (bm25.c) keys its terms by 64-bit word hashes; the DSI model sees
 * token ids (a word's hash mod the tokenizer's buckets), so the lexicon keys
 * terms by the word's token id: a query's word tokens then find their postings
 * with no text at hand (training examples are token records). Term weights are
 * dsi_bm25_weight of (df, tf, dl, avgdl), BM25's own function, so with no two
 * words of the corpus on one token id the lexical scores at init are BM25's.
 *
 * Build: every (token, document) of every word, sorted by (token, document)
 * and run-length counted into tf; then the CSR by token. */
#include <stdlib.h>
#include <string.h>

#include "dsi/data_internal.h"

typedef struct tokdoc {
    uint32_t tok;
    int32_t doc;
} tokdoc;

static int cmp_tokdoc(const void *a, const void *b)
{
    const tokdoc *x = a, *y = b;
    if (x->tok != y->tok) return x->tok < y->tok ? -1 : 1;
    return (x->doc > y->doc) - (x->doc < y->doc);
}

void dp_dsi_lexicon_free(dp_dsi_lexicon *L)
{
    if (!L) return;
    free(L->tok);
    free(L->off);
    free(L->doc);
    free(L->w0);
    memset(L, 0, sizeof *L);
}

dp_status dp_dsi_lexicon_build(int ndocs, const char *const *texts, uint32_t token_space, float k1, float b,
                               dp_dsi_lexicon *out)
{
    memset(out, 0, sizeof *out);
    if (ndocs < 1 || !texts || token_space < 1)
        return dp_errorf(DP_ERR_ARG, "lexicon: %d documents, token space %u", ndocs, token_space);
    size_t cap = 1024, wcap = 1024;
    tokdoc *td = malloc(cap * sizeof *td);
    uint64_t *w = malloc(wcap * sizeof *w);
    int32_t *dl = calloc((size_t)ndocs, sizeof *dl);
    size_t n = 0;
    int64_t total = 0;
    dp_status rc = td && w && dl ? DP_OK : dp_errorf(DP_ERR_NOMEM, "lexicon: out of memory");
    for (int d = 0; d < ndocs && rc == DP_OK; d++) {
        if (!texts[d]) continue;
        int nw;
        /* every word, as dp_bm25_build reads them (no cap on a document's words) */
        while ((size_t)(nw = dp_dsi_words(texts[d], w, (int)wcap)) == wcap)
            if (wcap >= (1u << 30) || !dsi_reserve(&w, &wcap, wcap + 1, sizeof *w)) {
                rc = dp_errorf(DP_ERR_NOMEM, "lexicon: out of memory");
                break;
            }
        if (rc != DP_OK) break;
        if (!dsi_reserve(&td, &cap, n + (size_t)nw, sizeof *td)) {
            rc = dp_errorf(DP_ERR_NOMEM, "lexicon: out of memory");
            break;
        }
        for (int i = 0; i < nw; i++) td[n++] = (tokdoc){(uint32_t)(w[i] % token_space), d};
        dl[d] = nw;
        total += nw;
    }
    if (rc == DP_OK) {
        qsort(td, n, sizeof *td, cmp_tokdoc);
        size_t np = 0, nt = 0; /* postings, terms */
        for (size_t i = 0; i < n; i++) {
            np += i == 0 || td[i].tok != td[i - 1].tok || td[i].doc != td[i - 1].doc;
            nt += i == 0 || td[i].tok != td[i - 1].tok;
        }
        if (np > INT32_MAX || nt > INT32_MAX) rc = dp_errorf(DP_ERR_ARG, "lexicon: %zu postings (at most 2^31 - 1)", np);
        out->ndocs = ndocs;
        out->token_space = token_space;
        out->nterms = (int)nt;
        out->tok = malloc((nt + 1) * sizeof *out->tok);
        out->off = malloc((nt + 1) * sizeof *out->off);
        out->doc = malloc((np + 1) * sizeof *out->doc);
        out->w0 = malloc((np + 1) * sizeof *out->w0);
        int32_t *tf = malloc((np + 1) * sizeof *tf);
        if (rc == DP_OK && (!out->tok || !out->off || !out->doc || !out->w0 || !tf))
            rc = dp_errorf(DP_ERR_NOMEM, "lexicon: out of memory");
        if (rc == DP_OK) {
            int64_t p = -1;
            int t = -1;
            for (size_t i = 0; i < n; i++) {
                if (i == 0 || td[i].tok != td[i - 1].tok) {
                    out->tok[++t] = td[i].tok;
                    out->off[t] = p + 1;
                }
                if (i == 0 || td[i].tok != td[i - 1].tok || td[i].doc != td[i - 1].doc) {
                    out->doc[++p] = td[i].doc;
                    tf[p] = 0;
                }
                tf[p]++;
            }
            out->off[nt] = (int64_t)np;
            const float avgdl = (float)((double)total / ndocs); /* dp_bm25_build's */
            for (size_t t2 = 0; t2 < nt; t2++)
                for (int64_t q = out->off[t2]; q < out->off[t2 + 1]; q++)
                    out->w0[q] = dsi_bm25_weight(ndocs, out->off[t2 + 1] - out->off[t2], tf[q], dl[out->doc[q]],
                                                 avgdl, k1, b);
        }
        free(tf);
    }
    free(td);
    free(w);
    free(dl);
    if (rc != DP_OK) dp_dsi_lexicon_free(out);
    return rc;
}

dp_status dp_dsi_lexicon_from_dir(const char *dir, char *const *names, int ndocs, uint32_t token_space, float k1,
                                  float b, dp_dsi_lexicon *out)
{
    memset(out, 0, sizeof *out);
    char path[1100];
    FILE *f;
    snprintf(path, sizeof path, "%s/text.tsv", dir);
    if ((f = fopen(path, "r"))) fclose(f);
    else snprintf(path, sizeof path, "%s/train.tsv", dir);
    dp_dsi_pairs tr;
    dp_status rc = dp_dsi_pairs_load(path, 0, &tr);
    if (rc != DP_OK) return rc;
    dsi_intern ix = {0};
    char **texts = calloc((size_t)ndocs + 1, sizeof *texts);
    if (!texts) rc = dp_errorf(DP_ERR_NOMEM, "lexicon: out of memory");
    for (int d = 0; d < ndocs && rc == DP_OK; d++)
        if (dsi_intern_get(&ix, names[d], strlen(names[d]), 1, NULL) != d)
            rc = dp_errorf(DP_ERR_FORMAT, "%s: docid '%s' named twice (or out of memory)", dir, names[d]);
    for (long i = 0; i < tr.n && rc == DP_OK; i++) {
        const long d = dsi_intern_get(&ix, tr.docid[i], strlen(tr.docid[i]), 0, NULL);
        if (d < 0) continue; /* not one of this member's documents */
        /* joined by a space, as dsi-eval's BM25 joins a docid's lines */
        const size_t l = texts[d] ? strlen(texts[d]) + 1 : 0, a = strlen(tr.query[i]) + 1;
        char *s = realloc(texts[d], l + a);
        if (!s) {
            rc = dp_errorf(DP_ERR_NOMEM, "lexicon: out of memory");
            break;
        }
        if (l) s[l - 1] = ' ';
        memcpy(s + l, tr.query[i], a);
        texts[d] = s;
    }
    if (rc == DP_OK) rc = dp_dsi_lexicon_build(ndocs, (const char *const *)texts, token_space, k1, b, out);
    if (rc == DP_OK && out->nterms == 0) {
        dp_dsi_lexicon_free(out);
        rc = dp_errorf(DP_ERR_FORMAT, "%s: no word of the indexed text names a document of %s", path, dir);
    }
    if (texts)
        for (int d = 0; d < ndocs; d++) free(texts[d]);
    free(texts);
    dsi_intern_free(&ix);
    dp_dsi_pairs_free(&tr);
    return rc;
}

dp_status dp_dsi_lexicon_check(const dp_dsi_lexicon *L, const char *who)
{
    if (L->ndocs < 1) return dp_errorf(DP_ERR_FORMAT, "%s: lexicon field ndocs = %d", who, L->ndocs);
    if (L->nterms < 1 || (uint64_t)L->nterms > L->token_space)
        return dp_errorf(DP_ERR_FORMAT, "%s: lexicon field nterms = %d (1 .. token space %u)", who, L->nterms,
                         L->token_space);
    if (L->off[0] != 0) return dp_errorf(DP_ERR_FORMAT, "%s: lexicon field off[0] = %lld (0)", who, (long long)L->off[0]);
    for (int t = 0; t < L->nterms; t++) {
        if (L->tok[t] >= L->token_space || (t > 0 && L->tok[t] <= L->tok[t - 1]))
            return dp_errorf(DP_ERR_FORMAT, "%s: lexicon field tok[%d] = %u (ascending, < token space %u)", who, t,
                             L->tok[t], L->token_space);
        if (L->off[t + 1] <= L->off[t] || L->off[t + 1] - L->off[t] > L->ndocs)
            return dp_errorf(DP_ERR_FORMAT, "%s: lexicon field off[%d] = %lld after off[%d] = %lld (1 .. ndocs %d postings a term)",
                             who, t + 1, (long long)L->off[t + 1], t, (long long)L->off[t], L->ndocs);
        for (int64_t p = L->off[t]; p < L->off[t + 1]; p++)
            if (L->doc[p] < 0 || L->doc[p] >= L->ndocs || (p > L->off[t] && L->doc[p] <= L->doc[p - 1]))
                return dp_errorf(DP_ERR_FORMAT, "%s: lexicon field doc[%lld] = %d (ascending within a term, < ndocs %d)",
                                 who, (long long)p, (int)L->doc[p], L->ndocs);
    }
    return DP_OK;
}

int dp_dsi_lexicon_term(const dp_dsi_lexicon *L, uint32_t t)
{
    int lo = 0, hi = L->nterms - 1;
    while (lo <= hi) {
        const int mid = lo + (hi - lo) / 2;
        if (L->tok[mid] == t) return mid;
        if (L->tok[mid] < t) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}
