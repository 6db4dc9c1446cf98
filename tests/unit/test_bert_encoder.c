/* test_bert_encoder.c - the BERT encoder against PyTorch float64 reference
 * hidden states and pooler outputs (tests/data/bert/<name>/, written by
 * tools/make_reference_bert.py): BertModel names in F32, BertForMaskedLM
 * with the bert. prefix and gamma/beta LayerNorm names in F16 (no pooler),
 * BertForSequenceClassification in BF16 with three token types. Each
 * sequence alone, all of them as one right-padded batch (lengths, and an
 * attention mask), on the portable and the best CPU path, with one and
 * several threads; the batch errors; and a checkpoint holding the I64
 * position_ids buffer of older transformers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <unistd.h>

#include "base/file.h"
#include "model/bert.h"
#include "tensor/cpu.h"
#include "testutil.h"

#define MAX_CASES 8

typedef struct {
  preft_bert *m;
  int n_cases;
  int len[MAX_CASES];
  int *ids[MAX_CASES], *types[MAX_CASES];
  double *hidden; /* [sum len, D] */
  double *pooled; /* [n_cases, D] or NULL */
} reference;

static void load_reference(const char *name, reference *r) {
  memset(r, 0, sizeof *r);
  char rel[256];
  snprintf(rel, sizeof rel, "bert/%s", name);
  char *dir = test_data_path(rel);
  preft_error err;
  if (preft_bert_load(&r->m, dir, &err) != 0) fail_msg("%s", err.msg);
  free(dir);
  snprintf(rel, sizeof rel, "bert/%s/cases.txt", name);
  char *path = test_data_path(rel);
  char *text = test_read_all(path, NULL);
  assert_non_null(text);
  free(path);
  int rows = 0;
  for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
    assert_true(r->n_cases < MAX_CASES);
    char *ids = strstr(line, "ids="), *types = strstr(line, "types=");
    assert_non_null(ids);
    assert_non_null(types);
    int n1, n2;
    r->ids[r->n_cases] = test_parse_ints(ids + 4, &n1);
    r->types[r->n_cases] = test_parse_ints(types + 6, &n2);
    assert_int_equal(n1, n2);
    r->len[r->n_cases++] = n1;
    rows += n1;
  }
  free(text);
  size_t D = (size_t)r->m->cfg.dim, size;
  snprintf(rel, sizeof rel, "bert/%s/hidden.f64", name);
  path = test_data_path(rel);
  r->hidden = test_read_all(path, &size);
  assert_non_null(r->hidden);
  assert_int_equal(size, sizeof(double) * (size_t)rows * D);
  free(path);
  snprintf(rel, sizeof rel, "bert/%s/pooled.f64", name);
  path = test_data_path(rel);
  r->pooled = test_read_all(path, &size);
  if (r->pooled) assert_int_equal(size, sizeof(double) * (size_t)r->n_cases * D);
  assert_int_equal(r->pooled != NULL, r->m->has_pooler);
  free(path);
}

static void free_reference(reference *r) {
  for (int i = 0; i < r->n_cases; i++) {
    free(r->ids[i]);
    free(r->types[i]);
  }
  free(r->hidden);
  free(r->pooled);
  preft_bert_free(r->m);
}

/* max |a - b| over n values; fails above 1e-4 naming what */
static void expect_close(const float *a, const double *b, size_t n, const char *what, int index) {
  double worst = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)a[i] - b[i]);
    if (!(d <= worst)) worst = d; /* NaN counts as worst */
  }
  if (!(worst <= 1e-4)) fail_msg("%s %d: max abs error %.3g (limit 1e-4)", what, index, worst);
}

static const double *case_rows(const reference *r, int c) {
  size_t off = 0;
  for (int i = 0; i < c; i++) off += (size_t)r->len[i];
  return r->hidden + off * (size_t)r->m->cfg.dim;
}

