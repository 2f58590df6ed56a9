/* bench_allreduce: our ring (dp_ring_allreduce) against MPI_Allreduce, side by side
 * in one run, over message sizes 4 KiB .. 256 MiB; with --algos also recursive
 * halving/doubling and the hierarchical allreduces (ring or halving/doubling
 * across nodes; nodes from --ranks-per-node, DP_RANKS_PER_NODE or MPI).
 *
 *   mpirun -np 2 --bind-to core build/benchmarks/bench_allreduce [options]   (--help lists them)
 *
 * Method: for each size, every algorithm is first checked (integer data: the ring
 * must equal MPI_Allreduce bit for bit), then warmed up, then the algorithms are
 * timed in turn within each iteration (ring, MPI, ring, MPI, ...) so that noise
 * from other jobs on the machine hits both alike. One sample is the time of one
 * call on the slowest rank (barrier, time, MPI_Allreduce MAX of the times). The
 * buffer holds zeros, so repeated SUMs neither overflow nor go subnormal.
 *
 * Figures (nccl-tests convention): algbw = bytes / time; busbw = algbw * 2(P-1)/P,
 * the per-link rate that a bandwidth-optimal allreduce needs; ratio = ring busbw /
 * MPI busbw, both at the median time.
 *
 * Which algorithm MPI_Allreduce runs: Open MPI 4.1 picks coll/tuned (priority 30;
 * sm, han and adapt are 0 by default) and, unless coll_tuned_use_dynamic_rules is
 * set, its fixed decision (ompi/mca/coll/tuned/coll_tuned_decision_fixed.c,
 * ompi_coll_tuned_allreduce_intra_dec_fixed, v4.1.4), reproduced in
 * ompi41_allreduce_alg() below and printed per size. The MCA values that change it
 * are read through MPI_T and shown in the header. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mpi.h>

#include "comm/comm_internal.h"
#include "dptrain/comm.h"

#define MAX_VARIANTS 12

typedef struct variant {
    char name[48];
    int mpi;          /* 1: MPI_Allreduce */
    size_t seg_bytes; /* ring */
    dp_ring_ws *ws;
    double *t;        /* samples */
    int coded;        /* 1: dp_ring_allreduce_codec with cfg (--codec) */
    dp_codec_config cfg;
    int algo;         /* 1: dp_allreduce with `which` (--algos) */
    dp_allreduce_algo which;
    const dp_allreduce_table *table; /* which = auto: chosen per size from it */
} variant;

typedef struct result {
    double t_med, t_min; /* seconds */
    int iters;
} result;

static int g_rank, g_size;
static int g_blocked; /* --blocked */

static void die(const char *msg)
{
    fprintf(stderr, "rank %d: bench_allreduce: %s\n", g_rank, msg);
    MPI_Abort(MPI_COMM_WORLD, 1);
}

static size_t parse_size(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    switch (*end) {
    case 'k': case 'K': v *= 1024; break;
    case 'm': case 'M': v *= 1024 * 1024; break;
    case 'g': case 'G': v *= 1024.0 * 1024 * 1024; break;
    case '\0': break;
    default: die("bad size (use a number with an optional K/M/G suffix)");
    }
    if (v < 4)
        die("size below 4 bytes");
    return (size_t)v;
}

static void fmt_size(size_t b, char *out, size_t cap)
{
    if (b >= (1u << 30) && b % (1u << 30) == 0)
        snprintf(out, cap, "%zuG", b >> 30);
    else if (b >= (1u << 20) && b % (1u << 20) == 0)
        snprintf(out, cap, "%zuM", b >> 20);
    else if (b >= 1024 && b % 1024 == 0)
        snprintf(out, cap, "%zuK", b >> 10);
    else
        snprintf(out, cap, "%zu", b);
}

/* ------------------------------------------------------------------------- */
/* What Open MPI 4.1 does                                                     */
/* ------------------------------------------------------------------------- */

/* ompi_coll_tuned_allreduce_intra_dec_fixed, commutative branch (MPI_SUM on
 * MPI_FLOAT), Open MPI v4.1.4: algorithm number for comm size p and total bytes. */
