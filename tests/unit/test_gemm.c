/* test_gemm.c - preft_gemm against the double-accumulating reference
 * preft_gemm_ref, for every weight type, on every CPU path this machine has
 * (portable, avx+fma+f16c, avx2, avx512-bf16), at both matmul precisions,
 * with 1 and 3 threads, odd sizes, padded strides and accumulation. At bf16
 * precision BF16 weights on the avx512-bf16 path are checked against the
 * reference of x rounded to BF16 (their products are then exact in FP32),
 * every other case against the exact reference. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/threadpool.h"
#include "tensor/cpu.h"
#include "tensor/dtype.h"
#include "tensor/gemm.h"
#include "testutil.h"

#define SENTINEL 12345.0f /* written into stride padding; must survive */

typedef struct {
  preft_pool *pool1, *pool3;
} fixture;

static int setup(void **state) {
  fixture *f = malloc(sizeof *f);
  f->pool1 = preft_pool_create(1);
  f->pool3 = preft_pool_create(3);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  preft_pool_free(f->pool1);
  preft_pool_free(f->pool3);
  free(f);
  preft_cpu_limit(PREFT_CPU_N_PATHS - 1);
  return 0;
}

/* Magnitude scale of each y[i,j] = (accumulate ? y0[i,j] : 0) + x_i . w_j:
 * |y0| + ||x_i|| ||w_j||, which bounds |y0| + sum |x||w| (Cauchy-Schwarz),
 * the size float rounding errors are relative to. [n, m] doubles, heap. */
static double *magnitude_scales(const float *x, int xs, const void *w, preft_dtype dt, const float *y0,
                                int ys, int n, int k, int m, int accumulate) {
  double *xn = malloc((size_t)n * sizeof *xn), *wn = malloc((size_t)m * sizeof *wn);
  double *scale = malloc((size_t)n * (size_t)m * sizeof *scale);
  for (int i = 0; i < n; i++) {
    double s = 0;
    for (int p = 0; p < k; p++) s += (double)x[(size_t)i * xs + p] * x[(size_t)i * xs + p];
    xn[i] = sqrt(s);
  }
  for (int j = 0; j < m; j++) {
    double s = 0;
    for (int p = 0; p < k; p++) {
      double v = preft_load_elem(w, dt, (size_t)j * k + p);
      s += v * v;
    }
    wn[j] = sqrt(s);
  }
  for (int i = 0; i < n; i++)
    for (int j = 0; j < m; j++)
      scale[(size_t)i * m + j] = (accumulate ? fabs(y0[(size_t)i * ys + j]) : 0.0) + xn[i] * wn[j];
  free(xn), free(wn);
  return scale;
}

/* Runs preft_gemm on every path and pool for one problem and checks it
 * against preft_gemm_ref: relative L2 error <= 1e-5, every element within
 * 1e-5 of its magnitude scale, and the stride padding
 * between rows untouched. Buffers end exactly at the last element, so
 * AddressSanitizer catches any read or write past them. */
