/* bert_heads.c - the heads on the trainable encoder (see bert_train.h):
 * the task heads of the cross-encoder (pooler on the first token, dropout,
 * linear), of the bi-encoder (sentence embeddings u, v by pooler or mean;
 * paraphrase from [u, v, |u-v|, u*v], similarity 2.5·(cos(u, v) + 1)), the
 * early-exit heads, the task losses, SMART's divergences and the MLM head
 * with its decoder tied to the word embeddings. Examples are few (a batch),
 * so the heads are plain loops; the MLM head's vocabulary product runs on
 * the GEMM, and its rows (transform, LayerNorm, softmax over the
 * vocabulary) and column sums split over the pool (bert_rows.h: the same
 * numbers on any thread count). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/gemm.h"
#include "tensor/gemm_train.h"
#include "train/bert_rows.h"
#include "train/bert_train.h"

void preft_bt_head_cache_free(preft_bt_head_cache *c) {
  free(c->pooled);
  free(c->feat);
  free(c->fmask);
  free(c->cosv);
  memset(c, 0, sizeof *c);
}

static const preft_bt_head *pooler_of(const preft_bt_model *m, int layer) {
  return layer == m->cfg.n_layers - 1 ? &m->pooler : &m->exit_pooler[layer];
}

static const preft_bt_head *head_of(const preft_bt_model *m, preft_bt_task t, int layer) {
  return layer == m->cfg.n_layers - 1 ? &m->heads[t] : &m->exit_heads[layer * PREFT_BT_N_TASKS + t];
}

/* y[out] = W·x + b */
static void affine(const preft_bt_head *h, const float *x, float *y) {
  for (int o = 0; o < h->out; o++) {
    double s = h->b[o];
    const float *w = h->w + (size_t)o * h->in;
    for (int i = 0; i < h->in; i++) s += (double)w[i] * x[i];
    y[o] = (float)s;
  }
}

/* gW += dy·xᵀ, gb += dy; dx (+)= Wᵀ·dy (dx may be NULL) */
static void affine_bwd(preft_bt_head *h, const float *x, const float *dy, float *dx, bool param_grads) {
  for (int o = 0; o < h->out; o++) {
    const float *w = h->w + (size_t)o * h->in;
    if (param_grads) {
      float *gw = h->gw + (size_t)o * h->in;
      for (int i = 0; i < h->in; i++) gw[i] += dy[o] * x[i];
      h->gb[o] += dy[o];
    }
    if (dx)
      for (int i = 0; i < h->in; i++) dx[i] += dy[o] * w[i];
  }
}

static bool is_siamese(const preft_bt_model *m, preft_bt_task t, int layer) {
  return m->o.arch == PREFT_BT_SIAMESE && t != PREFT_BT_SST && layer == m->cfg.n_layers - 1;
}

/* The sentence vector of sequence s at hidden X (pooler on its first token, or mean) */
static void pool_seq(const preft_bt_model *m, const preft_bt_acts *a, const float *X, int layer, bool mean,
                     int s, float *out) {
  int D = m->cfg.dim, T = a->T;
  if (mean) {
    int len = a->lengths[s];
    for (int d = 0; d < D; d++) out[d] = 0;
    for (int t = 0; t < len; t++)
      for (int d = 0; d < D; d++) out[d] += X[((size_t)s * T + t) * D + d];
    for (int d = 0; d < D; d++) out[d] /= (float)len;
    return;
  }
  affine(pooler_of(m, layer), X + (size_t)s * T * D, out);
  for (int d = 0; d < D; d++) out[d] = tanhf(out[d]);
}

static void pool_seq_bwd(preft_bt_model *m, const preft_bt_acts *a, const float *X, int layer, bool mean,
                         int s, const float *pooled, const float *dp, float *dX, bool param_grads) {
  int D = m->cfg.dim, T = a->T;
  if (mean) {
    int len = a->lengths[s];
    for (int t = 0; t < len; t++)
      for (int d = 0; d < D; d++) dX[((size_t)s * T + t) * D + d] += dp[d] / (float)len;
    return;
  }
  float *pre = preft_xmalloc(sizeof(float) * (size_t)D);
  for (int d = 0; d < D; d++) pre[d] = dp[d] * (1.0f - pooled[d] * pooled[d]);
  preft_bt_head *ph = (preft_bt_head *)pooler_of(m, layer);
  affine_bwd(ph, X + (size_t)s * T * D, pre, dX + (size_t)s * T * D, param_grads);
  free(pre);
}

