/* bert_rows.c - the BERT training pass's row-wise steps over the pool (see
 * bert_rows.h). */
#include "train/bert_rows.h"

#include <math.h>

#define MIN_WORK 16384 /* floats per pool task below which a step stays on one thread */

void preft_bt_ln_fwd_row(const float *x, const float *w, const float *b, int D, float eps, float *xhat,
                         float *rstd, float *out) {
  double s = 0;
  for (int d = 0; d < D; d++) s += x[d];
  double mean = s / D, v = 0;
  for (int d = 0; d < D; d++) v += ((double)x[d] - mean) * ((double)x[d] - mean);
  float r = (float)(1.0 / sqrt(v / D + (double)eps));
  *rstd = r;
  for (int d = 0; d < D; d++) {
    float h = (float)(((double)x[d] - mean) * r);
    xhat[d] = h;
    out[d] = h * w[d] + b[d];
  }
}

void preft_bt_ln_bwd_row(const float *dy, const float *xhat, float rstd, const float *w, int D, float *dx) {
  double s1 = 0, s2 = 0;
  for (int d = 0; d < D; d++) {
    double g = (double)dy[d] * w[d];
    s1 += g;
    s2 += g * xhat[d];
  }
  double m1 = s1 / D, m2 = s2 / D;
  for (int d = 0; d < D; d++) dx[d] = (float)(rstd * ((double)dy[d] * w[d] - m1 - xhat[d] * m2));
}

void preft_bt_mask_row(float *mask, int m, double p, const preft_rng *rng, uint64_t first) {
  preft_rng r = *rng;
  preft_rng_skip(&r, first);
  float keep = (float)(1.0 / (1.0 - p));
  for (int j = 0; j < m; j++) mask[j] = preft_rng_uniform(&r) < p ? 0.0f : keep;
}

typedef struct {
  float *mask;
  uint8_t *keep;
  int m;
  double p;
  preft_rng rng;
} mask_job;

static void mask_rows(void *ctx, int r0, int r1) {
  const mask_job *j = ctx;
  size_t m = (size_t)j->m;
  if (j->mask) {
    for (int i = r0; i < r1; i++) preft_bt_mask_row(j->mask + (size_t)i * m, j->m, j->p, &j->rng, i * m);
    return;
  }
  preft_rng r = j->rng;
  preft_rng_skip(&r, (size_t)r0 * m);
  for (size_t e = (size_t)r0 * m; e < (size_t)r1 * m; e++) j->keep[e] = preft_rng_uniform(&r) >= j->p;
}

void preft_bt_dropout_masks(preft_pool *pool, float *mask, uint8_t *keep, int n, int m, double p,
                            preft_rng *rng) {
  mask_job j = {mask, keep, m, p, *rng};
  preft_pool_run_rows(pool, n, (size_t)m, MIN_WORK, mask_rows, &j);
  preft_rng_skip(rng, (uint64_t)n * (uint64_t)m);
}

void preft_bt_col_sums(float *gw, float *gb, const float *dy, const float *x, int n, int m) {
  for (int i = 0; i < n; i++) {
    const float *r = dy + (size_t)i * m, *xr = x ? x + (size_t)i * m : NULL;
    if (gw && gb) {
      for (int c = 0; c < m; c++) {
        gw[c] += r[c] * xr[c];
        gb[c] += r[c];
      }
    } else if (gw) {
      for (int c = 0; c < m; c++) gw[c] += r[c] * xr[c];
    } else if (gb) {
      for (int c = 0; c < m; c++) gb[c] += r[c];
    }
  }
}
