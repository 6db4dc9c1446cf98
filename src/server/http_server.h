/* http_server.h - preft's OpenAI-compatible HTTP server over a serving
 * engine. Every declaration is public: preft/server.h. The routes' shared
 * internals are in server/server_int.h. */
#ifndef PREFT_SERVER_HTTP_SERVER_H
#define PREFT_SERVER_HTTP_SERVER_H

#include "base/error.h"
#include "engine/engine.h"
#include "io/hf_config.h"
#include "preft/server.h"
#include "text/tokenizer.h"

#endif