void preft_bt_head_forward(const preft_bt_model *m, const preft_bt_acts *a, preft_bt_task task, int layer,
                           int n, float *out, preft_bt_head_cache *c, preft_rng *rng) {
  preft_bt_head_cache_free(c);
  int D = m->cfg.dim;
  const float *X = a->l[layer].out;
  c->n = n, c->layer = layer, c->task = task;
  c->siamese = is_siamese(m, task, layer);
  double p = m->o.dropout;
  bool drop = rng && p > 0;
  if (!c->siamese) {
    const preft_bt_head *h = head_of(m, task, layer);
    c->pooled = preft_xmalloc(sizeof(float) * (size_t)n * D);
    c->feat = preft_xmalloc(sizeof(float) * (size_t)n * D);
    if (drop) c->fmask = preft_xmalloc(sizeof(float) * (size_t)n * D);
    for (int i = 0; i < n; i++) {
      float *pl = c->pooled + (size_t)i * D, *f = c->feat + (size_t)i * D;
      pool_seq(m, a, X, layer, false, i, pl);
      for (int d = 0; d < D; d++) {
        float k = drop ? (preft_rng_uniform(rng) < p ? 0.0f : (float)(1.0 / (1.0 - p))) : 1.0f;
        if (drop) c->fmask[(size_t)i * D + d] = k;
        f[d] = pl[d] * k;
      }
      affine(h, f, out + (size_t)i * h->out);
    }
    return;
  }
  bool mean = m->o.pooling == PREFT_BT_POOL_MEAN;
  c->pooled = preft_xmalloc(sizeof(float) * (size_t)2 * n * D);
  for (int s = 0; s < 2 * n; s++) pool_seq(m, a, X, layer, mean, s, c->pooled + (size_t)s * D);
  if (task == PREFT_BT_STS) {
    c->cosv = preft_xmalloc(sizeof(double) * (size_t)n * 3);
    for (int i = 0; i < n; i++) {
      const float *u = c->pooled + (size_t)i * D, *v = c->pooled + (size_t)(n + i) * D;
      double uv = 0, uu = 0, vv = 0;
      for (int d = 0; d < D; d++)
        uv += (double)u[d] * v[d], uu += (double)u[d] * u[d], vv += (double)v[d] * v[d];
      double nu = sqrt(uu) + 1e-12, nv = sqrt(vv) + 1e-12;
      c->cosv[3 * i] = uv, c->cosv[3 * i + 1] = nu, c->cosv[3 * i + 2] = nv;
      out[i] = (float)(2.5 * (uv / (nu * nv) + 1.0));
    }
    return;
  }
  const preft_bt_head *h = &m->heads[PREFT_BT_PARA];
  size_t W = (size_t)4 * D;
  c->feat = preft_xmalloc(sizeof(float) * (size_t)n * W);
  if (drop) c->fmask = preft_xmalloc(sizeof(float) * (size_t)n * W);
  for (int i = 0; i < n; i++) {
    const float *u = c->pooled + (size_t)i * D, *v = c->pooled + (size_t)(n + i) * D;
    float *f = c->feat + (size_t)i * W;
    for (int d = 0; d < D; d++) {
      f[d] = u[d];
      f[D + d] = v[d];
      f[2 * D + d] = fabsf(u[d] - v[d]);
      f[3 * D + d] = u[d] * v[d];
    }
    if (drop)
      for (size_t d = 0; d < W; d++) {
        float k = preft_rng_uniform(rng) < p ? 0.0f : (float)(1.0 / (1.0 - p));
        c->fmask[(size_t)i * W + d] = k;
        f[d] *= k;
      }
    affine(h, f, out + i);
  }
}

