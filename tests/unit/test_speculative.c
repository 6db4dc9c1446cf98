/* test_speculative.c - speculative decoding (engine/speculative.h):
 * prompt lookup drafts what followed the latest earlier occurrence of the
 * last n-gram; the accept/reject rule turns hand-made draft distributions
 * into the target's (chi-square over 200,000 draws, which would reject the
 * distribution of a wrong rule), and a rejection with no residual (q >= p
 * everywhere) draws from p; greedy tokens of 32 concurrent requests with
 * mixed adapters and modes are those of preft_generate without
 * speculation, for prompt lookup and for a draft model (the target's first
 * layer alone), also under a KV cache so small that drafted sequences are
 * preempted; seeded sampled requests draw the same tokens with and without
 * prompt lookup; preft_generate with it gives its own tokens without it;
 * a chi-square test over 3000 seeded draws at a drafted position, for both
 * drafters, finds the target distribution and would reject the
 * distribution of a wrong accept/reject rule, and so does one at the
 * second drafted position (k = 2) of a draft model in the engine;
 * preft_generate with a sampled draft model keeps every draft when the
 * target drafts for itself. The scheduler gives every decoding
 * request its row before drafts get what is left, and drafts never cause a
 * preemption; the draft model catches up at most a step budget of rows at
 * a time, and one with other bos or eos ids is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/engine.h"
#include "engine/generate.h"
#include "engine/speculative.h"
#include "model/llama.h"
#include "testutil.h"

/* ---- prompt lookup ------------------------------------------------------------ */

static void ngram_draft_copies_what_followed_the_latest_match(void **state) {
  (void)state;
  int draft[8];
  /* suffix [3 4] occurs at 2 and at 6; the latest (6) is followed by 9 5 3 4 */
  int t[] = {1, 2, 3, 4, 7, 8, 3, 4, 9, 5, 3, 4};
  int n = (int)(sizeof t / sizeof t[0]);
  assert_int_equal(preft_ngram_draft(t, n, 3, 2, 3, draft), 3);
  assert_int_equal(draft[0], 9);
  assert_int_equal(draft[1], 5);
  assert_int_equal(draft[2], 3);
  /* the continuation runs into the end: fewer than k */
  assert_int_equal(preft_ngram_draft(t, n, 3, 2, 8, draft), 4);
  assert_int_equal(draft[3], 4);
  /* the 3-gram [5 3 4] never occurred before; [3 4] did */
  int u[] = {5, 3, 4, 6, 3, 4};
  assert_int_equal(preft_ngram_draft(u, 6, 3, 3, 2, draft), 0);
  assert_int_equal(preft_ngram_draft(u, 6, 3, 2, 2, draft), 2);
  assert_int_equal(draft[0], 6);
  assert_int_equal(draft[1], 3);
  /* no earlier occurrence at any length, k = 0, too short */
  int v[] = {1, 2, 3};
  assert_int_equal(preft_ngram_draft(v, 3, 3, 1, 4, draft), 0);
  assert_int_equal(preft_ngram_draft(t, n, 3, 2, 0, draft), 0);
  assert_int_equal(preft_ngram_draft(t, 1, 3, 1, 4, draft), 0);
  /* a unigram match */
  int w[] = {7, 1, 2, 7};
  assert_int_equal(preft_ngram_draft(w, 4, 3, 1, 2, draft), 2);
  assert_int_equal(draft[0], 1);
  assert_int_equal(draft[1], 2);
}

/* ---- the accept/reject rule on hand-made distributions ------------------------ */

/* Chi-square statistic of counts against probabilities q (bins of expected
 * count >= 5, the rest pooled); *df its degrees of freedom. */
static double chi_square(const long *counts, const double *q, int vocab, long n, int *df) {
  double chi = 0, pooled_e = 0;
  long pooled_o = 0;
  int bins = 0;
  for (int v = 0; v < vocab; v++) {
    double e = q[v] * (double)n;
    if (e < 5) {
      pooled_e += e;
      pooled_o += counts[v];
      continue;
    }
    chi += ((double)counts[v] - e) * ((double)counts[v] - e) / e;
    bins++;
  }
  if (pooled_e > 0) {
    chi += ((double)pooled_o - pooled_e) * ((double)pooled_o - pooled_e) / pooled_e;
    bins++;
  }
  *df = bins - 1;
  return chi;
}

/* The chi-square quantile at 1 - 0.001 (Wilson-Hilferty). */
static double chi_square_critical(int df) {
  double z = 3.0902, a = 2.0 / (9.0 * df);
  return df * pow(1 - a + z * sqrt(a), 3);
}

/* What a wrong rule would give: keep d with probability min(1, p/q) but on
 * rejection draw from p itself (not from the residual). */
static void wrong_rule_distribution(const double *p, const double *q, int vocab, double *out) {
  double reject = 1;
  for (int v = 0; v < vocab; v++) reject -= fmin(p[v], q[v]);
  for (int v = 0; v < vocab; v++) out[v] = fmin(p[v], q[v]) + reject * p[v];
}

enum { RULE_V = 6, RULE_DRAWS = 200000 };

