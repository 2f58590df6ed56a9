/* bench_conv: the reference CNN's two conv layers (and its two max-pools) at
 * batch 64, timed through the public ops and the tape exactly as training runs
 * them, against single-thread sgemm measured in the same process; and the
 * DARTS primitives' depthwise convolutions and 3x3 pools.
 *
 *   conv1: x [64, 1, 28, 28] (data: no input gradient) -> 32 ch, 3x3 pad 1
 *   conv2: x [64, 32, 14, 14] (needs its gradient)      -> 64 ch, 3x3 pad 1
 *
 * For each layer: forward, and forward + backward (dW, db, and dX for conv2),
 * median of --reps timed repetitions after 3 warm-ups. GFLOP/s counts
 * 2*N*Cout*Ho*Wo*K per GEMM-equivalent pass (K = Cin*kh*kw). "sgemm(same)" is
 * the one-call sgemm [Cout x K] . [K x N*Ho*Wo], the same work as one forward
 * as a single GEMM, timed in the same loop as the layer (so both see the same
 * load on a shared host); "peak" is a 1024^3 sgemm timed once up front. The
 * "/sgemm" and "/peak" columns are the layer's GFLOP/s over those.
 *
 * DARTS rows ("dw..." and "max3/avg3 ..."): depthwise k x k convolutions
 * (groups = C, no bias, pad dil*(k-1)/2, x needs its gradient) and 3x3 pad 1
 * pools, forward and backward alone (dX + dW for the convs), median of --reps.
 * Conv GFLOP/s count 2 * k*k * outputs per pass (padding taps included; the
 * backward is two passes); pool rates count k*k window cells per output.
 *
 * Usage: bench_conv [--csv] [--reps R] [--filter SUBSTR]   (single-threaded
 * OpenBLAS is forced; --filter runs only the rows whose name contains SUBSTR). */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "dptrain/ops.h"

/* Median seconds of one sgemm C[M,N] = A[M,K] . B[K,N]. */
static double time_sgemm(int M, int N, int K, int reps)
{
    dp_rng r;
    dp_rng_seed(&r, 1, DP_STREAM_USER, 0);
    float *A = filled((long)M * K, &r, -1, 1), *B = filled((long)K * N, &r, -1, 1), *C = filled((long)M * N, &r, 0, 0);
    double *t = malloc((size_t)reps * sizeof *t);
    for (int i = -2; i < reps; i++) {
        double t0 = now_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
        if (i >= 0) t[i] = now_s() - t0;
    }
    double m = median(t, reps);
    free(t);
    free(A);
    free(B);
    free(C);
    return m;
}

typedef struct layer {
    const char *name;
    int N, C, H, W, O, k, pad;
    int x_grad;
} layer;

typedef struct row {
    char name[32], pass[16];
    double ms, gflops, sgemm_gflops, peak_gflops;
} row;

static int csv_mode;
static row rows[128];
static int nrows;

static void add_row(const char *name, const char *pass, double s, double flop, double sgemm_gf, double peak_gf)
{
    row *r = &rows[nrows++];
    snprintf(r->name, sizeof r->name, "%s", name);
    snprintf(r->pass, sizeof r->pass, "%s", pass);
    r->ms = 1e3 * s;
    r->gflops = flop > 0 ? flop / s * 1e-9 : 0;
    r->sgemm_gflops = sgemm_gf;
    r->peak_gflops = peak_gf;
}

