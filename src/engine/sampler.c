/* sampler.c - temperature / top-k / top-p / min-p sampling (see sampler.h).
 *
 * Only the candidates that can survive the filters are ranked: min-p's
 * floor is exact, and for top-p a token whose probability is below
 * (1 - top_p) / (V - 1) cannot be in the nucleus (all such tokens together
 * hold less than 1 - top_p), so they are dropped before ranking (as
 * llama2.c does). The kept candidates are a prefix of the full ranking, so
 * the result is the one a full sort gives; should rounding ever leave the
 * nucleus unfinished within that prefix, the ranking is redone without the
 * top-p cut. */
#include "engine/sampler.h"

#include <math.h>
#include <stdbool.h>
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

void preft_sampler_init_draft(preft_sampler *s, const preft_sampling *params) {
  preft_sampling p = *params;
  p.seed ^= 0xd1b54a32d192ed03ull;
  preft_sampler_init(s, &p);
}

void preft_sample_scratch_free(preft_sample_scratch *w) {
  free(w->prob);
  free(w->keys);
  free(w->dist);
  memset(w, 0, sizeof *w);
}

void preft_sampler_free(preft_sampler *s) {
  preft_sample_scratch_free(&s->scratch);
  memset(s, 0, sizeof *s);
}

float preft_sampler_uniform(preft_sampler *s) {
  uint64_t s0 = s->rng[0], s1 = s->rng[1], r = s0 + s1;
  s1 ^= s0;
  s->rng[0] = ((s0 << 24) | (s0 >> 40)) ^ s1 ^ (s1 << 16);
  s->rng[1] = (s1 << 37) | (s1 >> 27);
  return (float)(r >> 40) * 0x1p-24f;
}

/* ---- ranking ------------------------------------------------------------------ */

uint64_t preft_rank_key(float value, int id) {
  if (value == 0.0f) value = 0.0f; /* -0 ranks as +0 */
  uint32_t u;
  memcpy(&u, &value, sizeof u);
  u = (u & 0x80000000u) ? ~u : (u | 0x80000000u); /* float order as unsigned order */
  return (uint64_t)u << 32 | (uint32_t) ~(uint32_t)id;
}

/* Restores the min-heap below position i of h[0..n). */
static void sift_down(uint64_t *h, int n, int i) {
  uint64_t x = h[i];
  for (;;) {
    int c = 2 * i + 1;
    if (c >= n) break;
    if (c + 1 < n && h[c + 1] < h[c]) c++;
    if (h[c] >= x) break;
    h[i] = h[c];
    i = c;
  }
  h[i] = x;
}

/* Moves h[i] up the min-heap to its place. */
static void sift_up(uint64_t *h, int i) {
  uint64_t x = h[i];
  while (i > 0) {
    int parent = (i - 1) / 2;
    if (h[parent] <= x) break;
    h[i] = h[parent];
    i = parent;
  }
  h[i] = x;
}

void preft_best_offer(preft_best *b, uint64_t key) {
  if (b->n < b->k) {
    b->heap[b->n] = key;
    sift_up(b->heap, b->n++);
  } else if (b->k > 0 && key > b->heap[0]) {
    b->heap[0] = key;
    sift_down(b->heap, b->k, 0);
  }
}

int preft_best_sort(preft_best *b) {
  for (int end = b->n - 1; end > 0; end--) { /* the worst goes last each time */
    uint64_t t = b->heap[0];
    b->heap[0] = b->heap[end];
    b->heap[end] = t;
    sift_down(b->heap, end, 0);
  }
  return b->n;
}

/* ---- sampling ------------------------------------------------------------------ */

static int argmax(const float *x, int n) {
  int best = 0;
  for (int i = 1; i < n; i++)
    if (x[i] > x[best]) best = i;
  return best;
}

static int by_key_desc(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x < y) - (x > y);
}

/* Sorts keys[0..n), collected in ascending id order, highest first: a stable
 * radix sort on the value half (8 bits a pass) keeps equal values in id
 * order, which is the key order. tmp[n] is scratch. */
static void sort_keys_desc(uint64_t *keys, uint64_t *tmp, int n) {
  if (n < 512) {
    qsort(keys, (size_t)n, sizeof *keys, by_key_desc);
    return;
  }
  uint64_t *src = keys, *dst = tmp;
  for (int shift = 32; shift < 64; shift += 8) {
    int start[257] = {0};
    for (int i = 0; i < n; i++) start[256 - ((src[i] >> shift) & 255)]++;
    if (start[256 - ((src[0] >> shift) & 255)] == n) continue; /* one digit for all: nothing moves */
    for (int d = 0; d < 256; d++) start[d + 1] += start[d];
    for (int i = 0; i < n; i++) dst[start[255 - ((src[i] >> shift) & 255)]++] = src[i];
    uint64_t *t = src;
    src = dst;
    dst = t;
  }
  if (src != keys) memcpy(keys, src, sizeof *keys * (size_t)n);
}

/* How many tokens have a probability above 0 and at least floor. */
static int count_candidates(const float *prob, int vocab, float floor) {
  int m = 0;
  for (int i = 0; i < vocab; i++) m += prob[i] > 0.0f && prob[i] >= floor;
  return m;
}

/* Ranks the m tokens whose probability is above 0 and at least floor: their
 * keys go to w->keys best first, at most k of them (k <= 0: all). Returns
 * how many are ranked. */
