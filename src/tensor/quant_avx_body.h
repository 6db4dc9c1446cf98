/* quant_avx_body.h - the AVX2 kernels of preft_qgemm (quant_kern.h),
 * included by quant_avx2.c, quant_avxvnni.c and quant_avx512vnni.c, which
 * define
 *   QK_TARGET  the target attribute string
 *   QK_TABLE   the name of the kernel table to define
 *   QK_NAME    its name
 *   QK_VNNI    0: u8·s8 dot products as vpmaddubsw + vpmaddwd (AVX2);
 *              1: vpdpbusd, VEX encoded (AVX-VNNI); 2: vpdpbusd, EVEX on
 *              ymm (AVX512-VNNI + VL)
 *
 * Every kernel dots one weight row with up to 4 rows of x at a time, so a
 * weight block is loaded and unpacked once for 4 rows of x (the integers
 * stay in registers). The int8 products are unsigned × signed (vpmaddubsw /
 * vpdpbusd), so:
 *  - Q8_0: |w| × (x with w's sign) (vpsignb);
 *  - Q4_0 / Q5_0: the unsigned codes q (0..15 / 0..31) times x, minus
 *    8 / 16 × the block's sum of x, exact in int32 (the sums of x are
 *    computed once per call for each row of x);
 *  - Q4_K: the nibbles times x, each 32 scaled by its 6-bit scale with
 *    vpmaddwd, summed in int32 over the super-block; the mins' term is
 *    dmin · sum(m · pair sums of Q8_K's bsums);
 *  - Q6_K: the 6-bit codes (0..63) times x, each 16 scaled by its int8
 *    scale, minus 32 × sum(scale · bsums), in int32 over the super-block.
 * Per block (Q8_0, Q4_0, Q5_0) or super-block (Q4_K, Q6_K) one
 * vcvtdq2ps and one FMA with d_w · d_x bring the int32 sums into the FP32
 * accumulators. The K-quants take the same instructions on every table
 * (vpdpbusd would need a vpmulld per scale instead of the one vpmaddwd);
 * the AVX512-VNNI table takes zmm rows kernels for them instead
 * (quant_rows512.c: vpmaddubsw + vpdpwssd), and for Q4_0 / Q5_0 too
 * (quant_rows512_q5.c: two blocks per vpdpbusd); its tiles' leftover rows
 * still take the ymm rows kernels here.
 */
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "tensor/quant_kern.h"

#define QFN                                                                                                \
  static __attribute__((target(QK_TARGET), unused)) /* unused on AVX512-VNNI: the AVX2 tiles, K-quant rows \
                                                     */
#define QIN static inline __attribute__((always_inline, target(QK_TARGET)))

#define QNR 4          /* rows of x per pass over a weight row */
#define QPF_AHEAD 4096 /* bytes of the weight stream prefetched ahead (rows kernels) */
#define QSX_STACK 4096 /* sums of x kept on the stack (blocks × rows) */

/* acc + the 8 int32 sums of 4 adjacent u8·s8 products */
QIN __m256i dot_acc(__m256i acc, __m256i u, __m256i s) {
#if QK_VNNI == 1
  return _mm256_dpbusd_avx_epi32(acc, u, s);
#elif QK_VNNI == 2
  return _mm256_dpbusd_epi32(acc, u, s);
#else
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
#endif
}

/* 16 int16 sums of pairs of u8·s8 products times 16 int16 scales, as 8 int32 */
QIN __m256i dot_scaled(__m256i u, __m256i s, __m256i scale16) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), scale16);
}

QIN float hsum8(__m256 v) {
  __m128 r = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  r = _mm_add_ps(r, _mm_movehl_ps(r, r));
  r = _mm_add_ss(r, _mm_movehdup_ps(r));
  return _mm_cvtss_f32(r);
}

QIN float h2f(uint16_t h) { return _cvtsh_ss(h); }
/* An fp16 broadcast to 8 FP32 lanes: vpbroadcastw + vcvtph2ps. */
QIN __m256 h2f8(uint16_t h) { return _mm256_cvtph_ps(_mm_set1_epi16((short)h)); }

QIN __m256i load32(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }

/* 32 codes 0..15 of a Q4_0-style block: low nibbles (values 0..15) in the
 * low lane, high nibbles (values 16..31) in the high lane. */
QIN __m256i nibbles32(const uint8_t *qs) {
  __m128i t = _mm_loadu_si128((const __m128i *)qs);
  return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), _mm256_set1_epi8(0x0F));
}

/* The 32 bits of qh as 32 bytes of 0x10 (bit set) or 0. */
QIN __m256i bits32_0x10(const uint8_t *qh) {
  uint32_t b;
  memcpy(&b, qh, 4);
#if QK_VNNI == 2
  /* AVX512BW+VL: the 32 bits are a byte mask (kmovd + one masked move) */
  return _mm256_maskz_mov_epi8((__mmask32)b, _mm256_set1_epi8(0x10));
#else
  /* byte i takes byte i/8 of b, then tests its bit i%8 */
  __m256i v = _mm256_shuffle_epi8(
      _mm256_set1_epi32((int)b),
      _mm256_setr_epi64x(0, 0x0101010101010101LL, 0x0202020202020202LL, 0x0303030303030303LL));
  const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
  v = _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
  return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
#endif
}

/* Sum of the 32 int8 of a Q8_0 activation block. */
QIN int32_t sum_q8(const int8_t *q) {
  __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), load32(q)), _mm256_set1_epi16(1));
  __m128i r = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
  r = _mm_add_epi32(r, _mm_shuffle_epi32(r, 0x4E));
  r = _mm_add_epi32(r, _mm_shuffle_epi32(r, 0xB1));
  return _mm_cvtsi128_si32(r);
}

QIN void store_rows(float *y, size_t ys, const __m256 *acc, int nr, int accumulate) {
  for (int r = 0; r < nr; r++) {
    float v = hsum8(acc[r]);
    y[(size_t)r * ys] = accumulate ? y[(size_t)r * ys] + v : v;
  }
}

/* ---- Q8_0 / Q4_0 / Q5_0 ----------------------------------------------------- */

/* Per block b of x row r: xd[r * nb + b] its scale as FP32, and (per_lane
 * > 0) sx[r * nb + b] the offset's share per int32 lane: (8 or 16) × sum(x)
 * over 8 lanes. */
QIN void prep_q8_0(float *xd, int32_t *sx, const unsigned char *xq, size_t xqs, int nb, int nr,
                   int per_lane) {
  for (int r = 0; r < nr; r++) {
    const preft_block_q8_0 *x = (const preft_block_q8_0 *)(xq + (size_t)r * xqs);
    for (int b = 0; b < nb; b++) {
      xd[r * nb + b] = h2f(x[b].d);
      if (per_lane) sx[r * nb + b] = per_lane * sum_q8(x[b].qs);
    }
  }
}

