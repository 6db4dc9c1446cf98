/* roofline.c - peak FMA rate, memory read bandwidth and square-SGEMM rate
 * of this machine (see roofline.h). Each measurement splits into many equal
 * tasks handed out by the pool, so two threads balance even if one starts
 * late, and reports total work over wall time for the best repetition. */
#include "tensor/roofline.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/timer.h"
#include "tensor/cpu.h"
#include "tensor/gemm.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HAVE_AVX_ROOFLINE 1
#endif

/* Runs fn over n_tasks on the pool repeatedly for about `seconds` (at least
 * `min_reps` times) and returns the shortest wall time of one run. */
static double best_time(preft_pool *pool, int n_tasks, preft_task_fn fn, void *ctx, double seconds,
                        int min_reps) {
  double best = 1e30, start = preft_now();
  for (int rep = 0; rep < min_reps || preft_now() - start < seconds; rep++) {
    double t0 = preft_now();
    preft_pool_run(pool, n_tasks, fn, ctx);
    double t = preft_now() - t0;
    if (t < best) best = t;
  }
  return best;
}

/* ---- FMA peak ------------------------------------------------------------ */

#define FMA_ITERS 65536 /* per task; 12 registers × 8 lanes × 2 FLOP each */

typedef struct {
  int avx; /* 0: portable, 1: AVX + FMA (ymm), 2: AVX-512 (zmm, the avx512 path's FP32 kernels) */
  float sink[1024];
} fma_ctx;

#ifdef HAVE_AVX_ROOFLINE
/* 12 independent dependency chains cover the FMA latency (4-5 cycles) times
 * two FMA pipes. a = a·b + c with b < 1 converges to c/(1-b): no overflow, no
 * denormals, and the compiler cannot fold it away. */
__attribute__((target("avx,fma"))) static float fma_loop_avx(long iters, float seed) {
  __m256 b = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-6f);
  __m256 a0 = _mm256_set1_ps(seed), a1 = _mm256_add_ps(a0, b), a2 = _mm256_add_ps(a1, b),
         a3 = _mm256_add_ps(a2, b);
  __m256 a4 = _mm256_add_ps(a3, b), a5 = _mm256_add_ps(a4, b), a6 = _mm256_add_ps(a5, b),
         a7 = _mm256_add_ps(a6, b);
  __m256 a8 = _mm256_add_ps(a7, b), a9 = _mm256_add_ps(a8, b), a10 = _mm256_add_ps(a9, b),
         a11 = _mm256_add_ps(a10, b);
  for (long i = 0; i < iters; i++) {
    a0 = _mm256_fmadd_ps(a0, b, c), a1 = _mm256_fmadd_ps(a1, b, c), a2 = _mm256_fmadd_ps(a2, b, c);
    a3 = _mm256_fmadd_ps(a3, b, c), a4 = _mm256_fmadd_ps(a4, b, c), a5 = _mm256_fmadd_ps(a5, b, c);
    a6 = _mm256_fmadd_ps(a6, b, c), a7 = _mm256_fmadd_ps(a7, b, c), a8 = _mm256_fmadd_ps(a8, b, c);
    a9 = _mm256_fmadd_ps(a9, b, c), a10 = _mm256_fmadd_ps(a10, b, c), a11 = _mm256_fmadd_ps(a11, b, c);
  }
  __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                           _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
  s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0] + out[7];
}

/* 12 independent chains on zmm: FP32 FMAs (dot 0; 16 lanes, twice the FLOP
 * of the ymm loop: on cores that split a 512-bit FMA in two it measures the
 * ymm loop's GFLOP/s, on cores with full-width FMA units twice), or
 * vdpbf16ps (dot 1: 32 BF16 products added in pairs into 16 FP32 lanes,
 * 64 FLOP; products of 2^-10 · 2^-10 grow the sums by 2^-19 a step, no
 * overflow in FMA_ITERS steps). The avx512 path has AVX512_BF16. */
__attribute__((target("avx512f,avx512bw,avx512bf16"))) static float zmm_loop(long iters, float seed,
                                                                             int dot) {
  __m512 b = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-6f);
  __m512bh h = (__m512bh)_mm512_set1_epi16((short)0x3A80); /* 2^-10 in BF16 */
  __m512 a[12];
  for (int j = 0; j < 12; j++) a[j] = _mm512_set1_ps(seed + (float)j);
  if (dot)
    for (long i = 0; i < iters; i++)
#pragma GCC unroll 12
      for (int j = 0; j < 12; j++) a[j] = _mm512_dpbf16_ps(a[j], h, h);
  else
    for (long i = 0; i < iters; i++)
