/* test_bert_lora.c - LoRA adapters of the BERT encoder as Hugging Face PEFT
 * directories (bert_lora.c on peft_lora.c):
 *   - goldens: adapters written in PEFT's layout on two of the reference
 *     models (BertModel names in F32 with a target list and rank_pattern;
 *     "bert."-prefixed names in F16 on a BF16 model with a regex target and
 *     rsLoRA) give PyTorch's float64 hidden states (W·x + scale·B·A·x, by
 *     tools/make_reference_bert_lora.py) within 1e-4;
 *   - round trip: a LoRA run of 2 training steps saved as a PEFT directory
 *     and loaded back (inference path, training model, and the directory
 *     alone through base_model_name_or_path) gives the in-memory model's
 *     hidden states and task outputs;
 *   - bad input: a tensor of another shape, a missing one, LoRA on the
 *     pooler, a base that is not there: errors naming the tensor or file. */
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
#include "io/json_util.h"
#include "model/bert.h"
#include "model/bert_exit.h"
#include "train/multitask_train.h"
#include "testutil.h"

/* max |a - b| */
static double max_err(const float *a, const double *b, size_t n) {
  double worst = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)a[i] - b[i]);
    if (!(d <= worst)) worst = d;
  }
  return worst;
}

/* The base model's cases through the base with the adapter merged, against
 * the adapter's golden hidden states; also checks the adapter changes them. */
static void check_golden(const char *model, const char *adapter) {
  char rel[256];
  snprintf(rel, sizeof rel, "bert/%s", model);
  char *base = test_data_path(rel);
  snprintf(rel, sizeof rel, "bert_lora/%s", adapter);
  char *ad = test_data_path(rel);
  preft_error err;
  preft_bert *m, *plain;
  if (preft_bert_load(&m, base, &err) != 0 || preft_bert_apply_lora(m, ad, &err) != 0 ||
      preft_bert_load(&plain, base, &err) != 0)
    fail_msg("%s", err.msg);
  snprintf(rel, sizeof rel, "bert/%s/cases.txt", model);
  char *path = test_data_path(rel);
  char *text = test_read_all(path, NULL);
  assert_non_null(text);
  free(path);
  snprintf(rel, sizeof rel, "bert_lora/%s/hidden.f64", adapter);
  path = test_data_path(rel);
  size_t size;
  double *want = test_read_all(path, &size);
  assert_non_null(want);
  free(path);
  int D = m->cfg.dim, cases = 0;
  size_t off = 0;
  preft_pool *pool = preft_pool_create(2);
  preft_bert_workspace ws = {0};
  for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
    int n, n2;
    int *ids = test_parse_ints(strstr(line, "ids=") + 4, &n),
        *types = test_parse_ints(strstr(line, "types=") + 6, &n2);
    float *h = malloc(sizeof(float) * (size_t)n * D);
    preft_bert_batch b = {.n_seqs = 1, .seq_len = n, .ids = ids, .types = types};
    assert_true(off + (size_t)n * D <= size / sizeof(double));
    if (preft_bert_forward(m, pool, &b, &ws, h, NULL, &err) != 0) fail_msg("%s", err.msg);
    double e = max_err(h, want + off, (size_t)n * D);
    if (!(e <= 1e-4))
      fail_msg("%s case %d: max abs error %.3g against PyTorch (limit 1e-4)", adapter, cases, e);
    if (preft_bert_forward(plain, pool, &b, &ws, h, NULL, &err) != 0) fail_msg("%s", err.msg);
    assert_true(max_err(h, want + off, (size_t)n * D) > 1e-2); /* the adapter matters */
    off += (size_t)n * D;
    cases++;
    free(h), free(ids), free(types);
  }
  assert_int_equal(off * sizeof(double), size);
  assert_true(cases >= 3);
  preft_bert_workspace_free(&ws);
  preft_pool_free(pool);
  preft_bert_free(m);
  preft_bert_free(plain);
  free(want), free(text), free(base), free(ad);
}

