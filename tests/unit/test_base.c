/* test_base.c - thread pool, row ranges taken from both ends, atomic writes,
 * dtype conversions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/file.h"
#include "base/huge_alloc.h"
#include "base/row_range.h"
#include "base/scratch.h"
#include "base/threadpool.h"
#include "tensor/dtype.h"
#include "testutil.h"

typedef struct {
  atomic_int hits[1000];
} pool_ctx;

static void mark(void *p, int task, int thread) {
  pool_ctx *c = p;
  atomic_fetch_add(&c->hits[task], 1);
}

static void pool_runs_every_task_exactly_once(void **state) {
  preft_pool *pool = preft_pool_create(3);
  preft_pool_time_runs(pool, 1);
  long runs = 0, tasks = 0;
  for (int round = 0; round < 50; round++) {
    pool_ctx *c = calloc(1, sizeof *c);
    int n = 1 + round * 19 % 1000;
    preft_pool_run(pool, n, mark, c);
    for (int i = 0; i < 1000; i++) assert_int_equal(atomic_load(&c->hits[i]), i < n ? 1 : 0);
    free(c);
    runs += n > 1; /* a run of one task stays on the caller, uncounted */
    tasks += n > 1 ? n : 0;
  }
  preft_pool_stats st;
  preft_pool_stats_get(pool, &st);
  assert_int_equal(st.runs, runs);
  assert_int_equal(st.tasks, tasks);
  assert_true(st.caller_cpu_in_runs >= 0.0);
  preft_pool_free(pool);
  preft_pool_stats_get(NULL, &st);
  assert_int_equal(st.runs, 0);
}

typedef struct {
  atomic_int in_use[8]; /* per thread index: a task of that index is running */
  atomic_long sum;
  atomic_int overlap;
} stress_ctx;

static void stress_task(void *p, int task, int thread) {
  stress_ctx *c = p;
  if (thread < 0 || thread >= 8 || atomic_exchange(&c->in_use[thread], 1) != 0) atomic_store(&c->overlap, 1);
  atomic_fetch_add(&c->sum, task + 1);
  atomic_store(&c->in_use[thread], 0);
}

/* More threads than cores, thousands of short runs with the context on the
 * stack, pauses long enough for workers to fall asleep: every task once,
 * never two tasks on one thread index at a time. */
static void pool_survives_oversubscription_and_sleep(void **state) {
  (void)state;
  preft_pool *pool = preft_pool_create(8);
  for (int round = 0; round < 3000; round++) {
    stress_ctx c;
    memset(&c, 0, sizeof c);
    int n = 1 + round % 37;
    preft_pool_run(pool, n, stress_task, &c);
    assert_int_equal(atomic_load(&c.sum), (long)n * (n + 1) / 2);
    assert_int_equal(atomic_load(&c.overlap), 0);
    if (round % 1000 == 999) usleep(20000); /* workers go to sleep; the next run wakes them */
  }
  preft_pool_free(pool);
}

static void mark_count(void *p, int task, int thread) {
  (void)thread;
  (void)task;
  atomic_fetch_add((atomic_long *)p, 1);
}

/* More tasks than one run's work word holds (2^20 - 1) are split into runs. */
static void pool_runs_more_tasks_than_one_word_holds(void **state) {
  (void)state;
  preft_pool *pool = preft_pool_create(2);
  atomic_long count = 0;
  preft_pool_run(pool, (1 << 20) + 5, mark_count, &count);
  assert_int_equal(atomic_load(&count), (1 << 20) + 5);
  preft_pool_free(pool);
}

/* A piece [r0, r1) of [start, end): inside what is left, and cut on a
 * multiple of align or at the range's own end. */
static void check_piece(int r0, int r1, int start, int end, int align) {
  assert_true(start <= r0 && r0 < r1 && r1 <= end);
  assert_true(r0 == start || r0 % align == 0);
  assert_true(r1 == end || r1 % align == 0);
}

/* The owner alone: most of the task in its first piece (all but a reserve
 * of about a quarter), the rest in a few pieces, in order, each row once. */
