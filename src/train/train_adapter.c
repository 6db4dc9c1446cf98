/* train_adapter.c - the trainable adapter (see train_model.h): its
 * parameter table in the names of the files it is saved as, PEFT / pyreft
 * initialisation, copying a loaded adapter, saving PEFT and ReFT
 * directories, and keeping LoReFT's R orthonormal. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "io/safetensors.h"
#include "train/rng.h"
#include "train/train_model.h"

static const char *slot_name(int s) {
  return s == PREFT_REFT_FIRST ? "first" : s == PREFT_REFT_LAST ? "last" : "shared";
}

/* The parameter table: which tensors exist follows kind, layers, modules
 * and (ReFT) whether the slots are shared. Fails when nothing is selected. */
static int layout(preft_train_adapter *ad, const preft_model_config *c, preft_error *err) {
  int L = c->n_layers, R = ad->rank, D = c->dim;
  ad->n_layers = L;
  ad->dim = D;
  preft_param_builder b = {0};
  char name[128];
  if (ad->kind == PREFT_ADAPTER_LORA) {
    ad->lora = preft_xcalloc((size_t)L * PREFT_N_MODULES, sizeof *ad->lora);
    for (int l = 0; l < L; l++)
      for (int m = 0; m < PREFT_N_MODULES; m++) {
        if (!ad->layers[l] || !ad->modules[m]) continue;
        preft_train_lora *lm = &ad->lora[l * PREFT_N_MODULES + m];
        preft_module_dims(c, (preft_module)m, &lm->in, &lm->out);
        snprintf(name, sizeof name, "base_model.model.model.layers.%d.%s.%s.lora_A.weight", l,
                 preft_module_parent((preft_module)m), preft_module_name((preft_module)m));
        preft_param_builder_add(&b, name, R, lm->in, PREFT_ROLE_LORA_A, true, &lm->a, &lm->ga);
        snprintf(name, sizeof name, "base_model.model.model.layers.%d.%s.%s.lora_B.weight", l,
                 preft_module_parent((preft_module)m), preft_module_name((preft_module)m));
        preft_param_builder_add(&b, name, lm->out, R, PREFT_ROLE_LORA_B, true, &lm->b, &lm->gb);
      }
  } else {
    ad->reft = preft_xcalloc((size_t)L * PREFT_REFT_SLOTS, sizeof *ad->reft);
    bool lo = ad->kind == PREFT_ADAPTER_LOREFT;
    for (int l = 0; l < L; l++)
      for (int s = 0; s < PREFT_REFT_SLOTS; s++) {
        if (!ad->layers[l]) continue;
        if (ad->reft_shared ? s != PREFT_REFT_SHARED : s == PREFT_REFT_SHARED) continue;
        preft_train_reft *sl = &ad->reft[l * PREFT_REFT_SLOTS + s];
        sl->present = true;
#define A(part, rows, cols, role, decay, f)                               \
  (snprintf(name, sizeof name, "layers.%d.%s.%s", l, slot_name(s), part), \
   preft_param_builder_add(&b, name, rows, cols, PREFT_ROLE_##role, decay, &sl->f, &sl->g_##f))
        if (lo) {
          A("rotate", R, D, REFT_ROTATE, false, rotate);
          A("weight", R, D, REFT_WEIGHT, true, weight);
          A("bias", R, 0, REFT_BIAS, false, bias);
        } else {
          A("proj_down", R, D, REFT_WEIGHT, true, weight);
          A("bias", R, 0, REFT_BIAS, false, bias);
          A("proj_up", R, D, REFT_PROJ_UP, true, proj_up);
        }
#undef A
      }
  }
  if (b.n == 0) {
    free(b.s);
    return preft_fail(err, "adapter: no layer or module selected");
  }
  preft_param_builder_finish(&b, &ad->ps, true);
  return 0;
}

/* Sets the positions the flag rule reads from ad->positions (parsed, for
 * ReFT) and shared; LoRA applies at every row. Fails when they do not parse. */
static int set_positions(preft_train_adapter *ad, bool shared, preft_error *err) {
  ad->reft_first = ad->reft_last = -1;
  ad->reft_shared = false;
  if (ad->kind == PREFT_ADAPTER_LORA) return 0;
  if (preft_reft_positions_parse(ad->positions, &ad->reft_first, &ad->reft_last) != 0)
    return preft_fail(err, "ReFT positions \"%s\" do not parse (expected \"all\" or like \"f7+l7\")",
                      ad->positions);
  ad->reft_shared = shared || ad->reft_first < 0;
  return 0;
}

/* Modified Gram-Schmidt on the rows of m [r, d], in double, applied twice
 * (re-orthogonalisation keeps the rows orthonormal to rounding). A row that
 * collapses is replaced by a unit basis vector orthogonal to the others. */
static void orthonormalize_rows(float *m, int r, int d) {
  double *q = preft_xmalloc(sizeof(double) * (size_t)r * d);
  for (size_t i = 0; i < (size_t)r * d; i++) q[i] = m[i];
  for (int pass = 0; pass < 2; pass++)
    for (int k = 0; k < r; k++) {
      double *row = q + (size_t)k * d;
      for (int retry = 0; retry <= d; retry++) {
        for (int j = 0; j < k; j++) {
          const double *o = q + (size_t)j * d;
          double dot = 0;
          for (int c = 0; c < d; c++) dot += row[c] * o[c];
          for (int c = 0; c < d; c++) row[c] -= dot * o[c];
        }
        double nn = 0;
        for (int c = 0; c < d; c++) nn += row[c] * row[c];
        if (nn > 1e-20) {
          double inv = 1.0 / sqrt(nn);
          for (int c = 0; c < d; c++) row[c] *= inv;
          break;
        }
        for (int c = 0; c < d; c++) row[c] = c == (k + retry) % d ? 1.0 : 0.0;
      }
    }
  for (size_t i = 0; i < (size_t)r * d; i++) m[i] = (float)q[i];
  free(q);
}

void preft_train_adapter_orthonormalize(preft_train_adapter *ad) {
  for (int i = 0; i < ad->ps.n_t; i++) {
    preft_train_tensor *t = &ad->ps.t[i];
    if (t->role == PREFT_ROLE_REFT_ROTATE) orthonormalize_rows(t->p, t->rows, t->cols);
  }
}

/* PEFT's and pyreft's fresh values for tensor t (rng consumed in table
 * order; B takes none). */
static void init_tensor(preft_train_tensor *t, int dim, preft_rng *rng) {
  switch (t->role) {
    case PREFT_ROLE_LORA_B: /* PEFT: B = 0 (the allocation is zeroed) */
      return;
    case PREFT_ROLE_REFT_ROTATE:
    case PREFT_ROLE_REFT_PROJ_UP:
      for (size_t k = 0; k < t->n; k++) t->p[k] = preft_rng_normal(rng);
      orthonormalize_rows(t->p, t->rows, t->cols);
      return;
    default: {
      /* kaiming_uniform(a=√5) on LoRA A [R, in]; nn.Linear's rule (fan-in D) on ReFT W and b */
      int fan_in = t->role == PREFT_ROLE_LORA_A ? t->cols : dim;
      float bound = 1.0f / sqrtf((float)fan_in);
      for (size_t k = 0; k < t->n; k++) t->p[k] = (float)((preft_rng_uniform(rng) * 2.0 - 1.0) * bound);
      return;
    }
  }
}

int preft_train_adapter_init(preft_train_adapter *ad, const preft_model_config *cfg,
                             const preft_train_adapter_opts *o, preft_error *err) {
  memset(ad, 0, sizeof *ad);
  if (o->rank < 1 || o->rank > cfg->dim)
    return preft_fail(err, "adapter rank %d outside [1, %d]", o->rank, cfg->dim);
  ad->kind = o->kind;
  ad->mode = o->mode;
  ad->rank = o->rank;
  ad->alpha = o->alpha;
  ad->scale = (float)(o->alpha / o->rank);
  memcpy(ad->modules, o->modules, sizeof ad->modules);
  ad->layers = preft_xcalloc((size_t)cfg->n_layers, sizeof(bool));
  ad->all_layers = o->layers == NULL;
  for (int l = 0; l < cfg->n_layers; l++) ad->layers[l] = o->layers ? o->layers[l] : true;
  snprintf(ad->positions, sizeof ad->positions, "%s", o->positions ? o->positions : "all");
  if (set_positions(ad, o->share_weights, err) != 0 || layout(ad, cfg, err) != 0) {
    preft_train_adapter_free(ad);
    return -1;
  }
  preft_rng rng;
  preft_rng_seed(&rng, o->seed);
  for (int i = 0; i < ad->ps.n_t; i++) init_tensor(&ad->ps.t[i], cfg->dim, &rng);
  return 0;
}

/* True when layer l of a adapts exactly the modules in set. */
static bool layer_modules_equal(const preft_adapter *a, int l, const bool set[PREFT_N_MODULES]) {
  for (int m = 0; m < PREFT_N_MODULES; m++)
    if ((a->lora[l * PREFT_N_MODULES + m].rank > 0) != set[m]) return false;
  return true;
}

int preft_train_adapter_from(preft_train_adapter *ad, const preft_adapter *a, const preft_model_config *cfg,
                             preft_error *err) {
  memset(ad, 0, sizeof *ad);
  ad->kind = a->kind;
  ad->mode = a->default_mode;
  int L = cfg->n_layers;
  ad->layers = preft_xcalloc((size_t)L, sizeof(bool));
  if (a->kind == PREFT_ADAPTER_LORA) {
    float scale = 0;
    bool first = true;
    for (int l = 0; l < L; l++) {
      bool any = false;
      for (int m = 0; m < PREFT_N_MODULES; m++) {
        const preft_lora_module *lm = &a->lora[l * PREFT_N_MODULES + m];
        if (lm->rank == 0) continue;
        any = true;
        if (first) {
          ad->rank = lm->rank;
          scale = lm->scale;
          first = false;
        } else if (lm->rank != ad->rank || lm->scale != scale) {
          preft_train_adapter_free(ad);
          return preft_fail(err, "adapter %s: training needs one rank and scale for every module", a->name);
        }
        ad->modules[m] = true;
      }
      ad->layers[l] = any;
    }
    /* ad->modules is the union over layers: every adapted layer must adapt all of it */
    for (int l = 0; l < L; l++)
      if (ad->layers[l] && !layer_modules_equal(a, l, ad->modules)) {
        preft_train_adapter_free(ad);
        return preft_fail(err, "adapter %s: training needs the same modules on every adapted layer", a->name);
      }
    ad->all_layers = true;
    for (int l = 0; l < L; l++) ad->all_layers = ad->all_layers && ad->layers[l];
    ad->scale = scale;
    ad->alpha = (double)scale * ad->rank;
    snprintf(ad->positions, sizeof ad->positions, "all");
  } else {
    ad->rank = a->reft_rank;
    for (int l = 0; l < L; l++) ad->layers[l] = a->reft_layer[l];
    if (a->reft_first < 0)
      snprintf(ad->positions, sizeof ad->positions, "all");
    else
      snprintf(ad->positions, sizeof ad->positions, "f%d+l%d", a->reft_first, a->reft_last);
  }
  if (set_positions(ad, a->reft_shared, err) != 0 || layout(ad, cfg, err) != 0) {
    preft_train_adapter_free(ad);
    return -1;
  }
  for (int l = 0; l < L; l++) {
    if (a->kind == PREFT_ADAPTER_LORA) {
      for (int m = 0; m < PREFT_N_MODULES; m++) {
        preft_train_lora *t = &ad->lora[l * PREFT_N_MODULES + m];
        const preft_lora_module *lm = &a->lora[l * PREFT_N_MODULES + m];
        if (!t->a) continue;
        for (size_t i = 0; i < (size_t)ad->rank * t->in; i++)
          t->a[i] = preft_load_elem(lm->a, lm->a_dtype, i);
        for (size_t i = 0; i < (size_t)ad->rank * t->out; i++)
          t->b[i] = preft_load_elem(lm->b, lm->b_dtype, i);
      }
    } else {
      size_t rd = (size_t)ad->rank * ad->dim;
      for (int s = 0; s < PREFT_REFT_SLOTS; s++) {
        preft_train_reft *t = &ad->reft[l * PREFT_REFT_SLOTS + s];
        const preft_reft_slot *src = &a->reft[l * PREFT_REFT_SLOTS + s];
        if (!t->present) continue;
        if (!src->present) {
          preft_train_adapter_free(ad);
          return preft_fail(err, "adapter %s: layer %d lacks slot %s", a->name, l, slot_name(s));
        }
        if (t->rotate) memcpy(t->rotate, src->rotate, sizeof(float) * rd);
        memcpy(t->weight, src->weight, sizeof(float) * rd);
        memcpy(t->bias, src->bias, sizeof(float) * (size_t)ad->rank);
        if (t->proj_up) memcpy(t->proj_up, src->proj_up, sizeof(float) * rd);
      }
    }
  }
  return 0;
}

void preft_train_adapter_free(preft_train_adapter *ad) {
  if (!ad) return;
  preft_param_set_free(&ad->ps);
  free(ad->layers);
  free(ad->lora);
  free(ad->reft);
  memset(ad, 0, sizeof *ad);
}

/* ---- saving --------------------------------------------------------------------------- */

static int write_json(cJSON *root, const char *dir, const char *file, preft_error *err) {
  char *text = cJSON_Print(root);
  char *path = preft_path_join(dir, file);
  size_t n = strlen(text);
  int rc = preft_write_atomic(path, text, n, err);
  free(path);
  cJSON_free(text);
  return rc;
}

static int write_tensors(const preft_train_adapter *ad, const char *dir, const char *file, preft_error *err) {
  preft_st_write_tensor *wt = preft_xcalloc((size_t)ad->ps.n_t, sizeof *wt);
  for (int i = 0; i < ad->ps.n_t; i++) {
    const preft_train_tensor *t = &ad->ps.t[i];
    wt[i].name = t->name;
    wt[i].dtype = PREFT_F32;
    wt[i].ndim = t->cols > 0 ? 2 : 1;
    wt[i].shape[0] = t->rows;
    wt[i].shape[1] = t->cols;
    wt[i].data = t->p;
  }
  char *path = preft_path_join(dir, file);
  int rc = preft_st_write(path, wt, ad->ps.n_t, err);
  free(path);
  free(wt);
  return rc;
}

int preft_train_adapter_save(const preft_train_adapter *ad, const char *dir, const char *base_name,
                             preft_error *err) {
  if (preft_mkdir_p(dir, err) != 0) return -1;
  cJSON *root = cJSON_CreateObject();
  cJSON *layers = cJSON_CreateArray();
  for (int l = 0; l < ad->n_layers; l++)
    if (ad->layers[l]) cJSON_AddItemToArray(layers, cJSON_CreateNumber(l));
  int rc;
  if (ad->kind == PREFT_ADAPTER_LORA) {
    /* the fields PEFT's LoraConfig writes (0.13), plus preft's serving mode */
    cJSON_AddItemToObject(root, "alpha_pattern", cJSON_CreateObject());
    cJSON_AddNullToObject(root, "auto_mapping");
    cJSON_AddStringToObject(root, "base_model_name_or_path", base_name ? base_name : "");
    cJSON_AddStringToObject(root, "bias", "none");
    cJSON_AddFalseToObject(root, "fan_in_fan_out");
    cJSON_AddTrueToObject(root, "inference_mode");
    cJSON_AddTrueToObject(root, "init_lora_weights");
    cJSON_AddNullToObject(root, "layer_replication");
    cJSON_AddNullToObject(root, "layers_pattern");
    if (ad->all_layers) {
      cJSON_AddNullToObject(root, "layers_to_transform");
      cJSON_Delete(layers);
    } else {
      cJSON_AddItemToObject(root, "layers_to_transform", layers);
    }
    cJSON_AddItemToObject(root, "loftq_config", cJSON_CreateObject());
    cJSON_AddNumberToObject(root, "lora_alpha", ad->alpha);
    cJSON_AddNumberToObject(root, "lora_dropout", 0.0);
    cJSON_AddNullToObject(root, "megatron_config");
    cJSON_AddStringToObject(root, "megatron_core", "megatron.core");
    cJSON_AddNullToObject(root, "modules_to_save");
    cJSON_AddStringToObject(root, "peft_type", "LORA");
    cJSON_AddStringToObject(root, "preft_mode", preft_adapter_mode_name(ad->mode));
    cJSON_AddNumberToObject(root, "r", ad->rank);
    cJSON_AddItemToObject(root, "rank_pattern", cJSON_CreateObject());
    cJSON_AddNullToObject(root, "revision");
    cJSON *tm = cJSON_CreateArray();
    for (int m = 0; m < PREFT_N_MODULES; m++)
      if (ad->modules[m]) cJSON_AddItemToArray(tm, cJSON_CreateString(preft_module_name((preft_module)m)));
    cJSON_AddItemToObject(root, "target_modules", tm);
    cJSON_AddStringToObject(root, "task_type", "CAUSAL_LM");
    cJSON_AddFalseToObject(root, "use_dora");
    cJSON_AddFalseToObject(root, "use_rslora");
    rc = write_tensors(ad, dir, "adapter_model.safetensors", err);
    if (rc == 0) rc = write_json(root, dir, "adapter_config.json", err);
  } else {
    cJSON_AddStringToObject(root, "base_model_name_or_path", base_name ? base_name : "");
    cJSON_AddItemToObject(root, "layers", layers);
    cJSON_AddStringToObject(root, "mode", preft_adapter_mode_name(ad->mode));
    cJSON_AddStringToObject(root, "peft_type", "REFT");
    cJSON_AddStringToObject(root, "positions", ad->positions);
    cJSON_AddNumberToObject(root, "r", ad->rank);
    cJSON_AddStringToObject(root, "reft_type", ad->kind == PREFT_ADAPTER_LOREFT ? "loreft" : "direft");
    cJSON_AddBoolToObject(root, "share_weights", ad->reft_shared && ad->reft_first >= 0);
    rc = write_tensors(ad, dir, "reft_model.safetensors", err);
    if (rc == 0) rc = write_json(root, dir, "reft_config.json", err);
  }
  cJSON_Delete(root);
  return rc;
}
