/* TF-IDF document vectors and spherical k-means: the clustering behind the
 * semantic docids (docids.c) and the k-means member split (prepare.c).
 *
 * TF-IDF follows scikit-learn's TfidfVectorizer(smooth_idf=True, norm='l2'):
 * tf = raw count of a token over all of the document's examples,
 * idf = ln((1 + ndocs) / (1 + df)) + 1.
 *
 * k-means is spherical (Dhillon & Modha 2001): rows and centroids are unit
 * vectors and a row joins the centroid of largest dot product. Steps:
 *
 *   compact   the group's distinct feature ids -> 0..U-1 (the centroids are
 *             dense over U, not over dim: a group of 500 rows touches a few
 *             thousand of the 2^18 buckets)
 *   seed      k-means++ (Arthur & Vassilvitskii 2007): D^2 sampling with
 *             D = |x - c| from a dp_rng stream of `seed`; when the remaining
 *             rows all coincide with a chosen seed (fewer than k distinct
 *             rows), the rows are dealt round-robin instead
 *   repeat    assign (ties: the lowest cluster) -> refill empty clusters with
 *             the worst-fitting member of the largest -> stop if nothing
 *             moved -> centroids = normalised sums
 *
 * The group is also kept by column (feature -> its rows), and centroids
 * feature-major, ct[u * k + j]: the assignment and the update then stream
 * through the centroids feature by feature and scatter into the small
 * [rows, k] dot matrix, instead of one cache miss into a large centroid
 * table per nonzero; a seed's dots visit only the columns of its own
 * features. No threads and a fixed summation order: the result is a function
 * of (x, rows, k, iters, seed) alone. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/dsi.h"
#include "dptrain/rng.h"

void dp_sparse_rows_free(dp_sparse_rows *x)
{
    if (!x) return;
    free(x->off);
    free(x->idx);
    free(x->val);
    memset(x, 0, sizeof *x);
}

static int cmp_u32(const void *a, const void *b)
{
    const uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

dp_status dp_dsi_tfidf(const dp_dsi_set *s, int ndocs, uint32_t dim, dp_sparse_rows *out)
{
    memset(out, 0, sizeof *out);
    if (!s || ndocs < 1 || dim < 1) return dp_errorf(DP_ERR_ARG, "tfidf: %d documents, dim %u", ndocs, dim);
    dp_status rc = DP_OK;
    int64_t *start = calloc((size_t)ndocs + 1, sizeof *start); /* doc d's tokens: tok[start[d] .. start[d+1]) */
    int64_t *fill = NULL;
    uint32_t *tok = NULL, *df = calloc(dim, sizeof *df);
    if (!start || !df) goto nomem;
    for (long i = 0; i < s->n; i++) {
        const int d = s->doc[i];
        if (d < 0 || d >= ndocs) {
            rc = dp_errorf(DP_ERR_ARG, "tfidf: example %ld names document %d, outside [0, %d)", i, d, ndocs);
            goto err;
        }
        start[d + 1] += s->off[i + 1] - s->off[i];
    }
    for (int d = 0; d < ndocs; d++) start[d + 1] += start[d];
    const int64_t total = start[ndocs];
    tok = malloc((size_t)(total ? total : 1) * sizeof *tok);
    fill = malloc((size_t)ndocs * sizeof *fill);
    if (!tok || !fill) goto nomem;
    memcpy(fill, start, (size_t)ndocs * sizeof *fill);
    for (long i = 0; i < s->n; i++)
        for (int64_t k = s->off[i]; k < s->off[i + 1]; k++) {
            if (s->tok[k] < 0 || (uint32_t)s->tok[k] >= dim) {
                rc = dp_errorf(DP_ERR_ARG, "tfidf: example %ld has token %d, outside [0, %u)", i, (int)s->tok[k],
                               dim);
                goto err;
            }
            tok[fill[s->doc[i]]++] = (uint32_t)s->tok[k];
        }
    /* pass 1: sort each document's tokens, count distinct ones and df */
    int64_t nnz = 0;
    for (int d = 0; d < ndocs; d++) {
        const int64_t lo = start[d], hi = start[d + 1];
        qsort(tok + lo, (size_t)(hi - lo), sizeof *tok, cmp_u32);
        for (int64_t k = lo; k < hi; k++)
            if (k == lo || tok[k] != tok[k - 1]) {
                df[tok[k]]++;
                nnz++;
            }
    }
    out->n = ndocs;
    out->dim = dim;
    out->off = malloc(((size_t)ndocs + 1) * sizeof *out->off);
    out->idx = malloc((size_t)(nnz ? nnz : 1) * sizeof *out->idx);
    out->val = malloc((size_t)(nnz ? nnz : 1) * sizeof *out->val);
    if (!out->off || !out->idx || !out->val) goto nomem;
    /* pass 2: tf * idf, L2-normalised */
    int64_t o = 0;
    for (int d = 0; d < ndocs; d++) {
        out->off[d] = o;
        const int64_t lo = start[d], hi = start[d + 1], o0 = o;
        double ss = 0.0;
        for (int64_t k = lo; k < hi;) {
            int64_t e = k;
            while (e < hi && tok[e] == tok[k]) e++;
            const double v = (double)(e - k) * (log((1.0 + ndocs) / (1.0 + df[tok[k]])) + 1.0);
            out->idx[o] = tok[k];
            out->val[o++] = (float)v;
            ss += v * v;
            k = e;
        }
        const double inv = ss > 0 ? 1.0 / sqrt(ss) : 0.0;
        for (int64_t q = o0; q < o; q++) out->val[q] = (float)(out->val[q] * inv);
    }
    out->off[ndocs] = o;
    goto done;
