/* engine.h - the serving engine: continuous batching of many requests, each
 * with its own adapter and mode, over one base model and a paged KV cache.
 * Every declaration is public: preft/engine.h (its comment describes the
 * scheduler, preemption, prefix caching and adapter loading). */
#ifndef PREFT_ENGINE_ENGINE_H
#define PREFT_ENGINE_ENGINE_H

#include "base/error.h"
#include "engine/sampler.h"
#include "model/adapter.h"
#include "model/llama.h"
#include "preft/engine.h"

#endif
