/* Multi-rank tests of the comm room: ring allreduce against MPI_Allreduce and
 * against sums computed locally, on the world and on sub-communicators, with the
 * identity codec raw and staged; the engine (threaded and inline); byte counters;
 * error paths.
 *
 * Run by ctest under mpiexec at 1, 2, 3 and 4 ranks (tests/CMakeLists.txt,
 * "--- comm ---"). Plain C, no Criterion: a failed CHECK prints "rank R: ..."
 * and counts; after each case the counts are summed over ranks and any failure
 * ends the job with MPI_Abort(1). Rank 0 ends with "comm tests: N passed, 0 failed".
 *
 * Tolerance on random data: the ring adds the P contributions of an element in
 * ring order, MPI_Allreduce in its own (recursive doubling, Rabenseifner...).
 * Any order of a sum of P floats is within (P-1)*u*sum|x| of the exact sum
 * (u = eps/2, Higham, Accuracy and Stability, 2nd ed., eq. 4.4), so two orders
 * differ by at most (P-1)*eps*sum|x|; AVG divides that by P and adds one rounding
 * of the quotient (eps*|avg|). Integer-valued data in [-8, 8] is summed exactly
 * in any order, and there the results must be equal bit for bit. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mpi.h>

#include "comm/comm_internal.h"
#include "dptrain/comm.h"
#include "mpi_check.h"

static int g_provided;


/* ------------------------------------------------------------------------- */
/* Data                                                                       */
/* ------------------------------------------------------------------------- */


static float *xalloc(size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof(float));
    if (NULL == p) {
        fprintf(stderr, "rank %d: out of memory (%zu floats)\n", g_rank, n);
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    return p;
}

/* Reference: MPI_Allreduce(SUM) then / P, written here without our code. */
static void ref_allreduce(float *b, size_t n, dp_reduce_op op, MPI_Comm comm)
{
    int p;
    MPI_Comm_size(comm, &p);
    if (n)
        MPI_Allreduce(MPI_IN_PLACE, b, (int)n, MPI_FLOAT, MPI_SUM, comm);
    if (DP_REDUCE_AVG == op)
        for (size_t i = 0; i < n; i++)
            b[i] /= (float)p;
}

/* Ring (with codec and ws) vs MPI_Allreduce on the same input, and for integer
 * data also vs the sum computed locally from every rank's generator. */
static void ring_vs_mpi(MPI_Comm comm, size_t n, dp_reduce_op op, int integer,
                        dp_ring_ws *ws, const dp_ring_codec *codec, const char *what)
{
    int p, r;
    MPI_Comm_size(comm, &p);
    MPI_Comm_rank(comm, &r);
    uint64_t seed = n * 31 + (uint64_t)op * 7 + (uint64_t)integer;
    float *a = xalloc(n), *b = xalloc(n), *sa = NULL;
    for (size_t i = 0; i < n; i++)
        a[i] = b[i] = integer ? gen_int(r, i, seed) : gen_rand(r, i, seed);
    if (!integer) {
        sa = xalloc(n);
        for (size_t i = 0; i < n; i++)
            sa[i] = fabsf(a[i]);
        if (n)
            MPI_Allreduce(MPI_IN_PLACE, sa, (int)n, MPI_FLOAT, MPI_SUM, comm);
    }
    dp_status st = dp_ring_allreduce_with(n ? a : NULL, n, op, comm, ws, codec);
    CHECK(DP_OK == st, "%s n=%zu: %s: %s", what, n, dp_status_name(st), dp_errmsg());
    ref_allreduce(b, n, op, comm);

    size_t bad = 0, first = 0;
    double worst = 0.0;
    const double eps = (double)FLT_EPSILON;
    for (size_t i = 0; i < n; i++) {
        int ok;
        if (integer) {
            float want = 0.0f;
            for (int q = 0; q < p; q++)
                want += gen_int(q, i, seed);
            if (DP_REDUCE_AVG == op)
                want /= (float)p;
            ok = a[i] == b[i] && a[i] == want;
        } else {
            double tol = (p - 1) * eps * (double)sa[i];
            if (DP_REDUCE_AVG == op)
                tol = tol / p + eps * fabs((double)b[i]);
            double d = fabs((double)a[i] - (double)b[i]);
            if (tol > 0 && d / tol > worst)
                worst = d / tol;
            ok = d <= tol;
        }
        if (!ok && 0 == bad++)
            first = i;
    }
    CHECK(0 == bad, "%s n=%zu op=%s %s: %zu mismatches, first at %zu: ring %.9g mpi %.9g",
          what, n, DP_REDUCE_SUM == op ? "sum" : "avg", integer ? "int" : "rand", bad, first,
          n ? a[first] : 0.0, n ? b[first] : 0.0);
    (void)worst;
    free(a);
    free(b);
    free(sa);
}

