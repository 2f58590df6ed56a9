/* Multi-rank tests of the ring with codecs (fp16, bf16, int8; wire zstd on/off):
 * against the exact sum computed in double over all ranks, the error-feedback
 * invariant, bit-identical results on every rank, NaN/Inf rejection on every
 * rank without a hang, the engine's codec path, and wire-stage compression.
 *
 * Run by ctest under mpiexec at 1..4 ranks ("--- comm ---" in CMakeLists.txt).
 * Plain C like test_comm_mpi.c: failures are counted per rank, summed, and any
 * failure ends with MPI_Abort(1). Rank 0 ends with "codec tests: N passed, 0 failed".
 *
 * Bounds. With S_i = sum over ranks of |x_i| (after / P for AVG), every partial
 * sum a rank encodes has magnitude <= S_i, each rank encodes element i once, and
 * the float32 additions of the ring add at most P eps S_i:
 *   fp16/bf16:  |result - exact| <= P (u S_i + tiny) + P eps S_i,
 *               u = 2^-11 / 2^-8, tiny = 2^-25 / 2^-134 (subnormal rounding);
 *   int8:       |result - exact| <= P (max_{j in block} S_j / 127)(1 + 2^-14) + P eps S_i. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "comm/comm_internal.h"
#include "dptrain/comm.h"
#include "mpi_check.h"





enum { D_NORMAL, D_TINY, D_LARGE, D_ZEROS, D_MIXED, D_NDIST };
static const char *k_dist[] = {"normal", "tiny", "large", "zeros", "mixed"};

/* Value i of rank r under distribution d (fp16 range respected for "large"). */
static float gen(int d, int r, size_t i, uint64_t seed)
{
    uint64_t k = seed * 1000003u + (uint64_t)r * 0x100000001ull + i;
    double u1 = unif(k), u2 = unif(k ^ 0xabcdefull);
    double g = sqrt(-2.0 * log(u1 + 1e-300)) * cos(6.283185307179586 * u2);
    switch (d) {
    case D_NORMAL: return (float)g;
    case D_TINY: return (float)(g * 1e-6) * 1e-35f; /* float32 denormals */
    case D_LARGE: return (float)(g * 1000.0);
    case D_ZEROS: return 0.0f;
    default: return (float)((u1 < 0.5 ? -1.0 : 1.0) * pow(10.0, 8.0 * u2 - 6.0));
    }
}

static void *xalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (NULL == p)
        MPI_Abort(MPI_COMM_WORLD, 2);
    return p;
}

