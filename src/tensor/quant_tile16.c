/* quant_tile16.c - the batched products (N rows of x, N >= the tile
 * threshold) of the AVX512-VNNI table (quant_avx512vnni.c): 16 weight rows
 * repacked into a tile whose 32-bit lane r holds 4 consecutive codes of
 * weight row r, so one vpdpbusd on zmm with 4 values of x broadcast
 * (embedded {1to16}) adds 64 products into the 16 outputs of one row of x.
 *
 * Per tile and per 256 values of K the codes are unpacked and transposed
 * once (16 × 8 dwords per 32 values: vinserti64x4, unpck, vpermt2q) into
 * 64 zmm on the stack (4 KiB, L1), then every row of x runs over them, 8
 * rows of x at a time (8 independent vpdpbusd chains share each loaded
 * weight vector: register blocking 8 rows of x × 16 weight rows).
 *
 * The codes are the unsigned operand, x the signed one:
 *  - Q8_0: w + 128 (w xor 0x80), minus 128 × the block's sum of x;
 *  - Q4_0 / Q5_0 (and their X4 layouts): the codes 0..15 / 0..31, minus
 *    8 / 16 × sum(x);
 *  - Q4_K: the nibbles; each 32's int32 sum times its 6-bit scale
 *    (vpmulld), the mins' term as vpdpwssd of (m[2p], m[2p+1]) with the
 *    pair sums of Q8_K's bsums;
 *  - Q6_K: the 6-bit codes 0..63 (built per row before the transpose);
 *    each 16's int32 sum times its int8 scale (vpmulld), minus 32 ×
 *    sum(scale · bsums) as vpdpwssd of scale pairs with bsums pairs.
 * The integer sums are exact and the FP32 steps are the reference's
 * (quant_ref.c) in its order, one output per lane, so these kernels give
 * the reference's bits exactly (tests/unit/test_quant.c checks equality).
 *
 * Each function does the whole tiles of 16 rows in [j0, j1) and returns
 * the first row it left (the caller's rows kernel takes the rest).
 * Shapes: y[n, ys] (n <= 64), xq n rows xqs bytes apart, weight rows wrow
 * bytes apart, k a multiple of 256 (Q4_K) or 32.
 */
#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "tensor/quant_kern.h"

#define T16_TARGET "avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni"
#define TFN __attribute__((target(T16_TARGET)))
#define TIN static inline __attribute__((always_inline, target(T16_TARGET)))

#define TR 16 /* weight rows per tile: one per int32 lane */
#define XR 8  /* rows of x per pass over a tile */
#define TMAX_N 64

/* 4 int8 of x broadcast to 16 lanes (folded into vpdpbusd's {1to16}) */
TIN __m512i bcast4(const int8_t *x) {
  int32_t v;
  memcpy(&v, x, 4);
  return _mm512_set1_epi32(v);
}

/* dst[g] (g = 0..7): dword g of each of the 16 rows r[0..15] (8 dwords
 * each), row i in lane i: rows i and i+8 share a zmm, then the 8 × 8
 * transpose of each 128-bit lane pair (unpck 32/64) and vpermt2q joins
 * the quarters. */
