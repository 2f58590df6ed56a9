/* Single-rank codec round trips (no MPI traffic): fp16, bf16, int8 encode then
 * decode within each codec's stated bound (comm.h), over sizes and value
 * distributions; NaN/Inf rejected with DP_ERR_NONFINITE; the F16C and portable
 * fp16 paths give the same bits; RNE ties. */
#include <criterion/criterion.h>
#include "timeout.h"
#include <criterion/theories.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "comm/comm_internal.h"

static float gen(int d, size_t i)
{
    uint64_t x = i * 0x9e3779b97f4a7c15ull + (uint64_t)d;
    x ^= x >> 31; x *= 0xbf58476d1ce4e5b9ull; x ^= x >> 29;
    double u = (double)(x >> 11) * 0x1.0p-53, v = (double)((x * 7) >> 11) * 0x1.0p-53;
    double g = (u - 0.5) * 4.0;
    switch (d) {
    case 0: return (float)g;                                    /* normal-ish */
    case 1: return (float)(g * 1e-30) * 1e-10f;                 /* float32 denormals */
    case 2: return (float)(g * 1e4);                            /* large (fp16-safe) */
    case 3: return 0.0f;                                        /* zeros */
    default: return (float)((u < .5 ? -1 : 1) * pow(10, 8 * v - 6)); /* mixed */
    }
}

static void roundtrip(const dp_ring_codec *c, size_t n, int d)
{
    float *x = malloc((n + 1) * 4), *y = malloc((n + 1) * 4);
    size_t cap = c->max_bytes(c, n) + 1, bytes = 0;
    void *m = malloc(cap);
    for (size_t i = 0; i < n; i++)
        x[i] = gen(d, i);
    cr_assert_eq(c->encode(c, x, n, m, cap, &bytes), DP_OK, "%s: %s", c->name, dp_errmsg());
    cr_assert_eq(bytes, c->max_bytes(c, n));
    cr_assert_eq(c->decode(c, m, bytes, y, n, 0), DP_OK);
    for (size_t i = 0; i < n; i++) {
        double err = fabs((double)x[i] - y[i]), bound;
        if (!strcmp(c->name, "fp16"))
            bound = fabs(x[i]) >= 0x1p-14 ? 0x1p-11 * fabs(x[i]) : 0x1p-25;
        else if (!strcmp(c->name, "bf16"))
            bound = fabs(x[i]) >= 0x1p-126 ? 0x1p-8 * fabs(x[i]) : 0x1p-134;
        else { /* int8: the scale of its block, plus a subnormal scale's rounding */
            size_t lo = i / 256 * 256, hi = lo + 256 < n ? lo + 256 : n;
            float amax = 0;
            for (size_t j = lo; j < hi; j++)
                amax = fmaxf(amax, fabsf(x[j]));
            bound = (amax / 127.0) * (1 + 0x1p-14) + 128 * 0x1p-149;
        }
        cr_assert(err <= bound, "%s n=%zu dist %d: x[%zu]=%a decoded %a (bound %g)", c->name,
                  n, d, i, (double)x[i], (double)y[i], bound);
    }
    /* decode with add adds the same values */
    for (size_t i = 0; i < n; i++)
        x[i] = 1.0f;
    cr_assert_eq(c->decode(c, m, bytes, x, n, 1), DP_OK);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(x[i], 1.0f + y[i]);
    /* a wrong size is refused */
    if (n)
        cr_assert_neq(c->decode(c, m, bytes - 1, y, n, 0), DP_OK);
    free(x); free(y); free(m);
}

static dp_codec_int8_state g_i8s;
static dp_ring_codec g_i8;

TheoryDataPoints(codec, roundtrip) = {
    DataPoints(int, 0, 1, 2),
    DataPoints(size_t, 0, 1, 255, 256, 257, 100000),
    DataPoints(int, 0, 1, 2, 3, 4),
};

Theory((int k, size_t n, int d), codec, roundtrip, .timeout = DP_TIMEOUT(60))
{
    dp_codec_int8_init(&g_i8, &g_i8s, 11);
    const dp_ring_codec *c = 0 == k ? &dp_ring_codec_fp16 : 1 == k ? &dp_ring_codec_bf16 : &g_i8;
    roundtrip(c, n, d);
}

Test(codec, nonfinite_rejected, .timeout = DP_TIMEOUT(10))
{
    dp_codec_int8_init(&g_i8, &g_i8s, 1);
    const dp_ring_codec *cs[] = {&dp_ring_codec_fp16, &dp_ring_codec_bf16, &g_i8};
    const float bad[] = {NAN, INFINITY, -INFINITY};
    float x[300];
    unsigned char m[2000];
    for (int k = 0; k < 3; k++)
        for (int b = 0; b < 3; b++) {
            for (int i = 0; i < 300; i++)
                x[i] = 1.0f;
            x[123] = bad[b];
            size_t bytes;
            cr_assert_eq(cs[k]->encode(cs[k], x, 300, m, sizeof m, &bytes), DP_ERR_NONFINITE);
            cr_assert(strstr(dp_errmsg(), "index 123"), "%s", dp_errmsg());
        }
    x[123] = 65520.0f; /* rounds to Inf in fp16 */
    size_t bytes;
    cr_assert_eq(dp_ring_codec_fp16.encode(&dp_ring_codec_fp16, x, 300, m, sizeof m, &bytes),
                 DP_ERR_NONFINITE);
    x[123] = 65519.0f; /* rounds to 65504 */
    cr_assert_eq(dp_ring_codec_fp16.encode(&dp_ring_codec_fp16, x, 300, m, sizeof m, &bytes),
                 DP_OK);
}

