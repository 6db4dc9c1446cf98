/* jinja_eval.c - evaluation of the Jinja AST: scopes, expressions
 * (attribute, index, slice, calls, operators), statements, and
 * preft_jinja_render. Semantics follow Jinja2 as transformers runs it
 * (Python str() of values, Python string methods, undefined names render
 * as ""), checked against @huggingface/jinja. Values live in
 * jinja_value.c, filters and tests in jinja_filters.c, methods and global
 * functions in jinja_methods.c. */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>

#include "text/jinja.h"
#include "text/jinja_int.h"

/* One scope: the template context, a for loop body, or a macro call. */
typedef struct jvar {
  const char *name;
  jv *v;
} jvar;

typedef struct jframe {
  jvar *v;
  int n, cap;
} jframe;

static void exec_body(jeval *E, jnode **body, int n);
static jv *eval(jeval *E, const jnode *n);

/* ---- scopes ---- */

static void push_frame(jeval *E) {
  if (E->nf == E->capf) {
    int cap = E->capf ? E->capf * 2 : 16;
    jframe *nf = preft_ja_alloc(E->c, (size_t)cap * sizeof *nf);
    if (E->nf) memcpy(nf, E->frames, (size_t)E->nf * sizeof *nf);
    E->frames = nf;
    E->capf = cap;
  }
  memset(&E->frames[E->nf++], 0, sizeof(jframe));
}

static void pop_frame(jeval *E) { E->nf--; }

static void set_var(jeval *E, const char *name, jv *v) {
  jframe *f = &E->frames[E->nf - 1];
  for (int i = 0; i < f->n; i++)
    if (!strcmp(f->v[i].name, name)) {
      f->v[i].v = v;
      return;
    }
  if (f->n == f->cap) {
    int cap = f->cap ? f->cap * 2 : 8;
    jvar *nv = preft_ja_alloc(E->c, (size_t)cap * sizeof *nv);
    if (f->n) memcpy(nv, f->v, (size_t)f->n * sizeof *nv);
    f->v = nv;
    f->cap = cap;
  }
  f->v[f->n++] = (jvar){name, v};
}

static jv *get_var(jeval *E, const char *name) {
  for (int k = E->nf - 1; k >= 0; k--)
    for (int i = 0; i < E->frames[k].n; i++)
      if (!strcmp(E->frames[k].v[i].name, name)) return E->frames[k].v[i].v;
  jv *f = preft_jinja_builtin(E, name);
  return f ? f : &preft_jv_undef;
}

/* ---- arguments, attribute, index, slice, macro calls ---- */

static void eval_args(jeval *E, const jnode *n, jargs *a, int skip) {
  memset(a, 0, sizeof *a);
  for (int i = skip; i < n->nargs; i++) {
    jv *v = eval(E, n->args[i]);
    if (n->kw && n->kw[i]) {
      if (a->nkw == 8) preft_jfail(E->c, n->line, "too many keyword arguments");
      a->kw[a->nkw] = n->kw[i];
      a->kwv[a->nkw++] = v;
    } else {
      if (a->npos == 8) preft_jfail(E->c, n->line, "too many arguments");
      a->pos[a->npos++] = v;
    }
  }
}

jv *preft_jinja_getattr(jeval *E, jv *obj, const char *name, size_t nlen, int line) {
  if (obj->t == V_DICT) {
    jv *x = preft_jv_dict_get(obj, name, nlen);
    if (x) return x; /* a member shadows a method of the same name */
  }
  if (preft_jinja_has_method(obj, name, nlen)) {
    jv *m = preft_jv_new(E, V_METHOD);
    m->m.name = preft_ja_strndup(E->c, name, nlen);
    m->m.self = obj;
    return m;
  }
  if (obj->t == V_LIST && isdigit((unsigned char)name[0])) {
    size_t i = (size_t)atoll(name);
    return i < obj->l.n ? obj->l.v[i] : &preft_jv_undef;
  }
  if (obj->t == V_UNDEF) preft_jfail(E->c, line, "'%.*s' of an undefined value", (int)nlen, name);
  return &preft_jv_undef;
}

