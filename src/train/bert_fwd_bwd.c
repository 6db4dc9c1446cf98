/* bert_fwd_bwd.c - the training forward and backward passes of the BERT
 * encoder (see bert_train.h for the equations and the shape legend).
 *
 * The linear layers run on the inference GEMM (preft_gemm) and their
 * backward products on gemm_train.h, over the pool; attention runs per
 * (sequence, head) as a pool task, plain loops over the sequence's real
 * keys (scores, softmax, dropout of the probabilities); GELU and its
 * gradient, LayerNorm rows with their residual adds, dropout masks, bias
 * adds and the column sums of bias and LayerNorm gradients are split over
 * the pool (bert_rows.h: the same numbers as one thread, dropout masks the
 * values of one RNG stream drawn in order). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/huge_alloc.h"
#include "tensor/gemm.h"
#include "tensor/gemm_train.h"
#include "tensor/ops.h"
#include "train/bert_rows.h"
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
    a->emb_xhat = preft_xalloc_big(sizeof(float) * n * D);
    a->emb_rstd = preft_xmalloc(sizeof(float) * n);
    a->emb_m0 = preft_xalloc_big(sizeof(float) * n * D);
    a->x0 = preft_xalloc_big(sizeof(float) * n * D);
    a->scratch = preft_xalloc_big(sizeof(float) * n * (8 * D + 2 * F + (size_t)R + 8));
    a->l = preft_xcalloc((size_t)L + 1, sizeof *a->l); /* a zeroed sentinel ends the list */
    for (int l = 0; l < L; l++) {
      preft_bt_lacts *la = &a->l[l];
      size_t per = n * (10 * D + 2 * F + 2 + (size_t)BT_N_LIN * (size_t)R);
      float *p = preft_xalloc_big(sizeof(float) * per); /* huge pages where big (huge_alloc.h) */
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

/* ---- linear layers (with LoRA) ---------------------------------------------------------- */

/* y[i0:i1, j0:j1] += b[j0:j1] (ctx = b): the bias, added to each block of
 * a product while it is in cache (the same sums as a pass after it). */
static void bias_epi(const void *ctx, float *y, size_t ys, int i0, int i1, int j0, int j1) {
  const float *b = ctx;
  for (int i = i0; i < i1; i++)
    for (int j = j0; j < j1; j++) y[(size_t)i * ys + j] += b[j];
}

/* y[k][n, out] = x·W[k]ᵀ + b[k] (+ LoRA) for the n_lin layers li[k] of one
 * input x (q, k and v: one pool job for the three products and biases). */
static void lin_fwd(preft_pool *pool, const preft_bt_model *m, const preft_bt_lin *li, int n_lin,
                    const float *x, int n, float **y, float **lora_t) {
  preft_gemm_epilogue epi[3] = {{0}};
  preft_gemm_out outs[3] = {{0}};
  for (int k = 0; k < n_lin; k++) {
    epi[k] = (preft_gemm_epilogue){bias_epi, li[k].b};
    outs[k] = (preft_gemm_out){y[k], li[k].out, li[k].w, PREFT_F32, li[k].out, &epi[k]};
  }
  preft_gemm_multi(pool, x, li[0].in, n, li[0].in, outs, n_lin, 0);
  for (int k = 0; k < n_lin; k++) {
    if (!li[k].la) continue;
    int R = m->o.lora_rank;
    preft_gemm(pool, lora_t[k], R, x, li[k].in, li[k].la, PREFT_F32, n, li[k].in, R, 0);
    for (size_t i = 0; i < (size_t)n * R; i++) lora_t[k][i] *= m->lora_scale;
    preft_gemm(pool, y[k], li[k].out, lora_t[k], R, li[k].lb, PREFT_F32, n, R, li[k].out, 1);
  }
}

/* dx (+)= dy·W (+ LoRA's path); parameter gradients when param_grads. */
static void lin_bwd(preft_pool *pool, const preft_bt_model *m, const preft_bt_lin *li, const float *x, int n,
                    const float *dy, float *dx, int accumulate, const float *lora_t, bool param_grads,
                    float *tmp) {
  if (param_grads && !m->frozen_base) {
    preft_gemm_dw(pool, li->gw, dy, li->out, x, li->in, n, li->out, li->in);
    preft_bt_col_sums(NULL, li->gb, dy, NULL, n, li->out);
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

/* ---- LayerNorm rows (each row on one thread, rows over the pool) ---------------------------- */

/* Forward of one residual LayerNorm: h = res + drop(h) (mask drawn for the
 * row first, or none), out = LN(h). Embeddings (emb): h = word + pos +
 * type, out = drop(LN(h)) + delta. */
typedef struct {
  const preft_bt_model *m;
  const preft_bt_acts *a;
  bool emb;
  float *h, *mask, *xhat, *rstd, *out;
  const float *res, *w, *b, *delta;
  double p;
  preft_rng rng; /* the masks' stream at draw 0 */
} ln_fwd_job;

static void ln_fwd_rows(void *ctx, int r0, int r1) {
  const ln_fwd_job *j = ctx;
  const preft_bt_model *m = j->m;
  int D = m->cfg.dim;
  for (int i = r0; i < r1; i++) {
    size_t o = (size_t)i * D;
    float *hr = j->h + o, *mr = j->mask ? j->mask + o : NULL, *out = j->out + o;
    if (mr) preft_bt_mask_row(mr, D, j->p, &j->rng, o);
    if (j->emb) {
      const float *w = m->word + (size_t)j->a->ids[i] * D, *ps = m->pos + (size_t)(i % j->a->T) * D,
                  *ty = m->type + (size_t)j->a->types[i] * D;
      for (int d = 0; d < D; d++) hr[d] = w[d] + ps[d] + ty[d];
    } else {
      const float *xr = j->res + o;
      for (int d = 0; d < D; d++) hr[d] = xr[d] + (mr ? hr[d] * mr[d] : hr[d]);
    }
    preft_bt_ln_fwd_row(hr, j->w, j->b, D, m->cfg.ln_eps, j->xhat + o, j->rstd + i, out);
    if (j->emb && mr)
      for (int d = 0; d < D; d++) out[d] *= mr[d];
    if (j->emb && j->delta)
      for (int d = 0; d < D; d++) out[d] += j->delta[o + d];
  }
}

/* Runs j over the batch's rows; the masks' generator (rng, or none) moves N·D draws. */
static void ln_fwd_pool(preft_pool *pool, ln_fwd_job *j, preft_rng *rng) {
  int N = j->a->N, D = j->m->cfg.dim;
  if (!rng) j->mask = NULL;
  if (j->mask) j->rng = *rng;
  preft_pool_run_rows(pool, N, (size_t)D * 8, 16384, ln_fwd_rows, j);
  if (j->mask) preft_rng_skip(rng, (uint64_t)N * (uint64_t)D);
}

/* Backward of one LayerNorm: dy ∘= in_mask (in place, if any), dz = LN'(dy),
 * dh = dz ∘ out_mask (or dz); the parameter gradients gw += Σ dy∘xhat,
 * gb += Σ dy by columns after (if gw). */
typedef struct {
  float *dy, *dz, *dh, *gw, *gb;
  const float *in_mask, *out_mask, *xhat, *rstd, *w;
  int D;
} ln_bwd_job;

static void ln_bwd_rows(void *ctx, int r0, int r1) {
  const ln_bwd_job *j = ctx;
  int D = j->D;
  for (int i = r0; i < r1; i++) {
    size_t o = (size_t)i * D;
    float *dy = j->dy + o, *dz = j->dz + o;
    if (j->in_mask)
      for (int d = 0; d < D; d++) dy[d] *= j->in_mask[o + d];
    preft_bt_ln_bwd_row(dy, j->xhat + o, j->rstd[i], j->w, D, dz);
    if (j->dh)
      for (int d = 0; d < D; d++) j->dh[o + d] = j->out_mask ? dz[d] * j->out_mask[o + d] : dz[d];
  }
}

static void ln_bwd_pool(preft_pool *pool, const ln_bwd_job *j, int N) {
  preft_pool_run_rows(pool, N, (size_t)j->D * 8, 16384, ln_bwd_rows, (void *)j);
  if (j->gw) preft_bt_col_sums(j->gw, j->gb, j->dy, j->xhat, N, j->D);
}

/* The embeddings' gradients by columns, rows in order: word, position and
 * type rows += dsum rows. */
typedef struct {
  preft_bt_model *m;
  const preft_bt_acts *a;
  const float *dsum;
} emb_scatter_job;

static void emb_scatter_cols(void *ctx, int c0, int c1) {
  const emb_scatter_job *j = ctx;
  size_t D = (size_t)j->m->cfg.dim;
  for (int i = 0; i < j->a->N; i++) {
    const float *ds = j->dsum + (size_t)i * D;
    float *gw = j->m->g_word + (size_t)j->a->ids[i] * D, *gp = j->m->g_pos + (size_t)(i % j->a->T) * D,
          *gt = j->m->g_type + (size_t)j->a->types[i] * D;
    for (int d = c0; d < c1; d++) {
      gw[d] += ds[d];
      gp[d] += ds[d];
      gt[d] += ds[d];
    }
  }
}

/* ---- forward ------------------------------------------------------------------------------ */

int preft_bt_forward(const preft_bt_model *m, preft_pool *pool, const preft_bert_batch *b, const float *delta,
                     preft_bt_acts *a, preft_rng *rng, preft_error *err) {
  if (preft_bert_batch_check(&m->cfg, b, err) != 0) return -1;
  const preft_bert_config *c = &m->cfg;
  int B = b->n_seqs, T = b->seq_len, N = B * T, F = c->ffn, L = c->n_layers, H = c->n_heads;
  ensure(a, m, B, T);
  a->B = B, a->T = T, a->N = N;
  double p = m->o.dropout;
  a->dropout = rng && p > 0;
  memcpy(a->ids, b->ids, sizeof(int) * (size_t)N);
  for (int i = 0; i < N; i++) a->types[i] = b->types ? b->types[i] : 0;
  for (int s = 0; s < B; s++) a->lengths[s] = b->lengths ? b->lengths[s] : T;

  float *tmp = a->scratch;
  preft_rng *drng = a->dropout ? rng : NULL;
  ln_fwd_job ej = {.m = m,
                   .a = a,
                   .emb = true,
                   .h = tmp,
                   .mask = a->emb_m0,
                   .xhat = a->emb_xhat,
                   .rstd = a->emb_rstd,
                   .out = a->x0,
                   .w = m->ln_e_w,
                   .b = m->ln_e_b,
                   .delta = delta,
                   .p = p};
  ln_fwd_pool(pool, &ej, drng);

  for (int l = 0; l < L; l++) {
    const preft_bt_layer *w = &m->layers[l];
    preft_bt_lacts *la = &a->l[l];
    la->x_in = l == 0 ? a->x0 : a->l[l - 1].out;
    float *qkv[3] = {la->q, la->k, la->v}, **qkv_t = &la->lora_t[BT_Q]; /* BT_Q, BT_K, BT_V adjacent */
    lin_fwd(pool, m, &w->lin[BT_Q], 3, la->x_in, N, qkv, qkv_t);
    if (a->dropout) preft_bt_dropout_masks(pool, NULL, la->pkeep, B * H * T, T, p, rng);
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
    lin_fwd(pool, m, &w->lin[BT_O], 1, la->ctx, N, &h, &la->lora_t[BT_O]);
    ln_fwd_job j1 = {.m = m,
                     .a = a,
                     .h = h,
                     .mask = la->m1,
                     .res = la->x_in,
                     .xhat = la->xhat1,
                     .rstd = la->rstd1,
                     .out = la->a,
                     .w = w->ln1_w,
                     .b = w->ln1_b,
                     .p = p};
    ln_fwd_pool(pool, &j1, drng);
    lin_fwd(pool, m, &w->lin[BT_FFN_IN], 1, la->a, N, &la->fpre, &la->lora_t[BT_FFN_IN]);
    gelu_pool(pool, la->fact, la->fpre, N, F, 0);
    lin_fwd(pool, m, &w->lin[BT_FFN_OUT], 1, la->fact, N, &h, &la->lora_t[BT_FFN_OUT]);
    ln_fwd_job j2 = {.m = m,
                     .a = a,
                     .h = h,
                     .mask = la->m2,
                     .res = la->a,
                     .xhat = la->xhat2,
                     .rstd = la->rstd2,
                     .out = la->out,
                     .w = w->ln2_w,
                     .b = w->ln2_b,
                     .p = p};
    ln_fwd_pool(pool, &j2, drng);
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
    ln_bwd_job b2 = {.dy = g,
                     .dz = dz,
                     .dh = dh,
                     .gw = pg ? w->g_ln2_w : NULL,
                     .gb = pg ? w->g_ln2_b : NULL,
                     .out_mask = a->dropout ? la->m2 : NULL,
                     .xhat = la->xhat2,
                     .rstd = la->rstd2,
                     .w = w->ln2_w,
                     .D = D};
    ln_bwd_pool(pool, &b2, N);
    lin_bwd(pool, m, &w->lin[BT_FFN_OUT], la->fact, N, dh, df, 0, la->lora_t[BT_FFN_OUT], param_grads, tmp);
    gelu_pool(pool, df, la->fpre, N, F, 1);
    memcpy(dxi, dz, sizeof(float) * ND); /* d a: the residual path */
    lin_bwd(pool, m, &w->lin[BT_FFN_IN], la->a, N, df, dxi, 1, la->lora_t[BT_FFN_IN], param_grads, tmp);
    /* LN1: a = LN(x_in + drop(ctx·Woᵀ + bo)) */
    ln_bwd_job b1 = {.dy = dxi,
                     .dz = dz,
                     .dh = dh,
                     .gw = pg ? w->g_ln1_w : NULL,
                     .gb = pg ? w->g_ln1_b : NULL,
                     .out_mask = a->dropout ? la->m1 : NULL,
                     .xhat = la->xhat1,
                     .rstd = la->rstd1,
                     .w = w->ln1_w,
                     .D = D};
    ln_bwd_pool(pool, &b1, N);
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
  ln_bwd_job be = {.dy = g,
                   .dz = dz,
                   .gw = m->g_ln_e_w,
                   .gb = m->g_ln_e_b,
                   .in_mask = a->dropout ? a->emb_m0 : NULL,
                   .xhat = a->emb_xhat,
                   .rstd = a->emb_rstd,
                   .w = m->ln_e_w,
                   .D = D};
  ln_bwd_pool(pool, &be, N);
  emb_scatter_job sj = {m, a, dz};
  emb_scatter_cols(&sj, 0, D); /* on this thread, as the column sums (bert_rows.h) */
}
