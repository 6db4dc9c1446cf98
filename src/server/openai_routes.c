/* openai_routes.c - the OpenAI-compatible endpoints: completions and chat
 * completions (whole responses and server-sent events). The model list and
 * the adapter load/unload endpoints are in model_routes.c.
 *
 * One HTTP generation request becomes prompts x n engine requests (its
 * "choices", numbered prompt-major: choice = prompt * n + k) sharing one
 * srv_job. Choice k of a prompt samples with seed + k when the request gives
 * a seed, so n > 1 with temperature > 0 gives n different samples that are
 * each reproducible. Text is decoded and stop strings are matched on the
 * engine thread (sse.c); JSON is formatted here, on the connection thread.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/error.h"
#include "engine/grammar.h"
#include "model/adapter.h"
#include "server/server_int.h"
#include "server/tool_calls.h"

/* ---- replies ------------------------------------------------------------------------- */

void preft_srv_reply_error(srv_reply *r, const srv_api_error *e) {
  r->status = e->status;
  r->content_type = "application/json";
  preft_srv_buf_reset(&r->body);
  preft_srv_error_json(e, &r->body);
}

void preft_srv_reply_text(srv_reply *r, int status, const char *text) {
  r->status = status;
  r->content_type = "text/plain; charset=utf-8";
  preft_srv_buf_reset(&r->body);
  preft_srv_buf_puts(&r->body, text);
}

static uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

static uint64_t fresh_u64(preft_server *s) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return splitmix64(atomic_fetch_add(&s->next_id, 1) ^ ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec);
}

/* ---- one generation -------------------------------------------------------------- */

typedef struct choice_out {
  int prompt;
  bool done, role_sent, stop_string;
  preft_finish_reason finish;
  int completion_tokens;
  char *error;
  bool adapter_unavailable; /* the error is the adapter's failed load */
  /* accumulated for whole (non-streamed) responses */
  srv_buf text;
  int *ids;
  float *lp;
  size_t *offsets;
  int *n_top;
  int *top_ids;  /* [n_ids][PREFT_MAX_TOP_LOGPROBS] */
  float *top_lp; /* [n_ids][PREFT_MAX_TOP_LOGPROBS] */
  int n_ids, cap;
  /* tool calls (chat with tools, tool_choice not "none"): the reply parsed as it streams */
  srv_tool_stream tools;
  int calls_sent;      /* calls streamed whole so far */
  bool call_head_sent; /* of calls[calls_sent]: its id and name */
  size_t args_sent;    /* of calls[calls_sent]: bytes of its arguments */
  int abandoned_seen;  /* tools.abandoned when last looked at */
  int index_shift;     /* a streamed call's index is its calls[] index + this */
} choice_out;

struct srv_gen {
  preft_server *s;
  srv_gen *prev, *next; /* the server's list of live generations */
  srv_gen_request req;
  srv_job *job;
  int fd;
  char id[48];
  long created;
  char *model_id;
  int n_choices, n_done;
  int *prompt_len; /* [n_prompts] */
  choice_out *out; /* [n_choices] */
  /* echo / prompt_logprobs, per prompt (NULL when not asked for) */
  char **echo_text;
  size_t *echo_chars; /* code points of echo_text */
  srv_prompt_lp *prompt_lp;
  /* streaming */
  srv_buf sse;
  size_t sse_pos;
  bool stream_done;
  bool tools_on;     /* replies are parsed for tool calls */
  uint64_t call_ids; /* base of the tool calls' ids */
};

static const char *finish_name(const choice_out *o) {
  switch (o->finish) {
    case PREFT_FINISH_STOP:
      return o->tools.n_calls > 0 ? "tool_calls" : "stop";
    case PREFT_FINISH_LENGTH:
      return "length";
    case PREFT_FINISH_CANCELLED:
      return "abort";
    case PREFT_FINISH_ERROR:
      return "error";
    default:
      return NULL;
  }
}

/* The text of one token for logprobs: its own decoding (special tokens
 * included), or "token_id:N" without a tokenizer (vLLM's spelling). */
static void token_str(const preft_server *s, int id, srv_buf *out) {
  char *t = NULL;
  size_t len;
  int32_t i32 = id;
  preft_error err;
  if (s->tok && id >= 0 &&
      preft_tokenizer_decode(s->tok, &i32, 1, PREFT_DECODE_NO_CLEANUP, &t, &len, &err) == 0) {
    preft_srv_buf_put(out, t, len);
    free(t);
    return;
  }
  preft_srv_buf_printf(out, "token_id:%d", id);
}

static void json_token(const preft_server *s, int id, srv_buf *b, srv_buf *tmp) {
  preft_srv_buf_reset(tmp);
  token_str(s, id, tmp);
  preft_srv_buf_json_str(b, tmp->p, tmp->len);
}

/* The bytes of a token's text as a JSON array (chat logprobs). */
static void json_token_bytes(const preft_server *s, int id, srv_buf *b, srv_buf *tmp) {
  preft_srv_buf_reset(tmp);
  token_str(s, id, tmp);
  preft_srv_buf_put(b, "[", 1);
  for (size_t i = 0; i < tmp->len; i++) preft_srv_buf_printf(b, i ? ",%u" : "%u", (unsigned char)tmp->p[i]);
  preft_srv_buf_put(b, "]", 1);
}

/* The echoed prompt's part of a legacy logprobs array (its tokens first:
 * echo_prompt_part, then the completion's): what = 0 tokens, 1
 * token_logprobs, 2 top_logprobs, 3 text_offset; the first prompt token has
 * null logprobs. Returns whether it wrote anything. */
