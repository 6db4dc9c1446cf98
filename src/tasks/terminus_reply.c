/* terminus_reply.c - the terminus agent's reply: the JSON object
 *   {"analysis": "...", "plan": "...",
 *    "commands": [{"keystrokes": "ls -la\n", "duration": 0.5}, ...],
 *    "task_complete": false}
 * found in the model's text (bare, in a ```json fence, or among prose) and
 * checked field by field. Errors are written for the model to read: they say
 * what was wrong and where. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>

#include "tasks/terminus_int.h"

/* Appends a formatted part to a "; "-separated message. */
static void add_part(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void add_part(char *buf, size_t cap, const char *fmt, ...) {
  size_t n = strlen(buf);
  if (n + 3 >= cap) return;
  if (n) {
    memcpy(buf + n, "; ", 3);
    n += 2;
  }
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf + n, cap - n, fmt, ap);
  va_end(ap);
}

static bool only_space(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!strchr(" \t\r\n", s[i])) return false;
  return true;
}

/* The text inside the first ``` fence whose body starts with '{' (after an
 * optional language tag such as "json"): [*start, *end). */
static bool find_fence(const char *text, const char **start, const char **end) {
  for (const char *p = strstr(text, "```"); p; p = strstr(p + 3, "```")) {
    const char *q = p + 3;
    while (*q && *q != '\n' && *q != '{') q++; /* the language tag */
    const char *body = q;
    while (*body && strchr(" \t\r\n", *body)) body++;
    if (*body != '{') continue;
    const char *close = strstr(body, "```");
    *start = body;
    *end = close ? close : body + strlen(body);
    return true;
  }
  return false;
}

/* 1-based line and column of p in text. */
static void line_col(const char *text, const char *p, int *line, int *col) {
  *line = 1;
  *col = 1;
  for (const char *s = text; s < p && *s; s++) {
    if (*s == '\n') {
      (*line)++;
      *col = 1;
    } else {
      (*col)++;
    }
  }
}

