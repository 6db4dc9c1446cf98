/* test_gemm_train.c - the backward-pass products preft_gemm_dx and
 * preft_gemm_dw against their double-accumulating references, on both CPU
 * paths, with 1 and 3 threads, odd sizes (both GEMM regimes), padded
 * strides and accumulation; and preft_transpose. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "base/threadpool.h"
#include "tensor/cpu.h"
#include "tensor/gemm_train.h"
#include "testutil.h"

static float *rand_buf(size_t n) {
  float *p = malloc(sizeof(float) * n);
  for (size_t i = 0; i < n; i++) p[i] = test_frand();
  return p;
}

static void expect_close(const float *got, const float *want, size_t n, double tol, const char *what) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    double d = (double)got[i] - want[i];
    num += d * d;
    den += (double)want[i] * want[i];
  }
  double r = den > 0 ? sqrt(num / den) : sqrt(num);
  if (!(r < tol)) fail_msg("%s: relative L2 error %.3g (limit %.3g)", what, r, tol);
}

static void check_shapes(preft_pool *pool, int n, int m, int k) {
  int pad = 3, dys = m + pad, xs = k + pad, dxs = k + pad;
  float *dy = rand_buf((size_t)n * dys), *x = rand_buf((size_t)n * xs), *w = rand_buf((size_t)m * k);
  for (int acc = 0; acc <= 1; acc++) {
    float *dx = rand_buf((size_t)n * dxs), *dx_ref = malloc(sizeof(float) * (size_t)n * dxs);
    for (size_t i = 0; i < (size_t)n * dxs; i++) dx_ref[i] = dx[i];
    preft_gemm_dx(pool, dx, dxs, dy, dys, w, n, m, k, acc);
    preft_gemm_dx_ref(dx_ref, dxs, dy, dys, w, n, m, k, acc);
    for (int i = 0; i < n; i++)
      for (int c = k; c < dxs; c++)
        if (dx[(size_t)i * dxs + c] != dx_ref[(size_t)i * dxs + c]) fail_msg("dx stride padding overwritten");
    expect_close(dx, dx_ref, (size_t)n * dxs, 1e-5, "gemm_dx");
    free(dx);
    free(dx_ref);
  }
  float *dw = rand_buf((size_t)m * k), *dw_ref = malloc(sizeof(float) * (size_t)m * k);
  for (size_t i = 0; i < (size_t)m * k; i++) dw_ref[i] = dw[i];
  preft_gemm_dw(pool, dw, dy, dys, x, xs, n, m, k);
  preft_gemm_dw_ref(dw_ref, dy, dys, x, xs, n, m, k);
  expect_close(dw, dw_ref, (size_t)m * k, 1e-5, "gemm_dw");
  free(dw);
  free(dw_ref);
  free(dy);
  free(x);
  free(w);
}

static void products_match_reference(void **state) {
  static const int shapes[][3] = {{1, 7, 5}, {5, 33, 17}, {64, 96, 80}, {300, 70, 129}, {517, 48, 40}};
  preft_pool *pools[2] = {preft_pool_create(1), preft_pool_create(3)};
  for (int path = 0; path <= (int)preft_cpu_detected(); path++) {
    preft_cpu_limit((preft_cpu_path_kind)path);
    for (int p = 0; p < 2; p++)
      for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        check_shapes(pools[p], shapes[s][0], shapes[s][1], shapes[s][2]);
  }
  preft_cpu_limit(PREFT_CPU_N_PATHS - 1);
  preft_pool_free(pools[0]);
  preft_pool_free(pools[1]);
}

static void transpose_is_exact(void **state) {
  preft_pool *pool = preft_pool_create(2);
  int r = 300, c = 259, s = 263;
  float *in = rand_buf((size_t)r * s), *out = malloc(sizeof(float) * (size_t)r * c);
  preft_transpose(pool, out, in, s, r, c);
  for (int i = 0; i < r; i++)
    for (int j = 0; j < c; j++) assert_true(out[(size_t)j * r + i] == in[(size_t)i * s + j]);
  free(in);
  free(out);
  preft_pool_free(pool);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(products_match_reference),
      cmocka_unit_test(transpose_is_exact),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
