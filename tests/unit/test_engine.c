/* test_engine.c - the serving engine against the single-sequence reference
 * path: greedy tokens of 32 concurrent requests with mixed adapters and
 * modes equal preft_generate's for each alone; the same under a KV cache so
 * small that sequences are preempted and recomputed; prefix caching reuses
 * blocks only for the same tokens and adapter; cancellation, stop requests
 * from the callback, a full queue, unknown adapters, over-long prompts and
 * adapter eviction behave as engine.h says; seeded sampled requests give the
 * same tokens and logprobs with 1 and 2 pool threads, and the tokens of the
 * sampler run serially on each alone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/file.h"
#include "base/timer.h"
#include "engine/engine.h"
#include "engine/generate.h"
#include "engine/grammar.h"
#include "model/llama.h"
#include "testutil.h"

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int tokens[256];
  float logprobs[256]; /* of each token */
  int n_top[256], top_ids[256][PREFT_MAX_TOP_LOGPROBS];
  float top_logprobs[256][PREFT_MAX_TOP_LOGPROBS];
  int n;
  preft_finish_reason finish;
  bool done;
  int stop_after; /* > 0: return false after this many tokens */
} collector;

static void collector_init(collector *c) {
  memset(c, 0, sizeof *c);
  pthread_mutex_init(&c->mu, NULL);
  pthread_cond_init(&c->cv, NULL);
}

static void collector_destroy(collector *c) {
  pthread_mutex_destroy(&c->mu);
  pthread_cond_destroy(&c->cv);
}

static bool on_event(void *user, const preft_token_event *ev) {
  collector *c = user;
  pthread_mutex_lock(&c->mu);
  if (ev->token >= 0 && c->n < 256) {
    c->logprobs[c->n] = ev->logprob;
    c->n_top[c->n] = ev->n_top;
    memcpy(c->top_ids[c->n], ev->top_ids, sizeof ev->top_ids);
    memcpy(c->top_logprobs[c->n], ev->top_logprobs, sizeof ev->top_logprobs);
    c->tokens[c->n++] = ev->token;
  }
  bool go_on = !(c->stop_after > 0 && c->n >= c->stop_after);
  if (ev->finish != PREFT_FINISH_NONE) {
    c->finish = ev->finish;
    c->done = true;
    pthread_cond_signal(&c->cv);
  }
  pthread_mutex_unlock(&c->mu);
  return go_on;
}

/* Waits, with c->mu held, until *flag is set or 60 s (times the sanitizer
 * scale) have passed; returns the flag. */
static bool wait_flag_locked(collector *c, const bool *flag) {
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += (time_t)(60 * test_time_scale());
  while (!*flag)
    if (pthread_cond_timedwait(&c->cv, &c->mu, &deadline) == ETIMEDOUT) return *flag;
  return true;
}

/* Waits for the request's final event; fails the test past the deadline. */
static void wait_done(collector *c) {
  pthread_mutex_lock(&c->mu);
  bool done = wait_flag_locked(c, &c->done);
  int n = c->n;
  pthread_mutex_unlock(&c->mu);
  if (!done)
    fail_msg("no final event within %.0f s (%d tokens so far): the engine hangs or lost the request",
             60 * test_time_scale(), n);
}

static preft_model *load_base(void) {
  char *dir = test_data_path("models/llama-gqa-rope3");
  preft_model *m;
  preft_error err;
  if (preft_model_load(&m, dir, &err) != 0) fail_msg("%s", err.msg);
  free(dir);
  return m;
}

static const char *adapter_names[] = {NULL, "lora-qv-r4", "lora-all7-rslora-patterns", "loreft-f3l3",
                                      "direft-f5l5-shared"};
enum { N_KINDS = 5, N_REQ = 32, MAX_NEW = 8 };

static void register_adapters(preft_engine *e) {
  preft_error err;
  for (int k = 1; k < N_KINDS; k++) {
    char rel[128];
    snprintf(rel, sizeof rel, "adapters/%s", adapter_names[k]);
    char *dir = test_data_path(rel);
    if (preft_engine_add_adapter(e, adapter_names[k], dir, &err) != 0) fail_msg("%s", err.msg);
    free(dir);
  }
}

/* Prompt r: a slice of a fixed id sequence, 3..40 tokens long. */
static int make_prompt(int r, int *out) {
  int n = 3 + (r * 7) % 38;
  for (int i = 0; i < n; i++) out[i] = (1 + 37 * (i + r) + 11 * r) % 256;
  return n;
}

typedef struct {
  int *out;
  int n;
} token_sink;

static bool sink_token(void *ctx, int token) {
  token_sink *s = ctx;
  s->out[s->n++] = token;
  return true;
}

static int reference_run(const preft_model *m, int r, int *out) {
  int prompt[64], n = make_prompt(r, prompt), kind = r % N_KINDS, count;
  preft_adapter *a = NULL;
  preft_error err;
  if (adapter_names[kind]) {
    char rel[128];
    snprintf(rel, sizeof rel, "adapters/%s", adapter_names[kind]);
    char *dir = test_data_path(rel);
    if (preft_adapter_load(&a, dir, NULL, &m->cfg, &err) != 0) fail_msg("%s", err.msg);
    free(dir);
  }
  preft_generate_opts o = {.max_new_tokens = MAX_NEW, .adapter = a};
  if (a) o.adapter_mode = (r / N_KINDS) % 2 ? PREFT_MODE_PREFILL : PREFT_MODE_ALL;
  token_sink sink = {out, 0};
  if (preft_generate(m, NULL, prompt, n, &o, sink_token, &sink, &count, &err) != 0) fail_msg("%s", err.msg);
  preft_adapter_free(a);
  return sink.n;
}

