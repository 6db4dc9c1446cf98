/* trainer.h - the training loop shared by `preft train sft` (an adapter on a
 * frozen base) and `preft train pretrain` (every weight of a model).
 *
 * One optimizer step takes grad_accum micro-batches of `batch` examples
 * each, in the order of a permutation of the training set drawn from
 * (seed, epoch); the loss is the mean cross-entropy over every counted
 * prediction of the step (so accumulation equals one large batch). Then:
 * clip the global gradient norm, AdamW at the scheduled rate, and for
 * LoReFT re-orthonormalise R. Same seed, same data, same options: same
 * losses, bit for bit, for a given thread count.
 *
 * Output directory OUT:
 *   the model (HF directory files) or adapter (PEFT / ReFT files), written
 *   at every checkpoint and at the end;
 *   checkpoint.bin   one file, written atomically: a JSON header (step,
 *                    epoch, position in the epoch, seed, optimizer step,
 *                    token count, elapsed time, parameter count) followed by
 *                    parameters, AdamW m and v, and the log history; resume
 *                    continues exactly where it stopped;
 *   train_log.csv    step,epoch,lr,train_loss,eval_loss,grad_norm,tokens,tokens_per_s,elapsed_s
 *   loss.svg         train (and eval) loss against step.
 * A loss or gradient that is NaN or infinite stops the run with an error
 * naming the step; nothing is written for that step, so the last
 * checkpoint stays the last good state.
 */
#ifndef PREFT_TRAIN_TRAINER_H
#define PREFT_TRAIN_TRAINER_H

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"
#include "train/data.h"
#include "train/train_model.h"

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
  int64_t stop_after; /* tests: stop after this step, as if interrupted (0: never) */
  const char *out_dir;
  const char *base_name; /* recorded in adapter configs */
} preft_train_opts;

void preft_train_opts_default(preft_train_opts *o);

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
int preft_train_run(preft_train_model *tm, preft_train_adapter *ad, const preft_dataset *train,
                    const preft_dataset *eval, const preft_train_opts *o, preft_train_result *res,
                    preft_error *err);

/* Mean cross-entropy per counted prediction of ds (natural log), through the
 * training forward. *count receives the number of predictions. */
int preft_train_eval_loss(const preft_train_model *tm, const preft_train_adapter *ad, preft_pool *pool,
                          const preft_dataset *ds, int batch, int max_tokens, double *loss, int64_t *count,
                          preft_error *err);

/* ---- progress bar (progress.c) ---- */
typedef struct preft_progress {
  int64_t total;
  double t0, last;
  bool tty, quiet;
} preft_progress;
void preft_progress_init(preft_progress *p, int64_t total, bool quiet);
/* step done (1-based), its loss and tokens/s; redraws at most 10 times a second */
void preft_progress_update(preft_progress *p, int64_t step, double loss, double tokens_per_s, bool force);
void preft_progress_finish(preft_progress *p);

#endif