/* The counts the brief names, for a communicator of p ranks and segment seg. */
static size_t make_counts(int p, size_t seg, size_t maxn, size_t *out)
{
    size_t all[] = {0, 1, (size_t)p - 1, (size_t)p, (size_t)p + 1, 7, 1000, 65537, 100000, 1000003, 4194304,
                    seg - 1, seg, seg + 1, (size_t)p * seg - 1, (size_t)p * seg,
                    (size_t)p * seg + 1};
    size_t k = 0;
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i] <= maxn)
            out[k++] = all[i];
    return k;
}

static void sweep(MPI_Comm comm, dp_ring_ws *ws, size_t seg_bytes, const dp_ring_codec *codec, size_t maxn,
                  int randoms, const char *what)
{
    int p;
    MPI_Comm_size(comm, &p);
    size_t counts[32];
    size_t k = make_counts(p, seg_bytes / sizeof(float), maxn, counts);
    for (size_t i = 0; i < k; i++) {
        for (int op = DP_REDUCE_SUM; op <= DP_REDUCE_AVG; op++) {
            ring_vs_mpi(comm, counts[i], (dp_reduce_op)op, 1, ws, codec, what);
            if (randoms)
                ring_vs_mpi(comm, counts[i], (dp_reduce_op)op, 0, ws, codec, what);
        }
    }
}

/* ------------------------------------------------------------------------- */
/* Cases                                                                      */
/* ------------------------------------------------------------------------- */

static void case_ring_world_default(void)
{
    dp_ring_ws *ws;
    CHECK_OK(dp_ring_ws_create(0, &ws));
    sweep(MPI_COMM_WORLD, ws, DP_RING_SEGMENT_BYTES_DEFAULT, &dp_ring_codec_identity, 4194304, 1, "world/default-seg");
    dp_ring_ws_free(ws);
}

static void case_ring_world_small_segments(void)
{
    dp_ring_ws *ws;
    /* 64-byte segments: blocks of a few hundred floats already stream. */
    CHECK_OK(dp_ring_ws_create(64, &ws));
    sweep(MPI_COMM_WORLD, ws, 64, &dp_ring_codec_identity, 100000, 1, "world/seg=64B");
    dp_ring_ws_free(ws);
    /* 4 KiB segments up to the 1,000,003 prime, and a 4M run. */
    CHECK_OK(dp_ring_ws_create(4096, &ws));
    sweep(MPI_COMM_WORLD, ws, 4096, &dp_ring_codec_identity, 4194304, 0, "world/seg=4KiB");
    dp_ring_ws_free(ws);
    /* An odd segment size (not a power of two, 13 floats). */
    CHECK_OK(dp_ring_ws_create(52, &ws));
    sweep(MPI_COMM_WORLD, ws, 52, &dp_ring_codec_identity, 20000, 0, "world/seg=52B");
    dp_ring_ws_free(ws);
}

static void case_ring_depths(void)
{
    for (int d = 1; d <= 4; d++) {
        dp_ring_ws *ws;
        CHECK_OK(dp_ring_ws_create(256, &ws));
        CHECK_OK(dp_ring_ws_set_depth(ws, d));
        char what[64];
        snprintf(what, sizeof what, "world/seg=256B/depth=%d", d);
        sweep(MPI_COMM_WORLD, ws, 256, &dp_ring_codec_identity, 100000, 0, what);
        dp_ring_ws_free(ws);
    }
}

