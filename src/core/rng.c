/* xoshiro256** (Blackman & Vigna) seeded through splitmix64, and the
 * PyTorch-style initialisers built on it. */
#include <math.h>

#include "dptrain/rng.h"

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void dp_rng_seed(dp_rng *r, uint64_t seed, uint32_t purpose, uint32_t rank)
{
    /* Mix the stream name into the seed before expanding, so (seed, purpose,
     * rank) triples that differ in one field start far apart. */
    uint64_t x = seed;
    uint64_t k = splitmix64(&x) ^ (((uint64_t)purpose << 32) | rank);
    x = k;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t dp_rng_u64(dp_rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

float dp_rng_uniform(dp_rng *r) { return (float)(dp_rng_u64(r) >> 40) * (1.0f / 16777216.0f); }

float dp_rng_normal(dp_rng *r)
{
    double u1 = ((dp_rng_u64(r) >> 11) + 1.0) * (1.0 / 9007199254740993.0); /* (0, 1] */
    double u2 = (dp_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

uint64_t dp_rng_below(dp_rng *r, uint64_t n)
{
    unsigned __int128 m = (unsigned __int128)dp_rng_u64(r) * n;
    uint64_t lo = (uint64_t)m;
    if (lo < n) {
        uint64_t thresh = -n % n;
        while (lo < thresh) {
            m = (unsigned __int128)dp_rng_u64(r) * n;
            lo = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

void dp_rng_shuffle_i32(dp_rng *r, int32_t *idx, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)dp_rng_below(r, i);
        int32_t t = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = t;
    }
}

void dp_init_uniform(dp_rng *r, float *w, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++) w[i] = lo + (hi - lo) * dp_rng_uniform(r);
}

void dp_init_normal(dp_rng *r, float *w, size_t n, float mean, float std)
{
    for (size_t i = 0; i < n; i++) w[i] = mean + std * dp_rng_normal(r);
}

void dp_init_kaiming_uniform(dp_rng *r, float *w, size_t n, long fan_in, float a)
{
    float gain = sqrtf(2.0f / (1.0f + a * a));
    float bound = gain * sqrtf(3.0f / (float)fan_in);
    dp_init_uniform(r, w, n, -bound, bound);
}

void dp_init_kaiming_normal(dp_rng *r, float *w, size_t n, long fan_in)
{
    dp_init_normal(r, w, n, 0.0f, sqrtf(2.0f / (float)fan_in));
}

void dp_init_xavier_uniform(dp_rng *r, float *w, size_t n, long fan_in, long fan_out)
{
    float bound = sqrtf(6.0f / (float)(fan_in + fan_out));
    dp_init_uniform(r, w, n, -bound, bound);
}
