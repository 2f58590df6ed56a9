/* Ring allreduce: reduce-scatter then allgather over non-blocking point-to-point,
 * segmented and pipelined, with a codec seam and a reusable workspace.
 *
 * Follows Open MPI's ompi_coll_base_allreduce_intra_ring / _ring_segmented
 * (ompi/mca/coll/base/coll_base_allreduce.c), with three differences: the
 * segments of a block are forwarded as soon as they are reduced (one stream of
 * messages per neighbour, as in NCCL, instead of a barrier per step), every
 * message goes through a codec (comm_internal.h), and the receive buffers live in
 * a workspace instead of being allocated per call.
 *
 * Blocks: count = P*base + rem; block b has base+1 floats if b < rem ("early")
 * and base otherwise ("late"); some blocks are empty when count < P. A block of L
 * floats moves in nseg = ceil(L / seg) segments split the same way (early
 * segments one float longer), so sender and receiver derive the same messages
 * from the block index alone.
 *
 * Example on 3 ranks: rank 0 holds a, rank 1 b, rank 2 c; a0 is block 0 of a and
 * Sk = ak + bk + ck.
 * At global step s (0 <= s < 2(P-1)) rank r sends block (r-s) mod P to r+1 and
 * receives block (r-s-1) mod P from r-1: the block it receives at step s is the
 * one it sends at step s+1, which is what lets segments stream.
 *
 *            Initial state        REDUCE-SCATTER step 0   REDUCE-SCATTER step 1
 *                                 send r, recv r-1, add   send r-1, recv r-2, add
 *   block    r0    r1    r2       r0     r1     r2        r0     r1     r2
 *     0      a0    b0    c0       a0     a0+b0  c0        a0     a0+b0  [S0]
 *     1      a1    b1    c1       a1     b1     b1+c1     [S1]   b1     b1+c1
 *     2      a2    b2    c2       a2+c2  b2     c2        a2+c2  [S2]   c2
 *
 *   After P-1 steps rank r owns the reduced block (r+1) mod P, in [..]; for AVG
 *   it divides that block by P before sending it on.
 *
 *            ALLGATHER step 0         ALLGATHER step 1
 *            send r+1, recv r, copy   send r, recv r-1, copy
 *   block    r0     r1     r2         r0     r1     r2
 *     0      S0     a0+b0  S0         S0     S0     S0
 *     1      S1     S1     b1+c1      S1     S1     S1
 *     2      a2+c2  S2     S2         S2     S2     S2
 *
 * Pipelining inside rank r (depth = 2 receive slots, "double-buffered"; P = 2,
 * so the reduce-scatter is one step and the allgather the next):
 *
 *   isend seg 0..3 of block r (step 0, tag T0)     post recv seg 0 -> slot A  (T0)
 *                                                  post recv seg 1 -> slot B  (T0)
 *   wait A | reduce A into buf | isend it on (T1) | isend seg 4 of block r (T0)
 *          | post recv seg 2 -> A
 *   wait B | reduce B into buf | isend it on (T1) | isend seg 5 ... | recv seg 3 -> B
 *   ...
 *   allgather: receives land in buf itself (raw codec), nothing to add or copy
 *   waitall sends
 *
 * Segment k+1 is already posted while segment k is reduced; a reduced segment
 * leaves at once, so rank r+1 starts on it while rank r reduces the next one.
 * MPI keeps the order of messages between two ranks on one tag, so the i-th
 * receive on a tag matches the neighbour's i-th send on it. Step-0 segments have
 * their own tag T0 so that they can be posted a few at a time (STEP0_AHEAD);
 * everything else goes on T1.
 *
 * Buffer rules: a raw codec sends from buf and receives allgather segments
 * straight into buf (no copy). Such a region was sent in the reduce-scatter; its
 * receive is posted only once that send is posted and complete (it has completed
 * in practice: the neighbour needed it to produce what we receive), else it is
 * deferred until the loop reaches it. Non-raw codecs send from a ring of S
 * staging slots indexed by send number x (slot x mod S; send x waits for send
 * x-S first). That wait needs the right neighbour to have posted its receive
 * x-S, i.e. to have processed its item x-S-depth = n0+i-S-depth; with
 * S = n0max + depth + 1 this is an item before our current i, for every rank,
 * so no cycle of waits exists around the ring. (A smaller ring deadlocks: our
 * reduce-scatter forwards are the neighbour's allgather receives, posted only
 * after its whole first block.) Allgather messages are copied into the staging
 * ring as received and forwarded from there, so a receive slot is free as soon
 * as it is decoded. Every wait in the loop is thus on an earlier item of some
 * rank, which is what makes the schedule deadlock-free for any P, count,
 * segment size and depth (the tests run depths 1..4 and 13-float segments).
 *
 * Errors: every MPI call is checked; the caller set MPI_ERRORS_RETURN. On error
 * the pending requests are cancelled/freed and DP_ERR_MPI names rank, peer, phase
 * and step. Neighbours that disagree on the count are refused before any payload
 * moves (check_peer), so that no MPI has to report a truncated message. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dptrain/floatscan.h"
#include "comm/comm_internal.h"

#define RING_DEPTH_DEFAULT 2
#define RING_DEPTH_MAX 8
#define RING_SEGMENT_MAX ((size_t)1 << 30)

struct dp_ring_ws {
    size_t seg_elems;          /* floats per segment (>= 1) */
    int depth;                 /* receive slots */
    unsigned char *slots;      /* depth * slot_cap bytes */
    size_t slot_cap;           /* bytes per receive slot */
    unsigned char *stage;      /* non-raw codecs: staging ring of sends, stage_cap bytes */
    size_t stage_cap;
    MPI_Request *sreq;         /* one per send of a call */
    size_t sreq_cap;           /* bytes */
    size_t *roff;              /* first receive item of each step, nsteps + 1 */
    size_t roff_cap;           /* bytes */
    MPI_Request rreq[RING_DEPTH_MAX];
    float *dec;                /* lossy codecs: decode(encode(segment)) for EF/owner */
    size_t dec_cap;            /* bytes */
    dp_codec_rt *rt;           /* codecs built from dp_codec_config's (codec_wire.c) */
    dp_comm_stats stats;
    const atomic_int *yield;   /* nonzero: another thread computes on our core (ring_wait) */
    int sleepy;                /* waits sleep after RING_SPIN_S (inter-node legs, ring_wait) */
    float *aux;                /* receive buffer of rd.c (dp_ring_ws_aux) */
    size_t aux_cap;            /* bytes */
    dp_topo *topo;             /* not owned: for the hierarchical algorithms */
};

