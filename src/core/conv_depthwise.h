/* Direct kernels for convolutions with one input channel per group (Cin/G == 1:
 * depthwise, any channel multiplier), used by ops_conv.c. Private to src/core.
 *
 * Every pass is reduced to one flat, branch-free 1-D loop per image plane:
 * the input plane is copied once into zero-padded "phase planes" (stride s:
 * s*s planes, one per (row mod s, column mod s) of the padded input) whose rows
 * are S floats apart, so that tap (ki, kj) of output (oh, ow) sits at a fixed
 * offset from oh*S + ow in one of them. Then
 *   forward  y_flat[j]  = b + sum_t w_t * phase_t[j + off_t]
 *   dW       dw_t      += sum_j dy_flat[j] * phase_t[j + off_t]
 *   dX       per phase of x, the same correlation as the forward over a
 *            zero-padded copy of dy with the taps flipped
 * with j running over Ho*S (the S - Wo extra columns per row are computed and
 * dropped; dy is zero there). S is as small as the geometry allows: the right
 * padding of one row and the left padding of the next share cells. These
 * loops vectorise whole (AVX2/FMA kernels chosen at run time, portable C
 * otherwise). On AVX2/FMA CPUs, stride 1 with 3 or 5 kernel rows and
 * dilation 1 or 2 (the DARTS primitives) goes through row-blocked kernels
 * instead: 8 output rows per ymm column block share each input load across
 * the kernel rows, and write y and dx in place. Summation orders depend on
 * the geometry and the CPU's kernel set only, never on the data or the call
 * history: results are bit-for-bit reproducible on one machine. */
#ifndef DP_CORE_CONV_DEPTHWISE_H
#define DP_CORE_CONV_DEPTHWISE_H

#include "core/im2col.h"
#include "core/tape.h"

/* Which kernels dp_dwconv_forward/backward use (tests force each one). */
enum { DP_DW_AUTO, DP_DW_PORTABLE, DP_DW_REFERENCE };

/*! Selects the kernels: DP_DW_AUTO (AVX2/FMA when the CPU has them, else
 *  portable), DP_DW_PORTABLE (flat loops in plain C) or DP_DW_REFERENCE (the
 *  plain per-tap loops). Process-wide; for tests. */
void dp_dwconv_set_kernels(int mode);

/*! 1 when the flat kernels handle geometry g (else the reference loops run). */
int dp_dwconv_fast_ok(const dp_conv_geom *g);

/*! y [N, O, Ho, Wo] <- x [N, C, H, W] (*) w [O, 1, kh, kw] + b [O] (b may be
 *  NULL); g->Cg == 1. Scratch from c's arena; returns 0 (c->status set) when
 *  it cannot be had. */
int dp_dwconv_forward(dp_ctx *c, float *y, const float *x, const float *w, const float *b, const dp_conv_geom *g);

/*! dx [N, C, H, W] +=, dw [O, 1, kh, kw] += from dy [N, O, Ho, Wo]; either
 *  output may be NULL. Returns 0 (c->status set) when scratch cannot be had. */
int dp_dwconv_backward(dp_ctx *c, float *dx, float *dw, const float *dy, const float *x, const float *w,
                       const dp_conv_geom *g);

/*! The reference loops (tap by tap over each output plane), for any geometry
 *  with Cg == 1; the tests compare the fast kernels against them. */
void dp_dwconv_ref_forward(float *y, const float *x, const float *w, const float *b, const dp_conv_geom *g);
void dp_dwconv_ref_backward(float *dx, float *dw, const float *dy, const float *x, const float *w,
                            const dp_conv_geom *g);

#endif
