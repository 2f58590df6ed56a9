/* Multi-head self-attention over packed sequences of different lengths, as
 * one op with its own backward.
 *
 * The sequences of a batch lie back to back in the rows of qkv [T, 3E]
 * (sequence b: rows offsets[b] .. offsets[b+1)), so nothing is padded: a
 * padded batch's key-padding mask is here the sequence boundary itself, and
 * a batch of a few long and many short queries costs what its tokens cost.
 * Row t holds token t's query, key and value, columns [0,E), [E,2E), [2E,3E);
 * head h reads columns h dh .. (h+1) dh - 1 of each (dh = E / heads), as
 * torch.nn.MultiheadAttention after its in-projection. Per sequence and head,
 * with n its length:
 *   S = Q K^T / sqrt(dh)  [n, n],  P = softmax(S) by rows,  O = P V  [n, dh]
 * and out [T, E] gets O in the head's columns. Backward (per sequence, head):
 *   dV += P^T dO,  dP = dO V^T,  dS = P * (dP - rowsum(dP * P)),
 *   dQ += dS K / sqrt(dh),  dK += dS^T Q / sqrt(dh)
 * P is not kept: the backward computes S and P again (one more n x n x dh
 * product), so the op keeps nothing larger than its input and output. Every
 * product is one cblas_sgemm on strided views of qkv; the n x n buffers come
 * from the arena. */
#include <math.h>

#include <cblas.h>

#include "core/tape.h"

/* P [n,n] = softmax(s Q K^T) by rows; Q, K rows ld apart */
static void scores(float *restrict P, const float *Q, const float *K, int n, int dh, int ld, float s)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, dh, s, Q, ld, K, ld, 0.0f, P, n);
    for (int i = 0; i < n; i++) {
        float *restrict p = P + (long)i * n;
        float m = p[0];
        for (int j = 1; j < n; j++) m = p[j] > m ? p[j] : m;
        float sum = 0.0f;
        for (int j = 0; j < n; j++) {
            p[j] = expf(p[j] - m);
            sum += p[j];
        }
        const float inv = 1.0f / sum;
        for (int j = 0; j < n; j++) p[j] *= inv;
    }
}

/* ip: 0 nbags, 1 heads, 2 E, 3 longest sequence; saved: 0 offsets */
static void attention_backward(dp_ctx *c, dp_node *nd)
{
    dp_tensor *qkv = nd->in[0];
    float *g = dp_grad(c, qkv);
    if (!g) return;
    const int nbags = nd->ip[0], H = nd->ip[1], E = nd->ip[2], nmax = nd->ip[3], dh = E / H, ld = 3 * E;
    const int32_t *off = nd->saved[0];
    const float *dy = nd->out->grad;
    const float s = 1.0f / sqrtf((float)dh);
    float *P = dp_scratch(c, 2 * (size_t)nmax * (size_t)nmax * sizeof *P);
    if (!P) return;
    float *dP = P + (size_t)nmax * nmax;
    for (int b = 0; b < nbags; b++) {
        const int n = off[b + 1] - off[b];
        if (n == 0) continue;
        for (int h = 0; h < H; h++) {
            const long r0 = off[b];
            const float *Q = qkv->data + r0 * ld + h * dh, *K = Q + E, *V = Q + 2 * E;
            float *gQ = g + r0 * ld + h * dh, *gK = gQ + E, *gV = gQ + 2 * E;
            const float *dO = dy + r0 * E + h * dh;
            scores(P, Q, K, n, dh, ld, s);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, dh, n, 1.0f, P, n, dO, E, 1.0f, gV, ld);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, dh, 1.0f, dO, E, V, ld, 0.0f, dP, n);
            for (int i = 0; i < n; i++) {
                const float *restrict p = P + (long)i * n;
                float *restrict d = dP + (long)i * n;
                float dot = 0.0f;
                for (int j = 0; j < n; j++) dot += d[j] * p[j];
                for (int j = 0; j < n; j++) d[j] = p[j] * (d[j] - dot);
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, dh, n, s, dP, n, K, ld, 1.0f, gQ, ld);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, dh, n, s, dP, n, Q, ld, 1.0f, gK, ld);
        }
    }
}

dp_tensor *dp_self_attention(dp_ctx *c, dp_tensor *qkv, const int32_t *offsets, int nbags, int heads)
{
    if (!qkv) return NULL;
    if (!dp_check_ndim(c, "self_attention", qkv, 2)) return NULL;
    if (!offsets) return dp_fail(c, DP_ERR_ARG, "self_attention: no offsets");
    if (nbags < 1) return dp_fail(c, DP_ERR_ARG, "self_attention: %d sequences", nbags);
    const int T = qkv->shape[0], W = qkv->shape[1];
    if (heads < 1 || W % 3 != 0 || (W / 3) % heads != 0)
        return dp_fail(c, DP_ERR_SHAPE, "self_attention: qkv [%d,%d] is not [T, 3 E] with E divisible by %d heads", T, W,
                       heads);
    if (offsets[0] != 0 || offsets[nbags] != T)
        return dp_fail(c, DP_ERR_ARG, "self_attention: offsets run %d .. %d, the rows 0 .. %d", (int)offsets[0],
                       (int)offsets[nbags], T);
    int nmax = 1;
    for (int b = 0; b < nbags; b++) {
        const int n = offsets[b + 1] - offsets[b];
        if (n < 0)
            return dp_fail(c, DP_ERR_ARG, "self_attention: offsets[%d] = %d < offsets[%d] = %d (must not decrease)",
                           b + 1, (int)offsets[b + 1], b, (int)offsets[b]);
        if (n > nmax) nmax = n;
    }
    const int E = W / 3, dh = E / heads;
    const float s = 1.0f / sqrtf((float)dh);
    dp_tensor *y = dp_tensor_new(c, 2, (int[]){T, E});
    float *P = dp_scratch(c, (size_t)nmax * (size_t)nmax * sizeof *P);
    if (!y || !P) return NULL;
    for (int b = 0; b < nbags; b++) {
        const int n = offsets[b + 1] - offsets[b];
        if (n == 0) continue;
        for (int h = 0; h < heads; h++) {
            const long r0 = offsets[b];
            const float *Q = qkv->data + r0 * W + h * dh;
            scores(P, Q, Q + E, n, dh, W, s);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, dh, n, 1.0f, P, n, Q + 2 * E, W, 0.0f,
                        y->data + r0 * E + h * dh, E);
        }
    }
    dp_node *nd = dp_tape_push(c, attention_backward, "self_attention", y, 1, &qkv);
    if (nd) {
        nd->ip[0] = nbags;
        nd->ip[1] = heads;
        nd->ip[2] = E;
        nd->ip[3] = nmax;
        nd->saved[0] = (void *)offsets;
    }
    return y;
}
