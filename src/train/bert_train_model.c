/* bert_train_model.c - the trainable BERT's parameter table: fresh
 * initialisation, loading from a model directory, saving (LoRA merged),
 * the teacher copy and its moving average (see bert_train.h). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "io/json_util.h"
#include "io/safetensors.h"
#include "tensor/ops.h"
#include "train/bert_train.h"

const char *const preft_bt_task_names[PREFT_BT_N_TASKS] = {"sst", "para", "sts"};
const char *const preft_bt_lin_names[BT_N_LIN] = {"query", "key", "value", "attn_out", "ffn_in", "ffn_out"};

/* the HF module names of the BT_* linears: bert.h's PEFT order */
static const char *const *const lin_hf = preft_bert_lin_keys;
_Static_assert((int)BT_N_LIN == (int)PREFT_BERT_N_LIN, "the linears of bert_train.h and bert.h");

int preft_bt_task_width(preft_bt_task t) { return t == PREFT_BT_SST ? 5 : 1; }

static void add(preft_param_builder *b, const char *name, int rows, int cols, preft_tensor_role role,
                float **p, float **g) {
  preft_param_builder_add(b, name, rows, cols, role, cols > 0 && role != PREFT_ROLE_LORA_B, p, g);
}

static void add_head(preft_param_builder *b, const char *base, int out, int in, preft_bt_head *h) {
  char n[160];
  h->in = in;
  h->out = out;
  snprintf(n, sizeof n, "%s.weight", base);
  add(b, n, out, in, PREFT_ROLE_MATRIX, &h->w, &h->gw);
  snprintf(n, sizeof n, "%s.bias", base);
  add(b, n, out, 0, PREFT_ROLE_BIAS, &h->b, &h->gb);
}

static int task_in(const preft_bt_model *m, int task) {
  int D = m->cfg.dim;
  if (m->o.arch == PREFT_BT_SIAMESE && task == PREFT_BT_PARA) return 4 * D;
  return D;
}

static bool has_task_head(const preft_bt_model *m, int task) {
  return m->o.tasks && !(m->o.arch == PREFT_BT_SIAMESE && task == PREFT_BT_STS);
}