static void verify_rule_gives_the_target_distribution(void **state) {
  (void)state;
  /* target logits at temperature 1 with top-k 5 (the sixth token is cut),
   * and two drafts: one far from the target, one that cannot draw token 1 */
  const float logits[RULE_V] = {2.0f, 1.2f, 0.3f, -0.5f, 0.9f, -3.0f};
  const double drafts[2][RULE_V] = {{0.05, 0.05, 0.5, 0.3, 0.05, 0.05}, {0.4, 0, 0.2, 0.1, 0.2, 0.1}};
  preft_sampling sp = {.temperature = 1, .top_k = 5, .top_p = 1, .seed = 5};
  float p_f[RULE_V];
  preft_sample_scratch w = {0};
  preft_sample_probs(&sp, &w, logits, RULE_V, p_f);
  assert_true(p_f[5] == 0.0f); /* top-k cut it */
  double p[RULE_V], wrong[RULE_V];
  for (int v = 0; v < RULE_V; v++) p[v] = p_f[v];
  for (int c = 0; c < 2; c++) {
    float q[RULE_V];
    double qd[RULE_V];
    for (int v = 0; v < RULE_V; v++) q[v] = (float)(qd[v] = drafts[c][v]);
    preft_sampler target, draft;
    preft_sampler_init(&target, &sp);
    preft_sampler_init_draft(&draft, &sp);
    long counts[RULE_V] = {0}, kept = 0;
    for (int i = 0; i < RULE_DRAWS; i++) {
      int d = preft_sample_from(&draft, q, RULE_V);
      bool acc;
      int tok = preft_spec_verify(&target, &w, logits, RULE_V, d, q, &acc);
      assert_true(tok >= 0 && tok < RULE_V);
      assert_true(acc == (tok == d));
      counts[tok]++;
      kept += acc;
    }
    int df, df_wrong, df_q;
    double chi = chi_square(counts, p, RULE_V, RULE_DRAWS, &df);
    wrong_rule_distribution(p, qd, RULE_V, wrong);
    double chi_wrong = chi_square(counts, wrong, RULE_V, RULE_DRAWS, &df_wrong);
    double chi_q = chi_square(counts, qd, RULE_V, RULE_DRAWS, &df_q); /* "always keep the draft" */
    double accept = 0; /* sum min(p, q): the rule's acceptance rate */
    for (int v = 0; v < RULE_V; v++) accept += fmin(p[v], qd[v]);
    print_message(
        "draft %d: kept %.3f (expected %.3f); chi2 %.1f (df %d, critical %.1f); wrong rule %.1f, "
        "draft's own %.1f\n",
        c, (double)kept / RULE_DRAWS, accept, chi, df, chi_square_critical(df), chi_wrong, chi_q);
    assert_true(counts[5] == 0); /* never a token the target cannot draw */
    if (chi > chi_square_critical(df))
      fail_msg("draft %d: verified draws do not follow the target: chi2 %.1f > %.1f", c, chi,
               chi_square_critical(df));
    if (chi_wrong <= chi_square_critical(df_wrong) || chi_q <= chi_square_critical(df_q))
      fail_msg("draft %d: the test cannot tell a wrong rule apart (%.1f, %.1f)", c, chi_wrong, chi_q);
    assert_true(fabs((double)kept / RULE_DRAWS - accept) < 0.01);
    preft_sampler_free(&target);
    preft_sampler_free(&draft);
  }
  /* greedy: the argmax whatever the draft, kept iff the draft is the argmax */
  preft_sampling greedy = {.temperature = 0, .top_p = 1};
  preft_sampler g;
  preft_sampler_init(&g, &greedy);
  float q[RULE_V] = {0.1f, 0.5f, 0.1f, 0.1f, 0.1f, 0.1f};
  for (int d = 0; d < RULE_V; d++) {
    bool acc;
    assert_int_equal(preft_spec_verify(&g, &w, logits, RULE_V, d, q, &acc), 0);
    assert_true(acc == (d == 0));
    assert_int_equal(preft_spec_verify(&g, &w, logits, RULE_V, d, NULL, &acc), 0);
    assert_true(acc == (d == 0));
  }
  preft_sampler_free(&g);
  preft_sample_scratch_free(&w);
}

/* ---- engine ------------------------------------------------------------------ */

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

static void wait_done(collector *c) {
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += (time_t)(60 * test_time_scale());
  pthread_mutex_lock(&c->mu);
  bool timed_out = false;
  while (!c->done && !timed_out) timed_out = pthread_cond_timedwait(&c->cv, &c->mu, &deadline) == ETIMEDOUT;
  bool done = c->done;
  pthread_mutex_unlock(&c->mu);
  if (!done) fail_msg("no final event within the deadline: the engine hangs or lost the request");
}

static preft_model *load_base(void) {
  char *dir = test_data_path("models/llama-gqa-rope3");
  preft_model *m;
  preft_error err;
  if (preft_model_load(&m, dir, &err) != 0) fail_msg("%s", err.msg);
  free(dir);
  return m;
}

/* The draft model of the tests: the target's first layer alone (an early
 * exit: the same vocabulary, a related but different distribution). */
static int base_layers;
static preft_model *load_draft(void) {
  preft_model *m = load_base();
  base_layers = m->cfg.n_layers;
  m->cfg.n_layers = 1;
  return m;
}
static void free_draft(preft_model *m) {
  m->cfg.n_layers = base_layers; /* what the model frees */
  preft_model_free(m);
}

static const char *adapter_names[] = {NULL, "lora-qv-r4", "loreft-f3l3"};
enum { N_KINDS = 3, N_REQ = 32, MAX_NEW = 40 };

/* Prompt r: a short phrase repeated (so that lookup finds n-grams at once),
 * 9..40 tokens. */
static int make_prompt(int r, int *out) {
  int n = 9 + (r * 7) % 32, period = 3 + r % 5;
  for (int i = 0; i < n; i++) out[i] = (1 + 37 * (i % period) + 11 * r) % 256;
  return n;
}

static preft_adapter *load_adapter(const preft_model *m, int kind) {
  if (!adapter_names[kind]) return NULL; /* the base model */
  char rel[128];
  snprintf(rel, sizeof rel, "adapters/%s", adapter_names[kind]);
  char *dir = test_data_path(rel);
  preft_adapter *a;
  preft_error err;
  if (preft_adapter_load(&a, dir, NULL, &m->cfg, &err) != 0) fail_msg("%s", err.msg);
  free(dir);
  return a;
}

static preft_sampling sampling_of(int r, bool sampled) {
  preft_sampling s = {.temperature = 0, .top_p = 1};
  if (sampled) {
    s.temperature = 0.05f + 0.01f * (float)(r % 5); /* the tiny model's logits are small */
    s.seed = 1000 + (uint64_t)r;
    s.top_k = r % 3 == 0 ? 8 : 0;
  }
  return s;
}

typedef struct {
  int *out, n;
} token_sink;

static bool sink_token(void *ctx, int token) {
  token_sink *s = ctx;
  s->out[s->n++] = token;
  return true;
}

/* The adapters of the request kinds, loaded once for m (NULL: base). */
typedef struct {
  preft_adapter *a[N_KINDS];
} kinds;

static kinds load_kinds(const preft_model *m) {
  kinds k;
  for (int i = 0; i < N_KINDS; i++) k.a[i] = load_adapter(m, i);
  return k;
}

static void free_kinds(kinds *k) {
  for (int i = 0; i < N_KINDS; i++) preft_adapter_free(k->a[i]);
}

/* preft_generate of request r, with or without speculation. */
static int reference_run(const preft_model *m, const kinds *ks, int r, bool sampled,
                         const preft_speculation *spec, int *out, preft_spec_stats *stats) {
  int prompt[64], n = make_prompt(r, prompt), kind = r % N_KINDS, count;
  const preft_adapter *a = ks->a[kind];
  preft_generate_opts o = {.max_new_tokens = MAX_NEW, .adapter = a, .sampling = sampling_of(r, sampled)};
  if (spec) o.speculation = *spec;
  o.spec_stats = stats;
  if (a) o.adapter_mode = (r / N_KINDS) % 2 ? PREFT_MODE_PREFILL : PREFT_MODE_ALL;
  token_sink sink = {out, 0};
  preft_error err;
  if (preft_generate(m, NULL, prompt, n, &o, sink_token, &sink, &count, &err) != 0) fail_msg("%s", err.msg);
  return sink.n;
}

/* 32 requests at once on an engine with speculation; returns the stats and
 * fills tokens[r] / n[r]. */
