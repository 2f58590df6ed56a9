/* Multi-rank tests of the sparse-rows allreduce (src/comm/rows.c): against a
 * dense MPI_Allreduce of the whole table restricted to the union of the rows,
 * on the world and on sub-communicators, with the ring and the MPI algorithm,
 * SUM and AVG; the union (sorted, exact); untouched rows left alone; byte
 * counters; capacity and bad ids reported on every rank; argument errors.
 *
 * Run by ctest under mpiexec at 1, 2, 3 and 4 ranks (tests/CMakeLists.txt).
 * Plain C, no Criterion: a failed CHECK prints "rank R: ..." and counts; after
 * each case the counts are summed over ranks and any failure ends the job with
 * MPI_Abort(1). Rank 0 ends with "rows tests: N passed, 0 failed".
 *
 * Row sets are a pure function of (kind, rank, P, seed), so every rank can
 * compute every other rank's set and hence the expected union locally.
 *
 * Tolerance on random data in [-1, 1): the ring adds an element's P
 * contributions in ring order, MPI_Allreduce in its own; two orders of a sum of
 * P floats differ by at most (P-1) eps sum|x| (Higham, 2nd ed., eq. 4.4), and
 * AVG adds one rounding of the quotient. We allow P eps sum|x| + eps |ref|.
 * Integer-valued data in [-8, 8] sums exactly in any order: bit for bit there. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "dptrain/comm.h"
#include "mpi_check.h"

/* ------------------------------------------------------------------------- */
/* Data                                                                       */
/* ------------------------------------------------------------------------- */

static void *xalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (NULL == p) {
        fprintf(stderr, "rank %d: out of memory (%zu bytes)\n", g_rank, bytes);
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    return p;
}

typedef enum set_kind {
    SET_RANDOM = 0, /* random ids with repeats, unsorted, on every rank */
    SET_SOME_EMPTY, /* odd ranks touch nothing, even ranks random */
    SET_FIRST_EMPTY,/* rank 0 touches nothing, the others random */
    SET_SAME,       /* every rank the same ids (each in its own order, repeated) */
    SET_DISJOINT,   /* rank q: ids = q mod P only */
    SET_ENDS,       /* row 0 and the last row on every rank, plus random ids */
    SET_ALL_EMPTY,  /* nobody touches anything: empty union */
    SET_FULL,       /* every row of the table (needs max_rows >= table rows) */
    SET_KINDS
} set_kind;

static const char *const k_kind_name[SET_KINDS] = {
    "random", "odd ranks empty", "rank 0 empty", "all same", "disjoint",
    "row 0 and last", "all empty", "full table"};

/* Rank q's ids for (kind, P, table rows T, seed): at most max_distinct distinct,
 * written to out (capacity 2 max_distinct + 4). @return the count. */
static size_t make_rows(set_kind kind, int q, int P, size_t T, size_t max_distinct, uint64_t seed,
                        int32_t *out)
{
    uint64_t s = seed * 0x9e37ull + (uint64_t)q * 0x1000193ull + (uint64_t)kind;
    size_t n = 0;
    if (SET_ALL_EMPTY == kind || (SET_SOME_EMPTY == kind && q % 2) ||
        (SET_FIRST_EMPTY == kind && 0 == q))
        return 0;
    if (SET_FULL == kind) {
        for (size_t i = T; i-- > 0;) /* descending: unsorted input */
            out[n++] = (int32_t)i;
        out[n++] = 0;
        return n;
    }
    size_t nd = max_distinct ? 1 + mix(s) % max_distinct : 0; /* raw draws: distinct <= nd */
    if (SET_ENDS == kind) {
        out[n++] = (int32_t)(T - 1);
        out[n++] = 0;
        nd = nd > 2 ? nd - 2 : 0;
    }
    for (size_t i = 0; i < nd; i++) {
        uint64_t h = SET_SAME == kind ? mix(seed * 31 + i) : mix(s + 1000 + i);
        int32_t id;
        if (SET_DISJOINT == kind) {
            size_t slots = (T - (size_t)q + (size_t)P - 1) / (size_t)P; /* ids q, q+P, ... < T */
            if (0 == slots)
                break;
            id = (int32_t)((size_t)q + (size_t)P * (h % slots));
        } else {
            id = (int32_t)(h % T);
        }
        out[n++] = id;
    }
    if (SET_SAME == kind) /* each rank its own order: rotate by q */
        for (size_t i = 0, r = n ? (size_t)q % n : 0; r && i < r; i++) {
            int32_t t = out[0];
            memmove(out, out + 1, (n - 1) * sizeof *out);
            out[n - 1] = t;
        }
    size_t reps = n ? mix(s + 7) % (n + 1) : 0; /* repeats of earlier ids */
    for (size_t i = 0; i < reps && n < 2 * max_distinct + 4; i++) {
        int32_t id = out[mix(s + 50 + i) % n];
        out[n++] = id;
    }
    return n;
}

