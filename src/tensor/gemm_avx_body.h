/* gemm_avx_body.h - the AVX + FMA + F16C kernels of preft_gemm (see
 * gemm_kern.h), included by gemm_avx.c and gemm_avx2.c, which define
 *   KERN_TARGET  the target attribute string ("avx,fma,f16c" / "avx2,fma,f16c")
 *   KERN_TABLE   the name of the kernel table to define
 *   KERN_AVX2    (avx2 only) widen BF16 with 256-bit integer instructions
 *
 * Compiled without -march flags: every function carries the target
 * attribute and is only reached when preft_cpu_path() reports the path.
 * Weights widen to FP32 as they load (load8_avx.h): BF16 takes five
 * instructions per 8 weights on AVX1 and two on AVX2; F16 one on both.
 *
 * Register budget (16 ymm): the prefill tile keeps 6 rows × 16 columns of y
 * in 12 accumulators, plus 2 panel vectors and 1 broadcast; the decode dot
 * keeps R weight rows × NT rows of x (at most 12) accumulators.
 */
#include <immintrin.h>

#include "tensor/gemm_kern.h"
#include "tensor/load8_avx.h"

#ifndef PF_HINT
#define PF_HINT _MM_HINT_T1 /* into L2: one group ahead can be more than L1 holds */
#endif
#define AVX_FN __attribute__((target(KERN_TARGET)))
#define AVX_INLINE static inline __attribute__((always_inline, target(KERN_TARGET)))

/* ---- loading 8 weights as FP32 ------------------------------------------ */

/* w[i .. i+8) as FP32; dt is a compile-time constant at every call site. */
AVX_INLINE __m256 load8(const void *w, preft_dtype dt, size_t i) {
#ifdef KERN_AVX2
  if (dt == PREFT_BF16) return preft_bf16x8_avx2((const uint16_t *)w + i);
#endif
  return preft_load8_avx(w, dt, i);
}

/* Prefetches never fault, so addresses past the matrix's end are harmless;
 * they are computed as integers because pointer arithmetic there is not. */
AVX_INLINE void prefetch(uintptr_t a) { _mm_prefetch((const char *)a, PF_HINT); }

AVX_INLINE float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

/* ---- packing: panel[kc][16] from 16 weight rows ------------------------- */

