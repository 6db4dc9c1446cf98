/* lora_grad.c - the LoRA delta y += scale·(x·Aᵀ)·Bᵀ on flagged rows, and
 * its backward (see adapter_grad.h):
 *   dB += dyᵀ·t,  dt = scale·(dy·B) on flagged rows,  dA += dtᵀ·x,  dx += dt·A
 * with t = scale·(x·Aᵀ) masked as in the forward. */
#include <string.h>

#include "model/adapter.h"
#include "tensor/gemm.h"
#include "tensor/gemm_train.h"
#include "train/adapter_grad.h"

static void scale_rows(float *t, const uint8_t *flag, float scale, int n, int rank) {
  for (int i = 0; i < n; i++) {
    float *r = t + (size_t)i * rank;
    if (flag && flag[i] == PREFT_ADAPT_OFF) {
      memset(r, 0, sizeof(float) * (size_t)rank);
    } else {
      for (int k = 0; k < rank; k++) r[k] *= scale;
    }
  }
}

void preft_lora_forward(preft_pool *pool, float *y, int y_stride, const float *x, int x_stride,
                        const preft_train_lora *lm, float scale, const uint8_t *flag, int n, int rank,
                        float *t) {
  preft_gemm(pool, t, rank, x, x_stride, lm->a, PREFT_F32, n, lm->in, rank, 0);
  scale_rows(t, flag, scale, n, rank);
  preft_gemm(pool, y, y_stride, t, rank, lm->b, PREFT_F32, n, rank, lm->out, 1);
}

void preft_lora_backward(preft_pool *pool, float *dx, int dx_stride, const float *dy, int dy_stride,
                         const float *x, int x_stride, const preft_train_lora *lm, float scale,
                         const uint8_t *flag, int n, int rank, const float *t, float *dt) {
  if (lm->gb) preft_gemm_dw(pool, lm->gb, dy, dy_stride, t, rank, n, lm->out, rank);
  preft_gemm_dx(pool, dt, rank, dy, dy_stride, lm->b, n, lm->out, rank, 0);
  scale_rows(dt, flag, scale, n, rank);
  if (lm->ga) preft_gemm_dw(pool, lm->ga, dt, rank, x, x_stride, n, rank, lm->in);
  if (dx) preft_gemm_dx(pool, dx, dx_stride, dt, rank, lm->a, n, rank, lm->in, 1);
}
