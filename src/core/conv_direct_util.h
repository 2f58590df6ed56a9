/* What the direct convolution kernels share: conv_direct.c (forward, dX) and
 * conv_direct_dw.c (dW, db). Private to those two files.
 *
 * One CPU check, one scratch rounding, one zero-padded copy of the input and
 * one 16x16 in-register transpose, so that a fix to any of them reaches every
 * pass. The transpose is static inline with the kernels' target attribute:
 * it sits inside their per-tile loops and must inline there. */
#ifndef DP_CORE_CONV_DIRECT_UTIL_H
#define DP_CORE_CONV_DIRECT_UTIL_H

/* Scratch parts are whole 64-byte lines: a float count rounded up to 16. */
static inline long dp_direct_up16(long n) { return (n + 15) / 16 * 16; }

/*! 1 when the CPU has AVX-512F (asked once; 0 off x86-64 GCC/Clang). */
int dp_direct_cpu_ok(void);

/* A zero-padded copy of C input planes [C][H][W]: input cell (h, w) goes to
 * padded cell (h + ph, w + pw) of an Hp x Wp plane; a negative ph / pw crops
 * the first rows / columns, and cells past Hp x Wp are not copied (never read).
 * Columns are split by phase col % s so that a stride-s tap reads consecutive
 * floats: padded column q*s + f lives at f*Wq + q of its row, a row holds
 * s*Wq floats, a plane `plane` (>= Hp*s*Wq). s == 1 is the plain [Hp][Wp]
 * layout (Wq == Wp). */
typedef struct dp_xpad {
    int C, H, W;  /* input planes */
    int ph, pw;   /* where input cell (0, 0) lands */
    int Hp, Wp;   /* padded extent */
    int s, Wq;    /* column phases; floats per phase row */
    long plane;   /* floats per channel */
} dp_xpad;

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define DP_DIRECT_TARGET __attribute__((target("avx512f")))
#define DP_DIRECT_INLINE static inline __attribute__((always_inline)) DP_DIRECT_TARGET

/*! xpad's interior <- one image x [C][H][W] (see dp_xpad). The border is the
 *  caller's: zeroed once per call and never written here, so per image only
 *  the interior is copied. */
void dp_direct_fill_xpad(float *xpad, const float *x, const dp_xpad *p);

/* r[i] (row i of a 16x16 tile) -> r[j] = column j: unpack pairs of rows,
 * shuffle within 128-bit lanes, then transpose the 4x4 grid of lanes. */
DP_DIRECT_INLINE void dp_direct_transpose16(__m512 r[16])
{
    __m512 t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
        r[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    /* lane L of r[4i + j] now holds column 4L + j of rows 4i .. 4i+3 */
    for (int j = 0; j < 4; j++) {
        const __m512 a = _mm512_shuffle_f32x4(r[j], r[4 + j], 0x88), b = _mm512_shuffle_f32x4(r[j], r[4 + j], 0xDD);
        const __m512 c = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0x88);
        const __m512 d = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0xDD);
        t[j] = _mm512_shuffle_f32x4(a, c, 0x88);
        t[4 + j] = _mm512_shuffle_f32x4(b, d, 0x88);
        t[8 + j] = _mm512_shuffle_f32x4(a, c, 0xDD);
        t[12 + j] = _mm512_shuffle_f32x4(b, d, 0xDD);
    }
    for (int i = 0; i < 16; i++) r[i] = t[i];
}
#endif

#endif
