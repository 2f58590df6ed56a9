/* Reader for LeCun's IDX arrays (MNIST, Fashion-MNIST), gzip'd or plain,
 * through zlib's gz* API. Only unsigned-byte arrays of 1 or 3 dimensions are
 * accepted; offsets in messages count bytes of the uncompressed stream. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "dptrain/data.h"

enum { IDX_TYPE_U8 = 0x08, IDX_MAX_BYTES = 1 << 30 };

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

/* Reads up to out->size bytes into out->data, doubling the buffer from 1 MiB
 * as data arrives, so memory follows the real stream, not the header. */
static size_t read_growing(gzFile gz, dp_idx *out, dp_status *rc, const char *path)
{
    size_t cap = out->size < (1u << 20) ? out->size : (1u << 20), got = 0;
    *rc = DP_OK;
    for (;;) {
        uint8_t *p = realloc(out->data, cap ? cap : 1);
        if (!p) {
            *rc = dp_errorf(DP_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, cap);
            return got;
        }
        out->data = p;
        size_t n = gz_read_full(gz, out->data + got, cap - got);
        got += n;
        if (got < cap || cap == out->size)
            return got;
        cap = cap > out->size / 2 ? out->size : 2 * cap;
    }
}

/* Reads and checks the open stream gz into out (dp_idx_load frees it on an error). */
static dp_status idx_read(gzFile gz, const char *path, int ndim, dp_idx *out)
{
    dp_status rc = DP_OK;
    uint8_t hdr[4 + 4 * 3];
    size_t hlen = 4 + 4 * (size_t)ndim;
    size_t got = gz_read_full(gz, hdr, hlen);
    if (got < hlen)
        return gz_fail(gz, path, got, "truncated inside the IDX header");
    uint32_t magic = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
    uint32_t want = IDX_TYPE_U8 << 8 | (uint32_t)ndim;
    if (magic != want)
        return dp_errorf(DP_ERR_FORMAT, "%s: offset 0: bad IDX magic 0x%08" PRIx32 " (want 0x%08" PRIx32
                         ": unsigned bytes, %d dimensions)", path, magic, want, ndim);
    uint64_t size = 1;
    for (int i = 0; i < ndim; i++) {
        const uint8_t *p = hdr + 4 + 4 * i;
        out->dims[i] = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        size *= out->dims[i] ? out->dims[i] : 1;
        if (out->dims[i] == 0 || size > IDX_MAX_BYTES)
            return dp_errorf(DP_ERR_FORMAT, "%s: offset %d: dimension %d is %" PRIu32
                             " (zero, or the array exceeds %d bytes)", path, 4 + 4 * i, i,
                             out->dims[i], IDX_MAX_BYTES);
    }
    out->ndim = ndim;
    out->size = (size_t)size;
    /* A plain file's size is known: check it before allocating. A gzip'd
     * stream's is not (its trailer holds the size mod 2^32 only), so the
     * buffer grows with the data that actually arrives instead. */
    if (gzdirect(gz) && (rc = plain_size_check(path, hlen, out->size)) != DP_OK)
        return rc;
    got = read_growing(gz, out, &rc, path);
    if (rc != DP_OK)
        return rc;
    if (got < out->size) {
        char what[128];
        snprintf(what, sizeof what, "truncated: header promises %zu data bytes, file holds %zu",
                 out->size, got);
        return gz_fail(gz, path, hlen + got, what);
    }
    uint8_t extra;
    if (gz_read_full(gz, &extra, 1) != 0)
        return dp_errorf(DP_ERR_FORMAT, "%s: offset %zu: trailing bytes after the IDX data", path,
                         hlen + out->size);
    /* All data arrived, but the gzip trailer (crc, length) must check out too. */
    int zerr = Z_OK;
    gzerror(gz, &zerr);
    if (zerr != Z_OK)
        return gz_fail(gz, path, hlen + out->size, "gzip stream truncated after the IDX data");
    return DP_OK;
}

dp_status dp_idx_load(const char *path, int ndim, dp_idx *out)
{
    memset(out, 0, sizeof *out);
    if (ndim != 1 && ndim != 3)
        return dp_errorf(DP_ERR_ARG, "%s: IDX arrays of %d dimensions are not supported", path, ndim);
    errno = 0;
    gzFile gz = gzopen(path, "rb");
    if (!gz)
        return dp_errorf(DP_ERR_IO, "%s: open: %s", path, errno ? strerror(errno) : "out of memory");
    gzbuffer(gz, 1 << 17);
    dp_status rc = idx_read(gz, path, ndim, out);
    gzclose(gz);
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
