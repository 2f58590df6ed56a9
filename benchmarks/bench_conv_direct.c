/* bench_conv_direct: every pass of ResNet-20's 3x3 convolutions (Fashion-MNIST
 * sizes, batch 64 by default) through dp_conv2d, with the AVX-512 direct
 * kernels (src/core/conv_direct.c, conv_direct_dw.c) forced on and off (the
 * im2col + sgemm path):
 *
 *   fwd   y = conv(x, w) + b                    dp_conv2d alone
 *   dx    input gradient only                   dp_backward, w and b without grad
 *   dw    weight and bias gradients only        dp_backward, x without grad
 *
 * Layers: s1 16ch 28x28, s2 32ch 14x14, s3 64ch 7x7 (stride 1, pad 1), and the
 * two stride-2 transitions 16->32 and 32->64.
 *
 * Honest first: before any timing, each (layer, pass) runs once on each path
 * from zeroed gradients and the outputs (y; dx; dw and db) must agree to
 * max |direct - gemm| <= 1e-5 max |gemm|; if not, it says which and exits 1.
 * Then --reps timed calls per path after 2 warm-ups, the paths alternating
 * call by call so that both see the same load on a shared host; the median is
 * reported. GFLOP/s count 2*N*O*Ho*Wo*C*9 per pass (padding taps included;
 * db's sums not counted); "ratio" is gemm time / direct time (> 1: direct is
 * faster). The "kernel" column says which path the op takes for that pass when
 * the direct kernels are on (direct only where the kernel's fits_* accepts the
 * shape and the CPU has AVX-512F; "gemm" there means both columns time the
 * GEMM path). Single-threaded OpenBLAS, as in training with one rank per core.
 *
 * Usage: bench_conv_direct [--batch N] [--reps R] [--csv FILE]
 *   prints the table; --csv also writes the rows to FILE. A plot of a CSV:
 *   gnuplot -e "set datafile separator ','; set term png noenhanced size 900,500; set output 'conv.png';
 *     set style data histograms; set style fill solid; set yrange [0:*]; set ylabel 'GFLOP/s';
 *     set xtics rotate by -45; plot 'conv.csv' every ::1 using 7:xtic(stringcolumn(1).' '.stringcolumn(2))
 *     title 'gemm', '' every ::1 using 9 title 'direct'" */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/conv_direct.h"
#include "bench_util.h"
#include "dptrain/ops.h"

static void die(const char *what)
{
    fprintf(stderr, "bench_conv_direct: %s\n", what);
    exit(1);
}

typedef struct layer {
    const char *name;
    int C, O, H, stride;
} layer;

enum { FWD, DX, DW, NPASS };
static const char *const pass_names[NPASS] = {"fwd", "dx", "dw"};

/* One layer's operands at batch N: x, w, b, dy and the gradient buffers. */
typedef struct operands {
    int xs[4], ws[4], bs[1], Ho;
    long nx, nw, ny;
    float *x, *w, *b, *dy, *gx, *gw, *gb;
} operands;

static void operands_init(operands *d, const layer *L, int N)
{
    dp_rng r;
    dp_rng_seed(&r, 7, DP_STREAM_USER, 0);
    d->Ho = (L->H + 2 - 3) / L->stride + 1;
    memcpy(d->xs, (int[4]){N, L->C, L->H, L->H}, sizeof d->xs);
    memcpy(d->ws, (int[4]){L->O, L->C, 3, 3}, sizeof d->ws);
    d->bs[0] = L->O;
    d->nx = dp_shape_numel(4, d->xs), d->nw = dp_shape_numel(4, d->ws), d->ny = (long)N * L->O * d->Ho * d->Ho;
    d->x = filled(d->nx, &r, -1, 1), d->w = filled(d->nw, &r, -0.1f, 0.1f), d->b = filled(L->O, &r, -0.1f, 0.1f);
    d->dy = filled(d->ny, &r, -1, 1);
    d->gx = filled(d->nx, &r, 0, 0), d->gw = filled(d->nw, &r, 0, 0), d->gb = filled(L->O, &r, 0, 0);
}

static void operands_free(operands *d)
{
    free(d->x), free(d->w), free(d->b), free(d->dy), free(d->gx), free(d->gw), free(d->gb);
}

