/* grammar_json.c - JSON schemas to GBNF (grammar_front.h). */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/grammar_front.h"
#include "text/unicode.h"

#define MAX_SCHEMA_DEPTH 64

typedef struct {
  char *ref, *rule;
} ref_memo;

struct preft_gbnf_gen {
  preft_buf rules;
  char **names;
  int n_names, cap_names;
  ref_memo *refs;
  int n_refs, cap_refs;
  bool have_ws, have_string, have_number, have_integer, have_value;
  const cJSON *root_schema; /* for $ref */
  int depth;
};

static const char *keep_name(preft_gbnf_gen *g, const char *name) {
  if (g->n_names == g->cap_names) {
    g->cap_names = g->cap_names ? 2 * g->cap_names : 32;
    g->names = preft_xrealloc(g->names, sizeof *g->names * (size_t)g->cap_names);
  }
  return g->names[g->n_names++] = preft_xstrdup(name);
}

static const char *fresh_rule(preft_gbnf_gen *g) {
  char name[32];
  snprintf(name, sizeof name, "s%d", g->n_names);
  return keep_name(g, name);
}

static void define(preft_gbnf_gen *g, const char *name, const char *body) {
  preft_buf_puts(&g->rules, name);
  preft_buf_puts(&g->rules, " ::= ");
  preft_buf_puts(&g->rules, body);
  preft_buf_putc(&g->rules, '\n');
}

void preft_gbnf_literal(preft_buf *out, const char *s, size_t n) {
  preft_buf_putc(out, '"');
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    char tmp[8];
    if (c == '"' || c == '\\') {
      preft_buf_putc(out, '\\');
      preft_buf_putc(out, (char)c);
    } else if (c == '\n') {
      preft_buf_puts(out, "\\n");
    } else if (c < 0x20 || c == 0x7F) {
      snprintf(tmp, sizeof tmp, "\\x%02X", c);
      preft_buf_puts(out, tmp);
    } else {
      preft_buf_putc(out, (char)c);
    }
  }
  preft_buf_putc(out, '"');
}

preft_gbnf_gen *preft_gbnf_gen_new(void) { return preft_xcalloc(1, sizeof(preft_gbnf_gen)); }

void preft_gbnf_gen_free(preft_gbnf_gen *g) {
  if (!g) return;
  preft_buf_free(&g->rules);
  for (int i = 0; i < g->n_names; i++) free(g->names[i]);
  free(g->names);
  for (int i = 0; i < g->n_refs; i++) {
    free(g->refs[i].ref);
    free(g->refs[i].rule);
  }
  free(g->refs);
  free(g);
}

void preft_gbnf_append(preft_gbnf_gen *g, const char *text) { preft_buf_puts(&g->rules, text); }

/* ---- the shared rules ------------------------------------------------------------------- */

static const char *ws(preft_gbnf_gen *g) {
  if (!g->have_ws) {
    define(g, "ws", "| \" \" | \"\\n\" [ \\t]{0,20}");
    g->have_ws = true;
  }
  return "ws";
}

static const char *string_rule(preft_gbnf_gen *g) {
  if (!g->have_string) {
    define(g, "jchar", "[^\"\\\\\\x00-\\x1F\\x7F] | \"\\\\\" ([\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4})");
    define(g, "jstring", "\"\\\"\" jchar* \"\\\"\"");
    g->have_string = true;
  }
  return "jstring";
}

static const char *integer_rule(preft_gbnf_gen *g) {
  if (!g->have_integer) {
    define(g, "jint", "\"-\"? (\"0\" | [1-9] [0-9]{0,14})");
    g->have_integer = true;
  }
  return "jint";
}

static const char *number_rule(preft_gbnf_gen *g) {
  if (!g->have_number) {
    integer_rule(g);
    define(g, "jnumber", "jint (\".\" [0-9]{1,16})? ([eE] [-+]? [0-9]{1,3})?");
    g->have_number = true;
  }
  return "jnumber";
}

