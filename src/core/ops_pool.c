/* Pooling ops: max-pool, average-pool (padding excluded from the divisor) and
 * global average pool, on NCHW tensors. Same semantics as PyTorch's
 * MaxPool2d / AvgPool2d(count_include_pad=False) / AdaptiveAvgPool2d(1) with
 * ceil_mode=False.
 *
 * Max-pool records, per output cell, the winning input cell as an int32 offset
 * inside its [H, W] plane (arena memory, only when a gradient is wanted);
 * backward scatters dy through it. Padding cells are never candidates, and
 * pad <= k/2 (as PyTorch requires) guarantees each window holds a real cell.
 * NaN propagates like PyTorch: a NaN input wins its window.
 * The 2x2 stride-2 unpadded case (the reference CNN) has its own SSE2 loop. */
#include <math.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "core/tape.h"

typedef struct pool_geom {
    long planes;  /* N * C */
    int H, W, Ho, Wo, k, s, p;
} pool_geom;

static dp_tensor *pool_setup(dp_ctx *c, const char *op, dp_tensor *x, int k, int stride, int pad, pool_geom *g)
{
    if (!dp_check_ndim(c, op, x, 4)) return NULL;
    if (k < 1 || stride < 1 || pad < 0 || pad > k / 2)
        return dp_fail(c, DP_ERR_ARG, "%s: kernel %d, stride %d, pad %d (need k >= 1, stride >= 1, 0 <= pad <= k/2)",
                       op, k, stride, pad);
    g->planes = (long)x->shape[0] * x->shape[1];
    g->H = x->shape[2];
    g->W = x->shape[3];
    g->k = k;
    g->s = stride;
    g->p = pad;
    if (g->H + 2 * pad < k || g->W + 2 * pad < k)
        return dp_fail(c, DP_ERR_SHAPE, "%s: %dx%d window larger than the %dx%d input padded by %d", op, k, k, g->H,
                       g->W, pad);
    g->Ho = (g->H + 2 * pad - k) / stride + 1;
    g->Wo = (g->W + 2 * pad - k) / stride + 1;
    int shape[4] = {x->shape[0], x->shape[1], g->Ho, g->Wo};
    return dp_tensor_new(c, 4, shape);
}

/* Window [lo, hi) along one axis for output index o. */
static inline void pool_window(int o, const pool_geom *g, int n_in, int *lo, int *hi)
{
    int a = o * g->s - g->p, b = a + g->k;
    *lo = a < 0 ? 0 : a;
    *hi = b > n_in ? n_in : b;
}

/* ---- max-pool ---- */

#ifdef __SSE2__
/* Candidate v replaces the running max m when v > m or v is NaN (PyTorch's rule). */
static inline __m128 take_mask(__m128 v, __m128 m) { return _mm_or_ps(_mm_cmpgt_ps(v, m), _mm_cmpunord_ps(v, v)); }
static inline __m128 sel_ps(__m128 k, __m128 a, __m128 b) { return _mm_or_ps(_mm_and_ps(k, a), _mm_andnot_ps(k, b)); }
static inline __m128i sel_epi32(__m128 k, __m128i a, __m128i b)
{
    __m128i ki = _mm_castps_si128(k);
    return _mm_or_si128(_mm_and_si128(ki, a), _mm_andnot_si128(ki, b));
}

/* The max of four candidate vectors, taken in the order given, and in *off
 * the offset (o01, o10, o11, or 0 for v00) of the winner, lane by lane. */
static inline __m128 max4_sse(__m128 v00, __m128 v01, __m128 v10, __m128 v11, __m128i o01, __m128i o10, __m128i o11,
                              __m128i *off)
{
    __m128 m = v00;
    __m128i o = _mm_setzero_si128();
    __m128 k = take_mask(v01, m);
    m = sel_ps(k, v01, m);
    o = sel_epi32(k, o01, o);
    k = take_mask(v10, m);
    m = sel_ps(k, v10, m);
    o = sel_epi32(k, o10, o);
    k = take_mask(v11, m);
    m = sel_ps(k, v11, m);
    o = sel_epi32(k, o11, o);
    *off = o;
    return m;
}

