/* The DARTS search network (quark0/darts cnn/model_search.py Network) as a
 * dp_model: stem conv 3x3 + BN (the only affine BN), `layers` cells with
 * reductions at layers/3 and 2 layers/3, global average pool, linear.
 *
 * A cell: s0, s1 preprocessed to C channels (FactorizedReduce when the
 * previous cell reduced, else ReLU-conv1x1-BN); node i = sum over its edges
 * of the mixed op; out = concat(node 0..3). Every edge of a node reads the
 * same mixing-weight rows in a row, so a node is ONE dp_weighted_sum over
 * (edges x ops) members: the sum of the per-edge mixed ops in one pass.
 *
 * Per forward, the mixing weights [14, nops] of each cell type are made from
 * alpha by the strategy (supernet.h) and kept in sn->weights; an op whose
 * weight is structurally zero (none, masked, not sampled) is a NULL member,
 * i.e. not computed. ReLU(state) and the pools of a state are computed once
 * per cell and shared by its edges (dp_darts_input).
 *
 * PC-DARTS (supernet.h): with K > 1 partial channels the ops of every edge
 * read the first C/K channels of their state, and since concat and the
 * channel shuffle are linear and alike for all edges of a node, the node is
 *   shuffle_K(concat(sum_(edge j, op k) b_j w_jk op_jk(x_j[:C/K]),
 *                    sum_j b_j bypass_j(x_j[C/K:])))
 * = sum_j b_j shuffle_K(concat(mixed op j, bypass j)), the paper's per-edge
 * form, in two weighted sums. b is softmax(beta) per node with edge
 * normalisation (else 1); with it the ops' weights are w_jk b_j also at K = 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/supernet.h"
#include "dptrain/darts_ops.h"
#include "nas/strategy.h"

enum { NE = DP_NAS_EDGES, MAXW = DP_NAS_MAX_CELLS * DP_NAS_EDGES * DP_NAS_NUM_OPS };

typedef struct sn_cell {
    int reduce;
    int type;          /* its alpha: 0 normal, 1 reduce; per layer, its own */
    int C, H, W;       /* node channels; resolution of the preprocessed inputs */
    int K;             /* partial channels: the ops see C / K of them */
    int cin0, cin1;    /* channels of s0, s1 */
    dp_darts_pre pre0, pre1;
    dp_darts_op *ops;  /* [14 * nops]; a none column has no module */
    int nops;
    const unsigned char *alive; /* this cell type's row of sn_net.alive */
    dp_tensor **params; /* the cell's trainable tensors (a recomputed cell declares them) */
    int nparams;
} sn_cell;

typedef struct sn_net {
    dp_conv_layer stem;
    dp_bn_layer stem_bn;
    int ncells;
    sn_cell *cells;
    dp_linear_layer fc;
    unsigned char alive[MAXW]; /* this forward's computed ops, [types][14][nops] */
} sn_net;

/* The state edge e reads: node i's edges start at i(i+3)/2 and read states 0..i+1. */
static int edge_state(int e)
{
    static const int st[NE] = {0, 1, 0, 1, 2, 0, 1, 2, 3, 0, 1, 2, 3, 4};
    return st[e];
}

static dp_tensor *sn_fail(dp_ctx *c, dp_status s, const char *msg)
{
    if (c->status == DP_OK) c->status = dp_errorf(s, "supernet: %s", msg);
    return NULL;
}

void dp_supernet_config_defaults(dp_supernet_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->layers = 5;
    cfg->channels = 8;
    cfg->stem_multiplier = 3;
    cfg->nops = DP_NAS_NUM_OPS;
    for (int k = 0; k < DP_NAS_NUM_OPS; k++) cfg->ops[k] = k;
    cfg->in = (dp_model_shape){1, 28, 28, 10}; /* Fashion-MNIST */
    cfg->partial_channels = 1;
    cfg->edge_norm = -1;
}

int dp_supernet_types(const dp_supernet_config *cfg)
{
    return cfg->per_layer ? cfg->layers : 2;
}

int dp_supernet_edge_norm(const dp_supernet_config *cfg)
{
    return cfg->edge_norm < 0 ? cfg->partial_channels > 1 : cfg->edge_norm != 0;
}

/* ---- forward ---- */

