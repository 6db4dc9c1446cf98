/* bert_train.h - FP32 training of the BERT encoder: the trainable model
 * (encoder, pooler, MLM head, multitask heads, early-exit heads, LoRA),
 * the forward pass that keeps its activations, the backward pass, the
 * heads' losses and the divergences of SMART (docs/ENCODER.md, "Training").
 *
 * Legend: B sequences, T padded length, N = B*T rows, D width, H heads, Dh
 * head width, F FFN width, V vocabulary, L layers, R LoRA rank, n examples.
 *
 * Forward (transformers' BertModel in train mode; dropout p on the
 * embedding output, after each sublayer's output projection, on the
 * attention probabilities and on the heads' inputs):
 *   x0 = drop(LN(word[id] + pos[t] + type[ty])) + delta      delta: SMART's perturbation
 *   per layer: a = LN(x + drop(attn(x)·Woᵀ + bo)); x = LN(a + drop(gelu(a·W1ᵀ + b1)·W2ᵀ + b2))
 * Each linear layer may carry LoRA: y += (alpha/R)·(x·Aᵀ)·Bᵀ.
 *
 * Parameter names are those of transformers' BertForMaskedLM with the
 * "bert." prefix (so preft_bert_load reads a saved model), plus
 *   cls.predictions.{transform.dense,transform.LayerNorm}.{weight,bias},
 *   cls.predictions.bias [V] (the decoder is tied to the word embeddings);
 *   heads.sst.{weight [5, D], bias}, heads.para.{weight [1, D or 4D], bias},
 *   heads.sts.{weight [1, D], bias} (cross-encoder only);
 *   exits.<l>.pooler.{weight [D, D], bias}, exits.<l>.<task>.{weight, bias}
 *   for l < L-1 (the last layer's exit is the main pooler and heads);
 *   lora.<l>.<module>.{A [R, in], B [out, R]} (merged into the weights when
 *   saved).
 */
#ifndef PREFT_TRAIN_BERT_TRAIN_H
#define PREFT_TRAIN_BERT_TRAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"
#include "base/threadpool.h"
#include "model/bert.h"
#include "train/rng.h"
#include "train/train_model.h"

typedef enum { PREFT_BT_SST, PREFT_BT_PARA, PREFT_BT_STS, PREFT_BT_N_TASKS } preft_bt_task;
typedef enum { PREFT_BT_CROSS, PREFT_BT_SIAMESE } preft_bt_arch;
typedef enum { PREFT_BT_POOL_CLS, PREFT_BT_POOL_MEAN } preft_bt_pooling;

extern const char *const preft_bt_task_names[PREFT_BT_N_TASKS]; /* "sst", "para", "sts" */
/* Outputs per example: 5 logits (sst), 1 logit (para), 1 score 0-5 (sts). */
int preft_bt_task_width(preft_bt_task t);

/* The linear layers of an encoder layer, in LoRA's naming. */
enum { BT_Q, BT_K, BT_V, BT_O, BT_FFN_IN, BT_FFN_OUT, BT_N_LIN };
extern const char *const preft_bt_lin_names[BT_N_LIN]; /* query key value attn_out ffn_in ffn_out */

typedef struct preft_bt_lin {
  float *w, *b;   /* [out, in], [out] */
  float *gw, *gb; /* gradients (NULL when frozen) */
  float *la, *lb; /* LoRA [R, in], [out, R]; NULL without */
  float *gla, *glb;
  int in, out;
} preft_bt_lin;

typedef struct preft_bt_layer {
  preft_bt_lin lin[BT_N_LIN];
  float *ln1_w, *ln1_b, *ln2_w, *ln2_b; /* attention.output.LayerNorm, output.LayerNorm */
  float *g_ln1_w, *g_ln1_b, *g_ln2_w, *g_ln2_b;
} preft_bt_layer;

typedef struct preft_bt_head {
  float *w, *b, *gw, *gb; /* [out, in], [out]; NULL when absent */
  int in, out;
} preft_bt_head;

