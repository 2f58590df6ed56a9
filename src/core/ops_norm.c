/* Batch normalisation over dim 1 of x [N,C] or [N,C,H,W] (any [N,C,...]).
 *
 * Follows PyTorch's F.batch_norm / nn.BatchNorm{1,2}d:
 *  - training: normalise with the batch mean and the biased variance over
 *    (N, H, W); update running_mean/var (when given) with
 *    running = (1 - momentum) running + momentum stat, where stat for the
 *    variance is the unbiased one (M / (M - 1)); M = N H W must exceed 1.
 *  - eval (c->training == 0): normalise with the running statistics; still
 *    differentiable with respect to x, gamma and beta. Without running stats
 *    (track_running_stats=False) the batch statistics are used in eval too.
 *  - gamma/beta NULL: no affine transform (affine=False).
 * Statistics are accumulated in double. The backward keeps only the
 * per-channel mean and 1/std and recomputes xhat from x.
 *
 * Backward with batch statistics (per channel, sums over the M positions):
 *   dgamma += sum dy xhat,   dbeta += sum dy,
 *   dx = gamma invstd (dy - sum(dy)/M - xhat sum(dy xhat)/M);
 * with running statistics the mean and std are constants: dx = gamma invstd dy.
 *
 * Synchronised (c->stat_reduce set, training): the statistics are those of
 * the global batch over all replicas: forward sums (count, sum x, sum x^2)
 * across replicas, backward sums (sum dy, sum dy (x - mean)) for dx, while
 * dgamma/dbeta keep the local sums (the gradient allreduce adds them up). */
#include <math.h>
#include <string.h>

#include "core/tape.h"

/* Reductions over a contiguous [n] block with 8 independent partial sums, so
 * that they vectorise without -ffast-math (a single float accumulator may not
 * be reordered by the compiler). */
#define LANES 8

/* sum (x [n] - m)^2 */
static float sqdev_lanes(const float *restrict x, float m, long n)
{
    float p[LANES] = {0};
    long i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; k++) p[k] += (x[i + k] - m) * (x[i + k] - m);
    float s = 0.0f;
    for (; i < n; i++) s += (x[i] - m) * (x[i] - m);
    for (int k = 0; k < LANES; k++) s += p[k];
    return s;
}

/* *sdy = sum dy [n], *sdx = sum dy (x [n] - m) */
static void dysums_lanes(const float *restrict dy, const float *restrict x, float m, long n, float *sdy, float *sdx)
{
    float p[LANES] = {0}, q[LANES] = {0};
    long i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; k++) {
            p[k] += dy[i + k];
            q[k] += dy[i + k] * (x[i + k] - m);
        }
    float a = 0.0f, b = 0.0f;
    for (; i < n; i++) {
        a += dy[i];
        b += dy[i] * (x[i] - m);
    }
    for (int k = 0; k < LANES; k++) {
        a += p[k];
        b += q[k];
    }
    *sdy = a;
    *sdx = b;
}

/* dysums_lanes of the ReLU-masked dy: dy [n] = (y > 0) ? dy : 0 in place first
 * (y the fused op's output), in the same lanes and order, so the sums are those
 * of batchnorm's backward behind a separate relu. */
static void dysums_relu_lanes(float *restrict dy, const float *restrict y, const float *restrict x, float m, long n,
                              float *sdy, float *sdx)
{
    float p[LANES] = {0}, q[LANES] = {0};
    long i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; k++) {
            const float g = y[i + k] > 0.0f ? dy[i + k] : 0.0f;
            dy[i + k] = g;
            p[k] += g;
            q[k] += g * (x[i + k] - m);
        }
    float a = 0.0f, b = 0.0f;
    for (; i < n; i++) {
        const float g = y[i] > 0.0f ? dy[i] : 0.0f;
        dy[i] = g;
        a += g;
        b += g * (x[i] - m);
    }
    for (int k = 0; k < LANES; k++) {
        a += p[k];
        b += q[k];
    }
    *sdy = a;
    *sdx = b;
}

