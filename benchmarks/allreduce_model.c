/* allreduce_model: alpha-beta-gamma costs of allreduce on N nodes x R ranks per node.
 *
 * Notation (Hockney's model as used by Thakur, Rabenseifner & Gropp, "Optimization of
 * collective communication operations in MPICH", IJHPCA 19(1), 2005, section 2):
 *   a message of m bytes on a link costs  alpha + m*beta;  reducing m bytes costs m*gamma.
 *   M = bytes allreduced, P = N*R ranks, two link classes: intra (shared memory, alpha_i,
 *   beta_i) and inter (the node's NIC, alpha_x, beta_x measured with ONE flow per direction).
 *   NIC sharing: when f flows of a node cross its NIC in one direction at the same time, each
 *   gets 1/f of it: beta_eff = f*beta_x. gamma(c) = gamma_cache if the reduced chunk c fits
 *   cache_bytes, else gamma_mem.
 *   seg: the ring's segment (dptrain's dp_ring_allreduce cuts each block into
 *   nseg(c) = ceil(c/seg) segments and pipelines them, DP_RING_SEGMENT_BYTES_DEFAULT =
 *   256 KiB): every segment is one message, so a block of c bytes costs nseg*alpha + c*beta.
 *   Pipelining hides latency between steps but not link occupancy; gamma is kept additive
 *   (an upper bound: the ring reduces segment k while k+1 is on the wire).
 *
 * Flat ring over P ranks (Thakur et al. 2005 sec. 4.4; bandwidth-optimal: Patarasuk & Yuan,
 * "Bandwidth optimal all-reduce algorithms for clusters of workstations", JPDC 69(2), 2009):
 *   2(P-1) steps, c = M/P per step, reduce-scatter steps also reduce c:
 *   T = 2(P-1) * max_hop[ nseg(c)*alpha_h + c*beta_h ] + (P-1)*c*gamma(min(c,seg))
 *   The ring moves in lock step, so each step costs its slowest hop. Hops: block placement
 *   (rank i on node i/R) has N of the P hops crossing nodes, one flow per NIC direction, and
 *   P-N inside nodes; cyclic placement (node i mod N) has all P hops crossing and R flows
 *   per NIC (beta_eff = R*beta_x). N = 1: all hops intra.
 *   With alpha = gamma = 0 and one link class: T = 2(P-1)/P * M * beta (Patarasuk & Yuan's
 *   lower bound for the bytes each rank must send).
 *
 * Hierarchical ring (as described for Horovod/NCCL; the three legs are a reduce-scatter,
 * an allreduce and an allgather, each costed as in Thakur et al.):
 *   intra reduce-scatter among R ranks:  (R-1)[nseg(M/R)alpha_i + (M/R)beta_i + (M/R)gamma]
 *   inter ring allreduce of each rank's slice m = M/R among the N ranks with its local rank;
 *   the R slices cross each NIC concurrently, so beta_eff = R*beta_x:
 *       2(N-1)[nseg(m/N)alpha_x + (m/N) R beta_x] + (N-1)(m/N)gamma
 *   intra allgather:  (R-1)[nseg(M/R)alpha_i + (M/R)beta_i]
 *   Each NIC carries 2(N-1)/N * M bytes each way, against the flat ring's 2(P-1)/P * M.
 *   N = 1: exactly the intra-node ring; R = 1: exactly the flat ring.
 *
 * Hierarchical with recursive halving/doubling inter leg: the inter allreduce of m by
 * Rabenseifner's algorithm (Thakur et al. 2005 sec. 4.4, Rabenseifner 2004), N' = 2^floor(log2 N):
 *   2 log2(N') alpha_x + 2 (N'-1)/N' m R beta_x + (N'-1)/N' m gamma
 *   and, when N is not a power of two, r = N - N' nodes first hand their whole slice to a
 *   partner and get the result back:  + 2(alpha_x + m R beta_x) + m gamma.
 *
 * Flat Rabenseifner over P ranks (reduce-scatter by recursive halving at distances 1, 2, 4,
 * ... with messages M/2, M/4, ..., then allgather by recursive doubling in reverse, the
 * order of Open MPI's ompi_coll_base_allreduce_intra_redscat_allgather and MPICH):
 *   sum over steps k = 1..log2 P' of 2(alpha_k + M/2^k beta_k) + M/2^k gamma,
 *   step k at distance d = 2^(k-1); with block placement it crosses nodes when d >= R
 *   (then all R ranks of a node cross: beta_k = R beta_x) or when R is not a multiple of
 *   2d (some ranks cross: approximated as min(R,d) flows); non-power-of-two P adds the
 *   pre/post steps above on the full M (distance 1).
 *   Closed form, one link class: 2 log2(P) alpha + 2(P-1)/P M beta + (P-1)/P M gamma.
 * Flat recursive doubling (Thakur et al. 2005 sec. 4.4, short messages): log2 P steps, each
 *   exchanging and reducing the whole M at distance 2^(k-1):  log2(P)(alpha + M beta + M gamma)
 *   (+ the non-power-of-two pre/post steps). M tiny: ~ log2(P) alpha.
 * Binomial tree reduce + broadcast (Thakur et al. 2005 sec. 4.1/4.4's reduce+bcast baseline):
 *   ceil(log2 P)(alpha + M beta + M gamma) + ceil(log2 P)(alpha + M beta); a step crosses
 *   nodes when its distance does, with one sender per node (no NIC sharing).
 *
 * Contention inside a node: beta_i is one pair's; when node_bw (bytes/s that all of a node's
 * ranks move at once, bench_alphabeta's concurrent pairs) is known, f concurrent intra-node
 * flows each get beta_eff = max(beta_i, f/node_bw) (f = R for the ring and the halving/
 * doubling steps, R-1 for a multi-node flat ring's intra hops, 1 for the tree).
 * What the model leaves out: the switch (full bisection assumed), TCP
 * slow start and incast, and stragglers. Cyclic placement is approximated for the
 * distance-based algorithms (a step crosses when d mod N != 0, with R flows). */
