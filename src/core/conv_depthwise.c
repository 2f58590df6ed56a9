/* Depthwise convolution kernels (see conv_depthwise.h for the scheme).
 *
 * Geometry, in the coordinates of the zero-padded input (u = ih + pad,
 * v = iw + pad): output (oh, ow) reads (oh*s + ki*d, ow*s + kj*d). Phase
 * (a, b) = (u mod s, v mod s) holds cells (u/s, v/s), so tap t lives in phase
 * (ki*d mod s, kj*d mod s) at offset ra = ki*d/s rows, cb = kj*d/s columns,
 * and output (oh, ow) reads it at phase cell (oh + ra, ow + cb): a stride-1
 * correlation, for every stride. Phase (a, b) has real cells in rows
 * [Ta, Ba) and columns [Lb, Eb); everything else is zero.
 *
 * Row stride S, shared by the x phase planes, the dy copy and the outputs:
 *  - S >= max Eb, so a row of real cells fits;
 *  - a read past the end of a row (column c >= S) lands in the next row's
 *    columns c - S, which must be left padding (< Lb): S >= Wo + cb - Lb;
 *  - the dy copy holds dy(i, j) at ((i + Rt)*S + j + Lc) with Rt/Lc large
 *    enough that every dX read index is >= 0; its rows need S >= Lc + Wo,
 *    and the same wrap argument holds for its reads since S >= Eb.
 * For stride 1 with "same" padding this gives S = W + pad, not W + 2 pad.
 *
 * The x phase planes and the dy copy are zeroed once per call; each plane
 * only overwrites its real cells, so the padding stays zero throughout. The
 * Ho*S flat outputs are rounded up to whole vectors; buffers are sized so the
 * extra lanes read zeros or real cells (never outside the buffer), and the
 * dy copy is zero at every extra lane, so dW is unaffected by them. */
#include "core/conv_depthwise.h"

#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "core/conv_smallk.h"

#define DW_MAX_TAPS 64
#define DW_MAX_STRIDE 4
#define DW_MAX_PHASES (DW_MAX_STRIDE * DW_MAX_STRIDE)
#define DW_CHUNK 9 /* taps per dW pass: that many ymm accumulators plus dy */

static long round8(long n) { return (n + 7) & ~7L; }
static long maxl(long a, long b) { return a > b ? a : b; }

/* ---- reference loops ---- */

void dp_dwconv_ref_forward(float *y, const float *x, const float *w, const float *b, const dp_conv_geom *g)
{
    const long HW = (long)g->H * g->W;
    for (int n = 0; n < g->N; n++)
        for (int o = 0; o < g->O; o++) {
            const float *xc = x + ((long)n * g->C + o / g->Og) * HW;
            float *yo = y + ((long)n * g->O + o) * g->P;
            const float bo = b ? b[o] : 0.0f;
            for (long i = 0; i < g->P; i++) yo[i] = bo;
            for (int ki = 0; ki < g->kh; ki++)
                for (int kj = 0; kj < g->kw; kj++) {
                    const dp_conv_tap t = dp_conv_tap_at(g, ki, kj);
                    const float wv = w[((long)o * g->kh + ki) * g->kw + kj];
                    for (int oh = t.hlo; oh < t.hhi; oh++) {
                        float *yr = yo + (long)oh * g->Wo;
                        const float *xr = xc + (long)(oh * g->stride + t.hoff) * g->W;
                        for (int ow = t.wlo; ow < t.whi; ow++) yr[ow] += wv * xr[ow * g->stride + t.woff];
                    }
                }
        }
}

void dp_dwconv_ref_backward(float *dx, float *dw, const float *dy, const float *x, const float *w,
                            const dp_conv_geom *g)
{
    const long HW = (long)g->H * g->W;
    for (int n = 0; n < g->N; n++)
        for (int o = 0; o < g->O; o++) {
            const long xoff = ((long)n * g->C + o / g->Og) * HW;
            const float *dyo = dy + ((long)n * g->O + o) * g->P;
            for (int ki = 0; ki < g->kh; ki++)
                for (int kj = 0; kj < g->kw; kj++) {
                    const dp_conv_tap t = dp_conv_tap_at(g, ki, kj);
                    const long wi = ((long)o * g->kh + ki) * g->kw + kj;
                    const float wv = w[wi];
                    float acc = 0.0f;
                    for (int oh = t.hlo; oh < t.hhi; oh++) {
                        const float *dyr = dyo + (long)oh * g->Wo;
                        const long rowoff = xoff + (long)(oh * g->stride + t.hoff) * g->W + t.woff;
                        if (dw)
                            for (int ow = t.wlo; ow < t.whi; ow++) acc += dyr[ow] * x[rowoff + (long)ow * g->stride];
                        if (dx)
                            for (int ow = t.wlo; ow < t.whi; ow++) dx[rowoff + (long)ow * g->stride] += wv * dyr[ow];
                    }
                    if (dw) dw[wi] += acc;
                }
        }
}

/* ---- copies ---- */

/* dst[0, n) = src[0, n) in whole 8- or 4-float moves, the last one overlapping
 * its predecessor: short rows (7..32 floats here) cost a few moves instead of
 * a libc call each, and nothing outside [0, n) is read or written. */
