/* batch.c - the batch builder (see batch.h). */
#include "model/batch.h"

#include <stdlib.h>
#include <string.h>

void preft_batch_buf_init(preft_batch_buf *bb) { memset(bb, 0, sizeof *bb); }

void preft_batch_buf_free(preft_batch_buf *bb) {
  free(bb->token);
  free(bb->pos);
  free(bb->seq);
  free(bb->adapter);
  free(bb->adapt);
  free(bb->logit_rows);
  preft_batch_buf_init(bb);
}

void preft_batch_buf_clear(preft_batch_buf *bb) {
  bb->n = bb->n_logits = 0;
  bb->any_adapter = false;
}

void preft_batch_buf_reserve(preft_batch_buf *bb, int rows) {
  if (rows <= bb->cap) return;
  size_t n = (size_t)rows;
  bb->token = preft_xrealloc(bb->token, sizeof(int) * n);
  bb->pos = preft_xrealloc(bb->pos, sizeof(int) * n);
  bb->seq = preft_xrealloc(bb->seq, sizeof(int) * n);
  bb->adapter = preft_xrealloc(bb->adapter, sizeof(void *) * n);
  bb->adapt = preft_xrealloc(bb->adapt, n);
  bb->logit_rows = preft_xrealloc(bb->logit_rows, sizeof(int) * n);
  bb->cap = rows;
}

int preft_batch_buf_add(preft_batch_buf *bb, int token, int pos, int seq, const preft_adapter *adapter,
                        preft_adapt_flag flag, bool want_logits) {
  if (bb->n == bb->cap) preft_batch_buf_reserve(bb, bb->cap ? 2 * bb->cap : 64);
  int r = bb->n++;
  bb->token[r] = token;
  bb->pos[r] = pos;
  bb->seq[r] = seq;
  bb->adapter[r] = adapter;
  bb->adapt[r] = (uint8_t)(adapter ? flag : PREFT_ADAPT_OFF);
  bb->any_adapter |= adapter != NULL;
  if (want_logits) bb->logit_rows[bb->n_logits++] = r;
  return r;
}

preft_batch preft_batch_buf_view(const preft_batch_buf *bb) {
  return (preft_batch){.n = bb->n,
                       .token = bb->token,
                       .pos = bb->pos,
                       .seq = bb->seq,
                       .logit_rows = bb->logit_rows,
                       .n_logits = bb->n_logits,
                       .adapter = bb->any_adapter ? bb->adapter : NULL,
                       .adapt = bb->any_adapter ? bb->adapt : NULL};
}
