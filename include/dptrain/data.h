/* The data room: shard files (.dps), dataset manifests, the IDX importer and
 * the per-rank in-memory image set the trainer batches from.
 *
 * Flow: importer (IDX .gz) -> shards + manifest.txt on disk -> every rank
 * loads its share with dp_image_set_load. The byte layouts are documented in
 * shards/README.md. Every function returns a dp_status and, on failure, sets
 * dp_errmsg() to "<file>: offset <n>: <what>" (or "<file>:<line>: ..." for the
 * manifest). */
#ifndef DPTRAIN_DATA_H
#define DPTRAIN_DATA_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "dptrain/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- schema */

enum {
    DP_SCHEMA_IMAGE_U8 = 1, /* fixed size: uint16 LE label, then C*H*W uint8 pixels (CHW) */
    DP_SCHEMA_TOKENS = 2,   /* variable size: uint32 LE token ids, len = 4 * ntokens */
    DP_SCHEMA_VECTOR_F32 = 3, /* fixed size: uint16 LE label, uint16 pad (0), F float32 LE features */
};

enum {
    DP_SHARD_VERSION = 1,
    DP_SHARD_HEADER_SIZE = 128,
    DP_SHARD_MAX_RECORD = 64u << 20,   /* largest single record, bytes */
    DP_SHARD_DEFAULT_FRAME = 1u << 20, /* uncompressed bytes per zstd frame */
    DP_SHARD_DEFAULT_LEVEL = 3,        /* zstd level */
    /* a vector's per-feature mean and std must fit the manifest's 16 MiB */
    DP_VECTOR_MAX_FEATURES = 1 << 18,
};

/*! What a shard's records look like. `record_size` is the byte size of every
 *  record, or 0 for variable-length records (each stored with a uint32 length
 *  prefix). The four parameters are interpreted per kind. */
typedef struct dp_shard_schema {
    uint32_t kind;        /* DP_SCHEMA_* */
    uint32_t record_size; /* bytes per record; 0 = variable length */
    union {
        struct { uint32_t channels, height, width, classes; } image;
        struct { uint32_t vocab_size, reserved[3]; } tokens;
        /* height and width are always 1: loaders see a vector as C = F channels of 1x1 */
        struct { uint32_t features, height, width, classes; } vector;
        uint32_t param[4];
    };
} dp_shard_schema;

/*! @return the schema of C*H*W uint8 images with labels in [0, classes). */
dp_shard_schema dp_shard_schema_image(uint32_t channels, uint32_t height, uint32_t width,
                                      uint32_t classes);

/*! @return the schema of F-feature float32 vectors with labels in [0, classes)
 *          (parameters F, 1, 1, classes; at most DP_VECTOR_MAX_FEATURES). */
dp_shard_schema dp_shard_schema_vector(uint32_t features, uint32_t classes);

/*! @return the schema of variable-length uint32 token-id records. */
dp_shard_schema dp_shard_schema_tokens(uint32_t vocab_size);

/*! @return 1 if the two schemas are identical (kind, record size, parameters). */
int dp_shard_schema_equal(const dp_shard_schema *a, const dp_shard_schema *b);

/*! Facts from a shard header (reader) or about a finished shard (writer). */
typedef struct dp_shard_info {
    dp_shard_schema schema;
    uint64_t record_count;
    uint64_t raw_size;      /* uncompressed payload bytes */
    uint64_t payload_size;  /* bytes on disk after the header */
    uint32_t frame_count;
    uint32_t frame_raw_max; /* largest uncompressed frame: the reader's buffer size */
    uint32_t payload_crc32; /* zlib crc32 of the uncompressed payload */
} dp_shard_info;

/* ---------------------------------------------------------------- writer */

typedef struct dp_shard_writer dp_shard_writer;

/*! Starts a shard at `path`; records go to "<path>.tmp" until close renames it.
 *  @return DP_OK and a writer in *out (caller closes or aborts it), DP_ERR_ARG
 *          for an invalid schema, DP_ERR_IO if the temp file cannot be created. */
dp_status dp_shard_writer_open(const char *path, const dp_shard_schema *schema,
                               dp_shard_writer **out);

/*! Sets the zstd level (default DP_SHARD_DEFAULT_LEVEL); call before the first add.
 *  @return DP_ERR_ARG outside zstd's range or after records were added. */
dp_status dp_shard_writer_set_level(dp_shard_writer *w, int level);