/* A request whose callback holds the engine thread at its first token until
 * the test releases it: nothing is scheduled meanwhile. */
typedef struct {
  collector c;
  bool held, released;
} gate;

static bool hold_at_first_token(void *user, const preft_token_event *ev) {
  gate *g = user;
  pthread_mutex_lock(&g->c.mu);
  if (ev->token >= 0 && !g->held) {
    g->held = true;
    pthread_cond_broadcast(&g->c.cv);
    wait_flag_locked(&g->c, &g->released); /* past the deadline the test has failed already */
  }
  pthread_mutex_unlock(&g->c.mu);
  return on_event(&g->c, ev); /* last: after the final event the test may free g */
}

/* Submits p with hold_at_first_token and returns once the engine thread is
 * held in its callback (fails the test past the deadline). */
static void hold_engine(preft_engine *e, const preft_request_params *p, gate *g) {
  preft_error err;
  uint64_t id;
  collector_init(&g->c);
  assert_int_equal(preft_engine_submit(e, p, hold_at_first_token, g, &id, &err), PREFT_SUBMIT_OK);
  pthread_mutex_lock(&g->c.mu);
  bool held = wait_flag_locked(&g->c, &g->held);
  pthread_mutex_unlock(&g->c.mu);
  if (!held) fail_msg("the holding request produced no token within the deadline");
}

/* Lets the engine thread held by hold_engine go on. */
static void release_engine(gate *g) {
  pthread_mutex_lock(&g->c.mu);
  g->released = true;
  pthread_cond_broadcast(&g->c.cv);
  pthread_mutex_unlock(&g->c.mu);
}

/* N_REQ requests over the adapters, each checked against its run alone.
 * With preemptions non-NULL the adapters are loaded first and the requests
 * all queued while a short base-model request holds the engine thread, so
 * that they are admitted together however fast the engine and the loader
 * run (the cache pressure the caller wants does not depend on the
 * machine's load); *preemptions is how many happened. */
static void run_mixed_batch(const preft_engine_config *cfg, long *preemptions) {
  preft_model *ref = load_base();
  preft_engine *e;
  preft_error err;
  if (preft_engine_create(&e, load_base(), cfg, &err) != 0) fail_msg("%s", err.msg);
  register_adapters(e);
  gate g = {0};
  int hold_prompt[] = {1, 2, 3};
  if (preemptions) {
    assert_int_equal(preft_engine_check_adapters(e), 0); /* loaded now: none waits for the loader */
    preft_request_params hp = {.prompt = hold_prompt, .n_prompt = 3, .adapter_mode = -1, .max_tokens = 2};
    hold_engine(e, &hp, &g);
  }
  collector *c = calloc(N_REQ, sizeof *c);
  for (int r = 0; r < N_REQ; r++) {
    collector_init(&c[r]);
    int prompt[64], n = make_prompt(r, prompt), kind = r % N_KINDS;
    preft_request_params p = {
        .prompt = prompt, .n_prompt = n, .adapter = adapter_names[kind], .max_tokens = MAX_NEW};
    p.adapter_mode = adapter_names[kind] ? ((r / N_KINDS) % 2 ? PREFT_MODE_PREFILL : PREFT_MODE_ALL) : -1;
    uint64_t id;
    if (preft_engine_submit(e, &p, on_event, &c[r], &id, &err) != PREFT_SUBMIT_OK) fail_msg("%s", err.msg);
  }
  if (preemptions) {
    release_engine(&g);
    wait_done(&g.c);
    collector_destroy(&g.c);
  }
  for (int r = 0; r < N_REQ; r++) {
    wait_done(&c[r]);
    int want[64], nw = reference_run(ref, r, want);
    assert_int_equal(c[r].finish, PREFT_FINISH_LENGTH);
    assert_int_equal(c[r].n, nw);
    for (int i = 0; i < nw; i++)
      if (c[r].tokens[i] != want[i])
        fail_msg("request %d (%s): token %d is %d, alone it is %d", r,
                 adapter_names[r % N_KINDS] ? adapter_names[r % N_KINDS] : "base", i, c[r].tokens[i],
                 want[i]);
    collector_destroy(&c[r]);
  }
  preft_engine_stats st;
  preft_engine_get_stats(e, &st);
  assert_int_equal(st.requests_ok, N_REQ + (preemptions ? 1 : 0));
  assert_int_equal(st.running, 0);
  if (preemptions) *preemptions = st.preemptions;
  free(c);
  preft_engine_free(e);
  preft_model_free(ref);
}

static void mixed_adapter_requests_match_each_alone(void **s) {
  preft_engine_config cfg = {.threads = 2, .kv_cache_mb = 64, .max_step_tokens = 64};
  run_mixed_batch(&cfg, NULL);
}

static void preempted_requests_are_recomputed_exactly(void **s) {
  /* 40 blocks of 16 positions, less the blocks lent to the four adapters
   * in use (about 18), cannot hold 16 running requests of up to 48 positions */
  preft_engine_config cfg = {
      .threads = 2, .kv_blocks = 40, .max_context = 64, .max_step_tokens = 128, .max_running = 16};
  long preemptions = 0;
  run_mixed_batch(&cfg, &preemptions);
  if (preemptions == 0)
    fail_msg("the cache was large enough: no preemption happened, the test tests nothing");
}