static bool has_reply_field(const cJSON *j) {
  static const char *const names[] = {"analysis", "plan", "commands", "task_complete"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (cJSON_GetObjectItemCaseSensitive(j, names[i])) return true;
  return false;
}

/* The first JSON object in [start, end) that has one of the reply's fields:
 * *obj_start and *obj_end bound it. Otherwise NULL, and errbuf says where the
 * first candidate failed (or that no object had the fields). */
static cJSON *parse_object(const char *text, const char *start, const char *end, const char **obj_start,
                           const char **obj_end, char *errbuf, size_t cap) {
  const char *first_fail = NULL;
  bool saw_object = false;
  int tries = 0;
  for (const char *p = memchr(start, '{', (size_t)(end - start)); p && tries < 64; tries++) {
    const char *stop = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(p, (size_t)(end - p), &stop, false);
    if (j && cJSON_IsObject(j) && has_reply_field(j)) {
      *obj_start = p;
      *obj_end = stop ? stop : end;
      return j;
    }
    if (j) saw_object = true;
    if (!j && !first_fail) first_fail = stop && stop >= p && stop <= end ? stop : p;
    cJSON_Delete(j);
    p = p + 1 < end ? memchr(p + 1, '{', (size_t)(end - p - 1)) : NULL;
  }
  if (first_fail) {
    int line, col;
    line_col(text, first_fail, &line, &col);
    char near[41];
    size_t k = 0;
    for (const char *s = first_fail; s < end && *s && k < 40; s++) near[k++] = (*s == '\n') ? ' ' : *s;
    near[k] = 0;
    snprintf(errbuf, cap, "invalid JSON at line %d, column %d (near \"%s\")", line, col, near);
  } else if (saw_object) {
    snprintf(errbuf, cap, "the JSON object has none of the fields analysis, plan, commands, task_complete");
  } else {
    snprintf(errbuf, cap, "no JSON object found in the response");
  }
  return NULL;
}

static char *dup_string_field(const cJSON *obj, const char *name, char *errors, size_t cap, char *warnings,
                              size_t wcap) {
  const cJSON *f = cJSON_GetObjectItemCaseSensitive(obj, name);
  if (!f || cJSON_IsNull(f)) {
    add_part(warnings, wcap, "field \"%s\" is missing", name);
    return preft_xstrdup("");
  }
  if (!cJSON_IsString(f)) {
    add_part(errors, cap, "field \"%s\" must be a string", name);
    return preft_xstrdup("");
  }
  return preft_xstrdup(f->valuestring);
}

static void parse_commands(const cJSON *arr, preft_term_reply *r, char *errors, size_t cap, char *warnings,
                           size_t wcap) {
  int n = cJSON_GetArraySize(arr);
  r->commands = n ? preft_xcalloc((size_t)n, sizeof *r->commands) : NULL;
  int i = 0;
  for (const cJSON *c = arr->child; c; c = c->next, i++) {
    if (!cJSON_IsObject(c)) {
      add_part(errors, cap, "commands[%d] must be an object with \"keystrokes\" and \"duration\"", i);
      continue;
    }
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(c, "keystrokes");
    if (!cJSON_IsString(k)) {
      add_part(errors, cap, "commands[%d].keystrokes %s", i, k ? "must be a string" : "is missing");
      continue;
    }
    double d = PREFT_TERM_DEFAULT_DURATION;
    const cJSON *dj = cJSON_GetObjectItemCaseSensitive(c, "duration");
    if (dj && !cJSON_IsNull(dj)) {
      if (!cJSON_IsNumber(dj) || !isfinite(dj->valuedouble) || dj->valuedouble < 0) {
        add_part(errors, cap, "commands[%d].duration must be a number of seconds >= 0", i);
        continue;
      }
      d = dj->valuedouble;
      if (d > PREFT_TERM_MAX_DURATION) {
        add_part(warnings, wcap, "commands[%d].duration %.0f s was capped at %.0f s", i, d,
                 PREFT_TERM_MAX_DURATION);
        d = PREFT_TERM_MAX_DURATION;
      }
    }
    preft_term_command *cmd = &r->commands[r->n_commands++];
    cmd->keystrokes = preft_xstrdup(k->valuestring);
    cmd->duration = d;
  }
}

int preft_term_reply_parse(const char *text, preft_term_reply *r, preft_error *err) {
  memset(r, 0, sizeof *r);
  char errors[sizeof err->msg] = "";
  if (!text) text = "";
  const char *start = text, *end = text + strlen(text);
  bool fenced = find_fence(text, &start, &end);
  const char *obj_start = NULL, *obj_end = NULL;
  cJSON *j = parse_object(text, start, end, &obj_start, &obj_end, errors, sizeof errors);
  if (!j) return preft_fail(err, "%s", errors);
  if (!fenced) {
    if (!only_space(text, (size_t)(obj_start - text)))
      add_part(r->warnings, sizeof r->warnings, "extra text before the JSON object was ignored");
    if (!only_space(obj_end, (size_t)(end - obj_end)))
      add_part(r->warnings, sizeof r->warnings, "extra text after the JSON object was ignored");
  }

  r->analysis = dup_string_field(j, "analysis", errors, sizeof errors, r->warnings, sizeof r->warnings);
  r->plan = dup_string_field(j, "plan", errors, sizeof errors, r->warnings, sizeof r->warnings);

  const cJSON *tc = cJSON_GetObjectItemCaseSensitive(j, "task_complete");
  if (cJSON_IsBool(tc)) {
    r->task_complete = cJSON_IsTrue(tc);
  } else if (cJSON_IsString(tc) && (!strcmp(tc->valuestring, "true") || !strcmp(tc->valuestring, "false"))) {
    r->task_complete = !strcmp(tc->valuestring, "true");
    add_part(r->warnings, sizeof r->warnings, "field \"task_complete\" should be a boolean, not a string");
  } else if (tc && !cJSON_IsNull(tc)) {
    add_part(errors, sizeof errors, "field \"task_complete\" must be true or false");
  }

  const cJSON *cmds = cJSON_GetObjectItemCaseSensitive(j, "commands");
  if (cJSON_IsArray(cmds)) {
    parse_commands(cmds, r, errors, sizeof errors, r->warnings, sizeof r->warnings);
  } else if (!cmds || cJSON_IsNull(cmds)) {
    /* a reply that only declares the task done need not list commands */
    if (!r->task_complete) add_part(errors, sizeof errors, "field \"commands\" is missing (use [] for none)");
  } else {
    add_part(errors, sizeof errors, "field \"commands\" must be an array");
  }
  cJSON_Delete(j);
  if (errors[0]) {
    preft_term_reply_free(r);
    return preft_fail(err, "%s", errors);
  }
  return 0;
}

void preft_term_reply_free(preft_term_reply *r) {
  free(r->analysis);
  free(r->plan);
  for (int i = 0; i < r->n_commands; i++) free(r->commands[i].keystrokes);
  free(r->commands);
  memset(r, 0, sizeof *r);
}