nomem:
    rc = dp_errorf(DP_ERR_NOMEM, "tfidf: out of memory (%d documents)", ndocs);
err:
    dp_sparse_rows_free(out);
done:
    free(start);
    free(fill);
    free(tok);
    free(df);
    return rc;
}

/* ------------------------------------------------------------------ k-means */

/* The group's rows with feature ids compacted to 0..U-1, by row and by column. */
typedef struct km_local {
    int n, U;
    int64_t *off;   /* [n + 1] rows */
    int32_t *idx;   /* local feature ids */
    float *val;
    int64_t *coff;  /* [U + 1] columns */
    int32_t *crow;  /* row of each column entry (ascending within a column) */
    float *cval;
    double *norm2;  /* [n] squared row norms */
} km_local;

static void km_local_free(km_local *l)
{
    free(l->off);
    free(l->idx);
    free(l->val);
    free(l->coff);
    free(l->crow);
    free(l->cval);
    free(l->norm2);
}

/* local ids: a dense map when dim is small next to the group, else binary
 * search in the sorted distinct ids; u holds the global ids on entry */
static int km_compact(km_local *l, const uint32_t *u, int64_t nnz, uint32_t dim)
{
    if ((uint64_t)dim <= 8 * (uint64_t)nnz + 4096) {
        int32_t *map = calloc(dim, sizeof *map);
        if (!map) return 0;
        for (int64_t k = 0; k < nnz; k++) map[u[k]] = 1;
        int U = 0;
        for (uint32_t f = 0; f < dim; f++)
            if (map[f]) map[f] = ++U; /* rank + 1 */
        for (int64_t k = 0; k < nnz; k++) l->idx[k] = map[u[k]] - 1;
        l->U = U;
        free(map);
        return 1;
    }
    uint32_t *sorted = malloc((size_t)(nnz ? nnz : 1) * sizeof *sorted);
    if (!sorted) return 0;
    memcpy(sorted, u, (size_t)nnz * sizeof *u);
    qsort(sorted, (size_t)nnz, sizeof *sorted, cmp_u32);
    int U = 0;
    for (int64_t k = 0; k < nnz; k++)
        if (k == 0 || sorted[k] != sorted[k - 1]) sorted[U++] = sorted[k];
    for (int64_t k = 0; k < nnz; k++)
        l->idx[k] = (int32_t)((uint32_t *)bsearch(&u[k], sorted, (size_t)U, sizeof *sorted, cmp_u32) - sorted);
    l->U = U;
    free(sorted);
    return 1;
}

static int km_local_build(km_local *l, const dp_sparse_rows *x, const int *rows, int n)
{
    memset(l, 0, sizeof *l);
    l->n = n;
    int64_t nnz = 0;
    for (int i = 0; i < n; i++) nnz += x->off[rows[i] + 1] - x->off[rows[i]];
    const size_t nz = (size_t)(nnz ? nnz : 1);
    l->off = malloc(((size_t)n + 1) * sizeof *l->off);
    l->idx = malloc(nz * sizeof *l->idx);
    l->val = malloc(nz * sizeof *l->val);
    l->crow = malloc(nz * sizeof *l->crow);
    l->cval = malloc(nz * sizeof *l->cval);
    l->norm2 = malloc((size_t)n * sizeof *l->norm2);
    uint32_t *u = malloc(nz * sizeof *u);
    int ok = l->off && l->idx && l->val && l->crow && l->cval && l->norm2 && u;
    if (ok) {
        int64_t o = 0;
        for (int i = 0; i < n; i++) {
            l->off[i] = o;
            double s = 0.0;
            for (int64_t k = x->off[rows[i]]; k < x->off[rows[i] + 1]; k++) {
                u[o] = x->idx[k];
                l->val[o++] = x->val[k];
                s += (double)x->val[k] * x->val[k];
            }
            l->norm2[i] = s;
        }
        l->off[n] = o;
        ok = km_compact(l, u, nnz, x->dim);
    }
    free(u);
    if (ok) ok = (l->coff = calloc((size_t)l->U + 1, sizeof *l->coff)) != NULL;
    if (!ok) return 0;
    /* transpose: rows are visited in order, so each column's rows ascend */
    for (int64_t k = 0; k < nnz; k++) l->coff[l->idx[k] + 1]++;
    for (int f = 0; f < l->U; f++) l->coff[f + 1] += l->coff[f];
    int64_t *fill = malloc(((size_t)l->U + 1) * sizeof *fill);
    if (!fill) return 0;
    memcpy(fill, l->coff, ((size_t)l->U + 1) * sizeof *fill);
    for (int i = 0; i < n; i++)
        for (int64_t k = l->off[i]; k < l->off[i + 1]; k++) {
            const int64_t q = fill[l->idx[k]]++;
            l->crow[q] = i;
            l->cval[q] = l->val[k];
        }
    free(fill);
    return 1;
}

