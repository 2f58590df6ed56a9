/* Fashion-MNIST importer: IDX .gz pairs -> image shards + manifest.txt.
 * Each split is cut into contiguous, near-equal record ranges (shard j holds
 * the j-th range of the IDX order), so "global record order" is IDX order and
 * a `limit` in dp_image_set_load keeps the first images of the original file. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dptrain/fsutil.h"
#include "dptrain/data.h"

enum { FMNIST_SIDE = 28, FMNIST_CLASSES = 10, MAX_IMPORT_SHARDS = 1024 };

typedef struct split_spec {
    const char *split;  /* name in the manifest and shard file names */
    const char *prefix; /* IDX file prefix */
} split_spec;

static dp_status load_split(const char *idx_dir, const char *prefix, dp_idx *img, dp_idx *lab,
                            char *lab_path, size_t cap)
{
    char name[64], img_path[4096];
    snprintf(name, sizeof name, "%s-images-idx3-ubyte.gz", prefix);
    dp_status rc = dp_path_join(img_path, sizeof img_path, idx_dir, name);
    if (rc == DP_OK) {
        snprintf(name, sizeof name, "%s-labels-idx1-ubyte.gz", prefix);
        rc = dp_path_join(lab_path, cap, idx_dir, name);
    }
    if (rc == DP_OK)
        rc = dp_idx_load(img_path, 3, img);
    if (rc == DP_OK)
        rc = dp_idx_load(lab_path, 1, lab);
    if (rc != DP_OK)
        return rc;
    if (img->dims[1] != FMNIST_SIDE || img->dims[2] != FMNIST_SIDE)
        return dp_errorf(DP_ERR_FORMAT, "%s: offset 8: images are %" PRIu32 "x%" PRIu32 ", expected %dx%d",
                         img_path, img->dims[1], img->dims[2], FMNIST_SIDE, FMNIST_SIDE);
    if (img->dims[0] != lab->dims[0])
        return dp_errorf(DP_ERR_FORMAT, "%s: offset 4: %" PRIu32 " labels but %s holds %" PRIu32
                         " images", lab_path, lab->dims[0], img_path, img->dims[0]);
    for (size_t i = 0; i < lab->size; i++)
        if (lab->data[i] >= FMNIST_CLASSES)
            return dp_errorf(DP_ERR_FORMAT, "%s: offset %zu: label %u outside [0, %d)", lab_path,
                             8 + i, lab->data[i], FMNIST_CLASSES);
    return DP_OK;
}

/* Writes records [lo, hi) of one split to `path`. */
static dp_status write_shard(const char *path, const dp_shard_schema *schema, const dp_idx *img,
                             const dp_idx *lab, size_t lo, size_t hi, dp_shard_info *info)
{
    enum { PX = FMNIST_SIDE * FMNIST_SIDE };
    uint8_t rec[2 + PX];
    dp_shard_writer *w = NULL;
    dp_status rc = dp_shard_writer_open(path, schema, &w);
    for (size_t i = lo; i < hi && rc == DP_OK; i++) {
        rec[0] = lab->data[i]; /* uint16 LE label; classes < 256 here */
        rec[1] = 0;
        memcpy(rec + 2, img->data + i * PX, PX);
        rc = dp_shard_writer_add(w, rec, sizeof rec);
    }
    if (rc != DP_OK) {
        dp_shard_writer_abort(w);
        return rc;
    }
    return dp_shard_writer_close(w, info);
}

dp_status dp_import_fashion_mnist(const char *idx_dir, const char *out_dir, int nshards,
                                  dp_import_stats *st)
{
    static const split_spec splits[2] = {{"train", "train"}, {"test", "t10k"}};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    dp_import_stats s = {0};
    if (st)
        *st = s;
    if (nshards < 1 || nshards > MAX_IMPORT_SHARDS)
        return dp_errorf(DP_ERR_ARG, "import: %d shards, want 1..%d", nshards, MAX_IMPORT_SHARDS);
    dp_status rc = dp_mkdir_p(out_dir);
    if (rc == DP_OK)
        rc = dp_manifest_remove(out_dir); /* no dataset here until the new manifest lands */
    if (rc != DP_OK)
        return rc;

    dp_manifest m = {0};
    snprintf(m.name, sizeof m.name, "fashion-mnist");
    m.schema = dp_shard_schema_image(1, FMNIST_SIDE, FMNIST_SIDE, FMNIST_CLASSES);
    m.shards = calloc(2 * (size_t)nshards, sizeof *m.shards);
    if (!m.shards)
        return dp_errorf(DP_ERR_NOMEM, "import: out of memory");
    dp_idx img = {0}, lab = {0};
    for (int sp = 0; sp < 2 && rc == DP_OK; sp++) {
        char lab_path[4096];
        rc = load_split(idx_dir, splits[sp].prefix, &img, &lab, lab_path, sizeof lab_path);
        size_t n = lab.size;
        size_t k = n < (size_t)nshards ? n : (size_t)nshards;
        for (size_t j = 0; j < k && rc == DP_OK; j++) {
            /* Near-equal contiguous ranges: the first n % k shards hold one more. */
            size_t lo = j * (n / k) + (j < n % k ? j : n % k);
            size_t hi = lo + n / k + (j < n % k);
            dp_manifest_shard *ms = &m.shards[m.nshards];
            snprintf(ms->split, sizeof ms->split, "%s", splits[sp].split);
            snprintf(ms->file, sizeof ms->file, "%s-%05zu.dps", splits[sp].split, j);
            char path[4096];
            dp_shard_info info;
            rc = dp_path_join(path, sizeof path, out_dir, ms->file);
            if (rc == DP_OK)
                rc = write_shard(path, &m.schema, &img, &lab, lo, hi, &info);
            if (rc != DP_OK)
                break;
            ms->records = info.record_count;
            ms->crc32 = info.payload_crc32;
            m.nshards++;
            s.raw_bytes += info.raw_size;
            s.compressed_bytes += DP_SHARD_HEADER_SIZE + info.payload_size;
        }
        if (sp == 0)
            s.train_records = (long)n, s.train_shards = (int)k;
        else
            s.test_records = (long)n, s.test_shards = (int)k;
        dp_idx_free(&img);
        dp_idx_free(&lab);
    }
    if (rc == DP_OK)
        rc = dp_manifest_save(out_dir, &m);
    free(m.shards);
    if (rc != DP_OK)
        return rc;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    s.seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    if (st)
        *st = s;
    return DP_OK;
}
