/* quant_rows512.c - the rows kernels (N < 16 rows of x: decode) of the
 * AVX512-VNNI table (quant_avx512vnni.c) for the K-quants, on zmm.
 *
 * Each super-block of 256 values of a weight row is dotted 64 values per
 * instruction: the codes (Q4_K nibbles, Q6_K 6-bit codes) times x by
 * vpmaddubsw (int16 pairs, no saturation: 2 · 63 · 127 < 32768), then
 * vpdpwssd with the pairs' int16 sub-block scales adds them into an int32
 * accumulator: 2 instructions per 64 values and row of x, and one
 * accumulator per weight row and row of x for the whole super-block.
 * Q4_K's codes come 128 values per 64-byte load: its low nibbles (values
 * 128h..+31 and 128h+64..+95) one vpand away and its high nibbles one
 * shift more, against x laid out in that order once per product
 * (x_sb_q4_K, preft_qx512_layout; the plain entry lays it out per call).
 * The previous version broadcast 32 bytes per 64 values and shifted them
 * by (0 | 4) to read x in its own order: one core, weights in cache
 * (`bench_quant 1 0.3 "" q4_k 1 hot`), the layout is 12-17% faster.
 *
 * Weight rows go 4 at a time (a range's last rows repeat the last one,
 * stored once), so the int32 super-block sums of 4 weight rows are reduced
 * by one transposing tree (13 instructions for 4 sums) and the FP32 steps
 * run on 4 lanes, one weight row each: the reference's steps in its order
 * (quant_ref.c: Q4_K `sumf += d·isum − dmin·msum` with d = d_w·d_x and
 * dmin = dmin_w·d_x; Q6_K `sumf += d_w·d_x·isum`; mul, sub and add, no
 * FMA), so these kernels give preft_quant_dot_ref's bits exactly
 * (tests/unit/test_quant.c compares with memcmp). Rows of x go up to 4 per
 * pass over the weights (decode reads each weight byte once). Q4_K's R4
 * layout (tensor/quant.h) has its own kernel, q4_Kr4_superblock below:
 * the 4 rows of a group are one sequential stream and one zmm holds all
 * 4; one row of x reads two groups far apart at a time (two streams).
 *
 * Shapes: y[n, ys], xq n rows of Q8_K blocks xqs bytes apart, weight rows
 * j0..j1 wrow bytes apart, k a multiple of 256.
 */
#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "tensor/quant_kern.h"

#define R5_TARGET "avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni"
#define RFN __attribute__((target(R5_TARGET)))
#define RIN static inline __attribute__((always_inline, target(R5_TARGET)))

#define RW 4      /* weight rows per group: lanes of the FP32 steps */
#define RNR 4     /* rows of x per pass over the weights */
#define RPF 8     /* super-blocks of prefetch distance (prefetch_ahead) */
#define RSTACK 64 /* Q4_K super-blocks of laid-out x kept on the stack (super-blocks × rows, 20 KiB) */

/* The 4 sums of the 16 int32 of each of a, b, c, d, as lanes 0..3. */
RIN __m128i hsum4(__m512i a, __m512i b, __m512i c, __m512i d) {
  /* per 128-bit lane: [a0+a2, b0+b2, a1+a3, b1+b3] */
  const __m512i t0 = _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
  const __m512i t1 = _mm512_add_epi32(_mm512_unpacklo_epi32(c, d), _mm512_unpackhi_epi32(c, d));
  /* per 128-bit lane: [a, b, c, d] over its 4 */
  const __m512i u = _mm512_add_epi32(_mm512_unpacklo_epi64(t0, t1), _mm512_unpackhi_epi64(t0, t1));
  const __m256i v = _mm256_add_epi32(_mm512_castsi512_si256(u), _mm512_extracti64x4_epi64(u, 1));
  return _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
}

/* The fp16 at byte off of p[0..3] as FP32 (vpinsrw: no store to forward) */
RIN __m128 half4(const void *const p[RW], size_t off) {
  uint16_t h[RW];
  for (int w = 0; w < RW; w++) memcpy(&h[w], (const unsigned char *)p[w] + off, 2);
  return _mm_cvtph_ps(_mm_setr_epi16((short)h[0], (short)h[1], (short)h[2], (short)h[3], 0, 0, 0, 0));
}

