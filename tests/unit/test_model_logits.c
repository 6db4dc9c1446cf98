/* test_model_logits.c - the forward pass against PyTorch float64 reference
 * logits (tests/data/models/<name>/golden_*, written by
 * tools/make_reference_models.py), for every reference model: GQA with
 * llama3 rope scaling in shards, Qwen2 biases with tied BF16 embeddings,
 * explicit head_dim in F16 with q/k/v/o biases and MQA, and a Mistral
 * sequence longer than 128 tokens, each with its weights read into memory
 * and mapped. Also: prefill in chunks and token-by-token decode give the
 * same logits as one prefill. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/generate.h"
#include "model/llama.h"
#include "testutil.h"

typedef struct {
  preft_model *m;
  int *ids;
  int n;
  double *golden; /* [n, V] */
} reference_case;

static void load_case(const char *name, reference_case *rc) {
  char rel[256];
  snprintf(rel, sizeof rel, "models/%s", name);
  char *dir = test_data_path(rel);
  preft_error err;
  if (preft_model_load(&rc->m, dir, &err) != 0) fail_msg("%s", err.msg);
  snprintf(rel, sizeof rel, "models/%s/golden_ids.txt", name);
  char *path = test_data_path(rel);
  char *text = test_read_all(path, NULL);
  assert_non_null(text);
  rc->ids = malloc(sizeof(int) * 4096);
  rc->n = 0;
  for (char *p = text; *p;) {
    rc->ids[rc->n++] = (int)strtol(p, &p, 10);
    while (*p == ',' || *p == '\n' || *p == ' ') p++;
  }
  free(text);
  free(path);
  snprintf(rel, sizeof rel, "models/%s/golden_logits.f64", name);
  path = test_data_path(rel);
  size_t size;
  rc->golden = test_read_all(path, &size);
  assert_non_null(rc->golden);
  assert_int_equal(size, sizeof(double) * (size_t)rc->n * (size_t)rc->m->cfg.vocab);
  free(path);
  free(dir);
}

static void free_case(reference_case *rc) {
  preft_model_free(rc->m);
  free(rc->ids);
  free(rc->golden);
}

/* Once with the weights read into memory (the default) and once mapped
 * (preft_weights_set_mmap): each against the reference, and the two the
 * same bits. */
static void check_model(const char *name, int threads) {
  float *first = NULL;
  size_t count = 0;
  for (int mapped = 0; mapped < 2; mapped++) {
    preft_weights_set_mmap(mapped);
    reference_case rc;
    load_case(name, &rc);
    assert_int_equal(rc.m->st.copy, !mapped); /* the weights live where the setting says */
    count = (size_t)rc.n * (size_t)rc.m->cfg.vocab;
    float *logits = malloc(sizeof(float) * count);
    preft_pool *pool = preft_pool_create(threads);
    preft_error err;
    if (preft_all_logits(rc.m, pool, rc.ids, rc.n, logits, &err) != 0) fail_msg("%s", err.msg);
    double rel = test_rel_l2(logits, rc.golden, count);
    if (rel >= 1e-4)
      fail_msg("%s (mmap %d): relative L2 error of logits %.3g (limit 1e-4)", name, mapped, rel);
    /* Each position on its own too, so one bad row cannot hide in the total. */
    for (int t = 0; t < rc.n; t++) {
      size_t off = (size_t)t * (size_t)rc.m->cfg.vocab;
      double r = test_rel_l2(logits + off, rc.golden + off, (size_t)rc.m->cfg.vocab);
      if (r >= 1e-4) fail_msg("%s (mmap %d): position %d: relative L2 error %.3g", name, mapped, t, r);
    }
    if (first && memcmp(first, logits, sizeof(float) * count) != 0)
      fail_msg("%s: mapped weights give other logits than weights read into memory", name);
    if (first)
      free(logits);
    else
      first = logits;
    preft_pool_free(pool);
    free_case(&rc);
  }
  preft_weights_set_mmap(false);
  free(first);
}

static void llama_gqa_llama3_rope_sharded_matches_reference(void **s) { check_model("llama-gqa-rope3", 2); }
static void qwen2_bias_tied_bf16_matches_reference(void **s) { check_model("qwen2-bias-tied-bf16", 3); }
static void llama_explicit_head_dim_f16_matches_reference(void **s) { check_model("llama-headdim-f16", 1); }
static void mistral_sequence_over_128_tokens_matches_reference(void **s) { check_model("mistral-long", 2); }

/* Decode path: prefill a prefix, then feed one token per forward; the
 * logits of each decoded position must match the reference too. */
