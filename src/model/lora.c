/* lora.c - grouping a batch's rows by adapter and the grouped LoRA delta
 * (see adapter_plan.h). */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/huge_alloc.h"
#include "model/adapter_plan.h"
#include "model/lora_kernels.h"
#include "tensor/gemm.h"

#define LORA_CHUNK 128  /* most rows per task; bounds the scratch */
#define LORA_MIN_TASK 8 /* fewest rows a group is split into per task */
/* Fewest rows of a group whose expand goes into the base product's
 * epilogue. Smaller groups (a decode step's one row per adapter) keep the
 * separate pass: their cost is reading A and B from memory, not y, and one
 * row's whole Bᵀ read in one go streams better than in the epilogue's
 * column blocks (measured: docs/PERFORMANCE.md). */
#define LORA_FUSE_MIN_ROWS 16

void preft_adapter_plan_free(preft_adapter_plan *p) {
  free(p->groups);
  free(p->rows);
  free(p->reft_rows);
  free(p->reft_slot);
  free(p->reft_adapter);
  free(p->scratch);
  free(p->tasks);
  free(p->row_group);
  free(p->t);
  memset(p, 0, sizeof *p);
}

void preft_adapter_plan_build(preft_adapter_plan *p, int n, const preft_adapter *const *adapter,
                              const uint8_t *flag, int max_width, int threads) {
  p->n_groups = 0;
  p->n_tasks = 0;
  p->n_reft = 0;
  p->n_rows = n;
  if (!adapter) return;
  if (n > p->cap_rows) {
    p->row_group = preft_xrealloc(p->row_group, sizeof(int) * (size_t)n);
    p->rows = preft_xrealloc(p->rows, sizeof(int) * (size_t)n);
    p->reft_rows = preft_xrealloc(p->reft_rows, sizeof(int) * (size_t)n);
    p->reft_slot = preft_xrealloc(p->reft_slot, (size_t)n);
    p->reft_adapter = preft_xrealloc(p->reft_adapter, sizeof(void *) * (size_t)n);
    p->groups = preft_xrealloc(p->groups, sizeof(preft_lora_group) * (size_t)n);
    p->tasks = preft_xrealloc(p->tasks, sizeof(preft_lora_task) * (size_t)n);
    p->cap_rows = n;
  }
  int max_rank = 0;
  /* Rows of one adapter are usually adjacent (one sequence's prompt, or
   * requests sorted by adapter): extend the last group when possible,
   * otherwise search the groups so far. */
  for (int i = 0; i < n; i++) {
    const preft_adapter *a = adapter[i];
    if (!a || flag[i] == PREFT_ADAPT_OFF) continue;
    if (a->kind != PREFT_ADAPTER_LORA) {
      p->reft_rows[p->n_reft] = i;
      p->reft_adapter[p->n_reft] = a;
      p->reft_slot[p->n_reft++] = flag[i] == PREFT_ADAPT_FIRST  ? PREFT_REFT_FIRST
                                  : flag[i] == PREFT_ADAPT_LAST ? PREFT_REFT_LAST
                                                                : PREFT_REFT_SHARED;
      continue;
    }
    int g = -1;
    for (int k = p->n_groups - 1; k >= 0; k--)
      if (p->groups[k].adapter == a) {
        g = k;
        break;
      }
    if (g < 0) {
      g = p->n_groups++;
      p->groups[g] = (preft_lora_group){.adapter = a, .first = 0, .n = 0, .contiguous_start = i};
      max_rank = a->max_rank > max_rank ? a->max_rank : max_rank;
    }
    p->groups[g].n++;
  }
  if (p->n_groups == 0) return;
  /* Lay the rows out group by group (counting sort). */
  int off = 0;
  for (int g = 0; g < p->n_groups; g++) {
    p->groups[g].first = off;
    off += p->groups[g].n;
    p->groups[g].n = 0;
  }
  for (int i = 0; i < n; i++) {
    const preft_adapter *a = adapter[i];
    if (!a || flag[i] == PREFT_ADAPT_OFF || a->kind != PREFT_ADAPTER_LORA) continue;
    for (int g = p->n_groups - 1; g >= 0; g--) {
      if (p->groups[g].adapter != a) continue;
      p->rows[p->groups[g].first + p->groups[g].n++] = i;
      break;
    }
  }
  for (int i = 0; i < n; i++) p->row_group[i] = -1;
  for (int g = 0; g < p->n_groups; g++) {
    preft_lora_group *gr = &p->groups[g];
    const int *r = p->rows + gr->first;
    gr->contiguous_start = r[0];
    for (int k = 0; k < gr->n; k++) {
      p->row_group[r[k]] = g;
      if (r[k] != r[0] + k) gr->contiguous_start = -1;
    }
  }
  /* the fused path's shrink results, every module's */
  p->t_stride = max_rank;
  size_t t_need = (size_t)PREFT_N_MODULES * (size_t)n * (size_t)max_rank;
  if (t_need > p->t_cap) {
    p->t = preft_xrealloc(p->t, sizeof(float) * t_need);
    p->t_cap = t_need;
  }
  /* Tasks: each group's rows in chunks, so that one long prompt still
   * spreads over the threads (about two tasks per thread over all rows) and
   * a decode step of many one-row groups is one task per group. Each task
   * streams its adapter's A and Bt once, so chunks are not made tiny. */
  int total = off, threads1 = threads > 1 ? threads : 1;
  int chunk = (total + 2 * threads1 - 1) / (2 * threads1);
  chunk = chunk < LORA_MIN_TASK ? LORA_MIN_TASK : chunk > LORA_CHUNK ? LORA_CHUNK : chunk;
  for (int g = 0; g < p->n_groups; g++)
    for (int c0 = 0; c0 < p->groups[g].n; c0 += chunk)
      p->tasks[p->n_tasks++] =
          (preft_lora_task){g, c0, p->groups[g].n - c0 < chunk ? p->groups[g].n - c0 : chunk};
  /* scratch per thread: the rank-R intermediate of one task and, for rows
   * that are not contiguous, their gathered x */
  p->scratch_per_thread = (size_t)LORA_CHUNK * ((size_t)max_rank + (size_t)max_width);
  size_t need = p->scratch_per_thread * (size_t)threads1;
  if (need > p->scratch_cap) {
    p->scratch = preft_xrealloc(p->scratch, sizeof(float) * need);
    p->scratch_cap = need;
  }
}

