/* The DARTS supernet: every edge of every cell a mixed op over the primitive
 * set, weighted by the architecture parameters alpha of its cell type.
 *
 * Cell types: DARTS shares one alpha among the normal cells and one among
 * the reduction cells (2 types: 0 normal, 1 reduce); D-DARTS (Heuillet et
 * al. 2021, per_layer) gives every cell an alpha of its own (type = layer).
 * The weights live in model->params (the trainer's flat buffers); alpha lives
 * in its own registry `alpha` (one [14, nops] tensor per type, in type order,
 * one flat buffer of types * 14 * nops floats) so that the search can step it
 * with its own optimizer and average its gradient separately.
 *
 * How an edge mixes its ops is the strategy, set per forward in `mix`:
 *   darts        sum_k softmax(alpha)_k op_k(x)
 *   temperature  sum_k softmax(alpha / T)_k op_k(x)
 *   gumbel       GDAS: h = one_hot(argmax softmax((alpha + g) / T)) in the
 *                forward, the soft softmax's gradient in the backward
 *                (straight-through); only the sampled op is computed. g is
 *                Gumbel noise [types * 14 * nops] that the caller draws from a
 *                stream every rank shares, so ranks sample alike.
 *   gold         sigmoid(alpha)_k * mask_k (one-level, ops pruned by mask)
 *   maxw         sharpDARTS' Max-W: softmax(alpha)_k + 1 - max_j softmax(alpha)_j,
 *                the shift passing no gradient (the favoured op weighs 1)
 * An op whose weight is structurally zero (mask 0, or not sampled) is not
 * computed at all.
 *
 * PC-DARTS (Xu et al. 2020), both off by default:
 *   partial channels K  on every edge only the first C/K channels of the
 *                input go through the candidate ops (built on C/K channels,
 *                so their FLOPs and activations shrink); the other channels
 *                bypass them (max-pooled 3x3 stride 2 pad 1 on a reducing
 *                edge, the size every stride-2 op gives), and the node's
 *                [ops' C/K | bypass] channels are shuffled (dp_channel_shuffle,
 *                K groups) so that the next edge samples other channels.
 *   edge normalisation  node i's incoming edges are weighted by
 *                softmax(beta) over those edges: beta is one more tensor
 *                per type ([14] each) at the end of the `alpha`
 *                registry, so they are stepped, averaged, checkpointed and
 *                resumed with alpha; derivation scores an edge by
 *                softmax(beta) x its best softmax(alpha) (dp_nas_derive_beta). */
#ifndef DPTRAIN_SUPERNET_H
#define DPTRAIN_SUPERNET_H

#include "dptrain/nas.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dp_nas_strategy { DP_NAS_DARTS, DP_NAS_TEMPERATURE, DP_NAS_GUMBEL, DP_NAS_GOLD, DP_NAS_MAXW } dp_nas_strategy;

const char *dp_nas_strategy_name(dp_nas_strategy s);
dp_status dp_nas_strategy_parse(const char *name, dp_nas_strategy *out);

typedef struct dp_supernet_config {
    int layers;          /* cells (reductions at layers/3 and 2 layers/3) */
    int channels;        /* C of the first cells */
    int stem_multiplier; /* stem width = stem_multiplier * C (reference: 3) */
    int nops;
    int ops[DP_NAS_NUM_OPS]; /* the primitive set: alpha column k is op ops[k] */
    dp_model_shape in;
    int recompute;       /* the first `recompute` cells keep only their outputs; backward runs them again */
    int partial_channels; /* K: 1/K of each edge's channels go through the ops (0 or 1: all, DARTS) */
    int edge_norm;       /* beta weights each node's edges: 1 on, 0 off, -1 (the default) on iff K > 1 */
    int per_layer;       /* D-DARTS: every cell its own alpha (and beta); 0: a normal and a reduction alpha */
} dp_supernet_config;

/*! Whether cfg has edge normalisation (beta), edge_norm -1 resolved. */
int dp_supernet_edge_norm(const dp_supernet_config *cfg);
/*! Cell types of cfg, each with its alpha: 2, or layers with per_layer. */
int dp_supernet_types(const dp_supernet_config *cfg);

typedef struct dp_nas_mix {
    dp_nas_strategy strategy;
    float temperature;      /* T (darts: 1) */
    const float *gumbel;    /* gumbel: [types * 14 * nops] noise of this step */
    const float *mask;      /* [types * 14 * nops] 1 = op alive, 0 = pruned; NULL = all alive */
} dp_nas_mix;

typedef struct dp_supernet {
    dp_supernet_config cfg;
    dp_model *model;        /* forward(model, c, x) runs the supernet with alpha and mix */
    dp_params alpha;        /* finalized; init: zeros + 1e-3 N(0,1) by dp_supernet_init_alpha */
    int ntypes;             /* dp_supernet_types(&cfg) */
    dp_tensor *alphas[DP_NAS_MAX_CELLS]; /* [14, nops] per type, in alpha */
    dp_tensor *betas[DP_NAS_MAX_CELLS];  /* [14] per type, in alpha after them; NULL without edge normalisation */
    dp_nas_mix mix;
    dp_tensor *weights[DP_NAS_MAX_CELLS]; /* the last forward's mixing weights [14, nops] per type */
    void *impl;
} dp_supernet;

