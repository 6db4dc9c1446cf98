/* test_prefix_disk.c - the prefix cache's disk tier (engine/prefix_disk.h):
 * blocks round-trip bit for bit; a corrupted, truncated or foreign file is a
 * miss (removed), never a crash; junk and unfinished temp files are handled
 * at start-up; the size bound evicts least recently used files; failed
 * writes (a file size limit, a vanished directory) drop the entry and go
 * on; a shutdown deadline bounds flush and close even when a write hangs. Through the engine: greedy tokens
 * with a disk hit equal the cold run's and a memory hit's, for the base model, all-token and prefill-only
 * adapters (LoRA and ReFT), after a restart and after eviction from a small
 * KV cache. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/file.h"
#include "base/timer.h"
#include "engine/engine.h"
#include "engine/prefix_disk.h"
#include "testutil.h"

enum { L = 2, KVD = 8, BS = 4, NF = L * BS * KVD };
static const uint64_t MODEL = 0x1234;

static void fill(float *k, float *v, uint64_t seed) {
  for (int i = 0; i < NF; i++) {
    k[i] = (float)(seed * 1000 + (uint64_t)i) * 0.5f;
    v[i] = -(float)(seed * 1000 + (uint64_t)i) * 0.25f;
  }
}

static preft_prefix_disk *open_disk(const char *dir, uint64_t max_bytes, uint64_t model) {
  preft_prefix_disk *d;
  preft_error err;
  if (preft_prefix_disk_open(&d, dir, max_bytes, model, L, KVD, BS, 0, &err) != 0) fail_msg("%s", err.msg);
  return d;
}

static char *entry(const char *dir, uint64_t key) {
  char name[32];
  snprintf(name, sizeof name, "%016llx.kvb", (unsigned long long)key);
  return preft_path_join(dir, name);
}

static size_t file_size(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0 ? (size_t)sb.st_size : 0;
}

static void spill(preft_prefix_disk *d, uint64_t key) {
  float k[NF], v[NF];
  fill(k, v, key);
  preft_prefix_disk_spill(d, key, k, v, false);
}

static void assert_restores(preft_prefix_disk *d, uint64_t key) {
  float k[NF], v[NF], wk[NF], wv[NF];
  fill(wk, wv, key);
  if (preft_prefix_disk_restore(d, key, k, v) != 0)
    fail_msg("key %llx: not restored", (unsigned long long)key);
  assert_memory_equal(k, wk, sizeof k);
  assert_memory_equal(v, wv, sizeof v);
}

static int restore(preft_prefix_disk *d, uint64_t key) {
  float k[NF], v[NF];
  return preft_prefix_disk_restore(d, key, k, v);
}

static void blocks_round_trip_and_bad_files_are_misses(void **s) {
  char *dir = test_tmpdir();
  preft_prefix_disk *d = open_disk(dir, 1 << 20, MODEL);
  for (uint64_t key = 1; key <= 4; key++) spill(d, key);
  preft_prefix_disk_flush(d);
  for (uint64_t key = 1; key <= 4; key++) assert_restores(d, key);
  assert_int_equal(restore(d, 99), -1);
  /* one flipped payload byte; a truncated file; a header of another key */
  char *p1 = entry(dir, 1), *p2 = entry(dir, 2), *p3 = entry(dir, 3), *p4 = entry(dir, 4);
  size_t size = file_size(p1);
  assert_int_equal(size, 64 + 2 * NF * sizeof(float));
  FILE *f = fopen(p1, "r+b");
  fseek(f, 64 + 13, SEEK_SET);
  int c = fgetc(f);
  fseek(f, 64 + 13, SEEK_SET);
  fputc(c ^ 0xff, f);
  fclose(f);
  assert_int_equal(truncate(p2, (off_t)size - 5), 0);
  assert_int_equal(rename(p4, p3), 0); /* key 3's name, key 4's contents */
  assert_int_equal(restore(d, 1), -1);
  assert_int_equal(restore(d, 2), -1);
  assert_int_equal(restore(d, 3), -1);
  assert_false(preft_file_exists(p1) || preft_file_exists(p2) || preft_file_exists(p3));
  preft_prefix_disk_stats st;
  preft_prefix_disk_get_stats(d, &st);
  assert_int_equal(st.corrupt, 3);
  assert_int_equal(st.hits, 4);
  assert_int_equal(st.writes, 4);
  assert_int_equal(st.entries, 1); /* key 4's entry is still indexed, its file gone */
  assert_int_equal(restore(d, 4), -1);
  preft_prefix_disk_get_stats(d, &st);
  assert_int_equal(st.entries, 0);
  preft_prefix_disk_close(d);
  free(p1);
  free(p2);
  free(p3);
  free(p4);
  free(dir);
}

