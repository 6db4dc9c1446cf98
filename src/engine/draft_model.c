/* draft_model.c - a small decoder as a drafter (speculative.h): it shares
 * the target's vocabulary and drafts k tokens autoregressively, batched
 * over the sequences of a step, with its own paged KV cache (one slot per
 * sequence). Its cache follows the target's: positions [0, computed[slot])
 * hold keys and values of the sequence's tokens; a step first runs the
 * tokens it has not seen (the whole prompt the first time, or everything
 * after a preemption, then the 1-2 tokens the last verification emitted),
 * at most max_batch rows of them in all: a sequence whose catch-up does
 * not fit runs a chunk and drafts nothing until it has caught up; then one
 * row per drafted token but the last; keep() rolls it back to what
 * verification accepted. Base weights only: the same draft serves every
 * adapter. */
#include <limits.h>
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
  int max_batch;                          /* rows of a step's first forward at most (the catch-up's bound) */
  int *computed;                          /* [n_slots] positions whose keys and values are in kv */
  int *live;                              /* [n] requests still drafting this step */
  bool *waiting;                          /* [n] requests whose catch-up did not fit whole this step */
  int *chunk_slot, *chunk_upto, n_chunks; /* [n] catch-up chunks run: slot, computed after */
  float *logits;                          /* [cap_rows, vocab] */
  int cap_rows;
} model_drafter;

