/* From mixing weights to a genotype: the reference derivation (quark0/darts
 * cnn/model_search.py, Network.genotype._parse). Per node, each incoming edge
 * is scored by its best non-none weight; the two best edges are kept,
 * strongest first (Python's stable sort, so ties keep the earlier edge), each
 * with its best non-none op (strict >, so ties keep the earlier column). */
#include "dptrain/supernet.h"

/* Best non-none column of row w[0..nops), or -1 when the row has none. */
static int best_op(const float *w, const int *ops, int nops)
{
    int best = -1;
    for (int k = 0; k < nops; k++)
        if (ops[k] != DP_NAS_NONE && (best < 0 || w[k] > w[best])) best = k;
    return best;
}

static dp_status derive_cell(const float *w, const int *ops, int nops, const char *cell, int *gop, int *gin)
{
    int start = 0;
    for (int i = 0; i < DP_NAS_NODES; i++) {
        int n = i + 2, col[DP_NAS_NODES + 1], first = -1, second = -1;
        for (int j = 0; j < n; j++) {
            col[j] = best_op(w + (long)(start + j) * nops, ops, nops);
            if (col[j] < 0)
                return dp_errorf(DP_ERR_ARG, "derive: %s edge %d has no op other than none", cell, start + j);
        }
#define SCORE(j) w[(long)(start + (j)) * nops + col[j]]
        for (int j = 0; j < n; j++)
            if (first < 0 || SCORE(j) > SCORE(first)) first = j;
        for (int j = 0; j < n; j++)
            if (j != first && (second < 0 || SCORE(j) > SCORE(second))) second = j;
#undef SCORE
        gop[2 * i] = ops[col[first]], gin[2 * i] = first;
        gop[2 * i + 1] = ops[col[second]], gin[2 * i + 1] = second;
        start += n;
    }
    return DP_OK;
}

dp_status dp_nas_derive(const float *w_normal, const float *w_reduce, const int *ops, int nops, dp_genotype *g)
{
    if (nops < 1 || nops > DP_NAS_NUM_OPS)
        return dp_errorf(DP_ERR_ARG, "derive: %d op columns (1 to %d)", nops, DP_NAS_NUM_OPS);
    for (int k = 0; k < nops; k++)
        if (ops[k] < 0 || ops[k] >= DP_NAS_NUM_OPS)
            return dp_errorf(DP_ERR_ARG, "derive: column %d names op %d, not a primitive", k, ops[k]);
    dp_status rc = derive_cell(w_normal, ops, nops, "normal", g->normal_op, g->normal_in);
    if (rc == DP_OK) rc = derive_cell(w_reduce, ops, nops, "reduce", g->reduce_op, g->reduce_in);
    return rc;
}