/* Software prefetch of the block RPF super-blocks ahead in each of the 4
 * rows (past a row's end: the same place in the next group's rows), its
 * `lines` cache lines: 4 interleaved streams defeat the hardware
 * prefetcher's reach on cold weights. */
RIN void prefetch_ahead(const void *const row[RW], size_t wrow, int b, int nb, size_t bb, int lines) {
  const int t = b + RPF;
  for (int i = 0; i < RW; i++) {
    const char *p = (const char *)row[i] + (t < nb ? (size_t)t * bb : RW * wrow + (size_t)(t - nb) * bb);
    for (int l = 0; l < lines; l++) _mm_prefetch(p + 64 * l, _MM_HINT_T0);
  }
}

/* y[r*ys + j + w] (+)= acc[r] lane w, for the rw real rows of the group */
RIN void store_group(float *y, size_t ys, int j, int rw, const __m128 *acc, int nr, int accumulate) {
  for (int r = 0; r < nr; r++) {
    float v[RW];
    _mm_storeu_ps(v, acc[r]);
    float *yp = y + (size_t)r * ys + j;
    for (int w = 0; w < rw; w++) yp[w] = accumulate ? yp[w] + v[w] : v[w];
  }
}

/* ---- Q4_K ------------------------------------------------------------------ */

/* The first 16 bytes of 4 Q4_K blocks (d, dmin, the 12 packed scale
 * bytes), block i in 128-bit lane i. */
RIN __m512i q4_K_heads(const preft_block_q4_K *const p[RW]) {
  __m512i z = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)p[0]));
  z = _mm512_inserti32x4(z, _mm_loadu_si128((const __m128i *)p[1]), 1);
  z = _mm512_inserti32x4(z, _mm_loadu_si128((const __m128i *)p[2]), 2);
  return _mm512_inserti32x4(z, _mm_loadu_si128((const __m128i *)p[3]), 3);
}

/* get_scale_min (quant_ref.c) of the 4 blocks' heads at once: in 128-bit
 * lane i, bytes 0..7 the 8 scales of block i, bytes 8..15 its 8 mins. With
 * q = the 12 packed bytes (at 4.. of the head):
 *   sc[j] = q[j] & 63, m[j] = q[j+4] & 63                        (j < 4)
 *   sc[j] = (q[j+4] & 15) | (q[j-4] >> 6) << 4,
 *   m[j] = (q[j+4] >> 4) | (q[j] >> 6) << 4                       (j >= 4) */
RIN __m512i q4_K_scale_min(__m512i heads) {
  /* a: q[0..3], q[8..11], q[4..7], q[8..11]; b: 0, q[0..3], 0, q[4..7] */
  const __m512i ia =
      _mm512_broadcast_i32x4(_mm_setr_epi8(4, 5, 6, 7, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15));
  const __m512i ib =
      _mm512_broadcast_i32x4(_mm_setr_epi8(-1, -1, -1, -1, 4, 5, 6, 7, -1, -1, -1, -1, 8, 9, 10, 11));
  const __m512i ma =
      _mm512_broadcast_i32x4(_mm_setr_epi8(63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 0, 0, 0, 0));
  const __m512i mh =
      _mm512_broadcast_i32x4(_mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 15, 15, 15, 15));
  const __m512i a = _mm512_shuffle_epi8(heads, ia), b = _mm512_shuffle_epi8(heads, ib);
  const __m512i lo = _mm512_or_si512(_mm512_and_si512(a, ma), _mm512_and_si512(_mm512_srli_epi16(a, 4), mh));
  return _mm512_or_si512(lo, _mm512_and_si512(_mm512_srli_epi16(b, 2), _mm512_set1_epi8(0x30)));
}

/* From q4_K_scale_min's result: 128-bit lane i's 8 mins as int16. */
RIN __m512i q4_K_mins16(__m512i sm) {
  return _mm512_shuffle_epi8(sm, _mm512_broadcast_i32x4(_mm_setr_epi8(8, -1, 9, -1, 10, -1, 11, -1, 12, -1,
                                                                      13, -1, 14, -1, 15, -1)));
}

/* d and dmin of the 4 blocks' heads (dword 0 of each 128-bit lane) as
 * FP32, block i in lane i. */