static void prefix_cache_reuses_blocks_of_same_prompt_and_adapter(void **s) {
  preft_engine *e;
  preft_error err;
  preft_engine_config cfg = {.threads = 1, .kv_cache_mb = 16};
  if (preft_engine_create(&e, load_base(), &cfg, &err) != 0) fail_msg("%s", err.msg);
  register_adapters(e);
  int prompt[40];
  for (int i = 0; i < 40; i++) prompt[i] = (i * 13 + 5) % 256;
  const char *order[] = {NULL, NULL, "lora-qv-r4", "lora-qv-r4"};
  long want_hits[] = {0, 32, 0, 32}; /* 40 tokens = 2 full blocks reusable */
  int first_tokens[4][MAX_NEW];
  for (int k = 0; k < 4; k++) {
    collector c;
    collector_init(&c);
    preft_engine_stats before, after;
    preft_engine_get_stats(e, &before);
    preft_request_params p = {
        .prompt = prompt, .n_prompt = 40, .adapter = order[k], .adapter_mode = -1, .max_tokens = MAX_NEW};
    uint64_t id;
    assert_int_equal(preft_engine_submit(e, &p, on_event, &c, &id, &err), PREFT_SUBMIT_OK);
    wait_done(&c);
    preft_engine_get_stats(e, &after);
    assert_int_equal(after.prefix_hit_tokens - before.prefix_hit_tokens, want_hits[k]);
    memcpy(first_tokens[k], c.tokens, sizeof first_tokens[k]);
    collector_destroy(&c);
  }
  assert_memory_equal(first_tokens[0], first_tokens[1], sizeof first_tokens[0]);
  assert_memory_equal(first_tokens[2], first_tokens[3], sizeof first_tokens[0]);
  preft_engine_free(e);
}

/* A request that cancels itself: when its cancel_at-th token arrives, its
 * callback (on the engine thread, between steps) cancels it, so no further
 * token can follow. */
typedef struct {
  collector c;
  preft_engine *e;
  int cancel_at, seen; /* seen: engine thread only */
} self_canceller;

static bool cancel_at_nth_token(void *user, const preft_token_event *ev) {
  self_canceller *sc = user;
  if (ev->token >= 0 && ++sc->seen == sc->cancel_at) preft_engine_cancel(sc->e, ev->request);
  return on_event(&sc->c, ev); /* last: after the final event the test may free sc */
}

static void cancel_and_callback_stop_end_requests(void **s) {
  preft_engine *e;
  preft_error err;
  preft_engine_config cfg = {.threads = 1, .kv_cache_mb = 16};
  if (preft_engine_create(&e, load_base(), &cfg, &err) != 0) fail_msg("%s", err.msg);
  int prompt[4] = {1, 2, 3, 4};
  preft_request_params p = {.prompt = prompt, .n_prompt = 4, .adapter_mode = -1, .max_tokens = 200};
  uint64_t id;

  /* running: cancelled from its own callback at the 3rd token -> exactly 3 tokens, then CANCELLED */
  self_canceller a = {.e = e, .cancel_at = 3};
  collector_init(&a.c);
  assert_int_equal(preft_engine_submit(e, &p, cancel_at_nth_token, &a, &id, &err), PREFT_SUBMIT_OK);
  wait_done(&a.c);
  assert_int_equal(a.c.finish, PREFT_FINISH_CANCELLED);
  assert_int_equal(a.c.n, 3);

  /* the callback asks to stop at the 3rd token -> exactly 3 tokens, then STOP */
  collector b;
  collector_init(&b);
  b.stop_after = 3;
  assert_int_equal(preft_engine_submit(e, &p, on_event, &b, &id, &err), PREFT_SUBMIT_OK);
  wait_done(&b);
  assert_int_equal(b.finish, PREFT_FINISH_STOP);
  assert_int_equal(b.n, 3);

  /* waiting: submitted and cancelled while the engine thread is held inside
   * another request's callback, so it is never scheduled -> no token, CANCELLED */
  gate g = {0};
  p.max_tokens = 4;
  hold_engine(e, &p, &g);
  collector w;
  collector_init(&w);
  uint64_t idw;
  assert_int_equal(preft_engine_submit(e, &p, on_event, &w, &idw, &err), PREFT_SUBMIT_OK);
  preft_engine_cancel(e, idw);
  release_engine(&g);
  wait_done(&w);
  wait_done(&g.c);
  assert_int_equal(w.finish, PREFT_FINISH_CANCELLED);
  assert_int_equal(w.n, 0);
  assert_int_equal(g.c.finish, PREFT_FINISH_LENGTH);
  assert_int_equal(g.c.n, 4);

  preft_engine_cancel(e, idw); /* already finished: harmless */
  preft_engine_stats st;
  preft_engine_get_stats(e, &st);
  assert_int_equal(st.requests_cancelled, 2);
  assert_int_equal(st.requests_ok, 2);
  assert_int_equal(st.running, 0);
  assert_int_equal(st.waiting, 0);
  assert_int_equal(st.kv_blocks_used, st.kv_blocks_cached); /* only cached prefix blocks remain */
  collector_destroy(&a.c);
  collector_destroy(&b);
  collector_destroy(&g.c);
  collector_destroy(&w);
  preft_engine_free(e);
}

