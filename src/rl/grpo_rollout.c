/* grpo_rollout.c - G sampled completions of each prompt through the serving
 * engine (see grpo.h): every request is submitted before any is waited
 * for, so the engine batches them (prefill chunks and decode rows of all
 * samples in one forward, the G samples of a prompt sharing its cached
 * prompt blocks). The engine's callbacks record each token and its
 * log-probability; the caller waits on a condition variable until every
 * request has finished. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "rl/grpo.h"

typedef struct {
  int *ids; /* [max_new] completion tokens */
  float *logp;
  int n;
  bool done, failed;
  char error[160];
} request_state;

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int pending;
  request_state *r;
  int max_new;
} rollout_wait;

typedef struct {
  rollout_wait *w;
  int i;
} request_ref;

static bool on_event(void *user, const preft_token_event *ev) {
  request_ref *ref = user;
  rollout_wait *w = ref->w;
  request_state *r = &w->r[ref->i];
  if (ev->token >= 0 && r->n < w->max_new) {
    r->ids[r->n] = ev->token;
    r->logp[r->n++] = ev->logprob;
  }
  if (ev->finish != PREFT_FINISH_NONE) {
    pthread_mutex_lock(&w->mu);
    if (ev->finish == PREFT_FINISH_ERROR || ev->finish == PREFT_FINISH_CANCELLED) {
      r->failed = true;
      snprintf(r->error, sizeof r->error, "%s", ev->error ? ev->error : "cancelled");
    }
    r->done = true;
    w->pending--;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
  }
  return true;
}

static uint64_t mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* The stop ids: EOS of the model config and of the tokenizer. */
static int stop_ids(const preft_engine *e, const preft_tokenizer *tok, int *out) {
  const preft_model_config *c = preft_model_get_config(preft_engine_model(e));
  int n = 0;
  for (int i = 0; i < c->n_eos && n < 2 * PREFT_MAX_EOS; i++) out[n++] = c->eos_ids[i];
  const int32_t *te;
  int nt = tok ? preft_tokenizer_eos_ids(tok, &te) : 0;
  for (int i = 0; i < nt && n < 2 * PREFT_MAX_EOS; i++) out[n++] = te[i];
  return n;
}

int preft_grpo_newline_ids(const preft_tokenizer *tok, int **ids) {
  int V = preft_tokenizer_vocab_size(tok), n = 0;
  *ids = preft_xmalloc(sizeof(int) * (size_t)(V > 0 ? V : 1));
  for (int32_t id = 0; id < V; id++) {
    char *text = NULL;
    size_t len;
    preft_error err;
    if (preft_tokenizer_decode(tok, &id, 1, PREFT_DECODE_NO_CLEANUP, &text, &len, &err) == 0 &&
        memchr(text, '\n', len))
      (*ids)[n++] = id;
    free(text);
  }
  return n;
}

int preft_grpo_encode_prompts(const preft_tokenizer *tok, const preft_rl_prompt *prompts, int n, int ***ids,
                              int **lens, preft_error *err) {
  *ids = preft_xcalloc((size_t)n, sizeof **ids);
  *lens = preft_xcalloc((size_t)n, sizeof **lens);
  for (int p = 0; p < n; p++) {
    int32_t *enc;
    size_t ne;
    if (preft_tokenizer_encode(tok, prompts[p].prompt, strlen(prompts[p].prompt), true, &enc, &ne, err) != 0)
      return -1;
    if (ne == 0) {
      free(enc);
      return preft_fail(err, "prompt '%.60s' encodes to no tokens", prompts[p].prompt);
    }
    (*ids)[p] = preft_xmalloc(sizeof(int) * ne);
    for (size_t t = 0; t < ne; t++) (*ids)[p][t] = enc[t];
    (*lens)[p] = (int)ne;
    free(enc);
  }
  return 0;
}

