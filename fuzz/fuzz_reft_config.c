/* fuzz_reft_config.c - libFuzzer target: a ReFT reft_config.json (type,
 * rank, positions, layers, sharing) loaded with real weights
 * (tests/data/adapters/loreft-f3l3) through preft_adapter_load. */
#include "fuzz_adapter.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_adapter_load("reft_config.json", "adapters/loreft-f3l3/reft_model.safetensors",
                    "reft_model.safetensors", data, size);
  return 0;
}
