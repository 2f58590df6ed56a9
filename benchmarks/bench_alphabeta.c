/* bench_alphabeta: the parameters of benchmarks/allreduce_model.c, measured on the machine
 * it runs on, the way the collectives run: latency alpha and inverse bandwidth beta of one
 * message when the ranks move data in the patterns our allreduces use, and gamma, the time
 * per byte of a float sum of two buffers.
 *
 *   mpirun -np 2 build/benchmarks/bench_alphabeta [--out FILE] [options]    (--help lists them)
 *   launch/vcluster.sh --nodes 2 --ranks-per-node 2 --rate 1gbit -- mpirun -np 4 build/benchmarks/bench_alphabeta ...
 *
 * Nodes are MPI_Comm_split_type(MPI_COMM_TYPE_SHARED)'s, N nodes of R ranks (world ranks in
 * blocks, as Open MPI places them with a hostfile of slots=R).
 *
 * Why patterns and not one pair: in an allreduce every rank is inside the call at once. A
 * pair timed while the other ranks wait in MPI (Open MPI busy-polls) measures the idle ranks'
 * polling (on 2 cores shared by 4 ranks the old version found an 8 ms "latency"), and a pair
 * timed alone on a link measures one TCP flow where the algorithm runs R of them through one
 * NIC. So the model's parameters come from patterns in which EVERY rank exchanges at once,
 * one MPI_Sendrecv of m bytes per rank and round (as ring, hier and rd steps do):
 *   intra:  each rank with its node's next/previous local rank (a ring step inside every
 *           node, all nodes at once): R flows per node, the intra-node legs of hier and the
 *           intra-node steps of rd. Needs R >= 2.
 *   inter:  each rank with the same local rank on the next/previous node (a step of hier's
 *           column ring, all columns at once): R flows through each NIC each way, and every
 *           rank crossing, as rd's inter-node steps. Needs N >= 2.
 *   ring:   each rank with world rank +-1 (a flat ring step, all at once): N hops cross
 *           nodes (one flow per NIC each way), P - N stay inside. The flat ring's step; only
 *           with N >= 2 and R >= 2 (else it is the intra or the inter pattern).
 * Oversubscription (more ranks than cores, as 4 ranks on this 2-core machine) is therefore
 * measured, not modelled: it is in the patterns' alpha and beta, for the placement the run
 * used, and those figures hold for that placement only.
 * For reference, two pairs measured alone while every other rank waits in a sleeping loop
 * (MPI_Ibarrier + MPI_Test + nanosleep, so it takes no core): local ranks 0 and 1 of the
 * first node with two (intra pair), local rank 0 of the first two nodes (inter pair);
 * ping-pong (one-way = round trip / 2) and exchange (both MPI_Sendrecv at once). These
 * "_pair"/"_pp" keys are written but not used by the model.
 *
 * Per size (--min-bytes .. --max-bytes, times --factor): a warm-up round (TCP connections
 * open on first use), then rounds of (barrier, time CHAIN = 4 exchanges back to back, 1 above
 * 1 MiB) until they add up to --budget seconds (at least 3, at most --reps; see keep_going);
 * a round's time is its slowest rank's (as bench_allreduce times a call), the figure is the
 * median over rounds of round time / CHAIN. (The pairs are timed one message per round.)
 * Fit: t(m) = alpha + m*beta, beta by least squares over the large sizes (>= the largest/16),
 * alpha the median of t - beta*m over the small ones (<= 1 KiB), see fit_two; the RMS
 * relative residuals over all sizes and over the large ones say how far from a line it is.
 * gamma: every rank at once times b[i] += a[i] over floats at an in-cache size (--gamma-small,
 * default 32 KiB per vector) and an out-of-cache one (--gamma-big, default 32 MiB): the
 * slowest rank's median, seconds per byte of one vector (ranks sharing cores slow it as they
 * slow the reductions inside the allreduce); rank 0 alone as well, for reference.
 * Output: a table on stdout and, with --out, a key=value file for allreduce_model --params. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mpi.h>

#define MAXSIZES 40
#define CHAIN 4 /* exchanges per timed round of a pattern, up to 1 MiB */

