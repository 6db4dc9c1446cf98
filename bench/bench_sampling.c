/* bench_sampling.c - the sampling part of an engine step at batch B.
 *
 * Rows (without -m): B rows of V normal logits (standard deviation S,
 * default 3; a trained model's rows are usually more peaked, a random
 * model's flatter), each sampled by its own seeded sampler, one row after
 * another on one thread (what the engine did under its lock) and as tasks on
 * a thread pool (what it does now, unlocked). Prints the best and the median
 * milliseconds per step (all B rows) of each way.
 *
 * Engine (-m MODEL_DIR): decode steps of the serving engine, the wall time
 * of a step against the forward's share of it; the rest is the engine's own
 * work (sampling, logprobs, scheduling, callbacks). B requests of P tokens
 * are held back until all are queued, so they start in one step; the N - 1
 * steps after the first token of request 0 are measured (stats before and
 * after, taken in its callback).
 *
 * Usage: bench_sampling [--batch B] [--threads T] [--temperature X]
 *                       [--top-k K] [--top-p P] [--min-p M]
 *                       [--vocab V] [--steps N] [--logit-std S]       (rows)
 *                       -m MODEL_DIR [--prompt-len P] [--new N]
 *                       [--logprobs L]                                (engine)
 * Uses only preft_sample, the pool and the public engine API, so the same
 * file measures an older sampler and engine too.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/threadpool.h"
#include "base/timer.h"
#include "engine/engine.h"
#include "engine/sampler.h"

typedef struct {
  const char *model; /* NULL: synthetic rows */
  int vocab, batch, steps, threads, prompt_len, n_new, logprobs;
  double logit_std;
  preft_sampling sp;
} options;

/* Reads the options; returns 0, or 2 after saying what was wrong. */
static int parse(int argc, char **argv, options *o) {
  *o = (options){.vocab = 151936, .batch = 64, .steps = 5, .prompt_len = 8, .n_new = 16, .logit_std = 3.0};
  o->sp = (preft_sampling){.temperature = 1.0f, .top_p = 1.0f};
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *a = argv[i], *v = argv[i + 1];
    if (!strcmp(a, "-m"))
      o->model = v;
    else if (!strcmp(a, "--vocab"))
      o->vocab = atoi(v);
    else if (!strcmp(a, "--batch"))
      o->batch = atoi(v);
    else if (!strcmp(a, "--steps"))
      o->steps = atoi(v);
    else if (!strcmp(a, "--threads"))
      o->threads = atoi(v);
    else if (!strcmp(a, "--prompt-len"))
      o->prompt_len = atoi(v);
    else if (!strcmp(a, "--new"))
      o->n_new = atoi(v);
    else if (!strcmp(a, "--logprobs"))
      o->logprobs = atoi(v);
    else if (!strcmp(a, "--logit-std"))
      o->logit_std = strtod(v, NULL);
    else if (!strcmp(a, "--temperature"))
      o->sp.temperature = strtof(v, NULL);
    else if (!strcmp(a, "--top-k"))
      o->sp.top_k = atoi(v);
    else if (!strcmp(a, "--top-p"))
      o->sp.top_p = strtof(v, NULL);
    else if (!strcmp(a, "--min-p"))
      o->sp.min_p = strtof(v, NULL);
    else {
      fprintf(stderr, "bench_sampling: unknown option %s (see the comment at the top of the file)\n", a);
      return 2;
    }
  }
  if (argc % 2 == 0 || o->vocab < 2 || o->batch < 1 || o->steps < 1 || o->prompt_len < 1 || o->n_new < 2) {
    fprintf(stderr,
            "bench_sampling: options come in pairs; vocab >= 2, batch, steps, prompt-len >= 1, "
            "new >= 2\n");
    return 2;
  }
  return 0;
}

/* ---- synthetic rows ---------------------------------------------------------------- */

typedef struct {
  preft_sampler *samplers;
  const float *logits;
  int vocab;
  int *tokens;
} step_job;

static void sample_task(void *ctx, int j, int thread) {
  step_job *job = ctx;
  job->tokens[j] = preft_sample(&job->samplers[j], job->logits + (size_t)j * job->vocab, job->vocab);
}

