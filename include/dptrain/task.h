/* The one training loop and the workloads it drives.
 *
 * A workload (image classification, the DARTS search, a DSI member) is a task:
 * its own state plus a table of functions (dp_task_ops). The driver
 * (src/train/driver.c) owns what every workload shares:
 *
 *   set-up:  ranks, the gradient sync of the task's parameters, the watchdog,
 *            every rank agreeing that building succeeded, the configuration
 *            agreement, the run directory (metrics.jsonl, free space),
 *            identical replicas (rank 0's parameters) or --resume
 *   epochs:  epoch_begin -> per step: step (forward/backward, gradients
 *            averaged) -> the step's statistics summed over ranks -> the
 *            non-finite policy (stop, or skip and halve the loss scale) ->
 *            update (clip, optimizer) -> progress bar, metrics, replica
 *            check, --stop-after, signals, periodic checkpoints
 *            -> epoch_end (evaluation, the task's report) -> checkpoint
 *   resume:  <out>/checkpoint.dpc (or the newest older one that reads),
 *            checked against this run, so a stopped run ends with the bits
 *            of one never stopped.
 *
 * A task never writes a checkpoint file, opens the metrics file or loops over
 * epochs; it says what its step, update and evaluation are. A new workload is
 * one file in its own room with a dp_task_ops table and no edit here. */
#ifndef DPTRAIN_TASK_H
#define DPTRAIN_TASK_H

#include <mpi.h>
#include <stdint.h>

#include "dptrain/checkpoint.h"
#include "dptrain/rank_times.h"
#include "dptrain/report.h"
#include "dptrain/sync.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A task's checkpoint sections besides the driver's (configuration, state, parameters, buffers, residuals). */
enum { DP_CK_TASK_PARTS = DP_CK_MAX_SECTIONS - 5 };

/* What a NaN/Inf loss or gradient does: stop with an error naming the step and tensor, or drop the
 * update and halve the loss scale (GradScaler's backoff). */
enum dp_nonfinite_policy { DP_NONFINITE_STOP = 0, DP_NONFINITE_SKIP = 1 };

/* Limits the commands' flags and every config check share (the dsi room's tables bound the batch). */
enum { DP_BATCH_MAX = 65536, DP_THREADS_MAX = 256 };

/* The options every workload's command shares (train, search, dsi-train): each config embeds one as `run`;
 * their defaults, range checks and the driver's and sync's options made of them are in src/train/run_config.c.
 * A workload without a flag leaves its field at the default (dsi-train: no codec, sampler or --resume). */
typedef struct dp_run_config {
    char data[512];         /* data set directory */
    char out[512];          /* run directory: metrics.jsonl, checkpoints, outputs ("" = none) */
    int epochs;
    int batch;              /* per rank */
    int eval_batch;
    long limit;             /* train on the first `limit` examples (0 = all) */
    uint64_t seed;
    int sampler;            /* dp_sampler_kind: 0 shard (each rank its shards), 1 global (exact) */
    dp_allreduce_algo allreduce; /* our ring or MPI_Allreduce */
    char allreduce_table[512]; /* auto's decision table ("": DP_ALLREDUCE_TABLE, else the built-in rule) */
    float bucket_mb;        /* gradient bucket size in MiB */
    int overlap;            /* allreduce buckets while backward runs (communication thread) */
    long check_replicas;    /* compare a hash of the parameters across ranks every N steps (0 = off) */
    dp_compress codec;      /* gradient compression (kind NONE: plain float32) */
    int resume;             /* go on from the checkpoint in out */
    int overwrite;          /* start over in an out holding a run (its checkpoints and metrics removed) */
    int threads;            /* OpenBLAS threads per rank */
    int progress;           /* -1 auto (TTY), 0 plain lines, 1 bar */
    int quiet;
    double watchdog_s;      /* report a collective without progress for this long and abort (0 = off) */
    long stop_after;        /* checkpoint and stop after this global step (0 = never) */
    long checkpoint_every;  /* also checkpoint every this many steps (0 = at epoch ends only) */
    int keep_checkpoints;   /* checkpoint.dpc plus this many - 1 older ones (.1 newest) */
    int on_nonfinite;       /* dp_nonfinite_policy: what a NaN/Inf gradient or loss does */
    float loss_scale;       /* backward seed multiplier (gradients unscaled after the allreduce); skip halves it
                               on a non-finite step, loss_scale_growth clean steps double it back */
    long loss_scale_growth; /* GradScaler's growth_interval */
    int rank_times;         /* DP_RANK_TIMES_* (dptrain/rank_times.h): each rank's compute and wait per step */
    long sync_every;        /* local SGD: steps on each rank's own gradients, parameters (and optimizer state)
                               averaged every this many steps; 1 = gradients averaged every step */
} dp_run_config;

