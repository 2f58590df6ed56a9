/* Assertions for the plain-C MPI test programs (Criterion does not mix with
 * MPI): CHECK counts and reports a failed condition with the rank; the
 * program sums the counts over ranks and exits non-zero on any failure. */
#ifndef DP_TEST_MPI_CHECK_H
#define DP_TEST_MPI_CHECK_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/status.h"

#include <mpi.h>

static int g_rank, g_size;
static long g_fail;   /* failed checks in the current case, this rank */
static long g_checks; /* checks run in the current case, this rank */
static long g_total_fail, g_total_checks; /* over ranks, every case so far */
static double g_case_start;               /* MPI_Wtime when the current case began */

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

/* Ends a case: sums the counts over ranks, prints them and the case's seconds
 * (since the previous end_case or mpi_start) on rank 0 and aborts the job on
 * any failure (a failed case may have left the ranks out of step). */
static inline void end_case(const char *name)
{
    long v[2] = {g_fail, g_checks}, t[2];
    MPI_Allreduce(v, t, 2, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
    g_total_fail += t[0];
    g_total_checks += t[1];
    double now = MPI_Wtime();
    if (0 == g_rank) printf("  %-44s %ld checks, %ld failed, %.1f s\n", name, t[1], t[0], now - g_case_start);
    g_case_start = now;
    g_fail = g_checks = 0;
    if (t[0]) {
        fflush(stdout);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
}

/* Runs one case of the suite: resets the counts, times it, sums the checks
 * over ranks and prints "ok|FAIL name checks seconds" on rank 0; a failure
 * prints the tally and aborts the job. @return cases passed so far. */
static inline int run_case(const char *suite, const char *name, void (*fn)(void))
{
    static int passed;
    g_fail = 0;
    g_checks = 0;
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    fn();
    long f[2] = {g_fail, g_checks};
    MPI_Allreduce(MPI_IN_PLACE, f, 2, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
    double dt = MPI_Wtime() - t0;
    if (0 == g_rank) {
        printf("%-4s %-34s %6ld checks %7.2f s\n", f[0] ? "FAIL" : "ok", name, f[1], dt);
        fflush(stdout);
    }
    if (f[0]) {
        if (0 == g_rank) {
            printf("%s tests: %d passed, 1 failed (%s: %ld failed checks over all ranks)\n", suite, passed, name,
                   f[0]);
            fflush(stdout);
        }
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    return ++passed;
}

/* MPI with full thread support (the trainers' communication thread), g_rank
 * and g_size set; rank 0 makes /tmp/dptrain-<name>-XXXXXX in tmp[cap] and
 * every rank receives the path. */
static inline void mpi_start(int *argc, char ***argv, const char *name, char *tmp, int cap)
{
    int provided;
    MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    if (g_rank == 0) {
        snprintf(tmp, (size_t)cap, "/tmp/dptrain-%s-XXXXXX", name);
        if (!mkdtemp(tmp)) MPI_Abort(MPI_COMM_WORLD, 1);
    }
    MPI_Bcast(tmp, cap, MPI_CHAR, 0, MPI_COMM_WORLD);
    g_case_start = MPI_Wtime();
}

/* Rank 0 removes tmp and prints the totals of every end_case; finalises MPI.
 * @return the exit code (1 if any check failed). */
static inline int mpi_finish(const char *name, const char *tmp)
{
    if (g_rank == 0) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp);
        printf("%s (%d ranks): %ld checks, %ld failed\n", name, g_size, g_total_checks, g_total_fail);
    }
    MPI_Finalize();
    return g_total_fail ? 1 : 0;
}

/* splitmix64's finaliser: test data as a pure function of (rank, index, seed). */
static inline uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Uniform in [0, 1) from key k (53 bits). */
static inline double unif(uint64_t k) { return (double)(mix(k) >> 11) * 0x1.0p-53; }

/* Integer in [-8, 8] for (rank, i, seed): sums of up to 4 are exact floats. */
static inline float gen_int(int rank, size_t i, uint64_t seed)
{
    return (float)((int)(mix(seed * 0x10001ull + (uint64_t)rank * 0x100000000ull + i) % 17) - 8);
}

/* Uniform in [-1, 1) for (rank, i, seed). */
static inline float gen_rand(int rank, size_t i, uint64_t seed)
{
    uint64_t h = mix(seed * 0x10001ull + (uint64_t)rank * 0x100000000ull + i + 7);
    return (float)((double)(h >> 40) / (double)(1ull << 24) * 2.0 - 1.0);
}

/* Whether an error message contains needle. */
static inline int has(const char *hay, const char *needle) { return NULL != strstr(hay, needle); }

#endif