typedef struct {
  preft_adapter_plan *p;
  int layer;
  preft_module module;
  const float *x;
  int x_stride, in;
  float *y;
  int y_stride, out;
  const preft_module *mods; /* fused shrink: the modules that read x */
  int n_mods;
  bool small_only; /* lora_task: only the groups too small to fuse */
} lora_job;

static bool fusable(const preft_lora_group *gr) { return gr->n >= LORA_FUSE_MIN_ROWS; }

/* Task `tk`'s rows of x: in place when its group's rows are contiguous,
 * else gathered into xg ([n, in]). Sets *xs to the row stride. */
static const float *task_x(const lora_job *j, const preft_lora_task *tk, float *xg, int *xs) {
  const preft_lora_group *gr = &j->p->groups[tk->group];
  if (gr->contiguous_start >= 0) {
    *xs = j->x_stride;
    return j->x + (size_t)(gr->contiguous_start + tk->first) * (size_t)j->x_stride;
  }
  const int *rows = j->p->rows + gr->first + tk->first;
  for (int i = 0; i < tk->n; i++)
    memcpy(xg + (size_t)i * j->in, j->x + (size_t)rows[i] * (size_t)j->x_stride,
           sizeof(float) * (size_t)j->in);
  *xs = j->in;
  return xg;
}

/* t[n, R] = scale · (x[n, in] · Aᵀ), rows `ts` floats apart: the shrink,
 * the same preft_gemm call on both paths. In its rows regime (every task
 * of a decode step) each row gets its own bits whatever task it is in, so
 * a sequence's tokens do not depend on how many rows of its adapter share
 * a step; a kernel streaming A for one row (1.0-1.5x faster from memory)
 * was tried and dropped for breaking that (docs/KERNELS.md). */
