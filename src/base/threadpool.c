/* threadpool.c - persistent workers, dynamic task counter, spin-then-sleep.
 *
 * Invariant: `generation` increases by one per preft_pool_run; a worker that
 * has seen generation g joins the run for g+1 exactly once. `active` counts
 * workers still inside the current run; the caller waits for it to reach 0
 * before returning, so ctx may live on the caller's stack.
 */
#include "base/threadpool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "base/error.h"

struct preft_pool {
  int size;
  pthread_t *threads;
  pthread_mutex_t mu;
  pthread_cond_t wake;
  atomic_uint generation;
  atomic_int next_task;
  atomic_int active;
  atomic_int stop;
  int n_tasks;
  preft_task_fn fn;
  void *ctx;
};

typedef struct {
  preft_pool *pool;
  int index;
} worker_arg;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

static void run_tasks(preft_pool *pool, int thread) {
  for (;;) {
    int t = atomic_fetch_add_explicit(&pool->next_task, 1, memory_order_relaxed);
    if (t >= pool->n_tasks) break;
    pool->fn(pool->ctx, t, thread);
  }
}

static void *worker_main(void *p) {
  worker_arg arg = *(worker_arg *)p;
  free(p);
  preft_pool *pool = arg.pool;
  unsigned seen = 0;
  for (;;) {
    unsigned gen;
    int spins = 0;
    while ((gen = atomic_load_explicit(&pool->generation, memory_order_acquire)) == seen &&
           !atomic_load(&pool->stop)) {
      if (++spins < 200000) {
        cpu_relax();
        continue;
      }
      pthread_mutex_lock(&pool->mu);
      while (atomic_load(&pool->generation) == seen && !atomic_load(&pool->stop))
        pthread_cond_wait(&pool->wake, &pool->mu);
      pthread_mutex_unlock(&pool->mu);
    }
    if (atomic_load(&pool->stop)) return NULL;
    seen = gen;
    run_tasks(pool, arg.index);
    atomic_fetch_sub_explicit(&pool->active, 1, memory_order_release);
  }
}

preft_pool *preft_pool_create(int n_threads) {
  if (n_threads <= 0) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    n_threads = n > 0 ? (int)n : 1;
  }
  preft_pool *pool = preft_xcalloc(1, sizeof *pool);
  pool->size = n_threads;
  pthread_mutex_init(&pool->mu, NULL);
  pthread_cond_init(&pool->wake, NULL);
  pool->threads = preft_xcalloc((size_t)n_threads, sizeof(pthread_t));
  for (int i = 1; i < n_threads; i++) {
    worker_arg *arg = preft_xmalloc(sizeof *arg);
    arg->pool = pool;
    arg->index = i;
    if (pthread_create(&pool->threads[i], NULL, worker_main, arg) != 0) {
      free(arg);
      fprintf(stderr, "preft: cannot create worker thread %d\n", i);
      abort();
    }
  }
  return pool;
}

void preft_pool_free(preft_pool *pool) {
  if (!pool) return;
  pthread_mutex_lock(&pool->mu);
  atomic_store(&pool->stop, 1);
  pthread_cond_broadcast(&pool->wake);
  pthread_mutex_unlock(&pool->mu);
  for (int i = 1; i < pool->size; i++) pthread_join(pool->threads[i], NULL);
  pthread_mutex_destroy(&pool->mu);
  pthread_cond_destroy(&pool->wake);
  free(pool->threads);
  free(pool);
}

int preft_pool_size(const preft_pool *pool) { return pool ? pool->size : 1; }

void preft_pool_run(preft_pool *pool, int n_tasks, preft_task_fn fn, void *ctx) {
  if (n_tasks <= 0) return;
  if (!pool || pool->size == 1 || n_tasks == 1) {
    for (int t = 0; t < n_tasks; t++) fn(ctx, t, 0);
    return;
  }
  pool->fn = fn;
  pool->ctx = ctx;
  pool->n_tasks = n_tasks;
  atomic_store_explicit(&pool->next_task, 0, memory_order_relaxed);
  atomic_store_explicit(&pool->active, pool->size - 1, memory_order_relaxed);
  pthread_mutex_lock(&pool->mu);
  atomic_fetch_add_explicit(&pool->generation, 1, memory_order_release);
  pthread_cond_broadcast(&pool->wake);
  pthread_mutex_unlock(&pool->mu);
  run_tasks(pool, 0);
  while (atomic_load_explicit(&pool->active, memory_order_acquire) > 0) cpu_relax();
}

typedef struct rows_split {
  preft_rows_fn fn;
  void *ctx;
  int n, n_tasks;
} rows_split;

static void rows_split_task(void *p, int task, int thread) {
  (void)thread;
  const rows_split *r = p;
  int r0 = (int)((long long)r->n * task / r->n_tasks), r1 = (int)((long long)r->n * (task + 1) / r->n_tasks);
  r->fn(r->ctx, r0, r1);
}

void preft_pool_run_rows(preft_pool *pool, int n, size_t row_work, size_t min_work, preft_rows_fn fn,
                         void *ctx) {
  int threads = preft_pool_size(pool);
  size_t tasks = row_work * (size_t)n / min_work;
  if (tasks > (size_t)n) tasks = (size_t)n;
  if (tasks > 4 * (size_t)threads) tasks = 4 * (size_t)threads;
  if (threads <= 1 || tasks <= 1) {
    fn(ctx, 0, n);
    return;
  }
  rows_split r = {fn, ctx, n, (int)tasks};
  preft_pool_run(pool, r.n_tasks, rows_split_task, &r);
}