RIN void q4_K_d_dmin(__m512i heads, __m128 *vd, __m128 *vdmin) {
  const __m512i lane0 = _mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
  const __m128i dd = _mm_shuffle_epi8(_mm512_castsi512_si128(_mm512_permutexvar_epi32(lane0, heads)),
                                      _mm_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15));
  *vd = _mm_cvtph_ps(dd);
  *vdmin = _mm_cvtph_ps(_mm_srli_si128(dd, 8));
}

/* One super-block of a row of Q8_K x as the Q4_K kernel reads it (320
 * bytes): its values in the order of a 64-byte load of Q4_K codes, so that
 * one load and mask give the low nibbles of two 32-byte chunks and one
 * shift more their high nibbles. Half h (values 128h..128h+127) is
 * q[128h..]: values +0..31 (chunk 2h's low nibbles), +64..95 (chunk
 * 2h+1's low), +32..63 (2h's high), +96..127 (2h+1's high). */
typedef struct {
  int8_t q[256];
  int16_t pairs[8]; /* the 8 sums of 32 values (bsums[2s] + bsums[2s+1]) */
  float d;
  uint8_t pad[44]; /* to whole cache lines */
} x_sb_q4_K;
_Static_assert(sizeof(x_sb_q4_K) == 320, "x_sb_q4_K: whole cache lines");

/* nr rows of Q8_K x (xqs bytes apart, nb super-blocks) laid out as
 * x_sb_q4_K, rows xls bytes apart. */
RIN void q4_K_lay_out(unsigned char *xl, size_t xls, const unsigned char *xq, size_t xqs, int nr, int nb) {
  for (int r = 0; r < nr; r++)
    for (int b = 0; b < nb; b++) {
      const preft_block_q8_K *x = (const preft_block_q8_K *)(xq + (size_t)r * xqs) + b;
      x_sb_q4_K *o = (x_sb_q4_K *)(xl + (size_t)r * xls) + b;
      for (int h = 0; h < 2; h++) {
        memcpy(o->q + 128 * h, x->qs + 128 * h, 32);
        memcpy(o->q + 128 * h + 32, x->qs + 128 * h + 64, 32);
        memcpy(o->q + 128 * h + 64, x->qs + 128 * h + 32, 32);
        memcpy(o->q + 128 * h + 96, x->qs + 128 * h + 96, 32);
      }
      _mm_storeu_si128((__m128i *)o->pairs, _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)x->bsums),
                                                           _mm_loadu_si128((const __m128i *)(x->bsums + 8))));
      o->d = x->d; /* pad: never read */
    }
}

/* Weight rows j..j+3 (rows past j + rw - 1 repeat it) against NR rows of
 * x laid out as x_sb_q4_K (rows xls bytes apart). */
