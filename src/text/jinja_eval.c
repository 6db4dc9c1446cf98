/* jinja_eval.c - evaluation of the Jinja AST: values, scopes, filters,
 * tests, methods, builtins, and preft_jinja_render. Semantics follow Jinja2
 * as transformers runs it (Python str() of values, Python string methods,
 * undefined names render as ""), checked against @huggingface/jinja. */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <utf8proc.h>

#include "text/jinja.h"
#include "text/jinja_int.h"
#include "text/unicode.h"

typedef struct var {
  const char *name;
  jv *v;
} var;

typedef struct frame {
  var *v;
  int n, cap;
} frame;

typedef struct ev {
  jctx *c;
  frame *frames;
  int nf, capf;
  jsb out;
  bool brk, cont;
  int depth;
} ev;

static jv UNDEF = {.t = V_UNDEF};
static jv NONE = {.t = V_NONE};

static void exec_body(ev *E, jnode **body, int n);
static jv *eval(ev *E, const jnode *n);

/* ---- values ---- */

static jv *mk(ev *E, jvtype t) {
  jv *v = ja_alloc(E->c, sizeof *v);
  v->t = t;
  return v;
}
static jv *mk_bool(ev *E, bool b) {
  jv *v = mk(E, V_BOOL);
  v->b = b;
  return v;
}
static jv *mk_int(ev *E, int64_t i) {
  jv *v = mk(E, V_INT);
  v->i = i;
  return v;
}
static jv *mk_float(ev *E, double f) {
  jv *v = mk(E, V_FLOAT);
  v->f = f;
  return v;
}
static jv *mk_str(ev *E, const char *s, size_t n) {
  jv *v = mk(E, V_STR);
  v->s.s = ja_strndup(E->c, s, n);
  v->s.n = n;
  return v;
}
static jv *mk_strz(ev *E, const char *s) { return mk_str(E, s, strlen(s)); }
static jv *mk_list(ev *E) { return mk(E, V_LIST); }

static void list_push(ev *E, jv *l, jv *x) {
  if (l->l.n == l->l.cap) {
    size_t cap = l->l.cap ? l->l.cap * 2 : 8;
    jv **nv = ja_alloc(E->c, cap * sizeof *nv);
    if (l->l.n) memcpy(nv, l->l.v, l->l.n * sizeof *nv);
    l->l.v = nv;
    l->l.cap = cap;
  }
  l->l.v[l->l.n++] = x;
}

static jv *dict_get(const jv *d, const char *k, size_t kn) {
  for (size_t i = 0; i < d->d.n; i++)
    if (d->d.kn[i] == kn && !memcmp(d->d.k[i], k, kn)) return d->d.v[i];
  return NULL;
}

static void dict_set(ev *E, jv *d, const char *k, size_t kn, jv *x) {
  for (size_t i = 0; i < d->d.n; i++)
    if (d->d.kn[i] == kn && !memcmp(d->d.k[i], k, kn)) {
      d->d.v[i] = x;
      return;
    }
  if (d->d.n == d->d.cap) {
    size_t cap = d->d.cap ? d->d.cap * 2 : 8;
    const char **nk = ja_alloc(E->c, cap * sizeof *nk);
    size_t *nkn = ja_alloc(E->c, cap * sizeof *nkn);
    jv **nv = ja_alloc(E->c, cap * sizeof *nv);
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
  d->d.k[d->d.n] = ja_strndup(E->c, k, kn);
  d->d.kn[d->d.n] = kn;
  d->d.v[d->d.n++] = x;
}

static jv *from_json(ev *E, const cJSON *j) {
  if (!j || cJSON_IsNull(j)) return &NONE;
  if (cJSON_IsBool(j)) return mk_bool(E, cJSON_IsTrue(j));
  if (cJSON_IsNumber(j)) {
    double d = j->valuedouble;
    if (d == floor(d) && fabs(d) < 9e15) return mk_int(E, (int64_t)d);
    return mk_float(E, d);
  }
  if (cJSON_IsString(j)) return mk_strz(E, j->valuestring);
  if (cJSON_IsArray(j)) {
    jv *l = mk_list(E);
    const cJSON *x;
    cJSON_ArrayForEach(x, j) list_push(E, l, from_json(E, x));
    return l;
  }
  jv *d = mk(E, V_DICT);
  const cJSON *x;
  cJSON_ArrayForEach(x, j) dict_set(E, d, x->string, strlen(x->string), from_json(E, x));
  return d;
}

static const char *type_name(const jv *v) {
  switch (v->t) {
    case V_UNDEF: return "undefined";
    case V_NONE: return "none";
    case V_BOOL: return "boolean";
    case V_INT: return "integer";
    case V_FLOAT: return "float";
    case V_STR: return "string";
    case V_LIST: return v->is_tuple ? "tuple" : "list";
    case V_DICT: return v->is_ns ? "namespace" : "dict";
    case V_MACRO: return "macro";
    default: return "function";
  }
}

static bool truthy(const jv *v) {
  switch (v->t) {
    case V_UNDEF:
    case V_NONE: return false;
    case V_BOOL: return v->b;
    case V_INT: return v->i != 0;
    case V_FLOAT: return v->f != 0;
    case V_STR: return v->s.n != 0;
    case V_LIST: return v->l.n != 0;
    case V_DICT: return v->d.n != 0 || v->is_ns;
    default: return true;
  }
}

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

static void repr(ev *E, jsb *b, const jv *v);

/* Python str() */
static void to_str(ev *E, jsb *b, const jv *v) {
  char tmp[64];
  switch (v->t) {
    case V_UNDEF: break;
    case V_NONE: jsb_adds(E->c, b, "None"); break;
    case V_BOOL: jsb_adds(E->c, b, v->b ? "True" : "False"); break;
    case V_INT:
      snprintf(tmp, sizeof tmp, "%lld", (long long)v->i);
      jsb_adds(E->c, b, tmp);
      break;
    case V_FLOAT:
      fmt_float(v->f, tmp, sizeof tmp);
      jsb_adds(E->c, b, tmp);
      break;
    case V_STR: jsb_add(E->c, b, v->s.s, v->s.n); break;
    default: repr(E, b, v); break;
  }
}

static void repr(ev *E, jsb *b, const jv *v) {
  switch (v->t) {
    case V_STR: {
      bool dq = memchr(v->s.s, '\'', v->s.n) && !memchr(v->s.s, '"', v->s.n);
      char q = dq ? '"' : '\'';
      jsb_add(E->c, b, &q, 1);
      for (size_t i = 0; i < v->s.n; i++) {
        char ch = v->s.s[i];
        if (ch == '\\') jsb_adds(E->c, b, "\\\\");
        else if (ch == '\n') jsb_adds(E->c, b, "\\n");
        else if (ch == '\t') jsb_adds(E->c, b, "\\t");
        else if (ch == '\r') jsb_adds(E->c, b, "\\r");
        else if (ch == q) {
          jsb_adds(E->c, b, "\\");
          jsb_add(E->c, b, &ch, 1);
        } else jsb_add(E->c, b, &ch, 1);
      }
      jsb_add(E->c, b, &q, 1);
      break;
    }
    case V_LIST:
      jsb_adds(E->c, b, v->is_tuple ? "(" : "[");
      for (size_t i = 0; i < v->l.n; i++) {
        if (i) jsb_adds(E->c, b, ", ");
        repr(E, b, v->l.v[i]);
      }
      jsb_adds(E->c, b, v->is_tuple ? (v->l.n == 1 ? ",)" : ")") : "]");
      break;
    case V_DICT:
      jsb_adds(E->c, b, "{");
      for (size_t i = 0; i < v->d.n; i++) {
        if (i) jsb_adds(E->c, b, ", ");
        jv k = {.t = V_STR, .s = {v->d.k[i], v->d.kn[i]}};
        repr(E, b, &k);
        jsb_adds(E->c, b, ": ");
        repr(E, b, v->d.v[i]);
      }
      jsb_adds(E->c, b, "}");
      break;
    case V_UNDEF: break;
    default: to_str(E, b, v); break;
  }
}

static jv *as_str(ev *E, const jv *v) {
  if (v->t == V_STR) return (jv *)v;
  jsb b = {0};
  jsb_add(E->c, &b, "", 0);
  to_str(E, &b, v);
  jv *r = mk(E, V_STR);
  r->s.s = b.s;
  r->s.n = b.n;
  return r;
}

static void json_str(ev *E, jsb *b, const char *s, size_t n) {
  jsb_adds(E->c, b, "\"");
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    char tmp[8];
    switch (ch) {
      case '"': jsb_adds(E->c, b, "\\\""); break;
      case '\\': jsb_adds(E->c, b, "\\\\"); break;
      case '\n': jsb_adds(E->c, b, "\\n"); break;
      case '\r': jsb_adds(E->c, b, "\\r"); break;
      case '\t': jsb_adds(E->c, b, "\\t"); break;
      case '\b': jsb_adds(E->c, b, "\\b"); break;
      case '\f': jsb_adds(E->c, b, "\\f"); break;
      default:
        if (ch < 0x20) {
          snprintf(tmp, sizeof tmp, "\\u%04x", ch);
          jsb_adds(E->c, b, tmp);
        } else {
          jsb_add(E->c, b, (const char *)&s[i], 1);
        }
    }
  }
  jsb_adds(E->c, b, "\"");
}

