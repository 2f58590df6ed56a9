/* What the image tasks (classification in src/train, the search in src/nas)
 * share: a rank's training images for its sampler, batches normalised into one
 * buffer, and a model's loss and accuracy over a range of images. */
#ifndef DPTRAIN_IMAGE_TASK_H
#define DPTRAIN_IMAGE_TASK_H

#include "dptrain/data.h"
#include "dptrain/model.h"
#include "dptrain/sampler.h"
#include "dptrain/sync.h"
#include "dptrain/task.h"

typedef struct dp_image_batch {
    float *lut;      /* dp_image_norm_fill's table: byte -> normalised value per channel, or vector stats */
    float *x;        /* [max batch, c*h*w] */
    int32_t *y;
    int eval_slice;  /* images per evaluation forward: min(training batch, DP_EVAL_SLICE) */
} dp_image_batch;
/* Evaluation forwards at most this many images at a time (and never more than the training batch): without a
 * backward the arena would otherwise hold every activation of a whole evaluation batch (1 GB for ResNet-20 at
 * the default 500), while a slice fits in the space the training step already sized. */
enum { DP_EVAL_SLICE = 64 };

/*! The shape of dir's images, from its manifest, and the manifest's hash (which ranks and resumes compare). */
dp_status dp_image_shape(const char *dir, dp_model_shape *shape, uint64_t *hash);
enum { DP_NORM_MAX_CHANNELS = 1024 };
/*! "norm=mean/std,mean/std,...\n" (%.9g, one pair per channel) of the statistics dp_image_set_load normalises
 *  dir's images with, for a checkpoint's configuration (so that eval and predict normalise any data as the
 *  run's training did). @return its length, or 0 (buf "") for an unreadable manifest, more than
 *  DP_NORM_MAX_CHANNELS channels or a line over cap. */
int dp_image_norm_format(const char *dir, char *buf, size_t cap);
/*! This rank's part of run's train split (after --limit): the whole split for the global sampler, its own
 *  shards otherwise. */
dp_status dp_image_train_load(const dp_run_config *run, const dp_sync *sync, dp_image_set *out);
/*! Buffers for batches of run's batch or eval_batch images (the larger) shaped as set's. */
dp_status dp_image_batch_init(dp_image_batch *b, const dp_image_set *set, const dp_run_config *run);
/*! Images idx[first .. first+bs) of set (idx NULL: first .. first+bs) into b, as a [bs, c, h, w] tensor of ctx. */
dp_tensor *dp_image_batch_get(dp_image_batch *b, dp_ctx *ctx, const dp_image_set *set, const int32_t *idx, long first,
                              long bs);
/*! Logits [bs, classes] of images [first, first+bs) of set, in inference mode, forwarded at most b's eval
 *  slice at a time (each slice's arena space given back). NULL with ctx->status set on failure. */
dp_tensor *dp_image_logits(dp_image_batch *b, dp_ctx *ctx, dp_model *m, const dp_image_set *set, long first,
                           long bs);
/*! Collective: the mean loss and accuracy of m over images [lo, hi) of set on every rank of sync, in batches
 *  of eval_batch. */
dp_status dp_image_evaluate(dp_image_batch *b, dp_ctx *ctx, dp_model *m, const dp_image_set *set, long lo, long hi,
                            int eval_batch, dp_sync *sync, double *loss, double *acc);
/*! torchvision's RandomCrop(size, padding=pad) then RandomHorizontalFlip(0.5) on each of bs images
 *  [c, h, w] of x, in place: the image padded by `pad` values fill[channel] on every side is cropped back to
 *  h x w at a uniform offset in [0, 2 pad]^2, then mirrored with probability 1/2. Three draws of r per
 *  image (row offset, column offset, flip). scratch holds one image (c*h*w floats). */
void dp_image_crop_flip(float *x, long bs, int c, int h, int w, int pad, const float *fill, dp_rng *r,
                        float *scratch);
/*! The same, and (confusion not NULL, zeros on entry) fills confusion[true class * classes + predicted
 *  class] with the counts of every rank (classes = m->in.classes; the prediction is the first largest
 *  logit, as the accuracy counts it). */
dp_status dp_image_evaluate_confusion(dp_image_batch *b, dp_ctx *ctx, dp_model *m, const dp_image_set *set, long lo,
                                      long hi, int eval_batch, dp_sync *sync, double *confusion, double *loss,
                                      double *acc);
void dp_image_batch_free(dp_image_batch *b);

#endif
