/* jinja_methods.c - what a template calls besides macros: Python str
 * methods (strip, split, startswith, find, isdigit, ...), dict methods
 * (items, keys, values, get), and the global functions namespace(), dict(),
 * range(), raise_exception() and strftime_now(). */
#include <time.h>
#include <utf8proc.h>

#include "text/jinja_int.h"
#include "text/unicode.h"

/* ---- methods ---- */

static const char *const STR_METHODS[] = {"strip",    "lstrip",  "rstrip",     "split", "startswith",
                                          "endswith", "upper",   "lower",      "title", "capitalize",
                                          "replace",  "find",    "count",      "join",  "isdigit",
                                          "isalpha",  "isspace", "splitlines", NULL};
static const char *const DICT_METHODS[] = {"items", "keys", "values", "get", NULL};

static bool in_names(const char *const *names, const char *n, size_t nl) {
  for (int i = 0; names[i]; i++)
    if (strlen(names[i]) == nl && !memcmp(names[i], n, nl)) return true;
  return false;
}

/* Does obj have a method of this name? A namespace has none: its attributes are its members. */
bool preft_jinja_has_method(const jv *obj, const char *name, size_t nlen) {
  if (obj->t == V_DICT) return !obj->is_ns && in_names(DICT_METHODS, name, nlen);
  return obj->t == V_STR && in_names(STR_METHODS, name, nlen);
}

static bool starts_or_ends(jeval *E, const jv *s, jv *x, bool end, int line) {
  if (x && x->t == V_LIST) {
    for (size_t i = 0; i < x->l.n; i++)
      if (starts_or_ends(E, s, x->l.v[i], end, line)) return true;
    return false;
  }
  preft_jv_want_str(E, x, end ? "endswith" : "startswith", line);
  if (x->s.n > s->s.n) return false;
  return !memcmp(end ? s->s.s + s->s.n - x->s.n : s->s.s, x->s.s, x->s.n);
}

/* Calls a bound method m (from preft_jinja_getattr) on its self. */
jv *preft_jinja_call_method(jeval *E, jv *m, const jargs *a, int line) {
  jv *self = m->m.self;
  const char *name = m->m.name;
  if (self->t == V_DICT) {
    if (!strcmp(name, "items")) return preft_jinja_filter(E, "items", self, a, line);
    if (!strcmp(name, "keys") || !strcmp(name, "values")) {
      jv *r = preft_jv_list(E);
      for (size_t i = 0; i < self->d.n; i++)
        preft_jv_list_push(E, r,
                           name[0] == 'k' ? preft_jv_str(E, self->d.k[i], self->d.kn[i]) : self->d.v[i]);
      return r;
    }
    /* get */
    jv *k = preft_jarg(a, 0, NULL);
    jv *x = k ? preft_jv_dict_get(self, preft_jv_as_str(E, k)->s.s, preft_jv_as_str(E, k)->s.n) : NULL;
    return x ? x : preft_jarg(a, 1, NULL) ? preft_jarg(a, 1, NULL) : &preft_jv_none;
  }
  /* string methods */
  if (!strcmp(name, "strip")) return preft_jstr_strip(E, self, preft_jarg(a, 0, NULL), JSTR_BOTH);
  if (!strcmp(name, "lstrip")) return preft_jstr_strip(E, self, preft_jarg(a, 0, NULL), JSTR_LEFT);
  if (!strcmp(name, "rstrip")) return preft_jstr_strip(E, self, preft_jarg(a, 0, NULL), JSTR_RIGHT);
  if (!strcmp(name, "split")) {
    jv *ms = preft_jarg(a, 1, "maxsplit"), *sep = preft_jarg(a, 0, "sep");
    if (sep && sep->t != V_NONE && sep->t != V_UNDEF) preft_jv_want_str(E, sep, "split", line);
    return preft_jstr_split(E, self, sep, ms ? preft_jv_want_int(E, ms, "split", line) : -1);
  }
  if (!strcmp(name, "startswith") || !strcmp(name, "endswith"))
    return preft_jv_bool(E, starts_or_ends(E, self, preft_jarg(a, 0, NULL), name[0] == 'e', line));
  if (!strcmp(name, "upper")) return preft_jstr_case(E, self, JSTR_UPPER);
  if (!strcmp(name, "lower")) return preft_jstr_case(E, self, JSTR_LOWER);
  if (!strcmp(name, "title")) return preft_jstr_case(E, self, JSTR_TITLE);
  if (!strcmp(name, "capitalize")) return preft_jstr_case(E, self, JSTR_CAPITALIZE);
  if (!strcmp(name, "replace")) {
    jv *from = preft_jarg(a, 0, NULL), *to = preft_jarg(a, 1, NULL), *cnt = preft_jarg(a, 2, NULL);
    preft_jv_want_str(E, from, "replace", line);
    preft_jv_want_str(E, to, "replace", line);
    return preft_jstr_replace(E, self, from, to, cnt ? preft_jv_want_int(E, cnt, "replace", line) : -1);
  }
  if (!strcmp(name, "find") || !strcmp(name, "count")) {
    jv *x = preft_jarg(a, 0, NULL);
    preft_jv_want_str(E, x, name, line);
    if (name[0] == 'f') {
      const char *hit = x->s.n ? memmem(self->s.s, self->s.n, x->s.s, x->s.n) : self->s.s;
      return preft_jv_int(E, hit ? (int64_t)preft_jstr_cp_count(self->s.s, (size_t)(hit - self->s.s)) : -1);
    }
    int64_t k = 0;
    for (size_t i = 0; x->s.n && i + x->s.n <= self->s.n;) {
      const char *hit = memmem(self->s.s + i, self->s.n - i, x->s.s, x->s.n);
      if (!hit) break;
      k++;
      i = (size_t)(hit - self->s.s) + x->s.n;
    }
    return preft_jv_int(E, k);
  }
  if (!strcmp(name, "join")) {
    jargs fa = {0};
    fa.pos[0] = self;
    fa.npos = 1;
    return preft_jinja_filter(E, "join", preft_jarg(a, 0, NULL) ? preft_jarg(a, 0, NULL) : &preft_jv_undef,
                              &fa, line);
  }
  if (!strcmp(name, "splitlines")) {
    jv nl = {.t = V_STR, .s = {"\n", 1}};
    jv *l = preft_jstr_split(E, self, &nl, -1);
    if (l->l.n && l->l.v[l->l.n - 1]->s.n == 0) l->l.n--;
    return l;
  }
  if (!strncmp(name, "is", 2)) {
    if (!self->s.n) return preft_jv_bool(E, false);
    const uint8_t *u = (const uint8_t *)self->s.s;
    for (size_t i = 0; i < self->s.n;) {
      int32_t cp;
      int k = preft_utf8_decode(u + i, self->s.n - i, &cp);
      if (!k) return preft_jv_bool(E, false);
      utf8proc_category_t cat = utf8proc_category(cp);
      bool ok = !strcmp(name, "isdigit")   ? cat == UTF8PROC_CATEGORY_ND
                : !strcmp(name, "isalpha") ? (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO)
                                           : preft_jstr_is_space(cp);
      if (!ok) return preft_jv_bool(E, false);
      i += (size_t)k;
    }
    return preft_jv_bool(E, true);
  }
  preft_jfail(E->c, line, "unsupported method '%s' on a %s", name, preft_jv_type_name(self));
}

