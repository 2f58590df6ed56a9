/* Image classifiers by name or description file (netdesc.h).
 *
 * A dp_model owns its parameter registry (flat buffers) and maps a batch
 * [N, C, H, W] to logits [N, classes]. */
#ifndef DPTRAIN_MODEL_H
#define DPTRAIN_MODEL_H

#include "dptrain/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dp_model_shape { int c, h, w, classes; } dp_model_shape;

typedef struct dp_model {
    char name[32];
    dp_model_shape in;
    dp_params params;
    void *impl;
    dp_tensor *(*forward)(struct dp_model *m, dp_ctx *c, dp_tensor *x);
    void (*free_impl)(void *impl);
    double flops_per_sample; /* forward multiply-adds x 2 (backward ~ 2x forward) */
    float progress;          /* fraction of training done, set by the trainer each epoch (drop-path) */
    char *desc;              /* owned: the canonical compact JSON of a description (netdesc.h), NULL otherwise */
} dp_model;

/*! Builds model `name` (a shipped description: "mlp", "cnn", "resnet20"; or a
 *  path to a description .json, netdesc.h) for inputs of `shape` and finalises
 *  its parameters (not yet initialised: call dp_params_init). The caller frees
 *  with dp_model_free. DP_ERR_ARG names the unknown model. */
dp_status dp_model_build(const char *name, const dp_model_shape *shape, dp_model **out);
void dp_model_free(dp_model *m);
/*! Space-separated list of registered names, for help texts. */
const char *dp_model_names(void);

#ifdef __cplusplus
}
#endif
#endif