static void check_problem(const fixture *f, preft_dtype dt, int n, int k, int m, int pad, int accumulate) {
  int xs = k + pad, ys = m + pad;
  size_t xlen = (size_t)(n - 1) * (size_t)xs + (size_t)k, ylen = (size_t)(n - 1) * (size_t)ys + (size_t)m;
  float *x = malloc(xlen * sizeof *x), *y0 = malloc(ylen * sizeof *y0), *y = malloc(ylen * sizeof *y);
  float *yref = malloc(ylen * sizeof *yref);
  double *want = malloc((size_t)n * (size_t)m * sizeof *want);
  for (size_t i = 0; i < xlen; i++) x[i] = test_frand();
  for (size_t i = 0; i < ylen; i++) y0[i] = (int)(i % (size_t)ys) >= m ? SENTINEL : test_frand();
  void *w = test_random_weights(dt, (size_t)(m) * (size_t)(k));

  /* x rounded to BF16 (nearest even), as the bf16 precision rounds it */
  float *xr = malloc(xlen * sizeof *xr);
  for (size_t i = 0; i < xlen; i++) xr[i] = preft_bf16_to_f32(preft_f32_to_bf16(x[i]));
  double *want_r = malloc((size_t)n * (size_t)m * sizeof *want_r);
  memcpy(yref, y0, ylen * sizeof *y0);
  preft_gemm_ref(yref, ys, xr, xs, w, dt, n, k, m, accumulate);
  for (int i = 0; i < n; i++)
    for (int j = 0; j < m; j++) want_r[(size_t)i * m + j] = yref[(size_t)i * ys + j];
  memcpy(yref, y0, ylen * sizeof *y0);
  preft_gemm_ref(yref, ys, x, xs, w, dt, n, k, m, accumulate);
  double *scale = magnitude_scales(x, xs, w, dt, y0, ys, n, k, m, accumulate);
  for (int i = 0; i < n; i++)
    for (int j = 0; j < m; j++) want[(size_t)i * m + j] = yref[(size_t)i * ys + j];

  preft_pool *pools[2] = {f->pool1, f->pool3};
  for (int run = 0; run < 2 * 2 * ((int)preft_cpu_detected() + 1); run++) {
    int pi = run % 2, prec = run / 2 % 2, path = run / 4;
    if (prec == PREFT_MATMUL_BF16 && dt != PREFT_BF16) continue;
    preft_cpu_limit((preft_cpu_path_kind)path);
    preft_matmul_set_precision((preft_matmul_precision)prec);
    const double *expect = prec == PREFT_MATMUL_BF16 && path >= PREFT_CPU_AVX512_BF16 ? want_r : want;
    {
      memcpy(y, y0, ylen * sizeof *y0);
      preft_gemm(pools[pi], y, ys, x, xs, w, dt, n, k, m, accumulate);
      double num = 0, den = 0;
      for (int i = 0; i < n; i++) {
        for (int j = 0; j < m; j++) {
          double got = y[(size_t)i * ys + j], ref = expect[(size_t)i * m + j];
          double err = fabs(got - ref);
          num += err * err;
          den += ref * ref;
          if (!(err <= 1e-5 * scale[(size_t)i * m + j] + 1e-30)) {
            print_error(
                "%s n=%d k=%d m=%d pad=%d acc=%d path=%s precision=%s threads=%d: y[%d,%d]=%.9g want %.9g\n",
                preft_dtype_name(dt), n, k, m, pad, accumulate,
                preft_cpu_path_name((preft_cpu_path_kind)path),
                preft_matmul_precision_name((preft_matmul_precision)prec), preft_pool_size(pools[pi]), i, j,
                got, ref);
            fail();
          }
        }
        for (int j = m; i < n - 1 && j < ys; j++) assert_true(y[(size_t)i * ys + j] == SENTINEL);
      }
      assert_true(den == 0 || sqrt(num / den) <= 1e-5);
    }
  }
  preft_cpu_limit(PREFT_CPU_N_PATHS - 1);
  preft_matmul_set_precision(PREFT_MATMUL_EXACT);
  free(x), free(xr), free(y0), free(y), free(yref), free(want), free(want_r), free(scale), free(w);
}

static void gemm_matches_reference_for_odd_shapes(preft_dtype dt, void **state) {
  static const int ns[] = {1, 2, 3, 5, 8, 17, 64, 130};
  static const int ks[] = {1, 7, 33, 257};
  static const int ms[] = {1, 7, 33, 257};
  int c = 0;
  for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
    for (size_t b = 0; b < sizeof ks / sizeof *ks; b++)
      for (size_t d = 0; d < sizeof ms / sizeof *ms; d++, c++)
        check_problem(*state, dt, ns[a], ks[b], ms[d], (c & 1) ? 3 : 0, (c >> 1) & 1);
}

