/* Seeded, reproducible random numbers: xoshiro256** streams.
 *
 * A stream is named by (seed, purpose, rank): every rank and every purpose
 * (init, shuffling, dropout, ...) gets an independent sequence, and the whole
 * state is four words, so checkpoints carry it and a resumed run continues the
 * same sequence. */
#ifndef DPTRAIN_RNG_H
#define DPTRAIN_RNG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dp_rng { uint64_t s[4]; } dp_rng;

enum { DP_STREAM_INIT = 1, DP_STREAM_SHUFFLE = 2, DP_STREAM_DROPOUT = 3, DP_STREAM_DATA = 4, DP_STREAM_USER = 16 };

/*! Seeds a stream from (seed, purpose, rank) through splitmix64, so nearby
 *  seeds and streams give unrelated sequences. */
void dp_rng_seed(dp_rng *r, uint64_t seed, uint32_t purpose, uint32_t rank);
uint64_t dp_rng_u64(dp_rng *r);
/*! Uniform float in [0, 1) with 24 random bits. */
float dp_rng_uniform(dp_rng *r);
/*! Standard normal (Box-Muller, one value per call). */
float dp_rng_normal(dp_rng *r);
/*! Uniform integer in [0, n), unbiased (Lemire's method). n > 0. */
uint64_t dp_rng_below(dp_rng *r, uint64_t n);
/*! Fisher-Yates shuffle of idx[0..n). */
void dp_rng_shuffle_i32(dp_rng *r, int32_t *idx, size_t n);

/* Initialisers, as PyTorch's nn.init. fan_in/fan_out count inputs/outputs per
 * unit (for a conv: channels/groups * kh * kw). */
void dp_init_uniform(dp_rng *r, float *w, size_t n, float lo, float hi);
void dp_init_normal(dp_rng *r, float *w, size_t n, float mean, float std);
/*! kaiming_uniform_(a): bound = gain * sqrt(3 / fan_in), gain = sqrt(2/(1+a^2)). */
void dp_init_kaiming_uniform(dp_rng *r, float *w, size_t n, long fan_in, float a);
/*! kaiming_normal_ (fan_in mode, ReLU gain): std = sqrt(2 / fan_in). */
void dp_init_kaiming_normal(dp_rng *r, float *w, size_t n, long fan_in);
/*! xavier_uniform_: bound = sqrt(6 / (fan_in + fan_out)). */
void dp_init_xavier_uniform(dp_rng *r, float *w, size_t n, long fan_in, long fan_out);

#ifdef __cplusplus
}
#endif
#endif
