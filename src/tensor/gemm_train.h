/* gemm_train.h - the two extra matrix products of a linear layer's backward
 * pass (the forward product is preft_gemm in gemm.h).
 *
 * Legend: N token rows, K input features, M output features. W is an FP32
 * weight stored as nn.Linear stores it, row-major [M, K].
 *
 *   preft_gemm_dx:  dx[N,K] (+)= dy[N,M] · W[M,K]      (input gradient)
 *   preft_gemm_dw:  dW[M,K]  += dy[N,M]ᵀ · x[N,K]      (weight gradient)
 *
 * Both are products of the tuned FP32 kernels of gemm.c. dx = dy·W and
 * dW = dyᵀ·x (over blocks of DW_ROWS rows) read W and x as they are
 * stored, as the k-major weight operand of preft_gemm_kmajor (a panel of
 * it is a copy of rows). dyᵀ, the left operand of dW, is read out of dy as
 * stored where the kernels can (avx512: preft_gemm_kmajor_xt); on other
 * paths it is a transposed copy, O(N·M) against the product's O(N·M·K), in
 * 8 × 8 register tiles (transpose_avx.c) within 128 × 128 cache tiles,
 * split over the pool.
 *
 * Strides: rows of dx/dy/x are *_stride floats apart (pass K or M for dense
 * buffers). dW is dense [M, K]. The *_ref versions are plain loops
 * accumulating in double, which the tests compare against.
 *
 * Training matmul precision (preft_train_gemm*, `preft train
 * --matmul-precision`): PREFT_MATMUL_EXACT is FP32 throughout (the plain
 * names below). PREFT_MATMUL_BF16 rounds both operands of every product to
 * BF16 (nearest even) and sums in FP32 (preft_gemm_bf16: vdpbf16ps on
 * AVX512_BF16 CPUs, an exact emulation elsewhere): the FP32 weight to BF16
 * at each call (so the FP32 master weights stay the optimizer's), the
 * activations and gradients per product. The backward products at BF16
 * read W and x as stored too (preft_gemm_bf16_kmajor rounds each panel as
 * it packs it); dyᵀ is not transposed but rounded two rows of dy at a
 * time into the pair layout vdpbf16ps reads (preft_gemm_bf16_kmajor_pairs),
 * and where dx is wanted too, dy's rows are rounded for it from the same
 * reads. As in
 * mixed-precision training on
 * accelerators, only the products' inputs lose precision (relative error
 * 2^-9 per input); sums, outputs and everything else stay FP32.
 */
#ifndef PREFT_TENSOR_GEMM_TRAIN_H
#define PREFT_TENSOR_GEMM_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "base/threadpool.h"
#include "preft/model.h" /* preft_matmul_precision */
#include "tensor/gemm.h" /* preft_gemm_out */

/* y[N,M] (+)= x[N,K] · W[M,K]ᵀ for an FP32 W, at precision prec. */
void preft_train_gemm(preft_pool *pool, preft_matmul_precision prec, float *y, int y_stride, const float *x,
                      int x_stride, const float *w, int n, int k, int m, int accumulate);
/* outs[i].y[N, outs[i].m] = x[N,K] · outs[i].w[outs[i].m, K]ᵀ for each
 * output (weights FP32 at precision prec, or block-quantized), as one job
 * on the pool where the CPU allows (preft_gemm_multi; at BF16 with
 * vdpbf16ps x rounded once and each FP32 W rounded as its panels are
 * packed, preft_gemm_bf16_f32w_multi, or below 16 rows into a copy for
 * the rows kernel), else one preft_train_gemm (or preft_gemm) per output:
 * the same results either way. No epilogues. */
void preft_train_gemm_multi(preft_pool *pool, preft_matmul_precision prec, const float *x, int x_stride,
                            int n, int k, const preft_gemm_out *outs, int n_outs);
/* preft_gemm_dx and preft_gemm_dw at precision prec. */
void preft_train_gemm_dx(preft_pool *pool, preft_matmul_precision prec, float *dx, int dx_stride,
                         const float *dy, int dy_stride, const float *w, int n, int m, int k, int accumulate);
void preft_train_gemm_dw(preft_pool *pool, preft_matmul_precision prec, float *dw, const float *dy,
                         int dy_stride, const float *x, int x_stride, int n, int m, int k);
/* Both of one linear layer: dW += dyᵀ·x (dw NULL: skipped), then
 * dx (+)= dy·W; the same results as the two calls. */
void preft_train_gemm_dwdx(preft_pool *pool, preft_matmul_precision prec, float *dw, float *dx, int dx_stride,
                           int accumulate, const float *dy, int dy_stride, const float *x, int x_stride,
                           const float *w, int n, int m, int k);

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
/* y[N,M] (+)= xt[K,N]ᵀ · wt[K,M] (FP32, xt and wt rows xt_stride and
 * wt_stride apart): a product whose left operand is stored transposed, as
 * a backward product's dyᵀ is in dy. Read k-major with no copy where the
 * kernels can (preft_gemm_kmajor_xt, AVX-512), else through a transposed
 * copy of xt in blocks of features; the same bits either way. */
void preft_gemm_tn(preft_pool *pool, float *y, int y_stride, const float *xt, int xt_stride, const float *wt,
                   int wt_stride, int n, int k, int m, int accumulate);
/* out[i] = bf16(in[i]) for i < n (nearest even), over the pool. */
void preft_round_bf16(preft_pool *pool, uint16_t *out, const float *in, size_t n);
/* in[rows, cols] (rows in_stride floats apart) as the left operand of a
 * product over its rows, inᵀ, in the pair layout of
 * preft_gemm_bf16_kmajor_pairs: out[q·xpair + 2c + {0, 1}] = bf16(in[2q +
 * {0, 1}][c]) (xpair >= 2·cols; the second half of an odd last pair zero),
 * two rows read at a time, no transpose. With rows_out, the rows are also
 * rounded into rows of kp (a multiple of 32 >= cols, zeros past cols) from
 * the same reads. */
void preft_round_pairs_bf16(preft_pool *pool, uint16_t *out, size_t xpair, uint16_t *rows_out, size_t kp,
                            const float *in, int in_stride, int rows, int cols);

#endif
