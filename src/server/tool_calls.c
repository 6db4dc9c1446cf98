/* tool_calls.c - tool calls in chat output, per template family (tool_calls.h). */
#include "server/tool_calls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/grammar_front.h"
#include "server/server_int.h"
#include "text/unicode.h"

#define MAX_REQUIRED_CALLS 8

enum { ST_START, ST_CONTENT, ST_IN_CALL, ST_JSON };

static const char HERMES_OPEN[] = "<tool_call>", HERMES_CLOSE[] = "</tool_call>";
static const char PYTHON_TAG[] = "<|python_tag|>", MISTRAL_TAG[] = "[TOOL_CALLS]";

srv_tool_family preft_srv_tool_family_of_template(const char *t) {
  if (!t) return SRV_TOOL_HERMES;
  if (strstr(t, HERMES_OPEN)) return SRV_TOOL_HERMES;
  if (strstr(t, MISTRAL_TAG)) return SRV_TOOL_MISTRAL;
  if (strstr(t, PYTHON_TAG) || strstr(t, "<|start_header_id|>")) return SRV_TOOL_LLAMA3;
  return SRV_TOOL_HERMES;
}

srv_tool_family preft_srv_tool_family(const struct preft_server *s) {
  return preft_srv_tool_family_of_template(s->tok ? preft_tokenizer_chat_template(s->tok) : NULL);
}

const char *preft_srv_tool_family_name(srv_tool_family f) {
  return f == SRV_TOOL_LLAMA3 ? "llama3" : f == SRV_TOOL_MISTRAL ? "mistral" : "hermes";
}

/* ---- the grammar of forced calls ------------------------------------------------------ */

static const char *tool_name(const cJSON *t) {
  return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(t, "function"), "name")
      ->valuestring;
}

/* Appends the rule body of one call of tool t (its arguments' rule is args). */
static void call_body(preft_buf *b, srv_tool_family f, const char *name, const char *args) {
  preft_buf_puts(b, "\"{\" ws \"\\\"name\\\"\" ws \":\" ws ");
  cJSON *n = cJSON_CreateString(name);
  char *q = cJSON_PrintUnformatted(n);
  preft_gbnf_literal(b, q, strlen(q));
  free(q);
  cJSON_Delete(n);
  preft_buf_puts(b, f == SRV_TOOL_LLAMA3 ? " ws \",\" ws \"\\\"parameters\\\"\" ws \":\" ws "
                                         : " ws \",\" ws \"\\\"arguments\\\"\" ws \":\" ws ");
  preft_buf_puts(b, args);
  preft_buf_puts(b, " ws \"}\"");
}

int preft_srv_tool_grammar(srv_tool_family f, const cJSON *tools, const char *only, char **gbnf,
                           preft_error *err) {
  *gbnf = NULL;
  preft_gbnf_gen *g = preft_gbnf_gen_new();
  preft_gbnf_gen_any_value(g); /* defines ws */
  preft_buf call = {0};
  int i = 0, n = 0;
  for (const cJSON *t = tools ? tools->child : NULL; t; t = t->next, i++) {
    const char *name = tool_name(t);
    if (only && strcmp(name, only) != 0) continue;
    const cJSON *params =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(t, "function"), "parameters");
    const char *args;
    char what[64];
    snprintf(what, sizeof what, "tools[%d].function.parameters", i);
    if (params && !cJSON_IsNull(params)) {
      if (preft_gbnf_gen_schema(g, params, what, &args, err) != 0) {
        preft_buf_free(&call);
        preft_gbnf_gen_free(g);
        return -1;
      }
    } else {
      args = preft_gbnf_gen_any_object(g);
    }
    if (n++) preft_buf_puts(&call, " | ");
    preft_buf_putc(&call, '(');
    call_body(&call, f, name, args);
    preft_buf_putc(&call, ')');
  }
  if (n == 0) {
    preft_gbnf_gen_free(g);
    return preft_fail(err, "no tool to call");
  }
  preft_buf_putc(&call, 0);
  preft_gbnf_append(g, "toolcall ::= ");
  preft_gbnf_append(g, call.data);
  preft_gbnf_append(g, "\n");
  preft_buf_free(&call);
  const char *root;
  char buf[160];
  int more = only ? 0 : MAX_REQUIRED_CALLS - 1;
  if (f == SRV_TOOL_HERMES) {
    preft_gbnf_append(g, "hermescall ::= \"<tool_call>\\n\" toolcall \"\\n</tool_call>\"\n");
    snprintf(buf, sizeof buf, "hermescall (\"\\n\" hermescall){0,%d}", more);
    root = buf;
  } else if (f == SRV_TOOL_MISTRAL) {
    snprintf(buf, sizeof buf, "\"[\" toolcall (\",\" ws toolcall){0,%d} \"]\"", more);
    root = buf;
  } else {
    root = "toolcall"; /* Llama 3 calls one function per reply */
  }
  *gbnf = preft_gbnf_gen_finish(g, root);
  preft_gbnf_gen_free(g);
  return 0;
}

