/* allreduce_model: alpha-beta-gamma costs of allreduce on N nodes x R ranks per node, as
 * dptrain's implementations (src/comm/ring.c, hier.c, rd.c) run them.
 *
 * Notation (Hockney's model as used by Thakur, Rabenseifner & Gropp, "Optimization of
 * collective communication operations in MPICH", IJHPCA 19(1), 2005, section 2): a message
 * of m bytes costs alpha + m*beta; reducing m bytes costs m*gamma. M = bytes allreduced,
 * P = N*R ranks. Every parameter is measured the way the algorithms load the machine
 * (bench_alphabeta: every rank exchanging at once), not for one pair alone:
 *   intra (alpha_i, beta_i): one flow of a ring step inside a node, all nodes at once;
 *   inter (alpha_x, beta_x): one flow between nodes while inter_flows (= R) flows cross each
 *     NIC each way; f flows per NIC get beta_x * f / inter_flows each (the NIC is shared;
 *     from a link rate G: beta_x = 8/G with inter_flows = 1);
 *   ring (alpha_r, beta_r), optional: one step of the flat ring over the whole job, valid for
 *     the N x R it was measured on; elsewhere the flat ring's step is its slowest hop: block
 *     placement has N hops crossing nodes (one flow per NIC each way) and P - N inside
 *     (R - 1 flows per node), cyclic placement all P crossing (R flows per NIC);
 *   gamma(M) = gamma_cache if M <= cache_bytes, else gamma_mem (all ranks reducing at once).
 *   node_bw (optional): f intra flows get max(beta_i, f/node_bw) each.
 * Ranks sharing cores (4 ranks on a 2-core machine) are not a term here: their cost is in
 * the measured alpha and beta of that placement (bench_alphabeta's header).
 *
 * Our ring (ring.c) over n ranks, block c = M/n cut into k = ceil(c/seg) segments of
 * s = c/k, S steps of which the first S_rs reduce: each rank streams its own block's k
 * segments, then forwards every received segment as soon as it is reduced (depth 2), one
 * message per segment. Segment j of step t leaves a rank after segment j of step t-1 has
 * come from the left (alpha + s beta, plus s gamma if reduced) and after segment j-1 of
 * step t has left (s beta on the link). The last arrival is the longer of the two paths:
 *   T_stream = max( S alpha + (S + k - 1) s beta + S_rs s gamma,     latency-bound
 *                   S c beta + S_rs c gamma )                          link-bound
 * plus one alpha for the count exchange before any payload (check_peer):
 *   ring:            S = 2(n-1), S_rs = n-1        T = alpha + T_stream
 *   reduce-scatter:  S = S_rs = n-1 (hier's first leg, dp_ring_run_rs)
 *   allgather:       S = n-1, S_rs = 0 (hier's last leg, dp_ring_run_ag)
 * k = 1 gives the textbook 2(n-1)(alpha + c beta) + (n-1) c gamma (Thakur et al. 4.4); with
 * alpha = gamma = 0 both give 2(n-1)/n M beta (Patarasuk & Yuan, JPDC 69(2), 2009).
 *
 * Hierarchical (hier.c): reduce-scatter among the node's R ranks (intra, R flows), then each
 * rank's slice m = M/R allreduced among the N ranks with its local rank (all R columns at
 * once: R flows per NIC, the inter link as measured), by our ring (hier) or our rd
 * (hier-rd), then the node's allgather. Each NIC carries 2(N-1)/N M each way, against the
 * flat ring's 2(P-1)/P M. R = 1: the column alone (= the flat ring); N = 1: the two intra legs.
 *
 * Our rd (rd.c) over n ranks, q = 2^floor(log2 n): reduce-scatter by halving at distance
 * q/2, q/4, .. 1 (largest first), exchanging b = M/2, M/4, .. M/q; allgather by doubling at
 * distance 1, 2, .. q/2 with b = M/q .. M/2. Every exchange is cut into chunks of chunk_bytes,
 * each one blocking MPI_Sendrecv: a step costs ceil(b/chunk) alpha + b beta (+ b gamma when
 * reducing). n not a power of two: n - q ranks first send their whole vector to a partner
 * (ceil(M/chunk) alpha + M beta + M gamma) and get the result back at the end (same, no gamma).
 * A step crosses nodes (block placement) when its distance is >= R: then every rank crosses
 * (R flows per NIC); otherwise it stays inside (R flows per node). (Open MPI's Rabenseifner
 * runs the same steps in the other order, distance 1 first: with block placement it sends
 * M/4 + M/4 across nodes per rank on 2 x 2 where ours sends M/2 + M/2.)
 *
 * Open MPI 4.1's coll/tuned algorithms, for bench_allreduce's MPI_Allreduce rows: the ring
 * unsegmented (k = 1, no count exchange); Rabenseifner (distance 1 first, one message per
 * step); recursive doubling log2(q) (alpha + M beta + M gamma) (+ the fold); binomial reduce +
 * broadcast ceil(log2 P)(2 alpha + 2 M beta + M gamma), one flow per NIC.
 * What the model leaves out: the switch (full bisection assumed), TCP slow start and incast,
 * stragglers, and a link's protocol switches (eager/rendezvous, a tbf's burst) beyond what
 * one alpha-beta line fits. */
