/* test_quant.c - the quantized formats (tensor/quant.h) against independent
 * references:
 *  - hand-made blocks of every type, packed here from the layouts ggml
 *    documents, whose values are known: row and element dequantization
 *    must give them exactly;
 *  - the reference dot products against double sums of the dequantized
 *    weights and activations;
 *  - quantization error bounds of every quantizer;
 *  - every kernel table this CPU runs (portable, avx2, avx-vnni,
 *    avx512-vnni), on 1 and 3 threads, odd shapes, padded strides and
 *    accumulation, against the single-threaded reference product;
 *  - preft_gemm / preft_gemm_multi routing quantized weights there;
 *  - the backward for x against a double loop over the dequantized weights.
 * The bytes of ggml's quantizers and dequantizers on random data are
 * checked in test_quant_golden.c. */
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
#include "tensor/gemm.h"
#include "tensor/quant.h"
#include "tensor/quant_kern.h"
#include "testutil.h"

/* the file types, then the X4 layouts of Q4_0 and Q5_0 and the R4 layout
 * of Q4_K (quant.h) */
static const preft_dtype QTYPES[] = {PREFT_Q8_0, PREFT_Q4_0,    PREFT_Q5_0,    PREFT_Q4_K,
                                     PREFT_Q6_K, PREFT_Q4_0_X4, PREFT_Q5_0_X4, PREFT_Q4_K_R4};
#define N_QTYPES 8

/* Rows of a matrix of type t: m, or the next multiple of 4 (R4). */
static int matrix_rows(preft_dtype t, int m) { return preft_dtype_is_r4(t) ? (m + 3) / 4 * 4 : m; }

/* Row j of a matrix w of type t and rows of k values. */
static unsigned char *row_of(preft_dtype t, unsigned char *w, int k, int j) {
  return w + preft_dtype_row_offset(t, preft_dtype_row_bytes(t, (size_t)k), (size_t)j);
}

static uint16_t h(float f) { return preft_f32_to_f16(f); }

static void check_row(preft_dtype t, const void *blocks, const float *want, size_t n) {
  float *got = malloc(n * sizeof *got);
  preft_dequantize_row(t, blocks, got, n);
  for (size_t i = 0; i < n; i++) {
    if (got[i] != want[i]) fail_msg("%s value %zu: got %g, want %g", preft_dtype_name(t), i, got[i], want[i]);
    float e = preft_load_elem(blocks, t, i);
    if (e != want[i]) fail_msg("%s element %zu: got %g, want %g", preft_dtype_name(t), i, e, want[i]);
  }
  free(got);
}

static void test_hand_made_q8_0_q4_0_q5_0(void **state) {
  (void)state;
  preft_block_q8_0 b8[2];
  float want[64];
  for (int i = 0; i < 2; i++) {
    b8[i].d = h(i ? 0.5f : -2.0f);
    for (int j = 0; j < 32; j++) {
      b8[i].qs[j] = (int8_t)(j * 8 - 128 + i);
      want[32 * i + j] = (float)(j * 8 - 128 + i) * (i ? 0.5f : -2.0f);
    }
  }
  check_row(PREFT_Q8_0, b8, want, 64);

  /* Q4_0: byte j holds value j (low nibble) and value j+16 (high) */
  preft_block_q4_0 b4;
  b4.d = h(0.25f);
  for (int j = 0; j < 16; j++) {
    b4.qs[j] = (uint8_t)(j | ((15 - j) << 4));
    want[j] = (float)(j - 8) * 0.25f;
    want[j + 16] = (float)(7 - j) * 0.25f;
  }
  check_row(PREFT_Q4_0, &b4, want, 32);

  /* Q5_0: bit j of the little-endian qh is value j's fifth bit */
  preft_block_q5_0 b5;
  b5.d = h(-1.5f);
  uint32_t qh = 0;
  for (int v = 0; v < 32; v++) {
    int q = (v * 11 + 3) % 32;
    if (q & 16) qh |= 1u << v;
    if (v < 16)
      b5.qs[v] = (uint8_t)(q & 15);
    else
      b5.qs[v - 16] |= (uint8_t)((q & 15) << 4);
    want[v] = (float)(q - 16) * -1.5f;
  }
  b5.qh[0] = (uint8_t)qh, b5.qh[1] = (uint8_t)(qh >> 8), b5.qh[2] = (uint8_t)(qh >> 16),
  b5.qh[3] = (uint8_t)(qh >> 24);
  check_row(PREFT_Q5_0, &b5, want, 32);
}

/* Q4_K's 12 scale bytes: bytes 0-3 scales 0-3 (6 bits) with the top 2 bits
 * of scales 4-7 above; bytes 4-7 the same for the mins; bytes 8-11 the low
 * 4 bits of scales 4-7 (low nibble) and mins 4-7 (high nibble). */
static void pack_q4_K_scales(uint8_t out[12], const int sc[8], const int mn[8]) {
  for (int j = 0; j < 4; j++) {
    out[j] = (uint8_t)(sc[j] | ((sc[j + 4] >> 4) << 6));
    out[j + 4] = (uint8_t)(mn[j] | ((mn[j + 4] >> 4) << 6));
    out[j + 8] = (uint8_t)((sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4));
  }
}

