/* Recursive halving/doubling allreduce (Rabenseifner 2004; Thakur, Rabenseifner
 * and Gropp 2005): the inter-node leg of the hierarchical allreduce when nodes
 * are many, and a flat allreduce of its own for small messages, where the ring's
 * 2(P-1) sequential steps cost more than its bandwidth saves.
 *
 * Among P' = 2^k ranks, the vector is cut into P' blocks (the ring's partition,
 * dp_block_off). Reduce-scatter by recursive halving: at mask = P'/2, P'/4, ..
 * 1 a rank exchanges half of its current block range with rank ^ mask, keeping
 * the upper half when its mask bit is set, and adds what it receives; after k
 * steps rank v holds block v of the sum. Allgather by recursive doubling: at
 * mask = 1, 2, .. P'/2 it swaps its aligned group of mask blocks with rank ^ mask.
 *
 * P not a power of two (P = P' + e): ranks 0 .. 2e-1 fold in pairs first, the
 * even one sending its whole vector to the odd one, which adds it and takes part
 * as rank r/2; ranks 2e.. take part as r - e. At the end each odd one sends the
 * result back to its even partner (MPICH's scheme). Each element's sum is formed
 * by exactly one rank and copied to the others, so every rank ends with the same
 * bits, as with the ring.
 *
 * Messages are chunked (the ring's segment, at most RD_CHUNK floats) and
 * streamed: RD_WINDOW chunks are in flight each way, so the link never waits
 * for a round trip per chunk (one blocking MPI_Sendrecv per chunk left a
 * 1 Gbit/s link between two nodes idle for much of hier-rd's time, RESULTS
 * §15), and a chunk received is reduced while the next ones travel. The receive
 * slots live in the ring workspace (grown once); counts stay below INT_MAX.
 * Both partners derive the same chunks from the same lengths, in the same
 * order on one tag, so the i-th receive matches the partner's i-th send.
 *
 * The last halving step and the first doubling step have the same partner
 * (v ^ 1) and mirror each other: v receives block v and sends block v ^ 1, then
 * sends block v (now the sum) and receives block v ^ 1. They run as one stream
 * (as the ring does at 2 ranks): chunk k of block v leaves again as soon as it
 * is reduced, and chunk k of block v ^ 1 is received in place once our send of
 * that region has completed. At 2 ranks, or 2 nodes under hier-rd, that is the
 * whole allreduce, with no pause between the halves. */
#include <stdint.h>

#include "comm/comm_internal.h"

#define RD_CHUNK ((size_t)64 * 1024) /* floats: 256 KiB, the ring's default segment */
#define RD_WINDOW 4                  /* chunks in flight each way */

typedef struct rd_ctx {
    MPI_Comm comm;
    int P, r;
    dp_comm_stats *stats;
    dp_ring_ws *ws; /* its waits: spin, or sleepy on an inter-node leg */
    size_t ch;      /* floats per chunk */
    float *tmp; /* RD_WINDOW receive slots of ch floats */
    MPI_Request sreq[RD_WINDOW], rreq[RD_WINDOW];
} rd_ctx;

/* One exchange with a partner: send src[0..ns), receive nr floats into dst,
 * added (add) or copied. fused: then send dst[0..nr) (the sums, divided by
 * `divide` when nonzero as each chunk is reduced) and receive ns floats into
 * src, in the same stream (the mirrored step, see above). */
typedef struct rd_xchg {
    float *src;
    size_t ns;
    float *dst;
    size_t nr;
    int add, fused, divide;
} rd_xchg;

static size_t nchunks(const rd_ctx *x, size_t n) { return (n + x->ch - 1) / x->ch; }

/* Chunk k of a run of n floats: its length. */
static size_t chunk_len(const rd_ctx *x, size_t n, size_t k)
{
    return n - k * x->ch < x->ch ? n - k * x->ch : x->ch;
}

