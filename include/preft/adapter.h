/* preft/adapter.h - per-user adapters of a base model: LoRA (PEFT
 * directories) and ReFT (LoReFT, DiReFT; preft's format, docs/REFT_FORMAT.md),
 * and the two modes that say where an adapter applies.
 *
 *   preft_adapter *a;
 *   if (preft_adapter_load(&a, "adapters/alice", "alice", preft_model_get_config(m), &err) != 0)
 *     fprintf(stderr, "%s\n", err.msg);
 *   ...  // preft_generate_opts.adapter = a (preft/generate.h), or hand it to an
 *        // engine with preft_engine_add_loaded_adapter (preft/engine.h)
 *   preft_adapter_free(a);
 *
 * Modes:
 *   all-token ("all"): LoRA on every row; ReFT at its positions (fA+lB:
 *     prompt positions only; "all": every row, generated ones included);
 *   prefill-only ("prefill"): only prompt rows; generated tokens run the base
 *     model and see the adapter only through the prompt's keys and values.
 *
 * Loading validates every shape against the base model's config and follows
 * PEFT's matching rules (target list or regex, layers_to_transform,
 * rank_pattern / alpha_pattern, rsLoRA); what would change the math without
 * preft implementing it (DoRA, modules_to_save, LoRA biases, embeddings) is
 * refused with an error naming the adapter and field.
 *
 * Ownership: an adapter is read-only after loading and may be used by many
 * threads at once; it must outlive every generation that uses it, and an
 * engine given one with preft_engine_add_loaded_adapter frees it itself.
 */
#ifndef PREFT_PUBLIC_ADAPTER_H
#define PREFT_PUBLIC_ADAPTER_H

#include "preft/base.h"
#include "preft/model.h"

typedef enum { PREFT_ADAPTER_LORA, PREFT_ADAPTER_LOREFT, PREFT_ADAPTER_DIREFT } preft_adapter_kind;
typedef enum { PREFT_MODE_ALL = 0, PREFT_MODE_PREFILL = 1 } preft_adapter_mode;

/* The seven linear modules of a decoder layer, in PEFT's names (LoRA
 * targets). */
typedef enum {
  PREFT_MOD_Q,
  PREFT_MOD_K,
  PREFT_MOD_V,
  PREFT_MOD_O,
  PREFT_MOD_GATE,
  PREFT_MOD_UP,
  PREFT_MOD_DOWN,
  PREFT_N_MODULES
} preft_module;

typedef struct preft_adapter preft_adapter;

/* Loads a PEFT LoRA directory (adapter_config.json) or a ReFT directory
 * (reft_config.json) for a base model of config cfg, validating every
 * shape. name is how messages and the engine call it. The error names the
 * adapter, the tensor or field, and what was expected. */
PREFT_API int preft_adapter_load(preft_adapter **out, const char *dir, const char *name,
                                 const preft_model_config *cfg, preft_error *err);
PREFT_API void preft_adapter_free(preft_adapter *a);

/* Parses "all" | "prefill"; -1 for anything else. */
PREFT_API int preft_adapter_mode_parse(const char *s, preft_adapter_mode *out);
PREFT_API const char *preft_adapter_mode_name(preft_adapter_mode m);

#endif