/* One pass of layer L on the path `direct`; returns its seconds (backward
 * passes: dp_backward alone). The forward's y is copied to y_out when not NULL. */
static double run_pass(dp_ctx *c, const layer *L, operands *d, int pass, int direct, float *y_out)
{
    dp_direct_force(direct);
    dp_ctx_reset(c);
    dp_tensor *tx = dp_tensor_wrap(c, d->x, 4, d->xs), *tw = dp_tensor_wrap(c, d->w, 4, d->ws);
    dp_tensor *tb = dp_tensor_wrap(c, d->b, 1, d->bs);
    if (!tx || !tw || !tb) die(dp_errmsg());
    tx->grad = d->gx, tw->grad = d->gw, tb->grad = d->gb;
    tx->requires_grad = pass == DX;
    tw->requires_grad = tb->requires_grad = pass == DW;
    double t0 = now_s();
    dp_tensor *y = dp_conv2d(c, tx, tw, tb, L->stride, 1, 1, 1);
    if (!y) die(dp_errmsg());
    double t1 = now_s();
    if (pass != FWD) {
        y->grad = d->dy;
        t0 = now_s();
        if (dp_backward(c, y) != DP_OK) die(dp_errmsg());
        t1 = now_s();
    }
    dp_direct_force(-1);
    if (y_out) memcpy(y_out, y->data, (size_t)d->ny * sizeof *y_out);
    return t1 - t0;
}

/* max |a - ref| / max |ref| (0 when both are all zero). */
static double rel_diff(const float *a, const float *ref, long n)
{
    double worst = 0.0, scale = 0.0;
    for (long i = 0; i < n; i++) {
        worst = fmax(worst, fabs((double)a[i] - ref[i]));
        scale = fmax(scale, fabs((double)ref[i]));
    }
    return scale > 0.0 ? worst / scale : worst;
}

/* The pass's outputs on both paths, from zeroed gradients: the largest
 * relative difference over them (dw: dw and db). */
static double check_pass(dp_ctx *c, const layer *L, operands *d, int pass)
{
    const long n1 = pass == FWD ? d->ny : pass == DX ? d->nx : d->nw;
    float *out[2], *bias[2];
    for (int p = 0; p < 2; p++) {
        out[p] = malloc((size_t)n1 * sizeof(float)), bias[p] = malloc((size_t)L->O * sizeof(float));
        if (!out[p] || !bias[p]) die("out of memory");
        memset(d->gx, 0, (size_t)d->nx * sizeof(float));
        memset(d->gw, 0, (size_t)d->nw * sizeof(float));
        memset(d->gb, 0, (size_t)L->O * sizeof(float));
        run_pass(c, L, d, pass, p, pass == FWD ? out[p] : NULL);
        if (pass == DX) memcpy(out[p], d->gx, (size_t)n1 * sizeof(float));
        if (pass == DW) memcpy(out[p], d->gw, (size_t)n1 * sizeof(float));
        memcpy(bias[p], d->gb, (size_t)L->O * sizeof(float));
    }
    double diff = rel_diff(out[1], out[0], n1);
    if (pass == DW) diff = fmax(diff, rel_diff(bias[1], bias[0], L->O));
    for (int p = 0; p < 2; p++) free(out[p]), free(bias[p]);
    return diff;
}

/* Whether the op takes the direct kernel for this pass when it may. */
static int takes_direct(const layer *L, const operands *d, int pass)
{
    const int N = d->xs[0], Ho = d->Ho;
    dp_conv_geom g = {.N = N, .C = L->C, .H = L->H, .W = L->H, .O = L->O, .Ho = Ho, .Wo = Ho, .kh = 3, .kw = 3,
                      .stride = L->stride, .pad = 1, .dil = 1, .groups = 1, .Cg = L->C, .Og = L->O,
                      .K = L->C * 9, .P = (long)Ho * Ho};
    dp_direct_force(1);
    const int avail = dp_direct_available();
    dp_direct_force(-1);
    if (!avail) return 0;
    return pass == FWD ? dp_direct_fits_forward(&g) : pass == DX ? dp_direct_fits_dx(&g) : dp_direct_fits_dw(&g);
}

