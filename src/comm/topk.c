/* Top-k sparsified allreduce with error feedback (and DGC momentum correction).
 *
 * Where this sits: a codec for a gradient range (a bucket of the flat gradient
 * buffer). Each rank sends only its k largest-magnitude entries; what it did not
 * send stays in its residual and is added to the next call's input (error
 * feedback: Seide et al. 2014, Stich et al. 2018; Lin et al. 2018, "Deep Gradient
 * Compression", for the momentum correction and factor masking).
 *
 * Per call, on every rank r:
 *   x = buf + residual                     (DGC: u = m u + buf; x = residual += u)
 *   t = k-th largest |x|                   quickselect on a copy of |x|, O(n)
 *   S_r = first k indices (ascending) with |x| > t, then |x| == t
 *   residual = x, zeroed on S_r            (DGC: u zeroed on S_r too)
 *   exchange (i, x_i) for i in S_r; buf = sum over ranks, rank order
 *
 * Exchange: which we built and why.
 * Indices differ per rank, so a sum of sparse vectors either (a) merges along a
 * sparse ring (a reduce-scatter whose blocks fill in at every hop: after s hops a
 * block holds the union of s+1 ranks' indices, so message sizes are data-dependent,
 * each hop is a merge of sorted lists, and the byte saving shrinks as P grows), or
 * (b) allgathers every rank's pairs and lets each rank add them all (the "sparse
 * allgather" of DGC and of Horovod/ PyTorch's sparse path). We built (b), as a ring
 * allgather over MPI_Sendrecv:
 *
 *   rank r holds its k pairs in slot r of a P x k table
 *   step s = 0..P-2: send slot (r - s) mod P to r+1, receive slot (r - s - 1) mod P
 *                    from r-1            (every slot is k pairs: k is the same
 *                                         on every rank, so no counts exchange)
 *   then every rank: buf = 0; for q = 0..P-1: buf[i] += v for (i, v) in slot q
 *
 * because: its cost is fixed and known on every rank before any message (each
 * rank sends and receives (P-1) k pairs of 8 bytes, overlapping indices or not),
 * so the dense/sparse switch below is a local decision that every rank takes
 * identically with no extra round; adding the slots in rank order on every rank
 * gives bit-identical sums without a broadcast; and at the fractions used for
 * training (0.001..0.01) and P <= 16, P k << n, where (a)'s merging would save
 * little. Its weakness is that bytes grow with P k, not with the union of
 * indices: (a) or a hierarchical scheme would win at large P.
 *
 * Switch to dense: a float32 ring allreduce sends 2 (P-1)/P * 4n bytes per rank;
 * the allgather sends 8 k (P-1). Sparse is cheaper iff P k < n, i.e. while the
 * merged density bound P k / n is below 1; otherwise (DP_TOPK_AUTO) the rank
 * sends its top-k-masked dense vector through dp_ring_allreduce (same selection,
 * same residual; only the order of the additions differs). P = 1 sends nothing.
 *
 * Non-finite input: a rank that meets NaN/Inf in x does not select; its slot
 * carries a sentinel pair (index UINT32_MAX) so every rank sees it after the
 * allgather and all return DP_ERR_NONFINITE; on the dense path one MPI_Allreduce
 * of a flag does the same (4 bytes next to 8n).
 *
 * A pair travels as one uint64 (index in the low half, the float's bits in the
 * high half), packed with memcpy, so MPI_UINT64_T carries it on any byte order. */
#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm/comm_internal.h"

struct dp_topk_ws {
    size_t mag_cap;       /* bytes of mag */
    size_t pairs_cap;     /* bytes of pairs */
    float *mag;           /* |x|, permuted by the selection */
    uint64_t *pairs;      /* P x k table of the allgather */
    dp_ring_ws *ring;     /* dense fallback */
};

dp_status dp_topk_ws_create(dp_topk_ws **out)
{
    if (NULL == out)
        return dp_errorf(DP_ERR_ARG, "dp_topk_ws_create: out is NULL");
    *out = NULL;
    dp_topk_ws *ws = calloc(1, sizeof *ws);
    if (NULL == ws)
        return dp_errorf(DP_ERR_NOMEM, "dp_topk_ws_create: out of memory");
    dp_status rc = dp_ring_ws_create(0, &ws->ring);
    if (DP_OK != rc) {
        free(ws);
        return rc;
    }
    *out = ws;
    return DP_OK;
}

