/* bert_exit.c - multitask BERT inference with early exit, and the
 * bi-encoder's sentence embeddings and cache (see bert_exit.h). The
 * encoder runs a layer at a time (preft_bert_embed, preft_bert_run_layer);
 * sequences that exit are removed from the batch before the next layer,
 * so their rows cost nothing more. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "io/json_util.h"
#include "model/bert_exit.h"
#include "tensor/ops.h"

static const char *const task_names[PREFT_BERT_N_TASKS] = {"sst", "para", "sts"};
static int task_width(int t) { return t == 0 ? 5 : 1; }

int preft_bert_exit_rule_parse(const char *s, preft_bert_exit_rule *r, preft_error *err) {
  memset(r, 0, sizeof *r);
  r->tolerance = 0.1;
  char *end;
  if (strcmp(s, "none") == 0) return 0;
  if (strncmp(s, "entropy:", 8) == 0) {
    r->kind = PREFT_EXIT_ENTROPY;
    r->threshold = strtod(s + 8, &end);
    if (end == s + 8 || *end || !(r->threshold >= 0))
      return preft_fail(err, "'%s': entropy:T needs T >= 0", s);
    return 0;
  }
  if (strncmp(s, "patience:", 9) == 0) {
    r->kind = PREFT_EXIT_PATIENCE;
    long p = strtol(s + 9, &end, 10);
    if (end == s + 9 || p < 1 || p > 1000 || (*end && *end != ':'))
      return preft_fail(err, "'%s': patience:P[:TOL] needs an integer P >= 1", s);
    r->patience = (int)p;
    if (*end == ':') {
      const char *t = end + 1;
      r->tolerance = strtod(t, &end);
      if (end == t || *end || !(r->tolerance >= 0))
        return preft_fail(err, "'%s': TOL must be a number >= 0", s);
    }
    return 0;
  }
  return preft_fail(err, "'%s': expected entropy:T, patience:P[:TOL] or none", s);
}

/* An FP32 copy of a stored tensor of n elements (NULL when absent): from
 * the adapter's heads file first (when one is open), then the model's. */
static int copy_tensor(const preft_st_set *heads, const preft_st_set *st, const char *name, const char *alt,
                       size_t n, float **out, preft_error *err) {
  *out = NULL;
  const preft_st_tensor *t = heads->n_tensors ? preft_st_find(heads, name) : NULL;
  if (!t) t = preft_st_find(st, name);
  if (!t && alt) t = preft_st_find(st, alt);
  if (!t) return 0;
  if (preft_st_numel(t) != n)
    return preft_fail(err, "tensor %s has %zu elements, expected %zu", name, preft_st_numel(t), n);
  *out = preft_xmalloc(sizeof(float) * n);
  preft_load_row(*out, t->data, t->dtype, 0, (int)n);
  return 0;
}

void preft_bert_classifier_free(preft_bert_classifier *c) {
  if (!c) return;
  int L = c->bert ? c->bert->cfg.n_layers : 0;
  for (int l = 0; l < L && c->pool_w; l++) free(c->pool_w[l]), free(c->pool_b[l]);
  for (int k = 0; k < L * PREFT_BERT_N_TASKS && c->head_w; k++) free(c->head_w[k]), free(c->head_b[k]);
  free(c->pool_w);
  free(c->pool_b);
  free(c->head_w);
  free(c->head_b);
  free(c->hidden);
  preft_bert_workspace_free(&c->ws);
  preft_bert_free(c->bert);
  free(c);
}