static inline void copy_row(float *restrict dst, const float *restrict src, int n)
{
    if (n >= 8) {
        int i = 0;
        for (; i + 8 <= n; i += 8) memcpy(dst + i, src + i, 8 * sizeof(float));
        if (i < n) memcpy(dst + n - 8, src + n - 8, 8 * sizeof(float));
    } else if (n >= 4) {
        memcpy(dst, src, 4 * sizeof(float));
        memcpy(dst + n - 4, src + n - 4, 4 * sizeof(float));
    } else {
        for (int i = 0; i < n; i++) dst[i] = src[i];
    }
}

/* e[i] = src[2i], o[i] = src[2i + 1] for the cells inside [0, n). */
static inline void deinterleave2(float *restrict e, float *restrict o, const float *restrict src, int n)
{
    int i = 0;
#ifdef __SSE2__
    if (n >= 8) {
        for (;;) {
            const __m128 a = _mm_loadu_ps(src + 2 * i), b = _mm_loadu_ps(src + 2 * i + 4);
            _mm_storeu_ps(e + i, _mm_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)));
            _mm_storeu_ps(o + i, _mm_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1)));
            i += 4;
            if (2 * i + 1 >= n) break; /* at most the last even cell left */
            /* a ragged end: one more block ending at the last even cell pair,
             * overlapping the previous one (same values stored again) */
            if (2 * i + 8 > n) i = ((n - 8) & ~1) / 2;
        }
    }
#endif
    for (; 2 * i < n; i++) {
        e[i] = src[2 * i];
        if (2 * i + 1 < n) o[i] = src[2 * i + 1];
    }
}

/* d[2i] += e[i], d[2i + 1] += o[i] for the cells inside [0, n); e or o may be
 * NULL (nothing to add). */
static void interleave2_add(float *restrict d, const float *e, const float *o, int n)
{
    int i = 0;
#ifdef __SSE2__
    for (; 2 * i + 8 <= n; i += 4) {
        const __m128 ev = e ? _mm_loadu_ps(e + i) : _mm_setzero_ps(), ov = o ? _mm_loadu_ps(o + i) : _mm_setzero_ps();
        _mm_storeu_ps(d + 2 * i, _mm_add_ps(_mm_loadu_ps(d + 2 * i), _mm_unpacklo_ps(ev, ov)));
        _mm_storeu_ps(d + 2 * i + 4, _mm_add_ps(_mm_loadu_ps(d + 2 * i + 4), _mm_unpackhi_ps(ev, ov)));
    }
#endif
    for (; 2 * i < n; i++) {
        if (e) d[2 * i] += e[i];
        if (o && 2 * i + 1 < n) d[2 * i + 1] += o[i];
    }
}

/* ---- flat kernels ----
 * corr: out[j] = init + sum_{t < T} w[t] * src[t][j] for j < M (M a multiple
 *       of 8), taps summed in order t = 0, 1, ...;
 * dots: acc[t][l] += sum over j < M, j = l mod 8, of dy[j] * src[t][j], for
 *       t < T <= DW_CHUNK (8 partial sums per tap, reduced once at the end). */

typedef void (*corr_fn)(float *out, long M, int T, const float *const *src, const float *w, float init);
typedef void (*dots_fn)(float (*acc)[8], long M, int T, const float *dy, const float *const *src);

static void corr_c(float *out, long M, int T, const float *const *src, const float *w, float init)
{
    for (long j = 0; j < M; j += 8) {
        float a[8];
        for (int l = 0; l < 8; l++) a[l] = init;
        for (int t = 0; t < T; t++) {
            const float wt = w[t], *p = src[t] + j;
            for (int l = 0; l < 8; l++) a[l] += wt * p[l];
        }
        for (int l = 0; l < 8; l++) out[j + l] = a[l];
    }
}

static void dots_c(float (*acc)[8], long M, int T, const float *dy, const float *const *src)
{
    for (long j = 0; j < M; j += 8)
        for (int t = 0; t < T; t++) {
            const float *p = src[t] + j;
            for (int l = 0; l < 8; l++) acc[t][l] += dy[j + l] * p[l];
        }
}