/* dot [n, k] = every row . every centroid (ct [U, k]), column by column */
static void km_dots(float *restrict dot, const km_local *l, const float *restrict ct, int k)
{
    memset(dot, 0, (size_t)l->n * k * sizeof *dot);
    for (int f = 0; f < l->U; f++) {
        const float *restrict c = ct + (long)f * k;
        for (int64_t q = l->coff[f]; q < l->coff[f + 1]; q++) {
            float *restrict d = dot + (long)l->crow[q] * k;
            const float v = l->cval[q];
            for (int j = 0; j < k; j++) d[j] += v * c[j];
        }
    }
}

/* centroid j := row p / |row p| (zero stays zero); cn2[j] its squared norm */
static void km_set_centroid(float *ct, double *cn2, const km_local *l, int p, int j, int k)
{
    for (int u = 0; u < l->U; u++) ct[(long)u * k + j] = 0.0f;
    const double inv = l->norm2[p] > 0 ? 1.0 / sqrt(l->norm2[p]) : 0.0;
    for (int64_t q = l->off[p]; q < l->off[p + 1]; q++) ct[(long)l->idx[q] * k + j] = (float)(l->val[q] * inv);
    cn2[j] = l->norm2[p] > 0 ? 1.0 : 0.0;
}

/* d [n] = every row . (row p / |row p|): only the columns of p's features */
static void km_dots_row(double *d, const km_local *l, int p)
{
    memset(d, 0, (size_t)l->n * sizeof *d);
    if (l->norm2[p] <= 0) return;
    const double inv = 1.0 / sqrt(l->norm2[p]);
    for (int64_t q = l->off[p]; q < l->off[p + 1]; q++) {
        const int f = l->idx[q];
        const double w = l->val[q] * inv;
        for (int64_t e = l->coff[f]; e < l->coff[f + 1]; e++) d[l->crow[e]] += w * l->cval[e];
    }
}

/* Squared distances below this count as zero: a row and its own normalised
 * copy differ by float rounding only. */
#define KM_SAME 1e-6

/* k-means++ seeding; returns the number of centroids found (< k: not enough
 * distinct rows). mind, d: n doubles of scratch. */
static int km_seed(float *ct, double *cn2, double *mind, double *d, const km_local *l, int k, dp_rng *r)
{
    const int n = l->n;
    for (int i = 0; i < n; i++) mind[i] = INFINITY;
    int pick = (int)dp_rng_below(r, (uint64_t)n);
    for (int j = 0;; j++) {
        km_set_centroid(ct, cn2, l, pick, j, k);
        km_dots_row(d, l, pick);
        for (int i = 0; i < n; i++) {
            double e = l->norm2[i] + cn2[j] - 2.0 * d[i];
            if (e <= KM_SAME) e = 0.0;
            if (e < mind[i]) mind[i] = e;
        }
        if (j + 1 == k) return k;
        double total = 0.0;
        for (int i = 0; i < n; i++) total += mind[i];
        if (total <= 0.0) return j + 1;
        const double t = (double)dp_rng_uniform(r) * total;
        double acc = 0.0;
        for (int i = 0; i < n; i++) {
            if (mind[i] <= 0.0) continue;
            pick = i; /* the last positive row if rounding leaves t beyond the sum */
            acc += mind[i];
            if (acc > t) break;
        }
    }
}

/* centroids := normalised sums of their members (an all-zero sum keeps the
 * old centroid); sum: U * k floats, ss: 2 k doubles of scratch */
