/* gemm_train.c - backward-pass matrix products: FP32 through
 * preft_gemm_kmajor, BF16 through preft_gemm_bf16_kmajor (see
 * gemm_train.h). */
#include "tensor/gemm_train.h"

#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/scratch.h"
#include "tensor/cpu.h"
#include "tensor/dtype.h"
#include "tensor/gemm.h"
#include "tensor/transpose_kern.h"

/* Transpose cache tiles: a task's band of TR_TILE input columns (each input
 * row's piece 512 bytes, 8 lines read in a run) taken TR_TILE rows at a
 * time. 32 × 32 tiles (128-byte pieces) ran 13-18% slower in a training
 * pass, call by call (docs/PERFORMANCE.md). */
#define TR_TILE 128
/* Rows of dy/x per FP32 dW block: the inner dimension of each GEMM. 512,
 * one K block where the packed products take 512 features a block
 * (gemm.c): dW is read and written once per block, and 256-row blocks
 * made the width-512 training pass 3% slower (docs/PERFORMANCE.md). */
#define DW_ROWS 512
/* BF16 dW blocks: up to DW_ROWS_BF16 rows while dyᵀ's block holds at most
 * DW_BF16_ELEMS elements (32 MiB), else DW_ROWS: fewer passes over dW and
 * fewer, longer transposes (256-row blocks took 1-7% longer,
 * docs/PERFORMANCE.md). */
#define DW_ROWS_BF16 1024
#define DW_BF16_ELEMS ((size_t)1 << 24)
/* The BF16 forward of an FP32 W: from this many rows of x on, each panel
 * of W is rounded as it is packed for the tile (preft_gemm_bf16_f32w_multi),
 * 1.02-1.33x rounding W into a copy for the rows kernel at 16-512 rows on
 * the training products' shapes (bench_train_products); below it the copy and
 * the rows kernel, which read W once whatever N. */
#define BF16_PACKED_MIN_ROWS 16

typedef struct {
  float *out;
  const float *in;
  int in_stride, rows, cols;
  int simd; /* the 8 × 8 register tiles of transpose_kern.h on this CPU */
} tr_job;

/* out[c][r] = in[r][c] for r in [r0, r1), c in [c0, c1), element by element */
static void tr_scalar(const tr_job *j, int r0, int r1, int c0, int c1) {
  size_t is = (size_t)j->in_stride, rows = (size_t)j->rows;
  for (int c = c0; c < c1; c++)
    for (int r = r0; r < r1; r++) j->out[(size_t)c * rows + (size_t)r] = j->in[(size_t)r * is + (size_t)c];
}

/* One band of TR_TILE input columns (= output rows), TR_TILE rows at a time. */
static void tr_task(void *p, int task, int thread) {
  (void)thread;
  const tr_job *j = p;
  int c0 = task * TR_TILE, c1 = c0 + TR_TILE < j->cols ? c0 + TR_TILE : j->cols;
  size_t is = (size_t)j->in_stride, rows = (size_t)j->rows;
  for (int r0 = 0; r0 < j->rows; r0 += TR_TILE) {
    int r1 = r0 + TR_TILE < j->rows ? r0 + TR_TILE : j->rows, c = c0;
#ifdef PREFT_HAVE_TRANSPOSE8
    for (; j->simd && c + 8 <= c1; c += 8) {
      int r = r0;
      for (; r + 8 <= r1; r += 8)
        preft_transpose8_avx(j->out + (size_t)c * rows + (size_t)r, rows, j->in + (size_t)r * is + (size_t)c,
                             is);
      tr_scalar(j, r, r1, c, c + 8);
    }
#endif
    tr_scalar(j, r0, r1, c, c1);
  }
}

void preft_transpose(preft_pool *pool, float *out, const float *in, int in_stride, int rows, int cols) {
  /* an exact copy: how it is split does not change any result */
  tr_job j = {out, in, in_stride, rows, cols, preft_cpu_path() >= PREFT_CPU_AVX_FMA};
  int tasks = (cols + TR_TILE - 1) / TR_TILE;
  if ((size_t)rows * (size_t)cols < 65536) { /* small: on the calling thread */
    for (int task = 0; task < tasks; task++) tr_task(&j, task, 0);
  } else {
    preft_pool_run(pool, tasks, tr_task, &j);
  }
}

