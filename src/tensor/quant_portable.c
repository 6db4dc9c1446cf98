/* quant_portable.c - the quantized kernels in plain C: the reference dot
 * products row by row (quant_ref.c), for CPUs without AVX2. */
#include "tensor/quant_kern.h"

#define PORTABLE_ROWS(T, WDT)                                                                              \
  static void rows_##T(float *y, size_t ys, const void *xq, size_t xqs, const void *w, size_t wrow, int n, \
                       int k, int j0, int j1, int accumulate) {                                            \
    for (int i = 0; i < n; i++)                                                                            \
      for (int j = j0; j < j1; j++) {                                                                      \
        float d = preft_quant_dot_ref(WDT, (const char *)w + preft_dtype_row_offset(WDT, wrow, (size_t)j), \
                                      (const char *)xq + (size_t)i * xqs, k);                              \
        float *yp = y + (size_t)i * ys + j;                                                                \
        *yp = accumulate ? *yp + d : d;                                                                    \
      }                                                                                                    \
  }

PORTABLE_ROWS(q8_0, PREFT_Q8_0)
PORTABLE_ROWS(q4_0, PREFT_Q4_0)
PORTABLE_ROWS(q4_K, PREFT_Q4_K)
PORTABLE_ROWS(q6_K, PREFT_Q6_K)
PORTABLE_ROWS(q5_0, PREFT_Q5_0)
PORTABLE_ROWS(q4_0x4, PREFT_Q4_0_X4)
PORTABLE_ROWS(q5_0x4, PREFT_Q5_0_X4)
PORTABLE_ROWS(q4_Kr4, PREFT_Q4_K_R4)

static void tile_dx(float *dx, size_t dxs, const float *dy, size_t dys, const float *tile, int rows, int kc,
                    int n) {
  for (int i = 0; i < n; i++) {
    float *restrict d = dx + (size_t)i * dxs;
    for (int r = 0; r < rows; r++) {
      const float g = dy[(size_t)i * dys + (size_t)r];
      const float *restrict t = tile + (size_t)r * (size_t)kc;
      for (int c = 0; c < kc; c++) d[c] += g * t[c];
    }
  }
}

const preft_quant_kernels preft_quant_portable = {
    .rows = {rows_q8_0, rows_q4_0, rows_q4_K, rows_q6_K, rows_q5_0, rows_q4_0x4, rows_q5_0x4, rows_q4_Kr4},
    .quantize_act = preft_quantize_act_rows,
    .tile_dx = tile_dx,
    .dequant = preft_dequantize_row,
    .name = "portable",
};