/* The identity codec through the non-raw path (encode into staging, forward
 * received messages as they are): the seam every other codec takes. */
static const dp_ring_codec *staged(void)
{
    static dp_ring_codec c;
    c = dp_ring_codec_identity;
    c.name = "f32-staged";
    c.raw = 0;
    return &c;
}

static void case_ring_staged_codec(void)
{
    dp_ring_ws *ws;
    CHECK_OK(dp_ring_ws_create(4096, &ws));
    sweep(MPI_COMM_WORLD, ws, 4096, staged(), 1000003, 1, "world/staged");
    dp_ring_ws_free(ws);
    CHECK_OK(dp_ring_ws_create(64, &ws));
    CHECK_OK(dp_ring_ws_set_depth(ws, 3));
    sweep(MPI_COMM_WORLD, ws, 64, staged(), 20000, 0, "world/staged/seg=64B");
    dp_ring_ws_free(ws);
}

static void case_ring_subcomms(void)
{
    MPI_Comm halves, oddeven;
    MPI_Comm_split(MPI_COMM_WORLD, g_rank < (g_size + 1) / 2, g_rank, &halves);
    MPI_Comm_split(MPI_COMM_WORLD, g_rank % 2, g_size - g_rank, &oddeven); /* reversed order */
    dp_ring_ws *ws, *small;
    CHECK_OK(dp_ring_ws_create(0, &ws));
    CHECK_OK(dp_ring_ws_create(128, &small));
    /* One workspace across communicators of different sizes: it regrows. */
    sweep(halves, ws, DP_RING_SEGMENT_BYTES_DEFAULT, &dp_ring_codec_identity, 1000003, 1, "halves");
    sweep(oddeven, ws, DP_RING_SEGMENT_BYTES_DEFAULT, &dp_ring_codec_identity, 1000003, 1, "odd-even");
    sweep(halves, small, 128, &dp_ring_codec_identity, 20000, 0, "halves/seg=128B");
    sweep(oddeven, small, 128, staged(), 20000, 0, "odd-even/staged");
    dp_ring_ws_free(ws);
    dp_ring_ws_free(small);
    MPI_Comm_free(&halves);
    MPI_Comm_free(&oddeven);
}

static void case_dp_allreduce_switch(void)
{
    dp_ring_ws *ws;
    CHECK_OK(dp_ring_ws_create(0, &ws));
    const size_t n = 100003;
    float *a = xalloc(n), *b = xalloc(n), *c = xalloc(n);
    for (size_t i = 0; i < n; i++)
        a[i] = b[i] = c[i] = gen_int(g_rank, i, 99);
    CHECK_OK(dp_allreduce(a, n, DP_REDUCE_AVG, DP_ALLREDUCE_RING, MPI_COMM_WORLD, ws));
    CHECK_OK(dp_allreduce(b, n, DP_REDUCE_AVG, DP_ALLREDUCE_MPI, MPI_COMM_WORLD, NULL));
    CHECK_OK(dp_ring_allreduce(c, n, DP_REDUCE_AVG, MPI_COMM_WORLD, NULL)); /* temporary ws */
    CHECK(0 == memcmp(a, b, n * sizeof(float)), "ring and MPI differ on integer data");
    CHECK(0 == memcmp(a, c, n * sizeof(float)), "ring with a temporary workspace differs");
    /* the caller's error handler is back in place */
    MPI_Errhandler eh;
    MPI_Comm_get_errhandler(MPI_COMM_WORLD, &eh);
    CHECK(MPI_ERRORS_ARE_FATAL == eh, "error handler of MPI_COMM_WORLD not restored");
    MPI_Errhandler_free(&eh);
    free(a);
    free(b);
    free(c);
    dp_ring_ws_free(ws);
}

