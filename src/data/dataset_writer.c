/* The dataset writer every importer goes through: splits of records cut into
 * contiguous shards, per-channel statistics of the train split, class names,
 * progress, and manifest.txt as the commit point.
 *
 *   open ── refuses a directory holding another dataset (dp_dataset_dir), makes <out>.tmp.<pid>
 *   split ─ add × records ─▶ <out>.tmp.<pid>/<split>-00000.dps … (each .tmp, fsync, rename)
 *   commit ─▶ manifest.txt (atomic), then <out>.tmp.<pid> renamed to <out>: the old copy
 *            is replaced only by a complete dataset
 *   abort / failed commit ─▶ <out>.tmp.<pid> is removed; <out> is as it was
 *
 * Statistics: u8 pixels are counted in a 256-bin histogram per channel, so the
 * mean and variance are exact sums of integers; f32 features keep sums of
 * (x - K) and (x - K)^2 in double with K the first record's value (a shifted
 * sum: no cancellation when the mean is large against the spread). */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dptrain/fsutil.h"
#include "dptrain/text.h"
#include "data/shard_format.h"

struct dp_dataset_writer {
    char dir[4096];    /* --out, for messages */
    dp_dataset_dir dd; /* where the files go: dd.tmp */
    dp_manifest m;     /* name, schema, the shards closed so far */
    int shard_cap;
    uint8_t *rec;      /* one record being assembled */
    int channels;      /* channels (features) the stats cover */
    size_t plane;      /* values per channel: H*W for images, 1 for vectors */
    /* the current split */
    char split[DP_MANIFEST_SPLIT_MAX];
    uint64_t records, added, shard_end;
    int nshards, shard_no, is_train;
    dp_shard_writer *sw; /* the open shard, or NULL */
    /* statistics of the train split */
    uint64_t *hist;    /* u8: channels x 256 */
    double *shift, *s1, *s2; /* f32: per feature K, sum (x-K), sum (x-K)^2 */
    uint64_t train_n, total;  /* records of the train split, of all splits */
    dp_import_stats st;
    FILE *progress;
    struct timespec t0, last;
    dp_status failed;  /* an I/O error: the writer refuses further work */
};

static double since(const struct timespec *a)
{
    struct timespec b;
    clock_gettime(CLOCK_MONOTONIC, &b);
    return (double)(b.tv_sec - a->tv_sec) + 1e-9 * (double)(b.tv_nsec - a->tv_nsec);
}

dp_status dp_dataset_writer_open(const char *out_dir, const char *name, const dp_shard_schema *schema, int overwrite,
                                 dp_dataset_writer **out)
{
    *out = NULL;
    if (!dp_manifest_name_ok(name, DP_MANIFEST_NAME_MAX, 0))
        return dp_errorf(DP_ERR_ARG, "%s: bad dataset name '%s' (A-Z a-z 0-9 . _ -, < %d chars)", out_dir, DP_ESC(name),
                         DP_MANIFEST_NAME_MAX);
    dp_status rc = dp_shard_schema_check(schema, DP_ERR_ARG, out_dir);
    if (rc != DP_OK)
        return rc;
    if (schema->kind == DP_SCHEMA_TOKENS)
        return dp_errorf(DP_ERR_ARG, "%s: the dataset writer takes labelled images or vectors, not tokens", out_dir);
    if (strlen(out_dir) >= sizeof((dp_dataset_writer *)0)->dir - 32)
        return dp_errorf(DP_ERR_ARG, "%s: path too long", out_dir);
    dp_dataset_writer *w = calloc(1, sizeof *w);
    if (!w)
        return dp_errorf(DP_ERR_NOMEM, "%s: out of memory", out_dir);
    if ((rc = dp_dataset_dir_begin(&w->dd, out_dir, name, (int)schema->kind, NULL, 0, overwrite)) != DP_OK) {
        free(w);
        return rc;
    }
    strcpy(w->dir, out_dir);
    strcpy(w->m.name, name);
    w->m.schema = *schema;
    w->channels = (int)schema->param[0];
    w->plane = (size_t)schema->param[1] * schema->param[2];
    w->rec = malloc(schema->record_size);
    if (schema->kind == DP_SCHEMA_IMAGE_U8) {
        w->hist = calloc((size_t)w->channels * 256, sizeof *w->hist);
    } else {
        w->shift = calloc((size_t)w->channels, sizeof(double));
        w->s1 = calloc((size_t)w->channels, sizeof(double));
        w->s2 = calloc((size_t)w->channels, sizeof(double));
    }
    if (!w->rec || (!w->hist && !(w->shift && w->s1 && w->s2))) {
        dp_dataset_writer_abort(w);
        return dp_errorf(DP_ERR_NOMEM, "%s: out of memory", out_dir);
    }
    clock_gettime(CLOCK_MONOTONIC, &w->t0);
    w->last = w->t0;
    *out = w;
    return DP_OK;
}