static jv *index_v(jeval *E, jv *obj, jv *key, int line) {
  if (obj->t == V_LIST) {
    if (key->t != V_INT)
      preft_jfail(E->c, line, "list index must be an integer, got %s", preft_jv_type_name(key));
    int64_t i = key->i < 0 ? key->i + (int64_t)obj->l.n : key->i;
    return i >= 0 && (size_t)i < obj->l.n ? obj->l.v[i] : &preft_jv_undef;
  }
  if (obj->t == V_DICT) {
    jv *k = preft_jv_as_str(E, key);
    jv *x = preft_jv_dict_get(obj, k->s.s, k->s.n);
    return x ? x : &preft_jv_undef;
  }
  if (obj->t == V_STR) {
    if (key->t != V_INT) preft_jfail(E->c, line, "string index must be an integer");
    int64_t n = (int64_t)preft_jstr_cp_count(obj->s.s, obj->s.n);
    int64_t i = key->i < 0 ? key->i + n : key->i;
    if (i < 0 || i >= n) return &preft_jv_undef;
    size_t a = preft_jstr_cp_offset(obj->s.s, obj->s.n, (size_t)i),
           b = preft_jstr_cp_offset(obj->s.s, obj->s.n, (size_t)i + 1);
    return preft_jv_str(E, obj->s.s + a, b - a);
  }
  if (obj->t == V_UNDEF) return &preft_jv_undef;
  preft_jfail(E->c, line, "cannot index a %s", preft_jv_type_name(obj));
}

static jv *slice_v(jeval *E, jv *obj, jv *lo, jv *hi, jv *st, int line) {
  int64_t n;
  jv *l = NULL;
  if (obj->t == V_STR) {
    l = preft_jv_iter_list(E, obj, line);
    n = (int64_t)l->l.n;
  } else if (obj->t == V_LIST) {
    l = obj;
    n = (int64_t)obj->l.n;
  } else if (obj->t == V_UNDEF) {
    return &preft_jv_undef;
  } else {
    preft_jfail(E->c, line, "cannot slice a %s", preft_jv_type_name(obj));
  }
  int64_t step = st && st->t != V_NONE ? preft_jv_want_int(E, st, "slice step", line) : 1;
  if (step == 0) preft_jfail(E->c, line, "slice step cannot be zero");
  int64_t a, b;
  if (step > 0) {
    a = lo && lo->t != V_NONE ? preft_jv_want_int(E, lo, "slice", line) : 0;
    b = hi && hi->t != V_NONE ? preft_jv_want_int(E, hi, "slice", line) : n;
    if (a < 0) a += n;
    if (b < 0) b += n;
    a = a < 0 ? 0 : a > n ? n : a;
    b = b < 0 ? 0 : b > n ? n : b;
  } else {
    a = lo && lo->t != V_NONE ? preft_jv_want_int(E, lo, "slice", line) : n - 1;
    b = hi && hi->t != V_NONE ? preft_jv_want_int(E, hi, "slice", line) : -n - 1;
    if (a < 0) a += n;
    if (b < 0) b += n;
    a = a < -1 ? -1 : a > n - 1 ? n - 1 : a;
    b = b < -1 ? -1 : b > n - 1 ? n - 1 : b;
  }
  jv *r = preft_jv_list(E);
  for (int64_t i = a; step > 0 ? i < b : i > b; i += step) preft_jv_list_push(E, r, l->l.v[i]);
  if (obj->t == V_STR) {
    jsb s = {0};
    preft_jsb_add(E->c, &s, "", 0);
    for (size_t i = 0; i < r->l.n; i++) preft_jsb_add(E->c, &s, r->l.v[i]->s.s, r->l.v[i]->s.n);
    return preft_jv_str(E, s.s, s.n);
  }
  return r;
}

