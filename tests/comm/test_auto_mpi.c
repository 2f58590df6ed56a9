/* `auto`: the decision table (parse, format, chooser, built-in rule), its
 * loading (rank 0 reads, every rank gets the same table; wrong shape falls back
 * to the built-in rule; bad files fail on every rank), and the engine and
 * dp_allreduce with DP_ALLREDUCE_AUTO against MPI_Allreduce, bit for bit on
 * integer data, with nodes simulated by DP_RANKS_PER_NODE and without.
 * Run by ctest under mpiexec at 1, 2, 3 and 4 ranks. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "comm/comm_internal.h"
#include "dptrain/comm.h"
#include "mpi_check.h"

static int g_provided;
static char g_tmp[256];

static float *xalloc(size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof(float));
    if (NULL == p)
        MPI_Abort(MPI_COMM_WORLD, 2);
    return p;
}

/* Rank 0 writes text to g_tmp/name; every rank gets the path in out. */
static void write_table(const char *name, const char *text, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", g_tmp, name);
    if (0 == g_rank) {
        FILE *f = fopen(out, "w");
        if (!f || fputs(text, f) < 0 || fclose(f))
            MPI_Abort(MPI_COMM_WORLD, 2);
    }
    MPI_Barrier(MPI_COMM_WORLD);
}

/* The chooser takes the first rule whose max_bytes holds the message, the last past them all. */
static void case_chooser(void)
{
    dp_allreduce_table t;
    const char *text = "# measured by hand\n"
                       "dptrain-allreduce-table 1\n"
                       "nodes 2\nranks_per_node 4\n"
                       "hosts 0123456789abcdef\n"
                       "mpi Open MPI v9.9\n"
                       "  \n"
                       "4096 mpi   # small\n"
                       "65536 rd\n"
                       "1048576 hier-rd\n"
                       "16777216 hier\n";
    CHECK_OK(dp_allreduce_table_parse(text, "t.txt", &t));
    CHECK(2 == t.nodes && 4 == t.per_node && 4 == t.nrules && !strcmp(t.hosts, "0123456789abcdef") &&
              !strcmp(t.mpi, "Open MPI v9.9"), "parsed %d x %d, %d rules, hosts '%s', mpi '%s'", t.nodes,
          t.per_node, t.nrules, t.hosts, t.mpi);
    const struct {
        uint64_t bytes;
        dp_allreduce_algo want;
    } cases[] = {{0, DP_ALLREDUCE_MPI},         {4096, DP_ALLREDUCE_MPI},
                 {4097, DP_ALLREDUCE_RD},       {65536, DP_ALLREDUCE_RD},
                 {65537, DP_ALLREDUCE_HIER_RD}, {1048576, DP_ALLREDUCE_HIER_RD},
                 {1048577, DP_ALLREDUCE_HIER},  {(uint64_t)1 << 40, DP_ALLREDUCE_HIER}};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        dp_allreduce_algo a = dp_allreduce_table_choose(&t, cases[k].bytes);
        CHECK(a == cases[k].want, "%" PRIu64 " bytes: %s, the table says %s", cases[k].bytes,
              dp_allreduce_algo_name(a), dp_allreduce_algo_name(cases[k].want));
    }
    /* format then parse gives the same rules */
    char buf[4096];
    dp_allreduce_table u;
    CHECK(dp_allreduce_table_format(&t, buf, sizeof buf) > 0, "format failed");
    CHECK_OK(dp_allreduce_table_parse(buf, "formatted", &u));
    CHECK(u.nrules == t.nrules && !memcmp(u.max_bytes, t.max_bytes, sizeof t.max_bytes) &&
              !memcmp(u.algo, t.algo, sizeof t.algo) && u.nodes == t.nodes && u.per_node == t.per_node &&
              !strcmp(u.hosts, t.hosts) && !strcmp(u.mpi, t.mpi), "round trip differs:\n%s", buf);
    CHECK(-1 == dp_allreduce_table_format(&t, buf, 40), "a short buffer was accepted");

    /* the built-in rule: mpi to 8 MiB then the ring on one node or one rank per node;
     * several of several: mpi to 64 KiB, then hier-rd (power-of-two nodes) or hier */
    dp_allreduce_table_default(1, 4, &t);
    CHECK(DP_ALLREDUCE_MPI == dp_allreduce_table_choose(&t, 8u << 20) &&
              DP_ALLREDUCE_RING == dp_allreduce_table_choose(&t, (8u << 20) + 1), "1 x 4 default");
    dp_allreduce_table_default(4, 1, &t);
    CHECK(DP_ALLREDUCE_RING == dp_allreduce_table_choose(&t, 64u << 20), "4 x 1 default");
    dp_allreduce_table_default(4, 2, &t);
    CHECK(DP_ALLREDUCE_MPI == dp_allreduce_table_choose(&t, 65536) &&
              DP_ALLREDUCE_HIER_RD == dp_allreduce_table_choose(&t, 65537), "4 x 2 default");
    dp_allreduce_table_default(3, 2, &t);
    CHECK(DP_ALLREDUCE_HIER == dp_allreduce_table_choose(&t, 1u << 20), "3 x 2 default");
}

