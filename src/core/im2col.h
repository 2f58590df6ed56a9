/* im2col / col2im for the GEMM convolution (src/core/ops_conv.c). Private to src/core.
 *
 * One image (or one group of it) x [Cg, H, W] is unrolled into a column block
 * col [Cg*kh*kw, Ho*Wo] whose row r = (c*kh + ki)*kw + kj holds the input tap
 * (ki, kj) of channel c for every output position, zero where the tap falls in
 * the padding. Rows are `ldc` floats apart so several images can sit side by
 * side in one [K, T*Ho*Wo] block (image t at column offset t*Ho*Wo).
 * col2im is the adjoint: it adds every column entry back onto the input cell it
 * was copied from. */
#ifndef DP_CORE_IM2COL_H
#define DP_CORE_IM2COL_H

typedef struct dp_conv_geom {
    int N, C, H, W;             /* input x [N, C, H, W] */
    int O, Ho, Wo;              /* output y [N, O, Ho, Wo] */
    int kh, kw, stride, pad, dil, groups;
    int Cg, Og;                 /* input / output channels per group */
    int K;                      /* Cg * kh * kw: GEMM inner dimension */
    long P;                     /* Ho * Wo: output positions per image */
} dp_conv_geom;

/*! col [K, ldc] (this image's columns start at col) <- x [Cg, H, W]. Every
 *  entry of the image's P columns is written (padding taps as 0). */
void dp_im2col(const dp_conv_geom *g, float *col, long ldc, const float *x);

/*! dx [Cg, H, W] += adjoint of im2col applied to dcol [K, ldc]. Entries of
 *  dcol that belong to padding taps are overwritten with 0 (dcol is scratch). */
void dp_col2im(const dp_conv_geom *g, float *dx, float *dcol, long ldc);

/*! [lo, hi): the output indices o in [0, n_out) whose input index o*s + off
 *  lies in [0, n_in). */
static inline void dp_conv_valid_range(int off, int s, int n_in, int n_out, int *lo, int *hi)
{
    int l = off >= 0 ? 0 : (-off + s - 1) / s;
    int h = n_in - 1 - off < 0 ? 0 : (n_in - 1 - off) / s + 1;
    if (h > n_out) h = n_out;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

/*! Tap (ki, kj): its input offsets, and the output rows [hlo, hhi) and columns
 *  [wlo, whi) whose input cell (oh*stride + hoff, ow*stride + woff) is real. */
typedef struct dp_conv_tap {
    int hoff, woff, hlo, hhi, wlo, whi;
} dp_conv_tap;

static inline dp_conv_tap dp_conv_tap_at(const dp_conv_geom *g, int ki, int kj)
{
    dp_conv_tap t = {.hoff = ki * g->dil - g->pad, .woff = kj * g->dil - g->pad};
    dp_conv_valid_range(t.hoff, g->stride, g->H, g->Ho, &t.hlo, &t.hhi);
    dp_conv_valid_range(t.woff, g->stride, g->W, g->Wo, &t.wlo, &t.whi);
    return t;
}

#endif
