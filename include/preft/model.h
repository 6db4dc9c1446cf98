/* preft/model.h - a Llama-family decoder (Llama 3.x, Qwen2/2.5, SmolLM,
 * Mistral) loaded from a Hugging Face directory, its hyper-parameters and
 * sampling defaults, and the process-wide matmul precision.
 *
 *   preft_error err;
 *   preft_model *m;
 *   if (preft_model_load(&m, "models/qwen2.5-0.5b", &err) != 0) { ...err.msg... }
 *   const preft_model_config *cfg = preft_model_get_config(m);
 *   printf("%d layers, vocabulary %d\n", cfg->n_layers, cfg->vocab);
 *   preft_generation_config gen;  // sampling defaults (generation_config.json)
 *   preft_generation_config_load(&gen, "models/qwen2.5-0.5b", &err);
 *   ...  // preft/generate.h, preft/engine.h
 *   preft_model_free(m);
 *
 * A model directory holds config.json, model.safetensors (or shards listed
 * in model.safetensors.index.json) and optionally generation_config.json.
 * Weights in F32, F16 or BF16 are memory-mapped and used in place; compute
 * is FP32. Loading checks every tensor's presence and shape and refuses any
 * setting that would change the math without preft implementing it, with an
 * error naming the file and field.
 *
 * Ownership: the model owns its mapped files until preft_model_free. It is
 * read-only after loading: any number of threads (and a serving engine) may
 * run it at once. The config pointer lives as long as the model.
 */
#ifndef PREFT_PUBLIC_MODEL_H
#define PREFT_PUBLIC_MODEL_H

#include <stdbool.h>
#include <stddef.h>

#include "preft/base.h"

/* Element type of stored weights. F32, F16 and BF16 are element types;
 * the others are ggml's block-quantized formats (src/tensor/quant.h): rows
 * are whole blocks of 32 (Q8_0, Q4_0, Q5_0) or 256 (Q4_K, Q6_K) elements. */
typedef enum {
  PREFT_F32 = 0,
  PREFT_F16 = 1,
  PREFT_BF16 = 2,
  PREFT_Q8_0 = 3,
  PREFT_Q4_0 = 4,
  PREFT_Q4_K = 5,
  PREFT_Q6_K = 6,
  PREFT_Q5_0 = 7,
  PREFT_N_DTYPES, /* the types above are those a file stores */
  /* In memory only: Q4_0 / Q5_0 rows with their blocks regrouped four at
   * a time (src/tensor/quant.h, "X4 layouts"), as the loader repacks them
   * for the AVX512-VNNI decode kernels. Never written to a file. */
  PREFT_Q4_0_X4 = PREFT_N_DTYPES,
  PREFT_Q5_0_X4,
  /* In memory only: a Q4_K matrix with its rows interleaved four at a time
   * (src/tensor/quant.h, "the R4 layout"), for the same kernels. */
  PREFT_Q4_K_R4,
  PREFT_N_LAYOUTS
} preft_dtype;

#define PREFT_MAX_EOS 8

typedef enum { PREFT_ARCH_LLAMA, PREFT_ARCH_QWEN2, PREFT_ARCH_MISTRAL } preft_arch;
typedef enum { PREFT_ROPE_DEFAULT, PREFT_ROPE_LINEAR, PREFT_ROPE_LLAMA3 } preft_rope_type;

/* The hyper-parameters of config.json. */
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

/* The sampling defaults of generation_config.json. */
typedef struct preft_generation_config {
  bool do_sample;
  double temperature, top_p, min_p;
  int top_k;
  int max_new_tokens; /* 0: not given */
  int eos_ids[PREFT_MAX_EOS];
  int n_eos; /* 0: not given */
} preft_generation_config;

typedef struct preft_model preft_model;

/* Loads config.json and the safetensors weights of a Hugging Face
 * directory, or a GGUF file as llama.cpp writes it (architectures llama and
 * qwen2). Checks every expected tensor's presence and shape. */
PREFT_API int preft_model_load(preft_model **out, const char *dir, preft_error *err);
PREFT_API void preft_model_free(preft_model *m);

/* The model's hyper-parameters (owned by the model). */
PREFT_API const preft_model_config *preft_model_get_config(const preft_model *m);
/* Number of parameters and bytes of weight storage. */
PREFT_API size_t preft_model_n_params(const preft_model *m);
PREFT_API size_t preft_model_weight_bytes(const preft_model *m);

/* Reads DIR/generation_config.json when present; otherwise fills the
 * Hugging Face defaults (greedy unless do_sample). */
PREFT_API int preft_generation_config_load(preft_generation_config *gen, const char *dir, preft_error *err);

/* ---- where loaded weights live (process-wide) ----
 * Read (default): preft_model_load reads the weight files into the
 * process's memory, on 2 MiB pages where the kernel gives them: fewer TLB
 * misses in every decode step, and a file rewritten while the model is
 * loaded cannot fault it. mmap: maps the files instead (what llama.cpp
 * does by default): loading returns sooner and processes that load the
 * same files share the page cache, but on some virtual machines reading
 * mapped file pages stalls periodically (docs/PERFORMANCE.md). Set it
 * before loading. The environment variable PREFT_MMAP=1 selects mmap in
 * the preft command. */
PREFT_API void preft_weights_set_mmap(bool on);
PREFT_API bool preft_weights_get_mmap(void);

/* ---- weight repacking (process-wide) ----
 * On (default): where this CPU has AVX512-VNNI, loading a model whose
 * projections are Q4_0 / Q5_0 / Q4_K (a GGUF, or --quantize) regroups
 * their blocks in place into the layout the decode kernels read fastest
 * (the same bytes, the same values; src/tensor/quant.h). Off keeps ggml's
 * layout in memory. Mapped weights (PREFT_MMAP=1) are never repacked. Set
 * it before loading; PREFT_REPACK=0 turns it off in the preft command. */
PREFT_API void preft_weights_set_repack(bool on);
PREFT_API bool preft_weights_get_repack(void);

/* ---- matmul precision (process-wide, like torch.set_float32_matmul_precision) ----
 * exact (default): every product is the FP32 product of the activation and
 * the weight; only the FP32 sums round. bf16: BF16 weights on CPUs with
 * AVX512_BF16 multiply BF16-rounded activations with FP32 sums (about twice
 * as fast; what llama.cpp does); other weights and CPUs stay exact. Set it
 * before any model runs, never while one does. */
typedef enum { PREFT_MATMUL_EXACT = 0, PREFT_MATMUL_BF16 = 1 } preft_matmul_precision;

PREFT_API void preft_matmul_set_precision(preft_matmul_precision p);
PREFT_API preft_matmul_precision preft_matmul_get_precision(void);
/* "exact" / "bf16" -> the precision; -1 if unknown. */
PREFT_API int preft_matmul_precision_parse(const char *s);
PREFT_API const char *preft_matmul_precision_name(preft_matmul_precision p);

#endif
