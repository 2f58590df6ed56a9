/* A small pre-norm Transformer encoder over a query's features, in order:
 *
 *   x_t = emb[row_t] + pos[t]                                [T, E]
 *   L x { x = x + Dropout(Wo MHA(Wqkv LN1(x)))
 *         x = x + Dropout(W2 GELU(W1 LN2(x))) }               FFN width hidden
 *   h = the mean over each query's tokens of LNf(x)           [N, E]
 *
 * E = embed, `heads` heads of E / heads, GELU the exact erf form (dp_gelu),
 * layer norm eps 1e-5 (PyTorch's default).
 *
 * Token order. A bag of rows is the tokenizer's output (tokenize.c) as it
 * was written: the words in text order, then the word pairs in order, then
 * each word's character 3-grams in order. Nothing reorders it (the shards,
 * the batch assembly and the vocabulary filter keep the order; token-drop
 * and the filter only leave tokens out), so the bag is the sequence and the
 * position of a feature is its index in the bag: the words come first at
 * positions 0 .. w-1 and the learned table can tell the kinds apart by where
 * they sit. A bag longer than the table keeps its first `positions` features.
 *
 * The queries of a batch are packed back to back (no padding): the token
 * embedding and the position are row gathers, every linear and layer norm
 * runs once over all the batch's tokens, and attention runs per query on
 * its own rows (dp_self_attention), so a query never sees another. The pooling
 * is an embedding-bag over the packed rows. Scratch comes from the arena.
 *
 * Parameters: emb.weight (m->emb, N(0, 1) as the bag encoder's), tf.pos
 * [positions, E] (N(0, 0.01)), per block tf<i>.{ln1,qkv,proj,ln2,ff1,ff2},
 * then tf.lnf; linear layers PyTorch's default init, layer norms 1 and 0. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/tape.h"
#include "dsi/encoder.h"

#define LN_EPS 1e-5f

typedef struct tf_norm {
    dp_tensor *g, *b;
} tf_norm;

typedef struct tf_block {
    tf_norm ln1, ln2;
    dp_linear_layer qkv, proj, ff1, ff2;
} tf_block;

typedef struct tf_enc {
    dp_tensor *emb, *pos;
    tf_block *blk; /* [layers] */
    tf_norm lnf;
    int E, heads, positions, layers;
    float dropout;
} tf_enc;

static void norm_init(tf_norm *n, dp_params *p, const char *name, int E)
{
    char nm[64];
    snprintf(nm, sizeof nm, "%.48s.weight", name);
    n->g = dp_params_add(p, nm, 1, (int[]){E}, DP_INIT_ONE, E, E);
    snprintf(nm, sizeof nm, "%.48s.bias", name);
    n->b = dp_params_add(p, nm, 1, (int[]){E}, DP_INIT_ZERO, E, E);
}

static dp_status check(const dp_dsi_model_config *cfg)
{
    if (cfg->heads < 1 || cfg->heads > cfg->embed || cfg->embed % cfg->heads)
        return dp_errorf(DP_ERR_ARG, "dsi transformer: %d heads do not divide embed %d", cfg->heads, cfg->embed);
    if (cfg->positions < 1 || cfg->positions > 65536)
        return dp_errorf(DP_ERR_ARG, "dsi transformer: positions = %d (1..65536)", cfg->positions);
    return DP_OK;
}

static dp_status build(dp_dsi_model *m, void **self, int *hdim)
{
    const dp_dsi_model_config *cfg = &m->cfg;
    *self = NULL;
    dp_status rc = check(cfg);
    if (rc != DP_OK) return rc;
    tf_enc *e = calloc(1, sizeof *e);
    if (e) e->blk = calloc(cfg->layers > 0 ? (size_t)cfg->layers : 1, sizeof *e->blk);
    *self = e;
    if (!e || !e->blk) return dp_errorf(DP_ERR_NOMEM, "dsi encoder: out of memory");
    const int E = cfg->embed, H = cfg->hidden;
    e->E = E;
    e->heads = cfg->heads;
    e->positions = cfg->positions;
    e->layers = cfg->layers;
    e->dropout = cfg->dropout;
    e->emb = dp_params_add(&m->emb, "emb.weight", 2, (int[]){(int)cfg->buckets, E}, DP_INIT_NORMAL, E, E);
    e->pos = dp_params_add(&m->dense, "tf.pos", 2, (int[]){cfg->positions, E}, DP_INIT_NORMAL_SMALL, E, E);
    int ok = e->emb && e->pos;
    char nm[64];
    for (int i = 0; i < cfg->layers; i++) {
        tf_block *b = &e->blk[i];
        snprintf(nm, sizeof nm, "tf%d.ln1", i);
        norm_init(&b->ln1, &m->dense, nm, E);
        snprintf(nm, sizeof nm, "tf%d.qkv", i);
        dp_nn_linear_init(&b->qkv, &m->dense, nm, E, 3 * E, 1);
        snprintf(nm, sizeof nm, "tf%d.proj", i);
        dp_nn_linear_init(&b->proj, &m->dense, nm, E, E, 1);
        snprintf(nm, sizeof nm, "tf%d.ln2", i);
        norm_init(&b->ln2, &m->dense, nm, E);
        snprintf(nm, sizeof nm, "tf%d.ff1", i);
        dp_nn_linear_init(&b->ff1, &m->dense, nm, E, H, 1);
        snprintf(nm, sizeof nm, "tf%d.ff2", i);
        dp_nn_linear_init(&b->ff2, &m->dense, nm, H, E, 1);
        ok &= b->ln1.g && b->ln1.b && b->ln2.g && b->ln2.b && b->qkv.w && b->qkv.b && b->proj.w && b->proj.b &&
              b->ff1.w && b->ff1.b && b->ff2.w && b->ff2.b;
    }
    norm_init(&e->lnf, &m->dense, "tf.lnf", E);
    ok &= e->lnf.g && e->lnf.b;
    *hdim = E;
    return ok ? DP_OK : dp_errorf(DP_ERR_NOMEM, "dsi encoder: cannot declare the parameters");
}

