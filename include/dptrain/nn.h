/* Modules over the core ops and the parameter registry behind them.
 *
 * A model declares its parameters (and non-trainable buffers such as
 * batch-norm running statistics) by name and shape; dp_params_finalize then
 * lays them out in ONE flat parameter buffer, ONE flat gradient buffer of the
 * same size and ONE flat buffer for the buffers, and points every tensor into
 * them. Declaration order is use order, so the end of the buffer holds the
 * last layer: gradient buckets built in reverse order are suffix ranges. */
#ifndef DPTRAIN_NN_H
#define DPTRAIN_NN_H

#include "dptrain/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dp_init_kind {
    DP_INIT_ZERO,
    DP_INIT_ONE,
    DP_INIT_TORCH_WEIGHT, /* kaiming_uniform(a = sqrt 5): PyTorch's Linear/Conv default */
    DP_INIT_TORCH_BIAS,   /* uniform(+-1/sqrt(fan_in)) */
    DP_INIT_KAIMING_NORMAL,
    DP_INIT_XAVIER_UNIFORM,
    DP_INIT_NORMAL_SMALL, /* N(0, 0.01): embeddings */
    DP_INIT_NORMAL,       /* N(0, 1): torch.nn.Embedding / EmbeddingBag */
} dp_init_kind;

typedef struct dp_param {
    char name[64];
    dp_tensor t;        /* data/grad point into the flat buffers after finalize */
    size_t offset;      /* into params (or buffers) */
    long fan_in, fan_out;
    dp_init_kind init;
    int is_buffer;      /* running statistics: saved, never given gradients */
} dp_param;

typedef struct dp_params {
    dp_param **items;
    int count, cap;
    float *data, *grad; /* n floats each */
    size_t n;
    float *buffers;     /* nbuf floats */
    size_t nbuf;
    int finalized;
} dp_params;

/*! Declares a trainable parameter; the returned tensor is valid for the life
 *  of the registry, its data only after dp_params_finalize. */
dp_tensor *dp_params_add(dp_params *p, const char *name, int ndim, const int *shape, dp_init_kind init,
                         long fan_in, long fan_out);
/*! Declares a non-trainable buffer of n floats (initialised to `value`). */
dp_tensor *dp_params_add_buffer(dp_params *p, const char *name, long n, dp_init_kind init);
/*! Allocates the flat buffers and points every tensor into them. */
dp_status dp_params_finalize(dp_params *p);
/*! Fills every parameter and buffer by its init rule from the stream r. */
void dp_params_init(dp_params *p, dp_rng *r);
void dp_params_zero_grad(dp_params *p);
void dp_params_free(dp_params *p);
/*! FNV-1a over names and shapes: two registries with the same layout agree. */
uint64_t dp_params_layout_hash(const dp_params *p);
/*! XXH3-64 of the parameter bytes, then the buffer bytes: the replica check compares it across
 *  ranks and `train` prints it, so two runs that end bit-identical print the same value. */
uint64_t dp_params_hash(const dp_params *p);

/* ---- modules: a struct of parameter tensors + init + forward ---- */
typedef struct dp_linear_layer { dp_tensor *w, *b; } dp_linear_layer;
typedef struct dp_conv_layer { dp_tensor *w, *b; int stride, pad, dilation, groups; } dp_conv_layer;
typedef struct dp_bn_layer { dp_tensor *gamma, *beta, *mean, *var; float momentum, eps; } dp_bn_layer;
typedef struct dp_embedding_bag_layer { dp_tensor *w; int mean; } dp_embedding_bag_layer;

void dp_nn_linear_init(dp_linear_layer *l, dp_params *p, const char *name, int in, int out, int bias);
dp_tensor *dp_nn_linear(dp_ctx *c, const dp_linear_layer *l, dp_tensor *x);

void dp_nn_conv_init(dp_conv_layer *l, dp_params *p, const char *name, int cin, int cout, int k, int stride,
                     int pad, int dilation, int groups, int bias);
dp_tensor *dp_nn_conv(dp_ctx *c, const dp_conv_layer *l, dp_tensor *x);

/*! affine = 0 gives batch-norm without gamma/beta (the DARTS search cells). */
void dp_nn_bn_init(dp_bn_layer *l, dp_params *p, const char *name, int channels, int affine);
dp_tensor *dp_nn_bn(dp_ctx *c, const dp_bn_layer *l, dp_tensor *x);
/*! dp_nn_bn followed by a relu, fused (dp_batchnorm_relu). */
dp_tensor *dp_nn_bn_relu(dp_ctx *c, const dp_bn_layer *l, dp_tensor *x);

void dp_nn_embedding_bag_init(dp_embedding_bag_layer *l, dp_params *p, const char *name, int vocab, int dim,
                              int mean);
dp_tensor *dp_nn_embedding_bag(dp_ctx *c, const dp_embedding_bag_layer *l, const int32_t *ids,
                               const int32_t *offsets, int nbags);

#ifdef __cplusplus
}
#endif
#endif
