/* peft_lora.c - PEFT's rules for which modules a LoRA directory adapts
 * (see peft_lora.h), shared by the decoder (lora_load.c) and the BERT
 * encoder (bert_lora.c):
 *   - target_modules as a list: module key == name or ends with ".name";
 *     as a string: a regex that must match the whole key ("all-linear":
 *     every candidate module).
 *   - layers_to_transform (int or non-empty list) restricts the layer
 *     indices of name-suffix matches; it may not accompany a regex.
 *   - rank_pattern / alpha_pattern: the first pattern p whose regex
 *     "(.*\.)?(p)$" matches the key overrides r / lora_alpha for that module.
 *   - scale = alpha / r, or alpha / sqrt(r) with use_rslora.
 * What would change the math without preft implementing it is refused:
 * DoRA, modules_to_save, LoRA biases, LoRA on embeddings or the LM head, and
 * an adapter that matches no module. fan_in_fan_out only matters for GPT-2
 * style Conv1D layers; PEFT itself ignores it on Linear layers, and so does
 * preft (with a warning). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "model/peft_lora.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "base/log.h"
#include "io/json_util.h"

/* Does the regex match the whole subject? -1 when the pattern does not compile. */
static int regex_full_match(const char *pattern, const char *subject) {
  int code;
  PCRE2_SIZE off;
  pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &code, &off, NULL);
  if (!re) return -1;
  pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
  int rc =
      pcre2_match(re, (PCRE2_SPTR)subject, strlen(subject), 0, PCRE2_ANCHORED | PCRE2_ENDANCHORED, md, NULL);
  pcre2_match_data_free(md);
  pcre2_code_free(re);
  return rc >= 0 ? 1 : 0;
}

static bool ends_with_component(const char *key, const char *name) {
  size_t k = strlen(key), n = strlen(name);
  if (k == n) return !strcmp(key, name);
  return k > n && key[k - n - 1] == '.' && !strcmp(key + k - n, name);
}

typedef struct {
  const cJSON *targets; /* array or string */
  const cJSON *layers;  /* NULL, number or array */
  const cJSON *rank_pattern, *alpha_pattern;
  int r;
  double alpha;
  bool rslora;
  const char *path;
} lora_rules;

/* PEFT's rule: a regex must match the whole key; a list entry equal to the
 * key selects it outright (layers_to_transform is not consulted), an entry
 * that is the key's last dotted component(s) selects it subject to
 * layers_to_transform. *exact reports the first kind of match. */
static int target_matches(const lora_rules *r, const char *key, bool *out, bool *exact, preft_error *err) {
  *exact = false;
  if (cJSON_IsString(r->targets)) {
    if (!strcmp(r->targets->valuestring, "all-linear")) {
      *out = true;
      return 0;
    }
    int m = regex_full_match(r->targets->valuestring, key);
    if (m < 0)
      return preft_fail(err, "%s: field \"target_modules\" is not a valid regex: %s", r->path,
                        r->targets->valuestring);
    *out = m == 1;
    return 0;
  }
  *out = false;
  const cJSON *t;
  cJSON_ArrayForEach(t, r->targets) {
    if (!strcmp(key, t->valuestring))
      *out = *exact = true;
    else if (ends_with_component(key, t->valuestring))
      *out = true;
  }
  return 0;
}

/* Does layers_to_transform (checked by check_config: absent, an integer or
 * a list of integers) select layer? Compared as doubles: any number is
 * in range there. */
static bool layer_selected(const lora_rules *r, int layer) {
  if (!r->layers || (cJSON_IsArray(r->layers) && cJSON_GetArraySize(r->layers) == 0)) return true;
  if (cJSON_IsNumber(r->layers)) return r->layers->valuedouble == (double)layer;
  const cJSON *e;
  cJSON_ArrayForEach(e, r->layers) if (e->valuedouble == (double)layer) return true;
  return false;
}

/* Is v a JSON number that is an integer in [lo, hi]? */
static bool is_int_in(const cJSON *v, double lo, double hi) {
  return cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble) && v->valuedouble >= lo &&
         v->valuedouble <= hi;
}

/* The pattern entry overriding `key`, or NULL. */
static const cJSON *pattern_for(const cJSON *patterns, const char *key) {
  const cJSON *e;
  cJSON_ArrayForEach(e, patterns) {
    size_t n = strlen(e->string) + 16;
    char *re = preft_xmalloc(n);
    snprintf(re, n, "(.*\\.)?(%s)", e->string);
    int m = regex_full_match(re, key);
    free(re);
    if (m == 1) return e;
  }
  return NULL;
}