/* ------------------------------------------------------------------------- */
/* The check                                                                  */
/* ------------------------------------------------------------------------- */

/* One call on comm against the dense reference; ws made for (M, dim, T). */
static void rows_vs_dense(MPI_Comm comm, size_t T, size_t dim, size_t M, set_kind kind,
                          dp_reduce_op op, dp_allreduce_algo algo, int integer, uint64_t seed,
                          dp_rows_ws *ws, const char *what)
{
    int P, r;
    MPI_Comm_size(comm, &P);
    MPI_Comm_rank(comm, &r);
    const size_t n = T * dim;
    float *table = xalloc(n * sizeof *table), *orig = xalloc(n * sizeof *orig),
          *ref = xalloc(n * sizeof *ref), *sabs = xalloc(n * sizeof *sabs);
    for (size_t i = 0; i < n; i++) {
        table[i] = orig[i] = ref[i] = integer ? gen_int(r, i, seed) : gen_rand(r, i, seed);
        sabs[i] = fabsf(table[i]);
    }
    MPI_Allreduce(MPI_IN_PLACE, ref, (int)n, MPI_FLOAT, MPI_SUM, comm);
    MPI_Allreduce(MPI_IN_PLACE, sabs, (int)n, MPI_FLOAT, MPI_SUM, comm);
    if (DP_REDUCE_AVG == op)
        for (size_t i = 0; i < n; i++)
            ref[i] /= (float)P;

    const size_t cap = 2 * M + 4;
    int32_t *rows = xalloc(cap * sizeof *rows);
    size_t nrows = make_rows(kind, r, P, T, M, seed, rows);

    /* expected union, from every rank's set */
    unsigned char *in = calloc(T, 1);
    int32_t *other = xalloc(cap * sizeof *other);
    for (int q = 0; q < P; q++) {
        size_t m = make_rows(kind, q, P, T, M, seed, other);
        for (size_t i = 0; i < m; i++)
            in[other[i]] = 1;
    }
    size_t want_nu = 0;
    for (size_t i = 0; i < T; i++)
        want_nu += in[i];

    const int32_t *uni = NULL;
    size_t nu = (size_t)-1;
    CHECK_OK(dp_rows_allreduce(table, T, dim, rows, nrows, op, algo, comm, ws, &uni, &nu));
    CHECK(nu == want_nu, "%s: union of %zu rows, want %zu", what, nu, want_nu);
    size_t bad_union = 0;
    for (size_t j = 0; j < nu && j < want_nu; j++)
        bad_union += !in[uni[j]] || (j > 0 && uni[j] <= uni[j - 1]);
    CHECK(0 == bad_union, "%s: %zu union entries wrong or not strictly increasing", what,
          bad_union);

    size_t bad_in = 0, bad_out = 0, first = (size_t)-1;
    for (size_t row = 0; row < T; row++)
        for (size_t c = 0; c < dim; c++) {
            size_t i = row * dim + c;
            int ok;
            if (!in[row])
                ok = 0 == memcmp(&table[i], &orig[i], sizeof(float)); /* bits unchanged */
            else if (integer)
                ok = table[i] == ref[i];
            else
                ok = fabsf(table[i] - ref[i]) <=
                     (float)P * FLT_EPSILON * sabs[i] + FLT_EPSILON * fabsf(ref[i]);
            if (!ok) {
                if (in[row])
                    bad_in++;
                else
                    bad_out++;
                if ((size_t)-1 == first)
                    first = i;
            }
        }
    CHECK(0 == bad_in && 0 == bad_out,
          "%s: %zu wrong union floats, %zu changed untouched floats (first at row %zu col %zu: "
          "got %.9g, want %.9g)", what, bad_in, bad_out, first / dim, first % dim,
          (size_t)-1 == first ? 0.0 : (double)table[first],
          (size_t)-1 == first ? 0.0 : (double)(in[first / dim] ? ref[first] : orig[first]));
    free(table);
    free(orig);
    free(ref);
    free(sabs);
    free(rows);
    free(other);
    free(in);
}

