/* Shared by the fuzz harnesses (tests/fuzz/fuzz_*.c): most parsers take a
 * path, so each process owns one scratch directory that the harness writes
 * the input into, and multi-file inputs (a dataset dir, Packages plus
 * Translation-en) arrive as one blob cut at a marker line. Header checksums
 * would stop a mutator at the first byte it changes, so the harnesses also
 * replay a copy with the checksums recomputed (fuzz_fix_*). */
#ifndef DP_FUZZ_UTIL_H
#define DP_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "dptrain/status.h"

/* Between the files of a multi-file input (seed_gen.c writes it the same way). */
#define FUZZ_CUT "\n--8<--\n"
enum { FUZZ_MAX_PARTS = 8 };

/* The process's scratch directory (made on first use, removed at exit). */
const char *fuzz_dir(void);

/* Writes data[0..n) to <fuzz_dir>/<name> and returns that path (static buffer
 * per call slot `slot` < 8). Aborts on I/O failure: that is the harness's fault. */
const char *fuzz_write(const char *name, const void *data, size_t n, int slot);

/* Cuts data at FUZZ_CUT into at most `max` parts (the last keeps the rest);
 * returns the count. Missing parts are empty. */
int fuzz_split(const uint8_t *data, size_t n, const uint8_t **part, size_t *len, int max);

/* Recomputes the shard header crc32 in a copy (NULL when n < the header). */
uint8_t *fuzz_fix_shard(const uint8_t *data, size_t n);

/* Recomputes a checkpoint's body crc32 (when its zstd frame decodes) and its
 * header crc32 in a copy (NULL when n < the header). */
uint8_t *fuzz_fix_checkpoint(const uint8_t *data, size_t n);

/* Writes the input to `name` and calls read(path); then again with the
 * checkpoint crcs recomputed (fuzz_fix_checkpoint), when that changes it. */
void fuzz_checkpoint_twice(const char *name, const uint8_t *data, size_t n, void (*read)(const char *path));

/* Aborts (a finding) when a FORMAT or IO rejection's message does not name
 * `name`: every reader promises file-naming messages. */
void fuzz_expect_named(dp_status rc, const char *name);

/* With FUZZ_VERBOSE set, prints each verdict (to see what a seed or a
 * regression input reaches); otherwise nothing. */
void fuzz_note(dp_status rc);

#endif