RIN void q4_K_group(float *y, size_t ys, const unsigned char *xl, size_t xls, const unsigned char *w,
                    size_t wrow, int j, int rw, int nb, const int NR, int accumulate) {
  const preft_block_q4_K *wr[RW];
  for (int i = 0; i < RW; i++)
    wr[i] = (const preft_block_q4_K *)(w + (size_t)(j + (i < rw ? i : rw - 1)) * wrow);
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  /* from a block's 16 scale/min bytes in every lane, for the codes of
   * half h: pick[2h] the low nibbles' (int16 lanes 0-15 scale 4h, 16-31
   * scale 4h+2), pick[2h+1] the high nibbles' (4h+1, 4h+3) */
  __m512i pick[4];
  for (int c = 0; c < 4; c++) {
    int8_t idx[64];
    const int s0 = 4 * (c / 2) + c % 2;
    for (int i = 0; i < 64; i++) idx[i] = (int8_t)(i % 2 ? -1 : s0 + 2 * (i / 32));
    pick[c] = _mm512_loadu_si512(idx);
  }
  const __m512i lane0 = _mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
  __m128 acc[RNR];
  for (int r = 0; r < NR; r++) acc[r] = _mm_setzero_ps();
  for (int b = 0; b < nb; b++) {
    const preft_block_q4_K *blk[RW] = {wr[0] + b, wr[1] + b, wr[2] + b, wr[3] + b};
    prefetch_ahead((const void *const *)wr, wrow, b, nb, sizeof(preft_block_q4_K), 3);
    const __m512i heads = q4_K_heads(blk);
    const __m512i sm = q4_K_scale_min(heads);
    const __m512i mins = q4_K_mins16(sm);
    /* block i's 16 scale / min bytes in every 128-bit lane (immediates:
     * a sanitizer build at -O1 does not unroll the loop below) */
    const __m512i bsm[RW] = {_mm512_shuffle_i32x4(sm, sm, 0x00), _mm512_shuffle_i32x4(sm, sm, 0x55),
                             _mm512_shuffle_i32x4(sm, sm, 0xAA), _mm512_shuffle_i32x4(sm, sm, 0xFF)};
    __m512i isum[RW][RNR];
    _Pragma("GCC unroll 4") for (int i = 0; i < RW; i++) {
      const __m512i smi = bsm[i];
      _Pragma("GCC unroll 4") for (int r = 0; r < NR; r++) isum[i][r] = _mm512_setzero_si512();
      _Pragma("GCC unroll 2") for (int h = 0; h < 2; h++) {
        const __m512i raw = _mm512_loadu_si512(blk[i]->qs + 64 * h);
        const __m512i codes[2] = {_mm512_and_si512(raw, m4), _mm512_and_si512(_mm512_srli_epi16(raw, 4), m4)};
        _Pragma("GCC unroll 2") for (int e = 0; e < 2; e++) {
          const __m512i sc = _mm512_shuffle_epi8(smi, pick[2 * h + e]);
          _Pragma("GCC unroll 4") for (int r = 0; r < NR; r++) {
            const x_sb_q4_K *x = (const x_sb_q4_K *)(xl + (size_t)r * xls) + b;
            const __m512i p = _mm512_maddubs_epi16(codes[e], _mm512_loadu_si512(x->q + 128 * h + 64 * e));
            isum[i][r] = _mm512_dpwssd_epi32(isum[i][r], p, sc);
          }
        }
      }
    }
    __m128 vd, vdmin;
    q4_K_d_dmin(heads, &vd, &vdmin);
    _Pragma("GCC unroll 4") for (int r = 0; r < NR; r++) {
      const x_sb_q4_K *x = (const x_sb_q4_K *)(xl + (size_t)r * xls) + b;
      const __m128i is = hsum4(isum[0][r], isum[1][r], isum[2][r], isum[3][r]);
      __m512i pm =
          _mm512_madd_epi16(mins, _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)x->pairs)));
      pm = _mm512_add_epi32(pm, _mm512_shuffle_epi32(pm, _MM_PERM_BADC));
      pm = _mm512_add_epi32(pm, _mm512_shuffle_epi32(pm, _MM_PERM_CDAB));
      const __m128i ms = _mm512_castsi512_si128(_mm512_permutexvar_epi32(lane0, pm));
      const __m128 dx = _mm_set1_ps(x->d);
      const __m128 term = _mm_sub_ps(_mm_mul_ps(_mm_mul_ps(vd, dx), _mm_cvtepi32_ps(is)),
                                     _mm_mul_ps(_mm_mul_ps(vdmin, dx), _mm_cvtepi32_ps(ms)));
      acc[r] = _mm_add_ps(acc[r], term);
    }
  }
  store_group(y, ys, j, rw, acc, NR, accumulate);
}

/* ---- Q4_K, R4 layout ---------------------------------------------------------- */

/* The R4 layout's prefetch: a group's 4 rows are one stream of 576-byte
 * super-blocks (9 lines), and the next group follows its last. */
RIN void prefetch_ahead_r4(const unsigned char *group, int b) {
  const char *p = (const char *)group + (size_t)(b + RPF) * sizeof(preft_group_q4_Kr4);
  for (int l = 0; l < (int)(sizeof(preft_group_q4_Kr4) / 64); l++) _mm_prefetch(p + 64 * l, _MM_HINT_T0);
}

/* The 16 int32 of v summed within each 128-bit lane, as lanes 0..3; and
 * of m as lanes 4..7 (8-lane vector). */
RIN __m256i lane_sums2(__m512i v, __m512i m) {
  /* per 128-bit lane: [v0+v2, m0+m2, v1+v3, m1+m3], then [v, m, v, m] */
  __m512i t = _mm512_add_epi32(_mm512_unpacklo_epi32(v, m), _mm512_unpackhi_epi32(v, m));
  t = _mm512_add_epi32(t, _mm512_shuffle_epi32(t, _MM_PERM_BADC));
  const __m512i pick = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 0, 0, 0, 0, 0, 0, 0, 0);
  return _mm512_castsi512_si256(_mm512_permutexvar_epi32(pick, t));
}

