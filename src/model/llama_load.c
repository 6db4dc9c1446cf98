/* llama_load.c - building a preft_model: from a Hugging Face directory, or
 * with random weights in memory; and saving one back in the same layout. */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "io/gguf.h"
#include "model/llama.h"

double *preft_rope_inv_freq(const preft_model_config *c) {
  int half = c->head_dim / 2;
  double *f = preft_xmalloc(sizeof(double) * (size_t)half);
  for (int i = 0; i < half; i++) {
    double inv = 1.0 / pow(c->rope_theta, (2.0 * i) / c->head_dim);
    if (c->rope_type == PREFT_ROPE_LINEAR) {
      inv /= c->rope_factor;
    } else if (c->rope_type == PREFT_ROPE_LLAMA3) {
      double low_wavelen = c->rope_original_max_pos / c->rope_low_freq_factor;
      double high_wavelen = c->rope_original_max_pos / c->rope_high_freq_factor;
      double wavelen = 2.0 * M_PI / inv;
      if (wavelen > low_wavelen) {
        inv /= c->rope_factor;
      } else if (wavelen >= high_wavelen) {
        double smooth = (c->rope_original_max_pos / wavelen - c->rope_low_freq_factor) /
                        (c->rope_high_freq_factor - c->rope_low_freq_factor);
        inv = (1.0 - smooth) * inv / c->rope_factor + smooth * inv;
      }
    }
    f[i] = inv;
  }
  return f;
}

static int load_layer(preft_model *m, int l, preft_error *err) {
  const preft_model_config *c = &m->cfg;
  preft_layer_weights *w = &m->layers[l];
  int64_t qd = (int64_t)c->n_heads * c->head_dim, kvd = (int64_t)c->n_kv_heads * c->head_dim;
  char name[160];
#define NAME(suffix) (snprintf(name, sizeof name, "model.layers.%d.%s", l, suffix), name)
  if (preft_weights_matrix(&m->st, NAME("self_attn.q_proj.weight"), qd, c->dim, &w->wq, err) != 0 ||
      preft_weights_matrix(&m->st, NAME("self_attn.k_proj.weight"), kvd, c->dim, &w->wk, err) != 0 ||
      preft_weights_matrix(&m->st, NAME("self_attn.v_proj.weight"), kvd, c->dim, &w->wv, err) != 0 ||
      preft_weights_matrix(&m->st, NAME("self_attn.o_proj.weight"), c->dim, qd, &w->wo, err) != 0 ||
      preft_weights_matrix(&m->st, NAME("mlp.gate_proj.weight"), c->ffn, c->dim, &w->w_gate, err) != 0 ||
      preft_weights_matrix(&m->st, NAME("mlp.up_proj.weight"), c->ffn, c->dim, &w->w_up, err) != 0 ||
      preft_weights_matrix(&m->st, NAME("mlp.down_proj.weight"), c->dim, c->ffn, &w->w_down, err) != 0 ||
      preft_weights_vector(&m->st, NAME("input_layernorm.weight"), c->dim, &w->attn_norm, err) != 0 ||
      preft_weights_vector(&m->st, NAME("post_attention_layernorm.weight"), c->dim, &w->ffn_norm, err) != 0)
    return -1;
  if (c->qkv_bias && (preft_weights_vector(&m->st, NAME("self_attn.q_proj.bias"), qd, &w->bq, err) != 0 ||
                      preft_weights_vector(&m->st, NAME("self_attn.k_proj.bias"), kvd, &w->bk, err) != 0 ||
                      preft_weights_vector(&m->st, NAME("self_attn.v_proj.bias"), kvd, &w->bv, err) != 0))
    return -1;
  if (c->o_bias && preft_weights_vector(&m->st, NAME("self_attn.o_proj.bias"), c->dim, &w->bo, err) != 0)
    return -1;
#undef NAME
  return 0;
}

static atomic_bool weights_mmap;

void preft_weights_set_mmap(bool on) { atomic_store(&weights_mmap, on); }
bool preft_weights_get_mmap(void) { return atomic_load(&weights_mmap); }