static void check_alone(const reference *r, preft_pool *pool) {
  int D = r->m->cfg.dim;
  preft_bert_workspace ws = {0};
  preft_error err;
  for (int c = 0; c < r->n_cases; c++) {
    float *hidden = malloc(sizeof(float) * (size_t)r->len[c] * (size_t)D), pooled[256];
    preft_bert_batch b = {.n_seqs = 1, .seq_len = r->len[c], .ids = r->ids[c], .types = r->types[c]};
    if (preft_bert_forward(r->m, pool, &b, &ws, hidden, r->pooled ? pooled : NULL, &err) != 0)
      fail_msg("%s", err.msg);
    expect_close(hidden, case_rows(r, c), (size_t)r->len[c] * (size_t)D, "hidden states of case", c);
    if (r->pooled) expect_close(pooled, r->pooled + (size_t)c * D, (size_t)D, "pooled output of case", c);
    free(hidden);
  }
  preft_bert_workspace_free(&ws);
}

/* All cases as one batch, right-padded with id 0, type 0. */
static void check_padded(const reference *r, preft_pool *pool, bool use_mask) {
  int D = r->m->cfg.dim, B = r->n_cases, T = 0;
  for (int c = 0; c < B; c++) T = r->len[c] > T ? r->len[c] : T;
  size_t N = (size_t)B * (size_t)T;
  int *ids = calloc(N, sizeof(int)), *types = calloc(N, sizeof(int)), lengths[MAX_CASES];
  uint8_t *mask = calloc(N, 1);
  for (int c = 0; c < B; c++) {
    memcpy(ids + (size_t)c * T, r->ids[c], sizeof(int) * (size_t)r->len[c]);
    memcpy(types + (size_t)c * T, r->types[c], sizeof(int) * (size_t)r->len[c]);
    memset(mask + (size_t)c * T, 1, (size_t)r->len[c]);
    lengths[c] = r->len[c];
  }
  preft_error err;
  if (use_mask) {
    for (int c = 0; c < B; c++) lengths[c] = -1;
    if (preft_bert_lengths_from_mask(mask, B, T, lengths, &err) != 0) fail_msg("%s", err.msg);
    for (int c = 0; c < B; c++) assert_int_equal(lengths[c], r->len[c]);
  }
  float *hidden = malloc(sizeof(float) * N * (size_t)D), *pooled = malloc(sizeof(float) * (size_t)B * D);
  preft_bert_workspace ws = {0};
  preft_bert_batch b = {.n_seqs = B, .seq_len = T, .ids = ids, .types = types, .lengths = lengths};
  if (preft_bert_forward(r->m, pool, &b, &ws, hidden, r->pooled ? pooled : NULL, &err) != 0)
    fail_msg("%s", err.msg);
  for (int c = 0; c < B; c++) {
    expect_close(hidden + (size_t)c * T * D, case_rows(r, c), (size_t)r->len[c] * (size_t)D,
                 "padded batch: hidden states of sequence", c);
    if (r->pooled)
      expect_close(pooled + (size_t)c * D, r->pooled + (size_t)c * D, (size_t)D,
                   "padded batch: pooled output", c);
  }
  /* without the lengths, padding is attended to: the short sequences change */
  b.lengths = NULL;
  if (preft_bert_forward(r->m, pool, &b, &ws, hidden, NULL, &err) != 0) fail_msg("%s", err.msg);
  double moved = 0;
  for (int c = 0; c < B; c++) {
    if (r->len[c] == T) continue;
    const double *want = case_rows(r, c);
    for (size_t i = 0; i < (size_t)r->len[c] * (size_t)D; i++)
      moved = fmax(moved, fabs(hidden[(size_t)c * T * D + i] - want[i]));
  }
  assert_true(moved > 1e-3);
  preft_bert_workspace_free(&ws);
  free(hidden);
  free(pooled);
  free(ids);
  free(types);
  free(mask);
}

static void check_model(const char *name) {
  reference r;
  load_reference(name, &r);
  for (int path = 0; path < 2; path++) {
    preft_cpu_limit(path == 0 ? PREFT_CPU_PORTABLE : PREFT_CPU_N_PATHS - 1);
    for (int threads = 1; threads <= 3; threads += 2) {
      preft_pool *pool = preft_pool_create(threads);
      check_alone(&r, pool);
      check_padded(&r, pool, false);
      check_padded(&r, pool, true);
      preft_pool_free(pool);
    }
  }
  preft_cpu_limit(PREFT_CPU_N_PATHS - 1);
  free_reference(&r);
}

static void test_bert_model_f32(void **state) {
  (void)state;
  check_model("bert-model-f32");
}

