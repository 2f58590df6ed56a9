/* The AVX-512 direct convolution kernels (src/core/conv_direct.c) through
 * dp_conv2d: forward y and input gradient dx with the direct path forced on,
 * against a double-precision reference and against the GEMM path (forced
 * off), over a grid of shapes that exercises every channel blocking (16, 32,
 * 48, 64 channels: 1..4 vectors per block), row tails (widths 7, 8, 13, 14,
 * 28: overlapping last blocks), strides 1 and 2, pads 0..2, 3x3 / 5x5 / 1x3
 * kernels, bias or not, 1..3 images; plus central finite-difference gradient
 * checks with the direct path on. Skipped on CPUs without AVX-512F.
 *
 * Tolerances: |v - ref| <= 1e-5 (1 + sum of |terms|) for the double
 * reference (float rounding of sums of up to 1600 terms in any order), and
 * max |direct - gemm| <= 1e-5 max |gemm| between the two float paths. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conv_ref.h"
#include "core/conv_direct.h"
#include "core/tape.h"
#include "gradcheck.h"
#include "timeout.h"

typedef struct dcase {
    int N, C, O, H, W, kh, kw, stride, pad, bias;
} dcase;

static dp_conv_geom geom_of(const dcase *q)
{
    return conv_ref_geom(q->N, q->C, q->H, q->W, q->O, q->kh, q->kw, q->stride, q->pad);
}

static void skip_without_avx512(void)
{
    dp_direct_force(1);
    if (!dp_direct_available()) {
        dp_direct_force(-1);
        cr_skip_test("the CPU has no AVX-512F");
    }
}

/* ---- the case grid ---- */

#define MAX_CASES 160
static dcase cases[MAX_CASES];
static int n_cases;

/* Hand-picked shapes first (the ResNet-20 layers, every blocking and tail),
 * then a deterministic walk over the grid, skipping the ones whose double
 * reference would be slow. */
static void fill_cases(void)
{
    if (n_cases) return;
    static const dcase fixed[] = {
        /* N  C   O   H   W  kh kw s p b */
        {2, 16, 16, 28, 28, 3, 3, 1, 1, 1}, /* ResNet-20 stage 1: 28-pixel blocks */
        {2, 32, 32, 14, 14, 3, 3, 1, 1, 0}, /* stage 2: 2 vectors x 14 */
        {2, 64, 64, 7, 7, 3, 3, 1, 1, 1},   /* stage 3: 4 vectors x 7 */
        {2, 16, 32, 28, 28, 3, 3, 2, 1, 0}, /* the stride-2 transitions */
        {1, 32, 64, 14, 14, 3, 3, 2, 1, 1},
        {3, 48, 48, 13, 13, 3, 3, 1, 1, 1}, /* 3 vectors x 9 px: 13 = 9 + an overlapping 9 */
        {1, 64, 64, 13, 8, 3, 3, 1, 1, 0},  /* 13 = 7 + overlapping 7 */
        {2, 16, 16, 7, 30, 3, 3, 1, 1, 1},  /* 30 > 28: two blocks of 15 */
        {1, 64, 80, 8, 8, 3, 3, 1, 0, 1},   /* 5 vectors: blocks of 3 + 2 */
        {1, 16, 32, 14, 13, 1, 3, 1, 1, 1}, /* 1x3, pad 1: Ho = H + 2; dx crops dy's first row */
        {1, 16, 16, 9, 11, 5, 5, 3, 1, 1},  /* stride 3: 9 phases of dx, sub-kernels 2x2 .. 1x1 */
        {2, 32, 16, 8, 9, 3, 3, 2, 0, 0},   /* stride 2, no pad: dx's last row/column get nothing */
        {1, 16, 16, 5, 5, 3, 3, 2, 2, 1},   /* stride 2, pad 2 past the kernel's reach */
        {2, 32, 16, 8, 7, 5, 5, 1, 2, 0},   /* 5x5 */
        {1, 16, 16, 13, 14, 5, 5, 2, 2, 1},
        {1, 16, 48, 3, 3, 3, 3, 1, 2, 1},   /* pad 2 on 3x3: output larger than input, dx padding 0 */
    };
    static const int ch[] = {16, 32, 48, 64}, hw[] = {7, 8, 13, 14, 28};
    static const int ks[][2] = {{3, 3}, {5, 5}, {1, 3}};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) cases[n_cases++] = fixed[i];
    unsigned r = 12345;
    while (n_cases < 96) {
        r = r * 1103515245u + 12345u;
        unsigned v = r >> 8;
        dcase q;
        q.C = ch[v % 4], v /= 4;
        q.O = ch[v % 4], v /= 4;
        q.H = hw[v % 5], v /= 5;
        q.W = hw[v % 5], v /= 5;
        q.kh = ks[v % 3][0], q.kw = ks[v % 3][1], v /= 3;
        q.stride = 1 + v % 2, v /= 2;
        q.pad = v % 3, v /= 3;
        q.bias = v % 2, v /= 2;
        q.N = 1 + v % 3;
        if (q.H + 2 * q.pad < q.kh || q.W + 2 * q.pad < q.kw) continue;
        const dp_conv_geom g = geom_of(&q);
        if ((double)q.N * q.C * q.O * g.P * q.kh * q.kw > 12e6) continue;
        cases[n_cases++] = q;
    }
}

