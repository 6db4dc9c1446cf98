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

static void live_reset(srv_tool_stream *t) {
  srv_tool_live *l = &t->live;
  for (int i = 0; i < SRV_TOOL_LIVE_MAX; i++) {
    free(l->name[i]);
    preft_srv_buf_free(&l->args[i]);
  }
  memset(l, 0, sizeof *l);
  t->live_base = t->n_calls;
}

void preft_srv_tool_stream_free(srv_tool_stream *t) {
  for (int i = 0; i < t->n_calls; i++) {
    free(t->calls[i].name);
    free(t->calls[i].arguments);
    free(t->calls[i].streamed);
  }
  free(t->calls);
  live_reset(t);
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
  t->calls[t->n_calls].streamed = NULL;
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

/* ---- the call being written ------------------------------------------------------------------- */

enum { LV_PRE, LV_BETWEEN, LV_KEY, LV_COLON, LV_VALUE, LV_ARGS, LV_SKIP, LV_DEAD };
enum { KEY_OTHER, KEY_NAME, KEY_ARGS };

/* The end of the JSON string starting at s[i] == '"' (one past its closing
 * quote), or 0 when it is not closed yet. */
static size_t string_end(const char *s, size_t n, size_t i) {
  for (size_t j = i + 1; j < n; j++) {
    if (s[j] == '\\')
      j++;
    else if (s[j] == '"')
      return j + 1;
  }
  return 0;
}

/* Follows one byte of a JSON value (arguments or a skipped value): strings,
 * nesting; returns true when the value is closed by this byte (depth back
 * to 0 after a bracket). */
static bool value_byte(srv_tool_live *l, char c) {
  if (l->in_str) {
    if (l->esc)
      l->esc = false;
    else if (c == '\\')
      l->esc = true;
    else if (c == '"')
      l->in_str = false;
    return false;
  }
  if (c == '"') {
    l->in_str = true;
  } else if (c == '{' || c == '[') {
    l->depth++;
  } else if (c == '}' || c == ']') {
    return --l->depth == 0;
  }
  return false;
}

/* Scans the call text s[0..n) (the pending text of a tag or a JSON reply)
 * from where the last scan stopped: objects one after another (in a list
 * or joined by ';'), their "name" and their "arguments" / "parameters"
 * object byte by byte. Anything unexpected ends the live view; the whole
 * parse at the end decides what the calls are. */
static void live_scan(srv_tool_stream *t, const char *s, size_t n) {
  srv_tool_live *l = &t->live;
  while (l->pos < n && l->phase != LV_DEAD) {
    char c = s[l->pos];
    switch (l->phase) {
      case LV_PRE: {
        if (is_ws(c)) {
          l->pos++;
          break;
        }
        const char *tag = t->fam == SRV_TOOL_LLAMA3    ? PYTHON_TAG
                          : t->fam == SRV_TOOL_MISTRAL ? MISTRAL_TAG
                                                       : NULL;
        size_t tl = tag ? strlen(tag) : 0, left = n - l->pos;
        if (tag && !memcmp(s + l->pos, tag, left < tl ? left : tl)) {
          if (left < tl) return; /* the tag, not whole yet */
          l->pos += tl;
          break;
        }
        if (c == '[') l->pos++;
        l->phase = c == '[' || c == '{' ? LV_BETWEEN : LV_DEAD;
        break;
      }
      case LV_BETWEEN:
        if (is_ws(c) || c == ';' || c == ',') {
          l->pos++;
        } else if (c == '{' && l->n < SRV_TOOL_LIVE_MAX) {
          l->n++;
          l->pos++;
          l->phase = LV_KEY;
        } else {
          l->phase = LV_DEAD;
        }
        break;
      case LV_KEY:
        if (is_ws(c) || c == ',') {
          l->pos++;
        } else if (c == '}') {
          l->pos++;
          l->closed[l->n - 1] = true;
          l->phase = LV_BETWEEN;
        } else if (c == '"') {
          size_t e = string_end(s, n, l->pos);
          if (!e) return; /* the key is not whole yet */
          const char *k = s + l->pos + 1;
          size_t kl = e - l->pos - 2;
          l->key = kl == 4 && !memcmp(k, "name", 4) ? KEY_NAME
                   : (kl == 9 && !memcmp(k, "arguments", 9)) || (kl == 10 && !memcmp(k, "parameters", 10))
                       ? KEY_ARGS
                       : KEY_OTHER;
          l->pos = e;
          l->phase = LV_COLON;
        } else {
          l->phase = LV_DEAD;
        }
        break;
      case LV_COLON:
        if (is_ws(c)) {
          l->pos++;
        } else if (c == ':') {
          l->pos++;
          l->phase = LV_VALUE;
        } else {
          l->phase = LV_DEAD;
        }
        break;
      case LV_VALUE: {
        if (is_ws(c)) {
          l->pos++;
          break;
        }
        int i = l->n - 1;
        l->depth = 0;
        l->in_str = l->esc = false;
        if (l->key == KEY_NAME && c == '"') {
          size_t e = string_end(s, n, l->pos);
          if (!e) return; /* the name is not whole yet */
          cJSON *j = cJSON_ParseWithLength(s + l->pos, e - l->pos);
          if (cJSON_IsString(j) && j->valuestring[0] && !l->name[i])
            l->name[i] = preft_xstrdup(j->valuestring);
          cJSON_Delete(j);
          l->pos = e;
          l->phase = LV_KEY;
        } else if (l->key == KEY_ARGS && l->args_state[i] == 0) {
          l->args_state[i] = c == '{' ? 1 : 3;
          l->phase = c == '{' ? LV_ARGS : LV_SKIP;
        } else {
          l->phase = LV_SKIP;
        }
        break;
      }
      case LV_ARGS: { /* the arguments object, byte for byte but for the blanks between tokens */
        bool closed = false;
        while (l->pos < n && !closed) {
          char b = s[l->pos++];
          bool keep = l->in_str || !is_ws(b);
          closed = value_byte(l, b);
          if (keep) preft_srv_buf_put(&l->args[l->n - 1], &b, 1);
        }
        if (closed) {
          l->args_state[l->n - 1] = 2;
          l->phase = LV_KEY;
        }
        break;
      }
      case LV_SKIP: /* any other value: up to the ',' or '}' after it */
        if (l->depth == 0 && !l->in_str && (c == ',' || c == '}')) {
          l->phase = LV_KEY;
        } else {
          value_byte(l, c);
          l->pos++;
        }
        break;
    }
  }
}

/* After parse_calls added the calls of the live text: each gets the
 * arguments text that was followed (and may have been sent) live. */
static void live_attach(srv_tool_stream *t) {
  srv_tool_live *l = &t->live;
  for (int i = 0; i < l->n; i++) {
    int k = t->live_base + i;
    if (k >= t->n_calls || l->args_state[i] != 2 || t->calls[k].streamed) continue;
    char *a = preft_xmalloc(l->args[i].len + 1);
    memcpy(a, l->args[i].p, l->args[i].len);
    a[l->args[i].len] = 0;
    t->calls[k].streamed = a;
  }
}

const char *preft_srv_tool_stream_live(const srv_tool_stream *t, int index, const char **args,
                                       size_t *args_len, bool *done) {
  const srv_tool_live *l = &t->live;
  int i = index - t->live_base;
  *args = NULL;
  *args_len = 0;
  *done = false;
  if (index < t->n_calls || i < 0 || i >= l->n || (t->state != ST_IN_CALL && t->state != ST_JSON))
    return NULL;
  if (l->args_state[i] == 1 || l->args_state[i] == 2) {
    *args = l->args[i].p;
    *args_len = l->args[i].len;
  }
  *done = l->closed[i] && l->args_state[i] == 2 && l->name[i];
  return l->name[i] ? l->name[i] : "";
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
      live_reset(t);
    } else if (t->state == ST_JSON) {
      live_scan(t, t->pending.p, t->pending.len);
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
      live_reset(t);
    } else { /* ST_IN_CALL (hermes) */
      size_t at = find(t->pending.p, t->pending.len, HERMES_CLOSE);
      if (at == (size_t)-1) {
        live_scan(t, t->pending.p,
                  t->pending.len - partial_suffix(t->pending.p, t->pending.len, HERMES_CLOSE));
        return;
      }
      live_scan(t, t->pending.p, at);
      if (parse_calls(t, t->pending.p, at)) {
        live_attach(t);
      } else { /* not a call after all: content, marks and all */
        t->abandoned += t->live.n > 0;
        preft_srv_buf_puts(content, HERMES_OPEN);
        preft_srv_buf_put(content, t->pending.p, at + strlen(HERMES_CLOSE));
      }
      pending_drop(t, at + strlen(HERMES_CLOSE));
      t->state = ST_CONTENT;
      live_reset(t);
    }
  }
}

