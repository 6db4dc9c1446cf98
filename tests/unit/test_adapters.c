/* test_adapters.c - LoRA and ReFT in the forward pass against the PyTorch
 * reference (tests/data/adapters/<case>/golden_*.f64, written by
 * tools/make_reference_adapters.py): every case in every mode it has
 * goldens for, teacher-forced with a prompt shorter than the sequence; a
 * batch that mixes the base model, two LoRA ranks in different modes, a
 * LoReFT and a DiReFT adapter gives each sequence its reference logits, in
 * one prefill and then step by step as decode; an FP32 LoRA held as BF16 or
 * F16 (serve --lora-dtype) gives the reference's logits of its A and B
 * rounded to that type; and every broken adapter in tests/data/adapters/bad
 * gets an error naming what is wrong. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/generate.h"
#include "engine/prefix_cache.h"
#include "model/adapter.h"
#include "model/llama.h"
#include "testutil.h"

typedef struct {
  char *dir;
  cJSON *golden; /* golden.json */
  preft_model *base;
  preft_adapter *adapter;
  int *ids, n, prompt_len;
} adapter_case;

static void load_case(const char *name, adapter_case *c) {
  memset(c, 0, sizeof *c);
  char rel[256];
  snprintf(rel, sizeof rel, "adapters/%s", name);
  c->dir = test_data_path(rel);
  c->golden = test_load_golden(c->dir, "tools/make_reference_adapters.py");
  snprintf(rel, sizeof rel, "models/%s", cJSON_GetObjectItem(c->golden, "base")->valuestring);
  char *base = test_data_path(rel);
  preft_error err;
  if (preft_model_load(&c->base, base, &err) != 0) fail_msg("%s", err.msg);
  free(base);
  if (preft_adapter_load(&c->adapter, c->dir, name, &c->base->cfg, &err) != 0) fail_msg("%s", err.msg);
  const cJSON *ids = cJSON_GetObjectItem(c->golden, "ids");
  c->n = cJSON_GetArraySize(ids);
  c->ids = malloc(sizeof(int) * (size_t)c->n);
  for (int i = 0; i < c->n; i++) c->ids[i] = cJSON_GetArrayItem(ids, i)->valueint;
  c->prompt_len = cJSON_GetObjectItem(c->golden, "prompt_len")->valueint;
}

static double *load_golden(const adapter_case *c, const char *mode) {
  const cJSON *g = cJSON_GetObjectItem(cJSON_GetObjectItem(c->golden, "goldens"), mode);
  if (!g) return NULL;
  char *p = preft_path_join(c->dir, g->valuestring);
  size_t size;
  double *d = test_read_all(p, &size);
  free(p);
  assert_non_null(d);
  assert_int_equal(size, sizeof(double) * (size_t)c->n * (size_t)c->base->cfg.vocab);
  return d;
}

static void free_case(adapter_case *c) {
  preft_adapter_free(c->adapter);
  preft_model_free(c->base);
  cJSON_Delete(c->golden);
  free(c->ids);
  free(c->dir);
}

static void expect_close(const float *got, const double *want, int n, int vocab, const char *what) {
  for (int t = 0; t < n; t++) {
    double r = test_rel_l2(got + (size_t)t * vocab, want + (size_t)t * vocab, (size_t)vocab);
    if (r >= 1e-4) fail_msg("%s: position %d: relative L2 error %.3g (limit 1e-4)", what, t, r);
  }
}

