/* terminus_int.h - the parts of the terminus agent (agent.h), one file each:
 *
 *   terminus_reply.c   the model's JSON reply: found in surrounding text or a
 *                      ```json fence, checked field by field
 *   terminus_prompt.c  the text the model reads: system prompt, first
 *                      instruction, observations, confirmations, errors
 *   terminus_pane.c    pane text: trimming, head+tail truncation, what is new
 *                      since the last look
 *   terminus_conv.c    the conversation: token estimates, trimming to the
 *                      context, the request body
 *   terminus_chat.c    one chat completion through the libcurl client
 *   terminus_cast.c    the asciicast v2 recording of the pane
 *   terminus_tmux.c    the tmux session inside the sandbox
 *   terminus.c         the loop that ties them together
 *
 * The pure parts (reply, prompt, pane, conv) need no sandbox, no network and
 * no tmux; tests/unit/test_terminus_parts.c checks them. */
#ifndef PREFT_TASKS_TERMINUS_INT_H
#define PREFT_TASKS_TERMINUS_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/error.h"
#include "server/client.h"
#include "tasks/agent.h"

/* ---- the reply ---------------------------------------------------------------- */

#define PREFT_TERM_MAX_DURATION 60.0 /* seconds a single command may wait */
#define PREFT_TERM_DEFAULT_DURATION 1.0

typedef struct preft_term_command {
  char *keystrokes; /* sent as typed; "\n" is Enter; a lone key name ("C-c") is that key */
  double duration;  /* seconds to wait after sending, in [0, PREFT_TERM_MAX_DURATION] */
} preft_term_command;

typedef struct preft_term_reply {
  char *analysis, *plan; /* "" when absent (a warning) */
  preft_term_command *commands;
  int n_commands;
  bool task_complete;
  char warnings[1024]; /* lines the model should read next turn ("" when none) */
} preft_term_reply;

/* Finds and checks the JSON object in a model's reply: the text may hold it
 * bare, inside a ```json fence, or among prose. On failure err lists what
 * was wrong (one message, parts separated by "; "), *r is zeroed and -1
 * returned; the message is meant to be shown to the model. */
int preft_term_reply_parse(const char *text, preft_term_reply *r, preft_error *err);
void preft_term_reply_free(preft_term_reply *r);

/* ---- the prompts (all heap strings) --------------------------------------------- */

/* The system prompt: the role, the reply format and its rules; brief: the
 * same in about 120 tokens, for models with a small context. */
char *preft_term_system_prompt(bool brief);
/* The first user message: the task and the terminal as it is. */
char *preft_term_first_message(const char *instruction, const char *screen);
/* After commands ran: warnings of the reply (may be ""), then the output. */
char *preft_term_observation(const char *warnings, const char *output);
/* After a reply that could not be used: the errors, and what to send instead. */
char *preft_term_parse_error_message(const char *errors);
/* After the first task_complete: the screen, and the question. */
char *preft_term_confirm_message(const char *screen);

/* ---- pane text ---------------------------------------------------------------------- */

#define PREFT_TERM_OUTPUT_LIMIT 10000 /* bytes of pane text shown to the model per turn */

/* Removes trailing spaces of each line and trailing blank lines (in place). */
void preft_term_pane_trim(char *text);
/* A heap copy of text; when longer than limit bytes, its first and last
 * limit/2 bytes (cut at UTF-8 boundaries) around a line saying how much was
 * left out. */
char *preft_term_truncate(const char *text, size_t limit);
/* What pane history `now` adds to `before` (both trimmed captures of the
 * whole history): the lines from the last line of `before` on, when `before`
 * is a prefix of `now` line by line (its last line may have grown); else
 * NULL (the history was cleared or scrolled off). Heap string. */
char *preft_term_pane_new(const char *before, const char *now);
/* The last `rows` lines of text (heap). */
char *preft_term_last_lines(const char *text, int rows);

/* ---- the conversation ------------------------------------------------------------- */

typedef struct preft_term_msg {
  const char *role; /* "system", "user", "assistant" (static strings) */
  char *content;    /* owned */
} preft_term_msg;

/* The messages sent: messages [0, n_keep) (system prompt and the task) are
 * never dropped; older turns after them are, to stay under the context. */
typedef struct preft_term_conv {
  preft_term_msg *m;
  int n, cap, n_keep;
  int n_dropped;         /* messages dropped so far */
  double tokens_per_est; /* calibration: endpoint tokens / estimate (1 until usage seen) */
} preft_term_conv;

void preft_term_conv_init(preft_term_conv *c);
void preft_term_conv_free(preft_term_conv *c);
/* Appends a message (content copied). */
void preft_term_conv_add(preft_term_conv *c, const char *role, const char *content);
/* The raw estimate of a message's tokens: 4 for the framing plus one per 4
 * bytes (rounded up); calibrated estimates multiply by tokens_per_est. */
