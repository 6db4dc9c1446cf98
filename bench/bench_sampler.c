/* bench_sampler.c - the sampling part of one engine step: B rows of V
 * logits, each sampled by its own seeded sampler, one row after another on
 * one thread (what the engine did under its lock) and as tasks on a thread
 * pool (what it does now, unlocked). Uses only preft_sample and the pool, so
 * the same file measures an older sampler too.
 *
 * Usage: bench_sampler [--vocab V] [--batch B] [--steps N] [--threads T]
 *                      [--temperature X] [--top-k K] [--top-p P] [--min-p M]
 *                      [--logit-std S]
 * Logits are normal with standard deviation S (default 3; a trained model's
 * rows are usually more peaked, a random model's flatter). Prints the best
 * and the median milliseconds per step (all B rows) of each way.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/threadpool.h"
#include "base/timer.h"
#include "engine/sampler.h"

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

int main(int argc, char **argv) {
  int vocab = 151936, batch = 64, steps = 5, threads = 0;
  double std = 3.0;
  preft_sampling sp = {.temperature = 1.0f, .top_p = 1.0f};
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *a = argv[i], *v = argv[i + 1];
    if (!strcmp(a, "--vocab"))
      vocab = atoi(v);
    else if (!strcmp(a, "--batch"))
      batch = atoi(v);
    else if (!strcmp(a, "--steps"))
      steps = atoi(v);
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
    else if (!strcmp(a, "--logit-std"))
      std = strtod(v, NULL);
    else {
      fprintf(stderr, "bench_sampler: unknown option %s (see the comment at the top of bench_sampler.c)\n",
              a);
      return 2;
    }
  }
  if (argc % 2 == 0 || vocab < 2 || batch < 1 || steps < 1) {
    fprintf(stderr, "bench_sampler: options come in pairs; vocab >= 2, batch and steps >= 1\n");
    return 2;
  }
  float *logits = malloc(sizeof(float) * (size_t)vocab * (size_t)batch);
  for (size_t i = 0; i < (size_t)vocab * (size_t)batch; i++)
    logits[i] = (float)(std * sqrt(-2.0 * log(uniform())) * cos(6.283185307179586 * uniform()));
  preft_sampler *samplers = calloc((size_t)batch, sizeof *samplers);
  int *tokens = malloc(sizeof(int) * (size_t)batch);
  for (int j = 0; j < batch; j++) {
    sp.seed = (uint64_t)j + 1;
    preft_sampler_init(&samplers[j], &sp);
  }
  step_job job = {samplers, logits, vocab, tokens};
  preft_pool *pool = preft_pool_create(threads);
  double *ms = malloc(sizeof(double) * (size_t)steps);
  run(NULL, &job, batch, 1, ms); /* warm-up: scratch allocated, pages touched */
  printf("vocab %d, batch %d, T %g, top-k %d, top-p %g, min-p %g, logit std %g, %d steps\n", vocab, batch,
         sp.temperature, sp.top_k, sp.top_p, sp.min_p, std, steps);
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
