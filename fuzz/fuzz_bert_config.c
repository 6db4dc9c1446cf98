/* fuzz_bert_config.c - libFuzzer target: a BERT config.json text through
 * preft_bert_config_parse (model type, sizes, activation, eps). */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_util.h"
#include "model/bert.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *json = fuzz_cstr(data, size);
  preft_bert_config cfg;
  preft_error err;
  (void)preft_bert_config_parse(&cfg, json, "config.json", &err);
  free(json);
  return 0;
}
