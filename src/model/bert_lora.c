/* bert_lora.c - PEFT LoRA directories on the BERT encoder (see bert.h):
 * where a model comes from (a directory, or a base and an adapter), reading
 * an adapter through peft_lora.c, merging it into the weights, and writing
 * one as PEFT does. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "io/json_util.h"
#include "model/bert.h"
#include "model/peft_lora.h"
#include "tensor/ops.h"

const char *const preft_bert_lin_keys[PREFT_BERT_N_LIN] = {"attention.self.query", "attention.self.key",
                                                           "attention.self.value", "attention.output.dense",
                                                           "intermediate.dense",   "output.dense"};

/* The target_modules preft writes: exactly the six linear layers (a bare
 * "dense" would take the pooler too). */
static const char *const target_modules[] = {"query", "key", "value", "intermediate.dense", "output.dense"};

int preft_bert_source_resolve(preft_bert_source *s, const char *model, const char *adapter,
                              preft_error *err) {
  memset(s, 0, sizeof *s);
  if (adapter) {
    s->base = preft_xstrdup(model);
    s->adapter = preft_xstrdup(adapter);
    s->heads = s->adapter;
    return 0;
  }
  char *acfg = preft_path_join(model, "adapter_config.json"), *mcfg = preft_path_join(model, "config.json");
  int rc = 0;
  if (preft_file_exists(acfg) && !preft_file_exists(mcfg)) {
    cJSON *j = NULL;
    const char *base = NULL;
    rc = preft_json_load(acfg, &j, err) == 0 &&
                 preft_json_str(j, acfg, "base_model_name_or_path", true, &base, err) == 0
             ? 0
             : -1;
    if (rc == 0) {
      char *bcfg = preft_path_join(base, "config.json");
      if (!preft_file_exists(bcfg))
        rc = preft_fail(err,
                        "%s: base_model_name_or_path \"%s\" is not a model directory here; pass the base "
                        "model with -m and the adapter with -a",
                        acfg, base);
      else
        s->base = preft_xstrdup(base), s->adapter = preft_xstrdup(model);
      free(bcfg);
    }
    cJSON_Delete(j);
  } else {
    s->base = preft_xstrdup(model);
  }
  free(acfg);
  free(mcfg);
  s->heads = s->adapter ? s->adapter : s->base;
  return rc;
}

void preft_bert_source_free(preft_bert_source *s) {
  free(s->base);
  free(s->adapter);
  memset(s, 0, sizeof *s);
}

int preft_bert_load_source(preft_bert **out, const preft_bert_source *s, preft_error *err) {
  preft_bert *m;
  if (preft_bert_load(&m, s->base, err) != 0) return -1;
  if (s->adapter && preft_bert_apply_lora(m, s->adapter, err) != 0) {
    preft_bert_free(m);
    return -1;
  }
  *out = m;
  return 0;
}

void preft_bert_lora_free(preft_bert_lora *lo) {
  for (int i = 0; lo->mod && i < lo->n_layers * PREFT_BERT_N_LIN; i++) free(lo->mod[i].a), free(lo->mod[i].b);
  free(lo->mod);
  memset(lo, 0, sizeof *lo);
}

