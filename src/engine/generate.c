/* generate.c - single-sequence prefill + decode (see generate.h). */
#include "engine/generate.h"

#include <math.h>
#include <stdlib.h>

#include "engine/speculative.h"
#include "model/batch.h"
#include "tensor/ops.h"

#define KV_BLOCK 16

static int make_cache(const preft_model *m, int n_pos, preft_kv_cache *kv, preft_error *err) {
  const preft_model_config *c = &m->cfg;
  if (n_pos > c->max_pos)
    return preft_fail(err, "%d positions exceed the model's context of %d (max_position_embeddings)", n_pos,
                      c->max_pos);
  int blocks = (n_pos + KV_BLOCK - 1) / KV_BLOCK;
  if (preft_kv_init(kv, c->n_layers, c->n_kv_heads * c->head_dim, KV_BLOCK, blocks, 1, n_pos, err) != 0)
    return -1;
  return preft_kv_reserve(kv, 0, n_pos, err);
}

/* The adapter a sequence runs and where its prompt ends. */
typedef struct {
  const preft_adapter *adapter;
  preft_adapter_mode mode;
  int prompt_len;
} seq_adapter;

/* Runs rows [start, start+n) of one sequence; logits of every row
 * (want_all) or only of the last row. */
static int run_chunk(const preft_model *m, preft_pool *pool, preft_kv_cache *kv, preft_workspace *ws,
                     const seq_adapter *sa, const int *ids, int start, int n, bool want_all, float *logits,
                     preft_error *err) {
  preft_batch_buf bb;
  preft_batch_buf_init(&bb);
  preft_batch_buf_reserve(&bb, n);
  for (int pos = start; pos < start + n; pos++)
    preft_batch_buf_add(&bb, ids[pos], pos, 0, sa->adapter,
                        preft_adapter_row_flag(sa->adapter, sa->mode, pos, sa->prompt_len),
                        want_all || pos == start + n - 1);
  preft_batch b = preft_batch_buf_view(&bb);
  int rc = preft_model_forward(m, pool, kv, &b, ws, logits, err);
  preft_batch_buf_free(&bb);
  return rc;
}

int preft_all_logits(const preft_model *m, preft_pool *pool, const int *ids, int n, float *out,
                     preft_error *err) {
  return preft_all_logits_adapted(m, pool, ids, n, NULL, PREFT_MODE_ALL, n, out, err);
}

int preft_all_logits_adapted(const preft_model *m, preft_pool *pool, const int *ids, int n,
                             const preft_adapter *adapter, preft_adapter_mode mode, int prompt_len,
                             float *out, preft_error *err) {
  seq_adapter sa = {.adapter = adapter, .mode = mode, .prompt_len = prompt_len};
  preft_kv_cache kv;
  if (make_cache(m, n, &kv, err) != 0) return -1;
  preft_workspace ws = {0};
  int rc = 0;
  for (int start = 0; start < n && rc == 0; start += 256) {
    int len = n - start < 256 ? n - start : 256;
    rc = run_chunk(m, pool, &kv, &ws, &sa, ids, start, len, true, out + (size_t)start * (size_t)m->cfg.vocab,
                   err);
  }
  preft_workspace_free(&ws);
  preft_kv_free(&kv);
  return rc;
}