static void f32_gemm_matches_reference(void **state) {
  gemm_matches_reference_for_odd_shapes(PREFT_F32, state);
}
static void f16_gemm_matches_reference(void **state) {
  gemm_matches_reference_for_odd_shapes(PREFT_F16, state);
}
static void bf16_gemm_matches_reference(void **state) {
  gemm_matches_reference_for_odd_shapes(PREFT_BF16, state);
}

/* Several K blocks, many panels, row blocks split across threads, and
 * every pad/accumulate combination on shapes that are a few tiles big. */
static void gemm_matches_reference_on_multi_block_shapes(void **state) {
  for (int dt = 0; dt < 3; dt++)
    for (int v = 0; v < 4; v++) {
      check_problem(*state, (preft_dtype)dt, 1, 1000, 100, (v & 1) * 5, v >> 1);
      check_problem(*state, (preft_dtype)dt, 4, 530, 61, (v & 1) * 5, v >> 1);
      check_problem(*state, (preft_dtype)dt, 37, 600, 90, (v & 1) * 5, v >> 1);
      check_problem(*state, (preft_dtype)dt, 250, 40, 23, (v & 1) * 5, v >> 1);
      check_problem(*state, (preft_dtype)dt, 500, 70, 13, (v & 1) * 5, v >> 1); /* rows in blocks of 240 */
    }
}

/* Small integers times halves with few mantissa bits: every product and sum
 * is exact in FP32, so every path must agree with the reference bit for bit
 * (catches a wrong conversion that a tolerance could hide). */
static void small_integer_products_are_exact(void **state) {
  fixture *f = *state;
  int n = 9, k = 45, m = 21;
  float x[9 * 45], y[9 * 21], yref[9 * 21];
  for (int i = 0; i < n * k; i++) x[i] = (float)((i * 7) % 11 - 5);
  for (int dt = 0; dt < 3; dt++) {
    uint16_t wh[21 * 45];
    float wf[21 * 45];
    for (int i = 0; i < m * k; i++) {
      float v = (float)((i * 5) % 13 - 6) * 0.25f;
      wf[i] = v;
      wh[i] = dt == PREFT_F16 ? preft_f32_to_f16(v) : preft_f32_to_bf16(v);
    }
    const void *w = dt == PREFT_F32 ? (const void *)wf : (const void *)wh;
    preft_gemm_ref(yref, m, x, k, w, (preft_dtype)dt, n, k, m, 0);
    /* x is small integers, exact in BF16: the bf16 precision is exact too */
    for (int run = 0; run < 2 * ((int)preft_cpu_detected() + 1); run++) {
      preft_cpu_limit((preft_cpu_path_kind)(run / 2));
      preft_matmul_set_precision((preft_matmul_precision)(run % 2));
      for (int nn = 1; nn <= n; nn += 4) {
        preft_gemm(f->pool3, y, m, x, k, w, (preft_dtype)dt, nn, k, m, 0);
        assert_memory_equal(y, yref, (size_t)nn * (size_t)m * sizeof(float));
      }
    }
  }
  preft_cpu_limit(PREFT_CPU_N_PATHS - 1);
  preft_matmul_set_precision(PREFT_MATMUL_EXACT);
}

/* Every finite F16 and BF16 value, put through each path's vector
 * conversion (K = 8 features, so no scalar tail) and multiplied by unit
 * rows of x, comes out exactly as the scalar conversion gives it, both in
 * the decode kernel (N = 8) and the packed one (N = 72, rows 8.. of x zero). */
