/* File helpers for every room that writes: atomic replace (temp + fsync +
 * rename + directory fsync), directories, and path joining with a length check. */
#ifndef DPTRAIN_FSUTIL_H
#define DPTRAIN_FSUTIL_H

#include <stddef.h>
#include <stdio.h>

#include "dptrain/status.h"

/* fsyncs the directory holding `path`, so a rename into it survives a crash. */
dp_status dp_fsync_parent_dir(const char *path);

/* Writes `len` bytes to "<path>.tmp", fsyncs, renames to `path`, fsyncs the dir. */
dp_status dp_write_file_atomic(const char *path, const void *buf, size_t len);

/* The temporary file is created anew (O_EXCL, O_NOFOLLOW): a stale regular
 * one is removed first, a symbolic link or anything else there is refused. */

/* The same, keeping the `keep` - 1 files it replaces as path.1 (newest) ..
 * path.(keep-1): before the rename, path.i moves to path.(i+1) and path is
 * hard-linked as path.1. `path` is whole at every instant. */
dp_status dp_write_file_keep(const char *path, const void *buf, size_t len, int keep);

/* Opens a file we write into a run directory (metrics.jsonl, a search's
 * CSV), appending or truncating, into *out: a symbolic link or anything but a
 * regular file at `path` is refused naming it, never written through. */
dp_status dp_open_output(const char *path, int append, FILE **out);

/* mkdir -p: `dir` and any missing parents (a run directory such as runs/NAME);
 * DP_ERR_IO naming the part that could not be made, or a non-directory. */
dp_status dp_mkdir_p(const char *dir);

/* A whole text file of at most `max` bytes, NUL-terminated, into *out (the
 * caller frees it); an error naming the file and offset for a larger file, one
 * that grew while being read, or one holding a NUL byte; a FIFO, device or
 * directory is refused unread (dp_open_regular, dptrain/infile.h). */
dp_status dp_read_text(const char *path, size_t max, char **out);
/* "<dir>/<name>" into out[cap]; DP_ERR_ARG if it does not fit. */
dp_status dp_path_join(char *out, size_t cap, const char *dir, const char *name);

#endif