static void case_byte_counters(void)
{
    const size_t n = 1000003;
    const int p = g_size, r = g_rank;
    dp_ring_ws *ws;
    CHECK_OK(dp_ring_ws_create(0, &ws));
    float *a = xalloc(n);
    for (size_t i = 0; i < n; i++)
        a[i] = 1.0f;
    for (int rep = 0; rep < 3; rep++)
        CHECK_OK(dp_ring_allreduce(a, n, DP_REDUCE_AVG, MPI_COMM_WORLD, ws));
    dp_comm_stats s;
    dp_ring_ws_stats(ws, &s);
    /* rank r sends block (r-s) and receives block (r-s-1) at each of 2(P-1) steps */
    uint64_t want_sent = 0, want_recv = 0;
    size_t base = n / (size_t)p, rem = n % (size_t)p;
    for (int st = 0; st < 2 * (p - 1); st++) {
        int bs = ((r - st) % p + p) % p, br = ((r - st - 1) % p + p) % p;
        want_sent += (base + ((size_t)bs < rem)) * sizeof(float);
        want_recv += (base + ((size_t)br < rem)) * sizeof(float);
    }
    CHECK(3 == s.calls && 3 * n == s.elems, "calls %llu elems %llu",
          (unsigned long long)s.calls, (unsigned long long)s.elems);
    CHECK(3 * want_sent == s.bytes_sent, "bytes_sent %llu, want %llu",
          (unsigned long long)s.bytes_sent, (unsigned long long)(3 * want_sent));
    CHECK(3 * want_recv == s.bytes_recv, "bytes_recv %llu, want %llu",
          (unsigned long long)s.bytes_recv, (unsigned long long)(3 * want_recv));
    uint64_t tot[2] = {s.bytes_sent, s.bytes_recv};
    MPI_Allreduce(MPI_IN_PLACE, tot, 2, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
    uint64_t want_tot = 3ull * 2 * (uint64_t)(p - 1) * n * sizeof(float);
    CHECK(tot[0] == want_tot && tot[1] == want_tot, "total bytes %llu/%llu, want %llu",
          (unsigned long long)tot[0], (unsigned long long)tot[1],
          (unsigned long long)want_tot);
    for (size_t i = 0; i < n; i++)
        if (a[i] != 1.0f) {
            CHECK(a[i] == 1.0f, "avg of ones is %g at %zu", a[i], i);
            break;
        }
    dp_ring_ws_reset_stats(ws);
    dp_ring_ws_stats(ws, &s);
    CHECK(0 == s.calls && 0 == s.bytes_sent, "reset_stats left counts");
    free(a);
    dp_ring_ws_free(ws);
}

/* The engine: ranges of one flat buffer, submitted back to back, equal the same
 * allreduces run one by one (bit for bit: same algorithm, same order). With
 * `late`, the last rank starts 30 ms after the others and every rank "computes"
 * for 10 ms halfway: the other threads then wait for a late peer while their
 * training thread is busy, the case where the ring's waits sleep (ring_wait). */
static const size_t k_ranges[] = {0, 1, 3, 1000, 65537, 7, 300000, 2, 131072, 65536, 5, 0, 999};
#define NRANGES (sizeof k_ranges / sizeof k_ranges[0])

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void engine_round(dp_engine *e, MPI_Comm comm, dp_allreduce_algo algo, dp_ring_ws *ws,
                         uint64_t seed, int late, const char *what)
{
    int r, p;
    MPI_Comm_rank(comm, &r);
    MPI_Comm_size(comm, &p);
    if (late && r == p - 1)
        sleep_ms(30);
    size_t total = 0;
    for (size_t k = 0; k < NRANGES; k++)
        total += k_ranges[k];
    float *x = xalloc(total), *y = xalloc(total);
    for (size_t i = 0; i < total; i++)
        x[i] = y[i] = gen_rand(r, i, seed);
    size_t off = 0;
    for (size_t k = 0; k < NRANGES; k++) {
        dp_reduce_op op = k % 2 ? DP_REDUCE_AVG : DP_REDUCE_SUM;
        CHECK_OK(dp_engine_submit(e, x + off, k_ranges[k], op));
        off += k_ranges[k];
        if (late && k == NRANGES / 2)
            sleep_ms(10);
    }
    CHECK_OK(dp_engine_wait_all(e));
    /* the training thread may call MPI again now */
    int one = 1;
    MPI_Allreduce(MPI_IN_PLACE, &one, 1, MPI_INT, MPI_SUM, comm);
    off = 0;
    for (size_t k = 0; k < NRANGES; k++) {
        dp_reduce_op op = k % 2 ? DP_REDUCE_AVG : DP_REDUCE_SUM;
        if (DP_ALLREDUCE_RING == algo)
            CHECK_OK(dp_ring_allreduce(y + off, k_ranges[k], op, comm, ws));
        else
            ref_allreduce(y + off, k_ranges[k], op, comm);
        off += k_ranges[k];
    }
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < total; i++)
        if (x[i] != y[i] && 0 == bad++)
            first = i;
    CHECK(0 == bad, "%s: %zu of %zu floats differ, first at %zu (%.9g vs %.9g)", what, bad,
          total, first, total ? x[first] : 0.0, total ? y[first] : 0.0);
    free(x);
    free(y);
}