static int g_rank, g_size;

static void usage(void)
{
    if (0 == g_rank)
        fprintf(stderr,
                "usage: bench_alphabeta [--out FILE] [--max-bytes 64M] [--min-bytes 8] [--factor 2] [--reps 1000]\n"
                "                       [--budget 1.0] [--gamma-small 32K] [--gamma-big 32M] [--seg-bytes 256K]\n"
                "                       [--no-pairs]\n"
                "  --out FILE      write the parameters as key=value (allreduce_model --params FILE)\n"
                "  --max-bytes B   largest message (default 64M); --min-bytes B smallest (default 8)\n"
                "  --factor F      sizes grow by F (default 2; 4 halves the run time)\n"
                "  --reps K        rounds per size at most (default 1000, at least 3 are run)\n"
                "  --budget S      seconds of rounds per size and pattern (default 1.0; at least 3 rounds)\n"
                "  --gamma-small B / --gamma-big B   vector sizes for gamma (default 32K / 32M)\n"
                "  --seg-bytes B   the ring segment recorded in the file (default 256K, dptrain's default)\n"
                "  --no-pairs      skip the reference pairs (the model does not use them)\n");
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

/* A wait that leaves the core to others: idle ranks must not take cores from the ranks
 * being timed (Open MPI's MPI_Barrier spins). */
static void sleeping_barrier(MPI_Comm c)
{
    MPI_Request rq;
    MPI_Ibarrier(c, &rq);
    for (int done = 0;;) {
        MPI_Test(&rq, &done, MPI_STATUS_IGNORE);
        if (done) break;
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
}

typedef struct fit {
    double alpha, beta;
    double resid;       /* RMS relative error of the fit over every size */
    double resid_large; /* the same over the sizes beta was fitted on */
} fit;

/* beta: ordinary least squares (slope) over the large sizes, m >= largest/16, where
 * bandwidth dominates; alpha: the median of t - beta*m over the small sizes, m <= 1 KiB (the
 * smallest size when none is that small), where latency dominates (a median, so that one slow
 * size on a loaded machine does not set it). One least squares over every size would let the
 * largest sizes set alpha too, and a relative-error fit lets the middle sizes (protocol
 * switches, a tbf's burst) set beta. */
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
    /* a slope <= 0 (the large sizes no slower than the smaller ones: noise on a loaded machine)
     * says nothing about bandwidth: then the largest size's time per byte, an upper bound */
    if (!(f.beta > 0)) f.beta = m[n - 1] > 0 ? t[n - 1] / m[n - 1] : 0;
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
    double bytes[MAXSIZES], t[MAXSIZES], t2[MAXSIZES]; /* medians, s (t2: the pair's exchange) */
    fit f, f2;
} series;

typedef struct opts {
    const double *sizes;
    int nsizes, maxreps;
    double budget;
    char *sbuf, *rbuf;
} opts;

/* Rounds of one size until they add up to --budget seconds (at least 3, at most --reps, and 25
 * where 4 budgets allow): on a
 * machine where ranks share cores a round is fast while the ranks happen to run at once and
 * slow when one waits for a core, so a size needs rounds spread over many scheduler slices,
 * as bench_allreduce's timing loop has. t: the round's time, the same on every rank of c
 * (MAX-reduced), so every rank stops after the same round. */
static int keep_going(double *spent, double t, int r, const opts *o)
{
    *spent += t;
    if (r + 1 >= o->maxreps) return 0;
    if (r + 1 < 3) return 1;
    /* at least 25 rounds unless they cost 4 budgets: stopping on time alone lets a few slow
     * rounds (a rank waiting for a core) use up the budget and set the median */
    return *spent < o->budget || (r + 1 < 25 && *spent < 4 * o->budget);
}

/* A pattern: every rank of WORLD sends m bytes to `right` and receives m from `left` at once
 * (MPI_Sendrecv); a round's time is the slowest rank's. Fills out on every rank. */
static void measure_pattern(int right, int left, const opts *o, series *out)
{
    memset(out, 0, sizeof *out);
    out->n = o->nsizes;
    double *tm = malloc(sizeof(double) * (size_t)o->maxreps);
    if (!tm) MPI_Abort(MPI_COMM_WORLD, 1);
    for (int s = 0; s < o->nsizes; s++) {
        int n = (int)o->sizes[s];
        for (int w = 0; w < (s == 0 ? 3 : 1); w++) /* warm-up: connections, pages */
            MPI_Sendrecv(o->sbuf, n, MPI_CHAR, right, 1, o->rbuf, n, MPI_CHAR, left, 1, MPI_COMM_WORLD,
                         MPI_STATUS_IGNORE);
        double spent = 0;
        int reps = 0;
        /* a round is CHAIN exchanges back to back, as an algorithm's steps follow each other: the
         * ranks' skew out of the barrier (large where ranks wait for cores) is paid once per
         * round, as once per call, not once per message */
        const int chain = n <= 1048576 ? CHAIN : 1;
        do {
            MPI_Barrier(MPI_COMM_WORLD);
            double t0 = MPI_Wtime();
            for (int c = 0; c < chain; c++)
                MPI_Sendrecv(o->sbuf, n, MPI_CHAR, right, 3, o->rbuf, n, MPI_CHAR, left, 3, MPI_COMM_WORLD,
                             MPI_STATUS_IGNORE);
            double t = MPI_Wtime() - t0;
            MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD); /* the slowest rank's */
            tm[reps] = t / chain;
        } while (keep_going(&spent, tm[reps] * chain, reps, o) && ++reps);
        reps++;
        out->bytes[s] = o->sizes[s];
        out->t[s] = median(tm, reps);
    }
    free(tm);
    out->f = fit_two(out->bytes, out->t, out->n);
}

