/* jinja_value.c - the values a template computes with: construction,
 * lists and dicts, conversion from the JSON context, Python str() / repr(),
 * tojson, truthiness, equality and ordering, and the argument coercions
 * (preft_jarg, preft_jv_want_str, preft_jv_want_int, preft_jv_iter_list) filters and methods share. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "text/jinja_int.h"
#include "text/unicode.h"

/* The undefined and none values: one object each, shared by every render. */
jv preft_jv_undef = {.t = V_UNDEF};
jv preft_jv_none = {.t = V_NONE};

/* ---- construction, lists, dicts ---- */

jv *preft_jv_new(jeval *E, jvtype t) {
  jv *v = preft_ja_alloc(E->c, sizeof *v);
  v->t = t;
  return v;
}
jv *preft_jv_bool(jeval *E, bool b) {
  jv *v = preft_jv_new(E, V_BOOL);
  v->b = b;
  return v;
}
jv *preft_jv_int(jeval *E, int64_t i) {
  jv *v = preft_jv_new(E, V_INT);
  v->i = i;
  return v;
}
jv *preft_jv_float(jeval *E, double f) {
  jv *v = preft_jv_new(E, V_FLOAT);
  v->f = f;
  return v;
}
jv *preft_jv_str(jeval *E, const char *s, size_t n) {
  jv *v = preft_jv_new(E, V_STR);
  v->s.s = preft_ja_strndup(E->c, s, n);
  v->s.n = n;
  return v;
}
jv *preft_jv_strz(jeval *E, const char *s) { return preft_jv_str(E, s, strlen(s)); }
jv *preft_jv_str_take(jeval *E, const jsb *b) {
  jv *v = preft_jv_new(E, V_STR);
  v->s.s = b->s;
  v->s.n = b->n;
  return v;
}
jv *preft_jv_list(jeval *E) { return preft_jv_new(E, V_LIST); }

void preft_jv_list_push(jeval *E, jv *l, jv *x) {
  if (l->l.n == l->l.cap) {
    size_t cap = l->l.cap ? l->l.cap * 2 : 8;
    jv **nv = preft_ja_alloc(E->c, cap * sizeof *nv);
    if (l->l.n) memcpy(nv, l->l.v, l->l.n * sizeof *nv);
    l->l.v = nv;
    l->l.cap = cap;
  }
  l->l.v[l->l.n++] = x;
}

jv *preft_jv_dict_get(const jv *d, const char *k, size_t kn) {
  for (size_t i = 0; i < d->d.n; i++)
    if (d->d.kn[i] == kn && !memcmp(d->d.k[i], k, kn)) return d->d.v[i];
  return NULL;
}

void preft_jv_dict_set(jeval *E, jv *d, const char *k, size_t kn, jv *x) {
  for (size_t i = 0; i < d->d.n; i++)
    if (d->d.kn[i] == kn && !memcmp(d->d.k[i], k, kn)) {
      d->d.v[i] = x;
      return;
    }
  if (d->d.n == d->d.cap) {
    size_t cap = d->d.cap ? d->d.cap * 2 : 8;
    const char **nk = preft_ja_alloc(E->c, cap * sizeof *nk);
    size_t *nkn = preft_ja_alloc(E->c, cap * sizeof *nkn);
    jv **nv = preft_ja_alloc(E->c, cap * sizeof *nv);
    if (d->d.n) {
      memcpy(nk, d->d.k, d->d.n * sizeof *nk);
      memcpy(nkn, d->d.kn, d->d.n * sizeof *nkn);
      memcpy(nv, d->d.v, d->d.n * sizeof *nv);
    }
    d->d.k = nk;
    d->d.kn = nkn;
    d->d.v = nv;
    d->d.cap = cap;
  }
  d->d.k[d->d.n] = preft_ja_strndup(E->c, k, kn);
  d->d.kn[d->d.n] = kn;
  d->d.v[d->d.n++] = x;
}

jv *preft_jv_from_json(jeval *E, const cJSON *j) {
  if (!j || cJSON_IsNull(j)) return &preft_jv_none;
  if (cJSON_IsBool(j)) return preft_jv_bool(E, cJSON_IsTrue(j));
  if (cJSON_IsNumber(j)) {
    double d = j->valuedouble;
    if (d == floor(d) && fabs(d) < 9e15) return preft_jv_int(E, (int64_t)d);
    return preft_jv_float(E, d);
  }
  if (cJSON_IsString(j)) return preft_jv_strz(E, j->valuestring);
  if (cJSON_IsArray(j)) {
    jv *l = preft_jv_list(E);
    const cJSON *x;
    cJSON_ArrayForEach(x, j) preft_jv_list_push(E, l, preft_jv_from_json(E, x));
    return l;
  }
  jv *d = preft_jv_new(E, V_DICT);
  const cJSON *x;
  cJSON_ArrayForEach(x, j) preft_jv_dict_set(E, d, x->string, strlen(x->string), preft_jv_from_json(E, x));
  return d;
}

