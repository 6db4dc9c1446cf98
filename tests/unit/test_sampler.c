/* test_sampler.c - the sampler against a plain reference kept here: softmax
 * with temperature, a full sort of every candidate by probability
 * (descending; equal probabilities by id, ascending), then top-k, top-p,
 * min-p and one draw, as sampler.h orders them. Same seed, same tokens, over
 * many random logit rows (spread out, coarse with many exact ties, with
 * -inf entries) and settings; and the top-k ranking that logprobs use
 * against a k-times-V selection by logit (lowest id first on ties). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/sampler.h"
#include "testutil.h"

/* ---- the reference -------------------------------------------------------------- */

static const float *ref_prob; /* for the qsort comparator */

static int ref_by_prob_desc(const void *a, const void *b) {
  int i = *(const int *)a, j = *(const int *)b;
  if (ref_prob[i] != ref_prob[j]) return ref_prob[i] > ref_prob[j] ? -1 : 1;
  return i - j;
}

static int ref_argmax(const float *x, int n) {
  int best = 0;
  for (int i = 1; i < n; i++)
    if (x[i] > x[best]) best = i;
  return best;
}

/* One draw: rng is a sampler used only for its uniform stream. */
static int ref_sample(preft_sampler *rng, const preft_sampling *p, const float *logits, int vocab) {
  if (p->temperature <= 0.0f || p->top_k == 1) return ref_argmax(logits, vocab);
  float *prob = malloc(sizeof(float) * (size_t)vocab);
  int *idx = malloc(sizeof(int) * (size_t)vocab);
  float mx = logits[ref_argmax(logits, vocab)];
  double sum = 0;
  for (int i = 0; i < vocab; i++) {
    prob[i] = expf((logits[i] - mx) / p->temperature);
    sum += prob[i];
  }
  for (int i = 0; i < vocab; i++) prob[i] = (float)(prob[i] / sum);
  int n = 0;
  for (int i = 0; i < vocab; i++)
    if (prob[i] > 0.0f) idx[n++] = i;
  int tok = -1;
  if (n == 0) tok = ref_argmax(logits, vocab);
  if (tok < 0) {
    ref_prob = prob;
    qsort(idx, (size_t)n, sizeof(int), ref_by_prob_desc);
    if (p->top_k > 0 && p->top_k < n) n = p->top_k;
    if (p->top_p < 1.0f) {
      double cum = 0;
      int keep = 0;
      while (keep < n) {
        cum += prob[idx[keep++]];
        if (cum >= p->top_p) break;
      }
      n = keep;
    }
    if (p->min_p > 0.0f) {
      float floor_p = p->min_p * prob[idx[0]];
      int keep = 1;
      while (keep < n && prob[idx[keep]] >= floor_p) keep++;
      n = keep;
    }
    double total = 0;
    for (int i = 0; i < n; i++) total += prob[idx[i]];
    double r = preft_sampler_uniform(rng) * total, acc = 0;
    tok = idx[n - 1];
    for (int i = 0; i < n; i++) {
      acc += prob[idx[i]];
      if (r < acc) {
        tok = idx[i];
        break;
      }
    }
  }
  free(prob);
  free(idx);
  return tok;
}

/* ---- random rows ----------------------------------------------------------------- */

static float normal(void) {
  float u = 0.5f * (test_frand() + 1.0f), v = 0.5f * (test_frand() + 1.0f);
  return sqrtf(-2.0f * logf(u + 1e-12f)) * cosf(6.2831853f * v);
}

enum { SPREAD, COARSE, WITH_INF, FLAT, N_SHAPES };

/* logits[V] of one of the shapes: normal with a random spread; rounded to a
 * coarse grid (many equal values); with some -inf; all equal. */
static void random_row(float *logits, int vocab, int shape) {
  float spread = 0.3f + 8.0f * (0.5f * (test_frand() + 1.0f));
  for (int i = 0; i < vocab; i++) {
    float x = spread * normal();
    if (shape == COARSE) x = roundf(x);
    if (shape == WITH_INF && test_frand() < -0.6f) x = -INFINITY;
    if (shape == FLAT) x = 1.5f;
    logits[i] = x;
  }
  if (shape == WITH_INF) logits[vocab / 2] = 0.0f; /* at least one finite */
}

