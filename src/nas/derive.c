/* From mixing weights to a genotype: the reference derivation (quark0/darts
 * cnn/model_search.py, Network.genotype._parse). Per node, each incoming edge
 * is scored by its best non-none weight; the two best edges are kept,
 * strongest first (Python's stable sort, so ties keep the earlier edge), each
 * with its best non-none op (strict >, so ties keep the earlier column).
 * dp_nas_derive_beta first scales the rows by PC-DARTS' edge weights. */
#include <math.h>

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

/* PC-DARTS' edge normalisation at derivation: an edge's weights times the
 * softmax of beta over its node's edges. A positive factor per row leaves
 * each edge's best op alone and re-ranks the edges only. */
static void scale_by_beta(const float *w, const float *beta, int nops, float *out)
{
    for (int i = 0, start = 0; i < DP_NAS_NODES; start += i + 2, i++) {
        const int n = i + 2;
        float mx = beta[start], e[DP_NAS_NODES + 1], sum = 0;
        for (int j = 1; j < n; j++) mx = beta[start + j] > mx ? beta[start + j] : mx;
        for (int j = 0; j < n; j++) sum += e[j] = expf(beta[start + j] - mx);
        for (int j = 0; j < n; j++)
            for (int k = 0; k < nops; k++)
                out[(long)(start + j) * nops + k] = w[(long)(start + j) * nops + k] * (e[j] / sum);
    }
}

dp_status dp_nas_derive_beta(const float *w_normal, const float *w_reduce, const float *beta_normal,
                             const float *beta_reduce, const int *ops, int nops, dp_genotype *g)
{
    if (nops < 1 || nops > DP_NAS_NUM_OPS)
        return dp_errorf(DP_ERR_ARG, "derive: %d op columns (1 to %d)", nops, DP_NAS_NUM_OPS);
    float wn[DP_NAS_EDGES * DP_NAS_NUM_OPS], wr[DP_NAS_EDGES * DP_NAS_NUM_OPS];
    scale_by_beta(w_normal, beta_normal, nops, wn);
    scale_by_beta(w_reduce, beta_reduce, nops, wr);
    return dp_nas_derive(wn, wr, ops, nops, g);
}
