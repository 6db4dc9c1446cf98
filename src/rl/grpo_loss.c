/* grpo_loss.c - group-normalised advantages and the clipped
 * policy-gradient loss of one token with its derivative (see grpo.h). */
#include <math.h>
#include <stdlib.h>

#include "rl/grpo.h"

/* A group's rewards count as all equal below this standard deviation. */
#define EQUAL_STD 1e-6

void preft_grpo_batch_free(preft_grpo_batch *b) {
  for (int i = 0; i < b->n; i++) {
    free(b->s[i].ids);
    free(b->s[i].engine_logp);
    free(b->s[i].old_logp);
    free(b->s[i].ref_logp);
    free(b->s[i].text);
  }
  free(b->s);
  for (int i = 0; i < b->n_prompts; i++) preft_rl_prompt_clear(&b->prompts[i]);
  free(b->prompts);
  b->s = NULL;
  b->prompts = NULL;
  b->n = b->n_prompts = 0;
}

int preft_grpo_advantages(preft_grpo_batch *b, double *mean, double *std) {
  int G = b->group, equal = 0;
  double sum = 0, sq = 0;
  for (int i = 0; i < b->n; i++) sum += b->s[i].reward;
  *mean = b->n ? sum / b->n : 0;
  for (int i = 0; i < b->n; i++) sq += (b->s[i].reward - *mean) * (b->s[i].reward - *mean);
  *std = b->n ? sqrt(sq / b->n) : 0;
  for (int g = 0; g * G < b->n; g++) {
    preft_grpo_sample *s = b->s + (size_t)g * G;
    double m = 0, v = 0;
    for (int k = 0; k < G; k++) m += s[k].reward;
    m /= G;
    for (int k = 0; k < G; k++) v += (s[k].reward - m) * (s[k].reward - m);
    double sd = G > 1 ? sqrt(v / (G - 1)) : 0;
    bool eq = sd < EQUAL_STD;
    equal += eq;
    for (int k = 0; k < G; k++) s[k].adv = eq ? 0.0 : (s[k].reward - m) / sd;
  }
  return equal;
}

bool preft_grpo_sample_counts(const preft_grpo_batch *b, int i) {
  const preft_grpo_sample *s = b->s + (size_t)(i / b->group) * b->group;
  for (int k = 1; k < b->group; k++)
    if (s[k].reward != s[0].reward) return true;
  return false;
}

double preft_grpo_k3(double logp, double ref_logp) {
  double d = ref_logp - logp;
  return exp(d) - d - 1.0;
}

double preft_grpo_token_loss(const preft_grpo_loss_opts *o, double logp, double old_logp, double ref_logp,
                             double adv, double *dlogp, bool *clipped) {
  double ratio = exp(logp - old_logp);
  double lo = 1.0 - o->clip_eps, hi = 1.0 + o->clip_eps;
  double clipped_ratio = ratio < lo ? lo : ratio > hi ? hi : ratio;
  double unclipped = ratio * adv, cut = clipped_ratio * adv;
  /* -min(ρA, clip(ρ)A): the gradient flows only through the unclipped term
   * when it is the smaller one */
  double loss;
  if (unclipped <= cut) {
    loss = -unclipped;
    *dlogp = -adv * ratio;
    *clipped = false;
  } else {
    loss = -cut;
    *dlogp = 0.0;
    *clipped = true;
  }
  if (o->kl_coef > 0) {
    double d = ref_logp - logp;
    loss += o->kl_coef * (exp(d) - d - 1.0);
    *dlogp += o->kl_coef * (1.0 - exp(d)); /* d/dlogp of e^(ref−logp) − (ref−logp) − 1 */
  }
  return loss;
}
