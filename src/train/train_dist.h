/* train_dist.h - data-parallel training over ranks (docs/TRAINING.md,
 * "Data-parallel training with MPI").
 *
 * The library never links MPI: whoever starts the ranks (the CLI under
 * mpirun, src/cli/cli_mpi.c) hands the trainer a preft_train_comm whose
 * functions sum buffers over the ranks. Every rank holds the whole training
 * set and draws the same permutation from (seed, epoch), so every rank knows
 * the examples of every step; the global batch of B examples is cut into
 * contiguous shares (preft_dist_share: ranks below B mod N take one more),
 * each rank runs its share through the pass with d(loss) = 1 / (the step's
 * counted predictions over the whole batch), and one in-place sum of the
 * flat gradient buffer gives every rank the single-process gradient (up to
 * the order of float additions). Clipping and AdamW then run on every rank
 * alike, so the replicas stay equal without sending parameters.
 */
#ifndef PREFT_TRAIN_TRAIN_DIST_H
#define PREFT_TRAIN_TRAIN_DIST_H

#include <stddef.h>

#include "base/error.h"

typedef struct preft_train_comm {
  int rank, size; /* this rank, ranks in all (size >= 1) */
  void *ctx;      /* the implementation's */
  /* Sums buf[n] over every rank, in place; every rank receives the same
   * sums. 0, or -1 with err. */
  int (*sum_f32)(void *ctx, float *buf, size_t n, preft_error *err);
  int (*sum_f64)(void *ctx, double *buf, size_t n, preft_error *err);
} preft_train_comm;

/* Rank `rank`'s share [*lo, *hi) of n items over `size` ranks: contiguous,
 * in rank order; the first n mod size ranks take one item more. */
void preft_dist_share(int n, int rank, int size, int *lo, int *hi);

/* The most items any rank's share holds: ceil(n / size). */
static inline int preft_dist_share_max(int n, int size) { return (n + size - 1) / size; }

/* True for the rank that writes outputs (rank 0; always without comm). */
static inline int preft_dist_lead(const preft_train_comm *c) { return !c || c->rank == 0; }

#endif
