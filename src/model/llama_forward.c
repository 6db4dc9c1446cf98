/* llama_forward.c - the batched forward pass of the Llama-family decoder
 * (see llama.h for the batch contract and the shape legend). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/llama.h"
#include "tensor/gemm.h"
#include "tensor/ops.h"

void preft_workspace_free(preft_workspace *ws) {
  free(ws->x);
  free(ws->xb);
  free(ws->q);
  free(ws->k);
  free(ws->v);
  free(ws->att);
  free(ws->h1);
  free(ws->h3);
  free(ws->rope_cos);
  free(ws->rope_sin);
  free(ws->scores);
  free(ws->out_rows);
  preft_adapter_plan_free(&ws->plan);
  memset(ws, 0, sizeof *ws);
}

static void ensure_workspace(preft_workspace *ws, const preft_model_config *c, int rows, int ctx, int threads) {
  if (rows > ws->cap_rows) {
    size_t n = (size_t)rows, qd = (size_t)c->n_heads * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim;
    size_t D = (size_t)c->dim, F = (size_t)c->ffn, half = (size_t)c->head_dim / 2;
#define GROW(p, count) (p = preft_xrealloc(p, sizeof(float) * (count)))
    GROW(ws->x, n * D);
    GROW(ws->xb, n * D);
    GROW(ws->q, n * qd);
    GROW(ws->k, n * kvd);
    GROW(ws->v, n * kvd);
    GROW(ws->att, n * qd);
    GROW(ws->h1, n * F);
    GROW(ws->h3, n * F);
    GROW(ws->rope_cos, n * half);
    GROW(ws->rope_sin, n * half);
    GROW(ws->out_rows, n * D);
    ws->cap_rows = rows;
  }
  if (ctx > ws->cap_ctx || threads > ws->cap_threads) {
    ws->cap_ctx = ctx > ws->cap_ctx ? ctx : ws->cap_ctx;
    ws->cap_threads = threads > ws->cap_threads ? threads : ws->cap_threads;
    GROW(ws->scores, (size_t)ws->cap_ctx * (size_t)ws->cap_threads);
#undef GROW
  }
}

static int validate_batch(const preft_model *m, const preft_kv_cache *kv, const preft_batch *b, preft_error *err) {
  if (b->n <= 0) return preft_fail(err, "forward: empty batch");
  for (int i = 0; i < b->n; i++) {
    if (b->token[i] < 0 || b->token[i] >= m->cfg.vocab)
      return preft_fail(err, "token id %d at row %d is outside the vocabulary [0, %d)", b->token[i], i, m->cfg.vocab);
    if (b->seq[i] < 0 || b->seq[i] >= kv->max_seqs)
      return preft_fail(err, "row %d: sequence slot %d outside [0, %d)", i, b->seq[i], kv->max_seqs);
    if (b->pos[i] < 0 || b->pos[i] >= preft_kv_capacity(kv, b->seq[i]))
      return preft_fail(err, "row %d: position %d is not reserved in the KV cache (sequence %d holds %d)", i,
                        b->pos[i], b->seq[i], preft_kv_capacity(kv, b->seq[i]));
  }
  for (int i = 0; i < b->n_logits; i++)
    if (b->logit_rows[i] < 0 || b->logit_rows[i] >= b->n)
      return preft_fail(err, "logit row %d outside the batch of %d rows", b->logit_rows[i], b->n);
  if (b->adapter) {
    if (!b->adapt) return preft_fail(err, "forward: adapters given without adapt flags");
    for (int i = 0; i < b->n; i++) {
      const preft_adapter *a = b->adapter[i];
      if (a && (a->n_layers != m->cfg.n_layers || a->dim != m->cfg.dim))
        return preft_fail(err, "row %d: adapter %s was loaded for a different base model", i, a->name);
      if (b->adapt[i] > PREFT_ADAPT_LAST) return preft_fail(err, "row %d: invalid adapt flag %d", i, b->adapt[i]);
    }
  }
  return 0;
}

/* ---- attention ----------------------------------------------------------- */