/* Block b of one weight row (kind 0: Q8_0, 1: Q4_0, 2: Q5_0) against nr
 * rows of x, into acc[0:nr]. */
QIN void block32(__m256 *acc, int kind, const void *w, int b, const unsigned char *xq, size_t xqs,
                 const float *xd, const int32_t *sx, int nb, int nr) {
  __m256i q, aq = _mm256_setzero_si256();
  __m256 dw;
  if (kind == 0) {
    const preft_block_q8_0 *wb = (const preft_block_q8_0 *)w + b;
    q = load32(wb->qs), aq = _mm256_sign_epi8(q, q), dw = h2f8(wb->d);
  } else if (kind == 1) {
    const preft_block_q4_0 *wb = (const preft_block_q4_0 *)w + b;
    q = nibbles32(wb->qs), dw = h2f8(wb->d);
  } else {
    const preft_block_q5_0 *wb = (const preft_block_q5_0 *)w + b;
    q = _mm256_or_si256(nibbles32(wb->qs), bits32_0x10(wb->qh)), dw = h2f8(wb->d);
  }
  for (int r = 0; r < nr; r++) {
    const preft_block_q8_0 *x = (const preft_block_q8_0 *)(xq + (size_t)r * xqs) + b;
    __m256i p = kind == 0 ? dot_acc(_mm256_setzero_si256(), aq, _mm256_sign_epi8(load32(x->qs), q))
                          : dot_acc(_mm256_set1_epi32(-sx[r * nb + b]), q, load32(x->qs));
    acc[r] = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_broadcast_ss(xd + r * nb + b)), _mm256_cvtepi32_ps(p),
                             acc[r]);
  }
}

/* Bytes of one weight block of the kind (0: Q8_0, 1: Q4_0, 2: Q5_0). */
QIN size_t block_bytes32(int kind) {
  return kind == 0   ? sizeof(preft_block_q8_0)
         : kind == 1 ? sizeof(preft_block_q4_0)
                     : sizeof(preft_block_q5_0);
}

/* Even and odd blocks into two accumulator sets, so that one FMA chain (4
 * cycles a block) cannot bound a row (no measurable change on the 2-core
 * test machine, where the instruction count bounds it). */
QIN void dot32(int kind, float *y, size_t ys, const unsigned char *xq, size_t xqs, const void *w,
               const float *xd, const int32_t *sx, int nb, int nr, int accumulate) {
  __m256 acc[QNR], acc2[QNR];
  for (int r = 0; r < nr; r++) acc[r] = acc2[r] = _mm256_setzero_ps();
  const size_t bs = block_bytes32(kind);
  int b = 0;
  for (; b + 1 < nb; b += 2) {
    /* the weight stream QPF_AHEAD bytes on (past the row: the next row's) */
    _mm_prefetch((const char *)w + (size_t)b * bs + QPF_AHEAD, _MM_HINT_T0);
    _mm_prefetch((const char *)w + (size_t)b * bs + QPF_AHEAD + 64, _MM_HINT_T0);
    block32(acc, kind, w, b, xq, xqs, xd, sx, nb, nr);
    block32(acc2, kind, w, b + 1, xq, xqs, xd, sx, nb, nr);
  }
  if (b < nb) block32(acc, kind, w, b, xq, xqs, xd, sx, nb, nr);
  for (int r = 0; r < nr; r++) acc[r] = _mm256_add_ps(acc[r], acc2[r]);
  store_rows(y, ys, acc, nr, accumulate);
}

/* Two weight rows far apart (wa, wb) against one row of x, block by
 * block: each row's blocks, accumulators and sum as dot32 takes them (the
 * same bits). One row of x streams a task's weight rows as two streams,
 * the rows of its first half beside those of its second: two threads each
 * reading one stream drew 44-48 GB/s from memory in the Qwen and Llama
 * Q8_0 models, each reading two 50-53 (four: no better; docs/KERNELS.md). */
QIN void dot32_two_rows(int kind, float *ya, float *yb, const unsigned char *xq, const void *wa,
                        const void *wb, const float *xd, const int32_t *sx, int nb, int accumulate) {
  __m256 a[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()}, b[2] = {a[0], a[0]};
  const size_t bs = block_bytes32(kind);
  const char *pa = (const char *)wa + QPF_AHEAD, *pb = (const char *)wb + QPF_AHEAD;
  int i = 0;
  for (; i + 1 < nb; i += 2) {
    _mm_prefetch(pa + (size_t)i * bs, _MM_HINT_T0);
    _mm_prefetch(pa + (size_t)i * bs + 64, _MM_HINT_T0);
    _mm_prefetch(pb + (size_t)i * bs, _MM_HINT_T0);
    _mm_prefetch(pb + (size_t)i * bs + 64, _MM_HINT_T0);
    block32(&a[0], kind, wa, i, xq, 0, xd, sx, nb, 1);
    block32(&a[1], kind, wa, i + 1, xq, 0, xd, sx, nb, 1);
    block32(&b[0], kind, wb, i, xq, 0, xd, sx, nb, 1);
    block32(&b[1], kind, wb, i + 1, xq, 0, xd, sx, nb, 1);
  }
  if (i < nb) {
    block32(&a[0], kind, wa, i, xq, 0, xd, sx, nb, 1);
    block32(&b[0], kind, wb, i, xq, 0, xd, sx, nb, 1);
  }
  a[0] = _mm256_add_ps(a[0], a[1]);
  b[0] = _mm256_add_ps(b[0], b[1]);
  store_rows(ya, 0, &a[0], 1, accumulate);
  store_rows(yb, 0, &b[0], 1, accumulate);
}

QIN void dot_q8_0(float *y, size_t ys, const unsigned char *xq, size_t xqs, const preft_block_q8_0 *w,
                  const float *xd, const int32_t *sx, int nb, int nr, int accumulate) {
  dot32(0, y, ys, xq, xqs, w, xd, sx, nb, nr, accumulate);
}
QIN void dot_q4_0(float *y, size_t ys, const unsigned char *xq, size_t xqs, const preft_block_q4_0 *w,
                  const float *xd, const int32_t *sx, int nb, int nr, int accumulate) {
  dot32(1, y, ys, xq, xqs, w, xd, sx, nb, nr, accumulate);
}
QIN void dot_q5_0(float *y, size_t ys, const unsigned char *xq, size_t xqs, const preft_block_q5_0 *w,
                  const float *xd, const int32_t *sx, int nb, int nr, int accumulate) {
  dot32(2, y, ys, xq, xqs, w, xd, sx, nb, nr, accumulate);
}

