/* test_gemm_train.c - the backward-pass products preft_gemm_dx and
 * preft_gemm_dw against their double-accumulating references, on every CPU
 * path, with 1 and 3 threads, odd sizes (both GEMM regimes), padded
 * strides and accumulation; and preft_transpose.
 *
 * The BF16 training products (preft_gemm_bf16, preft_train_gemm*_ at
 * PREFT_MATMUL_BF16) on every path too: vdpbf16ps on AVX512_BF16 CPUs, the
 * emulation through the FP32 kernels below that. Both must equal the exact
 * (double) sum of the products of the BF16-rounded operands up to FP32
 * summation (relative L2 error < 1e-5, as the FP32 products), and must be
 * measurably away from the unrounded product (> 1e-4: BF16 rounding has
 * relative error up to 2^-8 per operand), so a path that skipped the
 * rounding of either operand fails. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/threadpool.h"
#include "tensor/cpu.h"
#include "tensor/dtype.h"
#include "tensor/gemm.h"
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

/* relative L2 distance of got from want */
static double rel_l2(const float *got, const float *want, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    double d = (double)got[i] - want[i];
    num += d * d;
    den += (double)want[i] * want[i];
  }
  return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* a copy of p[n] with every value rounded to BF16 (as FP32) */
static float *rounded(const float *p, size_t n) {
  float *r = malloc(sizeof(float) * n);
  for (size_t i = 0; i < n; i++) r[i] = preft_bf16_to_f32(preft_f32_to_bf16(p[i]));
  return r;
}

static void expect_bf16(const float *got, const float *want_bf16, const float *want_f32, size_t n,
                        const char *what) {
  expect_close(got, want_bf16, n, 1e-5, what);
  double away = rel_l2(got, want_f32, n);
  if (!(away > 1e-4))
    fail_msg("%s: only %.3g from the FP32 product: operands not rounded to BF16?", what, away);
}

/* One shape's operands and the references of its BF16 products: they do
 * not depend on the CPU path or the thread count, so each is computed once
 * and every path and pool is checked against it (the double-accumulating
 * references are most of the test's time, under the sanitizers above all). */
typedef struct {
  int n, m, k, dys, xs, dxs;
  float *dy, *x, *w, *dyr, *xr, *wr;
  uint16_t *wb;
  int acc;            /* the forward's and dx's accumulation */
  float *start;       /* the output's values before the call */
  float *ref, *ref32; /* of the BF16-rounded operands; of the FP32 ones */
} bf16_case;

typedef void (*bf16_check)(preft_pool *pool, const bf16_case *c);

/* check(pool, c) on every path with 1 and 3 threads */
static void on_every_path(preft_pool *pools[2], bf16_check check, const bf16_case *c) {
  for (int path = 0; path <= (int)preft_cpu_detected(); path++) {
    preft_cpu_limit((preft_cpu_path_kind)path);
    assert_int_equal(preft_gemm_bf16_native(), path >= PREFT_CPU_AVX512_BF16);
    for (int p = 0; p < 2; p++) check(pools[p], c);
  }
  preft_cpu_limit(PREFT_CPU_N_PATHS - 1);
}

static float *copy_of(const float *p, size_t n) {
  float *r = malloc(sizeof(float) * n);
  memcpy(r, p, sizeof(float) * n);
  return r;
}

/* forward: y[N,M] (+)= x·Wᵀ, through preft_gemm_bf16 and preft_train_gemm */
static void check_bf16_forward(preft_pool *pool, const bf16_case *c) {
  size_t ny = (size_t)c->n * c->dys;
  float *y = copy_of(c->start, ny), *y2 = copy_of(c->start, ny);
  preft_gemm_bf16(pool, y, c->dys, c->x, c->xs, c->wb, c->n, c->k, c->m, c->acc);
  preft_train_gemm(pool, PREFT_MATMUL_BF16, y2, c->dys, c->x, c->xs, c->w, c->n, c->k, c->m, c->acc);
  for (int i = 0; i < c->n; i++)
    for (int col = c->m; col < c->dys; col++)
      if (y[(size_t)i * c->dys + col] != c->ref[(size_t)i * c->dys + col])
        fail_msg("bf16 y stride padding overwritten");
  expect_bf16(y, c->ref, c->ref32, ny, "gemm_bf16");
  expect_bf16(y2, c->ref, c->ref32, ny, "train_gemm bf16");
  free(y);
  free(y2);
}

