/* llama_forward.c - the batched forward pass of the Llama-family decoder
 * (see llama.h for the batch contract and the shape legend). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/threadpool.h"
#include "model/llama.h"
#include "tensor/attention.h"
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

static void ensure_workspace(preft_workspace *ws, const preft_model_config *c, int rows, int ctx,
                             int threads) {
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

static int validate_batch(const preft_model *m, const preft_kv_cache *kv, const preft_batch *b,
                          preft_error *err) {
  if (b->n <= 0) return preft_fail(err, "forward: empty batch");
  for (int i = 0; i < b->n; i++) {
    if (b->token[i] < 0 || b->token[i] >= m->cfg.vocab)
      return preft_fail(err, "token id %d at row %d is outside the vocabulary [0, %d)", b->token[i], i,
                        m->cfg.vocab);
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
      if (b->adapt[i] > PREFT_ADAPT_LAST)
        return preft_fail(err, "row %d: invalid adapt flag %d", i, b->adapt[i]);
    }
  }
  return 0;
}

/* ---- row-parallel steps ---------------------------------------------------- */

/* The element-wise steps of a layer run over the pool in row ranges when the
 * batch is big enough: a task gets at least ROWS_MIN_WORK floats of work
 * (10-20 us with the AVX kernels). Vectorised, rmsnorm and rope cost so
 * little that splitting them gains microseconds per layer, while every pool
 * run is one more barrier, and on a shared machine a barrier waits for a
 * descheduled worker. For Qwen2.5-0.5B's widths: swiglu (an exp and a
 * divide per element) splits from 7 rows on, the embedding rows (a double
 * cos and sin per angle) from 69, norms and q/k/v from ~130-150. Every row
 * is computed the same way whichever task takes it, so results do not
 * depend on the thread count. */
#define ROWS_MIN_WORK 65536

typedef struct rows_job rows_job;
struct rows_job {
  void (*fn)(const rows_job *j, int r0, int r1);
  int n;
  const preft_model *m;
  const preft_layer_weights *w;
  preft_kv_cache *kv;
  const preft_batch *b;
  preft_workspace *ws;
  int layer;
  /* norm_rows: dst[i] = rmsnorm(src[rows ? rows[i] : i] (+= bias first)) */
  const float *norm_w, *bias;
  float *src, *dst;
  const int *rows;
};

static void rows_range(void *p, int r0, int r1) {
  const rows_job *j = p;
  j->fn(j, r0, r1);
}

/* Runs j->fn over rows [0, j->n), split across the pool when n rows of
 * `row_work` floats each are worth it. */
static void run_rows(preft_pool *pool, rows_job *j, size_t row_work) {
  preft_pool_run_rows(pool, j->n, row_work, ROWS_MIN_WORK, rows_range, j);
}

/* x[i] = embedding row of token i; rope angles of row i's position, computed
 * in double and rounded (docs/ARCHITECTURE.md, rotary embeddings). */
static void embed_rows(const rows_job *j, int r0, int r1) {
  const preft_model *m = j->m;
  int D = m->cfg.dim, half = m->cfg.head_dim / 2;
  for (int i = r0; i < r1; i++) {
    preft_load_row(j->ws->x + (size_t)i * D, m->embed.data, m->embed.dtype, (size_t)j->b->token[i], D);
    for (int k = 0; k < half; k++) {
      double angle = (double)j->b->pos[i] * m->inv_freq[k];
      j->ws->rope_cos[(size_t)i * half + k] = (float)cos(angle);
      j->ws->rope_sin[(size_t)i * half + k] = (float)sin(angle);
    }
  }
}

static void norm_rows(const rows_job *j, int r0, int r1) {
  int D = j->m->cfg.dim;
  for (int i = r0; i < r1; i++) {
    float *x = j->src + (size_t)(j->rows ? j->rows[i] : i) * D;
    if (j->bias)
      for (int d = 0; d < D; d++) x[d] += j->bias[d];
    preft_rmsnorm_fast(j->dst + (size_t)i * D, x, j->norm_w, D, j->m->cfg.norm_eps);
  }
}

