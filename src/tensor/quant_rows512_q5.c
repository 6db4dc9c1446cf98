/* quant_rows512_q5.c - the rows kernels (N < 16 rows of x: decode) of the
 * AVX512-VNNI table (quant_avx512vnni.c) for Q4_0 and Q5_0, on zmm: ggml's
 * layout two blocks per step (below), the X4 layouts the loader repacks
 * them to (quant.h) four blocks per step (group_step: one load for the
 * nibbles of 128 values, about 14 instructions per group).
 *
 * Two blocks of 32 weights per zmm: the codes of block A in the low 256
 * bits (its low nibbles, then its high nibbles, Q5_0's fifth bits added as
 * 16 under a 64-bit mask of both blocks' qh), block B's in the high 256.
 * One vpdpbusd multiplies them with the two Q8_0 blocks of x, its int32
 * lanes starting from the codes' offset (−8 or −16 × each block's sum of
 * x, a share per lane); one vcvtdq2ps and one FMA with [d_A·dx_A ×8,
 * d_B·dx_B ×8] bring them into FP32. Per pair of blocks about 17
 * instructions: the codes from two 128-bit broadcasts and one shift per
 * 64-bit lane, the scales from two 16-bit broadcasts. Even and odd pairs
 * go to two sets of accumulators (with one, batch-1 decode waited on the
 * FMA chain), and one row of x takes the weight rows four at a time with
 * one shuffle tree for their four sums: together 1.2-1.4x the previous
 * version per core at N = 1 (docs/PERFORMANCE.md).
 *
 * x is first laid out as the kernel reads it (pairs or groups of blocks:
 * their int8 contiguous, the offsets and the scales as zmm-ready vectors):
 * once per product by preft_qx512_layout for the rows_laid entries that
 * quant_gemm.c takes, or per call for the plain entries (the tiles'
 * leftover rows).
 * An odd last block pairs with nothing: its high half is masked out of the
 * FMA (only there: the full pairs take no mask).
 *
 * Accuracy: FP32 sums per lane then one reduction, as the ymm kernels (not
 * bit for bit the reference's order; tests/unit/test_quant.c's tolerance).
 * Every row of x has its own accumulators whatever else is in the call,
 * and a sum is reduced in the same order alone or in a group of four
 * (rows_avx512.h), so a row's bits do not depend on the batch.
 */
#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "tensor/quant_kern.h"
#include "tensor/rows_avx512.h"

#define Q5_TARGET "avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni"
#define QFN __attribute__((target(Q5_TARGET)))
#define QIN static inline __attribute__((always_inline, target(Q5_TARGET)))

#define PNR 4           /* rows of x per pass over the weights */
#define PF_AHEAD 4096   /* bytes of the weight stream prefetched ahead */
#define QUAD_AHEAD 8192 /* at least this many bytes ahead in a four-row walk (rows4_groups) */
#define PAIRS_STACK 128 /* x pairs kept on the stack (pairs × rows: K = 2048 at 4 rows, 24 KiB) */

/* One pair of x blocks as the kernel reads it (192 bytes). */
typedef struct {
  int8_t qs[64];   /* block A's 32 values, then block B's (zeros past the last block) */
  int32_t off[16]; /* lanes 0-7: −(8 or 16)·sum(x_A)/8; lanes 8-15 the same of B */
  float dx[16];    /* lanes 0-7: d of x_A; lanes 8-15: d of x_B */
} x_pair;

/* 32-bit little-endian load */
QIN uint32_t load_u32(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

/* Sum of the 32 int8 of a block. */
QIN int32_t sum32(const int8_t *q) {
  const __m256i s =
      _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), _mm256_loadu_si256((const __m256i *)q)),
                        _mm256_set1_epi16(1));
  __m128i r = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
  r = _mm_add_epi32(r, _mm_shuffle_epi32(r, 0x4E));
  r = _mm_add_epi32(r, _mm_shuffle_epi32(r, 0xB1));
  return _mm_cvtsi128_si32(r);
}

