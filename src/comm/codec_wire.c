/* The lossless wire stage, and the codec a dp_codec_config selects.
 *
 * dp_codec_config -> dp_ring_codec: the table of compressors (compress.c) gives
 * the kind's codec; a workspace keeps a dp_codec_rt holding the state of a
 * stateful one (int8's RNG) and, when wire_zstd_level > 0, a wrapper codec
 * around the chosen one (float32 too: the wrapper is not raw, so the ring
 * stages its messages).
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
    size_t acap, bcap;    /* their bytes */
} zwire_state;

struct dp_codec_rt {
    /* a stateful codec (the entry has ring_init): its copy, set up for this workspace */
    dp_ring_codec own;
    void *own_state;         /* ring_state_bytes of the entry */
    size_t own_cap;          /* bytes of own_state */
    dp_codec_kind own_kind;
    uint64_t own_seed;       /* config seed the state was made from */
    int own_rank, own_ready;
    zwire_state zs;
    dp_ring_codec zw;
};

/* ------------------------------------------------------------------------- */
/* Byte shuffle                                                               */
/* ------------------------------------------------------------------------- */

/* The first a b bytes of src as an a x b matrix, transposed into dst; the
 * bytes beyond are copied as they are. Of len bytes of elements of w bytes,
 * m = len / w: the shuffle (plane k, element i = element i, byte k) is a = m,
 * b = w; the unshuffle a = w, b = m. w = 1 is a copy. */
static void transpose(const unsigned char *restrict src, unsigned char *restrict dst, size_t len,
                      size_t a, size_t b)
{
    for (size_t j = 0; j < b; j++) {
        unsigned char *restrict d = dst + j * a;
        for (size_t i = 0; i < a; i++)
            d[i] = src[i * b + j];
    }
    memcpy(dst + a * b, src + a * b, len - a * b);
}

/* ------------------------------------------------------------------------- */
/* The zstd wrapper codec                                                     */
/* ------------------------------------------------------------------------- */

static dp_status zw_grow(zwire_state *z, size_t need)
{
    if (!dp_comm_grow(&z->a, &z->acap, need) || !dp_comm_grow(&z->b, &z->bcap, need))
        return dp_errorf(DP_ERR_NOMEM, "wire stage: out of memory (%zu bytes)", need);
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
    if (DP_OK != (st = in->encode(in, src, n, z->a, z->acap, &ib)))
        return st; /* (NONFINITE from the inner codec passes through) */
    transpose(z->a, z->b, ib, ib / in->wire_elem, in->wire_elem);
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
    transpose(z->b, z->a, r, in->wire_elem, r / in->wire_elem);
    *ib = r;
    return DP_OK;
}

static dp_status zw_decode(const dp_ring_codec *c, const void *msg, size_t bytes, float *dst,
                           size_t n, int add)
{
    zwire_state *z = c->state;
    size_t ib = 0;
    dp_status st = zw_unpack(z, msg, bytes, n, &ib);
    return DP_OK != st ? st : z->inner->decode(z->inner, z->a, ib, dst, n, add);
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
    const dp_compress_ops *o = dp_compress_ops_of(cfg->kind); /* a ring codec: checked above */
    const dp_ring_codec *c = o->ring;
    if (o->ring_init) {
        /* a new codec, seed (or rank) restarts the stream; the same continues it */
        if (!rt->own_ready || rt->own_kind != cfg->kind || rt->own_seed != cfg->seed || rt->own_rank != rank) {
            if (rt->own_cap < o->ring_state_bytes) {
                void *p = realloc(rt->own_state, o->ring_state_bytes);
                if (NULL == p)
                    return dp_errorf(DP_ERR_NOMEM, "dp_ring_allreduce_codec: out of memory");
                rt->own_state = p;
                rt->own_cap = o->ring_state_bytes;
            }
            o->ring_init(&rt->own, rt->own_state, cfg->seed ^ (0x9e3779b97f4a7c15ull * (uint64_t)(rank + 1)));
            rt->own_kind = cfg->kind;
            rt->own_seed = cfg->seed;
            rt->own_rank = rank;
            rt->own_ready = 1;
        }
        c = &rt->own;
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
            .decode = zw_decode,
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
    free(rt->own_state);
    ZSTD_freeCCtx(rt->zs.cc);
    ZSTD_freeDCtx(rt->zs.dc);
    free(rt->zs.a);
    free(rt->zs.b);
    free(rt);
}
