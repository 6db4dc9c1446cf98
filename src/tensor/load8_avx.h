/* load8_avx.h - 8 weights of any preft_dtype as FP32 in one ymm register,
 * for the AVX kernels (gemm_avx_body.h, model/lora_kernels.c). Header-only
 * and always inlined; each function names the narrowest target it needs,
 * so it inlines into any kernel compiled for that target or more.
 *
 * F16 -> FP32 is one vcvtph2ps (F16C). BF16 is the top half of an FP32:
 * AVX1 has no 256-bit integer instructions, so it zero-extends 4 values at
 * a time with SSE4.1 pmovzxwd, shifts them into the high half and joins
 * the halves (five instructions); AVX2 does it in two. Neither needs a zero
 * register, which the 12 accumulators of the decode kernel leave none of.
 * x86 only: include inside an `#if defined(__x86_64__) || defined(__i386__)`.
 */
#ifndef PREFT_TENSOR_LOAD8_AVX_H
#define PREFT_TENSOR_LOAD8_AVX_H

#include <immintrin.h>

#include "tensor/dtype.h"

static inline __attribute__((always_inline, target("avx"))) __m256 preft_bf16x8_avx(const uint16_t *p) {
  __m128i lo = _mm_slli_epi32(_mm_cvtepu16_epi32(_mm_loadl_epi64((const __m128i *)p)), 16);
  __m128i hi = _mm_slli_epi32(_mm_cvtepu16_epi32(_mm_loadl_epi64((const __m128i *)(p + 4))), 16);
  return _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_castsi128_ps(lo)), _mm_castsi128_ps(hi), 1);
}

static inline __attribute__((always_inline, target("avx2"))) __m256 preft_bf16x8_avx2(const uint16_t *p) {
  return _mm256_castsi256_ps(
      _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}

/* w[i .. i+8) as FP32 with AVX1 + F16C; dt is a constant at every call site. */
static inline __attribute__((always_inline, target("avx,f16c"))) __m256 preft_load8_avx(const void *w,
                                                                                        preft_dtype dt,
                                                                                        size_t i) {
  if (dt == PREFT_F16) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)w + i)));
  if (dt == PREFT_BF16) return preft_bf16x8_avx((const uint16_t *)w + i);
  return _mm256_loadu_ps((const float *)w + i);
}

#endif
