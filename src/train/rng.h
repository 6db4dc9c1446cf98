/* rng.h - the training's random numbers: splitmix64, one 64-bit state, so a
 * checkpoint stores the generator exactly. Same seed, same sequence, on
 * every machine. */
#ifndef PREFT_TRAIN_RNG_H
#define PREFT_TRAIN_RNG_H

#include <math.h>
#include <stdint.h>

typedef struct preft_rng {
  uint64_t s;
} preft_rng;

static inline void preft_rng_seed(preft_rng *r, uint64_t seed) {
  r->s = seed * 0x9e3779b97f4a7c15ull + 0x5851f42d4c957f2dull;
}

static inline uint64_t preft_rng_u64(preft_rng *r) {
  uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Advances r by n draws at once: splitmix64's state moves by a constant per
 * draw, so draw i of a stream is known without drawing 0..i-1 (row-split
 * dropout masks draw exactly the values of one stream read in order). */
static inline void preft_rng_skip(preft_rng *r, uint64_t n) { r->s += n * 0x9e3779b97f4a7c15ull; }

/* uniform in [0, 1) with 53 random bits */
static inline double preft_rng_uniform(preft_rng *r) { return (double)(preft_rng_u64(r) >> 11) * 0x1p-53; }

/* standard normal (Box-Muller, one value per call) */
static inline float preft_rng_normal(preft_rng *r) {
  double u1 = preft_rng_uniform(r), u2 = preft_rng_uniform(r);
  if (u1 < 1e-300) u1 = 1e-300;
  return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* uniform integer in [0, n) */
static inline uint64_t preft_rng_below(preft_rng *r, uint64_t n) { return n ? preft_rng_u64(r) % n : 0; }

#endif