int preft_model_load(preft_model **out, const char *dir, preft_error *err) {
  if (preft_gguf_is_file(dir)) return preft_model_load_gguf(out, dir, err);
  preft_model *m = preft_xcalloc(1, sizeof *m);
  if (preft_config_load(&m->cfg, dir, err) != 0) goto fail;
  if ((preft_weights_get_mmap() ? preft_st_open_dir(&m->st, dir, "model", err)
                                : preft_st_open_dir_read(&m->st, dir, "model", err)) != 0)
    goto fail;
  const preft_model_config *c = &m->cfg;
  m->layers = preft_xcalloc((size_t)c->n_layers, sizeof *m->layers);
  if (preft_weights_matrix(&m->st, "model.embed_tokens.weight", c->vocab, c->dim, &m->embed, err) != 0)
    goto fail;
  if (c->tie_embeddings) {
    m->lm_head = m->embed;
  } else if (preft_weights_matrix(&m->st, "lm_head.weight", c->vocab, c->dim, &m->lm_head, err) != 0) {
    goto fail;
  }
  if (preft_weights_vector(&m->st, "model.norm.weight", c->dim, &m->final_norm, err) != 0) goto fail;
  for (int l = 0; l < c->n_layers; l++)
    if (load_layer(m, l, err) != 0) goto fail;
  m->inv_freq = preft_rope_inv_freq(c);
  *out = m;
  return 0;
fail:
  preft_fail_prefix(err, "loading model %s", dir);
  preft_model_free(m);
  return -1;
}

void preft_model_free(preft_model *m) {
  if (!m) return;
  if (m->layers) {
    for (int l = 0; l < m->cfg.n_layers; l++) {
      preft_layer_weights *w = &m->layers[l];
      free(w->bq);
      free(w->bk);
      free(w->bv);
      free(w->bo);
      free(w->attn_norm);
      free(w->ffn_norm);
    }
  }
  free(m->layers);
  free(m->final_norm);
  free(m->inv_freq);
  preft_st_close(&m->st);
  if (m->gguf) preft_gguf_close(m->gguf);
  for (void **q = m->quant_owned; q;) {
    void **next = q[1];
    free(q[0]);
    free(q);
    q = next;
  }
  free(m->gguf);
  free(m->owned);
  free(m);
}

/* ---- random initialisation ------------------------------------------------ */

int preft_model_init_random(preft_model **out, const preft_model_config *cfg, preft_dtype dtype,
                            uint64_t seed, preft_error *err) {
  const preft_model_config *c = cfg;
  if (c->n_heads <= 0 || c->n_kv_heads <= 0 || c->n_heads % c->n_kv_heads || c->head_dim % 2 || c->dim <= 0 ||
      c->vocab <= 0 || c->ffn <= 0 || c->n_layers <= 0)
    return preft_fail(err, "random model: inconsistent config");
  preft_model *m = preft_xcalloc(1, sizeof *m);
  m->cfg = *cfg;
  m->cfg.torch_dtype = dtype;
  size_t qd = (size_t)c->n_heads * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim, D = (size_t)c->dim,
         F = (size_t)c->ffn, V = (size_t)c->vocab, es = preft_dtype_size(dtype);
  size_t per_layer = qd * D * 2 + kvd * D * 2 + F * D * 3;
  size_t total = V * D * (c->tie_embeddings ? 1 : 2) + per_layer * (size_t)c->n_layers;
  uint8_t *mem = malloc(total * es);
  if (!mem) {
    free(m);
    return preft_fail(err, "random model: cannot allocate %zu MiB of weights", (total * es) >> 20);
  }
  m->owned = mem;
  uint64_t rng = seed * 0x2545f4914f6cdd1dull + 1;
  float lin = 1.0f / sqrtf((float)D);
  m->embed = (preft_weight){mem, dtype};
  preft_weights_fill_uniform(mem, dtype, V * D, 1.0f, &rng);
  mem += V * D * es;
  if (c->tie_embeddings) {
    m->lm_head = m->embed;
  } else {
    m->lm_head = (preft_weight){mem, dtype};
    preft_weights_fill_uniform(mem, dtype, V * D, lin, &rng);
    mem += V * D * es;
  }
  m->layers = preft_xcalloc((size_t)c->n_layers, sizeof *m->layers);
  for (int l = 0; l < c->n_layers; l++) {
    preft_layer_weights *w = &m->layers[l];
    struct {
      preft_weight *w;
      size_t rows, cols;
    } mats[] = {{&w->wq, qd, D},    {&w->wk, kvd, D}, {&w->wv, kvd, D},  {&w->wo, D, qd},
                {&w->w_gate, F, D}, {&w->w_up, F, D}, {&w->w_down, D, F}};
    for (size_t i = 0; i < sizeof mats / sizeof mats[0]; i++) {
      *mats[i].w = (preft_weight){mem, dtype};
      preft_weights_fill_uniform(mem, dtype, mats[i].rows * mats[i].cols, 1.0f / sqrtf((float)mats[i].cols),
                                 &rng);
      mem += mats[i].rows * mats[i].cols * es;
    }
    w->attn_norm = preft_weights_random_vector(D, 1.0f, 0.1f, &rng);
    w->ffn_norm = preft_weights_random_vector(D, 1.0f, 0.1f, &rng);
    if (c->qkv_bias) {
      w->bq = preft_weights_random_vector(qd, 0.0f, 0.1f, &rng);
      w->bk = preft_weights_random_vector(kvd, 0.0f, 0.1f, &rng);
      w->bv = preft_weights_random_vector(kvd, 0.0f, 0.1f, &rng);
    }
    if (c->o_bias) w->bo = preft_weights_random_vector(D, 0.0f, 0.1f, &rng);
  }
  m->final_norm = preft_weights_random_vector(D, 1.0f, 0.1f, &rng);
  m->inv_freq = preft_rope_inv_freq(&m->cfg);
  *out = m;
  return 0;
}

