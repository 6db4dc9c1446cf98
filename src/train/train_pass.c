/* train_pass.c - the training forward and backward pass of the decoder with
 * an optional adapter (see train_model.h). The forward follows
 * llama_forward.c operation by operation; the backward walks it in reverse:
 *
 *   x0 = embed[tokens]
 *   layer l:  xb1 = norm(x)  q,k,v = xb1·Wᵀ (+LoRA, +b)  rope(q,k)
 *             att = attention(q,k,v)   x_mid = x + att·Woᵀ (+LoRA, +b)
 *             xb2 = norm(x_mid)  h1,h3 = xb2·Wᵀ (+LoRA)  hg = silu(h1)·h3
 *             out = x_mid + hg·Wdᵀ (+LoRA)   out = ReFT(out) at flagged rows
 *   xf = norm(x_L)   loss = CE(xf·Headᵀ) at rows with a target
 *
 * The head and cross-entropy run on the rows with a target only, in chunks
 * of preft_train_head_rows rows, forward and backward together, so [N, V]
 * logits are never held. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/gemm.h"
#include "tensor/gemm_train.h"
#include "tensor/ops.h"
#include "tensor/quant.h"
#include "train/adapter_grad.h"
#include "train/layers.h"
#include "train/train_model.h"

typedef struct {
  const preft_train_model *tm;
  const preft_train_adapter *ad;
  preft_pool *pool;
  const preft_train_batch *b;
  preft_train_acts *a;
  int n, D, F, qd, kvd, R;
  preft_matmul_precision prec; /* of the products with FP32 weights (tm->matmul) */
} pass;

/* Per-layer activation pointers (layer 0's buffers with recomputation). */
typedef struct {
  float *x, *out, *xb1, *rstd1, *q, *k, *v, *lse, *att, *x_mid, *xb2, *rstd2, *h1, *h3, *hg, *x_pre, *lora_t;
} layer_acts;

static layer_acts acts_of(const pass *P, int l) {
  const preft_train_acts *a = P->a;
  size_t N = (size_t)a->cap_rows, s = a->recompute ? 0 : (size_t)l;
  size_t D = (size_t)P->D, F = (size_t)P->F, qd = (size_t)P->qd, kvd = (size_t)P->kvd,
         H = (size_t)P->tm->cfg.n_heads;
  int L = P->tm->cfg.n_layers;
  layer_acts la = {
      .x = a->x_in + (size_t)l * N * D,
      .out = l + 1 < L ? a->x_in + (size_t)(l + 1) * N * D : a->x_out,
      .xb1 = a->xb1 + s * N * D,
      .rstd1 = a->rstd1 + s * N,
      .q = a->q + s * N * qd,
      .k = a->k + s * N * kvd,
      .v = a->v + s * N * kvd,
      .lse = a->lse + s * N * H,
      .att = a->att + s * N * qd,
      .x_mid = a->x_mid + s * N * D,
      .xb2 = a->xb2 + s * N * D,
      .rstd2 = a->rstd2 + s * N,
      .h1 = a->h1 + s * N * F,
      .h3 = a->h3 + s * N * F,
      .hg = a->hg + s * N * F,
      .x_pre = a->x_pre ? a->x_pre + s * N * D : NULL,
      .lora_t = a->lora_t ? a->lora_t + s * PREFT_N_MODULES * N * (size_t)P->R : NULL,
  };
  return la;
}

static const preft_train_lora *lora_of(const pass *P, int l, int m) {
  if (!P->ad || P->ad->kind != PREFT_ADAPTER_LORA) return NULL;
  const preft_train_lora *lm = &P->ad->lora[l * PREFT_N_MODULES + m];
  return lm->a ? lm : NULL;
}

static float *lora_t_of(const pass *P, const layer_acts *la, int m) {
  return la->lora_t + (size_t)m * (size_t)P->a->cap_rows * (size_t)P->R;
}

