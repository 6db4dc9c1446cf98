/* adamw.c - AdamW and gradient clipping (see optim.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/huge_alloc.h"
#include "train/optim.h"

void preft_adamw_init(preft_adamw *o, size_t n, double beta1, double beta2, double eps, double weight_decay) {
  memset(o, 0, sizeof *o);
  o->beta1 = beta1;
  o->beta2 = beta2;
  o->eps = eps;
  o->weight_decay = weight_decay;
  o->n = n;
  o->m = preft_xcalloc_big(2 * (n ? n : 1), sizeof(float));
  o->v = o->m + n;
}

void preft_adamw_free(preft_adamw *o) {
  free(o->m);
  memset(o, 0, sizeof *o);
}

void preft_adamw_step(preft_adamw *o, preft_param_set *ps, double lr) {
  o->t++;
  o->lr = lr;
  float b1 = (float)o->beta1, b2 = (float)o->beta2, eps = (float)o->eps;
  float c1 = (float)(1.0 / (1.0 - pow(o->beta1, (double)o->t)));
  float c2 = (float)(1.0 / (1.0 - pow(o->beta2, (double)o->t)));
  for (int k = 0; k < ps->n_t; k++) {
    preft_train_tensor *t = &ps->t[k];
    size_t off = (size_t)(t->p - ps->mem);
    float *m = o->m + off, *v = o->v + off, *p = t->p;
    const float *g = t->g;
    float wd = t->decay ? (float)o->weight_decay : 0.0f, flr = (float)lr;
    for (size_t i = 0; i < t->n; i++) {
      m[i] = b1 * m[i] + (1.0f - b1) * g[i];
      v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
      p[i] -= flr * ((m[i] * c1) / (sqrtf(v[i] * c2) + eps) + wd * p[i]);
    }
  }
}

double preft_clip_grad_norm(preft_param_set *ps, double max_norm) {
  double ss = 0.0;
  for (size_t i = 0; i < ps->n; i++) ss += (double)ps->grad[i] * ps->grad[i];
  double norm = sqrt(ss);
  if (max_norm > 0 && norm > max_norm && isfinite(norm)) {
    float s = (float)(max_norm / norm);
    for (size_t i = 0; i < ps->n; i++) ps->grad[i] *= s;
  }
  return norm;
}
