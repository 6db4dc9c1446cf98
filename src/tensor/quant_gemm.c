/* quant_gemm.c - preft_qgemm and preft_qgemm_dx (quant.h): picking the
 * kernel table for this CPU, quantizing x once per call, and splitting the
 * work over the pool. The kernels live in quant_portable.c and
 * quant_avx2.c (see quant_kern.h); measurements in docs/KERNELS.md.
 *
 * Forward: the M weight rows of each output are cut into about 2 ranges
 * per pool thread (handed out dynamically); decode (N <= 4) cuts the
 * outputs' rows laid end to end into one range per thread, and a thread
 * done with its range takes rows from the back of another's
 * (base/row_range.h), so that one slower stream does not hold up the
 * call. A task
 * streams its weight rows once per 4 rows of x (the kernels unpack each
 * weight block once for 4 rows); when N > 4 the range is capped so its
 * weights stay in L2 across the passes. Decode (N <= 4) therefore reads
 * every weight byte once from memory, which is the whole cost.
 *
 * Backward for x: tasks own a column range of K (whole blocks, QDX_KC
 * values) and a range of rows of dy; each dequantizes QDX_ROWS weight rows
 * of its columns at a time into an FP32 tile on its stack and adds
 * dy[:, rows] · tile into its part of dx.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/row_range.h"
#include "tensor/cpu.h"
#include "tensor/quant.h"
#include "tensor/quant_kern.h"

#define QMC 64                      /* rows of x per pass over a weight range */
#define QL2_WEIGHT_BYTES (96 << 10) /* weight bytes of a range kept in L2 across passes (N > QMC) */
#define QSERIAL_MAC 65536           /* below this many multiply-adds the caller's thread does it all */
#define QTASKS_PER_THREAD 2         /* forward, N > 4 */
#define QTASKS_DECODE 1             /* forward, N <= 4: more tasks measured slower (below) */
#define QDX_TASKS_PER_THREAD 4
#define QX_STACK 16384 /* bytes of quantized x kept on the stack (decode) */
#define QDX_KC 256     /* backward: columns per tile (a multiple of every block) */
#define QDX_ROWS 16    /* backward: weight rows per tile */

static atomic_int qlimit = 3;
static atomic_int tile_min_n = PREFT_QTILE_MIN_N;

void preft_qgemm_tile_min_n(int n) { atomic_store(&tile_min_n, n); }

void preft_qgemm_limit(int most) { atomic_store(&qlimit, most); }

const preft_quant_kernels *preft_quant_kernels_at(int level) {
  if (level == 0) return &preft_quant_portable;
#ifdef PREFT_HAVE_QUANT_AVX
  if (preft_cpu_path() < PREFT_CPU_AVX2) return NULL;
  if (level == 1) return &preft_quant_avx2;
  if (level == 2) return preft_cpu_has_avx_vnni() ? &preft_quant_avxvnni : NULL;
  if (level == 3) return preft_cpu_has_avx512_vnni() ? &preft_quant_avx512vnni : NULL;
#endif
  return NULL;
}

static const preft_quant_kernels *kernels(void) {
  for (int l = atomic_load_explicit(&qlimit, memory_order_relaxed); l > 0; l--) {
    const preft_quant_kernels *kt = preft_quant_kernels_at(l);
    if (kt) return kt;
  }
  return &preft_quant_portable;
}

bool preft_quant_layouts_native(void) {
#ifdef PREFT_HAVE_QUANT_AVX
  return kernels() == &preft_quant_avx512vnni;
#else
  return false;
#endif
}

const char *preft_qgemm_kernel_name(preft_dtype t) {
  (void)t;
  return kernels()->name;
}

static int cdiv(int a, int b) { return (a + b - 1) / b; }

typedef struct {
  preft_qrows_fn fn;
  float *y;
  size_t ys;
  const unsigned char *xq;
  size_t xqs;
  const void *w;
  size_t wrow;
  int n, k, m, accumulate, rows_per_task;
} qjob;

