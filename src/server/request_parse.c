/* request_parse.c - OpenAI completions / chat request bodies to
 * srv_gen_request, every field type- and range-checked (request_parse.h). */
#include "server/request_parse.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "engine/grammar.h"
#include "model/adapter.h"

/* ---- errors ------------------------------------------------------------------------ */

static int vfail(srv_api_error *e, int status, const char *type, const char *code, const char *param,
                 const char *fmt, va_list ap) {
  e->status = status;
  e->type = type;
  e->code = code;
  snprintf(e->param, sizeof e->param, "%s", param ? param : "");
  vsnprintf(e->message, sizeof e->message, fmt, ap);
  return -1;
}

int preft_srv_fail(srv_api_error *e, int status, const char *type, const char *code, const char *param,
                   const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfail(e, status, type, code, param, fmt, ap);
  va_end(ap);
  return -1;
}

int preft_srv_bad(srv_api_error *e, const char *param, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfail(e, 400, "invalid_request_error", NULL, param, fmt, ap);
  va_end(ap);
  return -1;
}

void preft_srv_error_json(const srv_api_error *e, srv_buf *out) {
  preft_srv_buf_puts(out, "{\"error\":{\"message\":");
  preft_srv_buf_json_str(out, e->message, strlen(e->message));
  preft_srv_buf_puts(out, ",\"type\":");
  const char *type = e->type ? e->type : "invalid_request_error";
  preft_srv_buf_json_str(out, type, strlen(type));
  preft_srv_buf_puts(out, ",\"param\":");
  if (e->param[0])
    preft_srv_buf_json_str(out, e->param, strlen(e->param));
  else
    preft_srv_buf_puts(out, "null");
  preft_srv_buf_puts(out, ",\"code\":");
  if (e->code)
    preft_srv_buf_json_str(out, e->code, strlen(e->code));
  else
    preft_srv_buf_puts(out, "null");
  preft_srv_buf_puts(out, "}}");
}

/* ---- JSON ------------------------------------------------------------------------------ */

/* Depth of the deepest array/object nesting, scanning outside strings; stops
 * counting past limit. Malformed text is left for cJSON to report. */
static int json_depth(const char *s, size_t n, int limit) {
  int depth = 0, max = 0;
  bool in_str = false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (in_str) {
      if (c == '\\')
        i++;
      else if (c == '"')
        in_str = false;
    } else if (c == '"') {
      in_str = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max && (max = depth) > limit) return max;
    } else if (c == ']' || c == '}') {
      depth--;
    }
  }
  return max;
}

int preft_srv_parse_json_object(const char *body, size_t len, cJSON **out, srv_api_error *e) {
  *out = NULL;
  if (len == 0) return preft_srv_bad(e, NULL, "the request body is empty; expected a JSON object");
  if (memchr(body, 0, len)) return preft_srv_bad(e, NULL, "the request body contains a NUL byte");
  if (json_depth(body, len, SRV_MAX_JSON_DEPTH) > SRV_MAX_JSON_DEPTH)
    return preft_srv_bad(e, NULL, "the request body nests JSON deeper than %d levels", SRV_MAX_JSON_DEPTH);
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, false);
  if (!root) {
    size_t off = end && end >= body ? (size_t)(end - body) : 0;
    return preft_srv_bad(e, NULL, "malformed JSON in the request body near byte %zu", off);
  }
  /* only whitespace may follow the value */
  for (const char *p = end; p && p < body + len; p++)
    if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
      cJSON_Delete(root);
      return preft_srv_bad(e, NULL, "malformed JSON in the request body: data after the value at byte %zu",
                           (size_t)(p - body));
    }
  if (!cJSON_IsObject(root)) {
    cJSON_Delete(root);
    return preft_srv_bad(e, NULL, "the request body must be a JSON object");
  }
  *out = root;
  return 0;
}

static const cJSON *field(const cJSON *o, const char *name) {
  const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
  return f && !cJSON_IsNull(f) ? f : NULL;
}

