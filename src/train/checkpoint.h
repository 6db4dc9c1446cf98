/* checkpoint.h - one file holding everything a run needs to resume
 * exactly: "PREFTCK1", u64 header length, a JSON header, then the
 * parameters, AdamW m and v ([n] floats each) and the log history
 * ([rows, hist_cols] doubles: PREFT_HIST_COLS for SFT and pretraining, the
 * RL loop's own columns for GRPO), then an optional opaque blob of the
 * loop's own state (extra_bytes in the header; the multitask loop's RNG,
 * samplers, teacher and evaluations), little-endian. Written atomically
 * (temp file, fsync, rename), so a crash leaves the previous checkpoint. */
#ifndef PREFT_TRAIN_CHECKPOINT_H
#define PREFT_TRAIN_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

/* The columns of a log history row (doubles). */
enum {
  PREFT_HIST_STEP,
  PREFT_HIST_EPOCH,
  PREFT_HIST_LR,
  PREFT_HIST_TRAIN_LOSS,
  PREFT_HIST_EVAL_LOSS, /* NaN: not evaluated at this step */
  PREFT_HIST_GRAD_NORM,
  PREFT_HIST_TOKENS,
  PREFT_HIST_TOKENS_PER_S,
  PREFT_HIST_ELAPSED_S,
  PREFT_HIST_COLS
};

typedef struct preft_ckpt_state {
  int64_t step, epoch, cursor, adam_t, tokens;
  double elapsed;
  uint64_t seed;
  uint64_t n_params;
  int64_t n_hist;
  int64_t n_train;   /* examples in the training set, to refuse resuming on other data */
  int64_t hist_cols; /* doubles per history row; 0 (and absent in a file): PREFT_HIST_COLS */
  /* save: extra_bytes bytes at extra (absent in a file: 0); load: a heap
   * copy the caller frees (NULL when 0) */
  const void *extra;
  uint64_t extra_bytes;
} preft_ckpt_state;

int preft_checkpoint_save(const char *path, const preft_ckpt_state *s, const float *params, const float *m,
                          const float *v, const double *hist, preft_error *err);
/* Fills s, params/m/v ([s->n_params] each, which must equal n) and a heap
 * *hist. Fails naming the file on any mismatch or truncation. */
int preft_checkpoint_load(const char *path, preft_ckpt_state *s, float *params, float *m, float *v, size_t n,
                          double **hist, preft_error *err);

#endif
