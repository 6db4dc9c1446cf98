/* eval_loss.c - a dataset's loss under the serving forward pass (see
 * eval_loss.h). */
#include "train/eval_loss.h"

#include <stdlib.h>

#include "model/batch.h"
#include "model/kv_cache.h"
#include "tensor/ops.h"

enum { KV_BLOCK = 16 };

/* Adds example e's summed cross-entropy and count of counted predictions.
 * The cache's slot 0 holds room for e's rows; *logits grows to fit. */
static int score_example(const preft_model *m, preft_pool *pool, const preft_adapter *adapter,
                         preft_adapter_mode mode, const preft_example *e, preft_kv_cache *kv,
                         preft_workspace *ws, preft_batch_buf *bb, float **logits, int *logits_rows,
                         double *nll_sum, int64_t *count, preft_error *err) {
  int rows = e->n - 1, vocab = m->cfg.vocab;
  preft_batch_buf_clear(bb);
  for (int t = 0; t < rows; t++)
    preft_batch_buf_add(bb, e->ids[t], t, 0, adapter, preft_adapter_row_flag(adapter, mode, t, e->prompt_len),
                        e->loss[t + 1] != 0);
  if (bb->n_logits == 0) return 0;
  for (int i = 0; i < bb->n_logits; i++) {
    int target = e->ids[bb->logit_rows[i] + 1];
    if (target < 0 || target >= vocab)
      return preft_fail(err, "token id %d at position %d is outside the vocabulary [0, %d)", target,
                        bb->logit_rows[i] + 1, vocab);
  }
  if (bb->n_logits > *logits_rows) {
    *logits_rows = bb->n_logits;
    *logits = preft_xrealloc(*logits, sizeof(float) * (size_t)bb->n_logits * (size_t)vocab);
  }
  preft_batch b = preft_batch_buf_view(bb);
  int rc = preft_kv_reserve(kv, 0, rows, err);
  if (rc == 0) rc = preft_model_forward(m, pool, kv, &b, ws, *logits, err);
  preft_kv_release(kv, 0);
  for (int i = 0; rc == 0 && i < bb->n_logits; i++) {
    const float *row = *logits + (size_t)i * (size_t)vocab;
    *nll_sum += preft_logsumexp(row, vocab) - row[e->ids[bb->logit_rows[i] + 1]];
    (*count)++;
  }
  return rc;
}

int preft_eval_loss(const preft_model *m, preft_pool *pool, const preft_adapter *adapter,
                    preft_adapter_mode mode, const preft_dataset *ds, double *nll_sum, int64_t *count,
                    preft_error *err) {
  *nll_sum = 0;
  *count = 0;
  int max_rows = 0;
  for (int i = 0; i < ds->n; i++) max_rows = ds->ex[i].n - 1 > max_rows ? ds->ex[i].n - 1 : max_rows;
  if (max_rows == 0) return 0;
  const preft_model_config *c = &m->cfg;
  if (max_rows > c->max_pos)
    return preft_fail(err, "an example of %d tokens exceeds the model's context of %d", max_rows + 1,
                      c->max_pos);
  preft_kv_cache kv;
  if (preft_kv_init(&kv, c->n_layers, c->n_kv_heads * c->head_dim, KV_BLOCK,
                    (max_rows + KV_BLOCK - 1) / KV_BLOCK, 1, max_rows, err) != 0)
    return -1;
  preft_workspace ws = {0};
  preft_batch_buf bb;
  preft_batch_buf_init(&bb);
  float *logits = NULL;
  int logits_rows = 0, rc = 0;
  for (int i = 0; i < ds->n && rc == 0; i++)
    if (ds->ex[i].n >= 2)
      rc = score_example(m, pool, adapter, mode, &ds->ex[i], &kv, &ws, &bb, &logits, &logits_rows, nll_sum,
                         count, err);
  free(logits);
  preft_batch_buf_free(&bb);
  preft_workspace_free(&ws);
  preft_kv_free(&kv);
  return rc;
}
