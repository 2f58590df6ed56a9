/* The naive convolution (groups 1, dilation 1) in double that the direct
 * kernels' tests check against (test_conv_direct.c: y and dx through the op,
 * test_conv_direct_dw.c: dw and db of the kernel), and the geometry both build. */
#ifndef DP_TESTS_CONV_REF_H
#define DP_TESTS_CONV_REF_H

#include "core/im2col.h"

/* The geometry dp_conv2d would build for x [N, C, H, W] and w [O, C, kh, kw]. */
dp_conv_geom conv_ref_geom(int N, int C, int H, int W, int O, int kh, int kw, int stride, int pad);

/* What to compute; any pointer may be NULL. Every one that is not is set (not added to). */
typedef struct conv_ref_out {
    double *y, *ym;   /* [N, O, Ho, Wo]: conv(x, w) + b, and the sum of |terms| (float rounding's scale) */
    double *dx, *dxm; /* [N, C, H, W]: the input gradient from dy, and its sum of |terms| */
    double *dw, *db;  /* [O, C, kh, kw], [O]: the weight and bias gradients from dy */
} conv_ref_out;

/* b may be NULL (no bias); dy is needed for dx, dxm, dw, db. */
void conv_ref(const dp_conv_geom *g, const float *x, const float *w, const float *b, const float *dy,
              const conv_ref_out *out);

#endif
