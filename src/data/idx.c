/* Reader for LeCun's IDX arrays (MNIST, Fashion-MNIST), gzip'd or plain,
 * through zlib's gz* API: as a stream read piece by piece (the importer), or
 * whole (dp_idx_load). Only unsigned-byte arrays of 1 or 3 dimensions are
 * accepted; offsets in messages count bytes of the uncompressed stream. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "dptrain/data.h"
#include "dptrain/infile.h"

enum { IDX_TYPE_U8 = 0x08, IDX_MAX_BYTES = 1 << 30 };
/* A stream holds no more than its buffers, so only overflow bounds its size. */
#define IDX_STREAM_MAX_BYTES (UINT64_C(1) << 48)

/* Reads up to n bytes; a short count means end of stream or error, which the
 * caller tells apart with gz_fail. */
static size_t gz_read_full(gzFile gz, void *dst, size_t n)
{
    size_t got = 0;
    while (got < n) {
        size_t chunk = n - got > (1u << 30) ? (1u << 30) : n - got;
        int r = gzread(gz, (char *)dst + got, (unsigned)chunk);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return got;
}

/* Turns a short read at `off` into the right status: I/O error, corrupt gzip
 * stream, or plain truncation described by `what`. */
static dp_status gz_fail(gzFile gz, const char *path, uint64_t off, const char *what)
{
    int err = Z_OK;
    const char *msg = gzerror(gz, &err);
    if (err == Z_ERRNO)
        return dp_errorf(DP_ERR_IO, "%s: offset %" PRIu64 ": read: %s", path, off, strerror(errno));
    if (err != Z_OK && err != Z_BUF_ERROR)
        return dp_errorf(DP_ERR_FORMAT, "%s: offset %" PRIu64 ": corrupt gzip stream: %s", path,
                         off, msg);
    return dp_errorf(DP_ERR_FORMAT, "%s: offset %" PRIu64 ": %s", path, off, what);
}

/* The data must fill a plain file exactly; compared with stat's size so that
 * a header promising a gigabyte from a 20-byte file allocates nothing. */
static dp_status plain_size_check(const char *path, size_t hlen, size_t data)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return dp_errorf(DP_ERR_IO, "%s: stat: %s", path, strerror(errno));
    uint64_t have = (uint64_t)st.st_size - hlen; /* the header was read, so size >= hlen */
    if (S_ISREG(st.st_mode) && have < data)
        return dp_errorf(DP_ERR_FORMAT, "%s: offset %zu: truncated: header dimensions promise %zu data bytes, "
                         "file holds %" PRIu64, path, hlen + (size_t)have, data, have);
    return DP_OK;
}

struct dp_idx_stream {
    gzFile gz;
    char *path;
    size_t hlen;   /* header bytes */
    uint64_t size; /* data bytes the header promises */
    uint64_t pos;  /* data bytes read so far */
};

/* Opens path and checks its header; `limit` bounds the data bytes the dims may promise. */
static dp_status stream_open(const char *path, int ndim, uint64_t limit, dp_idx_stream **out, uint32_t dims[3])
{
    *out = NULL;
    if (ndim != 1 && ndim != 3)
        return dp_errorf(DP_ERR_ARG, "%s: IDX arrays of %d dimensions are not supported", path, ndim);
    dp_idx_stream *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) {
        free(s);
        return dp_errorf(DP_ERR_NOMEM, "%s: out of memory", path);
    }
    int fd;
    dp_status orc = dp_open_regular(path, 0, &fd);
    if (orc != DP_OK) {
        dp_idx_close(s);
        return orc;
    }
    s->gz = gzdopen(fd, "rb");
    if (!s->gz) {
        close(fd);
        dp_status rc = dp_errorf(DP_ERR_NOMEM, "%s: open: out of memory", path);
        dp_idx_close(s);
        return rc;
    }
    gzbuffer(s->gz, 1 << 17);
    *out = s;
    uint8_t hdr[4 + 4 * 3];
    s->hlen = 4 + 4 * (size_t)ndim;
    size_t got = gz_read_full(s->gz, hdr, s->hlen);
    if (got < s->hlen)
        return gz_fail(s->gz, path, got, "truncated inside the IDX header");
    uint32_t magic = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
    uint32_t want = IDX_TYPE_U8 << 8 | (uint32_t)ndim;
    if (magic != want)
        return dp_errorf(DP_ERR_FORMAT, "%s: offset 0: bad IDX magic 0x%08" PRIx32 " (want 0x%08" PRIx32
                         ": unsigned bytes, %d dimensions)", path, magic, want, ndim);
    uint64_t size = 1;
    for (int i = 0; i < ndim; i++) {
        const uint8_t *p = hdr + 4 + 4 * i;
        dims[i] = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        size *= dims[i] ? dims[i] : 1;
        if (dims[i] == 0 || size > limit)
            return dp_errorf(DP_ERR_FORMAT, "%s: offset %d: dimension %d is %" PRIu32
                             " (zero, or the array exceeds %" PRIu64 " bytes)", path, 4 + 4 * i, i, dims[i], limit);
    }
    s->size = size;
    /* A plain file's size is known: check it before anything trusts the dims.
     * A gzip'd stream's is not (its trailer holds the size mod 2^32 only), so
     * truncation shows when the data stops arriving. */
    if (gzdirect(s->gz))
        return plain_size_check(path, s->hlen, (size_t)size);
    return DP_OK;
}

