/* test_grpo.c - GRPO (src/rl/grpo*.c) against the PyTorch float64
 * reference (tests/data/grpo, written by tools/make_reference_grpo.py):
 * for a LoRA, a LoReFT and a DiReFT adapter, in both adapter modes, fixed
 * rollouts (three groups of three, one all-equal) with fixed rewards and
 * rollout log-probabilities: the advantages and the count of equal groups,
 * the base model's log-probabilities, the loss (clipped ratios included),
 * the mean k3 KL and the gradient of every adapter tensor. Tolerances: loss
 * and KL 1e-5 relative (+1e-7), log-probabilities 2e-5 absolute, gradients
 * 1e-4 relative L2 per tensor (the FP32 pass against float64, as
 * test_train_grads.c).
 *
 * Then rollouts through the engine: the same seed gives the same tokens and
 * log-probabilities, another seed other tokens, and the engine's
 * log-probabilities equal the training pass's (the ratio of the first
 * epoch is 1) for an adapter served all-token and prefill-only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "model/adapter.h"
#include "model/llama.h"
#include "preft/engine.h"
#include "rl/grpo.h"
#include "testutil.h"
#include "train/train_model.h"

typedef struct {
  char *dir;
  cJSON *golden;
  preft_model *base;
  preft_adapter *loaded;
  preft_train_model tm;
  preft_train_adapter ad;
} grpo_case;

static void load_case(grpo_case *gc, const char *name) {
  memset(gc, 0, sizeof *gc);
  char rel[256];
  snprintf(rel, sizeof rel, "grpo/%s", name);
  gc->dir = test_data_path(rel);
  gc->golden = test_load_golden(gc->dir, "tools/make_reference_grpo.py");
  preft_error err;
  snprintf(rel, sizeof rel, "models/%s", cJSON_GetObjectItem(gc->golden, "base")->valuestring);
  char *mdir = test_data_path(rel);
  if (preft_model_load(&gc->base, mdir, &err) != 0) fail_msg("%s", err.msg);
  free(mdir);
  preft_train_model_from(&gc->tm, gc->base, false);
  char *adir = test_data_path(cJSON_GetObjectItem(gc->golden, "adapter")->valuestring);
  if (preft_adapter_load(&gc->loaded, adir, name, &gc->base->cfg, &err) != 0) fail_msg("%s", err.msg);
  free(adir);
  if (preft_train_adapter_from(&gc->ad, gc->loaded, &gc->base->cfg, &err) != 0) fail_msg("%s", err.msg);
}

static void free_case(grpo_case *gc) {
  preft_train_adapter_free(&gc->ad);
  preft_adapter_free(gc->loaded);
  preft_train_model_free(&gc->tm);
  preft_model_free(gc->base);
  cJSON_Delete(gc->golden);
  free(gc->dir);
}

/* The golden rollouts of one mode as a batch. */
static void build_batch(const grpo_case *gc, const cJSON *mode, preft_grpo_batch *b) {
  memset(b, 0, sizeof *b);
  const cJSON *samples = cJSON_GetObjectItem(gc->golden, "samples");
  b->n = cJSON_GetArraySize(samples);
  b->group = cJSON_GetObjectItem(gc->golden, "group")->valueint;
  b->s = calloc((size_t)b->n, sizeof *b->s);
  const cJSON *olds = cJSON_GetObjectItem(mode, "old_logp");
  for (int i = 0; i < b->n; i++) {
    const cJSON *s = cJSON_GetArrayItem(samples, i), *ids = cJSON_GetObjectItem(s, "ids");
    preft_grpo_sample *x = &b->s[i];
    x->n = cJSON_GetArraySize(ids);
    x->prompt_len = cJSON_GetObjectItem(s, "prompt_len")->valueint;
    x->reward = cJSON_GetObjectItem(s, "reward")->valuedouble;
    x->ids = malloc(sizeof(int) * (size_t)x->n);
    for (int t = 0; t < x->n; t++) x->ids[t] = cJSON_GetArrayItem(ids, t)->valueint;
    const cJSON *old = cJSON_GetArrayItem(olds, i);
    assert_int_equal(cJSON_GetArraySize(old), x->n - x->prompt_len);
    x->old_logp = malloc(sizeof(float) * (size_t)(x->n - x->prompt_len));
    for (int t = 0; t < x->n - x->prompt_len; t++)
      x->old_logp[t] = (float)cJSON_GetArrayItem(old, t)->valuedouble;
  }
}