static preft_engine_stats run_engine(const preft_engine_config *cfg, bool sampled, int tokens[][64], int *n) {
  preft_engine *e;
  preft_error err;
  if (preft_engine_create(&e, load_base(), cfg, &err) != 0) fail_msg("%s", err.msg);
  for (int k = 1; k < N_KINDS; k++) {
    char rel[128];
    snprintf(rel, sizeof rel, "adapters/%s", adapter_names[k]);
    char *dir = test_data_path(rel);
    if (preft_engine_add_adapter(e, adapter_names[k], dir, &err) != 0) fail_msg("%s", err.msg);
    free(dir);
  }
  collector *c = calloc(N_REQ, sizeof *c);
  for (int r = 0; r < N_REQ; r++) {
    pthread_mutex_init(&c[r].mu, NULL);
    pthread_cond_init(&c[r].cv, NULL);
    int prompt[64], np = make_prompt(r, prompt), kind = r % N_KINDS;
    preft_request_params p = {.prompt = prompt,
                              .n_prompt = np,
                              .adapter = adapter_names[kind],
                              .max_tokens = MAX_NEW,
                              .sampling = sampling_of(r, sampled)};
    p.adapter_mode = adapter_names[kind] ? ((r / N_KINDS) % 2 ? PREFT_MODE_PREFILL : PREFT_MODE_ALL) : -1;
    uint64_t id;
    if (preft_engine_submit(e, &p, on_event, &c[r], &id, &err) != PREFT_SUBMIT_OK) fail_msg("%s", err.msg);
  }
  for (int r = 0; r < N_REQ; r++) {
    wait_done(&c[r]);
    memcpy(tokens[r], c[r].tokens, sizeof c[r].tokens);
    n[r] = c[r].n;
    pthread_mutex_destroy(&c[r].mu);
    pthread_cond_destroy(&c[r].cv);
  }
  free(c);
  preft_engine_stats st;
  preft_engine_get_stats(e, &st);
  preft_engine_free(e);
  assert_int_equal(st.requests_ok, N_REQ);
  return st;
}

static void check_against_reference(const preft_engine_config *cfg, bool sampled, long *preemptions) {
  static int tokens[N_REQ][64];
  int n[N_REQ];
  preft_engine_stats st = run_engine(cfg, sampled, tokens, n);
  preft_model *ref = load_base();
  kinds ks = load_kinds(ref);
  for (int r = 0; r < N_REQ; r++) {
    int want[64], nw = reference_run(ref, &ks, r, sampled, NULL, want, NULL);
    assert_int_equal(n[r], nw);
    for (int i = 0; i < nw; i++)
      if (tokens[r][i] != want[i])
        fail_msg("request %d (%s, %s): token %d is %d with speculation, %d without", r,
                 adapter_names[r % N_KINDS] ? adapter_names[r % N_KINDS] : "base",
                 sampled ? "sampled" : "greedy", i, tokens[r][i], want[i]);
  }
  free_kinds(&ks);
  preft_model_free(ref);
  /* the test tests nothing unless drafts were made, kept and refused */
  if (st.spec.drafted == 0 || st.spec.accepted == 0 || st.spec.accepted == st.spec.drafted)
    fail_msg("speculation drafted %ld tokens and kept %ld: the prompts do not exercise it", st.spec.drafted,
             st.spec.accepted);
  if (preemptions) *preemptions = st.preemptions;
}

static const preft_speculation ngram4 = {.kind = PREFT_SPEC_NGRAM, .k = 4};

static void greedy_tokens_are_those_without_speculation(void **state) {
  (void)state;
  preft_engine_config cfg = {.threads = 2, .kv_cache_mb = 64, .max_step_tokens = 96, .speculation = ngram4};
  check_against_reference(&cfg, false, NULL);
}

static void drafted_sequences_survive_preemption(void **state) {
  (void)state;
  /* 24 blocks of 16 positions, less those lent to the two adapters, cannot
   * hold 32 sequences of up to 80 positions */
  preft_engine_config cfg = {.threads = 2,
                             .kv_blocks = 24,
                             .max_context = 96,
                             .max_step_tokens = 128,
                             .max_running = 16,
                             .speculation = ngram4};
  long preemptions = 0;
  check_against_reference(&cfg, false, &preemptions);
  if (preemptions == 0) fail_msg("no preemption happened: the test tests nothing");
}

static void seeded_sampled_tokens_are_those_without_speculation(void **state) {
  (void)state;
  preft_engine_config cfg = {.threads = 2, .kv_cache_mb = 64, .speculation = ngram4};
  check_against_reference(&cfg, true, NULL);
}

/* preft_generate with spec gives the tokens it gives without (greedy, and
 * seeded sampled when `sampled`). */
static void check_generate(const preft_speculation *spec, bool sampled_too) {
  preft_model *m = load_base();
  kinds ks = load_kinds(m);
  preft_spec_stats total = {0};
  for (int r = 0; r < N_REQ; r += 2)
    for (int sampled = 0; sampled < (sampled_too ? 2 : 1); sampled++) {
      int want[64], got[64];
      preft_spec_stats st;
      int nw = reference_run(m, &ks, r, sampled, NULL, want, NULL);
      int ng = reference_run(m, &ks, r, sampled, spec, got, &st);
      assert_int_equal(ng, nw);
      assert_memory_equal(got, want, sizeof(int) * (size_t)nw);
      total.drafted += st.drafted;
      total.accepted += st.accepted;
    }
  if (total.accepted == 0 || total.accepted == total.drafted)
    fail_msg("generate drafted %ld tokens and kept %ld: nothing was tested", total.drafted, total.accepted);
  free_kinds(&ks);
  preft_model_free(m);
}

static void generate_with_speculation_gives_the_same_tokens(void **state) {
  (void)state;
  check_generate(&ngram4, true);
}

/* A draft model's sampled draws use their own RNG (the tokens differ, the
 * distribution does not: below); greedy tokens are the same. */
static void generate_with_a_draft_model_gives_the_same_greedy_tokens(void **state) {
  (void)state;
  preft_model *d = load_draft();
  preft_speculation spec = {.kind = PREFT_SPEC_DRAFT, .k = 4, .draft_model = d};
  check_generate(&spec, false);
  free_draft(d);
}

static void greedy_tokens_with_a_draft_model_are_those_without(void **state) {
  (void)state;
  preft_model *d = load_draft();
  preft_engine_config cfg = {.threads = 2,
                             .kv_cache_mb = 64,
                             .max_step_tokens = 96,
                             .speculation = {.kind = PREFT_SPEC_DRAFT, .k = 3, .draft_model = d}};
  check_against_reference(&cfg, false, NULL);
  free_draft(d);
}

static void draft_model_sequences_survive_preemption(void **state) {
  (void)state;
  preft_model *d = load_draft();
  preft_engine_config cfg = {.threads = 2,
                             .kv_blocks = 24,
                             .max_context = 96,
                             .max_step_tokens = 128,
                             .max_running = 16,
                             .speculation = {.kind = PREFT_SPEC_DRAFT, .k = 4, .draft_model = d}};
  long preemptions = 0;
  check_against_reference(&cfg, false, &preemptions);
  if (preemptions == 0) fail_msg("no preemption happened: the test tests nothing");
  free_draft(d);
}

