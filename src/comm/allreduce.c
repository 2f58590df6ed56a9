/* dp_allreduce: the algorithm switch (our ring or MPI_Allreduce), the MPI
 * reference path, and the helpers the comm room shares: argument checks, the AVG
 * division, the error-handler swap and MPI error text. */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "comm/comm_internal.h"

const char *dp_mpi_strerror(int code, char *buf, size_t cap)
{
    char s[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_SUCCESS != MPI_Error_string(code, s, &len))
        snprintf(s, sizeof s, "unknown MPI error");
    snprintf(buf, cap, "%s (MPI error %d)", s, code);
    return buf;
}

dp_status dp_comm_check_args(const char *who, const float *buf, size_t count,
                             dp_reduce_op op, MPI_Comm comm)
{
    if (NULL == buf && count > 0)
        return dp_errorf(DP_ERR_ARG, "%s: buf is NULL with count %zu", who, count);
    if (DP_REDUCE_SUM != op && DP_REDUCE_AVG != op)
        return dp_errorf(DP_ERR_ARG, "%s: unknown reduce op %d", who, (int)op);
    if (MPI_COMM_NULL == comm)
        return dp_errorf(DP_ERR_ARG, "%s: communicator is MPI_COMM_NULL", who);
    int inter = 0;
    if (MPI_SUCCESS != MPI_Comm_test_inter(comm, &inter) || inter)
        return dp_errorf(DP_ERR_ARG, "%s: not an intra-communicator", who);
    return DP_OK;
}

void dp_comm_divide(float *buf, size_t n, int p)
{
    const float fp = (float)p;
    for (size_t i = 0; i < n; i++)
        buf[i] /= fp;
}

dp_status dp_errh_enter(dp_errh_guard *g, MPI_Comm comm, const char *who)
{
    g->comm = comm;
    g->old = MPI_ERRHANDLER_NULL;
    if (MPI_SUCCESS != MPI_Comm_get_errhandler(comm, &g->old) ||
        MPI_SUCCESS != MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN)) {
        if (MPI_ERRHANDLER_NULL != g->old)
            MPI_Errhandler_free(&g->old);
        return dp_errorf(DP_ERR_MPI, "%s: cannot set MPI_ERRORS_RETURN on the communicator",
                         who);
    }
    return DP_OK;
}

/* Best effort: restoring a handler that was valid a moment ago does not fail. */
void dp_errh_leave(dp_errh_guard *g)
{
    MPI_Comm_set_errhandler(g->comm, g->old);
    MPI_Errhandler_free(&g->old);
}

dp_status dp_mpi_allreduce_run(float *buf, size_t count, dp_reduce_op op, MPI_Comm comm)
{
    int size = 1, rank = 0;
    int rc = MPI_Comm_size(comm, &size);
    if (MPI_SUCCESS == rc)
        rc = MPI_Comm_rank(comm, &rank);
    if (MPI_SUCCESS != rc) {
        char err[MPI_MAX_ERROR_STRING + 16];
        return dp_errorf(DP_ERR_MPI, "dp_allreduce: MPI_Comm_size/rank failed: %s",
                         dp_mpi_strerror(rc, err, sizeof err));
    }
    for (size_t done = 0; done < count;) {
        size_t n = count - done < (size_t)INT_MAX ? count - done : (size_t)INT_MAX;
        rc = MPI_Allreduce(MPI_IN_PLACE, buf + done, (int)n, MPI_FLOAT, MPI_SUM, comm);
        if (MPI_SUCCESS != rc) {
            char err[MPI_MAX_ERROR_STRING + 16];
            return dp_errorf(DP_ERR_MPI, "dp_allreduce: rank %d of %d: MPI_Allreduce of %zu "
                             "floats at offset %zu failed: %s", rank, size, n, done,
                             dp_mpi_strerror(rc, err, sizeof err));
        }
        done += n;
    }
    if (DP_REDUCE_AVG == op && size > 1)
        dp_comm_divide(buf, count, size);
    return DP_OK;
}

dp_status dp_allreduce(float *buf, size_t n, dp_reduce_op op, dp_allreduce_algo algo,
                       MPI_Comm comm, dp_ring_ws *ws)
{
    if (DP_ALLREDUCE_RING == algo)
        return dp_ring_allreduce(buf, n, op, comm, ws);
    if (DP_ALLREDUCE_MPI != algo)
        return dp_errorf(DP_ERR_ARG, "dp_allreduce: unknown algorithm %d", (int)algo);
    dp_status st = dp_comm_check_args("dp_allreduce", buf, n, op, comm);
    if (DP_OK != st)
        return st;
    if (0 == n)
        return DP_OK;
    dp_errh_guard g;
    if (DP_OK != (st = dp_errh_enter(&g, comm, "dp_allreduce")))
        return st;
    st = dp_mpi_allreduce_run(buf, n, op, comm);
    dp_errh_leave(&g);
    return st;
}

int dp_comm_thread_level_ok(int provided) { return provided >= MPI_THREAD_MULTIPLE; }
