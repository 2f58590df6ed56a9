/* Ring codecs: the identity float32 codec, raw and staged.
 *
 * The lossy codecs (codec_fp16.c, codec_int8.c) and the zstd wire stage
 * (codec_wire.c) sit behind the same dp_ring_codec vtable (comm_internal.h).
 * The decoders check the byte count of every message: a wrong size means the
 * ranks disagree about the count, and is reported instead of reducing garbage. */
#include <string.h>

#include "comm/comm_internal.h"

static size_t f32_max_bytes(const dp_ring_codec *c, size_t n)
{
    (void)c;
    return n * sizeof(float);
}

static dp_status f32_encode(const dp_ring_codec *c, const float *src, size_t n, void *dst,
                            size_t cap, size_t *bytes)
{
    (void)c;
    if (cap < n * sizeof(float))
        return dp_errorf(DP_ERR_ARG, "identity codec: %zu floats need %zu bytes, have %zu",
                         n, n * sizeof(float), cap);
    memcpy(dst, src, n * sizeof(float));
    *bytes = n * sizeof(float);
    return DP_OK;
}

static dp_status f32_check(size_t bytes, size_t n)
{
    if (bytes != n * sizeof(float))
        return dp_errorf(DP_ERR_MPI, "message of %zu bytes where %zu floats (%zu bytes) "
                         "were expected: ranks disagree on the count",
                         bytes, n, n * sizeof(float));
    return DP_OK;
}

/* dst += src; restrict lets -O3 vectorise it (the buffers never overlap: src is a
 * receive slot of the workspace). */
static void f32_add(float *restrict dst, const float *restrict src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] += src[i];
}

static dp_status f32_decode_reduce(const dp_ring_codec *c, const void *msg, size_t bytes,
                                   float *dst, size_t n)
{
    (void)c;
    dp_status rc = f32_check(bytes, n);
    if (DP_OK != rc)
        return rc;
    f32_add(dst, (const float *)msg, n);
    return DP_OK;
}

static dp_status f32_decode_copy(const dp_ring_codec *c, const void *msg, size_t bytes,
                                 float *dst, size_t n)
{
    (void)c;
    dp_status rc = f32_check(bytes, n);
    if (DP_OK != rc)
        return rc;
    memcpy(dst, msg, n * sizeof(float));
    return DP_OK;
}

const dp_ring_codec dp_ring_codec_identity = {
    .name = "f32",
    .raw = 1,
    .max_bytes = f32_max_bytes,
    .encode = f32_encode,
    .decode_reduce = f32_decode_reduce,
    .decode_copy = f32_decode_copy,
    .wire_elem = 4,
};

const dp_ring_codec dp_ring_codec_identity_staged = {
    .name = "f32-staged",
    .raw = 0,
    .max_bytes = f32_max_bytes,
    .encode = f32_encode,
    .decode_reduce = f32_decode_reduce,
    .decode_copy = f32_decode_copy,
    .wire_elem = 4,
};

/* --codec none: float32 on the ring (with --wire-zstd, through the staged path). */
const dp_compress_ops dp_compress_none = {
    .name = "none",
    .kind = DP_CODEC_NONE,
    .hook = DP_COMPRESS_RING,
    .ring = &dp_ring_codec_identity,
};
