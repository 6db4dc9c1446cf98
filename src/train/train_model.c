/* train_model.c - allocation of the training state (see train_model.h):
 * parameter sets, the FP32 model (from a loaded model, or fresh for
 * pretraining), batches and activation buffers. Sizes are computed once, in
 * one function each; every set of buffers is one allocation. */
#include "train/train_model.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/huge_alloc.h"
#include "tensor/ops.h"
#include "train/rng.h"

/* ---- parameter sets ----------------------------------------------------------- */

void preft_param_builder_add(preft_param_builder *b, const char *name, int rows, int cols,
                             preft_tensor_role role, bool decay, float **p_dst, float **g_dst) {
  if (b->n == b->cap) {
    b->cap = b->cap ? b->cap * 2 : 64;
    b->s = preft_xrealloc(b->s, sizeof *b->s * (size_t)b->cap);
  }
  preft_param_spec *s = &b->s[b->n++];
  memset(s, 0, sizeof *s);
  snprintf(s->t.name, sizeof s->t.name, "%s", name);
  s->t.rows = rows;
  s->t.cols = cols;
  s->t.n = (size_t)rows * (size_t)(cols > 0 ? cols : 1);
  s->t.decay = decay;
  s->t.role = role;
  s->offset = b->total;
  s->p_dst = p_dst;
  s->g_dst = g_dst;
  b->total += s->t.n;
}

void preft_param_builder_finish(preft_param_builder *b, preft_param_set *ps, bool with_grads) {
  memset(ps, 0, sizeof *ps);
  ps->n = b->total;
  ps->mem = preft_xcalloc_big(b->total ? b->total : 1, sizeof(float));
  if (with_grads) ps->grad = preft_xcalloc_big(b->total ? b->total : 1, sizeof(float));
  ps->t = preft_xmalloc(sizeof *ps->t * (size_t)(b->n ? b->n : 1));
  ps->n_t = b->n;
  for (int i = 0; i < b->n; i++) {
    const preft_param_spec *s = &b->s[i];
    ps->t[i] = s->t;
    ps->t[i].p = ps->mem + s->offset;
    ps->t[i].g = with_grads ? ps->grad + s->offset : NULL;
    if (s->p_dst) *s->p_dst = ps->t[i].p;
    if (s->g_dst) *s->g_dst = ps->t[i].g;
  }
  free(b->s);
  memset(b, 0, sizeof *b);
}

void preft_param_set_zero_grad(preft_param_set *ps) {
  if (ps->grad) memset(ps->grad, 0, sizeof(float) * ps->n);
}

void preft_param_set_free(preft_param_set *ps) {
  free(ps->mem);
  free(ps->grad);
  free(ps->t);
  memset(ps, 0, sizeof *ps);
}

const preft_train_tensor *preft_param_set_find(const preft_param_set *ps, const char *name) {
  for (int i = 0; i < ps->n_t; i++)
    if (!strcmp(ps->t[i].name, name)) return &ps->t[i];
  return NULL;
}

/* ---- the model ------------------------------------------------------------------ */

/* Whether a matrix of the source model is used in place: a frozen base's
 * block-quantized matrix (QLoRA). */
static bool kept_in_place(const preft_model *src, bool with_grads, preft_weight w) {
  return src && !with_grads && preft_dtype_is_quant(w.dtype);
}

static const preft_weight *src_mats(const preft_layer_weights *s, preft_weight out[PREFT_N_MODULES]) {
  out[PREFT_MOD_Q] = s->wq;
  out[PREFT_MOD_K] = s->wk;
  out[PREFT_MOD_V] = s->wv;
  out[PREFT_MOD_O] = s->wo;
  out[PREFT_MOD_GATE] = s->w_gate;
  out[PREFT_MOD_UP] = s->w_up;
  out[PREFT_MOD_DOWN] = s->w_down;
  return out;
}

/* The matrices of the pass (tm->mats, embed_w, head_w): the FP32 copies,
 * or src's quantized ones where kept_in_place. */