static void test_hand_made_q4_K(void **state) {
  (void)state;
  preft_block_q4_K b;
  b.d = h(0.5f);
  b.dmin = h(0.125f);
  int sc[8], mn[8];
  for (int s = 0; s < 8; s++) sc[s] = 63 - 7 * s, mn[s] = 5 * s + (s > 3 ? 20 : 0);
  pack_q4_K_scales(b.scales, sc, mn);
  /* values 64c..64c+31 are the low nibbles of qs[32c..32c+31], the next 32
   * the high nibbles: sub-block s = value / 32 */
  int q[256];
  for (int v = 0; v < 256; v++) q[v] = (v * 7 + v / 32) % 16;
  for (int c = 0; c < 4; c++)
    for (int l = 0; l < 32; l++) b.qs[32 * c + l] = (uint8_t)(q[64 * c + l] | (q[64 * c + 32 + l] << 4));
  float want[256];
  for (int v = 0; v < 256; v++) {
    int s = v / 32;
    float d1 = 0.5f * (float)sc[s], m1 = 0.125f * (float)mn[s];
    want[v] = d1 * (float)q[v] - m1;
  }
  check_row(PREFT_Q4_K, &b, want, 256);
}

static void test_hand_made_q6_K(void **state) {
  (void)state;
  preft_block_q6_K b;
  memset(&b, 0, sizeof b);
  b.d = h(0.03125f);
  for (int s = 0; s < 16; s++) b.scales[s] = (int8_t)(s * 9 - 70);
  /* value v = 128n + 32p + l: low 4 bits in ql[64n + l + 32(p&1)] (low
   * nibble for p < 2, high for p >= 2), high 2 bits in qh[32n + l] at bit
   * 2p; sub-block (scale) v / 16 */
  int q[256];
  for (int v = 0; v < 256; v++) {
    q[v] = (v * 37 + 11) % 64;
    int n = v / 128, p = (v % 128) / 32, l = v % 32;
    uint8_t *lo = &b.ql[64 * n + l + 32 * (p & 1)];
    *lo |= (uint8_t)(p < 2 ? (q[v] & 15) : (q[v] & 15) << 4);
    b.qh[32 * n + l] |= (uint8_t)((q[v] >> 4) << (2 * p));
  }
  float want[256];
  for (int v = 0; v < 256; v++) want[v] = 0.03125f * (float)b.scales[v / 16] * (float)(q[v] - 32);
  check_row(PREFT_Q6_K, &b, want, 256);
}

/* A row of n values with a spread of magnitudes per block. */
static void fill_row(float *x, int n) {
  for (int i = 0; i < n; i++)
    x[i] = test_frand() * (1.0f + (float)((i / 32) % 5)) + (i % 97 == 0 ? 3.0f : 0.0f);
}

static void test_quantize_error_bounds(void **state) {
  (void)state;
  enum { K = 1024 };
  float x[K], y[K];
  unsigned char q[K * 3]; /* a row of R4 spreads over its group's K / 256 · 576 bytes */
  /* largest error relative to the block's largest magnitude (Q4_0 and Q5_0
   * clip the value opposite the extreme one at 7 d resp. 15 d: 1/8, 1/16) */
  const double bound[N_QTYPES] = {
      0.5 / 127 + 1e-3, 1.0 / 8 + 1e-3, 1.0 / 16 + 1e-3, 0.12, 0.04, 1.0 / 8 + 1e-3, 1.0 / 16 + 1e-3, 0.12};
  for (int ti = 0; ti < N_QTYPES; ti++) {
    preft_dtype t = QTYPES[ti];
    int bs = (int)preft_dtype_block(t);
    for (int rep = 0; rep < 3; rep++) {
      fill_row(x, K);
      if (rep == 2) memset(x + bs, 0, (size_t)bs * sizeof(float)); /* an all-zero block */
      preft_quantize_row(t, x, q, K);
      preft_dequantize_row(t, q, y, K);
      for (int b = 0; b < K / bs; b++) {
        double amax = 0, emax = 0;
        for (int i = b * bs; i < (b + 1) * bs; i++) {
          amax = fmax(amax, fabs(x[i]));
          emax = fmax(emax, fabs((double)x[i] - y[i]));
        }
        if (amax == 0) {
          assert_true(emax == 0);
          continue;
        }
        if (emax > bound[ti] * amax)
          fail_msg("%s block %d: error %g > %g of max %g", preft_dtype_name(t), b, emax, bound[ti], amax);
      }
    }
  }
}

/* Activations: Q8_0 is a weight format too; Q8_K values are d * q. */
static void dequant_act(preft_qact a, const void *xq, double *out, int k) {
  if (a == PREFT_QACT_Q8_0) {
    float *tmp = malloc((size_t)k * sizeof *tmp);
    preft_dequantize_row(PREFT_Q8_0, xq, tmp, (size_t)k);
    for (int i = 0; i < k; i++) out[i] = tmp[i];
    free(tmp);
    return;
  }
  const preft_block_q8_K *b = xq;
  for (int i = 0; i < k; i++) {
    out[i] = (double)b[i / 256].d * b[i / 256].qs[i % 256];
    int s = 0;
    if (i % 16 == 0) { /* bsums */
      for (int j = 0; j < 16; j++) s += b[i / 256].qs[i % 256 + j];
      assert_int_equal(s, b[i / 256].bsums[(i % 256) / 16]);
    }
  }
}

