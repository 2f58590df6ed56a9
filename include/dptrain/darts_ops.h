/* The DARTS primitives as modules, shared by the search supernet (nas/,
 * affine = 0, pools followed by BN) and the derived network (models/,
 * affine = 1, pools bare), so both compute the same ops: the interface
 * between the models room (which builds them) and nas.
 *
 *   max/avg_pool_3x3  pool 3x3 pad 1 (avg excludes padding) [+ BN]
 *   skip_connect      identity, or FactorizedReduce at stride 2
 *   sep_conv_kxk      (ReLU - depthwise k (stride) - pointwise - BN) then
 *                     (ReLU - depthwise k - pointwise - BN)
 *   dil_conv_kxk      ReLU - depthwise k dilation 2 (stride) - pointwise - BN
 *   FactorizedReduce  ReLU, then two 1x1 convs (C_in -> C_out/2 each) on the
 *                     even and the odd pixel grids, concat, BN (C_out even).
 *                     Both grids are ceil(H/2) x ceil(W/2), the size every
 *                     stride-2 op gives: on an odd input the odd grid's last
 *                     row and column are zero (NAS-Bench-201's padding; the
 *                     reference handles even sizes only, where they agree).
 * Kind DP_NAS_NONE has no module: the caller treats it as zero. */
#ifndef DPTRAIN_DARTS_OPS_H
#define DPTRAIN_DARTS_OPS_H

#include "dptrain/nas.h"

typedef struct dp_darts_fr { dp_conv_layer c1, c2; dp_bn_layer bn; } dp_darts_fr;
typedef struct dp_darts_rcb { dp_conv_layer conv; dp_bn_layer bn; } dp_darts_rcb;

typedef struct dp_darts_op {
    int kind;            /* dp_nas_op, not NONE */
    int stride;
    int pool_bn;         /* pools: a BN follows (search) */
    dp_conv_layer conv[4];
    dp_bn_layer bn[2];
    dp_darts_fr fr;      /* skip_connect at stride 2 */
} dp_darts_op;

/* A cell input's preprocessing: FactorizedReduce when the previous cell
 * halved the resolution, else ReLU - 1x1 conv - BN. */
typedef struct dp_darts_pre { int reduce; dp_darts_fr fr; dp_darts_rcb rcb; } dp_darts_pre;

void dp_darts_fr_init(dp_darts_fr *f, dp_params *p, const char *name, int cin, int cout, int affine);
dp_tensor *dp_darts_fr_forward(dp_ctx *c, const dp_darts_fr *f, dp_tensor *x);

void dp_darts_rcb_init(dp_darts_rcb *r, dp_params *p, const char *name, int cin, int cout, int affine);
dp_tensor *dp_darts_rcb_forward(dp_ctx *c, const dp_darts_rcb *r, dp_tensor *x);

void dp_darts_pre_init(dp_darts_pre *q, dp_params *p, const char *name, int cin, int cout, int reduce, int affine);
dp_tensor *dp_darts_pre_forward(dp_ctx *c, const dp_darts_pre *q, dp_tensor *x);

/*! Declares op `kind` on C channels (parameter names prefixed by `name`). */
void dp_darts_op_init(dp_darts_op *o, dp_params *p, const char *name, int kind, int C, int stride, int affine,
                      int pool_bn);
dp_tensor *dp_darts_op_forward(dp_ctx *c, const dp_darts_op *o, dp_tensor *x);

/* What the ops reading one tensor x share: ReLU(x), with which every conv
 * op and FactorizedReduce start, and the pools, which have no parameters, are
 * one function for every op and edge that reads x, so they are computed once
 * (the BN after a search pool stays per op: it has its own running stats).
 * Zero it and set x; the rest fills lazily from the context's arena. */
typedef struct dp_darts_input {
    dp_tensor *x, *relu;
    dp_tensor *pool[2];  /* max, avg: the last one computed */
    int pool_stride[2];
} dp_darts_input;

/*! dp_darts_op_forward on a shared input (in->x). */
dp_tensor *dp_darts_op_forward_shared(dp_ctx *c, const dp_darts_op *o, dp_darts_input *in);

#endif