int preft_bert_classifier_load(preft_bert_classifier **out, const char *model, const char *adapter,
                               preft_error *err) {
  preft_bert_classifier *c = preft_xcalloc(1, sizeof *c);
  preft_bert_source src;
  preft_st_set heads = {0};
  cJSON *j = NULL;
  if (preft_bert_source_resolve(&src, model, adapter, err) != 0) {
    free(c);
    return -1;
  }
  const char *dir = src.heads;
  char path[4096];
  snprintf(path, sizeof path, "%s/preft_heads.json", dir);
  const char *arch = NULL, *pool = NULL;
  if (preft_json_load(path, &j, err) != 0 || preft_json_str(j, path, "arch", false, &arch, err) != 0 ||
      preft_json_str(j, path, "pooling", false, &pool, err) != 0 ||
      preft_json_bool(j, path, "exits", false, &c->has_exits, err) != 0)
    goto fail;
  c->siamese = arch && strcmp(arch, "siamese") == 0;
  c->mean_pool = pool && strcmp(pool, "mean") == 0;
  if (preft_bert_load_source(&c->bert, &src, err) != 0) goto fail;
  snprintf(path, sizeof path, "%s/preft_heads.safetensors", dir);
  if (src.adapter && preft_file_exists(path) && preft_st_open_dir(&heads, dir, "preft_heads", err) != 0)
    goto fail;
  int L = c->bert->cfg.n_layers, D = c->bert->cfg.dim;
  c->pool_w = preft_xcalloc((size_t)L, sizeof(float *));
  c->pool_b = preft_xcalloc((size_t)L, sizeof(float *));
  c->head_w = preft_xcalloc((size_t)L * PREFT_BERT_N_TASKS, sizeof(float *));
  c->head_b = preft_xcalloc((size_t)L * PREFT_BERT_N_TASKS, sizeof(float *));
  const preft_st_set *st = &c->bert->st;
  char n1[128], n2[128];
  for (int l = 0; l < L; l++) {
    bool last = l == L - 1;
    if (!last && !c->has_exits) continue;
    if (last) {
      if (copy_tensor(&heads, st, "bert.pooler.dense.weight", "pooler.dense.weight", (size_t)D * D,
                      &c->pool_w[l], err) ||
          copy_tensor(&heads, st, "bert.pooler.dense.bias", "pooler.dense.bias", (size_t)D, &c->pool_b[l],
                      err))
        goto fail;
    } else {
      snprintf(n1, sizeof n1, "exits.%d.pooler.weight", l);
      snprintf(n2, sizeof n2, "exits.%d.pooler.bias", l);
      if (copy_tensor(&heads, st, n1, NULL, (size_t)D * D, &c->pool_w[l], err) ||
          copy_tensor(&heads, st, n2, NULL, (size_t)D, &c->pool_b[l], err))
        goto fail;
    }
    for (int t = 0; t < PREFT_BERT_N_TASKS; t++) {
      int in = last && c->siamese && t == 1 ? 4 * D : D, w = task_width(t);
      c->head_in[t] = last ? in : c->head_in[t];
      if (last) {
        snprintf(n1, sizeof n1, "heads.%s.weight", task_names[t]);
        snprintf(n2, sizeof n2, "heads.%s.bias", task_names[t]);
      } else {
        snprintf(n1, sizeof n1, "exits.%d.%s.weight", l, task_names[t]);
        snprintf(n2, sizeof n2, "exits.%d.%s.bias", l, task_names[t]);
      }
      int k = l * PREFT_BERT_N_TASKS + t;
      if (copy_tensor(&heads, st, n1, NULL, (size_t)w * in, &c->head_w[k], err) ||
          copy_tensor(&heads, st, n2, NULL, (size_t)w, &c->head_b[k], err))
        goto fail;
    }
    if (!last && (!c->pool_w[l] || !c->head_w[l * PREFT_BERT_N_TASKS])) {
      preft_fail(err, "%s: preft_heads.json says exits but exits.%d.* are missing", dir, l);
      goto fail;
    }
  }
  cJSON_Delete(j);
  preft_st_close(&heads);
  preft_bert_source_free(&src);
  *out = c;
  return 0;
fail:
  cJSON_Delete(j);
  preft_st_close(&heads);
  preft_bert_source_free(&src);
  preft_bert_classifier_free(c);
  return -1;
}

static void ensure_hidden(preft_bert_classifier *c, int rows) {
  if (rows > c->cap_rows) {
    free(c->hidden);
    c->hidden = preft_xmalloc(sizeof(float) * (size_t)rows * c->bert->cfg.dim);
    c->cap_rows = rows;
  }
}

/* pooled = tanh(P·x + p); out = W·pooled + b */
static int head_out(const preft_bert_classifier *c, int layer, int task, const float *x, float *out,
                    float *tmp) {
  int D = c->bert->cfg.dim, k = layer * PREFT_BERT_N_TASKS + task;
  const float *P = c->pool_w[layer], *pb = c->pool_b[layer], *W = c->head_w[k], *b = c->head_b[k];
  if (!P || !W) return -1;
  for (int o = 0; o < D; o++) {
    double s = pb[o];
    for (int i = 0; i < D; i++) s += (double)P[(size_t)o * D + i] * x[i];
    tmp[o] = tanhf((float)s);
  }
  for (int o = 0; o < task_width(task); o++) {
    double s = b[o];
    for (int i = 0; i < D; i++) s += (double)W[(size_t)o * D + i] * tmp[i];
    out[o] = (float)s;
  }
  return 0;
}