static int check_config(const cJSON *root, const char *path, lora_rules *r, preft_error *err) {
  const char *s;
  bool b;
  long rank;
  if (preft_json_str(root, path, "peft_type", false, &s, err) != 0) return -1;
  if (s && strcmp(s, "LORA") != 0) return preft_fail(err, "%s: peft_type \"%s\" is not LORA", path, s);
  if (preft_json_int(root, path, "r", true, 1, 1 << 16, 8, &rank, err) != 0)
    return preft_fail_prefix(err, "LoRA rank");
  r->r = (int)rank;
  if (preft_json_num(root, path, "lora_alpha", false, 8.0, &r->alpha, err) != 0) return -1;
  if (preft_json_bool(root, path, "use_rslora", false, &r->rslora, err) != 0) return -1;
  if (preft_json_bool(root, path, "use_dora", false, &b, err) != 0) return -1;
  if (b) return preft_fail(err, "%s: DoRA (use_dora: true) is not supported", path);
  const cJSON *mts = cJSON_GetObjectItemCaseSensitive(root, "modules_to_save");
  if (mts && !cJSON_IsNull(mts) && !(cJSON_IsArray(mts) && cJSON_GetArraySize(mts) == 0))
    return preft_fail(err, "%s: modules_to_save (fully trained extra modules) is not supported", path);
  if (preft_json_str(root, path, "bias", false, &s, err) != 0) return -1;
  if (s && strcmp(s, "none") != 0)
    return preft_fail(err, "%s: bias \"%s\" is not supported (only \"none\")", path, s);
  if (preft_json_bool(root, path, "fan_in_fan_out", false, &b, err) != 0) return -1;
  if (b) PREFT_WARN("%s: fan_in_fan_out ignored: the targets are Linear layers (PEFT does the same)", path);
  r->targets = cJSON_GetObjectItemCaseSensitive(root, "target_modules");
  if (!r->targets || cJSON_IsNull(r->targets))
    return preft_fail(err, "%s: missing field \"target_modules\"", path);
  if (cJSON_IsArray(r->targets)) {
    const cJSON *t;
    cJSON_ArrayForEach(t, r->targets) {
      if (!cJSON_IsString(t)) return preft_fail(err, "%s: target_modules must hold strings", path);
      if (!strcmp(t->valuestring, "embed_tokens") || !strcmp(t->valuestring, "lm_head"))
        return preft_fail(err, "%s: LoRA on %s is not supported (only the attention and MLP projections)",
                          path, t->valuestring);
    }
  } else if (!cJSON_IsString(r->targets)) {
    return preft_fail(err, "%s: target_modules must be a list of names or a regex string", path);
  } else if (strcmp(r->targets->valuestring, "all-linear") != 0 &&
             (regex_full_match(r->targets->valuestring, "model.embed_tokens") == 1 ||
              regex_full_match(r->targets->valuestring, "lm_head") == 1)) {
    return preft_fail(
        err, "%s: target_modules selects embed_tokens or lm_head, which LoRA in preft does not support",
        path);
  }
  r->layers = cJSON_GetObjectItemCaseSensitive(root, "layers_to_transform");
  if (r->layers && cJSON_IsNull(r->layers)) r->layers = NULL;
  if (r->layers && !cJSON_IsNumber(r->layers) && !cJSON_IsArray(r->layers))
    return preft_fail(err, "%s: layers_to_transform must be an integer or a list", path);
  if (r->layers) {
    const cJSON *e;
    bool ok = is_int_in(r->layers, 0, INT_MAX);
    if (cJSON_IsArray(r->layers)) {
      ok = true;
      cJSON_ArrayForEach(e, r->layers) ok = ok && is_int_in(e, 0, INT_MAX);
    }
    if (!ok) return preft_fail(err, "%s: layers_to_transform must hold non-negative integers", path);
  }
  if (r->layers && cJSON_IsString(r->targets) &&
      !(cJSON_IsArray(r->layers) && cJSON_GetArraySize(r->layers) == 0))
    return preft_fail(
        err, "%s: layers_to_transform cannot be used when target_modules is a regex string (as in PEFT)",
        path);
  r->rank_pattern = cJSON_GetObjectItemCaseSensitive(root, "rank_pattern");
  r->alpha_pattern = cJSON_GetObjectItemCaseSensitive(root, "alpha_pattern");
  const cJSON *pats[2] = {r->rank_pattern, r->alpha_pattern};
  for (int i = 0; i < 2; i++) {
    const cJSON *e;
    if (pats[i] && !cJSON_IsNull(pats[i]) && !cJSON_IsObject(pats[i]))
      return preft_fail(err, "%s: %s must be an object", path, i ? "alpha_pattern" : "rank_pattern");
    cJSON_ArrayForEach(e, pats[i]) {
      bool ok =
          i ? cJSON_IsNumber(e) && e->valuedouble > 0 && isfinite(e->valuedouble) : is_int_in(e, 1, 1 << 16);
      if (!ok)
        return preft_fail(err, "%s: %s entry \"%s\" must be a positive %s", path,
                          i ? "alpha_pattern" : "rank_pattern", e->string,
                          i ? "number" : "integer up to 65536");
    }
  }
  return 0;
}

