/* fuzz_tokenizer_json.c - libFuzzer target: a tokenizer.json (model, merges,
 * vocab, normalizer, pre-tokenizer regexes, decoder, added tokens,
 * post-processor) through preft_tokenizer_load, then a fixed text encoded
 * and decoded with what loaded. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "preft/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char text[] = "Hello, world! 123 ünïcödé  \t\n<s> 日本語 🙂 don't";
  const char *path = fuzz_write("tokenizer.json", data, size);
  preft_tokenizer *t;
  preft_error err;
  if (preft_tokenizer_load(&t, path, &err) != 0) return 0;
  int32_t *ids = NULL;
  size_t n = 0;
  if (preft_tokenizer_encode(t, text, strlen(text), true, &ids, &n, &err) == 0) {
    char *s = NULL;
    size_t len;
    if (preft_tokenizer_decode(t, ids, n, 0, &s, &len, &err) == 0) free(s);
    free(ids);
  }
  preft_tokenizer_free(t);
  return 0;
}