static void test_dot_reference(void **state) {
  (void)state;
  enum { K = 768 };
  float w[K], x[K], wd[K];
  unsigned char wq[K * 3], xq[K * 2]; /* a row of R4 spreads over its group's K / 256 · 576 bytes */
  double xd[K];
  for (int ti = 0; ti < N_QTYPES; ti++) {
    preft_dtype t = QTYPES[ti];
    preft_qact a = preft_quant_act_of(t);
    for (int rep = 0; rep < 4; rep++) {
      fill_row(w, K);
      fill_row(x, K);
      preft_quantize_row(t, w, wq, K);
      preft_quantize_act_rows(a, xq, 0, x, 0, 1, K);
      preft_dequantize_row(t, wq, wd, K);
      dequant_act(a, xq, xd, K);
      double want = 0, mag = 0;
      for (int i = 0; i < K; i++) want += (double)wd[i] * xd[i], mag += fabs((double)wd[i] * xd[i]);
      float got = preft_quant_dot_ref(t, wq, xq, K);
      if (fabs(got - want) > 1e-5 * mag)
        fail_msg("%s dot: got %.9g, want %.9g (magnitude %g)", preft_dtype_name(t), got, want, mag);
    }
  }
}

/* Random weights [m, k] of type t (quantized from random floats; R4: m a
 * multiple of 4). */
static unsigned char *random_qweights(preft_dtype t, int m, int k) {
  size_t row = preft_dtype_row_bytes(t, (size_t)k);
  unsigned char *w = malloc(row * (size_t)m);
  float *tmp = malloc((size_t)k * sizeof *tmp);
  for (int j = 0; j < m; j++) {
    fill_row(tmp, k);
    preft_quantize_row(t, tmp, row_of(t, w, k, j), (size_t)k);
  }
  free(tmp);
  return w;
}

#define SENTINEL 12345.0f

/* preft_qgemm with the kernels capped at `level` against preft_qgemm_ref. */
static void check_qgemm(preft_pool *pool, preft_dtype t, int n, int k, int m, int pad, int accumulate) {
  unsigned char *w = random_qweights(t, m, k);
  int xs = k + pad, ys = m + pad;
  float *x = malloc((size_t)n * xs * sizeof *x), *y = malloc((size_t)n * ys * sizeof *y);
  float *yr = malloc((size_t)n * ys * sizeof *yr), *y0 = malloc((size_t)n * ys * sizeof *y0);
  for (int i = 0; i < n; i++) {
    fill_row(x + (size_t)i * xs, k);
    for (int j = 0; j < ys; j++) y0[(size_t)i * ys + j] = j < m ? test_frand() : SENTINEL;
  }
  memcpy(yr, y0, (size_t)n * ys * sizeof *y0);
  preft_qgemm_ref(yr, ys, x, xs, w, t, n, k, m, accumulate);
  /* magnitude of each dot: sum |w||x| bounded by the row norms */
  double *wn = malloc((size_t)m * sizeof *wn);
  float *wr = malloc((size_t)k * sizeof *wr);
  for (int j = 0; j < m; j++) {
    preft_dequantize_row(t, row_of(t, w, k, j), wr, (size_t)k);
    double s = 0;
    for (int p = 0; p < k; p++) s += (double)wr[p] * wr[p];
    wn[j] = sqrt(s);
  }
  for (int run = 0; run < 8; run++) {
    /* every table, with the tile kernels from their default N and from N = 1 */
    int level = run / 2;
    const preft_quant_kernels *kt = preft_quant_kernels_at(level);
    if (!kt) continue;
    preft_qgemm_limit(level);
    preft_qgemm_tile_min_n(run % 2 ? 1 : PREFT_QTILE_MIN_N);
    memcpy(y, y0, (size_t)n * ys * sizeof *y0);
    preft_qgemm(pool, y, ys, x, xs, w, t, n, k, m, accumulate);
    for (int i = 0; i < n; i++) {
      double xn = 0;
      for (int p = 0; p < k; p++) xn += (double)x[(size_t)i * xs + p] * x[(size_t)i * xs + p];
      xn = sqrt(xn);
      for (int j = 0; j < ys; j++) {
        float g = y[(size_t)i * ys + j], r = yr[(size_t)i * ys + j];
        if (j >= m) {
          if (g != SENTINEL)
            fail_msg("%s %s: padding y[%d,%d] overwritten", kt->name, preft_dtype_name(t), i, j);
          continue;
        }
        double tol = 2e-6 * (wn[j] * xn * 1.01 + fabs(y0[(size_t)i * ys + j])) + 1e-6;
        /* the AVX512-VNNI tiles of 16 rows (quant_tile16.c) and its
         * K-quant rows kernels (quant_rows512.c) give the reference's bits:
         * exact integer sums, its FP32 steps in order */
        int tile16 = level == 3 && n >= (run % 2 ? 1 : PREFT_QTILE_MIN_N) && j < m / 16 * 16;
        int exact = tile16 || (level == 3 && preft_dtype_block(t) == PREFT_QK_K);
        if (exact && memcmp(&g, &r, sizeof g) != 0)
          fail_msg("%s %s n=%d k=%d m=%d acc=%d: y[%d,%d] = %.9g, reference %.9g (bit-exact expected)",
                   kt->name, preft_dtype_name(t), n, k, m, accumulate, i, j, g, r);
        if (fabs((double)g - r) > tol)
          fail_msg("%s %s n=%d k=%d m=%d acc=%d tiles from N=%d: y[%d,%d] = %.9g, reference %.9g", kt->name,
                   preft_dtype_name(t), n, k, m, accumulate, run % 2 ? 1 : PREFT_QTILE_MIN_N, i, j, g, r);
      }
    }
    /* the rows kernels: a row of x alone (decode) gives the bits it gets
     * in the batch */
    if (run % 2 == 0 && n > 1 && n < PREFT_QTILE_MIN_N) {
      float *y1 = malloc((size_t)ys * sizeof *y1);
      for (int i = 0; i < n; i++) {
        memcpy(y1, y0 + (size_t)i * ys, (size_t)ys * sizeof *y1);
        preft_qgemm(pool, y1, ys, x + (size_t)i * xs, xs, w, t, 1, k, m, accumulate);
        if (memcmp(y1, y + (size_t)i * ys, (size_t)m * sizeof *y1) != 0)
          fail_msg("%s %s n=%d k=%d m=%d acc=%d: row %d alone differs from its bits in the batch", kt->name,
                   preft_dtype_name(t), n, k, m, accumulate, i);
      }
      free(y1);
    }
  }
  preft_qgemm_limit(3);
  preft_qgemm_tile_min_n(PREFT_QTILE_MIN_N);
  free(w), free(x), free(y), free(yr), free(y0), free(wn), free(wr);
}

