/* Row gather: y[i] = x[idx[i]], the indexing op of the DSI decoder (the
 * rows of a batch whose docid reaches a level, and the trie-node embeddings
 * E_l[prefix node] of those rows).
 *
 * As PyTorch's x.index_select(0, idx) (= F.embedding(idx, x)): x [N, ...] is
 * read as N rows of D = numel / N floats; y [m, D]. The backward adds each
 * dy row into dx[idx[i]] (a repeated index accumulates), touching only the
 * rows used, so a gather from a parameter table gives a sparse-row update. */
#include <string.h>

#include "core/tape.h"

/* y [m,D] = rows idx[0..m) of x [N,D] */
static void gather_rows_forward(float *restrict y, const float *restrict x, const int32_t *restrict idx, int m,
                                long D)
{
    for (int i = 0; i < m; i++) memcpy(y + (long)i * D, x + (long)idx[i] * D, (size_t)D * sizeof(float));
}

/* dx [N,D] rows idx[i] += dy [m,D] row i */
static void gather_rows_backward_k(float *restrict dx, const float *restrict dy, const int32_t *restrict idx, int m,
                                   long D)
{
    for (int i = 0; i < m; i++) {
        float *restrict g = dx + (long)idx[i] * D;
        const float *restrict d = dy + (long)i * D;
        for (long j = 0; j < D; j++) g[j] += d[j];
    }
}

/* ip: 0 m; fp: none; saved: 0 idx; D = out->n / m */
static void gather_rows_backward(dp_ctx *c, dp_node *nd)
{
    float *gx = dp_grad(c, nd->in[0]);
    const int m = nd->ip[0];
    if (gx) gather_rows_backward_k(gx, nd->out->grad, nd->saved[0], m, nd->out->n / m);
}

dp_tensor *dp_gather_rows(dp_ctx *c, dp_tensor *x, const int32_t *idx, int m)
{
    if (!x) return NULL;
    if (m < 1) return dp_fail(c, DP_ERR_ARG, "gather_rows: %d rows requested", m);
    if (!idx) return dp_fail(c, DP_ERR_ARG, "gather_rows: idx is NULL");
    const int N = x->shape[0];
    const long D = x->n / N;
    for (int i = 0; i < m; i++)
        if (idx[i] < 0 || idx[i] >= N)
            return dp_fail(c, DP_ERR_ARG, "gather_rows: idx[%d] = %d outside [0, %d)", i, (int)idx[i], N);
    int shape[DP_MAX_DIMS];
    shape[0] = m;
    for (int d = 1; d < x->ndim; d++) shape[d] = x->shape[d];
    dp_tensor *y = dp_tensor_new(c, x->ndim, shape);
    if (!y) return NULL;
    gather_rows_forward(y->data, x->data, idx, m, D);
    dp_node *nd = dp_tape_push(c, gather_rows_backward, "gather_rows", y, 1, &x);
    if (nd) {
        nd->ip[0] = m;
        nd->saved[0] = (void *)idx;
    }
    return y;
}
