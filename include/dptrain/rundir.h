/* A run directory (--out of train, search, dsi-train) as one run's own: an
 * exclusive lock held for the run's life, no silent reuse of another run's
 * files, and damaged checkpoints kept aside rather than rotated over good ones. */
#ifndef DPTRAIN_RUNDIR_H
#define DPTRAIN_RUNDIR_H

#include <stddef.h>

#include "dptrain/status.h"

/* The lock file's name inside the run directory. */
#define DP_RUNDIR_LOCK "lock"

/* Creates `dir` if missing and locks it (flock on DIR/lock, which then names
 * this host and pid); *lock_fd keeps the lock until dp_rundir_unlock. A run
 * holding it already is named (host, pid) in the error. Then, unless `resume`,
 * a directory holding a run's files (`ckpt`, ckpt.1 or a non-empty metrics.jsonl) is
 * refused naming --resume and --overwrite, or with `overwrite` those files are
 * removed. Nothing is written before the lock is held. */
dp_status dp_rundir_open(const char *dir, const char *ckpt, int resume, int overwrite, int *lock_fd);

/* Empties the lock file and releases the lock (the file stays: removing it
 * could race a run starting). */
void dp_rundir_unlock(int *lock_fd);

/* After a --resume read `used` (ckpt.K) because ckpt .. ckpt.(K-1) failed:
 * each of those still there moves to ckpt.damaged (.damaged.N when taken),
 * so no later rotation moves a damaged file over a good one. */
dp_status dp_rundir_set_aside(const char *ckpt, const char *used);

/* The last line of DIR/metrics.jsonl that holds `key` (e.g. "\"kind\":\"epoch\""),
 * at most cap - 1 bytes of it, into out; 0 if there is none. */
int dp_rundir_last_record(const char *dir, const char *key, char *out, size_t cap);

#endif