/* The tuner's rule: the fastest median wins, MPI_Allreduce unless beaten by
 * the margin, then the previous size's winner unless beaten by the margin; runs
 * of one winner merge into one rule, and a rule that changes ends at the
 * geometric mean of the two measured sizes (a size between them takes the
 * nearer one's choice). */
static void case_tuner_rule(void)
{
    const dp_allreduce_algo al[3] = {DP_ALLREDUCE_RING, DP_ALLREDUCE_MPI, DP_ALLREDUCE_RD};
    dp_allreduce_table t = {.nodes = 1, .per_node = 2};
    const double m[][3] = {
        {10, 5, 6},     /* 4K:   mpi fastest */
        {10, 5, 4.9},   /* 8K:   rd 2% below mpi: inside the 3% margin, mpi */
        {10, 5, 4.5},   /* 16K:  rd 10% below: rd */
        {3, 5, 4.5},    /* 32K:  ring, 33% below rd */
        {3, 5, 4.5},    /* 64K:  ring, the same rule */
        {3, 5, 2.95},   /* 128K: rd 1.7% below the ring, the previous winner: ring */
        {3, 5, 2.5},    /* 256K: rd 17% below: rd */
        {3, 2.8, 2.5},  /* 512K: mpi is back, rd 11% below it: rd */
    };
    const int want[] = {1, 1, 2, 0, 0, 0, 2, 2};
    for (int i = 0; i < 8; i++) {
        int w = dp_allreduce_table_add(&t, (uint64_t)4096 << i, al, m[i], 3, 3.0);
        CHECK(w == want[i], "size %d: winner %d, want %d", 4096 << i, w, want[i]);
    }
    /* boundaries: floor(sqrt(8K x 16K)) = 11585, floor(sqrt(16K x 32K)) = 23170,
     * floor(sqrt(128K x 256K)) = 185363 */
    const uint64_t want_max[] = {11585, 23170, 185363, 524288};
    const dp_allreduce_algo want_algo[] = {DP_ALLREDUCE_MPI, DP_ALLREDUCE_RD, DP_ALLREDUCE_RING, DP_ALLREDUCE_RD};
    int same = 4 == t.nrules;
    for (int r = 0; same && r < 4; r++)
        same = want_max[r] == t.max_bytes[r] && want_algo[r] == t.algo[r];
    CHECK(same, "rules: %d: %llu %s, %llu %s, %llu %s, %llu %s", t.nrules, (unsigned long long)t.max_bytes[0],
          dp_allreduce_algo_name(t.algo[0]), (unsigned long long)t.max_bytes[1], dp_allreduce_algo_name(t.algo[1]),
          (unsigned long long)t.max_bytes[2], dp_allreduce_algo_name(t.algo[2]), (unsigned long long)t.max_bytes[3],
          dp_allreduce_algo_name(t.algo[3]));
    /* between measured sizes: the nearer one's choice */
    CHECK(DP_ALLREDUCE_MPI == dp_allreduce_table_choose(&t, 11585) &&
              DP_ALLREDUCE_RD == dp_allreduce_table_choose(&t, 11586) &&
              DP_ALLREDUCE_MPI == dp_allreduce_table_choose(&t, 10240) &&
              DP_ALLREDUCE_RD == dp_allreduce_table_choose(&t, 12288) &&
              DP_ALLREDUCE_RING == dp_allreduce_table_choose(&t, 160 << 10) &&
              DP_ALLREDUCE_RD == dp_allreduce_table_choose(&t, 224 << 10) &&
              DP_ALLREDUCE_RD == dp_allreduce_table_choose(&t, 64u << 20),
          "chooser between measured sizes");
    /* margin 0: the fastest, whoever it is */
    dp_allreduce_table u = {.nodes = 1, .per_node = 2};
    CHECK(2 == dp_allreduce_table_add(&u, 4096, al, m[1], 3, 0.0), "margin 0: not the fastest");
    CHECK(2 == dp_allreduce_table_add(&u, 8192, al, m[5], 3, 0.0), "margin 0: rd 2.95 against the ring's 3");
    CHECK(0 == dp_allreduce_table_add(&u, 16384, al, m[3], 3, 0.0), "margin 0: the ring, not the previous rd");
}