static bool echo_prompt_part(const srv_gen *g, int prompt, bool with_prompt, int what, srv_buf *b,
                             srv_buf *tmp) {
  if (!with_prompt || !g->req.echo || !g->prompt_lp) return false;
  const srv_prompt *p = &g->req.prompts[prompt];
  const srv_prompt_lp *pl = &g->prompt_lp[prompt];
  int k = g->req.logprobs;
  preft_decode_stream *ds = what == 3 && g->s->tok ? preft_decode_stream_new(g->s->tok, false) : NULL;
  size_t chars = 0;
  for (int t = 0; t < p->n_ids; t++) {
    if (t) preft_srv_buf_put(b, ",", 1);
    if (what == 0) {
      json_token(g->s, p->ids[t], b, tmp);
    } else if (what == 1) {
      if (t)
        preft_srv_buf_json_num(b, pl->lp[t]);
      else
        preft_srv_buf_puts(b, "null");
    } else if (what == 2) {
      if (!t) {
        preft_srv_buf_puts(b, "null");
        continue;
      }
      preft_srv_buf_put(b, "{", 1);
      int m = pl->n_top[t] < k ? pl->n_top[t] : k;
      for (int j = 0; j < m; j++) {
        if (j) preft_srv_buf_put(b, ",", 1);
        json_token(g->s, pl->top_ids[t * pl->k + j], b, tmp);
        preft_srv_buf_put(b, ":", 1);
        preft_srv_buf_json_num(b, pl->top_lp[t * pl->k + j]);
      }
      preft_srv_buf_put(b, "}", 1);
    } else {
      preft_srv_buf_printf(b, "%zu", chars);
      char *piece = NULL;
      preft_error err;
      if (ds && preft_decode_stream_step(ds, p->ids[t], &piece, &err) == 0 && piece) {
        chars += preft_srv_utf8_chars(piece, strlen(piece));
        free(piece);
      }
    }
  }
  if (ds) preft_decode_stream_free(ds);
  return p->n_ids > 0;
}

/* Completions' legacy logprobs object for tokens [0, n) of a choice of
 * prompt `prompt`: with echo, text offsets count from the start of the
 * echoed prompt, and with_prompt puts the prompt's tokens first. */
static void json_logprobs_legacy(const srv_gen *g, int prompt, bool with_prompt, const int *ids,
                                 const float *lp, const size_t *off, const int *n_top, const int *top_ids,
                                 const float *top_lp, int n, srv_buf *b) {
  srv_buf tmp = {0};
  int k = g->req.logprobs;
  size_t shift = g->echo_chars ? g->echo_chars[prompt] : 0;
  preft_srv_buf_puts(b, "{\"tokens\":[");
  bool echoed = echo_prompt_part(g, prompt, with_prompt, 0, b, &tmp);
  for (int i = 0; i < n; i++) {
    if (i || echoed) preft_srv_buf_put(b, ",", 1);
    json_token(g->s, ids[i], b, &tmp);
  }
  preft_srv_buf_puts(b, "],\"token_logprobs\":[");
  echo_prompt_part(g, prompt, with_prompt, 1, b, &tmp);
  for (int i = 0; i < n; i++) {
    if (i || echoed) preft_srv_buf_put(b, ",", 1);
    preft_srv_buf_json_num(b, lp[i]);
  }
  preft_srv_buf_puts(b, "],\"top_logprobs\":[");
  echo_prompt_part(g, prompt, with_prompt, 2, b, &tmp);
  for (int i = 0; i < n; i++) {
    preft_srv_buf_puts(b, i || echoed ? ",{" : "{");
    int m = n_top[i] < k ? n_top[i] : k;
    for (int t = 0; t < m; t++) {
      if (t) preft_srv_buf_put(b, ",", 1);
      json_token(g->s, top_ids[i * PREFT_MAX_TOP_LOGPROBS + t], b, &tmp);
      preft_srv_buf_put(b, ":", 1);
      preft_srv_buf_json_num(b, top_lp[i * PREFT_MAX_TOP_LOGPROBS + t]);
    }
    preft_srv_buf_put(b, "}", 1);
  }
  preft_srv_buf_puts(b, "],\"text_offset\":[");
  echo_prompt_part(g, prompt, with_prompt, 3, b, &tmp);
  for (int i = 0; i < n; i++) preft_srv_buf_printf(b, i || echoed ? ",%zu" : "%zu", off[i] + shift);
  preft_srv_buf_puts(b, "]}");
  preft_srv_buf_free(&tmp);
}

/* Chat's logprobs object {"content": [...]} for tokens [0, n). */
static void json_logprobs_chat(const srv_gen *g, const int *ids, const float *lp, const int *n_top,
                               const int *top_ids, const float *top_lp, int n, srv_buf *b) {
  srv_buf tmp = {0};
  int k = g->req.logprobs;
  preft_srv_buf_puts(b, "{\"content\":[");
  for (int i = 0; i < n; i++) {
    preft_srv_buf_puts(b, i ? ",{\"token\":" : "{\"token\":");
    json_token(g->s, ids[i], b, &tmp);
    preft_srv_buf_puts(b, ",\"logprob\":");
    preft_srv_buf_json_num(b, lp[i]);
    preft_srv_buf_puts(b, ",\"bytes\":");
    json_token_bytes(g->s, ids[i], b, &tmp);
    preft_srv_buf_puts(b, ",\"top_logprobs\":[");
    int m = n_top[i] < k ? n_top[i] : k;
    for (int t = 0; t < m; t++) {
      int id = top_ids[i * PREFT_MAX_TOP_LOGPROBS + t];
      preft_srv_buf_puts(b, t ? ",{\"token\":" : "{\"token\":");
      json_token(g->s, id, b, &tmp);
      preft_srv_buf_puts(b, ",\"logprob\":");
      preft_srv_buf_json_num(b, top_lp[i * PREFT_MAX_TOP_LOGPROBS + t]);
      preft_srv_buf_puts(b, ",\"bytes\":");
      json_token_bytes(g->s, id, b, &tmp);
      preft_srv_buf_put(b, "}", 1);
    }
    preft_srv_buf_puts(b, "]}");
  }
  preft_srv_buf_puts(b, "]}");
  preft_srv_buf_free(&tmp);
}

/* vLLM's prompt_logprobs of a prompt: [null, {"id": {"logprob", "rank",
 * "decoded_token"}, ...}, ...]: the prompt's own token and the best
 * alternatives at every position after the first. */
static void json_prompt_logprobs(const srv_gen *g, int prompt, srv_buf *b) {
  const srv_prompt *p = &g->req.prompts[prompt];
  const srv_prompt_lp *pl = &g->prompt_lp[prompt];
  srv_buf tmp = {0};
  preft_srv_buf_puts(b, "[null");
  for (int t = 1; t < p->n_ids; t++) {
    preft_srv_buf_printf(b, ",{\"%d\":{\"logprob\":", p->ids[t]);
    preft_srv_buf_json_num(b, pl->lp[t]);
    preft_srv_buf_printf(b, ",\"rank\":%d,\"decoded_token\":", pl->rank[t]);
    json_token(g->s, p->ids[t], b, &tmp);
    preft_srv_buf_put(b, "}", 1);
    int m = pl->n_top[t] < g->req.prompt_logprobs ? pl->n_top[t] : g->req.prompt_logprobs;
    for (int j = 0; j < m; j++) {
      int id = pl->top_ids[t * pl->k + j];
      if (id == p->ids[t]) continue;
      preft_srv_buf_printf(b, ",\"%d\":{\"logprob\":", id);
      preft_srv_buf_json_num(b, pl->top_lp[t * pl->k + j]);
      preft_srv_buf_printf(b, ",\"rank\":%d,\"decoded_token\":", j + 1);
      json_token(g->s, id, b, &tmp);
      preft_srv_buf_put(b, "}", 1);
    }
    preft_srv_buf_put(b, "}", 1);
  }
  preft_srv_buf_put(b, "]", 1);
  preft_srv_buf_free(&tmp);
}

