/* train_model.h - FP32 training state of a Llama-family decoder and of a
 * trainable adapter, and the training forward/backward pass over a batch.
 *
 * Legend: N token rows of a batch, S sequences, D width, H / Hkv heads, Dh
 * head width, F FFN width, V vocabulary, L layers, R adapter rank.
 *
 * As in llm.c: parameters live in one allocation (a preft_param_set), named
 * tensors point into it, gradients mirror it in a second allocation;
 * activations of the pass live in one allocation sized once for a maximum
 * number of rows. The backward pass accumulates (+=) into the gradients, so
 * one preft_param_set_zero_grad starts an optimizer step.
 *
 * A batch is a list of whole sequences laid out one after another (no
 * padding): sequence s owns rows [start[s], start[s]+len[s]) at positions
 * 0..len[s]-1. Row i predicts target[i] (-1: no loss at this row). Every row
 * carries the adapt flag (preft_adapt_flag) of the serving engine: whoever
 * builds the batch fills it with preft_adapter_row_flag, so training runs
 * exactly the semantics that serving runs (train_batch.c does this).
 *
 * The forward pass is the inference forward of llama_forward.c (same
 * operations, same order: LoRA deltas on flagged rows, ReFT edits of the
 * layer output on flagged rows) on FP32 copies of the weights; tests check
 * the logits against preft_model_forward.
 */
#ifndef PREFT_TRAIN_TRAIN_MODEL_H
#define PREFT_TRAIN_TRAIN_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "base/threadpool.h"
#include "io/hf_config.h"
#include "model/adapter.h"
#include "model/llama.h"
#include "preft/train.h" /* preft_train_model, preft_train_adapter (opaque there) */

/* ---- parameter sets -------------------------------------------------------- */

/* What a tensor is, set where the parameter table is made; the fresh
 * initialisations (and LoReFT's re-orthonormalisation) follow it. */
typedef enum {
  PREFT_ROLE_NORM,         /* model RMSNorm weight [D]: ones */
  PREFT_ROLE_BIAS,         /* model projection bias: zeros */
  PREFT_ROLE_MATRIX,       /* model matrix: N(0, 0.02) */
  PREFT_ROLE_RESID_MATRIX, /* o_proj, down_proj: N(0, 0.02 / sqrt(2L)) */
  PREFT_ROLE_LORA_A,       /* [R, in] Kaiming-uniform */
  PREFT_ROLE_LORA_B,       /* [out, R] zeros */
  PREFT_ROLE_REFT_ROTATE,  /* LoReFT R [R, D]: orthonormal rows, kept so */
  PREFT_ROLE_REFT_WEIGHT,  /* LoReFT W or DiReFT proj_down [R, D]: nn.Linear uniform */
  PREFT_ROLE_REFT_BIAS,    /* [R]: nn.Linear uniform */
  PREFT_ROLE_REFT_PROJ_UP, /* DiReFT proj_up [R, D]: orthonormal rows at init */
} preft_tensor_role;

typedef struct preft_train_tensor {
  char name[128];         /* the name in the saved file (HF / PEFT / ReFT naming) */
  float *p, *g;           /* parameters, gradients (g NULL when not trained) */
  size_t n;               /* elements */
  int rows, cols;         /* [rows, cols]; cols 0 for a vector [rows] */
  bool decay;             /* AdamW weight decay applies (matrices) */
  preft_tensor_role role; /* what it is */
} preft_train_tensor;

typedef struct preft_param_set {
  preft_train_tensor *t;
  int n_t;
  size_t n;          /* total elements */
  float *mem, *grad; /* one allocation each */
} preft_param_set;

void preft_param_set_zero_grad(preft_param_set *ps);
void preft_param_set_free(preft_param_set *ps);
const preft_train_tensor *preft_param_set_find(const preft_param_set *ps, const char *name);

/* Builds a parameter set: add the tensors in order (each with the places
 * that receive its parameter and gradient pointers), then finish, which
 * makes the two allocations and fills those places. */
typedef struct preft_param_spec {
  preft_train_tensor t;
  size_t offset;          /* first element within the set */
  float **p_dst, **g_dst; /* receive t.p and t.g; either may be NULL */
} preft_param_spec;