static jv *call_macro(jeval *E, const jnode *m, const jargs *a, int line) {
  if (E->depth > 64) preft_jfail(E->c, line, "macro recursion too deep");
  push_frame(E);
  for (int i = 0; i < m->ntargets; i++) {
    jv *v = preft_jarg(a, i, m->targets[i]);
    if (!v) v = m->args[i] ? eval(E, m->args[i]) : &preft_jv_undef;
    set_var(E, m->targets[i], v);
  }
  jsb saved = E->out;
  E->out = (jsb){0};
  preft_jsb_add(E->c, &E->out, "", 0);
  E->depth++;
  exec_body(E, m->body, m->nbody);
  E->depth--;
  jv *r = preft_jv_str(E, E->out.s, E->out.n);
  E->out = saved;
  pop_frame(E);
  return r;
}

/* ---- expressions ---- */

static jv *binary(jeval *E, const jnode *n) {
  const char *op = n->name;
  jv *a = eval(E, n->a), *b = eval(E, n->b);
  if (!strcmp(op, "==")) return preft_jv_bool(E, preft_jv_equal(a, b));
  if (!strcmp(op, "!=")) return preft_jv_bool(E, !preft_jv_equal(a, b));
  if (!strcmp(op, "<")) return preft_jv_bool(E, preft_jv_compare(E, a, b, n->line) < 0);
  if (!strcmp(op, "<=")) return preft_jv_bool(E, preft_jv_compare(E, a, b, n->line) <= 0);
  if (!strcmp(op, ">")) return preft_jv_bool(E, preft_jv_compare(E, a, b, n->line) > 0);
  if (!strcmp(op, ">=")) return preft_jv_bool(E, preft_jv_compare(E, a, b, n->line) >= 0);
  if (!strcmp(op, "in") || !strcmp(op, "not in")) {
    jargs ta = {.pos = {b}, .npos = 1};
    bool r = b->t == V_UNDEF ? false : preft_jinja_test(E, "in", a, &ta, n->line);
    return preft_jv_bool(E, op[0] == 'n' ? !r : r);
  }
  if (!strcmp(op, "~")) {
    jsb s = {0};
    preft_jsb_add(E->c, &s, "", 0);
    preft_jv_to_str(E, &s, a);
    preft_jv_to_str(E, &s, b);
    return preft_jv_str(E, s.s, s.n);
  }
  if (!strcmp(op, "+")) {
    if (a->t == V_STR && b->t == V_STR) {
      jsb s = {0};
      preft_jsb_add(E->c, &s, a->s.s, a->s.n);
      preft_jsb_add(E->c, &s, b->s.s, b->s.n);
      return preft_jv_str(E, s.s, s.n);
    }
    if (a->t == V_LIST && b->t == V_LIST) {
      jv *r = preft_jv_list(E);
      for (size_t i = 0; i < a->l.n; i++) preft_jv_list_push(E, r, a->l.v[i]);
      for (size_t i = 0; i < b->l.n; i++) preft_jv_list_push(E, r, b->l.v[i]);
      return r;
    }
  }
  if (!strcmp(op, "*") && ((a->t == V_STR && b->t == V_INT) || (a->t == V_INT && b->t == V_STR))) {
    jv *s = a->t == V_STR ? a : b;
    int64_t k = a->t == V_INT ? a->i : b->i;
    jsb r = {0};
    preft_jsb_add(E->c, &r, "", 0);
    for (int64_t i = 0; i < k && i < 100000; i++) preft_jsb_add(E->c, &r, s->s.s, s->s.n);
    return preft_jv_str(E, r.s, r.n);
  }
  return preft_jinja_arith(E, op, a, b, n->line);
}