static bool shows_ids(const srv_gen *g) { return g->req.return_token_ids || !g->s->tok; }

static void json_usage(const srv_gen *g, srv_buf *b) {
  long prompt = 0, completion = 0;
  for (int i = 0; i < g->req.n_prompts; i++) prompt += g->prompt_len[i];
  for (int i = 0; i < g->n_choices; i++) completion += g->out[i].completion_tokens;
  preft_srv_buf_printf(b, "{\"prompt_tokens\":%ld,\"completion_tokens\":%ld,\"total_tokens\":%ld}", prompt,
                       completion, prompt + completion);
}

static void json_head(const srv_gen *g, srv_buf *b, const char *object) {
  preft_srv_buf_printf(b, "{\"id\":\"%s\",\"object\":\"%s\",\"created\":%ld,\"model\":", g->id, object,
                       g->created);
  preft_srv_buf_json_str(b, g->model_id, strlen(g->model_id));
}

/* ---- streaming ------------------------------------------------------------------------- */

static void sse_error(srv_gen *g, const char *msg) {
  srv_api_error e;
  preft_srv_fail(&e, 500, "server_error", NULL, NULL, "%s", msg);
  preft_srv_buf_puts(&g->sse, "data: ");
  preft_srv_error_json(&e, &g->sse);
  preft_srv_buf_puts(&g->sse, "\n\n");
}

/* ---- tool calls ------------------------------------------------------------------------- */

static void tool_call_id(const srv_gen *g, int choice, int k, char *out, size_t n) {
  snprintf(out, n, "call_%016llx%04x%02x", (unsigned long long)g->call_ids, (unsigned)choice & 0xffff,
           (unsigned)k & 0xff);
}

static void sse_chunk_begin(srv_gen *g, int choice) {
  preft_srv_buf_puts(&g->sse, "data: ");
  json_head(g, &g->sse, "chat.completion.chunk");
  preft_srv_buf_printf(&g->sse, ",\"choices\":[{\"index\":%d,\"delta\":{", choice);
}

static void sse_chunk_end(srv_gen *g, const char *finish) {
  preft_srv_buf_puts(&g->sse, "},\"logprobs\":null,\"finish_reason\":");
  if (finish)
    preft_srv_buf_printf(&g->sse, "\"%s\"", finish);
  else
    preft_srv_buf_puts(&g->sse, "null");
  preft_srv_buf_puts(&g->sse, "}]}\n\n");
}

static void sse_call_head(srv_gen *g, int ci, int k, const char *name) {
  char id[48];
  tool_call_id(g, ci, k, id, sizeof id);
  sse_chunk_begin(g, ci);
  preft_srv_buf_printf(
      &g->sse, "\"tool_calls\":[{\"index\":%d,\"id\":\"%s\",\"type\":\"function\",\"function\":{\"name\":", k,
      id);
  preft_srv_buf_json_str(&g->sse, name, strlen(name));
  preft_srv_buf_puts(&g->sse, ",\"arguments\":\"\"}}]");
  sse_chunk_end(g, NULL);
}

static void sse_call_args(srv_gen *g, int ci, int k, const char *args, size_t n) {
  if (!n) return;
  sse_chunk_begin(g, ci);
  preft_srv_buf_printf(&g->sse, "\"tool_calls\":[{\"index\":%d,\"function\":{\"arguments\":", k);
  preft_srv_buf_json_str(&g->sse, args, n);
  preft_srv_buf_puts(&g->sse, "}}]");
  sse_chunk_end(g, NULL);
}

/* Bytes of s[0..n) up to the last whole UTF-8 character. */
static size_t utf8_whole(const char *s, size_t n) {
  size_t i = n, back = 0;
  while (i > 0 && back < 4 && ((unsigned char)s[i - 1] & 0xc0) == 0x80) i--, back++;
  if (i == 0) return n;
  unsigned char lead = (unsigned char)s[i - 1];
  size_t want = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
  return want > back + 1 ? i - 1 : n;
}

/* Chat with tools, streamed, as OpenAI and vLLM stream them: content as it
 * is known to be content; each call as a first delta with index, id, type
 * and name (empty arguments) once its name is written, then its arguments
 * in pieces as the model writes them; a call whose arguments could not be
 * followed (not an object, or the name after them) gets them in one piece
 * once complete. The SDK assembles the pieces. A call streamed in part that
 * turns out not to parse (tool_choice auto only) stays as it was sent, and
 * the calls after it take the indices after it. */
static void sse_tool_event(srv_gen *g, choice_out *o, const srv_event *ev, bool final) {
  int ci = ev->choice;
  srv_buf content = {0};
  preft_srv_tool_stream_feed(&o->tools, ev->text, ev->text_len, &content);
  if (final) preft_srv_tool_stream_finish(&o->tools, &content);
  if (!o->role_sent || content.len) {
    sse_chunk_begin(g, ci);
    if (!o->role_sent) preft_srv_buf_puts(&g->sse, "\"role\":\"assistant\",");
    preft_srv_buf_puts(&g->sse, "\"content\":");
    preft_srv_buf_json_str(&g->sse, content.p ? content.p : "", content.len);
    sse_chunk_end(g, NULL);
    o->role_sent = true;
  }
  preft_srv_buf_free(&content);
  if (o->tools.abandoned != o->abandoned_seen) { /* streamed calls that turned out not to be calls */
    o->abandoned_seen = o->tools.abandoned;
    int used = o->calls_sent + (o->call_head_sent ? 1 : 0);
    if (used > o->tools.n_calls) { /* their indices stay used: the next call takes the next index */
      o->index_shift += used - o->tools.n_calls;
      o->calls_sent = o->tools.n_calls;
      o->call_head_sent = false;
      o->args_sent = 0;
    }
  }
  for (;;) {
    int k = o->calls_sent, at = k + o->index_shift;
    if (k < o->tools.n_calls) { /* complete: what is left of it */
      const srv_tool_call *c = &o->tools.calls[k];
      if (!o->call_head_sent) sse_call_head(g, ci, at, c->name);
      if (c->streamed) {
        size_t len = strlen(c->streamed);
        if (o->args_sent < len) sse_call_args(g, ci, at, c->streamed + o->args_sent, len - o->args_sent);
      } else if (o->args_sent == 0) {
        sse_call_args(g, ci, at, c->arguments, strlen(c->arguments));
      }
    } else { /* being written: its name once known, then its arguments so far */
      const char *args;
      size_t args_len;
      bool done;
      const char *name = preft_srv_tool_stream_live(&o->tools, k, &args, &args_len, &done);
      if (!name || !name[0]) break;
      if (!o->call_head_sent) sse_call_head(g, ci, at, name);
      o->call_head_sent = true;
      size_t whole = done ? args_len : utf8_whole(args, args_len);
      if (whole > o->args_sent) {
        sse_call_args(g, ci, at, args + o->args_sent, whole - o->args_sent);
        o->args_sent = whole;
      }
      if (!done) break;
    }
    o->calls_sent++;
    o->call_head_sent = false;
    o->args_sent = 0;
  }
  if (final) {
    sse_chunk_begin(g, ci);
    sse_chunk_end(g, finish_name(o));
  }
}

