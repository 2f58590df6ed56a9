/* What every file of the comm room shares: argument checks, the AVG division,
 * the error-handler swap, MPI error messages, the clock, buffers that grow and
 * the thread-level test. Calls no other file of the room, so allreduce.c,
 * ring.c and the rest all depend on it and it on none of them. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "comm/comm_internal.h"

dp_status dp_mpi_errorf(int code, const char *fmt, ...)
{
    if (MPI_SUCCESS == code)
        return DP_OK;
    char msg[768], s[MPI_MAX_ERROR_STRING];
    int len = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (MPI_SUCCESS != MPI_Error_string(code, s, &len))
        snprintf(s, sizeof s, "unknown MPI error");
    return dp_errorf(DP_ERR_MPI, "%s: %s (MPI error %d)", msg, s, code);
}

dp_status dp_ring_allgather(void *buf, const size_t *off, size_t k, MPI_Datatype type, int rank, int size,
                            int tag, MPI_Comm comm, const char *what, dp_comm_stats *stats)
{
    return dp_ring_allgather_shift(buf, off, k, type, rank, 0, size, tag, comm, what, stats);
}

dp_status dp_ring_allgather_shift(void *buf, const size_t *off, size_t k, MPI_Datatype type, int rank,
                                  int shift, int size, int tag, MPI_Comm comm, const char *what,
                                  dp_comm_stats *stats)
{
    int unit = 1;
    MPI_Type_size(type, &unit);
    unsigned char *b = buf;
    const int right = (rank + 1) % size, left = (rank - 1 + size) % size;
    for (int s = 0; s < size - 1; s++) {
        const int sb = ((rank + shift - s) % size + size) % size;
        const int rb = ((rank + shift - s - 1) % size + size) % size;
        const size_t so = off ? off[sb] : (size_t)sb * k, ns = off ? off[sb + 1] - so : k;
        const size_t ro = off ? off[rb] : (size_t)rb * k, nr = off ? off[rb + 1] - ro : k;
        int rc = MPI_Sendrecv(b + so * (size_t)unit, (int)ns, type, right, tag, b + ro * (size_t)unit, (int)nr,
                              type, left, tag, comm, MPI_STATUS_IGNORE);
        if (MPI_SUCCESS != rc)
            return dp_mpi_errorf(rc, "%s: rank %d of %d, step %d (send %zu x %d bytes to %d, receive %zu x %d "
                                 "bytes from %d) failed", what, rank, size, s, ns, unit, right, nr, unit, left);
        if (stats) {
            stats->bytes_sent += ns * (size_t)unit;
            stats->bytes_recv += nr * (size_t)unit;
        }
    }
    return DP_OK;
}

uint64_t dp_mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

double dp_comm_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int dp_comm_grow(unsigned char **p, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 1;
    size_t sz = (need + 63) & ~(size_t)63;
    unsigned char *q = aligned_alloc(64, sz);
    if (NULL == q)
        return 0;
    free(*p);
    *p = q;
    *cap = sz;
    return 1;
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
