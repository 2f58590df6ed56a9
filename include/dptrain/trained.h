/* A trained run, out of its run directory: the model of its newest checkpoint
 * that verifies, rebuilt from the checkpoint's configuration section alone
 * (model=, genotype=, model_json=, shape=) and loaded with its parameters and
 * batch-norm buffers, for `dptrain eval`, `predict` and `export`. */
#ifndef DPTRAIN_TRAINED_H
#define DPTRAIN_TRAINED_H

#include "dptrain/data.h"
#include "dptrain/image_task.h"
#include "dptrain/model.h"
#include "dptrain/sync.h"
#include "dptrain/train.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dp_trained {
    dp_model *model;      /* owned; parameters and buffers as checkpointed */
    dp_train_config cfg;  /* the run's configuration, read back from the checkpoint */
    char data[512];       /* the data set the run trained on ("" if the checkpoint does not say) */
    dp_model_shape shape; /* the input shape and classes the model was built for */
    float *mean, *std;    /* shape.c each, owned: the statistics training normalised with (NULL: the
                             checkpoint does not say; the data's own are used) */
} dp_trained;

/*! Rebuilds the model of run_dir's newest verified checkpoint (checkpoint.dpc, else the kept older
 *  checkpoint.dpc.1, .2 ...: an unreadable newest one is passed over with a warning) and loads its
 *  parameters and buffers, checking their sizes and the layout hash against the rebuilt model.
 *  @return DP_OK and *out filled (free with dp_trained_free); DP_ERR_IO when run_dir holds no
 *          checkpoint; DP_ERR_FORMAT naming the file and section that do not fit. */
dp_status dp_trained_load(const char *run_dir, dp_trained *out);
/*! Frees the model and zeroes t. Accepts NULL. */
void dp_trained_free(dp_trained *t);

/*! Normalise set as t's training did: its mean and std become t's (when t has them). */
void dp_trained_norm(const dp_trained *t, dp_image_set *set);

/*! Checks that data set `dir` holds what t's model takes: images of its C x H x W and its number of
 *  classes. @return DP_OK, DP_ERR_ARG naming dir and both shapes, or the manifest's error. */
dp_status dp_trained_check_data(const dp_trained *t, const char *dir);

enum { DP_CLASS_NAME_MAX = 64 };
/*! The names of classes 0..classes-1 into names[k] (cut to DP_CLASS_NAME_MAX - 1 bytes): data set dir's
 *  class names when its manifest has them, else the index. */
void dp_trained_class_names(const char *dir, int classes, char (*names)[DP_CLASS_NAME_MAX]);

/* A split of a data set ready for t's model: this rank's share normalised as t's training normalised,
 * batch buffers of eval_batch images and an eval-mode context. */
typedef struct dp_trained_data {
    dp_image_set set;
    dp_image_batch b;
    dp_ctx ctx;
} dp_trained_data;
/*! Loads rank's share (of nranks) of split `split` of dir, cut to its first `limit` images (0 = all).
 *  @return DP_OK, or dp_image_set_load's error; close d in either case. */
dp_status dp_trained_data_open(const dp_trained *t, const char *dir, const char *split, int rank, int nranks,
                               long limit, int eval_batch, dp_trained_data *d);
void dp_trained_data_close(dp_trained_data *d);

typedef struct dp_eval_result {
    long n;            /* images evaluated, all ranks */
    int classes;
    double loss, acc;  /* mean cross-entropy and accuracy */
    double *confusion; /* [classes * classes] counts, row = true class, column = predicted; owned */
} dp_eval_result;

/*! Collective over the ranks of sync: evaluates t's model (eval mode: batch-norm running statistics, no
 *  dropout) on split `split` of data set dir, cut to its first `limit` images (0 = all), each rank its
 *  share (dp_image_set_load), in batches of eval_batch, normalised as training normalised them.
 *  @return DP_OK and *out on every rank (free with dp_eval_result_free), or the same error on every rank. */
dp_status dp_trained_evaluate(dp_trained *t, const char *dir, const char *split, long limit, int eval_batch,
                              dp_sync *sync, dp_eval_result *out);
void dp_eval_result_free(dp_eval_result *r);

#ifdef __cplusplus
}
#endif
#endif