/* ------------------------------------------------------------------------- */
/* Workspace                                                                  */
/* ------------------------------------------------------------------------- */

dp_status dp_ring_ws_create(size_t segment_bytes, dp_ring_ws **out)
{
    if (NULL == out)
        return dp_errorf(DP_ERR_ARG, "dp_ring_ws_create: out is NULL");
    *out = NULL;
    if (0 == segment_bytes)
        segment_bytes = DP_RING_SEGMENT_BYTES_DEFAULT;
    if (segment_bytes < sizeof(float) || segment_bytes > RING_SEGMENT_MAX)
        return dp_errorf(DP_ERR_ARG, "dp_ring_ws_create: segment of %zu bytes "
                         "(must be %zu..%zu)", segment_bytes, sizeof(float),
                         RING_SEGMENT_MAX);
    dp_ring_ws *ws = calloc(1, sizeof *ws);
    if (NULL == ws)
        return dp_errorf(DP_ERR_NOMEM, "dp_ring_ws_create: out of memory");
    ws->seg_elems = segment_bytes / sizeof(float);
    ws->depth = RING_DEPTH_DEFAULT;
    *out = ws;
    return DP_OK;
}

dp_status dp_ring_ws_or_temp(dp_ring_ws **ws, dp_ring_ws **tmp)
{
    *tmp = NULL;
    if (NULL != *ws)
        return DP_OK;
    dp_status st = dp_ring_ws_create(0, tmp);
    if (DP_OK == st)
        *ws = *tmp;
    return st;
}

void dp_ring_ws_free(dp_ring_ws *ws)
{
    if (NULL == ws)
        return;
    free(ws->slots);
    free(ws->stage);
    free(ws->sreq);
    free(ws->roff);
    free(ws->dec);
    free(ws->aux);
    dp_codec_rt_free(ws->rt);
    free(ws);
}

void dp_ring_ws_stats(const dp_ring_ws *ws, dp_comm_stats *out) { *out = ws->stats; }

void dp_ring_ws_reset_stats(dp_ring_ws *ws) { memset(&ws->stats, 0, sizeof ws->stats); }

dp_comm_stats *dp_ring_ws_counters(dp_ring_ws *ws) { return &ws->stats; }

float *dp_ring_ws_aux(dp_ring_ws *ws, size_t n)
{
    return dp_comm_grow((unsigned char **)&ws->aux, &ws->aux_cap, n * sizeof(float)) ? ws->aux : NULL;
}

size_t dp_ring_ws_seg_elems(const dp_ring_ws *ws) { return ws->seg_elems; }

void dp_ring_ws_set_topo(dp_ring_ws *ws, dp_topo *t) { ws->topo = t; }

dp_topo *dp_ring_ws_topo(const dp_ring_ws *ws) { return ws->topo; }

dp_status dp_ring_ws_set_depth(dp_ring_ws *ws, int depth)
{
    if (depth < 1 || depth > RING_DEPTH_MAX)
        return dp_errorf(DP_ERR_ARG, "dp_ring_ws_set_depth: %d (must be 1..%d)", depth,
                         RING_DEPTH_MAX);
    ws->depth = depth;
    return DP_OK;
}

/* ------------------------------------------------------------------------- */
/* Plan: blocks, segments, steps                                              */
/* ------------------------------------------------------------------------- */

typedef struct ring_plan {
    float *buf;
    size_t count;
    int P, r, left, right;
    int nsteps;          /* 2(P-1): reduce-scatter steps 0..P-2, allgather P-1..; P-1 for RING_RS */
    int s0;              /* the first step: 0, or P-1 for RING_AG (the allgather alone) */
    int b0;              /* the block of the first sends: r (step 0), or r+1 for RING_AG */
    size_t base, rem;    /* block split */
    size_t seg;          /* floats per segment */
    size_t n0;           /* segments of block b0: the first step's sends */
    size_t nrecv;        /* receive items of the whole call */
    const size_t *roff;  /* roff[s]: index of the first receive item of step s */
} ring_plan;

static int mod_p(long x, int p) { return (int)(((x % p) + p) % p); }

static size_t blk_len(const ring_plan *p, int b)
{
    return p->base + ((size_t)b < p->rem ? 1 : 0);
}

