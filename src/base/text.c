/* dp_line_read, dp_escape and dp_json_string (text.h). */
#include "dptrain/text.h"

#include <errno.h>
#include <string.h>

dp_status dp_line_read(FILE *f, const char *what, long line, char *buf, size_t cap, size_t *len, int *eof)
{
    size_t n = 0;
    int ch = EOF, nul = 0;
    *eof = 0;
    *len = 0;
    buf[0] = '\0';
    /* byte by byte: fgets cannot tell a NUL in the line from its end */
    while ((ch = getc(f)) != EOF && ch != '\n') {
        if (n + 1 >= cap) /* no room for the byte and the NUL after it */
            return dp_errorf(DP_ERR_FORMAT, "%s:%ld: line longer than %zu bytes (refused, not split)", what, line,
                             DP_LINE_MAX(cap));
        nul |= ch == 0;
        buf[n++] = (char)ch;
    }
    if (ch == EOF && ferror(f))
        return dp_errorf(DP_ERR_IO, "%s: read error at line %ld: %s", what, line, strerror(errno));
    if (ch == EOF && n == 0) {
        *eof = 1;
        return DP_OK;
    }
    if (nul) return dp_errorf(DP_ERR_FORMAT, "%s:%ld: NUL byte in a text line", what, line);
    if (n > 0 && buf[n - 1] == '\r') n--;
    buf[n] = '\0';
    *len = n;
    return DP_OK;
}

/* Bytes of the valid UTF-8 character at s that is not a C1 control (U+0080..U+009F), else 0. */
static int utf8_ok(const unsigned char *s)
{
    const unsigned char c = s[0];
    int n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    for (int i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80) return 0; /* also stops at the string's NUL */
    if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f) || (c == 0xf0 && s[1] < 0x90) ||
        (c == 0xf4 && s[1] > 0x8f) || (c == 0xc2 && s[1] <= 0x9f))
        return 0; /* overlong, a surrogate, past U+10FFFF, a C1 control */
    return n;
}

const char *dp_escape(const char *s, char *buf, size_t cap)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0, cut = 0; /* cut: the end of the last piece that still leaves room for "..." */
    while (*p) {
        char piece[8];
        int take = 1, w;
        if (*p >= 0x80) take = utf8_ok(p);
        if (*p == '\\') w = snprintf(piece, sizeof piece, "\\\\");
        else if (*p < 0x20 || *p == 0x7f || take == 0) w = snprintf(piece, sizeof piece, "\\x%02x", *p), take = 1;
        else w = take, memcpy(piece, p, (size_t)take);
        if (o + (size_t)w + 1 > cap) {
            memcpy(buf + cut, "...", 4);
            return buf;
        }
        memcpy(buf + o, piece, (size_t)w);
        o += (size_t)w;
        p += take;
        if (o + 4 <= cap) cut = o;
    }
    buf[o] = '\0';
    return buf;
}

void dp_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}
