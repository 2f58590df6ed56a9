/* One rank's share of an image split, loaded into memory from shards.
 *
 *   manifest ─▶ split's shards in global order ─▶ cut to `limit`
 *            ─▶ plan: shard i → rank i mod nranks   (shards >= ranks)
 *                     or rank r → records [lo_r, hi_r) (shards <  ranks)
 *            ─▶ stream each touched shard to its end (so its crc is checked),
 *               copying the planned records
 *
 * Pixels stay uint8 (Fashion-MNIST train is 47 MB) and are converted to float
 * per batch by the trainer, through one byte -> float table per channel made
 * from the manifest's statistics. Vector records load as floats. */
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/fsutil.h"
#include "data/shard_format.h"

typedef struct shard_plan {
    const dp_manifest_shard *ms;
    uint64_t start;  /* global index of the shard's first record */
    uint64_t lo, hi; /* global records this rank takes from it; lo == hi: skip */
} shard_plan;

/* Near-equal contiguous range of rank r over n records (early ranks longer). */
static void rank_range(uint64_t n, int r, int nranks, uint64_t *lo, uint64_t *hi)
{
    uint64_t base = n / (uint64_t)nranks, rem = n % (uint64_t)nranks, ur = (uint64_t)r;
    *lo = ur * base + (ur < rem ? ur : rem);
    *hi = *lo + base + (ur < rem);
}

/* Makes room for one more image; the arrays grow with the records that
 * really arrive, so a manifest promising billions allocates nothing for them. */
static dp_status reserve(dp_image_set *out, long filled, size_t px, size_t *cap, uint64_t limit)
{
    if ((size_t)filled < *cap)
        return DP_OK;
    size_t ncap = *cap ? 2 * *cap : 1024;
    if (ncap > limit)
        ncap = (size_t)limit;
    void *p = NULL;
    if (out->values) {
        if ((p = realloc(out->values, ncap * px * sizeof(float) + 1)))
            out->values = p;
    } else if ((p = realloc(out->pixels, ncap * px + 1))) {
        out->pixels = p;
    }
    int32_t *l = realloc(out->labels, ncap * sizeof *l + 1);
    if (l)
        out->labels = l;
    if (!p || !l)
        return dp_errorf(DP_ERR_NOMEM, "image set: cannot allocate %zu images", ncap);
    *cap = ncap;
    return DP_OK;
}

/* Streams one shard to its end, copying records [p->lo, p->hi) to the set. */
static dp_status load_shard(const char *dir, const dp_manifest *m, const shard_plan *p,
                            dp_image_set *out, long *filled, size_t *cap, uint64_t limit)
{
    char path[4096];
    dp_shard_reader *r = NULL;
    dp_status rc = dp_manifest_open_shard(dir, m, p->ms, path, sizeof path, &r);
    if (rc != DP_OK)
        return rc;
    size_t px = (size_t)out->c * out->h * out->w;
    for (uint64_t g = p->start;; g++) {
        const void *rec;
        size_t len;
        int eof;
        if ((rc = dp_shard_reader_next(r, &rec, &len, &eof)) != DP_OK || eof)
            break;
        if (g < p->lo || g >= p->hi)
            continue;
        const uint8_t *b = rec;
        uint32_t label = (uint32_t)b[0] | (uint32_t)b[1] << 8;
        if (label >= (uint32_t)out->classes) {
            rc = dp_errorf(DP_ERR_FORMAT, "%s: record %" PRIu64 ": label %" PRIu32 " outside [0, %d)",
                           path, g - p->start, label, out->classes);
            break;
        }
        if ((size_t)*filled >= limit) { /* cannot happen: the plan counts these records */
            rc = dp_errorf(DP_ERR_FORMAT, "%s: record %" PRIu64 ": more records than planned", path, g - p->start);
            break;
        }
        if ((rc = reserve(out, *filled, px, cap, limit)) != DP_OK)
            break;
        out->labels[*filled] = (int32_t)label;
        if (out->values) {
            float *v = out->values + (size_t)*filled * px;
            for (size_t j = 0; j < px; j++) {
                uint32_t u = dp_get_u32(b + 4 + 4 * j);
                memcpy(&v[j], &u, sizeof u);
            }
        } else {
            memcpy(out->pixels + (size_t)*filled * px, b + 2, px);
        }
        (*filled)++;
    }
    dp_shard_reader_close(r);
    return rc;
}