/* Each malformed table names the file, the line and the field. */
static void case_malformed(void)
{
    const char *H = "dptrain-allreduce-table 1\nnodes 1\nranks_per_node 2\n";
    char texts[16][256];
    const char *want[16];
    int k = 0;
#define BADT(w, ...) (snprintf(texts[k], sizeof texts[k], __VA_ARGS__), want[k++] = (w))
    BADT("t:1: header", "nodes 1\n");
    BADT("t:1: version", "dptrain-allreduce-table 2\n");
    BADT("t:1: header", "%s", "");
    BADT("t:4: algorithm: 'tree'", "%s4096 tree\n", H);
    BADT("t:4: algorithm: 'auto'", "%s4096 auto\n", H);
    BADT("t:4: algorithm: missing", "%s4096\n", H);
    BADT("t:5: max_bytes: 4096 is not above", "%s4096 mpi\n4096 ring\n", H);
    BADT("t:4: max_bytes: '12x'", "%s12x ring\n", H);
    BADT("t:2: nodes: 'two'", "dptrain-allreduce-table 1\nnodes two\n");
    BADT("t:3: nodes: given twice", "dptrain-allreduce-table 1\nnodes 1\nnodes 1\n");
    BADT("ranks_per_node: missing", "dptrain-allreduce-table 1\nnodes 1\n4096 mpi\n");
    BADT("max_bytes: no 'max_bytes algorithm' rules", "%s", H);
    BADT("t:4: field: unknown field 'colour'", "%scolour blue\n", H);
    BADT("t:4: algorithm: 'mpi ring'", "%s4096 mpi ring\n", H);
#undef BADT
    for (int i = 0; i < k; i++) {
        dp_allreduce_table t;
        dp_status st = dp_allreduce_table_parse(texts[i], "t", &t);
        CHECK(DP_ERR_ARG == st && has(dp_errmsg(), want[i]), "table %d: %s: '%s' (want '%s')", i,
              dp_status_name(st), dp_errmsg(), want[i]);
    }
}

/* Loading: the file for this shape is used; another shape's falls back to the
 * built-in rule; a missing or malformed file fails on every rank alike. */