static void point_mats(preft_train_model *tm, const preft_model *src, bool with_grads) {
  const preft_model_config *c = &tm->cfg;
  size_t D = (size_t)c->dim, F = (size_t)c->ffn, qd = (size_t)c->n_heads * c->head_dim,
         kvd = (size_t)c->n_kv_heads * c->head_dim;
  const size_t shape[PREFT_N_MODULES][2] = {{qd, D}, {kvd, D}, {kvd, D}, {D, qd}, {F, D}, {F, D}, {D, F}};
  tm->mats = preft_xcalloc((size_t)c->n_layers * PREFT_N_MODULES, sizeof *tm->mats);
  tm->borrowed_bytes = 0;
  for (int l = 0; l < c->n_layers; l++) {
    const preft_train_layer *w = &tm->w.layers[l];
    float *f32[PREFT_N_MODULES] = {w->wq, w->wk, w->wv, w->wo, w->w_gate, w->w_up, w->w_down};
    preft_weight sm[PREFT_N_MODULES];
    if (src) src_mats(&src->layers[l], sm);
    for (int k = 0; k < PREFT_N_MODULES; k++) {
      preft_weight *o = &tm->mats[(size_t)l * PREFT_N_MODULES + (size_t)k];
      if (src && kept_in_place(src, with_grads, sm[k])) {
        *o = sm[k];
        tm->borrowed_bytes += shape[k][0] * preft_dtype_row_bytes(sm[k].dtype, shape[k][1]);
      } else {
        *o = (preft_weight){f32[k], PREFT_F32};
      }
    }
  }
  size_t V = (size_t)c->vocab;
  if (src && kept_in_place(src, with_grads, src->embed)) {
    tm->embed_w = src->embed;
    tm->borrowed_bytes += V * preft_dtype_row_bytes(src->embed.dtype, D);
  } else {
    tm->embed_w = (preft_weight){tm->w.embed, PREFT_F32};
  }
  if (c->tie_embeddings) {
    tm->head_w = tm->embed_w;
  } else if (src && kept_in_place(src, with_grads, src->lm_head)) {
    tm->head_w = src->lm_head;
    tm->borrowed_bytes += V * preft_dtype_row_bytes(src->lm_head.dtype, D);
  } else {
    tm->head_w = (preft_weight){tm->w.lm_head, PREFT_F32};
  }
}

/* The parameter table of a decoder, in Hugging Face names; a matrix src
 * keeps in place (kept_in_place) has no entry and a NULL w pointer. */
