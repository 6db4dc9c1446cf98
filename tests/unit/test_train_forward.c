/* test_train_forward.c - the training forward pass runs exactly what serving
 * runs: its logits equal the PyTorch goldens and preft_model_forward's on
 * every reference model (tests/data/models) and adapter case
 * (tests/data/adapters) in both modes, with the same per-row flags; an
 * adapter the trainer saves (PEFT / ReFT directory) loads with
 * preft_adapter_load, keeps its mode, and serves the logits it trained with;
 * LoReFT's R stays orthonormal after re-orthonormalisation. */
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
#include "model/kv_cache.h"
#include "model/llama.h"
#include "testutil.h"
#include "train/rng.h"
#include "train/train_model.h"

/* logits [n, V] of one sequence through the serving forward */
static void serve_logits(const preft_model *m, const preft_adapter *a, preft_adapter_mode mode,
                         const int *ids, int n, int prompt_len, float *out) {
  preft_error err;
  preft_kv_cache kv;
  if (preft_kv_init(&kv, m->cfg.n_layers, m->cfg.n_kv_heads * m->cfg.head_dim, 16, (n + 15) / 16 + 1, 1, n,
                    &err))
    fail_msg("%s", err.msg);
  assert_int_equal(preft_kv_reserve(&kv, 0, n, &err), 0);
  int *pos = malloc(sizeof(int) * (size_t)n), *seq = calloc((size_t)n, sizeof(int)),
      *rows = malloc(sizeof(int) * (size_t)n);
  const preft_adapter **ads = malloc(sizeof(void *) * (size_t)n);
  uint8_t *fl = malloc((size_t)n);
  for (int i = 0; i < n; i++) {
    pos[i] = rows[i] = i;
    ads[i] = a;
    fl[i] = a ? (uint8_t)preft_adapter_row_flag(a, mode, i, prompt_len) : 0;
  }
  preft_batch b = {.n = n,
                   .token = ids,
                   .pos = pos,
                   .seq = seq,
                   .logit_rows = rows,
                   .n_logits = n,
                   .adapter = a ? ads : NULL,
                   .adapt = a ? fl : NULL};
  preft_workspace ws = {0};
  preft_pool *pool = preft_pool_create(2);
  if (preft_model_forward(m, pool, &kv, &b, &ws, out, &err) != 0) fail_msg("%s", err.msg);
  preft_pool_free(pool);
  preft_workspace_free(&ws);
  preft_kv_free(&kv);
  free(pos);
  free(seq);
  free(rows);
  free(ads);
  free(fl);
}

static void train_logits(const preft_train_model *tm, const preft_train_adapter *ad, preft_adapter_mode mode,
                         const int *ids, int n, int prompt_len, float *out) {
  preft_train_batch b = {0};
  uint8_t *fl = malloc((size_t)n);
  for (int i = 0; i < n; i++) fl[i] = ad ? (uint8_t)preft_train_row_flag(ad, mode, i, prompt_len) : 0;
  preft_train_batch_add(&b, ids, NULL, fl, n);
  preft_train_acts acts;
  preft_train_acts_init(&acts, tm, ad, n, n, 2, false);
  preft_pool *pool = preft_pool_create(2);
  preft_error err;
  if (preft_train_logits(tm, ad, pool, &b, &acts, out, &err) != 0) fail_msg("%s", err.msg);
  preft_pool_free(pool);
  preft_train_acts_free(&acts);
  preft_train_batch_free(&b);
  free(fl);
}

static double max_rel_row(const float *a, const float *b, int n, int v) {
  double worst = 0;
  for (int t = 0; t < n; t++) {
    double num = 0, den = 0;
    for (int k = 0; k < v; k++) {
      double d = (double)a[(size_t)t * v + k] - b[(size_t)t * v + k];
      num += d * d;
      den += (double)b[(size_t)t * v + k] * b[(size_t)t * v + k];
    }
    double r = sqrt(num / (den > 0 ? den : 1));
    worst = r > worst ? r : worst;
  }
  return worst;
}

