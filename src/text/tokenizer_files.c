/* tokenizer_files.c - a tokenizer's files saved next to a model (see
 * preft_tokenizer_save_files in tokenizer.h). */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "text/tokenizer.h"

/* Copies src to dst atomically. */
static int copy_file(const char *src, const char *dst, preft_error *err) {
  char *data;
  size_t size;
  if (preft_read_file(src, &data, &size, err) != 0) return -1;
  int rc = preft_write_atomic(dst, data, size, err);
  free(data);
  return rc;
}

/* A tokenizer_config.json that transformers' AutoTokenizer accepts. */
static int write_minimal_config(const preft_tokenizer *t, const char *dst, preft_error *err) {
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "tokenizer_class", "PreTrainedTokenizerFast");
  if (preft_tokenizer_bos_token(t)) cJSON_AddStringToObject(j, "bos_token", preft_tokenizer_bos_token(t));
  if (preft_tokenizer_eos_token(t)) cJSON_AddStringToObject(j, "eos_token", preft_tokenizer_eos_token(t));
  cJSON_AddNumberToObject(j, "model_max_length", 1e30);
  char *text = cJSON_Print(j);
  cJSON_Delete(j);
  int rc = preft_write_atomic(dst, text, strlen(text), err);
  cJSON_free(text);
  return rc;
}

int preft_tokenizer_save_files(const preft_tokenizer *t, const char *tok_path, const char *out_dir,
                               preft_error *err) {
  size_t plen = strlen(tok_path);
  bool is_file = plen >= 5 && !strcmp(tok_path + plen - 5, ".json");
  char *src_json, *src_dir;
  if (is_file) {
    const char *slash = strrchr(tok_path, '/');
    src_json = preft_xstrdup(tok_path);
    src_dir =
        slash ? strndup(tok_path, (size_t)(slash - tok_path) + (slash == tok_path)) : preft_xstrdup(".");
  } else {
    src_dir = preft_xstrdup(tok_path);
    src_json = preft_path_join(src_dir, "tokenizer.json");
  }
  char *src_config = preft_path_join(src_dir, "tokenizer_config.json");
  char *dst_json = preft_path_join(out_dir, "tokenizer.json");
  char *dst_config = preft_path_join(out_dir, "tokenizer_config.json");
  int rc = copy_file(src_json, dst_json, err);
  if (rc == 0)
    rc = preft_file_exists(src_config) ? copy_file(src_config, dst_config, err)
                                       : write_minimal_config(t, dst_config, err);
  free(src_json);
  free(src_dir);
  free(src_config);
  free(dst_json);
  free(dst_config);
  return rc;
}
