/* What every file of the comm room shares: argument checks, the AVG division,
 * the error-handler swap, MPI error text and the thread-level test. Calls no
 * other file of the room, so allreduce.c, ring.c and the rest all depend on it
 * and it on none of them. */
#include <stdio.h>

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

int dp_comm_thread_level_ok(int provided) { return provided >= MPI_THREAD_MULTIPLE; }
