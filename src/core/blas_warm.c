/* One-time OpenBLAS warm-up.
 *
 * Measured with OpenBLAS 0.3.21 (ZEN sgemm kernel) in this project's VMs: in a
 * fresh process, sgemm calls of the conv layers' size ([64 x 196 x 288] and
 * the like) run 2-3x slower than the same calls after one larger sgemm has run
 * (conv2 forward+backward 72-78 ms vs 39-42 ms at batch 64). perf puts the time
 * on the micro-kernel's `prefetcht1` of the next packed-B panel: past the last
 * panel it points into pages of OpenBLAS's own buffer that small calls never
 * write, and a prefetch to a non-present page costs a full (nested) page walk
 * every time. One 64x512x512 sgemm packs far enough into that buffer to fault
 * those pages in; 256^3 or 64x4096x64 do not. */
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
