/* layers_fwd_bwd.c - forward/backward pairs of the decoder's blocks (see
 * layers.h for the shapes and the accumulation rules). */
#include "train/layers.h"

#include <math.h>
#include <string.h>

#include "tensor/ops.h"

#define ROW_BLOCK 16 /* rows per pool task in the row-wise kernels */

static int row_tasks(int n) { return (n + ROW_BLOCK - 1) / ROW_BLOCK; }
static void row_range(int task, int n, int *r0, int *r1) {
  *r0 = task * ROW_BLOCK;
  *r1 = *r0 + ROW_BLOCK < n ? *r0 + ROW_BLOCK : n;
}

/* ---- embedding ---------------------------------------------------------------- */

void preft_embedding_forward(float *x, const int *token, const float *embed, int n, int d) {
  for (int i = 0; i < n; i++)
    memcpy(x + (size_t)i * d, embed + (size_t)token[i] * d, sizeof(float) * (size_t)d);
}

void preft_embedding_backward(float *dembed, const float *dx, const int *token, int n, int d) {
  for (int i = 0; i < n; i++) preft_axpy(dembed + (size_t)token[i] * d, 1.0f, dx + (size_t)i * d, d);
}

/* ---- RMSNorm -------------------------------------------------------------------- */

typedef struct {
  float *out, *rstd, *dx;
  const float *x, *w, *dout;
  int n, d;
  float eps;
} norm_job;

static void norm_fwd_task(void *p, int task, int thread) {
  const norm_job *j = p;
  int r0, r1;
  row_range(task, j->n, &r0, &r1);
  for (int i = r0; i < r1; i++) {
    const float *x = j->x + (size_t)i * j->d;
    double ss = preft_dot_f64_fast(x, x, NULL, j->d);
    float inv = (float)(1.0 / sqrt(ss / j->d + (double)j->eps));
    float *o = j->out + (size_t)i * j->d;
    for (int c = 0; c < j->d; c++) o[c] = x[c] * inv * j->w[c];
    j->rstd[i] = inv;
  }
}

void preft_rmsnorm_forward(preft_pool *pool, float *out, float *rstd, const float *x, const float *w, int n,
                           int d, float eps) {
  norm_job j = {.out = out, .rstd = rstd, .x = x, .w = w, .n = n, .d = d, .eps = eps};
  preft_pool_run(pool, row_tasks(n), norm_fwd_task, &j);
}

/* y = x·r·w, r = (mean(x²)+eps)^-1/2:  dx = r·g − x·r³·(g·x)/D with g = dy·w */
static void norm_bwd_task(void *p, int task, int thread) {
  const norm_job *j = p;
  int r0, r1;
  row_range(task, j->n, &r0, &r1);
  for (int i = r0; i < r1; i++) {
    const float *x = j->x + (size_t)i * j->d, *dy = j->dout + (size_t)i * j->d;
    float *dx = j->dx + (size_t)i * j->d;
    double gx = preft_dot_f64_fast(dy, j->w, x, j->d);
    float r = j->rstd[i];
    float coef = (float)(gx * (double)r * r * r / j->d);
    for (int c = 0; c < j->d; c++) dx[c] += r * dy[c] * j->w[c] - x[c] * coef;
  }
}

void preft_rmsnorm_backward(preft_pool *pool, float *dx, float *dw, const float *dout, const float *x,
                            const float *w, const float *rstd, int n, int d) {
  norm_job j = {.rstd = (float *)rstd, .dx = dx, .x = x, .w = w, .dout = dout, .n = n, .d = d};
  preft_pool_run(pool, row_tasks(n), norm_bwd_task, &j);
  if (!dw) return;
  for (int i = 0; i < n; i++) {
    const float *xr = x + (size_t)i * d, *dy = dout + (size_t)i * d;
    float r = rstd[i];
    for (int c = 0; c < d; c++) dw[c] += dy[c] * xr[c] * r;
  }
}

/* ---- RoPE ------------------------------------------------------------------------ */

void preft_rope_forward(float *x, const float *cos, const float *sin, int n, int heads, int head_dim) {
  int half = head_dim / 2;
  for (int i = 0; i < n; i++)
    for (int h = 0; h < heads; h++)
      preft_rope_rotate_half(x + ((size_t)i * heads + h) * head_dim, cos + (size_t)i * half,
                             sin + (size_t)i * half, head_dim);
}

/* forward: (a, b) -> (a c − b s, b c + a s); its transpose: (da, db) -> (da c + db s, db c − da s) */
void preft_rope_backward(float *dx, const float *cos, const float *sin, int n, int heads, int head_dim) {
  int half = head_dim / 2;
  for (int i = 0; i < n; i++) {
    const float *cs = cos + (size_t)i * half, *sn = sin + (size_t)i * half;
    for (int h = 0; h < heads; h++) {
      float *v = dx + ((size_t)i * heads + h) * head_dim;
      for (int k = 0; k < half; k++) {
        float a = v[k], b = v[k + half];
        v[k] = a * cs[k] + b * sn[k];
        v[k + half] = b * cs[k] - a * sn[k];
      }
    }
  }
}

/* ---- causal attention with GQA: attention_fwd_bwd.c ------------------------------ */

/* ---- SwiGLU ---------------------------------------------------------------------- */

typedef struct {
  float *out, *da, *db;
  const float *a, *b, *dout;
  int n;
} swiglu_job;

#define EW_BLOCK 4096