/* The pairs of one row of x (nb Q8_0 blocks); per_lane = offset / 8. */
QIN void prep_pairs(x_pair *out, const preft_block_q8_0 *x, int nb, int per_lane) {
  for (int p = 0; p < (nb + 1) / 2; p++) {
    x_pair *o = out + p;
    for (int h = 0; h < 2; h++) {
      const int b = 2 * p + h;
      const bool real = b < nb;
      if (real)
        memcpy(o->qs + 32 * h, x[b].qs, 32);
      else
        memset(o->qs + 32 * h, 0, 32);
      const int32_t off = real ? -per_lane * sum32(x[b].qs) : 0;
      const float d = real ? _cvtsh_ss(x[b].d) : 0.0f;
      for (int l = 0; l < 8; l++) o->off[8 * h + l] = off, o->dx[8 * h + l] = d;
    }
  }
}

/* The 64 codes (0..15) of weight blocks a and b, each block's in value
 * order (low nibbles of qs, then high nibbles): a's 16 bytes broadcast to
 * 128-bit lanes 0-1 and b's to 2-3, lanes 1 and 3 shifted right by 4
 * (within 64 bits: a byte's high nibble moves down, the next byte's low
 * nibble into its high half, which the mask clears). */
QIN __m512i codes_pair(const uint8_t *qs_a, const uint8_t *qs_b) {
  __m512i v = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)qs_a));
  v = _mm512_mask_broadcast_i32x4(v, 0xFF00, _mm_loadu_si128((const __m128i *)qs_b));
  v = _mm512_srlv_epi64(v, _mm512_set_epi64(4, 4, 0, 0, 4, 4, 0, 0));
  return _mm512_and_si512(v, _mm512_set1_epi8(0x0F));
}

/* [d_a ×8, d_b ×8] as FP32 from the fp16 at a and at b */
QIN __m512 scales_pair(const uint8_t *a, const uint8_t *b) {
  uint16_t da, db;
  memcpy(&da, a, 2), memcpy(&db, b, 2);
  const __m256i h = _mm256_mask_set1_epi16(_mm256_set1_epi16((short)da), 0xFF00, (short)db);
  return _mm512_cvtph_ps(h);
}

/* ---- the X4 layouts (quant.h): four blocks per step ---------------------- */

/* One group of four x blocks as the X4 kernel reads it (256 bytes). */
typedef struct {
  int8_t lo[64];   /* values 0-15 of blocks 0..3, 16 each: the order of a group's low nibbles */
  int8_t hi[64];   /* values 16-31: the high nibbles' */
  int32_t off[16]; /* lanes 4i..4i+3: −(8 or 16)·sum(x_i)/4 */
  float dx[16];    /* lanes 4i..4i+3: d of x_i */
} x_group;

/* The groups of one row of x (nb Q8_0 blocks, a multiple of 4); per_lane
 * = offset / 4. */
QIN void prep_groups(x_group *out, const preft_block_q8_0 *x, int nb, int per_lane) {
  for (int g = 0; g < nb / 4; g++) {
    x_group *o = out + g;
    for (int i = 0; i < 4; i++) {
      const preft_block_q8_0 *b = x + 4 * g + i;
      memcpy(o->lo + 16 * i, b->qs, 16);
      memcpy(o->hi + 16 * i, b->qs + 16, 16);
      const int32_t off = -per_lane * sum32(b->qs);
      const float d = _cvtsh_ss(b->d);
      for (int l = 0; l < 4; l++) o->off[4 * i + l] = off, o->dx[4 * i + l] = d;
    }
  }
}

/* Group g of an X4 weight row (kind 3: Q4_0_X4, 4: Q5_0_X4) against NR
 * rows of x laid out as groups (ng a row), into acc[0:NR], prefetching
 * the lines `ahead` bytes on. The nibbles of
 * 128 values are one load: low nibbles (values 0-15 of each block, block i
 * in 128-bit lane i) and high nibbles (values 16-31) pair with x_group's
 * lo and hi, whose int32 lanes 4i..4i+3 are block i's, so both vpdpbusd
 * add into one accumulator and one FMA takes the group's four scales. */