static void startup_skips_junk_and_other_models(void **s) {
  char *dir = test_tmpdir();
  preft_prefix_disk *d = open_disk(dir, 1 << 20, MODEL);
  spill(d, 7);
  spill(d, 8);
  preft_prefix_disk_close(d); /* writes what is queued */
  char *junk = preft_path_join(dir, "notes.txt"), *bad = entry(dir, 0xabc),
       *tmp = preft_path_join(dir, ".0000000000000007.kvb.tmp.42");
  assert_int_equal(preft_write_atomic(junk, "hello", 5, NULL), 0);
  assert_int_equal(preft_write_atomic(bad, "PREFTKV1 but nothing else", 25, NULL), 0);
  assert_int_equal(preft_write_atomic(tmp, "half an entry", 13, NULL), 0);
  /* another model: its entries are not indexed and left alone */
  d = open_disk(dir, 1 << 20, MODEL + 1);
  preft_prefix_disk_stats st;
  preft_prefix_disk_get_stats(d, &st);
  assert_int_equal(st.entries, 0);
  assert_int_equal(restore(d, 7), -1);
  preft_prefix_disk_close(d);
  char *p7 = entry(dir, 7);
  assert_true(preft_file_exists(p7));
  d = open_disk(dir, 1 << 20, MODEL);
  preft_prefix_disk_get_stats(d, &st);
  assert_int_equal(st.entries, 2);
  assert_true(preft_file_exists(junk));                           /* not ours: kept */
  assert_false(preft_file_exists(bad) || preft_file_exists(tmp)); /* ours and broken: removed */
  assert_restores(d, 7);
  assert_restores(d, 8);
  preft_prefix_disk_close(d);
  free(junk);
  free(bad);
  free(tmp);
  free(p7);
  free(dir);
}

static void size_bound_evicts_least_recently_used(void **s) {
  char *dir = test_tmpdir();
  uint64_t file = 64 + 2 * NF * sizeof(float);
  preft_prefix_disk *d = open_disk(dir, 3 * file + file / 2, MODEL);
  for (uint64_t key = 1; key <= 3; key++) spill(d, key);
  preft_prefix_disk_flush(d);
  assert_restores(d, 1); /* 2 is now the oldest */
  spill(d, 4);
  preft_prefix_disk_flush(d);
  assert_int_equal(restore(d, 2), -1);
  assert_restores(d, 1);
  assert_restores(d, 3);
  assert_restores(d, 4);
  preft_prefix_disk_stats st;
  preft_prefix_disk_get_stats(d, &st);
  assert_int_equal(st.entries, 3);
  assert_int_equal(st.evictions, 1);
  assert_true(st.bytes <= st.max_bytes);
  preft_prefix_disk_close(d);
  /* a smaller bound at the next start: the oldest go (1, 3, 4 were used in that order) */
  d = open_disk(dir, 2 * file, MODEL);
  preft_prefix_disk_get_stats(d, &st);
  assert_int_equal(st.entries, 2);
  assert_int_equal(restore(d, 1), -1);
  assert_restores(d, 4);
  preft_prefix_disk_close(d);
  /* a bound smaller than one entry: nothing is written, nothing breaks */
  d = open_disk(dir, file / 2, MODEL);
  spill(d, 9);
  preft_prefix_disk_flush(d);
  preft_prefix_disk_get_stats(d, &st);
  assert_int_equal(st.entries, 0);
  assert_int_equal(st.writes, 0);
  assert_int_equal(restore(d, 9), -1);
  preft_prefix_disk_close(d);
  free(dir);
}

static int count_files(const char *dir) {
  DIR *dd = opendir(dir);
  if (!dd) return -1;
  int n = 0;
  struct dirent *de;
  while ((de = readdir(dd)) != NULL) n += de->d_name[0] != '.' || strstr(de->d_name, ".tmp") != NULL;
  closedir(dd);
  return n;
}