/* The message of a whole chat reply with tools: content (null when the reply
 * is only calls) and tool_calls. */
static void json_tool_message(const srv_gen *g, int ci, choice_out *o, srv_buf *b) {
  srv_buf content = {0};
  preft_srv_tool_stream_feed(&o->tools, o->text.p ? o->text.p : "", o->text.len, &content);
  preft_srv_tool_stream_finish(&o->tools, &content);
  preft_srv_buf_puts(b, "\"message\":{\"role\":\"assistant\",\"content\":");
  if (content.len || !o->tools.n_calls)
    preft_srv_buf_json_str(b, content.p ? content.p : "", content.len);
  else
    preft_srv_buf_puts(b, "null");
  if (o->tools.n_calls) {
    preft_srv_buf_puts(b, ",\"tool_calls\":[");
    for (int k = 0; k < o->tools.n_calls; k++) {
      char id[48];
      tool_call_id(g, ci, k, id, sizeof id);
      preft_srv_buf_printf(b, "%s{\"id\":\"%s\",\"type\":\"function\",\"function\":{\"name\":", k ? "," : "",
                           id);
      preft_srv_buf_json_str(b, o->tools.calls[k].name, strlen(o->tools.calls[k].name));
      preft_srv_buf_puts(b, ",\"arguments\":");
      preft_srv_buf_json_str(b, o->tools.calls[k].arguments, strlen(o->tools.calls[k].arguments));
      preft_srv_buf_puts(b, "}}");
    }
    preft_srv_buf_puts(b, "]");
  }
  preft_srv_buf_puts(b, "},");
  preft_srv_buf_free(&content);
}

/* One SSE chunk for an event (nothing when it would carry nothing new). */
static void sse_event(srv_gen *g, const srv_event *ev) {
  choice_out *o = &g->out[ev->choice];
  bool chat = g->req.kind == SRV_CHAT, final = ev->finish != PREFT_FINISH_NONE;
  bool has_token = ev->token >= 0 && !ev->after_stop;
  bool with_lp = has_token && g->req.logprobs >= 0, with_ids = has_token && shows_ids(g);
  if (final) {
    o->done = true;
    o->finish = ev->finish;
    o->stop_string = ev->stop_string;
    o->completion_tokens = ev->completion_tokens;
    g->n_done++;
    if (ev->finish == PREFT_FINISH_ERROR) {
      sse_error(g, ev->error);
      return;
    }
  }
  if (g->tools_on) return sse_tool_event(g, o, ev, final);
  bool role = chat && !o->role_sent;
  if (!final && !role && !ev->text_len && !with_lp && !with_ids) return;
  srv_buf *b = &g->sse;
  preft_srv_buf_puts(b, "data: ");
  json_head(g, b, chat ? "chat.completion.chunk" : "text_completion");
  preft_srv_buf_printf(b, ",\"choices\":[{\"index\":%d,", ev->choice);
  if (chat) {
    preft_srv_buf_puts(b, "\"delta\":{");
    if (role) preft_srv_buf_puts(b, "\"role\":\"assistant\",");
    o->role_sent = true;
    preft_srv_buf_puts(b, "\"content\":");
    preft_srv_buf_json_str(b, ev->text ? ev->text : "", ev->text_len);
    preft_srv_buf_puts(b, "},");
  } else {
    preft_srv_buf_puts(b, "\"text\":");
    preft_srv_buf_json_str(b, ev->text ? ev->text : "", ev->text_len);
    preft_srv_buf_put(b, ",", 1);
  }
  preft_srv_buf_puts(b, "\"logprobs\":");
  if (with_lp) {
    int n_top = ev->n_top;
    if (chat)
      json_logprobs_chat(g, &ev->token, &ev->logprob, &n_top, ev->top_ids, ev->top_logprobs, 1, b);
    else
      json_logprobs_legacy(g, o->prompt, false, &ev->token, &ev->logprob, &ev->text_offset, &n_top,
                           ev->top_ids, ev->top_logprobs, 1, b);
  } else {
    preft_srv_buf_puts(b, "null");
  }
  preft_srv_buf_puts(b, ",\"finish_reason\":");
  const char *fr = final ? finish_name(o) : NULL;
  if (fr)
    preft_srv_buf_printf(b, "\"%s\"", fr);
  else
    preft_srv_buf_puts(b, "null");
  if (with_ids) preft_srv_buf_printf(b, ",\"token_ids\":[%d]", ev->token);
  preft_srv_buf_puts(b, "}]}\n\n");
}

static void sse_finish(srv_gen *g) {
  if (g->req.include_usage) {
    preft_srv_buf_puts(&g->sse, "data: ");
    json_head(g, &g->sse, g->req.kind == SRV_CHAT ? "chat.completion.chunk" : "text_completion");
    preft_srv_buf_puts(&g->sse, ",\"choices\":[],\"usage\":");
    json_usage(g, &g->sse);
    preft_srv_buf_puts(&g->sse, "}\n\n");
  }
  preft_srv_buf_puts(&g->sse, "data: [DONE]\n\n");
  g->stream_done = true;
}