static int ompi41_allreduce_alg(int p, size_t bytes)
{
    if (p < 4) {
        if (bytes < 8) return 4;
        if (bytes < 4096) return 3;
        if (bytes < 8192) return 4;
        if (bytes < 16384) return 3;
        if (bytes < 65536) return 4;
        if (bytes < 262144) return 5;
        return 6;
    }
    if (p < 8) return bytes < 16 ? 4 : bytes < 8192 ? 3 : 6;
    if (p < 16) return bytes < 8192 ? 3 : 6;
    if (p < 32) return bytes < 64 ? 5 : bytes < 4096 ? 3 : 6;
    if (p < 64) return bytes < 128 ? 5 : 6;
    if (p < 128) return bytes < 262144 ? 3 : 6;
    if (p < 256) return bytes < 131072 ? 2 : bytes < 262144 ? 3 : 6;
    if (p < 512) return bytes < 4096 ? 2 : 6;
    if (p < 2048) return bytes < 2048 ? 2 : bytes < 16384 ? 3 : 6;
    if (p < 4096) return bytes < 2048 ? 2 : bytes < 4096 ? 5 : bytes < 16384 ? 3 : 6;
    return bytes < 2048 ? 2 : bytes < 16384 ? 5 : bytes < 32768 ? 3 : 6;
}

static const char *ompi_alg_name(int alg)
{
    static const char *names[] = {"ignore",          "basic_linear", "nonoverlapping",
                                  "recursive_doubling", "ring",       "segmented_ring",
                                  "rabenseifner"};
    return alg >= 0 && alg <= 6 ? names[alg] : "?";
}

typedef struct ompi_knobs {
    int have;            /* MPI_T found the variables */
    int dynamic;         /* coll_tuned_use_dynamic_rules */
    int forced;          /* coll_tuned_allreduce_algorithm */
    int tuned_prio, han_prio, sm_prio, adapt_prio;
} ompi_knobs;

/* Reads one integer (or bool) control variable by name; -1 if absent. */
static int cvar_int(const char *want)
{
    int num = 0;
    if (MPI_SUCCESS != MPI_T_cvar_get_num(&num))
        return -1;
    for (int i = 0; i < num; i++) {
        char name[256], desc[1024];
        int nlen = sizeof name, dlen = sizeof desc, verb, bind, scope;
        MPI_Datatype dt;
        MPI_T_enum en;
        if (MPI_SUCCESS != MPI_T_cvar_get_info(i, name, &nlen, &verb, &dt, &en, desc, &dlen,
                                               &bind, &scope))
            continue;
        if (strcmp(name, want) != 0)
            continue;
        /* Open MPI exposes ints as MPI_INT and bools as 1-byte MPI_C_BOOL */
        if (MPI_T_BIND_NO_OBJECT != bind ||
            (MPI_INT != dt && MPI_UNSIGNED != dt && MPI_C_BOOL != dt))
            return -1;
        MPI_T_cvar_handle h;
        int count = 0, v = -1;
        union { int i; unsigned char b; char pad[16]; } val;
        memset(&val, 0, sizeof val);
        if (MPI_SUCCESS != MPI_T_cvar_handle_alloc(i, NULL, &h, &count))
            return -1;
        if (1 == count && MPI_SUCCESS == MPI_T_cvar_read(h, &val))
            v = MPI_C_BOOL == dt ? (int)val.b : val.i;
        MPI_T_cvar_handle_free(&h);
        return v;
    }
    return -1;
}

static ompi_knobs read_knobs(void)
{
    ompi_knobs k = {0};
    int provided;
    if (MPI_SUCCESS != MPI_T_init_thread(MPI_THREAD_SINGLE, &provided))
        return k;
    k.dynamic = cvar_int("coll_tuned_use_dynamic_rules");
    k.forced = cvar_int("coll_tuned_allreduce_algorithm");
    k.tuned_prio = cvar_int("coll_tuned_priority");
    k.han_prio = cvar_int("coll_han_priority");
    k.sm_prio = cvar_int("coll_sm_priority");
    k.adapt_prio = cvar_int("coll_adapt_priority");
    k.have = k.dynamic >= 0 || k.tuned_prio >= 0;
    MPI_T_finalize();
    return k;
}

static const char *mpi_alg_for(const ompi_knobs *k, size_t bytes, char *buf, size_t cap)
{
    if (k->have && k->dynamic > 0 && k->forced > 0)
        snprintf(buf, cap, "%s(forced)", ompi_alg_name(k->forced));
    else
        snprintf(buf, cap, "%s", ompi_alg_name(ompi41_allreduce_alg(g_size, bytes)));
    return buf;
}

/* ------------------------------------------------------------------------- */
/* Measuring                                                                  */
/* ------------------------------------------------------------------------- */