/* ---- Q4_K ------------------------------------------------------------------ */

/* The 8 scales (bytes 0..7) and 8 mins (bytes 8..15) of a Q4_K block's 12
 * packed bytes. */
QIN void q4_K_scales(const uint8_t *packed, uint32_t u[4]) {
  const uint32_t m6 = 0x3f3f3f3f, m4 = 0x0f0f0f0f, m2 = 0x03030303;
  memcpy(u, packed, 12);
  u[3] = ((u[2] >> 4) & m4) | (((u[1] >> 6) & m2) << 4); /* mins 4..7 */
  const uint32_t mins03 = u[1] & m6;
  u[1] = (u[2] & m4) | (((u[0] >> 6) & m2) << 4); /* scales 4..7 */
  u[2] = mins03;
  u[0] &= m6; /* scales 0..3 */
}

/* vpshufb controls broadcasting int16 element i of each lane */
#define PICK(i)                                                                                              \
  {                                                                                                          \
    2 * i, 2 * i + 1, 2 * i, 2 * i + 1, 2 * i, 2 * i + 1, 2 * i, 2 * i + 1, 2 * i, 2 * i + 1, 2 * i,         \
        2 * i + 1, 2 * i, 2 * i + 1, 2 * i, 2 * i + 1, 2 * i, 2 * i + 1, 2 * i, 2 * i + 1, 2 * i, 2 * i + 1, \
        2 * i, 2 * i + 1, 2 * i, 2 * i + 1, 2 * i, 2 * i + 1, 2 * i, 2 * i + 1, 2 * i, 2 * i + 1             \
  }
static const uint8_t scale_pick[8][32]
    __attribute__((aligned(32))) = {PICK(0), PICK(1), PICK(2), PICK(3), PICK(4), PICK(5), PICK(6), PICK(7)};
#undef PICK

QIN void dot_q4_K(float *y, size_t ys, const unsigned char *xq, size_t xqs, const preft_block_q4_K *w, int nb,
                  int nr, int accumulate) {
  __m256 acc[QNR];
  __m128 accm[QNR];
  for (int r = 0; r < nr; r++) acc[r] = _mm256_setzero_ps(), accm[r] = _mm_setzero_ps();
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  for (int b = 0; b < nb; b++) {
    uint32_t u[4];
    q4_K_scales(w[b].scales, u);
    const __m128i sm = _mm_loadu_si128((const __m128i *)u);
    const __m128i mins = _mm_cvtepu8_epi16(_mm_unpackhi_epi64(sm, sm));
    /* int16 scales 0..7 in both lanes, picked by vpshufb */
    const __m256i sc16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(sm));
    const float d = h2f(w[b].d), dmin = h2f(w[b].dmin);
    __m256i sumi[QNR];
    for (int r = 0; r < nr; r++) sumi[r] = _mm256_setzero_si256();
    for (int c = 0; c < 4; c++) {
      const __m256i q = load32(w[b].qs + 32 * c);
      const __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
      const __m256i slo = _mm256_shuffle_epi8(sc16, load32(scale_pick[2 * c]));
      const __m256i shi = _mm256_shuffle_epi8(sc16, load32(scale_pick[2 * c + 1]));
      for (int r = 0; r < nr; r++) {
        const int8_t *x = ((const preft_block_q8_K *)(xq + (size_t)r * xqs) + b)->qs + 64 * c;
        sumi[r] = _mm256_add_epi32(
            sumi[r], _mm256_add_epi32(dot_scaled(lo, load32(x), slo), dot_scaled(hi, load32(x + 32), shi)));
      }
    }
    for (int r = 0; r < nr; r++) {
      const preft_block_q8_K *x = (const preft_block_q8_K *)(xq + (size_t)r * xqs) + b;
      acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * x->d), _mm256_cvtepi32_ps(sumi[r]), acc[r]);
      __m128i pairs = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)x->bsums),
                                     _mm_loadu_si128((const __m128i *)(x->bsums + 8)));
      accm[r] = _mm_fmadd_ps(_mm_set1_ps(dmin * x->d), _mm_cvtepi32_ps(_mm_madd_epi16(mins, pairs)), accm[r]);
    }
  }
  for (int r = 0; r < nr; r++) {
    __m128 m = _mm_add_ps(accm[r], _mm_movehl_ps(accm[r], accm[r]));
    m = _mm_add_ss(m, _mm_movehdup_ps(m));
    float v = hsum8(acc[r]) - _mm_cvtss_f32(m);
    y[(size_t)r * ys] = accumulate ? y[(size_t)r * ys] + v : v;
  }
}

/* ---- Q6_K ------------------------------------------------------------------ */

/* Shuffles picking int16 scale 2p (low lane) and 2p+1 (high lane) of 8. */
static const uint8_t q6_scale_shuffle[4][32] __attribute__((aligned(32))) = {
    {0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3},
    {4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7},
    {8,  9,  8,  9,  8,  9,  8,  9,  8,  9,  8,  9,  8,  9,  8,  9,
     10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11},
    {12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13,
     14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15},
};

QIN void dot_q6_K(float *y, size_t ys, const unsigned char *xq, size_t xqs, const preft_block_q6_K *w, int nb,
                  int nr, int accumulate) {
  __m256 acc[QNR];
  for (int r = 0; r < nr; r++) acc[r] = _mm256_setzero_ps();
  const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x03);
  for (int b = 0; b < nb; b++) {
    __m256i sumi[QNR];
    const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)w[b].scales));
    const __m256i sv0 = _mm256_broadcastsi128_si256(_mm256_castsi256_si128(sc16));
    const __m256i sv1 = _mm256_broadcastsi128_si256(_mm256_extracti128_si256(sc16, 1));
    for (int r = 0; r < nr; r++) {
      /* the -32 offset: 32 × sum(scale · bsums) */
      const preft_block_q8_K *x = (const preft_block_q8_K *)(xq + (size_t)r * xqs) + b;
      sumi[r] = _mm256_slli_epi32(_mm256_madd_epi16(sc16, load32(x->bsums)), 5);
      sumi[r] = _mm256_sub_epi32(_mm256_setzero_si256(), sumi[r]);
    }
    for (int n = 0; n < 2; n++) {
      const __m256i ql0 = load32(w[b].ql + 64 * n), ql1 = load32(w[b].ql + 64 * n + 32);
      const __m256i qh = load32(w[b].qh + 32 * n);
      __m256i q[4];
      q[0] = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4));
      q[1] = _mm256_or_si256(_mm256_and_si256(ql1, m4),
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m2), 4));
      q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m2), 4));
      q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m2), 4));
      const __m256i sv = n == 0 ? sv0 : sv1;
      for (int p = 0; p < 4; p++) {
        const __m256i s = _mm256_shuffle_epi8(sv, load32(q6_scale_shuffle[p]));
        for (int r = 0; r < nr; r++) {
          const int8_t *x = ((const preft_block_q8_K *)(xq + (size_t)r * xqs) + b)->qs + 128 * n + 32 * p;
          sumi[r] = _mm256_add_epi32(sumi[r], dot_scaled(q[p], load32(x), s));
        }
      }
    }
    const float d = h2f(w[b].d);
    for (int r = 0; r < nr; r++) {
      const preft_block_q8_K *x = (const preft_block_q8_K *)(xq + (size_t)r * xqs) + b;
      acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * x->d), _mm256_cvtepi32_ps(sumi[r]), acc[r]);
    }
  }
  store_rows(y, ys, acc, nr, accumulate);
}

