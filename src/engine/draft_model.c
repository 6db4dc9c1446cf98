/* draft_model.c - a small decoder as a drafter (speculative.h): it shares
 * the target's vocabulary and drafts k tokens autoregressively, batched
 * over the sequences of a step, with its own paged KV cache (one slot per
 * sequence). Its cache follows the target's: positions [0, computed[slot])
 * hold keys and values of the sequence's tokens; a step first runs the
 * tokens it has not seen (the whole prompt the first time, then the 1-2
 * tokens the last verification emitted), then one row per drafted token
 * but the last; keep() rolls it back to what verification accepted.
 * Base weights only: the same draft serves every adapter. */
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "engine/speculative.h"
#include "model/batch.h"
#include "model/kv_cache.h"
#include "model/llama.h"
#include "tensor/ops.h"

enum { DRAFT_BLOCK = 16 };

typedef struct {
  preft_drafter base;
  const preft_model *m;
  preft_pool *pool;
  preft_kv_cache kv;
  preft_workspace ws;
  preft_batch_buf bb;
  preft_sample_scratch scratch;
  int *computed; /* [n_slots] positions whose keys and values are in kv */
  int *live;     /* [n] requests still drafting this step */
  float *logits; /* [cap_rows, vocab] */
  int cap_rows, cap_live;
} model_drafter;

static void grow(model_drafter *md, int n) {
  if (n <= md->cap_rows) return;
  md->cap_rows = n;
  md->logits = preft_xrealloc(md->logits, sizeof(float) * (size_t)n * (size_t)md->m->cfg.vocab);
  md->live = preft_xrealloc(md->live, sizeof(int) * (size_t)n);
}

/* Draws draft j of req from its logits row: the argmax when greedy, else a
 * draw from the sampler's distribution q, which is kept for verification. */
static int pick(model_drafter *md, preft_draft_req *r, int j, const float *row) {
  int vocab = md->m->cfg.vocab;
  if (!r->sampler || !r->q || preft_sampling_greedy(&r->sampler->params)) {
    preft_sampling greedy = {.temperature = 0};
    preft_sampler g = {.params = greedy};
    return preft_sample_with(&g, &md->scratch, row, vocab);
  }
  float *q = r->q + (size_t)j * (size_t)vocab;
  preft_sample_probs(&r->sampler->params, &md->scratch, row, vocab, q);
  return preft_sample_from(r->sampler, q, vocab);
}

static void md_release(preft_drafter *d, int slot) {
  model_drafter *md = (model_drafter *)d;
  preft_kv_release(&md->kv, slot);
  md->computed[slot] = 0;
}

static void md_keep(preft_drafter *d, int slot, int n_valid) {
  model_drafter *md = (model_drafter *)d;
  if (md->computed[slot] <= n_valid) return;
  md->computed[slot] = n_valid;
  preft_kv_truncate(&md->kv, slot, n_valid);
}

static int md_draft(preft_drafter *d, preft_draft_req *reqs, int n, preft_error *err) {
  model_drafter *md = (model_drafter *)d;
  int vocab = md->m->cfg.vocab, n_live = 0, rc = 0;
  preft_error kv_err;
  /* step 0: every token of each sequence the draft has not run yet; the
   * logits of the last give draft 1 */
  preft_batch_buf_clear(&md->bb);
  for (int i = 0; i < n; i++) {
    preft_draft_req *r = &reqs[i];
    r->n_out = 0;
    md_keep(d, r->slot, r->n_tokens - 1);
    int need = r->n_tokens + r->k - 1; /* positions run once the k-th draft is drawn */
    if (r->k <= 0 || need > md->kv.max_ctx || preft_kv_reserve(&md->kv, r->slot, need, &kv_err) != 0) {
      md_release(d, r->slot); /* no room: no draft this step, and the slot starts over */
      continue;
    }
    for (int pos = md->computed[r->slot]; pos < r->n_tokens; pos++)
      preft_batch_buf_add(&md->bb, r->tokens[pos], pos, r->slot, NULL, 0, pos == r->n_tokens - 1);
    grow(md, n_live + 1);
    md->live[n_live++] = i;
  }
  for (int j = 0; n_live > 0; j++) {
    preft_batch b = preft_batch_buf_view(&md->bb);
    if ((rc = preft_model_forward(md->m, md->pool, &md->kv, &b, &md->ws, md->logits, err)) != 0) break;
    int still = 0;
    preft_batch_buf_clear(&md->bb);
    for (int l = 0; l < n_live; l++) {
      preft_draft_req *r = &reqs[md->live[l]];
      int pos = r->n_tokens + j; /* where draft j+1 stands */
      md->computed[r->slot] = pos;
      r->out[j] = pick(md, r, j, md->logits + (size_t)l * (size_t)vocab);
      r->n_out = j + 1;
      if (r->n_out == r->k) continue;
      preft_batch_buf_add(&md->bb, r->out[j], pos, r->slot, NULL, 0, true);
      md->live[still++] = md->live[l];
    }
    n_live = still;
  }
  if (rc != 0) /* the caches of this step's sequences are in doubt: start them over */
    for (int i = 0; i < n; i++) {
      md_release(d, reqs[i].slot);
      reqs[i].n_out = 0;
    }
  return rc;
}

static void md_destroy(preft_drafter *d) {
  model_drafter *md = (model_drafter *)d;
  preft_kv_free(&md->kv);
  preft_workspace_free(&md->ws);
  preft_batch_buf_free(&md->bb);
  preft_sample_scratch_free(&md->scratch);
  free(md->computed);
  free(md->live);
  free(md->logits);
  free(md);
}

static const preft_drafter_ops model_ops = {md_draft, md_keep, md_release, md_destroy};

int preft_drafter_model(preft_drafter **out, const preft_model *draft, const preft_model *target,
                        preft_pool *pool, int n_slots, int max_ctx, int n_blocks, preft_error *err) {
  *out = NULL;
  const preft_model_config *c = &draft->cfg;
  if (c->vocab != target->cfg.vocab)
    return preft_fail(
        err,
        "the draft model's vocabulary has %d tokens, the model's %d: a draft model must use the "
        "model's tokenizer",
        c->vocab, target->cfg.vocab);
  if (max_ctx > c->max_pos) max_ctx = c->max_pos; /* longer sequences are not drafted */
  int per_seq = (max_ctx + DRAFT_BLOCK - 1) / DRAFT_BLOCK;
  if (n_blocks < per_seq) n_blocks = per_seq;
  model_drafter *md = preft_xcalloc(1, sizeof *md);
  if (preft_kv_init(&md->kv, c->n_layers, c->n_kv_heads * c->head_dim, DRAFT_BLOCK, n_blocks, n_slots,
                    max_ctx, err) != 0) {
    free(md);
    return preft_fail_prefix(err, "draft model KV cache");
  }
  md->base.ops = &model_ops;
  md->base.gives_q = true;
  md->m = draft;
  md->pool = pool;
  md->computed = preft_xcalloc((size_t)n_slots, sizeof(int));
  preft_batch_buf_init(&md->bb);
  *out = &md->base;
  return 0;
}