/* One output row of the 2x2 stride-2 unpadded pool: yr [Wo] <- max of the
 * pairs of input rows r0, r1 [W]; ir [Wo] (may be NULL) <- plane offsets of the
 * winners, base being the offset of r0. Candidates in the order (r0 left,
 * r0 right, r1 left, r1 right) with a strict >, so the first maximum wins as in
 * PyTorch. SSE2 (x86-64 baseline), four outputs at a time, a ragged end
 * done as the last four again (rows shorter than 4 through a padded copy): no
 * data-dependent branches anywhere, since those mispredict about half the time
 * on real activations. */
static void maxpool2x2_row(float *yr, int32_t *ir, const float *r0, const float *r1, int Wo, int32_t base, int W)
{
    const __m128i o01 = _mm_set1_epi32(1), o10 = _mm_set1_epi32(W), o11 = _mm_set1_epi32(W + 1);
    const __m128i ramp = _mm_setr_epi32(0, 2, 4, 6);
    __m128i off;
    int ow = 0;
    for (;;) {
        if (ow + 4 > Wo) {
            if (Wo < 4) break;
            ow = Wo - 4; /* last 4 outputs, overlapping the previous group: same values rewritten */
        }
        const __m128 a0 = _mm_loadu_ps(r0 + 2 * ow), a1 = _mm_loadu_ps(r0 + 2 * ow + 4);
        const __m128 b0 = _mm_loadu_ps(r1 + 2 * ow), b1 = _mm_loadu_ps(r1 + 2 * ow + 4);
        const __m128 m = max4_sse(_mm_shuffle_ps(a0, a1, _MM_SHUFFLE(2, 0, 2, 0)),
                                  _mm_shuffle_ps(a0, a1, _MM_SHUFFLE(3, 1, 3, 1)),
                                  _mm_shuffle_ps(b0, b1, _MM_SHUFFLE(2, 0, 2, 0)),
                                  _mm_shuffle_ps(b0, b1, _MM_SHUFFLE(3, 1, 3, 1)), o01, o10, o11, &off);
        _mm_storeu_ps(yr + ow, m);
        if (ir) {
            const __m128i j = _mm_add_epi32(_mm_set1_epi32(base + 2 * ow), _mm_add_epi32(ramp, off));
            _mm_storeu_si128((__m128i *)(ir + ow), j);
        }
        ow += 4;
        if (ow == Wo) return;
    }
    /* Wo < 4: one padded group */
    float c[4][4] = {{0}}, m[4];
    int32_t jj[4];
    for (int q = 0; q < Wo; q++) {
        c[0][q] = r0[2 * q];
        c[1][q] = r0[2 * q + 1];
        c[2][q] = r1[2 * q];
        c[3][q] = r1[2 * q + 1];
    }
    _mm_storeu_ps(m, max4_sse(_mm_loadu_ps(c[0]), _mm_loadu_ps(c[1]), _mm_loadu_ps(c[2]), _mm_loadu_ps(c[3]), o01,
                              o10, o11, &off));
    _mm_storeu_si128((__m128i *)jj, _mm_add_epi32(_mm_add_epi32(_mm_set1_epi32(base), ramp), off));
    for (int q = 0; q < Wo; q++) {
        yr[q] = m[q];
        if (ir) ir[q] = jj[q];
    }
}

#endif /* __SSE2__ */

/* y [planes, Ho, Wo] <- max over windows of x [planes, H, W]; idx [planes, Ho, Wo]
 * (may be NULL) <- the winner's offset in its plane. */
