/* gemm_avx512_bf16.c - preft_gemm's kernels for BF16 weights at BF16
 * matmul precision (gemm.h), on CPUs with AVX-512 F/BW/VL and AVX512_BF16.
 *
 * vdpbf16ps multiplies 32 BF16 pairs and adds them into 16 FP32 lanes:
 * lane i += a[2i]·b[2i] + a[2i+1]·b[2i+1]. The products of two BF16 values
 * are exact in FP32, so the result differs from the exact path only by x
 * having been rounded to BF16 (by preft_gemm, once per call, nearest-even)
 * and by the order of the FP32 sums. That is twice the multiply-adds per
 * instruction of an FP32 FMA and no widening of the weights at all.
 *
 * Only the rows regime (gemm_kern.h) exists here, at every N:
 *  - x: BF16 rows of kp elements, kp = K rounded up to 32, zero-padded, so
 *    a 32-element load past K reads zeros.
 *  - R = 4 weight rows × NT <= 6 rows of x in 24 zmm accumulators, 32
 *    features a step; the K tail loads weights with a mask (a weight row
 *    ends where the next begins, or where the matrix does). Four
 *    accumulators reduce into four outputs with one shuffle tree.
 *  - N = 1 (batch-1 decode) streams the weight rows instead: two streams
 *    per thread (the first half's rows beside the second half's), a line
 *    prefetched ROW_PF bytes ahead in each. The 4 interleaved rows of the
 *    general walk ran the Qwen2.5-0.5B decode step 15-18% slower than one
 *    stream (medians of 150 alternating steps), and one stream 14-18%
 *    slower than two (docs/KERNELS.md). Each row keeps dot_block's
 *    single accumulator and its reduction, so a row of x gets the same
 *    bits alone as in a batch.
 */
#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>
#include <limits.h>

#include "tensor/gemm_kern.h"
#include "tensor/load16_avx512.h"
#include "tensor/rows_avx512.h"

#define TGT "avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma,f16c"
#define BF_FN __attribute__((target(TGT)))
#define BF_INLINE static inline __attribute__((always_inline, target(TGT)))

BF_INLINE __m512bh as_bh(__m512i v) { return (__m512bh)v; }

BF_INLINE void prefetch_l2(uintptr_t a) { _mm_prefetch((const char *)a, _MM_HINT_T1); }

/* ---- x to BF16 ------------------------------------------------------------ */

/* dst[i][0:kp] = bf16(x[i][0:k]) rounded to nearest even, zero past k. */
static BF_FN void round_x(uint16_t *dst, size_t kp, const float *x, size_t xs, int n, int k) {
  for (int i = 0; i < n; i++) {
    const float *xi = x + (size_t)i * xs;
    uint16_t *di = dst + (size_t)i * kp;
    for (size_t kk = 0; kk < kp; kk += 32) {
      int left = k - (int)kk;
      __mmask16 m0 = preft_mask16_first(left), m1 = preft_mask16_first(left - 16);
      __m512 lo = _mm512_maskz_loadu_ps(m0, xi + kk), hi = _mm512_maskz_loadu_ps(m1, xi + kk + 16);
      _mm512_storeu_si512(di + kk, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
    }
  }
}

/* ---- rows (decode): R weight rows dotted with NT rows of x ---------------- */

/* y[0:NT, j:j+R] (+)= x[0:NT, 0:k] · w[j:j+R, 0:k]ᵀ; prefetches pf_adv
 * bytes from pf on every step (see bf_rows). */
BF_INLINE void dot_block(const int R, const int NT, float *y, size_t ys, const uint16_t *x, size_t xs,
                         const uint16_t *w, int k, int j, int accumulate, uintptr_t pf, size_t pf_adv) {
  __m512 acc[4][6];
#pragma GCC unroll 8
  for (int r = 0; r < R; r++)
#pragma GCC unroll 8
    for (int n = 0; n < NT; n++) acc[r][n] = _mm512_setzero_ps();
  const uint16_t *wr = w + (size_t)j * (size_t)k;
  const int k32 = k & ~31;
  for (int kk = 0; kk < k32; kk += 32) {
    for (size_t o = 0; o < pf_adv; o += 64) prefetch_l2(pf + o);
    pf += pf_adv;
    __m512i wv[4];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) wv[r] = _mm512_loadu_si512(wr + (size_t)r * (size_t)k + (size_t)kk);
#pragma GCC unroll 8
    for (int n = 0; n < NT; n++) {
      __m512i xv = _mm512_loadu_si512(x + (size_t)n * xs + (size_t)kk);
#pragma GCC unroll 8
      for (int r = 0; r < R; r++) acc[r][n] = _mm512_dpbf16_ps(acc[r][n], as_bh(wv[r]), as_bh(xv));
    }
  }
  if (k32 < k) {
    __mmask32 m = (__mmask32)((1ull << (k - k32)) - 1);
    __m512i wv[4];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) wv[r] = _mm512_maskz_loadu_epi16(m, wr + (size_t)r * (size_t)k + (size_t)k32);
#pragma GCC unroll 8
    for (int n = 0; n < NT; n++) {
      __m512i xv = _mm512_maskz_loadu_epi16(m, x + (size_t)n * xs + (size_t)k32);
#pragma GCC unroll 8
      for (int r = 0; r < R; r++) acc[r][n] = _mm512_dpbf16_ps(acc[r][n], as_bh(wv[r]), as_bh(xv));
    }
  }
  preft_rows_store_avx512(R, NT, acc, y, ys, j, accumulate);
}