static void bench_layer(const layer *L, int reps, double peak_gf)
{
    dp_rng r;
    dp_rng_seed(&r, 7, DP_STREAM_USER, 0);
    const int Ho = (L->H + 2 * L->pad - L->k) + 1, Wo = (L->W + 2 * L->pad - L->k) + 1;
    const long K = (long)L->C * L->k * L->k, P = (long)Ho * Wo;
    const double flop = 2.0 * L->N * L->O * P * K;
    int xs[4] = {L->N, L->C, L->H, L->W}, ws[4] = {L->O, L->C, L->k, L->k}, bs[1] = {L->O};
    float *x = filled(dp_shape_numel(4, xs), &r, -1, 1), *w = filled(dp_shape_numel(4, ws), &r, -0.1f, 0.1f);
    float *b = filled(L->O, &r, -0.1f, 0.1f), *gw = filled(dp_shape_numel(4, ws), &r, 0, 0);
    float *gb = filled(L->O, &r, 0, 0), *dy = filled((long)L->N * L->O * P, &r, -1, 1);
    /* the same work as one sgemm, timed in the same loop as the layer so both
     * see the same machine load (the host is shared and noisy) */
    const int gm = L->O, gn = (int)(L->N * P), gk = (int)K;
    float *A = filled((long)gm * gk, &r, -1, 1), *B = filled((long)gk * gn, &r, -1, 1);
    float *C = filled((long)gm * gn, &r, 0, 0);

    dp_ctx c;
    dp_ctx_init(&c);
    double *tf = malloc((size_t)reps * sizeof *tf), *tb = malloc((size_t)reps * sizeof *tb);
    double *tg = malloc((size_t)reps * sizeof *tg);
    for (int i = -3; i < reps; i++) {
        double t0 = now_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, gm, gn, gk, 1.0f, A, gk, B, gn, 0.0f, C, gn);
        if (i >= 0) tg[i] = now_s() - t0;
        for (int pass = 0; pass < 2; pass++) {
            dp_ctx_reset(&c);
            dp_tensor *tx = dp_tensor_wrap(&c, x, 4, xs), *tw = dp_tensor_wrap(&c, w, 4, ws);
            dp_tensor *tbias = dp_tensor_wrap(&c, b, 1, bs);
            tx->requires_grad = L->x_grad;
            tw->grad = gw;
            tbias->grad = gb;
            tw->requires_grad = tbias->requires_grad = 1;
            double t0 = now_s();
            dp_tensor *y = dp_conv2d(&c, tx, tw, tbias, 1, L->pad, 1, 1);
            if (!y) {
                fprintf(stderr, "bench_conv: %s\n", dp_errmsg());
                exit(1);
            }
            if (pass == 1) {
                y->grad = dy;
                if (dp_backward(&c, y) != DP_OK) {
                    fprintf(stderr, "bench_conv: backward: %s\n", dp_errmsg());
                    exit(1);
                }
            }
            double t = now_s() - t0;
            if (i >= 0) (pass ? tb : tf)[i] = t;
        }
    }
    const double sgemm_gf = flop / median(tg, reps) * 1e-9;
    const double passes_bwd = L->x_grad ? 3.0 : 2.0; /* forward + dW (+ dX) */
    add_row(L->name, "fwd", median(tf, reps), flop, sgemm_gf, peak_gf);
    add_row(L->name, "fwd+bwd", median(tb, reps), passes_bwd * flop, sgemm_gf, peak_gf);
    dp_ctx_free(&c);
    free(tf);
    free(tb);
    free(tg);
    free(A);
    free(B);
    free(C);
    free(x);
    free(w);
    free(b);
    free(gw);
    free(gb);
    free(dy);
}

/* Max-pool 2x2/2 forward and forward + backward on a conv output of shape [N, C, H, W]. */
static void bench_pool(const char *name, int N, int C, int H, int W, int reps)
{
    dp_rng r;
    dp_rng_seed(&r, 9, DP_STREAM_USER, 0);
    int xs[4] = {N, C, H, W};
    long n = dp_shape_numel(4, xs);
    float *x = filled(n, &r, -1, 1), *dy = filled(n / 4, &r, -1, 1);
    dp_ctx c;
    dp_ctx_init(&c);
    double *tf = malloc((size_t)reps * sizeof *tf), *tb = malloc((size_t)reps * sizeof *tb);
    for (int i = -3; i < reps; i++)
        for (int pass = 0; pass < 2; pass++) {
            dp_ctx_reset(&c);
            dp_tensor *tx = dp_tensor_wrap(&c, x, 4, xs);
            tx->requires_grad = 1;
            double t0 = now_s();
            dp_tensor *y = dp_maxpool2d(&c, tx, 2, 2, 0);
            if (pass == 1) {
                y->grad = dy;
                dp_backward(&c, y);
            }
            double t = now_s() - t0;
            if (i >= 0) (pass ? tb : tf)[i] = t;
        }
    add_row(name, "fwd", median(tf, reps), 0, 0, 0);
    add_row(name, "fwd+bwd", median(tb, reps), 0, 0, 0);
    dp_ctx_free(&c);
    free(tf);
    free(tb);
    free(x);
    free(dy);
}

/* Depthwise k x k conv (groups = C, no bias) of x [N, C, H, W], forward and
 * backward (dX and dW) timed separately. */
