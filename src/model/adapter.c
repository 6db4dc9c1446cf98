/* adapter.c - what all adapters share: loading dispatch, modes, the per-row
 * flag rule, ReFT position strings (see adapter.h). */
#include "model/adapter.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/file.h"

int preft_lora_load(preft_adapter *a, const char *dir, const preft_model_config *cfg, preft_error *err);
int preft_reft_load(preft_adapter *a, const char *dir, const preft_model_config *cfg, preft_error *err);

const char *preft_module_name(preft_module m) {
  static const char *names[] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  return names[m];
}

const char *preft_module_parent(preft_module m) { return m <= PREFT_MOD_O ? "self_attn" : "mlp"; }

void preft_module_dims(const preft_model_config *c, preft_module m, int *in, int *out) {
  int qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
  switch (m) {
    case PREFT_MOD_Q:
      *in = c->dim, *out = qd;
      break;
    case PREFT_MOD_K:
    case PREFT_MOD_V:
      *in = c->dim, *out = kvd;
      break;
    case PREFT_MOD_O:
      *in = qd, *out = c->dim;
      break;
    case PREFT_MOD_GATE:
    case PREFT_MOD_UP:
      *in = c->dim, *out = c->ffn;
      break;
    default:
      *in = c->ffn, *out = c->dim;
      break;
  }
}

int preft_adapter_mode_parse(const char *s, preft_adapter_mode *out) {
  if (!strcmp(s, "all"))
    *out = PREFT_MODE_ALL;
  else if (!strcmp(s, "prefill"))
    *out = PREFT_MODE_PREFILL;
  else
    return -1;
  return 0;
}

const char *preft_adapter_mode_name(preft_adapter_mode m) {
  return m == PREFT_MODE_PREFILL ? "prefill" : "all";
}

static int parse_count(const char **p, int *out) {
  char *end;
  errno = 0;
  long v = strtol(*p, &end, 10);
  if (end == *p || errno || v < 0 || v > INT_MAX || **p == '-' || **p == '+') return -1;
  *out = (int)v;
  *p = end;
  return 0;
}

int preft_reft_positions_parse(const char *s, int *first, int *last) {
  if (!strcmp(s, "all")) {
    *first = *last = -1;
    return 0;
  }
  int f = 0, l = 0, seen_f = 0, seen_l = 0;
  const char *p = s;
  while (*p) {
    char which = *p++;
    int v;
    if ((which != 'f' && which != 'l') || parse_count(&p, &v) != 0) return -1;
    if (which == 'f') {
      if (seen_f++) return -1;
      f = v;
    } else {
      if (seen_l++) return -1;
      l = v;
    }
    if (*p == '+') {
      p++;
      if (!*p) return -1;
    } else if (*p) {
      return -1;
    }
  }
  if (!seen_f && !seen_l) return -1;
  *first = f;
  *last = l;
  return 0;
}

preft_adapt_flag preft_positions_row_flag(int first, int last, bool shared, preft_adapter_mode mode, int pos,
                                          int prompt_len) {
  bool in_prompt = pos < prompt_len;
  if (first < 0) return in_prompt || mode == PREFT_MODE_ALL ? PREFT_ADAPT_ON : PREFT_ADAPT_OFF;
  /* fA+lB: prompt positions only, in either mode (pyreft's rule). */
  if (!in_prompt) return PREFT_ADAPT_OFF;
  int half = prompt_len / 2;
  int nf = first < half ? first : half, nl = last < half ? last : half;
  if (pos < nf) return shared ? PREFT_ADAPT_ON : PREFT_ADAPT_FIRST;
  if (pos >= prompt_len - nl) return shared ? PREFT_ADAPT_ON : PREFT_ADAPT_LAST;
  return PREFT_ADAPT_OFF;
}

preft_adapt_flag preft_adapter_row_flag(const preft_adapter *a, preft_adapter_mode mode, int pos,
                                        int prompt_len) {
  if (!a) return PREFT_ADAPT_OFF;
  bool every_row = a->kind == PREFT_ADAPTER_LORA || a->reft_first < 0;
  return preft_positions_row_flag(every_row ? -1 : a->reft_first, a->reft_last, a->reft_shared, mode, pos,
                                  prompt_len);
}

size_t preft_adapter_memory_bound(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return 0;
  size_t total = 0;
  for (struct dirent *ent; (ent = readdir(d));) {
    size_t n = strlen(ent->d_name);
    static const char ext[] = ".safetensors";
    if (n < sizeof ext || strcmp(ent->d_name + n - (sizeof ext - 1), ext) != 0) continue;
    char *path = preft_path_join(dir, ent->d_name);
    struct stat st;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) total += (size_t)st.st_size;
    free(path);
  }
  closedir(d);
  return 2 * total;
}

static int load(preft_adapter **out, const char *dir, const char *name, const preft_model_config *cfg,
                bool check_only, preft_error *err) {
  preft_adapter *a = preft_xcalloc(1, sizeof *a);
  a->check_only = check_only;
  a->path = preft_xstrdup(dir);
  const char *base = strrchr(dir, '/');
  a->name = preft_xstrdup(name ? name : base && base[1] ? base + 1 : dir);
  a->n_layers = cfg->n_layers;
  a->dim = cfg->dim;
  char *lora_cfg = preft_path_join(dir, "adapter_config.json");
  char *reft_cfg = preft_path_join(dir, "reft_config.json");
  int rc;
  if (preft_file_exists(lora_cfg))
    rc = preft_lora_load(a, dir, cfg, err);
  else if (preft_file_exists(reft_cfg))
    rc = preft_reft_load(a, dir, cfg, err);
  else
    rc = preft_fail(err, "%s: neither adapter_config.json (LoRA) nor reft_config.json (ReFT) found", dir);
  free(lora_cfg);
  free(reft_cfg);
  if (rc != 0) {
    preft_fail_prefix(err, "adapter %s", a->name);
    preft_adapter_free(a);
    return -1;
  }
  if (check_only)
    preft_adapter_free(a);
  else
    *out = a;
  return 0;
}

int preft_adapter_load(preft_adapter **out, const char *dir, const char *name, const preft_model_config *cfg,
                       preft_error *err) {
  return load(out, dir, name, cfg, false, err);
}

int preft_adapter_check(const char *dir, const char *name, const preft_model_config *cfg, preft_error *err) {
  return load(NULL, dir, name, cfg, true, err);
}

void preft_adapter_free(preft_adapter *a) {
  if (!a) return;
  if (a->reft) {
    for (int i = 0; i < a->n_layers * PREFT_REFT_SLOTS; i++) {
      free(a->reft[i].rotate);
      free(a->reft[i].weight);
      free(a->reft[i].bias);
      free(a->reft[i].proj_up);
    }
  }
  free(a->reft);
  free(a->reft_layer);
  free(a->lora);
  free(a->lora_bt);
  preft_st_close(&a->st);
  free(a->name);
  free(a->path);
  free(a);
}
