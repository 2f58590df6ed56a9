/* Checkpoint files: a checksummed header and a zstd-compressed body of tagged
 * sections (config text, position and RNG state, parameters, buffers,
 * optimizer state). Written atomically: temp file, fsync, rename, fsync of the
 * directory, so a crash leaves the previous checkpoint intact.
 * The byte layout is documented in docs/CHECKPOINT.md. */
#ifndef DPTRAIN_CHECKPOINT_H
#define DPTRAIN_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "dptrain/status.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
    DP_CK_CONFIG = 1, /* text */
    DP_CK_STATE = 2,  /* dp_drive_state (task.h) */
    DP_CK_PARAMS = 3, /* float[] */
    DP_CK_BUFFERS = 4,/* float[] */
    DP_CK_OPTIM = 5,  /* float[] */
    DP_CK_RNG = 6,    /* every rank's streams, rank order */
    DP_CK_RESIDUAL = 7, /* every rank's compressor state, rank order */
    DP_CK_TASK = 8,   /* a task's own counters */
    DP_CK_TASK_FIRST = 16, /* tags a task numbers on its own */
    DP_CK_MAX_SECTIONS = 16,
};

typedef struct dp_ck_section {
    uint32_t tag;
    const void *data; /* writer: the caller's bytes; reader: points into the loaded body */
    uint64_t size;
} dp_ck_section;

/*! Writes sections to `path` atomically (path.tmp, fsync, rename, fsync dir). */
dp_status dp_checkpoint_write(const char *path, const dp_ck_section *s, int n);
/*! The same, keeping the keep - 1 checkpoints it replaces as path.1 (newest)
 *  .. path.(keep-1); `path` is a whole checkpoint at every instant. */
dp_status dp_checkpoint_write_keep(const char *path, const dp_ck_section *s, int n, int keep);

typedef struct dp_checkpoint {
    void *body;     /* owned: the decompressed body */
    dp_ck_section sections[DP_CK_MAX_SECTIONS];
    int n;
} dp_checkpoint;

/*! Reads and verifies `path` (sizes against the file, header and body crc32).
 *  DP_ERR_FORMAT names the file, offset and what is wrong. */
dp_status dp_checkpoint_read(const char *path, dp_checkpoint *ck);
/*! `path`, or when it cannot be read (damaged, truncated, missing after a crash
 *  between rotation steps) the newest of the kept older ones that can
 *  (path.1, path.2, ...; see dp_checkpoint_write_keep), saying so on stderr as
 *  "warning: <why>; <verb> the older <file>". The file read lands in used[cap].
 *  @return DP_OK, or the error of reading `path` itself. */
dp_status dp_checkpoint_read_newest(const char *path, const char *verb, dp_checkpoint *ck, char *used, size_t cap);
/*! The section with `tag`, or NULL. */
const dp_ck_section *dp_checkpoint_find(const dp_checkpoint *ck, uint32_t tag);
void dp_checkpoint_free(dp_checkpoint *ck);

/*! Compares a checkpoint's configuration text with this run's (key=value
 *  lines): 1 when a key of `saved` for which matters(key) holds (NULL: every
 *  key) is missing from `now` or has another value; its name is put in key. */
int dp_checkpoint_config_diff(const char *saved, const char *now, int (*matters)(const char *key), char *key,
                              size_t kn);

#ifdef __cplusplus
}
#endif
#endif