static void bad_requests_are_refused_with_reasons(void **s) {
  preft_engine *e;
  preft_error err;
  preft_engine_config cfg = {.threads = 1, .kv_cache_mb = 16, .max_queue = 2, .max_context = 64};
  if (preft_engine_create(&e, load_base(), &cfg, &err) != 0) fail_msg("%s", err.msg);
  int prompt[80] = {1};
  uint64_t id;
  preft_request_params p = {.prompt = prompt, .n_prompt = 64, .adapter_mode = -1, .max_tokens = 4};
  assert_int_equal(preft_engine_submit(e, &p, on_event, NULL, &id, &err), PREFT_SUBMIT_INVALID);
  assert_non_null(strstr(err.msg, "context"));
  p.n_prompt = 4;
  p.adapter = "nope";
  assert_int_equal(preft_engine_submit(e, &p, on_event, NULL, &id, &err), PREFT_SUBMIT_NO_ADAPTER);
  assert_non_null(strstr(err.msg, "nope"));
  p.adapter = NULL;
  prompt[1] = 999;
  assert_int_equal(preft_engine_submit(e, &p, on_event, NULL, &id, &err), PREFT_SUBMIT_INVALID);
  assert_non_null(strstr(err.msg, "vocabulary"));
  assert_int_not_equal(preft_engine_add_adapter(e, "x", "/nonexistent", &err), 0);
  preft_engine_free(e);
}

static void adapter_bytes(void *ctx, const preft_adapter_info *a) { *(size_t *)ctx = a->bytes; }

/* lora_dtype holds an adapter handed over in memory at 16 bits too (the
 * loaded ones: test_adapters, e2e_server_lora_dtype); a type it does not
 * offer is refused naming the field. */
static void lora_dtype_holds_adapters_given_in_memory_at_16_bits(void **s) {
  (void)s;
  preft_engine *e;
  preft_error err;
  preft_model *m = load_base();
  preft_engine_config cfg = {.threads = 1, .kv_cache_mb = 16, .lora_dtype = "float32"};
  assert_int_not_equal(preft_engine_create(&e, m, &cfg, &err), 0);
  assert_non_null(strstr(err.msg, "lora_dtype"));
  cfg.lora_dtype = "bfloat16";
  if (preft_engine_create(&e, m, &cfg, &err) != 0) fail_msg("%s", err.msg);
  preft_adapter *a = preft_adapter_random(PREFT_ADAPTER_LORA, &m->cfg, 4, PREFT_MODE_ALL, PREFT_F32, 1);
  const size_t bytes_f32 = a->bytes;
  if (preft_engine_add_loaded_adapter(e, "m", a, &err) != 0) fail_msg("%s", err.msg);
  size_t held = 0;
  assert_true(preft_engine_adapter_info(e, "m", adapter_bytes, &held));
  if (!(held > 0 && held < bytes_f32 * 3 / 4)) fail_msg("held %zu bytes, FP32 %zu", held, bytes_f32);
  preft_engine_free(e);
}

static void adapters_beyond_the_loaded_limit_are_evicted(void **s) {
  preft_engine *e;
  preft_error err;
  preft_engine_config cfg = {.threads = 1, .kv_cache_mb = 16, .max_loaded_adapters = 1};
  if (preft_engine_create(&e, load_base(), &cfg, &err) != 0) fail_msg("%s", err.msg);
  register_adapters(e);
  int prompt[6] = {1, 5, 9, 13, 17, 21};
  int first[2][MAX_NEW];
  for (int round = 0; round < 2; round++) {
    for (int k = 1; k < N_KINDS; k++) {
      collector c;
      collector_init(&c);
      preft_request_params p = {.prompt = prompt,
                                .n_prompt = 6,
                                .adapter = adapter_names[k],
                                .adapter_mode = -1,
                                .max_tokens = MAX_NEW};
      uint64_t id;
      assert_int_equal(preft_engine_submit(e, &p, on_event, &c, &id, &err), PREFT_SUBMIT_OK);
      wait_done(&c);
      assert_int_equal(c.finish, PREFT_FINISH_LENGTH);
      if (k == 1) memcpy(first[round], c.tokens, sizeof first[round]);
      collector_destroy(&c);
      preft_engine_stats st;
      preft_engine_get_stats(e, &st);
      assert_true(st.adapters_loaded <= 1);
      assert_int_equal(st.adapters_registered, N_KINDS - 1);
    }
  }
  assert_memory_equal(first[0], first[1], sizeof first[0]); /* reloaded adapter, same output */
  assert_int_equal(preft_engine_remove_adapter(e, "lora-qv-r4", &err), 0);
  assert_false(preft_engine_has_adapter(e, "lora-qv-r4"));
  char *bad = test_data_path("adapters/bad/lora-dora");
  assert_int_not_equal(preft_engine_load_adapter(e, "dora", bad, &err), 0);
  assert_non_null(strstr(err.msg, "use_dora"));
  assert_false(preft_engine_has_adapter(e, "dora"));
  free(bad);
  preft_engine_free(e);
}

/* The highest adapters_loaded any token event saw (sampled from the
 * callback, which runs with the engine's lock released). */
typedef struct {
  collector c;
  preft_engine *e;
  int *max_loaded; /* shared by the requests; written on the engine thread only */
} cap_probe;

