/* Codec configs and the lossless wire stage.
 *
 * dp_codec_config -> dp_ring_codec: a workspace keeps a dp_codec_rt holding the
 * int8 RNG state and, when wire_zstd_level > 0, a wrapper codec around the chosen
 * one (the staged identity codec for NONE, so float32 also goes through it).
 *
 * Wire stage, per message: inner-encode into scratch A, byte-shuffle A into B
 * (plane k holds byte k of every element: exponent bytes of neighbouring floats
 * are alike and compress, the interleaved layout does not), then
 * ZSTD_compressCCtx into the send slot with a context reused for every message.
 * A message is one zstd frame; its size travels as the MPI message size, so the
 * receiver bounds its receive by ZSTD_compressBound and reads MPI_Get_count.
 * Decoding reverses it in the same scratch (ZSTD_decompressDCtx, unshuffle,
 * inner decode). Scratch and contexts grow and stay: no allocation in steady
 * state. One rt serves one thread at a time, like its workspace. */
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "comm/comm_internal.h"

typedef struct zwire_state {
    const dp_ring_codec *inner;
    int level;
    ZSTD_CCtx *cc;
    ZSTD_DCtx *dc;
    unsigned char *a, *b; /* inner message; shuffled inner message */
    size_t cap;           /* bytes of a and of b */
} zwire_state;

struct dp_codec_rt {
    dp_codec_int8_state i8s;
    dp_ring_codec i8;
    uint64_t i8_seed; /* config seed the int8 state was made from */
    int i8_rank, i8_ready;
    zwire_state zs;
    dp_ring_codec zw;
};

/* ------------------------------------------------------------------------- */
/* Configs                                                                    */
/* ------------------------------------------------------------------------- */

static const char *const k_names[] = {"none", "fp16", "bf16", "int8"};
#define NKINDS (sizeof k_names / sizeof k_names[0])

dp_status dp_codec_parse(const char *s, dp_codec_config *out)
{
    if (NULL == out)
        return dp_errorf(DP_ERR_ARG, "dp_codec_parse: out is NULL");
    if (NULL == s)
        return dp_errorf(DP_ERR_ARG, "dp_codec_parse: codec name is NULL");
    for (size_t k = 0; k < NKINDS; k++) {
        if (0 == strcmp(s, k_names[k])) {
            out->kind = (dp_codec_kind)k;
            return DP_OK;
        }
    }
    return dp_errorf(DP_ERR_ARG, "unknown codec '%s' (known: none, fp16, bf16, int8)", s);
}

const char *dp_codec_name(dp_codec_kind kind)
{
    return (unsigned)kind < NKINDS ? k_names[kind] : "?";
}

dp_status dp_codec_config_check(const char *who, const dp_codec_config *cfg)
{
    if ((unsigned)cfg->kind >= NKINDS)
        return dp_errorf(DP_ERR_ARG, "%s: unknown codec kind %d", who, (int)cfg->kind);
    if (cfg->wire_zstd_level < 0 || cfg->wire_zstd_level > DP_CODEC_ZSTD_MAX)
        return dp_errorf(DP_ERR_ARG, "%s: wire zstd level %d (must be 0..%d)", who,
                         cfg->wire_zstd_level, DP_CODEC_ZSTD_MAX);
    return DP_OK;
}

/* ------------------------------------------------------------------------- */
/* Byte shuffle                                                               */
/* ------------------------------------------------------------------------- */

/* dst plane k, element i = src element i, byte k; bytes beyond whole elements are
 * copied as they are. w = 1 is a copy. */
static void shuffle(const unsigned char *restrict src, unsigned char *restrict dst,
                    size_t len, size_t w)
{
    const size_t m = len / w;
    for (size_t k = 0; k < w; k++) {
        unsigned char *restrict d = dst + k * m;
        for (size_t i = 0; i < m; i++)
            d[i] = src[i * w + k];
    }
    memcpy(dst + m * w, src + m * w, len - m * w);
}

static void unshuffle(const unsigned char *restrict src, unsigned char *restrict dst,
                      size_t len, size_t w)
{
    const size_t m = len / w;
    for (size_t k = 0; k < w; k++) {
        const unsigned char *restrict s = src + k * m;
        for (size_t i = 0; i < m; i++)
            dst[i * w + k] = s[i];
    }
    memcpy(dst + m * w, src + m * w, len - m * w);
}

/* ------------------------------------------------------------------------- */
/* The zstd wrapper codec                                                     */
/* ------------------------------------------------------------------------- */

static dp_status zw_grow(zwire_state *z, size_t need)
{
    if (need <= z->cap)
        return DP_OK;
    size_t sz = (need + 63) & ~(size_t)63;
    unsigned char *a = aligned_alloc(64, sz), *b = aligned_alloc(64, sz);
    if (NULL == a || NULL == b) {
        free(a);
        free(b);
        return dp_errorf(DP_ERR_NOMEM, "wire stage: out of memory (%zu bytes)", sz);
    }
    free(z->a);
    free(z->b);
    z->a = a;
    z->b = b;
    z->cap = sz;
    return DP_OK;
}

static size_t zw_max_bytes(const dp_ring_codec *c, size_t n)
{
    const zwire_state *z = c->state;
    return ZSTD_compressBound(z->inner->max_bytes(z->inner, n));
}

