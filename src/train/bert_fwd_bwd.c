/* bert_fwd_bwd.c - the training forward and backward passes of the BERT
 * encoder (see bert_train.h for the equations and the shape legend).
 *
 * The linear layers run on the inference GEMM (preft_gemm) and their
 * backward products on gemm_train.h, over the pool; attention runs per
 * (sequence, head) as a pool task, plain loops over the sequence's real
 * keys (scores, softmax, dropout of the probabilities); GELU and its
 * gradient are split over the pool by rows; LayerNorm and dropout masks
 * (one RNG stream, drawn in order) are row loops on the calling thread. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/gemm.h"
#include "tensor/gemm_train.h"
#include "tensor/ops.h"
#include "train/bert_train.h"

void preft_bt_acts_free(preft_bt_acts *a) {
  free(a->ids);
  free(a->types);
  free(a->lengths);
  free(a->emb_xhat);
  free(a->emb_rstd);
  free(a->emb_m0);
  free(a->x0);
  free(a->scratch);
  if (a->l) {
    /* every layer's buffers are one allocation starting at q */
    for (int i = 0; a->l[i].q; i++) {
      free(a->l[i].q);
      free(a->l[i].p);
      free(a->l[i].pkeep);
    }
  }
  free(a->l);
  memset(a, 0, sizeof *a);
}

static void ensure(preft_bt_acts *a, const preft_bt_model *m, int B, int T) {
  const preft_bert_config *c = &m->cfg;
  int N = B * T, L = c->n_layers, R = m->o.lora_rank;
  size_t D = (size_t)c->dim, F = (size_t)c->ffn, att = (size_t)B * c->n_heads * T * T;
  if (N > a->cap_rows) {
    preft_bt_lacts *old = a->l;
    a->l = NULL;
    if (old) {
      for (int i = 0; old[i].q; i++) {
        free(old[i].q);
        free(old[i].p);
        free(old[i].pkeep);
        old[i].p = NULL;
        old[i].pkeep = NULL;
      }
      free(old);
    }
    a->cap_att = 0;
    free(a->ids);
    free(a->types);
    free(a->lengths);
    free(a->emb_xhat);
    free(a->emb_rstd);
    free(a->emb_m0);
    free(a->x0);
    free(a->scratch);
    size_t n = (size_t)N;
    a->ids = preft_xmalloc(sizeof(int) * n);
    a->types = preft_xmalloc(sizeof(int) * n);
    a->lengths = preft_xmalloc(sizeof(int) * n);
    a->emb_xhat = preft_xmalloc(sizeof(float) * n * D);
    a->emb_rstd = preft_xmalloc(sizeof(float) * n);
    a->emb_m0 = preft_xmalloc(sizeof(float) * n * D);
    a->x0 = preft_xmalloc(sizeof(float) * n * D);
    a->scratch = preft_xmalloc(sizeof(float) * n * (8 * D + 2 * F + (size_t)R + 8));
    a->l = preft_xcalloc((size_t)L + 1, sizeof *a->l); /* a zeroed sentinel ends the list */
    for (int l = 0; l < L; l++) {
      preft_bt_lacts *la = &a->l[l];
      size_t per = n * (10 * D + 2 * F + 2 + (size_t)BT_N_LIN * (size_t)R);
      float *p = preft_xmalloc(sizeof(float) * per);
      la->q = p, p += n * D;
      la->k = p, p += n * D;
      la->v = p, p += n * D;
      la->ctx = p, p += n * D;
      la->m1 = p, p += n * D;
      la->m2 = p, p += n * D;
      la->xhat1 = p, p += n * D;
      la->a = p, p += n * D;
      la->xhat2 = p, p += n * D;
      la->out = p, p += n * D;
      la->rstd1 = p, p += n;
      la->rstd2 = p, p += n;
      la->fpre = p, p += n * F;
      la->fact = p, p += n * F;
      for (int k = 0; k < BT_N_LIN; k++) la->lora_t[k] = R > 0 ? (p += n * (size_t)R) - n * (size_t)R : NULL;
    }
    a->cap_rows = N;
  }
  if (att > (size_t)a->cap_att) {
    for (int l = 0; l < L; l++) {
      free(a->l[l].p);
      free(a->l[l].pkeep);
      a->l[l].p = preft_xmalloc(sizeof(float) * att);
      a->l[l].pkeep = preft_xmalloc(att);
    }
    a->cap_att = (int)att;
  }
}