static size_t blk_off(const ring_plan *p, int b)
{
    return (size_t)b * p->base + ((size_t)b < p->rem ? (size_t)b : p->rem);
}

static size_t nseg_of(const ring_plan *p, size_t len)
{
    return len ? (len + p->seg - 1) / p->seg : 0;
}

/* Segment j of a block of `len` floats cut into `nseg`: offset and length. */
static void seg_range(size_t len, size_t nseg, size_t j, size_t *off, size_t *n)
{
    size_t sb = len / nseg, sr = len % nseg;
    *off = j * sb + (j < sr ? j : sr);
    *n = sb + (j < sr ? 1 : 0);
}

static int recv_block(const ring_plan *p, int s) { return mod_p((long)p->r - s - 1, p->P); }

/* A cursor over the receive items (step s, segment j) in the order they arrive. */
typedef struct ring_cursor {
    size_t i;       /* item index */
    int s;          /* step; nsteps when done */
    size_t j, nseg; /* segment within the step's block */
} ring_cursor;

static void cursor_skip_empty(const ring_plan *p, ring_cursor *c)
{
    while (c->s < p->nsteps && c->j >= c->nseg) {
        c->s++;
        c->j = 0;
        c->nseg = c->s < p->nsteps ? nseg_of(p, blk_len(p, recv_block(p, c->s))) : 0;
    }
}

static void cursor_init(const ring_plan *p, ring_cursor *c)
{
    c->i = 0;
    c->s = p->s0;
    c->j = 0;
    c->nseg = nseg_of(p, blk_len(p, recv_block(p, p->s0)));
    cursor_skip_empty(p, c);
}

static void cursor_next(const ring_plan *p, ring_cursor *c)
{
    c->i++;
    c->j++;
    cursor_skip_empty(p, c);
}

/* Where a cursor's segment lives in buf. */
static void cursor_range(const ring_plan *p, const ring_cursor *c, size_t *off, size_t *n)
{
    int b = recv_block(p, c->s);
    size_t so;
    seg_range(blk_len(p, b), c->nseg, c->j, &so, n);
    *off = blk_off(p, b) + so;
}

/* ------------------------------------------------------------------------- */
/* Errors                                                                     */
/* ------------------------------------------------------------------------- */

static void describe_step(const ring_plan *p, int s, char *out, size_t cap)
{
    if (s < p->P - 1)
        snprintf(out, cap, "reduce-scatter step %d of %d", s + 1, p->P - 1);
    else
        snprintf(out, cap, "allgather step %d of %d", s - (p->P - 1) + 1, p->P - 1);
}

static dp_status mpi_fail(const ring_plan *p, const char *call, int peer, int s, size_t j,
                          int code)
{
    char step[64];
    describe_step(p, s, step, sizeof step);
    return dp_mpi_errorf(code, "dp_ring_allreduce: rank %d of %d: %s with peer rank %d failed at "
                         "%s, segment %zu", p->r, p->P, call, peer, step, j);
}

static dp_status codec_fail(const ring_plan *p, const char *what, int peer, int s, size_t j)
{
    char step[64], inner[512];
    describe_step(p, s, step, sizeof step);
    snprintf(inner, sizeof inner, "%s", dp_errmsg());
    return dp_errorf(DP_ERR_MPI, "dp_ring_allreduce: rank %d of %d: %s peer rank %d failed "
                     "at %s, segment %zu: %s", p->r, p->P, what, peer, step, j, inner);
}

/* After an error: nothing may still write into the workspace or read from buf
 * once we return, as far as MPI lets us (receives are cancelled, sends released). */
static void release_requests(dp_ring_ws *ws, size_t nsend)
{
    for (int k = 0; k < ws->depth; k++) {
        if (MPI_REQUEST_NULL != ws->rreq[k]) {
            MPI_Cancel(&ws->rreq[k]);
            MPI_Request_free(&ws->rreq[k]);
        }
    }
    for (size_t k = 0; k < nsend; k++)
        if (MPI_REQUEST_NULL != ws->sreq[k])
            MPI_Request_free(&ws->sreq[k]);
}

void dp_ring_ws_set_yield(dp_ring_ws *ws, const atomic_int *flag)
{
    ws->yield = flag;
}

/* MPI_Wait, except while *ws->yield is set. Open MPI waits by spinning in its
 * progress loop; with one core per rank the engine's thread shares that core with
 * the training thread, and a spin while a slower peer is still in its backward
 * takes half the core from our own backward (benchmarks/RESULTS.md §5b). So a
 * wait first tests a few times, then sleeps between tests with a backoff capped
 * at 100 us: a late message costs at most that much latency, hidden behind
 * backward. Once the training thread waits for us (the flag is cleared), we spin
 * again. */
/*
 * Sleepy waits (dp_ring_ws_set_sleepy: the hierarchical allreduce's inter-node
 * leg): spin RING_SPIN_S, then sleep between tests with the same backoff. A
 * message from another node that has not come within that time is far off
 * (a 256 KiB segment at 1 Gbit/s takes 2 ms), and a spinning rank takes the
 * cycles the kernel's network stack needs to bring it, and those of the ranks
 * it shares cores with: on the virtual cluster (2 nodes x 2 ranks on 2 cores)
 * the inter-node leg of a 1 MiB hier took about 4x as long spinning as sleeping
 * (a loaded machine; RESULTS §15). On a fast network the messages come within
 * the spin, so nothing changes there. */
