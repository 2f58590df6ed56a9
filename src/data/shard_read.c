/* Shard reader: validates the header against the real file size, then
 * streams one zstd frame at a time into a buffer of the header's largest
 * frame size, so memory stays at about two frames whatever the shard size.
 * Each frame's prefix, content size, frame extent and zstd checksum are
 * checked as it arrives; record count, payload size and crc32 at the end. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>
#include <zstd.h>

#include "data/shard_format.h"
#include "dptrain/infile.h"

struct dp_shard_reader {
    char *path;
    FILE *f;
    ZSTD_DCtx *dctx;
    dp_shard_info info;
    uint8_t *cbuf, *rbuf; /* compressed frame, its records */
    size_t ccap;
    size_t rlen, rpos;    /* records of the current frame: rbuf[rpos, rlen) unread */
    uint64_t off;         /* file offset of the next unread byte */
    uint64_t frame_off;   /* file offset of the current frame's prefix */
    uint64_t raw_done, records;
    uint32_t frames, crc;
    dp_status failed;     /* sticky: a damaged shard stays damaged */
    int eof;
};

dp_status dp_shard_reader_open(const char *path, dp_shard_reader **out)
{
    *out = NULL;
    dp_status rc;
    dp_shard_reader *r = calloc(1, sizeof *r);
    if (!r || !(r->path = strdup(path))) {
        rc = dp_errorf(DP_ERR_NOMEM, "%s: cannot allocate a shard reader", path);
        goto err;
    }
    /* O_NOFOLLOW: a shard is a file of its dataset directory, never a link to one elsewhere */
    if ((rc = dp_fopen_regular(path, O_NOFOLLOW, &r->f)) != DP_OK) {
        struct stat ls;
        if (lstat(path, &ls) == 0 && S_ISLNK(ls.st_mode))
            rc = dp_errorf(DP_ERR_IO, "%s: a symbolic link: refused (a shard must be a file inside its dataset "
                           "directory, shards/README.md)", path);
        goto err;
    }
    struct stat st;
    if (fstat(fileno(r->f), &st) != 0) {
        rc = dp_errorf(DP_ERR_IO, "%s: stat: %s", path, strerror(errno));
        goto err;
    }
    uint64_t size = (uint64_t)st.st_size;
    if (size < DP_SHARD_HEADER_SIZE) {
        rc = dp_errorf(DP_ERR_FORMAT, "%s: offset %" PRIu64 ": file truncated inside the header (%"
                       PRIu64 " of %d bytes)", path, size, size, DP_SHARD_HEADER_SIZE);
        goto err;
    }
    uint8_t hdr[DP_SHARD_HEADER_SIZE];
    if (fread(hdr, 1, sizeof hdr, r->f) != sizeof hdr) {
        rc = ferror(r->f) ? dp_errorf(DP_ERR_IO, "%s: offset 0: read: %s", path, strerror(errno))
                          : dp_errorf(DP_ERR_FORMAT, "%s: offset 0: file shrank while reading the header", path);
        goto err;
    }
    if ((rc = dp_shard_header_decode(path, hdr, size, &r->info)) != DP_OK)
        goto err;
    r->off = DP_SHARD_HEADER_SIZE;
    if (r->info.frame_count > 0) {
        /* Sizes are now bounded by the header checks and the real file size. */
        r->ccap = ZSTD_compressBound(r->info.frame_raw_max);
        if (r->ccap > r->info.payload_size)
            r->ccap = (size_t)r->info.payload_size;
        r->cbuf = malloc(r->ccap);
        r->rbuf = malloc(r->info.frame_raw_max);
        r->dctx = ZSTD_createDCtx();
        if (!r->cbuf || !r->rbuf || !r->dctx) {
            rc = dp_errorf(DP_ERR_NOMEM, "%s: cannot allocate frame buffers (%zu + %" PRIu32 " bytes)",
                           path, r->ccap, r->info.frame_raw_max);
            goto err;
        }
    }
    *out = r;
    return DP_OK;
err:
    dp_shard_reader_close(r);
    return rc;
}

const dp_shard_info *dp_shard_reader_info(const dp_shard_reader *r) { return &r->info; }

static dp_status bad(dp_shard_reader *r, uint64_t off, const char *what)
{
    r->failed = dp_errorf(DP_ERR_FORMAT, "%s: offset %" PRIu64 ": %s", r->path, off, what);
    return r->failed;
}

static dp_status read_exact(dp_shard_reader *r, void *dst, size_t n)
{
    dp_io_begin("reading", r->path);
    size_t got = fread(dst, 1, n, r->f);
    dp_io_end();
    if (got == n)
        return DP_OK;
    if (ferror(r->f)) {
        r->failed = dp_errorf(DP_ERR_IO, "%s: offset %" PRIu64 ": read: %s", r->path, r->off,
                              strerror(errno));
        return r->failed;
    }
    return bad(r, r->off, "unexpected end of file (file changed while reading?)");
}

