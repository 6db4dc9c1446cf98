/* gemm.c - preft_gemm: picking a regime, blocking for the caches and
 * splitting the work over the thread pool (see gemm.h). The tile kernels
 * live in gemm_portable.c, gemm_avx.c / gemm_avx2.c (gemm_avx_body.h),
 * gemm_avx512.c and gemm_avx512_bf16.c (see gemm_kern.h); measurements
 * behind the constants are in docs/KERNELS.md.
 *
 * Two regimes, chosen by N (rows of x) and the weight type:
 *  - rows (decode and small batches, N <= rows_max_n): every weight row is
 *    read once from memory, converted as it is loaded, and dotted with all
 *    N rows of x (4 to 6 at a time). Memory bound for N of a few, then
 *    compute bound with no packing overhead. Threads split M into row
 *    ranges.
 *  - pack (prefill, larger N): compute bound. For each block of kc_max()
 *    input features (256, 512 where a core's L2 holds 1 MiB), a panel of
 *    nr weight rows is converted to FP32 and transposed into a buffer on
 *    the task's stack (16-64 KiB: L1 or L2), then every mr-row tile of x
 *    is multiplied against it, the next tile's rows of y prefetched (AVX2:
 *    6 × 16 in 12 ymm accumulators; avx512: 12 × 32 in 24 zmm). Threads
 *    split M into chunks of panels, and N into row blocks when M alone
 *    gives too few tasks for the pool to balance.
 * Both split into about 4 tasks per thread, handed out dynamically, so two
 * threads balance even when one is slowed by something else on the machine;
 * decode (N <= 4) instead gives each thread one long range over all the
 * outputs of the call, and the threads balance by taking rows from each
 * other's ends (base/row_range.h).
 * Outputs of at most nr_narrow columns take a table's narrow panels where
 * it has them (gemm_kern.h), and a k-major FP32 weight
 * (preft_gemm_kmajor) is packed by copying rows (copy_panel).
 */
#include "tensor/gemm.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/row_range.h"
#include "base/scratch.h"
#include "tensor/cpu.h"
#include "tensor/gemm_kern.h"
#include "tensor/gemm_split.h"
#include "tensor/quant.h"

#define GEMM_KC 256        /* input features per packed panel (multiple of 8; PANEL_BYTES holds it) */
#define GEMM_KC_BIG_L2 512 /* ... where a core's L2 holds GEMM_KC_L2 bytes: 480 KiB of x per K block */
#define GEMM_KC_L2 (1 << 20)
#define GEMM_MC 240           /* most FP32 rows of x per prefill task: 240 KiB of x per K block, in L2 */
#define GEMM_MC_BF16 512      /* ... and BF16 rows: 256 or 512 KiB per K block of 256 or 512 features */
#define GEMM_SERIAL_MAC 65536 /* below this many multiply-adds, threads cost more than they save */
#define GEMM_TASKS_PER_THREAD 4
#define GEMM_PREFETCH_MAX_ROWS 64 /* fewer rows per task: packing prefetches the next panel */
#define GEMM_XB_STACK 8192        /* BF16 elements of rounded x kept on the stack (decode) */
#define ROUND_X_MIN_WORK 65536    /* elements of x rounded per task, at least, when the pool shares it */
#define GEMM_EPI_COLS 48          /* rows regime with an epilogue: fewest columns per block (12k) */
#define GEMM_EPI_FLOATS 16384     /* ... and at most 64 KiB of y per block beyond that */

static atomic_int matmul_precision = PREFT_MATMUL_EXACT;

void preft_matmul_set_precision(preft_matmul_precision p) { atomic_store(&matmul_precision, (int)p); }

preft_matmul_precision preft_matmul_get_precision(void) {
  return (preft_matmul_precision)atomic_load_explicit(&matmul_precision, memory_order_relaxed);
}

int preft_matmul_precision_parse(const char *s) {
  if (strcmp(s, "exact") == 0) return PREFT_MATMUL_EXACT;
  if (strcmp(s, "bf16") == 0) return PREFT_MATMUL_BF16;
  return -1;
}

const char *preft_matmul_precision_name(preft_matmul_precision p) {
  return p == PREFT_MATMUL_BF16 ? "bf16" : "exact";
}