static uint64_t rng_state = 0x243f6a8885a308d3ull;

static double uniform(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return ((double)(rng_state >> 11) + 0.5) * 0x1p-53;
}

static int by_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Times `steps` steps of all rows on pool (NULL: one thread); ms[steps] gets each step. */
static void run(preft_pool *pool, step_job *job, int batch, int steps, double *ms) {
  for (int s = 0; s < steps; s++) {
    double t0 = preft_now();
    if (pool)
      preft_pool_run(pool, batch, sample_task, job);
    else
      for (int j = 0; j < batch; j++) sample_task(job, j, 0);
    ms[s] = 1e3 * (preft_now() - t0);
  }
  qsort(ms, (size_t)steps, sizeof *ms, by_double);
}

/* Times the rows' sampling serially and on the pool; returns 0. */
static int bench_rows(const options *o) {
  int vocab = o->vocab, batch = o->batch, steps = o->steps;
  preft_sampling sp = o->sp;
  float *logits = malloc(sizeof(float) * (size_t)vocab * (size_t)batch);
  for (size_t i = 0; i < (size_t)vocab * (size_t)batch; i++)
    logits[i] = (float)(o->logit_std * sqrt(-2.0 * log(uniform())) * cos(6.283185307179586 * uniform()));
  preft_sampler *samplers = calloc((size_t)batch, sizeof *samplers);
  int *tokens = malloc(sizeof(int) * (size_t)batch);
  for (int j = 0; j < batch; j++) {
    sp.seed = (uint64_t)j + 1;
    preft_sampler_init(&samplers[j], &sp);
  }
  step_job job = {samplers, logits, vocab, tokens};
  preft_pool *pool = preft_pool_create(o->threads);
  double *ms = malloc(sizeof(double) * (size_t)steps);
  run(NULL, &job, batch, 1, ms); /* warm-up: scratch allocated, pages touched */
  printf("vocab %d, batch %d, T %g, top-k %d, top-p %g, min-p %g, logit std %g, %d steps\n", vocab, batch,
         sp.temperature, sp.top_k, sp.top_p, sp.min_p, o->logit_std, steps);
  run(NULL, &job, batch, steps, ms);
  printf("serial, 1 thread:  best %8.2f ms/step, median %8.2f\n", ms[0], ms[steps / 2]);
  run(pool, &job, batch, steps, ms);
  printf("pool, %d threads:   best %8.2f ms/step, median %8.2f\n", preft_pool_size(pool), ms[0],
         ms[steps / 2]);
  for (int j = 0; j < batch; j++) preft_sampler_free(&samplers[j]);
  preft_pool_free(pool);
  free(ms);
  free(samplers);
  free(tokens);
  free(logits);
  return 0;
}

/* ---- engine steps ------------------------------------------------------------------ */

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

/* Times the engine's decode steps; returns 0, or 1 after saying what failed. */
static int bench_engine(const options *o) {
  const char *dir = o->model;
  int batch = o->batch, prompt_len = o->prompt_len, n_new = o->n_new, logprobs = o->logprobs;
  preft_sampling sp = o->sp;
  preft_model *m;
  preft_engine *e;
  preft_error err;
  if (preft_model_load(&m, dir, &err) != 0) {
    fprintf(stderr, "bench_sampling: %s\n", err.msg);
    return 1;
  }
  preft_engine_config cfg = {.threads = o->threads,
                             .kv_cache_mb = 256,
                             .max_running = batch + 1,
                             .max_step_tokens = batch * prompt_len + 1};
  if (preft_engine_create(&e, m, &cfg, &err) != 0) {
    fprintf(stderr, "bench_sampling: %s\n", err.msg);
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
    fprintf(stderr, "bench_sampling: %s\n", err.msg);
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
      fprintf(stderr, "bench_sampling: %s\n", err.msg);
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

int main(int argc, char **argv) {
  options o;
  if (parse(argc, argv, &o) != 0) return 2;
  return o.model ? bench_engine(&o) : bench_rows(&o);
}
