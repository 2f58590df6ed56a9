/* Direct convolution kernels on AVX-512 (groups 1, dilation 1), used by
 * ops_conv.c in place of im2col + sgemm when the CPU has AVX-512F and the
 * shape fits. Private to src/core.
 *
 * Why not sgemm: a ResNet layer's GEMM is thin (16..64 output channels, K =
 * 9 * Cin), so sgemm spends as much time packing and in im2col/col2im as in
 * its kernel (RESULTS §13: kernel 51%, im2col + col2im + packing 27%). These
 * kernels read the input through a zero-padded copy, keep a block of outputs
 * (pixels x 16-lane channel vectors) in registers across the whole K loop and
 * write each output once.
 *
 * Layouts at the interface are the op's: x [N, C, H, W], w [O, C, kh, kw],
 * y [N, O, Ho, Wo]; what the kernels use inside (transposed weights,
 * pixel-major tiles) lives in the scratch they are given. */
#ifndef DP_CORE_CONV_DIRECT_H
#define DP_CORE_CONV_DIRECT_H

#include <stddef.h>

#include "core/im2col.h"

/*! 1 when the CPU has AVX-512F and DP_CONV is unset or "auto"; 0 when
 *  DP_CONV=gemm (the same-bits tests pin the GEMM path that way). Checked once. */
int dp_direct_available(void);

/*! Tests: mode 0 turns the direct kernels off, 1 on (where the CPU has
 *  AVX-512F, whatever DP_CONV says), -1 back to DP_CONV (read again at the
 *  next dp_direct_available) and the CPU. Process-wide. */
void dp_direct_force(int mode);

/*! Shapes each kernel takes (g->groups == 1, g->dil == 1 and more; see conv_direct.c).
 *  forward: O % 16 == 0, kh*kw > 1, K > 12; dx: C % 16 == 0, kh*kw > 1, any stride <= 4. */
int dp_direct_fits_forward(const dp_conv_geom *g);
int dp_direct_fits_dx(const dp_conv_geom *g);
int dp_direct_fits_dw(const dp_conv_geom *g);

/*! Scratch bytes each kernel needs for the whole batch (64-byte aligned by the caller). */
size_t dp_direct_forward_scratch(const dp_conv_geom *g);
size_t dp_direct_dx_scratch(const dp_conv_geom *g);
size_t dp_direct_dw_scratch(const dp_conv_geom *g);

/*! y <- x (*) w + b (b may be NULL). */
void dp_direct_forward(float *y, const float *x, const float *w, const float *b, const dp_conv_geom *g,
                       float *scratch);

/*! dx += the input gradient from dy. */
void dp_direct_dx(float *dx, const float *dy, const float *w, const dp_conv_geom *g, float *scratch);

/*! dw += the weight gradient from dy and x; db += row sums of dy when db != NULL. */
void dp_direct_dw(float *dw, float *db, const float *dy, const float *x, const dp_conv_geom *g, float *scratch);

#endif
