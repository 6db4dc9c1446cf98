/* lora_kernels.c - the expand of a LoRA delta, y += t·Bt for small rank R
 * (see lora_kernels.h): a plain C version, which the tests hold to the
 * same reference as the others, an AVX+FMA+F16C chunked kernel for groups
 * of rows, and a few-rows kernel (ymm, and zmm on AVX-512 CPUs) for the
 * one to four rows a decode step has per adapter.
 *
 * Chunked: for a chunk of 16 (or 8) output columns, the chunk of Bt for up
 * to EXPAND_RB ranks is converted to FP32 once into a small buffer (in
 * L1), then every row of the group accumulates
 * y[i, chunk] += Σ_r t[i, r] · Bt[r, chunk] in registers, 4 rows at a time
 * (8 accumulators, 2 weight vectors, 1 broadcast). y is read and written
 * once per chunk and EXPAND_RB ranks; there are no horizontal sums.
 *
 * Few rows: see "few rows" below. Both give every element its terms in
 * rank order with one FMA each, so they agree bit for bit.
 */
#include "model/lora_kernels.h"

#include <math.h>

#include "tensor/cpu.h"

#define PORT_OB 64   /* portable expand: output columns per pass */
#define EXPAND_RB 64 /* ranks of Bt buffered per pass (both paths) */

static inline const float *row_of(const float *base, size_t stride, const int *rows, int i) {
  return base + (size_t)(rows ? rows[i] : i) * stride;
}

/* dst[0..n) = src[off .. off+n) as FP32. */
static void to_f32(float *dst, const void *src, preft_dtype dt, size_t off, int n) {
  if (dt == PREFT_F32) {
    const float *s = (const float *)src + off;
    for (int i = 0; i < n; i++) dst[i] = s[i];
  } else if (dt == PREFT_BF16) {
    const uint16_t *s = (const uint16_t *)src + off;
    for (int i = 0; i < n; i++) dst[i] = preft_bf16_to_f32(s[i]);
  } else {
    const uint16_t *s = (const uint16_t *)src + off;
    for (int i = 0; i < n; i++) dst[i] = preft_f16_to_f32(s[i]);
  }
}

static inline float elem_f32(const void *src, preft_dtype dt, size_t i) {
  if (dt == PREFT_F32) return ((const float *)src)[i];
  uint16_t h = ((const uint16_t *)src)[i];
  return dt == PREFT_BF16 ? preft_bf16_to_f32(h) : preft_f16_to_f32(h);
}

/* ---- plain C ------------------------------------------------------------ */

static void expand_portable(float *y, size_t y_stride, const int *rows, const float *t, size_t ts,
                            const void *bt, size_t ld, preft_dtype bdt, int n, int rank, int out) {
  float buf[EXPAND_RB * PORT_OB];
  for (int o0 = 0; o0 < out; o0 += PORT_OB) {
    int ob = out - o0 < PORT_OB ? out - o0 : PORT_OB;
    for (int r0 = 0; r0 < rank; r0 += EXPAND_RB) {
      int rb = rank - r0 < EXPAND_RB ? rank - r0 : EXPAND_RB;
      for (int r = 0; r < rb; r++) to_f32(buf + r * ob, bt, bdt, (size_t)(r0 + r) * ld + (size_t)o0, ob);
      for (int i = 0; i < n; i++) {
        float *yi = (float *)row_of(y, y_stride, rows, i) + o0;
        const float *ti = t + (size_t)i * ts + r0;
        for (int r = 0; r < rb; r++) {
          const float tr = ti[r], *br = buf + r * ob;
          for (int j = 0; j < ob; j++) yi[j] += tr * br[j];
        }
      }
    }
  }
}

/* ---- AVX + FMA + F16C --------------------------------------------------- */

#if defined(__x86_64__) || defined(__i386__)
#include "tensor/load16_avx512.h"
#include "tensor/load8_avx.h"
#define HAVE_AVX_PATH 1

#define AVX_FN static __attribute__((target("avx,fma,f16c")))
#define AVX_INLINE static inline __attribute__((always_inline, target("avx,fma,f16c")))

/* NAME_f32, NAME_f16 and NAME_bf16: BODY with the weight type fixed, so
 * that each is compiled for its type. */
