/* bench_alphabeta: the parameters of benchmarks/allreduce_model.c, measured on the machine
 * it runs on: point-to-point latency alpha and inverse bandwidth beta between two ranks of
 * one node and between two ranks of different nodes, and gamma, the time per byte of a float
 * sum of two buffers (the ring's reduction).
 *
 *   mpirun -np 2 build/benchmarks/bench_alphabeta [--out FILE] [options]    (--help lists them)
 *   launch/vcluster.sh --nodes 2 --rate 1gbit -- mpirun -np 2 build/benchmarks/bench_alphabeta ...
 *
 * Nodes are MPI_Comm_split_type(MPI_COMM_TYPE_SHARED)'s. The intra pair is local ranks 0
 * and 1 of the first node that has two; the inter pair is local rank 0 of the first two
 * nodes. One pair runs at a time while every other rank waits, so a pair has its link (and
 * its NIC) alone: beta is one flow's, as the model wants it.
 *
 * Per size (8 B .. --max-bytes, powers of two): a warm-up round (TCP connections open on
 * first use), then reps rounds of
 *   ping-pong: A sends, B returns it; one-way time = round trip / 2;
 *   exchange:  both MPI_Sendrecv at once (what a ring step does: send right, receive left);
 *              a round's time is the slower side's.
 * The reported time is the median over rounds; reps shrinks for large sizes to keep each
 * size within --budget seconds (at least 3 rounds).
 * Fit: t(m) = alpha + m*beta, beta by least squares over the large sizes (>= the largest/16),
 * alpha from the small ones (<= 1 KiB), see fit_two. The residuals reported are the RMS
 * relative error (fit - t)/t over all sizes and over the large ones: a single alpha-beta line
 * does not follow an MPI's protocol switches (eager/rendezvous) or a tbf's burst, and the
 * residual says by how much. The model uses the exchange fit.
 * gamma: rank 0 alone times b[i] += a[i] over floats at an in-cache size (--gamma-small,
 * default 32 KiB per vector) and an out-of-cache one (--gamma-big, default 32 MiB), median
 * of reps, seconds per byte of one vector.
 *
 * node_bw: all ranks of the intra pair's node exchange --max-bytes (at most 16 MiB) with a
 * neighbour at once (local ranks 2k, 2k+1), bytes sent per second summed over the node: what
 * the R flows of a ring step share. Written only with 2 pairs or more (4+ ranks on a node).
 * Output: a table on stdout and, with --out, a key=value file for allreduce_model --params.
 * One node: intra-node figures only (said so); one rank per node: inter-node only. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#define MAXSIZES 40

static int g_rank;

static void usage(void)
{
    if (0 == g_rank)
        fprintf(stderr,
                "usage: bench_alphabeta [--out FILE] [--max-bytes 64M] [--min-bytes 8] [--reps 20]\n"
                "                       [--budget 1.0] [--gamma-small 32K] [--gamma-big 32M] [--seg-bytes 256K]\n"
                "  --out FILE      write the parameters as key=value (allreduce_model --params FILE)\n"
                "  --max-bytes B   largest message (default 64M); --min-bytes B smallest (default 8)\n"
                "  --reps K        rounds per size at most (default 20, at least 3 are run)\n"
                "  --budget S      seconds per size and method, roughly (default 1.0)\n"
                "  --gamma-small B / --gamma-big B   vector sizes for gamma (default 32K / 32M)\n"
                "  --seg-bytes B   the ring segment recorded in the file (default 256K, dptrain's default)\n");
}

static void fail(const char *msg, const char *arg)
{
    if (0 == g_rank) fprintf(stderr, "bench_alphabeta: %s '%s'\n", msg, arg);
    MPI_Finalize();
    exit(2);
}

static double parse_bytes(const char *flag, const char *s)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || !(v > 0)) fail(flag, s);
    if (*end == 'K' || *end == 'k') v *= 1024, end++;
    else if (*end == 'M' || *end == 'm') v *= 1048576, end++;
    else if (*end == 'G' || *end == 'g') v *= 1073741824.0, end++;
    if (*end) fail(flag, s);
    return v;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

typedef struct fit {
    double alpha, beta;
    double resid;       /* RMS relative error of the fit over every size */
    double resid_large; /* the same over the sizes beta was fitted on */
} fit;