static void check_case(const char *name) {
  adapter_case c;
  load_case(name, &c);
  const char *modes[] = {"all", "prefill"};
  int checked = 0;
  preft_pool *pool = preft_pool_create(2);
  for (int k = 0; k < 2; k++) {
    double *golden = load_golden(&c, modes[k]);
    if (!golden) continue;
    preft_adapter_mode mode;
    assert_int_equal(preft_adapter_mode_parse(modes[k], &mode), 0);
    float *logits = malloc(sizeof(float) * (size_t)c.n * (size_t)c.base->cfg.vocab);
    preft_error err;
    if (preft_all_logits_adapted(c.base, pool, c.ids, c.n, c.adapter, mode, c.prompt_len, logits, &err) != 0)
      fail_msg("%s", err.msg);
    char what[128];
    snprintf(what, sizeof what, "%s (%s mode)", name, modes[k]);
    expect_close(logits, golden, c.n, c.base->cfg.vocab, what);
    free(logits);
    free(golden);
    checked++;
  }
  assert_true(checked > 0);
  preft_pool_free(pool);
  free_case(&c);
}

static void lora_q_v_rank4_matches_peft_reference(void **s) { check_case("lora-qv-r4"); }
static void lora_all_modules_rslora_patterns_match_reference(void **s) {
  check_case("lora-all7-rslora-patterns");
}
static void lora_regex_targets_layers_f16_match_reference(void **s) { check_case("lora-regex-layers-f16"); }
static void lora_layer_list_f16_matches_reference(void **s) { check_case("lora-layers-list-f16"); }
static void lora_qwen2_bf16_prefill_default_matches_reference(void **s) { check_case("lora-qwen2-bf16"); }
static void loreft_first_last_matches_reference(void **s) { check_case("loreft-f3l3"); }
static void loreft_all_positions_shared_matches_reference(void **s) { check_case("loreft-all-shared"); }
static void direft_shared_weights_matches_reference(void **s) { check_case("direft-f5l5-shared"); }

/* The largest relative L2 error over positions */
static double worst_rel(const float *got, const double *want, int n, int vocab) {
  double worst = 0;
  for (int t = 0; t < n; t++) {
    double r = test_rel_l2(got + (size_t)t * vocab, want + (size_t)t * vocab, (size_t)vocab);
    worst = r > worst ? r : worst;
  }
  return worst;
}

/* preft_lora_store_as: the FP32 LoRA's A and B rounded to BF16 / F16 give
 * PyTorch's logits of the rounded tensors (golden_all_<t>.f64), measurably
 * away from the FP32 golden; the memory taken shrinks, the prefix cache's
 * identity of the adapter changes, and a LoRA stored as the type is left
 * as it is. */
