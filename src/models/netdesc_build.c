/* Network descriptions -> models: shape inference from the input, parameters declared in use order through
 * the nn.h modules (body before shortcut, as PyTorch's state_dict), and a forward over the core ops.
 *
 * Every size is checked here in 64-bit arithmetic before anything is declared: a tensor or weight past
 * INT_MAX floats is refused with the layer's path, as is any shape a layer cannot take. */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/netdesc.h"
#include "models/netdesc_internal.h"

/* A per-sample shape: [F] (ndim 1) or [C, H, W] (ndim 3). */
typedef struct nd_shape {
    int ndim;
    long d[3];
} nd_shape;

typedef struct nd_node {
    nd_kind kind;
    dp_conv_layer conv;
    dp_bn_layer bn;
    dp_linear_layer lin;
    int k, s, pad;      /* pools */
    float p;            /* dropout */
    int pool_then_relu; /* relu directly followed by a maxpool: they commute, and pooling first runs the
                           ReLU on a fraction of the cells (the node after it is then skipped) */
    int add_then_relu;  /* residual directly followed by a relu (not one that pools first): dp_add_relu */
    int bn_then_relu;   /* batchnorm directly followed by a relu (not one that pools first): one fused op,
                           dp_nn_bn_relu, the same bits (the relu node is then skipped) */
    struct nd_node *body;
    int nbody;
    int proj;           /* residual: 1x1 conv + batchnorm shortcut (else identity) */
    dp_conv_layer sc_conv;
    dp_bn_layer sc_bn;
} nd_node;

typedef struct nd_net {
    nd_node *nodes;
    int n;
    dp_netdesc_row *rows;
    int nrows, caprows;
} nd_net;

typedef struct bctx {
    const char *source;
    dp_params *p;
    int classes;
    nd_net *net;
    long params, buffers; /* declared so far */
    double flops;
} bctx;

static void shape_str(const nd_shape *s, char *buf, size_t n)
{
    if (s->ndim == 1) snprintf(buf, n, "[N, %ld]", s->d[0]);
    else snprintf(buf, n, "[N, %ld, %ld, %ld]", s->d[0], s->d[1], s->d[2]);
}

#define misfit(b, l, ...) nd_errorf(DP_ERR_SHAPE, (b)->source, (l)->path, __VA_ARGS__)

/* a * b * ... within INT_MAX (the tensors' int shapes and the registry's int dims), else 0. */
static int product_ok(int n, const long *f, long *out)
{
    int64_t r = 1;
    for (int i = 0; i < n; i++)
        if (f[i] < 0 || __builtin_mul_overflow(r, (int64_t)f[i], &r) || r > INT_MAX) return 0;
    *out = (long)r;
    return 1;
}

static dp_status numel_ok(const bctx *b, const nd_layer *l, const nd_shape *s, const char *what)
{
    long n;
    char t[96];
    shape_str(s, t, sizeof t);
    if (!product_ok(s->ndim, s->d, &n))
        return misfit(b, l, "%s %s has more than %d values per sample (too large)", what, t, INT_MAX);
    return DP_OK;
}

static dp_status pname(const bctx *b, const nd_layer *l, char *buf, size_t n, const char *prefix, const char *name)
{
    /* the longest leaf, ".running_mean", must fit dp_param's 64-byte name too */
    int len = snprintf(buf, n, "%s%s", prefix, name);
    if (len < 0 || (size_t)len >= n || len + 13 >= 64)
        return misfit(b, l, "parameter name '%s%s' is longer than %d characters", prefix, name, 64 - 14);
    return DP_OK;
}

static dp_netdesc_row *row_add(bctx *b, const char *name, const char *type, int depth)
{
    nd_net *net = b->net;
    if (net->nrows == net->caprows) return NULL; /* sized up front; never reached */
    dp_netdesc_row *r = &net->rows[net->nrows++];
    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "%.63s", name);
    snprintf(r->type, sizeof r->type, "%s", type);
    r->depth = depth;
    return r;
}

