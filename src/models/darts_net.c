/* The network a genotype describes: the reference NetworkCIFAR (quark0/darts
 * cnn/model.py) without the auxiliary head.
 *
 *   x -> stem conv 3x3 (3C, no bias) - BN -> s0 = s1
 *   cell i (reduction at layers/3 and 2 layers/3, doubling C there; its ops
 *   the genotype's normal or reduction cell, or with a cell per layer
 *   dp_genotype_layer_cell's):
 *     t0 = pre0(s0) (FactorizedReduce if cell i-1 reduced, else ReLU-1x1-BN)
 *     t1 = pre1(s1) (ReLU-1x1-BN)
 *     node k = op(2k)(t[in 2k]) + op(2k+1)(t[in 2k+1]), t[2+k] = node k;
 *              an op reading t0/t1 in a reduction cell has stride 2;
 *              in training, each non-identity op output is drop-pathed
 *     out = concat(node 0..3) (4C channels); s0, s1 = s1, out
 *   -> global average pool -> linear -> logits
 *
 * BN is affine everywhere and pools are bare, as in the reference's OPS. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/tape.h"
#include "dptrain/darts_ops.h"

enum { NPAIRS = 2 * DP_NAS_NODES };

typedef struct darts_cell {
    int reduce;
    dp_darts_pre pre0;
    dp_darts_rcb pre1;
    dp_darts_op op[NPAIRS];
    int in[NPAIRS];
} darts_cell;

typedef struct darts_net {
    dp_conv_layer stem;
    dp_bn_layer stem_bn;
    int layers;
    float drop_path;
    darts_cell *cells;
    dp_linear_layer fc;
} darts_net;

/* ---- drop-path: one keep/drop draw per sample, the survivors scaled by 1/keep ---- */

/* saved[0]: per-sample factor [N] (0 or 1/keep) */
static void drop_path_backward(dp_ctx *c, dp_node *nd)
{
    float *gx = dp_grad(c, nd->in[0]);
    if (!gx) return;
    const float *m = nd->saved[0], *dy = nd->out->grad;
    long per = nd->out->n / nd->out->shape[0];
    for (int s = 0; s < nd->out->shape[0]; s++)
        for (long i = s * per; i < (s + 1) * per; i++) gx[i] += dy[i] * m[s];
}

static dp_tensor *drop_path(dp_ctx *c, dp_tensor *x, float p)
{
    if (!x || !c->training || p <= 0.0f) return x;
    dp_tensor *y = dp_tensor_new(c, x->ndim, x->shape);
    float *m = dp_scratch(c, (size_t)x->shape[0] * sizeof(float));
    if (!y || !m) return NULL;
    const float keep = 1.0f - p;
    long per = x->n / x->shape[0];
    for (int s = 0; s < x->shape[0]; s++) {
        m[s] = dp_rng_uniform(&c->dropout_rng) < keep ? 1.0f / keep : 0.0f;
        for (long i = s * per; i < (s + 1) * per; i++) y->data[i] = x->data[i] * m[s];
    }
    dp_node *nd = dp_tape_push(c, drop_path_backward, "drop_path", y, 1, &x);
    if (nd) nd->saved[0] = m;
    return y;
}

/* ---- forward ---- */

static int is_identity(const dp_darts_op *o) { return o->kind == DP_NAS_SKIP_CONNECT && o->stride == 1; }

/* States are dp_darts_inputs so that the ops reading one state share its
 * ReLU and pools. */
static dp_tensor *cell_forward(dp_ctx *c, const darts_cell *cl, dp_tensor *s0, dp_tensor *s1, float p)
{
    dp_darts_input st[2 + DP_NAS_NODES];
    memset(st, 0, sizeof st);
    st[0].x = dp_darts_pre_forward(c, &cl->pre0, s0);
    st[1].x = dp_darts_rcb_forward(c, &cl->pre1, s1);
    dp_tensor *nodes[DP_NAS_NODES];
    for (int k = 0; k < DP_NAS_NODES; k++) {
        dp_tensor *h[2];
        for (int j = 0; j < 2; j++) {
            const dp_darts_op *o = &cl->op[2 * k + j];
            h[j] = dp_darts_op_forward_shared(c, o, &st[cl->in[2 * k + j]]);
            if (!is_identity(o)) h[j] = drop_path(c, h[j], p);
        }
        nodes[k] = st[2 + k].x = dp_add(c, h[0], h[1]);
    }
    return dp_concat(c, DP_NAS_NODES, nodes);
}

static dp_tensor *net_forward(dp_model *m, dp_ctx *c, dp_tensor *x)
{
    darts_net *n = m->impl;
    float p = n->drop_path * m->progress;
    dp_tensor *s0 = dp_nn_bn(c, &n->stem_bn, dp_nn_conv(c, &n->stem, x)), *s1 = s0;
    for (int i = 0; i < n->layers; i++) {
        dp_tensor *out = cell_forward(c, &n->cells[i], s0, s1, p);
        s0 = s1;
        s1 = out;
    }
    return dp_nn_linear(c, &n->fc, dp_global_avgpool(c, s1));
}

/* ---- build ---- */

/* flops_per_sample counts the convs and the classifier, like the reference
 * models; BN, pools and adds are left out. Multiply-adds x 2 of a conv whose
 * output is ho x wo (0 for an unused slot). */
static double conv_flops(const dp_conv_layer *l, int ho, int wo)
{
    return l->w ? 2.0 * (double)dp_shape_numel(l->w->ndim, l->w->shape) * ho * wo : 0.0;
}

