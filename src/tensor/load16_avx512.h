/* load16_avx512.h - 16 weights of any preft_dtype as FP32 in one zmm
 * register, the first lanes of mask m only (zeros after), for the AVX-512
 * kernels (gemm_avx512.c, gemm_avx512_bf16.c, model/lora_kernels.c).
 * Header-only and always inlined; dt is a constant at every call site.
 * F16 is one vcvtph2ps; BF16 is the top half of an FP32 (zero-extend,
 * shift). x86 only: include inside an `#if defined(__x86_64__) ||
 * defined(__i386__)`. */
#ifndef PREFT_TENSOR_LOAD16_AVX512_H
#define PREFT_TENSOR_LOAD16_AVX512_H

#include <immintrin.h>
#include <stdint.h>

#include "tensor/dtype.h"

static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512vl"))) __m512 preft_load16_avx512(
    const void *w, preft_dtype dt, size_t i, __mmask16 m) {
  if (dt == PREFT_F16) return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)w + i));
  if (dt == PREFT_BF16)
    return _mm512_castsi512_ps(
        _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, (const uint16_t *)w + i)), 16));
  return _mm512_maskz_loadu_ps(m, (const float *)w + i);
}

/* The mask of the first `count` lanes (all 16 from 16 on, none at 0 or below). */
static inline __mmask16 preft_mask16_first(int count) {
  return count >= 16 ? (__mmask16)0xFFFF : count > 0 ? (__mmask16)((1u << count) - 1) : 0;
}

/* In-register 16 × 16 transpose: r[i] holds row i on entry, column i on exit. */
static inline __attribute__((always_inline, target("avx512f"))) void preft_transpose16_avx512(__m512 r[16]) {
  __m512 t[16], s[16];
#pragma GCC unroll 8
  for (int i = 0; i < 16; i += 2) { /* pairs of rows interleaved: [a0 b0 a1 b1 | ...] per 128-bit lane */
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
#pragma GCC unroll 8
  for (int i = 0; i < 16; i += 4) { /* four rows' element c of each 128-bit lane together */
    s[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
    s[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
    s[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    s[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  /* s[4q + c] lane l holds rows 4q..4q+3 at feature 4l + c; gather lanes */
#pragma GCC unroll 8
  for (int c = 0; c < 4; c++) {
    __m512 a = _mm512_shuffle_f32x4(s[c], s[4 + c], 0x88), b = _mm512_shuffle_f32x4(s[c], s[4 + c], 0xDD);
    __m512 e = _mm512_shuffle_f32x4(s[8 + c], s[12 + c], 0x88),
           f = _mm512_shuffle_f32x4(s[8 + c], s[12 + c], 0xDD);
    r[c] = _mm512_shuffle_f32x4(a, e, 0x88);
    r[8 + c] = _mm512_shuffle_f32x4(a, e, 0xDD);
    r[4 + c] = _mm512_shuffle_f32x4(b, f, 0x88);
    r[12 + c] = _mm512_shuffle_f32x4(b, f, 0xDD);
  }
}

/* The pairs (bf16(a[i]), bf16(b[i])) for i < 16, interleaved in one zmm as
 * vdpbf16ps sums them (rounded to nearest even): one vcvtne2ps2bf16 (lane
 * i holds a[i] for i < 16, b[i − 16] after) and one vpermw (AVX512_BF16). */
static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512vl,avx512bf16"))) __m512i
preft_pairs16_bf16(__m512 a, __m512 b) {
  const __m512i mix = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7,
                                       22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  return _mm512_permutexvar_epi16(mix, (__m512i)_mm512_cvtne2ps_pbh(b, a));
}

#endif