/* The tasks of one call: per output (first[o] is output o's first task,
 * each of its job's rows_per_task rows) or, in decode, pieces of the
 * outputs' rows laid end to end (output o's rows from start[o]), a piece
 * crossing from one output into the next (first then unused), balanced
 * among the threads (base/row_range.h). */
typedef struct {
  qjob *jobs;
  int n_jobs;
  int first[PREFT_GEMM_MULTI_MAX + 1];
  int start[PREFT_GEMM_MULTI_MAX + 1];
} qmulti;

static void run_rows(const qjob *jb, int j0, int j1);

/* Rows [g0, g1) of the outputs laid end to end. */
static void run_span(void *p, int g0, int g1) {
  const qmulti *mj = p;
  for (int o = 0; o < mj->n_jobs; o++) {
    const int lo = g0 > mj->start[o] ? g0 : mj->start[o];
    const int hi = g1 < mj->start[o + 1] ? g1 : mj->start[o + 1];
    if (lo < hi) run_rows(&mj->jobs[o], lo - mj->start[o], hi - mj->start[o]);
  }
}

static void qtask(void *p, int task, int thread) {
  (void)thread;
  const qmulti *mj = p;
  int o = 0;
  while (task >= mj->first[o + 1]) o++;
  const qjob *jb = &mj->jobs[o];
  int j0 = (task - mj->first[o]) * jb->rows_per_task;
  run_rows(jb, j0, j0 + jb->rows_per_task < jb->m ? j0 + jb->rows_per_task : jb->m);
}

/* Weight rows [j0, j1) of one output against every row of x. */
static void run_rows(const qjob *jb, int j0, int j1) {
  for (int i0 = 0; i0 < jb->n; i0 += QMC) {
    int rows = jb->n - i0 < QMC ? jb->n - i0 : QMC;
    jb->fn(jb->y + (size_t)i0 * jb->ys, jb->ys, jb->xq + (size_t)i0 * jb->xqs, jb->xqs, jb->w, jb->wrow, rows,
           jb->k, j0, j1, jb->accumulate);
  }
}

typedef struct {
  const preft_quant_kernels *kt;
  preft_qact a;
  unsigned char *dst;
  size_t dst_stride;
  const float *x;
  size_t xs;
  int k;
} qx_job;

static void quantize_rows_task(void *p, int r0, int r1) {
  const qx_job *j = p;
  j->kt->quantize_act(j->a, j->dst + (size_t)r0 * j->dst_stride, j->dst_stride, j->x + (size_t)r0 * j->xs,
                      j->xs, r1 - r0, j->k);
}

