/* fp16 and bf16 ring codecs: cast to 16 bits on send, decode and accumulate in
 * float32 on receive (comm_internal.h, "codec seam").
 *
 * Conversions are ours (no _Float16 dependency): round to nearest, ties to even.
 * f32 -> f16 follows the branch-free construction of Maratyszcza's FP16 library
 * (fp16_ieee_from_fp32_value): scaling by 2^112 then 2^-110 lets the FPU do the
 * rounding of normal and subnormal halves alike; it needs the default rounding
 * mode and no FTZ/DAZ (we never set them). Where the CPU has F16C, 8 floats at a
 * time go through vcvtps2ph with the same rounding (imm 0 = RNE), chosen once by
 * __builtin_cpu_supports; both paths give the same bits (tests/comm/test_codec.c).
 *
 * Bounds (u = 2^-11 for fp16, 2^-8 for bf16): |x - dec(enc(x))| <= u |x| when |x|
 * is at least the smallest normal (2^-14 fp16, 2^-126 bf16); below it the error is
 * at most half the subnormal spacing: 2^-25 (fp16), 2^-134 (bf16). fp16 values
 * with |x| >= 65520 would round to Inf: encode rejects them like NaN/Inf with
 * DP_ERR_NONFINITE (the ring then fails on every rank, see ring.c). */
#include <cpuid.h>
#include <math.h>
#include <string.h>

#include "comm/comm_internal.h"

static uint32_t f_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float f_from(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

uint16_t dp_f16_from_f32(float f)
{
    const float scale_to_inf = 0x1.0p+112f, scale_to_zero = 0x1.0p-110f;
    float base = (fabsf(f) * scale_to_inf) * scale_to_zero;
    const uint32_t w = f_bits(f), shl1_w = w + w, sign = w & 0x80000000u;
    uint32_t bias = shl1_w & 0xFF000000u;
    if (bias < 0x71000000u)
        bias = 0x71000000u;
    base = f_from((bias >> 1) + 0x07800000u) + base;
    const uint32_t bits = f_bits(base);
    const uint32_t exp_bits = (bits >> 13) & 0x00007C00u, mant_bits = bits & 0x00000FFFu;
    const uint32_t nonsign = exp_bits + mant_bits;
    return (uint16_t)((sign >> 16) | (shl1_w > 0xFF000000u ? 0x7E00u : nonsign));
}

float dp_f32_from_f16(uint16_t h)
{
    const uint32_t w = (uint32_t)h << 16, sign = w & 0x80000000u, two_w = w + w;
    const float normalized = f_from((two_w >> 4) + (0xE0u << 23)) * 0x1.0p-112f;
    const float denormalized = f_from((two_w >> 17) | (126u << 23)) - 0.5f;
    const uint32_t r = two_w < (1u << 27) ? f_bits(denormalized) : f_bits(normalized);
    return f_from(sign | r);
}

uint16_t dp_bf16_from_f32(float f)
{
    uint32_t u = f_bits(f);
    u += 0x7FFFu + ((u >> 16) & 1u); /* RNE; max finite rounds to Inf, as it should */
    return (uint16_t)(u >> 16);
}

/* ------------------------------------------------------------------------- */
/* Bulk conversions                                                           */
/* ------------------------------------------------------------------------- */

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_F16C_PATH 1
/* The F16C paths convert whole groups of 8 and return how many floats they did;
 * the callers convert the tail. */
__attribute__((target("avx,f16c"))) static size_t f16_enc_f16c(const float *src, uint16_t *dst,
                                                                size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
        _mm_storeu_si128((__m128i *)(dst + i), h);
    }
    return i;
}

__attribute__((target("avx,f16c"))) static size_t f16_dec_f16c(const uint16_t *src, float *dst,
                                                                size_t n, int add)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i)));
        if (add)
            v = _mm256_add_ps(v, _mm256_loadu_ps(dst + i));
        _mm256_storeu_ps(dst + i, v);
    }
    return i;
}
#endif

/* 1: use F16C. Decided once; tests may force the portable path. */
static int g_f16c = -1;

/* on: 0 portable, 1 F16C (only where the CPU has it), -1 detect again */
void dp_codec_f16c_force(int on) { g_f16c = on; }

