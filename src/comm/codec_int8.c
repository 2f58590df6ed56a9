/* int8 ring codec: blockwise scale, stochastic rounding.
 *
 * Message of n values (one ring segment; blocks count from its first value):
 * nb = ceil(n / 256) float32 scales, then n int8 values
 * (4 nb + n bytes). Block k covers values [256k, 256k + 256); its scale is
 * s = max|x| / 127 and value i is sent as q = floor(x/s + u), u uniform in [0, 1),
 * clamped to [-127, 127]: E[q s] = x (unbiased up to float rounding), and
 * |x - q s| < s (1 + 2^-14): x/s and + u are float operations, each off by at
 * most an ulp of a number below 128. A block of zeros has s = 0 and decodes to
 * zeros.
 *
 * u comes from a counter-based generator: a 32-bit mixer (lowbias32) of the
 * value's index in the message, keyed per message by splitmix64 of the seed
 * and a counter that advances by the values encoded, so a run is reproducible
 * from its seed (the ring encodes in a fixed order on each rank). 32-bit
 * integer and float lanes let the AVX2 path quantise 8 values at a time;
 * both paths give the same bits. The state (seed, counter) lives in the codec
 * instance of the workspace (codec_wire.c); dp_codec_int8_init sets it.
 *
 * Error feedback is the ring's job (ring.c): the codec only quantises. */
#include <math.h>
#include <string.h>

#include "comm/comm_internal.h"

static size_t nblocks(size_t n) { return (n + DP_CODEC_INT8_BLOCK - 1) / DP_CODEC_INT8_BLOCK; }

static size_t i8_max_bytes(const dp_ring_codec *c, size_t n)
{
    (void)c;
    return nblocks(n) * sizeof(float) + n;
}

static inline uint32_t lowbias32(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    return x ^ (x >> 16);
}

/* q[i] = clamp(floor(x[i] pre inv + u_i)), u_i from the key and the value's index i0 + i */
static void quantize_c(int8_t *restrict q, const float *restrict x, size_t n, float pre, float inv, uint32_t key,
                       uint32_t i0)
{
    for (size_t i = 0; i < n; i++) {
        const float u = (float)(lowbias32(key ^ (i0 + (uint32_t)i)) >> 8) * 0x1.0p-24f;
        float y = floorf(x[i] * pre * inv + u);
        y = y < -127.0f ? -127.0f : y;
        y = y > 127.0f ? 127.0f : y;
        q[i] = (int8_t)(int32_t)y;
    }
}

static float amax_c(const float *x, size_t n)
{
    float m = 0.0f;
    for (size_t i = 0; i < n; i++)
        m = fmaxf(m, fabsf(x[i]));
    return m;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define I8_HAVE_AVX2 1
#define AVX2 __attribute__((target("avx2")))

/* quantize_c, 8 values at a time, the same operations in the same order (same bits) */
AVX2 static void quantize_avx2(int8_t *q, const float *x, size_t n, float pre, float inv, uint32_t key, uint32_t i0)
{
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), vkey = _mm256_set1_epi32((int)key);
    const __m256i c1 = _mm256_set1_epi32(0x7feb352d), c2 = _mm256_set1_epi32((int)0x846ca68bu);
    const __m256 vpre = _mm256_set1_ps(pre), vinv = _mm256_set1_ps(inv), ulp = _mm256_set1_ps(0x1.0p-24f);
    const __m256 lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i h = _mm256_add_epi32(_mm256_set1_epi32((int)(i0 + (uint32_t)i)), lane);
        h = _mm256_xor_si256(vkey, h);
        h = _mm256_xor_si256(h, _mm256_srli_epi32(h, 16));
        h = _mm256_mullo_epi32(h, c1);
        h = _mm256_xor_si256(h, _mm256_srli_epi32(h, 15));
        h = _mm256_mullo_epi32(h, c2);
        h = _mm256_xor_si256(h, _mm256_srli_epi32(h, 16));
        const __m256 u = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(h, 8)), ulp);
        const __m256 t = _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vpre), vinv);
        const __m256 y = _mm256_min_ps(_mm256_max_ps(_mm256_floor_ps(_mm256_add_ps(t, u)), lo), hi);
        const __m256i v = _mm256_cvttps_epi32(y);
        const __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        _mm_storel_epi64((__m128i *)(void *)(q + i), _mm_packs_epi16(w, w));
    }
    quantize_c(q + i, x + i, n - i, pre, inv, key, i0 + (uint32_t)i);
}

