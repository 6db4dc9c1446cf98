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
 * BF16 weights take only the rows regime (gemm_kern.h), at every N:
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
 *
 * FP32 weights (training at BF16 precision, gemm_train.c) take the pack
 * regime: a pair panel (each 32-bit lane two neighbouring features of one
 * output column) rounded as it is packed, from a row-major W (bf_pack_rows,
 * the forward) or a k-major one (bf_pack_kmajor, the backward), and a
 * 12 × 32 tile of broadcasts whose x is BF16 rows or the pair layout of
 * dyᵀ (bf_tile, bf_tile_xk).
 */
#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>
#include <limits.h>
#include <string.h>

#include "tensor/gemm_kern.h"
#include "tensor/load16_avx512.h"
#include "tensor/rows_avx512.h"

#define TGT "avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma,f16c"
#define BF_FN __attribute__((target(TGT)))
#define BF_INLINE static inline __attribute__((always_inline, target(TGT)))

#define MR_BF 12 /* k-major tile: rows of x */
#define NR_BF 32 /* ... and columns of y (a panel's width) */

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

/* ---- k-major FP32 weights: pair panels and a 12 × 32 tile ------------------ */

/* panel[kc/2 (rounded up)][NR][2] = bf16(wt[k0 + 2p + {0, 1}][j0 + j]):
 * two consecutive k-major rows of the weight (a backward product's W or x,
 * as stored) rounded to nearest even and interleaved, so that each 32-bit
 * lane holds the pair of features vdpbf16ps sums. Columns past nr and the
 * second feature of an odd last pair are zero. */
static BF_FN void bf_pack_kmajor(void *panel, const float *wt, size_t ws, int j0, int nr, int k0, int kc) {
  const __mmask16 m0 = preft_mask16_first(nr), m1 = preft_mask16_first(nr - 16);
  uint16_t *out = panel;
  for (int kk = 0; kk < kc; kk += 2, out += 2 * NR_BF) {
    const float *a = wt + (size_t)(k0 + kk) * ws + (size_t)j0;
    const float *b = kk + 1 < kc ? a + ws : NULL;
    for (int h = 0; h < 2; h++) {
      const __mmask16 m = h ? m1 : m0;
      __m512 va = _mm512_maskz_loadu_ps(m, a + 16 * h);
      __m512 vb = b ? _mm512_maskz_loadu_ps(m, b + 16 * h) : _mm512_setzero_ps();
      _mm512_store_si512(out + 32 * h, preft_pairs16_bf16(va, vb));
    }
  }
}

/* The same pair panel from a row-major FP32 W [M, K] (the forward's
 * weight as stored): panel[p][j][2] = bf16(w[j0 + j][k0 + 2p + {0, 1}]).
 * A pair is two neighbours in a row, so per 16 rows and 32 features the
 * rows are rounded (16 pairs a row, one vcvtne2ps2bf16) and the 16 × 16
 * block of pairs transposed in registers. Rows past nr and features past
 * kc are zero. */
static BF_FN void bf_pack_rows(void *panel, const void *wv, preft_dtype wdt, size_t k, int j0, int nr, int k0,
                               int kc, int prefetch_next) {
  (void)wdt; /* FP32 (the training forward at BF16 precision) */
  (void)prefetch_next;
  const float *w = wv;
  float *out = panel; /* [kc/2 rounded up][NR_BF] pairs, 32 bits each */
  const int pairs = (kc + 1) / 2;
  for (int h = 0; h < 2; h++) {
    for (int kk = 0; kk < kc; kk += 32) {
      const __mmask16 m0 = preft_mask16_first(kc - kk), m1 = preft_mask16_first(kc - kk - 16);
      __m512 r[16];
      for (int j = 0; j < 16; j++) {
        const int row = 16 * h + j;
        /* the next panel's row over these features, whatever prefetch_next
         * says: it arrives while this panel computes (1.2x at N = 64-256
         * on a 4864 × 896 W from memory, docs/PERFORMANCE.md) */
        for (int b = 0; b < 128; b += 64)
          prefetch_l2((uintptr_t)w + ((uintptr_t)(j0 + NR_BF + row) * k + (uintptr_t)(k0 + kk)) * 4 +
                      (uintptr_t)b);
        if (row >= nr) {
          r[j] = _mm512_setzero_ps();
          continue;
        }
        const float *src = w + (size_t)(j0 + row) * k + (size_t)(k0 + kk);
        r[j] =
            (__m512)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(m1, src + 16), _mm512_maskz_loadu_ps(m0, src));
      }
      preft_transpose16_avx512(r); /* of 32-bit elements: the pairs */
      for (int p = 0; p < 16 && kk / 2 + p < pairs; p++)
        _mm512_store_ps(out + (size_t)(kk / 2 + p) * NR_BF + 16 * h, r[p]);
    }
  }
}