#define RING_SPIN_S 200e-6
static int ring_wait(dp_ring_ws *ws, MPI_Request *req, MPI_Status *status)
{
    if (NULL == ws->yield && !ws->sleepy)
        return MPI_Wait(req, status);
    long ns = 4000;
    double since = -1.0;
    for (int tries = 0;; tries++) {
        int done = 0, rc = MPI_Test(req, &done, status);
        if (MPI_SUCCESS != rc || done)
            return rc;
        if (tries < 32)
            continue;
        if (NULL == ws->yield || !atomic_load_explicit(ws->yield, memory_order_relaxed)) {
            if (!ws->sleepy)
                continue;
            const double now = dp_comm_now_s();
            if (since < 0.0)
                since = now;
            if (now - since < RING_SPIN_S)
                continue;
        }
        struct timespec ts = {0, ns};
        nanosleep(&ts, NULL);
        ns = ns < 50000 ? 2 * ns : 100000;
    }
}

int dp_ring_ws_set_sleepy(dp_ring_ws *ws, int on)
{
    const int was = ws->sleepy;
    ws->sleepy = on;
    return was;
}

int dp_ring_ws_wait(dp_ring_ws *ws, MPI_Request *req, MPI_Status *status) { return ring_wait(ws, req, status); }

/* ------------------------------------------------------------------------- */
/* The ring                                                                   */
/* ------------------------------------------------------------------------- */

/* One call's state: the plan, its buffers, and the receive posting cursor. */
typedef struct ring_ctx {
    ring_plan p;
    dp_ring_ws *ws;
    const dp_ring_codec *codec;
    MPI_Comm comm;
    size_t slot_bytes; /* bytes per receive slot and per staging slot */
    size_t nstage;     /* staging slots (non-raw) */
    ring_cursor post;  /* next receive item to post */
    size_t sent0;      /* step-0 sends posted so far (windowed) */
    float *res;        /* error-feedback residual (count floats) or NULL */
    const dp_ring_codec *base; /* the codec under a wire stage (for byte counts) */
    int poisoned;      /* a rank (this or upstream) rejected what it had to encode */
    char bad[640];     /* why, for the final DP_ERR_NONFINITE */
} ring_ctx;

/* Counts one sent message of n floats and `bytes` wire bytes. */
static void count_send(ring_ctx *x, size_t n, size_t bytes)
{
    dp_comm_stats *st = &x->ws->stats;
    st->bytes_sent += bytes;
    if (0 == bytes && n > 0) /* poison carries no data */
        return;
    st->bytes_raw_sent += n * sizeof(float);
    st->bytes_codec_sent += x->base->max_bytes(x->base, n); /* exact for our codecs */
}

/* Encodes buf[off..off+n) for the right neighbour into dst (non-raw codecs).
 * Lossy codecs: error feedback and the owner's copy, as in the header comment:
 *     v = buf + e;  m = enc(v);  d = dec(m);  e = v - d;  owner: buf = d.
 * buf itself may be overwritten with v: every region encoded here is replaced
 * later in the call (by the allgather, or by d for the owner). A value the codec
 * rejects poisons the call: the message goes out empty (a real message of n > 0
 * values is never empty), and so does every later message of this rank, so that
 * all ranks finish the ring and report DP_ERR_NONFINITE instead of hanging. */
static dp_status ring_encode(ring_ctx *x, size_t off, size_t n, int owner, void *dst,
                             size_t *bytes)
{
    *bytes = 0;
    if (x->poisoned)
        return DP_OK;
    const dp_ring_codec *c = x->codec;
    float *restrict v = x->p.buf + off;
    if (x->res) {
        const float *restrict e = x->res + off;
        for (size_t i = 0; i < n; i++)
            v[i] += e[i];
    }
    dp_status st = c->encode(c, v, n, dst, x->slot_bytes, bytes);
    if (DP_ERR_NONFINITE == st) {
        size_t k = dp_floats_find_bad(v, n, 0.0f);
        if (k < n)
            snprintf(x->bad, sizeof x->bad, "dp_ring_allreduce_codec: rank %d of %d: "
                     "non-finite value (%g) at index %zu of the range (input%s)", x->p.r,
                     x->p.P, (double)v[k], off + k,
                     x->res ? " plus residual, plus partial sums" : " plus partial sums");
        else
            snprintf(x->bad, sizeof x->bad, "dp_ring_allreduce_codec: rank %d of %d: in "
                     "elements [%zu, %zu) of the range: %s", x->p.r, x->p.P, off, off + n,
                     dp_errmsg());
        x->poisoned = 1;
        *bytes = 0;
        return DP_OK;
    }
    if (DP_OK != st)
        return st;
    if (c->lossy && (x->res || owner)) {
        float *restrict d = x->ws->dec;
        if (DP_OK != (st = c->decode(c, dst, *bytes, d, n, 0)))
            return st;
        if (x->res) {
            float *restrict e = x->res + off;
            for (size_t i = 0; i < n; i++)
                e[i] = v[i] - d[i];
        }
        if (owner)
            memcpy(v, d, n * sizeof(float));
    }
    return DP_OK;
}