#pragma GCC unroll 12
      for (int j = 0; j < 12; j++) a[j] = _mm512_fmadd_ps(a[j], b, c);
  __m512 s = a[0];
  for (int j = 1; j < 12; j++) s = _mm512_add_ps(s, a[j]);
  return _mm512_reduce_add_ps(s);
}
#endif

/* The portable path: 96 independent multiply-adds per iteration, the same
 * FLOP count as the AVX loop, in whatever form the compiler emits. */
static float fma_loop_portable(long iters, float seed) {
  float a[96];
  for (int j = 0; j < 96; j++) a[j] = seed + (float)j;
  for (long i = 0; i < iters; i++)
    for (int j = 0; j < 96; j++) a[j] = a[j] * 0.999999f + 1e-6f;
  float s = 0;
  for (int j = 0; j < 96; j++) s += a[j];
  return s;
}

static void fma_task(void *p, int task, int thread) {
  fma_ctx *c = p;
  float seed = (float)task * 1e-3f;
#ifdef HAVE_AVX_ROOFLINE
  if (c->avx == 2) {
    c->sink[task & 1023] = zmm_loop(FMA_ITERS, seed, 0);
    return;
  }
  if (c->avx) {
    c->sink[task & 1023] = fma_loop_avx(FMA_ITERS, seed);
    return;
  }
#endif
  c->sink[task & 1023] = fma_loop_portable(FMA_ITERS, seed);
}

double preft_roofline_fma_gflops(preft_pool *pool, double seconds) {
  preft_cpu_path_kind path = preft_cpu_path();
  fma_ctx c = {.avx = path >= PREFT_CPU_AVX512_BF16 ? 2 : path >= PREFT_CPU_AVX_FMA};
  int tasks = 16 * preft_pool_size(pool);
  double t = best_time(pool, tasks, fma_task, &c, seconds, 3);
  return (double)tasks * FMA_ITERS * (c.avx == 2 ? 192 : 96) * 2 / t * 1e-9;
}

/* ---- BF16 dot-product peak ---------------------------------------------- */

#ifdef HAVE_AVX_ROOFLINE
static void dp_task(void *p, int task, int thread) {
  fma_ctx *c = p;
  c->sink[task & 1023] = zmm_loop(FMA_ITERS, (float)task * 1e-3f, 1);
}
#endif

double preft_roofline_bf16dot_gflops(preft_pool *pool, double seconds) {
#ifdef HAVE_AVX_ROOFLINE
  if (preft_cpu_path() < PREFT_CPU_AVX512_BF16) return 0;
  fma_ctx c = {.avx = 1};
  int tasks = 16 * preft_pool_size(pool);
  double t = best_time(pool, tasks, dp_task, &c, seconds, 3);
  return (double)tasks * FMA_ITERS * 12 * 64 / t * 1e-9;
#else
  (void)pool, (void)seconds;
  return 0;
#endif
}

double preft_roofline_matmul_gflops(preft_pool *pool, preft_dtype wdt, double seconds) {
  if (wdt == PREFT_BF16 && preft_matmul_get_precision() == PREFT_MATMUL_BF16) {
    double dp = preft_roofline_bf16dot_gflops(pool, seconds);
    if (dp > 0) return dp;
  }
  return preft_roofline_fma_gflops(pool, seconds);
}

/* ---- read bandwidth ------------------------------------------------------ */

#define READ_CHUNK ((size_t)1 << 20) /* bytes per task */

typedef struct {
  const char *buf;
  size_t bytes;
  int avx, streams;
  uint32_t *folds; /* one per task: keeps the loads alive */
} read_ctx;

/* XOR-folds the bytes (a bitwise op: any bit pattern, even NaNs or
 * denormals of reinterpreted half weights, costs the same). Two access
 * patterns, because neither is fastest in every state of a shared machine:
 * one sequential stream, and four interleaved streams (quarters of the
 * chunk) with software prefetch into L2, as the decode GEMM reads. */
#ifdef HAVE_AVX_ROOFLINE
__attribute__((target("avx"))) static uint32_t fold_avx(const char *p, size_t n, int streams) {
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  size_t i = 0;
  if (streams) {
    size_t q = n / 4 & ~(size_t)63;
    for (; i < q; i += 64) {
      for (int j = 0; j < 4; j++) {
        const char *a = p + (size_t)j * q + i;
        _mm_prefetch(a + 1024, _MM_HINT_T1);
        s0 = _mm256_xor_ps(s0, _mm256_loadu_ps((const float *)(const void *)a));
        s1 = _mm256_xor_ps(s1, _mm256_loadu_ps((const float *)(const void *)(a + 32)));
      }
    }
    i = 4 * q;
  }
  for (; i + 128 <= n; i += 128) {
    s0 = _mm256_xor_ps(s0, _mm256_loadu_ps((const float *)(const void *)(p + i)));
    s1 = _mm256_xor_ps(s1, _mm256_loadu_ps((const float *)(const void *)(p + i + 32)));
    s2 = _mm256_xor_ps(s2, _mm256_loadu_ps((const float *)(const void *)(p + i + 64)));
    s3 = _mm256_xor_ps(s3, _mm256_loadu_ps((const float *)(const void *)(p + i + 96)));
  }
  uint32_t out[8], t = 0;
  _mm256_storeu_ps((float *)(void *)out, _mm256_xor_ps(_mm256_xor_ps(s0, s1), _mm256_xor_ps(s2, s3)));
  for (int j = 0; j < 8; j++) t ^= out[j];
  for (; i < n; i++) t ^= (uint8_t)p[i];
  return t;
}
#endif