/* beta: ordinary least squares (slope) over the large sizes, m >= largest/16, where
 * bandwidth dominates; alpha: the median of t - beta*m over the small sizes, m <= 1 KiB (the
 * smallest size when none is that small), where latency dominates (a median, not the mean a
 * least squares would give, so that one slow size on a loaded machine does not set it). One least squares over
 * every size would let the largest sizes set alpha too, and a relative-error fit lets the
 * middle sizes (protocol switches, a tbf's burst) set beta. */
static fit fit_two(const double *m, const double *t, int n)
{
    fit f = {0, 0, 0, 0};
    if (n < 1) return f;
    double big = m[n - 1] / 16, sx = 0, sy = 0, sxx = 0, sxy = 0;
    int nl = 0;
    for (int i = 0; i < n; i++)
        if (m[i] >= big) sx += m[i], sy += t[i], sxx += m[i] * m[i], sxy += m[i] * t[i], nl++;
    double det = nl * sxx - sx * sx;
    if (nl >= 2 && det > 0) f.beta = (nl * sxy - sx * sy) / det;
    else f.beta = m[n - 1] > 0 ? t[n - 1] / m[n - 1] : 0;
    if (f.beta < 0) f.beta = 0;
    double rest[MAXSIZES];
    int ns = 0;
    for (int i = 0; i < n; i++)
        if (m[i] <= 1024 || i == 0) rest[ns++] = t[i] - f.beta * m[i];
    f.alpha = ns ? median(rest, ns) : 0;
    if (f.alpha < 0) f.alpha = 0;
    double ss = 0, sl = 0;
    for (int i = 0; i < n; i++) {
        double r = (f.alpha + f.beta * m[i] - t[i]) / t[i];
        ss += r * r;
        if (m[i] >= big) sl += r * r;
    }
    f.resid = sqrt(ss / n);
    f.resid_large = nl ? sqrt(sl / nl) : 0;
    return f;
}

typedef struct series {
    int n;
    double bytes[MAXSIZES], pp[MAXSIZES], ex[MAXSIZES]; /* medians, s */
    fit fpp, fex;
} series;