static dp_tensor *zeros(dp_ctx *c, int N, int C, int H, int W)
{
    dp_tensor *t = dp_tensor_new(c, 4, (int[]){N, C, H, W});
    if (t) memset(t->data, 0, (size_t)t->n * sizeof(float));
    return t;
}

static dp_tensor *ones(dp_ctx *c, int rows, int cols)
{
    dp_tensor *t = dp_tensor_new(c, 2, (int[]){rows, cols});
    for (long i = 0; t && i < t->n; i++) t->data[i] = 1.0f;
    return t;
}

/* State j's channels [C/K, C), which bypass the ops: max-pooled to the
 * stride-2 ops' size where its edges reduce (the inputs of a reduction cell). */
static dp_tensor *bypass(dp_ctx *c, const sn_cell *cl, dp_tensor *x, int j)
{
    dp_tensor *rest = dp_slice(c, x, cl->C / cl->K, cl->C);
    return cl->reduce && j < 2 ? dp_maxpool2d(c, rest, 3, 2, 1) : rest;
}

/* w [14, nops] of this cell's type; eb [1, 14] the edges' weights (partial
 * channels only, else NULL); alive [14 * nops] */
static dp_tensor *cell_forward(dp_ctx *c, const sn_cell *cl, int nops, dp_tensor *s0, dp_tensor *s1, dp_tensor *w,
                               dp_tensor *eb, const unsigned char *alive)
{
    dp_darts_input st[2 + DP_NAS_NODES], part[2 + DP_NAS_NODES]; /* part: the ops' C/K channels of a state */
    dp_tensor *byp[2 + DP_NAS_NODES];
    memset(st, 0, sizeof st);
    memset(part, 0, sizeof part);
    memset(byp, 0, sizeof byp);
    st[0].x = dp_darts_pre_forward(c, &cl->pre0, s0);
    st[1].x = dp_darts_pre_forward(c, &cl->pre1, s1);
    if (!st[0].x || !st[1].x) return NULL;
    const int K = cl->K, Cp = cl->C / K;
    dp_tensor *xs[(DP_NAS_NODES + 1) * DP_NAS_NUM_OPS];
    for (int i = 0, e0 = 0; i < DP_NAS_NODES; e0 += i + 2, i++) {
        int any = 0;
        for (int j = 0; j < i + 2; j++) {
            dp_darts_input *in = &st[j];
            if (K > 1) {
                in = &part[j];
                if (!byp[j]) byp[j] = bypass(c, cl, st[j].x, j);
            }
            for (int k = 0; k < nops; k++) {
                const int ek = (e0 + j) * nops + k;
                if (alive[ek] && !in->x) in->x = dp_slice(c, st[j].x, 0, Cp);
                xs[j * nops + k] = alive[ek] ? dp_darts_op_forward_shared(c, &cl->ops[ek], in) : NULL;
                any |= alive[ek];
            }
        }
        if (c->status != DP_OK) return NULL;
        const int H = cl->reduce ? (cl->H + 1) / 2 : cl->H, W = cl->reduce ? (cl->W + 1) / 2 : cl->W;
        st[2 + i].x = any ? dp_weighted_sum(c, (i + 2) * nops, xs, w, (long)e0 * nops)
                          : zeros(c, s1->shape[0], Cp, H, W);
        if (K > 1 && st[2 + i].x) {
            dp_tensor *halves[2] = {st[2 + i].x, dp_weighted_sum(c, i + 2, byp, eb, e0)};
            st[2 + i].x = halves[1] ? dp_channel_shuffle(c, dp_concat(c, 2, halves), K) : NULL;
        }
        if (!st[2 + i].x) return NULL;
    }
    dp_tensor *nodes[DP_NAS_NODES] = {st[2].x, st[3].x, st[4].x, st[5].x};
    return dp_concat(c, DP_NAS_NODES, nodes);
}

/* in: s0, s1, w, and eb with partial channels */
static dp_tensor *cell_segment(dp_ctx *c, void *user, dp_tensor **in)
{
    const sn_cell *cl = user;
    return cell_forward(c, cl, cl->nops, in[0], in[1], in[2], cl->K > 1 ? in[3] : NULL, cl->alive);
}

/* [1, 14]: softmax of beta [14] over each node's incoming edges */
static dp_tensor *edge_weights(dp_ctx *c, dp_tensor *beta)
{
    dp_tensor *b = dp_reshape(c, beta, 2, (int[]){1, NE}), *parts[DP_NAS_NODES];
    for (int i = 0, e0 = 0; i < DP_NAS_NODES; e0 += i + 2, i++)
        parts[i] = dp_softmax(c, dp_slice(c, b, e0, e0 + i + 2), 1.0f);
    return dp_concat(c, DP_NAS_NODES, parts);
}