static void a_draft_model_must_share_the_vocabulary(void **state) {
  (void)state;
  char *dir = test_data_path("models/llama-headdim-f16"); /* 384 tokens, the target 256 */
  preft_model *d;
  preft_error err;
  if (preft_model_load(&d, dir, &err) != 0) fail_msg("%s", err.msg);
  free(dir);
  preft_engine_config cfg = {.threads = 1, .speculation = {.kind = PREFT_SPEC_DRAFT, .draft_model = d}};
  preft_engine *e;
  preft_model *m = load_base();
  assert_int_not_equal(preft_engine_create(&e, m, &cfg, &err), 0);
  assert_non_null(strstr(err.msg, "vocabulary"));
  preft_model_free(m);
  preft_model_free(d);
}

/* ---- the distribution of a drafted position ----------------------------------- */

enum { N_DRAWS = 3000, P_LEN = 17, N_NEW = 3 };

/* Candidate prompt c: random tokens whose last one also stands at position
 * 4, so that a unigram lookup drafts prompt[5]. */
static void candidate_prompt(int c, int *p) {
  uint64_t x = 0x9E3779B97F4A7C15ull * (uint64_t)(c + 1);
  for (int i = 0; i < P_LEN; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    p[i] = 4 + (int)(x % 250);
  }
  p[P_LEN - 1] = p[4];
}

/* N_DRAWS seeded requests of prompt [P_LEN] at temperature T, one at a
 * time, with speculation spec, each generating n_new (<= N_NEW) tokens
 * into out[i]. A first request puts the prompt's first block (16
 * positions) in the prefix cache, so each draw's step computes the
 * prompt's last position alone (a decode row, with the step's room for
 * drafts): its first token is verified against the first draft, and its
 * second, when that draft was kept, against the second. Fails unless every
 * draw was drafted. */
static preft_engine_stats draw_tokens(const preft_speculation *spec, const int *prompt, float temperature,
                                      int n_new, int (*out)[N_NEW]) {
  preft_engine_config cfg = {.threads = 1,
                             .kv_cache_mb = 16,
                             .max_running = 1,
                             .max_step_tokens = 64,
                             .max_queue = N_DRAWS + 1,
                             .speculation = *spec};
  preft_engine *e;
  preft_error err;
  if (preft_engine_create(&e, load_base(), &cfg, &err) != 0) fail_msg("%s", err.msg);
  collector *col = calloc(N_DRAWS + 1, sizeof *col);
  preft_engine_stats warm;
  for (int i = 0; i <= N_DRAWS; i++) { /* 0: the request that fills the prefix cache */
    pthread_mutex_init(&col[i].mu, NULL);
    pthread_cond_init(&col[i].cv, NULL);
    preft_request_params p = {.prompt = prompt,
                              .n_prompt = P_LEN,
                              .adapter_mode = -1,
                              .max_tokens = i ? n_new : 1,
                              .sampling = {.temperature = temperature, .top_p = 1, .seed = 77 + (uint64_t)i}};
    uint64_t id;
    if (preft_engine_submit(e, &p, on_event, &col[i], &id, &err) != PREFT_SUBMIT_OK) fail_msg("%s", err.msg);
    if (i == 0) {
      wait_done(&col[0]);
      preft_engine_get_stats(e, &warm);
    }
  }
  for (int i = 0; i <= N_DRAWS; i++) {
    wait_done(&col[i]);
    if (i) {
      assert_int_equal(col[i].n, n_new);
      memcpy(out[i - 1], col[i].tokens, sizeof(int) * (size_t)n_new);
    }
    pthread_mutex_destroy(&col[i].mu);
    pthread_cond_destroy(&col[i].cv);
  }
  free(col);
  preft_engine_stats st;
  preft_engine_get_stats(e, &st);
  preft_engine_free(e);
  if (st.spec.steps - warm.spec.steps < N_DRAWS ||
      st.prefix_hit_tokens - warm.prefix_hit_tokens != 16L * N_DRAWS)
    fail_msg("%ld drafted steps for %d requests, %ld prefix-cache hits: the test does not test the rule",
             st.spec.steps - warm.spec.steps, N_DRAWS, st.prefix_hit_tokens - warm.prefix_hit_tokens);
  return st;
}

/* counts[v] = how often out[i][pos] is v, over the draws whose token
 * before pos is `after` (any: -1); returns how many draws counted. */
static long count_at(int (*out)[N_NEW], int pos, int after, long *counts, int vocab) {
  memset(counts, 0, sizeof(long) * (size_t)vocab);
  long n = 0;
  for (int i = 0; i < N_DRAWS; i++)
    if (after < 0 || out[i][pos - 1] == after) counts[out[i][pos]]++, n++;
  return n;
}

/* softmax(row / T) in double */
static void softmax_t(const float *row, int vocab, double t, double *out) {
  double mx = row[0], z = 0;
  for (int v = 1; v < vocab; v++) mx = row[v] > mx ? row[v] : mx;
  for (int v = 0; v < vocab; v++) z += out[v] = exp(((double)row[v] - mx) / t);
  for (int v = 0; v < vocab; v++) out[v] /= z;
}

/* With a draft model (the first layer alone) at a temperature where the
 * target's favourite has p near 0.4: the first token follows the target's
 * distribution, not the draft's, nor a wrong rule's. */
static void draft_model_sampled_positions_keep_the_target_distribution(void **state) {
  (void)state;
  preft_model *m = load_base(), *d = load_draft();
  int vocab = m->cfg.vocab, prompt[P_LEN];
  candidate_prompt(0, prompt);
  float *lt = malloc(sizeof(float) * (size_t)P_LEN * (size_t)vocab);
  float *ld = malloc(sizeof(float) * (size_t)P_LEN * (size_t)vocab);
  preft_error err;
  assert_int_equal(preft_all_logits(m, NULL, prompt, P_LEN, lt, &err), 0);
  assert_int_equal(preft_all_logits(d, NULL, prompt, P_LEN, ld, &err), 0);
  const float *rt = lt + (size_t)(P_LEN - 1) * (size_t)vocab, *rd = ld + (size_t)(P_LEN - 1) * (size_t)vocab;
  double *p = calloc((size_t)vocab, sizeof(double)), *q = calloc((size_t)vocab, sizeof(double));
  double *wrong = calloc((size_t)vocab, sizeof(double));
  float temperature = 1;
  double best = 0;
  for (float t = 1.0f; t > 1e-4f; t *= 0.8f) { /* the target's favourite nearest 0.4 */
    softmax_t(rt, vocab, t, p);
    double mx = 0;
    for (int v = 0; v < vocab; v++) mx = p[v] > mx ? p[v] : mx;
    if (fabs(mx - 0.4) < fabs(best - 0.4)) best = mx, temperature = t;
  }
  softmax_t(rt, vocab, temperature, p);
  softmax_t(rd, vocab, temperature, q);
  wrong_rule_distribution(p, q, vocab, wrong);
  preft_speculation spec = {.kind = PREFT_SPEC_DRAFT, .k = 1, .draft_model = d};
  long *counts = calloc((size_t)vocab, sizeof(long));
  int(*out)[N_NEW] = calloc(N_DRAWS, sizeof *out);
  preft_engine_stats st = draw_tokens(&spec, prompt, temperature, 2, out);
  count_at(out, 0, -1, counts, vocab);
  free(out);
  int df, df_wrong, df_q;
  double chi = chi_square(counts, p, vocab, N_DRAWS, &df);
  double chi_wrong = chi_square(counts, wrong, vocab, N_DRAWS, &df_wrong);
  double chi_q = chi_square(counts, q, vocab, N_DRAWS, &df_q);
  print_message(
      "T=%.4f: kept %ld of %d; chi2 %.1f (df %d, critical %.1f); wrong rule %.1f (df %d); "
      "the draft's own %.1f (df %d)\n",
      temperature, st.spec.accepted, N_DRAWS, chi, df, chi_square_critical(df), chi_wrong, df_wrong, chi_q,
      df_q);
  if (chi > chi_square_critical(df))
    fail_msg("drafted draws do not follow the target distribution: chi2 %.1f > %.1f (df %d)", chi,
             chi_square_critical(df), df);
  if (chi_wrong <= chi_square_critical(df_wrong) || chi_q <= chi_square_critical(df_q))
    fail_msg("the test cannot tell a wrong rule apart (chi2 %.1f, %.1f)", chi_wrong, chi_q);
  if (st.spec.accepted == 0 || st.spec.accepted == N_DRAWS)
    fail_msg("the draft was kept %ld times of %d: both ways of the rule are not exercised", st.spec.accepted,
             N_DRAWS);
  free(counts);
  free(p);
  free(q);
  free(wrong);
  free(lt);
  free(ld);
  free_draft(d);
  preft_model_free(m);
}

