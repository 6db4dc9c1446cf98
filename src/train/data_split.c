/* data_split.c - moving examples out of a dataset for evaluation (see
 * data.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train/data.h"

static void recount(preft_dataset *ds) {
  ds->tokens = ds->targets = 0;
  for (int i = 0; i < ds->n; i++) {
    ds->tokens += ds->ex[i].n;
    for (int t = 1; t < ds->ex[i].n; t++) ds->targets += ds->ex[i].loss[t];
  }
}

/* Appends src's examples [from, src->n) to dst (moving their storage) and
 * drops them from src. */
static void move_tail(preft_dataset *src, preft_dataset *dst, int from) {
  for (int i = from; i < src->n; i++) {
    if (dst->n == dst->cap) {
      dst->cap = dst->cap ? dst->cap * 2 : 64;
      dst->ex = preft_xrealloc(dst->ex, sizeof *dst->ex * (size_t)dst->cap);
    }
    dst->ex[dst->n++] = src->ex[i];
  }
  src->n = from;
  recount(src);
  recount(dst);
}

void preft_dataset_split(preft_dataset *src, preft_dataset *dst, int count, uint64_t seed) {
  if (count <= 0) return;
  if (count > src->n) count = src->n;
  int *idx = preft_xmalloc(sizeof(int) * (size_t)src->n);
  preft_shuffle_indices(idx, src->n, seed, -1);
  preft_example *ex = preft_xmalloc(sizeof *ex * (size_t)src->n);
  for (int i = 0; i < src->n; i++) ex[i] = src->ex[idx[i]];
  memcpy(src->ex, ex, sizeof *ex * (size_t)src->n);
  free(ex);
  free(idx);
  move_tail(src, dst, src->n - count);
}

int preft_dataset_hold_out(preft_dataset *src, preft_dataset *dst, double frac, preft_hold_out_order order,
                           uint64_t seed, preft_error *err) {
  if (!(frac > 0)) return 0;
  long k = lround(frac * src->n);
  if (k < 1) k = 1;
  if (k >= src->n)
    return preft_fail(err, "holding out %ld of %d examples for evaluation leaves none for training", k,
                      src->n);
  if (order == PREFT_HOLD_OUT_RANDOM)
    preft_dataset_split(src, dst, (int)k, seed);
  else
    move_tail(src, dst, src->n - (int)k);
  return 0;
}
