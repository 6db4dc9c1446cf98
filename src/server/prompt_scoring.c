/* prompt_scoring.c - log-probabilities of a prompt's own tokens, for
 * `echo` with `logprobs` and vLLM's `prompt_logprobs` on /v1/completions.
 *
 * The prompt runs through the model on the connection thread (one thread,
 * its own KV cache and workspace, EMB-style chunks of SCORE_CHUNK rows with
 * the logits of every row), beside the engine: the weights are read-only.
 * A request for an adapter loads its own copy of the adapter's files (the
 * engine's copy may be evicted at any time), and its rows get the flags
 * preft_adapter_row_flag gives prompt positions, as the engine's prefill
 * does; the numbers are those of the engine's forward pass on the same rows.
 * Position t >= 1 gets logprob(ids[t] | ids[<t]) from row t-1, the token's
 * 1-based rank among the vocabulary, and the k most likely ids. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "model/adapter.h"
#include "model/batch.h"
#include "model/kv_cache.h"
#include "model/llama.h"
#include "server/server_int.h"
#include "tensor/ops.h"

#define SCORE_CHUNK 64
#define SCORE_BLOCK 16

static void copy_path(void *ctx, const preft_adapter_info *a) { *(char **)ctx = preft_xstrdup(a->path); }

/* One logits row: position t's entries of out. */
static void score_row(const float *row, int vocab, int token, int t, srv_prompt_lp *out) {
  double lse = preft_logsumexp(row, vocab);
  float x = row[token];
  int rank = 1;
  for (int v = 0; v < vocab; v++) rank += row[v] > x;
  out->lp[t] = (float)(x - lse);
  out->rank[t] = rank;
  if (out->k <= 0) return;
  uint64_t top[PREFT_MAX_TOP_LOGPROBS];
  preft_best best = preft_best_init(top, out->k < vocab ? out->k : vocab);
  for (int v = 0; v < vocab; v++) preft_best_offer(&best, preft_rank_key(row[v], v));
  int n = preft_best_sort(&best);
  for (int j = 0; j < n; j++) {
    out->top_ids[t * out->k + j] = preft_rank_id(top[j]);
    out->top_lp[t * out->k + j] = (float)(row[preft_rank_id(top[j])] - lse);
  }
  out->n_top[t] = n;
}

int preft_srv_prompt_logprobs(preft_server *s, const char *adapter_name, int adapter_mode, const int *ids,
                              int n, int k, srv_prompt_lp *out, srv_api_error *e) {
  const preft_model *m = preft_engine_model(s->engine);
  const preft_model_config *c = &m->cfg;
  memset(out, 0, sizeof *out);
  out->n = n;
  out->k = k;
  out->lp = preft_xcalloc((size_t)n, sizeof *out->lp);
  out->rank = preft_xcalloc((size_t)n, sizeof *out->rank);
  out->n_top = preft_xcalloc((size_t)n, sizeof *out->n_top);
  out->top_ids = preft_xcalloc((size_t)n * (size_t)(k ? k : 1), sizeof *out->top_ids);
  out->top_lp = preft_xcalloc((size_t)n * (size_t)(k ? k : 1), sizeof *out->top_lp);
  if (n < 2) return 0;
  preft_error err;
  preft_adapter *a = NULL;
  if (adapter_name) {
    char *path = NULL;
    if (!preft_engine_adapter_info(s->engine, adapter_name, copy_path, &path) || !path)
      return preft_srv_fail(e, 404, "invalid_request_error", "model_not_found", "model",
                            "The model '%s' does not exist", adapter_name);
    int rc = preft_adapter_load(&a, path, adapter_name, c, &err);
    free(path);
    if (rc != 0)
      return preft_srv_fail(e, 400, "invalid_request_error", "adapter_unavailable", "model",
                            "The adapter '%s' is unavailable: %s", adapter_name, err.msg);
    preft_engine_convert_adapter(s->engine, a); /* what the engine's copy computes */
  }
  preft_adapter_mode mode = adapter_mode >= 0 ? (preft_adapter_mode)adapter_mode
                            : a               ? a->default_mode
                                              : PREFT_MODE_ALL;
  int rows = n - 1; /* the last position's logits predict nothing of the prompt */
  preft_kv_cache kv = {0};
  int rc = preft_kv_init(&kv, c->n_layers, c->n_kv_heads * c->head_dim, SCORE_BLOCK,
                         (rows + SCORE_BLOCK - 1) / SCORE_BLOCK, 1, rows, &err);
  if (rc == 0) rc = preft_kv_reserve(&kv, 0, rows, &err);
  preft_workspace ws = {0};
  preft_batch_buf bb;
  preft_batch_buf_init(&bb);
  float *logits = preft_xmalloc(sizeof *logits * (size_t)SCORE_CHUNK * (size_t)c->vocab);
  for (int start = 0; rc == 0 && start < rows; start += SCORE_CHUNK) {
    int cnt = rows - start < SCORE_CHUNK ? rows - start : SCORE_CHUNK;
    preft_batch_buf_clear(&bb);
    for (int pos = start; pos < start + cnt; pos++)
      preft_batch_buf_add(&bb, ids[pos], pos, 0, a, preft_adapter_row_flag(a, mode, pos, n), true);
    preft_batch b = preft_batch_buf_view(&bb);
    rc = preft_model_forward(m, NULL, &kv, &b, &ws, logits, &err);
    for (int i = 0; rc == 0 && i < cnt; i++)
      score_row(logits + (size_t)i * (size_t)c->vocab, c->vocab, ids[start + i + 1], start + i + 1, out);
  }
  free(logits);
  preft_batch_buf_free(&bb);
  preft_workspace_free(&ws);
  preft_kv_free(&kv);
  preft_adapter_free(a);
  if (rc != 0)
    return preft_srv_fail(e, 500, "server_error", NULL, NULL, "scoring the prompt failed: %s", err.msg);
  return 0;
}

void preft_srv_prompt_lp_free(srv_prompt_lp *p) {
  free(p->lp);
  free(p->rank);
  free(p->n_top);
  free(p->top_ids);
  free(p->top_lp);
  memset(p, 0, sizeof *p);
}
