/* Differentiable ops. Each takes the context, returns a new arena tensor (or
 * a view) and records a backward node when a gradient is wanted.
 *
 * Shapes use NCHW for images and [N, F] for features. Every op returns NULL
 * when an input is NULL or on error (message in dp_errmsg(), status in c->status). */
#ifndef DPTRAIN_OPS_H
#define DPTRAIN_OPS_H

#include "dptrain/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- dense (src/core/ops_dense.c, ops_act.c) ---- */
/*! a [M,K] (or [K,M] if trans_a) @ b [K,N] (or [N,K] if trans_b) -> [M,N], cblas_sgemm. */
dp_tensor *dp_matmul(dp_ctx *c, dp_tensor *a, dp_tensor *b, int trans_a, int trans_b);
/*! x [N,in] , w [out,in], b [out] or NULL -> x w^T + b  [N,out] (one sgemm, bias fused). */
dp_tensor *dp_linear(dp_ctx *c, dp_tensor *x, dp_tensor *w, dp_tensor *b);
/*! x [N,C,...] + b [C] broadcast over dim 1. */
dp_tensor *dp_bias_add(dp_ctx *c, dp_tensor *x, dp_tensor *b);
/*! Elementwise, same shapes. */
dp_tensor *dp_add(dp_ctx *c, dp_tensor *a, dp_tensor *b);
/*! relu(a + b) as one op, the same bits as dp_relu(dp_add(a, b)) (a residual block's end). */
dp_tensor *dp_add_relu(dp_ctx *c, dp_tensor *a, dp_tensor *b);
dp_tensor *dp_mul(dp_ctx *c, dp_tensor *a, dp_tensor *b);
dp_tensor *dp_scale(dp_ctx *c, dp_tensor *a, float s);
/*! sum_i w->data[w_off + i] * xs[i], all xs of one shape: the DARTS mixed op.
 *  Gradients flow to every xs[i] and to w (so w may be softmax(alpha) rows).
 *  An xs[i] may be NULL, meaning the zero op (it contributes nothing). */
dp_tensor *dp_weighted_sum(dp_ctx *c, int n, dp_tensor **xs, dp_tensor *w, long w_off);
dp_tensor *dp_relu(dp_ctx *c, dp_tensor *x);
/*! Exact GELU: x * Phi(x) with erf (PyTorch's default). */
dp_tensor *dp_gelu(dp_ctx *c, dp_tensor *x);
dp_tensor *dp_tanh(dp_ctx *c, dp_tensor *x);
dp_tensor *dp_sigmoid(dp_ctx *c, dp_tensor *x);
/*! Softmax / log-softmax over the last dim (rows = n / last dim); t is the
 *  temperature: softmax(x / t). Pass 1 for the plain op. */
dp_tensor *dp_softmax(dp_ctx *c, dp_tensor *x, float t);
dp_tensor *dp_log_softmax(dp_ctx *c, dp_tensor *x);
/*! Straight-through one-hot over the last dim: the forward is the one-hot of
 *  each row's argmax (ties: the first), the backward the identity
 *  (d soft += d out), as GDAS's hard - soft.detach() + soft. */
dp_tensor *dp_onehot_st(dp_ctx *c, dp_tensor *soft);
/*! Mean cross-entropy of logits [N,C] against labels[N] in [0,C), fused with
 *  log-softmax. Returns a [1] tensor. If correct != NULL, *correct receives the
 *  number of rows whose argmax equals the label. labels must stay valid until
 *  backward. */
dp_tensor *dp_cross_entropy(dp_ctx *c, dp_tensor *logits, const int32_t *labels, long *correct);
/*! Mean over the rows of KL(p_i || softmax(logits_i / t)) for target probability rows p [N,C] (each
 *  non-negative, summing to 1; 0 log 0 = 0) and temperature t > 0: a distillation loss against a teacher's
 *  softened probabilities (the caller scales by t^2, Hinton et al.). Returns a [1] tensor; the gradient
 *  reaches logits only, dlogits_i = 1/(N t) (softmax(logits_i / t) - p_i). target must stay valid until
 *  backward. */
dp_tensor *dp_kl_soft_targets(dp_ctx *c, dp_tensor *logits, const float *target, float t);
/*! Inverted dropout with probability p (identity when !c->training or p == 0);
 *  the mask comes from c->dropout_rng. */
dp_tensor *dp_dropout(dp_ctx *c, dp_tensor *x, float p);
/*! A view of x with another shape of the same numel: shares data and grad. */
dp_tensor *dp_reshape(dp_ctx *c, dp_tensor *x, int ndim, const int *shape);
/*! [N, ...] -> [N, rest]. */
dp_tensor *dp_flatten(dp_ctx *c, dp_tensor *x);