/* dx[N,K] (+)= dy·W */
static void check_bf16_dx(preft_pool *pool, const bf16_case *c) {
  size_t ndx = (size_t)c->n * c->dxs;
  float *dx = copy_of(c->start, ndx);
  preft_train_gemm_dx(pool, PREFT_MATMUL_BF16, dx, c->dxs, c->dy, c->dys, c->w, c->n, c->m, c->k, c->acc);
  expect_bf16(dx, c->ref, c->ref32, ndx, "train_gemm_dx bf16");
  free(dx);
}

/* dW[M,K] += dyᵀ·x; then dW and dx in one call (dy read once, rounded into
 * both layouts): the bits of the two calls apart */
static void check_bf16_dw(preft_pool *pool, const bf16_case *c) {
  const int n = c->n, m = c->m, k = c->k;
  size_t nw = (size_t)m * k, ndx = (size_t)n * c->dxs;
  float *dw = copy_of(c->start, nw);
  preft_train_gemm_dw(pool, PREFT_MATMUL_BF16, dw, c->dy, c->dys, c->x, c->xs, n, m, k);
  expect_bf16(dw, c->ref, c->ref32, nw, "train_gemm_dw bf16");
  float *dw2 = copy_of(dw, nw), *dx = rand_buf(ndx), *dx2 = copy_of(dx, ndx);
  preft_train_gemm_dw(pool, PREFT_MATMUL_BF16, dw, c->dy, c->dys, c->x, c->xs, n, m, k);
  preft_train_gemm_dx(pool, PREFT_MATMUL_BF16, dx, c->dxs, c->dy, c->dys, c->w, n, m, k, 1);
  preft_train_gemm_dwdx(pool, PREFT_MATMUL_BF16, dw2, dx2, c->dxs, 1, c->dy, c->dys, c->x, c->xs, c->w, n, m,
                        k);
  if (memcmp(dw, dw2, sizeof(float) * nw) != 0 || memcmp(dx, dx2, sizeof(float) * ndx) != 0)
    fail_msg("train_gemm_dwdx bf16 (n=%d m=%d k=%d) differs from dw and dx apart", n, m, k);
  free(dw);
  free(dw2);
  free(dx);
  free(dx2);
}

/* c's start, ref and ref32 for size values */
static void set_outputs(bf16_case *c, float *start, size_t size) {
  c->start = start;
  c->ref = copy_of(start, size);
  c->ref32 = copy_of(start, size);
}

static void free_outputs(bf16_case *c) {
  free(c->start);
  free(c->ref);
  free(c->ref32);
}

static void check_bf16_shapes(preft_pool *pools[2], int n, int m, int k) {
  bf16_case c = {.n = n, .m = m, .k = k, .dys = m + 3, .xs = k + 3, .dxs = k + 3};
  size_t ndy = (size_t)n * c.dys, nx = (size_t)n * c.xs, nw = (size_t)m * k;
  c.dy = rand_buf(ndy), c.x = rand_buf(nx), c.w = rand_buf(nw);
  c.dyr = rounded(c.dy, ndy), c.xr = rounded(c.x, nx), c.wr = rounded(c.w, nw);
  c.wb = malloc(sizeof(uint16_t) * nw);
  for (size_t i = 0; i < nw; i++) c.wb[i] = preft_f32_to_bf16(c.w[i]);
  for (c.acc = 0; c.acc <= 1; c.acc++) {
    size_t ny = (size_t)n * c.dys;
    set_outputs(&c, rand_buf(ny), ny);
    preft_gemm_bf16_ref(c.ref, c.dys, c.x, c.xs, c.wb, n, k, m, c.acc);
    preft_gemm_ref(c.ref32, c.dys, c.x, c.xs, c.w, PREFT_F32, n, k, m, c.acc);
    on_every_path(pools, check_bf16_forward, &c);
    free_outputs(&c);
  }
  for (c.acc = 0; c.acc <= 1; c.acc++) {
    size_t ndx = (size_t)n * c.dxs;
    set_outputs(&c, rand_buf(ndx), ndx);
    preft_gemm_dx_ref(c.ref, c.dxs, c.dyr, c.dys, c.wr, n, m, k, c.acc);
    preft_gemm_dx_ref(c.ref32, c.dxs, c.dy, c.dys, c.w, n, m, k, c.acc);
    on_every_path(pools, check_bf16_dx, &c);
    free_outputs(&c);
  }
  float *dw = rand_buf(nw);
  for (size_t i = 0; i < nw; i++) dw[i] *= 1e-3f; /* small start: the sum dominates */
  set_outputs(&c, dw, nw);
  preft_gemm_dw_ref(c.ref, c.dyr, c.dys, c.xr, c.xs, n, m, k);
  preft_gemm_dw_ref(c.ref32, c.dy, c.dys, c.x, c.xs, n, m, k);
  on_every_path(pools, check_bf16_dw, &c);
  free_outputs(&c);
  free(c.wb);
  free(c.dy), free(c.x), free(c.w);
  free(c.dyr), free(c.xr), free(c.wr);
}