static void every_half_value_converts_exactly(void **state) {
  fixture *f = *state;
  const int k = 8, m = 8192, nmax = 72;
  uint16_t *w = malloc((size_t)m * k * sizeof *w);
  float *x = calloc((size_t)nmax * k, sizeof *x), *y = malloc((size_t)nmax * m * sizeof *y);
  for (int i = 0; i < k; i++) x[i * k + i] = 1.0f;
  for (int dt = PREFT_F16; dt <= PREFT_BF16; dt++) {
    for (int v = 0; v < m * k; v++) {
      uint16_t h = (uint16_t)v;
      int finite = dt == PREFT_F16 ? (h & 0x7c00) != 0x7c00 : (h & 0x7f80) != 0x7f80;
      w[v] = finite ? h : 0;
    }
    for (int path = 0; path <= (int)preft_cpu_detected(); path++) {
      preft_cpu_limit((preft_cpu_path_kind)path);
      for (int n = 8; n <= nmax; n += nmax - 8) {
        preft_gemm(f->pool3, y, m, x, k, w, (preft_dtype)dt, n, k, m, 0);
        for (int i = 0; i < k; i++)
          for (int j = 0; j < m; j++) {
            float want = preft_load_elem(w, (preft_dtype)dt, (size_t)j * k + i);
            if (!(y[(size_t)i * m + j] == want)) {
              print_error("%s %s n=%d: bits %04x -> %.9g, want %.9g\n", preft_dtype_name((preft_dtype)dt),
                          preft_cpu_path_name((preft_cpu_path_kind)path), n, w[j * k + i],
                          y[(size_t)i * m + j], want);
              fail();
            }
          }
      }
    }
  }
  preft_cpu_limit(PREFT_CPU_N_PATHS - 1);
  free(w), free(x), free(y);
}

static void limiting_the_cpu_path_is_reported_and_undone(void **state) {
  preft_cpu_path_kind detected = preft_cpu_detected();
  preft_cpu_path_kind now = preft_cpu_path(); /* detected, or lower if PREFT_CPU caps it */
  assert_true(now <= detected);
  for (int path = 0; path <= (int)detected; path++) {
    preft_cpu_limit((preft_cpu_path_kind)path);
    assert_true(preft_cpu_path() <= (preft_cpu_path_kind)path);
  }
  preft_cpu_limit(PREFT_CPU_N_PATHS - 1);
  assert_int_equal(preft_cpu_path(), now);
  assert_int_equal(preft_cpu_path_parse("avx2"), PREFT_CPU_AVX2);
  assert_int_equal(preft_cpu_path_parse("sse9"), -1);
  print_message("detected CPU path: %s\n", preft_cpu_path_name(detected));
}

/* preft_gemm_multi: three outputs of different widths and weight types from
 * one x, with and without accumulation, on every path and pool, against the
 * reference of each product (one of them empty: m = 0 is skipped). */
static void gemm_multi_matches_reference_for_each_output(void **state) {
  fixture *f = *state;
  const int n = 19, k = 75, ms[4] = {40, 0, 9, 130};
  const preft_dtype dts[4] = {PREFT_F32, PREFT_F16, PREFT_BF16, PREFT_F16};
  float *x = malloc(sizeof(float) * n * k);
  for (int i = 0; i < n * k; i++) x[i] = test_frand();
  void *w[4];
  float *y[4], *y0[4], *yref[4];
  for (int o = 0; o < 4; o++) {
    w[o] = test_random_weights(dts[o], (size_t)(ms[o] > 0 ? ms[o] : 1) * (size_t)(k));
    size_t len = (size_t)n * (size_t)(ms[o] > 0 ? ms[o] : 1);
    y[o] = malloc(len * sizeof(float)), y0[o] = malloc(len * sizeof(float)),
    yref[o] = malloc(len * sizeof(float));
    for (size_t i = 0; i < len; i++) y0[o][i] = test_frand();
  }
  preft_pool *pools[2] = {f->pool1, f->pool3};
  for (int run = 0; run < 2 * 2 * ((int)preft_cpu_detected() + 1); run++) {
    int pi = run % 2, accumulate = run / 2 % 2;
    preft_cpu_limit((preft_cpu_path_kind)(run / 4));
    preft_gemm_out outs[4];
    for (int o = 0; o < 4; o++) {
      size_t len = (size_t)n * (size_t)(ms[o] > 0 ? ms[o] : 1);
      memcpy(y[o], y0[o], len * sizeof(float));
      memcpy(yref[o], y0[o], len * sizeof(float));
      outs[o] = (preft_gemm_out){y[o], ms[o], w[o], dts[o], ms[o]};
      if (ms[o] > 0) preft_gemm_ref(yref[o], ms[o], x, k, w[o], dts[o], n, k, ms[o], accumulate);
    }
    preft_gemm_multi(pools[pi], x, k, n, k, outs, 4, accumulate);
    for (int o = 0; o < 4; o++) {
      if (ms[o] == 0) {
        assert_memory_equal(y[o], y0[o], (size_t)n * sizeof(float)); /* untouched */
        continue;
      }
      double *scale = magnitude_scales(x, k, w[o], dts[o], y0[o], ms[o], n, k, ms[o], accumulate);
      for (int i = 0; i < n * ms[o]; i++)
        if (!(fabs(y[o][i] - yref[o][i]) <= 1e-5 * scale[i] + 1e-30))
          fail_msg("output %d (%s, m=%d) acc=%d path=%s threads=%d: y[%d]=%.9g want %.9g", o,
                   preft_dtype_name(dts[o]), ms[o], accumulate,
                   preft_cpu_path_name((preft_cpu_path_kind)(run / 4)), preft_pool_size(pools[pi]), i,
                   y[o][i], yref[o][i]);
      free(scale);
    }
  }
  preft_cpu_limit(PREFT_CPU_N_PATHS - 1);
  for (int o = 0; o < 4; o++) free(w[o]), free(y[o]), free(y0[o]), free(yref[o]);
  free(x);
}