static int rank_candidates(preft_sample_scratch *w, int vocab, float floor, int k, int m) {
  int need = k > 0 ? (k < m ? k : m) : 2 * m; /* a heap of k, or m keys and m to sort with */
  if (need > w->key_cap) {
    w->key_cap = need > 2 * w->key_cap ? need : 2 * w->key_cap;
    w->keys = preft_xrealloc(w->keys, sizeof *w->keys * (size_t)w->key_cap);
  }
  const float *prob = w->prob;
  if (k > 0) {
    preft_best best = preft_best_init(w->keys, k);
    for (int i = 0; i < vocab; i++)
      if (prob[i] > 0.0f && prob[i] >= floor) preft_best_offer(&best, preft_rank_key(prob[i], i));
    return preft_best_sort(&best);
  }
  int n = 0;
  for (int i = 0; i < vocab; i++)
    if (prob[i] > 0.0f && prob[i] >= floor) w->keys[n++] = preft_rank_key(prob[i], i);
  sort_keys_desc(w->keys, w->keys + n, n);
  return n;
}

/* How many of the n ranked candidates top-p keeps: the shortest prefix whose
 * probabilities add up to top_p. *reached is false when all n fall short. */
static int nucleus(const preft_sample_scratch *w, int n, float top_p, bool *reached) {
  double cum = 0;
  int keep = 0;
  *reached = false;
  while (keep < n) {
    cum += w->prob[preft_rank_id(w->keys[keep++])];
    if (cum >= top_p) {
      *reached = true;
      break;
    }
  }
  return keep;
}

int preft_sample(preft_sampler *s, const float *logits, int vocab) {
  return preft_sample_with(s, &s->scratch, logits, vocab);
}

/* The candidates the filters keep: their keys in w->keys[0, n), best first,
 * their probabilities (before renormalising) in w->prob; returns n, 0 when
 * the draw is the argmax (greedy, or nothing kept). */
static int candidates(const preft_sampling *p, preft_sample_scratch *w, const float *logits, int vocab) {
  if (p->temperature <= 0.0f || p->top_k == 1) return 0;
  if (vocab > w->prob_cap) {
    w->prob = preft_xrealloc(w->prob, sizeof *w->prob * (size_t)vocab);
    w->prob_cap = vocab;
  }
  float *prob = w->prob;
  int top = argmax(logits, vocab);
  float mx = logits[top];
  double sum = 0;
  for (int i = 0; i < vocab; i++) {
    prob[i] = expf((logits[i] - mx) / p->temperature);
    sum += prob[i];
  }
  float p_max = (float)(prob[top] / sum); /* as the loop below rounds it */
  /* min-p keeps what is at least min_p * p_max (and always the best) */
  float floor_p = p->min_p * p_max;
  float min_p_cut = p->min_p > 0.0f ? (floor_p < p_max ? floor_p : p_max) : 0.0f;
  float top_p_cut = p->top_p < 1.0f && vocab > 1 ? (float)((1.0 - p->top_p) / (vocab - 1)) : 0.0f;
  if (top_p_cut > p_max) top_p_cut = p_max; /* the best always stays a candidate */
  float cut = top_p_cut > min_p_cut ? top_p_cut : min_p_cut;
  int k = p->top_k > 0 && p->top_k < vocab ? p->top_k : 0, m = 0;
  for (int i = 0; i < vocab; i++) {
    prob[i] = (float)(prob[i] / sum);
    m += prob[i] > 0.0f && prob[i] >= cut;
  }
  int n = rank_candidates(w, vocab, cut, k, m);
  if (n == 0) return 0;
  if (p->top_p < 1.0f) {
    bool reached;
    int keep = nucleus(w, n, p->top_p, &reached);
    if (!reached && top_p_cut > min_p_cut && (k == 0 || m < k)) { /* the cut dropped too much */
      n = rank_candidates(w, vocab, min_p_cut, k, count_candidates(prob, vocab, min_p_cut));
      keep = nucleus(w, n, p->top_p, &reached);
    }
    n = keep;
  }
  if (p->min_p > 0.0f) {
    int keep = 1;
    while (keep < n && prob[preft_rank_id(w->keys[keep])] >= floor_p) keep++;
    n = keep;
  }
  return n;
}

int preft_sample_with(preft_sampler *s, preft_sample_scratch *w, const float *logits, int vocab) {
  int n = candidates(&s->params, w, logits, vocab);
  if (n == 0) return argmax(logits, vocab);
  const float *prob = w->prob;
  double total = 0;
  for (int i = 0; i < n; i++) total += prob[preft_rank_id(w->keys[i])];
  double r = preft_sampler_uniform(s) * total, acc = 0;
  for (int i = 0; i < n; i++) {
    acc += prob[preft_rank_id(w->keys[i])];
    if (r < acc) return preft_rank_id(w->keys[i]);
  }
  return preft_rank_id(w->keys[n - 1]);
}

void preft_sample_probs(const preft_sampling *p, preft_sample_scratch *w, const float *logits, int vocab,
                        float *out) {
  int n = candidates(p, w, logits, vocab);
  memset(out, 0, sizeof *out * (size_t)vocab);
  if (n == 0) {
    out[argmax(logits, vocab)] = 1;
    return;
  }
  double total = 0;
  for (int i = 0; i < n; i++) total += w->prob[preft_rank_id(w->keys[i])];
  for (int i = 0; i < n; i++) {
    int id = preft_rank_id(w->keys[i]);
    out[id] = (float)(w->prob[id] / total);
  }
}

int preft_sample_from(preft_sampler *s, const float *prob, int vocab) {
  double total = 0;
  for (int v = 0; v < vocab; v++) total += prob[v];
  double r = preft_sampler_uniform(s) * total, acc = 0;
  int last = 0;
  for (int v = 0; v < vocab; v++) {
    if (prob[v] <= 0.0f) continue;
    acc += prob[v];
    last = v;
    if (r < acc) return v;
  }
  return last;
}
