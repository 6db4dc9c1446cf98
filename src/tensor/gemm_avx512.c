/* gemm_avx512.c - preft_gemm's FP32 kernels on 512-bit registers (exact
 * precision: FP32 x, FP32 / F16 / BF16 weights widened to FP32 as they
 * load), for CPUs on the avx512 path (cpu.h). Same two regimes and the
 * same blocking as the AVX2 kernels (gemm_avx_body.h, gemm_kern.h); where
 * the FPU executes a 512-bit FMA at the rate of a 256-bit one (Zen 4 and 5
 * servers, Intel cores with two FMA units), each instruction does twice
 * the work, and 32 registers hold twice the tile.
 *
 *  - pack + tile (prefill): a panel of 32 weight rows × kc features,
 *    transposed 16 × 16 at a time into panel[kc][32] (32 KiB at kc = 256,
 *    in L1; 64 KiB at kc = 512, in L2, read in order); a tile of 12 rows
 *    of x × 32 columns of y in 24 accumulators, one broadcast of x per
 *    two FMAs. Columns past the edge of y are
 *    masked, not copied.
 *  - rows (decode), F16 and BF16 weights: R = 4 weight rows × NT <= 6
 *    rows of x in 24 accumulators, 16 features a step; the K tail is a
 *    masked load of both. Weight rows in groups of 12, the next group
 *    prefetched into L2 at an even rate over the passes of this one. One
 *    row of x (batch-1 decode) streams the weight rows one after another
 *    instead, each with the sums and reduction it has in a group.
 *    F32 weights take the AVX2 rows kernel: 16 F32 weights are a whole
 *    cache line, and weights mapped from a safetensors file start at any
 *    multiple of 8 bytes, so most zmm loads would straddle two lines; cold
 *    (weights from memory) the zmm kernel lost 10-30 % at N = 2..8.
 *
 * A row of x gets the same bits whatever other rows share its call, as long
 * as the call stays in one regime (each row has its own accumulators, and
 * a weight type always takes the same rows kernel): the engine's tokens do
 * not depend on how requests were batched within a regime.
 */
#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>
#include <stdint.h>

#include "tensor/gemm_kern.h"
#include "tensor/load16_avx512.h"
#include "tensor/rows_avx512.h"

#define TGT "avx512f,avx512bw,avx512vl,avx2,fma,f16c"
#define Z_FN __attribute__((target(TGT)))
#define Z_INLINE static inline __attribute__((always_inline, target(TGT)))

#define MR 12        /* rows of x per register tile */
#define NR 32        /* weight rows (columns of y) per panel */
#define NR_NARROW 16 /* ... for outputs of at most 16 columns (a LoRA's shrink) */

_Static_assert(NR * 512 * 4 <= PREFT_GEMM_PANEL_BYTES, "the panel fits the driver's buffer at kc = 512");

Z_INLINE void prefetch_l2(uintptr_t a) { _mm_prefetch((const char *)a, _MM_HINT_T1); }

/* ---- packing: panel[kc][32] from 32 weight rows ------------------------- */

/* panel[kc][PW] (PW = NR, or NR_NARROW for narrow outputs) */
Z_INLINE void pack_dt(const int PW, float *panel, const void *w, const preft_dtype dt, size_t k, int j0,
                      int nr, int k0, int kc, int prefetch_next) {
  const size_t esize = dt == PREFT_F32 ? 4 : 2;
  for (int jb = 0; jb < PW; jb += 16) {
    if (jb >= nr) {
      for (int kk = 0; kk < kc; kk++) _mm512_store_ps(panel + (size_t)kk * PW + jb, _mm512_setzero_ps());
      continue;
    }
    for (int kk = 0; kk < kc; kk += 16) {
      /* The next panel's rows (j0 + 32 ...) over the same features, one
       * line per row whenever this row crosses into a new line: panels are
       * packed one after the other, so their rows arrive from memory while
       * this one's tiles compute. */
      if (prefetch_next && (kk * (int)esize) % 64 == 0) {
#pragma GCC unroll 16
        for (int jj = 0; jj < 16; jj++)
          prefetch_l2((uintptr_t)w + ((uintptr_t)(j0 + PW + jb + jj) * k + (uintptr_t)(k0 + kk)) * esize);
      }
      __mmask16 m = preft_mask16_first(kc - kk);
      __m512 r[16];
#pragma GCC unroll 16
      for (int jj = 0; jj < 16; jj++)
        r[jj] = jb + jj < nr ? preft_load16_avx512(w, dt, (size_t)(j0 + jb + jj) * k + (size_t)(k0 + kk), m)
                             : _mm512_setzero_ps();
      preft_transpose16_avx512(r);
      int n = kc - kk < 16 ? kc - kk : 16;
#pragma GCC unroll 16
      for (int i = 0; i < 16; i++)
        if (i < n) _mm512_store_ps(panel + (size_t)(kk + i) * PW + jb, r[i]);
    }
  }
}