static void bf16_products_match_rounded_reference(void **state) {
  /* K tails (not multiples of 32), N = 1; dW's row blocks: N above 256
   * (two FP32 blocks), above 1024 (two BF16 blocks, the second's dyᵀ rows
   * padded to 32), and M above 16384 (BF16 blocks of 256 rows) */
  static const int shapes[][3] = {{1, 37, 45},     {5, 33, 17},   {64, 96, 80},
                                  {300, 70, 129},  {517, 48, 40}, {1100, 40, 36},
                                  {300, 16400, 8}, {80, 37, 45},  {20, 70, 45}};
  preft_pool *pools[2] = {preft_pool_create(1), preft_pool_create(3)};
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
    check_bf16_shapes(pools, shapes[s][0], shapes[s][1], shapes[s][2]);
  preft_pool_free(pools[0]);
  preft_pool_free(pools[1]);
}

/* preft_train_gemm_multi gives each output preft_train_gemm's bits, at
 * both precisions, on every path (one job with x rounded once where the
 * CPU has vdpbf16ps, one call per output elsewhere), for N in the rows and
 * the packed regimes and outputs of unequal widths (q, k, v). */
static void train_multi_equals_separate_products(void **state) {
  (void)state;
  static const int ns[] = {3, 70, 300};
  enum { K = 72, M0 = 96, M1 = 40, M2 = 8 };
  const int ms[3] = {M0, M1, M2};
  preft_pool *pool = preft_pool_create(3);
  float *x = rand_buf((size_t)300 * K), *w[3], *y[3], *want[3];
  for (int o = 0; o < 3; o++) {
    w[o] = rand_buf((size_t)ms[o] * K);
    y[o] = malloc(sizeof(float) * 300 * (size_t)ms[o]);
    want[o] = malloc(sizeof(float) * 300 * (size_t)ms[o]);
  }
  for (int path = 0; path <= (int)preft_cpu_detected(); path++) {
    preft_cpu_limit((preft_cpu_path_kind)path);
    for (int prec = 0; prec < 2; prec++)
      for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++) {
        const int n = ns[ni];
        const preft_matmul_precision mp = prec ? PREFT_MATMUL_BF16 : PREFT_MATMUL_EXACT;
        preft_gemm_out outs[3];
        for (int o = 0; o < 3; o++) {
          preft_train_gemm(pool, mp, want[o], ms[o], x, K, w[o], n, K, ms[o], 0);
          outs[o] = (preft_gemm_out){.y = y[o], .y_stride = ms[o], .w = w[o], .wdt = PREFT_F32, .m = ms[o]};
        }
        preft_train_gemm_multi(pool, mp, x, K, n, K, outs, 3);
        for (int o = 0; o < 3; o++)
          if (memcmp(y[o], want[o], sizeof(float) * (size_t)n * (size_t)ms[o]) != 0)
            fail_msg("path %s, %s, n=%d: output %d differs from its own product", preft_cpu_path_name(path),
                     prec ? "bf16" : "fp32", n, o);
      }
  }
  preft_cpu_limit(PREFT_CPU_N_PATHS - 1);
  for (int o = 0; o < 3; o++) free(w[o]), free(y[o]), free(want[o]);
  free(x);
  preft_pool_free(pool);
}

/* preft_gemm_tn and preft_gemm_kmajor_xt (x read k-major out of xᵀ as
 * stored, where the kernels can; else, for the first, blocks of
 * transposed copies) give preft_gemm_kmajor's bits on a transposed copy, for
 * several K blocks, row tails, a narrow output (8 columns: the k-major
 * tile is wide only) and accumulation; paths without it say so. */
