/* Assertions for the plain-C MPI test programs (Criterion does not mix with
 * MPI): CHECK counts and reports a failed condition with the rank; the
 * program sums the counts over ranks and exits non-zero on any failure. */
#ifndef DP_TEST_MPI_CHECK_H
#define DP_TEST_MPI_CHECK_H

#include <stdint.h>
#include <stdio.h>

#include "dptrain/status.h"

#include <mpi.h>

static int g_rank, g_size;
static long g_fail;   /* failed checks in the current case, this rank */
static long g_checks; /* checks run in the current case, this rank */
static long g_total_fail, g_total_checks; /* over ranks, every case so far */

#define CHECK(cond, ...)                                                              \
    do {                                                                              \
        g_checks++;                                                                   \
        if (!(cond)) {                                                                \
            g_fail++;                                                                 \
            if (g_fail <= 20) {                                                       \
                fprintf(stderr, "rank %d: FAIL %s:%d: %s: ", g_rank, __FILE__,        \
                        __LINE__, #cond);                                             \
                fprintf(stderr, __VA_ARGS__);                                         \
                fputc('\n', stderr);                                                  \
            }                                                                         \
        }                                                                             \
    } while (0)

#define CHECK_OK(expr)                                                                \
    do {                                                                              \
        dp_status st_ = (expr);                                                       \
        CHECK(DP_OK == st_, "%s -> %s: %s", #expr, dp_status_name(st_), dp_errmsg()); \
    } while (0)

/* Ends a case: sums the counts over ranks, prints them on rank 0 and aborts the
 * job on any failure (a failed case may have left the ranks out of step). */
static inline void end_case(const char *name)
{
    long v[2] = {g_fail, g_checks}, t[2];
    MPI_Allreduce(v, t, 2, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
    g_total_fail += t[0];
    g_total_checks += t[1];
    if (0 == g_rank) printf("  %-44s %ld checks, %ld failed\n", name, t[1], t[0]);
    g_fail = g_checks = 0;
    if (t[0]) {
        fflush(stdout);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
}

/* splitmix64's finaliser: test data as a pure function of (rank, index, seed). */
static inline uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

#endif
