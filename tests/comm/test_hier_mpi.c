/* Multi-rank tests of the topology-aware allreduces: flat recursive
 * halving/doubling (dp_rd_allreduce) and the hierarchical allreduce with a ring
 * or halving/doubling across nodes (dp_hier_allreduce), through their own calls,
 * dp_allreduce and the engine; node detection and its simulated form
 * (DP_RANKS_PER_NODE) and its errors; byte counters.
 *
 * Run by ctest under mpiexec at 1, 2, 3 and 4 ranks. Simulated topologies: R = 1
 * (every rank a node: at 3 ranks, 3 nodes, so halving/doubling folds), R = 2
 * (at 2 and 4 ranks: 2 nodes of 2 at 4), R = size (one node), and the real one
 * (MPI_Comm_split_type: one node on this machine). Data are integers in [-8, 8],
 * whose sums are exact in any order, so every result must equal MPI_Allreduce's
 * bit for bit (and hence be the same on every rank). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "comm/comm_internal.h"
#include "dptrain/comm.h"
#include "mpi_check.h"

static int g_provided;

static float *xalloc(size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof(float));
    if (NULL == p)
        MPI_Abort(MPI_COMM_WORLD, 2);
    return p;
}

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

/* The count classes: 0, 1, fewer than the ranks, not divisible by them, several
 * 13-float segments, and large (past rd.c's 64 Ki-float chunks even halved). */
static size_t count_of(int k, int P)
{
    const size_t c[] = {0, 1, (size_t)(P > 1 ? P - 1 : 1), (size_t)7 * P + 3, (size_t)40 * P + 5, 3 * 65536 + 5};
    return c[k];
}
#define NCOUNTS 6

enum { ALG_RD, ALG_HIER, ALG_HIER_RD, NALG };
static const char *const alg_name[NALG] = {"rd", "hier", "hier-rd"};

/* One call of algorithm `alg` on comm (topology t for the hierarchical ones)
 * against MPI_Allreduce on the same data. */
static void one(int alg, MPI_Comm comm, dp_topo *t, dp_ring_ws *ws, size_t n, dp_reduce_op op, const char *topo)
{
    int p, r;
    MPI_Comm_size(comm, &p);
    MPI_Comm_rank(comm, &r);
    const uint64_t seed = n * 131 + (uint64_t)op * 7 + (uint64_t)alg;
    float *a = xalloc(n), *b = xalloc(n);
    for (size_t i = 0; i < n; i++)
        a[i] = b[i] = gen_int(r, i, seed);
    dp_status st = ALG_RD == alg ? dp_rd_allreduce(n ? a : NULL, n, op, comm, ws)
                                 : dp_hier_allreduce(n ? a : NULL, n, op, ALG_HIER == alg ? DP_ALLREDUCE_RING : DP_ALLREDUCE_RD,
                                                     t, ws);
    CHECK(DP_OK == st, "%s %s n=%zu op=%d: %s", alg_name[alg], topo, n, (int)op, dp_errmsg());
    ref_allreduce(b, n, op, comm);
    size_t bad = 0, first = n;
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float)) && bad++ == 0)
            first = i;
    CHECK(0 == bad, "%s %s n=%zu op=%s: %zu of %zu differ from MPI_Allreduce, first [%zu] %g vs %g", alg_name[alg],
          topo, n, op ? "avg" : "sum", bad, n, first, first < n ? (double)a[first] : 0.0,
          first < n ? (double)b[first] : 0.0);
    free(a);
    free(b);
}