/* out = silu(a)·b with silu(a) = a·σ(a) (ops.h, vectorised) */
static void swiglu_fwd_task(void *p, int task, int thread) {
  const swiglu_job *j = p;
  int i0 = task * EW_BLOCK, i1 = i0 + EW_BLOCK < j->n ? i0 + EW_BLOCK : j->n;
  preft_swiglu_out_fast(j->out + i0, j->a + i0, j->b + i0, i1 - i0);
}

/* silu'(a) = σ(a)(1 + a(1 − σ(a))) (ops.h, vectorised) */
static void swiglu_bwd_task(void *p, int task, int thread) {
  const swiglu_job *j = p;
  int i0 = task * EW_BLOCK, i1 = i0 + EW_BLOCK < j->n ? i0 + EW_BLOCK : j->n;
  preft_swiglu_grad_fast(j->da + i0, j->db + i0, j->dout + i0, j->a + i0, j->b + i0, i1 - i0);
}

void preft_swiglu_forward(preft_pool *pool, float *out, const float *a, const float *b, int n) {
  swiglu_job j = {.out = out, .a = a, .b = b, .n = n};
  preft_pool_run(pool, (n + EW_BLOCK - 1) / EW_BLOCK, swiglu_fwd_task, &j);
}

void preft_swiglu_backward(preft_pool *pool, float *da, float *db, const float *dout, const float *a,
                           const float *b, int n) {
  swiglu_job j = {.da = da, .db = db, .a = a, .b = b, .dout = dout, .n = n};
  preft_pool_run(pool, (n + EW_BLOCK - 1) / EW_BLOCK, swiglu_bwd_task, &j);
}

/* ---- cross-entropy -------------------------------------------------------------- */

typedef struct {
  float *p, *loss;
  const int *target;
  int n, v;
  float dloss;
  const float *row_dloss; /* [N] or NULL: dloss for every row */
} ce_job;

static void ce_fwd_task(void *p, int task, int thread) {
  const ce_job *j = p;
  int r0, r1;
  row_range(task, j->n, &r0, &r1);
  for (int i = r0; i < r1; i++) {
    float *l = j->p + (size_t)i * j->v;
    double lse = preft_logsumexp(l, j->v);
    j->loss[i] = j->target[i] >= 0 ? (float)(lse - l[j->target[i]]) : 0.0f;
    /* p = e^(l − lse) = e^(l − hi)·e^(−lo), lse = hi + lo split so that the
     * FP32 shift loses nothing (vectorised exp, ops.h) */
    float hi = (float)lse, lo_factor = (float)exp(-(lse - (double)hi));
    preft_exp_affine_fast(l, j->v, 1.0f, hi);
    for (int c = 0; c < j->v; c++) l[c] *= lo_factor;
  }
}

static double loss_sum(const float *loss, int n) {
  double sum = 0.0;
  for (int i = 0; i < n; i++) sum += loss[i];
  return sum;
}

double preft_crossentropy_forward(preft_pool *pool, float *probs_inplace, float *loss, const int *target,
                                  int n, int v) {
  ce_job j = {.p = probs_inplace, .loss = loss, .target = target, .n = n, .v = v};
  preft_pool_run(pool, row_tasks(n), ce_fwd_task, &j);
  return loss_sum(loss, n);
}

static void ce_bwd_task(void *p, int task, int thread) {
  const ce_job *j = p;
  int r0, r1;
  row_range(task, j->n, &r0, &r1);
  for (int i = r0; i < r1; i++) {
    float *g = j->p + (size_t)i * j->v;
    if (j->target[i] < 0) {
      memset(g, 0, sizeof(float) * (size_t)j->v);
      continue;
    }
    float d = j->row_dloss ? j->row_dloss[i] : j->dloss;
    for (int c = 0; c < j->v; c++) g[c] *= d;
    g[j->target[i]] -= d;
  }
}

/* both on a block of rows while it is in cache: the same arithmetic */
static void ce_fwd_bwd_task(void *p, int task, int thread) {
  ce_fwd_task(p, task, thread);
  ce_bwd_task(p, task, thread);
}

double preft_crossentropy_fwd_bwd(preft_pool *pool, float *logits_inplace, float *loss, const int *target,
                                  int n, int v, float dloss) {
  ce_job j = {.p = logits_inplace, .loss = loss, .target = target, .n = n, .v = v, .dloss = dloss};
  preft_pool_run(pool, row_tasks(n), ce_fwd_bwd_task, &j);
  return loss_sum(loss, n);
}

void preft_crossentropy_backward(preft_pool *pool, float *dlogits_inplace, const int *target, int n, int v,
                                 float dloss) {
  ce_job j = {.p = dlogits_inplace, .target = target, .n = n, .v = v, .dloss = dloss};
  preft_pool_run(pool, row_tasks(n), ce_bwd_task, &j);
}

void preft_crossentropy_backward_rows(preft_pool *pool, float *dlogits_inplace, const int *target, int n,
                                      int v, const float *row_dloss) {
  ce_job j = {.p = dlogits_inplace, .target = target, .n = n, .v = v, .row_dloss = row_dloss};
  preft_pool_run(pool, row_tasks(n), ce_bwd_task, &j);
}

/* ---- bias ------------------------------------------------------------------------- */

void preft_bias_forward(float *y, const float *bias, int n, int m) {
  for (int i = 0; i < n; i++) preft_axpy(y + (size_t)i * m, 1.0f, bias, m);
}

void preft_bias_backward(float *dbias, const float *dy, int n, int m) {
  for (int i = 0; i < n; i++) preft_axpy(dbias, 1.0f, dy + (size_t)i * m, m);
}
