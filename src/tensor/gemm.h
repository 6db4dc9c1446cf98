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
 * Block-quantized weights (wdt Q8_0, Q4_0, Q5_0, Q4_K, Q6_K) go to
 * preft_qgemm (quant.h): x is quantized to int8 per block and the products
 * run as int8 dot products.
 *
 * Half-precision weights are converted to FP32 inside the kernel's tiles;
 * the full matrix is never converted. Multi-threaded over the pool.
 * preft_gemm_ref is the plain reference the tests compare against.
 *
 * Matmul precision (process-wide, like torch.set_float32_matmul_precision):
 *  - exact (default): every product is the FP32 product of x and the
 *    weight (halves widen exactly); only the FP32 sums round.
 *  - bf16: for BF16 weights on CPUs with AVX512_BF16, x is rounded to BF16
 *    (nearest even) once per call and the products run as vdpbf16ps with
 *    FP32 accumulation: twice the multiply-adds per instruction. This is
 *    what llama.cpp does for BF16 weights and what PyTorch does in a BF16
 *    model (whose activations are BF16 anyway); relative error ~2^-9 per
 *    input. F32/F16 weights and other CPUs stay exact.
 */
#ifndef PREFT_TENSOR_GEMM_H
#define PREFT_TENSOR_GEMM_H

#include "base/threadpool.h"
#include "preft/model.h" /* preft_matmul_precision */
#include "tensor/dtype.h"

void preft_gemm(preft_pool *pool, float *y, int y_stride, const float *x, int x_stride, const void *w,
                preft_dtype wdt, int n, int k, int m, int accumulate);

/* y[N,M] (+)= x[N,K] · wt[K,M] for an FP32 weight given k-major (rows
 * wt_stride floats apart): a matrix stored as the transpose of what
 * preft_gemm takes, read without a transposed copy. The backward pass's
 * products are of this kind (dx = dy·W reads W [M,K] as wt with K the
 * output; dW = dyᵀ·x reads x as wt), gemm_train.h. Exact FP32, always the
 * pack + tile regime (packing a k-major panel is a copy of rows), so a row
 * of x gets the same bits in a call of any N. */
void preft_gemm_kmajor(preft_pool *pool, float *y, int y_stride, const float *x, int x_stride,
                       const float *wt, int wt_stride, int n, int k, int m, int accumulate);

/* An epilogue: work on a block of an output while the task that computed
 * it still has it in cache (e.g. the LoRA expand, adapter_plan.h). fn is
 * called once y[i0:i1, j0:j1] (rows of x, columns of y; y is the output's
 * own pointer and row stride) holds its final product, on the thread that
 * computed it; the blocks of one call cover the output exactly once, and
 * fn may read and write only its block of y. Blocks span at most a few
 * hundred rows and at most 64 KiB of y (a packed panel of 16 columns, or
 * 48 columns or more of the rows kernel); their order and the thread that runs each are not
 * fixed. Not supported with quantized weights. */
typedef struct {
  void (*fn)(const void *ctx, float *y, size_t ys, int i0, int i1, int j0, int j1);
  const void *ctx;
} preft_gemm_epilogue;

/* Several products of the same x, run as one job on the pool (one wait
 * instead of one per product, and the threads balance across all of them):
 *   outs[i].y[N, outs[i].m] (+)= x[N,K] · outs[i].w[outs[i].m, K]ᵀ
 * e.g. the q, k and v projections, or gate and up; then outs[i].epi, if
 * not NULL, on every block of outs[i].y. Same results as separate
 * preft_gemm calls (and each epilogue run over the whole output after). */
typedef struct {
  float *y;
  int y_stride;
  const void *w;
  preft_dtype wdt;
  int m;
  const preft_gemm_epilogue *epi; /* NULL: none */
} preft_gemm_out;

#define PREFT_GEMM_MULTI_MAX 8

void preft_gemm_multi(preft_pool *pool, const float *x, int x_stride, int n, int k,
                      const preft_gemm_out *outs, int n_outs, int accumulate);

/* y[N,M] (+)= bf16(x)[N,K] · w[M,K]ᵀ with w already BF16 and FP32 sums,
 * whatever the process-wide precision (the training products at BF16
 * precision, gemm_train.h). x is rounded to BF16 (nearest even) once per
 * call. On AVX512_BF16 CPUs (preft_gemm_bf16_native) the products run as
 * vdpbf16ps; elsewhere an emulation runs them through the FP32 kernels on
 * the rounded x: a product of two BF16 values is exact in FP32, so both
 * give the exact BF16 products with FP32 sums, in different orders (and
 * vdpbf16ps flushes subnormal inputs and results to zero). */
