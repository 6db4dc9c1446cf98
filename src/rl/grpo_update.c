/* grpo_update.c - the GRPO gradient of a batch of sampled completions
 * through the training forward/backward pass (see grpo.h). Samples go
 * through the pass `micro` at a time; each row of a completion token gets
 * the derivative of the loss with respect to its cross-entropy from
 * grpo_loss.c through preft_train_pass_rows. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rl/grpo.h"

void preft_grpo_updater_init(preft_grpo_updater *u, const preft_train_model *tm, preft_train_adapter *ad,
                             preft_pool *pool, int micro) {
  memset(u, 0, sizeof *u);
  u->tm = tm;
  u->ad = ad;
  u->pool = pool;
  u->micro = micro > 0 ? micro : 16;
}

void preft_grpo_updater_free(preft_grpo_updater *u) {
  if (u->acts_ready) preft_train_acts_free(&u->acts);
  preft_train_batch_free(&u->tb);
  free(u->row_sample);
  free(u->row_tok);
  memset(u, 0, sizeof *u);
}

/* Activations for micro samples of up to max_len tokens (regrown when a
 * batch holds a longer sample). */
static void ensure_acts(preft_grpo_updater *u, int rows, int max_len) {
  if (u->acts_ready && rows <= u->acts_rows && max_len <= u->acts_len) return;
  if (u->acts_ready) preft_train_acts_free(&u->acts);
  if (rows < u->acts_rows) rows = u->acts_rows;
  if (max_len < u->acts_len) max_len = u->acts_len;
  preft_train_acts_init(&u->acts, u->tm, u->ad, rows, max_len, preft_pool_size(u->pool), false);
  u->acts_ready = true;
  u->acts_rows = rows;
  u->acts_len = max_len;
}

/* Builds the pass batch of the counted samples idx[0..k): each as one
 * sequence of n − 1 rows, row t predicting ids[t+1], a target only at
 * completion tokens; adapt flags as served (adapter NULL: off). */
static void build_batch(preft_grpo_updater *u, const preft_grpo_batch *b, const int *idx, int k,
                        const preft_train_adapter *ad) {
  preft_train_batch *tb = &u->tb;
  preft_train_batch_clear(tb);
  int rows = 0, max_len = 0;
  for (int j = 0; j < k; j++) {
    rows += b->s[idx[j]].n - 1;
    if (b->s[idx[j]].n > max_len) max_len = b->s[idx[j]].n;
  }
  if (rows > u->cap_rows) {
    u->cap_rows = rows;
    u->row_sample = preft_xrealloc(u->row_sample, sizeof(int) * (size_t)rows);
    u->row_tok = preft_xrealloc(u->row_tok, sizeof(int) * (size_t)rows);
  }
  ensure_acts(u, rows, max_len);
  int *tg = preft_xmalloc(sizeof(int) * (size_t)max_len);
  uint8_t *fl = preft_xmalloc((size_t)max_len);
  for (int j = 0; j < k; j++) {
    const preft_grpo_sample *s = &b->s[idx[j]];
    int base = tb->n;
    for (int t = 0; t + 1 < s->n; t++) {
      bool completion = t + 1 >= s->prompt_len;
      tg[t] = completion ? s->ids[t + 1] : -1;
      fl[t] = ad ? (uint8_t)preft_train_row_flag(ad, ad->mode, t, s->prompt_len) : PREFT_ADAPT_OFF;
      u->row_sample[base + t] = idx[j];
      u->row_tok[base + t] = completion ? t + 1 - s->prompt_len : -1;
    }
    preft_train_batch_add(tb, s->ids, tg, fl, s->n - 1);
  }
  free(tg);
  free(fl);
}

/* The counted samples with at least one completion token, in order. */
static int counted(const preft_grpo_batch *b, int *idx) {
  int k = 0;
  for (int i = 0; i < b->n; i++)
    if (b->s[i].n > b->s[i].prompt_len && preft_grpo_sample_counts(b, i)) idx[k++] = i;
  return k;
}

/* ---- reference log-probabilities ------------------------------------------------ */

typedef struct {
  preft_grpo_updater *u;
  preft_grpo_batch *b;
} ref_ctx;

static void store_ref(void *ctx, const int *rows, const float *ce, float *dl, int m) {
  ref_ctx *c = ctx;
  for (int r = 0; r < m; r++) {
    preft_grpo_sample *s = &c->b->s[c->u->row_sample[rows[r]]];
    s->ref_logp[c->u->row_tok[rows[r]]] = -ce[r];
    dl[r] = 0.0f;
  }
}