static jv *eval(jeval *E, const jnode *n) {
  switch (n->kind) {
    case E_LIT:
      return n->lit;
    case E_NAME:
      return get_var(E, n->name);
    case E_LIST:
    case E_TUPLE: {
      jv *l = preft_jv_list(E);
      l->is_tuple = n->kind == E_TUPLE;
      for (int i = 0; i < n->nargs; i++) preft_jv_list_push(E, l, eval(E, n->args[i]));
      return l;
    }
    case E_DICT: {
      jv *d = preft_jv_new(E, V_DICT);
      for (int i = 0; i + 1 < n->nargs; i += 2) {
        jv *k = preft_jv_as_str(E, eval(E, n->args[i]));
        preft_jv_dict_set(E, d, k->s.s, k->s.n, eval(E, n->args[i + 1]));
      }
      return d;
    }
    case E_ATTR:
      return preft_jinja_getattr(E, eval(E, n->a), n->name, n->name_len, n->line);
    case E_INDEX:
      return index_v(E, eval(E, n->a), eval(E, n->b), n->line);
    case E_SLICE:
      return slice_v(E, eval(E, n->a), n->args[0] ? eval(E, n->args[0]) : NULL,
                     n->args[1] ? eval(E, n->args[1]) : NULL, n->args[2] ? eval(E, n->args[2]) : NULL,
                     n->line);
    case E_CALL: {
      jv *f = eval(E, n->a);
      jargs a;
      eval_args(E, n, &a, 0);
      if (f->t == V_METHOD) return preft_jinja_call_method(E, f, &a, n->line);
      if (f->t == V_FUNC) return preft_jinja_call_builtin(E, f->m.name, &a, n->line);
      if (f->t == V_MACRO) return call_macro(E, f->macro, &a, n->line);
      if (n->a->kind == E_NAME) preft_jfail(E->c, n->line, "unsupported function '%s'", n->a->name);
      preft_jfail(E->c, n->line, "a %s is not callable", preft_jv_type_name(f));
    }
    case E_FILTER: {
      jv *v = eval(E, n->a);
      jargs a;
      eval_args(E, n, &a, 0);
      return preft_jinja_filter(E, n->name, v, &a, n->line);
    }
    case E_TEST: {
      jv *v = eval(E, n->a);
      jargs a;
      eval_args(E, n, &a, 0);
      bool r = preft_jinja_test(E, n->name, v, &a, n->line);
      return preft_jv_bool(E, n->negated ? !r : r);
    }
    case E_NEG:
    case E_POS: {
      jv *v = eval(E, n->a);
      if (!preft_jv_is_num(v))
        preft_jfail(E->c, n->line, "unary %c on a %s", n->kind == E_NEG ? '-' : '+', preft_jv_type_name(v));
      if (n->kind == E_POS) return v;
      return preft_jinja_negate(E, v, n->line);
    }
    case E_NOT:
      return preft_jv_bool(E, !preft_jv_truthy(eval(E, n->a)));
    case E_AND: {
      jv *a = eval(E, n->a);
      return preft_jv_truthy(a) ? eval(E, n->b) : a;
    }
    case E_OR: {
      jv *a = eval(E, n->a);
      return preft_jv_truthy(a) ? a : eval(E, n->b);
    }
    case E_COND:
      return preft_jv_truthy(eval(E, n->a)) ? eval(E, n->b) : n->c ? eval(E, n->c) : &preft_jv_undef;
    case E_BIN:
      return binary(E, n);
    default:
      preft_jfail(E->c, n->line, "internal: not an expression");
  }
}

/* ---- statements ---- */

static void bind_targets(jeval *E, const jnode *n, jv *item) {
  if (n->ntargets == 1) {
    set_var(E, n->targets[0], item);
    return;
  }
  if (item->t != V_LIST || item->l.n != (size_t)n->ntargets)
    preft_jfail(E->c, n->line, "cannot unpack a %s into %d variables", preft_jv_type_name(item), n->ntargets);
  for (int i = 0; i < n->ntargets; i++) set_var(E, n->targets[i], item->l.v[i]);
}

