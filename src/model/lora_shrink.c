/* lora_shrink.c - the shrink of a LoRA delta for a decode step's few rows,
 * t[n, R] = x[n, in] · Aᵀ (see lora_kernels.h).
 *
 * A decode step where every sequence has its own adapter reads each
 * adapter's A ([R, in], R·in elements in one contiguous run) once for one
 * row of x: the cost is the read. preft_gemm's rows kernels walk 4
 * interleaved weight rows (short streams the hardware prefetchers follow
 * badly) and prefetch the next group of rows, which for a 16-row A is past
 * its end; here A is read rank row by rank row, one sequential stream
 * prefetched SHRINK_AHEAD bytes ahead, with 2 (zmm) or 4 (ymm) independent
 * FMA chains per rank so the adds do not bound it. Each row of x is
 * computed alone (the group's other rows read A again, from cache), so a
 * row gets the same bits whatever group it is in.
 */
#include "model/lora_kernels.h"

#include <stdbool.h>

#include "tensor/cpu.h"

#define SHRINK_AHEAD 1024       /* bytes of A prefetched ahead of the stream */
#define SHRINK_PAIR_MIN_IN 2048 /* rank rows at least this long go two at a time */

static inline const float *row_of(const float *base, size_t stride, const int *rows, int i) {
  return base + (size_t)(rows ? rows[i] : i) * stride;
}

/* ---- plain C ------------------------------------------------------------ */

static float elem(const void *a, preft_dtype dt, size_t i) {
  if (dt == PREFT_F32) return ((const float *)a)[i];
  uint16_t h = ((const uint16_t *)a)[i];
  return dt == PREFT_BF16 ? preft_bf16_to_f32(h) : preft_f16_to_f32(h);
}

static void shrink_portable(float *t, size_t ts, const float *x, size_t xs, const int *rows, const void *a,
                            preft_dtype dt, int n, int rank, int in) {
  for (int i = 0; i < n; i++) {
    const float *xi = row_of(x, xs, rows, i);
    for (int r = 0; r < rank; r++) {
      float s = 0;
      for (int k = 0; k < in; k++) s += xi[k] * elem(a, dt, (size_t)r * in + k);
      t[(size_t)i * ts + r] = s;
    }
  }
}

#if defined(__x86_64__) || defined(__i386__)
#include "tensor/load16_avx512.h"
#include "tensor/load8_avx.h"
#define HAVE_AVX_PATH 1

/* ---- AVX + FMA + F16C: 4 chains of 8 ------------------------------------ */

#define AVX_FN static __attribute__((target("avx,fma,f16c")))
#define AVX_INLINE static inline __attribute__((always_inline, target("avx,fma,f16c")))

/* ymm lanes of v summed: (lo + hi), then pairwise. */
AVX_INLINE float hsum8(__m256 v) {
  __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  return _mm_cvtss_f32(_mm_add_ss(s4, _mm_shuffle_ps(s4, s4, 1)));
}

/* RR rank rows of A (1 or 2, a constant) against one row of x: RR
 * sequential streams, 4 chains of 8 per rank row. */
AVX_INLINE void shrink_avx_ranks(float *t, const float *xi, const void *a, preft_dtype dt, int r, int in,
                                 bool prefetch, const int RR) {
  const size_t es = preft_dtype_size(dt);
  __m256 acc[2][4];
#pragma GCC unroll 2
  for (int q = 0; q < RR; q++)
#pragma GCC unroll 4
    for (int v = 0; v < 4; v++) acc[q][v] = _mm256_setzero_ps();
  int k = 0;
  for (; k + 32 <= in; k += 32) {
#pragma GCC unroll 2
    for (int q = 0; q < RR; q++) {
      const size_t at = (size_t)(r + q) * in + k;
      if (prefetch)
        for (size_t b = 0; b < 32 * es; b += 64)
          __builtin_prefetch((const char *)a + at * es + SHRINK_AHEAD + b, 0, 3);
#pragma GCC unroll 4
      for (int v = 0; v < 4; v++)
        acc[q][v] =
            _mm256_fmadd_ps(_mm256_loadu_ps(xi + k + 8 * v), preft_load8_avx(a, dt, at + 8 * v), acc[q][v]);
    }
  }
  for (; k + 8 <= in; k += 8)
#pragma GCC unroll 2
    for (int q = 0; q < RR; q++)
      acc[q][0] = _mm256_fmadd_ps(_mm256_loadu_ps(xi + k), preft_load8_avx(a, dt, (size_t)(r + q) * in + k),
                                  acc[q][0]);
#pragma GCC unroll 2
  for (int q = 0; q < RR; q++) {
    float s = hsum8(_mm256_add_ps(_mm256_add_ps(acc[q][0], acc[q][1]), _mm256_add_ps(acc[q][2], acc[q][3])));
    for (int kk = k; kk < in; kk++) s += xi[kk] * elem(a, dt, (size_t)(r + q) * in + kk);
    t[r + q] = s;
  }
}