const char *preft_gbnf_gen_any_value(preft_gbnf_gen *g) {
  if (!g->have_value) {
    ws(g);
    string_rule(g);
    number_rule(g);
    define(g, "jvalue", "jobject | jarray | jstring | jnumber | \"true\" | \"false\" | \"null\"");
    define(g, "jobject",
           "\"{\" ws ( jstring \":\" ws jvalue ws ( \",\" ws jstring \":\" ws jvalue ws )* )? \"}\"");
    define(g, "jarray", "\"[\" ws ( jvalue ws ( \",\" ws jvalue ws )* )? \"]\"");
    g->have_value = true;
  }
  return "jvalue";
}

const char *preft_gbnf_gen_any_object(preft_gbnf_gen *g) {
  preft_gbnf_gen_any_value(g);
  return "jobject";
}

/* ---- schemas ----------------------------------------------------------------------------- */

static int gen(preft_gbnf_gen *g, const cJSON *s, const char *path, const char **rule, preft_error *err);

static int sfail(preft_error *err, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int sfail(preft_error *err, const char *path, const char *fmt, ...) {
  char msg[300];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return preft_fail(err, "%s: %s", path, msg);
}

static void sub_path(char *out, size_t n, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void sub_path(char *out, size_t n, const char *path, const char *fmt, ...) {
  int k = snprintf(out, n, "%s", path);
  if (k < 0 || (size_t)k >= n) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(out + k, n - (size_t)k, fmt, ap);
  va_end(ap);
}

/* A non-negative integer keyword, or dflt when absent. */
static int count_kw(const cJSON *s, const char *kw, const char *path, long dflt, long *out,
                    preft_error *err) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(s, kw);
  *out = dflt;
  if (!v) return 0;
  if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 4096 ||
      v->valuedouble != (long)v->valuedouble)
    return sfail(err, path, "'%s' must be an integer from 0 to 4096", kw);
  *out = (long)v->valuedouble;
  return 0;
}

static void literal_json(preft_buf *b, const cJSON *v) {
  char *t = cJSON_PrintUnformatted(v);
  preft_gbnf_literal(b, t, strlen(t));
  free(t);
}

static const char *finish_rule(preft_gbnf_gen *g, preft_buf *body) {
  const char *name = fresh_rule(g);
  preft_buf_putc(body, 0);
  define(g, name, body->data);
  preft_buf_free(body);
  return name;
}

static const char *repeat_text(long lo, long hi, char *buf, size_t n) {
  if (hi < 0)
    snprintf(buf, n, "{%ld,}", lo);
  else
    snprintf(buf, n, "{%ld,%ld}", lo, hi);
  return buf;
}

static int gen_string(preft_gbnf_gen *g, const cJSON *s, const char *path, const char **rule,
                      preft_error *err) {
  long lo, hi;
  if (count_kw(s, "minLength", path, 0, &lo, err) || count_kw(s, "maxLength", path, -1, &hi, err)) return -1;
  if (hi >= 0 && hi < lo) return sfail(err, path, "maxLength is below minLength");
  if (lo == 0 && hi < 0) {
    *rule = string_rule(g);
    return 0;
  }
  string_rule(g);
  char rep[48];
  preft_buf body = {0};
  preft_buf_puts(&body, "\"\\\"\" jchar");
  preft_buf_puts(&body, repeat_text(lo, hi, rep, sizeof rep));
  preft_buf_puts(&body, " \"\\\"\"");
  *rule = finish_rule(g, &body);
  return 0;
}

