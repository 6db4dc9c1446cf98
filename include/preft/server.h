/* preft/server.h - preft's OpenAI-compatible HTTP server over a serving
 * engine (libmicrohttpd, one thread per connection).
 *
 * Endpoints (docs/SERVING.md has the details):
 *   POST /v1/completions, POST /v1/chat/completions   (stream: true = SSE)
 *   GET  /v1/models, GET /v1/models/{id}
 *   POST /v1/load_lora_adapter, POST /v1/unload_lora_adapter   (vLLM's)
 *   GET  /health, GET /metrics (Prometheus text)
 *   POST /tokenize, POST /detokenize, GET /version   (vLLM's)
 *   POST /v1/embeddings   (mean-pooled last hidden state)
 *   GET  /   a chat page;   OPTIONS *   CORS preflight (--cors-origin)
 *
 * Usage:
 *   preft_server *s;
 *   preft_server_config c = {.host = "127.0.0.1", .port = 8080, .model_name = "m"};
 *   if (preft_server_start(&s, engine, tok, &gen, &c, &err)) ...
 *   ... wait for SIGTERM ...
 *   preft_server_drain(s, 30.0);  // 503 for new work, in-flight finishes
 *   preft_server_stop(s);         // closes connections, frees the server
 *
 * The server borrows the engine and the tokenizer (either may outlive it;
 * the tokenizer may be NULL: prompts are then token ids only).
 */
#ifndef PREFT_PUBLIC_SERVER_H
#define PREFT_PUBLIC_SERVER_H

#include <stddef.h>

#include "preft/base.h"
#include "preft/engine.h"
#include "preft/model.h" /* preft_generation_config */
#include "preft/tokenizer.h"

typedef struct preft_server preft_server;

typedef struct preft_server_config {
  const char *host;       /* address to bind; NULL: 127.0.0.1 */
  int port;               /* 0: any free port (see preft_server_port) */
  const char *api_key;    /* NULL: no authentication */
  const char *model_name; /* the base model's id in the API */
  size_t max_body;        /* bytes; 0: 8 MiB */
  int max_connections;    /* 0: 1024; past it the longest-reading connection is evicted */
  int header_timeout_s;   /* a request's headers must arrive within this; 0: 10 */
  int body_timeout_s;     /* its body within this after the headers; 0: 60 */
  int idle_timeout_s;     /* an idle keep-alive connection is closed after this; 0: 30 */
  int max_context;        /* the engine's per-sequence context (prompt + generated) */
  /* vLLM's runtime load/unload endpoints: NULL = off (404); else lora_path
   * must name a directory inside this one */
  const char *adapter_root;
  /* origins browsers may call from (CORS), e.g. "http://localhost:3000";
   * "*" allows any; none: no CORS headers */
  const char *const *cors_origins;
  int n_cors_origins;
  /* an encoder (BERT, src/model/bert.h) served for /v1/embeddings only
   * (its pooled output): then engine is NULL, the generation endpoints
   * answer 400 and there are no adapters. Borrowed. */
  const struct preft_bert *encoder;
} preft_server_config;

/* Starts listening. gen gives the sampling defaults and end-of-sequence ids
 * (may be NULL: greedy, the model config's EOS ids only). engine may be
 * NULL when cfg->encoder is set. */
PREFT_API int preft_server_start(preft_server **out, preft_engine *engine, const preft_tokenizer *tok,
                                 const preft_generation_config *gen, const preft_server_config *cfg,
                                 preft_error *err);
/* The port actually bound. */
PREFT_API int preft_server_port(const preft_server *s);
/* Stops accepting connections, answers new requests on open connections
 * with 503, and waits up to timeout_s for the requests in flight to finish
 * and their responses to be written; then cancels what is left and waits
 * for it. Returns the number of requests it had to cancel. */
PREFT_API int preft_server_drain(preft_server *s, double timeout_s);
/* Closes every connection and frees the server (drain first for a graceful stop). */
PREFT_API void preft_server_stop(preft_server *s);

#endif