static void bench_dw(int N, int C, int H, int W, int k, int stride, int dil, int reps)
{
    char name[32];
    snprintf(name, sizeof name, "dw%d d%d s%d %dx%dx%d", k, dil, stride, C, H, W);
    const int pad = dil * (k - 1) / 2;
    const int Ho = (H + 2 * pad - dil * (k - 1) - 1) / stride + 1, Wo = (W + 2 * pad - dil * (k - 1) - 1) / stride + 1;
    const double flop = 2.0 * k * k * N * C * Ho * Wo;
    dp_rng r;
    dp_rng_seed(&r, 13, DP_STREAM_USER, 0);
    int xs[4] = {N, C, H, W}, ws[4] = {C, 1, k, k};
    float *x = filled(dp_shape_numel(4, xs), &r, -1, 1), *w = filled(dp_shape_numel(4, ws), &r, -0.3f, 0.3f);
    float *gw = filled(dp_shape_numel(4, ws), &r, 0, 0), *dy = filled((long)N * C * Ho * Wo, &r, -1, 1);
    dp_ctx c;
    dp_ctx_init(&c);
    double *tf = malloc((size_t)reps * sizeof *tf), *tb = malloc((size_t)reps * sizeof *tb);
    for (int i = -3; i < reps; i++) {
        dp_ctx_reset(&c);
        dp_tensor *tx = dp_tensor_wrap(&c, x, 4, xs), *tw = dp_tensor_wrap(&c, w, 4, ws);
        tx->requires_grad = tw->requires_grad = 1;
        tw->grad = gw;
        double t0 = now_s();
        dp_tensor *y = dp_conv2d(&c, tx, tw, NULL, stride, pad, dil, C);
        double t1 = now_s();
        if (!y) {
            fprintf(stderr, "bench_conv: %s\n", dp_errmsg());
            exit(1);
        }
        y->grad = dy;
        if (dp_backward(&c, y) != DP_OK) {
            fprintf(stderr, "bench_conv: backward: %s\n", dp_errmsg());
            exit(1);
        }
        double t2 = now_s();
        if (i >= 0) tf[i] = t1 - t0, tb[i] = t2 - t1;
    }
    add_row(name, "fwd", median(tf, reps), flop, 0, 0);
    add_row(name, "bwd", median(tb, reps), 2 * flop, 0, 0);
    dp_ctx_free(&c);
    free(tf);
    free(tb);
    free(x);
    free(w);
    free(gw);
    free(dy);
}

/* 3x3 pad 1 max- or average pool of x [N, C, H, W], forward and backward timed separately. */
static void bench_pool3(int avg, int N, int C, int H, int W, int stride, int reps)
{
    char name[32];
    snprintf(name, sizeof name, "%s3 s%d %dx%dx%d", avg ? "avg" : "max", stride, C, H, W);
    const int Ho = (H - 1) / stride + 1, Wo = (W - 1) / stride + 1;
    const double cells = 9.0 * N * C * Ho * Wo;
    dp_rng r;
    dp_rng_seed(&r, 17, DP_STREAM_USER, 0);
    int xs[4] = {N, C, H, W};
    float *x = filled(dp_shape_numel(4, xs), &r, -1, 1), *dy = filled((long)N * C * Ho * Wo, &r, -1, 1);
    dp_ctx c;
    dp_ctx_init(&c);
    double *tf = malloc((size_t)reps * sizeof *tf), *tb = malloc((size_t)reps * sizeof *tb);
    for (int i = -3; i < reps; i++) {
        dp_ctx_reset(&c);
        dp_tensor *tx = dp_tensor_wrap(&c, x, 4, xs);
        tx->requires_grad = 1;
        double t0 = now_s();
        dp_tensor *y = avg ? dp_avgpool2d(&c, tx, 3, stride, 1) : dp_maxpool2d(&c, tx, 3, stride, 1);
        double t1 = now_s();
        if (!y) {
            fprintf(stderr, "bench_conv: %s\n", dp_errmsg());
            exit(1);
        }
        y->grad = dy;
        dp_backward(&c, y);
        double t2 = now_s();
        if (i >= 0) tf[i] = t1 - t0, tb[i] = t2 - t1;
    }
    add_row(name, "fwd", median(tf, reps), cells, 0, 0);
    add_row(name, "bwd", median(tb, reps), cells, 0, 0);
    dp_ctx_free(&c);
    free(tf);
    free(tb);
    free(x);
    free(dy);
}

static const char *filter;
static int wanted(const char *name) { return !filter || strstr(name, filter); }

