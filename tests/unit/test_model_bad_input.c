/* test_model_bad_input.c - every kind of broken model directory gets a
 * one-line error naming the file and the tensor or field, and no crash:
 * missing and truncated files, header offsets past the end or overlapping,
 * unsupported dtypes, wrong tensor shapes, unsupported architectures and
 * rope types, zero heads, malformed JSON, ids outside the vocabulary. The
 * broken inputs are made from a good reference model in a temporary dir. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/file.h"
#include "engine/generate.h"
#include "io/safetensors.h"
#include "model/llama.h"
#include "testutil.h"

#define GOOD "models/llama-headdim-f16"

static void write_file(const char *dir, const char *name, const void *data, size_t n) {
  char *p = preft_path_join(dir, name);
  FILE *f = fopen(p, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(data, 1, n, f), n);
  fclose(f);
  free(p);
}

static char *read_good(const char *name, size_t *n) {
  char rel[256];
  snprintf(rel, sizeof rel, GOOD "/%s", name);
  char *p = test_data_path(rel);
  char *data = test_read_all(p, n);
  assert_non_null(data);
  free(p);
  return data;
}

/* A temp copy of the good model with config.json text replaced when given. */
static char *copy_model(const char *config_override) {
  char *dir = test_tmpdir();
  size_t n;
  char *st = read_good("model.safetensors", &n);
  write_file(dir, "model.safetensors", st, n);
  free(st);
  if (config_override) {
    write_file(dir, "config.json", config_override, strlen(config_override));
  } else {
    char *cfg = read_good("config.json", &n);
    write_file(dir, "config.json", cfg, n);
    free(cfg);
  }
  return dir;
}

static void remove_dir(char *dir) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
  free(dir);
}

/* Loads dir, expects failure with every fragment present in the message. */
static void expect_load_error(const char *dir, const char *frag1, const char *frag2) {
  preft_model *m = NULL;
  preft_error err = {{0}};
  int rc = preft_model_load(&m, dir, &err);
  if (rc == 0) {
    preft_model_free(m);
    fail_msg("loading %s succeeded, expected an error mentioning '%s'", dir, frag1);
  }
  if (!strstr(err.msg, frag1) || (frag2 && !strstr(err.msg, frag2)))
    fail_msg("error '%s' does not mention '%s' and '%s'", err.msg, frag1, frag2 ? frag2 : "");
  assert_null(strchr(err.msg, '\n'));
}

/* Replaces the first occurrence of `from` in config.json text by `to`. */
static char *good_config_with(const char *from, const char *to) {
  size_t n;
  char *cfg = read_good("config.json", &n);
  char *at = strstr(cfg, from);
  assert_non_null(at);
  char *out = malloc(n + strlen(to) + 1);
  size_t pre = (size_t)(at - cfg);
  memcpy(out, cfg, pre);
  strcpy(out + pre, to);
  strcat(out, at + strlen(from));
  free(cfg);
  return out;
}

static void missing_directory_names_the_path(void **s) {
  expect_load_error("/nonexistent/model-dir", "/nonexistent/model-dir", "config.json");
}

static void missing_weights_file_is_reported(void **s) {
  char *dir = copy_model(NULL);
  char *p = preft_path_join(dir, "model.safetensors");
  unlink(p);
  free(p);
  expect_load_error(dir, "no model.safetensors", NULL);
  remove_dir(dir);
}

static void truncated_safetensors_names_file_and_tensor(void **s) {
  char *dir = copy_model(NULL);
  size_t n;
  char *st = read_good("model.safetensors", &n);
  write_file(dir, "model.safetensors", st, n / 2);
  expect_load_error(dir, "model.safetensors", "run past the data section");
  write_file(dir, "model.safetensors", st, 5);
  expect_load_error(dir, "model.safetensors", "truncated");
  /* Header length larger than the file. */
  st[0] = (char)0xff;
  st[1] = (char)0xff;
  st[2] = (char)0xff;
  write_file(dir, "model.safetensors", st, 4096);
  expect_load_error(dir, "model.safetensors", "header length");
  free(st);
  remove_dir(dir);
}

/* Writes a safetensors file from a header string and `data_bytes` zeros. */
static void write_raw_safetensors(const char *dir, const char *header, size_t data_bytes) {
  size_t h = strlen(header);
  size_t total = 8 + h + data_bytes;
  unsigned char *buf = calloc(1, total);
  for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)h >> (8 * i));
  memcpy(buf + 8, header, h);
  write_file(dir, "model.safetensors", buf, total);
  free(buf);
}

