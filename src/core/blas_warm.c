/* One-time OpenBLAS warm-up.
 *
 * Why: OpenBLAS's sgemm micro-kernel (ZEN) prefetches (`prefetcht1`) the
 * packed-B panel after the one it works on. Past the last panel that points
 * into pages of OpenBLAS's own buffer that calls of the conv layers' size
 * ([64 x 196 x 288] and the like) never write, and a prefetch to a page not yet
 * present costs a full (nested, in a VM) page walk every time, so in a fresh
 * process those calls run far below their speed. One 64x512x512 sgemm packs far
 * enough into that buffer to fault those pages in; 256^3 or 64x4096x64 do not
 * reach them. The figures are in benchmarks/RESULTS.md (§11). */
#include <cblas.h>
#include <pthread.h>
#include <stdlib.h>

#include "core/blas_warm.h"

static pthread_once_t warm_once = PTHREAD_ONCE_INIT;

static void warm(void)
{
    enum { M = 64, N = 512, K = 512 };
    float *a = calloc((size_t)M * K, sizeof(float)), *b = calloc((size_t)K * N, sizeof(float));
    float *c = calloc((size_t)M * N, sizeof(float));
    if (a && b && c) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, a, K, b, N, 0.0f, c, N);
    free(a);
    free(b);
    free(c);
}

void dp_blas_warm(void) { pthread_once(&warm_once, warm); }