static void shrink(float *t, int ts, const float *x, int xs, const preft_lora_module *lm, int n, int in) {
  preft_gemm(NULL, t, ts, x, xs, lm->a, lm->a_dtype, n, in, lm->rank, 0);
  for (int i = 0; i < n; i++)
    for (int r = 0; r < lm->rank; r++) t[(size_t)i * ts + r] *= lm->scale;
}

/* One task: rows [first, first+n) of a group; t = scale·(x·Aᵀ), y += t·Bt.
 * Tasks write disjoint rows of y, so each runs its products on one thread.
 * The shrink reads x in place when the rows are contiguous and gathers
 * them otherwise; the expand writes y in place either way. */
static void lora_task(void *ctx, int task, int thread) {
  const lora_job *j = ctx;
  const preft_lora_task *tk = &j->p->tasks[task];
  const preft_lora_group *gr = &j->p->groups[tk->group];
  const preft_lora_module *lm = &gr->adapter->lora[j->layer * PREFT_N_MODULES + j->module];
  if (lm->rank == 0 || (j->small_only && fusable(gr))) return;
  PREFT_ASSERT(lm->bt != NULL); /* every LoRA adapter is built by preft_lora_prepare */
  const int n = tk->n;
  /* gathered x at the start of the thread's scratch, t at its end */
  float *xg = j->p->scratch + (size_t)thread * j->p->scratch_per_thread;
  float *t = xg + j->p->scratch_per_thread - (size_t)n * (size_t)lm->rank;
  int xs;
  const float *x = task_x(j, tk, xg, &xs);
  float *y = j->y;
  const int *rows = NULL;
  if (gr->contiguous_start >= 0)
    y += (size_t)(gr->contiguous_start + tk->first) * (size_t)j->y_stride;
  else
    rows = j->p->rows + gr->first + tk->first;
  shrink(t, lm->rank, x, xs, lm, n, j->in);
  preft_lora_expand(y, (size_t)j->y_stride, rows, t, (size_t)lm->rank, lm->bt, (size_t)j->out, lm->b_dtype, n,
                    lm->rank, j->out);
}

static void lora_apply_groups(preft_pool *pool, preft_adapter_plan *p, int layer, preft_module module,
                              const float *x, int x_stride, int in, float *y, int y_stride, int out,
                              bool small_only) {
  if (p->n_tasks == 0) return;
  lora_job j = {.p = p,
                .small_only = small_only,
                .layer = layer,
                .module = module,
                .x = x,
                .x_stride = x_stride,
                .in = in,
                .y = y,
                .y_stride = y_stride,
                .out = out};
  if (p->n_tasks == 1)
    lora_task(&j, 0, 0);
  else
    preft_pool_run(pool, p->n_tasks, lora_task, &j);
}

void preft_lora_apply(preft_pool *pool, preft_adapter_plan *p, int layer, preft_module module, const float *x,
                      int x_stride, int in, float *y, int y_stride, int out) {
  lora_apply_groups(pool, p, layer, module, x, x_stride, in, y, y_stride, out, false);
}

/* ---- the fused path (adapter_plan.h) ----------------------------------- */

static atomic_int fused_mode = -1; /* -1: not yet read from the environment */

void preft_lora_set_fused(int on) { atomic_store(&fused_mode, on ? 1 : 0); }

int preft_lora_get_fused(void) {
  int f = atomic_load_explicit(&fused_mode, memory_order_relaxed);
  if (f < 0) {
    const char *s = getenv("PREFT_LORA_FUSED");
    f = !(s && strcmp(s, "0") == 0);
    atomic_store_explicit(&fused_mode, f, memory_order_relaxed);
  }
  return f;
}

static float *module_t(const preft_adapter_plan *p, preft_module m) {
  return p->t + (size_t)m * (size_t)p->n_rows * (size_t)p->t_stride;
}

/* One task of the fused shrink: its rows' t for every module of the job,
 * written at the rows' own places in the plan's t. */