static int gen_array(preft_gbnf_gen *g, const cJSON *s, const char *path, const char **rule,
                     preft_error *err) {
  long lo, hi;
  if (count_kw(s, "minItems", path, 0, &lo, err) || count_kw(s, "maxItems", path, -1, &hi, err)) return -1;
  if (hi >= 0 && hi < lo) return sfail(err, path, "maxItems is below minItems");
  const cJSON *items = cJSON_GetObjectItemCaseSensitive(s, "items");
  const char *item;
  char p[512];
  sub_path(p, sizeof p, path, ".items");
  if (items) {
    if (gen(g, items, p, &item, err) != 0) return -1;
  } else {
    item = preft_gbnf_gen_any_value(g);
  }
  ws(g);
  preft_buf body = {0};
  if (hi == 0) {
    preft_buf_puts(&body, "\"[\" ws \"]\"");
  } else {
    char rep[48];
    preft_buf_puts(&body, "\"[\" ws ");
    if (lo == 0) preft_buf_puts(&body, "( ");
    preft_buf_puts(&body, item);
    preft_buf_puts(&body, " ws ( \",\" ws ");
    preft_buf_puts(&body, item);
    preft_buf_puts(&body, " ws )");
    preft_buf_puts(&body, repeat_text(lo > 0 ? lo - 1 : 0, hi < 0 ? -1 : hi - 1, rep, sizeof rep));
    if (lo == 0) preft_buf_puts(&body, " )?");
    preft_buf_puts(&body, " \"]\"");
  }
  *rule = finish_rule(g, &body);
  return 0;
}

static int gen_object(preft_gbnf_gen *g, const cJSON *s, const char *path, const char **rule,
                      preft_error *err) {
  const cJSON *props = cJSON_GetObjectItemCaseSensitive(s, "properties");
  const cJSON *req = cJSON_GetObjectItemCaseSensitive(s, "required");
  const cJSON *addl = cJSON_GetObjectItemCaseSensitive(s, "additionalProperties");
  char p[512];
  if (props && !cJSON_IsObject(props)) return sfail(err, path, "'properties' must be an object");
  if (req && !cJSON_IsArray(req)) return sfail(err, path, "'required' must be an array of property names");
  for (const cJSON *r = req ? req->child : NULL; r; r = r->next) {
    if (!cJSON_IsString(r)) return sfail(err, path, "'required' must be an array of property names");
    if (!props || !cJSON_GetObjectItemCaseSensitive(props, r->valuestring))
      return sfail(err, path, "required property '%s' is not in 'properties'", r->valuestring);
  }
  ws(g);
  int n = props ? cJSON_GetArraySize(props) : 0;
  if (n == 0) {
    if (addl && cJSON_IsObject(addl)) { /* a map of additionalProperties values */
      const char *val;
      sub_path(p, sizeof p, path, ".additionalProperties");
      if (gen(g, addl, p, &val, err) != 0) return -1;
      string_rule(g);
      preft_buf body = {0};
      preft_buf_puts(&body, "\"{\" ws ( jstring \":\" ws ");
      preft_buf_puts(&body, val);
      preft_buf_puts(&body, " ws ( \",\" ws jstring \":\" ws ");
      preft_buf_puts(&body, val);
      preft_buf_puts(&body, " ws )* )? \"}\"");
      *rule = finish_rule(g, &body);
    } else if (cJSON_IsFalse(addl)) {
      preft_buf body = {0};
      preft_buf_puts(&body, "\"{\" ws \"}\"");
      *rule = finish_rule(g, &body);
    } else {
      *rule = preft_gbnf_gen_any_object(g);
    }
    return 0;
  }
  /* kv[i]: "key" ":" ws value */
  const char **kv = preft_xcalloc((size_t)n, sizeof *kv);
  bool *required = preft_xcalloc((size_t)n, sizeof *required);
  int i = 0;
  for (const cJSON *pr = props->child; pr; pr = pr->next, i++) {
    const char *val;
    sub_path(p, sizeof p, path, ".properties.%s", pr->string);
    if (gen(g, pr, p, &val, err) != 0) {
      free(kv);
      free(required);
      return -1;
    }
    for (const cJSON *r = req ? req->child : NULL; r; r = r->next)
      if (!strcmp(r->valuestring, pr->string)) required[i] = true;
    cJSON *key = cJSON_CreateString(pr->string);
    preft_buf body = {0};
    literal_json(&body, key);
    cJSON_Delete(key);
    preft_buf_puts(&body, " \":\" ws ");
    preft_buf_puts(&body, val);
    preft_buf_puts(&body, " ws");
    kv[i] = finish_rule(g, &body);
  }
  /* rest[i][first]: the members from i on; first: no comma before the next one */
  const char **rest = preft_xcalloc((size_t)(2 * (n + 1)), sizeof *rest);
  rest[2 * n] = rest[2 * n + 1] = "\"\"";
  for (i = n - 1; i >= 0; i--) {
    for (int first = 0; first < 2; first++) {
      preft_buf body = {0};
      preft_buf_puts(&body, first ? "" : "\",\" ws ");
      preft_buf_puts(&body, kv[i]);
      preft_buf_putc(&body, ' ');
      preft_buf_puts(&body, rest[2 * (i + 1)]);
      if (!required[i]) {
        preft_buf_puts(&body, " | ");
        preft_buf_puts(&body, rest[2 * (i + 1) + first]);
      }
      rest[2 * i + first] = finish_rule(g, &body);
    }
  }
  preft_buf body = {0};
  preft_buf_puts(&body, "\"{\" ws ");
  preft_buf_puts(&body, rest[1]);
  preft_buf_puts(&body, " \"}\"");
  *rule = finish_rule(g, &body);
  free(kv);
  free(required);
  free(rest);
  return 0;
}