/* ---- reference and runs ---- */

/* y and its magnitude (sum of |terms|), dx and its magnitude, in double. */
static void reference(const dcase *q, const float *x, const float *w, const float *b, const float *dy, double *y,
                      double *ym, double *dx, double *dxm)
{
    const dp_conv_geom g = geom_of(q);
    conv_ref(&g, x, w, q->bias ? b : NULL, dy, &(conv_ref_out){.y = y, .ym = ym, .dx = dx, .dxm = dxm});
}

/* y and dx (dx starts from dx0: the kernels accumulate) of one dp_conv2d
 * forward + backward with the direct kernels forced on (1), off (0) or left
 * to DP_CONV and the CPU (-1); dw and db too (from zero) where not NULL. */
static void run_grads(const dcase *q, int direct, const float *x, const float *w, const float *b, const float *dy,
                      const float *dx0, float *y, float *dx, float *dw, float *db)
{
    int xs[4] = {q->N, q->C, q->H, q->W}, ws[4] = {q->O, q->C, q->kh, q->kw}, bs[1] = {q->O};
    dp_direct_force(direct);
    dp_ctx c;
    dp_ctx_init(&c);
    dp_tensor *tx = dp_tensor_wrap(&c, (float *)x, 4, xs), *tw = dp_tensor_wrap(&c, (float *)w, 4, ws);
    dp_tensor *tb = q->bias ? dp_tensor_wrap(&c, (float *)b, 1, bs) : NULL;
    memcpy(dx, dx0, (size_t)tx->n * sizeof *dx);
    tx->grad = dx;
    tx->requires_grad = 1;
    if (dw) {
        memset(dw, 0, (size_t)tw->n * sizeof *dw);
        tw->grad = dw;
        tw->requires_grad = 1;
    }
    if (db && tb) {
        memset(db, 0, (size_t)tb->n * sizeof *db);
        tb->grad = db;
        tb->requires_grad = 1;
    }
    dp_tensor *ty = dp_conv2d(&c, tx, tw, tb, q->stride, q->pad, 1, 1);
    cr_assert_not_null(ty, "%s", dp_errmsg());
    memcpy(y, ty->data, (size_t)ty->n * sizeof *y);
    memcpy(dp_grad(&c, ty), dy, (size_t)ty->n * sizeof *dy);
    cr_assert_eq(dp_backward(&c, ty), DP_OK, "%s", dp_errmsg());
    dp_ctx_free(&c);
    dp_direct_force(-1);
}