static void newline_indent(ev *E, jsb *b, int indent, int level) {
  jsb_adds(E->c, b, "\n");
  for (int i = 0; i < indent * level; i++) jsb_adds(E->c, b, " ");
}

/* json.dumps(v, ensure_ascii=False, indent=indent) as transformers' tojson */
static void to_json(ev *E, jsb *b, const jv *v, int indent, int level, int line) {
  char tmp[64];
  switch (v->t) {
    case V_UNDEF:
    case V_NONE: jsb_adds(E->c, b, "null"); break;
    case V_BOOL: jsb_adds(E->c, b, v->b ? "true" : "false"); break;
    case V_INT:
      snprintf(tmp, sizeof tmp, "%lld", (long long)v->i);
      jsb_adds(E->c, b, tmp);
      break;
    case V_FLOAT:
      fmt_float(v->f, tmp, sizeof tmp);
      jsb_adds(E->c, b, tmp);
      break;
    case V_STR: json_str(E, b, v->s.s, v->s.n); break;
    case V_LIST:
      jsb_adds(E->c, b, "[");
      for (size_t i = 0; i < v->l.n; i++) {
        if (i) jsb_adds(E->c, b, indent > 0 ? "," : ", ");
        if (indent > 0) newline_indent(E, b, indent, level + 1);
        to_json(E, b, v->l.v[i], indent, level + 1, line);
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
        to_json(E, b, v->d.v[i], indent, level + 1, line);
      }
      if (indent > 0 && v->d.n) newline_indent(E, b, indent, level);
      jsb_adds(E->c, b, "}");
      break;
    default: jfail(E->c, line, "tojson: cannot serialize a %s", type_name(v));
  }
}

static bool is_num(const jv *v) { return v->t == V_INT || v->t == V_FLOAT || v->t == V_BOOL; }
static double num(const jv *v) { return v->t == V_INT ? (double)v->i : v->t == V_FLOAT ? v->f : v->b; }

static bool equal(const jv *a, const jv *b) {
  if (is_num(a) && is_num(b)) return num(a) == num(b);
  if (a->t != b->t) return (a->t == V_UNDEF || a->t == V_NONE) && (b->t == V_UNDEF || b->t == V_NONE) && a->t == b->t;
  switch (a->t) {
    case V_UNDEF:
    case V_NONE: return true;
    case V_STR: return a->s.n == b->s.n && !memcmp(a->s.s, b->s.s, a->s.n);
    case V_LIST:
      if (a->l.n != b->l.n) return false;
      for (size_t i = 0; i < a->l.n; i++)
        if (!equal(a->l.v[i], b->l.v[i])) return false;
      return true;
    case V_DICT:
      if (a->d.n != b->d.n) return false;
      for (size_t i = 0; i < a->d.n; i++) {
        jv *o = dict_get(b, a->d.k[i], a->d.kn[i]);
        if (!o || !equal(a->d.v[i], o)) return false;
      }
      return true;
    default: return a == b;
  }
}

static int compare(ev *E, const jv *a, const jv *b, int line) {
  if (is_num(a) && is_num(b)) return num(a) < num(b) ? -1 : num(a) > num(b);
  if (a->t == V_STR && b->t == V_STR) {
    size_t n = a->s.n < b->s.n ? a->s.n : b->s.n;
    int r = memcmp(a->s.s, b->s.s, n);
    return r ? (r < 0 ? -1 : 1) : (a->s.n < b->s.n ? -1 : a->s.n > b->s.n);
  }
  jfail(E->c, line, "cannot compare %s with %s", type_name(a), type_name(b));
}

/* ---- UTF-8 code point helpers for Python string semantics ---- */

static size_t cp_count(const char *s, size_t n) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++) k += ((unsigned char)s[i] & 0xC0) != 0x80;
  return k;
}

/* byte offset of code point index i (clamped) */
static size_t cp_offset(const char *s, size_t n, size_t i) {
  size_t k = 0, b = 0;
  while (b < n && k < i) {
    b++;
    while (b < n && ((unsigned char)s[b] & 0xC0) == 0x80) b++;
    k++;
  }
  return b;
}

static bool is_space_cp(int32_t cp) { return preft_uni_is_whitespace(cp) || (cp >= 0x1C && cp <= 0x1F); }

/* Is cp stripped: one of chars (a string), or whitespace when chars is none? */
static bool strip_hit(int32_t cp, const jv *chars) {
  if (!chars || chars->t != V_STR) return is_space_cp(cp);
  char enc[4];
  int el = preft_utf8_encode(cp, enc);
  return memmem(chars->s.s, chars->s.n, enc, (size_t)el) != NULL;
}

/* Python str.strip([chars]); mode 1 = left, 2 = right, 3 = both */
static jv *str_strip(ev *E, const jv *s, const jv *chars, int mode) {
  const uint8_t *u = (const uint8_t *)s->s.s;
  size_t a = 0, b = s->s.n;
  int32_t cp;
  int k;
  for (;;) {
    if (!(mode & 1) || a >= b) break;
    k = preft_utf8_decode(u + a, b - a, &cp);
    if (!k) break;
    if (!strip_hit(cp, chars)) break;
    a += (size_t)k;
  }
  while ((mode & 2) && b > a) {
    size_t j = b - 1;
    while (j > a && (u[j] & 0xC0) == 0x80) j--;
    k = preft_utf8_decode(u + j, b - j, &cp);
    if (!k) break;
    if (!strip_hit(cp, chars)) break;
    b = j;
  }
  return mk_str(E, s->s.s + a, b - a);
}

static jv *str_case(ev *E, const jv *s, int mode) { /* 0 lower, 1 upper, 2 title, 3 capitalize */
  jsb b = {0};
  jsb_add(E->c, &b, "", 0);
  const uint8_t *u = (const uint8_t *)s->s.s;
  size_t i = 0;
  bool prev_cased = false, first = true;
  while (i < s->s.n) {
    int32_t cp;
    int k = preft_utf8_decode(u + i, s->s.n - i, &cp);
    if (!k) {
      jsb_add(E->c, &b, (const char *)u + i, 1);
      i++;
      continue;
    }
    int32_t o = cp;
    if (mode == 0) o = utf8proc_tolower(cp);
    else if (mode == 1) o = utf8proc_toupper(cp);
    else if (mode == 2) o = prev_cased ? utf8proc_tolower(cp) : utf8proc_toupper(cp);
    else o = first ? utf8proc_toupper(cp) : utf8proc_tolower(cp);
    utf8proc_category_t cat = utf8proc_category(cp);
    prev_cased = cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT;
    first = false;
    char tmp[4];
    jsb_add(E->c, &b, tmp, (size_t)preft_utf8_encode(o, tmp));
    i += (size_t)k;
  }
  jv *r = mk(E, V_STR);
  r->s.s = b.s;
  r->s.n = b.n;
  return r;
}

