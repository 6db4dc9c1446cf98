/* engine.c - the serving engine's threads, request lifecycle and step loop
 * (see engine.h for the contract). The adapters' side (the registry's API,
 * the loader thread, the memory budget shared with the KV cache) is
 * engine_adapters.c; the state both share, and its locking, is
 * engine_internal.h.
 */
#include "engine/engine_internal.h"

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "base/log.h"
#include "base/threadpool.h"
#include "base/timer.h"
#include "engine/adapter_registry.h"
#include "engine/adapter_store.h"
#include "engine/grammar.h"
#include "engine/penalties.h"
#include "engine/prefix_cache.h"
#include "engine/speculative.h"
#include "model/batch.h"
#include "tensor/ops.h"

typedef struct seq_t {
  uint64_t id;
  preft_request_cb cb;
  void *user;
  int *tokens; /* prompt then generated: [n_tokens] */
  int n_prompt, n_tokens, max_tokens, n_generated;
  int n_computed; /* positions whose keys and values are in the cache */
  int *stop_ids;
  int n_stop, logprobs;
  preft_sampler sampler;
  struct preft_gmatch *constraint; /* NULL: unconstrained */
  bool constraint_ended;           /* the grammar is complete: nothing may follow */
  preft_penalties penalties;
  preft_registered_adapter *ra; /* NULL: base model */
  int requested_mode;           /* -1: the adapter's default, resolved at admission */
  preft_adapter_mode mode;
  uint64_t salt; /* prefix-cache salt: adapter registration, mode, ... */
  int n_keyed;   /* leading prompt blocks already registered in the prefix cache */
  uint64_t last_key;
  int slot;      /* KV slot while running, else -1 */
  int step_take; /* rows scheduled this step (drafted rows included) */
  /* speculative decoding (speculative.h): drafted tokens scheduled this step
   * (they sit in tokens[n_tokens, n_tokens + n_draft)); this step's logits
   * rows [row0, row0 + n_draft + 1); rows drawn, drafts the draws kept */
  int n_draft, row0, n_out, n_accepted;
  preft_sampler draft_sampler; /* a draft model's draws: the request's settings, its own RNG */
  float *draft_q;              /* [spec_k, vocab]: their distributions (sampled requests, draft model) */
  float *step_q;               /* this step's: draft_q when the drafts are draws from it, else NULL
                                * (point masses: speculative.h); draft_all decides, sample_seq reads */
  char *error; /* the final event's message (owned: the adapter's error may change meanwhile) */
  double t_submit, t_first;
  bool cancelled, stop_requested;
  struct seq_t *next; /* waiting list */
} seq_t;

static const double hist_bounds[PREFT_HIST_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                       0.1,   0.25,   0.5,   1.0,  2.5,   10.0};

static void hist_add(long *hist, double v) {
  int i = 0;
  while (i < PREFT_HIST_BUCKETS && v > hist_bounds[i]) i++;
  hist[i]++;
}

/* ---- events and finishing ------------------------------------------------------ */

static pending_event *push_event(preft_engine *e, seq_t *s) {
  if (e->n_events == e->cap_events) {
    e->cap_events = e->cap_events ? e->cap_events * 2 : 64;
    e->events = preft_xrealloc(e->events, sizeof *e->events * (size_t)e->cap_events);
  }
  pending_event *p = &e->events[e->n_events++];
  memset(p, 0, sizeof *p);
  p->s = s;
  p->ev.request = s->id;
  p->ev.token = -1;
  p->ev.prompt_tokens = s->n_prompt;
  p->ev.completion_tokens = s->n_generated;
  p->ev.queue_s = s->t_first > 0 ? s->t_first - s->t_submit : preft_now() - s->t_submit;
  p->ev.ttft_s = s->t_first > 0 ? s->t_first - s->t_submit : 0;
  return p;
}

static void free_seq(seq_t *s) {
  preft_sampler_free(&s->sampler);
  preft_sampler_free(&s->draft_sampler);
  free(s->draft_q);
  preft_gmatch_free(s->constraint);
  preft_penalties_free(&s->penalties);
  free(s->tokens);
  free(s->stop_ids);
  free(s->error);
  free(s);
}

/* Registers the sequence's newly completed full prompt blocks in the prefix
 * cache, so later requests with the same prefix (and salt) can map them. */
static void register_prompt_blocks(preft_engine *e, seq_t *s) {
  int bs = e->kv.block_size;
  int full = s->n_computed < s->n_prompt ? s->n_computed / bs : s->n_prompt / bs;
  for (int b = s->n_keyed; b < full; b++) {
    uint64_t key = preft_prefix_key(s->last_key, s->salt, s->tokens + (size_t)b * bs, bs);
    preft_prefix_insert(&e->prefix, key, preft_kv_block_of(&e->kv, s->slot, b * bs));
    s->last_key = key;
    s->n_keyed = b + 1;
  }
}

/* Frees a running sequence's KV slot (keeping its prompt blocks cached). */
static void release_slot(preft_engine *e, seq_t *s) {
  if (s->slot < 0) return;
  register_prompt_blocks(e, s);
  preft_kv_release(&e->kv, s->slot);
  if (e->drafter) e->drafter->ops->release(e->drafter, s->slot);
  e->free_slots[e->n_free_slots++] = s->slot;
  s->slot = -1;
  s->n_computed = 0;
  s->n_keyed = 0;
  s->last_key = 0;
}

/* Takes s out of the waiting list; prev is the entry before it (NULL when s
 * is the head). */
static void unlink_waiting(preft_engine *e, seq_t *prev, seq_t *s) {
  if (prev)
    prev->next = s->next;
  else
    e->wait_head = s->next;
  if (e->wait_tail == s) e->wait_tail = prev;
  e->n_waiting--;
  s->next = NULL;
}

static void remove_running(preft_engine *e, seq_t *s) {
  for (int i = 0; i < e->n_running; i++) {
    if (e->running[i] != s) continue;
    memmove(e->running + i, e->running + i + 1, sizeof(seq_t *) * (size_t)(e->n_running - i - 1));
    e->n_running--;
    if (s->ra) preft_registry_deactivate(&e->reg, s->ra);
    return;
  }
}

/* Ends a request: releases everything it holds and queues its final event
 * (the caller fills token fields when the final event carries a token). */