const char *preft_jv_type_name(const jv *v) {
  switch (v->t) {
    case V_UNDEF:
      return "undefined";
    case V_NONE:
      return "none";
    case V_BOOL:
      return "boolean";
    case V_INT:
      return "integer";
    case V_FLOAT:
      return "float";
    case V_STR:
      return "string";
    case V_LIST:
      return v->is_tuple ? "tuple" : "list";
    case V_DICT:
      return v->is_ns ? "namespace" : "dict";
    case V_MACRO:
      return "macro";
    default:
      return "function";
  }
}

bool preft_jv_truthy(const jv *v) {
  switch (v->t) {
    case V_UNDEF:
    case V_NONE:
      return false;
    case V_BOOL:
      return v->b;
    case V_INT:
      return v->i != 0;
    case V_FLOAT:
      return v->f != 0;
    case V_STR:
      return v->s.n != 0;
    case V_LIST:
      return v->l.n != 0;
    case V_DICT:
      return v->d.n != 0 || v->is_ns;
    default:
      return true;
  }
}

/* ---- Python str() and repr(), tojson ---- */

static void fmt_float(double f, char *buf, size_t n) {
  if (isnan(f)) {
    snprintf(buf, n, "nan");
    return;
  }
  if (isinf(f)) {
    snprintf(buf, n, f > 0 ? "inf" : "-inf");
    return;
  }
  for (int p = 1; p <= 17; p++) { /* shortest round-trip, as Python repr */
    snprintf(buf, n, "%.*g", p, f);
    if (strtod(buf, NULL) == f) break;
  }
  if (!strpbrk(buf, ".en")) strncat(buf, ".0", n - strlen(buf) - 1);
}

static void jv_repr(jeval *E, jsb *b, const jv *v, int depth);

/* Python str() */
void preft_jv_to_str(jeval *E, jsb *b, const jv *v) {
  char tmp[64];
  switch (v->t) {
    case V_UNDEF:
      break;
    case V_NONE:
      jsb_adds(E->c, b, "None");
      break;
    case V_BOOL:
      jsb_adds(E->c, b, v->b ? "True" : "False");
      break;
    case V_INT:
      snprintf(tmp, sizeof tmp, "%lld", (long long)v->i);
      jsb_adds(E->c, b, tmp);
      break;
    case V_FLOAT:
      fmt_float(v->f, tmp, sizeof tmp);
      jsb_adds(E->c, b, tmp);
      break;
    case V_STR:
      preft_jsb_add(E->c, b, v->s.s, v->s.n);
      break;
    default:
      jv_repr(E, b, v, 0);
      break;
  }
}

/* Python repr() of v, depth levels down a list or dict; fails past
 * JV_MAX_NEST levels (a namespace that holds itself has no end). */
static void jv_repr(jeval *E, jsb *b, const jv *v, int depth) {
  if (depth > JV_MAX_NEST) preft_jfail(E->c, 0, "a value nested more than %d levels deep", JV_MAX_NEST);
  switch (v->t) {
    case V_STR: {
      bool dq = memchr(v->s.s, '\'', v->s.n) && !memchr(v->s.s, '"', v->s.n);
      char q = dq ? '"' : '\'';
      preft_jsb_add(E->c, b, &q, 1);
      for (size_t i = 0; i < v->s.n; i++) {
        char ch = v->s.s[i];
        if (ch == '\\')
          jsb_adds(E->c, b, "\\\\");
        else if (ch == '\n')
          jsb_adds(E->c, b, "\\n");
        else if (ch == '\t')
          jsb_adds(E->c, b, "\\t");
        else if (ch == '\r')
          jsb_adds(E->c, b, "\\r");
        else if (ch == q) {
          jsb_adds(E->c, b, "\\");
          preft_jsb_add(E->c, b, &ch, 1);
        } else
          preft_jsb_add(E->c, b, &ch, 1);
      }
      preft_jsb_add(E->c, b, &q, 1);
      break;
    }
    case V_LIST:
      jsb_adds(E->c, b, v->is_tuple ? "(" : "[");
      for (size_t i = 0; i < v->l.n; i++) {
        if (i) jsb_adds(E->c, b, ", ");
        jv_repr(E, b, v->l.v[i], depth + 1);
      }
      jsb_adds(E->c, b, v->is_tuple ? (v->l.n == 1 ? ",)" : ")") : "]");
      break;
    case V_DICT:
      jsb_adds(E->c, b, "{");
      for (size_t i = 0; i < v->d.n; i++) {
        if (i) jsb_adds(E->c, b, ", ");
        jv k = {.t = V_STR, .s = {v->d.k[i], v->d.kn[i]}};
        jv_repr(E, b, &k, depth + 1);
        jsb_adds(E->c, b, ": ");
        jv_repr(E, b, v->d.v[i], depth + 1);
      }
      jsb_adds(E->c, b, "}");
      break;
    case V_UNDEF:
      break;
    case V_MACRO:
      jsb_adds(E->c, b, "<macro>");
      break;
    case V_FUNC:
    case V_METHOD:
      jsb_adds(E->c, b, "<built-in method ");
      jsb_adds(E->c, b, v->m.name);
      jsb_adds(E->c, b, ">");
      break;
    default:
      preft_jv_to_str(E, b, v);
      break;
  }
}

