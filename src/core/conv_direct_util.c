/* The pieces conv_direct.c and conv_direct_dw.c share (conv_direct_util.h). */
#include "core/conv_direct_util.h"

#if defined(__x86_64__) && defined(__GNUC__)

int dp_direct_cpu_ok(void)
{
    static int have = -1;
    if (have < 0) {
        __builtin_cpu_init();
        have = __builtin_cpu_supports("avx512f") != 0;
    }
    return have;
}

/* Rows are short (7..30 floats in ResNet-20): a vector loop with a masked
 * tail, since a libc memcpy per row costs about as much as the copy. */
DP_DIRECT_TARGET void dp_direct_fill_xpad(float *xpad, const float *x, const dp_xpad *p)
{
    const int s = p->s;
    const int hlo = p->ph < 0 ? -p->ph : 0, hhi = p->H < p->Hp - p->ph ? p->H : p->Hp - p->ph;
    const int wlo = p->pw < 0 ? -p->pw : 0, whi = p->W < p->Wp - p->pw ? p->W : p->Wp - p->pw;
    if (wlo >= whi) return;
    const int n = whi - wlo, nv = n / 16 * 16;
    const __mmask16 tail = (__mmask16)((1u << (n % 16)) - 1);
    for (int c = 0; c < p->C; c++)
        for (int h = hlo; h < hhi; h++) {
            const float *src = x + ((long)c * p->H + h) * p->W;
            float *dst = xpad + c * p->plane + (long)(h + p->ph) * s * p->Wq;
            if (s == 1) {
                const float *sp = src + wlo;
                float *dp = dst + wlo + p->pw;
                for (int i = 0; i < nv; i += 16) _mm512_storeu_ps(dp + i, _mm512_loadu_ps(sp + i));
                if (tail) _mm512_mask_storeu_ps(dp + nv, tail, _mm512_maskz_loadu_ps(tail, sp + nv));
                continue;
            }
            for (int f = 0; f < s; f++) { /* phase f holds padded columns q*s + f */
                float *dp = dst + (long)f * p->Wq;
                int q = 0, w = f - p->pw;
                for (; w < wlo; w += s) q++;
                for (; w < whi; w += s) dp[q++] = src[w];
            }
        }
}

#else

int dp_direct_cpu_ok(void) { return 0; }

#endif