static void sampled_drafted_positions_keep_the_target_distribution(void **state) {
  (void)state;
  preft_model *m = load_base();
  int vocab = m->cfg.vocab;
  float *logits = malloc(sizeof(float) * (size_t)P_LEN * (size_t)vocab);
  preft_error err;
  /* a prompt whose drafted token is the model's favourite, so that some
   * temperature gives it a probability near 0.4 */
  int prompt[P_LEN], c = 0, draft = -1;
  const float *last = NULL;
  for (;; c++) {
    if (c == 5000) fail_msg("no candidate prompt drafts the model's most likely token");
    candidate_prompt(c, prompt);
    assert_int_equal(preft_all_logits(m, NULL, prompt, P_LEN, logits, &err), 0);
    last = logits + (size_t)(P_LEN - 1) * (size_t)vocab;
    assert_int_equal(preft_ngram_draft(prompt, P_LEN, 1, 1, 1, &draft), 1);
    int best = 0;
    for (int v = 1; v < vocab; v++)
      if (last[v] > last[best]) best = v;
    if (best == draft) break;
  }
  double *q = calloc((size_t)vocab, sizeof(double)), *q_wrong = calloc((size_t)vocab, sizeof(double));
  float temperature = 1;
  double p_draft = 0;
  for (float t = 1.0f; t > 1e-4f; t *= 0.8f) { /* the temperature giving the draft p nearest 0.4 */
    double mx = last[draft], z = 0;
    for (int v = 0; v < vocab; v++) z += exp(((double)last[v] - mx) / t);
    double p = 1 / z;
    if (fabs(p - 0.4) < fabs(p_draft - 0.4)) p_draft = p, temperature = t;
  }
  double mx = last[draft], z = 0;
  for (int v = 0; v < vocab; v++) z += q[v] = exp(((double)last[v] - mx) / (double)temperature);
  for (int v = 0; v < vocab; v++) q[v] /= z;
  p_draft = q[draft];
  /* a wrong rule: keep the draft with probability p, else draw from the
   * whole distribution again (not from the rest) */
  for (int v = 0; v < vocab; v++) q_wrong[v] = (1 - p_draft) * q[v];
  q_wrong[draft] += p_draft;

  preft_speculation spec = {.kind = PREFT_SPEC_NGRAM, .k = 1, .ngram_max = 1, .ngram_min = 1};
  long *counts = calloc((size_t)vocab, sizeof(long));
  int(*out)[N_NEW] = calloc(N_DRAWS, sizeof *out);
  preft_engine_stats st = draw_tokens(&spec, prompt, temperature, 2, out);
  count_at(out, 0, -1, counts, vocab);
  free(out);
  int df, df_wrong;
  double chi = chi_square(counts, q, vocab, N_DRAWS, &df);
  double chi_wrong = chi_square(counts, q_wrong, vocab, N_DRAWS, &df_wrong);
  print_message(
      "draft p=%.3f at T=%.4f; kept %ld of %d; chi2 %.1f (df %d, critical %.1f); against the wrong "
      "rule %.1f (df %d)\n",
      p_draft, temperature, st.spec.accepted, N_DRAWS, chi, df, chi_square_critical(df), chi_wrong, df_wrong);
  if (chi > chi_square_critical(df))
    fail_msg("drafted draws do not follow the target distribution: chi2 %.1f > %.1f (df %d)", chi,
             chi_square_critical(df), df);
  if (chi_wrong <= chi_square_critical(df_wrong))
    fail_msg("the test cannot tell a wrong accept/reject rule apart (chi2 %.1f, df %d)", chi_wrong, df_wrong);
  free(counts);
  free(q);
  free(q_wrong);
  free(logits);
  preft_model_free(m);
}

/* ---- the second drafted position (k = 2); generate with a sampled draft ------ */

/* A prompt and temperature where the draft model (the first layer alone)
 * at position 1 favours the target's most likely token a at least as much
 * as the target does (q1(a) >= p1(a)): a first token a is then always a
 * kept draft, so among draws that start with a the second token is the
 * verification of the second draft, whose target distribution is p2 =
 * p(. | prompt, a); q2 is the draft's there, wrong2 a wrong rule's. The
 * case is chosen so that N_DRAWS * p1(a) draws tell p2 from wrong2 and q2
 * (expected chi-square excess over 60 each). */
typedef struct {
  int prompt[P_LEN + 1]; /* the prompt, then a */
  float temperature;
  double p1a, *p2, *q2, *wrong2;
} second_case;

/* n * sum (p - w)^2 / w over w's bins of expected count >= 5: what counts
 * drawn from p add to a chi-square statistic against w. */
static double chi_excess(const double *p, const double *w, int vocab, double n) {
  double x = 0;
  for (int v = 0; v < vocab; v++)
    if (w[v] * n >= 5) x += n * (p[v] - w[v]) * (p[v] - w[v]) / w[v];
  return x;
}