dp_status dp_dataset_writer_classes(dp_dataset_writer *w, int n, const char *const *names)
{
    int classes = (int)w->m.schema.param[3];
    if (n < 1 || n != classes)
        return dp_errorf(DP_ERR_ARG, "%s: %d class names for %d classes", w->dir, n, classes);
    for (int i = 0; i < n; i++) {
        size_t len = names[i] ? strlen(names[i]) : 0;
        if (len == 0 || len >= DP_MANIFEST_CLASS_MAX)
            return dp_errorf(DP_ERR_ARG, "%s: class %d: name of %zu bytes (want 1..%d)", w->dir, i, len,
                             DP_MANIFEST_CLASS_MAX - 1);
    }
    char **copy = calloc((size_t)n, sizeof *copy);
    for (int i = 0; copy && i < n; i++)
        if (!(copy[i] = strdup(names[i]))) {
            for (int j = 0; j < i; j++)
                free(copy[j]);
            free(copy);
            copy = NULL;
        }
    if (!copy)
        return dp_errorf(DP_ERR_NOMEM, "%s: out of memory", w->dir);
    for (int i = 0; i < w->m.nclass_names; i++)
        free(w->m.class_names[i]);
    free(w->m.class_names);
    w->m.class_names = copy;
    w->m.nclass_names = n;
    return DP_OK;
}

void dp_dataset_writer_progress(dp_dataset_writer *w, FILE *f) { w->progress = f; }

static void show_progress(dp_dataset_writer *w, int final)
{
    if (!w->progress)
        return;
    double t = since(&w->t0);
    if (!final && since(&w->last) < 1.0)
        return;
    clock_gettime(CLOCK_MONOTONIC, &w->last);
    uint64_t bytes = w->total * w->m.schema.record_size;
    fprintf(w->progress, "%s: %s %" PRIu64 "/%" PRIu64 " records, %.1f MB/s\n", w->dir, w->split, w->added,
            w->records, t > 0 ? (double)bytes / 1e6 / t : 0.0);
    fflush(w->progress);
}

/* Closes the open shard and lists it in the manifest. */
static dp_status close_shard(dp_dataset_writer *w)
{
    dp_shard_info info;
    dp_status rc = dp_shard_writer_close(w->sw, &info);
    w->sw = NULL;
    if (rc != DP_OK)
        return w->failed = rc;
    dp_manifest_shard *ms = &w->m.shards[w->m.nshards++];
    ms->records = info.record_count;
    ms->crc32 = info.payload_crc32;
    w->st.raw_bytes += info.raw_size;
    w->st.compressed_bytes += DP_SHARD_HEADER_SIZE + info.payload_size;
    if (w->is_train)
        w->st.train_shards++;
    else
        w->st.test_shards++;
    return DP_OK;
}

/* Opens shard w->shard_no of the current split and sets where it ends. */
static dp_status open_shard(dp_dataset_writer *w)
{
    if (w->m.nshards == w->shard_cap) {
        int cap = w->shard_cap ? 2 * w->shard_cap : 16;
        dp_manifest_shard *p = realloc(w->m.shards, (size_t)cap * sizeof *p);
        if (!p)
            return w->failed = dp_errorf(DP_ERR_NOMEM, "%s: out of memory", w->dir);
        w->m.shards = p;
        w->shard_cap = cap;
    }
    dp_manifest_shard *ms = &w->m.shards[w->m.nshards];
    memset(ms, 0, sizeof *ms);
    snprintf(ms->split, sizeof ms->split, "%s", w->split);
    snprintf(ms->file, sizeof ms->file, "%s-%05d.dps", w->split, w->shard_no);
    char path[4200];
    dp_status rc = dp_path_join(path, sizeof path, w->dd.tmp, ms->file);
    if (rc == DP_OK)
        rc = dp_shard_writer_open(path, &w->m.schema, &w->sw);
    if (rc != DP_OK)
        return w->failed = rc;
    /* Near-equal contiguous ranges: the first records % k shards hold one more. */
    uint64_t k = (uint64_t)w->nshards, j = (uint64_t)w->shard_no;
    w->shard_end += w->records / k + (j < w->records % k);
    w->shard_no++;
    return DP_OK;
}