static void training_logits_equal_serving_on_reference_models(void **state) {
  const char *names[] = {"llama-gqa-rope3", "qwen2-bias-tied-bf16", "llama-headdim-f16", "mistral-long"};
  for (size_t i = 0; i < 4; i++) {
    char rel[128];
    snprintf(rel, sizeof rel, "models/%s", names[i]);
    char *dir = test_data_path(rel);
    preft_model *m;
    preft_error err;
    if (preft_model_load(&m, dir, &err) != 0) fail_msg("%s", err.msg);
    char *idp = preft_path_join(dir, "golden_ids.txt"), *lp = preft_path_join(dir, "golden_logits.f64");
    char *idtext = test_read_all(idp, NULL);
    int ids[512], n = 0;
    for (char *s = strtok(idtext, ",\n"); s; s = strtok(NULL, ",\n")) ids[n++] = atoi(s);
    double *gold = test_read_all(lp, NULL);
    int V = m->cfg.vocab;
    float *got = malloc(sizeof(float) * (size_t)n * V), *serve = malloc(sizeof(float) * (size_t)n * V);
    preft_train_model tm;
    preft_train_model_from(&tm, m, false);
    train_logits(&tm, NULL, PREFT_MODE_ALL, ids, n, n, got);
    serve_logits(m, NULL, PREFT_MODE_ALL, ids, n, n, serve);
    for (int t = 0; t < n; t++) {
      double r = test_rel_l2(got + (size_t)t * V, gold + (size_t)t * V, (size_t)V);
      if (r > 1e-4) fail_msg("%s: position %d: relative error %.3g against PyTorch", names[i], t, r);
    }
    double rs = max_rel_row(got, serve, n, V);
    if (rs > 2e-5) fail_msg("%s: training and serving logits differ by %.3g", names[i], rs);
    preft_train_model_free(&tm);
    preft_model_free(m);
    free(got);
    free(serve);
    free(gold);
    free(idtext);
    free(idp);
    free(lp);
    free(dir);
  }
}

static void training_logits_equal_serving_with_adapters(void **state) {
  const char *cases[] = {"lora-qv-r4",  "lora-layers-list-f16", "lora-regex-layers-f16", "lora-qwen2-bf16",
                         "loreft-f3l3", "loreft-all-shared",    "direft-f5l5-shared"};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char rel[128];
    snprintf(rel, sizeof rel, "adapters/%s", cases[i]);
    char *dir = test_data_path(rel);
    char *gp = preft_path_join(dir, "golden.json");
    char *text = test_read_all(gp, NULL);
    cJSON *g = cJSON_Parse(text);
    snprintf(rel, sizeof rel, "models/%s", cJSON_GetObjectItem(g, "base")->valuestring);
    char *mdir = test_data_path(rel);
    preft_model *m;
    preft_adapter *a;
    preft_error err;
    if (preft_model_load(&m, mdir, &err) != 0 || preft_adapter_load(&a, dir, cases[i], &m->cfg, &err) != 0)
      fail_msg("%s", err.msg);
    preft_train_model tm;
    preft_train_adapter ad;
    preft_train_model_from(&tm, m, false);
    if (preft_train_adapter_from(&ad, a, &m->cfg, &err) != 0) fail_msg("%s: %s", cases[i], err.msg);
    const cJSON *idj = cJSON_GetObjectItem(g, "ids");
    int n = cJSON_GetArraySize(idj), pl = cJSON_GetObjectItem(g, "prompt_len")->valueint, V = m->cfg.vocab;
    int *ids = malloc(sizeof(int) * (size_t)n);
    for (int t = 0; t < n; t++) ids[t] = cJSON_GetArrayItem(idj, t)->valueint;
    float *got = malloc(sizeof(float) * (size_t)n * V), *serve = malloc(sizeof(float) * (size_t)n * V);
    const char *modes[] = {"all", "prefill"};
    for (int mi = 0; mi < 2; mi++) {
      preft_adapter_mode mode = mi ? PREFT_MODE_PREFILL : PREFT_MODE_ALL;
      char *fp = preft_path_join(
          dir, cJSON_GetObjectItem(cJSON_GetObjectItem(g, "goldens"), modes[mi])->valuestring);
      double *gold = test_read_all(fp, NULL);
      train_logits(&tm, &ad, mode, ids, n, pl, got);
      serve_logits(m, a, mode, ids, n, pl, serve);
      for (int t = 0; t < n; t++) {
        double r = test_rel_l2(got + (size_t)t * V, gold + (size_t)t * V, (size_t)V);
        if (r > 1e-4)
          fail_msg("%s [%s]: position %d: relative error %.3g against PyTorch", cases[i], modes[mi], t, r);
      }
      double rs = max_rel_row(got, serve, n, V);
      if (rs > 2e-5) fail_msg("%s [%s]: training and serving logits differ by %.3g", cases[i], modes[mi], rs);
      free(gold);
      free(fp);
    }
    free(ids);
    free(got);
    free(serve);
    preft_train_adapter_free(&ad);
    preft_train_model_free(&tm);
    preft_adapter_free(a);
    preft_model_free(m);
    cJSON_Delete(g);
    free(text);
    free(gp);
    free(mdir);
    free(dir);
  }
}

