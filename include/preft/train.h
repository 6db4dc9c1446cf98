/* preft/train.h - training: supervised fine-tuning of an adapter on a frozen
 * base (`preft train sft`) and pretraining of every weight of a model
 * (`preft train pretrain`), their data sets, options and results.
 *
 *   const preft_model_config *cfg = preft_model_get_config(m);
 *   preft_dataset train = {0};
 *   preft_data_opts d = {.tok = tok, .eos_id = eos, .max_tokens = 512, .vocab = cfg->vocab};
 *   if (preft_dataset_load_jsonl(&train, "train.jsonl", &d, &err) != 0) ...
 *   preft_train_model *tm = preft_train_model_create(m, false);   // frozen base
 *   preft_train_adapter_opts ao = {.kind = PREFT_ADAPTER_LORA, .rank = 8, .alpha = 16,
 *                                  .modules = {[PREFT_MOD_Q] = true, [PREFT_MOD_V] = true}};
 *   preft_train_adapter *ad;
 *   if (preft_train_adapter_create(&ad, cfg, &ao, &err) != 0) ...
 *   preft_train_opts o;
 *   preft_train_opts_default(&o);
 *   o.out_dir = "my-adapter";
 *   preft_train_result r;
 *   if (preft_train_run(tm, ad, &train, NULL, &o, &r, &err) != 0) ...
 *   preft_train_adapter_destroy(ad);
 *   preft_train_model_destroy(tm);
 *   preft_dataset_free(&train);
 *
 * preft_train_run: one optimizer step takes grad_accum micro-batches of
 * `batch` examples each, in the order of a permutation of the training set
 * drawn from (seed, epoch); the loss is the mean cross-entropy over every
 * counted prediction of the step. Then: clip the global gradient norm, AdamW
 * at the scheduled rate (linear warmup, cosine decay to min_lr_frac), and
 * for LoReFT re-orthonormalise R. Same seed, data and options: same losses,
 * bit for bit, for a given thread count. It writes into out_dir the model
 * (HF files) or the adapter (PEFT / ReFT files) at every checkpoint and at
 * the end, checkpoint.bin (resume continues exactly where it stopped),
 * train_log.csv and loss.svg. A NaN or infinite loss or gradient stops the
 * run with an error naming the step; the last checkpoint stays good.
 * docs/TRAINING.md has the details.
 *
 * The trainable state is opaque: preft_train_model is an FP32 copy of a
 * loaded model's weights (with gradients when the model itself is trained),
 * preft_train_adapter a trainable LoRA or ReFT adapter. examples/train_lora.c
 * is a complete program. (Pretraining a model from random weights is
 * `preft train pretrain`; its entry, preft_train_model_init, is internal.)
 *
 * Ownership: data sets are caller-owned structs freed with
 * preft_dataset_free; the trainable model and adapter are freed with their
 * *_destroy; the trainable model copies what it needs from the loaded model
 * (which may be freed after create); every other pointer passed to a call is
 * borrowed for it.
 */
#ifndef PREFT_PUBLIC_TRAIN_H
#define PREFT_PUBLIC_TRAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "preft/adapter.h"
#include "preft/base.h"
#include "preft/model.h"
#include "preft/tokenizer.h"

/* ---- trainable model and adapter ----------------------------------------------- */

typedef struct preft_train_model preft_train_model;
typedef struct preft_train_adapter preft_train_adapter;

/* A trainable FP32 copy of a loaded model (any stored dtype). with_grads:
 * the model's own weights are trained; false: a frozen base for adapter
 * training, whose block-quantized matrices (a GGUF's, or --quantize) are
 * used in place, not copied (QLoRA): m must then outlive the result.
 * Cannot fail (aborts only when out of memory). */
PREFT_API preft_train_model *preft_train_model_create(const preft_model *m, bool with_grads);
PREFT_API void preft_train_model_destroy(preft_train_model *tm);

typedef struct preft_train_adapter_opts {
  preft_adapter_kind kind;
  preft_adapter_mode mode;
  int rank;
  double alpha;                  /* LoRA: scale = alpha / rank */
  bool modules[PREFT_N_MODULES]; /* LoRA targets */
  bool *layers;                  /* [L] adapted layers; NULL: every layer */
  bool all_layers;               /* layers was NULL (LoRA: no layers_to_transform) */
  const char *positions;         /* ReFT "fA+lB" or "all" */
  bool share_weights;            /* ReFT fA+lB: one slot for first and last */
  uint64_t seed;
} preft_train_adapter_opts;

/* A fresh adapter for a base model of config cfg: LoRA with PEFT's init (A
 * Kaiming-uniform, B zero), ReFT with pyreft's. Fails on a rank outside
 * [1, D] or ReFT positions that do not parse. */
PREFT_API int preft_train_adapter_create(preft_train_adapter **out, const preft_model_config *cfg,
                                         const preft_train_adapter_opts *o, preft_error *err);
PREFT_API void preft_train_adapter_destroy(preft_train_adapter *ad);

/* ---- data sets ----------------------------------------------------------------
 * An example is a token sequence ids[n] with a loss mask: row t (t < n-1)
 * reads ids[t] and predicts ids[t+1]; the prediction counts in the loss iff
 * loss[t+1]. The first prompt_len tokens are the prompt (the rows a
 * prefill-only adapter adapts). JSONL lines are {"prompt", "completion"},
 * {"messages": [...]} (chat template) or {"prompt_ids", "completion_ids"};
 * text files are packed into examples of max_tokens + 1 tokens
 * (docs/TRAINING.md). */

