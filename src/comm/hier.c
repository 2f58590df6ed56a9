/* Hierarchical allreduce (as Horovod's and NCCL's two-level schemes): the
 * ring's reduce-scatter inside each node, an allreduce of each rank's slice
 * among the ranks with the same local rank (one per node), the ring's allgather
 * inside the node. With N nodes of L ranks each node's link carries
 * 2 (N-1)/N of the buffer instead of the flat ring's 2 (P-1)/P per rank times
 * L ranks, and the inter-node leg has N instead of P ranks in its latency terms
 * (log2 N with recursive halving/doubling).
 *
 * After the node's reduce-scatter, local rank l holds block (l+1) mod L of the
 * node's sum (dp_ring_run_rs). Every node has the same L (topo.c refuses uneven
 * ones) and the same count, so local rank l holds the same block on every node
 * and the column allreduce reduces like with like. The column's result is the
 * same bits on every member (the ring and RD both form each sum on one rank and
 * copy it), AVG divides it once by the world size, and the node's allgather
 * copies it: so every rank ends with the same bits, and with MPI_Allreduce's
 * where float sums are exact.
 *
 * Codecs: not here yet. They would compress the column leg only (where bytes
 * cost): dp_ring_codec_run on the slice, with the residual's matching slice and
 * the lossy AVG pre-division by the world size; the engine and dp_compress_check
 * refuse a ring codec with these algorithms until then. */
#include <limits.h>

#include "comm/comm_internal.h"

dp_status dp_hier_run(float *buf, size_t count, dp_reduce_op op, dp_allreduce_algo inter, dp_topo *t,
                      dp_ring_ws *ws)
{
    const MPI_Comm node = dp_topo_node_comm(t), col = dp_topo_col_comm(t);
    if (MPI_COMM_NULL == node) /* uneven nodes: warned about once, at dp_topo_create */
        return dp_ring_run(buf, count, op, dp_topo_comm(t), ws, &dp_ring_codec_identity, NULL);
    int P = 1, L = 1, l = 0;
    dp_topo_shape(t, NULL, &L, NULL, &l);
    MPI_Comm_size(dp_topo_comm(t), &P);
    dp_comm_stats *cs = dp_ring_ws_counters(ws);
    const dp_comm_stats before = *cs;
    dp_status st = DP_OK;
    if (P > 1 && count > 0) {
        if (count / (size_t)L + 1 > (size_t)INT_MAX) /* the allgather's blocks go in one message each */
            return dp_errorf(DP_ERR_ARG, "dp_hier_allreduce: %zu floats over %d ranks per node: a node's block "
                             "exceeds INT_MAX floats", count, L);
        const int b = (l + 1) % L;
        const size_t off = dp_block_off(count, L, b), len = dp_block_len(count, L, b);
        st = dp_ring_run_rs(buf, count, node, ws);
        if (DP_OK == st) {
            const uint64_t s0 = cs->bytes_sent, r0 = cs->bytes_recv;
            st = DP_ALLREDUCE_RD == inter ? dp_rd_run(buf + off, len, DP_REDUCE_SUM, col, ws)
                                          : dp_ring_run(buf + off, len, DP_REDUCE_SUM, col, ws,
                                                        &dp_ring_codec_identity, NULL);
            cs->bytes_inter_sent += cs->bytes_sent - s0;
            cs->bytes_inter_recv += cs->bytes_recv - r0;
        }
        if (DP_OK == st) {
            if (DP_REDUCE_AVG == op)
                dp_comm_divide(buf + off, len, P);
            size_t *bo = dp_topo_offsets(t);
            for (int q = 0; q <= L; q++)
                bo[q] = dp_block_off(count, L, q);
            const uint64_t s0 = cs->bytes_sent;
            st = dp_ring_allgather_shift(buf, bo, 0, MPI_FLOAT, l, 1, L, DP_COMM_HIER_TAG, node,
                                         "dp_hier_allreduce: intra-node allgather", cs);
            cs->bytes_raw_sent += cs->bytes_sent - s0; /* no codec: raw = codec = sent */
            cs->bytes_codec_sent += cs->bytes_sent - s0;
        }
    }
    cs->calls = before.calls + 1; /* one call, whatever the legs counted */
    cs->elems = before.elems + count;
    return st;
}

dp_status dp_hier_allreduce(float *buf, size_t n, dp_reduce_op op, dp_allreduce_algo inter, dp_topo *t,
                            dp_ring_ws *ws)
{
    if (NULL == t)
        return dp_errorf(DP_ERR_ARG, "dp_hier_allreduce: topology is NULL");
    if (DP_ALLREDUCE_RING != inter && DP_ALLREDUCE_RD != inter)
        return dp_errorf(DP_ERR_ARG, "dp_hier_allreduce: inter-node algorithm %d (must be ring or rd)", (int)inter);
    dp_status st = dp_comm_check_args("dp_hier_allreduce", buf, n, op, dp_topo_comm(t));
    if (DP_OK != st)
        return st;
    dp_ring_ws *tmp = NULL;
    if (NULL == ws) {
        if (DP_OK != (st = dp_ring_ws_create(0, &tmp)))
            return st;
        ws = tmp;
    }
    dp_errh_guard g; /* for the uneven fallback, which runs on the caller's communicator */
    if (DP_OK == (st = dp_errh_enter(&g, dp_topo_comm(t), "dp_hier_allreduce"))) {
        st = dp_hier_run(buf, n, op, inter, t, ws);
        dp_errh_leave(&g);
    }
    dp_ring_ws_free(tmp);
    return st;
}