static pending_event *finish(preft_engine *e, seq_t *s, preft_finish_reason why, const char *error) {
  release_slot(e, s);
  remove_running(e, s);
  if (s->ra) preft_registry_unref(&e->reg, s->ra);
  s->ra = NULL;
  if (why == PREFT_FINISH_CANCELLED)
    e->stats.requests_cancelled++;
  else if (why == PREFT_FINISH_ERROR)
    e->stats.requests_error++;
  else
    e->stats.requests_ok++;
  pending_event *p = push_event(e, s);
  p->ev.finish = why;
  if (error) {
    free(s->error);
    s->error = preft_xstrdup(error);
  }
  p->ev.error = s->error;
  p->final = true;
  return p;
}

/* Ends a waiting request whose adapter cannot be loaded (its last load failed). */
static void fail_unavailable(preft_engine *e, seq_t *s) {
  char msg[sizeof((preft_error *)0)->msg];
  snprintf(msg, sizeof msg, "%s", s->ra->error ? s->ra->error : "the adapter failed to load");
  pending_event *p = finish(e, s, PREFT_FINISH_ERROR, msg);
  p->ev.adapter_unavailable = true;
}

/* Calls the queued callbacks with the lock released; finishes requests whose
 * callback asked to stop; frees finished requests. */
static void deliver_events(preft_engine *e) {
  int n = e->n_events;
  pending_event *evs = e->events;
  e->events = NULL;
  e->n_events = e->cap_events = 0;
  e->delivering++;
  pthread_mutex_unlock(&e->mu);
  for (int i = 0; i < n; i++) {
    /* a step may bring several tokens of one request (speculative
     * decoding): none follows a callback's stop */
    if (evs[i].s->stop_requested && evs[i].ev.token >= 0) {
      if (!evs[i].final) continue;
      evs[i].ev.token = -1;
      evs[i].ev.finish = PREFT_FINISH_STOP;
    }
    bool go_on = evs[i].s->cb(evs[i].s->user, &evs[i].ev);
    if (!go_on && !evs[i].final) evs[i].s->stop_requested = true;
  }
  pthread_mutex_lock(&e->mu);
  e->delivering--;
  for (int i = 0; i < n; i++)
    if (evs[i].final) free_seq(evs[i].s);
  free(evs);
}

/* ---- scheduling ----------------------------------------------------------------- */

typedef enum { ADAPTER_READY, ADAPTER_WAIT, ADAPTER_NO_ROOM, ADAPTER_FAILED } adapter_state;

/* Whether s's adapter is loaded; if not, queues its load when there is room
 * under the caps (ADAPTER_NO_ROOM when evicting every idle adapter would
 * not make room; ADAPTER_FAILED when it failed to load, or can never fit). */
static adapter_state adapter_ready(preft_engine *e, seq_t *s) {
  preft_registered_adapter *ra = s->ra;
  if (!ra || ra->loaded) return ADAPTER_READY;
  if (ra->loading) return ADAPTER_WAIT;
  if (preft_registry_unavailable(ra, preft_now())) return ADAPTER_FAILED;
  preft_reserve_result rr = reserve_for_load(e, ra, false);
  if (rr == PREFT_RESERVE_TOO_BIG) return ADAPTER_FAILED;
  if (rr != PREFT_RESERVE_OK) return ADAPTER_NO_ROOM;
  queue_load(e, ra);
  return ADAPTER_WAIT;
}

/* How far back in the queue adapters are loaded ahead of their requests'
 * admission, and how many such loads may wait for the loader at once. */
enum { PREFETCH_DEPTH = 64, PREFETCH_LOADS = 4 };

/* Starts loading the adapters of requests further back in the queue while
 * the coming steps run, in queue order, with room that no request's
 * adapter occupies (a prefetch never evicts what an earlier request needs):
 * by the time such a request is admitted its adapter is usually loaded. */
static void prefetch_adapters(preft_engine *e) {
  int depth = 0;
  double now = preft_now();
  for (seq_t *s = e->wait_head; s && depth < PREFETCH_DEPTH && e->n_load_queue < PREFETCH_LOADS;
       s = s->next, depth++) {
    preft_registered_adapter *ra = s->ra;
    if (!ra || ra->loaded || ra->loading || s->cancelled || preft_registry_unavailable(ra, now)) continue;
    preft_reserve_result rr = reserve_for_load(e, ra, true);
    if (rr == PREFT_RESERVE_NO_ROOM) break; /* nothing free ahead of the queue: wait for admission */
    if (rr == PREFT_RESERVE_OK) {
      queue_load(e, ra);
      e->stats.adapter_prefetches++;
    }
  }
}

/* Maps the cached blocks of s's prompt prefix into its slot. At least one
 * prompt token is always left to compute (its logits start generation). */
static void map_cached_prefix(preft_engine *e, seq_t *s) {
  int bs = e->kv.block_size, max_blocks = (s->n_tokens - 1) / bs;
  if (max_blocks > s->n_prompt / bs) max_blocks = s->n_prompt / bs;
  uint64_t key = 0;
  int b = 0;
  for (; b < max_blocks; b++) {
    uint64_t k = preft_prefix_key(key, s->salt, s->tokens + (size_t)b * bs, bs);
    int got = preft_prefix_map(&e->prefix, k, s->slot); /* from memory, or restored from disk */
    if (!got) break;
    if (got == 2) e->stats.prefix_disk_hit_tokens += bs;
    key = k;
  }
  s->n_computed = b * bs;
  s->n_keyed = b;
  s->last_key = key;
  e->stats.prefix_hit_tokens += b * bs;
}

/* Preempts the most recently admitted running sequence: frees its blocks;
 * it goes back to the front of the queue and is recomputed from its prompt
 * and the tokens it already produced. */
static seq_t *preempt_newest(preft_engine *e) {
  seq_t *v = e->running[e->n_running - 1];
  release_slot(e, v);
  e->n_running--;
  v->step_take = v->n_draft = 0;
  if (v->ra) preft_registry_deactivate(&e->reg, v->ra);
  v->next = e->wait_head;
  e->wait_head = v;
  if (!e->wait_tail) e->wait_tail = v;
  e->n_waiting++;
  e->stats.preemptions++;
  PREFT_INFO("request %llu preempted (KV cache full); it will be recomputed", (unsigned long long)v->id);
  return v;
}

