/* transpose_kern.h - internal: the 8 × 8 FP32 transpose tile of
 * gemm_train.c's transposes (AVX: path >= PREFT_CPU_AVX_FMA; out[c][r] =
 * in[r][c] for r, c < 8, rows of in `is` floats apart, rows of out `os`)
 * and its BF16 roundings (nearest even; AVX512_BF16: path >=
 * PREFT_CPU_AVX512_BF16), in transpose_avx.c. */
#ifndef PREFT_TENSOR_TRANSPOSE_KERN_H
#define PREFT_TENSOR_TRANSPOSE_KERN_H

#include <stddef.h>
#include <stdint.h>

#if defined(__x86_64__) || defined(__i386__)
#define PREFT_HAVE_TRANSPOSE8 1
void preft_transpose8_avx(float *out, size_t os, const float *in, size_t is);
/* out[i] = bf16(in[i]) for i < n, nearest even as the BF16 tile (AVX512_BF16) */
void preft_round_bf16_avx512(uint16_t *out, const float *in, size_t n);
/* out[c][0] = bf16(a[c]), out[c][1] = bf16(b[c]) (0 where b is NULL), c < n
 * (AVX512_BF16): the pair layout of preft_gemm_bf16_kmajor_pairs; with
 * ra, a and b (rb, when b) also rounded as rows of kp (a multiple of 32),
 * zeros past n, from the same loads */
void preft_pair_rows_bf16_avx512(uint16_t *out, uint16_t *ra, uint16_t *rb, size_t kp, const float *a,
                                 const float *b, size_t n);
#endif

#endif
