/* quant_act512.c - the activations' int8 quantization (quant.h: Q8_0 and
 * Q8_K rows) on zmm for the AVX512-VNNI table, byte for byte what the
 * reference (quant_ref.c, ggml's quantize_row_q8_0_ref / q8_K_ref) writes:
 *  - Q8_0: the same amax (max is exact in any order), d = amax / 127,
 *    1 / d, q = roundf(x · id): round half away from zero, done as the
 *    truncation plus one where the dropped part is at least one half
 *    (x − trunc(x) is exact); d to fp16 by vcvtps2ph (nearest even);
 *  - Q8_K: the value of largest magnitude with its sign (the first of
 *    ties, as the reference's strict comparison keeps), iscale = −127 /
 *    max, q = nearest-even(iscale · x) (vcvtps2dq under the default
 *    rounding mode: ggml's nearest_int for |v| < 2^22), capped at 127, the
 *    sums of each 16 and d = 1 / iscale.
 * Decode quantizes one row of x per product on the calling thread while
 * the other threads wait, so its speed shows in every step (it was about a
 * twentieth of a Qwen2.5-0.5B Q4_K decode step in libm's roundf).
 * tests/unit/test_quant.c compares the bytes with the reference's. */
#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>
#include <string.h>

#include "tensor/quant_kern.h"

#define A_TARGET "avx2,fma,f16c,avx512f,avx512vl,avx512bw"
#define AFN __attribute__((target(A_TARGET)))
#define AIN static inline __attribute__((always_inline, target(A_TARGET)))

/* roundf of 16 lanes: half away from zero */
AIN __m512 round_away(__m512 v) {
  const __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __mmask16 up =
      _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_sub_ps(v, t)), _mm512_set1_ps(0.5f), _CMP_GE_OQ);
  /* ±1 with v's sign */
  const __m512 one = _mm512_castsi512_ps(
      _mm512_or_si512(_mm512_castps_si512(_mm512_set1_ps(1.0f)),
                      _mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32((int)0x80000000u))));
  return _mm512_mask_add_ps(t, up, t, one);
}

AIN uint16_t to_half(float f) {
  return (uint16_t)_mm_extract_epi16(_mm_cvtps_ph(_mm_set_ss(f), _MM_FROUND_TO_NEAREST_INT), 0);
}

AIN void q8_0_row(const float *x, preft_block_q8_0 *y, int nb) {
  for (int b = 0; b < nb; b++, x += PREFT_QK) {
    const __m512 x0 = _mm512_loadu_ps(x), x1 = _mm512_loadu_ps(x + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(x0), _mm512_abs_ps(x1)));
    const float d = amax / ((1 << 7) - 1);
    const float id = d ? 1.0f / d : 0.0f;
    y[b].d = to_half(d);
    const __m512 vid = _mm512_set1_ps(id);
    _mm_storeu_si128((__m128i *)y[b].qs,
                     _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(round_away(_mm512_mul_ps(x0, vid)))));
    _mm_storeu_si128((__m128i *)(y[b].qs + 16),
                     _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(round_away(_mm512_mul_ps(x1, vid)))));
  }
}

AIN void q8_K_row(const float *x, preft_block_q8_K *y, int nb) {
  enum { V = PREFT_QK_K / 16 }; /* zmm per block */
  for (int b = 0; b < nb; b++, x += PREFT_QK_K) {
    __m512 a = _mm512_setzero_ps();
    for (int c = 0; c < V; c++) a = _mm512_max_ps(a, _mm512_abs_ps(_mm512_loadu_ps(x + 16 * c)));
    const float amax = _mm512_reduce_max_ps(a);
    if (amax == 0.0f) {
      memset(&y[b], 0, sizeof y[b]);
      continue;
    }
    /* the first value of that magnitude */
    float max = 0.0f;
    for (int c = 0; c < V; c++) {
      const __mmask16 m =
          _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_loadu_ps(x + 16 * c)), _mm512_set1_ps(amax), _CMP_EQ_OQ);
      if (m) {
        max = x[16 * c + __builtin_ctz((unsigned)m)];
        break;
      }
    }
    const float iscale = -127.f / max;
    const __m512 vs = _mm512_set1_ps(iscale);
    for (int c = 0; c < V; c++) {
      __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(vs, _mm512_loadu_ps(x + 16 * c)));
      q = _mm512_min_epi32(q, _mm512_set1_epi32(127));
      _mm_storeu_si128((__m128i *)(y[b].qs + 16 * c), _mm512_cvtepi32_epi8(q));
      y[b].bsums[c] = (int16_t)_mm512_reduce_add_epi32(q);
    }
    y[b].d = 1 / iscale;
  }
}

AFN void preft_quantize_act_rows_avx512(preft_qact a, void *dst, size_t dst_stride, const float *x,
                                        size_t x_stride, int n, int k) {
  for (int i = 0; i < n; i++) {
    void *d = (char *)dst + (size_t)i * dst_stride;
    const float *xi = x + (size_t)i * x_stride;
    if (a == PREFT_QACT_Q8_K)
      q8_K_row(xi, d, k / PREFT_QK_K);
    else
      q8_0_row(xi, d, k / PREFT_QK);
  }
}

#endif