#include "allreduce_model.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const algo_names[AM_NALGO] = {"ring", "rd", "hier", "hier-rd",
                                                 "mpi-ring", "rabenseifner", "recdoubling", "tree"};

const char *am_algo_name(am_algo a) { return a >= 0 && a < AM_NALGO ? algo_names[a] : "?"; }

int am_algo_parse(const char *name)
{
    for (int a = 0; a < AM_NALGO; a++)
        if (0 == strcmp(name, algo_names[a])) return a;
    return -1;
}

void am_params_init(am_params *p)
{
    memset(p, 0, sizeof *p);
    p->seg_bytes = 256.0 * 1024;
    p->chunk_bytes = 256.0 * 1024;
    p->cache_bytes = 1024.0 * 1024;
    p->inter_flows = 1;
}

double am_gamma(const am_params *p, double bytes)
{
    return bytes <= p->cache_bytes ? p->gamma_cache : p->gamma_mem;
}

/* pieces of `unit` bytes in b bytes (at least 1; unit <= 0: one piece) */
static double pieces(double b, double unit)
{
    if (b <= 0) return 0;
    if (unit <= 0) return 1;
    double n = ceil(b / unit);
    return n < 1 ? 1 : n;
}

/* a link for `flows` concurrent flows of one class */
static am_link link_for(const am_params *p, int inter, double flows)
{
    if (inter) {
        double f = p->inter_flows > 0 ? p->inter_flows : 1;
        return (am_link){p->inter.alpha, p->inter.beta * flows / f};
    }
    double b = p->node_bw > 0 ? fmax(p->intra.beta, flows / p->node_bw) : p->intra.beta;
    return (am_link){p->intra.alpha, b};
}

/* The streamed ring over n ranks (header): S steps, the first s_rs reducing, block c, segment
 * seg (<= 0: unsegmented), g = gamma per byte; check: 1 adds the count exchange's alpha. */
static double stream(am_link l, long n, double c, double seg, int s_rs_all, int ag, double g, int check)
{
    if (n <= 1 || c <= 0) return 0;
    double rs = s_rs_all ? (double)(n - 1) : 0, S = rs + (ag ? (double)(n - 1) : 0);
    double k = pieces(c, seg), s = c / k;
    double lat = S * l.alpha + (S + k - 1) * s * l.beta + rs * s * g;
    double bw = S * c * l.beta + rs * c * g;
    return (check ? l.alpha : 0) + fmax(lat, bw);
}

/* the flat ring's hop: measured for this shape, or the slowest hop by placement */
static am_link ring_hop(const am_params *p, const am_topo *t)
{
    if (p->have_ring && p->ring_nodes == (double)t->nodes && p->ring_rpn == (double)t->rpn) return p->ring;
    if (t->nodes == 1) return link_for(p, 0, (double)t->rpn);
    if (t->placement == AM_CYCLIC) return link_for(p, 1, (double)t->rpn);
    am_link x = link_for(p, 1, 1);
    if (t->rpn > 1) {
        am_link i = link_for(p, 0, (double)(t->rpn - 1));
        x.alpha = fmax(x.alpha, i.alpha), x.beta = fmax(x.beta, i.beta);
    }
    return x;
}