TIN void transpose16x8(__m512i dst[8], const __m256i r[16]) {
  __m512i z[8], t[8], u[8];
  for (int i = 0; i < 8; i++) z[i] = _mm512_inserti64x4(_mm512_castsi256_si512(r[i]), r[i + 8], 1);
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm512_unpacklo_epi32(z[i], z[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(z[i], z[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
    u[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
    u[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
    u[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  /* u[g]: rows 0-3 dword g | rows 0-3 dword g+4 | rows 8-11 g | rows 8-11 g+4;
   * u[g+4]: the same for rows 4-7 and 12-15 */
  const __m512i lo = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13),
                hi = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
  for (int g = 0; g < 4; g++) {
    dst[g] = _mm512_permutex2var_epi64(u[g], lo, u[g + 4]);
    dst[g + 4] = _mm512_permutex2var_epi64(u[g], hi, u[g + 4]);
  }
}

TIN float h2f(uint16_t h) { return _cvtsh_ss(h); }

/* 16 fp16 scales at p, p + stride, ... as FP32 */
TIN __m512 scales16(const unsigned char *p, size_t stride) {
  uint16_t h[TR];
  for (int r = 0; r < TR; r++) memcpy(&h[r], p + (size_t)r * stride, 2);
  return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)h));
}

/* y[r*ys + j + 0:16] = (accumulate ? y : 0) + acc[r] for r < n */
TIN void store16(float *y, size_t ys, int j, const float *acc, int n, int accumulate) {
  for (int r = 0; r < n; r++) {
    __m512 v = _mm512_load_ps(acc + TR * r);
    float *yp = y + (size_t)r * ys + j;
    if (accumulate) v = _mm512_add_ps(v, _mm512_loadu_ps(yp));
    _mm512_storeu_ps(yp, v);
  }
}

/* ---- Q8_0 / Q4_0 / Q5_0: 8 blocks of 32 per step ------------------------- */

/* Kinds of rows: 0 Q8_0 (raw int8), 1 Q4_0, 2 Q5_0, 3 Q4_0_X4, 4 Q5_0_X4
 * (the X4 layouts of quant.h: block b in group b / 4). */
#define KIND_Q5(kind) ((kind) == 2 || (kind) == 4)

/* Bytes of block b's group (X4) or block, and its offset in a row. */
TIN size_t block_at(int kind, int b) {
  static const size_t bytes[5] = {sizeof(preft_block_q8_0), sizeof(preft_block_q4_0),
                                  sizeof(preft_block_q5_0), sizeof(preft_group_q4_0x4),
                                  sizeof(preft_group_q5_0x4)};
  return kind >= 3 ? (size_t)(b / 4) * bytes[kind] : (size_t)b * bytes[kind];
}

/* Offset of block b's fp16 d in a row. */
TIN size_t d_at(int kind, int b) {
  if (kind == 3) return block_at(kind, b) + offsetof(preft_group_q4_0x4, d) + 2 * (size_t)(b % 4);
  if (kind == 4) return block_at(kind, b) + offsetof(preft_group_q5_0x4, d) + 2 * (size_t)(b % 4);
  return block_at(kind, b); /* d is each block's first field */
}

/* The 32 codes of block b of row p. */
TIN __m256i codes32(int kind, const unsigned char *p, int b) {
  if (kind == 0) return _mm256_loadu_si256((const __m256i *)((const preft_block_q8_0 *)p + b)->qs);
  const unsigned char *at = p + block_at(kind, b);
  const uint8_t *qs = kind == 1   ? ((const preft_block_q4_0 *)at)->qs
                      : kind == 2 ? ((const preft_block_q5_0 *)at)->qs
                                  : at + 16 * (b % 4); /* qs is an X4 group's first field */
  __m128i t = _mm_loadu_si128((const __m128i *)qs);
  __m256i q = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), _mm256_set1_epi8(0x0F));
  if (KIND_Q5(kind)) {
    uint32_t h;
    if (kind == 2) {
      memcpy(&h, ((const preft_block_q5_0 *)at)->qh, 4);
    } else {
      uint16_t lo, hi;
      memcpy(&lo, at + offsetof(preft_group_q5_0x4, qh_lo) + 2 * (b % 4), 2);
      memcpy(&hi, at + offsetof(preft_group_q5_0x4, qh_hi) + 2 * (b % 4), 2);
      h = (uint32_t)lo | (uint32_t)hi << 16;
    }
    /* bit i of h → 0x10 in byte i */
    q = _mm256_or_si256(q, _mm256_maskz_set1_epi8((__mmask32)h, 0x10));
  }
  return q;
}

TIN void tile32(int kind, float *y, size_t ys, const unsigned char *xq, size_t xqs, const unsigned char *w,
                size_t wrow, int n, int nb, int j, const int32_t *sx, const float *xd, int accumulate) {
  __m512i codes[8][8] __attribute__((aligned(64)));
  __m512 dw[8];
  float acc[TMAX_N * TR] __attribute__((aligned(64)));
  memset(acc, 0, (size_t)n * TR * sizeof(float));
  const unsigned char *w0 = w + (size_t)j * wrow;
  for (int b0 = 0; b0 < nb; b0 += 8) {
    const int bc = nb - b0 < 8 ? nb - b0 : 8;
    for (int b = 0; b < bc; b++) {
      __m256i rows[TR];
      for (int r = 0; r < TR; r++) {
        rows[r] = codes32(kind, w0 + (size_t)r * wrow, b0 + b);
        _mm_prefetch((const char *)(w0 + (size_t)r * wrow + block_at(kind, b0 + b + 8)), _MM_HINT_T0);
      }
      transpose16x8(codes[b], rows);
      if (kind == 0)
        for (int g = 0; g < 8; g++) codes[b][g] = _mm512_xor_si512(codes[b][g], _mm512_set1_epi8((char)0x80));
      dw[b] = scales16(w0 + d_at(kind, b0 + b), wrow);
    }
    for (int i0 = 0; i0 < n; i0 += XR) {
      const preft_block_q8_0 *x[XR];
      int row[XR];
      _Pragma("GCC unroll 8") for (int r = 0; r < XR; r++) { /* past n: the last row again (stored once) */
        row[r] = i0 + r < n ? i0 + r : n - 1;
        x[r] = (const preft_block_q8_0 *)(xq + (size_t)row[r] * xqs) + b0;
      }
      __m512 a[XR];
      _Pragma("GCC unroll 8") for (int r = 0; r < XR; r++) a[r] = _mm512_load_ps(acc + TR * row[r]);
      for (int b = 0; b < bc; b++) {
        __m512i p[XR];
        _Pragma("GCC unroll 8") for (int r = 0; r < XR; r++) p[r] =
            _mm512_set1_epi32(-sx[(size_t)row[r] * nb + b0 + b]);
        _Pragma("GCC unroll 8") for (int g = 0; g < 8; g++) {
          const __m512i c = _mm512_load_si512(&codes[b][g]);
          _Pragma("GCC unroll 8") for (int r = 0; r < XR; r++) p[r] =
              _mm512_dpbusd_epi32(p[r], c, bcast4(x[r][b].qs + 4 * g));
        }
        _Pragma("GCC unroll 8") for (int r = 0; r < XR; r++) {
          const __m512 dx = _mm512_set1_ps(xd[(size_t)row[r] * nb + b0 + b]), s = _mm512_cvtepi32_ps(p[r]);
          /* the reference's order: Q8_0 sumi * (dw * dx); Q4_0 / Q5_0 sumi * dw * dx */
          const __m512 v = kind == 0 ? _mm512_mul_ps(s, _mm512_mul_ps(dw[b], dx))
                                     : _mm512_mul_ps(_mm512_mul_ps(s, dw[b]), dx);
          a[r] = _mm512_add_ps(a[r], v);
        }
      }
      _Pragma("GCC unroll 8") for (int r = XR - 1; r >= 0; r--)
          _mm512_store_ps(acc + TR * row[r], a[r]); /* row i0 + r last wins */
    }
  }
  store16(y, ys, j, acc, n, accumulate);
}

/* Per block b of x row i: xd[i*nb + b] its scale, sx[i*nb + b] = off × sum(x). */
TIN void prep32(int32_t *sx, float *xd, const unsigned char *xq, size_t xqs, int n, int nb, int off) {
  for (int i = 0; i < n; i++) {
    const preft_block_q8_0 *x = (const preft_block_q8_0 *)(xq + (size_t)i * xqs);
    for (int b = 0; b < nb; b++) {
      __m256i v = _mm256_loadu_si256((const __m256i *)x[b].qs);
      __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), v), _mm256_set1_epi16(1));
      __m128i q = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
      q = _mm_add_epi32(q, _mm_shuffle_epi32(q, 0x4E));
      q = _mm_add_epi32(q, _mm_shuffle_epi32(q, 0xB1));
      sx[(size_t)i * nb + b] = off * _mm_cvtsi128_si32(q);
      xd[(size_t)i * nb + b] = h2f(x[b].d);
    }
  }
}