int preft_grpo_ref_logprobs(preft_grpo_updater *u, preft_grpo_batch *b, preft_error *err) {
  int *idx = preft_xmalloc(sizeof(int) * (size_t)(b->n + 1));
  int k = counted(b, idx), rc = 0;
  for (int j = 0; j < k; j++) {
    preft_grpo_sample *s = &b->s[idx[j]];
    free(s->ref_logp);
    s->ref_logp = preft_xmalloc(sizeof(float) * (size_t)(s->n - s->prompt_len));
  }
  ref_ctx c = {.u = u, .b = b};
  for (int j = 0; j < k && rc == 0; j += u->micro) {
    int cnt = k - j < u->micro ? k - j : u->micro;
    build_batch(u, b, idx + j, cnt, NULL);
    double sum;
    rc = preft_train_pass_rows(u->tm, NULL, u->pool, &u->tb, &u->acts, store_ref, &c, false, &sum, err);
  }
  free(idx);
  return rc;
}

/* ---- the loss and its gradient --------------------------------------------------- */

typedef struct {
  const preft_grpo_updater *u;
  preft_grpo_batch *b;
  const preft_grpo_loss_opts *o;
  int n_counted;
  double loss, kl;
  int64_t tokens, clipped;
  bool have_ref, set_old;
  double logp_gap;
} loss_ctx;

static void grpo_rows(void *ctx, const int *rows, const float *ce, float *dl, int m) {
  loss_ctx *c = ctx;
  for (int r = 0; r < m; r++) {
    preft_grpo_sample *s = &c->b->s[c->u->row_sample[rows[r]]];
    int t = c->u->row_tok[rows[r]];
    double w = 1.0 / ((double)c->n_counted * (double)(s->n - s->prompt_len));
    double logp = -(double)ce[r], ref = s->ref_logp ? s->ref_logp[t] : 0.0, dlogp;
    bool clipped;
    if (c->set_old) {
      s->old_logp[t] = -ce[r];
      if (s->engine_logp) {
        double gap = fabs((double)s->engine_logp[t] + (double)ce[r]);
        if (gap > c->logp_gap) c->logp_gap = gap;
      }
    }
    double l = preft_grpo_token_loss(c->o, logp, s->old_logp[t], ref, s->adv, &dlogp, &clipped);
    c->loss += w * l;
    if (c->have_ref) c->kl += preft_grpo_k3(logp, ref);
    c->tokens++;
    c->clipped += clipped;
    dl[r] = (float)(-w * dlogp); /* ce = −logp */
  }
}

int preft_grpo_gradient(preft_grpo_updater *u, preft_grpo_batch *b, const preft_grpo_loss_opts *o,
                        bool set_old, preft_grpo_update_stats *st, preft_error *err) {
  memset(st, 0, sizeof *st);
  preft_param_set_zero_grad(&u->ad->ps);
  int *idx = preft_xmalloc(sizeof(int) * (size_t)(b->n + 1));
  int k = counted(b, idx), rc = 0;
  bool have_ref = k > 0;
  for (int j = 0; j < k; j++) have_ref = have_ref && b->s[idx[j]].ref_logp;
  if (o->kl_coef > 0 && k > 0 && !have_ref) {
    free(idx);
    return preft_fail(err, "grpo: the KL term needs the base model's log-probabilities");
  }
  for (int j = 0; j < k; j++) {
    preft_grpo_sample *s = &b->s[idx[j]];
    if (set_old && !s->old_logp) s->old_logp = preft_xmalloc(sizeof(float) * (size_t)(s->n - s->prompt_len));
    if (!s->old_logp) {
      int bad = idx[j];
      free(idx);
      return preft_fail(err, "grpo: sample %d has no rollout log-probabilities", bad);
    }
  }
  loss_ctx c = {.u = u,
                .b = b,
                .o = o,
                .n_counted = u->counted_total > 0 ? u->counted_total : k,
                .have_ref = have_ref,
                .set_old = set_old};
  for (int j = 0; j < k && rc == 0; j += u->micro) {
    int cnt = k - j < u->micro ? k - j : u->micro;
    build_batch(u, b, idx + j, cnt, u->ad);
    double sum;
    rc = preft_train_pass_rows(u->tm, u->ad, u->pool, &u->tb, &u->acts, grpo_rows, &c, true, &sum, err);
    st->rows += u->tb.n;
  }
  free(idx);
  st->loss = c.loss;
  st->kl = have_ref && c.tokens ? c.kl / (double)c.tokens : NAN;
  st->clip_frac = c.tokens ? (double)c.clipped / (double)c.tokens : 0.0;
  st->logp_gap = c.logp_gap;
  st->tokens = c.tokens;
  st->samples = k;
  return rc;
}
