/* int8 ring codec: blockwise scale, stochastic rounding.
 *
 * Message of n values (one ring segment; blocks count from its first value):
 * nb = ceil(n / 256) float32 scales, then n int8 values
 * (4 nb + n bytes). Block k covers values [256k, 256k + 256); its scale is
 * s = max|x| / 127 and value i is sent as q = floor(x/s + u), u uniform in [0, 1),
 * clamped to [-127, 127]: E[q s] = x (unbiased), and |x - q s| < s (up to one
 * float rounding of x/s). A block of zeros has s = 0 and decodes to zeros.
 *
 * u comes from a counter-based generator (splitmix64 of seed and a counter that
 * advances by one per encoded value), so a run is reproducible from its seed: the
 * ring encodes in a fixed order on each rank. The state (seed, counter) lives in
 * the codec instance of the workspace (codec_wire.c); dp_codec_int8_init sets it.
 *
 * Error feedback is the ring's job (ring.c): the codec only quantises. */
#include <math.h>
#include <string.h>

#include "dptrain/floatscan.h"
#include "comm/comm_internal.h"

static size_t nblocks(size_t n) { return (n + DP_CODEC_INT8_BLOCK - 1) / DP_CODEC_INT8_BLOCK; }

static size_t i8_max_bytes(const dp_ring_codec *c, size_t n)
{
    (void)c;
    return nblocks(n) * sizeof(float) + n;
}

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static dp_status i8_encode(const dp_ring_codec *c, const float *src, size_t n, void *dst,
                           size_t cap, size_t *bytes)
{
    dp_codec_int8_state *st = c->state;
    const size_t nb = nblocks(n), need = nb * sizeof(float) + n;
    if (cap < need)
        return dp_errorf(DP_ERR_ARG, "int8 codec: %zu values need %zu bytes, have %zu", n,
                         need, cap);
    size_t bad = dp_floats_find_bad(src, n, 0.0f);
    if (bad < n)
        return dp_codec_reject("int8", src, bad);
    unsigned char *out = dst;
    int8_t *q = (int8_t *)(out + nb * sizeof(float));
    const uint64_t key = st->seed, ctr = st->ctr;
    for (size_t b = 0; b < nb; b++) {
        const size_t lo = b * DP_CODEC_INT8_BLOCK;
        const size_t hi = lo + DP_CODEC_INT8_BLOCK < n ? lo + DP_CODEC_INT8_BLOCK : n;
        float amax = 0.0f;
        for (size_t i = lo; i < hi; i++)
            amax = fmaxf(amax, fabsf(src[i]));
        const float s = amax / 127.0f;
        memcpy(out + b * sizeof(float), &s, sizeof s);
        if (0.0f == s) { /* zeros (or values so tiny that amax/127 underflows) */
            memset(q + lo, 0, hi - lo);
            continue;
        }
        /* x / s in double: exact enough and finite even when s is subnormal */
        const double inv = 1.0 / (double)s;
        for (size_t i = lo; i < hi; i++) {
            const uint64_t h = splitmix64(key ^ (ctr + i));
            const double u = (double)(h >> 40) * 0x1.0p-24; /* [0, 1) */
            double y = floor((double)src[i] * inv + u);
            y = y > 127.0 ? 127.0 : (y < -127.0 ? -127.0 : y);
            q[i] = (int8_t)y;
        }
    }
    st->ctr = ctr + n;
    *bytes = need;
    return DP_OK;
}

static dp_status i8_decode(const void *msg, size_t bytes, float *restrict dst, size_t n,
                           int add)
{
    const size_t nb = nblocks(n), need = nb * sizeof(float) + n;
    if (bytes != need)
        return dp_errorf(DP_ERR_MPI, "int8 codec: message of %zu bytes where %zu values "
                         "(%zu bytes) were expected: ranks disagree on the count", bytes, n,
                         need);
    const unsigned char *in = msg;
    const int8_t *restrict q = (const int8_t *)(in + nb * sizeof(float));
    for (size_t b = 0; b < nb; b++) {
        float s;
        memcpy(&s, in + b * sizeof(float), sizeof s);
        const size_t lo = b * DP_CODEC_INT8_BLOCK;
        const size_t hi = lo + DP_CODEC_INT8_BLOCK < n ? lo + DP_CODEC_INT8_BLOCK : n;
        if (add)
            for (size_t i = lo; i < hi; i++)
                dst[i] += (float)q[i] * s;
        else
            for (size_t i = lo; i < hi; i++)
                dst[i] = (float)q[i] * s;
    }
    return DP_OK;
}

static dp_status i8_decode_reduce(const dp_ring_codec *c, const void *msg, size_t bytes,
                                  float *dst, size_t n)
{
    (void)c;
    return i8_decode(msg, bytes, dst, n, 1);
}

static dp_status i8_decode_copy(const dp_ring_codec *c, const void *msg, size_t bytes,
                                float *dst, size_t n)
{
    (void)c;
    return i8_decode(msg, bytes, dst, n, 0);
}

void dp_codec_int8_init(dp_ring_codec *c, dp_codec_int8_state *st, uint64_t seed)
{
    st->seed = splitmix64(seed);
    st->ctr = 0;
    *c = (dp_ring_codec){
        .name = "int8",
        .lossy = 1,
        .wire_elem = 1,
        .max_bytes = i8_max_bytes,
        .encode = i8_encode,
        .decode_reduce = i8_decode_reduce,
        .decode_copy = i8_decode_copy,
        .state = st,
    };
}