typedef struct {
  const preft_model_config *c;
  const preft_kv_cache *kv;
  const preft_batch *b;
  const float *q; /* [N, H*Dh] */
  float *att;     /* [N, H*Dh] */
  float *scores;  /* [threads, ctx] */
  int ctx, layer;
} attn_job;

/* One (row, head): softmax(q·Kᵀ/sqrt(Dh)) V over the row's visible positions. */
static void attn_task(void *p, int task, int thread) {
  const attn_job *j = p;
  const preft_model_config *c = j->c;
  int row = task / c->n_heads, h = task % c->n_heads;
  int kvh = h / (c->n_heads / c->n_kv_heads), dh = c->head_dim;
  int seq = j->b->seq[row], pos = j->b->pos[row];
  int start = c->sliding_window > 0 && pos - c->sliding_window + 1 > 0 ? pos - c->sliding_window + 1 : 0;
  const float *q = j->q + (size_t)row * (size_t)c->n_heads * (size_t)dh + (size_t)h * (size_t)dh;
  float *s = j->scores + (size_t)thread * (size_t)j->ctx;
  float scale = 1.0f / sqrtf((float)dh);
  for (int t = start; t <= pos; t++)
    s[t - start] = preft_dot(q, preft_kv_k(j->kv, j->layer, seq, t) + (size_t)kvh * (size_t)dh, dh) * scale;
  int n = pos - start + 1;
  preft_softmax(s, n);
  float *out = j->att + (size_t)row * (size_t)c->n_heads * (size_t)dh + (size_t)h * (size_t)dh;
  memset(out, 0, sizeof(float) * (size_t)dh);
  for (int t = start; t <= pos; t++)
    preft_axpy(out, s[t - start], preft_kv_v(j->kv, j->layer, seq, t) + (size_t)kvh * (size_t)dh, dh);
}

/* ---- one decoder layer ------------------------------------------------------ */

static void add_bias(float *y, const float *bias, int n, int d) {
  if (!bias) return;
  for (int i = 0; i < n; i++) preft_axpy(y + (size_t)i * (size_t)d, 1.0f, bias, d);
}