void preft_qgemm_multi(preft_pool *pool, const float *x, int x_stride, int n, int k,
                       const preft_gemm_out *outs, int n_outs, int accumulate) {
  PREFT_ASSERT(n_outs >= 1 && n_outs <= PREFT_GEMM_MULTI_MAX);
  if (n <= 0) return;
  double macs = 0;
  int need[2] = {0, 0};
  for (int o = 0; o < n_outs; o++) {
    if (outs[o].m <= 0) continue;
    PREFT_ASSERT(preft_dtype_is_quant(outs[o].wdt) && k % (int)preft_dtype_block(outs[o].wdt) == 0);
    PREFT_ASSERT(outs[o].y && outs[o].w && (n == 1 || (x_stride >= k && outs[o].y_stride >= outs[o].m)));
    need[preft_quant_act_of(outs[o].wdt)] = 1;
    macs += (double)n * k * outs[o].m;
  }
  if (macs == 0) {
    for (int o = 0; !accumulate && k <= 0 && o < n_outs; o++)
      for (int i = 0; i < n && outs[o].m > 0; i++)
        memset(outs[o].y + (size_t)i * (size_t)outs[o].y_stride, 0, (size_t)outs[o].m * sizeof(float));
    return;
  }
  const preft_quant_kernels *kt = kernels();
  int threads = macs < QSERIAL_MAC ? 1 : preft_pool_size(pool);
  /* decode reads each weight byte once and a task starts its stream cold:
   * 1 task a thread against 2, alternating call by call in the model
   * (docs/KERNELS.md), Qwen2.5-0.5B +2-4%, the small q/o matrix +6-17%,
   * Llama-3.2-1B level; 4 a thread had measured 3-5% slower than 2 */
  int want = threads == 1 ? 1 : threads * (n <= 4 ? QTASKS_DECODE : QTASKS_PER_THREAD);

  /* x quantized once per activation format */
  size_t xrow[2] = {preft_qact_row_bytes(PREFT_QACT_Q8_0, (size_t)k),
                    preft_qact_row_bytes(PREFT_QACT_Q8_K, (size_t)k)};
  size_t bytes = 0, off[2] = {0, 0};
  for (int a = 0; a < 2; a++)
    if (need[a]) {
      off[a] = bytes;
      bytes += (size_t)n * xrow[a];
    }
  unsigned char xq_stack[QX_STACK] __attribute__((aligned(64)));
  unsigned char *xq_heap = bytes > QX_STACK ? preft_xmalloc(bytes) : NULL;
  unsigned char *xq = xq_heap ? xq_heap : xq_stack;
  for (int a = 0; a < 2; a++) {
    if (!need[a]) continue;
    qx_job qj = {kt, (preft_qact)a, xq + off[a], xrow[a], x, (size_t)x_stride, k};
    if (threads == 1)
      quantize_rows_task(&qj, 0, n);
    else
      preft_pool_run_rows(pool, n, (size_t)k, 16384, quantize_rows_task, &qj);
  }

  qjob jobs[PREFT_GEMM_MULTI_MAX];
  qmulti mj = {.jobs = jobs};
  /* x laid out once per weight type for the kernels that take it so: every
   * task of the product reads the one layout (decode: a task's share of
   * the weights is small, and each task laid out all of x, e.g. 152 blocks
   * at K = 4864) */
  unsigned char *laid[PREFT_GEMM_MULTI_MAX] = {NULL};
  preft_dtype laid_t[PREFT_GEMM_MULTI_MAX];
  size_t laid_row[PREFT_GEMM_MULTI_MAX];
  int n_laid = 0;
  double m_total = 0;
  for (int o = 0; o < n_outs; o++) m_total += outs[o].m > 0 ? outs[o].m : 0;
  for (int o = 0; o < n_outs; o++) {
    if (outs[o].m <= 0) continue;
    preft_dtype t = outs[o].wdt;
    preft_qact a = preft_quant_act_of(t);
    qjob *jb = &jobs[mj.n_jobs];
    int tiled = n >= atomic_load_explicit(&tile_min_n, memory_order_relaxed) && kt->tiles[t - PREFT_Q8_0];
    const unsigned char *xq_job = xq + off[a];
    size_t xqs_job = xrow[a];
    preft_qrows_fn fn = tiled ? kt->tiles[t - PREFT_Q8_0] : kt->rows[t - PREFT_Q8_0];
    if (!tiled && kt->rows_laid[t - PREFT_Q8_0] && kt->x_layout_bytes(t, k)) {
      int l = 0;
      while (l < n_laid && laid_t[l] != t) l++;
      if (l == n_laid) {
        laid_t[l] = t;
        laid_row[l] = kt->x_layout_bytes(t, k);
        laid[l] = preft_xmalloc(laid_row[l] * (size_t)n);
        kt->x_layout(t, laid[l], xq_job, xqs_job, n, k);
        n_laid++;
      }
      fn = kt->rows_laid[t - PREFT_Q8_0];
      xq_job = laid[l];
      xqs_job = laid_row[l];
    }
    *jb = (qjob){.fn = fn,
                 .y = outs[o].y,
                 .ys = (size_t)outs[o].y_stride,
                 .xq = xq_job,
                 .xqs = xqs_job,
                 .w = outs[o].w,
                 .wrow = preft_dtype_row_bytes(t, (size_t)k),
                 .n = n,
                 .k = k,
                 .m = outs[o].m,
                 .accumulate = accumulate};
    int share = threads == 1 ? 1 : (int)(want * outs[o].m / m_total + 0.5);
    if (share < 1) share = 1;
    int rpt = cdiv(cdiv(jb->m, share), 16) * 16; /* whole tiles of 16 rows (8 on AVX2) */
    if (n > 4) { /* the kernels pass over the range once per 4 rows of x: keep its weights in L2 */
      int cap = (int)(QL2_WEIGHT_BYTES / jb->wrow) / 16 * 16;
      if (cap < 16) cap = 16;
      if (rpt > cap) rpt = cap;
    }
    jb->rows_per_task = rpt;
    mj.first[mj.n_jobs + 1] = mj.first[mj.n_jobs] + cdiv(jb->m, rpt);
    mj.start[mj.n_jobs + 1] = mj.start[mj.n_jobs] + jb->m;
    mj.n_jobs++;
  }
  if (threads > 1 && n <= 4) {
    /* decode: tasks of equal rows across the outputs (q, k, v). Per
     * output, k's and v's few rows made a task each, smaller than q's,
     * and the threads' shares came out uneven (Llama-3.2-1B's q/k/v
     * product 4-10% faster so). Equal rows are still not equal time (rows
     * of different types, and one thread's stream from memory runs 20-30%
     * slower than the other's in a given call on a shared VM), so the
     * tasks balance by taking rows from each other's ends. */
    preft_pool_run_balanced(pool, mj.start[mj.n_jobs], want, 16, run_span, &mj);
  } else if (threads == 1) {
    for (int t = 0; t < mj.first[mj.n_jobs]; t++) qtask(&mj, t, 0);
  } else {
    preft_pool_run(pool, mj.first[mj.n_jobs], qtask, &mj);
  }
  for (int l = 0; l < n_laid; l++) free(laid[l]);
  free(xq_heap);
}