int preft_srv_get_string(const cJSON *o, const char *name, bool required, const char **out,
                         srv_api_error *e) {
  const cJSON *f = field(o, name);
  *out = NULL;
  if (!f) return required ? preft_srv_bad(e, name, "'%s' is a required field", name) : 0;
  if (!cJSON_IsString(f)) return preft_srv_bad(e, name, "'%s' must be a string", name);
  *out = f->valuestring;
  return 0;
}

static int get_bool(const cJSON *o, const char *name, bool dflt, bool *out, srv_api_error *e) {
  const cJSON *f = field(o, name);
  *out = dflt;
  if (!f) return 0;
  if (!cJSON_IsBool(f)) return preft_srv_bad(e, name, "'%s' must be a boolean", name);
  *out = cJSON_IsTrue(f);
  return 0;
}

/* An integer-valued JSON number within [lo, hi] (cJSON keeps numbers as
 * doubles; valueint saturates, so the double is checked). */
static int int_value(const cJSON *f, const char *name, double lo, double hi, double *out, srv_api_error *e) {
  if (!cJSON_IsNumber(f) || f->valuedouble != floor(f->valuedouble) || !isfinite(f->valuedouble))
    return preft_srv_bad(e, name, "'%s' must be an integer", name);
  if (f->valuedouble < lo || f->valuedouble > hi)
    return preft_srv_bad(e, name, "'%s' must be between %.0f and %.0f, got %.0f", name, lo, hi,
                         f->valuedouble);
  *out = f->valuedouble;
  return 0;
}

static int get_int(const cJSON *o, const char *name, double lo, double hi, bool *present, double *out,
                   srv_api_error *e) {
  const cJSON *f = field(o, name);
  *present = f != NULL;
  if (!f) return 0;
  return int_value(f, name, lo, hi, out, e);
}

static int get_num(const cJSON *o, const char *name, double lo, double hi, bool *present, double *out,
                   srv_api_error *e) {
  const cJSON *f = field(o, name);
  *present = f != NULL;
  if (!f) return 0;
  if (!cJSON_IsNumber(f) || !isfinite(f->valuedouble))
    return preft_srv_bad(e, name, "'%s' must be a number", name);
  if (f->valuedouble < lo || f->valuedouble > hi)
    return preft_srv_bad(e, name, "'%s' must be between %g and %g, got %g", name, lo, hi, f->valuedouble);
  *out = f->valuedouble;
  return 0;
}

/* ---- prompts ------------------------------------------------------------------------- */

static bool is_int_array(const cJSON *a) {
  if (!cJSON_IsArray(a) || !a->child) return false;
  for (const cJSON *x = a->child; x; x = x->next)
    if (!cJSON_IsNumber(x)) return false;
  return true;
}

static int ids_of(const cJSON *a, const char *param, srv_prompt *p, srv_api_error *e) {
  int n = cJSON_GetArraySize(a);
  p->ids = preft_xmalloc(sizeof(int) * (size_t)(n ? n : 1));
  p->n_ids = 0;
  for (const cJSON *x = a->child; x; x = x->next) {
    double v;
    if (int_value(x, param, 0, 2147483647.0, &v, e) != 0)
      return preft_srv_bad(e, param, "'%s' token ids must be integers in [0, 2^31)", param);
    p->ids[p->n_ids++] = (int)v;
  }
  return 0;
}

