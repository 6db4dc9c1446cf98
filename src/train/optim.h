/* optim.h - AdamW with decoupled weight decay, global-norm gradient
 * clipping, and the learning-rate schedule (linear warmup, cosine decay).
 *
 * AdamW (Loshchilov & Hutter), per element of a preft_param_set, step t >= 1:
 *   m = b1·m + (1−b1)·g        v = b2·v + (1−b2)·g²
 *   p -= lr · ( (m/(1−b1^t)) / (sqrt(v/(1−b2^t)) + eps) + wd·p )
 * wd applies only to tensors marked decay (matrices; never norms, biases
 * or LoReFT's R). State m, v lives in one allocation of 2·n floats.
 */
#ifndef PREFT_TRAIN_OPTIM_H
#define PREFT_TRAIN_OPTIM_H

#include <stdint.h>

#include "train/train_model.h"

typedef struct preft_adamw {
  double lr, beta1, beta2, eps, weight_decay;
  int64_t t; /* steps taken */
  size_t n;
  float *m, *v; /* [n] each, one allocation */
} preft_adamw;

void preft_adamw_init(preft_adamw *o, size_t n, double beta1, double beta2, double eps, double weight_decay);
void preft_adamw_free(preft_adamw *o);
/* One step on every tensor of ps with its current gradients, at rate lr. */
void preft_adamw_step(preft_adamw *o, preft_param_set *ps, double lr);

/* Global L2 norm of the gradients; when above max_norm (> 0), scales them
 * down to max_norm. Returns the norm before clipping. */
double preft_clip_grad_norm(preft_param_set *ps, double max_norm);

/* lr at step (0-based) of total: linear warmup over `warmup` steps to
 * peak, then cosine from peak to peak·min_frac at the last step. */
double preft_lr_at(int64_t step, int64_t total, int64_t warmup, double peak, double min_frac);

#endif