typedef struct preft_bt_opts {
  bool mlm;                 /* MLM head */
  bool tasks;               /* the three task heads */
  preft_bt_arch arch;       /* pair tasks: cross-encoder or bi-encoder */
  preft_bt_pooling pooling; /* bi-encoder sentence embedding: pooler(CLS) or mean */
  bool exits;               /* a pooler and task heads after every layer but the last */
  int lora_rank;            /* 0: full fine-tuning */
  double lora_alpha;
  double dropout; /* hidden and attention-probability dropout */
} preft_bt_opts;

typedef struct preft_bt_model {
  preft_bert_config cfg;
  preft_bt_opts o;
  float lora_scale;
  float *word, *pos, *type, *ln_e_w, *ln_e_b;
  float *g_word, *g_pos, *g_type, *g_ln_e_w, *g_ln_e_b;
  preft_bt_layer *layers;  /* [L] */
  preft_bt_head pooler;    /* [D, D] */
  preft_bt_head mlm_dense; /* [D, D] */
  float *mlm_ln_w, *mlm_ln_b, *mlm_bias, *g_mlm_ln_w, *g_mlm_ln_b, *g_mlm_bias;
  preft_bt_head heads[PREFT_BT_N_TASKS];
  preft_bt_head *exit_pooler; /* [L-1] */
  preft_bt_head *exit_heads;  /* [L-1][tasks] */
  preft_param_set ps;
  bool frozen_base; /* encoder matrices get no gradient (LoRA, second-stage exits) */
} preft_bt_model;

/* A fresh model: N(0, 0.02) matrices, unit LayerNorms, zero biases, LoRA
 * B zero. */
void preft_bt_model_init(preft_bt_model *m, const preft_bert_config *cfg, const preft_bt_opts *o,
                         uint64_t seed);
/* From a model directory (any dtype preft_bert_load reads): the encoder,
 * and every head of o that the checkpoint holds (with the shape o asks
 * for); the others fresh from seed. */
int preft_bt_model_load(preft_bt_model *m, const char *dir, const preft_bt_opts *o, uint64_t seed,
                        preft_error *err);
/* The same from a source (bert.h): with an adapter, its LoRA merged into
 * the encoder's matrices and the heads of its preft_heads.safetensors
 * (preft_bt_model_load resolves DIR as preft_bert_source_resolve does). */
int preft_bt_model_load_source(preft_bt_model *m, const preft_bert_source *s, const preft_bt_opts *o,
                               uint64_t seed, preft_error *err);
void preft_bt_model_free(preft_bt_model *m);
/* The same architecture with the same parameter values, without gradients
 * (SMART's momentum teacher). */
void preft_bt_model_clone(preft_bt_model *dst, const preft_bt_model *src);
/* teacher = beta·teacher + (1-beta)·m, over every parameter */
void preft_bt_model_ema(preft_bt_model *teacher, const preft_bt_model *m, double beta);
/* config.json (architectures BertForMaskedLM), model.safetensors (F32, LoRA
 * merged into the weights), preft_heads.json (opts); each atomically. */
int preft_bt_model_save(const preft_bt_model *m, const char *dir, preft_error *err);
/* A LoRA run as a PEFT directory (bert.h): adapter_config.json (base:
 * base_model_name_or_path), adapter_model.safetensors (LoRA A, B),
 * preft_heads.safetensors (heads.*, exits.*: what was trained besides
 * LoRA; the pooler is the base's, frozen) and preft_heads.json; each
 * atomically. */
int preft_bt_model_save_lora(const preft_bt_model *m, const char *dir, const char *base, preft_error *err);
/* Reads DIR/preft_heads.json into o (fails naming the file when absent). */
int preft_bt_heads_config_load(preft_bt_opts *o, const char *dir, preft_error *err);
/* The tensors AdamW updates: every tensor with a gradient, or with
 * only_exits just the early-exit heads. A view: shares m's memory. */
void preft_bt_trainable_view(const preft_bt_model *m, bool only_exits, preft_param_set *view);