typedef struct {
  const preft_gemm_kernels *kt;
  float *y;
  const void *x; /* FP32 rows xs apart, or BF16 rows (kt->round_x) */
  size_t xesize; /* bytes per element of x */
  const void *w;
  preft_dtype wdt;
  size_t wks; /* > 0: w is FP32 and k-major, wt[K][M] with rows wks apart (preft_gemm_kmajor) */
  size_t ys, xs;
  size_t xstep; /* > 0: x stored k-major (the table's tile_xk), steps xstep elements apart; xs unused */
  int n, k, m, accumulate;
  int rows_per_task;      /* decode: weight rows per task */
  int row_blocks, mc, kc; /* prefill: row blocks of x, rows per block, features per K block */
  int panels, panels_per_task;
  int nr; /* prefill: columns per panel (the table's nr, or nr_narrow) */
  const preft_gemm_epilogue *epi;
  void (*task)(void *job, int task, int thread); /* rows_task or pack_task */
} gemm_job;

/* A weight-row range against every row of x, GEMM_MC rows of x at a time
 * (so those rows stay in L2 while the weight range streams past them).
 * With an epilogue the range goes in blocks of about 64 KiB of y (at least
 * GEMM_EPI_COLS columns), each handed to the epilogue as soon as it is
 * done: small enough to be in cache still, wide enough that what the
 * epilogue reads per column block (e.g. a LoRA's Bᵀ rows for each decode
 * row) comes in long runs the hardware prefetches. The blocks start at
 * multiples of 12 from j0, where the kernels' row groups start anyway, so
 * every output is computed exactly as without the split. */
static void rows_run(const gemm_job *jb, int j0, int j1) {
  for (int i0 = 0; i0 < jb->n; i0 += GEMM_MC) {
    int rows = jb->n - i0 < GEMM_MC ? jb->n - i0 : GEMM_MC;
    int step = j1 - j0;
    if (jb->epi) {
      int fit = GEMM_EPI_FLOATS / rows / 12 * 12;
      step = fit > GEMM_EPI_COLS ? fit : GEMM_EPI_COLS;
    }
    for (int b0 = j0; b0 < j1; b0 += step) {
      int b1 = b0 + step < j1 ? b0 + step : j1;
      jb->kt->rows(jb->y + (size_t)i0 * jb->ys, jb->ys,
                   (const char *)jb->x + (size_t)i0 * jb->xs * jb->xesize, jb->xs, jb->w, jb->wdt, rows,
                   jb->k, b0, b1, jb->accumulate);
      if (jb->epi) jb->epi->fn(jb->epi->ctx, jb->y, jb->ys, i0, i0 + rows, b0, b1);
    }
  }
}

static void rows_task(void *p, int task, int thread) {
  (void)thread;
  const gemm_job *jb = p;
  int j0 = task * jb->rows_per_task;
  rows_run(jb, j0, j0 + jb->rows_per_task < jb->m ? j0 + jb->rows_per_task : jb->m);
}

/* panel[kk][jj] = wt[k0 + kk][j0 + jj] for jj < nr, zero up to NR: a
 * k-major FP32 weight is already in the layout of every FP32 table's
 * panel (gemm_kern.h), so packing it is a copy of rows. */
static inline void copy_panel(const int NR, float *panel, const float *wt, size_t ws, int j0, int nr, int k0,
                              int kc) {
  for (int kk = 0; kk < kc; kk++) {
    const float *src = wt + (size_t)(k0 + kk) * ws + (size_t)j0;
    float *dst = panel + (size_t)kk * (size_t)NR;
    if (nr == NR) {
      memcpy(dst, src, sizeof(float) * (size_t)NR);
    } else {
      memcpy(dst, src, sizeof(float) * (size_t)nr);
      memset(dst + nr, 0, sizeof(float) * (size_t)(NR - nr));
    }
  }
}

static void pack_kmajor(void *panel, const float *wt, size_t ws, int nr_max, int j0, int nr, int k0, int kc) {
  if (nr_max == 32)
    copy_panel(32, panel, wt, ws, j0, nr, k0, kc);
  else if (nr_max == 16)
    copy_panel(16, panel, wt, ws, j0, nr, k0, kc);
  else
    copy_panel(nr_max, panel, wt, ws, j0, nr, k0, kc);
}

/* Prefetches, for writing, y's rows [i, i1) of the panel's columns
 * [j0, j0 + nr): the next tile's, while this one computes. A packed
 * product's y is written tile by tile, 12 rows of 128 bytes far apart,
 * and a tile cannot start its sums before its rows of y arrive when it
 * accumulates (later K blocks). */
static inline void prefetch_y(const gemm_job *jb, int i, int i1, int j0, int nr) {
  for (; i < i1; i++) {
    const char *row = (const char *)(jb->y + (size_t)i * jb->ys + (size_t)j0);
    for (int b = 0; b < nr * (int)sizeof(float); b += 64) __builtin_prefetch(row + b, 1, 3);
  }
}