static void test_qgemm_kernels(void **state) {
  (void)state;
  preft_pool *p1 = preft_pool_create(1), *p3 = preft_pool_create(3);
  /* small N: the rows kernels; N >= PREFT_QTILE_MIN_N (and every N in a
   * second run): the tile kernels (Q8_0, Q4_0, Q5_0, Q4_K), with M past a
   * multiple of 8 (16 on AVX512-VNNI) left to the rows kernels */
  static const int shapes[][3] = {{1, 512, 37},   {2, 768, 13},  {3, 256, 70},  {5, 1024, 9},
                                  {7, 512, 33},   {70, 256, 21}, {9, 512, 40},  {16, 768, 24},
                                  {12, 1024, 17}, {8, 256, 8},   {33, 512, 48}, {20, 768, 35}};
  for (int ti = 0; ti < N_QTYPES; ti++)
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
      for (int acc = 0; acc < 2; acc++) {
        preft_pool *pool = (s + (size_t)acc) % 2 ? p3 : p1;
        check_qgemm(pool, QTYPES[ti], shapes[s][0], shapes[s][1], matrix_rows(QTYPES[ti], shapes[s][2]),
                    (int)s % 3, acc);
      }
  /* an odd number of blocks of 32 (the kernels that take two at a time),
   * and K past what their x layout keeps on the stack (4896: 153 blocks) */
  static const preft_dtype b32[] = {PREFT_Q8_0, PREFT_Q4_0, PREFT_Q5_0};
  for (int ti = 0; ti < 3; ti++) {
    check_qgemm(p1, b32[ti], 1, 96, 11, 1, 0);
    check_qgemm(p3, b32[ti], 6, 864, 19, 0, 1);
    check_qgemm(p1, b32[ti], 5, 4896, 7, 0, 1);
  }
  preft_pool_free(p1);
  preft_pool_free(p3);
}

/* preft_gemm_multi with quantized and FP32 outputs mixed: each output as
 * preft_qgemm / preft_gemm alone gives it, and the quantized product close
 * to the FP32 product of the dequantized weights (activation rounding). */
static void test_gemm_routes_quantized(void **state) {
  (void)state;
  enum { N = 4, K = 512, M = 24 };
  preft_pool *pool = preft_pool_create(3);
  float x[N * K];
  for (int i = 0; i < N; i++) fill_row(x + i * K, K);
  unsigned char *wq = random_qweights(PREFT_Q4_K, M, K), *w8 = random_qweights(PREFT_Q8_0, M, K);
  float *wf = test_random_weights(PREFT_F32, (size_t)M * K);
  float y1[N * M], y2[N * M], y3[N * M], a1[N * M], a2[N * M], a3[N * M];
  preft_gemm_out outs[3] = {
      {y1, M, wq, PREFT_Q4_K, M}, {y2, M, wf, PREFT_F32, M}, {y3, M, w8, PREFT_Q8_0, M}};
  preft_gemm_multi(pool, x, K, N, K, outs, 3, 0);
  preft_qgemm(pool, a1, M, x, K, wq, PREFT_Q4_K, N, K, M, 0);
  preft_gemm(pool, a2, M, x, K, wf, PREFT_F32, N, K, M, 0);
  preft_qgemm(pool, a3, M, x, K, w8, PREFT_Q8_0, N, K, M, 0);
  assert_memory_equal(y1, a1, sizeof y1);
  assert_memory_equal(y2, a2, sizeof y2);
  assert_memory_equal(y3, a3, sizeof y3);
  /* against FP32 x times the dequantized weights (preft_gemm_ref reads them
   * element by element) */
  double want[N * M];
  float r[N * M];
  preft_gemm_ref(r, M, x, K, wq, PREFT_Q4_K, N, K, M, 0);
  for (int i = 0; i < N * M; i++) want[i] = r[i];
  double e = test_rel_l2(y1, want, N * M);
  if (e > 0.01) fail_msg("Q4_K product vs FP32 x: relative L2 %g", e);
  preft_gemm_ref(r, M, x, K, w8, PREFT_Q8_0, N, K, M, 0);
  for (int i = 0; i < N * M; i++) want[i] = r[i];
  e = test_rel_l2(y3, want, N * M);
  if (e > 0.01) fail_msg("Q8_0 product vs FP32 x: relative L2 %g", e);
  free(wq), free(w8), free(wf);
  preft_pool_free(pool);
}