static jv *str_replace(ev *E, const jv *s, const jv *from, const jv *to, int64_t count) {
  jsb b = {0};
  jsb_add(E->c, &b, "", 0);
  size_t i = 0;
  int64_t done = 0;
  if (from->s.n == 0) { /* Python inserts between characters */
    for (;;) {
      if (count >= 0 && done >= count) break;
      jsb_add(E->c, &b, to->s.s, to->s.n);
      done++;
      if (i >= s->s.n) break;
      size_t k = (size_t)preft_utf8_seqlen((uint8_t)s->s.s[i]);
      jsb_add(E->c, &b, s->s.s + i, k);
      i += k;
    }
    jsb_add(E->c, &b, s->s.s + i, s->s.n - i);
  } else {
    while (i <= s->s.n) {
      const char *hit = (count < 0 || done < count) ? memmem(s->s.s + i, s->s.n - i, from->s.s, from->s.n) : NULL;
      if (!hit) break;
      jsb_add(E->c, &b, s->s.s + i, (size_t)(hit - s->s.s) - i);
      jsb_add(E->c, &b, to->s.s, to->s.n);
      i = (size_t)(hit - s->s.s) + from->s.n;
      done++;
    }
    jsb_add(E->c, &b, s->s.s + i, s->s.n - i);
  }
  jv *r = mk(E, V_STR);
  r->s.s = b.s;
  r->s.n = b.n;
  return r;
}

static jv *str_split(ev *E, const jv *s, const jv *sep, int64_t maxsplit) {
  jv *l = mk_list(E);
  const char *p = s->s.s;
  size_t n = s->s.n, i = 0;
  if (!sep || sep->t == V_NONE || sep->t == V_UNDEF) {
    const uint8_t *u = (const uint8_t *)p;
    int64_t done = 0;
    for (;;) {
      int32_t cp;
      int k;
      while (i < n && (k = preft_utf8_decode(u + i, n - i, &cp)) && is_space_cp(cp)) i += (size_t)k;
      if (i >= n) break;
      if (maxsplit >= 0 && done >= maxsplit) {
        size_t e = n;
        while (e > i) { /* rstrip the remainder */
          size_t j = e - 1;
          while (j > i && (u[j] & 0xC0) == 0x80) j--;
          if (!preft_utf8_decode(u + j, e - j, &cp) || !is_space_cp(cp)) break;
          e = j;
        }
        list_push(E, l, mk_str(E, p + i, e - i));
        break;
      }
      size_t st = i;
      while (i < n && !((k = preft_utf8_decode(u + i, n - i, &cp)) && is_space_cp(cp))) i += k ? (size_t)k : 1;
      list_push(E, l, mk_str(E, p + st, i - st));
      done++;
    }
    return l;
  }
  if (sep->s.n == 0) jfail(E->c, 0, "split: empty separator");
  int64_t done = 0;
  for (;;) {
    const char *hit = (maxsplit < 0 || done < maxsplit) ? memmem(p + i, n - i, sep->s.s, sep->s.n) : NULL;
    if (!hit) {
      list_push(E, l, mk_str(E, p + i, n - i));
      break;
    }
    list_push(E, l, mk_str(E, p + i, (size_t)(hit - p) - i));
    i = (size_t)(hit - p) + sep->s.n;
    done++;
  }
  return l;
}

/* ---- scopes ---- */

static void push_frame(ev *E) {
  if (E->nf == E->capf) {
    int cap = E->capf ? E->capf * 2 : 16;
    frame *nf = ja_alloc(E->c, (size_t)cap * sizeof *nf);
    if (E->nf) memcpy(nf, E->frames, (size_t)E->nf * sizeof *nf);
    E->frames = nf;
    E->capf = cap;
  }
  memset(&E->frames[E->nf++], 0, sizeof(frame));
}

static void pop_frame(ev *E) { E->nf--; }

static void set_var(ev *E, const char *name, jv *v) {
  frame *f = &E->frames[E->nf - 1];
  for (int i = 0; i < f->n; i++)
    if (!strcmp(f->v[i].name, name)) {
      f->v[i].v = v;
      return;
    }
  if (f->n == f->cap) {
    int cap = f->cap ? f->cap * 2 : 8;
    var *nv = ja_alloc(E->c, (size_t)cap * sizeof *nv);
    if (f->n) memcpy(nv, f->v, (size_t)f->n * sizeof *nv);
    f->v = nv;
    f->cap = cap;
  }
  f->v[f->n++] = (var){name, v};
}

static jv *get_var(ev *E, const char *name) {
  for (int k = E->nf - 1; k >= 0; k--)
    for (int i = 0; i < E->frames[k].n; i++)
      if (!strcmp(E->frames[k].v[i].name, name)) return E->frames[k].v[i].v;
  static const char *builtins[] = {"namespace", "range", "raise_exception", "strftime_now", "dict", NULL};
  for (int i = 0; builtins[i]; i++)
    if (!strcmp(name, builtins[i])) {
      jv *f = mk(E, V_FUNC);
      f->m.name = builtins[i];
      return f;
    }
  return &UNDEF;
}

/* ---- arguments ---- */

typedef struct args {
  jv *pos[8];
  int npos;
  const char *kw[8];
  jv *kwv[8];
  int nkw;
} args;

static void eval_args(ev *E, const jnode *n, args *a, int skip) {
  memset(a, 0, sizeof *a);
  for (int i = skip; i < n->nargs; i++) {
    jv *v = eval(E, n->args[i]);
    if (n->kw && n->kw[i]) {
      if (a->nkw == 8) jfail(E->c, n->line, "too many keyword arguments");
      a->kw[a->nkw] = n->kw[i];
      a->kwv[a->nkw++] = v;
    } else {
      if (a->npos == 8) jfail(E->c, n->line, "too many arguments");
      a->pos[a->npos++] = v;
    }
  }
}

/* positional i, else keyword name, else NULL */
static jv *arg(const args *a, int i, const char *name) {
  if (i >= 0 && i < a->npos) return a->pos[i];
  for (int k = 0; k < a->nkw; k++)
    if (name && !strcmp(a->kw[k], name)) return a->kwv[k];
  return NULL;
}

static const jv *want_str(ev *E, const jv *v, const char *what, int line) {
  if (!v || v->t != V_STR) jfail(E->c, line, "%s expects a string, got %s", what, v ? type_name(v) : "nothing");
  return v;
}

static int64_t want_int(ev *E, const jv *v, const char *what, int line) {
  if (!v || !(v->t == V_INT || v->t == V_BOOL || (v->t == V_FLOAT && v->f == floor(v->f))))
    jfail(E->c, line, "%s expects an integer, got %s", what, v ? type_name(v) : "nothing");
  return v->t == V_INT ? v->i : (int64_t)num(v);
}

/* list view of an iterable: lists as is, strings by character, dicts by key */
static jv *iter_list(ev *E, jv *v, int line) {
  if (v->t == V_LIST) return v;
  jv *l = mk_list(E);
  if (v->t == V_UNDEF || v->t == V_NONE) return l;
  if (v->t == V_STR) {
    for (size_t i = 0; i < v->s.n;) {
      size_t k = (size_t)preft_utf8_seqlen((uint8_t)v->s.s[i]);
      if (i + k > v->s.n) k = v->s.n - i;
      list_push(E, l, mk_str(E, v->s.s + i, k));
      i += k;
    }
    return l;
  }
  if (v->t == V_DICT) {
    for (size_t i = 0; i < v->d.n; i++) list_push(E, l, mk_str(E, v->d.k[i], v->d.kn[i]));
    return l;
  }
  jfail(E->c, line, "cannot iterate over a %s", type_name(v));
}

static jv *getattr_v(ev *E, jv *obj, const char *name, size_t nlen, int line);

static bool run_test(ev *E, const char *name, jv *v, const args *a, int line);

/* ---- filters ---- */