static void row_range_owner_alone_takes_few_long_pieces(void **state) {
  (void)state;
  static const int cases[][3] = {{0, 448, 16}, {448, 1152, 16}, {0, 896, 12},
                                 {32, 37, 16}, {0, 1, 4},       {64, 75968, 16}};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    const int start = cases[c][0], end = cases[c][1], align = cases[c][2];
    preft_row_range r;
    preft_row_range_init(&r, start, end, align);
    int r0, r1, next = start, pieces = 0;
    while (preft_row_range_take_front(&r, &r0, &r1)) {
      check_piece(r0, r1, start, end, align);
      assert_int_equal(r0, next);
      if (pieces == 0) assert_true(r1 - r0 >= (end - start) * 3 / 4 && end - r1 <= (end - start) / 4 + align);
      /* ... and leaves a reserve a helper could take, where a quarter holds a group */
      if (pieces == 0 && (end - start) / 4 >= align) assert_true(r1 < end);
      next = r1;
      pieces++;
    }
    assert_int_equal(next, end);
    assert_true(pieces <= 4);
    assert_int_equal(preft_row_range_take_back(&r, &r0, &r1), 0);
  }
}

/* A helper takes pieces from the back while the owner takes from the
 * front: the pieces never overlap, cover the range, and a helper's are at
 * most a sixteenth of the task (a group when that is less). */
static void row_range_owner_and_helper_share_it(void **state) {
  (void)state;
  for (int pattern = 0; pattern < 8; pattern++) {
    const int start = 64, end = 64 + 1000 + pattern * 37, align = 16;
    preft_row_range r;
    preft_row_range_init(&r, start, end, align);
    unsigned char seen[2200] = {0};
    int r0, r1, step = 0, taken = 0;
    for (;;) {
      /* bit `step` of pattern: the helper takes (1) or the owner (0); the helper first, then alternating */
      const int back = step < 3 ? (pattern >> step) & 1 : step % 2;
      if (!(back ? preft_row_range_take_back(&r, &r0, &r1) : preft_row_range_take_front(&r, &r0, &r1))) break;
      check_piece(r0, r1, start, end, align);
      if (back) assert_true(r1 - r0 <= ((end - start) / 16 > align ? (end - start) / 16 : align));
      for (int i = r0; i < r1; i++) assert_int_equal(seen[i]++, 0);
      taken += r1 - r0;
      step++;
    }
    assert_int_equal(taken, end - start);
    assert_int_equal(preft_row_range_take_front(&r, &r0, &r1), 0);
  }
}

typedef struct {
  preft_row_range *ranges;
  int n_ranges, self;
  atomic_int *hits;
} range_worker;

static void *take_rows_until_none(void *p) {
  range_worker *w = p;
  int r0, r1;
  while (preft_row_range_take_front(&w->ranges[w->self], &r0, &r1))
    for (int i = r0; i < r1; i++) atomic_fetch_add(&w->hits[i], 1);
  for (int d = 1; d < w->n_ranges; d++)
    while (preft_row_range_take_back(&w->ranges[(w->self + d) % w->n_ranges], &r0, &r1))
      for (int i = r0; i < r1; i++) atomic_fetch_add(&w->hits[i], 1);
  return NULL;
}

/* Four threads, each the owner of one range and a helper of the others,
 * as decode's tasks run them: every row is taken exactly once. */
static void row_range_threads_take_each_row_once(void **state) {
  (void)state;
  enum { THREADS = 4, SPAN = 4096 + 16, TOTAL = THREADS * SPAN - 100 };
  for (int round = 0; round < 20; round++) {
    preft_row_range ranges[THREADS];
    atomic_int *hits = calloc(TOTAL, sizeof *hits);
    for (int t = 0; t < THREADS; t++)
      preft_row_range_init(&ranges[t], t * SPAN, (t + 1) * SPAN < TOTAL ? (t + 1) * SPAN : TOTAL, 16);
    pthread_t th[THREADS];
    range_worker w[THREADS];
    for (int t = 0; t < THREADS; t++) {
      w[t] = (range_worker){ranges, THREADS, t, hits};
      assert_int_equal(pthread_create(&th[t], NULL, take_rows_until_none, &w[t]), 0);
    }
    for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
    for (int i = 0; i < TOTAL; i++) assert_int_equal(atomic_load(&hits[i]), 1);
    free(hits);
  }
}

