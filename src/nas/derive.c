/* From mixing weights to a genotype: the reference derivation (quark0/darts
 * cnn/model_search.py, Network.genotype._parse). Per node, each incoming edge
 * is scored by its best non-none weight; the two best edges are kept,
 * strongest first (Python's stable sort, so ties keep the earlier edge), each
 * with its best non-none op (strict >, so ties keep the earlier column).
 * dp_nas_derive_beta first scales the rows by PC-DARTS' edge weights. */
#include <math.h>
#include <stdio.h>
#include <string.h>

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

dp_status dp_nas_derive_types(const float *w, const float *beta, int types, int per_layer, const int *ops, int nops,
                              dp_genotype *g)
{
    if (nops < 1 || nops > DP_NAS_NUM_OPS)
        return dp_errorf(DP_ERR_ARG, "derive: %d op columns (1 to %d)", nops, DP_NAS_NUM_OPS);
    for (int k = 0; k < nops; k++)
        if (ops[k] < 0 || ops[k] >= DP_NAS_NUM_OPS)
            return dp_errorf(DP_ERR_ARG, "derive: column %d names op %d, not a primitive", k, ops[k]);
    if (per_layer ? types < 1 || types > DP_NAS_MAX_CELLS : types != 2)
        return dp_errorf(DP_ERR_ARG, "derive: %d cell types (%s)", types, per_layer ? "a cell per layer: 1 to 20" : "2");
    memset(g, 0, sizeof *g); /* the cells it does not use are zeros: genotypes compare with memcmp */
    g->layers = per_layer ? types : 0;
    const long n = (long)DP_NAS_EDGES * nops;
    float scaled[DP_NAS_EDGES * DP_NAS_NUM_OPS];
    char name[24];
    dp_status rc = DP_OK;
    for (int t = 0; t < types && rc == DP_OK; t++) {
        const float *wt = w + t * n;
        if (beta) scale_by_beta(wt, beta + t * DP_NAS_EDGES, nops, scaled), wt = scaled;
        if (per_layer) snprintf(name, sizeof name, "cell %d", t);
        else snprintf(name, sizeof name, "%s", t ? "reduce" : "normal");
        rc = derive_cell(wt, ops, nops, name, dp_genotype_ops(g, t), dp_genotype_ins(g, t));
    }
    return rc;
}

/* the shared pair's rows, contiguous */
static void pair(const float *a, const float *b, long n, float *out)
{
    memcpy(out, a, (size_t)n * sizeof *out);
    memcpy(out + n, b, (size_t)n * sizeof *out);
}

dp_status dp_nas_derive(const float *w_normal, const float *w_reduce, const int *ops, int nops, dp_genotype *g)
{
    float w[2 * DP_NAS_EDGES * DP_NAS_NUM_OPS];
    const long n = (long)DP_NAS_EDGES * (nops > 0 && nops <= DP_NAS_NUM_OPS ? nops : 0);
    pair(w_normal, w_reduce, n, w);
    return dp_nas_derive_types(w, NULL, 2, 0, ops, nops, g);
}

dp_status dp_nas_derive_beta(const float *w_normal, const float *w_reduce, const float *beta_normal,
                             const float *beta_reduce, const int *ops, int nops, dp_genotype *g)
{
    float w[2 * DP_NAS_EDGES * DP_NAS_NUM_OPS], b[2 * DP_NAS_EDGES];
    const long n = (long)DP_NAS_EDGES * (nops > 0 && nops <= DP_NAS_NUM_OPS ? nops : 0);
    pair(w_normal, w_reduce, n, w);
    pair(beta_normal, beta_reduce, DP_NAS_EDGES, b);
    return dp_nas_derive_types(w, b, 2, 0, ops, nops, g);
}
