/* safetensors files (Hugging Face's format, https://github.com/huggingface/safetensors):
 * the trained model out (`dptrain export`) and weights in (`train --init`).
 *
 *   u64 LE N | N bytes of JSON header, space-padded | raw little-endian tensor bytes
 *   header = {"__metadata__": {str: str}, NAME: {"dtype": D, "shape": [..], "data_offsets": [b, e]}, ...}
 *
 * Offsets are relative to the byte after the header. The reader is strict: the
 * header length must fit the file, the header must be one JSON object (cJSON)
 * with no duplicate names, every dtype known, every (b, e) inside the data, e - b
 * equal to the shape's element count times the dtype's size, and the ranges,
 * sorted, must tile the data exactly (no overlap, no hole, nothing after): the
 * rules of the reference implementation. Loading into a parameter registry
 * converts F64, F16 and BF16 to F32 (F64 rounds to nearest; F16 and BF16 widen
 * exactly); any other dtype is refused there, except `<bn>.num_batches_tracked`
 * (PyTorch's batch-norm step counter, I64), which dptrain has no use for: its
 * momentum is fixed, so the counter is accepted and ignored, and not written. */
#ifndef DPTRAIN_SAFETENSORS_H
#define DPTRAIN_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "dptrain/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DP_ST_MAX_DIMS 8
#define DP_ST_MAX_HEADER (100u << 20) /* the reference implementation's limit */

typedef enum dp_st_dtype {
    DP_ST_BOOL, DP_ST_U8, DP_ST_I8, DP_ST_F8_E4M3, DP_ST_F8_E5M2, DP_ST_I16, DP_ST_U16, DP_ST_F16, DP_ST_BF16,
    DP_ST_I32, DP_ST_U32, DP_ST_F32, DP_ST_I64, DP_ST_U64, DP_ST_F64, DP_ST_NDTYPES
} dp_st_dtype;

typedef struct dp_st_tensor {
    char *name;                      /* owned by the file */
    dp_st_dtype dtype;
    int ndim;                        /* 0: a scalar */
    int64_t shape[DP_ST_MAX_DIMS];
    uint64_t begin, end;             /* data_offsets, relative to the data */
    const uint8_t *data;             /* end - begin bytes inside the file's buffer */
} dp_st_tensor;

typedef struct dp_st_meta { const char *key, *value; } dp_st_meta; /* owned by a file read */

typedef struct dp_safetensors {
    char path[512];
    uint8_t *buf;                    /* the whole file */
    size_t size;
    dp_st_tensor *t;                 /* in header order */
    int n;
    dp_st_meta *meta;                /* __metadata__, in header order */
    int nmeta;
    uint64_t hash;                   /* XXH3-64 of the whole file */
} dp_safetensors;

/*! The dtype's name ("F32") and element size in bytes. */
const char *dp_st_dtype_name(dp_st_dtype d);
size_t dp_st_dtype_size(dp_st_dtype d);

/*! Reads and checks a whole file. Messages name the file, and the tensor when one is at fault.
 *  @return DP_OK (free with dp_safetensors_free), DP_ERR_IO, DP_ERR_FORMAT, DP_ERR_NOMEM. */
dp_status dp_safetensors_read(const char *path, dp_safetensors *out);
/*! The same checks on bytes in memory (copied); `path` only names them in messages. */
dp_status dp_safetensors_parse(const char *path, const void *bytes, size_t size, dp_safetensors *out);
void dp_safetensors_free(dp_safetensors *f); /* accepts a zeroed or freed one */

/*! The tensor called `name`, or NULL. */
const dp_st_tensor *dp_safetensors_find(const dp_safetensors *f, const char *name);
/*! The metadata value of `key`, or NULL. */
const char *dp_safetensors_meta(const dp_safetensors *f, const char *key);
/*! "[a, b, c]" into buf. */
void dp_st_shape_text(int ndim, const int64_t *shape, char *buf, size_t cap);

/*! Writes every parameter and buffer of a finalised registry by its name, F32, in
 *  registry order, with `nmeta` metadata pairs (NULL values are left out), atomically
 *  (path.tmp, fsync, rename, directory fsync). */
dp_status dp_safetensors_write_params(const char *path, const dp_params *p, const dp_st_meta *meta, int nmeta);

/*! Copies the file's tensors into the registry's parameters and buffers by name. Every
 *  parameter and buffer must be in the file with its shape; a tensor of the file that the
 *  registry lacks is an error unless `partial`, when its name is appended to `skipped`
 *  (comma-separated, truncated with "..." past `cap`; may be NULL). Checks everything before
 *  writing anything: on failure the registry is unchanged.
 *  @return DP_OK, DP_ERR_FORMAT naming the file, the tensor and both shapes or the dtype. */
dp_status dp_safetensors_load_params(const dp_safetensors *f, dp_params *p, int partial, char *skipped, size_t cap);
/*! The checks of dp_safetensors_load_params alone: the same verdict and message, nothing written. */
dp_status dp_safetensors_check_params(const dp_safetensors *f, const dp_params *p, int partial, char *skipped,
                                      size_t cap);

#ifdef __cplusplus
}
#endif
#endif
