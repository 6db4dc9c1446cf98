/* test_train_grads.c - the training backward pass against the PyTorch
 * float64 autograd reference (tests/data/grads, written by
 * tools/make_reference_grads.py): the loss and the gradient of every
 * parameter of two tiny models (Llama untied; Qwen2 tied with q/k/v biases),
 * and of every LoRA A/B, LoReFT R/W/b and DiReFT W1/W2/b tensor in both
 * adapter modes, with the SFT loss mask; each with stored activations and
 * with recomputation, on 1 and 2 threads. Then central finite differences
 * of the C loss itself at the largest-gradient coordinate of every tensor. */
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
#include "testutil.h"
#include "train/train_model.h"

typedef struct {
  char *dir;
  cJSON *golden;
  preft_model *base;
  preft_adapter *loaded;
  preft_train_model tm;
  preft_train_adapter ad;
  bool adapter;
} grad_case;

static void load_case(grad_case *gc, const char *name) {
  memset(gc, 0, sizeof *gc);
  char rel[256];
  snprintf(rel, sizeof rel, "grads/%s", name);
  gc->dir = test_data_path(rel);
  gc->golden = test_load_golden(gc->dir, "tools/make_reference_grads.py");
  preft_error err;
  const cJSON *base = cJSON_GetObjectItem(gc->golden, "base");
  gc->adapter = base != NULL;
  char *mdir;
  if (gc->adapter) {
    snprintf(rel, sizeof rel, "models/%s", base->valuestring);
    mdir = test_data_path(rel);
  } else {
    mdir = preft_path_join(gc->dir, "model");
  }
  if (preft_model_load(&gc->base, mdir, &err) != 0) fail_msg("%s", err.msg);
  free(mdir);
  preft_train_model_from(&gc->tm, gc->base, !gc->adapter);
  if (gc->adapter) {
    char *adir = preft_path_join(gc->dir, "adapter");
    if (preft_adapter_load(&gc->loaded, adir, name, &gc->base->cfg, &err) != 0) fail_msg("%s", err.msg);
    free(adir);
    if (preft_train_adapter_from(&gc->ad, gc->loaded, &gc->base->cfg, &err) != 0) fail_msg("%s", err.msg);
  }
}

static void free_case(grad_case *gc) {
  preft_train_adapter_free(&gc->ad);
  preft_adapter_free(gc->loaded);
  preft_train_model_free(&gc->tm);
  preft_model_free(gc->base);
  cJSON_Delete(gc->golden);
  free(gc->dir);
}

/* The golden batch: row t predicts token t+1, counted iff t+1 >= prompt_len. */
static void build_batch(const grad_case *gc, preft_adapter_mode mode, preft_train_batch *b, int *max_len) {
  preft_train_batch_clear(b);
  *max_len = 0;
  const cJSON *s;
  cJSON_ArrayForEach(s, cJSON_GetObjectItem(gc->golden, "seqs")) {
    const cJSON *ids = cJSON_GetObjectItem(s, "ids");
    int n = cJSON_GetArraySize(ids), pl = cJSON_GetObjectItem(s, "prompt_len")->valueint;
    int *tok = malloc(sizeof(int) * (size_t)n), *tg = malloc(sizeof(int) * (size_t)n);
    uint8_t *fl = malloc((size_t)n);
    for (int t = 0; t < n; t++) tok[t] = cJSON_GetArrayItem(ids, t)->valueint;
    for (int t = 0; t < n; t++) {
      tg[t] = t + 1 < n && t + 1 >= pl ? tok[t + 1] : -1;
      fl[t] = gc->adapter ? (uint8_t)preft_train_row_flag(&gc->ad, mode, t, pl) : PREFT_ADAPT_OFF;
    }
    preft_train_batch_add(b, tok, tg, fl, n);
    *max_len = n > *max_len ? n : *max_len;
    free(tok);
    free(tg);
    free(fl);
  }
}

static preft_param_set *trained_set(grad_case *gc) { return gc->adapter ? &gc->ad.ps : &gc->tm.ps; }

static double run_loss(grad_case *gc, preft_pool *pool, preft_adapter_mode mode, bool recompute,
                       bool backward) {
  preft_train_batch b = {0};
  int max_len;
  build_batch(gc, mode, &b, &max_len);
  preft_train_acts acts;
  preft_train_acts_init(&acts, &gc->tm, gc->adapter ? &gc->ad : NULL, b.n, max_len, preft_pool_size(pool),
                        recompute);
  preft_param_set_zero_grad(trained_set(gc));
  double sum;
  preft_error err;
  if (preft_train_pass(&gc->tm, gc->adapter ? &gc->ad : NULL, pool, &b, &acts,
                       backward ? 1.0f / (float)b.n_targets : 0.0f, &sum, &err) != 0)
    fail_msg("%s", err.msg);
  double loss = sum / b.n_targets;
  preft_train_acts_free(&acts);
  preft_train_batch_free(&b);
  return loss;
}