/*! Sets the target uncompressed bytes per frame (default 1 MiB, minimum 1 KiB);
 *  call before the first add. A record larger than the target gets its own frame.
 *  @return DP_ERR_ARG when out of range or after records were added. */
dp_status dp_shard_writer_set_frame_size(dp_shard_writer *w, size_t bytes);

/*! Appends one record (`len` bytes copied). For fixed-size schemas `len` must
 *  equal record_size; tokens need len % 4 == 0; at most DP_SHARD_MAX_RECORD.
 *  @return DP_OK; DP_ERR_ARG for a bad length (the record is skipped, the
 *          writer stays usable); DP_ERR_IO / DP_ERR_NOMEM, after which the writer
 *          only fails (close reports the error and removes the temp file). */
dp_status dp_shard_writer_add(dp_shard_writer *w, const void *rec, size_t len);

/*! Flushes the last frame, writes the header, fsyncs, renames "<path>.tmp" to
 *  `path` and fsyncs the directory. Frees `w` whatever happens; on failure the
 *  temp file is removed and `path` is untouched.
 *  @param info if not NULL, receives the finished shard's header facts.
 *  @return DP_OK, or the first error the writer met. */
dp_status dp_shard_writer_close(dp_shard_writer *w, dp_shard_info *info);

/*! Drops the shard: removes the temp file and frees `w`. Accepts NULL. */
void dp_shard_writer_abort(dp_shard_writer *w);

/* ---------------------------------------------------------------- reader */

typedef struct dp_shard_reader dp_shard_reader;

/*! Opens a shard and validates its header (magic, version, header crc, schema,
 *  sizes against the real file size) before allocating anything. Memory held
 *  is about two frames (header frame_raw_max), independent of the shard size.
 *  @return DP_OK and a reader in *out (caller closes it), DP_ERR_IO when the
 *          file cannot be opened/read, DP_ERR_FORMAT for a bad header. */
dp_status dp_shard_reader_open(const char *path, dp_shard_reader **out);

/*! @return the header facts; owned by the reader, valid until close. */
const dp_shard_info *dp_shard_reader_info(const dp_shard_reader *r);

/*! Streams the next record. *rec points into the reader's frame buffer and
 *  stays valid until the next call. At the end, sets *eof = 1 (and *rec = NULL,
 *  *len = 0) only after checking record count, payload size and crc32 against
 *  the header.
 *  @return DP_OK, DP_ERR_FORMAT on truncation or corruption (message names the
 *          file and byte offset), DP_ERR_IO on a read error. */
dp_status dp_shard_reader_next(dp_shard_reader *r, const void **rec, size_t *len, int *eof);

/*! Closes the file and frees the reader. Accepts NULL. */
void dp_shard_reader_close(dp_shard_reader *r);

/* -------------------------------------------------------------- manifest */

enum { DP_MANIFEST_NAME_MAX = 64, DP_MANIFEST_SPLIT_MAX = 16, DP_MANIFEST_FILE_MAX = 128,
       DP_MANIFEST_CLASS_MAX = 256 /* bytes of a class name, NUL included */ };

typedef struct dp_manifest_shard {
    char split[DP_MANIFEST_SPLIT_MAX]; /* e.g. "train", "test" */
    char file[DP_MANIFEST_FILE_MAX];   /* name inside the dataset dir, no '/' */
    uint64_t records;
    uint32_t crc32;                    /* payload crc32, as in the shard header */
} dp_manifest_shard;

/*! A dataset: its name, one schema shared by every shard, and the shards in
 *  global record order (within a split, file order = record order). */
typedef struct dp_manifest {
    char name[DP_MANIFEST_NAME_MAX];
    dp_shard_schema schema;
    int nshards;
    dp_manifest_shard *shards;
    /* Optional (NULL/0 in manifests written before they existed): per-channel
     * (per-feature for vectors) mean and standard deviation of the train
     * split, pixels on [0, 1], as written (%.4g); and one name per class. */
    int nstats;          /* 0, or the schema's channels (features) */
    double *mean, *std;  /* nstats each, owned */
    char **class_names;  /* NULL, or one name per class (any bytes but NUL), owned */
    int nclass_names;    /* entries in class_names: the schema's classes */
    /* Optional ("" when absent): the rule that made the train/test split, one
     * word of [a-z0-9_-] (dsi-prepare's text split writes "text"). */
    char split_rule[DP_MANIFEST_SPLIT_MAX];
} dp_manifest;

