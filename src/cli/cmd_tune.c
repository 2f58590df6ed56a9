/* `dptrain tune-allreduce`: measures every allreduce algorithm at sizes from
 * --min to --max on this job's ranks and writes `auto`'s decision table (the
 * fastest algorithm per size, for this world shape; format in comm.h), as Open
 * MPI's coll/tuned dynamic rules and NCCL's tuner are made: on the machine.
 *
 * Each size: integer data (sums exact in any order), MPI_Allreduce's result
 * first, then every algorithm's first call checked against it bit for bit.
 * Then the timing, as the engine runs them: a sample is --calls back-to-back
 * calls after one barrier (per call: the batch's time / calls, the slowest
 * rank's), since the engine issues its buckets one after another and an
 * algorithm that is fast only from a barrier (or only back to back) would be
 * chosen wrongly; one call after a barrier picked MPI_Allreduce from 256 KiB to
 * 8 MiB at 2 ranks where back-to-back calls had the ring and rd 1.4-1.6x
 * ahead (RESULTS §15). The algorithms are interleaved, sample by sample, each
 * round starting from the next one, so that drift on a busy machine hits all
 * alike; the median of --reps samples decides (dp_allreduce_table_add: margins
 * for MPI_Allreduce and for the previous size's choice). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/options.h"
#include "dptrain/comm.h"
#include "dptrain/fsutil.h"

static const char header[] =
    "usage: mpirun -np P dptrain tune-allreduce [--out FILE] [--min 4K] [--max 256M] [--reps N] [--calls N]\n"
    "\n"
    "Times ring, mpi, rd (and hier, hier-rd when there are several nodes of several ranks)\n"
    "at sizes from --min to --max, checks each against MPI_Allreduce, prints the table and\n"
    "writes the fastest per size (MPI_Allreduce unless beaten by --margin) for\n"
    "--allreduce auto --allreduce-table FILE (or DP_ALLREDUCE_TABLE=FILE). Run it on the\n"
    "shape of the training job: a table is used only by jobs of the same nodes x ranks\n"
    "per node (DP_RANKS_PER_NODE=R simulates nodes, as for train).\n"
    "\n";

static dp_status parse_size(const dp_cli_opt *o, const char *arg, void *field)
{
    char *end;
    unsigned long long v = strtoull(arg, &end, 10);
    uint64_t mul = 1;
    if (end != arg && *end && !end[1]) {
        mul = *end == 'K' || *end == 'k' ? 1u << 10 : *end == 'M' || *end == 'm' ? 1u << 20
            : *end == 'G' || *end == 'g' ? 1u << 30 : 0;
        if (mul) end++;
    }
    if (end == arg || *end || arg[0] == '-' || !mul || v == 0 || v > (4ull << 30) / mul || (v * mul) % 4)
        return dp_errorf(DP_ERR_ARG, "--%s: '%s' is not a size in bytes (a multiple of 4, e.g. 4096, 4K, 256M; "
                         "at most 4G)", o->name, arg);
    *(uint64_t *)field = v * mul;
    return DP_OK;
}

static const dp_cli_opt o_out = {.name = "out", .arg = "FILE",
                                 .help = "write the table here (replaced atomically); none: print only",
                                 .kind = DP_CLI_STR, .cap = 512, .nonempty = 1};
static const dp_cli_opt o_min = {.name = "min", .arg = "BYTES", .help = "smallest size, bytes or K, M, G (default 4K)",
                                 .kind = DP_CLI_CUSTOM, .parse = parse_size};
static const dp_cli_opt o_max = {.name = "max", .arg = "BYTES", .help = "largest size (default 256M)",
                                 .kind = DP_CLI_CUSTOM, .parse = parse_size};
static const dp_cli_opt o_factor = {.name = "factor", .arg = "F", .help = "each size F times the one before (2 or 4)",
                                    .kind = DP_CLI_INT, .lo = 2, .hi = 4, .show_default = 1};
static const dp_cli_opt o_margin = {
    .name = "margin", .arg = "PCT",
    .help = "another algorithm replaces MPI_Allreduce only where its median is this\n"
            "many percent below MPI's (a winner by noise would not stay one)",
    .kind = DP_CLI_DOUBLE, .lo = 0, .hi = 90, .show_default = 1};
static const dp_cli_opt o_reps = {.name = "reps", .arg = "N",
                                  .help = "samples per algorithm and size (median); a size stops after 3\n"
                                          "once its samples took --cap seconds",
                                  .kind = DP_CLI_INT, .lo = 1, .hi = 10000, .show_default = 1};
static const dp_cli_opt o_calls = {.name = "calls", .arg = "N",
                                   .help = "back-to-back calls per sample; 0: enough for about 5 ms\n"
                                           "of the fastest algorithm, 2 to 64",
                                   .kind = DP_CLI_INT, .lo = 0, .hi = 10000, .show_default = 1};
static const dp_cli_opt o_cap = {.name = "cap", .arg = "SECONDS", .help = "time per size after which it stops",
                                 .kind = DP_CLI_DOUBLE, .lo = 0.001, .hi = 86400, .show_default = 1};

static struct {
    char out[512];
    uint64_t min, max;
    int factor, reps, calls;
    double margin, cap;
} x;

static const dp_cli_bind binds[] = {
    DP_CLI_BIND(o_out, x.out),     DP_CLI_BIND(o_min, x.min),       DP_CLI_BIND(o_max, x.max),
    DP_CLI_BIND(o_factor, x.factor), DP_CLI_BIND(o_reps, x.reps),   DP_CLI_BIND(o_calls, x.calls),
    DP_CLI_BIND(o_cap, x.cap),     DP_CLI_BIND(o_margin, x.margin), DP_CLI_END,
};

static void defaults(void)
{
    memset(&x, 0, sizeof x);
    x.min = 4096;
    x.max = 256u << 20;
    x.factor = 2;
    x.reps = 10;
    x.calls = 0;
    x.cap = 10;
    x.margin = 5;
}

static dp_status check(int ranks)
{
    (void)ranks;
    DP_CHECK(x.factor == 2 || x.factor == 4, "--factor: %d (2 or 4)", x.factor);
    DP_CHECK(x.min <= x.max, "--min %llu is above --max %llu", (unsigned long long)x.min, (unsigned long long)x.max);
    return DP_OK;
}

#define MAX_SIZES 40

static int cmp_double(const void *a, const void *b)
{
    double u = *(const double *)a, v = *(const double *)b;
    return (u > v) - (u < v);
}

/* buf[i] = a small integer of (rank, i): sums over any number of ranks up to 2^20 are exact. */
static void fill(float *buf, size_t n, int rank, uint64_t seed)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t h = (i + 1) * 0x9e3779b97f4a7c15ull ^ ((uint64_t)rank << 32) ^ seed;
        h ^= h >> 29;
        buf[i] = (float)((int)(h % 17) - 8);
    }
}

