/* Helpers shared by the tests that write and damage files (tests/data, tests/dsi): temp dirs, whole-file
 * edits for damage tests, and synthetic image shards whose records encode their global index
 * (label = g % classes, first 4 pixel bytes = g little-endian). Defined in test_data_util.c; every
 * helper fails the calling Criterion test on an I/O error. */
#ifndef DP_TEST_DATA_UTIL_H
#define DP_TEST_DATA_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "dptrain/data.h"

/* A fresh directory $TMPDIR/dptrain-data-XXXXXX (or under /tmp) in out[cap]; td_rmtree removes one. */
void td_tmpdir(char *out, size_t cap);
void td_rmtree(const char *dir);
/* out = dir/name, which must fit in cap. */
void td_path(char *out, size_t cap, const char *dir, const char *name);

/* Whole files: read (malloc'd, *len bytes), write, append, flip bits at off, truncate to size. */
unsigned char *td_read(const char *path, size_t *len);
void td_write(const char *path, const void *buf, size_t len);
void td_append(const char *path, const void *buf, size_t len);
void td_flip(const char *path, long off, unsigned char mask);
void td_truncate(const char *path, long size);
/* Patches a little-endian field of width bytes in a shard header; fix_crc recomputes the header crc. */
void td_patch(const char *path, long off, uint64_t v, int width, int fix_crc);

/* Record g of an image schema, and the index g read back from a record's pixels. */
void td_make_image(uint8_t *rec, long g, const dp_shard_schema *s);
long td_image_index(const uint8_t *pixels);
/* A shard of records first..first+n-1 (frame: 0 = the writer's default); returns its facts. */
dp_shard_info td_write_images(const char *path, const dp_shard_schema *s, long first, long n, size_t frame);
/* A dataset dir with one split of image shards of the given sizes (indices run on across shards) and
 * its manifest. */
void td_make_dataset(const char *dir, const char *split, const long *sizes, int nshards,
                     const dp_shard_schema *s);

#endif