static void overlapping_offsets_are_rejected(void **s) {
  char *dir = copy_model(NULL);
  write_raw_safetensors(dir,
                        "{\"a.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                        "\"b.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                        12);
  expect_load_error(dir, "overlap", "a.weight");
  remove_dir(dir);
}

static void bad_header_entries_are_rejected(void **s) {
  char *dir = copy_model(NULL);
  write_raw_safetensors(dir, "{\"a.weight\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,16]}}", 16);
  expect_load_error(dir, "unsupported dtype Q4", "a.weight");
  /* an integer tensor is validated and skipped; a weight of that type is named */
  write_raw_safetensors(
      dir, "{\"model.embed_tokens.weight\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}", 16);
  expect_load_error(dir, "tensor model.embed_tokens.weight has dtype I64", "F32, F16 or BF16");
  write_raw_safetensors(dir, "{\"a.weight\":{\"dtype\":\"I64\",\"shape\":[3],\"data_offsets\":[0,16]}}", 16);
  expect_load_error(dir, "a.weight", "shape and dtype need 24");
  write_raw_safetensors(dir, "{\"a.weight\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8);
  expect_load_error(dir, "a.weight", "shape and dtype need 12");
  write_raw_safetensors(dir, "{\"a.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]", 8);
  expect_load_error(dir, "model.safetensors", "not a valid JSON");
  write_raw_safetensors(dir, "{\"a.weight\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8);
  expect_load_error(dir, "a.weight", "shape[0]");
  remove_dir(dir);
}

static void missing_tensor_is_named(void **s) {
  char *dir = copy_model(NULL);
  /* A valid file holding only the embedding. */
  preft_st_set set;
  preft_error err;
  char *good = test_data_path(GOOD);
  assert_int_equal(preft_st_open_dir(&set, good, "model", &err), 0);
  const preft_st_tensor *e = preft_st_find(&set, "model.embed_tokens.weight");
  assert_non_null(e);
  preft_st_write_tensor t = {
      .name = e->name, .dtype = e->dtype, .ndim = 2, .shape = {e->shape[0], e->shape[1]}, .data = e->data};
  char *p = preft_path_join(dir, "model.safetensors");
  assert_int_equal(preft_st_write(p, &t, 1, &err), 0);
  free(p);
  preft_st_close(&set);
  free(good);
  expect_load_error(dir, "tensor lm_head.weight", "missing");
  remove_dir(dir);
}

static void wrong_tensor_shape_names_tensor_and_shapes(void **s) {
  /* Halving the heads makes q_proj [128, 64] where [64, 64] is expected. */
  char *cfg = good_config_with("\"num_attention_heads\": 4", "\"num_attention_heads\": 2");
  char *dir = copy_model(cfg);
  expect_load_error(dir, "model.layers.0.self_attn.q_proj.weight", "expected [64, 64]");
  free(cfg);
  remove_dir(dir);
}

static void unsupported_config_values_name_the_field(void **s) {
  struct {
    const char *from, *to, *frag;
  } cases[] = {
      {"\"LlamaForCausalLM\"", "\"GPT2LMHeadModel\"", "GPT2LMHeadModel"},
      {"\"num_attention_heads\": 4", "\"num_attention_heads\": 0", "num_attention_heads"},
      {"\"num_key_value_heads\": 1", "\"num_key_value_heads\": 3", "num_key_value_heads"},
      {"\"hidden_size\": 64", "\"hidden_size\": \"64\"", "hidden_size"},
      {"\"rope_scaling\": null", "\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4.0}", "yarn"},
      {"\"rms_norm_eps\"", "\"rms_norm_eps\": -1, \"x\"", "rms_norm_eps"},
      {"{", "{{", "malformed JSON"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *cfg = good_config_with(cases[i].from, cases[i].to);
    char *dir = copy_model(cfg);
    expect_load_error(dir, "config.json", cases[i].frag);
    free(cfg);
    remove_dir(dir);
  }
}

static void token_outside_vocabulary_is_an_error(void **s) {
  char *dir = test_data_path(GOOD);
  preft_model *m;
  preft_error err;
  assert_int_equal(preft_model_load(&m, dir, &err), 0);
  int ids[] = {1, 5, m->cfg.vocab};
  float *logits = malloc(sizeof(float) * 3 * (size_t)m->cfg.vocab);
  assert_int_equal(preft_all_logits(m, NULL, ids, 3, logits, &err), -1);
  assert_non_null(strstr(err.msg, "outside the vocabulary"));
  free(logits);
  preft_model_free(m);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(missing_directory_names_the_path),
      cmocka_unit_test(missing_weights_file_is_reported),
      cmocka_unit_test(truncated_safetensors_names_file_and_tensor),
      cmocka_unit_test(overlapping_offsets_are_rejected),
      cmocka_unit_test(bad_header_entries_are_rejected),
      cmocka_unit_test(missing_tensor_is_named),
      cmocka_unit_test(wrong_tensor_shape_names_tensor_and_shapes),
      cmocka_unit_test(unsupported_config_values_name_the_field),
      cmocka_unit_test(token_outside_vocabulary_is_an_error),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