static void failed_writes_drop_the_entry(void **s) {
  char *dir = test_tmpdir();
  preft_prefix_disk *d = open_disk(dir, 1 << 20, MODEL);
  /* a file size limit below one entry (ulimit -f): writes fail with EFBIG */
  struct rlimit old, small;
  assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
  small = old;
  small.rlim_cur = 100;
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
  spill(d, 1);
  spill(d, 2);
  preft_prefix_disk_flush(d);
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
  preft_prefix_disk_stats st;
  preft_prefix_disk_get_stats(d, &st);
  assert_int_equal(st.write_failures, 2);
  assert_int_equal(st.entries, 0);
  assert_int_equal(count_files(dir), 0); /* no half entry, no temp file */
  assert_int_equal(restore(d, 1), -1);
  /* the limit is gone: writing works again */
  spill(d, 3);
  preft_prefix_disk_flush(d);
  assert_restores(d, 3);
  /* the directory vanishes (a removed or read-only volume): dropped again */
  char *p3 = entry(dir, 3);
  assert_int_equal(unlink(p3), 0);
  assert_int_equal(rmdir(dir), 0);
  spill(d, 4);
  preft_prefix_disk_flush(d);
  preft_prefix_disk_get_stats(d, &st);
  assert_int_equal(st.write_failures, 3);
  assert_int_equal(restore(d, 4), -1);
  assert_int_equal(restore(d, 3), -1);
  preft_prefix_disk_close(d);
  free(p3);
  free(dir);
}

/* The shutdown is bounded (serve's --drain-timeout): the writer is held in
 * a write that does not return (its temp file is a FIFO nobody reads, so
 * opening it blocks); flush and close still return by the deadline, and the
 * blocks queued behind it are dropped, not written, once the write ends.
 * Without the deadline, close would wait for that write forever. */
static void shutdown_is_bounded_by_the_deadline(void **s) {
  (void)s;
  char *dir = test_tmpdir();
  preft_prefix_disk *d = open_disk(dir, 1 << 20, MODEL);
  char name[64];
  snprintf(name, sizeof name, ".%016llx.kvb.tmp.%ld", 0x77ULL, (long)getpid());
  char *fifo = preft_path_join(dir, name);
  assert_int_equal(mkfifo(fifo, 0644), 0);
  spill(d, 0x77); /* the writer blocks opening the FIFO */
  for (uint64_t k = 1; k <= 5; k++) spill(d, 0x100 + k);
  double bound = 0.3, t0 = preft_now();
  preft_prefix_disk_set_deadline(d, bound);
  preft_prefix_disk_flush(d);
  preft_prefix_disk_close(d); /* d is the writer's to free now */
  double dt = preft_now() - t0;
  assert_true(dt >= bound - 0.01);
  if (dt > bound + 2.0 * test_time_scale()) fail_msg("close took %.2f s for a %.2f s deadline", dt, bound);
  /* the write ends: read the FIFO to its end */
  int fd = open(fifo, O_RDONLY);
  assert_true(fd >= 0);
  char buf[4096];
  while (read(fd, buf, sizeof buf) > 0) {
  }
  close(fd);
  char *first = entry(dir, 0x77);
  for (int i = 0; i < 500 && access(first, F_OK) != 0; i++) usleep(10000);
  assert_int_equal(access(first, F_OK), 0); /* the write under way was finished */
  usleep(200000);
  for (uint64_t k = 1; k <= 5; k++) { /* the queued ones were dropped */
    char *p = entry(dir, 0x100 + k);
    assert_int_not_equal(access(p, F_OK), 0);
    free(p);
  }
  unlink(first);
  rmdir(dir);
  free(first);
  free(fifo);
  free(dir);
}

/* ---- through the engine ------------------------------------------------------------ */

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int tokens[64], n;
  bool done;
} collector;

static bool on_event(void *user, const preft_token_event *ev) {
  collector *c = user;
  pthread_mutex_lock(&c->mu);
  if (ev->token >= 0 && c->n < 64) c->tokens[c->n++] = ev->token;
  if (ev->finish != PREFT_FINISH_NONE) {
    c->done = true;
    pthread_cond_signal(&c->cv);
  }
  pthread_mutex_unlock(&c->mu);
  return true;
}

