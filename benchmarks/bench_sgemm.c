/* Single-thread OpenBLAS sgemm throughput: the physical bound that
 * compare_torch.sh divides model FLOPs by. Prints a table (or CSV with --csv)
 * of GFLOP/s for square sizes; the last line `peak_gflops=X` is the best
 * median, which scripts read. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int csv = argc > 1 && !strcmp(argv[1], "--csv");
    openblas_set_num_threads(1);
    int sizes[] = {256, 512, 1024, 2048};
    double peak = 0;
    printf(csv ? "n,median_gflops\n" : "%6s %14s\n", "n", "GFLOP/s");
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int n = sizes[s];
        float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n), *c = malloc(sizeof(float) * n * n);
        for (long i = 0; i < (long)n * n; i++) a[i] = b[i] = (float)(i % 7) * 0.1f, c[i] = 0;
        double flop = 2.0 * n * n * n, t[9];
        int reps = 9;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
        for (int r = 0; r < reps; r++) {
            double t0 = now();
            int inner = n <= 512 ? 8 : 1;
            for (int k = 0; k < inner; k++)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
            t[r] = flop * inner / (now() - t0) / 1e9;
        }
        qsort(t, reps, sizeof t[0], cmp);
        if (t[reps / 2] > peak) peak = t[reps / 2];
        printf(csv ? "%d,%.1f\n" : "%6d %14.1f\n", n, t[reps / 2]);
        free(a), free(b), free(c);
    }
    printf("peak_gflops=%.1f\n", peak);
    return 0;
}