/* Finds lora_{A,B} of module key, in either saved naming. */
static const preft_st_tensor *find_lora_tensor(const preft_st_set *st, const char *key, char which,
                                               char *name, size_t name_size) {
  snprintf(name, name_size, "base_model.model.%s.lora_%c.weight", key, which);
  const preft_st_tensor *t = preft_st_find(st, name);
  if (t) return t;
  char alt[256];
  snprintf(alt, sizeof alt, "base_model.model.%s.lora_%c.default.weight", key, which);
  t = preft_st_find(st, alt);
  return t;
}

static int check_shape(const preft_st_set *st, const preft_st_tensor *t, const char *name, int d0, int d1,
                       preft_error *err) {
  if (t->ndim != 2 || t->shape[0] != d0 || t->shape[1] != d1)
    return preft_fail(err, "%s: tensor %s has shape [%lld, %lld], expected [%d, %d]", preft_st_file_of(st, t),
                      name, (long long)t->shape[0], (long long)(t->ndim > 1 ? t->shape[1] : 0), d0, d1);
  return 0;
}

int preft_peft_lora_open(preft_peft_lora *p, const char *dir, bool map_only, preft_error *err) {
  memset(p, 0, sizeof *p);
  p->config_path = preft_path_join(dir, "adapter_config.json");
  lora_rules r = {.path = p->config_path};
  if (preft_json_load(p->config_path, &p->config, err) != 0 ||
      check_config(p->config, p->config_path, &r, err) != 0)
    goto fail;
  char *st_single = preft_path_join(dir, "adapter_model.safetensors"),
       *bin = preft_path_join(dir, "adapter_model.bin");
  bool only_bin = !preft_file_exists(st_single) && preft_file_exists(bin);
  free(st_single);
  free(bin);
  if (only_bin) {
    preft_fail(err, "%s: adapter_model.bin (a PyTorch pickle) is not read; save the adapter with safetensors",
               dir);
    goto fail;
  }
  /* read into memory, not mapped: a loaded adapter must not change (or
   * fault) when its files are rewritten or truncated while it serves */
  if ((map_only ? preft_st_open_dir(&p->st, dir, "adapter_model", err)
                : preft_st_open_dir_copied(&p->st, dir, "adapter_model", err)) != 0)
    goto fail;
  return 0;
fail:
  preft_peft_lora_close(p);
  return -1;
}

void preft_peft_lora_close(preft_peft_lora *p) {
  cJSON_Delete(p->config);
  free(p->config_path);
  preft_st_close(&p->st);
  memset(p, 0, sizeof *p);
}

int preft_peft_lora_match(const preft_peft_lora *p, preft_peft_target *tg, int n, preft_error *err) {
  lora_rules r = {.path = p->config_path};
  if (check_config(p->config, p->config_path, &r, err) != 0) return -1;
  int n_adapted = 0;
  for (int i = 0; i < n; i++) {
    preft_peft_target *t = &tg[i];
    t->a = t->b = NULL;
    t->rank = 0;
    t->scale = 0;
    char name[256];
    bool hit = false, exact = false;
    if (target_matches(&r, t->key, &hit, &exact, err) != 0) return -1;
    if (!hit || (!exact && !layer_selected(&r, t->layer))) continue;
    const cJSON *rp = pattern_for(r.rank_pattern, t->key), *ap = pattern_for(r.alpha_pattern, t->key);
    int rank = rp ? (int)rp->valuedouble : r.r;
    double alpha = ap ? ap->valuedouble : r.alpha;
    for (int w = 0; w < 2; w++) {
      const preft_st_tensor *x = find_lora_tensor(&p->st, t->key, w ? 'B' : 'A', name, sizeof name);
      if (!x) {
        char files[PATH_MAX + 32];
        return preft_fail(err, "%s: tensor %s (lora_%c of targeted module %s) is missing",
                          preft_st_files_desc(&p->st, files, sizeof files), name, w ? 'B' : 'A', t->key);
      }
      if (check_shape(&p->st, x, x->name, w ? t->out : rank, w ? rank : t->in, err) != 0) return -1;
      if (w)
        t->b = x;
      else
        t->a = x;
    }
    t->rank = rank;
    t->scale = (float)(r.rslora ? alpha / sqrt((double)rank) : alpha / rank);
    n_adapted++;
  }
  if (n_adapted == 0)
    return preft_fail(err, "%s: target_modules/layers_to_transform matched no module of the model",
                      p->config_path);
  /* every tensor in the files must belong to an adapted module */
  for (int i = 0; i < p->st.n_tensors; i++) {
    const preft_st_tensor *x = &p->st.tensors[i];
    if (strstr(x->name, "embed_tokens") || strstr(x->name, "lm_head"))
      return preft_fail(err, "tensor %s: LoRA on embed_tokens or lm_head is not supported", x->name);
    bool used = false;
    for (int k = 0; k < n && !used; k++) used = tg[k].rank > 0 && (tg[k].a == x || tg[k].b == x);
    if (!used)
      return preft_fail(err,
                        "%s: tensor %s does not belong to any module selected by target_modules/"
                        "layers_to_transform in adapter_config.json",
                        preft_st_file_of(&p->st, x), x->name);
  }
  return 0;
}