void preft_bt_head_backward(preft_bt_model *m, const preft_bt_acts *a, const preft_bt_head_cache *c,
                            const float *dy, float *d_out, bool param_grads) {
  int D = m->cfg.dim, n = c->n, layer = c->layer;
  const float *X = a->l[layer].out;
  if (!c->siamese) {
    preft_bt_head *h = (preft_bt_head *)head_of(m, c->task, layer);
    float *df = preft_xmalloc(sizeof(float) * (size_t)D);
    for (int i = 0; i < n; i++) {
      memset(df, 0, sizeof(float) * (size_t)D);
      affine_bwd(h, c->feat + (size_t)i * D, dy + (size_t)i * h->out, df, param_grads);
      if (c->fmask)
        for (int d = 0; d < D; d++) df[d] *= c->fmask[(size_t)i * D + d];
      pool_seq_bwd(m, a, X, layer, false, i, c->pooled + (size_t)i * D, df, d_out, param_grads);
    }
    free(df);
    return;
  }
  bool mean = m->o.pooling == PREFT_BT_POOL_MEAN;
  float *du = preft_xmalloc(sizeof(float) * (size_t)6 * D), *dv = du + D, *df = dv + D;
  for (int i = 0; i < n; i++) {
    const float *u = c->pooled + (size_t)i * D, *v = c->pooled + (size_t)(n + i) * D;
    if (c->task == PREFT_BT_STS) {
      double uv = c->cosv[3 * i], nu = c->cosv[3 * i + 1], nv = c->cosv[3 * i + 2], cs = uv / (nu * nv);
      double g = 2.5 * dy[i];
      for (int d = 0; d < D; d++) {
        du[d] = (float)(g * (v[d] / (nu * nv) - cs * u[d] / (nu * nu)));
        dv[d] = (float)(g * (u[d] / (nu * nv) - cs * v[d] / (nv * nv)));
      }
    } else {
      size_t W = (size_t)4 * D;
      memset(df, 0, sizeof(float) * W);
      affine_bwd(&m->heads[PREFT_BT_PARA], c->feat + (size_t)i * W, dy + i, df, param_grads);
      if (c->fmask)
        for (size_t d = 0; d < W; d++) df[d] *= c->fmask[(size_t)i * W + d];
      for (int d = 0; d < D; d++) {
        float sg = u[d] > v[d] ? 1.0f : u[d] < v[d] ? -1.0f : 0.0f;
        du[d] = df[d] + df[2 * D + d] * sg + df[3 * D + d] * v[d];
        dv[d] = df[D + d] - df[2 * D + d] * sg + df[3 * D + d] * u[d];
      }
    }
    pool_seq_bwd(m, a, X, layer, mean, i, u, du, d_out, param_grads);
    pool_seq_bwd(m, a, X, layer, mean, n + i, v, dv, d_out, param_grads);
  }
  free(du);
}

/* ---- losses and divergences -------------------------------------------------------------- */

static void log_softmax(const float *z, int k, double *out) {
  double mx = z[0];
  for (int i = 1; i < k; i++)
    if (z[i] > mx) mx = z[i];
  double s = 0;
  for (int i = 0; i < k; i++) s += exp(z[i] - mx);
  double ls = log(s) + mx;
  for (int i = 0; i < k; i++) out[i] = z[i] - ls;
}

double preft_bt_task_loss(preft_bt_task t, const float *out, const float *labels, int n, float *d) {
  double loss = 0;
  for (int i = 0; i < n; i++) {
    if (t == PREFT_BT_SST) {
      double lp[5];
      log_softmax(out + (size_t)i * 5, 5, lp);
      int y = (int)labels[i];
      loss -= lp[y];
      if (d)
        for (int k = 0; k < 5; k++) d[(size_t)i * 5 + k] = (float)((exp(lp[k]) - (k == y)) / n);
    } else if (t == PREFT_BT_PARA) {
      double z = out[i], y = labels[i];
      loss += (z > 0 ? z : 0) - z * y + log1p(exp(-fabs(z)));
      if (d) d[i] = (float)((1.0 / (1.0 + exp(-z)) - y) / n);
    } else {
      double e = (double)out[i] - labels[i];
      loss += e * e;
      if (d) d[i] = (float)(2.0 * e / n);
    }
  }
  return loss / n;
}