/* ---- global functions ---- */

static const char *const BUILTINS[] = {"namespace", "range", "raise_exception", "strftime_now", "dict", NULL};

jv *preft_jinja_builtin(jeval *E, const char *name) {
  for (int i = 0; BUILTINS[i]; i++)
    if (!strcmp(name, BUILTINS[i])) {
      jv *f = preft_jv_new(E, V_FUNC);
      f->m.name = BUILTINS[i];
      return f;
    }
  return NULL;
}

jv *preft_jinja_call_builtin(jeval *E, const char *name, const jargs *a, int line) {
  if (!strcmp(name, "namespace") || !strcmp(name, "dict")) {
    jv *d = preft_jv_new(E, V_DICT);
    d->is_ns = name[0] == 'n';
    if (a->npos && a->pos[0]->t == V_DICT)
      for (size_t i = 0; i < a->pos[0]->d.n; i++)
        preft_jv_dict_set(E, d, a->pos[0]->d.k[i], a->pos[0]->d.kn[i], a->pos[0]->d.v[i]);
    for (int k = 0; k < a->nkw; k++) preft_jv_dict_set(E, d, a->kw[k], strlen(a->kw[k]), a->kwv[k]);
    return d;
  }
  if (!strcmp(name, "range")) {
    int64_t lo = 0, hi, step = 1;
    if (a->npos == 1)
      hi = preft_jv_want_int(E, a->pos[0], "range", line);
    else if (a->npos >= 2) {
      lo = preft_jv_want_int(E, a->pos[0], "range", line);
      hi = preft_jv_want_int(E, a->pos[1], "range", line);
      if (a->npos >= 3) step = preft_jv_want_int(E, a->pos[2], "range", line);
    } else
      preft_jfail(E->c, line, "range() needs arguments");
    if (step == 0) preft_jfail(E->c, line, "range() step cannot be zero");
    /* the length as Python computes it, in 128 bits so no int64 bound overflows */
    __int128 span = (__int128)hi - lo, len = 0;
    if (step > 0 && span > 0) len = (span + step - 1) / step;
    if (step < 0 && span < 0) len = (-span + -(__int128)step - 1) / -(__int128)step;
    if (len > 1000000) preft_jfail(E->c, line, "range() too long");
    jv *r = preft_jv_list(E);
    for (int64_t k = 0; k < (int64_t)len; k++) preft_jv_list_push(E, r, preft_jv_int(E, lo + k * step));
    return r;
  }
  if (!strcmp(name, "raise_exception")) {
    jv *m = preft_jarg(a, 0, NULL);
    preft_jfail(E->c, line, "raise_exception: %s", m ? preft_jv_as_str(E, m)->s.s : "");
  }
  if (!strcmp(name, "strftime_now")) {
    jv *f = preft_jarg(a, 0, NULL);
    preft_jv_want_str(E, f, "strftime_now", line);
    char buf[256];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    size_t n = strftime(buf, sizeof buf, f->s.s, &tm);
    return preft_jv_str(E, buf, n);
  }
  preft_jfail(E->c, line, "unsupported function '%s'", name);
}