/* ---- the rows kernels: weight rows j0..j1 against n rows of x ------------- */

/* NR-specialised calls: the compiler keeps the accumulators in registers
 * only when nr is a constant. */
#define DISPATCH_NR(CALL) PREFT_QDISPATCH_NR(nr, CALL)

#define SIMPLE_ROWS(T, BT, BLK)                                                                          \
  QFN void rows_##T(float *y, size_t ys, const void *xqv, size_t xqs, const void *w, size_t wrow, int n, \
                    int k, int j0, int j1, int accumulate) {                                             \
    const unsigned char *xq = xqv;                                                                       \
    const int nb = k / (BLK);                                                                            \
    for (int i0 = 0; i0 < n; i0 += QNR) {                                                                \
      const int nr = n - i0 < QNR ? n - i0 : QNR;                                                        \
      for (int j = j0; j < j1; j++) {                                                                    \
        const BT *wj = (const BT *)((const unsigned char *)w + (size_t)j * wrow);                        \
        DISPATCH_NR(                                                                                     \
            dot_##T(y + (size_t)i0 * ys + j, ys, xq + (size_t)i0 * xqs, xqs, wj, nb, NRC, accumulate))   \
      }                                                                                                  \
    }                                                                                                    \
  }

SIMPLE_ROWS(q4_K, preft_block_q4_K, PREFT_QK_K)
SIMPLE_ROWS(q6_K, preft_block_q6_K, PREFT_QK_K)

/* The rows kernels of Q8_0 / Q4_0 / Q5_0 (KIND as block32 takes it): one
 * row of x takes the weight rows as two streams (dot32_two_rows), more
 * rows one weight row at a time. */
#define OFFSET_ROWS(T, BT, PER_LANE, KIND)                                                                  \
  QFN void rows_##T(float *y, size_t ys, const void *xqv, size_t xqs, const void *w, size_t wrow, int n,    \
                    int k, int j0, int j1, int accumulate) {                                                \
    const unsigned char *xq = xqv;                                                                          \
    const int nb = k / PREFT_QK;                                                                            \
    int32_t sx_stack[QSX_STACK];                                                                            \
    float xd_stack[QSX_STACK];                                                                              \
    int big = (size_t)nb * QNR > QSX_STACK;                                                                 \
    int32_t *sx = big ? preft_xmalloc((size_t)nb * QNR * sizeof(int32_t)) : sx_stack;                       \
    float *xd = big ? preft_xmalloc((size_t)nb * QNR * sizeof(float)) : xd_stack;                           \
    for (int i0 = 0; i0 < n; i0 += QNR) {                                                                   \
      const int nr = n - i0 < QNR ? n - i0 : QNR;                                                           \
      prep_q8_0(xd, sx, xq + (size_t)i0 * xqs, xqs, nb, nr, PER_LANE);                                      \
      int j = j0;                                                                                           \
      if (nr == 1) {                                                                                        \
        const int h = (j1 - j0) / 2;                                                                        \
        for (; j < j0 + h; j++)                                                                             \
          dot32_two_rows(KIND, y + (size_t)i0 * ys + j, y + (size_t)i0 * ys + j + h, xq + (size_t)i0 * xqs, \
                         (const unsigned char *)w + (size_t)j * wrow,                                       \
                         (const unsigned char *)w + (size_t)(j + h) * wrow, xd, sx, nb, accumulate);        \
        j += h;                                                                                             \
      }                                                                                                     \
      for (; j < j1; j++) {                                                                                 \
        const BT *wj = (const BT *)((const unsigned char *)w + (size_t)j * wrow);                           \
        DISPATCH_NR(dot_##T(y + (size_t)i0 * ys + j, ys, xq + (size_t)i0 * xqs, xqs, wj, xd, sx, nb, NRC,   \
                            accumulate))                                                                    \
      }                                                                                                     \
    }                                                                                                       \
    if (big) free(sx), free(xd);                                                                            \
  }

OFFSET_ROWS(q8_0, preft_block_q8_0, 0, 0) /* signed weights: no offset */
OFFSET_ROWS(q4_0, preft_block_q4_0, 1, 1) /* 8 lanes × sum(x) = 8 sum(x) */
OFFSET_ROWS(q5_0, preft_block_q5_0, 2, 2) /* 8 lanes × 2 sum(x) = 16 sum(x) */

/* ---- batched products: 8 weight rows repacked into an interleaved tile ---- */

/* For N >= 8 the rows kernels above unpack each weight block once per 4
 * rows of x. The tile kernels instead repack 8 weight rows × 256 values at a
 * time into registers' layout: 32-byte vector g of block b holds values
 * 4g..4g+3 of each of the 8 rows (row w in bytes 4w..4w+3), unpacked to
 * codes. One broadcast of 4 values of x then multiplies all 8 rows
 * (vpmaddubsw pairs land in row w's two int16 lanes, vpmaddwd joins them in
 * row w's int32 lane), so the accumulators hold one output per lane: the
 * scales of the 8 rows apply as one vector, and the tile (2-3 KiB, in L1)
 * serves every row of x. Rows of the range past a multiple of 8 go to the
 * rows kernel. */

#define QTILE 8

/* dst[g] (g = 0..7): values 4g..4g+3 of each of the 8 rows r[0..7] (32
 * bytes each): an 8 × 8 transpose of 32-bit elements. */