QIN void group_step(__m512 *acc, const uint8_t *row, int g, const x_group *xg, int ng, size_t ahead,
                    const int kind, const int NR) {
  const size_t gb = kind == 3 ? sizeof(preft_group_q4_0x4) : sizeof(preft_group_q5_0x4);
  const size_t d_at = kind == 3 ? offsetof(preft_group_q4_0x4, d) : offsetof(preft_group_q5_0x4, d);
  const uint8_t *p = row + (size_t)g * gb;
  _mm_prefetch((const char *)p + ahead, _MM_HINT_T0); /* a group spans two or three lines */
  _mm_prefetch((const char *)p + ahead + 64, _MM_HINT_T0);
  const __m512i raw = _mm512_loadu_si512((const void *)p), m4 = _mm512_set1_epi8(0x0F);
  __m512i lo = _mm512_and_si512(raw, m4), hi = _mm512_and_si512(_mm512_srli_epi16(raw, 4), m4);
  if (kind == 4) {
    uint64_t bl, bh;
    memcpy(&bl, p + offsetof(preft_group_q5_0x4, qh_lo), 8);
    memcpy(&bh, p + offsetof(preft_group_q5_0x4, qh_hi), 8);
    lo = _mm512_mask_add_epi8(lo, _cvtu64_mask64(bl), lo, _mm512_set1_epi8(0x10));
    hi = _mm512_mask_add_epi8(hi, _cvtu64_mask64(bh), hi, _mm512_set1_epi8(0x10));
  }
  /* the four fp16 d, each to four lanes */
  const __m256i d4 = _mm256_castsi128_si256(_mm_loadl_epi64((const __m128i *)(p + d_at)));
  const __m512 dw = _mm512_cvtph_ps(
      _mm256_permutexvar_epi16(_mm256_setr_epi16(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3), d4));
  _Pragma("GCC unroll 4") for (int r = 0; r < NR; r++) {
    const x_group *x = xg + (size_t)r * (size_t)ng + (size_t)g;
    __m512i s = _mm512_dpbusd_epi32(_mm512_loadu_si512(x->off), lo, _mm512_loadu_si512((const void *)x->lo));
    s = _mm512_dpbusd_epi32(s, hi, _mm512_loadu_si512((const void *)x->hi));
    acc[r] = _mm512_fmadd_ps(_mm512_mul_ps(dw, _mm512_loadu_ps(x->dx)), _mm512_cvtepi32_ps(s), acc[r]);
  }
}

/* An X4 weight row (ng groups) against NR rows of x: even and odd groups
 * in two sets of accumulators (two FMA chains), added at the end. */
QIN void row_groups(__m512 *acc, const void *w, int ng, const x_group *xg, const int kind, const int NR) {
  __m512 odd[PNR];
  for (int r = 0; r < NR; r++) acc[r] = odd[r] = _mm512_setzero_ps();
  int g = 0;
  for (; g + 1 < ng; g += 2) {
    group_step(acc, w, g, xg, ng, PF_AHEAD, kind, NR);
    group_step(odd, w, g + 1, xg, ng, PF_AHEAD, kind, NR);
  }
  if (g < ng) group_step(acc, w, g, xg, ng, PF_AHEAD, kind, NR);
  for (int r = 0; r < NR; r++) acc[r] = _mm512_add_ps(acc[r], odd[r]);
}

/* Four X4 weight rows (rows wrow bytes apart) against one row of x, group
 * by group: each row's FMAs and accumulators as row_groups gives them (the
 * same bits), x's group loaded once for the four. One core, weights hot, 4-24%
 * faster than the rows one after another (bench_quant, docs/KERNELS.md).
 * The four rows advance together, so a prefetch a fixed distance on in
 * each row led the walk by four times that distance in long rows and by
 * less than one row's bytes in short ones; each group step prefetches the
 * same group of the rows a whole number of quads on instead (at least
 * QUAD_AHEAD bytes of the stream): from memory 1.1-1.4x on the Qwen and
 * Llama shapes (docs/KERNELS.md). */