static int gen_type(preft_gbnf_gen *g, const cJSON *s, const char *type, const char *path, const char **rule,
                    preft_error *err) {
  if (!strcmp(type, "string")) return gen_string(g, s, path, rule, err);
  if (!strcmp(type, "number")) return *rule = number_rule(g), 0;
  if (!strcmp(type, "integer")) return *rule = integer_rule(g), 0;
  if (!strcmp(type, "boolean")) {
    preft_buf body = {0};
    preft_buf_puts(&body, "\"true\" | \"false\"");
    *rule = finish_rule(g, &body);
    return 0;
  }
  if (!strcmp(type, "null")) {
    preft_buf body = {0};
    preft_buf_puts(&body, "\"null\"");
    *rule = finish_rule(g, &body);
    return 0;
  }
  if (!strcmp(type, "array")) return gen_array(g, s, path, rule, err);
  if (!strcmp(type, "object")) return gen_object(g, s, path, rule, err);
  return sfail(err, path, "unknown type '%s'", type);
}

/* Alternatives of the schemas in arr. */
static int gen_any_of(preft_gbnf_gen *g, const cJSON *arr, const char *kw, const char *path,
                      const char **rule, preft_error *err) {
  if (!cJSON_IsArray(arr) || !arr->child)
    return sfail(err, path, "'%s' must be a non-empty array of schemas", kw);
  preft_buf body = {0};
  int i = 0;
  for (const cJSON *x = arr->child; x; x = x->next, i++) {
    char p[512];
    const char *r;
    sub_path(p, sizeof p, path, ".%s[%d]", kw, i);
    if (gen(g, x, p, &r, err) != 0) {
      preft_buf_free(&body);
      return -1;
    }
    if (i) preft_buf_puts(&body, " | ");
    preft_buf_puts(&body, r);
  }
  *rule = finish_rule(g, &body);
  return 0;
}

