/* Separable resize of uint8 planes with exact integer weights.
 *
 * Each axis gets a table: output pixel i = sum_k w[i][k] * src[start[i] + k],
 * the weights of one output summing to the axis' denominator `den`:
 *   shrink (d <= s): output i covers source [i*s/d, (i+1)*s/d); in units of
 *     1/d source pixel every overlap is an integer, so w = overlap, den = s
 *     (area averaging; d == s makes every table a single weight s: a copy);
 *   grow (d > s): centre x = (i + 1/2) * s/d - 1/2, clamped to [0, s-1]; in
 *     units of 1/(2d), num = (2i+1)*s - d, x0 = num / 2d, frac = num % 2d:
 *     w = (2d - frac, frac), den = 2d (bilinear, half-pixel centres).
 * Rows are filtered into uint32 sums (at most 255 * 2 * 2^15 < 2^25), then
 * columns into uint64 (< 2^42), and the one division by den_h * den_w rounds
 * half up. No float touches a pixel, so every build gives the same bits. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/image_decode.h"

typedef struct axis {
    int *start, *count; /* [d] */
    uint32_t *w;        /* [d * taps] */
    int taps;
    uint64_t den;
} axis;

static void axis_free(axis *a)
{
    free(a->start);
    free(a->count);
    free(a->w);
}

static int axis_make(axis *a, int s, int d)
{
    memset(a, 0, sizeof *a);
    a->taps = d <= s ? (s + d - 1) / d + 1 : 2;
    a->start = malloc((size_t)d * sizeof *a->start);
    a->count = malloc((size_t)d * sizeof *a->count);
    a->w = calloc((size_t)d * (size_t)a->taps, sizeof *a->w);
    if (!a->start || !a->count || !a->w)
        return -1;
    if (d <= s) {
        a->den = (uint64_t)s;
        for (int i = 0; i < d; i++) {
            uint64_t lo = (uint64_t)i * s, hi = lo + s; /* in units of 1/d source pixel */
            int j0 = (int)(lo / d), n = 0;
            for (int j = j0; j < s && (uint64_t)j * d < hi; j++, n++) {
                uint64_t a0 = (uint64_t)j * d > lo ? (uint64_t)j * d : lo;
                uint64_t a1 = (uint64_t)(j + 1) * d < hi ? (uint64_t)(j + 1) * d : hi;
                a->w[(size_t)i * a->taps + n] = (uint32_t)(a1 - a0);
            }
            a->start[i] = j0;
            a->count[i] = n;
        }
    } else {
        int64_t two_d = 2 * (int64_t)d, top = two_d * (s - 1);
        a->den = (uint64_t)two_d;
        for (int i = 0; i < d; i++) {
            int64_t num = (2 * (int64_t)i + 1) * s - d;
            num = num < 0 ? 0 : num > top ? top : num;
            int x0 = (int)(num / two_d);
            uint32_t frac = (uint32_t)(num % two_d);
            a->start[i] = x0;
            a->count[i] = frac ? 2 : 1;
            a->w[(size_t)i * 2] = (uint32_t)two_d - frac;
            a->w[(size_t)i * 2 + 1] = frac;
        }
    }
    return 0;
}

dp_status dp_image_resize(const uint8_t *src, int c, int sh, int sw, uint8_t *dst, int dh, int dw)
{
    if (c < 1 || sh < 1 || sw < 1 || dh < 1 || dw < 1 || sh > DP_IMAGE_MAX_SIDE || sw > DP_IMAGE_MAX_SIDE ||
        dh > DP_IMAGE_MAX_SIDE || dw > DP_IMAGE_MAX_SIDE)
        return dp_errorf(DP_ERR_ARG, "resize: %d planes %dx%d -> %dx%d: sides must be 1..%d", c, sh, sw, dh, dw,
                         DP_IMAGE_MAX_SIDE);
    if (sh == dh && sw == dw) {
        memcpy(dst, src, (size_t)c * sh * sw);
        return DP_OK;
    }
    axis ax, ay;
    uint32_t *tmp = malloc((size_t)sh * dw * sizeof *tmp); /* one plane, rows filtered */
    int okx = axis_make(&ax, sw, dw), oky = axis_make(&ay, sh, dh);
    if (okx || oky || !tmp) {
        axis_free(&ax);
        axis_free(&ay);
        free(tmp);
        return dp_errorf(DP_ERR_NOMEM, "resize: out of memory for %dx%d -> %dx%d", sh, sw, dh, dw);
    }
    uint64_t den = ax.den * ay.den, half = den / 2;
    for (int p = 0; p < c; p++) {
        const uint8_t *sp = src + (size_t)p * sh * sw;
        uint8_t *dp = dst + (size_t)p * dh * dw;
        for (int y = 0; y < sh; y++) {
            const uint8_t *row = sp + (size_t)y * sw;
            for (int x = 0; x < dw; x++) {
                const uint32_t *w = ax.w + (size_t)x * ax.taps;
                const uint8_t *q = row + ax.start[x];
                uint32_t acc = 0;
                for (int k = 0; k < ax.count[x]; k++)
                    acc += w[k] * q[k];
                tmp[(size_t)y * dw + x] = acc;
            }
        }
        for (int y = 0; y < dh; y++) {
            const uint32_t *w = ay.w + (size_t)y * ay.taps;
            const uint32_t *t0 = tmp + (size_t)ay.start[y] * dw;
            for (int x = 0; x < dw; x++) {
                uint64_t acc = 0;
                for (int k = 0; k < ay.count[y]; k++)
                    acc += (uint64_t)w[k] * t0[(size_t)k * dw + x];
                dp[(size_t)y * dw + x] = (uint8_t)((acc + half) / den);
            }
        }
    }
    axis_free(&ax);
    axis_free(&ay);
    free(tmp);
    return DP_OK;
}