/* ---- row-blocked kernels (AVX2) ----
 * Along a kernel column, taps (ki, kj) and (ki + 1, kj) read the same input
 * vector for output rows r + D and r. So R output rows are computed together,
 * one ymm per row and column block: per kernel column kj the R + D*(KH - 1)
 * input vectors are each loaded once and FMA'd into every row that uses them,
 * so loads per FMA fall from 1 to (R + D*(KH-1)) / (R*KH) (0.42 for 3x3,
 * R = 8), which matters on cores with one 256-bit load per cycle. With
 * tp = {kw, wr, wc} (tap (i, j)'s weight, or dW accumulator, at i*wr + j*wc):
 *   rows:   v = sum_j sum_i w[i*wr + j*wc] * src[(r + i*D)*S + c + j*D]
 *           for r < nrows, c < ncols; dst[r*ld + c] = init + v, or += v when
 *           accumulating;
 *   dwrows: acc[i*wr + j*wc][l] += sum dy[r*S + c] * x[(r + i*D)*S + c + j*D]
 *           over r < nrows, c < ncols, c = l mod 8.
 * Stride 1: forward on the x phase plane straight into y, dW, and dX with
 * the kernel flipped (wr, wc < 0) on the dy copy, added into dx. Stride 2
 * with dilation 2: every tap lies in phase (0, 0), where the taps form a plain
 * stride-1 kernel (D = 1): forward and dW as for stride 1, dX by the flat
 * kernels (an in-place version would need strided writes). Other strided
 * cases also use the flat kernels: split by phase, they would run as several
 * 1- and 2-row sub-kernels, which are slower than the flat kernels.
 * Per output the taps are summed j-major (j outer, i inner). A row whose
 * width is not a multiple of 8 ends with a block at ncols - 8 overlapping the
 * one before: stored whole (the overlap gets the same values again) or, when
 * accumulating or in dwrows, with the overlap lanes masked off. Rows
 * narrower than 8 use masked loads and stores. */

typedef struct dw_taps {
    int kw;
    long wr, wc;
} dw_taps;

typedef void (*rows_fn)(float *dst, long ld, int nrows, int ncols, long S, const float *src, const dw_taps *tp,
                        const float *w, float init, int accumulate);
typedef void (*dwrows_fn)(float (*acc)[8], const dw_taps *tp, int nrows, int ncols, long S, const float *dy,
                          const float *x);

/* The reduction order of hsum256 in conv_smallk.c. */
static float hsum8(const float *a) { return ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7])); }

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define DW_TARGET __attribute__((target("avx2,fma")))
#define DW_INLINE static inline __attribute__((always_inline)) DW_TARGET
#define DW_HAVE_AVX2 1

/* V ymm accumulators for 8V consecutive outputs, held across all T taps:
 * per tap one broadcast and V load+FMA. */
DW_INLINE void corr_block(const int V, float *out, int T, const float *const *src, const float *w, __m256 init)
{
    __m256 a[8];
#pragma GCC unroll 8
    for (int v = 0; v < V; v++) a[v] = init;
    for (int t = 0; t < T; t++) {
        const __m256 wt = _mm256_broadcast_ss(w + t);
        const float *p = src[t];
#pragma GCC unroll 8
        for (int v = 0; v < V; v++) a[v] = _mm256_fmadd_ps(wt, _mm256_loadu_ps(p + 8 * v), a[v]);
    }
#pragma GCC unroll 8
    for (int v = 0; v < V; v++) _mm256_storeu_ps(out + 8 * v, a[v]);
}

DW_TARGET static void corr_avx2(float *out, long M, int T, const float *const *src, const float *w, float init)
{
    const __m256 iv = _mm256_set1_ps(init);
    const float *s[DW_MAX_TAPS];
    const long nv = M / 8;
    /* blocks of near-equal size (27 vectors as 7+7+7+6, not 8+8+8+3): a short
     * block has too few independent FMA chains to hide the FMA latency */
    const long nb = (nv + 7) / 8;
    long j = 0;
    for (long bi = 0; bi < nb; bi++) {
        const int V = (int)(nv / nb + (bi < nv % nb));
        for (int t = 0; t < T; t++) s[t] = src[t] + j;
        switch (V) {
#define CORR_CASE(k)                                                                                                   \
    case k:                                                                                                            \
        corr_block(k, out + j, T, s, w, iv);                                                                           \
        break;
            CORR_CASE(1) CORR_CASE(2) CORR_CASE(3) CORR_CASE(4) CORR_CASE(5) CORR_CASE(6) CORR_CASE(7) CORR_CASE(8)
#undef CORR_CASE
        default: break;
        }
        j += 8L * V;
    }
}

/* T accumulators; per 8 outputs one load of dy and T load+FMA. */
DW_INLINE void dots_k(const int T, float (*acc)[8], long M, const float *dy, const float *const *src)
{
    __m256 a[DW_CHUNK];
#pragma GCC unroll 16
    for (int t = 0; t < T; t++) a[t] = _mm256_loadu_ps(acc[t]);
    for (long j = 0; j < M; j += 8) {
        const __m256 d = _mm256_loadu_ps(dy + j);
#pragma GCC unroll 16
        for (int t = 0; t < T; t++) a[t] = _mm256_fmadd_ps(d, _mm256_loadu_ps(src[t] + j), a[t]);
    }
#pragma GCC unroll 16
    for (int t = 0; t < T; t++) _mm256_storeu_ps(acc[t], a[t]);
}

DW_TARGET static void dots_avx2(float (*acc)[8], long M, int T, const float *dy, const float *const *src)
{
    switch (T) {
#define DOTS_CASE(k)                                                                                                   \
    case k:                                                                                                            \
        dots_k(k, acc, M, dy, src);                                                                                    \
        break;
        DOTS_CASE(1) DOTS_CASE(2) DOTS_CASE(3) DOTS_CASE(4) DOTS_CASE(5) DOTS_CASE(6) DOTS_CASE(7) DOTS_CASE(8)
        DOTS_CASE(9)
#undef DOTS_CASE
    default: break;
    }
}

