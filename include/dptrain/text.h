/* Text read from files and pipes: whole lines with a stated limit, and that text echoed safely.
 *
 * A line longer than its reader's limit, or one holding a NUL byte, is refused with its line number rather
 * than split or cut (a split line would be answered as two queries, every later answer misnumbered).
 * Messages that echo text read from a file (a manifest word, a docid, a class folder) pass it through
 * dp_escape, so a name holding an escape sequence cannot rewrite the user's terminal. */
#ifndef DPTRAIN_TEXT_H
#define DPTRAIN_TEXT_H

#include <stddef.h>
#include <stdio.h>

#include "dptrain/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/*! Reads the next line of f into buf[cap] without its '\n' (and a '\r' before it), NUL-terminated, its
 *  length in *len; *eof = 1 (and DP_OK) when f has no more lines. A line longer than DP_LINE_MAX(cap) bytes
 *  fails (DP_ERR_FORMAT, "WHAT:LINE: line longer than N bytes ..."), so does a NUL byte in it; `line` is the
 *  line's 1-based number, for the message only. A last line without '\n' is a line. */
dp_status dp_line_read(FILE *f, const char *what, long line, char *buf, size_t cap, size_t *len, int *eof);

/*! Largest line a reader with a buf of `cap` bytes accepts. */
#define DP_LINE_MAX(cap) ((cap) - 1)

/*! s made printable into buf[cap] (cap >= 8): control bytes (below 0x20, 0x7f, UTF-8 C1 controls) and bytes
 *  that are not UTF-8 become \xNN, a backslash \\; valid UTF-8 stays as it is. Longer than buf: cut at a
 *  whole escape and ended with "...". @return buf. */
const char *dp_escape(const char *s, char *buf, size_t cap);

/*! s written to f as a JSON string, quoted and escaped. */
void dp_json_string(FILE *f, const char *s);

/*! Buffer size for DP_ESC: a 60-byte name escaped whole (4 bytes per byte at worst) with room to spare. */
#define DP_ESCAPE_CAP 256

/*! dp_escape into a buffer that lives until the end of the enclosing block: for a message's arguments,
 *  dp_errorf(DP_ERR_FORMAT, "%s: unknown keyword '%s'", where, DP_ESC(word)). */
#define DP_ESC(s) dp_escape((s), (char[DP_ESCAPE_CAP]){""}, DP_ESCAPE_CAP)

#ifdef __cplusplus
}
#endif
#endif
