/* gemm_avx.c - preft_gemm's kernels for AVX + FMA + F16C (no AVX2): the
 * baseline x86-64 path the project targets. The kernels are in
 * gemm_avx_body.h, shared with gemm_avx2.c.
 *
 * Rows-kernel limits per weight type (F32, F16, BF16), measured crossovers
 * against packing (docs/KERNELS.md): BF16 widening costs five instructions
 * per 8 weights here, redone for every pass of 4 rows of x, so packing
 * (which widens once per panel) wins from N = 16 on.
 */
#if defined(__x86_64__) || defined(__i386__)

#define KERN_TARGET "avx,fma,f16c"
#define KERN_TABLE preft_gemm_avx
#define KERN_NAME "avx+fma+f16c"
#define KERN_ROWS_MAX_N \
  { 48, 64, 16 }
#include "tensor/gemm_avx_body.h"

#endif
