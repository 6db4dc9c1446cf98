/* jinja_filters.c - the filters (`x | trim`, `x | tojson(indent=2)`, ...)
 * and tests (`x is defined`, `x is in y`, ...) of the Jinja subset, with
 * Jinja2's argument names and defaults. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "text/jinja_int.h"

/* ---- filters ---- */

/* Stable insertion sort of list r in place, ascending (descending when reverse), keyed by
 * item[0] when by_pair_key (dictsort's (key, value) tuples), else by item.attr when attr
 * is given, else by the item itself. Fails on keys preft_jv_compare cannot order. */
static void sort_list(jeval *E, jv *r, bool by_pair_key, const jv *attr, bool reverse, int line) {
  for (size_t i = 1; i < r->l.n; i++)
    for (size_t j = i; j > 0; j--) {
      jv *x = r->l.v[j - 1], *y = r->l.v[j];
      if (by_pair_key) {
        x = x->l.v[0];
        y = y->l.v[0];
      } else if (attr) {
        jv *s = preft_jv_as_str(E, attr);
        x = preft_jinja_getattr(E, x, s->s.s, s->s.n, line);
        y = preft_jinja_getattr(E, y, s->s.s, s->s.n, line);
      }
      int cmp = preft_jv_compare(E, x, y, line);
      if (reverse ? cmp >= 0 : cmp <= 0) break;
      jv *t = r->l.v[j];
      r->l.v[j] = r->l.v[j - 1];
      r->l.v[j - 1] = t;
    }
}

/* Each filter: value v, call arguments a (Jinja2's names and positions), line for errors. */
typedef jv *filter_fn(jeval *E, jv *v, const jargs *a, int line);

static jv *f_trim(jeval *E, jv *v, const jargs *a, int line) {
  if (v->t == V_UNDEF) return preft_jv_str(E, "", 0);
  return preft_jstr_strip(E, preft_jv_as_str(E, v), preft_jarg(a, 0, "chars"), JSTR_BOTH);
}

static jv *f_tojson(jeval *E, jv *v, const jargs *a, int line) {
  jv *ind = preft_jarg(a, 0, "indent");
  jsb b = {0};
  preft_jsb_add(E->c, &b, "", 0);
  preft_jv_to_json(
      E, &b, v, ind && ind->t != V_NONE ? (int)preft_jv_want_int(E, ind, "tojson indent", line) : 0, 0, line);
  return preft_jv_str_take(E, &b);
}

static jv *f_length(jeval *E, jv *v, const jargs *a, int line) {
  if (v->t == V_STR) return preft_jv_int(E, (int64_t)preft_jstr_cp_count(v->s.s, v->s.n));
  if (v->t == V_LIST) return preft_jv_int(E, (int64_t)v->l.n);
  if (v->t == V_DICT) return preft_jv_int(E, (int64_t)v->d.n);
  if (v->t == V_UNDEF) return preft_jv_int(E, 0);
  preft_jfail(E->c, line, "length of a %s", preft_jv_type_name(v));
}

static jv *f_upper(jeval *E, jv *v, const jargs *a, int line) {
  return preft_jstr_case(E, preft_jv_as_str(E, v), JSTR_UPPER);
}
static jv *f_lower(jeval *E, jv *v, const jargs *a, int line) {
  return preft_jstr_case(E, preft_jv_as_str(E, v), JSTR_LOWER);
}
static jv *f_title(jeval *E, jv *v, const jargs *a, int line) {
  return preft_jstr_case(E, preft_jv_as_str(E, v), JSTR_TITLE);
}
static jv *f_capitalize(jeval *E, jv *v, const jargs *a, int line) {
  return preft_jstr_case(E, preft_jv_as_str(E, v), JSTR_CAPITALIZE);
}
static jv *f_string(jeval *E, jv *v, const jargs *a, int line) { return preft_jv_as_str(E, v); }
static jv *f_safe(jeval *E, jv *v, const jargs *a, int line) { return v; }

/* HTML escaping of & < > " ' (markupsafe's replacements). */
static jv *f_escape(jeval *E, jv *v, const jargs *a, int line) {
  static const struct {
    jv from, to;
  } html[] = {
      {{.t = V_STR, .s = {"&", 1}}, {.t = V_STR, .s = {"&amp;", 5}}}, /* first: the others add '&' */
      {{.t = V_STR, .s = {"<", 1}}, {.t = V_STR, .s = {"&lt;", 4}}},
      {{.t = V_STR, .s = {">", 1}}, {.t = V_STR, .s = {"&gt;", 4}}},
      {{.t = V_STR, .s = {"\"", 1}}, {.t = V_STR, .s = {"&#34;", 5}}},
      {{.t = V_STR, .s = {"'", 1}}, {.t = V_STR, .s = {"&#39;", 5}}},
  };
  jv *s = preft_jv_as_str(E, v);
  for (size_t i = 0; i < sizeof html / sizeof html[0]; i++)
    s = preft_jstr_replace(E, s, &html[i].from, &html[i].to, -1);
  return s;
}

