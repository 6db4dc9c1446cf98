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
#include "tensor/gemm.h"

typedef struct preft_lora_group {
  const preft_adapter *adapter;
  int first, n;         /* rows[first .. first+n) of the plan's row list */
  int contiguous_start; /* >= 0: the rows are contiguous from this batch row */
} preft_lora_group;

/* rows [first, first+n) of group `group` (first counts within the group) */
typedef struct preft_lora_task {
  int group, first, n;
} preft_lora_task;

struct preft_adapter_plan;

/* What the fused expand of one module needs (lora.c). */
typedef struct preft_lora_epi_ctx {
  const struct preft_adapter_plan *p;
  int layer, out;
  preft_module module;
} preft_lora_epi_ctx;

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
  /* the fused path (preft_lora_gemm) */
  int *row_group; /* per batch row: its LoRA group, or -1 */
  int n_rows;
  float *t;     /* [PREFT_N_MODULES][n_rows][t_stride]: scale·(x·Aᵀ) per row */
  int t_stride; /* the largest rank of the plan's adapters */
  size_t t_cap;
  preft_lora_epi_ctx epi_ctx[PREFT_N_MODULES];
  preft_gemm_epilogue epi[PREFT_N_MODULES];
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

/* The base products of modules that read the same x, with their LoRA
 * deltas: for each i, outs[i] is module mods[i]'s product (preft_gemm_multi)
 * and every adapted row then gets y[row] += scale · (x[row]·Aᵀ)·Bᵀ, as
 * preft_gemm_multi followed by preft_lora_apply per module would give.
 *
 * Fused (the default): for groups of at least 16 rows (a prompt), one pool
 * job computes the shrink t = scale·(x·Aᵀ) for all the modules (x read once
 * for q, k and v), then the base products run with an epilogue (gemm.h)
 * that adds t·Bᵀ to each block of y right after the block is computed,
 * while it is in cache, on the thread that computed it: no separate pass
 * over y and no extra pool job for the expand. Smaller groups (a decode
 * step's one row per adapter, whose cost is reading A and B, not y) then
 * take the unfused pass. Every number is computed by the same kernels in
 * the same order as on the unfused path, so the two agree bit for bit
 * (tests/unit/test_lora_fused.c).
 *
 * Unfused: preft_gemm_multi, then preft_lora_apply per module. Taken for
 * quantized weights (no epilogue there), when preft_lora_set_fused(0) was
 * called or the environment has PREFT_LORA_FUSED=0 (benchmarks and tests
 * compare the two). outs' epi fields are ignored. */
void preft_lora_gemm(preft_pool *pool, preft_adapter_plan *p, int layer, const preft_module *mods,
                     const float *x, int x_stride, int n, int k, const preft_gemm_out *outs, int n_outs,
                     int accumulate);

/* Process-wide switch between the two paths above (default: fused, or
 * PREFT_LORA_FUSED=0 at the first call). */
void preft_lora_set_fused(int on);
int preft_lora_get_fused(void);

/* The residual-stream edits after decoder layer `layer`, on x [N, D]:
 * LoReFT h += Rᵀ(W h + b − R h); DiReFT h += W2ᵀ(W1 h + b). Runs of
 * consecutive rows of one adapter are batched and spread over the pool. */
void preft_reft_apply(preft_pool *pool, const preft_adapter_plan *p, int layer, float *x, int d);

#endif