static void test_golden_bert_model_f32(void **state) {
  (void)state;
  check_golden("bert-model-f32", "model-f32");
}

static void test_golden_bert_prefix_regex_rslora(void **state) {
  (void)state;
  check_golden("bert-cls-bf16", "cls-bf16");
}

/* ---- round trip ------------------------------------------------------------------ */

static char *dir;

static void write_text(const char *d, const char *name, const char *text) {
  char *p = preft_path_join(d, name);
  preft_error err;
  assert_int_equal(preft_write_atomic(p, text, strlen(text), &err), 0);
  free(p);
}

static const char *const words[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a",    "film",
                                    "is",    "good",  "bad",   "not",   "very",   "how", "do",   "i",
                                    "you",   "cook",  "why",   "sky",   "blue",   "dog", "runs", "."};
enum { NW = sizeof words / sizeof words[0] };

static preft_tokenizer *tokenizer(void) {
  char vocab[512] = "";
  for (int i = 0; i < NW; i++) strcat(strcat(vocab, words[i]), "\n");
  write_text(dir, "vocab.txt", vocab);
  write_text(dir, "ids-sst-train.csv",
             "\tid\tsentence\tsentiment\n0\ta\tthe film is good .\t4\n1\tb\tthe film is not good .\t1\n"
             "2\tc\ta very bad film\t0\n");
  write_text(dir, "quora-train.csv",
             "\tid\tsentence1\tsentence2\tis_duplicate\n0\ta\thow do i cook\thow do you cook\t1\n"
             "1\tb\twhy is the sky blue\tthe dog runs\t0\n");
  write_text(dir, "sts-train.csv",
             "\tid\tsentence1\tsentence2\tsimilarity\n0\ta\ta dog runs .\ta dog runs .\t5.0\n"
             "1\tb\tthe sky is blue\ta film\t0.4\n");
  preft_tokenizer *tok;
  preft_error err;
  char *p = preft_path_join(dir, "vocab.txt");
  if (preft_tokenizer_load(&tok, p, &err) != 0) fail_msg("%s", err.msg);
  free(p);
  return tok;
}

/* A right-padded batch of every example of s (cross-encoder input). */
static void batch_of(const preft_mt_set *s, preft_mt_batch *mb) {
  int idx[8];
  for (int i = 0; i < s->n; i++) idx[i] = i;
  preft_mt_batch_make(mb, s, idx, s->n, false);
}

static void assert_close(const float *a, const float *b, size_t n, double tol, const char *what) {
  double worst = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)a[i] - b[i]);
    if (!(d <= worst)) worst = d;
  }
  if (!(worst <= tol)) fail_msg("%s: max abs difference %.3g (limit %.1g)", what, worst, tol);
}