/*! Reads "<dir>/manifest.txt" (format in shards/README.md).
 *  @return DP_OK and a manifest in *out (free with dp_manifest_free), DP_ERR_IO
 *          if it cannot be read, DP_ERR_FORMAT naming file and line otherwise. */
dp_status dp_manifest_load(const char *dir, dp_manifest **out);

/*! Writes "<dir>/manifest.txt" atomically (temp file, fsync, rename, dir fsync).
 *  @return DP_OK, DP_ERR_ARG for names the format cannot hold, DP_ERR_IO. */
dp_status dp_manifest_save(const char *dir, const dp_manifest *m);

/*! @return a 64-bit FNV-1a hash of the manifest's content (not its text layout:
 *          comments and spacing do not change it), for ranks to compare. Stats
 *          and class names enter it only when present, so manifests without
 *          them hash as before they existed. */
uint64_t dp_manifest_hash(const dp_manifest *m);

/*! Removes "<dir>/manifest.txt" if there (a missing file or directory is
 *  nothing to do) and makes the removal durable: a writer drops the manifest
 *  before it rewrites shards, so until the new one lands the directory holds
 *  no dataset rather than an old manifest over half-new shards.
 *  @return DP_OK or DP_ERR_IO naming the file. */
dp_status dp_manifest_remove(const char *dir);

/*! Opens the shard `ms` of manifest `m` inside `dir` and checks its header
 *  against the manifest (schema, record count, payload crc32), so a loader
 *  reads only what manifest.txt promises. The shard's path lands in
 *  path[0..cap) for the caller's messages.
 *  @return DP_OK and a reader in *out (caller closes it), or the error of
 *          the join, the open or the check, naming the file and header offset. */
dp_status dp_manifest_open_shard(const char *dir, const dp_manifest *m, const dp_manifest_shard *ms,
                                 char *path, size_t cap, dp_shard_reader **out);

/*! Frees a manifest from dp_manifest_load. Accepts NULL. */
void dp_manifest_free(dp_manifest *m);

/* ------------------------------------------------------------ IDX import */

/*! An unsigned-byte IDX array (LeCun's MNIST format): dims[0..ndim-1] and
 *  dims[0]*...*dims[ndim-1] bytes of data. */
typedef struct dp_idx {
    int ndim;
    uint32_t dims[3];
    uint8_t *data; /* owned; free with dp_idx_free */
    size_t size;   /* bytes in data */
} dp_idx;

/*! Reads a (gzip'd or plain) IDX file of unsigned bytes with `ndim` dimensions
 *  (1 = labels, magic 0x00000801; 3 = images, magic 0x00000803), rejecting
 *  truncation and trailing bytes. Offsets in messages are in the uncompressed
 *  stream. @return DP_OK, DP_ERR_IO, DP_ERR_FORMAT, DP_ERR_NOMEM. */
dp_status dp_idx_load(const char *path, int ndim, dp_idx *out);

/*! An unsigned-byte IDX array read piece by piece: memory is zlib's buffers,
 *  whatever the file's size. */
typedef struct dp_idx_stream dp_idx_stream;

/*! Opens a (gzip'd or plain) IDX file and checks its header as dp_idx_load
 *  does (magic, non-zero dims, a plain file's size); dims gets ndim values.
 *  @return DP_OK and *out (close it), DP_ERR_IO, DP_ERR_FORMAT. */
dp_status dp_idx_open(const char *path, int ndim, dp_idx_stream **out, uint32_t dims[3]);

/*! The next n data bytes into buf. @return DP_OK, DP_ERR_FORMAT naming the file
 *  and offset when the stream ends first or is corrupt, DP_ERR_IO. */
dp_status dp_idx_read(dp_idx_stream *s, void *buf, size_t n);

/*! After every data byte was read: no trailing bytes, a valid gzip trailer. */
dp_status dp_idx_finish(dp_idx_stream *s);

/*! Closes the file and frees s. Accepts NULL. */
void dp_idx_close(dp_idx_stream *s);

/*! Frees the data of an IDX array and zeroes it. Accepts NULL. */
void dp_idx_free(dp_idx *idx);

typedef struct dp_import_stats {
    long train_records, test_records;
    int train_shards, test_shards;
    uint64_t raw_bytes;        /* uncompressed payload bytes written */
    uint64_t compressed_bytes; /* shard bytes on disk, headers included */
    uint64_t in_bytes;         /* input bytes read (as stored: compressed if gzip'd); set by importers */
    double seconds;
} dp_import_stats;

/* ----------------------------------------------- a dataset's directory */