typedef struct preft_param_builder {
  preft_param_spec *s;
  int n, cap;
  size_t total; /* elements so far */
} preft_param_builder;

void preft_param_builder_add(preft_param_builder *b, const char *name, int rows, int cols,
                             preft_tensor_role role, bool decay, float **p_dst, float **g_dst);
/* Zeroed parameters (and gradients when with_grads; else every g is NULL)
 * in ps; frees the builder. */
void preft_param_builder_finish(preft_param_builder *b, preft_param_set *ps, bool with_grads);

/* ---- the model --------------------------------------------------------------- */

typedef struct preft_train_layer {
  float *attn_norm;              /* [D] */
  float *wq, *wk, *wv, *wo;      /* [H*Dh, D], [Hkv*Dh, D], [Hkv*Dh, D], [D, H*Dh] */
  float *bq, *bk, *bv, *bo;      /* [H*Dh], [Hkv*Dh], [Hkv*Dh], [D]; NULL when absent */
  float *ffn_norm;               /* [D] */
  float *w_gate, *w_up, *w_down; /* [F, D], [F, D], [D, F] */
} preft_train_layer;

typedef struct preft_train_weights {
  float *embed;              /* [V, D] */
  float *lm_head;            /* [V, D]; == embed when tied */
  float *final_norm;         /* [D] */
  preft_train_layer *layers; /* [L] */
} preft_train_weights;

struct preft_train_model {
  preft_model_config cfg;
  double *inv_freq; /* [Dh/2] rotary frequencies (as llama_load.c) */
  preft_param_set ps;
  preft_train_weights w, g; /* g's pointers are NULL when the model is frozen */
  /* The matrices the pass multiplies by, as the products take them: FP32
   * (pointing into ps, the same memory as w's pointers) or, for a frozen
   * base whose matrix is block-quantized (a GGUF's, or --quantize: QLoRA),
   * the loaded model's quantized rows in place. Such a matrix is not copied
   * (its w pointer is NULL): the forward runs the serving kernels' int8
   * products (preft_gemm), the backward for x runs dy·dequant(W) on FP32
   * tiles dequantized on the fly (preft_qgemm_dx), the embedding
   * dequantizes the rows of the batch's tokens. */
  preft_weight *mats;           /* [L][PREFT_N_MODULES] in preft_module order */
  preft_weight embed_w, head_w; /* [V, D] each */
  size_t borrowed_bytes;        /* bytes of the loaded model's quantized matrices used in place */
  /* Precision of the pass's products with FP32 matrices (gemm_train.h):
   * EXACT (FP32, the default) or BF16 (operands rounded to BF16 per
   * product, FP32 sums; the FP32 parameters stay the masters). */
  preft_matmul_precision matmul;
};

/* A trainable model from a loaded one. with_grads: the model's own weights
 * are trained (pretraining): an FP32 copy of everything. Without: a frozen
 * base for adapter training; F32/F16/BF16 matrices are copied to FP32,
 * block-quantized ones are used in place, so m must then outlive tm
 * (preft_train_model_borrows). */
void preft_train_model_from(preft_train_model *tm, const preft_model *m, bool with_grads);
/* Whether tm uses matrices of the model it was made from in place. */
static inline bool preft_train_model_borrows(const preft_train_model *tm) { return tm->borrowed_bytes > 0; }
/* A fresh model for pretraining: N(0, 0.02) matrices (o_proj and down_proj
 * scaled by 1/sqrt(2L), GPT-2's rule), unit norms, zero biases. */
int preft_train_model_init(preft_train_model *tm, const preft_model_config *cfg, uint64_t seed,
                           preft_error *err);
void preft_train_model_free(preft_train_model *tm);
/* Writes a Hugging Face directory (config.json, generation_config.json,
 * model.safetensors in F32) through preft_model_save. */
int preft_train_model_save(const preft_train_model *tm, const char *dir, preft_error *err);
/* A preft_model that points into tm's FP32 weights (for preft_model_forward
 * and saving); free with preft_train_model_view_free, never preft_model_free. */
preft_model *preft_train_model_view(const preft_train_model *tm);
void preft_train_model_view_free(preft_model *view);

/* ---- the trainable adapter ---------------------------------------------------- */

