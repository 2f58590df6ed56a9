/* Gradient compression as one description, from the command line to the
 * gradient sync (src/comm/compress.c).
 *
 * `--codec none|fp16|bf16|int8|topk:F|powersgd:R` (with --wire-zstd, --dgc,
 * --codec-start) is parsed into a dp_compress, checked, carried whole in the
 * task's configuration and in dp_sync_opts, and run by a dp_compressor. Each
 * kind is one entry of comm's table of compressors, which says how it joins
 * the sync:
 *   DP_COMPRESS_RING            an elementwise ring codec (none, fp16, bf16,
 *                               int8) on the messages of every gradient
 *                               bucket, while backward runs (dp_ring_allreduce_codec);
 *                               lossy codecs keep error feedback (n floats);
 *   DP_COMPRESS_AFTER_BACKWARD  its own collectives over the whole gradient
 *                               once backward is done: top-k per bucket (error
 *                               feedback, n floats; 2 n with DGC's velocity) and
 *                               PowerSGD (residual and Q, dp_powersgd_state).
 * Adding a compressor is one file in src/comm/ with its table entry
 * (dp_compress_ops, comm_internal.h), a line in compress.c's table, a
 * dp_codec_kind value and the file in src/comm/sources.cmake. */
#ifndef DPTRAIN_COMPRESS_H
#define DPTRAIN_COMPRESS_H

#include <stddef.h>
#include <stdint.h>

#include "dptrain/comm.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dp_compress {
    dp_codec_kind kind;   /* which compressor (DP_CODEC_NONE: plain float32) */
    int wire_zstd_level;  /* --wire-zstd: byte-shuffle + zstd on every ring message, 0 = off,
                             1..DP_CODEC_ZSTD_MAX; ring codecs only */
    uint64_t seed;        /* int8's stochastic rounding, PowerSGD's initial Q (the run's --seed) */
    double topk_fraction; /* topk: fraction of each bucket sent, (0, 1] */
    float dgc_momentum;   /* topk: DGC momentum correction factor (--dgc), 0 = off, else (0, 1) */
    int powersgd_rank;    /* powersgd: rank R of the factors, 1..1024 */
    long start;           /* --codec-start: plain float32 allreduce before this step */
} dp_compress;

/* How a compressor joins the gradient sync. */
typedef enum dp_compress_hook {
    DP_COMPRESS_OFF = 0,        /* plain float32 buckets: kind none without a wire stage */
    DP_COMPRESS_RING,           /* a codec on each bucket's ring messages, overlapped with backward */
    DP_COMPRESS_AFTER_BACKWARD, /* its own collectives over the whole gradient after backward */
} dp_compress_hook;

/*! Parses a --codec string, "none", "fp16", "bf16", "int8", "topk:F" or
 *  "powersgd:R", into c: sets kind and that kind's argument, leaves the other
 *  fields as they are.
 *  @return DP_OK, or DP_ERR_ARG naming --codec, the string and what is known. */
dp_status dp_compress_parse(const char *s, dp_compress *c);

/*! Writes the --codec string of c (what dp_compress_parse reads back), with
 *  "+dgc:M" appended when DGC is on (--dgc's share). @return as snprintf. */
int dp_compress_name(const dp_compress *c, char *buf, size_t n);

/*! Range checks of every field, the messages naming the flag (--codec,
 *  --wire-zstd, --dgc, --codec-start); `algo` is the run's --allreduce (ring
 *  codecs need ring or hier; hier-rd, rd and mpi are refused naming both
 *  flags). @return DP_OK or DP_ERR_ARG. */
dp_status dp_compress_check(const dp_compress *c, dp_allreduce_algo algo);

/*! How c joins the sync (DP_COMPRESS_OFF for an unknown kind, too). */
dp_compress_hook dp_compress_hook_of(const dp_compress *c);

/*! 1 when c compresses step `step` (0-based optimizer steps): it is not
 *  plain float32 and step >= c->start. */
int dp_compress_on(const dp_compress *c, long step);

/*! c with an after-backward compressor replaced by plain float32 (its wire
 *  stage kept): what a gradient that must stay dense (the search's alpha) uses. */
dp_compress dp_compress_ring_part(const dp_compress *c);

/* What a compressor needs to know of the flat gradient buffer: its size, its
 * parameters (2-D views, which PowerSGD compresses, and 1-D ones) and the
 * buckets of the sync (ranges in submission order; top-k selects per bucket). */
typedef struct dp_grad_layout {
    size_t n;
    const dp_powersgd_matrix *mats;
    int nmats;
    const dp_powersgd_range *vecs;
    int nvecs;
    const dp_powersgd_range *buckets;
    int nbuckets;
} dp_grad_layout;

/* A compressor at work on one rank: its state and workspaces. */
typedef struct dp_compressor dp_compressor;

/*! Creates the compressor c describes over layout l (copied). The state starts
 *  at zero (PowerSGD's Q from c->seed). @return DP_OK, DP_ERR_ARG, DP_ERR_NOMEM. */
dp_status dp_compressor_create(const dp_compress *c, const dp_grad_layout *l, dp_compressor **out);

/*! Frees x (NULL is accepted). */
void dp_compressor_free(dp_compressor *x);

/*! @return how x joins the sync. */
dp_compress_hook dp_compressor_hook(const dp_compressor *x);

/*! This rank's checkpointable state (a lossy ring codec's or top-k's error
 *  feedback, PowerSGD's dp_powersgd_state), or NULL with *nfloats = 0. Owned by x. */
float *dp_compressor_state(dp_compressor *x, size_t *nfloats);

/*! The state when all of it is error feedback in gradient units (a change of
 *  loss scale rescales it), else NULL. */
float *dp_compressor_residual(dp_compressor *x);

/*! DP_COMPRESS_RING: the codec of bucket `bucket` of step `step`, for the
 *  gradient range starting at lo, and that range's error feedback (NULL:
 *  none), to hand to dp_engine_submit_codec. The random streams are a
 *  function of (seed, step, bucket), so a resumed run repeats them. */
dp_status dp_compressor_bucket(const dp_compressor *x, size_t lo, uint64_t step, int bucket, dp_codec_config *cc,
                               float **residual);

/*! DP_COMPRESS_AFTER_BACKWARD: one compressed allreduce (SUM) of the whole
 *  gradient grad[0, l.n) over comm; adds the bytes this rank sent to *sent
 *  and what a float32 ring would have sent to *raw.
 *  @return DP_OK, DP_ERR_ARG, DP_ERR_NOMEM, DP_ERR_MPI, DP_ERR_NONFINITE (on
 *          every rank; see dp_topk_allreduce, dp_powersgd_allreduce). */
dp_status dp_compressor_run(dp_compressor *x, float *grad, MPI_Comm comm, double *sent, double *raw);

#ifdef __cplusplus
}
#endif
#endif
