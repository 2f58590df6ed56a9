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
 * The 2x2 stride-2 unpadded case (the reference CNN) has its own SSE2 loop.
 *
 * 3x3 windows with pad 1 and stride 1 or 2 (the DARTS search's pools) run
 * separable kernels: every input row is first reduced over each output
 * column's 3-wide window (max and its column, or sum), then each output row
 * combines its (up to) 3 rows (the average at stride 2 sums rows first, on
 * the output rows only); the average backward is the same passes in reverse.
 * At stride 1 (and stride 2 on even widths) a pass runs flat over the whole
 * plane, long vectors even for 7-wide rows, and the border cells it got
 * wrong are redone. Written as branch-free C that the compiler vectorises,
 * built twice: for the x86-64 baseline and, chosen at run time, for AVX2.
 * Max windows at the border are clamped rather than cut: a clamped cell
 * repeats its neighbour in the scan order, and a repeat never changes the
 * winner under the first-max / NaN rule. Sums are added in another order
 * than the plain loops, so averages can differ from theirs in the last bit. */
#include <math.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "core/tape.h"

/* Kernel choice for tests: 0 automatic, 1 the portable build of the 3x3
 * kernels, 2 the plain loops everywhere. Not in a header: only
 * tests/core/test_ops_pool.c declares it. */
void dp_pool_set_kernels(int mode);

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

/* ---- 3x3 pad-1 windows, stride 1 or 2 ----
 * Output column ow covers input columns ow*s - 1 .. ow*s + 1, output row oh
 * input rows oh*s - 1 .. oh*s + 1 (both cut to the input). S is a
 * compile-time stride in the bodies below. */

static int pool_mode;

void dp_pool_set_kernels(int mode) { pool_mode = mode; }

static int pool3_fast(const pool_geom *g) { return g->k == 3 && g->p == 1 && (g->s == 1 || g->s == 2); }

#define POOL_INLINE static inline __attribute__((always_inline))

/* Columns ow in [1, pool3_inner_end) have all 3 cells inside the row. */
static int pool3_inner_end(int W, int Wo, int S)
{
    const int e = W >= 2 ? (W - 2) / S + 1 : 0;
    return e < Wo ? e : Wo;
}

static inline uint32_t f2u(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float u2f(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Candidate (v, jv) replaces the running max (m, j) when v > m or v is NaN
 * (PyTorch's rule). Written as bit selects: the vectoriser turns them into
 * blends, and the scalar remainders stay free of data-dependent branches
 * (a compare-and-jump per cell mispredicts about half the time on real
 * activations, and those mispredictions dominate a plain loop's time). */
POOL_INLINE void max_take(float *m, int32_t *j, float v, int32_t jv)
{
    const uint32_t k = -(uint32_t)((v > *m) | (v != v));
    *m = u2f((f2u(v) & k) | (f2u(*m) & ~k));
    *j = (int32_t)(((uint32_t)jv & k) | ((uint32_t)*j & ~k));
}

/* hm[i], hj[i] <- max of x[i*S - 1 .. i*S + 1] and its offset, i in [lo, hi). */
POOL_INLINE void max3_h(float *restrict hm, int32_t *restrict hj, const float *restrict x, int lo, int hi,
                        const int S)
{
    /* int indices: the offsets are int32 lanes, and 64-bit index vectors
     * would cost a repack per vector */
    for (int i = lo; i < hi; i++) {
        const int c = i * S - 1;
        float m = x[c];
        int32_t j = c;
        max_take(&m, &j, x[c + 1], c + 1);
        max_take(&m, &j, x[c + 2], c + 2);
        hm[i] = m;
        hj[i] = j;
    }
}

/* The max over x[c0 .. c1) (c0 < c1), winner's offset in *j. */
POOL_INLINE float max_span(const float *x, int c0, int c1, int32_t *j)
{
    float m = x[c0];
    *j = c0;
    for (int c = c0 + 1; c < c1; c++) max_take(&m, j, x[c], c);
    return m;
}

/* y[i], yj[i] <- the max of the candidates at i of rows h0, h1 and (R = 3)
 * h2, taken in that order. */
POOL_INLINE void max_rows(float *restrict y, int32_t *restrict yj, const float *h0, const int32_t *j0,
                          const float *h1, const int32_t *j1, const float *h2, const int32_t *j2, long n, const int R)
{
    for (long i = 0; i < n; i++) {
        float m = h0[i];
        int32_t j = j0[i];
        max_take(&m, &j, h1[i], j1[i]);
        if (R == 3) max_take(&m, &j, h2[i], j2[i]);
        y[i] = m;
        yj[i] = j;
    }
}

/* One plane: y [Ho, Wo], idx [Ho, Wo] <- x [H, W]; hm, hj: scratch [H, Wo]
 * (each row reduced across its column windows, hj the winners' plane
 * offsets). Border windows are clamped: a repeated cell never changes the
 * winner. For stride 1, and stride 2 on even widths, the row pass runs over
 * the plane as one flat loop (long vectors even for 7-wide rows) and the
 * first column of every row is redone; stride-1 output rows 1..H-2 are also
 * one flat loop. */
POOL_INLINE void max3_plane(float *restrict y, int32_t *restrict idx, const float *restrict x, float *restrict hm,
                            int32_t *restrict hj, int H, int W, int Ho, int Wo, const int S)
{
    const int e = pool3_inner_end(W, Wo, S);
    const int flat = S == 1 || W % 2 == 0;
    /* flat: wraps across rows at the border columns, redone below; its
     * offsets are the plane's already */
    const int end = S == 1 ? H * W - 1 : H * Wo;
    if (flat && end > 1) max3_h(hm, hj, x, 1, end, S);
    for (int r = 0; r < H; r++) {
        const long o = (long)r * Wo;
        const float *xr = x + (long)r * W;
        if (!flat && e > 1) {
            max3_h(hm + o, hj + o, xr, 1, e, S);
            for (int ow = 1; ow < e; ow++) hj[o + ow] += r * W;
        }
        for (int ow = 0; ow < Wo; ow = ow == 0 && e > 1 ? e : ow + 1) {
            const int c0 = ow * S - 1 < 0 ? 0 : ow * S - 1, c1 = ow * S + 2 > W ? W : ow * S + 2;
            hm[o + ow] = max_span(xr, c0, c1, &hj[o + ow]);
            hj[o + ow] += r * W;
        }
    }
    if (H == 1) {
        memcpy(y, hm, (size_t)Wo * sizeof *y);
        memcpy(idx, hj, (size_t)Wo * sizeof *idx);
        return;
    }
    if (S == 1) {
        /* row 0: rows 0, 1 (the clamped row -1 repeats row 0); rows 1..H-2:
         * flat; row H-1: rows H-2, H-1 */
        max_rows(y, idx, hm, hj, hm + W, hj + W, NULL, NULL, W, 2);
        if (H > 2)
            max_rows(y + W, idx + W, hm, hj, hm + W, hj + W, hm + 2 * W, hj + 2 * W, (long)(H - 2) * W, 3);
        const long l = (long)(H - 1) * W;
        max_rows(y + l, idx + l, hm + l - W, hj + l - W, hm + l, hj + l, NULL, NULL, W, 2);
        return;
    }
    for (int oh = 0; oh < Ho; oh++) {
        const int r1 = oh * S, r0 = r1 > 0 ? r1 - 1 : 0, r2 = r1 + 1 < H ? r1 + 1 : H - 1;
        const long o = (long)oh * Wo;
        max_rows(y + o, idx + o, hm + (long)r0 * Wo, hj + (long)r0 * Wo, hm + (long)r1 * Wo, hj + (long)r1 * Wo,
                 hm + (long)r2 * Wo, hj + (long)r2 * Wo, Wo, 3);
    }
}

/* hs[i] <- x[i*S - 1] + x[i*S] + x[i*S + 1], i in [lo, hi). */
POOL_INLINE void sum3_h(float *restrict hs, const float *restrict x, int lo, int hi, const int S)
{
    for (int i = lo; i < hi; i++) {
        const int c = i * S - 1;
        hs[i] = (x[c] + x[c + 1]) + x[c + 2];
    }
}

/* hs [H, Wo] <- each row of x [H, W] summed over its column windows (cells
 * inside only); the same flat-or-per-row split as max3_plane. */
POOL_INLINE void sum3_rows(float *restrict hs, const float *restrict x, int H, int W, int Wo, const int S)
{
    const int e = pool3_inner_end(W, Wo, S);
    const int flat = S == 1 || W % 2 == 0;
    const int end = S == 1 ? H * W - 1 : H * Wo;
    if (flat && end > 1) sum3_h(hs, x, 1, end, S);
    for (int r = 0; r < H; r++) {
        const long o = (long)r * Wo;
        const float *xr = x + (long)r * W;
        if (!flat && e > 1) sum3_h(hs + o, xr, 1, e, S);
        for (int ow = 0; ow < Wo; ow = ow == 0 && e > 1 ? e : ow + 1) {
            const int c0 = ow * S - 1 < 0 ? 0 : ow * S - 1, c1 = ow * S + 2 > W ? W : ow * S + 2;
            float t = xr[c0];
            for (int c = c0 + 1; c < c1; c++) t += xr[c];
            hs[o + ow] = t;
        }
    }
}

/* y[i] <- (sum of R rows at i) / dv[i] */
POOL_INLINE void div_rows(float *restrict y, const float *h0, const float *h1, const float *h2,
                          const float *restrict dv, long n, const int R)
{
    for (long i = 0; i < n; i++) {
        float t = h0[i];
        if (R >= 2) t += h1[i];
        if (R == 3) t += h2[i];
        y[i] = t / dv[i];
    }
}

/* Stride 2: rows first (contiguous, on the Ho output rows only), then the
 * strided column windows on those sums. vs: scratch [W]. */
POOL_INLINE void avg3_plane_s2(float *restrict y, const float *restrict x, float *restrict vs, const float *restrict dv,
                               int H, int W, int Ho, int Wo)
{
    const int e = pool3_inner_end(W, Wo, 2);
    for (int oh = 0; oh < Ho; oh++) {
        const int r0 = oh * 2 - 1 < 0 ? 0 : oh * 2 - 1, r1 = oh * 2 + 2 > H ? H : oh * 2 + 2;
        const float *x0 = x + (long)r0 * W;
        if (r1 - r0 == 3)
            for (int c = 0; c < W; c++) vs[c] = (x0[c] + x0[c + W]) + x0[c + 2 * W];
        else if (r1 - r0 == 2)
            for (int c = 0; c < W; c++) vs[c] = x0[c] + x0[c + W];
        else
            memcpy(vs, x0, (size_t)W * sizeof *vs);
        float *yr = y + (long)oh * Wo;
        const float *dr = dv + (long)oh * Wo;
        for (int ow = 1; ow < e; ow++) yr[ow] = ((vs[2 * ow - 1] + vs[2 * ow]) + vs[2 * ow + 1]) / dr[ow];
        for (int ow = 0; ow < Wo; ow = ow == 0 && e > 1 ? e : ow + 1) {
            const int c0 = ow * 2 - 1 < 0 ? 0 : ow * 2 - 1, c1 = ow * 2 + 2 > W ? W : ow * 2 + 2;
            float t = vs[c0];
            for (int c = c0 + 1; c < c1; c++) t += vs[c];
            yr[ow] = t / dr[ow];
        }
    }
}

/* One plane: y [Ho, Wo] <- window means of x [H, W]. hs: scratch [H, Wo]
 * (stride 2: [W]); dv [Ho, Wo]: each window's cell count. */
POOL_INLINE void avg3_plane(float *restrict y, const float *restrict x, float *restrict hs, const float *restrict dv,
                            int H, int W, int Ho, int Wo, const int S)
{
    if (S == 2) {
        avg3_plane_s2(y, x, hs, dv, H, W, Ho, Wo);
        return;
    }
    sum3_rows(hs, x, H, W, Wo, S);
    if (H == 1) {
        div_rows(y, hs, NULL, NULL, dv, Wo, 1);
        return;
    }
    div_rows(y, hs, hs + W, NULL, dv, W, 2);
    if (H > 2) div_rows(y + W, hs, hs + W, hs + 2 * W, dv + W, (long)(H - 2) * W, 3);
    const long l = (long)(H - 1) * W;
    div_rows(y + l, hs + l - W, hs + l, NULL, dv + l, W, 2);
}

/* One plane: dx [H, W] += the average-pool gradient of dy [Ho, Wo]: every
 * input cell gets the sum, over the windows holding it, of dy / cell count.
 * gs: scratch [Ho, Wo]; vs, ts: scratch [H, W]; dv [Ho, Wo]: cell counts. */
POOL_INLINE void avg3_plane_bwd(float *restrict dx, const float *restrict dy, float *restrict gs, float *restrict vs,
                                float *restrict ts, const float *restrict dv, int H, int W, int Ho, int Wo,
                                const int S)
{
    const long P = (long)Ho * Wo, HW = (long)H * W;
    for (long i = 0; i < P; i++) gs[i] = dy[i] / dv[i];
    if (S == 2) {
        /* columns first, on the Ho output rows: ts [Ho, W]; column 2m is in
         * window m only, 2m + 1 in windows m and m + 1 (when there is one) */
        const int m1 = W / 2 < Wo - 1 ? W / 2 : Wo - 1;
        for (int oh = 0; oh < Ho; oh++) {
            const float *g = gs + (long)oh * Wo;
            float *t = ts + (long)oh * W;
            int m = 0;
            for (; m < m1; m++) {
                t[2 * m] = g[m];
                t[2 * m + 1] = g[m] + g[m + 1];
            }
            for (; 2 * m < W; m++) {
                t[2 * m] = g[m];
                if (2 * m + 1 < W) t[2 * m + 1] = g[m];
            }
        }
        /* then rows: row 2m is in window m only, 2m + 1 in windows m and m + 1 */
        for (int ih = 0; ih < H; ih++) {
            const int m = ih / 2;
            const float *t0 = ts + (long)m * W;
            float *d = dx + (long)ih * W;
            if (ih % 2 && m + 1 < Ho)
                for (int c = 0; c < W; c++) d[c] += t0[c] + t0[c + W];
            else
                for (int c = 0; c < W; c++) d[c] += t0[c];
        }
        return;
    }
    /* stride 1: rows first into vs [H, W], then columns (flat over the plane,
     * the first and last column of every row redone) into ts [H, W] */
    if (H == 1) {
        memcpy(vs, gs, (size_t)W * sizeof *vs);
    } else {
        for (long i = 0; i < W; i++) vs[i] = gs[i] + gs[i + W];
        for (long i = W; i < (long)(H - 1) * W; i++) vs[i] = (gs[i - W] + gs[i]) + gs[i + W];
        for (long i = (long)(H - 1) * W; i < HW; i++) vs[i] = gs[i - W] + gs[i];
    }
    if (HW > 2)
        for (long i = 1; i < HW - 1; i++) ts[i] = (vs[i - 1] + vs[i]) + vs[i + 1];
    for (int r = 0; r < H; r++) {
        const long a = (long)r * W, b = a + W - 1;
        if (W == 1) {
            ts[a] = vs[a];
            continue;
        }
        ts[a] = vs[a] + vs[a + 1];
        ts[b] = vs[b - 1] + vs[b];
    }
    for (long i = 0; i < HW; i++) dx[i] += ts[i];
}

/* Each body built for the baseline and, on x86-64, for AVX2; strides 1 and 2. */
#define POOL3_FNS(SFX, ATTR)                                                                                           \
    ATTR static void max3_s1##SFX(float *y, int32_t *idx, const float *x, float *hm, int32_t *hj, int H, int W,      \
                                  int Ho, int Wo)                                                                      \
    {                                                                                                                  \
        max3_plane(y, idx, x, hm, hj, H, W, Ho, Wo, 1);                                                                \
    }                                                                                                                  \
    ATTR static void max3_s2##SFX(float *y, int32_t *idx, const float *x, float *hm, int32_t *hj, int H, int W,      \
                                  int Ho, int Wo)                                                                      \
    {                                                                                                                  \
        max3_plane(y, idx, x, hm, hj, H, W, Ho, Wo, 2);                                                                \
    }                                                                                                                  \
    ATTR static void avg3_s1##SFX(float *y, const float *x, float *hs, const float *dv, int H, int W, int Ho, int Wo) \
    {                                                                                                                  \
        avg3_plane(y, x, hs, dv, H, W, Ho, Wo, 1);                                                                     \
    }                                                                                                                  \
    ATTR static void avg3_s2##SFX(float *y, const float *x, float *hs, const float *dv, int H, int W, int Ho, int Wo) \
    {                                                                                                                  \
        avg3_plane(y, x, hs, dv, H, W, Ho, Wo, 2);                                                                     \
    }                                                                                                                  \
    ATTR static void avg3b_s1##SFX(float *dx, const float *dy, float *gs, float *vs, float *ts, const float *dv,      \
                                   int H, int W, int Ho, int Wo)                                                       \
    {                                                                                                                  \
        avg3_plane_bwd(dx, dy, gs, vs, ts, dv, H, W, Ho, Wo, 1);                                                       \
    }                                                                                                                  \
    ATTR static void avg3b_s2##SFX(float *dx, const float *dy, float *gs, float *vs, float *ts, const float *dv,      \
                                   int H, int W, int Ho, int Wo)                                                       \
    {                                                                                                                  \
        avg3_plane_bwd(dx, dy, gs, vs, ts, dv, H, W, Ho, Wo, 2);                                                       \
    }

POOL3_FNS(_c, )
#if defined(__x86_64__) && defined(__GNUC__)
POOL3_FNS(_avx2, __attribute__((target("avx2"))))
#define POOL_HAVE_AVX2 1
#endif

typedef void (*max3_fn)(float *, int32_t *, const float *, float *, int32_t *, int, int, int, int);
typedef void (*avg3_fn)(float *, const float *, float *, const float *, int, int, int, int);
typedef void (*avg3b_fn)(float *, const float *, float *, float *, float *, const float *, int, int, int, int);

#ifdef POOL_HAVE_AVX2
static int pool_use_avx2(void)
{
    static int have = -1;
    if (have < 0) {
        __builtin_cpu_init();
        have = __builtin_cpu_supports("avx2");
    }
    return pool_mode == 0 && have;
}
#define POOL_PICK(name, s)                                                                                             \
    (pool_use_avx2() ? ((s) == 1 ? name##_s1_avx2 : name##_s2_avx2) : ((s) == 1 ? name##_s1_c : name##_s2_c))
#else
#define POOL_PICK(name, s) ((s) == 1 ? name##_s1_c : name##_s2_c)
#endif

/* dv [Ho, Wo] <- the number of input cells in each window. */
static void pool3_counts(float *dv, const pool_geom *g)
{
    for (int oh = 0; oh < g->Ho; oh++) {
        const int a = oh * g->s - 1 < 0 ? 0 : oh * g->s - 1, b = oh * g->s + 2 > g->H ? g->H : oh * g->s + 2;
        for (int ow = 0; ow < g->Wo; ow++) {
            const int c = ow * g->s - 1 < 0 ? 0 : ow * g->s - 1, d = ow * g->s + 2 > g->W ? g->W : ow * g->s + 2;
            dv[(long)oh * g->Wo + ow] = (float)((b - a) * (d - c));
        }
    }
}

/* The 3x3 kernels over all planes; 0 when scratch cannot be had. */
static int maxpool3_forward(dp_ctx *c, float *y, int32_t *idx, const float *x, const pool_geom *g)
{
    const long HW = (long)g->H * g->W, P = (long)g->Ho * g->Wo;
    float *hm = dp_scratch(c, (size_t)g->H * g->Wo * sizeof(float));
    int32_t *hj = dp_scratch(c, (size_t)g->H * g->Wo * sizeof(int32_t));
    /* without a gradient the winners still get computed, into one plane reused */
    int32_t *junk = idx ? NULL : dp_scratch(c, (size_t)P * sizeof(int32_t));
    if (c->status != DP_OK) return 0;
    const max3_fn f = POOL_PICK(max3, g->s);
    for (long pl = 0; pl < g->planes; pl++)
        f(y + pl * P, idx ? idx + pl * P : junk, x + pl * HW, hm, hj, g->H, g->W, g->Ho, g->Wo);
    return 1;
}

static int avgpool3_forward(dp_ctx *c, float *y, const float *x, const pool_geom *g)
{
    const long HW = (long)g->H * g->W, P = (long)g->Ho * g->Wo;
    float *hs = dp_scratch(c, (size_t)(g->H * g->Wo + g->W) * sizeof(float));
    float *dv = dp_scratch(c, (size_t)P * sizeof(float));
    if (c->status != DP_OK) return 0;
    pool3_counts(dv, g);
    const avg3_fn f = POOL_PICK(avg3, g->s);
    for (long pl = 0; pl < g->planes; pl++) f(y + pl * P, x + pl * HW, hs, dv, g->H, g->W, g->Ho, g->Wo);
    return 1;
}

static int avgpool3_backward(dp_ctx *c, float *dx, const float *dy, const pool_geom *g)
{
    const long HW = (long)g->H * g->W, P = (long)g->Ho * g->Wo;
    float *gs = dp_scratch(c, (size_t)P * sizeof(float)), *dv = dp_scratch(c, (size_t)P * sizeof(float));
    float *vs = dp_scratch(c, (size_t)HW * sizeof(float)), *ts = dp_scratch(c, (size_t)HW * sizeof(float));
    if (c->status != DP_OK) return 0;
    pool3_counts(dv, g);
    const avg3b_fn f = POOL_PICK(avg3b, g->s);
    for (long pl = 0; pl < g->planes; pl++)
        f(dx + pl * HW, dy + pl * P, gs, vs, ts, dv, g->H, g->W, g->Ho, g->Wo);
    return 1;
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

enum { POOL_MAX, POOL_AVG, POOL_AVG_BACK };

/* The plain loops over every window, by op:
 *   POOL_MAX:      out [planes, Ho, Wo] <- max over windows of in [planes, H, W];
 *                  idx (may be NULL) <- the winner's offset in its plane;
 *   POOL_AVG:      out [planes, Ho, Wo] <- mean of each window's real cells of in;
 *   POOL_AVG_BACK: out [planes, H, W] += in [planes, Ho, Wo] spread evenly over
 *                  each window's real cells. */
POOL_INLINE void pool_plain(const int op, float *out, int32_t *idx, const float *in, const pool_geom *g)
{
    const long HW = (long)g->H * g->W, P = (long)g->Ho * g->Wo;
    for (long pl = 0; pl < g->planes; pl++)
        for (int oh = 0; oh < g->Ho; oh++) {
            int h0, h1;
            pool_window(oh, g, g->H, &h0, &h1);
            for (int ow = 0; ow < g->Wo; ow++) {
                int w0, w1;
                pool_window(ow, g, g->W, &w0, &w1);
                const long o = pl * P + (long)oh * g->Wo + ow;
                const float cells = (float)((h1 - h0) * (w1 - w0));
                if (op == POOL_AVG_BACK) {
                    float *dxp = out + pl * HW;
                    const float d = in[o] / cells;
                    for (int ih = h0; ih < h1; ih++)
                        for (int iw = w0; iw < w1; iw++) dxp[ih * g->W + iw] += d;
                    continue;
                }
                const float *xp = in + pl * HW;
                if (op == POOL_AVG) {
                    float s = 0.0f;
                    for (int ih = h0; ih < h1; ih++)
                        for (int iw = w0; iw < w1; iw++) s += xp[ih * g->W + iw];
                    out[o] = s / cells;
                    continue;
                }
                int32_t j = h0 * g->W + w0;
                float m = xp[j];
                for (int ih = h0; ih < h1; ih++)
                    for (int iw = w0; iw < w1; iw++) {
                        const float v = xp[ih * g->W + iw];
                        if (v > m || isnan(v)) m = v, j = ih * g->W + iw;
                    }
                out[o] = m;
                if (idx) idx[o] = j;
            }
        }
}

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
    pool_plain(POOL_MAX, y, idx, x, g);
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

/* ip: k, stride, pad, and 1 for max (saved[0]: the winners), 0 for average. */
static void pool2d_backward_node(dp_ctx *c, dp_node *nd)
{
    dp_tensor *x = nd->in[0];
    float *dx = dp_grad(c, x);
    if (!dx) return;
    pool_geom g = {.planes = (long)x->shape[0] * x->shape[1], .H = x->shape[2], .W = x->shape[3],
                   .Ho = nd->out->shape[2], .Wo = nd->out->shape[3], .k = nd->ip[0], .s = nd->ip[1], .p = nd->ip[2]};
    if (nd->ip[3])
        maxpool2d_backward(dx, nd->out->grad, nd->saved[0], &g);
    else if (pool_mode != 2 && pool3_fast(&g))
        avgpool3_backward(c, dx, nd->out->grad, &g);
    else
        pool_plain(POOL_AVG_BACK, dx, NULL, nd->out->grad, &g);
}

/* Max-pool (max = 1, keeping the winners when a gradient is wanted) or average pool. */
static dp_tensor *pool2d(dp_ctx *c, const char *op, int max, dp_tensor *x, int k, int stride, int pad)
{
    if (!x) return NULL;
    pool_geom g = {0};
    dp_tensor *y = pool_setup(c, op, x, k, stride, pad, &g);
    if (!y) return NULL;
    int32_t *idx = NULL;
    if (max && c->grad_enabled && x->requires_grad) {
        idx = dp_scratch(c, (size_t)y->n * sizeof *idx);
        if (!idx) return NULL;
    }
    int ok = 1;
    if (pool_mode != 2 && pool3_fast(&g))
        ok = max ? maxpool3_forward(c, y->data, idx, x->data, &g) : avgpool3_forward(c, y->data, x->data, &g);
    else if (max)
        maxpool2d_forward(y->data, idx, x->data, &g);
    else
        pool_plain(POOL_AVG, y->data, NULL, x->data, &g);
    if (!ok) return NULL;
    dp_node *nd = dp_tape_push(c, pool2d_backward_node, op, y, 1, &x);
    if (!nd) return c->status == DP_OK ? y : NULL;
    nd->saved[0] = idx;
    nd->ip[0] = k;
    nd->ip[1] = stride;
    nd->ip[2] = pad;
    nd->ip[3] = max;
    return y;
}

dp_tensor *dp_maxpool2d(dp_ctx *c, dp_tensor *x, int k, int stride, int pad)
{
    return pool2d(c, "maxpool2d", 1, x, k, stride, pad);
}

dp_tensor *dp_avgpool2d(dp_ctx *c, dp_tensor *x, int k, int stride, int pad)
{
    return pool2d(c, "avgpool2d", 0, x, k, stride, pad);
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