QIN void rows4_groups(__m512 *s, const unsigned char *w, size_t wrow, int ng, const x_group *xg,
                      const int kind) {
  __m512 odd[4];
  for (int t = 0; t < 4; t++) s[t] = odd[t] = _mm512_setzero_ps();
  const size_t quad = 4 * wrow, ahead = (QUAD_AHEAD + quad - 1) / quad * quad;
  int g = 0;
  for (; g + 1 < ng; g += 2) {
    _Pragma("GCC unroll 4") for (int t = 0; t < 4; t++)
        group_step(&s[t], w + (size_t)t * wrow, g, xg, ng, ahead, kind, 1);
    _Pragma("GCC unroll 4") for (int t = 0; t < 4; t++)
        group_step(&odd[t], w + (size_t)t * wrow, g + 1, xg, ng, ahead, kind, 1);
  }
  if (g < ng)
    _Pragma("GCC unroll 4") for (int t = 0; t < 4; t++)
        group_step(&s[t], w + (size_t)t * wrow, g, xg, ng, ahead, kind, 1);
  for (int t = 0; t < 4; t++) s[t] = _mm512_add_ps(s[t], odd[t]);
}

/* ---- plain Q4_0 / Q5_0: two blocks per step ------------------------------ */

/* Pair p of a weight row (blocks from blk, of kind 1: Q4_0, 2: Q5_0)
 * against NR rows of x laid out as pairs (np a row), into acc[0:NR].
 * FULL: both blocks are real; else block b does not exist (an odd last
 * block) and the high half of the lanes is left out. */
QIN void pair_step(__m512 *acc, const uint8_t *blk, int p, const x_pair *xp, int np, const int kind,
                   const int NR, const bool FULL) {
  const size_t bs = kind == 1 ? sizeof(preft_block_q4_0) : sizeof(preft_block_q5_0);
  const size_t qs_at = kind == 1 ? offsetof(preft_block_q4_0, qs) : offsetof(preft_block_q5_0, qs);
  const uint8_t *a = blk + (size_t)(2 * p) * bs;
  const uint8_t *b = FULL ? a + bs : a;
  _mm_prefetch((const char *)a + PF_AHEAD, _MM_HINT_T0);
  __m512i q = codes_pair(a + qs_at, b + qs_at);
  if (kind == 2) {
    const __mmask64 bits = _mm512_kunpackd(_cvtu32_mask32(load_u32(b + offsetof(preft_block_q5_0, qh))),
                                           _cvtu32_mask32(load_u32(a + offsetof(preft_block_q5_0, qh))));
    q = _mm512_mask_add_epi8(q, bits, q, _mm512_set1_epi8(0x10));
  }
  const __m512 dw = scales_pair(a, b);
  _Pragma("GCC unroll 4") for (int r = 0; r < NR; r++) {
    const x_pair *x = xp + (size_t)r * (size_t)np + (size_t)p;
    const __m512i s =
        _mm512_dpbusd_epi32(_mm512_loadu_si512(x->off), q, _mm512_loadu_si512((const void *)x->qs));
    const __m512 f = _mm512_mul_ps(dw, _mm512_loadu_ps(x->dx));
    acc[r] = FULL ? _mm512_fmadd_ps(f, _mm512_cvtepi32_ps(s), acc[r])
                  : _mm512_mask3_fmadd_ps(f, _mm512_cvtepi32_ps(s), acc[r], 0x00FF);
  }
}

/* Weight row w (nb blocks of kind 1: Q4_0, 2: Q5_0) against NR rows of x
 * laid out as pairs (np a row), into acc[0:NR]: even pairs in one set of
 * accumulators and odd ones in another, so that two FMA chains overlap
 * (one chain bounded N = 1 by its latency), added at the end. */
QIN void row_pairs(__m512 *acc, const void *w, int nb, const x_pair *xp, int np, const int kind,
                   const int NR) {
  __m512 odd[PNR];
  for (int r = 0; r < NR; r++) acc[r] = odd[r] = _mm512_setzero_ps();
  const uint8_t *blk = w;
  const int full = nb / 2; /* pairs of two real blocks */
  int p = 0;
  for (; p + 1 < full; p += 2) {
    pair_step(acc, blk, p, xp, np, kind, NR, true);
    pair_step(odd, blk, p + 1, xp, np, kind, NR, true);
  }
  if (p < full) pair_step(acc, blk, p++, xp, np, kind, NR, true);
  if (p < np) pair_step(odd, blk, p, xp, np, kind, NR, false);
  for (int r = 0; r < NR; r++) acc[r] = _mm512_add_ps(acc[r], odd[r]);
}

