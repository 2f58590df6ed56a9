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
 * and the column allreduce reduces like with like; the node's allgather is the
 * ring's own allgather half started from there (dp_ring_run_ag: segmented and
 * pipelined, received in place). The column's result is the same bits on every
 * member (the ring and RD both form each sum on one rank and
 * copy it), AVG divides it once by the world size, and the node's allgather
 * copies it: so every rank ends with the same bits, and with MPI_Allreduce's
 * where float sums are exact.
 *
 * Codecs (dp_hier_codec_run) compress the column leg only, where bytes cross
 * the NIC; the node's legs stay exact float32 (shared memory: bytes are cheap).
 * The column leg is dp_ring_codec_run on the slice with the residual's matching
 * slice, so the error feedback of a rank is what it encoded across nodes, kept
 * in the same flat buffer the checkpoint saves (elements outside the slice stay
 * untouched). AVG: lossy codecs divide the slice by the world size before it is
 * encoded (as the flat ring does), lossless ones after (as above). A column that
 * meets a non-finite value returns DP_ERR_NONFINITE on its members only; the
 * node's allgather still runs (so no rank of the node hangs), and one small
 * MPI_Allreduce of a flag over the node tells the other columns. Only the ring
 * runs across nodes with a codec: halving/doubling would re-encode its halves at
 * every level, which the ring's seam (one encode per value and rank, error
 * feedback per position) does not describe.
 *
 * The column leg's waits are sleepy (dp_ring_ws_set_sleepy): after a short spin
 * they sleep between tests, leaving the cores to the kernel's network stack and
 * to the node's other ranks while inter-node messages travel. */
#include "comm/comm_internal.h"

/* The column leg: exact, or through cfg on the slice buf[0..len) with the
 * residual's slice. AVG divides by the world size P. */
static dp_status column_leg(float *buf, size_t len, dp_reduce_op op, int P, dp_allreduce_algo inter,
                            const dp_codec_config *cfg, float *residual, MPI_Comm col, dp_ring_ws *ws)
{
    if (NULL == cfg) {
        dp_status st = DP_ALLREDUCE_RD == inter
                           ? dp_rd_run(buf, len, DP_REDUCE_SUM, col, ws)
                           : dp_ring_run(buf, len, DP_REDUCE_SUM, col, ws, &dp_ring_codec_identity, NULL);
        if (DP_OK == st && DP_REDUCE_AVG == op)
            dp_comm_divide(buf, len, P);
        return st;
    }
    const int lossy = dp_compress_ops_of(cfg->kind)->ring->lossy;
    if (lossy && DP_REDUCE_AVG == op) /* before anything is encoded, as the flat ring */
        dp_comm_divide(buf, len, P);
    dp_status st = dp_ring_codec_run(buf, len, DP_REDUCE_SUM, cfg, residual, col, ws);
    if (DP_OK == st && !lossy && DP_REDUCE_AVG == op)
        dp_comm_divide(buf, len, P);
    return st;
}

