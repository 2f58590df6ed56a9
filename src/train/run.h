/* The state of one training run, shared by the loop (trainer.c) and its
 * checkpoints (resume.c). Private to src/train. */
#ifndef DP_TRAIN_RUN_H
#define DP_TRAIN_RUN_H

#include "dptrain/data.h"
#include "dptrain/train.h"
#include "train/report.h"
#include "train/sampler.h"
#include "train/sync.h"

#define CK_STATE_VERSION 3u

/* Position and counters; saved verbatim in the checkpoint's state section.
 * The RNG streams are per rank and saved separately (DP_CK_RNG). */
typedef struct ck_state {
    uint32_t version, epoch;
    int64_t step;            /* optimizer steps taken */
    int64_t micro_in_epoch;  /* sampler steps taken in the current epoch */
    double ep_loss_sum, train_time;
    int64_t ep_correct, ep_seen, opt_t;
    uint64_t n_params, n_buffers, n_opt, layout;
    int32_t ranks, pad;
    double loss_scale;       /* current (--loss-scale, lowered by skipped steps) */
    int64_t clean_steps;     /* finite steps since the scale last changed */
    int64_t skipped, skip_run; /* skipped steps: in all, and in a row */
} ck_state;

/* A rank's streams: the shuffling stream at the start of the current epoch
 * (the permutation is regenerated from it) and the dropout stream. */
typedef struct ck_rng {
    dp_rng epoch_shuffle, dropout;
} ck_rng;

enum { DP_CK_RNG = 6, DP_CK_RESIDUAL = 7 /* every rank's error-feedback buffer, rank order */ };

typedef struct run {
    const dp_train_config *cfg;
    dp_sync sync;
    int rank, size;
    dp_model *m;
    dp_image_set train, test;
    dp_sampler sampler;
    dp_optimizer opt;
    dp_schedule sched;
    dp_ctx ctx;
    dp_report rep;
    float lut[256];
    float *x;          /* [max batch, c*h*w] */
    int32_t *y;
    long feat;
    long opt_steps_per_epoch;
    dp_rng shuffle;    /* state at the start of the current epoch */
    ck_state st;
    long first_step;   /* r->st.step when this process started (after a resume) */
    long saved_step;   /* step of the newest checkpoint on disk (-1: none yet) */
    char ckpt[1024];
    char config_text[4096];
} run;

dp_status dp_run_save(run *r);
dp_status dp_run_load(run *r);

#endif