#include "allreduce_model.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const algo_names[AM_NALGO] = {"ring", "hier_ring", "hier_rhd",
                                                 "rabenseifner", "recdoubling", "tree"};

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
    p->cache_bytes = 1024.0 * 1024;
}

double am_gamma(const am_params *p, double chunk)
{
    return chunk <= p->cache_bytes ? p->gamma_cache : p->gamma_mem;
}

static double nseg(const am_params *p, double c)
{
    if (c <= 0) return 0;
    if (p->seg_bytes <= 0) return 1;
    double n = ceil(c / p->seg_bytes);
    return n < 1 ? 1 : n;
}

/* seconds per byte of one of `flows` concurrent flows: they split the NIC (inter), or the
 * node's shared-memory bandwidth when node_bw is known (intra) */
static double beta_eff(const am_params *p, int inter, double flows)
{
    if (inter) return flows * p->inter.beta;
    return p->node_bw > 0 ? fmax(p->intra.beta, flows / p->node_bw) : p->intra.beta;
}

/* one block of c bytes over a link class, as nseg messages */
static double block_cost(const am_params *p, int inter, double flows, double c)
{
    return nseg(p, c) * (inter ? p->inter.alpha : p->intra.alpha) + c * beta_eff(p, inter, flows);
}

/* one unsegmented message */
static double msg_cost(const am_params *p, int inter, double flows, double m)
{
    return (inter ? p->inter.alpha : p->intra.alpha) + m * beta_eff(p, inter, flows);
}

static double ring_time(const am_params *p, const am_topo *t, double M)
{
    long P = t->nodes * t->rpn;
    if (P <= 1) return 0;
    double c = M / (double)P, step;
    double R = (double)t->rpn;
    if (t->nodes == 1)
        step = block_cost(p, 0, R, c);
    else if (t->placement == AM_CYCLIC)
        step = block_cost(p, 1, R, c);
    else {
        step = block_cost(p, 1, 1, c);
        if (t->rpn > 1) step = fmax(step, block_cost(p, 0, R - 1, c));
    }
    double cg = fmin(c, p->seg_bytes > 0 ? p->seg_bytes : c);
    return 2.0 * (double)(P - 1) * step + (double)(P - 1) * c * am_gamma(p, cg);
}

/* ring allreduce of m bytes among n peers all on one link class, f flows per NIC */
static double ring_among(const am_params *p, long n, int inter, double f, double m)
{
    if (n <= 1) return 0;
    double c = m / (double)n;
    double cg = fmin(c, p->seg_bytes > 0 ? p->seg_bytes : c);
    return 2.0 * (double)(n - 1) * block_cost(p, inter, f, c) + (double)(n - 1) * c * am_gamma(p, cg);
}

static long pow2_floor(long n)
{
    long q = 1;
    while (q * 2 <= n) q *= 2;
    return q;
}

/* Rabenseifner allreduce of m bytes among n peers on one link class, f flows per NIC */
static double rhd_among(const am_params *p, long n, int inter, double f, double m)
{
    if (n <= 1) return 0;
    long q = pow2_floor(n);
    double T = 0;
    if (q != n) T += 2.0 * msg_cost(p, inter, f, m) + m * am_gamma(p, m);
    /* step k carries m/2^k, k = 1..log2 q */
    double b = m;
    for (long d = 1; d < q; d *= 2) {
        b /= 2;
        T += 2.0 * msg_cost(p, inter, f, b) + b * am_gamma(p, b);
    }
    return T;
}

/* Does an exchange at rank distance d (partner r^d) cross nodes, and with how many flows
 * per NIC? "all": every rank exchanges (halving/doubling); else one sender per pair of
 * subtrees (binomial tree: at most one per node when it crosses). */
