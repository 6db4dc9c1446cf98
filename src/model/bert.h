/* bert.h - the BERT encoder: config, weights loaded from a Hugging Face
 * directory, and the batched forward pass (docs/ENCODER.md).
 *
 * Legend: B sequences in a batch, T padded sequence length, N = B*T token
 * rows, D width, H heads, Dh = D/H head width, F FFN width, V vocabulary,
 * P max positions, L layers.
 *
 * Checkpoints: the tensors of BertModel ("embeddings.…", "encoder.layer.…",
 * "pooler.…") with or without the "bert." prefix that BertForMaskedLM and
 * BertForSequenceClassification add, LayerNorm parameters named
 * weight/bias or (old TensorFlow conversions) gamma/beta. Other tensors (the
 * MLM head "cls.…", "classifier.…") are ignored. Matrices stay in the
 * memory-mapped safetensors files (F32, F16, BF16 as stored); vectors are
 * copied to FP32.
 *
 * Forward (transformers' BertModel in eval mode):
 *   x = LN(word[id] + position[t] + token_type[type])
 *   per layer: a = LN(x + attn(x)·Woᵀ + bo);  x = LN(a + gelu(a·W1ᵀ + b1)·W2ᵀ + b2)
 *   pooled = tanh(x[CLS]·Wpᵀ + bp)
 * Attention of a sequence sees its first `length` keys only: a right-padded
 * batch gives every sequence what it gets alone (padding rows are computed
 * as transformers computes them, attending to the real keys).
 */
#ifndef PREFT_MODEL_BERT_H
#define PREFT_MODEL_BERT_H

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"
#include "base/threadpool.h"
#include "io/safetensors.h"
#include "model/weights.h"
#include "tensor/dtype.h"

typedef struct preft_bert_config {
  int vocab;      /* V vocab_size */
  int dim;        /* D hidden_size */
  int n_heads;    /* H num_attention_heads */
  int head_dim;   /* Dh = D / H */
  int ffn;        /* F intermediate_size */
  int n_layers;   /* L num_hidden_layers */
  int max_pos;    /* P max_position_embeddings */
  int type_vocab; /* type_vocab_size */
  float ln_eps;   /* layer_norm_eps */
  int pad_id;     /* pad_token_id */
  preft_dtype torch_dtype;
} preft_bert_config;

/* Parses config.json text (path used in messages): model_type "bert" (or a
 * Bert* architecture), hidden_act "gelu", absolute position embeddings;
 * anything else that changes the math is refused naming the field. */
int preft_bert_config_parse(preft_bert_config *cfg, const char *json, const char *path, preft_error *err);
int preft_bert_config_load(preft_bert_config *cfg, const char *dir, preft_error *err);

typedef struct preft_bert_layer {
  preft_weight wq, wk, wv; /* [D, D] attention.self.{query,key,value} */
  preft_weight wo;         /* [D, D] attention.output.dense */
  preft_weight w1;         /* [F, D] intermediate.dense */
  preft_weight w2;         /* [D, F] output.dense */
  float *bq, *bk, *bv, *bo, *b1, *b2;
  float *ln_attn_w, *ln_attn_b; /* [D] attention.output.LayerNorm */
  float *ln_out_w, *ln_out_b;   /* [D] output.LayerNorm */
} preft_bert_layer;

typedef struct preft_bert {
  preft_bert_config cfg;
  preft_weight word; /* [V, D] */
  preft_weight pos;  /* [P, D] */
  preft_weight type; /* [type_vocab, D] */
  float *ln_emb_w, *ln_emb_b;
  preft_bert_layer *layers; /* [L] */
  bool has_pooler;          /* BertForMaskedLM has none */
  preft_weight pooler_w;    /* [D, D] */
  float *pooler_b;          /* [D] */
  const char *prefix;       /* "bert." or "" as found in the checkpoint */
  preft_st_set st;          /* the mapped files the weights point into */
  void *owned;              /* the matrices of a model made in memory (random init) */
  float *lora_merged;       /* FP32 matrices with a LoRA merged in (bert_lora.c) */
} preft_bert;

/* Loads DIR/config.json and DIR/model.safetensors (or its shards). Errors
 * name the file and the tensor (missing, or its shape and the one expected). */
int preft_bert_load(preft_bert **out, const char *dir, preft_error *err);
void preft_bert_free(preft_bert *m);

/* A model with random weights of the given config, in memory (benchmarks);
 * every matrix stored in `dtype`, with a pooler. */
int preft_bert_init_random(preft_bert **out, const preft_bert_config *cfg, preft_dtype dtype, uint64_t seed,
                           preft_error *err);

/* The configs of Google's BERT releases by name (bert-base: L12 D768 H12
 * F3072 V30522 P512; bert-large; and the miniatures bert-medium L8 D512,
 * bert-small L4 D512, bert-mini L4 D256, bert-tiny L2 D128), for benchmarks;
 * fails naming the known names. */
int preft_bert_shape_config(const char *name, preft_bert_config *cfg, preft_error *err);

/* FLOPs of one forward pass over B sequences of T tokens (the matrix
 * products and the attention; multiply-add = 2). */
double preft_bert_forward_flops(const preft_bert_config *c, int n_seqs, int seq_len);

/* B right-padded sequences of T tokens each. ids and types are [B*T]
 * (sequence b at b*T); types NULL means all 0; lengths [B] (NULL: all T)
 * counts each sequence's real tokens (1..T), the rest is padding. */
typedef struct preft_bert_batch {
  int n_seqs;         /* B */
  int seq_len;        /* T */
  const int *ids;     /* [B*T] */
  const int *types;   /* [B*T] or NULL */
  const int *lengths; /* [B] or NULL */
} preft_bert_batch;