jv *preft_jv_as_str(jeval *E, const jv *v) {
  if (v->t == V_STR) return (jv *)v;
  jsb b = {0};
  preft_jsb_add(E->c, &b, "", 0);
  preft_jv_to_str(E, &b, v);
  return preft_jv_str_take(E, &b);
}

static void json_str(jeval *E, jsb *b, const char *s, size_t n) {
  jsb_adds(E->c, b, "\"");
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    char tmp[8];
    switch (ch) {
      case '"':
        jsb_adds(E->c, b, "\\\"");
        break;
      case '\\':
        jsb_adds(E->c, b, "\\\\");
        break;
      case '\n':
        jsb_adds(E->c, b, "\\n");
        break;
      case '\r':
        jsb_adds(E->c, b, "\\r");
        break;
      case '\t':
        jsb_adds(E->c, b, "\\t");
        break;
      case '\b':
        jsb_adds(E->c, b, "\\b");
        break;
      case '\f':
        jsb_adds(E->c, b, "\\f");
        break;
      default:
        if (ch < 0x20) {
          snprintf(tmp, sizeof tmp, "\\u%04x", ch);
          jsb_adds(E->c, b, tmp);
        } else {
          preft_jsb_add(E->c, b, (const char *)&s[i], 1);
        }
    }
  }
  jsb_adds(E->c, b, "\"");
}

static void newline_indent(jeval *E, jsb *b, int indent, int level) {
  jsb_adds(E->c, b, "\n");
  for (int i = 0; i < indent * level; i++) jsb_adds(E->c, b, " ");
}

/* json.dumps(v, ensure_ascii=False, indent=indent) as transformers' tojson */
void preft_jv_to_json(jeval *E, jsb *b, const jv *v, int indent, int level, int line) {
  if (level > JV_MAX_NEST)
    preft_jfail(E->c, line, "tojson: a value nested more than %d levels deep", JV_MAX_NEST);
  switch (v->t) {
    case V_UNDEF:
    case V_NONE:
      jsb_adds(E->c, b, "null");
      break;
    case V_BOOL:
      jsb_adds(E->c, b, v->b ? "true" : "false");
      break;
    case V_INT:
    case V_FLOAT:
      preft_jv_to_str(E, b, v);
      break; /* JSON numbers print as Python's str() */
    case V_STR:
      json_str(E, b, v->s.s, v->s.n);
      break;
    case V_LIST:
      jsb_adds(E->c, b, "[");
      for (size_t i = 0; i < v->l.n; i++) {
        if (i) jsb_adds(E->c, b, indent > 0 ? "," : ", ");
        if (indent > 0) newline_indent(E, b, indent, level + 1);
        preft_jv_to_json(E, b, v->l.v[i], indent, level + 1, line);
      }
      if (indent > 0 && v->l.n) newline_indent(E, b, indent, level);
      jsb_adds(E->c, b, "]");
      break;
    case V_DICT:
      jsb_adds(E->c, b, "{");
      for (size_t i = 0; i < v->d.n; i++) {
        if (i) jsb_adds(E->c, b, indent > 0 ? "," : ", ");
        if (indent > 0) newline_indent(E, b, indent, level + 1);
        json_str(E, b, v->d.k[i], v->d.kn[i]);
        jsb_adds(E->c, b, ": ");
        preft_jv_to_json(E, b, v->d.v[i], indent, level + 1, line);
      }
      if (indent > 0 && v->d.n) newline_indent(E, b, indent, level);
      jsb_adds(E->c, b, "}");
      break;
    default:
      preft_jfail(E->c, line, "tojson: cannot serialize a %s", preft_jv_type_name(v));
  }
}

/* ---- equality and ordering, as Python ---- */

bool preft_jv_is_num(const jv *v) { return v->t == V_INT || v->t == V_FLOAT || v->t == V_BOOL; }
double preft_jv_num(const jv *v) { return v->t == V_INT ? (double)v->i : v->t == V_FLOAT ? v->f : v->b; }

