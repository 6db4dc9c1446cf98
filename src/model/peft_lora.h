/* peft_lora.h - a Hugging Face PEFT LoRA directory (adapter_config.json,
 * adapter_model.safetensors) matched against the linear modules of a
 * model by PEFT's rules (peft_lora.c): the decoder's adapters
 * (lora_load.c) and the BERT encoder's (bert_lora.c) read it alike.
 *
 * Tensors are named "base_model.model.<key>.lora_{A,B}.weight" (or with
 * ".default" before ".weight"), A [R, in], B [out, R], where <key> is the
 * module's name in the model PEFT wrapped, e.g.
 * "model.layers.3.self_attn.q_proj" or "encoder.layer.0.attention.self.query".
 */
#ifndef PREFT_MODEL_PEFT_LORA_H
#define PREFT_MODEL_PEFT_LORA_H

#include <stdbool.h>

#include "base/error.h"
#include "io/safetensors.h"

struct cJSON;

typedef struct preft_peft_lora {
  char *config_path;    /* DIR/adapter_config.json, for messages */
  struct cJSON *config; /* its contents (fields a caller reads itself) */
  preft_st_set st;      /* adapter_model*.safetensors */
} preft_peft_lora;

/* A module the adapter may adapt: its key, layer (for
 * layers_to_transform) and widths; preft_peft_lora_match fills the rest. */
typedef struct preft_peft_target {
  char key[160];
  int layer, in, out;
  const preft_st_tensor *a, *b; /* lora_A [rank, in], lora_B [out, rank] in st */
  int rank;                     /* 0: not adapted */
  float scale;                  /* alpha / rank (alpha / sqrt(rank) with rsLoRA) */
} preft_peft_target;

/* Reads and checks the config, opens the weights: read into memory, or only
 * mapped with map_only (validation without touching the weights). A
 * pickle-only adapter (adapter_model.bin) is refused. */
int preft_peft_lora_open(preft_peft_lora *p, const char *dir, bool map_only, preft_error *err);
/* Fills the n targets; fails naming the tensor that a targeted module lacks
 * or has in another shape, a tensor no targeted module claims, or an
 * adapter that targets none. */
int preft_peft_lora_match(const preft_peft_lora *p, preft_peft_target *t, int n, preft_error *err);
/* Frees the config and closes st (a caller that keeps st moves it out and
 * zeroes p->st first). */
void preft_peft_lora_close(preft_peft_lora *p);

#endif