static int parse_prompts(const cJSON *root, srv_gen_request *r, srv_api_error *e) {
  const cJSON *pr = field(root, "prompt");
  if (!pr) return preft_srv_bad(e, "prompt", "'prompt' is a required field");
  if (cJSON_IsString(pr)) {
    r->prompts = preft_xcalloc(1, sizeof *r->prompts);
    r->n_prompts = 1;
    r->prompts[0].text = preft_xstrdup(pr->valuestring);
    return 0;
  }
  if (!cJSON_IsArray(pr) || !pr->child)
    return preft_srv_bad(e, "prompt",
                         "'prompt' must be a string, an array of token ids, or a non-empty array of those");
  if (is_int_array(pr)) {
    r->prompts = preft_xcalloc(1, sizeof *r->prompts);
    r->n_prompts = 1;
    return ids_of(pr, "prompt", &r->prompts[0], e);
  }
  int n = cJSON_GetArraySize(pr);
  if (n > SRV_MAX_PROMPTS)
    return preft_srv_bad(e, "prompt", "'prompt' holds %d prompts; at most %d", n, SRV_MAX_PROMPTS);
  r->prompts = preft_xcalloc((size_t)n, sizeof *r->prompts);
  /* a list of strings or a list of token-id arrays, never both (OpenAI's four forms) */
  bool strings = cJSON_IsString(pr->child);
  for (const cJSON *x = pr->child; x; x = x->next) {
    srv_prompt *p = &r->prompts[r->n_prompts++];
    if (strings && cJSON_IsString(x))
      p->text = preft_xstrdup(x->valuestring);
    else if (!strings && is_int_array(x)) {
      if (ids_of(x, "prompt", p, e) != 0) return -1;
    } else
      return preft_srv_bad(
          e, "prompt",
          "'prompt' must be a string, an array of token ids, an array of strings or an array "
          "of token-id arrays (not a mix)");
  }
  return 0;
}

/* ---- chat messages ---------------------------------------------------------------- */

/* A message as chat templates expect it back: null content (an assistant
 * message that only calls tools) as "", and each tool call's arguments, a
 * JSON string in OpenAI's format, as the object itself (Llama 3's template
 * writes them with tojson; Qwen's takes either), as vLLM does. */
static int tool_messages_for_template(cJSON *m, const char *param, srv_api_error *e) {
  cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
  if (!content)
    cJSON_AddStringToObject(m, "content", "");
  else if (cJSON_IsNull(content)) /* replacing a missing item would leak the new one */
    cJSON_ReplaceItemInObjectCaseSensitive(m, "content", cJSON_CreateString(""));
  cJSON *calls = cJSON_GetObjectItemCaseSensitive(m, "tool_calls");
  if (!calls || cJSON_IsNull(calls)) return 0;
  if (!cJSON_IsArray(calls)) return preft_srv_bad(e, param, "'%s.tool_calls' must be an array", param);
  int i = 0;
  for (cJSON *c = calls->child; c; c = c->next, i++) {
    cJSON *fn = cJSON_IsObject(c) ? cJSON_GetObjectItemCaseSensitive(c, "function") : NULL;
    cJSON *name = cJSON_IsObject(fn) ? cJSON_GetObjectItemCaseSensitive(fn, "name") : NULL;
    cJSON *args = cJSON_IsObject(fn) ? cJSON_GetObjectItemCaseSensitive(fn, "arguments") : NULL;
    if (!cJSON_IsString(name) || (args && !cJSON_IsString(args) && !cJSON_IsObject(args)))
      return preft_srv_bad(
          e, param,
          "'%s.tool_calls[%d]' must be {\"id\", \"type\": \"function\", \"function\": {\"name\": "
          "string, \"arguments\": JSON text}}",
          param, i);
    if (cJSON_IsString(args)) {
      cJSON *parsed = cJSON_Parse(args->valuestring);
      if (cJSON_IsObject(parsed))
        cJSON_ReplaceItemInObjectCaseSensitive(fn, "arguments", parsed);
      else
        cJSON_Delete(parsed);
    }
  }
  return 0;
}

/* Copies one message, turning content parts [{"type":"text","text":...}]
 * into one string (joined with newlines, as vLLM does). */