/* Checks a batch against the model's limits (lengths, token ids, token
 * types), naming the sequence and position at fault; used by inference and
 * training alike. */
int preft_bert_batch_check(const preft_bert_config *c, const preft_bert_batch *b, preft_error *err);

/* lengths[b] from an attention mask [B*T] of 0/1: each row must be ones
 * then zeros with at least one 1 (right padding); anything else fails
 * naming the row. */
int preft_bert_lengths_from_mask(const uint8_t *mask, int n_seqs, int seq_len, int *lengths,
                                 preft_error *err);

/* Scratch of the forward pass, grown on demand, owned by the caller. */
typedef struct preft_bert_workspace {
  int cap_rows, cap_scores;
  float *q, *k, *v, *att, *h; /* [N, D] each */
  float *f;                   /* [N, F] */
  float *scores;              /* [threads, T] */
  int *lengths;               /* [B] */
  int cap_seqs;
} preft_bert_workspace;

void preft_bert_workspace_free(preft_bert_workspace *ws);

/* Runs the encoder: hidden [B*T, D] receives the last hidden state of every
 * row (padding rows included); pooled [B, D], if not NULL, the pooler output
 * of each sequence (fails when the model has no pooler). Fails on an id
 * outside the vocabulary, a type outside type_vocab_size, T above P or a
 * length outside [1, T], before computing anything. */
int preft_bert_forward(const preft_bert *m, preft_pool *pool, const preft_bert_batch *b,
                       preft_bert_workspace *ws, float *hidden, float *pooled, preft_error *err);

/* The forward pass a step at a time (early exit): the embeddings into
 * hidden [B*T, D] (validating the batch as preft_bert_forward does), then
 * each layer in place. Between layers the caller may drop sequences from
 * the batch (compacting hidden, ids, types and lengths alike). */
int preft_bert_embed(const preft_bert *m, preft_pool *pool, const preft_bert_batch *b,
                     preft_bert_workspace *ws, float *hidden, preft_error *err);
void preft_bert_run_layer(const preft_bert *m, int layer, preft_pool *pool, const preft_bert_batch *b,
                          preft_bert_workspace *ws, float *hidden);

/* ---- LoRA in Hugging Face PEFT directories (bert_lora.c) -------------------------- *
 *
 * An adapter of the encoder's linear layers is a PEFT directory as PEFT
 * saves one for BertModel (task_type FEATURE_EXTRACTION):
 * adapter_config.json (peft_type LORA, r, lora_alpha, target_modules,
 * base_model_name_or_path) and adapter_model.safetensors with
 * base_model.model.encoder.layer.<l>.<module>.lora_{A,B}.weight, A [R, in],
 * B [out, R]; read with "bert." after "base_model.model." as well (an
 * adapter made on BertFor* models). The modules, in this order:
 * attention.self.{query,key,value}, attention.output.dense,
 * intermediate.dense, output.dense. PEFT's rules choose the adapted ones
 * (peft_lora.h); LoRA on the pooler or embeddings is refused. Beside the
 * adapter preft keeps the task heads a fine-tuning trained (PEFT ignores
 * both files): preft_heads.json and preft_heads.safetensors. */
enum { PREFT_BERT_N_LIN = 6 };
extern const char *const preft_bert_lin_keys[PREFT_BERT_N_LIN]; /* "attention.self.query", ... */

/* What a model is loaded from: a model directory, or a base model and an
 * adapter. Without an adapter, a MODEL directory holding
 * adapter_config.json but no config.json is the adapter, and its
 * base_model_name_or_path the base. heads: where preft_heads.json is (the
 * adapter's directory, else the base's). */
typedef struct preft_bert_source {
  char *base, *adapter; /* adapter NULL: none */
  const char *heads;
} preft_bert_source;
int preft_bert_source_resolve(preft_bert_source *s, const char *model, const char *adapter, preft_error *err);
void preft_bert_source_free(preft_bert_source *s);
/* preft_bert_load of the base, with the adapter merged into its matrices. */
int preft_bert_load_source(preft_bert **out, const preft_bert_source *s, preft_error *err);

/* An adapter's modules in FP32: mod[l * PREFT_BERT_N_LIN + k]. */
typedef struct preft_bert_lora_mod {
  int rank, in, out; /* rank 0: not adapted */
  float scale;
  float *a, *b; /* [rank, in], [out, rank] */
} preft_bert_lora_mod;
typedef struct preft_bert_lora {
  int n_layers;
  preft_bert_lora_mod *mod;
} preft_bert_lora;

/* Reads DIR for a model of config c; errors name the file and the tensor
 * (missing, another shape, not belonging to a targeted module). */
int preft_bert_lora_read(preft_bert_lora *lo, const char *dir, const preft_bert_config *c, preft_error *err);
void preft_bert_lora_free(preft_bert_lora *lo);
/* w [out, in] += scale · B·A for module k of layer l (nothing when not adapted). */
void preft_bert_lora_merge(const preft_bert_lora *lo, int layer, int k, float *w);
/* Merges the adapter in DIR into m: the adapted matrices become FP32 copies. */
int preft_bert_apply_lora(preft_bert *m, const char *dir, preft_error *err);
/* Writes DIR/adapter_config.json and DIR/adapter_model.safetensors (F32),
 * atomically: rank R and alpha on every module of every layer, a[l *
 * PREFT_BERT_N_LIN + k] [R, in] and b[...] [out, R]; base names the base
 * model (base_model_name_or_path). */
int preft_bert_lora_write(const char *dir, const preft_bert_config *c, int rank, double alpha,
                          const char *base, const float *const *a, const float *const *b, preft_error *err);

#endif
