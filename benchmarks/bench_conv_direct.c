/* bench_conv_direct: ResNet-20's 3x3 convolutions (batch 64 by default) through
 * dp_conv2d with the AVX-512 direct kernels (src/core/conv_direct*.c) forced on
 * and off (the im2col + sgemm path), pass by pass:
 *
 *   fwd   y = conv(x, w) + b                    dp_conv2d alone
 *   dx    input gradient only                   dp_backward, w and b without grad
 *   dw    weight and bias gradients only        dp_backward, x without grad
 *
 * Layers: s1 16ch 28x28, s2 32ch 14x14, s3 64ch 7x7 (stride 1, pad 1), and the
 * two stride-2 transitions 16->32 and 32->64. Median of --reps after 2
 * warm-ups; GFLOP/s count 2*N*O*Ho*Wo*C*9 per pass. The "kernel" column says
 * which path the op actually took for that pass (direct only where the
 * kernel's fits_* accepts the shape; a direct row on "gemm" means it fell
 * back). Single-threaded OpenBLAS is forced.
 *
 * Prints a table and a CSV (--csv: the CSV only).
 * Usage: bench_conv_direct [--csv] [--reps R] [--batch N] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/conv_direct.h"
#include "dptrain/ops.h"

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

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static float *filled(long n, dp_rng *r, float lo, float hi)
{
    float *p = aligned_alloc(64, ((size_t)n * sizeof(float) + 63) / 64 * 64);
    if (!p) {
        fprintf(stderr, "bench_conv_direct: out of memory\n");
        exit(1);
    }
    dp_init_uniform(r, p, (size_t)n, lo, hi);
    return p;
}

typedef struct layer {
    const char *name;
    int C, O, H, stride;
} layer;

enum { FWD, DX, DW };
static const char *const pass_names[3] = {"fwd", "dx", "dw"};

/* Median seconds of one pass of layer L at batch N on the path `direct`. */
static double time_pass(const layer *L, int N, int pass, int direct, int reps)
{
    dp_rng r;
    dp_rng_seed(&r, 7, DP_STREAM_USER, 0);
    const int Ho = (L->H + 2 - 3) / L->stride + 1;
    int xs[4] = {N, L->C, L->H, L->H}, ws[4] = {L->O, L->C, 3, 3}, bs[1] = {L->O};
    float *x = filled(dp_shape_numel(4, xs), &r, -1, 1), *w = filled(dp_shape_numel(4, ws), &r, -0.1f, 0.1f);
    float *b = filled(L->O, &r, -0.1f, 0.1f), *gw = filled(dp_shape_numel(4, ws), &r, 0, 0);
    float *gx = filled(dp_shape_numel(4, xs), &r, 0, 0), *gb = filled(L->O, &r, 0, 0);
    float *dy = filled((long)N * L->O * Ho * Ho, &r, -1, 1);
    double *t = malloc((size_t)reps * sizeof *t);
    dp_direct_force(direct);
    dp_ctx c;
    dp_ctx_init(&c);
    for (int i = -2; i < reps; i++) {
        dp_ctx_reset(&c);
        dp_tensor *tx = dp_tensor_wrap(&c, x, 4, xs), *tw = dp_tensor_wrap(&c, w, 4, ws);
        dp_tensor *tb = dp_tensor_wrap(&c, b, 1, bs);
        tx->grad = gx, tw->grad = gw, tb->grad = gb;
        tx->requires_grad = pass == DX;
        tw->requires_grad = tb->requires_grad = pass == DW;
        double t0 = now_s();
        dp_tensor *y = dp_conv2d(&c, tx, tw, tb, L->stride, 1, 1, 1);
        if (!y) {
            fprintf(stderr, "bench_conv_direct: %s\n", dp_errmsg());
            exit(1);
        }
        if (pass != FWD) {
            y->grad = dy;
            t0 = now_s();
            if (dp_backward(&c, y) != DP_OK) {
                fprintf(stderr, "bench_conv_direct: backward: %s\n", dp_errmsg());
                exit(1);
            }
        }
        if (i >= 0) t[i] = now_s() - t0;
    }
    dp_ctx_free(&c);
    dp_direct_force(-1);
    const double m = median(t, reps);
    free(t), free(x), free(w), free(b), free(gw), free(gx), free(gb), free(dy);
    return m;
}

