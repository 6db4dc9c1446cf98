/* schedule.c - the learning-rate schedule (see optim.h). */
#include <math.h>

#include "train/optim.h"

double preft_lr_at(int64_t step, int64_t total, int64_t warmup, double peak, double min_frac) {
  if (warmup > 0 && step < warmup) return peak * (double)(step + 1) / (double)warmup;
  int64_t span = total - warmup;
  if (span <= 1) return peak;
  double progress = (double)(step - warmup) / (double)(span - 1);
  if (progress > 1.0) progress = 1.0;
  double cosine = 0.5 * (1.0 + cos(M_PI * progress));
  return peak * (min_frac + (1.0 - min_frac) * cosine);
}