ssize_t preft_srv_gen_read(srv_gen *g, char *buf, size_t max) {
  while (g->sse_pos == g->sse.len) {
    if (g->stream_done) return 0;
    preft_srv_buf_reset(&g->sse);
    g->sse_pos = 0;
    srv_event *ev;
    size_t n;
    int rc = preft_srv_job_take(g->job, g->fd, &ev, &n);
    if (rc == SRV_TAKE_HUNG_UP) {
      preft_srv_job_cancel(g->job);
      return -1;
    }
    for (size_t i = 0; i < n; i++) sse_event(g, &ev[i]);
    preft_srv_events_free(ev, n);
    if (rc == SRV_TAKE_ALL_DONE || g->n_done == g->n_choices) sse_finish(g);
  }
  size_t k = g->sse.len - g->sse_pos;
  if (k > max) k = max;
  memcpy(buf, g->sse.p + g->sse_pos, k);
  g->sse_pos += k;
  return (ssize_t)k;
}

/* ---- whole responses ---------------------------------------------------------------- */

static void accumulate(srv_gen *g, const srv_event *ev) {
  choice_out *o = &g->out[ev->choice];
  if (ev->text_len) preft_srv_buf_put(&o->text, ev->text, ev->text_len);
  if (ev->token >= 0 && !ev->after_stop) {
    if (o->n_ids == o->cap) {
      o->cap = o->cap ? 2 * o->cap : 64;
      o->ids = preft_xrealloc(o->ids, sizeof(int) * (size_t)o->cap);
      if (g->req.logprobs >= 0) {
        o->lp = preft_xrealloc(o->lp, sizeof(float) * (size_t)o->cap);
        o->offsets = preft_xrealloc(o->offsets, sizeof(size_t) * (size_t)o->cap);
        o->n_top = preft_xrealloc(o->n_top, sizeof(int) * (size_t)o->cap);
        o->top_ids = preft_xrealloc(o->top_ids, sizeof(int) * PREFT_MAX_TOP_LOGPROBS * (size_t)o->cap);
        o->top_lp = preft_xrealloc(o->top_lp, sizeof(float) * PREFT_MAX_TOP_LOGPROBS * (size_t)o->cap);
      }
    }
    int i = o->n_ids++;
    o->ids[i] = ev->token;
    if (g->req.logprobs >= 0) {
      o->lp[i] = ev->logprob;
      o->offsets[i] = ev->text_offset;
      o->n_top[i] = ev->n_top;
      memcpy(o->top_ids + (size_t)i * PREFT_MAX_TOP_LOGPROBS, ev->top_ids, sizeof(int) * (size_t)ev->n_top);
      memcpy(o->top_lp + (size_t)i * PREFT_MAX_TOP_LOGPROBS, ev->top_logprobs,
             sizeof(float) * (size_t)ev->n_top);
    }
  }
  if (ev->finish != PREFT_FINISH_NONE) {
    o->done = true;
    o->finish = ev->finish;
    o->stop_string = ev->stop_string;
    o->completion_tokens = ev->completion_tokens;
    if (ev->error && !o->error) o->error = preft_xstrdup(ev->error);
    o->adapter_unavailable |= ev->adapter_unavailable;
    g->n_done++;
  }
}

static void whole_response(srv_gen *g, srv_buf *b) {
  bool chat = g->req.kind == SRV_CHAT;
  json_head(g, b, chat ? "chat.completion" : "text_completion");
  preft_srv_buf_puts(b, ",\"choices\":[");
  for (int i = 0; i < g->n_choices; i++) {
    choice_out *o = &g->out[i];
    preft_srv_buf_printf(b, "%s{\"index\":%d,", i ? "," : "", i);
    if (chat && g->tools_on) {
      json_tool_message(g, i, o, b);
    } else if (chat) {
      preft_srv_buf_puts(b, "\"message\":{\"role\":\"assistant\",\"content\":");
      preft_srv_buf_json_str(b, o->text.p ? o->text.p : "", o->text.len);
      preft_srv_buf_puts(b, "},");
    } else {
      preft_srv_buf_puts(b, "\"text\":");
      srv_buf text = {0};
      if (g->echo_text) preft_srv_buf_puts(&text, g->echo_text[o->prompt]);
      if (o->text.len) preft_srv_buf_put(&text, o->text.p, o->text.len);
      preft_srv_buf_json_str(b, text.p ? text.p : "", text.len);
      preft_srv_buf_free(&text);
      preft_srv_buf_put(b, ",", 1);
      if (g->req.prompt_logprobs >= 0) {
        preft_srv_buf_puts(b, "\"prompt_logprobs\":");
        json_prompt_logprobs(g, o->prompt, b);
        preft_srv_buf_put(b, ",", 1);
      }
    }
    preft_srv_buf_puts(b, "\"logprobs\":");
    if (g->req.logprobs >= 0 && chat)
      json_logprobs_chat(g, o->ids, o->lp, o->n_top, o->top_ids, o->top_lp, o->n_ids, b);
    else if (g->req.logprobs >= 0)
      json_logprobs_legacy(g, o->prompt, true, o->ids, o->lp, o->offsets, o->n_top, o->top_ids, o->top_lp,
                           o->n_ids, b);
    else
      preft_srv_buf_puts(b, "null");
    const char *fr = finish_name(o);
    preft_srv_buf_printf(b, ",\"finish_reason\":\"%s\"", fr ? fr : "stop");
    if (shows_ids(g)) {
      preft_srv_buf_puts(b, ",\"token_ids\":[");
      for (int t = 0; t < o->n_ids; t++) preft_srv_buf_printf(b, t ? ",%d" : "%d", o->ids[t]);
      preft_srv_buf_put(b, "]", 1);
    }
    preft_srv_buf_put(b, "}", 1);
  }
  preft_srv_buf_puts(b, "],\"usage\":");
  json_usage(g, b);
  preft_srv_buf_put(b, "}", 1);
}

/* ---- setting a generation up ------------------------------------------------------- */

static void gen_register(preft_server *s, srv_gen *g) {
  pthread_mutex_lock(&s->mu);
  g->next = s->gens;
  if (s->gens) s->gens->prev = g;
  s->gens = g;
  s->n_gens++;
  pthread_mutex_unlock(&s->mu);
}

int preft_srv_cancel_all(preft_server *s) {
  int n = 0;
  pthread_mutex_lock(&s->mu);
  for (srv_gen *g = s->gens; g; g = g->next, n++)
    if (g->job) preft_srv_job_cancel(g->job);
  pthread_mutex_unlock(&s->mu);
  return n;
}