static Z_FN void z_pack(void *panel, const void *w, preft_dtype wdt, size_t k, int j0, int nr, int k0, int kc,
                        int prefetch_next) {
#define PACK_AS(DT) pack_dt(NR, panel, w, DT, k, j0, nr, k0, kc, prefetch_next)
  PREFT_GEMM_DTYPE_CASES(wdt, PACK_AS);
#undef PACK_AS
}

static Z_FN void z_pack_narrow(void *panel, const void *w, preft_dtype wdt, size_t k, int j0, int nr, int k0,
                               int kc, int prefetch_next) {
#define PACK_AS(DT) pack_dt(NR_NARROW, panel, w, DT, k, j0, nr, k0, kc, prefetch_next)
  PREFT_GEMM_DTYPE_CASES(wdt, PACK_AS);
#undef PACK_AS
}

/* ---- prefill tile: y[R,32] (+)= x[R,kc] · panel[kc,32] ------------------ */

/* y[R, 16·W] (+)= x[R, kc] · panel[kc][16·W], W = 2 (NR) or 1 (NR_NARROW):
 * each column's sum over kk in order, one FMA a step, so a column gets the
 * same bits in a narrow and in a wide tile. Row r's feature kk is at
 * x[r·xs + kk·xk]: rows of x (xk = 1) or x stored k-major (xs = 1, xk the
 * step: a backward product's dy read as dyᵀ, no transposed copy). */
Z_INLINE void tile_mr(const int R, const int W, int kc, const float *x, size_t xs, size_t xk, const float *p,
                      float *y, size_t ys, __mmask16 m0, __mmask16 m1, int accumulate) {
  __m512 c0[MR], c1[MR];
#pragma GCC unroll 12
  for (int r = 0; r < R; r++) {
    c0[r] = accumulate ? _mm512_maskz_loadu_ps(m0, y + (size_t)r * ys) : _mm512_setzero_ps();
    if (W == 2) c1[r] = accumulate ? _mm512_maskz_loadu_ps(m1, y + (size_t)r * ys + 16) : _mm512_setzero_ps();
  }
  for (int kk = 0; kk < kc; kk++) {
    __m512 b0 = _mm512_load_ps(p), b1 = W == 2 ? _mm512_load_ps(p + 16) : b0;
    p += 16 * W;
#pragma GCC unroll 12
    for (int r = 0; r < R; r++) {
      __m512 a = _mm512_set1_ps(x[(size_t)r * xs + (size_t)kk * xk]);
      c0[r] = _mm512_fmadd_ps(a, b0, c0[r]);
      if (W == 2) c1[r] = _mm512_fmadd_ps(a, b1, c1[r]);
    }
  }
#pragma GCC unroll 12
  for (int r = 0; r < R; r++) {
    _mm512_mask_storeu_ps(y + (size_t)r * ys, m0, c0[r]);
    if (W == 2) _mm512_mask_storeu_ps(y + (size_t)r * ys + 16, m1, c1[r]);
  }
}

#define TILE_CASE(R)                                                \
  case R:                                                           \
    tile_mr(R, W, kc, x, xs, xk, panel, y, ys, m0, m1, accumulate); \
    break;

Z_INLINE void tile_w(const int W, int kc, const void *xv, size_t xs, size_t xk, const void *panel, float *y,
                     size_t ys, int mr, int nr, int accumulate) {
  const float *x = xv;
  __mmask16 m0 = preft_mask16_first(nr), m1 = preft_mask16_first(nr - 16);
  switch (mr) {
    TILE_CASE(12)
    TILE_CASE(11)
    TILE_CASE(10)
    TILE_CASE(9)
    TILE_CASE(8)
    TILE_CASE(7)
    TILE_CASE(6)
    TILE_CASE(5)
    TILE_CASE(4)
    TILE_CASE(3)
    TILE_CASE(2)
    default:
      tile_mr(1, W, kc, x, xs, xk, panel, y, ys, m0, m1, accumulate);
      break;
  }
}