/* mean [C] and biased var [C] of x [N,C,S] over N and S; acc [2C] double scratch */
static void bn_stats(float *restrict mean, float *restrict var, const float *restrict x, int N, int C, long S,
                     double *restrict acc)
{
    double *restrict s1 = acc, *restrict s2 = acc + C;
    const double M = (double)N * (double)S;
    memset(acc, 0, 2 * (size_t)C * sizeof(double));
    if (S == 1) {
        for (int n = 0; n < N; n++) {
            const float *restrict xr = x + (long)n * C;
            for (int j = 0; j < C; j++) s1[j] += xr[j];
        }
        for (int j = 0; j < C; j++) s1[j] /= M;
        for (int n = 0; n < N; n++) {
            const float *restrict xr = x + (long)n * C;
            for (int j = 0; j < C; j++) {
                const double d = xr[j] - s1[j];
                s2[j] += d * d;
            }
        }
    } else {
        for (int n = 0; n < N; n++)
            for (int j = 0; j < C; j++) {
                s1[j] += dp_sum_lanes(x + ((long)n * C + j) * S, S);
            }
        for (int j = 0; j < C; j++) s1[j] /= M;
        for (int n = 0; n < N; n++)
            for (int j = 0; j < C; j++) {
                s2[j] += sqdev_lanes(x + ((long)n * C + j) * S, (float)s1[j], S);
            }
    }
    for (int j = 0; j < C; j++) {
        mean[j] = (float)s1[j];
        var[j] = (float)(s2[j] / M);
    }
}

/* y [N,C,S] = x * a[c] + b[c] */
static void bn_affine(float *restrict y, const float *restrict x, const float *restrict a, const float *restrict b,
                      int N, int C, long S)
{
    if (S == 1) {
        for (int n = 0; n < N; n++) {
            const float *restrict xr = x + (long)n * C;
            float *restrict yr = y + (long)n * C;
            for (int j = 0; j < C; j++) yr[j] = xr[j] * a[j] + b[j];
        }
        return;
    }
    for (int n = 0; n < N; n++)
        for (int j = 0; j < C; j++) {
            const long off = ((long)n * C + j) * S;
            const float *restrict xs = x + off;
            float *restrict ys = y + off;
            const float aj = a[j], bj = b[j];
            for (long s = 0; s < S; s++) ys[s] = xs[s] * aj + bj;
        }
}

/* y [N,C,S] = max(x * a[c] + b[c], 0): bn_affine and then relu_forward, in one pass */
static void bn_affine_relu(float *restrict y, const float *restrict x, const float *restrict a,
                           const float *restrict b, int N, int C, long S)
{
    for (int n = 0; n < N; n++)
        for (int j = 0; j < C; j++) {
            const long off = ((long)n * C + j) * S;
            const float *restrict xs = x + off;
            float *restrict ys = y + off;
            const float aj = a[j], bj = b[j];
            for (long s = 0; s < S; s++) {
                const float v = xs[s] * aj + bj;
                ys[s] = v > 0.0f ? v : 0.0f;
            }
        }
}

/* sdy [C] = sum dy, sdx [C] = sum dy (x - mean) over N and S (double) */
static void bn_grad_sums(double *restrict sdy, double *restrict sdx, const float *restrict dy,
                         const float *restrict x, const float *restrict mean, int N, int C, long S)
{
    memset(sdy, 0, (size_t)C * sizeof(double));
    memset(sdx, 0, (size_t)C * sizeof(double));
    if (S == 1) {
        for (int n = 0; n < N; n++) {
            const float *restrict xr = x + (long)n * C, *restrict dr = dy + (long)n * C;
            for (int j = 0; j < C; j++) {
                sdy[j] += dr[j];
                sdx[j] += dr[j] * (xr[j] - mean[j]);
            }
        }
        return;
    }
    for (int n = 0; n < N; n++)
        for (int j = 0; j < C; j++) {
            const long off = ((long)n * C + j) * S;
            float a, b;
            dysums_lanes(dy + off, x + off, mean[j], S, &a, &b);
            sdy[j] += a;
            sdx[j] += b;
        }
}

/* bn_grad_sums of dy masked by the fused relu's output y, dy masked in place
 * (the same order of additions as bn_grad_sums) */
static void bn_grad_sums_relu(double *restrict sdy, double *restrict sdx, float *restrict dy,
                              const float *restrict y, const float *restrict x, const float *restrict mean, int N,
                              int C, long S)
{
    memset(sdy, 0, (size_t)C * sizeof(double));
    memset(sdx, 0, (size_t)C * sizeof(double));
    if (S == 1) {
        for (int n = 0; n < N; n++) {
            const float *restrict xr = x + (long)n * C, *restrict yr = y + (long)n * C;
            float *restrict dr = dy + (long)n * C;
            for (int j = 0; j < C; j++) {
                const float g = yr[j] > 0.0f ? dr[j] : 0.0f;
                dr[j] = g;
                sdy[j] += g;
                sdx[j] += g * (xr[j] - mean[j]);
            }
        }
        return;
    }
    for (int n = 0; n < N; n++)
        for (int j = 0; j < C; j++) {
            const long off = ((long)n * C + j) * S;
            float a, b;
            dysums_relu_lanes(dy + off, y + off, x + off, mean[j], S, &a, &b);
            sdy[j] += a;
            sdx[j] += b;
        }
}