static void near(const char *what, double got, double want, double rel, double abs_tol) {
  if (!(fabs(got - want) <= rel * fabs(want) + abs_tol))
    fail_msg("%s: %.9g, reference %.9g", what, got, want);
}

static void check_mode(grpo_case *gc, const char *name, const char *mode_name, preft_adapter_mode mode,
                       preft_pool *pool) {
  const cJSON *m = cJSON_GetObjectItem(cJSON_GetObjectItem(gc->golden, "modes"), mode_name);
  assert_non_null(m);
  gc->ad.mode = mode;
  preft_grpo_batch b;
  build_batch(gc, m, &b);
  double mean, std;
  int equal = preft_grpo_advantages(&b, &mean, &std);
  assert_int_equal(equal, cJSON_GetObjectItem(gc->golden, "equal_groups")->valueint);
  assert_true(equal > 0); /* the golden has an all-equal group: it must be skipped */
  const cJSON *adv = cJSON_GetObjectItem(gc->golden, "advantages");
  for (int i = 0; i < b.n; i++)
    near("advantage", b.s[i].adv, cJSON_GetArrayItem(adv, i)->valuedouble, 1e-12, 1e-12);

  preft_grpo_updater u;
  preft_grpo_updater_init(&u, &gc->tm, &gc->ad, pool, 2); /* 2 samples per pass: several passes */
  preft_error err;
  if (preft_grpo_ref_logprobs(&u, &b, &err) != 0) fail_msg("%s", err.msg);
  const cJSON *refs = cJSON_GetObjectItem(m, "ref_logp");
  for (int i = 0; i < b.n; i++) {
    if (!preft_grpo_sample_counts(&b, i)) {
      assert_null(b.s[i].ref_logp); /* equal groups cost no pass */
      continue;
    }
    for (int t = 0; t < b.s[i].n - b.s[i].prompt_len; t++)
      near("base log-probability", b.s[i].ref_logp[t],
           cJSON_GetArrayItem(cJSON_GetArrayItem(refs, i), t)->valuedouble, 0, 2e-5);
  }
  preft_grpo_loss_opts lo = {.clip_eps = cJSON_GetObjectItem(gc->golden, "clip_eps")->valuedouble,
                             .kl_coef = cJSON_GetObjectItem(gc->golden, "kl_coef")->valuedouble};
  preft_grpo_update_stats st;
  if (preft_grpo_gradient(&u, &b, &lo, false, &st, &err) != 0) fail_msg("%s", err.msg);
  char what[160];
  snprintf(what, sizeof what, "%s [%s] loss", name, mode_name);
  /* the loss is a mean of advantage × ratio terms of order 1 that cancel
   * (advantages sum to zero per group), so its FP32 error is absolute, at
   * the terms' scale: 1-2e-7 measured from the order of sums alone */
  near(what, st.loss, cJSON_GetObjectItem(m, "loss")->valuedouble, 1e-5, 5e-7);
  snprintf(what, sizeof what, "%s [%s] kl", name, mode_name);
  near(what, st.kl, cJSON_GetObjectItem(m, "kl")->valuedouble, 1e-5, 1e-7);
  assert_int_equal(st.tokens, cJSON_GetObjectItem(m, "tokens")->valueint);
  near("clipped tokens", st.clip_frac * (double)st.tokens, cJSON_GetObjectItem(m, "clipped")->valuedouble, 0,
       1e-9);

  char *gp = preft_path_join(gc->dir, cJSON_GetObjectItem(m, "grads")->valuestring);
  size_t size;
  double *gold = test_read_all(gp, &size);
  free(gp);
  assert_non_null(gold);
  size_t off = 0;
  const cJSON *t;
  cJSON_ArrayForEach(t, cJSON_GetObjectItem(gc->golden, "tensors")) {
    const char *tn = cJSON_GetObjectItem(t, "name")->valuestring;
    const preft_train_tensor *tt = preft_param_set_find(&gc->ad.ps, tn);
    if (!tt) fail_msg("%s: no trained tensor %s", name, tn);
    double num = 0, den = 0;
    for (size_t i = 0; i < tt->n; i++) {
      double e = (double)tt->g[i] - gold[off + i];
      num += e * e;
      den += gold[off + i] * gold[off + i];
    }
    double rel = den > 0 ? sqrt(num / den) : sqrt(num);
    if (!(den > 0 ? rel < 1e-4 : sqrt(num) < 1e-9))
      fail_msg("%s [%s]: GRPO gradient of %s off: relative L2 error %.3g", name, mode_name, tn, rel);
    off += tt->n;
  }
  assert_int_equal(off * sizeof(double), size);
  free(gold);

  /* the first epoch's set_old: old_logp becomes the forward's own, the ratio
   * 1; a second pass with those values gives the same loss and gradient */
  if (preft_grpo_gradient(&u, &b, &lo, true, &st, &err) != 0) fail_msg("%s", err.msg);
  assert_true(st.clip_frac == 0.0);
  float *g1 = malloc(sizeof(float) * gc->ad.ps.n);
  memcpy(g1, gc->ad.ps.grad, sizeof(float) * gc->ad.ps.n);
  double loss1 = st.loss;
  preft_grpo_update_stats st2;
  if (preft_grpo_gradient(&u, &b, &lo, false, &st2, &err) != 0) fail_msg("%s", err.msg);
  assert_true(st2.loss == loss1);
  assert_memory_equal(g1, gc->ad.ps.grad, sizeof(float) * gc->ad.ps.n);
  free(g1);
  preft_grpo_updater_free(&u);
  preft_grpo_batch_free(&b);
}