static second_case find_second_case(const preft_model *m, const preft_model *d) {
  int vocab = m->cfg.vocab;
  second_case sc = {0};
  float *lt = malloc(sizeof(float) * (size_t)(P_LEN + 1) * (size_t)vocab);
  float *ld = malloc(sizeof(float) * (size_t)(P_LEN + 1) * (size_t)vocab);
  double *p1 = calloc((size_t)vocab, sizeof(double)), *q1 = calloc((size_t)vocab, sizeof(double));
  sc.p2 = calloc((size_t)vocab, sizeof(double));
  sc.q2 = calloc((size_t)vocab, sizeof(double));
  sc.wrong2 = calloc((size_t)vocab, sizeof(double));
  preft_error err;
  for (int c = 0; c < 200; c++) {
    candidate_prompt(1000 + c, sc.prompt);
    assert_int_equal(preft_all_logits(m, NULL, sc.prompt, P_LEN, lt, &err), 0);
    assert_int_equal(preft_all_logits(d, NULL, sc.prompt, P_LEN, ld, &err), 0);
    const float *rt = lt + (size_t)(P_LEN - 1) * (size_t)vocab,
                *rd = ld + (size_t)(P_LEN - 1) * (size_t)vocab;
    int a = 0;
    for (int v = 1; v < vocab; v++) a = rt[v] > rt[a] ? v : a;
    sc.prompt[P_LEN] = a;
    float *lt2 = malloc(sizeof(float) * (size_t)(P_LEN + 1) * (size_t)vocab);
    float *ld2 = malloc(sizeof(float) * (size_t)(P_LEN + 1) * (size_t)vocab);
    assert_int_equal(preft_all_logits(m, NULL, sc.prompt, P_LEN + 1, lt2, &err), 0);
    assert_int_equal(preft_all_logits(d, NULL, sc.prompt, P_LEN + 1, ld2, &err), 0);
    const float *rt2 = lt2 + (size_t)P_LEN * (size_t)vocab, *rd2 = ld2 + (size_t)P_LEN * (size_t)vocab;
    bool found = false;
    for (float t = 1.0f; t > 1e-3f && !found; t *= 0.85f) {
      softmax_t(rt, vocab, t, p1);
      softmax_t(rd, vocab, t, q1);
      if (p1[a] < 0.3 || p1[a] > 0.85 || q1[a] < p1[a]) continue;
      softmax_t(rt2, vocab, t, sc.p2);
      softmax_t(rd2, vocab, t, sc.q2);
      wrong_rule_distribution(sc.p2, sc.q2, vocab, sc.wrong2);
      double n = N_DRAWS * p1[a], top = 0;
      for (int v = 0; v < vocab; v++) top = sc.p2[v] > top ? sc.p2[v] : top;
      if (top > 0.8 || chi_excess(sc.p2, sc.wrong2, vocab, n) < 60 || chi_excess(sc.p2, sc.q2, vocab, n) < 60)
        continue;
      sc.temperature = t;
      sc.p1a = p1[a];
      found = true;
    }
    free(lt2);
    free(ld2);
    if (found) break;
  }
  free(lt);
  free(ld);
  free(p1);
  free(q1);
  if (sc.temperature == 0) fail_msg("no candidate prompt makes a draft of position 1 always kept");
  return sc;
}

static void free_second_case(second_case *sc) {
  free(sc->p2);
  free(sc->q2);
  free(sc->wrong2);
}

/* Chi-square of the second tokens of the draws that start with a against
 * the case's p2, and against the wrong rule's and the draft's (which must
 * be rejected: else the test could not fail). */
static void check_second_tokens(const char *what, const second_case *sc, int (*out)[N_NEW], int vocab) {
  long *counts = calloc((size_t)vocab, sizeof(long));
  long n = count_at(out, 1, sc->prompt[P_LEN], counts, vocab);
  int df, df_wrong, df_q;
  double chi = chi_square(counts, sc->p2, vocab, n, &df);
  double chi_wrong = chi_square(counts, sc->wrong2, vocab, n, &df_wrong);
  double chi_q = chi_square(counts, sc->q2, vocab, n, &df_q);
  print_message(
      "%s: T=%.4f, %ld of %d draws start with %d (p %.3f); chi2 %.1f (df %d, critical %.1f); wrong "
      "rule %.1f (df %d); the draft's own %.1f (df %d)\n",
      what, sc->temperature, n, N_DRAWS, sc->prompt[P_LEN], sc->p1a, chi, df, chi_square_critical(df),
      chi_wrong, df_wrong, chi_q, df_q);
  if (n < N_DRAWS / 5) fail_msg("%s: only %ld draws start with the token: too few to test", what, n);
  if (chi > chi_square_critical(df))
    fail_msg("%s: second tokens do not follow the target distribution: chi2 %.1f > %.1f (df %d)", what, chi,
             chi_square_critical(df), df);
  if (chi_wrong <= chi_square_critical(df_wrong) || chi_q <= chi_square_critical(df_q))
    fail_msg("%s: the test cannot tell a wrong rule apart (chi2 %.1f, %.1f)", what, chi_wrong, chi_q);
  free(counts);
}

/* The engine with k = 2: the second drafted position's emitted token
 * follows the target distribution. */
static void draft_model_second_drafted_position_keeps_the_target_distribution(void **state) {
  (void)state;
  preft_model *m = load_base(), *d = load_draft();
  second_case sc = find_second_case(m, d);
  preft_speculation spec = {.kind = PREFT_SPEC_DRAFT, .k = 2, .draft_model = d};
  int(*out)[N_NEW] = calloc(N_DRAWS, sizeof *out);
  preft_engine_stats st = draw_tokens(&spec, sc.prompt, sc.temperature, 3, out);
  check_second_tokens("engine, k = 2", &sc, out, m->cfg.vocab);
  if (st.spec.drafted < 2L * N_DRAWS) /* each draw's first step drafts 2 */
    fail_msg("%ld drafts for %d draws: the second drafted position is not tested", st.spec.drafted, N_DRAWS);
  if (st.spec.accepted == 0 || st.spec.accepted == st.spec.drafted)
    fail_msg("drafts kept %ld of %ld: both ways of the rule are not exercised", st.spec.accepted,
             st.spec.drafted);
  free(out);
  free_second_case(&sc);
  free_draft(d);
  preft_model_free(m);
}

/* preft_generate with a sampled draft model (its q rows, k = 4): with the
 * target itself as the draft model (q = p up to rounding) every draft is
 * kept, and the tokens are those of the draft's RNG stream. A q row that
 * is not the distribution its draft was drawn from (another row's, or
 * none: a point mass) would refuse drafts: with q = one-hot(d) a draft is
 * kept with probability p(d) only. And with the first layer as the draft,
 * drafts are both kept and refused. (The rule's distribution is tested in
 * the engine above, which shares preft_spec_verify.) */
static void generate_with_a_sampled_draft_model_keeps_its_drafts(void **state) {
  (void)state;
  preft_model *m = load_base(), *d = load_draft(), *same = load_base();
  int prompt[P_LEN];
  candidate_prompt(0, prompt);
  preft_spec_stats self = {0}, other = {0};
  for (int i = 0; i < 40; i++) { /* 20 runs drafted by the target itself, 20 by the first layer */
    bool own = i < 20;
    preft_spec_stats st, *sum = own ? &self : &other;
    preft_generate_opts o = {.max_new_tokens = 40,
                             .sampling = {.temperature = 0.7f, .top_p = 1, .seed = 500 + (uint64_t)i},
                             .speculation = {.kind = PREFT_SPEC_DRAFT, .k = 4, .draft_model = own ? same : d},
                             .spec_stats = &st};
    int got[64], count;
    token_sink sink = {got, 0};
    preft_error err;
    if (preft_generate(m, NULL, prompt, P_LEN, &o, sink_token, &sink, &count, &err) != 0)
      fail_msg("%s", err.msg);
    assert_int_equal(sink.n, o.max_new_tokens);
    sum->drafted += st.drafted;
    sum->accepted += st.accepted;
  }
  print_message("the target as its own draft: kept %ld of %ld drafts; the first layer: %ld of %ld\n",
                self.accepted, self.drafted, other.accepted, other.drafted);
  if (self.drafted < 100 || (double)self.accepted < 0.99 * (double)self.drafted)
    fail_msg("the target drafting for itself: kept %ld of %ld drafts (all, up to rounding, expected)",
             self.accepted, self.drafted);
  if (other.accepted == 0 || other.accepted == other.drafted)
    fail_msg("the first layer's drafts: kept %ld of %ld: both ways of the rule are not exercised",
             other.accepted, other.drafted);
  preft_model_free(same);
  free_draft(d);
  preft_model_free(m);
}

