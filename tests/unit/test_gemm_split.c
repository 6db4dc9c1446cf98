/* test_gemm_split.c - cutting a matrix product into tasks that come out
 * even on the pool's threads (tensor/gemm_split.h). The products' results
 * under every split are test_gemm's and test_gemm_train's (3 threads). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tensor/gemm_split.h"

static int cdiv(int a, int b) { return (a + b - 1) / b; }

/* The cost of an explicit split, counted task by task: the pool hands the
 * tasks out in turn, so thread t runs tasks t, t + T, ...; the last to
 * finish runs ceil(tasks / T) tasks, at most mc × ppt rows × panels each. */
static double cost_by_hand(int n, int mc, int panels, int ppt, int threads) {
  int tasks = cdiv(n, mc) * cdiv(panels, ppt), per_thread = (tasks + threads - 1) / threads;
  return (double)per_thread * mc * ppt / ((double)n * panels / threads);
}

/* The pool's run of the tasks simulated with their true sizes (the last
 * block and chunk may be smaller): task t (row block t % blocks, chunk
 * t / blocks, as gemm.c numbers them) goes to the thread free first; the
 * time the last thread ends over an equal share of the work. */
static double simulated_makespan(int n, int mc, int panels, int ppt, int threads) {
  double busy[8] = {0};
  const int blocks = cdiv(n, mc), tasks = blocks * cdiv(panels, ppt);
  for (int t = 0; t < tasks; t++) {
    int rb = t % blocks, cb = t / blocks;
    int rows = n - rb * mc < mc ? n - rb * mc : mc, cols = panels - cb * ppt < ppt ? panels - cb * ppt : ppt;
    int free_first = 0;
    for (int i = 1; i < threads; i++)
      if (busy[i] < busy[free_first]) free_first = i;
    busy[free_first] += (double)rows * cols;
  }
  double last = 0;
  for (int i = 0; i < threads; i++) last = busy[i] > last ? busy[i] : last;
  return last / ((double)n * panels / threads);
}

/* N = 512 rows of x, 16 panels (M = 512), 2 threads: the first choice
 * (blocks of 180 rows for L2, 3 chunks: 9 tasks) gives one thread 5; the
 * balanced split gives each the same work within 5%. */
static void blocks_even_out_nine_tasks_on_two_threads(void **state) {
  (void)state;
  int mc = 180, ppt = 6;
  assert_true(cost_by_hand(512, mc, 16, ppt, 2) > 1.3);
  assert_true(simulated_makespan(512, mc, 16, ppt, 2) > 1.07);
  preft_split_blocks(512, 12, 240, 16, 8, 2, &mc, &ppt);
  assert_int_equal(mc % 12, 0);
  assert_true(mc <= 240 + 240 / 8);
  int tasks = cdiv(512, mc) * cdiv(16, ppt);
  assert_int_equal(tasks % 2, 0);
  assert_true(tasks >= 4);
  assert_true(cost_by_hand(512, mc, 16, ppt, 2) <= 1.06);
  assert_true(simulated_makespan(512, mc, 16, ppt, 2) <= 1.02);
  assert_true(preft_split_cost(512, mc, 16, ppt, 2) == cost_by_hand(512, mc, 16, ppt, 2));
  /* the training pass's other shapes at N = 512 (M = 1408, 1536, 2816) */
  const int many[] = {44, 48, 88};
  for (int i = 0; i < 3; i++) {
    int mc0 = 180, ppt0 = cdiv(many[i], 3);
    mc = mc0, ppt = ppt0;
    preft_split_blocks(512, 12, 240, many[i], 8, 2, &mc, &ppt);
    assert_true(simulated_makespan(512, mc, many[i], ppt, 2) <= 1.05);
    assert_true(simulated_makespan(512, mc, many[i], ppt, 2) <
                simulated_makespan(512, mc0, many[i], ppt0, 2));
  }
}

/* A first choice already even (N = 1536: 7 blocks × 2 chunks, 14 tasks)
 * stays as it is, and one thread keeps every split as it is. */
static void blocks_keep_an_even_first_choice(void **state) {
  (void)state;
  int mc = 228, ppt = 8;
  preft_split_blocks(1536, 12, 240, 16, 8, 2, &mc, &ppt);
  assert_int_equal(mc, 228);
  assert_int_equal(ppt, 8);
  mc = 180, ppt = 6;
  preft_split_blocks(512, 12, 240, 16, 8, 1, &mc, &ppt);
  assert_int_equal(mc, 180);
  assert_int_equal(ppt, 6);
}

/* Over many sizes and thread counts: blocks a multiple of mr (or the first
 * choice), within an eighth above mc_max, every row and panel in a task,
 * and never a worse cost than the first choice. */
static void blocks_never_worse_than_the_first_choice(void **state) {
  (void)state;
  for (int threads = 2; threads <= 4; threads++)
    for (int n = 1; n <= 2100; n += 37)
      for (int panels = 1; panels <= 70; panels += 3) {
        const int want = 4 * threads;
        int rb = cdiv(n, 240), cc = cdiv(want, rb) < panels ? cdiv(want, rb) : panels;
        int mc0 = cdiv(cdiv(n, rb), 12) * 12, ppt0 = cdiv(panels, cc), mc = mc0, ppt = ppt0;
        preft_split_blocks(n, 12, 240, panels, want, threads, &mc, &ppt);
        assert_true(mc == mc0 || (mc % 12 == 0 && mc <= 270));
        assert_true(mc >= 1 && ppt >= 1 && ppt <= panels);
        assert_true(cdiv(n, mc) * mc >= n && cdiv(panels, ppt) * ppt >= panels);
        assert_true(cost_by_hand(n, mc, panels, ppt, threads) <=
                    cost_by_hand(n, mc0, panels, ppt0, threads) + 1e-12);
      }
}

/* The rows regime: M = 512 weight rows in tasks of 72 (8 tasks, the last
 * of 8 rows: one thread 288 rows against 256) become even; a multiple of
 * 12 always, never worse than the first choice. */
static void rows_even_out_and_stay_in_groups(void **state) {
  (void)state;
  int r = preft_split_rows(512, 12, 8, 2, 72);
  assert_int_equal(r % 12, 0);
  assert_true(r >= 96); /* not many small tasks: each streams all of x */
  assert_true(cost_by_hand(512, 72, 1, 1, 2) > 1.12);
  assert_true(cost_by_hand(512, r, 1, 1, 2) <= 1.05);
  assert_true(simulated_makespan(512, 72, 1, 1, 2) > 1.1);
  assert_true(simulated_makespan(512, r, 1, 1, 2) <= 1.05);
  for (int threads = 1; threads <= 4; threads++)
    for (int m = 1; m <= 5000; m += 53) {
      int r0 = cdiv(cdiv(m, 4 * threads), 12) * 12, rows = preft_split_rows(m, 12, 4 * threads, threads, r0);
      assert_int_equal(rows % 12, 0);
      if (threads == 1) assert_int_equal(rows, r0);
      assert_true(cost_by_hand(m, rows, 1, 1, threads) <= cost_by_hand(m, r0, 1, 1, threads) + 1e-12);
    }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(blocks_even_out_nine_tasks_on_two_threads),
      cmocka_unit_test(blocks_keep_an_even_first_choice),
      cmocka_unit_test(blocks_never_worse_than_the_first_choice),
      cmocka_unit_test(rows_even_out_and_stay_in_groups),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
