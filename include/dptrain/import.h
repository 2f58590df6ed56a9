/* Importers: other formats -> a dataset (shards + manifest.txt) through the
 * dataset writer (dptrain/data.h). Each streams its input with bounded memory
 * (a labels-only first pass at most), names the file and record or offset of
 * any bad input, and leaves out_dir as it was when it fails.
 * `dptrain shard FORMAT` (src/cli/shard_*.c) is their command line. */
#ifndef DPTRAIN_IMPORT_H
#define DPTRAIN_IMPORT_H

#include <stdio.h>

#include "dptrain/data.h"

#ifdef __cplusplus
extern "C" {
#endif

/*! Where and how an importer writes. */
typedef struct dp_import_opts {
    const char *out_dir;
    const char *name; /* the dataset's name in the manifest ([A-Za-z0-9._-]) */
    int nshards;      /* shards per split, 1..DP_DATASET_MAX_SHARDS */
    FILE *progress;   /* progress lines (records, MB/s); NULL: none */
    int overwrite;    /* 1: replace out_dir whatever it holds; 0: only an earlier copy of this dataset */
} dp_import_opts;

/*! Opens a dataset writer for o (progress included): the common first step of an importer. */
dp_status dp_import_begin(const dp_import_opts *o, const dp_shard_schema *schema, dp_dataset_writer **w);

/*! Size of a file on disk, added to st->in_bytes (0 if it cannot be stat'ed). */
void dp_import_count_input(dp_import_stats *st, const char *path);

/*! Class names from a text file, one per line (a trailing \r and blank lines are
 *  ignored; a name keeps its inner spaces): exactly `classes` names, each 1..255
 *  bytes, into *names (free with dp_import_free_names).
 *  @return DP_OK, DP_ERR_IO, DP_ERR_FORMAT naming the file (and line). */
dp_status dp_import_read_names(const char *path, int classes, char ***names);
void dp_import_free_names(char **names, int n);

/* ------------------------------------------------------------------- IDX */

/*! An IDX pair of u8 images (magic 0x00000803, N x H x W) and labels
 *  (0x00000801, N), gzip'd or plain. */
typedef struct dp_idx_import {
    const char *images, *labels;           /* -> split "train" */
    const char *test_images, *test_labels; /* optional pair -> split "test" (both or neither) */
    double val_split;                      /* 0, or hold out this fraction of the train pair as split
                                            * "test" (dp_stratified_holdout); not with a test pair */
    int classes;                           /* 0: the largest label + 1 */
    uint32_t height, width;                /* 0: any; else the images must be this size */
    const char *const *class_names;        /* NULL, or `classes` names */
} dp_idx_import;

/*! Imports in: labels are read first (1 byte each), images streamed record by
 *  record (twice with val_split: once per split). Checks magic, dims, image
 *  count = label count, test images the size of the train ones, labels below
 *  classes, no truncation, no trailing bytes, gzip trailers.
 *  @param st receives counts, sizes and time (in_bytes: input files as stored).
 *  @return DP_OK, DP_ERR_ARG, DP_ERR_IO, DP_ERR_FORMAT (naming file and offset). */
dp_status dp_import_idx(const dp_idx_import *in, const dp_import_opts *o, dp_import_stats *st);

/*! dp_import_fashion_mnist with the writer options of o (name: "fashion-mnist" when NULL). */
dp_status dp_import_fashion_mnist_to(const char *idx_dir, const dp_import_opts *o, dp_import_stats *st);

/* ----------------------------------------------------------------- CIFAR */

typedef enum dp_cifar_kind {
    DP_CIFAR10,         /* data_batch_1..5.bin -> train, test_batch.bin -> test; record: label, 3072 px */
    DP_CIFAR100_FINE,   /* train.bin, test.bin; record: coarse, fine, 3072 px; 100 fine labels */
    DP_CIFAR100_COARSE, /* the same files, 20 coarse labels */
} dp_cifar_kind;

/*! Imports the CIFAR binary batches in dir (3x32x32 RGB, CHW as stored), with
 *  class names from batches.meta.txt / fine_label_names.txt /
 *  coarse_label_names.txt when present. A file that is not a whole number of
 *  records, or a label out of range (both labels for CIFAR-100), is an error
 *  naming the file, the record and its offset (and the label).
 *  @return DP_OK, DP_ERR_ARG, DP_ERR_IO, DP_ERR_FORMAT. */
dp_status dp_import_cifar(const char *dir, dp_cifar_kind kind, const dp_import_opts *o, dp_import_stats *st);

#ifdef __cplusplus
}
#endif
#endif