/* One weight row against NR rows of x laid out for the kind (x_pair for
 * 1: Q4_0, 2: Q5_0; x_group for the X4 layouts 3, 4), into acc[0:NR]. */
QIN void row_dot(__m512 *acc, const void *w, int nb, const void *xl, const int kind, const int NR) {
  if (kind >= 3)
    row_groups(acc, w, nb / 4, xl, kind, NR);
  else
    row_pairs(acc, w, nb, xl, (nb + 1) / 2, kind, NR);
}

/* Bytes of one row of x laid out for the kind (nb Q8_0 blocks). */
QIN size_t x_layout_bytes(int nb, const int kind) {
  return kind >= 3 ? (size_t)(nb / 4) * sizeof(x_group) : (size_t)((nb + 1) / 2) * sizeof(x_pair);
}

/* nr rows of Q8_0 x (xqs bytes apart, nb blocks) laid out for the kind
 * into xl, rows xrow bytes apart. */
QIN void lay_out(unsigned char *xl, size_t xrow, const unsigned char *xq, size_t xqs, int nr, int nb,
                 const int kind) {
  for (int r = 0; r < nr; r++) {
    const preft_block_q8_0 *x = (const preft_block_q8_0 *)(xq + (size_t)r * xqs);
    if (kind >= 3)
      prep_groups((x_group *)(xl + (size_t)r * xrow), x, nb, kind == 3 ? 2 : 4);
    else
      prep_pairs((x_pair *)(xl + (size_t)r * xrow), x, nb, kind == 1 ? 1 : 2);
  }
}

/* y[0:nr, j0:j1] (+)= the dots of weight rows [j0, j1) with nr <= PNR rows
 * of x laid out for the kind (rows xrow bytes apart), one pass over the
 * weights. One row of x (decode) takes the weight rows four at a time,
 * their sums reduced by one shuffle tree (preft_sum4_avx512: the reduction
 * was an eighth of the time at K = 896); more rows reduce each sum alone
 * (preft_sum1_avx512), in the same order, so a row's bits do not depend
 * on the batch. */
QIN void rows_pass(float *y, size_t ys, const unsigned char *xl, const void *w, size_t wrow, int nr, int nb,
                   int j0, int j1, int accumulate, const int kind) {
  if (nr == 1) {
    for (int j = j0; j < j1; j += 4) {
      const int rw = j1 - j < 4 ? j1 - j : 4;
      __m512 s[4];
      if (kind >= 3 && rw == 4) { /* the X4 layouts: the four rows group by group */
        rows4_groups(s, (const unsigned char *)w + (size_t)j * wrow, wrow, nb / 4, (const x_group *)xl, kind);
      } else {
#pragma GCC unroll 4
        for (int t = 0; t < 4; t++) { /* rows past j1: zeros, their lanes not stored */
          s[t] = _mm512_setzero_ps();
          if (t < rw) row_dot(&s[t], (const unsigned char *)w + (size_t)(j + t) * wrow, nb, xl, kind, 1);
        }
      }
      float v[4];
      _mm_storeu_ps(v, preft_sum4_avx512(s[0], s[1], s[2], s[3]));
      for (int t = 0; t < rw; t++) y[j + t] = accumulate ? y[j + t] + v[t] : v[t];
    }
    return;
  }
  for (int j = j0; j < j1; j++) {
    const unsigned char *wj = (const unsigned char *)w + (size_t)j * wrow;
    __m512 acc[PNR];
    switch (nr) { /* a constant NR keeps the accumulators in registers */
      case 2:
        row_dot(acc, wj, nb, xl, kind, 2);
        break;
      case 3:
        row_dot(acc, wj, nb, xl, kind, 3);
        break;
      default:
        row_dot(acc, wj, nb, xl, kind, 4);
    }
    for (int r = 0; r < nr; r++) {
      const float v = preft_sum1_avx512(acc[r]);
      y[(size_t)r * ys + j] = accumulate ? y[(size_t)r * ys + j] + v : v;
    }
  }
}

/* y[0:n, j0:j1] (+)= the dots of weight rows [j0, j1) with n rows of Q8_0
 * x, PNR rows of x per pass over the weights, each laid out first. */