int main(int argc, char **argv)
{
    int reps = 20;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--csv"))
            csv_mode = 1;
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--filter") && i + 1 < argc)
            filter = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--csv] [--reps R] [--filter SUBSTR]\n", argv[0]);
            return 2;
        }
    }
    if (reps < 1) reps = 1;
    openblas_set_num_threads(1);
    const double peak_gf = 2.0 * 1024 * 1024 * 1024 / time_sgemm(1024, 1024, 1024, 5) * 1e-9;
    const layer layers[2] = {
        {"conv1 1->32 28x28", 64, 1, 28, 28, 32, 3, 1, 0},
        {"conv2 32->64 14x14", 64, 32, 14, 14, 64, 3, 1, 1},
    };
    for (int i = 0; i < 2; i++)
        if (wanted(layers[i].name)) bench_layer(&layers[i], reps, peak_gf);
    if (wanted("maxpool 32x28x28")) bench_pool("maxpool 32x28x28", 64, 32, 28, 28, reps);
    if (wanted("maxpool 64x14x14")) bench_pool("maxpool 64x14x14", 64, 64, 14, 14, reps);

    /* the DARTS search supernet's shapes (C 8, batch 64): the depthwise convs of
     * sep_conv_3x3/5x5 (dilation 1) and dil_conv_3x3/5x5 (dilation 2), and its 3x3 pools */
    static const int shapes[3][3] = {{8, 28, 28}, {16, 14, 14}, {32, 7, 7}};
    static const int kd[4][2] = {{3, 1}, {5, 1}, {3, 2}, {5, 2}};
    char nm[32];
    for (int si = 0; si < 3; si++)
        for (int j = 0; j < 4; j++) {
            const int *sh = shapes[si];
            snprintf(nm, sizeof nm, "dw%d d%d s1 %dx%dx%d", kd[j][0], kd[j][1], sh[0], sh[1], sh[2]);
            if (wanted(nm)) bench_dw(64, sh[0], sh[1], sh[2], kd[j][0], 1, kd[j][1], reps);
        }
    for (int j = 0; j < 4; j++) {
        snprintf(nm, sizeof nm, "dw%d d%d s2 8x28x28", kd[j][0], kd[j][1]);
        if (wanted(nm)) bench_dw(64, 8, 28, 28, kd[j][0], 2, kd[j][1], reps);
    }
    for (int avg = 0; avg < 2; avg++) {
        for (int si = 0; si < 3; si++) {
            const int *sh = shapes[si];
            snprintf(nm, sizeof nm, "%s3 s1 %dx%dx%d", avg ? "avg" : "max", sh[0], sh[1], sh[2]);
            if (wanted(nm)) bench_pool3(avg, 64, sh[0], sh[1], sh[2], 1, reps);
        }
        snprintf(nm, sizeof nm, "%s3 s2 8x28x28", avg ? "avg" : "max");
        if (wanted(nm)) bench_pool3(avg, 64, 8, 28, 28, 2, reps);
    }

    if (csv_mode) {
        printf("layer,pass,ms,gflops,sgemm_gflops,frac_sgemm,peak_gflops,frac_peak\n");
        for (int i = 0; i < nrows; i++) {
            const row *r = &rows[i];
            printf("%s,%s,%.4f,%.2f,%.2f,%.3f,%.2f,%.3f\n", r->name, r->pass, r->ms, r->gflops, r->sgemm_gflops,
                   r->sgemm_gflops > 0 ? r->gflops / r->sgemm_gflops : 0, r->peak_gflops,
                   r->peak_gflops > 0 ? r->gflops / r->peak_gflops : 0);
        }
        return 0;
    }
    printf("batch 64, 1 thread, median of %d; sgemm 1024^3 = %.1f GFLOP/s\n", reps, peak_gf);
    printf("%-20s %-8s %9s %9s %12s %8s %8s\n", "layer", "pass", "ms", "GFLOP/s", "sgemm(same)", "/sgemm", "/peak");
    for (int i = 0; i < nrows; i++) {
        const row *r = &rows[i];
        if (r->sgemm_gflops > 0)
            printf("%-20s %-8s %9.3f %9.1f %12.1f %7.0f%% %7.0f%%\n", r->name, r->pass, r->ms, r->gflops,
                   r->sgemm_gflops, 100 * r->gflops / r->sgemm_gflops, 100 * r->gflops / r->peak_gflops);
        else if (r->gflops > 0)
            printf("%-20s %-8s %9.3f %9.2f %12s %8s %8s\n", r->name, r->pass, r->ms, r->gflops, "-", "-", "-");
        else
            printf("%-20s %-8s %9.3f %9s %12s %8s %8s\n", r->name, r->pass, r->ms, "-", "-", "-", "-");
    }
    return 0;
}