static void build(preft_bt_model *m, const preft_bert_config *cfg, const preft_bt_opts *o, bool grads) {
  memset(m, 0, sizeof *m);
  m->cfg = *cfg;
  m->o = *o;
  m->lora_scale = o->lora_rank > 0 ? (float)(o->lora_alpha / o->lora_rank) : 0.0f;
  const preft_bert_config *c = cfg;
  int D = c->dim, F = c->ffn, L = c->n_layers, R = o->lora_rank;
  preft_param_builder b = {0};
  char n[160];
  add(&b, "bert.embeddings.word_embeddings.weight", c->vocab, D, PREFT_ROLE_MATRIX, &m->word, &m->g_word);
  add(&b, "bert.embeddings.position_embeddings.weight", c->max_pos, D, PREFT_ROLE_MATRIX, &m->pos, &m->g_pos);
  add(&b, "bert.embeddings.token_type_embeddings.weight", c->type_vocab, D, PREFT_ROLE_MATRIX, &m->type,
      &m->g_type);
  add(&b, "bert.embeddings.LayerNorm.weight", D, 0, PREFT_ROLE_NORM, &m->ln_e_w, &m->g_ln_e_w);
  add(&b, "bert.embeddings.LayerNorm.bias", D, 0, PREFT_ROLE_BIAS, &m->ln_e_b, &m->g_ln_e_b);
  m->layers = preft_xcalloc((size_t)L, sizeof *m->layers);
  for (int l = 0; l < L; l++) {
    preft_bt_layer *ly = &m->layers[l];
    for (int k = 0; k < BT_N_LIN; k++) {
      preft_bt_lin *li = &ly->lin[k];
      li->in = k == BT_FFN_OUT ? F : D;
      li->out = k == BT_FFN_IN ? F : D;
      snprintf(n, sizeof n, "bert.encoder.layer.%d.%s.weight", l, lin_hf[k]);
      add(&b, n, li->out, li->in, PREFT_ROLE_MATRIX, &li->w, &li->gw);
      snprintf(n, sizeof n, "bert.encoder.layer.%d.%s.bias", l, lin_hf[k]);
      add(&b, n, li->out, 0, PREFT_ROLE_BIAS, &li->b, &li->gb);
    }
    snprintf(n, sizeof n, "bert.encoder.layer.%d.attention.output.LayerNorm.weight", l);
    add(&b, n, D, 0, PREFT_ROLE_NORM, &ly->ln1_w, &ly->g_ln1_w);
    snprintf(n, sizeof n, "bert.encoder.layer.%d.attention.output.LayerNorm.bias", l);
    add(&b, n, D, 0, PREFT_ROLE_BIAS, &ly->ln1_b, &ly->g_ln1_b);
    snprintf(n, sizeof n, "bert.encoder.layer.%d.output.LayerNorm.weight", l);
    add(&b, n, D, 0, PREFT_ROLE_NORM, &ly->ln2_w, &ly->g_ln2_w);
    snprintf(n, sizeof n, "bert.encoder.layer.%d.output.LayerNorm.bias", l);
    add(&b, n, D, 0, PREFT_ROLE_BIAS, &ly->ln2_b, &ly->g_ln2_b);
  }
  add_head(&b, "bert.pooler.dense", D, D, &m->pooler);
  if (o->mlm) {
    add_head(&b, "cls.predictions.transform.dense", D, D, &m->mlm_dense);
    add(&b, "cls.predictions.transform.LayerNorm.weight", D, 0, PREFT_ROLE_NORM, &m->mlm_ln_w,
        &m->g_mlm_ln_w);
    add(&b, "cls.predictions.transform.LayerNorm.bias", D, 0, PREFT_ROLE_BIAS, &m->mlm_ln_b, &m->g_mlm_ln_b);
    add(&b, "cls.predictions.bias", c->vocab, 0, PREFT_ROLE_BIAS, &m->mlm_bias, &m->g_mlm_bias);
  }
  for (int t = 0; t < PREFT_BT_N_TASKS; t++)
    if (has_task_head(m, t)) {
      snprintf(n, sizeof n, "heads.%s", preft_bt_task_names[t]);
      add_head(&b, n, preft_bt_task_width(t), task_in(m, t), &m->heads[t]);
    }
  if (o->exits && o->tasks && L > 1) {
    m->exit_pooler = preft_xcalloc((size_t)(L - 1), sizeof *m->exit_pooler);
    m->exit_heads = preft_xcalloc((size_t)(L - 1) * PREFT_BT_N_TASKS, sizeof *m->exit_heads);
    for (int l = 0; l < L - 1; l++) {
      snprintf(n, sizeof n, "exits.%d.pooler", l);
      add_head(&b, n, D, D, &m->exit_pooler[l]);
      for (int t = 0; t < PREFT_BT_N_TASKS; t++) {
        snprintf(n, sizeof n, "exits.%d.%s", l, preft_bt_task_names[t]);
        add_head(&b, n, preft_bt_task_width(t), D, &m->exit_heads[l * PREFT_BT_N_TASKS + t]);
      }
    }
  }
  if (R > 0)
    for (int l = 0; l < L; l++)
      for (int k = 0; k < BT_N_LIN; k++) {
        preft_bt_lin *li = &m->layers[l].lin[k];
        snprintf(n, sizeof n, "lora.%d.%s.A", l, preft_bt_lin_names[k]);
        add(&b, n, R, li->in, PREFT_ROLE_LORA_A, &li->la, &li->gla);
        snprintf(n, sizeof n, "lora.%d.%s.B", l, preft_bt_lin_names[k]);
        add(&b, n, li->out, R, PREFT_ROLE_LORA_B, &li->lb, &li->glb);
      }
  preft_param_builder_finish(&b, &m->ps, grads);
  m->frozen_base = R > 0;
}

