/* The DSI tests' gradient-check fixture: the whole model (encoder + head +
 * loss) as a function of two checker leaves, the embedding table and the
 * dense parameters, whose registries are pointed into the leaves' buffers
 * for each evaluation. Shared by test_dsi_model.c, test_dsi_encoder_idf.c
 * and test_dsi_transformer.c. */
#ifndef DP_TEST_DSI_GRADCHECK_H
#define DP_TEST_DSI_GRADCHECK_H

#include <stdint.h>

#include "dptrain/dsi.h"
#include "gradcheck.h"

/* What build_loss evaluates: nbags queries (tok/off) labelled docs */
typedef struct gc_model {
    dp_dsi_model *m;
    int nbags;
    const int32_t *tok, *off, *docs;
} gc_model;

/* Points every parameter of p at data / grad + its offset */
void dsi_gc_point_params(dp_params *p, float *data, float *grad);
/* gc_build_fn: in[0] the embedding table, in[1] the dense parameters; arg a gc_model */
dp_tensor *dsi_gc_build_loss(dp_ctx *c, dp_tensor **in, void *arg);
/* The two leaves: the table uniform in [-1, 1], the dense parameters in [-0.8, 0.8] */
void dsi_gc_inputs(const dp_dsi_model *m, gc_input in[2]);
/* After a check: the registries point at the model's own buffers again (before freeing it) */
void dsi_gc_restore(dp_dsi_model *m);
/* A model of cfg over ndocs atomic ids, initialised from seed 5 (asserts on failure) */
dp_dsi_model *dsi_gc_atomic_model(const dp_dsi_model_config *cfg, int ndocs);

#endif
