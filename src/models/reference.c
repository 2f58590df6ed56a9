/* The reference classifiers the benchmarks compare with PyTorch:
 *   mlp: flatten - 512 - ReLU - 256 - ReLU - classes
 *   cnn: conv(C->32,3x3,p1)-ReLU-maxpool2 - conv(32->64,3x3,p1)-ReLU-maxpool2
 *        - fc(64*(H/4)*(W/4) -> 128)-ReLU - fc(128 -> classes)
 * Parameters are declared in order of use, as nn.h expects. */
#include <stdlib.h>
#include <string.h>

#include "dptrain/model.h"

typedef struct mlp { dp_linear_layer fc1, fc2, fc3; } mlp;
typedef struct cnn { dp_conv_layer conv1, conv2; dp_linear_layer fc1, fc2; } cnn;

static dp_tensor *mlp_forward(dp_model *m, dp_ctx *c, dp_tensor *x)
{
    mlp *n = m->impl;
    dp_tensor *h = dp_flatten(c, x);
    h = dp_relu(c, dp_nn_linear(c, &n->fc1, h));
    h = dp_relu(c, dp_nn_linear(c, &n->fc2, h));
    return dp_nn_linear(c, &n->fc3, h);
}

/* max-pool and ReLU commute (ReLU is monotonic), so pooling first computes the
 * same function and gradient with the ReLU running on a quarter of the cells. */
static dp_tensor *cnn_forward(dp_model *m, dp_ctx *c, dp_tensor *x)
{
    cnn *n = m->impl;
    dp_tensor *h = dp_relu(c, dp_maxpool2d(c, dp_nn_conv(c, &n->conv1, x), 2, 2, 0));
    h = dp_relu(c, dp_maxpool2d(c, dp_nn_conv(c, &n->conv2, h), 2, 2, 0));
    h = dp_relu(c, dp_nn_linear(c, &n->fc1, dp_flatten(c, h)));
    return dp_nn_linear(c, &n->fc2, h);
}

static dp_status build_mlp(dp_model *m)
{
    mlp *n = calloc(1, sizeof *n);
    if (!n) return dp_errorf(DP_ERR_NOMEM, "mlp: out of memory");
    int in = m->in.c * m->in.h * m->in.w;
    dp_nn_linear_init(&n->fc1, &m->params, "fc1", in, 512, 1);
    dp_nn_linear_init(&n->fc2, &m->params, "fc2", 512, 256, 1);
    dp_nn_linear_init(&n->fc3, &m->params, "fc3", 256, m->in.classes, 1);
    m->impl = n;
    m->forward = mlp_forward;
    m->flops_per_sample = 2.0 * ((double)in * 512 + 512.0 * 256 + 256.0 * m->in.classes);
    return DP_OK;
}

static dp_status build_cnn(dp_model *m)
{
    if (m->in.h % 4 || m->in.w % 4)
        return dp_errorf(DP_ERR_ARG, "cnn: input %dx%d is not divisible by 4 (two 2x2 pools)", m->in.h, m->in.w);
    cnn *n = calloc(1, sizeof *n);
    if (!n) return dp_errorf(DP_ERR_NOMEM, "cnn: out of memory");
    int h2 = m->in.h / 2, w2 = m->in.w / 2, flat = 64 * (m->in.h / 4) * (m->in.w / 4);
    dp_nn_conv_init(&n->conv1, &m->params, "conv1", m->in.c, 32, 3, 1, 1, 1, 1, 1);
    dp_nn_conv_init(&n->conv2, &m->params, "conv2", 32, 64, 3, 1, 1, 1, 1, 1);
    dp_nn_linear_init(&n->fc1, &m->params, "fc1", flat, 128, 1);
    dp_nn_linear_init(&n->fc2, &m->params, "fc2", 128, m->in.classes, 1);
    m->impl = n;
    m->forward = cnn_forward;
    m->flops_per_sample = 2.0 * ((double)m->in.h * m->in.w * 32 * m->in.c * 9 + (double)h2 * w2 * 64 * 32 * 9 +
                                 (double)flat * 128 + 128.0 * m->in.classes);
    return DP_OK;
}

static const struct {
    const char *name;
    dp_status (*build)(dp_model *);
} registry[] = {{"mlp", build_mlp}, {"cnn", build_cnn}};

const char *dp_model_names(void) { return "mlp cnn"; }

dp_status dp_model_build(const char *name, const dp_model_shape *shape, dp_model **out)
{
    *out = NULL;
    for (size_t i = 0; i < sizeof registry / sizeof registry[0]; i++) {
        if (strcmp(name, registry[i].name)) continue;
        dp_model *m = calloc(1, sizeof *m);
        if (!m) return dp_errorf(DP_ERR_NOMEM, "model: out of memory");
        strncpy(m->name, name, sizeof m->name - 1);
        m->in = *shape;
        m->free_impl = free;
        dp_status rc = registry[i].build(m);
        if (rc == DP_OK) rc = dp_params_finalize(&m->params);
        if (rc != DP_OK) {
            dp_model_free(m);
            return rc;
        }
        *out = m;
        return DP_OK;
    }
    return dp_errorf(DP_ERR_ARG, "--model: unknown model '%s' (known: %s)", name, dp_model_names());
}

void dp_model_free(dp_model *m)
{
    if (!m) return;
    if (m->free_impl) m->free_impl(m->impl);
    dp_params_free(&m->params);
    free(m);
}