static double ring_time(const am_params *p, const am_topo *t, double M, int mpi)
{
    long P = t->nodes * t->rpn;
    return stream(ring_hop(p, t), P, M / (double)P, mpi ? 0 : p->seg_bytes, 1, 1, am_gamma(p, M), !mpi);
}

/* Does an exchange at rank distance d (partner r^d) cross nodes, and with how many flows
 * per NIC (or per node, inside)? all: every rank exchanges (halving/doubling); else one
 * sender per pair of subtrees (binomial tree). */
static int crosses(const am_topo *t, long d, int all, double *flows)
{
    long N = t->nodes, R = t->rpn;
    *flows = all ? (double)R : 1;
    if (N <= 1) return 0;
    if (t->placement == AM_CYCLIC) return d % N != 0;
    if (d >= R) return 1;
    if (R % (2 * d) != 0) { /* R not a power of two: some pairs straddle a node boundary */
        *flows = all ? (double)d : 1;
        return 1;
    }
    return 0;
}

static long pow2_floor(long n)
{
    long q = 1;
    while (q * 2 <= n) q *= 2;
    return q;
}

/* one exchange of b bytes at distance d: chunked (ours) or one message (Open MPI's) */
static double xchg(const am_params *p, const am_topo *t, int column, long d, double b, int reduce, double g,
                   double chunk)
{
    double f;
    int x = column ? 1 : crosses(t, d, 1, &f);
    am_link l = link_for(p, x, column ? (double)t->rpn : f);
    return pieces(b, chunk) * l.alpha + b * l.beta + (reduce ? b * g : 0);
}

/* Halving/doubling among n ranks on M bytes. column: the ranks are hier's column (every
 * step crosses nodes with R flows per NIC); else the flat world on t. largest_first: ours
 * (rd.c); else Open MPI's order. whole: recursive doubling (M every step, no halving). */
static double halving_doubling(const am_params *p, const am_topo *t, long n, double M, int column,
                               int largest_first, int whole, double chunk)
{
    if (n <= 1 || M <= 0) return 0;
    long q = pow2_floor(n);
    double g = am_gamma(p, M), T = 0;
    if (q != n) T += xchg(p, t, column, 1, M, 1, g, chunk) + xchg(p, t, column, 1, M, 0, g, chunk);
    int steps = 0;
    for (long d = 1; d < q; d *= 2) steps++;
    for (int i = 1; i <= steps; i++) {
        long d = largest_first ? q >> i : 1L << (i - 1); /* reduce-scatter step i */
        double b = whole ? M : M / ldexp(1.0, i);
        T += xchg(p, t, column, d, b, 1, g, chunk);
        if (!whole) T += xchg(p, t, column, d, b, 0, g, chunk); /* its allgather mirror */
    }
    return T;
}

static double tree_time(const am_params *p, const am_topo *t, double M)
{
    long P = t->nodes * t->rpn;
    double T = 0, f, g = am_gamma(p, M);
    for (long d = 1; d < P; d *= 2) {
        int x = crosses(t, d, 0, &f); /* sets f: C leaves the order of a call's arguments open */
        am_link l = link_for(p, x, f);
        T += 2 * (l.alpha + M * l.beta) + M * g;
    }
    return T;
}

static double hier_time(const am_params *p, const am_topo *t, double M, int rd)
{
    long N = t->nodes, R = t->rpn;
    double T = 0, m = M / (double)R, g = am_gamma(p, M);
    if (R > 1) {
        am_link l = link_for(p, 0, (double)R);
        T += stream(l, R, m, p->seg_bytes, 1, 0, g, 1) + stream(l, R, m, p->seg_bytes, 0, 1, g, 1);
    }
    if (N > 1) {
        if (rd) T += halving_doubling(p, t, N, m, 1, 1, 0, p->chunk_bytes);
        else T += stream(link_for(p, 1, (double)R), N, m / (double)N, p->seg_bytes, 1, 1, g, 1);
    }
    return T;
}