/* Every kind x op x algo, integer and random data, one workspace reused (so a
 * bitmap not cleared between calls would show). */
static void suite(MPI_Comm comm, size_t T, size_t dim, size_t M, const char *name)
{
    dp_rows_ws *ws = NULL;
    CHECK_OK(dp_rows_ws_create(M, dim, T, comm, &ws));
    if (NULL == ws)
        return;
    uint64_t seed = 1;
    for (int kind = 0; kind < SET_KINDS; kind++) {
        if (SET_FULL == kind && M < T)
            continue;
        for (int op = DP_REDUCE_SUM; op <= DP_REDUCE_AVG; op++)
            for (int algo = DP_ALLREDUCE_RING; algo <= DP_ALLREDUCE_MPI; algo++)
                for (int integer = 1; integer >= 0; integer--) {
                    char what[160];
                    snprintf(what, sizeof what, "%s T=%zu dim=%zu M=%zu %s %s %s %s", name, T,
                             dim, M, k_kind_name[kind], op ? "avg" : "sum",
                             algo ? "mpi" : "ring", integer ? "int" : "rand");
                    rows_vs_dense(comm, T, dim, M, (set_kind)kind, (dp_reduce_op)op,
                                  (dp_allreduce_algo)algo, integer, seed++, ws, what);
                }
    }
    dp_rows_ws_free(ws);
}

/* ------------------------------------------------------------------------- */
/* Cases                                                                      */
/* ------------------------------------------------------------------------- */

static void case_world_small(void) { suite(MPI_COMM_WORLD, 1000, 7, 200, "world"); }

static void case_world_embedding(void) { suite(MPI_COMM_WORLD, 4096, 128, 1500, "world"); }

static void case_tiny_full(void)
{
    suite(MPI_COMM_WORLD, 1, 1, 1, "world");
    suite(MPI_COMM_WORLD, 5, 3, 5, "world");
    suite(MPI_COMM_WORLD, 37, 2, 64, "world"); /* max_rows clipped to the table */
}

static void case_subcomms(void)
{
    MPI_Comm oddeven;
    MPI_Comm_split(MPI_COMM_WORLD, g_rank % 2, g_rank, &oddeven);
    suite(oddeven, 500, 5, 100, "odd-even");
    MPI_Comm_free(&oddeven);
}

/* Smaller workspace than needed, bad ids: DP_ERR_ARG on every rank, naming the
 * rank at fault; the table untouched; the next call works. */
