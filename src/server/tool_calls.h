/* tool_calls.h - tool calls in a chat model's output, per template family,
 * and the grammar that forces them (tool_choice "required" or a function).
 *
 *   hermes   (Qwen2.5 / Qwen3, Hermes): <tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>
 *            (any number, content around them)
 *   llama3   (Llama 3.1 / 3.2): the whole reply is {"name": ..., "parameters": {...}}
 *            (or "arguments"; several joined by ';'; an optional <|python_tag|> first)
 *   mistral  [TOOL_CALLS][{"name": ..., "arguments": {...}}, ...] (the marker is a
 *            special token, so the reply may also start at the '[')
 *
 * The family comes from the chat template's text (which markers it writes).
 * The parser is a stream: text goes in piece by piece as the model writes
 * it; content that cannot be part of a call is let out at once, a call is
 * let out whole once it is complete (its JSON parsed, its arguments
 * re-serialized compactly). Feeding the whole text at once parses a whole
 * reply. Text that looks like a call but does not parse stays content.
 *
 * For streaming, the call being written is also followed as it grows
 * (preft_srv_tool_stream_live): its name once the "name" string is whole,
 * and its arguments object as far as it is written, as the model writes
 * it less the blanks between JSON tokens, so a client can be sent the
 * arguments in pieces; the finished call then carries that text too
 * (srv_tool_call.streamed). */
#ifndef PREFT_SERVER_TOOL_CALLS_H
#define PREFT_SERVER_TOOL_CALLS_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"
#include "server/sse.h"

typedef enum { SRV_TOOL_HERMES = 0, SRV_TOOL_LLAMA3, SRV_TOOL_MISTRAL } srv_tool_family;

struct preft_server;
/* From the served tokenizer's chat template (hermes when there is none). */
srv_tool_family preft_srv_tool_family(const struct preft_server *s);
srv_tool_family preft_srv_tool_family_of_template(const char *chat_template);
const char *preft_srv_tool_family_name(srv_tool_family f);

/* GBNF for a reply that is tool calls only: one call of the function
 * `only` (non-NULL), or one or more (at most 8) calls of any of the tools.
 * Arguments follow each tool's "parameters" schema (any object without
 * one). Errors name the tool whose schema is refused. */
int preft_srv_tool_grammar(srv_tool_family f, const cJSON *tools, const char *only, char **gbnf,
                           preft_error *err);

typedef struct srv_tool_call {
  char *name;
  char *arguments; /* JSON text of an object */
  char *streamed;  /* the arguments object as the model wrote it (blanks out), when followed live; or NULL */
} srv_tool_call;

#define SRV_TOOL_LIVE_MAX 8 /* calls of one tag or one JSON reply followed live */

/* The calls of the text being parsed (a <tool_call> tag's, or a bare JSON
 * reply's), followed byte by byte: private but for the accessor below. */
typedef struct srv_tool_live {
  size_t pos; /* bytes of the call text scanned */
  int phase, key, depth;
  bool in_str, esc;
  int n; /* call objects begun */
  char *name[SRV_TOOL_LIVE_MAX];
  srv_buf args[SRV_TOOL_LIVE_MAX];
  int args_state[SRV_TOOL_LIVE_MAX]; /* 0 not yet, 1 being written, 2 whole, 3 not an object */
  bool closed[SRV_TOOL_LIVE_MAX];    /* the call's object has ended */
} srv_tool_live;

typedef struct srv_tool_stream {
  srv_tool_family fam;
  int state; /* private */
  srv_buf pending;
  srv_tool_call *calls; /* every call found so far */
  int n_calls, cap_calls;
  srv_tool_live live;
  int live_base; /* the index calls[] will give the first live call */
  int abandoned; /* times live calls turned out not to be calls (their text became content) */
} srv_tool_stream;

void preft_srv_tool_stream_init(srv_tool_stream *t, srv_tool_family fam);
/* Feeds text; content that is final is appended to content; complete calls
 * are appended to t->calls. */
void preft_srv_tool_stream_feed(srv_tool_stream *t, const char *text, size_t n, srv_buf *content);
/* The end of the reply: what is held back becomes calls or content. */
void preft_srv_tool_stream_finish(srv_tool_stream *t, srv_buf *content);
void preft_srv_tool_stream_free(srv_tool_stream *t);
/* The call that will be calls[index] once complete, while it is being
 * written: its name ("" while not known) and its arguments so far
 * (*args_len bytes, a prefix of what `streamed` will be; 0 while none, or
 * when they are not an object and will only come whole); *done when its
 * object has ended with its arguments whole (nothing more will come for it,
 * though it joins calls[] only when the whole reply or tag is parsed).
 * NULL when no call of that index is being written. */
const char *preft_srv_tool_stream_live(const srv_tool_stream *t, int index, const char **args,
                                       size_t *args_len, bool *done);

#endif
