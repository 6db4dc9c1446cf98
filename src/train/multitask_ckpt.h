/* multitask_ckpt.h - the multitask loop's checkpoint (checkpoint.h's file):
 * parameters and AdamW m, v as every loop saves them, the logged losses as
 * history rows [loss, task], and in the extra blob what else a cut run
 * needs to continue exactly: the RNG, each task's shuffled order and its
 * position, the Bregman teacher's parameters, the evaluations so far. */
#ifndef PREFT_TRAIN_MULTITASK_CKPT_H
#define PREFT_TRAIN_MULTITASK_CKPT_H

#include "train/multitask_train.h"
#include "train/optim.h"

/* A task's shuffled order of its n examples; cursor: the next to take. */
typedef struct preft_mt_order {
  int *perm, n, cursor;
} preft_mt_order;

/* Everything the loop carries from step to step. */
typedef struct preft_mt_loop {
  preft_bt_model *m;
  preft_adamw *opt;
  preft_bt_model *teacher; /* NULL without Bregman */
  preft_rng *rng;
  preft_mt_order *ord; /* [PREFT_BT_N_TASKS] */
  preft_mt_history *h; /* step_loss, step_task [steps]; evals [max_evals] */
  int max_evals;
  uint64_t seed;
  int steps; /* of the whole run */
} preft_mt_loop;

/* Writes the state after `step` steps (atomically). */
int preft_mt_ckpt_save(const char *path, const preft_mt_loop *s, int64_t step, double elapsed,
                       preft_error *err);
/* Restores it into s (model, AdamW, teacher, RNG, orders, history); fails
 * naming the file when it was made for another run (parameters, seed,
 * steps, training set sizes) or is damaged. *step, *elapsed: where it was. */
int preft_mt_ckpt_load(const char *path, preft_mt_loop *s, int64_t *step, double *elapsed, preft_error *err);

#endif