double am_allreduce_time(const am_params *p, const am_topo *t, am_algo a, double bytes)
{
    long P = t->nodes * t->rpn;
    if (P <= 1 || bytes <= 0) return 0;
    switch (a) {
    case AM_RING: return ring_time(p, t, bytes, 0);
    case AM_HIER: return hier_time(p, t, bytes, 0);
    case AM_HIER_RD: return hier_time(p, t, bytes, 1);
    case AM_RD: return halving_doubling(p, t, P, bytes, 0, 1, 0, p->chunk_bytes);
    case AM_MPI_RING: return ring_time(p, t, bytes, 1);
    case AM_RABENSEIFNER: return halving_doubling(p, t, P, bytes, 0, 0, 0, 0);
    case AM_RECDOUBLING: return halving_doubling(p, t, P, bytes, 0, 0, 1, 0);
    case AM_TREE: return tree_time(p, t, bytes);
    default: return NAN;
    }
}

am_algo am_best(const am_params *p, const am_topo *t, double bytes, double *time_out)
{
    am_algo best = AM_RING;
    double bt = INFINITY;
    for (int a = 0; a < AM_NOURS; a++) {
        double x = am_allreduce_time(p, t, (am_algo)a, bytes);
        if (x < bt * (1 - 1e-9)) bt = x, best = (am_algo)a; /* a tie keeps the earlier (simpler) one */
    }
    if (time_out) *time_out = bt;
    return best;
}

double am_step_time(const am_params *p, const am_topo *t, int algo, const am_step *s, double *comm_exposed)
{
    double tf = s->t_compute * (1.0 - s->bwd_frac), tb = s->t_compute * s->bwd_frac;
    double G = s->grad_bytes, B = s->bucket_bytes > 0 ? s->bucket_bytes : G;
    double end = 0, done = 0;
    while (done < G) {
        double b = fmin(B, G - done);
        done += b;
        double ready = tf + tb * (done / G);
        double c = algo >= 0 ? am_allreduce_time(p, t, (am_algo)algo, b) : 0;
        if (algo < 0) am_best(p, t, b, &c);
        end = fmax(ready, end) + c;
    }
    double step = fmax(s->t_compute, end);
    if (s->tail_bytes > 0) {
        double c = 0;
        if (algo >= 0) c = am_allreduce_time(p, t, (am_algo)algo, s->tail_bytes);
        else am_best(p, t, s->tail_bytes, &c);
        step += c;
    }
    step += s->t_update;
    if (comm_exposed) *comm_exposed = step - s->t_compute - s->t_update;
    return step;
}

/* ------------------------------------------------------------------------- */
/* Parameter file: key=value lines, '#' comments (bench_alphabeta --out)     */
/* ------------------------------------------------------------------------- */

typedef struct field {
    const char *key;
    size_t off; /* offsetof into am_params, or (size_t)-1: read and checked, not used */
    int sets;   /* 1: have_intra, 2: have_inter */
} field;

#define OFF(m) offsetof(am_params, m)
static const field fields[] = {
    {"alpha_intra", OFF(intra.alpha), 1}, {"beta_intra", OFF(intra.beta), 1},
    {"alpha_inter", OFF(inter.alpha), 2}, {"beta_inter", OFF(inter.beta), 2},
    {"inter_flows", OFF(inter_flows), 0},
    {"alpha_ring", OFF(ring.alpha), 3}, {"beta_ring", OFF(ring.beta), 3},
    {"ring_nodes", OFF(ring_nodes), 0}, {"ring_rpn", OFF(ring_rpn), 0},
    {"gamma_cache", OFF(gamma_cache), 0}, {"gamma_mem", OFF(gamma_mem), 0},
    {"cache_bytes", OFF(cache_bytes), 0}, {"seg_bytes", OFF(seg_bytes), 0}, {"chunk_bytes", OFF(chunk_bytes), 0},
    {"node_bw", OFF(node_bw), 0},
    /* informational keys bench_alphabeta writes (old versions' too) */
    {"node_bw_pairs", (size_t)-1, 0}, {"node_bw_bytes", (size_t)-1, 0}, {"intra_flows", (size_t)-1, 0},
    {"nodes", (size_t)-1, 0}, {"ranks", (size_t)-1, 0}, {"ranks_per_node", (size_t)-1, 0},
    {"resid_intra", (size_t)-1, 0}, {"resid_inter", (size_t)-1, 0}, {"resid_ring", (size_t)-1, 0},
    {"resid_intra_large", (size_t)-1, 0}, {"resid_inter_large", (size_t)-1, 0}, {"resid_ring_large", (size_t)-1, 0},
    {"alpha_intra_pp", (size_t)-1, 0}, {"beta_intra_pp", (size_t)-1, 0},
    {"alpha_inter_pp", (size_t)-1, 0}, {"beta_inter_pp", (size_t)-1, 0},
    {"alpha_intra_pair", (size_t)-1, 0}, {"beta_intra_pair", (size_t)-1, 0},
    {"alpha_inter_pair", (size_t)-1, 0}, {"beta_inter_pair", (size_t)-1, 0},
    {"resid_intra_pp", (size_t)-1, 0}, {"resid_inter_pp", (size_t)-1, 0},
    {"gamma_cache_bytes", (size_t)-1, 0}, {"gamma_mem_bytes", (size_t)-1, 0},
    {"gamma_cache_alone", (size_t)-1, 0}, {"gamma_mem_alone", (size_t)-1, 0},
    {"max_bytes", (size_t)-1, 0}, {"reps", (size_t)-1, 0},
};

