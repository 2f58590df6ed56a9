/* Shard writer: records are packed into a frame buffer, each full frame is
 * compressed as one zstd frame (content size + xxhash checksum on) behind an
 * 8-byte size prefix, and the header is written last, once every size and the
 * payload crc32 are known. Until close the shard lives in "<path>.tmp", so a
 * crash never leaves a half shard under the real name. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "dptrain/fsutil.h"
#include "data/shard_format.h"

struct dp_shard_writer {
    char *path, *tmp;
    FILE *f;
    ZSTD_CCtx *cctx;
    int level;
    size_t frame_target;
    dp_shard_info info;
    uint8_t *buf; /* the frame being filled */
    size_t used, cap;
    uint8_t *cbuf; /* prefix + compressed frame */
    size_t ccap;
    dp_status failed; /* first error; the writer refuses work after it */
};

static dp_status fail(dp_shard_writer *w, dp_status s)
{
    w->failed = s;
    return s;
}

static dp_status grow(uint8_t **p, size_t *cap, size_t need)
{
    if (need <= *cap)
        return DP_OK;
    uint8_t *q = realloc(*p, need);
    if (!q)
        return dp_errorf(DP_ERR_NOMEM, "shard writer: cannot allocate %zu bytes", need);
    *p = q;
    *cap = need;
    return DP_OK;
}

dp_status dp_shard_writer_open(const char *path, const dp_shard_schema *schema,
                               dp_shard_writer **out)
{
    *out = NULL;
    dp_status rc = dp_shard_schema_check(schema, DP_ERR_ARG, path);
    if (rc != DP_OK)
        return rc;
    dp_shard_writer *w = calloc(1, sizeof *w);
    size_t plen = strlen(path);
    if (w && (w->path = strdup(path)) && (w->tmp = malloc(plen + 5))) {
        memcpy(w->tmp, path, plen);
        memcpy(w->tmp + plen, ".tmp", 5);
        w->cctx = ZSTD_createCCtx();
    }
    if (!w || !w->cctx) {
        if (w && w->tmp) {
            free(w->tmp); /* nothing created yet: abort must not unlink */
            w->tmp = NULL;
        }
        dp_shard_writer_abort(w);
        return dp_errorf(DP_ERR_NOMEM, "%s: cannot allocate a shard writer", path);
    }
    w->level = DP_SHARD_DEFAULT_LEVEL;
    w->frame_target = DP_SHARD_DEFAULT_FRAME;
    w->info.schema = *schema;
    w->f = fopen(w->tmp, "wb");
    if (!w->f) {
        rc = dp_errorf(DP_ERR_IO, "%s: create: %s", w->tmp, strerror(errno));
        dp_shard_writer_abort(w);
        return rc;
    }
    /* A zero placeholder: a crash before close leaves a file with no magic. */
    uint8_t zero[DP_SHARD_HEADER_SIZE] = {0};
    if (fwrite(zero, 1, sizeof zero, w->f) != sizeof zero) {
        rc = dp_errorf(DP_ERR_IO, "%s: offset 0: write: %s", w->tmp, strerror(errno));
        dp_shard_writer_abort(w);
        return rc;
    }
    *out = w;
    return DP_OK;
}

dp_status dp_shard_writer_set_level(dp_shard_writer *w, int level)
{
    if (w->info.record_count > 0 || w->used > 0)
        return dp_errorf(DP_ERR_ARG, "%s: zstd level set after records were added", w->path);
    if (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel())
        return dp_errorf(DP_ERR_ARG, "%s: zstd level %d outside [%d, %d]", w->path, level,
                         ZSTD_minCLevel(), ZSTD_maxCLevel());
    w->level = level;
    return DP_OK;
}

dp_status dp_shard_writer_set_frame_size(dp_shard_writer *w, size_t bytes)
{
    if (w->info.record_count > 0 || w->used > 0)
        return dp_errorf(DP_ERR_ARG, "%s: frame size set after records were added", w->path);
    /* Bounded so that target + one maximal record still fits DP_SHARD_MAX_FRAME. */
    if (bytes < DP_SHARD_MIN_FRAME || bytes > DP_SHARD_MAX_FRAME / 2)
        return dp_errorf(DP_ERR_ARG, "%s: frame size %zu outside [%d, %u]", w->path, bytes,
                         DP_SHARD_MIN_FRAME, DP_SHARD_MAX_FRAME / 2);
    w->frame_target = bytes;
    return DP_OK;
}