static dp_status load_frame(dp_shard_reader *r)
{
    char msg[256];
    uint64_t end = DP_SHARD_HEADER_SIZE + r->info.payload_size;
    uint32_t fno = r->frames;
    if (end - r->off < DP_SHARD_FRAME_PREFIX) {
        snprintf(msg, sizeof msg, "payload ends inside the prefix of frame %" PRIu32 " of %" PRIu32,
                 fno, r->info.frame_count);
        return bad(r, r->off, msg);
    }
    uint8_t pre[DP_SHARD_FRAME_PREFIX];
    dp_status rc = read_exact(r, pre, sizeof pre);
    if (rc != DP_OK)
        return rc;
    uint32_t csize = dp_get_u32(pre), rsize = dp_get_u32(pre + 4);
    uint64_t left = end - r->off - DP_SHARD_FRAME_PREFIX;
    if (rsize == 0 || rsize > r->info.frame_raw_max || csize == 0 || csize > left ||
        csize > r->ccap) {
        snprintf(msg, sizeof msg, "frame %" PRIu32 ": bad prefix (compressed %" PRIu32 ", raw %"
                 PRIu32 "; %" PRIu64 " payload bytes left, largest frame %" PRIu32 ")",
                 fno, csize, rsize, left, r->info.frame_raw_max);
        return bad(r, r->off, msg);
    }
    r->frame_off = r->off;
    r->off += DP_SHARD_FRAME_PREFIX;
    if ((rc = read_exact(r, r->cbuf, csize)) != DP_OK)
        return rc;
    unsigned long long content = ZSTD_getFrameContentSize(r->cbuf, csize);
    size_t extent = ZSTD_findFrameCompressedSize(r->cbuf, csize);
    size_t got = 0;
    const char *why = NULL;
    if (content == ZSTD_CONTENTSIZE_ERROR || content == ZSTD_CONTENTSIZE_UNKNOWN)
        why = "not a zstd frame with a content size";
    else if (content != rsize)
        why = "zstd content size differs from the frame prefix";
    else if (ZSTD_isError(extent) || extent != csize)
        why = "not exactly one zstd frame";
    else if (ZSTD_isError(got = ZSTD_decompressDCtx(r->dctx, r->rbuf, rsize, r->cbuf, csize)))
        why = "zstd error";
    else if (got != rsize)
        why = "decompressed size differs from the frame prefix";
    else if (r->info.schema.record_size && rsize % r->info.schema.record_size)
        why = "frame does not hold whole records";
    if (why) {
        snprintf(msg, sizeof msg, "frame %" PRIu32 ": %s%s%s", fno, why, ZSTD_isError(got) ? ": " : "",
                 ZSTD_isError(got) ? ZSTD_getErrorName(got) : "");
        return bad(r, r->frame_off, msg);
    }
    r->off += csize;
    r->crc = (uint32_t)crc32_z(r->crc, r->rbuf, rsize);
    r->raw_done += rsize;
    r->frames++;
    r->rlen = rsize;
    r->rpos = 0;
    return DP_OK;
}

static dp_status finish(dp_shard_reader *r)
{
    char msg[256];
    uint64_t end = DP_SHARD_HEADER_SIZE + r->info.payload_size;
    if (r->off != end) {
        snprintf(msg, sizeof msg, "%" PRIu64 " payload bytes after the last of %" PRIu32 " frames",
                 end - r->off, r->info.frame_count);
        return bad(r, r->off, msg);
    }
    if (r->records != r->info.record_count) {
        snprintf(msg, sizeof msg, "record count mismatch (header %" PRIu64 ", data %" PRIu64 ")",
                 r->info.record_count, r->records);
        return bad(r, end, msg);
    }
    if (r->raw_done != r->info.raw_size) {
        snprintf(msg, sizeof msg, "uncompressed size mismatch (header %" PRIu64 ", data %" PRIu64 ")",
                 r->info.raw_size, r->raw_done);
        return bad(r, end, msg);
    }
    if (r->crc != r->info.payload_crc32) {
        snprintf(msg, sizeof msg, "payload crc32 mismatch (header 0x%08" PRIx32 ", data 0x%08" PRIx32 ")",
                 r->info.payload_crc32, r->crc);
        return bad(r, end, msg);
    }
    r->eof = 1;
    return DP_OK;
}

dp_status dp_shard_reader_next(dp_shard_reader *r, const void **rec, size_t *len, int *eof)
{
    *rec = NULL;
    *len = 0;
    *eof = 0;
    if (r->failed)
        return dp_errorf(r->failed, "%s: reader already failed", r->path);
    dp_status rc;
    if (r->rpos == r->rlen && !r->eof) {
        rc = r->frames == r->info.frame_count ? finish(r) : load_frame(r);
        if (rc != DP_OK)
            return rc;
    }
    if (r->eof) {
        *eof = 1;
        return DP_OK;
    }
    char msg[256];
    if (r->records == r->info.record_count) {
        snprintf(msg, sizeof msg, "frame %" PRIu32 ": more records than the header's %" PRIu64,
                 r->frames - 1, r->info.record_count);
        return bad(r, r->frame_off, msg);
    }
    const dp_shard_schema *s = &r->info.schema;
    size_t n = s->record_size;
    if (n == 0) {
        if (r->rlen - r->rpos < 4) {
            snprintf(msg, sizeof msg, "frame %" PRIu32 ": record %" PRIu64
                     " ends inside its length prefix", r->frames - 1, r->records);
            return bad(r, r->frame_off, msg);
        }
        n = dp_get_u32(r->rbuf + r->rpos);
        r->rpos += 4;
        if (n > r->rlen - r->rpos || !dp_shard_record_len_ok(s, n)) {
            snprintf(msg, sizeof msg, "frame %" PRIu32 ": record %" PRIu64 " has bad length %zu (%zu "
                     "bytes left in frame)", r->frames - 1, r->records, n, r->rlen - r->rpos);
            return bad(r, r->frame_off, msg);
        }
    }
    *rec = r->rbuf + r->rpos;
    *len = n;
    r->rpos += n;
    r->records++;
    return DP_OK;
}

void dp_shard_reader_close(dp_shard_reader *r)
{
    if (!r)
        return;
    if (r->f)
        fclose(r->f);
    ZSTD_freeDCtx(r->dctx);
    free(r->cbuf);
    free(r->rbuf);
    free(r->path);
    free(r);
}