/* What the driver runs with: the shared configuration, and what no command's configuration holds. */
typedef struct dp_run_opts {
    dp_run_config run;
    int stop_after_epochs;  /* checkpoint and stop after this many epochs (0 = never) */
    int log_every;          /* a "step" line in metrics.jsonl every N steps (0 = none) */
    char label[32];         /* names the run in the driver's messages, e.g. "member 2" ("" = none) */
} dp_run_opts;

/*! Every workload's defaults: 1 epoch, batch 64, evaluation batch 500, seed 1, ring allreduce in 4 MiB
 *  buckets overlapping backward, 1 thread, progress by terminal, watchdog 300 s; data and out empty;
 *  2 checkpoints kept, stop on a non-finite step, loss scale 1 growing back after 2000 clean steps. */
void dp_run_config_defaults(dp_run_config *r);
/*! Range-checks the shared fields (epochs from min_epochs); DP_ERR_ARG names the flag. */
dp_status dp_run_config_check(const dp_run_config *r, int min_epochs);
/*! The gradient sync's options of r: --allreduce, --bucket-mb, --no-overlap and the compressor with its
 *  random streams keyed by the seed. */
dp_sync_opts dp_run_sync_opts(const dp_run_config *r);

/* Position and counters: saved verbatim in the checkpoint (DP_CK_STATE). */
typedef struct dp_drive_state {
    uint32_t version, epoch;
    int64_t step;           /* optimizer steps taken */
    int64_t pos;            /* position in the current epoch, in the task's units (micro-batches) */
    double ep_loss_sum, train_time;
    int64_t ep_correct, ep_seen;
    uint64_t layout, n_params, n_buffers;
    int32_t ranks, pad;
    double loss_scale;      /* current (lowered by skipped steps) */
    int64_t clean_steps;    /* finite steps since the scale last changed */
    int64_t skipped, skip_run; /* skipped steps: in all, and in a row */
} dp_drive_state;

/* The step's statistics: each rank fills its own, the driver sums them. */
enum { DP_STAT_LOSS, DP_STAT_CORRECT, DP_STAT_SEEN, DP_STAT_STOP, DP_STAT_NONFINITE, DP_NSTATS };

typedef struct dp_driver {
    const dp_run_opts *o;
    MPI_Comm comm;          /* the ranks of the run (MPI_COMM_NULL: alone) */
    int rank, size;
    dp_sync sync;           /* the task's parameters: gradient buckets and every agreement */
    const dp_params *params;/* what sync averages, is checked across ranks and checkpointed */
    dp_report rep;
    dp_drive_state st;
    long steps;             /* positions in the current epoch */
    long first_step;        /* st.step when this process started */
    long saved_step;        /* step of the newest checkpoint on disk (-1: none) */
    double session_train_s; /* seconds inside steps, this process */
    double session_seen;    /* samples (all ranks) of this process's steps */
    double t_start;         /* dp_now() when the epochs began */
    int stopped;            /* ended at --stop-after or a signal, checkpoint written */
    int finish_early;       /* set by the task's epoch_end: that epoch is the run's last (early stopping);
                               the checkpoint is written, then finish runs as after the last epoch */
    double ckpt_floats;     /* set by the task's load: floats its checkpoint sections hold (optimizer state ...) */
    char nonfinite[1200];   /* a task's step may say why its gradients are not usable */
    char ckpt[1024];
    int lock_fd;            /* rank 0: the run directory's lock (dptrain/rundir.h), -1: none */
    char config_text[DP_CONFIG_TEXT_CAP];
    dp_rank_times times;    /* --rank-times */
    int local_sgd;          /* --sync-every > 1 at several ranks: no gradient allreduce, see sync_now */
    int sync_now;           /* local SGD: this step's update ends by averaging the replicas (task's update) */
    double win[DP_NSTATS];  /* local SGD: this rank's statistics since the last sync */
} dp_driver;

/* An epoch as it ends: its sums over every rank, and its times. */
typedef struct dp_epoch {
    double loss, correct, seen; /* sums over the epoch (a resumed epoch: its earlier part included) */
    double seen_now;            /* samples of this process's part of the epoch */
    double began;               /* dp_now() when this process's part began */
    double step_s;              /* seconds inside its steps */
} dp_epoch;

