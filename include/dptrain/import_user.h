/* Importers for a user's own data, each into the shard format through the
 * dataset writer (data.h): a folder of PNG/JPEG images (torchvision's
 * ImageFolder layout), a CSV table, and a pair of NumPy .npy arrays. Images
 * become DP_SCHEMA_IMAGE_U8 records, tables DP_SCHEMA_VECTOR_F32 records.
 *
 * Every importer streams: one image or one row is in memory at a time, plus
 * a small index of the records (a path or a byte offset, and a label, each)
 * that the hold-out and the shuffle need. Errors name the file and what is
 * wrong (file:line:column for CSV, the byte offset for .npy); after a failure
 * the out dir holds no manifest (removed first, as data.h's importers do), so
 * nothing there passes for a dataset. o->name NULL: the input's base name. */
#ifndef DPTRAIN_IMPORT_USER_H
#define DPTRAIN_IMPORT_USER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "dptrain/data.h"
#include "dptrain/import.h"
#include "dptrain/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/*! How records are split and ordered, for every importer of this header. */
typedef struct dp_import_order {
    double val_split; /* in (0, 1): this fraction of each class of the train input is held out as split
                       * "test" (dp_stratified_holdout) when no test input is given; 0: none */
    uint64_t seed;    /* records are written sorted by a hash of (seed, split, input index) */
    int keep_order;   /* 1: input order instead (class by class for a folder) */
} dp_import_order;

/*! A dataset name from a path: its last component without the extension, every byte outside
 *  [A-Za-z0-9._-] (and a leading '.' or '-') made '_', at most cap - 1 bytes; "dataset" if empty. */
void dp_import_default_name(char *out, size_t cap, const char *path);

/*! An image folder and what its images become. */
typedef struct dp_folder_import {
    const char *dir;
    int height, width; /* 0, 0: keep */
    int channels;      /* 0 (auto), 1 or 3 */
    dp_import_order order;
} dp_folder_import;

/*! Imports an image folder: DIR/<class>/.../<file>.{png,jpg,jpeg} (any case), classes
 *  = DIR's sub-folders sorted by name (label = index), files in sorted order,
 *  names starting with '.' and other extensions skipped (counted). When DIR
 *  holds train/ and test/ (or val/) with the same class folders, those are
 *  the splits; otherwise order.val_split may hold some out.
 *  height, width: 0, 0 keeps the images' size, which must then be the same
 *  for all (else an error naming two files that differ); else every image is
 *  resized (dp_image_resize). channels: 1 or 3, or 0 for 3 when any image is
 *  colour, else 1. All headers are read first, so a mixed size, an
 *  unreadable file or an empty class fails before anything is written.
 *  o->name NULL: DIR's base name. Progress: images/s.
 *  @return DP_OK, DP_ERR_ARG, DP_ERR_IO, DP_ERR_FORMAT (naming the file or folder), DP_ERR_NOMEM. */
dp_status dp_import_image_folder(const dp_folder_import *in, const dp_import_opts *o, dp_import_stats *st);

/*! A CSV table, where its label is and whether it has a header line. */
typedef struct dp_csv_import {
    const char *path;
    const char *label;  /* a 0-based column index, or a header name */
    int header;         /* 1: the first line names the columns; 0: it is data; -1: a header when one of its
                         * feature fields is not a number */
    const char *test;   /* NULL, or a CSV of the same layout for the test split */
    dp_import_order order;
} dp_csv_import;

/*! A CSV table (comma-separated, RFC 4180 quotes within a line, blank lines
 *  skipped, CRLF accepted): every column but the label is a feature, parsed
 *  strictly as a finite decimal float (strtof: correctly rounded). Labels are
 *  non-negative integers (classes = max + 1) when every label of train and
 *  test is one, else strings, whose sorted set are the classes (names in the
 *  manifest). A ragged row, a non-number, an empty field, an empty file are
 *  errors naming file:line:column.
 *  @return DP_OK, DP_ERR_ARG, DP_ERR_IO, DP_ERR_FORMAT, DP_ERR_NOMEM. */
dp_status dp_import_csv(const dp_csv_import *in, const dp_import_opts *o, dp_import_stats *st);

/*! NumPy arrays: X (N, F) of '<f4' or '<f8' in C order, Y (N,) of integers
 *  ('|u1', '|i1', '<u2', '<i2', '<u4', '<i4', '<u8', '<i8'), format 1.0 or
 *  2.0; classes = max label + 1. test_x/test_y (both or neither) give the
 *  test split. Errors: bad magic, unsupported version/dtype/shape, Fortran
 *  order, truncated data or trailing bytes, a label < 0 or > 65535, row
 *  counts that differ, a non-finite feature (row and column named).
 *  @return DP_OK, DP_ERR_ARG, DP_ERR_IO, DP_ERR_FORMAT, DP_ERR_NOMEM. */
typedef struct dp_npy_import {
    const char *x, *y;           /* -> split train */
    const char *test_x, *test_y; /* NULL, or the test split (both or neither) */
    dp_import_order order;
} dp_npy_import;
dp_status dp_import_npy(const dp_npy_import *in, const dp_import_opts *o, dp_import_stats *st);

#ifdef __cplusplus
}
#endif
#endif