static void run(const dcase *q, int direct, const float *x, const float *w, const float *b, const float *dy,
                const float *dx0, float *y, float *dx)
{
    run_grads(q, direct, x, w, b, dy, dx0, y, dx, NULL, NULL);
}

static void check_ref(const char *what, const char *name, const float *v, const double *ref, const double *mag, long n)
{
    for (long i = 0; i < n; i++)
        cr_assert(fabs(v[i] - ref[i]) <= 1e-5 * (1.0 + mag[i]), "%s %s elem %ld: %.9g vs %.9g", name, what, i, v[i],
                  ref[i]);
}

static void check_paths(const char *what, const char *name, const float *a, const float *gemm, long n)
{
    double worst = 0.0, scale = 0.0;
    for (long i = 0; i < n; i++) {
        worst = fmax(worst, fabs((double)a[i] - gemm[i]));
        scale = fmax(scale, fabs(gemm[i]));
    }
    cr_assert(worst <= 1e-5 * scale, "%s %s: direct and gemm differ by %g (scale %g)", name, what, worst, scale);
}

ParameterizedTestParameters(conv_direct, matches_reference_and_gemm)
{
    fill_cases();
    return cr_make_param_array(dcase, cases, (size_t)n_cases);
}

ParameterizedTest(dcase *q, conv_direct, matches_reference_and_gemm, .timeout = DP_TIMEOUT(60))
{
    skip_without_avx512();
    const dp_conv_geom g = geom_of(q);
    char name[128];
    snprintf(name, sizeof name, "N%d C%d O%d %dx%d k%dx%d s%d p%d b%d", q->N, q->C, q->O, q->H, q->W, q->kh, q->kw,
             q->stride, q->pad, q->bias);
    /* the shapes this test is for must take the direct kernels */
    cr_assert(dp_direct_fits_forward(&g), "%s: forward does not fit the direct kernel", name);
    cr_assert(dp_direct_fits_dx(&g), "%s: dx does not fit the direct kernel", name);

    const long nx = (long)q->N * q->C * q->H * q->W, nw = (long)q->O * q->C * q->kh * q->kw;
    const long ny = (long)q->N * q->O * g.P;
    float *x = malloc(nx * sizeof *x), *w = malloc(nw * sizeof *w), *b = malloc(q->O * sizeof *b);
    float *dy = malloc(ny * sizeof *dy), *dx0 = malloc(nx * sizeof *dx0);
    float *y1 = malloc(ny * sizeof *y1), *y0 = malloc(ny * sizeof *y0);
    float *dx1 = malloc(nx * sizeof *dx1), *dxg = malloc(nx * sizeof *dxg);
    double *yr = malloc(ny * sizeof *yr), *ym = malloc(ny * sizeof *ym);
    double *dxr = malloc(nx * sizeof *dxr), *dxm = malloc(nx * sizeof *dxm);
    dp_rng r;
    dp_rng_seed(&r, 77, DP_STREAM_USER, 0);
    dp_init_uniform(&r, x, nx, -1, 1);
    dp_init_uniform(&r, w, nw, -0.5f, 0.5f);
    dp_init_uniform(&r, b, q->O, -1, 1);
    dp_init_uniform(&r, dy, ny, -1, 1);
    dp_init_uniform(&r, dx0, nx, -1, 1); /* dx accumulates: start from something */

    reference(q, x, w, b, dy, yr, ym, dxr, dxm);
    for (long i = 0; i < nx; i++) dxr[i] += dx0[i], dxm[i] += fabs(dx0[i]);
    run(q, 1, x, w, b, dy, dx0, y1, dx1);
    run(q, 0, x, w, b, dy, dx0, y0, dxg);
    check_ref("y (direct)", name, y1, yr, ym, ny);
    check_ref("dx (direct)", name, dx1, dxr, dxm, nx);
    check_ref("y (gemm)", name, y0, yr, ym, ny);
    check_paths("y", name, y1, y0, ny);
    check_paths("dx", name, dx1, dxg, nx);

    /* the kernels called directly with scratch of exactly the size they ask
     * for (the sanitized build sees any access past it): the op's bits */
    const size_t fs = dp_direct_forward_scratch(&g), xs = dp_direct_dx_scratch(&g);
    cr_assert(fs % 64 == 0 && xs % 64 == 0, "%s: scratch sizes %zu, %zu", name, fs, xs);
    float *sf = aligned_alloc(64, fs), *sx = aligned_alloc(64, xs), *y2 = malloc(ny * sizeof *y2);
    float *dx2 = malloc(nx * sizeof *dx2);
    memcpy(dx2, dx0, nx * sizeof *dx2);
    dp_direct_force(1);
    dp_direct_forward(y2, x, w, q->bias ? b : NULL, &g, sf);
    dp_direct_dx(dx2, dy, w, &g, sx);
    dp_direct_force(-1);
    cr_assert(!memcmp(y2, y1, ny * sizeof *y2), "%s: direct forward differs from the op's", name);
    cr_assert(!memcmp(dx2, dx1, nx * sizeof *dx2), "%s: direct dx differs from the op's", name);
    free(sf), free(sx), free(y2), free(dx2);
    free(x), free(w), free(b), free(dy), free(dx0), free(y1), free(y0), free(dx1), free(dxg);
    free(yr), free(ym), free(dxr), free(dxm);
}

