/* threadpool.h - a fixed pool of worker threads for data-parallel kernels.
 *
 * preft_pool_run(pool, n, fn, ctx) calls fn(ctx, i, thread) for every task
 * index i in [0, n) across the pool's threads (the caller's thread is thread
 * 0 and works too) and returns when all n calls have finished. Tasks are
 * handed out dynamically (an atomic counter), so uneven tasks balance.
 * Workers spin briefly between runs before sleeping, which keeps dispatch
 * cheap for the many small kernels of a decode step.
 *
 * A pool of size 1 runs everything on the caller's thread. A NULL pool is
 * treated as size 1. Not reentrant: fn must not call preft_pool_run on the
 * same pool.
 */
#ifndef PREFT_BASE_THREADPOOL_H
#define PREFT_BASE_THREADPOOL_H

#include "preft/base.h" /* preft_pool, preft_pool_create / _free / _size */

typedef void (*preft_task_fn)(void *ctx, int task, int thread);

void preft_pool_run(preft_pool *pool, int n_tasks, preft_task_fn fn, void *ctx);

#endif