static void pack_task(void *p, int task, int thread) {
  const gemm_job *jb = p;
  const int mr_max = jb->kt->mr, nr_max = jb->nr, narrow = nr_max != jb->kt->nr;
  unsigned char panel[PREFT_GEMM_PANEL_BYTES] __attribute__((aligned(64)));
  int rb = task % jb->row_blocks, cb = task / jb->row_blocks;
  int i0 = rb * jb->mc, i1 = i0 + jb->mc < jb->n ? i0 + jb->mc : jb->n;
  int p0 = cb * jb->panels_per_task;
  int p1 = p0 + jb->panels_per_task < jb->panels ? p0 + jb->panels_per_task : jb->panels;
  for (int k0 = 0; k0 < jb->k; k0 += jb->kc) {
    int kc = jb->k - k0 < jb->kc ? jb->k - k0 : jb->kc;
    int acc = jb->accumulate || k0 > 0;
    for (int pi = p0; pi < p1; pi++) {
      int j0 = pi * nr_max;
      int nr = jb->m - j0 < nr_max ? jb->m - j0 : nr_max;
      if (jb->wks && jb->kt->pack_kmajor)
        jb->kt->pack_kmajor(panel, jb->w, jb->wks, j0, nr, k0, kc);
      else if (jb->wks)
        pack_kmajor(panel, jb->w, jb->wks, nr_max, j0, nr, k0, kc);
      else
        (narrow ? jb->kt->pack_narrow : jb->kt->pack)(panel, jb->w, jb->wdt, (size_t)jb->k, j0, nr, k0, kc,
                                                      i1 - i0 < GEMM_PREFETCH_MAX_ROWS);
      for (int i = i0; i < i1; i += mr_max) {
        int mr = i1 - i < mr_max ? i1 - i : mr_max;
        prefetch_y(jb, i + mr, i + mr + mr_max < i1 ? i + mr + mr_max : i1, j0, nr);
        float *yt = jb->y + (size_t)i * jb->ys + (size_t)j0;
        if (jb->xstep) { /* a step is one FP32 feature or a BF16 pair of them (4 bytes) */
          const size_t per_step = sizeof(float) / jb->xesize;
          const void *xt =
              (const char *)jb->x + ((size_t)k0 / per_step * jb->xstep + per_step * (size_t)i) * jb->xesize;
          jb->kt->tile_xk(kc, xt, jb->xstep, panel, yt, jb->ys, mr, nr, acc);
        } else {
          const void *xt = (const char *)jb->x + ((size_t)i * jb->xs + (size_t)k0) * jb->xesize;
          (narrow ? jb->kt->tile_narrow : jb->kt->tile)(kc, xt, jb->xs, panel, yt, jb->ys, mr, nr, acc);
        }
      }
      /* after the last K block the panel's columns are final */
      if (jb->epi && k0 + kc >= jb->k) jb->epi->fn(jb->epi->ctx, jb->y, jb->ys, i0, i1, j0, j0 + nr);
    }
  }
}

static int cdiv(int a, int b) { return (a + b - 1) / b; }

/* Features per K block of the packed regime: twice GEMM_KC where a core's
 * L2 holds a block of x that long (an output's partial sums are stored
 * and loaded again once per block: the training products' K = 512 in one
 * block ran the pass 2-3% faster, docs/PERFORMANCE.md). The split changes
 * no result: each output's sum runs over k in order in any blocking. */
static int kc_max(void) { return preft_cpu_l2_bytes() >= GEMM_KC_L2 ? GEMM_KC_BIG_L2 : GEMM_KC; }

/* Tasks to cut a job of `macs` multiply-adds into: one below
 * GEMM_SERIAL_MAC (threads would cost more than they save), else
 * GEMM_TASKS_PER_THREAD per pool thread. */
static int tasks_wanted(preft_pool *pool, double macs) {
  int threads = macs < GEMM_SERIAL_MAC ? 1 : preft_pool_size(pool);
  return threads == 1 ? 1 : threads * GEMM_TASKS_PER_THREAD;
}

/* The kernel table for this weight type on this CPU path. BF16 weights at
 * BF16 precision take vdpbf16ps where the CPU has it; everything else the
 * FP32 kernels of the best path. Up to kt->rows_max_n[wdt] rows of x the
 * rows (dot) kernel beats packing (docs/KERNELS.md has the crossovers). */
