/* bert_rows.h - internal: the BERT training pass's row-wise steps
 * (LayerNorm rows and dropout masks split over the pool; column sums),
 * bert_rows.c.
 *
 * Legend: n rows, D (or m) features per row. Every split gives the numbers
 * of the one-thread loops it replaced, bit for bit, whatever the thread
 * count: row steps are row-local; column sums (bias and LayerNorm
 * parameter gradients, embedding scatters) add the rows in order 0..n-1
 * on the calling thread (split by column ranges over the pool they made
 * the 2-thread BERT pass 4-5% slower in wall time); a dropout mask of n·m values
 * takes draw i·m + j of the generator's stream for element (i, j), reached
 * by preft_rng_skip, so the masks are those of one stream drawn in order,
 * and the generator ends n·m draws on. */
#ifndef PREFT_TRAIN_BERT_ROWS_H
#define PREFT_TRAIN_BERT_ROWS_H

#include <stddef.h>
#include <stdint.h>

#include "base/threadpool.h"
#include "train/rng.h"

/* out[D] = LN(x)·w + b; xhat[D] the normalized x, *rstd 1/σ. */
void preft_bt_ln_fwd_row(const float *x, const float *w, const float *b, int D, float eps, float *xhat,
                         float *rstd, float *out);
/* dx[D]: the LayerNorm backward of dy at (xhat, rstd) (parameter gradients: preft_bt_col_sums). */
void preft_bt_ln_bwd_row(const float *dy, const float *xhat, float rstd, const float *w, int D, float *dx);

/* mask[m] for one row whose first value is draw `first` after rng's state:
 * 0 with probability p, else 1/(1-p) (the generator itself is not moved). */
void preft_bt_mask_row(float *mask, int m, double p, const preft_rng *rng, uint64_t first);

/* Dropout masks over the pool: mask[n, m] (float, 0 or 1/(1-p)) or, with
 * mask NULL, keep[n, m] (1 = kept). rng moves n·m draws. */
void preft_bt_dropout_masks(preft_pool *pool, float *mask, uint8_t *keep, int n, int m, double p,
                            preft_rng *rng);

/* Over columns c < m, rows i = 0..n-1 in order: gw[c] += dy[i,c]·x[i,c]
 * (gw, x NULL: skipped), gb[c] += dy[i,c] (gb NULL: skipped). */
void preft_bt_col_sums(float *gw, float *gb, const float *dy, const float *x, int n, int m);

#endif