TIN int tiles32(int kind, float *y, size_t ys, const void *xqv, size_t xqs, const void *w, size_t wrow, int n,
                int k, int j0, int j1, int accumulate) {
  PREFT_ASSERT(n <= TMAX_N);
  const int nb = k / PREFT_QK;
  int32_t *sx = preft_xmalloc((size_t)n * (size_t)nb * sizeof(int32_t));
  float *xd = preft_xmalloc((size_t)n * (size_t)nb * sizeof(float));
  prep32(sx, xd, xqv, xqs, n, nb, kind == 0 ? 128 : KIND_Q5(kind) ? 16 : 8);
  int j = j0;
  for (; j + TR <= j1; j += TR) tile32(kind, y, ys, xqv, xqs, w, wrow, n, nb, j, sx, xd, accumulate);
  free(sx), free(xd);
  return j;
}

TFN int preft_qtile16_q8_0(float *y, size_t ys, const void *xq, size_t xqs, const void *w, size_t wrow, int n,
                           int k, int j0, int j1, int accumulate) {
  return tiles32(0, y, ys, xq, xqs, w, wrow, n, k, j0, j1, accumulate);
}
TFN int preft_qtile16_q4_0(float *y, size_t ys, const void *xq, size_t xqs, const void *w, size_t wrow, int n,
                           int k, int j0, int j1, int accumulate) {
  return tiles32(1, y, ys, xq, xqs, w, wrow, n, k, j0, j1, accumulate);
}
TFN int preft_qtile16_q5_0(float *y, size_t ys, const void *xq, size_t xqs, const void *w, size_t wrow, int n,
                           int k, int j0, int j1, int accumulate) {
  return tiles32(2, y, ys, xq, xqs, w, wrow, n, k, j0, j1, accumulate);
}
TFN int preft_qtile16_q4_0x4(float *y, size_t ys, const void *xq, size_t xqs, const void *w, size_t wrow,
                             int n, int k, int j0, int j1, int accumulate) {
  return tiles32(3, y, ys, xq, xqs, w, wrow, n, k, j0, j1, accumulate);
}
TFN int preft_qtile16_q5_0x4(float *y, size_t ys, const void *xq, size_t xqs, const void *w, size_t wrow,
                             int n, int k, int j0, int j1, int accumulate) {
  return tiles32(4, y, ys, xq, xqs, w, wrow, n, k, j0, j1, accumulate);
}