static int normalize_message(const cJSON *m, int i, cJSON *out_arr, srv_api_error *e) {
  char param[48];
  snprintf(param, sizeof param, "messages[%d]", i);
  if (!cJSON_IsObject(m))
    return preft_srv_bad(e, param, "'%s' must be an object with 'role' and 'content'", param);
  const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
  if (!cJSON_IsString(role)) return preft_srv_bad(e, param, "'%s.role' must be a string", param);
  static const char *roles[] = {"system", "developer", "user", "assistant", "tool"};
  size_t k = 0;
  while (k < sizeof roles / sizeof roles[0] && strcmp(role->valuestring, roles[k]) != 0) k++;
  if (k == sizeof roles / sizeof roles[0])
    return preft_srv_bad(
        e, param, "'%s.role' must be \"system\", \"developer\", \"user\", \"assistant\" or \"tool\"", param);
  const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
  cJSON *copy = cJSON_Duplicate(m, true);
  if (content && cJSON_IsArray(content)) {
    size_t len = 0;
    for (const cJSON *p = content->child; p; p = p->next) {
      const cJSON *type = cJSON_GetObjectItemCaseSensitive(p, "type");
      const cJSON *text = cJSON_GetObjectItemCaseSensitive(p, "text");
      if (!cJSON_IsObject(p) || !cJSON_IsString(type) || strcmp(type->valuestring, "text") != 0 ||
          !cJSON_IsString(text)) {
        cJSON_Delete(copy);
        return preft_srv_bad(
            e, param, "'%s.content' parts must be {\"type\": \"text\", \"text\": string} (no images)", param);
      }
      len += strlen(text->valuestring) + 1;
    }
    char *joined = preft_xcalloc(len + 1, 1);
    for (const cJSON *p = content->child; p; p = p->next) {
      if (p != content->child) strcat(joined, "\n");
      strcat(joined, cJSON_GetObjectItemCaseSensitive(p, "text")->valuestring);
    }
    cJSON_ReplaceItemInObjectCaseSensitive(copy, "content", cJSON_CreateString(joined));
    free(joined);
  } else if (content && !cJSON_IsString(content) && !cJSON_IsNull(content)) {
    cJSON_Delete(copy);
    return preft_srv_bad(e, param, "'%s.content' must be a string, an array of text parts, or null", param);
  }
  if (tool_messages_for_template(copy, param, e) != 0) {
    cJSON_Delete(copy);
    return -1;
  }
  cJSON_AddItemToArray(out_arr, copy);
  return 0;
}

static int parse_chat(const cJSON *root, srv_gen_request *r, srv_api_error *e) {
  const cJSON *msgs = field(root, "messages");
  if (!msgs) return preft_srv_bad(e, "messages", "'messages' is a required field");
  if (!cJSON_IsArray(msgs) || !msgs->child)
    return preft_srv_bad(e, "messages", "'messages' must be a non-empty array");
  cJSON *obj = cJSON_CreateObject();
  cJSON *arr = cJSON_AddArrayToObject(obj, "messages");
  int i = 0;
  for (const cJSON *m = msgs->child; m; m = m->next, i++)
    if (normalize_message(m, i, arr, e) != 0) {
      cJSON_Delete(obj);
      return -1;
    }
  const cJSON *tools = field(root, "tools");
  if (tools) cJSON_AddItemToObject(obj, "tools", cJSON_Duplicate(tools, true));
  const cJSON *kw = field(root, "chat_template_kwargs");
  if (kw) {
    if (!cJSON_IsObject(kw)) {
      cJSON_Delete(obj);
      return preft_srv_bad(e, "chat_template_kwargs", "'chat_template_kwargs' must be an object");
    }
    for (const cJSON *k = kw->child; k; k = k->next)
      if (strcmp(k->string, "messages") != 0 && strcmp(k->string, "tools") != 0)
        cJSON_AddItemToObject(obj, k->string, cJSON_Duplicate(k, true));
  }
  r->chat_json = cJSON_PrintUnformatted(obj);
  cJSON_Delete(obj);
  return get_bool(root, "add_generation_prompt", true, &r->add_generation_prompt, e);
}

/* ---- sampling and the rest ---------------------------------------------------------- */