dp_status dp_dataset_writer_split(dp_dataset_writer *w, const char *split, uint64_t records, int nshards)
{
    if (w->failed)
        return dp_errorf(w->failed, "%s: writer already failed", w->dir);
    if (!dp_manifest_name_ok(split, DP_MANIFEST_SPLIT_MAX, 1))
        return dp_errorf(DP_ERR_ARG, "%s: bad split name '%s' (a-z 0-9 _ -, < %d chars)", w->dir, DP_ESC(split),
                         DP_MANIFEST_SPLIT_MAX);
    if (nshards < 1 || nshards > DP_DATASET_MAX_SHARDS)
        return dp_errorf(DP_ERR_ARG, "%s: %d shards, want 1..%d", w->dir, nshards, DP_DATASET_MAX_SHARDS);
    if (w->split[0] && w->added != w->records)
        return dp_errorf(DP_ERR_ARG, "%s: split '%s' got %" PRIu64 " of its %" PRIu64 " records", w->dir, w->split,
                         w->added, w->records);
    for (int i = 0; i < w->m.nshards; i++)
        if (strcmp(w->m.shards[i].split, split) == 0)
            return dp_errorf(DP_ERR_ARG, "%s: split '%s' started twice", w->dir, split);
    snprintf(w->split, sizeof w->split, "%s", split);
    w->records = records;
    w->added = w->shard_end = 0;
    w->nshards = records < (uint64_t)nshards ? (int)records : nshards;
    w->shard_no = 0;
    w->is_train = strcmp(split, "train") == 0;
    if (w->is_train)
        w->st.train_records += (long)records;
    else
        w->st.test_records += (long)records;
    return DP_OK;
}

/* One record's values into the statistics of the train split. */
static void add_stats(dp_dataset_writer *w, const void *values)
{
    if (w->hist) {
        const uint8_t *px = values;
        for (int c = 0; c < w->channels; c++) {
            uint64_t *h = w->hist + (size_t)c * 256;
            for (size_t i = 0; i < w->plane; i++)
                h[px[(size_t)c * w->plane + i]]++;
        }
    } else {
        const float *x = values;
        if (w->train_n == 0)
            for (int c = 0; c < w->channels; c++)
                w->shift[c] = x[c];
        for (int c = 0; c < w->channels; c++) {
            double d = (double)x[c] - w->shift[c];
            w->s1[c] += d;
            w->s2[c] += d * d;
        }
    }
    w->train_n++;
}

dp_status dp_dataset_writer_add(dp_dataset_writer *w, uint32_t label, const void *values)
{
    if (w->failed)
        return dp_errorf(w->failed, "%s: writer already failed", w->dir);
    if (!w->split[0] || w->added == w->records)
        return dp_errorf(DP_ERR_ARG, "%s: split '%s': a record beyond the %" PRIu64 " announced", w->dir, w->split,
                         w->records);
    uint32_t classes = w->m.schema.param[3];
    if (label >= classes)
        return dp_errorf(DP_ERR_ARG, "%s: split '%s' record %" PRIu64 ": label %" PRIu32 " outside [0, %" PRIu32 ")",
                         w->dir, w->split, w->added, label, classes);
    w->rec[0] = (uint8_t)label;
    w->rec[1] = (uint8_t)(label >> 8);
    size_t nval = w->m.schema.record_size - 2;
    if (w->hist) {
        memcpy(w->rec + 2, values, nval);
    } else {
        const float *x = values;
        w->rec[2] = w->rec[3] = 0;
        for (int c = 0; c < w->channels; c++) {
            if (!isfinite(x[c]))
                return dp_errorf(DP_ERR_ARG, "%s: split '%s' record %" PRIu64 ": feature %d is %g, not finite",
                                 w->dir, w->split, w->added, c, (double)x[c]);
            uint32_t u;
            memcpy(&u, &x[c], 4);
            dp_put_u32(w->rec + 4 + 4 * (size_t)c, u);
        }
    }
    dp_status rc = w->sw ? DP_OK : open_shard(w);
    if (rc == DP_OK && (rc = dp_shard_writer_add(w->sw, w->rec, w->m.schema.record_size)) != DP_OK)
        w->failed = rc;
    if (rc != DP_OK)
        return rc;
    if (w->is_train)
        add_stats(w, values);
    w->total++;
    if (++w->added == w->shard_end && (rc = close_shard(w)) != DP_OK)
        return rc;
    show_progress(w, 0);
    return DP_OK;
}