static void exec_for(jeval *E, const jnode *n) {
  jv *src = preft_jv_iter_list(E, eval(E, n->a), n->line);
  push_frame(E);
  jv *items = src;
  if (n->b) { /* loop filter: evaluated with the loop variables bound */
    items = preft_jv_list(E);
    for (size_t i = 0; i < src->l.n; i++) {
      bind_targets(E, n, src->l.v[i]);
      if (preft_jv_truthy(eval(E, n->b))) preft_jv_list_push(E, items, src->l.v[i]);
    }
  }
  size_t len = items->l.n;
  for (size_t i = 0; i < len; i++) {
    jv *loop = preft_jv_new(E, V_DICT);
    preft_jv_dict_set(E, loop, "index", 5, preft_jv_int(E, (int64_t)i + 1));
    preft_jv_dict_set(E, loop, "index0", 6, preft_jv_int(E, (int64_t)i));
    preft_jv_dict_set(E, loop, "revindex", 8, preft_jv_int(E, (int64_t)(len - i)));
    preft_jv_dict_set(E, loop, "revindex0", 9, preft_jv_int(E, (int64_t)(len - i - 1)));
    preft_jv_dict_set(E, loop, "first", 5, preft_jv_bool(E, i == 0));
    preft_jv_dict_set(E, loop, "last", 4, preft_jv_bool(E, i + 1 == len));
    preft_jv_dict_set(E, loop, "length", 6, preft_jv_int(E, (int64_t)len));
    preft_jv_dict_set(E, loop, "previtem", 8, i ? items->l.v[i - 1] : &preft_jv_undef);
    preft_jv_dict_set(E, loop, "nextitem", 8, i + 1 < len ? items->l.v[i + 1] : &preft_jv_undef);
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

static void exec_node(jeval *E, const jnode *n) {
  switch (n->kind) {
    case N_TEXT:
      preft_jsb_add(E->c, &E->out, n->name, n->name_len);
      break;
    case N_OUTPUT:
      preft_jv_to_str(E, &E->out, eval(E, n->a));
      break;
    case N_IF:
      if (preft_jv_truthy(eval(E, n->a)))
        exec_body(E, n->body, n->nbody);
      else
        exec_body(E, n->orelse, n->norelse);
      break;
    case N_FOR:
      exec_for(E, n);
      break;
    case N_SET: {
      jv *v = eval(E, n->a);
      if (n->attr) {
        jv *ns = get_var(E, n->targets[0]);
        if (ns->t != V_DICT || !ns->is_ns)
          preft_jfail(E->c, n->line, "set %s.%s: '%s' is not a namespace", n->targets[0], n->attr,
                      n->targets[0]);
        preft_jv_dict_set(E, ns, n->attr, strlen(n->attr), v);
      } else {
        bind_targets(E, n, v);
      }
      break;
    }
    case N_SET_BLOCK: {
      jsb saved = E->out;
      E->out = (jsb){0};
      preft_jsb_add(E->c, &E->out, "", 0);
      exec_body(E, n->body, n->nbody);
      jv *v = preft_jv_str(E, E->out.s, E->out.n);
      E->out = saved;
      set_var(E, n->targets[0], v);
      break;
    }
    case N_MACRO: {
      jv *m = preft_jv_new(E, V_MACRO);
      m->macro = n;
      set_var(E, n->name, m);
      break;
    }
    case N_BREAK:
      E->brk = true;
      break;
    case N_CONTINUE:
      E->cont = true;
      break;
    default:
      preft_jfail(E->c, n->line, "internal: not a statement");
  }
}

static void exec_body(jeval *E, jnode **body, int n) {
  for (int i = 0; i < n && !E->brk && !E->cont; i++) exec_node(E, body[i]);
}

int preft_jinja_render(const char *tmpl, const char *source, const cJSON *context, char **out,
                       preft_error *err) {
  *out = NULL;
  jctx c = {.err = err, .source = source};
  jeval E = {.c = &c};
  if (setjmp(c.fail)) {
    preft_ja_free_all(&c);
    return -1;
  }
  jtoks toks = preft_jinja_lex(&c, tmpl);
  jprog prog = preft_jinja_parse(&c, &toks);
  push_frame(&E);
  const cJSON *x;
  cJSON_ArrayForEach(x, context)
      set_var(&E, preft_ja_strndup(&c, x->string, strlen(x->string)), preft_jv_from_json(&E, x));
  preft_jsb_add(&c, &E.out, "", 0);
  exec_body(&E, prog.body, prog.nbody);
  *out = preft_xmalloc(E.out.n + 1);
  memcpy(*out, E.out.s, E.out.n + 1);
  preft_ja_free_all(&c);
  return 0;
}