/* preft_qgemm_multi of several quantized outputs of different types (one
 * pool job, the quantized x shared): every output as preft_qgemm gives it
 * alone, bit for bit, for every N up to 4 and pools of 1-7 threads (K
 * large enough that N = 1 goes to the pool too: decode's tasks cross from
 * one output into the next, at rows no kernel group starts at). */
static void test_qgemm_multi_mixed_types(void **state) {
  (void)state;
  enum { K = 1024, NMAX = 4 };
  static const preft_dtype types[3] = {PREFT_Q5_0_X4, PREFT_Q4_K, PREFT_Q8_0};
  static const int ms[3] = {70, 5, 37};
  float x[NMAX * K];
  for (int i = 0; i < NMAX; i++) fill_row(x + i * K, K);
  unsigned char *w[3];
  float *y[3], *want[3];
  for (int o = 0; o < 3; o++) {
    w[o] = random_qweights(types[o], ms[o], K);
    y[o] = malloc(sizeof(float) * NMAX * (size_t)ms[o]);
    want[o] = malloc(sizeof(float) * NMAX * (size_t)ms[o]);
  }
  for (int threads = 1; threads <= 7; threads += 2) {
    preft_pool *pool = preft_pool_create(threads);
    for (int n = 1; n <= NMAX; n++)
      for (int first = 0; first < 3; first++) { /* outputs in three orders */
        preft_gemm_out outs[3];
        for (int i = 0; i < 3; i++) {
          const int o = (first + i) % 3;
          outs[i] = (preft_gemm_out){.y = y[o], .y_stride = ms[o], .w = w[o], .wdt = types[o], .m = ms[o]};
          preft_qgemm(pool, want[o], ms[o], x, K, w[o], types[o], n, K, ms[o], 0);
        }
        for (int o = 0; o < 3; o++) memset(y[o], 0xFF, sizeof(float) * NMAX * (size_t)ms[o]);
        preft_qgemm_multi(pool, x, K, n, K, outs, 3, 0);
        for (int o = 0; o < 3; o++)
          if (memcmp(y[o], want[o], sizeof(float) * (size_t)n * (size_t)ms[o]) != 0)
            fail_msg("%d threads, n=%d, order %d: output %s differs from its product alone", threads, n,
                     first, preft_dtype_name(types[o]));
      }
    preft_pool_free(pool);
  }
  for (int o = 0; o < 3; o++) free(w[o]), free(y[o]), free(want[o]);
}

static void test_qgemm_dx(void **state) {
  (void)state;
  preft_pool *p1 = preft_pool_create(1), *p3 = preft_pool_create(3);
  static const int shapes[][3] = {{1, 7, 512}, {5, 33, 768}, {40, 20, 1280}, {9, 17, 256}};
  for (int ti = 0; ti < N_QTYPES; ti++)
    for (size_t s = 0; s < 4; s++)
      for (int acc = 0; acc < 2; acc++) {
        preft_dtype t = QTYPES[ti];
        int n = shapes[s][0], m = matrix_rows(t, shapes[s][1]), k = shapes[s][2], pad = (int)s;
        unsigned char *w = random_qweights(t, m, k);
        int dxs = k + pad, dys = m + pad;
        float *dy = malloc((size_t)n * dys * sizeof *dy), *dx = malloc((size_t)n * dxs * sizeof *dx);
        float *dx0 = malloc((size_t)n * dxs * sizeof *dx0);
        for (int i = 0; i < n * dys; i++) dy[i] = test_frand();
        for (int i = 0; i < n * dxs; i++) dx0[i] = test_frand();
        for (int level = 0; level <= 3; level++) {
          const preft_quant_kernels *kt = preft_quant_kernels_at(level);
          if (!kt) continue;
          preft_qgemm_limit(level);
          memcpy(dx, dx0, (size_t)n * dxs * sizeof *dx);
          preft_qgemm_dx((s + (size_t)level) % 2 ? p3 : p1, dx, dxs, dy, dys, w, t, n, m, k, acc);
          for (int i = 0; i < n; i++)
            for (int c = 0; c < dxs; c++) {
              float g = dx[(size_t)i * dxs + c];
              if (c >= k) {
                assert_true(g == dx0[(size_t)i * dxs + c]);
                continue;
              }
              double want = acc ? dx0[(size_t)i * dxs + c] : 0, mag = fabs(want);
              for (int j = 0; j < m; j++) {
                double p =
                    (double)dy[(size_t)i * dys + j] * preft_load_elem(row_of(t, w, k, j), t, (size_t)c);
                want += p, mag += fabs(p);
              }
              if (fabs(g - want) > 1e-5 * mag + 1e-6)
                fail_msg("%s dx %s n=%d m=%d k=%d: dx[%d,%d] = %.9g, want %.9g", kt->name,
                         preft_dtype_name(t), n, m, k, i, c, g, want);
            }
        }
        preft_qgemm_limit(3);
        free(w), free(dy), free(dx), free(dx0);
      }
  preft_pool_free(p1);
  preft_pool_free(p3);
}