void preft_qgemm(preft_pool *pool, float *y, int y_stride, const float *x, int x_stride, const void *w,
                 preft_dtype wdt, int n, int k, int m, int accumulate) {
  if (m <= 0) return;
  preft_gemm_out out = {.y = y, .y_stride = y_stride, .w = w, .wdt = wdt, .m = m};
  preft_qgemm_multi(pool, x, x_stride, n, k, &out, 1, accumulate);
}

/* ------------------------------------------------------------- quantization */

typedef struct {
  preft_dtype t;
  const float *src;
  size_t src_stride, row;
  unsigned char *dst;
  int k;
} qrows_job;

static void quantize_weight_rows(void *p, int r0, int r1) {
  const qrows_job *j = p;
  for (int r = r0; r < r1; r++)
    preft_quantize_row(j->t, j->src + (size_t)r * j->src_stride,
                       j->dst + preft_dtype_row_offset(j->t, j->row, (size_t)r), (size_t)j->k);
}

void preft_quantize_rows(preft_pool *pool, preft_dtype t, const float *src, size_t src_stride, void *dst,
                         int rows, int k) {
  if (rows <= 0) return;
  PREFT_ASSERT(k % (int)preft_dtype_block(t) == 0 && (!preft_dtype_is_r4(t) || rows % 4 == 0));
  qrows_job j = {t, src, src_stride, preft_dtype_row_bytes(t, (size_t)k), dst, k};
  /* a row's cost in units of ~1 ns: the K-quants' scale search dominates */
  size_t per_value = preft_dtype_stored(t) == PREFT_Q4_K ? 90 : t == PREFT_Q6_K ? 36 : 4;
  preft_pool_run_rows(pool, rows, (size_t)k * per_value, 200000, quantize_weight_rows, &j);
}

