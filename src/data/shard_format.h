/* Private pieces shared by the shard writer and reader: little-endian field
 * access, the 128-byte header's layout (documented in shards/README.md) and
 * the limits a reader enforces before trusting a header. */
#ifndef DP_DATA_SHARD_FORMAT_H
#define DP_DATA_SHARD_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "dptrain/data.h"

#define DP_SHARD_MAGIC "DPSHARD\0"
enum {
    DP_SHARD_FRAME_PREFIX = 8,       /* uint32 compressed size, uint32 raw size */
    DP_SHARD_HEADER_CRC_AT = 124,    /* header crc32 covers bytes [0, 124) */
    DP_SHARD_MAX_FRAME = 256u << 20, /* reader refuses larger frames */
    DP_SHARD_MIN_FRAME = 1024,
    /* zstd's densest block is RLE: 4 bytes for up to 128 KiB, so no payload
     * decodes to more than 32768 times its size; a header claiming more is
     * lying, and believing it would size buffers from a few bytes of file. */
    DP_SHARD_MAX_RATIO = 32768,
};

static inline void dp_put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline void dp_put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t dp_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t dp_get_u64(const uint8_t *p)
{
    return (uint64_t)dp_get_u32(p) | (uint64_t)dp_get_u32(p + 4) << 32;
}

/* Serialises `info` into a full header, header crc included. */
void dp_shard_header_encode(const dp_shard_info *info, uint8_t hdr[DP_SHARD_HEADER_SIZE]);

/* Decodes and checks a header in the order a reader wants the verdicts: magic,
 * version, header crc, schema, size relations, limits. `file_size` is the real
 * size on disk. On failure returns DP_ERR_FORMAT with "<path>: offset <n>: ...". */
dp_status dp_shard_header_decode(const char *path, const uint8_t hdr[DP_SHARD_HEADER_SIZE],
                                 uint64_t file_size, dp_shard_info *info);

/* Checks that a schema is one this library can write and read; `who` prefixes
 * the message. Returns DP_OK or `fail` with a message. */
dp_status dp_shard_schema_check(const dp_shard_schema *s, dp_status fail, const char *who);

/* Checks one record's length against the schema (fixed size, tokens % 4). */
int dp_shard_record_len_ok(const dp_shard_schema *s, uint64_t len);

/* 1 if s is a name the manifest holds safely: non-empty, shorter than cap, not
 * starting with '.' or '-', of a-z 0-9 _ - (and A-Z . unless lower_only). */
int dp_manifest_name_ok(const char *s, size_t cap, int lower_only);

#endif