/* Super-block b of one R4 group (g: rows j..j+3, j a multiple of 4)
 * against NR rows of x laid out as x_sb_q4_K, into acc[0:NR] (lane r: row
 * j+r). Each 64-byte load holds 16 code bytes of each row, row r in
 * 128-bit lane r: piece k (bytes
 * 16k..16k+15 of the rows' qs) has the low nibbles of values 64c + 16(k%2)
 * .. +15 (sub-block 2c, c = k/2) and the high nibbles of the same 16 of
 * sub-block 2c+1; vpdpbusd dots them with x (16 bytes broadcast to every
 * lane) four values to an int32, the two pieces of a chunk c sum into one
 * accumulator per sub-block (|lane| <= 2·4·15·127 < 2^15), which vpackssdw
 * packs to int16 for one vpmaddwd by the rows' two sub-block scales: 5
 * instructions per 64 values of 4 rows instead of 8. The int32 sums of
 * each row are lane sums of 128-bit lane r, reduced with the mins' term
 * in one tree; the FP32 steps are the reference's in its order. */
RIN void q4_Kr4_superblock(__m128 *acc, const unsigned char *g, int b, const unsigned char *xl, size_t xls,
                           const __m512i pick[4], const int NR) {
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  const unsigned char *sb = g + (size_t)b * sizeof(preft_group_q4_Kr4);
  prefetch_ahead_r4(g, b);
  const __m512i heads = _mm512_loadu_si512(sb); /* row r's head in lane r */
  const __m512i sm = q4_K_scale_min(heads);
  __m512i isum[RNR];
  _Pragma("GCC unroll 4") for (int r = 0; r < NR; r++) isum[r] = _mm512_setzero_si512();
  _Pragma("GCC unroll 4") for (int c = 0; c < 4; c++) {
    const __m512i sc = _mm512_shuffle_epi8(sm, pick[c]);
    __m512i lo[RNR], hi[RNR];
    _Pragma("GCC unroll 4") for (int r = 0; r < NR; r++) lo[r] = hi[r] = _mm512_setzero_si512();
    _Pragma("GCC unroll 2") for (int p = 0; p < 2; p++) {
      const int k = 2 * c + p;
      const __m512i raw = _mm512_loadu_si512(sb + 64 + 64 * k);
      const __m512i cl = _mm512_and_si512(raw, m4), ch = _mm512_and_si512(_mm512_srli_epi16(raw, 4), m4);
      /* x_sb_q4_K's places of values 64c + 16p (low) and 64c + 32 + 16p (high) */
      const int at = 128 * (k / 4) + 16 * (k % 4);
      _Pragma("GCC unroll 4") for (int r = 0; r < NR; r++) {
        const x_sb_q4_K *x = (const x_sb_q4_K *)(xl + (size_t)r * xls) + b;
        lo[r] = _mm512_dpbusd_epi32(lo[r], cl,
                                    _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(x->q + at))));
        hi[r] = _mm512_dpbusd_epi32(
            hi[r], ch, _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(x->q + at + 64))));
      }
    }
    _Pragma("GCC unroll 4") for (int r = 0; r < NR; r++) isum[r] =
        _mm512_add_epi32(isum[r], _mm512_madd_epi16(_mm512_packs_epi32(lo[r], hi[r]), sc));
  }
  const __m512i mins = q4_K_mins16(sm); /* lane r: row r's */
  __m128 vd, vdmin;
  q4_K_d_dmin(heads, &vd, &vdmin);
  _Pragma("GCC unroll 4") for (int r = 0; r < NR; r++) {
    const x_sb_q4_K *x = (const x_sb_q4_K *)(xl + (size_t)r * xls) + b;
    const __m512i pm =
        _mm512_madd_epi16(mins, _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)x->pairs)));
    const __m256 f = _mm256_cvtepi32_ps(lane_sums2(isum[r], pm)); /* isum of rows 0..3, then msum */
    const __m128 dx = _mm_set1_ps(x->d);
    const __m128 term = _mm_sub_ps(_mm_mul_ps(_mm_mul_ps(vd, dx), _mm256_castps256_ps128(f)),
                                   _mm_mul_ps(_mm_mul_ps(vdmin, dx), _mm256_extractf128_ps(f, 1)));
    acc[r] = _mm_add_ps(acc[r], term);
  }
}