static void maxpool2d_forward(float *y, int32_t *idx, const float *x, const pool_geom *g)
{
    const long HW = (long)g->H * g->W, P = (long)g->Ho * g->Wo;
#ifdef __SSE2__
    if (g->k == 2 && g->s == 2 && g->p == 0) {
        for (long pl = 0; pl < g->planes; pl++)
            for (int oh = 0; oh < g->Ho; oh++) {
                const float *r0 = x + pl * HW + (long)(2 * oh) * g->W;
                maxpool2x2_row(y + pl * P + (long)oh * g->Wo, idx ? idx + pl * P + (long)oh * g->Wo : NULL, r0,
                               r0 + g->W, g->Wo, 2 * oh * g->W, g->W);
            }
        return;
    }
#endif
    for (long pl = 0; pl < g->planes; pl++) {
        const float *xp = x + pl * HW;
        for (int oh = 0; oh < g->Ho; oh++) {
            int h0, h1;
            pool_window(oh, g, g->H, &h0, &h1);
            for (int ow = 0; ow < g->Wo; ow++) {
                int w0, w1;
                pool_window(ow, g, g->W, &w0, &w1);
                int32_t j = h0 * g->W + w0;
                float m = xp[j];
                for (int ih = h0; ih < h1; ih++)
                    for (int iw = w0; iw < w1; iw++) {
                        const float v = xp[ih * g->W + iw];
                        if (v > m || isnan(v)) m = v, j = ih * g->W + iw;
                    }
                y[pl * P + (long)oh * g->Wo + ow] = m;
                if (idx) idx[pl * P + (long)oh * g->Wo + ow] = j;
            }
        }
    }
}

/* dx [planes, H, W] += dy [planes, Ho, Wo] routed through idx. */
static void maxpool2d_backward(float *dx, const float *dy, const int32_t *idx, const pool_geom *g)
{
    const long HW = (long)g->H * g->W, P = (long)g->Ho * g->Wo;
    for (long pl = 0; pl < g->planes; pl++) {
        float *dxp = dx + pl * HW;
        const float *dyp = dy + pl * P;
        const int32_t *ip = idx + pl * P;
        for (long i = 0; i < P; i++) dxp[ip[i]] += dyp[i];
    }
}

static void maxpool2d_backward_node(dp_ctx *c, dp_node *nd)
{
    dp_tensor *x = nd->in[0];
    float *dx = dp_grad(c, x);
    if (!dx) return;
    pool_geom g = {.planes = (long)x->shape[0] * x->shape[1], .H = x->shape[2], .W = x->shape[3],
                   .Ho = nd->out->shape[2], .Wo = nd->out->shape[3]};
    maxpool2d_backward(dx, nd->out->grad, nd->saved[0], &g);
}

dp_tensor *dp_maxpool2d(dp_ctx *c, dp_tensor *x, int k, int stride, int pad)
{
    if (!x) return NULL;
    pool_geom g;
    dp_tensor *y = pool_setup(c, "maxpool2d", x, k, stride, pad, &g);
    if (!y) return NULL;
    int32_t *idx = NULL;
    if (c->grad_enabled && x->requires_grad) {
        idx = dp_scratch(c, (size_t)y->n * sizeof *idx);
        if (!idx) return NULL;
    }
    maxpool2d_forward(y->data, idx, x->data, &g);
    dp_node *nd = dp_tape_push(c, maxpool2d_backward_node, "maxpool2d", y, 1, &x);
    if (!nd) return c->status == DP_OK ? y : NULL;
    nd->saved[0] = idx;
    return y;
}

/* ---- average pool ---- */

/* y [planes, Ho, Wo] <- mean of the real cells of each window of x [planes, H, W]. */
static void avgpool2d_forward(float *y, const float *x, const pool_geom *g)
{
    const long HW = (long)g->H * g->W, P = (long)g->Ho * g->Wo;
    for (long pl = 0; pl < g->planes; pl++) {
        const float *xp = x + pl * HW;
        for (int oh = 0; oh < g->Ho; oh++) {
            int h0, h1;
            pool_window(oh, g, g->H, &h0, &h1);
            for (int ow = 0; ow < g->Wo; ow++) {
                int w0, w1;
                pool_window(ow, g, g->W, &w0, &w1);
                float s = 0.0f;
                for (int ih = h0; ih < h1; ih++)
                    for (int iw = w0; iw < w1; iw++) s += xp[ih * g->W + iw];
                y[pl * P + (long)oh * g->Wo + ow] = s / (float)((h1 - h0) * (w1 - w0));
            }
        }
    }
}