static void lora_held_as_16_bit_matches_rounded_reference(void **s) {
  (void)s;
  static const struct {
    preft_dtype dt;
    const char *golden;
  } held[] = {{PREFT_BF16, "all_bf16"}, {PREFT_F16, "all_f16"}};
  preft_pool *pool = preft_pool_create(2);
  for (size_t h = 0; h < sizeof held / sizeof *held; h++) {
    adapter_case c;
    load_case("lora-all7-rslora-patterns", &c);
    const int vocab = c.base->cfg.vocab;
    const size_t bytes_f32 = c.adapter->bytes;
    const uint64_t salt_f32 = preft_prefix_salt(c.adapter, 0, PREFT_MODE_ALL, -1);
    preft_lora_store_as(c.adapter, &c.base->cfg, held[h].dt);
    for (int i = 0; i < c.adapter->n_layers * PREFT_N_MODULES; i++)
      if (c.adapter->lora[i].rank)
        assert_true(c.adapter->lora[i].a_dtype == held[h].dt && c.adapter->lora[i].b_dtype == held[h].dt);
    if (!(c.adapter->bytes < bytes_f32 * 3 / 4))
      fail_msg("held as %s: %zu bytes, FP32 %zu", held[h].golden, c.adapter->bytes, bytes_f32);
    assert_true(preft_prefix_salt(c.adapter, 0, PREFT_MODE_ALL, -1) != salt_f32);
    float *logits = malloc(sizeof(float) * (size_t)c.n * (size_t)vocab);
    preft_error err;
    if (preft_all_logits_adapted(c.base, pool, c.ids, c.n, c.adapter, PREFT_MODE_ALL, c.prompt_len, logits,
                                 &err) != 0)
      fail_msg("%s", err.msg);
    double *want = load_golden(&c, held[h].golden), *f32 = load_golden(&c, "all");
    assert_non_null(want);
    expect_close(logits, want, c.n, vocab, held[h].golden);
    double away = worst_rel(logits, f32, c.n, vocab), ref_away = worst_rel(logits, want, c.n, vocab);
    if (!(away > 10 * ref_away))
      fail_msg("held as %s: %.3g from the FP32 golden, %.3g from the rounded one: not rounded?",
               held[h].golden, away, ref_away);
    free(want);
    free(f32);
    free(logits);
    free_case(&c);
  }
  /* a LoRA stored as BF16 is held as it is */
  adapter_case c;
  load_case("lora-qwen2-bf16", &c);
  preft_lora_module before[64];
  const int n = c.adapter->n_layers * PREFT_N_MODULES;
  assert_true(n <= 64);
  memcpy(before, c.adapter->lora, sizeof *before * (size_t)n);
  const size_t bytes = c.adapter->bytes;
  preft_lora_store_as(c.adapter, &c.base->cfg, PREFT_BF16);
  assert_memory_equal(before, c.adapter->lora, sizeof *before * (size_t)n);
  assert_int_equal(bytes, c.adapter->bytes);
  free_case(&c);
  assert_int_equal(preft_lora_dtype_parse(NULL), -1);
  assert_int_equal(preft_lora_dtype_parse("auto"), -1);
  assert_int_equal(preft_lora_dtype_parse("bfloat16"), PREFT_BF16);
  assert_int_equal(preft_lora_dtype_parse("f16"), PREFT_F16);
  assert_int_equal(preft_lora_dtype_parse("float32"), -2);
  preft_pool_free(pool);
}

static void adapter_default_modes_come_from_config(void **s) {
  adapter_case c;
  load_case("lora-qwen2-bf16", &c);
  assert_int_equal(c.adapter->default_mode, PREFT_MODE_PREFILL);
  free_case(&c);
  load_case("lora-qv-r4", &c);
  assert_int_equal(c.adapter->default_mode, PREFT_MODE_ALL);
  free_case(&c);
}

/* Five sequences in one batch: base, LoRA r4 all-token, LoRA r8 prefill-only,
 * LoReFT (f3+l3), DiReFT (shared) -- first one prefill of every prompt, then
 * teacher-forced decode of all five together, row by row. Each sequence must
 * see its own reference logits. */