/* y[N,M] (+)= x[N,K]·Wᵀ for an FP32 (at precision prec) or a block-quantized W [M,K]. */
static void gemm_fwd(preft_pool *pool, preft_matmul_precision prec, float *y, int y_stride, const float *x,
                     int x_stride, preft_weight w, int n, int k, int m, int accumulate) {
  if (w.dtype == PREFT_F32)
    preft_train_gemm(pool, prec, y, y_stride, x, x_stride, w.data, n, k, m, accumulate);
  else
    preft_gemm(pool, y, y_stride, x, x_stride, w.data, w.dtype, n, k, m, accumulate);
}

/* dx[N,K] (+)= dy[N,M]·W for an FP32 (at precision prec) or a block-quantized W [M,K]. */
static void gemm_dx(preft_pool *pool, preft_matmul_precision prec, float *dx, int dx_stride, const float *dy,
                    int dy_stride, preft_weight w, int n, int m, int k, int accumulate) {
  if (w.dtype == PREFT_F32)
    preft_train_gemm_dx(pool, prec, dx, dx_stride, dy, dy_stride, w.data, n, m, k, accumulate);
  else
    preft_qgemm_dx(pool, dx, dx_stride, dy, dy_stride, w.data, w.dtype, n, m, k, accumulate);
}

static preft_weight mat_of(const pass *P, int l, int m) {
  return P->tm->mats[(size_t)l * PREFT_N_MODULES + (size_t)m];
}

/* y[N,out] = x·Wᵀ (+ LoRA) (+ bias), W the layer's matrix of module m */
static void linear_fwd(const pass *P, const layer_acts *la, int l, int m, float *y, int out, const float *x,
                       int in, const float *bias, int accumulate) {
  gemm_fwd(P->pool, P->prec, y, out, x, in, mat_of(P, l, m), P->n, in, out, accumulate);
  const preft_train_lora *lm = lora_of(P, l, m);
  if (lm)
    preft_lora_forward(P->pool, y, out, x, in, lm, P->ad->scale, P->b->flag, P->n, P->R, lora_t_of(P, la, m));
  if (bias) preft_bias_forward(y, bias, P->n, out);
}

/* dx[n, in] (+)= dy[n, out]·W and dW += dyᵀ·x (dw NULL: not trained) for
 * W [out, in], rows of dx, dy and x dense */
static void weight_bwd(const pass *P, preft_weight w, float *dw, float *dx, int accumulate, const float *dy,
                       const float *x, int n, int out, int in) {
  if (w.dtype == PREFT_F32) { /* both products, reading W and x as stored, dy rounded once at BF16 */
    preft_train_gemm_dwdx(P->pool, P->prec, dw, dx, in, accumulate, dy, out, x, in, w.data, n, out, in);
  } else {
    if (dw) preft_train_gemm_dw(P->pool, P->prec, dw, dy, out, x, in, n, out, in);
    gemm_dx(P->pool, P->prec, dx, in, dy, out, w, n, out, in, accumulate);
  }
}

/* dx[N,in] (+)= dy·W (+ LoRA); dW += dyᵀ·x, db += Σdy when trained */
static void linear_bwd(const pass *P, const layer_acts *la, int l, int m, float *dx, int accumulate,
                       const float *dy, int out, const float *x, int in, float *dw, float *dbias) {
  if (dbias) preft_bias_backward(dbias, dy, P->n, out);
  weight_bwd(P, mat_of(P, l, m), dw, dx, accumulate, dy, x, P->n, out, in);
  const preft_train_lora *lm = lora_of(P, l, m);
  if (lm)
    preft_lora_backward(P->pool, dx, in, dy, out, x, in, lm, P->ad->scale, P->b->flag, P->n, P->R,
                        lora_t_of(P, la, m), P->a->dt);
}

/* The modules mods[0..n) of layer l reading the same x [N, in]: ys[i] [N, outs[i]]
 * = x·Wᵀ (+ LoRA) (+ biases[i]). The base products are one job on the
 * pool where the CPU allows (preft_train_gemm_multi: one wait instead of
 * n, x rounded once at BF16, the same results as separate calls). */