static void model_layout(preft_train_model *tm, const preft_model *src, bool with_grads) {
  const preft_model_config *c = &tm->cfg;
  int D = c->dim, F = c->ffn, qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
  preft_param_builder sb = {0};
  tm->w.layers = preft_xcalloc((size_t)c->n_layers, sizeof(preft_train_layer));
  tm->g.layers = preft_xcalloc((size_t)c->n_layers, sizeof(preft_train_layer));
  if (!(src && kept_in_place(src, with_grads, src->embed)))
    preft_param_builder_add(&sb, "model.embed_tokens.weight", c->vocab, D, PREFT_ROLE_MATRIX, true,
                            &tm->w.embed, &tm->g.embed);
  char name[128];
  for (int l = 0; l < c->n_layers; l++) {
    preft_train_layer *w = &tm->w.layers[l], *g = &tm->g.layers[l];
    preft_weight sm[PREFT_N_MODULES];
    if (src) src_mats(&src->layers[l], sm);
#define T(suffix, rows, cols, role, field)                       \
  (snprintf(name, sizeof name, "model.layers.%d.%s", l, suffix), \
   preft_param_builder_add(&sb, name, rows, cols, PREFT_ROLE_##role, cols > 0, &w->field, &g->field))
#define M(mod, suffix, rows, cols, role, field) \
  if (!(src && kept_in_place(src, with_grads, sm[mod]))) T(suffix, rows, cols, role, field)
    T("input_layernorm.weight", D, 0, NORM, attn_norm);
    M(PREFT_MOD_Q, "self_attn.q_proj.weight", qd, D, MATRIX, wq);
    M(PREFT_MOD_K, "self_attn.k_proj.weight", kvd, D, MATRIX, wk);
    M(PREFT_MOD_V, "self_attn.v_proj.weight", kvd, D, MATRIX, wv);
    if (c->qkv_bias) {
      T("self_attn.q_proj.bias", qd, 0, BIAS, bq);
      T("self_attn.k_proj.bias", kvd, 0, BIAS, bk);
      T("self_attn.v_proj.bias", kvd, 0, BIAS, bv);
    }
    M(PREFT_MOD_O, "self_attn.o_proj.weight", D, qd, RESID_MATRIX, wo);
    if (c->o_bias) T("self_attn.o_proj.bias", D, 0, BIAS, bo);
    T("post_attention_layernorm.weight", D, 0, NORM, ffn_norm);
    M(PREFT_MOD_GATE, "mlp.gate_proj.weight", F, D, MATRIX, w_gate);
    M(PREFT_MOD_UP, "mlp.up_proj.weight", F, D, MATRIX, w_up);
    M(PREFT_MOD_DOWN, "mlp.down_proj.weight", D, F, RESID_MATRIX, w_down);
#undef M
#undef T
  }
  preft_param_builder_add(&sb, "model.norm.weight", D, 0, PREFT_ROLE_NORM, false, &tm->w.final_norm,
                          &tm->g.final_norm);
  if (!c->tie_embeddings && !(src && kept_in_place(src, with_grads, src->lm_head)))
    preft_param_builder_add(&sb, "lm_head.weight", c->vocab, D, PREFT_ROLE_MATRIX, true, &tm->w.lm_head,
                            &tm->g.lm_head);
  preft_param_builder_finish(&sb, &tm->ps, with_grads);
  if (c->tie_embeddings) {
    tm->w.lm_head = tm->w.embed;
    tm->g.lm_head = tm->g.embed;
  }
  point_mats(tm, src, with_grads);
}

/* A [rows, cols] matrix to FP32, row by row; nothing for a matrix used in
 * place (dst NULL). */
static void copy_weight(float *dst, preft_weight w, size_t rows, size_t cols) {
  if (!dst) return;
  for (size_t r = 0; r < rows; r++) preft_load_row(dst + r * cols, w.data, w.dtype, r, (int)cols);
}

static void copy_vec(float *dst, const float *src, size_t n) {
  if (dst && src) memcpy(dst, src, sizeof(float) * n);
}

void preft_train_model_from(preft_train_model *tm, const preft_model *m, bool with_grads) {
  memset(tm, 0, sizeof *tm);
  tm->cfg = m->cfg;
  const preft_model_config *c = &tm->cfg;
  size_t half = (size_t)c->head_dim / 2;
  tm->inv_freq = preft_xmalloc(sizeof(double) * half);
  memcpy(tm->inv_freq, m->inv_freq, sizeof(double) * half);
  model_layout(tm, m, with_grads);
  size_t D = (size_t)c->dim, F = (size_t)c->ffn, qd = (size_t)c->n_heads * c->head_dim,
         kvd = (size_t)c->n_kv_heads * c->head_dim, V = (size_t)c->vocab;
  copy_weight(tm->w.embed, m->embed, V, D);
  if (!c->tie_embeddings) copy_weight(tm->w.lm_head, m->lm_head, V, D);
  copy_vec(tm->w.final_norm, m->final_norm, D);
  for (int l = 0; l < c->n_layers; l++) {
    const preft_layer_weights *s = &m->layers[l];
    preft_train_layer *w = &tm->w.layers[l];
    copy_weight(w->wq, s->wq, qd, D);
    copy_weight(w->wk, s->wk, kvd, D);
    copy_weight(w->wv, s->wv, kvd, D);
    copy_weight(w->wo, s->wo, D, qd);
    copy_weight(w->w_gate, s->w_gate, F, D);
    copy_weight(w->w_up, s->w_up, F, D);
    copy_weight(w->w_down, s->w_down, D, F);
    copy_vec(w->attn_norm, s->attn_norm, D);
    copy_vec(w->ffn_norm, s->ffn_norm, D);
    copy_vec(w->bq, s->bq, qd);
    copy_vec(w->bk, s->bk, kvd);
    copy_vec(w->bv, s->bv, kvd);
    copy_vec(w->bo, s->bo, D);
  }
}

int preft_train_model_init(preft_train_model *tm, const preft_model_config *cfg, uint64_t seed,
                           preft_error *err) {
  memset(tm, 0, sizeof *tm);
  /* The rotary frequencies come from the model loader's own rule (scaling
   * included), through a throwaway one-layer, one-token model. */
  preft_model_config small = *cfg;
  small.n_layers = 1;
  small.vocab = 1;
  small.ffn = 1;
  preft_model *tmp;
  if (preft_model_init_random(&tmp, &small, PREFT_BF16, 1, err) != 0) return -1;
  tm->cfg = *cfg;
  size_t half = (size_t)cfg->head_dim / 2;
  tm->inv_freq = preft_xmalloc(sizeof(double) * half);
  memcpy(tm->inv_freq, tmp->inv_freq, sizeof(double) * half);
  preft_model_free(tmp);
  model_layout(tm, NULL, true);
  preft_rng rng;
  preft_rng_seed(&rng, seed);
  float resid_std = 0.02f / sqrtf(2.0f * (float)cfg->n_layers);
  for (int i = 0; i < tm->ps.n_t; i++) {
    preft_train_tensor *t = &tm->ps.t[i];
    if (t->role == PREFT_ROLE_NORM || t->role == PREFT_ROLE_BIAS) {
      for (size_t k = 0; k < t->n; k++) t->p[k] = t->role == PREFT_ROLE_NORM ? 1.0f : 0.0f;
      continue;
    }
    float std = t->role == PREFT_ROLE_RESID_MATRIX ? resid_std : 0.02f;
    for (size_t k = 0; k < t->n; k++) t->p[k] = std * preft_rng_normal(&rng);
  }
  return 0;
}

void preft_train_model_free(preft_train_model *tm) {
  if (!tm) return;
  preft_param_set_free(&tm->ps);
  free(tm->w.layers);
  free(tm->g.layers);
  free(tm->mats);
  free(tm->inv_freq);
  memset(tm, 0, sizeof *tm);
}

preft_model *preft_train_model_view(const preft_train_model *tm) {
  const preft_model_config *c = &tm->cfg;
  preft_model *m = preft_xcalloc(1, sizeof *m);
  m->cfg = *c;
  m->cfg.torch_dtype = PREFT_F32;
  m->embed = tm->embed_w;
  m->lm_head = tm->head_w;
  m->final_norm = tm->w.final_norm;
  m->inv_freq = tm->inv_freq;
  m->layers = preft_xcalloc((size_t)c->n_layers, sizeof *m->layers);
  for (int l = 0; l < c->n_layers; l++) {
    const preft_train_layer *w = &tm->w.layers[l];
    const preft_weight *mat = tm->mats + (size_t)l * PREFT_N_MODULES;
    preft_layer_weights *o = &m->layers[l];
    o->wq = mat[PREFT_MOD_Q];
    o->wk = mat[PREFT_MOD_K];
    o->wv = mat[PREFT_MOD_V];
    o->wo = mat[PREFT_MOD_O];
    o->w_gate = mat[PREFT_MOD_GATE];
    o->w_up = mat[PREFT_MOD_UP];
    o->w_down = mat[PREFT_MOD_DOWN];
    o->bq = w->bq;
    o->bk = w->bk;
    o->bv = w->bv;
    o->bo = w->bo;
    o->attn_norm = w->attn_norm;
    o->ffn_norm = w->ffn_norm;
  }
  return m;
}

void preft_train_model_view_free(preft_model *view) {
  if (!view) return;
  free(view->layers);
  free(view);
}

int preft_train_model_save(const preft_train_model *tm, const char *dir, preft_error *err) {
  preft_model *v = preft_train_model_view(tm);
  int rc = preft_model_save(v, dir, err);
  preft_train_model_view_free(v);
  return rc;
}

/* ---- batches ----------------------------------------------------------------------- */

void preft_train_batch_clear(preft_train_batch *b) {
  b->n = 0;
  b->n_seq = 0;
  b->n_targets = 0;
}

void preft_train_batch_add(preft_train_batch *b, const int *ids, const int *targets, const uint8_t *flags,
                           int len) {
  if (b->n + len > b->cap_rows) {
    int cap = b->cap_rows ? b->cap_rows : 256;
    while (cap < b->n + len) cap *= 2;
    b->token = preft_xrealloc(b->token, sizeof(int) * (size_t)cap);
    b->pos = preft_xrealloc(b->pos, sizeof(int) * (size_t)cap);
    b->target = preft_xrealloc(b->target, sizeof(int) * (size_t)cap);
    b->flag = preft_xrealloc(b->flag, (size_t)cap);
    b->cap_rows = cap;
  }
  if (b->n_seq == b->cap_seq) {
    b->cap_seq = b->cap_seq ? b->cap_seq * 2 : 16;
    b->seq_start = preft_xrealloc(b->seq_start, sizeof(int) * (size_t)b->cap_seq);
    b->seq_len = preft_xrealloc(b->seq_len, sizeof(int) * (size_t)b->cap_seq);
  }
  b->seq_start[b->n_seq] = b->n;
  b->seq_len[b->n_seq++] = len;
  for (int t = 0; t < len; t++) {
    int r = b->n + t;
    b->token[r] = ids[t];
    b->pos[r] = t;
    b->target[r] = targets ? targets[t] : -1;
    b->flag[r] = flags ? flags[t] : PREFT_ADAPT_OFF;
    if (b->target[r] >= 0) b->n_targets++;
  }
  b->n += len;
}

void preft_train_batch_free(preft_train_batch *b) {
  free(b->token);
  free(b->pos);
  free(b->target);
  free(b->flag);
  free(b->seq_start);
  free(b->seq_len);
  memset(b, 0, sizeof *b);
}

/* ---- activations ------------------------------------------------------------------- */

#define HEAD_LOGITS_FLOATS ((size_t)4 << 20) /* logits of one head chunk, at most (16 MiB) */
#define HEAD_ROWS_MIN 128                    /* ... unless fewer rows than this would fit */

int preft_train_head_rows(int n, int vocab) {
  size_t fit = HEAD_LOGITS_FLOATS / (size_t)(vocab > 1 ? vocab : 1);
  int rows = fit > HEAD_ROWS_MIN ? (fit < (size_t)INT_MAX ? (int)fit : INT_MAX) : HEAD_ROWS_MIN;
  return rows < n ? rows : n;
}

void preft_train_acts_init(preft_train_acts *a, const preft_train_model *tm, const preft_train_adapter *ad,
                           int max_rows, int max_seq_len, int threads, bool recompute) {
  memset(a, 0, sizeof *a);
  const preft_model_config *c = &tm->cfg;
  size_t N = (size_t)max_rows, D = (size_t)c->dim, F = (size_t)c->ffn, H = (size_t)c->n_heads,
         qd = H * (size_t)c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim,
         half = (size_t)c->head_dim / 2, L = (size_t)c->n_layers, V = (size_t)c->vocab;
  size_t R = ad && ad->kind == PREFT_ADAPTER_LORA ? (size_t)ad->rank : 0;
  bool reft = ad && ad->kind != PREFT_ADAPTER_LORA;
  size_t CH = (size_t)preft_train_head_rows(max_rows, c->vocab);
  a->cap_rows = max_rows;
  a->max_seq_len = max_seq_len;
  a->threads = threads < 1 ? 1 : threads;
  a->recompute = recompute;
  a->n_stored = recompute ? 1 : (int)L;
  size_t S = (size_t)a->n_stored;
  struct {
    float **p;
    size_t n;
  } parts[] = {
      {&a->x_in, L * N * D},
      {&a->x_out, N * D},
      {&a->xb1, S * N * D},
      {&a->rstd1, S * N},
      {&a->q, S * N * qd},
      {&a->k, S * N * kvd},
      {&a->v, S * N * kvd},
      {&a->lse, S * N * H},
      {&a->att, S * N * qd},
      {&a->x_mid, S * N * D},
      {&a->xb2, S * N * D},
      {&a->rstd2, S * N},
      {&a->h1, S * N * F},
      {&a->h3, S * N * F},
      {&a->hg, S * N * F},
      {&a->x_pre, reft ? S * N * D : 0},
      {&a->lora_t, S * PREFT_N_MODULES * N * R},
      {&a->xf, N * D},
      {&a->rstdf, N},
      {&a->rope_cos, N * half},
      {&a->rope_sin, N * half},
      {&a->pos_cos, (size_t)max_seq_len * half},
      {&a->pos_sin, (size_t)max_seq_len * half},
      {&a->dx, N * D},
      {&a->dxb, N * D},
      {&a->dq, N * qd},
      {&a->dk, N * kvd},
      {&a->dv, N * kvd},
      {&a->datt, N * qd},
      {&a->dh1, N * F},
      {&a->dh3, N * F},
      {&a->dhg, N * F},
      {&a->dt, N * R},
      {&a->logits, CH * V + 3 * CH * D + 2 * CH},
  };
  size_t total = 0;
  for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) total += parts[i].n;
  a->mem = preft_xcalloc_big(total, sizeof(float));
  a->rope_freq = preft_xcalloc(half > 0 ? half : 1, sizeof(double));
  a->head_rows = preft_xcalloc(2 * (CH > 0 ? CH : 1), sizeof(int));
  a->head_targets = a->head_rows + (CH > 0 ? CH : 1);
  a->n_floats = total;
  float *p = a->mem;
  for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
    *parts[i].p = parts[i].n ? p : NULL;
    p += parts[i].n;
  }
}

void preft_train_acts_free(preft_train_acts *a) {
  free(a->mem);
  free(a->rope_freq);
  free(a->head_rows);
  memset(a, 0, sizeof *a);
}

size_t preft_train_acts_bytes(const preft_train_acts *a) { return a->n_floats * sizeof(float); }
