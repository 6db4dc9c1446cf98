/* test_adapter_config_limits.c - PEFT adapter_config.json numbers outside
 * what a layer index or a rank can be are refused with an error naming the
 * field (found by fuzz_peft_config: layers_to_transform [1e115] was cast to
 * int, undefined behaviour), while in-range configs still load. Each config
 * is the real lora-qv-r4 one with one field changed, loaded with its weights
 * for llama-gqa-rope3. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/hf_config.h"
#include "preft/adapter.h"
#include "testutil.h"

/* Loads lora-qv-r4's weights with an adapter_config.json whose fields are
 * `fields` (a JSON object body) plus target_modules q_proj/v_proj and r 4.
 * Returns the load's status; err holds the message. */
static int load_with(const char *fields, preft_error *err) {
  char *dir = test_tmpdir(), *src = test_data_path("adapters/lora-qv-r4/adapter_model.safetensors");
  char *model = test_data_path("models/llama-gqa-rope3"), path[4096];
  size_t n;
  void *w = test_read_all(src, &n);
  assert_non_null(w);
  snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(w, 1, n, f), n);
  fclose(f);
  snprintf(path, sizeof path, "%s/adapter_config.json", dir);
  f = fopen(path, "w");
  assert_non_null(f);
  fprintf(f,
          "{\"peft_type\": \"LORA\", \"r\": 4, \"lora_alpha\": 8, \"target_modules\": [\"q_proj\", "
          "\"v_proj\"]%s%s}",
          *fields ? ", " : "", fields);
  fclose(f);
  preft_model_config cfg;
  if (preft_config_load(&cfg, model, err)) fail_msg("%s", err->msg);
  preft_adapter *a = NULL;
  int rc = preft_adapter_load(&a, dir, "t", &cfg, err);
  preft_adapter_free(a);
  free(w);
  free(src);
  free(model);
  free(dir);
  return rc;
}

static void expect_refused(const char *fields, const char *needle) {
  preft_error err;
  if (load_with(fields, &err) == 0) fail_msg("loaded with %s", fields);
  if (!strstr(err.msg, needle)) fail_msg("error '%s' does not mention '%s'", err.msg, needle);
  if (!strstr(err.msg, "adapter_config.json")) fail_msg("error '%s' does not name the file", err.msg);
}

static void out_of_range_numbers_are_refused(void **state) {
  (void)state;
  expect_refused("\"layers_to_transform\": [1e115]", "layers_to_transform");
  expect_refused("\"layers_to_transform\": 1e115", "layers_to_transform");
  expect_refused("\"layers_to_transform\": [0, -1]", "layers_to_transform");
  expect_refused("\"layers_to_transform\": [0.5]", "layers_to_transform");
  expect_refused("\"layers_to_transform\": [\"0\"]", "layers_to_transform");
  expect_refused("\"rank_pattern\": {\"q_proj\": 1e115}", "rank_pattern");
  expect_refused("\"alpha_pattern\": {\"q_proj\": 0}", "alpha_pattern");
}

static void in_range_configs_load(void **state) {
  (void)state;
  preft_error err;
  if (load_with("", &err)) fail_msg("%s", err.msg);
  if (load_with("\"layers_to_transform\": [0, 1, 2, 99]", &err)) fail_msg("%s", err.msg);
  if (load_with("\"layers_to_transform\": null, \"rank_pattern\": {}, \"alpha_pattern\": {\"q_proj\": 2.5}",
                &err))
    fail_msg("%s", err.msg);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(out_of_range_numbers_are_refused),
      cmocka_unit_test(in_range_configs_load),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
