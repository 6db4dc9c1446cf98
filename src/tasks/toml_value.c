/* toml_value.c - the value tree of the TOML and YAML readers: building,
 * looking up, freeing, and converting to JSON. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/error.h"
#include "tasks/toml.h"

preft_tv *preft_tv_new(preft_tv_kind kind, int line) {
  preft_tv *v = preft_xcalloc(1, sizeof *v);
  v->kind = kind;
  v->line = line;
  return v;
}

void preft_tv_free(preft_tv *v) {
  if (!v) return;
  for (int k = 0; k < v->n; k++) {
    if (v->keys) free(v->keys[k]);
    preft_tv_free(v->items[k]);
  }
  free(v->keys);
  free(v->items);
  free(v->str);
  free(v);
}

const preft_tv *preft_tv_get(const preft_tv *t, const char *key) {
  if (!t || t->kind != PREFT_TV_TABLE) return NULL;
  for (int k = 0; k < t->n; k++)
    if (!strcmp(t->keys[k], key)) return t->items[k];
  return NULL;
}

void preft_tv_put(preft_tv *t, const char *key, preft_tv *v) {
  PREFT_ASSERT(t->kind == PREFT_TV_TABLE || t->kind == PREFT_TV_ARRAY);
  PREFT_ASSERT((t->kind == PREFT_TV_TABLE) == (key != NULL));
  if (t->n == t->cap) {
    t->cap = t->cap ? 2 * t->cap : 4;
    t->items = preft_xrealloc(t->items, (size_t)t->cap * sizeof *t->items);
    if (t->kind == PREFT_TV_TABLE) t->keys = preft_xrealloc(t->keys, (size_t)t->cap * sizeof *t->keys);
  }
  if (key) t->keys[t->n] = preft_xstrdup(key);
  t->items[t->n++] = v;
}

const char *preft_tv_kind_name(preft_tv_kind kind) {
  switch (kind) {
    case PREFT_TV_TABLE:
      return "table";
    case PREFT_TV_ARRAY:
      return "array";
    case PREFT_TV_STRING:
      return "string";
    case PREFT_TV_INT:
      return "integer";
    case PREFT_TV_FLOAT:
      return "float";
    case PREFT_TV_BOOL:
      return "boolean";
    case PREFT_TV_NULL:
      return "null";
  }
  return "?";
}

bool preft_tv_number(const preft_tv *v, double *out) {
  if (!v) return false;
  if (v->kind == PREFT_TV_INT)
    *out = (double)v->i;
  else if (v->kind == PREFT_TV_FLOAT)
    *out = v->f;
  else
    return false;
  return true;
}

static cJSON *float_json(double f) {
  if (isnan(f)) return cJSON_CreateString("nan");
  if (isinf(f)) return cJSON_CreateString(f > 0 ? "inf" : "-inf");
  return cJSON_CreateNumber(f);
}

static cJSON *tagged(const char *type, cJSON *value) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "type", type);
  cJSON_AddItemToObject(o, "value", value);
  return o;
}

cJSON *preft_tv_to_json(const preft_tv *v, bool tag) {
  char buf[32];
  switch (v->kind) {
    case PREFT_TV_TABLE: {
      cJSON *o = cJSON_CreateObject();
      for (int k = 0; k < v->n; k++) cJSON_AddItemToObject(o, v->keys[k], preft_tv_to_json(v->items[k], tag));
      return o;
    }
    case PREFT_TV_ARRAY: {
      cJSON *a = cJSON_CreateArray();
      for (int k = 0; k < v->n; k++) cJSON_AddItemToArray(a, preft_tv_to_json(v->items[k], tag));
      return a;
    }
    case PREFT_TV_STRING:
      return tag ? tagged("string", cJSON_CreateString(v->str)) : cJSON_CreateString(v->str);
    case PREFT_TV_INT:
      if (!tag) return cJSON_CreateNumber((double)v->i);
      snprintf(buf, sizeof buf, "%lld", (long long)v->i);
      return tagged("integer", cJSON_CreateString(buf));
    case PREFT_TV_FLOAT:
      return tag ? tagged("float", float_json(v->f)) : float_json(v->f);
    case PREFT_TV_BOOL:
      return tag ? tagged("bool", cJSON_CreateBool(v->b)) : cJSON_CreateBool(v->b);
    case PREFT_TV_NULL:
      return tag ? tagged("null", cJSON_CreateNull()) : cJSON_CreateNull();
  }
  return cJSON_CreateNull();
}
