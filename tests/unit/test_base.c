/* test_base.c - thread pool, atomic writes, dtype conversions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/file.h"
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
  for (int round = 0; round < 50; round++) {
    pool_ctx *c = calloc(1, sizeof *c);
    int n = 1 + round * 19 % 1000;
    preft_pool_run(pool, n, mark, c);
    for (int i = 0; i < 1000; i++) assert_int_equal(atomic_load(&c->hits[i]), i < n ? 1 : 0);
    free(c);
  }
  preft_pool_free(pool);
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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(pool_runs_every_task_exactly_once),
      cmocka_unit_test(atomic_write_replaces_file_whole),
      cmocka_unit_test(half_conversions_round_to_nearest_even),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