/* A pair (a, b) of world ranks alone: ping-pong (t) and exchange (t2) while every other rank
 * waits in sleeping_barrier. Results land on every rank. */
static void measure_pair(int a, int b, const opts *o, series *out)
{
    MPI_Comm pc;
    int in = g_rank == a || g_rank == b;
    MPI_Comm_split(MPI_COMM_WORLD, in ? 0 : MPI_UNDEFINED, g_rank == a ? 0 : 1, &pc);
    memset(out, 0, sizeof *out);
    out->n = o->nsizes;
    if (in) {
        int peer = g_rank == a ? 1 : 0, first = g_rank == a;
        double *tp = malloc(sizeof(double) * (size_t)o->maxreps), *te = malloc(sizeof(double) * (size_t)o->maxreps);
        if (!tp || !te) MPI_Abort(MPI_COMM_WORLD, 1);
        for (int s = 0; s < o->nsizes; s++) {
            int n = (int)o->sizes[s];
            for (int w = 0; w < (s == 0 ? 3 : 1); w++)
                MPI_Sendrecv(o->sbuf, n, MPI_CHAR, peer, 1, o->rbuf, n, MPI_CHAR, peer, 1, pc, MPI_STATUS_IGNORE);
            double spent = 0;
            int reps = 0;
            do { /* ping-pong: one-way = round trip / 2 */
                MPI_Barrier(pc);
                double t0 = MPI_Wtime();
                if (first) {
                    MPI_Send(o->sbuf, n, MPI_CHAR, peer, 3, pc);
                    MPI_Recv(o->rbuf, n, MPI_CHAR, peer, 3, pc, MPI_STATUS_IGNORE);
                } else {
                    MPI_Recv(o->rbuf, n, MPI_CHAR, peer, 3, pc, MPI_STATUS_IGNORE);
                    MPI_Send(o->sbuf, n, MPI_CHAR, peer, 3, pc);
                }
                double t = MPI_Wtime() - t0;
                MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, pc);
                tp[reps] = t / 2;
            } while (keep_going(&spent, 2 * tp[reps], reps, o) && ++reps);
            int rp = reps + 1;
            spent = 0, reps = 0;
            do { /* exchange */
                MPI_Barrier(pc);
                double t0 = MPI_Wtime();
                MPI_Sendrecv(o->sbuf, n, MPI_CHAR, peer, 4, o->rbuf, n, MPI_CHAR, peer, 4, pc, MPI_STATUS_IGNORE);
                double t = MPI_Wtime() - t0;
                MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, pc);
                te[reps] = t;
            } while (keep_going(&spent, te[reps], reps, o) && ++reps);
            reps++;
            out->bytes[s] = o->sizes[s];
            out->t[s] = median(tp, rp);
            out->t2[s] = median(te, reps);
        }
        free(tp), free(te);
        out->f = fit_two(out->bytes, out->t, o->nsizes);
        out->f2 = fit_two(out->bytes, out->t2, o->nsizes);
        MPI_Comm_free(&pc);
    }
    sleeping_barrier(MPI_COMM_WORLD);
    MPI_Bcast(out, (int)sizeof *out, MPI_BYTE, a, MPI_COMM_WORLD);
}

