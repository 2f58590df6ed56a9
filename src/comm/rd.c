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
 * Messages are chunked (at most RD_CHUNK floats per MPI_Sendrecv) so that the
 * receive buffer is bounded (it lives in the ring workspace, grown once) and
 * counts stay below INT_MAX. Both partners derive the same chunks from the same
 * lengths, so every Sendrecv matches its partner's. */
#include <stdint.h>

#include "comm/comm_internal.h"

#define RD_CHUNK ((size_t)64 * 1024) /* floats: 256 KiB, the ring's default segment */

typedef struct rd_ctx {
    MPI_Comm comm;
    int P, r;
    dp_comm_stats *stats;
    float *tmp; /* RD_CHUNK floats */
} rd_ctx;

/* Sends ns floats from src to peer while receiving nr floats from it, into dst:
 * added (add) or copied. Either count may be 0. */
static dp_status xchg(rd_ctx *x, const float *src, size_t ns, float *dst, size_t nr, int peer, int add,
                      const char *phase, int step)
{
    size_t si = 0, ri = 0;
    do {
        const size_t a = ns - si < RD_CHUNK ? ns - si : RD_CHUNK;
        const size_t b = nr - ri < RD_CHUNK ? nr - ri : RD_CHUNK;
        float *into = add || NULL == dst ? x->tmp : dst + ri;
        dp_wd_note_wait(peer, step, x->P);
        int rc = MPI_Sendrecv(a ? src + si : x->tmp, (int)a, MPI_FLOAT, peer, DP_COMM_RD_TAG, b ? into : x->tmp,
                              (int)b, MPI_FLOAT, peer, DP_COMM_RD_TAG, x->comm, MPI_STATUS_IGNORE);
        dp_wd_note_progress();
        if (MPI_SUCCESS != rc)
            return dp_mpi_errorf(rc, "dp_rd_allreduce: rank %d of %d: exchange with peer rank %d failed at %s "
                                 "step %d (send %zu floats, receive %zu)", x->r, x->P, peer, phase, step, ns, nr);
        if (add) {
            float *restrict d = dst + ri;
            const float *restrict t = x->tmp;
            for (size_t i = 0; i < b; i++)
                d[i] += t[i];
        }
        x->stats->bytes_sent += a * sizeof(float);
        x->stats->bytes_raw_sent += a * sizeof(float); /* no codec: raw = codec = sent */
        x->stats->bytes_codec_sent += a * sizeof(float);
        x->stats->bytes_recv += b * sizeof(float);
        si += a;
        ri += b;
    } while (si < ns || ri < nr);
    return DP_OK;
}

/* The world rank of participant v (after folding). */
static int real_rank(int v, int extra) { return v < extra ? 2 * v + 1 : v + extra; }

dp_status dp_rd_run(float *buf, size_t count, dp_reduce_op op, MPI_Comm comm, dp_ring_ws *ws)
{
    rd_ctx x = {.comm = comm, .stats = dp_ring_ws_counters(ws)};
    int rc = MPI_Comm_size(comm, &x.P);
    if (MPI_SUCCESS == rc)
        rc = MPI_Comm_rank(comm, &x.r);
    if (MPI_SUCCESS != rc)
        return dp_mpi_errorf(rc, "dp_rd_allreduce: MPI_Comm_size/rank failed");
    x.stats->calls++;
    x.stats->elems += count;
    if (1 == x.P || 0 == count)
        return DP_OK;
    if (NULL == (x.tmp = dp_ring_ws_aux(ws, RD_CHUNK)))
        return dp_errorf(DP_ERR_NOMEM, "dp_rd_allreduce: rank %d: out of memory", x.r);

    int p2 = 1;
    while (2 * p2 <= x.P)
        p2 *= 2;
    const int extra = x.P - p2;
    dp_status st = DP_OK;
    int v; /* this rank's place among the p2 participants; -1 while folded out */
    if (x.r < 2 * extra) {
        if (0 == x.r % 2) {
            st = xchg(&x, buf, count, NULL, 0, x.r + 1, 0, "fold", 0);
            v = -1;
        } else {
            st = xchg(&x, NULL, 0, buf, count, x.r - 1, 1, "fold", 0);
            v = x.r / 2;
        }
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
            st = xchg(&x, buf + so, dp_block_off(count, p2, shi) - so, buf + ko, dp_block_off(count, p2, khi) - ko,
                      real_rank(v ^ mask, extra), 1, "reduce-scatter (halving)", step);
            lo = klo;
            hi = khi;
        }
        if (DP_OK == st && DP_REDUCE_AVG == op) /* v owns block v of the sum */
            dp_comm_divide(buf + dp_block_off(count, p2, v), dp_block_len(count, p2, v), x.P);
        step = 1;
        for (int mask = 1; mask < p2 && DP_OK == st; mask *= 2, step++) {
            const int mine = v & ~(mask - 1), theirs = (v ^ mask) & ~(mask - 1);
            const size_t mo = dp_block_off(count, p2, mine), to = dp_block_off(count, p2, theirs);
            st = xchg(&x, buf + mo, dp_block_off(count, p2, mine + mask) - mo, buf + to,
                      dp_block_off(count, p2, theirs + mask) - to, real_rank(v ^ mask, extra), 0,
                      "allgather (doubling)", step);
        }
    }

    if (DP_OK == st && x.r < 2 * extra) /* unfold: the odd one hands the result back */
        st = 0 == x.r % 2 ? xchg(&x, NULL, 0, buf, count, x.r + 1, 0, "unfold", 0)
                          : xchg(&x, buf, count, NULL, 0, x.r - 1, 0, "unfold", 0);
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