void dp_topk_ws_free(dp_topk_ws *ws)
{
    if (NULL == ws)
        return;
    dp_ring_ws_free(ws->ring);
    free(ws->mag);
    free(ws->pairs);
    free(ws);
}

static dp_status ws_reserve(dp_topk_ws *ws, size_t n, size_t npairs)
{
    if (!dp_comm_grow((unsigned char **)&ws->mag, &ws->mag_cap, n * sizeof *ws->mag) ||
        !dp_comm_grow((unsigned char **)&ws->pairs, &ws->pairs_cap, npairs * sizeof *ws->pairs))
        return dp_errorf(DP_ERR_NOMEM, "dp_topk_allreduce: cannot allocate %zu floats and %zu pairs", n,
                         npairs);
    return DP_OK;
}

static inline uint64_t pair_pack(uint32_t i, float v)
{
    uint32_t b;
    memcpy(&b, &v, sizeof b);
    return (uint64_t)i | ((uint64_t)b << 32);
}

static inline float pair_value(uint64_t p)
{
    uint32_t b = (uint32_t)(p >> 32);
    float v;
    memcpy(&v, &b, sizeof v);
    return v;
}

#define TOPK_SENTINEL UINT32_MAX

/* The j-th largest of a[0..n) (j 0-based, j < n), reordering a: Hoare's FIND in
 * Wirth's formulation, descending, with the median of three pseudo-random
 * positions as pivot (expected O(n); equal keys stop both scans, so constant runs
 * split evenly). a must hold no NaN. */
static float select_desc(float *a, size_t n, size_t j)
{
    int64_t lo = 0, hi = (int64_t)n - 1;
    const int64_t target = (int64_t)j;
    uint64_t s = 0x9e3779b97f4a7c15ull ^ n;
    while (lo < hi) {
        uint64_t len = (uint64_t)(hi - lo + 1);
        float v[3];
        for (int t = 0; t < 3; t++) {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            v[t] = a[lo + (int64_t)(s % len)];
        }
        float x = v[0], y = v[1], z = v[2];
        float pivot = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
        int64_t i = lo, k = hi;
        do {
            while (a[i] > pivot)
                i++;
            while (pivot > a[k])
                k--;
            if (i <= k) {
                const float t = a[i];
                a[i] = a[k];
                a[k] = t;
                i++;
                k--;
            }
        } while (i <= k);
        /* a[lo..k] >= pivot, a[i..hi] <= pivot, a[k+1..i-1] == pivot. */
        if (k < target)
            lo = i;
        if (target < i)
            hi = k;
    }
    return a[target];
}

/* Whether x_i = residual[i] is sent: |x_i| above t, or at t while ties are
 * left. A sent entry leaves the residual (and DGC's velocity). */
static int take(float *residual, float *velocity, float m, size_t i, float t, size_t *ties)
{
    const float a = fabsf(residual[i]);
    if (!(a > t || (a == t && *ties > 0 && (*ties)--)))
        return 0;
    residual[i] = 0.0f;
    if (m > 0.0f)
        velocity[i] = 0.0f;
    return 1;
}