static void incremental_decode_matches_reference(void **s) {
  reference_case rc;
  load_case("mistral-long", &rc);
  const preft_model_config *c = &rc.m->cfg;
  preft_kv_cache kv;
  preft_error err;
  assert_int_equal(preft_kv_init(&kv, c->n_layers, c->n_kv_heads * c->head_dim, 16, 16, 2, 256, &err), 0);
  assert_int_equal(preft_kv_reserve(&kv, 1, rc.n, &err), 0);
  preft_workspace ws = {0};
  preft_pool *pool = preft_pool_create(2);
  float *logits = malloc(sizeof(float) * (size_t)c->vocab);
  int prefix = 37, seq = 1;
  int *pos = malloc(sizeof(int) * (size_t)rc.n), *seqs = malloc(sizeof(int) * (size_t)rc.n);
  for (int i = 0; i < rc.n; i++) {
    pos[i] = i;
    seqs[i] = seq;
  }
  int last = prefix - 1;
  preft_batch b = {.n = prefix, .token = rc.ids, .pos = pos, .seq = seqs, .logit_rows = &last, .n_logits = 1};
  assert_int_equal(preft_model_forward(rc.m, pool, &kv, &b, &ws, logits, &err), 0);
  for (int t = prefix - 1; t < rc.n; t++) {
    if (t >= prefix) {
      int zero = 0;
      preft_batch d = {
          .n = 1, .token = rc.ids + t, .pos = pos + t, .seq = seqs + t, .logit_rows = &zero, .n_logits = 1};
      if (preft_model_forward(rc.m, pool, &kv, &d, &ws, logits, &err) != 0) fail_msg("%s", err.msg);
    }
    double r = test_rel_l2(logits, rc.golden + (size_t)t * (size_t)c->vocab, (size_t)c->vocab);
    if (r >= 1e-4) fail_msg("decode position %d: relative L2 error %.3g", t, r);
  }
  free(pos);
  free(seqs);
  free(logits);
  preft_pool_free(pool);
  preft_workspace_free(&ws);
  preft_kv_free(&kv);
  free_case(&rc);
}

/* Two sequences interleaved in one batch give each its own logits. */
static void batch_of_two_sequences_matches_reference(void **s) {
  reference_case a;
  load_case("llama-gqa-rope3", &a);
  const preft_model_config *c = &a.m->cfg;
  int n = a.n;
  int *ids = malloc(sizeof(int) * 2 * (size_t)n), *pos = malloc(sizeof(int) * 2 * (size_t)n);
  int *seq = malloc(sizeof(int) * 2 * (size_t)n), rows[2];
  for (int i = 0; i < n; i++) {
    ids[2 * i] = a.ids[i];
    pos[2 * i] = i;
    seq[2 * i] = 0;
    ids[2 * i + 1] = a.ids[n - 1 - i];
    pos[2 * i + 1] = i;
    seq[2 * i + 1] = 1;
  }
  rows[0] = 2 * n - 2;
  rows[1] = 2 * n - 1;
  preft_kv_cache kv;
  preft_error err;
  assert_int_equal(preft_kv_init(&kv, c->n_layers, c->n_kv_heads * c->head_dim, 16, 8, 2, 64, &err), 0);
  assert_int_equal(preft_kv_reserve(&kv, 0, n, &err), 0);
  assert_int_equal(preft_kv_reserve(&kv, 1, n, &err), 0);
  preft_workspace ws = {0};
  float *logits = malloc(sizeof(float) * 2 * (size_t)c->vocab);
  preft_batch batch = {.n = 2 * n, .token = ids, .pos = pos, .seq = seq, .logit_rows = rows, .n_logits = 2};
  assert_int_equal(preft_model_forward(a.m, NULL, &kv, &batch, &ws, logits, &err), 0);
  double r = test_rel_l2(logits, a.golden + (size_t)(n - 1) * (size_t)c->vocab, (size_t)c->vocab);
  assert_true(r < 1e-4);
  /* The reversed sequence's last logits equal a single-sequence run of it. */
  float *alone = malloc(sizeof(float) * (size_t)n * (size_t)c->vocab);
  int *rev = malloc(sizeof(int) * (size_t)n);
  for (int i = 0; i < n; i++) rev[i] = a.ids[n - 1 - i];
  assert_int_equal(preft_all_logits(a.m, NULL, rev, n, alone, &err), 0);
  for (int v = 0; v < c->vocab; v++)
    assert_float_equal(logits[c->vocab + v], alone[(size_t)(n - 1) * c->vocab + v], 1e-4);
  free(alone);
  free(rev);
  free(ids);
  free(pos);
  free(seq);
  free(logits);
  preft_workspace_free(&ws);
  preft_kv_free(&kv);
  free_case(&a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(llama_gqa_llama3_rope_sharded_matches_reference),
      cmocka_unit_test(qwen2_bias_tied_bf16_matches_reference),
      cmocka_unit_test(llama_explicit_head_dim_f16_matches_reference),
      cmocka_unit_test(mistral_sequence_over_128_tokens_matches_reference),
      cmocka_unit_test(incremental_decode_matches_reference),
      cmocka_unit_test(batch_of_two_sequences_matches_reference),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
