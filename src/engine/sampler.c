/* sampler.c - temperature / top-k / top-p / min-p sampling (see sampler.h). */
#include "engine/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

static uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void preft_sampler_init(preft_sampler *s, const preft_sampling *params) {
  memset(s, 0, sizeof *s);
  s->params = *params;
  s->rng[0] = mix(params->seed + 0x9e3779b97f4a7c15ull);
  s->rng[1] = mix(params->seed + 2 * 0x9e3779b97f4a7c15ull) | 1;
}

void preft_sampler_free(preft_sampler *s) {
  free(s->idx);
  free(s->prob);
  memset(s, 0, sizeof *s);
}

float preft_sampler_uniform(preft_sampler *s) {
  uint64_t s0 = s->rng[0], s1 = s->rng[1], r = s0 + s1;
  s1 ^= s0;
  s->rng[0] = ((s0 << 24) | (s0 >> 40)) ^ s1 ^ (s1 << 16);
  s->rng[1] = (s1 << 37) | (s1 >> 27);
  return (float)(r >> 40) * 0x1p-24f;
}

static int argmax(const float *x, int n) {
  int best = 0;
  for (int i = 1; i < n; i++)
    if (x[i] > x[best]) best = i;
  return best;
}

/* Sorts candidate indices by probability, descending (ties: lower id first). */
static int by_prob_desc(const void *a, const void *b, void *ctx) {
  const float *prob = ctx;
  int i = *(const int *)a, j = *(const int *)b;
  float pi = prob[i], pj = prob[j];
  if (pi != pj) return pi > pj ? -1 : 1;
  return i - j;
}

/* Moves the k largest entries of idx[0..n) (by prob) to the front, sorted. */
static void select_top(int *idx, int n, int k, const float *prob) {
  if (k < n) {
    int lo = 0, hi = n - 1;
    while (lo < hi) { /* Hoare-style selection so that idx[0..k) hold the k largest */
      float pivot = prob[idx[(lo + hi) / 2]];
      int i = lo, j = hi;
      while (i <= j) {
        while (prob[idx[i]] > pivot) i++;
        while (prob[idx[j]] < pivot) j--;
        if (i <= j) {
          int t = idx[i];
          idx[i] = idx[j];
          idx[j] = t;
          i++;
          j--;
        }
      }
      if (k - 1 <= j)
        hi = j;
      else if (k - 1 >= i)
        lo = i;
      else
        break;
    }
    n = k;
  }
  qsort_r(idx, (size_t)n, sizeof(int), by_prob_desc, (void *)prob);
}

int preft_sample(preft_sampler *s, const float *logits, int vocab) {
  const preft_sampling *p = &s->params;
  if (p->temperature <= 0.0f || p->top_k == 1) return argmax(logits, vocab);
  if (vocab > s->cap) {
    s->idx = preft_xrealloc(s->idx, sizeof(int) * (size_t)vocab);
    s->prob = preft_xrealloc(s->prob, sizeof(float) * (size_t)vocab);
    s->cap = vocab;
  }
  float mx = logits[argmax(logits, vocab)];
  double sum = 0;
  for (int i = 0; i < vocab; i++) {
    s->prob[i] = expf((logits[i] - mx) / p->temperature);
    sum += s->prob[i];
  }
  for (int i = 0; i < vocab; i++) s->prob[i] = (float)(s->prob[i] / sum);
  int n = 0;
  for (int i = 0; i < vocab; i++)
    if (s->prob[i] > 0.0f) s->idx[n++] = i;
  if (n == 0) return argmax(logits, vocab);
  int k = p->top_k > 0 && p->top_k < n ? p->top_k : n;
  select_top(s->idx, n, k, s->prob);
  n = k;
  if (p->top_p < 1.0f) {
    double cum = 0;
    int keep = 0;
    while (keep < n) {
      cum += s->prob[s->idx[keep++]];
      if (cum >= p->top_p) break;
    }
    n = keep;
  }
  if (p->min_p > 0.0f) {
    float floor_p = p->min_p * s->prob[s->idx[0]];
    int keep = 1;
    while (keep < n && s->prob[s->idx[keep]] >= floor_p) keep++;
    n = keep;
  }
  double total = 0;
  for (int i = 0; i < n; i++) total += s->prob[s->idx[i]];
  double r = preft_sampler_uniform(s) * total, acc = 0;
  for (int i = 0; i < n; i++) {
    acc += s->prob[s->idx[i]];
    if (r < acc) return s->idx[i];
  }
  return s->idx[n - 1];
}