/* Every algorithm, count class and op on comm with topology t (freed here). */
static void sweep_topo(MPI_Comm comm, dp_topo *t, size_t seg_bytes)
{
    int p, nodes, per, node, local;
    MPI_Comm_size(comm, &p);
    const int even = dp_topo_shape(t, &nodes, &per, &node, &local);
    char what[64];
    snprintf(what, sizeof what, "[%d nodes x %d%s, seg %zu B]", nodes, per, even ? "" : " uneven", seg_bytes);
    dp_ring_ws *ws = NULL;
    CHECK_OK(dp_ring_ws_create(seg_bytes, &ws));
    for (int alg = 0; alg < NALG; alg++)
        for (int k = 0; k < NCOUNTS; k++)
            for (int op = 0; op < 2; op++)
                one(alg, comm, t, ws, count_of(k, p), (dp_reduce_op)op, what);
    dp_ring_ws_free(ws);
    dp_topo_free(t);
}

/* The same with nodes of R ranks (0: MPI's). */
static void sweep(MPI_Comm comm, int R, size_t seg_bytes)
{
    int p;
    MPI_Comm_size(comm, &p);
    dp_topo *t = NULL;
    CHECK_OK(dp_topo_create(comm, R, &t));
    if (NULL == t)
        return;
    int nodes, per;
    CHECK(dp_topo_shape(t, &nodes, &per, NULL, NULL), "R=%d: uneven", R);
    if (R)
        CHECK(per == R && nodes == p / R, "R=%d: %d nodes of %d", R, nodes, per);
    else
        CHECK(nodes * per == p, "split_type: %d nodes of %d, size %d", nodes, per, p);
    sweep_topo(comm, t, seg_bytes);
}

/* Layouts a launcher may produce: ranks dealt round-robin to 2 nodes
 * (mpirun --map-by node), and uneven nodes (one rank alone), which run the
 * flat ring and must still equal MPI_Allreduce. */
static void case_layouts(void)
{
    if (g_size < 3)
        return;
    dp_topo *t = NULL;
    if (0 == g_size % 2) {
        CHECK_OK(dp_topo_create_colored(MPI_COMM_WORLD, g_rank % 2, &t));
        int nodes, per, node, local;
        CHECK(t && dp_topo_shape(t, &nodes, &per, &node, &local) && 2 == nodes && node == g_rank % 2 &&
                  local == g_rank / 2, "round-robin: not 2 even nodes with this rank at node %d, local %d",
              g_rank % 2, g_rank / 2);
        if (t)
            sweep_topo(MPI_COMM_WORLD, t, 64);
    }
    CHECK_OK(dp_topo_create_colored(MPI_COMM_WORLD, 0 == g_rank ? 0 : 1, &t));
    int nodes, per;
    CHECK(t && !dp_topo_shape(t, &nodes, &per, NULL, NULL) && 2 == nodes && per == g_size - 1,
          "1 + %d ranks: not uneven 2 nodes", g_size - 1);
    if (NULL == t)
        return;
    /* the fallback is the flat ring: the ring's bytes, none counted as between nodes */
    dp_ring_ws *w1 = NULL, *w2 = NULL;
    CHECK_OK(dp_ring_ws_create(0, &w1));
    CHECK_OK(dp_ring_ws_create(0, &w2));
    float x[37] = {0}, y[37] = {0};
    CHECK_OK(dp_hier_allreduce(x, 37, DP_REDUCE_SUM, DP_ALLREDUCE_RD, t, w1));
    CHECK_OK(dp_ring_allreduce(y, 37, DP_REDUCE_SUM, MPI_COMM_WORLD, w2));
    dp_comm_stats s1, s2;
    dp_ring_ws_stats(w1, &s1);
    dp_ring_ws_stats(w2, &s2);
    CHECK(s1.bytes_sent == s2.bytes_sent && 0 == s1.bytes_inter_sent && 1 == s1.calls,
          "uneven: %llu bytes (ring %llu), %llu between nodes", (unsigned long long)s1.bytes_sent,
          (unsigned long long)s2.bytes_sent, (unsigned long long)s1.bytes_inter_sent);
    dp_ring_ws_free(w1);
    dp_ring_ws_free(w2);
    sweep_topo(MPI_COMM_WORLD, t, 0);
}