/* ---- the draft model's catch-up and its fit ----------------------------------- */

/* The draft runs at most max_batch rows of what it has not seen per call:
 * a 30-token sequence with max_batch 8 drafts nothing for 3 calls (8, 16,
 * 24 positions seen), then the drafts of an unbounded drafter. */
static void draft_model_catches_up_in_chunks(void **state) {
  (void)state;
  preft_model *m = load_base(), *d = load_draft();
  preft_speculation spec = {.kind = PREFT_SPEC_DRAFT, .k = 3, .draft_model = d};
  preft_drafter_shape bounded = {.n_slots = 1, .max_ctx = 64, .n_blocks = 4, .max_batch = 8}, whole = bounded;
  whole.max_batch = 0;
  preft_drafter *db, *dw;
  preft_error err;
  assert_int_equal(preft_drafter_create(&dw, &spec, m, NULL, &whole, &err), 0);
  assert_int_equal(preft_drafter_create(&db, &spec, m, NULL, &bounded, &err), 0);
  int tokens[30], want[3], got[3];
  for (int i = 0; i < 30; i++) tokens[i] = (7 + 13 * i) % 256;
  preft_draft_req rw = {.tokens = tokens, .n_tokens = 30, .slot = 0, .k = 3, .out = want};
  assert_int_equal(dw->ops->draft(dw, &rw, 1, &err), 0);
  assert_int_equal(rw.n_out, 3);
  for (int call = 0; call < 4; call++) {
    preft_draft_req rb = {.tokens = tokens, .n_tokens = 30, .slot = 0, .k = 3, .out = got};
    assert_int_equal(db->ops->draft(db, &rb, 1, &err), 0);
    if (call < 3 && rb.n_out != 0)
      fail_msg("call %d drafted %d tokens having seen %d of 30 positions", call, rb.n_out, 8 * call);
    if (call == 3) {
      assert_int_equal(rb.n_out, 3);
      assert_memory_equal(got, want, sizeof want);
    }
  }
  preft_drafter_free(db);
  preft_drafter_free(dw);
  free_draft(d);
  preft_model_free(m);
}

/* A draft model with the target's vocabulary size but other bos or eos ids
 * is refused, saying which. */
static void a_draft_model_must_share_bos_and_eos(void **state) {
  (void)state;
  preft_model *m = load_base(), *d = load_draft();
  preft_model_config keep = d->cfg;
  preft_engine_config cfg = {.threads = 1, .speculation = {.kind = PREFT_SPEC_DRAFT, .draft_model = d}};
  preft_engine *e;
  preft_error err;
  d->cfg.bos_id = m->cfg.bos_id + 1;
  assert_int_not_equal(preft_engine_create(&e, m, &cfg, &err), 0);
  assert_non_null(strstr(err.msg, "bos_token_id"));
  d->cfg = keep;
  if (d->cfg.n_eos > 0)
    d->cfg.eos_ids[0]++;
  else
    d->cfg.eos_ids[d->cfg.n_eos++] = 3;
  assert_int_not_equal(preft_engine_create(&e, m, &cfg, &err), 0);
  assert_non_null(strstr(err.msg, "eos_token_id"));
  d->cfg = keep;
  preft_engine *ok;
  assert_int_equal(
      preft_engine_create(
          &ok, m, &(preft_engine_config){.threads = 1, .borrow_model = true, .speculation = cfg.speculation},
          &err),
      0);
  preft_engine_free(ok);
  free_draft(d);
  preft_model_free(m);
}

/* ---- scheduling: drafts get what the plain rows leave -------------------------- */

/* A request whose events record the engine's step count at delivery. */
typedef struct {
  collector c;
  preft_engine *e;
  long steps[64];
} stamped;

static bool on_stamped(void *user, const preft_token_event *ev) {
  stamped *s = user;
  preft_engine_stats st;
  preft_engine_get_stats(s->e, &st); /* callbacks run with the engine's lock released */
  if (ev->token >= 0 && s->c.n < 64) s->steps[s->c.n] = st.steps;
  return on_event(&s->c, ev);
}

enum { N_STAMPED = 8 };

/* Submits N_STAMPED requests (prompt r of np tokens, max_tokens each) to a
 * new engine and waits for them; returns its statistics. */
static preft_engine_stats run_stamped(const preft_engine_config *cfg, const int (*prompts)[32], const int *np,
                                      const int *max_tokens, int n, stamped *out) {
  preft_engine *e;
  preft_error err;
  if (preft_engine_create(&e, load_base(), cfg, &err) != 0) fail_msg("%s", err.msg);
  for (int r = 0; r < n; r++) {
    out[r].e = e;
    pthread_mutex_init(&out[r].c.mu, NULL);
    pthread_cond_init(&out[r].c.cv, NULL);
    preft_request_params p = {.prompt = prompts[r],
                              .n_prompt = np[r],
                              .adapter_mode = -1,
                              .max_tokens = max_tokens[r],
                              .sampling = {.top_p = 1}};
    uint64_t id;
    if (preft_engine_submit(e, &p, on_stamped, &out[r], &id, &err) != PREFT_SUBMIT_OK)
      fail_msg("%s", err.msg);
  }
  for (int r = 0; r < n; r++) {
    wait_done(&out[r].c);
    pthread_mutex_destroy(&out[r].c.mu);
    pthread_cond_destroy(&out[r].c.cv);
  }
  preft_engine_stats st;
  preft_engine_get_stats(e, &st);
  preft_engine_free(e);
  return st;
}

/* 8 decoding requests and a step budget of 24 rows: every step gives each
 * of them its row first (a token every step, from its first to its last),
 * and drafts get the 16 rows left. Reserving draft rows first starved the
 * newest ones (5 + 5 + 5 + 5 + 4 rows for the oldest five). */
