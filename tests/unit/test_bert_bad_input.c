/* test_bert_bad_input.c - loading a broken BERT checkpoint fails with an
 * error naming the file, the tensor or the config field, never a crash:
 * truncated safetensors, a missing tensor (and which name is reported with
 * the bert. prefix and with gamma/beta names), a wrong shape, a tensor the
 * config's sizes contradict, a checkpoint that is not BERT, and config.json
 * fields preft does not implement. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/file.h"
#include "io/safetensors.h"
#include "model/bert.h"
#include "testutil.h"

/* A copy of tests/data/bert/<name> in a fresh directory, its tensors
 * rewritten: `drop` left out, `reshape` given shape [rows, cols] (its data
 * cut or repeated to fit). NULL: unchanged. Returns the directory. */
static char *copy_model(const char *name, const char *drop, const char *reshape, int64_t rows, int64_t cols) {
  char rel[128];
  snprintf(rel, sizeof rel, "bert/%s", name);
  char *src = test_data_path(rel);
  preft_st_set st = {0};
  preft_error err;
  if (preft_st_open_dir(&st, src, "model", &err) != 0) fail_msg("%s", err.msg);
  preft_st_write_tensor *out = calloc((size_t)st.n_tensors, sizeof *out);
  void *reshaped = NULL;
  int n = 0;
  for (int i = 0; i < st.n_tensors; i++) {
    const preft_st_tensor *t = &st.tensors[i];
    if (drop && !strcmp(t->name, drop)) continue;
    preft_st_write_tensor *w = &out[n++];
    w->name = t->name;
    w->dtype = t->dtype;
    w->ndim = t->ndim;
    memcpy(w->shape, t->shape, sizeof w->shape);
    w->data = t->data;
    if (reshape && !strcmp(t->name, reshape)) {
      w->ndim = cols > 0 ? 2 : 1;
      w->shape[0] = rows;
      w->shape[1] = cols > 0 ? cols : 0;
      size_t bytes = (size_t)rows * (size_t)(cols > 0 ? cols : 1) * preft_dtype_size(t->dtype);
      reshaped = calloc(1, bytes);
      memcpy(reshaped, t->data, bytes < t->nbytes ? bytes : t->nbytes);
      w->data = reshaped;
    }
  }
  char *dir = test_tmpdir();
  char *path = preft_path_join(dir, "model.safetensors");
  if (preft_st_write(path, out, n, &err) != 0) fail_msg("%s", err.msg);
  free(path);
  char *cfg_src = preft_path_join(src, "config.json"), *cfg_dst = preft_path_join(dir, "config.json");
  char *text;
  size_t size;
  if (preft_read_file(cfg_src, &text, &size, &err) != 0) fail_msg("%s", err.msg);
  if (preft_write_atomic(cfg_dst, text, size, &err) != 0) fail_msg("%s", err.msg);
  free(text);
  free(cfg_src);
  free(cfg_dst);
  free(reshaped);
  free(out);
  preft_st_close(&st);
  free(src);
  return dir;
}

static void expect_load_error(const char *dir, const char *needle1, const char *needle2) {
  preft_bert *m = NULL;
  preft_error err;
  assert_int_equal(preft_bert_load(&m, dir, &err), -1);
  assert_null(m);
  if (!strstr(err.msg, needle1) || (needle2 && !strstr(err.msg, needle2)))
    fail_msg("error '%s' lacks '%s'%s%s", err.msg, needle1, needle2 ? " or " : "", needle2 ? needle2 : "");
}

static void remove_model(char *dir) {
  char *p = preft_path_join(dir, "model.safetensors");
  unlink(p);
  free(p);
  p = preft_path_join(dir, "config.json");
  unlink(p);
  free(p);
  rmdir(dir);
  free(dir);
}

static void missing_tensor_is_named(void **state) {
  (void)state;
  char *dir = copy_model("bert-model-f32", "encoder.layer.1.attention.self.key.bias", NULL, 0, 0);
  expect_load_error(dir, "tensor encoder.layer.1.attention.self.key.bias is missing", dir);
  remove_model(dir);
  /* with the prefix: the name as it is in the checkpoint */
  dir = copy_model("bert-cls-bf16", "bert.encoder.layer.2.output.dense.weight", NULL, 0, 0);
  expect_load_error(dir, "tensor bert.encoder.layer.2.output.dense.weight is missing", NULL);
  remove_model(dir);
  /* a gamma/beta checkpoint missing one LayerNorm vector: named as today's HF name */
  dir = copy_model("bert-mlm-gamma-f16", "bert.embeddings.LayerNorm.beta", NULL, 0, 0);
  expect_load_error(dir, "tensor bert.embeddings.LayerNorm.bias is missing", NULL);
  remove_model(dir);
  /* no word embeddings at all: not a BERT checkpoint */
  dir = copy_model("bert-model-f32", "embeddings.word_embeddings.weight", NULL, 0, 0);
  expect_load_error(dir, "embeddings.word_embeddings.weight", "not a BERT model");
  remove_model(dir);
  /* the pooler's weight without its bias */
  dir = copy_model("bert-model-f32", "pooler.dense.bias", NULL, 0, 0);
  expect_load_error(dir, "tensor pooler.dense.bias is missing", NULL);
  remove_model(dir);
}