void preft_srv_gen_free(srv_gen *g) {
  if (!g) return;
  preft_server *s = g->s;
  pthread_mutex_lock(&s->mu);
  if (g->prev)
    g->prev->next = g->next;
  else
    s->gens = g->next;
  if (g->next) g->next->prev = g->prev;
  pthread_mutex_unlock(&s->mu);
  preft_srv_job_free(g->job); /* cancels and waits for the engine's final callbacks */
  pthread_mutex_lock(&s->mu);
  s->n_gens--;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  for (int i = 0; i < g->n_choices; i++) {
    choice_out *o = &g->out[i];
    preft_srv_buf_free(&o->text);
    preft_srv_tool_stream_free(&o->tools);
    free(o->ids);
    free(o->lp);
    free(o->offsets);
    free(o->n_top);
    free(o->top_ids);
    free(o->top_lp);
    free(o->error);
  }
  free(g->out);
  for (int i = 0; g->echo_text && i < g->req.n_prompts; i++) free(g->echo_text[i]);
  free(g->echo_text);
  free(g->echo_chars);
  for (int i = 0; g->prompt_lp && i < g->req.n_prompts; i++) preft_srv_prompt_lp_free(&g->prompt_lp[i]);
  free(g->prompt_lp);
  free(g->prompt_len);
  free(g->model_id);
  preft_srv_buf_free(&g->sse);
  preft_srv_gen_request_free(&g->req);
  free(g);
}

/* Token ids of every prompt (tokenizing text, rendering the chat template),
 * checked against the vocabulary and the context. */
static int prompt_ids(preft_server *s, srv_gen_request *r, srv_api_error *e) {
  if (r->kind == SRV_CHAT) {
    if (!s->tok) return preft_srv_bad(e, "messages", "this model has no tokenizer, so chat is not available");
    if (!preft_tokenizer_chat_template(s->tok))
      return preft_srv_bad(e, "messages", "this model's tokenizer has no chat template; use /v1/completions");
    char *text = NULL;
    preft_error err;
    if (preft_chat_template_render(s->tok, r->chat_json, r->add_generation_prompt, &text, &err) != 0)
      return preft_srv_bad(e, "messages", "the chat template failed on these messages: %s", err.msg);
    r->prompts = preft_xcalloc(1, sizeof *r->prompts);
    r->n_prompts = 1;
    r->prompts[0].text = text;
  }
  for (int i = 0; i < r->n_prompts; i++) {
    srv_prompt *p = &r->prompts[i];
    const char *param = r->kind == SRV_CHAT ? "messages" : "prompt";
    if (p->text) {
      if (!s->tok)
        return preft_srv_bad(e, param,
                             "this model has no tokenizer; send the prompt as an array of token ids");
      size_t bytes = strlen(p->text);
      if (s->max_prompt_bytes && bytes > s->max_prompt_bytes) /* too long to be worth tokenizing */
        return preft_srv_fail(e, 400, "invalid_request_error", "context_length_exceeded", param,
                              "This model's maximum context length is %d tokens; the prompt has %zu bytes, "
                              "more than %zu tokens can hold",
                              s->max_context, bytes, s->max_prompt_bytes);
      int32_t *ids;
      size_t n;
      preft_error err;
      /* A rendered chat template already holds its special tokens. */
      /* no more of a long prompt than it takes to know it does not fit */
      if (preft_tokenizer_encode_max(s->tok, p->text, bytes, r->kind != SRV_CHAT, (size_t)s->max_context,
                                     &ids, &n, &err) != 0)
        return preft_srv_bad(e, param, "the prompt cannot be tokenized: %s", err.msg);
      p->ids = preft_xmalloc(sizeof(int) * (n ? n : 1));
      for (size_t k = 0; k < n; k++) p->ids[k] = ids[k];
      p->n_ids = (int)n;
      free(ids);
    }
    if (p->n_ids == 0) return preft_srv_bad(e, param, "the prompt is empty (no tokens)");
    for (int k = 0; k < p->n_ids; k++)
      if (p->ids[k] >= s->vocab)
        return preft_srv_bad(e, param, "token id %d at position %d is outside the vocabulary (size %d)",
                             p->ids[k], k, s->vocab);
    if (p->n_ids >= s->max_context)
      return preft_srv_fail(
          e, 400, "invalid_request_error", "context_length_exceeded", param,
          "This model's maximum context length is %d tokens; the prompt has %s%d tokens, which leaves no "
          "room for a completion",
          s->max_context, p->text ? "at least " : "", p->n_ids);
    if (r->max_tokens > 0 && (long)p->n_ids + r->max_tokens > s->max_context)
      return preft_srv_fail(
          e, 400, "invalid_request_error", "context_length_exceeded", "max_tokens",
          "This model's maximum context length is %d tokens. However, you requested %ld tokens (%d in "
          "the prompt, %d in the completion). Please reduce the prompt or max_tokens",
          s->max_context, (long)p->n_ids + r->max_tokens, p->n_ids, r->max_tokens);
  }
  return 0;
}

/* A request that failed before its first token: a 400 naming the adapter
 * when its files failed to load (the client chose it), else a 500. */
static int gen_failed(const srv_gen *g, const char *error, bool adapter_unavailable, srv_api_error *e) {
  if (adapter_unavailable)
    return preft_srv_fail(e, 400, "invalid_request_error", "adapter_unavailable", "model",
                          "The adapter '%s' is unavailable: %s", g->model_id,
                          error ? error : "it failed to load");
  return preft_srv_fail(e, 500, "server_error", NULL, NULL, "%s", error ? error : "generation failed");
}

static int submit_error(preft_server *s, int rc, const preft_error *err, srv_api_error *e, const srv_gen *g) {
  if (rc == PREFT_SUBMIT_BUSY && atomic_load(&s->draining))
    return preft_srv_fail(e, 503, "server_error", "server_draining", NULL, "the server is shutting down");
  if (rc == PREFT_SUBMIT_BUSY)
    return preft_srv_fail(e, 429, "rate_limit_error", "queue_full", NULL,
                          "the server's request queue is full: %s", err->msg);
  if (rc == PREFT_SUBMIT_NO_ADAPTER)
    return preft_srv_fail(e, 404, "invalid_request_error", "model_not_found", "model",
                          "The model '%s' does not exist", g->model_id);
  if (rc == PREFT_SUBMIT_ADAPTER_UNAVAILABLE) return gen_failed(g, err->msg, true, e);
  return preft_srv_bad(e, NULL, "%s", err->msg);
}

/* Takes the job's next events (preft_srv_job_take); when the client has hung
 * up, cancels the job and returns -1 with e filled (499). */
