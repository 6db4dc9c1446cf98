/* quant_avxvnni.c - preft_qgemm's kernels for AVX2 + AVX-VNNI (Alder Lake
 * and later, Zen 5): the Q8_0 / Q4_0 / Q5_0 dot products as one VEX
 * vpdpbusd per 32 values (quant_avx_body.h). Compiled everywhere, run only
 * where preft_cpu_has_avx_vnni() says so. */
#if defined(__x86_64__) || defined(__i386__)

#define QK_TARGET "avx2,fma,f16c,avxvnni"
#define QK_TABLE preft_quant_avxvnni
#define QK_NAME "avx-vnni"
#define QK_VNNI 1
#include "tensor/quant_avx_body.h"

#endif