static preft_engine *make_engine(const char *dir, int kv_blocks) {
  char *mdir = test_data_path("models/llama-gqa-rope3");
  preft_model *m;
  preft_error err;
  if (preft_model_load(&m, mdir, &err) != 0) fail_msg("%s", err.msg);
  free(mdir);
  preft_engine_config cfg = {
      .threads = 1, .kv_cache_mb = 16, .kv_blocks = kv_blocks, .prefix_cache_dir = dir, .max_running = 4};
  preft_engine *e;
  if (preft_engine_create(&e, m, &cfg, &err) != 0) fail_msg("%s", err.msg);
  static const char *names[] = {"lora-qv-r4", "loreft-f3l3", "direft-f5l5-shared"};
  for (int i = 0; i < 3; i++) {
    char rel[128];
    snprintf(rel, sizeof rel, "adapters/%s", names[i]);
    char *adir = test_data_path(rel);
    if (preft_engine_add_adapter(e, names[i], adir, &err) != 0) fail_msg("%s", err.msg);
    free(adir);
  }
  return e;
}

typedef struct {
  const char *adapter;
  int mode;
} user_kind;

static const user_kind kinds[] = {{NULL, -1},
                                  {"lora-qv-r4", PREFT_MODE_ALL},
                                  {"lora-qv-r4", PREFT_MODE_PREFILL},
                                  {"loreft-f3l3", PREFT_MODE_PREFILL},
                                  {"direft-f5l5-shared", PREFT_MODE_ALL}};
enum { N_KINDS = 5, N_PROMPT = 70, MAX_NEW = 8 };

static void make_prompt(int seed, int *out) {
  for (int i = 0; i < N_PROMPT; i++)
    out[i] = (int)((7u + 31u * (unsigned)i + 101u * (unsigned)seed) % 250u) + 3;
}

/* Runs one request alone; returns its tokens in out and the engine's
 * stats after it. */
static void run_one(preft_engine *e, const user_kind *k, int seed, int *out, preft_engine_stats *after) {
  collector c = {.n = 0};
  pthread_mutex_init(&c.mu, NULL);
  pthread_cond_init(&c.cv, NULL);
  int prompt[N_PROMPT];
  make_prompt(seed, prompt);
  preft_request_params p = {.prompt = prompt,
                            .n_prompt = N_PROMPT,
                            .adapter = k->adapter,
                            .adapter_mode = k->mode,
                            .max_tokens = MAX_NEW};
  preft_error err;
  uint64_t id;
  if (preft_engine_submit(e, &p, on_event, &c, &id, &err) != PREFT_SUBMIT_OK) fail_msg("%s", err.msg);
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += (time_t)(60 * test_time_scale());
  pthread_mutex_lock(&c.mu);
  while (!c.done)
    if (pthread_cond_timedwait(&c.cv, &c.mu, &deadline) == ETIMEDOUT) fail_msg("no final event in time");
  pthread_mutex_unlock(&c.mu);
  assert_int_equal(c.n, MAX_NEW);
  memcpy(out, c.tokens, sizeof(int) * MAX_NEW);
  preft_engine_get_stats(e, after);
  pthread_mutex_destroy(&c.mu);
  pthread_cond_destroy(&c.cv);
}

static void check_same(const char *what, const user_kind *k, const int *got, const int *want) {
  for (int i = 0; i < MAX_NEW; i++)
    if (got[i] != want[i])
      fail_msg("%s (%s, mode %d): token %d is %d, cold it is %d", what, k->adapter ? k->adapter : "base",
               k->mode, i, got[i], want[i]);
}