static void init_values(preft_bt_model *m, uint64_t seed, bool only_missing, const bool *loaded) {
  preft_rng r;
  preft_rng_seed(&r, seed);
  for (int i = 0; i < m->ps.n_t; i++) {
    preft_train_tensor *t = &m->ps.t[i];
    if (only_missing && loaded[i]) continue;
    for (size_t e = 0; e < t->n; e++) {
      switch (t->role) {
        case PREFT_ROLE_NORM:
          t->p[e] = 1.0f;
          break;
        case PREFT_ROLE_LORA_A: {
          double bound = 1.0 / sqrt((double)t->cols);
          t->p[e] = (float)((2.0 * preft_rng_uniform(&r) - 1.0) * bound);
          break;
        }
        case PREFT_ROLE_MATRIX:
          t->p[e] = 0.02f * preft_rng_normal(&r);
          break;
        default:
          t->p[e] = 0.0f;
          break;
      }
    }
  }
}

void preft_bt_model_init(preft_bt_model *m, const preft_bert_config *cfg, const preft_bt_opts *o,
                         uint64_t seed) {
  build(m, cfg, o, true);
  init_values(m, seed, false, NULL);
}

/* The stored tensor for one of our names: the name, without "bert.", and
 * LayerNorm gamma/beta spellings. */
static const preft_st_tensor *find_stored(const preft_st_set *st, const char *name) {
  const preft_st_tensor *t = preft_st_find(st, name);
  if (t) return t;
  const char *bare = strncmp(name, "bert.", 5) == 0 ? name + 5 : NULL;
  if (bare && (t = preft_st_find(st, bare))) return t;
  size_t len = strlen(name);
  const char *alt = NULL;
  if (strstr(name, "LayerNorm.weight") && len > 6 && strcmp(name + len - 6, "weight") == 0) alt = "gamma";
  if (strstr(name, "LayerNorm.bias") && len > 4 && strcmp(name + len - 4, "bias") == 0) alt = "beta";
  if (!alt) return NULL;
  char buf[200];
  size_t stem = len - (alt[0] == 'g' ? 6 : 4);
  if (stem + strlen(alt) + 1 > sizeof buf) return NULL;
  memcpy(buf, name, stem);
  strcpy(buf + stem, alt);
  if ((t = preft_st_find(st, buf))) return t;
  if (bare) return preft_st_find(st, buf + 5);
  return NULL;
}

int preft_bt_model_load(preft_bt_model *m, const char *dir, const preft_bt_opts *o, uint64_t seed,
                        preft_error *err) {
  preft_bert_source s;
  if (preft_bert_source_resolve(&s, dir, NULL, err) != 0) return -1;
  int rc = preft_bt_model_load_source(m, &s, o, seed, err);
  preft_bert_source_free(&s);
  return rc;
}

static bool is_head(const char *name) {
  return strncmp(name, "heads.", 6) == 0 || strncmp(name, "exits.", 6) == 0;
}