static void atomic_write_replaces_file_whole(void **state) {
  char *dir = test_tmpdir();
  char *path = preft_path_join(dir, "out.bin");
  preft_error err;
  assert_int_equal(preft_write_atomic(path, "first", 5, &err), 0);
  assert_int_equal(preft_write_atomic(path, "second!", 7, &err), 0);
  size_t n;
  char *buf = test_read_all(path, &n);
  assert_int_equal(n, 7);
  assert_memory_equal(buf, "second!", 7);
  free(buf);
  remove(path);
  rmdir(dir);
  free(path);
  free(dir);
}

static void half_conversions_round_to_nearest_even(void **state) {
  /* Known encodings: 1.0, -2.0, 65504 (max half), smallest subnormal. */
  assert_int_equal(preft_f32_to_f16(1.0f), 0x3c00);
  assert_int_equal(preft_f32_to_f16(-2.0f), 0xc000);
  assert_int_equal(preft_f32_to_f16(65504.0f), 0x7bff);
  assert_int_equal(preft_f32_to_f16(1e6f), 0x7c00);
  assert_int_equal(preft_f32_to_f16(5.960464477539063e-08f), 0x0001);
  assert_true(preft_f16_to_f32(0x0001) == 5.960464477539063e-08f);
  /* 1 + 2^-11 is exactly between two halves: ties to even (down to 1.0). */
  assert_int_equal(preft_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);
  assert_int_equal(preft_f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);
  /* Every half value round-trips. */
  for (uint32_t h = 0; h < 0x10000; h++) {
    if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue; /* NaN payloads */
    assert_int_equal(preft_f32_to_f16(preft_f16_to_f32((uint16_t)h)), h);
  }
  assert_int_equal(preft_f32_to_bf16(1.0f), 0x3f80);
  assert_int_equal(preft_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);     /* tie to even */
  assert_int_equal(preft_f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82); /* tie to even, up */
  assert_true(preft_bf16_to_f32(0xc040) == -3.0f);
}

/* preft_alloc_big: huge-page aligned when big and the rounding is small,
 * plain malloc otherwise, writable to the last byte; preft_xalloc_big the
 * same for a big buffer; preft_xcalloc_big zeroed as well (after a freed
 * block full of 0xA5, which the allocator may hand back). */
static void big_buffers_go_on_aligned_huge_pages(void **s) {
  (void)s;
  const size_t huge = (size_t)2 << 20;
  const size_t sizes[] = {1, 4096, huge - 1, huge + huge / 16, 20 * huge - 5, 3 * huge};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    unsigned char *p = preft_alloc_big(sizes[i]);
    assert_non_null(p);
    p[0] = 1;
    p[sizes[i] - 1] = 2;
    size_t rounded = (sizes[i] + huge - 1) / huge * huge;
    if (sizes[i] >= PREFT_HUGE_MIN && rounded - sizes[i] <= sizes[i] / 8)
      assert_int_equal((uintptr_t)p % huge, 0);
    free(p);
  }
  unsigned char *q = preft_xalloc_big(20 * huge - 5);
  assert_int_equal((uintptr_t)q % huge, 0);
  q[20 * huge - 6] = 3;
  memset(q, 0xA5, 20 * huge - 5); /* dirty memory for the next allocation to get back */
  free(q);
  /* preft_xcalloc_big: zeroed, on huge pages when big, a plain calloc otherwise */
  const size_t counts[] = {1, 1000, 5 * huge / 4 - 1};
  for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
    float *z = preft_xcalloc_big(counts[i], sizeof(float));
    size_t bytes = counts[i] * sizeof(float);
    if (bytes >= PREFT_HUGE_MIN) assert_int_equal((uintptr_t)z % huge, 0);
    for (size_t j = 0; j < counts[i]; j++)
      if (z[j] != 0.0f) fail_msg("preft_xcalloc_big(%zu): element %zu is %g", counts[i], j, z[j]);
    z[counts[i] - 1] = 1.0f;
    free(z);
  }
}