QIN void interleave8(__m256i dst[8], const __m256i r[8]) {
  __m256i t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_epi32(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm256_unpacklo_epi64(t[i], t[i + 2]);
    u[i + 1] = _mm256_unpackhi_epi64(t[i], t[i + 2]);
    u[i + 2] = _mm256_unpacklo_epi64(t[i + 1], t[i + 3]);
    u[i + 3] = _mm256_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  for (int g = 0; g < 4; g++) {
    dst[g] = _mm256_permute2x128_si256(u[g], u[g + 4], 0x20);
    dst[g + 4] = _mm256_permute2x128_si256(u[g], u[g + 4], 0x31);
  }
}

QIN __m256i bcast4(const int8_t *x) {
  int32_t v;
  memcpy(&v, x, 4);
  return _mm256_set1_epi32(v);
}

/* y[r*ys + j0 + 0:8] = (accumulate ? y : 0) + acc[r] for r < n */
QIN void store_tile(float *y, size_t ys, int j0, const float *acc, int n, int accumulate) {
  for (int r = 0; r < n; r++) {
    __m256 v = _mm256_loadu_ps(acc + 8 * r);
    float *yp = y + (size_t)r * ys + j0;
    if (accumulate) v = _mm256_add_ps(v, _mm256_loadu_ps(yp));
    _mm256_storeu_ps(yp, v);
  }
}

#define QTILE_MAX_N 64 /* rows of x per call (the driver passes at most QMC) */

/* Q8_0 and Q4_0: 8 blocks of 32 per chunk. */
/* kind 0: Q8_0, 1: Q4_0, 2: Q5_0 (a constant at each call) */
QIN void tile_q8_0_q4_0(int kind, float *y, size_t ys, const unsigned char *xq, size_t xqs, const void *w,
                        size_t wrow, int n, int k, int j, const float *xd, const int32_t *sx, float *acc) {
  const int nb = k / PREFT_QK;
  __m256i codes[8][8], signs[8][8];
  __m256 dw[8];
  memset(acc, 0, (size_t)n * 8 * sizeof(float));
  for (int b0 = 0; b0 < nb; b0 += 8) {
    const int bc = nb - b0 < 8 ? nb - b0 : 8;
    for (int b = 0; b < bc; b++) {
      __m256i rows8[8];
      float d[8];
      for (int r = 0; r < 8; r++) {
        const unsigned char *row = (const unsigned char *)w + (size_t)(j + r) * wrow;
        if (kind == 1) {
          const preft_block_q4_0 *blk = (const preft_block_q4_0 *)row + b0 + b;
          rows8[r] = nibbles32(blk->qs);
          d[r] = h2f(blk->d);
        } else if (kind == 2) {
          const preft_block_q5_0 *blk = (const preft_block_q5_0 *)row + b0 + b;
          rows8[r] = _mm256_or_si256(nibbles32(blk->qs), bits32_0x10(blk->qh));
          d[r] = h2f(blk->d);
        } else {
          const preft_block_q8_0 *blk = (const preft_block_q8_0 *)row + b0 + b;
          rows8[r] = load32(blk->qs);
          d[r] = h2f(blk->d);
        }
      }
      interleave8(signs[b], rows8);
      for (int g = 0; g < 8; g++)
        codes[b][g] = kind ? signs[b][g] : _mm256_sign_epi8(signs[b][g], signs[b][g]);
      dw[b] = _mm256_loadu_ps(d);
    }
    /* two rows of x per pass: each tile vector loaded once for both */
    for (int r = 0; r < n; r += 2) {
      const int r1 = r + 1 < n ? r + 1 : r; /* an odd last row is computed twice, stored once */
      __m256 a0 = _mm256_loadu_ps(acc + 8 * r), a1 = _mm256_loadu_ps(acc + 8 * r1);
      const preft_block_q8_0 *x0 = (const preft_block_q8_0 *)(xq + (size_t)r * xqs) + b0;
      const preft_block_q8_0 *x1 = (const preft_block_q8_0 *)(xq + (size_t)r1 * xqs) + b0;
      for (int b = 0; b < bc; b++) {
        __m256i p0, p1;
        if (kind) {
          /* int16 sums of at most 8 (4-bit) or 4 (5-bit codes) groups:
           * 8 · 2 · 15 · 127 and 4 · 2 · 31 · 127 both < 32768 */
          const int per = kind == 1 ? 8 : 4, off = kind == 1 ? 8 : 16;
          const __m256i ones = _mm256_set1_epi16(1);
          p0 = _mm256_set1_epi32(-off * sx[r * nb + b0 + b]);
          p1 = _mm256_set1_epi32(-off * sx[r1 * nb + b0 + b]);
          for (int g0 = 0; g0 < 8; g0 += per) {
            __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
            for (int g = g0; g < g0 + per; g++) {
              const __m256i c = codes[b][g];
              s0 = _mm256_add_epi16(s0, _mm256_maddubs_epi16(c, bcast4(x0[b].qs + 4 * g)));
              s1 = _mm256_add_epi16(s1, _mm256_maddubs_epi16(c, bcast4(x1[b].qs + 4 * g)));
            }
            p0 = _mm256_add_epi32(p0, _mm256_madd_epi16(s0, ones));
            p1 = _mm256_add_epi32(p1, _mm256_madd_epi16(s1, ones));
          }
        } else {
          p0 = p1 = _mm256_setzero_si256();
          for (int g = 0; g < 8; g++) {
            const __m256i c = codes[b][g], sg = signs[b][g];
            p0 = dot_acc(p0, c, _mm256_sign_epi8(bcast4(x0[b].qs + 4 * g), sg));
            p1 = dot_acc(p1, c, _mm256_sign_epi8(bcast4(x1[b].qs + 4 * g), sg));
          }
        }
        a0 = _mm256_fmadd_ps(_mm256_mul_ps(dw[b], _mm256_broadcast_ss(xd + r * nb + b0 + b)),
                             _mm256_cvtepi32_ps(p0), a0);
        a1 = _mm256_fmadd_ps(_mm256_mul_ps(dw[b], _mm256_broadcast_ss(xd + r1 * nb + b0 + b)),
                             _mm256_cvtepi32_ps(p1), a1);
      }
      _mm256_storeu_ps(acc + 8 * r, a0);
      if (r1 != r) _mm256_storeu_ps(acc + 8 * r1, a1);
    }
  }
}

#define TILE_32(T, KIND)                                                                                    \
  QFN void tiles_##T(float *y, size_t ys, const void *xqv, size_t xqs, const void *w, size_t wrow, int n,   \
                     int k, int j0, int j1, int accumulate) {                                               \
    const unsigned char *xq = xqv;                                                                          \
    const int nb = k / PREFT_QK;                                                                            \
    PREFT_ASSERT(n <= QTILE_MAX_N);                                                                         \
    float acc[QTILE_MAX_N * 8];                                                                             \
    float *xd = preft_xmalloc((size_t)nb * (size_t)n * sizeof(float));                                      \
    int32_t *sx = preft_xmalloc((size_t)nb * (size_t)n * sizeof(int32_t));                                  \
    for (int i0 = 0; i0 < n; i0 += QNR) {                                                                   \
      int nr = n - i0 < QNR ? n - i0 : QNR;                                                                 \
      prep_q8_0(xd + (size_t)i0 * nb, sx + (size_t)i0 * nb, xq + (size_t)i0 * xqs, xqs, nb, nr, KIND != 0); \
    }                                                                                                       \
    int j = j0;                                                                                             \
    for (; j + QTILE <= j1; j += QTILE) {                                                                   \
      tile_q8_0_q4_0(KIND, y, ys, xq, xqs, w, wrow, n, k, j, xd, sx, acc);                                  \
      store_tile(y, ys, j, acc, n, accumulate);                                                             \
    }                                                                                                       \
    free(xd), free(sx);                                                                                     \
    if (j < j1) rows_##T(y, ys, xqv, xqs, w, wrow, n, k, j, j1, accumulate);                                \
  }