/* dp_image_set_load on the loaded manifest m, with room for a plan of every shard;
 * the caller frees plan and m, and out on an error. */
static dp_status load_split(const char *dir, const char *split, int rank, int nranks, long limit,
                            const dp_manifest *m, shard_plan *plan, dp_image_set *out)
{
    int vec = m->schema.kind == DP_SCHEMA_VECTOR_F32;
    if (m->schema.kind != DP_SCHEMA_IMAGE_U8 && !vec)
        return dp_errorf(DP_ERR_FORMAT, "%s/manifest.txt: dataset '%s' has schema %" PRIu32 ", not images or vectors",
                         dir, m->name, m->schema.kind);
    int np = 0;
    uint64_t total = 0;
    for (int i = 0; i < m->nshards; i++) {
        if (strcmp(m->shards[i].split, split) != 0)
            continue;
        plan[np].ms = &m->shards[i];
        plan[np++].start = total;
        if (m->shards[i].records > (uint64_t)LONG_MAX - total) /* before the sum can wrap */
            return dp_errorf(DP_ERR_FORMAT, "%s/manifest.txt: split '%s' holds more than %ld records",
                             dir, split, LONG_MAX);
        total += m->shards[i].records;
    }
    if (np == 0)
        return dp_errorf(DP_ERR_ARG, "%s/manifest.txt: no shards for split '%s'", dir, split);

    /* `limit` cuts the split first; shards wholly past it drop out of the plan. */
    uint64_t keep = limit > 0 && (uint64_t)limit < total ? (uint64_t)limit : total;
    int nkeep = 0;
    while (nkeep < np && (plan[nkeep].start < keep || nkeep == 0))
        nkeep++;
    uint64_t rlo = 0, rhi = 0;
    if (nkeep < nranks)
        rank_range(keep, rank, nranks, &rlo, &rhi);
    uint64_t n = 0;
    for (int j = 0; j < nkeep; j++) {
        shard_plan *p = &plan[j];
        uint64_t end = p->start + p->ms->records < keep ? p->start + p->ms->records : keep;
        if (nkeep >= nranks) {
            p->lo = j % nranks == rank ? p->start : end;
            p->hi = end;
        } else {
            p->lo = rlo > p->start ? rlo : p->start;
            p->hi = rhi < end ? rhi : end;
        }
        if (p->hi < p->lo)
            p->hi = p->lo;
        n += p->hi - p->lo;
    }

    out->c = (int)m->schema.image.channels;
    out->h = (int)m->schema.image.height;
    out->w = (int)m->schema.image.width;
    out->classes = (int)m->schema.image.classes;
    out->split_total = (long)keep;
    size_t px = (size_t)out->c * out->h * out->w;
    if (n > SIZE_MAX / sizeof(float) / px)
        return dp_errorf(DP_ERR_NOMEM, "image set: %" PRIu64 " images do not fit in memory", n);
    /* One byte more so that an empty share still gets distinct, freeable buffers. */
    if (vec)
        out->values = malloc(1);
    else
        out->pixels = malloc(1);
    out->labels = malloc(1);
    out->mean = malloc((size_t)out->c * sizeof *out->mean);
    out->std = malloc((size_t)out->c * sizeof *out->std);
    if (!(out->pixels || out->values) || !out->labels || !out->mean || !out->std)
        return dp_errorf(DP_ERR_NOMEM, "image set: out of memory");
    for (int ch = 0; ch < out->c; ch++) {
        out->mean[ch] = m->nstats ? (float)m->mean[ch] : vec ? 0.0f : DP_IMAGE_DEFAULT_MEAN;
        out->std[ch] = m->nstats ? (float)m->std[ch] : vec ? 1.0f : DP_IMAGE_DEFAULT_STD;
    }
    long filled = 0;
    size_t cap = 0;
    dp_status rc = DP_OK;
    for (int j = 0; j < nkeep && rc == DP_OK; j++)
        if (plan[j].hi > plan[j].lo)
            rc = load_shard(dir, m, &plan[j], out, &filled, &cap, n);
    out->n = filled;
    return rc;
}

