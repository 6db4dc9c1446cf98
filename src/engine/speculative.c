/* speculative.c - prompt-lookup drafting, the accept/reject rule and the
 * drafter factory (see speculative.h). */
#include "engine/speculative.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

preft_speculation preft_spec_defaults(const preft_speculation *s) {
  preft_speculation d = *s;
  if (d.k <= 0) d.k = 4;
  if (d.ngram_max <= 0) d.ngram_max = 3;
  if (d.ngram_min <= 0) d.ngram_min = 2;
  if (d.ngram_min > d.ngram_max) d.ngram_min = d.ngram_max;
  return d;
}

int preft_ngram_draft(const int *tokens, int n_tokens, int ngram_max, int ngram_min, int k, int *draft) {
  if (k <= 0) return 0;
  for (int n = ngram_max; n >= ngram_min && n >= 1; n--) {
    if (n >= n_tokens) continue;
    const int *suffix = tokens + n_tokens - n;
    /* latest start i < n_tokens - n whose n tokens equal the suffix and
     * that something follows */
    for (int i = n_tokens - n - 1; i >= 0; i--) {
      if (tokens[i] != suffix[0] || memcmp(tokens + i, suffix, sizeof(int) * (size_t)n) != 0) continue;
      int from = i + n, got = n_tokens - from < k ? n_tokens - from : k;
      memcpy(draft, tokens + from, sizeof(int) * (size_t)got);
      return got;
    }
  }
  return 0;
}

int preft_spec_verify(preft_sampler *s, preft_sample_scratch *w, const float *logits, int vocab, int draft,
                      const float *q, bool *accepted) {
  if (!q || preft_sampling_greedy(&s->params)) { /* point mass (or greedy): draw, keep d iff equal */
    int tok = preft_sample_with(s, w, logits, vocab);
    *accepted = tok == draft;
    return tok;
  }
  if (vocab > w->dist_cap) {
    w->dist = preft_xrealloc(w->dist, sizeof *w->dist * (size_t)vocab);
    w->dist_cap = vocab;
  }
  float *p = w->dist;
  preft_sample_probs(&s->params, w, logits, vocab, p);
  /* keep with probability min(1, p/q): u < p/q, u in [0, 1) */
  if (preft_sampler_uniform(s) * q[draft] < p[draft]) {
    *accepted = true;
    return draft;
  }
  *accepted = false;
  /* rejected, so p(d) < q(d): the residual max(0, p - q) is 0 at d, and
   * not 0 elsewhere when p and q both sum to 1. When they differ only by
   * rounding it can be 0 everywhere (or a q that is not a distribution
   * makes it so): then the draw is from p itself, never a token outside
   * both */
  double residual = 0;
  for (int v = 0; v < vocab; v++) residual += p[v] > q[v] ? (double)p[v] - (double)q[v] : 0.0;
  if (!(residual > 0) || !isfinite(residual)) return preft_sample_from(s, p, vocab);
  for (int v = 0; v < vocab; v++) p[v] = p[v] > q[v] ? p[v] - q[v] : 0.0f;
  return preft_sample_from(s, p, vocab);
}

/* ---- prompt lookup as a drafter ------------------------------------------------- */

typedef struct {
  preft_drafter base;
  int ngram_max, ngram_min;
} ngram_drafter;

static int ngram_run(preft_drafter *d, preft_draft_req *reqs, int n, preft_error *err) {
  (void)err;
  const ngram_drafter *g = (const ngram_drafter *)d;
  for (int i = 0; i < n; i++)
    reqs[i].n_out = preft_ngram_draft(reqs[i].tokens, reqs[i].n_tokens, g->ngram_max, g->ngram_min, reqs[i].k,
                                      reqs[i].out);
  return 0;
}

static void ngram_keep(preft_drafter *d, int slot, int n_valid) { (void)d, (void)slot, (void)n_valid; }
static void ngram_release(preft_drafter *d, int slot) { (void)d, (void)slot; }
static void ngram_destroy(preft_drafter *d) { free(d); }

static const preft_drafter_ops ngram_ops = {ngram_run, ngram_keep, ngram_release, ngram_destroy};

preft_drafter *preft_drafter_ngram(int ngram_max, int ngram_min) {
  ngram_drafter *g = preft_xcalloc(1, sizeof *g);
  g->base.ops = &ngram_ops;
  g->ngram_max = ngram_max;
  g->ngram_min = ngram_min;
  return &g->base;
}

int preft_drafter_create(preft_drafter **out, const preft_speculation *s, const preft_model *target,
                         preft_pool *pool, const preft_drafter_shape *shape, preft_error *err) {
  *out = NULL;
  preft_speculation d = preft_spec_defaults(s);
  switch (s->kind) {
    case PREFT_SPEC_OFF:
      return 0;
    case PREFT_SPEC_NGRAM:
      *out = preft_drafter_ngram(d.ngram_max, d.ngram_min);
      return 0;
    case PREFT_SPEC_DRAFT:
      if (!s->draft_model) return preft_fail(err, "speculation by a draft model needs the draft model");
      return preft_drafter_model(out, s->draft_model, target, pool, shape, err);
  }
  return preft_fail(err, "unknown speculation kind %d", (int)s->kind);
}

void preft_drafter_free(preft_drafter *d) {
  if (d) d->ops->destroy(d);
}