/* preft_train_adapter_opts is public (preft/train.h), as are the heap
 * wrappers of preft_train_model_from and preft_train_adapter_init that
 * embedding programs use (preft_train_model_create / _adapter_create,
 * train_api.c). */

typedef struct preft_train_lora {
  float *a, *b;   /* [R, in], [out, R]; NULL when (layer, module) is not adapted */
  float *ga, *gb; /* gradients */
  int in, out;
} preft_train_lora;

typedef struct preft_train_reft {
  bool present;
  float *rotate, *weight, *bias, *proj_up; /* [R, D], [R, D], [R], [R, D] (as preft_reft_slot) */
  float *g_rotate, *g_weight, *g_bias, *g_proj_up;
} preft_train_reft;

struct preft_train_adapter {
  preft_adapter_kind kind;
  preft_adapter_mode mode;
  int n_layers, dim, rank;
  double alpha;
  float scale; /* LoRA alpha / rank */
  bool modules[PREFT_N_MODULES];
  bool *layers; /* [L] */
  bool all_layers;
  char positions[32];
  preft_train_lora *lora;    /* [L][PREFT_N_MODULES] */
  preft_train_reft *reft;    /* [L][PREFT_REFT_SLOTS] */
  int reft_first, reft_last; /* ReFT fA+lB; -1, -1 for "all" and for LoRA (every row) */
  bool reft_shared;          /* ReFT: one shared slot (share_weights, or positions "all") */
  preft_param_set ps;
};

/* A fresh adapter: LoRA with PEFT's init (A Kaiming-uniform, bound
 * 1/sqrt(in); B zero); ReFT with pyreft's (R / proj_up random orthonormal
 * rows, W / proj_down and b nn.Linear's uniform(±1/sqrt(D))). */
int preft_train_adapter_init(preft_train_adapter *ad, const preft_model_config *cfg,
                             const preft_train_adapter_opts *o, preft_error *err);
/* Trainable copy of a loaded adapter (its weights, rank, targets, positions). */
int preft_train_adapter_from(preft_train_adapter *ad, const preft_adapter *a, const preft_model_config *cfg,
                             preft_error *err);
void preft_train_adapter_free(preft_train_adapter *ad);
/* Writes a PEFT directory (adapter_config.json with "preft_mode",
 * adapter_model.safetensors) or a ReFT directory (reft_config.json with
 * "mode", reft_model.safetensors), F32, each file atomically. */
int preft_train_adapter_save(const preft_train_adapter *ad, const char *dir, const char *base_name,
                             preft_error *err);
/* Re-orthonormalises the rows of every LoReFT R (modified Gram-Schmidt in
 * double, twice); called after each optimizer step. */
void preft_train_adapter_orthonormalize(preft_train_adapter *ad);
/* The adapt flag of a row (preft_positions_row_flag, the rule serving uses). */
static inline preft_adapt_flag preft_train_row_flag(const preft_train_adapter *ad, preft_adapter_mode mode,
                                                    int pos, int prompt_len) {
  return preft_positions_row_flag(ad->reft_first, ad->reft_last, ad->reft_shared, mode, pos, prompt_len);
}

/* ---- batches ------------------------------------------------------------------ */

typedef struct preft_train_batch {
  int n, n_seq;             /* N rows, S sequences */
  int *token;               /* [N] */
  int *pos;                 /* [N] */
  int *target;              /* [N] next-token id, or -1 */
  uint8_t *flag;            /* [N] preft_adapt_flag */
  int *seq_start, *seq_len; /* [S] */
  int n_targets;            /* rows with target >= 0 */
  int cap_rows, cap_seq;
} preft_train_batch;

void preft_train_batch_clear(preft_train_batch *b);
/* Appends one sequence of len tokens: row t has token ids[t], target
 * targets[t] (-1 none; NULL: no loss anywhere) and adapt flag flags[t]
 * (NULL: OFF). */
void preft_train_batch_add(preft_train_batch *b, const int *ids, const int *targets, const uint8_t *flags,
                           int len);
void preft_train_batch_free(preft_train_batch *b);

/* ---- activations and the pass ------------------------------------------------- */

