/* transpose_avx.c - 8 × 8 tiles of the FP32 transposes (gemm_train.c) in
 * registers (eight row loads, the unpack / shuffle / lane-permute network,
 * eight row stores, instead of 64 scalar loads and stores with one side
 * strided) on AVX, and the BF16 roundings of the training products on
 * AVX512_BF16: a weight's plain rounding and two rows' pairs. Rounding is to
 * nearest even by vcvtne(2)ps2bf16, as preft_f32_to_bf16 except that the
 * instruction flushes FP32 subnormals to zero where the scalar path keeps
 * them; its results only feed vdpbf16ps, which treats subnormal inputs as
 * zero anyway. Only called on CPUs with those extensions (cpu.h). */
#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#include "tensor/load16_avx512.h"
#include "tensor/transpose_kern.h"

#define T_AVX __attribute__((target("avx")))
#define T_BF16 __attribute__((target("avx,avx2,avx512f,avx512vl,avx512bw,avx512bf16")))

/* r[0..7] = the 8 × 8 block's columns (its transposed rows) */
#define TRANSPOSE8(r)                                                                  \
  do {                                                                                 \
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);   \
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);   \
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);   \
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);   \
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE); \
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE); \
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE); \
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE); \
    r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);                                       \
    r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);                                       \
    r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);                                       \
    r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);                                       \
    r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);                                       \
    r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);                                       \
    r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);                                       \
    r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);                                       \
  } while (0)

T_AVX void preft_transpose8_avx(float *out, size_t os, const float *in, size_t is) {
  __m256 r[8];
  for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(in + (size_t)i * is);
  TRANSPOSE8(r);
  for (int i = 0; i < 8; i++) _mm256_storeu_ps(out + (size_t)i * os, r[i]);
}

T_BF16 void preft_round_bf16_avx512(uint16_t *out, const float *in, size_t n) {
  size_t i = 0;
  for (; i + 32 <= n; i += 32)
    _mm512_storeu_si512(out + i,
                        (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(in + i + 16), _mm512_loadu_ps(in + i)));
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256((__m256i *)(out + i), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(in + i)));
  if (i < n) {
    __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
    _mm256_mask_storeu_epi16(out + i, m, (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, in + i)));
  }
}

/* out[c][0] = bf16(a[c]), out[c][1] = bf16(b[c]) (zero where b is NULL),
 * c < n: two rows rounded and interleaved; with ra, also the rows
 * themselves rounded, ra[0:kp] = bf16(a) and rb[0:kp] = bf16(b) (when b),
 * zeros from n to kp (a multiple of 32 >= n). 32 columns a step. */
T_BF16 void preft_pair_rows_bf16_avx512(uint16_t *out, uint16_t *ra, uint16_t *rb, size_t kp, const float *a,
                                        const float *b, size_t n) {
  size_t end = ra ? kp : n;
  for (size_t c = 0; c < end; c += 32) {
    const int left = (int)n - (int)c; /* may be <= 0 in the rows' zero padding */
    const __mmask16 m0 = preft_mask16_first(left), m1 = preft_mask16_first(left - 16);
    __m512 a0 = _mm512_maskz_loadu_ps(m0, a + c), a1 = _mm512_maskz_loadu_ps(m1, a + c + 16);
    __m512 b0 = b ? _mm512_maskz_loadu_ps(m0, b + c) : _mm512_setzero_ps();
    __m512 b1 = b ? _mm512_maskz_loadu_ps(m1, b + c + 16) : _mm512_setzero_ps();
    _mm512_mask_storeu_epi32(out + 2 * c, m0, preft_pairs16_bf16(a0, b0));
    _mm512_mask_storeu_epi32(out + 2 * c + 32, m1, preft_pairs16_bf16(a1, b1));
    if (!ra) continue;
    _mm512_storeu_si512(ra + c, (__m512i)_mm512_cvtne2ps_pbh(a1, a0));
    if (rb) _mm512_storeu_si512(rb + c, (__m512i)_mm512_cvtne2ps_pbh(b1, b0));
  }
}

#endif
