/* cli_multitask.c - helpers of the multitask commands (cli_multitask.h). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "cli/cli_multitask.h"

int cli_mt_parse_tasks(const char *list, bool *want) {
  for (int t = 0; t < PREFT_BT_N_TASKS; t++) want[t] = false;
  const char *p = list;
  while (*p) {
    size_t n = strcspn(p, ",");
    int found = -1;
    for (int t = 0; t < PREFT_BT_N_TASKS; t++)
      if (strlen(preft_bt_task_names[t]) == n && strncmp(p, preft_bt_task_names[t], n) == 0) found = t;
    if (found < 0) return -1;
    want[found] = true;
    p += n;
    if (*p == ',') p++;
  }
  return want[0] || want[1] || want[2] ? 0 : -1;
}

int cli_mt_load_sets(const char *dir, const preft_tokenizer *tok, int max_len, const bool *want,
                     int train_limit, int dev_limit, preft_mt_set *train, preft_mt_set *dev,
                     preft_error *err) {
  for (int t = 0; t < PREFT_BT_N_TASKS; t++) {
    if (!want[t]) continue;
    for (int k = train ? 0 : 1; k < 2; k++) {
      char *path = preft_path_join(dir, preft_mt_file_name((preft_bt_task)t, k == 0 ? "train" : "dev"));
      int rc = preft_mt_load(k == 0 ? &train[t] : &dev[t], path, (preft_bt_task)t, tok, max_len,
                             k == 0 ? train_limit : dev_limit, err);
      free(path);
      if (rc != 0) return -1;
    }
  }
  return 0;
}

int cli_mt_copy_tokenizer(const char *from, const char *to, preft_error *err) {
  static const char *const files[] = {"vocab.txt", "tokenizer.json", "tokenizer_config.json",
                                      "special_tokens_map.json"};
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    char *src = preft_path_join(from, files[i]), *dst = preft_path_join(to, files[i]);
    int rc = 0;
    if (preft_file_exists(src) && strcmp(src, dst) != 0) {
      char *data;
      size_t size;
      rc = preft_read_file(src, &data, &size, err);
      if (rc == 0) {
        rc = preft_write_atomic(dst, data, size, err);
        free(data);
      }
    }
    free(src);
    free(dst);
    if (rc != 0) return -1;
  }
  return 0;
}

static void num_or_null(cJSON *o, const char *k, double v) {
  if (isnan(v))
    cJSON_AddNullToObject(o, k);
  else
    cJSON_AddNumberToObject(o, k, v);
}

void cli_mt_eval_json(cJSON *obj, const char *key, const preft_mt_eval *ev) {
  cJSON *o = cJSON_AddObjectToObject(obj, key);
  num_or_null(o, "sst_accuracy", ev->metric[PREFT_BT_SST]);
  num_or_null(o, "para_accuracy", ev->metric[PREFT_BT_PARA]);
  num_or_null(o, "sts_pearson", ev->metric[PREFT_BT_STS]);
  cJSON_AddNumberToObject(o, "score", ev->score);
  cJSON *n = cJSON_AddObjectToObject(o, "examples");
  for (int t = 0; t < PREFT_BT_N_TASKS; t++) cJSON_AddNumberToObject(n, preft_bt_task_names[t], ev->n[t]);
  cJSON_AddNumberToObject(o, "seconds", ev->seconds);
}