/* Every table's dequantizer (the backward's tiles) gives the reference's
 * values bit for bit, on quantized rows and on random bytes with finite
 * scales. */
static void test_table_dequant(void **state) {
  (void)state;
  enum { K = 1024 };
  float x[K], want[K], got[K];
  unsigned char q[K * 3]; /* a row of R4 spreads over its group's K / 256 · 576 bytes */
  for (int ti = 0; ti < N_QTYPES; ti++) {
    preft_dtype t = QTYPES[ti];
    /* a row's extent: its blocks lie a stride apart (R4: spread over their groups) */
    size_t bb = preft_dtype_block_bytes(t), stride = preft_dtype_block_stride(t);
    size_t bytes = K / preft_dtype_block(t) * stride;
    for (int rep = 0; rep < 2; rep++) {
      if (rep == 0) {
        fill_row(x, K);
        preft_quantize_row(t, x, q, K);
      } else {
        for (size_t i = 0; i < bytes; i++) q[i] = (unsigned char)((test_frand() + 1) * 128);
        for (size_t b = 0; b < K / preft_dtype_block(t); b++) { /* finite fp16 scales */
          uint16_t d = h(test_frand() * 0.1f);
          if (preft_dtype_is_x4(t)) { /* an X4 group's four d, its last 8 bytes */
            for (int i = 0; i < 4; i++)
              d = h(test_frand() * 0.1f), memcpy(q + b * stride + bb - 8 + 2 * i, &d, 2);
            continue;
          }
          memcpy(q + b * stride + (t == PREFT_Q6_K ? 208 : 0), &d, 2); /* R4: the head is where ggml's is */
          if (preft_dtype_stored(t) == PREFT_Q4_K) memcpy(q + b * stride + 2, &d, 2);
        }
      }
      preft_dequantize_row(t, q, want, K);
      for (int level = 0; level <= 3; level++) {
        const preft_quant_kernels *kt = preft_quant_kernels_at(level);
        if (!kt) continue;
        memset(got, 0xff, sizeof got);
        kt->dequant(t, q, got, K);
        for (int i = 0; i < K; i++)
          if (memcmp(&got[i], &want[i], 4) != 0)
            fail_msg("%s dequant %s value %d: %.9g, reference %.9g", kt->name, preft_dtype_name(t), i, got[i],
                     want[i]);
      }
    }
  }
}

/* Every table's activation quantizer writes the reference's bytes: random
 * rows, rows of halves (x · id lands on .5: the rounding of ties), equal
 * magnitudes of both signs (Q8_K keeps the first one's sign), zero blocks
 * and a lone value. */
static void test_table_quantize_act(void **state) {
  (void)state;
  enum { K = 1024, N = 6 };
  static float x[N * K];
  static unsigned char want[N * K * 2], got[N * K * 2];
  for (int rep = 0; rep < 8; rep++) {
    for (int i = 0; i < N * K; i++) {
      switch (rep % 4) {
        case 0:
          x[i] = test_frand() * (float)(1 + i % 7);
          break;
        case 1: /* amax 127 in each block: x · id = x, halves are ties */
          x[i] = (i % 32 == 0) ? 127.0f : (float)((i * 7) % 255 - 127) + 0.5f * (float)(i % 2);
          break;
        case 2: /* magnitudes repeat with both signs */
          x[i] = (float)((i % 5) - 2) * 0.25f;
          break;
        default: /* zero blocks and a lone value */
          x[i] = (i / 256) % 2 ? 0.0f : (i % 97 == 3 ? -3.0f : 0.0f);
      }
    }
    for (int a = 0; a < 2; a++) {
      const preft_qact act = a ? PREFT_QACT_Q8_K : PREFT_QACT_Q8_0;
      const size_t row = preft_qact_row_bytes(act, K);
      preft_quantize_act_rows(act, want, row, x, K, N, K);
      for (int level = 0; level <= 3; level++) {
        const preft_quant_kernels *kt = preft_quant_kernels_at(level);
        if (!kt) continue;
        memset(got, 0xA5, row * N);
        kt->quantize_act(act, got, row, x, K, N, K);
        for (size_t i = 0; i < row * N; i++)
          if (got[i] != want[i])
            fail_msg("%s %s rep %d: byte %zu is %d, reference %d", kt->name, a ? "Q8_K" : "Q8_0", rep, i,
                     got[i], want[i]);
      }
    }
  }
}

