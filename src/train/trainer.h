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
#include "preft/train.h"
#include "train/data.h"
#include "train/train_dist.h"
#include "train/train_model.h"

/* preft_train_run over the ranks of comm (NULL or size 1: one process, as
 * preft_train_run): every rank calls it with the same data and options;
 * each runs its share of every micro-batch, the gradients are summed over
 * the ranks once per step (train_dist.h), and only rank 0 writes OUT
 * (outputs, checkpoint.bin, train_log.csv, loss.svg) and draws progress.
 * Every rank reads --resume's checkpoint: OUT must be visible to all.
 * res (losses, tokens: the whole job's) is the same on every rank. */
int preft_train_run_dist(preft_train_model *tm, preft_train_adapter *ad, const preft_dataset *train,
                         const preft_dataset *eval, const preft_train_opts *o, const preft_train_comm *comm,
                         preft_train_result *res, preft_error *err);

/* preft_train_opts, preft_train_opts_default, preft_train_result,
 * preft_train_run and preft_train_eval_loss are public: preft/train.h. */

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