/* Whether the op takes the direct kernel for this pass when it may. */
static int takes_direct(const layer *L, int N, int pass)
{
    const int Ho = (L->H + 2 - 3) / L->stride + 1;
    dp_conv_geom g = {.N = N, .C = L->C, .H = L->H, .W = L->H, .O = L->O, .Ho = Ho, .Wo = Ho, .kh = 3, .kw = 3,
                      .stride = L->stride, .pad = 1, .dil = 1, .groups = 1, .Cg = L->C, .Og = L->O,
                      .K = L->C * 9, .P = (long)Ho * Ho};
    dp_direct_force(1);
    const int avail = dp_direct_available();
    dp_direct_force(-1);
    if (!avail) return 0;
    return pass == FWD ? dp_direct_fits_forward(&g) : pass == DX ? dp_direct_fits_dx(&g) : dp_direct_fits_dw(&g);
}

int main(int argc, char **argv)
{
    int csv = 0, reps = 11, N = 64;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--csv"))
            csv = 1;
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
            N = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_conv_direct [--csv] [--reps R] [--batch N]\n");
            return 2;
        }
    }
    if (reps < 1 || N < 1) {
        fprintf(stderr, "bench_conv_direct: --reps %d and --batch %d must be >= 1\n", reps, N);
        return 2;
    }
    setenv("OPENBLAS_NUM_THREADS", "1", 1);
    static const layer layers[] = {
        {"s1_16x28", 16, 16, 28, 1}, {"s2_32x14", 32, 32, 14, 1}, {"s3_64x7", 64, 64, 7, 1},
        {"t12_16to32_s2", 16, 32, 28, 2}, {"t23_32to64_s2", 32, 64, 14, 2},
    };
    enum { NL = sizeof layers / sizeof layers[0] };
    double tg[NL][3], td[NL][3], gf[NL];
    int dir[NL][3];
    for (int l = 0; l < NL; l++) {
        const layer *L = &layers[l];
        const int Ho = (L->H + 2 - 3) / L->stride + 1;
        gf[l] = 2.0 * N * L->O * Ho * Ho * L->C * 9 * 1e-9;
        for (int pass = FWD; pass <= DW; pass++) {
            tg[l][pass] = time_pass(L, N, pass, 0, reps);
            td[l][pass] = time_pass(L, N, pass, 1, reps);
            dir[l][pass] = takes_direct(L, N, pass);
        }
    }
    if (!csv) {
        printf("batch %d, median of %d\n%-14s %-4s %-7s %10s %8s %10s %8s %8s\n", N, reps, "layer", "pass", "kernel",
               "gemm_ms", "gemm_GF", "direct_ms", "dir_GF", "speedup");
        for (int l = 0; l < NL; l++)
            for (int p = FWD; p <= DW; p++)
                printf("%-14s %-4s %-7s %10.3f %8.1f %10.3f %8.1f %7.2fx\n", layers[l].name, pass_names[p],
                       dir[l][p] ? "direct" : "gemm", 1e3 * tg[l][p], gf[l] / tg[l][p], 1e3 * td[l][p],
                       gf[l] / td[l][p], tg[l][p] / td[l][p]);
        printf("\n");
    }
    printf("layer,pass,kernel,batch,gemm_ms,gemm_gflops,direct_ms,direct_gflops,speedup\n");
    for (int l = 0; l < NL; l++)
        for (int p = FWD; p <= DW; p++)
            printf("%s,%s,%s,%d,%.4f,%.2f,%.4f,%.2f,%.3f\n", layers[l].name, pass_names[p],
                   dir[l][p] ? "direct" : "gemm", N, 1e3 * tg[l][p], gf[l] / tg[l][p], 1e3 * td[l][p],
                   gf[l] / td[l][p], tg[l][p] / td[l][p]);
    return 0;
}