/* After an error nothing may still write into the workspace or read buf. */
static void abandon(rd_ctx *x)
{
    for (int k = 0; k < RD_WINDOW; k++) {
        if (MPI_REQUEST_NULL != x->rreq[k]) {
            MPI_Cancel(&x->rreq[k]);
            MPI_Request_free(&x->rreq[k]);
        }
        if (MPI_REQUEST_NULL != x->sreq[k])
            MPI_Request_free(&x->sreq[k]);
    }
}

static dp_status fail(rd_ctx *x, int rc, const char *call, int peer, const char *phase, int step, const rd_xchg *e)
{
    abandon(x);
    return dp_mpi_errorf(rc, "dp_rd_allreduce: rank %d of %d: %s with peer rank %d failed at %s step %d (send %zu "
                         "floats, receive %zu)", x->r, x->P, call, peer, phase, step, e->ns, e->nr);
}

/* Sends are numbered: the ns1 chunks of src, then (fused) those of dst; receives
 * the nr1 chunks into dst, then (fused) those into src. Send j of the second
 * part waits for receive j - ns1 to be reduced; receive i of the second part
 * lands where send i - nr1 read, so it is posted once that send completed. At
 * most RD_WINDOW of each are posted ahead of the receives processed. Every wait
 * is for a message the partner posts before it waits for anything of ours that
 * comes later in this order, so two partners never wait for each other. */