static dp_tensor *block(dp_ctx *c, const tf_enc *e, const tf_block *b, dp_tensor *x, const int32_t *off, int nbags)
{
    dp_tensor *a = dp_layernorm(c, x, b->ln1.g, b->ln1.b, LN_EPS);
    dp_tensor *o = dp_self_attention(c, dp_nn_linear(c, &b->qkv, a), off, nbags, e->heads);
    x = dp_add(c, x, dp_dropout(c, dp_nn_linear(c, &b->proj, o), e->dropout));
    dp_tensor *f = dp_layernorm(c, x, b->ln2.g, b->ln2.b, LN_EPS);
    dp_tensor *g = dp_nn_linear(c, &b->ff2, dp_gelu(c, dp_nn_linear(c, &b->ff1, f)));
    return dp_add(c, x, dp_dropout(c, g, e->dropout));
}

static dp_tensor *forward(dp_ctx *c, const dp_dsi_model *m, const void *self, const int32_t *rows,
                          const int32_t *offsets, int nbags)
{
    (void)m;
    const tf_enc *e = self;
    if (nbags < 1) return dp_fail(c, DP_ERR_ARG, "dsi transformer: %d queries", nbags);
    /* the packed sequence: each bag cut at the position table's length */
    int32_t *off = dp_scratch(c, ((size_t)nbags + 1) * sizeof *off);
    if (!off) return NULL;
    off[0] = 0;
    for (int b = 0; b < nbags; b++) {
        const int n = offsets[b + 1] - offsets[b];
        if (n < 0) return dp_fail(c, DP_ERR_ARG, "dsi transformer: offsets[%d] = %d < offsets[%d] = %d", b + 1,
                                  (int)offsets[b + 1], b, (int)offsets[b]);
        off[b + 1] = off[b] + (n < e->positions ? n : e->positions);
    }
    const int T = off[nbags];
    if (T == 0) { /* only empty queries: h = 0, the pooling's value for an empty bag */
        dp_tensor *h = dp_tensor_new(c, 2, (int[]){nbags, e->E});
        if (h) memset(h->data, 0, (size_t)h->n * sizeof *h->data);
        return h;
    }
    /* token rows, positions and the identity (the pooling's ids), in the arena: the backward reads them */
    int32_t *tok = dp_scratch(c, 3 * (size_t)T * sizeof *tok);
    if (!tok) return NULL;
    int32_t *pos = tok + T, *iota = tok + 2 * T;
    for (int b = 0; b < nbags; b++)
        for (int t = off[b]; t < off[b + 1]; t++) {
            tok[t] = rows[offsets[b] + (t - off[b])];
            pos[t] = t - off[b];
            iota[t] = t;
        }
    dp_tensor *x = dp_add(c, dp_gather_rows(c, e->emb, tok, T), dp_gather_rows(c, e->pos, pos, T));
    for (int i = 0; i < e->layers; i++) x = block(c, e, &e->blk[i], x, off, nbags);
    x = dp_layernorm(c, x, e->lnf.g, e->lnf.b, LN_EPS);
    return dp_embedding_bag(c, x, iota, off, nbags, 1);
}

/* The position table and the blocks' weights (biases and norms aside) */
static uint64_t dense_floats(const dp_dsi_model_config *cfg)
{
    const uint64_t E = (uint64_t)(cfg->embed > 0 ? cfg->embed : 0), H = (uint64_t)(cfg->hidden > 0 ? cfg->hidden : 0);
    const uint64_t L = (uint64_t)(cfg->layers > 0 ? cfg->layers : 0), P = (uint64_t)(cfg->positions > 0 ? cfg->positions : 0);
    return P * E + L * (4 * E * E + 2 * E * H);
}

static void free_self(void *self)
{
    tf_enc *e = self;
    if (e) free(e->blk);
    free(e);
}

const dp_dsi_encoder_ops dp_dsi_encoder_transformer = {
    .name = "transformer", .build = build, .forward = forward, .dense_floats = dense_floats, .free_self = free_self,
};