static bool probe_loaded(void *user, const preft_token_event *ev) {
  cap_probe *p = user;
  preft_engine_stats st;
  preft_engine_get_stats(p->e, &st);
  if (st.adapters_loaded > *p->max_loaded) *p->max_loaded = st.adapters_loaded;
  return on_event(&p->c, ev);
}

static void the_loaded_adapter_cap_is_hard_under_concurrent_requests(void **s) {
  preft_engine *e;
  preft_error err;
  preft_engine_config cfg = {.threads = 1, .kv_cache_mb = 16, .max_loaded_adapters = 2};
  if (preft_engine_create(&e, load_base(), &cfg, &err) != 0) fail_msg("%s", err.msg);
  register_adapters(e);
  enum { ROUNDS = 3, N = ROUNDS * (N_KINDS - 1) };
  int prompt[6] = {1, 5, 9, 13, 17, 21}, max_loaded = 0;
  cap_probe req[N];
  for (int i = 0; i < N; i++) { /* all at once: every adapter wanted while others run */
    collector_init(&req[i].c);
    req[i].e = e;
    req[i].max_loaded = &max_loaded;
    preft_request_params p = {.prompt = prompt,
                              .n_prompt = 6,
                              .adapter = adapter_names[1 + i % (N_KINDS - 1)],
                              .adapter_mode = -1,
                              .max_tokens = MAX_NEW};
    uint64_t id;
    assert_int_equal(preft_engine_submit(e, &p, probe_loaded, &req[i], &id, &err), PREFT_SUBMIT_OK);
  }
  for (int i = 0; i < N; i++) wait_done(&req[i].c);
  preft_engine_stats st;
  preft_engine_get_stats(e, &st);
  if (max_loaded > 2 || st.adapters_loaded > 2)
    fail_msg("cap 2: %d adapters loaded at once, %d when idle", max_loaded, st.adapters_loaded);
  assert_int_equal(max_loaded, 2);
  for (int i = 0; i < N; i++) {
    assert_int_equal(req[i].c.finish, PREFT_FINISH_LENGTH);
    /* reloaded adapters give the same tokens as the first round's */
    assert_memory_equal(req[i].c.tokens, req[i % (N_KINDS - 1)].c.tokens, sizeof(int) * MAX_NEW);
  }
  for (int i = 0; i < N; i++) collector_destroy(&req[i].c);
  preft_engine_free(e);
}

typedef struct {
  int n;
  const char *error_of; /* the adapter whose error to copy */
  char error[1024];
} unavailable_list;

static void collect_unavailable(void *ctx, const preft_adapter_info *a) {
  unavailable_list *u = ctx;
  if (!a->error) return;
  u->n++;
  if (!strcmp(a->name, u->error_of)) snprintf(u->error, sizeof u->error, "%s", a->error);
}

static void a_broken_adapter_is_unavailable_with_its_error(void **s) {
  preft_engine *e;
  preft_error err;
  preft_engine_config cfg = {.threads = 1, .kv_cache_mb = 16, .max_loaded_adapters = 2};
  if (preft_engine_create(&e, load_base(), &cfg, &err) != 0) fail_msg("%s", err.msg);
  char *bad = test_data_path("adapters/lora-qwen2-bf16"); /* another model's shape */
  assert_int_equal(preft_engine_add_adapter(e, "broken", bad, &err), 0);
  int prompt[3] = {1, 2, 3};
  preft_request_params p = {
      .prompt = prompt, .n_prompt = 3, .adapter = "broken", .adapter_mode = -1, .max_tokens = 2};
  uint64_t id;
  /* found on first use: the request's final event says the adapter is unavailable */
  collector c;
  collector_init(&c);
  assert_int_equal(preft_engine_submit(e, &p, on_event, &c, &id, &err), PREFT_SUBMIT_OK);
  wait_done(&c);
  assert_int_equal(c.finish, PREFT_FINISH_ERROR);
  collector_destroy(&c);
  /* and then refused at submission, with the load's error, until the backoff passes */
  assert_int_equal(preft_engine_submit(e, &p, on_event, NULL, &id, &err), PREFT_SUBMIT_ADAPTER_UNAVAILABLE);
  assert_non_null(strstr(err.msg, "lora-qwen2-bf16"));
  /* found by the start-up check: one of three unavailable, the others loaded */
  register_adapters(e);
  assert_int_equal(preft_engine_remove_adapter(e, "broken", &err), 0);
  assert_int_equal(preft_engine_add_adapter(e, "broken2", bad, &err), 0);
  assert_int_equal(preft_engine_check_adapters(e), 1);
  unavailable_list u = {.error_of = "broken2"};
  preft_engine_each_adapter(e, collect_unavailable, &u);
  assert_int_equal(u.n, 1);
  assert_non_null(strstr(u.error, "lora-qwen2-bf16"));
  preft_engine_stats st;
  preft_engine_get_stats(e, &st);
  /* within the cap (a failed load may have taken an evicted one's place) */
  assert_true(st.adapters_loaded >= 1 && st.adapters_loaded <= 2);
  p.adapter = "broken2";
  assert_int_equal(preft_engine_submit(e, &p, on_event, NULL, &id, &err), PREFT_SUBMIT_ADAPTER_UNAVAILABLE);
  free(bad);
  preft_engine_free(e);
}

/* The first request runs slowly (its callback sleeps 2 ms a token) while
 * the others wait for its only slot; its final event records how many
 * adapters were loaded by then. */