/* An empty message for n > 0 values: the sender (or one upstream) was poisoned. */
static void note_poison(ring_ctx *x, int s)
{
    if (x->poisoned)
        return;
    x->poisoned = 1;
    snprintf(x->bad, sizeof x->bad, "dp_ring_allreduce_codec: rank %d of %d: rank %d sent "
             "an empty message at step %d: a rank met a non-finite value (its own message "
             "names rank and index)", x->p.r, x->p.P, x->p.left, s + 1);
}

/* Step-0 messages (our own block, sent straight away) travel on their own tag so
 * that they can be posted a few at a time: every other message of the call goes
 * after them in the order the receiver expects, and with one tag they would all
 * have to be posted before the first forward. Posting hundreds at once exhausts
 * vader's fragments (btl_vader_free_list_max = 512), and ob1 then queues and
 * retries them, which slows large allreduces down. */
#define TAG_STEP0 DP_COMM_RING_TAG
#define TAG_REST (DP_COMM_RING_TAG + 1)
#define STEP0_AHEAD 4 /* step-0 sends posted ahead of the items processed */

/* The send that last read the region of buf an allgather item overwrites: the
 * reduce-scatter send of the same block and segment, at step s - (P-1). */
static size_t conflicting_send(const ring_ctx *x, const ring_cursor *c)
{
    const int ks = c->s - (x->p.P - 1);
    return 0 == ks ? c->j : x->p.n0 + x->p.roff[ks - 1] + c->j;
}

/* Posts receives while fewer than depth are outstanding. `processed` items are
 * done (their forwards posted). A raw allgather item is received straight into
 * buf; it waits until the send that read that region is posted (else it is
 * deferred: the loop below posts it when it gets there) and complete. */
static dp_status post_recvs(ring_ctx *x, size_t processed)
{
    const ring_plan *p = &x->p;
    dp_ring_ws *ws = x->ws;
    while (x->post.i < p->nrecv && x->post.i < processed + (size_t)ws->depth) {
        const ring_cursor *c = &x->post;
        const int k = (int)(c->i % (size_t)ws->depth);
        size_t off, n;
        cursor_range(p, c, &off, &n);
        void *dst = ws->slots + (size_t)k * x->slot_bytes;
        if (x->codec->raw && c->s >= p->P - 1 && p->s0 > 0) { /* allgather alone: no send read buf before */
            dst = p->buf + off;
        } else if (x->codec->raw && c->s >= p->P - 1) {
            const size_t t = conflicting_send(x, c);
            if (t < p->n0 ? t >= x->sent0 : t - p->n0 >= processed)
                break; /* not sent yet */
            int rc = ring_wait(ws, &ws->sreq[t], MPI_STATUS_IGNORE);
            if (MPI_SUCCESS != rc)
                return mpi_fail(p, "MPI_Wait(send)", p->right, c->s - (p->P - 1), c->j, rc);
            dst = p->buf + off;
        }
        int rc = MPI_Irecv(dst, (int)x->codec->max_bytes(x->codec, n), MPI_BYTE, p->left,
                           p->s0 == c->s ? TAG_STEP0 : TAG_REST, x->comm, &ws->rreq[k]);
        if (MPI_SUCCESS != rc)
            return mpi_fail(p, "MPI_Irecv", p->left, c->s, c->j, rc);
        cursor_next(p, &x->post);
    }
    return DP_OK;
}

/* Before any payload each rank sends its right neighbour what it is about to
 * reduce (count, segment, wire bytes of a full segment) and checks what its left
 * neighbour sent. Ranks that disagree would otherwise post receives smaller than
 * the messages that match them: Open MPI returns the truncation to our error
 * handler, but MPICH (and its family) raise it from MPI_Wait on MPI_COMM_WORLD's
 * handler, which aborts the job. The header goes first on TAG_STEP0, so it matches
 * the first receive on that tag whatever the calls around it; no payload leaves
 * before it is checked, so a refused call leaves no message behind. Costs one
 * small message's latency per call, as the first data message waits for the
 * neighbour to enter the call anyway. */
static dp_status check_peer(const ring_ctx *x)
{
    const ring_plan *p = &x->p;
    const uint64_t mine[3] = {p->count, p->seg, x->codec->max_bytes(x->codec, p->seg)};
    uint64_t theirs[3] = {0};
    MPI_Request req[2] = {MPI_REQUEST_NULL, MPI_REQUEST_NULL};
    int rc = MPI_Irecv(theirs, 3, MPI_UINT64_T, p->left, TAG_STEP0, x->comm, &req[0]);
    if (MPI_SUCCESS == rc)
        rc = MPI_Isend(mine, 3, MPI_UINT64_T, p->right, TAG_STEP0, x->comm, &req[1]);
    dp_wd_note_wait(p->left, 0, p->P);
    for (int k = 0; k < 2 && MPI_SUCCESS == rc; k++)
        rc = ring_wait(x->ws, &req[k], MPI_STATUS_IGNORE);
    dp_wd_note_progress();
    if (MPI_SUCCESS != rc) {
        for (int k = 0; k < 2; k++)
            if (MPI_REQUEST_NULL != req[k]) {
                MPI_Cancel(&req[k]);
                MPI_Request_free(&req[k]);
            }
        return mpi_fail(p, "exchanging counts", p->left, 0, 0, rc);
    }
    if (!memcmp(mine, theirs, sizeof mine))
        return DP_OK;
    char step[64];
    describe_step(p, 0, step, sizeof step);
    return dp_errorf(DP_ERR_MPI, "dp_ring_allreduce: rank %d of %d: peer rank %d calls with %llu "
                     "floats (segments of %llu floats, %llu wire bytes), this rank with %llu "
                     "(segments of %llu, %llu bytes): the ranks disagree; refused before %s",
                     p->r, p->P, p->left, (unsigned long long)theirs[0],
                     (unsigned long long)theirs[1], (unsigned long long)theirs[2],
                     (unsigned long long)mine[0], (unsigned long long)mine[1],
                     (unsigned long long)mine[2], step);
}

