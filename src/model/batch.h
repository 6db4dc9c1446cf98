/* batch.h - building a forward pass's batch (preft_batch, llama.h) row by
 * row: the one place that fills the token, position, sequence, adapter and
 * logit-row arrays. The builder owns arrays that grow on demand; clear it
 * and reuse it for the next step.
 *
 * Legend: N rows appended since the last clear.
 */
#ifndef PREFT_MODEL_BATCH_H
#define PREFT_MODEL_BATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "model/adapter.h"
#include "model/llama.h"

typedef struct preft_batch_buf {
  int *token, *pos, *seq;        /* [N] */
  const preft_adapter **adapter; /* [N] */
  uint8_t *adapt;                /* [N] preft_adapt_flag */
  int *logit_rows;               /* [n_logits] rows whose logits are wanted, in order */
  int n, n_logits, cap;
  bool any_adapter; /* some row runs an adapter */
} preft_batch_buf;

/* An empty builder (equivalently, zero-initialise it). */
void preft_batch_buf_init(preft_batch_buf *bb);
void preft_batch_buf_free(preft_batch_buf *bb);
/* Drops every row, keeping the storage. */
void preft_batch_buf_clear(preft_batch_buf *bb);
/* Grows the storage to hold `rows` rows without reallocating on add. */
void preft_batch_buf_reserve(preft_batch_buf *bb, int rows);
/* Appends a row and returns its index. adapter NULL runs the base model
 * (flag ignored); want_logits appends the row to the logit rows. */
int preft_batch_buf_add(preft_batch_buf *bb, int token, int pos, int seq, const preft_adapter *adapter,
                        preft_adapt_flag flag, bool want_logits);
/* The batch of the rows added so far, for preft_model_forward: adapter
 * arrays only when some row runs an adapter. Valid until the next add,
 * reserve or free. */
preft_batch preft_batch_buf_view(const preft_batch_buf *bb);

#endif
