/* agent.h - the agents a terminal-task trial runs: oracle (the task's
 * solution), nop (nothing) and terminus (an LLM over a tmux session in the
 * sandbox, driven through an OpenAI-compatible chat endpoint). */
#ifndef PREFT_TASKS_AGENT_H
#define PREFT_TASKS_AGENT_H

#include <stdbool.h>
#include <stdint.h>

#include "preft/base.h"
#include "tasks/sandbox.h"

typedef struct preft_agent_result {
  bool timed_out;
  double seconds;
  int64_t prompt_tokens, completion_tokens; /* terminus: as the endpoint reported them */
  int episodes;                             /* terminus: model turns */
  char error[512];                          /* empty when the agent ran to its end */
} preft_agent_result;

typedef struct preft_terminus_opts {
  const char *url;     /* chat endpoint base, e.g. http://127.0.0.1:8080/v1 */
  const char *model;   /* the "model" field of each request */
  const char *api_key; /* NULL: none */
  int max_episodes;    /* 0: until done or timeout */
  int context_tokens;  /* keep the conversation under this (estimate); 0: the endpoint's max_model_len
                        * (GET /models), else 8192 */
  double temperature;
  const char *log_dir; /* agent log, pane recording and the conversation go here */
} preft_terminus_opts;

/* Runs the terminus agent on `instruction` inside sb until it declares the
 * task complete twice, the episode limit, or timeout_s. Returns 0 when the
 * agent ran (res->error says why it stopped early, if it did), -1 when it
 * could not start (no tmux in the sandbox, say). Logs go to o->log_dir:
 * agent.log, conversation.jsonl, recording.cast (docs/TASKS.md). Uses the
 * libcurl client: call preft_client_global_init once before threads start. */
int preft_terminus_run(preft_sandbox *sb, const char *instruction, const preft_terminus_opts *o,
                       double timeout_s, preft_agent_result *res, preft_error *err);

#endif