static dp_status flush_frame(dp_shard_writer *w)
{
    if (w->used == 0)
        return DP_OK;
    if (w->info.frame_count == UINT32_MAX)
        return dp_errorf(DP_ERR_ARG, "%s: more than %" PRIu32 " frames", w->path, UINT32_MAX);
    if (w->info.frame_count == 0) {
        size_t z = ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, w->level);
        if (!ZSTD_isError(z))
            z = ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_checksumFlag, 1);
        if (!ZSTD_isError(z))
            z = ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_contentSizeFlag, 1);
        if (ZSTD_isError(z))
            return dp_errorf(DP_ERR_ARG, "%s: zstd parameters: %s", w->path, ZSTD_getErrorName(z));
    }
    dp_status rc = grow(&w->cbuf, &w->ccap, DP_SHARD_FRAME_PREFIX + ZSTD_compressBound(w->used));
    if (rc != DP_OK)
        return rc;
    size_t csize = ZSTD_compress2(w->cctx, w->cbuf + DP_SHARD_FRAME_PREFIX,
                                  w->ccap - DP_SHARD_FRAME_PREFIX, w->buf, w->used);
    if (ZSTD_isError(csize))
        return dp_errorf(DP_ERR_IO, "%s: frame %" PRIu32 ": zstd compress: %s", w->path,
                         w->info.frame_count, ZSTD_getErrorName(csize));
    dp_put_u32(w->cbuf, (uint32_t)csize);
    dp_put_u32(w->cbuf + 4, (uint32_t)w->used);
    size_t n = DP_SHARD_FRAME_PREFIX + csize;
    if (fwrite(w->cbuf, 1, n, w->f) != n)
        return dp_errorf(DP_ERR_IO, "%s: offset %" PRIu64 ": write: %s", w->tmp,
                         DP_SHARD_HEADER_SIZE + w->info.payload_size, strerror(errno));
    w->info.payload_crc32 = (uint32_t)crc32_z(w->info.payload_crc32, w->buf, w->used);
    w->info.raw_size += w->used;
    w->info.payload_size += n;
    w->info.frame_count++;
    if (w->used > w->info.frame_raw_max)
        w->info.frame_raw_max = (uint32_t)w->used;
    w->used = 0;
    return DP_OK;
}

dp_status dp_shard_writer_add(dp_shard_writer *w, const void *rec, size_t len)
{
    if (w->failed)
        return dp_errorf(w->failed, "%s: writer already failed; abort it", w->path);
    const dp_shard_schema *s = &w->info.schema;
    if (!dp_shard_record_len_ok(s, len))
        return dp_errorf(DP_ERR_ARG, "%s: record %" PRIu64 ": length %zu does not fit schema %" PRIu32
                         " (record size %" PRIu32 ", limit %u)", w->path, w->info.record_count, len,
                         s->kind, s->record_size, DP_SHARD_MAX_RECORD);
    size_t prefix = s->record_size == 0 ? 4 : 0;
    size_t need = prefix + len;
    dp_status rc = DP_OK;
    if (w->used > 0 && w->used + need > w->frame_target)
        rc = flush_frame(w);
    if (rc == DP_OK)
        rc = grow(&w->buf, &w->cap, w->used + need > w->frame_target ? w->used + need : w->frame_target);
    if (rc != DP_OK)
        return fail(w, rc);
    if (prefix)
        dp_put_u32(w->buf + w->used, (uint32_t)len);
    if (len)
        memcpy(w->buf + w->used + prefix, rec, len);
    w->used += need;
    w->info.record_count++;
    return DP_OK;
}

dp_status dp_shard_writer_close(dp_shard_writer *w, dp_shard_info *info)
{
    dp_status rc = w->failed;
    if (rc != DP_OK) {
        dp_errorf(rc, "%s: writer had failed; shard not written", w->path);
        goto done;
    }
    if ((rc = flush_frame(w)) != DP_OK)
        goto done;
    uint8_t hdr[DP_SHARD_HEADER_SIZE];
    dp_shard_header_encode(&w->info, hdr);
    if (fseek(w->f, 0, SEEK_SET) != 0 || fwrite(hdr, 1, sizeof hdr, w->f) != sizeof hdr ||
        fflush(w->f) != 0) {
        rc = dp_errorf(DP_ERR_IO, "%s: offset 0: write header: %s", w->tmp, strerror(errno));
        goto done;
    }
    if (fsync(fileno(w->f)) != 0) {
        rc = dp_errorf(DP_ERR_IO, "%s: fsync: %s", w->tmp, strerror(errno));
        goto done;
    }
    FILE *f = w->f;
    w->f = NULL;
    if (fclose(f) != 0) {
        rc = dp_errorf(DP_ERR_IO, "%s: close: %s", w->tmp, strerror(errno));
        goto done;
    }
    if (rename(w->tmp, w->path) != 0) {
        rc = dp_errorf(DP_ERR_IO, "%s: rename to %s: %s", w->tmp, w->path, strerror(errno));
        goto done;
    }
    if ((rc = dp_fsync_parent_dir(w->path)) != DP_OK)
        goto done;
    if (info)
        *info = w->info;
    w->failed = DP_OK;
    free(w->tmp);
    w->tmp = NULL; /* renamed: abort must not unlink anything */
done:
    dp_shard_writer_abort(w);
    return rc;
}

void dp_shard_writer_abort(dp_shard_writer *w)
{
    if (!w)
        return;
    if (w->f)
        fclose(w->f);
    if (w->tmp)
        unlink(w->tmp);
    ZSTD_freeCCtx(w->cctx);
    free(w->buf);
    free(w->cbuf);
    free(w->tmp);
    free(w->path);
    free(w);
}