int preft_generate(const preft_model *m, preft_pool *pool, const int *prompt, int n_prompt,
                   const preft_generate_opts *opts, preft_token_cb cb, void *cb_ctx, int *n_generated,
                   preft_error *err) {
  *n_generated = 0;
  if (n_prompt <= 0) return preft_fail(err, "generate: the prompt is empty");
  int total = n_prompt + opts->max_new_tokens;
  if (total > m->cfg.max_pos) total = m->cfg.max_pos;
  if (n_prompt >= total && opts->max_new_tokens > 0)
    return preft_fail(err, "prompt of %d tokens leaves no room in the model's context of %d", n_prompt,
                      m->cfg.max_pos);
  seq_adapter sa = {.adapter = opts->adapter, .mode = opts->adapter_mode, .prompt_len = n_prompt};
  preft_kv_cache kv;
  if (make_cache(m, total, &kv, err) != 0) return -1;
  int *ids = preft_xmalloc(sizeof(int) * (size_t)total);
  for (int i = 0; i < n_prompt; i++) ids[i] = prompt[i];
  preft_speculation spec = preft_spec_defaults(&opts->speculation);
  preft_drafter *drafter = NULL;
  int chunk = opts->prefill_chunk > 0 ? opts->prefill_chunk : 256, rc = 0, n = n_prompt;
  preft_drafter_shape shape = {.n_slots = 1, .max_ctx = total, .max_batch = chunk};
  if (preft_drafter_create(&drafter, &opts->speculation, m, pool, &shape, err) != 0) {
    free(ids);
    preft_kv_free(&kv);
    return -1;
  }
  int spec_k = drafter ? spec.k : 0;
  int vocab = m->cfg.vocab;
  float *logits = preft_xmalloc(sizeof(float) * (size_t)vocab * (size_t)(spec_k + 1));
  /* a draft model's draws and their distributions (speculative.h) */
  float *q =
      drafter && drafter->gives_q ? preft_xmalloc(sizeof(float) * (size_t)vocab * (size_t)spec_k) : NULL;
  preft_workspace ws = {0};
  preft_sampler sampler, draft_sampler;
  preft_sampler_init(&sampler, &opts->sampling);
  preft_sampler_init_draft(&draft_sampler, &opts->sampling);
  preft_spec_stats stats = {0};
  for (int start = 0; start < n_prompt && rc == 0; start += chunk) {
    int len = n_prompt - start < chunk ? n_prompt - start : chunk;
    rc = run_chunk(m, pool, &kv, &ws, &sa, ids, start, len, false, logits, err);
  }
  /* logits rows [0, rows) are ready: row r follows ids[n-1] and r drafted
   * tokens, which sit in ids[n .. n+rows-1) (speculative.h) */
  int rows = 1;
  bool done = n >= total || opts->max_new_tokens <= 0;
  while (rc == 0 && !done) {
    for (int r = 0; r < rows; r++) {
      const float *row = logits + (size_t)r * (size_t)vocab;
      bool kept = false;
      int tok = r < rows - 1 ? preft_spec_verify(&sampler, &sampler.scratch, row, vocab, ids[n],
                                                 q ? q + (size_t)r * (size_t)vocab : NULL, &kept)
                             : preft_sample(&sampler, row, vocab);
      ids[n++] = tok;
      (*n_generated)++;
      bool stop = false;
      for (int i = 0; i < opts->n_stop_ids; i++) stop |= tok == opts->stop_ids[i];
      if (cb && !cb(cb_ctx, tok)) stop = true;
      done = stop || n >= total || *n_generated >= opts->max_new_tokens;
      if (done || !kept) break;
      stats.accepted++;
    }
    if (done) break;
    /* the draft must leave room for the token after it, in the context and
     * in what is still to generate */
    int room = total - n - 1, left = opts->max_new_tokens - *n_generated - 1, k = spec_k;
    if (k > room) k = room;
    if (k > left) k = left;
    int nd = 0;
    if (drafter) {
      drafter->ops->keep(drafter, 0, n - 1); /* what verification accepted */
      preft_draft_req req = {
          .tokens = ids, .n_tokens = n, .slot = 0, .k = k, .sampler = &draft_sampler, .q = q, .out = ids + n};
      if (k > 0 && (rc = drafter->ops->draft(drafter, &req, 1, err)) != 0) break;
      nd = k > 0 ? req.n_out : 0;
    }
    if (nd > 0) {
      stats.steps++;
      stats.drafted += nd;
    }
    rows = nd + 1;
    rc = run_chunk(m, pool, &kv, &ws, &sa, ids, n - 1, rows, nd > 0, logits, err);
  }
  if (opts->spec_stats) *opts->spec_stats = stats;
  preft_sampler_free(&sampler);
  preft_sampler_free(&draft_sampler);
  preft_drafter_free(drafter);
  preft_workspace_free(&ws);
  free(q);
  free(logits);
  free(ids);
  preft_kv_free(&kv);
  return rc;
}

int preft_score_tokens(const preft_model *m, preft_pool *pool, const int *ids, int n, int score_from,
                       const preft_adapter *adapter, preft_adapter_mode mode, double *nll_sum, long *count,
                       preft_error *err) {
  if (score_from < 1) score_from = 1;
  seq_adapter sa = {.adapter = adapter, .mode = mode, .prompt_len = n};
  preft_kv_cache kv;
  if (make_cache(m, n, &kv, err) != 0) return -1;
  enum { CHUNK = 128 };
  int vocab = m->cfg.vocab;
  float *logits = preft_xmalloc(sizeof(float) * CHUNK * (size_t)vocab);
  preft_workspace ws = {0};
  int rc = 0;
  for (int start = 0; start < n - 1 && rc == 0; start += CHUNK) {
    int len = n - start < CHUNK ? n - start : CHUNK;
    rc = run_chunk(m, pool, &kv, &ws, &sa, ids, start, len, true, logits, err);
    for (int i = 0; i < len && rc == 0; i++) {
      int t = start + i + 1; /* the token row i predicts */
      if (t < score_from || t >= n) continue;
      if (ids[t] < 0 || ids[t] >= vocab) {
        rc =
            preft_fail(err, "token id %d at position %d is outside the vocabulary [0, %d)", ids[t], t, vocab);
        break;
      }
      const float *row = logits + (size_t)i * vocab;
      *nll_sum += preft_logsumexp(row, vocab) - row[ids[t]];
      (*count)++;
    }
  }
  free(logits);
  preft_workspace_free(&ws);
  preft_kv_free(&kv);
  return rc;
}