const preft_model_config *preft_model_get_config(const preft_model *m) { return &m->cfg; }

size_t preft_model_n_params(const preft_model *m) {
  const preft_model_config *c = &m->cfg;
  size_t qd = (size_t)c->n_heads * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim, D = (size_t)c->dim,
         F = (size_t)c->ffn, V = (size_t)c->vocab;
  size_t per_layer = qd * D * 2 + kvd * D * 2 + F * D * 3 + 2 * D;
  return V * D * (c->tie_embeddings ? 1 : 2) + per_layer * (size_t)c->n_layers + D;
}

static size_t matrix_bytes(preft_weight w, size_t rows, size_t cols) {
  return rows * preft_dtype_row_bytes(w.dtype, cols);
}

size_t preft_model_weight_bytes(const preft_model *m) {
  const preft_model_config *c = &m->cfg;
  size_t qd = (size_t)c->n_heads * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim, D = (size_t)c->dim,
         F = (size_t)c->ffn, V = (size_t)c->vocab;
  size_t total = matrix_bytes(m->embed, V, D) + 4 * D * (size_t)(2 * c->n_layers + 1);
  if (!c->tie_embeddings || m->lm_head.data != m->embed.data) total += matrix_bytes(m->lm_head, V, D);
  for (int l = 0; l < c->n_layers; l++) {
    const preft_layer_weights *w = &m->layers[l];
    total += matrix_bytes(w->wq, qd, D) + matrix_bytes(w->wk, kvd, D) + matrix_bytes(w->wv, kvd, D) +
             matrix_bytes(w->wo, D, qd) + matrix_bytes(w->w_gate, F, D) + matrix_bytes(w->w_up, F, D) +
             matrix_bytes(w->w_down, D, F);
  }
  return total;
}

/* ---- saving ---------------------------------------------------------------- */

typedef struct {
  preft_st_write_tensor *t;
  int n, cap;
  char **names;
} tensor_list;

static void add_tensor(tensor_list *tl, const char *name, preft_dtype dt, const void *data, int64_t d0,
                       int64_t d1) {
  if (tl->n == tl->cap) {
    tl->cap = tl->cap ? tl->cap * 2 : 64;
    tl->t = preft_xrealloc(tl->t, sizeof *tl->t * (size_t)tl->cap);
    tl->names = preft_xrealloc(tl->names, sizeof(char *) * (size_t)tl->cap);
  }
  tl->names[tl->n] = preft_xstrdup(name);
  preft_st_write_tensor *t = &tl->t[tl->n++];
  memset(t, 0, sizeof *t);
  t->name = tl->names[tl->n - 1];
  t->dtype = dt;
  t->data = data;
  t->ndim = d1 > 0 ? 2 : 1;
  t->shape[0] = d0;
  t->shape[1] = d1;
}