static const preft_gemm_kernels *kernels(preft_dtype wdt, preft_matmul_precision prec) {
#ifdef PREFT_HAVE_AVX_KERNELS
  preft_cpu_path_kind path = preft_cpu_path();
  if (path >= PREFT_CPU_AVX512_BF16 && wdt == PREFT_BF16 && prec == PREFT_MATMUL_BF16)
    return &preft_gemm_avx512_bf16;
  if (path >= PREFT_CPU_AVX512_BF16) return &preft_gemm_avx512;
  if (path >= PREFT_CPU_AVX2) return &preft_gemm_avx2;
  if (path >= PREFT_CPU_AVX_FMA) return &preft_gemm_avx;
#else
  (void)wdt;
  (void)prec;
#endif
  return &preft_gemm_portable;
}

/* Whether n rows of x take the table's rows kernel for weights of type wdt. */
static int kt_rows(const preft_gemm_kernels *kt, preft_dtype wdt, int n) { return n <= kt->rows_max_n[wdt]; }

/* Splits one output's product into about `want` tasks that come out even
 * on `threads` threads (gemm_split.h; 1: no pool); returns the count and
 * sets jb->task. */
static int plan_job(gemm_job *jb, int want, int threads) {
  const preft_gemm_kernels *kt = jb->kt;
  int n = jb->n, k = jb->k, m = jb->m;
  if (!jb->wks && kt_rows(kt, jb->wdt, n)) {
    /* Row ranges in multiples of 12 (every rows kernel's row group). */
    jb->rows_per_task = preft_split_rows(m, 12, want, threads, cdiv(cdiv(m, want), 12) * 12);
    jb->task = rows_task;
    return cdiv(m, jb->rows_per_task);
  }
  int kblocks = cdiv(k, kc_max());
  jb->kc = cdiv(cdiv(k, kblocks), 8) * 8; /* equal K blocks, each <= kc_max() */
  jb->nr = kt->tile_narrow && m <= kt->nr_narrow && !jb->xstep ? kt->nr_narrow : kt->nr; /* tile_xk is wide */
  jb->panels = cdiv(m, jb->nr);
  /* BF16 x (the training products at BF16 precision) takes more rows a
   * block than FP32 x, so each panel is packed for fewer blocks (2-8%
   * faster, docs/PERFORMANCE.md): GEMM_MC_BF16, a training batch's 512
   * rows in one block (1.4% faster than 480 rows in the pass at width 512,
   * docs/PERFORMANCE.md) */
  const int mc_max = jb->xesize == sizeof(float) ? GEMM_MC : GEMM_MC_BF16;
  int row_blocks = cdiv(n, mc_max);
  int col_chunks = cdiv(want, row_blocks) < jb->panels ? cdiv(want, row_blocks) : jb->panels;
  if (row_blocks * col_chunks < want) { /* few panels: split the rows finer */
    int more = cdiv(want, col_chunks), most = cdiv(n, kt->mr);
    row_blocks = more < most ? more : most;
  }
  /* the first choice, then evened out (N = 512 on 2 threads: 3 × 3 tasks → 3 × 2 or 2 × 3) */
  jb->mc = cdiv(cdiv(n, row_blocks), kt->mr) * kt->mr;
  jb->panels_per_task = cdiv(jb->panels, col_chunks);
  preft_split_blocks(n, kt->mr, mc_max, jb->panels, want, threads, &jb->mc, &jb->panels_per_task);
  jb->row_blocks = cdiv(n, jb->mc);
  jb->task = pack_task;
  return jb->row_blocks * cdiv(jb->panels, jb->panels_per_task);
}

typedef struct {
  gemm_job *jobs;
  int n_jobs;
  int first[PREFT_GEMM_MULTI_MAX + 1]; /* task index where each job starts */
  int start[PREFT_GEMM_MULTI_MAX + 1]; /* decode: each job's first row, the jobs' rows laid end to end,
                                          each padded to a multiple of 12 */
} multi_job;

/* Decode: rows [g0, g1) of the jobs laid end to end (rows_span_decode). */
static void rows_span(void *p, int g0, int g1) {
  const multi_job *mj = p;
  for (int o = 0; o < mj->n_jobs; o++) {
    const int lo = g0 > mj->start[o] ? g0 : mj->start[o];
    const int end = mj->start[o] + mj->jobs[o].m, hi = g1 < end ? g1 : end;
    if (lo < hi) rows_run(&mj->jobs[o], lo - mj->start[o], hi - mj->start[o]);
  }
}