/* dx [N,C,S] += k[c] dy + a[c] (x - mean[c]) + b[c] */
static void bn_dx(float *restrict dx, const float *restrict dy, const float *restrict x, const float *restrict mean,
                  const float *restrict k, const float *restrict a, const float *restrict b, int N, int C, long S)
{
    if (S == 1) {
        for (int n = 0; n < N; n++) {
            const float *restrict xr = x + (long)n * C, *restrict dr = dy + (long)n * C;
            float *restrict gr = dx + (long)n * C;
            for (int j = 0; j < C; j++) gr[j] += k[j] * dr[j] + a[j] * (xr[j] - mean[j]) + b[j];
        }
        return;
    }
    for (int n = 0; n < N; n++)
        for (int j = 0; j < C; j++) {
            const long off = ((long)n * C + j) * S;
            const float *restrict xs = x + off, *restrict ds = dy + off;
            float *restrict gs = dx + off;
            const float kj = k[j], aj = a[j], bj = b[j], mj = mean[j];
            for (long s = 0; s < S; s++) gs[s] += kj * ds[s] + aj * (xs[s] - mj) + bj;
        }
}

/* g [N,C,S] = k[c] g + a[c] (x - mean[c]) + b[c]: bn_dx where g holds dy and becomes dx (x takes dy's block) */
static void bn_dx_inplace(float *restrict g, const float *restrict x, const float *restrict mean,
                          const float *restrict k, const float *restrict a, const float *restrict b, int N, int C,
                          long S)
{
    for (int n = 0; n < N; n++)
        for (int j = 0; j < C; j++) {
            const long off = ((long)n * C + j) * S;
            const float *restrict xs = x + off;
            float *restrict gs = g + off;
            const float kj = k[j], aj = a[j], bj = b[j], mj = mean[j];
            for (long s = 0; s < S; s++) gs[s] = kj * gs[s] + aj * (xs[s] - mj) + bj;
        }
}

/* Sums v [n] over the replicas; records a failure in c. */
static int reduce_stats(dp_ctx *c, double *v, int n)
{
    if (c->stat_reduce(c->stat_user, v, n) == 0) return 0;
    dp_fail(c, DP_ERR_MPI, "batchnorm: synchronising the batch statistics across replicas failed");
    return -1;
}

/* ip: 0 N, 1 C, 2 S, 3 batch statistics used, 4 synchronised, 5 global count M, 6 relu fused;
 * saved: 0 mean [C], 1 invstd [C] */
static void batchnorm_backward(dp_ctx *c, dp_node *nd)
{
    dp_tensor *x = nd->in[0], *gamma = nd->in[1], *beta = nd->in[2];
    const int N = nd->ip[0], C = nd->ip[1], batch = nd->ip[3];
    const long S = nd->ip[2];
    const int sync = nd->ip[4];
    const double M = sync ? (double)nd->ip[5] : (double)N * (double)S;
    const float *mean = nd->saved[0], *invstd = nd->saved[1];
    float *dy = nd->out->grad;
    float *gg = gamma ? dp_grad(c, gamma) : NULL;
    float *gb = beta ? dp_grad(c, beta) : NULL;
    double *sums = dp_scratch(c, 2 * (size_t)C * sizeof(double));
    float *coef = dp_scratch(c, 3 * (size_t)C * sizeof(float));
    if (!sums || !coef) return;
    /* x's first gradient: dx overwrites dy in dy's own block, elementwise after the sums have read dy */
    const int took = dp_grad_take(nd, x);
    float *gx = took ? dy : dp_grad(c, x);
    if (x->requires_grad && !gx) return;
    double *sdy = sums, *sdx = sums + C;
    if (nd->ip[6]) /* fused relu: dy of the batch-norm output is the output's dy where the output is > 0 */
        bn_grad_sums_relu(sdy, sdx, dy, nd->out->data, x->data, mean, N, C, S);
    else
        bn_grad_sums(sdy, sdx, dy, x->data, mean, N, C, S);
    for (int j = 0; j < C; j++) {
        if (gg) gg[j] += (float)(sdx[j] * invstd[j]); /* sum dy xhat */
        if (gb) gb[j] += (float)sdy[j];
    }
    if (!gx) return;
    if (sync && batch && reduce_stats(c, sums, 2 * C)) return;
    float *k = coef, *a = coef + C, *b = coef + 2 * C;
    for (int j = 0; j < C; j++) {
        const double g = gamma ? gamma->data[j] : 1.0;
        const double kj = g * invstd[j];
        k[j] = (float)kj;
        if (batch) {
            /* dx = k (dy - sdy/M - xhat sdxhat/M), xhat = (x - mean) invstd, sdxhat = sdx invstd */
            a[j] = (float)(-kj * invstd[j] * invstd[j] * sdx[j] / M); /* coefficient of (x - mean) */
            b[j] = (float)(-kj * sdy[j] / M);
        } else {
            a[j] = 0.0f;
            b[j] = 0.0f;
        }
    }
    if (took)
        bn_dx_inplace(gx, x->data, mean, k, a, b, N, C, S);
    else
        bn_dx(gx, dy, x->data, mean, k, a, b, N, C, S);
}