static jv *f_first(jeval *E, jv *v, const jargs *a, int line) {
  jv *l = preft_jv_iter_list(E, v, line);
  return l->l.n ? l->l.v[0] : &preft_jv_undef;
}

static jv *f_last(jeval *E, jv *v, const jargs *a, int line) {
  jv *l = preft_jv_iter_list(E, v, line);
  return l->l.n ? l->l.v[l->l.n - 1] : &preft_jv_undef;
}

static jv *f_join(jeval *E, jv *v, const jargs *a, int line) {
  jv *l = preft_jv_iter_list(E, v, line);
  jv *sep = preft_jarg(a, 0, "d");
  jv *attr = preft_jarg(a, 1, "attribute");
  jsb b = {0};
  preft_jsb_add(E->c, &b, "", 0);
  for (size_t i = 0; i < l->l.n; i++) {
    if (i && sep) preft_jv_to_str(E, &b, sep);
    jv *x = l->l.v[i];
    if (attr)
      x = preft_jinja_getattr(E, x, preft_jv_as_str(E, attr)->s.s, preft_jv_as_str(E, attr)->s.n, line);
    preft_jv_to_str(E, &b, x);
  }
  return preft_jv_str_take(E, &b);
}

static jv *f_default(jeval *E, jv *v, const jargs *a, int line) {
  jv *dv = preft_jarg(a, 0, "default_value");
  jv *boolean = preft_jarg(a, 1, "boolean");
  bool use = v->t == V_UNDEF || (boolean && preft_jv_truthy(boolean) && !preft_jv_truthy(v));
  return use ? (dv ? dv : preft_jv_str(E, "", 0)) : v;
}

static jv *f_int(jeval *E, jv *v, const jargs *a, int line) {
  if (v->t == V_INT) return v;
  if (v->t == V_FLOAT) return preft_jv_int(E, preft_jv_float_to_int(E, v->f, line));
  if (v->t == V_BOOL) return preft_jv_int(E, v->b);
  if (v->t == V_STR) {
    char *end;
    const char *z = preft_ja_strndup(E->c, v->s.s, v->s.n);
    errno = 0;
    long long x = strtoll(z, &end, 10);
    if (*end || errno == ERANGE) {
      double d = strtod(z, &end);
      return preft_jv_int(E, *end ? 0 : preft_jv_float_to_int(E, d, line));
    }
    return preft_jv_int(E, x);
  }
  return preft_jv_int(E, 0);
}

static jv *f_float(jeval *E, jv *v, const jargs *a, int line) {
  if (preft_jv_is_num(v)) return preft_jv_float(E, preft_jv_num(v));
  if (v->t == V_STR) return preft_jv_float(E, strtod(preft_ja_strndup(E->c, v->s.s, v->s.n), NULL));
  return preft_jv_float(E, 0);
}

static jv *f_abs(jeval *E, jv *v, const jargs *a, int line) {
  if (v->t == V_INT) return preft_jv_int(E, v->i < 0 ? -v->i : v->i);
  if (preft_jv_is_num(v)) return preft_jv_float(E, fabs(preft_jv_num(v)));
  preft_jfail(E->c, line, "abs of a %s", preft_jv_type_name(v));
}

static jv *f_round(jeval *E, jv *v, const jargs *a, int line) {
  jv *prec = preft_jarg(a, 0, "precision");
  jv *method = preft_jarg(a, 1, "method");
  double p = pow(10, prec ? (double)preft_jv_want_int(E, prec, "round", line) : 0), x = preft_jv_num(v) * p;
  const char *m = method && method->t == V_STR ? method->s.s : "common";
  x = !strcmp(m, "ceil") ? ceil(x) : !strcmp(m, "floor") ? floor(x) : round(x);
  return preft_jv_float(E, x / p);
}

static jv *f_list(jeval *E, jv *v, const jargs *a, int line) {
  jv *l = preft_jv_iter_list(E, v, line);
  jv *r = preft_jv_list(E);
  for (size_t i = 0; i < l->l.n; i++) preft_jv_list_push(E, r, l->l.v[i]);
  return r;
}

