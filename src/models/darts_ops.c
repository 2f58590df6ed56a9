/* The DARTS primitives (quark0/darts cnn/operations.py) over the nn modules;
 * see darts_ops.h. All convs are bias-free, BN eps 1e-5 momentum 0.1.
 *
 * FactorizedReduce's two strided 1x1 convs are written as stride-1 1x1 convs
 * of dp_subsample grids: the same function, but each conv is then one plain
 * GEMM per image with no im2col. */
#include <stdio.h>

#include "dptrain/darts_ops.h"
#include "dptrain/supernet.h"

static void pname(char *buf, size_t n, const char *base, const char *leaf) { snprintf(buf, n, "%s.%s", base, leaf); }

/* ---- FactorizedReduce and ReLU-conv-BN ---- */

void dp_darts_fr_init(dp_darts_fr *f, dp_params *p, const char *name, int cin, int cout, int affine)
{
    char nm[64];
    pname(nm, sizeof nm, name, "conv_1");
    dp_nn_conv_init(&f->c1, p, nm, cin, cout / 2, 1, 1, 0, 1, 1, 0);
    pname(nm, sizeof nm, name, "conv_2");
    dp_nn_conv_init(&f->c2, p, nm, cin, cout / 2, 1, 1, 0, 1, 1, 0);
    pname(nm, sizeof nm, name, "bn");
    dp_nn_bn_init(&f->bn, p, nm, cout, affine);
}

/* rx = ReLU(x), already computed */
static dp_tensor *fr_forward_relu(dp_ctx *c, const dp_darts_fr *f, dp_tensor *rx)
{
    if (!rx) return NULL;
    const int ho = (rx->shape[2] + 1) / 2, wo = (rx->shape[3] + 1) / 2;
    dp_tensor *h[2] = {dp_nn_conv(c, &f->c1, dp_subsample_pad(c, rx, 2, 0, ho, wo)),
                       dp_nn_conv(c, &f->c2, dp_subsample_pad(c, rx, 2, 1, ho, wo))};
    if (!h[0] || !h[1]) return NULL;
    return dp_nn_bn(c, &f->bn, dp_concat(c, 2, h));
}

dp_tensor *dp_darts_fr_forward(dp_ctx *c, const dp_darts_fr *f, dp_tensor *x)
{
    return fr_forward_relu(c, f, dp_relu(c, x));
}

void dp_darts_rcb_init(dp_darts_rcb *r, dp_params *p, const char *name, int cin, int cout, int affine)
{
    char nm[64];
    pname(nm, sizeof nm, name, "conv");
    dp_nn_conv_init(&r->conv, p, nm, cin, cout, 1, 1, 0, 1, 1, 0);
    pname(nm, sizeof nm, name, "bn");
    dp_nn_bn_init(&r->bn, p, nm, cout, affine);
}

dp_tensor *dp_darts_rcb_forward(dp_ctx *c, const dp_darts_rcb *r, dp_tensor *x)
{
    return dp_nn_bn(c, &r->bn, dp_nn_conv(c, &r->conv, dp_relu(c, x)));
}

void dp_darts_pre_init(dp_darts_pre *q, dp_params *p, const char *name, int cin, int cout, int reduce, int affine)
{
    q->reduce = reduce;
    if (reduce)
        dp_darts_fr_init(&q->fr, p, name, cin, cout, affine);
    else
        dp_darts_rcb_init(&q->rcb, p, name, cin, cout, affine);
}

dp_tensor *dp_darts_pre_forward(dp_ctx *c, const dp_darts_pre *q, dp_tensor *x)
{
    return q->reduce ? dp_darts_fr_forward(c, &q->fr, x) : dp_darts_rcb_forward(c, &q->rcb, x);
}

/* ---- the primitives ---- */

static int conv_k(int kind)
{
    return kind == DP_NAS_SEP_CONV_5X5 || kind == DP_NAS_DIL_CONV_5X5 ? 5 : 3;
}

/* depthwise k x k then pointwise 1x1, C -> C, named <name>.dw<sfx> and .pw<sfx> */
static void dw_pw_init(dp_conv_layer *dw, dp_conv_layer *pw, dp_params *p, const char *name, const char *sfx, int C,
                       int k, int stride, int pad, int dil)
{
    char leaf[16], nm[64];
    snprintf(leaf, sizeof leaf, "dw%s", sfx);
    pname(nm, sizeof nm, name, leaf);
    dp_nn_conv_init(dw, p, nm, C, C, k, stride, pad, dil, C, 0);
    snprintf(leaf, sizeof leaf, "pw%s", sfx);
    pname(nm, sizeof nm, name, leaf);
    dp_nn_conv_init(pw, p, nm, C, C, 1, 1, 0, 1, 1, 0);
}