/* Decode rows must not depend on what else is in the batch: in the rows
 * regime (up to 48 rows of x for F32 weights, 64 for F16/BF16, every N for
 * vdpbf16ps) each row of x alone gets exactly the bits it gets among 7, on
 * every path, precision and pool (batch-1 decode streams the weight rows
 * one by one on avx512-bf16, the batch walks them in fours). m = 4·12 + 7
 * rows: groups of 12 and a tail; k with a tail past the last 32. */
static void a_row_alone_gets_the_bits_it_gets_in_a_batch(void **state) {
  fixture *f = *state;
  const int n = 7, k = 203, m = 55;
  const preft_dtype dts[3] = {PREFT_F32, PREFT_F16, PREFT_BF16};
  float *x = malloc(sizeof(float) * n * k), *yb = malloc(sizeof(float) * n * m),
        *y1 = malloc(sizeof(float) * m);
  for (int i = 0; i < n * k; i++) x[i] = test_frand();
  preft_pool *pools[2] = {f->pool1, f->pool3};
  for (int d = 0; d < 3; d++) {
    void *w = test_random_weights(dts[d], (size_t)m * (size_t)k);
    for (int run = 0; run < 2 * 2 * ((int)preft_cpu_detected() + 1); run++) {
      int pi = run % 2, prec = run / 2 % 2, path = run / 4;
      preft_cpu_limit((preft_cpu_path_kind)path);
      preft_matmul_set_precision((preft_matmul_precision)prec);
      preft_gemm(pools[pi], yb, m, x, k, w, dts[d], n, k, m, 0);
      for (int i = 0; i < n; i++) {
        preft_gemm(pools[pi], y1, m, x + (size_t)i * k, k, w, dts[d], 1, k, m, 0);
        if (memcmp(y1, yb + (size_t)i * m, sizeof(float) * m) != 0)
          fail_msg("%s path=%s precision=%s threads=%d: row %d of x alone differs from the batch",
                   preft_dtype_name(dts[d]), preft_cpu_path_name((preft_cpu_path_kind)path),
                   preft_matmul_precision_name((preft_matmul_precision)prec), preft_pool_size(pools[pi]), i);
      }
    }
    free(w);
  }
  preft_cpu_limit(PREFT_CPU_N_PATHS - 1);
  preft_matmul_set_precision(PREFT_MATMUL_EXACT);
  free(x), free(yb), free(y1);
}

