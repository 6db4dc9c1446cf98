/* fuzz_safetensors.c - libFuzzer target: one .safetensors file (header
 * length, JSON header, data offsets) through preft_st_add_file, then every
 * tensor's bytes read back (ASan catches a range outside the mapping). */
#include <stdint.h>

#include "fuzz_util.h"
#include "io/safetensors.h"

/* what the reads add up to, so the compiler keeps them */
static volatile uint8_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_write("fuzz.safetensors", data, size);
  preft_st_set set = {0};
  preft_error err;
  if (preft_st_add_file(&set, path, &err) == 0) {
    for (int i = 0; i < set.n_tensors; i++) {
      const preft_st_tensor *t = &set.tensors[i];
      if (t->nbytes) sink ^= ((const uint8_t *)t->data)[0] ^ ((const uint8_t *)t->data)[t->nbytes - 1];
      (void)preft_st_numel(t);
    }
  }
  preft_st_close(&set);
  return 0;
}
