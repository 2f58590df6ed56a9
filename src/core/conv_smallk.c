/* Small-K convolution kernels (see conv_smallk.h).
 *
 * Compiled for AVX2 + FMA through function attributes, so the rest of the
 * build keeps the x86-64 baseline; ops_conv.c calls them only when
 * dp_smallk_available(). Each kernel is instantiated for every K in
 * 1..DP_SMALLK_MAX (a switch over always-inline bodies), so the K weights or
 * K accumulators live in ymm registers:
 *   forward, per output row m:  K broadcasts of w[m][:] held; per 8 columns
 *                               K fused load+FMA and one store;
 *   backward, per row m:        K + 1 accumulators; per 8 columns one load of
 *                               dy and K fused load+FMA. */
#include "core/conv_smallk.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define SMALLK_TARGET __attribute__((target("avx2,fma")))
#define SMALLK_INLINE static inline __attribute__((always_inline)) SMALLK_TARGET

int dp_smallk_available(void)
{
    static int have = -1;
    if (have < 0) {
        __builtin_cpu_init();
        have = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
    return have;
}

SMALLK_INLINE float hsum256(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

SMALLK_INLINE void fwd_k(const int K, float *y, const float *w, const float *b, const float *col, long ldc, int M,
                         long P)
{
    for (int m = 0; m < M; m++) {
        __m256 wv[DP_SMALLK_MAX];
        for (int t = 0; t < K; t++) wv[t] = _mm256_broadcast_ss(w + (long)m * K + t);
        const float bm = b ? b[m] : 0.0f;
        const __m256 bv = _mm256_set1_ps(bm);
        float *ym = y + (long)m * P;
        long p = 0;
        for (; p + 8 <= P; p += 8) {
            __m256 acc = bv;
            for (int t = 0; t < K; t++) acc = _mm256_fmadd_ps(wv[t], _mm256_loadu_ps(col + t * ldc + p), acc);
            _mm256_storeu_ps(ym + p, acc);
        }
        for (; p < P; p++) {
            float s = bm;
            for (int t = 0; t < K; t++) s += w[(long)m * K + t] * col[t * ldc + p];
            ym[p] = s;
        }
    }
}

SMALLK_INLINE void bwd_k(const int K, float *dw, float *db, const float *dy, const float *col, long ldc, int M,
                         long P)
{
    for (int m = 0; m < M; m++) {
        __m256 acc[DP_SMALLK_MAX], accb = _mm256_setzero_ps();
        for (int t = 0; t < K; t++) acc[t] = _mm256_setzero_ps();
        const float *dym = dy + (long)m * P;
        long p = 0;
        for (; p + 8 <= P; p += 8) {
            const __m256 d = _mm256_loadu_ps(dym + p);
            accb = _mm256_add_ps(accb, d);
            for (int t = 0; t < K; t++) acc[t] = _mm256_fmadd_ps(d, _mm256_loadu_ps(col + t * ldc + p), acc[t]);
        }
        float sb = hsum256(accb), s[DP_SMALLK_MAX];
        for (int t = 0; t < K; t++) s[t] = hsum256(acc[t]);
        for (; p < P; p++) {
            sb += dym[p];
            for (int t = 0; t < K; t++) s[t] += dym[p] * col[t * ldc + p];
        }
        for (int t = 0; t < K; t++) dw[(long)m * K + t] += s[t];
        if (db) db[m] += sb;
    }
}

#define SMALLK_CASES(CALL)                                                                                             \
    CALL(1) CALL(2) CALL(3) CALL(4) CALL(5) CALL(6) CALL(7) CALL(8) CALL(9) CALL(10) CALL(11) CALL(12)

SMALLK_TARGET void dp_smallk_forward(float *y, const float *w, const float *b, const float *col, long ldc, int M,
                                     int K, long P)
{
    switch (K) {
#define FWD_CASE(k)                                                                                                    \
    case k:                                                                                                            \
        fwd_k(k, y, w, b, col, ldc, M, P);                                                                             \
        break;
        SMALLK_CASES(FWD_CASE)
#undef FWD_CASE
    default:
        break;
    }
}

SMALLK_TARGET void dp_smallk_backward(float *dw, float *db, const float *dy, const float *col, long ldc, int M, int K,
                                      long P)
{
    switch (K) {
#define BWD_CASE(k)                                                                                                    \
    case k:                                                                                                            \
        bwd_k(k, dw, db, dy, col, ldc, M, P);                                                                          \
        break;
        SMALLK_CASES(BWD_CASE)
#undef BWD_CASE
    default:
        break;
    }
}

#else /* not x86-64: the GEMM path handles every K */

int dp_smallk_available(void) { return 0; }
void dp_smallk_forward(float *y, const float *w, const float *b, const float *col, long ldc, int M, int K, long P)
{
    (void)y, (void)w, (void)b, (void)col, (void)ldc, (void)M, (void)K, (void)P;
}
void dp_smallk_backward(float *dw, float *db, const float *dy, const float *col, long ldc, int M, int K, long P)
{
    (void)dw, (void)db, (void)dy, (void)col, (void)ldc, (void)M, (void)K, (void)P;
}

#endif
