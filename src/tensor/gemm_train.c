/* gemm_train.c - backward-pass matrix products via transposes and
 * preft_gemm (see gemm_train.h). */
#include "tensor/gemm_train.h"

#include <stdlib.h>

#include "base/error.h"
#include "tensor/gemm.h"

#define TR_TILE 32  /* transpose tile: 32x32 floats = 4 KiB in, 4 KiB out */
#define DW_ROWS 256 /* rows of dy/x per dW block: the inner dimension of each GEMM */

typedef struct {
  float *out;
  const float *in;
  int in_stride, rows, cols;
} tr_job;

/* One band of TR_TILE input columns (= output rows). */
static void tr_task(void *p, int task, int thread) {
  const tr_job *j = p;
  int c0 = task * TR_TILE, c1 = c0 + TR_TILE < j->cols ? c0 + TR_TILE : j->cols;
  for (int r0 = 0; r0 < j->rows; r0 += TR_TILE) {
    int r1 = r0 + TR_TILE < j->rows ? r0 + TR_TILE : j->rows;
    for (int c = c0; c < c1; c++) {
      float *o = j->out + (size_t)c * (size_t)j->rows;
      for (int r = r0; r < r1; r++) o[r] = j->in[(size_t)r * (size_t)j->in_stride + (size_t)c];
    }
  }
}

void preft_transpose(preft_pool *pool, float *out, const float *in, int in_stride, int rows, int cols) {
  tr_job j = {.out = out, .in = in, .in_stride = in_stride, .rows = rows, .cols = cols};
  int tasks = (cols + TR_TILE - 1) / TR_TILE;
  if ((size_t)rows * (size_t)cols < 65536) {
    for (int t = 0; t < tasks; t++) tr_task(&j, t, 0);
  } else {
    preft_pool_run(pool, tasks, tr_task, &j);
  }
}

void preft_gemm_dx(preft_pool *pool, float *dx, int dx_stride, const float *dy, int dy_stride, const float *w,
                   int n, int m, int k, int accumulate) {
  if (n <= 0) return;
  float *wt = preft_xmalloc(sizeof(float) * (size_t)m * (size_t)k); /* Wᵀ [K, M] */
  preft_transpose(pool, wt, w, k, m, k);
  preft_gemm(pool, dx, dx_stride, dy, dy_stride, wt, PREFT_F32, n, m, k, accumulate);
  free(wt);
}

void preft_gemm_dw(preft_pool *pool, float *dw, const float *dy, int dy_stride, const float *x, int x_stride,
                   int n, int m, int k) {
  if (n <= 0) return;
  int nb = n < DW_ROWS ? n : DW_ROWS;
  float *dyt = preft_xmalloc(sizeof(float) * (size_t)m * (size_t)nb); /* dyᵀ block [M, nb] */
  float *xt = preft_xmalloc(sizeof(float) * (size_t)k * (size_t)nb);  /* xᵀ block [K, nb] */
  for (int r0 = 0; r0 < n; r0 += DW_ROWS) {
    int rn = n - r0 < DW_ROWS ? n - r0 : DW_ROWS;
    preft_transpose(pool, dyt, dy + (size_t)r0 * (size_t)dy_stride, dy_stride, rn, m);
    preft_transpose(pool, xt, x + (size_t)r0 * (size_t)x_stride, x_stride, rn, k);
    /* dW[M,K] += dyᵀ[M,rn] · (xᵀ[K,rn])ᵀ */
    preft_gemm(pool, dw, k, dyt, rn, xt, PREFT_F32, m, rn, k, 1);
  }
  free(dyt);
  free(xt);
}

void preft_gemm_dx_ref(float *dx, int dx_stride, const float *dy, int dy_stride, const float *w, int n, int m,
                       int k, int accumulate) {
  for (int i = 0; i < n; i++)
    for (int c = 0; c < k; c++) {
      double s = accumulate ? dx[(size_t)i * dx_stride + c] : 0.0;
      for (int j = 0; j < m; j++) s += (double)dy[(size_t)i * dy_stride + j] * w[(size_t)j * k + c];
      dx[(size_t)i * dx_stride + c] = (float)s;
    }
}

void preft_gemm_dw_ref(float *dw, const float *dy, int dy_stride, const float *x, int x_stride, int n, int m,
                       int k) {
  for (int j = 0; j < m; j++)
    for (int c = 0; c < k; c++) {
      double s = dw[(size_t)j * k + c];
      for (int i = 0; i < n; i++) s += (double)dy[(size_t)i * dy_stride + j] * x[(size_t)i * x_stride + c];
      dw[(size_t)j * k + c] = (float)s;
    }
}
