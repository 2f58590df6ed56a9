/* dp_direct_dw (src/core/conv_direct_dw.c, AVX-512 weight gradient) against a
 * naive loop in double, over ResNet-20's shapes and a grid of channel counts
 * (C 3..64, O 16..64: one, two and four 16-lane vectors), odd and even sizes,
 * 3x3 / 5x5 / 2x2 / 1x3 / 3x1 / 1x1 kernels, stride 1 and 2, pad 0..2, batch
 * 1..3, with and without db, and a scratch off 64-byte alignment.
 *
 * dw and db start non-zero (the kernel adds); the check is
 *   |dw - (dw0 + ref)| <= 1e-5 |ref|   (2-norms over the whole tensor)
 * and the same for db: the kernel sums P pixels per image in float and the
 * images in float, ~sqrt(P) ulps relative, far below 1e-5. A wrong tap, edge or
 * tail moves whole terms and fails by orders of magnitude (the odd widths put
 * a partial 16-pixel tile and windows at both borders in every case).
 * Sentinels after dw, db and the scratch catch writes past their ends; the
 * scratch starts as NaN, so reading a part the kernel did not write shows.
 * Skipped on CPUs without AVX-512F (dp_direct_fits_dw is 0 there). */
#include <criterion/criterion.h>
#include "timeout.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conv_ref.h"
#include "core/conv_direct.h"
#include "core/conv_direct_util.h"


static unsigned long long lcg_state;
static float urand(void) /* uniform in [-1, 1) */
{
    lcg_state = lcg_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((double)(lcg_state >> 40) / (double)(1ULL << 24) * 2.0 - 1.0);
}

#define SENTINEL 12345.0f
#define GUARD 64 /* floats of sentinel after each output and the scratch */

static float *alloc_floats(size_t n)
{
    float *p = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
    cr_assert_not_null(p);
    return p;
}

static double rel_err(const float *got, const float *init, const double *ref, long n)
{
    double num = 0, den = 0;
    for (long i = 0; i < n; i++) {
        const double e = (double)got[i] - ((double)init[i] + ref[i]);
        num += e * e;
        den += ref[i] * ref[i];
    }
    return sqrt(num) / (sqrt(den) + 1e-300);
}

/* shift: floats by which the scratch is moved off 64-byte alignment */
static void check_case_at(int N, int C, int H, int W, int O, int kh, int kw, int stride, int pad, int with_db,
                          int shift)
{
    const dp_conv_geom g = conv_ref_geom(N, C, H, W, O, kh, kw, stride, pad);
    cr_assert(g.Ho > 0 && g.Wo > 0);
    char name[160];
    snprintf(name, sizeof name, "N%d C%d %dx%d O%d k%dx%d s%d p%d db%d", N, C, H, W, O, kh, kw, stride, pad, with_db);
    cr_assert(dp_direct_fits_dw(&g), "%s: expected to fit", name);

    const long nx = (long)N * C * H * W, ny = (long)N * O * g.P, nw = (long)O * C * kh * kw;
    float *x = alloc_floats((size_t)nx), *dy = alloc_floats((size_t)ny);
    float *dw = alloc_floats((size_t)(nw + GUARD)), *dw0 = alloc_floats((size_t)nw);
    float *db = alloc_floats((size_t)(O + GUARD)), *db0 = alloc_floats((size_t)O);
    const size_t sbytes = dp_direct_dw_scratch(&g), sfl = sbytes / sizeof(float);
    cr_assert(sbytes % 64 == 0, "%s: scratch %zu bytes, not a multiple of 64", name, sbytes);
    float *scratch_mem = alloc_floats(sfl + GUARD + (size_t)shift), *scratch = scratch_mem + shift;
    double *rw = malloc((size_t)nw * sizeof(double)), *rb = malloc((size_t)O * sizeof(double));
    cr_assert(rw && rb);

    for (long i = 0; i < nx; i++) x[i] = urand();
    for (long i = 0; i < ny; i++) dy[i] = urand();
    for (long i = 0; i < nw; i++) dw0[i] = dw[i] = urand();
    for (int o = 0; o < O; o++) db0[o] = db[o] = urand();
    for (int i = 0; i < GUARD; i++) dw[nw + i] = db[O + i] = scratch[sfl + i] = SENTINEL;
    for (size_t i = 0; i < sfl; i++) scratch[i] = NAN; /* the kernel must not read scratch it did not write */

    conv_ref(&g, x, NULL, NULL, dy, &(conv_ref_out){.dw = rw, .db = rb});

    dp_direct_dw(dw, with_db ? db : NULL, dy, x, &g, scratch);

    const double ew = rel_err(dw, dw0, rw, nw);
    cr_assert(ew <= 1e-5, "%s: dw relative error %.3g", name, ew);
    if (with_db) {
        const double eb = rel_err(db, db0, rb, O);
        cr_assert(eb <= 1e-5, "%s: db relative error %.3g", name, eb);
    } else {
        cr_assert(!memcmp(db, db0, (size_t)O * sizeof(float)), "%s: db changed although NULL was passed", name);
    }
    for (int i = 0; i < GUARD; i++) {
        cr_assert(dw[nw + i] == SENTINEL, "%s: write past the end of dw", name);
        cr_assert(db[O + i] == SENTINEL, "%s: write past the end of db", name);
        cr_assert(scratch[sfl + i] == SENTINEL, "%s: write past the end of the scratch", name);
    }
    free(x), free(dy), free(dw), free(dw0), free(db), free(db0), free(scratch_mem), free(rw), free(rb);
}