static void disk_hits_after_restart_match_cold_and_memory_hits(void **s) {
  char *dir = test_tmpdir();
  int cold[N_KINDS][MAX_NEW], tok[MAX_NEW];
  preft_engine_stats st, before;
  preft_engine *e = make_engine(dir, 0);
  for (int k = 0; k < N_KINDS; k++) {
    preft_engine_get_stats(e, &before);
    run_one(e, &kinds[k], k, cold[k], &st);
    assert_int_equal(st.prefix_hit_tokens - before.prefix_hit_tokens, 0);
    run_one(e, &kinds[k], k, tok, &st); /* a memory hit: 4 full blocks of 16 */
    check_same("memory hit", &kinds[k], tok, cold[k]);
  }
  assert_int_equal(st.prefix_hit_tokens, N_KINDS * 64);
  assert_int_equal(st.prefix_disk_hit_tokens, 0);
  preft_engine_free(e); /* writes the cached blocks to disk */
  e = make_engine(dir, 0);
  for (int k = 0; k < N_KINDS; k++) {
    preft_engine_get_stats(e, &before);
    run_one(e, &kinds[k], k, tok, &st);
    check_same("disk hit after a restart", &kinds[k], tok, cold[k]);
    assert_int_equal(st.prefix_disk_hit_tokens - before.prefix_disk_hit_tokens, 64);
  }
  assert_int_equal(st.prefix_disk_hits, N_KINDS * 4);
  assert_int_equal(st.prefix_disk_corrupt, 0);
  /* the same tokens with another adapter, or mode, do not share blocks:
   * fresh prompts per kind above, so a wrong salt would have shown as a
   * hit count above 64 or wrong tokens; and a different prompt misses */
  preft_engine_get_stats(e, &before);
  run_one(e, &kinds[0], 100, tok, &st);
  assert_int_equal(st.prefix_disk_hit_tokens - before.prefix_disk_hit_tokens, 0);
  preft_engine_free(e);
  free(dir);
}

static void disk_hits_after_eviction_match_cold(void **s) {
  /* 12 blocks of 16 positions, less those lent to an adapter: the 4 blocks
   * of one user's prompt are evicted (spilled) by the next users' */
  char *dir = test_tmpdir();
  int cold[3][MAX_NEW], tok[MAX_NEW];
  preft_engine_stats st, before;
  preft_engine *e = make_engine(dir, 12);
  const user_kind *k = &kinds[2]; /* LoRA, prefill only */
  for (int u = 0; u < 3; u++) run_one(e, k, 10 + u, cold[u], &st);
  for (int round = 0; round < 2; round++)
    for (int u = 0; u < 3; u++) {
      preft_engine_get_stats(e, &before);
      run_one(e, k, 10 + u, tok, &st);
      check_same("returning user", k, tok, cold[u]);
      assert_int_equal(st.prefix_hit_tokens - before.prefix_hit_tokens, 64);
    }
  if (st.prefix_disk_hit_tokens == 0)
    fail_msg("no block came from disk: the cache was too large to test anything");
  assert_true(st.prefix_disk_writes + st.prefix_disk_hits > 0);
  preft_engine_free(e);
  free(dir);
}

/* Spill files damaged between runs are misses (truncated ones: see the
 * first test; they are also removed at start-up): the prefix is recomputed
 * and the tokens are still the cold run's. */
static void damaged_spill_files_are_recomputed(void **s) {
  char *dir = test_tmpdir();
  int cold[MAX_NEW], tok[MAX_NEW];
  preft_engine_stats st;
  preft_engine *e = make_engine(dir, 0);
  run_one(e, &kinds[1], 5, cold, &st);
  preft_engine_free(e);
  DIR *dd = opendir(dir);
  struct dirent *de;
  int n = 0;
  while ((de = readdir(dd)) != NULL) {
    if (de->d_name[0] == '.') continue;
    char *p = preft_path_join(dir, de->d_name);
    FILE *f = fopen(p, "r+b");
    fseek(f, 200, SEEK_SET);
    int c = fgetc(f);
    fseek(f, 200, SEEK_SET);
    fputc(c ^ 0x40, f);
    fclose(f);
    n++;
    free(p);
  }
  closedir(dd);
  assert_int_equal(n, 4);
  e = make_engine(dir, 0);
  run_one(e, &kinds[1], 5, tok, &st);
  check_same("after damaged spill files", &kinds[1], tok, cold);
  assert_int_equal(st.prefix_disk_hit_tokens, 0);
  assert_int_equal(st.prefix_disk_corrupt, 1); /* the first block's file: the chain stops there */
  preft_engine_free(e);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(blocks_round_trip_and_bad_files_are_misses),
      cmocka_unit_test(startup_skips_junk_and_other_models),
      cmocka_unit_test(size_bound_evicts_least_recently_used),
      cmocka_unit_test(failed_writes_drop_the_entry),
      cmocka_unit_test(shutdown_is_bounded_by_the_deadline),
      cmocka_unit_test(disk_hits_after_restart_match_cold_and_memory_hits),
      cmocka_unit_test(disk_hits_after_eviction_match_cold),
      cmocka_unit_test(damaged_spill_files_are_recomputed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
