/* im2col / col2im (see im2col.h): the copies around the convolution's GEMMs.
 *
 * Two shapes of loop:
 *  - stride 1 with Wo == W (the "same" convolutions: 3x3 pad 1, 5x5 pad 2, ...):
 *    a tap's row is the input plane shifted by (hoff*W + woff) floats, so the
 *    valid rows are ONE contiguous copy (or add), followed by zeroing the <= pad
 *    edge columns per row that picked up a neighbouring row's cells;
 *  - anything else: per output row, zero the padding part and copy (stride 1)
 *    or gather (stride > 1) the valid part.
 * For the reference CNN's 14x14 layer this turns 14 short copies per tap into
 * one of ~180 floats, which is what keeps im2col small next to the GEMM. */
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
    const int H = g->H, W = g->W, Ho = g->Ho, Wo = g->Wo, s = g->stride;
    const long HW = (long)H * W;
    const int flat = s == 1 && Wo == W;
    long r = 0;
    for (int c = 0; c < g->Cg; c++) {
        const float *xc = x + c * HW;
        for (int ki = 0; ki < g->kh; ki++) {
            const int hoff = ki * g->dil - g->pad;
            int hlo, hhi;
            dp_conv_valid_range(hoff, s, H, Ho, &hlo, &hhi);
            for (int kj = 0; kj < g->kw; kj++, r++) {
                const int woff = kj * g->dil - g->pad;
                int wlo, whi;
                dp_conv_valid_range(woff, s, W, Wo, &wlo, &whi);
                float *row = col + r * ldc;
                if (hlo >= hhi || wlo >= whi) {
                    zero_f(row, g->P);
                    continue;
                }
                zero_f(row, (long)hlo * Wo);
                zero_f(row + (long)hhi * Wo, (long)(Ho - hhi) * Wo);
                if (flat) {
                    const long shift = (long)hoff * W + woff;
                    const long j0 = (long)hlo * W + wlo, j1 = (long)(hhi - 1) * W + whi;
                    copy_f(row + j0, xc + j0 + shift, j1 - j0);
                    zero_edges(row, W, hlo, hhi, wlo, whi);
                    continue;
                }
                for (int oh = hlo; oh < hhi; oh++) {
                    float *ro = row + (long)oh * Wo;
                    const float *xr = xc + (long)(oh * s + hoff) * W;
                    for (int ow = 0; ow < wlo; ow++) ro[ow] = 0.0f;
                    if (s == 1)
                        copy_f(ro + wlo, xr + wlo + woff, whi - wlo);
                    else
                        for (int ow = wlo; ow < whi; ow++) ro[ow] = xr[ow * s + woff];
                    for (int ow = whi; ow < Wo; ow++) ro[ow] = 0.0f;
                }
            }
        }
    }
}

void dp_col2im(const dp_conv_geom *g, float *dx, float *dcol, long ldc)
{
    const int H = g->H, W = g->W, Ho = g->Ho, Wo = g->Wo, s = g->stride;
    const long HW = (long)H * W;
    const int flat = s == 1 && Wo == W;
    long r = 0;
    for (int c = 0; c < g->Cg; c++) {
        float *dxc = dx + c * HW;
        for (int ki = 0; ki < g->kh; ki++) {
            const int hoff = ki * g->dil - g->pad;
            int hlo, hhi;
            dp_conv_valid_range(hoff, s, H, Ho, &hlo, &hhi);
            for (int kj = 0; kj < g->kw; kj++, r++) {
                const int woff = kj * g->dil - g->pad;
                int wlo, whi;
                dp_conv_valid_range(woff, s, W, Wo, &wlo, &whi);
                float *row = dcol + r * ldc;
                if (hlo >= hhi || wlo >= whi) continue;
                if (flat) {
                    /* Zero the padding taps of the valid rows, then one contiguous add:
                     * the zeroed entries land on real cells of the neighbouring row
                     * and add nothing. */
                    zero_edges(row, W, hlo, hhi, wlo, whi);
                    const long shift = (long)hoff * W + woff;
                    const long j0 = (long)hlo * W + wlo, j1 = (long)(hhi - 1) * W + whi;
                    add_f(dxc + j0 + shift, row + j0, j1 - j0);
                    continue;
                }
                for (int oh = hlo; oh < hhi; oh++) {
                    const float *ro = row + (long)oh * Wo;
                    float *dr = dxc + (long)(oh * s + hoff) * W;
                    if (s == 1)
                        add_f(dr + wlo + woff, ro + wlo, whi - wlo);
                    else
                        for (int ow = wlo; ow < whi; ow++) dr[ow * s + woff] += ro[ow];
                }
            }
        }
    }
}
