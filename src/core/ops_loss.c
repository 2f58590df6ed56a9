/* Cross-entropy loss fused with log-softmax: the classifier head's loss.
 *
 * As PyTorch's F.cross_entropy(logits, labels) with reduction='mean' (no
 * weights, no ignore_index, no label smoothing):
 *   loss = 1/N sum_i (logsumexp(logits_i) - logits_i[label_i])
 *   dlogits_i = g/N (softmax(logits_i) - onehot(label_i)).
 * The forward keeps one log-sum-exp per row; the backward recomputes the
 * softmax from it instead of storing an [N,C] probability matrix. */
#include <math.h>

#include "core/tape.h"

/* logsumexp of s x[0..C) for s > 0, from the row's maximum; *arg = its first argmax. */
static float row_logsumexp(const float *restrict x, int C, float s, int *arg)
{
    float m = x[0];
    int a = 0;
    for (int j = 1; j < C; j++)
        if (x[j] > m) {
            m = x[j];
            a = j;
        }
    float sum = 0.0f;
    for (int j = 0; j < C; j++) sum += expf(s * (x[j] - m));
    *arg = a;
    return s * m + logf(sum);
}

/* lse [N] = logsumexp of each row of x [N,C]; returns sum_i (lse_i - x_i[label_i])
 * in double; *correct += rows whose first argmax equals the label. */
static double cross_entropy_forward(float *restrict lse, const float *restrict x, const int32_t *restrict labels,
                                    int N, int C, long *correct)
{
    double total = 0.0;
    long hits = 0;
    for (int r = 0; r < N; r++) {
        const float *restrict xr = x + (long)r * C;
        int arg;
        lse[r] = row_logsumexp(xr, C, 1.0f, &arg);
        total += (double)lse[r] - (double)xr[labels[r]];
        hits += arg == labels[r];
    }
    if (correct) *correct = hits;
    return total;
}

/* dx [N,C] += g (exp(x - lse) - onehot(label)), g = dloss / N */
static void cross_entropy_backward_k(float *restrict dx, const float *restrict x, const float *restrict lse,
                                     const int32_t *restrict labels, int N, int C, float g)
{
    for (int r = 0; r < N; r++) {
        const float *restrict xr = x + (long)r * C;
        float *restrict dr = dx + (long)r * C;
        const float l = lse[r];
        for (int j = 0; j < C; j++) dr[j] += g * expf(xr[j] - l);
        dr[labels[r]] -= g;
    }
}

/* ip: 0 N, 1 C; saved: 0 lse [N], 1 labels [N] */
static void cross_entropy_backward(dp_ctx *c, dp_node *nd)
{
    dp_tensor *x = nd->in[0];
    float *gx = dp_grad(c, x);
    const int N = nd->ip[0], C = nd->ip[1];
    if (gx) cross_entropy_backward_k(gx, x->data, nd->saved[0], nd->saved[1], N, C, nd->out->grad[0] / (float)N);
}

dp_tensor *dp_cross_entropy(dp_ctx *c, dp_tensor *logits, const int32_t *labels, long *correct)
{
    if (!logits) return NULL;
    if (!labels) return dp_fail(c, DP_ERR_ARG, "cross_entropy: no labels");
    if (!dp_check_ndim(c, "cross_entropy", logits, 2)) return NULL;
    const int N = logits->shape[0], C = logits->shape[1];
    for (int r = 0; r < N; r++)
        if (labels[r] < 0 || labels[r] >= C)
            return dp_fail(c, DP_ERR_ARG, "cross_entropy: row %d has label %d, outside [0, %d)", r, (int)labels[r],
                           C);
    dp_tensor *y = dp_tensor_new(c, 1, (int[]){1});
    float *lse = dp_scratch(c, (size_t)N * sizeof(float));
    if (!y || !lse) return NULL;
    y->data[0] = (float)(cross_entropy_forward(lse, logits->data, labels, N, C, correct) / N);
    dp_node *nd = dp_tape_push(c, cross_entropy_backward, "cross_entropy", y, 1, &logits);
    if (nd) {
        nd->ip[0] = N;
        nd->ip[1] = C;
        nd->saved[0] = lse;
        nd->saved[1] = (void *)labels;
    }
    return y;
}