/* ---- gradients against central finite differences, direct path on ---- */

static dp_tensor *build(dp_ctx *c, dp_tensor **in, void *arg)
{
    const dcase *q = arg;
    return dp_conv2d(c, in[0], in[1], q->bias ? in[2] : NULL, q->stride, q->pad, 1, 1);
}

static const dcase grad_cases[] = {
    {2, 16, 16, 5, 6, 3, 3, 1, 1, 1}, /* forward and dx direct */
    {1, 16, 32, 6, 5, 3, 3, 2, 1, 0}, /* stride 2: dx by phases */
    {1, 32, 16, 4, 9, 1, 3, 1, 0, 1}, /* 1x3 */
};

ParameterizedTestParameters(conv_direct, gradcheck)
{
    return cr_make_param_array(dcase, grad_cases, sizeof grad_cases / sizeof grad_cases[0]);
}

ParameterizedTest(dcase *q, conv_direct, gradcheck, .timeout = DP_TIMEOUT(120))
{
    skip_without_avx512();
    const dp_conv_geom g = geom_of(q);
    cr_assert(dp_direct_fits_forward(&g));
    gc_input ins[3] = {
        {.ndim = 4, .shape = {q->N, q->C, q->H, q->W}, .lo = -1, .hi = 1},
        {.ndim = 4, .shape = {q->O, q->C, q->kh, q->kw}, .lo = -0.5f, .hi = 0.5f},
        {.ndim = 1, .shape = {q->O}, .lo = -0.5f, .hi = 0.5f},
    };
    char name[96];
    snprintf(name, sizeof name, "direct N%d C%d O%d %dx%d k%dx%d s%d p%d", q->N, q->C, q->O, q->H, q->W, q->kh,
             q->kw, q->stride, q->pad);
    gc_opts o = gc_defaults();
    o.max_checks = 96;
    gc_result res;
    dp_direct_force(1);
    const int ok = gc_check(name, q->bias ? 3 : 2, ins, build, (void *)q, &o, &res);
    dp_direct_force(-1);
    cr_assert(ok, "%s: worst %s", name, res.worst);
    cr_assert_gt(res.checked, 0);
}

/* DP_CONV=gemm turns the kernels off; forcing overrides it (the test hook). */
Test(conv_direct, dp_conv_gemm_and_force, .timeout = DP_TIMEOUT(10))
{
    skip_without_avx512();
    dp_direct_force(0);
    cr_assert_eq(dp_direct_available(), 0);
    dp_direct_force(1);
    cr_assert_eq(dp_direct_available(), 1);
    dp_direct_force(-1);
}

