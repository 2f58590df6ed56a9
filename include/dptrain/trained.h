/* A trained run, out of its run directory: the model of its newest checkpoint
 * that verifies, rebuilt from the checkpoint's configuration section alone
 * (model=, genotype=, model_json=, shape=) and loaded with its parameters and
 * batch-norm buffers, for `dptrain eval`, `predict` and `export`. */
#ifndef DPTRAIN_TRAINED_H
#define DPTRAIN_TRAINED_H

#include "dptrain/model.h"
#include "dptrain/train.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dp_trained {
    dp_model *model;      /* owned; parameters and buffers as checkpointed */
    dp_train_config cfg;  /* the run's configuration, read back from the checkpoint */
    char data[512];       /* the data set the run trained on ("" if the checkpoint does not say) */
    dp_model_shape shape; /* the input shape and classes the model was built for */
} dp_trained;

/*! Rebuilds the model of run_dir's newest verified checkpoint (checkpoint.dpc, else the kept older
 *  checkpoint.dpc.1, .2 ...: an unreadable newest one is passed over with a warning) and loads its
 *  parameters and buffers, checking their sizes and the layout hash against the rebuilt model.
 *  @return DP_OK and *out filled (free with dp_trained_free); DP_ERR_IO when run_dir holds no
 *          checkpoint; DP_ERR_FORMAT naming the file and section that do not fit. */
dp_status dp_trained_load(const char *run_dir, dp_trained *out);
/*! Frees the model and zeroes t. Accepts NULL. */
void dp_trained_free(dp_trained *t);

#ifdef __cplusplus
}
#endif
#endif