static int take_events(srv_gen *g, srv_event **ev, size_t *n, srv_api_error *e) {
  int rc = preft_srv_job_take(g->job, g->fd, ev, n);
  if (rc != SRV_TAKE_HUNG_UP) return rc;
  preft_srv_job_cancel(g->job);
  return preft_srv_fail(e, 499, "invalid_request_error", NULL, NULL, "the client closed the connection");
}

/* With echo (or prompt_logprobs) a stream starts with one chunk per choice
 * holding the prompt's text (and its logprobs), as vLLM streams it. */
static void sse_echo_chunks(srv_gen *g) {
  for (int ci = 0; ci < g->n_choices; ci++) {
    int prompt = g->out[ci].prompt;
    srv_buf *b = &g->sse;
    preft_srv_buf_puts(b, "data: ");
    json_head(g, b, "text_completion");
    preft_srv_buf_printf(b, ",\"choices\":[{\"index\":%d,\"text\":", ci);
    const char *t = g->echo_text ? g->echo_text[prompt] : "";
    preft_srv_buf_json_str(b, t, strlen(t));
    if (g->req.prompt_logprobs >= 0) {
      preft_srv_buf_puts(b, ",\"prompt_logprobs\":");
      json_prompt_logprobs(g, prompt, b);
    }
    preft_srv_buf_puts(b, ",\"logprobs\":");
    if (g->req.echo && g->req.logprobs >= 0)
      json_logprobs_legacy(g, prompt, true, NULL, NULL, NULL, NULL, NULL, NULL, 0, b);
    else
      preft_srv_buf_puts(b, "null");
    preft_srv_buf_puts(b, ",\"finish_reason\":null}]}\n\n");
  }
}

/* The prompts' echoed text and log-probabilities (echo, prompt_logprobs),
 * computed before the request goes to the engine. */
static int prepare_echo(preft_server *s, srv_gen *g, const char *adapter, srv_api_error *e) {
  srv_gen_request *q = &g->req;
  int n = q->n_prompts;
  if (q->echo) {
    g->echo_text = preft_xcalloc((size_t)n, sizeof *g->echo_text);
    g->echo_chars = preft_xcalloc((size_t)n, sizeof *g->echo_chars);
    for (int i = 0; i < n; i++) {
      const srv_prompt *p = &q->prompts[i];
      if (p->text) {
        g->echo_text[i] = preft_xstrdup(p->text);
      } else if (s->tok) {
        int32_t *ids = preft_xmalloc(sizeof *ids * (size_t)p->n_ids);
        for (int t = 0; t < p->n_ids; t++) ids[t] = p->ids[t];
        size_t len;
        preft_error err;
        int rc = preft_tokenizer_decode(s->tok, ids, (size_t)p->n_ids, PREFT_DECODE_NO_CLEANUP,
                                        &g->echo_text[i], &len, &err);
        free(ids);
        if (rc != 0) return preft_srv_bad(e, "prompt", "the prompt cannot be decoded for echo: %s", err.msg);
      } else {
        g->echo_text[i] = preft_xstrdup(""); /* no tokenizer: the token ids carry the prompt */
      }
      g->echo_chars[i] = preft_srv_utf8_chars(g->echo_text[i], strlen(g->echo_text[i]));
    }
  }
  if (!(q->echo && q->logprobs >= 0) && q->prompt_logprobs < 0) return 0;
  int k = q->prompt_logprobs > (q->echo ? q->logprobs : -1) ? q->prompt_logprobs : q->logprobs;
  g->prompt_lp = preft_xcalloc((size_t)n, sizeof *g->prompt_lp);
  for (int i = 0; i < n; i++)
    if (preft_srv_prompt_logprobs(s, adapter, q->adapter_mode, q->prompts[i].ids, q->prompts[i].n_ids,
                                  k < 0 ? 0 : k, &g->prompt_lp[i], e) != 0)
      return -1;
  return 0;
}

/* Waits for the first events of a stream before answering, so that a
 * request that fails at once (an adapter whose files do not load) gets an
 * error status instead of a 200 stream holding an error. */
static int stream_start(srv_gen *g, srv_api_error *e) {
  srv_event *ev;
  size_t n;
  int rc = take_events(g, &ev, &n, e);
  if (rc < 0) return -1;
  const char *error = NULL;
  int n_err = 0;
  bool adapter_unavailable = false;
  for (size_t i = 0; i < n; i++)
    if (ev[i].finish == PREFT_FINISH_ERROR) {
      n_err++;
      error = ev[i].error;
      adapter_unavailable |= ev[i].adapter_unavailable;
    }
  if (n_err == g->n_choices) {
    gen_failed(g, error, adapter_unavailable, e);
    preft_srv_events_free(ev, n);
    return -1;
  }
  if (g->req.echo || g->req.prompt_logprobs >= 0) sse_echo_chunks(g);
  for (size_t i = 0; i < n; i++) sse_event(g, &ev[i]);
  preft_srv_events_free(ev, n);
  if (rc == SRV_TAKE_ALL_DONE || g->n_done == g->n_choices) sse_finish(g);
  return 0;
}

static int wait_whole(srv_gen *g, srv_api_error *e) {
  for (;;) {
    srv_event *ev;
    size_t n;
    int rc = take_events(g, &ev, &n, e);
    if (rc < 0) return -1;
    for (size_t i = 0; i < n; i++) accumulate(g, &ev[i]);
    preft_srv_events_free(ev, n);
    if (rc == SRV_TAKE_ALL_DONE || g->n_done == g->n_choices) break;
  }
  for (int i = 0; i < g->n_choices; i++)
    if (g->out[i].finish == PREFT_FINISH_ERROR)
      return gen_failed(g, g->out[i].error, g->out[i].adapter_unavailable, e);
  return 0;
}

