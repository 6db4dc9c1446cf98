/* bench_prefix_disk.c - time to first token of a returning user with a long
 * history, through the serving engine: the prompt computed (cold), its
 * blocks found in the memory prefix cache, and its blocks restored from the
 * disk tier after a restart (engine/prefix_disk.h).
 *
 * Each rep uses a fresh random prompt of --tokens ids and asks for one
 * token: cold (never seen), then the same prompt again (memory hit), then
 * the engine is freed (its cached blocks are written to the disk tier, not
 * timed), a new engine is made on the same directory, warmed up with an
 * unrelated 16-token request, and the prompt is sent once more (disk hit:
 * the files are in the page cache, having just been written; a restore
 * from a cold device adds its read time). TTFT is the time from submit to
 * the first token's event; restore_ms is the part of it spent reading and
 * checking the files. Prints each rep's rows and the median per case.
 *
 * Usage: bench_prefix_disk -m MODEL_DIR [--tokens 2000] [--reps 3]
 *          [--threads N] [--adapter DIR [--mode all|prefill]] [--dir DIR]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/file.h"
#include "base/timer.h"
#include "engine/engine.h"

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  double t_first;
  bool done;
} waiter;

static bool on_event(void *user, const preft_token_event *ev) {
  waiter *w = user;
  pthread_mutex_lock(&w->mu);
  if (ev->token >= 0 && w->t_first == 0) w->t_first = preft_now();
  if (ev->finish != PREFT_FINISH_NONE) {
    w->done = true;
    pthread_cond_signal(&w->cv);
  }
  pthread_mutex_unlock(&w->mu);
  return true;
}

static const char *adapter_dir;
static int adapter_mode = -1;

/* Runs one request of n ids for one token; returns its TTFT in seconds. */
static double ttft(preft_engine *e, const int *ids, int n) {
  waiter w = {.t_first = 0};
  pthread_mutex_init(&w.mu, NULL);
  pthread_cond_init(&w.cv, NULL);
  preft_request_params p = {.prompt = ids,
                            .n_prompt = n,
                            .adapter = adapter_dir ? "user" : NULL,
                            .adapter_mode = adapter_mode,
                            .max_tokens = 1};
  preft_error err;
  uint64_t id;
  double t0 = preft_now();
  if (preft_engine_submit(e, &p, on_event, &w, &id, &err) != PREFT_SUBMIT_OK) {
    fprintf(stderr, "bench_prefix_disk: %s\n", err.msg);
    exit(1);
  }
  pthread_mutex_lock(&w.mu);
  while (!w.done) pthread_cond_wait(&w.cv, &w.mu);
  pthread_mutex_unlock(&w.mu);
  pthread_mutex_destroy(&w.mu);
  pthread_cond_destroy(&w.cv);
  return w.t_first - t0;
}

static preft_engine *make_engine(const char *model_dir, const char *dir, int threads) {
  preft_model *m;
  preft_error err;
  preft_engine *e;
  preft_engine_config cfg = {.threads = threads, .kv_cache_mb = 1024, .prefix_cache_dir = dir};
  if (preft_model_load(&m, model_dir, &err) != 0 || preft_engine_create(&e, m, &cfg, &err) != 0 ||
      (adapter_dir && preft_engine_add_adapter(e, "user", adapter_dir, &err) != 0)) {
    fprintf(stderr, "bench_prefix_disk: %s\n", err.msg);
    exit(1);
  }
  int warm[16];
  for (int i = 0; i < 16; i++) warm[i] = 1 + i;
  ttft(e, warm, 16); /* threads up, adapter loaded */
  return e;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  const char *model_dir = NULL, *dir = NULL, *mode = "default";
  int tokens = 2000, reps = 3, threads = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-m") && i + 1 < argc)
      model_dir = argv[++i];
    else if (!strcmp(argv[i], "--tokens") && i + 1 < argc)
      tokens = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
      reps = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
      threads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--adapter") && i + 1 < argc)
      adapter_dir = argv[++i];
    else if (!strcmp(argv[i], "--mode") && i + 1 < argc) {
      mode = argv[++i];
      adapter_mode = !strcmp(mode, "prefill") ? PREFT_MODE_PREFILL : PREFT_MODE_ALL;
    } else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
      dir = argv[++i];
    else {
      fprintf(stderr,
              "usage: bench_prefix_disk -m MODEL_DIR [--tokens N] [--reps R] [--threads T] [--adapter DIR "
              "[--mode all|prefill]] [--dir DIR]\n");
      return 2;
    }
  }
  if (!model_dir || tokens < 17 || reps < 1) {
    fprintf(stderr, "bench_prefix_disk: -m MODEL_DIR is required (--tokens > 16, --reps > 0)\n");
    return 2;
  }
  char tmpl[] = "/tmp/preft-bench-prefix-XXXXXX";
  if (!dir && !(dir = mkdtemp(tmpl))) {
    perror("mkdtemp");
    return 1;
  }
  preft_engine *e = make_engine(model_dir, dir, threads);
  int vocab = preft_engine_model(e)->cfg.vocab;
  int *ids = malloc(sizeof(int) * (size_t)tokens);
  double *t[3];
  for (int c = 0; c < 3; c++) t[c] = calloc((size_t)reps, sizeof(double));
  printf("# prompt %d tokens, adapter %s (mode %s), threads %d, disk tier %s\n", tokens,
         adapter_dir ? adapter_dir : "none (base)", adapter_dir ? mode : "-", threads, dir);
  printf("%-4s %-12s %10s %14s %16s %11s\n", "rep", "case", "ttft_ms", "hit_tokens", "disk_hit_tokens",
         "restore_ms");
  uint64_t seed = 0x9e3779b97f4a7c15ull;
  for (int r = 0; r < reps; r++) {
    for (int i = 0; i < tokens; i++) {
      seed = seed * 6364136223846793005ull + 1442695040888963407ull;
      ids[i] = 1 + (int)((seed >> 33) % (uint64_t)(vocab - 1));
    }
    for (int c = 0; c < 3; c++) {
      if (c == 2) { /* restart: the cached blocks go to disk (not timed) */
        preft_engine_free(e);
        e = make_engine(model_dir, dir, threads);
      }
      preft_engine_stats a, b;
      preft_engine_get_stats(e, &a);
      t[c][r] = ttft(e, ids, tokens);
      preft_engine_get_stats(e, &b);
      static const char *names[] = {"cold", "memory_hit", "disk_hit"};
      printf("%-4d %-12s %10.1f %14ld %16ld %11.1f\n", r, names[c], t[c][r] * 1e3,
             b.prefix_hit_tokens - a.prefix_hit_tokens, b.prefix_disk_hit_tokens - a.prefix_disk_hit_tokens,
             (b.prefix_disk_restore_seconds - a.prefix_disk_restore_seconds) * 1e3);
      fflush(stdout);
    }
  }
  preft_engine_stats st;
  preft_engine_get_stats(e, &st);
  for (int c = 0; c < 3; c++) qsort(t[c], (size_t)reps, sizeof(double), cmp_double);
  printf("# median ttft_ms: cold %.1f  memory_hit %.1f  disk_hit %.1f  (disk tier: %d entries, %.1f MiB)\n",
         t[0][reps / 2] * 1e3, t[1][reps / 2] * 1e3, t[2][reps / 2] * 1e3, st.prefix_disk_entries,
         (double)st.prefix_disk_bytes / (1 << 20));
  preft_engine_free(e);
  free(ids);
  for (int c = 0; c < 3; c++) free(t[c]);
  return 0;
}