static const float temperatures[] = {0.0f, 0.25f, 0.7f, 1.0f, 1.6f};
static const int top_ks[] = {0, 1, 2, 5, 40, 100000};
static const float top_ps[] = {1.0f, 0.99999994f, 0.95f, 0.9f, 0.5f, 0.1f, 0.0f};
static const float min_ps[] = {0.0f, 0.05f, 0.3f, 1.5f};
#define COUNT(a) (int)(sizeof(a) / sizeof((a)[0]))

static void tokens_equal_the_full_sort_reference(void **state) {
  static const int vocabs[] = {1, 2, 3, 17, 256, 1500};
  long cases = 0;
  for (int round = 0; round < 2; round++)
    for (int vi = 0; vi < COUNT(vocabs); vi++) {
      int vocab = vocabs[vi];
      float *rows = malloc(sizeof(float) * (size_t)vocab * N_SHAPES);
      for (int shape = 0; shape < N_SHAPES; shape++) random_row(rows + (size_t)shape * vocab, vocab, shape);
      for (int ti = 0; ti < COUNT(temperatures); ti++)
        for (int ki = 0; ki < COUNT(top_ks); ki++)
          for (int pi = 0; pi < COUNT(top_ps); pi++)
            for (int mi = 0; mi < COUNT(min_ps); mi++) {
              preft_sampling sp = {.temperature = temperatures[ti],
                                   .top_k = top_ks[ki],
                                   .top_p = top_ps[pi],
                                   .min_p = min_ps[mi],
                                   .seed = (uint64_t)cases * 7919u + 1};
              preft_sampler s, rng;
              preft_sampler_init(&s, &sp);
              preft_sampler_init(&rng, &sp);
              /* one sampler over rows of every shape, twice: the RNG streams must stay in step */
              for (int draw = 0; draw < 2 * N_SHAPES; draw++) {
                int shape = (draw + (int)cases) % N_SHAPES;
                const float *logits = rows + (size_t)shape * vocab;
                int got = preft_sample(&s, logits, vocab), want = ref_sample(&rng, &sp, logits, vocab);
                if (got != want)
                  fail_msg(
                      "V=%d shape %d T=%g top_k=%d top_p=%.8g min_p=%g draw %d: token %d, "
                      "the reference says %d",
                      vocab, shape, sp.temperature, sp.top_k, sp.top_p, sp.min_p, draw, got, want);
                assert_memory_equal(s.rng, rng.rng, sizeof s.rng); /* as many draws from the RNG */
              }
              preft_sampler_free(&s);
              preft_sampler_free(&rng);
              cases++;
            }
      free(rows);
    }
  assert_true(cases > 5000);
}

/* The plain selection fill_logprobs used to do: k passes over V, each taking
 * the largest logit not yet taken (lowest id on ties). */
static int plain_top(const float *logits, int vocab, int k, int *ids) {
  int n = 0;
  for (; n < k && n < vocab; n++) {
    int best = -1;
    for (int v = 0; v < vocab; v++) {
      bool taken = false;
      for (int j = 0; j < n; j++) taken |= ids[j] == v;
      if (!taken && (best < 0 || logits[v] > logits[best])) best = v;
    }
    ids[n] = best;
  }
  return n;
}

static void best_k_equals_the_plain_selection(void **state) {
  static const int vocabs[] = {1, 2, 5, 64, 1000};
  for (int round = 0; round < 20; round++)
    for (int vi = 0; vi < COUNT(vocabs); vi++)
      for (int shape = 0; shape < N_SHAPES; shape++) {
        int vocab = vocabs[vi];
        float logits[1000];
        random_row(logits, vocab, shape);
        if (shape == COARSE && vocab > 3) logits[1] = -0.0f, logits[2] = 0.0f; /* -0 ties with +0 */
        for (int k = 0; k <= 20; k++) {
          uint64_t heap[20];
          int want[20], got[20];
          preft_best best = preft_best_init(heap, k);
          for (int v = 0; v < vocab; v++) preft_best_offer(&best, preft_rank_key(logits[v], v));
          int n = preft_best_sort(&best), nw = plain_top(logits, vocab, k, want);
          assert_int_equal(n, nw);
          for (int j = 0; j < n; j++) got[j] = preft_rank_id(heap[j]);
          for (int j = 0; j < n; j++)
            if (got[j] != want[j])
              fail_msg("V=%d shape %d k=%d: place %d holds %d, the plain selection says %d", vocab, shape, k,
                       j, got[j], want[j]);
        }
      }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(tokens_equal_the_full_sort_reference),
      cmocka_unit_test(best_k_equals_the_plain_selection),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
