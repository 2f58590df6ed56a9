/* Multi-rank tests of top-k (with error feedback, dense fallback, DGC momentum)
 * and PowerSGD (rank-R reproduction, error feedback, 2x rule, bytes, checkpoint
 * state), run under mpiexec at 1..4 ranks by ctest (tests/CMakeLists.txt, end).
 *
 * Plain C like test_codec_mpi.c: failures are counted per rank and summed; any
 * failure ends with MPI_Abort(1). Rank 0 ends with "N passed, 0 failed".
 *
 * Tolerances (u = 2^-24, float32 unit roundoff; P ranks; C calls):
 *   top-k error feedback, per element i, with A_i = sum over ranks and calls of
 *   |input_i|: every float quantity involved (x, residual, sent values, partial
 *   sums of the result) is at most A_i in magnitude, and each call rounds once
 *   for x = buf + residual and at most P times in the sum, so
 *       |sum_calls result + sum_ranks residual - sum inputs| <= 2 (P + 1) C u A_i.
 *   dense vs sparse (same selection, different order of P additions):
 *       |dense - sparse| <= 2 P u sum_ranks |sent_i|.
 *   PowerSGD error feedback, per call: G + sum_w E_w = P^ sum_w Q_w^T +
 *   sum_w (M_w - P^ Q_w^T) is exact up to the R-term products, the P-term sums and
 *   M = G + E; |P^_ic| <= 1 and |Q_w,jc| <= ||M_w[:, j]|| <= sqrt(rows) max|M_w|, so
 *       |err| <= 8 (R + P + 2) u R sqrt(rows) sum_w max|M_w|. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "dptrain/comm.h"
#include "mpi_check.h"





/* Value of element i, rank r, call c, stream s: uniform in (-1, 1), heavy tail. */
static float val(int s, int r, int c, size_t i)
{
    uint64_t k = mix(((uint64_t)s << 48) ^ ((uint64_t)r << 40) ^ ((uint64_t)c << 32) ^ i);
    double u = 2.0 * unif(k) - 1.0;
    return (float)(u * u * u * 4.0 + 0.01 * u);
}