#define PER_DTYPE(FN, NAME, BODY)                                                                      \
  FN void NAME##_f32(float *y, size_t ys, const int *rows, const float *t, size_t ts, const void *bt,  \
                     size_t ld, int n, int rank, int out) {                                            \
    BODY(y, ys, rows, t, ts, bt, ld, PREFT_F32, n, rank, out);                                         \
  }                                                                                                    \
  FN void NAME##_f16(float *y, size_t ys, const int *rows, const float *t, size_t ts, const void *bt,  \
                     size_t ld, int n, int rank, int out) {                                            \
    BODY(y, ys, rows, t, ts, bt, ld, PREFT_F16, n, rank, out);                                         \
  }                                                                                                    \
  FN void NAME##_bf16(float *y, size_t ys, const int *rows, const float *t, size_t ts, const void *bt, \
                      size_t ld, int n, int rank, int out) {                                           \
    BODY(y, ys, rows, t, ts, bt, ld, PREFT_BF16, n, rank, out);                                        \
  }

/* y[c] += Σ_r t[r]·Bt[r, c] in rank order, one fmaf a term: a column past
 * the vector blocks, computed as the vector FMAs compute the others. */
AVX_INLINE void expand_column(float *y, const float *t, const void *bt, size_t ld, preft_dtype dt, int rank,
                              int c) {
  float s = y[c];
  for (int r = 0; r < rank; r++) s = fmaf(t[r], elem_f32(bt, dt, (size_t)r * ld + (size_t)c), s);
  y[c] = s;
}

/* y[rows i0 .. i0+NT, o0 .. o0+8·NV) += t[.., r0 .. r0+rb) · buf[rb][8·NV];
 * NT <= 4 and NV <= 2 are constants. */