/* What was declared since `since` (a copy of b's counters) is the row's, and s its output. */
static void row_done(dp_netdesc_row *r, const nd_shape *s, const bctx *b, const bctx *since)
{
    if (!r) return;
    r->ndim = s->ndim;
    memcpy(r->shape, s->d, sizeof r->shape);
    r->params = b->params - since->params;
    r->buffers = b->buffers - since->buffers;
    r->flops = b->flops - since->flops;
}

/* Output side of a window of k (spread by dilation) over n cells padded by pad each side, or -1. */
static long window_out(long n, long k, long stride, long pad, long dilation)
{
    int64_t span = (int64_t)dilation * (k - 1) + 1, room = (int64_t)n + 2 * (int64_t)pad;
    if (span > room) return -1;
    return (long)((room - span) / stride + 1);
}

static dp_status build_conv(bctx *b, const nd_layer *l, const char *name, nd_shape *s, nd_node *nd)
{
    char t[96];
    shape_str(s, t, sizeof t);
    if (s->ndim != 3) return misfit(b, l, "input %s is not [N, C, H, W]", t);
    long cin = s->d[0], cout = l->out, k = l->kernel;
    if (cin % l->groups || cout % l->groups)
        return misfit(b, l, "groups %d does not divide the input channels %ld and the output channels %ld (input %s)",
                      l->groups, cin, cout, t);
    long ho = window_out(s->d[1], k, l->stride, l->padding, l->dilation);
    long wo = window_out(s->d[2], k, l->stride, l->padding, l->dilation);
    if (ho < 1 || wo < 1)
        return misfit(b, l, "kernel %ld (dilation %d) is larger than the input %s padded by %d", k, l->dilation, t,
                      l->padding);
    long wn, f[4] = {cout, cin / l->groups, k, k};
    if (!product_ok(4, f, &wn) || l->padding > INT_MAX / 2)
        return misfit(b, l, "weight [%ld, %ld, %ld, %ld] is too large (more than %d values)", cout, cin / l->groups, k,
                      k, INT_MAX);
    nd_shape o = {3, {cout, ho, wo}};
    dp_status rc = numel_ok(b, l, &o, "output");
    if (rc != DP_OK) return rc;
    dp_nn_conv_init(&nd->conv, b->p, name, (int)cin, (int)cout, (int)k, l->stride, l->padding, l->dilation, l->groups,
                    l->bias);
    b->params += wn + (l->bias ? cout : 0);
    b->flops += 2.0 * (double)ho * (double)wo * (double)wn;
    *s = o;
    return DP_OK;
}

static dp_status build_bn(bctx *b, const nd_layer *l, const char *name, const nd_shape *s, nd_node *nd)
{
    dp_nn_bn_init(&nd->bn, b->p, name, (int)s->d[0], l->affine);
    nd->bn.eps = l->eps;
    nd->bn.momentum = l->momentum;
    b->params += l->affine ? 2 * s->d[0] : 0;
    b->buffers += 2 * s->d[0];
    return DP_OK;
}

static dp_status build_pool(bctx *b, const nd_layer *l, nd_shape *s, nd_node *nd)
{
    char t[96];
    shape_str(s, t, sizeof t);
    if (s->ndim != 3) return misfit(b, l, "input %s is not [N, C, H, W]", t);
    long ho = window_out(s->d[1], l->kernel, l->stride, l->padding, 1);
    long wo = window_out(s->d[2], l->kernel, l->stride, l->padding, 1);
    if (ho < 1 || wo < 1) return misfit(b, l, "kernel %d is larger than the input %s padded by %d", l->kernel, t, l->padding);
    nd->k = l->kernel;
    nd->s = l->stride;
    nd->pad = l->padding;
    s->d[1] = ho;
    s->d[2] = wo;
    return DP_OK;
}