static dp_status topk_run(float *buf, size_t n, const dp_topk_config *cfg, float *residual,
                          float *velocity, MPI_Comm comm, dp_topk_ws *ws, dp_topk_stats *st)
{
    int rank = 0, size = 1;
    if (MPI_SUCCESS != MPI_Comm_rank(comm, &rank) || MPI_SUCCESS != MPI_Comm_size(comm, &size))
        return dp_errorf(DP_ERR_MPI, "dp_topk_allreduce: MPI_Comm_rank/size failed");

    size_t k = (size_t)ceil(cfg->fraction * (double)n);
    if (k < 1)
        k = 1;
    if (k > n)
        k = n;
    const uint64_t P = (uint64_t)size;
    int dense = DP_TOPK_DENSE == cfg->path ||
                (DP_TOPK_AUTO == cfg->path && P * (uint64_t)k >= (uint64_t)n && size > 1);
    if (!dense && size > 1 && k > (size_t)INT_MAX)
        return dp_errorf(DP_ERR_ARG, "dp_topk_allreduce: %zu pairs per rank exceed one "
                         "message (INT_MAX); use a smaller fraction or the dense path", k);

    dp_status rc = ws_reserve(ws, n, dense ? 0 : (size_t)size * k);
    if (DP_OK != rc)
        return rc;

    /* x = buf + residual (DGC: u = m u + buf, x = residual + u), and |x|. */
    const float m = cfg->momentum;
    int bad = 0;
    size_t bad_at = 0;
    for (size_t i = 0; i < n; i++) {
        float g = buf[i];
        if (m > 0.0f) {
            velocity[i] = m * velocity[i] + g;
            g = velocity[i];
        }
        float x = residual[i] + g;
        residual[i] = x;
        ws->mag[i] = fabsf(x);
        if (!isfinite(x) && !bad) {
            bad = 1;
            bad_at = i;
        }
    }

    /* Threshold: the k-th largest magnitude; then exactly k entries, the ties at
     * the threshold taken in ascending index order. */
    float t = 0.0f;
    size_t above = 0;
    if (!bad && n > 0) {
        t = select_desc(ws->mag, n, k - 1);
        for (size_t i = 0; i < n; i++)
            above += fabsf(residual[i]) > t;
    }
    size_t ties = k - above;

    uint64_t before_sent = 0, before_recv = 0;
    if (dense) {
        /* buf = masked x; residual = x elsewhere. */
        for (size_t i = 0; i < n; i++) {
            const float x = residual[i];
            buf[i] = !bad && take(residual, velocity, m, i, t, &ties) ? x : 0.0f;
        }
        if (size > 1) {
            int any = 0;
            int mrc = MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_MAX, comm);
            if (MPI_SUCCESS != mrc)
                return dp_mpi_errorf(mrc, "dp_topk_allreduce: rank %d: flag allreduce failed", rank);
            if (any)
                goto nonfinite;
            rc = dp_allreduce_counted(buf, n, DP_REDUCE_SUM, DP_ALLREDUCE_RING, comm, ws->ring, &before_sent,
                                      &before_recv);
            if (DP_OK != rc)
                return rc;
        } else if (bad) {
            goto nonfinite;
        }
    } else {
        uint64_t *mine = ws->pairs + (size_t)rank * k;
        if (bad) {
            for (size_t j = 0; j < k; j++)
                mine[j] = pair_pack(TOPK_SENTINEL, 0.0f);
        } else {
            size_t j = 0;
            for (size_t i = 0; i < n && j < k; i++) {
                const float x = residual[i];
                if (take(residual, velocity, m, i, t, &ties))
                    mine[j++] = pair_pack((uint32_t)i, x);
            }
        }
        if (size > 1) {
            rc = dp_ring_allgather(ws->pairs, NULL, k, MPI_UINT64_T, rank, size, DP_COMM_TOPK_TAG, comm,
                                   "dp_topk_allreduce: allgather of (index, value) pairs", NULL);
            if (DP_OK != rc)
                return rc;
            before_sent = before_recv = (uint64_t)(size - 1) * k * sizeof(uint64_t);
        }
        /* Every slot's first pair tells whether that rank met a non-finite value. */
        for (int q = 0; q < size; q++)
            if (TOPK_SENTINEL == (uint32_t)ws->pairs[(size_t)q * k])
                goto nonfinite;
        memset(buf, 0, n * sizeof *buf);
        for (int q = 0; q < size; q++) {
            const uint64_t *slot = ws->pairs + (size_t)q * k;
            for (size_t j = 0; j < k; j++) {
                uint32_t i = (uint32_t)slot[j];
                if (i >= n)
                    return dp_errorf(DP_ERR_MPI, "dp_topk_allreduce: rank %d: rank %d sent "
                                     "index %u beyond n = %zu (do the ranks pass the same "
                                     "n and fraction?)", rank, q, (unsigned)i, n);
                buf[i] += pair_value(slot[j]);
            }
        }
    }

    uint64_t dense_bytes = size > 1 ? (uint64_t)(2.0 * 4.0 * (double)n * (double)(size - 1) /
                                                 (double)size)
                                    : 0;
    if (NULL != st)
        *st = (dp_topk_stats){.n = n, .k = k, .dense = dense, .bytes_sent = before_sent,
                              .bytes_recv = before_recv, .bytes_dense = dense_bytes};
    return DP_OK;