static void run_variant(variant *v, float *buf, size_t n, dp_reduce_op op)
{
    dp_status st = v->mpi     ? dp_allreduce(buf, n, op, DP_ALLREDUCE_MPI, MPI_COMM_WORLD, NULL)
                   : v->coded && v->algo /* hier + codec: the codec on the inter-node ring */
                       ? dp_hier_allreduce_codec(buf, n, DP_REDUCE_AVG, DP_ALLREDUCE_RING, &v->cfg, NULL,
                                                 dp_ring_ws_topo(v->ws), v->ws)
                   : v->coded ? dp_ring_allreduce_codec(buf, n, DP_REDUCE_AVG, &v->cfg, NULL,
                                                        MPI_COMM_WORLD, v->ws)
                   : v->algo  ? dp_allreduce(buf, n, op,
                                             v->table ? dp_allreduce_table_choose(v->table, (uint64_t)n * sizeof(float))
                                                      : v->which,
                                             MPI_COMM_WORLD, v->ws)
                              : dp_ring_allreduce(buf, n, op, MPI_COMM_WORLD, v->ws);
    if (DP_OK != st)
        die(dp_errmsg());
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Integer data: every algorithm must give the same floats. */
static void check_size(variant *vs, int nv, float *buf, float *ref, size_t n, dp_reduce_op op)
{
    for (int v = 0; v < nv; v++) {
        if (vs[v].coded) /* lossy: tested in tests/comm/test_codec_mpi.c */
            continue;
        for (size_t i = 0; i < n; i++)
            buf[i] = ref[i] = (float)((int)((i * 2654435761u + (size_t)g_rank * 40503u) % 17) - 8);
        run_variant(&vs[v], buf, n, op);
        dp_status st = dp_allreduce(ref, n, op, DP_ALLREDUCE_MPI, MPI_COMM_WORLD, NULL);
        if (DP_OK != st)
            die(dp_errmsg());
        int bad = 0 != memcmp(buf, ref, n * sizeof(float));
        MPI_Allreduce(MPI_IN_PLACE, &bad, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
        if (bad) {
            char msg[160];
            snprintf(msg, sizeof msg, "correctness check failed: %.47s and MPI_Allreduce differ on integer data",
                     vs[v].name);
            die(msg);
        }
    }
}

static void measure(variant *vs, int nv, float *buf, size_t n, dp_reduce_op op, int warmup,
                    int iters, int max_iters, double cap, result *res)
{
    int coded = 0;
    for (int v = 0; v < nv; v++)
        coded |= vs[v].coded;
    if (coded) /* normal-ish values (sum of 4 uniforms), different per rank */
        for (size_t i = 0; i < n; i++) {
            uint64_t h = (i + 1) * 0x9e3779b97f4a7c15ull ^ (uint64_t)g_rank << 40;
            h ^= h >> 29;
            h *= 0xbf58476d1ce4e5b9ull;
            h ^= h >> 32;
            buf[i] = (float)((double)(h & 0xffff) + (double)((h >> 16) & 0xffff) +
                             (double)((h >> 32) & 0xffff) + (double)(h >> 48) - 131070.0) * 1e-5f;
        }
    else
        memset(buf, 0, n * sizeof(float));
    for (int v = 0; v < nv; v++) {
        if (vs[v].ws)
            dp_ring_ws_reset_stats(vs[v].ws);
        for (int w = 0; w < warmup; w++)
            run_variant(&vs[v], buf, n, op);
    }
    /* interleaved: one group of nv calls per iteration; blocked: one variant at a time */
    const int groups = g_blocked ? nv : 1, per = g_blocked ? 1 : nv;
    for (int gr = 0; gr < groups; gr++) {
        double spent = 0.0;
        int it = 0;
        for (; it < max_iters; it++) {
            for (int v = gr * per; v < gr * per + per; v++) {
                MPI_Barrier(MPI_COMM_WORLD);
                double t0 = MPI_Wtime();
                run_variant(&vs[v], buf, n, op);
                double t = MPI_Wtime() - t0;
                MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
                vs[v].t[it] = t;
                spent += t * per / nv;
            }
            /* every rank sees the same reduced times, so they stop together */
            if (it + 1 >= 3 && spent > cap)
                break;
            if (it + 1 >= iters && spent > 0.2)
                break;
        }
        for (int v = gr * per; v < gr * per + per; v++)
            res[v].iters = it < max_iters ? it + 1 : max_iters;
    }
    for (int v = 0; v < nv; v++) {
        const int done = res[v].iters;
        qsort(vs[v].t, (size_t)done, sizeof(double), cmp_double);
        res[v].t_min = vs[v].t[0];
        res[v].t_med = done % 2 ? vs[v].t[done / 2]
                                : 0.5 * (vs[v].t[done / 2 - 1] + vs[v].t[done / 2]);
    }
}

/* ------------------------------------------------------------------------- */

#define MAX_SIZES 64

/* One gnuplot data block per variant ($v0, $v1, ...: bytes busbw ratio), then
 * busbw on top and the ring/MPI ratio below. */
static void plot(const char *png, int nsz, const size_t *sizes,
                 double bus[][MAX_VARIANTS], double ratio[][MAX_VARIANTS], int nv,
                 const variant *vs)
{
    FILE *g = popen("gnuplot", "w");
    if (NULL == g) {
        fprintf(stderr, "bench_allreduce: cannot run gnuplot\n");
        return;
    }
    fprintf(g, "set terminal pngcairo size 1000,800 font 'sans,10' noenhanced\n");
    fprintf(g, "set output '%s'\n", png);
    for (int v = 0; v < nv; v++) {
        fprintf(g, "$v%d << EOD\n", v);
        for (int i = 0; i < nsz; i++)
            fprintf(g, "%zu %.4f %.4f\n", sizes[i], bus[i][v], ratio[i][v]);
        fprintf(g, "EOD\n");
    }
    fprintf(g, "set key top left\nset grid\nset logscale x 2\nset format x '%%.0b%%B'\n");
    fprintf(g, "set multiplot layout 2,1 title 'allreduce, %d ranks: ring vs MPI_Allreduce "
               "(median of the slowest rank)'\n", g_size);
    fprintf(g, "set ylabel 'busbw (GB/s)'\nplot ");
    for (int v = 0; v < nv; v++)
        fprintf(g, "%s$v%d using 1:2 with linespoints title '%s'", v ? ", " : "", v,
                vs[v].name);
    fprintf(g, "\nset ylabel 'ring busbw / MPI busbw'\nset xlabel 'message size'\n");
    fprintf(g, "set yrange [0:*]\nplot 0.9 with lines dashtype 2 lc 'gray' title 'target 0.9', "
               "1.0 with lines lc 'black' notitle");
    for (int v = 0; v < nv; v++)
        if (!vs[v].mpi)
            fprintf(g, ", $v%d using 1:3 with linespoints title '%s / MPI'", v, vs[v].name);
    fprintf(g, "\nunset multiplot\n");
    if (0 != pclose(g))
        fprintf(stderr, "bench_allreduce: gnuplot failed\n");
}

static const char usage[] =
    "usage: mpirun -np 2 --bind-to core build/benchmarks/bench_allreduce [options]\n"
    "    --min BYTES --max BYTES   size range (default 4K .. 256M; K/M/G suffixes)\n"
    "    --factor F                size step, 2 or 4 (default 2)\n"
    "    --iters N                 timed iterations per size and algorithm (default 20;\n"
    "                              small sizes run more, up to --max-iters, for 0.2 s)\n"
    "    --max-iters N             default 2000\n"
    "    --warmup N                untimed calls per size and algorithm (default 3)\n"
    "    --cap SECONDS             stop a size after this much timed time (default 6)\n"
    "    --seg LIST                ring segment sizes in bytes, comma-separated: one ring\n"
    "                              column each (default: DP_RING_SEGMENT_BYTES_DEFAULT)\n"
    "    --depth N                 ring receive slots (default 2)\n"
    "    --op sum|avg              default sum\n"
    "    --csv FILE                also write the table as CSV\n"
    "    --plot FILE               draw busbw and the ring/MPI ratio with gnuplot (PNG)\n"
    "    --no-check                skip the per-size correctness check\n"
    "    --blocked                 time all iterations of one algorithm, then the next\n"
    "    --codec LIST              also time dp_ring_allreduce_codec with each codec of\n"
    "                              LIST (none,fp16,bf16,int8; comma-separated). Then\n"
    "                              every variant runs AVG on random normal data (zeros would\n"
    "                              make the wire stage look free), are not checked\n"
    "                              bit for bit (lossy), and print bytes on the wire\n"
    "                              per call (sent by rank 0, after every stage), the\n"
    "                              compression ratio (float32 bytes / wire bytes) and\n"
    "                              the speed-up over the \"none\" codec variant. busbw\n"
    "                              uses the uncompressed size (effective busbw).\n"
    "    --wire-zstd L             zstd level of the wire stage for --codec (default 0)\n"
    "                              (each call follows a call of the same algorithm)\n"
    "    --algos LIST              also time these dp_allreduce algorithms (rd, hier,\n"
    "                              hier-rd, auto; comma-separated), checked bit for bit like\n"
    "                              the ring; prints bytes sent per call and the part\n"
    "                              sent between nodes (rank 0's counters); with hier\n"
    "                              and --codec, also hier with each codec on its\n"
    "                              inter-node leg (\"hier+fp16\")\n"
    "    --ranks-per-node R        nodes for hier/hier-rd: consecutive groups of R ranks\n"
    "                              (default 0: DP_RANKS_PER_NODE, else MPI_Comm_split_type)\n"
    "    --allreduce-table FILE    auto's table (dptrain tune-allreduce --out FILE); default\n"
    "                              DP_ALLREDUCE_TABLE, else the built-in rule\n";

int main(int argc, char **argv)
{
    int provided;
    char codecs[256] = "", algos[256] = "";
    const char *table_path = NULL;
    static dp_allreduce_table auto_table;
    int wire_zstd = 0, rpn = 0;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_SINGLE, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);

    size_t min_b = 4096, max_b = (size_t)256 << 20;
    int factor = 2, iters = 20, max_iters = 2000, warmup = 3, depth = 2, check = 1;
    double cap = 6.0;
    dp_reduce_op op = DP_REDUCE_SUM;
    const char *csv_path = NULL, *plot_path = NULL;
    char segs[256];
    snprintf(segs, sizeof segs, "%zu", (size_t)DP_RING_SEGMENT_BYTES_DEFAULT);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEXT()                                                                        \
    do {                                                                              \
        if (NULL == v)                                                                \
            die("missing value after an option");                                     \
        i++;                                                                          \
    } while (0)
        if (!strcmp(a, "--min")) { NEXT(); min_b = parse_size(v); }
        else if (!strcmp(a, "--max")) { NEXT(); max_b = parse_size(v); }
        else if (!strcmp(a, "--factor")) { NEXT(); factor = atoi(v); }
        else if (!strcmp(a, "--iters")) { NEXT(); iters = atoi(v); }
        else if (!strcmp(a, "--max-iters")) { NEXT(); max_iters = atoi(v); }
        else if (!strcmp(a, "--warmup")) { NEXT(); warmup = atoi(v); }
        else if (!strcmp(a, "--cap")) { NEXT(); cap = atof(v); }
        else if (!strcmp(a, "--seg")) { NEXT(); snprintf(segs, sizeof segs, "%s", v); }
        else if (!strcmp(a, "--depth")) { NEXT(); depth = atoi(v); }
        else if (!strcmp(a, "--op")) { NEXT(); op = !strcmp(v, "avg") ? DP_REDUCE_AVG : DP_REDUCE_SUM; }
        else if (!strcmp(a, "--csv")) { NEXT(); csv_path = v; }
        else if (!strcmp(a, "--plot")) { NEXT(); plot_path = v; }
        else if (!strcmp(a, "--no-check")) check = 0;
        else if (!strcmp(a, "--blocked")) g_blocked = 1;
        else if (!strcmp(a, "--codec")) { NEXT(); snprintf(codecs, sizeof codecs, "%s", v); }
        else if (!strcmp(a, "--wire-zstd")) { NEXT(); wire_zstd = atoi(v); }
        else if (!strcmp(a, "--algos")) { NEXT(); snprintf(algos, sizeof algos, "%s", v); }
        else if (!strcmp(a, "--ranks-per-node")) { NEXT(); rpn = atoi(v); }
        else if (!strcmp(a, "--allreduce-table")) { NEXT(); table_path = v; }
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            if (0 == g_rank) fputs(usage, stdout);
            MPI_Finalize();
            return 0;
        } else die("unknown option (--help lists them)");
    }
    if (factor < 2 || iters < 1 || max_iters < iters || warmup < 0 || min_b > max_b)
        die("bad --factor/--iters/--max-iters/--warmup/--min/--max");

    if (codecs[0]) /* repeated SUMs of non-zero data would overflow fp16 */
        op = DP_REDUCE_AVG;
    /* Variants: one ring per segment size, then MPI_Allreduce. */
    variant vs[MAX_VARIANTS];
    int nv = 0;
    for (char *tok = strtok(segs, ","); tok && nv < MAX_VARIANTS - 1; tok = strtok(NULL, ",")) {
        variant *v = &vs[nv++];
        memset(v, 0, sizeof *v);
        v->seg_bytes = parse_size(tok);
        char sz[32];
        fmt_size(v->seg_bytes, sz, sizeof sz);
        snprintf(v->name, sizeof v->name, "ring/%s", sz);
        if (DP_OK != dp_ring_ws_create(v->seg_bytes, &v->ws) ||
            DP_OK != dp_ring_ws_set_depth(v->ws, depth))
            die(dp_errmsg());
    }
    char hier_codecs[256]; /* strtok below cuts codecs */
    snprintf(hier_codecs, sizeof hier_codecs, "%s", codecs);
    for (char *tok = strtok(codecs, ","); tok && nv < MAX_VARIANTS - 1; tok = strtok(NULL, ",")) {
        variant *v = &vs[nv++];
        memset(v, 0, sizeof *v);
        v->coded = 1;
        v->cfg.wire_zstd_level = wire_zstd;
        if (DP_OK != dp_codec_parse(tok, &v->cfg))
            die(dp_errmsg());
        if (wire_zstd)
            snprintf(v->name, sizeof v->name, "%s+zstd%d", tok, wire_zstd);
        else
            snprintf(v->name, sizeof v->name, "%s", tok);
        if (DP_OK != dp_ring_ws_create(0, &v->ws) || DP_OK != dp_ring_ws_set_depth(v->ws, depth))
            die(dp_errmsg());
    }
    int with_hier = 0;
    /* --algos: one workspace each, the hierarchical ones sharing one topology */
    dp_topo *topo = NULL;
    if (algos[0] && DP_OK != dp_topo_create(MPI_COMM_WORLD, rpn, &topo))
        die(dp_errmsg());
    for (char *tok = strtok(algos, ","); tok && nv < MAX_VARIANTS - 1; tok = strtok(NULL, ",")) {
        variant *v = &vs[nv++];
        memset(v, 0, sizeof *v);
        v->algo = 1;
        int a = DP_ALLREDUCE_HIER;
        for (; a < DP_ALLREDUCE_NALGOS && strcmp(tok, dp_allreduce_algo_name((dp_allreduce_algo)a)); a++)
            ;
        if (a >= DP_ALLREDUCE_NALGOS)
            die("--algos: unknown algorithm (use rd, hier, hier-rd, auto)");
        v->which = (dp_allreduce_algo)a;
        if (DP_ALLREDUCE_AUTO == v->which) { /* as the engine: loaded once, for the topology's shape */
            int nodes = 1, per = 1;
            dp_topo_shape(topo, &nodes, &per, NULL, NULL);
            if (DP_OK != dp_allreduce_table_load(MPI_COMM_WORLD, table_path, nodes, per, &auto_table))
                die(dp_errmsg());
            v->table = &auto_table;
        }
        with_hier |= DP_ALLREDUCE_HIER == v->which;
        snprintf(v->name, sizeof v->name, "%s", tok);
        if (DP_OK != dp_ring_ws_create(0, &v->ws) || DP_OK != dp_ring_ws_set_depth(v->ws, depth))
            die(dp_errmsg());
        dp_ring_ws_set_topo(v->ws, topo);
    }
    /* --algos hier with --codec: hier with each codec on its inter-node leg too */
    for (char *tok = strtok(with_hier ? hier_codecs : NULL, ","); tok && nv < MAX_VARIANTS - 1;
         tok = strtok(NULL, ",")) {
        variant *v = &vs[nv++];
        memset(v, 0, sizeof *v);
        v->coded = v->algo = 1;
        v->which = DP_ALLREDUCE_HIER;
        v->cfg.wire_zstd_level = wire_zstd;
        if (DP_OK != dp_codec_parse(tok, &v->cfg))
            die(dp_errmsg());
        snprintf(v->name, sizeof v->name, "hier+%s%s", tok, wire_zstd ? "+zstd" : "");
        if (DP_OK != dp_ring_ws_create(0, &v->ws) || DP_OK != dp_ring_ws_set_depth(v->ws, depth))
            die(dp_errmsg());
        dp_ring_ws_set_topo(v->ws, topo);
    }
    memset(&vs[nv], 0, sizeof vs[nv]);
    vs[nv].mpi = 1;
    snprintf(vs[nv].name, sizeof vs[nv].name, "MPI_Allreduce");
    nv++;
    for (int v = 0; v < nv; v++)
        if (NULL == (vs[v].t = malloc((size_t)max_iters * sizeof(double))))
            die("out of memory");

    size_t max_n = max_b / sizeof(float);
    float *buf = malloc(max_n * sizeof(float));
    float *ref = check ? malloc(max_n * sizeof(float)) : NULL;
    if (NULL == buf || (check && NULL == ref))
        die("out of memory for the buffers");
    memset(buf, 0, max_n * sizeof(float)); /* touch every page before timing */
    if (ref)
        memset(ref, 0, max_n * sizeof(float));

    ompi_knobs k = read_knobs();
    char lib[MPI_MAX_LIBRARY_VERSION_STRING];
    int liblen;
    MPI_Get_library_version(lib, &liblen);
    char *nl = strchr(lib, '\n');
    if (nl)
        *nl = '\0';
    char host[256] = "?";
    gethostname(host, sizeof host);
    const double busf = g_size > 1 ? 2.0 * (g_size - 1) / g_size : 0.0;

    FILE *csv = NULL;
    static size_t sizes[MAX_SIZES];
    static double bus_at[MAX_SIZES][MAX_VARIANTS], ratio_at[MAX_SIZES][MAX_VARIANTS];
    int nsz = 0;
    if (0 == g_rank) {
        printf("# bench_allreduce: %d rank(s) on %s (%ld cores online), op %s, depth %d\n",
               g_size, host, sysconf(_SC_NPROCESSORS_ONLN), op == DP_REDUCE_SUM ? "sum" : "avg",
               depth);
        printf("# %s\n", lib);
        printf("# MPI_Allreduce: coll/tuned (priority %d; han %d, sm %d, adapt %d), "
               "dynamic rules %s, forced algorithm %d\n",
               k.tuned_prio, k.han_prio, k.sm_prio, k.adapt_prio,
               k.dynamic > 0 ? "ON" : k.dynamic == 0 ? "off" : "?", k.forced);
        if (k.dynamic > 0 && k.forced > 0)
            printf("#   forced: every size runs %s\n", ompi_alg_name(k.forced));
        else
            printf("#   fixed rules of coll_tuned_decision_fixed.c (v4.1.4), commutative op, "
                   "%d ranks: see column mpi_alg\n", g_size);
        if (topo) {
            int nodes, per;
            int even = dp_topo_shape(topo, &nodes, &per, NULL, NULL);
            printf("# nodes for hier/hier-rd: %d x %d rank(s)%s, from %s\n", nodes, per, even ? "" : " (uneven: flat ring)",
                   rpn ? "--ranks-per-node" : getenv("DP_RANKS_PER_NODE") && *getenv("DP_RANKS_PER_NODE")
                   ? "DP_RANKS_PER_NODE" : "MPI_Comm_split_type");
        }
        if (auto_table.nrules) {
            printf("# auto: table %s:", auto_table.source);
            for (int r = 0; r < auto_table.nrules; r++)
                printf(" %s<=%llu", dp_allreduce_algo_name(auto_table.algo[r]),
                       (unsigned long long)auto_table.max_bytes[r]);
            printf(" (the last also above)\n");
        }
        if (g_size < 4)
            printf("#   (comm size < 4: <8B ring, <4K recursive_doubling, <8K ring, "
                   "<16K recursive_doubling, <64K ring, <256K segmented_ring (segsize 0 = "
                   "unsegmented), >=256K rabenseifner)\n");
        printf("# time = median over iterations of the slowest rank's time; busbw = "
               "bytes/time * 2(P-1)/P; ratio = busbw / MPI busbw (ring or --algos)\n");
        printf("%9s %-14s %6s %11s %11s %9s %9s %9s %6s  %s\n", "bytes", "algo", "iters",
               "t_med(us)", "t_min(us)", "algbw", "busbw", "busbw@min", "ratio", "mpi_alg");
        printf("%9s %-14s %6s %11s %11s %9s %9s %9s %6s\n", "", "", "", "", "", "(GB/s)",
               "(GB/s)", "(GB/s)", "");
        if (csv_path && NULL == (csv = fopen(csv_path, "w")))
            die("cannot open the --csv file");
    }
    const char *csv_head = "bytes,variant,name,seg_bytes,iters,busbw_GBs,t_med_us,ratio,"
                           "t_min_us,algbw_GBs,busbw_peak_GBs,ranks,mpi_alg,sent_B_per_call,"
                           "inter_B_per_call\n";
    if (csv)
        fputs(csv_head, csv);

    result res[MAX_VARIANTS];
    for (size_t b = min_b; b <= max_b; b *= (size_t)factor) {
        size_t n = b / sizeof(float);
        if (check)
            check_size(vs, nv, buf, ref, n, op);
        measure(vs, nv, buf, n, op, warmup, iters, max_iters, cap, res);
        if (0 != g_rank)
            continue;
        char alg[48], sz[32];
        mpi_alg_for(&k, b, alg, sizeof alg);
        fmt_size(b, sz, sizeof sz);
        const result *mpi = &res[nv - 1];
        const result *none = NULL;
        for (int v = 0; v < nv; v++)
            if (vs[v].coded && DP_CODEC_NONE == vs[v].cfg.kind && !none)
                none = &res[v];
        double mpi_bus = busf * (double)b / mpi->t_med / 1e9;
        for (int v = 0; v < nv; v++) {
            double algbw = (double)b / res[v].t_med / 1e9;
            double bus = algbw * busf, peak = busf * (double)b / res[v].t_min / 1e9;
            double ratio = vs[v].mpi || mpi_bus <= 0 ? NAN : bus / mpi_bus;
            char rs[16] = "";
            if (!isnan(ratio))
                snprintf(rs, sizeof rs, "%.2f", ratio);
            char extra[128] = "";
            double sent_pc = 0.0, inter_pc = 0.0; /* rank 0's bytes per call */
            if (vs[v].ws) {
                dp_comm_stats cs;
                dp_ring_ws_stats(vs[v].ws, &cs);
                double calls = cs.calls ? (double)cs.calls : 1.0;
                sent_pc = (double)cs.bytes_sent / calls;
                inter_pc = (double)cs.bytes_inter_sent / calls;
            }
            if (vs[v].algo)
                snprintf(extra, sizeof extra, "sent %.1f KiB/call, %.1f KiB between nodes", sent_pc / 1024.0,
                         inter_pc / 1024.0);
            if (vs[v].coded) { /* rank 0's counters over warm-up and timed calls */
                dp_comm_stats cs;
                dp_ring_ws_stats(vs[v].ws, &cs);
                double calls = cs.calls ? (double)cs.calls : 1.0;
                char between[48] = "";
                if (vs[v].algo)
                    snprintf(between, sizeof between, ", %.1f KiB between nodes", inter_pc / 1024.0);
                snprintf(extra, sizeof extra, "wire %.3f MiB/call, x%.2f vs float32%s",
                         (double)cs.bytes_sent / calls / 1048576.0,
                         cs.bytes_sent ? (double)cs.bytes_raw_sent / (double)cs.bytes_sent : 0.0,
                         between);
                if (none) {
                    size_t l = strlen(extra);
                    snprintf(extra + l, sizeof extra - l, ", %.2fx none's speed",
                             none->t_med / res[v].t_med);
                }
            }
            printf("%9s %-14s %6d %11.1f %11.1f %9.3f %9.3f %9.3f %6s  %s\n", v ? "" : sz,
                   vs[v].name, res[v].iters, res[v].t_med * 1e6, res[v].t_min * 1e6, algbw, bus,
                   peak, rs, vs[v].mpi ? alg : extra);
            char line[2048];
            snprintf(line, sizeof line, "%zu,%d,%s,%zu,%d,%.4f,%.2f,%.4f,%.2f,%.4f,%.4f,%d,%s,%.0f,%.0f\n",
                     b, v, vs[v].name, vs[v].seg_bytes, res[v].iters, bus, res[v].t_med * 1e6,
                     isnan(ratio) ? 0.0 : ratio, res[v].t_min * 1e6, algbw, peak, g_size, alg, sent_pc,
                     inter_pc);
            if (csv)
                fputs(line, csv);
            if (nsz < MAX_SIZES) {
                bus_at[nsz][v] = bus;
                ratio_at[nsz][v] = isnan(ratio) ? 0.0 : ratio;
            }
        }
        if (nsz < MAX_SIZES)
            sizes[nsz++] = b;
        fflush(stdout);
    }
    if (0 == g_rank) {
        if (csv)
            fclose(csv);
        if (plot_path)
            plot(plot_path, nsz, sizes, bus_at, ratio_at, nv, vs);
    }
    for (int v = 0; v < nv; v++) {
        dp_ring_ws_free(vs[v].ws);
        free(vs[v].t);
    }
    dp_topo_free(topo);
    free(buf);
    free(ref);
    MPI_Finalize();
    return 0;
}