static void test_bert_mlm_gamma_f16(void **state) {
  (void)state;
  check_model("bert-mlm-gamma-f16");
}

static void test_bert_cls_bf16(void **state) {
  (void)state;
  check_model("bert-cls-bf16");
}

/* The same bits on 1, 2 and 3 threads (docs/ENCODER.md). */
static void test_thread_count_does_not_change_the_bits(void **state) {
  (void)state;
  reference r;
  load_reference("bert-cls-bf16", &r);
  int D = r.m->cfg.dim, T = 0, B = r.n_cases;
  for (int c = 0; c < B; c++) T = r.len[c] > T ? r.len[c] : T;
  size_t N = (size_t)B * (size_t)T;
  int *ids = calloc(N, sizeof(int)), lengths[MAX_CASES];
  for (int c = 0; c < B; c++) {
    memcpy(ids + (size_t)c * T, r.ids[c], sizeof(int) * (size_t)r.len[c]);
    lengths[c] = r.len[c];
  }
  preft_bert_batch b = {.n_seqs = B, .seq_len = T, .ids = ids, .lengths = lengths};
  float *first = malloc(sizeof(float) * N * (size_t)D), *again = malloc(sizeof(float) * N * (size_t)D);
  preft_error err;
  for (int threads = 1; threads <= 3; threads++) {
    preft_pool *pool = preft_pool_create(threads);
    preft_bert_workspace ws = {0};
    if (preft_bert_forward(r.m, pool, &b, &ws, threads == 1 ? first : again, NULL, &err) != 0)
      fail_msg("%s", err.msg);
    if (threads > 1) assert_memory_equal(first, again, sizeof(float) * N * (size_t)D);
    preft_bert_workspace_free(&ws);
    preft_pool_free(pool);
  }
  free(first);
  free(again);
  free(ids);
  free_reference(&r);
}

static void test_loaded_names(void **state) {
  (void)state;
  reference r;
  load_reference("bert-mlm-gamma-f16", &r);
  assert_string_equal(r.m->prefix, "bert.");
  assert_false(r.m->has_pooler);
  assert_int_equal(r.m->cfg.dim, 36);
  assert_int_equal(r.m->cfg.head_dim, 12);
  assert_int_equal(r.m->word.dtype, PREFT_F16);
  free_reference(&r);
  load_reference("bert-model-f32", &r);
  assert_string_equal(r.m->prefix, "");
  assert_true(r.m->has_pooler);
  free_reference(&r);
}

/* A copy of bert-model-f32 whose safetensors also holds the I64 buffer
 * embeddings.position_ids [1, P] that transformers before 4.31 saved: it is
 * skipped, and the model gives the same outputs. */
