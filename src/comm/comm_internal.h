/* Private to the comm room: the codec seam of the ring, the ring's core entry
 * points (no argument checks, no error-handler swap) and small MPI helpers.
 *
 * Codec seam: every message of the ring is one segment of one block. Before a
 * segment is sent it is "encoded"; after it is received it is "decoded and
 * reduced" into the buffer (reduce-scatter) or "decoded and copied" (allgather).
 * Messages carry their own byte count (receives are bounded by max_bytes and the
 * size is read back with MPI_Get_count), so a codec may emit fewer bytes than
 * its bound. In the allgather, received messages are forwarded as they are, not
 * re-encoded, so every rank decodes the same bytes.
 *
 * The identity float32 codec is "raw": its message is the segment's bytes, so the
 * ring sends straight from the buffer and encode is never called. */
#ifndef DP_COMM_INTERNAL_H
#define DP_COMM_INTERNAL_H

#include <stddef.h>

#include "dptrain/comm.h"

typedef struct dp_ring_codec dp_ring_codec;
struct dp_ring_codec {
    const char *name;
    /* 1: the message of n floats is exactly their 4n bytes, sent from the buffer */
    int raw;
    /* upper bound of the encoded size of n floats, in bytes */
    size_t (*max_bytes)(const dp_ring_codec *c, size_t n);
    /* encodes src[0..n) into dst (cap bytes) and sets *bytes; non-raw codecs only */
    dp_status (*encode)(const dp_ring_codec *c, const float *src, size_t n, void *dst,
                        size_t cap, size_t *bytes);
    /* dst[i] += decoded[i] for i < n; msg holds `bytes` received bytes */
    dp_status (*decode_reduce)(const dp_ring_codec *c, const void *msg, size_t bytes,
                               float *dst, size_t n);
    /* dst[i] = decoded[i] for i < n */
    dp_status (*decode_copy)(const dp_ring_codec *c, const void *msg, size_t bytes,
                             float *dst, size_t n);
};

/* The identity float32 codec (raw): what dp_ring_allreduce uses. */
extern const dp_ring_codec dp_ring_codec_identity;
/* The same bytes through the non-raw path (encode into staging, forward received
 * messages as they are): exercises the seam in tests until a real codec exists. */
extern const dp_ring_codec dp_ring_codec_identity_staged;

/* dp_ring_allreduce with an explicit codec (arguments checked, error handler
 * swapped as in the public call). */
dp_status dp_ring_allreduce_codec(float *buf, size_t count, dp_reduce_op op,
                                  MPI_Comm comm, dp_ring_ws *ws,
                                  const dp_ring_codec *codec);

/* Core of the ring: arguments already checked, MPI_ERRORS_RETURN already set on
 * comm, ws not NULL. Used by the engine on its duplicate communicator. */
dp_status dp_ring_run(float *buf, size_t count, dp_reduce_op op, MPI_Comm comm,
                      dp_ring_ws *ws, const dp_ring_codec *codec);

/* Number of receive slots of the ring (default 2: double-buffered), 1..8. For
 * tests and benchmarks. */
dp_status dp_ring_ws_set_depth(dp_ring_ws *ws, int depth);

/* MPI_Allreduce reference (chunks of INT_MAX floats, / P for AVG), same rules. */
dp_status dp_mpi_allreduce_run(float *buf, size_t count, dp_reduce_op op, MPI_Comm comm);

/* Argument checks shared by the public calls ("who" names the caller). */
dp_status dp_comm_check_args(const char *who, const float *buf, size_t count,
                             dp_reduce_op op, MPI_Comm comm);

/* buf[i] /= p: the one AVG division both algorithms use, so that they agree
 * bit for bit whenever their sums do. */
void dp_comm_divide(float *buf, size_t n, int p);

/* Error handler swap: sets MPI_ERRORS_RETURN on comm and remembers the old one. */
typedef struct dp_errh_guard {
    MPI_Comm comm;
    MPI_Errhandler old;
} dp_errh_guard;
dp_status dp_errh_enter(dp_errh_guard *g, MPI_Comm comm, const char *who);
void dp_errh_leave(dp_errh_guard *g);

/* Formats an MPI error code as text into buf (for messages). */
const char *dp_mpi_strerror(int code, char *buf, size_t cap);

#endif