static void check_case(int N, int C, int H, int W, int O, int kh, int kw, int stride, int pad, int with_db)
{
    check_case_at(N, C, H, W, O, kh, kw, stride, pad, with_db, 0);
}

#define NEED_AVX512F()                                                                                                 \
    do {                                                                                                               \
        if (!dp_direct_cpu_ok()) cr_skip_test("no AVX-512F on this CPU");                                              \
    } while (0)

Test(conv_direct_dw, resnet20_shapes, .timeout = DP_TIMEOUT(120))
{
    NEED_AVX512F();
    lcg_state = 1;
    check_case(2, 16, 28, 28, 16, 3, 3, 1, 1, 1);
    check_case(2, 32, 14, 14, 32, 3, 3, 1, 1, 1);
    check_case(2, 64, 7, 7, 64, 3, 3, 1, 1, 1);
    check_case(2, 16, 28, 28, 32, 3, 3, 2, 1, 1); /* the stride-2 stage entries */
    check_case(2, 32, 14, 14, 64, 3, 3, 2, 1, 0);
}

/* Every channel pair on a 13x7 input: odd sizes, a 3-pixel last tile at P = 91,
 * and segment lists that do not divide into whole blocks (C = 3: 9 segments). */
Test(conv_direct_dw, channel_grid, .timeout = DP_TIMEOUT(120))
{
    NEED_AVX512F();
    lcg_state = 2;
    const int Cs[] = {3, 8, 16, 32, 48, 64}, Os[] = {16, 32, 48, 64};
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 4; j++) check_case(1 + (i + j) % 3, Cs[i], 13, 7, Os[j], 3, 3, 1, 1, (i + j) % 2);
}

/* Kernel x stride x pad x size, each with channel counts and batch drawn in
 * turn so that every kernel kind meets every O vector width. */
Test(conv_direct_dw, shape_grid, .timeout = DP_TIMEOUT(300))
{
    NEED_AVX512F();
    lcg_state = 3;
    const int ks[][2] = {{3, 3}, {5, 5}, {1, 3}, {1, 1}, {3, 1}, {2, 2}};
    const int hw[][2] = {{7, 7}, {8, 13}, {13, 8}, {14, 14}, {28, 28}};
    const int Cs[] = {8, 16, 32, 48, 64}, Os[] = {16, 32, 48, 64};
    int i = 0;
    for (int k = 0; k < 6; k++)
        for (int s = 1; s <= 2; s++)
            for (int p = 0; p <= 2; p++)
                for (int h = 0; h < 5; h++, i++) {
                    const int kh = ks[k][0], kw = ks[k][1];
                    int C = Cs[i % 5];
                    if (C * kh * kw <= 12) C = 16; /* 1x1 with C = 8: conv_smallk.c's */
                    const int O = Os[(i / 5 + i) % 4];
                    const int N = 1 + i % 3;
                    if (hw[h][1] == 28 && C * O > 1024) continue; /* keep the reference loop quick */
                    check_case(N, C, hw[h][0], hw[h][1], O, kh, kw, s, p, i % 2);
                }
}

/* The arena hands out 64-byte aligned blocks, but the kernel must not depend on it. */
Test(conv_direct_dw, unaligned_scratch, .timeout = DP_TIMEOUT(60))
{
    NEED_AVX512F();
    lcg_state = 4;
    check_case_at(2, 16, 13, 13, 32, 3, 3, 1, 1, 1, 1);
    check_case_at(1, 16, 9, 11, 64, 3, 3, 2, 1, 1, 3);
}

Test(conv_direct_dw, fits_refuses)
{
    dp_conv_geom g = conv_ref_geom(2, 16, 14, 14, 32, 3, 3, 1, 1);
    cr_assert_eq(dp_direct_fits_dw(&g), dp_direct_cpu_ok());
    g = conv_ref_geom(2, 1, 28, 28, 16, 3, 3, 1, 1); /* K = 9: the small-K kernels' */
    cr_assert_eq(dp_direct_fits_dw(&g), 0);
    g = conv_ref_geom(2, 16, 14, 14, 24, 3, 3, 1, 1); /* O not a multiple of 16 */
    cr_assert_eq(dp_direct_fits_dw(&g), 0);
    g = conv_ref_geom(2, 16, 14, 14, 32, 3, 3, 1, 1);
    g.groups = 2, g.Cg = 8, g.Og = 16, g.K = 72;
    cr_assert_eq(dp_direct_fits_dw(&g), 0);
    g = conv_ref_geom(2, 16, 14, 14, 32, 3, 3, 1, 2);
    g.dil = 2, g.Ho = g.Wo = 14, g.P = 196;
    cr_assert_eq(dp_direct_fits_dw(&g), 0);
}