static void every_decoding_sequence_advances_every_step(void **state) {
  (void)state;
  preft_engine_config cfg = {
      .threads = 1, .kv_cache_mb = 16, .max_running = 8, .max_step_tokens = 24, .speculation = ngram4};
  int prompts[N_STAMPED][32], np[N_STAMPED], max_tokens[N_STAMPED];
  for (int r = 0; r < N_STAMPED; r++) { /* a b a b: prompt lookup drafts a b at once */
    int a = 10 + 2 * r, b = 11 + 2 * r;
    prompts[r][0] = prompts[r][2] = a, prompts[r][1] = prompts[r][3] = b;
    np[r] = 4;
    max_tokens[r] = 24;
  }
  stamped *s = calloc(N_STAMPED, sizeof *s);
  preft_engine_stats st = run_stamped(&cfg, (const int(*)[32])prompts, np, max_tokens, N_STAMPED, s);
  for (int r = 0; r < N_STAMPED; r++) {
    assert_int_equal(s[r].c.n, 24);
    for (int i = 1; i < s[r].c.n; i++)
      if (s[r].steps[i] != s[r].steps[i - 1] && s[r].steps[i] != s[r].steps[i - 1] + 1)
        fail_msg(
            "request %d: token %d came in step %ld, the one before in step %ld: it got no row in between", r,
            i, s[r].steps[i], s[r].steps[i - 1]);
  }
  print_message("%ld steps; drafted %ld, kept %ld\n", st.steps, st.spec.drafted, st.spec.accepted);
  if (st.spec.drafted == 0) fail_msg("nothing was drafted: the test tests nothing");
  free(s);
}

/* Three KV blocks: the older request (13 prompt tokens) holds one, the
 * newer (16) one, one is free. In the next step the newer one's plain row
 * needs the free block; the older one's would fit its own block and only
 * its drafts would need the free one. Drafts come after plain rows, from
 * free blocks only: nothing is preempted (reserving drafts first took the
 * block and preempted the newer request). */
static void drafts_never_preempt(void **state) {
  (void)state;
  preft_engine_config cfg = {.threads = 1, .kv_blocks = 3, .max_running = 2, .speculation = ngram4};
  int prompts[2][32], np[2] = {13, 16}, max_tokens[2] = {30, 2};
  for (int r = 0; r < 2; r++) /* distinct tokens: no n-gram repeats */
    for (int i = 0; i < np[r]; i++) prompts[r][i] = 20 + 40 * r + i;
  /* The case needs both requests admitted in one step. The engine's thread
   * may step between the two submits (a loaded machine): then the older
   * one grows into the free block alone and a preemption is right, so such
   * a run says nothing and is run again. */
  for (int attempt = 0;; attempt++) {
    stamped s[2] = {0};
    preft_engine_stats st = run_stamped(&cfg, (const int(*)[32])prompts, np, max_tokens, 2, s);
    assert_int_equal(s[0].c.n, 30);
    assert_int_equal(s[1].c.n, 2);
    if (s[0].steps[0] != s[1].steps[0]) {
      if (attempt == 9) fail_msg("the two requests were never admitted in one step in 10 runs");
      continue;
    }
    if (st.preemptions != 0)
      fail_msg("%ld preemptions: a draft took a block a plain row needed", st.preemptions);
    break;
  }
}

/* ---- a residual of zeros ------------------------------------------------------- */

/* After a rejection the draw is from max(0, p - q), normalised. When q is
 * at least p everywhere (p and q equal but for rounding, in the limit) that
 * is 0 everywhere: the draw must then be from p, never token 0 (outside p
 * here: top-k cut it; in the default model, EOS). */
static void a_zero_residual_draws_from_the_target(void **state) {
  (void)state;
  const float logits[RULE_V] = {-3.0f, 1.2f, 0.3f, 2.0f, 0.9f, -0.5f};
  preft_sampling sp = {.temperature = 1, .top_k = 5, .top_p = 1, .seed = 11};
  float p[RULE_V], q[RULE_V];
  preft_sample_scratch w = {0};
  preft_sample_probs(&sp, &w, logits, RULE_V, p);
  assert_true(p[0] == 0.0f);
  memcpy(q, p, sizeof q);
  q[3] = 2 * p[3]; /* q >= p everywhere: no residual */
  preft_sampler target;
  preft_sampler_init(&target, &sp);
  long counts[RULE_V] = {0}, rejected = 0;
  for (int i = 0; i < 20000; i++) {
    bool acc;
    int tok = preft_spec_verify(&target, &w, logits, RULE_V, 3, q, &acc);
    assert_true(tok >= 0 && tok < RULE_V);
    if (p[tok] <= 0) fail_msg("draw %d emitted token %d, which the target cannot draw", i, tok);
    if (!acc) counts[tok]++, rejected++;
  }
  /* the rejections are draws from p: chi-square against it */
  double pd[RULE_V];
  for (int v = 0; v < RULE_V; v++) pd[v] = p[v];
  int df;
  double chi = chi_square(counts, pd, RULE_V, rejected, &df);
  print_message("rejected %ld of 20000 (expected half); chi2 against p %.1f (df %d)\n", rejected, chi, df);
  assert_true(rejected > 9000 && rejected < 11000);
  assert_true(chi <= chi_square_critical(df));
  preft_sampler_free(&target);
  preft_sample_scratch_free(&w);
}

int main(void) {
  const struct CMUnitTest lookup[] = {
      cmocka_unit_test(ngram_draft_copies_what_followed_the_latest_match),
      cmocka_unit_test(verify_rule_gives_the_target_distribution),
      cmocka_unit_test(greedy_tokens_are_those_without_speculation),
      cmocka_unit_test(drafted_sequences_survive_preemption),
      cmocka_unit_test(seeded_sampled_tokens_are_those_without_speculation),
      cmocka_unit_test(generate_with_speculation_gives_the_same_tokens),
      cmocka_unit_test(sampled_drafted_positions_keep_the_target_distribution),
      cmocka_unit_test(every_decoding_sequence_advances_every_step),
      cmocka_unit_test(drafts_never_preempt),
      cmocka_unit_test(a_zero_residual_draws_from_the_target),
  };
  const struct CMUnitTest draft_model[] = {
      cmocka_unit_test(greedy_tokens_with_a_draft_model_are_those_without),
      cmocka_unit_test(draft_model_sequences_survive_preemption),
      cmocka_unit_test(generate_with_a_draft_model_gives_the_same_greedy_tokens),
      cmocka_unit_test(draft_model_sampled_positions_keep_the_target_distribution),
      cmocka_unit_test(a_draft_model_must_share_the_vocabulary),
      cmocka_unit_test(a_draft_model_must_share_bos_and_eos),
      cmocka_unit_test(draft_model_catches_up_in_chunks),
      cmocka_unit_test(generate_with_a_sampled_draft_model_keeps_its_drafts),
  };
  const struct CMUnitTest second_position[] = {
      cmocka_unit_test(draft_model_second_drafted_position_keeps_the_target_distribution),
  };
  /* three programs (three time limits): test_speculative_draft.c runs the
   * draft model's group, test_speculative_k2.c the second drafted
   * position's distribution */
#if defined(SPEC_DRAFT_MODEL_GROUP)
  (void)lookup, (void)second_position;
  return cmocka_run_group_tests(draft_model, NULL, NULL);
#elif defined(SPEC_SECOND_POSITION_GROUP)
  (void)lookup, (void)draft_model;
  return cmocka_run_group_tests(second_position, NULL, NULL);
#else
  (void)draft_model, (void)second_position;
  return cmocka_run_group_tests(lookup, NULL, NULL);
#endif
}
