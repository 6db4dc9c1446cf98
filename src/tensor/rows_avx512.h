/* rows_avx512.h - what the AVX-512 rows kernels (gemm_avx512.c for F16/BF16
 * weights at exact precision, gemm_avx512_bf16.c for vdpbf16ps) share: the
 * reduction of their R × NT zmm accumulators into y, and the walk over
 * weight rows that calls their dot kernel. Header-only; x86 only: include
 * inside an `#if defined(__x86_64__) || defined(__i386__)`.
 */
#ifndef PREFT_TENSOR_ROWS_AVX512_H
#define PREFT_TENSOR_ROWS_AVX512_H

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

#include "tensor/dtype.h"
#include "tensor/gemm_kern.h"

#define PREFT_ROWS512_INLINE static inline __attribute__((always_inline, target("avx512f")))

/* { Σa, Σb, Σc, Σd } over the 16 lanes of each. */
PREFT_ROWS512_INLINE __m128 preft_sum4_avx512(__m512 a, __m512 b, __m512 c, __m512 d) {
  __m512 ab = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
  __m512 cd = _mm512_add_ps(_mm512_unpacklo_ps(c, d), _mm512_unpackhi_ps(c, d));
  /* per 128-bit lane: ab = [a0 b0 a1 b1], cd = [c0 d0 c1 d1] */
  __m512 s = _mm512_add_ps(_mm512_shuffle_ps(ab, cd, 0x44), _mm512_shuffle_ps(ab, cd, 0xEE));
  /* per 128-bit lane: [a b c d]; add the four lanes */
  __m256 h = _mm256_add_ps(_mm512_castps512_ps256(s),
                           _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(s), 1)));
  return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

/* The lane sum of a in the order preft_sum4_avx512 sums each of its four:
 * a row reduced alone gets the bits it gets in a group of four. */
PREFT_ROWS512_INLINE float preft_sum1_avx512(__m512 a) {
  return _mm_cvtss_f32(preft_sum4_avx512(a, a, a, a));
}

/* y[n][j .. j+R) (+)= the lane sums of acc[r][n], n < NT: four weight rows
 * by one shuffle tree (R = 4), a single row (R = 1) in the same order, so
 * that a row's bits do not depend on where it falls in the walk. */
PREFT_ROWS512_INLINE void preft_rows_store_avx512(const int R, const int NT, __m512 acc[4][6], float *y,
                                                  size_t ys, int j, int accumulate) {
#pragma GCC unroll 8
  for (int n = 0; n < NT; n++) {
    float *yy = y + (size_t)n * ys + (size_t)j;
    if (R == 4) {
      __m128 s = preft_sum4_avx512(acc[0][n], acc[1][n], acc[2][n], acc[3][n]);
      if (accumulate) s = _mm_add_ps(s, _mm_loadu_ps(yy));
      _mm_storeu_ps(yy, s);
    } else {
#pragma GCC unroll 8
      for (int r = 0; r < R; r++) {
        float s = preft_sum1_avx512(acc[r][n]);
        yy[r] = accumulate ? yy[r] + s : s;
      }
    }
  }
}

/* Runs CALL(NT, ...) with NT = nt (1 to 6, the rows of x one dot call
 * takes) as a compile-time constant, so that an always-inlined dot kernel
 * is compiled once per count; the other arguments pass through. */
#define PREFT_ROWS512_NT_CASES(nt, CALL, ...) \
  do {                                        \
    switch (nt) {                             \
      case 1:                                 \
        CALL(1, __VA_ARGS__);                 \
        break;                                \
      case 2:                                 \
        CALL(2, __VA_ARGS__);                 \
        break;                                \
      case 3:                                 \
        CALL(3, __VA_ARGS__);                 \
        break;                                \
      case 4:                                 \
        CALL(4, __VA_ARGS__);                 \
        break;                                \
      case 5:                                 \
        CALL(5, __VA_ARGS__);                 \
        break;                                \
      default:                                \
        CALL(6, __VA_ARGS__);                 \
        break;                                \
    }                                         \
  } while (0)

/* A table's dot kernel: y[0:nt, j:j+r] (+)= x[0:nt, 0:k] · w[j:j+r, 0:k]ᵀ,
 * r = 4 or 1, nt <= 6, x rows xs elements apart; each of its steps also
 * prefetches pf_adv bytes from address pf on. */
typedef void (*preft_rows_dot_avx512)(int r, int nt, preft_dtype dt, float *y, size_t ys, const void *x,
                                      size_t xs, const void *w, int k, int j, int accumulate, uintptr_t pf,
                                      size_t pf_adv);

/* The rows regime over weight rows [j0, j1) (gemm_kern.h): rows in groups
 * of 12, the rows of x in passes of at most 6; the first pass over a group
 * reads it from memory and later passes from cache, and the next group is
 * prefetched into L2 at an even rate over all passes of this one (at most
 * pf_max bytes a step). step: features per dot step; x_esize, w_esize:
 * bytes per element of x and of w. */
static inline void preft_rows_groups_avx512(preft_rows_dot_avx512 dot, int step, size_t x_esize,
                                            size_t w_esize, size_t pf_max, float *y, size_t ys, const void *x,
                                            size_t xs, const void *w, preft_dtype dt, int n, int k, int j0,
                                            int j1, int accumulate) {
  enum { GROUP = 12 };
  const int passes = (n + 5) / 6, steps = (k + step - 1) / step;
  for (int g0 = j0; g0 < j1; g0 += GROUP) {
    int g1 = g0 + GROUP < j1 ? g0 + GROUP : j1;
    int calls = passes * ((g1 - g0) / 4 + (g1 - g0) % 4);
    size_t region = (size_t)GROUP * (size_t)k * w_esize, total = (size_t)calls * (size_t)steps;
    size_t pf_adv = total ? (region + total - 1) / total : 0;
    if (pf_adv > pf_max) pf_adv = pf_max;
    uintptr_t pf = (uintptr_t)w + (uintptr_t)g1 * (uintptr_t)k * w_esize;
    for (int pi = 0, i0 = 0; pi < passes; pi++) {
      int nt = preft_gemm_pass_rows(n, passes, pi);
      const void *xi = (const char *)x + (size_t)i0 * xs * x_esize;
      float *yi = y + (size_t)i0 * ys;
      int j = g0;
      for (; j + 4 <= g1; j += 4, pf += pf_adv * (size_t)steps)
        dot(4, nt, dt, yi, ys, xi, xs, w, k, j, accumulate, pf, pf_adv);
      for (; j < g1; j++, pf += pf_adv * (size_t)steps)
        dot(1, nt, dt, yi, ys, xi, xs, w, k, j, accumulate, pf, pf_adv);
      i0 += nt;
    }
  }
}

#endif