static int gen_ref(preft_gbnf_gen *g, const char *ref, const char *path, const char **rule,
                   preft_error *err) {
  for (int i = 0; i < g->n_refs; i++)
    if (!strcmp(g->refs[i].ref, ref)) return *rule = g->refs[i].rule, 0;
  const cJSON *target = NULL;
  if (!strcmp(ref, "#")) {
    target = g->root_schema;
  } else if (!strncmp(ref, "#/$defs/", 8)) {
    target =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(g->root_schema, "$defs"), ref + 8);
  } else if (!strncmp(ref, "#/definitions/", 14)) {
    target = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(g->root_schema, "definitions"),
                                              ref + 14);
  } else {
    return sfail(err, path,
                 "'$ref' \"%s\" is not supported (only \"#\", \"#/$defs/NAME\", \"#/definitions/NAME\")",
                 ref);
  }
  if (!target) return sfail(err, path, "'$ref' \"%s\" names no schema", ref);
  if (g->n_refs == g->cap_refs) {
    g->cap_refs = g->cap_refs ? 2 * g->cap_refs : 8;
    g->refs = preft_xrealloc(g->refs, sizeof *g->refs * (size_t)g->cap_refs);
  }
  const char *name = fresh_rule(g);
  g->refs[g->n_refs].ref = preft_xstrdup(ref);
  g->refs[g->n_refs++].rule = preft_xstrdup(name);
  const char *body;
  char p[512];
  snprintf(p, sizeof p, "%s", ref); /* errors inside name the definition */
  if (gen(g, target, p, &body, err) != 0) return -1;
  define(g, name, body);
  *rule = name;
  return 0;
}

static const char *unsupported[] = {"pattern",
                                    "format",
                                    "minimum",
                                    "maximum",
                                    "exclusiveMinimum",
                                    "exclusiveMaximum",
                                    "multipleOf",
                                    "uniqueItems",
                                    "not",
                                    "if",
                                    "then",
                                    "else",
                                    "patternProperties",
                                    "prefixItems",
                                    "contains",
                                    "minProperties",
                                    "maxProperties",
                                    "dependentRequired",
                                    "dependentSchemas",
                                    "propertyNames",
                                    "unevaluatedProperties",
                                    "unevaluatedItems"};

static int gen(preft_gbnf_gen *g, const cJSON *s, const char *path, const char **rule, preft_error *err) {
  if (cJSON_IsTrue(s)) return *rule = preft_gbnf_gen_any_value(g), 0;
  if (cJSON_IsFalse(s)) return sfail(err, path, "the schema false matches nothing");
  if (!cJSON_IsObject(s)) return sfail(err, path, "a schema must be an object or a boolean");
  if (++g->depth > MAX_SCHEMA_DEPTH) return sfail(err, path, "schemas nest deeper than %d", MAX_SCHEMA_DEPTH);
  int rc = -1;
  for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++)
    if (cJSON_GetObjectItemCaseSensitive(s, unsupported[i])) {
      sfail(err, path, "'%s' is not supported in schemas for constrained output", unsupported[i]);
      goto out;
    }
  const cJSON *ref = cJSON_GetObjectItemCaseSensitive(s, "$ref");
  const cJSON *cst = cJSON_GetObjectItemCaseSensitive(s, "const");
  const cJSON *en = cJSON_GetObjectItemCaseSensitive(s, "enum");
  const cJSON *any = cJSON_GetObjectItemCaseSensitive(s, "anyOf");
  const cJSON *one = cJSON_GetObjectItemCaseSensitive(s, "oneOf");
  const cJSON *all = cJSON_GetObjectItemCaseSensitive(s, "allOf");
  const cJSON *type = cJSON_GetObjectItemCaseSensitive(s, "type");
  if (ref) {
    if (!cJSON_IsString(ref)) {
      sfail(err, path, "'$ref' must be a string");
      goto out;
    }
    rc = gen_ref(g, ref->valuestring, path, rule, err);
  } else if (cst) {
    preft_buf body = {0};
    literal_json(&body, cst);
    *rule = finish_rule(g, &body);
    rc = 0;
  } else if (en) {
    if (!cJSON_IsArray(en) || !en->child) {
      sfail(err, path, "'enum' must be a non-empty array");
      goto out;
    }
    preft_buf body = {0};
    for (const cJSON *x = en->child; x; x = x->next) {
      if (x != en->child) preft_buf_puts(&body, " | ");
      literal_json(&body, x);
    }
    *rule = finish_rule(g, &body);
    rc = 0;
  } else if (any || one) {
    rc = gen_any_of(g, any ? any : one, any ? "anyOf" : "oneOf", path, rule, err);
  } else if (all) {
    if (!cJSON_IsArray(all) || cJSON_GetArraySize(all) != 1) {
      sfail(err, path, "'allOf' is supported with one schema only");
      goto out;
    }
    char p[512];
    sub_path(p, sizeof p, path, ".allOf[0]");
    rc = gen(g, all->child, p, rule, err);
  } else if (cJSON_IsString(type)) {
    rc = gen_type(g, s, type->valuestring, path, rule, err);
  } else if (cJSON_IsArray(type) && type->child) {
    preft_buf body = {0};
    for (const cJSON *t = type->child; t; t = t->next) {
      const char *r;
      if (!cJSON_IsString(t)) {
        preft_buf_free(&body);
        sfail(err, path, "'type' must be a string or an array of strings");
        goto out;
      }
      if (gen_type(g, s, t->valuestring, path, &r, err) != 0) {
        preft_buf_free(&body);
        goto out;
      }
      if (t != type->child) preft_buf_puts(&body, " | ");
      preft_buf_puts(&body, r);
    }
    *rule = finish_rule(g, &body);
    rc = 0;
  } else if (type) {
    sfail(err, path, "'type' must be a string or an array of strings");
  } else if (cJSON_GetObjectItemCaseSensitive(s, "properties")) {
    rc = gen_object(g, s, path, rule, err);
  } else if (cJSON_GetObjectItemCaseSensitive(s, "items")) {
    rc = gen_array(g, s, path, rule, err);
  } else {
    *rule = preft_gbnf_gen_any_value(g);
    rc = 0;
  }