static int parse_stop(const cJSON *root, srv_gen_request *r, srv_api_error *e) {
  const cJSON *st = field(root, "stop");
  if (st) {
    int n = cJSON_IsString(st) ? 1 : cJSON_IsArray(st) ? cJSON_GetArraySize(st) : -1;
    if (n < 0) return preft_srv_bad(e, "stop", "'stop' must be a string or an array of strings");
    if (n > SRV_MAX_STOPS)
      return preft_srv_bad(e, "stop", "'stop' holds %d strings; at most %d", n, SRV_MAX_STOPS);
    r->stop = preft_xcalloc((size_t)(n ? n : 1), sizeof *r->stop);
    const cJSON *x = cJSON_IsString(st) ? st : st->child;
    for (; x && r->n_stop < n; x = x->next) {
      if (!cJSON_IsString(x))
        return preft_srv_bad(e, "stop", "'stop' must be a string or an array of strings");
      size_t l = strlen(x->valuestring);
      if (l == 0 || l > SRV_MAX_STOP_LEN)
        return preft_srv_bad(e, "stop", "each stop string must be 1 to %d bytes long", SRV_MAX_STOP_LEN);
      r->stop[r->n_stop++] = preft_xstrdup(x->valuestring);
    }
  }
  const cJSON *sid = field(root, "stop_token_ids");
  if (sid) {
    int n = cJSON_IsArray(sid) ? cJSON_GetArraySize(sid) : -1;
    if (n < 0) return preft_srv_bad(e, "stop_token_ids", "'stop_token_ids' must be an array of token ids");
    if (n > SRV_MAX_STOP_IDS)
      return preft_srv_bad(e, "stop_token_ids", "'stop_token_ids' holds %d ids; at most %d", n,
                           SRV_MAX_STOP_IDS);
    r->stop_token_ids = preft_xmalloc(sizeof(int) * (size_t)(n ? n : 1));
    for (const cJSON *x = sid->child; x; x = x->next) {
      double v;
      if (int_value(x, "stop_token_ids", 0, 2147483647.0, &v, e) != 0) return -1;
      r->stop_token_ids[r->n_stop_token_ids++] = (int)v;
    }
  }
  return 0;
}

/* The logits processors (engine/penalties.h): presence_penalty and
 * frequency_penalty in [-2, 2], repetition_penalty > 0, logit_bias
 * {"token id": bias in [-100, 100]}, min_tokens <= max_tokens. Token ids
 * are checked against the vocabulary by the route. */
static int parse_penalties(const cJSON *root, srv_gen_request *r, srv_api_error *e) {
  bool has;
  double v;
  if (get_num(root, "presence_penalty", -2, 2, &has, &r->presence_penalty, e) != 0) return -1;
  if (get_num(root, "frequency_penalty", -2, 2, &has, &r->frequency_penalty, e) != 0) return -1;
  r->repetition_penalty = 1;
  if (get_num(root, "repetition_penalty", 0, 1e6, &has, &r->repetition_penalty, e) != 0) return -1;
  if (has && r->repetition_penalty <= 0)
    return preft_srv_bad(e, "repetition_penalty", "'repetition_penalty' must be greater than 0");
  if (get_int(root, "min_tokens", 0, 2147483647.0, &has, &v, e) != 0) return -1;
  r->min_tokens = has ? (int)v : 0;
  if (r->min_tokens > 0 && r->max_tokens > 0 && r->min_tokens > r->max_tokens)
    return preft_srv_bad(e, "min_tokens", "'min_tokens' (%d) must not exceed 'max_tokens' (%d)",
                         r->min_tokens, r->max_tokens);
  const cJSON *lb = field(root, "logit_bias");
  if (!lb) return 0;
  if (!cJSON_IsObject(lb))
    return preft_srv_bad(e, "logit_bias", "'logit_bias' must be an object mapping token ids to biases");
  int n = cJSON_GetArraySize(lb);
  if (n > SRV_MAX_LOGIT_BIAS)
    return preft_srv_bad(e, "logit_bias", "'logit_bias' holds %d entries; at most %d", n, SRV_MAX_LOGIT_BIAS);
  r->bias_ids = preft_xmalloc(sizeof(int) * (size_t)(n ? n : 1));
  r->bias = preft_xmalloc(sizeof(float) * (size_t)(n ? n : 1));
  for (const cJSON *x = lb->child; x; x = x->next) {
    char *end;
    long id = strtol(x->string, &end, 10);
    if (!x->string[0] || *end || id < 0 || id > 2147483647L || x->string[0] == '+' || x->string[0] == ' ')
      return preft_srv_bad(e, "logit_bias",
                           "'logit_bias' keys must be token ids (\"0\", \"42\", ...), got \"%.40s\"",
                           x->string);
    if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble) || x->valuedouble < -100 || x->valuedouble > 100)
      return preft_srv_bad(e, "logit_bias",
                           "'logit_bias' values must be numbers from -100 to 100 (token %ld)", id);
    for (int i = 0; i < r->n_bias; i++)
      if (r->bias_ids[i] == (int)id)
        return preft_srv_bad(e, "logit_bias", "'logit_bias' gives token %ld twice", id);
    r->bias_ids[r->n_bias] = (int)id;
    r->bias[r->n_bias++] = (float)x->valuedouble;
  }
  return 0;
}

