/* AVX2/FMA kernels for convolutions with a tiny GEMM inner dimension
 * (K = Cin/G * kh * kw <= DP_SMALLK_MAX, e.g. a network's first 3x3 layer on
 * one-channel images, K = 9), used by ops_conv.c. Private to src/core.
 *
 * sgemm is poor at K = 9: [32 x 784 x 9] and the weight gradient
 * [32 x 9 x 784] run far below its speed on large shapes (figures in
 * benchmarks/RESULTS.md §11), and the layer is memory-bound anyway (its
 * output is 28x28x32 per image). These kernels keep the K weights (or K
 * accumulators) in registers, write y once (bias
 * included, no pre-fill + read-modify-write) and fuse the bias gradient into
 * the weight-gradient pass, so dy is read once. */
#ifndef DP_CORE_CONV_SMALLK_H
#define DP_CORE_CONV_SMALLK_H

#define DP_SMALLK_MAX 12

/*! 1 when the CPU has AVX2 and FMA (checked once). */
int dp_smallk_available(void);

/*! y [M, P] <- w [M, K] . col [K, ldc] (+ b [M] when b != NULL); 1 <= K <= DP_SMALLK_MAX. */
void dp_smallk_forward(float *y, const float *w, const float *b, const float *col, long ldc, int M, int K, long P);

/*! dw [M, K] += dy [M, P] . col [K, ldc]^T; db [M] += row sums of dy (db may be NULL). */
void dp_smallk_backward(float *dw, float *db, const float *dy, const float *col, long ldc, int M, int K, long P);

#endif