int preft_bt_model_load_source(preft_bt_model *m, const preft_bert_source *s, const preft_bt_opts *o,
                               uint64_t seed, preft_error *err) {
  preft_bert *src;
  if (preft_bert_load(&src, s->base, err) != 0) return -1; /* validates the encoder's tensors */
  preft_bert_lora lo = {0};
  preft_st_set heads = {0};
  char *heads_path = s->adapter ? preft_path_join(s->adapter, "preft_heads.safetensors") : NULL;
  int rc = 0;
  if (s->adapter &&
      (preft_bert_lora_read(&lo, s->adapter, &src->cfg, err) != 0 ||
       (preft_file_exists(heads_path) && preft_st_open_dir(&heads, s->adapter, "preft_heads", err) != 0))) {
    preft_bert_lora_free(&lo);
    preft_bert_free(src);
    free(heads_path);
    return -1;
  }
  build(m, &src->cfg, o, true);
  bool *loaded = preft_xcalloc((size_t)m->ps.n_t, sizeof *loaded);
  for (int i = 0; i < m->ps.n_t && rc == 0; i++) {
    preft_train_tensor *t = &m->ps.t[i];
    const char *file = s->base;
    const preft_st_tensor *st = heads.n_tensors ? preft_st_find(&heads, t->name) : NULL;
    if (st)
      file = heads_path;
    else
      st = find_stored(&src->st, t->name);
    if (!st) continue;
    bool head = is_head(t->name);
    if (preft_st_numel(st) != t->n && head) continue; /* another head layout (cross/bi-encoder): fresh */
    if (preft_st_numel(st) != t->n) {
      rc = preft_fail(err, "%s: tensor %s has %zu elements, expected %zu", file, t->name, preft_st_numel(st),
                      t->n);
      break;
    }
    int rows = t->cols > 0 ? t->rows : 1, cols = t->cols > 0 ? t->cols : t->rows;
    for (int r = 0; r < rows; r++)
      preft_load_row(t->p + (size_t)r * cols, st->data, st->dtype, (size_t)r, cols);
    loaded[i] = true;
  }
  if (rc == 0) init_values(m, seed, true, loaded);
  if (rc == 0 && lo.mod) /* the adapter merged into the encoder's matrices */
    for (int l = 0; l < m->cfg.n_layers; l++)
      for (int k = 0; k < BT_N_LIN; k++) preft_bert_lora_merge(&lo, l, k, m->layers[l].lin[k].w);
  free(loaded);
  free(heads_path);
  preft_st_close(&heads);
  preft_bert_lora_free(&lo);
  preft_bert_free(src);
  if (rc != 0) preft_bt_model_free(m);
  return rc;
}

void preft_bt_model_free(preft_bt_model *m) {
  free(m->layers);
  free(m->exit_pooler);
  free(m->exit_heads);
  preft_param_set_free(&m->ps);
  memset(m, 0, sizeof *m);
}

void preft_bt_model_clone(preft_bt_model *dst, const preft_bt_model *src) {
  build(dst, &src->cfg, &src->o, false);
  memcpy(dst->ps.mem, src->ps.mem, sizeof(float) * src->ps.n);
}

void preft_bt_model_ema(preft_bt_model *teacher, const preft_bt_model *m, double beta) {
  float b = (float)beta, a = 1.0f - b;
  for (size_t i = 0; i < m->ps.n; i++) teacher->ps.mem[i] = b * teacher->ps.mem[i] + a * m->ps.mem[i];
}

void preft_bt_trainable_view(const preft_bt_model *m, bool only_exits, preft_param_set *view) {
  memset(view, 0, sizeof *view);
  view->mem = m->ps.mem;
  view->grad = m->ps.grad;
  view->n = m->ps.n;
  view->t = preft_xmalloc(sizeof *view->t * (size_t)(m->ps.n_t ? m->ps.n_t : 1));
  for (int i = 0; i < m->ps.n_t; i++) {
    const preft_train_tensor *t = &m->ps.t[i];
    bool is_exit = strncmp(t->name, "exits.", 6) == 0;
    bool is_base = strncmp(t->name, "bert.", 5) == 0 || strncmp(t->name, "cls.", 4) == 0;
    if (only_exits ? !is_exit : (m->frozen_base && is_base)) continue;
    view->t[view->n_t++] = *t;
  }
}

/* ---- saving ---------------------------------------------------------------------- */

static int save_heads_config(const preft_bt_model *m, const char *dir, preft_error *err);