/* gamma at `bytes` per vector on this rank: the median over >= 5 sums */
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

static void print_fit(const char *what, const fit *f, double big)
{
    printf("fit %s: alpha %.3g s  beta %.3g s/B (%.1f MB/s, %.2f Gbit/s)  rms rel. residual %.1f%% (all sizes), "
           "%.1f%% (sizes >= %.0f B)\n", what, f->alpha, f->beta, f->beta > 0 ? 1e-6 / f->beta : 0,
           f->beta > 0 ? 8e-9 / f->beta : 0, 100 * f->resid, 100 * f->resid_large, big);
    if (f->resid_large > 0.25)
        printf("warning: the %s fit misses the large sizes by %.0f%% RMS: a loaded machine (other jobs) or a link that "
               "is not alpha-beta shaped; rerun on a quiet machine, more --reps\n", what, 100 * f->resid_large);
}

static void print_pattern(const char *what, const series *s)
{
    printf("\n%s: median time of one round, every rank exchanging at once (slowest rank)\n", what);
    printf("%12s %12s %10s\n", "bytes", "time_s", "MB/s/flow");
    for (int i = 0; i < s->n; i++) printf("%12.0f %12.4g %10.1f\n", s->bytes[i], s->t[i], s->bytes[i] / s->t[i] / 1e6);
    print_fit(what, &s->f, s->bytes[s->n - 1] / 16);
}

static void print_pair(const char *what, const series *s)
{
    printf("\n%s (reference, the other ranks asleep): one-way time (ping-pong) and exchange (both MPI_Sendrecv)\n", what);
    printf("%12s %12s %10s %12s %10s\n", "bytes", "pingpong_s", "pp_MB/s", "exchange_s", "ex_MB/s");
    for (int i = 0; i < s->n; i++)
        printf("%12.0f %12.4g %10.1f %12.4g %10.1f\n", s->bytes[i], s->t[i], s->bytes[i] / s->t[i] / 1e6, s->t2[i],
               s->bytes[i] / s->t2[i] / 1e6);
    print_fit("pingpong", &s->f, s->bytes[s->n - 1] / 16);
    print_fit("exchange", &s->f2, s->bytes[s->n - 1] / 16);
}