static void linear_fwd_shared(const pass *P, const layer_acts *la, int l, const int *mods, float *const *ys,
                              const int *outs, const float *const *biases, int n, const float *x, int in) {
  preft_gemm_out go[PREFT_GEMM_MULTI_MAX] = {0};
  for (int i = 0; i < n; i++) {
    preft_weight w = mat_of(P, l, mods[i]);
    go[i] = (preft_gemm_out){.y = ys[i], .y_stride = outs[i], .w = w.data, .wdt = w.dtype, .m = outs[i]};
  }
  preft_train_gemm_multi(P->pool, P->prec, x, in, P->n, in, go, n);
  for (int i = 0; i < n; i++) {
    const preft_train_lora *lm = lora_of(P, l, mods[i]);
    if (lm)
      preft_lora_forward(P->pool, ys[i], outs[i], x, in, lm, P->ad->scale, P->b->flag, P->n, P->R,
                         lora_t_of(P, la, mods[i]));
    if (biases[i]) preft_bias_forward(ys[i], biases[i], P->n, outs[i]);
  }
}

static void layer_forward(const pass *P, int l) {
  const preft_model_config *c = &P->tm->cfg;
  const preft_train_layer *w = &P->tm->w.layers[l];
  const preft_train_batch *b = P->b;
  layer_acts la = acts_of(P, l);
  int n = P->n, D = P->D, F = P->F, qd = P->qd, kvd = P->kvd;
  preft_rmsnorm_forward(P->pool, la.xb1, la.rstd1, la.x, w->attn_norm, n, D, c->norm_eps);
  {
    const int mods[] = {PREFT_MOD_Q, PREFT_MOD_K, PREFT_MOD_V}, outs[] = {qd, kvd, kvd};
    float *const ys[] = {la.q, la.k, la.v};
    const float *const biases[] = {w->bq, w->bk, w->bv};
    linear_fwd_shared(P, &la, l, mods, ys, outs, biases, 3, la.xb1, D);
  }
  preft_rope_forward(la.q, P->a->rope_cos, P->a->rope_sin, n, c->n_heads, c->head_dim);
  preft_rope_forward(la.k, P->a->rope_cos, P->a->rope_sin, n, c->n_kv_heads, c->head_dim);
  preft_attention_forward(P->pool, la.att, la.lse, la.q, la.k, la.v, b->seq_start, b->seq_len, b->n_seq,
                          c->n_heads, c->n_kv_heads, c->head_dim, c->sliding_window, P->prec);
  memcpy(la.x_mid, la.x, sizeof(float) * (size_t)n * D);
  linear_fwd(P, &la, l, PREFT_MOD_O, la.x_mid, D, la.att, qd, w->bo, 1);
  preft_rmsnorm_forward(P->pool, la.xb2, la.rstd2, la.x_mid, w->ffn_norm, n, D, c->norm_eps);
  {
    const int mods[] = {PREFT_MOD_GATE, PREFT_MOD_UP}, outs[] = {F, F};
    float *const ys[] = {la.h1, la.h3};
    const float *const biases[] = {NULL, NULL};
    linear_fwd_shared(P, &la, l, mods, ys, outs, biases, 2, la.xb2, D);
  }
  preft_swiglu_forward(P->pool, la.hg, la.h1, la.h3, n * F);
  memcpy(la.out, la.x_mid, sizeof(float) * (size_t)n * D);
  linear_fwd(P, &la, l, PREFT_MOD_DOWN, la.out, D, la.hg, F, NULL, 1);
  if (P->ad && P->ad->kind != PREFT_ADAPTER_LORA && P->ad->layers[l])
    preft_reft_forward(la.out, la.x_pre, P->ad, l, b->flag, n);
}

