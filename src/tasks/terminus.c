/* terminus.c - the terminus agent (agent.h): a language model at a terminal.
 *
 * Each episode: the conversation (trimmed to the context) goes to the chat
 * endpoint; the reply's commands are typed into the tmux session with their
 * waits; what the pane printed goes back as the next user message. A reply
 * that cannot be parsed runs nothing: its errors go back instead. The first
 * task_complete is answered with the current screen and a request to
 * confirm; a second one in a row ends the run. The run also ends at the
 * episode limit, at the timeout, or when the endpoint fails.
 *
 * In log_dir: agent.log (one block per episode), conversation.jsonl (every
 * message as it is sent or received, with the episode and the usage), and
 * recording.cast (the pane, asciicast v2). */
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <string.h>

#include "base/file.h"
#include "base/timer.h"
#include "server/sse.h" /* srv_buf */
#include "tasks/terminus_int.h"

typedef struct run_state {
  const preft_terminus_opts *o;
  preft_agent_result *res;
  double t0, deadline;
  FILE *log, *jsonl;
  preft_term_cast cast;
  preft_term_tmux tmux;
  preft_term_conv conv;
  preft_client *client;
  char *history; /* the last capture of the whole pane history */
} run_state;

static void log_line(run_state *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void log_line(run_state *s, const char *fmt, ...) {
  if (!s->log) return;
  fprintf(s->log, "[%7.2f s] ", preft_now() - s->t0);
  va_list ap;
  va_start(ap, fmt);
  vfprintf(s->log, fmt, ap);
  va_end(ap);
  fputc('\n', s->log);
  fflush(s->log);
}

/* One line of conversation.jsonl. usage: the chat result of an assistant
 * message (NULL for the others). */
static void log_message(run_state *s, const char *role, const char *content,
                        const preft_term_chat_result *usage) {
  if (!s->jsonl) return;
  srv_buf b = {0};
  preft_srv_buf_printf(&b, "{\"episode\":%d,\"t\":%.3f,\"role\":\"%s\",\"content\":", s->res->episodes,
                       preft_now() - s->t0, role);
  preft_srv_buf_json_str(&b, content, strlen(content));
  if (usage)
    preft_srv_buf_printf(&b, ",\"prompt_tokens\":%lld,\"completion_tokens\":%lld,\"finish_reason\":\"%s\"",
                         (long long)usage->prompt_tokens, (long long)usage->completion_tokens,
                         usage->finish_reason);
  preft_srv_buf_puts(&b, "}\n");
  fwrite(b.p, 1, b.len, s->jsonl);
  fflush(s->jsonl);
  preft_srv_buf_free(&b);
}

static void add_message(run_state *s, const char *role, const char *content) {
  preft_term_conv_add(&s->conv, role, content);
  if (strcmp(role, "assistant")) log_message(s, role, content, NULL);
}

static void stop_with(run_state *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void stop_with(run_state *s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s->res->error, sizeof s->res->error, fmt, ap);
  va_end(ap);
  log_line(s, "end: %s", s->res->error);
}

static bool out_of_time(run_state *s) {
  if (preft_now() < s->deadline) return false;
  s->res->timed_out = true;
  stop_with(s, "timed out after %.0f s", s->deadline - s->t0);
  return true;
}

/* What the pane printed since the last look, cut for the model: the new
 * part of the history, or the visible screen when the history changed
 * (cleared, or past its limit). */
static int pane_output(run_state *s, char **out, preft_error *err) {
  char *now;
  if (preft_term_tmux_capture(&s->tmux, true, &now, err) != 0) return -1;
  char *fresh = s->history ? preft_term_pane_new(s->history, now) : NULL;
  if (!fresh) fresh = preft_term_last_lines(now, PREFT_TERM_HEIGHT);
  free(s->history);
  s->history = now;
  *out = preft_term_truncate(fresh, PREFT_TERM_OUTPUT_LIMIT);
  free(fresh);
  return 0;
}

/* The visible screen, cut for the model. */
static int screen(run_state *s, char **out, preft_error *err) {
  char *text;
  if (preft_term_tmux_capture(&s->tmux, false, &text, err) != 0) return -1;
  *out = preft_term_truncate(text, PREFT_TERM_OUTPUT_LIMIT);
  free(text);
  return 0;
}

/* Types the reply's commands with their waits (cut short by the deadline). */
static int run_commands(run_state *s, const preft_term_reply *r, preft_error *err) {
  for (int i = 0; i < r->n_commands; i++) {
    if (preft_now() >= s->deadline) return 0;
    const preft_term_command *c = &r->commands[i];
    srv_buf keys = {0};
    preft_srv_buf_json_str(&keys, c->keystrokes, strlen(c->keystrokes)); /* one line, \n shown */
    log_line(s, "keys %.300s (wait %.1f s)", keys.p, c->duration);
    preft_srv_buf_free(&keys);
    if (preft_term_tmux_send(&s->tmux, c->keystrokes, err) != 0) return -1;
    double left = s->deadline - preft_now();
    preft_term_tmux_wait(&s->tmux, c->duration < left ? c->duration : left);
  }
  return 0;
}

static int open_logs(run_state *s, preft_error *err) {
  const char *dir = s->o->log_dir;
  if (preft_mkdir_p(dir, err) != 0) return -1;
  char *p = preft_path_join(dir, "agent.log");
  s->log = fopen(p, "w");
  free(p);
  p = preft_path_join(dir, "conversation.jsonl");
  s->jsonl = fopen(p, "w");
  free(p);
  if (!s->log || !s->jsonl) return preft_fail(err, "%s: cannot create the agent's logs", dir);
  p = preft_path_join(dir, "recording.cast");
  int rc = preft_term_cast_open(&s->cast, p, PREFT_TERM_WIDTH, PREFT_TERM_HEIGHT, err);
  free(p);
  return rc;
}

/* The episodes, until done, out of time or out of luck. */
static void episodes(run_state *s, const char *instruction) {
  const preft_terminus_opts *o = s->o;
  preft_agent_result *res = s->res;
  preft_error err;
  int64_t context = o->context_tokens;
  const char *context_from = "the options";
  if (context <= 0) {
    context = preft_term_model_context(s->client, o->model);
    context_from = "the endpoint's max_model_len";
  }
  if (context <= 0) {
    context = 8192;
    context_from = "the default";
  }
  int max_tokens = (int)(context / 4 < 16 ? 16 : context / 4 > 4096 ? 4096 : context / 4);
  int64_t budget = (context - max_tokens) * 9 / 10; /* a margin for the estimate's error */
  bool brief = context < 4096;
  log_line(s, "context %lld tokens (from %s): replies up to %d tokens, the conversation under %lld%s",
           (long long)context, context_from, max_tokens, (long long)budget,
           brief ? ", brief system prompt" : "");
  char *text = NULL, *history = NULL;

  /* the login shell's first prompt (its profile may take a while) */
  int ok = 1;
  for (double until = preft_now() + 5; ok;) {
    preft_term_tmux_wait(&s->tmux, 0.1);
    ok = screen(s, &text, &err) == 0;
    if (!ok || text[0] || preft_now() > until) break;
    free(text);
    text = NULL;
  }
  ok = ok && pane_output(s, &history, &err) == 0;
  free(history); /* only to remember where the history stands */
  if (!ok) {
    free(text);
    stop_with(s, "%s", err.msg);
    return;
  }
  char *sys = preft_term_system_prompt(brief);
  char *first = preft_term_first_message(instruction, text);
  add_message(s, "system", sys);
  add_message(s, "user", first);
  free(sys);
  free(first);
  free(text);

  bool asked_to_confirm = false;
  for (;;) {
    if (out_of_time(s)) return;
    if (o->max_episodes > 0 && res->episodes >= o->max_episodes) {
      stop_with(s, "episode limit: no completion after %d episodes", res->episodes);
      return;
    }
    int dropped = preft_term_conv_trim(&s->conv, budget);
    if (dropped)
      log_line(s, "context: dropped %d old messages to stay under %lld tokens", dropped, (long long)budget);
    int64_t raw_sent = preft_term_conv_raw(&s->conv), estimate = preft_term_conv_tokens(&s->conv);
    if (estimate > budget)
      log_line(s, "context: still about %lld tokens, over %lld (what cannot be dropped is too long)",
               (long long)estimate, (long long)budget);
    char *body = preft_term_conv_request(&s->conv, o->model, o->temperature, max_tokens);
    preft_term_chat_result chat;
    int rc = preft_term_chat(s->client, body, s->deadline, &chat, &err);
    free(body);
    if (rc != 0) {
      if (out_of_time(s)) return;
      if (estimate > budget)
        stop_with(s,
                  "%s (the agent's prompt was about %lld tokens: the system prompt and the task do not fit "
                  "a context of %lld)",
                  err.msg, (long long)estimate, (long long)context);
      else
        stop_with(s, "%s", err.msg);
      return;
    }
    res->episodes++;
    if (chat.prompt_tokens > 0) {
      res->prompt_tokens += chat.prompt_tokens;
      preft_term_conv_calibrate(&s->conv, chat.prompt_tokens, raw_sent);
    }
    if (chat.completion_tokens > 0) res->completion_tokens += chat.completion_tokens;
    preft_term_conv_add(&s->conv, "assistant", chat.content);
    log_message(s, "assistant", chat.content, &chat);
    log_line(s, "episode %d: %lld prompt + %lld completion tokens, finish %s", res->episodes,
             (long long)chat.prompt_tokens, (long long)chat.completion_tokens, chat.finish_reason);

    preft_term_reply reply;
    if (preft_term_reply_parse(chat.content, &reply, &err) != 0) {
      log_line(s, "reply not usable: %s", err.msg);
      char errors[sizeof err.msg + 128];
      snprintf(errors, sizeof errors, "%s%s", err.msg,
               strcmp(chat.finish_reason, "length")
                   ? ""
                   : " (the response was cut off at the token limit: be briefer)");
      char *m = preft_term_parse_error_message(errors);
      add_message(s, "user", m);
      free(m);
      preft_term_chat_result_free(&chat);
      continue;
    }
    preft_term_chat_result_free(&chat);
    log_line(s, "analysis: %.500s", reply.analysis);
    log_line(s, "plan: %.500s", reply.plan);
    char *output = NULL, *msg = NULL;
    rc = run_commands(s, &reply, &err);
    if (rc == 0) rc = pane_output(s, &output, &err);
    if (rc == 0 && reply.task_complete) {
      if (asked_to_confirm) {
        log_line(s, "task complete (confirmed)");
        free(output);
        preft_term_reply_free(&reply);
        return;
      }
      asked_to_confirm = true;
      log_line(s, "task complete: asking to confirm");
      char *scr = NULL;
      rc = screen(s, &scr, &err);
      if (rc == 0) msg = preft_term_confirm_message(scr);
      free(scr);
    } else if (rc == 0) {
      asked_to_confirm = false;
      msg = preft_term_observation(reply.warnings, output);
    }
    free(output);
    preft_term_reply_free(&reply);
    if (rc != 0) {
      stop_with(s, "%s", err.msg);
      return;
    }
    add_message(s, "user", msg);
    free(msg);
  }
}

int preft_terminus_run(preft_sandbox *sb, const char *instruction, const preft_terminus_opts *o,
                       double timeout_s, preft_agent_result *res, preft_error *err) {
  memset(res, 0, sizeof *res);
  if (!o->url || !o->url[0]) return preft_fail(err, "terminus: no chat endpoint URL");
  if (!o->log_dir || !o->log_dir[0]) return preft_fail(err, "terminus: no log folder");
  run_state s = {.o = o, .res = res, .t0 = preft_now()};
  s.deadline = s.t0 + (timeout_s > 0 ? timeout_s : 1e12);
  preft_term_conv_init(&s.conv);
  int rc = open_logs(&s, err);
  if (rc == 0) rc = preft_term_tmux_start(&s.tmux, sb, o->log_dir, &s.cast, err);
  if (rc == 0) {
    log_line(&s, "terminus: model %s at %s, timeout %.0f s", o->model ? o->model : "(none)", o->url,
             timeout_s);
    s.client = preft_client_new(o->url, o->api_key, 0);
    episodes(&s, instruction);
    log_line(&s, "done: %d episodes, %lld prompt + %lld completion tokens", res->episodes,
             (long long)res->prompt_tokens, (long long)res->completion_tokens);
  } else {
    log_line(&s, "could not start: %s", err->msg);
  }
  preft_term_tmux_stop(&s.tmux);
  preft_client_free(s.client);
  preft_term_conv_free(&s.conv);
  preft_term_cast_close(&s.cast);
  free(s.history);
  if (s.log) fclose(s.log);
  if (s.jsonl) fclose(s.jsonl);
  res->seconds = preft_now() - s.t0;
  return rc;
}