/* Column blocks of a row of n: c = 0, 8, ... and, when 8 does not divide n,
 * a last one at n - 8 (or at 0 when n < 8); *keep gets the lanes of block c
 * that no earlier block covered and are inside the row. */
DW_INLINE int col_block(int bi, int n, __m256 *keep)
{
    const int c0 = 8 * bi, c = c0 + 8 <= n || n < 8 ? c0 : n - 8;
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    /* lanes l with c0 <= c + l < n */
    *keep = _mm256_castsi256_ps(_mm256_and_si256(_mm256_cmpgt_epi32(lane, _mm256_set1_epi32(c0 - c - 1)),
                                                 _mm256_cmpgt_epi32(_mm256_set1_epi32(n - c), lane)));
    return c;
}

/* R rows (R <= 8) of one band. Registers: R accumulators, KH weights, one
 * input vector. */
DW_INLINE void rows_block(const int KH, const int D, const int R, float *dst, long ld, int ncols, long S,
                          const float *src, const dw_taps *tp, const float *w, __m256 init, int accumulate)
{
    const int kw = tp->kw;
    const long wr = tp->wr, wc = tp->wc;
    const int nblk = (ncols + 7) / 8;
    for (int bi = 0; bi < nblk; bi++) {
        __m256 keep;
        const int c = col_block(bi, ncols, &keep);
        __m256 a[8];
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) a[r] = init;
        for (int kj = 0; kj < kw; kj++) {
            __m256 wv[5];
#pragma GCC unroll 5
            for (int ki = 0; ki < KH; ki++) wv[ki] = _mm256_broadcast_ss(w + ki * wr + kj * wc);
            const float *p = src + c + kj * D;
#pragma GCC unroll 16
            for (int m = 0; m < R + D * (KH - 1); m++) {
                const __m256 x = _mm256_loadu_ps(p + m * S);
#pragma GCC unroll 5
                for (int ki = 0; ki < KH; ki++) {
                    const int r = m - ki * D;
                    if (r >= 0 && r < R) a[r] = _mm256_fmadd_ps(wv[ki], x, a[r]);
                }
            }
        }
        float *o = dst + c;
        if (ncols < 8) {
            const __m256i k = _mm256_castps_si256(keep);
#pragma GCC unroll 8
            for (int r = 0; r < R; r++) {
                __m256 v = a[r];
                if (accumulate) v = _mm256_add_ps(_mm256_maskload_ps(o + r * ld, k), v);
                _mm256_maskstore_ps(o + r * ld, k, v);
            }
        } else if (accumulate) {
#pragma GCC unroll 8
            for (int r = 0; r < R; r++)
                _mm256_storeu_ps(o + r * ld, _mm256_add_ps(_mm256_loadu_ps(o + r * ld), _mm256_and_ps(a[r], keep)));
        } else {
#pragma GCC unroll 8
            for (int r = 0; r < R; r++) _mm256_storeu_ps(o + r * ld, a[r]);
        }
    }
}

/* R rows of dy held in registers per column block; per kernel column the KH
 * tap accumulators come from acc, take R*KH FMAs and go back. Registers: R dy
 * vectors, KH accumulators, one input vector. */
DW_INLINE void dwrows_block(const int KH, const int D, const int R, float (*acc)[8], const dw_taps *tp, int ncols,
                            long S, const float *dy, const float *x)
{
    const int kw = tp->kw;
    const long wr = tp->wr, wc = tp->wc;
    const int nblk = (ncols + 7) / 8;
    for (int bi = 0; bi < nblk; bi++) {
        __m256 keep;
        const int c = col_block(bi, ncols, &keep);
        __m256 d[8];
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) d[r] = _mm256_and_ps(_mm256_loadu_ps(dy + r * S + c), keep);
        for (int kj = 0; kj < kw; kj++) {
            __m256 a[5];
#pragma GCC unroll 5
            for (int ki = 0; ki < KH; ki++) a[ki] = _mm256_loadu_ps(acc[ki * wr + kj * wc]);
            const float *p = x + c + kj * D;
#pragma GCC unroll 16
            for (int m = 0; m < R + D * (KH - 1); m++) {
                const __m256 xv = _mm256_loadu_ps(p + m * S);
#pragma GCC unroll 5
                for (int ki = 0; ki < KH; ki++) {
                    const int r = m - ki * D;
                    if (r >= 0 && r < R) a[ki] = _mm256_fmadd_ps(d[r], xv, a[ki]);
                }
            }
#pragma GCC unroll 5
            for (int ki = 0; ki < KH; ki++) _mm256_storeu_ps(acc[ki * wr + kj * wc], a[ki]);
        }
    }
}

