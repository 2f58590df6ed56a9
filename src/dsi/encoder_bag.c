/* The bag-of-n-grams encoder: the mean of the bag's embedding rows, then
 * `layers` x (linear hidden, ReLU, dropout); h is [N, hidden], or [N, embed]
 * with no layers. Parameters: emb.weight (m->emb), enc<i>.{weight,bias}. */
#include <stdio.h>
#include <stdlib.h>

#include "dsi/encoder.h"

typedef struct bag_mlp {
    dp_embedding_bag_layer bag; /* in m->emb */
    dp_linear_layer *enc;       /* [cfg.layers] */
} bag_mlp;

static dp_status build(dp_dsi_model *m, void **self, int *hdim)
{
    const dp_dsi_model_config *cfg = &m->cfg;
    bag_mlp *e = calloc(1, sizeof *e);
    if (e) e->enc = calloc(cfg->layers > 0 ? (size_t)cfg->layers : 1, sizeof *e->enc);
    *self = e;
    if (!e || !e->enc) return dp_errorf(DP_ERR_NOMEM, "dsi encoder: out of memory");
    dp_nn_embedding_bag_init(&e->bag, &m->emb, "emb", (int)cfg->buckets, cfg->embed, 1);
    /* torch.nn.EmbeddingBag's N(0, 1), not the layer's N(0, 0.01): a mean over
     * ~60 hashed n-grams of N(0, 0.01) rows starts h near 1e-3, and the
     * gradients reaching the rows sink below Adam's eps (nothing learns) */
    if (e->bag.w) m->emb.items[0]->init = DP_INIT_NORMAL;
    int ok = e->bag.w != NULL;
    char nm[32];
    for (int i = 0; i < cfg->layers; i++) {
        snprintf(nm, sizeof nm, "enc%d", i);
        dp_nn_linear_init(&e->enc[i], &m->dense, nm, i ? cfg->hidden : cfg->embed, cfg->hidden, 1);
        ok &= e->enc[i].w && e->enc[i].b;
    }
    *hdim = cfg->layers > 0 ? cfg->hidden : cfg->embed;
    return ok ? DP_OK : dp_errorf(DP_ERR_NOMEM, "dsi encoder: cannot declare the parameters");
}

static dp_tensor *forward(dp_ctx *c, const dp_dsi_model *m, const void *self, const int32_t *rows,
                          const int32_t *offsets, int nbags)
{
    const bag_mlp *e = self;
    dp_tensor *x = dp_nn_embedding_bag(c, &e->bag, rows, offsets, nbags);
    for (int i = 0; i < m->cfg.layers; i++) x = dp_dropout(c, dp_relu(c, dp_nn_linear(c, &e->enc[i], x)), m->cfg.dropout);
    return x;
}

/* embed x hidden + (layers - 1) x hidden^2 weights (biases aside) */
static uint64_t dense_floats(const dp_dsi_model_config *cfg)
{
    if (cfg->layers <= 0) return 0;
    return (uint64_t)cfg->embed * (uint64_t)cfg->hidden +
           (uint64_t)(cfg->layers - 1) * (uint64_t)cfg->hidden * (uint64_t)cfg->hidden;
}

static void free_self(void *self)
{
    bag_mlp *e = self;
    if (e) free(e->enc);
    free(e);
}

const dp_dsi_encoder_ops dp_dsi_encoder_bag_mlp = {
    .name = "bag-mlp", .build = build, .forward = forward, .dense_floats = dense_floats, .free_self = free_self,
};