/* In-register 8×8 transpose: r[i] holds row i on entry, column i on exit. */
AVX_INLINE void transpose8(__m256 r[8]) {
  __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
  r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
  r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
  r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
  r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

AVX_INLINE void pack_dt(float *panel, const void *w, preft_dtype dt, size_t k, int j0, int nr, int k0, int kc,
                        int prefetch_next) {
  const size_t esize = dt == PREFT_F32 ? 4 : 2;
  int kc8 = kc & ~7;
  for (int jb = 0; jb < PREFT_GEMM_NR; jb += 8) {
    if (jb >= nr) {
      for (int kk = 0; kk < kc8; kk++)
        _mm256_store_ps(panel + (size_t)kk * PREFT_GEMM_NR + jb, _mm256_setzero_ps());
      continue;
    }
    for (int kk = 0; kk < kc8; kk += 8) {
      /* The next panel's rows (j0 + 16 ...) over the same features, one
       * line per row whenever this row crosses into a new line: panels are
       * packed one after the other, so their rows arrive from memory while
       * this one's tiles compute. */
      if (prefetch_next && (kk * (int)esize) % 64 == 0) {
#pragma GCC unroll 8
        for (int jj = 0; jj < 8; jj++)
          prefetch((uintptr_t)w +
                   ((uintptr_t)(j0 + PREFT_GEMM_NR + jb + jj) * k + (uintptr_t)(k0 + kk)) * esize);
      }
      __m256 r[8];
#pragma GCC unroll 8
      for (int jj = 0; jj < 8; jj++)
        r[jj] =
            jb + jj < nr ? load8(w, dt, (size_t)(j0 + jb + jj) * k + (size_t)(k0 + kk)) : _mm256_setzero_ps();
      transpose8(r);
#pragma GCC unroll 8
      for (int i = 0; i < 8; i++) _mm256_store_ps(panel + (size_t)(kk + i) * PREFT_GEMM_NR + jb, r[i]);
    }
  }
  for (int kk = kc8; kk < kc; kk++)
    for (int jj = 0; jj < PREFT_GEMM_NR; jj++)
      panel[(size_t)kk * PREFT_GEMM_NR + jj] =
          jj < nr ? preft_load_elem(w, dt, (size_t)(j0 + jj) * k + (size_t)(k0 + kk)) : 0.f;
}

static AVX_FN void avx_pack(void *panel, const void *w, preft_dtype wdt, size_t k, int j0, int nr, int k0,
                            int kc, int prefetch_next) {
#define PACK_AS(DT) pack_dt(panel, w, DT, k, j0, nr, k0, kc, prefetch_next)
  PREFT_GEMM_DTYPE_CASES(wdt, PACK_AS);
#undef PACK_AS
}

/* ---- prefill tile: y[MR,16] (+)= x[MR,kc] · panel[kc,16] ---------------- */

AVX_INLINE void tile_mr(const int MR, int kc, const float *x, size_t xs, const float *p, float *y, size_t ys,
                        int accumulate) {
  __m256 c0[PREFT_GEMM_MR], c1[PREFT_GEMM_MR];
#pragma GCC unroll 8
  for (int r = 0; r < MR; r++) {
    c0[r] = accumulate ? _mm256_loadu_ps(y + (size_t)r * ys) : _mm256_setzero_ps();
    c1[r] = accumulate ? _mm256_loadu_ps(y + (size_t)r * ys + 8) : _mm256_setzero_ps();
  }
  for (int kk = 0; kk < kc; kk++) {
    __m256 b0 = _mm256_load_ps(p), b1 = _mm256_load_ps(p + 8);
    p += PREFT_GEMM_NR;
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++) {
      __m256 a = _mm256_broadcast_ss(x + (size_t)r * xs + (size_t)kk);
      c0[r] = _mm256_fmadd_ps(a, b0, c0[r]);
      c1[r] = _mm256_fmadd_ps(a, b1, c1[r]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; r++) {
    _mm256_storeu_ps(y + (size_t)r * ys, c0[r]);
    _mm256_storeu_ps(y + (size_t)r * ys + 8, c1[r]);
  }
}

static AVX_FN void avx_tile(int kc, const void *xv, size_t xs, const void *panel, float *y, size_t ys, int mr,
                            int nr, int accumulate) {
  const float *x = xv;
  /* A partial tile (nr < 16) works in a scratch copy so that no column past
   * the end of y is touched. */
  float tmp[PREFT_GEMM_MR * PREFT_GEMM_NR] __attribute__((aligned(32)));
  float *yt = y;
  size_t yts = ys;
  if (nr < PREFT_GEMM_NR) {
    memset(tmp, 0, sizeof tmp);
    if (accumulate)
      for (int r = 0; r < mr; r++)
        memcpy(tmp + r * PREFT_GEMM_NR, y + (size_t)r * ys, (size_t)nr * sizeof(float));
    yt = tmp;
    yts = PREFT_GEMM_NR;
  }
  switch (mr) {
    case 6:
      tile_mr(6, kc, x, xs, panel, yt, yts, accumulate);
      break;
    case 5:
      tile_mr(5, kc, x, xs, panel, yt, yts, accumulate);
      break;
    case 4:
      tile_mr(4, kc, x, xs, panel, yt, yts, accumulate);
      break;
    case 3:
      tile_mr(3, kc, x, xs, panel, yt, yts, accumulate);
      break;
    case 2:
      tile_mr(2, kc, x, xs, panel, yt, yts, accumulate);
      break;
    default:
      tile_mr(1, kc, x, xs, panel, yt, yts, accumulate);
      break;
  }
  if (nr < PREFT_GEMM_NR)
    for (int r = 0; r < mr; r++)
      memcpy(y + (size_t)r * ys, tmp + r * PREFT_GEMM_NR, (size_t)nr * sizeof(float));
}

/* ---- decode: R weight rows dotted with NT rows of x over all of K ------- */

/* y[0:NT, j:j+R] (+)= x[0:NT, 0:k] · w[j:j+R, 0:k]ᵀ. Every step of 8 input
 * features also prefetches pf_adv bytes from address pf on (see avx_rows). */
AVX_INLINE void dot_block(const int R, const int NT, const preft_dtype dt, float *y, size_t ys,
                          const float *x, size_t xs, const void *w, int k, int j, int accumulate,
                          uintptr_t pf, size_t pf_adv) {
  __m256 acc[4][4];
#pragma GCC unroll 8
  for (int r = 0; r < R; r++)
#pragma GCC unroll 8
    for (int n = 0; n < NT; n++) acc[r][n] = _mm256_setzero_ps();
  const size_t base = (size_t)j * (size_t)k;
  const int k8 = k & ~7;
  for (int kk = 0; kk < k8; kk += 8) {
    prefetch(pf);
    if (pf_adv > 64) prefetch(pf + 64);
    pf += pf_adv;
    __m256 wv[4];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) wv[r] = load8(w, dt, base + (size_t)r * (size_t)k + (size_t)kk);
#pragma GCC unroll 8
    for (int n = 0; n < NT; n++) {
      __m256 xv = _mm256_loadu_ps(x + (size_t)n * xs + (size_t)kk);
#pragma GCC unroll 8
      for (int r = 0; r < R; r++) acc[r][n] = _mm256_fmadd_ps(wv[r], xv, acc[r][n]);
    }
  }
  for (int r = 0; r < R; r++) {
    for (int n = 0; n < NT; n++) {
      float s = hsum8(acc[r][n]);
      for (int kk = k8; kk < k; kk++)
        s += x[(size_t)n * xs + (size_t)kk] *
             preft_load_elem(w, dt, base + (size_t)r * (size_t)k + (size_t)kk);
      float *yy = y + (size_t)n * ys + (size_t)(j + r);
      *yy = accumulate ? *yy + s : s;
    }
  }
}

/* R is 4 (NT <= 2), 3 (NT >= 3) or 1 (leftover rows): R × NT accumulators
 * plus R weight vectors plus one x vector must fit in 16 registers. */
#define DOT_ARGS y, ys, x, xs, w, k, j, acc, pf, pf_adv
#define DOT_SWITCH(DT)                   \
  do {                                   \
    if (R == 1) {                        \
      switch (NT) {                      \
        case 1:                          \
          dot_block(1, 1, DT, DOT_ARGS); \
          break;                         \
        case 2:                          \
          dot_block(1, 2, DT, DOT_ARGS); \
          break;                         \
        case 3:                          \
          dot_block(1, 3, DT, DOT_ARGS); \
          break;                         \
        default:                         \
          dot_block(1, 4, DT, DOT_ARGS); \
          break;                         \
      }                                  \
    } else {                             \
      switch (NT) {                      \
        case 1:                          \
          dot_block(4, 1, DT, DOT_ARGS); \
          break;                         \
        case 2:                          \
          dot_block(4, 2, DT, DOT_ARGS); \
          break;                         \
        case 3:                          \
          dot_block(3, 3, DT, DOT_ARGS); \
          break;                         \
        default:                         \
          dot_block(3, 4, DT, DOT_ARGS); \
          break;                         \
      }                                  \
    }                                    \
  } while (0)

static AVX_FN void dot_dispatch(int R, int NT, preft_dtype dt, float *y, size_t ys, const float *x, size_t xs,
                                const void *w, int k, int j, int acc, uintptr_t pf, size_t pf_adv) {
  switch (dt) {
    case PREFT_F16:
      DOT_SWITCH(PREFT_F16);
      break;
    case PREFT_BF16:
      DOT_SWITCH(PREFT_BF16);
      break;
    default:
      DOT_SWITCH(PREFT_F32);
      break;
  }
}

#define ROW_GROUP 12 /* weight rows per group: a multiple of R = 4 and R = 3 */

/* Bytes to prefetch per step of 8 features so that the next group (a
 * group's bytes) arrives over the `steps` steps of this one: at most two
 * lines a step. */
AVX_INLINE size_t group_prefetch_step(size_t group_bytes, size_t steps) {
  const size_t adv = steps ? (group_bytes + steps - 1) / steps : 0;
  return adv > 128 ? 128 : adv;
}

/* One row of x against weight rows ja..ja+3 and jb..jb+3, far apart: each
 * row's one accumulator and order as dot_block's (the same bits), the two
 * quads read as two streams, each prefetching its own (pfa, pfb). */
AVX_INLINE void dot_two_quads(const preft_dtype dt, float *y, const float *x, const void *w, int k, int ja,
                              int jb, int accumulate, uintptr_t pfa, uintptr_t pfb, size_t pf_adv) {
  __m256 acc[8];
#pragma GCC unroll 8
  for (int r = 0; r < 8; r++) acc[r] = _mm256_setzero_ps();
  const size_t base[2] = {(size_t)ja * (size_t)k, (size_t)jb * (size_t)k};
  const int k8 = k & ~7;
  for (int kk = 0; kk < k8; kk += 8) {
    prefetch(pfa), prefetch(pfb);
    if (pf_adv > 64) prefetch(pfa + 64), prefetch(pfb + 64);
    pfa += pf_adv, pfb += pf_adv;
    const __m256 xv = _mm256_loadu_ps(x + kk);
#pragma GCC unroll 8
    for (int r = 0; r < 8; r++)
      acc[r] =
          _mm256_fmadd_ps(load8(w, dt, base[r / 4] + (size_t)(r % 4) * (size_t)k + (size_t)kk), xv, acc[r]);
  }
  for (int r = 0; r < 8; r++) {
    float s = hsum8(acc[r]);
    for (int kk = k8; kk < k; kk++)
      s += x[kk] * preft_load_elem(w, dt, base[r / 4] + (size_t)(r % 4) * (size_t)k + (size_t)kk);
    float *yy = y + (r < 4 ? ja : jb) + r % 4;
    *yy = accumulate ? *yy + s : s;
  }
}

/* One row of x against weight rows [j0, j0 + 2h) (h a multiple of 4) as
 * two streams: the rows of the first half beside those of the second,
 * four of each at a time, in groups of ROW_GROUP whose next group each
 * stream prefetches as rows_range does. A thread drew more from memory
 * so (docs/KERNELS.md). */
static AVX_FN void rows_two_streams(float *y, const float *x, const void *w, preft_dtype wdt, int k, int j0,
                                    int h, int accumulate) {
  const size_t esize = preft_dtype_size(wdt);
  const int steps = k / 8;
  for (int g0 = j0; g0 < j0 + h; g0 += ROW_GROUP) {
    const int g1 = g0 + ROW_GROUP < j0 + h ? g0 + ROW_GROUP : j0 + h;
    const size_t pf_adv =
        group_prefetch_step((size_t)ROW_GROUP * (size_t)k * esize, (size_t)((g1 - g0) / 4) * (size_t)steps);
    uintptr_t pfa = (uintptr_t)w + (uintptr_t)g1 * (uintptr_t)k * esize;
    uintptr_t pfb = pfa + (uintptr_t)h * (uintptr_t)k * esize;
    for (int j = g0; j < g1; j += 4, pfa += pf_adv * (size_t)steps, pfb += pf_adv * (size_t)steps) {
      switch (wdt) {
        case PREFT_F16:
          dot_two_quads(PREFT_F16, y, x, w, k, j, j + h, accumulate, pfa, pfb, pf_adv);
          break;
        case PREFT_BF16:
          dot_two_quads(PREFT_BF16, y, x, w, k, j, j + h, accumulate, pfa, pfb, pf_adv);
          break;
        default:
          dot_two_quads(PREFT_F32, y, x, w, k, j, j + h, accumulate, pfa, pfb, pf_adv);
          break;
      }
    }
  }
}

/* Weight rows go in groups of ROW_GROUP; the rows of x in passes of at most
 * 4. The first pass over a group reads it from memory, later passes from
 * cache. Hardware prefetchers lose track of R short interleaved row
 * streams, so the next group (contiguous, right after this one) is
 * prefetched into L2 at an even rate over all passes of this one: memory
 * stays busy while the cached passes compute. */
static AVX_FN void rows_range(float *y, size_t ys, const void *xv, size_t xs, const void *w, preft_dtype wdt,
                              int n, int k, int j0, int j1, int accumulate) {
  const float *x = xv;
  const size_t esize = preft_dtype_size(wdt);
  const int passes = (n + 3) / 4, steps = k / 8;
  for (int g0 = j0; g0 < j1; g0 += ROW_GROUP) {
    int g1 = g0 + ROW_GROUP < j1 ? g0 + ROW_GROUP : j1;
    int calls = 0; /* dot_block calls over this group, `steps` steps each */
    for (int pi = 0; pi < passes; pi++) {
      int r = preft_gemm_pass_rows(n, passes, pi) >= 3 ? 3 : 4;
      calls += (g1 - g0) / r + (g1 - g0) % r;
    }
    const size_t pf_adv =
        group_prefetch_step((size_t)ROW_GROUP * (size_t)k * esize, (size_t)calls * (size_t)steps);
    uintptr_t pf = (uintptr_t)w + (uintptr_t)g1 * (uintptr_t)k * esize;
    for (int pi = 0, i0 = 0; pi < passes; pi++) {
      int nt = preft_gemm_pass_rows(n, passes, pi), r = nt >= 3 ? 3 : 4;
      const float *xi = x + (size_t)i0 * xs;
      float *yi = y + (size_t)i0 * ys;
      int j = g0;
      for (; j + r <= g1; j += r, pf += pf_adv * (size_t)steps)
        dot_dispatch(r, nt, wdt, yi, ys, xi, xs, w, k, j, accumulate, pf, pf_adv);
      for (; j < g1; j++, pf += pf_adv * (size_t)steps)
        dot_dispatch(1, nt, wdt, yi, ys, xi, xs, w, k, j, accumulate, pf, pf_adv);
      i0 += nt;
    }
  }
}

/* One row of x takes the range's rows as two streams (rows_two_streams),
 * the rows past a multiple of 8 and more rows of x rows_range's walk. */
static AVX_FN void avx_rows(float *y, size_t ys, const void *xv, size_t xs, const void *w, preft_dtype wdt,
                            int n, int k, int j0, int j1, int accumulate) {
  int j = j0;
  if (n == 1) {
    const int h = (j1 - j0) / 8 * 4;
    rows_two_streams(y, xv, w, wdt, k, j0, h, accumulate);
    j += 2 * h;
  }
  rows_range(y, ys, xv, xs, w, wdt, n, k, j, j1, accumulate);
}

const preft_gemm_kernels KERN_TABLE = {.pack = avx_pack,
                                       .tile = avx_tile,
                                       .rows = avx_rows,
                                       .mr = PREFT_GEMM_MR,
                                       .nr = PREFT_GEMM_NR,
                                       .rows_max_n = KERN_ROWS_MAX_N,
                                       .name = KERN_NAME};