/* per 128-bit lane, from a row's 8 scales (bytes 0..7 of q4_K_scale_min):
 * int16 lanes 0-3 scale 2c, 4-7 scale 2c+1 (pick[c]) */
RIN void q4_Kr4_picks(__m512i pick[4]) {
  for (int c = 0; c < 4; c++) {
    int8_t idx[16];
    for (int i = 0; i < 16; i++) idx[i] = (int8_t)(i % 2 ? -1 : 2 * c + i / 8);
    pick[c] = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)idx));
  }
}

/* Weight rows j..j+3 (one group: j a multiple of 4; the first rw stored)
 * of the R4 layout against NR rows of x laid out as x_sb_q4_K. */
RIN void q4_Kr4_group(float *y, size_t ys, const unsigned char *xl, size_t xls, const unsigned char *w,
                      size_t wrow, int j, int rw, int nb, const int NR, int accumulate) {
  PREFT_ASSERT(j % RW == 0);
  const unsigned char *g = w + (size_t)j * wrow; /* the group: 4 rows' bytes */
  __m512i pick[4];
  q4_Kr4_picks(pick);
  __m128 acc[RNR];
  for (int r = 0; r < NR; r++) acc[r] = _mm_setzero_ps();
  for (int b = 0; b < nb; b++) q4_Kr4_superblock(acc, g, b, xl, xls, pick, NR);
  store_group(y, ys, j, rw, acc, NR, accumulate);
}

/* Two whole R4 groups far apart (rows ja.. and jb..) against one row of x,
 * super-block by super-block, each group's sums as q4_Kr4_group takes them
 * (the same bits): one row of x streams a task's groups as two streams,
 * the first half's beside the second half's (as the ymm kernels' rows,
 * quant_avx_body.h's dot32_two_rows; docs/KERNELS.md). */
RIN void q4_Kr4_two_groups(float *y, const unsigned char *xl, const unsigned char *w, size_t wrow, int ja,
                           int jb, int nb, int accumulate) {
  PREFT_ASSERT(ja % RW == 0 && jb % RW == 0);
  const unsigned char *ga = w + (size_t)ja * wrow, *gb = w + (size_t)jb * wrow;
  __m512i pick[4];
  q4_Kr4_picks(pick);
  __m128 acc_a[1] = {_mm_setzero_ps()}, acc_b[1] = {_mm_setzero_ps()};
  for (int b = 0; b < nb; b++) {
    q4_Kr4_superblock(acc_a, ga, b, xl, 0, pick, 1);
    q4_Kr4_superblock(acc_b, gb, b, xl, 0, pick, 1);
  }
  store_group(y, 0, ja, RW, acc_a, 1, accumulate);
  store_group(y, 0, jb, RW, acc_b, 1, accumulate);
}

/* y[0:n, j0:j1] (+)= weight rows [j0, j1) (layout t) against n rows of x
 * laid out (q4_K_lay_out), RNR rows of x per pass over the weights. */
RIN void q4_K_rows(const preft_dtype t, float *y, size_t ys, const unsigned char *xl, size_t xls,
                   const void *w, size_t wrow, int n, int nb, int j0, int j1, int accumulate) {
  for (int i0 = 0; i0 < n; i0 += RNR) {
    const int nr = n - i0 < RNR ? n - i0 : RNR;
    const unsigned char *xi = xl + (size_t)i0 * xls;
    float *yi = y + (size_t)i0 * ys;
    int j = j0;
    if (preft_dtype_is_r4(t) && nr == 1) { /* the range's whole groups as two streams */
      const int h = (j1 - j0) / (2 * RW) * RW;
      for (; j < j0 + h; j += RW) q4_Kr4_two_groups(yi, xi, w, wrow, j, j + h, nb, accumulate);
      j += h;
    }
    for (; j < j1; j += RW) {
      const int rw = j1 - j < RW ? j1 - j : RW;
      if (preft_dtype_is_r4(t)) { /* whole groups (the matrix has them), rw rows stored */
        PREFT_QDISPATCH_NR(nr, q4_Kr4_group(yi, ys, xi, xls, w, wrow, j, rw, nb, NRC, accumulate))
      } else {
        PREFT_QDISPATCH_NR(nr, q4_K_group(yi, ys, xi, xls, w, wrow, j, rw, nb, NRC, accumulate))
      }
    }
  }
}

