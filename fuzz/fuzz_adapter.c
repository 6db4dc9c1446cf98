/* fuzz_adapter.c - the adapter-directory loader of fuzz_adapter.h. */
#include "fuzz_adapter.h"

#include <stdio.h>
#include <stdlib.h>

#include "fuzz_util.h"
#include "io/hf_config.h"
#include "preft/adapter.h"

void fuzz_adapter_load(const char *config_name, const char *weights_rel, const char *weights_name,
                       const uint8_t *data, size_t size) {
  static preft_model_config cfg;
  static int ready;
  preft_error err;
  if (!ready) {
    fuzz_copy_data("models/llama-gqa-rope3/config.json", "config.json");
    if (preft_config_load(&cfg, fuzz_tmpdir(), &err) != 0) {
      fprintf(stderr, "fuzz: %s\n", err.msg);
      abort();
    }
    fuzz_copy_data(weights_rel, weights_name);
    ready = 1;
  }
  fuzz_write(config_name, data, size);
  preft_adapter *a = NULL;
  if (preft_adapter_load(&a, fuzz_tmpdir(), "fuzz", &cfg, &err) == 0) preft_adapter_free(a);
}