/* echo and vLLM's prompt_logprobs: completions only (echo on chat is
 * vLLM's "echo the last message", a different thing). */
static int parse_echo(const cJSON *root, srv_gen_request *r, srv_api_error *e) {
  bool has;
  double v;
  if (get_bool(root, "echo", false, &r->echo, e) != 0) return -1;
  if (get_int(root, "prompt_logprobs", 0, PREFT_MAX_TOP_LOGPROBS, &has, &v, e) != 0) return -1;
  r->prompt_logprobs = has ? (int)v : -1;
  if (r->kind == SRV_CHAT && r->echo)
    return preft_srv_bad(e, "echo", "'echo' is only supported on /v1/completions");
  if (r->kind == SRV_CHAT && has)
    return preft_srv_bad(e, "prompt_logprobs", "'prompt_logprobs' is only supported on /v1/completions");
  return 0;
}

/* Fields whose only accepted values are the ones that change nothing. */
static int refuse_unsupported(const cJSON *root, const srv_gen_request *r, srv_api_error *e) {
  bool has;
  double v;
  if (get_int(root, "best_of", 1, SRV_MAX_N, &has, &v, e) != 0) return -1;
  if (has && (int)v != r->n)
    return preft_srv_bad(e, "best_of", "'best_of' is not supported (only equal to n)");
  const cJSON *suffix = field(root, "suffix");
  if (suffix && (!cJSON_IsString(suffix) || suffix->valuestring[0]))
    return preft_srv_bad(e, "suffix", "'suffix' is not supported");
  const char *user;
  return preft_srv_get_string(root, "user", false, &user, e);
}

static int parse_logprobs(const cJSON *root, srv_gen_request *r, srv_api_error *e) {
  bool has;
  double v;
  r->logprobs = -1;
  if (r->kind == SRV_COMPLETION) {
    if (get_int(root, "logprobs", 0, PREFT_MAX_TOP_LOGPROBS, &has, &v, e) != 0) return -1;
    if (has) r->logprobs = (int)v;
    return 0;
  }
  bool want;
  if (get_bool(root, "logprobs", false, &want, e) != 0) return -1;
  if (get_int(root, "top_logprobs", 0, PREFT_MAX_TOP_LOGPROBS, &has, &v, e) != 0) return -1;
  if (has && !want) return preft_srv_bad(e, "top_logprobs", "'top_logprobs' needs 'logprobs': true");
  if (want) r->logprobs = has ? (int)v : 0;
  return 0;
}