typedef struct {
  collector c;
  preft_engine *e;
  long loads_at_end;
} prefetch_probe;

static bool slow_first(void *user, const preft_token_event *ev) {
  prefetch_probe *p = user;
  usleep(2000);
  if (ev->finish != PREFT_FINISH_NONE) {
    preft_engine_stats st;
    preft_engine_get_stats(p->e, &st);
    p->loads_at_end = st.adapter_loads;
  }
  return on_event(&p->c, ev);
}

/* With one slot, the first request runs while three wait: with prefetch
 * their adapters load meanwhile; with no_adapter_prefetch (the switch a
 * measurement uses) only at their admission. */
static void run_queued_adapters(bool no_prefetch) {
  preft_engine *e;
  preft_error err;
  /* one sequence at a time: the other three wait in the queue */
  preft_engine_config cfg = {.threads = 1,
                             .kv_cache_mb = 16,
                             .max_running = 1,
                             .max_loaded_adapters = 4,
                             .no_adapter_prefetch = no_prefetch};
  if (preft_engine_create(&e, load_base(), &cfg, &err) != 0) fail_msg("%s", err.msg);
  register_adapters(e);
  int prompt[6] = {1, 5, 9, 13, 17, 21};
  prefetch_probe first = {.e = e};
  collector_init(&first.c);
  preft_request_params p = {
      .prompt = prompt, .n_prompt = 6, .adapter = adapter_names[1], .adapter_mode = -1, .max_tokens = 250};
  uint64_t id;
  assert_int_equal(preft_engine_submit(e, &p, slow_first, &first, &id, &err), PREFT_SUBMIT_OK);
  /* the others are queued once the first runs (its adapter loaded, the slot taken) */
  for (;;) {
    pthread_mutex_lock(&first.c.mu);
    int n = first.c.n;
    pthread_mutex_unlock(&first.c.mu);
    if (n > 0) break;
    usleep(1000);
  }
  collector rest[N_KINDS - 2];
  for (int k = 2; k < N_KINDS; k++) {
    collector_init(&rest[k - 2]);
    p.adapter = adapter_names[k];
    p.max_tokens = MAX_NEW;
    assert_int_equal(preft_engine_submit(e, &p, on_event, &rest[k - 2], &id, &err), PREFT_SUBMIT_OK);
  }
  wait_done(&first.c);
  for (int k = 0; k < N_KINDS - 2; k++) {
    wait_done(&rest[k]);
    assert_int_equal(rest[k].finish, PREFT_FINISH_LENGTH);
    collector_destroy(&rest[k]);
  }
  if (no_prefetch && first.loads_at_end != 1)
    fail_msg("%ld adapters loaded while the first request ran with prefetch off; expected its own only",
             first.loads_at_end);
  if (!no_prefetch && first.loads_at_end < N_KINDS - 1)
    fail_msg(
        "only %ld of %d adapters loaded while the first request ran (%d tokens): queued requests' adapters "
        "were not prefetched",
        first.loads_at_end, N_KINDS - 1, first.c.n);
  preft_engine_stats st;
  preft_engine_get_stats(e, &st);
  assert_int_equal(st.adapter_prefetches, no_prefetch ? 0 : N_KINDS - 2);
  collector_destroy(&first.c);
  preft_engine_free(e);
}

static void adapters_of_queued_requests_load_while_earlier_ones_run(void **s) {
  (void)s;
  run_queued_adapters(false);
}

static void without_prefetch_queued_adapters_load_at_admission(void **s) {
  (void)s;
  run_queued_adapters(true);
}

/* Request r of the sampling test: its own seed and mix of filters. */
static preft_sampling sampled_params(int r) {
  preft_sampling sp = {.temperature = 0.6f + 0.1f * (float)(r % 5),
                       .top_k = r % 3 == 0 ? 0 : 40,
                       .top_p = r % 2 ? 0.9f : 1.0f,
                       .min_p = r % 4 == 1 ? 0.05f : 0.0f,
                       .seed = 1000u + (uint64_t)r};
  return sp;
}

/* Twelve seeded sampled requests, some with logprobs, all starting in one
 * step: the same tokens and logprobs with 1 and 2 pool threads, and each
 * request's tokens those of preft_generate (one sampler, serially) alone. */
