/* The DSI model (Tay et al. 2022) over the core ops: a query encoder and an
 * atomic head or a semantic, level-by-level decoder.
 *
 *   tokens --embedding_bag(mean)--> [N, embed]                      m->emb
 *          --layers x (linear hidden, ReLU, dropout)--> h [N, hdim]   m->dense
 *   atomic:   logits = head(h) [N, ndocs]; loss = CE                 (one sgemm)
 *             cosine head: logits = s normalize(h) normalize(W)^T, no bias
 *   semantic: for each level l (teacher forcing: v = the node of the
 *             document's true prefix of length l),
 *               g_l = ReLU(A_l h + b_l + E_l[v]),  logits_l = W_l g_l + c_l [width_l]
 *             loss = 1/N sum_rows sum_{l < len(doc)} CE(logits_l, digit_l)
 *
 * E_l has one row per trie node of depth l, so the decoder knows the whole
 * prefix, not only the last digit (DSI's decoder sees it through its
 * autoregressive state). In training the softmax runs over every digit of the
 * level (as DSI does); the beam search (beam.c) renormalises over the valid
 * children of the node. The rows taking part in a level are picked with one
 * gather per level (dp_gather_rows), so the decoder costs a few GEMMs per
 * level whatever the batch.
 *
 * Parameter names: emb.weight; enc<i>.{weight,bias}; head.{weight,bias};
 * dec<l>.a.{weight,bias}, dec<l>.node, dec<l>.out.{weight,bias}. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/rownorm.h"
#include "dptrain/tape.h"
#include "dsi/encoder.h"
#include "dsi/model_internal.h"

void dp_dsi_model_defaults(dp_dsi_model_config *c)
{
    c->buckets = 1u << 18;
    c->token_space = 0;
    c->embed = 128;
    c->hidden = 256;
    c->layers = 2;
    c->dropout = 0.0f; /* in a run of a few epochs dropout slows the fit more than it regularises (benchmarks/RESULTS.md §9) */
    c->head = DP_DSI_HEAD_DOT;
    c->head_scale = 16.0f;
    c->lex_scale = DP_DSI_LEX_SCALE0;
    c->encoder = DP_DSI_ENCODER_BAG_MLP;
    c->heads = 4;        /* transformer only */
    c->positions = 256;  /* the tokenizer's default max_tokens: no query is cut */
}

static dp_status check_config(const dp_dsi_model_config *c)
{
    if (c->buckets < 1 || c->buckets > (1u << 30))
        return dp_errorf(DP_ERR_ARG, "dsi model: buckets = %u (1..2^30)", c->buckets);
    if (c->token_space && (c->token_space < c->buckets || c->token_space > (1u << 30)))
        return dp_errorf(DP_ERR_ARG, "dsi model: token space = %u (buckets %u .. 2^30)", c->token_space, c->buckets);
    if (c->embed < 1 || c->embed > 65536) return dp_errorf(DP_ERR_ARG, "dsi model: embed = %d (1..65536)", c->embed);
    if (c->hidden < 1 || c->hidden > 65536)
        return dp_errorf(DP_ERR_ARG, "dsi model: hidden = %d (1..65536)", c->hidden);
    if (c->layers < 0 || c->layers > 64) return dp_errorf(DP_ERR_ARG, "dsi model: layers = %d (0..64)", c->layers);
    if (!(c->dropout >= 0.0f && c->dropout < 1.0f))
        return dp_errorf(DP_ERR_ARG, "dsi model: dropout = %g ([0, 1))", (double)c->dropout);
    if (c->head != DP_DSI_HEAD_DOT && c->head != DP_DSI_HEAD_COSINE)
        return dp_errorf(DP_ERR_ARG, "dsi model: head = %d (0 dot, 1 cosine)", c->head);
    if (c->head == DP_DSI_HEAD_COSINE && !(c->head_scale > 0.0f && c->head_scale <= 1000.0f))
        return dp_errorf(DP_ERR_ARG, "dsi model: head scale = %g ((0, 1000])", (double)c->head_scale);
    if (!dp_dsi_encoder_of(c->encoder)) return dp_errorf(DP_ERR_ARG, "dsi model: encoder = %d (not in the table)", c->encoder);
    return DP_OK;
}