int preft_model_save(const preft_model *m, const char *dir, preft_error *err) {
  const preft_model_config *c = &m->cfg;
  if (preft_mkdir_p(dir, err) != 0) return -1;
  tensor_list tl = {0};
  int64_t qd = (int64_t)c->n_heads * c->head_dim, kvd = (int64_t)c->n_kv_heads * c->head_dim;
  add_tensor(&tl, "model.embed_tokens.weight", m->embed.dtype, m->embed.data, c->vocab, c->dim);
  if (!c->tie_embeddings)
    add_tensor(&tl, "lm_head.weight", m->lm_head.dtype, m->lm_head.data, c->vocab, c->dim);
  add_tensor(&tl, "model.norm.weight", PREFT_F32, m->final_norm, c->dim, 0);
  char name[160];
  for (int l = 0; l < c->n_layers; l++) {
    const preft_layer_weights *w = &m->layers[l];
#define ADD(suffix, wt, d0, d1)                                  \
  (snprintf(name, sizeof name, "model.layers.%d.%s", l, suffix), \
   add_tensor(&tl, name, (wt).dtype, (wt).data, d0, d1))
#define ADDV(suffix, vec, d0) \
  (snprintf(name, sizeof name, "model.layers.%d.%s", l, suffix), add_tensor(&tl, name, PREFT_F32, vec, d0, 0))
    ADD("self_attn.q_proj.weight", w->wq, qd, c->dim);
    ADD("self_attn.k_proj.weight", w->wk, kvd, c->dim);
    ADD("self_attn.v_proj.weight", w->wv, kvd, c->dim);
    ADD("self_attn.o_proj.weight", w->wo, c->dim, qd);
    ADD("mlp.gate_proj.weight", w->w_gate, c->ffn, c->dim);
    ADD("mlp.up_proj.weight", w->w_up, c->ffn, c->dim);
    ADD("mlp.down_proj.weight", w->w_down, c->dim, c->ffn);
    ADDV("input_layernorm.weight", w->attn_norm, c->dim);
    ADDV("post_attention_layernorm.weight", w->ffn_norm, c->dim);
    if (w->bq) {
      ADDV("self_attn.q_proj.bias", w->bq, qd);
      ADDV("self_attn.k_proj.bias", w->bk, kvd);
      ADDV("self_attn.v_proj.bias", w->bv, kvd);
    }
    if (w->bo) ADDV("self_attn.o_proj.bias", w->bo, c->dim);
#undef ADD
#undef ADDV
  }
  char *path = preft_path_join(dir, "model.safetensors");
  int rc = preft_st_write(path, tl.t, tl.n, err);
  free(path);
  for (int i = 0; i < tl.n; i++) free(tl.names[i]);
  free(tl.names);
  free(tl.t);
  if (rc != 0) return -1;
  path = preft_path_join(dir, "config.json");
  rc = preft_config_write(c, path, err);
  free(path);
  if (rc != 0) return -1;
  char gen[256];
  int n = snprintf(gen, sizeof gen, "{\n  \"do_sample\": true,\n  \"temperature\": 0.7,\n  \"top_p\": 0.9");
  if (c->bos_id >= 0) n += snprintf(gen + n, sizeof gen - (size_t)n, ",\n  \"bos_token_id\": %d", c->bos_id);
  if (c->n_eos > 0)
    n += snprintf(gen + n, sizeof gen - (size_t)n, ",\n  \"eos_token_id\": %d", c->eos_ids[0]);
  n += snprintf(gen + n, sizeof gen - (size_t)n, "\n}\n");
  path = preft_path_join(dir, "generation_config.json");
  rc = preft_write_atomic(path, gen, (size_t)n, err);
  free(path);
  return rc;
}
