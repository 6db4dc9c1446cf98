/* gemm_kern.h - internal: the kernels behind preft_gemm, one table per CPU
 * path (see cpu.h). gemm.c owns blocking and threading; a kernel table only
 * knows how to do one tile.
 *
 * Legend as in gemm.h: N token rows of x, K input features, M output
 * features (rows of w). Two regimes:
 *
 *  - rows (decode, small N): y[0:n, j0:j1] (+)= x[0:n, 0:K] · w[j0:j1, 0:K]ᵀ
 *    streams every weight row once and dots it with all n rows of x, so the
 *    weights (the only traffic that matters) are read once per call.
 *  - pack + tile (prefill, larger N): a panel of 16 weight rows × kc input
 *    features is converted to FP32 and transposed into panel[kc][16]
 *    (k-major, rows past the matrix's edge zero), then reused by every
 *    MR-row tile of x: y[0:mr, 0:nr] (+)= x[0:mr, k0:k0+kc] · panel.
 */
#ifndef PREFT_TENSOR_GEMM_KERN_H
#define PREFT_TENSOR_GEMM_KERN_H

#include <stddef.h>

#include "tensor/dtype.h"

#define PREFT_GEMM_MR 6  /* rows of x per register tile */
#define PREFT_GEMM_NR 16 /* weight rows (= columns of y) per panel */

typedef struct {
  /* panel[kc][16] = w[j0+jj, k0+kk] as FP32 for jj < nr, 0 for nr <= jj < 16.
   * k is the row length of w (elements). prefetch_next: also start loading
   * the next panel's rows (j0+16 ...), worth it when few tiles of x will
   * use this panel (small N) and memory latency would otherwise show. */
  void (*pack)(float *panel, const void *w, preft_dtype wdt, size_t k, int j0, int nr, int k0, int kc,
               int prefetch_next);
  /* y[mr, nr] = (accumulate ? y : 0) + x[mr, kc] · panel[kc][0:nr];
   * 1 <= mr <= MR, 1 <= nr <= NR; x rows xs apart, y rows ys apart. */
  void (*tile)(int kc, const float *x, size_t xs, const float *panel, float *y, size_t ys, int mr, int nr,
               int accumulate);
  /* y[0:n, j0:j1] = (accumulate ? y : 0) + x[0:n, 0:k] · w[j0:j1, 0:k]ᵀ. */
  void (*rows)(float *y, size_t ys, const float *x, size_t xs, const void *w, preft_dtype wdt, int n, int k,
               int j0, int j1, int accumulate);
  const char *name;
} preft_gemm_kernels;

extern const preft_gemm_kernels preft_gemm_portable;
#if defined(__x86_64__) || defined(__i386__)
#define PREFT_HAVE_AVX_KERNELS 1
extern const preft_gemm_kernels preft_gemm_avx;
#endif

#endif