static jv *filter(ev *E, const char *name, jv *v, const args *a, int line) {
  if (!strcmp(name, "trim")) {
    if (v->t == V_UNDEF) return mk_str(E, "", 0);
    return str_strip(E, as_str(E, v), arg(a, 0, "chars"), 3);
  }
  if (!strcmp(name, "tojson")) {
    jv *ind = arg(a, 0, "indent");
    jsb b = {0};
    jsb_add(E->c, &b, "", 0);
    to_json(E, &b, v, ind && ind->t != V_NONE ? (int)want_int(E, ind, "tojson indent", line) : 0, 0, line);
    jv *r = mk(E, V_STR);
    r->s.s = b.s;
    r->s.n = b.n;
    return r;
  }
  if (!strcmp(name, "length") || !strcmp(name, "count")) {
    if (v->t == V_STR) return mk_int(E, (int64_t)cp_count(v->s.s, v->s.n));
    if (v->t == V_LIST) return mk_int(E, (int64_t)v->l.n);
    if (v->t == V_DICT) return mk_int(E, (int64_t)v->d.n);
    if (v->t == V_UNDEF) return mk_int(E, 0);
    jfail(E->c, line, "length of a %s", type_name(v));
  }
  if (!strcmp(name, "upper")) return str_case(E, as_str(E, v), 1);
  if (!strcmp(name, "lower")) return str_case(E, as_str(E, v), 0);
  if (!strcmp(name, "title")) return str_case(E, as_str(E, v), 2);
  if (!strcmp(name, "capitalize")) return str_case(E, as_str(E, v), 3);
  if (!strcmp(name, "string")) return as_str(E, v);
  if (!strcmp(name, "safe") || !strcmp(name, "e") || !strcmp(name, "escape")) {
    if (name[0] == 's') return v;
    jv *s = as_str(E, v);
    jv amp = {.t = V_STR, .s = {"&", 1}}, lt = {.t = V_STR, .s = {"<", 1}}, gt = {.t = V_STR, .s = {">", 1}},
       dq = {.t = V_STR, .s = {"\"", 1}}, sq = {.t = V_STR, .s = {"'", 1}};
    jv ramp = {.t = V_STR, .s = {"&amp;", 5}}, rlt = {.t = V_STR, .s = {"&lt;", 4}}, rgt = {.t = V_STR, .s = {"&gt;", 4}},
       rdq = {.t = V_STR, .s = {"&#34;", 5}}, rsq = {.t = V_STR, .s = {"&#39;", 5}};
    s = str_replace(E, s, &amp, &ramp, -1);
    s = str_replace(E, s, &lt, &rlt, -1);
    s = str_replace(E, s, &gt, &rgt, -1);
    s = str_replace(E, s, &dq, &rdq, -1);
    return str_replace(E, s, &sq, &rsq, -1);
  }
  if (!strcmp(name, "first") || !strcmp(name, "last")) {
    jv *l = iter_list(E, v, line);
    if (!l->l.n) return &UNDEF;
    return name[0] == 'f' ? l->l.v[0] : l->l.v[l->l.n - 1];
  }
  if (!strcmp(name, "join")) {
    jv *l = iter_list(E, v, line);
    jv *sep = arg(a, 0, "d");
    jv *attr = arg(a, 1, "attribute");
    jsb b = {0};
    jsb_add(E->c, &b, "", 0);
    for (size_t i = 0; i < l->l.n; i++) {
      if (i && sep) to_str(E, &b, sep);
      jv *x = l->l.v[i];
      if (attr) x = getattr_v(E, x, as_str(E, attr)->s.s, as_str(E, attr)->s.n, line);
      to_str(E, &b, x);
    }
    jv *r = mk(E, V_STR);
    r->s.s = b.s;
    r->s.n = b.n;
    return r;
  }
  if (!strcmp(name, "default") || !strcmp(name, "d")) {
    jv *dv = arg(a, 0, "default_value");
    jv *boolean = arg(a, 1, "boolean");
    bool use = v->t == V_UNDEF || (boolean && truthy(boolean) && !truthy(v));
    return use ? (dv ? dv : mk_str(E, "", 0)) : v;
  }
  if (!strcmp(name, "int")) {
    if (v->t == V_INT) return v;
    if (v->t == V_FLOAT) return mk_int(E, (int64_t)v->f);
    if (v->t == V_BOOL) return mk_int(E, v->b);
    if (v->t == V_STR) {
      char *end;
      const char *z = ja_strndup(E->c, v->s.s, v->s.n);
      long long x = strtoll(z, &end, 10);
      if (*end) {
        double d = strtod(z, &end);
        return mk_int(E, *end ? 0 : (int64_t)d);
      }
      return mk_int(E, x);
    }
    return mk_int(E, 0);
  }
  if (!strcmp(name, "float")) {
    if (is_num(v)) return mk_float(E, num(v));
    if (v->t == V_STR) return mk_float(E, strtod(ja_strndup(E->c, v->s.s, v->s.n), NULL));
    return mk_float(E, 0);
  }
  if (!strcmp(name, "abs")) {
    if (v->t == V_INT) return mk_int(E, v->i < 0 ? -v->i : v->i);
    if (is_num(v)) return mk_float(E, fabs(num(v)));
    jfail(E->c, line, "abs of a %s", type_name(v));
  }
  if (!strcmp(name, "round")) {
    jv *prec = arg(a, 0, "precision");
    jv *method = arg(a, 1, "method");
    double p = pow(10, prec ? (double)want_int(E, prec, "round", line) : 0), x = num(v) * p;
    const char *m = method && method->t == V_STR ? method->s.s : "common";
    x = !strcmp(m, "ceil") ? ceil(x) : !strcmp(m, "floor") ? floor(x) : round(x);
    return mk_float(E, x / p);
  }
  if (!strcmp(name, "list")) {
    jv *l = iter_list(E, v, line);
    jv *r = mk_list(E);
    for (size_t i = 0; i < l->l.n; i++) list_push(E, r, l->l.v[i]);
    return r;
  }
  if (!strcmp(name, "reverse")) {
    if (v->t == V_STR) {
      jv *l = iter_list(E, v, line);
      jsb b = {0};
      jsb_add(E->c, &b, "", 0);
      for (size_t i = l->l.n; i-- > 0;) jsb_add(E->c, &b, l->l.v[i]->s.s, l->l.v[i]->s.n);
      return mk_str(E, b.s, b.n);
    }
    jv *l = iter_list(E, v, line), *r = mk_list(E);
    for (size_t i = l->l.n; i-- > 0;) list_push(E, r, l->l.v[i]);
    return r;
  }
  if (!strcmp(name, "items") || !strcmp(name, "dictsort")) {
    if (v->t == V_UNDEF || v->t == V_NONE) return mk_list(E);
    if (v->t != V_DICT) jfail(E->c, line, "%s expects a dict, got %s", name, type_name(v));
    jv *r = mk_list(E);
    for (size_t i = 0; i < v->d.n; i++) {
      jv *t = mk_list(E);
      t->is_tuple = true;
      list_push(E, t, mk_str(E, v->d.k[i], v->d.kn[i]));
      list_push(E, t, v->d.v[i]);
      list_push(E, r, t);
    }
    if (name[0] == 'd') /* sort by key */
      for (size_t i = 1; i < r->l.n; i++)
        for (size_t j = i; j > 0 && compare(E, r->l.v[j - 1]->l.v[0], r->l.v[j]->l.v[0], line) > 0; j--) {
          jv *t = r->l.v[j];
          r->l.v[j] = r->l.v[j - 1];
          r->l.v[j - 1] = t;
        }
    return r;
  }
  if (!strcmp(name, "sort")) {
    jv *l = iter_list(E, v, line), *r = mk_list(E);
    jv *rev = arg(a, 0, "reverse");
    jv *attr = arg(a, 2, "attribute");
    for (size_t i = 0; i < l->l.n; i++) list_push(E, r, l->l.v[i]);
    for (size_t i = 1; i < r->l.n; i++)
      for (size_t j = i; j > 0; j--) {
        jv *x = r->l.v[j - 1], *y = r->l.v[j];
        if (attr) {
          x = getattr_v(E, x, as_str(E, attr)->s.s, as_str(E, attr)->s.n, line);
          y = getattr_v(E, y, as_str(E, attr)->s.s, as_str(E, attr)->s.n, line);
        }
        int cmp = compare(E, x, y, line);
        if (rev && truthy(rev) ? cmp >= 0 : cmp <= 0) break;
        jv *t = r->l.v[j];
        r->l.v[j] = r->l.v[j - 1];
        r->l.v[j - 1] = t;
      }
    return r;
  }
  if (!strcmp(name, "unique")) {
    jv *l = iter_list(E, v, line), *r = mk_list(E);
    for (size_t i = 0; i < l->l.n; i++) {
      bool seen = false;
      for (size_t j = 0; j < r->l.n && !seen; j++) seen = equal(r->l.v[j], l->l.v[i]);
      if (!seen) list_push(E, r, l->l.v[i]);
    }
    return r;
  }
  if (!strcmp(name, "replace")) {
    jv *from = arg(a, 0, "old"), *to = arg(a, 1, "new"), *cnt = arg(a, 2, "count");
    want_str(E, from, "replace", line);
    want_str(E, to, "replace", line);
    return str_replace(E, as_str(E, v), from, to, cnt ? want_int(E, cnt, "replace", line) : -1);
  }
  if (!strcmp(name, "indent")) {
    jv *w = arg(a, 0, "width"), *first = arg(a, 1, "first"), *blank = arg(a, 2, "blank");
    jsb pad = {0};
    jsb_add(E->c, &pad, "", 0);
    if (w && w->t == V_STR) jsb_add(E->c, &pad, w->s.s, w->s.n);
    else
      for (int64_t i = 0; i < (w ? want_int(E, w, "indent", line) : 4); i++) jsb_adds(E->c, &pad, " ");
    jv *s = as_str(E, v);
    jsb b = {0};
    jsb_add(E->c, &b, "", 0);
    size_t i = 0;
    bool firstline = true;
    while (i <= s->s.n) {
      const char *nl = memchr(s->s.s + i, '\n', s->s.n - i);
      size_t e = nl ? (size_t)(nl - s->s.s) : s->s.n;
      bool empty = e == i;
      if ((!firstline || (first && truthy(first))) && (!empty || (blank && truthy(blank)))) jsb_add(E->c, &b, pad.s, pad.n);
      jsb_add(E->c, &b, s->s.s + i, e - i);
      if (!nl) break;
      jsb_adds(E->c, &b, "\n");
      i = e + 1;
      firstline = false;
    }
    return mk_str(E, b.s, b.n);
  }
  if (!strcmp(name, "selectattr") || !strcmp(name, "rejectattr") || !strcmp(name, "select") || !strcmp(name, "reject")) {
    bool by_attr = strstr(name, "attr") != NULL, keep = name[0] == 's';
    jv *l = iter_list(E, v, line), *r = mk_list(E);
    int base = by_attr ? 1 : 0;
    jv *attr = by_attr ? arg(a, 0, NULL) : NULL;
    if (by_attr) want_str(E, attr, name, line);
    jv *test = arg(a, base, NULL);
    args ta = {0};
    for (int k = base + 1; k < a->npos; k++) ta.pos[ta.npos++] = a->pos[k];
    for (size_t i = 0; i < l->l.n; i++) {
      jv *x = by_attr ? getattr_v(E, l->l.v[i], attr->s.s, attr->s.n, line) : l->l.v[i];
      bool ok = test ? run_test(E, want_str(E, test, name, line)->s.s, x, &ta, line) : truthy(x);
      if (ok == keep) list_push(E, r, l->l.v[i]);
    }
    return r;
  }
  if (!strcmp(name, "map")) {
    jv *l = iter_list(E, v, line), *r = mk_list(E);
    jv *attr = arg(a, -1, "attribute");
    jv *dflt = arg(a, -1, "default");
    for (size_t i = 0; i < l->l.n; i++) {
      jv *x;
      if (attr) {
        jv *s = as_str(E, attr);
        x = getattr_v(E, l->l.v[i], s->s.s, s->s.n, line);
        if (x->t == V_UNDEF && dflt) x = dflt;
      } else {
        jv *fname = arg(a, 0, NULL);
        want_str(E, fname, "map", line);
        args fa = {0};
        for (int k = 1; k < a->npos; k++) fa.pos[fa.npos++] = a->pos[k];
        x = filter(E, fname->s.s, l->l.v[i], &fa, line);
      }
      list_push(E, r, x);
    }
    return r;
  }
  if (!strcmp(name, "attr")) {
    jv *s = as_str(E, arg(a, 0, "name") ? arg(a, 0, "name") : &UNDEF);
    return getattr_v(E, v, s->s.s, s->s.n, line);
  }
  if (!strcmp(name, "sum") || !strcmp(name, "max") || !strcmp(name, "min")) {
    jv *l = iter_list(E, v, line);
    if (name[1] == 'u') {
      bool isf = false;
      int64_t si = 0;
      double sf = 0;
      for (size_t i = 0; i < l->l.n; i++) {
        if (!is_num(l->l.v[i])) jfail(E->c, line, "sum of a %s", type_name(l->l.v[i]));
        if (l->l.v[i]->t == V_FLOAT) isf = true;
        si += l->l.v[i]->t == V_FLOAT ? 0 : (int64_t)num(l->l.v[i]);
        sf += num(l->l.v[i]);
      }
      return isf ? mk_float(E, sf) : mk_int(E, si);
    }
    if (!l->l.n) return &UNDEF;
    jv *best = l->l.v[0];
    for (size_t i = 1; i < l->l.n; i++) {
      int cmp = compare(E, l->l.v[i], best, line);
      if (name[1] == 'a' ? cmp > 0 : cmp < 0) best = l->l.v[i];
    }
    return best;
  }
  if (!strcmp(name, "wordcount")) return mk_int(E, (int64_t)str_split(E, as_str(E, v), NULL, -1)->l.n);
  jfail(E->c, line, "unsupported filter '%s'", name);
}