/* The pool's row split gives the bytes of row-by-row quantization. */
static void test_quantize_rows_pool(void **state) {
  (void)state;
  enum { R = 37, K = 512, XS = K + 3 };
  preft_pool *pool = preft_pool_create(3);
  float *x = malloc((size_t)R * XS * sizeof *x);
  for (int i = 0; i < R; i++) fill_row(x + (size_t)i * XS, K);
  for (int ti = 0; ti < N_QTYPES; ti++) {
    preft_dtype t = QTYPES[ti];
    const int rows = matrix_rows(t, R) - (preft_dtype_is_r4(t) ? 4 : 0); /* 36 */
    size_t row = preft_dtype_row_bytes(t, K);
    unsigned char *a = malloc(row * R), *b = malloc(row * R);
    preft_quantize_rows(pool, t, x, XS, a, rows, K);
    for (int i = 0; i < rows; i++) preft_quantize_row(t, x + (size_t)i * XS, row_of(t, b, K, i), K);
    assert_memory_equal(a, b, row * (size_t)rows);
    free(a), free(b);
  }
  free(x);
  preft_pool_free(pool);
}

/* The X4 layouts (quant.h) hold each block's bytes where the header says:
 * checked on blocks whose every field is distinct, then both conversions
 * on quantized rows (there and back to the same bytes, in place and not;
 * the same values; quantizing to X4 = quantizing plain then repacking). */
static void test_x4_layouts(void **state) {
  (void)state;
  preft_block_q5_0 b5[8];
  preft_block_q4_0 b4[8];
  for (int i = 0; i < 8; i++) {
    b5[i].d = b4[i].d = (uint16_t)(0x3C00 + i);
    const uint32_t qh = 0x9E3779B9u * (uint32_t)(i + 1);
    memcpy(b5[i].qh, &qh, 4);
    for (int j = 0; j < 16; j++) b5[i].qs[j] = b4[i].qs[j] = (uint8_t)(16 * i + j);
  }
  preft_group_q5_0x4 g5[2];
  preft_group_q4_0x4 g4[2];
  preft_quant_to_x4(PREFT_Q5_0, b5, g5, 256);
  preft_quant_to_x4(PREFT_Q4_0, b4, g4, 256);
  for (int g = 0; g < 2; g++)
    for (int i = 0; i < 4; i++) {
      const preft_block_q5_0 *b = &b5[4 * g + i];
      uint32_t qh;
      memcpy(&qh, b->qh, 4);
      assert_int_equal(g5[g].d[i], b->d);
      assert_int_equal(g4[g].d[i], b->d);
      assert_int_equal(g5[g].qh_lo[i], qh & 0xFFFF);
      assert_int_equal(g5[g].qh_hi[i], qh >> 16);
      assert_memory_equal(g5[g].qs + 16 * i, b->qs, 16);
      assert_memory_equal(g4[g].qs + 16 * i, b->qs, 16);
    }
  enum { K = 640, R = 3 };
  float x[K], a[K], b[K];
  for (int p = 0; p < 2; p++) {
    const preft_dtype plain = p ? PREFT_Q5_0 : PREFT_Q4_0, x4 = preft_dtype_x4_of(plain);
    assert_int_equal(preft_dtype_stored(x4), plain);
    assert_int_equal(preft_dtype_row_bytes(x4, K), preft_dtype_row_bytes(plain, K));
    const size_t rb = preft_dtype_row_bytes(plain, K);
    unsigned char q[R * 440], r[R * 440], back[R * 440];
    for (int i = 0; i < R; i++) {
      fill_row(x, K);
      preft_quantize_row(plain, x, q + i * rb, K);
      preft_quantize_row(x4, x, r + i * rb, K);
    }
    for (int i = 0; i < R; i++) {
      unsigned char tmp[440];
      preft_quant_to_x4(plain, q + i * rb, tmp, K);
      assert_memory_equal(tmp, r + i * rb, rb);
      preft_dequantize_row(plain, q + i * rb, a, K);
      preft_dequantize_row(x4, r + i * rb, b, K);
      assert_memory_equal(a, b, sizeof a);
      for (int c = 0; c < K; c += 37) assert_true(preft_load_elem(r + i * rb, x4, (size_t)c) == a[c]);
    }
    memcpy(back, r, R * rb);
    for (int i = 0; i < R; i++) preft_quant_from_x4(x4, back + i * rb, back + i * rb, K); /* in place */
    assert_memory_equal(back, q, R * rb);
    assert_true(memcmp(r, q, R * rb) != 0);
  }
}

/* The R4 layout (quant.h) holds each block where the header says: a
 * Q4_K matrix of 8 rows whose every byte is distinct enough, block b of
 * row 4g+r with its head at 576 b + 16 r of group g and its codes' bytes
 * 16k.. at 576 b + 64 + 64 k + 16 r; the conversions there and back (in
 * place and not), the unpacked rows, and a row of R4 as every row
 * function takes it (by its address): quantized, dequantized, dotted and
 * read element by element as the plain row. */