/* x * a[c] + b[c] over x [N,C,S] in place (no restrict: y is x) */
static void bn_affine_inplace(float *x, const float *a, const float *b, int N, int C, long S)
{
    for (int n = 0; n < N; n++)
        for (int j = 0; j < C; j++) {
            float *xs = x + ((long)n * C + j) * S;
            const float aj = a[j], bj = b[j];
            for (long i = 0; i < S; i++) xs[i] = xs[i] * aj + bj;
        }
}

static void batchnorm_inplace_backward(dp_ctx *c, dp_node *nd);

static dp_tensor *batchnorm(dp_ctx *c, dp_tensor *x, dp_tensor *gamma, dp_tensor *beta, float *running_mean,
                            float *running_var, float momentum, float eps, int inplace, int relu)
{
    if (!x) return NULL;
    if (x->ndim < 2) return dp_fail(c, DP_ERR_SHAPE, "batchnorm: x needs [N,C] or [N,C,H,W], got %d dims", x->ndim);
    const int N = x->shape[0], C = x->shape[1];
    const long S = x->n / ((long)N * C);
    if ((gamma && gamma->n != C) || (beta && beta->n != C))
        return dp_fail(c, DP_ERR_SHAPE, "batchnorm: gamma/beta need %d elements, got %ld/%ld", C,
                       gamma ? gamma->n : -1L, beta ? beta->n : -1L);
    if (!running_mean != !running_var)
        return dp_fail(c, DP_ERR_ARG, "batchnorm: running_mean and running_var must both be given or both be NULL");
    if (!(eps >= 0.0f) || !(momentum >= 0.0f && momentum <= 1.0f))
        return dp_fail(c, DP_ERR_ARG, "batchnorm: eps %g must be >= 0 and momentum %g in [0, 1]", eps, momentum);
    const int batch = c->training || !running_mean;
    const int sync = batch && c->training && c->stat_reduce;
    long M = (long)N * S;
    if (batch && M < 2)
        return dp_fail(c, DP_ERR_SHAPE,
                       "batchnorm: expected more than 1 value per channel with batch statistics, got N=%d, %ld per "
                       "sample",
                       N, S);

    dp_tensor *y = inplace ? dp_tensor_wrap(c, x->data, x->ndim, x->shape) : dp_tensor_new(c, x->ndim, x->shape);
    float *stat = dp_scratch(c, 4 * (size_t)C * sizeof(float)); /* mean, invstd | affine a, b */
    if (!y || !stat) return NULL;
    float *mean = stat, *invstd = stat + C, *a = stat + 2 * C, *b = stat + 3 * C;
    if (batch) {
        double *acc = dp_scratch(c, 2 * (size_t)C * sizeof(double));
        if (!acc) return NULL;
        float *var = a; /* a is free until the affine coefficients are made */
        bn_stats(mean, var, x->data, N, C, S, acc);
        if (sync) {
            /* (count, sum x, sum x^2) add up across replicas; acc holds the local mean and squared deviations */
            double *v = dp_scratch(c, (2 * (size_t)C + 1) * sizeof(double));
            if (!v) return NULL;
            v[0] = (double)M;
            for (int j = 0; j < C; j++) {
                v[1 + j] = acc[j] * (double)M;
                v[1 + C + j] = acc[C + j] + acc[j] * acc[j] * (double)M;
            }
            if (reduce_stats(c, v, 2 * C + 1)) return NULL;
            M = (long)v[0];
            for (int j = 0; j < C; j++) {
                const double m = v[1 + j] / v[0], q = v[1 + C + j] / v[0] - m * m;
                mean[j] = (float)m;
                var[j] = (float)(q > 0 ? q : 0);
            }
        }
        for (int j = 0; j < C; j++) invstd[j] = 1.0f / sqrtf(var[j] + eps);
        if (c->training && running_mean && !c->replaying) {
            const double unbias = (double)M / (double)(M - 1);
            for (int j = 0; j < C; j++) {
                running_mean[j] = (1.0f - momentum) * running_mean[j] + momentum * mean[j];
                running_var[j] = (float)((1.0 - momentum) * running_var[j] + momentum * var[j] * unbias);
            }
        }
    } else {
        for (int j = 0; j < C; j++) {
            mean[j] = running_mean[j];
            invstd[j] = 1.0f / sqrtf(running_var[j] + eps);
        }
    }
    for (int j = 0; j < C; j++) { /* y = (x - mean) invstd gamma + beta = x a + b */
        a[j] = invstd[j] * (gamma ? gamma->data[j] : 1.0f);
        b[j] = (beta ? beta->data[j] : 0.0f) - mean[j] * a[j];
    }
    if (inplace)
        bn_affine_inplace(y->data, a, b, N, C, S);
    else if (relu)
        bn_affine_relu(y->data, x->data, a, b, N, C, S);
    else
        bn_affine(y->data, x->data, a, b, N, C, S);

    dp_node *nd = dp_tape_push(c, inplace ? batchnorm_inplace_backward : batchnorm_backward,
                               inplace ? "batchnorm_inplace" : relu ? "batchnorm_relu" : "batchnorm", y, 3,
                               (dp_tensor *[]){x, gamma, beta});
    if (nd) {
        nd->ip[0] = N;
        nd->ip[1] = C;
        nd->ip[2] = (int)S;
        nd->ip[3] = batch;
        nd->ip[4] = sync;
        nd->ip[5] = (int)M;
        nd->ip[6] = relu;
        nd->saved[0] = mean;
        nd->saved[1] = invstd;
    }
    return y;
}

