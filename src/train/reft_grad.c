/* reft_grad.c - the ReFT edits of a layer's output and their backward (see
 * adapter_grad.h). With h the row before the edit and dh' the gradient of
 * the edited row:
 *   LoReFT  h' = h + Rᵀu, u = W h + b − R h.   g = R dh':
 *           dR += u dh'ᵀ − g hᵀ,  dW += g hᵀ,  db += g,  dh = dh' + (W − R)ᵀ g
 *   DiReFT  h' = h + W2ᵀu, u = W1 h + b.       g = W2 dh':
 *           dW2 += u dh'ᵀ,  dW1 += g hᵀ,  db += g,  dh = dh' + W1ᵀ g
 * Rows are visited serially (the slot gradients are shared); the cost is
 * O(R·D) per flagged row. */
#include <stdlib.h>
#include <string.h>

#include "tensor/ops.h"
#include "train/adapter_grad.h"

static const preft_train_reft *row_slot(const preft_train_adapter *ad, int layer, uint8_t flag) {
  if (flag == PREFT_ADAPT_OFF || !ad->layers[layer]) return NULL;
  int s = flag == PREFT_ADAPT_FIRST  ? PREFT_REFT_FIRST
          : flag == PREFT_ADAPT_LAST ? PREFT_REFT_LAST
                                     : PREFT_REFT_SHARED;
  const preft_train_reft *slot = &ad->reft[layer * PREFT_REFT_SLOTS + s];
  return slot->present ? slot : NULL;
}

/* u[R] = W h + b (− R h for LoReFT), as reft.c computes it */
static void reft_u(const preft_train_adapter *ad, const preft_train_reft *s, const float *h, float *u) {
  int d = ad->dim;
  for (int k = 0; k < ad->rank; k++) {
    float v = preft_dot(s->weight + (size_t)k * d, h, d) + s->bias[k];
    if (ad->kind == PREFT_ADAPTER_LOREFT) v -= preft_dot(s->rotate + (size_t)k * d, h, d);
    u[k] = v;
  }
}

void preft_reft_forward(float *x, float *x_pre, const preft_train_adapter *ad, int layer, const uint8_t *flag,
                        int n) {
  int d = ad->dim;
  memcpy(x_pre, x, sizeof(float) * (size_t)n * d);
  float *u = malloc(sizeof(float) * (size_t)ad->rank);
  for (int i = 0; i < n; i++) {
    const preft_train_reft *s = row_slot(ad, layer, flag[i]);
    if (!s) continue;
    float *h = x + (size_t)i * d;
    reft_u(ad, s, x_pre + (size_t)i * d, u);
    const float *up = ad->kind == PREFT_ADAPTER_LOREFT ? s->rotate : s->proj_up;
    for (int k = 0; k < ad->rank; k++) preft_axpy(h, u[k], up + (size_t)k * d, d);
  }
  free(u);
}

void preft_reft_backward(float *dx, const float *x_pre, const preft_train_adapter *ad, int layer,
                         const uint8_t *flag, int n) {
  int d = ad->dim, r = ad->rank;
  bool lo = ad->kind == PREFT_ADAPTER_LOREFT;
  float *u = malloc(sizeof(float) * (size_t)r * 2), *g = u + r;
  for (int i = 0; i < n; i++) {
    const preft_train_reft *s = row_slot(ad, layer, flag[i]);
    if (!s) continue;
    const float *h = x_pre + (size_t)i * d;
    float *dh = dx + (size_t)i * d;
    reft_u(ad, s, h, u);
    const float *up = lo ? s->rotate : s->proj_up;
    float *g_up = lo ? s->g_rotate : s->g_proj_up;
    for (int k = 0; k < r; k++) g[k] = preft_dot(up + (size_t)k * d, dh, d);
    for (int k = 0; k < r; k++) {
      if (g_up) preft_axpy(g_up + (size_t)k * d, u[k], dh, d);
      if (lo && s->g_rotate) preft_axpy(s->g_rotate + (size_t)k * d, -g[k], h, d);
      if (s->g_weight) preft_axpy(s->g_weight + (size_t)k * d, g[k], h, d);
      if (s->g_bias) s->g_bias[k] += g[k];
    }
    /* dh = dh' + Wᵀg (− Rᵀg); the weight terms read dh' through g only */
    for (int k = 0; k < r; k++) {
      preft_axpy(dh, g[k], s->weight + (size_t)k * d, d);
      if (lo) preft_axpy(dh, -g[k], s->rotate + (size_t)k * d, d);
    }
  }
  free(u);
}