static void engine_suite(MPI_Comm comm, const char *name)
{
    int multiple = dp_comm_thread_level_ok(g_provided);
    for (int threaded = 0; threaded <= 1; threaded++) {
        for (int algo = DP_ALLREDUCE_RING; algo <= DP_ALLREDUCE_MPI; algo++) {
            dp_engine *e = NULL;
            dp_status st = dp_engine_create(comm, (dp_allreduce_algo)algo, threaded, &e);
            if (threaded && !multiple) {
                CHECK(DP_ERR_ARG == st, "threaded engine without MPI_THREAD_MULTIPLE");
                continue;
            }
            CHECK(DP_OK == st, "dp_engine_create: %s", dp_errmsg());
            if (DP_OK != st)
                continue;
            dp_ring_ws *ws;
            CHECK_OK(dp_ring_ws_create(0, &ws));
            char what[128];
            snprintf(what, sizeof what, "%s engine %s %s", name,
                     threaded ? "threaded" : "inline", algo ? "mpi" : "ring");
            CHECK_OK(dp_engine_wait_all(e)); /* nothing submitted */
            CHECK_OK(dp_engine_wait_all(e));
            for (int step = 0; step < 12; step++) /* reuse over "steps" */
                engine_round(e, comm, (dp_allreduce_algo)algo, ws, 1000 + (uint64_t)step,
                             step < 2, what);
            dp_comm_stats s;
            dp_engine_stats(e, &s);
            size_t elems = 0;
            for (size_t k = 0; k < NRANGES; k++)
                elems += k_ranges[k];
            CHECK(12 * NRANGES == s.calls && 12 * elems == s.elems,
                  "%s: calls %llu elems %llu", what, (unsigned long long)s.calls,
                  (unsigned long long)s.elems);
            int p;
            MPI_Comm_size(comm, &p);
            if (DP_ALLREDUCE_RING == algo && p > 1)
                CHECK(s.bytes_sent > 0 && s.bytes_recv > 0 && s.seconds > 0, "%s: no bytes",
                      what);
            dp_engine_free(e);
            dp_ring_ws_free(ws);
        }
    }
}

static void case_engine(void)
{
    engine_suite(MPI_COMM_WORLD, "world");
    MPI_Comm oddeven;
    MPI_Comm_split(MPI_COMM_WORLD, g_rank % 2, g_rank, &oddeven);
    engine_suite(oddeven, "odd-even");
    MPI_Comm_free(&oddeven);
}

/* More ranges than the queue holds: submit blocks until the thread makes room. */
static void case_engine_queue_full(void)
{
    if (!dp_comm_thread_level_ok(g_provided))
        return;
    const size_t nr = 3 * DP_ENGINE_QUEUE_CAP + 17;
    float *x = xalloc(nr * 3);
    for (size_t i = 0; i < nr * 3; i++)
        x[i] = gen_int(g_rank, i, 5);
    dp_engine *e;
    CHECK_OK(dp_engine_create(MPI_COMM_WORLD, DP_ALLREDUCE_RING, 1, &e));
    for (size_t k = 0; k < nr; k++)
        CHECK_OK(dp_engine_submit(e, x + 3 * k, 1 + k % 3, DP_REDUCE_SUM));
    CHECK_OK(dp_engine_wait_all(e));
    size_t bad = 0;
    for (size_t k = 0; k < nr; k++)
        for (size_t j = 0; j < 3; j++) {
            size_t i = 3 * k + j;
            float want = 0.0f;
            if (j < 1 + k % 3)
                for (int q = 0; q < g_size; q++)
                    want += gen_int(q, i, 5);
            else
                want = gen_int(g_rank, i, 5); /* outside every range: untouched */
            bad += x[i] != want;
        }
    CHECK(0 == bad, "%zu wrong floats after %zu queued ranges", bad, nr);
    dp_engine_free(e);
    free(x);
}

