/* bert_random.c - BERT encoders that do not come from a checkpoint: random
 * weights of a named shape (Google's BERT releases) for benchmarks, and
 * the FLOP count of a forward pass. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/bert.h"

static const struct {
  const char *name;
  int layers, dim, heads;
} shapes[] = {
    {"bert-large", 24, 1024, 16}, {"bert-base", 12, 768, 12}, {"bert-medium", 8, 512, 8},
    {"bert-small", 4, 512, 8},    {"bert-mini", 4, 256, 4},   {"bert-tiny", 2, 128, 2},
};

int preft_bert_shape_config(const char *name, preft_bert_config *cfg, preft_error *err) {
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
    if (strcmp(name, shapes[i].name) != 0) continue;
    *cfg = (preft_bert_config){.vocab = 30522,
                               .dim = shapes[i].dim,
                               .n_heads = shapes[i].heads,
                               .head_dim = shapes[i].dim / shapes[i].heads,
                               .ffn = 4 * shapes[i].dim,
                               .n_layers = shapes[i].layers,
                               .max_pos = 512,
                               .type_vocab = 2,
                               .ln_eps = 1e-12f,
                               .pad_id = 0,
                               .torch_dtype = PREFT_F32};
    return 0;
  }
  return preft_fail(
      err,
      "unknown BERT shape '%s' (known: bert-large, bert-base, bert-medium, bert-small, bert-mini, "
      "bert-tiny)",
      name);
}

double preft_bert_forward_flops(const preft_bert_config *c, int n_seqs, int seq_len) {
  double D = c->dim, F = c->ffn, T = seq_len, N = (double)n_seqs * T;
  double per_layer = N * 2.0 * (4.0 * D * D + 2.0 * D * F)       /* q k v o, intermediate, output */
                     + N * 2.0 * 2.0 * T * D;                    /* q·kᵀ and p·v over T keys */
  return per_layer * c->n_layers + (double)n_seqs * 2.0 * D * D; /* pooler */
}

int preft_bert_init_random(preft_bert **out, const preft_bert_config *cfg, preft_dtype dtype, uint64_t seed,
                           preft_error *err) {
  const preft_bert_config *c = cfg;
  if (c->dim <= 0 || c->n_heads <= 0 || c->dim % c->n_heads || c->head_dim != c->dim / c->n_heads ||
      c->ffn <= 0 || c->n_layers <= 0 || c->vocab <= 0 || c->max_pos <= 0 || c->type_vocab <= 0)
    return preft_fail(err, "random BERT: inconsistent config");
  size_t D = (size_t)c->dim, F = (size_t)c->ffn, es = preft_dtype_size(dtype);
  size_t embed = ((size_t)c->vocab + (size_t)c->max_pos + (size_t)c->type_vocab) * D;
  size_t total = embed + (size_t)c->n_layers * (4 * D * D + 2 * D * F) + D * D;
  uint8_t *mem = malloc(total * es);
  if (!mem) return preft_fail(err, "random BERT: cannot allocate %zu MiB of weights", (total * es) >> 20);
  preft_bert *m = preft_xcalloc(1, sizeof *m);
  m->cfg = *cfg;
  m->cfg.torch_dtype = dtype;
  m->prefix = "";
  m->owned = mem;
  uint64_t rng = seed * 0x2545f4914f6cdd1dull + 1;
  struct {
    preft_weight *w;
    size_t rows, cols;
    float scale;
  } emb[] = {{&m->word, (size_t)c->vocab, D, 1.0f},
             {&m->pos, (size_t)c->max_pos, D, 0.5f},
             {&m->type, (size_t)c->type_vocab, D, 0.5f}};
  for (int i = 0; i < 3; i++) {
    *emb[i].w = (preft_weight){mem, dtype};
    preft_weights_fill_uniform(mem, dtype, emb[i].rows * emb[i].cols, emb[i].scale, &rng);
    mem += emb[i].rows * emb[i].cols * es;
  }
  m->ln_emb_w = preft_weights_random_vector(D, 1.0f, 0.1f, &rng);
  m->ln_emb_b = preft_weights_random_vector(D, 0.0f, 0.1f, &rng);
  m->layers = preft_xcalloc((size_t)c->n_layers, sizeof *m->layers);
  for (int l = 0; l < c->n_layers; l++) {
    preft_bert_layer *w = &m->layers[l];
    struct {
      preft_weight *w;
      size_t rows, cols;
    } mats[] = {{&w->wq, D, D}, {&w->wk, D, D}, {&w->wv, D, D},
                {&w->wo, D, D}, {&w->w1, F, D}, {&w->w2, D, F}};
    for (size_t i = 0; i < sizeof mats / sizeof mats[0]; i++) {
      *mats[i].w = (preft_weight){mem, dtype};
      preft_weights_fill_uniform(mem, dtype, mats[i].rows * mats[i].cols, 1.0f / sqrtf((float)mats[i].cols),
                                 &rng);
      mem += mats[i].rows * mats[i].cols * es;
    }
    w->bq = preft_weights_random_vector(D, 0.0f, 0.1f, &rng);
    w->bk = preft_weights_random_vector(D, 0.0f, 0.1f, &rng);
    w->bv = preft_weights_random_vector(D, 0.0f, 0.1f, &rng);
    w->bo = preft_weights_random_vector(D, 0.0f, 0.1f, &rng);
    w->b1 = preft_weights_random_vector(F, 0.0f, 0.1f, &rng);
    w->b2 = preft_weights_random_vector(D, 0.0f, 0.1f, &rng);
    w->ln_attn_w = preft_weights_random_vector(D, 1.0f, 0.1f, &rng);
    w->ln_attn_b = preft_weights_random_vector(D, 0.0f, 0.1f, &rng);
    w->ln_out_w = preft_weights_random_vector(D, 1.0f, 0.1f, &rng);
    w->ln_out_b = preft_weights_random_vector(D, 0.0f, 0.1f, &rng);
  }
  m->has_pooler = true;
  m->pooler_w = (preft_weight){mem, dtype};
  preft_weights_fill_uniform(mem, dtype, D * D, 1.0f / sqrtf((float)D), &rng);
  m->pooler_b = preft_weights_random_vector(D, 0.0f, 0.1f, &rng);
  *out = m;
  return 0;
}
