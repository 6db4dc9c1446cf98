/* bench_engine_step.c - decode steps of the serving engine at batch B: the
 * wall time of a step against the forward's share of it. The rest is the
 * engine's own work (sampling, logprobs, scheduling, callbacks).
 *
 * Usage: bench_engine_step -m MODEL_DIR [--batch B] [--prompt-len P]
 *                          [--new N] [--threads T] [--temperature X]
 *                          [--top-k K] [--top-p P] [--min-p M] [--logprobs L]
 * B requests of P tokens are held back until all are queued, so they start
 * in one step; the N - 1 steps after the first token of request 0 are
 * measured (stats before and after, taken in its callback). Uses only the
 * public engine API, so the same file measures an older engine too.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/timer.h"
#include "engine/engine.h"

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool entered, open;
  int done;
  preft_engine *engine;
  uint64_t first_id; /* request 0 */
  int n_new, seen;   /* tokens of request 0 */
  double t_first, t_last;
  preft_engine_stats first, last;
} bench_state;

/* The first request's callback: holds the engine thread until opened. */
static bool hold(void *user, const preft_token_event *ev) {
  bench_state *b = user;
  pthread_mutex_lock(&b->mu);
  b->entered = true;
  pthread_cond_broadcast(&b->cv);
  while (!b->open) pthread_cond_wait(&b->cv, &b->mu);
  pthread_mutex_unlock(&b->mu);
  return true;
}

/* Request 0 snapshots the clock and the stats at its first and last token. */
static bool on_event(void *user, const preft_token_event *ev) {
  bench_state *b = user;
  if (ev->token >= 0 && ev->request == b->first_id) {
    b->seen++;
    if (b->seen == 1 || b->seen == b->n_new) {
      double t = preft_now();
      preft_engine_stats st;
      preft_engine_get_stats(b->engine, &st);
      if (b->seen == 1) b->t_first = t, b->first = st;
      if (b->seen == b->n_new) b->t_last = t, b->last = st;
    }
  }
  if (ev->finish != PREFT_FINISH_NONE) {
    pthread_mutex_lock(&b->mu);
    b->done++;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
  }
  return true;
}

int main(int argc, char **argv) {
  const char *dir = NULL;
  int batch = 64, prompt_len = 8, n_new = 16, threads = 0, logprobs = 0;
  preft_sampling sp = {.temperature = 1.0f, .top_p = 1.0f};
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *a = argv[i], *v = argv[i + 1];
    if (!strcmp(a, "-m"))
      dir = v;
    else if (!strcmp(a, "--batch"))
      batch = atoi(v);
    else if (!strcmp(a, "--prompt-len"))
      prompt_len = atoi(v);
    else if (!strcmp(a, "--new"))
      n_new = atoi(v);
    else if (!strcmp(a, "--threads"))
      threads = atoi(v);
    else if (!strcmp(a, "--temperature"))
      sp.temperature = strtof(v, NULL);
    else if (!strcmp(a, "--top-k"))
      sp.top_k = atoi(v);
    else if (!strcmp(a, "--top-p"))
      sp.top_p = strtof(v, NULL);
    else if (!strcmp(a, "--min-p"))
      sp.min_p = strtof(v, NULL);
    else if (!strcmp(a, "--logprobs"))
      logprobs = atoi(v);
    else {
      fprintf(stderr, "bench_engine_step: unknown option %s (see the comment at the top of the file)\n", a);
      return 2;
    }
  }
  if (!dir || argc % 2 == 0 || batch < 1 || prompt_len < 1 || n_new < 2) {
    fprintf(stderr, "bench_engine_step: -m DIR is required; options come in pairs; --new >= 2\n");
    return 2;
  }
  preft_model *m;
  preft_engine *e;
  preft_error err;
  if (preft_model_load(&m, dir, &err) != 0) {
    fprintf(stderr, "bench_engine_step: %s\n", err.msg);
    return 1;
  }
  preft_engine_config cfg = {.threads = threads,
                             .kv_cache_mb = 256,
                             .max_running = batch + 1,
                             .max_step_tokens = batch * prompt_len + 1};
  if (preft_engine_create(&e, m, &cfg, &err) != 0) {
    fprintf(stderr, "bench_engine_step: %s\n", err.msg);
    return 1;
  }
  bench_state b = {.engine = e, .n_new = n_new};
  pthread_mutex_init(&b.mu, NULL);
  pthread_cond_init(&b.cv, NULL);
  int *prompt = malloc(sizeof(int) * (size_t)prompt_len), vocab = m->cfg.vocab;
  uint64_t id;
  preft_request_params held = {.prompt = prompt, .n_prompt = 1, .adapter_mode = -1, .max_tokens = 1};
  prompt[0] = 1;
  if (preft_engine_submit(e, &held, hold, &b, &id, &err) != 0) {
    fprintf(stderr, "bench_engine_step: %s\n", err.msg);
    return 1;
  }
  pthread_mutex_lock(&b.mu);
  while (!b.entered) pthread_cond_wait(&b.cv, &b.mu);
  pthread_mutex_unlock(&b.mu);
  for (int r = 0; r < batch; r++) {
    for (int i = 0; i < prompt_len; i++) prompt[i] = (1 + 37 * (i + r) + 11 * r) % vocab;
    sp.seed = (uint64_t)r + 1;
    preft_request_params p = {.prompt = prompt,
                              .n_prompt = prompt_len,
                              .adapter_mode = -1,
                              .max_tokens = n_new,
                              .sampling = sp,
                              .logprobs = logprobs};
    if (preft_engine_submit(e, &p, on_event, &b, &id, &err) != 0) {
      fprintf(stderr, "bench_engine_step: %s\n", err.msg);
      return 1;
    }
    if (r == 0) b.first_id = id; /* before any event: the engine is held */
  }
  pthread_mutex_lock(&b.mu);
  b.open = true;
  pthread_cond_broadcast(&b.cv);
  while (b.done < batch) pthread_cond_wait(&b.cv, &b.mu);
  pthread_mutex_unlock(&b.mu);
  long steps = b.last.steps - b.first.steps;
  double wall = (b.t_last - b.t_first) / (double)steps,
         fwd = (b.last.step_seconds_sum - b.first.step_seconds_sum) / (double)steps;
  printf("vocab %d, batch %d, T %g, top-k %d, top-p %g, min-p %g, logprobs %d: %ld decode steps\n", vocab,
         batch, sp.temperature, sp.top_k, sp.top_p, sp.min_p, logprobs, steps);
  printf("step %.1f ms = forward %.1f ms + rest %.1f ms (rest/forward %.2f)\n", 1e3 * wall, 1e3 * fwd,
         1e3 * (wall - fwd), (wall - fwd) / fwd);
  preft_engine_free(e);
  pthread_mutex_destroy(&b.mu);
  pthread_cond_destroy(&b.cv);
  free(prompt);
  return 0;
}