static dp_status hier_exec(float *buf, size_t count, dp_reduce_op op, dp_allreduce_algo inter,
                           const dp_codec_config *cfg, float *residual, dp_topo *t, dp_ring_ws *ws)
{
    const MPI_Comm node = dp_topo_node_comm(t), col = dp_topo_col_comm(t);
    if (MPI_COMM_NULL == node) /* uneven nodes: warned about once, at dp_topo_create */
        return cfg ? dp_ring_codec_run(buf, count, op, cfg, residual, dp_topo_comm(t), ws)
                   : dp_ring_run(buf, count, op, dp_topo_comm(t), ws, &dp_ring_codec_identity, NULL);
    int P = 1, L = 1, l = 0;
    dp_topo_shape(t, NULL, &L, NULL, &l);
    MPI_Comm_size(dp_topo_comm(t), &P);
    dp_comm_stats *cs = dp_ring_ws_counters(ws);
    const dp_comm_stats before = *cs;
    dp_status st = DP_OK;
    if (P > 1 && count > 0) {
        const int b = (l + 1) % L;
        const size_t off = dp_block_off(count, L, b), len = dp_block_len(count, L, b);
        dp_codec_config cc;
        if (cfg) { /* the columns of one node reduce different slices: their rounding streams differ */
            cc = *cfg;
            cc.seed ^= l ? dp_mix64(0x68696572ull + (uint64_t)l) : 0;
        }
        st = dp_ring_run_rs(buf, count, node, ws);
        if (DP_OK == st) {
            const uint64_t s0 = cs->bytes_sent, r0 = cs->bytes_recv;
            const int was = dp_ring_ws_set_sleepy(ws, 1); /* its messages cross nodes: ring.c, ring_wait */
            st = column_leg(buf + off, len, op, P, inter, cfg ? &cc : NULL, residual ? residual + off : NULL, col,
                            ws);
            dp_ring_ws_set_sleepy(ws, was);
            cs->bytes_inter_sent += cs->bytes_sent - s0;
            cs->bytes_inter_recv += cs->bytes_recv - r0;
        }
        const int nonfinite = DP_ERR_NONFINITE == st;
        if (DP_OK == st || nonfinite) { /* a poisoned column still completes the node's allgather */
            dp_status ag = dp_ring_run_ag(buf, count, node, ws); /* the ring's own allgather, segmented */
            if (DP_OK != ag)
                st = ag;
            else if (cfg && L > 1) { /* every rank of the node learns of a poisoned column */
                int any = nonfinite, rc = MPI_Allreduce(MPI_IN_PLACE, &any, 1, MPI_INT, MPI_MAX, node);
                if (MPI_SUCCESS != rc)
                    st = dp_mpi_errorf(rc, "dp_hier_allreduce: local rank %d: non-finite flag allreduce failed", l);
                else if (any && !nonfinite)
                    st = dp_errorf(DP_ERR_NONFINITE, "dp_hier_allreduce_codec: local rank %d: another rank of this "
                                   "node's columns met a non-finite value (its message names rank and index)", l);
            }
        }
    }
    cs->calls = before.calls + 1; /* one call, whatever the legs counted */
    cs->elems = before.elems + count;
    return st;
}

dp_status dp_hier_run(float *buf, size_t count, dp_reduce_op op, dp_allreduce_algo inter, dp_topo *t,
                      dp_ring_ws *ws)
{
    return hier_exec(buf, count, op, inter, NULL, NULL, t, ws);
}

dp_status dp_hier_codec_run(float *buf, size_t count, dp_reduce_op op, const dp_codec_config *cfg, float *residual,
                            dp_topo *t, dp_ring_ws *ws)
{
    return hier_exec(buf, count, op, DP_ALLREDUCE_RING, cfg, residual, t, ws);
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
    dp_ring_ws *tmp;
    if (DP_OK != (st = dp_ring_ws_or_temp(&ws, &tmp)))
        return st;
    dp_errh_guard g; /* for the uneven fallback, which runs on the caller's communicator */
    if (DP_OK == (st = dp_errh_enter(&g, dp_topo_comm(t), "dp_hier_allreduce"))) {
        st = dp_hier_run(buf, n, op, inter, t, ws);
        dp_errh_leave(&g);
    }
    dp_ring_ws_free(tmp);
    return st;
}

dp_status dp_hier_allreduce_codec(float *buf, size_t n, dp_reduce_op op, dp_allreduce_algo inter,
                                  const dp_codec_config *cfg, float *residual, dp_topo *t, dp_ring_ws *ws)
{
    static const dp_codec_config none = {.kind = DP_CODEC_NONE};
    if (NULL == t)
        return dp_errorf(DP_ERR_ARG, "dp_hier_allreduce_codec: topology is NULL");
    if (NULL == cfg)
        cfg = &none;
    dp_status st = dp_comm_check_args("dp_hier_allreduce_codec", buf, n, op, dp_topo_comm(t));
    if (DP_OK == st)
        st = dp_codec_config_check("dp_hier_allreduce_codec", cfg);
    if (DP_OK != st)
        return st;
    if (DP_ALLREDUCE_RING != inter)
        return dp_errorf(DP_ERR_ARG, "dp_hier_allreduce_codec: codec %s%s across nodes needs the ring (hier), not "
                         "%s: halving/doubling does not encode", dp_codec_name(cfg->kind),
                         cfg->wire_zstd_level ? " with the zstd wire stage" : "",
                         DP_ALLREDUCE_RD == inter ? "halving/doubling (hier-rd)" : dp_allreduce_algo_name(inter));
    dp_ring_ws *tmp;
    if (DP_OK != (st = dp_ring_ws_or_temp(&ws, &tmp)))
        return st;
    dp_errh_guard g;
    if (DP_OK == (st = dp_errh_enter(&g, dp_topo_comm(t), "dp_hier_allreduce_codec"))) {
        st = hier_exec(buf, n, op, DP_ALLREDUCE_RING, cfg, residual, t, ws);
        dp_errh_leave(&g);
    }
    dp_ring_ws_free(tmp);
    return st;
}
