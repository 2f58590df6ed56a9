/* Ring codecs: the identity float32 codec, and the checks every codec makes.
 *
 * The lossy codecs (codec_fp16.c, codec_int8.c) and the zstd wire stage
 * (codec_wire.c) sit behind the same dp_ring_codec vtable (comm_internal.h).
 * The decoders check the byte count of every message: a wrong size means the
 * ranks disagree about the count, and is reported instead of reducing garbage. */
#include <math.h>
#include <string.h>

#include "dptrain/floatscan.h"
#include "comm/comm_internal.h"

static dp_status check_cap(const dp_ring_codec *c, size_t n, size_t cap)
{
    const size_t need = c->max_bytes(c, n);
    if (cap < need)
        return dp_errorf(DP_ERR_ARG, "%s codec: %zu values need %zu bytes, have %zu", c->name, n,
                         need, cap);
    return DP_OK;
}

dp_status dp_codec_check_input(const dp_ring_codec *c, const float *x, size_t n, size_t cap, float limit)
{
    dp_status st = check_cap(c, n, cap);
    if (DP_OK != st)
        return st;
    const size_t i = dp_floats_find_bad(x, n, limit);
    if (i == n)
        return DP_OK;
    if (isfinite(x[i]))
        return dp_errorf(DP_ERR_NONFINITE, "%s codec: value %g at index %zu is outside "
                         "the range of %s", c->name, (double)x[i], i, c->name);
    return dp_errorf(DP_ERR_NONFINITE, "%s codec: non-finite value (%g) at index %zu",
                     c->name, (double)x[i], i);
}

dp_status dp_codec_check_size(const dp_ring_codec *c, size_t bytes, size_t n)
{
    const size_t need = c->max_bytes(c, n);
    if (bytes != need)
        return dp_errorf(DP_ERR_MPI, "%s codec: message of %zu bytes where %zu values "
                         "(%zu bytes) were expected: ranks disagree on the count", c->name,
                         bytes, n, need);
    return DP_OK;
}

static size_t f32_max_bytes(const dp_ring_codec *c, size_t n)
{
    (void)c;
    return n * sizeof(float);
}

static dp_status f32_encode(const dp_ring_codec *c, const float *src, size_t n, void *dst,
                            size_t cap, size_t *bytes)
{
    dp_status st = check_cap(c, n, cap);
    if (DP_OK != st)
        return st;
    memcpy(dst, src, n * sizeof(float));
    *bytes = n * sizeof(float);
    return DP_OK;
}

/* dst += src; restrict lets -O3 vectorise it (the buffers never overlap: src is a
 * receive slot of the workspace). */
static void f32_add(float *restrict dst, const float *restrict src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] += src[i];
}

static dp_status f32_decode(const dp_ring_codec *c, const void *msg, size_t bytes, float *dst,
                            size_t n, int add)
{
    dp_status st = dp_codec_check_size(c, bytes, n);
    if (DP_OK != st)
        return st;
    if (add)
        f32_add(dst, (const float *)msg, n);
    else
        memcpy(dst, msg, n * sizeof(float));
    return DP_OK;
}

const dp_ring_codec dp_ring_codec_identity = {
    .name = "f32",
    .raw = 1,
    .max_bytes = f32_max_bytes,
    .encode = f32_encode,
    .decode = f32_decode,
    .wire_elem = 4,
};

/* --codec none: float32 on the ring (with --wire-zstd, inside the wire stage). */
const dp_compress_ops dp_compress_none = {
    .name = "none",
    .kind = DP_CODEC_NONE,
    .hook = DP_COMPRESS_RING,
    .ring = &dp_ring_codec_identity,
};