static double entropy(int task, const float *o) {
  if (task == 1) {
    double p = 1.0 / (1.0 + exp(-o[0]));
    if (p <= 0 || p >= 1) return 0;
    return -(p * log(p) + (1 - p) * log(1 - p));
  }
  double mx = o[0], s = 0, h = 0;
  for (int k = 1; k < 5; k++)
    if (o[k] > mx) mx = o[k];
  for (int k = 0; k < 5; k++) s += exp(o[k] - mx);
  for (int k = 0; k < 5; k++) {
    double p = exp(o[k] - mx) / s;
    if (p > 0) h -= p * log(p);
  }
  return h;
}

static double prediction(int task, const float *o) {
  if (task == 0) {
    int best = 0;
    for (int k = 1; k < 5; k++)
      if (o[k] > o[best]) best = k;
    return best;
  }
  return task == 1 ? (o[0] > 0) : o[0];
}

int preft_bert_classify(preft_bert_classifier *c, preft_pool *pool, const preft_bert_batch *b, int task,
                        const preft_bert_exit_rule *rule, float *out, int *layers_used, preft_error *err) {
  const preft_bert_config *cfg = &c->bert->cfg;
  int L = cfg->n_layers, D = cfg->dim, T = b->seq_len, B = b->n_seqs, W = task_width(task);
  if (c->siamese && task != 0)
    return preft_fail(err, "this model is a bi-encoder: pair tasks go through sentence embeddings");
  if (!c->head_w[(L - 1) * PREFT_BERT_N_TASKS + task] || !c->pool_w[L - 1])
    return preft_fail(err, "the model has no %s head", task_names[task]);
  bool exits = rule && rule->kind != PREFT_EXIT_NONE;
  if (exits && !c->has_exits) return preft_fail(err, "--early-exit needs a model trained with exit heads");
  ensure_hidden(c, B * T);
  if (preft_bert_embed(c->bert, pool, b, &c->ws, c->hidden, err) != 0) return -1;
  c->n_encoded += B;
  /* the running batch: compacted copies */
  int *ids = preft_xmalloc(sizeof(int) * (size_t)B * T), *types = preft_xmalloc(sizeof(int) * (size_t)B * T),
      *lens = preft_xmalloc(sizeof(int) * (size_t)B), *orig = preft_xmalloc(sizeof(int) * (size_t)B),
      *streak = preft_xcalloc((size_t)B, sizeof(int));
  double *prev = preft_xmalloc(sizeof(double) * (size_t)B);
  float *o = preft_xmalloc(sizeof(float) * (size_t)(W + D));
  memcpy(ids, b->ids, sizeof(int) * (size_t)B * T);
  for (int i = 0; i < B * T; i++) types[i] = b->types ? b->types[i] : 0;
  for (int s = 0; s < B; s++) lens[s] = b->lengths ? b->lengths[s] : T, orig[s] = s;
  int na = B;
  for (int l = 0; l < L && na > 0; l++) {
    preft_bert_batch cur = {.n_seqs = na, .seq_len = T, .ids = ids, .types = types, .lengths = lens};
    preft_bert_run_layer(c->bert, l, pool, &cur, &c->ws, c->hidden);
    if (!exits && l < L - 1) continue;
    int keep = 0;
    for (int s = 0; s < na; s++) {
      const float *x = c->hidden + (size_t)s * T * D;
      head_out(c, l, task, x, o, o + W);
      bool stop = l == L - 1;
      if (!stop && rule->kind == PREFT_EXIT_ENTROPY && task != 2) stop = entropy(task, o) < rule->threshold;
      if (rule && rule->kind == PREFT_EXIT_PATIENCE) {
        double p = prediction(task, o);
        bool same = l > 0 && (task == 2 ? fabs(p - prev[s]) <= rule->tolerance : p == prev[s]);
        streak[s] = same ? streak[s] + 1 : 0;
        prev[s] = p;
        if (streak[s] >= rule->patience) stop = true;
      }
      if (stop) {
        memcpy(out + (size_t)orig[s] * W, o, sizeof(float) * W);
        if (layers_used) layers_used[orig[s]] = l + 1;
        continue;
      }
      if (keep != s) { /* compact: sequence s moves to slot keep */
        memmove(c->hidden + (size_t)keep * T * D, x, sizeof(float) * (size_t)T * D);
        memmove(ids + (size_t)keep * T, ids + (size_t)s * T, sizeof(int) * (size_t)T);
        memmove(types + (size_t)keep * T, types + (size_t)s * T, sizeof(int) * (size_t)T);
        lens[keep] = lens[s], orig[keep] = orig[s], streak[keep] = streak[s], prev[keep] = prev[s];
      }
      keep++;
    }
    na = keep;
  }
  free(ids), free(types), free(lens), free(orig), free(streak), free(prev), free(o);
  return 0;
}