static void seeded_sampling_is_the_same_for_any_thread_count(void **s) {
  enum { N = 12, NEW = 16 };
  collector *c[2];
  for (int t = 0; t < 2; t++) {
    preft_engine *e;
    preft_error err;
    preft_engine_config cfg = {.threads = t + 1, .kv_cache_mb = 16};
    if (preft_engine_create(&e, load_base(), &cfg, &err) != 0) fail_msg("%s", err.msg);
    c[t] = calloc(N, sizeof *c[t]);
    /* requests submitted while the engine thread is held all start in one
     * step: batches then do not depend on timing, nor the logits' last bits */
    gate g = {0};
    int one_token = 7;
    uint64_t id;
    preft_request_params blocker = {.prompt = &one_token, .n_prompt = 1, .adapter_mode = -1, .max_tokens = 1};
    hold_engine(e, &blocker, &g);
    for (int r = 0; r < N; r++) {
      collector_init(&c[t][r]);
      int prompt[64], n = make_prompt(r, prompt);
      preft_request_params p = {.prompt = prompt,
                                .n_prompt = n,
                                .adapter_mode = -1,
                                .max_tokens = NEW,
                                .sampling = sampled_params(r),
                                .logprobs = r % 4 * 3};
      assert_int_equal(preft_engine_submit(e, &p, on_event, &c[t][r], &id, &err), PREFT_SUBMIT_OK);
    }
    release_engine(&g);
    for (int r = 0; r < N; r++) wait_done(&c[t][r]);
    wait_done(&g.c);
    preft_engine_free(e);
    collector_destroy(&g.c);
  }
  preft_model *ref = load_base();
  for (int r = 0; r < N; r++) {
    collector *one = &c[0][r], *two = &c[1][r];
    assert_int_equal(one->n, NEW);
    assert_int_equal(two->n, NEW);
    assert_memory_equal(one->tokens, two->tokens, sizeof one->tokens);
    assert_memory_equal(one->logprobs, two->logprobs, sizeof one->logprobs);
    assert_memory_equal(one->n_top, two->n_top, sizeof one->n_top);
    assert_memory_equal(one->top_ids, two->top_ids, sizeof one->top_ids);
    assert_memory_equal(one->top_logprobs, two->top_logprobs, sizeof one->top_logprobs);
    for (int i = 0; i < NEW; i++) assert_int_equal(one->n_top[i], r % 4 * 3);
    /* the serial path: one sequence, one sampler, one row at a time */
    int prompt[64], n = make_prompt(r, prompt), want[NEW], count;
    preft_generate_opts o = {.max_new_tokens = NEW, .sampling = sampled_params(r)};
    token_sink sink = {want, 0};
    preft_error err;
    if (preft_generate(ref, NULL, prompt, n, &o, sink_token, &sink, &count, &err) != 0)
      fail_msg("%s", err.msg);
    assert_int_equal(sink.n, NEW);
    for (int i = 0; i < NEW; i++)
      if (one->tokens[i] != want[i])
        fail_msg("request %d: token %d is %d, the serial sampler gives %d", r, i, one->tokens[i], want[i]);
    collector_destroy(one);
    collector_destroy(two);
  }
  free(c[0]);
  free(c[1]);
  preft_model_free(ref);
}

/* Adapters' memory comes out of the KV cache (issue 20, item 12): a loaded
 * adapter is lent ceil(bytes / block) KV blocks, and when requests need
 * those blocks the idle adapter is evicted at once (before anyone is
 * preempted); the requests' tokens are those of each alone. */
static void adapters_take_their_memory_from_the_kv_cache(void **s) {
  enum { BLOCKS = 40, BLOCK_BYTES = 8192, N = 10, PROMPT = 52, NEW = 8 };
  /* 40 blocks of 16 positions; each request below needs 4 (60 positions), ten need all 40 */
  preft_engine_config cfg = {
      .threads = 1, .kv_blocks = BLOCKS, .max_context = 64, .max_step_tokens = 512, .max_running = 16};
  preft_model *ref = load_base();
  preft_engine *e;
  preft_error err;
  if (preft_engine_create(&e, load_base(), &cfg, &err) != 0) fail_msg("%s", err.msg);
  char *dir = test_data_path("adapters/lora-all7-rslora-patterns");
  if (preft_engine_add_adapter(e, "big", dir, &err) != 0) fail_msg("%s", err.msg);
  free(dir);
  collector c0;
  collector_init(&c0);
  int prompt[N][PROMPT];
  for (int r = 0; r < N; r++)
    for (int i = 0; i < PROMPT; i++) prompt[r][i] = (1 + 37 * (i + r) + 11 * r) % 256;
  preft_request_params p = {.prompt = prompt[0], .n_prompt = 8, .adapter = "big", .max_tokens = 4};
  uint64_t id;
  if (preft_engine_submit(e, &p, on_event, &c0, &id, &err) != PREFT_SUBMIT_OK) fail_msg("%s", err.msg);
  wait_done(&c0);
  collector_destroy(&c0);
  preft_engine_stats st;
  preft_engine_get_stats(e, &st);
  assert_int_equal(st.adapters_loaded, 1);
  assert_true(st.adapter_bytes > 4 * BLOCK_BYTES);
  assert_int_equal(st.kv_blocks_adapters, (int)((st.adapter_bytes + BLOCK_BYTES - 1) / BLOCK_BYTES));
  assert_int_equal(st.kv_blocks_free + st.kv_blocks_used + st.kv_blocks_adapters, BLOCKS);

  collector *c = calloc(N, sizeof *c);
  for (int r = 0; r < N; r++) {
    collector_init(&c[r]);
    preft_request_params q = {.prompt = prompt[r], .n_prompt = PROMPT, .max_tokens = NEW};
    if (preft_engine_submit(e, &q, on_event, &c[r], &id, &err) != PREFT_SUBMIT_OK) fail_msg("%s", err.msg);
  }
  for (int r = 0; r < N; r++) {
    wait_done(&c[r]);
    int want[NEW], count;
    token_sink sink = {want, 0};
    preft_generate_opts o = {.max_new_tokens = NEW};
    if (preft_generate(ref, NULL, prompt[r], PROMPT, &o, sink_token, &sink, &count, &err) != 0)
      fail_msg("%s", err.msg);
    assert_int_equal(c[r].finish, PREFT_FINISH_LENGTH);
    assert_int_equal(c[r].n, NEW);
    assert_memory_equal(c[r].tokens, want, sizeof want);
    collector_destroy(&c[r]);
  }
  free(c);
  preft_engine_get_stats(e, &st);
  assert_int_equal(st.adapters_loaded, 0); /* it gave its blocks to the requests */
  assert_int_equal(st.adapter_evictions, 1);
  assert_int_equal(st.kv_blocks_adapters, 0);
  assert_int_equal(st.preemptions, 0); /* the idle adapter went first */
  preft_engine_free(e);
  preft_model_free(ref);
}