dp_status dp_image_set_load(const char *dir, const char *split, int rank, int nranks,
                            long limit, dp_image_set *out)
{
    memset(out, 0, sizeof *out);
    if (nranks < 1 || rank < 0 || rank >= nranks)
        return dp_errorf(DP_ERR_ARG, "image set: rank %d of %d", rank, nranks);
    dp_manifest *m = NULL;
    dp_status rc = dp_manifest_load(dir, &m);
    if (rc != DP_OK)
        return rc;
    shard_plan *plan = calloc((size_t)m->nshards, sizeof *plan);
    rc = plan ? load_split(dir, split, rank, nranks, limit, m, plan, out)
              : dp_errorf(DP_ERR_NOMEM, "image set: out of memory");
    free(plan);
    dp_manifest_free(m);
    if (rc != DP_OK)
        dp_image_set_free(out);
    return rc;
}

void dp_image_set_free(dp_image_set *s)
{
    if (!s)
        return;
    free(s->pixels);
    free(s->values);
    free(s->labels);
    free(s->mean);
    free(s->std);
    memset(s, 0, sizeof *s);
}

dp_image_set dp_image_set_view(const dp_image_set *s, long first, long n)
{
    dp_image_set v = *s;
    size_t feat = (size_t)s->c * (size_t)s->h * (size_t)s->w;
    v.n = n;
    if (s->pixels)
        v.pixels = s->pixels + (size_t)first * feat;
    if (s->values)
        v.values = s->values + (size_t)first * feat;
    v.labels = s->labels + first;
    return v;
}

size_t dp_image_norm_size(const dp_image_set *s) { return (size_t)s->c * (s->values ? 2 : 256); }

static void fill_lut(float *lut, float mean, float std)
{
    for (int v = 0; v < 256; v++) lut[v] = ((float)v / 255.0f - mean) / std;
}

void dp_image_norm_fill(const dp_image_set *s, float *lut)
{
    if (s->values) {
        memcpy(lut, s->mean, (size_t)s->c * sizeof *lut);
        memcpy(lut + s->c, s->std, (size_t)s->c * sizeof *lut);
        return;
    }
    for (int ch = 0; ch < s->c; ch++) fill_lut(lut + (size_t)ch * 256, s->mean[ch], s->std[ch]);
}

void dp_image_norm_lut(float lut[256]) { fill_lut(lut, DP_IMAGE_DEFAULT_MEAN, DP_IMAGE_DEFAULT_STD); }

void dp_image_set_batch(const dp_image_set *s, const float *lut, const int32_t *idx, long first, long bs, float *x,
                        int32_t *y)
{
    const size_t plane = (size_t)s->h * (size_t)s->w, feat = (size_t)s->c * plane;
    for (long i = 0; i < bs; i++) {
        long k = idx ? idx[first + i] : first + i;
        float *dst = x + (size_t)i * feat;
        if (s->values) {
            const float *v = s->values + (size_t)k * feat, *mean = lut, *std = lut + s->c;
            for (size_t j = 0; j < feat; j++) dst[j] = (v[j] - mean[j]) / std[j];
        } else {
            const uint8_t *px = s->pixels + (size_t)k * feat;
            for (int ch = 0; ch < s->c; ch++) {
                const float *t = lut + (size_t)ch * 256;
                for (size_t j = 0; j < plane; j++) dst[(size_t)ch * plane + j] = t[px[(size_t)ch * plane + j]];
            }
        }
        y[i] = s->labels[k];
    }
}
