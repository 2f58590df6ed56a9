/* Sparse scoring: the lexical head of the DSI model (issue 23), BM25's sum
 * with learned posting weights.
 *
 *   y[n, d] = s * sum over the entries k of row n's term list, t = terms[k],
 *                 of w[p] for the postings p of t (off[t] <= p < off[t+1]) with doc[p] = d
 *
 * A term listed twice counts twice (BM25's query words, once per occurrence).
 * The pattern (off, doc) is fixed; w [nnz] and s [1] are parameters. Cost per
 * row: the lengths of its terms' posting lists, nothing per document beyond
 * zeroing y (a dense [N, D] block: it is added to the dense head's logits).
 *
 * Backward: dw[p] += s dy[n, doc[p]] and ds += w[p] dy[n, doc[p]] for every
 * listing; dw is dense in the parameters but only the listed terms' postings
 * are touched. */
#include <string.h>

#include "core/tape.h"

void dp_sparse_score_add(float *y, long ldy, float s, const float *w, const dp_postings *P, const int32_t *terms,
                         const int32_t *toff, int nrows)
{
    for (int n = 0; n < nrows; n++) {
        float *yr = y + (long)n * ldy;
        for (int32_t k = toff[n]; k < toff[n + 1]; k++) {
            const int32_t t = terms[k];
            for (int64_t p = P->off[t]; p < P->off[t + 1]; p++) yr[P->doc[p]] += s * w[p];
        }
    }
}

/* saved: 0 the postings, 1 terms, 2 toff; ip: 0 nrows */
static void sparse_score_backward(dp_ctx *c, dp_node *nd)
{
    const dp_postings *P = nd->saved[0];
    const int32_t *terms = nd->saved[1], *toff = nd->saved[2];
    const int nrows = nd->ip[0], D = P->ndocs;
    dp_tensor *W = nd->in[0], *S = nd->in[1];
    const float *dy = nd->out->grad, *w = W->data;
    const float s = S->data[0];
    float *gw = dp_grad(c, W), *gs = dp_grad(c, S);
    double acc = 0.0;
    for (int n = 0; n < nrows; n++) {
        const float *g = dy + (long)n * D;
        for (int32_t k = toff[n]; k < toff[n + 1]; k++) {
            const int32_t t = terms[k];
            for (int64_t p = P->off[t]; p < P->off[t + 1]; p++) {
                const float gy = g[P->doc[p]];
                if (gw) gw[p] += s * gy;
                acc += (double)w[p] * gy;
            }
        }
    }
    if (gs) gs[0] += (float)acc;
}

dp_tensor *dp_sparse_score(dp_ctx *c, dp_tensor *w, dp_tensor *s, const dp_postings *P, const int32_t *terms,
                           const int32_t *toff, int nrows)
{
    if (!w || !s) return NULL;
    if (!P || !P->off || !P->doc || P->nterms < 0 || P->ndocs < 1)
        return dp_fail(c, DP_ERR_ARG, "sparse_score: no postings (or %d documents)", P ? P->ndocs : 0);
    if (nrows < 1 || !toff || (toff[nrows] > toff[0] && !terms))
        return dp_fail(c, DP_ERR_ARG, "sparse_score: %d rows, term lists %p", nrows, (const void *)toff);
    if (w->n != (long)P->off[P->nterms])
        return dp_fail(c, DP_ERR_SHAPE, "sparse_score: w has %ld weights, the postings %lld", w->n,
                       (long long)P->off[P->nterms]);
    if (s->n != 1) return dp_fail(c, DP_ERR_SHAPE, "sparse_score: s has %ld elements (a scalar: 1)", s->n);
    if (toff[0] != 0) return dp_fail(c, DP_ERR_ARG, "sparse_score: toff[0] = %d (0)", (int)toff[0]);
    for (int n = 0; n < nrows; n++) {
        if (toff[n + 1] < toff[n])
            return dp_fail(c, DP_ERR_ARG, "sparse_score: toff[%d] = %d < toff[%d] = %d", n + 1, (int)toff[n + 1], n,
                           (int)toff[n]);
        for (int32_t k = toff[n]; k < toff[n + 1]; k++)
            if (terms[k] < 0 || terms[k] >= P->nterms)
                return dp_fail(c, DP_ERR_ARG, "sparse_score: terms[%d] = %d outside [0, %d)", (int)k, (int)terms[k],
                               P->nterms);
    }
    dp_tensor *y = dp_tensor_new(c, 2, (int[]){nrows, P->ndocs});
    if (!y) return NULL;
    memset(y->data, 0, (size_t)y->n * sizeof *y->data);
    dp_sparse_score_add(y->data, P->ndocs, s->data[0], w->data, P, terms, toff, nrows);
    dp_node *nd = dp_tape_push(c, sparse_score_backward, "sparse_score", y, 2, (dp_tensor *[]){w, s});
    if (nd) {
        nd->ip[0] = nrows;
        nd->saved[0] = (void *)P;
        nd->saved[1] = (void *)terms;
        nd->saved[2] = (void *)toff;
    }
    return y;
}