static void case_errors_args(void)
{
    float x[4] = {1, 2, 3, 4};
    dp_ring_ws *ws;
    CHECK_OK(dp_ring_ws_create(0, &ws));
    dp_status st = dp_ring_allreduce(NULL, 10, DP_REDUCE_SUM, MPI_COMM_WORLD, ws);
    CHECK(DP_ERR_ARG == st && has(dp_errmsg(), "NULL"), "NULL buf: %d %s", st, dp_errmsg());
    st = dp_ring_allreduce(x, 4, (dp_reduce_op)7, MPI_COMM_WORLD, ws);
    CHECK(DP_ERR_ARG == st && has(dp_errmsg(), "op"), "bad op: %d %s", st, dp_errmsg());
    st = dp_ring_allreduce(x, 4, DP_REDUCE_SUM, MPI_COMM_NULL, ws);
    CHECK(DP_ERR_ARG == st && has(dp_errmsg(), "MPI_COMM_NULL"), "null comm: %s", dp_errmsg());
    st = dp_allreduce(x, 4, DP_REDUCE_SUM, (dp_allreduce_algo)9, MPI_COMM_WORLD, ws);
    CHECK(DP_ERR_ARG == st && has(dp_errmsg(), "algorithm"), "bad algo: %s", dp_errmsg());
    st = dp_allreduce(NULL, 4, DP_REDUCE_SUM, DP_ALLREDUCE_MPI, MPI_COMM_WORLD, ws);
    CHECK(DP_ERR_ARG == st, "NULL buf (mpi): %s", dp_errmsg());
    CHECK_OK(dp_ring_allreduce(NULL, 0, DP_REDUCE_SUM, MPI_COMM_WORLD, ws)); /* 0: fine */
    dp_ring_ws *bad = NULL;
    st = dp_ring_ws_create(2, &bad);
    CHECK(DP_ERR_ARG == st && NULL == bad, "2-byte segment accepted");
    dp_engine *e = NULL;
    st = dp_engine_create(MPI_COMM_NULL, DP_ALLREDUCE_RING, 0, &e);
    CHECK(DP_ERR_ARG == st && NULL == e, "engine on MPI_COMM_NULL: %s", dp_errmsg());
    CHECK_OK(dp_engine_create(MPI_COMM_WORLD, DP_ALLREDUCE_RING, 0, &e));
    st = dp_engine_submit(e, NULL, 3, DP_REDUCE_SUM);
    CHECK(DP_ERR_ARG == st && has(dp_errmsg(), "NULL"), "engine NULL buf: %s", dp_errmsg());
    CHECK_OK(dp_engine_wait_all(e)); /* an argument error is not sticky */
    dp_engine_free(e);
    dp_engine_free(NULL);
    dp_ring_ws_free(NULL);
    CHECK(dp_comm_thread_level_ok(MPI_THREAD_MULTIPLE), "MULTIPLE refused");
    CHECK(!dp_comm_thread_level_ok(MPI_THREAD_SERIALIZED), "SERIALIZED accepted");
    dp_ring_ws_free(ws);
}

/* Ranks that disagree on the count: on a 2-rank communicator rank 0 passes 8
 * floats and rank 1 passes 4. Unchecked, rank 1's receive of rank 0's 16-byte
 * segment would be truncated, which MPICH reports as a fatal error inside
 * MPI_Wait. Both must return DP_ERR_MPI naming the rank, the peer, both counts
 * and the step, without hanging, and leave nothing behind: an agreeing call on
 * the same communicator afterwards gets the right sum. */
