/* Differentiable architecture search (the DARTS family) and the networks it
 * derives.
 *
 * The search space is the DARTS cell (Liu et al. 2019): two input nodes, four
 * intermediate nodes, 14 edges; node i (0..3) sums one mixed op per earlier
 * node (the two inputs and nodes 0..i-1), so its edges are
 * [2+i*(i+3)/2 - 2 ...]: edges 0-1 feed node 0, 2-4 node 1, 5-8 node 2,
 * 9-13 node 3, and within a node edge j reads state j (0, 1 = inputs,
 * 2.. = intermediate nodes). The cell outputs the channel concat of the four
 * intermediate nodes.
 *
 * alpha has one row of `nops` weights per edge, one [14, nops] block for the
 * normal cells and one for the reduction cells, in one flat buffer (its own
 * dp_params registry, so it is checkpointed, averaged and hashed like the
 * weights but stepped by its own optimizer). */
#ifndef DPTRAIN_NAS_H
#define DPTRAIN_NAS_H

#include "dptrain/model.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { DP_NAS_NODES = 4, DP_NAS_EDGES = 14 };

/* The edge of node `node` that reads state `input` (0, 1: the cell's inputs; 2 + j: node j): node i's edges
 * start at 0, 2, 5, 9, the order of the alpha rows. */
static inline int dp_nas_edge(int node, int input) { return 2 * node + node * (node - 1) / 2 + input; }

/* The eight primitives; the values are the reference PRIMITIVES order. */
typedef enum dp_nas_op {
    DP_NAS_NONE,
    DP_NAS_MAX_POOL_3X3,
    DP_NAS_AVG_POOL_3X3,
    DP_NAS_SKIP_CONNECT,
    DP_NAS_SEP_CONV_3X3,
    DP_NAS_SEP_CONV_5X5,
    DP_NAS_DIL_CONV_3X3,
    DP_NAS_DIL_CONV_5X5,
    DP_NAS_NUM_OPS
} dp_nas_op;

/*! "none", "max_pool_3x3", ... */
const char *dp_nas_op_name(int op);
/*! The op named `name`, or -1. */
int dp_nas_op_parse(const char *name);
/*! A comma-separated primitive list, or "all" (the eight, reference order).
 *  DP_ERR_ARG names the flag and the unknown or repeated name. */
dp_status dp_nas_ops_parse(const char *list, int *ops, int *nops);

/* ---- genotypes (src/models/genotype.c) ---- */

/* The derived cell: for node i, the two kept edges are 2i and 2i+1, each an
 * op (dp_nas_op, never NONE) and the state it reads (0, 1 = cell inputs,
 * 2 + k = intermediate node k < i). The cell concatenates nodes 0..3. */
typedef struct dp_genotype {
    int normal_op[2 * DP_NAS_NODES], normal_in[2 * DP_NAS_NODES];
    int reduce_op[2 * DP_NAS_NODES], reduce_in[2 * DP_NAS_NODES];
} dp_genotype;

/*! Checks ops and inputs; DP_ERR_FORMAT names the cell, node and field. */
dp_status dp_genotype_check(const dp_genotype *g);
/*! JSON, written atomically:
 *  {"normal": [["sep_conv_3x3", 0], ...8 pairs], "normal_concat": [2,3,4,5],
 *   "reduce": [...], "reduce_concat": [2,3,4,5]}  (the reference's Genotype). */
dp_status dp_genotype_save(const dp_genotype *g, const char *path);
/*! Reads and checks a genotype JSON; errors name the file and the field. */
dp_status dp_genotype_load(const char *path, dp_genotype *g);
/*! The same JSON into a string (for metrics lines); returns its length. */
int dp_genotype_format(const dp_genotype *g, char *buf, size_t n);
/*! A graphviz dot picture of one cell (reduce = 0 normal, 1 reduction). */
dp_status dp_genotype_write_dot(const dp_genotype *g, int reduce, const char *path);
/*! skip_connect edges in the normal cell (DARTS' collapse indicator). */
int dp_genotype_skips(const dp_genotype *g);

/* ---- the derived network (src/models/darts_net.c) ---- */

/*! The discrete network of genotype g (the reference NetworkCIFAR without the
 *  auxiliary head): stem conv 3x3 (3C) + BN, `layers` cells, reductions at
 *  layers/3 and 2 layers/3, BN with affine, global average pool, linear.
 *  drop_path > 0 drops each non-identity op output of a cell during training
 *  with probability drop_path * m->progress (the trainer sets progress =
 *  epoch / epochs, as the reference does). */
dp_status dp_darts_net_build(const dp_genotype *g, int layers, int channels, float drop_path,
                             const dp_model_shape *in, dp_model **out);

#ifdef __cplusplus
}
#endif
#endif