static jv *f_reverse(jeval *E, jv *v, const jargs *a, int line) {
  if (v->t == V_STR) {
    jv *l = preft_jv_iter_list(E, v, line);
    jsb b = {0};
    preft_jsb_add(E->c, &b, "", 0);
    for (size_t i = l->l.n; i-- > 0;) preft_jsb_add(E->c, &b, l->l.v[i]->s.s, l->l.v[i]->s.n);
    return preft_jv_str(E, b.s, b.n);
  }
  jv *l = preft_jv_iter_list(E, v, line), *r = preft_jv_list(E);
  for (size_t i = l->l.n; i-- > 0;) preft_jv_list_push(E, r, l->l.v[i]);
  return r;
}

/* The (key, value) tuples of dict v in its order (none for undefined or
 * none); `name` names the filter in the error for any other type. */
static jv *dict_pairs(jeval *E, jv *v, const char *name, int line) {
  if (v->t == V_UNDEF || v->t == V_NONE) return preft_jv_list(E);
  if (v->t != V_DICT) preft_jfail(E->c, line, "%s expects a dict, got %s", name, preft_jv_type_name(v));
  jv *r = preft_jv_list(E);
  for (size_t i = 0; i < v->d.n; i++) {
    jv *t = preft_jv_list(E);
    t->is_tuple = true;
    preft_jv_list_push(E, t, preft_jv_str(E, v->d.k[i], v->d.kn[i]));
    preft_jv_list_push(E, t, v->d.v[i]);
    preft_jv_list_push(E, r, t);
  }
  return r;
}

static jv *f_items(jeval *E, jv *v, const jargs *a, int line) { return dict_pairs(E, v, "items", line); }

static jv *f_dictsort(jeval *E, jv *v, const jargs *a, int line) {
  jv *r = dict_pairs(E, v, "dictsort", line);
  sort_list(E, r, true, NULL, false, line);
  return r;
}

static jv *f_sort(jeval *E, jv *v, const jargs *a, int line) {
  jv *l = preft_jv_iter_list(E, v, line), *r = preft_jv_list(E);
  jv *rev = preft_jarg(a, 0, "reverse");
  jv *attr = preft_jarg(a, 2, "attribute");
  for (size_t i = 0; i < l->l.n; i++) preft_jv_list_push(E, r, l->l.v[i]);
  sort_list(E, r, false, attr, rev && preft_jv_truthy(rev), line);
  return r;
}

static jv *f_unique(jeval *E, jv *v, const jargs *a, int line) {
  jv *l = preft_jv_iter_list(E, v, line), *r = preft_jv_list(E);
  for (size_t i = 0; i < l->l.n; i++) {
    bool seen = false;
    for (size_t j = 0; j < r->l.n && !seen; j++) seen = preft_jv_equal(r->l.v[j], l->l.v[i]);
    if (!seen) preft_jv_list_push(E, r, l->l.v[i]);
  }
  return r;
}

static jv *f_replace(jeval *E, jv *v, const jargs *a, int line) {
  jv *from = preft_jarg(a, 0, "old"), *to = preft_jarg(a, 1, "new"), *cnt = preft_jarg(a, 2, "count");
  preft_jv_want_str(E, from, "replace", line);
  preft_jv_want_str(E, to, "replace", line);
  return preft_jstr_replace(E, preft_jv_as_str(E, v), from, to,
                            cnt ? preft_jv_want_int(E, cnt, "replace", line) : -1);
}

static jv *f_indent(jeval *E, jv *v, const jargs *a, int line) {
  jv *w = preft_jarg(a, 0, "width"), *first = preft_jarg(a, 1, "first"), *blank = preft_jarg(a, 2, "blank");
  jsb pad = {0};
  preft_jsb_add(E->c, &pad, "", 0);
  if (w && w->t == V_STR)
    preft_jsb_add(E->c, &pad, w->s.s, w->s.n);
  else
    for (int64_t i = 0; i < (w ? preft_jv_want_int(E, w, "indent", line) : 4); i++) jsb_adds(E->c, &pad, " ");
  jv *s = preft_jv_as_str(E, v);
  jsb b = {0};
  preft_jsb_add(E->c, &b, "", 0);
  size_t i = 0;
  bool firstline = true;
  while (i <= s->s.n) {
    const char *nl = memchr(s->s.s + i, '\n', s->s.n - i);
    size_t e = nl ? (size_t)(nl - s->s.s) : s->s.n;
    bool empty = e == i;
    if ((!firstline || (first && preft_jv_truthy(first))) && (!empty || (blank && preft_jv_truthy(blank))))
      preft_jsb_add(E->c, &b, pad.s, pad.n);
    preft_jsb_add(E->c, &b, s->s.s + i, e - i);
    if (!nl) break;
    jsb_adds(E->c, &b, "\n");
    i = e + 1;
    firstline = false;
  }
  return preft_jv_str(E, b.s, b.n);
}

