/* fuzz_peft_config.c - libFuzzer target: a PEFT LoRA adapter_config.json
 * (target_modules, layers_to_transform, rank/alpha patterns, ...) loaded
 * with real weights (tests/data/adapters/lora-qv-r4) through
 * preft_adapter_load. */
#include "fuzz_adapter.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_adapter_load("adapter_config.json", "adapters/lora-qv-r4/adapter_model.safetensors",
                    "adapter_model.safetensors", data, size);
  return 0;
}
