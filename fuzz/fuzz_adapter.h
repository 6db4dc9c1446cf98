/* fuzz_adapter.h - shared by fuzz_peft_config.c and fuzz_reft_config.c:
 * loads an adapter directory whose config file is the fuzz input and whose
 * weights are a real test adapter's, for the base model llama-gqa-rope3. */
#ifndef PREFT_FUZZ_ADAPTER_H
#define PREFT_FUZZ_ADAPTER_H

#include <stddef.h>
#include <stdint.h>

/* config_name: "adapter_config.json" or "reft_config.json"; weights_rel:
 * the test data file copied once beside it as weights_name. */
void fuzz_adapter_load(const char *config_name, const char *weights_rel, const char *weights_name,
                       const uint8_t *data, size_t size);

#endif
