/* The choice between our ring (ring.c), recursive halving/doubling (rd.c), the
 * hierarchical allreduce (hier.c) and MPI_Allreduce, for the public
 * dp_allreduce and for the room's own callers (engine.c, rows.c), and the MPI
 * reference path. None of them calls back into this file: all build on the
 * helpers of common.c. */
#include <limits.h>

#include "comm/comm_internal.h"

/* MPI_Allreduce in chunks of INT_MAX floats, then / P for AVG. */
static dp_status mpi_allreduce_run(float *buf, size_t count, dp_reduce_op op, MPI_Comm comm)
{
    int size = 1, rank = 0;
    int rc = MPI_Comm_size(comm, &size);
    if (MPI_SUCCESS == rc)
        rc = MPI_Comm_rank(comm, &rank);
    if (MPI_SUCCESS != rc)
        return dp_mpi_errorf(rc, "dp_allreduce: MPI_Comm_size/rank failed");
    for (size_t done = 0; done < count;) {
        size_t n = count - done < (size_t)INT_MAX ? count - done : (size_t)INT_MAX;
        rc = MPI_Allreduce(MPI_IN_PLACE, buf + done, (int)n, MPI_FLOAT, MPI_SUM, comm);
        if (MPI_SUCCESS != rc)
            return dp_mpi_errorf(rc, "dp_allreduce: rank %d of %d: MPI_Allreduce of %zu floats at "
                                 "offset %zu failed", rank, size, n, done);
        done += n;
    }
    if (DP_REDUCE_AVG == op && size > 1)
        dp_comm_divide(buf, count, size);
    return DP_OK;
}

const char *dp_allreduce_algo_name(dp_allreduce_algo a)
{
    static const char *const names[DP_ALLREDUCE_NALGOS] = {"ring", "mpi", "hier", "hier-rd", "rd", "auto"};
    return (int)a >= 0 && a < DP_ALLREDUCE_NALGOS ? names[a] : "?";
}

/* The topology for the hierarchical algorithms: attached to ws, made on comm. */
static dp_status topo_of(dp_ring_ws *ws, MPI_Comm comm, dp_allreduce_algo algo, dp_topo **t)
{
    *t = ws ? dp_ring_ws_topo(ws) : NULL;
    if (NULL == *t)
        return dp_errorf(DP_ERR_ARG, "dp_allreduce: algorithm %s needs a topology (dp_topo_create, then "
                         "dp_ring_ws_set_topo on the workspace)", dp_allreduce_algo_name(algo));
    if (dp_topo_comm(*t) != comm)
        return dp_errorf(DP_ERR_ARG, "dp_allreduce: the workspace's topology was made on another communicator");
    return DP_OK;
}

/* AUTO without an engine's table: the built-in rule for the shape of the
 * topology attached to ws, or one node of P ranks (then never a hierarchical
 * algorithm, which would need the topology). Same on every rank. */
static dp_allreduce_algo auto_default(size_t count, MPI_Comm comm, const dp_ring_ws *ws)
{
    int nodes = 1, per_node = 1;
    const dp_topo *t = ws ? dp_ring_ws_topo(ws) : NULL;
    if (t && dp_topo_comm(t) == comm)
        dp_topo_shape(t, &nodes, &per_node, NULL, NULL);
    else
        MPI_Comm_size(comm, &per_node);
    dp_allreduce_table tab;
    dp_allreduce_table_default(nodes, per_node, &tab);
    return dp_allreduce_table_choose(&tab, (uint64_t)count * sizeof(float));
}

dp_status dp_allreduce_run(float *buf, size_t count, dp_reduce_op op, dp_allreduce_algo algo,
                           MPI_Comm comm, dp_ring_ws *ws)
{
    dp_topo *t;
    dp_status st;
    if (DP_ALLREDUCE_AUTO == algo)
        algo = auto_default(count, comm, ws);
    switch (algo) {
    case DP_ALLREDUCE_RING:
        return dp_ring_run(buf, count, op, comm, ws, &dp_ring_codec_identity, NULL);
    case DP_ALLREDUCE_RD:
        return dp_rd_run(buf, count, op, comm, ws);
    case DP_ALLREDUCE_HIER:
    case DP_ALLREDUCE_HIER_RD:
        if (DP_OK != (st = topo_of(ws, comm, algo, &t)))
            return st;
        return dp_hier_run(buf, count, op, DP_ALLREDUCE_HIER_RD == algo ? DP_ALLREDUCE_RD : DP_ALLREDUCE_RING, t,
                           ws);
    default:
        return mpi_allreduce_run(buf, count, op, comm);
    }
}

dp_status dp_allreduce_counted(float *buf, size_t n, dp_reduce_op op, dp_allreduce_algo algo, MPI_Comm comm,
                               dp_ring_ws *ws, uint64_t *sent, uint64_t *recv)
{
    dp_comm_stats s0, s1;
    dp_ring_ws_stats(ws, &s0);
    dp_status st = dp_allreduce(buf, n, op, algo, comm, ws);
    dp_ring_ws_stats(ws, &s1);
    *sent += s1.bytes_sent - s0.bytes_sent;
    *recv += s1.bytes_recv - s0.bytes_recv;
    return st;
}

dp_status dp_allreduce(float *buf, size_t n, dp_reduce_op op, dp_allreduce_algo algo,
                       MPI_Comm comm, dp_ring_ws *ws)
{
    if (DP_ALLREDUCE_AUTO == algo) {
        dp_status st = dp_comm_check_args("dp_allreduce", buf, n, op, comm);
        if (DP_OK != st)
            return st;
        algo = auto_default(n, comm, ws);
    }
    if (DP_ALLREDUCE_RING == algo)
        return dp_ring_allreduce(buf, n, op, comm, ws);
    if (DP_ALLREDUCE_RD == algo)
        return dp_rd_allreduce(buf, n, op, comm, ws);
    if ((int)algo < 0 || algo >= DP_ALLREDUCE_NALGOS)
        return dp_errorf(DP_ERR_ARG, "dp_allreduce: unknown algorithm %d", (int)algo);
    dp_status st = dp_comm_check_args("dp_allreduce", buf, n, op, comm);
    if (DP_OK != st)
        return st;
    if (DP_ALLREDUCE_MPI != algo) {
        dp_topo *t;
        if (DP_OK != (st = topo_of(ws, comm, algo, &t)))
            return st;
        return dp_hier_allreduce(buf, n, op, DP_ALLREDUCE_HIER_RD == algo ? DP_ALLREDUCE_RD : DP_ALLREDUCE_RING, t,
                                 ws);
    }
    if (0 == n)
        return DP_OK;
    dp_errh_guard g;
    if (DP_OK != (st = dp_errh_enter(&g, comm, "dp_allreduce")))
        return st;
    st = mpi_allreduce_run(buf, n, op, comm);
    dp_errh_leave(&g);
    return st;
}