static dp_status xchg(rd_ctx *x, const rd_xchg *e, int peer, const char *phase, int step)
{
    const size_t ns1 = nchunks(x, e->ns), nr1 = nchunks(x, e->nr);
    const size_t NS = ns1 + (e->fused ? nr1 : 0), NR = nr1 + (e->fused ? ns1 : 0);
    size_t sp = 0, rp = 0; /* sends, receives posted */
    int rc = MPI_SUCCESS;
    for (int k = 0; k < RD_WINDOW; k++)
        x->sreq[k] = x->rreq[k] = MPI_REQUEST_NULL;
    for (size_t i = 0;; i++) {
        /* receives, then sends, then the receives the sends made possible */
        for (int pass = 0; pass < 3; pass++) {
            if (1 == pass) {
                for (; sp < NS && sp < i + RD_WINDOW && (sp < ns1 || sp - ns1 < i); sp++) {
                    const int k = (int)(sp % RD_WINDOW);
                    if (MPI_REQUEST_NULL != x->sreq[k] &&
                        MPI_SUCCESS != (rc = dp_ring_ws_wait(x->ws, &x->sreq[k], MPI_STATUS_IGNORE)))
                        return fail(x, rc, "MPI_Wait(send)", peer, phase, step, e);
                    const size_t j = sp < ns1 ? sp : sp - ns1;
                    const float *from = (sp < ns1 ? e->src : e->dst) + j * x->ch;
                    const size_t n = chunk_len(x, sp < ns1 ? e->ns : e->nr, j);
                    if (MPI_SUCCESS != (rc = MPI_Isend(from, (int)n, MPI_FLOAT, peer, DP_COMM_RD_TAG, x->comm,
                                                       &x->sreq[k])))
                        return fail(x, rc, "MPI_Isend", peer, phase, step, e);
                    x->stats->bytes_sent += n * sizeof(float);
                    x->stats->bytes_raw_sent += n * sizeof(float); /* no codec: raw = codec = sent */
                    x->stats->bytes_codec_sent += n * sizeof(float);
                }
                continue;
            }
            for (; rp < NR && rp < i + RD_WINDOW; rp++) {
                const int k = (int)(rp % RD_WINDOW);
                float *into;
                size_t n;
                if (rp < nr1) {
                    n = chunk_len(x, e->nr, rp);
                    into = e->add ? x->tmp + (size_t)k * x->ch : e->dst + rp * x->ch;
                } else { /* fused: where send rp - nr1 read */
                    const size_t j = rp - nr1;
                    if (j >= sp)
                        break;
                    const int sk = (int)(j % RD_WINDOW);
                    if (j + RD_WINDOW >= sp && MPI_REQUEST_NULL != x->sreq[sk] &&
                        MPI_SUCCESS != (rc = dp_ring_ws_wait(x->ws, &x->sreq[sk], MPI_STATUS_IGNORE)))
                        return fail(x, rc, "MPI_Wait(send)", peer, phase, step, e);
                    n = chunk_len(x, e->ns, j);
                    into = e->src + j * x->ch;
                }
                if (MPI_SUCCESS != (rc = MPI_Irecv(into, (int)n, MPI_FLOAT, peer, DP_COMM_RD_TAG, x->comm,
                                                   &x->rreq[k])))
                    return fail(x, rc, "MPI_Irecv", peer, phase, step, e);
            }
        }
        if (i >= NR)
            break;
        /* rp > i: receive i is posted (a second-part receive waits only for a
         * first-part send, and those have no condition but the window) */
        const int k = (int)(i % RD_WINDOW);
        dp_wd_note_wait(peer, step, x->P);
        rc = dp_ring_ws_wait(x->ws, &x->rreq[k], MPI_STATUS_IGNORE);
        dp_wd_note_progress();
        if (MPI_SUCCESS != rc)
            return fail(x, rc, "MPI_Wait(receive)", peer, phase, step, e);
        const size_t n = chunk_len(x, i < nr1 ? e->nr : e->ns, i < nr1 ? i : i - nr1);
        if (i < nr1) {
            float *restrict d = e->dst + i * x->ch;
            if (e->add) {
                const float *restrict t = x->tmp + (size_t)k * x->ch;
                for (size_t q = 0; q < n; q++)
                    d[q] += t[q];
            }
            if (e->divide)
                dp_comm_divide(d, n, e->divide);
        }
        x->stats->bytes_recv += n * sizeof(float);
    }
    /* what is left to send: every receive is processed, so nothing waits for a condition */
    for (; sp < NS; sp++) {
        const int k = (int)(sp % RD_WINDOW);
        if (MPI_REQUEST_NULL != x->sreq[k] && MPI_SUCCESS != (rc = dp_ring_ws_wait(x->ws, &x->sreq[k], MPI_STATUS_IGNORE)))
            return fail(x, rc, "MPI_Wait(send)", peer, phase, step, e);
        const size_t j = sp < ns1 ? sp : sp - ns1;
        const size_t n = chunk_len(x, sp < ns1 ? e->ns : e->nr, j);
        if (MPI_SUCCESS != (rc = MPI_Isend((sp < ns1 ? e->src : e->dst) + j * x->ch, (int)n, MPI_FLOAT, peer,
                                           DP_COMM_RD_TAG, x->comm, &x->sreq[k])))
            return fail(x, rc, "MPI_Isend", peer, phase, step, e);
        x->stats->bytes_sent += n * sizeof(float);
        x->stats->bytes_raw_sent += n * sizeof(float);
        x->stats->bytes_codec_sent += n * sizeof(float);
    }
    for (int k = 0; k < RD_WINDOW; k++)
        if (MPI_REQUEST_NULL != x->sreq[k] && MPI_SUCCESS != (rc = dp_ring_ws_wait(x->ws, &x->sreq[k], MPI_STATUS_IGNORE)))
            return fail(x, rc, "MPI_Wait(send)", peer, phase, step, e);
    return DP_OK;
}

/* The world rank of participant v (after folding). */
static int real_rank(int v, int extra) { return v < extra ? 2 * v + 1 : v + extra; }