static void kmajor_xt_equals_transposed_copy(void **state) {
  (void)state;
  static const int shapes[][3] = {{70, 1100, 45}, {12, 33, 32}, {300, 512, 100}, {40, 60, 8}}; /* n, k, m */
  preft_pool *pool = preft_pool_create(3);
  for (int path = 0; path <= (int)preft_cpu_detected(); path++) {
    preft_cpu_limit((preft_cpu_path_kind)path);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
      const int n = shapes[s][0], k = shapes[s][1], m = shapes[s][2], xts = n + 5;
      float *xt = rand_buf((size_t)k * xts), *wt = rand_buf((size_t)k * m),
            *x = malloc(sizeof(float) * n * k);
      float *y = rand_buf((size_t)n * m), *want = malloc(sizeof(float) * n * m);
      memcpy(want, y, sizeof(float) * n * m);
      for (int i = 0; i < n; i++)
        for (int c = 0; c < k; c++) x[(size_t)i * k + c] = xt[(size_t)c * xts + i];
      float *y2 = malloc(sizeof(float) * n * m);
      memcpy(y2, y, sizeof(float) * n * m);
      preft_gemm_kmajor(pool, want, m, x, k, wt, m, n, k, m, 1);
      preft_gemm_tn(pool, y, m, xt, xts, wt, m, n, k, m, 1); /* k-major, or its blocked transposed copies */
      if (memcmp(y, want, sizeof(float) * n * m) != 0)
        fail_msg("path %s, n=%d k=%d m=%d: gemm_tn differs from the transposed copy's product",
                 preft_cpu_path_name((preft_cpu_path_kind)path), n, k, m);
      if (preft_gemm_kmajor_xt(pool, y2, m, xt, xts, wt, m, n, k, m, 1)) {
        if (memcmp(y2, want, sizeof(float) * n * m) != 0)
          fail_msg("path %s, n=%d k=%d m=%d: kmajor_xt differs from the transposed copy's product",
                   preft_cpu_path_name((preft_cpu_path_kind)path), n, k, m);
      } else if (path >= PREFT_CPU_AVX512_BF16) {
        fail_msg("path %s: no k-major x tile", preft_cpu_path_name((preft_cpu_path_kind)path));
      }
      free(y2);
      free(xt), free(wt), free(x), free(y), free(want);
    }
  }
  preft_cpu_limit(PREFT_CPU_N_PATHS - 1);
  preft_pool_free(pool);
}

/* The BF16 weight gradient's dyᵀ is in the pair layout, and with an odd
 * number of rows vdpbf16ps reads the last pair's second half (against a
 * zero weight), which must be a written zero. Its buffer is reused
 * scratch: a first call whose dy is all infinities leaves infinities where
 * the second call's last half pairs lie, so a half that was not written
 * would make the second gradient NaN. */
static void bf16_dw_padding_is_written(void **state) {
  (void)state;
  enum { M = 40, K = 24, N1 = 64, N2 = 33 };
  preft_pool *pool = preft_pool_create(2);
  float *dy1 = malloc(sizeof(float) * N1 * M), *x1 = rand_buf((size_t)N1 * K),
        *junk = calloc(M * K, sizeof(float));
  for (int i = 0; i < N1 * M; i++) dy1[i] = INFINITY;
  preft_train_gemm_dw(pool, PREFT_MATMUL_BF16, junk, dy1, M, x1, K, N1, M, K);
  float *dy2 = rand_buf((size_t)N2 * M), *x2 = rand_buf((size_t)N2 * K);
  float *dyr = rounded(dy2, (size_t)N2 * M), *xr = rounded(x2, (size_t)N2 * K);
  float *dw = calloc(M * K, sizeof(float)), *ref = calloc(M * K, sizeof(float)),
        *ref32 = calloc(M * K, sizeof(float));
  preft_train_gemm_dw(pool, PREFT_MATMUL_BF16, dw, dy2, M, x2, K, N2, M, K);
  preft_gemm_dw_ref(ref, dyr, M, xr, K, N2, M, K);
  preft_gemm_dw_ref(ref32, dy2, M, x2, K, N2, M, K);
  expect_bf16(dw, ref, ref32, (size_t)M * K, "train_gemm_dw bf16 after a dy of infinities");
  free(dy1);
  free(x1);
  free(junk);
  free(dy2);
  free(x2);
  free(dyr);
  free(xr);
  free(dw);
  free(ref);
  free(ref32);
  preft_pool_free(pool);
}

