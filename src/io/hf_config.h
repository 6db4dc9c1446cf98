/* hf_config.h - the model hyper-parameters of a Hugging Face decoder
 * (config.json) and its sampling defaults (generation_config.json).
 *
 * Supported: LlamaForCausalLM, Qwen2ForCausalLM, MistralForCausalLM (and the
 * matching model_type llama / qwen2 / mistral). Everything else, and any
 * setting that would change the math without preft implementing it (an
 * unknown rope type, Qwen2's sliding-window layers), is refused with an error
 * naming the field, never silently ignored.
 */
#ifndef PREFT_IO_HF_CONFIG_H
#define PREFT_IO_HF_CONFIG_H

#include <stdbool.h>

#include "base/error.h"
#include "preft/model.h" /* preft_model_config, preft_generation_config, preft_generation_config_load */
#include "tensor/dtype.h"

const char *preft_arch_name(preft_arch arch);

/* Reads DIR/config.json. */
int preft_config_load(preft_model_config *cfg, const char *dir, preft_error *err);
/* Parses config.json text already in memory (path used in messages). */
int preft_config_parse(preft_model_config *cfg, const char *json, const char *path, preft_error *err);
/* Writes cfg as a config.json Hugging Face loads (atomically). */
int preft_config_write(const preft_model_config *cfg, const char *path, preft_error *err);

#endif