/* ---- tests ---- */

static bool run_test(ev *E, const char *name, jv *v, const args *a, int line) {
  jv *x = arg(a, 0, NULL);
  if (!strcmp(name, "defined")) return v->t != V_UNDEF;
  if (!strcmp(name, "undefined")) return v->t == V_UNDEF;
  if (!strcmp(name, "none")) return v->t == V_NONE;
  if (!strcmp(name, "string")) return v->t == V_STR;
  if (!strcmp(name, "number")) return v->t == V_INT || v->t == V_FLOAT;
  if (!strcmp(name, "integer")) return v->t == V_INT;
  if (!strcmp(name, "float")) return v->t == V_FLOAT;
  if (!strcmp(name, "boolean")) return v->t == V_BOOL;
  if (!strcmp(name, "true")) return v->t == V_BOOL && v->b;
  if (!strcmp(name, "false")) return v->t == V_BOOL && !v->b;
  if (!strcmp(name, "mapping")) return v->t == V_DICT;
  if (!strcmp(name, "iterable")) return v->t == V_LIST || v->t == V_STR || v->t == V_DICT;
  if (!strcmp(name, "sequence")) return v->t == V_LIST || v->t == V_STR || v->t == V_DICT;
  if (!strcmp(name, "callable")) return v->t == V_MACRO || v->t == V_FUNC || v->t == V_METHOD;
  if (!strcmp(name, "odd") || !strcmp(name, "even")) {
    int64_t i = want_int(E, v, name, line);
    return ((i % 2) != 0) == (name[0] == 'o');
  }
  if (!strcmp(name, "divisibleby")) {
    int64_t d = want_int(E, x, name, line);
    return d != 0 && want_int(E, v, name, line) % d == 0;
  }
  if (!strcmp(name, "eq") || !strcmp(name, "equalto") || !strcmp(name, "==") || !strcmp(name, "sameas"))
    return x && equal(v, x);
  if (!strcmp(name, "ne") || !strcmp(name, "!=")) return x && !equal(v, x);
  if (!strcmp(name, "lt") || !strcmp(name, "lessthan")) return x && compare(E, v, x, line) < 0;
  if (!strcmp(name, "le")) return x && compare(E, v, x, line) <= 0;
  if (!strcmp(name, "gt") || !strcmp(name, "greaterthan")) return x && compare(E, v, x, line) > 0;
  if (!strcmp(name, "ge")) return x && compare(E, v, x, line) >= 0;
  if (!strcmp(name, "lower") || !strcmp(name, "upper")) {
    if (v->t != V_STR) return false;
    jv *c = str_case(E, v, name[0] == 'l' ? 0 : 1);
    return equal(c, v);
  }
  if (!strcmp(name, "in")) {
    if (!x) return false;
    jv *l = iter_list(E, x, line);
    if (x->t == V_STR && v->t == V_STR) return memmem(x->s.s, x->s.n, v->s.s, v->s.n) != NULL;
    for (size_t i = 0; i < l->l.n; i++)
      if (equal(l->l.v[i], v)) return true;
    return false;
  }
  jfail(E->c, line, "unsupported test 'is %s'", name);
}

/* ---- attribute, index, call ---- */

