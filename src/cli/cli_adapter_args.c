/* cli_adapter_args.c - the flags of the adapter a training command creates
 * (`train sft`, `train rl`): method, mode, rank, alpha, LoRA targets and
 * layers, ReFT positions (see cli.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "preft/train.h"

static int parse_kind(const char *method, preft_adapter_kind *kind) {
  if (!method) return -1;
  if (!strcmp(method, "lora"))
    *kind = PREFT_ADAPTER_LORA;
  else if (!strcmp(method, "loreft"))
    *kind = PREFT_ADAPTER_LOREFT;
  else if (!strcmp(method, "direft"))
    *kind = PREFT_ADAPTER_DIREFT;
  else
    return -1;
  return 0;
}

static int parse_targets(const char *cmd, const char *s, bool *mods) {
  static const char *names[] = {"q", "k", "v", "o", "gate", "up", "down"};
  memset(mods, 0, sizeof(bool) * PREFT_N_MODULES);
  char *copy = preft_xstrdup(s), *save = NULL;
  int rc = 0;
  for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    int found = -1;
    for (int m = 0; m < PREFT_N_MODULES; m++)
      if (!strcmp(t, names[m]) || !strcmp(t, preft_module_name((preft_module)m))) found = m;
    if (found < 0) {
      fprintf(stderr, "preft %s: --targets: unknown module '%s' (q,k,v,o,gate,up,down)\n", cmd, t);
      rc = -1;
      break;
    }
    mods[found] = true;
  }
  free(copy);
  return rc;
}

int cli_adapter_check(const char *cmd, const cli_adapter_args *a) {
  preft_adapter_kind kind;
  if (parse_kind(a->method, &kind) != 0) {
    fprintf(stderr, "preft %s: --method expects lora, loreft or direft\n", cmd);
    return -1;
  }
  int first, last;
  if (kind != PREFT_ADAPTER_LORA && preft_reft_positions_parse(a->positions, &first, &last) != 0) {
    fprintf(stderr, "preft %s: --positions expects fA+lB or all\n", cmd);
    return -1;
  }
  bool mods[PREFT_N_MODULES];
  return a->targets ? parse_targets(cmd, a->targets, mods) : 0;
}

int cli_adapter_opts(const char *cmd, const cli_adapter_args *a, const preft_model_config *cfg, uint64_t seed,
                     preft_train_adapter_opts *o, bool **layers) {
  memset(o, 0, sizeof *o);
  *layers = NULL;
  if (cli_adapter_check(cmd, a) != 0) return -1;
  parse_kind(a->method, &o->kind);
  o->mode = (preft_adapter_mode)a->mode;
  o->rank = (int)a->rank;
  o->positions = a->positions;
  o->share_weights = a->share;
  o->seed = seed;
  o->alpha = a->alpha > 0 ? a->alpha : 2.0 * (double)a->rank;
  for (int m = 0; m < PREFT_N_MODULES; m++) o->modules[m] = true;
  if (a->targets) parse_targets(cmd, a->targets, o->modules);
  if (!a->layers) return 0;
  bool *on = preft_xcalloc((size_t)cfg->n_layers, sizeof(bool));
  const char *p = a->layers;
  while (*p) {
    char *end;
    long v = strtol(p, &end, 10);
    if (end == p || (*end && *end != ',')) {
      fprintf(stderr, "preft %s: --layers: expected comma-separated indices, got '%s'\n", cmd, a->layers);
      free(on);
      return -1;
    }
    if (v < 0 || v >= cfg->n_layers) {
      fprintf(stderr, "preft %s: --layers: layer %ld outside [0, %d)\n", cmd, v, cfg->n_layers);
      free(on);
      return -1;
    }
    on[v] = true;
    p = *end == ',' ? end + 1 : end;
  }
  *layers = on;
  o->layers = on;
  return 0;
}