static void loss_and_gradients_match_pytorch(void **state) {
  (void)state;
  static const char *cases[] = {"lora-all7-r4", "loreft-all", "direft-all"};
  preft_pool *pool = preft_pool_create(2);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    grpo_case gc;
    load_case(&gc, cases[i]);
    check_mode(&gc, cases[i], "all", PREFT_MODE_ALL, pool);
    check_mode(&gc, cases[i], "prefill", PREFT_MODE_PREFILL, pool);
    free_case(&gc);
  }
  preft_pool_free(pool);
}

/* Every group equal: nothing counts, the gradient stays zero. */
static void all_equal_groups_give_no_gradient(void **state) {
  (void)state;
  grpo_case gc;
  load_case(&gc, "lora-all7-r4");
  const cJSON *m = cJSON_GetObjectItem(cJSON_GetObjectItem(gc.golden, "modes"), "all");
  preft_grpo_batch b;
  build_batch(&gc, m, &b);
  for (int i = 0; i < b.n; i++) b.s[i].reward = 0.25;
  double mean, std;
  assert_int_equal(preft_grpo_advantages(&b, &mean, &std), b.n / b.group);
  preft_pool *pool = preft_pool_create(1);
  preft_grpo_updater u;
  preft_grpo_updater_init(&u, &gc.tm, &gc.ad, pool, 4);
  preft_grpo_loss_opts lo = {.clip_eps = 0.2};
  preft_grpo_update_stats st;
  preft_error err;
  assert_int_equal(preft_grpo_gradient(&u, &b, &lo, true, &st, &err), 0);
  assert_int_equal(st.samples, 0);
  assert_int_equal(st.rows, 0);
  for (size_t i = 0; i < gc.ad.ps.n; i++) assert_true(gc.ad.ps.grad[i] == 0.0f);
  preft_grpo_updater_free(&u);
  preft_pool_free(pool);
  preft_grpo_batch_free(&b);
  free_case(&gc);
}

/* ---- rollouts through the engine --------------------------------------------------- */

