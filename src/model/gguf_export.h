/* gguf_export.h - writing a preft model, its tokenizer and its LoRA adapters
 * as the GGUF files llama.cpp loads (`preft convert --to gguf`).
 *
 * Legend: D width, H / Hkv heads, Dh head width, F FFN width, V vocabulary,
 * L layers, R adapter rank.
 *
 * Models. Llama and Mistral checkpoints become architecture "llama", Qwen2
 * "qwen2", with llama.cpp's tensor names (token_embd, blk.N.attn_q, ...,
 * output_norm, output; output is left out when the embedding is tied) and
 * metadata (<arch>.context_length, .embedding_length, .block_count, ...).
 * Matrices keep their stored type unless an output type is asked for
 * (F32, F16, BF16, or a block-quantized type made by ggml's reference
 * quantizers, tensor/quant.h; rows that are not whole blocks of it take
 * llama.cpp's fallback, preft_quant_fallback); vectors (norms, biases,
 * rope_freqs) are always F32, as llama.cpp expects.
 *
 * The one change of layout: llama.cpp's "llama" architecture rotates
 * adjacent pairs (x[2i], x[2i+1]) where Hugging Face rotates halves (x[i],
 * x[i + Dh/2]), so the rows of q_proj and k_proj (their biases, and the
 * lora_B of LoRA on them) are reordered within each head:
 *   GGUF row h*Dh + 2i + j  =  HF row h*Dh + j*Dh/2 + i    (i < Dh/2, j < 2)
 * which leaves every attention score unchanged. "qwen2" uses llama.cpp's
 * NEOX rope (halves, as HF) and is written unpermuted.
 *
 * Llama 3 rope scaling is written as the rope_freqs tensor: per frequency,
 * the factor that divides the unscaled frequency (computed from preft's own
 * scaled frequencies, so llama.cpp rotates by exactly preft's angles).
 *
 * Tokenizers. Byte-level BPE (GPT-2, Llama 3, Qwen2/3, SmolLM) is written as
 * tokenizer.ggml.model "gpt2": tokens as in tokenizer.json, padded with
 * "[PADi]" (type UNUSED) up to the model's vocabulary, token types (NORMAL;
 * CONTROL for special added tokens; USER_DEFINED for other added tokens),
 * merges in rank order, the pre-tokenizer name llama.cpp knows it by
 * (recognised from tokenizer.json's pre_tokenizer, or given), special ids,
 * add_bos/add_eos as the post-processor does, and the chat template.
 * Without a tokenizer the file says tokenizer.ggml.model "none" and gives
 * <arch>.vocab_size (llama.cpp then makes placeholder tokens: enough for
 * llama-bench, not for text).
 *
 * LoRA adapters follow llama.cpp's adapter GGUF: general.type "adapter",
 * adapter.type "lora", adapter.lora.alpha, and for every adapted module the
 * pair <base tensor>.lora_a [R, in] and <base tensor>.lora_b [out, R]
 * (PyTorch order). llama.cpp scales each pair by alpha / R; where PEFT's
 * per-module scales (rank_pattern, alpha_pattern, rsLoRA) cannot be one
 * alpha / R, the remaining factor is folded into lora_b (written F32). ReFT
 * adapters have no llama.cpp counterpart and are refused.
 */
#ifndef PREFT_MODEL_GGUF_EXPORT_H
#define PREFT_MODEL_GGUF_EXPORT_H

#include <stdbool.h>

#include "base/error.h"
#include "io/hf_config.h"
#include "model/adapter.h"
#include "model/llama.h"
#include "text/tokenizer.h"

typedef struct preft_gguf_export_opts {
  int outtype;               /* -1: each matrix as stored; else a preft_dtype for every matrix */
  const char *name;          /* general.name; NULL: "preft" */
  const char *tokenizer_pre; /* tokenizer.ggml.pre; NULL: recognised from tokenizer.json */
} preft_gguf_export_opts;

/* llama.cpp's architecture name for a config ("llama" for Llama and
 * Mistral, "qwen2"), and whether its q/k rows are permuted on export. */
const char *preft_gguf_arch_name(preft_arch arch);
bool preft_gguf_arch_permutes_qk(preft_arch arch);

/* The HF row that GGUF row r of a permuted q/k projection comes from (head
 * width Dh, even). Tests use it to undo the permutation. */
int preft_gguf_rope_src_row(int r, int head_dim);

/* Writes the model (and, when tok is non-NULL, its tokenizer) to path,
 * atomically. Fails, naming the reason, for a model llama.cpp's
 * architecture cannot express (Qwen2 with H*Dh != D or an o_proj bias), a
 * tokenizer that is not byte-level BPE or has more ids than the model's
 * vocabulary, or an unrecognised pre-tokenizer (then give opts.tokenizer_pre). */
int preft_gguf_export_model(const preft_model *m, const preft_tokenizer *tok,
                            const preft_gguf_export_opts *opts, const char *path, preft_error *err);

/* Writes a LoRA adapter loaded for a base model of config cfg. */
int preft_gguf_export_lora(const preft_adapter *a, const preft_model_config *cfg,
                           const preft_gguf_export_opts *opts, const char *path, preft_error *err);

#endif