/*! Where a command that writes a dataset puts it: into a fresh temporary
 *  sibling "<out>.tmp.<pid>", renamed into place once complete, so a failed or
 *  interrupted write leaves the old dataset in `out` as it was. */
typedef struct dp_dataset_dir {
    char out[4096]; /* the directory asked for (--out) */
    char tmp[4096]; /* where the new dataset is written */
} dp_dataset_dir;

/*! Refuses `out` when it holds anything but an earlier copy of the same dataset
 *  (manifest.txt naming `name` with a schema of kind `kind`, and besides it only
 *  what a writer puts there: "*.dps", "*.tmp", the names in `extra` (a
 *  NULL-ended list, or NULL) and, when `member_dirs`, directories "m<N>"),
 *  unless `overwrite`: then all of `out` is replaced. Creates d->tmp empty.
 *  @return DP_OK, DP_ERR_ARG (naming the directory, what it holds, --overwrite),
 *  DP_ERR_IO. */
dp_status dp_dataset_dir_begin(dp_dataset_dir *d, const char *out, const char *name, int kind,
                               const char *const *extra, int member_dirs, int overwrite);
/*! Moves d->tmp to d->out (the old out, if any, aside first, then removed). */
dp_status dp_dataset_dir_commit(dp_dataset_dir *d);
/*! Removes d->tmp and everything in it; `out` is untouched. */
void dp_dataset_dir_abort(dp_dataset_dir *d);

/* -------------------------------------------------------- dataset writer */

/*! Every importer writes through this: splits of records cut into contiguous
 *  shards "<split>-NNNNN.dps", per-channel statistics of the train split, class
 *  names, and manifest.txt as the commit point. */
typedef struct dp_dataset_writer dp_dataset_writer;

/*! Starts a dataset for out_dir (dp_dataset_dir_begin: refused when out_dir
 *  holds another dataset or other files, unless `overwrite`). Shards and
 *  manifest.txt go to a temporary sibling that commit renames into place, so
 *  a failed or interrupted import leaves the old out_dir as it was.
 *  @return DP_OK and *out, DP_ERR_ARG (bad name or schema, another dataset), DP_ERR_IO, DP_ERR_NOMEM. */
dp_status dp_dataset_writer_open(const char *out_dir, const char *name, const dp_shard_schema *schema, int overwrite,
                                 dp_dataset_writer **out);

/*! Optional: class names (index = label), kept in the manifest; n must equal
 *  the schema's classes, a name is 1..255 bytes of anything but NUL.
 *  @return DP_OK or DP_ERR_ARG. */
dp_status dp_dataset_writer_classes(dp_dataset_writer *w, int n, const char *const *names);

/*! Progress lines on f (NULL: none, the default): records written and MB/s,
 *  at most a few a second, ended by a newline at commit. */
void dp_dataset_writer_progress(dp_dataset_writer *w, FILE *f);

/*! Starts a split: `records` that will follow, cut into min(nshards, records)
 *  contiguous shards (the first records % k hold one more). The previous split
 *  must be complete. @return DP_OK, DP_ERR_ARG (bad name, nshards outside
 *  1..DP_DATASET_MAX_SHARDS, split repeated, previous split short). */
dp_status dp_dataset_writer_split(dp_dataset_writer *w, const char *split, uint64_t records, int nshards);

/*! One record of the current split: its label and record_size-2 bytes of
 *  values (u8 pixels CHW; or F floats in host order, written LE, pad included
 *  by the writer). @return DP_OK, DP_ERR_ARG (label out of range, more records
 *  than announced, a non-finite float), DP_ERR_IO. */
dp_status dp_dataset_writer_add(dp_dataset_writer *w, uint32_t label, const void *values);

/*! Closes the last shard, writes manifest.txt (with per-channel mean/std of the
 *  train split when it has records), fills st (in_bytes untouched) and frees w
 *  whatever happens; on failure it removes what it wrote, as abort does. */
dp_status dp_dataset_writer_commit(dp_dataset_writer *w, dp_import_stats *st);

/*! Removes the shards this writer wrote and frees it; accepts NULL. */
void dp_dataset_writer_abort(dp_dataset_writer *w);

enum { DP_DATASET_MAX_SHARDS = 4096 };

/*! Stratified hold-out without randomness: the j-th record (0-based, in input
 *  order) of class c goes to validation (is_val = 1) when
 *  floor((j+1) * frac) > floor(j * frac), so every class gives floor(n_c * frac)
 *  records, spread evenly through it. Labels outside [0, classes) are never held
 *  out. frac in [0, 1]. */