/* ---- parsing ------------------------------------------------------------------------------- */

void preft_srv_tool_stream_init(srv_tool_stream *t, srv_tool_family fam) {
  memset(t, 0, sizeof *t);
  t->fam = fam;
  t->state = fam == SRV_TOOL_HERMES ? ST_CONTENT : ST_START;
}

void preft_srv_tool_stream_free(srv_tool_stream *t) {
  for (int i = 0; i < t->n_calls; i++) {
    free(t->calls[i].name);
    free(t->calls[i].arguments);
  }
  free(t->calls);
  preft_srv_buf_free(&t->pending);
  memset(t, 0, sizeof *t);
}

static bool is_ws(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

static void add_call(srv_tool_stream *t, const char *name, char *args) {
  if (t->n_calls == t->cap_calls) {
    t->cap_calls = t->cap_calls ? 2 * t->cap_calls : 4;
    t->calls = preft_xrealloc(t->calls, sizeof *t->calls * (size_t)t->cap_calls);
  }
  t->calls[t->n_calls].name = preft_xstrdup(name);
  t->calls[t->n_calls++].arguments = args;
}

/* A call object {"name": string, "arguments" | "parameters": object | string}. */
static bool call_of(const cJSON *o, char **name, char **args) {
  const cJSON *n = cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, "name") : NULL;
  if (!cJSON_IsString(n) || !n->valuestring[0]) return false;
  const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "arguments");
  if (!a) a = cJSON_GetObjectItemCaseSensitive(o, "parameters");
  if (a && cJSON_IsString(a)) {
    cJSON *j = cJSON_Parse(a->valuestring);
    bool ok = cJSON_IsObject(j);
    cJSON_Delete(j);
    if (!ok) return false;
    *args = preft_xstrdup(a->valuestring);
  } else if (!a || cJSON_IsNull(a)) {
    *args = preft_xstrdup("{}");
  } else if (cJSON_IsObject(a)) {
    *args = cJSON_PrintUnformatted(a);
  } else {
    return false;
  }
  *name = preft_xstrdup(n->valuestring);
  return true;
}

/* Parses s[0..n) as calls: objects (joined by ';' or whitespace) or one
 * array of objects. All or nothing. */
static bool parse_calls(srv_tool_stream *t, const char *s, size_t n) {
  size_t i = 0;
  int first_new = t->n_calls;
  while (i < n) {
    while (i < n && (is_ws(s[i]) || s[i] == ';')) i++;
    if (i == n) break;
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(s + i, n - i, &end, false);
    if (!j) goto fail;
    bool ok = true;
    if (cJSON_IsArray(j)) {
      for (const cJSON *x = j->child; x && ok; x = x->next) {
        char *name, *args;
        if ((ok = call_of(x, &name, &args))) {
          add_call(t, name, args);
          free(name);
        }
      }
      ok = ok && j->child;
    } else {
      char *name, *args;
      if ((ok = call_of(j, &name, &args))) {
        add_call(t, name, args);
        free(name);
      }
    }
    cJSON_Delete(j);
    if (!ok) goto fail;
    i = (size_t)(end - s);
  }
  return t->n_calls > first_new;
fail:
  while (t->n_calls > first_new) {
    t->n_calls--;
    free(t->calls[t->n_calls].name);
    free(t->calls[t->n_calls].arguments);
  }
  return false;
}

static void pending_drop(srv_tool_stream *t, size_t k) {
  memmove(t->pending.p, t->pending.p + k, t->pending.len - k);
  t->pending.len -= k;
}

static size_t find(const char *s, size_t n, const char *needle) {
  size_t m = strlen(needle);
  for (size_t i = 0; i + m <= n; i++)
    if (!memcmp(s + i, needle, m)) return i;
  return (size_t)-1;
}

/* Length of the longest suffix of s[0..n) that is a proper prefix of marker. */
static size_t partial_suffix(const char *s, size_t n, const char *marker) {
  size_t m = strlen(marker);
  for (size_t k = m - 1 < n ? m - 1 : n; k > 0; k--)
    if (!memcmp(s + n - k, marker, k)) return k;
  return 0;
}