TILE_32(q8_0, 0)
TILE_32(q4_0, 1)
TILE_32(q5_0, 2)

/* Q4_K: one super-block per chunk. */
QFN void tiles_q4_K(float *y, size_t ys, const void *xqv, size_t xqs, const void *w, size_t wrow, int n,
                    int k, int j0, int j1, int accumulate) {
  const unsigned char *xq = xqv;
  const int nb = k / PREFT_QK_K;
  PREFT_ASSERT(n <= QTILE_MAX_N);
  float acc[QTILE_MAX_N * 8];
  int j = j0;
  for (; j + QTILE <= j1; j += QTILE) {
    memset(acc, 0, (size_t)n * 8 * sizeof(float));
    for (int b = 0; b < nb; b++) {
      __m256i codes[8][8]; /* [sub-block][group] */
      int16_t sc[8][16], mn[8][16];
      float d[8], dmin[8];
      for (int s = 0; s < 8; s += 2) {
        __m256i lo[8], hi[8];
        for (int r = 0; r < 8; r++) {
          const preft_block_q4_K *blk =
              (const preft_block_q4_K *)((const unsigned char *)w + (size_t)(j + r) * wrow) + b;
          const __m256i q = load32(blk->qs + 16 * s);
          lo[r] = _mm256_and_si256(q, _mm256_set1_epi8(0x0F));
          hi[r] = _mm256_and_si256(_mm256_srli_epi16(q, 4), _mm256_set1_epi8(0x0F));
        }
        interleave8(codes[s], lo);
        interleave8(codes[s + 1], hi);
      }
      for (int r = 0; r < 8; r++) {
        const preft_block_q4_K *blk =
            (const preft_block_q4_K *)((const unsigned char *)w + (size_t)(j + r) * wrow) + b;
        uint32_t u[4];
        q4_K_scales(blk->scales, u);
        const uint8_t *v = (const uint8_t *)u;
        for (int s = 0; s < 8; s++) sc[s][2 * r] = sc[s][2 * r + 1] = v[s];
        /* mins as int16 pairs (m[s], m[s+1]) for s even, in row r's lane */
        for (int s = 0; s < 8; s += 2) mn[s / 2][2 * r] = v[8 + s], mn[s / 2][2 * r + 1] = v[8 + s + 1];
        d[r] = h2f(blk->d), dmin[r] = h2f(blk->dmin);
      }
      const __m256 vd = _mm256_loadu_ps(d), vdmin = _mm256_loadu_ps(dmin);
      __m256i vsc[8], vmn[4];
      for (int s = 0; s < 8; s++) vsc[s] = _mm256_loadu_si256((const __m256i *)sc[s]);
      for (int s = 0; s < 4; s++) vmn[s] = _mm256_loadu_si256((const __m256i *)mn[s]);
      for (int r = 0; r < n; r += 2) { /* two rows of x per pass, as above */
        const int r1 = r + 1 < n ? r + 1 : r;
        const preft_block_q8_K *x0 = (const preft_block_q8_K *)(xq + (size_t)r * xqs) + b;
        const preft_block_q8_K *x1 = (const preft_block_q8_K *)(xq + (size_t)r1 * xqs) + b;
        __m256i sumi0 = _mm256_setzero_si256(), sumi1 = _mm256_setzero_si256();
        for (int s = 0; s < 8; s++) {
          __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
          for (int g = 0; g < 8; g++) {
            const __m256i c = codes[s][g];
            s0 = _mm256_add_epi16(s0, _mm256_maddubs_epi16(c, bcast4(x0->qs + 32 * s + 4 * g)));
            s1 = _mm256_add_epi16(s1, _mm256_maddubs_epi16(c, bcast4(x1->qs + 32 * s + 4 * g)));
          }
          sumi0 = _mm256_add_epi32(sumi0, _mm256_madd_epi16(s0, vsc[s]));
          sumi1 = _mm256_add_epi32(sumi1, _mm256_madd_epi16(s1, vsc[s]));
        }
        const preft_block_q8_K *xs[2] = {x0, x1};
        const __m256i sumi[2] = {sumi0, sumi1};
        for (int i = 0; i < 2; i++) {
          if (i == 1 && r1 == r) break;
          const preft_block_q8_K *x = xs[i];
          const int row = i ? r1 : r;
          /* mins: pair sums of bsums, two per int32, times (m[s], m[s+1]) */
          __m128i pairs = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)x->bsums),
                                         _mm_loadu_si128((const __m128i *)(x->bsums + 8)));
          __m256i summ = _mm256_madd_epi16(vmn[0], _mm256_set1_epi32(_mm_extract_epi32(pairs, 0)));
          summ = _mm256_add_epi32(summ,
                                  _mm256_madd_epi16(vmn[1], _mm256_set1_epi32(_mm_extract_epi32(pairs, 1))));
          summ = _mm256_add_epi32(summ,
                                  _mm256_madd_epi16(vmn[2], _mm256_set1_epi32(_mm_extract_epi32(pairs, 2))));
          summ = _mm256_add_epi32(summ,
                                  _mm256_madd_epi16(vmn[3], _mm256_set1_epi32(_mm_extract_epi32(pairs, 3))));
          const __m256 xdv = _mm256_set1_ps(x->d);
          __m256 a = _mm256_loadu_ps(acc + 8 * row);
          a = _mm256_fmadd_ps(_mm256_mul_ps(vd, xdv), _mm256_cvtepi32_ps(sumi[i]), a);
          a = _mm256_fnmadd_ps(_mm256_mul_ps(vdmin, xdv), _mm256_cvtepi32_ps(summ), a);
          _mm256_storeu_ps(acc + 8 * row, a);
        }
      }
    }
    store_tile(y, ys, j, acc, n, accumulate);
  }
  if (j < j1) rows_q4_K(y, ys, xqv, xqs, w, wrow, n, k, j, j1, accumulate);
}

