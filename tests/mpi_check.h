/* Assertions for the plain-C MPI test programs (Criterion does not mix with
 * MPI): CHECK counts and reports a failed condition with the rank; the
 * program sums the counts over ranks and exits non-zero on any failure. */
#ifndef DP_TEST_MPI_CHECK_H
#define DP_TEST_MPI_CHECK_H

#include <stdint.h>
#include <stdio.h>

#include "dptrain/status.h"

static int g_rank, g_size;
static long g_fail;   /* failed checks in the current case, this rank */
static long g_checks; /* checks run in the current case, this rank */

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

/* splitmix64's finaliser: test data as a pure function of (rank, index, seed). */
static inline uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

#endif
