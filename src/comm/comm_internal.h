/* Private to the comm room: the codec seam of the ring, the ring's core entry
 * points (no argument checks, no error-handler swap), the choice between the
 * ring and MPI_Allreduce, and small MPI helpers.
 *
 * Who calls whom, never backwards: engine.c, rows.c, topk.c, powersgd.c ->
 * allreduce.c (the choice) -> ring.c -> codec*.c; engine.c (coded ranges) ->
 * ring.c; every file -> common.c (the helpers), which calls none.
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

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "dptrain/comm.h"
#include "dptrain/compress.h"

/* What the watchdog (watchdog.c) reads of the ring's progress: process-wide,
 * relaxed atomics, a few stores per message. */
void dp_wd_note_item(uint64_t index);          /* the engine starts range #index */
void dp_wd_note_wait(int peer, int step, int P); /* the ring waits for peer's message */
void dp_wd_note_progress(void);                /* a message arrived */

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
    /* msg holds `bytes` received bytes; for i < n, dst[i] += decoded[i] when add (the
     * reduce-scatter), dst[i] = decoded[i] otherwise (the allgather) */
    dp_status (*decode)(const dp_ring_codec *c, const void *msg, size_t bytes, float *dst,
                        size_t n, int add);
    /* 1: decode(encode(x)) may differ from x. The ring then applies error feedback
     * (when given a residual), makes the owner of a block replace its copy by the
     * decoded value (so every rank ends with the same bits), and treats an empty
     * message as "a rank upstream rejected its input" (see ring.c). */
    int lossy;
    /* bytes per element of the message, for the wire stage's byte shuffle (1: none) */
    size_t wire_elem;
    /* wrappers (wire stage): the codec whose bytes they compress; NULL otherwise */
    const dp_ring_codec *inner;
    /* mutable per-instance state (int8 RNG, zstd contexts), owned by a workspace */
    void *state;
};

/* The identity float32 codec (raw): what dp_ring_allreduce uses. */
extern const dp_ring_codec dp_ring_codec_identity;

/* The checks every codec makes (codec.c). Before encoding x[0..n): DP_ERR_ARG
 * unless cap bytes hold the encoding, DP_ERR_NONFINITE naming the first value
 * that is NaN/Inf or (limit > 0) of magnitude limit or more, which the codec
 * cannot carry. After receiving: DP_ERR_MPI unless the message of `bytes` is
 * the encoding of n values (else the ranks disagree on the count). */
dp_status dp_codec_check_input(const dp_ring_codec *c, const float *x, size_t n, size_t cap, float limit);
dp_status dp_codec_check_size(const dp_ring_codec *c, size_t bytes, size_t n);

/* The lossy codecs (codec_fp16.c, codec_int8.c). int8 keeps its RNG in a state
 * that dp_codec_int8_init ties to a codec struct. */
extern const dp_ring_codec dp_ring_codec_fp16;
extern const dp_ring_codec dp_ring_codec_bf16;
typedef struct dp_codec_int8_state {
    uint64_t seed; /* mixed from the config's seed and the rank */
    uint64_t ctr;  /* values encoded so far: the counter of the counter-based RNG */
} dp_codec_int8_state;
void dp_codec_int8_init(dp_ring_codec *c, void *state, uint64_t seed); /* state: a dp_codec_int8_state */
/*! Tests: 0 the portable quantiser, 1 the AVX2 one (only where the CPU has it), -1 detect. */
void dp_codec_int8_force_path(int avx2);

/* Scalar conversions (round to nearest even) and the bulk fp16 encoder; for tests.
 * dp_codec_f16c_force(0/1) picks the portable or the F16C path (1 only where the
 * CPU has it). */
uint16_t dp_f16_from_f32(float f);
float dp_f32_from_f16(uint16_t h);
uint16_t dp_bf16_from_f32(float f);
void dp_f16_encode_n(const float *src, uint16_t *dst, size_t n);
void dp_codec_f16c_force(int on);

/* One entry of the table of compressors (compress.c): a dp_codec_kind, how it
 * is named and parsed on the command line, how it joins the gradient sync and
 * what state it keeps. Each compressor's file defines its entry; compress.c
 * lists them. A ring codec gives its dp_ring_codec (with ring_init, a template
 * that ring_init sets up with ring_state_bytes of per-workspace state and a
 * seed); a lossy one keeps error feedback, one float per gradient float. An
 * after-backward compressor gives create / state / run / destroy. */