typedef struct {
  uint16_t *out;
  const float *in;
  size_t n;
} round_job;

#define ROUND_CHUNK 16384 /* elements per rounding task */

static void round_task(void *p, int task, int thread) {
  const round_job *j = p;
  size_t i0 = (size_t)task * ROUND_CHUNK, i1 = i0 + ROUND_CHUNK < j->n ? i0 + ROUND_CHUNK : j->n;
#ifdef PREFT_HAVE_TRANSPOSE8
  if (preft_cpu_path() >= PREFT_CPU_AVX512_BF16) { /* as the BF16 transposes round (transpose_avx.c) */
    preft_round_bf16_avx512(j->out + i0, j->in + i0, i1 - i0);
    return;
  }
#endif
  for (size_t i = i0; i < i1; i++) j->out[i] = preft_f32_to_bf16(j->in[i]);
}

void preft_round_bf16(preft_pool *pool, uint16_t *out, const float *in, size_t n) {
  round_job j = {out, in, n};
  int tasks = (int)((n + ROUND_CHUNK - 1) / ROUND_CHUNK);
  if (tasks <= 1) {
    if (n) round_task(&j, 0, 0);
  } else {
    preft_pool_run(pool, tasks, round_task, &j);
  }
}

/* The BF16 forward of FP32 weights where the CPU has vdpbf16ps: from
 * BF16_PACKED_MIN_ROWS rows each W's panels rounded as they are packed,
 * below it each W rounded into a copy (one block, bf16(W_i) [M_i, K] after
 * the one before) for the rows kernel; x rounded once either way. */
static void bf16_forward(preft_pool *pool, const float *x, int x_stride, int n, int k,
                         const preft_gemm_out *outs, int n_outs, int accumulate) {
  if (n >= BF16_PACKED_MIN_ROWS) {
    preft_gemm_bf16_f32w_multi(pool, x, x_stride, n, k, outs, n_outs, accumulate);
    return;
  }
  size_t at[PREFT_GEMM_MULTI_MAX + 1] = {0}; /* where each W's copy starts */
  for (int i = 0; i < n_outs; i++) at[i + 1] = at[i] + (size_t)(outs[i].m > 0 ? outs[i].m : 0) * (size_t)k;
  uint16_t *wb = preft_scratch_get(sizeof(uint16_t) * (at[n_outs] > 0 ? at[n_outs] : 1));
  preft_gemm_out ob[PREFT_GEMM_MULTI_MAX];
  for (int i = 0; i < n_outs; i++) {
    preft_round_bf16(pool, wb + at[i], outs[i].w, at[i + 1] - at[i]);
    ob[i] = outs[i];
    ob[i].w = wb + at[i];
    ob[i].wdt = PREFT_BF16;
  }
  preft_gemm_bf16_multi(pool, x, x_stride, n, k, ob, n_outs, accumulate);
  preft_scratch_put(wb);
}

void preft_train_gemm(preft_pool *pool, preft_matmul_precision prec, float *y, int y_stride, const float *x,
                      int x_stride, const float *w, int n, int k, int m, int accumulate) {
  if (prec != PREFT_MATMUL_BF16) {
    preft_gemm(pool, y, y_stride, x, x_stride, w, PREFT_F32, n, k, m, accumulate);
    return;
  }
  if (n <= 0 || m <= 0) return;
  if (k > 0 && preft_gemm_bf16_native()) {
    preft_gemm_out out = {.y = y, .y_stride = y_stride, .w = w, .wdt = PREFT_F32, .m = m};
    bf16_forward(pool, x, x_stride, n, k, &out, 1, accumulate);
    return;
  }
  /* emulation (preft_gemm_bf16's), or no features */
  uint16_t *wb =
      preft_scratch_get(sizeof(uint16_t) * (size_t)m * (size_t)(k > 0 ? k : 1)); /* bf16(W) [M, K] */
  preft_round_bf16(pool, wb, w, (size_t)m * (size_t)k);
  preft_gemm_bf16(pool, y, y_stride, x, x_stride, wb, n, k, m, accumulate);
  preft_scratch_put(wb);
}