/* Measures pair (a, b) of world ranks; every rank calls it. Results land on every rank. */
static void measure(int a, int b, const double *sizes, int nsizes, int maxreps, double budget, char *sbuf,
                    char *rbuf, series *out)
{
    MPI_Comm pc;
    int in = g_rank == a || g_rank == b;
    MPI_Comm_split(MPI_COMM_WORLD, in ? 0 : MPI_UNDEFINED, g_rank == a ? 0 : 1, &pc);
    memset(out, 0, sizeof *out);
    out->n = nsizes;
    if (in) {
        int peer = g_rank == a ? 1 : 0, first = g_rank == a;
        double *tp = malloc(sizeof(double) * (size_t)maxreps), *te = malloc(sizeof(double) * (size_t)maxreps);
        double *tm = malloc(sizeof(double) * (size_t)maxreps);
        if (!tp || !te || !tm) MPI_Abort(MPI_COMM_WORLD, 1);
        for (int s = 0; s < nsizes; s++) {
            int n = (int)sizes[s];
            for (int w = 0; w < (s == 0 ? 3 : 1); w++) /* warm-up: connections, pages */
                MPI_Sendrecv(sbuf, n, MPI_CHAR, peer, 1, rbuf, n, MPI_CHAR, peer, 1, pc, MPI_STATUS_IGNORE);
            /* reps from one timed exchange, decided by A so both sides agree */
            double t0 = MPI_Wtime();
            MPI_Sendrecv(sbuf, n, MPI_CHAR, peer, 2, rbuf, n, MPI_CHAR, peer, 2, pc, MPI_STATUS_IGNORE);
            double one = MPI_Wtime() - t0;
            int reps = one > 0 ? (int)(budget / 3.0 / one) : maxreps;
            if (reps > maxreps) reps = maxreps;
            if (reps < 3) reps = 3;
            MPI_Bcast(&reps, 1, MPI_INT, 0, pc);
            for (int r = 0; r < reps; r++) {
                MPI_Barrier(pc);
                t0 = MPI_Wtime();
                if (first) {
                    MPI_Send(sbuf, n, MPI_CHAR, peer, 3, pc);
                    MPI_Recv(rbuf, n, MPI_CHAR, peer, 3, pc, MPI_STATUS_IGNORE);
                } else {
                    MPI_Recv(rbuf, n, MPI_CHAR, peer, 3, pc, MPI_STATUS_IGNORE);
                    MPI_Send(sbuf, n, MPI_CHAR, peer, 3, pc);
                }
                tp[r] = (MPI_Wtime() - t0) / 2;
            }
            for (int r = 0; r < reps; r++) {
                MPI_Barrier(pc);
                t0 = MPI_Wtime();
                MPI_Sendrecv(sbuf, n, MPI_CHAR, peer, 4, rbuf, n, MPI_CHAR, peer, 4, pc, MPI_STATUS_IGNORE);
                te[r] = MPI_Wtime() - t0;
            }
            MPI_Allreduce(te, tm, reps, MPI_DOUBLE, MPI_MAX, pc); /* a round ends when both sides are done */
            out->bytes[s] = sizes[s];
            out->pp[s] = median(tp, reps); /* A's clock: it saw the whole round trip */
            out->ex[s] = median(tm, reps);
            MPI_Bcast(&out->pp[s], 1, MPI_DOUBLE, 0, pc);
        }
        free(tp), free(te), free(tm);
        out->fpp = fit_two(out->bytes, out->pp, nsizes);
        out->fex = fit_two(out->bytes, out->ex, nsizes);
        MPI_Comm_free(&pc);
    }
    MPI_Bcast(out, (int)sizeof *out, MPI_BYTE, a, MPI_COMM_WORLD);
}

/* Every rank of `nd` (node index) exchanges `bytes` with its neighbour (local ranks 2k, 2k+1)
 * at once; returns bytes sent per second summed over the node (0 on other ranks' nodes,
 * broadcast from world rank `root`). What R ranks of a ring step move together. */
static double node_bandwidth(int nd, int lr, int ls, int root, int my_nd, double bytes, char *sbuf, char *rbuf,
                             int *pairs_out)
{
    MPI_Comm nc;
    int pairs = ls / 2, in = my_nd == nd && lr < 2 * pairs;
    MPI_Comm_split(MPI_COMM_WORLD, in ? 0 : MPI_UNDEFINED, lr, &nc);
    double bw = 0;
    if (in) {
        int n = (int)bytes, peer = lr ^ 1;
        double t[5], tm[5];
        MPI_Sendrecv(sbuf, n, MPI_CHAR, peer, 5, rbuf, n, MPI_CHAR, peer, 5, nc, MPI_STATUS_IGNORE);
        for (int r = 0; r < 5; r++) {
            MPI_Barrier(nc);
            double t0 = MPI_Wtime();
            MPI_Sendrecv(sbuf, n, MPI_CHAR, peer, 6, rbuf, n, MPI_CHAR, peer, 6, nc, MPI_STATUS_IGNORE);
            t[r] = MPI_Wtime() - t0;
        }
        MPI_Allreduce(t, tm, 5, MPI_DOUBLE, MPI_MAX, nc);
        bw = 2.0 * pairs * bytes / median(tm, 5);
        MPI_Comm_free(&nc);
    }
    MPI_Bcast(&bw, 1, MPI_DOUBLE, root, MPI_COMM_WORLD);
    *pairs_out = pairs;
    return bw;
}