static void write_fit(FILE *f, const char *key, const fit *x, int resid)
{
    fprintf(f, "alpha_%s=%.6g\nbeta_%s=%.6g\n", key, x->alpha, key, x->beta);
    if (resid) fprintf(f, "resid_%s=%.4g\nresid_%s_large=%.4g\n", key, x->resid, key, x->resid_large);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    const char *out = NULL;
    double max_bytes = 64.0 * 1048576, min_bytes = 8, budget = 1.0, gsmall = 32768, gbig = 32.0 * 1048576;
    double seg = 256.0 * 1024, factor = 2;
    int reps = 1000, pairs = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage();
            MPI_Finalize();
            return 0;
        }
        if (!strcmp(a, "--no-pairs")) {
            pairs = 0;
            continue;
        }
        if (i + 1 >= argc) fail("option needs a value:", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--max-bytes")) max_bytes = parse_bytes("--max-bytes: want a size such as 4M, got", v);
        else if (!strcmp(a, "--min-bytes")) min_bytes = parse_bytes("--min-bytes: want a size such as 8, got", v);
        else if (!strcmp(a, "--gamma-small")) gsmall = parse_bytes("--gamma-small: want a size such as 32K, got", v);
        else if (!strcmp(a, "--gamma-big")) gbig = parse_bytes("--gamma-big: want a size such as 32M, got", v);
        else if (!strcmp(a, "--seg-bytes")) seg = parse_bytes("--seg-bytes: want a size such as 256K, got", v);
        else if (!strcmp(a, "--factor")) {
            char *end;
            factor = strtod(v, &end);
            if (end == v || *end || !(factor >= 1.5 && factor <= 64)) fail("--factor: want a number from 1.5 to 64, got", v);
        } else if (!strcmp(a, "--budget")) {
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
    for (double m = min_bytes; m <= max_bytes && nsizes < MAXSIZES; m *= factor) sizes[nsizes++] = floor(m);

    /* nodes: the SHARED split; node index = rank among the node leaders (world rank order) */
    MPI_Comm node, leaders;
    int lr, ls, node_id = 0, nnodes = 1;
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
    /* world rank of (node k, local l), for the patterns' partners */
    int mine[2] = {node_id, lr}, *all = malloc(sizeof(int) * 2 * (size_t)g_size);
    int *where = malloc(sizeof(int) * (size_t)g_size);
    if (!all || !where) MPI_Abort(MPI_COMM_WORLD, 1);
    MPI_Allgather(mine, 2, MPI_INT, all, 2, MPI_INT, MPI_COMM_WORLD);
    int R = ls, even = 1;
    MPI_Allreduce(MPI_IN_PLACE, &R, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, &ls, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    even = ls == R && nnodes * R == g_size;
    for (int r = 0; r < g_size; r++) where[r] = -1;
    if (even)
        for (int r = 0; r < g_size; r++) where[all[2 * r] * R + all[2 * r + 1]] = r;
    int ia = -1, ib = -1, xa = -1, xb = -1;
    for (int r = 0; r < g_size; r++) {
        if (all[2 * r] == 0 && all[2 * r + 1] == 0) ia = xa = r;
        if (all[2 * r] == 0 && all[2 * r + 1] == 1) ib = r;
        if (all[2 * r] == 1 && all[2 * r + 1] == 0) xb = r;
    }
    free(all);
    size_t bufsz = (size_t)max_bytes;
    char *sbuf = malloc(bufsz), *rbuf = malloc(bufsz);
    if (!sbuf || !rbuf) {
        fprintf(stderr, "bench_alphabeta: rank %d: cannot allocate 2 x %zu bytes\n", g_rank, bufsz);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    memset(sbuf, 1, bufsz), memset(rbuf, 0, bufsz);
    opts o = {sizes, nsizes, reps, budget, sbuf, rbuf};

    int have_intra = even && R >= 2, have_inter = even && nnodes >= 2;
    if (0 == g_rank) {
        printf("bench_alphabeta: %d ranks on %d node(s) (MPI_COMM_TYPE_SHARED), %d..%d ranks per node\n", g_size, nnodes,
               ls, R);
        if (!even) printf("nodes of unequal size: only the flat ring pattern and the pairs are measured\n");
        if (!have_intra) printf("no node holds two ranks: no intra-node pattern\n");
        if (!have_inter) printf("one node: intra-node figures only\n");
        fflush(stdout);
    }
    series intra, inter, ring, pintra, pinter;
    if (have_intra) /* every node's ring step at once */
        measure_pattern(where[node_id * R + (lr + 1) % R], where[node_id * R + (lr + R - 1) % R], &o, &intra);
    if (have_inter) /* every column's ring step at once */
        measure_pattern(where[((node_id + 1) % nnodes) * R + lr], where[((node_id + nnodes - 1) % nnodes) * R + lr], &o,
                        &inter);
    /* the flat ring's step is the intra pattern on one node and the inter one with a rank per node */
    int have_ring = even ? nnodes >= 2 && R >= 2 : g_size >= 2;
    if (have_ring) measure_pattern((g_rank + 1) % g_size, (g_rank + g_size - 1) % g_size, &o, &ring);
    int have_pintra = pairs && ia >= 0 && ib >= 0, have_pinter = pairs && nnodes >= 2 && xa >= 0 && xb >= 0;
    if (have_pintra) measure_pair(ia, ib, &o, &pintra);
    if (have_pinter) measure_pair(xa, xb, &o, &pinter);
    free(sbuf), free(rbuf), free(where);

    /* gamma: every rank at once (the slowest one's), then rank 0 alone while the others sleep */
    MPI_Barrier(MPI_COMM_WORLD);
    double g2[2] = {gamma_of(gsmall, 2000), gamma_of(gbig, 50)};
    MPI_Allreduce(MPI_IN_PLACE, g2, 2, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    double gc1 = 0, gm1 = 0;
    if (0 == g_rank) gc1 = gamma_of(gsmall, 2000), gm1 = gamma_of(gbig, 50);
    sleeping_barrier(MPI_COMM_WORLD);

    int rc = 0;
    if (0 == g_rank) {
        if (have_intra) print_pattern("intra (each node's ring step, all nodes at once)", &intra);
        if (have_inter) print_pattern("inter (each column's ring step: R flows per NIC each way)", &inter);
        if (have_ring) print_pattern("ring (flat ring step over all ranks)", &ring);
        if (have_pintra) print_pair("intra-node pair", &pintra);
        if (have_pinter) print_pair("inter-node pair", &pinter);
        printf("\ngamma (float b[i] += a[i]), all %d ranks at once: %.3g s/B at %.0f B (%.2f GB/s), %.3g s/B at %.0f B "
               "(%.2f GB/s); rank 0 alone: %.3g, %.3g s/B\n", g_size, g2[0], gsmall, 1e-9 / g2[0], g2[1], gbig,
               1e-9 / g2[1], gc1, gm1);
        if (out) {
            FILE *f = fopen(out, "w");
            if (!f) {
                fprintf(stderr, "bench_alphabeta: %s: cannot write: %s\n", out, strerror(errno));
                rc = 1;
            } else {
                fprintf(f, "# bench_alphabeta: %d ranks, %d node(s) of %d; every rank exchanging at once "
                        "(the placement's oversubscription is in these figures)\n", g_size, nnodes, R);
                fprintf(f, "nodes=%d\nranks=%d\nranks_per_node=%d\nmax_bytes=%.0f\nreps=%d\n", nnodes, g_size, R,
                        max_bytes, reps);
                if (have_intra) write_fit(f, "intra", &intra.f, 1), fprintf(f, "intra_flows=%d\n", R);
                else fprintf(f, "# no node holds two ranks: no alpha_intra/beta_intra\n");
                if (have_inter) write_fit(f, "inter", &inter.f, 1), fprintf(f, "inter_flows=%d\n", R);
                else fprintf(f, "# one node: no alpha_inter/beta_inter\n");
                if (have_ring)
                    write_fit(f, "ring", &ring.f, 1), fprintf(f, "ring_nodes=%d\nring_rpn=%d\n", nnodes, R);
                fprintf(f, "# reference pairs, the other ranks asleep (not used by the model)\n");
                if (have_pintra) write_fit(f, "intra_pp", &pintra.f, 0), write_fit(f, "intra_pair", &pintra.f2, 0);
                if (have_pinter) write_fit(f, "inter_pp", &pinter.f, 0), write_fit(f, "inter_pair", &pinter.f2, 0);
                fprintf(f, "gamma_cache=%.6g\ngamma_cache_bytes=%.0f\ngamma_mem=%.6g\ngamma_mem_bytes=%.0f\n", g2[0],
                        gsmall, g2[1], gbig);
                fprintf(f, "gamma_cache_alone=%.6g\ngamma_mem_alone=%.6g\n", gc1, gm1);
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
