/* test_train_dist.c - how a global batch is split over ranks
 * (preft_dist_share): contiguous shares in rank order that cover [0, n)
 * exactly once, the first n mod size ranks one item larger, and the largest
 * share (what a rank sizes its activations for). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "train/train_dist.h"

static void test_share_examples(void **state) {
  (void)state;
  int lo, hi;
  preft_dist_share(5, 0, 2, &lo, &hi);
  assert_int_equal(lo, 0);
  assert_int_equal(hi, 3);
  preft_dist_share(5, 1, 2, &lo, &hi);
  assert_int_equal(lo, 3);
  assert_int_equal(hi, 5);
  preft_dist_share(1, 2, 3, &lo, &hi); /* more ranks than items: empty shares */
  assert_int_equal(lo, 1);
  assert_int_equal(hi, 1);
  assert_int_equal(preft_dist_share_max(5, 2), 3);
  assert_int_equal(preft_dist_share_max(4, 2), 2);
  assert_int_equal(preft_dist_share_max(1, 3), 1);
}

static void test_share_covers(void **state) {
  (void)state;
  for (int n = 0; n <= 40; n++)
    for (int size = 1; size <= 9; size++) {
      int next = 0;
      for (int r = 0; r < size; r++) {
        int lo, hi;
        preft_dist_share(n, r, size, &lo, &hi);
        assert_int_equal(lo, next);
        assert_true(hi >= lo);
        assert_int_equal(hi - lo, n / size + (r < n % size));
        assert_true(hi - lo <= preft_dist_share_max(n, size));
        next = hi;
      }
      assert_int_equal(next, n);
    }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_share_examples),
      cmocka_unit_test(test_share_covers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
