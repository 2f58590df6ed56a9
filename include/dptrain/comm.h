/* Collective communication for data-parallel training: the ring allreduce, its
 * workspace, and the communication engine that overlaps allreduces with backward.
 *
 * Where this sits: backward leaves gradients in one flat buffer; the trainer hands
 * ranges of it ("buckets") to dp_engine_submit() as they become ready, and calls
 * dp_engine_wait_all() before the optimizer step. Nothing here knows about
 * tensors or models: the unit of work is a (float *, n) range and an MPI_Comm,
 * which may be MPI_COMM_WORLD or any intra-communicator (DSI ensembles run on
 * sub-communicators).
 *
 * Collective rules (as for any MPI collective): every rank of `comm` calls the
 * same function with the same count, op and algorithm, in the same order. A rank
 * that passes different arguments makes the call fail with DP_ERR_MPI (message
 * sizes disagree) or hang; it is not detected in general.
 *
 * Errors: DP_ERR_ARG for bad arguments (checked locally before any message is
 * sent), DP_ERR_NOMEM, DP_ERR_MPI when an MPI call fails; the message (dp_errmsg)
 * names this rank, the peer and the step. After DP_ERR_MPI the communicator's
 * message state is undefined (Open MPI 4.1 cannot recover without ULFM): report
 * and MPI_Abort.
 *
 * Messages: dp_ring_allreduce sends point-to-point messages with tags
 * DP_COMM_RING_TAG and DP_COMM_RING_TAG + 1 on the caller's communicator; do not
 * leave receives for those tags (or MPI_ANY_TAG) posted on it. While the call runs, the communicator's error handler is set
 * to MPI_ERRORS_RETURN and restored before returning. The engine works on its own
 * duplicate of the communicator and never touches the caller's. */
#ifndef DPTRAIN_COMM_H
#define DPTRAIN_COMM_H

#include <stddef.h>
#include <stdint.h>

#include <mpi.h>

#include "dptrain/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dp_reduce_op {
    DP_REDUCE_SUM = 0, /* x = sum over ranks */
    DP_REDUCE_AVG,     /* x = (sum over ranks) / P, P = size of the communicator */
} dp_reduce_op;

/* The order is the --allreduce flag's list of names (dp_allreduce_algo_name). */
typedef enum dp_allreduce_algo {
    DP_ALLREDUCE_RING = 0, /* dp_ring_allreduce: ours, segmented and pipelined */
    DP_ALLREDUCE_MPI,      /* MPI_Allreduce (the reference), then / P for AVG */
    DP_ALLREDUCE_HIER,     /* dp_hier_allreduce, ring across nodes (needs a dp_topo) */
    DP_ALLREDUCE_HIER_RD,  /* dp_hier_allreduce, recursive halving/doubling across nodes */
    DP_ALLREDUCE_RD,       /* dp_rd_allreduce: flat recursive halving/doubling */
    DP_ALLREDUCE_AUTO,     /* per call, one of the above by message size (dp_allreduce_table) */
    DP_ALLREDUCE_NALGOS
} dp_allreduce_algo;

/*! @return "ring", "mpi", "hier", "hier-rd", "rd", "auto" (the --allreduce words), "?" otherwise. */
const char *dp_allreduce_algo_name(dp_allreduce_algo a);

/* DP_ERR_MPI with the message fmt, then ": " and the text of MPI error `code`;
 * DP_OK when code is MPI_SUCCESS, so an MPI call's result can be passed straight in. */