static int crosses(const am_topo *t, long d, int all, double *flows)
{
    long N = t->nodes, R = t->rpn;
    *flows = all ? (double)R : 1; /* intra: every rank of the node at once, or one */
    if (N <= 1) return 0;
    if (t->placement == AM_CYCLIC) {
        if (d % N == 0) return 0;
        *flows = all ? (double)R : 1;
        return 1;
    }
    if (d >= R) {
        *flows = all ? (double)R : 1;
        return 1;
    }
    if (R % (2 * d) != 0) {
        *flows = all ? (double)(d < R ? d : R) : 1;
        return 1;
    }
    *flows = all ? (double)R : 1;
    return 0;
}

static double flat_rabenseifner(const am_params *p, const am_topo *t, double M, int whole)
{
    long P = t->nodes * t->rpn;
    if (P <= 1) return 0;
    long q = pow2_floor(P);
    double T = 0, f;
    if (q != P) {
        int x = crosses(t, 1, 1, &f);
        T += 2.0 * msg_cost(p, x, f, M) + M * am_gamma(p, M);
    }
    double b = M;
    for (long d = 1; d < q; d *= 2) {
        int x = crosses(t, d, 1, &f);
        if (whole) /* recursive doubling: the whole vector every step */
            T += msg_cost(p, x, f, M) + M * am_gamma(p, M);
        else {
            b /= 2;
            T += 2.0 * msg_cost(p, x, f, b) + b * am_gamma(p, b);
        }
    }
    return T;
}

static double tree_time(const am_params *p, const am_topo *t, double M)
{
    long P = t->nodes * t->rpn;
    double T = 0, f;
    for (long d = 1; d < P; d *= 2) {
        int x = crosses(t, d, 0, &f);
        T += 2.0 * msg_cost(p, x, f, M) + M * am_gamma(p, M);
    }
    return T;
}

static double hier_time(const am_params *p, const am_topo *t, double M, int rhd)
{
    long N = t->nodes, R = t->rpn;
    if (N * R <= 1) return 0;
    double T = 0, m = M / (double)R;
    if (R > 1) {
        double cg = fmin(m, p->seg_bytes > 0 ? p->seg_bytes : m);
        T += (double)(R - 1) * (2.0 * block_cost(p, 0, (double)R, m) + m * am_gamma(p, cg));
    }
    T += rhd ? rhd_among(p, N, 1, (double)R, m) : ring_among(p, N, 1, (double)R, m);
    return T;
}

double am_allreduce_time(const am_params *p, const am_topo *t, am_algo a, double bytes)
{
    if (t->nodes * t->rpn <= 1 || bytes <= 0) return 0;
    switch (a) {
    case AM_RING: return ring_time(p, t, bytes);
    case AM_HIER_RING: return hier_time(p, t, bytes, 0);
    case AM_HIER_RHD: return hier_time(p, t, bytes, 1);
    case AM_RABENSEIFNER: return flat_rabenseifner(p, t, bytes, 0);
    case AM_RECDOUBLING: return flat_rabenseifner(p, t, bytes, 1);
    case AM_TREE: return tree_time(p, t, bytes);
    default: return NAN;
    }
}

am_algo am_best(const am_params *p, const am_topo *t, double bytes, double *time_out)
{
    am_algo best = AM_RING;
    double bt = INFINITY;
    for (int a = 0; a < AM_NALGO; a++) {
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
    {"gamma_cache", OFF(gamma_cache), 0}, {"gamma_mem", OFF(gamma_mem), 0},
    {"cache_bytes", OFF(cache_bytes), 0}, {"seg_bytes", OFF(seg_bytes), 0},
    {"node_bw", OFF(node_bw), 0}, {"node_bw_pairs", (size_t)-1, 0}, {"node_bw_bytes", (size_t)-1, 0},
    /* informational keys bench_alphabeta writes */
    {"nodes", (size_t)-1, 0}, {"ranks", (size_t)-1, 0}, {"ranks_per_node", (size_t)-1, 0},
    {"resid_intra", (size_t)-1, 0}, {"resid_inter", (size_t)-1, 0},
    {"resid_intra_large", (size_t)-1, 0}, {"resid_inter_large", (size_t)-1, 0},
    {"alpha_intra_pp", (size_t)-1, 0}, {"beta_intra_pp", (size_t)-1, 0},
    {"alpha_inter_pp", (size_t)-1, 0}, {"beta_inter_pp", (size_t)-1, 0},
    {"resid_intra_pp", (size_t)-1, 0}, {"resid_inter_pp", (size_t)-1, 0},
    {"gamma_cache_bytes", (size_t)-1, 0}, {"gamma_mem_bytes", (size_t)-1, 0},
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
    if (0 == rc && p->seg_bytes < 4)
        snprintf(err, cap, "%s: field 'seg_bytes': %g is below one float", path, p->seg_bytes), rc = -1;
    return rc;
}