static void test_round_trip(void **state) {
  (void)state;
  preft_tokenizer *tok = tokenizer();
  preft_mt_set train[3] = {{0}};
  const char *files[3] = {"ids-sst-train.csv", "quora-train.csv", "sts-train.csv"};
  preft_error err;
  for (int t = 0; t < 3; t++) {
    char *p = preft_path_join(dir, files[t]);
    if (preft_mt_load(&train[t], p, (preft_bt_task)t, tok, 32, 0, &err) != 0) fail_msg("%s", err.msg);
    free(p);
  }
  preft_bert_config cfg = {.vocab = NW,
                           .dim = 16,
                           .n_heads = 2,
                           .head_dim = 8,
                           .ffn = 24,
                           .n_layers = 2,
                           .max_pos = 32,
                           .type_vocab = 2,
                           .ln_eps = 1e-12f,
                           .torch_dtype = PREFT_F32};
  preft_bt_opts bo = {.tasks = true, .dropout = 0.1, .lora_rank = 3, .lora_alpha = 5.0};
  preft_bt_model m;
  preft_bt_model_init(&m, &cfg, &bo, 7);
  char *base = preft_path_join(dir, "base"), *ad = preft_path_join(dir, "adapter");
  /* B = 0: the merged save is the base model itself */
  if (preft_bt_model_save(&m, base, &err) != 0) fail_msg("%s", err.msg);
  preft_pool *pool = preft_pool_create(1);
  preft_mt_train_opts o = {.steps = 3, .batch = 2, .lr = 5e-2, .clip = 1.0, .seed = 2, .quiet = true};
  preft_mt_history h;
  if (preft_mt_train(&m, pool, train, train, &o, &h, &err) != 0) fail_msg("%s", err.msg);
  preft_mt_history_free(&h);
  if (preft_bt_model_save_lora(&m, ad, base, &err) != 0) fail_msg("%s", err.msg);

  /* the directory is PEFT's: config fields and tensor names */
  char *p = preft_path_join(ad, "adapter_config.json");
  cJSON *j;
  if (preft_json_load(p, &j, &err) != 0) fail_msg("%s", err.msg);
  free(p);
  assert_string_equal(cJSON_GetObjectItem(j, "peft_type")->valuestring, "LORA");
  assert_string_equal(cJSON_GetObjectItem(j, "task_type")->valuestring, "FEATURE_EXTRACTION");
  assert_string_equal(cJSON_GetObjectItem(j, "base_model_name_or_path")->valuestring, base);
  assert_true(cJSON_GetObjectItem(j, "r")->valuedouble == 3);
  assert_true(cJSON_GetObjectItem(j, "lora_alpha")->valuedouble == 5);
  char *tm = cJSON_PrintUnformatted(cJSON_GetObjectItem(j, "target_modules"));
  assert_string_equal(tm, "[\"query\",\"key\",\"value\",\"intermediate.dense\",\"output.dense\"]");
  cJSON_free(tm);
  cJSON_Delete(j);
  preft_st_set st;
  if (preft_st_open_dir(&st, ad, "adapter_model", &err) != 0) fail_msg("%s", err.msg);
  assert_int_equal(st.n_tensors, 2 * 2 * 6);
  const preft_st_tensor *ta =
      preft_st_find(&st, "base_model.model.encoder.layer.1.intermediate.dense.lora_A.weight");
  assert_non_null(ta);
  assert_int_equal(ta->shape[0], 3);
  assert_int_equal(ta->shape[1], 16);
  assert_non_null(preft_st_find(&st, "base_model.model.encoder.layer.0.attention.self.query.lora_B.weight"));
  preft_st_close(&st);

  /* hidden states: in memory (LoRA unmerged) against the loaded base + adapter */
  preft_mt_batch mb = {0};
  batch_of(&train[0], &mb);
  int N = mb.b.n_seqs * mb.b.seq_len, D = cfg.dim;
  preft_bt_acts acts = {0};
  if (preft_bt_forward(&m, pool, &mb.b, NULL, &acts, NULL, &err) != 0) fail_msg("%s", err.msg);
  preft_bert_source src;
  if (preft_bert_source_resolve(&src, ad, NULL, &err) != 0) fail_msg("%s", err.msg); /* the adapter alone */
  assert_string_equal(src.base, base);
  preft_bert *loaded;
  if (preft_bert_load_source(&loaded, &src, &err) != 0) fail_msg("%s", err.msg);
  float *hid = malloc(sizeof(float) * (size_t)N * D);
  preft_bert_workspace ws = {0};
  if (preft_bert_forward(loaded, pool, &mb.b, &ws, hid, NULL, &err) != 0) fail_msg("%s", err.msg);
  assert_close(hid, acts.l[cfg.n_layers - 1].out, (size_t)N * D, 1e-5, "hidden states, loaded vs in memory");
  preft_bert *plain; /* and the LoRA did train: the base alone differs */
  if (preft_bert_load(&plain, base, &err) != 0) fail_msg("%s", err.msg);
  if (preft_bert_forward(plain, pool, &mb.b, &ws, hid, NULL, &err) != 0) fail_msg("%s", err.msg);
  double diff = 0;
  for (int i = 0; i < N * D; i++) diff = fmax(diff, fabs(hid[i] - acts.l[cfg.n_layers - 1].out[i]));
  assert_true(diff > 1e-3);

  /* task outputs: the training model's predict against the classifier and the
   * training model loaded from the directory */
  preft_bert_classifier *cl;
  if (preft_bert_classifier_load(&cl, base, ad, &err) != 0) fail_msg("%s", err.msg);
  preft_bt_opts lo;
  if (preft_bt_heads_config_load(&lo, ad, &err) != 0) fail_msg("%s", err.msg);
  preft_bt_model m2;
  if (preft_bt_model_load(&m2, ad, &lo, 99, &err) != 0) fail_msg("%s", err.msg);
  preft_bt_step_ws sw = {0};
  preft_bert_exit_rule none = {.kind = PREFT_EXIT_NONE};
  for (int t = 0; t < 3; t++) {
    batch_of(&train[t], &mb);
    int n = train[t].n, w = preft_bt_task_width((preft_bt_task)t);
    float want[40], got[40], got2[40];
    if (preft_bt_predict(&m, pool, &mb.b, (preft_bt_task)t, n, cfg.n_layers - 1, want, &sw, &err) != 0 ||
        preft_bert_classify(cl, pool, &mb.b, t, &none, got, NULL, &err) != 0 ||
        preft_bt_predict(&m2, pool, &mb.b, (preft_bt_task)t, n, cfg.n_layers - 1, got2, &sw, &err) != 0)
      fail_msg("%s", err.msg);
    assert_close(got, want, (size_t)n * w, 1e-5, "task outputs, classifier vs in memory");
    assert_close(got2, want, (size_t)n * w, 1e-5, "task outputs, reloaded training model vs in memory");
  }
  preft_bt_step_ws_free(&sw);
  preft_bt_model_free(&m2);
  preft_bert_classifier_free(cl);
  preft_bert_free(plain);
  preft_bert_free(loaded);
  preft_bert_source_free(&src);
  preft_bert_workspace_free(&ws);
  free(hid);
  preft_bt_acts_free(&acts);
  preft_mt_batch_free(&mb);
  preft_pool_free(pool);
  preft_bt_model_free(&m);
  for (int t = 0; t < 3; t++) preft_mt_free(&train[t]);
  preft_tokenizer_free(tok);
  free(base), free(ad);
}