/* Decode on several threads (every job in the rows regime, N <= 4): one
 * range of rows per thread over all the jobs (q, k and v together), each
 * read as one long stream, the threads balancing by taking rows from each
 * other's ends (base/row_range.h). Each job's rows are padded to a multiple
 * of 12 so that every cut falls where a rows kernel's group starts in the
 * job itself, and each output is computed as with any other split.
 * Returns 0 when the call is not such a decode. */
static int rows_span_decode(preft_pool *pool, multi_job *mj, int n) {
  if (n > 4 || mj->first[mj->n_jobs] <= 1 || preft_pool_size(pool) <= 1) return 0;
  for (int o = 0; o < mj->n_jobs; o++)
    if (mj->jobs[o].task != rows_task) return 0;
  for (int o = 0; o < mj->n_jobs; o++) mj->start[o + 1] = mj->start[o] + cdiv(mj->jobs[o].m, 12) * 12;
  preft_pool_run_balanced(pool, mj->start[mj->n_jobs], preft_pool_size(pool), 12, rows_span, mj);
  return 1;
}

static void multi_task(void *p, int task, int thread) {
  const multi_job *mj = p;
  int j = 0;
  while (task >= mj->first[j + 1]) j++;
  mj->jobs[j].task(&mj->jobs[j], task - mj->first[j], thread);
}

typedef struct {
  const preft_gemm_kernels *kt;
  uint16_t *dst;
  size_t kp, xs;
  const float *x;
  int k;
} round_x_job;

static void round_x_range(void *p, int r0, int r1) {
  const round_x_job *j = p;
  j->kt->round_x(j->dst + (size_t)r0 * j->kp, j->kp, j->x + (size_t)r0 * j->xs, j->xs, r1 - r0, j->k);
}

/* x[n, k] rounded to BF16 rows kp apart: on the pool when there are many
 * rows (a training product's 512 rows of x rounded on the caller alone
 * were 2% of a BF16 training pass, the other thread waiting). */
static void round_x_rows(preft_pool *pool, const preft_gemm_kernels *kt, uint16_t *dst, size_t kp,
                         const float *x, size_t xs, int n, int k) {
  round_x_job j = {kt, dst, kp, xs, x, k};
  preft_pool_run_rows(pool, n, (size_t)k, ROUND_X_MIN_WORK, round_x_range, &j);
}

/* y[n, m] = 0 unless accumulating (a product over no features). */
static void zero_rows(float *y, int y_stride, int n, int m, int accumulate) {
  for (int i = 0; !accumulate && i < n; i++)
    memset(y + (size_t)i * (size_t)y_stride, 0, sizeof(float) * (size_t)m);
}

/* preft_gemm_multi at matmul precision prec, with the kernel table of each
 * output's weight type (kt_all NULL) or kt_all for every output. */
