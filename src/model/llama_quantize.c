/* llama_quantize.c - a loaded model's matrices changed in memory:
 *  - quantizing (`--quantize q8_0|q4_0|...` at load time): every projection
 *    of every layer, the embedding and the output head become
 *    block-quantized rows made by ggml's reference quantizers
 *    (tensor/quant.h), as `preft convert --type` writes them, so the forward
 *    pass runs the int8 kernels as for a quantized GGUF (and gives the same
 *    logits as that GGUF). Vectors (norms, biases) stay FP32.
 *  - repacking: the Q4_0 / Q5_0 matrices regrouped in place into
 *    the X4 layouts where the kernels read those faster (the same values). */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "model/llama.h"
#include "tensor/ops.h"
#include "tensor/quant.h"

preft_dtype preft_quant_fallback(preft_dtype t, int64_t cols) {
  if (!preft_dtype_is_quant(t) || cols % (int64_t)preft_dtype_block(t) == 0) return t;
  /* llama.cpp's fallbacks for rows that are not whole 256-blocks */
  preft_dtype f = t == PREFT_Q4_K ? PREFT_Q5_0 : PREFT_Q8_0;
  return cols % (int64_t)preft_dtype_block(f) == 0 ? f : t;
}

typedef struct qjob {
  const void *src;
  preft_dtype src_t, dst_t;
  int cols;
  uint8_t *dst;
} qjob;

static void quantize_rows(void *ctx, int r0, int r1) {
  const qjob *j = ctx;
  float *row = preft_xmalloc(sizeof(float) * (size_t)j->cols);
  size_t rb = preft_dtype_row_bytes(j->dst_t, (size_t)j->cols);
  for (int r = r0; r < r1; r++) {
    preft_load_row(row, j->src, j->src_t, (size_t)r, j->cols);
    preft_quantize_row(j->dst_t, row, j->dst + (size_t)r * rb, (size_t)j->cols);
  }
  free(row);
}

typedef struct qmat {
  preft_weight *w;
  int rows, cols;
  const char *what;
  int layer;
} qmat;

/* The seven projections of every layer into mats (n_layers * 7 of them);
 * returns their count. */
static int layer_matrices(preft_model *m, qmat *mats) {
  const preft_model_config *c = &m->cfg;
  int qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
  int k = 0;
  for (int l = 0; l < c->n_layers; l++) {
    preft_layer_weights *L = &m->layers[l];
    mats[k++] = (qmat){&L->wq, qd, c->dim, "q_proj", l};
    mats[k++] = (qmat){&L->wk, kvd, c->dim, "k_proj", l};
    mats[k++] = (qmat){&L->wv, kvd, c->dim, "v_proj", l};
    mats[k++] = (qmat){&L->wo, c->dim, qd, "o_proj", l};
    mats[k++] = (qmat){&L->w_gate, c->ffn, c->dim, "gate_proj", l};
    mats[k++] = (qmat){&L->w_up, c->ffn, c->dim, "up_proj", l};
    mats[k++] = (qmat){&L->w_down, c->dim, c->ffn, "down_proj", l};
  }
  return k;
}

static atomic_bool repack_off;

void preft_weights_set_repack(bool on) { atomic_store(&repack_off, !on); }
bool preft_weights_get_repack(void) { return !atomic_load(&repack_off); }

typedef struct rjob {
  uint8_t *data;
  preft_dtype t;
  size_t row;
  int cols;
} rjob;

static void repack_rows(void *ctx, int r0, int r1) {
  const rjob *j = ctx;
  for (int r = r0; r < r1; r++)
    preft_quant_to_x4(j->t, j->data + (size_t)r * j->row, j->data + (size_t)r * j->row, (size_t)j->cols);
}

/* groups [g0, g1) of four rows to the R4 layout */
static void repack_groups(void *ctx, int g0, int g1) {
  const rjob *j = ctx;
  uint8_t *at = j->data + (size_t)g0 * 4 * j->row;
  preft_quant_to_r4(at, at, 4 * (size_t)(g1 - g0), (size_t)j->cols);
}

/* The in-memory layout a matrix of type t and rows × cols takes where the
 * AVX512-VNNI kernels run: Q4_0 / Q5_0 rows of whole 128-groups their X4
 * layouts, Q4_K matrices of whole groups of four rows the R4 layout; t
 * itself otherwise. */
static preft_dtype repacked_type(preft_dtype t, int rows, int cols) {
  if (t == PREFT_Q4_K) return rows % 4 ? t : PREFT_Q4_K_R4;
  const preft_dtype x4 = preft_dtype_x4_of(t);
  return cols % (int)preft_dtype_block(x4) ? t : x4;
}

/* The projections, the embedding and (untied) the head into mats (room
 * for n_layers * 7 + 2); returns their count, *tied whether the head is
 * the embedding. */