void dp_darts_op_init(dp_darts_op *o, dp_params *p, const char *name, int kind, int C, int stride, int affine,
                      int pool_bn)
{
    char nm[64];
    const int k = conv_k(kind);
    o->kind = kind;
    o->stride = stride;
    o->pool_bn = pool_bn;
    switch (kind) {
    case DP_NAS_MAX_POOL_3X3:
    case DP_NAS_AVG_POOL_3X3:
        if (pool_bn) {
            pname(nm, sizeof nm, name, "bn");
            dp_nn_bn_init(&o->bn[0], p, nm, C, affine);
        }
        break;
    case DP_NAS_SKIP_CONNECT:
        if (stride != 1) dp_darts_fr_init(&o->fr, p, name, C, C, affine);
        break;
    case DP_NAS_SEP_CONV_3X3:
    case DP_NAS_SEP_CONV_5X5:
        dw_pw_init(&o->conv[0], &o->conv[1], p, name, "1", C, k, stride, k / 2, 1);
        pname(nm, sizeof nm, name, "bn1");
        dp_nn_bn_init(&o->bn[0], p, nm, C, affine);
        dw_pw_init(&o->conv[2], &o->conv[3], p, name, "2", C, k, 1, k / 2, 1);
        pname(nm, sizeof nm, name, "bn2");
        dp_nn_bn_init(&o->bn[1], p, nm, C, affine);
        break;
    case DP_NAS_DIL_CONV_3X3:
    case DP_NAS_DIL_CONV_5X5:
        dw_pw_init(&o->conv[0], &o->conv[1], p, name, "", C, k, stride, k - 1, 2);
        pname(nm, sizeof nm, name, "bn");
        dp_nn_bn_init(&o->bn[0], p, nm, C, affine);
        break;
    default: break;
    }
}

static dp_tensor *relu_of(dp_ctx *c, dp_darts_input *in)
{
    if (!in->relu) in->relu = dp_relu(c, in->x);
    return in->relu;
}

static dp_tensor *pool_of(dp_ctx *c, dp_darts_input *in, int avg, int stride)
{
    if (!in->pool[avg] || in->pool_stride[avg] != stride) {
        in->pool[avg] = avg ? dp_avgpool2d(c, in->x, 3, stride, 1) : dp_maxpool2d(c, in->x, 3, stride, 1);
        in->pool_stride[avg] = stride;
    }
    return in->pool[avg];
}

static dp_tensor *dw_pw(dp_ctx *c, const dp_conv_layer *dw, const dp_conv_layer *pw, dp_tensor *x)
{
    return dp_nn_conv(c, pw, dp_nn_conv(c, dw, x));
}

/* The BN closing a conv chain: the conv's output has no other reader, so a
 * BN without affine (the search) overwrites it and keeps one activation, not two. */
static dp_tensor *bn_after_conv(dp_ctx *c, const dp_bn_layer *l, dp_tensor *x)
{
    if (l->gamma || l->beta) return dp_nn_bn(c, l, x);
    return dp_batchnorm_inplace(c, x, l->mean->data, l->var->data, l->momentum, l->eps);
}

dp_tensor *dp_darts_op_forward_shared(dp_ctx *c, const dp_darts_op *o, dp_darts_input *in)
{
    if (!in->x) return NULL;
    switch (o->kind) {
    case DP_NAS_MAX_POOL_3X3:
    case DP_NAS_AVG_POOL_3X3: {
        dp_tensor *y = pool_of(c, in, o->kind == DP_NAS_AVG_POOL_3X3, o->stride);
        return o->pool_bn ? dp_nn_bn(c, &o->bn[0], y) : y;
    }
    case DP_NAS_SKIP_CONNECT: return o->stride == 1 ? in->x : fr_forward_relu(c, &o->fr, relu_of(c, in));
    case DP_NAS_SEP_CONV_3X3:
    case DP_NAS_SEP_CONV_5X5: {
        dp_tensor *h = bn_after_conv(c, &o->bn[0], dw_pw(c, &o->conv[0], &o->conv[1], relu_of(c, in)));
        return bn_after_conv(c, &o->bn[1], dw_pw(c, &o->conv[2], &o->conv[3], dp_relu(c, h)));
    }
    case DP_NAS_DIL_CONV_3X3:
    case DP_NAS_DIL_CONV_5X5: return bn_after_conv(c, &o->bn[0], dw_pw(c, &o->conv[0], &o->conv[1], relu_of(c, in)));
    default:
        if (c->status == DP_OK) c->status = dp_errorf(DP_ERR_ARG, "darts op: kind %d has no module", o->kind);
        return NULL;
    }
}

dp_tensor *dp_darts_op_forward(dp_ctx *c, const dp_darts_op *o, dp_tensor *x)
{
    dp_darts_input in = {.x = x};
    return dp_darts_op_forward_shared(c, o, &in);
}

/* ---- FLOPs ---- */

/* Counted per sample: a conv's multiply-adds x 2; a BN one multiply-add per
 * element (2); a pool one flop per window cell (k*k per output); ReLU, concat
 * and padding nothing. */
double dp_darts_op_flops(int op, int C, int H, int W, int stride)
{
    if (stride < 1) stride = 1;
    const double P = (double)((H + stride - 1) / stride) * ((W + stride - 1) / stride);
    const double bn = 2.0 * C * P;
    switch (op) {
    case DP_NAS_MAX_POOL_3X3:
    case DP_NAS_AVG_POOL_3X3: return 9.0 * C * P + bn;
    case DP_NAS_SKIP_CONNECT: return stride == 1 ? 0.0 : 2.0 * C * C * P + bn;
    case DP_NAS_SEP_CONV_3X3:
    case DP_NAS_SEP_CONV_5X5: {
        const double k2 = conv_k(op) * conv_k(op);
        return 2.0 * (2.0 * (k2 * C * P + (double)C * C * P) + bn);
    }
    case DP_NAS_DIL_CONV_3X3:
    case DP_NAS_DIL_CONV_5X5: {
        const double k2 = conv_k(op) * conv_k(op);
        return 2.0 * (k2 * C * P + (double)C * C * P) + bn;
    }
    default: return 0.0;
    }
}