nonfinite:
    if (bad)
        return dp_errorf(DP_ERR_NONFINITE, "dp_topk_allreduce: rank %d: non-finite value "
                         "at index %zu of %zu (buf + residual)", rank, bad_at, n);
    return dp_errorf(DP_ERR_NONFINITE, "dp_topk_allreduce: rank %d: another rank met a "
                     "non-finite value", rank);
}

dp_status dp_topk_allreduce(float *buf, size_t n, const dp_topk_config *cfg,
                            float *residual, float *velocity, MPI_Comm comm,
                            dp_topk_ws *ws, dp_topk_stats *st)
{
    if (NULL == cfg)
        return dp_errorf(DP_ERR_ARG, "dp_topk_allreduce: cfg is NULL");
    dp_status rc = dp_comm_check_args("dp_topk_allreduce", buf, n, DP_REDUCE_SUM, comm);
    if (DP_OK != rc)
        return rc;
    if (!(cfg->fraction > 0.0 && cfg->fraction <= 1.0))
        return dp_errorf(DP_ERR_ARG, "dp_topk_allreduce: fraction %g is not in (0, 1]",
                         cfg->fraction);
    if (!(cfg->momentum >= 0.0f && cfg->momentum < 1.0f))
        return dp_errorf(DP_ERR_ARG, "dp_topk_allreduce: momentum %g is not in [0, 1)",
                         (double)cfg->momentum);
    if (DP_TOPK_AUTO != cfg->path && DP_TOPK_SPARSE != cfg->path && DP_TOPK_DENSE != cfg->path)
        return dp_errorf(DP_ERR_ARG, "dp_topk_allreduce: unknown path %d", (int)cfg->path);
    if (n >= (size_t)TOPK_SENTINEL)
        return dp_errorf(DP_ERR_ARG, "dp_topk_allreduce: n = %zu; at most %u floats per "
                         "call (indices travel as uint32)", n, (unsigned)TOPK_SENTINEL - 1);
    if (n > 0 && NULL == residual)
        return dp_errorf(DP_ERR_ARG, "dp_topk_allreduce: residual is NULL");
    if (n > 0 && cfg->momentum > 0.0f && NULL == velocity)
        return dp_errorf(DP_ERR_ARG, "dp_topk_allreduce: momentum %g needs a velocity buffer",
                         (double)cfg->momentum);
    if (NULL != st)
        memset(st, 0, sizeof *st);
    if (0 == n)
        return DP_OK;

    dp_topk_ws *tmp = NULL;
    if (NULL == ws) {
        rc = dp_topk_ws_create(&tmp);
        if (DP_OK != rc)
            return rc;
        ws = tmp;
    }
    dp_errh_guard g;
    rc = dp_errh_enter(&g, comm, "dp_topk_allreduce");
    if (DP_OK == rc) {
        rc = topk_run(buf, n, cfg, residual, velocity, comm, ws, st);
        dp_errh_leave(&g);
    }
    dp_topk_ws_free(tmp);
    return rc;
}

/* ------------------------------------------------------------------------- */
/* --codec topk:F (with --dgc): after backward, per bucket of the sync         */
/* ------------------------------------------------------------------------- */

typedef struct topk_self {
    dp_topk_ws *ws;
    dp_topk_config tc;
    size_t n;
    float *state;               /* [n] residual, then [n] DGC's velocity when momentum > 0 */
    size_t state_n;
    dp_powersgd_range *buckets; /* in the sync's order */
    int nb;
} topk_self;

static dp_status topkc_parse(const char *s, const char *arg, dp_compress *c)
{
    char *end;
    double f = strtod(arg, &end);
    if (end == arg || *end || isspace((unsigned char)*arg) || !(f > 0 && f <= 1)) /* " 0.1" as "0.1 " */
        return dp_errorf(DP_ERR_ARG, "--codec: '%s': topk:F needs a fraction 0 < F <= 1, e.g. topk:0.01", s);
    c->topk_fraction = f;
    return DP_OK;
}