static double fr_flops(const dp_darts_fr *f, int ho, int wo)
{
    return conv_flops(&f->c1, ho, wo) + conv_flops(&f->c2, ho, wo);
}

/* Every conv of a DARTS primitive writes at the op's output resolution. */
static double op_flops(const dp_darts_op *o, int ho, int wo)
{
    double f = fr_flops(&o->fr, ho, wo);
    for (int i = 0; i < 4; i++) f += conv_flops(&o->conv[i], ho, wo);
    return f;
}

static void net_free(void *impl)
{
    darts_net *n = impl;
    if (n) free(n->cells);
    free(n);
}

static dp_status check_args(const dp_genotype *g, int layers, int channels, float drop_path, const dp_model_shape *in)
{
    if (layers < 1 || layers > 1000) return dp_errorf(DP_ERR_ARG, "--layers: %d is out of range [1, 1000]", layers);
    if (channels < 1 || channels > 4096)
        return dp_errorf(DP_ERR_ARG, "--channels: %d is out of range [1, 4096]", channels);
    if (!(drop_path >= 0.0f && drop_path < 1.0f))
        return dp_errorf(DP_ERR_ARG, "--drop-path: %g is out of range [0, 1)", drop_path);
    if (in->c < 1 || in->h < 1 || in->w < 1 || in->classes < 1)
        return dp_errorf(DP_ERR_ARG, "darts: input %dx%dx%d with %d classes", in->c, in->h, in->w, in->classes);
    dp_status rc = dp_genotype_check(g);
    for (int i = 0; rc == DP_OK && i < layers; i++)
        if (dp_genotype_layer_cell(g, i, layers) < 0)
            rc = dp_errorf(DP_ERR_ARG, "--layers %d: layer %d has no cell in a genotype of %d searched cells (a stage "
                           "of normal cells it lacks)", layers, i, g->layers);
    return rc;
}

static void build_net(darts_net *n, dp_model *m, const dp_genotype *g, int C)
{
    dp_params *p = &m->params;
    int h = m->in.h, w = m->in.w;
    char name[48];
    dp_nn_conv_init(&n->stem, p, "stem.conv", m->in.c, 3 * C, 3, 1, 1, 1, 1, 0);
    dp_nn_bn_init(&n->stem_bn, p, "stem.bn", 3 * C, 1);
    double flops = conv_flops(&n->stem, h, w);
    int c_pp = 3 * C, c_p = 3 * C, c_cur = C, reduce_prev = 0;
    for (int i = 0; i < n->layers; i++) {
        darts_cell *cl = &n->cells[i];
        cl->reduce = dp_nas_layer_reduces(i, n->layers);
        if (cl->reduce) c_cur *= 2;
        const int t = dp_genotype_layer_cell(g, i, n->layers);
        const int *ops = dp_genotype_cops(g, t), *ins = dp_genotype_cins(g, t);
        snprintf(name, sizeof name, "cell%d.pre0", i);
        dp_darts_pre_init(&cl->pre0, p, name, c_pp, c_cur, reduce_prev, 1);
        snprintf(name, sizeof name, "cell%d.pre1", i);
        dp_darts_rcb_init(&cl->pre1, p, name, c_p, c_cur, 1);
        flops += reduce_prev ? fr_flops(&cl->pre0.fr, h, w) : conv_flops(&cl->pre0.rcb.conv, h, w);
        flops += conv_flops(&cl->pre1.conv, h, w);
        int ho = cl->reduce ? (h + 1) / 2 : h, wo = cl->reduce ? (w + 1) / 2 : w; /* stride 2, pad k/2 */
        for (int e = 0; e < NPAIRS; e++) {
            int stride = cl->reduce && ins[e] < 2 ? 2 : 1;
            cl->in[e] = ins[e];
            snprintf(name, sizeof name, "cell%d.op%d", i, e);
            dp_darts_op_init(&cl->op[e], p, name, ops[e], c_cur, stride, 1, 0);
            flops += op_flops(&cl->op[e], ho, wo);
        }
        reduce_prev = cl->reduce;
        c_pp = c_p, c_p = DP_NAS_NODES * c_cur;
        h = ho, w = wo;
    }
    dp_nn_linear_init(&n->fc, p, "classifier", c_p, m->in.classes, 1);
    m->flops_per_sample = flops + 2.0 * c_p * m->in.classes;
}

dp_status dp_darts_net_build(const dp_genotype *g, int layers, int channels, float drop_path,
                             const dp_model_shape *in, dp_model **out)
{
    *out = NULL;
    dp_status rc = check_args(g, layers, channels, drop_path, in);
    if (rc != DP_OK) return rc;
    dp_model *m = calloc(1, sizeof *m);
    darts_net *n = calloc(1, sizeof *n);
    darts_cell *cells = calloc((size_t)layers, sizeof *cells);
    if (!m || !n || !cells) {
        free(m), free(n), free(cells);
        return dp_errorf(DP_ERR_NOMEM, "darts: out of memory");
    }
    snprintf(m->name, sizeof m->name, "darts");
    m->in = *in;
    m->impl = n;
    m->free_impl = net_free;
    m->forward = net_forward;
    n->cells = cells;
    n->layers = layers;
    n->drop_path = drop_path;
    build_net(n, m, g, channels);
    rc = dp_params_finalize(&m->params);
    if (rc != DP_OK) {
        dp_model_free(m);
        return rc;
    }
    *out = m;
    return DP_OK;
}
