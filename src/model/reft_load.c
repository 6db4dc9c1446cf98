/* reft_load.c - reading preft's ReFT directory (reft_config.json +
 * reft_model.safetensors; docs/REFT_FORMAT.md). Weights are small ([R, D]
 * per slot) and are copied to FP32 at load. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "io/json_util.h"
#include "model/adapter.h"

int preft_reft_load(preft_adapter *a, const char *dir, const preft_model_config *cfg, preft_error *err);

static const char *slot_name(int s) {
  return s == PREFT_REFT_FIRST ? "first" : s == PREFT_REFT_LAST ? "last" : "shared";
}

/* Copies tensor layers.L.S.<part> of shape [d0] or [d0, d1] to FP32. */
static int load_part(preft_adapter *a, int layer, int slot, const char *part, int d0, int d1, float **out,
                     preft_error *err) {
  char name[128];
  snprintf(name, sizeof name, "layers.%d.%s.%s", layer, slot_name(slot), part);
  const preft_st_tensor *t = preft_st_find(&a->st, name);
  if (!t) return preft_fail(err, "tensor %s is missing from reft_model.safetensors", name);
  int nd = d1 > 0 ? 2 : 1;
  if (t->ndim != nd || t->shape[0] != d0 || (nd == 2 && t->shape[1] != d1)) {
    if (nd == 2)
      return preft_fail(err, "%s: tensor %s has the wrong shape, expected [%d, %d] (r, hidden_size)",
                        preft_st_file_of(&a->st, t), name, d0, d1);
    return preft_fail(err, "%s: tensor %s has the wrong shape, expected [%d] (r)",
                      preft_st_file_of(&a->st, t), name, d0);
  }
  size_t n = preft_st_numel(t);
  float *v = preft_xmalloc(sizeof(float) * n);
  for (size_t i = 0; i < n; i++) v[i] = preft_load_elem(t->data, t->dtype, i);
  a->bytes += sizeof(float) * n;
  *out = v;
  return 0;
}

int preft_reft_load(preft_adapter *a, const char *dir, const preft_model_config *c, preft_error *err) {
  char *path = preft_path_join(dir, "reft_config.json");
  cJSON *root = NULL;
  int rc = -1;
  const char *peft_type, *type, *positions, *mode;
  long r;
  bool shared;
  if (preft_json_load(path, &root, err) != 0) goto done;
  if (preft_json_str(root, path, "peft_type", false, &peft_type, err) != 0 ||
      preft_json_str(root, path, "reft_type", true, &type, err) != 0 ||
      preft_json_int(root, path, "r", true, 1, 1 << 16, 0, &r, err) != 0 ||
      preft_json_str(root, path, "positions", true, &positions, err) != 0 ||
      preft_json_bool(root, path, "share_weights", false, &shared, err) != 0 ||
      preft_json_str(root, path, "mode", false, &mode, err) != 0)
    goto done;
  if (peft_type && strcmp(peft_type, "REFT") != 0) {
    preft_fail(err, "%s: peft_type \"%s\" is not REFT", path, peft_type);
    goto done;
  }
  if (!strcmp(type, "loreft"))
    a->kind = PREFT_ADAPTER_LOREFT;
  else if (!strcmp(type, "direft"))
    a->kind = PREFT_ADAPTER_DIREFT;
  else {
    preft_fail(err, "%s: unknown reft_type \"%s\" (expected loreft or direft)", path, type);
    goto done;
  }
  if (preft_reft_positions_parse(positions, &a->reft_first, &a->reft_last) != 0) {
    preft_fail(err, "%s: positions \"%s\" does not parse (expected \"all\" or like \"f7+l7\")", path,
               positions);
    goto done;
  }
  a->default_mode = PREFT_MODE_PREFILL;
  if (mode && preft_adapter_mode_parse(mode, &a->default_mode) != 0) {
    preft_fail(err, "%s: field \"mode\" must be \"all\" or \"prefill\", got \"%s\"", path, mode);
    goto done;
  }
  a->reft_shared = shared || a->reft_first < 0;
  a->reft_rank = (int)r;
  const cJSON *layers = cJSON_GetObjectItemCaseSensitive(root, "layers");
  if (!cJSON_IsArray(layers) || cJSON_GetArraySize(layers) == 0) {
    preft_fail(err, "%s: field \"layers\" must be a non-empty list of layer indices", path);
    goto done;
  }
  a->reft_layer = preft_xcalloc((size_t)c->n_layers, sizeof(bool));
  a->reft = preft_xcalloc((size_t)c->n_layers * PREFT_REFT_SLOTS, sizeof *a->reft);
  const cJSON *e;
  cJSON_ArrayForEach(e, layers) {
    if (!cJSON_IsNumber(e) || e->valuedouble != floor(e->valuedouble) || e->valuedouble < 0 ||
        e->valuedouble >= c->n_layers) {
      preft_fail(err,
                 "%s: layers entry %g is out of range: layer %g does not exist, the model has layers 0..%d",
                 path, cJSON_IsNumber(e) ? e->valuedouble : -1.0, cJSON_IsNumber(e) ? e->valuedouble : -1.0,
                 c->n_layers - 1);
      goto done;
    }
    a->reft_layer[(int)e->valuedouble] = true;
  }
  if (preft_st_open_dir_copied(&a->st, dir, "reft_model", err) != 0) goto done;
  a->checksum = a->st.checksum;
  int D = c->dim, R = (int)r, expected = 0;
  for (int l = 0; l < c->n_layers; l++) {
    if (!a->reft_layer[l]) continue;
    for (int s = 0; s < PREFT_REFT_SLOTS; s++) {
      bool want = a->reft_shared ? s == PREFT_REFT_SHARED : s != PREFT_REFT_SHARED;
      if (!want) continue;
      preft_reft_slot *slot = &a->reft[l * PREFT_REFT_SLOTS + s];
      slot->present = true;
      if (a->kind == PREFT_ADAPTER_LOREFT) {
        if (load_part(a, l, s, "rotate", R, D, &slot->rotate, err) != 0 ||
            load_part(a, l, s, "weight", R, D, &slot->weight, err) != 0 ||
            load_part(a, l, s, "bias", R, 0, &slot->bias, err) != 0)
          goto done;
        expected += 3;
      } else {
        if (load_part(a, l, s, "proj_down", R, D, &slot->weight, err) != 0 ||
            load_part(a, l, s, "bias", R, 0, &slot->bias, err) != 0 ||
            load_part(a, l, s, "proj_up", R, D, &slot->proj_up, err) != 0)
          goto done;
        expected += 3;
      }
    }
  }
  if (a->st.n_tensors != expected) {
    preft_fail(err,
               "%s: reft_model.safetensors holds %d tensors, the config needs %d (unexpected extra tensors)",
               dir, a->st.n_tensors, expected);
    goto done;
  }
  /* Weights were converted to FP32; the file's bytes are no longer needed. */
  preft_st_close(&a->st);
  rc = 0;
done:
  cJSON_Delete(root);
  free(path);
  return rc;
}