static void case_sweep_world(void)
{
    for (int R = 1; R <= g_size; R++)
        if (0 == g_size % R)
            sweep(MPI_COMM_WORLD, R, 0);
    sweep(MPI_COMM_WORLD, 0, 0); /* MPI_Comm_split_type */
}

static void case_sweep_small_segments(void)
{
    for (int R = 1; R <= g_size; R++)
        if (0 == g_size % R)
            sweep(MPI_COMM_WORLD, R, 13 * sizeof(float));
}

/* A communicator whose ranks run backwards: nothing may assume world ranks. */
static void case_sweep_reversed(void)
{
    MPI_Comm rev;
    MPI_Comm_split(MPI_COMM_WORLD, 0, g_size - g_rank, &rev);
    sweep(rev, 1, 64);
    if (0 == g_size % 2)
        sweep(rev, 2, 64);
    MPI_Comm_free(&rev);
}

/* dp_allreduce and the engine with the new algorithms, nodes from DP_RANKS_PER_NODE. */
static void case_switch_and_engine(void)
{
    const int R = 0 == g_size % 2 ? 2 : 1;
    char v[16];
    snprintf(v, sizeof v, "%d", R);
    setenv("DP_RANKS_PER_NODE", v, 1);
    const size_t n = (size_t)9 * g_size + 2;
    dp_topo *t = NULL;
    dp_ring_ws *ws = NULL;
    CHECK_OK(dp_topo_create(MPI_COMM_WORLD, 0, &t));
    CHECK_OK(dp_ring_ws_create(0, &ws));
    if (t) {
        int per;
        dp_topo_shape(t, NULL, &per, NULL, NULL);
        CHECK(per == R, "DP_RANKS_PER_NODE=%d: %d per node", R, per);
    }
    float *a = xalloc(n), *b = xalloc(n);
    const dp_allreduce_algo algos[] = {DP_ALLREDUCE_RD, DP_ALLREDUCE_HIER, DP_ALLREDUCE_HIER_RD};
    /* without a topology the hierarchical ones refuse, before any message */
    CHECK(DP_ERR_ARG == dp_allreduce(a, n, DP_REDUCE_SUM, DP_ALLREDUCE_HIER, MPI_COMM_WORLD, ws) &&
              has(dp_errmsg(), "topology"), "no topology: %s", dp_errmsg());
    dp_ring_ws_set_topo(ws, t);
    for (int k = 0; k < 3; k++)
        for (int op = 0; op < 2; op++) {
            for (size_t i = 0; i < n; i++)
                a[i] = b[i] = gen_int(g_rank, i, (uint64_t)k * 3 + (uint64_t)op);
            CHECK_OK(dp_allreduce(a, n, (dp_reduce_op)op, algos[k], MPI_COMM_WORLD, ws));
            ref_allreduce(b, n, (dp_reduce_op)op, MPI_COMM_WORLD);
            CHECK(!memcmp(a, b, n * sizeof(float)), "dp_allreduce %s op %d differs from MPI_Allreduce",
                  dp_allreduce_algo_name(algos[k]), op);
        }
    MPI_Comm other;
    MPI_Comm_dup(MPI_COMM_WORLD, &other);
    CHECK(DP_ERR_ARG == dp_allreduce(a, n, DP_REDUCE_SUM, DP_ALLREDUCE_HIER, other, ws) &&
              has(dp_errmsg(), "another communicator"), "other comm: %s", dp_errmsg());
    MPI_Comm_free(&other);

    const int threaded = dp_comm_thread_level_ok(g_provided);
    for (int k = 0; k < 3; k++) {
        dp_engine *e = NULL;
        CHECK_OK(dp_engine_create(MPI_COMM_WORLD, algos[k], threaded, &e));
        if (NULL == e)
            continue;
        for (int step = 0; step < 2; step++) {
            for (size_t i = 0; i < n; i++)
                a[i] = b[i] = gen_int(g_rank, i, 100 + (uint64_t)k * 5 + (uint64_t)step);
            /* three ranges of a bucketed buffer, the last one empty */
            CHECK_OK(dp_engine_submit(e, a + 5, n - 5, DP_REDUCE_AVG));
            CHECK_OK(dp_engine_submit(e, a, 5, DP_REDUCE_SUM));
            CHECK_OK(dp_engine_submit(e, a + n, 0, DP_REDUCE_SUM));
            CHECK_OK(dp_engine_wait_all(e));
            ref_allreduce(b + 5, n - 5, DP_REDUCE_AVG, MPI_COMM_WORLD);
            ref_allreduce(b, 5, DP_REDUCE_SUM, MPI_COMM_WORLD);
            CHECK(!memcmp(a, b, n * sizeof(float)), "engine %s step %d differs from MPI_Allreduce",
                  dp_allreduce_algo_name(algos[k]), step);
        }
        dp_comm_stats s;
        dp_engine_stats(e, &s);
        CHECK(6 == s.calls && 2 * n == s.elems, "engine %s: %llu calls, %llu elems", dp_allreduce_algo_name(algos[k]),
              (unsigned long long)s.calls, (unsigned long long)s.elems);
        CHECK((g_size > 1) == (s.bytes_sent > 0), "engine %s: %llu bytes sent", dp_allreduce_algo_name(algos[k]),
              (unsigned long long)s.bytes_sent);
        dp_engine_free(e);
    }
    free(a);
    free(b);
    dp_ring_ws_free(ws);
    dp_topo_free(t);
    unsetenv("DP_RANKS_PER_NODE");
}