/* dx [N,D]: gradient w.r.t. the layer's output in, w.r.t. its input out. */
static void layer_backward(const pass *P, int l) {
  const preft_model_config *c = &P->tm->cfg;
  const preft_train_layer *w = &P->tm->w.layers[l], *g = &P->tm->g.layers[l];
  const preft_train_batch *b = P->b;
  preft_train_acts *a = P->a;
  layer_acts la = acts_of(P, l);
  int n = P->n, D = P->D, F = P->F, qd = P->qd, kvd = P->kvd;
  float *dx = a->dx;
  if (P->ad && P->ad->kind != PREFT_ADAPTER_LORA && P->ad->layers[l])
    preft_reft_backward(dx, la.x_pre, P->ad, l, b->flag, n);
  /* MLP: out = x_mid + hg·Wdᵀ; dx carries the residual path */
  linear_bwd(P, &la, l, PREFT_MOD_DOWN, a->dhg, 0, dx, D, la.hg, F, g->w_down, NULL);
  preft_swiglu_backward(P->pool, a->dh1, a->dh3, a->dhg, la.h1, la.h3, n * F);
  linear_bwd(P, &la, l, PREFT_MOD_GATE, a->dxb, 0, a->dh1, F, la.xb2, D, g->w_gate, NULL);
  linear_bwd(P, &la, l, PREFT_MOD_UP, a->dxb, 1, a->dh3, F, la.xb2, D, g->w_up, NULL);
  preft_rmsnorm_backward(P->pool, dx, g->ffn_norm, a->dxb, la.x_mid, w->ffn_norm, la.rstd2, n, D);
  /* attention: x_mid = x + att·Woᵀ */
  linear_bwd(P, &la, l, PREFT_MOD_O, a->datt, 0, dx, D, la.att, qd, g->wo, g->bo);
  preft_attention_backward(P->pool, a->dq, a->dk, a->dv, a->datt, la.att, la.lse, la.q, la.k, la.v,
                           b->seq_start, b->seq_len, b->n_seq, c->n_heads, c->n_kv_heads, c->head_dim,
                           c->sliding_window, P->prec);
  preft_rope_backward(a->dq, a->rope_cos, a->rope_sin, n, c->n_heads, c->head_dim);
  preft_rope_backward(a->dk, a->rope_cos, a->rope_sin, n, c->n_kv_heads, c->head_dim);
  linear_bwd(P, &la, l, PREFT_MOD_Q, a->dxb, 0, a->dq, qd, la.xb1, D, g->wq, g->bq);
  linear_bwd(P, &la, l, PREFT_MOD_K, a->dxb, 1, a->dk, kvd, la.xb1, D, g->wk, g->bk);
  linear_bwd(P, &la, l, PREFT_MOD_V, a->dxb, 1, a->dv, kvd, la.xb1, D, g->wv, g->bv);
  preft_rmsnorm_backward(P->pool, dx, g->attn_norm, a->dxb, la.x, w->attn_norm, la.rstd1, n, D);
}

static int check_batch(const preft_train_model *tm, const preft_train_batch *b, const preft_train_acts *a,
                       preft_error *err) {
  if (b->n <= 0) return preft_fail(err, "train: empty batch");
  if (b->n > a->cap_rows)
    return preft_fail(err, "train: batch of %d rows exceeds the %d sized for", b->n, a->cap_rows);
  for (int s = 0; s < b->n_seq; s++)
    if (b->seq_len[s] > a->max_seq_len)
      return preft_fail(err, "train: sequence of %d tokens exceeds the %d sized for", b->seq_len[s],
                        a->max_seq_len);
  for (int i = 0; i < b->n; i++) {
    if (b->token[i] < 0 || b->token[i] >= tm->cfg.vocab)
      return preft_fail(err, "token id %d at row %d is outside the vocabulary [0, %d)", b->token[i], i,
                        tm->cfg.vocab);
    if (b->pos[i] < 0 || b->pos[i] >= a->max_seq_len)
      return preft_fail(err, "train: position %d at row %d is outside [0, %d)", b->pos[i], i, a->max_seq_len);
    if (b->target[i] >= tm->cfg.vocab)
      return preft_fail(err, "target id %d at row %d is outside the vocabulary [0, %d)", b->target[i], i,
                        tm->cfg.vocab);
  }
  return 0;
}