static bool all_ws(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!is_ws(s[i])) return false;
  return true;
}

/* Lets out pending[0..k) as content; whitespace alone is held back once a
 * call was seen (the blank between calls is not content). */
static void release(srv_tool_stream *t, size_t k, srv_buf *content) {
  if (k == 0 || (t->n_calls > 0 && all_ws(t->pending.p, k))) return;
  preft_srv_buf_put(content, t->pending.p, k);
  pending_drop(t, k);
}

static const char *content_marker(srv_tool_family f) {
  return f == SRV_TOOL_HERMES ? HERMES_OPEN : f == SRV_TOOL_MISTRAL ? MISTRAL_TAG : PYTHON_TAG;
}

/* ST_START (llama3, mistral): does the reply begin with a call? 1 yes, 0 no, -1 not known yet. */
static int starts_call(const srv_tool_stream *t) {
  const char *s = t->pending.p;
  size_t n = t->pending.len, i = 0;
  while (i < n && is_ws(s[i])) i++;
  if (i == n) return -1;
  s += i;
  n -= i;
  const char *tag = t->fam == SRV_TOOL_LLAMA3 ? PYTHON_TAG : MISTRAL_TAG;
  size_t tl = strlen(tag);
  if (n >= tl && !memcmp(s, tag, tl)) return 1;
  if (n < tl && !memcmp(s, tag, n)) return -1;
  if (t->fam == SRV_TOOL_LLAMA3) return s[0] == '{';
  if (s[0] != '[') return 0;
  size_t j = 1;
  while (j < n && is_ws(s[j])) j++;
  if (j == n) return -1;
  return s[j] == '{';
}

void preft_srv_tool_stream_feed(srv_tool_stream *t, const char *text, size_t n, srv_buf *content) {
  if (n) preft_srv_buf_put(&t->pending, text, n);
  for (;;) {
    if (t->state == ST_START) {
      int c = starts_call(t);
      if (c < 0) return;
      t->state = c ? ST_JSON : ST_CONTENT;
    } else if (t->state == ST_JSON) {
      return; /* parsed at the end */
    } else if (t->state == ST_CONTENT) {
      const char *marker = content_marker(t->fam);
      size_t at = find(t->pending.p, t->pending.len, marker);
      if (at == (size_t)-1) {
        release(t, t->pending.len - partial_suffix(t->pending.p, t->pending.len, marker), content);
        return;
      }
      size_t before = t->pending.len;
      release(t, at, content);
      if (at > 0 && t->pending.len == before) pending_drop(t, at); /* the blank between calls */
      if (t->fam == SRV_TOOL_HERMES) {
        pending_drop(t, strlen(marker));
        t->state = ST_IN_CALL;
      } else {
        t->state = ST_JSON;
      }
    } else { /* ST_IN_CALL (hermes) */
      size_t at = find(t->pending.p, t->pending.len, HERMES_CLOSE);
      if (at == (size_t)-1) return;
      if (!parse_calls(t, t->pending.p, at)) { /* not a call after all: content, marks and all */
        preft_srv_buf_puts(content, HERMES_OPEN);
        preft_srv_buf_put(content, t->pending.p, at + strlen(HERMES_CLOSE));
      }
      pending_drop(t, at + strlen(HERMES_CLOSE));
      t->state = ST_CONTENT;
    }
  }
}

void preft_srv_tool_stream_finish(srv_tool_stream *t, srv_buf *content) {
  preft_srv_tool_stream_feed(t, "", 0, content);
  const char *s = t->pending.p;
  size_t n = t->pending.len;
  if (t->state == ST_IN_CALL) {
    if (!parse_calls(t, s, n)) { /* an unfinished call stays text */
      preft_srv_buf_puts(content, HERMES_OPEN);
      preft_srv_buf_put(content, s, n);
    }
  } else if (t->state == ST_JSON) {
    size_t i = 0;
    while (i < n && is_ws(s[i])) i++;
    const char *tag = t->fam == SRV_TOOL_LLAMA3 ? PYTHON_TAG : MISTRAL_TAG;
    size_t skip = n - i >= strlen(tag) && !memcmp(s + i, tag, strlen(tag)) ? i + strlen(tag) : 0;
    if (!parse_calls(t, s + skip, n - skip)) preft_srv_buf_put(content, s, n);
  } else if (!(t->n_calls > 0 && all_ws(s, n))) {
    preft_srv_buf_put(content, s, n);
  }
  t->pending.len = 0;
  t->state = ST_CONTENT;
}