static void layer_forward(const preft_model *m, int l, preft_pool *pool, preft_kv_cache *kv, const preft_batch *b,
                          preft_workspace *ws, int ctx) {
  const preft_model_config *c = &m->cfg;
  const preft_layer_weights *w = &m->layers[l];
  int n = b->n, D = c->dim, F = c->ffn, dh = c->head_dim, half = dh / 2;
  int qd = c->n_heads * dh, kvd = c->n_kv_heads * dh;

  /* attention block: x += o_proj(attn(rope(q), rope(k), v)) */
  for (int i = 0; i < n; i++)
    preft_rmsnorm(ws->xb + (size_t)i * D, ws->x + (size_t)i * D, w->attn_norm, D, c->norm_eps);
  preft_adapter_plan *plan = &ws->plan;
  preft_gemm(pool, ws->q, qd, ws->xb, D, w->wq.data, w->wq.dtype, n, D, qd, 0);
  preft_gemm(pool, ws->k, kvd, ws->xb, D, w->wk.data, w->wk.dtype, n, D, kvd, 0);
  preft_gemm(pool, ws->v, kvd, ws->xb, D, w->wv.data, w->wv.dtype, n, D, kvd, 0);
  preft_lora_apply(pool, plan, l, PREFT_MOD_Q, ws->xb, D, D, ws->q, qd, qd);
  preft_lora_apply(pool, plan, l, PREFT_MOD_K, ws->xb, D, D, ws->k, kvd, kvd);
  preft_lora_apply(pool, plan, l, PREFT_MOD_V, ws->xb, D, D, ws->v, kvd, kvd);
  add_bias(ws->q, w->bq, n, qd);
  add_bias(ws->k, w->bk, n, kvd);
  add_bias(ws->v, w->bv, n, kvd);
  for (int i = 0; i < n; i++) {
    const float *cs = ws->rope_cos + (size_t)i * half, *sn = ws->rope_sin + (size_t)i * half;
    for (int h = 0; h < c->n_heads; h++) preft_rope_rotate_half(ws->q + (size_t)i * qd + (size_t)h * dh, cs, sn, dh);
    for (int h = 0; h < c->n_kv_heads; h++) preft_rope_rotate_half(ws->k + (size_t)i * kvd + (size_t)h * dh, cs, sn, dh);
    memcpy(preft_kv_k(kv, l, b->seq[i], b->pos[i]), ws->k + (size_t)i * kvd, sizeof(float) * (size_t)kvd);
    memcpy(preft_kv_v(kv, l, b->seq[i], b->pos[i]), ws->v + (size_t)i * kvd, sizeof(float) * (size_t)kvd);
  }
  attn_job aj = {c, kv, b, ws->q, ws->att, ws->scores, ctx, l};
  preft_pool_run(pool, n * c->n_heads, attn_task, &aj);
  preft_gemm(pool, ws->x, D, ws->att, qd, w->wo.data, w->wo.dtype, n, qd, D, 1);
  preft_lora_apply(pool, plan, l, PREFT_MOD_O, ws->att, qd, qd, ws->x, D, D);
  add_bias(ws->x, w->bo, n, D);

  /* MLP block: x += down(silu(gate(h)) * up(h)), h = norm(x) */
  for (int i = 0; i < n; i++)
    preft_rmsnorm(ws->xb + (size_t)i * D, ws->x + (size_t)i * D, w->ffn_norm, D, c->norm_eps);
  preft_gemm(pool, ws->h1, F, ws->xb, D, w->w_gate.data, w->w_gate.dtype, n, D, F, 0);
  preft_gemm(pool, ws->h3, F, ws->xb, D, w->w_up.data, w->w_up.dtype, n, D, F, 0);
  preft_lora_apply(pool, plan, l, PREFT_MOD_GATE, ws->xb, D, D, ws->h1, F, F);
  preft_lora_apply(pool, plan, l, PREFT_MOD_UP, ws->xb, D, D, ws->h3, F, F);
  preft_swiglu(ws->h1, ws->h3, n * F);
  preft_gemm(pool, ws->x, D, ws->h1, F, w->w_down.data, w->w_down.dtype, n, F, D, 1);
  preft_lora_apply(pool, plan, l, PREFT_MOD_DOWN, ws->h1, F, F, ws->x, D, D);

  /* ReFT edits the layer's output (the residual stream before layer l+1) */
  preft_reft_apply(plan, l, ws->x, D);
}

int preft_model_forward(const preft_model *m, preft_pool *pool, preft_kv_cache *kv, const preft_batch *b,
                        preft_workspace *ws, float *logits, preft_error *err) {
  if (validate_batch(m, kv, b, err) != 0) return -1;
  const preft_model_config *c = &m->cfg;
  int n = b->n, D = c->dim, half = c->head_dim / 2;
  int ctx = 1;
  for (int i = 0; i < n; i++) ctx = b->pos[i] + 1 > ctx ? b->pos[i] + 1 : ctx;
  ensure_workspace(ws, c, n, ctx, preft_pool_size(pool));
  int widest = c->ffn > c->dim ? c->ffn : c->dim;
  widest = c->n_heads * c->head_dim > widest ? c->n_heads * c->head_dim : widest;
  preft_adapter_plan_build(&ws->plan, n, b->adapter, b->adapt, widest, preft_pool_size(pool));

  for (int i = 0; i < n; i++) {
    preft_load_row(ws->x + (size_t)i * D, m->embed.data, m->embed.dtype, (size_t)b->token[i], D);
    for (int k = 0; k < half; k++) {
      double angle = (double)b->pos[i] * m->inv_freq[k];
      ws->rope_cos[(size_t)i * half + k] = (float)cos(angle);
      ws->rope_sin[(size_t)i * half + k] = (float)sin(angle);
    }
  }
  for (int l = 0; l < c->n_layers; l++) layer_forward(m, l, pool, kv, b, ws, ctx);

  for (int i = 0; i < b->n_logits; i++)
    preft_rmsnorm(ws->out_rows + (size_t)i * D, ws->x + (size_t)b->logit_rows[i] * D, m->final_norm, D, c->norm_eps);
  if (b->n_logits > 0)
    preft_gemm(pool, logits, c->vocab, ws->out_rows, D, m->lm_head.data, m->lm_head.dtype, b->n_logits, D, c->vocab, 0);
  return 0;
}