int64_t preft_term_msg_estimate(const preft_term_msg *m);
/* The calibrated estimate of the whole conversation. */
int64_t preft_term_conv_tokens(const preft_term_conv *c);
/* Learns tokens_per_est from the endpoint's prompt_tokens for the messages
 * just sent (clamped to [0.25, 8]). */
void preft_term_conv_calibrate(preft_term_conv *c, int64_t prompt_tokens, int64_t raw_estimate_sent);
/* Brings the conversation under budget tokens: drops the oldest turns after
 * the kept ones, an assistant+user pair at a time (the roles keep
 * alternating), down to the newest pair; when that is not enough, shortens
 * that pair's assistant message, then the newest message (head and tail
 * kept). Returns the number of messages
 * dropped. */
int preft_term_conv_trim(preft_term_conv *c, int64_t budget);
/* The raw (uncalibrated) estimate of the whole conversation. */
int64_t preft_term_conv_raw(const preft_term_conv *c);
/* The body of a /chat/completions request (heap). */
char *preft_term_conv_request(const preft_term_conv *c, const char *model, double temperature,
                              int max_tokens);

/* ---- the chat endpoint ----------------------------------------------------------- */

typedef struct preft_term_chat_result {
  char *content;                            /* the assistant's text (heap, "" when the endpoint sent none) */
  int64_t prompt_tokens, completion_tokens; /* -1 when the endpoint gave no usage */
  char finish_reason[32];
} preft_term_chat_result;

/* POSTs body to <base>/chat/completions. A non-200 answer is an error naming
 * the status and the endpoint's message; transport errors and 5xx/429 are
 * retried up to twice while deadline (preft_now() seconds) allows. */
int preft_term_chat(preft_client *c, const char *body, double deadline, preft_term_chat_result *out,
                    preft_error *err);
void preft_term_chat_result_free(preft_term_chat_result *r);
/* The context length the endpoint reports for model (GET <base>/models,
 * "max_model_len" as preft and vLLM list it); 0 when it says none. */
int64_t preft_term_model_context(preft_client *c, const char *model);
/* Parses a chat completion response body (used by preft_term_chat). */
int preft_term_chat_parse(const char *body, preft_term_chat_result *out, preft_error *err);

/* ---- the recording ------------------------------------------------------------------ */

typedef struct preft_term_cast {
  FILE *f;
  double t0;       /* preft_now() at the header */
  char pending[4]; /* bytes of a UTF-8 sequence cut by a read, completed by the next */
  int n_pending;
} preft_term_cast;

/* Writes the asciicast v2 header (width x height, the wall-clock time). */
int preft_term_cast_open(preft_term_cast *c, const char *path, int width, int height, preft_error *err);
/* An event: kind 'o' (terminal output) or 'i' (keys typed), at now - t0. */
void preft_term_cast_event(preft_term_cast *c, char kind, const char *data, size_t n);
void preft_term_cast_close(preft_term_cast *c);

/* ---- the tmux session ------------------------------------------------------------ */

#define PREFT_TERM_WIDTH 160
#define PREFT_TERM_HEIGHT 40

typedef struct preft_term_tmux {
  preft_sandbox *sb;
  char *capture_path;    /* host file the sandbox's command output lands in */
  char *raw_host;        /* host path of the pane's raw output stream (NULL: read through exec) */
  long raw_offset;       /* bytes of the raw stream already recorded */
  preft_term_cast *cast; /* may be NULL */
} preft_term_tmux;

/* Starts `bash --login` in a detached PREFT_TERM_WIDTH x HEIGHT session
 * inside sb, its output streamed to a file for the recording. Fails with a
 * clear message when tmux is not in the sandbox. */
int preft_term_tmux_start(preft_term_tmux *t, preft_sandbox *sb, const char *log_dir, preft_term_cast *cast,
                          preft_error *err);
/* Types keystrokes: a lone tmux key name ("C-c", "Escape", "Up", ...) as that
 * key, anything else literally, each "\n" as Enter. */
int preft_term_tmux_send(preft_term_tmux *t, const char *keystrokes, preft_error *err);
/* Waits seconds, recording the pane's output as it comes. */
void preft_term_tmux_wait(preft_term_tmux *t, double seconds);
/* The pane, trimmed: with history (the whole scrollback) or only the
 * visible screen. Heap string. */
int preft_term_tmux_capture(preft_term_tmux *t, bool history, char **out, preft_error *err);
/* Records what the pane printed since the last call. */
void preft_term_tmux_record(preft_term_tmux *t);
/* Kills the session; frees t's fields. */
void preft_term_tmux_stop(preft_term_tmux *t);

#endif