/* A statistic as the manifest writes it (%.4g), so the in-memory manifest
 * equals what a loader parses back. */
static double four_digits(double v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%.4g", v);
    return strtod(buf, NULL);
}

/* Mean and standard deviation (population) of each channel of the train split into m. */
static dp_status finish_stats(dp_dataset_writer *w)
{
    int n = w->channels;
    w->m.mean = malloc((size_t)n * sizeof(double));
    w->m.std = malloc((size_t)n * sizeof(double));
    if (!w->m.mean || !w->m.std)
        return dp_errorf(DP_ERR_NOMEM, "%s: out of memory", w->dir);
    for (int c = 0; c < n; c++) {
        double mean, var;
        if (w->hist) {
            const uint64_t *h = w->hist + (size_t)c * 256;
            uint64_t cnt = 0, s1 = 0, s2 = 0; /* 2^64 / 255^2: room for 2.8e14 pixels a channel */
            for (uint64_t v = 0; v < 256; v++) {
                cnt += h[v];
                s1 += h[v] * v;
                s2 += h[v] * v * v;
            }
            double N = (double)cnt;
            mean = (double)s1 / N;
            var = ((double)s2 - (double)s1 * mean) / N;
            mean /= 255.0;
            var /= 255.0 * 255.0;
        } else {
            double N = (double)w->train_n, d = w->s1[c] / N;
            mean = w->shift[c] + d;
            var = w->s2[c] / N - d * d;
        }
        w->m.mean[c] = four_digits(mean);
        double sd = four_digits(sqrt(var > 0 ? var : 0));
        /* A constant channel normalises to 0 rather than dividing by 0. */
        w->m.std[c] = sd > 0 && isfinite(sd) ? sd : 1.0;
    }
    w->m.nstats = n;
    return DP_OK;
}

/* Frees w; with `remove_all`, first removes the directory it was writing. */
static void writer_free(dp_dataset_writer *w, int remove_all)
{
    dp_shard_writer_abort(w->sw);
    if (remove_all)
        dp_dataset_dir_abort(&w->dd);
    free(w->m.shards);
    free(w->m.mean);
    free(w->m.std);
    for (int i = 0; i < w->m.nclass_names; i++)
        free(w->m.class_names[i]);
    free(w->m.class_names);
    free(w->rec);
    free(w->hist);
    free(w->shift);
    free(w->s1);
    free(w->s2);
    free(w);
}

dp_status dp_dataset_writer_commit(dp_dataset_writer *w, dp_import_stats *st)
{
    dp_status rc = w->failed;
    if (rc != DP_OK)
        dp_errorf(rc, "%s: writer had failed; no dataset written", w->dir);
    else if (w->split[0] && w->added != w->records)
        rc = dp_errorf(DP_ERR_ARG, "%s: split '%s' got %" PRIu64 " of its %" PRIu64 " records", w->dir, w->split,
                       w->added, w->records);
    else if (w->m.nshards == 0)
        rc = dp_errorf(DP_ERR_ARG, "%s: no records: nothing to write", w->dir);
    if (rc == DP_OK && w->train_n > 0)
        rc = finish_stats(w);
    if (rc == DP_OK)
        rc = dp_manifest_save(w->dd.tmp, &w->m);
    if (rc == DP_OK)
        rc = dp_dataset_dir_commit(&w->dd);
    if (rc == DP_OK) {
        show_progress(w, 1);
        w->st.seconds = since(&w->t0);
        if (st) {
            uint64_t in = st->in_bytes;
            *st = w->st;
            st->in_bytes = in;
        }
    }
    writer_free(w, rc != DP_OK);
    return rc;
}

void dp_dataset_writer_abort(dp_dataset_writer *w)
{
    if (w)
        writer_free(w, 1);
}

void dp_stratified_holdout(const int32_t *labels, long n, int classes, double frac, uint8_t *is_val)
{
    long *seen = classes > 0 ? calloc((size_t)classes, sizeof *seen) : NULL;
    for (long i = 0; i < n; i++) {
        int32_t c = labels[i];
        is_val[i] = 0;
        if (c < 0 || c >= classes)
            continue;
        long j = 0;
        if (seen) {
            j = seen[c]++;
        } else { /* no memory for the counters: count the class's earlier records instead */
            for (long k = 0; k < i; k++)
                j += labels[k] == c;
        }
        is_val[i] = floor((double)(j + 1) * frac) > floor((double)j * frac);
    }
    free(seen);
}