/* ---- Q4_K: one super-block of 256 per step -------------------------------- */

/* isum[r] = sum over the nsub sub-blocks s of sc[s] × (the int32 dot of
 * sub-block s with x row r): the tile's codes in order, g groups of 4
 * values per sub-block (code vector s*g + i holds values 4(s*g + i)..). */
TIN void scaled_sums(__m512i isum[XR], const __m512i *codes, const int32_t (*sc)[TR],
                     const preft_block_q8_K *const x[XR], int nsub, int g) {
  _Pragma("GCC unroll 8") for (int r = 0; r < XR; r++) isum[r] = _mm512_setzero_si512();
  for (int s = 0; s < nsub; s++) {
    __m512i p[XR];
    _Pragma("GCC unroll 8") for (int r = 0; r < XR; r++) p[r] = _mm512_setzero_si512();
    _Pragma("GCC unroll 8") for (int i = s * g; i < s * g + g; i++) {
      const __m512i c = _mm512_load_si512(codes + i);
      _Pragma("GCC unroll 8") for (int r = 0; r < XR; r++) p[r] =
          _mm512_dpbusd_epi32(p[r], c, bcast4(x[r]->qs + 4 * i));
    }
    const __m512i vs = _mm512_load_si512(sc[s]);
    _Pragma("GCC unroll 8") for (int r = 0; r < XR; r++) isum[r] =
        _mm512_add_epi32(isum[r], _mm512_mullo_epi32(p[r], vs));
  }
}

/* The XR rows of x from i0 (past n: the last row again) and their
 * super-block b: row[XR], x[XR]. */
TIN void x_rows_K(const preft_block_q8_K *x[XR], int row[XR], const unsigned char *xq, size_t xqs, int i0,
                  int n, int b) {
  _Pragma("GCC unroll 8") for (int r = 0; r < XR; r++) {
    row[r] = i0 + r < n ? i0 + r : n - 1;
    x[r] = (const preft_block_q8_K *)(xq + (size_t)row[r] * xqs) + b;
  }
}