static dp_tensor *net_forward(dp_supernet *sn, dp_ctx *c, dp_tensor *x)
{
    sn_net *net = sn->impl;
    const int nops = sn->cfg.nops, partial = sn->cfg.partial_channels > 1;
    dp_tensor *w[DP_NAS_MAX_CELLS], *eb[DP_NAS_MAX_CELLS];
    for (int t = 0; t < sn->ntypes; t++) {
        w[t] = sn->weights[t], eb[t] = NULL;
        if (sn->betas[0]) { /* the ops' weights w_jk b_j: b_j's outer product with a row of ones */
            eb[t] = edge_weights(c, sn->betas[t]);
            w[t] = dp_mul(c, dp_reshape(c, w[t], 2, (int[]){NE, nops}), dp_matmul(c, eb[t], ones(c, 1, nops), 1, 0));
        } else if (partial) {
            eb[t] = ones(c, 1, NE);
        }
        if (!w[t] || (partial && !eb[t])) return NULL;
    }
    dp_tensor *s0 = dp_nn_bn(c, &net->stem_bn, dp_nn_conv(c, &net->stem, x)), *s1 = s0;
    for (int i = 0; s1 && i < net->ncells; i++) {
        sn_cell *cl = &net->cells[i];
        dp_tensor *in[4] = {s0, s1, w[cl->type], eb[cl->type]};
        const int nin = partial ? 4 : 3;
        dp_tensor *out = i < sn->cfg.recompute ? dp_recompute(c, cell_segment, cl, nin, in, cl->nparams, cl->params)
                                               : cell_segment(c, cl, in);
        s0 = s1;
        s1 = out;
    }
    return dp_nn_linear(c, &net->fc, dp_global_avgpool(c, s1));
}

dp_tensor *dp_supernet_forward_weights(dp_supernet *sn, dp_ctx *c, dp_tensor *x, dp_tensor *const *w,
                                       const float *alive)
{
    if (!x) return NULL;
    const int nops = sn->cfg.nops;
    for (int t = 0; t < sn->ntypes; t++) {
        if (!w[t]) return NULL;
        if (w[t]->n != NE * nops) return sn_fail(c, DP_ERR_SHAPE, "mixing weights must have 14 x nops elements each");
        sn->weights[t] = w[t];
    }
    sn_net *net = sn->impl;
    for (int i = 0; i < sn->ntypes * NE * nops; i++)
        net->alive[i] = sn->cfg.ops[i % nops] != DP_NAS_NONE && (!alive || alive[i] != 0.0f);
    return net_forward(sn, c, x);
}

dp_tensor *dp_supernet_forward_host(dp_supernet *sn, dp_ctx *c, dp_tensor *x, const float *w, const float *alive)
{
    const int shape[2] = {NE, sn->cfg.nops};
    dp_tensor *wt[DP_NAS_MAX_CELLS];
    for (int t = 0; t < sn->ntypes; t++) wt[t] = dp_tensor_wrap(c, (float *)w + (size_t)t * NE * sn->cfg.nops, 2, shape);
    return dp_supernet_forward_weights(sn, c, x, wt, alive);
}

static dp_tensor *supernet_forward(dp_model *m, dp_ctx *c, dp_tensor *x)
{
    dp_supernet *sn = m->impl;
    sn_net *net = sn->impl;
    const int nops = sn->cfg.nops;
    if (!x) return NULL;
    const nas_strategy *st = nas_strategy_of(sn->mix.strategy);
    if (!st) return sn_fail(c, DP_ERR_ARG, "unknown mixing strategy");
    for (int t = 0; t < sn->ntypes; t++) /* [14, nops] rows of alpha t, off: their place in gumbel and mask */
        if (!(sn->weights[t] = st->mix(c, &sn->mix, sn->alphas[t], (long)t * NE * nops))) return NULL;
    const float *mask = sn->mix.mask;
    const int sampled = st->sampled; /* only the sampled op of an edge is computed */
    for (int i = 0; i < sn->ntypes * NE * nops; i++)
        net->alive[i] = sn->cfg.ops[i % nops] != DP_NAS_NONE && (!mask || mask[i] != 0.0f) &&
                        (!sampled || sn->weights[i / (NE * nops)]->data[i % (NE * nops)] != 0.0f);
    return net_forward(sn, c, x);
}