static void case_errors_mpi(void)
{
    if (g_size < 2)
        return;
    MPI_Comm pair;
    MPI_Comm_split(MPI_COMM_WORLD, g_rank < 2 ? 0 : MPI_UNDEFINED, g_rank, &pair);
    if (MPI_COMM_NULL == pair)
        return;
    float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    size_t n = 0 == g_rank ? 8 : 4;
    dp_ring_ws *ws;
    CHECK_OK(dp_ring_ws_create(0, &ws));
    dp_status st = dp_ring_allreduce(x, n, DP_REDUCE_SUM, pair, ws);
    CHECK(DP_ERR_MPI == st, "mismatched counts returned %s", dp_status_name(st));
    CHECK(has(dp_errmsg(), "rank") && has(dp_errmsg(), "peer rank") &&
              has(dp_errmsg(), "step") && has(dp_errmsg(), "disagree"),
          "message does not name rank/peer/step: %s", dp_errmsg());
    CHECK(has(dp_errmsg(), 0 == g_rank ? "with 4 floats" : "with 8 floats"),
          "message does not name the peer's count: %s", dp_errmsg());
    printf("    (expected) rank %d: %s\n", g_rank, dp_errmsg());
    fflush(stdout);
    MPI_Errhandler eh;
    MPI_Comm_get_errhandler(pair, &eh);
    CHECK(MPI_ERRORS_ARE_FATAL == eh, "error handler not restored after an error");
    MPI_Errhandler_free(&eh);

    /* The engine keeps the first error and skips what follows. */
    for (int threaded = 0; threaded <= dp_comm_thread_level_ok(g_provided); threaded++) {
        dp_engine *e;
        CHECK_OK(dp_engine_create(pair, DP_ALLREDUCE_RING, threaded, &e));
        float y[8] = {0};
        st = dp_engine_submit(e, y, n, DP_REDUCE_SUM);
        if (!threaded)
            CHECK(DP_ERR_MPI == st, "inline submit: %s", dp_status_name(st));
        st = dp_engine_submit(e, y, 1, DP_REDUCE_SUM);
        if (!threaded)
            CHECK(DP_ERR_MPI == st, "sticky error: %s", dp_status_name(st));
        st = dp_engine_wait_all(e);
        CHECK(DP_ERR_MPI == st && has(dp_errmsg(), "peer rank"), "wait_all: %s: %s",
              dp_status_name(st), dp_errmsg());
        dp_engine_free(e);
    }
    float z[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    CHECK_OK(dp_ring_allreduce(z, 8, DP_REDUCE_SUM, pair, ws));
    for (int i = 0; i < 8; i++)
        CHECK(z[i] == 2.0f * (float)(i + 1), "after the refused calls: z[%d] = %g", i, (double)z[i]);
    dp_ring_ws_free(ws);
    MPI_Comm_free(&pair);
}

/* ------------------------------------------------------------------------- */

static int g_passed;

static void run(const char *name, void (*fn)(void)) { g_passed = run_case("comm", name, fn); }

int main(int argc, char **argv)
{
    MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &g_provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    if (0 == g_rank)
        printf("comm tests on %d rank(s), MPI thread level %d%s\n", g_size, g_provided,
               dp_comm_thread_level_ok(g_provided) ? " (MULTIPLE)" : "");
    run("errors: arguments", case_errors_args);
    run("errors: ranks disagree", case_errors_mpi);
    run("ring = MPI, world, default seg", case_ring_world_default);
    run("ring = MPI, world, small segs", case_ring_world_small_segments);
    run("ring = MPI, receive depths 1..4", case_ring_depths);
    run("ring = MPI, staged codec path", case_ring_staged_codec);
    run("ring = MPI, sub-communicators", case_ring_subcomms);
    run("dp_allreduce ring/mpi switch", case_dp_allreduce_switch);
    run("byte counters", case_byte_counters);
    run("engine: ranges, steps, algos", case_engine);
    run("engine: queue overflow", case_engine_queue_full);
    if (0 == g_rank)
        printf("comm tests: %d passed, 0 failed\n", g_passed);
    MPI_Finalize();
    return 0;
}