static void km_update(float *ct, double *cn2, float *sum, double *ss, const km_local *l, const int *assign, int k)
{
    double *inv = ss + k;
    memset(ss, 0, (size_t)k * sizeof *ss);
    for (int f = 0; f < l->U; f++) {
        float *restrict s = sum + (long)f * k;
        for (int j = 0; j < k; j++) s[j] = 0.0f;
        for (int64_t q = l->coff[f]; q < l->coff[f + 1]; q++) s[assign[l->crow[q]]] += l->cval[q];
        for (int j = 0; j < k; j++) ss[j] += (double)s[j] * s[j];
    }
    for (int j = 0; j < k; j++) {
        inv[j] = ss[j] > 0.0 ? 1.0 / sqrt(ss[j]) : 0.0;
        if (ss[j] > 0.0) cn2[j] = 1.0;
    }
    for (long f = 0; f < l->U; f++)
        for (int j = 0; j < k; j++)
            if (ss[j] > 0.0) ct[f * k + j] = (float)(sum[f * k + j] * inv[j]);
}

dp_status dp_kmeans(const dp_sparse_rows *x, const int *rows, int nrows, int k, int iters, uint64_t seed, int *assign)
{
    if (!x || nrows < 0 || k < 1 || iters < 0 || (nrows > 0 && (!rows || !assign)))
        return dp_errorf(DP_ERR_ARG, "kmeans: %d rows, k %d, %d iterations", nrows, k, iters);
    for (int i = 0; i < nrows; i++)
        if (rows[i] < 0 || rows[i] >= x->n)
            return dp_errorf(DP_ERR_ARG, "kmeans: rows[%d] = %d outside [0, %d)", i, rows[i], x->n);
    if (nrows <= k || k == 1) { /* every row its own cluster (or all in one) */
        for (int i = 0; i < nrows; i++) assign[i] = k == 1 ? 0 : i;
        return DP_OK;
    }
    dp_status rc = DP_OK;
    km_local l;
    float *ct = NULL, *sum = NULL, *dot = NULL;
    double *cn2 = NULL, *best = NULL, *tmp = NULL, *ss = NULL;
    int *prev = NULL, *count = NULL;
    if (!km_local_build(&l, x, rows, nrows)) goto nomem;
    const long Uk = (long)(l.U ? l.U : 1) * k;
    ct = malloc((size_t)Uk * sizeof *ct);
    sum = malloc((size_t)Uk * sizeof *sum);
    dot = malloc((size_t)nrows * k * sizeof *dot);
    cn2 = malloc((size_t)k * sizeof *cn2);
    ss = malloc(2 * (size_t)k * sizeof *ss);
    best = malloc((size_t)nrows * sizeof *best);
    tmp = malloc((size_t)nrows * sizeof *tmp);
    prev = malloc((size_t)nrows * sizeof *prev);
    count = malloc((size_t)k * sizeof *count);
    if (!ct || !sum || !dot || !cn2 || !ss || !best || !tmp || !prev || !count) goto nomem;
    dp_rng r;
    dp_rng_seed(&r, seed, DP_STREAM_USER, 0);
    if (km_seed(ct, cn2, best, tmp, &l, k, &r) < k) { /* fewer than k distinct rows: deal them out */
        for (int i = 0; i < nrows; i++) assign[i] = i % k;
        goto done;
    }
    for (int i = 0; i < nrows; i++) prev[i] = -1;
    for (int it = 0;; it++) {
        /* assign (ties: the lowest cluster) */
        km_dots(dot, &l, ct, k);
        memset(count, 0, (size_t)k * sizeof *count);
        for (int i = 0; i < nrows; i++) {
            const float *d = dot + (long)i * k;
            int bj = 0;
            for (int j = 1; j < k; j++)
                if (d[j] > d[bj]) bj = j;
            assign[i] = bj;
            best[i] = d[bj];
            count[bj]++;
        }
        /* refill each empty cluster with the worst-fitting member of the largest */
        for (int j = 0; j < k; j++) {
            if (count[j]) continue;
            int big = 0;
            for (int q = 1; q < k; q++)
                if (count[q] > count[big]) big = q;
            int worst = -1;
            for (int i = 0; i < nrows; i++)
                if (assign[i] == big && (worst < 0 || best[i] < best[worst])) worst = i;
            assign[worst] = j;
            best[worst] = sqrt(l.norm2[worst]);
            count[big]--;
            count[j]++;
            km_set_centroid(ct, cn2, &l, worst, j, k);
        }
        int moved = 0;
        for (int i = 0; i < nrows; i++) {
            moved += assign[i] != prev[i];
            prev[i] = assign[i];
        }
        if (!moved || it >= iters) break;
        km_update(ct, cn2, sum, ss, &l, assign, k);
    }
    goto done;
nomem:
    rc = dp_errorf(DP_ERR_NOMEM, "kmeans: out of memory (%d rows, k %d)", nrows, k);
done:
    km_local_free(&l);
    free(ct);
    free(sum);
    free(dot);
    free(cn2);
    free(ss);
    free(best);
    free(tmp);
    free(prev);
    free(count);
    return rc;
}
