/* im2col / col2im (see im2col.h): the copies around the convolution's GEMMs.
 *
 * Two shapes of loop:
 *  - stride 1 with Wo == W (the "same" convolutions: 3x3 pad 1, 5x5 pad 2, ...):
 *    a tap's row is the input plane shifted by (hoff*W + woff) floats, so the
 *    valid rows are ONE contiguous copy (or add), followed by zeroing the <= pad
 *    edge columns per row that picked up a neighbouring row's cells;
 *  - anything else: per output row, zero the padding part and copy (stride 1)
 *    or gather (stride > 1) the valid part. */
#include <string.h>

#include "core/im2col.h"

static void copy_f(float *restrict dst, const float *restrict src, long n)
{
    for (long i = 0; i < n; i++) dst[i] = src[i];
}

static void add_f(float *restrict dst, const float *restrict src, long n)
{
    for (long i = 0; i < n; i++) dst[i] += src[i];
}

static void zero_f(float *dst, long n)
{
    for (long i = 0; i < n; i++) dst[i] = 0.0f;
}

/* Zeroes columns [0, wlo) and [whi, W) of rows [hlo, hhi) of a [*, W] block:
 * column by column, so each loop is a tight strided store (typically one
 * column on each side for pad 1). */
static void zero_edges(float *row, int W, int hlo, int hhi, int wlo, int whi)
{
    for (int ow = 0; ow < wlo; ow++)
        for (int oh = hlo; oh < hhi; oh++) row[(long)oh * W + ow] = 0.0f;
    for (int ow = whi; ow < W; ow++)
        for (int oh = hlo; oh < hhi; oh++) row[(long)oh * W + ow] = 0.0f;
}

void dp_im2col(const dp_conv_geom *g, float *col, long ldc, const float *x)
{
    const int W = g->W, Ho = g->Ho, Wo = g->Wo, s = g->stride;
    const long HW = (long)g->H * W;
    const int flat = s == 1 && Wo == W;
    long r = 0;
    for (int c = 0; c < g->Cg; c++) {
        const float *xc = x + c * HW;
        for (int ki = 0; ki < g->kh; ki++)
            for (int kj = 0; kj < g->kw; kj++, r++) {
                const dp_conv_tap t = dp_conv_tap_at(g, ki, kj);
                float *row = col + r * ldc;
                if (t.hlo >= t.hhi || t.wlo >= t.whi) {
                    zero_f(row, g->P);
                    continue;
                }
                zero_f(row, (long)t.hlo * Wo);
                zero_f(row + (long)t.hhi * Wo, (long)(Ho - t.hhi) * Wo);
                if (flat) {
                    const long shift = (long)t.hoff * W + t.woff;
                    const long j0 = (long)t.hlo * W + t.wlo, j1 = (long)(t.hhi - 1) * W + t.whi;
                    copy_f(row + j0, xc + j0 + shift, j1 - j0);
                    zero_edges(row, W, t.hlo, t.hhi, t.wlo, t.whi);
                    continue;
                }
                for (int oh = t.hlo; oh < t.hhi; oh++) {
                    float *ro = row + (long)oh * Wo;
                    const float *xr = xc + (long)(oh * s + t.hoff) * W;
                    for (int ow = 0; ow < t.wlo; ow++) ro[ow] = 0.0f;
                    if (s == 1)
                        copy_f(ro + t.wlo, xr + t.wlo + t.woff, t.whi - t.wlo);
                    else
                        for (int ow = t.wlo; ow < t.whi; ow++) ro[ow] = xr[ow * s + t.woff];
                    for (int ow = t.whi; ow < Wo; ow++) ro[ow] = 0.0f;
                }
            }
    }
}

void dp_col2im(const dp_conv_geom *g, float *dx, float *dcol, long ldc)
{
    const int W = g->W, Wo = g->Wo, s = g->stride;
    const long HW = (long)g->H * W;
    const int flat = s == 1 && Wo == W;
    long r = 0;
    for (int c = 0; c < g->Cg; c++) {
        float *dxc = dx + c * HW;
        for (int ki = 0; ki < g->kh; ki++)
            for (int kj = 0; kj < g->kw; kj++, r++) {
                const dp_conv_tap t = dp_conv_tap_at(g, ki, kj);
                float *row = dcol + r * ldc;
                if (t.hlo >= t.hhi || t.wlo >= t.whi) continue;
                if (flat) {
                    /* Zero the padding taps of the valid rows, then one contiguous add:
                     * the zeroed entries land on real cells of the neighbouring row
                     * and add nothing. */
                    zero_edges(row, W, t.hlo, t.hhi, t.wlo, t.whi);
                    const long shift = (long)t.hoff * W + t.woff;
                    const long j0 = (long)t.hlo * W + t.wlo, j1 = (long)(t.hhi - 1) * W + t.whi;
                    add_f(dxc + j0 + shift, row + j0, j1 - j0);
                    continue;
                }
                for (int oh = t.hlo; oh < t.hhi; oh++) {
                    const float *ro = row + (long)oh * Wo;
                    float *dr = dxc + (long)(oh * s + t.hoff) * W;
                    if (s == 1)
                        add_f(dr + t.wlo + t.woff, ro + t.wlo, t.whi - t.wlo);
                    else
                        for (int ow = t.wlo; ow < t.whi; ow++) dr[ow * s + t.woff] += ro[ow];
                }
            }
    }
}