static void case_capacity_and_bad_ids(void)
{
    const size_t T = 100, dim = 4, M = 8;
    float table[400], orig[400];
    for (size_t i = 0; i < T * dim; i++)
        table[i] = orig[i] = gen_int(g_rank, i, 99);
    dp_rows_ws *ws;
    CHECK_OK(dp_rows_ws_create(M, dim, T, MPI_COMM_WORLD, &ws));

    /* repeats are free: 50 entries of 8 distinct ids fit */
    int32_t rows[64];
    for (int i = 0; i < 50; i++)
        rows[i] = (int32_t)(10 + (i * 7) % 8);
    size_t nu = 0;
    const int32_t *uni;
    CHECK_OK(dp_rows_allreduce(table, T, dim, rows, 50, DP_REDUCE_SUM, DP_ALLREDUCE_RING,
                               MPI_COMM_WORLD, ws, &uni, &nu));
    CHECK(8 == nu && 10 == uni[0] && 17 == uni[7], "repeats: union %zu", nu);
    memcpy(table, orig, sizeof table);

    /* the last rank touches 9 distinct rows */
    const int culprit = g_size - 1;
    size_t n = 0;
    for (int i = 0; i < (g_rank == culprit ? 9 : 3); i++)
        rows[n++] = (int32_t)(i * 11);
    dp_status st = dp_rows_allreduce(table, T, dim, rows, n, DP_REDUCE_SUM, DP_ALLREDUCE_RING,
                                     MPI_COMM_WORLD, ws, &uni, &nu);
    char want[64];
    snprintf(want, sizeof want, "rank %d of %d touched 9 distinct rows", culprit, g_size);
    CHECK(DP_ERR_ARG == st && has(dp_errmsg(), want) && has(dp_errmsg(), "max_rows_per_rank"),
          "over capacity: %s: %s", dp_status_name(st), dp_errmsg());
    CHECK(NULL == uni && 0 == nu, "over capacity: union returned");
    if (0 == g_rank)
        printf("    (expected) %s\n", dp_errmsg());
    CHECK(0 == memcmp(table, orig, sizeof table), "over capacity: table changed");

    /* rank 0 passes the id T (one past the end), others fine */
    n = 0;
    rows[n++] = 3;
    if (0 == g_rank)
        rows[n++] = (int32_t)T;
    st = dp_rows_allreduce(table, T, dim, rows, n, DP_REDUCE_SUM, DP_ALLREDUCE_MPI,
                           MPI_COMM_WORLD, ws, &uni, &nu);
    snprintf(want, sizeof want, "rank 0 of %d passed row id %zu", g_size, T);
    CHECK(DP_ERR_ARG == st && has(dp_errmsg(), want), "id out of range: %s: %s",
          dp_status_name(st), dp_errmsg());
    if (0 == g_rank)
        printf("    (expected) %s\n", dp_errmsg());
    rows[0] = -5;
    st = dp_rows_allreduce(table, T, dim, rows, 1, DP_REDUCE_SUM, DP_ALLREDUCE_RING,
                           MPI_COMM_WORLD, ws, &uni, &nu);
    CHECK(DP_ERR_ARG == st && has(dp_errmsg(), "row id -5"), "negative id: %s", dp_errmsg());
    CHECK(0 == memcmp(table, orig, sizeof table), "bad id: table changed");

    /* the communicator is still in step: a good call gives the right sum */
    rows[0] = 42;
    CHECK_OK(dp_rows_allreduce(table, T, dim, rows, 1, DP_REDUCE_SUM, DP_ALLREDUCE_RING,
                               MPI_COMM_WORLD, ws, &uni, &nu));
    CHECK(1 == nu && 42 == uni[0], "after errors: union %zu", nu);
    for (size_t c = 0; c < dim; c++) {
        float want_v = 0;
        for (int q = 0; q < g_size; q++)
            want_v += gen_int(q, 42 * dim + c, 99);
        CHECK(table[42 * dim + c] == want_v, "after errors: col %zu %g != %g", c,
              (double)table[42 * dim + c], (double)want_v);
    }
    dp_rows_ws_free(ws);
}