/*! The defaults: 5 cells, 8 channels, stem multiplier 3, all eight ops, no partial channels. */
void dp_supernet_config_defaults(dp_supernet_config *cfg);
/*! Builds the supernet for cfg (weights and alpha finalized, not initialised:
 *  dp_params_init(&sn->model->params, r) and dp_supernet_init_alpha). */
dp_status dp_supernet_build(const dp_supernet_config *cfg, dp_supernet **out);
void dp_supernet_free(dp_supernet *sn);
/*! alpha (and beta) = 1e-3 * N(0, 1), as the reference (and PC-DARTS). */
void dp_supernet_init_alpha(dp_supernet *sn, dp_rng *r);

/*! The supernet's forward with caller-made mixing weights w[t] [14, nops]
 *  of each type (on the tape or not) in place of those sn->mix makes
 *  from alpha. Column k of edge e in cell type t is
 *  computed when ops[k] is not none and alive[(t * 14 + e) * nops + k] != 0
 *  (alive NULL: every op). Sets sn->weights. For fixed sub-networks and for
 *  checking a strategy's gradient against a surrogate. With edge
 *  normalisation the edges are still weighted by softmax(beta), as in the
 *  supernet's own forward.
 *  @return logits [N, classes], or NULL (status in c). */
dp_tensor *dp_supernet_forward_weights(dp_supernet *sn, dp_ctx *c, dp_tensor *x, dp_tensor *const *w,
                                       const float *alive);
/*! The same with host-side weights w [types * 14 * nops], off the tape. */
dp_tensor *dp_supernet_forward_host(dp_supernet *sn, dp_ctx *c, dp_tensor *x, const float *w, const float *alive);

/*! Cost of every (cell type, edge, op column) summed over the cells of that
 *  type, per sample: out[(t * 14 + e) * nops + k], types * 14 * nops of them. op_cost(op, C, H, W,
 *  stride, user) gives one op's cost at one place; NULL = FLOPs
 *  (multiply-adds x 2 of the op's forward, dp_darts_op_flops). */
typedef double (*dp_nas_cost_fn)(int op, int C, int H, int W, int stride, void *user);
void dp_supernet_costs(const dp_supernet *sn, dp_nas_cost_fn op_cost, void *user, double *out);
/*! The expected cost sum over edges and ops of w * cost, with w the last
 *  forward's mixing weights (sn->weights: call it after this step's forward,
 *  before the context is reset), as a [1] tensor on the tape so its
 *  gradient reaches alpha. cost: [types * 14 * nops], read again by backward. */
dp_tensor *dp_supernet_expected_cost(dp_ctx *c, dp_supernet *sn, const float *cost);

/*! The reference derivation (quark0/darts model_search.py _parse) from the
 *  mixing weights w [14, nops] of each cell type (softmax(alpha) rows): per
 *  node keep the two incoming edges with the largest best non-none weight
 *  (ties: the earlier edge), and on each the best non-none op (ties: the
 *  earlier column). ops[k] names column k. DP_ERR_ARG if a row has no
 *  non-none op. */
dp_status dp_nas_derive(const float *w_normal, const float *w_reduce, const int *ops, int nops, dp_genotype *g);

/*! dp_nas_derive with edge normalisation (PC-DARTS): each edge's row of w
 *  scaled by softmax(beta) over its node's edges (beta_normal, beta_reduce:
 *  [14] each) before the edges are ranked; the op of an edge is unchanged. */
dp_status dp_nas_derive_beta(const float *w_normal, const float *w_reduce, const float *beta_normal,
                             const float *beta_reduce, const int *ops, int nops, dp_genotype *g);

/*! Either derivation for `types` cell types: w [types][14][nops], beta
 *  [types][14] or NULL (no edge normalisation); types 2 gives the shared
 *  pair, per_layer a cell per layer (g->layers = types). */
dp_status dp_nas_derive_types(const float *w, const float *beta, int types, int per_layer, const int *ops, int nops,
                              dp_genotype *g);

/*! A uniformly random genotype of the space: per node two distinct earlier
 *  states, each with a random non-none op from ops; a shared normal and
 *  reduction cell (layers 0) or a cell per layer (D-DARTS' space). */
void dp_nas_random_genotype(dp_rng *r, const int *ops, int nops, int layers, dp_genotype *g);

/*! FLOPs (multiply-adds x 2, forward, one sample) of primitive `op` on a
 *  C-channel H x W input with `stride`, including the BN after pools. */
double dp_darts_op_flops(int op, int C, int H, int W, int stride);

#ifdef __cplusplus
}
#endif
#endif