int preft_grpo_rollout(preft_engine *e, const preft_tokenizer *tok, int *const *prompt_ids,
                       const int *prompt_lens, int n, const preft_grpo_rollout_opts *o, preft_grpo_batch *b,
                       preft_error *err) {
  int G = o->group, total = n * G, rc = 0;
  memset(b, 0, sizeof *b);
  b->group = G;
  b->n = total;
  b->s = preft_xcalloc((size_t)total, sizeof *b->s);
  rollout_wait w = {.pending = 0, .max_new = o->max_new_tokens};
  pthread_mutex_init(&w.mu, NULL);
  pthread_cond_init(&w.cv, NULL);
  w.r = preft_xcalloc((size_t)total, sizeof *w.r);
  request_ref *refs = preft_xcalloc((size_t)total, sizeof *refs);
  uint64_t *ids = preft_xcalloc((size_t)total, sizeof *ids);
  int *stops = preft_xmalloc(sizeof(int) * (size_t)(2 * PREFT_MAX_EOS + o->n_stop_ids));
  int n_stop = stop_ids(e, tok, stops);
  for (int i = 0; i < o->n_stop_ids; i++) stops[n_stop++] = o->stop_ids[i];
  int submitted = 0;
  for (int i = 0; i < total && rc == 0; i++) {
    int p = i / G;
    w.r[i].ids = preft_xmalloc(sizeof(int) * (size_t)o->max_new_tokens);
    w.r[i].logp = preft_xmalloc(sizeof(float) * (size_t)o->max_new_tokens);
    refs[i] = (request_ref){.w = &w, .i = i};
    preft_request_params rp = {
        .prompt = prompt_ids[p],
        .n_prompt = prompt_lens[p],
        .adapter = o->adapter,
        .adapter_mode = o->adapter_mode,
        .max_tokens = o->max_new_tokens,
        .sampling = {.temperature = o->temperature,
                     .top_p = o->top_p,
                     .seed = mix(mix(mix(o->seed) ^ (uint64_t)o->step) ^ (uint64_t)(o->first_sample + i))},
        .stop_ids = stops,
        .n_stop_ids = n_stop,
        .logprobs = 1,
    };
    pthread_mutex_lock(&w.mu);
    w.pending++;
    pthread_mutex_unlock(&w.mu);
    int s = preft_engine_submit(e, &rp, on_event, &refs[i], &ids[i], err);
    if (s != PREFT_SUBMIT_OK) {
      pthread_mutex_lock(&w.mu);
      w.pending--;
      pthread_mutex_unlock(&w.mu);
      rc = -1;
      break;
    }
    submitted++;
  }
  if (rc != 0)
    for (int i = 0; i < submitted; i++) preft_engine_cancel(e, ids[i]);
  pthread_mutex_lock(&w.mu);
  while (w.pending > 0) pthread_cond_wait(&w.cv, &w.mu);
  pthread_mutex_unlock(&w.mu);
  for (int i = 0; i < total && rc == 0; i++)
    if (w.r[i].failed) rc = preft_fail(err, "rollout: request %d failed: %s", i, w.r[i].error);
  for (int i = 0; i < total && rc == 0; i++) {
    int p = i / G, np = prompt_lens[p], nc = w.r[i].n;
    preft_grpo_sample *s = &b->s[i];
    s->prompt_len = np;
    s->n = np + nc;
    s->ids = preft_xmalloc(sizeof(int) * (size_t)s->n);
    memcpy(s->ids, prompt_ids[p], sizeof(int) * (size_t)np);
    memcpy(s->ids + np, w.r[i].ids, sizeof(int) * (size_t)nc);
    s->engine_logp = preft_xmalloc(sizeof(float) * (size_t)(nc ? nc : 1));
    memcpy(s->engine_logp, w.r[i].logp, sizeof(float) * (size_t)nc);
    size_t len;
    if (tok)
      rc = preft_tokenizer_decode(tok, (const int32_t *)(s->ids + np), (size_t)nc, PREFT_DECODE_SKIP_SPECIAL,
                                  &s->text, &len, err);
  }
  for (int i = 0; i < total; i++) {
    free(w.r[i].ids);
    free(w.r[i].logp);
  }
  free(w.r);
  free(stops);
  free(refs);
  free(ids);
  pthread_cond_destroy(&w.cv);
  pthread_mutex_destroy(&w.mu);
  if (rc != 0) preft_grpo_batch_free(b);
  return rc;
}