static void shrink_task(void *ctx, int task, int thread) {
  const lora_job *j = ctx;
  const preft_lora_task *tk = &j->p->tasks[task];
  const preft_lora_group *gr = &j->p->groups[tk->group];
  if (!fusable(gr)) return;
  const int n = tk->n, ts = j->p->t_stride;
  float *xg = j->p->scratch + (size_t)thread * j->p->scratch_per_thread;
  float *tmp = xg + j->p->scratch_per_thread - (size_t)n * (size_t)ts;
  int xs;
  const float *x = task_x(j, tk, xg, &xs);
  for (int q = 0; q < j->n_mods; q++) {
    const preft_lora_module *lm = &gr->adapter->lora[j->layer * PREFT_N_MODULES + j->mods[q]];
    if (lm->rank == 0) continue;
    float *t = module_t(j->p, j->mods[q]);
    if (gr->contiguous_start >= 0) {
      shrink(t + (size_t)(gr->contiguous_start + tk->first) * (size_t)ts, ts, x, xs, lm, n, j->in);
    } else {
      const int *rows = j->p->rows + gr->first + tk->first;
      shrink(tmp, lm->rank, x, xs, lm, n, j->in);
      for (int i = 0; i < n; i++)
        memcpy(t + (size_t)rows[i] * (size_t)ts, tmp + (size_t)i * lm->rank,
               sizeof(float) * (size_t)lm->rank);
    }
  }
}

#define PREFETCH_MAX_COLS 64 /* wider blocks: the hardware prefetchers follow Bt's rows */

/* Bt[0:R, j0:j1] of a module into the cache ahead of its use: the next
 * block of a task's columns, while the base product of that block computes
 * (narrow blocks, e.g. a 16-column panel: their short segments of Bt rows
 * would otherwise each wait on memory). Prefetches never fault, so a block
 * past the module's end is harmless. */
static void prefetch_bt(const preft_lora_module *lm, int out, int j0, int j1) {
  const size_t es = preft_dtype_size(lm->b_dtype);
  if (j1 > out) j1 = out;
  if (j1 - j0 > PREFETCH_MAX_COLS) return;
  for (int r = 0; r < lm->rank; r++) {
    const char *row = (const char *)lm->bt + (size_t)r * (size_t)out * es;
    for (size_t b = (size_t)j0 * es; b < (size_t)j1 * es; b += 64) __builtin_prefetch(row + b, 0, 2);
  }
}

/* The epilogue: y[i0:i1, j0:j1] += t·Bt[:, j0:j1] for each run of rows of
 * one group (rows without an adapter are skipped), then the same rows'
 * Bt of the next block of columns is prefetched. */
static void expand_epilogue(const void *ctx, float *y, size_t ys, int i0, int i1, int j0, int j1) {
  const preft_lora_epi_ctx *e = ctx;
  const preft_adapter_plan *p = e->p;
  const float *t = module_t(p, e->module);
  for (int i = i0; i < i1;) {
    int g = p->row_group[i], end = i + 1;
    if (g < 0 || !fusable(&p->groups[g])) {
      i++;
      continue;
    }
    while (end < i1 && p->row_group[end] == g) end++;
    const preft_lora_module *lm = &p->groups[g].adapter->lora[e->layer * PREFT_N_MODULES + e->module];
    if (lm->rank > 0)
      preft_lora_expand(y + (size_t)i * ys + (size_t)j0, ys, NULL, t + (size_t)i * (size_t)p->t_stride,
                        (size_t)p->t_stride,
                        (const char *)lm->bt + (size_t)j0 * preft_dtype_size(lm->b_dtype), (size_t)e->out,
                        lm->b_dtype, end - i, lm->rank, j1 - j0);
    prefetch_bt(lm, e->out, j1, 2 * j1 - j0);
    i = end;
  }
}

/* Whether any group large enough to fuse adapts (layer, module). */
static int module_fused(const preft_adapter_plan *p, int layer, preft_module m) {
  for (int g = 0; g < p->n_groups; g++)
    if (fusable(&p->groups[g]) && p->groups[g].adapter->lora[layer * PREFT_N_MODULES + m].rank > 0) return 1;
  return 0;
}

