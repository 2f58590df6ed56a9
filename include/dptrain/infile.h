/* Input files: every file the program reads is opened here, and only when it
 * is a regular file. A FIFO, a device or a directory given as a shard, a
 * manifest, a description or a genotype would block in open() or read()
 * forever (or read garbage); it is refused instead, naming the file. The open
 * itself cannot block: it is made with O_NONBLOCK, which is cleared once
 * fstat has shown a regular file.
 *
 * The opens and the whole-file reads also say what they are doing (dp_io_*):
 * the watchdog (comm.h) reports a rank that has been inside one file operation
 * for longer than its timeout, e.g. a hung network file system at start-up. */
#ifndef DPTRAIN_INFILE_H
#define DPTRAIN_INFILE_H

#include <stddef.h>
#include <stdio.h>

#include "dptrain/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/*! Opens `path` read-only (plus `flags`, e.g. O_NOFOLLOW) into *fd, close-on-exec.
 *  DP_ERR_IO naming the file when it cannot be opened, is a symbolic link under
 *  O_NOFOLLOW, or is not a regular file ("a FIFO", "a directory", ...). */
dp_status dp_open_regular(const char *path, int flags, int *fd);

/*! The same as a stdio stream in binary read mode. */
dp_status dp_fopen_regular(const char *path, int flags, FILE **out);

/*! A file operation on `path` begins (`what`: a literal such as "opening") or ends,
 *  for the watchdog. Not nested; one thread does the program's file reads. */
void dp_io_begin(const char *what, const char *path);
void dp_io_end(void);

/*! Seconds the current file operation has lasted (0: none), and "opening PATH"
 *  into out[cap]. Safe to call from another thread. */
double dp_io_busy(char *out, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
