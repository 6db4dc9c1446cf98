/* bert_forward.c - the batched forward pass of the BERT encoder (see bert.h
 * for the batch contract and the shape legend). The linear layers run on
 * the decoder's GEMM (tensor/gemm.h) over all N = B*T rows at once, the
 * attention on its kernel (tensor/attention.h) with one sequence's keys and
 * values seen as a single cache block, and the row-wise steps (LayerNorm,
 * GELU) on the AVX kernels of tensor/ops.h, all over the same thread pool.
 * Every row is computed the same way whichever thread takes it, so the
 * output does not depend on the thread count. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/threadpool.h"
#include "model/bert.h"
#include "tensor/attention.h"
#include "tensor/gemm.h"
#include "tensor/ops.h"

void preft_bert_workspace_free(preft_bert_workspace *ws) {
  free(ws->q);
  free(ws->k);
  free(ws->v);
  free(ws->att);
  free(ws->h);
  free(ws->f);
  free(ws->scores);
  free(ws->lengths);
  memset(ws, 0, sizeof *ws);
}

static void ensure_workspace(preft_bert_workspace *ws, const preft_bert_config *c, int rows, int seqs,
                             size_t scores) {
#define GROW(p, count) (p = preft_xrealloc(p, sizeof *(p) * (count)))
  if (rows > ws->cap_rows) {
    size_t n = (size_t)rows, D = (size_t)c->dim;
    GROW(ws->q, n * D);
    GROW(ws->k, n * D);
    GROW(ws->v, n * D);
    GROW(ws->att, n * D);
    GROW(ws->h, n * D);
    GROW(ws->f, n * (size_t)c->ffn);
    ws->cap_rows = rows;
  }
  if (scores > (size_t)ws->cap_scores) {
    GROW(ws->scores, scores);
    ws->cap_scores = (int)scores;
  }
  if (seqs > ws->cap_seqs) {
    GROW(ws->lengths, (size_t)seqs);
    ws->cap_seqs = seqs;
  }
#undef GROW
}

int preft_bert_lengths_from_mask(const uint8_t *mask, int n_seqs, int seq_len, int *lengths,
                                 preft_error *err) {
  for (int b = 0; b < n_seqs; b++) {
    const uint8_t *row = mask + (size_t)b * (size_t)seq_len;
    int len = 0;
    while (len < seq_len && row[len] == 1) len++;
    for (int t = len; t < seq_len; t++)
      if (row[t] != 0)
        return preft_fail(err,
                          "attention mask row %d: position %d is %d after padding began at %d (only right "
                          "padding, ones then zeros, is supported)",
                          b, t, row[t], len);
    if (len == 0) return preft_fail(err, "attention mask row %d has no token", b);
    lengths[b] = len;
  }
  return 0;
}

int preft_bert_batch_check(const preft_bert_config *c, const preft_bert_batch *b, preft_error *err) {
  if (b->n_seqs <= 0 || b->seq_len <= 0) return preft_fail(err, "encoder: empty batch");
  if (b->seq_len > c->max_pos)
    return preft_fail(err, "encoder: %d tokens exceed max_position_embeddings (%d)", b->seq_len, c->max_pos);
  for (int s = 0; s < b->n_seqs; s++) {
    int len = b->lengths ? b->lengths[s] : b->seq_len;
    if (len < 1 || len > b->seq_len)
      return preft_fail(err, "encoder: sequence %d has length %d, outside [1, %d]", s, len, b->seq_len);
    for (int t = 0; t < b->seq_len; t++) {
      size_t i = (size_t)s * (size_t)b->seq_len + (size_t)t;
      if (b->ids[i] < 0 || b->ids[i] >= c->vocab)
        return preft_fail(err,
                          "encoder: token id %d (sequence %d, position %d) is outside the vocabulary [0, %d)",
                          b->ids[i], s, t, c->vocab);
      if (b->types && (b->types[i] < 0 || b->types[i] >= c->type_vocab))
        return preft_fail(err, "encoder: token type %d (sequence %d, position %d) is outside [0, %d)",
                          b->types[i], s, t, c->type_vocab);
    }
  }
  return 0;
}

/* ---- row-parallel steps ---------------------------------------------------- */

/* As in the decoder (llama_forward.c): a task gets at least this many
 * floats of element-wise work, so small batches run on the calling thread. */
#define ROWS_MIN_WORK 65536