/* DP_CONV=gemm must keep every pass of the op on the GEMM path, dW and db
 * included (same_bits pins that path's bits): with it set, y, dx, dw and db
 * are the bits of the path forced off. The shape takes all three direct
 * kernels, and their bits differ from GEMM's in every pass, so a pass that
 * went direct under DP_CONV=gemm would show. */
Test(conv_direct, dp_conv_gemm_keeps_every_pass_on_gemm, .timeout = DP_TIMEOUT(30))
{
    skip_without_avx512();
    const dcase q = {2, 32, 32, 14, 14, 3, 3, 1, 1, 1};
    const dp_conv_geom g = geom_of(&q);
    cr_assert(dp_direct_fits_forward(&g) && dp_direct_fits_dx(&g) && dp_direct_fits_dw(&g));
    const long nx = (long)q.N * q.C * q.H * q.W, nw = (long)q.O * q.C * q.kh * q.kw, ny = (long)q.N * q.O * g.P;
    enum { DIRECT, GEMM, ENV };
    float *x = malloc(nx * sizeof *x), *w = malloc(nw * sizeof *w), *b = malloc(q.O * sizeof *b);
    float *dy = malloc(ny * sizeof *dy), *dx0 = malloc(nx * sizeof *dx0);
    float *y[3], *dx[3], *dw[3], *db[3];
    for (int k = 0; k < 3; k++) {
        y[k] = malloc(ny * sizeof *y[k]), dx[k] = malloc(nx * sizeof *dx[k]);
        dw[k] = malloc(nw * sizeof *dw[k]), db[k] = malloc(q.O * sizeof *db[k]);
    }
    dp_rng r;
    dp_rng_seed(&r, 78, DP_STREAM_USER, 0);
    dp_init_uniform(&r, x, nx, -1, 1);
    dp_init_uniform(&r, w, nw, -0.5f, 0.5f);
    dp_init_uniform(&r, b, q.O, -1, 1);
    dp_init_uniform(&r, dy, ny, -1, 1);
    dp_init_uniform(&r, dx0, nx, -1, 1);

    run_grads(&q, 1, x, w, b, dy, dx0, y[DIRECT], dx[DIRECT], dw[DIRECT], db[DIRECT]);
    run_grads(&q, 0, x, w, b, dy, dx0, y[GEMM], dx[GEMM], dw[GEMM], db[GEMM]);
    const char *old = getenv("DP_CONV");
    char *saved = old ? strdup(old) : NULL;
    setenv("DP_CONV", "gemm", 1);
    dp_direct_force(-1); /* DP_CONV is read again */
    cr_assert_eq(dp_direct_available(), 0, "DP_CONV=gemm leaves the direct kernels on");
    run_grads(&q, -1, x, w, b, dy, dx0, y[ENV], dx[ENV], dw[ENV], db[ENV]);
    if (saved)
        setenv("DP_CONV", saved, 1);
    else
        unsetenv("DP_CONV");
    free(saved);
    dp_direct_force(-1);

    static const char *const what[4] = {"y", "dx", "dw", "db"};
    const long n[4] = {ny, nx, nw, q.O};
    float **v[4] = {y, dx, dw, db};
    for (int k = 0; k < 4; k++) {
        cr_assert(memcmp(v[k][DIRECT], v[k][GEMM], n[k] * sizeof(float)),
                  "%s: direct and gemm give the same bits; the test cannot tell the paths apart", what[k]);
        cr_assert(!memcmp(v[k][ENV], v[k][GEMM], n[k] * sizeof(float)),
                  "%s under DP_CONV=gemm is not the GEMM path's", what[k]);
    }
    for (int k = 0; k < 3; k++) free(y[k]), free(dx[k]), free(dw[k]), free(db[k]);
    free(x), free(w), free(b), free(dy), free(dx0);
}