/* max |x| (no NaN: encode scans for them first) */
AVX2 static float amax_avx2(const float *x, size_t n)
{
    const __m256 abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 m = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        m = _mm256_max_ps(m, _mm256_and_ps(_mm256_loadu_ps(x + i), abs));
    __m128 r = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    r = _mm_max_ps(r, _mm_movehl_ps(r, r));
    r = _mm_max_ss(r, _mm_shuffle_ps(r, r, 1));
    return fmaxf(_mm_cvtss_f32(r), amax_c(x + i, n - i));
}
#else
#define quantize_avx2 quantize_c
#define amax_avx2 amax_c
#endif

static int g_i8_avx2 = -1; /* -1 detect, 0 portable, 1 AVX2 */

void dp_codec_int8_force_path(int avx2) { g_i8_avx2 = avx2; }

static int use_avx2(void)
{
#ifdef I8_HAVE_AVX2
    if (g_i8_avx2 < 0) {
        __builtin_cpu_init();
        g_i8_avx2 = __builtin_cpu_supports("avx2") != 0;
    }
    return g_i8_avx2;
#else
    return 0;
#endif
}

static dp_status i8_encode(const dp_ring_codec *c, const float *src, size_t n, void *dst,
                           size_t cap, size_t *bytes)
{
    dp_codec_int8_state *st = c->state;
    const size_t nb = nblocks(n);
    dp_status rc = dp_codec_check_input(c, src, n, cap, 0.0f);
    if (DP_OK != rc)
        return rc;
    unsigned char *out = dst;
    int8_t *q = (int8_t *)(out + nb * sizeof(float));
    const uint32_t key = (uint32_t)dp_mix64(st->seed ^ st->ctr);
    const int avx2 = use_avx2();
    for (size_t b = 0; b < nb; b++) {
        const size_t lo = b * DP_CODEC_INT8_BLOCK;
        const size_t hi = lo + DP_CODEC_INT8_BLOCK < n ? lo + DP_CODEC_INT8_BLOCK : n;
        const float amax = avx2 ? amax_avx2(src + lo, hi - lo) : amax_c(src + lo, hi - lo);
        const float s = amax / 127.0f;
        memcpy(out + b * sizeof(float), &s, sizeof s);
        if (0.0f == s) { /* zeros (or values so tiny that amax/127 underflows) */
            memset(q + lo, 0, hi - lo);
            continue;
        }
        /* a subnormal s has no finite float 1/s: x and s are scaled by 2^100 first (exactly) */
        const float pre = s < 0x1p-126f ? 0x1p100f : 1.0f;
        if (avx2)
            quantize_avx2(q + lo, src + lo, hi - lo, pre, 1.0f / (s * pre), key, (uint32_t)lo);
        else
            quantize_c(q + lo, src + lo, hi - lo, pre, 1.0f / (s * pre), key, (uint32_t)lo);
    }
    st->ctr += n;
    *bytes = i8_max_bytes(c, n);
    return DP_OK;
}

static dp_status i8_decode(const dp_ring_codec *c, const void *msg, size_t bytes,
                           float *restrict dst, size_t n, int add)
{
    dp_status st = dp_codec_check_size(c, bytes, n);
    if (DP_OK != st)
        return st;
    const size_t nb = nblocks(n);
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

/* The template: dp_codec_int8_init gives a copy its state. */
static const dp_ring_codec i8_codec = {
    .name = "int8",
    .lossy = 1,
    .wire_elem = 1,
    .max_bytes = i8_max_bytes,
    .encode = i8_encode,
    .decode = i8_decode,
};

void dp_codec_int8_init(dp_ring_codec *c, void *state, uint64_t seed)
{
    dp_codec_int8_state *st = state;
    st->seed = dp_mix64(seed);
    st->ctr = 0;
    *c = i8_codec;
    c->state = st;
}

/* --codec int8: the codec is per workspace (its RNG state). */
const dp_compress_ops dp_compress_int8 = {
    .name = "int8",
    .kind = DP_CODEC_INT8,
    .hook = DP_COMPRESS_RING,
    .ring = &i8_codec,
    .ring_init = dp_codec_int8_init,
    .ring_state_bytes = sizeof(dp_codec_int8_state),
};