dp_status dp_idx_open(const char *path, int ndim, dp_idx_stream **out, uint32_t dims[3])
{
    dp_status rc = stream_open(path, ndim, IDX_STREAM_MAX_BYTES, out, dims);
    if (rc != DP_OK) {
        dp_idx_close(*out);
        *out = NULL;
    }
    return rc;
}

/* The error for a stream that ended `got` bytes into a read at s->pos. */
static dp_status short_read(dp_idx_stream *s, uint64_t got)
{
    char what[160];
    snprintf(what, sizeof what, "truncated: header promises %" PRIu64 " data bytes, file holds %" PRIu64, s->size,
             s->pos + got);
    return gz_fail(s->gz, s->path, s->hlen + s->pos + got, what);
}

dp_status dp_idx_read(dp_idx_stream *s, void *buf, size_t n)
{
    if (n > s->size - s->pos)
        return dp_errorf(DP_ERR_ARG, "%s: read of %zu bytes past the %" PRIu64 " data bytes", s->path, n, s->size);
    size_t got = gz_read_full(s->gz, buf, n);
    if (got < n)
        return short_read(s, got);
    s->pos += n;
    return DP_OK;
}

dp_status dp_idx_finish(dp_idx_stream *s)
{
    if (s->pos != s->size)
        return dp_errorf(DP_ERR_ARG, "%s: finished after %" PRIu64 " of %" PRIu64 " data bytes", s->path, s->pos,
                         s->size);
    uint8_t extra;
    if (gz_read_full(s->gz, &extra, 1) != 0)
        return dp_errorf(DP_ERR_FORMAT, "%s: offset %" PRIu64 ": trailing bytes after the IDX data", s->path,
                         s->hlen + s->size);
    /* All data arrived, but the gzip trailer (crc, length) must check out too. */
    int zerr = Z_OK;
    gzerror(s->gz, &zerr);
    if (zerr != Z_OK)
        return gz_fail(s->gz, s->path, s->hlen + s->size, "gzip stream truncated after the IDX data");
    return DP_OK;
}

void dp_idx_close(dp_idx_stream *s)
{
    if (!s)
        return;
    if (s->gz)
        gzclose(s->gz);
    free(s->path);
    free(s);
}

/* Reads the whole array of the open stream into out, doubling the buffer from
 * 1 MiB as data arrives, so memory follows the real stream, not the header. */
static dp_status read_all(dp_idx_stream *s, dp_idx *out)
{
    size_t cap = out->size < (1u << 20) ? out->size : (1u << 20), got = 0;
    for (;;) {
        uint8_t *p = realloc(out->data, cap ? cap : 1);
        if (!p)
            return dp_errorf(DP_ERR_NOMEM, "%s: cannot allocate %zu bytes", s->path, cap);
        out->data = p;
        size_t n = gz_read_full(s->gz, out->data + got, cap - got);
        got += n;
        if (got < cap)
            return short_read(s, got);
        if (cap == out->size)
            break;
        cap = cap > out->size / 2 ? out->size : 2 * cap;
    }
    s->pos = got;
    return dp_idx_finish(s);
}

dp_status dp_idx_load(const char *path, int ndim, dp_idx *out)
{
    memset(out, 0, sizeof *out);
    dp_idx_stream *s = NULL;
    dp_status rc = stream_open(path, ndim, IDX_MAX_BYTES, &s, out->dims);
    if (rc == DP_OK) {
        out->ndim = ndim;
        out->size = (size_t)s->size;
        rc = read_all(s, out);
    }
    dp_idx_close(s);
    if (rc != DP_OK)
        dp_idx_free(out);
    return rc;
}

void dp_idx_free(dp_idx *idx)
{
    if (!idx)
        return;
    free(idx->data);
    memset(idx, 0, sizeof *idx);
}