static int parse_fields(const cJSON *root, srv_kind kind, srv_gen_request *r, srv_api_error *e) {
  const char *s;
  bool has;
  double v;
  if (preft_srv_get_string(root, "model", false, &s, e) != 0) return -1;
  if (s) r->model = preft_xstrdup(s);
  if (preft_srv_get_string(root, "adapter_mode", false, &s, e) != 0) return -1;
  if (s) {
    preft_adapter_mode m;
    if (preft_adapter_mode_parse(s, &m) != 0)
      return preft_srv_bad(e, "adapter_mode", "'adapter_mode' must be \"all\" or \"prefill\", got \"%s\"", s);
    r->adapter_mode = (int)m;
  }
  if (kind == SRV_COMPLETION ? parse_prompts(root, r, e) : parse_chat(root, r, e)) return -1;
  if (get_int(root, "n", 1, SRV_MAX_N, &has, &v, e) != 0) return -1;
  if (has) r->n = (int)v;
  if ((long)r->n * (r->n_prompts ? r->n_prompts : 1) > SRV_MAX_CHOICES)
    return preft_srv_bad(e, "n", "prompts x n = %ld choices; at most %d", (long)r->n * r->n_prompts,
                         SRV_MAX_CHOICES);
  if (get_bool(root, "stream", false, &r->stream, e) != 0) return -1;
  const cJSON *so = field(root, "stream_options");
  if (so) {
    if (!cJSON_IsObject(so)) return preft_srv_bad(e, "stream_options", "'stream_options' must be an object");
    if (get_bool(so, "include_usage", false, &r->include_usage, e) != 0) {
      snprintf(e->param, sizeof e->param, "stream_options.include_usage");
      return -1;
    }
  }
  /* max_completion_tokens is the chat API's newer name for max_tokens */
  const char *mt =
      kind == SRV_CHAT && field(root, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  if (get_int(root, mt, 0, 2147483647.0, &has, &v, e) != 0) return -1;
  if (has) r->max_tokens = (int)v;
  if (parse_echo(root, r, e) != 0) return -1;
  if (has && r->max_tokens == 0 && !(r->echo && !r->stream))
    return preft_srv_bad(e, mt, "'%s' must be at least 1 (0 only with echo, not streamed)", mt);
  if (get_num(root, "temperature", 0, 2, &r->has_temperature, &r->temperature, e) != 0) return -1;
  if (get_num(root, "top_p", 0, 1, &r->has_top_p, &r->top_p, e) != 0) return -1;
  if (r->has_top_p && r->top_p <= 0) return preft_srv_bad(e, "top_p", "'top_p' must be in (0, 1]");
  if (get_num(root, "min_p", 0, 1, &r->has_min_p, &r->min_p, e) != 0) return -1;
  if (get_int(root, "top_k", -1, 1 << 30, &r->has_top_k, &v, e) != 0) return -1;
  if (r->has_top_k) r->top_k = v < 0 ? 0 : (int)v; /* -1 (vLLM) and 0 both mean off */
  if (get_int(root, "seed", -9007199254740992.0, 9007199254740992.0, &r->has_seed, &v, e) != 0) return -1;
  if (r->has_seed) r->seed = (uint64_t)(int64_t)v;
  if (parse_stop(root, r, e) != 0) return -1;
  if (parse_logprobs(root, r, e) != 0) return -1;
  if (get_bool(root, "ignore_eos", false, &r->ignore_eos, e) != 0) return -1;
  if (get_bool(root, "return_token_ids", false, &r->return_token_ids, e) != 0) return -1;
  if (get_bool(root, "skip_special_tokens", true, &r->skip_special_tokens, e) != 0) return -1;
  if (parse_penalties(root, r, e) != 0) return -1;
  if (preft_srv_parse_guided(root, r, e) != 0) return -1;
  return refuse_unsupported(root, r, e);
}

int preft_srv_parse_gen_request(const char *body, size_t len, srv_kind kind, srv_gen_request *out,
                                srv_api_error *e) {
  memset(out, 0, sizeof *out);
  out->kind = kind;
  out->adapter_mode = -1;
  out->n = 1;
  out->max_tokens = -1;
  out->logprobs = -1;
  out->prompt_logprobs = -1;
  out->skip_special_tokens = true;
  cJSON *root;
  if (preft_srv_parse_json_object(body, len, &root, e) != 0) return -1;
  int rc = parse_fields(root, kind, out, e);
  cJSON_Delete(root);
  if (rc != 0) preft_srv_gen_request_free(out);
  return rc;
}

void preft_srv_gen_request_free(srv_gen_request *r) {
  free(r->model);
  for (int i = 0; i < r->n_prompts; i++) {
    free(r->prompts[i].text);
    free(r->prompts[i].ids);
  }
  free(r->prompts);
  free(r->chat_json);
  for (int i = 0; i < r->n_stop; i++) free(r->stop[i]);
  free(r->stop);
  free(r->stop_token_ids);
  free(r->grammar_text);
  preft_grammar_unref(r->grammar);
  cJSON_Delete(r->tools);
  free(r->tool_name);
  free(r->bias_ids);
  free(r->bias);
  srv_kind kind = r->kind;
  memset(r, 0, sizeof *r);
  r->kind = kind;
}