/* ---- KL divergence to soft targets (distillation) ----
 *
 *   loss = 1/N sum_i sum_j p_ij (log p_ij - log q_ij),  q_i = softmax(x_i / t)
 *   dx_i = g/(N t) (q_i - p_i)
 * p is a constant (a teacher's probabilities): no gradient reaches it. As with
 * cross-entropy the forward keeps one log-sum-exp of x_i / t per row and the
 * backward recomputes q from it. */

/* lse [N] = logsumexp(x_i / t); returns sum_i KL_i in double. */
static double kl_soft_forward(float *restrict lse, const float *restrict x, const float *restrict p, int N, int C,
                              float t)
{
    double total = 0.0;
    for (int r = 0; r < N; r++) {
        const float *restrict xr = x + (long)r * C, *restrict pr = p + (long)r * C;
        int arg;
        lse[r] = row_logsumexp(xr, C, 1.0f / t, &arg);
        double kl = 0.0;
        for (int j = 0; j < C; j++) /* 0 log 0 = 0: a class the teacher rules out adds nothing */
            if (pr[j] > 0.0f) kl += (double)pr[j] * (log((double)pr[j]) - ((double)xr[j] / t - (double)lse[r]));
        total += kl;
    }
    return total;
}

/* ip: 0 N, 1 C; fp: 0 t; saved: 0 lse [N], 1 p [N,C] */
static void kl_soft_backward(dp_ctx *c, dp_node *nd)
{
    dp_tensor *x = nd->in[0];
    float *gx = dp_grad(c, x);
    if (!gx) return;
    const int N = nd->ip[0], C = nd->ip[1];
    const float t = nd->fp[0], g = nd->out->grad[0] / ((float)N * t);
    const float *lse = nd->saved[0], *p = nd->saved[1];
    for (int r = 0; r < N; r++) {
        const float *restrict xr = x->data + (long)r * C, *restrict pr = p + (long)r * C;
        float *restrict dr = gx + (long)r * C;
        for (int j = 0; j < C; j++) dr[j] += g * (expf(xr[j] / t - lse[r]) - pr[j]);
    }
}

dp_tensor *dp_kl_soft_targets(dp_ctx *c, dp_tensor *logits, const float *target, float t)
{
    if (!logits) return NULL;
    if (!target) return dp_fail(c, DP_ERR_ARG, "kl_soft_targets: no target");
    if (!(t > 0.0f) || !isfinite(t)) return dp_fail(c, DP_ERR_ARG, "kl_soft_targets: temperature %g must be > 0", t);
    if (!dp_check_ndim(c, "kl_soft_targets", logits, 2)) return NULL;
    const int N = logits->shape[0], C = logits->shape[1];
    for (int r = 0; r < N; r++) { /* a probability row each, or the value is no KL divergence */
        double sum = 0.0;
        for (int j = 0; j < C; j++) {
            const float v = target[(long)r * C + j];
            if (!(v >= 0.0f) || !isfinite(v))
                return dp_fail(c, DP_ERR_ARG, "kl_soft_targets: target row %d holds %g at class %d (must be a "
                               "probability)", r, v, j);
            sum += v;
        }
        if (fabs(sum - 1.0) > 1e-3)
            return dp_fail(c, DP_ERR_ARG, "kl_soft_targets: target row %d sums to %.6g, not 1", r, sum);
    }
    dp_tensor *y = dp_tensor_new(c, 1, (int[]){1});
    float *lse = dp_scratch(c, (size_t)N * sizeof(float));
    if (!y || !lse) return NULL;
    y->data[0] = (float)(kl_soft_forward(lse, logits->data, target, N, C, t) / N);
    dp_node *nd = dp_tape_push(c, kl_soft_backward, "kl_soft_targets", y, 1, &logits);
    if (nd) {
        nd->ip[0] = N;
        nd->ip[1] = C;
        nd->fp[0] = t;
        nd->saved[0] = lse;
        nd->saved[1] = (void *)target;
    }
    return y;
}