/* ---- bad input ------------------------------------------------------------------- */

/* A copy of the golden adapter model-f32 in a fresh directory, its tensors
 * edited by `edit` (which may rename, reshape or drop them). */
typedef void (*edit_fn)(preft_st_write_tensor *t, int *n, float *junk);

static char *bad_adapter(edit_fn edit) {
  char *src = test_data_path("bert_lora/model-f32"), *d = test_tmpdir();
  preft_error err;
  preft_st_set st;
  if (preft_st_open_dir(&st, src, "adapter_model", &err) != 0) fail_msg("%s", err.msg);
  preft_st_write_tensor *wt = calloc((size_t)st.n_tensors + 1, sizeof *wt);
  static float junk[64 * 64];
  int n = st.n_tensors;
  for (int i = 0; i < n; i++) {
    const preft_st_tensor *t = &st.tensors[i];
    wt[i] = (preft_st_write_tensor){.name = t->name, .dtype = t->dtype, .ndim = t->ndim, .data = t->data};
    for (int k = 0; k < t->ndim; k++) wt[i].shape[k] = t->shape[k];
  }
  edit(wt, &n, junk);
  char *p = preft_path_join(d, "adapter_model.safetensors");
  if (preft_st_write(p, wt, n, &err) != 0) fail_msg("%s", err.msg);
  free(p);
  char *cfg_src = preft_path_join(src, "adapter_config.json"),
       *cfg_dst = preft_path_join(d, "adapter_config.json");
  size_t size;
  char *cfg = test_read_all(cfg_src, &size);
  assert_int_equal(preft_write_atomic(cfg_dst, cfg, size, &err), 0);
  free(cfg), free(cfg_src), free(cfg_dst), free(wt), free(src);
  preft_st_close(&st);
  return d;
}

