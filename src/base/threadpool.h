/* threadpool.h - a fixed pool of worker threads for data-parallel kernels.
 *
 * preft_pool_run(pool, n, fn, ctx) calls fn(ctx, i, thread) for every task
 * index i in [0, n) across the pool's threads (the caller's thread is thread
 * 0 and works too) and returns when all n calls have finished. Tasks are
 * handed out dynamically (an atomic counter), so uneven tasks balance.
 * The caller returns as soon as the n tasks are done, whether or not every
 * worker woke up for the run, so a machine with more runnable threads than
 * cores does not make each run wait for the scheduler. Workers spin briefly
 * between runs before sleeping (a futex), which keeps dispatch cheap for
 * the many small kernels of a decode step.
 *
 * A pool of size 1 runs everything on the caller's thread. A NULL pool is
 * treated as size 1. Not reentrant: fn must not call preft_pool_run on the
 * same pool.
 */
#ifndef PREFT_BASE_THREADPOOL_H
#define PREFT_BASE_THREADPOOL_H

#include <stddef.h>

#include "preft/base.h" /* preft_pool, preft_pool_create / _free / _size */

typedef void (*preft_task_fn)(void *ctx, int task, int thread);

void preft_pool_run(preft_pool *pool, int n_tasks, preft_task_fn fn, void *ctx);

/* Counters since the pool was made, for benchmarks and diagnosis (the
 * waits are where a run costs system time): runs handed to the workers
 * (runs of one task, or on a pool of one thread, count in neither), their
 * tasks, futex sleeps and wakes of either side, the caller's sched_yield
 * calls; with preft_pool_time_runs on, the CPU seconds the calling thread
 * spent inside those runs (its tasks and its wait), so that its CPU time
 * outside them is the single-threaded part of its work. A NULL pool, or
 * one of size 1, reads all zero. */
typedef struct {
  long runs, tasks, futex_waits, futex_wakes, yields;
  double caller_cpu_in_runs;
} preft_pool_stats;
void preft_pool_stats_get(const preft_pool *pool, preft_pool_stats *out);
/* Off by default: two clock_gettime calls per run. */
void preft_pool_time_runs(preft_pool *pool, int on);

/* Row-parallel steps: fn(ctx, r0, r1) over consecutive ranges covering rows
 * [0, n), split across the pool only when the rows are worth it: each range
 * gets at least min_work units (n rows of row_work each), at most 4 ranges
 * a thread; otherwise one call on the caller's thread. Each row is computed
 * the same way whichever range holds it, so results do not depend on the
 * thread count. */
typedef void (*preft_rows_fn)(void *ctx, int r0, int r1);
void preft_pool_run_rows(preft_pool *pool, int n, size_t row_work, size_t min_work, preft_rows_fn fn,
                         void *ctx);

#endif