AVX_INLINE void shrink_avx_body(float *t, size_t ts, const float *x, size_t xs, const int *rows,
                                const void *a, preft_dtype dt, int n, int rank, int in) {
  for (int i = 0; i < n; i++) {
    const float *xi = row_of(x, xs, rows, i);
    float *ti = t + (size_t)i * ts;
    int r = 0;
    if (in >= SHRINK_PAIR_MIN_IN)
      for (; r + 2 <= rank; r += 2) shrink_avx_ranks(ti, xi, a, dt, r, in, i == 0, 2);
    for (; r < rank; r++) shrink_avx_ranks(ti, xi, a, dt, r, in, i == 0, 1);
  }
}

AVX_FN void shrink_avx_f32(float *t, size_t ts, const float *x, size_t xs, const int *rows, const void *a,
                           int n, int rank, int in) {
  shrink_avx_body(t, ts, x, xs, rows, a, PREFT_F32, n, rank, in);
}
AVX_FN void shrink_avx_f16(float *t, size_t ts, const float *x, size_t xs, const int *rows, const void *a,
                           int n, int rank, int in) {
  shrink_avx_body(t, ts, x, xs, rows, a, PREFT_F16, n, rank, in);
}
AVX_FN void shrink_avx_bf16(float *t, size_t ts, const float *x, size_t xs, const int *rows, const void *a,
                            int n, int rank, int in) {
  shrink_avx_body(t, ts, x, xs, rows, a, PREFT_BF16, n, rank, in);
}

/* ---- AVX-512: 2 chains of 16, the tail under a mask --------------------- */

#define Z_TGT "avx512f,avx512bw,avx512vl,avx2,fma,f16c"
#define Z_FN static __attribute__((target(Z_TGT)))
#define Z_INLINE static inline __attribute__((always_inline, target(Z_TGT)))

Z_INLINE void shrink_z_body(float *t, size_t ts, const float *x, size_t xs, const int *rows, const void *a,
                            preft_dtype dt, int n, int rank, int in) {
  const size_t es = preft_dtype_size(dt);
  for (int i = 0; i < n; i++) {
    const float *xi = row_of(x, xs, rows, i);
    for (int r = 0; r < rank; r++) {
      const size_t at = (size_t)r * in;
      const char *pf = (const char *)a + at * es + SHRINK_AHEAD;
      __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
      int k = 0;
      for (; k + 32 <= in; k += 32) {
        if (i == 0)
          for (size_t b = 0; b < 32 * es; b += 64) __builtin_prefetch(pf + (size_t)k * es + b, 0, 3);
        acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(xi + k), preft_load16_avx512(a, dt, at + k, 0xFFFF), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(xi + k + 16), preft_load16_avx512(a, dt, at + k + 16, 0xFFFF),
                               acc1);
      }
      for (; k < in; k += 16) {
        const int left = in - k;
        const __mmask16 m = preft_mask16_first(left);
        acc0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, xi + k), preft_load16_avx512(a, dt, at + k, m), acc0);
      }
      t[(size_t)i * ts + r] = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
    }
  }
}

Z_FN void shrink_z_f16(float *t, size_t ts, const float *x, size_t xs, const int *rows, const void *a, int n,
                       int rank, int in) {
  shrink_z_body(t, ts, x, xs, rows, a, PREFT_F16, n, rank, in);
}
Z_FN void shrink_z_bf16(float *t, size_t ts, const float *x, size_t xs, const int *rows, const void *a, int n,
                        int rank, int in) {
  shrink_z_body(t, ts, x, xs, rows, a, PREFT_BF16, n, rank, in);
}

typedef void (*shrink_fn)(float *t, size_t ts, const float *x, size_t xs, const int *rows, const void *a,
                          int n, int rank, int in);
static shrink_fn by_dtype(preft_dtype dt, shrink_fn f32, shrink_fn f16, shrink_fn bf16) {
  return dt == PREFT_F32 ? f32 : dt == PREFT_F16 ? f16 : bf16;
}
#endif

void preft_lora_shrink_rows(float *t, size_t t_stride, const float *x, size_t x_stride, const int *rows,
                            const void *a, preft_dtype adt, int n, int rank, int in) {
  if (n <= 0 || rank <= 0) return;
#ifdef HAVE_AVX_PATH
  if (preft_cpu_path() >= PREFT_CPU_AVX512_BF16) {
    by_dtype(adt, shrink_avx_f32, shrink_z_f16, shrink_z_bf16)(t, t_stride, x, x_stride, rows, a, n, rank,
                                                               in);
    return;
  }
  if (preft_cpu_path() >= PREFT_CPU_AVX_FMA) {
    by_dtype(adt, shrink_avx_f32, shrink_avx_f16, shrink_avx_bf16)(t, t_stride, x, x_stride, rows, a, n, rank,
                                                                   in);
    return;
  }
#endif
  shrink_portable(t, t_stride, x, x_stride, rows, a, adt, n, rank, in);
}