/* Decode on a pool (N <= 4) runs the outputs of one call as ranges laid
 * end to end, cut anywhere on a multiple of 12 and balanced between the
 * threads: each output must get exactly the bits it gets alone on one
 * thread, for outputs whose widths are not multiples of 12, mixed weight
 * types, both precisions and every path (a cut off by one row group of
 * any kernel, or a row computed twice with accumulation, fails it). */
static void decode_outputs_on_a_pool_get_the_bits_of_each_alone(void **state) {
  fixture *f = *state;
  const int k = 256, ms[4] = {203, 37, 37, 500};
  const preft_dtype dts[4] = {PREFT_F32, PREFT_BF16, PREFT_F16, PREFT_BF16};
  float *x = malloc(sizeof(float) * 4 * k);
  for (int i = 0; i < 4 * k; i++) x[i] = test_frand();
  void *w[4];
  float *y[4], *y1[4], *y0[4];
  for (int o = 0; o < 4; o++) {
    w[o] = test_random_weights(dts[o], (size_t)ms[o] * (size_t)k);
    y[o] = malloc(sizeof(float) * 4 * ms[o]), y1[o] = malloc(sizeof(float) * 4 * ms[o]);
    y0[o] = malloc(sizeof(float) * 4 * ms[o]);
    for (int i = 0; i < 4 * ms[o]; i++) y0[o][i] = test_frand();
  }
  for (int run = 0; run < 4 * 2 * 2 * ((int)preft_cpu_detected() + 1); run++) {
    const int n = run % 4 + 1, prec = run / 4 % 2, accumulate = run / 8 % 2, path = run / 16;
    preft_cpu_limit((preft_cpu_path_kind)path);
    preft_matmul_set_precision((preft_matmul_precision)prec);
    preft_gemm_out outs[4];
    for (int o = 0; o < 4; o++) {
      memcpy(y[o], y0[o], sizeof(float) * (size_t)(n * ms[o]));
      memcpy(y1[o], y0[o], sizeof(float) * (size_t)(n * ms[o]));
      outs[o] = (preft_gemm_out){y[o], ms[o], w[o], dts[o], ms[o]};
      preft_gemm(f->pool1, y1[o], ms[o], x, k, w[o], dts[o], n, k, ms[o], accumulate);
    }
    for (int rep = 0; rep < 3; rep++) { /* the threads' timing, and so the cuts, differ between calls */
      for (int o = 0; o < 4; o++) memcpy(y[o], y0[o], sizeof(float) * (size_t)(n * ms[o]));
      preft_gemm_multi(f->pool3, x, k, n, k, outs, 4, accumulate);
      for (int o = 0; o < 4; o++)
        if (memcmp(y[o], y1[o], sizeof(float) * (size_t)(n * ms[o])) != 0)
          fail_msg("output %d (%s, m=%d) n=%d acc=%d path=%s precision=%s: differs from the output alone", o,
                   preft_dtype_name(dts[o]), ms[o], n, accumulate,
                   preft_cpu_path_name((preft_cpu_path_kind)path),
                   preft_matmul_precision_name((preft_matmul_precision)prec));
    }
  }
  preft_cpu_limit(PREFT_CPU_N_PATHS - 1);
  preft_matmul_set_precision(PREFT_MATMUL_EXACT);
  for (int o = 0; o < 4; o++) free(w[o]), free(y[o]), free(y1[o]), free(y0[o]);
  free(x);
}

/* preft_gemm_kmajor reads the weight as wt[K][M] (rows wt_stride apart):
 * against the reference on the [M][K] copy, on every path and pool, odd
 * shapes, padded strides (whose padding must survive) and accumulation;
 * bit for bit preft_gemm on the transposed copy wherever that runs the
 * same pack + tile regime (N above every table's F32 rows limit, 48); and
 * a row of x alone gets the bits it gets in the batch. */