typedef struct preft_example {
  int *ids;
  uint8_t *loss; /* [n] 1: predicting this token counts */
  int n, prompt_len;
} preft_example;

typedef struct preft_dataset {
  preft_example *ex;
  int n, cap;
  int64_t tokens;  /* sum of n */
  int64_t targets; /* predictions that count */
  int bad_lines, truncated;
} preft_dataset;

typedef enum { PREFT_BAD_LINE_STOP = 0, PREFT_BAD_LINE_SKIP = 1 } preft_bad_line_policy;

typedef struct preft_data_opts {
  const preft_tokenizer *tok; /* NULL: only *_ids lines are accepted */
  int eos_id;                 /* appended to text completions and documents; -1 none */
  int max_tokens;             /* T */
  int vocab;                  /* ids must be < vocab */
  preft_bad_line_policy on_bad_line;
} preft_data_opts;

/* Reads a JSONL file. A bad line fails with "FILE:LINE: reason" under STOP,
 * or is reported on stderr and skipped under SKIP. */
PREFT_API int preft_dataset_load_jsonl(preft_dataset *ds, const char *path, const preft_data_opts *o,
                                       preft_error *err);
/* Appends packed examples of T+1 tokens from text files. */
PREFT_API int preft_dataset_load_text(preft_dataset *ds, const char *const *paths, int n_paths,
                                      const preft_data_opts *o, preft_error *err);
/* Appends an example (copies ids and loss), truncating to max_tokens as
 * docs/TRAINING.md says. */
PREFT_API void preft_dataset_add(preft_dataset *ds, const int *ids, const uint8_t *loss, int n,
                                 int prompt_len, int max_tokens);
/* Moves the last `count` examples of src (after shuffling it by seed) into dst. */
PREFT_API void preft_dataset_split(preft_dataset *src, preft_dataset *dst, int count, uint64_t seed);
/* How examples are held out for evaluation: a seeded random choice (SFT
 * examples are independent), or the last ones in order (packed text: a
 * window continues the one before it, so the held-out windows are a
 * contiguous stretch of text the training windows do not overlap). */
typedef enum { PREFT_HOLD_OUT_RANDOM = 0, PREFT_HOLD_OUT_TAIL = 1 } preft_hold_out_order;
/* Moves round(frac x n) examples of src (at least one; none when frac <= 0)
 * into dst (RANDOM: as preft_dataset_split, which also leaves src shuffled;
 * TAIL: src's last ones, in order). Fails, changing nothing, when that would
 * leave src without an example. */
PREFT_API int preft_dataset_hold_out(preft_dataset *src, preft_dataset *dst, double frac,
                                     preft_hold_out_order order, uint64_t seed, preft_error *err);
PREFT_API void preft_dataset_free(preft_dataset *ds);

/* ---- the training loop -------------------------------------------------------- */

typedef struct preft_train_opts {
  int64_t steps; /* > 0: exactly this many optimizer steps */
  int epochs;    /* otherwise: epochs over the training set */
  int batch, grad_accum;
  int max_tokens; /* longest example (rows sized for batch · max_tokens) */
  double lr, min_lr_frac, weight_decay, clip, beta1, beta2, eps;
  int64_t warmup;
  uint64_t seed;
  int64_t eval_every, save_every; /* 0: only at the end */
  int threads;
  bool recompute, resume, quiet;
  /* Products with FP32 matrices during the training steps: EXACT (FP32,
   * the default) or BF16 (operands rounded to BF16, FP32 sums; vdpbf16ps on
   * AVX512_BF16 CPUs, emulated elsewhere). Master weights, gradients and
   * AdamW state stay FP32; evaluation losses always use FP32 products. */
  preft_matmul_precision matmul;
  int64_t stop_after; /* tests: stop after this step, as if interrupted (0: never) */
  const char *out_dir;
  const char *base_name; /* recorded in adapter configs */
} preft_train_opts;

/* Zeroes o, then: 1 epoch, batch 4, grad_accum 1, max_tokens 1024, lr 1e-3,
 * min_lr_frac 0.1, no weight decay, clip 1, AdamW betas 0.9 / 0.999, eps 1e-8. */
PREFT_API void preft_train_opts_default(preft_train_opts *o);

typedef struct preft_train_result {
  double train_loss; /* last step's loss */
  double eval_loss;  /* final evaluation; NaN without an eval set */
  double tokens_per_s;
  int64_t steps, tokens;
  double seconds;
  size_t peak_act_bytes;
} preft_train_result;

/* Trains ad (non-NULL: the base tm is frozen) or tm itself on train,
 * evaluating on eval (may be NULL or empty). */
PREFT_API int preft_train_run(preft_train_model *tm, preft_train_adapter *ad, const preft_dataset *train,
                              const preft_dataset *eval, const preft_train_opts *o, preft_train_result *res,
                              preft_error *err);

/* Mean cross-entropy per counted prediction of ds (natural log), through the
 * training forward. *count receives the number of predictions. */
PREFT_API int preft_train_eval_loss(const preft_train_model *tm, const preft_train_adapter *ad,
                                    preft_pool *pool, const preft_dataset *ds, int batch, int max_tokens,
                                    double *loss, int64_t *count, preft_error *err);

#endif