/* ------------------------------------------------------------ backward for x */

typedef struct {
  const preft_quant_kernels *kt;
  float *dx;
  size_t dxs;
  const float *dy;
  size_t dys;
  const unsigned char *w;
  preft_dtype wdt;
  size_t wrow;
  int n, m, k, accumulate;
  int kchunks, rows_per_task;
} dx_job;

static void dx_task(void *p, int task, int thread) {
  (void)thread;
  const dx_job *jb = p;
  float tile[QDX_ROWS * QDX_KC] __attribute__((aligned(64)));
  int kc_i = task % jb->kchunks, nb = task / jb->kchunks;
  int k0 = kc_i * QDX_KC, kc = jb->k - k0 < QDX_KC ? jb->k - k0 : QDX_KC;
  int i0 = nb * jb->rows_per_task, i1 = i0 + jb->rows_per_task < jb->n ? i0 + jb->rows_per_task : jb->n;
  if (i0 >= i1) return;
  size_t boff = (size_t)k0 / preft_dtype_block(jb->wdt) * preft_dtype_block_stride(jb->wdt);
  if (!jb->accumulate)
    for (int i = i0; i < i1; i++) memset(jb->dx + (size_t)i * jb->dxs + k0, 0, (size_t)kc * sizeof(float));
  for (int j0 = 0; j0 < jb->m; j0 += QDX_ROWS) {
    int rows = jb->m - j0 < QDX_ROWS ? jb->m - j0 : QDX_ROWS;
    for (int r = 0; r < rows; r++)
      jb->kt->dequant(jb->wdt, jb->w + preft_dtype_row_offset(jb->wdt, jb->wrow, (size_t)(j0 + r)) + boff,
                      tile + (size_t)r * (size_t)kc, (size_t)kc);
    jb->kt->tile_dx(jb->dx + (size_t)i0 * jb->dxs + k0, jb->dxs, jb->dy + (size_t)i0 * jb->dys + j0, jb->dys,
                    tile, rows, kc, i1 - i0);
  }
}

void preft_qgemm_dx(preft_pool *pool, float *dx, int dx_stride, const float *dy, int dy_stride, const void *w,
                    preft_dtype wdt, int n, int m, int k, int accumulate) {
  if (n <= 0 || k <= 0) return;
  PREFT_ASSERT(preft_dtype_is_quant(wdt) && k % (int)preft_dtype_block(wdt) == 0);
  if (m <= 0) {
    for (int i = 0; !accumulate && i < n; i++)
      memset(dx + (size_t)i * (size_t)dx_stride, 0, (size_t)k * sizeof(float));
    return;
  }
  dx_job jb = {.kt = kernels(),
               .dx = dx,
               .dxs = (size_t)dx_stride,
               .dy = dy,
               .dys = (size_t)dy_stride,
               .w = w,
               .wdt = wdt,
               .wrow = preft_dtype_row_bytes(wdt, (size_t)k),
               .n = n,
               .m = m,
               .k = k,
               .accumulate = accumulate,
               .kchunks = cdiv(k, QDX_KC)};
  double macs = (double)n * m * k;
  int threads = macs < QSERIAL_MAC ? 1 : preft_pool_size(pool);
  int want = threads == 1 ? 1 : threads * QDX_TASKS_PER_THREAD;
  /* rows of dy split only when the column chunks alone are too few tasks;
   * each split dequantizes the weights once more */
  int nchunks = cdiv(want, jb.kchunks);
  if (nchunks > cdiv(n, 8)) nchunks = cdiv(n, 8);
  if (nchunks < 1) nchunks = 1;
  jb.rows_per_task = cdiv(n, nchunks);
  int tasks = jb.kchunks * cdiv(n, jb.rows_per_task);
  if (threads == 1)
    for (int t = 0; t < tasks; t++) dx_task(&jb, t, 0);
  else
    preft_pool_run(pool, tasks, dx_task, &jb);
}