/* dx [planes, H, W] += dy [planes, Ho, Wo] spread evenly over each window's real cells. */
static void avgpool2d_backward(float *dx, const float *dy, const pool_geom *g)
{
    const long HW = (long)g->H * g->W, P = (long)g->Ho * g->Wo;
    for (long pl = 0; pl < g->planes; pl++) {
        float *dxp = dx + pl * HW;
        for (int oh = 0; oh < g->Ho; oh++) {
            int h0, h1;
            pool_window(oh, g, g->H, &h0, &h1);
            for (int ow = 0; ow < g->Wo; ow++) {
                int w0, w1;
                pool_window(ow, g, g->W, &w0, &w1);
                const float d = dy[pl * P + (long)oh * g->Wo + ow] / (float)((h1 - h0) * (w1 - w0));
                for (int ih = h0; ih < h1; ih++)
                    for (int iw = w0; iw < w1; iw++) dxp[ih * g->W + iw] += d;
            }
        }
    }
}

static void avgpool2d_backward_node(dp_ctx *c, dp_node *nd)
{
    dp_tensor *x = nd->in[0];
    float *dx = dp_grad(c, x);
    if (!dx) return;
    pool_geom g = {.planes = (long)x->shape[0] * x->shape[1], .H = x->shape[2], .W = x->shape[3],
                   .Ho = nd->out->shape[2], .Wo = nd->out->shape[3], .k = nd->ip[0], .s = nd->ip[1], .p = nd->ip[2]};
    avgpool2d_backward(dx, nd->out->grad, &g);
}

dp_tensor *dp_avgpool2d(dp_ctx *c, dp_tensor *x, int k, int stride, int pad)
{
    if (!x) return NULL;
    pool_geom g;
    dp_tensor *y = pool_setup(c, "avgpool2d", x, k, stride, pad, &g);
    if (!y) return NULL;
    avgpool2d_forward(y->data, x->data, &g);
    dp_node *nd = dp_tape_push(c, avgpool2d_backward_node, "avgpool2d", y, 1, &x);
    if (!nd) return c->status == DP_OK ? y : NULL;
    nd->ip[0] = k;
    nd->ip[1] = stride;
    nd->ip[2] = pad;
    return y;
}

/* ---- global average pool ---- */

static void global_avgpool_backward_node(dp_ctx *c, dp_node *nd)
{
    dp_tensor *x = nd->in[0];
    float *dx = dp_grad(c, x);
    if (!dx) return;
    const long planes = (long)x->shape[0] * x->shape[1], HW = (long)x->shape[2] * x->shape[3];
    const float *dy = nd->out->grad;
    for (long pl = 0; pl < planes; pl++) {
        const float d = dy[pl] / (float)HW;
        for (long i = 0; i < HW; i++) dx[pl * HW + i] += d;
    }
}

dp_tensor *dp_global_avgpool(dp_ctx *c, dp_tensor *x)
{
    if (!x) return NULL;
    if (!dp_check_ndim(c, "global_avgpool", x, 4)) return NULL;
    int shape[2] = {x->shape[0], x->shape[1]};
    dp_tensor *y = dp_tensor_new(c, 2, shape);
    if (!y) return NULL;
    const long HW = (long)x->shape[2] * x->shape[3];
    for (long pl = 0; pl < y->n; pl++) {
        double s = 0.0;
        for (long i = 0; i < HW; i++) s += x->data[pl * HW + i];
        y->data[pl] = (float)(s / (double)HW);
    }
    dp_node *nd = dp_tape_push(c, global_avgpool_backward_node, "global_avgpool", y, 1, &x);
    if (!nd && c->status != DP_OK) return NULL;
    return y;
}
