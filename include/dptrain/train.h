/* Single-model training of an image classifier on a shard set: the loop,
 * evaluation, metrics, progress and checkpoints.
 *
 *   batch -> forward -> cross-entropy -> backward into the flat gradient
 *   buffer -> (clip) -> optimizer on the flat parameter buffer
 *
 * Checkpoints hold parameters, buffers, optimizer state, RNG state, the
 * position (epoch, step) and the config; a run stopped at any step and
 * resumed ends with the same bits as a run never stopped. */
#ifndef DPTRAIN_TRAIN_H
#define DPTRAIN_TRAIN_H

#include <mpi.h>
#include <stdint.h>

#include "dptrain/comm.h"
#include "dptrain/compress.h"
#include "dptrain/model.h"
#include "dptrain/optim.h"
#include "dptrain/task.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dp_train_config {
    dp_run_config run;   /* the shared options; run.codec also carries --dgc (SGD then runs without
                            momentum) and --codec-start */
    char model[512];     /* a shipped description's name or a description FILE.json (netdesc.h) */
    char arch[512];      /* genotype JSON: train the derived DARTS network instead of `model` ("" = off) */
    int layers;          /* --arch: cells (reductions at layers/3 and 2 layers/3) */
    int channels;        /* --arch: C of the first cells (stem 3C) */
    float drop_path;     /* --arch: final drop-path probability, ramped by epoch / epochs */
    int cutout;          /* side of the square zeroed at a random centre of each training image (0 = off) */
    int augment;         /* random crop of the image padded by crop_pad, then a horizontal flip with p 0.5 */
    int crop_pad;        /* --augment: zero pixels added on each side before the crop */
    float lr;
    dp_opt_config opt;
    dp_sched_kind schedule;
    long warmup;         /* warm-up steps */
    float min_lr;        /* cosine and cospow floor */
    float lr_power;      /* cospow: the exponent order */
    float step_gamma;    /* step schedule */
    long step_size;      /* step schedule, in steps */
    float clip;          /* max global gradient norm; 0 = off */
    long test_limit;     /* evaluate on the first `test_limit` test images (0 = all) */
    int accumulate;      /* micro-batches per optimizer step, communicating on the last only */
    char init[512];      /* safetensors file whose tensors replace the initial parameters ("" = off) */
    int init_partial;    /* --init-partial: tensors of the file the model lacks are skipped, not refused */
} dp_train_config;

typedef struct dp_train_result {
    int epochs_done;
    long steps;
    double test_acc, test_loss;
    double train_loss, train_acc;  /* last epoch */
    double train_samples_per_s;    /* training steps only, evaluation excluded */
    double wall_s;
    int stopped_early;             /* --stop-after or a signal: checkpoint saved */
    int ranks;
    double comm_wait_s;            /* training-thread time spent waiting for gradient allreduces */
    double wire_bytes_per_step;    /* bytes this rank sent per optimizer step (after codec and zstd) */
    double raw_bytes_per_step;     /* the float32 bytes those stand for */
    long skipped_steps;            /* --on-nonfinite skip: steps whose update was dropped */
    float loss_scale;              /* at the end */
    uint64_t params_hash;          /* XXH3-64 of the final parameter and buffer bytes (replicas agree) */
    long params;                   /* trainable floats of the model */
    double mflops;                 /* forward FLOPs per sample / 1e6 (the NAS protocol's x axis) */
} dp_train_result;

/*! The defaults of `dptrain train` (SGD lr 0.05 momentum 0.9, batch 64, ...). */
void dp_train_config_defaults(dp_train_config *cfg);
/*! Range-checks every field; DP_ERR_ARG names the flag. */
dp_status dp_train_config_check(const dp_train_config *cfg);
/*! key=value lines of every field (saved in checkpoints, hashed across ranks). */
int dp_train_config_format(const dp_train_config *cfg, char *buf, size_t n);

/*! Reads back the text of dp_train_config_format into cfg (starting from the defaults), so a checkpoint
 *  alone says how its run was configured. Keys it does not know (those the trainer appends: genotype,
 *  manifest, shape, ranks, layout, model_json ...) are left to their readers; a known key with a bad value
 *  is DP_ERR_FORMAT naming `source`, the line and the key. */
dp_status dp_train_config_parse(const char *text, const char *source, dp_train_config *cfg);
/*! The value of `key` in key=value lines: its first byte (not NUL-terminated: *len bytes), or NULL. */
const char *dp_config_find(const char *text, const char *key, size_t *len);

/*! 1 when a resumed run must use the same value of `key` as the checkpoint. */
int dp_train_config_resume_key(const char *key);

/*! Trains as configured on the ranks of `comm` (data-parallel; MPI_COMM_NULL
 *  or a one-rank communicator trains alone, and MPI need not be initialised
 *  for MPI_COMM_NULL). Rank 0 prints progress to stderr and writes metrics and
 *  checkpoints; nothing goes to stdout. Every rank returns the same status.
 *  @return DP_OK (res filled), or an error naming the file/step/field/rank. */
dp_status dp_train_run(const dp_train_config *cfg, MPI_Comm comm, dp_train_result *res);

#ifdef __cplusplus
}
#endif
#endif