/* Posts the first step's sends (segments of block b0: our own block r, or for
 * the allgather alone the block we own) until `upto` are posted. */
static dp_status send_step0(ring_ctx *x, size_t upto)
{
    const ring_plan *p = &x->p;
    dp_ring_ws *ws = x->ws;
    const dp_ring_codec *codec = x->codec;
    const size_t len = blk_len(p, p->b0), bo = blk_off(p, p->b0);
    if (upto > p->n0)
        upto = p->n0;
    for (; x->sent0 < upto; x->sent0++) {
        const size_t j = x->sent0;
        size_t so, n, bytes = 0;
        seg_range(len, p->n0, j, &so, &n);
        const void *msg = p->buf + bo + so;
        if (codec->raw) {
            bytes = n * sizeof(float);
        } else { /* staging slot j: j < n0 < nstage, never reused before it is sent */
            unsigned char *dst = ws->stage + j * x->slot_bytes;
            if (DP_OK != ring_encode(x, bo + so, n, 0, dst, &bytes))
                return codec_fail(p, "encoding a message for", p->right, 0, j);
            msg = dst;
        }
        int rc = MPI_Isend(msg, (int)bytes, MPI_BYTE, p->right, TAG_STEP0, x->comm,
                           &ws->sreq[j]);
        if (MPI_SUCCESS != rc)
            return mpi_fail(p, "MPI_Isend", p->right, p->s0, j, rc);
        count_send(x, n, bytes);
    }
    return DP_OK;
}

/* RING_RS: stop after the reduce-scatter (nsteps = P - 1). Nothing else of the
 * schedule changes: the last step's items are simply not forwarded, and no
 * allgather item (the only ones with deferred receives) exists.
 * RING_AG: the allgather alone (steps P-1..2P-3), rank r starting from block
 * (r+1) mod P, as RING_RS leaves it (raw codecs only). Its first sends are that
 * block, on TAG_STEP0 as step 0's are; every receive lands in buf at once, as no
 * send of the call has read the region before (block r+1 is never received). */