static const char *const STR_METHODS[] = {"strip", "lstrip", "rstrip", "split", "startswith", "endswith", "upper",
                                          "lower", "title", "capitalize", "replace", "find", "count", "join",
                                          "isdigit", "isalpha", "isspace", "splitlines", NULL};
static const char *const DICT_METHODS[] = {"items", "keys", "values", "get", NULL};

static bool in_names(const char *const *names, const char *n, size_t nl) {
  for (int i = 0; names[i]; i++)
    if (strlen(names[i]) == nl && !memcmp(names[i], n, nl)) return true;
  return false;
}

static jv *getattr_v(ev *E, jv *obj, const char *name, size_t nlen, int line) {
  if (obj->t == V_DICT) {
    jv *x = dict_get(obj, name, nlen);
    if (x) return x;
    if (!obj->is_ns && in_names(DICT_METHODS, name, nlen)) goto method;
    return &UNDEF;
  }
  if (obj->t == V_STR && in_names(STR_METHODS, name, nlen)) goto method;
  if (obj->t == V_LIST && isdigit((unsigned char)name[0])) {
    size_t i = (size_t)atoll(name);
    return i < obj->l.n ? obj->l.v[i] : &UNDEF;
  }
  if (obj->t == V_UNDEF) jfail(E->c, line, "'%.*s' of an undefined value", (int)nlen, name);
  return &UNDEF;
method: {
  jv *m = mk(E, V_METHOD);
  m->m.name = ja_strndup(E->c, name, nlen);
  m->m.self = obj;
  return m;
}
}

static jv *index_v(ev *E, jv *obj, jv *key, int line) {
  if (obj->t == V_LIST) {
    if (key->t != V_INT) jfail(E->c, line, "list index must be an integer, got %s", type_name(key));
    int64_t i = key->i < 0 ? key->i + (int64_t)obj->l.n : key->i;
    return i >= 0 && (size_t)i < obj->l.n ? obj->l.v[i] : &UNDEF;
  }
  if (obj->t == V_DICT) {
    jv *k = as_str(E, key);
    jv *x = dict_get(obj, k->s.s, k->s.n);
    return x ? x : &UNDEF;
  }
  if (obj->t == V_STR) {
    if (key->t != V_INT) jfail(E->c, line, "string index must be an integer");
    int64_t n = (int64_t)cp_count(obj->s.s, obj->s.n);
    int64_t i = key->i < 0 ? key->i + n : key->i;
    if (i < 0 || i >= n) return &UNDEF;
    size_t a = cp_offset(obj->s.s, obj->s.n, (size_t)i), b = cp_offset(obj->s.s, obj->s.n, (size_t)i + 1);
    return mk_str(E, obj->s.s + a, b - a);
  }
  if (obj->t == V_UNDEF) return &UNDEF;
  jfail(E->c, line, "cannot index a %s", type_name(obj));
}

static jv *slice_v(ev *E, jv *obj, jv *lo, jv *hi, jv *st, int line) {
  int64_t n;
  jv *l = NULL;
  if (obj->t == V_STR) {
    l = iter_list(E, obj, line);
    n = (int64_t)l->l.n;
  } else if (obj->t == V_LIST) {
    l = obj;
    n = (int64_t)obj->l.n;
  } else if (obj->t == V_UNDEF) {
    return &UNDEF;
  } else {
    jfail(E->c, line, "cannot slice a %s", type_name(obj));
  }
  int64_t step = st && st->t != V_NONE ? want_int(E, st, "slice step", line) : 1;
  if (step == 0) jfail(E->c, line, "slice step cannot be zero");
  int64_t a, b;
  if (step > 0) {
    a = lo && lo->t != V_NONE ? want_int(E, lo, "slice", line) : 0;
    b = hi && hi->t != V_NONE ? want_int(E, hi, "slice", line) : n;
    if (a < 0) a += n;
    if (b < 0) b += n;
    a = a < 0 ? 0 : a > n ? n : a;
    b = b < 0 ? 0 : b > n ? n : b;
  } else {
    a = lo && lo->t != V_NONE ? want_int(E, lo, "slice", line) : n - 1;
    b = hi && hi->t != V_NONE ? want_int(E, hi, "slice", line) : -n - 1;
    if (a < 0) a += n;
    if (b < 0) b += n;
    a = a < -1 ? -1 : a > n - 1 ? n - 1 : a;
    b = b < -1 ? -1 : b > n - 1 ? n - 1 : b;
  }
  jv *r = mk_list(E);
  for (int64_t i = a; step > 0 ? i < b : i > b; i += step) list_push(E, r, l->l.v[i]);
  if (obj->t == V_STR) {
    jsb s = {0};
    jsb_add(E->c, &s, "", 0);
    for (size_t i = 0; i < r->l.n; i++) jsb_add(E->c, &s, r->l.v[i]->s.s, r->l.v[i]->s.n);
    return mk_str(E, s.s, s.n);
  }
  return r;
}

static bool starts_or_ends(ev *E, const jv *s, jv *x, bool end, int line) {
  if (x && x->t == V_LIST) {
    for (size_t i = 0; i < x->l.n; i++)
      if (starts_or_ends(E, s, x->l.v[i], end, line)) return true;
    return false;
  }
  want_str(E, x, end ? "endswith" : "startswith", line);
  if (x->s.n > s->s.n) return false;
  return !memcmp(end ? s->s.s + s->s.n - x->s.n : s->s.s, x->s.s, x->s.n);
}

static jv *call_method(ev *E, jv *m, const args *a, int line) {
  jv *self = m->m.self;
  const char *name = m->m.name;
  if (self->t == V_DICT) {
    if (!strcmp(name, "items")) return filter(E, "items", self, a, line);
    if (!strcmp(name, "keys") || !strcmp(name, "values")) {
      jv *r = mk_list(E);
      for (size_t i = 0; i < self->d.n; i++)
        list_push(E, r, name[0] == 'k' ? mk_str(E, self->d.k[i], self->d.kn[i]) : self->d.v[i]);
      return r;
    }
    /* get */
    jv *k = arg(a, 0, NULL);
    jv *x = k ? dict_get(self, as_str(E, k)->s.s, as_str(E, k)->s.n) : NULL;
    return x ? x : arg(a, 1, NULL) ? arg(a, 1, NULL) : &NONE;
  }
  /* string methods */
  if (!strcmp(name, "strip")) return str_strip(E, self, arg(a, 0, NULL), 3);
  if (!strcmp(name, "lstrip")) return str_strip(E, self, arg(a, 0, NULL), 1);
  if (!strcmp(name, "rstrip")) return str_strip(E, self, arg(a, 0, NULL), 2);
  if (!strcmp(name, "split")) {
    jv *ms = arg(a, 1, "maxsplit");
    return str_split(E, self, arg(a, 0, "sep"), ms ? want_int(E, ms, "split", line) : -1);
  }
  if (!strcmp(name, "startswith") || !strcmp(name, "endswith"))
    return mk_bool(E, starts_or_ends(E, self, arg(a, 0, NULL), name[0] == 'e', line));
  if (!strcmp(name, "upper")) return str_case(E, self, 1);
  if (!strcmp(name, "lower")) return str_case(E, self, 0);
  if (!strcmp(name, "title")) return str_case(E, self, 2);
  if (!strcmp(name, "capitalize")) return str_case(E, self, 3);
  if (!strcmp(name, "replace")) {
    jv *from = arg(a, 0, NULL), *to = arg(a, 1, NULL), *cnt = arg(a, 2, NULL);
    want_str(E, from, "replace", line);
    want_str(E, to, "replace", line);
    return str_replace(E, self, from, to, cnt ? want_int(E, cnt, "replace", line) : -1);
  }
  if (!strcmp(name, "find") || !strcmp(name, "count")) {
    jv *x = arg(a, 0, NULL);
    want_str(E, x, name, line);
    if (name[0] == 'f') {
      const char *hit = x->s.n ? memmem(self->s.s, self->s.n, x->s.s, x->s.n) : self->s.s;
      return mk_int(E, hit ? (int64_t)cp_count(self->s.s, (size_t)(hit - self->s.s)) : -1);
    }
    int64_t k = 0;
    for (size_t i = 0; x->s.n && i + x->s.n <= self->s.n;) {
      const char *hit = memmem(self->s.s + i, self->s.n - i, x->s.s, x->s.n);
      if (!hit) break;
      k++;
      i = (size_t)(hit - self->s.s) + x->s.n;
    }
    return mk_int(E, k);
  }
  if (!strcmp(name, "join")) {
    args fa = {0};
    fa.pos[0] = self;
    fa.npos = 1;
    return filter(E, "join", arg(a, 0, NULL) ? arg(a, 0, NULL) : &UNDEF, &fa, line);
  }
  if (!strcmp(name, "splitlines")) {
    jv nl = {.t = V_STR, .s = {"\n", 1}};
    jv *l = str_split(E, self, &nl, -1);
    if (l->l.n && l->l.v[l->l.n - 1]->s.n == 0) l->l.n--;
    return l;
  }
  if (!strncmp(name, "is", 2)) {
    if (!self->s.n) return mk_bool(E, false);
    const uint8_t *u = (const uint8_t *)self->s.s;
    for (size_t i = 0; i < self->s.n;) {
      int32_t cp;
      int k = preft_utf8_decode(u + i, self->s.n - i, &cp);
      if (!k) return mk_bool(E, false);
      utf8proc_category_t cat = utf8proc_category(cp);
      bool ok = !strcmp(name, "isdigit") ? cat == UTF8PROC_CATEGORY_ND
                : !strcmp(name, "isalpha") ? (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO)
                                           : is_space_cp(cp);
      if (!ok) return mk_bool(E, false);
      i += (size_t)k;
    }
    return mk_bool(E, true);
  }
  jfail(E->c, line, "unsupported method '%s' on a %s", name, type_name(self));
}

