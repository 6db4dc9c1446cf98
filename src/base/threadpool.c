/* threadpool.c - persistent workers, tasks claimed from one atomic word,
 * spin-then-futex waits on both sides.
 *
 * One run publishes `work` = (generation, n_tasks, next index) in a single
 * 64-bit word; a thread claims task i by moving the word from (g, n, i) to
 * (g, n, i + 1) with a compare-and-swap, so a thread that wakes late, after
 * its run ended or while the next one is being set up, can never claim a
 * task of the wrong run. The caller works too and returns as soon as all n
 * tasks are done (`done` reaches n): it never waits for a worker that is
 * asleep or descheduled to check in, which is what made a loaded machine
 * (more runnable threads than cores) slow. fn and ctx are read only after
 * a successful claim, and the caller cannot start the next run before that
 * task is done, so ctx may live on the caller's stack.
 */
#include "base/threadpool.h"

#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base/error.h"

/* work word: generation (24 bits) | n_tasks (20 bits) | next index (20 bits) */
#define IDX_BITS 20
#define MAX_TASKS ((1 << IDX_BITS) - 1)
#define GEN_MASK 0xFFFFFFu
#define SPIN_WORKER 20000 /* pauses before a worker sleeps (about 0.5 ms) */
#define SPIN_CALLER 4000  /* pauses before the caller yields, then sleeps */

struct preft_pool {
  int size;
  pthread_t *threads;
  _Atomic uint64_t work;
  atomic_uint generation; /* futex word of the workers */
  atomic_int done;        /* tasks finished in this run; futex word of the caller */
  atomic_int sleepers;    /* workers inside futex_wait on generation */
  atomic_int caller_waiting;
  atomic_int stop;
  atomic_long n_runs, n_tasks, n_waits, n_wakes, n_yields; /* preft_pool_stats */
  atomic_int timed;                                        /* preft_pool_time_runs */
  atomic_llong run_cpu_ns;
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

static void count(atomic_long *c) { atomic_fetch_add_explicit(c, 1, memory_order_relaxed); }

static void futex_wait(preft_pool *pool, void *word, unsigned expected) {
  count(&pool->n_waits);
  syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}

static void futex_wake(preft_pool *pool, void *word, int n) {
  count(&pool->n_wakes);
  syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

static uint64_t work_word(unsigned gen, int n_tasks, int next) {
  return ((uint64_t)(gen & GEN_MASK) << (2 * IDX_BITS)) | ((uint64_t)n_tasks << IDX_BITS) | (uint64_t)next;
}

/* Claims and runs tasks of generation gen until none is left. */
static void run_tasks(preft_pool *pool, unsigned gen, int thread) {
  uint64_t w = atomic_load_explicit(&pool->work, memory_order_acquire);
  for (;;) {
    unsigned wgen = (unsigned)(w >> (2 * IDX_BITS)) & GEN_MASK;
    int n = (int)((w >> IDX_BITS) & MAX_TASKS), i = (int)(w & MAX_TASKS);
    if (wgen != (gen & GEN_MASK) || i >= n) return;
    if (!atomic_compare_exchange_weak_explicit(&pool->work, &w, w + 1, memory_order_acq_rel,
                                               memory_order_acquire))
      continue;
    pool->fn(pool->ctx, i, thread);
    if (atomic_fetch_add_explicit(&pool->done, 1, memory_order_acq_rel) + 1 == n &&
        atomic_load(&pool->caller_waiting))
      futex_wake(pool, &pool->done, 1);
    w = atomic_load_explicit(&pool->work, memory_order_acquire);
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
      if (++spins < SPIN_WORKER) {
        cpu_relax();
        continue;
      }
      atomic_fetch_add(&pool->sleepers, 1);
      if (atomic_load(&pool->generation) == seen && !atomic_load(&pool->stop))
        futex_wait(pool, &pool->generation, seen);
      atomic_fetch_sub(&pool->sleepers, 1);
      spins = 0;
    }
    if (atomic_load(&pool->stop)) return NULL;
    seen = gen;
    run_tasks(pool, gen, arg.index);
  }
}

preft_pool *preft_pool_create(int n_threads) {
  if (n_threads <= 0) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    n_threads = n > 0 ? (int)n : 1;
  }
  preft_pool *pool = preft_xcalloc(1, sizeof *pool);
  pool->size = n_threads;
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
  atomic_store(&pool->stop, 1);
  atomic_fetch_add(&pool->generation, 1);
  futex_wake(pool, &pool->generation, INT_MAX);
  for (int i = 1; i < pool->size; i++) pthread_join(pool->threads[i], NULL);
  free(pool->threads);
  free(pool);
}