/* get_scale_min (quant_ref.c) for all 8 sub-blocks: sc[0:8], m[0:8] */
TIN void q4_K_scale_min(const uint8_t *q, uint8_t sc[8], uint8_t m[8]) {
  for (int j = 0; j < 4; j++) sc[j] = q[j] & 63, m[j] = q[j + 4] & 63;
  for (int j = 4; j < 8; j++) {
    sc[j] = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    m[j] = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

/* Bytes 32c..32c+31 of the codes of the Q4_K block whose head is at blk:
 * a ggml block's, or in the R4 layout two 16-byte pieces of its group
 * (tensor/quant.h). */
TIN __m256i q4_K_chunk(preft_dtype layout, const unsigned char *blk, int c) {
  if (!preft_dtype_is_r4(layout))
    return _mm256_loadu_si256((const __m256i *)(((const preft_block_q4_K *)blk)->qs + 32 * c));
  const __m128i lo = _mm_loadu_si128((const __m128i *)(blk + 64 + 128 * c));
  return _mm256_inserti128_si256(_mm256_castsi128_si256(lo),
                                 _mm_loadu_si128((const __m128i *)(blk + 128 + 128 * c)), 1);
}

/* Rows j..j+15 of Q4_K weights in `layout` (Q4_K or its R4 layout: a
 * row's address and block stride, dtype.h; a block's head is where a ggml
 * block's is). */
TIN void tile_q4_K(preft_dtype layout, float *y, size_t ys, const unsigned char *xq, size_t xqs,
                   const unsigned char *w, size_t wrow, int n, int nb, int j, const int32_t *pairs,
                   int accumulate) {
  __m512i codes[8][8] __attribute__((aligned(64))); /* [sub-block][group of 4 values] */
  int32_t sc[8][TR] __attribute__((aligned(64)));
  int32_t mn[4][TR] __attribute__((aligned(64))); /* int16 pairs (m[2p], m[2p+1]) */
  uint16_t dh[TR], dmh[TR];
  float acc[TMAX_N * TR] __attribute__((aligned(64)));
  memset(acc, 0, (size_t)n * TR * sizeof(float));
  const unsigned char *wp[TR]; /* the 16 rows' addresses */
  for (int r = 0; r < TR; r++) wp[r] = w + preft_dtype_row_offset(layout, wrow, (size_t)(j + r));
  const size_t bs = preft_dtype_block_stride(layout);
  const int r4 = preft_dtype_is_r4(layout);
#define Q4K_BLOCK(r, b) ((const preft_block_q4_K *)(wp[r] + (size_t)(b)*bs))
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  for (int b = 0; b < nb; b++) {
    /* the next super-block of the 16 rows: 144 bytes a row, or R4's 576 a group */
    for (int r = 0; b + 1 < nb && r < TR; r += r4 ? 4 : 1)
      for (int l = 0; l < (r4 ? 9 : 3); l++)
        _mm_prefetch((const char *)Q4K_BLOCK(r, b + 1) + 64 * l, _MM_HINT_T0);
    for (int c = 0; c < 4; c++) { /* qs[32c..]: sub-block 2c low nibbles, 2c+1 high */
      __m256i rows[TR];
      __m512i t[8];
      for (int r = 0; r < TR; r++) rows[r] = q4_K_chunk(layout, (const unsigned char *)Q4K_BLOCK(r, b), c);
      transpose16x8(t, rows);
      for (int g = 0; g < 8; g++) {
        codes[2 * c][g] = _mm512_and_si512(t[g], m4);
        codes[2 * c + 1][g] = _mm512_and_si512(_mm512_srli_epi16(t[g], 4), m4);
      }
    }
    for (int r = 0; r < TR; r++) {
      const preft_block_q4_K *blk = Q4K_BLOCK(r, b);
      uint8_t s8[8], m8[8];
      q4_K_scale_min(blk->scales, s8, m8);
      for (int s = 0; s < 8; s++) sc[s][r] = s8[s];
      for (int p = 0; p < 4; p++) mn[p][r] = (int32_t)((uint32_t)m8[2 * p] | (uint32_t)m8[2 * p + 1] << 16);
      dh[r] = blk->d, dmh[r] = blk->dmin;
    }
    const __m512 vd = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)dh));
    const __m512 vdmin = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)dmh));
    for (int i0 = 0; i0 < n; i0 += XR) {
      const preft_block_q8_K *x[XR];
      int row[XR];
      x_rows_K(x, row, xq, xqs, i0, n, b);
      __m512i isum[XR];
      scaled_sums(isum, &codes[0][0], sc, x, 8, 8);
      _Pragma("GCC unroll 8") for (int r = XR - 1; r >= 0; r--) {
        __m512i msum = _mm512_setzero_si512();
        const int32_t *pr = pairs + ((size_t)row[r] * nb + b) * 4;
        _Pragma("GCC unroll 4") for (int q = 0; q < 4; q++) msum =
            _mm512_dpwssd_epi32(msum, _mm512_load_si512(mn[q]), _mm512_set1_epi32(pr[q]));
        /* the reference: d = dw * dx, dmin = dminw * dx, sumf += d * isum - dmin * msum */
        const __m512 dx = _mm512_set1_ps(x[r]->d);
        const __m512 t = _mm512_sub_ps(_mm512_mul_ps(_mm512_mul_ps(vd, dx), _mm512_cvtepi32_ps(isum[r])),
                                       _mm512_mul_ps(_mm512_mul_ps(vdmin, dx), _mm512_cvtepi32_ps(msum)));
        float *ap = acc + TR * row[r];
        if (r == 0 || row[r] != row[r - 1]) _mm512_store_ps(ap, _mm512_add_ps(_mm512_load_ps(ap), t));
      }
    }
  }