/* ---- activations ------------------------------------------------------------------ */

typedef struct preft_bt_lacts {
  float *x_in;                /* [N, D] layer input (points at the previous output) */
  float *q, *k, *v, *ctx;     /* [N, D] */
  float *p;                   /* [B, H, T, T] attention probabilities */
  uint8_t *pkeep;             /* [B, H, T, T] attention dropout keep mask (NULL: none) */
  float *m1, *m2;             /* [N, D] dropout scales 0 or 1/(1-p) (NULL: none) */
  float *xhat1, *rstd1, *a;   /* LN1: [N, D], [N], output [N, D] */
  float *fpre, *fact;         /* [N, F] before and after GELU */
  float *xhat2, *rstd2, *out; /* LN2 [N, D], [N], output [N, D] */
  float *lora_t[BT_N_LIN];    /* [N, R] scale·(x·Aᵀ) of each linear (LoRA) */
} preft_bt_lacts;

typedef struct preft_bt_acts {
  int B, T, N, cap_rows, cap_att;
  int *ids, *types, *lengths;               /* copies of the batch */
  float *emb_xhat, *emb_rstd, *emb_m0, *x0; /* [N, D], [N], [N, D], [N, D] */
  preft_bt_lacts *l;                        /* [L] */
  float *scratch;                           /* backward scratch */
  bool dropout;
} preft_bt_acts;

void preft_bt_acts_free(preft_bt_acts *a);

/* The forward pass over a right-padded batch; keeps what the backward pass
 * needs. delta [N, D] (or NULL) is added to the embedding output. rng NULL:
 * no dropout (eval); else dropout m->o.dropout. Hidden states of layer l
 * are a->l[l].out. Fails (before computing) on ids, types or lengths out of
 * range. */
int preft_bt_forward(const preft_bt_model *m, preft_pool *pool, const preft_bert_batch *b, const float *delta,
                     preft_bt_acts *a, preft_rng *rng, preft_error *err);

/* The backward pass of the last forward in a: d_out[l] ([N, D] or NULL)
 * is the loss gradient at layer l's output (overwritten). Accumulates
 * parameter gradients when param_grads (the encoder's only unless frozen);
 * writes the gradient at the embedding output (= at delta) into d_emb
 * ([N, D]) when not NULL. */
void preft_bt_backward(preft_bt_model *m, preft_pool *pool, preft_bt_acts *a, float **d_out, float *d_emb,
                       bool param_grads);

/* ---- heads ------------------------------------------------------------------------ */

/* What a head's forward keeps for its backward. */
typedef struct preft_bt_head_cache {
  int n, layer;
  preft_bt_task task;
  bool siamese;
  float *pooled; /* [S, D] tanh pooler outputs or mean-pooled vectors, S sequences used */
  float *feat;   /* [n, in] the classifier input after dropout */
  float *fmask;  /* [n, in] dropout scales (NULL: none) */
  double *cosv;  /* [n, 3] siamese STS: u·v, |u|, |v| */
} preft_bt_head_cache;

void preft_bt_head_cache_free(preft_bt_head_cache *c);

/* Outputs [n, width] of task's head at layer `layer` (L-1: the main head)
 * on the examples of the batch in a: example i is sequence i, or for the
 * siamese pair tasks sequences i and n+i. rng NULL: no dropout. */
void preft_bt_head_forward(const preft_bt_model *m, const preft_bt_acts *a, preft_bt_task task, int layer,
                           int n, float *out, preft_bt_head_cache *c, preft_rng *rng);
/* Back through the head: accumulates its parameter gradients (when
 * param_grads) and adds the gradient at the encoder output of layer c->layer
 * into d_out ([N, D]). */
void preft_bt_head_backward(preft_bt_model *m, const preft_bt_acts *a, const preft_bt_head_cache *c,
                            const float *d_outputs, float *d_out, bool param_grads);

/* Mean task loss over n examples and its gradient at the outputs
 * (d [n, width], may be NULL): cross-entropy (sst, labels 0-4), binary
 * cross-entropy with logits (para, labels 0/1), squared error (sts, 0-5). */