static void gemm_multi(preft_pool *pool, preft_matmul_precision prec, const preft_gemm_kernels *kt_all,
                       const float *x, int x_stride, int n, int k, const preft_gemm_out *outs, int n_outs,
                       int accumulate) {
  PREFT_ASSERT(n_outs >= 1 && n_outs <= PREFT_GEMM_MULTI_MAX);
  if (n <= 0) return;
  PREFT_ASSERT(x);
  /* quantized weights take the int8 kernels (quant.h), the others these */
  int n_quant = 0;
  for (int i = 0; i < n_outs; i++) {
    n_quant += preft_dtype_is_quant(outs[i].wdt);
    PREFT_ASSERT(!outs[i].epi || !preft_dtype_is_quant(outs[i].wdt)); /* qgemm has no epilogue */
  }
  if (n_quant > 0) {
    preft_gemm_out q[PREFT_GEMM_MULTI_MAX], f[PREFT_GEMM_MULTI_MAX];
    int nq = 0, nf = 0;
    for (int i = 0; i < n_outs; i++) {
      if (preft_dtype_is_quant(outs[i].wdt))
        q[nq++] = outs[i];
      else
        f[nf++] = outs[i];
    }
    preft_qgemm_multi(pool, x, x_stride, n, k, q, nq, accumulate);
    if (nf > 0) gemm_multi(pool, prec, kt_all, x, x_stride, n, k, f, nf, accumulate);
    return;
  }
  double macs = 0;
  long m_total = 0;
  for (int i = 0; i < n_outs; i++) {
    PREFT_ASSERT(outs[i].m <= 0 || (outs[i].y && outs[i].w));
    PREFT_ASSERT(n == 1 || outs[i].m <= 0 || (x_stride >= k && outs[i].y_stride >= outs[i].m));
    if (outs[i].m > 0) m_total += outs[i].m;
    macs += (double)n * k * (outs[i].m > 0 ? outs[i].m : 0);
  }
  if (m_total == 0) return;
  if (k <= 0) {
    for (int o = 0; o < n_outs; o++) {
      if (outs[o].m <= 0) continue;
      zero_rows(outs[o].y, outs[o].y_stride, n, outs[o].m, accumulate);
      if (outs[o].epi)
        outs[o].epi->fn(outs[o].epi->ctx, outs[o].y, (size_t)outs[o].y_stride, 0, n, 0, outs[o].m);
    }
    return;
  }
  /* x rounded to BF16 once for every output whose table wants it */
  uint16_t *xb = NULL, *xb_heap = NULL;
  uint16_t xb_stack[GEMM_XB_STACK] __attribute__((aligned(64)));
  size_t kp = ((size_t)k + 31) / 32 * 32;
  gemm_job jobs[PREFT_GEMM_MULTI_MAX];
  int want = tasks_wanted(pool, macs);
  multi_job mj = {jobs, 0, {0}, {0}};
  for (int o = 0; o < n_outs; o++) {
    if (outs[o].m <= 0) continue;
    const preft_gemm_kernels *kt = kt_all ? kt_all : kernels(outs[o].wdt, prec);
    if (kt->round_x && !xb) {
      xb = (size_t)n * kp <= GEMM_XB_STACK ? xb_stack
                                           : (xb_heap = preft_scratch_get((size_t)n * kp * sizeof(uint16_t)));
      round_x_rows(pool, kt, xb, kp, x, (size_t)x_stride, n, k);
    }
    gemm_job *jb = &jobs[mj.n_jobs];
    *jb = (gemm_job){.kt = kt,
                     .y = outs[o].y,
                     .x = kt->round_x ? (const void *)xb : (const void *)x,
                     .xesize = kt->round_x ? sizeof(uint16_t) : sizeof(float),
                     .w = outs[o].w,
                     .wdt = outs[o].wdt,
                     .ys = (size_t)outs[o].y_stride,
                     .xs = kt->round_x ? kp : (size_t)x_stride,
                     .n = n,
                     .k = k,
                     .m = outs[o].m,
                     .epi = outs[o].epi,
                     .accumulate = accumulate};
    /* each output of the rows regime gets a share of the tasks by its
     * size; a packed one is cut as if alone (its share would cut N finer:
     * training's gate and up at 4 tasks each took blocks of 180 rows, each
     * panel packed three times, 5-10% slower than two calls) */
    int share = want == 1                      ? 1
                : !kt_rows(kt, outs[o].wdt, n) ? want
                                               : (int)((double)want * outs[o].m / (double)m_total + 0.5);
    mj.first[mj.n_jobs + 1] =
        mj.first[mj.n_jobs] + plan_job(jb, share > 0 ? share : 1, want > 1 ? preft_pool_size(pool) : 1);
    mj.n_jobs++;
  }
  if (!rows_span_decode(pool, &mj, n)) {
    if (mj.n_jobs == 1)
      preft_pool_run(pool, mj.first[1], jobs[0].task, &jobs[0]);
    else
      preft_pool_run(pool, mj.first[mj.n_jobs], multi_task, &mj);
  }
  preft_scratch_put(xb_heap);
}

void preft_gemm_multi(preft_pool *pool, const float *x, int x_stride, int n, int k,
                      const preft_gemm_out *outs, int n_outs, int accumulate) {
  gemm_multi(pool, preft_matmul_get_precision(), NULL, x, x_stride, n, k, outs, n_outs, accumulate);
}

void preft_gemm_bf16(preft_pool *pool, float *y, int y_stride, const float *x, int x_stride,
                     const uint16_t *w, int n, int k, int m, int accumulate) {
  if (m <= 0 || n <= 0) return;
  preft_gemm_out out = {.y = y, .y_stride = y_stride, .w = w, .wdt = PREFT_BF16, .m = m};
  if (preft_gemm_bf16_native()) {
    gemm_multi(pool, PREFT_MATMUL_BF16, NULL, x, x_stride, n, k, &out, 1, accumulate);
    return;
  }
  /* emulation: x rounded to BF16 values held in FP32, then the FP32
   * kernels, which widen the BF16 weights exactly; a product of two BF16
   * values is exact in FP32, so only the order of the FP32 sums differs */
  float *xr = preft_xmalloc(sizeof(float) * (size_t)n * (size_t)(k > 0 ? k : 1));
  for (int i = 0; i < n; i++)
    for (int c = 0; c < k; c++)
      xr[(size_t)i * k + c] = preft_bf16_to_f32(preft_f32_to_bf16(x[(size_t)i * (size_t)x_stride + c]));
  gemm_multi(pool, PREFT_MATMUL_EXACT, NULL, xr, k > 0 ? k : 1, n, k, &out, 1, accumulate);
  free(xr);
}

