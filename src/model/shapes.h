/* shapes.h - the configs of well-known checkpoints (Qwen2.5-0.5B,
 * Llama-3.2-1B, ...), used to build random-weight models of real sizes for
 * benchmarks, and a tiny one for demos and tests. */
#ifndef PREFT_MODEL_SHAPES_H
#define PREFT_MODEL_SHAPES_H

#include "base/error.h"
#include "io/hf_config.h"

/* Fills cfg for a shape name; fails naming the known shapes. */
int preft_shape_config(const char *name, preft_model_config *cfg, preft_error *err);
/* Comma-separated list of the known names, for --help. */
const char *preft_shape_names(void);

#endif