/* symmetric KL of softmax(p), softmax(q) over k classes, with its gradients */
static double sym_kl(const double *p, const double *q, int k, double *dp, double *dq) {
  double lp[5], lq[5], r[5], P[5], Q[5], ep = 0, eq = 0, dsum = 0;
  float pf[5], qf[5];
  for (int i = 0; i < k; i++) pf[i] = (float)p[i], qf[i] = (float)q[i];
  log_softmax(pf, k, lp);
  log_softmax(qf, k, lq);
  for (int i = 0; i < k; i++) {
    P[i] = exp(lp[i]), Q[i] = exp(lq[i]), r[i] = lp[i] - lq[i];
    dsum += (P[i] - Q[i]) * r[i];
    ep += P[i] * r[i];
    eq += Q[i] * r[i];
  }
  for (int i = 0; i < k; i++) {
    dp[i] = P[i] * (r[i] - ep) + P[i] - Q[i];
    dq[i] = Q[i] * (eq - r[i]) + Q[i] - P[i];
  }
  return dsum;
}

double preft_bt_divergence(preft_bt_task t, const float *p, const float *q, int n, double weight, float *dp,
                           float *dq) {
  double total = 0;
  int w = preft_bt_task_width(t);
  for (int i = 0; i < n; i++) {
    if (t == PREFT_BT_STS) {
      double e = (double)p[i] - q[i];
      total += e * e;
      if (dp) dp[i] += (float)(weight * 2 * e / n);
      if (dq) dq[i] -= (float)(weight * 2 * e / n);
      continue;
    }
    double pp[5] = {0}, qq[5] = {0}, gp[5], gq[5];
    int k = t == PREFT_BT_SST ? 5 : 2;
    for (int j = 0; j < w; j++) pp[k - w + j] = p[(size_t)i * w + j], qq[k - w + j] = q[(size_t)i * w + j];
    total += sym_kl(pp, qq, k, gp, gq);
    for (int j = 0; j < w; j++) {
      if (dp) dp[(size_t)i * w + j] += (float)(weight * gp[k - w + j] / n);
      if (dq) dq[(size_t)i * w + j] += (float)(weight * gq[k - w + j] / n);
    }
  }
  return total / n;
}

/* ---- MLM head -------------------------------------------------------------------------------- */

/* The MLM head's rows, [r0, r1) of M: forward (stage 0) h += b, z = LN(gelu(h))
 * (gelu(h) in dz, free until the backward); cross-entropy (stage 1) the
 * logits' bias, row_loss[r] = lse − logit[target], the logits becoming
 * d logits when grad; backward (stage 2) dz = LN'(dz) ∘ gelu'(h) in place. */
typedef struct {
  const preft_bt_model *m;
  float *h, *z, *xhat, *dz, *logits, *rstd;
  double *row_loss;
  const int *targets;
  int M, stage, grad;
} mlm_job;