/* ---- normalisation (src/core/ops_norm.c) ---- */
/*! Batch-norm over dim 1 of x [N,C] or [N,C,H,W]. gamma/beta [C] or NULL (no
 *  affine). Training: batch statistics (biased var for normalising), and
 *  running_mean/var (may be NULL) updated with momentum using the unbiased var,
 *  as PyTorch. Eval: running statistics. */
dp_tensor *dp_batchnorm(dp_ctx *c, dp_tensor *x, dp_tensor *gamma, dp_tensor *beta,
                        float *running_mean, float *running_var, float momentum, float eps);

/*! relu(dp_batchnorm(...)) as one op, the same bits: one pass writes the
 *  output, and the backward masks dy inside batch-norm's own passes. */
dp_tensor *dp_batchnorm_relu(dp_ctx *c, dp_tensor *x, dp_tensor *gamma, dp_tensor *beta,
                             float *running_mean, float *running_var, float momentum, float eps);

/*! Batch-norm without affine whose output overwrites x: the backward reads
 *  the output (= xhat) instead of x, so one activation is kept instead of two.
 *  x must have no other consumer. */
dp_tensor *dp_batchnorm_inplace(dp_ctx *c, dp_tensor *x, float *running_mean, float *running_var, float momentum,
                                float eps);

/*! Row-wise L2 normalisation over the last dimension: x / max(|x|, eps)
 *  (torch.nn.functional.normalize, p = 2, dim = -1). (src/core/ops_l2norm.c) */
dp_tensor *dp_l2norm_rows(dp_ctx *c, dp_tensor *x, float eps);

/* ---- transformer (src/core/ops_layernorm.c, ops_attention.c) ---- */
/*! Layer norm over the last dim D (torch.nn.functional.layer_norm, biased
 *  variance): y = (x - mean) / sqrt(var + eps) * gamma + beta; gamma, beta [D]
 *  or NULL (no scale / no shift). */
dp_tensor *dp_layernorm(dp_ctx *c, dp_tensor *x, dp_tensor *gamma, dp_tensor *beta, float eps);
/*! Multi-head self-attention over packed sequences: qkv [T, 3E] holds each
 *  token's query, key and value (columns [0,E), [E,2E), [2E,3E)); sequence b
 *  is rows offsets[b] .. offsets[b+1) (offsets[0] = 0, offsets[nbags] = T; a
 *  sequence may be empty). Per sequence and head (dh = E / heads columns):
 *  softmax(Q K^T / sqrt(dh)) V, a token attending only to its own sequence.
 *  -> [T, E]. offsets must stay valid until backward. */
dp_tensor *dp_self_attention(dp_ctx *c, dp_tensor *qkv, const int32_t *offsets, int nbags, int heads);

/* ---- embedding (src/core/ops_embed.c) ---- */
/*! Embedding-bag: bag b = rows ids[offsets[b] .. offsets[b+1]) of w [V,D],
 *  summed (mean = 0) or averaged (mean = 1; an empty bag gives zeros).
 *  -> [nbags, D]. Gradient is added only to the rows used. ids/offsets must
 *  stay valid until backward. */
dp_tensor *dp_embedding_bag(dp_ctx *c, dp_tensor *w, const int32_t *ids, const int32_t *offsets,
                            int nbags, int mean);
/*! Bag b = sum_k a_k w[ids[k]] over its entries k, a = softmax of u [V] (one
 *  score per row) over the bag's entries: sum e^{u_t} w_t / sum e^{u_t}, the
 *  positive weights e^u without a clamp. An empty bag gives zeros. Gradients
 *  to the used rows of w and u only. -> [nbags, D]. ids/offsets must stay
 *  valid until backward. */
dp_tensor *dp_embedding_bag_softmax(dp_ctx *c, dp_tensor *w, dp_tensor *u, const int32_t *ids,
                                    const int32_t *offsets, int nbags);
/*! Bag b = the elementwise max over its rows of w [V,D] (ties: the first
 *  entry; an empty bag gives zeros); the gradient goes to the winning row of
 *  each element. -> [nbags, D]. */
dp_tensor *dp_embedding_bag_max(dp_ctx *c, dp_tensor *w, const int32_t *ids, const int32_t *offsets, int nbags);

/* ---- gather (src/core/ops_gather.c) ---- */
/*! Rows of x [N, ...] (N rows of numel/N floats): y [m, ...], y[i] = x[idx[i]]
 *  (torch index_select along dim 0). The gradient is added into the rows
 *  used only; a repeated index accumulates. idx must stay valid until backward. */
dp_tensor *dp_gather_rows(dp_ctx *c, dp_tensor *x, const int32_t *idx, int m);

