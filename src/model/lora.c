/* lora.c - grouping a batch's rows by adapter and the grouped LoRA delta
 * (see adapter_plan.h). */
#include <stdlib.h>
#include <string.h>

#include "model/adapter_plan.h"
#include "model/lora_kernels.h"
#include "tensor/gemm.h"

#define LORA_CHUNK 128  /* most rows per task; bounds the scratch */
#define LORA_MIN_TASK 8 /* fewest rows a group is split into per task */

void preft_adapter_plan_free(preft_adapter_plan *p) {
  free(p->groups);
  free(p->rows);
  free(p->reft_rows);
  free(p->reft_slot);
  free(p->reft_adapter);
  free(p->scratch);
  free(p->tasks);
  memset(p, 0, sizeof *p);
}

void preft_adapter_plan_build(preft_adapter_plan *p, int n, const preft_adapter *const *adapter,
                              const uint8_t *flag, int max_width, int threads) {
  p->n_groups = 0;
  p->n_tasks = 0;
  p->n_reft = 0;
  if (!adapter) return;
  if (n > p->cap_rows) {
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
  for (int g = 0; g < p->n_groups; g++) {
    preft_lora_group *gr = &p->groups[g];
    const int *r = p->rows + gr->first;
    gr->contiguous_start = r[0];
    for (int k = 1; k < gr->n; k++)
      if (r[k] != r[0] + k) gr->contiguous_start = -1;
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
} lora_job;

/* One task: rows [first, first+n) of a group; t = scale·(x·Aᵀ), y += t·Bt.
 * Tasks write disjoint rows of y, so each runs its products on one thread.
 * The shrink reads x in place when the rows are contiguous and gathers
 * them otherwise; the expand writes y in place either way. */
static void lora_task(void *ctx, int task, int thread) {
  const lora_job *j = ctx;
  const preft_lora_task *tk = &j->p->tasks[task];
  const preft_lora_group *gr = &j->p->groups[tk->group];
  const preft_lora_module *lm = &gr->adapter->lora[j->layer * PREFT_N_MODULES + j->module];
  if (lm->rank == 0) return;
  PREFT_ASSERT(lm->bt != NULL); /* every LoRA adapter is built by preft_lora_prepare */
  const int n = tk->n;
  /* gathered x at the start of the thread's scratch, t at its end */
  float *xg = j->p->scratch + (size_t)thread * j->p->scratch_per_thread;
  float *t = xg + j->p->scratch_per_thread - (size_t)n * (size_t)lm->rank;
  const float *x;
  int xs;
  float *y = j->y;
  const int *rows = NULL;
  if (gr->contiguous_start >= 0) {
    x = j->x + (size_t)(gr->contiguous_start + tk->first) * (size_t)j->x_stride;
    xs = j->x_stride;
    y += (size_t)(gr->contiguous_start + tk->first) * (size_t)j->y_stride;
  } else {
    rows = j->p->rows + gr->first + tk->first;
    for (int i = 0; i < n; i++)
      memcpy(xg + (size_t)i * j->in, j->x + (size_t)rows[i] * (size_t)j->x_stride,
             sizeof(float) * (size_t)j->in);
    x = xg;
    xs = j->in;
  }
  preft_gemm(NULL, t, lm->rank, x, xs, lm->a, lm->a_dtype, n, j->in, lm->rank, 0);
  for (int i = 0; i < n * lm->rank; i++) t[i] *= lm->scale;
  preft_lora_expand(y, (size_t)j->y_stride, rows, t, lm->bt, lm->b_dtype, n, lm->rank, j->out);
}

void preft_lora_apply(preft_pool *pool, preft_adapter_plan *p, int layer, preft_module module, const float *x,
                      int x_stride, int in, float *y, int y_stride, int out) {
  if (p->n_tasks == 0) return;
  lora_job j = {.p = p,
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
  a->lora_bt = preft_xmalloc(total ? total : 1);
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