/* ---- backward for x: dx[i, 0:kc] += sum_r dy[i, r] · tile[r, 0:kc] --------- */

/* ---- dequantization into FP32 (the QLoRA backward's tiles) ---------------- */

/* The same values as preft_dequantize_row (quant_ref.c), bit for bit: the
 * same products in the same order (int → float exact, then one multiply;
 * Q4_K multiplies and subtracts separately, no FMA). */
QIN void store_scaled8(float *y, __m128i q8, __m256 d) { /* 8 int8 → float × d */
  _mm256_storeu_ps(y, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q8)), d));
}

QFN void dequant(preft_dtype t, const void *src, float *y, size_t n) {
  const size_t nb = n / preft_dtype_block(t);
  switch (t) {
    case PREFT_Q8_0:
      for (size_t b = 0; b < nb; b++) {
        const preft_block_q8_0 *x = (const preft_block_q8_0 *)src + b;
        const __m256 d = _mm256_set1_ps(h2f(x->d));
        const __m256i q = load32(x->qs);
        const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
        store_scaled8(y + 32 * b, lo, d);
        store_scaled8(y + 32 * b + 8, _mm_srli_si128(lo, 8), d);
        store_scaled8(y + 32 * b + 16, hi, d);
        store_scaled8(y + 32 * b + 24, _mm_srli_si128(hi, 8), d);
      }
      return;
    case PREFT_Q4_0:
    case PREFT_Q5_0:
      for (size_t b = 0; b < nb; b++) {
        __m256i q;
        float dv;
        if (t == PREFT_Q4_0) {
          const preft_block_q4_0 *x = (const preft_block_q4_0 *)src + b;
          q = _mm256_sub_epi8(nibbles32(x->qs), _mm256_set1_epi8(8));
          dv = h2f(x->d);
        } else {
          const preft_block_q5_0 *x = (const preft_block_q5_0 *)src + b;
          q = _mm256_sub_epi8(_mm256_or_si256(nibbles32(x->qs), bits32_0x10(x->qh)), _mm256_set1_epi8(16));
          dv = h2f(x->d);
        }
        const __m256 d = _mm256_set1_ps(dv);
        const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
        store_scaled8(y + 32 * b, lo, d);
        store_scaled8(y + 32 * b + 8, _mm_srli_si128(lo, 8), d);
        store_scaled8(y + 32 * b + 16, hi, d);
        store_scaled8(y + 32 * b + 24, _mm_srli_si128(hi, 8), d);
      }
      return;
    case PREFT_Q4_K:
      for (size_t b = 0; b < nb; b++) {
        const preft_block_q4_K *x = (const preft_block_q4_K *)src + b;
        uint32_t u[4];
        q4_K_scales(x->scales, u);
        const uint8_t *sc = (const uint8_t *)u;
        const float d = h2f(x->d), dmin = h2f(x->dmin);
        float *yb = y + 256 * b;
        for (int c = 0; c < 4; c++) {
          const __m256i q = load32(x->qs + 32 * c);
          const __m256i qq[2] = {_mm256_and_si256(q, _mm256_set1_epi8(0x0F)),
                                 _mm256_and_si256(_mm256_srli_epi16(q, 4), _mm256_set1_epi8(0x0F))};
          for (int h = 0; h < 2; h++) {
            const __m256 d1 = _mm256_set1_ps(d * sc[2 * c + h]),
                         m1 = _mm256_set1_ps(dmin * sc[8 + 2 * c + h]);
            const __m128i lo = _mm256_castsi256_si128(qq[h]), hi = _mm256_extracti128_si256(qq[h], 1);
            const __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
            for (int p = 0; p < 4; p++) {
              __m256 v = _mm256_mul_ps(d1, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(parts[p])));
              _mm256_storeu_ps(yb + 64 * c + 32 * h + 8 * p, _mm256_sub_ps(v, m1));
            }
          }
        }
      }
      return;
    case PREFT_Q4_0_X4:
    case PREFT_Q5_0_X4:
      preft_dequantize_x4_via(t, src, y, n, dequant);
      return;
    case PREFT_Q4_K_R4:
      preft_dequantize_r4_via(src, y, n, dequant);
      return;
    case PREFT_Q6_K:
      for (size_t b = 0; b < nb; b++) {
        const preft_block_q6_K *x = (const preft_block_q6_K *)src + b;
        const float d = h2f(x->d);
        const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x03);
        for (int h = 0; h < 2; h++) {
          const __m256i ql0 = load32(x->ql + 64 * h), ql1 = load32(x->ql + 64 * h + 32),
                        qh = load32(x->qh + 32 * h);
          __m256i q[4];
          q[0] = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4));
          q[1] = _mm256_or_si256(_mm256_and_si256(ql1, m4),
                                 _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m2), 4));
          q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                                 _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m2), 4));
          q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                                 _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m2), 4));
          for (int p = 0; p < 4; p++) {
            const __m256i qs = _mm256_sub_epi8(q[p], _mm256_set1_epi8(32));
            const __m128i lo = _mm256_castsi256_si128(qs), hi = _mm256_extracti128_si256(qs, 1);
            /* values 128h + 32p + l: sub-block 8h + 2p + l / 16 */
            const __m256 s0 = _mm256_set1_ps(d * x->scales[8 * h + 2 * p]);
            const __m256 s1 = _mm256_set1_ps(d * x->scales[8 * h + 2 * p + 1]);
            float *yb = y + 256 * b + 128 * h + 32 * p;
            store_scaled8(yb, lo, s0);
            store_scaled8(yb + 8, _mm_srli_si128(lo, 8), s0);
            store_scaled8(yb + 16, hi, s1);
            store_scaled8(yb + 24, _mm_srli_si128(hi, 8), s1);
          }
        }
      }
      return;
    default:
      preft_dequantize_row(t, src, y, n);
  }
}

/* Two rows of dx per pass, so each tile vector is loaded once for both
 * (4 tile loads and 2 broadcasts per 8 FMAs). */