/* ---- row kernels ------------------------------------------------------------------ */

static void ln_fwd(const float *x, const float *w, const float *b, int D, float eps, float *xhat, float *rstd,
                   float *out) {
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

/* dx[D] = LayerNorm backward of dy at (xhat, rstd); adds gw, gb when not NULL. */
static void ln_bwd(const float *dy, const float *xhat, float rstd, const float *w, int D, float *dx,
                   float *gw, float *gb) {
  double s1 = 0, s2 = 0;
  for (int d = 0; d < D; d++) {
    double g = (double)dy[d] * w[d];
    s1 += g;
    s2 += g * xhat[d];
    if (gw) gw[d] += dy[d] * xhat[d];
    if (gb) gb[d] += dy[d];
  }
  double m1 = s1 / D, m2 = s2 / D;
  for (int d = 0; d < D; d++) dx[d] = (float)(rstd * ((double)dy[d] * w[d] - m1 - xhat[d] * m2));
}

static float gelu(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }
static float gelu_grad(float x) {
  return 0.5f * (1.0f + erff(x * 0.70710678118654752f)) + x * 0.39894228040143268f * expf(-0.5f * x * x);
}

/* GELU over rows of F features, split over the pool (element-wise, so the
 * split does not change any result): forward out = gelu(pre); backward
 * out *= gelu'(pre) in place (out the gradient). */
typedef struct {
  float *out;
  const float *pre;
  int f, backward;
} gelu_job;

static void gelu_rows(void *p, int r0, int r1) {
  const gelu_job *j = p;
  size_t i0 = (size_t)r0 * (size_t)j->f, i1 = (size_t)r1 * (size_t)j->f;
  if (j->backward)
    for (size_t i = i0; i < i1; i++) j->out[i] *= gelu_grad(j->pre[i]);
  else
    for (size_t i = i0; i < i1; i++) j->out[i] = gelu(j->pre[i]);
}

static void gelu_pool(preft_pool *pool, float *out, const float *pre, int n, int f, int backward) {
  gelu_job j = {out, pre, f, backward};
  preft_pool_run_rows(pool, n, (size_t)f, 16384, gelu_rows, &j);
}

static void dropout_mask(float *mask, size_t n, double p, preft_rng *rng) {
  float keep = (float)(1.0 / (1.0 - p));
  for (size_t i = 0; i < n; i++) mask[i] = preft_rng_uniform(rng) < p ? 0.0f : keep;
}

/* ---- linear layers (with LoRA) ---------------------------------------------------------- */

static void lin_fwd(preft_pool *pool, const preft_bt_model *m, const preft_bt_lin *li, const float *x, int n,
                    float *y, float *lora_t) {
  preft_gemm(pool, y, li->out, x, li->in, li->w, PREFT_F32, n, li->in, li->out, 0);
  for (int i = 0; i < n; i++)
    for (int o = 0; o < li->out; o++) y[(size_t)i * li->out + o] += li->b[o];
  if (li->la) {
    int R = m->o.lora_rank;
    preft_gemm(pool, lora_t, R, x, li->in, li->la, PREFT_F32, n, li->in, R, 0);
    for (size_t i = 0; i < (size_t)n * R; i++) lora_t[i] *= m->lora_scale;
    preft_gemm(pool, y, li->out, lora_t, R, li->lb, PREFT_F32, n, R, li->out, 1);
  }
}

/* dx (+)= dy·W (+ LoRA's path); parameter gradients when param_grads. */
static void lin_bwd(preft_pool *pool, const preft_bt_model *m, const preft_bt_lin *li, const float *x, int n,
                    const float *dy, float *dx, int accumulate, const float *lora_t, bool param_grads,
                    float *tmp) {
  if (param_grads && !m->frozen_base) {
    preft_gemm_dw(pool, li->gw, dy, li->out, x, li->in, n, li->out, li->in);
    for (int i = 0; i < n; i++)
      for (int o = 0; o < li->out; o++) li->gb[o] += dy[(size_t)i * li->out + o];
  }
  if (dx) preft_gemm_dx(pool, dx, li->in, dy, li->out, li->w, n, li->out, li->in, accumulate);
  if (li->la) {
    int R = m->o.lora_rank;
    if (param_grads) preft_gemm_dw(pool, li->glb, dy, li->out, lora_t, R, n, li->out, R);
    preft_gemm_dx(pool, tmp, R, dy, li->out, li->lb, n, li->out, R, 0); /* d(scaled t) */
    for (size_t i = 0; i < (size_t)n * R; i++) tmp[i] *= m->lora_scale;
    if (param_grads) preft_gemm_dw(pool, li->gla, tmp, R, x, li->in, n, R, li->in);
    if (dx) preft_gemm_dx(pool, dx, li->in, tmp, R, li->la, n, R, li->in, 1);
  }
}

/* ---- attention ---------------------------------------------------------------------------- */

typedef struct {
  const preft_bert_config *c;
  int T;
  const int *lengths;
  const float *q, *k, *v;
  float *p;
  uint8_t *keep; /* NULL: no dropout */
  float keep_scale;
  float *ctx;
  /* backward */
  const float *dctx;
  float *dq, *dk, *dv;
} attn_job;

static void attn_fwd_task(void *arg, int task, int thread) {
  (void)thread;
  const attn_job *j = arg;
  int H = j->c->n_heads, dh = j->c->head_dim, D = j->c->dim, T = j->T;
  int b = task / H, h = task % H, len = j->lengths[b];
  float scale = 1.0f / sqrtf((float)dh);
  for (int i = 0; i < T; i++) {
    const float *qi = j->q + ((size_t)b * T + i) * D + (size_t)h * dh;
    float *p = j->p + (((size_t)b * H + h) * T + i) * T;
    float mx = -INFINITY;
    for (int t = 0; t < len; t++) {
      const float *kt = j->k + ((size_t)b * T + t) * D + (size_t)h * dh;
      p[t] = preft_dot(qi, kt, dh) * scale;
      if (p[t] > mx) mx = p[t];
    }
    double sum = 0;
    for (int t = 0; t < len; t++) {
      p[t] = expf(p[t] - mx);
      sum += p[t];
    }
    for (int t = 0; t < len; t++) p[t] = (float)(p[t] / sum);
    for (int t = len; t < T; t++) p[t] = 0.0f;
    float *ci = j->ctx + ((size_t)b * T + i) * D + (size_t)h * dh;
    memset(ci, 0, sizeof(float) * (size_t)dh);
    const uint8_t *keep = j->keep ? j->keep + (((size_t)b * H + h) * T + i) * T : NULL;
    for (int t = 0; t < len; t++) {
      float w = keep ? (keep[t] ? p[t] * j->keep_scale : 0.0f) : p[t];
      const float *vt = j->v + ((size_t)b * T + t) * D + (size_t)h * dh;
      for (int d = 0; d < dh; d++) ci[d] += w * vt[d];
    }
  }
}

static void attn_bwd_task(void *arg, int task, int thread) {
  (void)thread;
  const attn_job *j = arg;
  int H = j->c->n_heads, dh = j->c->head_dim, D = j->c->dim, T = j->T;
  int b = task / H, h = task % H, len = j->lengths[b];
  float scale = 1.0f / sqrtf((float)dh);
  float *dp = preft_xmalloc(sizeof(float) * (size_t)T);
  for (int i = 0; i < T; i++) {
    size_t ri = ((size_t)b * T + i) * D + (size_t)h * dh;
    const float *p = j->p + (((size_t)b * H + h) * T + i) * T, *dci = j->dctx + ri, *qi = j->q + ri;
    const uint8_t *keep = j->keep ? j->keep + (((size_t)b * H + h) * T + i) * T : NULL;
    double sum = 0;
    for (int t = 0; t < len; t++) {
      size_t rt = ((size_t)b * T + t) * D + (size_t)h * dh;
      const float *vt = j->v + rt;
      float *dvt = j->dv + rt;
      float ks = keep ? (keep[t] ? j->keep_scale : 0.0f) : 1.0f;
      dp[t] = preft_dot(dci, vt, dh) * ks;
      float w = p[t] * ks;
      for (int d = 0; d < dh; d++) dvt[d] += w * dci[d];
      sum += (double)p[t] * dp[t];
    }
    float *dqi = j->dq + ri;
    for (int t = 0; t < len; t++) {
      size_t rt = ((size_t)b * T + t) * D + (size_t)h * dh;
      float ds = p[t] * (dp[t] - (float)sum) * scale;
      const float *kt = j->k + rt;
      float *dkt = j->dk + rt;
      for (int d = 0; d < dh; d++) {
        dqi[d] += ds * kt[d];
        dkt[d] += ds * qi[d];
      }
    }
  }
  free(dp);
}

/* ---- forward ------------------------------------------------------------------------------ */

int preft_bt_forward(const preft_bt_model *m, preft_pool *pool, const preft_bert_batch *b, const float *delta,
                     preft_bt_acts *a, preft_rng *rng, preft_error *err) {
  if (preft_bert_batch_check(&m->cfg, b, err) != 0) return -1;
  const preft_bert_config *c = &m->cfg;
  int B = b->n_seqs, T = b->seq_len, N = B * T, D = c->dim, F = c->ffn, L = c->n_layers, H = c->n_heads;
  ensure(a, m, B, T);
  a->B = B, a->T = T, a->N = N;
  double p = m->o.dropout;
  a->dropout = rng && p > 0;
  memcpy(a->ids, b->ids, sizeof(int) * (size_t)N);
  for (int i = 0; i < N; i++) a->types[i] = b->types ? b->types[i] : 0;
  for (int s = 0; s < B; s++) a->lengths[s] = b->lengths ? b->lengths[s] : T;

  float *tmp = a->scratch;
  for (int i = 0; i < N; i++) {
    float *x = tmp;
    const float *w = m->word + (size_t)a->ids[i] * D, *ps = m->pos + (size_t)(i % T) * D,
                *ty = m->type + (size_t)a->types[i] * D;
    for (int d = 0; d < D; d++) x[d] = w[d] + ps[d] + ty[d];
    ln_fwd(x, m->ln_e_w, m->ln_e_b, D, c->ln_eps, a->emb_xhat + (size_t)i * D, a->emb_rstd + i,
           a->x0 + (size_t)i * D);
  }
  if (a->dropout) {
    dropout_mask(a->emb_m0, (size_t)N * D, p, rng);
    for (size_t i = 0; i < (size_t)N * D; i++) a->x0[i] *= a->emb_m0[i];
  }
  if (delta)
    for (size_t i = 0; i < (size_t)N * D; i++) a->x0[i] += delta[i];

  for (int l = 0; l < L; l++) {
    const preft_bt_layer *w = &m->layers[l];
    preft_bt_lacts *la = &a->l[l];
    la->x_in = l == 0 ? a->x0 : a->l[l - 1].out;
    lin_fwd(pool, m, &w->lin[BT_Q], la->x_in, N, la->q, la->lora_t[BT_Q]);
    lin_fwd(pool, m, &w->lin[BT_K], la->x_in, N, la->k, la->lora_t[BT_K]);
    lin_fwd(pool, m, &w->lin[BT_V], la->x_in, N, la->v, la->lora_t[BT_V]);
    if (a->dropout) {
      size_t n = (size_t)B * H * T * T;
      for (size_t i = 0; i < n; i++) la->pkeep[i] = preft_rng_uniform(rng) >= p;
    }
    attn_job aj = {.c = c,
                   .T = T,
                   .lengths = a->lengths,
                   .q = la->q,
                   .k = la->k,
                   .v = la->v,
                   .p = la->p,
                   .keep = a->dropout ? la->pkeep : NULL,
                   .keep_scale = (float)(1.0 / (1.0 - p)),
                   .ctx = la->ctx};
    preft_pool_run(pool, B * H, attn_fwd_task, &aj);

    float *h = tmp;
    lin_fwd(pool, m, &w->lin[BT_O], la->ctx, N, h, la->lora_t[BT_O]);
    if (a->dropout) dropout_mask(la->m1, (size_t)N * D, p, rng);
    for (int i = 0; i < N; i++) {
      float *hr = h + (size_t)i * D;
      const float *xr = la->x_in + (size_t)i * D, *mr = la->m1 + (size_t)i * D;
      for (int d = 0; d < D; d++) hr[d] = xr[d] + (a->dropout ? hr[d] * mr[d] : hr[d]);
      ln_fwd(hr, w->ln1_w, w->ln1_b, D, c->ln_eps, la->xhat1 + (size_t)i * D, la->rstd1 + i,
             la->a + (size_t)i * D);
    }
    lin_fwd(pool, m, &w->lin[BT_FFN_IN], la->a, N, la->fpre, la->lora_t[BT_FFN_IN]);
    gelu_pool(pool, la->fact, la->fpre, N, F, 0);
    lin_fwd(pool, m, &w->lin[BT_FFN_OUT], la->fact, N, h, la->lora_t[BT_FFN_OUT]);
    if (a->dropout) dropout_mask(la->m2, (size_t)N * D, p, rng);
    for (int i = 0; i < N; i++) {
      float *hr = h + (size_t)i * D;
      const float *ar = la->a + (size_t)i * D, *mr = la->m2 + (size_t)i * D;
      for (int d = 0; d < D; d++) hr[d] = ar[d] + (a->dropout ? hr[d] * mr[d] : hr[d]);
      ln_fwd(hr, w->ln2_w, w->ln2_b, D, c->ln_eps, la->xhat2 + (size_t)i * D, la->rstd2 + i,
             la->out + (size_t)i * D);
    }
  }
  return 0;
}

/* ---- backward ------------------------------------------------------------------------------ */

void preft_bt_backward(preft_bt_model *m, preft_pool *pool, preft_bt_acts *a, float **d_out, float *d_emb,
                       bool param_grads) {
  const preft_bert_config *c = &m->cfg;
  int B = a->B, T = a->T, N = a->N, D = c->dim, F = c->ffn, L = c->n_layers, H = c->n_heads;
  size_t ND = (size_t)N * D;
  float *g = a->scratch, *dz = g + ND, *dh = dz + ND, *dctx = dh + ND, *dq = dctx + ND, *dk = dq + ND,
        *dv = dk + ND, *dxi = dv + ND, *df = dxi + ND, *tmp = df + (size_t)N * F;
  bool pg = param_grads && !m->frozen_base;
  memcpy(g, d_out[L - 1], sizeof(float) * ND);
  for (int l = L - 1; l >= 0; l--) {
    preft_bt_layer *w = &m->layers[l];
    preft_bt_lacts *la = &a->l[l];
    if (l < L - 1 && d_out[l])
      for (size_t i = 0; i < ND; i++) g[i] += d_out[l][i];
    /* LN2: out = LN(a + drop(fact·W2ᵀ + b2)) */
    for (int i = 0; i < N; i++)
      ln_bwd(g + (size_t)i * D, la->xhat2 + (size_t)i * D, la->rstd2[i], w->ln2_w, D, dz + (size_t)i * D,
             pg ? w->g_ln2_w : NULL, pg ? w->g_ln2_b : NULL);
    for (size_t i = 0; i < ND; i++) dh[i] = a->dropout ? dz[i] * la->m2[i] : dz[i];
    lin_bwd(pool, m, &w->lin[BT_FFN_OUT], la->fact, N, dh, df, 0, la->lora_t[BT_FFN_OUT], param_grads, tmp);
    gelu_pool(pool, df, la->fpre, N, F, 1);
    memcpy(dxi, dz, sizeof(float) * ND); /* d a: the residual path */
    lin_bwd(pool, m, &w->lin[BT_FFN_IN], la->a, N, df, dxi, 1, la->lora_t[BT_FFN_IN], param_grads, tmp);
    /* LN1: a = LN(x_in + drop(ctx·Woᵀ + bo)) */
    for (int i = 0; i < N; i++)
      ln_bwd(dxi + (size_t)i * D, la->xhat1 + (size_t)i * D, la->rstd1[i], w->ln1_w, D, dz + (size_t)i * D,
             pg ? w->g_ln1_w : NULL, pg ? w->g_ln1_b : NULL);
    for (size_t i = 0; i < ND; i++) dh[i] = a->dropout ? dz[i] * la->m1[i] : dz[i];
    lin_bwd(pool, m, &w->lin[BT_O], la->ctx, N, dh, dctx, 0, la->lora_t[BT_O], param_grads, tmp);
    memset(dq, 0, sizeof(float) * ND * 3); /* dq, dk, dv are adjacent */
    attn_job aj = {.c = c,
                   .T = T,
                   .lengths = a->lengths,
                   .q = la->q,
                   .k = la->k,
                   .v = la->v,
                   .p = la->p,
                   .keep = a->dropout ? la->pkeep : NULL,
                   .keep_scale = (float)(1.0 / (1.0 - m->o.dropout)),
                   .dctx = dctx,
                   .dq = dq,
                   .dk = dk,
                   .dv = dv};
    preft_pool_run(pool, B * H, attn_bwd_task, &aj);
    memcpy(g, dz, sizeof(float) * ND); /* d x_in: the residual path */
    lin_bwd(pool, m, &w->lin[BT_Q], la->x_in, N, dq, g, 1, la->lora_t[BT_Q], param_grads, tmp);
    lin_bwd(pool, m, &w->lin[BT_K], la->x_in, N, dk, g, 1, la->lora_t[BT_K], param_grads, tmp);
    lin_bwd(pool, m, &w->lin[BT_V], la->x_in, N, dv, g, 1, la->lora_t[BT_V], param_grads, tmp);
  }
  if (d_emb) memcpy(d_emb, g, sizeof(float) * ND);
  if (!pg) return;
  for (int i = 0; i < N; i++) {
    float *gi = g + (size_t)i * D, *dsum = dz + (size_t)i * D;
    if (a->dropout)
      for (int d = 0; d < D; d++) gi[d] *= a->emb_m0[(size_t)i * D + d];
    ln_bwd(gi, a->emb_xhat + (size_t)i * D, a->emb_rstd[i], m->ln_e_w, D, dsum, m->g_ln_e_w, m->g_ln_e_b);
    float *gw = m->g_word + (size_t)a->ids[i] * D, *gp = m->g_pos + (size_t)(i % T) * D,
          *gt = m->g_type + (size_t)a->types[i] * D;
    for (int d = 0; d < D; d++) {
      gw[d] += dsum[d];
      gp[d] += dsum[d];
      gt[d] += dsum[d];
    }
  }
}