void preft_srv_route_generate(preft_server *s, srv_conn *c, srv_kind kind, srv_reply *r) {
  srv_api_error e;
  if (atomic_load(&s->draining)) {
    preft_srv_fail(&e, 503, "server_error", "server_draining", NULL, "the server is shutting down");
    preft_srv_reply_error(r, &e);
    return;
  }
  if (!s->engine) {
    preft_srv_bad(&e, "model", "'%s' is an encoder: it serves /v1/embeddings, not generation", s->model_name);
    preft_srv_reply_error(r, &e);
    return;
  }
  srv_gen *g = preft_xcalloc(1, sizeof *g);
  g->s = s;
  g->fd = c->fd;
  g->created = (long)time(NULL);
  gen_register(s, g);
  if (preft_srv_parse_gen_request(c->body.p, c->body.len, kind, &g->req, &e) != 0) goto fail;
  srv_gen_request *q = &g->req;
  const char *adapter = NULL;
  if (q->model && strcmp(q->model, s->model_name) != 0) {
    if (!preft_engine_resolve_adapter(s->engine, q->model)) {
      preft_srv_fail(&e, 404, "invalid_request_error", "model_not_found", "model",
                     "The model '%s' does not exist", q->model);
      goto fail;
    }
    adapter = q->model;
  }
  g->model_id = preft_xstrdup(q->model ? q->model : s->model_name);
  snprintf(g->id, sizeof g->id, "%s-%016llx", kind == SRV_CHAT ? "chatcmpl" : "cmpl",
           (unsigned long long)fresh_u64(s));
  if (prompt_ids(s, q, &e) != 0) goto fail;
  if (preft_srv_prepare_constraint(s, q, &e) != 0) goto fail;
  for (int i = 0; i < q->n_stop_token_ids; i++)
    if (q->stop_token_ids[i] >= s->vocab) {
      preft_srv_bad(&e, "stop_token_ids", "stop token id %d is outside the vocabulary (size %d)",
                    q->stop_token_ids[i], s->vocab);
      goto fail;
    }
  for (int i = 0; i < q->n_bias; i++)
    if (q->bias_ids[i] >= s->vocab) {
      preft_srv_bad(&e, "logit_bias", "logit_bias token id %d is outside the vocabulary (size %d)",
                    q->bias_ids[i], s->vocab);
      goto fail;
    }

  g->n_choices = q->n_prompts * q->n;
  g->out = preft_xcalloc((size_t)g->n_choices, sizeof *g->out);
  g->tools_on = kind == SRV_CHAT && q->tools && q->tool_choice != SRV_TOOLS_NONE;
  g->call_ids = fresh_u64(s);
  if (g->tools_on)
    for (int i = 0; i < g->n_choices; i++)
      preft_srv_tool_stream_init(&g->out[i].tools, preft_srv_tool_family(s));
  g->prompt_len = preft_xcalloc((size_t)q->n_prompts, sizeof *g->prompt_len);
  for (int i = 0; i < q->n_prompts; i++) g->prompt_len[i] = q->prompts[i].n_ids;
  for (int ci = 0; ci < g->n_choices; ci++) g->out[ci].prompt = ci / q->n;
  if ((q->echo || q->prompt_logprobs >= 0) && prepare_echo(s, g, adapter, &e) != 0) goto fail;
  if (q->max_tokens == 0) { /* echo only: the prompt scored, nothing generated (not streamed) */
    for (int ci = 0; ci < g->n_choices; ci++) g->out[ci].finish = PREFT_FINISH_LENGTH;
    r->status = 200;
    r->content_type = "application/json";
    whole_response(g, &r->body);
    preft_srv_gen_free(g);
    return;
  }
  srv_job *job = preft_srv_job_new(s->engine, s->tok, g->n_choices, q->stop, q->n_stop,
                                   q->skip_special_tokens, &s->cb_nanos);
  job->may_probe = c->http11; /* until the response starts: see preft_srv_job_take */
  job->min_tokens = q->min_tokens;
  pthread_mutex_lock(&s->mu); /* preft_srv_cancel_all reads g->job */
  g->job = job;
  pthread_mutex_unlock(&s->mu);

  int stop_ids[3 * PREFT_MAX_EOS + SRV_MAX_STOP_IDS], n_stop_ids = 0;
  if (!q->ignore_eos)
    for (int i = 0; i < s->n_eos; i++) stop_ids[n_stop_ids++] = s->eos_ids[i];
  for (int i = 0; i < q->n_stop_token_ids; i++) stop_ids[n_stop_ids++] = q->stop_token_ids[i];
  preft_sampling samp = s->defaults;
  if (q->has_temperature) samp.temperature = (float)q->temperature;
  if (q->has_top_p) samp.top_p = (float)q->top_p;
  if (q->has_top_k) samp.top_k = q->top_k;
  if (q->has_min_p) samp.min_p = (float)q->min_p;
  uint64_t seed = q->has_seed ? q->seed : fresh_u64(s);
  for (int ci = 0; ci < g->n_choices; ci++) {
    const srv_prompt *p = &q->prompts[ci / q->n];
    int max_tokens = q->max_tokens > 0 ? q->max_tokens : s->max_context - p->n_ids;
    if (q->max_tokens <= 0 && kind == SRV_COMPLETION && max_tokens > 16)
      max_tokens = 16; /* OpenAI's default */
    preft_request_params rp = {.prompt = p->ids,
                               .n_prompt = p->n_ids,
                               .adapter = adapter,
                               .adapter_mode = q->adapter_mode,
                               .max_tokens = max_tokens,
                               .sampling = samp,
                               .stop_ids = stop_ids,
                               .n_stop_ids = n_stop_ids,
                               .logprobs = q->logprobs < 0   ? 0
                                           : q->logprobs > 0 ? q->logprobs
                                                             : 1,
                               .penalties = {.presence = (float)q->presence_penalty,
                                             .frequency = (float)q->frequency_penalty,
                                             .repetition = (float)q->repetition_penalty,
                                             .bias_ids = q->bias_ids,
                                             .bias = q->bias,
                                             .n_bias = q->n_bias,
                                             .min_tokens = q->min_tokens}};
    rp.sampling.seed = seed + (uint64_t)(ci % q->n);
    rp.constraint = preft_srv_constraint_new(s, q, stop_ids, n_stop_ids);
    g->out[ci].prompt = ci / q->n;
    preft_error err;
    int rc = preft_srv_job_submit(g->job, ci, &rp, &err);
    if (rc != PREFT_SUBMIT_OK) {
      preft_gmatch_free(rp.constraint);
      submit_error(s, rc, &err, &e, g);
      goto fail;
    }
  }
  if (q->stream) {
    if (stream_start(g, &e) != 0) goto fail;
    g->job->may_probe = false; /* the 200 and the events follow */
    r->status = 200;
    r->content_type = "text/event-stream";
    r->stream = g;
    return;
  }
  if (wait_whole(g, &e) != 0) goto fail;
  r->status = 200;
  r->content_type = "application/json";
  whole_response(g, &r->body);
  preft_srv_gen_free(g);
  return;
fail:
  preft_srv_reply_error(r, &e);
  preft_srv_gen_free(g);
}
