/* One-time OpenBLAS warm-up (see blas_warm.c). Private to src/core. */
#ifndef DP_CORE_BLAS_WARM_H
#define DP_CORE_BLAS_WARM_H

/*! Runs one 64x512x512 sgemm the first time it is called in the process
 *  (thread-safe; 1.25 MiB malloc'd and freed); later calls return at once. */
void dp_blas_warm(void);

#endif