/* y[R, 32] (+)= x[R, kc] · panel: per pair of features, two panel loads and
 * one 32-bit broadcast of each row's pair of x (BF16, zero past K, so an
 * odd kc's last pair reads a zero); each output's sum runs in its own lane
 * in feature order. 24 accumulators. Row r's pair q (features 2q, 2q+1) is
 * at x + r·xs + q·xpair: rows of x (xpair = 2) or the pair layout (xs = 2,
 * pairs xpair apart: preft_gemm_bf16_kmajor_pairs). */
BF_INLINE void bf_tile_mr(const int R, int kc, const uint16_t *x, size_t xs, size_t xpair, const uint16_t *p,
                          float *y, size_t ys, __mmask16 m0, __mmask16 m1, int accumulate) {
  __m512 c0[MR_BF], c1[MR_BF];
#pragma GCC unroll 12
  for (int r = 0; r < R; r++) {
    c0[r] = accumulate ? _mm512_maskz_loadu_ps(m0, y + (size_t)r * ys) : _mm512_setzero_ps();
    c1[r] = accumulate ? _mm512_maskz_loadu_ps(m1, y + (size_t)r * ys + 16) : _mm512_setzero_ps();
  }
  for (int q = 0; 2 * q < kc; q++, x += xpair) {
    const __m512bh b0 = as_bh(_mm512_load_si512(p)), b1 = as_bh(_mm512_load_si512(p + 32));
    p += 2 * NR_BF;
#pragma GCC unroll 12
    for (int r = 0; r < R; r++) {
      int32_t pair;
      memcpy(&pair, x + (size_t)r * xs, sizeof pair);
      const __m512bh a = as_bh(_mm512_set1_epi32(pair));
      c0[r] = _mm512_dpbf16_ps(c0[r], b0, a);
      c1[r] = _mm512_dpbf16_ps(c1[r], b1, a);
    }
  }
#pragma GCC unroll 12
  for (int r = 0; r < R; r++) {
    _mm512_mask_storeu_ps(y + (size_t)r * ys, m0, c0[r]);
    _mm512_mask_storeu_ps(y + (size_t)r * ys + 16, m1, c1[r]);
  }
}

#define BF_TILE_CASE(R, XS, XPAIR)                                      \
  case R:                                                               \
    bf_tile_mr(R, kc, xv, XS, XPAIR, panel, y, ys, m0, m1, accumulate); \
    break;

#define BF_TILE_SWITCH(XS, XPAIR)                                         \
  switch (mr) {                                                           \
    BF_TILE_CASE(12, XS, XPAIR)                                           \
    BF_TILE_CASE(11, XS, XPAIR)                                           \
    BF_TILE_CASE(10, XS, XPAIR)                                           \
    BF_TILE_CASE(9, XS, XPAIR)                                            \
    BF_TILE_CASE(8, XS, XPAIR)                                            \
    BF_TILE_CASE(7, XS, XPAIR)                                            \
    BF_TILE_CASE(6, XS, XPAIR)                                            \
    BF_TILE_CASE(5, XS, XPAIR)                                            \
    BF_TILE_CASE(4, XS, XPAIR)                                            \
    BF_TILE_CASE(3, XS, XPAIR)                                            \
    BF_TILE_CASE(2, XS, XPAIR)                                            \
    default:                                                              \
      bf_tile_mr(1, kc, xv, XS, XPAIR, panel, y, ys, m0, m1, accumulate); \
      break;                                                              \
  }

/* x as rows xs elements apart */
static BF_FN void bf_tile(int kc, const void *xv, size_t xs, const void *panel, float *y, size_t ys, int mr,
                          int nr, int accumulate) {
  __mmask16 m0 = preft_mask16_first(nr), m1 = preft_mask16_first(nr - 16);
  BF_TILE_SWITCH(xs, 2)
}

/* x in the pair layout, pairs xpair elements apart */
static BF_FN void bf_tile_xk(int kc, const void *xv, size_t xpair, const void *panel, float *y, size_t ys,
                             int mr, int nr, int accumulate) {
  __mmask16 m0 = preft_mask16_first(nr), m1 = preft_mask16_first(nr - 16);
  BF_TILE_SWITCH(2, xpair)
}

/* BF16 weights take the rows kernel at every N: it needs no panel
 * (vdpbf16ps takes the weights as stored) and measured 330-390 GFLOP/s on
 * 2 cores from N = 16 to 256, where a packed 12 × 32 tile of broadcasts on
 * panels made from row-major weights reached 250-340 (docs/KERNELS.md).
 * FP32 k-major weights (preft_gemm_bf16_kmajor: the backward products'
 * W and x as stored) take the pair panels and the tile instead: their
 * panel is two rows interleaved, no transpose. */
const preft_gemm_kernels preft_gemm_avx512_bf16 = {.rows = bf_rows,
                                                   .pack = bf_pack_rows,
                                                   .tile = bf_tile,
                                                   .tile_xk = bf_tile_xk,
                                                   .pack_kmajor = bf_pack_kmajor,
                                                   .mr = MR_BF,
                                                   .nr = NR_BF,
                                                   .rows_max_n = {0, 0, INT_MAX},
                                                   .round_x = round_x,
                                                   .name = "avx512-bf16"};

#endif