void preft_srv_tool_stream_finish(srv_tool_stream *t, srv_buf *content) {
  preft_srv_tool_stream_feed(t, "", 0, content);
  const char *s = t->pending.p;
  size_t n = t->pending.len;
  if (t->state == ST_IN_CALL) {
    live_scan(t, s, n);
    if (parse_calls(t, s, n))
      live_attach(t);
    else { /* an unfinished call stays text */
      t->abandoned += t->live.n > 0;
      preft_srv_buf_puts(content, HERMES_OPEN);
      preft_srv_buf_put(content, s, n);
    }
  } else if (t->state == ST_JSON) {
    size_t i = 0;
    while (i < n && is_ws(s[i])) i++;
    const char *tag = t->fam == SRV_TOOL_LLAMA3 ? PYTHON_TAG : MISTRAL_TAG;
    size_t skip = n - i >= strlen(tag) && !memcmp(s + i, tag, strlen(tag)) ? i + strlen(tag) : 0;
    live_scan(t, s, n);
    if (parse_calls(t, s + skip, n - skip)) {
      live_attach(t);
    } else {
      t->abandoned += t->live.n > 0;
      preft_srv_buf_put(content, s, n);
    }
  } else if (!(t->n_calls > 0 && all_ws(s, n))) {
    preft_srv_buf_put(content, s, n);
  }
  t->pending.len = 0;
  t->state = ST_CONTENT;
  live_reset(t);
}