void preft_train_gemm_multi(preft_pool *pool, preft_matmul_precision prec, const float *x, int x_stride,
                            int n, int k, const preft_gemm_out *outs, int n_outs) {
  PREFT_ASSERT(n_outs <= PREFT_GEMM_MULTI_MAX);
  int all_f32 = 1;
  for (int i = 0; i < n_outs; i++) {
    PREFT_ASSERT(!outs[i].epi);
    all_f32 &= outs[i].wdt == PREFT_F32;
  }
  if (prec != PREFT_MATMUL_BF16) {
    preft_gemm_multi(pool, x, x_stride, n, k, outs, n_outs, 0);
  } else if (all_f32 && preft_gemm_bf16_native() && n > 0 && k > 0) {
    bf16_forward(pool, x, x_stride, n, k, outs, n_outs, 0);
  } else {
    for (int i = 0; i < n_outs; i++) {
      const preft_gemm_out *o = &outs[i];
      if (o->wdt == PREFT_F32)
        preft_train_gemm(pool, prec, o->y, o->y_stride, x, x_stride, o->w, n, k, o->m, 0);
      else
        preft_gemm(pool, o->y, o->y_stride, x, x_stride, o->w, o->wdt, n, k, o->m, 0);
    }
  }
}

/* y[N,M] (+)= xt[K,N]ᵀ · wt[K,M]: preft_gemm_kmajor_xt where the kernels
 * read x k-major, else through a transposed copy of xt, DW_ROWS features
 * at a time (the same bits). */
void preft_gemm_tn(preft_pool *pool, float *y, int y_stride, const float *xt, int xt_stride, const float *wt,
                   int wt_stride, int n, int k, int m, int accumulate) {
  if (preft_gemm_kmajor_xt(pool, y, y_stride, xt, xt_stride, wt, wt_stride, n, k, m, accumulate)) return;
  if (k <= 0) { /* no features: y zeroed unless accumulating */
    preft_gemm_kmajor(pool, y, y_stride, xt, 0, wt, wt_stride, n, 0, m, accumulate);
    return;
  }
  int kb = k < DW_ROWS ? k : DW_ROWS;
  float *x = preft_scratch_get(sizeof(float) * (size_t)n * (size_t)kb); /* x block [N, kb] */
  for (int k0 = 0; k0 < k; k0 += DW_ROWS) {
    int kn = k - k0 < DW_ROWS ? k - k0 : DW_ROWS;
    preft_transpose(pool, x, xt + (size_t)k0 * (size_t)xt_stride, xt_stride, kn, n);
    preft_gemm_kmajor(pool, y, y_stride, x, kn, wt + (size_t)k0 * (size_t)wt_stride, wt_stride, n, kn, m,
                      accumulate || k0 > 0);
  }
  preft_scratch_put(x);
}

/* FP32: dW += dyᵀ·x reading x k-major and dy as dyᵀ (preft_gemm_tn: no
 * copy on AVX-512), then dx (+)= dy·W reading W k-major: no transpose of W
 * or x (preft_gemm_kmajor). */
static void dw_dx_f32(preft_pool *pool, float *dw, float *dx, int dx_stride, int accumulate, const float *dy,
                      int dy_stride, const float *x, int x_stride, const float *w, int n, int m, int k) {
  /* dW[M,K] += dyᵀ[M,N] · x[N,K] */
  if (dw) preft_gemm_tn(pool, dw, k, dy, dy_stride, x, x_stride, m, n, k, 1);
  /* dx[N,K] (+)= dy[N,M] · W[M,K] */
  if (dx) preft_gemm_kmajor(pool, dx, dx_stride, dy, dy_stride, w, k, n, m, k, accumulate);
}