/* A grammar-constrained request beside free ones in the same steps: the
 * free ones give what they give alone; the constrained one takes, at each
 * step, the best token the grammar allows (checked against the model's
 * logits of its own output), and ends when the grammar is complete. The
 * vocabulary's tokens are taken as single bytes here. */
static void constrained_and_free_requests_share_a_batch(void **s) {
  (void)s;
  preft_model *ref = load_base();
  int vocab = ref->cfg.vocab;
  char bytes[256][1];
  const char *toks[256];
  size_t lens[256];
  for (int i = 0; i < vocab && i < 256; i++) {
    bytes[i][0] = (char)i;
    toks[i] = bytes[i];
    lens[i] = i == 0 ? 0 : 1; /* token 0 stands for nothing */
  }
  preft_token_trie trie;
  preft_grammar *g;
  preft_error err;
  assert_int_equal(preft_token_trie_build(&trie, vocab, toks, lens, &err), 0);
  assert_int_equal(preft_grammar_parse("root ::= [a-e]{3} (\"!\" | \"?\")\n", &g, &err), 0);
  preft_engine_config cfg = {.threads = 2, .kv_cache_mb = 64, .max_step_tokens = 64};
  preft_engine *e;
  if (preft_engine_create(&e, load_base(), &cfg, &err) != 0) fail_msg("%s", err.msg);
  enum { N = 4 }; /* requests 0 and 2 constrained */
  collector c[N];
  int prompts[N][64], np[N];
  for (int r = 0; r < N; r++) {
    collector_init(&c[r]);
    np[r] = make_prompt(r * N_KINDS, prompts[r]); /* base-model prompts of run_mixed_batch */
    preft_request_params p = {
        .prompt = prompts[r], .n_prompt = np[r], .adapter_mode = -1, .max_tokens = MAX_NEW};
    if (r % 2 == 0) p.constraint = preft_gmatch_new(g, &trie, NULL, 0);
    uint64_t id;
    if (preft_engine_submit(e, &p, on_event, &c[r], &id, &err) != PREFT_SUBMIT_OK) fail_msg("%s", err.msg);
  }
  for (int r = 0; r < N; r++) {
    wait_done(&c[r]);
    if (r % 2) { /* free: as alone */
      int want[64], nw = reference_run(ref, r * N_KINDS, want);
      assert_int_equal(c[r].n, nw);
      for (int i = 0; i < nw; i++) assert_int_equal(c[r].tokens[i], want[i]);
      continue;
    }
    assert_int_equal(c[r].finish, PREFT_FINISH_STOP); /* the grammar ended it */
    assert_int_equal(c[r].n, 4);
    int ids[80], n = np[r];
    memcpy(ids, prompts[r], sizeof(int) * (size_t)n);
    memcpy(ids + n, c[r].tokens, sizeof(int) * 4);
    float *logits = malloc(sizeof(float) * (size_t)(n + 4) * (size_t)vocab);
    assert_int_equal(preft_all_logits(ref, NULL, ids, n + 4, logits, &err), 0);
    for (int i = 0; i < 4; i++) {
      const char *allowed = i < 3 ? "abcde" : "!?";
      const float *row = logits + (size_t)(n - 1 + i) * (size_t)vocab;
      int best = -1;
      for (const char *a = allowed; *a; a++)
        if (best < 0 || row[(int)*a] > row[best]) best = *a;
      if (c[r].tokens[i] != best)
        fail_msg("request %d token %d: %d, the best allowed is %d", r, i, c[r].tokens[i], best);
    }
    free(logits);
  }
  for (int r = 0; r < N; r++) collector_destroy(&c[r]);
  preft_engine_free(e);
  preft_grammar_unref(g);
  preft_token_trie_free(&trie);
  preft_model_free(ref);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(mixed_adapter_requests_match_each_alone),
      cmocka_unit_test(preempted_requests_are_recomputed_exactly),
      cmocka_unit_test(prefix_cache_reuses_blocks_of_same_prompt_and_adapter),
      cmocka_unit_test(cancel_and_callback_stop_end_requests),
      cmocka_unit_test(bad_requests_are_refused_with_reasons),
      cmocka_unit_test(lora_dtype_holds_adapters_given_in_memory_at_16_bits),
      cmocka_unit_test(adapters_beyond_the_loaded_limit_are_evicted),
      cmocka_unit_test(the_loaded_adapter_cap_is_hard_under_concurrent_requests),
      cmocka_unit_test(a_broken_adapter_is_unavailable_with_its_error),
      cmocka_unit_test(adapters_of_queued_requests_load_while_earlier_ones_run),
      cmocka_unit_test(without_prefetch_queued_adapters_load_at_admission),
      cmocka_unit_test(seeded_sampling_is_the_same_for_any_thread_count),
      cmocka_unit_test(adapters_take_their_memory_from_the_kv_cache),
      cmocka_unit_test(constrained_and_free_requests_share_a_batch),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