static int whole_arg(const char *flag, const char *v)
{
    char *end;
    const long n = strtol(v, &end, 10);
    if (*v == '\0' || *end != '\0' || n < 1 || n > 1000000) {
        fprintf(stderr, "bench_conv_direct: %s '%s' is not a whole number from 1 to 1000000\n", flag, v);
        exit(2);
    }
    return (int)n;
}

int main(int argc, char **argv)
{
    int reps = 11, N = 64;
    const char *csv_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = whole_arg("--reps", argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
            N = whole_arg("--batch", argv[++i]);
        else if (!strcmp(argv[i], "--csv") && i + 1 < argc)
            csv_path = argv[++i];
        else {
            fprintf(stderr, "bench_conv_direct: bad argument '%s'\nusage: bench_conv_direct [--batch N] [--reps R] "
                            "[--csv FILE]\n", argv[i]);
            return 2;
        }
    }
    FILE *csv = NULL;
    if (csv_path && !(csv = fopen(csv_path, "w"))) {
        fprintf(stderr, "bench_conv_direct: --csv %s: cannot open for writing\n", csv_path);
        return 2;
    }
    openblas_set_num_threads(1); /* the environment is read when the library loads: too late to set it here */
    static const layer layers[] = {
        {"s1_16x28", 16, 16, 28, 1}, {"s2_32x14", 32, 32, 14, 1}, {"s3_64x7", 64, 64, 7, 1},
        {"t12_16to32_s2", 16, 32, 28, 2}, {"t23_32to64_s2", 32, 64, 14, 2},
    };
    enum { NL = sizeof layers / sizeof layers[0] };
    double *tg = malloc((size_t)reps * sizeof *tg), *td = malloc((size_t)reps * sizeof *td);
    if (!tg || !td) die("out of memory");
    printf("batch %d, median of %d (paths alternating), OpenBLAS 1 thread\n", N, reps);
    printf("%-14s %-4s %-7s %10s %8s %10s %8s %7s %9s\n", "layer", "pass", "kernel", "gemm_ms", "gemm_GF",
           "direct_ms", "dir_GF", "ratio", "maxdiff");
    if (csv) fprintf(csv, "layer,pass,kernel,batch,reps,gemm_ms,gemm_gflops,direct_ms,direct_gflops,ratio,maxdiff\n");
    dp_ctx c;
    dp_ctx_init(&c);
    for (int l = 0; l < NL; l++) {
        const layer *L = &layers[l];
        operands d;
        operands_init(&d, L, N);
        const double gflop = 2.0 * N * L->O * d.Ho * d.Ho * L->C * 9 * 1e-9;
        for (int pass = FWD; pass < NPASS; pass++) {
            const double diff = check_pass(&c, L, &d, pass);
            if (!(diff <= 1e-5)) {
                fprintf(stderr, "bench_conv_direct: %s %s: direct and gemm differ by %.3g (relative, > 1e-5)\n",
                        L->name, pass_names[pass], diff);
                return 1;
            }
            for (int i = -2; i < reps; i++) {
                const double g = run_pass(&c, L, &d, pass, 0, NULL), t = run_pass(&c, L, &d, pass, 1, NULL);
                if (i >= 0) tg[i] = g, td[i] = t;
            }
            const double mg = median(tg, reps), md = median(td, reps);
            const char *kernel = takes_direct(L, &d, pass) ? "direct" : "gemm";
            printf("%-14s %-4s %-7s %10.3f %8.1f %10.3f %8.1f %6.2fx %9.1e\n", L->name, pass_names[pass], kernel,
                   1e3 * mg, gflop / mg, 1e3 * md, gflop / md, mg / md, diff);
            if (csv)
                fprintf(csv, "%s,%s,%s,%d,%d,%.4f,%.2f,%.4f,%.2f,%.3f,%.2e\n", L->name, pass_names[pass], kernel, N,
                        reps, 1e3 * mg, gflop / mg, 1e3 * md, gflop / md, mg / md, diff);
            fflush(stdout);
        }
        operands_free(&d);
    }
    dp_ctx_free(&c);
    free(tg), free(td);
    if (csv && fclose(csv) != 0) {
        fprintf(stderr, "bench_conv_direct: --csv %s: write failed\n", csv_path);
        return 1;
    }
    return 0;
}