/* q, k, v biases; rope on q and k; k and v written to the cache. */
static void qkv_rows(const rows_job *j, int r0, int r1) {
  const preft_model_config *c = &j->m->cfg;
  const preft_layer_weights *w = j->w;
  preft_workspace *ws = j->ws;
  int dh = c->head_dim, half = dh / 2, qd = c->n_heads * dh, kvd = c->n_kv_heads * dh;
  for (int i = r0; i < r1; i++) {
    float *q = ws->q + (size_t)i * qd, *k = ws->k + (size_t)i * kvd, *v = ws->v + (size_t)i * kvd;
    if (w->bq)
      for (int d = 0; d < qd; d++) q[d] += w->bq[d];
    if (w->bk)
      for (int d = 0; d < kvd; d++) k[d] += w->bk[d];
    if (w->bv)
      for (int d = 0; d < kvd; d++) v[d] += w->bv[d];
    const float *cs = ws->rope_cos + (size_t)i * half, *sn = ws->rope_sin + (size_t)i * half;
    for (int h = 0; h < c->n_heads; h++) preft_rope_rotate_half_fast(q + (size_t)h * dh, cs, sn, dh);
    for (int h = 0; h < c->n_kv_heads; h++) preft_rope_rotate_half_fast(k + (size_t)h * dh, cs, sn, dh);
    memcpy(preft_kv_k(j->kv, j->layer, j->b->seq[i], j->b->pos[i]), k, sizeof(float) * (size_t)kvd);
    memcpy(preft_kv_v(j->kv, j->layer, j->b->seq[i], j->b->pos[i]), v, sizeof(float) * (size_t)kvd);
  }
}

static void swiglu_rows(const rows_job *j, int r0, int r1) {
  size_t F = (size_t)j->m->cfg.ffn;
  for (int i = r0; i < r1; i++)
    preft_swiglu_fast(j->ws->h1 + (size_t)i * F, j->ws->h3 + (size_t)i * F, (int)F);
}

/* ---- attention ----------------------------------------------------------- */

typedef struct {
  const preft_model_config *c;
  const preft_kv_cache *kv;
  const preft_batch *b;
  const float *q; /* [N, H*Dh] */
  float *att;     /* [N, H*Dh] */
  float *scores;  /* [threads, G*ctx] */
  size_t scores_per_thread;
  int layer;
} attn_job;

/* One (row, KV head): its G = H/Hkv query heads over the row's visible
 * positions (preft_attention). Tasks go KV head by KV head, and within one
 * from the last row to the first: consecutive tasks read the same head's
 * keys and values, which stay in L2 between them (a 2,000-token prompt's
 * keys and values of one head are 1 MB; of all heads, several), and in a
 * prefill the later rows see more positions, so the longest tasks of each
 * head come first. */
static void attn_task(void *p, int task, int thread) {
  const attn_job *j = p;
  const preft_model_config *c = j->c;
  const preft_kv_cache *kv = j->kv;
  int row = j->b->n - 1 - task % j->b->n, kvh = task / j->b->n;
  int g = c->n_heads / c->n_kv_heads, dh = c->head_dim;
  int seq = j->b->seq[row], pos = j->b->pos[row];
  int start = c->sliding_window > 0 && pos - c->sliding_window + 1 > 0 ? pos - c->sliding_window + 1 : 0;
  size_t row_off = (size_t)row * (size_t)c->n_heads * (size_t)dh + (size_t)kvh * (size_t)g * (size_t)dh;
  size_t head_off = (size_t)j->layer * (size_t)kv->block_size * (size_t)kv->kv_dim + (size_t)kvh * (size_t)dh;
  preft_kv_view view = {.k = kv->k + head_off,
                        .v = kv->v + head_off,
                        .table = kv->tables + (size_t)seq * (size_t)kv->max_blocks_per_seq,
                        .block_stride = (size_t)kv->n_layers * (size_t)kv->block_size * (size_t)kv->kv_dim,
                        .pos_stride = (size_t)kv->kv_dim,
                        .block_size = kv->block_size};
  preft_attention(j->att + row_off, j->q + row_off, g, dh, &view, start, pos, 1.0f / sqrtf((float)dh),
                  j->scores + (size_t)thread * j->scores_per_thread);
}

/* ---- one decoder layer ------------------------------------------------------ */

