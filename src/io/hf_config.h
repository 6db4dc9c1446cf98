/* hf_config.h - the model hyper-parameters of a Hugging Face decoder
 * (config.json) and its sampling defaults (generation_config.json).
 *
 * Supported: LlamaForCausalLM, Qwen2ForCausalLM, MistralForCausalLM (and the
 * matching model_type llama / qwen2 / mistral). Everything else, and any
 * setting that would change the math without preft implementing it (an
 * unknown rope type, Qwen2's sliding-window layers), is refused with an error
 * naming the field, never silently ignored.
 */
#ifndef PREFT_IO_HF_CONFIG_H
#define PREFT_IO_HF_CONFIG_H

#include <stdbool.h>

#include "base/error.h"
#include "tensor/dtype.h"

#define PREFT_MAX_EOS 8

typedef enum { PREFT_ARCH_LLAMA, PREFT_ARCH_QWEN2, PREFT_ARCH_MISTRAL } preft_arch;
typedef enum { PREFT_ROPE_DEFAULT, PREFT_ROPE_LINEAR, PREFT_ROPE_LLAMA3 } preft_rope_type;

typedef struct preft_model_config {
  preft_arch arch;
  int vocab;          /* V */
  int dim;            /* D, hidden_size */
  int ffn;            /* F, intermediate_size */
  int n_layers;       /* L */
  int n_heads;        /* H */
  int n_kv_heads;     /* Hkv, divides H */
  int head_dim;       /* Dh, even */
  int max_pos;        /* max_position_embeddings */
  int sliding_window; /* 0: full causal attention */
  float norm_eps;
  double rope_theta;
  preft_rope_type rope_type;
  double rope_factor, rope_low_freq_factor, rope_high_freq_factor;
  int rope_original_max_pos;
  bool tie_embeddings;
  bool qkv_bias; /* q, k, v projections have biases */
  bool o_bias;   /* o projection has a bias */
  int bos_id;    /* -1 when unknown */
  int eos_ids[PREFT_MAX_EOS];
  int n_eos;
  preft_dtype torch_dtype; /* what config.json declares; tensors carry their own */
} preft_model_config;

typedef struct preft_generation_config {
  bool do_sample;
  double temperature, top_p, min_p;
  int top_k;
  int max_new_tokens; /* 0: not given */
  int eos_ids[PREFT_MAX_EOS];
  int n_eos; /* 0: not given */
} preft_generation_config;

const char *preft_arch_name(preft_arch arch);

/* Reads DIR/config.json. */
int preft_config_load(preft_model_config *cfg, const char *dir, preft_error *err);
/* Parses config.json text already in memory (path used in messages). */
int preft_config_parse(preft_model_config *cfg, const char *json, const char *path, preft_error *err);
/* Writes cfg as a config.json Hugging Face loads (atomically). */
int preft_config_write(const preft_model_config *cfg, const char *path, preft_error *err);

/* Reads DIR/generation_config.json when present; otherwise fills the
 * Hugging Face defaults (greedy unless do_sample). */
int preft_generation_config_load(preft_generation_config *gen, const char *dir, preft_error *err);

#endif