/* Local argument errors, MPI_COMM_NULL, a workspace made for fewer ranks. */
static void case_errors_args(void)
{
    float t[40] = {0};
    int32_t rows[3] = {4, 1, 4};
    const int32_t *uni;
    size_t nu;
    dp_rows_ws *ws = NULL;
    dp_status st = dp_rows_ws_create(4, 0, 10, MPI_COMM_WORLD, &ws);
    CHECK(DP_ERR_ARG == st && NULL == ws && has(dp_errmsg(), "dim"), "dim 0: %s", dp_errmsg());
    st = dp_rows_ws_create(4, 4, 0, MPI_COMM_WORLD, &ws);
    CHECK(DP_ERR_ARG == st && NULL == ws, "0 rows: %s", dp_errmsg());
    st = dp_rows_ws_create(4, 4, ((size_t)1 << 31) + 1, MPI_COMM_WORLD, &ws);
    CHECK(DP_ERR_ARG == st && NULL == ws && has(dp_errmsg(), "int32"), "2^31+1 rows: %s",
          dp_errmsg());

    /* MPI_COMM_NULL: sorted unique ids, nothing reduced */
    CHECK_OK(dp_rows_ws_create(4, 4, 10, MPI_COMM_NULL, &ws));
    for (int i = 0; i < 40; i++)
        t[i] = (float)i;
    CHECK_OK(dp_rows_allreduce(t, 10, 4, rows, 3, DP_REDUCE_AVG, DP_ALLREDUCE_RING,
                               MPI_COMM_NULL, ws, &uni, &nu));
    CHECK(2 == nu && 1 == uni[0] && 4 == uni[1], "local union: %zu", nu);
    int same = 1;
    for (int i = 0; i < 40; i++)
        same &= t[i] == (float)i;
    CHECK(same, "MPI_COMM_NULL changed the table");
    CHECK_OK(dp_rows_allreduce(t, 10, 4, NULL, 0, DP_REDUCE_SUM, DP_ALLREDUCE_MPI,
                               MPI_COMM_NULL, ws, &uni, &nu));
    CHECK(0 == nu, "empty local union: %zu", nu);
    /* 5 distinct > 4 on one rank, no MPI */
    int32_t five[5] = {0, 1, 2, 3, 9};
    st = dp_rows_allreduce(t, 10, 4, five, 5, DP_REDUCE_SUM, DP_ALLREDUCE_RING, MPI_COMM_NULL,
                           ws, &uni, &nu);
    CHECK(DP_ERR_ARG == st && has(dp_errmsg(), "rank 0 of 1 touched 5"), "local capacity: %s",
          dp_errmsg());
    /* a workspace for 1 rank on a larger communicator */
    st = dp_rows_allreduce(t, 10, 4, rows, 3, DP_REDUCE_SUM, DP_ALLREDUCE_RING, MPI_COMM_WORLD,
                           ws, &uni, &nu);
    if (g_size > 1)
        CHECK(DP_ERR_ARG == st && has(dp_errmsg(), "workspace made for 1"), "small ws: %s",
              dp_errmsg());
    else
        CHECK(DP_OK == st, "world of 1 with a 1-rank ws: %s", dp_errmsg());
    /* beyond the workspace's sizes, bad op / algo, NULLs */
    st = dp_rows_allreduce(t, 10, 5, rows, 3, DP_REDUCE_SUM, DP_ALLREDUCE_RING, MPI_COMM_NULL,
                           ws, &uni, &nu);
    CHECK(DP_ERR_ARG == st && has(dp_errmsg(), "dim"), "dim > ws: %s", dp_errmsg());
    st = dp_rows_allreduce(t, 11, 4, rows, 3, DP_REDUCE_SUM, DP_ALLREDUCE_RING, MPI_COMM_NULL,
                           ws, &uni, &nu);
    CHECK(DP_ERR_ARG == st && has(dp_errmsg(), "table_rows"), "rows > ws: %s", dp_errmsg());
    st = dp_rows_allreduce(t, 10, 4, rows, 3, (dp_reduce_op)7, DP_ALLREDUCE_RING, MPI_COMM_NULL,
                           ws, &uni, &nu);
    CHECK(DP_ERR_ARG == st && has(dp_errmsg(), "op"), "bad op: %s", dp_errmsg());
    st = dp_rows_allreduce(t, 10, 4, rows, 3, DP_REDUCE_SUM, (dp_allreduce_algo)9,
                           MPI_COMM_NULL, ws, &uni, &nu);
    CHECK(DP_ERR_ARG == st && has(dp_errmsg(), "algorithm"), "bad algo: %s", dp_errmsg());
    st = dp_rows_allreduce(t, 10, 4, NULL, 3, DP_REDUCE_SUM, DP_ALLREDUCE_RING, MPI_COMM_NULL,
                           ws, &uni, &nu);
    CHECK(DP_ERR_ARG == st && has(dp_errmsg(), "rows is NULL"), "NULL rows: %s", dp_errmsg());
    st = dp_rows_allreduce(NULL, 10, 4, rows, 3, DP_REDUCE_SUM, DP_ALLREDUCE_RING,
                           MPI_COMM_NULL, ws, &uni, &nu);
    CHECK(DP_ERR_ARG == st && has(dp_errmsg(), "table is NULL"), "NULL table: %s", dp_errmsg());
    st = dp_rows_allreduce(t, 10, 4, rows, 3, DP_REDUCE_SUM, DP_ALLREDUCE_RING, MPI_COMM_NULL,
                           NULL, &uni, &nu);
    CHECK(DP_ERR_ARG == st && has(dp_errmsg(), "ws"), "NULL ws: %s", dp_errmsg());
    dp_rows_ws_free(ws);
    dp_rows_ws_free(NULL);
}

/* Counters: ids and headers counted exactly, the ring's bytes as a plain ring of
 * the same count sends them, raw = a dense ring of the whole table. */
