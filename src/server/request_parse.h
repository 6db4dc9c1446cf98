/* request_parse.h - OpenAI request bodies to typed requests, with errors in
 * OpenAI's shape.
 *
 * Every field a route reads is checked for its JSON type and range here; a
 * bad field gives a srv_api_error whose param names it (HTTP 400,
 * "invalid_request_error"). Fields this server cannot honour (best_of > n,
 * suffix, ...) are refused by name rather than
 * ignored, because ignoring them would silently change the output. Unknown
 * fields are ignored, as OpenAI-compatible servers do.
 *
 * Nothing here touches the engine or the tokenizer: model names, prompt
 * lengths against the context and token ids against the vocabulary are
 * checked by the routes (openai_routes.c), which know the model.
 */
#ifndef PREFT_SERVER_REQUEST_PARSE_H
#define PREFT_SERVER_REQUEST_PARSE_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/sse.h"

#define SRV_MAX_JSON_DEPTH 64
#define SRV_MAX_N 32        /* choices per prompt */
#define SRV_MAX_PROMPTS 64  /* prompts in one completions request */
#define SRV_MAX_CHOICES 128 /* prompts x n */
#define SRV_MAX_STOPS 16
#define SRV_MAX_STOP_LEN 256 /* bytes per stop string */
#define SRV_MAX_STOP_IDS 64
#define SRV_MAX_LOGIT_BIAS 1024 /* logit_bias entries */

typedef struct srv_api_error {
  int status;       /* HTTP status */
  const char *type; /* "invalid_request_error", "server_error", ... */
  const char *code; /* "model_not_found", ... or NULL */
  char param[64];   /* the offending field, "" for none */
  char message[1024];
} srv_api_error;

/* Fills e and returns -1. param may be NULL. */
int preft_srv_fail(srv_api_error *e, int status, const char *type, const char *code, const char *param,
                   const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* 400 invalid_request_error naming param. */
int preft_srv_bad(srv_api_error *e, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* {"error": {"message", "type", "param", "code"}} */
void preft_srv_error_json(const srv_api_error *e, srv_buf *out);

typedef enum { SRV_COMPLETION = 0, SRV_CHAT = 1 } srv_kind;

/* One completions prompt: text (to be tokenized) or token ids. */
typedef struct srv_prompt {
  char *text;
  int *ids;
  int n_ids;
} srv_prompt;

typedef struct srv_gen_request {
  srv_kind kind;
  char *model;      /* NULL when absent: the base model */
  int adapter_mode; /* -1: the adapter's default; else preft_adapter_mode */
  /* completions */
  srv_prompt *prompts;
  int n_prompts;
  /* chat: {"messages": [...], "tools": ..., chat_template_kwargs...} for the template */
  char *chat_json;
  bool add_generation_prompt;
  int n;
  bool stream, include_usage;
  int max_tokens; /* -1: not given; 0 only with echo (the prompt scored, nothing generated) */
  bool has_temperature, has_top_p, has_top_k, has_min_p, has_seed;
  double temperature, top_p, min_p;
  int top_k;
  uint64_t seed;
  char **stop;
  int n_stop;
  int *stop_token_ids;
  int n_stop_token_ids;
  int logprobs; /* -1: none; else alternatives per token (0..20) */
  bool ignore_eos, return_token_ids, skip_special_tokens;
  /* structured output and tool calls (request_guided.c) */
  char *grammar_text;            /* GBNF constraining every choice; NULL: none */
  char grammar_param[64];        /* the field it came from, named in errors */
  struct preft_grammar *grammar; /* grammar_text compiled (engine/grammar.h) */
  cJSON *tools;                  /* chat: the tools array; NULL: none */
  int tool_choice;               /* srv_tool_choice */
  char *tool_name;               /* SRV_TOOLS_NAMED: the function */
  /* logits processors (engine/penalties.h); 0, 0, 1, none, 0: off */
  double presence_penalty, frequency_penalty, repetition_penalty;
  int *bias_ids; /* logit_bias [n_bias] */
  float *bias;
  int n_bias;
  int min_tokens;
  /* completions: the prompt's text (and with logprobs its tokens) before
   * the completion; vLLM's prompt_logprobs (-1: none; else alternatives) */
  bool echo;
  int prompt_logprobs;
} srv_gen_request;

typedef enum { SRV_TOOLS_AUTO = 0, SRV_TOOLS_NONE, SRV_TOOLS_REQUIRED, SRV_TOOLS_NAMED } srv_tool_choice;

/* request_guided.c: response_format, guided_json / guided_regex /
 * guided_choice / guided_grammar / grammar (at most one of them), tools and
 * tool_choice. The GBNF is checked by compiling it (a 400 naming the field
 * when it or the schema is wrong). */
int preft_srv_parse_guided(const cJSON *root, srv_gen_request *r, srv_api_error *e);

/* Parses a whole body (len bytes, need not be NUL-terminated) into a JSON
 * object: malformed JSON, nesting deeper than SRV_MAX_JSON_DEPTH, or a
 * top-level value that is not an object give a 400. */
int preft_srv_parse_json_object(const char *body, size_t len, cJSON **out, srv_api_error *e);

/* /v1/completions (SRV_COMPLETION) or /v1/chat/completions (SRV_CHAT). */
int preft_srv_parse_gen_request(const char *body, size_t len, srv_kind kind, srv_gen_request *out,
                                srv_api_error *e);
void preft_srv_gen_request_free(srv_gen_request *r);

/* Typed optional fields of an object (absent or null: *present = false). */
int preft_srv_get_string(const cJSON *o, const char *name, bool required, const char **out, srv_api_error *e);

#endif