/* How many tokens s may have drafted this step (in decode: its last token
 * is the only one not computed): the engine's k, within room more rows of
 * the step and the request's token array, leaving room for the token drawn
 * after the last draft. Requests with a grammar or logits processors are
 * not drafted (their draws depend on per-token state that the draw of the
 * next row would have to see). */
static int draft_room(const preft_engine *e, const seq_t *s, int room) {
  if (e->spec_k == 0 || s->constraint || s->penalties.active || s->cancelled || s->stop_requested) return 0;
  int cap = s->n_prompt + s->max_tokens; /* the size of s->tokens (preft_engine_submit) */
  if (cap > e->cfg.max_context) cap = e->cfg.max_context;
  int k = e->spec_k;
  if (k > room) k = room;
  if (k > cap - s->n_tokens - 1) k = cap - s->n_tokens - 1;
  return k > 0 ? k : 0;
}

/* Pass 2 of schedule(): offers draft rows to the running sequences that
 * decode this step (one plain row each, from pass 1 or admission), oldest
 * first, out of the `left` rows of the step budget that they did not use
 * and out of the KV blocks already free: a draft never evicts an adapter
 * or a cached prefix block, and never preempts a sequence. Reserves the
 * offered rows' blocks; returns the rows offered. */
static int offer_draft_rows(preft_engine *e, int left) {
  int offered = 0, bs = e->kv.block_size;
  for (int i = 0; i < e->n_running && offered < left; i++) {
    seq_t *s = e->running[i];
    if (s->step_take != 1 || s->n_tokens - s->n_computed != 1) continue; /* not a decode row */
    int nd = draft_room(e, s, left - offered);
    /* positions [0, n_computed + 1 + nd) within the blocks mapped and those free */
    int most = preft_kv_capacity(&e->kv, s->slot) + e->kv.n_free * bs - s->n_computed - 1;
    if (nd > most) nd = most;
    preft_error err;
    if (nd <= 0 || preft_kv_reserve(&e->kv, s->slot, s->n_computed + 1 + nd, &err) != 0) continue;
    s->n_draft = nd;
    s->step_take += nd;
    offered += nd;
  }
  return offered;
}

/* Drafts for the running sequences that offer_draft_rows() gave room for
 * (n_draft rows each, reserved in the KV cache), all at once, into
 * tokens[n_tokens, ...); shrinks their rows to what was drafted and gives
 * the KV blocks of the rest back. Returns the rows given back. */
static int draft_all(preft_engine *e) {
  int n = 0, vocab = e->model->cfg.vocab;
  for (int i = 0; i < e->n_running; i++) {
    seq_t *s = e->running[i];
    s->step_q = NULL;
    if (s->n_draft == 0) continue;
    if (e->drafter->gives_q && !preft_sampling_greedy(&s->sampler.params)) {
      if (!s->draft_q) s->draft_q = preft_xmalloc(sizeof(float) * (size_t)e->spec_k * (size_t)vocab);
      s->step_q = s->draft_q;
    }
    e->dreqs[n] = (preft_draft_req){.tokens = s->tokens,
                                    .n_tokens = s->n_tokens,
                                    .slot = s->slot,
                                    .k = s->n_draft,
                                    .sampler = &s->draft_sampler,
                                    .q = s->step_q,
                                    .out = s->tokens + s->n_tokens};
    e->dseqs[n++] = s;
  }
  if (n == 0) return 0;
  preft_error err;
  if (e->drafter->ops->draft(e->drafter, e->dreqs, n, &err) != 0) {
    PREFT_WARN("drafting failed (the step runs without drafts): %s", err.msg);
    for (int i = 0; i < n; i++) e->dreqs[i].n_out = 0;
  }
  int given_back = 0;
  for (int i = 0; i < n; i++) {
    seq_t *s = e->dseqs[i];
    int unused = s->n_draft - e->dreqs[i].n_out;
    s->n_draft -= unused;
    s->step_take -= unused;
    given_back += unused;
    if (unused > 0) preft_kv_truncate(&e->kv, s->slot, s->n_computed + s->step_take);
  }
  return given_back;
}

/* Chooses this step's rows. Returns the number of rows. */
static int schedule(preft_engine *e) {
  int budget = e->cfg.max_step_tokens, rows = 0;
  preft_error err;
  lend_adapter_blocks(e); /* blocks of adapters unloaded or loads ended since the last step come back */
  /* pass 1: running sequences first, oldest first: decode rows and prefill
   * chunks, exactly as without speculation */
  for (int i = 0; i < e->n_running && rows < budget; i++) {
    seq_t *s = e->running[i];
    int take = s->n_tokens - s->n_computed;
    if (take > budget - rows) take = budget - rows;
    s->step_take = s->n_draft = 0;
    s->step_q = NULL;
    while (preft_kv_reserve(&e->kv, s->slot, s->n_computed + take, &err) != 0) {
      if (evict_adapter_for_kv(e, NULL)) continue; /* idle adapters give way first */
      if (e->running[e->n_running - 1] != s) {
        preempt_newest(e); /* someone newer gives way */
        continue;
      }
      if (e->n_running == 1) {
        finish(e, s, PREFT_FINISH_LENGTH, NULL); /* alone and still no room to grow */
        i--;
      } else {
        preempt_newest(e); /* s itself is the newest */
      }
      take = 0;
      break;
    }
    if (take > 0) {
      s->step_take = take;
      rows += take;
    }
  }
  /* then admit waiting requests, in order, while slots, blocks and budget
   * last. Once a request waits for room under the adapter cap, later
   * requests with an adapter wait too (admitting them would keep their
   * adapters busy and could starve it); base-model requests still run. */
  seq_t *prev = NULL, *s = e->wait_head;
  bool cap_blocked = false;
  while (s && rows < budget && e->n_free_slots > 0 && !e->stop) {
    seq_t *next = s->next;
    adapter_state st = s->cancelled           ? ADAPTER_FAILED
                       : s->ra && cap_blocked ? ADAPTER_NO_ROOM
                                              : adapter_ready(e, s);
    if (st != ADAPTER_READY) {
      if (st == ADAPTER_FAILED) {
        unlink_waiting(e, prev, s);
        if (s->cancelled)
          finish(e, s, PREFT_FINISH_CANCELLED, NULL);
        else
          fail_unavailable(e, s);
      } else {
        cap_blocked |= st == ADAPTER_NO_ROOM;
        prev = s;
      }
      s = next;
      continue;
    }
    if (s->ra) { /* the adapter is loaded now: its default mode and cache salt are known */
      const preft_adapter *a = s->ra->loaded;
      if (s->requested_mode < 0) s->mode = a->default_mode;
      /* ReFT on the last prompt positions makes every block depend on the prompt length */
      bool by_len = a->kind != PREFT_ADAPTER_LORA && a->reft_last > 0;
      s->salt = preft_prefix_salt(a, s->ra->generation, (int)s->mode, by_len ? s->n_prompt : -1);
    }
    s->slot = e->free_slots[--e->n_free_slots];
    map_cached_prefix(e, s);
    int take = s->n_tokens - s->n_computed;
    if (take > budget - rows) take = budget - rows;
    bool fits;
    while (!(fits = preft_kv_reserve(&e->kv, s->slot, s->n_computed + take, &err) == 0) &&
           evict_adapter_for_kv(e, s->ra)) {
    }
    if (!fits) {
      release_slot(e, s); /* not enough memory now: wait for running ones */
      break;
    }
    unlink_waiting(e, prev, s);
    s->step_take = take;
    s->n_draft = 0;
    e->running[e->n_running++] = s;
    if (s->ra) preft_registry_activate(&e->reg, s->ra);
    rows += take;
    s = next;
  }
  /* pass 2: draft rows out of what the running and admitted sequences
   * left of the budget and of the free KV blocks; those not drafted are
   * given back */
  if (e->drafter && rows < budget) {
    rows += offer_draft_rows(e, budget - rows);
    rows -= draft_all(e);
  }
  if (e->n_waiting > 0 && !e->stop && !e->cfg.no_adapter_prefetch) prefetch_adapters(e);
  return rows;
}

