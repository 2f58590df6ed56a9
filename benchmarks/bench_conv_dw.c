/* bench_conv_dw: the weight gradient (dW and db) of ResNet-20's 3x3 convs
 * (Fashion-MNIST, 1x28x28 input) at batch N, the AVX-512 direct kernel
 * (src/core/conv_direct_dw.c) against what ops_conv.c does without it:
 * im2col + single-thread cblas_sgemm dW += dY . col^T per image (images with
 * fewer than 192 output cells go several to a GEMM, as there) and db as row sums.
 *
 *   c16   16 -> 16, 28x28, stride 1      s2_16_32   16 -> 32, 28 -> 14, stride 2
 *   c32   32 -> 32, 14x14, stride 1      s2_32_64   32 -> 64, 14 -> 7,  stride 2
 *   c64   64 -> 64,  7x7,  stride 1
 *
 * GFLOP/s count 2*N*O*C*9*Ho*Wo per pass (padding taps included); each number
 * is the median of --reps timed calls after 2 warm-ups. "maxdiff" is the
 * largest |dw_direct - dw_gemm| over max |dw_gemm| from one fresh call each
 * (a sanity check, not a test: tests/core/test_conv_direct_dw.c is that).
 *
 * Usage: bench_conv_dw [--csv] [--reps R] [--n N]   (prints a table, or CSV). */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/conv_direct.h"
#include "core/im2col.h"

#define TILE_COLS 192 /* ops_conv.c's DP_CONV_TILE_COLS */

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static float *falloc(size_t n)
{
    float *p = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
    if (!p) {
        fprintf(stderr, "bench_conv_dw: out of memory\n");
        exit(1);
    }
    return p;
}

static float urand(unsigned long long *st) /* uniform in [-0.5, 0.5) */
{
    *st = *st * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)(*st >> 40) / 16777216.0f - 0.5f;
}

static dp_conv_geom geom(int N, int C, int H, int O, int stride)
{
    dp_conv_geom g = {.N = N, .C = C, .H = H, .W = H, .O = O, .kh = 3, .kw = 3, .stride = stride, .pad = 1,
                      .dil = 1, .groups = 1, .Cg = C, .Og = O, .K = C * 9};
    g.Ho = g.Wo = (H + 2 - 3) / stride + 1;
    g.P = (long)g.Ho * g.Wo;
    return g;
}

/* Buffers of the GEMM path: col [K, T*P] and dyt [O, T*P] for tiles of T images. */
typedef struct gemm_bufs {
    int T;
    float *col, *dyt;
} gemm_bufs;

static void gemm_dw(float *dw, float *db, const float *dy, const float *x, const dp_conv_geom *g, gemm_bufs *b)
{
    const long P = g->P, HW = (long)g->H * g->W;
    for (int n0 = 0; n0 < g->N; n0 += b->T) {
        const int tn = g->N - n0 < b->T ? g->N - n0 : b->T;
        const long ldc = tn * P;
        const float *dyn = dy + (long)n0 * g->O * P;
        for (int o = 0; o < g->O; o++) {
            float s = 0.0f;
            for (int t = 0; t < tn; t++)
                for (long p = 0; p < P; p++) s += dyn[((long)t * g->O + o) * P + p];
            db[o] += s;
        }
        if (tn > 1) {
            for (int t = 0; t < tn; t++)
                for (int o = 0; o < g->O; o++)
                    memcpy(b->dyt + o * ldc + t * P, dyn + ((long)t * g->O + o) * P, (size_t)P * sizeof(float));
            dyn = b->dyt;
        }
        for (int t = 0; t < tn; t++) dp_im2col(g, b->col + t * P, ldc, x + (long)(n0 + t) * g->C * HW);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g->O, g->K, (int)ldc, 1.0f, dyn, (int)ldc, b->col,
                    (int)ldc, 1.0f, dw, g->K);
    }
}