/* ---- in place, without affine ---- */

/* Without gamma/beta the output is xhat itself, so the backward can read y
 * where the plain op reads x: x is no longer needed and y may overwrite it.
 * ip and saved as batchnorm_backward. */
static void batchnorm_inplace_backward(dp_ctx *c, dp_node *nd)
{
    dp_tensor *x = nd->in[0], *y = nd->out;
    const int N = nd->ip[0], C = nd->ip[1], batch = nd->ip[3], sync = nd->ip[4];
    const long S = nd->ip[2];
    const double M = sync ? (double)nd->ip[5] : (double)N * (double)S;
    const float *invstd = nd->saved[1];
    float *gx = dp_grad(c, x);
    double *sums = dp_scratch(c, 2 * (size_t)C * sizeof(double));
    float *coef = dp_scratch(c, 4 * (size_t)C * sizeof(float));
    if (!gx || !sums || !coef) return;
    float *k = coef, *a = coef + C, *b = coef + 2 * C, *zero = coef + 3 * C;
    for (int j = 0; j < C; j++) zero[j] = 0.0f;
    double *sdy = sums, *sdyy = sums + C;
    if (batch) {
        bn_grad_sums(sdy, sdyy, y->grad, y->data, zero, N, C, S);
        if (sync && reduce_stats(c, sums, 2 * C)) return;
    }
    for (int j = 0; j < C; j++) {
        /* dx = invstd (dy - sum(dy)/M - y sum(dy y)/M) */
        k[j] = invstd[j];
        a[j] = batch ? (float)(-invstd[j] * sdyy[j] / M) : 0.0f;
        b[j] = batch ? (float)(-invstd[j] * sdy[j] / M) : 0.0f;
    }
    bn_dx(gx, y->grad, y->data, zero, k, a, b, N, C, S);
}

dp_tensor *dp_batchnorm(dp_ctx *c, dp_tensor *x, dp_tensor *gamma, dp_tensor *beta, float *running_mean,
                        float *running_var, float momentum, float eps)
{
    return batchnorm(c, x, gamma, beta, running_mean, running_var, momentum, eps, 0, 0);
}

dp_tensor *dp_batchnorm_relu(dp_ctx *c, dp_tensor *x, dp_tensor *gamma, dp_tensor *beta, float *running_mean,
                             float *running_var, float momentum, float eps)
{
    return batchnorm(c, x, gamma, beta, running_mean, running_var, momentum, eps, 0, 1);
}

dp_tensor *dp_batchnorm_inplace(dp_ctx *c, dp_tensor *x, float *running_mean, float *running_var, float momentum,
                                float eps)
{
    return batchnorm(c, x, NULL, NULL, running_mean, running_var, momentum, eps, 1, 0);
}