static void grow_step_buffers(preft_engine *e, int rows) {
  if (rows <= e->cap_rows) return;
  e->cap_rows = rows;
  size_t n = (size_t)rows;
  preft_batch_buf_reserve(&e->batch, rows);
  e->b_logit_seq = preft_xrealloc(e->b_logit_seq, sizeof(seq_t *) * n);
  /* at most one logits row per running sequence, and one per drafted token */
  size_t most = (size_t)e->cfg.max_running * (size_t)(1 + e->spec_k);
  size_t logit_rows = n < most ? n : most;
  e->logits = preft_xrealloc(e->logits, sizeof(float) * logit_rows * (size_t)e->model->cfg.vocab);
  e->sampled = preft_xrealloc(e->sampled, sizeof *e->sampled * logit_rows);
  e->cap_logit_rows = (int)logit_rows;
}

/* Lays the scheduled rows out in e->batch; returns the number of
 * sequences with logits rows: those whose scheduled rows reach their last
 * token, whose row (and every drafted row after it) gets logits. */
static int build_batch(preft_engine *e, int rows) {
  grow_step_buffers(e, rows);
  preft_batch_buf_clear(&e->batch);
  int n_seqs = 0;
  for (int i = 0; i < e->n_running; i++) {
    seq_t *s = e->running[i];
    const preft_adapter *a = s->ra ? s->ra->loaded : NULL;
    for (int pos = s->n_computed; pos < s->n_computed + s->step_take; pos++) {
      bool logits = pos >= s->n_tokens - 1;
      if (pos == s->n_tokens - 1) {
        e->b_logit_seq[n_seqs++] = s;
        s->row0 = e->batch.n_logits;
      }
      preft_batch_buf_add(&e->batch, s->tokens[pos], pos, s->slot, a,
                          preft_adapter_row_flag(a, s->mode, pos, s->n_prompt), logits);
    }
  }
  PREFT_ASSERT(e->batch.n == rows && e->batch.n_logits <= e->cap_logit_rows);
  return n_seqs;
}

/* log-probability of token under logits, and the top-n alternatives. */
static void fill_logprobs(const float *logits, int vocab, int token, int top_n, preft_token_event *ev) {
  double lse = preft_logsumexp(logits, vocab);
  ev->logprob = (float)(logits[token] - lse);
  /* the top_n highest logits, lowest id first on ties: O(V log top_n) */
  uint64_t top[PREFT_MAX_TOP_LOGPROBS];
  preft_best best = preft_best_init(top, top_n < vocab ? top_n : vocab);
  for (int v = 0; v < vocab; v++) preft_best_offer(&best, preft_rank_key(logits[v], v));
  ev->n_top = preft_best_sort(&best);
  for (int j = 0; j < ev->n_top; j++) {
    ev->top_ids[j] = preft_rank_id(top[j]);
    ev->top_logprobs[j] = (float)(logits[ev->top_ids[j]] - lse);
  }
}

/* Samples logits row j with its sequence's own sampler (in the scratch of
 * the pool thread) and fills the row's logprobs when asked, into
 * e->sampled[j]. Runs with the lock released: a row touches only its
 * sequence's sampler (no other thread uses it, and sequences are freed only
 * by the engine thread), its logits row, its thread's scratch and its own
 * output, so rows run in parallel and the tokens do not depend on the
 * number of threads. */
static bool sample_row(preft_engine *e, seq_t *s, int j, int thread, int draft, const float *q) {
  int vocab = e->model->cfg.vocab;
  float *row = e->logits + (size_t)j * (size_t)vocab;
  preft_token_event *out = &e->sampled[j];
  bool kept = false;
  memset(out, 0, sizeof *out); /* the alternatives past n_top read as zeros */
  /* penalties change the row in place for the draw; logprobs see it raw */
  preft_penalties_apply(&s->penalties, row, vocab, s->n_generated, s->stop_ids, s->n_stop);
  if (s->constraint) { /* the grammar's allowed tokens only; -1: it has ended */
    out->token = preft_gmatch_sample(s->constraint, &s->sampler, &e->scratch[thread], row, vocab);
    if (out->token >= 0) {
      preft_gmatch_accept_token(s->constraint, out->token);
      s->constraint_ended = preft_gmatch_must_end(s->constraint);
    }
  } else if (draft >= 0) {
    out->token = preft_spec_verify(&s->sampler, &e->scratch[thread], row, vocab, draft, q, &kept);
  } else {
    out->token = preft_sample_with(&s->sampler, &e->scratch[thread], row, vocab);
  }
  preft_penalties_restore(&s->penalties, row);
  if (s->logprobs > 0 && out->token >= 0) fill_logprobs(row, vocab, out->token, s->logprobs, out);
  return kept;
}

