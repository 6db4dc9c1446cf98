/* quant_avx2.c - preft_qgemm's kernels for AVX2 + FMA + F16C: int8 dot
 * products as vpmaddubsw + vpmaddwd (quant_avx_body.h). */
#if defined(__x86_64__) || defined(__i386__)

#define QK_TARGET "avx2,fma,f16c"
#define QK_TABLE preft_quant_avx2
#define QK_NAME "avx2"
#define QK_VNNI 0
#include "tensor/quant_avx_body.h"

#endif
