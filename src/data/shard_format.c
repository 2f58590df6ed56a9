/* The shard header: schema constructors, encoding, and the validation a
 * reader runs before it trusts a single size from the file. Layout is in
 * shards/README.md; every check here has a matching damage test. */
#include "data/shard_format.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

dp_shard_schema dp_shard_schema_image(uint32_t channels, uint32_t height, uint32_t width,
                                      uint32_t classes)
{
    dp_shard_schema s = {0};
    s.kind = DP_SCHEMA_IMAGE_U8;
    s.image.channels = channels;
    s.image.height = height;
    s.image.width = width;
    s.image.classes = classes;
    /* Wraps for absurd shapes; dp_shard_schema_check rejects those. */
    s.record_size = (uint32_t)(2 + (uint64_t)channels * height * width);
    return s;
}

dp_shard_schema dp_shard_schema_vector(uint32_t features, uint32_t classes)
{
    dp_shard_schema s = {0};
    s.kind = DP_SCHEMA_VECTOR_F32;
    s.vector.features = features;
    s.vector.height = 1;
    s.vector.width = 1;
    s.vector.classes = classes;
    /* Wraps for absurd counts; dp_shard_schema_check rejects those. */
    s.record_size = (uint32_t)(4 + 4 * (uint64_t)features);
    return s;
}

dp_shard_schema dp_shard_schema_tokens(uint32_t vocab_size)
{
    dp_shard_schema s = {0};
    s.kind = DP_SCHEMA_TOKENS;
    s.tokens.vocab_size = vocab_size;
    return s;
}

int dp_shard_schema_equal(const dp_shard_schema *a, const dp_shard_schema *b)
{
    return a->kind == b->kind && a->record_size == b->record_size &&
           memcmp(a->param, b->param, sizeof a->param) == 0;
}

dp_status dp_shard_schema_check(const dp_shard_schema *s, dp_status fail, const char *who)
{
    switch (s->kind) {
    case DP_SCHEMA_IMAGE_U8: {
        uint64_t px = 1;
        for (int i = 0; i < 3; i++) {
            if (s->param[i] == 0 || s->param[i] > DP_SHARD_MAX_RECORD)
                return dp_errorf(fail, "%s: image dimension %d is %" PRIu32, who, i, s->param[i]);
            px *= s->param[i];
            if (px > DP_SHARD_MAX_RECORD - 2)
                return dp_errorf(fail, "%s: image of %" PRIu32 "x%" PRIu32 "x%" PRIu32
                                 " exceeds the record limit", who, s->param[0], s->param[1], s->param[2]);
        }
        if (s->image.classes == 0 || s->image.classes > 65536)
            return dp_errorf(fail, "%s: %" PRIu32 " classes (need 1..65536 for a uint16 label)", who,
                             s->image.classes);
        if (s->record_size != 2 + px)
            return dp_errorf(fail, "%s: image record size %" PRIu32 ", expected %" PRIu64, who,
                             s->record_size, 2 + px);
        return DP_OK;
    }
    case DP_SCHEMA_VECTOR_F32:
        if (s->vector.features == 0 || s->vector.features > DP_VECTOR_MAX_FEATURES)
            return dp_errorf(fail, "%s: vector of %" PRIu32 " features (need 1..%d)", who, s->vector.features,
                             DP_VECTOR_MAX_FEATURES);
        if (s->vector.height != 1 || s->vector.width != 1)
            return dp_errorf(fail, "%s: vector parameters 1 and 2 are %" PRIu32 " and %" PRIu32 ", not 1", who,
                             s->vector.height, s->vector.width);
        if (s->vector.classes == 0 || s->vector.classes > 65536)
            return dp_errorf(fail, "%s: %" PRIu32 " classes (need 1..65536 for a uint16 label)", who,
                             s->vector.classes);
        if (s->record_size != 4 + 4 * s->vector.features)
            return dp_errorf(fail, "%s: vector record size %" PRIu32 ", expected %" PRIu32, who, s->record_size,
                             4 + 4 * s->vector.features);
        return DP_OK;
    case DP_SCHEMA_TOKENS:
        if (s->record_size != 0)
            return dp_errorf(fail, "%s: token records are variable length, record size %" PRIu32, who,
                             s->record_size);
        if (s->tokens.reserved[0] || s->tokens.reserved[1] || s->tokens.reserved[2])
            return dp_errorf(fail, "%s: reserved token schema parameters are not zero", who);
        return DP_OK;
    default:
        return dp_errorf(fail, "%s: unknown record schema %" PRIu32, who, s->kind);
    }
}