/* Pool task: draws the tokens of the j-th sequence with logits. Without a
 * draft that is one row. With one (speculative.h) row r is drawn only when
 * every earlier draw equalled its drafted token, and a draw that differs
 * ends the step for the sequence: one draw per kept token, exactly as
 * without the draft. */
static void sample_seq(void *ctx, int j, int thread) {
  preft_engine *e = ctx;
  seq_t *s = e->b_logit_seq[j];
  s->n_out = s->n_accepted = 0;
  int vocab = e->model->cfg.vocab;
  for (int r = 0; r <= s->n_draft; r++) {
    int draft = r < s->n_draft ? s->tokens[s->n_tokens + r] : -1;
    const float *q = draft >= 0 && s->step_q ? s->step_q + (size_t)r * (size_t)vocab : NULL;
    bool kept = sample_row(e, s, s->row0 + r, thread, draft, q);
    s->n_out++;
    if (!kept) break;
    s->n_accepted++;
  }
}

/* The statistics slot of a sequence's tokens: 1 for a prefill-only adapter,
 * 0 for the base model and all-token adapters. */
static int stats_mode_index(const seq_t *s) { return s->ra && s->mode == PREFT_MODE_PREFILL ? 1 : 0; }

/* Appends the r-th token drawn for s this step and queues its event;
 * returns false when the request ended with it (finished, or a grammar
 * that ended with no token). */
static bool take_token(preft_engine *e, seq_t *s, int r, double now) {
  const preft_token_event *got = &e->sampled[s->row0 + r];
  int tok = got->token;
  if (tok < 0) { /* a grammar that has ended and no stop id to end with */
    finish(e, s, PREFT_FINISH_STOP, NULL);
    return false;
  }
  if (s->t_first == 0) {
    s->t_first = now;
    e->stats.ttft_seconds_sum += now - s->t_submit;
    e->stats.ttft_count++;
    hist_add(e->stats.ttft_hist, now - s->t_submit);
  }
  s->tokens[s->n_tokens++] = tok;
  s->n_generated++;
  preft_penalties_add(&s->penalties, tok);
  e->stats.generated_tokens[stats_mode_index(s)]++;
  bool stop = false;
  for (int k = 0; k < s->n_stop; k++) stop |= tok == s->stop_ids[k];
  preft_finish_reason why = stop || s->constraint_ended ? PREFT_FINISH_STOP : PREFT_FINISH_NONE;
  if (!stop && (s->n_generated >= s->max_tokens || s->n_tokens >= e->cfg.max_context))
    why = PREFT_FINISH_LENGTH;
  pending_event *p = why != PREFT_FINISH_NONE ? finish(e, s, why, NULL) : push_event(e, s);
  p->ev.token = tok;
  p->ev.completion_tokens = s->n_generated;
  p->ev.finish = why;
  if (s->logprobs > 0) {
    p->ev.logprob = got->logprob;
    p->ev.n_top = got->n_top;
    memcpy(p->ev.top_ids, got->top_ids, sizeof got->top_ids);
    memcpy(p->ev.top_logprobs, got->top_logprobs, sizeof got->top_logprobs);
  }
  return why == PREFT_FINISH_NONE;
}

/* After the forward and sample_seq: advance every scheduled sequence, append
 * the drawn tokens, queue events, finish what is done; a sequence that ran
 * a draft keeps the keys and values of the drafts its draws accepted and
 * gives back the blocks past them. */
static void complete_step(preft_engine *e, int n_seqs) {
  for (int i = 0; i < e->n_running; i++) {
    seq_t *s = e->running[i];
    if (s->step_take == 0) continue;
    int rows = s->step_take - s->n_draft; /* drafted rows count once accepted (below) */
    bool prefill = s->n_computed < s->n_prompt;
    if (prefill) e->stats.prompt_tokens[stats_mode_index(s)] += rows;
    s->n_computed += rows;
    s->step_take = 0;
    register_prompt_blocks(e, s);
  }
  double now = preft_now();
  for (int j = 0; j < n_seqs; j++) {
    seq_t *s = e->b_logit_seq[j];
    int n_draft = s->n_draft;
    s->n_draft = 0;
    if (s->cancelled) continue; /* finished below */
    bool running = true;
    for (int r = 0; r < s->n_out && running; r++) running = take_token(e, s, r, now);
    if (n_draft == 0) continue;
    e->stats.spec.steps++;
    e->stats.spec.drafted += n_draft;
    e->stats.spec.accepted += s->n_accepted;
    if (!running) continue;
    /* the accepted drafts are computed; the last token drawn is not */
    s->n_computed = s->n_tokens - 1;
    preft_kv_truncate(&e->kv, s->slot, s->n_tokens);
    e->drafter->ops->keep(e->drafter, s->slot, s->n_tokens - 1);
  }
}

/* Requests cancelled or told to stop by their callback end now. */
static void reap(preft_engine *e) {
  for (int i = e->n_running - 1; i >= 0; i--) {
    seq_t *s = e->running[i];
    if (s->cancelled)
      finish(e, s, PREFT_FINISH_CANCELLED, NULL);
    else if (s->stop_requested)
      finish(e, s, PREFT_FINISH_STOP, NULL);
  }
  seq_t *prev = NULL;
  for (seq_t *s = e->wait_head, *next; s; s = next) {
    next = s->next;
    if (!s->cancelled) {
      prev = s;
      continue;
    }
    unlink_waiting(e, prev, s);
    finish(e, s, PREFT_FINISH_CANCELLED, NULL);
  }
}

/* Finishes cancelled and stopped requests and delivers every queued event,
 * until delivering asks for no further stop. */
static void settle(preft_engine *e) {
  for (;;) {
    reap(e);
    if (!e->n_events) return;
    deliver_events(e);
  }
}