static void test_r4_layout(void **state) {
  (void)state;
  enum { K = 768, R = 8, NB = K / PREFT_QK_K };
  const size_t bb = sizeof(preft_block_q4_K), rb = NB * bb;
  unsigned char plain[R * NB * 144], r4[R * NB * 144], back[R * NB * 144], row[NB * 144];
  for (size_t i = 0; i < sizeof plain; i++) plain[i] = (unsigned char)(i * 7 + i / 256);
  preft_quant_to_r4(plain, r4, R, K);
  for (int j = 0; j < R; j++)
    for (int b = 0; b < NB; b++) {
      const unsigned char *grp = r4 + (size_t)(j / 4) * 4 * rb + (size_t)b * 4 * bb,
                          *blk = plain + (size_t)j * rb + (size_t)b * bb;
      assert_memory_equal(grp + 16 * (j % 4), blk, 16);
      for (int k = 0; k < 8; k++)
        assert_memory_equal(grp + 64 + 64 * k + 16 * (j % 4), blk + 16 + 16 * k, 16);
    }
  memcpy(back, r4, sizeof back);
  preft_quant_from_r4(back, back, R, K); /* in place */
  assert_memory_equal(back, plain, sizeof plain);
  memcpy(back, plain, sizeof back);
  preft_quant_to_r4(back, back, R, K);
  assert_memory_equal(back, r4, sizeof r4);
  for (int j = 0; j < R; j++) {
    preft_quant_row_plain(PREFT_Q4_K_R4, r4, rb, (size_t)j, K, row);
    assert_memory_equal(row, plain + (size_t)j * rb, rb);
  }
  assert_int_equal(preft_dtype_stored(PREFT_Q4_K_R4), PREFT_Q4_K);
  assert_int_equal(preft_dtype_row_bytes(PREFT_Q4_K_R4, K), rb);
  assert_int_equal(preft_dtype_block_stride(PREFT_Q4_K_R4), 4 * bb);
  /* rows quantized in place in the R4 layout are the plain rows repacked */
  float x[R][K], a[K], b[K];
  unsigned char xq[NB * sizeof(preft_block_q8_K)];
  for (int j = 0; j < R; j++) {
    fill_row(x[j], K);
    preft_quantize_row(PREFT_Q4_K, x[j], plain + (size_t)j * rb, K);
    preft_quantize_row(PREFT_Q4_K_R4, x[j], row_of(PREFT_Q4_K_R4, r4, K, j), K);
  }
  preft_quant_to_r4(plain, back, R, K);
  assert_memory_equal(back, r4, sizeof r4);
  preft_quantize_act_rows(PREFT_QACT_Q8_K, xq, 0, x[3], 0, 1, K);
  for (int j = 0; j < R; j++) {
    const unsigned char *p = plain + (size_t)j * rb, *q = row_of(PREFT_Q4_K_R4, r4, K, j);
    preft_dequantize_row(PREFT_Q4_K, p, a, K);
    preft_dequantize_row(PREFT_Q4_K_R4, q, b, K);
    assert_memory_equal(a, b, sizeof a);
    for (int c = 0; c < K; c += 37) assert_true(preft_load_elem(q, PREFT_Q4_K_R4, (size_t)c) == a[c]);
    const float dp = preft_quant_dot_ref(PREFT_Q4_K, p, xq, K),
                dq = preft_quant_dot_ref(PREFT_Q4_K_R4, q, xq, K);
    assert_memory_equal(&dp, &dq, sizeof dp);
  }
}

static void test_dtype_names(void **state) {
  (void)state;
  for (int t = 0; t < PREFT_N_DTYPES; t++)
    assert_int_equal(preft_dtype_parse(preft_dtype_name((preft_dtype)t)), t);
  assert_int_equal(preft_dtype_parse("q4_k"), PREFT_Q4_K);
  assert_int_equal(preft_dtype_parse("q3_k"), -1);
  assert_int_equal(preft_dtype_row_bytes(PREFT_Q4_K, 512), 288);
  assert_int_equal(preft_dtype_row_bytes(PREFT_Q6_K, 256), 210);
  assert_int_equal(preft_dtype_row_bytes(PREFT_Q8_0, 64), 68);
  assert_int_equal(preft_dtype_row_bytes(PREFT_BF16, 64), 128);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hand_made_q8_0_q4_0_q5_0),
      cmocka_unit_test(test_hand_made_q4_K),
      cmocka_unit_test(test_hand_made_q6_K),
      cmocka_unit_test(test_quantize_error_bounds),
      cmocka_unit_test(test_dot_reference),
      cmocka_unit_test(test_qgemm_kernels),
      cmocka_unit_test(test_gemm_routes_quantized),
      cmocka_unit_test(test_qgemm_multi_mixed_types),
      cmocka_unit_test(test_qgemm_dx),
      cmocka_unit_test(test_table_dequant),
      cmocka_unit_test(test_table_quantize_act),
      cmocka_unit_test(test_quantize_rows_pool),
      cmocka_unit_test(test_x4_layouts),
      cmocka_unit_test(test_r4_layout),
      cmocka_unit_test(test_dtype_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
