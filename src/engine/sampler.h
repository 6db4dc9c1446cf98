/* sampler.h - choosing the next token from a row of logits.
 *
 * Order of operations (as Hugging Face's logits processors apply them):
 * temperature, then top-k, then top-p (nucleus), then min-p, then a draw
 * from the renormalised distribution. temperature == 0 means greedy
 * (argmax, lowest id on ties). Each sequence owns its RNG state, so a seeded
 * request gives the same tokens whatever else runs beside it.
 */
#ifndef PREFT_ENGINE_SAMPLER_H
#define PREFT_ENGINE_SAMPLER_H

#include <stdint.h>

#include "preft/generate.h" /* preft_sampling */

typedef struct preft_sampler {
  preft_sampling params;
  uint64_t rng[2];
  /* scratch, grown to the vocabulary */
  int *idx;
  float *prob;
  int cap;
} preft_sampler;

void preft_sampler_init(preft_sampler *s, const preft_sampling *params);
void preft_sampler_free(preft_sampler *s);
/* logits [V] (read only). Returns the chosen token id. */
int preft_sample(preft_sampler *s, const float *logits, int vocab);
/* A uniform float in [0, 1) from the sampler's RNG (xoroshiro128+). */
float preft_sampler_uniform(preft_sampler *s);

#endif
