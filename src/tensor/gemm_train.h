/* gemm_train.h - the two extra matrix products of a linear layer's backward
 * pass (the forward product is preft_gemm in gemm.h).
 *
 * Legend: N token rows, K input features, M output features. W is an FP32
 * weight stored as nn.Linear stores it, row-major [M, K].
 *
 *   preft_gemm_dx:  dx[N,K] (+)= dy[N,M] · W[M,K]      (input gradient)
 *   preft_gemm_dw:  dW[M,K]  += dy[N,M]ᵀ · x[N,K]      (weight gradient)
 *
 * Both reduce to preft_gemm (y = x·wᵀ, the tuned, run-time dispatched AVX+FMA
 * kernel of gemm.c) on transposed copies: dx = dy·(Wᵀ)ᵀ with Wᵀ [K,M], and
 * dW = dyᵀ·(xᵀ)ᵀ over blocks of rows. A transpose costs O(M·K) (resp.
 * O(N·(M+K))) against the product's O(N·M·K), so the extra traffic is a
 * fraction 1/N (resp. 1/min(M,K)) of the work. The transposes are plain C,
 * tiled for the caches, split over the pool.
 *
 * Strides: rows of dx/dy/x are *_stride floats apart (pass K or M for dense
 * buffers). dW is dense [M, K]. The *_ref versions are plain loops
 * accumulating in double, which the tests compare against.
 */
#ifndef PREFT_TENSOR_GEMM_TRAIN_H
#define PREFT_TENSOR_GEMM_TRAIN_H

#include "base/threadpool.h"

void preft_gemm_dx(preft_pool *pool, float *dx, int dx_stride, const float *dy, int dy_stride, const float *w,
                   int n, int m, int k, int accumulate);
void preft_gemm_dw(preft_pool *pool, float *dw, const float *dy, int dy_stride, const float *x, int x_stride,
                   int n, int m, int k);

void preft_gemm_dx_ref(float *dx, int dx_stride, const float *dy, int dy_stride, const float *w, int n, int m,
                       int k, int accumulate);
void preft_gemm_dw_ref(float *dw, const float *dy, int dy_stride, const float *x, int x_stride, int n, int m,
                       int k);

/* out[C,R] = in[R,C]ᵀ (in rows in_stride floats apart, out dense), over the pool. */
void preft_transpose(preft_pool *pool, float *out, const float *in, int in_stride, int rows, int cols);

#endif