static Z_FN void z_tile(int kc, const void *x, size_t xs, const void *panel, float *y, size_t ys, int mr,
                        int nr, int accumulate) {
  tile_w(2, kc, x, xs, 1, panel, y, ys, mr, nr, accumulate);
}

/* x stored k-major: feature kk of the tile's row r at x[kk·xstep + r] */
static Z_FN void z_tile_xk(int kc, const void *x, size_t xstep, const void *panel, float *y, size_t ys,
                           int mr, int nr, int accumulate) {
  tile_w(2, kc, x, 1, xstep, panel, y, ys, mr, nr, accumulate);
}

static Z_FN void z_tile_narrow(int kc, const void *x, size_t xs, const void *panel, float *y, size_t ys,
                               int mr, int nr, int accumulate) {
  tile_w(1, kc, x, xs, 1, panel, y, ys, mr, nr, accumulate);
}

/* ---- decode: R weight rows dotted with NT rows of x over all of K ------- */

/* y[0:NT, j:j+R] (+)= x[0:NT, 0:k] · w[j:j+R, 0:k]ᵀ; every step of 16
 * features also prefetches pf_adv bytes from address pf on (see z_rows). */
Z_INLINE void dot_block(const int R, const int NT, const preft_dtype dt, float *y, size_t ys, const float *x,
                        size_t xs, const void *w, int k, int j, int accumulate, uintptr_t pf, size_t pf_adv) {
  __m512 acc[4][6];
#pragma GCC unroll 8
  for (int r = 0; r < R; r++)
#pragma GCC unroll 8
    for (int n = 0; n < NT; n++) acc[r][n] = _mm512_setzero_ps();
  const size_t base = (size_t)j * (size_t)k;
  const int k16 = k & ~15;
  for (int kk = 0; kk < k16; kk += 16) {
    for (size_t o = 0; o < pf_adv; o += 64) prefetch_l2(pf + o);
    pf += pf_adv;
    __m512 wv[4];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
      wv[r] = preft_load16_avx512(w, dt, base + (size_t)r * (size_t)k + (size_t)kk, 0xFFFF);
#pragma GCC unroll 8
    for (int n = 0; n < NT; n++) {
      __m512 xv = _mm512_loadu_ps(x + (size_t)n * xs + (size_t)kk);
#pragma GCC unroll 8
      for (int r = 0; r < R; r++) acc[r][n] = _mm512_fmadd_ps(wv[r], xv, acc[r][n]);
    }
  }
  if (k16 < k) {
    __mmask16 m = preft_mask16_first(k - k16);
    __m512 wv[4];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
      wv[r] = preft_load16_avx512(w, dt, base + (size_t)r * (size_t)k + (size_t)k16, m);
#pragma GCC unroll 8
    for (int n = 0; n < NT; n++) {
      __m512 xv = _mm512_maskz_loadu_ps(m, x + (size_t)n * xs + (size_t)k16);
#pragma GCC unroll 8
      for (int r = 0; r < R; r++) acc[r][n] = _mm512_fmadd_ps(wv[r], xv, acc[r][n]);
    }
  }
  preft_rows_store_avx512(R, NT, acc, y, ys, j, accumulate);
}

/* dot_block for r weight rows (4 or 1), nt rows of x (1 to 6) and 16-bit
 * weights of type dt. */
static Z_FN void dot_dispatch(int r, int nt, preft_dtype dt, float *y, size_t ys, const void *xv, size_t xs,
                              const void *w, int k, int j, int accumulate, uintptr_t pf, size_t pf_adv) {
  const float *x = xv;
#define DOT(NT, R, DT) dot_block(R, NT, DT, y, ys, x, xs, w, k, j, accumulate, pf, pf_adv)
  if (dt == PREFT_F16 && r == 4)
    PREFT_ROWS512_NT_CASES(nt, DOT, 4, PREFT_F16);
  else if (dt == PREFT_F16)
    PREFT_ROWS512_NT_CASES(nt, DOT, 1, PREFT_F16);
  else if (r == 4)
    PREFT_ROWS512_NT_CASES(nt, DOT, 4, PREFT_BF16);
  else
    PREFT_ROWS512_NT_CASES(nt, DOT, 1, PREFT_BF16);
#undef DOT
}

