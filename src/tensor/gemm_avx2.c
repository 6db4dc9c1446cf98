/* gemm_avx2.c - preft_gemm's kernels for AVX2 + FMA + F16C: the kernels of
 * gemm_avx_body.h with BF16 widened by one vpmovzxwd and one shift per
 * 8 weights, which makes the rows kernel nearly as cheap for BF16 as for
 * F16 (~175 GFLOP/s on 2 cores up to N = 32, against ~130 with AVX1).
 */
#if defined(__x86_64__) || defined(__i386__)

#define KERN_TARGET "avx2,fma,f16c"
#define KERN_TABLE preft_gemm_avx2
#define KERN_NAME "avx2+fma+f16c"
#define KERN_AVX2 1
#define KERN_ROWS_MAX_N \
  { 48, 64, 32 }
#include "tensor/gemm_avx_body.h"

#endif
