/* fuzz_hf_config.c - libFuzzer target: a model's config.json text through
 * preft_config_parse (architecture, sizes, rope scaling, token ids). */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_util.h"
#include "io/hf_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *json = fuzz_cstr(data, size);
  preft_model_config cfg;
  preft_error err;
  (void)preft_config_parse(&cfg, json, "config.json", &err);
  free(json);
  return 0;
}