/* dyᵀ's block in the pair layout of preft_gemm_bf16_kmajor_pairs: out[q]
 * (xpair elements apart) holds rows 2q and 2q+1 of in[rows, cols] (rows
 * in_stride apart) rounded and interleaved, the second row of an odd last
 * pair zero. Reads dy as stored, two rows at a time: no transpose. With
 * rows_out, the same rows also rounded as rows of kp (dx's x, the layout
 * of preft_gemm_bf16_kmajor's xb), from the same reads. */
typedef struct {
  uint16_t *out, *rows_out;
  const float *in;
  size_t in_stride, xpair, kp;
  int rows, cols;
} pairs_job;

#define PAIRS_MIN_WORK 65536 /* elements per task, at least, when the pool shares the rounding */

static void pairs_range(void *p, int q0, int q1) {
  const pairs_job *j = p;
  for (int q = q0; q < q1; q++) {
    const float *a = j->in + (size_t)(2 * q) * j->in_stride,
                *b = 2 * q + 1 < j->rows ? a + j->in_stride : NULL;
    uint16_t *o = j->out + (size_t)q * j->xpair,
             *ra = j->rows_out ? j->rows_out + (size_t)(2 * q) * j->kp : NULL;
    uint16_t *rb = ra && b ? ra + j->kp : NULL;
#ifdef PREFT_HAVE_TRANSPOSE8
    if (preft_cpu_path() >= PREFT_CPU_AVX512_BF16) { /* as the BF16 tile rounds */
      preft_pair_rows_bf16_avx512(o, ra, rb, j->kp, a, b, (size_t)j->cols);
      continue;
    }
#endif
    for (int c = 0; c < j->cols; c++) {
      o[2 * c] = preft_f32_to_bf16(a[c]);
      o[2 * c + 1] = b ? preft_f32_to_bf16(b[c]) : 0;
    }
    for (size_t c = 0; ra && c < j->kp; c++) {
      ra[c] = c < (size_t)j->cols ? o[2 * c] : 0;
      if (rb) rb[c] = c < (size_t)j->cols ? o[2 * c + 1] : 0;
    }
  }
}

void preft_round_pairs_bf16(preft_pool *pool, uint16_t *out, size_t xpair, uint16_t *rows_out, size_t kp,
                            const float *in, int in_stride, int rows, int cols) {
  pairs_job j = {out, rows_out, in, (size_t)in_stride, xpair, kp, rows, cols};
  preft_pool_run_rows(pool, (rows + 1) / 2, 2 * (size_t)cols, PAIRS_MIN_WORK, pairs_range, &j);
}

/* BF16: dW += dyᵀ·x over blocks of rows (dw NULL: none; DW_ROWS_BF16)
 * and then dx (+)= dy·W (dx NULL: none), through preft_gemm_bf16_kmajor:
 * x and W are read as stored (rounded as their panels are packed), and dy
 * is read once and rounded into two copies: dyᵀ in the pair layout, two
 * rows of dy at a time (preft_gemm_bf16_kmajor_pairs), and dy's rows for
 * dx. */
static void dw_dx_bf16(preft_pool *pool, float *dw, float *dx, int dx_stride, int accumulate, const float *dy,
                       int dy_stride, const float *x, int x_stride, const float *w, int n, int m, int k) {
  int rows = (size_t)m * DW_ROWS_BF16 <= DW_BF16_ELEMS ? DW_ROWS_BF16 : DW_ROWS;
  int nb = n < rows ? n : rows;
  size_t xpair = 2 * (size_t)m, kp = ((size_t)m + 31) / 32 * 32;
  /* bf16(dyᵀ) in pairs [nb/2 (rounded up)][M][2]; bf16(dy) [N, kp] */
  uint16_t *dyp = dw ? preft_scratch_get(sizeof(uint16_t) * xpair * (size_t)((nb + 1) / 2)) : NULL;
  uint16_t *dyr = dw && dx ? preft_scratch_get(sizeof(uint16_t) * kp * (size_t)n) : NULL;
  for (int r0 = 0; dw && r0 < n; r0 += rows) {
    int rn = n - r0 < rows ? n - r0 : rows;
    preft_round_pairs_bf16(pool, dyp, xpair, dyr ? dyr + (size_t)r0 * kp : NULL, kp,
                           dy + (size_t)r0 * (size_t)dy_stride, dy_stride, rn, m);
    /* dW[M,K] += dyᵀ[M,rn] · x[r0 : r0+rn, K] */
    preft_gemm_bf16_kmajor_pairs(pool, dw, k, dyp, xpair, x + (size_t)r0 * (size_t)x_stride, x_stride, m, rn,
                                 k, 1);
  }
  /* dx[N,K] (+)= dy[N,M] · W[M,K] */
  if (dx)
    preft_gemm_bf16_kmajor(pool, dx, dx_stride, dyr ? NULL : dy, dy_stride, dyr, w, k, n, m, k, accumulate);
  preft_scratch_put(dyr);
  preft_scratch_put(dyp);
}

