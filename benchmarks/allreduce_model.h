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
    double beta;  /* s/byte, one flow alone on the link */
} am_link;

typedef struct am_params {
    am_link intra;        /* ranks of one node (shared memory) */
    am_link inter;        /* ranks of different nodes, one flow per NIC direction */
    double gamma_cache;   /* s/byte of a float sum of two buffers, chunk <= cache_bytes */
    double gamma_mem;     /* s/byte, chunk > cache_bytes */
    double cache_bytes;   /* where gamma switches */
    double seg_bytes;     /* the ring's segment (DP_RING_SEGMENT_BYTES_DEFAULT): one alpha per segment */
    double node_bw;       /* bytes/s all of a node's ranks move at once through shared memory
                             (bench_alphabeta's concurrent pairs); 0 = no limit beyond beta_intra */
    int have_intra, have_inter; /* which links a parameter file measured */
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
    AM_RING = 0,      /* flat ring over P = N*R, dptrain's dp_ring_allreduce */
    AM_HIER_RING,     /* intra reduce-scatter, inter ring, intra allgather */
    AM_HIER_RHD,      /* same, inter leg by recursive halving/doubling (Rabenseifner) */
    AM_RABENSEIFNER,  /* flat recursive halving reduce-scatter + recursive doubling allgather */
    AM_RECDOUBLING,   /* flat recursive doubling on the whole vector */
    AM_TREE,          /* binomial-tree reduce + binomial-tree broadcast */
    AM_NALGO
} am_algo;

const char *am_algo_name(am_algo a);
/* -1 when the name is none of am_algo_name's */
int am_algo_parse(const char *name);

/* Predicted time (s) of one allreduce of `bytes` bytes of floats. 0 when P == 1. */
double am_allreduce_time(const am_params *p, const am_topo *t, am_algo a, double bytes);
/* The cheapest algorithm for this size and topology (what `auto` would run). */
am_algo am_best(const am_params *p, const am_topo *t, double bytes, double *time_out);

/* gamma for a reduction whose working chunk is `chunk` bytes */
double am_gamma(const am_params *p, double chunk);

/* Defaults: everything zero except seg_bytes (256 KiB) and cache_bytes (1 MiB). */
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