static int find(const preft_st_write_tensor *t, int n, const char *name) {
  for (int i = 0; i < n; i++)
    if (!strcmp(t[i].name, name)) return i;
  fail_msg("no tensor %s in the golden adapter", name);
  return -1;
}

#define QA "base_model.model.encoder.layer.1.attention.self.query.lora_A.weight"
#define VB "base_model.model.encoder.layer.0.attention.self.value.lora_B.weight"

static void wrong_shape(preft_st_write_tensor *t, int *n, float *junk) {
  int i = find(t, *n, QA);
  t[i].dtype = PREFT_F32, t[i].data = junk, t[i].shape[0] = 4, t[i].shape[1] = 31; /* in: 32 */
}
static void missing(preft_st_write_tensor *t, int *n, float *junk) {
  (void)junk;
  int i = find(t, *n, VB);
  t[i] = t[--*n];
}
static void pooler(preft_st_write_tensor *t, int *n, float *junk) {
  t[*n] = (preft_st_write_tensor){.name = "base_model.model.pooler.dense.lora_A.weight",
                                  .dtype = PREFT_F32,
                                  .ndim = 2,
                                  .shape = {4, 32},
                                  .data = junk};
  ++*n;
}
static void stray(preft_st_write_tensor *t, int *n, float *junk) { /* key is not targeted */
  t[*n] = (preft_st_write_tensor){.name = "base_model.model.encoder.layer.0.attention.self.key.lora_A.weight",
                                  .dtype = PREFT_F32,
                                  .ndim = 2,
                                  .shape = {4, 32},
                                  .data = junk};
  ++*n;
}

static void expect_bad(edit_fn edit, const char *needle1, const char *needle2) {
  char *base = test_data_path("bert/bert-model-f32"), *d = bad_adapter(edit);
  preft_bert *m;
  preft_error err;
  if (preft_bert_load(&m, base, &err) != 0) fail_msg("%s", err.msg);
  assert_int_equal(preft_bert_apply_lora(m, d, &err), -1);
  if (!strstr(err.msg, needle1) || (needle2 && !strstr(err.msg, needle2)))
    fail_msg("message '%s' lacks '%s' / '%s'", err.msg, needle1, needle2 ? needle2 : "");
  preft_bert_free(m);
  /* the training model refuses it alike */
  preft_bert_source s = {.base = base, .adapter = d, .heads = d};
  preft_bt_opts o = {.tasks = true};
  preft_bt_model bm;
  assert_int_equal(preft_bt_model_load_source(&bm, &s, &o, 1, &err), -1);
  assert_non_null(strstr(err.msg, needle1));
  free(base), free(d);
}

static void test_bad_adapters(void **state) {
  (void)state;
  expect_bad(wrong_shape, QA, "has shape [4, 31], expected [4, 32]");
  expect_bad(missing, VB, "is missing");
  expect_bad(pooler, "base_model.model.pooler.dense.lora_A.weight", "pooler");
  expect_bad(stray, "encoder.layer.0.attention.self.key.lora_A.weight", "target_modules");
  /* an adapter alone whose base is not there */
  char *d = test_tmpdir();
  write_text(d, "adapter_config.json",
             "{\"peft_type\": \"LORA\", \"r\": 2, \"target_modules\": [\"query\"], "
             "\"base_model_name_or_path\": \"no/such/model\"}");
  preft_bert_source s;
  preft_error err;
  assert_int_equal(preft_bert_source_resolve(&s, d, NULL, &err), -1);
  assert_non_null(strstr(err.msg, "no/such/model"));
  assert_non_null(strstr(err.msg, "adapter_config.json"));
  free(d);
}

static int setup(void **state) {
  (void)state;
  dir = test_tmpdir();
  return 0;
}

static int teardown(void **state) {
  (void)state;
  free(dir);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_golden_bert_model_f32),
      cmocka_unit_test(test_golden_bert_prefix_regex_rslora),
      cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_bad_adapters),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
