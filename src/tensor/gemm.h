/* gemm.h - the matrix products of every linear layer.
 *
 * Legend: N token rows, K input features, M output features.
 * Weights are stored as PyTorch nn.Linear stores them: row-major [M, K]
 * ("out, in"), in F32, F16 or BF16; activations are FP32.
 *
 *   preft_gemm:  y[N,M] = x[N,K] · w[M,K]ᵀ        (accumulate=0)
 *                y[N,M] += x[N,K] · w[M,K]ᵀ       (accumulate=1)
 *
 * x rows are x_stride floats apart and y rows y_stride floats apart (pass K
 * and M for dense buffers), so a kernel can read or write a slice of a wider
 * buffer (e.g. one head, or q/k/v parts of a fused output).
 *
 * Half-precision weights are converted to FP32 inside the kernel's tiles;
 * the full matrix is never converted. Multi-threaded over the pool.
 * preft_gemm_ref is the plain reference the tests compare against.
 */
#ifndef PREFT_TENSOR_GEMM_H
#define PREFT_TENSOR_GEMM_H

#include "base/threadpool.h"
#include "tensor/dtype.h"

void preft_gemm(preft_pool *pool, float *y, int y_stride, const float *x, int x_stride, const void *w,
                preft_dtype wdt, int n, int k, int m, int accumulate);

void preft_gemm_ref(float *y, int y_stride, const float *x, int x_stride, const void *w, preft_dtype wdt,
                    int n, int k, int m, int accumulate);

#endif