#undef Q4K_BLOCK
  store16(y, ys, j, acc, n, accumulate);
}

TIN int tiles_q4_K(preft_dtype layout, float *y, size_t ys, const void *xqv, size_t xqs, const void *w,
                   size_t wrow, int n, int k, int j0, int j1, int accumulate) {
  PREFT_ASSERT(n <= TMAX_N);
  const unsigned char *xq = xqv;
  const int nb = k / PREFT_QK_K;
  /* per row of x and super-block: the 8 sums of 32 (bsums pairs) as 4
   * int32 of two int16 each */
  int32_t *pairs = preft_xmalloc((size_t)n * (size_t)nb * 4 * sizeof(int32_t));
  for (int i = 0; i < n; i++)
    for (int b = 0; b < nb; b++) {
      const preft_block_q8_K *x = (const preft_block_q8_K *)(xq + (size_t)i * xqs) + b;
      __m128i h = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)x->bsums),
                                 _mm_loadu_si128((const __m128i *)(x->bsums + 8)));
      _mm_storeu_si128((__m128i *)(pairs + ((size_t)i * nb + b) * 4), h);
    }
  int j = j0;
  for (; j + TR <= j1; j += TR) tile_q4_K(layout, y, ys, xq, xqs, w, wrow, n, nb, j, pairs, accumulate);
  free(pairs);
  return j;
}

TFN int preft_qtile16_q4_K(float *y, size_t ys, const void *xq, size_t xqs, const void *w, size_t wrow, int n,
                           int k, int j0, int j1, int accumulate) {
  return tiles_q4_K(PREFT_Q4_K, y, ys, xq, xqs, w, wrow, n, k, j0, j1, accumulate);
}

TFN int preft_qtile16_q4_Kr4(float *y, size_t ys, const void *xq, size_t xqs, const void *w, size_t wrow,
                             int n, int k, int j0, int j1, int accumulate) {
  return tiles_q4_K(PREFT_Q4_K_R4, y, ys, xq, xqs, w, wrow, n, k, j0, j1, accumulate);
}

/* ---- Q6_K: one super-block of 256 per step -------------------------------- */

/* The 32 6-bit codes (0..63) of values 128h + 32p .. + 31 of a Q6_K block:
 * low or high nibbles of ql[64h + 32(p & 1)..] and bits 2p, 2p+1 of
 * qh[32h..] (quant_ref.c's dequant_q6_K). */
TIN __m256i q6_K_codes(const preft_block_q6_K *blk, int h, int p) {
  const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x03);
  const __m256i ql = _mm256_loadu_si256((const __m256i *)(blk->ql + 64 * h + 32 * (p & 1)));
  __m256i qh = _mm256_loadu_si256((const __m256i *)(blk->qh + 32 * h));
  const __m256i lo = p < 2 ? _mm256_and_si256(ql, m4) : _mm256_and_si256(_mm256_srli_epi16(ql, 4), m4);
  switch (p) {
    case 1:
      qh = _mm256_srli_epi16(qh, 2);
      break;
    case 2:
      qh = _mm256_srli_epi16(qh, 4);
      break;
    case 3:
      qh = _mm256_srli_epi16(qh, 6);
      break;
    default:
      break;
  }
  return _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4));
}