static void kmajor_weights_give_the_bits_of_a_transposed_copy(void **state) {
  fixture *f = *state;
  static const int shapes[][3] = {{1, 7, 5}, {5, 33, 17}, {49, 96, 80}, {70, 300, 45}, {130, 256, 33}};
  const int pad = 3;
  preft_pool *pools[2] = {f->pool1, f->pool3};
  for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
    const int n = shapes[si][0], k = shapes[si][1], m = shapes[si][2], xs = k + pad, ys = m + pad,
              ws = m + pad;
    size_t xlen = (size_t)n * xs, ylen = (size_t)n * ys;
    float *x = malloc(sizeof(float) * xlen), *wt = malloc(sizeof(float) * (size_t)k * ws),
          *w = malloc(sizeof(float) * (size_t)m * k), *y0 = malloc(sizeof(float) * ylen),
          *y = malloc(sizeof(float) * ylen), *yt = malloc(sizeof(float) * ylen),
          *yref = malloc(sizeof(float) * ylen), *y1 = malloc(sizeof(float) * ys);
    for (size_t i = 0; i < xlen; i++) x[i] = test_frand();
    for (int c = 0; c < k; c++)
      for (int j = 0; j < ws; j++) {
        float v = j < m ? test_frand() : SENTINEL; /* padding of wt: never read into y */
        wt[(size_t)c * ws + j] = v;
        if (j < m) w[(size_t)j * k + c] = v;
      }
    for (size_t i = 0; i < ylen; i++) y0[i] = (int)(i % (size_t)ys) >= m ? SENTINEL : test_frand();
    for (int accumulate = 0; accumulate < 2; accumulate++) {
      memcpy(yref, y0, sizeof(float) * ylen);
      preft_gemm_ref(yref, ys, x, xs, w, PREFT_F32, n, k, m, accumulate);
      double *scale = magnitude_scales(x, xs, w, PREFT_F32, y0, ys, n, k, m, accumulate);
      for (int run = 0; run < 2 * ((int)preft_cpu_detected() + 1); run++) {
        int pi = run % 2, path = run / 2;
        preft_cpu_limit((preft_cpu_path_kind)path);
        memcpy(y, y0, sizeof(float) * ylen);
        preft_gemm_kmajor(pools[pi], y, ys, x, xs, wt, ws, n, k, m, accumulate);
        memcpy(yt, y0, sizeof(float) * ylen);
        preft_gemm(pools[pi], yt, ys, x, xs, w, PREFT_F32, n, k, m, accumulate);
        for (int i = 0; i < n; i++) {
          for (int j = 0; j < m; j++) {
            size_t at = (size_t)i * ys + j;
            if (!(fabs(y[at] - yref[at]) <= 1e-5 * scale[(size_t)i * m + j]))
              fail_msg("n=%d k=%d m=%d acc=%d path=%s threads=%d: y[%d,%d]=%.9g want %.9g", n, k, m,
                       accumulate, preft_cpu_path_name((preft_cpu_path_kind)path), preft_pool_size(pools[pi]),
                       i, j, y[at], yref[at]);
          }
          for (int j = m; j < ys; j++) assert_true(y[(size_t)i * ys + j] == SENTINEL);
        }
        if (n > 48 && memcmp(y, yt, sizeof(float) * ylen) != 0)
          fail_msg("n=%d k=%d m=%d path=%s: not the bits of preft_gemm on the transposed copy", n, k, m,
                   preft_cpu_path_name((preft_cpu_path_kind)path));
        for (int i = 0; i < n; i += n / 3 + 1) {
          memcpy(y1, y0 + (size_t)i * ys, sizeof(float) * ys);
          preft_gemm_kmajor(pools[pi], y1, ys, x + (size_t)i * xs, xs, wt, ws, 1, k, m, accumulate);
          if (memcmp(y1, y + (size_t)i * ys, sizeof(float) * m) != 0)
            fail_msg("n=%d k=%d m=%d path=%s: row %d alone differs from the batch", n, k, m,
                     preft_cpu_path_name((preft_cpu_path_kind)path), i);
        }
      }
      free(scale);
    }
    free(x), free(wt), free(w), free(y0), free(y), free(yt), free(yref), free(y1);
  }
  preft_cpu_limit(PREFT_CPU_N_PATHS - 1);
}

