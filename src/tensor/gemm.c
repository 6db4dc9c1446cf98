/* gemm.c - multi-threaded matrix product (see gemm.h).
 * Placeholder plain-C kernel; the tiled SIMD kernels replace it. */
#include "tensor/gemm.h"

typedef struct {
  float *y;
  const float *x;
  const void *w;
  preft_dtype wdt;
  int y_stride, x_stride, n, k, m, accumulate, block;
} gemm_job;

static void gemm_task(void *p, int task, int thread) {
  const gemm_job *j = p;
  int j0 = task * j->block, j1 = j0 + j->block;
  if (j1 > j->m) j1 = j->m;
  for (int i = 0; i < j->n; i++) {
    const float *xi = j->x + (size_t)i * (size_t)j->x_stride;
    float *yi = j->y + (size_t)i * (size_t)j->y_stride;
    for (int c = j0; c < j1; c++) {
      float acc = 0.f;
      size_t row = (size_t)c * (size_t)j->k;
      for (int p2 = 0; p2 < j->k; p2++) acc += xi[p2] * preft_load_elem(j->w, j->wdt, row + (size_t)p2);
      yi[c] = j->accumulate ? yi[c] + acc : acc;
    }
  }
}

void preft_gemm(preft_pool *pool, float *y, int y_stride, const float *x, int x_stride, const void *w,
                preft_dtype wdt, int n, int k, int m, int accumulate) {
  gemm_job j = {y, x, w, wdt, y_stride, x_stride, n, k, m, accumulate, 64};
  preft_pool_run(pool, (m + j.block - 1) / j.block, gemm_task, &j);
}