static void wrong_shape_is_named(void **state) {
  (void)state;
  char *dir = copy_model("bert-model-f32", NULL, "encoder.layer.0.intermediate.dense.weight", 32, 64);
  expect_load_error(dir,
                    "tensor encoder.layer.0.intermediate.dense.weight has shape [32, 64], expected [64, 32]",
                    "model.safetensors");
  remove_model(dir);
  dir = copy_model("bert-mlm-gamma-f16", NULL, "bert.encoder.layer.1.output.LayerNorm.gamma", 35, 0);
  expect_load_error(dir, "tensor bert.encoder.layer.1.output.LayerNorm.gamma has shape [35], expected [36]",
                    NULL);
  remove_model(dir);
  /* position embeddings shorter than max_position_embeddings says */
  dir = copy_model("bert-model-f32", NULL, "embeddings.position_embeddings.weight", 39, 32);
  expect_load_error(dir, "embeddings.position_embeddings.weight has shape [39, 32], expected [40, 32]", NULL);
  remove_model(dir);
}

static void truncated_file_is_named(void **state) {
  (void)state;
  char *dir = copy_model("bert-model-f32", NULL, NULL, 0, 0);
  char *path = preft_path_join(dir, "model.safetensors");
  size_t size;
  char *data = test_read_all(path, &size);
  assert_non_null(data);
  preft_error err;
  size_t cuts[] = {size - 100, 4000, 9, 3};
  for (int i = 0; i < 4; i++) {
    assert_int_equal(preft_write_atomic(path, data, cuts[i], &err), 0);
    expect_load_error(dir, path, NULL);
  }
  free(data);
  free(path);
  remove_model(dir);
}

static void expect_config_error(const char *json, const char *needle) {
  preft_bert_config c;
  preft_error err;
  assert_int_equal(preft_bert_config_parse(&c, json, "dir/config.json", &err), -1);
  if (!strstr(err.msg, needle) || !strstr(err.msg, "dir/config.json"))
    fail_msg("error '%s' lacks '%s' or the file", err.msg, needle);
}

#define BASE "\"vocab_size\": 10, \"hidden_size\": 8, \"num_attention_heads\": 2, \"intermediate_size\": 16"

static void config_errors_name_the_field(void **state) {
  (void)state;
  expect_config_error("{\"model_type\": \"llama\", " BASE ", \"num_hidden_layers\": 1}",
                      "\"model_type\" is \"llama\"");
  expect_config_error("{" BASE ", \"num_hidden_layers\": 1}", "\"model_type\": \"bert\"");
  expect_config_error("{\"model_type\": \"bert\", " BASE "}", "num_hidden_layers");
  expect_config_error("{\"model_type\": \"bert\", " BASE
                      ", \"num_hidden_layers\": 1, \"hidden_act\": \"gelu_new\"}",
                      "\"hidden_act\" is \"gelu_new\"");
  expect_config_error("{\"model_type\": \"bert\", " BASE
                      ", \"num_hidden_layers\": 1, \"position_embedding_type\": \"relative_key\"}",
                      "\"position_embedding_type\" is \"relative_key\"");
  expect_config_error(
      "{\"model_type\": \"bert\", \"vocab_size\": 10, \"hidden_size\": 9, \"num_attention_heads\": 2, "
      "\"intermediate_size\": 16, \"num_hidden_layers\": 1}",
      "hidden_size (9) is not a multiple of num_attention_heads (2)");
  expect_config_error("{\"model_type\": \"bert\", " BASE
                      ", \"num_hidden_layers\": 1, \"layer_norm_eps\": -1}",
                      "layer_norm_eps");
  expect_config_error("{\"model_type\": \"bert\", " BASE ", \"num_hidden_layers\": \"two\"}",
                      "num_hidden_layers");
  expect_config_error("[1, 2]", "malformed JSON");
  /* the defaults of transformers' BertConfig */
  preft_bert_config c;
  preft_error err;
  assert_int_equal(preft_bert_config_parse(
                       &c, "{\"architectures\": [\"BertForMaskedLM\"], " BASE ", \"num_hidden_layers\": 3}",
                       "config.json", &err),
                   0);
  assert_int_equal(c.max_pos, 512);
  assert_int_equal(c.type_vocab, 2);
  assert_int_equal(c.head_dim, 4);
  assert_true(c.ln_eps > 0.99e-12f && c.ln_eps < 1.01e-12f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(missing_tensor_is_named),
      cmocka_unit_test(wrong_shape_is_named),
      cmocka_unit_test(truncated_file_is_named),
      cmocka_unit_test(config_errors_name_the_field),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