int main(int argc, char **argv)
{
    int csv = 0, reps = 9, N = 64;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--csv"))
            csv = 1;
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc && atoi(argv[i + 1]) > 0)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--n") && i + 1 < argc && atoi(argv[i + 1]) > 0)
            N = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_conv_dw [--csv] [--reps R (> 0)] [--n N (> 0)]; bad argument '%s%s%s'\n",
                    argv[i], i + 1 < argc ? " " : "", i + 1 < argc ? argv[i + 1] : "");
            return 2;
        }
    }
    openblas_set_num_threads(1);
    const struct {
        const char *name;
        int C, H, O, stride;
    } shapes[] = {{"c16", 16, 28, 16, 1},
                  {"c32", 32, 14, 32, 1},
                  {"c64", 64, 7, 64, 1},
                  {"s2_16_32", 16, 28, 32, 2},
                  {"s2_32_64", 32, 14, 64, 2}};
    if (csv)
        printf("layer,N,direct_gflops,gemm_gflops,ratio,maxdiff\n");
    else
        printf("%-10s %4s %14s %12s %7s %9s\n", "layer", "N", "direct GF/s", "gemm GF/s", "ratio", "maxdiff");
    double *td = malloc((size_t)reps * sizeof *td), *tg = malloc((size_t)reps * sizeof *tg);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const dp_conv_geom g = geom(N, shapes[s].C, shapes[s].H, shapes[s].O, shapes[s].stride);
        if (!dp_direct_fits_dw(&g)) {
            printf(csv ? "%s,%d,,,,\n" : "%-10s %4d   direct kernel not available (no AVX-512F?)\n", shapes[s].name,
                   N);
            continue;
        }
        const long nx = (long)N * g.C * g.H * g.W, ny = (long)N * g.O * g.P, nw = (long)g.O * g.K;
        float *x = falloc((size_t)nx), *dy = falloc((size_t)ny), *dw = falloc((size_t)nw), *dw2 = falloc((size_t)nw);
        float *db = falloc((size_t)g.O);
        float *scratch = falloc(dp_direct_dw_scratch(&g) / sizeof(float));
        gemm_bufs b = {.T = g.P < TILE_COLS ? (int)((TILE_COLS + g.P - 1) / g.P) : 1};
        b.col = falloc((size_t)g.K * b.T * g.P);
        b.dyt = falloc((size_t)g.O * b.T * g.P);
        unsigned long long st = 7;
        for (long i = 0; i < nx; i++) x[i] = urand(&st);
        for (long i = 0; i < ny; i++) dy[i] = urand(&st);

        memset(dw, 0, (size_t)nw * sizeof(float));
        memset(dw2, 0, (size_t)nw * sizeof(float));
        memset(db, 0, (size_t)g.O * sizeof(float));
        dp_direct_dw(dw, db, dy, x, &g, scratch);
        gemm_dw(dw2, db, dy, x, &g, &b);
        double dmax = 0, gmax = 0;
        for (long i = 0; i < nw; i++) {
            dmax = fmax(dmax, fabs((double)dw[i] - dw2[i]));
            gmax = fmax(gmax, fabs((double)dw2[i]));
        }
        for (int r = -2; r < reps; r++) { /* interleaved, so both see the same load on a shared host */
            double t0 = now_s();
            dp_direct_dw(dw, db, dy, x, &g, scratch);
            double t1 = now_s();
            gemm_dw(dw2, db, dy, x, &g, &b);
            double t2 = now_s();
            if (r >= 0) td[r] = t1 - t0, tg[r] = t2 - t1;
        }
        qsort(td, (size_t)reps, sizeof *td, cmp_d);
        qsort(tg, (size_t)reps, sizeof *tg, cmp_d);
        const double flop = 2.0 * N * g.O * g.K * (double)g.P;
        const double gd = flop / td[reps / 2] / 1e9, gg = flop / tg[reps / 2] / 1e9;
        printf(csv ? "%s,%d,%.1f,%.1f,%.2f,%.1e\n" : "%-10s %4d %14.1f %12.1f %7.2f %9.1e\n", shapes[s].name, N, gd,
               gg, gd / gg, dmax / (gmax + 1e-30));
        free(x), free(dy), free(dw), free(dw2), free(db), free(scratch), free(b.col), free(b.dyt);
    }
    free(td), free(tg);
    return 0;
}
