/* sum4_avx512.h - the lane sums of four zmm accumulators as one xmm, for
 * the AVX-512 rows kernels (gemm_avx512.c, gemm_avx512_bf16.c): a dot
 * kernel that keeps four weight rows' partial sums in four registers ends
 * with one shuffle tree and one 4-wide store. Header-only, always inlined;
 * x86 only: include inside an `#if defined(__x86_64__) || defined(__i386__)`.
 */
#ifndef PREFT_TENSOR_SUM4_AVX512_H
#define PREFT_TENSOR_SUM4_AVX512_H

#include <immintrin.h>

/* { Σa, Σb, Σc, Σd } over the 16 lanes of each. */
static inline __attribute__((always_inline, target("avx512f"))) __m128 preft_sum4_avx512(__m512 a, __m512 b,
                                                                                         __m512 c, __m512 d) {
  __m512 ab = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
  __m512 cd = _mm512_add_ps(_mm512_unpacklo_ps(c, d), _mm512_unpackhi_ps(c, d));
  /* per 128-bit lane: ab = [a0 b0 a1 b1], cd = [c0 d0 c1 d1] */
  __m512 s = _mm512_add_ps(_mm512_shuffle_ps(ab, cd, 0x44), _mm512_shuffle_ps(ab, cd, 0xEE));
  /* per 128-bit lane: [a b c d]; add the four lanes */
  __m256 h = _mm256_add_ps(_mm512_castps512_ps256(s),
                           _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(s), 1)));
  return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

#endif