QIN void rows_pairs(float *y, size_t ys, const void *xqv, size_t xqs, const void *w, size_t wrow, int n,
                    int k, int j0, int j1, int accumulate, const int kind) {
  const unsigned char *xq = xqv;
  const int nb = k / PREFT_QK;
  const size_t xrow = x_layout_bytes(nb, kind);
  x_pair xl_stack[PAIRS_STACK];
  const bool big = xrow * PNR > sizeof xl_stack;
  unsigned char *xl = big ? preft_xmalloc(xrow * PNR) : (unsigned char *)xl_stack;
  for (int i0 = 0; i0 < n; i0 += PNR) {
    const int nr = n - i0 < PNR ? n - i0 : PNR;
    lay_out(xl, xrow, xq + (size_t)i0 * xqs, xqs, nr, nb, kind);
    rows_pass(y + (size_t)i0 * ys, ys, xl, w, wrow, nr, nb, j0, j1, accumulate, kind);
  }
  if (big) free(xl);
}

/* The same with x already laid out (preft_qx512_layout: rows xls bytes
 * apart), as the tasks of one product share it. */
QIN void rows_laid(float *y, size_t ys, const void *xlv, size_t xls, const void *w, size_t wrow, int n, int k,
                   int j0, int j1, int accumulate, const int kind) {
  for (int i0 = 0; i0 < n; i0 += PNR)
    rows_pass(y + (size_t)i0 * ys, ys, (const unsigned char *)xlv + (size_t)i0 * xls, w, wrow,
              n - i0 < PNR ? n - i0 : PNR, k / PREFT_QK, j0, j1, accumulate, kind);
}

/* The kind of a weight type (0: none here). */
QIN int kind_of(preft_dtype t) {
  switch (t) {
    case PREFT_Q4_0:
      return 1;
    case PREFT_Q5_0:
      return 2;
    case PREFT_Q4_0_X4:
      return 3;
    case PREFT_Q5_0_X4:
      return 4;
    default:
      return 0;
  }
}

QFN size_t preft_qx512_layout_bytes(preft_dtype t, int k) {
  const int kind = kind_of(t), nb = k / PREFT_QK;
  return kind >= 3 ? x_layout_bytes(nb, 3) : kind ? x_layout_bytes(nb, 1) : 0;
}

QFN void preft_qx512_layout(preft_dtype t, void *dst, const void *xq, size_t xqs, int n, int k) {
  const int kind = kind_of(t), nb = k / PREFT_QK;
  const size_t xrow = preft_qx512_layout_bytes(t, k);
  switch (kind) { /* a constant kind inlines one prep */
    case 1:
      lay_out(dst, xrow, xq, xqs, n, nb, 1);
      break;
    case 2:
      lay_out(dst, xrow, xq, xqs, n, nb, 2);
      break;
    case 3:
      lay_out(dst, xrow, xq, xqs, n, nb, 3);
      break;
    case 4:
      lay_out(dst, xrow, xq, xqs, n, nb, 4);
      break;
    default:
      PREFT_ASSERT(!"preft_qx512_layout: a type without a layout");
  }
}

/* The entry points: x of Q8_0 rows (ENTRY), or laid out once per product
 * (LAID, preft_qx512_layout). */
#define ENTRY(T, KIND)                                                                                     \
  QFN void preft_qrows512_##T(float *y, size_t ys, const void *xq, size_t xqs, const void *w, size_t wrow, \
                              int n, int k, int j0, int j1, int accumulate) {                              \
    rows_pairs(y, ys, xq, xqs, w, wrow, n, k, j0, j1, accumulate, KIND);                                   \
  }
ENTRY(q4_0, 1)
ENTRY(q5_0, 2)
ENTRY(q4_0x4, 3)
ENTRY(q5_0x4, 4)
#undef ENTRY

#define LAID(T, KIND)                                                                              \
  QFN void preft_qrows512_laid_##T(float *y, size_t ys, const void *xl, size_t xls, const void *w, \
                                   size_t wrow, int n, int k, int j0, int j1, int accumulate) {    \
    rows_laid(y, ys, xl, xls, w, wrow, n, k, j0, j1, accumulate, KIND);                            \
  }
LAID(q4_0, 1)
LAID(q5_0, 2)
LAID(q4_0x4, 3)
LAID(q5_0x4, 4)
#undef LAID

#endif