static void layer_forward(const preft_model *m, int l, preft_pool *pool, preft_kv_cache *kv,
                          const preft_batch *b, preft_workspace *ws, int ctx) {
  const preft_model_config *c = &m->cfg;
  const preft_layer_weights *w = &m->layers[l];
  int n = b->n, D = c->dim, F = c->ffn, dh = c->head_dim;
  int qd = c->n_heads * dh, kvd = c->n_kv_heads * dh, g = c->n_heads / c->n_kv_heads;
  rows_job rj = {.n = n, .m = m, .w = w, .kv = kv, .b = b, .ws = ws, .layer = l};

  /* attention block: x += o_proj(attn(rope(q), rope(k), v)) */
  rj.fn = norm_rows;
  rj.src = ws->x;
  rj.dst = ws->xb;
  rj.norm_w = w->attn_norm;
  run_rows(pool, &rj, (size_t)D);
  preft_adapter_plan *plan = &ws->plan;
  /* q, k, v from the same normed rows: one pool job */
  const preft_gemm_out qkv[3] = {
      {.y = ws->q, .y_stride = qd, .w = w->wq.data, .wdt = w->wq.dtype, .m = qd},
      {.y = ws->k, .y_stride = kvd, .w = w->wk.data, .wdt = w->wk.dtype, .m = kvd},
      {.y = ws->v, .y_stride = kvd, .w = w->wv.data, .wdt = w->wv.dtype, .m = kvd}};
  static const preft_module qkv_mods[3] = {PREFT_MOD_Q, PREFT_MOD_K, PREFT_MOD_V};
  preft_lora_gemm(pool, plan, l, qkv_mods, ws->xb, D, n, D, qkv, 3, 0);
  rj.fn = qkv_rows;
  run_rows(pool, &rj, (size_t)(qd + 2 * kvd));
  attn_job aj = {.c = c,
                 .kv = kv,
                 .b = b,
                 .q = ws->q,
                 .att = ws->att,
                 .scores = ws->scores,
                 .scores_per_thread = (size_t)g * (size_t)ctx,
                 .layer = l};
  preft_pool_run(pool, n * c->n_kv_heads, attn_task, &aj);
  static const preft_module o_mod[1] = {PREFT_MOD_O}, down_mod[1] = {PREFT_MOD_DOWN};
  const preft_gemm_out o_out = {.y = ws->x, .y_stride = D, .w = w->wo.data, .wdt = w->wo.dtype, .m = D};
  preft_lora_gemm(pool, plan, l, o_mod, ws->att, qd, n, qd, &o_out, 1, 1);

  /* MLP block: x += down(silu(gate(h)) * up(h)), h = norm(x + o bias) */
  rj.fn = norm_rows;
  rj.norm_w = w->ffn_norm;
  rj.bias = w->bo;
  run_rows(pool, &rj, (size_t)D);
  const preft_gemm_out gate_up[2] = {
      {.y = ws->h1, .y_stride = F, .w = w->w_gate.data, .wdt = w->w_gate.dtype, .m = F},
      {.y = ws->h3, .y_stride = F, .w = w->w_up.data, .wdt = w->w_up.dtype, .m = F}};
  static const preft_module gate_up_mods[2] = {PREFT_MOD_GATE, PREFT_MOD_UP};
  preft_lora_gemm(pool, plan, l, gate_up_mods, ws->xb, D, n, D, gate_up, 2, 0);
  rj.fn = swiglu_rows;
  run_rows(pool, &rj, 4 * (size_t)F); /* an exp and a divide per element */
  const preft_gemm_out down_out = {
      .y = ws->x, .y_stride = D, .w = w->w_down.data, .wdt = w->w_down.dtype, .m = D};
  preft_lora_gemm(pool, plan, l, down_mod, ws->h1, F, n, F, &down_out, 1, 1);

  /* ReFT edits the layer's output (the residual stream before layer l+1) */
  preft_reft_apply(pool, plan, l, ws->x, D);
}

int preft_model_forward(const preft_model *m, preft_pool *pool, preft_kv_cache *kv, const preft_batch *b,
                        preft_workspace *ws, float *logits, preft_error *err) {
  if (validate_batch(m, kv, b, err) != 0) return -1;
  const preft_model_config *c = &m->cfg;
  int n = b->n, D = c->dim, half = c->head_dim / 2;
  int ctx = 1;
  for (int i = 0; i < n; i++) ctx = b->pos[i] + 1 > ctx ? b->pos[i] + 1 : ctx;
  /* scores scratch per thread: G heads x ctx positions (cap_ctx counts floats) */
  ensure_workspace(ws, c, n, ctx * (c->n_heads / c->n_kv_heads), preft_pool_size(pool));
  int widest = c->ffn > c->dim ? c->ffn : c->dim;
  widest = c->n_heads * c->head_dim > widest ? c->n_heads * c->head_dim : widest;
  preft_adapter_plan_build(&ws->plan, n, b->adapter, b->adapt, widest, preft_pool_size(pool));

  rows_job rj = {.fn = embed_rows, .n = n, .m = m, .b = b, .ws = ws};
  run_rows(pool, &rj, (size_t)D + 32 * (size_t)half); /* a double cos and sin ~ 32 floats of work */
  for (int l = 0; l < c->n_layers; l++) layer_forward(m, l, pool, kv, b, ws, ctx);

  rows_job fj = {.fn = norm_rows,
                 .n = b->n_logits,
                 .m = m,
                 .ws = ws,
                 .norm_w = m->final_norm,
                 .src = ws->x,
                 .dst = ws->out_rows,
                 .rows = b->logit_rows};
  if (b->n_logits > 0) run_rows(pool, &fj, (size_t)D);
  if (b->n_logits > 0)
    preft_gemm(pool, logits, c->vocab, ws->out_rows, D, m->lm_head.data, m->lm_head.dtype, b->n_logits, D,
               c->vocab, 0);
  return 0;
}
