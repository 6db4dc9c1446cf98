/* bert_load.c - a BERT encoder from a Hugging Face directory (see bert.h):
 * the "bert." prefix or none, LayerNorm weight/bias or gamma/beta. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/bert.h"

/* The checkpoint's name for a tensor given by its BertModel name ("bert."
 * added when the checkpoint has it). A LayerNorm's weight/bias falls back
 * to gamma/beta when only those are present. */
static const char *tensor_name(const preft_bert *m, const char *name, char *buf, size_t size) {
  snprintf(buf, size, "%s%s", m->prefix, name);
  if (preft_st_find(&m->st, buf)) return buf;
  static const char *renames[][2] = {{"LayerNorm.weight", "LayerNorm.gamma"},
                                     {"LayerNorm.bias", "LayerNorm.beta"}};
  size_t n = strlen(buf);
  for (int i = 0; i < 2; i++) {
    size_t k = strlen(renames[i][0]);
    if (n < k || strcmp(buf + n - k, renames[i][0]) != 0) continue;
    char alt[256];
    snprintf(alt, sizeof alt, "%.*s%s", (int)(n - k), buf, renames[i][1]);
    if (preft_st_find(&m->st, alt)) snprintf(buf, size, "%s", alt);
  }
  return buf; /* when missing, the error names the tensor as transformers writes it today */
}

static int matrix(preft_bert *m, const char *name, int64_t rows, int64_t cols, preft_weight *w,
                  preft_error *err) {
  char buf[256];
  return preft_weights_matrix(&m->st, tensor_name(m, name, buf, sizeof buf), rows, cols, w, err);
}

static int vector(preft_bert *m, const char *name, int64_t n, float **out, preft_error *err) {
  char buf[256];
  return preft_weights_vector(&m->st, tensor_name(m, name, buf, sizeof buf), n, out, err);
}

static int load_layer(preft_bert *m, int l, preft_error *err) {
  const preft_bert_config *c = &m->cfg;
  preft_bert_layer *w = &m->layers[l];
  char name[160];
#define NAME(suffix) (snprintf(name, sizeof name, "encoder.layer.%d.%s", l, suffix), name)
  if (matrix(m, NAME("attention.self.query.weight"), c->dim, c->dim, &w->wq, err) != 0 ||
      vector(m, NAME("attention.self.query.bias"), c->dim, &w->bq, err) != 0 ||
      matrix(m, NAME("attention.self.key.weight"), c->dim, c->dim, &w->wk, err) != 0 ||
      vector(m, NAME("attention.self.key.bias"), c->dim, &w->bk, err) != 0 ||
      matrix(m, NAME("attention.self.value.weight"), c->dim, c->dim, &w->wv, err) != 0 ||
      vector(m, NAME("attention.self.value.bias"), c->dim, &w->bv, err) != 0 ||
      matrix(m, NAME("attention.output.dense.weight"), c->dim, c->dim, &w->wo, err) != 0 ||
      vector(m, NAME("attention.output.dense.bias"), c->dim, &w->bo, err) != 0 ||
      vector(m, NAME("attention.output.LayerNorm.weight"), c->dim, &w->ln_attn_w, err) != 0 ||
      vector(m, NAME("attention.output.LayerNorm.bias"), c->dim, &w->ln_attn_b, err) != 0 ||
      matrix(m, NAME("intermediate.dense.weight"), c->ffn, c->dim, &w->w1, err) != 0 ||
      vector(m, NAME("intermediate.dense.bias"), c->ffn, &w->b1, err) != 0 ||
      matrix(m, NAME("output.dense.weight"), c->dim, c->ffn, &w->w2, err) != 0 ||
      vector(m, NAME("output.dense.bias"), c->dim, &w->b2, err) != 0 ||
      vector(m, NAME("output.LayerNorm.weight"), c->dim, &w->ln_out_w, err) != 0 ||
      vector(m, NAME("output.LayerNorm.bias"), c->dim, &w->ln_out_b, err) != 0)
    return -1;
#undef NAME
  return 0;
}

int preft_bert_load(preft_bert **out, const char *dir, preft_error *err) {
  preft_bert *m = preft_xcalloc(1, sizeof *m);
  m->prefix = "";
  if (preft_bert_config_load(&m->cfg, dir, err) != 0) goto fail;
  if (preft_st_open_dir(&m->st, dir, "model", err) != 0) goto fail;
  const preft_bert_config *c = &m->cfg;
  if (preft_st_find(&m->st, "bert.embeddings.word_embeddings.weight")) {
    m->prefix = "bert.";
  } else if (!preft_st_find(&m->st, "embeddings.word_embeddings.weight")) {
    preft_fail(
        err,
        "tensor bert.embeddings.word_embeddings.weight (or embeddings.word_embeddings.weight) is missing "
        "from the checkpoint: not a BERT model");
    goto fail;
  }
  m->layers = preft_xcalloc((size_t)c->n_layers, sizeof *m->layers);
  if (matrix(m, "embeddings.word_embeddings.weight", c->vocab, c->dim, &m->word, err) != 0 ||
      matrix(m, "embeddings.position_embeddings.weight", c->max_pos, c->dim, &m->pos, err) != 0 ||
      matrix(m, "embeddings.token_type_embeddings.weight", c->type_vocab, c->dim, &m->type, err) != 0 ||
      vector(m, "embeddings.LayerNorm.weight", c->dim, &m->ln_emb_w, err) != 0 ||
      vector(m, "embeddings.LayerNorm.bias", c->dim, &m->ln_emb_b, err) != 0)
    goto fail;
  for (int l = 0; l < c->n_layers; l++)
    if (load_layer(m, l, err) != 0) goto fail;
  char buf[256];
  m->has_pooler = preft_st_find(&m->st, tensor_name(m, "pooler.dense.weight", buf, sizeof buf)) != NULL;
  if (m->has_pooler && (matrix(m, "pooler.dense.weight", c->dim, c->dim, &m->pooler_w, err) != 0 ||
                        vector(m, "pooler.dense.bias", c->dim, &m->pooler_b, err) != 0))
    goto fail;
  *out = m;
  return 0;
fail:
  preft_fail_prefix(err, "loading BERT model %s", dir);
  preft_bert_free(m);
  return -1;
}

void preft_bert_free(preft_bert *m) {
  if (!m) return;
  if (m->layers) {
    for (int l = 0; l < m->cfg.n_layers; l++) {
      preft_bert_layer *w = &m->layers[l];
      float *vecs[] = {w->bq, w->bk,        w->bv,        w->bo,       w->b1,
                       w->b2, w->ln_attn_w, w->ln_attn_b, w->ln_out_w, w->ln_out_b};
      for (size_t i = 0; i < sizeof vecs / sizeof vecs[0]; i++) free(vecs[i]);
    }
  }
  free(m->layers);
  free(m->ln_emb_w);
  free(m->ln_emb_b);
  free(m->pooler_b);
  preft_st_close(&m->st);
  free(m->owned);
  free(m->lora_merged);
  free(m);
}