/* ---- costs ---- */

static double flops_cost(int op, int C, int H, int W, int stride, void *user)
{
    (void)user;
    return dp_darts_op_flops(op, C, H, W, stride);
}

void dp_supernet_costs(const dp_supernet *sn, dp_nas_cost_fn op_cost, void *user, double *out)
{
    const sn_net *net = sn->impl;
    const int nops = sn->cfg.nops;
    if (!op_cost) op_cost = flops_cost;
    memset(out, 0, (size_t)sn->ntypes * NE * nops * sizeof *out);
    for (int i = 0; i < net->ncells; i++) {
        const sn_cell *cl = &net->cells[i];
        for (int e = 0; e < NE; e++) {
            const int from_input = edge_state(e) < 2, stride = cl->reduce && from_input ? 2 : 1;
            const int H = cl->reduce && !from_input ? (cl->H + 1) / 2 : cl->H;
            const int W = cl->reduce && !from_input ? (cl->W + 1) / 2 : cl->W;
            for (int k = 0; k < nops; k++)
                out[(cl->type * NE + e) * nops + k] += op_cost(sn->cfg.ops[k], cl->C, H, W, stride, user);
        }
    }
}

dp_tensor *dp_supernet_expected_cost(dp_ctx *c, dp_supernet *sn, const float *cost)
{
    const int n = NE * sn->cfg.nops;
    dp_tensor *xs[NE * DP_NAS_NUM_OPS], *sum = NULL;
    for (int t = 0; t < sn->ntypes; t++) {
        if (!sn->weights[t]) return sn_fail(c, DP_ERR_ARG, "expected cost before any forward");
        for (int i = 0; i < n; i++) xs[i] = dp_tensor_wrap(c, (float *)cost + t * n + i, 1, (int[]){1});
        dp_tensor *part = dp_weighted_sum(c, n, xs, sn->weights[t], 0);
        sum = t ? dp_add(c, sum, part) : part;
    }
    return sum;
}

/* ---- build ---- */

static dp_status check_config(const dp_supernet_config *cfg)
{
    if (cfg->layers < 1 || cfg->stem_multiplier < 1)
        return dp_errorf(DP_ERR_ARG, "supernet: %d layers, stem multiplier %d (need >= 1)", cfg->layers,
                         cfg->stem_multiplier);
    if (cfg->per_layer && cfg->layers > DP_NAS_MAX_CELLS)
        return dp_errorf(DP_ERR_ARG, "supernet: --cell-per-layer with %d layers (a genotype holds at most %d cells)",
                         cfg->layers, DP_NAS_MAX_CELLS);
    if (cfg->channels < 2 || cfg->channels % 2)
        return dp_errorf(DP_ERR_ARG, "supernet: %d channels (need an even number >= 2: FactorizedReduce halves it)",
                         cfg->channels);
    if (cfg->nops < 1 || cfg->nops > DP_NAS_NUM_OPS)
        return dp_errorf(DP_ERR_ARG, "supernet: %d ops (1..%d)", cfg->nops, DP_NAS_NUM_OPS);
    const int K = cfg->partial_channels;
    if (K < 0 || K > 64)
        return dp_errorf(DP_ERR_ARG, "supernet: --partial-channels %d is out of range [1, 64]", K);
    if (K > 1 && cfg->channels % (2 * K))
        return dp_errorf(DP_ERR_ARG, "supernet: --partial-channels %d needs --channels divisible by %d (the ops' "
                         "C/K channels must be even: FactorizedReduce halves them); %d is not", K, 2 * K,
                         cfg->channels);
    if (cfg->edge_norm < -1 || cfg->edge_norm > 1)
        return dp_errorf(DP_ERR_ARG, "supernet: edge normalisation %d (1 on, 0 off, -1 with partial channels)",
                         cfg->edge_norm);
    int seen = 0, real = 0;
    for (int k = 0; k < cfg->nops; k++) {
        const int op = cfg->ops[k];
        if (op < 0 || op >= DP_NAS_NUM_OPS || (seen >> op & 1))
            return dp_errorf(DP_ERR_ARG, "supernet: op column %d is %d (unknown or repeated)", k, op);
        seen |= 1 << op;
        real |= op != DP_NAS_NONE;
    }
    if (!real) return dp_errorf(DP_ERR_ARG, "supernet: the op set holds nothing but none");
    const dp_model_shape *in = &cfg->in;
    if (in->c < 1 || in->h < 1 || in->w < 1 || in->classes < 1)
        return dp_errorf(DP_ERR_ARG, "supernet: input %dx%dx%d, %d classes", in->c, in->h, in->w, in->classes);
    return DP_OK;
}