static void case_byte_counters(void)
{
    const size_t T = 300, dim = 16, M = 50;
    float *t = xalloc(T * dim * sizeof *t);
    for (size_t i = 0; i < T * dim; i++)
        t[i] = gen_int(g_rank, i, 3);
    dp_rows_ws *ws;
    CHECK_OK(dp_rows_ws_create(M, dim, T, MPI_COMM_WORLD, &ws));
    int32_t rows[4 * 50 + 4];
    size_t n = make_rows(SET_RANDOM, g_rank, g_size, T, M, 77, rows);
    const int32_t *uni;
    size_t nu;
    CHECK_OK(dp_rows_allreduce(t, T, dim, rows, n, DP_REDUCE_SUM, DP_ALLREDUCE_RING,
                               MPI_COMM_WORLD, ws, &uni, &nu));
    /* distinct ids per rank, as the ring allgather sends them: every block but (r+1) */
    long long distinct[4] = {0};
    for (int q = 0; q < g_size && q < 4; q++) {
        int32_t o[4 * 50 + 4];
        size_t m = make_rows(SET_RANDOM, q, g_size, T, M, 77, o);
        unsigned char seen[300] = {0};
        for (size_t i = 0; i < m; i++)
            distinct[q] += !seen[o[i]]++;
    }
    uint64_t ids_sent = 0, ids_recv = 0;
    for (int q = 0; q < g_size && g_size <= 4; q++) {
        if (q != (g_rank + 1) % g_size)
            ids_sent += 4 * (uint64_t)distinct[q];
        if (q != g_rank)
            ids_recv += 4 * (uint64_t)distinct[q];
    }
    float *buf = xalloc(nu * dim * sizeof *buf + 4);
    memset(buf, 0, nu * dim * sizeof *buf);
    dp_ring_ws *ring;
    CHECK_OK(dp_ring_ws_create(0, &ring));
    CHECK_OK(dp_ring_allreduce(buf, nu * dim, DP_REDUCE_SUM, MPI_COMM_WORLD, ring));
    dp_comm_stats rs, s;
    dp_ring_ws_stats(ring, &rs);
    dp_rows_ws_stats(ws, &s);
    const uint64_t hdr = g_size > 1 ? 24 * (uint64_t)(g_size - 1) : 0;
    CHECK(1 == s.calls && s.elems == nu * dim, "calls %llu elems %llu (want %zu)",
          (unsigned long long)s.calls, (unsigned long long)s.elems, nu * dim);
    if (g_size <= 4) {
        CHECK(s.bytes_sent == hdr + ids_sent + rs.bytes_sent,
              "bytes_sent %llu, want %llu + %llu + %llu", (unsigned long long)s.bytes_sent,
              (unsigned long long)hdr, (unsigned long long)ids_sent,
              (unsigned long long)rs.bytes_sent);
        CHECK(s.bytes_recv == hdr + ids_recv + rs.bytes_recv,
              "bytes_recv %llu, want %llu + %llu + %llu", (unsigned long long)s.bytes_recv,
              (unsigned long long)hdr, (unsigned long long)ids_recv,
              (unsigned long long)rs.bytes_recv);
    }
    uint64_t raw = g_size > 1 ? (uint64_t)(8.0 * T * dim * (g_size - 1) / g_size) : 0;
    CHECK(s.bytes_raw_sent == raw && s.bytes_codec_sent == s.bytes_sent,
          "raw %llu want %llu", (unsigned long long)s.bytes_raw_sent, (unsigned long long)raw);
    if (g_size > 1)
        CHECK(s.bytes_sent < s.bytes_raw_sent, "no saving: %llu >= %llu",
              (unsigned long long)s.bytes_sent, (unsigned long long)s.bytes_raw_sent);
    if (0 == g_rank)
        printf("    rows %zu/%zu: sent %llu bytes, dense ring %llu\n", nu, T,
               (unsigned long long)s.bytes_sent, (unsigned long long)s.bytes_raw_sent);
    dp_ring_ws_free(ring);
    dp_rows_ws_free(ws);
    free(buf);
    free(t);
}

/* ------------------------------------------------------------------------- */

static int g_passed;

static void run(const char *name, void (*fn)(void)) { g_passed = run_case("rows", name, fn); }

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    if (0 == g_rank)
        printf("rows tests on %d rank(s)\n", g_size);
    run("errors: arguments", case_errors_args);
    run("errors: capacity, bad ids", case_capacity_and_bad_ids);
    run("rows = dense, 1000 x 7", case_world_small);
    run("rows = dense, 4096 x 128", case_world_embedding);
    run("rows = dense, tiny and full", case_tiny_full);
    run("rows = dense, sub-communicators", case_subcomms);
    run("byte counters", case_byte_counters);
    if (0 == g_rank)
        printf("rows tests: %d passed, 0 failed\n", g_passed);
    MPI_Finalize();
    return 0;
}