/* A bad DP_RANKS_PER_NODE: DP_ERR_ARG on every rank naming the variable, its
 * value and the world size, from dp_topo_create and from the engine. */
static void case_bad_env(void)
{
    char big[16], nodiv[16] = "", want[32];
    snprintf(big, sizeof big, "%d", g_size + 1);
    if (g_size >= 3) /* 2 does not divide 3; at 4, 3 does not divide */
        snprintf(nodiv, sizeof nodiv, "%d", 4 == g_size ? 3 : 2);
    const char *bad[] = {"0", "-2", "abc", "2x", big, nodiv};
    snprintf(want, sizeof want, "world size %d", g_size);
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        if ('\0' == bad[k][0])
            continue;
        setenv("DP_RANKS_PER_NODE", bad[k], 1);
        dp_topo *t = NULL;
        dp_status st = dp_topo_create(MPI_COMM_WORLD, 0, &t);
        char quoted[32];
        snprintf(quoted, sizeof quoted, "'%s'", bad[k]);
        CHECK(DP_ERR_ARG == st && NULL == t && has(dp_errmsg(), "DP_RANKS_PER_NODE") && has(dp_errmsg(), quoted) &&
                  has(dp_errmsg(), want), "DP_RANKS_PER_NODE=%s: %s: %s", bad[k], dp_status_name(st), dp_errmsg());
        dp_topo_free(t);
        dp_engine *e = NULL;
        st = dp_engine_create(MPI_COMM_WORLD, DP_ALLREDUCE_HIER, 0, &e);
        CHECK(DP_ERR_ARG == st && NULL == e && has(dp_errmsg(), "DP_RANKS_PER_NODE"), "engine, DP_RANKS_PER_NODE=%s: %s",
              bad[k], dp_errmsg());
        dp_engine_free(e);
    }
    unsetenv("DP_RANKS_PER_NODE");
    dp_topo *t = NULL;
    CHECK(DP_ERR_ARG == dp_topo_create(MPI_COMM_WORLD, g_size + 1, &t) && NULL == t, "R = size + 1 accepted");
    CHECK(DP_ERR_ARG == dp_topo_create(MPI_COMM_WORLD, -1, &t) && NULL == t, "R = -1 accepted");
    CHECK(DP_ERR_ARG == dp_hier_allreduce(NULL, 0, DP_REDUCE_SUM, DP_ALLREDUCE_RING, NULL, NULL), "NULL topology");
    /* a flat ring still runs afterwards: nothing was left on the communicator */
    float z[3] = {1, 2, 3};
    CHECK_OK(dp_ring_allreduce(z, 3, DP_REDUCE_SUM, MPI_COMM_WORLD, NULL));
    CHECK(z[2] == 3.0f * (float)g_size, "ring after refusals: %g", (double)z[2]);
}