QFN void tile_dx(float *dx, size_t dxs, const float *dy, size_t dys, const float *tile, int rows, int kc,
                 int n) {
  for (int i = 0; i < n; i += 2) {
    const int i1 = i + 1 < n ? i + 1 : i; /* an odd last row: computed twice, stored once */
    float *d0 = dx + (size_t)i * dxs, *d1 = dx + (size_t)i1 * dxs;
    const float *g0 = dy + (size_t)i * dys, *g1 = dy + (size_t)i1 * dys;
    for (int c = 0; c < kc; c += 16) {
      const int two = c + 16 <= kc; /* kc is a multiple of 8 */
      __m256 a0 = _mm256_loadu_ps(d0 + c), a1 = two ? _mm256_loadu_ps(d0 + c + 8) : _mm256_setzero_ps();
      __m256 b0 = _mm256_loadu_ps(d1 + c), b1 = two ? _mm256_loadu_ps(d1 + c + 8) : _mm256_setzero_ps();
      for (int r = 0; r < rows; r++) {
        const float *t = tile + (size_t)r * (size_t)kc + c;
        const __m256 t0 = _mm256_loadu_ps(t), t1 = two ? _mm256_loadu_ps(t + 8) : _mm256_setzero_ps();
        const __m256 h0 = _mm256_broadcast_ss(g0 + r), h1 = _mm256_broadcast_ss(g1 + r);
        a0 = _mm256_fmadd_ps(h0, t0, a0);
        a1 = _mm256_fmadd_ps(h0, t1, a1);
        b0 = _mm256_fmadd_ps(h1, t0, b0);
        b1 = _mm256_fmadd_ps(h1, t1, b1);
      }
      if (i1 != i) {
        _mm256_storeu_ps(d1 + c, b0);
        if (two) _mm256_storeu_ps(d1 + c + 8, b1);
      }
      _mm256_storeu_ps(d0 + c, a0);
      if (two) _mm256_storeu_ps(d0 + c + 8, a1);
    }
  }
}

#if QK_VNNI == 2
/* AVX512-VNNI: the 16-row zmm tiles of quant_tile16.c, the rows kernel for
 * the rows left past a multiple of 16 */
#define TILE16(T, ROWS)                                                                                    \
  QFN void tiles16_##T(float *y, size_t ys, const void *xq, size_t xqs, const void *w, size_t wrow, int n, \
                       int k, int j0, int j1, int accumulate) {                                            \
    int j = preft_qtile16_##T(y, ys, xq, xqs, w, wrow, n, k, j0, j1, accumulate);                          \
    if (j < j1) ROWS(y, ys, xq, xqs, w, wrow, n, k, j, j1, accumulate);                                    \
  }
TILE16(q8_0, rows_q8_0)
TILE16(q4_0, rows_q4_0)
TILE16(q4_K, preft_qrows512_q4_K)
TILE16(q5_0, rows_q5_0)
TILE16(q6_K, preft_qrows512_q6_K)
TILE16(q4_0x4, preft_qrows512_q4_0x4)
TILE16(q5_0x4, preft_qrows512_q5_0x4)
TILE16(q4_Kr4, preft_qrows512_q4_Kr4)
#define QK_TILES                                                                                          \
  {                                                                                                       \
    tiles16_q8_0, tiles16_q4_0, tiles16_q4_K, tiles16_q6_K, tiles16_q5_0, tiles16_q4_0x4, tiles16_q5_0x4, \
        tiles16_q4_Kr4                                                                                    \
  }
/* the rows kernels on zmm (quant_rows512*.c) */
#define QK_ROWS                                                                                    \
  {                                                                                                \
    rows_q8_0, preft_qrows512_q4_0, preft_qrows512_q4_K, preft_qrows512_q6_K, preft_qrows512_q5_0, \
        preft_qrows512_q4_0x4, preft_qrows512_q5_0x4, preft_qrows512_q4_Kr4                        \
  }
/* x laid out once per product for the Q4_0 / Q5_0 families' and Q4_K's rows kernels */
#define QK_ROWS_LAID                                                                          \
  {                                                                                           \
    NULL, preft_qrows512_laid_q4_0, preft_qrows512_laid_q4_K, NULL, preft_qrows512_laid_q5_0, \
        preft_qrows512_laid_q4_0x4, preft_qrows512_laid_q5_0x4, preft_qrows512_laid_q4_Kr4    \
  }
/* the table's x layouts: Q4_K's (quant_rows512.c, its R4 layout too),
 * else the Q4_0 / Q5_0 families' (quant_rows512_q5.c) */
static size_t x_layout_bytes512(preft_dtype t, int k) {
  return preft_dtype_stored(t) == PREFT_Q4_K ? preft_qx512_layout_bytes_q4_K(k)
                                             : preft_qx512_layout_bytes(t, k);
}
static void x_layout512(preft_dtype t, void *dst, const void *xq, size_t xqs, int n, int k) {
  if (preft_dtype_stored(t) == PREFT_Q4_K)
    preft_qx512_layout_q4_K(dst, xq, xqs, n, k);
  else
    preft_qx512_layout(t, dst, xq, xqs, n, k);
}
#define QK_X_LAYOUT_BYTES x_layout_bytes512
#define QK_X_LAYOUT x_layout512
#define QK_QUANTIZE_ACT preft_quantize_act_rows_avx512
#else
#define QK_QUANTIZE_ACT preft_quantize_act_rows
#define QK_ROWS_LAID \
  { NULL }
#define QK_X_LAYOUT_BYTES NULL
#define QK_X_LAYOUT NULL
/* the X4 and R4 layouts through the plain kernels (quant_layout.c) */
PREFT_QROWS_VIA_PLAIN(rows_q4_0x4, rows_q4_0, PREFT_Q4_0_X4, static)
PREFT_QROWS_VIA_PLAIN(rows_q5_0x4, rows_q5_0, PREFT_Q5_0_X4, static)
PREFT_QROWS_VIA_PLAIN(rows_q4_Kr4, rows_q4_K, PREFT_Q4_K_R4, static)
PREFT_QROWS_VIA_PLAIN(tiles_q4_0x4, tiles_q4_0, PREFT_Q4_0_X4, static)
PREFT_QROWS_VIA_PLAIN(tiles_q5_0x4, tiles_q5_0, PREFT_Q5_0_X4, static)
PREFT_QROWS_VIA_PLAIN(tiles_q4_Kr4, tiles_q4_K, PREFT_Q4_K_R4, static)
#define QK_TILES \
  { tiles_q8_0, tiles_q4_0, tiles_q4_K, NULL, tiles_q5_0, tiles_q4_0x4, tiles_q5_0x4, tiles_q4_Kr4 }
#define QK_ROWS \
  { rows_q8_0, rows_q4_0, rows_q4_K, rows_q6_K, rows_q5_0, rows_q4_0x4, rows_q5_0x4, rows_q4_Kr4 }
#endif

const preft_quant_kernels QK_TABLE = {
    .rows = QK_ROWS,
    .tiles = QK_TILES,
    .rows_laid = QK_ROWS_LAID,
    .x_layout_bytes = QK_X_LAYOUT_BYTES,
    .x_layout = QK_X_LAYOUT,
    .quantize_act = QK_QUANTIZE_ACT,
    .tile_dx = tile_dx,
    .dequant = dequant,
    .name = QK_NAME,
};