typedef struct preft_train_acts {
  int cap_rows, max_seq_len, threads;
  bool recompute; /* keep only each layer's input; recompute the rest in backward */
  int n_stored;   /* layers with their own activation buffers: L, or 1 with recompute */
  float *mem;
  /* per stored layer (index [l] or [0] with recompute), N rows each */
  float *x_in;  /* [L][N, D]   layer input (residual stream); always per layer */
  float *x_out; /* [N, D]      output of the last layer (after ReFT) */
  float *xb1, *rstd1, *q, *k, *v, *lse, *att, *x_mid, *xb2, *rstd2, *h1, *h3, *hg, *x_pre;
  float *lora_t;              /* [n_stored][7][N, R] scaled, masked x·Aᵀ of each LoRA module */
  float *xf, *rstdf;          /* [N, D], [N] final norm */
  float *rope_cos, *rope_sin; /* [N, Dh/2] */
  /* cos and sin of every position below max_seq_len [max_seq_len, Dh/2],
   * computed by the first pass and again whenever the model's rotary
   * frequencies differ from rope_freq [Dh/2] (rope_freq_set 0: not yet) */
  float *pos_cos, *pos_sin;
  double *rope_freq;
  bool rope_freq_set;
  /* backward scratch, [N, width] each */
  float *dx, *dxb, *dq, *dk, *dv, *datt, *dh1, *dh3, *dhg, *dt, *logits;
  int *head_rows, *head_targets; /* [preft_train_head_rows(N, V)]: one chunk's rows and targets */
  size_t n_floats;               /* floats in mem */
} preft_train_acts;

/* Rows the LM head and cross-entropy take at once (the pass runs them over
 * the target rows in chunks, so [N, V] logits are never held): as many as
 * 16 MiB of logits hold, at least 128, at most n. A small vocabulary gets
 * long chunks: the head's products on 512 rows instead of 4 × 128 made the
 * width-512 training pass 2% faster (docs/PERFORMANCE.md). */
int preft_train_head_rows(int n, int vocab);

/* Sizes every buffer once for batches of up to max_rows rows and sequences
 * of up to max_seq_len positions. ad may be NULL (no adapter). */
void preft_train_acts_init(preft_train_acts *a, const preft_train_model *tm, const preft_train_adapter *ad,
                           int max_rows, int max_seq_len, int threads, bool recompute);
void preft_train_acts_free(preft_train_acts *a);
/* Bytes of the activation allocation. */
size_t preft_train_acts_bytes(const preft_train_acts *a);

/* Forward over the batch, cross-entropy at rows with a target, then (when
 * dloss != 0) backward with d(loss)/d(row loss) = dloss, accumulating into
 * the adapter's gradients (ad non-NULL) or else the model's. Returns the sum
 * of the rows' cross-entropies (natural log) in *loss_sum; *finite is false
 * when a logit or loss was NaN or infinite. Fails on a token outside the
 * vocabulary or a batch too large for the activations. */
int preft_train_pass(const preft_train_model *tm, const preft_train_adapter *ad, preft_pool *pool,
                     const preft_train_batch *b, preft_train_acts *a, float dloss, double *loss_sum,
                     preft_error *err);

/* The same pass with an objective of the caller's per row (reinforcement
 * learning): fn receives the cross-entropies ce[m] (= -log p(target)) of
 * batch rows rows[m] (the rows with a target, in order, a chunk at a time)
 * and writes dl[m] = d(objective)/d(ce) of each; with backward, the
 * gradients of that objective accumulate as in preft_train_pass.
 * *loss_sum: the sum of the cross-entropies. */
typedef void (*preft_row_loss_fn)(void *ctx, const int *rows, const float *ce, float *dl, int m);
int preft_train_pass_rows(const preft_train_model *tm, const preft_train_adapter *ad, preft_pool *pool,
                          const preft_train_batch *b, preft_train_acts *a, preft_row_loss_fn fn, void *ctx,
                          bool backward, double *loss_sum, preft_error *err);

/* Forward only: logits [N, V] of every row (tests, and scoring). */
int preft_train_logits(const preft_train_model *tm, const preft_train_adapter *ad, preft_pool *pool,
                       const preft_train_batch *b, preft_train_acts *a, float *logits, preft_error *err);

#endif