static int use_f16c(void)
{
#ifdef HAVE_F16C_PATH
    if (g_f16c < 0) {
        __builtin_cpu_init();
        /* cpuid rather than __builtin_cpu_supports("f16c"), which clang 14 does not know */
        unsigned a, b, c, d;
        g_f16c = __builtin_cpu_supports("avx") && __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
    }
    return g_f16c;
#else
    return 0;
#endif
}

void dp_f16_encode_n(const float *src, uint16_t *dst, size_t n)
{
    size_t i = 0;
#ifdef HAVE_F16C_PATH
    if (use_f16c())
        i = f16_enc_f16c(src, dst, n);
#endif
    for (; i < n; i++)
        dst[i] = dp_f16_from_f32(src[i]);
}

static void f16_decode_n(const uint16_t *src, float *dst, size_t n, int add)
{
    size_t i = 0;
#ifdef HAVE_F16C_PATH
    if (use_f16c())
        i = f16_dec_f16c(src, dst, n, add);
#endif
    for (; i < n; i++)
        dst[i] = add ? dst[i] + dp_f32_from_f16(src[i]) : dp_f32_from_f16(src[i]);
}

/* ------------------------------------------------------------------------- */
/* Checks and the vtables                                                     */
/* ------------------------------------------------------------------------- */

static size_t h16_max_bytes(const dp_ring_codec *c, size_t n)
{
    (void)c;
    return 2 * n;
}

/* fp16 rejects |x| >= 65520: those round to Inf (65504 is the largest half). */
static dp_status f16_encode(const dp_ring_codec *c, const float *src, size_t n, void *dst,
                            size_t cap, size_t *bytes)
{
    dp_status st = dp_codec_check_input(c, src, n, cap, 65520.0f);
    if (DP_OK != st)
        return st;
    dp_f16_encode_n(src, dst, n);
    *bytes = 2 * n;
    return DP_OK;
}

static dp_status f16_decode(const dp_ring_codec *c, const void *msg, size_t bytes, float *dst,
                            size_t n, int add)
{
    dp_status st = dp_codec_check_size(c, bytes, n);
    if (DP_OK == st)
        f16_decode_n(msg, dst, n, add);
    return st;
}

static dp_status b16_encode(const dp_ring_codec *c, const float *src, size_t n, void *dst,
                            size_t cap, size_t *bytes)
{
    /* 0x1.fep127 (halfway above the largest bf16, a tie to even) and up round to Inf */
    dp_status st = dp_codec_check_input(c, src, n, cap, 0x1.fep127f);
    if (DP_OK != st)
        return st;
    uint16_t *h = dst;
    for (size_t i = 0; i < n; i++)
        h[i] = dp_bf16_from_f32(src[i]);
    *bytes = 2 * n;
    return DP_OK;
}

static dp_status b16_decode(const dp_ring_codec *c, const void *msg, size_t bytes,
                            float *restrict dst, size_t n, int add)
{
    dp_status st = dp_codec_check_size(c, bytes, n);
    if (DP_OK != st)
        return st;
    const uint16_t *restrict h = msg;
    if (add)
        for (size_t i = 0; i < n; i++)
            dst[i] += f_from((uint32_t)h[i] << 16);
    else
        for (size_t i = 0; i < n; i++)
            dst[i] = f_from((uint32_t)h[i] << 16);
    return DP_OK;
}

const dp_ring_codec dp_ring_codec_fp16 = {
    .name = "fp16",
    .lossy = 1,
    .wire_elem = 2,
    .max_bytes = h16_max_bytes,
    .encode = f16_encode,
    .decode = f16_decode,
};

const dp_ring_codec dp_ring_codec_bf16 = {
    .name = "bf16",
    .lossy = 1,
    .wire_elem = 2,
    .max_bytes = h16_max_bytes,
    .encode = b16_encode,
    .decode = b16_decode,
};

const dp_compress_ops dp_compress_fp16 = {
    .name = "fp16",
    .kind = DP_CODEC_FP16,
    .hook = DP_COMPRESS_RING,
    .ring = &dp_ring_codec_fp16,
};

const dp_compress_ops dp_compress_bf16 = {
    .name = "bf16",
    .kind = DP_CODEC_BF16,
    .hook = DP_COMPRESS_RING,
    .ring = &dp_ring_codec_bf16,
};
