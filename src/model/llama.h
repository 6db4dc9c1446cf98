/* llama.h - the Llama-family decoder (Llama 3.x, Qwen2/2.5, SmolLM,
 * Mistral): weights, loading from a Hugging Face directory, and the batched
 * forward pass.
 *
 * Legend: N token rows in a batch, D width, H query heads, Hkv key/value
 * heads, Dh head width, F FFN width, V vocabulary, L layers.
 *
 * A batch is a set of token rows from any number of sequences; each row
 * carries its token, its position and its KV-cache sequence slot. Prefill
 * (many rows of one sequence) and decode (one row each of many sequences)
 * are the same call. Rows see every earlier position of their own sequence:
 * the cached ones and the ones written by this batch.
 *
 * Weights point into the memory-mapped safetensors or GGUF files (F32, F16,
 * BF16 as stored; a GGUF's quantized types too); only the small vectors
 * (norms, biases) are copied to FP32.
 */
#ifndef PREFT_MODEL_LLAMA_H
#define PREFT_MODEL_LLAMA_H

#include <stdint.h>

#include "base/error.h"
#include "base/threadpool.h"
#include "io/hf_config.h"
#include "io/safetensors.h"
#include "model/adapter_plan.h"
#include "model/kv_cache.h"
#include "model/weights.h" /* preft_weight */
#include "preft/model.h"   /* preft_model (public declarations: load, free, config, sizes) */
#include "tensor/dtype.h"

typedef struct preft_layer_weights {
  preft_weight wq;          /* [H*Dh, D] */
  preft_weight wk;          /* [Hkv*Dh, D] */
  preft_weight wv;          /* [Hkv*Dh, D] */
  preft_weight wo;          /* [D, H*Dh] */
  preft_weight w_gate;      /* [F, D] */
  preft_weight w_up;        /* [F, D] */
  preft_weight w_down;      /* [D, F] */
  float *bq, *bk, *bv, *bo; /* [H*Dh], [Hkv*Dh], [Hkv*Dh], [D]; NULL when absent */
  float *attn_norm;         /* [D] input_layernorm */
  float *ffn_norm;          /* [D] post_attention_layernorm */
} preft_layer_weights;

struct preft_model {
  preft_model_config cfg;
  preft_weight embed;           /* [V, D] */
  preft_weight lm_head;         /* [V, D]; the embedding when tied */
  float *final_norm;            /* [D] */
  preft_layer_weights *layers;  /* [L] */
  double *inv_freq;             /* [Dh/2] rotary frequencies after rope scaling */
  preft_st_set st;              /* the mapped files the weights point into */
  struct preft_gguf_file *gguf; /* or the mapped GGUF file (llama_load_gguf.c); NULL otherwise */
  void *owned;                  /* storage of a model made in memory (random init; a GGUF's re-ordered q/k) */
  void *quant_owned;            /* matrices quantized at load: a list of {buffer, next} */
};

/* Rotary inverse frequencies [Dh/2] with the config's scaling rule applied
 * (Hugging Face's default, linear and llama3 rules); heap. */
double *preft_rope_inv_freq(const preft_model_config *c);

/* Quantizes every projection matrix, the embedding and the output head to
 * t (a block-quantized preft_dtype) with ggml's reference quantizers
 * (llama_quantize.c), as `preft convert --type t` does; matrices whose rows
 * are not whole blocks of t take preft_quant_fallback(t, cols), and fail
 * when that does not fit either. Matrices already quantized stay. */
int preft_model_quantize(preft_model *m, preft_dtype t, preft_pool *pool, preft_error *err);
/* Regroups the Q4_0 / Q5_0 projections, embedding and output head (rows
 * of whole 128-value groups) in place into their X4 layouts, and the Q4_K
 * ones (a multiple of 4 rows) into the R4 layout (tensor/quant.h), when
 * repacking is on (preft_weights_set_repack) and this CPU's kernels read
 * those layouts natively; the weights must be in writable memory (not a file
 * mapping). Returns how many matrices it repacked. preft_model_quantize
 * repacks the matrices it quantizes itself. */
int preft_model_repack(preft_model *m, preft_pool *pool);
/* llama.cpp's fallback for rows of cols values that are not whole blocks
 * of t: Q4_K -> Q5_0, Q6_K -> Q8_0; t itself when they are. */
preft_dtype preft_quant_fallback(preft_dtype t, int64_t cols);

/* Loads a GGUF file as llama.cpp writes it (llama_load_gguf.c);
 * preft_model_load calls it for a path that is a GGUF file. */
int preft_model_load_gguf(preft_model **out, const char *path, preft_error *err);

/* A model with random weights of the given config, held in memory (for
 * benchmarks and tests); every matrix stored in `dtype`. */
int preft_model_init_random(preft_model **out, const preft_model_config *cfg, preft_dtype dtype,
                            uint64_t seed, preft_error *err);

/* Writes config.json, generation_config.json and model.safetensors into dir
 * (created if needed), each atomically. */
int preft_model_save(const preft_model *m, const char *dir, preft_error *err);

/* One step's token rows. logit_rows lists (in output order) the rows whose
 * next-token logits are wanted; typically the last row of each sequence.
 * adapter/adapt may be NULL (no adapters); otherwise row i runs adapter[i]
 * (NULL: base model) where adapt[i] (a preft_adapt_flag) is not OFF. */
typedef struct preft_batch {
  int n;            /* N */
  const int *token; /* [N] */
  const int *pos;   /* [N] */
  const int *seq;   /* [N] KV-cache slot */
  const int *logit_rows;
  int n_logits;
  const preft_adapter *const *adapter; /* [N] or NULL */
  const uint8_t *adapt;                /* [N] or NULL */
} preft_batch;

/* Scratch buffers of the forward pass, grown on demand, owned by the caller
 * (one per engine or thread of control). */
typedef struct preft_workspace {
  int cap_rows, cap_ctx, cap_threads;
  float *x, *xb, *q, *k, *v, *att, *h1, *h3; /* row buffers, N rows each */
  float *rope_cos, *rope_sin;                /* [N, Dh/2] */
  float *scores;                             /* [threads, G*ctx]: G query heads per KV head */
  float *out_rows;                           /* [n_logits, D] */
  preft_adapter_plan plan;                   /* this batch's adapter groups */
} preft_workspace;

void preft_workspace_free(preft_workspace *ws);

/* Runs the decoder over the batch: writes the rows' keys and values into
 * the cache (their positions must be reserved), and fills
 * logits [n_logits, V]. Fails on a token outside the vocabulary or a
 * position outside the cache's reserved range, before touching the cache. */
int preft_model_forward(const preft_model *m, preft_pool *pool, preft_kv_cache *kv, const preft_batch *batch,
                        preft_workspace *ws, float *logits, preft_error *err);

#endif