/* dot_block for r weight rows (4 or 1) and nt rows of x (1 to 6). */
static BF_FN void dot_dispatch(int r, int nt, preft_dtype dt, float *y, size_t ys, const void *xv, size_t xs,
                               const void *wv, int k, int j, int accumulate, uintptr_t pf, size_t pf_adv) {
  (void)dt; /* BF16 */
  const uint16_t *x = xv, *w = wv;
#define DOT(NT, R) dot_block(R, NT, y, ys, x, xs, w, k, j, accumulate, pf, pf_adv)
  if (r == 4)
    PREFT_ROWS512_NT_CASES(nt, DOT, 4);
  else
    PREFT_ROWS512_NT_CASES(nt, DOT, 1);
#undef DOT
}

#define ROW_PF 2048 /* bytes ahead of a row stream's loads (1024-2048 measured alike) */

/* x · wr[s] over k features for S rows (1 or 2, far apart) read side by
 * side: dot_block's steps on one accumulator a row, each reduced as
 * preft_rows_store_avx512 reduces every row, into out[0:S]. */
BF_INLINE void dot_rows_stream(float *out, const uint16_t *x, const uint16_t *const *wr, int k, const int S) {
  __m512 acc[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
  const int k32 = k & ~31;
  for (int kk = 0; kk < k32; kk += 32) {
    const __m512i xv = _mm512_loadu_si512(x + kk);
    for (int s = 0; s < S; s++) {
      _mm_prefetch((const char *)(wr[s] + kk) + ROW_PF, _MM_HINT_T0);
      acc[s] = _mm512_dpbf16_ps(acc[s], as_bh(_mm512_loadu_si512(wr[s] + kk)), as_bh(xv));
    }
  }
  if (k32 < k) {
    __mmask32 m = (__mmask32)((1ull << (k - k32)) - 1);
    for (int s = 0; s < S; s++)
      acc[s] = _mm512_dpbf16_ps(acc[s], as_bh(_mm512_maskz_loadu_epi16(m, wr[s] + k32)),
                                as_bh(_mm512_maskz_loadu_epi16(m, x + k32)));
  }
  for (int s = 0; s < S; s++) out[s] = preft_sum1_avx512(acc[s]);
}

/* Weight rows [j0, j1) against one row of x: row j of the first half
 * beside row j + h of the second (two streams, as the AVX2 rows and the
 * quantized kernels read one row of x; docs/KERNELS.md), the odd row
 * left alone. */
static BF_FN void stream_rows(float *y, const uint16_t *x, const uint16_t *w, int k, int j0, int j1,
                              int accumulate) {
  const int h = (j1 - j0) / 2;
  float s[2];
  for (int j = j0; j < j0 + h; j++) {
    const uint16_t *wr[2] = {w + (size_t)j * (size_t)k, w + (size_t)(j + h) * (size_t)k};
    dot_rows_stream(s, x, wr, k, 2);
    y[j] = accumulate ? y[j] + s[0] : s[0];
    y[j + h] = accumulate ? y[j + h] + s[1] : s[1];
  }
  for (int j = j0 + 2 * h; j < j1; j++) {
    const uint16_t *wr[1] = {w + (size_t)j * (size_t)k};
    dot_rows_stream(s, x, wr, k, 1);
    y[j] = accumulate ? y[j] + s[0] : s[0];
  }
}

/* preft_rows_groups_avx512 with this dot kernel, 32 features a step (at
 * most 4 lines prefetched a step: a step reads 4); one row of x streams. */
static BF_FN void bf_rows(float *y, size_t ys, const void *x, size_t xs, const void *w, preft_dtype wdt,
                          int n, int k, int j0, int j1, int accumulate) {
  if (n == 1)
    stream_rows(y, x, w, k, j0, j1, accumulate);
  else
    preft_rows_groups_avx512(dot_dispatch, 32, 2, 2, 256, y, ys, x, xs, w, wdt, n, k, j0, j1, accumulate);
}

/* Only BF16 weights reach this table. The rows kernel runs at every N: it
 * needs no panel (vdpbf16ps takes the weights as stored) and measured
 * 330-390 GFLOP/s on 2 cores from N = 16 to 256, where a packed 12 × 32
 * tile of broadcasts reached 250-340 (docs/KERNELS.md). */
const preft_gemm_kernels preft_gemm_avx512_bf16 = {
    .rows = bf_rows, .rows_max_n = {0, 0, INT_MAX}, .round_x = round_x, .name = "avx512-bf16"};

#endif