static void dw_dx(preft_pool *pool, preft_matmul_precision prec, float *dw, float *dx, int dx_stride,
                  int accumulate, const float *dy, int dy_stride, const float *x, int x_stride,
                  const float *w, int n, int m, int k) {
  if (n <= 0) return;
  if (prec == PREFT_MATMUL_BF16)
    dw_dx_bf16(pool, dw, dx, dx_stride, accumulate, dy, dy_stride, x, x_stride, w, n, m, k);
  else
    dw_dx_f32(pool, dw, dx, dx_stride, accumulate, dy, dy_stride, x, x_stride, w, n, m, k);
}

void preft_train_gemm_dx(preft_pool *pool, preft_matmul_precision prec, float *dx, int dx_stride,
                         const float *dy, int dy_stride, const float *w, int n, int m, int k,
                         int accumulate) {
  dw_dx(pool, prec, NULL, dx, dx_stride, accumulate, dy, dy_stride, NULL, 0, w, n, m, k);
}

void preft_train_gemm_dw(preft_pool *pool, preft_matmul_precision prec, float *dw, const float *dy,
                         int dy_stride, const float *x, int x_stride, int n, int m, int k) {
  dw_dx(pool, prec, dw, NULL, 0, 0, dy, dy_stride, x, x_stride, NULL, n, m, k);
}

void preft_train_gemm_dwdx(preft_pool *pool, preft_matmul_precision prec, float *dw, float *dx, int dx_stride,
                           int accumulate, const float *dy, int dy_stride, const float *x, int x_stride,
                           const float *w, int n, int m, int k) {
  dw_dx(pool, prec, dw, dx, dx_stride, accumulate, dy, dy_stride, x, x_stride, w, n, m, k);
}

void preft_gemm_dx(preft_pool *pool, float *dx, int dx_stride, const float *dy, int dy_stride, const float *w,
                   int n, int m, int k, int accumulate) {
  preft_train_gemm_dx(pool, PREFT_MATMUL_EXACT, dx, dx_stride, dy, dy_stride, w, n, m, k, accumulate);
}

void preft_gemm_dw(preft_pool *pool, float *dw, const float *dy, int dy_stride, const float *x, int x_stride,
                   int n, int m, int k) {
  preft_train_gemm_dw(pool, PREFT_MATMUL_EXACT, dw, dy, dy_stride, x, x_stride, n, m, k);
}

void preft_gemm_dx_ref(float *dx, int dx_stride, const float *dy, int dy_stride, const float *w, int n, int m,
                       int k, int accumulate) {
  for (int i = 0; i < n; i++)
    for (int c = 0; c < k; c++) {
      double s = accumulate ? dx[(size_t)i * dx_stride + c] : 0.0;
      for (int j = 0; j < m; j++) s += (double)dy[(size_t)i * dy_stride + j] * w[(size_t)j * k + c];
      dx[(size_t)i * dx_stride + c] = (float)s;
    }
}

void preft_gemm_dw_ref(float *dw, const float *dy, int dy_stride, const float *x, int x_stride, int n, int m,
                       int k) {
  for (int j = 0; j < m; j++)
    for (int c = 0; c < k; c++) {
      double s = dw[(size_t)j * k + c];
      for (int i = 0; i < n; i++) s += (double)dy[(size_t)i * dy_stride + j] * x[(size_t)i * x_stride + c];
      dw[(size_t)j * k + c] = (float)s;
    }
}
