/* What the trainer needs from the other ranks: agreement on the
 * configuration, identical initial replicas, gradient averaging in buckets
 * (overlapped with backward through the comm engine), per-step statistics and
 * the replica check. With no communicator (MPI not initialised) or one rank,
 * every call is a cheap no-op, so single-process training needs no MPI. */
#ifndef DP_TRAIN_SYNC_H
#define DP_TRAIN_SYNC_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "dptrain/comm.h"
#include "dptrain/compress.h"
#include "dptrain/nn.h"

typedef struct dp_bucket {
    size_t lo, hi;   /* range of the flat gradient buffer */
    int params;      /* parameters in it */
    int pending;     /* this step: parameters whose gradient is not final yet */
} dp_bucket;

typedef struct dp_sync {
    MPI_Comm comm;   /* MPI_COMM_NULL: single process */
    int rank, size;
    dp_engine *engine;
    int overlap;
    const dp_params *params;
    int np;          /* trainable parameters */
    size_t *p_off;   /* [np] offsets, ascending */
    int *p_bucket;   /* [np] */
    int *p_uses;     /* [np] tape nodes that still owe this parameter a gradient */
    dp_bucket *buckets;
    int nb, next;    /* buckets; next to submit (buckets go out in index order) */
    int active;      /* within a step that communicates */
    dp_compress codec; /* gradient compression (kind NONE and no wire stage: plain float32) */
    dp_compressor *compressor; /* codec at work (several ranks and not plain float32); else NULL */
    int codec_on;    /* this step goes through the compressor (off before --codec-start) */
    uint64_t step;   /* names the step in the codec's random stream, so a resumed run rounds alike */
    float *residual; /* the state when all of it is error feedback (lossy ring codecs, top-k and
                        DGC's velocity): a new loss scale rescales it; else NULL */
    float *state;    /* what a checkpoint must keep of the compressor, this rank's (or NULL) */
    size_t state_n;
    double compress_sent, compress_raw; /* bytes of after-backward compressors (top-k, PowerSGD) */
    double comm_wait_s; /* time the training thread spent waiting for allreduces */
    double coll_wait_s; /* ... and in the other collectives: broadcasts, statistics sums (--rank-times) */
    dp_watchdog *wd;    /* NULL: off; the driver creates it (comm.h), dp_sync_free frees it */
    uint64_t *hashes;   /* [size] the replica check's gather */
    uint64_t item_base; /* engine ranges submitted before this step's buckets */
} dp_sync;

typedef struct dp_sync_opts {
    dp_allreduce_algo algo;
    const char *allreduce_table; /* auto's table file (NULL or "": DP_ALLREDUCE_TABLE, else built-in) */
    size_t bucket_bytes;
    int overlap;
    dp_compress codec;    /* carried whole from the command line */
} dp_sync_opts;

dp_status dp_sync_init(dp_sync *s, MPI_Comm comm, const dp_params *p, const dp_sync_opts *o);
void dp_sync_free(dp_sync *s);

/* The longest configuration text (with its NUL) the ranks compare and a checkpoint keeps: a network
 * description's JSON travels in it (model_json=), so it holds a few hundred layers. */
#define DP_CONFIG_TEXT_CAP 65536

/*! Compares `text` (key=value lines, under DP_CONFIG_TEXT_CAP bytes) across ranks; a difference stops every
 *  rank with DP_ERR_MPI naming the rank, the field and both values. */
dp_status dp_sync_agree(dp_sync *s, const char *text);
/*! Collective: every rank passes its own status of a step that may fail on
 *  one rank only (loading data, opening files). If any rank failed, all return
 *  an error: the failing rank its own, prefixed with its rank, the others
 *  DP_ERR_MPI saying that `what` failed on another rank. */
dp_status dp_sync_all_ok(dp_sync *s, dp_status mine, const char *what);
/*! Collective: rank 0's status, with its message, becomes every rank's (a
 *  step only rank 0 does, such as reading a checkpoint). */
dp_status dp_sync_root_status(dp_sync *s, dp_status rc);
/*! Rank 0's bytes to every rank. */
dp_status dp_sync_bcast(dp_sync *s, void *buf, size_t bytes);
/*! Every rank's `bytes` to rank 0's `all` (size x bytes, rank order; only
 *  rank 0's `all` is written), and back: rank 0's slice r to rank r. */
dp_status dp_sync_gather0(dp_sync *s, const void *mine, size_t bytes, void *all);
dp_status dp_sync_scatter0(dp_sync *s, const void *all, size_t bytes, void *mine);
/*! Element-wise sum over ranks of a few doubles (step statistics). */
dp_status dp_sync_sum(dp_sync *s, double *v, int n);
/*! Every rank's long. */
dp_status dp_sync_allgather_long(dp_sync *s, long v, long *all);
/*! crc32 of the parameter and buffer ranges compared across ranks. */
/*! Local SGD's sync: buf (n floats, identical layout on every rank) replaced by its mean over the ranks,
 *  through the gradient engine (the same algorithm and buckets' path), counted in comm_wait_s. */
dp_status dp_sync_average(dp_sync *s, float *buf, size_t n);
dp_status dp_sync_check_replicas(dp_sync *s, const dp_params *p, long step);

/*! What this rank does between waits, for the watchdog's report. */
void dp_sync_phase(dp_sync *s, const char *phase, long step);

/*! Bytes this rank has sent for gradients so far: on the wire, and the
 *  float32 bytes they stand for. */
void dp_sync_wire_bytes(dp_sync *s, double *wire, double *raw);
/*! With --allreduce auto: what auto picked for this run's buckets, e.g.
 *  " (mpi for 2 bucket(s) up to 96 KiB, ring for 3 up to 4096 KiB; table built-in)"; else "". */
void dp_sync_auto_desc(dp_sync *s, char *buf, size_t n);

/*! Before backward of a step whose gradients are averaged: counts, per
 *  parameter, the tape nodes that will add to its gradient, and installs the
 *  hook that submits each bucket once its last gradient is final. */
void dp_sync_begin(dp_sync *s, dp_ctx *c);
/*! After backward (or instead of it, for an empty local batch): submits what
 *  is left in order and waits for every bucket. */
dp_status dp_sync_end(dp_sync *s, dp_ctx *c);

#endif