out:
  g->depth--;
  return rc;
}

int preft_gbnf_gen_schema(preft_gbnf_gen *g, const cJSON *schema, const char *what, const char **rule,
                          preft_error *err) {
  g->root_schema = schema;
  /* $ref memos belong to one root schema */
  for (int i = 0; i < g->n_refs; i++) {
    free(g->refs[i].ref);
    free(g->refs[i].rule);
  }
  g->n_refs = 0;
  return gen(g, schema, what, rule, err);
}

char *preft_gbnf_gen_finish(preft_gbnf_gen *g, const char *root_body) {
  preft_buf out = {0};
  preft_buf_puts(&out, "root ::= ");
  preft_buf_puts(&out, root_body);
  preft_buf_putc(&out, '\n');
  if (g->rules.len) preft_buf_append(&out, g->rules.data, g->rules.len);
  return preft_buf_take(&out, NULL);
}

int preft_gbnf_from_json_schema(const cJSON *schema, const char *what, char **out, preft_error *err) {
  preft_gbnf_gen *g = preft_gbnf_gen_new();
  const char *rule;
  *out = NULL;
  if (preft_gbnf_gen_schema(g, schema, what, &rule, err) != 0) {
    preft_gbnf_gen_free(g);
    return -1;
  }
  *out = preft_gbnf_gen_finish(g, rule);
  preft_gbnf_gen_free(g);
  return 0;
}

char *preft_gbnf_json_object(void) {
  preft_gbnf_gen *g = preft_gbnf_gen_new();
  char *out = preft_gbnf_gen_finish(g, preft_gbnf_gen_any_object(g));
  preft_gbnf_gen_free(g);
  return out;
}

char *preft_gbnf_from_choices(const char *const *choices, int n) {
  preft_buf body = {0};
  for (int i = 0; i < n; i++) {
    if (i) preft_buf_puts(&body, " | ");
    preft_gbnf_literal(&body, choices[i], strlen(choices[i]));
  }
  preft_buf_putc(&body, 0);
  preft_gbnf_gen *g = preft_gbnf_gen_new();
  char *out = preft_gbnf_gen_finish(g, body.data);
  preft_gbnf_gen_free(g);
  preft_buf_free(&body);
  return out;
}