/* ---- batch-1 decode: the weight rows one after another ----------------- */

#define ROW_PF 2048 /* bytes ahead of a row stream's loads */

/* x · w[j] over k features: dot_block's steps on one accumulator (a line
 * prefetched ROW_PF bytes ahead every 32 features), reduced as
 * preft_rows_store_avx512 reduces every row: the bits of the same row in a
 * batch. */
Z_INLINE float dot_row_stream(const preft_dtype dt, const float *x, const void *w, int k, int j) {
  __m512 acc = _mm512_setzero_ps();
  const size_t base = (size_t)j * (size_t)k;
  const char *wb = (const char *)w + base * 2;
  const int k16 = k & ~15;
  for (int kk = 0; kk < k16; kk += 16) {
    if ((kk & 31) == 0) _mm_prefetch(wb + (size_t)kk * 2 + ROW_PF, _MM_HINT_T0);
    acc =
        _mm512_fmadd_ps(preft_load16_avx512(w, dt, base + (size_t)kk, 0xFFFF), _mm512_loadu_ps(x + kk), acc);
  }
  if (k16 < k) {
    __mmask16 m = preft_mask16_first(k - k16);
    acc = _mm512_fmadd_ps(preft_load16_avx512(w, dt, base + (size_t)k16, m),
                          _mm512_maskz_loadu_ps(m, x + k16), acc);
  }
  return preft_sum1_avx512(acc);
}

/* Weight rows [j0, j1) (16-bit, dt) against one row of x, one row at a
 * time: one sequential stream per thread, where the 4 interleaved rows of
 * preft_rows_groups_avx512 ran the Qwen2.5-0.5B decode step 7-8% slower
 * (docs/KERNELS.md). */
static Z_FN void stream_rows(const preft_dtype dt, float *y, const float *x, const void *w, int k, int j0,
                             int j1, int accumulate) {
  for (int j = j0; j < j1; j++) {
    float s =
        dt == PREFT_F16 ? dot_row_stream(PREFT_F16, x, w, k, j) : dot_row_stream(PREFT_BF16, x, w, k, j);
    y[j] = accumulate ? y[j] + s : s;
  }
}

/* preft_rows_groups_avx512 with this dot kernel, 16 features a step (at
 * most 2 lines prefetched a step), or one row of x streamed; F32 weights go
 * to the AVX2 kernel (one row at a time there measured no faster: a single
 * FMA chain per row bounds it). */
static Z_FN void z_rows(float *y, size_t ys, const void *x, size_t xs, const void *w, preft_dtype wdt, int n,
                        int k, int j0, int j1, int accumulate) {
  if (wdt == PREFT_F32) { /* see the file's comment */
    preft_gemm_avx2.rows(y, ys, x, xs, w, wdt, n, k, j0, j1, accumulate);
    return;
  }
  if (n == 1) {
    stream_rows(wdt, y, x, w, k, j0, j1, accumulate);
    return;
  }
  preft_rows_groups_avx512(dot_dispatch, 16, sizeof(float), preft_dtype_size(wdt), 128, y, ys, x, xs, w, wdt,
                           n, k, j0, j1, accumulate);
}

/* rows_max_n per weight type (F32, F16, BF16): the crossovers measured by
 * bench_gemm (docs/KERNELS.md). 16-bit weights stay on the rows kernel up
 * to N = 64: half the bytes per weight keep a group's passes in cache, and
 * it beats the panels there (345-400 GFLOP/s against 245-315 at N = 64).
 * F32 keeps the AVX2 tables' 48, so rows and panels split where they did. */
const preft_gemm_kernels preft_gemm_avx512 = {.pack = z_pack,
                                              .tile = z_tile,
                                              .tile_xk = z_tile_xk,
                                              .pack_narrow = z_pack_narrow,
                                              .tile_narrow = z_tile_narrow,
                                              .nr_narrow = NR_NARROW,
                                              .rows = z_rows,
                                              .mr = MR,
                                              .nr = NR,
                                              .rows_max_n = {48, 64, 64},
                                              .name = "avx512"};

#endif
