/* multitask_train.h - the multitask fine-tuning loop of the encoder
 * (`preft train multitask`) and its evaluation (`preft eval multitask`):
 * one task per step, chosen round-robin or in proportion to the training
 * set sizes; AdamW with linear warmup and cosine decay; SMART and the
 * Bregman proximal term through preft_bt_task_step; full fine-tuning,
 * LoRA, or (second stage) the early-exit heads alone. */
#ifndef PREFT_TRAIN_MULTITASK_TRAIN_H
#define PREFT_TRAIN_MULTITASK_TRAIN_H

#include "model/bert_exit.h"
#include "train/multitask_data.h"

typedef struct preft_mt_train_opts {
  int steps, batch;
  double lr, warmup_frac, weight_decay, clip, min_lr_frac;
  bool proportional; /* else round-robin */
  uint64_t seed;
  preft_bt_step_opts step; /* SMART, Bregman (teacher made here when mu > 0), exits */
  double bregman_beta;
  int eval_every;        /* steps; 0: at the end only */
  int ckpt_every;        /* steps; 0: only when cut (stop_after) */
  const char *ckpt_path; /* NULL: no checkpoints */
  bool resume;           /* continue from ckpt_path when it exists */
  int stop_after;        /* > 0: stop (checkpointed) after this many steps of this call, as if cut */
  bool quiet;
} preft_mt_train_opts;

typedef struct preft_mt_eval {
  double metric[PREFT_BT_N_TASKS]; /* sst acc, para acc, sts Pearson (NaN: no data) */
  double score;
  int n[PREFT_BT_N_TASKS];
  double seconds;
} preft_mt_eval;

/* What the loop logs: per step the loss and task, per evaluation its step
 * and metrics. */
typedef struct preft_mt_history {
  double *step_loss; /* [steps] */
  int *step_task;    /* [steps] */
  int n_steps;
  double *eval_step; /* [n_evals] */
  preft_mt_eval *evals;
  int n_evals;
  double seconds;
  int64_t resumed_from; /* the step a resumed run started at (0: fresh) */
} preft_mt_history;

void preft_mt_history_free(preft_mt_history *h);

/* Dev metrics of the main heads (or of the exit head at `layer`, -1: main)
 * over every set with examples (sets with n 0 are skipped: NaN). */
int preft_mt_evaluate(const preft_bt_model *m, preft_pool *pool, const preft_mt_set *dev, int batch,
                      int layer, preft_mt_eval *out, preft_error *err);

/* The same metrics through the inference path (bert_exit.h) under an exit
 * rule; mean_layers[3] (may be NULL) receives the mean layers each task's
 * examples ran; out->seconds times the forward passes and heads. */
int preft_mt_evaluate_exit(preft_bert_classifier *cl, preft_pool *pool, const preft_mt_set *dev, int batch,
                           const preft_bert_exit_rule *rule, preft_mt_eval *out, double *mean_layers,
                           preft_error *err);

/* Trains m on the training sets with examples; evaluates on dev every
 * eval_every steps and at the end. With ckpt_path, checkpoints every
 * ckpt_every steps and when cut (multitask_ckpt.h); with resume, continues
 * a cut run from there, giving the weights and losses of an uncut run bit
 * for bit (same threads). A cut run returns 0 with h->n_steps < steps. */
int preft_mt_train(preft_bt_model *m, preft_pool *pool, const preft_mt_set *train, const preft_mt_set *dev,
                   const preft_mt_train_opts *o, preft_mt_history *h, preft_error *err);

#endif