/* What a task's build tells the driver. */
typedef struct dp_task_info {
    const dp_params *params;   /* averaged, checked and checkpointed by the driver */
    dp_sync_opts sync;
    char *config_text;         /* key=value lines the ranks agree on and a resume must match */
    size_t config_cap;
    int (*resume_key)(const char *key); /* 1: a resume must keep this key's value (NULL: every key) */
    /* "key=--flag" for each key whose flag is not --key (underscores as dashes); a key of several '/'-separated
     * values names one flag each ("w=--lr/--min-lr"); NULL-terminated (NULL: none). Resume errors name them. */
    const char *const *key_flags;
    /* Keys this run may write that an older checkpoint lacks: "key=value" with the value a checkpoint without
     * the key implies, NULL-terminated. When set, every key of this run's text missing from the checkpoint must
     * be listed with its value, else the resume differs (a lever switched on at resume is named). NULL: keys
     * the checkpoint lacks are not checked. */
    const char *const *implied;
} dp_task_info;

/* One section of a task's checkpoint: rank 0's bytes, given to every rank on --resume, or (per_rank)
 * every rank's own, gathered in rank order and scattered back. */
typedef struct dp_ck_part {
    uint32_t tag;
    const char *what;       /* names the section in errors */
    void *data;             /* the task's bytes, written on --resume */
    size_t bytes;           /* per rank, for per_rank */
    int per_rank;
} dp_ck_part;

typedef struct dp_task_ops {
    const char *name;       /* "train", "search", ...: the phase names and messages */
    const char *ckpt_name;  /* the checkpoint's file in the run directory (NULL: checkpoint.dpc) */
    const char *nonfinite_hint; /* what a non-finite step's error suggests (NULL: train's flags) */
    /*! The model, before the ranks compare configurations; may fail on one rank
     *  (the driver agrees on it). Fills info. */
    dp_status (*build)(void *t, dp_driver *d, dp_task_info *info);
    /*! Collective: data, samplers, initial parameters, optimizers, streams. */
    dp_status (*load)(void *t, dp_driver *d);
    /*! Collective, after load and --resume: the task's start-up line, extra agreements. */
    dp_status (*start)(void *t, dp_driver *d);
    /*! Start of an epoch (also one resumed midway): returns its positions. */
    long (*epoch_begin)(void *t, dp_driver *d);
    /*! Forward/backward over positions [pos, *next), gradients averaged;
     *  stats (DP_NSTATS) this rank's. A non-finite reduction leaves its reason in d->nonfinite. */
    dp_status (*step)(void *t, dp_driver *d, long pos, long *next, double *stats);
    /*! Clip and the optimizers, once the step's gradients are known finite. */
    dp_status (*update)(void *t, dp_driver *d);
    /*! After the step is counted: replica checks of more parameters, pruning (may be NULL). */
    dp_status (*after_step)(void *t, dp_driver *d);
    /*! End of an epoch: evaluation and the task's report; may end the run there (d->finish_early). */
    dp_status (*epoch_end)(void *t, dp_driver *d, const dp_epoch *e);
    /*! After the last epoch (not after a stop): final outputs (may be NULL). */
    dp_status (*finish)(void *t, dp_driver *d);
    /*! The task's checkpoint sections into p (at most DP_CK_TASK_PARTS): returns how many (NULL: no
     *  checkpoints). Called before each save and on --resume, so a task copies what it keeps elsewhere
     *  (counters, streams) into the bytes it names. */
    int (*parts)(void *t, dp_driver *d, dp_ck_part *p);
    /*! After --resume wrote the parts on every rank: the task takes them back (may be NULL). */
    dp_status (*restored)(void *t, dp_driver *d);
    /*! Learning rate at a step, for metrics (may be NULL). */
    double (*lr)(void *t, long step);
    void (*free)(void *t);
    /* 1: the task's step takes local gradients when d->local_sgd, and its update averages the parameters and
     * its optimizer state when d->sync_now (--sync-every > 1); 0: the driver refuses --sync-every > 1 */
    int local_sgd;
} dp_task_ops;

/*! Runs task t on the ranks of comm (MPI_COMM_NULL: alone, MPI not needed).
 *  Every rank returns the same status; d stays readable afterwards (free it
 *  with dp_drive_free, then the task). */
dp_status dp_drive(const dp_task_ops *ops, void *t, const dp_run_opts *o, MPI_Comm comm, dp_driver *d);
void dp_drive_free(dp_driver *d);
/*! Asks a running dp_drive to checkpoint and stop after the current step
 *  (async-signal-safe: call it from a SIGTERM handler); sig: the signal that asked (0: none). */
void dp_drive_request_stop(int sig);
/*! After dp_drive: the signal that stopped it, the same on every rank whichever ranks received it (the
 *  highest; 0: not stopped by a signal, or the run ended anyway). */
int dp_drive_stop_signal(void);

#ifdef __cplusplus
}
#endif
#endif