static int save_config(const preft_bt_model *m, const char *dir, preft_error *err) {
  const preft_bert_config *c = &m->cfg;
  cJSON *j = cJSON_CreateObject();
  cJSON *arch = cJSON_AddArrayToObject(j, "architectures");
  cJSON_AddItemToArray(arch, cJSON_CreateString("BertForMaskedLM"));
  cJSON_AddNumberToObject(j, "attention_probs_dropout_prob", m->o.dropout);
  cJSON_AddStringToObject(j, "hidden_act", "gelu");
  cJSON_AddNumberToObject(j, "hidden_dropout_prob", m->o.dropout);
  cJSON_AddNumberToObject(j, "hidden_size", c->dim);
  cJSON_AddNumberToObject(j, "initializer_range", 0.02);
  cJSON_AddNumberToObject(j, "intermediate_size", c->ffn);
  cJSON_AddNumberToObject(j, "layer_norm_eps", c->ln_eps);
  cJSON_AddNumberToObject(j, "max_position_embeddings", c->max_pos);
  cJSON_AddStringToObject(j, "model_type", "bert");
  cJSON_AddNumberToObject(j, "num_attention_heads", c->n_heads);
  cJSON_AddNumberToObject(j, "num_hidden_layers", c->n_layers);
  cJSON_AddNumberToObject(j, "pad_token_id", c->pad_id);
  cJSON_AddStringToObject(j, "position_embedding_type", "absolute");
  cJSON_AddStringToObject(j, "torch_dtype", "float32");
  cJSON_AddNumberToObject(j, "type_vocab_size", c->type_vocab);
  cJSON_AddNumberToObject(j, "vocab_size", c->vocab);
  char *path = preft_path_join(dir, "config.json");
  int rc = preft_json_save(path, j, err);
  free(path);
  cJSON_Delete(j);
  if (rc != 0) return rc;
  return save_heads_config(m, dir, err);
}

static int save_heads_config(const preft_bt_model *m, const char *dir, preft_error *err) {
  cJSON *j = cJSON_CreateObject();
  cJSON_AddBoolToObject(j, "mlm", m->o.mlm);
  cJSON_AddBoolToObject(j, "tasks", m->o.tasks);
  cJSON_AddStringToObject(j, "arch", m->o.arch == PREFT_BT_SIAMESE ? "siamese" : "cross");
  cJSON_AddStringToObject(j, "pooling", m->o.pooling == PREFT_BT_POOL_MEAN ? "mean" : "cls");
  cJSON_AddBoolToObject(j, "exits", m->exit_pooler != NULL);
  char *path = preft_path_join(dir, "preft_heads.json");
  int rc = preft_json_save(path, j, err);
  free(path);
  cJSON_Delete(j);
  return rc;
}

int preft_bt_heads_config_load(preft_bt_opts *o, const char *dir, preft_error *err) {
  char *path = preft_path_join(dir, "preft_heads.json");
  cJSON *j;
  int rc = preft_json_load(path, &j, err);
  if (rc == 0) {
    const char *arch = NULL, *pool = NULL;
    memset(o, 0, sizeof *o);
    rc = preft_json_bool(j, path, "mlm", false, &o->mlm, err) ||
                 preft_json_bool(j, path, "tasks", false, &o->tasks, err) ||
                 preft_json_bool(j, path, "exits", false, &o->exits, err) ||
                 preft_json_str(j, path, "arch", false, &arch, err) ||
                 preft_json_str(j, path, "pooling", false, &pool, err)
             ? -1
             : 0;
    if (rc == 0 && arch && strcmp(arch, "cross") != 0 && strcmp(arch, "siamese") != 0)
      rc = preft_fail(err, "%s: field arch is '%s', expected cross or siamese", path, arch);
    if (rc == 0 && pool && strcmp(pool, "cls") != 0 && strcmp(pool, "mean") != 0)
      rc = preft_fail(err, "%s: field pooling is '%s', expected cls or mean", path, pool);
    if (rc == 0) {
      o->arch = arch && strcmp(arch, "siamese") == 0 ? PREFT_BT_SIAMESE : PREFT_BT_CROSS;
      o->pooling = pool && strcmp(pool, "mean") == 0 ? PREFT_BT_POOL_MEAN : PREFT_BT_POOL_CLS;
    }
    cJSON_Delete(j);
  }
  free(path);
  return rc;
}