RFN size_t preft_qx512_layout_bytes_q4_K(int k) { return (size_t)(k / PREFT_QK_K) * sizeof(x_sb_q4_K); }

RFN void preft_qx512_layout_q4_K(void *dst, const void *xq, size_t xqs, int n, int k) {
  q4_K_lay_out(dst, preft_qx512_layout_bytes_q4_K(k), xq, xqs, n, k / PREFT_QK_K);
}

RFN void preft_qrows512_laid_q4_K(float *y, size_t ys, const void *xl, size_t xls, const void *w, size_t wrow,
                                  int n, int k, int j0, int j1, int accumulate) {
  q4_K_rows(PREFT_Q4_K, y, ys, xl, xls, w, wrow, n, k / PREFT_QK_K, j0, j1, accumulate);
}

RFN void preft_qrows512_laid_q4_Kr4(float *y, size_t ys, const void *xl, size_t xls, const void *w,
                                    size_t wrow, int n, int k, int j0, int j1, int accumulate) {
  q4_K_rows(PREFT_Q4_K_R4, y, ys, xl, xls, w, wrow, n, k / PREFT_QK_K, j0, j1, accumulate);
}

/* x laid out here, RNR rows at a time (the plain entries) */
RIN void q4_K_rows_laying_out(const preft_dtype t, float *y, size_t ys, const void *xqv, size_t xqs,
                              const void *w, size_t wrow, int n, int k, int j0, int j1, int accumulate) {
  const int nb = k / PREFT_QK_K;
  const size_t xls = (size_t)nb * sizeof(x_sb_q4_K);
  x_sb_q4_K stack[RSTACK] __attribute__((aligned(64)));
  const int big = (size_t)nb * RNR > RSTACK;
  unsigned char *xl = big ? preft_xmalloc(xls * RNR) : (unsigned char *)stack;
  for (int i0 = 0; i0 < n; i0 += RNR) {
    const int nr = n - i0 < RNR ? n - i0 : RNR;
    q4_K_lay_out(xl, xls, (const unsigned char *)xqv + (size_t)i0 * xqs, xqs, nr, nb);
    q4_K_rows(t, y + (size_t)i0 * ys, ys, xl, xls, w, wrow, nr, nb, j0, j1, accumulate);
  }
  if (big) free(xl);
}

RFN void preft_qrows512_q4_K(float *y, size_t ys, const void *xq, size_t xqs, const void *w, size_t wrow,
                             int n, int k, int j0, int j1, int accumulate) {
  q4_K_rows_laying_out(PREFT_Q4_K, y, ys, xq, xqs, w, wrow, n, k, j0, j1, accumulate);
}

RFN void preft_qrows512_q4_Kr4(float *y, size_t ys, const void *xq, size_t xqs, const void *w, size_t wrow,
                               int n, int k, int j0, int j1, int accumulate) {
  q4_K_rows_laying_out(PREFT_Q4_K_R4, y, ys, xq, xqs, w, wrow, n, k, j0, j1, accumulate);
}

/* ---- Q6_K ------------------------------------------------------------------ */