int dp_shard_record_len_ok(const dp_shard_schema *s, uint64_t len)
{
    if (len > DP_SHARD_MAX_RECORD)
        return 0;
    if (s->record_size != 0)
        return len == s->record_size;
    return s->kind != DP_SCHEMA_TOKENS || len % 4 == 0;
}

/* Header field offsets (see shards/README.md). */
enum {
    H_MAGIC = 0, H_VERSION = 8, H_HEADER_SIZE = 12, H_SCHEMA = 16, H_RECORD_SIZE = 20,
    H_PARAMS = 24, H_COUNT = 40, H_RAW = 48, H_PAYLOAD = 56, H_FRAMES = 64,
    H_FRAME_MAX = 68, H_CRC = 72, H_RESERVED = 76,
};

void dp_shard_header_encode(const dp_shard_info *in, uint8_t hdr[DP_SHARD_HEADER_SIZE])
{
    memset(hdr, 0, DP_SHARD_HEADER_SIZE);
    memcpy(hdr + H_MAGIC, DP_SHARD_MAGIC, 8);
    dp_put_u32(hdr + H_VERSION, DP_SHARD_VERSION);
    dp_put_u32(hdr + H_HEADER_SIZE, DP_SHARD_HEADER_SIZE);
    dp_put_u32(hdr + H_SCHEMA, in->schema.kind);
    dp_put_u32(hdr + H_RECORD_SIZE, in->schema.record_size);
    for (int i = 0; i < 4; i++)
        dp_put_u32(hdr + H_PARAMS + 4 * i, in->schema.param[i]);
    dp_put_u64(hdr + H_COUNT, in->record_count);
    dp_put_u64(hdr + H_RAW, in->raw_size);
    dp_put_u64(hdr + H_PAYLOAD, in->payload_size);
    dp_put_u32(hdr + H_FRAMES, in->frame_count);
    dp_put_u32(hdr + H_FRAME_MAX, in->frame_raw_max);
    dp_put_u32(hdr + H_CRC, in->payload_crc32);
    dp_put_u32(hdr + DP_SHARD_HEADER_CRC_AT, (uint32_t)crc32(0, hdr, DP_SHARD_HEADER_CRC_AT));
}