static void *engine_main(void *arg) {
  preft_engine *e = arg;
  pthread_mutex_lock(&e->mu);
  for (;;) {
    settle(e);
    if (e->stop) break;
    int rows = (e->n_running || e->n_waiting) ? schedule(e) : 0;
    if (e->n_events) deliver_events(e);
    if (rows == 0) {
      if (e->n_running == 0 && e->n_waiting == 0) pthread_cond_broadcast(&e->idle);
      if (!e->stop) pthread_cond_wait(&e->wake, &e->mu);
      continue;
    }
    int nl = build_batch(e, rows);
    preft_batch b = preft_batch_buf_view(&e->batch);
    pthread_mutex_unlock(&e->mu);
    preft_error err;
    double t0 = preft_now();
    int rc = preft_model_forward(e->model, e->pool, &e->kv, &b, &e->ws, e->logits, &err);
    double dt = preft_now() - t0;
    if (rc == 0) preft_pool_run(e->pool, nl, sample_seq, e); /* still unlocked */
    pthread_mutex_lock(&e->mu);
    e->stats.steps++;
    e->stats.step_seconds_sum += dt;
    hist_add(e->stats.step_hist, dt);
    if (rc != 0) {
      /* a forward failure is a bug or a bad token id that slipped through:
       * fail every scheduled request rather than loop */
      PREFT_WARN("forward failed: %s", err.msg);
      for (int i = e->n_running - 1; i >= 0; i--)
        if (e->running[i]->step_take > 0)
          finish(e, e->running[i], PREFT_FINISH_ERROR, "internal error in forward");
      continue;
    }
    complete_step(e, nl);
  }
  pthread_mutex_unlock(&e->mu);
  return NULL;
}

void preft_engine_convert_adapter(preft_engine *e, preft_adapter *a) {
  if (e->lora_store >= 0) preft_lora_store_as(a, &e->model->cfg, (preft_dtype)e->lora_store);
}

/* See engine_internal.h. */
int timed_load(preft_engine *e, preft_adapter **out, const char *path, const char *name, preft_error *err) {
  pthread_mutex_unlock(&e->mu);
  double t0 = preft_now(), c0 = preft_thread_cpu_now();
  int rc = preft_adapter_load(out, path, name, &e->model->cfg, err);
  if (rc == 0) preft_engine_convert_adapter(e, *out); /* e->lora_store is set once, at create */
  double dt = preft_now() - t0, dc = preft_thread_cpu_now() - c0;
  pthread_mutex_lock(&e->mu);
  hist_add(e->stats.adapter_load_hist, dt);
  e->stats.adapter_load_seconds_sum += dt;
  e->stats.adapter_load_cpu_seconds_sum += dc;
  e->stats.adapter_load_count++;
  return rc;
}

/* ---- public API ------------------------------------------------------------------- */

int preft_engine_create(preft_engine **out, preft_model *model, const preft_engine_config *cfg,
                        preft_error *err) {
  preft_engine *e = preft_xcalloc(1, sizeof *e);
  e->model = model;
  e->cfg = *cfg;
  e->cfg.lora_dtype = NULL; /* the caller's string: not kept */
  e->lora_store = preft_lora_dtype_parse(cfg->lora_dtype);
  if (e->lora_store == -2) {
    free(e);
    return preft_fail(err, "lora_dtype must be auto, float16 or bfloat16, not '%s'", cfg->lora_dtype);
  }
  e->spec = preft_spec_defaults(&cfg->speculation);
  e->spec_k = cfg->speculation.kind == PREFT_SPEC_OFF ? 0 : e->spec.k;
  const preft_model_config *c = &model->cfg;
  if (e->cfg.kv_cache_mb == 0) e->cfg.kv_cache_mb = 1024;
  if (e->cfg.block_size <= 0) e->cfg.block_size = 16;
  if (e->cfg.max_running <= 0) e->cfg.max_running = 256;
  if (e->cfg.max_step_tokens <= 0) e->cfg.max_step_tokens = 512;
  if (e->cfg.max_queue <= 0) e->cfg.max_queue = 1024;
  if (e->cfg.max_loaded_adapters <= 0) e->cfg.max_loaded_adapters = 64;
  if (e->cfg.max_context <= 0 || e->cfg.max_context > c->max_pos) e->cfg.max_context = c->max_pos;
  if (e->cfg.max_step_tokens < e->cfg.max_running) e->cfg.max_step_tokens = e->cfg.max_running;
  size_t block_bytes = preft_kv_block_bytes(c->n_layers, c->n_kv_heads * c->head_dim, e->cfg.block_size);
  size_t n_blocks =
      e->cfg.kv_blocks > 0 ? (size_t)e->cfg.kv_blocks : (e->cfg.kv_cache_mb << 20) / block_bytes;
  if (n_blocks < 2) {
    free(e);
    return preft_fail(err, "--kv-cache-mb %zu holds fewer than 2 KV blocks of %zu KiB", cfg->kv_cache_mb,
                      block_bytes >> 10);
  }
  if (preft_kv_init(&e->kv, c->n_layers, c->n_kv_heads * c->head_dim, e->cfg.block_size, (int)n_blocks,
                    e->cfg.max_running, e->cfg.max_context, err) != 0) {
    free(e);
    return -1;
  }
  preft_prefix_init(&e->prefix, &e->kv);
  if (cfg->prefix_cache_dir && cfg->prefix_cache_dir[0]) {
    preft_prefix_disk *disk;
    uint64_t id = preft_prefix_model_id(model), bytes = cfg->prefix_cache_disk_bytes;
    if (preft_prefix_disk_open(&disk, cfg->prefix_cache_dir, bytes ? bytes : (uint64_t)10 << 30, id,
                               c->n_layers, c->n_kv_heads * c->head_dim, e->cfg.block_size, 0, err) != 0) {
      preft_prefix_free(&e->prefix);
      preft_kv_free(&e->kv);
      free(e);
      return -1;
    }
    preft_prefix_attach_disk(&e->prefix, disk, id);
  }
  e->cfg.prefix_cache_dir = NULL; /* the caller's string: not kept */
  /* adapters' bytes come out of the KV cache (lend_adapter_blocks), capped by
   * --adapter-cache-mb and at most the cache less one full context, so that
   * a request can always run next to the adapters in use */
  e->kv_block_bytes = block_bytes;
  size_t pool = n_blocks * block_bytes, ctx = (size_t)e->kv.max_blocks_per_seq * block_bytes;
  size_t adapters_max = pool > ctx ? pool - ctx : pool / 2, cap = e->cfg.adapter_cache_mb << 20;
  preft_registry_init(&e->reg, e->cfg.max_loaded_adapters, cap && cap < adapters_max ? cap : adapters_max);
  e->pool = preft_pool_create(cfg->threads);
  /* the draft model's cache: as many (16-position) blocks as the model's,
   * beside --kv-cache-mb (docs/SERVING.md); its catch-up runs at most a
   * step's rows */
  preft_drafter_shape shape = {.n_slots = e->cfg.max_running,
                               .max_ctx = e->cfg.max_context,
                               .n_blocks = (int)n_blocks,
                               .max_batch = e->cfg.max_step_tokens};
  if (preft_drafter_create(&e->drafter, &cfg->speculation, model, e->pool, &shape, err) != 0) {
    preft_pool_free(e->pool);
    preft_registry_free(&e->reg);
    preft_prefix_free(&e->prefix);
    preft_kv_free(&e->kv);
    free(e);
    return -1;
  }
  e->dreqs = preft_xcalloc((size_t)e->cfg.max_running, sizeof *e->dreqs);
  e->dseqs = preft_xcalloc((size_t)e->cfg.max_running, sizeof *e->dseqs);
  e->running = preft_xcalloc((size_t)e->cfg.max_running, sizeof(seq_t *));
  e->free_slots = preft_xmalloc(sizeof(int) * (size_t)e->cfg.max_running);
  e->scratch = preft_xcalloc((size_t)preft_pool_size(e->pool), sizeof *e->scratch);
  for (int i = 0; i < e->cfg.max_running; i++) e->free_slots[i] = e->cfg.max_running - 1 - i;
  e->n_free_slots = e->cfg.max_running;
  e->next_id = 1;
  memcpy(e->stats.hist_bounds, hist_bounds, sizeof hist_bounds);
  pthread_mutex_init(&e->mu, NULL);
  pthread_mutex_init(&e->store_mu, NULL);
  pthread_cond_init(&e->wake, NULL);
  pthread_cond_init(&e->loader_wake, NULL);
  pthread_cond_init(&e->idle, NULL);
  if (pthread_create(&e->thread, NULL, engine_main, e) != 0 ||
      pthread_create(&e->loader, NULL, loader_main, e) != 0) {
    fprintf(stderr, "preft: cannot start engine threads\n");
    abort();
  }
  e->have_threads = true;
  PREFT_INFO(
      "engine: %zu KV blocks of %d positions (%zu MiB), up to %d running, %d tokens per step; adapters: "
      "%d loaded at most, in at most %.1f MiB taken from the KV cache",
      n_blocks, e->cfg.block_size, (n_blocks * block_bytes) >> 20, e->cfg.max_running, e->cfg.max_step_tokens,
      e->cfg.max_loaded_adapters, (double)e->reg.max_bytes / (1 << 20));
  *out = e;
  return 0;
}