void preft_gemm_bf16_multi(preft_pool *pool, const float *x, int x_stride, int n, int k,
                           const preft_gemm_out *outs, int n_outs, int accumulate) {
  PREFT_ASSERT(preft_gemm_bf16_native());
  for (int i = 0; i < n_outs; i++) PREFT_ASSERT(outs[i].wdt == PREFT_BF16);
  gemm_multi(pool, PREFT_MATMUL_BF16, NULL, x, x_stride, n, k, outs, n_outs, accumulate);
}

void preft_gemm_bf16_f32w_multi(preft_pool *pool, const float *x, int x_stride, int n, int k,
                                const preft_gemm_out *outs, int n_outs, int accumulate) {
  PREFT_ASSERT(preft_gemm_bf16_native());
  for (int i = 0; i < n_outs; i++) PREFT_ASSERT(outs[i].wdt == PREFT_F32 && !outs[i].epi);
#ifdef PREFT_HAVE_AVX_KERNELS
  gemm_multi(pool, PREFT_MATMUL_BF16, &preft_gemm_avx512_bf16, x, x_stride, n, k, outs, n_outs, accumulate);
#endif
}

int preft_gemm_bf16_native(void) {
#ifdef PREFT_HAVE_AVX_KERNELS
  return preft_cpu_path() >= PREFT_CPU_AVX512_BF16;
#else
  return 0;
#endif
}

/* y (+)= x · wt with wt FP32 and k-major ([K][M], rows wt_stride apart),
 * x in the table's x type (rows xs elements apart, or with xstep > 0
 * stored k-major for the table's tile_xk), on the pack regime. */
static void gemm_kmajor_run(preft_pool *pool, const preft_gemm_kernels *kt, float *y, int y_stride,
                            const void *x, size_t xesize, size_t xs, size_t xstep, const float *wt,
                            int wt_stride, int n, int k, int m, int accumulate) {
  /* without its own k-major pack a table takes copy_panel's FP32 panels */
  PREFT_ASSERT(kt->tile && (kt->pack_kmajor || xesize == sizeof(float)));
  gemm_job jb = {.kt = kt,
                 .y = y,
                 .x = x,
                 .xesize = xesize,
                 .w = wt,
                 .wdt = PREFT_F32,
                 .wks = (size_t)wt_stride,
                 .ys = (size_t)y_stride,
                 .xs = xs,
                 .xstep = xstep,
                 .n = n,
                 .k = k,
                 .m = m,
                 .accumulate = accumulate};
  const int want = tasks_wanted(pool, (double)n * k * m);
  int tasks = plan_job(&jb, want, want > 1 ? preft_pool_size(pool) : 1); /* sets jb.task */
  preft_pool_run(pool, tasks, jb.task, &jb);
}

void preft_gemm_kmajor(preft_pool *pool, float *y, int y_stride, const float *x, int x_stride,
                       const float *wt, int wt_stride, int n, int k, int m, int accumulate) {
  if (m <= 0 || n <= 0) return;
  PREFT_ASSERT(x && y && wt && wt_stride >= m && y_stride >= m && (n == 1 || x_stride >= k));
  if (k <= 0) {
    zero_rows(y, y_stride, n, m, accumulate);
    return;
  }
  const preft_gemm_kernels *kt = kernels(PREFT_F32, PREFT_MATMUL_EXACT);
  PREFT_ASSERT(!kt->round_x);
  gemm_kmajor_run(pool, kt, y, y_stride, x, sizeof(float), (size_t)x_stride, 0, wt, wt_stride, n, k, m,
                  accumulate);
}

int preft_gemm_kmajor_xt(preft_pool *pool, float *y, int y_stride, const float *xt, int xt_stride,
                         const float *wt, int wt_stride, int n, int k, int m, int accumulate) {
  const preft_gemm_kernels *kt = kernels(PREFT_F32, PREFT_MATMUL_EXACT);
  if (!kt->tile_xk) return 0;
  if (m <= 0 || n <= 0) return 1;
  PREFT_ASSERT(xt && y && wt && wt_stride >= m && y_stride >= m && xt_stride >= n);
  if (k <= 0) {
    zero_rows(y, y_stride, n, m, accumulate);
    return 1;
  }
  gemm_kmajor_run(pool, kt, y, y_stride, xt, sizeof(float), 0, (size_t)xt_stride, wt, wt_stride, n, k, m,
                  accumulate);
  return 1;
}