static uint64_t hash_bytes(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* 1 when h is the same on every rank. */
static int same_everywhere(uint64_t h)
{
    uint64_t lo, hi;
    MPI_Allreduce(&h, &lo, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(&h, &hi, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
    return lo == hi;
}

static void sum_d(double *x, size_t n)
{
    MPI_Allreduce(MPI_IN_PLACE, x, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}

/* ------------------------------------------------------------------------- */
/* top-k                                                                      */
/* ------------------------------------------------------------------------- */

static void test_topk_full(dp_topk_ws *ws)
{
    const size_t ns[] = {1, 2, 7, 1000, 4099};
    const dp_topk_path paths[] = {DP_TOPK_AUTO, DP_TOPK_SPARSE, DP_TOPK_DENSE};
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
        for (int p = 0; p < 3; p++) {
            size_t n = ns[a];
            float *buf = malloc(n * sizeof *buf), *res = calloc(n, sizeof *res);
            for (size_t i = 0; i < n; i++)
                buf[i] = (float)((int)(mix(i * 31 + (uint64_t)g_rank) % 2001) - 1000);
            dp_topk_config cfg = {1.0, 0.0f, paths[p]};
            dp_topk_stats st;
            CHECK_OK(dp_topk_allreduce(buf, n, &cfg, res, NULL, MPI_COMM_WORLD, ws, &st));
            CHECK(st.k == n, "k %llu n %zu", (unsigned long long)st.k, n);
            size_t bad = 0, nz = 0;
            for (size_t i = 0; i < n; i++) {
                long e = 0;
                for (int r = 0; r < g_size; r++)
                    e += (int)(mix(i * 31 + (uint64_t)r) % 2001) - 1000;
                bad += (float)e != buf[i];
                nz += 0.0f != res[i];
            }
            CHECK(0 == bad && 0 == nz, "n %zu path %d: %zu wrong, %zu residual non-zero", n, p,
                  bad, nz);
            free(buf);
            free(res);
        }
    end_case("topk fraction 1.0 == exact sum (3 paths)");
}

/* C calls at fraction F on path `path`; checks (a) identical results, (b) error
 * feedback, (c) exactly k sent per rank per call. Returns the final result's hash. */
static void topk_ef(dp_topk_ws *ws, size_t n, double F, dp_topk_path path, int C,
                    const char *name)
{
    float *buf = malloc(n * sizeof *buf), *res = calloc(n, sizeof *res);
    double *acc = calloc(3 * n, sizeof *acc); /* sum results, sum inputs, A_i */
    double *sin = acc + n, *A = acc + 2 * n;
    size_t k = (size_t)ceil(F * (double)n);
    if (k < 1)
        k = 1;
    int dense_seen = 0;
    for (int c = 0; c < C; c++) {
        for (size_t i = 0; i < n; i++) {
            buf[i] = val(1, g_rank, c, i);
            sin[i] += buf[i];
            A[i] += fabs(buf[i]);
        }
        dp_topk_config cfg = {F, 0.0f, path};
        dp_topk_stats st;
        CHECK_OK(dp_topk_allreduce(buf, n, &cfg, res, NULL, MPI_COMM_WORLD, ws, &st));
        CHECK(st.k == k, "call %d: k %llu, expected %zu", c, (unsigned long long)st.k, k);
        dense_seen |= st.dense;
        if (!st.dense && g_size > 1)
            CHECK(st.bytes_sent == (uint64_t)(g_size - 1) * k * 8 && st.bytes_recv == st.bytes_sent,
                  "call %d: sent %llu", c, (unsigned long long)st.bytes_sent);
        if (0 == c) { /* inputs are distinct and non-zero: exactly k residual zeros */
            size_t z = 0;
            for (size_t i = 0; i < n; i++)
                z += 0.0f == res[i];
            CHECK(z == k, "call 0: %zu entries sent, k = %zu", z, k);
        }
        CHECK(same_everywhere(hash_bytes(buf, n * sizeof *buf)), "call %d: results differ", c);
        for (size_t i = 0; i < n; i++)
            acc[i] += buf[i];
    }
    if (DP_TOPK_DENSE == path && g_size > 1)
        CHECK(dense_seen, "dense path not taken");
    if (DP_TOPK_SPARSE == path)
        CHECK(!dense_seen, "sparse path not taken");
    /* acc holds this rank's copy of the (identical) results; sum the rest. */
    double *r = malloc(n * sizeof *r);
    for (size_t i = 0; i < n; i++)
        r[i] = res[i];
    sum_d(r, n);
    sum_d(sin, n);
    sum_d(A, n);
    const double u = 0x1.0p-24;
    size_t bad = 0;
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double err = fabs(acc[i] + r[i] - sin[i]);
        double tol = 2.0 * (g_size + 1) * C * u * A[i];
        if (err > tol)
            bad++;
        if (A[i] > 0 && err / A[i] > worst)
            worst = err / A[i];
    }
    CHECK(0 == bad, "%zu elements break the error-feedback invariant (worst err/A %.3g)", bad,
          worst);
    if (0 == g_rank)
        printf("    worst |err| / A_i %.3g (tol / A_i = %.3g)\n", worst,
               2.0 * (g_size + 1) * C * u);
    free(r);
    free(acc);
    free(buf);
    free(res);
    end_case(name);
}

static void test_topk_dense_vs_sparse(dp_topk_ws *ws)
{
    const size_t n = 5003;
    const double F = 0.4; /* P k >= n from P = 3: AUTO goes dense */
    float *b[2], *res[2];
    dp_topk_stats st[2];
    for (int p = 0; p < 2; p++) {
        b[p] = malloc(n * sizeof(float));
        res[p] = malloc(n * sizeof(float));
        for (size_t i = 0; i < n; i++) {
            b[p][i] = val(2, g_rank, 0, i);
            res[p][i] = 0.1f * val(3, g_rank, 0, i);
        }
        dp_topk_config cfg = {F, 0.0f, p ? DP_TOPK_DENSE : DP_TOPK_SPARSE};
        CHECK_OK(dp_topk_allreduce(b[p], n, &cfg, res[p], NULL, MPI_COMM_WORLD, ws, &st[p]));
    }
    CHECK(0 == memcmp(res[0], res[1], n * sizeof(float)), "residuals differ between paths");
    CHECK(!st[0].dense && st[1].dense, "paths %d %d", st[0].dense, st[1].dense);
    /* bound: 2 P u sum_ranks |sent| */
    double *s = malloc(n * sizeof *s);
    for (size_t i = 0; i < n; i++) {
        float x = val(2, g_rank, 0, i) + 0.1f * val(3, g_rank, 0, i);
        s[i] = 0.0f == res[0][i] ? fabs(x) : 0.0;
    }
    sum_d(s, n);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += fabs((double)b[0][i] - b[1][i]) > 2.0 * g_size * 0x1.0p-24 * s[i];
    CHECK(0 == bad, "%zu elements differ beyond rounding", bad);
    CHECK(same_everywhere(hash_bytes(b[1], n * sizeof(float))), "dense result differs by rank");

    /* AUTO picks dense exactly when P k >= n (and P > 1). */
    dp_topk_stats sa;
    for (size_t i = 0; i < n; i++)
        b[0][i] = val(4, g_rank, 0, i);
    const dp_topk_config auto_cfg = {F, 0.0f, DP_TOPK_AUTO};
    CHECK_OK(dp_topk_allreduce(b[0], n, &auto_cfg, res[0], NULL, MPI_COMM_WORLD, ws, &sa));
    int want = g_size > 1 && (uint64_t)g_size * sa.k >= n;
    CHECK(sa.dense == want, "AUTO dense %d, expected %d (P %d, k %llu, n %zu)", sa.dense, want,
          g_size, (unsigned long long)sa.k, n);
    for (int p = 0; p < 2; p++) {
        free(b[p]);
        free(res[p]);
    }
    free(s);
    end_case("topk dense fallback == sparse (rounding)");
}

static void test_topk_momentum(dp_topk_ws *ws)
{
    const size_t n = 3001;
    float *buf = malloc(n * sizeof *buf), *res = calloc(n, sizeof *res),
          *vel = calloc(n, sizeof *vel);
    dp_topk_config cfg = {0.02, 0.9f, DP_TOPK_AUTO};
    for (int c = 0; c < 4; c++) {
        for (size_t i = 0; i < n; i++)
            buf[i] = val(5, g_rank, c, i);
        dp_topk_stats st;
        CHECK_OK(dp_topk_allreduce(buf, n, &cfg, res, vel, MPI_COMM_WORLD, ws, &st));
        size_t sent = 0, leak = 0;
        for (size_t i = 0; i < n; i++)
            if (0.0f == res[i]) {
                sent++;
                leak += 0.0f != vel[i];
            }
        CHECK(sent == st.k && 0 == leak, "call %d: %zu sent (k %llu), %zu velocities kept", c,
              sent, (unsigned long long)st.k, leak);
        CHECK(same_everywhere(hash_bytes(buf, n * sizeof *buf)), "call %d: results differ", c);
    }
    free(buf);
    free(res);
    free(vel);
    end_case("topk DGC momentum correction + masking");
}

static void test_topk_nonfinite(dp_topk_ws *ws)
{
    const size_t n = 1000;
    float *buf = malloc(n * sizeof *buf), *res = calloc(n, sizeof *res);
    for (int p = 0; p < 2; p++) {
        for (size_t i = 0; i < n; i++)
            buf[i] = val(6, g_rank, p, i);
        memset(res, 0, n * sizeof *res);
        if (g_rank == g_size - 1)
            buf[n / 2] = p ? INFINITY : NAN;
        dp_topk_config cfg = {p ? 0.9 : 0.01, 0.0f, p ? DP_TOPK_DENSE : DP_TOPK_SPARSE};
        dp_status s = dp_topk_allreduce(buf, n, &cfg, res, NULL, MPI_COMM_WORLD, ws, NULL);
        CHECK(DP_ERR_NONFINITE == s, "path %d: got %s", p, dp_status_name(s));
    }
    const dp_topk_config zero = {0.0, 0.0f, DP_TOPK_AUTO};
    dp_status s = dp_topk_allreduce(buf, n, &zero, res, NULL, MPI_COMM_WORLD, ws, NULL);
    CHECK(DP_ERR_ARG == s, "fraction 0 accepted");
    free(buf);
    free(res);
    end_case("topk NaN/Inf on one rank -> all ranks");
}

static void test_topk_bytes(dp_topk_ws *ws)
{
    const size_t n = 512 * 784;
    float *buf = malloc(n * sizeof *buf), *res = calloc(n, sizeof *res);
    for (size_t i = 0; i < n; i++)
        buf[i] = val(7, g_rank, 0, i);
    dp_topk_stats st;
    const dp_topk_config cfg = {0.01, 0.0f, DP_TOPK_AUTO};
    CHECK_OK(dp_topk_allreduce(buf, n, &cfg, res, NULL, MPI_COMM_WORLD, ws, &st));
    /* measured dense reference */
    dp_ring_ws *rw = NULL;
    CHECK_OK(dp_ring_ws_create(0, &rw));
    CHECK_OK(dp_ring_allreduce(buf, n, DP_REDUCE_SUM, MPI_COMM_WORLD, rw));
    dp_comm_stats cs;
    dp_ring_ws_stats(rw, &cs);
    dp_ring_ws_free(rw);
    if (g_size > 1) {
        double ratio = (double)cs.bytes_sent / (double)st.bytes_sent;
        /* n / (P k) = 100 / P: at least 25x up to 4 ranks */
        CHECK(ratio >= 20.0 || g_size > 4, "ratio %.1f", ratio);
        if (0 == g_rank)
            printf("    topk:0.01 512x784 P=%d: %llu B sent/rank vs dense ring %llu B "
                   "(%.1fx)\n", g_size, (unsigned long long)st.bytes_sent,
                   (unsigned long long)cs.bytes_sent, ratio);
    }
    free(buf);
    free(res);
    end_case("topk bytes on the wire");
}

/* ------------------------------------------------------------------------- */
/* PowerSGD                                                                   */
/* ------------------------------------------------------------------------- */

/* Layout: [matrix 64x48 | bias 48 | matrix 4x4 | gap 5 | matrix 512x784]. */
enum { M1R = 64, M1C = 48, RK = 4 };
#define OFF_B ((size_t)M1R * M1C)
#define OFF_S (OFF_B + 48)
#define OFF_L (OFF_S + 16 + 5)
#define N_ALL (OFF_L + (size_t)512 * 784)

static dp_status make_psgd(dp_powersgd **ps)
{
    const dp_powersgd_matrix mats[] = {{0, M1R, M1C}, {OFF_S, 4, 4}, {OFF_L, 512, 784}};
    const dp_powersgd_range ranges[] = {{OFF_B, 48}};
    return dp_powersgd_create(N_ALL, mats, 3, ranges, 1, RK, 42, ps);
}

static void test_psgd_lowrank(void)
{
    dp_powersgd *ps = NULL;
    CHECK_OK(make_psgd(&ps));
    if (NULL == ps) {
        end_case("powersgd rank-R reproduced");
        return;
    }
    CHECK(dp_powersgd_is_compressed(ps, 0) && !dp_powersgd_is_compressed(ps, 1) &&
          dp_powersgd_is_compressed(ps, 2), "2x rule");
    CHECK(dp_powersgd_state_floats(ps) == N_ALL + (size_t)(M1C + 784) * RK, "state %zu",
          dp_powersgd_state_floats(ps));
    /* M = A B^T (rank 4) in both large matrices, the same on every rank; integers
     * elsewhere (exact sums). */
    float *M = malloc(N_ALL * sizeof *M), *g = malloc(N_ALL * sizeof *g);
    memset(M, 0, N_ALL * sizeof *M);
    const size_t offs[2] = {0, OFF_L};
    const int rows[2] = {M1R, 512}, cols[2] = {M1C, 784};
    for (int t = 0; t < 2; t++)
        for (int r = 0; r < rows[t]; r++)
            for (int c = 0; c < cols[t]; c++) {
                double s = 0;
                for (int k = 0; k < RK; k++)
                    s += (2 * unif(mix(t * 1000003 + r * 8 + k)) - 1) *
                         (2 * unif(mix(7777777 + t * 1000003 + c * 8 + k)) - 1);
                M[offs[t] + (size_t)r * cols[t] + c] = (float)s;
            }
    for (size_t i = 0; i < 48; i++)
        M[OFF_B + i] = (float)(int)(i % 13);
    for (size_t i = 0; i < 16; i++)
        M[OFF_S + i] = (float)(int)(i % 7) - 3.0f;
    for (size_t i = 0; i < 5; i++)
        M[OFF_S + 16 + i] = 123.0f; /* gap: untouched */
    for (int call = 0; call < 3; call++) {
        memcpy(g, M, N_ALL * sizeof *g);
        dp_powersgd_stats st;
        CHECK_OK(dp_powersgd_allreduce(ps, g, MPI_COMM_WORLD, &st));
        CHECK(same_everywhere(hash_bytes(g, N_ALL * sizeof *g)), "call %d differs", call);
        for (int t = 0; t < 2; t++) {
            double e2 = 0, m2 = 0;
            for (size_t i = 0; i < (size_t)rows[t] * cols[t]; i++) {
                double want = (double)g_size * M[offs[t] + i];
                e2 += (g[offs[t] + i] - want) * (g[offs[t] + i] - want);
                m2 += want * want;
            }
            double rel = sqrt(e2 / m2);
            if (call >= 1)
                CHECK(rel < 1e-5, "call %d matrix %d: relative error %.3g", call, t, rel);
            if (0 == g_rank && 2 == call && 1 == t)
                printf("    rank-4 512x784 reproduced, call %d: rel. Frobenius error %.2g\n",
                       call, rel);
        }
        size_t bad = 0;
        for (size_t i = 0; i < 48; i++)
            bad += g[OFF_B + i] != g_size * M[OFF_B + i];
        for (size_t i = 0; i < 16; i++)
            bad += g[OFF_S + i] != g_size * M[OFF_S + i];
        for (size_t i = 0; i < 5; i++)
            bad += g[OFF_S + 16 + i] != 123.0f;
        CHECK(0 == bad, "call %d: %zu uncompressed/gap elements wrong", call, bad);
    }
    free(M);
    free(g);
    dp_powersgd_free(ps);
    end_case("powersgd rank-R reproduced, 2x rule");
}

static void test_psgd_ef_bytes(void)
{
    dp_powersgd *ps = NULL, *ps2 = NULL;
    CHECK_OK(make_psgd(&ps));
    CHECK_OK(make_psgd(&ps2));
    if (NULL == ps || NULL == ps2) {
        end_case("powersgd error feedback, bytes");
        return;
    }
    const size_t n = N_ALL, ns = dp_powersgd_state_floats(ps);
    float *g = malloc(n * sizeof *g), *g2 = malloc(n * sizeof *g2),
          *saved = malloc(ns * sizeof *saved);
    double *in = malloc(n * sizeof *in), *out = malloc(n * sizeof *out);
    const size_t offs[2] = {0, OFF_L};
    const int rows[2] = {M1R, 512}, cols[2] = {M1C, 784};
    dp_powersgd_stats st;
    for (int call = 0; call < 4; call++) {
        for (size_t i = 0; i < n; i++)
            g[i] = OFF_S + 16 <= i && i < OFF_L ? 0.0f : val(8, g_rank, call, i); /* gap: 0 */
        if (2 == call) { /* checkpoint: the copy resumes from here */
            CHECK(dp_powersgd_state_floats(ps2) == ns, "state sizes");
            memcpy(saved, dp_powersgd_state(ps), ns * sizeof *saved);
            memcpy(dp_powersgd_state(ps2), saved, ns * sizeof *saved);
        }
        memcpy(g2, g, n * sizeof *g);
        const float *E = dp_powersgd_state(ps);
        for (size_t i = 0; i < n; i++)
            in[i] = (double)g[i] + E[i]; /* M_w (= G off the compressed matrices) */
        double mmax[2] = {0, 0};
        for (int t = 0; t < 2; t++)
            for (size_t i = 0; i < (size_t)rows[t] * cols[t]; i++)
                mmax[t] = fmax(mmax[t], fabs(in[offs[t] + i]));
        CHECK_OK(dp_powersgd_allreduce(ps, g, MPI_COMM_WORLD, &st));
        if (call >= 2)
            CHECK_OK(dp_powersgd_allreduce(ps2, g2, MPI_COMM_WORLD, NULL));
        if (call >= 2)
            CHECK(0 == memcmp(g, g2, n * sizeof *g), "call %d: resumed copy differs", call);
        CHECK(same_everywhere(hash_bytes(g, n * sizeof *g)), "call %d differs", call);
        /* The warm start keeps the reduced Q: G = P^ Q^T with orthonormal P^, so
         * G^T G = Q Q^T (checked on the 64 x 48 matrix, whose Q comes first). */
        const float *q = E + n;
        double gg_err = 0, gg_max = 0;
        for (int a = 0; a < M1C; a++)
            for (int b = 0; b < M1C; b++) {
                double gg = 0, qq = 0;
                for (int r = 0; r < M1R; r++)
                    gg += (double)g[(size_t)r * M1C + a] * g[(size_t)r * M1C + b];
                for (int c = 0; c < RK; c++)
                    qq += (double)q[a * RK + c] * q[b * RK + c];
                gg_err = fmax(gg_err, fabs(gg - qq));
                gg_max = fmax(gg_max, fabs(gg));
            }
        CHECK(gg_err <= 1e-4 * gg_max, "call %d: G^T G - Q Q^T off by %.3g of %.3g: Q not kept for the "
              "warm start", call, gg_err, gg_max);
        for (size_t i = 0; i < n; i++)
            out[i] = E[i]; /* sum_w E_new */
        sum_d(out, n);
        sum_d(in, n);
        sum_d(mmax, 2);
        for (int t = 0; t < 2; t++) {
            double tol = 8.0 * (RK + g_size + 2) * 0x1.0p-24 * RK * sqrt((double)rows[t]) *
                         mmax[t];
            size_t bad = 0;
            double worst = 0;
            for (size_t i = 0; i < (size_t)rows[t] * cols[t]; i++) {
                double err = fabs(g[offs[t] + i] + out[offs[t] + i] - in[offs[t] + i]);
                bad += err > tol;
                worst = fmax(worst, err);
            }
            CHECK(0 == bad, "call %d matrix %d: %zu beyond %.3g (worst %.3g)", call, t, bad, tol,
                  worst);
            if (0 == g_rank && 3 == call)
                printf("    EF invariant, matrix %dx%d, call %d: worst |err| %.3g, tol %.3g\n",
                       rows[t], cols[t], call, worst, tol);
        }
    }
    /* Bytes: 512x784 alone at R = 4 against a measured dense ring. */
    dp_powersgd *pl = NULL;
    const dp_powersgd_matrix big = {0, 512, 784};
    CHECK_OK(dp_powersgd_create((size_t)512 * 784, &big, 1, NULL, 0, RK, 1, &pl));
    float *b = malloc((size_t)512 * 784 * sizeof *b);
    for (size_t i = 0; i < (size_t)512 * 784; i++)
        b[i] = val(9, g_rank, 0, i);
    CHECK_OK(dp_powersgd_allreduce(pl, b, MPI_COMM_WORLD, &st));
    CHECK(st.floats_reduced == (512 + 784) * RK && st.floats_dense == 512 * 784, "floats %llu",
          (unsigned long long)st.floats_reduced);
    dp_ring_ws *rw = NULL;
    CHECK_OK(dp_ring_ws_create(0, &rw));
    CHECK_OK(dp_ring_allreduce(b, (size_t)512 * 784, DP_REDUCE_SUM, MPI_COMM_WORLD, rw));
    dp_comm_stats cs;
    dp_ring_ws_stats(rw, &cs);
    dp_ring_ws_free(rw);
    if (g_size > 1) {
        double ratio = (double)cs.bytes_sent / (double)st.bytes_sent;
        CHECK(ratio >= 20.0, "ratio %.1f", ratio);
        if (0 == g_rank)
            printf("    powersgd:4 512x784 P=%d: %llu B sent/rank vs dense ring %llu B "
                   "(%.1fx)\n", g_size, (unsigned long long)st.bytes_sent,
                   (unsigned long long)cs.bytes_sent, ratio);
    }
    /* Non-finite on one rank: every rank reports it. */
    if (g_rank == g_size - 1)
        b[1000] = NAN;
    dp_status s = dp_powersgd_allreduce(pl, b, MPI_COMM_WORLD, NULL);
    CHECK(DP_ERR_NONFINITE == s, "NaN: got %s", dp_status_name(s));
    dp_powersgd_free(pl);
    free(b);
    free(g);
    free(g2);
    free(saved);
    free(in);
    free(out);
    dp_powersgd_free(ps);
    dp_powersgd_free(ps2);
    end_case("powersgd error feedback, resume, bytes");
}

static void test_psgd_args(void)
{
    dp_powersgd *ps = NULL;
    const dp_powersgd_matrix over[] = {{0, 10, 10}, {50, 10, 10}};
    CHECK(DP_ERR_ARG == dp_powersgd_create(200, over, 2, NULL, 0, 2, 1, &ps), "overlap");
    const dp_powersgd_matrix out[] = {{150, 10, 10}};
    CHECK(DP_ERR_ARG == dp_powersgd_create(200, out, 1, NULL, 0, 2, 1, &ps), "outside");
    CHECK(DP_ERR_ARG == dp_powersgd_create(200, NULL, 0, NULL, 0, 0, 1, &ps), "rank 0");
    CHECK(NULL == ps, "out set on error");
    end_case("powersgd argument checks");
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    if (0 == g_rank)
        printf("topk/powersgd tests at %d rank(s)\n", g_size);
    dp_topk_ws *ws = NULL;
    CHECK_OK(dp_topk_ws_create(&ws));
    end_case("topk workspace");
    test_topk_full(ws);
    topk_ef(ws, 10007, 0.01, DP_TOPK_SPARSE, 6, "topk:0.01 sparse, error feedback");
    topk_ef(ws, 10007, 0.05, DP_TOPK_AUTO, 6, "topk:0.05 auto, error feedback");
    topk_ef(ws, 4099, 0.3, DP_TOPK_DENSE, 5, "topk:0.3 dense, error feedback");
    topk_ef(ws, 17, 0.01, DP_TOPK_AUTO, 4, "topk k=1 (n 17), error feedback");
    test_topk_dense_vs_sparse(ws);
    test_topk_momentum(ws);
    test_topk_nonfinite(ws);
    test_topk_bytes(ws);
    dp_topk_ws_free(ws);
    test_psgd_args();
    test_psgd_lowrank();
    test_psgd_ef_bytes();
    if (0 == g_rank)
        printf("topk/powersgd tests: %ld passed, %ld failed\n", g_total_checks - g_total_fail,
               g_total_fail);
    MPI_Finalize();
    return g_total_fail ? 1 : 0;
}