/* Counters of the hierarchical ring: one call per call; the inter-node bytes
 * are exactly the column ring's (both halves send every block of the slice but
 * one: 2 m - block (c+1) - block (c+2) of the slice's N-way split, c the node);
 * none within one node; over all ranks, sent = received. */
static void case_counters(void)
{
    for (int R = 1; R <= g_size; R++) {
        if (g_size % R)
            continue;
        dp_topo *t = NULL;
        dp_ring_ws *ws = NULL;
        CHECK_OK(dp_topo_create(MPI_COMM_WORLD, R, &t));
        CHECK_OK(dp_ring_ws_create(0, &ws));
        int N, L, c, l;
        dp_topo_shape(t, &N, &L, &c, &l);
        const size_t n = (size_t)11 * g_size + 3;
        float *a = xalloc(n);
        for (size_t i = 0; i < n; i++)
            a[i] = gen_int(g_rank, i, 9);
        CHECK_OK(dp_hier_allreduce(a, n, DP_REDUCE_SUM, DP_ALLREDUCE_RING, t, ws));
        dp_comm_stats s;
        dp_ring_ws_stats(ws, &s);
        const size_t m = dp_block_len(n, L, (l + 1) % L);
        const uint64_t inter = N > 1 ? 4 * (2 * m - dp_block_len(m, N, (c + 1) % N) - dp_block_len(m, N, (c + 2) % N)) : 0;
        CHECK(1 == s.calls && n == s.elems, "R=%d: %llu calls", R, (unsigned long long)s.calls);
        CHECK(s.bytes_inter_sent == inter && (s.bytes_inter_recv > 0) == (N > 1),
              "R=%d: inter-node bytes sent %llu, expected %llu (slice %zu over %d nodes)", R,
              (unsigned long long)s.bytes_inter_sent, (unsigned long long)inter, m, N);
        CHECK(s.bytes_sent >= s.bytes_inter_sent && (L > 1 || s.bytes_sent == s.bytes_inter_sent),
              "R=%d: %llu bytes sent in all", R, (unsigned long long)s.bytes_sent);
        uint64_t v[2] = {s.bytes_sent, s.bytes_recv};
        MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
        CHECK(v[0] == v[1], "R=%d: %llu bytes sent, %llu received over all ranks", R, (unsigned long long)v[0],
              (unsigned long long)v[1]);
        free(a);
        dp_ring_ws_free(ws);
        dp_topo_free(t);
    }
}

static int g_passed;
static void run(const char *name, void (*fn)(void)) { g_passed = run_case("hier", name, fn); }

int main(int argc, char **argv)
{
    MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &g_provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    unsetenv("DP_RANKS_PER_NODE");
    if (0 == g_rank)
        printf("hier tests on %d rank(s)\n", g_size);
    run("rd, hier, hier-rd = MPI: every R", case_sweep_world);
    run("same, 13-float segments", case_sweep_small_segments);
    run("same, reversed communicator", case_sweep_reversed);
    run("same, round-robin and uneven nodes", case_layouts);
    run("dp_allreduce switch, engine", case_switch_and_engine);
    run("bad DP_RANKS_PER_NODE", case_bad_env);
    run("byte counters", case_counters);
    if (0 == g_rank)
        printf("hier tests: %d passed, 0 failed\n", g_passed);
    MPI_Finalize();
    return 0;
}
