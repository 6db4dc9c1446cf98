/* reft.c - the ReFT residual-stream edits (see adapter_plan.h):
 *   LoReFT: h <- h + Rᵀ(W h + b − R h)     R, W [R, D], b [R]
 *   DiReFT: h <- h + W2ᵀ(W1 h + b)        W1, W2 [R, D], b [R]
 * Both read the unedited h for every term. Only listed rows are touched.
 *
 * The plan lists ReFT rows in batch order; consecutive rows with the same
 * adapter and slot form a run (a prompt chunk is one), cut into chunks of
 * at most REFT_CHUNK rows that the pool runs in parallel. A chunk is two
 * small products: u[n, R] = h·Wᵀ (− h·Rᵀ) + b with preft_gemm, then
 * h += u·W2 (or u·R) with the LoRA expand kernel, whose Bt layout [R, D]
 * is exactly how W2 and R are stored. */
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "model/adapter_plan.h"
#include "model/lora_kernels.h"
#include "tensor/gemm.h"

#define REFT_CHUNK 64          /* rows per task */
#define REFT_STACK_FLOATS 8192 /* u and v on the stack up to this many floats each */

typedef struct {
  const preft_adapter_plan *p;
  int layer, d;
  float *x;
  const int *first, *count; /* chunk c: plan entries first[c] .. first[c]+count[c] */
} reft_job;

/* Plan entries e0 .. e0+n: one adapter and slot, rows consecutive in x. */
static void reft_chunk(const preft_adapter_plan *p, int layer, float *x, int d, int e0, int n) {
  const preft_adapter *a = p->reft_adapter[e0];
  if (!a->reft_layer[layer]) return;
  const preft_reft_slot *s = &a->reft[layer * PREFT_REFT_SLOTS + p->reft_slot[e0]];
  if (!s->present) return;
  float *h = x + (size_t)p->reft_rows[e0] * (size_t)d;
  int r = a->reft_rank;
  size_t count = (size_t)n * (size_t)r;
  float u_stack[REFT_STACK_FLOATS], v_stack[REFT_STACK_FLOATS];
  float *u = count <= REFT_STACK_FLOATS ? u_stack : preft_xmalloc(sizeof(float) * count);
  bool loreft = a->kind == PREFT_ADAPTER_LOREFT;
  preft_gemm(NULL, u, r, h, d, s->weight, PREFT_F32, n, d, r, 0);
  if (loreft) {
    float *v = count <= REFT_STACK_FLOATS ? v_stack : preft_xmalloc(sizeof(float) * count);
    preft_gemm(NULL, v, r, h, d, s->rotate, PREFT_F32, n, d, r, 0);
    for (size_t i = 0; i < count; i++) u[i] -= v[i];
    if (v != v_stack) free(v);
  }
  for (int i = 0; i < n; i++)
    for (int k = 0; k < r; k++) u[(size_t)i * r + k] += s->bias[k];
  preft_lora_expand(h, (size_t)d, NULL, u, (size_t)r, loreft ? s->rotate : s->proj_up, (size_t)d, PREFT_F32,
                    n, r, d);
  if (u != u_stack) free(u);
}

static void reft_task(void *ctx, int c, int thread) {
  const reft_job *j = ctx;
  reft_chunk(j->p, j->layer, j->x, j->d, j->first[c], j->count[c]);
}

void preft_reft_apply(preft_pool *pool, const preft_adapter_plan *p, int layer, float *x, int d) {
  if (p->n_reft == 0) return;
  int *first = preft_xmalloc(sizeof(int) * 2 * (size_t)p->n_reft), *count = first + p->n_reft;
  int chunks = 0;
  for (int e = 0; e < p->n_reft;) {
    int n = 1;
    while (e + n < p->n_reft && n < REFT_CHUNK && p->reft_adapter[e + n] == p->reft_adapter[e] &&
           p->reft_slot[e + n] == p->reft_slot[e] && p->reft_rows[e + n] == p->reft_rows[e] + n)
      n++;
    first[chunks] = e, count[chunks++] = n;
    e += n;
  }
  reft_job j = {.p = p, .layer = layer, .d = d, .x = x, .first = first, .count = count};
  preft_pool_run(pool, chunks, reft_task, &j);
  free(first);
}