/* select / reject (by_attr false) and selectattr / rejectattr (by_attr
 * true): the items of v (or their attribute) that pass the named test (or
 * are truthy without one), kept when keep, dropped otherwise. */
static jv *filter_by_test(jeval *E, jv *v, const jargs *a, int line, const char *name, bool by_attr,
                          bool keep) {
  jv *l = preft_jv_iter_list(E, v, line), *r = preft_jv_list(E);
  int base = by_attr ? 1 : 0;
  jv *attr = by_attr ? preft_jarg(a, 0, NULL) : NULL;
  if (by_attr) preft_jv_want_str(E, attr, name, line);
  jv *test = preft_jarg(a, base, NULL);
  jargs ta = {0};
  for (int k = base + 1; k < a->npos; k++) ta.pos[ta.npos++] = a->pos[k];
  for (size_t i = 0; i < l->l.n; i++) {
    jv *x = by_attr ? preft_jinja_getattr(E, l->l.v[i], attr->s.s, attr->s.n, line) : l->l.v[i];
    bool ok = test ? preft_jinja_test(E, preft_jv_want_str(E, test, name, line)->s.s, x, &ta, line)
                   : preft_jv_truthy(x);
    if (ok == keep) preft_jv_list_push(E, r, l->l.v[i]);
  }
  return r;
}

static jv *f_select(jeval *E, jv *v, const jargs *a, int line) {
  return filter_by_test(E, v, a, line, "select", false, true);
}
static jv *f_reject(jeval *E, jv *v, const jargs *a, int line) {
  return filter_by_test(E, v, a, line, "reject", false, false);
}
static jv *f_selectattr(jeval *E, jv *v, const jargs *a, int line) {
  return filter_by_test(E, v, a, line, "selectattr", true, true);
}
static jv *f_rejectattr(jeval *E, jv *v, const jargs *a, int line) {
  return filter_by_test(E, v, a, line, "rejectattr", true, false);
}

/* map(attribute=..., default=...) or map('filter', args...) */
static jv *f_map(jeval *E, jv *v, const jargs *a, int line) {
  jv *l = preft_jv_iter_list(E, v, line), *r = preft_jv_list(E);
  jv *attr = preft_jarg(a, -1, "attribute");
  jv *dflt = preft_jarg(a, -1, "default");
  for (size_t i = 0; i < l->l.n; i++) {
    jv *x;
    if (attr) {
      jv *s = preft_jv_as_str(E, attr);
      x = preft_jinja_getattr(E, l->l.v[i], s->s.s, s->s.n, line);
      if (x->t == V_UNDEF && dflt) x = dflt;
    } else {
      jv *fname = preft_jarg(a, 0, NULL);
      preft_jv_want_str(E, fname, "map", line);
      jargs fa = {0};
      for (int k = 1; k < a->npos; k++) fa.pos[fa.npos++] = a->pos[k];
      x = preft_jinja_filter(E, fname->s.s, l->l.v[i], &fa, line);
    }
    preft_jv_list_push(E, r, x);
  }
  return r;
}

static jv *f_attr(jeval *E, jv *v, const jargs *a, int line) {
  jv *s = preft_jv_as_str(E, preft_jarg(a, 0, "name") ? preft_jarg(a, 0, "name") : &preft_jv_undef);
  return preft_jinja_getattr(E, v, s->s.s, s->s.n, line);
}

/* Python's sum: an int unless an item is a float; fails on a non-number. */
static jv *f_sum(jeval *E, jv *v, const jargs *a, int line) {
  jv *l = preft_jv_iter_list(E, v, line);
  bool isf = false;
  int64_t si = 0;
  double sf = 0;
  for (size_t i = 0; i < l->l.n; i++) {
    if (!preft_jv_is_num(l->l.v[i])) preft_jfail(E->c, line, "sum of a %s", preft_jv_type_name(l->l.v[i]));
    if (l->l.v[i]->t == V_FLOAT) isf = true;
    if (!isf && __builtin_add_overflow(si, preft_jv_int_of(l->l.v[i]), &si))
      preft_jfail(E->c, line, "integer overflow in sum: does not fit in a 64-bit integer");
    sf += preft_jv_num(l->l.v[i]);
  }
  return isf ? preft_jv_float(E, sf) : preft_jv_int(E, si);
}

