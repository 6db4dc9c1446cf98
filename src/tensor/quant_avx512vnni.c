/* quant_avx512vnni.c - preft_qgemm's kernels for AVX512-VNNI + VL (Ice
 * Lake, Sapphire Rapids, Zen 4): the Q8_0 dot products as one EVEX
 * vpdpbusd on ymm per 32 values (quant_avx_body.h; Q4_0 / Q5_0 decode rows
 * take two blocks per zmm, quant_rows512_q5.c). Compiled
 * everywhere, run only where preft_cpu_has_avx512_vnni() says so. */
#if defined(__x86_64__) || defined(__i386__)

#define QK_TARGET "avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni"
#define QK_TABLE preft_quant_avx512vnni
#define QK_NAME "avx512-vnni"
#define QK_VNNI 2
#include "tensor/quant_avx_body.h"

#endif
