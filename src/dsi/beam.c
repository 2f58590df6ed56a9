/* Constrained beam search over a DSI model's docids (no tape: plain cblas
 * into malloc'd scratch, so it runs beside a training step's arena).
 *
 * Atomic: the top `beams` documents of log_softmax(head(h)), score = log p
 * (the cosine head: head(h)_d = s cos(h, w_d), with the rows' norms of a
 * frozen model computed once).
 *
 * Semantic: hypotheses (trie node, sum of log-probabilities) grow one digit
 * per level from the root. Expanding node v at depth l computes the level's
 * logits for (h, v) for v's children only and log-softmax-normalises them over
 * those children, so an invalid digit can never be chosen. A child that is a
 * trie leaf finishes: score = sum / length. Policy for ids of mixed length:
 *
 *   pool      the `beams` best finished hypotheses so far (score desc, doc asc)
 *   frontier  the `beams` best unfinished children by sum (all of one depth,
 *             so by sum / length alike)
 *   prune     an unfinished child at node c with sum s <= 0 can end, at
 *             best, at s / reach(c) (reach = the deepest leaf below c): once
 *             the pool is full and that bound is below the pool's worst,
 *             it is dropped; the search stops when the frontier is empty
 *
 * With beams >= the node count of every level, nothing is dropped except by
 * the bound, so the result is the exact top-`beams` over every valid id (the
 * test checks this against brute force). Each node enters the frontier at
 * most once (via its one parent), so the documents returned are distinct.
 *
 * Batching: rows are processed in chunks; per level, A_l h + b_l for the
 * whole chunk is one sgemm, then each hypothesis costs one dec-vector add and
 * a gemv over its children's rows of W_l. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "dptrain/rownorm.h"
#include "dsi/model_internal.h"

enum { BEAM_CHUNK = 64 };

typedef struct beam_hyp {
    int id;      /* node (frontier) or document (pool) */
    float score; /* sum (frontier) or sum / length (pool) */
} beam_hyp;

/* Inserts (id, score) into list[0..*n) kept sorted by score desc, then id asc;
 * at most cap entries (the worst falls off). */
static void beam_offer(beam_hyp *list, int *n, int cap, int id, float score)
{
    int pos = *n;
    while (pos > 0 && (list[pos - 1].score < score || (list[pos - 1].score == score && list[pos - 1].id > id))) pos--;
    if (pos >= cap) return;
    const int last = *n < cap ? *n : cap - 1;
    memmove(list + pos + 1, list + pos, (size_t)(last - pos) * sizeof *list);
    list[pos] = (beam_hyp){id, score};
    if (*n < cap) (*n)++;
}

/* y [rows, out] = x [rows, in] w^T + b. A few rows go through gemv: sgemm
 * would pack all of w first (the whole atomic head). */
static void dense_rows(float *y, const float *x, const float *w, const float *b, int rows, int in, int out)
{
    for (int r = 0; r < rows; r++)
        if (b)
            memcpy(y + (long)r * out, b, (size_t)out * sizeof *y);
        else
            memset(y + (long)r * out, 0, (size_t)out * sizeof *y);
    if (rows < 4)
        for (int r = 0; r < rows; r++)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, out, in, 1.0f, w, in, x + (long)r * in, 1, 1.0f, y + (long)r * out,
                        1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, out, in, 1.0f, x, in, w, in, 1.0f, y, out);
}

/* log sum exp x [n]: float exponentials, a double sum */
static float log_sum_exp(const float *x, int n)
{
    float mx = x[0];
    for (int j = 1; j < n; j++)
        if (x[j] > mx) mx = x[j];
    double s = 0.0;
    for (int j = 0; j < n; j++) s += expf(x[j] - mx);
    return mx + (float)log(s);
}

/* Cosine head: the chunk's rows of h normalised into hn; logits then scaled by s / |w_d| */
static void cosine_rows(float *hn, const float *h, int rows, int H)
{
    dp_row_inv_norms(hn + (long)rows * H, h, rows, H, DP_DSI_NORM_EPS); /* hn has rows spare floats at its end */
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < H; j++) hn[(long)r * H + j] = h[(long)r * H + j] * hn[(long)rows * H + r];
}