/* An output of at most 16 columns takes narrow panels where the table has
 * them (a LoRA's rank-16 shrink on the avx512 path): every column of it
 * must get the bits the same weight row gets in a wider output, on every
 * path, pool, weight type and for the k-major form; n above the rows
 * regime (64), k with a tail past 256. */
static void narrow_outputs_get_the_bits_of_a_wide_one(void **state) {
  fixture *f = *state;
  const int n = 70, k = 300, wide = 45;
  const int narrow[] = {16, 13, 1};
  const preft_dtype dts[3] = {PREFT_F32, PREFT_F16, PREFT_BF16};
  float *x = malloc(sizeof(float) * n * k), *yw = malloc(sizeof(float) * n * wide),
        *yn = malloc(sizeof(float) * n * wide), *wt = malloc(sizeof(float) * k * wide);
  for (int i = 0; i < n * k; i++) x[i] = test_frand();
  preft_pool *pools[2] = {f->pool1, f->pool3};
  for (int d = 0; d < 3; d++) {
    void *w = test_random_weights(dts[d], (size_t)wide * (size_t)k);
    if (dts[d] == PREFT_F32)
      for (int j = 0; j < wide; j++)
        for (int c = 0; c < k; c++) wt[(size_t)c * wide + j] = ((const float *)w)[(size_t)j * k + c];
    for (int run = 0; run < 2 * ((int)preft_cpu_detected() + 1); run++) {
      int pi = run % 2, path = run / 2;
      preft_cpu_limit((preft_cpu_path_kind)path);
      preft_gemm(pools[pi], yw, wide, x, k, w, dts[d], n, k, wide, 0);
      for (int q = 0; q < 3; q++) {
        int m = narrow[q];
        preft_gemm(pools[pi], yn, m, x, k, w, dts[d], n, k, m, 0);
        for (int i = 0; i < n; i++)
          if (memcmp(yn + (size_t)i * m, yw + (size_t)i * wide, sizeof(float) * m) != 0)
            fail_msg("%s path=%s threads=%d m=%d: row %d differs from the wide output's columns",
                     preft_dtype_name(dts[d]), preft_cpu_path_name((preft_cpu_path_kind)path),
                     preft_pool_size(pools[pi]), m, i);
        if (dts[d] != PREFT_F32) continue;
        preft_gemm_kmajor(pools[pi], yn, m, x, k, wt, wide, n, k, m, 0);
        for (int i = 0; i < n; i++)
          if (memcmp(yn + (size_t)i * m, yw + (size_t)i * wide, sizeof(float) * m) != 0)
            fail_msg("kmajor path=%s m=%d: row %d differs from the wide output's columns",
                     preft_cpu_path_name((preft_cpu_path_kind)path), m, i);
      }
    }
    free(w);
  }
  preft_cpu_limit(PREFT_CPU_N_PATHS - 1);
  free(x), free(yw), free(yn), free(wt);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(limiting_the_cpu_path_is_reported_and_undone),
      cmocka_unit_test(f32_gemm_matches_reference),
      cmocka_unit_test(f16_gemm_matches_reference),
      cmocka_unit_test(bf16_gemm_matches_reference),
      cmocka_unit_test(gemm_matches_reference_on_multi_block_shapes),
      cmocka_unit_test(gemm_multi_matches_reference_for_each_output),
      cmocka_unit_test(decode_outputs_on_a_pool_get_the_bits_of_each_alone),
      cmocka_unit_test(a_row_alone_gets_the_bits_it_gets_in_a_batch),
      cmocka_unit_test(kmajor_weights_give_the_bits_of_a_transposed_copy),
      cmocka_unit_test(narrow_outputs_get_the_bits_of_a_wide_one),
      cmocka_unit_test(small_integer_products_are_exact),
      cmocka_unit_test(every_half_value_converts_exactly),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
