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
 *  - pack + tile (prefill, larger N): a panel of nr weight rows × kc input
 *    features is converted and transposed into a k-major panel (rows past
 *    the matrix's edge zero), then reused by every mr-row tile of x:
 *    y[0:mr, 0:nr] (+)= x[0:mr, k0:k0+kc] · panel.
 *
 * The FP32 tables (portable, avx, avx2, avx512) take x as FP32. The BF16 table
 * takes x already rounded to BF16 by the driver (gemm.h's precision), so
 * its products are exact in FP32 and only the sums round.
 */
#ifndef PREFT_TENSOR_GEMM_KERN_H
#define PREFT_TENSOR_GEMM_KERN_H

#include <stddef.h>

#include "tensor/dtype.h"

#define PREFT_GEMM_MR 6                       /* FP32 kernels: rows of x per register tile */
#define PREFT_GEMM_NR 16                      /* FP32 kernels: weight rows (= columns of y) per panel */
#define PREFT_GEMM_PANEL_BYTES (512 * 32 * 4) /* every table's panel fits: kc <= 512, nr <= 32 */

typedef struct {
  /* Fills the panel from w[j0 : j0+nr, k0 : k0+kc] (rows past nr zero), in
   * the layout the table's tile reads; FP32 tables: panel[kc][nr] as FP32.
   * k is the row length of w (elements). prefetch_next: also start loading
   * the next panel's rows (j0+nr_max ...), worth it when few tiles of x
   * will use this panel (small N) and memory latency would otherwise show. */
  void (*pack)(void *panel, const void *w, preft_dtype wdt, size_t k, int j0, int nr, int k0, int kc,
               int prefetch_next);
  /* y[mr, nr] = (accumulate ? y : 0) + x[mr, kc] · panel[kc][0:nr];
   * 1 <= mr <= table.mr, 1 <= nr <= table.nr; x (in the table's x type,
   * already offset to feature k0) rows xs elements apart, y rows ys apart. */
  void (*tile)(int kc, const void *x, size_t xs, const void *panel, float *y, size_t ys, int mr, int nr,
               int accumulate);
  /* y[0:n, j0:j1] = (accumulate ? y : 0) + x[0:n, 0:k] · w[j0:j1, 0:k]ᵀ. */
  void (*rows)(float *y, size_t ys, const void *x, size_t xs, const void *w, preft_dtype wdt, int n, int k,
               int j0, int j1, int accumulate);
  int mr, nr; /* register tile: rows of x, weight rows per panel */
  /* Optional (NULL: none): the same for outputs of at most nr_narrow
   * columns (a LoRA's rank-16 shrink), whose wide panel would be half
   * zeros. A column's sums run in the same order as in a wide tile, so
   * either gives the same bits. */
  void (*pack_narrow)(void *panel, const void *w, preft_dtype wdt, size_t k, int j0, int nr, int k0, int kc,
                      int prefetch_next);
  void (*tile_narrow)(int kc, const void *x, size_t xs, const void *panel, float *y, size_t ys, int mr,
                      int nr, int accumulate);
  int nr_narrow;
  /* Optional (NULL: the FP32 tables' panel, a copy of rows): the panel of
   * an FP32 weight stored k-major, wt[K][M] with rows ws apart
   * (preft_gemm_kmajor, preft_gemm_bf16_kmajor): columns j0 : j0+nr, features
   * k0 : k0+kc, in the layout this table's tile reads. */
  void (*pack_kmajor)(void *panel, const float *wt, size_t ws, int j0, int nr, int k0, int kc);
  /* Optional (NULL: none): tile with x stored k-major, a step of
   * features after another xstep elements apart, the tile's rows side by
   * side in each: FP32 x, row r's feature q at x + q·xstep + r (xᵀ as
   * stored: a backward product's dy, preft_gemm_kmajor_xt); BF16 x in the
   * pair layout, row r's features 2q and 2q+1 at x + q·xstep + 2r
   * (preft_gemm_bf16_kmajor_pairs). x is offset to feature k0 and row 0 of
   * the tile. */
  void (*tile_xk)(int kc, const void *x, size_t xstep, const void *panel, float *y, size_t ys, int mr, int nr,
                  int accumulate);
  /* pack and tile may be NULL when rows_max_n covers every N. */
  int rows_max_n[3]; /* per preft_dtype: largest N for the rows kernel */
  /* NULL for tables that take FP32 x. Otherwise the tile and rows kernels
   * take x as BF16 rows of kp elements (K rounded up to 32, zero-padded),
   * and this rounds them: dst[i][0:kp] = bf16(x[i][0:k]), zeros past k. */
  void (*round_x)(uint16_t *dst, size_t kp, const float *x, size_t xs, int n, int k);
  const char *name;
} preft_gemm_kernels;

/* Rows of x in pass pi when the rows kernels split n rows evenly into
 * `passes` passes (of at most 4 or 6 rows, by kernel). */
static inline int preft_gemm_pass_rows(int n, int passes, int pi) {
  return n * (pi + 1) / passes - n * pi / passes;
}

/* Runs CALL(DT) with DT the weight type wdt as a compile-time constant
 * (F16, BF16, anything else F32), so that an always-inlined kernel body is
 * compiled once per weight type. */
#define PREFT_GEMM_DTYPE_CASES(wdt, CALL) \
  do {                                    \
    switch (wdt) {                        \
      case PREFT_F16:                     \
        CALL(PREFT_F16);                  \
        break;                            \
      case PREFT_BF16:                    \
        CALL(PREFT_BF16);                 \
        break;                            \
      default:                            \
        CALL(PREFT_F32);                  \
        break;                            \
    }                                     \
  } while (0)

extern const preft_gemm_kernels preft_gemm_portable;
#if defined(__x86_64__) || defined(__i386__)
#define PREFT_HAVE_AVX_KERNELS 1
extern const preft_gemm_kernels preft_gemm_avx;         /* AVX + FMA + F16C */
extern const preft_gemm_kernels preft_gemm_avx2;        /* the same kernels, AVX2 BF16 widening */
extern const preft_gemm_kernels preft_gemm_avx512;      /* FP32 on zmm: 12 x 32 tiles, 4 x 6 dots */
extern const preft_gemm_kernels preft_gemm_avx512_bf16; /* BF16 weights, BF16 x, vdpbf16ps */
#endif

#endif