/* the child of v reached by digit dg, or -1 */
static int child_of(const dp_dsi_trie *t, int v, int dg)
{
    int lo = t->first[v], hi = t->first[v] + t->count[v] - 1;
    while (lo <= hi) {
        const int mid = (lo + hi) / 2;
        if (t->digit[mid] == dg) return mid;
        if (t->digit[mid] < dg)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

/* impl->path (each document's prefix nodes) and impl->reach */
static dp_status index_paths(dp_dsi_impl *im, const dp_dsi_docids *ids)
{
    const dp_dsi_trie *t = &ids->trie;
    const int L = ids->maxlen;
    im->path = malloc((size_t)ids->ndocs * L * sizeof *im->path);
    im->reach = malloc((size_t)t->nnodes);
    if (!im->path || !im->reach) return dp_errorf(DP_ERR_NOMEM, "dsi model: out of memory (%d documents)", ids->ndocs);
    for (int d = 0; d < ids->ndocs; d++) {
        int v = 0;
        for (int l = 0; l < ids->len[d]; l++) {
            im->path[(long)d * L + l] = v;
            v = v >= 0 && t->count[v] > 0 ? child_of(t, v, ids->code[(long)d * L + l]) : -1;
        }
        for (int l = ids->len[d]; l < L; l++) im->path[(long)d * L + l] = -1;
        if (v < 0 || v != ids->leaf[d] || t->doc[v] != d)
            return dp_errorf(DP_ERR_FORMAT, "dsi model: document %d's id does not lead to its trie leaf", d);
    }
    /* children come after their parent: one sweep from the deepest nodes */
    for (int v = t->nnodes - 1; v >= 0; v--) {
        int r = t->depth[v];
        for (int q = 0; q < t->count[v]; q++)
            if (im->reach[t->first[v] + q] > r) r = im->reach[t->first[v] + q];
        im->reach[v] = (uint8_t)r;
    }
    return DP_OK;
}

dp_status dp_dsi_model_build(const dp_dsi_model_config *cfg, dp_dsi_docids *ids, dp_dsi_model **out)
{
    return dp_dsi_model_build_lexical(cfg, ids, NULL, out);
}

dp_status dp_dsi_model_build_lexical(const dp_dsi_model_config *cfg, dp_dsi_docids *ids, dp_dsi_lexicon *lex,
                                     dp_dsi_model **out)
{
    *out = NULL;
    dp_status rc = check_config(cfg);
    if (rc != DP_OK) return rc;
    if (!ids || ids->ndocs < 1) return dp_errorf(DP_ERR_ARG, "dsi model: no documents");
    if (lex && lex->nterms) {
        const uint32_t space = cfg->token_space ? cfg->token_space : cfg->buckets;
        if (ids->kind != DP_DSI_ATOMIC) return dp_errorf(DP_ERR_ARG, "dsi model: the lexical head needs atomic docids");
        if (lex->ndocs != ids->ndocs || lex->token_space != space)
            return dp_errorf(DP_ERR_ARG, "dsi model: lexicon of %d documents over %u token ids, the model has %d over %u",
                             lex->ndocs, lex->token_space, ids->ndocs, space);
        if (lex->off[lex->nterms] > INT32_MAX)
            return dp_errorf(DP_ERR_ARG, "dsi model: %lld lexical postings (at most 2^31 - 1)",
                             (long long)lex->off[lex->nterms]);
    }
    if (cfg->head != DP_DSI_HEAD_DOT && ids->kind != DP_DSI_ATOMIC)
        return dp_errorf(DP_ERR_ARG, "dsi model: the cosine head needs atomic docids");
    if (ids->trie.nnodes == 0 && (rc = dp_dsi_docids_index(ids)) != DP_OK) return rc;
    dp_dsi_model *m = calloc(1, sizeof *m);
    dp_dsi_impl *im = calloc(1, sizeof *im);
    if (!m || !im) {
        free(m);
        free(im);
        return dp_errorf(DP_ERR_NOMEM, "dsi model: out of memory");
    }
    m->cfg = *cfg;
    if (!m->cfg.token_space) m->cfg.token_space = m->cfg.buckets;
    m->ids = *ids;
    memset(ids, 0, sizeof *ids);
    m->impl = im;
    const dp_dsi_docids *I = &m->ids;
    char nm[64];

    im->encoder = dp_dsi_encoder_of(cfg->encoder);
    if ((rc = im->encoder->build(m, &im->enc, &im->hdim)) != DP_OK) goto err;
    im->dec = cfg->hidden;
    int ok = 1;
    if (I->kind == DP_DSI_ATOMIC) {
        const int bias = cfg->head == DP_DSI_HEAD_DOT;
        dp_nn_linear_init(&im->head, &m->dense, "head", im->hdim, I->ndocs, bias);
        ok &= im->head.w && (im->head.b || !bias);
    } else {
        for (int l = 0; l < I->maxlen; l++) {
            dp_dsi_level *lv = &im->lv[l];
            lv->base = I->trie.level_base[l];
            lv->nodes = I->trie.level_base[l + 1] - lv->base;
            lv->width = I->width[l];
            snprintf(nm, sizeof nm, "dec%d.a", l);
            dp_nn_linear_init(&lv->a, &m->dense, nm, im->hdim, im->dec, 1);
            snprintf(nm, sizeof nm, "dec%d.node", l);
            lv->node = dp_params_add(&m->dense, nm, 2, (int[]){lv->nodes, im->dec}, DP_INIT_NORMAL_SMALL, im->dec,
                                     im->dec);
            snprintf(nm, sizeof nm, "dec%d.out", l);
            dp_nn_linear_init(&lv->out, &m->dense, nm, im->dec, lv->width, 1);
            ok &= lv->a.w && lv->a.b && lv->node && lv->out.w && lv->out.b;
        }
    }
    if (lex && lex->nterms) {
        im->lex = *lex;
        memset(lex, 0, sizeof *lex);
        im->post = (dp_postings){.nterms = im->lex.nterms, .ndocs = im->lex.ndocs, .off = im->lex.off, .doc = im->lex.doc};
        im->lex_w = dp_params_add(&m->dense, "lex.w", 1, (int[]){(int)im->lex.off[im->lex.nterms]}, DP_INIT_ZERO, 1, 1);
        im->lex_s = dp_params_add(&m->dense, "lex.scale", 1, (int[]){1}, DP_INIT_ZERO, 1, 1);
        ok &= im->lex_w && im->lex_s;
    }
    if (!ok) {
        rc = dp_errorf(DP_ERR_NOMEM, "dsi model: cannot declare the parameters");
        goto err;
    }
    if ((rc = dp_params_finalize(&m->emb)) != DP_OK || (rc = dp_params_finalize(&m->dense)) != DP_OK) goto err;
    if ((rc = index_paths(im, I)) != DP_OK) goto err;
    *out = m;
    return DP_OK;
err:
    /* give the ids (and the lexicon) back to the caller untouched */
    *ids = m->ids;
    memset(&m->ids, 0, sizeof m->ids);
    if (im->lex.nterms) {
        *lex = im->lex;
        memset(&im->lex, 0, sizeof im->lex);
    }
    dp_dsi_model_free(m);
    return rc;
}

void dp_dsi_model_init(dp_dsi_model *m, dp_rng *r)
{
    dp_params_init(&m->emb, r);
    dp_params_init(&m->dense, r);
    dp_dsi_impl *im = m->impl;
    if (im->lex_w && im->lex.w0) { /* BM25's weights at BM25's scale */
        memcpy(im->lex_w->data, im->lex.w0, (size_t)im->lex_w->n * sizeof *im->lex.w0);
        im->lex_s->data[0] = m->cfg.lex_scale > 0 ? m->cfg.lex_scale : DP_DSI_LEX_SCALE0;
    }
}

int dp_dsi_has_lexical(const dp_dsi_model *m) { return dp_dsi_impl_of(m)->lex.nterms > 0; }

const dp_dsi_lexicon *dp_dsi_model_lexicon(const dp_dsi_model *m)
{
    const dp_dsi_impl *im = m->impl;
    return im->lex.nterms ? &im->lex : NULL;
}

int dp_dsi_lex_bag(const dp_dsi_model *m, const int32_t *tok, int n, int nwords, int32_t *terms)
{
    const dp_dsi_lexicon *L = &dp_dsi_impl_of(m)->lex;
    int k = 0;
    if (!L->nterms) return 0;
    const int w = nwords >= 0 && nwords < n ? nwords : n;
    for (int i = 0; i < w; i++) {
        const int t = dp_dsi_lexicon_term(L, (uint32_t)tok[i]);
        if (t >= 0) terms[k++] = t;
        else if (nwords < 0) break; /* the words end at the first token the text does not hold */
    }
    return k;
}

void dp_dsi_lex_terms(const dp_dsi_model *m, const int32_t *ids, const int32_t *offsets, int nbags,
                      const int32_t *nwords, int32_t *terms, int32_t *toff)
{
    toff[0] = 0;
    for (int b = 0; b < nbags; b++)
        toff[b + 1] = toff[b] + dp_dsi_lex_bag(m, ids + offsets[b], offsets[b + 1] - offsets[b], nwords ? nwords[b] : -1,
                                               terms + toff[b]);
}

void dp_dsi_model_free(dp_dsi_model *m)
{
    if (!m) return;
    dp_dsi_impl *im = m->impl;
    if (im) {
        if (im->encoder) im->encoder->free_self(im->enc);
        free(im->path);
        free(im->reach);
        free(im->head_inv);
        dp_dsi_lexicon_free(&im->lex);
        free(im);
    }
    free(m->known);
    dp_dsi_docids_free(&m->ids);
    dp_params_free(&m->emb);
    dp_params_free(&m->dense);
    free(m);
}

dp_status dp_dsi_model_freeze(dp_dsi_model *m)
{
    dp_dsi_impl *im = m->impl;
    if (m->cfg.head != DP_DSI_HEAD_COSINE || m->ids.kind != DP_DSI_ATOMIC) return DP_OK;
    if (!im->head_inv && !(im->head_inv = malloc((size_t)m->ids.ndocs * sizeof *im->head_inv)))
        return dp_errorf(DP_ERR_NOMEM, "dsi model: out of memory");
    dp_row_inv_norms(im->head_inv, im->head.w->data, m->ids.ndocs, im->hdim, DP_DSI_NORM_EPS);
    return DP_OK;
}

/* s normalize(h) normalize(W)^T */
static dp_tensor *cosine_logits(dp_ctx *c, const dp_dsi_model *m, dp_tensor *h)
{
    const dp_dsi_impl *im = m->impl;
    dp_tensor *cos = dp_matmul(c, dp_l2norm_rows(c, h, DP_DSI_NORM_EPS), dp_l2norm_rows(c, im->head.w, DP_DSI_NORM_EPS),
                               0, 1);
    return dp_scale(c, cos, m->cfg.head_scale);
}

dp_status dp_dsi_model_fit(dp_dsi_model *m, const dp_dsi_set *const *sets, int nsets)
{
    const dp_dsi_impl *im = m->impl;
    return im->encoder->fit ? im->encoder->fit(m, im->enc, sets, nsets) : DP_OK;
}

static int is_known(const uint8_t *known, int32_t t) { return known[(uint32_t)t >> 3] >> (t & 7) & 1; }

dp_status dp_dsi_model_learn_vocab(dp_dsi_model *m, const dp_dsi_set *const *sets, int nsets)
{
    const size_t bytes = ((size_t)m->cfg.token_space + 7) / 8;
    uint8_t *k = calloc(bytes, 1);
    if (!k) return dp_errorf(DP_ERR_NOMEM, "dsi model: out of memory (vocabulary)");
    for (int j = 0; j < nsets; j++)
        for (int64_t i = 0; i < sets[j]->off[sets[j]->n]; i++) {
            const uint32_t t = (uint32_t)sets[j]->tok[i];
            if (t < m->cfg.token_space) k[t >> 3] |= (uint8_t)(1u << (t & 7));
        }
    free(m->known);
    m->known = k;
    return DP_OK;
}

void dp_dsi_coverage(const dp_dsi_model *m, const int32_t *ids, const int32_t *offsets, int nbags, float *cov)
{
    for (int b = 0; b < nbags; b++) {
        const int n = offsets[b + 1] - offsets[b];
        if (!m->known || n == 0) {
            cov[b] = 1.0f;
            continue;
        }
        int k = 0;
        for (int i = offsets[b]; i < offsets[b + 1]; i++)
            k += (uint32_t)ids[i] < m->cfg.token_space && is_known(m->known, ids[i]);
        cov[b] = (float)k / (float)n;
    }
}

dp_tensor *dp_dsi_encode(dp_ctx *c, dp_dsi_model *m, const int32_t *ids, const int32_t *offsets, int nbags)
{
    /* the bags as known embedding rows, in the arena (the backward reads them) */
    int32_t *rows = dp_scratch(c, ((size_t)offsets[nbags] + 1) * sizeof *rows);
    int32_t *roff = dp_scratch(c, ((size_t)nbags + 1) * sizeof *roff);
    if (!rows || !roff) return NULL;
    int w = 0;
    roff[0] = 0;
    for (int b = 0; b < nbags; b++) {
        for (int i = offsets[b]; i < offsets[b + 1]; i++) {
            if ((uint32_t)ids[i] >= m->cfg.token_space) rows[w++] = ids[i]; /* kept for encode_rows to name */
            else if (!m->known || is_known(m->known, ids[i])) rows[w++] = dp_dsi_row_of(m, ids[i]);
        }
        roff[b + 1] = w;
    }
    return dp_dsi_encode_rows(c, m, rows, roff, nbags);
}

dp_tensor *dp_dsi_encode_rows(dp_ctx *c, dp_dsi_model *m, const int32_t *rows, const int32_t *offsets, int nbags)
{
    const dp_dsi_impl *im = m->impl;
    return im->encoder->forward(c, m, im->enc, rows, offsets, nbags);
}

/* Sum over the levels of (rows in the level / n) x the level's mean CE. */
static dp_tensor *semantic_loss(dp_ctx *c, dp_dsi_model *m, dp_tensor *h, const int32_t *docs, long *correct)
{
    const dp_dsi_impl *im = m->impl;
    const dp_dsi_docids *I = &m->ids;
    const int n = h->shape[0], L = I->maxlen;
    uint8_t *ok = correct ? dp_scratch(c, (size_t)n) : NULL;
    if (correct && !ok) return NULL;
    if (ok) memset(ok, 1, (size_t)n);
    dp_tensor *total = NULL;
    for (int l = 0; l < L; l++) {
        int M = 0;
        for (int i = 0; i < n; i++) M += I->len[docs[i]] > l;
        if (M == 0) break;
        const dp_dsi_level *lv = &im->lv[l];
        int32_t *rows = dp_scratch(c, (size_t)M * 3 * sizeof *rows);
        if (!rows) return NULL;
        int32_t *node = rows + M, *tgt = rows + 2 * M;
        for (int i = 0, q = 0; i < n; i++) {
            const long d = docs[i];
            if (I->len[d] <= l) continue;
            rows[q] = i;
            node[q] = im->path[d * L + l] - lv->base;
            tgt[q++] = I->code[d * L + l];
        }
        dp_tensor *hl = M == n ? h : dp_gather_rows(c, h, rows, M);
        dp_tensor *pre = dp_add(c, dp_nn_linear(c, &lv->a, hl), dp_gather_rows(c, lv->node, node, M));
        dp_tensor *logits = dp_nn_linear(c, &lv->out, dp_relu(c, pre));
        dp_tensor *ce = dp_cross_entropy(c, logits, tgt, NULL);
        if (!ce) return NULL;
        if (ok) {
            const int W = lv->width;
            for (int q = 0; q < M; q++) {
                const float *x = logits->data + (long)q * W;
                int arg = 0;
                for (int j = 1; j < W; j++)
                    if (x[j] > x[arg]) arg = j;
                if (arg != tgt[q]) ok[rows[q]] = 0;
            }
        }
        if (M != n) ce = dp_scale(c, ce, (float)M / (float)n);
        total = total ? dp_add(c, total, ce) : ce;
    }
    if (correct && total) {
        long k = 0;
        for (int i = 0; i < n; i++) k += ok[i];
        *correct = k;
    }
    return total;
}

dp_tensor *dp_dsi_logits(dp_ctx *c, dp_dsi_model *m, dp_tensor *h, const int32_t *terms, const int32_t *toff)
{
    if (!h) return NULL;
    const dp_dsi_impl *im = m->impl;
    if (m->ids.kind != DP_DSI_ATOMIC) return dp_fail(c, DP_ERR_ARG, "dsi logits: the model has semantic docids");
    dp_tensor *y = m->cfg.head == DP_DSI_HEAD_COSINE ? cosine_logits(c, m, h) : dp_nn_linear(c, &im->head, h);
    if (!im->lex.nterms || !y) return y;
    if (!toff) return dp_fail(c, DP_ERR_ARG, "dsi logits: the model has a lexical head and no query terms were given");
    return dp_add(c, y, dp_sparse_score(c, im->lex_w, im->lex_s, &im->post, terms, toff, h->shape[0]));
}

dp_tensor *dp_dsi_loss(dp_ctx *c, dp_dsi_model *m, dp_tensor *h, const int32_t *docs, long *correct)
{
    return dp_dsi_loss_lex(c, m, h, NULL, NULL, docs, correct);
}

dp_tensor *dp_dsi_loss_lex(dp_ctx *c, dp_dsi_model *m, dp_tensor *h, const int32_t *terms, const int32_t *toff,
                           const int32_t *docs, long *correct)
{
    if (!h) return NULL;
    const dp_dsi_impl *im = m->impl;
    if (h->ndim != 2 || h->shape[1] != im->hdim)
        return dp_fail(c, DP_ERR_SHAPE, "dsi loss: h is [%d,%d]/%dd, the model makes [N,%d]", h->shape[0],
                       h->shape[1], h->ndim, im->hdim);
    if (!docs) return dp_fail(c, DP_ERR_ARG, "dsi loss: no documents");
    const int n = h->shape[0];
    for (int i = 0; i < n; i++)
        if (docs[i] < 0 || docs[i] >= m->ids.ndocs)
            return dp_fail(c, DP_ERR_ARG, "dsi loss: row %d names document %d, outside [0, %d)", i, (int)docs[i],
                           m->ids.ndocs);
    if (m->ids.kind == DP_DSI_ATOMIC) return dp_cross_entropy(c, dp_dsi_logits(c, m, h, terms, toff), docs, correct);
    return semantic_loss(c, m, h, docs, correct);
}