RIN void q6_K_group(float *y, size_t ys, const unsigned char *xq, size_t xqs, const unsigned char *w,
                    size_t wrow, int j, int rw, int nb, const int NR, int accumulate) {
  const preft_block_q6_K *wr[RW];
  for (int i = 0; i < RW; i++)
    wr[i] = (const preft_block_q6_K *)(w + (size_t)(j + (i < rw ? i : rw - 1)) * wrow);
  const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
  /* int16 lane i of the 64 values 64c..: sub-block 4c + i / 8 */
  __m512i pick[4];
  for (int c = 0; c < 4; c++) {
    int16_t idx[32];
    for (int i = 0; i < 32; i++) idx[i] = (int16_t)(4 * c + i / 8);
    pick[c] = _mm512_loadu_si512(idx);
  }
  __m128 acc[RNR];
  for (int r = 0; r < NR; r++) acc[r] = _mm_setzero_ps();
  for (int b = 0; b < nb; b++) {
    prefetch_ahead((const void *const *)wr, wrow, b, nb, sizeof(preft_block_q6_K), 4);
    __m512i isum[RW][RNR];
    _Pragma("GCC unroll 4") for (int i = 0; i < RW; i++) {
      const preft_block_q6_K *blk = wr[i] + b;
      const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)blk->scales));
      _Pragma("GCC unroll 4") for (int r = 0; r < NR; r++) {
        /* the -32 offset: -32 × sum(scale · bsums), in the accumulator's start */
        const preft_block_q8_K *x = (const preft_block_q8_K *)(xq + (size_t)r * xqs) + b;
        const __m256i off =
            _mm256_slli_epi32(_mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i *)x->bsums)), 5);
        isum[i][r] = _mm512_zextsi256_si512(_mm256_sub_epi32(_mm256_setzero_si256(), off));
      }
      const __m512i scz = _mm512_zextsi256_si512(sc16);
      _Pragma("GCC unroll 2") for (int h = 0; h < 2; h++) {
        /* values 128h + 0..63: low nibbles of ql[64h..], high bits 0-1 | 2-3 of qh[32h..];
         * values 128h + 64..127: high nibbles, bits 4-5 | 6-7 */
        const __m512i ql = _mm512_loadu_si512(blk->ql + 64 * h);
        const __m256i qh = _mm256_loadu_si256((const __m256i *)(blk->qh + 32 * h));
        const __m512i qhz = _mm512_inserti64x4(_mm512_castsi256_si512(qh), _mm256_srli_epi16(qh, 2), 1);
        __m512i codes[2];
        codes[0] =
            _mm512_or_si512(_mm512_and_si512(ql, m4), _mm512_and_si512(_mm512_slli_epi16(qhz, 4), m30));
        codes[1] =
            _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4), _mm512_and_si512(qhz, m30));
        _Pragma("GCC unroll 2") for (int e = 0; e < 2; e++) {
          const int c = 2 * h + e;
          const __m512i sc = _mm512_permutexvar_epi16(pick[c], scz);
          _Pragma("GCC unroll 4") for (int r = 0; r < NR; r++) {
            const preft_block_q8_K *x = (const preft_block_q8_K *)(xq + (size_t)r * xqs) + b;
            const __m512i p = _mm512_maddubs_epi16(codes[e], _mm512_loadu_si512(x->qs + 64 * c));
            isum[i][r] = _mm512_dpwssd_epi32(isum[i][r], p, sc);
          }
        }
      }
    }
    const void *const blks[RW] = {wr[0] + b, wr[1] + b, wr[2] + b, wr[3] + b};
    const __m128 vd = half4(blks, offsetof(preft_block_q6_K, d));
    _Pragma("GCC unroll 4") for (int r = 0; r < NR; r++) {
      const preft_block_q8_K *x = (const preft_block_q8_K *)(xq + (size_t)r * xqs) + b;
      const __m128i is = hsum4(isum[0][r], isum[1][r], isum[2][r], isum[3][r]);
      /* the reference: sumf += d_w * d_x * isum */
      acc[r] = _mm_add_ps(acc[r], _mm_mul_ps(_mm_mul_ps(vd, _mm_set1_ps(x->d)), _mm_cvtepi32_ps(is)));
    }
  }
  store_group(y, ys, j, rw, acc, NR, accumulate);
}

RFN void preft_qrows512_q6_K(float *y, size_t ys, const void *xqv, size_t xqs, const void *w, size_t wrow,
                             int n, int k, int j0, int j1, int accumulate) {
  const unsigned char *xq = xqv;
  const int nb = k / PREFT_QK_K;
  for (int i0 = 0; i0 < n; i0 += RNR) {
    const int nr = n - i0 < RNR ? n - i0 : RNR;
    const unsigned char *xi = xq + (size_t)i0 * xqs;
    float *yi = y + (size_t)i0 * ys;
    for (int j = j0; j < j1; j += RW) {
      const int rw = j1 - j < RW ? j1 - j : RW;
      PREFT_QDISPATCH_NR(nr, q6_K_group(yi, ys, xi, xqs, w, wrow, j, rw, nb, NRC, accumulate))
    }
  }
}

#endif