static jv *call_builtin(ev *E, const char *name, const args *a, int line) {
  if (!strcmp(name, "namespace") || !strcmp(name, "dict")) {
    jv *d = mk(E, V_DICT);
    d->is_ns = name[0] == 'n';
    if (a->npos && a->pos[0]->t == V_DICT)
      for (size_t i = 0; i < a->pos[0]->d.n; i++) dict_set(E, d, a->pos[0]->d.k[i], a->pos[0]->d.kn[i], a->pos[0]->d.v[i]);
    for (int k = 0; k < a->nkw; k++) dict_set(E, d, a->kw[k], strlen(a->kw[k]), a->kwv[k]);
    return d;
  }
  if (!strcmp(name, "range")) {
    int64_t lo = 0, hi, step = 1;
    if (a->npos == 1) hi = want_int(E, a->pos[0], "range", line);
    else if (a->npos >= 2) {
      lo = want_int(E, a->pos[0], "range", line);
      hi = want_int(E, a->pos[1], "range", line);
      if (a->npos >= 3) step = want_int(E, a->pos[2], "range", line);
    } else jfail(E->c, line, "range() needs arguments");
    if (step == 0) jfail(E->c, line, "range() step cannot be zero");
    if ((hi - lo) / step > 1000000) jfail(E->c, line, "range() too long");
    jv *r = mk_list(E);
    for (int64_t i = lo; step > 0 ? i < hi : i > hi; i += step) list_push(E, r, mk_int(E, i));
    return r;
  }
  if (!strcmp(name, "raise_exception")) {
    jv *m = arg(a, 0, NULL);
    jfail(E->c, line, "raise_exception: %s", m ? as_str(E, m)->s.s : "");
  }
  if (!strcmp(name, "strftime_now")) {
    jv *f = arg(a, 0, NULL);
    want_str(E, f, "strftime_now", line);
    char buf[256];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    size_t n = strftime(buf, sizeof buf, f->s.s, &tm);
    return mk_str(E, buf, n);
  }
  jfail(E->c, line, "unsupported function '%s'", name);
}

static jv *call_macro(ev *E, const jnode *m, const args *a, int line) {
  if (E->depth > 64) jfail(E->c, line, "macro recursion too deep");
  push_frame(E);
  for (int i = 0; i < m->ntargets; i++) {
    jv *v = arg(a, i, m->targets[i]);
    if (!v) v = m->args[i] ? eval(E, m->args[i]) : &UNDEF;
    set_var(E, m->targets[i], v);
  }
  jsb saved = E->out;
  E->out = (jsb){0};
  jsb_add(E->c, &E->out, "", 0);
  E->depth++;
  exec_body(E, m->body, m->nbody);
  E->depth--;
  jv *r = mk_str(E, E->out.s, E->out.n);
  E->out = saved;
  pop_frame(E);
  return r;
}

/* ---- expressions ---- */

static jv *binary(ev *E, const jnode *n) {
  const char *op = n->name;
  jv *a = eval(E, n->a), *b = eval(E, n->b);
  if (!strcmp(op, "==")) return mk_bool(E, equal(a, b));
  if (!strcmp(op, "!=")) return mk_bool(E, !equal(a, b));
  if (!strcmp(op, "<")) return mk_bool(E, compare(E, a, b, n->line) < 0);
  if (!strcmp(op, "<=")) return mk_bool(E, compare(E, a, b, n->line) <= 0);
  if (!strcmp(op, ">")) return mk_bool(E, compare(E, a, b, n->line) > 0);
  if (!strcmp(op, ">=")) return mk_bool(E, compare(E, a, b, n->line) >= 0);
  if (!strcmp(op, "in") || !strcmp(op, "not in")) {
    args ta = {.pos = {b}, .npos = 1};
    bool r = b->t == V_UNDEF ? false : run_test(E, "in", a, &ta, n->line);
    return mk_bool(E, op[0] == 'n' ? !r : r);
  }
  if (!strcmp(op, "~")) {
    jsb s = {0};
    jsb_add(E->c, &s, "", 0);
    to_str(E, &s, a);
    to_str(E, &s, b);
    return mk_str(E, s.s, s.n);
  }
  if (!strcmp(op, "+")) {
    if (a->t == V_STR && b->t == V_STR) {
      jsb s = {0};
      jsb_add(E->c, &s, a->s.s, a->s.n);
      jsb_add(E->c, &s, b->s.s, b->s.n);
      return mk_str(E, s.s, s.n);
    }
    if (a->t == V_LIST && b->t == V_LIST) {
      jv *r = mk_list(E);
      for (size_t i = 0; i < a->l.n; i++) list_push(E, r, a->l.v[i]);
      for (size_t i = 0; i < b->l.n; i++) list_push(E, r, b->l.v[i]);
      return r;
    }
  }
  if (!strcmp(op, "*") && ((a->t == V_STR && b->t == V_INT) || (a->t == V_INT && b->t == V_STR))) {
    jv *s = a->t == V_STR ? a : b;
    int64_t k = a->t == V_INT ? a->i : b->i;
    jsb r = {0};
    jsb_add(E->c, &r, "", 0);
    for (int64_t i = 0; i < k && i < 100000; i++) jsb_add(E->c, &r, s->s.s, s->s.n);
    return mk_str(E, r.s, r.n);
  }
  if (!is_num(a) || !is_num(b))
    jfail(E->c, n->line, "unsupported operand types for %s: %s and %s", op, type_name(a), type_name(b));
  bool ints = a->t != V_FLOAT && b->t != V_FLOAT;
  double x = num(a), y = num(b);
  if (!strcmp(op, "+")) return ints ? mk_int(E, (int64_t)x + (int64_t)y) : mk_float(E, x + y);
  if (!strcmp(op, "-")) return ints ? mk_int(E, (int64_t)x - (int64_t)y) : mk_float(E, x - y);
  if (!strcmp(op, "*")) return ints ? mk_int(E, (int64_t)x * (int64_t)y) : mk_float(E, x * y);
  if (!strcmp(op, "/")) {
    if (y == 0) jfail(E->c, n->line, "division by zero");
    return mk_float(E, x / y);
  }
  if (!strcmp(op, "//") || !strcmp(op, "%")) {
    if (y == 0) jfail(E->c, n->line, "division by zero");
    if (ints) {
      int64_t p = (int64_t)x, q = (int64_t)y, d = p / q, r = p % q;
      if (r != 0 && ((r < 0) != (q < 0))) d--, r += q; /* Python floor semantics */
      return mk_int(E, op[0] == '%' ? r : d);
    }
    double d = floor(x / y);
    return mk_float(E, op[0] == '%' ? x - d * y : d);
  }
  if (!strcmp(op, "**")) return ints && y >= 0 ? mk_int(E, (int64_t)pow(x, y)) : mk_float(E, pow(x, y));
  jfail(E->c, n->line, "unsupported operator '%s'", op);
}