void preft_engine_free(preft_engine *e) {
  if (!e) return;
  pthread_mutex_lock(&e->mu);
  for (int i = 0; i < e->n_running; i++) e->running[i]->cancelled = true;
  for (seq_t *s = e->wait_head; s; s = s->next) s->cancelled = true;
  e->stop = true;
  pthread_cond_broadcast(&e->wake);
  pthread_cond_broadcast(&e->loader_wake);
  pthread_mutex_unlock(&e->mu);
  pthread_join(e->thread, NULL);
  pthread_join(e->loader, NULL);
  /* the engine thread reaped and reported everything before it stopped */
  pthread_mutex_destroy(&e->mu);
  pthread_mutex_destroy(&e->store_mu);
  free(e->resolve_dir);
  free(e->store_path);
  pthread_cond_destroy(&e->wake);
  pthread_cond_destroy(&e->loader_wake);
  pthread_cond_destroy(&e->idle);
  preft_prefix_spill_all(&e->prefix); /* the disk tier keeps what memory held for the next start */
  preft_prefix_free(&e->prefix);
  preft_kv_free(&e->kv);
  preft_registry_free(&e->reg);
  for (int i = 0; i < preft_pool_size(e->pool); i++) preft_sample_scratch_free(&e->scratch[i]);
  free(e->scratch);
  preft_drafter_free(e->drafter); /* before the pool it runs on */
  free(e->dreqs);
  free(e->dseqs);
  preft_pool_free(e->pool);
  preft_workspace_free(&e->ws);
  free(e->running);
  free(e->free_slots);
  free(e->sampled);
  free(e->load_queue);
  preft_batch_buf_free(&e->batch);
  free(e->b_logit_seq);
  free(e->logits);
  free(e->events);
  if (!e->cfg.borrow_model) preft_model_free(e->model);
  free(e);
}

void preft_engine_set_shutdown_timeout(preft_engine *e, double seconds) {
  if (e->prefix.disk) preft_prefix_disk_set_deadline(e->prefix.disk, seconds);
}

const preft_model *preft_engine_model(const preft_engine *e) { return e->model; }