/* The rotary table of every position (see preft_train_acts): built once,
 * not per pass, unless the model's frequencies are not the ones it holds. */
static void rope_table(const preft_train_model *tm, preft_train_acts *a) {
  size_t half = (size_t)tm->cfg.head_dim / 2;
  if (a->rope_freq_set && memcmp(a->rope_freq, tm->inv_freq, sizeof(double) * half) == 0) return;
  for (int t = 0; t < a->max_seq_len; t++)
    for (size_t k = 0; k < half; k++) {
      double angle = (double)t * tm->inv_freq[k];
      a->pos_cos[(size_t)t * half + k] = (float)cos(angle);
      a->pos_sin[(size_t)t * half + k] = (float)sin(angle);
    }
  memcpy(a->rope_freq, tm->inv_freq, sizeof(double) * half);
  a->rope_freq_set = true;
}

static void body_forward(pass *P) {
  const preft_model_config *c = &P->tm->cfg;
  const preft_train_batch *b = P->b;
  size_t half = (size_t)c->head_dim / 2;
  rope_table(P->tm, P->a);
  for (int i = 0; i < b->n; i++) {
    memcpy(P->a->rope_cos + (size_t)i * half, P->a->pos_cos + (size_t)b->pos[i] * half, sizeof(float) * half);
    memcpy(P->a->rope_sin + (size_t)i * half, P->a->pos_sin + (size_t)b->pos[i] * half, sizeof(float) * half);
  }
  preft_weight e = P->tm->embed_w;
  if (e.dtype == PREFT_F32)
    preft_embedding_forward(P->a->x_in, b->token, e.data, b->n, P->D);
  else /* a quantized table used in place: the batch's rows dequantized */
    for (int i = 0; i < b->n; i++)
      preft_load_row(P->a->x_in + (size_t)i * P->D, e.data, e.dtype, (size_t)b->token[i], P->D);
  /* with recomputation only the inputs are kept; the last layer's buffers
   * are the ones the backward starts from */
  for (int l = 0; l < c->n_layers; l++) layer_forward(P, l);
  preft_rmsnorm_forward(P->pool, P->a->xf, P->a->rstdf, P->a->x_out, P->tm->w.final_norm, b->n, P->D,
                        c->norm_eps);
}

static pass make_pass(const preft_train_model *tm, const preft_train_adapter *ad, preft_pool *pool,
                      const preft_train_batch *b, preft_train_acts *a) {
  const preft_model_config *c = &tm->cfg;
  pass P = {.tm = tm,
            .ad = ad,
            .pool = pool,
            .b = b,
            .a = a,
            .n = b->n,
            .D = c->dim,
            .F = c->ffn,
            .qd = c->n_heads * c->head_dim,
            .kvd = c->n_kv_heads * c->head_dim,
            .R = ad && ad->kind == PREFT_ADAPTER_LORA ? ad->rank : 0,
            .prec = tm->matmul};
  return P;
}

/* The pass of preft_train_pass (fn NULL: every counted row's dloss is
 * `dloss`) and of preft_train_pass_rows (fn gives each row's). */