int preft_pool_size(const preft_pool *pool) { return pool ? pool->size : 1; }

void preft_pool_stats_get(const preft_pool *pool, preft_pool_stats *out) {
  *out = (preft_pool_stats){0};
  if (!pool) return;
  preft_pool *p = (preft_pool *)pool; /* atomic loads of C11 take a non-const pointer */
  out->runs = atomic_load_explicit(&p->n_runs, memory_order_relaxed);
  out->tasks = atomic_load_explicit(&p->n_tasks, memory_order_relaxed);
  out->futex_waits = atomic_load_explicit(&p->n_waits, memory_order_relaxed);
  out->futex_wakes = atomic_load_explicit(&p->n_wakes, memory_order_relaxed);
  out->yields = atomic_load_explicit(&p->n_yields, memory_order_relaxed);
  out->caller_cpu_in_runs = (double)atomic_load_explicit(&p->run_cpu_ns, memory_order_relaxed) * 1e-9;
}

void preft_pool_time_runs(preft_pool *pool, int on) {
  if (pool) atomic_store(&pool->timed, on != 0);
}

static long long thread_cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Waits until all n tasks of the current run are done: spins, yields, sleeps. */
static void wait_done(preft_pool *pool, int n) {
  for (int spins = 0;; spins++) {
    int d = atomic_load_explicit(&pool->done, memory_order_acquire);
    if (d >= n) return;
    if (spins < SPIN_CALLER) {
      cpu_relax();
    } else if (spins < SPIN_CALLER + 64) {
      count(&pool->n_yields);
      sched_yield();
    } else {
      atomic_store(&pool->caller_waiting, 1);
      if (atomic_load(&pool->done) == d) futex_wait(pool, &pool->done, (unsigned)d);
      atomic_store(&pool->caller_waiting, 0);
    }
  }
}

typedef struct chunked {
  preft_task_fn fn;
  void *ctx;
  int offset;
} chunked;

static void chunked_task(void *p, int task, int thread) {
  const chunked *c = p;
  c->fn(c->ctx, c->offset + task, thread);
}

void preft_pool_run(preft_pool *pool, int n_tasks, preft_task_fn fn, void *ctx) {
  if (n_tasks <= 0) return;
  if (!pool || pool->size == 1 || n_tasks == 1) {
    for (int t = 0; t < n_tasks; t++) fn(ctx, t, 0);
    return;
  }
  if (n_tasks > MAX_TASKS) { /* more tasks than the work word holds: runs of MAX_TASKS */
    for (int off = 0; off < n_tasks; off += MAX_TASKS) {
      chunked c = {fn, ctx, off};
      int n = n_tasks - off < MAX_TASKS ? n_tasks - off : MAX_TASKS;
      preft_pool_run(pool, n, chunked_task, &c);
    }
    return;
  }
  count(&pool->n_runs);
  atomic_fetch_add_explicit(&pool->n_tasks, n_tasks, memory_order_relaxed);
  int timed = atomic_load_explicit(&pool->timed, memory_order_relaxed);
  long long t0 = timed ? thread_cpu_ns() : 0;
  pool->fn = fn;
  pool->ctx = ctx;
  atomic_store_explicit(&pool->done, 0, memory_order_relaxed);
  unsigned gen = atomic_load_explicit(&pool->generation, memory_order_relaxed) + 1;
  atomic_store_explicit(&pool->work, work_word(gen, n_tasks, 0), memory_order_release);
  atomic_store(&pool->generation, gen);
  if (atomic_load(&pool->sleepers) > 0) futex_wake(pool, &pool->generation, INT_MAX);
  run_tasks(pool, gen, 0);
  wait_done(pool, n_tasks);
  if (timed) atomic_fetch_add_explicit(&pool->run_cpu_ns, thread_cpu_ns() - t0, memory_order_relaxed);
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