Test(codec, fp16_exhaustive_and_paths, .timeout = DP_TIMEOUT(60))
{
    /* every half decodes and re-encodes to itself (NaNs to a quiet NaN) */
    for (uint32_t h = 0; h < 65536; h++) {
        float f = dp_f32_from_f16((uint16_t)h);
        if (isnan(f))
            continue;
        cr_assert_eq(dp_f16_from_f32(f), h, "half %04x", h);
    }
    /* ties to even: 1 + 2^-11 is halfway between 1 and 1 + 2^-10 */
    cr_assert_eq(dp_f16_from_f32(1.0f + 0x1p-11f), 0x3C00);
    cr_assert_eq(dp_f16_from_f32(1.0f + 3 * 0x1p-11f), 0x3C02);
    cr_assert_eq(dp_bf16_from_f32(1.0f + 0x1p-8f), 0x3F80);
    cr_assert_eq(dp_bf16_from_f32(1.0f + 3 * 0x1p-8f), 0x3F82);
    cr_assert_eq(dp_f16_from_f32(0x1p-25f), 0); /* tie to even (zero) */
    cr_assert_eq(dp_f16_from_f32(0x1.8p-25f), 1);
    /* portable and F16C (where present) give the same bits on 2^20 floats */
    enum { N = 1 << 20 };
    float *x = malloc(N * 4);
    uint16_t *a = malloc(N * 2), *b = malloc(N * 2);
    for (uint32_t i = 0; i < N; i++) {
        uint32_t u = i * 0x9E3779B9u;
        if ((u & 0x7F800000u) == 0x7F800000u)
            u &= 0xBFFFFFFFu; /* finite only */
        memcpy(&x[i], &u, 4);
    }
    dp_codec_f16c_force(0);
    dp_f16_encode_n(x, a, N);
    dp_codec_f16c_force(-1); /* detect */
    dp_f16_encode_n(x, b, N);
    cr_assert_eq(memcmp(a, b, N * 2), 0);
    free(x); free(a); free(b);
}

/* Stochastic rounding is unbiased: 0.3 in a block of scale 1/127 sits 0.1 of a quantum above
 * 38 s, so it goes out as 39 s one time in ten; the mean over 255 values x 400 messages (fresh
 * random key each) is 0.3 within 5 standard deviations (3.7e-5), where rounding to nearest
 * or down is 0.1 s = 7.9e-4 off. */
Test(codec, int8_rounding_is_unbiased, .timeout = DP_TIMEOUT(30))
{
    dp_codec_int8_init(&g_i8, &g_i8s, 5);
    float x[256], y[256];
    unsigned char m[2000];
    for (int i = 0; i < 256; i++)
        x[i] = 0.3f;
    x[0] = 1.0f;
    double sum = 0;
    long n = 0;
    for (int k = 0; k < 400; k++) {
        size_t bytes;
        cr_assert_eq(g_i8.encode(&g_i8, x, 256, m, sizeof m, &bytes), DP_OK);
        cr_assert_eq(g_i8.decode(&g_i8, m, bytes, y, 256, 0), DP_OK);
        for (int i = 1; i < 256; i++, n++)
            sum += y[i];
    }
    const double mean = sum / (double)n;
    cr_assert(fabs(mean - 0.3) < 3.7e-5, "mean of the decoded 0.3s: %.7f", mean);
}

/* The AVX2 quantiser (where the CPU has it) and the portable one give the same bits. */
Test(codec, int8_paths_agree, .timeout = DP_TIMEOUT(30))
{
    enum { N = 100003 };
    float *x = malloc(N * 4);
    size_t cap = N + 4 * (N / 256 + 1), bytes_a, bytes_b;
    unsigned char *a = malloc(cap), *b = malloc(cap);
    for (int d = 0; d < 5; d++) {
        for (size_t i = 0; i < N; i++)
            x[i] = gen(d, i);
        dp_codec_int8_force_path(0);
        dp_codec_int8_init(&g_i8, &g_i8s, 7);
        cr_assert_eq(g_i8.encode(&g_i8, x, N, a, cap, &bytes_a), DP_OK);
        dp_codec_int8_force_path(-1);
        dp_codec_int8_init(&g_i8, &g_i8s, 7);
        cr_assert_eq(g_i8.encode(&g_i8, x, N, b, cap, &bytes_b), DP_OK);
        cr_assert_eq(bytes_a, bytes_b);
        cr_assert_eq(memcmp(a, b, bytes_a), 0, "dist %d: the paths differ", d);
    }
    free(x); free(a); free(b);
}
