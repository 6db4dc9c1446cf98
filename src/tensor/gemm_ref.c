/* gemm_ref.c - the plain reference matrix product (see gemm.h). Double
 * accumulation so that tests have an accurate yardstick. */
#include "tensor/gemm.h"

void preft_gemm_ref(float *y, int y_stride, const float *x, int x_stride, const void *w, preft_dtype wdt,
                    int n, int k, int m, int accumulate) {
  for (int i = 0; i < n; i++) {
    const float *xi = x + (size_t)i * (size_t)x_stride;
    float *yi = y + (size_t)i * (size_t)y_stride;
    for (int j = 0; j < m; j++) {
      double acc = accumulate ? yi[j] : 0.0;
      size_t row = (size_t)j * (size_t)k;
      for (int p = 0; p < k; p++) acc += (double)xi[p] * (double)preft_load_elem(w, wdt, row + (size_t)p);
      yi[j] = (float)acc;
    }
  }
}

void preft_gemm_bf16_ref(float *y, int y_stride, const float *x, int x_stride, const uint16_t *w, int n,
                         int k, int m, int accumulate) {
  for (int i = 0; i < n; i++) {
    const float *xi = x + (size_t)i * (size_t)x_stride;
    float *yi = y + (size_t)i * (size_t)y_stride;
    for (int j = 0; j < m; j++) {
      double acc = accumulate ? yi[j] : 0.0;
      const uint16_t *wj = w + (size_t)j * (size_t)k;
      for (int p = 0; p < k; p++)
        acc += (double)preft_bf16_to_f32(preft_f32_to_bf16(xi[p])) * (double)preft_bf16_to_f32(wj[p]);
      yi[j] = (float)acc;
    }
  }
}
