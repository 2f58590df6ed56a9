/* CIFAR-10 / CIFAR-100 binary batches -> 3x32x32 image shards + manifest.txt.
 * A record is its label byte(s) then 3072 pixel bytes, red plane, green plane,
 * blue plane, each 32x32 row-major: CHW already, copied as it is. Every file
 * is sized first (a split's record count is announced to the writer, and a
 * partial last record is reported before anything is written), then streamed
 * record by record. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dptrain/fsutil.h"
#include "dptrain/infile.h"
#include "dptrain/import.h"

enum { CIFAR_SIDE = 32, CIFAR_PX = 3 * CIFAR_SIDE * CIFAR_SIDE, CIFAR10_BATCHES = 5, MAX_FILES = 5 };

typedef struct cifar_layout {
    const char *train[MAX_FILES];
    int ntrain;
    const char *test;
    int label_bytes;   /* 1 (CIFAR-10) or 2 (coarse, fine) */
    int label_at;      /* the byte holding the label imported */
    int classes;
    const char *names; /* file of class names, one a line */
    const char *dataset;
} cifar_layout;

static const cifar_layout layouts[3] = {
    [DP_CIFAR10] = {{"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"},
                    CIFAR10_BATCHES, "test_batch.bin", 1, 0, 10, "batches.meta.txt", "cifar10"},
    [DP_CIFAR100_FINE] = {{"train.bin"}, 1, "test.bin", 2, 1, 100, "fine_label_names.txt", "cifar100"},
    [DP_CIFAR100_COARSE] = {{"train.bin"}, 1, "test.bin", 2, 0, 20, "coarse_label_names.txt", "cifar100"},
};

/* Records in one file, refusing a partial last record. */
static dp_status count_records(const char *path, size_t rec, uint64_t *n)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return dp_errorf(DP_ERR_IO, "%s: open: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return dp_errorf(DP_ERR_IO, "%s: not a regular file", path);
    uint64_t size = (uint64_t)sb.st_size;
    *n = size / rec;
    if (size % rec)
        return dp_errorf(DP_ERR_FORMAT, "%s: record %" PRIu64 " at offset %" PRIu64 ": truncated (%" PRIu64
                         " of %zu bytes)", path, *n, *n * rec, size % rec, rec);
    return DP_OK;
}

/* Streams every record of one file into the writer's current split. */
static dp_status import_file(dp_dataset_writer *w, const char *path, const cifar_layout *L, uint64_t n)
{
    const size_t rec = (size_t)L->label_bytes + CIFAR_PX;
    uint8_t buf[2 + CIFAR_PX];
    FILE *f;
    dp_status orc = dp_fopen_regular(path, 0, &f);
    if (orc != DP_OK)
        return orc;
    setvbuf(f, NULL, _IOFBF, 1 << 20);
    static const int limits[2][2] = {{10, 0}, {20, 100}}; /* per label byte: CIFAR-10; CIFAR-100 coarse, fine */
    dp_status rc = DP_OK;
    for (uint64_t i = 0; i < n && rc == DP_OK; i++) {
        size_t got = fread(buf, 1, rec, f);
        if (got < rec) {
            rc = ferror(f) ? dp_errorf(DP_ERR_IO, "%s: offset %" PRIu64 ": read: %s", path, i * rec, strerror(errno))
                           : dp_errorf(DP_ERR_FORMAT, "%s: record %" PRIu64 " at offset %" PRIu64
                                       ": truncated (%zu of %zu bytes; the file shrank while importing)",
                                       path, i, i * rec, got, rec);
            break;
        }
        for (int b = 0; b < L->label_bytes; b++) {
            int limit = limits[L->label_bytes - 1][b];
            if (buf[b] >= limit) {
                rc = dp_errorf(DP_ERR_FORMAT, "%s: record %" PRIu64 " at offset %" PRIu64 ": %slabel %d outside [0, %d)",
                               path, i, i * rec + (uint64_t)b, L->label_bytes == 1 ? "" : b ? "fine " : "coarse ",
                               buf[b], limit);
                break;
            }
        }
        if (rc == DP_OK)
            rc = dp_dataset_writer_add(w, buf[L->label_at], buf + L->label_bytes);
    }
    fclose(f);
    return rc;
}

/* Class names from dir/L->names when that file exists. */
static dp_status load_names(const char *dir, const cifar_layout *L, char ***names)
{
    char path[4096];
    *names = NULL;
    dp_status rc = dp_path_join(path, sizeof path, dir, L->names);
    if (rc != DP_OK || access(path, F_OK) != 0)
        return rc;
    return dp_import_read_names(path, L->classes, names);
}

dp_status dp_import_cifar(const char *dir, dp_cifar_kind kind, const dp_import_opts *o, dp_import_stats *st_out)
{
    dp_import_stats st = {0};
    if (st_out)
        *st_out = st;
    if ((int)kind < 0 || kind > DP_CIFAR100_COARSE)
        return dp_errorf(DP_ERR_ARG, "cifar import: unknown kind %d", (int)kind);
    const cifar_layout *L = &layouts[kind];
    const size_t rec = (size_t)L->label_bytes + CIFAR_PX;
    /* paths: the train files, then the test file */
    char path[MAX_FILES + 1][4096];
    uint64_t count[MAX_FILES + 1], ntrain = 0;
    int nfiles = L->ntrain + 1;
    /* out_dir stays as it is until the new dataset is complete (dp_dataset_dir) */
    dp_status rc = DP_OK;
    for (int i = 0; i < nfiles && rc == DP_OK; i++) {
        rc = dp_path_join(path[i], sizeof path[i], dir, i < L->ntrain ? L->train[i] : L->test);
        if (rc == DP_OK)
            rc = count_records(path[i], rec, &count[i]);
        if (i < L->ntrain)
            ntrain += count[i];
    }
    char **names = NULL;
    if (rc == DP_OK)
        rc = load_names(dir, L, &names);
    dp_dataset_writer *w = NULL;
    dp_shard_schema schema = dp_shard_schema_image(3, CIFAR_SIDE, CIFAR_SIDE, (uint32_t)L->classes);
    dp_import_opts oo = *o;
    if (!oo.name)
        oo.name = L->dataset;
    if (rc == DP_OK)
        rc = dp_import_begin(&oo, &schema, &w);
    if (rc == DP_OK && names)
        rc = dp_dataset_writer_classes(w, L->classes, (const char *const *)names);
    for (int i = 0; i < nfiles && rc == DP_OK; i++) {
        if (i == 0)
            rc = dp_dataset_writer_split(w, "train", ntrain, o->nshards);
        if (rc == DP_OK && i == L->ntrain)
            rc = dp_dataset_writer_split(w, "test", count[i], o->nshards);
        if (rc == DP_OK)
            rc = import_file(w, path[i], L, count[i]);
        if (rc == DP_OK)
            dp_import_count_input(&st, path[i]);
    }
    if (rc == DP_OK) {
        rc = dp_dataset_writer_commit(w, &st);
        w = NULL;
    }
    dp_dataset_writer_abort(w);
    dp_import_free_names(names, L->classes);
    if (rc == DP_OK && st_out)
        *st_out = st;
    return rc;
}
