/* gemm_split.h - cutting a matrix product into tasks whose shares come
 * out even on the pool's threads (gemm.c's planning).
 *
 * The pool hands tasks out in turn, so with T threads the last thread to
 * finish runs ceil(tasks / T) of them, and the largest sets the pace: a
 * product of N = 512 rows split 3 × 3 (the rows' blocks sized for L2, then
 * about 4 tasks a thread) gives one thread 5 tasks of 9 and costs about a
 * quarter more time than an even split. These functions keep the caller's
 * first choice unless a split whose cost is within 5% of the best exists
 * nearer to even; they are pure functions of the sizes, and how a product
 * is cut changes no result (every output element is summed the same way
 * in any task).
 */
#ifndef PREFT_TENSOR_GEMM_SPLIT_H
#define PREFT_TENSOR_GEMM_SPLIT_H

/* The last thread's work over an equal share (1: even) when n rows go in
 * blocks of mc and `panels` panels in chunks of ppt, each block × chunk one
 * task, on `threads` threads: ceil(tasks / threads) × mc × ppt × threads /
 * (n × panels). */
double preft_split_cost(int n, int mc, int panels, int ppt, int threads);

/* A packed product's rows in blocks of *mc (a multiple of mr, at most an
 * eighth above mc_max: x's block stays in L2) and its panels in chunks of
 * *ppt: on entry the first choice, on return the split of least cost
 * within 5% of the best; among those the nearest to the first choice in
 * blocks and chunks, then the task count nearest `want`, then the larger
 * blocks (each panel packed fewer times). At least `threads` tasks where
 * the product has that many tiles. */
void preft_split_blocks(int n, int mr, int mc_max, int panels, int want, int threads, int *mc, int *ppt);

/* The rows regime's weight rows per task for m rows: rows0 (the first
 * choice) when its cost is within 5% of the best (preft_split_cost with
 * one row block), else a multiple of `group` making between `threads`
 * and 4 × want tasks, of cost within 5% of the best, the task count
 * nearest `want` (then the larger tasks: each streams every row of x). */
int preft_split_rows(int m, int group, int want, int threads, int rows0);

#endif