static dp_status beam_atomic(const dp_dsi_model *m, const float *h, const int32_t *terms, const int32_t *toff, int n,
                             int B, int32_t *docs, float *scores, float *lz)
{
    const dp_dsi_impl *im = m->impl;
    const int D = m->ids.ndocs, H = im->hdim, chunk = n < BEAM_CHUNK ? n : BEAM_CHUNK;
    const int cosine = m->cfg.head == DP_DSI_HEAD_COSINE;
    float *logits = malloc((size_t)chunk * D * sizeof *logits);
    beam_hyp *top = malloc((size_t)B * sizeof *top);
    float *hn = cosine ? malloc(((size_t)chunk * H + chunk) * sizeof *hn) : NULL;
    float *inv = cosine && !im->head_inv ? malloc((size_t)D * sizeof *inv) : NULL;
    const int ok = logits && top && (!cosine || (hn && (im->head_inv || inv)));
    if (inv) dp_row_inv_norms(inv, im->head.w->data, D, H, DP_DSI_NORM_EPS);
    const float *winv = im->head_inv ? im->head_inv : inv;
    for (int r0 = 0; r0 < n && ok; r0 += BEAM_CHUNK) {
        const int rows = n - r0 < BEAM_CHUNK ? n - r0 : BEAM_CHUNK;
        const float *hr = h + (long)r0 * H;
        if (cosine) {
            cosine_rows(hn, hr, rows, H);
            hr = hn;
        }
        dense_rows(logits, hr, im->head.w->data, im->head.b ? im->head.b->data : NULL, rows, H, D);
        if (cosine)
            for (int q = 0; q < rows; q++)
                for (int d = 0; d < D; d++) logits[(long)q * D + d] *= m->cfg.head_scale * winv[d];
        if (im->lex.nterms) /* toff holds offsets into all of terms: the chunk's rows start at toff + r0 */
            dp_sparse_score_add(logits, D, im->lex_s->data[0], im->lex_w->data, &im->post, terms, toff + r0, rows);
        for (int q = 0; q < rows; q++) {
            const float *x = logits + (long)q * D;
            const float lse = log_sum_exp(x, D);
            if (lz) lz[r0 + q] = lse;
            int nt = 0;
            for (int d = 0; d < D; d++)
                if (nt < B || x[d] > top[nt - 1].score) beam_offer(top, &nt, B, d, x[d]);
            for (int i = 0; i < nt; i++) {
                docs[(long)(r0 + q) * B + i] = top[i].id;
                scores[(long)(r0 + q) * B + i] = top[i].score - lse;
            }
        }
    }
    free(logits);
    free(top);
    free(hn);
    free(inv);
    return ok ? DP_OK : dp_errorf(DP_ERR_NOMEM, "beam search: out of memory (%d documents)", D);
}