static jv *eval(ev *E, const jnode *n) {
  switch (n->kind) {
    case E_LIT: return n->lit;
    case E_NAME: return get_var(E, n->name);
    case E_LIST:
    case E_TUPLE: {
      jv *l = mk_list(E);
      l->is_tuple = n->kind == E_TUPLE;
      for (int i = 0; i < n->nargs; i++) list_push(E, l, eval(E, n->args[i]));
      return l;
    }
    case E_DICT: {
      jv *d = mk(E, V_DICT);
      for (int i = 0; i + 1 < n->nargs; i += 2) {
        jv *k = as_str(E, eval(E, n->args[i]));
        dict_set(E, d, k->s.s, k->s.n, eval(E, n->args[i + 1]));
      }
      return d;
    }
    case E_ATTR: return getattr_v(E, eval(E, n->a), n->name, n->name_len, n->line);
    case E_INDEX: return index_v(E, eval(E, n->a), eval(E, n->b), n->line);
    case E_SLICE:
      return slice_v(E, eval(E, n->a), n->args[0] ? eval(E, n->args[0]) : NULL, n->args[1] ? eval(E, n->args[1]) : NULL,
                     n->args[2] ? eval(E, n->args[2]) : NULL, n->line);
    case E_CALL: {
      jv *f = eval(E, n->a);
      args a;
      eval_args(E, n, &a, 0);
      if (f->t == V_METHOD) return call_method(E, f, &a, n->line);
      if (f->t == V_FUNC) return call_builtin(E, f->m.name, &a, n->line);
      if (f->t == V_MACRO) return call_macro(E, f->macro, &a, n->line);
      if (n->a->kind == E_NAME) jfail(E->c, n->line, "unsupported function '%s'", n->a->name);
      jfail(E->c, n->line, "a %s is not callable", type_name(f));
    }
    case E_FILTER: {
      jv *v = eval(E, n->a);
      args a;
      eval_args(E, n, &a, 0);
      return filter(E, n->name, v, &a, n->line);
    }
    case E_TEST: {
      jv *v = eval(E, n->a);
      args a;
      eval_args(E, n, &a, 0);
      bool r = run_test(E, n->name, v, &a, n->line);
      return mk_bool(E, n->negated ? !r : r);
    }
    case E_NEG:
    case E_POS: {
      jv *v = eval(E, n->a);
      if (!is_num(v)) jfail(E->c, n->line, "unary %c on a %s", n->kind == E_NEG ? '-' : '+', type_name(v));
      if (n->kind == E_POS) return v;
      return v->t == V_FLOAT ? mk_float(E, -v->f) : mk_int(E, -(int64_t)num(v));
    }
    case E_NOT: return mk_bool(E, !truthy(eval(E, n->a)));
    case E_AND: {
      jv *a = eval(E, n->a);
      return truthy(a) ? eval(E, n->b) : a;
    }
    case E_OR: {
      jv *a = eval(E, n->a);
      return truthy(a) ? a : eval(E, n->b);
    }
    case E_COND: return truthy(eval(E, n->a)) ? eval(E, n->b) : n->c ? eval(E, n->c) : &UNDEF;
    case E_BIN: return binary(E, n);
    default: jfail(E->c, n->line, "internal: not an expression");
  }
}

/* ---- statements ---- */

static void bind_targets(ev *E, const jnode *n, jv *item) {
  if (n->ntargets == 1) {
    set_var(E, n->targets[0], item);
    return;
  }
  if (item->t != V_LIST || item->l.n != (size_t)n->ntargets)
    jfail(E->c, n->line, "cannot unpack a %s into %d variables", type_name(item), n->ntargets);
  for (int i = 0; i < n->ntargets; i++) set_var(E, n->targets[i], item->l.v[i]);
}

static void exec_for(ev *E, const jnode *n) {
  jv *src = iter_list(E, eval(E, n->a), n->line);
  push_frame(E);
  jv *items = src;
  if (n->b) { /* loop filter: evaluated with the loop variables bound */
    items = mk_list(E);
    for (size_t i = 0; i < src->l.n; i++) {
      bind_targets(E, n, src->l.v[i]);
      if (truthy(eval(E, n->b))) list_push(E, items, src->l.v[i]);
    }
  }
  size_t len = items->l.n;
  for (size_t i = 0; i < len; i++) {
    jv *loop = mk(E, V_DICT);
    dict_set(E, loop, "index", 5, mk_int(E, (int64_t)i + 1));
    dict_set(E, loop, "index0", 6, mk_int(E, (int64_t)i));
    dict_set(E, loop, "revindex", 8, mk_int(E, (int64_t)(len - i)));
    dict_set(E, loop, "revindex0", 9, mk_int(E, (int64_t)(len - i - 1)));
    dict_set(E, loop, "first", 5, mk_bool(E, i == 0));
    dict_set(E, loop, "last", 4, mk_bool(E, i + 1 == len));
    dict_set(E, loop, "length", 6, mk_int(E, (int64_t)len));
    dict_set(E, loop, "previtem", 8, i ? items->l.v[i - 1] : &UNDEF);
    dict_set(E, loop, "nextitem", 8, i + 1 < len ? items->l.v[i + 1] : &UNDEF);
    set_var(E, "loop", loop);
    bind_targets(E, n, items->l.v[i]);
    exec_body(E, n->body, n->nbody);
    E->cont = false;
    if (E->brk) {
      E->brk = false;
      break;
    }
  }
  pop_frame(E);
  if (len == 0 && n->norelse) exec_body(E, n->orelse, n->norelse);
}

static void exec_node(ev *E, const jnode *n) {
  switch (n->kind) {
    case N_TEXT: jsb_add(E->c, &E->out, n->name, n->name_len); break;
    case N_OUTPUT: to_str(E, &E->out, eval(E, n->a)); break;
    case N_IF:
      if (truthy(eval(E, n->a))) exec_body(E, n->body, n->nbody);
      else exec_body(E, n->orelse, n->norelse);
      break;
    case N_FOR: exec_for(E, n); break;
    case N_SET: {
      jv *v = eval(E, n->a);
      if (n->attr) {
        jv *ns = get_var(E, n->targets[0]);
        if (ns->t != V_DICT || !ns->is_ns)
          jfail(E->c, n->line, "set %s.%s: '%s' is not a namespace", n->targets[0], n->attr, n->targets[0]);
        dict_set(E, ns, n->attr, strlen(n->attr), v);
      } else {
        bind_targets(E, n, v);
      }
      break;
    }
    case N_SET_BLOCK: {
      jsb saved = E->out;
      E->out = (jsb){0};
      jsb_add(E->c, &E->out, "", 0);
      exec_body(E, n->body, n->nbody);
      jv *v = mk_str(E, E->out.s, E->out.n);
      E->out = saved;
      set_var(E, n->targets[0], v);
      break;
    }
    case N_MACRO: {
      jv *m = mk(E, V_MACRO);
      m->macro = n;
      set_var(E, n->name, m);
      break;
    }
    case N_BREAK: E->brk = true; break;
    case N_CONTINUE: E->cont = true; break;
    default: jfail(E->c, n->line, "internal: not a statement");
  }
}

static void exec_body(ev *E, jnode **body, int n) {
  for (int i = 0; i < n && !E->brk && !E->cont; i++) exec_node(E, body[i]);
}

int preft_jinja_render(const char *tmpl, const cJSON *context, char **out, preft_error *err) {
  *out = NULL;
  jctx c = {.err = err};
  ev E = {.c = &c};
  if (setjmp(c.fail)) {
    ja_free_all(&c);
    return -1;
  }
  jtoks toks = jinja_lex(&c, tmpl);
  jprog prog = jinja_parse(&c, &toks);
  push_frame(&E);
  const cJSON *x;
  cJSON_ArrayForEach(x, context) set_var(&E, ja_strndup(&c, x->string, strlen(x->string)), from_json(&E, x));
  jsb_add(&c, &E.out, "", 0);
  exec_body(&E, prog.body, prog.nbody);
  *out = preft_xmalloc(E.out.n + 1);
  memcpy(*out, E.out.s, E.out.n + 1);
  ja_free_all(&c);
  return 0;
}