static dp_status zw_encode(const dp_ring_codec *c, const float *src, size_t n, void *dst,
                           size_t cap, size_t *bytes)
{
    zwire_state *z = c->state;
    const dp_ring_codec *in = z->inner;
    const size_t need = in->max_bytes(in, n);
    dp_status st = zw_grow(z, need);
    if (DP_OK != st)
        return st;
    size_t ib = 0;
    if (DP_OK != (st = in->encode(in, src, n, z->a, z->cap, &ib)))
        return st; /* (NONFINITE from the inner codec passes through) */
    shuffle(z->a, z->b, ib, in->wire_elem);
    size_t r = ZSTD_compressCCtx(z->cc, dst, cap, z->b, ib, z->level);
    if (ZSTD_isError(r))
        return dp_errorf(DP_ERR_ARG, "wire stage: ZSTD_compressCCtx of %zu bytes failed: %s",
                         ib, ZSTD_getErrorName(r));
    *bytes = r;
    return DP_OK;
}

/* Decompresses and unshuffles a message into z->a; sets *ib. */
static dp_status zw_unpack(zwire_state *z, const void *msg, size_t bytes, size_t n,
                           size_t *ib)
{
    const dp_ring_codec *in = z->inner;
    const size_t need = in->max_bytes(in, n);
    dp_status st = zw_grow(z, need);
    if (DP_OK != st)
        return st;
    size_t r = ZSTD_decompressDCtx(z->dc, z->b, need, msg, bytes);
    if (ZSTD_isError(r))
        return dp_errorf(DP_ERR_MPI, "wire stage: ZSTD_decompressDCtx of a %zu-byte message "
                         "(%zu values) failed: %s", bytes, n, ZSTD_getErrorName(r));
    unshuffle(z->b, z->a, r, in->wire_elem);
    *ib = r;
    return DP_OK;
}

static dp_status zw_decode_reduce(const dp_ring_codec *c, const void *msg, size_t bytes,
                                  float *dst, size_t n)
{
    zwire_state *z = c->state;
    size_t ib;
    dp_status st = zw_unpack(z, msg, bytes, n, &ib);
    return DP_OK != st ? st : z->inner->decode_reduce(z->inner, z->a, ib, dst, n);
}

static dp_status zw_decode_copy(const dp_ring_codec *c, const void *msg, size_t bytes,
                                float *dst, size_t n)
{
    zwire_state *z = c->state;
    size_t ib;
    dp_status st = zw_unpack(z, msg, bytes, n, &ib);
    return DP_OK != st ? st : z->inner->decode_copy(z->inner, z->a, ib, dst, n);
}

/* ------------------------------------------------------------------------- */
/* Runtime                                                                    */
/* ------------------------------------------------------------------------- */

dp_status dp_codec_rt_select(dp_codec_rt **prt, const dp_codec_config *cfg, int rank,
                             const dp_ring_codec **out)
{
    dp_status st = dp_codec_config_check("dp_ring_allreduce_codec", cfg);
    if (DP_OK != st)
        return st;
    dp_codec_rt *rt = *prt;
    if (NULL == rt) {
        if (NULL == (rt = calloc(1, sizeof *rt)))
            return dp_errorf(DP_ERR_NOMEM, "dp_ring_allreduce_codec: out of memory");
        *prt = rt;
    }
    const dp_ring_codec *c = NULL;
    switch (cfg->kind) {
    case DP_CODEC_NONE:
        c = cfg->wire_zstd_level ? &dp_ring_codec_identity_staged : &dp_ring_codec_identity;
        break;
    case DP_CODEC_FP16: c = &dp_ring_codec_fp16; break;
    case DP_CODEC_BF16: c = &dp_ring_codec_bf16; break;
    case DP_CODEC_INT8:
        /* a new seed (or rank) restarts the stream; same seed continues it */
        if (!rt->i8_ready || rt->i8_seed != cfg->seed || rt->i8_rank != rank) {
            dp_codec_int8_init(&rt->i8, &rt->i8s,
                               cfg->seed ^ (0x9e3779b97f4a7c15ull * (uint64_t)(rank + 1)));
            rt->i8_seed = cfg->seed;
            rt->i8_rank = rank;
            rt->i8_ready = 1;
        }
        c = &rt->i8;
        break;
    }
    if (cfg->wire_zstd_level > 0) {
        zwire_state *z = &rt->zs;
        if (NULL == z->cc && NULL == (z->cc = ZSTD_createCCtx()))
            return dp_errorf(DP_ERR_NOMEM, "dp_ring_allreduce_codec: ZSTD_createCCtx failed");
        if (NULL == z->dc && NULL == (z->dc = ZSTD_createDCtx()))
            return dp_errorf(DP_ERR_NOMEM, "dp_ring_allreduce_codec: ZSTD_createDCtx failed");
        z->inner = c;
        z->level = cfg->wire_zstd_level;
        rt->zw = (dp_ring_codec){
            .name = "zstd",
            .lossy = c->lossy,
            .wire_elem = 1,
            .inner = c,
            .max_bytes = zw_max_bytes,
            .encode = zw_encode,
            .decode_reduce = zw_decode_reduce,
            .decode_copy = zw_decode_copy,
            .state = z,
        };
        c = &rt->zw;
    }
    *out = c;
    return DP_OK;
}

void dp_codec_rt_free(dp_codec_rt *rt)
{
    if (NULL == rt)
        return;
    ZSTD_freeCCtx(rt->zs.cc);
    ZSTD_freeDCtx(rt->zs.dc);
    free(rt->zs.a);
    free(rt->zs.b);
    free(rt);
}