static void case_load(void)
{
    char path[400], text[256];
    dp_allreduce_table t;
    snprintf(text, sizeof text, "dptrain-allreduce-table 1\nnodes 1\nranks_per_node %d\n100 rd\n1000 ring\n", g_size);
    write_table("good.txt", text, path, sizeof path);
    CHECK_OK(dp_allreduce_table_load(MPI_COMM_WORLD, path, 1, g_size, &t));
    CHECK(2 == t.nrules && DP_ALLREDUCE_RD == dp_allreduce_table_choose(&t, 100) && !strcmp(t.source, path),
          "good table: %d rules from %s", t.nrules, t.source);
    /* the environment when no path is given */
    setenv("DP_ALLREDUCE_TABLE", path, 1);
    CHECK_OK(dp_allreduce_table_load(MPI_COMM_WORLD, NULL, 1, g_size, &t));
    CHECK(!strcmp(t.source, path), "DP_ALLREDUCE_TABLE not used: %s", t.source);
    unsetenv("DP_ALLREDUCE_TABLE");
    /* rank 0's environment decides for all (a launcher may not pass it to every host) */
    if (0 == g_rank)
        setenv("DP_ALLREDUCE_TABLE", path, 1);
    CHECK_OK(dp_allreduce_table_load(MPI_COMM_WORLD, NULL, 1, g_size, &t));
    CHECK(!strcmp(t.source, path) && 2 == t.nrules, "DP_ALLREDUCE_TABLE on rank 0 only: %s", t.source);
    unsetenv("DP_ALLREDUCE_TABLE");
    CHECK_OK(dp_allreduce_table_load(MPI_COMM_WORLD, "", 1, g_size, &t));
    CHECK(!strcmp(t.source, "built-in"), "no table: %s", t.source);
    /* another shape: the built-in rule, not an error */
    CHECK_OK(dp_allreduce_table_load(MPI_COMM_WORLD, path, 2, g_size, &t));
    CHECK(!strcmp(t.source, "built-in") && 2 == t.nodes, "wrong shape used: %s", t.source);
    /* missing: DP_ERR_IO on every rank, naming the file */
    char missing[400];
    snprintf(missing, sizeof missing, "%s/none.txt", g_tmp);
    dp_status st = dp_allreduce_table_load(MPI_COMM_WORLD, missing, 1, g_size, &t);
    CHECK(DP_ERR_IO == st && has(dp_errmsg(), "none.txt"), "missing: %s: %s", dp_status_name(st), dp_errmsg());
    /* malformed: DP_ERR_ARG on every rank with file:line: field */
    write_table("bad.txt", "dptrain-allreduce-table 1\nnodes 1\nranks_per_node 1\n64 tree\n", path, sizeof path);
    st = dp_allreduce_table_load(MPI_COMM_WORLD, path, 1, g_size, &t);
    char want[450];
    snprintf(want, sizeof want, "%s:4: algorithm", path);
    CHECK(DP_ERR_ARG == st && has(dp_errmsg(), want), "malformed: %s: %s", dp_status_name(st), dp_errmsg());
    st = dp_allreduce_table_read(path, &t);
    CHECK(DP_ERR_ARG == st && has(dp_errmsg(), want), "read malformed: %s", dp_errmsg());
    /* the engine refuses alike */
    dp_engine *e = NULL;
    st = dp_engine_create_table(MPI_COMM_WORLD, DP_ALLREDUCE_AUTO, 0, path, &e);
    CHECK(DP_ERR_ARG == st && NULL == e && has(dp_errmsg(), want), "engine, malformed: %s", dp_errmsg());
    dp_engine_free(e);
    /* the hosts hash is the same on every rank */
    char h[17];
    CHECK_OK(dp_allreduce_hosts_hash(MPI_COMM_WORLD, h));
    char h0[17];
    memcpy(h0, h, sizeof h);
    MPI_Bcast(h0, 17, MPI_CHAR, 0, MPI_COMM_WORLD);
    CHECK(!strcmp(h, h0) && 16 == strlen(h), "hosts hash %s, rank 0 %s", h, h0);
}

