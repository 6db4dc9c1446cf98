/* adapter_plan.h - how one batch's rows are grouped for the adapter kernels,
 * and the kernels themselves.
 *
 * Built once per forward from the rows' (adapter, flag) pairs: LoRA rows
 * whose flag is on are grouped by adapter, so each group's delta is two
 * small products over all its rows (shrink x·Aᵀ to rank R with preft_gemm,
 * scaled, then expand ·Bᵀ with lora_kernels.h), split into row chunks for
 * the threads;
 * ReFT rows are listed with their weight slot. Rows whose flag is off appear
 * nowhere and cost nothing.
 */
#ifndef PREFT_MODEL_ADAPTER_PLAN_H
#define PREFT_MODEL_ADAPTER_PLAN_H

#include <stdint.h>

#include "base/threadpool.h"
#include "model/adapter.h"

typedef struct preft_lora_group {
  const preft_adapter *adapter;
  int first, n;         /* rows[first .. first+n) of the plan's row list */
  int contiguous_start; /* >= 0: the rows are contiguous from this batch row */
} preft_lora_group;

/* rows [first, first+n) of group `group` (first counts within the group) */
typedef struct preft_lora_task {
  int group, first, n;
} preft_lora_task;

typedef struct preft_adapter_plan {
  preft_lora_group *groups;
  int n_groups;
  int *rows; /* row indices, grouped */
  int *reft_rows;
  uint8_t *reft_slot; /* PREFT_REFT_* per ReFT row */
  const preft_adapter **reft_adapter;
  int n_reft;
  preft_lora_task *tasks; /* the LoRA work, split for the threads */
  int n_tasks;
  int cap_rows, cap_groups;
  float *scratch; /* per-thread LoRA scratch: t, gathered x */
  size_t scratch_per_thread, scratch_cap;
} preft_adapter_plan;

/* Groups rows [0, n) by adapter (adapter[i] NULL or flag OFF: no adapter)
 * and splits the groups into tasks for `threads` threads; max_width is the
 * widest module input (sizes the per-thread gather scratch). */
void preft_adapter_plan_build(preft_adapter_plan *p, int n, const preft_adapter *const *adapter,
                              const uint8_t *flag, int max_width, int threads);
void preft_adapter_plan_free(preft_adapter_plan *p);

/* y[row, :out] += scale · (x[row, :in] · Aᵀ) · Bᵀ for every row of every
 * LoRA group whose adapter adapts (layer, module). x rows are x_stride
 * floats apart, y rows y_stride. */
void preft_lora_apply(preft_pool *pool, preft_adapter_plan *p, int layer, preft_module module, const float *x,
                      int x_stride, int in, float *y, int y_stride, int out);

/* The residual-stream edits after decoder layer `layer`, on x [N, D]:
 * LoReFT h += Rᵀ(W h + b − R h); DiReFT h += W2ᵀ(W1 h + b). Runs of
 * consecutive rows of one adapter are batched and spread over the pool. */
void preft_reft_apply(preft_pool *pool, const preft_adapter_plan *p, int layer, float *x, int d);

#endif