static int model_matrices(preft_model *m, qmat *mats, bool *tied) {
  const preft_model_config *c = &m->cfg;
  int k = layer_matrices(m, mats);
  *tied = m->lm_head.data == m->embed.data;
  mats[k++] = (qmat){&m->embed, c->vocab, c->dim, "embed_tokens", -1};
  if (!*tied) mats[k++] = (qmat){&m->lm_head, c->vocab, c->dim, "lm_head", -1};
  return k;
}

/* One Q4_0 / Q5_0 / Q4_K matrix (in writable memory) to its in-memory
 * layout when repacking is on and pays here; whether it did. */
static bool repack_one(const qmat *q, preft_pool *pool) {
  preft_weight *w = q->w;
  const preft_dtype to = repacked_type(w->dtype, q->rows, q->cols);
  if (to == w->dtype || !preft_weights_get_repack() || !preft_quant_layouts_native()) return false;
  rjob j = {(uint8_t *)(uintptr_t)w->data, w->dtype, preft_dtype_row_bytes(w->dtype, (size_t)q->cols),
            q->cols};
  if (preft_dtype_is_r4(to))
    preft_pool_run_rows(pool, q->rows / 4, 4 * (size_t)q->cols, 1 << 18, repack_groups, &j);
  else
    preft_pool_run_rows(pool, q->rows, (size_t)q->cols, 1 << 18, repack_rows, &j);
  w->dtype = to;
  return true;
}

static void say_repacked(int n) {
  if (n) PREFT_INFO("repacked %d Q4_0/Q5_0/Q4_K matrices for the AVX512-VNNI kernels", n);
}

int preft_model_repack(preft_model *m, preft_pool *pool) {
  qmat *mats = preft_xmalloc(sizeof *mats * (size_t)(m->cfg.n_layers * 7 + 2));
  bool tied;
  int k = model_matrices(m, mats, &tied), done = 0;
  for (int i = 0; i < k; i++) done += repack_one(&mats[i], pool);
  free(mats);
  if (tied) m->lm_head = m->embed;
  say_repacked(done);
  return done;
}

int preft_model_quantize(preft_model *m, preft_dtype t, preft_pool *pool, preft_error *err) {
  const preft_model_config *c = &m->cfg;
  if (!preft_dtype_is_quant(t))
    return preft_fail(err, "--quantize: %s is not a quantized type", preft_dtype_name(t));
  qmat *mats = preft_xmalloc(sizeof *mats * (size_t)(c->n_layers * 7 + 2));
  bool tied;
  int k = model_matrices(m, mats, &tied);
  size_t total = 0;
  for (int i = 0; i < k; i++) {
    preft_dtype d = preft_quant_fallback(t, mats[i].cols);
    if (mats[i].cols % (int)preft_dtype_block(d)) {
      char where[32] = "";
      if (mats[i].layer >= 0) snprintf(where, sizeof where, "layer %d ", mats[i].layer);
      int rc = preft_fail(err, "--quantize %s: %s%s has rows of %d values, not whole blocks of %zu",
                          preft_dtype_name(t), where, mats[i].what, mats[i].cols, preft_dtype_block(d));
      free(mats);
      return rc;
    }
    if (preft_dtype_is_quant(mats[i].w->dtype)) continue; /* already quantized (a GGUF) */
    total += preft_dtype_row_bytes(d, (size_t)mats[i].cols) * (size_t)mats[i].rows;
  }
  uint8_t *mem = total ? malloc(total) : NULL;
  if (total && !mem) {
    free(mats);
    return preft_fail(err, "--quantize: cannot allocate %zu MiB", total >> 20);
  }
  size_t used = 0;
  int fallbacks = 0, repacked = 0;
  for (int i = 0; i < k; i++) {
    if (preft_dtype_is_quant(mats[i].w->dtype)) continue;
    preft_dtype d = preft_quant_fallback(t, mats[i].cols);
    fallbacks += d != t;
    qjob j = {.src = mats[i].w->data,
              .src_t = mats[i].w->dtype,
              .dst_t = d,
              .cols = mats[i].cols,
              .dst = mem + used};
    preft_pool_run_rows(pool, mats[i].rows, (size_t)mats[i].cols, 1 << 16, quantize_rows, &j);
    *mats[i].w = (preft_weight){j.dst, d};
    used += preft_dtype_row_bytes(d, (size_t)mats[i].cols) * (size_t)mats[i].rows;
    /* only what was quantized here: matrices quantized already (a GGUF's)
     * were repacked at load, or stay in a read-only mapping */
    repacked += repack_one(&mats[i], pool);
  }
  if (tied) m->lm_head = m->embed;
  if (fallbacks)
    PREFT_INFO("--quantize %s: %d matrices whose rows are not whole %zu-blocks use %s instead",
               preft_dtype_name(t), fallbacks, preft_dtype_block(t),
               preft_dtype_name(preft_quant_fallback(t, 32)));
  free(mats);
  /* chain the buffer to the model: freed with it */
  if (mem) {
    void **link = preft_xmalloc(sizeof(void *) * 2);
    link[0] = mem;
    link[1] = m->quant_owned;
    m->quant_owned = link;
  }
  say_repacked(repacked);
  return 0;
}