int preft_bt_model_save(const preft_bt_model *m, const char *dir, preft_error *err) {
  if (preft_mkdir_p(dir, err) != 0) return -1;
  const preft_param_set *ps = &m->ps;
  preft_st_write_tensor *wt = preft_xcalloc((size_t)ps->n_t, sizeof *wt);
  float **merged = preft_xcalloc((size_t)ps->n_t, sizeof *merged);
  int n = 0;
  for (int i = 0; i < ps->n_t; i++) {
    const preft_train_tensor *t = &ps->t[i];
    if (strncmp(t->name, "lora.", 5) == 0) continue;
    const float *data = t->p;
    if (m->o.lora_rank > 0) /* W + scale·B·A for the adapted matrices */
      for (int l = 0; l < m->cfg.n_layers; l++)
        for (int k = 0; k < BT_N_LIN; k++) {
          const preft_bt_lin *li = &m->layers[l].lin[k];
          if (li->w != t->p) continue;
          float *w = preft_xmalloc(sizeof(float) * t->n);
          memcpy(w, t->p, sizeof(float) * t->n);
          int R = m->o.lora_rank;
          for (int o = 0; o < li->out; o++)
            for (int r = 0; r < R; r++) {
              float s = m->lora_scale * li->lb[(size_t)o * R + r];
              const float *a = li->la + (size_t)r * li->in;
              for (int c = 0; c < li->in; c++) w[(size_t)o * li->in + c] += s * a[c];
            }
          merged[i] = w;
          data = w;
        }
    wt[n] = (preft_st_write_tensor){
        .name = t->name, .dtype = PREFT_F32, .ndim = t->cols > 0 ? 2 : 1, .data = data};
    wt[n].shape[0] = t->rows;
    wt[n].shape[1] = t->cols;
    n++;
  }
  char *path = preft_path_join(dir, "model.safetensors");
  int rc = preft_st_write(path, wt, n, err);
  free(path);
  for (int i = 0; i < ps->n_t; i++) free(merged[i]);
  free(merged);
  free(wt);
  if (rc != 0) return rc;
  return save_config(m, dir, err);
}

int preft_bt_model_save_lora(const preft_bt_model *m, const char *dir, const char *base, preft_error *err) {
  if (m->o.lora_rank <= 0) return preft_fail(err, "saving a LoRA adapter: the model has no LoRA");
  int L = m->cfg.n_layers, n = L * BT_N_LIN;
  const float **a = preft_xcalloc((size_t)n, sizeof *a), **b = preft_xcalloc((size_t)n, sizeof *b);
  for (int l = 0; l < L; l++)
    for (int k = 0; k < BT_N_LIN; k++)
      a[l * BT_N_LIN + k] = m->layers[l].lin[k].la, b[l * BT_N_LIN + k] = m->layers[l].lin[k].lb;
  int rc = preft_bert_lora_write(dir, &m->cfg, m->o.lora_rank, m->o.lora_alpha, base, a, b, err);
  free(a);
  free(b);
  if (rc != 0) return -1;
  /* the heads (everything trained that is neither the frozen base nor LoRA) */
  const preft_param_set *ps = &m->ps;
  preft_st_write_tensor *wt = preft_xcalloc((size_t)ps->n_t, sizeof *wt);
  int nw = 0;
  for (int i = 0; i < ps->n_t; i++) {
    const preft_train_tensor *t = &ps->t[i];
    if (!is_head(t->name)) continue;
    wt[nw] = (preft_st_write_tensor){
        .name = t->name, .dtype = PREFT_F32, .ndim = t->cols > 0 ? 2 : 1, .data = t->p};
    wt[nw].shape[0] = t->rows;
    wt[nw].shape[1] = t->cols;
    nw++;
  }
  char *path = preft_path_join(dir, "preft_heads.safetensors");
  rc = preft_st_write(path, wt, nw, err);
  free(path);
  free(wt);
  return rc != 0 ? -1 : save_heads_config(m, dir, err);
}