static char *trim(char *s)
{
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = '\0';
    return s;
}

int am_params_read(const char *path, am_params *p, char *err, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, cap, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    char line[512];
    int ln = 0, rc = 0, any = 0;
    while (0 == rc && fgets(line, sizeof line, f)) {
        ln++;
        if (!strchr(line, '\n') && !feof(f)) {
            snprintf(err, cap, "%s:%d: line longer than %zu characters", path, ln, sizeof line - 2);
            rc = -1;
            break;
        }
        char *s = trim(line);
        if (*s == '\0' || *s == '#') continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(err, cap, "%s:%d: '%s' is not key=value", path, ln, s);
            rc = -1;
            break;
        }
        *eq = '\0';
        char *key = trim(s), *val = trim(eq + 1);
        const field *fd = NULL;
        for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
            if (0 == strcmp(key, fields[i].key)) fd = &fields[i];
        if (!fd) {
            snprintf(err, cap, "%s:%d: unknown field '%s'", path, ln, key);
            rc = -1;
            break;
        }
        char *end;
        errno = 0;
        double v = strtod(val, &end);
        if (end == val || *end != '\0' || errno == ERANGE || !isfinite(v) || v < 0) {
            snprintf(err, cap, "%s:%d: field '%s': '%s' is not a finite number >= 0", path, ln, key, val);
            rc = -1;
            break;
        }
        if (fd->off != (size_t)-1) *(double *)((char *)p + fd->off) = v;
        if (fd->sets == 1) p->have_intra = 1;
        if (fd->sets == 2) p->have_inter = 1;
        if (fd->sets == 3) p->have_ring = 1;
        any = 1;
    }
    if (0 == rc && ferror(f)) snprintf(err, cap, "%s: read error", path), rc = -1;
    fclose(f);
    if (0 == rc && !any) snprintf(err, cap, "%s: no key=value fields", path), rc = -1;
    /* a link is one alpha AND one beta: a file with half of a pair is refused */
    if (0 == rc && p->have_intra && (p->intra.beta <= 0))
        snprintf(err, cap, "%s: field 'beta_intra' missing or zero (alpha_intra without it)", path), rc = -1;
    if (0 == rc && p->have_inter && (p->inter.beta <= 0))
        snprintf(err, cap, "%s: field 'beta_inter' missing or zero (alpha_inter without it)", path), rc = -1;
    if (0 == rc && p->have_ring && (p->ring.beta <= 0 || p->ring_nodes < 1 || p->ring_rpn < 1))
        snprintf(err, cap, "%s: field 'beta_ring' missing or zero, or 'ring_nodes'/'ring_rpn' missing (the ring "
                 "step holds for the shape it was measured on)", path), rc = -1;
    if (0 == rc && p->inter_flows < 1)
        snprintf(err, cap, "%s: field 'inter_flows': %g is below one flow", path, p->inter_flows), rc = -1;
    if (0 == rc && p->chunk_bytes < 4)
        snprintf(err, cap, "%s: field 'chunk_bytes': %g is below one float", path, p->chunk_bytes), rc = -1;
    if (0 == rc && p->seg_bytes < 4)
        snprintf(err, cap, "%s: field 'seg_bytes': %g is below one float", path, p->seg_bytes), rc = -1;
    return rc;
}