static double gamma_of(double bytes, int maxreps)
{
    size_t n = (size_t)(bytes / sizeof(float));
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
    double *t = malloc(sizeof(double) * (size_t)maxreps);
    if (!x || !y || !t) MPI_Abort(MPI_COMM_WORLD, 1);
    for (size_t i = 0; i < n; i++) x[i] = 1e-3f * (float)(i % 7), y[i] = 0;
    int reps = 0;
    double spent = 0;
    while (reps < maxreps && (reps < 5 || spent < 0.3)) {
        double t0 = MPI_Wtime();
        for (size_t i = 0; i < n; i++) y[i] += x[i];
        t[reps] = MPI_Wtime() - t0;
        spent += t[reps++];
    }
    volatile float sink = y[0] + y[n - 1];
    (void)sink;
    double g = median(t, reps) / ((double)n * sizeof(float));
    free(x), free(y), free(t);
    return g;
}

static void print_series(const char *what, const series *s)
{
    printf("\n%s: median one-way time (ping-pong) and exchange time (MPI_Sendrecv both ways)\n", what);
    printf("%12s %12s %10s %12s %10s\n", "bytes", "pingpong_s", "pp_MB/s", "exchange_s", "ex_MB/s");
    for (int i = 0; i < s->n; i++)
        printf("%12.0f %12.4g %10.1f %12.4g %10.1f\n", s->bytes[i], s->pp[i], s->bytes[i] / s->pp[i] / 1e6, s->ex[i],
               s->bytes[i] / s->ex[i] / 1e6);
    const fit *f[2] = {&s->fpp, &s->fex};
    for (int k = 0; k < 2; k++)
        printf("fit %s: alpha %.3g s  beta %.3g s/B (%.1f MB/s, %.2f Gbit/s)  rms rel. residual %.1f%% "
               "(all sizes), %.1f%% (sizes >= %.0f B)\n", k ? "exchange" : "pingpong", f[k]->alpha, f[k]->beta,
               f[k]->beta > 0 ? 1e-6 / f[k]->beta : 0, f[k]->beta > 0 ? 8e-9 / f[k]->beta : 0, 100 * f[k]->resid,
               100 * f[k]->resid_large, s->bytes[s->n - 1] / 16);
    if (s->fex.resid_large > 0.25)
        printf("warning: the exchange fit misses the large sizes by %.0f%% RMS: a loaded machine (other jobs, ranks "
               "sharing cores) or a link that is not alpha-beta shaped; rerun on a quiet machine, bound ranks, "
               "more --reps\n", 100 * s->fex.resid_large);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int size;
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    const char *out = NULL;
    double max_bytes = 64.0 * 1048576, min_bytes = 8, budget = 1.0, gsmall = 32768, gbig = 32.0 * 1048576;
    double seg = 256.0 * 1024;
    int reps = 20;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage();
            MPI_Finalize();
            return 0;
        }
        if (i + 1 >= argc) fail("option needs a value:", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--max-bytes")) max_bytes = parse_bytes("--max-bytes: want a size such as 4M, got", v);
        else if (!strcmp(a, "--min-bytes")) min_bytes = parse_bytes("--min-bytes: want a size such as 8, got", v);
        else if (!strcmp(a, "--gamma-small")) gsmall = parse_bytes("--gamma-small: want a size such as 32K, got", v);
        else if (!strcmp(a, "--gamma-big")) gbig = parse_bytes("--gamma-big: want a size such as 32M, got", v);
        else if (!strcmp(a, "--seg-bytes")) seg = parse_bytes("--seg-bytes: want a size such as 256K, got", v);
        else if (!strcmp(a, "--budget")) {
            char *end;
            budget = strtod(v, &end);
            if (end == v || *end || !(budget > 0 && budget <= 600)) fail("--budget: want seconds in (0, 600], got", v);
        } else if (!strcmp(a, "--reps")) {
            char *end;
            long r = strtol(v, &end, 10);
            if (end == v || *end || r < 3 || r > 100000) fail("--reps: want a count from 3 to 100000, got", v);
            reps = (int)r;
        } else fail("unknown option", a);
    }
    if (max_bytes > 1073741824.0 || min_bytes > max_bytes || gsmall < 4 || gbig < 4 || seg < 4)
        fail("sizes out of range (min-bytes <= max-bytes <= 1G, gamma sizes and seg-bytes >= 4)", "");
    double sizes[MAXSIZES];
    int nsizes = 0;
    for (double m = min_bytes; m <= max_bytes && nsizes < MAXSIZES; m *= 2) sizes[nsizes++] = floor(m);

    /* nodes: the SHARED split; node index = rank among the node leaders (world rank order) */
    MPI_Comm node, leaders;
    int lr, ls, node_id, nnodes;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &lr);
    MPI_Comm_size(node, &ls);
    MPI_Comm_split(MPI_COMM_WORLD, lr == 0 ? 0 : MPI_UNDEFINED, g_rank, &leaders);
    if (lr == 0) {
        MPI_Comm_rank(leaders, &node_id);
        MPI_Comm_size(leaders, &nnodes);
        MPI_Comm_free(&leaders);
    }
    MPI_Bcast(&node_id, 1, MPI_INT, 0, node);
    MPI_Bcast(&nnodes, 1, MPI_INT, 0, node);
    int mine[3] = {node_id, lr, ls}, *all = malloc(sizeof(int) * 3 * (size_t)size);
    if (!all) MPI_Abort(MPI_COMM_WORLD, 1);
    MPI_Allgather(mine, 3, MPI_INT, all, 3, MPI_INT, MPI_COMM_WORLD);
    int ia = -1, ib = -1, xa = -1, xb = -1, rpn_min = size, rpn_max = 0;
    for (int r = 0; r < size; r++) {
        int nd = all[3 * r], l = all[3 * r + 1], s = all[3 * r + 2];
        if (s < rpn_min) rpn_min = s;
        if (s > rpn_max) rpn_max = s;
        if (ia < 0 && l == 0 && s >= 2) { /* first node with two ranks: its local 0 and 1 */
            ia = r;
            for (int q = 0; q < size; q++)
                if (all[3 * q] == nd && all[3 * q + 1] == 1) ib = q;
        }
        if (l == 0 && nd == 0) xa = r;
        if (l == 0 && nd == 1) xb = r;
    }
    free(all);
    size_t bufsz = (size_t)max_bytes;
    char *sbuf = malloc(bufsz), *rbuf = malloc(bufsz);
    if (!sbuf || !rbuf) {
        fprintf(stderr, "bench_alphabeta: rank %d: cannot allocate 2 x %zu bytes\n", g_rank, bufsz);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    memset(sbuf, 1, bufsz), memset(rbuf, 0, bufsz);

    series intra, inter;
    int have_intra = ia >= 0 && ib >= 0, have_inter = nnodes >= 2 && xa >= 0 && xb >= 0;
    if (0 == g_rank) {
        printf("bench_alphabeta: %d ranks on %d node(s) (MPI_COMM_TYPE_SHARED), %d..%d ranks per node\n", size, nnodes,
               rpn_min, rpn_max);
        if (have_intra) printf("intra pair: world ranks %d and %d\n", ia, ib);
        else printf("intra pair: none (no node holds two ranks): no intra-node alpha/beta\n");
        if (have_inter) printf("inter pair: world ranks %d and %d\n", xa, xb);
        else printf("inter pair: none (one node): intra-node figures only\n");
        fflush(stdout);
    }
    if (have_intra) measure(ia, ib, sizes, nsizes, reps, budget, sbuf, rbuf, &intra);
    if (have_inter) measure(xa, xb, sizes, nsizes, reps, budget, sbuf, rbuf, &inter);
    /* all of a node's ranks at once: only meaningful with 2 pairs or more */
    double node_bw = 0, node_bytes = fmin(max_bytes, 16.0 * 1048576);
    int pairs = 0;
    if (have_intra) {
        int nd_i = -1;
        MPI_Comm_size(node, &ls);
        int tmp[2] = {g_rank == ia ? node_id : -1, g_rank == ia ? ls : -1}, res[2];
        MPI_Allreduce(tmp, res, 2, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
        nd_i = res[0];
        node_bw = node_bandwidth(nd_i, lr, res[1], ia, node_id, node_bytes, sbuf, rbuf, &pairs);
    }
    free(sbuf), free(rbuf);
    MPI_Barrier(MPI_COMM_WORLD);
    double gc = 0, gm = 0;
    if (0 == g_rank) gc = gamma_of(gsmall, 2000), gm = gamma_of(gbig, 50);

    int rc = 0;
    if (0 == g_rank) {
        if (have_intra) print_series("intra-node", &intra);
        if (have_inter) print_series("inter-node", &inter);
        if (have_intra)
            printf("\nnode shared memory, %d pair(s) of one node exchanging %.0f B at once: %.2f GB/s sent in all%s\n",
                   pairs, node_bytes, node_bw / 1e9, pairs < 2 ? " (one pair: not written, the model needs >= 2)" : "");
        printf("\ngamma (float b[i] += a[i], rank 0 alone): %.3g s/B at %.0f B (%.2f GB/s), %.3g s/B at %.0f B (%.2f GB/s)\n",
               gc, gsmall, 1e-9 / gc, gm, gbig, 1e-9 / gm);
        if (out) {
            FILE *f = fopen(out, "w");
            if (!f) {
                fprintf(stderr, "bench_alphabeta: %s: cannot write: %s\n", out, strerror(errno));
                rc = 1;
            } else {
                fprintf(f, "# bench_alphabeta: %d ranks, %d node(s); model uses the exchange fits\n", size, nnodes);
                fprintf(f, "nodes=%d\nranks=%d\nranks_per_node=%d\nmax_bytes=%.0f\nreps=%d\n", nnodes, size, rpn_max,
                        max_bytes, reps);
                if (have_intra)
                    fprintf(f, "alpha_intra=%.6g\nbeta_intra=%.6g\nresid_intra=%.4g\nresid_intra_large=%.4g\nalpha_intra_pp=%.6g\n"
                            "beta_intra_pp=%.6g\nresid_intra_pp=%.4g\n", intra.fex.alpha, intra.fex.beta,
                            intra.fex.resid, intra.fex.resid_large, intra.fpp.alpha, intra.fpp.beta, intra.fpp.resid);
                else fprintf(f, "# no intra-node pair: no alpha_intra/beta_intra\n");
                if (have_inter)
                    fprintf(f, "alpha_inter=%.6g\nbeta_inter=%.6g\nresid_inter=%.4g\nresid_inter_large=%.4g\nalpha_inter_pp=%.6g\n"
                            "beta_inter_pp=%.6g\nresid_inter_pp=%.4g\n", inter.fex.alpha, inter.fex.beta,
                            inter.fex.resid, inter.fex.resid_large, inter.fpp.alpha, inter.fpp.beta, inter.fpp.resid);
                else fprintf(f, "# one node: no alpha_inter/beta_inter\n");
                if (have_intra && pairs >= 2)
                    fprintf(f, "node_bw=%.6g\nnode_bw_pairs=%d\nnode_bw_bytes=%.0f\n", node_bw, pairs, node_bytes);
                else fprintf(f, "# node_bw: needs >= 4 ranks on a node (2 pairs at once)\n");
                fprintf(f, "gamma_cache=%.6g\ngamma_cache_bytes=%.0f\ngamma_mem=%.6g\ngamma_mem_bytes=%.0f\n", gc, gsmall,
                        gm, gbig);
                fprintf(f, "# cache_bytes: where the model switches gamma (an assumed L2 size, not measured)\n");
                fprintf(f, "cache_bytes=1048576\nseg_bytes=%.0f\n", seg);
                if (fclose(f)) rc = 1, fprintf(stderr, "bench_alphabeta: %s: write failed\n", out);
                else printf("parameters: %s\n", out);
            }
        }
    }
    MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
    MPI_Comm_free(&node);
    MPI_Finalize();
    return rc;
}