static int run_pass(const preft_train_model *tm, const preft_train_adapter *ad, preft_pool *pool,
                    const preft_train_batch *b, preft_train_acts *a, float dloss, preft_row_loss_fn fn,
                    void *ctx, bool backward, double *loss_sum, preft_error *err) {
  if (check_batch(tm, b, a, err) != 0) return -1;
  pass P = make_pass(tm, ad, pool, b, a);
  const preft_model_config *c = &tm->cfg;
  int D = P.D, V = c->vocab, n = b->n;
  body_forward(&P);

  /* head + cross-entropy on the target rows, chunk by chunk (at BF16 each
   * chunk's products round the head's panels as they pack them: a rounded
   * copy and a transposed one made once per pass took 12% longer on a
   * 4096 × 512 head and one chunk, 24% on 32000 × 512 and 128 rows,
   * docs/PERFORMANCE.md) */
  int ch_cap = preft_train_head_rows(n, V);
  float *logits = a->logits, *xg = logits + (size_t)ch_cap * V, *dxg = xg + (size_t)ch_cap * D;
  float *losses = dxg + (size_t)ch_cap * D, *dl = losses + ch_cap;
  int *rows = a->head_rows, *tg = a->head_targets;
  if (backward) memset(a->dxb, 0, sizeof(float) * (size_t)n * D);
  double total = 0.0;
  int i = 0;
  while (i < n) {
    int m = 0;
    for (; i < n && m < ch_cap; i++)
      if (b->target[i] >= 0) {
        rows[m] = i;
        tg[m++] = b->target[i];
      }
    if (m == 0) break;
    for (int r = 0; r < m; r++)
      memcpy(xg + (size_t)r * D, a->xf + (size_t)rows[r] * D, sizeof(float) * (size_t)D);
    gemm_fwd(pool, P.prec, logits, V, xg, D, tm->head_w, m, D, V, 0);
    if (backward && !fn) { /* every row's dloss known: forward and backward in one job */
      total += preft_crossentropy_fwd_bwd(pool, logits, losses, tg, m, V, dloss);
    } else {
      total += preft_crossentropy_forward(pool, logits, losses, tg, m, V);
      if (fn) fn(ctx, rows, losses, dl, m);
      if (!backward) continue;
      preft_crossentropy_backward_rows(pool, logits, tg, m, V, dl);
    }
    weight_bwd(&P, tm->head_w, tm->g.lm_head, dxg, 0, logits, xg, m, V, D);
    for (int r = 0; r < m; r++)
      memcpy(a->dxb + (size_t)rows[r] * D, dxg + (size_t)r * D, sizeof(float) * (size_t)D);
  }
  *loss_sum = total;
  if (!isfinite(total)) return 0;
  if (!backward) return 0;

  /* the lowest layer a gradient must reach: 0 when the model trains,
   * otherwise the first adapted layer */
  int lowest = 0;
  if (!tm->ps.grad && ad) {
    lowest = c->n_layers;
    for (int l = 0; l < c->n_layers; l++)
      if (ad->layers[l]) {
        lowest = l;
        break;
      }
  }
  memset(a->dx, 0, sizeof(float) * (size_t)n * D);
  preft_rmsnorm_backward(pool, a->dx, tm->g.final_norm, a->dxb, a->x_out, tm->w.final_norm, a->rstdf, n, D);
  for (int l = c->n_layers - 1; l >= lowest; l--) {
    if (a->recompute && l != c->n_layers - 1) layer_forward(&P, l);
    layer_backward(&P, l);
  }
  if (tm->g.embed) preft_embedding_backward(tm->g.embed, a->dx, b->token, n, D);
  return 0;
}

int preft_train_pass(const preft_train_model *tm, const preft_train_adapter *ad, preft_pool *pool,
                     const preft_train_batch *b, preft_train_acts *a, float dloss, double *loss_sum,
                     preft_error *err) {
  return run_pass(tm, ad, pool, b, a, dloss, NULL, NULL, dloss != 0.0f, loss_sum, err);
}

int preft_train_pass_rows(const preft_train_model *tm, const preft_train_adapter *ad, preft_pool *pool,
                          const preft_train_batch *b, preft_train_acts *a, preft_row_loss_fn fn, void *ctx,
                          bool backward, double *loss_sum, preft_error *err) {
  return run_pass(tm, ad, pool, b, a, 0.0f, fn, ctx, backward, loss_sum, err);
}

int preft_train_logits(const preft_train_model *tm, const preft_train_adapter *ad, preft_pool *pool,
                       const preft_train_batch *b, preft_train_acts *a, float *logits, preft_error *err) {
  if (check_batch(tm, b, a, err) != 0) return -1;
  pass P = make_pass(tm, ad, pool, b, a);
  body_forward(&P);
  gemm_fwd(pool, P.prec, logits, tm->cfg.vocab, a->xf, P.D, tm->head_w, b->n, P.D, tm->cfg.vocab, 0);
  return 0;
}