static void test_position_ids_buffer_is_skipped(void **state) {
  (void)state;
  reference r;
  load_reference("bert-model-f32", &r);
  char *src = test_data_path("bert/bert-model-f32/model.safetensors");
  size_t size;
  uint8_t *file = test_read_all(src, &size);
  assert_non_null(file);
  uint64_t hlen = 0;
  for (int i = 0; i < 8; i++) hlen |= (uint64_t)file[i] << (8 * i);
  cJSON *header = cJSON_ParseWithLength((const char *)file + 8, (size_t)hlen);
  assert_non_null(header);
  size_t data_size = size - 8 - (size_t)hlen, P = (size_t)r.m->cfg.max_pos;
  cJSON *e = cJSON_AddObjectToObject(header, "embeddings.position_ids");
  cJSON_AddStringToObject(e, "dtype", "I64");
  cJSON *shape = cJSON_AddArrayToObject(e, "shape"), *offs = cJSON_AddArrayToObject(e, "data_offsets");
  cJSON_AddItemToArray(shape, cJSON_CreateNumber(1));
  cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)P));
  cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)data_size));
  cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(data_size + 8 * P)));
  char *text = cJSON_PrintUnformatted(header);
  size_t tlen = strlen(text), padded = (tlen + 7) / 8 * 8;
  size_t out_size = 8 + padded + data_size + 8 * P;
  uint8_t *out = malloc(out_size);
  for (int i = 0; i < 8; i++) out[i] = (uint8_t)((uint64_t)padded >> (8 * i));
  memset(out + 8, ' ', padded);
  memcpy(out + 8, text, tlen);
  memcpy(out + 8 + padded, file + 8 + hlen, data_size);
  for (size_t p = 0; p < P; p++)
    for (int i = 0; i < 8; i++) out[8 + padded + data_size + 8 * p + (size_t)i] = (uint8_t)(p >> (8 * i));
  char *dir = test_tmpdir(), *path = preft_path_join(dir, "model.safetensors");
  char *cfg_src = test_data_path("bert/bert-model-f32/config.json"),
       *cfg_dst = preft_path_join(dir, "config.json");
  preft_error err;
  size_t cfg_size;
  char *cfg = test_read_all(cfg_src, &cfg_size);
  assert_int_equal(preft_write_atomic(path, out, out_size, &err), 0);
  assert_int_equal(preft_write_atomic(cfg_dst, cfg, cfg_size, &err), 0);
  preft_bert *m2;
  if (preft_bert_load(&m2, dir, &err) != 0) fail_msg("%s", err.msg);
  assert_non_null(preft_st_skipped_dtype(&m2->st, "embeddings.position_ids"));
  preft_bert_free(r.m);
  r.m = m2;
  preft_pool *pool = preft_pool_create(1);
  check_alone(&r, pool);
  preft_pool_free(pool);
  unlink(path);
  unlink(cfg_dst);
  rmdir(dir);
  free(cfg);
  free(cfg_src);
  free(cfg_dst);
  free(path);
  free(dir);
  free(out);
  cJSON_free(text);
  cJSON_Delete(header);
  free(file);
  free(src);
  free_reference(&r);
}

static void expect_forward_error(const preft_bert *m, const preft_bert_batch *b, bool pooled,
                                 const char *needle) {
  preft_bert_workspace ws = {0};
  float hidden[4096], pool_out[64];
  preft_error err;
  preft_pool *pool = preft_pool_create(1);
  assert_int_equal(preft_bert_forward(m, pool, b, &ws, hidden, pooled ? pool_out : NULL, &err), -1);
  if (!strstr(err.msg, needle)) fail_msg("error '%s' lacks '%s'", err.msg, needle);
  preft_pool_free(pool);
  preft_bert_workspace_free(&ws);
}

static void test_batch_errors(void **state) {
  (void)state;
  reference r;
  load_reference("bert-mlm-gamma-f16", &r); /* V 50, P 24, no pooler */
  int ids[30] = {1, 2, 3}, types[30] = {0, 0, 2}, lengths[1] = {0};
  preft_bert_batch b = {.n_seqs = 1, .seq_len = 3, .ids = ids};
  expect_forward_error(r.m, &b, true, "no pooler");
  ids[1] = 50;
  expect_forward_error(r.m, &b, false,
                       "token id 50 (sequence 0, position 1) is outside the vocabulary [0, 50)");
  ids[1] = 2;
  b.types = types;
  expect_forward_error(r.m, &b, false, "token type 2 (sequence 0, position 2) is outside [0, 2)");
  b.types = NULL;
  b.lengths = lengths;
  expect_forward_error(r.m, &b, false, "sequence 0 has length 0");
  b.lengths = NULL;
  b.seq_len = 25;
  expect_forward_error(r.m, &b, false, "25 tokens exceed max_position_embeddings (24)");
  free_reference(&r);

  uint8_t mask[6] = {1, 1, 0, 1, 0, 1};
  int len[2];
  preft_error err;
  assert_int_equal(preft_bert_lengths_from_mask(mask, 2, 3, len, &err), -1);
  assert_non_null(strstr(err.msg, "attention mask row 1: position 2 is 1 after padding began at 1"));
  uint8_t empty[3] = {0, 0, 0};
  assert_int_equal(preft_bert_lengths_from_mask(empty, 1, 3, len, &err), -1);
  assert_non_null(strstr(err.msg, "row 0 has no token"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bert_model_f32),
      cmocka_unit_test(test_bert_mlm_gamma_f16),
      cmocka_unit_test(test_bert_cls_bf16),
      cmocka_unit_test(test_loaded_names),
      cmocka_unit_test(test_batch_errors),
      cmocka_unit_test(test_thread_count_does_not_change_the_bits),
      cmocka_unit_test(test_position_ids_buffer_is_skipped),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