int preft_bert_embed_sentences(preft_bert_classifier *c, preft_pool *pool, const preft_bert_batch *b,
                               float *vecs, preft_error *err) {
  const preft_bert_config *cfg = &c->bert->cfg;
  int L = cfg->n_layers, D = cfg->dim, T = b->seq_len, B = b->n_seqs;
  ensure_hidden(c, B * T);
  if (preft_bert_embed(c->bert, pool, b, &c->ws, c->hidden, err) != 0) return -1;
  for (int l = 0; l < L; l++) preft_bert_run_layer(c->bert, l, pool, b, &c->ws, c->hidden);
  c->n_encoded += B;
  for (int s = 0; s < B; s++) {
    const float *x = c->hidden + (size_t)s * T * D;
    float *v = vecs + (size_t)s * D;
    if (c->mean_pool) {
      int len = b->lengths ? b->lengths[s] : T;
      for (int d = 0; d < D; d++) v[d] = 0;
      for (int t = 0; t < len; t++)
        for (int d = 0; d < D; d++) v[d] += x[(size_t)t * D + d];
      for (int d = 0; d < D; d++) v[d] /= (float)len;
    } else {
      const float *P = c->pool_w[L - 1], *pb = c->pool_b[L - 1];
      if (!P) return preft_fail(err, "the model has no pooler");
      for (int o = 0; o < D; o++) {
        double sum = pb[o];
        for (int i = 0; i < D; i++) sum += (double)P[(size_t)o * D + i] * x[i];
        v[o] = tanhf((float)sum);
      }
    }
  }
  return 0;
}

float preft_bert_pair_output(const preft_bert_classifier *c, int task, const float *u, const float *v) {
  int D = c->bert->cfg.dim, L = c->bert->cfg.n_layers;
  if (task == 2) {
    double uv = 0, uu = 0, vv = 0;
    for (int d = 0; d < D; d++)
      uv += (double)u[d] * v[d], uu += (double)u[d] * u[d], vv += (double)v[d] * v[d];
    return (float)(2.5 * (uv / ((sqrt(uu) + 1e-12) * (sqrt(vv) + 1e-12)) + 1.0));
  }
  const float *w = c->head_w[(L - 1) * PREFT_BERT_N_TASKS + 1],
              *b = c->head_b[(L - 1) * PREFT_BERT_N_TASKS + 1];
  double s = b[0];
  for (int d = 0; d < D; d++)
    s += (double)w[d] * u[d] + (double)w[D + d] * v[d] + (double)w[2 * D + d] * fabsf(u[d] - v[d]) +
         (double)w[3 * D + d] * u[d] * v[d];
  return (float)s;
}

/* ---- the embedding cache ------------------------------------------------------------ */

struct emb_entry {
  int *ids, n;
  float *vec;
};

const float *preft_bert_emb_cache_get(preft_bert_emb_cache *cache, preft_bert_classifier *c, preft_pool *pool,
                                      const int *ids, int n, preft_error *err) {
  for (int i = 0; i < cache->n; i++)
    if (cache->e[i].n == n && memcmp(cache->e[i].ids, ids, sizeof(int) * (size_t)n) == 0)
      return cache->e[i].vec;
  int D = c->bert->cfg.dim;
  float *vec = preft_xmalloc(sizeof(float) * (size_t)D);
  preft_bert_batch b = {.n_seqs = 1, .seq_len = n, .ids = ids};
  if (preft_bert_embed_sentences(c, pool, &b, vec, err) != 0) {
    free(vec);
    return NULL;
  }
  if (cache->n == cache->cap) {
    cache->cap = cache->cap ? 2 * cache->cap : 16;
    cache->e = preft_xrealloc(cache->e, sizeof *cache->e * (size_t)cache->cap);
  }
  struct emb_entry *e = &cache->e[cache->n++];
  e->ids = preft_xmalloc(sizeof(int) * (size_t)n);
  memcpy(e->ids, ids, sizeof(int) * (size_t)n);
  e->n = n;
  e->vec = vec;
  return vec;
}

void preft_bert_emb_cache_free(preft_bert_emb_cache *cache) {
  for (int i = 0; i < cache->n; i++) free(cache->e[i].ids), free(cache->e[i].vec);
  free(cache->e);
  memset(cache, 0, sizeof *cache);
}