static void saved_adapters_load_and_serve_what_was_trained(void **state) {
  char *mdir = test_data_path("models/llama-gqa-rope3");
  preft_model *m;
  preft_error err;
  if (preft_model_load(&m, mdir, &err) != 0) fail_msg("%s", err.msg);
  preft_train_model tm;
  preft_train_model_from(&tm, m, false);
  bool layer1[2] = {false, true};
  preft_train_adapter_opts opts[3] = {
      {.kind = PREFT_ADAPTER_LORA,
       .mode = PREFT_MODE_PREFILL,
       .rank = 4,
       .alpha = 8,
       .modules = {true, false, true, true, false, true, true},
       .layers = layer1,
       .seed = 1},
      {.kind = PREFT_ADAPTER_LOREFT, .mode = PREFT_MODE_PREFILL, .rank = 3, .positions = "f3+l3", .seed = 2},
      {.kind = PREFT_ADAPTER_DIREFT, .mode = PREFT_MODE_ALL, .rank = 2, .positions = "all", .seed = 3},
  };
  int n = 20, pl = 11, V = m->cfg.vocab, ids[20];
  for (int t = 0; t < n; t++) ids[t] = (t * 37 + 5) % V;
  float *got = malloc(sizeof(float) * (size_t)n * V), *serve = malloc(sizeof(float) * (size_t)n * V);
  for (int k = 0; k < 3; k++) {
    preft_train_adapter ad;
    if (preft_train_adapter_init(&ad, &m->cfg, &opts[k], &err) != 0) fail_msg("%s", err.msg);
    /* move away from the init (B = 0 would make LoRA a no-op) */
    preft_rng rng;
    preft_rng_seed(&rng, 99);
    for (size_t i = 0; i < ad.ps.n; i++) ad.ps.mem[i] += 0.05f * preft_rng_normal(&rng);
    preft_train_adapter_orthonormalize(&ad);
    char *tmp = test_tmpdir();
    char *out = preft_path_join(tmp, "adapter");
    if (preft_train_adapter_save(&ad, out, "llama-gqa-rope3", &err) != 0) fail_msg("%s", err.msg);
    preft_adapter *a;
    if (preft_adapter_load(&a, out, "trained", &m->cfg, &err) != 0) fail_msg("%s", err.msg);
    assert_int_equal(a->default_mode, opts[k].mode);
    assert_int_equal(a->kind, opts[k].kind);
    train_logits(&tm, &ad, a->default_mode, ids, n, pl, got);
    serve_logits(m, a, a->default_mode, ids, n, pl, serve);
    double rs = max_rel_row(got, serve, n, V);
    if (rs > 2e-5) fail_msg("adapter %d: saved adapter serves logits %.3g away from training's", k, rs);
    if (k == 1) { /* R rows orthonormal */
      const preft_train_tensor *t = preft_param_set_find(&ad.ps, "layers.0.first.rotate");
      assert_non_null(t);
      for (int i = 0; i < t->rows; i++)
        for (int j = 0; j < t->rows; j++) {
          double dot = 0;
          for (int c = 0; c < t->cols; c++) dot += (double)t->p[i * t->cols + c] * t->p[j * t->cols + c];
          assert_true(fabs(dot - (i == j)) < 1e-5);
        }
    }
    preft_adapter_free(a);
    preft_train_adapter_free(&ad);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    assert_int_equal(system(cmd), 0);
    free(out);
    free(tmp);
  }
  free(got);
  free(serve);
  preft_train_model_free(&tm);
  preft_model_free(m);
  free(mdir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(training_logits_equal_serving_on_reference_models),
      cmocka_unit_test(training_logits_equal_serving_with_adapters),
      cmocka_unit_test(saved_adapters_load_and_serve_what_was_trained),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