/* nrows split into near-equal bands of <= 8 rows, each CALL(KH, D, R) */
#define DW_BANDS(CALL, KH, D)                                                                                          \
    const int nb = (nrows + 7) / 8;                                                                                    \
    for (int bi = 0, r0 = 0; bi < nb; bi++) {                                                                          \
        const int R = nrows / nb + (bi < nrows % nb);                                                                  \
        switch (R) {                                                                                                   \
        case 1: CALL(KH, D, 1); break;                                                                                 \
        case 2: CALL(KH, D, 2); break;                                                                                 \
        case 3: CALL(KH, D, 3); break;                                                                                 \
        case 4: CALL(KH, D, 4); break;                                                                                 \
        case 5: CALL(KH, D, 5); break;                                                                                 \
        case 6: CALL(KH, D, 6); break;                                                                                 \
        case 7: CALL(KH, D, 7); break;                                                                                 \
        default: CALL(KH, D, 8); break;                                                                                \
        }                                                                                                              \
        r0 += R;                                                                                                       \
    }

#define DW_ROWS_FNS(KH, D)                                                                                             \
    DW_TARGET static void rows_k##KH##d##D(float *dst, long ld, int nrows, int ncols, long S, const float *src,        \
                                          const dw_taps *tp, const float *w, float init, int accumulate)               \
    {                                                                                                                  \
        const __m256 iv = _mm256_set1_ps(init);                                                                        \
        DW_BANDS(ROWS_CALL, KH, D)                                                                                     \
    }                                                                                                                  \
    DW_TARGET static void dwrows_k##KH##d##D(float (*acc)[8], const dw_taps *tp, int nrows, int ncols, long S,         \
                                            const float *dy, const float *x)                                           \
    {                                                                                                                  \
        DW_BANDS(DWROWS_CALL, KH, D)                                                                                   \
    }
/* (these name the parameters of the functions above, and R, r0 of DW_BANDS) */
#define ROWS_CALL(KH, D, RR)                                                                                           \
    rows_block(KH, D, RR, dst + (long)r0 * ld, ld, ncols, S, src + (long)r0 * S, tp, w, iv, accumulate)
#define DWROWS_CALL(KH, D, RR) dwrows_block(KH, D, RR, acc, tp, ncols, S, dy + (long)r0 * S, x + (long)r0 * S)
/* 3 or 5 kernel rows, dilation 1 or 2 (stride 2: dilation 1 inside the phase) */
DW_ROWS_FNS(3, 1)
DW_ROWS_FNS(3, 2)
DW_ROWS_FNS(5, 1)
DW_ROWS_FNS(5, 2)

typedef struct dw_rows_kernels {
    rows_fn rows;
    dwrows_fn dwrows;
} dw_rows_kernels;

