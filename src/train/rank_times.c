/* --rank-times: per-rank compute and wait, gathered in batches (see dptrain/rank_times.h). */
#include "dptrain/rank_times.h"

#include <stdlib.h>
#include <string.h>

#define RANK_TIMES_CAP 1024 /* steps per gather: 16 KiB a rank */

dp_status dp_rank_times_init(dp_rank_times *t, int mode, int rank, int size)
{
    memset(t, 0, sizeof *t);
    t->mode = mode;
    t->rank = rank;
    t->size = size;
    if (!mode) return DP_OK;
    t->cap = RANK_TIMES_CAP;
    t->mine = malloc((size_t)t->cap * 2 * sizeof *t->mine);
    int ok = t->mine != NULL;
    if (rank == 0) {
        size_t p = (size_t)size;
        t->all = malloc(p * (size_t)t->cap * 2 * sizeof *t->all);
        t->slowest = calloc(2 * p, sizeof *t->slowest);
        t->sum = calloc(4 * p, sizeof *t->sum);
        t->line_cap = 256 + p * 3 * 24; /* three arrays of numbers of at most ~20 characters */
        t->line = malloc(t->line_cap);
        t->sorted = malloc(p * sizeof *t->sorted);
        ok = ok && t->all && t->slowest && t->sum && t->line && t->sorted;
        if (ok) t->ep_slowest = t->slowest + p, t->ep_sum = t->sum + 2 * p;
    }
    if (!ok) {
        dp_rank_times_free(t);
        return dp_errorf(DP_ERR_NOMEM, "--rank-times: no memory for %d ranks' times", size);
    }
    return DP_OK;
}

void dp_rank_times_free(dp_rank_times *t)
{
    free(t->mine);
    free(t->all);
    free(t->slowest);
    free(t->sum);
    free(t->line);
    free(t->sorted);
    memset(t, 0, sizeof *t);
}

/* Appends `v` as a JSON array (of n values at stride, or of longs when l) at t->line + *at. */
static void put_array(dp_rank_times *t, size_t *at, const char *key, const double *v, const long *l, size_t stride)
{
    *at += (size_t)snprintf(t->line + *at, t->line_cap - *at, ",\"%s\":[", key);
    for (int r = 0; r < t->size && *at < t->line_cap; r++) {
        if (l) *at += (size_t)snprintf(t->line + *at, t->line_cap - *at, "%s%ld", r ? "," : "", l[r]);
        else *at += (size_t)snprintf(t->line + *at, t->line_cap - *at, "%s%.6g", r ? "," : "", v[(size_t)r * stride]);
    }
    if (*at < t->line_cap) *at += (size_t)snprintf(t->line + *at, t->line_cap - *at, "]");
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of n sorted values. */
static double median(const double *v, size_t n) { return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]); }

dp_status dp_rank_times_flush(dp_rank_times *t, dp_sync *s, dp_report *rep, unsigned epoch, int epoch_end)
{
    if (!t->mode) return DP_OK;
    dp_status rc = dp_sync_gather0(s, t->mine, (size_t)t->cap * 2 * sizeof *t->mine, t->all);
    if (rc != DP_OK || t->rank != 0) {
        t->n = 0;
        return rc;
    }
    size_t p = (size_t)t->size, cap = (size_t)t->cap;
    double step_c[2 * 64]; /* one step's compute and wait per rank, for its record (up to 64 ranks) */
    for (long i = 0; i < t->n; i++) {
        int slow = 0;
        for (size_t r = 0; r < p; r++) {
            const double *x = t->all + (r * cap + (size_t)i) * 2;
            if (x[0] > t->all[((size_t)slow * cap + (size_t)i) * 2]) slow = (int)r;
            t->ep_sum[2 * r] += x[0];
            t->ep_sum[2 * r + 1] += x[1];
            if (r < 64) step_c[2 * r] = x[0], step_c[2 * r + 1] = x[1];
            t->sorted[r] = x[0];
        }
        qsort(t->sorted, p, sizeof *t->sorted, cmp_double); /* at a flush, not in a step */
        t->ep_lost += t->sorted[p - 1] - median(t->sorted, p);
        t->ep_slowest[slow]++;
        t->ep_steps++;
        if (t->mode == DP_RANK_TIMES_STEP && p <= 64) {
            size_t at = (size_t)snprintf(t->line, t->line_cap, "{\"kind\":\"ranks\",\"epoch\":%u,\"step\":%ld,"
                                         "\"slowest\":%d", epoch + 1, t->first + i, slow);
            put_array(t, &at, "compute_s", step_c, NULL, 2);
            put_array(t, &at, "wait_s", step_c + 1, NULL, 2);
            dp_report_json(rep, "%s}", t->line);
        }
    }
    t->n = 0;
    if (!epoch_end || !t->ep_steps) return DP_OK;
    double mean[2 * 64 * 2];
    size_t at = (size_t)snprintf(t->line, t->line_cap, "{\"kind\":\"ranks_epoch\",\"epoch\":%u,\"steps\":%ld",
                                 epoch + 1, t->ep_steps);
    if (p <= 64) {
        for (size_t r = 0; r < 2 * p; r++) mean[r] = t->ep_sum[r] / (double)t->ep_steps;
        put_array(t, &at, "compute_s", mean, NULL, 2);
        put_array(t, &at, "wait_s", mean + 1, NULL, 2);
    }
    put_array(t, &at, "slowest_steps", NULL, t->ep_slowest, 1);
    dp_report_json(rep, "%s,\"lost_s\":%.6g}", t->line, t->ep_lost / (double)t->ep_steps);
    for (size_t r = 0; r < p; r++) {
        t->slowest[r] += t->ep_slowest[r];
        t->sum[2 * r] += t->ep_sum[2 * r];
        t->sum[2 * r + 1] += t->ep_sum[2 * r + 1];
        t->ep_slowest[r] = 0;
        t->ep_sum[2 * r] = t->ep_sum[2 * r + 1] = 0;
    }
    t->steps += t->ep_steps;
    t->lost += t->ep_lost;
    t->ep_steps = 0;
    t->ep_lost = 0;
    return DP_OK;
}

void dp_rank_times_print(const dp_rank_times *t, FILE *f)
{
    if (!t->mode || t->rank != 0 || !t->steps) return;
    int p = t->size, slow = 0;
    for (int r = 1; r < p; r++)
        if (t->slowest[r] > t->slowest[slow]) slow = r;
    double steps = (double)t->steps, *c = t->sorted;
    for (int r = 0; r < p; r++) c[r] = t->sum[2 * r] / steps;
    qsort(c, (size_t)p, sizeof *c, cmp_double);
    fprintf(f, "rank times: slowest rank %d in %.0f%% of %ld steps, mean compute %.2f ms vs median %.2f ms; "
            "stragglers cost %.2f ms a step (slowest compute less the median)\n", slow,
            100.0 * (double)t->slowest[slow] / steps, t->steps, 1e3 * t->sum[2 * slow] / steps,
            1e3 * median(c, (size_t)p), 1e3 * t->lost / steps);
    for (int r = 0; r < p && r < 64; r++)
        fprintf(f, "  rank %d: slowest in %5.1f%% of steps, compute %.2f ms, wait %.2f ms per step\n", r,
                100.0 * (double)t->slowest[r] / steps, 1e3 * t->sum[2 * r] / steps, 1e3 * t->sum[2 * r + 1] / steps);
}