static dp_status build_linear(bctx *b, const nd_layer *l, const char *name, nd_shape *s, nd_node *nd)
{
    char t[96];
    shape_str(s, t, sizeof t);
    if (s->ndim != 1) return misfit(b, l, "input %s is not [N, F] (put a flatten or global_avgpool before it)", t);
    long in = s->d[0], out = l->out == ND_CLASSES ? b->classes : l->out, wn, f[2] = {out, in};
    if (!product_ok(2, f, &wn))
        return misfit(b, l, "weight [%ld, %ld] is too large (more than %d values)", out, in, INT_MAX);
    dp_nn_linear_init(&nd->lin, b->p, name, (int)in, (int)out, l->bias);
    b->params += wn + (l->bias ? out : 0);
    b->flops += 2.0 * (double)wn;
    s->d[0] = out;
    return DP_OK;
}

static dp_status build_list(bctx *b, const nd_layer *ls, int n, const char *prefix, int depth, nd_shape *s,
                            nd_node **out);

/* The stride of a 1x1 conv that takes [C, H, W] to the body's H' x W', or 0. */
static int shortcut_stride(const nd_shape *in, const nd_shape *out)
{
    for (long st = 1; st <= in->d[1] && st <= in->d[2]; st++)
        if ((in->d[1] - 1) / st + 1 == out->d[1] && (in->d[2] - 1) / st + 1 == out->d[2]) return (int)st;
    return 0;
}

static dp_status build_residual(bctx *b, const nd_layer *l, const char *name, int depth, nd_shape *s, nd_node *nd,
                                dp_netdesc_row *row)
{
    char pre[96], t_in[96], t_out[96];
    bctx since = *b;
    snprintf(pre, sizeof pre, "%s.body.", name);
    nd_shape in = *s;
    dp_status rc = build_list(b, l->body, l->nbody, pre, depth + 1, s, &nd->body);
    nd->nbody = l->nbody;
    if (rc != DP_OK) return rc;
    shape_str(&in, t_in, sizeof t_in);
    shape_str(s, t_out, sizeof t_out);
    int same = in.ndim == s->ndim && !memcmp(in.d, s->d, sizeof in.d);
    if (!same) {
        if (in.ndim != 3 || s->ndim != 3)
            return misfit(b, l, "the body maps %s to %s: a projection shortcut needs [N, C, H, W] on both sides", t_in,
                          t_out);
        int st = shortcut_stride(&in, s);
        if (!st)
            return misfit(b, l, "the body maps %s to %s: no 1x1 convolution stride takes %ldx%ld to %ldx%ld", t_in,
                          t_out, in.d[1], in.d[2], s->d[1], s->d[2]);
        char cn[64], bn[64];
        nd_layer sc = *l;
        snprintf(sc.path, sizeof sc.path, "%.*s shortcut", (int)sizeof sc.path - 10, l->path); /* room for the suffix */
        rc = pname(b, &sc, cn, sizeof cn, name, ".shortcut.0");
        if (rc == DP_OK) rc = pname(b, &sc, bn, sizeof bn, name, ".shortcut.1");
        if (rc != DP_OK) return rc;
        char rn[80];
        snprintf(rn, sizeof rn, "%.54s.shortcut", name); /* pname kept name under 51 characters */
        dp_netdesc_row *r = row_add(b, rn, "shortcut", depth + 1);
        long wn, f[2] = {s->d[0], in.d[0]};
        if (!product_ok(2, f, &wn)) return misfit(b, &sc, "1x1 weight [%ld, %ld] is too large", f[0], f[1]);
        bctx sc_since = *b;
        dp_nn_conv_init(&nd->sc_conv, b->p, cn, (int)in.d[0], (int)s->d[0], 1, st, 0, 1, 1, 0);
        dp_nn_bn_init(&nd->sc_bn, b->p, bn, (int)s->d[0], 1);
        b->params += wn + 2 * s->d[0];
        b->buffers += 2 * s->d[0];
        b->flops += 2.0 * (double)wn * (double)s->d[1] * (double)s->d[2];
        nd->proj = 1;
        row_done(r, s, b, &sc_since);
    }
    row_done(row, s, b, &since);
    return DP_OK;
}