enum { RING_FULL, RING_RS, RING_AG };
static dp_status ring_exec(float *buf, size_t count, dp_reduce_op op, MPI_Comm comm,
                           dp_ring_ws *ws, const dp_ring_codec *codec, float *residual, int mode)
{
    ring_ctx x = {.p = {.buf = buf, .count = count}, .ws = ws, .codec = codec, .comm = comm,
                  .res = codec->lossy ? residual : NULL,
                  .base = codec->inner ? codec->inner : codec};
    ring_plan *pp = &x.p;
    int rc = MPI_Comm_size(comm, &pp->P);
    if (MPI_SUCCESS == rc)
        rc = MPI_Comm_rank(comm, &pp->r);
    if (MPI_SUCCESS != rc)
        return dp_mpi_errorf(rc, "dp_ring_allreduce: MPI_Comm_size/rank failed");
    if (RING_FULL == mode) {
        ws->stats.calls++;
        ws->stats.elems += count;
    }
    if (1 == pp->P || 0 == count)
        return DP_OK;

    pp->left = mod_p(pp->r - 1, pp->P);
    pp->right = mod_p(pp->r + 1, pp->P);
    pp->nsteps = (RING_RS == mode ? 1 : 2) * (pp->P - 1);
    pp->s0 = RING_AG == mode ? pp->P - 1 : 0;
    pp->b0 = mod_p((long)pp->r - pp->s0, pp->P);
    pp->base = count / (size_t)pp->P;
    pp->rem = count % (size_t)pp->P;
    pp->seg = ws->seg_elems;
    pp->n0 = nseg_of(pp, blk_len(pp, pp->b0));
    dp_status st = check_peer(&x);
    if (DP_OK != st)
        return st;

    /* Per-step receive offsets, then every buffer the call needs. */
    if (!dp_comm_grow((unsigned char **)&ws->roff, &ws->roff_cap, ((size_t)pp->nsteps + 1) * sizeof(size_t)))
        return dp_errorf(DP_ERR_NOMEM, "dp_ring_allreduce: rank %d: out of memory", pp->r);
    ws->roff[0] = 0;
    for (int s = 0; s < pp->nsteps; s++)
        ws->roff[s + 1] = ws->roff[s] + (s < pp->s0 ? 0 : nseg_of(pp, blk_len(pp, recv_block(pp, s))));
    pp->roff = ws->roff;
    pp->nrecv = ws->roff[pp->nsteps];
    const ring_plan p = *pp; /* read-only from here */

    const int depth = ws->depth;
    const size_t max_blk = p.base + (p.rem ? 1 : 0);
    const size_t max_seg = p.seg < max_blk ? p.seg : max_blk;
    const size_t slot_bytes = x.slot_bytes = (codec->max_bytes(codec, max_seg) + 63) & ~(size_t)63;
    const size_t nstage = x.nstage = nseg_of(&p, max_blk) + (size_t)depth + 1;
    const size_t nsend = p.n0 + p.nrecv;
    if (slot_bytes > INT_MAX)
        return dp_errorf(DP_ERR_ARG, "dp_ring_allreduce: a segment of %zu floats encodes to "
                         "more than INT_MAX bytes", max_seg);
    if (!dp_comm_grow(&ws->slots, &ws->slot_cap, slot_bytes * (size_t)depth) ||
        !dp_comm_grow((unsigned char **)&ws->sreq, &ws->sreq_cap, nsend * sizeof(MPI_Request)) ||
        (!codec->raw && !dp_comm_grow(&ws->stage, &ws->stage_cap, slot_bytes * nstage)) ||
        (codec->lossy && !dp_comm_grow((unsigned char **)&ws->dec, &ws->dec_cap,
                                       max_seg * sizeof(float))))
        return dp_errorf(DP_ERR_NOMEM, "dp_ring_allreduce: rank %d: out of memory for the "
                         "workspace (%zu floats)", p.r, count);
    for (size_t k = 0; k < nsend; k++)
        ws->sreq[k] = MPI_REQUEST_NULL;
    for (int k = 0; k < RING_DEPTH_MAX; k++)
        ws->rreq[k] = MPI_REQUEST_NULL;

    if (DP_OK != (st = send_step0(&x, STEP0_AHEAD)))
        goto err;

    cursor_init(&p, &x.post);
    if (DP_OK != (st = post_recvs(&x, 0)))
        goto err;

    ring_cursor c;
    for (cursor_init(&p, &c); c.i < p.nrecv; cursor_next(&p, &c)) {
        if (DP_OK != (st = send_step0(&x, c.i + STEP0_AHEAD)))
            goto err;
        if (x.post.i == c.i && DP_OK != (st = post_recvs(&x, c.i))) /* a deferred one */
            goto err;
        const int k = (int)(c.i % (size_t)depth);
        unsigned char *slot = ws->slots + (size_t)k * slot_bytes;
        MPI_Status status;
        int nb;
        dp_wd_note_wait(p.left, c.s, p.P);
        rc = ring_wait(ws, &ws->rreq[k], &status);
        dp_wd_note_progress();
        if (MPI_SUCCESS == rc)
            rc = MPI_Get_count(&status, MPI_BYTE, &nb);
        if (MPI_SUCCESS != rc) {
            st = mpi_fail(&p, "MPI_Wait(receive)", p.left, c.s, c.j, rc);
            goto err;
        }
        ws->stats.bytes_recv += (uint64_t)nb;

        size_t off, n;
        cursor_range(&p, &c, &off, &n);
        float *dst = buf + off;
        const size_t fwd = p.n0 + c.i; /* the send that forwards this item */
        const int last = c.s == p.nsteps - 1;
        const void *msg = dst;
        size_t bytes = n * sizeof(float);

        /* Non-raw: the staging slot of send fwd, once send fwd - nstage is done. */
        unsigned char *sbuf = NULL;
        if (!codec->raw && !last) {
            sbuf = ws->stage + (fwd % nstage) * slot_bytes;
            if (fwd >= nstage) {
                rc = ring_wait(ws, &ws->sreq[fwd - nstage], MPI_STATUS_IGNORE);
                if (MPI_SUCCESS != rc) {
                    st = mpi_fail(&p, "MPI_Wait(send)", p.right, c.s, c.j, rc);
                    goto err;
                }
            }
        }

        if (!codec->raw && 0 == nb && n > 0)
            note_poison(&x, c.s);
        if (c.s < p.P - 1) { /* reduce-scatter */
            if (!x.poisoned && DP_OK != codec->decode(codec, slot, (size_t)nb, dst, n, 1)) {
                st = codec_fail(&p, "decoding a message from", p.left, c.s, c.j);
                goto err;
            }
            if (c.s == p.P - 2 && DP_REDUCE_AVG == op)
                dp_comm_divide(dst, n, p.P);
            if (sbuf) { /* at step P-2 this rank owns the block: its own copy = decoded */
                if (DP_OK != ring_encode(&x, off, n, c.s == p.P - 2, sbuf, &bytes)) {
                    st = codec_fail(&p, "encoding a message for", p.right, c.s + 1, c.j);
                    goto err;
                }
                msg = sbuf;
            }
        } else if (codec->raw) { /* allgather, received in place */
            if (DP_OK != dp_codec_check_size(codec, (size_t)nb, n)) {
                st = codec_fail(&p, "receiving a message from", p.left, c.s, c.j);
                goto err;
            }
        } else { /* allgather: forwarded as received, not re-encoded */
            if (sbuf) {
                memcpy(sbuf, slot, (size_t)nb);
                msg = sbuf;
                bytes = (size_t)nb;
            }
            if (!x.poisoned && DP_OK != codec->decode(codec, slot, (size_t)nb, dst, n, 0)) {
                st = codec_fail(&p, "decoding a message from", p.left, c.s, c.j);
                goto err;
            }
        }

        if (!last) { /* forward to the right at step s+1 */
            rc = MPI_Isend(msg, (int)bytes, MPI_BYTE, p.right, TAG_REST, comm,
                           &ws->sreq[fwd]);
            if (MPI_SUCCESS != rc) {
                st = mpi_fail(&p, "MPI_Isend", p.right, c.s + 1, c.j, rc);
                goto err;
            }
            count_send(&x, n, bytes);
        }
        if (DP_OK != (st = post_recvs(&x, c.i + 1)))
            goto err;
    }

    if (DP_OK != (st = send_step0(&x, p.n0))) /* (all are out by now) */
        goto err;
    rc = MPI_SUCCESS;
    for (size_t t = 0; t < nsend && MPI_SUCCESS == rc; t++)
        rc = ring_wait(ws, &ws->sreq[t], MPI_STATUS_IGNORE);
    if (MPI_SUCCESS != rc) {
        st = mpi_fail(&p, "MPI_Waitall(sends)", p.right, p.nsteps - 1, 0, rc);
        goto err;
    }
    if (x.poisoned)
        return dp_errorf(DP_ERR_NONFINITE, "%s", x.bad);
    return DP_OK;

err:
    release_requests(ws, nsend);
    return st;
}