int preft_bert_lora_read(preft_bert_lora *lo, const char *dir, const preft_bert_config *c, preft_error *err) {
  memset(lo, 0, sizeof *lo);
  preft_peft_lora p;
  if (preft_peft_lora_open(&p, dir, false, err) != 0) return -1;
  /* BertModel's names, or BertFor*'s with "bert." */
  const char *prefix = "";
  for (int i = 0; i < p.st.n_tensors; i++)
    if (strncmp(p.st.tensors[i].name, "base_model.model.bert.", 22) == 0) prefix = "bert.";
  int n = c->n_layers * PREFT_BERT_N_LIN, rc = -1;
  preft_peft_target *tg = preft_xcalloc((size_t)n, sizeof *tg);
  for (int l = 0; l < c->n_layers; l++)
    for (int k = 0; k < PREFT_BERT_N_LIN; k++) {
      preft_peft_target *t = &tg[l * PREFT_BERT_N_LIN + k];
      snprintf(t->key, sizeof t->key, "%sencoder.layer.%d.%s", prefix, l, preft_bert_lin_keys[k]);
      t->layer = l;
      t->in = k == PREFT_BERT_N_LIN - 1 ? c->ffn : c->dim;
      t->out = k == PREFT_BERT_N_LIN - 2 ? c->ffn : c->dim;
    }
  for (int i = 0; i < p.st.n_tensors; i++)
    if (strstr(p.st.tensors[i].name, ".pooler.") || strstr(p.st.tensors[i].name, ".embeddings.")) {
      preft_fail(err,
                 "%s: tensor %s: LoRA on the pooler or the embeddings is not supported (only the encoder "
                 "layers' linear modules)",
                 preft_st_file_of(&p.st, &p.st.tensors[i]), p.st.tensors[i].name);
      goto done;
    }
  if (preft_peft_lora_match(&p, tg, n, err) != 0) goto done;
  lo->n_layers = c->n_layers;
  lo->mod = preft_xcalloc((size_t)n, sizeof *lo->mod);
  for (int i = 0; i < n; i++) {
    const preft_peft_target *t = &tg[i];
    if (t->rank == 0) continue;
    preft_bert_lora_mod *md = &lo->mod[i];
    md->rank = t->rank, md->in = t->in, md->out = t->out, md->scale = t->scale;
    md->a = preft_xmalloc(sizeof(float) * (size_t)t->rank * t->in);
    md->b = preft_xmalloc(sizeof(float) * (size_t)t->out * t->rank);
    for (int r = 0; r < t->rank; r++)
      preft_load_row(md->a + (size_t)r * t->in, t->a->data, t->a->dtype, r, t->in);
    for (int o = 0; o < t->out; o++)
      preft_load_row(md->b + (size_t)o * t->rank, t->b->data, t->b->dtype, o, t->rank);
  }
  rc = 0;
done:
  free(tg);
  preft_peft_lora_close(&p);
  if (rc != 0) preft_fail_prefix(err, "LoRA adapter %s", dir);
  return rc;
}

void preft_bert_lora_merge(const preft_bert_lora *lo, int layer, int k, float *w) {
  const preft_bert_lora_mod *md = &lo->mod[layer * PREFT_BERT_N_LIN + k];
  for (int o = 0; o < md->out; o++) {
    float *row = w + (size_t)o * md->in;
    for (int r = 0; r < md->rank; r++) {
      float s = md->scale * md->b[(size_t)o * md->rank + r];
      const float *a = md->a + (size_t)r * md->in;
      for (int c = 0; c < md->in; c++) row[c] += s * a[c];
    }
  }
}

int preft_bert_apply_lora(preft_bert *m, const char *dir, preft_error *err) {
  preft_bert_lora lo;
  if (preft_bert_lora_read(&lo, dir, &m->cfg, err) != 0) return -1;
  size_t total = 0;
  for (int i = 0; i < lo.n_layers * PREFT_BERT_N_LIN; i++)
    if (lo.mod[i].rank) total += (size_t)lo.mod[i].in * lo.mod[i].out;
  if (m->lora_merged) {
    preft_bert_lora_free(&lo);
    return preft_fail(err, "LoRA adapter %s: the model already has an adapter merged", dir);
  }
  float *at = m->lora_merged = preft_xmalloc(sizeof(float) * (total ? total : 1));
  for (int l = 0; l < lo.n_layers; l++) {
    preft_bert_layer *ly = &m->layers[l];
    preft_weight *ws[PREFT_BERT_N_LIN] = {&ly->wq, &ly->wk, &ly->wv, &ly->wo, &ly->w1, &ly->w2};
    for (int k = 0; k < PREFT_BERT_N_LIN; k++) {
      const preft_bert_lora_mod *md = &lo.mod[l * PREFT_BERT_N_LIN + k];
      if (!md->rank) continue;
      for (int o = 0; o < md->out; o++)
        preft_load_row(at + (size_t)o * md->in, ws[k]->data, ws[k]->dtype, o, md->in);
      preft_bert_lora_merge(&lo, l, k, at);
      *ws[k] = (preft_weight){.data = at, .dtype = PREFT_F32};
      at += (size_t)md->in * md->out;
    }
  }
  preft_bert_lora_free(&lo);
  return 0;
}