dp_status dp_mpi_errorf(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* First of the two tags of the ring's point-to-point messages ('d','p' in ASCII). */
#define DP_COMM_RING_TAG 0x6470

/* Default segment size of the ring, in bytes: the unit that is received, reduced
 * and forwarded; blocks longer than this stream in segments. Large enough to
 * amortise the cost of a message, small enough that a receive slot and the
 * segment of the buffer it is reduced into stay in L2 (chosen with
 * benchmarks/bench_allreduce --seg; figures in benchmarks/RESULTS.md §11). */
#define DP_RING_SEGMENT_BYTES_DEFAULT ((size_t)256 * 1024)

/* Byte, call and time counters, accumulated until reset. */
typedef struct dp_comm_stats {
    uint64_t calls;      /* allreduce calls (ranges) */
    uint64_t elems;      /* floats reduced: the sum of their counts */
    uint64_t bytes_sent; /* message payload bytes this rank sent (ring only) */
    uint64_t bytes_recv; /* message payload bytes this rank received (ring only) */
    double seconds;      /* wall time inside allreduce calls (engine only) */
    /* Compression (ring only). Per message sent: the float32 bytes it stands for,
     * and its size after the codec but before the wire stage; bytes_sent is its
     * size on the wire. raw/codec is the codec's ratio, codec/sent the wire
     * stage's, raw/sent the whole. Equal to bytes_sent without a codec. */
    uint64_t bytes_raw_sent;
    uint64_t bytes_codec_sent;
    /* The part of bytes_sent / bytes_recv that crossed between nodes (the
     * hierarchical allreduces' inter-node leg); 0 for the flat algorithms. */
    uint64_t bytes_inter_sent;
    uint64_t bytes_inter_recv;
} dp_comm_stats;

/* ------------------------------------------------------------------------- */
/* Codecs                                                                     */
/* ------------------------------------------------------------------------- */

/* What the ring sends for each value (the reduce-scatter partial sums and the
 * reduced blocks of the allgather alike). Bounds per value encoded, x the value:
 *   NONE  float32, exact.
 *   FP16  IEEE half, round to nearest even: |err| <= 2^-11 |x| for |x| >= 2^-14,
 *         <= 2^-25 below (subnormal halves); |x| >= 65520 is rejected
 *         (DP_ERR_NONFINITE), as are NaN and Inf.
 *   BF16  bfloat16, round to nearest even: |err| <= 2^-8 |x| (2^-134 absolute
 *         below 2^-126); NaN/Inf rejected.
 *   INT8  blocks of DP_CODEC_INT8_BLOCK values, scale s = max|x|/127 per block,
 *         stochastic rounding: unbiased, |err| < s (1 + 2^-14); NaN/Inf rejected.
 * A value is encoded once per rank per call (see dp_ring_allreduce_codec), so the
 * result's error is at most P times the bound at the partial sums' magnitude. */
typedef enum dp_codec_kind {
    DP_CODEC_NONE = 0,
    DP_CODEC_FP16,
    DP_CODEC_BF16,
    DP_CODEC_INT8,
    /* top-k and PowerSGD change what is reduced, not how a value is encoded:
     * they are calls of their own (dp_topk_allreduce, dp_powersgd_allreduce),
     * never a dp_codec_config's kind; they are kinds of dp_compress
     * (dptrain/compress.h), the one description of gradient compression. */
    DP_CODEC_TOPK,
    DP_CODEC_POWERSGD,
} dp_codec_kind;

#define DP_CODEC_INT8_BLOCK 256
#define DP_CODEC_ZSTD_MAX 19 /* highest wire_zstd_level accepted */

typedef struct dp_codec_config {
    dp_codec_kind kind;
    /* Lossless wire stage after the codec on every message: byte-shuffle (one plane
     * per byte of an element: 4 for float32, 2 for fp16/bf16; int8 unshuffled),
     * then zstd at this level. 0 = off, 1..DP_CODEC_ZSTD_MAX. */
    int wire_zstd_level;
    /* INT8 stochastic rounding: runs with the same seed, ranks and calls are
     * reproducible (the generator is counter-based, mixed with the rank). */
    uint64_t seed;
} dp_codec_config;

/*! Parses a ring codec's name: "none", "fp16", "bf16", "int8" (case-sensitive).
 *  Sets out->kind and leaves its other fields as they are.
 *  @return DP_OK, or DP_ERR_ARG naming the unknown string and the known ones. */
dp_status dp_codec_parse(const char *s, dp_codec_config *out);

/*! @return the name of `kind` in comm's table of compressors ("fp16", "topk";
 *  "?" for an unknown one). */
const char *dp_codec_name(dp_codec_kind kind);

/* ------------------------------------------------------------------------- */
/* Ring allreduce                                                             */
/* ------------------------------------------------------------------------- */

/* Preallocated receive buffers and request arrays of the ring, plus its byte
 * counters. Buffers grow when a call needs more (a larger count or communicator)
 * and are kept, so steady-state calls do not allocate. One workspace serves one
 * thread at a time. */
typedef struct dp_ring_ws dp_ring_ws;

/*! Creates a ring workspace.
 *  @param segment_bytes  segment size in bytes (rounded down to whole floats);
 *                        0 picks DP_RING_SEGMENT_BYTES_DEFAULT. At most 1 GiB.
 *  @param out            receives the workspace; free it with dp_ring_ws_free.
 *  @return DP_OK, DP_ERR_ARG (bad size, NULL out) or DP_ERR_NOMEM. */
dp_status dp_ring_ws_create(size_t segment_bytes, dp_ring_ws **out);

/*! Frees a workspace (NULL is accepted). */
void dp_ring_ws_free(dp_ring_ws *ws);

/*! Copies the counters accumulated by dp_ring_allreduce calls on `ws`. */
void dp_ring_ws_stats(const dp_ring_ws *ws, dp_comm_stats *out);

/*! Sets the counters of `ws` to zero. */
void dp_ring_ws_reset_stats(dp_ring_ws *ws);

/*! In-place ring allreduce of buf[0..count) over `comm`: reduce-scatter then
 *  allgather, one block per rank, each block streamed in segments.
 *  @param buf    count floats, replaced by the reduction on every rank; may be
 *                NULL when count == 0.
 *  @param op     DP_REDUCE_SUM or DP_REDUCE_AVG.
 *  @param comm   an intra-communicator; size 1 is a no-op.
 *  @param ws     workspace; NULL allocates a temporary one for this call.
 *  @return DP_OK, DP_ERR_ARG, DP_ERR_NOMEM or DP_ERR_MPI (see the top of file). */
dp_status dp_ring_allreduce(float *buf, size_t count, dp_reduce_op op, MPI_Comm comm,
                            dp_ring_ws *ws);

/*! dp_ring_allreduce through a codec, with optional error feedback.
 *  Every rank passes the same count, op and config (kind, level).
 *  @param cfg       NULL or kind NONE without wire stage: exactly dp_ring_allreduce.
 *  @param residual  n floats owned by the caller (a range of a flat buffer, so it
 *                   can be checkpointed), zero before the first call; or NULL
 *                   for no error feedback. Lossy codecs only; with NONE it is
 *                   added into buf and zeroed.
 *  Lossy codecs: AVG divides every rank's input by P before anything is encoded
 *  (fp16 sums cannot overflow on the way); each rank encodes each value exactly
 *  once (its partial sum, or for the block it owns the full sum); the result is
 *  what every rank decodes from the same bytes, so it is bit-identical on all
 *  ranks. With a residual e (per rank), per element and per call:
 *      result + sum_ranks e_new = sum_ranks (x + e_old)     [x: input, / P for AVG]
 *  up to float rounding of the additions; see src/comm/ring.c for why.
 *  Size 1 is a no-op (exact; residual untouched).
 *  @return DP_OK, DP_ERR_ARG, DP_ERR_NOMEM, DP_ERR_MPI, or DP_ERR_NONFINITE when
 *          any rank met NaN/Inf (or a value beyond fp16's range) in what it
 *          encoded: then every rank returns it (the ring still completes), the
 *          message of the rank that met it names rank and index, and buf and
 *          residual are unspecified. */
dp_status dp_ring_allreduce_codec(float *buf, size_t n, dp_reduce_op op,
                                  const dp_codec_config *cfg, float *residual,
                                  MPI_Comm comm, dp_ring_ws *ws);

/* ------------------------------------------------------------------------- */
/* Node topology and the hierarchical allreduce (src/comm/topo.c, hier.c, rd.c) */
/* ------------------------------------------------------------------------- */

/* Which ranks of a communicator share a node: a node communicator (the ranks of
 * this rank's node) and a column communicator (one rank per node: those with the
 * same local rank), both created once, duplicates owned by the topology. Nodes
 * come from MPI_Comm_split_type(MPI_COMM_TYPE_SHARED), or are simulated as
 * consecutive groups of R ranks (node = rank / R) for tests and CI without
 * several hosts. When nodes hold different numbers of ranks (uneven), the
 * topology is built without node/column communicators and the hierarchical
 * allreduce runs the flat ring instead (rank 0 warns once on stderr). */
typedef struct dp_topo dp_topo;

/* Tags: the intra-node allgather of dp_hier_allreduce ('d','h') on the node
 * communicator, recursive halving/doubling ('d','d') on the communicator it
 * runs on (the caller's for dp_rd_allreduce). The ring's tags as above. */
#define DP_COMM_HIER_TAG 0x6468
#define DP_COMM_RD_TAG 0x6464

/*! Collective over comm. ranks_per_node R > 0 simulates nodes of R ranks;
 *  R = 0 reads the environment variable DP_RANKS_PER_NODE (a positive integer
 *  dividing the size of comm) and, when it is unset or empty, asks MPI.
 *  Every rank must pass the same R and see the same variable.
 *  @return DP_OK; DP_ERR_ARG (on every rank, before any message) for a bad
 *          R or DP_RANKS_PER_NODE value, naming it and the size of comm;
 *          DP_ERR_NOMEM; DP_ERR_MPI. */
dp_status dp_topo_create(MPI_Comm comm, int ranks_per_node, dp_topo **out);
/*! Frees the communicators (collective, like MPI_Comm_free) and t. NULL is accepted. */
void dp_topo_free(dp_topo *t);
/*! Nodes, ranks per node (the largest when uneven), this rank's node and local
 *  rank; @return 1 when every node holds the same number of ranks, else 0. */
int dp_topo_shape(const dp_topo *t, int *nodes, int *per_node, int *node, int *local);

/*! Hierarchical in-place allreduce of buf[0..n) over the communicator t was made
 *  on: ring reduce-scatter inside each node, then an allreduce of each rank's
 *  reduced slice among the ranks of the same local rank on the other nodes
 *  (`inter`: DP_ALLREDUCE_RING or DP_ALLREDUCE_RD), then a ring allgather
 *  inside the node. AVG divides the reduced slice by the size of the whole
 *  communicator, as dp_comm_divide does for the ring. Equal bit for bit on every
 *  rank, and to MPI_Allreduce where float sums are exact (integer data). Uneven
 *  nodes: exactly dp_ring_allreduce. Counts into ws (bytes_inter_* for the
 *  inter-node leg). One thread at a time per t and ws.
 *  @return as dp_ring_allreduce. */
dp_status dp_hier_allreduce(float *buf, size_t n, dp_reduce_op op, dp_allreduce_algo inter,
                            dp_topo *t, dp_ring_ws *ws);

/*! dp_hier_allreduce with a codec (see dp_ring_allreduce_codec) on the inter-node
 *  leg only: the node's reduce-scatter and allgather stay exact float32, each
 *  rank's reduced slice crosses nodes through the codec, with error feedback in
 *  residual's slice of the same positions (residual: n floats or NULL; elements
 *  outside this rank's slice are untouched). Lossy codecs divide the slice by the
 *  world size before encoding for AVG. The result is bit-identical on every rank;
 *  with one rank per node it is dp_ring_allreduce_codec's, bit for bit. cfg NULL:
 *  no codec. inter must be DP_ALLREDUCE_RING (DP_ERR_ARG else: halving/doubling
 *  does not encode). Uneven nodes: exactly dp_ring_allreduce_codec.
 *  @return as dp_ring_allreduce_codec: DP_ERR_NONFINITE on every rank when any
 *          rank met a value its codec cannot carry. */
dp_status dp_hier_allreduce_codec(float *buf, size_t n, dp_reduce_op op, dp_allreduce_algo inter,
                                  const dp_codec_config *cfg, float *residual, dp_topo *t, dp_ring_ws *ws);

/*! Recursive halving/doubling (Rabenseifner) allreduce of buf[0..n) over comm:
 *  reduce-scatter by recursive halving, allgather by recursive doubling, 2 log2 P'
 *  steps (P' the largest power of two <= P); with P not a power of two the first
 *  2(P - P') ranks fold in pairs first (the even one hands its vector to the odd
 *  one) and get the result back at the end. Latency O(log P), so it suits small
 *  messages; bandwidth 2 (P'-1)/P' n plus n for the folded ranks. Messages go in
 *  chunks of ws's segment (at most 256 KiB), several in flight, through bounded
 *  receive slots of ws; the last halving and first doubling step stream as one
 *  exchange. ws: NULL allocates a temporary one.
 *  @return as dp_ring_allreduce. */
dp_status dp_rd_allreduce(float *buf, size_t n, dp_reduce_op op, MPI_Comm comm, dp_ring_ws *ws);

/*! Attaches a topology to a workspace, for dp_allreduce / dp_engine with the
 *  hierarchical algorithms (not owned; NULL detaches). */
void dp_ring_ws_set_topo(dp_ring_ws *ws, dp_topo *t);

/*! In-place allreduce with the chosen algorithm: DP_ALLREDUCE_AUTO takes the
 *  built-in rule (dp_allreduce_table_default) for the shape of the topology
 *  attached to ws, or for one node of P ranks without one; DP_ALLREDUCE_RING calls
 *  dp_ring_allreduce(buf, n, op, comm, ws); DP_ALLREDUCE_MPI calls MPI_Allreduce
 *  (MPI_SUM, in chunks of at most INT_MAX floats) and divides by P for AVG; it
 *  does not use ws (may be NULL) and counts nothing. DP_ALLREDUCE_RD calls
 *  dp_rd_allreduce; DP_ALLREDUCE_HIER / _HIER_RD call dp_hier_allreduce with the
 *  topology attached to ws, which must have been made on comm (DP_ERR_ARG else).
 *  @return as dp_ring_allreduce. */
dp_status dp_allreduce(float *buf, size_t n, dp_reduce_op op, dp_allreduce_algo algo,
                       MPI_Comm comm, dp_ring_ws *ws);

/* ------------------------------------------------------------------------- */
/* Auto: the algorithm per message size from a measured table (allreduce_table.c) */
/* ------------------------------------------------------------------------- */

/* As Open MPI's tuned decision rules and NCCL's tuner: a table of (max_bytes,
 * algorithm) rules, ascending, measured on the machine by `dptrain
 * tune-allreduce` for one world shape (nodes x ranks per node). A message of b
 * bytes takes the first rule with b <= max_bytes (the last rule past them all).
 * Text format (version 1), '#' starts a comment:
 *     dptrain-allreduce-table 1
 *     nodes 1
 *     ranks_per_node 2
 *     hosts 9f3c0a1b2c3d4e5f          (FNV-1a hash of the sorted host names)
 *     mpi Open MPI v4.1.4 ...          (MPI_Get_library_version, first line)
 *     65536 mpi
 *     16777216 ring
 * The algorithm words are dp_allreduce_algo_name's, never "auto". */
#define DP_ALLREDUCE_TABLE_RULES 64

typedef struct dp_allreduce_table {
    int nodes, per_node; /* the shape it is for */
    int nrules;
    uint64_t max_bytes[DP_ALLREDUCE_TABLE_RULES]; /* strictly ascending */
    dp_allreduce_algo algo[DP_ALLREDUCE_TABLE_RULES];
    char hosts[32];      /* fingerprint fields as read ("" for the built-in rule) */
    char mpi[160];
    char source[512];    /* the file, or "built-in" */
} dp_allreduce_table;

/*! The built-in rule for a shape (when no table is given). From the ring
 *  against MPI_Allreduce measurements of benchmarks/RESULTS.md (sections 3
 *  and 4b) and the alpha-beta model (allreduce_model.c):
 *    one node, or one rank per node: mpi up to 8 MiB, ring above (the ring was
 *      1.10-2.26x MPI_Allreduce from 16 MiB at 2-16 ranks, 0.5-1.05x below,
 *      where its 2(P-1) latency-bound steps lose to recursive doubling);
 *    several nodes of several ranks: mpi up to 64 KiB, then hier-rd when the
 *      node count is a power of two (log2 N steps across nodes, no folding),
 *      hier otherwise. */
void dp_allreduce_table_default(int nodes, int per_node, dp_allreduce_table *out);

/*! Parses a table's text. `file` names it in messages.
 *  @return DP_OK, or DP_ERR_ARG "FILE:LINE: FIELD: what is wrong" (header
 *          missing or of another version, a field missing or repeated, a size
 *          that is not a whole number or not ascending, an unknown algorithm,
 *          "auto", no rules, more than DP_ALLREDUCE_TABLE_RULES). */
dp_status dp_allreduce_table_parse(const char *text, const char *file, dp_allreduce_table *out);

/*! Writes t as text into buf (at most n bytes with the NUL).
 *  @return the length, or -1 when it does not fit. */
int dp_allreduce_table_format(const dp_allreduce_table *t, char *buf, size_t n);

/*! Reads and parses a table file (no MPI; for flag checks before MPI starts).
 *  @return DP_OK, DP_ERR_IO (cannot be read), or as dp_allreduce_table_parse. */
dp_status dp_allreduce_table_read(const char *path, dp_allreduce_table *out);

/*! Collective over comm: the table for `auto` on a world of nodes x per_node.
 *  path NULL or "": the environment variable DP_ALLREDUCE_TABLE (rank 0's: its
 *  decision is broadcast, as a launcher may not pass it to every host); unset or
 *  empty: the built-in rule. Rank 0 reads the file and broadcasts its text, so
 *  every rank parses the same bytes and makes the same choices. A table for
 *  another shape is not used: rank 0 warns on stderr (naming both shapes) and
 *  the built-in rule is taken, since every algorithm gives the same result and
 *  the table is only a speed hint.
 *  @return DP_OK, or on every rank the error of the file (DP_ERR_IO when rank 0
 *          cannot read it; DP_ERR_ARG as dp_allreduce_table_parse), DP_ERR_MPI. */
dp_status dp_allreduce_table_load(MPI_Comm comm, const char *path, int nodes, int per_node,
                                  dp_allreduce_table *out);

/*! The tuner's rule for one measured size (sizes added in ascending order):
 *  the fastest of the na algorithms by median time med[], except that
 *  DP_ALLREDUCE_MPI, when among them, stays unless the fastest is more than
 *  margin_pct percent below it, and else the previous size's winner stays
 *  unless the fastest is more than margin_pct percent below it. A size with the
 *  previous rule's winner extends that rule; else the previous rule is
 *  extended to the geometric mean of the two measured sizes (a size between
 *  them takes the nearer one's choice) and a rule is appended (up to
 *  DP_ALLREDUCE_TABLE_RULES; past them the last rule covers the rest).
 *  @return the index into algos of the winner. */
int dp_allreduce_table_add(dp_allreduce_table *t, uint64_t bytes, const dp_allreduce_algo *algos,
                           const double *med, int na, double margin_pct);

/*! The algorithm of t for a message of `bytes` bytes (never AUTO). */
dp_allreduce_algo dp_allreduce_table_choose(const dp_allreduce_table *t, uint64_t bytes);

/*! A hash of the sorted, distinct host names of comm's ranks (collective), as
 *  16 hex digits in out[17]: the machine part of a table's fingerprint. */
dp_status dp_allreduce_hosts_hash(MPI_Comm comm, char out[17]);

/*! @return 1 when an MPI thread level `provided` (from MPI_Init_thread or
 *  MPI_Query_thread) allows a threaded engine, i.e. MPI_THREAD_MULTIPLE; else 0.
 *  See dp_engine_create for why SERIALIZED is not accepted. */
int dp_comm_thread_level_ok(int provided);

/* ------------------------------------------------------------------------- */
/* Communication engine                                                       */
/* ------------------------------------------------------------------------- */

/* A FIFO of allreduces run by a communication thread (or inline), so that
 * gradient buckets are reduced while backward computes the next ones. */
typedef struct dp_engine dp_engine;

/* Ranges that may be queued at once; dp_engine_submit blocks while it is full. */
#define DP_ENGINE_QUEUE_CAP 1024

/*! Creates an engine on a duplicate of `comm` (MPI_Comm_dup: collective, so
 *  every rank of comm calls it), with MPI_ERRORS_RETURN set on the duplicate.
 *  @param algo      any dp_allreduce_algo, for every range. The hierarchical
 *                   ones build a dp_topo on the duplicate here (DP_RANKS_PER_NODE
 *                   or MPI_Comm_split_type), so create fails with its errors.
 *  @param threaded  1: a communication thread runs the queue and submit returns
 *                   at once. MPI must then provide MPI_THREAD_MULTIPLE: the
 *                   thread calls MPI while the training thread may, too (a metrics
 *                   allreduce, a barrier). SERIALIZED would suffice only if the
 *                   caller never calls MPI between submit and wait_all, which
 *                   nothing enforces, so it is refused.
 *                   0: submit runs the allreduce inline (no thread, any level).
 *  @param out       receives the engine; free with dp_engine_free.
 *  @return DP_OK, DP_ERR_ARG (bad argument, or threaded without
 *          MPI_THREAD_MULTIPLE), DP_ERR_NOMEM, DP_ERR_MPI. */
dp_status dp_engine_create(MPI_Comm comm, dp_allreduce_algo algo, int threaded,
                           dp_engine **out);

/*! Queues an in-place allreduce of buf[0..n). Threaded: returns without waiting
 *  (blocking only while DP_ENGINE_QUEUE_CAP ranges are queued); the range belongs
 *  to the engine until dp_engine_wait_all returns, and must not overlap another
 *  queued range. Inline: runs the allreduce before returning. All ranks submit
 *  the same ranges (counts and ops) in the same order; the pointers may differ.
 *  Does not allocate.
 *  @return DP_OK, DP_ERR_ARG (NULL buf with n > 0, bad op), or the engine's
 *          first error if an earlier range failed (errors are sticky). */
dp_status dp_engine_submit(dp_engine *e, float *buf, size_t n, dp_reduce_op op);

/*! dp_engine_submit through a codec (see dp_ring_allreduce_codec); `cfg` is
 *  copied, `residual` (n floats or NULL) belongs to the engine with the range.
 *  Needs DP_ALLREDUCE_RING, or DP_ALLREDUCE_HIER (the codec on the inter-node
 *  leg: dp_hier_allreduce_codec), unless cfg is NULL or plain NONE.
 *  @return as dp_engine_submit; DP_ERR_ARG also for a bad config. */
dp_status dp_engine_submit_codec(dp_engine *e, float *buf, size_t n, dp_reduce_op op,
                                 const dp_codec_config *cfg, float *residual);

/*! Blocks until every submitted range is reduced (returns at once when nothing
 *  is queued). After it returns, the training thread may call MPI again.
 *  @return DP_OK or the first error of any range since create (sticky: after
 *  DP_ERR_MPI the engine skips the remaining ranges instead of risking a hang). */
dp_status dp_engine_wait_all(dp_engine *e);

/*! Copies the engine's counters: calls, elems and seconds for every range; bytes
 *  for every algorithm but DP_ALLREDUCE_MPI. Safe to call while ranges are in flight. */
void dp_engine_stats(dp_engine *e, dp_comm_stats *out);

/*! Runs what is still queued, stops the thread, frees the duplicate communicator
 *  (collective, like MPI_Comm_free) and the engine. NULL is accepted. */
void dp_engine_free(dp_engine *e);

/*! Creates an engine as dp_engine_create; with algo DP_ALLREDUCE_AUTO it also
 *  builds the topology (for the shape and the hierarchical algorithms) and
 *  loads the table with dp_allreduce_table_load(table_path), once, here.
 *  table_path is ignored for the other algorithms. */
dp_status dp_engine_create_table(MPI_Comm comm, dp_allreduce_algo algo, int threaded,
                                 const char *table_path, dp_engine **out);

/*! The algorithm the engine runs for a range of n floats: its algorithm, or
 *  with AUTO the table's choice for 4 n bytes. */
dp_allreduce_algo dp_engine_algo_for(const dp_engine *e, size_t n);

/*! The engine's table (AUTO), or NULL. */
const dp_allreduce_table *dp_engine_table(const dp_engine *e);

/* ------------------------------------------------------------------------- */
/* Sparse and low-rank gradient compression: top-k and PowerSGD               */
/* (src/comm/topk.c, src/comm/powersgd.c)                                      */
/* ------------------------------------------------------------------------- */
/* Both are collectives over `comm` with SUM semantics: the result is the sum over
 * ranks of what each rank transmitted, bit-identical on every rank. Weighting
 * (1/P, or per-rank sample counts) is the caller's: scale the gradient before the
 * call, as the trainer already does for the plain ring. Both keep an error-
 * feedback residual in float buffers the caller can checkpoint, so resume is exact.
 * Every rank passes the same sizes and configuration, in the same order. */

/* Tag of top-k's ring allgather ('d','t'); the dense fallback and PowerSGD use
 * dp_ring_allreduce and hence DP_COMM_RING_TAG, DP_COMM_RING_TAG + 1. */
#define DP_COMM_TOPK_TAG 0x6474

/* Which exchange top-k uses. AUTO: sparse while it sends fewer bytes than a dense
 * float32 ring allreduce of the masked vector, i.e. while P*k < n (see topk.c). */
typedef enum dp_topk_path {
    DP_TOPK_AUTO = 0,
    DP_TOPK_SPARSE, /* always the allgather of (index, value) pairs */
    DP_TOPK_DENSE,  /* always the masked vector through dp_ring_allreduce */
} dp_topk_path;

typedef struct dp_topk_config {
    double fraction; /* (0, 1]: each rank sends k = max(1, ceil(fraction * n)) entries */
    float momentum;  /* DGC momentum correction factor m in [0, 1); 0 = off */
    dp_topk_path path;
} dp_topk_config;

/* What one call did (overwritten by each call). */
typedef struct dp_topk_stats {
    uint64_t n;           /* floats in the range */
    uint64_t k;           /* entries each rank selected and transmitted */
    int dense;            /* 1 when the dense fallback ran */
    uint64_t bytes_sent;  /* payload bytes this rank sent (pairs: 8 bytes each) */
    uint64_t bytes_recv;  /* payload bytes this rank received */
    uint64_t bytes_dense; /* what a float32 dp_ring_allreduce of n floats sends from
                             this rank: 4 n (P-1)/P * 2 (to within a block's float) */
} dp_topk_stats;

/* Scratch of top-k (magnitudes, pair buffers, a ring workspace for the dense
 * path). Grows to the largest n and P seen, so steady-state calls do not
 * allocate. One thread at a time. */
typedef struct dp_topk_ws dp_topk_ws;

/*! Creates a top-k workspace. @return DP_OK, DP_ERR_ARG (NULL out), DP_ERR_NOMEM. */
dp_status dp_topk_ws_create(dp_topk_ws **out);

/*! Frees a workspace (NULL is accepted). */
void dp_topk_ws_free(dp_topk_ws *ws);

/*! Top-k sparsified allreduce with error feedback, in place on buf[0..n).
 *  Each rank forms x = buf + residual, sends its k largest |x| as (index, value)
 *  pairs, and keeps the rest: residual = x with the sent entries zeroed. buf
 *  becomes the sum over ranks of the sent entries (zero elsewhere), added in rank
 *  order, so it is bit-identical on every rank. Per element and per call:
 *      buf_new + sum_ranks residual_new = sum_ranks (buf + residual_old)
 *  up to the rounding of the additions.
 *  With cfg->momentum = m > 0 (DGC's momentum correction, Lin et al. 2018),
 *  `velocity` (n floats, caller-owned, zero at first, checkpointable) holds u:
 *  u = m u + buf; residual += u; the k largest |residual| are sent and cleared in
 *  both residual and u (momentum factor masking). Use it with a momentum-free
 *  optimizer. velocity is ignored (may be NULL) when m = 0.
 *  @param n         0 .. UINT32_MAX - 1 (indices are sent as uint32).
 *  @param cfg       fraction (0, 1]: k = max(1, ceil(fraction n)) (at most n).
 *  @param residual  n floats owned by the caller (zero before the first call).
 *  @param ws        workspace; NULL allocates a temporary one for this call.
 *  @param st        NULL, or receives what this call did.
 *  @return DP_OK, DP_ERR_ARG, DP_ERR_NOMEM, DP_ERR_MPI, or DP_ERR_NONFINITE when
 *          any rank met NaN/Inf in x: then every rank returns it and buf and
 *          residual are unspecified. */
dp_status dp_topk_allreduce(float *buf, size_t n, const dp_topk_config *cfg,
                            float *residual, float *velocity, MPI_Comm comm,
                            dp_topk_ws *ws, dp_topk_stats *st);

/* PowerSGD (Vogels, Karimireddy, Jaggi 2019): rank-R approximation of each large
 * 2-D gradient by one step of warm-started power iteration per training step. */

/* A rows x cols row-major matrix at flat[off .. off + rows*cols). */
typedef struct dp_powersgd_matrix {
    size_t off;
    int rows, cols;
} dp_powersgd_matrix;

/* A range flat[off .. off + n) reduced uncompressed (biases, norms). */
typedef struct dp_powersgd_range {
    size_t off, n;
} dp_powersgd_range;

/* What one call did (overwritten by each call). */
typedef struct dp_powersgd_stats {
    uint64_t floats_reduced; /* floats through the ring: P and Q factors + uncompressed */
    uint64_t floats_dense;   /* floats a plain allreduce of the same views would reduce */
    uint64_t bytes_sent;     /* payload bytes this rank sent (counted by the ring) */
    uint64_t bytes_recv;     /* payload bytes this rank received */
    int compressed;          /* matrices compressed (the others went uncompressed) */
} dp_powersgd_stats;

/* Compressor state (Q per compressed matrix, the residual) plus workspaces. */
typedef struct dp_powersgd dp_powersgd;

/*! Creates a PowerSGD compressor over a flat buffer of n floats.
 *  A matrix is compressed when rank (rows + cols) <= rows cols / 2 (saves at least
 *  2x); the others, and every range, go uncompressed. Views must lie inside
 *  [0, n) and not overlap; elements in no view are left untouched by calls.
 *  Q of each compressed matrix starts as a normal(0,1) matrix from `seed` (the
 *  same on every rank without communication). Copies mats and ranges.
 *  @param rank  R >= 1.
 *  @return DP_OK, DP_ERR_ARG (bad view, overlap, bad rank), DP_ERR_NOMEM. */
dp_status dp_powersgd_create(size_t n, const dp_powersgd_matrix *mats, int nmats,
                             const dp_powersgd_range *ranges, int nranges, int rank,
                             uint64_t seed, dp_powersgd **out);

/*! Frees a compressor (NULL is accepted). */
void dp_powersgd_free(dp_powersgd *ps);

/*! @return 1 when matrix i (in creation order) is compressed, else 0. */
int dp_powersgd_is_compressed(const dp_powersgd *ps, int i);

/*! @return the floats of the checkpointable state: n (the residual, zero outside
 *  compressed matrices) + sum over compressed matrices of cols R (Q). */
size_t dp_powersgd_state_floats(const dp_powersgd *ps);

/*! @return the state itself, dp_powersgd_state_floats() floats laid out as
 *  [residual (n) | Q of each compressed matrix in creation order (cols x R,
 *  row-major)]; owned by ps, valid until dp_powersgd_free. */
float *dp_powersgd_state(dp_powersgd *ps);

/*! One PowerSGD allreduce of grad[0..n) (SUM semantics). Per compressed matrix:
 *  M = G + E; P = M Q; [allreduce P]; P^ = orthonormal columns of P; Q = M^T P^;
 *  E = M - P^ Q^T (this rank's Q, before its allreduce); [allreduce Q];
 *  G = P^ Q^T. Two dp_ring_allreduce calls in all: [every P | all uncompressed
 *  views] and [every Q]. Per element, sum_ranks E_new + G_new = sum_ranks
 *  (G + E_old) up to float rounding, and G_new is bit-identical on all ranks.
 *  Does not allocate after the first call.
 *  @param st  NULL, or receives what this call did.
 *  @return DP_OK, DP_ERR_ARG, DP_ERR_NOMEM, DP_ERR_MPI, or DP_ERR_NONFINITE on
 *          every rank when a reduced factor or view holds NaN/Inf (then grad and
 *          the state are unspecified). */
dp_status dp_powersgd_allreduce(dp_powersgd *ps, float *grad, MPI_Comm comm,
                                dp_powersgd_stats *st);

/* ------------------------------------------------------------------------- */
/* Sparse-rows allreduce (src/comm/rows.c)                                    */
/* ------------------------------------------------------------------------- */
/* For a [table_rows, dim] table of which each step touches a few rows (the
 * gradient of an embedding table): every rank passes the row ids it touched;
 * the call reduces exactly the rows in the union of all ranks' ids and tells
 * the caller which they are, so a lazy optimizer can update those rows and the
 * caller can zero them. The ids travel in a ring allgather (tag
 * DP_COMM_ROWS_TAG), the rows packed in one contiguous buffer through
 * dp_ring_allreduce or MPI_Allreduce (tags DP_COMM_RING_TAG, + 1). */

/* Tag of the row-id allgathers ('d','r'). */
#define DP_COMM_ROWS_TAG 0x6472

/* Preallocated id lists, bitmap, packed rows and a ring workspace, plus
 * cumulative counters. One thread at a time. */
typedef struct dp_rows_ws dp_rows_ws;

/*! Creates a workspace for calls on `comm` (or any communicator no larger) on
 *  tables of at most table_rows rows of at most dim floats. Allocates all it
 *  needs: a bitmap of table_rows bits, 2 x P x max_rows_per_rank ids, and
 *  min(P max_rows_per_rank, table_rows) x dim floats for the packed rows
 *  (P = size of comm; MPI_COMM_NULL counts as 1). Not collective: it only reads
 *  the size of comm.
 *  @param max_rows_per_rank  the most DISTINCT rows one rank may touch in one
 *                            call (repeats in its list are free); clipped to
 *                            table_rows; at most INT_MAX / 4.
 *  @param table_rows         1 .. 2^31 (ids are int32).
 *  @return DP_OK, DP_ERR_ARG (0 dim or rows, sizes out of range, NULL out),
 *          DP_ERR_NOMEM, DP_ERR_MPI. */
dp_status dp_rows_ws_create(size_t max_rows_per_rank, size_t dim, size_t table_rows,
                            MPI_Comm comm, dp_rows_ws **out);

/*! Frees a workspace (NULL is accepted). */
void dp_rows_ws_free(dp_rows_ws *ws);

/*! Copies the counters accumulated over calls on `ws`: calls; elems = floats
 *  reduced (union rows x dim); bytes_sent / bytes_recv = every payload byte this
 *  rank sent / received (the id allgathers and, with DP_ALLREDUCE_RING, the
 *  ring; MPI_Allreduce's bytes are not counted); bytes_raw_sent = what a dense
 *  float32 ring allreduce of the whole table would have sent, 8 rows dim (P-1)/P
 *  per call, so raw/sent is the saving; bytes_codec_sent = bytes_sent; seconds =
 *  wall time inside the calls. */
void dp_rows_ws_stats(const dp_rows_ws *ws, dp_comm_stats *out);

/*! Sparse-rows allreduce of table[table_rows][dim] (row-major) over `comm`.
 *  Let U = the sorted union over ranks of the distinct ids in rows[0..nrows).
 *  For every u in U, on every rank:  table[u][:] = reduce over ranks of
 *  table[u][:]  (SUM, or AVG = SUM / P) -- each rank's full row, so a rank's
 *  rows in U that it did not touch must be zero for a gradient sum. Rows not
 *  in U are neither read nor written. Equal to a dense allreduce of the whole
 *  table restricted to U (bit for bit where the float sums are exact; else up
 *  to the order of the P additions).
 *  @param rows        this rank's ids, unsorted, repeats allowed; may be NULL
 *                     when nrows == 0 (the rank touched nothing).
 *  @param table_rows  at most the workspace's; every id must be in [0, table_rows).
 *  @param dim         1 .. the workspace's dim.
 *  @param algo        any dp_allreduce_algo for the rows (HIER and HIER_RD run
 *                     the flat ring: the workspace has no topology);
 *                     the ids always go through our ring allgather.
 *  @param comm        an intra-communicator, or MPI_COMM_NULL (one rank: the
 *                     ids are sorted and deduplicated, nothing is sent, the
 *                     table is untouched). Size 1 behaves the same.
 *  @param union_rows  NULL, or receives U: owned by ws, valid until its next call.
 *  @param nunion      NULL, or receives |U|.
 *  Collective: every rank of comm calls it with the same table_rows, dim, op and
 *  algo (rows and nrows differ). Does not allocate, except that the ring
 *  workspace inside ws sizes its receive slots (2 segments) and request array
 *  on its first calls, as every dp_ring_ws does.
 *  @return DP_OK; DP_ERR_ARG for a bad argument checked locally before any
 *          message (NULL pointers, dim or table_rows beyond the workspace, bad
 *          op/algo, comm larger than the workspace's) -- and, on EVERY rank, when
 *          any rank passed an id outside [0, table_rows) or more distinct ids than
 *          max_rows_per_rank (the message names that rank and its id or count;
 *          the table is then untouched and the communicator stays usable);
 *          DP_ERR_MPI (see the top of this file). */
dp_status dp_rows_allreduce(float *table, size_t table_rows, size_t dim, const int32_t *rows,
                            size_t nrows, dp_reduce_op op, dp_allreduce_algo algo,
                            MPI_Comm comm, dp_rows_ws *ws, const int32_t **union_rows,
                            size_t *nunion);

/* ------------------------------------------------------------------------- */
/* Watchdog                                                                   */
/* ------------------------------------------------------------------------- */

/* A collective that does not complete (a rank stuck in compute, stopped, or on
 * a dead link) would hang every rank silently. The watchdog is a thread per
 * rank, modelled on Horovod's stall inspector: the caller brackets each wait
 * on other ranks with dp_watchdog_wait_begin/_end, the ring notes every
 * message it receives, and when a wait has seen no message for timeout_s the
 * watchdog asks every other rank's watchdog what it is doing (over its own
 * communicator, so it answers even while its training thread is stuck),
 * prints one line per rank (waiting where, for whom; computing since when; no
 * answer), and aborts the job. It does the same when this rank has spent
 * timeout_s inside one file operation (dptrain/infile.h: an open or read that
 * never returns), which no wait of another rank may be there to notice. */
typedef struct dp_watchdog dp_watchdog;

/*! Collective over comm (dups it). timeout_s <= 0, or an MPI
 *  without MPI_THREAD_MULTIPLE: *out = NULL and every other call is a no-op.
 *  @return DP_OK, DP_ERR_NOMEM or DP_ERR_MPI. */
dp_status dp_watchdog_create(MPI_Comm comm, double timeout_s, dp_watchdog **out);
/*! Stops the thread; accepts NULL. */
void dp_watchdog_free(dp_watchdog *w);
/*! What this rank is doing outside waits (`phase`: a string that outlives the
 *  watchdog, e.g. "forward/backward") and at which step. Lock-free. */
void dp_watchdog_phase(dp_watchdog *w, const char *phase, long step);
/*! Entering a wait on the other ranks: `what` (a static string). For a wait on
 *  engine ranges, item_base is dp_engine_submitted() at the start of the step
 *  and nitems the ranges of the step, so the report names the bucket; else 0, 0. */
void dp_watchdog_wait_begin(dp_watchdog *w, const char *what, uint64_t item_base, int nitems);
void dp_watchdog_wait_end(dp_watchdog *w);

/*! Ranges submitted to the engine so far (all steps). */
uint64_t dp_engine_submitted(dp_engine *e);

#ifdef __cplusplus
}
#endif
#endif