AVX_INLINE void expand_tile(float *const *yr, const float *t, size_t ts, const float *buf, int rb, int NT,
                            int NV) {
  __m256 acc[4][2];
#pragma GCC unroll 4
  for (int i = 0; i < NT; i++)
#pragma GCC unroll 2
    for (int v = 0; v < NV; v++) acc[i][v] = _mm256_loadu_ps(yr[i] + 8 * v);
  for (int r = 0; r < rb; r++) {
    __m256 b[2];
#pragma GCC unroll 2
    for (int v = 0; v < NV; v++) b[v] = _mm256_load_ps(buf + (size_t)r * 8 * NV + 8 * v);
#pragma GCC unroll 4
    for (int i = 0; i < NT; i++) {
      __m256 ti = _mm256_broadcast_ss(t + (size_t)i * ts + r);
#pragma GCC unroll 2
      for (int v = 0; v < NV; v++) acc[i][v] = _mm256_fmadd_ps(ti, b[v], acc[i][v]);
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < NT; i++)
#pragma GCC unroll 2
    for (int v = 0; v < NV; v++) _mm256_storeu_ps(yr[i] + 8 * v, acc[i][v]);
}

/* One chunk of 8·NV output columns from o0, all rows, all ranks. */
AVX_INLINE void expand_chunk(float *y, size_t y_stride, const int *rows, const float *t, size_t ts,
                             const void *bt, size_t ld, preft_dtype dt, int n, int rank, int o0, int NV,
                             float *buf) {
  for (int r0 = 0; r0 < rank; r0 += EXPAND_RB) {
    int rb = rank - r0 < EXPAND_RB ? rank - r0 : EXPAND_RB;
    for (int r = 0; r < rb; r++)
      for (int v = 0; v < NV; v++)
        _mm256_store_ps(buf + (size_t)r * 8 * NV + 8 * v,
                        preft_load8_avx(bt, dt, (size_t)(r0 + r) * ld + (size_t)(o0 + 8 * v)));
    int i = 0;
    for (; i + 4 <= n; i += 4) {
      float *yr[4];
      for (int q = 0; q < 4; q++) yr[q] = (float *)row_of(y, y_stride, rows, i + q) + o0;
      expand_tile(yr, t + (size_t)i * ts + r0, ts, buf, rb, 4, NV);
    }
    for (; i < n; i++) {
      float *yr[1] = {(float *)row_of(y, y_stride, rows, i) + o0};
      expand_tile(yr, t + (size_t)i * ts + r0, ts, buf, rb, 1, NV);
    }
  }
}

AVX_INLINE void expand_avx_body(float *y, size_t y_stride, const int *rows, const float *t, size_t ts,
                                const void *bt, size_t ld, preft_dtype dt, int n, int rank, int out) {
  _Alignas(32) float buf[EXPAND_RB * 16];
  int o0 = 0;
  for (; o0 + 16 <= out; o0 += 16) expand_chunk(y, y_stride, rows, t, ts, bt, ld, dt, n, rank, o0, 2, buf);
  if (o0 + 8 <= out) {
    expand_chunk(y, y_stride, rows, t, ts, bt, ld, dt, n, rank, o0, 1, buf);
    o0 += 8;
  }
  for (; o0 < out; o0++) /* the last out % 8 columns */
    for (int i = 0; i < n; i++)
      expand_column((float *)row_of(y, y_stride, rows, i), t + (size_t)i * ts, bt, ld, dt, rank, o0);
}

/* ---- few rows (a decode step's one row per adapter) ---------------------
 * The chunked kernel above reads 16 ranks' 64-byte pieces of Bt side by
 * side, 16 short streams that the hardware prefetchers follow badly when
 * Bt comes from memory (a decode step reads every sequence's Bt). Here a
 * block of columns of y stays in registers over all the ranks while each
 * rank row of Bt is prefetched EXPAND_AHEAD bytes ahead, and the block's
 * Bt (in L1 after the first row) serves the group's other rows. Each
 * element still gets its terms in rank order, one FMA each, and the last
 * columns the same scalar fmaf: the same bits as the chunked kernel
 * (tests/unit/test_lora_kernels.c holds the two to it). */
#define EXPAND_FEW_ROWS 4 /* groups of at most this many rows take it */
#define EXPAND_AHEAD 512  /* bytes of each rank row of Bt prefetched ahead */

/* y[i, c .. c+8·V) for the group's rows, V ymm accumulators; V and dt are
 * constants. */
AVX_INLINE void expand_few_block(float *const *yr, const float *t, size_t ts, const void *bt, size_t ld,
                                 preft_dtype dt, int n, int rank, int c, const int V) {
  const size_t es = preft_dtype_size(dt);
  for (int i = 0; i < n; i++) {
    __m256 acc[8];
#pragma GCC unroll 8
    for (int v = 0; v < V; v++) acc[v] = _mm256_loadu_ps(yr[i] + c + 8 * v);
    for (int r = 0; r < rank; r++) {
      const size_t at = (size_t)r * ld + (size_t)c;
      if (i == 0)
        for (size_t b = 0; b < (size_t)(8 * V) * es; b += 64)
          __builtin_prefetch((const char *)bt + at * es + EXPAND_AHEAD + b, 0, 3);
      __m256 tr = _mm256_broadcast_ss(t + (size_t)i * ts + r);
#pragma GCC unroll 8
      for (int v = 0; v < V; v++)
        acc[v] = _mm256_fmadd_ps(tr, preft_load8_avx(bt, dt, at + 8 * (size_t)v), acc[v]);
    }
#pragma GCC unroll 8
    for (int v = 0; v < V; v++) _mm256_storeu_ps(yr[i] + c + 8 * v, acc[v]);
  }
}

AVX_INLINE void expand_few_avx_body(float *y, size_t y_stride, const int *rows, const float *t, size_t ts,
                                    const void *bt, size_t ld, preft_dtype dt, int n, int rank, int out) {
  float *yr[EXPAND_FEW_ROWS];
  for (int i = 0; i < n; i++) yr[i] = (float *)row_of(y, y_stride, rows, i);
  int c = 0;
  for (; c + 64 <= out; c += 64) expand_few_block(yr, t, ts, bt, ld, dt, n, rank, c, 8);
  for (; c + 8 <= out; c += 8) expand_few_block(yr, t, ts, bt, ld, dt, n, rank, c, 1);
  for (; c < out; c++) /* the last out % 8 columns */
    for (int i = 0; i < n; i++) expand_column(yr[i], t + (size_t)i * ts, bt, ld, dt, rank, c);
}

PER_DTYPE(AVX_FN, expand_few_avx, expand_few_avx_body)

/* The same on zmm (AVX-512 CPUs): blocks of 128 columns, the last partial
 * block of 16 under a mask (masked lanes are neither read nor written). */
#define Z_FN static __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
#define Z_INLINE \
  static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))

/* y[i, c .. c+16·V) for the group's rows, the last vector under mask m. */
Z_INLINE void expand_few_block_z(float *const *yr, const float *t, size_t ts, const void *bt, size_t ld,
                                 preft_dtype dt, int n, int rank, int c, const int V, __mmask16 m) {
  const size_t es = preft_dtype_size(dt);
  for (int i = 0; i < n; i++) {
    __m512 acc[8];
#pragma GCC unroll 8
    for (int v = 0; v < V; v++) acc[v] = _mm512_maskz_loadu_ps(v == V - 1 ? m : 0xFFFF, yr[i] + c + 16 * v);
    for (int r = 0; r < rank; r++) {
      const size_t at = (size_t)r * ld + (size_t)c;
      if (i == 0)
        for (size_t b = 0; b < (size_t)(16 * V) * es; b += 64)
          __builtin_prefetch((const char *)bt + at * es + EXPAND_AHEAD + b, 0, 3);
      __m512 tr = _mm512_set1_ps(t[(size_t)i * ts + r]);
#pragma GCC unroll 8
      for (int v = 0; v < V; v++)
        acc[v] = _mm512_fmadd_ps(
            tr, preft_load16_avx512(bt, dt, at + 16 * (size_t)v, v == V - 1 ? m : 0xFFFF), acc[v]);
    }
#pragma GCC unroll 8
    for (int v = 0; v < V; v++) _mm512_mask_storeu_ps(yr[i] + c + 16 * v, v == V - 1 ? m : 0xFFFF, acc[v]);
  }
}