dp_status dp_shard_header_decode(const char *path, const uint8_t hdr[DP_SHARD_HEADER_SIZE],
                                 uint64_t file_size, dp_shard_info *out)
{
    if (memcmp(hdr + H_MAGIC, DP_SHARD_MAGIC, 8) != 0)
        return dp_errorf(DP_ERR_FORMAT, "%s: offset 0: bad magic (not a dptrain shard)", path);
    /* The crc is computed before the version is judged so that a flipped bit
     * in the version reads as damage, not as a file from the future. */
    uint32_t want = dp_get_u32(hdr + DP_SHARD_HEADER_CRC_AT);
    uint32_t got = (uint32_t)crc32(0, hdr, DP_SHARD_HEADER_CRC_AT);
    uint32_t version = dp_get_u32(hdr + H_VERSION);
    if (version != DP_SHARD_VERSION)
        return dp_errorf(DP_ERR_FORMAT, "%s: offset %d: unsupported format version %" PRIu32
                         " (this build reads %d)%s", path, H_VERSION, version, DP_SHARD_VERSION,
                         want == got ? "" : "; header crc32 mismatch too, so likely a corrupt header");
    if (want != got)
        return dp_errorf(DP_ERR_FORMAT, "%s: offset %d: header crc32 mismatch (header 0x%08" PRIx32
                         ", data 0x%08" PRIx32 ")", path, DP_SHARD_HEADER_CRC_AT, want, got);

    uint32_t hsize = dp_get_u32(hdr + H_HEADER_SIZE);
    if (hsize != DP_SHARD_HEADER_SIZE)
        return dp_errorf(DP_ERR_FORMAT, "%s: offset %d: header size %" PRIu32 ", expected %d", path,
                         H_HEADER_SIZE, hsize, DP_SHARD_HEADER_SIZE);

    dp_shard_info in = {0};
    in.schema.kind = dp_get_u32(hdr + H_SCHEMA);
    in.schema.record_size = dp_get_u32(hdr + H_RECORD_SIZE);
    for (int i = 0; i < 4; i++)
        in.schema.param[i] = dp_get_u32(hdr + H_PARAMS + 4 * i);
    in.record_count = dp_get_u64(hdr + H_COUNT);
    in.raw_size = dp_get_u64(hdr + H_RAW);
    in.payload_size = dp_get_u64(hdr + H_PAYLOAD);
    in.frame_count = dp_get_u32(hdr + H_FRAMES);
    in.frame_raw_max = dp_get_u32(hdr + H_FRAME_MAX);
    in.payload_crc32 = dp_get_u32(hdr + H_CRC);

    char who[4200];
    snprintf(who, sizeof who, "%s: offset %d", path, H_SCHEMA);
    dp_status rc = dp_shard_schema_check(&in.schema, DP_ERR_FORMAT, who);
    if (rc != DP_OK)
        return rc;

    /* The real file size decides before any header size is believed. */
    uint64_t body = file_size - DP_SHARD_HEADER_SIZE; /* caller guarantees file_size >= header */
    if (in.payload_size > body)
        return dp_errorf(DP_ERR_FORMAT, "%s: offset %" PRIu64 ": file truncated (header promises %"
                         PRIu64 " payload bytes, file holds %" PRIu64 ")", path, file_size,
                         in.payload_size, body);
    if (in.payload_size < body)
        return dp_errorf(DP_ERR_FORMAT, "%s: offset %" PRIu64 ": %" PRIu64
                         " trailing bytes after the payload", path,
                         (uint64_t)DP_SHARD_HEADER_SIZE + in.payload_size, body - in.payload_size);

    const char *bad = NULL;
    int at = H_COUNT;
    if (in.schema.record_size != 0) {
        if (in.record_count > in.raw_size / in.schema.record_size ||
            in.record_count * in.schema.record_size != in.raw_size)
            bad = "record count times record size differs from the uncompressed size";
    } else if (in.record_count > in.raw_size / 4) {
        bad = "more records than length prefixes fit in the uncompressed size";
    }
    if (!bad && (in.record_count == 0) != (in.raw_size == 0))
        bad = "record count and uncompressed size disagree about emptiness";
    if (!bad && in.raw_size / DP_SHARD_MAX_RATIO > in.payload_size)
        at = H_RAW, bad = "uncompressed size beyond zstd's largest ratio to the payload size";
    if (!bad && (in.frame_count == 0) != (in.raw_size == 0))
        at = H_FRAMES, bad = "frame count and uncompressed size disagree about emptiness";
    if (!bad && (in.payload_size == 0) != (in.frame_count == 0))
        at = H_PAYLOAD, bad = "payload size and frame count disagree about emptiness";
    if (!bad && (uint64_t)in.frame_count * (DP_SHARD_FRAME_PREFIX + 1) > in.payload_size)
        at = H_FRAMES, bad = "more frames than the payload can hold";
    if (!bad && (in.frame_raw_max > DP_SHARD_MAX_FRAME || in.frame_raw_max > in.raw_size))
        at = H_FRAME_MAX, bad = "largest frame size out of range";
    if (!bad && (uint64_t)in.frame_raw_max * in.frame_count < in.raw_size)
        at = H_FRAME_MAX, bad = "frames too small to hold the uncompressed size";
    if (bad)
        return dp_errorf(DP_ERR_FORMAT, "%s: offset %d: %s (records %" PRIu64 ", raw %" PRIu64
                         ", payload %" PRIu64 ", frames %" PRIu32 ", largest frame %" PRIu32 ")",
                         path, at, bad, in.record_count, in.raw_size, in.payload_size,
                         in.frame_count, in.frame_raw_max);
    *out = in;
    return DP_OK;
}
