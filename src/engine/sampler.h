/* sampler.h - choosing the next token from a row of logits.
 *
 * Order of operations (as Hugging Face's logits processors apply them):
 * temperature, then top-k, then top-p (nucleus), then min-p, then a draw
 * from the renormalised distribution. temperature == 0 means greedy
 * (argmax, lowest id on ties). Each sequence owns its RNG state, so a seeded
 * request gives the same tokens whatever else runs beside it.
 *
 * Tie order: candidates are ranked by probability, highest first, and among
 * equal probabilities by id, lowest first; top-k, top-p and the draw all
 * follow that one order (preft_rank_key encodes it).
 */
#ifndef PREFT_ENGINE_SAMPLER_H
#define PREFT_ENGINE_SAMPLER_H

#include <stdbool.h>
#include <stdint.h>

#include "preft/generate.h" /* preft_sampling */

/* Working memory of one draw, grown on use: any sampler may use any scratch,
 * one draw at a time (the engine keeps one per pool thread). */
typedef struct preft_sample_scratch {
  float *prob;    /* [vocab] */
  uint64_t *keys; /* rank keys of the candidates, then as many for sorting */
  float *dist;    /* [vocab] a whole distribution (speculative verification) */
  int prob_cap, key_cap, dist_cap;
} preft_sample_scratch;

void preft_sample_scratch_free(preft_sample_scratch *w);

typedef struct preft_sampler {
  preft_sampling params;
  uint64_t rng[2];
  preft_sample_scratch scratch; /* used by preft_sample */
} preft_sampler;

void preft_sampler_init(preft_sampler *s, const preft_sampling *params);
/* The same settings with a separate RNG stream (a draft model's draws for
 * the request seeded by params->seed, speculative.h). */
void preft_sampler_init_draft(preft_sampler *s, const preft_sampling *params);
void preft_sampler_free(preft_sampler *s);
/* logits [V] (read only). Returns the chosen token id. Touches only s and
 * w, so draws with different samplers and scratches may run at once. */
int preft_sample_with(preft_sampler *s, preft_sample_scratch *w, const float *logits, int vocab);
/* preft_sample_with the sampler's own scratch. */
int preft_sample(preft_sampler *s, const float *logits, int vocab);
/* A uniform float in [0, 1) from the sampler's RNG (xoroshiro128+). */
float preft_sampler_uniform(preft_sampler *s);
/* Whether draws under p are the argmax (no RNG use). */
static inline bool preft_sampling_greedy(const preft_sampling *p) {
  return p->temperature <= 0.0f || p->top_k == 1;
}
/* The distribution preft_sample_with draws from under p: out [vocab], zero
 * outside the kept candidates, summing to 1 (one-hot at the argmax when
 * greedy). out must not be w's memory. */
void preft_sample_probs(const preft_sampling *p, preft_sample_scratch *w, const float *logits, int vocab,
                        float *out);
/* A draw from prob [vocab] (non-negative, renormalised here) with the
 * sampler's RNG: the first id whose running sum passes u * total. */
int preft_sample_from(preft_sampler *s, const float *prob, int vocab);

/* ---- ranking: the k best of many values in O(n log k) ---------------------- */

/* A key that orders (value, id) pairs as the sampler ranks them: a larger
 * key is a larger value, or the same value and a lower id (-0 equals +0;
 * NaN has no meaningful place). */
uint64_t preft_rank_key(float value, int id);
static inline int preft_rank_id(uint64_t key) { return (int)~(uint32_t)key; }

/* The best k keys offered so far, in heap[0..k) (a min-heap: heap[0] is the
 * worst kept). Start with preft_best_init, offer every key, then
 * preft_best_sort puts the kept keys best first and returns their count. */
typedef struct preft_best {
  uint64_t *heap;
  int n, k;
} preft_best;

static inline preft_best preft_best_init(uint64_t *heap, int k) {
  preft_best b = {heap, 0, k};
  return b;
}
void preft_best_offer(preft_best *b, uint64_t key);
int preft_best_sort(preft_best *b);

#endif