static size_t count_of(int k, int P)
{
    const size_t c[] = {0, 1, (size_t)(P > 1 ? P - 1 : 1), (size_t)7 * P + 3, (size_t)40 * P + 5, 3 * 65536 + 5};
    return c[k];
}
#define NCOUNTS 6

/* The engine with `auto` and a table that sends the count classes to
 * different algorithms (or one algorithm for all): equals MPI_Allreduce. */
static void engine_against_mpi(const char *path, const char *what, int expect_nrules)
{
    const int threaded = dp_comm_thread_level_ok(g_provided);
    dp_engine *e = NULL;
    CHECK_OK(dp_engine_create_table(MPI_COMM_WORLD, DP_ALLREDUCE_AUTO, threaded, path, &e));
    if (NULL == e)
        return;
    const dp_allreduce_table *t = dp_engine_table(e);
    CHECK(t && t->nrules == expect_nrules, "%s: %d rules (source %s)", what, t ? t->nrules : -1,
          t ? t->source : "-");
    size_t total = 0;
    for (int k = 0; k < NCOUNTS; k++)
        total += count_of(k, g_size);
    float *a = xalloc(total), *b = xalloc(total);
    for (int step = 0; step < 2; step++) {
        for (size_t i = 0; i < total; i++)
            a[i] = b[i] = gen_int(g_rank, i, 77 + (uint64_t)step);
        size_t off = 0;
        for (int k = 0; k < NCOUNTS; k++) {
            size_t n = count_of(k, g_size);
            dp_reduce_op op = (dp_reduce_op)((k + step) % 2);
            CHECK_OK(dp_engine_submit(e, a + off, n, op));
            off += n;
        }
        CHECK_OK(dp_engine_wait_all(e));
        off = 0;
        for (int k = 0; k < NCOUNTS; k++) {
            size_t n = count_of(k, g_size);
            dp_reduce_op op = (dp_reduce_op)((k + step) % 2);
            if (n)
                MPI_Allreduce(MPI_IN_PLACE, b + off, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
            if (DP_REDUCE_AVG == op)
                for (size_t i = 0; i < n; i++)
                    b[off + i] /= (float)g_size;
            CHECK(!memcmp(a + off, b + off, n * sizeof(float)), "%s step %d: %zu floats (%s) differ from "
                  "MPI_Allreduce", what, step, n, dp_allreduce_algo_name(dp_engine_algo_for(e, n)));
            off += n;
        }
    }
    dp_comm_stats s;
    dp_engine_stats(e, &s);
    CHECK(2 * NCOUNTS == s.calls && 2 * total == s.elems, "%s: %llu calls, %llu elems", what,
          (unsigned long long)s.calls, (unsigned long long)s.elems);
    free(a);
    free(b);
    dp_engine_free(e);
}

static void sweep_shape(int R)
{
    char v[16];
    if (R) {
        snprintf(v, sizeof v, "%d", R);
        setenv("DP_RANKS_PER_NODE", v, 1);
    } else {
        unsetenv("DP_RANKS_PER_NODE");
    }
    dp_topo *t = NULL;
    CHECK_OK(dp_topo_create(MPI_COMM_WORLD, 0, &t));
    if (NULL == t)
        return;
    int nodes, per;
    dp_topo_shape(t, &nodes, &per, NULL, NULL);
    dp_topo_free(t);
    char what[64], path[400], text[512];
    /* every algorithm alone */
    for (int a = 0; a < DP_ALLREDUCE_AUTO; a++) {
        snprintf(text, sizeof text, "dptrain-allreduce-table 1\nnodes %d\nranks_per_node %d\n1 %s\n", nodes, per,
                 dp_allreduce_algo_name((dp_allreduce_algo)a));
        snprintf(what, sizeof what, "%d x %d, all %s", nodes, per, dp_allreduce_algo_name((dp_allreduce_algo)a));
        write_table("one.txt", text, path, sizeof path);
        engine_against_mpi(path, what, 1);
    }
    /* the count classes spread over the five: 0 ring, 1 mpi, P-1 and 7P+3 rd, 40P+5 hier, 196613 hier-rd */
    snprintf(text, sizeof text,
             "dptrain-allreduce-table 1\nnodes %d\nranks_per_node %d\n0 ring\n4 mpi\n%zu rd\n%zu hier\n%zu hier-rd\n"
             "%zu ring\n",
             nodes, per, 4 * count_of(3, g_size), 4 * count_of(4, g_size), 4 * count_of(5, g_size),
             8 * count_of(5, g_size));
    snprintf(what, sizeof what, "%d x %d, mixed", nodes, per);
    write_table("mixed.txt", text, path, sizeof path);
    engine_against_mpi(path, what, 6);
    /* no table: the built-in rule */
    snprintf(what, sizeof what, "%d x %d, built-in", nodes, per);
    engine_against_mpi(NULL, what, 2);
    unsetenv("DP_RANKS_PER_NODE");
}

static void case_engine(void)
{
    sweep_shape(0); /* MPI_Comm_split_type */
    for (int R = 1; R <= g_size; R++)
        if (0 == g_size % R)
            sweep_shape(R);
}

/* dp_allreduce with AUTO: the built-in rule, both sides of its 8 MiB threshold. */
static void case_dp_allreduce(void)
{
    const size_t counts[] = {0, 5, 1000, ((size_t)8 << 20) / 4 + 7};
    dp_ring_ws *ws = NULL;
    CHECK_OK(dp_ring_ws_create(0, &ws));
    for (size_t k = 0; k < sizeof counts / sizeof *counts; k++) {
        const size_t n = counts[k];
        float *a = xalloc(n), *b = xalloc(n);
        for (size_t i = 0; i < n; i++)
            a[i] = b[i] = gen_int(g_rank, i, 5 + k);
        CHECK_OK(dp_allreduce(n ? a : NULL, n, DP_REDUCE_SUM, DP_ALLREDUCE_AUTO, MPI_COMM_WORLD, ws));
        if (n)
            MPI_Allreduce(MPI_IN_PLACE, b, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        CHECK(!memcmp(a, b, n * sizeof(float)), "dp_allreduce auto, %zu floats, differs from MPI_Allreduce", n);
        free(a);
        free(b);
    }
    dp_comm_stats s;
    dp_ring_ws_stats(ws, &s);
    /* the ring ran the one count past 8 MiB (and counted it), MPI the rest */
    CHECK((g_size > 1 ? 1u : 0u) <= s.calls && s.calls <= 1, "ring calls %llu", (unsigned long long)s.calls);
    dp_ring_ws_free(ws);
}

static int g_passed;
static void run(const char *name, void (*fn)(void)) { g_passed = run_case("auto", name, fn); }

int main(int argc, char **argv)
{
    MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &g_provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    unsetenv("DP_RANKS_PER_NODE");
    unsetenv("DP_ALLREDUCE_TABLE");
    if (0 == g_rank) {
        snprintf(g_tmp, sizeof g_tmp, "/tmp/dptrain-auto-XXXXXX");
        if (!mkdtemp(g_tmp))
            MPI_Abort(MPI_COMM_WORLD, 2);
        printf("auto tests on %d rank(s)\n", g_size);
    }
    MPI_Bcast(g_tmp, sizeof g_tmp, MPI_CHAR, 0, MPI_COMM_WORLD);
    run("chooser and built-in rule", case_chooser);
    run("tuner rule: fastest, margin, merge", case_tuner_rule);
    run("malformed tables", case_malformed);
    run("loading, shape, errors", case_load);
    run("engine auto = MPI: every shape", case_engine);
    run("dp_allreduce auto = MPI", case_dp_allreduce);
    if (0 == g_rank) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
        if (system(cmd))
            fprintf(stderr, "could not remove %s\n", g_tmp);
        printf("auto tests: %d passed, 0 failed\n", g_passed);
    }
    MPI_Finalize();
    return 0;
}