static void mixed_adapter_batch_matches_each_sequence_alone(void **s) {
  const char *names[] = {NULL, "lora-qv-r4", "lora-all7-rslora-patterns", "loreft-f3l3",
                         "direft-f5l5-shared"};
  const char *modes[] = {"all", "all", "prefill", "prefill", "prefill"};
  enum { S = 5 };
  adapter_case cases[S];
  for (int i = 1; i < S; i++) load_case(names[i], &cases[i]);
  const preft_model *m = cases[1].base;
  int vocab = m->cfg.vocab, n = cases[1].n, plen = cases[1].prompt_len;
  for (int i = 2; i < S; i++) {
    assert_int_equal(cases[i].n, n);
    assert_int_equal(cases[i].prompt_len, plen);
    assert_memory_equal(cases[i].ids, cases[1].ids, sizeof(int) * (size_t)n);
  }
  /* Expected: goldens for adapted sequences, base logits from the model's own golden for seq 0. */
  double *want[S];
  char *base_golden = test_data_path("models/llama-gqa-rope3/golden_logits.f64");
  want[0] = test_read_all(base_golden, NULL);
  free(base_golden);
  for (int i = 1; i < S; i++) want[i] = load_golden(&cases[i], modes[i]);
  const preft_adapter *adapters[S] = {NULL};
  preft_adapter_mode amode[S];
  for (int i = 1; i < S; i++) {
    adapters[i] = cases[i].adapter;
    preft_adapter_mode_parse(modes[i], &amode[i]);
  }
  const int *ids = cases[1].ids;

  preft_kv_cache kv;
  preft_error err;
  assert_int_equal(
      preft_kv_init(&kv, m->cfg.n_layers, m->cfg.n_kv_heads * m->cfg.head_dim, 16, 16, S, n, &err), 0);
  for (int i = 0; i < S; i++) assert_int_equal(preft_kv_reserve(&kv, i, n, &err), 0);
  int rows = S * plen;
  int *tok = malloc(sizeof(int) * rows), *pos = malloc(sizeof(int) * rows), *seq = malloc(sizeof(int) * rows);
  const preft_adapter **ra = malloc(sizeof(void *) * rows);
  uint8_t *flag = malloc((size_t)rows);
  int last[S];
  /* prompts interleaved row by row, so groups are not contiguous */
  for (int t = 0, r = 0; t < plen; t++) {
    for (int i = 0; i < S; i++, r++) {
      tok[r] = ids[t];
      pos[r] = t;
      seq[r] = i;
      ra[r] = adapters[i];
      flag[r] =
          adapters[i] ? (uint8_t)preft_adapter_row_flag(adapters[i], amode[i], t, plen) : PREFT_ADAPT_OFF;
      if (t == plen - 1) last[i] = r;
    }
  }
  float *logits = malloc(sizeof(float) * S * (size_t)vocab);
  preft_workspace ws = {0};
  preft_pool *pool = preft_pool_create(2);
  preft_batch b = {.n = rows,
                   .token = tok,
                   .pos = pos,
                   .seq = seq,
                   .logit_rows = last,
                   .n_logits = S,
                   .adapter = ra,
                   .adapt = flag};
  if (preft_model_forward(m, pool, &kv, &b, &ws, logits, &err) != 0) fail_msg("%s", err.msg);
  for (int i = 0; i < S; i++) {
    char what[96];
    snprintf(what, sizeof what, "mixed batch, sequence %d (%s), prompt end", i, names[i] ? names[i] : "base");
    expect_close(logits + (size_t)i * vocab, want[i] + (size_t)(plen - 1) * vocab, 1, vocab, what);
  }
  for (int t = plen; t < n; t++) {
    int drows[S];
    for (int i = 0; i < S; i++) {
      tok[i] = ids[t];
      pos[i] = t;
      seq[i] = i;
      ra[i] = adapters[i];
      flag[i] =
          adapters[i] ? (uint8_t)preft_adapter_row_flag(adapters[i], amode[i], t, plen) : PREFT_ADAPT_OFF;
      drows[i] = i;
    }
    preft_batch d = {.n = S,
                     .token = tok,
                     .pos = pos,
                     .seq = seq,
                     .logit_rows = drows,
                     .n_logits = S,
                     .adapter = ra,
                     .adapt = flag};
    if (preft_model_forward(m, pool, &kv, &d, &ws, logits, &err) != 0) fail_msg("%s", err.msg);
    for (int i = 0; i < S; i++) {
      char what[96];
      snprintf(what, sizeof what, "mixed batch, sequence %d (%s), decode position %d", i,
               names[i] ? names[i] : "base", t);
      expect_close(logits + (size_t)i * vocab, want[i] + (size_t)t * vocab, 1, vocab, what);
    }
  }
  preft_pool_free(pool);
  preft_workspace_free(&ws);
  preft_kv_free(&kv);
  free(logits);
  free(tok);
  free(pos);
  free(seq);
  free(ra);
  free(flag);
  for (int i = 0; i < S; i++) free(want[i]);
  for (int i = 1; i < S; i++) free_case(&cases[i]);
}

/* Every broken adapter in tests/data/adapters/bad fails to load with an error
 * containing the substring EXPECTED.json gives for it, and
 * preft_adapter_check (which does not read the weights) fails with the same
 * error; the good adapters pass the check. */