static dp_status build_cells(dp_supernet *sn, sn_net *net, dp_params *p, int *c_last)
{
    const dp_supernet_config *cfg = &sn->cfg;
    char nm[64];
    int cpp = cfg->stem_multiplier * cfg->channels, cp = cpp, ccur = cfg->channels, red_prev = 0;
    int H = cfg->in.h, W = cfg->in.w;
    for (int i = 0; i < cfg->layers; i++) {
        sn_cell *cl = &net->cells[i];
        const int red = dp_nas_layer_reduces(i, cfg->layers);
        if (red) ccur *= 2;
        const int K = cfg->partial_channels > 1 ? cfg->partial_channels : 1;
        *cl = (sn_cell){.reduce = red, .type = cfg->per_layer ? i : red, .C = ccur, .H = H, .W = W, .K = K,
                        .cin0 = cpp, .cin1 = cp};
        const int item0 = p->count;
        snprintf(nm, sizeof nm, "cell%d.pre0", i);
        dp_darts_pre_init(&cl->pre0, p, nm, cpp, ccur, red_prev, 0);
        snprintf(nm, sizeof nm, "cell%d.pre1", i);
        dp_darts_pre_init(&cl->pre1, p, nm, cp, ccur, 0, 0);
        cl->ops = calloc((size_t)NE * cfg->nops, sizeof *cl->ops);
        if (!cl->ops) return dp_errorf(DP_ERR_NOMEM, "supernet: out of memory");
        cl->nops = cfg->nops;
        cl->alive = net->alive + cl->type * NE * cfg->nops;
        for (int e = 0; e < NE; e++) {
            const int stride = cl->reduce && edge_state(e) < 2 ? 2 : 1;
            for (int k = 0; k < cfg->nops; k++) {
                dp_darts_op *o = &cl->ops[e * cfg->nops + k];
                o->kind = cfg->ops[k];
                if (o->kind == DP_NAS_NONE) continue;
                snprintf(nm, sizeof nm, "cell%d.edge%d.%s", i, e, dp_nas_op_name(o->kind));
                dp_darts_op_init(o, p, nm, o->kind, ccur / K, stride, 0, 1);
            }
        }
        /* the cell's trainable tensors: what the registry gained since item0 */
        cl->params = malloc((size_t)(p->count - item0 + 1) * sizeof *cl->params);
        if (!cl->params) return dp_errorf(DP_ERR_NOMEM, "supernet: out of memory");
        for (int k = item0; k < p->count; k++)
            if (!p->items[k]->is_buffer) cl->params[cl->nparams++] = &p->items[k]->t;
        red_prev = cl->reduce;
        cpp = cp;
        cp = DP_NAS_NODES * ccur;
        if (cl->reduce) H = (H + 1) / 2, W = (W + 1) / 2;
    }
    *c_last = cp;
    return DP_OK;
}

/* Forward FLOPs per sample with every op computed (supernet.h's convention),
 * at full width whatever the partial channels: the search reads the fixed
 * part (stem, preprocessing, sums, head) of the derived network from it. */
static double supernet_flops(const dp_supernet *sn)
{
    const sn_net *net = sn->impl;
    const dp_supernet_config *cfg = &sn->cfg;
    const double P0 = (double)cfg->in.h * cfg->in.w, cs = (double)cfg->stem_multiplier * cfg->channels;
    double f = 2.0 * cfg->in.c * cs * 9.0 * P0 + 2.0 * cs * P0;
    int real = 0;
    for (int k = 0; k < cfg->nops; k++) real += cfg->ops[k] != DP_NAS_NONE;
    double Po = P0;
    for (int i = 0; i < net->ncells; i++) {
        const sn_cell *cl = &net->cells[i];
        const double P = (double)cl->H * cl->W;
        Po = cl->reduce ? (double)((cl->H + 1) / 2) * ((cl->W + 1) / 2) : P;
        f += 2.0 * (cl->cin0 + cl->cin1 + 2.0) * cl->C * P; /* two 1x1 convs + BNs */
        f += 2.0 * real * NE * cl->C * Po;                 /* the weighted sums */
    }
    const double cp = (double)DP_NAS_NODES * net->cells[net->ncells - 1].C;
    double *cost = malloc((size_t)sn->ntypes * NE * cfg->nops * sizeof *cost);
    if (cost) {
        dp_supernet_costs(sn, NULL, NULL, cost);
        for (int i = 0; i < sn->ntypes * NE * cfg->nops; i++) f += cost[i];
        free(cost);
    }
    return f + cp * Po + 2.0 * cp * cfg->in.classes;
}