static dp_status build_layer(bctx *b, const nd_layer *l, const char *prefix, int depth, nd_shape *s, nd_node *nd)
{
    char name[64];
    dp_status rc = pname(b, l, name, sizeof name, prefix, l->name);
    if (rc != DP_OK) return rc;
    dp_netdesc_row *row = row_add(b, name, nd_kind_names[l->kind], depth);
    bctx since = *b;
    nd->kind = l->kind;
    char t[96];
    shape_str(s, t, sizeof t);
    switch (l->kind) {
    case ND_CONV: rc = build_conv(b, l, name, s, nd); break;
    case ND_BATCHNORM: rc = build_bn(b, l, name, s, nd); break;
    case ND_MAXPOOL:
    case ND_AVGPOOL: rc = build_pool(b, l, s, nd); break;
    case ND_GLOBAL_AVGPOOL:
        if (s->ndim != 3) return misfit(b, l, "input %s is not [N, C, H, W]", t);
        s->ndim = 1;
        break;
    case ND_FLATTEN:
        if (s->ndim == 3) *s = (nd_shape){1, {s->d[0] * s->d[1] * s->d[2], 0, 0}};
        break;
    case ND_LINEAR: rc = build_linear(b, l, name, s, nd); break;
    case ND_DROPOUT: nd->p = l->p; break;
    case ND_RESIDUAL: return build_residual(b, l, name, depth, s, nd, row);
    default: break; /* activations keep the shape */
    }
    if (rc != DP_OK) return rc;
    row_done(row, s, b, &since);
    return DP_OK;
}

static dp_status build_list(bctx *b, const nd_layer *ls, int n, const char *prefix, int depth, nd_shape *s,
                            nd_node **out)
{
    nd_node *ns = calloc((size_t)n, sizeof *ns);
    *out = ns;
    if (!ns) return dp_errorf(DP_ERR_NOMEM, "%s: out of memory", b->source);
    for (int i = 0; i < n; i++) {
        dp_status rc = build_layer(b, &ls[i], prefix, depth, s, &ns[i]);
        if (rc != DP_OK) return rc;
        ns[i].pool_then_relu = ls[i].kind == ND_RELU && i + 1 < n && ls[i + 1].kind == ND_MAXPOOL;
    }
    for (int i = 0; i + 1 < n; i++) {
        const int relu_next = ls[i + 1].kind == ND_RELU && !ns[i + 1].pool_then_relu;
        ns[i].bn_then_relu = ls[i].kind == ND_BATCHNORM && relu_next;
        ns[i].add_then_relu = ls[i].kind == ND_RESIDUAL && relu_next;
    }
    return DP_OK;
}

static dp_tensor *run_list(dp_ctx *c, const nd_node *ns, int n, dp_tensor *x)
{
    for (int i = 0; i < n && x; i++) {
        const nd_node *nd = &ns[i];
        switch (nd->kind) {
        case ND_CONV: x = dp_nn_conv(c, &nd->conv, x); break;
        case ND_BATCHNORM:
            if (nd->bn_then_relu) {
                x = dp_nn_bn_relu(c, &nd->bn, x);
                i++;
            } else {
                x = dp_nn_bn(c, &nd->bn, x);
            }
            break;
        case ND_RELU:
            if (nd->pool_then_relu) {
                const nd_node *pool = &ns[++i];
                x = dp_maxpool2d(c, x, pool->k, pool->s, pool->pad);
            }
            x = dp_relu(c, x);
            break;
        case ND_GELU: x = dp_gelu(c, x); break;
        case ND_TANH: x = dp_tanh(c, x); break;
        case ND_SIGMOID: x = dp_sigmoid(c, x); break;
        case ND_MAXPOOL: x = dp_maxpool2d(c, x, nd->k, nd->s, nd->pad); break;
        case ND_AVGPOOL: x = dp_avgpool2d(c, x, nd->k, nd->s, nd->pad); break;
        case ND_GLOBAL_AVGPOOL: x = dp_global_avgpool(c, x); break;
        case ND_FLATTEN: x = x->ndim > 2 ? dp_flatten(c, x) : x; break;
        case ND_LINEAR: x = dp_nn_linear(c, &nd->lin, x); break;
        case ND_DROPOUT: x = dp_dropout(c, x, nd->p); break;
        case ND_RESIDUAL: {
            dp_tensor *y = run_list(c, nd->body, nd->nbody, x);
            dp_tensor *sc = nd->proj ? dp_nn_bn(c, &nd->sc_bn, dp_nn_conv(c, &nd->sc_conv, x)) : x;
            if (nd->add_then_relu) {
                x = dp_add_relu(c, y, sc);
                i++;
            } else {
                x = dp_add(c, y, sc);
            }
            break;
        }
        default: break;
        }
    }
    return x;
}

