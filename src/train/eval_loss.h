/* eval_loss.h - the trainer's loss of a dataset (data.h: the cross-entropy
 * of every counted prediction, natural log) under a model and an optional
 * adapter, computed with the serving forward pass (preft_model_forward with
 * the engine's per-row adapt flags), so any adapter, trained here or
 * elsewhere, is scored the way it is served. */
#ifndef PREFT_TRAIN_EVAL_LOSS_H
#define PREFT_TRAIN_EVAL_LOSS_H

#include <stdint.h>

#include "base/error.h"
#include "base/threadpool.h"
#include "model/adapter.h"
#include "model/llama.h"
#include "train/data.h"

/* Sets *nll_sum to the summed cross-entropy of the counted predictions of
 * every example (row t predicts ids[t+1] where loss[t+1]; the adapter, when
 * not NULL, runs in `mode` with the example's prompt_len) and *count to
 * their number; examples shorter than 2 tokens add nothing. One forward
 * pass per example, logits only for its counted rows. Fails on a token
 * outside the vocabulary or an example longer than the model's context. */
int preft_eval_loss(const preft_model *m, preft_pool *pool, const preft_adapter *adapter,
                    preft_adapter_mode mode, const preft_dataset *ds, double *nll_sum, int64_t *count,
                    preft_error *err);

#endif