static void broken_adapters_get_named_errors(void **s) {
  char *bad = test_data_path("adapters/bad");
  char *exp_path = preft_path_join(bad, "EXPECTED.json");
  char *text = test_read_all(exp_path, NULL);
  assert_non_null(text);
  cJSON *expected = cJSON_Parse(text);
  free(text);
  assert_non_null(expected);
  char *base_dir = test_data_path("models/llama-gqa-rope3");
  preft_model *m;
  preft_error err;
  assert_int_equal(preft_model_load(&m, base_dir, &err), 0);
  int n = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, expected) {
    char *dir = preft_path_join(bad, e->string);
    preft_adapter *a = NULL;
    err.msg[0] = 0;
    int rc = preft_adapter_load(&a, dir, NULL, &m->cfg, &err);
    if (rc == 0) {
      preft_adapter_free(a);
      fail_msg("broken adapter %s loaded without error", e->string);
    }
    if (!strstr(err.msg, e->valuestring))
      fail_msg("adapter %s: error '%s' does not mention '%s'", e->string, err.msg, e->valuestring);
    if (!strstr(err.msg, e->string))
      fail_msg("adapter %s: error '%s' does not name the adapter", e->string, err.msg);
    /* the start-up check (headers only) finds the same fault */
    preft_error check_err;
    if (preft_adapter_check(dir, NULL, &m->cfg, &check_err) == 0)
      fail_msg("broken adapter %s passed preft_adapter_check", e->string);
    assert_string_equal(check_err.msg, err.msg);
    free(dir);
    n++;
  }
  assert_true(n >= 8);
  static const char *good[] = {"lora-qv-r4", "lora-all7-rslora-patterns", "loreft-f3l3",
                               "direft-f5l5-shared"};
  for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
    char rel[128];
    snprintf(rel, sizeof rel, "adapters/%s", good[i]);
    char *dir = test_data_path(rel);
    if (preft_adapter_check(dir, NULL, &m->cfg, &err) != 0) fail_msg("%s", err.msg);
    free(dir);
  }
  preft_model_free(m);
  free(base_dir);
  cJSON_Delete(expected);
  free(exp_path);
  free(bad);
}

static void reft_positions_strings_parse(void **s) {
  int f, l;
  assert_int_equal(preft_reft_positions_parse("f7+l7", &f, &l), 0);
  assert_int_equal(f, 7);
  assert_int_equal(l, 7);
  assert_int_equal(preft_reft_positions_parse("l3", &f, &l), 0);
  assert_int_equal(f, 0);
  assert_int_equal(l, 3);
  assert_int_equal(preft_reft_positions_parse("all", &f, &l), 0);
  assert_int_equal(f, -1);
  const char *bad[] = {"", "f", "f3+", "f3+x2", "f3+f4", "f-1", "g2", "f3 l3", "all+f1"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (preft_reft_positions_parse(bad[i], &f, &l) == 0) fail_msg("'%s' parsed", bad[i]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(lora_q_v_rank4_matches_peft_reference),
      cmocka_unit_test(lora_all_modules_rslora_patterns_match_reference),
      cmocka_unit_test(lora_regex_targets_layers_f16_match_reference),
      cmocka_unit_test(lora_layer_list_f16_matches_reference),
      cmocka_unit_test(lora_qwen2_bf16_prefill_default_matches_reference),
      cmocka_unit_test(loreft_first_last_matches_reference),
      cmocka_unit_test(loreft_all_positions_shared_matches_reference),
      cmocka_unit_test(direft_shared_weights_matches_reference),
      cmocka_unit_test(lora_held_as_16_bit_matches_rounded_reference),
      cmocka_unit_test(adapter_default_modes_come_from_config),
      cmocka_unit_test(mixed_adapter_batch_matches_each_sequence_alone),
      cmocka_unit_test(broken_adapters_get_named_errors),
      cmocka_unit_test(reft_positions_strings_parse),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
