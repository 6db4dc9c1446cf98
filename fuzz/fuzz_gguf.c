/* fuzz_gguf.c - libFuzzer target: one GGUF file through preft_gguf_open
 * (magic, version, key/values, tensor infos, alignment, data ranges), then
 * every tensor's first and last element and every typed key lookup; then
 * the file as a model (preft_model_load) and as a tokenizer. */
#include <stdint.h>

#include <stdlib.h>

#include "fuzz_util.h"
#include "io/gguf.h"
#include "model/llama.h"
#include "text/tokenizer.h"

/* what the reads add up to, so the compiler keeps them */
static volatile float sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_write("fuzz.gguf", data, size);
  preft_gguf_file f;
  preft_error err;
  if (preft_gguf_open(&f, path, &err) != 0) return 0;
  for (int64_t i = 0; i < f.n_tensors; i++) {
    const preft_gguf_tensor *t = &f.tensors[i];
    size_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= (size_t)t->ne[d];
    if (n && preft_ggml_type_size(t->type))
      sink += preft_gguf_tensor_get(t, 0) + preft_gguf_tensor_get(t, n - 1);
  }
  for (int64_t i = 0; i < f.n_kv; i++) {
    const char *s;
    uint32_t u;
    float x;
    bool b;
    (void)preft_gguf_get_str(&f, f.kv[i].key, &s, &err);
    (void)preft_gguf_get_u32(&f, f.kv[i].key, &u, &err);
    (void)preft_gguf_get_f32(&f, f.kv[i].key, &x, &err);
    (void)preft_gguf_get_bool(&f, f.kv[i].key, &b, &err);
  }
  preft_gguf_close(&f);
  /* the same file as a model and as a tokenizer: either loads or fails
   * with a message */
  preft_model *m = NULL;
  if (preft_model_load(&m, path, &err) == 0) preft_model_free(m);
  preft_tokenizer *t = NULL;
  if (preft_tokenizer_load(&t, path, &err) == 0) {
    int32_t *ids;
    size_t n;
    if (preft_tokenizer_encode(t, "Hello world 123", 15, true, &ids, &n, &err) == 0) free(ids);
    preft_tokenizer_free(t);
  }
  return 0;
}