static void rollout(preft_engine *e, uint64_t seed, const char *adapter, int mode, preft_grpo_batch *b) {
  static int p0[] = {1, 5, 9, 13, 17}, p1[] = {1, 22, 7, 30};
  int *ids[] = {p0, p1}, lens[] = {5, 4};
  preft_grpo_rollout_opts o = {.group = 3,
                               .max_new_tokens = 12,
                               .temperature = 1.0f,
                               .top_p = 0.95f,
                               .seed = seed,
                               .step = 4,
                               .adapter = adapter,
                               .adapter_mode = mode};
  preft_error err;
  if (preft_grpo_rollout(e, NULL, ids, lens, 2, &o, b, &err) != 0) fail_msg("%s", err.msg);
  assert_int_equal(b->n, 6);
}

static bool same_rollouts(const preft_grpo_batch *a, const preft_grpo_batch *b) {
  for (int i = 0; i < a->n; i++) {
    if (a->s[i].n != b->s[i].n || memcmp(a->s[i].ids, b->s[i].ids, sizeof(int) * (size_t)a->s[i].n))
      return false;
    if (memcmp(a->s[i].engine_logp, b->s[i].engine_logp,
               sizeof(float) * (size_t)(a->s[i].n - a->s[i].prompt_len)))
      return false;
  }
  return true;
}

/* The largest gap between the engine's log-probabilities of the sampled
 * tokens and the training forward's, through the first epoch's gradient
 * (which records the latter as old_logp). */
static double logp_gap(grpo_case *gc, preft_grpo_batch *b, preft_pool *pool) {
  for (int i = 0; i < b->n; i++) b->s[i].reward = i % 2; /* every group counts */
  double mean, std;
  assert_int_equal(preft_grpo_advantages(b, &mean, &std), 0);
  preft_grpo_updater u;
  preft_grpo_updater_init(&u, &gc->tm, &gc->ad, pool, 4);
  preft_grpo_loss_opts lo = {.clip_eps = 0.2};
  preft_grpo_update_stats st;
  preft_error err;
  if (preft_grpo_gradient(&u, b, &lo, true, &st, &err) != 0) fail_msg("%s", err.msg);
  assert_int_equal(st.samples, b->n);
  assert_true(st.clip_frac == 0.0); /* ratio 1 */
  preft_grpo_updater_free(&u);
  return st.logp_gap;
}

static void rollouts_reproduce_and_match_the_training_pass(void **state) {
  (void)state;
  grpo_case gc;
  load_case(&gc, "lora-all7-r4");
  preft_model *view = preft_train_model_view(&gc.tm);
  preft_engine_config ec = {.threads = 2, .kv_blocks = 64, .borrow_model = true};
  preft_engine *e;
  preft_error err;
  if (preft_engine_create(&e, view, &ec, &err) != 0) fail_msg("%s", err.msg);
  char *adir = test_data_path("grads/lora-all7-r4/adapter");
  if (preft_engine_load_adapter(e, "policy", adir, &err) != 0) fail_msg("%s", err.msg);
  free(adir);
  preft_pool *pool = preft_pool_create(2);
  for (int mode = PREFT_MODE_ALL; mode <= PREFT_MODE_PREFILL; mode++) {
    preft_grpo_batch a, b, c;
    rollout(e, 11, "policy", mode, &a);
    rollout(e, 11, "policy", mode, &b);
    rollout(e, 12, "policy", mode, &c);
    assert_true(same_rollouts(&a, &b));
    assert_false(same_rollouts(&a, &c));
    int produced = 0;
    for (int i = 0; i < a.n; i++) produced += a.s[i].n - a.s[i].prompt_len;
    assert_true(produced > a.n); /* more than one token per sample on average */
    gc.ad.mode = (preft_adapter_mode)mode;
    double gap = logp_gap(&gc, &a, pool);
    assert_true(gap > 0.0); /* measured, not skipped */
    if (gap > 1e-4) fail_msg("mode %d: engine and training log-probabilities differ by %.3g", mode, gap);
    preft_grpo_batch_free(&a);
    preft_grpo_batch_free(&b);
    preft_grpo_batch_free(&c);
  }
  preft_pool_free(pool);
  preft_engine_free(e);
  preft_train_model_view_free(view);
  free_case(&gc);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(loss_and_gradients_match_pytorch),
      cmocka_unit_test(all_equal_groups_give_no_gradient),
      cmocka_unit_test(rollouts_reproduce_and_match_the_training_pass),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