void preft_lora_gemm(preft_pool *pool, preft_adapter_plan *p, int layer, const preft_module *mods,
                     const float *x, int x_stride, int n, int k, const preft_gemm_out *outs, int n_outs,
                     int accumulate) {
  PREFT_ASSERT(n_outs >= 1 && n_outs <= PREFT_GEMM_MULTI_MAX);
  preft_gemm_out o[PREFT_GEMM_MULTI_MAX];
  int quant = 0;
  for (int i = 0; i < n_outs; i++) {
    o[i] = outs[i];
    o[i].epi = NULL;
    quant |= preft_dtype_is_quant(outs[i].wdt);
  }
  if (p->n_tasks == 0) {
    preft_gemm_multi(pool, x, x_stride, n, k, o, n_outs, accumulate);
    return;
  }
  PREFT_ASSERT(n == p->n_rows);
  int n_fusable = 0;
  for (int g = 0; g < p->n_groups; g++) n_fusable += fusable(&p->groups[g]);
  if (quant || !preft_lora_get_fused() || n_fusable == 0) {
    preft_gemm_multi(pool, x, x_stride, n, k, o, n_outs, accumulate);
    for (int i = 0; i < n_outs; i++)
      preft_lora_apply(pool, p, layer, mods[i], x, x_stride, k, o[i].y, o[i].y_stride, o[i].m);
    return;
  }
  preft_module adapted[PREFT_GEMM_MULTI_MAX];
  int n_adapted = 0;
  for (int i = 0; i < n_outs; i++) {
    if (!module_fused(p, layer, mods[i])) continue;
    adapted[n_adapted++] = mods[i];
    p->epi_ctx[mods[i]] = (preft_lora_epi_ctx){.p = p, .layer = layer, .out = o[i].m, .module = mods[i]};
    p->epi[mods[i]] = (preft_gemm_epilogue){.fn = expand_epilogue, .ctx = &p->epi_ctx[mods[i]]};
    o[i].epi = &p->epi[mods[i]];
  }
  if (n_adapted > 0) {
    lora_job j = {
        .p = p, .layer = layer, .x = x, .x_stride = x_stride, .in = k, .mods = adapted, .n_mods = n_adapted};
    if (p->n_tasks == 1)
      shrink_task(&j, 0, 0);
    else
      preft_pool_run(pool, p->n_tasks, shrink_task, &j);
  }
  preft_gemm_multi(pool, x, x_stride, n, k, o, n_outs, accumulate);
  if (n_fusable < p->n_groups) /* the small groups: their own pass, as unfused */
    for (int i = 0; i < n_outs; i++)
      lora_apply_groups(pool, p, layer, mods[i], x, x_stride, k, o[i].y, o[i].y_stride, o[i].m, true);
}

/* Bt of every adapted module in one allocation. B itself stays where it
 * is: GGUF export, `preft make-adapter`, training's warm start and the
 * loader's stray-tensor check read lora_B in PEFT's [out, R] layout, and for
 * a loaded adapter it lives in the copy of its safetensors file (read into
 * memory so that the file changing cannot change or fault a loaded
 * adapter), so a loaded LoRA takes its file's size plus B's. */
void preft_lora_prepare(preft_adapter *a, const preft_model_config *c) {
  size_t total = 0;
  for (int i = 0; i < a->n_layers * PREFT_N_MODULES; i++) {
    const preft_lora_module *lm = &a->lora[i];
    int in, out;
    preft_module_dims(c, (preft_module)(i % PREFT_N_MODULES), &in, &out);
    if (lm->rank > 0) total += (size_t)lm->rank * (size_t)out * preft_dtype_size(lm->b_dtype);
  }
  free(a->lora_bt);
  a->lora_bt = preft_xalloc_big(total ? total : 1); /* huge pages when big: read in streams */
  a->lora_bt_bytes = total;
  uint8_t *mem = a->lora_bt;
  for (int i = 0; i < a->n_layers * PREFT_N_MODULES; i++) {
    preft_lora_module *lm = &a->lora[i];
    int in, out;
    preft_module_dims(c, (preft_module)(i % PREFT_N_MODULES), &in, &out);
    if (lm->rank == 0) continue;
    preft_lora_transpose_b(mem, lm->b, lm->b_dtype, out, lm->rank);
    lm->bt = mem;
    mem += (size_t)lm->rank * (size_t)out * preft_dtype_size(lm->b_dtype);
  }
}