/* The first greatest (sign 1) or least (sign -1) item of v; undefined when empty. */
static jv *extreme(jeval *E, jv *v, int sign, int line) {
  jv *l = preft_jv_iter_list(E, v, line);
  if (!l->l.n) return &preft_jv_undef;
  jv *best = l->l.v[0];
  for (size_t i = 1; i < l->l.n; i++)
    if (sign * preft_jv_compare(E, l->l.v[i], best, line) > 0) best = l->l.v[i];
  return best;
}

static jv *f_max(jeval *E, jv *v, const jargs *a, int line) { return extreme(E, v, 1, line); }
static jv *f_min(jeval *E, jv *v, const jargs *a, int line) { return extreme(E, v, -1, line); }

static jv *f_wordcount(jeval *E, jv *v, const jargs *a, int line) {
  return preft_jv_int(E, (int64_t)preft_jstr_split(E, preft_jv_as_str(E, v), NULL, -1)->l.n);
}

static const struct {
  const char *name;
  filter_fn *fn;
} filters[] = {
    {"trim", f_trim},
    {"tojson", f_tojson},
    {"length", f_length},
    {"count", f_length},
    {"upper", f_upper},
    {"lower", f_lower},
    {"title", f_title},
    {"capitalize", f_capitalize},
    {"string", f_string},
    {"safe", f_safe},
    {"e", f_escape},
    {"escape", f_escape},
    {"first", f_first},
    {"last", f_last},
    {"join", f_join},
    {"default", f_default},
    {"d", f_default},
    {"int", f_int},
    {"float", f_float},
    {"abs", f_abs},
    {"round", f_round},
    {"list", f_list},
    {"reverse", f_reverse},
    {"items", f_items},
    {"dictsort", f_dictsort},
    {"sort", f_sort},
    {"unique", f_unique},
    {"replace", f_replace},
    {"indent", f_indent},
    {"select", f_select},
    {"reject", f_reject},
    {"selectattr", f_selectattr},
    {"rejectattr", f_rejectattr},
    {"map", f_map},
    {"attr", f_attr},
    {"sum", f_sum},
    {"max", f_max},
    {"min", f_min},
    {"wordcount", f_wordcount},
};

jv *preft_jinja_filter(jeval *E, const char *name, jv *v, const jargs *a, int line) {
  for (size_t i = 0; i < sizeof filters / sizeof filters[0]; i++)
    if (!strcmp(filters[i].name, name)) return filters[i].fn(E, v, a, line);
  preft_jfail(E->c, line, "unsupported filter '%s'", name);
}

/* ---- tests ---- */

bool preft_jinja_test(jeval *E, const char *name, jv *v, const jargs *a, int line) {
  jv *x = preft_jarg(a, 0, NULL);
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
    int64_t i = preft_jv_want_int(E, v, name, line);
    return ((i % 2) != 0) == (name[0] == 'o');
  }
  if (!strcmp(name, "divisibleby")) {
    int64_t d = preft_jv_want_int(E, x, name, line);
    return d != 0 && preft_jv_want_int(E, v, name, line) % d == 0;
  }
  if (!strcmp(name, "eq") || !strcmp(name, "equalto") || !strcmp(name, "==") || !strcmp(name, "sameas"))
    return x && preft_jv_equal(v, x);
  if (!strcmp(name, "ne") || !strcmp(name, "!=")) return x && !preft_jv_equal(v, x);
  if (!strcmp(name, "lt") || !strcmp(name, "lessthan")) return x && preft_jv_compare(E, v, x, line) < 0;
  if (!strcmp(name, "le")) return x && preft_jv_compare(E, v, x, line) <= 0;
  if (!strcmp(name, "gt") || !strcmp(name, "greaterthan")) return x && preft_jv_compare(E, v, x, line) > 0;
  if (!strcmp(name, "ge")) return x && preft_jv_compare(E, v, x, line) >= 0;
  if (!strcmp(name, "lower") || !strcmp(name, "upper")) {
    if (v->t != V_STR) return false;
    jv *c = preft_jstr_case(E, v, name[0] == 'l' ? JSTR_LOWER : JSTR_UPPER);
    return preft_jv_equal(c, v);
  }
  if (!strcmp(name, "in")) {
    if (!x) return false;
    jv *l = preft_jv_iter_list(E, x, line);
    if (x->t == V_STR && v->t == V_STR) return memmem(x->s.s, x->s.n, v->s.s, v->s.n) != NULL;
    for (size_t i = 0; i < l->l.n; i++)
      if (preft_jv_equal(l->l.v[i], v)) return true;
    return false;
  }
  preft_jfail(E->c, line, "unsupported test 'is %s'", name);
}