int preft_bert_lora_write(const char *dir, const preft_bert_config *c, int rank, double alpha,
                          const char *base, const float *const *a, const float *const *b, preft_error *err) {
  if (preft_mkdir_p(dir, err) != 0) return -1;
  int n = c->n_layers * PREFT_BERT_N_LIN;
  preft_st_write_tensor *wt = preft_xcalloc((size_t)2 * n, sizeof *wt);
  char(*names)[160] = preft_xcalloc((size_t)2 * n, sizeof *names);
  for (int l = 0; l < c->n_layers; l++)
    for (int k = 0; k < PREFT_BERT_N_LIN; k++) {
      int i = l * PREFT_BERT_N_LIN + k, in = k == PREFT_BERT_N_LIN - 1 ? c->ffn : c->dim,
          out = k == PREFT_BERT_N_LIN - 2 ? c->ffn : c->dim;
      for (int w = 0; w < 2; w++) {
        snprintf(names[2 * i + w], sizeof names[0], "base_model.model.encoder.layer.%d.%s.lora_%c.weight", l,
                 preft_bert_lin_keys[k], w ? 'B' : 'A');
        wt[2 * i + w] = (preft_st_write_tensor){
            .name = names[2 * i + w], .dtype = PREFT_F32, .ndim = 2, .data = w ? b[i] : a[i]};
        wt[2 * i + w].shape[0] = w ? out : rank;
        wt[2 * i + w].shape[1] = w ? rank : in;
      }
    }
  char *path = preft_path_join(dir, "adapter_model.safetensors");
  int rc = preft_st_write(path, wt, 2 * n, err);
  free(path);
  free(wt);
  free(names);
  if (rc != 0) return -1;
  cJSON *j = cJSON_CreateObject();
  cJSON_AddItemToObject(j, "alpha_pattern", cJSON_CreateObject());
  cJSON_AddStringToObject(j, "base_model_name_or_path", base);
  cJSON_AddStringToObject(j, "bias", "none");
  cJSON_AddBoolToObject(j, "fan_in_fan_out", false);
  cJSON_AddBoolToObject(j, "inference_mode", true);
  cJSON_AddBoolToObject(j, "init_lora_weights", true);
  cJSON_AddNullToObject(j, "layers_to_transform");
  cJSON_AddNumberToObject(j, "lora_alpha", alpha);
  cJSON_AddNumberToObject(j, "lora_dropout", 0.0);
  cJSON_AddNullToObject(j, "modules_to_save");
  cJSON_AddStringToObject(j, "peft_type", "LORA");
  cJSON_AddNumberToObject(j, "r", rank);
  cJSON_AddItemToObject(j, "rank_pattern", cJSON_CreateObject());
  cJSON *tm = cJSON_AddArrayToObject(j, "target_modules");
  for (size_t i = 0; i < sizeof target_modules / sizeof target_modules[0]; i++)
    cJSON_AddItemToArray(tm, cJSON_CreateString(target_modules[i]));
  cJSON_AddStringToObject(j, "task_type", "FEATURE_EXTRACTION");
  cJSON_AddBoolToObject(j, "use_dora", false);
  cJSON_AddBoolToObject(j, "use_rslora", false);
  path = preft_path_join(dir, "adapter_config.json");
  rc = preft_json_save(path, j, err);
  free(path);
  cJSON_Delete(j);
  return rc;
}
