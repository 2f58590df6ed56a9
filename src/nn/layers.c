/* Linear, conv, batch-norm and embedding-bag modules: parameter declaration
 * with PyTorch's default initialisation, and a forward over the core ops. */
#include <stdio.h>

#include "dptrain/nn.h"

static void pname(char *buf, size_t n, const char *base, const char *leaf) { snprintf(buf, n, "%s.%s", base, leaf); }

/* Declares parameter "<base>.<leaf>". */
static dp_tensor *add(dp_params *p, const char *base, const char *leaf, int ndim, const int *shape, dp_init_kind init,
                      long fan_in, long fan_out)
{
    char nm[64];
    pname(nm, sizeof nm, base, leaf);
    return dp_params_add(p, nm, ndim, shape, init, fan_in, fan_out);
}

void dp_nn_linear_init(dp_linear_layer *l, dp_params *p, const char *name, int in, int out, int bias)
{
    int ws[2] = {out, in}, bs[1] = {out};
    l->w = add(p, name, "weight", 2, ws, DP_INIT_TORCH_WEIGHT, in, out);
    l->b = bias ? add(p, name, "bias", 1, bs, DP_INIT_TORCH_BIAS, in, out) : NULL;
}

dp_tensor *dp_nn_linear(dp_ctx *c, const dp_linear_layer *l, dp_tensor *x) { return dp_linear(c, x, l->w, l->b); }

void dp_nn_conv_init(dp_conv_layer *l, dp_params *p, const char *name, int cin, int cout, int k, int stride, int pad,
                     int dilation, int groups, int bias)
{
    int ws[4] = {cout, cin / groups, k, k}, bs[1] = {cout};
    long fan_in = (long)(cin / groups) * k * k, fan_out = (long)(cout / groups) * k * k;
    l->w = add(p, name, "weight", 4, ws, DP_INIT_TORCH_WEIGHT, fan_in, fan_out);
    l->b = bias ? add(p, name, "bias", 1, bs, DP_INIT_TORCH_BIAS, fan_in, fan_out) : NULL;
    l->stride = stride;
    l->pad = pad;
    l->dilation = dilation;
    l->groups = groups;
}

dp_tensor *dp_nn_conv(dp_ctx *c, const dp_conv_layer *l, dp_tensor *x)
{
    return dp_conv2d(c, x, l->w, l->b, l->stride, l->pad, l->dilation, l->groups);
}

void dp_nn_bn_init(dp_bn_layer *l, dp_params *p, const char *name, int channels, int affine)
{
    char nm[64];
    int s[1] = {channels};
    l->gamma = l->beta = NULL;
    if (affine) {
        l->gamma = add(p, name, "weight", 1, s, DP_INIT_ONE, channels, channels);
        l->beta = add(p, name, "bias", 1, s, DP_INIT_ZERO, channels, channels);
    }
    pname(nm, sizeof nm, name, "running_mean");
    l->mean = dp_params_add_buffer(p, nm, channels, DP_INIT_ZERO);
    pname(nm, sizeof nm, name, "running_var");
    l->var = dp_params_add_buffer(p, nm, channels, DP_INIT_ONE);
    l->momentum = 0.1f;
    l->eps = 1e-5f;
}

dp_tensor *dp_nn_bn(dp_ctx *c, const dp_bn_layer *l, dp_tensor *x)
{
    return dp_batchnorm(c, x, l->gamma, l->beta, l->mean->data, l->var->data, l->momentum, l->eps);
}

dp_tensor *dp_nn_bn_relu(dp_ctx *c, const dp_bn_layer *l, dp_tensor *x)
{
    return dp_batchnorm_relu(c, x, l->gamma, l->beta, l->mean->data, l->var->data, l->momentum, l->eps);
}

void dp_nn_embedding_bag_init(dp_embedding_bag_layer *l, dp_params *p, const char *name, int vocab, int dim, int mean)
{
    int s[2] = {vocab, dim};
    l->w = add(p, name, "weight", 2, s, DP_INIT_NORMAL_SMALL, dim, dim);
    l->mean = mean;
}

dp_tensor *dp_nn_embedding_bag(dp_ctx *c, const dp_embedding_bag_layer *l, const int32_t *ids,
                               const int32_t *offsets, int nbags)
{
    return dp_embedding_bag(c, l->w, ids, offsets, nbags, l->mean);
}