/* The row-blocked kernels for KH kernel rows at dilation D ({NULL, NULL}: none). */
static dw_rows_kernels rows_for(int KH, int D)
{
    static const struct {
        int kh, d;
        dw_rows_kernels k;
    } table[] = {
        {3, 1, {rows_k3d1, dwrows_k3d1}},
        {3, 2, {rows_k3d2, dwrows_k3d2}},
        {5, 1, {rows_k5d1, dwrows_k5d1}},
        {5, 2, {rows_k5d2, dwrows_k5d2}},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (table[i].kh == KH && table[i].d == D) return table[i].k;
    return (dw_rows_kernels){NULL, NULL};
}
#endif

/* ---- kernel selection ---- */

static int dw_mode = DP_DW_AUTO;

void dp_dwconv_set_kernels(int mode) { dw_mode = mode; }

typedef struct dw_kernels {
    corr_fn corr;
    dots_fn dots;
    int avx2; /* the row-blocked kernels may be used */
} dw_kernels;

static dw_kernels pick_kernels(void)
{
    dw_kernels k = {corr_c, dots_c, 0};
#ifdef DW_HAVE_AVX2
    if (dw_mode != DP_DW_AUTO || !dp_smallk_available()) return k;
    k.corr = corr_avx2;
    k.dots = dots_avx2;
    k.avx2 = 1;
#endif
    return k;
}

/* ---- the plan ---- */

#ifdef DW_HAVE_AVX2
/* One row-blocked pass. */
typedef struct dw_sub {
    rows_fn rows;     /* NULL: none (the flat kernels run) */
    dwrows_fn dwrows;
    dw_taps tp;
    long src;         /* read offset of tap (0, 0): in the phase array (forward, dW) or the dy copy (dX) */
    long w;           /* offset of tap (0, 0)'s weight in the kh*kw kernel */
} dw_sub;
#endif

typedef struct dw_plan {
    const dp_conv_geom *g;
    int s, S, T;
    int Ta[DW_MAX_STRIDE], Ba[DW_MAX_STRIDE], Lb[DW_MAX_STRIDE], Eb[DW_MAX_STRIDE];
    int ph[DW_MAX_TAPS];        /* tap t's phase a*s + b */
    long xoff[DW_MAX_TAPS];     /* tap t's read offset in the phase array (forward, dW) */
    long dyo[DW_MAX_TAPS];      /* tap t's read offset in the dy copy (dX) */
    int used[DW_MAX_PHASES];    /* phases some tap reads */
    long PS;                    /* floats per phase plane */
    long Mf;                    /* flat forward outputs, Ho*S rounded to a vector */
    long dyoff, DS;             /* dy(0, 0) in the dy copy; its size */
    long outM;                  /* floats per flat output buffer (forward, or one dX phase) */
#ifdef DW_HAVE_AVX2
    dw_sub fw, bx;              /* row-blocked passes: forward and dW; dX */
#endif
} dw_plan;

int dp_dwconv_fast_ok(const dp_conv_geom *g)
{
    return g->Cg == 1 && g->kh * g->kw <= DW_MAX_TAPS && g->stride <= DW_MAX_STRIDE;
}

static void plan_init(dw_plan *pl, const dp_conv_geom *g)
{
    const int s = g->stride, p = g->pad, d = g->dil;
    pl->g = g;
    pl->s = s;
    pl->T = g->kh * g->kw;
    int maxB = 0, maxE = 0;
    for (int a = 0; a < s; a++) {
        /* phase rows u' with u'*s + a in [p, p + H); the numerators are >= 0 */
        pl->Ta[a] = (p - a + s - 1) / s;
        pl->Ba[a] = (p + g->H - a + s - 1) / s;
        pl->Lb[a] = (p - a + s - 1) / s;
        pl->Eb[a] = (p + g->W - a + s - 1) / s;
        if (pl->Ba[a] > maxB) maxB = pl->Ba[a];
        if (pl->Eb[a] > maxE) maxE = pl->Eb[a];
    }
    int Rt = 0, Lc = 0, maxra = 0, maxcb = 0;
    for (int q = 0; q < DW_MAX_PHASES; q++) pl->used[q] = 0;
    for (int ki = 0; ki < g->kh; ki++)
        for (int kj = 0; kj < g->kw; kj++) {
            const int t = ki * g->kw + kj, a = ki * d % s, b = kj * d % s, ra = ki * d / s, cb = kj * d / s;
            pl->ph[t] = a * s + b;
            pl->used[a * s + b] = 1;
            if (ra - pl->Ta[a] > Rt) Rt = ra - pl->Ta[a];
            if (cb - pl->Lb[b] > Lc) Lc = cb - pl->Lb[b];
            if (ra > maxra) maxra = ra;
            if (cb > maxcb) maxcb = cb;
        }
    const int S = g->Wo + Lc > maxE ? g->Wo + Lc : maxE;
    pl->S = S;
    /* the row-blocked kernels read and write up to a row plus a vector past
     * the flat kernels' extent */
    const long slack = S + 16;
    pl->Mf = round8((long)g->Ho * S);
    pl->PS = round8(maxl((long)maxB * S, (long)maxra * S + maxcb + pl->Mf) + slack);
    pl->dyoff = (long)Rt * S + Lc;
    long ds = maxl(pl->dyoff + pl->Mf, (long)(Rt + g->Ho) * S), outM = pl->Mf;
    for (int ki = 0; ki < g->kh; ki++)
        for (int kj = 0; kj < g->kw; kj++) {
            const int t = ki * g->kw + kj, a = ki * d % s, b = kj * d % s, ra = ki * d / s, cb = kj * d / s;
            pl->xoff[t] = (long)pl->ph[t] * pl->PS + (long)ra * S + cb;
            pl->dyo[t] = (long)(pl->Ta[a] - ra + Rt) * S + (pl->Lb[b] - cb + Lc);
            const long M = round8((long)(pl->Ba[a] - pl->Ta[a]) * S);
            ds = maxl(ds, pl->dyo[t] + M);
            outM = maxl(outM, M);
        }
    pl->DS = round8(ds + slack);
    pl->outM = round8(outM + slack);
}

#ifdef DW_HAVE_AVX2
/* Fills pl's row-blocked passes where there are kernels for them (else their
 * rows stay NULL). */
static void plan_rows(dw_plan *pl)
{
    const dp_conv_geom *g = pl->g;
    const int d = g->dil, kw = g->kw, kh = g->kh;
    memset(&pl->fw, 0, sizeof pl->fw);
    memset(&pl->bx, 0, sizeof pl->bx);
    if (pl->s == 1) {
        /* dX: the kernel flipped, its weights walked backwards from tap T-1 */
        const dw_rows_kernels k = rows_for(kh, d);
        pl->fw = (dw_sub){k.rows, k.dwrows, {kw, kw, 1}, 0, 0};
        pl->bx = (dw_sub){k.rows, NULL, {kw, -kw, -1}, pl->dyo[pl->T - 1], pl->T - 1};
    } else if (pl->s == 2 && d == 2) {
        /* all in phase (0, 0), tap (ki, kj) at cell (ki, kj) */
        const dw_rows_kernels k = rows_for(kh, 1);
        pl->fw = (dw_sub){k.rows, k.dwrows, {kw, kw, 1}, 0, 0};
    }
}
#endif

/* Copies plane xp [H, W] into its used phase planes (real cells only). */
static void pack_x(const dw_plan *pl, float *phases, const float *xp)
{
    const dp_conv_geom *g = pl->g;
    const int s = pl->s, p = g->pad, S = pl->S, W = g->W;
    if (s == 1) {
        for (int ih = 0; ih < g->H; ih++) copy_row(phases + (long)(ih + p) * S + p, xp + (long)ih * W, W);
        return;
    }
    if (s == 2) {
        /* row ih goes to phases (a, .) with a = (ih + p) & 1, row (ih + p) / 2;
         * column iw to phase (iw + p) & 1, cell (iw + p) / 2. Every phase is
         * filled, read by a tap or not: no tests per row. */
        const long eoff = (long)(p & 1) * pl->PS + p / 2, ooff = (long)((p + 1) & 1) * pl->PS + (p + 1) / 2;
        for (int ih = 0; ih < g->H; ih++) {
            const int a = (ih + p) & 1, ur = (ih + p) >> 1;
            float *row = phases + (long)(2 * a) * pl->PS + (long)ur * S;
            deinterleave2(row + eoff, row + ooff, xp + (long)ih * W, W);
        }
        return;
    }
    /* phase row a = (ih + p) mod s, cell ur = (ih + p) / s, stepped without a
     * division per row */
    for (int ih = 0, a = p % s, ur = p / s; ih < g->H; ih++, a = a + 1 == s ? (ur++, 0) : a + 1) {
        const float *xr = xp + (long)ih * W;
        for (int b = 0; b < s; b++) {
            if (!pl->used[a * s + b]) continue;
            float *dst = phases + (long)(a * s + b) * pl->PS + (long)ur * S;
            const int iw0 = ((b - p) % s + s) % s; /* first column with (iw + p) mod s == b */
            for (int iw = iw0, c = (iw0 + p) / s; iw < W; iw += s, c++) dst[c] = xr[iw];
        }
    }
}

/* ---- the passes ---- */

int dp_dwconv_forward(dp_ctx *c, float *y, const float *x, const float *w, const float *b, const dp_conv_geom *g)
{
    if (dw_mode == DP_DW_REFERENCE || !dp_dwconv_fast_ok(g)) {
        dp_dwconv_ref_forward(y, x, w, b, g);
        return 1;
    }
    dw_plan pl;
    plan_init(&pl, g);
    const dw_kernels k = pick_kernels();
    int rows = 0;
#ifdef DW_HAVE_AVX2
    if (k.avx2) plan_rows(&pl);
    rows = k.avx2 && pl.fw.rows;
#endif
    const int nph = pl.s * pl.s, T = pl.T, S = pl.S;
    float *phases = dp_scratch(c, (size_t)(nph * pl.PS) * sizeof(float));
    float *out = rows ? NULL : dp_scratch(c, (size_t)pl.outM * sizeof(float)); /* rows: straight into y */
    if (c->status != DP_OK) return 0;
    memset(phases, 0, (size_t)(nph * pl.PS) * sizeof(float));
    const float *src[DW_MAX_TAPS];
    for (int t = 0; t < T; t++) src[t] = phases + pl.xoff[t];
    const long HW = (long)g->H * g->W;
    for (int n = 0; n < g->N; n++)
        for (int o = 0; o < g->O; o++) {
            if (o % g->Og == 0) pack_x(&pl, phases, x + ((long)n * g->C + o / g->Og) * HW);
            const float bo = b ? b[o] : 0.0f;
            float *yo = y + ((long)n * g->O + o) * g->P;
#ifdef DW_HAVE_AVX2
            if (rows) {
                pl.fw.rows(yo, g->Wo, g->Ho, g->Wo, S, phases + pl.fw.src, &pl.fw.tp, w + (long)o * T + pl.fw.w, bo, 0);
                continue;
            }
#endif
            k.corr(out, pl.Mf, T, src, w + (long)o * T, bo);
            for (int oh = 0; oh < g->Ho; oh++) copy_row(yo + (long)oh * g->Wo, out + (long)oh * S, g->Wo);
        }
    return 1;
}

/* dxp [H, W] += the dX phase outputs outs[q] (rows S apart; NULL: no taps). */
static void scatter_dx(const dw_plan *pl, float *dxp, float *const *outs)
{
    const dp_conv_geom *g = pl->g;
    const int s = pl->s, p = g->pad, S = pl->S, W = g->W;
    if (s == 1) {
        for (int ih = 0; ih < g->H; ih++) {
            float *dr = dxp + (long)ih * W;
            const float *src = outs[0] + (long)ih * S;
            for (int iw = 0; iw < W; iw++) dr[iw] += src[iw];
        }
        return;
    }
    for (int ih = 0, a = p % s, ur = p / s; ih < g->H; ih++, a = a + 1 == s ? (ur++, 0) : a + 1) {
        const int r = ur - pl->Ta[a];
        float *dr = dxp + (long)ih * W;
        /* phase (a, b)'s output row r, from its first real cell Lb[b] on */
        const float *src[DW_MAX_STRIDE];
        for (int b = 0; b < s; b++) src[b] = outs[a * s + b] ? outs[a * s + b] + (long)r * S : NULL;
        if (s == 2) {
            /* column iw comes from phase b = (iw + p) & 1, cell (iw + p) / 2 - Lb[b]
             * of that row: for iw = 0, 1 that is cell 0 */
            interleave2_add(dr, src[p & 1], src[(p + 1) & 1], W);
            continue;
        }
        for (int b = 0; b < s; b++) {
            if (!src[b]) continue;
            const int iw0 = ((b - p) % s + s) % s;
            for (int iw = iw0, cc = (iw0 + p) / s - pl->Lb[b]; iw < W; iw += s, cc++) dr[iw] += src[b][cc];
        }
    }
}

int dp_dwconv_backward(dp_ctx *c, float *dx, float *dw, const float *dy, const float *x, const float *w,
                       const dp_conv_geom *g)
{
    if (!dx && !dw) return 1;
    if (dw_mode == DP_DW_REFERENCE || !dp_dwconv_fast_ok(g)) {
        dp_dwconv_ref_backward(dx, dw, dy, x, w, g);
        return 1;
    }
    dw_plan pl;
    plan_init(&pl, g);
    const dw_kernels k = pick_kernels();
    int rows_w = 0, rows_x = 0; /* row-blocked dW, dX */
#ifdef DW_HAVE_AVX2
    if (k.avx2) plan_rows(&pl);
    rows_w = k.avx2 && pl.fw.dwrows;
    rows_x = k.avx2 && pl.bx.rows;
#endif
    const int s = pl.s, nph = s * s, T = pl.T, S = pl.S;
    float *phases = dw ? dp_scratch(c, (size_t)(nph * pl.PS) * sizeof(float)) : NULL;
    float(*acc)[8] = dw ? dp_scratch(c, (size_t)g->O * T * sizeof *acc) : NULL;
    float *dyb = dp_scratch(c, (size_t)pl.DS * sizeof(float));
    float *outbuf = dx && !rows_x ? dp_scratch(c, (size_t)(nph * pl.outM) * sizeof(float)) : NULL;
    if (c->status != DP_OK) return 0;
    if (dw) {
        memset(phases, 0, (size_t)(nph * pl.PS) * sizeof(float));
        memset(acc, 0, (size_t)g->O * T * sizeof *acc);
    }
    memset(dyb, 0, (size_t)pl.DS * sizeof(float));

    const float *xsrc[DW_MAX_TAPS];
    for (int t = 0; t < T; t++) xsrc[t] = phases ? phases + pl.xoff[t] : NULL;
    /* dX: per phase of x, its taps, each reading the dy copy at its own offset
     * (the kernel flipped); with the row-blocked kernel, the flipped kernel
     * read from tap T-1's offset */
    int nt[DW_MAX_PHASES] = {0}, tap[DW_MAX_PHASES][DW_MAX_TAPS];
    const float *dsrc[DW_MAX_PHASES][DW_MAX_TAPS];
    for (int t = 0; t < T; t++) {
        const int q = pl.ph[t];
        dsrc[q][nt[q]] = dyb + pl.dyo[t];
        tap[q][nt[q]++] = t;
    }
    float *outs[DW_MAX_PHASES];
    for (int q = 0; q < nph; q++) outs[q] = outbuf && nt[q] ? outbuf + (long)q * pl.outM : NULL;
    const long HW = (long)g->H * g->W;
    for (int n = 0; n < g->N; n++)
        for (int o = 0; o < g->O; o++) {
            const int gi = o / g->Og;
            const float *dyp = dy + ((long)n * g->O + o) * g->P, *wo = w + (long)o * T;
            for (int oh = 0; oh < g->Ho; oh++) copy_row(dyb + pl.dyoff + (long)oh * S, dyp + (long)oh * g->Wo, g->Wo);
            if (dw) {
                if (o % g->Og == 0) pack_x(&pl, phases, x + ((long)n * g->C + gi) * HW);
                float(*ao)[8] = acc + (long)o * T;
                if (rows_w) {
#ifdef DW_HAVE_AVX2
                    pl.fw.dwrows(ao + pl.fw.w, &pl.fw.tp, g->Ho, g->Wo, S, dyb + pl.dyoff, phases + pl.fw.src);
#endif
                } else {
                    /* near-equal chunks (25 taps as 9+8+8) */
                    const int nc = (T + DW_CHUNK - 1) / DW_CHUNK;
                    for (int ci = 0, t0 = 0; ci < nc; ci++) {
                        const int tc = T / nc + (ci < T % nc);
                        k.dots(ao + t0, pl.Mf, tc, dyb + pl.dyoff, xsrc + t0);
                        t0 += tc;
                    }
                }
            }
            if (!dx) continue;
            float *dxp = dx + ((long)n * g->C + gi) * HW;
#ifdef DW_HAVE_AVX2
            if (rows_x) {
                pl.bx.rows(dxp, g->W, g->H, g->W, S, dyb + pl.bx.src, &pl.bx.tp, wo + pl.bx.w, 0.0f, 1);
                continue;
            }
#endif
            for (int q = 0; q < nph; q++) {
                if (!nt[q]) continue;
                const int a = q / s, rows = pl.Ba[a] - pl.Ta[a];
                float wq[DW_MAX_TAPS];
                for (int i = 0; i < nt[q]; i++) wq[i] = wo[tap[q][i]];
                k.corr(outs[q], round8((long)rows * S), nt[q], dsrc[q], wq, 0.0f);
            }
            scatter_dx(&pl, dxp, outs);
        }
    if (dw)
        for (long i = 0; i < (long)g->O * T; i++) dw[i] += hsum8(acc[i]);
    return 1;
}