static dp_tensor *netdesc_forward(dp_model *m, dp_ctx *c, dp_tensor *x)
{
    const nd_net *net = m->impl;
    return run_list(c, net->nodes, net->n, x);
}

static void free_nodes(nd_node *ns, int n)
{
    if (!ns) return;
    for (int i = 0; i < n; i++) free_nodes(ns[i].body, ns[i].nbody);
    free(ns);
}

static void net_free(void *impl)
{
    nd_net *net = impl;
    if (!net) return;
    free_nodes(net->nodes, net->n);
    free(net->rows);
    free(net);
}

static int count_rows(const nd_layer *ls, int n)
{
    int r = n;
    for (int i = 0; i < n; i++)
        if (ls[i].kind == ND_RESIDUAL) r += 1 + count_rows(ls[i].body, ls[i].nbody); /* + its shortcut */
    return r;
}

int dp_netdesc_rows(const dp_model *m, const dp_netdesc_row **rows)
{
    *rows = NULL;
    if (!m || m->forward != netdesc_forward) return 0;
    const nd_net *net = m->impl;
    *rows = net->rows;
    return net->nrows;
}

dp_status dp_netdesc_build(const char *json, const char *source, const dp_model_shape *in, dp_model **out)
{
    *out = NULL;
    if (in->c < 1 || in->h < 1 || in->w < 1 || in->classes < 1)
        return dp_errorf(DP_ERR_ARG, "%s: input %dx%dx%d with %d classes is not a shape", source, in->c, in->h, in->w,
                         in->classes);
    nd_desc d;
    dp_status rc = nd_parse(json, source, &d);
    if (rc != DP_OK) return rc;
    dp_model *m = calloc(1, sizeof *m);
    nd_net *net = calloc(1, sizeof *net);
    if (m) {
        m->impl = net;
        m->free_impl = net_free;
    }
    if (net) {
        net->caprows = count_rows(d.layers, d.n);
        net->rows = calloc((size_t)net->caprows, sizeof *net->rows);
    }
    if (!m || !net || !net->rows) {
        rc = dp_errorf(DP_ERR_NOMEM, "%s: out of memory", source);
    } else {
        snprintf(m->name, sizeof m->name, "%s", d.name);
        m->in = *in;
        bctx b = {.source = source, .p = &m->params, .classes = in->classes, .net = net};
        nd_shape s = {3, {in->c, in->h, in->w}};
        rc = build_list(&b, d.layers, d.n, "", 0, &s, &net->nodes);
        net->n = d.n;
        if (rc == DP_OK && s.ndim != 1) {
            char t[96];
            shape_str(&s, t, sizeof t);
            rc = dp_errorf(DP_ERR_SHAPE, "%s: the output %s is not [N, classes] (end with a linear)", source, t);
        }
        if (rc == DP_OK && s.d[0] != in->classes)
            rc = dp_errorf(DP_ERR_SHAPE, "%s: the output [N, %ld] is not [N, classes] = [N, %d]", source, s.d[0],
                           in->classes);
        m->flops_per_sample = b.flops;
        m->forward = netdesc_forward;
        if (rc == DP_OK) {
            m->desc = nd_canonical(&d);
            if (!m->desc) rc = dp_errorf(DP_ERR_NOMEM, "%s: out of memory", source);
        }
        if (rc == DP_OK) rc = dp_params_finalize(&m->params);
    }
    nd_desc_free(&d);
    if (rc != DP_OK) {
        if (m) dp_model_free(m);
        else net_free(net);
        return rc;
    }
    *out = m;
    return DP_OK;
}
