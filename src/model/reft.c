/* reft.c - the ReFT residual-stream edits (see adapter_plan.h):
 *   LoReFT: h <- h + Rᵀ(W h + b − R h)     R, W [R, D], b [R]
 *   DiReFT: h <- h + W2ᵀ(W1 h + b)        W1, W2 [R, D], b [R]
 * Both read the unedited h for every term. Only listed rows are touched. */
#include <stdlib.h>

#include "model/adapter_plan.h"
#include "tensor/ops.h"

#define REFT_MAX_RANK_STACK 256

void preft_reft_apply(const preft_adapter_plan *p, int layer, float *x, int d) {
  for (int i = 0; i < p->n_reft; i++) {
    const preft_adapter *a = p->reft_adapter[i];
    if (!a->reft_layer[layer]) continue;
    const preft_reft_slot *s = &a->reft[layer * PREFT_REFT_SLOTS + p->reft_slot[i]];
    if (!s->present) continue;
    float *h = x + (size_t)p->reft_rows[i] * (size_t)d;
    int r = a->reft_rank;
    float stack[REFT_MAX_RANK_STACK], *u = r <= REFT_MAX_RANK_STACK ? stack : preft_xmalloc(sizeof(float) * (size_t)r);
    for (int k = 0; k < r; k++) {
      float v = preft_dot(s->weight + (size_t)k * d, h, d) + s->bias[k];
      if (a->kind == PREFT_ADAPTER_LOREFT) v -= preft_dot(s->rotate + (size_t)k * d, h, d);
      u[k] = v;
    }
    const float *up = a->kind == PREFT_ADAPTER_LOREFT ? s->rotate : s->proj_up;
    for (int k = 0; k < r; k++) preft_axpy(h, u[k], up + (size_t)k * d, d);
    if (u != stack) free(u);
  }
}