static dp_status beam_semantic(const dp_dsi_model *m, const float *h, int n, int B, int32_t *docs, float *scores)
{
    const dp_dsi_impl *im = m->impl;
    const dp_dsi_trie *t = &m->ids.trie;
    const int H = im->hdim, E = im->dec, L = m->ids.maxlen;
    int wmax = 1;
    for (int v = 0; v < t->nnodes; v++)
        if (t->count[v] > wmax) wmax = t->count[v];
    const int chunk = n < BEAM_CHUNK ? n : BEAM_CHUNK;
    float *ah = malloc((size_t)chunk * E * sizeof *ah);
    float *g = malloc((size_t)E * sizeof *g), *lg = malloc((size_t)wmax * sizeof *lg);
    beam_hyp *front = malloc((size_t)chunk * B * sizeof *front), *next = malloc((size_t)B * sizeof *next);
    beam_hyp *pool = malloc((size_t)chunk * B * sizeof *pool);
    int *nfront = malloc((size_t)chunk * sizeof *nfront), *npool = malloc((size_t)chunk * sizeof *npool);
    dp_status rc = DP_OK;
    if (!ah || !g || !lg || !front || !next || !pool || !nfront || !npool) {
        rc = dp_errorf(DP_ERR_NOMEM, "beam search: out of memory");
        goto done;
    }
    for (int r0 = 0; r0 < n; r0 += BEAM_CHUNK) {
        const int rows = n - r0 < BEAM_CHUNK ? n - r0 : BEAM_CHUNK;
        for (int q = 0; q < rows; q++) {
            front[(long)q * B] = (beam_hyp){0, 0.0f};
            nfront[q] = 1;
            npool[q] = 0;
        }
        for (int l = 0; l < L; l++) {
            int active = 0;
            for (int q = 0; q < rows; q++) active |= nfront[q] > 0;
            if (!active) break;
            const dp_dsi_level *lv = &im->lv[l];
            const float *W = lv->out.w->data, *Wb = lv->out.b->data;
            dense_rows(ah, h + (long)r0 * H, lv->a.w->data, lv->a.b->data, rows, H, E);
            for (int q = 0; q < rows; q++) {
                beam_hyp *fr = front + (long)q * B, *pl = pool + (long)q * B;
                int nn = 0;
                for (int i = 0; i < nfront[q]; i++) {
                    const int v = fr[i].id, f = t->first[v], cnt = t->count[v];
                    const float s = fr[i].score;
                    const float *a = ah + (long)q * E, *e = lv->node->data + (long)(v - lv->base) * E;
                    for (int j = 0; j < E; j++) g[j] = a[j] + e[j] > 0.0f ? a[j] + e[j] : 0.0f;
                    const int d0 = t->digit[f];
                    if (t->digit[f + cnt - 1] - d0 == cnt - 1) { /* digits d0 .. d0+cnt-1: one gemv */
                        memcpy(lg, Wb + d0, (size_t)cnt * sizeof *lg);
                        cblas_sgemv(CblasRowMajor, CblasNoTrans, cnt, E, 1.0f, W + (long)d0 * E, E, g, 1, 1.0f, lg,
                                    1);
                    } else {
                        for (int k = 0; k < cnt; k++)
                            lg[k] = Wb[t->digit[f + k]] + cblas_sdot(E, W + (long)t->digit[f + k] * E, 1, g, 1);
                    }
                    const float lse = log_sum_exp(lg, cnt);
                    for (int k = 0; k < cnt; k++) {
                        const int ch = f + k;
                        const float ns = s + (lg[k] - lse);
                        if (t->doc[ch] >= 0)
                            beam_offer(pl, &npool[q], B, t->doc[ch], ns / (float)(l + 1));
                        else
                            beam_offer(next, &nn, B, ch, ns);
                    }
                }
                /* the frontier, less what can no longer reach the pool */
                nfront[q] = 0;
                for (int i = 0; i < nn; i++)
                    if (npool[q] < B || next[i].score / (float)im->reach[next[i].id] >= pl[B - 1].score)
                        fr[nfront[q]++] = next[i];
            }
        }
        for (int q = 0; q < rows; q++)
            for (int i = 0; i < npool[q]; i++) {
                docs[(long)(r0 + q) * B + i] = pool[(long)q * B + i].id;
                scores[(long)(r0 + q) * B + i] = pool[(long)q * B + i].score;
            }
    }
done:
    free(ah);
    free(g);
    free(lg);
    free(front);
    free(next);
    free(pool);
    free(nfront);
    free(npool);
    return rc;
}

dp_status dp_dsi_beam_search(dp_ctx *c, dp_dsi_model *m, const float *h, int n, int beams, int32_t *docs,
                             float *scores)
{
    return dp_dsi_beam_search_lex(c, m, h, NULL, NULL, n, beams, docs, scores);
}

dp_status dp_dsi_beam_search_lex(dp_ctx *c, dp_dsi_model *m, const float *h, const int32_t *terms,
                                 const int32_t *toff, int n, int beams, int32_t *docs, float *scores)
{
    return dp_dsi_beam_search_lz(c, m, h, terms, toff, n, beams, docs, scores, NULL);
}

dp_status dp_dsi_beam_search_lz(dp_ctx *c, dp_dsi_model *m, const float *h, const int32_t *terms, const int32_t *toff,
                                int n, int beams, int32_t *docs, float *scores, float *lz)
{
    if (!m || n < 0 || beams < 1 || (n > 0 && (!h || !docs || !scores)))
        return dp_errorf(DP_ERR_ARG, "beam search: %d rows, %d beams", n, beams);
    if (n > 0 && dp_dsi_has_lexical(m) && !toff)
        return dp_errorf(DP_ERR_ARG, "beam search: the model has a lexical head and no query terms were given");
    int grad = 1, training = 0;
    if (c) { /* nothing here records or draws dropout masks; keep the context's modes as they were */
        grad = c->grad_enabled;
        training = c->training;
        c->grad_enabled = 0;
        c->training = 0;
    }
    for (long i = 0; i < (long)n * beams; i++) {
        docs[i] = -1;
        scores[i] = -INFINITY;
    }
    for (int i = 0; lz && i < n; i++) lz[i] = 0.0f; /* semantic ids: no one softmax over the documents */
    dp_status rc = n == 0                          ? DP_OK
                   : m->ids.kind == DP_DSI_ATOMIC ? beam_atomic(m, h, terms, toff, n, beams, docs, scores, lz)
                                                  : beam_semantic(m, h, n, beams, docs, scores);
    if (c) {
        c->grad_enabled = grad;
        c->training = training;
    }
    return rc;
}