int preft_engine_submit(preft_engine *e, const preft_request_params *p, preft_request_cb cb, void *user,
                        uint64_t *id, preft_error *err) {
  const preft_model_config *c = &e->model->cfg;
  if (p->n_prompt <= 0) return preft_fail(err, "the prompt is empty"), PREFT_SUBMIT_INVALID;
  if (p->n_prompt >= e->cfg.max_context)
    return preft_fail(err,
                      "the prompt has %d tokens; the context holds %d including at least one generated token",
                      p->n_prompt, e->cfg.max_context),
           PREFT_SUBMIT_INVALID;
  for (int i = 0; i < p->n_prompt; i++)
    if (p->prompt[i] < 0 || p->prompt[i] >= c->vocab)
      return preft_fail(err, "token id %d at prompt position %d is outside the vocabulary [0, %d)",
                        p->prompt[i], i, c->vocab),
             PREFT_SUBMIT_INVALID;
  if (p->max_tokens < 1) return preft_fail(err, "max_tokens must be at least 1"), PREFT_SUBMIT_INVALID;
  if (p->logprobs > PREFT_MAX_TOP_LOGPROBS)
    return preft_fail(err, "logprobs may ask for at most %d alternatives", PREFT_MAX_TOP_LOGPROBS),
           PREFT_SUBMIT_INVALID;
  const preft_penalty_params *pen = &p->penalties;
  if (pen->repetition < 0 || pen->min_tokens < 0 || pen->n_bias < 0 || (pen->n_bias > 0 && !pen->bias_ids))
    return preft_fail(err,
                      "penalties: repetition and min_tokens must be >= 0, logit_bias given with its ids"),
           PREFT_SUBMIT_INVALID;
  for (int i = 0; i < pen->n_bias; i++)
    if (pen->bias_ids[i] < 0 || pen->bias_ids[i] >= c->vocab)
      return preft_fail(err, "logit_bias token id %d is outside the vocabulary [0, %d)", pen->bias_ids[i],
                        c->vocab),
             PREFT_SUBMIT_INVALID;
  int need_blocks = (p->n_prompt + 1 + e->kv.block_size - 1) / e->kv.block_size;
  if (need_blocks > e->kv.n_blocks)
    return preft_fail(err, "the prompt needs %d KV blocks; the cache holds %d (raise --kv-cache-mb)",
                      need_blocks, e->kv.n_blocks),
           PREFT_SUBMIT_INVALID;
  if (p->adapter) preft_engine_resolve_adapter(e, p->adapter); /* an adapter directory not registered yet */
  pthread_mutex_lock(&e->mu);
  int rc = PREFT_SUBMIT_OK;
  preft_registered_adapter *ra = NULL;
  if (e->draining || e->stop) {
    rc = PREFT_SUBMIT_BUSY;
    preft_fail(err, "the server is shutting down");
  } else if (e->n_waiting >= e->cfg.max_queue) {
    rc = PREFT_SUBMIT_BUSY;
    preft_fail(err, "the queue is full (%d requests waiting)", e->n_waiting);
  } else if (p->adapter && !(ra = preft_registry_find(&e->reg, p->adapter))) {
    rc = PREFT_SUBMIT_NO_ADAPTER;
    preft_fail(err, "no model or adapter named '%s'", p->adapter);
  } else if (ra && preft_registry_unavailable(ra, preft_now())) {
    rc = PREFT_SUBMIT_ADAPTER_UNAVAILABLE;
    preft_fail(err, "%s", ra->error);
  }
  if (rc != PREFT_SUBMIT_OK) {
    pthread_mutex_unlock(&e->mu);
    return rc;
  }
  seq_t *s = preft_xcalloc(1, sizeof *s);
  s->id = e->next_id++;
  s->cb = cb;
  s->user = user;
  int max_total = p->n_prompt + p->max_tokens;
  if (max_total > e->cfg.max_context) max_total = e->cfg.max_context;
  s->tokens = preft_xmalloc(sizeof(int) * (size_t)max_total);
  memcpy(s->tokens, p->prompt, sizeof(int) * (size_t)p->n_prompt);
  s->n_prompt = s->n_tokens = p->n_prompt;
  s->max_tokens = p->max_tokens;
  if (p->n_stop_ids > 0) {
    s->stop_ids = preft_xmalloc(sizeof(int) * (size_t)p->n_stop_ids);
    memcpy(s->stop_ids, p->stop_ids, sizeof(int) * (size_t)p->n_stop_ids);
    s->n_stop = p->n_stop_ids;
  }
  s->logprobs = p->logprobs;
  preft_sampler_init(&s->sampler, &p->sampling);
  preft_sampler_init_draft(&s->draft_sampler, &p->sampling);
  s->constraint = p->constraint;
  preft_penalties_init(&s->penalties, &p->penalties, p->prompt, p->n_prompt);
  s->slot = -1;
  s->t_submit = preft_now();
  s->ra = ra;
  s->requested_mode = p->adapter_mode;
  s->mode = p->adapter_mode >= 0 ? (preft_adapter_mode)p->adapter_mode : PREFT_MODE_ALL;
  if (ra) ra->refs++;
  if (e->wait_tail)
    e->wait_tail->next = s;
  else
    e->wait_head = s;
  e->wait_tail = s;
  e->n_waiting++;
  *id = s->id;
  pthread_cond_signal(&e->wake);
  pthread_mutex_unlock(&e->mu);
  return PREFT_SUBMIT_OK;
}

void preft_engine_cancel(preft_engine *e, uint64_t id) {
  pthread_mutex_lock(&e->mu);
  for (int i = 0; i < e->n_running; i++)
    if (e->running[i]->id == id) e->running[i]->cancelled = true;
  for (seq_t *s = e->wait_head; s; s = s->next)
    if (s->id == id) s->cancelled = true;
  pthread_cond_signal(&e->wake);
  pthread_mutex_unlock(&e->mu);
}

void preft_engine_drain(preft_engine *e) {
  pthread_mutex_lock(&e->mu);
  e->draining = true;
  while (e->n_running > 0 || e->n_waiting > 0 || e->n_events > 0 || e->delivering > 0)
    pthread_cond_wait(&e->idle, &e->mu);
  pthread_mutex_unlock(&e->mu);
}

void preft_engine_get_stats(preft_engine *e, preft_engine_stats *out) {
  pthread_mutex_lock(&e->mu);
  *out = e->stats;
  out->waiting = e->n_waiting;
  out->running = e->n_running;
  out->kv_blocks_free = e->kv.n_free;
  out->kv_blocks_cached = preft_prefix_count(&e->prefix);
  if (e->prefix.disk) {
    preft_prefix_disk_stats d;
    preft_prefix_disk_get_stats(e->prefix.disk, &d);
    out->prefix_disk_enabled = true;
    out->prefix_disk_hits = d.hits;
    out->prefix_disk_misses = d.misses;
    out->prefix_disk_corrupt = d.corrupt;
    out->prefix_disk_writes = d.writes;
    out->prefix_disk_write_failures = d.write_failures;
    out->prefix_disk_dropped = d.dropped;
    out->prefix_disk_evictions = d.evictions;
    out->prefix_disk_entries = d.entries;
    out->prefix_disk_bytes = d.bytes;
    out->prefix_disk_bytes_limit = d.max_bytes;
    out->prefix_disk_bytes_read = d.bytes_read;
    out->prefix_disk_bytes_written = d.bytes_written;
    out->prefix_disk_restore_seconds = d.restore_seconds;
  }
  out->kv_blocks_adapters = e->kv.n_pinned;
  out->kv_blocks_used = e->kv.n_blocks - e->kv.n_free - e->kv.n_pinned;
  out->adapters_loaded = e->reg.n_loaded;
  out->adapters_registered = e->reg.n_live;
  out->adapter_loads = e->reg.loads;
  out->adapter_load_failures = e->reg.load_failures;
  out->adapter_evictions = e->reg.evictions;
  out->adapter_bytes = e->reg.loaded_bytes;
  out->adapter_bytes_reserved = e->reg.reserved_bytes;
  out->adapter_bytes_limit = e->reg.max_bytes;
  pthread_mutex_unlock(&e->mu);
}