void preft_gemm_bf16(preft_pool *pool, float *y, int y_stride, const float *x, int x_stride,
                     const uint16_t *w, int n, int k, int m, int accumulate);
/* preft_gemm_multi of BF16 weights (every outs[i].wdt) at BF16 precision
 * whatever the process-wide one, x rounded once for all the outputs: the
 * products of preft_gemm_bf16, one job on the pool. Only where
 * preft_gemm_bf16_native(). */
void preft_gemm_bf16_multi(preft_pool *pool, const float *x, int x_stride, int n, int k,
                           const preft_gemm_out *outs, int n_outs, int accumulate);
/* preft_gemm_kmajor with x given transposed, as stored: xt[K, N] (rows
 * xt_stride apart), y[N,M] (+)= xtᵀ·wt, read k-major by the tile with no
 * copy (a backward product's dW = dyᵀ·x passes dy itself). The same bits as
 * preft_gemm_kmajor on a transposed copy (each output sums over k in
 * order). Returns 0, doing nothing, where this CPU path's kernels cannot
 * read x k-major (below avx512): the caller transposes. */
int preft_gemm_kmajor_xt(preft_pool *pool, float *y, int y_stride, const float *xt, int xt_stride,
                         const float *wt, int wt_stride, int n, int k, int m, int accumulate);
/* preft_gemm_bf16_multi of FP32 weights (every outs[i].wdt, no epilogues):
 * each panel of W rounded to BF16 as it is packed (two neighbours of a row
 * a pair, 16 × 16 pairs transposed in registers) for the 12 × 32 vdpbf16ps
 * tile, x rounded once; the training forward at BF16 precision with no
 * rounded copy of W. The same products as preft_gemm_bf16 on bf16(W), each
 * output summed in feature order in one lane (another order of sums than
 * the rows kernel's). Only where preft_gemm_bf16_native(). */
void preft_gemm_bf16_f32w_multi(preft_pool *pool, const float *x, int x_stride, int n, int k,
                                const preft_gemm_out *outs, int n_outs, int accumulate);
/* y[N,M] (+)= bf16(x)[N,K] · bf16(wt)[K,M] with wt FP32 and k-major (rows
 * of K, wt_stride apart: a backward product's W or x as stored), FP32
 * sums, whatever the process-wide precision. x is FP32 (rounded here, rows
 * x_stride apart) or already BF16 (xb: rows of kp = K rounded up to 32,
 * zeros past K; x NULL). On AVX512_BF16 CPUs each panel of wt is rounded
 * and laid out in pairs of features as it is packed (no transpose) for a
 * 12 × 32 vdpbf16ps tile; elsewhere an emulation on the FP32 kernels, the
 * same products in another order of sums (as preft_gemm_bf16). */
void preft_gemm_bf16_kmajor(preft_pool *pool, float *y, int y_stride, const float *x, int x_stride,
                            const uint16_t *xb, const float *wt, int wt_stride, int n, int k, int m,
                            int accumulate);
/* preft_gemm_bf16_kmajor with x already BF16 in the pair layout: row i's
 * features 2q and 2q+1 side by side at xp[q·xpair + 2i], xp[q·xpair + 2i + 1]
 * (xpair >= 2N; an odd K's last pair ends in a zero). That is two rows of
 * xᵀ interleaved, which a backward product's dyᵀ is made into from two rows
 * of dy at a time, with no transpose (gemm_train.c). */
void preft_gemm_bf16_kmajor_pairs(preft_pool *pool, float *y, int y_stride, const uint16_t *xp, size_t xpair,
                                  const float *wt, int wt_stride, int n, int k, int m, int accumulate);
/* Whether preft_gemm_bf16 runs vdpbf16ps on this CPU path (else: emulated,
 * same numbers up to the order of the sums, slower than FP32). */
int preft_gemm_bf16_native(void);

/* preft_matmul_precision and its setter, getter, parser and name are public
 * (preft/model.h). */

void preft_gemm_ref(float *y, int y_stride, const float *x, int x_stride, const void *w, preft_dtype wdt,
                    int n, int k, int m, int accumulate);
/* preft_gemm_bf16's reference: bf16(x)·wᵀ summed exactly in double. */
void preft_gemm_bf16_ref(float *y, int y_stride, const float *x, int x_stride, const uint16_t *w, int n,
                         int k, int m, int accumulate);

#endif