void preft_gemm_bf16_kmajor(preft_pool *pool, float *y, int y_stride, const float *x, int x_stride,
                            const uint16_t *xb, const float *wt, int wt_stride, int n, int k, int m,
                            int accumulate) {
  if (m <= 0 || n <= 0) return;
  PREFT_ASSERT((x != NULL) != (xb != NULL) && y && wt && wt_stride >= m && y_stride >= m);
  PREFT_ASSERT(!x || n == 1 || x_stride >= k);
  if (k <= 0) {
    zero_rows(y, y_stride, n, m, accumulate);
    return;
  }
  const size_t kp = ((size_t)k + 31) / 32 * 32;
  if (preft_gemm_bf16_native()) {
    const preft_gemm_kernels *kt = kernels(PREFT_BF16, PREFT_MATMUL_BF16);
    uint16_t *xr = NULL;
    if (x) {
      xr = preft_scratch_get(sizeof(uint16_t) * (size_t)n * kp);
      round_x_rows(pool, kt, xr, kp, x, (size_t)x_stride, n, k);
    }
    gemm_kmajor_run(pool, kt, y, y_stride, x ? xr : xb, sizeof(uint16_t), kp, 0, wt, wt_stride, n, k, m,
                    accumulate);
    preft_scratch_put(xr);
    return;
  }
  /* emulation: both operands' BF16 values in FP32, the exact k-major path
   * (products of BF16 values are exact in FP32; only the sums' order
   * differs from vdpbf16ps) */
  float *xr = preft_xmalloc(sizeof(float) * (size_t)n * (size_t)k);
  float *wr = preft_xmalloc(sizeof(float) * (size_t)k * (size_t)m);
  for (int i = 0; i < n; i++)
    for (int c = 0; c < k; c++)
      xr[(size_t)i * k + c] = preft_bf16_to_f32(x ? preft_f32_to_bf16(x[(size_t)i * (size_t)x_stride + c])
                                                  : xb[(size_t)i * kp + c]);
  for (int r = 0; r < k; r++)
    for (int c = 0; c < m; c++)
      wr[(size_t)r * m + c] = preft_bf16_to_f32(preft_f32_to_bf16(wt[(size_t)r * (size_t)wt_stride + c]));
  preft_gemm_kmajor(pool, y, y_stride, xr, k, wr, m, n, k, m, accumulate);
  free(xr);
  free(wr);
}

void preft_gemm_bf16_kmajor_pairs(preft_pool *pool, float *y, int y_stride, const uint16_t *xp, size_t xpair,
                                  const float *wt, int wt_stride, int n, int k, int m, int accumulate) {
  if (m <= 0 || n <= 0) return;
  PREFT_ASSERT(xp && y && wt && wt_stride >= m && y_stride >= m && xpair >= 2 * (size_t)n);
  if (k <= 0) {
    zero_rows(y, y_stride, n, m, accumulate);
    return;
  }
  if (preft_gemm_bf16_native()) {
    gemm_kmajor_run(pool, kernels(PREFT_BF16, PREFT_MATMUL_BF16), y, y_stride, xp, sizeof(uint16_t), 0, xpair,
                    wt, wt_stride, n, k, m, accumulate);
    return;
  }
  /* emulation: x's rows gathered from the pairs, then preft_gemm_bf16_kmajor's */
  const size_t kp = ((size_t)k + 31) / 32 * 32;
  uint16_t *xb = preft_xcalloc((size_t)n * kp, sizeof(uint16_t));
  for (int i = 0; i < n; i++)
    for (int c = 0; c < k; c++) xb[(size_t)i * kp + c] = xp[(size_t)(c / 2) * xpair + 2 * (size_t)i + c % 2];
  preft_gemm_bf16_kmajor(pool, y, y_stride, NULL, 0, xb, wt, wt_stride, n, k, m, accumulate);
  free(xb);
}

void preft_gemm(preft_pool *pool, float *y, int y_stride, const float *x, int x_stride, const void *w,
                preft_dtype wdt, int n, int k, int m, int accumulate) {
  if (m <= 0) return;
  preft_gemm_out out = {.y = y, .y_stride = y_stride, .w = w, .wdt = wdt, .m = m};
  preft_gemm_multi(pool, x, x_stride, n, k, &out, 1, accumulate);
}
