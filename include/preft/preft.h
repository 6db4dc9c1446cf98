/* preft/preft.h - the public API of libpreft: serve, train and evaluate
 * per-user adapters (LoRA, ReFT) on Llama-family language models, on CPU.
 *
 * Include this one header; it includes the topic headers, each of which
 * starts with its own usage notes:
 *   preft/base.h       PREFT_API, preft_error, thread pool, log level
 *   preft/model.h      load a Hugging Face model directory; its config,
 *                      generation defaults; matmul precision
 *   preft/tokenizer.h  encode / decode / streaming decode, chat templates
 *   preft/adapter.h    LoRA and ReFT adapters: load, free, modes
 *   preft/generate.h   single-sequence generation, logits, scoring; sampling
 *   preft/engine.h     the serving engine: continuous batching of requests
 *                      with per-request adapters, callbacks, statistics
 *   preft/server.h     the OpenAI-compatible HTTP server over an engine
 *   preft/train.h      training: data sets, trainable model and adapter,
 *                      options, the training loop
 *
 * A minimal program (examples/embed.c and examples/train_lora.c are
 * complete ones):
 *
 *   #include <preft/preft.h>
 *
 *   static bool print_token(void *ctx, int token) { printf("%d\n", token); return true; }
 *
 *   int main(void) {
 *     preft_error err;
 *     preft_model *m;
 *     if (preft_model_load(&m, "models/llama", &err) != 0) { fprintf(stderr, "%s\n", err.msg); return 1; }
 *     preft_pool *pool = preft_pool_create(0);
 *     int prompt[] = {1, 15043};
 *     preft_generate_opts o = {.max_new_tokens = 8};  // temperature 0: greedy
 *     int n;
 *     int rc = preft_generate(m, pool, prompt, 2, &o, print_token, NULL, &n, &err);
 *     preft_pool_free(pool);
 *     preft_model_free(m);
 *     return rc ? 1 : 0;
 *   }
 *
 * Build against include/ and link libpreft.so (-lpreft) or the static
 * library. Conventions of every header: fallible calls return 0 (or a
 * documented non-negative value) and fill a caller-owned preft_error on
 * failure; each object has one owner and a create/load call paired with one
 * free; shapes are written in comments (N rows, D width, V vocabulary, ...).
 */
#ifndef PREFT_PUBLIC_PREFT_H
#define PREFT_PUBLIC_PREFT_H

#include "preft/adapter.h"
#include "preft/base.h"
#include "preft/engine.h"
#include "preft/generate.h"
#include "preft/model.h"
#include "preft/server.h"
#include "preft/tokenizer.h"
#include "preft/train.h"

#define PREFT_VERSION_MAJOR 0
#define PREFT_VERSION_MINOR 1
#define PREFT_VERSION_PATCH 0
#define PREFT_VERSION_STRING "0.1.0"

/* The version of the library linked at run time ("0.1.0"); compare with
 * PREFT_VERSION_STRING, the version of the headers compiled against. */
PREFT_API const char *preft_version(void);

#endif
