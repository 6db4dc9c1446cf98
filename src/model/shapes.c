/* shapes.c - configs of well-known checkpoints (see shapes.h). The numbers
 * are those of the published config.json files. */
#include "model/shapes.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

typedef struct {
  const char *name;
  preft_model_config cfg;
} named_shape;

#define LLAMA3_ROPE(f)                                                           \
  .rope_type = PREFT_ROPE_LLAMA3, .rope_factor = f, .rope_low_freq_factor = 1.0, \
  .rope_high_freq_factor = 4.0, .rope_original_max_pos = 8192

static const named_shape shapes[] = {
    {"tiny",
     {.arch = PREFT_ARCH_LLAMA,
      .vocab = 512,
      .dim = 64,
      .ffn = 176,
      .n_layers = 2,
      .n_heads = 4,
      .n_kv_heads = 2,
      .head_dim = 16,
      .max_pos = 2048,
      .norm_eps = 1e-5f,
      .rope_theta = 10000.0,
      .tie_embeddings = true,
      .bos_id = 1,
      .eos_ids = {2},
      .n_eos = 1}},
    {"smollm-135m",
     {.arch = PREFT_ARCH_LLAMA,
      .vocab = 49152,
      .dim = 576,
      .ffn = 1536,
      .n_layers = 30,
      .n_heads = 9,
      .n_kv_heads = 3,
      .head_dim = 64,
      .max_pos = 2048,
      .norm_eps = 1e-5f,
      .rope_theta = 10000.0,
      .tie_embeddings = true,
      .bos_id = 1,
      .eos_ids = {2},
      .n_eos = 1}},
    {"qwen2.5-0.5b",
     {.arch = PREFT_ARCH_QWEN2,
      .vocab = 151936,
      .dim = 896,
      .ffn = 4864,
      .n_layers = 24,
      .n_heads = 14,
      .n_kv_heads = 2,
      .head_dim = 64,
      .max_pos = 32768,
      .norm_eps = 1e-6f,
      .rope_theta = 1000000.0,
      .tie_embeddings = true,
      .qkv_bias = true,
      .bos_id = 151643,
      .eos_ids = {151643},
      .n_eos = 1}},
    {"llama-3.2-1b",
     {.arch = PREFT_ARCH_LLAMA,
      .vocab = 128256,
      .dim = 2048,
      .ffn = 8192,
      .n_layers = 16,
      .n_heads = 32,
      .n_kv_heads = 8,
      .head_dim = 64,
      .max_pos = 131072,
      .norm_eps = 1e-5f,
      .rope_theta = 500000.0,
      LLAMA3_ROPE(32.0),
      .tie_embeddings = true,
      .bos_id = 128000,
      .eos_ids = {128001, 128008, 128009},
      .n_eos = 3}},
    {"llama-3.1-8b",
     {.arch = PREFT_ARCH_LLAMA,
      .vocab = 128256,
      .dim = 4096,
      .ffn = 14336,
      .n_layers = 32,
      .n_heads = 32,
      .n_kv_heads = 8,
      .head_dim = 128,
      .max_pos = 131072,
      .norm_eps = 1e-5f,
      .rope_theta = 500000.0,
      LLAMA3_ROPE(8.0),
      .tie_embeddings = false,
      .bos_id = 128000,
      .eos_ids = {128001, 128008, 128009},
      .n_eos = 3}},
};

int preft_shape_config(const char *name, preft_model_config *cfg, preft_error *err) {
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
    if (!strcmp(shapes[i].name, name)) {
      *cfg = shapes[i].cfg;
      return 0;
    }
  }
  return preft_fail(err, "unknown shape '%s' (known: %s)", name, preft_shape_names());
}

static char names[256];
static pthread_once_t names_once = PTHREAD_ONCE_INIT;

/* names = the table's names, comma-separated, in table order. */
static void join_names(void) {
  size_t len = 0;
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0] && len < sizeof names; i++)
    len += (size_t)snprintf(names + len, sizeof names - len, "%s%s", i ? ", " : "", shapes[i].name);
}

const char *preft_shape_names(void) {
  pthread_once(&names_once, join_names);
  return names;
}