dp_status dp_supernet_build(const dp_supernet_config *cfg, dp_supernet **out)
{
    *out = NULL;
    dp_status rc = check_config(cfg);
    if (rc != DP_OK) return rc;
    dp_supernet *sn = calloc(1, sizeof *sn);
    sn_net *net = calloc(1, sizeof *net);
    dp_model *m = calloc(1, sizeof *m);
    sn_cell *cells = calloc((size_t)cfg->layers, sizeof *cells);
    if (sn) sn->impl = net, sn->model = m;
    if (net) net->cells = cells, net->ncells = cfg->layers;
    if (!sn || !net || !m || !cells) {
        rc = dp_errorf(DP_ERR_NOMEM, "supernet: out of memory");
        goto err;
    }
    sn->cfg = *cfg;
    sn->ntypes = dp_supernet_types(cfg);
    sn->mix = (dp_nas_mix){.strategy = DP_NAS_DARTS, .temperature = 1.0f};
    strncpy(m->name, "darts_supernet", sizeof m->name - 1);
    m->in = cfg->in;
    m->impl = sn;
    m->forward = supernet_forward;

    const int cs = cfg->stem_multiplier * cfg->channels;
    dp_nn_conv_init(&net->stem, &m->params, "stem.conv", cfg->in.c, cs, 3, 1, 1, 1, 1, 0);
    dp_nn_bn_init(&net->stem_bn, &m->params, "stem.bn", cs, 1);
    int c_last = 0;
    if ((rc = build_cells(sn, net, &m->params, &c_last)) != DP_OK) goto err;
    dp_nn_linear_init(&net->fc, &m->params, "classifier", c_last, cfg->in.classes, 1);
    if ((rc = dp_params_finalize(&m->params)) != DP_OK) goto err;

    /* alphas, then betas, in type order (the names of a shared pair are those of checkpoints before per-layer cells) */
    const int as[2] = {NE, cfg->nops};
    char nm[32];
    for (int b = 0; b < 1 + dp_supernet_edge_norm(cfg); b++)
        for (int t = 0; t < sn->ntypes; t++) {
            if (cfg->per_layer) snprintf(nm, sizeof nm, "%s_cell%d", b ? "beta" : "alpha", t);
            else snprintf(nm, sizeof nm, "%s_%s", b ? "beta" : "alpha", t ? "reduce" : "normal");
            if (b) sn->betas[t] = dp_params_add(&sn->alpha, nm, 1, (int[]){NE}, DP_INIT_ZERO, NE, NE);
            else sn->alphas[t] = dp_params_add(&sn->alpha, nm, 2, as, DP_INIT_ZERO, cfg->nops, cfg->nops);
        }
    if ((rc = dp_params_finalize(&sn->alpha)) != DP_OK) goto err;
    m->flops_per_sample = supernet_flops(sn);
    *out = sn;
    return DP_OK;
err:
    if (!net) free(cells);
    if (sn) {
        dp_supernet_free(sn);
    } else {
        free(net ? net->cells : NULL);
        free(net);
        free(m);
    }
    return rc;
}

void dp_supernet_free(dp_supernet *sn)
{
    if (!sn) return;
    sn_net *net = sn->impl;
    if (net) {
        for (int i = 0; net->cells && i < net->ncells; i++) {
            free(net->cells[i].ops);
            free(net->cells[i].params);
        }
        free(net->cells);
        free(net);
    }
    dp_model_free(sn->model);
    dp_params_free(&sn->alpha);
    free(sn);
}

void dp_supernet_init_alpha(dp_supernet *sn, dp_rng *r)
{
    dp_init_normal(r, sn->alpha.data, sn->alpha.n, 0.0f, 1e-3f);
}
