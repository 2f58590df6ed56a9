/* What the conv benchmarks (bench_conv.c, bench_conv_direct.c) share: a
 * monotonic clock, the median of timed reps and 64-byte aligned random operands. */
#ifndef DP_BENCH_UTIL_H
#define DP_BENCH_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "dptrain/ops.h"

static inline double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static inline int cmp_d(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts v. */
static inline double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* n floats uniform in [lo, hi) from r, 64-byte aligned; exits on no memory. */
static inline float *filled(long n, dp_rng *r, float lo, float hi)
{
    float *p = aligned_alloc(64, ((size_t)n * sizeof(float) + 63) / 64 * 64);
    if (!p) {
        fprintf(stderr, "benchmark: out of memory (%ld floats)\n", n);
        exit(1);
    }
    dp_init_uniform(r, p, (size_t)n, lo, hi);
    return p;
}

#endif