static void compare_grads(grad_case *gc, const char *name, const char *mode_name, preft_pool *pool,
                          preft_adapter_mode mode, bool recompute) {
  const cJSON *m = cJSON_GetObjectItem(cJSON_GetObjectItem(gc->golden, "modes"), mode_name);
  assert_non_null(m);
  double want_loss = cJSON_GetObjectItem(m, "loss")->valuedouble;
  char *gp = preft_path_join(gc->dir, cJSON_GetObjectItem(m, "grads")->valuestring);
  size_t size;
  double *gold = test_read_all(gp, &size);
  free(gp);
  assert_non_null(gold);
  double loss = run_loss(gc, pool, mode, recompute, true);
  if (fabs(loss - want_loss) > 1e-5 * fabs(want_loss))
    fail_msg("%s [%s]: loss %.8f, reference %.8f", name, mode_name, loss, want_loss);
  size_t off = 0;
  const cJSON *t;
  preft_param_set *ps = trained_set(gc);
  int seen = 0;
  cJSON_ArrayForEach(t, cJSON_GetObjectItem(gc->golden, "tensors")) {
    const char *tn = cJSON_GetObjectItem(t, "name")->valuestring;
    size_t n = 1;
    const cJSON *d;
    cJSON_ArrayForEach(d, cJSON_GetObjectItem(t, "shape")) n *= (size_t)d->valueint;
    const preft_train_tensor *tt = preft_param_set_find(ps, tn);
    if (!tt) fail_msg("%s: no trained tensor %s", name, tn);
    if (tt->n != n) fail_msg("%s: %s has %zu elements, reference %zu", name, tn, tt->n, n);
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
      double e = (double)tt->g[i] - gold[off + i];
      num += e * e;
      den += gold[off + i] * gold[off + i];
    }
    double rel = den > 0 ? sqrt(num / den) : sqrt(num);
    if (!(den > 0 ? rel < 1e-4 : sqrt(num) < 1e-9))
      fail_msg("%s [%s%s]: gradient of %s off: relative L2 error %.3g", name, mode_name,
               recompute ? ", recompute" : "", tn, rel);
    off += n;
    seen++;
  }
  assert_int_equal(seen, ps->n_t);
  assert_int_equal(off * sizeof(double), size);
  free(gold);
}

static const char *FULL[] = {"full-llama-tiny", "full-qwen2-tied-bias"};
static const char *ADAPTERS[] = {"lora-all7-r4", "lora-qv-layer1-r2",  "loreft-f2l2",
                                 "loreft-all",   "direft-f2l2-shared", "direft-all"};

static void full_model_gradients_match_pytorch(void **state) {
  preft_pool *pools[2] = {preft_pool_create(1), preft_pool_create(2)};
  for (size_t i = 0; i < sizeof FULL / sizeof FULL[0]; i++) {
    grad_case gc;
    load_case(&gc, FULL[i]);
    for (int p = 0; p < 2; p++)
      for (int rc = 0; rc <= 1; rc++) compare_grads(&gc, FULL[i], "all", pools[p], PREFT_MODE_ALL, rc);
    free_case(&gc);
  }
  preft_pool_free(pools[0]);
  preft_pool_free(pools[1]);
}

static void adapter_gradients_match_pytorch_in_both_modes(void **state) {
  preft_pool *pool = preft_pool_create(2);
  for (size_t i = 0; i < sizeof ADAPTERS / sizeof ADAPTERS[0]; i++) {
    grad_case gc;
    load_case(&gc, ADAPTERS[i]);
    compare_grads(&gc, ADAPTERS[i], "all", pool, PREFT_MODE_ALL, false);
    compare_grads(&gc, ADAPTERS[i], "prefill", pool, PREFT_MODE_PREFILL, false);
    compare_grads(&gc, ADAPTERS[i], "prefill", pool, PREFT_MODE_PREFILL, true);
    free_case(&gc);
  }
  preft_pool_free(pool);
}

/* Central differences of the C loss (FP32 forward) at the coordinate of each
 * tensor with the largest analytic gradient. */
static void check_finite_differences(const char *name, preft_adapter_mode mode) {
  preft_pool *pool = preft_pool_create(2);
  grad_case gc;
  load_case(&gc, name);
  run_loss(&gc, pool, mode, false, true);
  preft_param_set *ps = trained_set(&gc);
  float *grad = malloc(sizeof(float) * ps->n);
  memcpy(grad, ps->grad, sizeof(float) * ps->n);
  for (int k = 0; k < ps->n_t; k++) {
    preft_train_tensor *t = &ps->t[k];
    const float *g = grad + (t->p - ps->mem);
    size_t best = 0;
    for (size_t i = 1; i < t->n; i++)
      if (fabsf(g[i]) > fabsf(g[best])) best = i;
    if (g[best] == 0.0f) continue;
    float keep = t->p[best], eps = 1e-2f * fmaxf(1.0f, fabsf(keep));
    t->p[best] = keep + eps;
    double lp = run_loss(&gc, pool, mode, false, false);
    t->p[best] = keep - eps;
    double lm = run_loss(&gc, pool, mode, false, false);
    t->p[best] = keep;
    double fd = (lp - lm) / (2.0 * (double)eps);
    double tol = 0.03 * fabs((double)g[best]) + 2e-3;
    if (fabs(fd - g[best]) > tol)
      fail_msg("%s: %s[%zu]: finite difference %.6g, backward %.6g", name, t->name, best, fd,
               (double)g[best]);
  }
  free(grad);
  free_case(&gc);
  preft_pool_free(pool);
}

static void finite_differences_agree(void **state) {
  check_finite_differences("full-llama-tiny", PREFT_MODE_ALL);
  check_finite_differences("lora-qv-layer1-r2", PREFT_MODE_PREFILL);
  check_finite_differences("loreft-f2l2", PREFT_MODE_PREFILL);
  check_finite_differences("direft-all", PREFT_MODE_ALL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(full_model_gradients_match_pytorch),
      cmocka_unit_test(adapter_gradients_match_pytorch_in_both_modes),
      cmocka_unit_test(finite_differences_agree),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