/* a == b, depth levels down; unequal past JV_MAX_NEST levels (values that contain themselves). */
static bool equal_at(const jv *a, const jv *b, int depth) {
  if (depth > JV_MAX_NEST) return false;
  if (preft_jv_is_intlike(a) && preft_jv_is_intlike(b)) return preft_jv_int_of(a) == preft_jv_int_of(b);
  if (preft_jv_is_num(a) && preft_jv_is_num(b)) return preft_jv_num(a) == preft_jv_num(b);
  if (a->t != b->t)
    return (a->t == V_UNDEF || a->t == V_NONE) && (b->t == V_UNDEF || b->t == V_NONE) && a->t == b->t;
  switch (a->t) {
    case V_UNDEF:
    case V_NONE:
      return true;
    case V_STR:
      return a->s.n == b->s.n && !memcmp(a->s.s, b->s.s, a->s.n);
    case V_LIST:
      if (a->l.n != b->l.n) return false;
      for (size_t i = 0; i < a->l.n; i++)
        if (!equal_at(a->l.v[i], b->l.v[i], depth + 1)) return false;
      return true;
    case V_DICT:
      if (a->d.n != b->d.n) return false;
      for (size_t i = 0; i < a->d.n; i++) {
        jv *o = preft_jv_dict_get(b, a->d.k[i], a->d.kn[i]);
        if (!o || !equal_at(a->d.v[i], o, depth + 1)) return false;
      }
      return true;
    default:
      return a == b;
  }
}

bool preft_jv_equal(const jv *a, const jv *b) { return equal_at(a, b, 0); }

int preft_jv_compare(jeval *E, const jv *a, const jv *b, int line) {
  if (preft_jv_is_intlike(a) && preft_jv_is_intlike(b))
    return preft_jv_int_of(a) < preft_jv_int_of(b) ? -1 : preft_jv_int_of(a) > preft_jv_int_of(b);
  if (preft_jv_is_num(a) && preft_jv_is_num(b))
    return preft_jv_num(a) < preft_jv_num(b) ? -1 : preft_jv_num(a) > preft_jv_num(b);
  if (a->t == V_STR && b->t == V_STR) {
    size_t n = a->s.n < b->s.n ? a->s.n : b->s.n;
    int r = memcmp(a->s.s, b->s.s, n);
    return r ? (r < 0 ? -1 : 1) : (a->s.n < b->s.n ? -1 : a->s.n > b->s.n);
  }
  preft_jfail(E->c, line, "cannot compare %s with %s", preft_jv_type_name(a), preft_jv_type_name(b));
}

/* ---- call arguments and coercions ---- */

jv *preft_jarg(const jargs *a, int i, const char *name) {
  if (i >= 0 && i < a->npos) return a->pos[i];
  for (int k = 0; k < a->nkw; k++)
    if (name && !strcmp(a->kw[k], name)) return a->kwv[k];
  return NULL;
}

const jv *preft_jv_want_str(jeval *E, const jv *v, const char *what, int line) {
  if (!v || v->t != V_STR)
    preft_jfail(E->c, line, "%s expects a string, got %s", what, v ? preft_jv_type_name(v) : "nothing");
  return v;
}

int64_t preft_jv_want_int(jeval *E, const jv *v, const char *what, int line) {
  if (!v || !(v->t == V_INT || v->t == V_BOOL || (v->t == V_FLOAT && v->f == floor(v->f))))
    preft_jfail(E->c, line, "%s expects an integer, got %s", what, v ? preft_jv_type_name(v) : "nothing");
  return v->t == V_FLOAT ? preft_jv_float_to_int(E, v->f, line) : preft_jv_int_of(v);
}

jv *preft_jv_iter_list(jeval *E, jv *v, int line) {
  if (v->t == V_LIST) return v;
  jv *l = preft_jv_list(E);
  if (v->t == V_UNDEF || v->t == V_NONE) return l;
  if (v->t == V_STR) {
    for (size_t i = 0; i < v->s.n;) {
      size_t k = (size_t)preft_utf8_seqlen((uint8_t)v->s.s[i]);
      if (i + k > v->s.n) k = v->s.n - i;
      preft_jv_list_push(E, l, preft_jv_str(E, v->s.s + i, k));
      i += k;
    }
    return l;
  }
  if (v->t == V_DICT) {
    for (size_t i = 0; i < v->d.n; i++) preft_jv_list_push(E, l, preft_jv_str(E, v->d.k[i], v->d.kn[i]));
    return l;
  }
  preft_jfail(E->c, line, "cannot iterate over a %s", preft_jv_type_name(v));
}