Z_INLINE void expand_few_z_body(float *y, size_t y_stride, const int *rows, const float *t, size_t ts,
                                const void *bt, size_t ld, preft_dtype dt, int n, int rank, int out) {
  float *yr[EXPAND_FEW_ROWS];
  for (int i = 0; i < n; i++) yr[i] = (float *)row_of(y, y_stride, rows, i);
  int c = 0;
  for (; c + 128 <= out; c += 128) expand_few_block_z(yr, t, ts, bt, ld, dt, n, rank, c, 8, 0xFFFF);
  for (; c < out; c += 16)
    expand_few_block_z(yr, t, ts, bt, ld, dt, n, rank, c, 1, preft_mask16_first(out - c));
}

PER_DTYPE(Z_FN, expand_few_z, expand_few_z_body)

PER_DTYPE(AVX_FN, expand_avx, expand_avx_body)
#endif

/* ---- dispatch ----------------------------------------------------------- */

#ifdef HAVE_AVX_PATH
typedef void (*expand_fn)(float *y, size_t ys, const int *rows, const float *t, size_t ts, const void *bt,
                          size_t ld, int n, int rank, int out);
static expand_fn by_dtype(preft_dtype dt, expand_fn f32, expand_fn f16, expand_fn bf16) {
  return dt == PREFT_F32 ? f32 : dt == PREFT_F16 ? f16 : bf16;
}
#endif

void preft_lora_expand_chunked(float *y, size_t y_stride, const int *rows, const float *t, size_t t_stride,
                               const void *bt, size_t bt_ld, preft_dtype bdt, int n, int rank, int out) {
  if (n <= 0 || rank <= 0 || out <= 0) return;
#ifdef HAVE_AVX_PATH
  if (preft_cpu_path() >= PREFT_CPU_AVX_FMA) {
    by_dtype(bdt, expand_avx_f32, expand_avx_f16, expand_avx_bf16)(y, y_stride, rows, t, t_stride, bt, bt_ld,
                                                                   n, rank, out);
    return;
  }
#endif
  expand_portable(y, y_stride, rows, t, t_stride, bt, bt_ld, bdt, n, rank, out);
}

void preft_lora_expand(float *y, size_t y_stride, const int *rows, const float *t, size_t t_stride,
                       const void *bt, size_t bt_ld, preft_dtype bdt, int n, int rank, int out) {
  if (n <= 0 || rank <= 0 || out <= 0) return;
#ifdef HAVE_AVX_PATH
  if (n <= EXPAND_FEW_ROWS && preft_cpu_path() >= PREFT_CPU_AVX_FMA) {
    expand_fn few = preft_cpu_path() >= PREFT_CPU_AVX512_BF16
                        ? by_dtype(bdt, expand_few_z_f32, expand_few_z_f16, expand_few_z_bf16)
                        : by_dtype(bdt, expand_few_avx_f32, expand_few_avx_f16, expand_few_avx_bf16);
    few(y, y_stride, rows, t, t_stride, bt, bt_ld, n, rank, out);
    return;
  }
#endif
  preft_lora_expand_chunked(y, y_stride, rows, t, t_stride, bt, bt_ld, bdt, n, rank, out);
}

void preft_lora_transpose_b(void *bt, const void *b, preft_dtype dt, int out, int rank) {
  if (dt == PREFT_F32) {
    const float *s = b;
    float *d = bt;
    for (int o = 0; o < out; o++)
      for (int r = 0; r < rank; r++) d[(size_t)r * out + o] = s[(size_t)o * rank + r];
  } else {
    const uint16_t *s = b;
    uint16_t *d = bt;
    for (int o = 0; o < out; o++)
      for (int r = 0; r < rank; r++) d[(size_t)r * out + o] = s[(size_t)o * rank + r];
  }
}
