/* allreduce_model: an alpha-beta-gamma cost model of allreduce algorithms on N nodes x R
 * ranks per node, and of a data-parallel training step built on it. The formulas and
 * their sources are in allreduce_model.c's header comment. Plain C + libm: no dptrain,
 * no MPI, so the CLI (allreduce_model_main.c) and the unit test link it alone. */
#ifndef DP_ALLREDUCE_MODEL_H
#define DP_ALLREDUCE_MODEL_H

#include <stddef.h>

/* One link class: a message of m bytes costs alpha + m * beta seconds. */
typedef struct am_link {
    double alpha; /* s */
    double beta;  /* s/byte of one flow, under the concurrency it was measured with */
} am_link;

typedef struct am_params {
    am_link intra;        /* one flow of a ring step inside a node while every rank of every node runs one
                             (bench_alphabeta's "intra" pattern) */
    am_link inter;        /* one flow between nodes while inter_flows flows cross each NIC each way
                             (bench_alphabeta's "inter" pattern; or 8/rate with inter_flows = 1) */
    double inter_flows;   /* f flows per NIC get beta_inter * f / inter_flows each (the NIC is shared) */
    am_link ring;         /* optional: the flat ring's step, measured on ring_nodes x ring_rpn ("ring" pattern) */
    double ring_nodes, ring_rpn;
    double gamma_cache;   /* s/byte of a float sum of two buffers, buffer <= cache_bytes */
    double gamma_mem;     /* s/byte, larger buffers */
    double cache_bytes;   /* where gamma switches */
    double seg_bytes;     /* the ring's segment (DP_RING_SEGMENT_BYTES_DEFAULT) */
    double chunk_bytes;   /* rd's chunk (RD_CHUNK in src/comm/rd.c): one blocking exchange each */
    double node_bw;       /* bytes/s all of a node's ranks move at once through shared memory; 0 = no
                             limit beyond beta_intra (f intra flows get max(beta_intra, f/node_bw)) */
    int have_intra, have_inter, have_ring; /* which links a parameter file measured */
} am_params;

/* Where ranks sit: block = ranks r*R .. r*R+R-1 on node r (Open MPI's default with a
 * hostfile of slots=R); cyclic = rank i on node i mod N. */
typedef enum am_placement { AM_BLOCK = 0, AM_CYCLIC = 1 } am_placement;

typedef struct am_topo {
    long nodes; /* N >= 1 */
    long rpn;   /* R >= 1 */
    am_placement placement;
} am_topo;

typedef enum am_algo {
    /* dptrain's own (src/comm/): what --allreduce auto chooses among */
    AM_RING = 0,      /* dp_ring_allreduce: flat ring over P = N*R, segmented and streamed */
    AM_RD,            /* dp_rd_allreduce: flat halving (largest distance first) + doubling, chunked */
    AM_HIER,          /* dp_hier_allreduce, ring across nodes */
    AM_HIER_RD,       /* dp_hier_allreduce, halving/doubling across nodes (hier-rd) */
    AM_NOURS,         /* (a tie goes to the earlier: the flat one when hier is the same, R = 1) */
    /* Open MPI 4.1's coll/tuned algorithms (what MPI_Allreduce rows of bench_allreduce ran) */
    AM_MPI_RING = AM_NOURS, /* unsegmented ring: one message per step */
    AM_RABENSEIFNER,  /* halving at distance 1, 2, 4, .. + doubling in reverse, unchunked */
    AM_RECDOUBLING,   /* the whole vector at distance 1, 2, 4, .. */
    AM_TREE,          /* binomial reduce + binomial broadcast */
    AM_NALGO
} am_algo;

const char *am_algo_name(am_algo a);
/* -1 when the name is none of am_algo_name's */
int am_algo_parse(const char *name);

/* Predicted time (s) of one allreduce of `bytes` bytes of floats. 0 when P == 1. */
double am_allreduce_time(const am_params *p, const am_topo *t, am_algo a, double bytes);
/* The cheapest of dptrain's algorithms (AM_RING .. AM_HIER_RD) for this size and topology. */
am_algo am_best(const am_params *p, const am_topo *t, double bytes, double *time_out);

/* gamma for a reduction over a buffer of `bytes` */
double am_gamma(const am_params *p, double bytes);

/* Defaults: everything zero except seg_bytes and chunk_bytes (256 KiB), cache_bytes (1 MiB),
 * inter_flows (1). */
void am_params_init(am_params *p);
/* Reads a key=value parameter file (bench_alphabeta --out) over *p: keys present replace
 * the values in p, so two files (host for intra, virtual cluster for inter) can be read
 * one after the other. Returns 0, or -1 with a message naming the file, line and field in
 * err (cap bytes). */
int am_params_read(const char *path, am_params *p, char *err, size_t cap);

/* A training step: compute time t_compute (forward + backward, one rank), of which the
 * last fraction bwd_frac is backward, during which the gradient of grad_bytes becomes
 * ready uniformly in time, last-declared parameters first; it is cut into buckets of
 * bucket_bytes (the last one smaller), sent in order, one allreduce at a time; t_update
 * (the optimizer) runs after the last bucket. Returns the step time (s). With algo < 0
 * each bucket uses am_best. */
typedef struct am_step {
    double t_compute, bwd_frac, t_update;
    double grad_bytes, bucket_bytes;
    double tail_bytes; /* a further allreduce after the step's compute, not overlapped
                          (a DARTS search's architecture gradient); 0: none */
} am_step;
double am_step_time(const am_params *p, const am_topo *t, int algo, const am_step *s, double *comm_exposed);

#endif