typedef struct dp_compress_ops {
    const char *name;      /* the --codec word ("fp16", "topk") */
    dp_codec_kind kind;
    dp_compress_hook hook; /* DP_COMPRESS_RING (none included) or DP_COMPRESS_AFTER_BACKWARD */
    const char *arg;       /* NULL: no argument; else how messages name it ("F" in topk:F) */
    /* the text after "name:" into c; s, the whole --codec string, is for messages */
    dp_status (*parse_arg)(const char *s, const char *arg, dp_compress *c);
    /* the --codec string of c (NULL: the name alone); as snprintf */
    int (*format)(const dp_compress *c, char *buf, size_t n);
    /* range checks of the fields it reads, naming the flags (NULL: none) */
    dp_status (*check)(const dp_compress *c);

    /* DP_COMPRESS_RING */
    const dp_ring_codec *ring;
    void (*ring_init)(dp_ring_codec *c, void *state, uint64_t seed);
    size_t ring_state_bytes;

    /* DP_COMPRESS_AFTER_BACKWARD; state_is_residual: all of the state is error
     * feedback in gradient units */
    int state_is_residual;
    dp_status (*create)(const dp_compress *c, const dp_grad_layout *l, void **self);
    float *(*state)(void *self, size_t *nfloats);
    dp_status (*run)(void *self, float *grad, MPI_Comm comm, double *sent, double *raw);
    void (*destroy)(void *self);
} dp_compress_ops;

/* The entry of `kind`, or NULL. */
const dp_compress_ops *dp_compress_ops_of(dp_codec_kind kind);

/* The codecs a workspace has built for dp_codec_config's (codec_wire.c): the int8
 * RNG state and the zstd wire stage (contexts and scratch that grow). */
typedef struct dp_codec_rt dp_codec_rt;
/*! Points *out at the codec for cfg on this rank, building *rt on first use.
 *  @return DP_OK, DP_ERR_ARG (bad config), DP_ERR_NOMEM. */
dp_status dp_codec_rt_select(dp_codec_rt **rt, const dp_codec_config *cfg, int rank,
                             const dp_ring_codec **out);
void dp_codec_rt_free(dp_codec_rt *rt);
/* Checks a config (kind, level). */
dp_status dp_codec_config_check(const char *who, const dp_codec_config *cfg);

/* dp_ring_allreduce with an explicit codec (arguments checked, error handler
 * swapped as in the public call). No error feedback, AVG divided at the end. */
dp_status dp_ring_allreduce_with(float *buf, size_t count, dp_reduce_op op,
                                 MPI_Comm comm, dp_ring_ws *ws,
                                 const dp_ring_codec *codec);

/* Core of the ring: arguments already checked, MPI_ERRORS_RETURN already set on
 * comm, ws not NULL (the engine's duplicate communicator, say). residual: error
 * feedback of a lossy codec (count floats, or NULL), as in ring_encode. */
dp_status dp_ring_run(float *buf, size_t count, dp_reduce_op op, MPI_Comm comm,
                      dp_ring_ws *ws, const dp_ring_codec *codec, float *residual);

/* Core of dp_ring_allreduce_codec (same preconditions as dp_ring_run): picks the
 * codec, pre-divides for AVG with lossy codecs, runs the ring. */
dp_status dp_ring_codec_run(float *buf, size_t count, dp_reduce_op op,
                            const dp_codec_config *cfg, float *residual, MPI_Comm comm,
                            dp_ring_ws *ws);

/* While *flag is nonzero the ring's waits sleep between tests instead of spinning
 * (ring.c, ring_wait: the engine sets it while the training thread computes). */
void dp_ring_ws_set_yield(dp_ring_ws *ws, const atomic_int *flag);

/* Sleepy waits (on: 1): every wait of the ring and of rd.c on ws spins a
 * little, then sleeps between tests (ring.c, ring_wait). For legs whose
 * messages cross nodes. @return the previous setting. */
int dp_ring_ws_set_sleepy(dp_ring_ws *ws, int on);
/* MPI_Wait as the ring waits on ws (spin, or the yield and sleepy rules). */
int dp_ring_ws_wait(dp_ring_ws *ws, MPI_Request *req, MPI_Status *status);

/* Number of receive slots of the ring (default 2: double-buffered), 1..8. For
 * tests and benchmarks. */
dp_status dp_ring_ws_set_depth(dp_ring_ws *ws, int depth);

/* Block b of count floats split into P blocks, the ring's partition (ring.c):
 * the first count % P blocks are one float longer. The hierarchical allreduce
 * finds the slice a node's reduce-scatter left on this rank with it. */
static inline size_t dp_block_off(size_t count, int P, int b)
{
    const size_t base = count / (size_t)P, rem = count % (size_t)P;
    return (size_t)b * base + ((size_t)b < rem ? (size_t)b : rem);
}
static inline size_t dp_block_len(size_t count, int P, int b)
{
    return count / (size_t)P + ((size_t)b < count % (size_t)P ? 1 : 0);
}

/* For the public entry points that take an optional workspace: *ws itself, or
 * a fresh one left in *tmp (NULL otherwise) for the caller to dp_ring_ws_free. */
dp_status dp_ring_ws_or_temp(dp_ring_ws **ws, dp_ring_ws **tmp);

/* The reduce-scatter half of dp_ring_run alone (identity codec, SUM): afterwards
 * rank r holds block (r + 1) mod P of the sum, the rest of buf is partial sums.
 * Same preconditions; counts bytes but not a call. */
dp_status dp_ring_run_rs(float *buf, size_t count, MPI_Comm comm, dp_ring_ws *ws);
/* The allgather half alone (identity codec), segmented and pipelined as in
 * dp_ring_run: rank r starts from block (r + 1) mod P (what dp_ring_run_rs
 * leaves) and ends with every block. Same preconditions; counts bytes but not a call. */