/* A scratch block handed back is the one the next request of about its
 * size gets (pages kept), never one more than twice the request; the cache
 * keeps at most PREFT_SCRATCH_KEEP blocks, drops the least recently
 * returned first, frees what is bigger than it may hold, and a thread's
 * blocks go when it exits (the ASan build's leak check sees the rest). */
static void *scratch_in_thread(void *unused) {
  (void)unused;
  for (int i = 0; i < 3; i++) preft_scratch_put(preft_scratch_get((size_t)(i + 1) << 20));
  int blocks;
  preft_scratch_cached(&blocks);
  return (void *)(intptr_t)blocks;
}

static void scratch_blocks_are_reused_within_bounds(void **s) {
  (void)s;
  preft_scratch_release();
  char *a = preft_scratch_get(3 << 20);
  assert_true((uintptr_t)a % 64 == 0);
  memset(a, 1, 3 << 20); /* writable to its last byte */
  preft_scratch_put(a);
  int blocks;
  assert_int_equal(preft_scratch_cached(&blocks), 3 << 20);
  assert_int_equal(blocks, 1);
  char *b = preft_scratch_get(2 << 20); /* fits, not twice too big: the same block */
  assert_ptr_equal(a, b);
  assert_int_equal(preft_scratch_cached(&blocks), 0);
  preft_scratch_put(b);
  char *c = preft_scratch_get(1 << 20); /* less than half of it: a new block */
  assert_ptr_not_equal(c, b);
  char *d = preft_scratch_get((3 << 20) + 1); /* more than it holds: a new block */
  assert_ptr_not_equal(d, b);
  memset(d, 2, (3 << 20) + 1);
  preft_scratch_put(c);
  preft_scratch_put(d);
  assert_int_equal(preft_scratch_cached(&blocks), (3 << 20) + (1 << 20) + (3 << 20) + 1);
  assert_int_equal(blocks, 3);
  char *first = preft_scratch_get(1 << 20); /* c: take it back and return it last-but-one */
  assert_ptr_equal(first, c);
  preft_scratch_put(first);
  void *many[PREFT_SCRATCH_KEEP];
  for (int i = 0; i < PREFT_SCRATCH_KEEP; i++) many[i] = preft_scratch_get(64 << 10);
  for (int i = 0; i < PREFT_SCRATCH_KEEP; i++) preft_scratch_put(many[i]);
  assert_int_equal(preft_scratch_cached(&blocks), (size_t)PREFT_SCRATCH_KEEP * (64 << 10));
  assert_int_equal(blocks, PREFT_SCRATCH_KEEP); /* the three big ones went first */
  void *huge = preft_scratch_get(PREFT_SCRATCH_BYTES + 1);
  preft_scratch_put(huge); /* more than a cache may hold: freed */
  assert_int_equal(preft_scratch_cached(&blocks), (size_t)PREFT_SCRATCH_KEEP * (64 << 10));
  preft_scratch_release();
  assert_int_equal(preft_scratch_cached(&blocks), 0);
  assert_int_equal(blocks, 0);
  pthread_t t;
  void *ret;
  assert_int_equal(pthread_create(&t, NULL, scratch_in_thread, NULL), 0);
  assert_int_equal(pthread_join(t, &ret), 0);
  assert_int_equal((intptr_t)ret, 3); /* cached there, freed at its exit */
  preft_scratch_put(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(pool_runs_every_task_exactly_once),
      cmocka_unit_test(pool_survives_oversubscription_and_sleep),
      cmocka_unit_test(pool_runs_more_tasks_than_one_word_holds),
      cmocka_unit_test(row_range_owner_alone_takes_few_long_pieces),
      cmocka_unit_test(row_range_owner_and_helper_share_it),
      cmocka_unit_test(row_range_threads_take_each_row_once),
      cmocka_unit_test(atomic_write_replaces_file_whole),
      cmocka_unit_test(half_conversions_round_to_nearest_even),
      cmocka_unit_test(big_buffers_go_on_aligned_huge_pages),
      cmocka_unit_test(scratch_blocks_are_reused_within_bounds),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
