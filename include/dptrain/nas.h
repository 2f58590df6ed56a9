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

enum { DP_NAS_NODES = 4, DP_NAS_EDGES = 14, DP_NAS_MAX_CELLS = 20 };

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
    /* D-DARTS (Heuillet et al. 2021): layers > 0 gives each of `layers` cells
     * one of its own, cell_op[i] / cell_in[i] for layer i, the reductions at
     * layers/3 and 2 layers/3 as ever; normal_* and reduce_* are then unused.
     * 0: one normal and one reduction cell shared by every layer (DARTS). */
    int layers;
    int cell_op[DP_NAS_MAX_CELLS][2 * DP_NAS_NODES], cell_in[DP_NAS_MAX_CELLS][2 * DP_NAS_NODES];
} dp_genotype;

/*! Whether layer i of a `layers`-cell network reduces (layers/3 and 2 layers/3). */
static inline int dp_nas_layer_reduces(int i, int layers) { return i == layers / 3 || i == 2 * layers / 3; }
/*! The cells g holds: 2 (normal, reduce) or one per layer. */
static inline int dp_genotype_cells(const dp_genotype *g) { return g->layers > 0 ? g->layers : 2; }
/*! Whether cell t of g is a reduction cell. */
static inline int dp_genotype_cell_reduces(const dp_genotype *g, int t)
{
    return g->layers > 0 ? dp_nas_layer_reduces(t, g->layers) : t == 1;
}
/*! Cell t's 8 ops and inputs (t < dp_genotype_cells(g)). */
static inline int *dp_genotype_ops(dp_genotype *g, int t)
{
    return g->layers > 0 ? g->cell_op[t] : t ? g->reduce_op : g->normal_op;
}
static inline int *dp_genotype_ins(dp_genotype *g, int t)
{
    return g->layers > 0 ? g->cell_in[t] : t ? g->reduce_in : g->normal_in;
}
static inline const int *dp_genotype_cops(const dp_genotype *g, int t) { return dp_genotype_ops((dp_genotype *)g, t); }
static inline const int *dp_genotype_cins(const dp_genotype *g, int t) { return dp_genotype_ins((dp_genotype *)g, t); }
/*! The cell of g that layer i of a `layers`-cell network runs: the shared
 *  normal or reduction cell, or, per layer, the cell in the same place of g's
 *  own stages stretched over the network's (a stage: the normal cells between
 *  reductions; D-DARTS' deeper network from a few searched cells).
 *  -1 when a stage of the network has normal cells and g's has none. */
int dp_genotype_layer_cell(const dp_genotype *g, int i, int layers);

/*! Checks ops, inputs and layers; DP_ERR_FORMAT names the cell, node and field. */
dp_status dp_genotype_check(const dp_genotype *g);
/*! JSON, written atomically:
 *  {"normal": [["sep_conv_3x3", 0], ...8 pairs], "normal_concat": [2,3,4,5],
 *   "reduce": [...], "reduce_concat": [2,3,4,5]}  (the reference's Genotype);
 *  per layer: {"cells": [[...8 pairs], ...one per layer], "reductions": [1, 3], "concat": [2,3,4,5]}. */
dp_status dp_genotype_save(const dp_genotype *g, const char *path);
/*! Reads and checks a genotype JSON; errors name the file and the field. */
dp_status dp_genotype_load(const char *path, dp_genotype *g);
/* Room for any genotype's one-line JSON: 20 cells of 8 pairs. */
#define DP_GENOTYPE_TEXT_MAX 4096
/*! The same JSON into a string (for metrics lines); returns its length. */
int dp_genotype_format(const dp_genotype *g, char *buf, size_t n);
/*! A graphviz dot picture of cell t (t < dp_genotype_cells(g): 0 normal, 1 reduction, or the layer). */
dp_status dp_genotype_write_dot(const dp_genotype *g, int t, const char *path);
/*! The most edges of one normal cell whose op is in `ops` (bit k: dp_nas_op k): the normal cell's count, or per
 *  layer the largest over the normal cells. */
int dp_genotype_normal_most(const dp_genotype *g, unsigned ops);
/*! skip_connect edges in the normal cell (DARTS' collapse indicator); per layer, the most in one normal cell. */
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