/* FNV-1a of the bytes, equal on every rank iff min == max over ranks. */
static int same_on_all_ranks(const float *x, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    const unsigned char *b = (const unsigned char *)x;
    for (size_t i = 0; i < n * sizeof(float); i++)
        h = (h ^ b[i]) * 1099511628211ull;
    unsigned long long lo = h, hi = h, mn, mx;
    MPI_Allreduce(&lo, &mn, 1, MPI_UNSIGNED_LONG_LONG, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(&hi, &mx, 1, MPI_UNSIGNED_LONG_LONG, MPI_MAX, MPI_COMM_WORLD);
    return mn == mx;
}

static void dsum(double *v, size_t n)
{
    if (n)
        MPI_Allreduce(MPI_IN_PLACE, v, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}

/* ------------------------------------------------------------------------- */

static const dp_codec_kind k_lossy[] = {DP_CODEC_FP16, DP_CODEC_BF16, DP_CODEC_INT8};

/* One allreduce of distribution d, checked against the exact sum. */
static void check_against_exact(dp_codec_kind kind, int zstd, size_t n, int d,
                                dp_reduce_op op, dp_ring_ws *ws, float *out_copy)
{
    const int P = g_size;
    float *x = xalloc(n * sizeof *x);
    double *ex = xalloc(n * sizeof *ex), *S = xalloc(n * sizeof *S);
    const double scale = DP_REDUCE_AVG == op ? 1.0 / P : 1.0;
    for (size_t i = 0; i < n; i++) {
        x[i] = gen(d, g_rank, i, n + 17 * (uint64_t)d);
        /* the ring divides in float before encoding: the exact sum of those */
        float xs = DP_REDUCE_AVG == op ? x[i] / (float)P : x[i];
        ex[i] = (double)xs;
        S[i] = fabs((double)xs);
    }
    (void)scale;
    dsum(ex, n);
    dsum(S, n);
    dp_codec_config cfg = {.kind = kind, .wire_zstd_level = zstd, .seed = 7};
    dp_status st = dp_ring_allreduce_codec(n ? x : NULL, n, op, &cfg, NULL, MPI_COMM_WORLD, ws);
    CHECK(DP_OK == st, "%s zstd=%d n=%zu %s: %s", dp_codec_name(kind), zstd, n, k_dist[d],
          dp_errmsg());
    const double u = DP_CODEC_FP16 == kind ? 0x1p-11 : 0x1p-8;
    const double tiny = DP_CODEC_FP16 == kind ? 0x1p-25 : 0x1p-134;
    const double eps = FLT_EPSILON;
    size_t bad = 0, first = 0;
    double worst = 0;
    /* int8 blocks start at each message (segment), not at multiples of 256 of the
     * range: the scale of value i is set by some window of <= 256 values around
     * it, so bound it by the largest S within 255 places. A subnormal scale is
     * itself rounded (2^-149 absolute), times |q| <= 127. */
    for (size_t i = 0; i < n; i++) {
        double smax = 0;
        if (DP_CODEC_INT8 == kind) {
            size_t lo = i >= 255 ? i - 255 : 0, hi = i + 256 < n ? i + 256 : n;
            for (size_t j = lo; j < hi; j++)
                smax = S[j] > smax ? S[j] : smax;
        }
        double bound = DP_CODEC_INT8 == kind
                           ? P * ((smax / 127.0) * (1 + 0x1p-14) + 128 * 0x1p-149)
                           : P * (u * S[i] + tiny);
        bound += P * eps * S[i] + 1e-44;
        if (1 == P)
            bound = 0; /* size 1 is exact */
        double err = fabs((double)x[i] - ex[i]);
        if (!(err <= bound)) {
            if (!bad++)
                first = i;
            worst = err / (bound > 0 ? bound : 1e-300) > worst ? err / bound : worst;
        }
    }
    CHECK(0 == bad, "%s zstd=%d n=%zu %s %s: %zu values beyond the bound (first %zu: got "
          "%g, exact %g, S %g; worst err/bound %g)", dp_codec_name(kind), zstd, n,
          k_dist[d], DP_REDUCE_AVG == op ? "avg" : "sum", bad, first,
          n ? (double)x[first] : 0.0, n ? ex[first] : 0.0, n ? S[first] : 0.0, worst);
    CHECK(same_on_all_ranks(x, n), "%s zstd=%d n=%zu %s: ranks hold different results",
          dp_codec_name(kind), zstd, n, k_dist[d]);
    if (out_copy)
        memcpy(out_copy, x, n * sizeof *x);
    free(x);
    free(ex);
    free(S);
}

static void test_exact_sum(void)
{
    static const size_t sizes[] = {0, 1, 3, 255, 256, 257, 1000, 100000};
    const size_t nsz = sizeof sizes / sizeof sizes[0];
    for (size_t k = 0; k < 3; k++) {
        for (size_t si = 0; si < nsz; si++) {
            for (int d = 0; d < D_NDIST; d++) {
                if (DP_CODEC_FP16 == k_lossy[k] && D_MIXED == d)
                    continue; /* 1e2 * P overflows nothing, but 1e-6 underflows: see tiny */
                for (int op = 0; op < 2; op++) {
                    /* zstd on and off from fresh workspaces with the same seed: the
                     * same bits (int8's RNG stream restarts with the workspace) */
                    size_t n = sizes[si];
                    float *a = xalloc(n * sizeof *a), *b = xalloc(n * sizeof *b);
                    dp_ring_ws *w1, *w2;
                    CHECK_OK(dp_ring_ws_create(4096, &w1)); /* small segments: many */
                    CHECK_OK(dp_ring_ws_create(4096, &w2));
                    check_against_exact(k_lossy[k], 0, n, d, (dp_reduce_op)op, w1, a);
                    check_against_exact(k_lossy[k], 3, n, d, (dp_reduce_op)op, w2, b);
                    CHECK(0 == memcmp(a, b, n * sizeof *a),
                          "%s n=%zu %s: wire zstd changed the result",
                          dp_codec_name(k_lossy[k]), n, k_dist[d]);
                    dp_ring_ws_free(w1);
                    dp_ring_ws_free(w2);
                    free(a);
                    free(b);
                }
            }
        }
    }
    /* fp16 on mixed magnitudes: values below 2^-14 lose relative accuracy but
     * stay within the absolute subnormal bound, which the check above includes */
    dp_ring_ws *w;
    CHECK_OK(dp_ring_ws_create(0, &w));
    check_against_exact(DP_CODEC_FP16, 0, 5000, D_MIXED, DP_REDUCE_SUM, w, NULL);
    dp_ring_ws_free(w);
    end_case("codecs vs the exact sum (double)");
}

/* Error feedback: per call, result + sum_r e_new == sum_r (x + e_old) (float
 * rounding only), and over steps sum_t result_t + sum_r e_T == sum_t sum_r x_t. */
static void test_error_feedback(void)
{
    const size_t n = 3000;
    const int steps = 6;
    for (size_t k = 0; k < 3; k++) {
        for (int zstd = 0; zstd <= 1; zstd++) {
            float *x = xalloc(n * sizeof *x), *e = calloc(n, sizeof *e);
            double *lhs = xalloc(n * sizeof *lhs), *rhs = xalloc(n * sizeof *rhs);
            double *mag = xalloc(n * sizeof *mag), *tot_res = calloc(n, sizeof(double));
            double *tot_in = calloc(n, sizeof(double)), *tot_mag = calloc(n, sizeof(double));
            dp_ring_ws *ws;
            CHECK_OK(dp_ring_ws_create(2048, &ws));
            dp_codec_config cfg = {.kind = k_lossy[k], .wire_zstd_level = zstd, .seed = 3};
            for (int t = 0; t < steps; t++) {
                for (size_t i = 0; i < n; i++) {
                    x[i] = gen(D_NORMAL, g_rank, i, 100 + (uint64_t)t);
                    rhs[i] = (double)x[i] + (double)e[i];
                    mag[i] = fabs((double)x[i]) + fabs((double)e[i]);
                    tot_in[i] += x[i];
                }
                dsum(rhs, n);
                dsum(mag, n);
                CHECK_OK(dp_ring_allreduce_codec(x, n, DP_REDUCE_SUM, &cfg, e,
                                                 MPI_COMM_WORLD, ws));
                CHECK(same_on_all_ranks(x, n), "%s: results differ across ranks",
                      dp_codec_name(k_lossy[k]));
                for (size_t i = 0; i < n; i++)
                    lhs[i] = e[i];
                dsum(lhs, n);
                size_t bad = 0, first = 0;
                for (size_t i = 0; i < n; i++) {
                    double got = (double)x[i] + lhs[i];
                    /* float rounding of the ring's additions: each rank computes
                     * v = q + x + e and e = v - d in float, a few eps|v| each */
                    double tol = 4.0 * g_size * FLT_EPSILON * (mag[i] + fabs((double)x[i]));
                    if (fabs(got - rhs[i]) > tol && !bad++)
                        first = i;
                    tot_res[i] += x[i];
                    tot_mag[i] += mag[i] + fabs((double)x[i]);
                }
                CHECK(0 == bad, "%s zstd=%d step %d: invariant off at %zu values (first "
                      "%zu: result+sum e = %.9g, sum(x+e_old) = %.9g)",
                      dp_codec_name(k_lossy[k]), zstd, t, bad, first,
                      (double)x[first] + lhs[first], rhs[first]);
            }
            /* over all steps: sum_t result + sum_r e_T = sum_t sum_r x */
            for (size_t i = 0; i < n; i++)
                lhs[i] = e[i];
            dsum(lhs, n);
            dsum(tot_in, n);
            size_t bad = 0;
            for (size_t i = 0; i < n; i++) {
                double tol = 4.0 * g_size * FLT_EPSILON * tot_mag[i];
                if (fabs(tot_res[i] + lhs[i] - tot_in[i]) > tol)
                    bad++;
            }
            CHECK(0 == bad, "%s: summed over %d steps the invariant fails at %zu values",
                  dp_codec_name(k_lossy[k]), steps, bad);
            if (g_size > 1) { /* a lossy codec leaves a non-zero residual somewhere */
                double m = 0;
                for (size_t i = 0; i < n; i++)
                    m = fmax(m, fabs(lhs[i]));
                CHECK(m > 0, "%s: residual stayed zero", dp_codec_name(k_lossy[k]));
            }
            dp_ring_ws_free(ws);
            free(x); free(e); free(lhs); free(rhs); free(mag);
            free(tot_res); free(tot_in); free(tot_mag);
        }
    }
    end_case("error feedback invariant, identical ranks");
}

/* NaN / Inf / beyond fp16 on one rank: every rank gets DP_ERR_NONFINITE, the
 * offending rank's message names it and the index; the ring stays usable. */
static void test_nonfinite(void)
{
    const size_t n = 1000;
    const float bad_vals[] = {NAN, INFINITY, -INFINITY, 70000.0f};
    float *x = xalloc(n * sizeof *x);
    dp_ring_ws *ws;
    CHECK_OK(dp_ring_ws_create(1024, &ws));
    for (size_t k = 0; k < 3; k++) {
        for (size_t v = 0; v < 4; v++) {
            if (3 == v && DP_CODEC_FP16 != k_lossy[k])
                continue;
            for (int zstd = 0; zstd <= 1; zstd++) {
                const int who = g_size - 1;
                const size_t at = 777;
                for (size_t i = 0; i < n; i++)
                    x[i] = gen(D_NORMAL, g_rank, i, 5);
                if (g_rank == who)
                    x[at] = bad_vals[v];
                dp_codec_config cfg = {.kind = k_lossy[k], .wire_zstd_level = zstd};
                dp_status st = dp_ring_allreduce_codec(x, n, DP_REDUCE_SUM, &cfg, NULL,
                                                       MPI_COMM_WORLD, ws);
                if (1 == g_size) /* size 1 sends nothing and encodes nothing */
                    continue;
                CHECK(DP_ERR_NONFINITE == st, "%s value %g: got %s",
                      dp_codec_name(k_lossy[k]), (double)bad_vals[v], dp_status_name(st));
                if (g_rank == who && 3 != v) {
                    char want[64];
                    snprintf(want, sizeof want, "rank %d of", who);
                    CHECK(strstr(dp_errmsg(), want) && strstr(dp_errmsg(), "index 777"),
                          "message: %s", dp_errmsg());
                }
                if (g_rank == who && 3 == v)
                    CHECK(strstr(dp_errmsg(), "fp16"), "message: %s", dp_errmsg());
                /* the ring is still in step: a good call works */
                for (size_t i = 0; i < n; i++)
                    x[i] = 1.0f;
                CHECK_OK(dp_ring_allreduce_codec(x, n, DP_REDUCE_SUM, &cfg, NULL,
                                                 MPI_COMM_WORLD, ws));
                CHECK(x[0] == (float)g_size && x[n - 1] == (float)g_size, "after: %g", x[0]);
            }
        }
    }
    dp_ring_ws_free(ws);
    free(x);
    end_case("non-finite input rejected on every rank");
}

/* Engine: submit_codec gives the bits of dp_ring_allreduce_codec. */
static void test_engine(int threaded)
{
    const size_t n = 20000;
    float *a = xalloc(n * sizeof *a), *b = xalloc(n * sizeof *b);
    float *ea = calloc(n, sizeof *ea), *eb = calloc(n, sizeof *eb);
    dp_engine *e;
    CHECK_OK(dp_engine_create(MPI_COMM_WORLD, DP_ALLREDUCE_RING, threaded, &e));
    dp_ring_ws *ws;
    CHECK_OK(dp_ring_ws_create(0, &ws));
    for (size_t k = 0; k < 3; k++) {
        dp_codec_config cfg = {.kind = k_lossy[k], .wire_zstd_level = (int)k % 2, .seed = 9};
        for (size_t i = 0; i < n; i++)
            a[i] = b[i] = gen(D_NORMAL, g_rank, i, 42 + k);
        /* int8's stream: engine and ws each start from the seed (fresh seed per k) */
        CHECK_OK(dp_engine_submit_codec(e, a, n / 2, DP_REDUCE_AVG, &cfg, ea));
        CHECK_OK(dp_engine_submit_codec(e, a + n / 2, n - n / 2, DP_REDUCE_AVG, &cfg,
                                        ea + n / 2));
        CHECK_OK(dp_engine_wait_all(e));
        CHECK_OK(dp_ring_allreduce_codec(b, n / 2, DP_REDUCE_AVG, &cfg, eb, MPI_COMM_WORLD, ws));
        CHECK_OK(dp_ring_allreduce_codec(b + n / 2, n - n / 2, DP_REDUCE_AVG, &cfg,
                                         eb + n / 2, MPI_COMM_WORLD, ws));
        CHECK(0 == memcmp(a, b, n * sizeof *a) && 0 == memcmp(ea, eb, n * sizeof *ea),
              "%s: engine and direct call differ", dp_codec_name(k_lossy[k]));
    }
    dp_comm_stats s;
    dp_engine_stats(e, &s);
    if (g_size > 1)
        CHECK(s.bytes_raw_sent > s.bytes_codec_sent && s.bytes_codec_sent > 0,
              "raw %llu codec %llu", (unsigned long long)s.bytes_raw_sent,
              (unsigned long long)s.bytes_codec_sent);
    dp_codec_config bad = {.kind = (dp_codec_kind)42};
    CHECK(DP_ERR_ARG == dp_engine_submit_codec(e, a, n, DP_REDUCE_SUM, &bad, NULL), "bad kind");
    dp_engine_free(e);
    dp_ring_ws_free(ws);
    free(a); free(b); free(ea); free(eb);
    end_case(threaded ? "engine (threaded) submit_codec" : "engine (inline) submit_codec");
}

/* Wire stage: smooth data compresses once shuffled; ratios printed per codec. */
static void test_wire_ratio(void)
{
    const size_t n = 1 << 20;
    float *x = xalloc(n * sizeof *x), *y = xalloc(n * sizeof *y);
    static const dp_codec_kind kinds[] = {DP_CODEC_NONE, DP_CODEC_FP16, DP_CODEC_BF16,
                                          DP_CODEC_INT8};
    for (size_t k = 0; k < 4; k++) {
        for (int lvl = 0; lvl <= 3; lvl += 3) {
            for (size_t i = 0; i < n; i++)
                x[i] = (float)sin((double)i * 1e-4) * 0.01f; /* smooth, the same on all */
            memcpy(y, x, n * sizeof *x);
            dp_ring_ws *ws;
            CHECK_OK(dp_ring_ws_create(0, &ws));
            dp_codec_config cfg = {.kind = kinds[k], .wire_zstd_level = lvl};
            CHECK_OK(dp_ring_allreduce_codec(x, n, DP_REDUCE_AVG, &cfg, NULL, MPI_COMM_WORLD, ws));
            dp_comm_stats s;
            dp_ring_ws_stats(ws, &s);
            if (g_size > 1) {
                double codec_ratio = (double)s.bytes_raw_sent / (double)s.bytes_codec_sent;
                double wire_ratio = (double)s.bytes_codec_sent / (double)s.bytes_sent;
                if (0 == g_rank)
                    printf("    smooth 4 MiB avg %-5s zstd %d: raw %llu codec %llu wire %llu "
                           "bytes sent: codec x%.2f, wire stage x%.2f, total x%.2f\n",
                           dp_codec_name(kinds[k]), lvl,
                           (unsigned long long)s.bytes_raw_sent,
                           (unsigned long long)s.bytes_codec_sent,
                           (unsigned long long)s.bytes_sent, codec_ratio, wire_ratio,
                           (double)s.bytes_raw_sent / (double)s.bytes_sent);
                if (lvl && DP_CODEC_NONE == kinds[k])
                    CHECK(wire_ratio > 1.0, "shuffled float32 did not compress: x%.3f",
                          wire_ratio);
                if (!lvl)
                    CHECK(s.bytes_codec_sent == s.bytes_sent, "no wire stage: sizes differ");
            }
            if (DP_CODEC_NONE == kinds[k]) { /* lossless: AVG of equal data is exact */
                size_t bad = 0;
                for (size_t i = 0; i < n; i++)
                    bad += fabsf(x[i] - y[i]) > 4 * FLT_EPSILON * fabsf(y[i]);
                CHECK(0 == bad, "none zstd %d: %zu values changed", lvl, bad);
            }
            dp_ring_ws_free(ws);
        }
    }
    free(x);
    free(y);
    end_case("wire stage ratio (shuffle + zstd)");
}

static void test_parse(void)
{
    dp_codec_config c = {0};
    CHECK_OK(dp_codec_parse("fp16", &c));
    CHECK(DP_CODEC_FP16 == c.kind, "fp16");
    CHECK_OK(dp_codec_parse("int8", &c));
    CHECK(DP_CODEC_INT8 == c.kind, "int8");
    CHECK_OK(dp_codec_parse("none", &c));
    CHECK(DP_ERR_ARG == dp_codec_parse("fp17", &c) && strstr(dp_errmsg(), "fp17"), "unknown");
    CHECK(DP_ERR_ARG == dp_codec_parse(NULL, &c), "NULL");
    float x = 1;
    dp_codec_config lv = {.kind = DP_CODEC_FP16, .wire_zstd_level = 99};
    CHECK(DP_ERR_ARG == dp_ring_allreduce_codec(&x, 1, DP_REDUCE_SUM, &lv, NULL,
                                                MPI_COMM_WORLD, NULL), "level 99");
    /* NULL config and NONE: exactly dp_ring_allreduce */
    float a[7], b[7];
    for (int i = 0; i < 7; i++)
        a[i] = b[i] = (float)gen(D_NORMAL, g_rank, (size_t)i, 1);
    CHECK_OK(dp_ring_allreduce_codec(a, 7, DP_REDUCE_AVG, NULL, NULL, MPI_COMM_WORLD, NULL));
    CHECK_OK(dp_ring_allreduce(b, 7, DP_REDUCE_AVG, MPI_COMM_WORLD, NULL));
    CHECK(0 == memcmp(a, b, sizeof a), "NULL config differs from dp_ring_allreduce");
    end_case("config parse and checks");
}

int main(int argc, char **argv)
{
    int provided;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    if (0 == g_rank)
        printf("codec tests on %d rank(s)\n", g_size);
    test_parse();
    test_exact_sum();
    test_error_feedback();
    test_nonfinite();
    test_engine(0);
    if (dp_comm_thread_level_ok(provided))
        test_engine(1);
    test_wire_ratio();
    if (0 == g_rank)
        printf("codec tests: %ld passed, %ld failed\n", g_total_checks - g_total_fail,
               g_total_fail);
    MPI_Finalize();
    return g_total_fail ? 1 : 0;
}
