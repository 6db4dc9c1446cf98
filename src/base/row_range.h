/* row_range.h - one task's rows, taken from both ends: its owner from the
 * front, threads done with their own tasks from the back.
 *
 * Decode's matrix products give each thread one task (one long stream of
 * weight rows: more, shorter tasks measured slower), but two threads'
 * streams from memory do not run at one speed: on a shared VM one of them
 * often ends 20-30% of a call's time after the other. With each task's
 * rows in a preft_row_range, the owner takes its rows in a few long
 * pieces (most of the task first, then the reserve at its end), and a
 * thread that has finished takes pieces of the reserve from the back, so
 * both finish near the same time. Every cut falls on a multiple of
 * `align` rows from 0 (a kernel's row group) or on the range's own end;
 * the pieces cover [start, end) exactly once whatever the interleaving.
 */
#ifndef PREFT_BASE_ROW_RANGE_H
#define PREFT_BASE_ROW_RANGE_H

#include <stdatomic.h>
#include <stdint.h>

#include "preft/base.h" /* preft_pool */

/* One range per cache line: the owners' takes do not contend. */
typedef struct {
  _Alignas(64) _Atomic uint64_t left; /* rows not yet taken: back << 32 | front */
  int start, align;                   /* the task's first row; cuts on multiples of align */
  int first_piece, piece;             /* the owner's first piece (all but the reserve), then pieces */
  int steal;                          /* rows a helper takes from the back at a time */
} preft_row_range;

/* Rows [start, end) (0 <= start <= end < 2^31), a reserve of about a
 * quarter of them at the end; align >= 1. */
void preft_row_range_init(preft_row_range *r, int start, int end, int align);

/* The owner's next piece [*r0, *r1); 0 when no row is left. */
int preft_row_range_take_front(preft_row_range *r, int *r0, int *r1);

/* A helper's piece from the back [*r0, *r1); 0 when no row is left. */
int preft_row_range_take_back(preft_row_range *r, int *r0, int *r1);

/* Rows [0, n) over the pool in n_tasks ranges of whole groups of align
 * rows, balanced so: fn(ctx, r0, r1) for pieces that cover every row
 * exactly once, each piece starting and ending on a multiple of align or
 * at n. One task (or a pool of one thread) is one call fn(ctx, 0, n); more
 * tasks than PREFT_ROW_RANGES_MAX run unbalanced, one range each. */
#define PREFT_ROW_RANGES_MAX 64
typedef void (*preft_range_fn)(void *ctx, int r0, int r1);
void preft_pool_run_balanced(preft_pool *pool, int n, int n_tasks, int align, preft_range_fn fn, void *ctx);

#endif