double preft_bt_task_loss(preft_bt_task t, const float *out, const float *labels, int n, float *d);
/* Mean divergence between outputs p and q ([n, width]): symmetric KL of the
 * softmax (sst) or Bernoulli (para) distributions, squared error (sts).
 * Gradients (may be NULL) at p and at q, scaled by `weight`, are added. */
double preft_bt_divergence(preft_bt_task t, const float *p, const float *q, int n, double weight, float *dp,
                           float *dq);

/* MLM head over M rows of the last layer (rows[M] into the batch),
 * targets[M]: mean cross-entropy; when d_out is not NULL, its gradient is
 * added there ([N, D]) and to the head's parameters (and the tied word
 * embeddings). */
double preft_bt_mlm_loss(preft_bt_model *m, preft_pool *pool, const preft_bt_acts *a, const int *rows,
                         const int *targets, int n_rows, float *d_out);

/* ---- one training step of a task (bert_task_step.c), SMART (bert_smart.c) ---------- */

typedef enum {
  PREFT_BT_EXITS_OFF,   /* the main head only */
  PREFT_BT_EXITS_JOINT, /* sum over layers l of (l+1)·loss_l / sum (l+1) (PABEE's weighting) */
  PREFT_BT_EXITS_ONLY,  /* second stage: the exit heads of layers < L-1 on a frozen encoder */
} preft_bt_exits_mode;

typedef struct preft_bt_step_opts {
  double lambda_s;               /* SMART smoothness weight (0: off) */
  double sigma;                  /* initial noise N(0, sigma²) */
  double eta;                    /* ascent step */
  double eps;                    /* projection: |delta| <= eps element-wise */
  int steps;                     /* K ascent steps */
  const float *fixed_delta;      /* tests: this delta, without noise or ascent */
  double mu;                     /* Bregman proximal weight (0: off) */
  const preft_bt_model *teacher; /* the momentum teacher (mu > 0) */
  preft_bt_exits_mode exits;
} preft_bt_step_opts;

/* Buffers of a step, grown on demand. */
typedef struct preft_bt_step_ws {
  preft_bt_acts clean, adv, teach;
  preft_bt_head_cache hc, ha;
  float *buf;
  size_t cap;
} preft_bt_step_ws;
void preft_bt_step_ws_free(preft_bt_step_ws *ws);

/* Forward and backward of one batch of task t (n examples, labels [n]):
 * the task loss (with exits as asked) plus lambda_s·D(f(x+delta), f(x))
 * plus mu·D(f(x), teacher(x)); accumulates the gradients; returns the
 * total loss (NaN with err filled on a bad batch). rng NULL: no dropout
 * and (without fixed_delta) no SMART noise. */
double preft_bt_task_step(preft_bt_model *m, preft_pool *pool, const preft_bert_batch *b, preft_bt_task t,
                          int n, const float *labels, const preft_bt_step_opts *o, preft_bt_step_ws *ws,
                          preft_rng *rng, preft_error *err);

/* SMART's inner ascent gradient: g [N, D] = d/d delta of D(f(x+delta), clean)
 * with clean ([n, width]) held fixed; no dropout. */
int preft_bt_smart_delta_grad(preft_bt_model *m, preft_pool *pool, const preft_bert_batch *b, preft_bt_task t,
                              int n, const float *clean, const float *delta, float *g, preft_bt_step_ws *ws,
                              preft_error *err);
/* delta = clamp(delta + eta·g / (max_row |g| + 1e-6), -eps, eps), a row
 * being one token's D values. */
void preft_bt_smart_project(float *delta, const float *g, int rows, int dim, double eta, double eps);

/* Task outputs [n, width] of the main head (or the exit head at `layer`) in
 * eval mode. */
int preft_bt_predict(const preft_bt_model *m, preft_pool *pool, const preft_bert_batch *b, preft_bt_task t,
                     int n, int layer, float *out, preft_bt_step_ws *ws, preft_error *err);

#endif