dp_status dp_ring_run_ag(float *buf, size_t count, MPI_Comm comm, dp_ring_ws *ws);

/* The workspace's counters, for the algorithms that share its buffers (rd.c, hier.c). */
dp_comm_stats *dp_ring_ws_counters(dp_ring_ws *ws);
/* A receive buffer of at least n floats kept in ws (grown once); NULL when out of memory. */
float *dp_ring_ws_aux(dp_ring_ws *ws, size_t n);
/* The workspace's segment in floats (rd.c chunks its messages by it too). */
size_t dp_ring_ws_seg_elems(const dp_ring_ws *ws);
/* The topology attached with dp_ring_ws_set_topo, or NULL. */
dp_topo *dp_ring_ws_topo(const dp_ring_ws *ws);

/* rd.c. Core of dp_rd_allreduce (preconditions of dp_ring_run); counts a call. */
dp_status dp_rd_run(float *buf, size_t count, dp_reduce_op op, MPI_Comm comm, dp_ring_ws *ws);

/* hier.c. Core of dp_hier_allreduce: MPI_ERRORS_RETURN on t's communicator (its
 * node and column communicators always have it), ws not NULL. */
dp_status dp_hier_run(float *buf, size_t count, dp_reduce_op op, dp_allreduce_algo inter, dp_topo *t,
                      dp_ring_ws *ws);
/* The same with a codec on the inter-node leg (ring across nodes), residual: the
 * flat error-feedback buffer of count floats (or NULL); core of dp_hier_allreduce_codec. */
dp_status dp_hier_codec_run(float *buf, size_t count, dp_reduce_op op, const dp_codec_config *cfg, float *residual,
                            dp_topo *t, dp_ring_ws *ws);

/* topo.c. The communicator t describes, and its node and column communicators
 * (MPI_COMM_NULL for uneven nodes). */
MPI_Comm dp_topo_comm(const dp_topo *t);
MPI_Comm dp_topo_node_comm(const dp_topo *t);
MPI_Comm dp_topo_col_comm(const dp_topo *t);
/* dp_topo_create with this rank's node given (color >= 0: the ranks of one
 * color form a node, in rank order; -1: MPI_Comm_split_type), for tests of
 * node layouts a launcher may produce (round-robin, uneven). Collective. */
dp_status dp_topo_create_colored(MPI_Comm comm, int color, dp_topo **out);

/* allreduce.c. Core of dp_allreduce, same preconditions as dp_ring_run: the
 * ring with the identity codec (algo RING) or MPI_Allreduce in chunks of
 * INT_MAX floats then / P for AVG (algo MPI; ws unused); RD and HIER* as in
 * dp_allreduce (HIER* take the topology attached to ws). */
dp_status dp_allreduce_run(float *buf, size_t count, dp_reduce_op op, dp_allreduce_algo algo,
                           MPI_Comm comm, dp_ring_ws *ws);

/* dp_allreduce (the public call) on the room's own workspace ws, adding what the
 * ring's byte counters moved by to *sent and *recv (MPI_Allreduce moves none). */
dp_status dp_allreduce_counted(float *buf, size_t n, dp_reduce_op op, dp_allreduce_algo algo, MPI_Comm comm,
                               dp_ring_ws *ws, uint64_t *sent, uint64_t *recv);

/* common.c below: what every file of the room may call. */

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

/* Ring allgather over MPI_Sendrecv: block q of buf holds off[q + 1] - off[q]
 * elements of `type` from element off[q] (off NULL: k elements from q k), and
 * block `rank` is already in place. At step s this rank sends block
 * (rank - s) mod size to rank + 1 and receives block (rank - s - 1) mod size
 * from rank - 1. Adds the bytes to stats (NULL: not counted); `what` opens the
 * error message ("dp_rows_allreduce: allgather of row ids"). */
dp_status dp_ring_allgather(void *buf, const size_t *off, size_t k, MPI_Datatype type, int rank, int size,
                            int tag, MPI_Comm comm, const char *what, dp_comm_stats *stats);
/* The same where this rank holds block (rank + shift) mod size instead (shift 1:
 * what dp_ring_run_rs leaves), so the reduce-scatter and allgather line up. */
dp_status dp_ring_allgather_shift(void *buf, const size_t *off, size_t k, MPI_Datatype type, int rank,
                                  int shift, int size, int tag, MPI_Comm comm, const char *what,
                                  dp_comm_stats *stats);

/* splitmix64 (Steele, Lea, Flood 2014): the key of int8's rounding stream,
 * PowerSGD's normal draws. */
uint64_t dp_mix64(uint64_t x);

/* Seconds on the monotonic clock (MPI_Wtime needs MPI_Init; MPI_COMM_NULL calls do not). */
double dp_comm_now_s(void);

/* A 64-byte aligned buffer of at least `need` bytes; keeps the old one if large
 * enough (its contents are not kept otherwise). @return 0 when out of memory. */
int dp_comm_grow(unsigned char **p, size_t *cap, size_t need);

#endif
