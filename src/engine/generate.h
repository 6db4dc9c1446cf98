/* generate.h - single-sequence generation on top of the batched forward
 * pass: prefill the prompt in chunks, then decode token by token. The
 * serving engine batches many sequences; this is the plain path used by
 * `preft generate` and `preft logits`, and the reference the engine's
 * outputs are compared with. Every declaration is public:
 * preft/generate.h. */
#ifndef PREFT_ENGINE_GENERATE_H
#define PREFT_ENGINE_GENERATE_H

#include "engine/sampler.h"
#include "model/llama.h"
#include "preft/generate.h"

#endif
