/* lora.c - grouping a batch's rows by adapter and the grouped LoRA delta
 * (see adapter_plan.h). */
#include <stdlib.h>
#include <string.h>

#include "model/adapter_plan.h"
#include "tensor/gemm.h"

#define LORA_CHUNK 128 /* rows per shrink/expand pass; bounds the scratch */

void preft_adapter_plan_free(preft_adapter_plan *p) {
  free(p->groups);
  free(p->rows);
  free(p->reft_rows);
  free(p->reft_slot);
  free(p->reft_adapter);
  free(p->scratch);
  memset(p, 0, sizeof *p);
}

void preft_adapter_plan_build(preft_adapter_plan *p, int n, const preft_adapter *const *adapter, const uint8_t *flag,
                              int max_width, int threads) {
  p->n_groups = 0;
  p->n_reft = 0;
  if (!adapter) return;
  if (n > p->cap_rows) {
    p->rows = preft_xrealloc(p->rows, sizeof(int) * (size_t)n);
    p->reft_rows = preft_xrealloc(p->reft_rows, sizeof(int) * (size_t)n);
    p->reft_slot = preft_xrealloc(p->reft_slot, (size_t)n);
    p->reft_adapter = preft_xrealloc(p->reft_adapter, sizeof(void *) * (size_t)n);
    p->groups = preft_xrealloc(p->groups, sizeof(preft_lora_group) * (size_t)n);
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
      p->groups[g] = (preft_lora_group){a, 0, 0, i};
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
  /* scratch per thread: gathered x chunk, rank-R intermediate, delta chunk */
  p->scratch_per_thread = (size_t)LORA_CHUNK * ((size_t)max_width * 2 + (size_t)max_rank);
  size_t need = p->scratch_per_thread * (size_t)threads;
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
  preft_pool *inner; /* pool for the GEMMs when groups run one at a time */
} lora_job;

/* One group: for each chunk of its rows, t = (x·Aᵀ)·scale, y += t·Bᵀ. */
static void lora_group(const lora_job *j, int g, int thread) {
  const preft_lora_group *gr = &j->p->groups[g];
  const preft_lora_module *lm = &gr->adapter->lora[j->layer * PREFT_N_MODULES + j->module];
  if (lm->rank == 0) return;
  float *scratch = j->p->scratch + (size_t)thread * j->p->scratch_per_thread;
  float *xg = scratch, *yg = xg + (size_t)LORA_CHUNK * (size_t)j->in;
  float *t = yg + (size_t)LORA_CHUNK * (size_t)j->out;
  const int *rows = j->p->rows + gr->first;
  for (int c0 = 0; c0 < gr->n; c0 += LORA_CHUNK) {
    int n = gr->n - c0 < LORA_CHUNK ? gr->n - c0 : LORA_CHUNK;
    const float *xin;
    int xs;
    if (gr->contiguous_start >= 0) {
      xin = j->x + (size_t)(gr->contiguous_start + c0) * (size_t)j->x_stride;
      xs = j->x_stride;
    } else {
      for (int i = 0; i < n; i++)
        memcpy(xg + (size_t)i * j->in, j->x + (size_t)rows[c0 + i] * (size_t)j->x_stride, sizeof(float) * (size_t)j->in);
      xin = xg;
      xs = j->in;
    }
    preft_gemm(j->inner, t, lm->rank, xin, xs, lm->a, lm->a_dtype, n, j->in, lm->rank, 0);
    for (int i = 0; i < n * lm->rank; i++) t[i] *= lm->scale;
    if (gr->contiguous_start >= 0) {
      float *yout = j->y + (size_t)(gr->contiguous_start + c0) * (size_t)j->y_stride;
      preft_gemm(j->inner, yout, j->y_stride, t, lm->rank, lm->b, lm->b_dtype, n, lm->rank, j->out, 1);
    } else {
      preft_gemm(j->inner, yg, j->out, t, lm->rank, lm->b, lm->b_dtype, n, lm->rank, j->out, 0);
      for (int i = 0; i < n; i++) {
        float *dst = j->y + (size_t)rows[c0 + i] * (size_t)j->y_stride;
        const float *src = yg + (size_t)i * j->out;
        for (int k = 0; k < j->out; k++) dst[k] += src[k];
      }
    }
  }
}

static void lora_task(void *ctx, int g, int thread) { lora_group(ctx, g, thread); }

void preft_lora_apply(preft_pool *pool, preft_adapter_plan *p, int layer, preft_module module, const float *x,
                      int x_stride, int in, float *y, int y_stride, int out) {
  if (p->n_groups == 0) return;
  lora_job j = {p, layer, module, x, x_stride, in, y, y_stride, out, NULL};
  if (p->n_groups >= 2 * preft_pool_size(pool)) {
    /* many adapters: one group per task, each GEMM on one thread; groups
     * write disjoint rows of y */
    preft_pool_run(pool, p->n_groups, lora_task, &j);
  } else {
    j.inner = pool;
    for (int g = 0; g < p->n_groups; g++) lora_group(&j, g, 0);
  }
}