static void mlm_rows(void *ctx, int r0, int r1) {
  const mlm_job *j = ctx;
  const preft_bt_model *m = j->m;
  int D = m->cfg.dim, V = m->cfg.vocab;
  for (int r = r0; r < r1; r++) {
    size_t o = (size_t)r * D;
    float *hr = j->h + o, *g = j->dz + o;
    if (j->stage == 0) {
      for (int d = 0; d < D; d++) {
        hr[d] += m->mlm_dense.b[d];
        g[d] = 0.5f * hr[d] * (1.0f + erff(hr[d] * 0.70710678118654752f));
      }
      preft_bt_ln_fwd_row(g, m->mlm_ln_w, m->mlm_ln_b, D, m->cfg.ln_eps, j->xhat + o, j->rstd + r, j->z + o);
    } else if (j->stage == 1) {
      float *lr = j->logits + (size_t)r * V;
      double mx = -INFINITY, s = 0;
      for (int v = 0; v < V; v++) {
        lr[v] += m->mlm_bias[v];
        if (lr[v] > mx) mx = lr[v];
      }
      for (int v = 0; v < V; v++) s += exp(lr[v] - mx);
      double lse = log(s) + mx;
      j->row_loss[r] = lse - lr[j->targets[r]];
      if (j->grad) /* logits become d logits */
        for (int v = 0; v < V; v++) lr[v] = (float)((exp(lr[v] - lse) - (v == j->targets[r])) / j->M);
    } else {
      preft_bt_ln_bwd_row(g, j->xhat + o, j->rstd[r], m->mlm_ln_w, D, g); /* d gelu(h), in place */
      for (int d = 0; d < D; d++) {
        float x = hr[d];
        g[d] *= 0.5f * (1.0f + erff(x * 0.70710678118654752f)) +
                x * 0.39894228040143268f * expf(-0.5f * x * x); /* now d h */
      }
    }
  }
}

static void mlm_stage(preft_pool *pool, mlm_job *j, int stage) {
  j->stage = stage;
  preft_pool_run_rows(pool, j->M, (size_t)(stage == 1 ? j->m->cfg.vocab : j->m->cfg.dim) * 16, 16384,
                      mlm_rows, j);
}

double preft_bt_mlm_loss(preft_bt_model *m, preft_pool *pool, const preft_bt_acts *a, const int *rows,
                         const int *targets, int M, float *d_out) {
  if (M <= 0) return 0.0;
  int D = m->cfg.dim, V = m->cfg.vocab, L = m->cfg.n_layers;
  const float *X = a->l[L - 1].out;
  size_t MD = (size_t)M * D;
  float *buf = preft_xmalloc(sizeof(float) * (MD * 5 + (size_t)M * V + (size_t)M));
  float *xr = buf, *h = xr + MD, *z = h + MD, *xhat = z + MD, *dz = xhat + MD, *logits = dz + MD,
        *rstd = logits + (size_t)M * V;
  double *row_loss = preft_xmalloc(sizeof(double) * (size_t)M);
  for (int r = 0; r < M; r++) memcpy(xr + (size_t)r * D, X + (size_t)rows[r] * D, sizeof(float) * D);
  preft_gemm(pool, h, D, xr, D, m->mlm_dense.w, PREFT_F32, M, D, D, 0);
  mlm_job j = {.m = m,
               .h = h,
               .z = z,
               .xhat = xhat,
               .dz = dz,
               .logits = logits,
               .rstd = rstd,
               .row_loss = row_loss,
               .targets = targets,
               .M = M,
               .grad = d_out != NULL};
  mlm_stage(pool, &j, 0);
  preft_gemm(pool, logits, V, z, D, m->word, PREFT_F32, M, D, V, 0);
  mlm_stage(pool, &j, 1);
  double loss = 0;
  for (int r = 0; r < M; r++) loss += row_loss[r];
  loss /= M;
  free(row_loss);
  if (d_out) {
    preft_bt_col_sums(NULL, m->g_mlm_bias, logits, NULL, M, V);
    preft_gemm_dw(pool, m->g_word, logits, V, z, D, M, V, D);
    preft_gemm_dx(pool, dz, D, logits, V, m->word, M, V, D, 0);
    preft_bt_col_sums(m->g_mlm_ln_w, m->g_mlm_ln_b, dz, xhat, M, D);
    mlm_stage(pool, &j, 2);
    preft_bt_col_sums(NULL, m->mlm_dense.gb, dz, NULL, M, D);
    preft_gemm_dw(pool, m->mlm_dense.gw, dz, D, xr, D, M, D, D);
    preft_gemm_dx(pool, xr, D, dz, D, m->mlm_dense.w, M, D, D, 0); /* xr becomes d x rows */
    for (int r = 0; r < M; r++) {
      float *dst = d_out + (size_t)rows[r] * D;
      for (int d = 0; d < D; d++) dst[d] += xr[(size_t)r * D + d];
    }
  }
  free(buf);
  return loss;
}