dp_status dp_ring_run(float *buf, size_t count, dp_reduce_op op, MPI_Comm comm,
                      dp_ring_ws *ws, const dp_ring_codec *codec, float *residual)
{
    return ring_exec(buf, count, op, comm, ws, codec, residual, RING_FULL);
}

dp_status dp_ring_run_rs(float *buf, size_t count, MPI_Comm comm, dp_ring_ws *ws)
{
    return ring_exec(buf, count, DP_REDUCE_SUM, comm, ws, &dp_ring_codec_identity, NULL, RING_RS);
}

dp_status dp_ring_run_ag(float *buf, size_t count, MPI_Comm comm, dp_ring_ws *ws)
{
    return ring_exec(buf, count, DP_REDUCE_SUM, comm, ws, &dp_ring_codec_identity, NULL, RING_AG);
}

/* ------------------------------------------------------------------------- */
/* Public entry points                                                        */
/* ------------------------------------------------------------------------- */

/* The public calls: arguments checked, a temporary workspace when ws is NULL,
 * MPI_ERRORS_RETURN on comm during the call; then the ring with `codec`, or
 * with the codec cfg selects (codec NULL). */
static dp_status ring_public(const char *who, float *buf, size_t n, dp_reduce_op op, MPI_Comm comm,
                            dp_ring_ws *ws, const dp_ring_codec *codec, const dp_codec_config *cfg,
                            float *residual)
{
    dp_status st = dp_comm_check_args(who, buf, n, op, comm);
    if (DP_OK != st)
        return st;
    if (cfg && DP_OK != (st = dp_codec_config_check(who, cfg)))
        return st;
    dp_ring_ws *tmp;
    if (DP_OK != (st = dp_ring_ws_or_temp(&ws, &tmp)))
        return st;
    dp_errh_guard g;
    st = dp_errh_enter(&g, comm, who);
    if (DP_OK == st) {
        st = codec ? dp_ring_run(buf, n, op, comm, ws, codec, NULL)
                   : dp_ring_codec_run(buf, n, op, cfg, residual, comm, ws);
        dp_errh_leave(&g);
    }
    dp_ring_ws_free(tmp);
    return st;
}

dp_status dp_ring_allreduce_with(float *buf, size_t count, dp_reduce_op op,
                                 MPI_Comm comm, dp_ring_ws *ws,
                                 const dp_ring_codec *codec)
{
    if (NULL == codec)
        return dp_errorf(DP_ERR_ARG, "dp_ring_allreduce: codec is NULL");
    return ring_public("dp_ring_allreduce", buf, count, op, comm, ws, codec, NULL, NULL);
}

dp_status dp_ring_allreduce(float *buf, size_t count, dp_reduce_op op, MPI_Comm comm,
                            dp_ring_ws *ws)
{
    return ring_public("dp_ring_allreduce", buf, count, op, comm, ws, &dp_ring_codec_identity,
                       NULL, NULL);
}

dp_status dp_ring_codec_run(float *buf, size_t count, dp_reduce_op op,
                            const dp_codec_config *cfg, float *residual, MPI_Comm comm,
                            dp_ring_ws *ws)
{
    int P, r;
    if (MPI_SUCCESS != MPI_Comm_size(comm, &P) || MPI_SUCCESS != MPI_Comm_rank(comm, &r))
        return dp_errorf(DP_ERR_MPI, "dp_ring_allreduce_codec: MPI_Comm_size/rank failed");
    const dp_ring_codec *codec;
    dp_status st = dp_codec_rt_select(&ws->rt, cfg, r, &codec);
    if (DP_OK != st)
        return st;
    if (1 == P || 0 == count) /* exact: nothing is encoded, the residual waits */
        return dp_ring_run(buf, count, op, comm, ws, codec, NULL);
    if (!codec->lossy && residual) { /* lossless: the residual is sent in full */
        for (size_t i = 0; i < count; i++) {
            buf[i] += residual[i];
            residual[i] = 0.0f;
        }
    }
    if (codec->lossy && DP_REDUCE_AVG == op) { /* divide before anything is encoded */
        dp_comm_divide(buf, count, P);
        op = DP_REDUCE_SUM;
    }
    return dp_ring_run(buf, count, op, comm, ws, codec, residual);
}

dp_status dp_ring_allreduce_codec(float *buf, size_t n, dp_reduce_op op,
                                  const dp_codec_config *cfg, float *residual,
                                  MPI_Comm comm, dp_ring_ws *ws)
{
    static const dp_codec_config none = {.kind = DP_CODEC_NONE};
    return ring_public("dp_ring_allreduce_codec", buf, n, op, comm, ws, NULL, cfg ? cfg : &none,
                       residual);
}
