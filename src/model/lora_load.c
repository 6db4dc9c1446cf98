/* lora_load.c - a PEFT LoRA directory on the decoder: peft_lora.c applies
 * PEFT's rules to the decoder's modules, keyed
 * "model.layers.<l>.{self_attn,mlp}.<q_proj ... down_proj>" ("all-linear":
 * all seven projections); the adapter keeps the files' bytes (A, B) and
 * gets lora_B transposed for the kernels. The PEFT-only field preft_mode
 * ("all" or "prefill") sets the adapter's default mode. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/json_util.h"
#include "model/adapter.h"
#include "model/peft_lora.h"

int preft_lora_load(preft_adapter *a, const char *dir, const preft_model_config *cfg, preft_error *err);

int preft_lora_load(preft_adapter *a, const char *dir, const preft_model_config *c, preft_error *err) {
  preft_peft_lora p;
  if (preft_peft_lora_open(&p, dir, a->check_only, err) != 0) return -1;
  int rc = -1, n = c->n_layers * PREFT_N_MODULES;
  preft_peft_target *tg = preft_xcalloc((size_t)n, sizeof *tg);
  const char *mode = NULL;
  if (preft_json_str(p.config, p.config_path, "preft_mode", false, &mode, err) != 0) goto done;
  a->kind = PREFT_ADAPTER_LORA;
  a->default_mode = PREFT_MODE_ALL;
  if (mode && preft_adapter_mode_parse(mode, &a->default_mode) != 0) {
    preft_fail(err, "%s: field \"preft_mode\" must be \"all\" or \"prefill\", got \"%s\"", p.config_path,
               mode);
    goto done;
  }
  for (int l = 0; l < c->n_layers; l++)
    for (int m = 0; m < PREFT_N_MODULES; m++) {
      preft_peft_target *t = &tg[l * PREFT_N_MODULES + m];
      snprintf(t->key, sizeof t->key, "model.layers.%d.%s.%s", l, preft_module_parent(m),
               preft_module_name(m));
      t->layer = l;
      preft_module_dims(c, (preft_module)m, &t->in, &t->out);
    }
  if (preft_peft_lora_match(&p, tg, n, err) != 0) goto done;
  a->st = p.st; /* the adapter keeps the files; A and B point into them */
  memset(&p.st, 0, sizeof p.st);
  a->checksum = a->st.checksum;
  a->lora = preft_xcalloc((size_t)n, sizeof *a->lora);
  for (int i = 0; i < n; i++) {
    if (tg[i].rank == 0) continue;
    preft_lora_module *lm = &a->lora[i];
    lm->a = tg[i].a->data;
    lm->a_dtype = tg[i].a->dtype;
    lm->b = tg[i].b->data;
    lm->b_dtype = tg[i].b->dtype;
    lm->rank = tg[i].rank;
    lm->scale = tg[i].scale;
    a->max_rank = lm->rank > a->max_rank ? lm->rank : a->max_rank;
  }
  if (!a->check_only) preft_lora_prepare(a, c);   /* (the check does not touch the weights) */
  a->bytes = a->st.file_bytes + a->lora_bt_bytes; /* the files' copy (A, B) and Bt */
  rc = 0;
done:
  free(tg);
  preft_peft_lora_close(&p);
  return rc;
}