TIN void tile_q6_K(float *y, size_t ys, const unsigned char *xq, size_t xqs, const unsigned char *w,
                   size_t wrow, int n, int nb, int j, int accumulate) {
  __m512i codes[8][8] __attribute__((aligned(64))); /* [32 values][group of 4] */
  int32_t sc[16][TR] __attribute__((aligned(64)));
  int32_t scp[8][TR] __attribute__((aligned(64))); /* int16 pairs (sc[2q], sc[2q+1]) */
  uint16_t dh[TR];
  float acc[TMAX_N * TR] __attribute__((aligned(64)));
  memset(acc, 0, (size_t)n * TR * sizeof(float));
  const unsigned char *w0 = w + (size_t)j * wrow;
  for (int b = 0; b < nb; b++) {
    for (int r = 0; b + 1 < nb && r < TR; r++) /* the next super-block of the 16 rows (210 bytes) */
      for (int l = 0; l < 4; l++)
        _mm_prefetch((const char *)((const preft_block_q6_K *)(w0 + (size_t)r * wrow) + b + 1) + 64 * l,
                     _MM_HINT_T0);
    for (int c = 0; c < 8; c++) { /* values 32c..: h = c / 4, p = c % 4 */
      __m256i rows[TR];
      for (int r = 0; r < TR; r++)
        rows[r] = q6_K_codes((const preft_block_q6_K *)(w0 + (size_t)r * wrow) + b, c / 4, c % 4);
      transpose16x8(codes[c], rows);
    }
    for (int r = 0; r < TR; r++) {
      const preft_block_q6_K *blk = (const preft_block_q6_K *)(w0 + (size_t)r * wrow) + b;
      for (int s = 0; s < 16; s++) sc[s][r] = blk->scales[s];
      for (int q = 0; q < 8; q++)
        scp[q][r] = (int32_t)((uint32_t)(uint16_t)blk->scales[2 * q] |
                              (uint32_t)(uint16_t)blk->scales[2 * q + 1] << 16);
      dh[r] = blk->d;
    }
    const __m512 vd = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)dh));
    for (int i0 = 0; i0 < n; i0 += XR) {
      const preft_block_q8_K *x[XR];
      int row[XR];
      x_rows_K(x, row, xq, xqs, i0, n, b);
      __m512i isum[XR];
      scaled_sums(isum, &codes[0][0], sc, x, 16, 4);
      _Pragma("GCC unroll 8") for (int r = XR - 1; r >= 0; r--) {
        /* the codes' -32: 32 × sum(sc · bsums), as vpdpwssd of the scale pairs with the bsums pairs */
        __m512i off = _mm512_setzero_si512();
        _Pragma("GCC unroll 8") for (int q = 0; q < 8; q++) {
          int32_t pair;
          memcpy(&pair, x[r]->bsums + 2 * q, 4);
          off = _mm512_dpwssd_epi32(off, _mm512_load_si512(scp[q]), _mm512_set1_epi32(pair));
        }
        const __m512i is = _mm512_sub_epi32(isum[r], _mm512_slli_epi32(off, 5));
        /* the reference: sumf += d_w * d_x * isum */
        const __m512 t = _mm512_mul_ps(_mm512_mul_ps(vd, _mm512_set1_ps(x[r]->d)), _mm512_cvtepi32_ps(is));
        float *ap = acc + TR * row[r];
        if (r == 0 || row[r] != row[r - 1]) _mm512_store_ps(ap, _mm512_add_ps(_mm512_load_ps(ap), t));
      }
    }
  }
  store16(y, ys, j, acc, n, accumulate);
}

TFN int preft_qtile16_q6_K(float *y, size_t ys, const void *xq, size_t xqs, const void *w, size_t wrow, int n,
                           int k, int j0, int j1, int accumulate) {
  PREFT_ASSERT(n <= TMAX_N);
  const int nb = k / PREFT_QK_K;
  int j = j0;
  for (; j + TR <= j1; j += TR) tile_q6_K(y, ys, xq, xqs, w, wrow, n, nb, j, accumulate);
  return j;
}

#endif