/* ---- sparse scoring (src/core/ops_sparse.c) ---- */
/* A fixed posting pattern: term t's postings are p in [off[t], off[t+1]),
 * posting p names document doc[p] (< ndocs; checked where the pattern is
 * made, not per call). */
typedef struct dp_postings {
    int nterms, ndocs;
    const int64_t *off; /* [nterms + 1], off[0] = 0 */
    const int32_t *doc; /* [off[nterms]] */
} dp_postings;
/*! y [nrows, ndocs]: y[n, d] = s * sum over row n's terms t (terms[toff[n] ..
 *  toff[n+1]), a repeat counts again) of w[p] over t's postings p with doc[p] = d.
 *  w [off[nterms]] the posting weights, s [1] a scale. Gradients to w (the
 *  listed terms' postings only) and s. P, terms and toff must stay valid until
 *  backward. */
dp_tensor *dp_sparse_score(dp_ctx *c, dp_tensor *w, dp_tensor *s, const dp_postings *P, const int32_t *terms,
                           const int32_t *toff, int nrows);
/*! The same without the tape, added into y (row n at y + n ldy): for searches. */
void dp_sparse_score_add(float *y, long ldy, float s, const float *w, const dp_postings *P, const int32_t *terms,
                         const int32_t *toff, int nrows);

/* ---- spatial (src/core/ops_conv.c, ops_pool.c, ops_channel.c) ---- */
/*! 2-D convolution. x [N,Cin,H,W], w [Cout, Cin/groups, kh, kw], b [Cout] or
 *  NULL. Square stride/pad/dilation. Cin and Cout divisible by groups
 *  (groups == Cin == Cout: depthwise). -> [N,Cout,Ho,Wo],
 *  Ho = (H + 2 pad - dilation (kh - 1) - 1) / stride + 1. */
dp_tensor *dp_conv2d(dp_ctx *c, dp_tensor *x, dp_tensor *w, dp_tensor *b,
                     int stride, int pad, int dilation, int groups);
/*! Max pool k x k; padding cells never win. */
dp_tensor *dp_maxpool2d(dp_ctx *c, dp_tensor *x, int k, int stride, int pad);
/*! Average pool k x k; padding excluded from the divisor (count_include_pad=False). */
dp_tensor *dp_avgpool2d(dp_ctx *c, dp_tensor *x, int k, int stride, int pad);
/*! [N,C,H,W] -> [N,C]. */
dp_tensor *dp_global_avgpool(dp_ctx *c, dp_tensor *x);
/*! Concatenate along dim 1 (channels); all other dims equal. */
dp_tensor *dp_concat(dp_ctx *c, int n, dp_tensor **xs);
/*! Channels [c0, c1) of x [N,C,...]. */
dp_tensor *dp_slice(dp_ctx *c, dp_tensor *x, int c0, int c1);
/*! The channel shuffle of ShuffleNet / PC-DARTS: x [N, C, ...] viewed as
 *  (groups, C / groups) channels, transposed: y[:, j groups + g] =
 *  x[:, g (C / groups) + j]. groups must divide C. */
dp_tensor *dp_channel_shuffle(dp_ctx *c, dp_tensor *x, int groups);
/*! One strided pixel grid: y [N,C,Ho,Wo] [n,c,i,j] = x[n,c, offset + stride i,
 *  offset + stride j], Ho = ceil((H - offset) / stride) (likewise Wo).
 *  FactorizedReduce's strided 1x1 convs are 1x1 convs of these grids. */
dp_tensor *dp_subsample(dp_ctx *c, dp_tensor *x, int stride, int offset);
/*! dp_subsample with the output size given (ho, wo >= 1): cells whose source
 *  lies past the input are zero, as if x were zero-padded at the bottom and
 *  right (FactorizedReduce's odd grid on an odd-sized input). */
dp_tensor *dp_subsample_pad(dp_ctx *c, dp_tensor *x, int stride, int offset, int ho, int wo);

/* ---- recomputation (src/core/recompute.c) ---- */
/*! A segment of the forward pass: out = fn(in) from ops on in[] and on
 *  tensors that live outside the step (parameters). It must not write to its
 *  inputs and must give the same values when run twice. */
typedef dp_tensor *(*dp_segment_fn)(dp_ctx *c, void *user, dp_tensor **in);
/*! fn(in) without keeping its intermediate tensors: they are computed again
 *  in backward, one segment at a time (gradient checkpointing). The gradients
 *  are those of fn(in) itself, bit for bit. params: the parameters fn reads,
 *  listed as inputs of the segment's node so that a backward hook learns when
 *  their gradients are final (after the node). */
dp_tensor *dp_recompute(dp_ctx *c, dp_segment_fn fn, void *user, int nin, dp_tensor **in, int nparams,
                        dp_tensor **params);

#ifdef __cplusplus
}
#endif
#endif