/* Room for a step of n requests (at most one logits row each). */
static void grow(model_drafter *md, int n) {
  if (n <= md->cap_rows) return;
  md->cap_rows = n;
  md->logits = preft_xrealloc(md->logits, sizeof(float) * (size_t)n * (size_t)md->m->cfg.vocab);
  md->live = preft_xrealloc(md->live, sizeof(int) * (size_t)n);
  md->waiting = preft_xrealloc(md->waiting, sizeof(bool) * (size_t)n);
  md->chunk_slot = preft_xrealloc(md->chunk_slot, sizeof(int) * (size_t)n);
  md->chunk_upto = preft_xrealloc(md->chunk_upto, sizeof(int) * (size_t)n);
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

/* Step 0 of md_draft for request i: queues the tokens of r the draft has
 * not run yet, at most *left rows of them. All of them (the last with
 * logits: they give draft 1) when they fit, and then r is live; else a
 * chunk of *left rows without logits, and r drafts nothing this step (its
 * draft catches up over the next steps). */
static void queue_unseen(model_drafter *md, preft_draft_req *r, int i, int *left, int *n_live) {
  preft_error kv_err;
  int from = md->computed[r->slot], unseen = r->n_tokens - from;
  bool whole = unseen <= *left;
  int upto = whole ? r->n_tokens : from + *left;
  int need = whole ? r->n_tokens + r->k - 1 : upto; /* positions run once the k-th draft is drawn */
  if (upto == from) return;
  if (preft_kv_reserve(&md->kv, r->slot, need, &kv_err) != 0) {
    md_release(&md->base, r->slot); /* no room: no draft this step, and the slot starts over */
    return;
  }
  for (int pos = from; pos < upto; pos++)
    preft_batch_buf_add(&md->bb, r->tokens[pos], pos, r->slot, NULL, 0, pos == r->n_tokens - 1);
  *left -= upto - from;
  if (whole) {
    md->live[(*n_live)++] = i;
  } else {
    md->chunk_slot[md->n_chunks] = r->slot;
    md->chunk_upto[md->n_chunks++] = upto;
  }
}

static int md_draft(preft_drafter *d, preft_draft_req *reqs, int n, preft_error *err) {
  model_drafter *md = (model_drafter *)d;
  int vocab = md->m->cfg.vocab, n_live = 0, rc = 0, left = md->max_batch;
  grow(md, n);
  /* step 0: the tokens of each sequence the draft has not run yet, at most
   * max_batch rows in all (the forward and its workspace stay that size):
   * first every sequence whose whole catch-up fits (in decode that is one
   * or two tokens), then chunks of the others' */
  preft_batch_buf_clear(&md->bb);
  md->n_chunks = 0;
  for (int i = 0; i < n; i++) {
    preft_draft_req *r = &reqs[i];
    r->n_out = 0;
    md_keep(d, r->slot, r->n_tokens - 1);
    md->waiting[i] = false;
    if (r->k <= 0 || r->n_tokens + r->k - 1 > md->kv.max_ctx) {
      md_release(d, r->slot); /* too long to draft */
    } else if (r->n_tokens - md->computed[r->slot] <= left) {
      queue_unseen(md, r, i, &left, &n_live);
    } else {
      md->waiting[i] = true;
    }
  }
  for (int i = 0; i < n && left > 0; i++)
    if (md->waiting[i]) queue_unseen(md, &reqs[i], i, &left, &n_live);
  for (int j = 0; md->bb.n > 0; j++) {
    preft_batch b = preft_batch_buf_view(&md->bb);
    if ((rc = preft_model_forward(md->m, md->pool, &md->kv, &b, &md->ws, md->logits, err)) != 0) break;
    if (j == 0) /* the chunks are in the cache now */
      for (int c = 0; c < md->n_chunks; c++) md->computed[md->chunk_slot[c]] = md->chunk_upto[c];
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
  free(md->waiting);
  free(md->chunk_slot);
  free(md->chunk_upto);
  free(md->logits);
  free(md);
}

static const preft_drafter_ops model_ops = {md_draft, md_keep, md_release, md_destroy};

int preft_draft_model_fits(const preft_model *draft, const preft_model *target, preft_error *err) {
  const preft_model_config *d = &draft->cfg, *t = &target->cfg;
  if (d->vocab != t->vocab)
    return preft_fail(err, "its vocabulary has %d tokens, the model's %d", d->vocab, t->vocab);
  if (d->bos_id != t->bos_id)
    return preft_fail(err, "its bos_token_id is %d, the model's %d (-1: none)", d->bos_id, t->bos_id);
  bool same_eos = d->n_eos == t->n_eos;
  for (int i = 0; same_eos && i < d->n_eos; i++) same_eos = d->eos_ids[i] == t->eos_ids[i];
  if (!same_eos)
    return preft_fail(err, "its eos_token_id is %d (of %d), the model's %d (of %d)",
                      d->n_eos ? d->eos_ids[0] : -1, d->n_eos, t->n_eos ? t->eos_ids[0] : -1, t->n_eos);
  return 0;
}

int preft_drafter_model(preft_drafter **out, const preft_model *draft, const preft_model *target,
                        preft_pool *pool, const preft_drafter_shape *shape, preft_error *err) {
  *out = NULL;
  const preft_model_config *c = &draft->cfg;
  if (preft_draft_model_fits(draft, target, err) != 0)
    return preft_fail_prefix(err, "the draft model does not use the model's tokenizer");
  int max_ctx = shape->max_ctx, n_blocks = shape->n_blocks;
  if (max_ctx > c->max_pos) max_ctx = c->max_pos; /* longer sequences are not drafted */
  int per_seq = (max_ctx + DRAFT_BLOCK - 1) / DRAFT_BLOCK;
  if (n_blocks < per_seq) n_blocks = per_seq;
  model_drafter *md = preft_xcalloc(1, sizeof *md);
  if (preft_kv_init(&md->kv, c->n_layers, c->n_kv_heads * c->head_dim, DRAFT_BLOCK, n_blocks, shape->n_slots,
                    max_ctx, err) != 0) {
    free(md);
    return preft_fail_prefix(err, "draft model KV cache");
  }
  md->base.ops = &model_ops;
  md->base.gives_q = true;
  md->m = draft;
  md->pool = pool;
  md->max_batch = shape->max_batch > 0 ? shape->max_batch : INT_MAX;
  md->computed = preft_xcalloc((size_t)shape->n_slots, sizeof(int));
  preft_batch_buf_init(&md->bb);
  *out = &md->base;
  return 0;
}