void dp_stratified_holdout(const int32_t *labels, long n, int classes, double frac, uint8_t *is_val);

/*! Imports Fashion-MNIST (or MNIST) from `idx_dir` ({train,t10k}-{images-idx3,
 *  labels-idx1}-ubyte.gz) into `out_dir` (created if missing) through the IDX
 *  importer (dptrain/import.h): 28x28 images, 10 classes with Fashion-MNIST's
 *  names, train-NNNNN.dps and test-NNNNN.dps, `nshards` each (fewer if a split
 *  has fewer records), each a contiguous range of the IDX order, then
 *  manifest.txt. Any old manifest is removed first, so an interrupted import
 *  leaves no dataset. @param st optional, receives counts and timing.
 *  @return DP_OK, DP_ERR_ARG (nshards outside 1..DP_DATASET_MAX_SHARDS), DP_ERR_IO, DP_ERR_FORMAT. */
dp_status dp_import_fashion_mnist(const char *idx_dir, const char *out_dir, int nshards,
                                  dp_import_stats *st);

/* ------------------------------------------------------------- image set */

/*! One rank's share of an image split, held in memory. A vector_f32 dataset
 *  loads as images of c = features channels of 1x1, its records in `values`. */
typedef struct dp_image_set {
    long n;                  /* images held by this rank */
    int c, h, w, classes;
    uint8_t *pixels;         /* u8 images: n * c*h*w bytes, image i at i*c*h*w, CHW order; NULL for vectors */
    float *values;           /* vectors: n * c floats, record i at i*c; NULL for u8 images */
    int32_t *labels;         /* n labels in [0, classes) */
    long split_total;        /* images in the split after `limit`, all ranks together */
    float *mean, *std;       /* c each: the manifest's per-channel statistics, or the defaults */
} dp_image_set;

/*! Loads rank `rank`'s share of `split` from the dataset in `dir`.
 *  The split is first cut to its first `limit` records in global order (if
 *  limit > 0; shards left empty drop out). Then, with at least as many shards
 *  as ranks, shard i goes to rank i mod nranks; otherwise every rank takes a
 *  contiguous, near-equal record range (the first n % nranks ranks get one
 *  more). Every shard touched is read to its end and checked against its header
 *  and the manifest (schema, count, crc32); labels are range-checked.
 *  @return DP_OK and *out filled (free with dp_image_set_free), DP_ERR_ARG for a
 *          bad rank/nranks or unknown split, DP_ERR_IO, DP_ERR_FORMAT, DP_ERR_NOMEM. */
dp_status dp_image_set_load(const char *dir, const char *split, int rank, int nranks,
                            long limit, dp_image_set *out);

/*! The pixel statistics a manifest without `mean`/`std` lines normalises u8
 *  images with (Fashion-MNIST's, on [0, 1]); vectors without them are not
 *  normalised (mean 0, std 1). */
#define DP_IMAGE_DEFAULT_MEAN 0.2860f
#define DP_IMAGE_DEFAULT_STD 0.3530f

/*! Floats in the normalisation table of s: c*256 for u8 images (one byte ->
 *  float table per channel), 2*c for vectors (the means, then the stds). */
size_t dp_image_norm_size(const dp_image_set *s);

/*! Fills lut[dp_image_norm_size(s)] from s's statistics: for u8 images
 *  lut[ch*256 + v] = (v / 255 - mean[ch]) / std[ch], in float. */
void dp_image_norm_fill(const dp_image_set *s, float *lut);

/*! lut[v] = (v / 255 - mean) / std with the default statistics (one channel). */
void dp_image_norm_lut(float lut[256]);

/*! Images idx[first .. first+bs) of s (or first .. first+bs when idx is NULL)
 *  into x [bs, c*h*w] as floats normalised through lut (dp_image_norm_fill),
 *  and their labels into y [bs]. Allocates nothing. */
void dp_image_set_batch(const dp_image_set *s, const float *lut, const int32_t *idx, long first, long bs, float *x,
                        int32_t *y);

/*! A view of images [first, first + n) of s: shares s's buffers (free only s). */
dp_image_set dp_image_set_view(const dp_image_set *s, long first, long n);

/*! Frees the buffers of an image set and zeroes it. Accepts NULL. */
void dp_image_set_free(dp_image_set *s);

#ifdef __cplusplus
}
#endif
#endif