static void bf16_rounding_is_nearest_even(void **state) {
  /* 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to the even 1; 1 + 3·2^-8 to 1 + 2^-6 */
  float in[4] = {1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, -(1.0f + 0x1p-8f + 0x1p-20f), 3.0f};
  uint16_t t[4], want[4] = {0x3f80, 0x3f82, 0xbf81, 0x4040};
  preft_pool *pool = preft_pool_create(2);
  preft_round_bf16(pool, t, in, 4);
  for (int i = 0; i < 4; i++) assert_int_equal(t[i], want[i]);
  preft_round_pairs_bf16(pool, t, 4, NULL, 0, in, 2, 2, 2); /* rows [a b], [c d] as pairs (a c) (b d) */
  assert_int_equal(t[0], want[0]);
  assert_int_equal(t[1], want[2]);
  assert_int_equal(t[2], want[1]);
  assert_int_equal(t[3], want[3]);
  preft_pool_free(pool);
}

/* FP32 transposes on every path (the 8 × 8 register tiles and the scalar
 * edges: 300 × 259 leaves partial tiles on both sides), the BF16 pair
 * layout with the rows beside it (299 rows: an odd last pair; 259 columns:
 * a 32-column tail and rows padded to 288), and the plain BF16 rounding */
static void transpose_is_exact(void **state) {
  preft_pool *pool = preft_pool_create(2);
  int r = 300, c = 259, s = 263;
  float *in = rand_buf((size_t)r * s), *out = malloc(sizeof(float) * (size_t)r * c);
  const int pr = r - 1, kp = 288; /* the pairs' rows; the rounded rows' length */
  uint16_t *pairs = malloc(sizeof(uint16_t) * (size_t)(pr + 1) * c),
           *rows16 = malloc(sizeof(uint16_t) * pr * kp);
  for (size_t i = 0; i < (size_t)r * s; i += 7) in[i] *= 1.0f + 0x1p-8f; /* some ties and near-ties */
  for (int path = 0; path <= (int)preft_cpu_detected(); path++) {
    preft_cpu_limit((preft_cpu_path_kind)path);
    preft_transpose(pool, out, in, s, r, c);
    memset(rows16, 0xff, sizeof(uint16_t) * pr * kp);
    preft_round_pairs_bf16(pool, pairs, 2 * (size_t)c, rows16, kp, in, s, pr, c);
    for (int i = 0; i < r; i++)
      for (int j = 0; j < c; j++) assert_true(out[(size_t)j * r + i] == in[(size_t)i * s + j]);
    for (int i = 0; i < pr + 1; i++)
      for (int j = 0; j < kp; j++) {
        uint16_t want = i < pr && j < c ? preft_f32_to_bf16(in[(size_t)i * s + j]) : 0;
        if (j < c) assert_int_equal(pairs[(size_t)(i / 2) * 2 * c + 2 * j + i % 2], want);
        if (i < pr) assert_int_equal(rows16[(size_t)i * kp + j], want);
      }
    /* the plain rounding, over several pool tasks and a tail of 4 past 16 */
    size_t n = (size_t)r * s; /* the last task: 417 · 32 + 16 + 4 */
    uint16_t *round16 = malloc(sizeof(uint16_t) * n);
    preft_round_bf16(pool, round16, in, n);
    for (size_t i = 0; i < n; i++)
      if (round16[i] != preft_f32_to_bf16(in[i]))
        fail_msg("path %s: bf16(in[%zu]) = 0x%04x, want 0x%04x",
                 preft_cpu_path_name((preft_cpu_path_kind)path), i, round16[i], preft_f32_to_bf16(in[i]));
    free(round16);
  }
  preft_cpu_limit(PREFT_CPU_N_PATHS - 1);
  free(in);
  free(out);
  free(pairs);
  free(rows16);
  preft_pool_free(pool);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(products_match_reference),
      cmocka_unit_test(transpose_is_exact),
      cmocka_unit_test(bf16_products_match_rounded_reference),
      cmocka_unit_test(bf16_dw_padding_is_written),
      cmocka_unit_test(kmajor_xt_equals_transposed_copy),
      cmocka_unit_test(train_multi_equals_separate_products),
      cmocka_unit_test(bf16_rounding_is_nearest_even),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