typedef struct rows_job rows_job;
struct rows_job {
  void (*fn)(const rows_job *j, int r0, int r1);
  int n;
  const preft_bert *m;
  const preft_bert_batch *b;
  float *x;          /* [N, D] the residual stream */
  float *h;          /* [N, D] a sublayer's output, before bias and residual */
  float *f;          /* [N, F] */
  const float *bias; /* of h's or f's producer */
  const float *ln_w, *ln_b;
  const preft_bert_layer *w;
  preft_bert_workspace *ws;
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

/* x[i] = LN(word[id] + position[t] + token_type[type]) */
static void embed_rows(const rows_job *j, int r0, int r1) {
  const preft_bert *m = j->m;
  int D = m->cfg.dim, T = j->b->seq_len;
  float *tmp = j->h; /* scratch rows of h, free before the first layer */
  for (int i = r0; i < r1; i++) {
    float *x = j->x + (size_t)i * D, *row = tmp + (size_t)i * D;
    int type = j->b->types ? j->b->types[i] : 0;
    preft_load_row(x, m->word.data, m->word.dtype, (size_t)j->b->ids[i], D);
    preft_load_row(row, m->pos.data, m->pos.dtype, (size_t)(i % T), D);
    for (int d = 0; d < D; d++) x[d] += row[d];
    preft_load_row(row, m->type.data, m->type.dtype, (size_t)type, D);
    for (int d = 0; d < D; d++) x[d] += row[d];
    preft_layernorm_fast(x, x, m->ln_emb_w, m->ln_emb_b, D, m->cfg.ln_eps);
  }
}

/* x[i] = LN(h[i] + bias + x[i]): the residual add and post-LayerNorm */
static void add_norm_rows(const rows_job *j, int r0, int r1) {
  int D = j->m->cfg.dim;
  for (int i = r0; i < r1; i++) {
    float *x = j->x + (size_t)i * D;
    const float *h = j->h + (size_t)i * D;
    for (int d = 0; d < D; d++) x[d] += h[d] + j->bias[d];
    preft_layernorm_fast(x, x, j->ln_w, j->ln_b, D, j->m->cfg.ln_eps);
  }
}

/* f[i] = gelu(f[i] + b1) */
static void gelu_rows(const rows_job *j, int r0, int r1) {
  int F = j->m->cfg.ffn;
  for (int i = r0; i < r1; i++) {
    float *f = j->f + (size_t)i * F;
    for (int d = 0; d < F; d++) f[d] += j->bias[d];
    preft_gelu_fast(f, F);
  }
}

/* q, k, v += their biases */
static void qkv_bias_rows(const rows_job *j, int r0, int r1) {
  const preft_bert_layer *w = j->w;
  int D = j->m->cfg.dim;
  for (int i = r0; i < r1; i++) {
    float *q = j->ws->q + (size_t)i * D, *k = j->ws->k + (size_t)i * D, *v = j->ws->v + (size_t)i * D;
    for (int d = 0; d < D; d++) {
      q[d] += w->bq[d];
      k[d] += w->bk[d];
      v[d] += w->bv[d];
    }
  }
}

/* ---- attention ----------------------------------------------------------- */

typedef struct {
  const preft_bert_config *c;
  const preft_bert_batch *b;
  const int *lengths; /* [B] */
  const float *q, *k, *v;
  float *att;
  float *scores; /* [threads, T] */
  int T;
} attn_job;

/* One (row, head): softmax(q·Kᵀ/√Dh)·V over the sequence's real keys. The
 * sequence's keys are one "block" of T positions D floats apart. */
static void attn_task(void *p, int task, int thread) {
  const attn_job *j = p;
  int H = j->c->n_heads, dh = j->c->head_dim, D = j->c->dim, T = j->T;
  int row = task / H, head = task % H, seq = row / T;
  static const int block0 = 0;
  size_t seq_off = (size_t)seq * (size_t)T * (size_t)D + (size_t)head * (size_t)dh;
  preft_kv_view view = {.k = j->k + seq_off,
                        .v = j->v + seq_off,
                        .table = &block0,
                        .block_stride = 0,
                        .pos_stride = (size_t)D,
                        .block_size = T};
  size_t off = (size_t)row * (size_t)D + (size_t)head * (size_t)dh;
  preft_attention(j->att + off, j->q + off, 1, dh, &view, 0, j->lengths[seq] - 1, 1.0f / sqrtf((float)dh),
                  j->scores + (size_t)thread * (size_t)T);
}

/* ---- the forward pass -------------------------------------------------------- */

static void layer_forward(const preft_bert *m, int l, preft_pool *pool, const preft_bert_batch *b,
                          preft_bert_workspace *ws, float *x) {
  const preft_bert_config *c = &m->cfg;
  const preft_bert_layer *w = &m->layers[l];
  int n = b->n_seqs * b->seq_len, D = c->dim, F = c->ffn;
  const preft_gemm_out qkv[3] = {{.y = ws->q, .y_stride = D, .w = w->wq.data, .wdt = w->wq.dtype, .m = D},
                                 {.y = ws->k, .y_stride = D, .w = w->wk.data, .wdt = w->wk.dtype, .m = D},
                                 {.y = ws->v, .y_stride = D, .w = w->wv.data, .wdt = w->wv.dtype, .m = D}};
  preft_gemm_multi(pool, x, D, n, D, qkv, 3, 0);
  rows_job rj = {
      .fn = qkv_bias_rows, .n = n, .m = m, .b = b, .x = x, .h = ws->h, .f = ws->f, .w = w, .ws = ws};
  run_rows(pool, &rj, 3 * (size_t)D);

  attn_job aj = {.c = c,
                 .b = b,
                 .lengths = ws->lengths,
                 .q = ws->q,
                 .k = ws->k,
                 .v = ws->v,
                 .att = ws->att,
                 .scores = ws->scores,
                 .T = b->seq_len};
  preft_pool_run(pool, n * c->n_heads, attn_task, &aj);

  /* a = LN(x + att·Woᵀ + bo) */
  preft_gemm(pool, ws->h, D, ws->att, D, w->wo.data, w->wo.dtype, n, D, D, 0);
  rj.fn = add_norm_rows;
  rj.bias = w->bo;
  rj.ln_w = w->ln_attn_w;
  rj.ln_b = w->ln_attn_b;
  run_rows(pool, &rj, 2 * (size_t)D);

  /* x = LN(a + gelu(a·W1ᵀ + b1)·W2ᵀ + b2) */
  preft_gemm(pool, ws->f, F, x, D, w->w1.data, w->w1.dtype, n, D, F, 0);
  rj.fn = gelu_rows;
  rj.bias = w->b1;
  run_rows(pool, &rj, 4 * (size_t)F); /* an exp and a divide per element */
  preft_gemm(pool, ws->h, D, ws->f, F, w->w2.data, w->w2.dtype, n, F, D, 0);
  rj.fn = add_norm_rows;
  rj.bias = w->b2;
  rj.ln_w = w->ln_out_w;
  rj.ln_b = w->ln_out_b;
  run_rows(pool, &rj, 2 * (size_t)D);
}

static void prepare(const preft_bert *m, preft_pool *pool, const preft_bert_batch *b,
                    preft_bert_workspace *ws) {
  ensure_workspace(ws, &m->cfg, b->n_seqs * b->seq_len, b->n_seqs,
                   (size_t)preft_pool_size(pool) * (size_t)b->seq_len);
  for (int s = 0; s < b->n_seqs; s++) ws->lengths[s] = b->lengths ? b->lengths[s] : b->seq_len;
}

int preft_bert_embed(const preft_bert *m, preft_pool *pool, const preft_bert_batch *b,
                     preft_bert_workspace *ws, float *hidden, preft_error *err) {
  if (preft_bert_batch_check(&m->cfg, b, err) != 0) return -1;
  prepare(m, pool, b, ws);
  rows_job rj = {.fn = embed_rows, .n = b->n_seqs * b->seq_len, .m = m, .b = b, .x = hidden, .h = ws->h};
  run_rows(pool, &rj, 4 * (size_t)m->cfg.dim);
  return 0;
}

void preft_bert_run_layer(const preft_bert *m, int layer, preft_pool *pool, const preft_bert_batch *b,
                          preft_bert_workspace *ws, float *hidden) {
  prepare(m, pool, b, ws);
  layer_forward(m, layer, pool, b, ws, hidden);
}

int preft_bert_forward(const preft_bert *m, preft_pool *pool, const preft_bert_batch *b,
                       preft_bert_workspace *ws, float *hidden, float *pooled, preft_error *err) {
  if (pooled && !m->has_pooler)
    return preft_fail(err,
                      "encoder: this model has no pooler (pooler.dense.weight is not in the checkpoint)");
  const preft_bert_config *c = &m->cfg;
  int D = c->dim;
  if (preft_bert_embed(m, pool, b, ws, hidden, err) != 0) return -1;
  for (int l = 0; l < c->n_layers; l++) layer_forward(m, l, pool, b, ws, hidden);

  if (pooled) { /* tanh(x[first row of each sequence]·Wpᵀ + bp) */
    preft_gemm(pool, pooled, D, hidden, b->seq_len * D, m->pooler_w.data, m->pooler_w.dtype, b->n_seqs, D, D,
               0);
    for (int s = 0; s < b->n_seqs; s++)
      for (int d = 0; d < D; d++)
        pooled[(size_t)s * D + d] = tanhf(pooled[(size_t)s * D + d] + m->pooler_b[d]);
  }
  return 0;
}