static int topkc_format(const dp_compress *c, char *buf, size_t n)
{
    if (c->dgc_momentum > 0)
        return snprintf(buf, n, "topk:%g+dgc:%g", c->topk_fraction, (double)c->dgc_momentum);
    return snprintf(buf, n, "topk:%g", c->topk_fraction);
}

static dp_status topkc_check(const dp_compress *c)
{
    if (!(c->topk_fraction > 0 && c->topk_fraction <= 1))
        return dp_errorf(DP_ERR_ARG, "--codec topk:F: F = %g is out of range (0, 1]", c->topk_fraction);
    if (!(c->dgc_momentum == 0 || (c->dgc_momentum > 0 && c->dgc_momentum < 1)))
        return dp_errorf(DP_ERR_ARG, "--dgc: momentum %g needs --codec topk:F and a momentum in (0, 1)",
                         (double)c->dgc_momentum);
    /* the dense steps before --codec-start would run without any momentum */
    if (c->dgc_momentum != 0 && c->start != 0)
        return dp_errorf(DP_ERR_ARG, "--dgc cannot be combined with --codec-start");
    return DP_OK;
}

static void topkc_destroy(void *p)
{
    topk_self *t = p;
    if (NULL == t)
        return;
    dp_topk_ws_free(t->ws);
    free(t->state);
    free(t->buckets);
    free(t);
}

static dp_status topkc_create(const dp_compress *c, const dp_grad_layout *l, void **out)
{
    topk_self *t = calloc(1, sizeof *t);
    if (NULL == t)
        return dp_errorf(DP_ERR_NOMEM, "topk: out of memory");
    t->tc = (dp_topk_config){c->topk_fraction, c->dgc_momentum, DP_TOPK_AUTO};
    t->n = l->n;
    t->state_n = c->dgc_momentum > 0 ? 2 * l->n : l->n;
    t->nb = l->nbuckets;
    t->state = calloc(t->state_n ? t->state_n : 1, sizeof *t->state);
    t->buckets = malloc((l->nbuckets > 0 ? (size_t)l->nbuckets : 1) * sizeof *t->buckets);
    dp_status rc = DP_OK;
    if (NULL == t->state || NULL == t->buckets)
        rc = dp_errorf(DP_ERR_NOMEM, "error-feedback buffer: out of memory");
    else {
        if (l->nbuckets > 0)
            memcpy(t->buckets, l->buckets, (size_t)l->nbuckets * sizeof *t->buckets);
        rc = dp_topk_ws_create(&t->ws);
    }
    if (DP_OK != rc) {
        topkc_destroy(t);
        return rc;
    }
    *out = t;
    return DP_OK;
}

static float *topkc_state(void *p, size_t *nfloats)
{
    topk_self *t = p;
    *nfloats = t->state_n;
    return t->state;
}

static dp_status topkc_run(void *p, float *grad, MPI_Comm comm, double *sent, double *raw)
{
    topk_self *t = p;
    for (int b = 0; b < t->nb; b++) {
        dp_topk_stats st;
        const dp_powersgd_range *k = &t->buckets[b];
        float *velocity = t->tc.momentum > 0 ? t->state + t->n + k->off : NULL;
        dp_status rc = dp_topk_allreduce(grad + k->off, k->n, &t->tc, t->state + k->off, velocity, comm,
                                         t->ws, &st);
        if (DP_OK != rc)
            return rc;
        *sent += (double)st.bytes_sent;
        *raw += (double)st.bytes_dense;
    }
    return DP_OK;
}

const dp_compress_ops dp_compress_topk = {
    .name = "topk",
    .kind = DP_CODEC_TOPK,
    .hook = DP_COMPRESS_AFTER_BACKWARD,
    .arg = "F",
    .parse_arg = topkc_parse,
    .format = topkc_format,
    .check = topkc_check,
    .state_is_residual = 1,
    .create = topkc_create,
    .state = topkc_state,
    .run = topkc_run,
    .destroy = topkc_destroy,
};