dp_status dp_rd_run(float *buf, size_t count, dp_reduce_op op, MPI_Comm comm, dp_ring_ws *ws)
{
    rd_ctx x = {.comm = comm, .stats = dp_ring_ws_counters(ws), .ws = ws};
    int rc = MPI_Comm_size(comm, &x.P);
    if (MPI_SUCCESS == rc)
        rc = MPI_Comm_rank(comm, &x.r);
    if (MPI_SUCCESS != rc)
        return dp_mpi_errorf(rc, "dp_rd_allreduce: MPI_Comm_size/rank failed");
    x.stats->calls++;
    x.stats->elems += count;
    if (1 == x.P || 0 == count)
        return DP_OK;
    x.ch = dp_ring_ws_seg_elems(ws) < RD_CHUNK ? dp_ring_ws_seg_elems(ws) : RD_CHUNK;
    if (NULL == (x.tmp = dp_ring_ws_aux(ws, RD_WINDOW * x.ch)))
        return dp_errorf(DP_ERR_NOMEM, "dp_rd_allreduce: rank %d: out of memory", x.r);

    int p2 = 1;
    while (2 * p2 <= x.P)
        p2 *= 2;
    const int extra = x.P - p2;
    dp_status st = DP_OK;
    int v; /* this rank's place among the p2 participants; -1 while folded out */
    if (x.r < 2 * extra) {
        const rd_xchg send = {.src = buf, .ns = count}, take = {.dst = buf, .nr = count, .add = 1};
        st = xchg(&x, 0 == x.r % 2 ? &send : &take, 0 == x.r % 2 ? x.r + 1 : x.r - 1, "fold", 0);
        v = 0 == x.r % 2 ? -1 : x.r / 2;
    } else {
        v = x.r - extra;
    }

    if (v >= 0 && DP_OK == st) {
        int lo = 0, hi = p2, step = 1;
        for (int mask = p2 / 2; mask >= 1 && DP_OK == st; mask /= 2, step++) {
            const int mid = lo + (hi - lo) / 2;
            const int klo = (v & mask) ? mid : lo, khi = (v & mask) ? hi : mid; /* kept */
            const int slo = (v & mask) ? lo : mid, shi = (v & mask) ? mid : hi; /* sent */
            const size_t so = dp_block_off(count, p2, slo), ko = dp_block_off(count, p2, klo);
            /* mask 1: block v is the sum once received (AVG divides it there),
             * and goes straight back as the first doubling step */
            const rd_xchg e = {.src = buf + so, .ns = dp_block_off(count, p2, shi) - so, .dst = buf + ko,
                               .nr = dp_block_off(count, p2, khi) - ko, .add = 1, .fused = 1 == mask,
                               .divide = 1 == mask && DP_REDUCE_AVG == op ? x.P : 0};
            st = xchg(&x, &e, real_rank(v ^ mask, extra), 1 == mask ? "reduce-scatter (halving) and allgather"
                                                                     : "reduce-scatter (halving)", step);
            lo = klo;
            hi = khi;
        }
        step = 2;
        for (int mask = 2; mask < p2 && DP_OK == st; mask *= 2, step++) {
            const int mine = v & ~(mask - 1), theirs = (v ^ mask) & ~(mask - 1);
            const size_t mo = dp_block_off(count, p2, mine), to = dp_block_off(count, p2, theirs);
            const rd_xchg e = {.src = buf + mo, .ns = dp_block_off(count, p2, mine + mask) - mo, .dst = buf + to,
                               .nr = dp_block_off(count, p2, theirs + mask) - to};
            st = xchg(&x, &e, real_rank(v ^ mask, extra), "allgather (doubling)", step);
        }
    }

    if (DP_OK == st && x.r < 2 * extra) { /* unfold: the odd one hands the result back */
        const rd_xchg send = {.src = buf, .ns = count}, take = {.dst = buf, .nr = count};
        st = xchg(&x, 0 == x.r % 2 ? &take : &send, 0 == x.r % 2 ? x.r + 1 : x.r - 1, "unfold", 0);
    }
    return st;
}

dp_status dp_rd_allreduce(float *buf, size_t n, dp_reduce_op op, MPI_Comm comm, dp_ring_ws *ws)
{
    dp_status st = dp_comm_check_args("dp_rd_allreduce", buf, n, op, comm);
    if (DP_OK != st)
        return st;
    dp_ring_ws *tmp;
    if (DP_OK != (st = dp_ring_ws_or_temp(&ws, &tmp)))
        return st;
    dp_errh_guard g;
    if (DP_OK == (st = dp_errh_enter(&g, comm, "dp_rd_allreduce"))) {
        st = dp_rd_run(buf, n, op, comm, ws);
        dp_errh_leave(&g);
    }
    dp_ring_ws_free(tmp);
    return st;
}