static dp_status agree_ok(MPI_Comm comm, int mine, const char *what)
{
    int all = mine;
    MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MAX, comm);
    return all ? dp_errorf(DP_ERR_MPI, "%s", what) : DP_OK;
}

static dp_status tune(MPI_Comm comm, int rank, int size)
{
    dp_topo *topo = NULL;
    dp_ring_ws *ws = NULL;
    float *buf = NULL, *ref = NULL;
    double *times = NULL;
    dp_status rc = dp_topo_create(comm, 0, &topo);
    if (rc == DP_OK) rc = dp_ring_ws_create(0, &ws);
    if (rc != DP_OK) goto out;
    dp_ring_ws_set_topo(ws, topo);
    int nodes = 1, per_node = 1;
    const int uniform = dp_topo_shape(topo, &nodes, &per_node, NULL, NULL);
    dp_allreduce_algo algos[DP_ALLREDUCE_NALGOS];
    int na = 0;
    algos[na++] = DP_ALLREDUCE_RING;
    algos[na++] = DP_ALLREDUCE_MPI;
    algos[na++] = DP_ALLREDUCE_RD;
    if (uniform && nodes > 1 && per_node > 1) { /* else they are the flat ring under another name */
        algos[na++] = DP_ALLREDUCE_HIER;
        algos[na++] = DP_ALLREDUCE_HIER_RD;
    }
    uint64_t sizes[MAX_SIZES];
    int ns = 0;
    for (uint64_t b = x.min; b <= x.max && ns < MAX_SIZES; b *= (uint64_t)x.factor) sizes[ns++] = b;
    const size_t nmax = (size_t)(sizes[ns - 1] / 4);
    buf = malloc(nmax * sizeof *buf);
    ref = malloc(nmax * sizeof *ref);
    times = malloc((size_t)x.reps * (size_t)na * sizeof *times);
    if (agree_ok(comm, !buf || !ref || !times, "tune-allreduce: out of memory on a rank") != DP_OK) {
        rc = dp_errorf(DP_ERR_NOMEM, "tune-allreduce: out of memory for 2 x %zu floats", nmax);
        goto out;
    }
    dp_allreduce_table t = {.nodes = nodes, .per_node = per_node};
    if ((rc = dp_allreduce_hosts_hash(comm, t.hosts)) != DP_OK) goto out;
    char lib[MPI_MAX_LIBRARY_VERSION_STRING] = {0};
    int liblen = 0;
    MPI_Get_library_version(lib, &liblen);
    lib[strcspn(lib, "\n,")] = '\0';
    snprintf(t.mpi, sizeof t.mpi, "%s", lib[0] ? lib : "-");
    const double bus = size > 1 ? 2.0 * (size - 1) / size : 1.0;
    if (rank == 0) {
        printf("tune-allreduce: %d rank(s), %d node(s) x %d rank(s) per node%s; a sample is `calls` back-to-back "
               "calls after a barrier, algorithms interleaved; time per call: median over the samples of the "
               "slowest rank's; busbw = bytes / time x 2(P-1)/P; margin %g%%\n%10s %5s %4s",
               size, nodes, per_node, uniform ? "" : " (uneven)", x.margin, "bytes", "calls", "reps");
        for (int a = 0; a < na; a++) printf(" %9s us %7s GB/s", dp_allreduce_algo_name(algos[a]), "");
        printf("  chosen\n");
    }
    for (int s = 0; s < ns && rc == DP_OK; s++) {
        const size_t n = (size_t)(sizes[s] / 4);
        fill(ref, n, rank, sizes[s]);
        MPI_Allreduce(MPI_IN_PLACE, ref, (int)n, MPI_FLOAT, MPI_SUM, comm);
        double med[DP_ALLREDUCE_NALGOS], first[DP_ALLREDUCE_NALGOS];
        for (int a = 0; a < na && rc == DP_OK; a++) {
            fill(buf, n, rank, sizes[s]);
            rc = dp_allreduce(buf, n, DP_REDUCE_SUM, algos[a], comm, ws);
            if (rc != DP_OK) break;
            char msg[160];
            snprintf(msg, sizeof msg, "tune-allreduce: %s of %llu bytes differs from MPI_Allreduce",
                     dp_allreduce_algo_name(algos[a]), (unsigned long long)sizes[s]);
            rc = agree_ok(comm, memcmp(buf, ref, n * sizeof *buf) != 0, msg);
        }
        if (rc != DP_OK) break;
        /* zeros from here: sums of sums stay zero, never overflow nor subnormal */
        memset(buf, 0, n * sizeof *buf);
        for (int a = 0; a < na && rc == DP_OK; a++) { /* one call each, for the batch size */
            MPI_Barrier(comm);
            double t0 = MPI_Wtime();
            rc = dp_allreduce(buf, n, DP_REDUCE_SUM, algos[a], comm, ws);
            first[a] = MPI_Wtime() - t0;
        }
        if (rc != DP_OK) break;
        MPI_Allreduce(MPI_IN_PLACE, first, na, MPI_DOUBLE, MPI_MAX, comm);
        int calls = x.calls;
        if (calls == 0) {
            double fast = first[0];
            for (int a = 1; a < na; a++)
                if (first[a] < fast) fast = first[a];
            calls = fast * 64 <= 5e-3 ? 64 : fast * 2 >= 5e-3 ? 2 : (int)(5e-3 / fast) + 1;
        }
        /* sample r: every algorithm once, starting from algorithm r mod na */
        double spent = 0;
        int done = 0;
        while (done < x.reps && rc == DP_OK) {
            double row[DP_ALLREDUCE_NALGOS];
            for (int i = 0; i < na && rc == DP_OK; i++) {
                const int a = (i + done) % na;
                MPI_Barrier(comm);
                double t0 = MPI_Wtime();
                for (int c = 0; c < calls && rc == DP_OK; c++)
                    rc = dp_allreduce(buf, n, DP_REDUCE_SUM, algos[a], comm, ws);
                row[a] = (MPI_Wtime() - t0) / calls;
            }
            if (rc != DP_OK) break;
            /* the slowest rank's; every rank sees the same, so all stop together */
            MPI_Allreduce(MPI_IN_PLACE, row, na, MPI_DOUBLE, MPI_MAX, comm);
            for (int a = 0; a < na; a++) {
                times[(size_t)a * x.reps + done] = row[a];
                spent += row[a] * calls;
            }
            done++;
            if (done >= 3 && spent > x.cap) break;
        }
        if (rc != DP_OK) break;
        for (int a = 0; a < na; a++) {
            double *t = times + (size_t)a * x.reps;
            qsort(t, (size_t)done, sizeof *t, cmp_double);
            med[a] = done % 2 ? t[done / 2] : 0.5 * (t[done / 2 - 1] + t[done / 2]);
        }
        /* the same medians on every rank (reduced above), so the same table */
        const int besta = dp_allreduce_table_add(&t, sizes[s], algos, med, na, x.margin);
        if (rank == 0) {
            printf("%10llu %5d %4d", (unsigned long long)sizes[s], calls, done);
            for (int a = 0; a < na; a++)
                printf(" %12.1f %12.3f", med[a] * 1e6, (double)sizes[s] / med[a] * bus * 1e-9);
            printf("  %s\n", dp_allreduce_algo_name(algos[besta]));
            fflush(stdout);
        }
    }
    if (rc != DP_OK) goto out;
    char text[8192];
    int len = dp_allreduce_table_format(&t, text, sizeof text);
    if (len < 0) {
        rc = dp_errorf(DP_ERR_ARG, "tune-allreduce: the table does not fit %zu bytes", sizeof text);
        goto out;
    }
    if (rank == 0) {
        printf("\n%s", text);
        if (x.out[0]) {
            rc = dp_write_file_atomic(x.out, text, (size_t)len);
            if (rc == DP_OK) printf("written: %s (use: --allreduce auto --allreduce-table %s)\n", x.out, x.out);
        }
    }
out:
    free(buf);
    free(ref);
    free(times);
    dp_ring_ws_free(ws);
    dp_topo_free(topo);
    return rc;
}

static dp_status run(MPI_Comm comm, int rank)
{
    int size = 1;
    MPI_Comm_size(comm, &size);
    return tune(comm, rank, size);
}

static const dp_cli_command tune_cmd = {.name = "tune-allreduce", .header = header, .binds = binds,
                                        .defaults = defaults, .check = check, .run = run};

int dp_cmd_tune_allreduce(int argc, char **argv, MPI_Comm comm) { return dp_cli_run(&tune_cmd, argc, argv, comm); }