static uint32_t fold_portable(const char *p, size_t n) {
  uint64_t s[8] = {0}, t = 0;
  size_t i = 0;
  for (; i + 64 <= n; i += 64)
    for (int j = 0; j < 8; j++) {
      uint64_t v;
      memcpy(&v, p + i + 8 * j, 8);
      s[j] ^= v;
    }
  for (int j = 0; j < 8; j++) t ^= s[j];
  for (; i < n; i++) t ^= (uint8_t)p[i];
  return (uint32_t)(t ^ (t >> 32));
}

static void read_task(void *p, int task, int thread) {
  read_ctx *c = p;
  size_t off = (size_t)task * READ_CHUNK, len = c->bytes - off < READ_CHUNK ? c->bytes - off : READ_CHUNK;
#ifdef HAVE_AVX_ROOFLINE
  if (c->avx) {
    c->folds[task] = fold_avx(c->buf + off, len, c->streams);
    return;
  }
#endif
  c->folds[task] = fold_portable(c->buf + off, len);
}

double preft_roofline_read_buffer_gbs(preft_pool *pool, const void *buf, size_t bytes, double seconds) {
  int tasks = (int)((bytes + READ_CHUNK - 1) / READ_CHUNK);
  if (tasks == 0) return 0;
  read_ctx c = {.buf = buf,
                .bytes = bytes,
                .avx = preft_cpu_path() >= PREFT_CPU_AVX_FMA,
                .folds = preft_xcalloc((size_t)tasks, sizeof(uint32_t))};
  double t = best_time(pool, tasks, read_task, &c, c.avx ? seconds / 2 : seconds, 2);
  if (c.avx) { /* the better of the two access patterns */
    c.streams = 1;
    double t2 = best_time(pool, tasks, read_task, &c, seconds / 2, 2);
    if (t2 < t) t = t2;
  }
  free(c.folds);
  return (double)bytes / t * 1e-9;
}

void *preft_roofline_probe_alloc(size_t *bytes) {
  *bytes = (*bytes + 63) & ~(size_t)63;
  char *buf = aligned_alloc(64, *bytes);
  PREFT_ASSERT(buf);
  memset(buf, 1, *bytes); /* every page mapped */
  return buf;
}

double preft_roofline_read_gbs(preft_pool *pool, size_t bytes, double seconds) {
  void *buf = preft_roofline_probe_alloc(&bytes);
  double gbs = preft_roofline_read_buffer_gbs(pool, buf, bytes, seconds);
  free(buf);
  return gbs;
}

double preft_roofline_bandwidth_gbs(preft_pool *pool, double seconds) {
  return preft_roofline_read_gbs(pool, PREFT_ROOFLINE_READ_BYTES, seconds);
}

/* ---- preft_gemm on a square FP32 problem --------------------------------- */

double preft_roofline_sgemm_gflops(preft_pool *pool, int n) {
  PREFT_ASSERT(n > 0);
  size_t nn = (size_t)n * (size_t)n;
  float *x = preft_xmalloc(nn * sizeof(float)), *w = preft_xmalloc(nn * sizeof(float));
  float *y = preft_xmalloc(nn * sizeof(float));
  uint32_t r = 12345;
  for (size_t i = 0; i < nn; i++) {
    r = r * 1664525u + 1013904223u;
    x[i] = (float)(r >> 8) * 0x1p-24f - 0.5f;
    w[i] = (float)((r >> 4) & 0xffff) * 0x1p-16f - 0.5f;
  }
  preft_gemm(pool, y, n, x, n, w, PREFT_F32, n, n, n, 0); /* warm caches and threads */
  double best = 1e30, start = preft_now();
  for (int rep = 0; rep < 3 || preft_now() - start < 0.5; rep++) {
    double t0 = preft_now();
    preft_gemm(pool, y, n, x, n, w, PREFT_F32, n, n, n, 0);
    double t = preft_now() - t0;
    if (t < best) best = t;
  }
  free(x), free(w), free(y);
  return 2.0 * (double)nn * (double)n / best * 1e-9;
}
