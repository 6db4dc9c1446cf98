/* jinja_parser.c - recursive-descent parser of the Jinja subset into an AST.
 *
 * Expression precedence, lowest first (as Jinja2): `a if c else b`, or, and,
 * not, comparisons / in / not in / is, + -, ~, * / // %, **, unary - +,
 * then primaries with postfix .attr [index] [a:b:c] (call) and | filters.
 */
#include <stdio.h>

#include "text/jinja_int.h"

typedef struct parser {
  jctx *c;
  const jtok *t;
  int n, i;
} parser;

static const jtok *peek(parser *P) { return &P->t[P->i]; }
static const jtok *next(parser *P) { return &P->t[P->i < P->n - 1 ? P->i++ : P->i]; }

static bool is_op(const jtok *t, const char *op) {
  return t->type == T_OP && t->len == strlen(op) && !memcmp(t->s, op, t->len);
}
static bool is_name(const jtok *t, const char *nm) {
  return t->type == T_NAME && t->len == strlen(nm) && !memcmp(t->s, nm, t->len);
}

static const char *tokdesc(parser *P, const jtok *t) {
  switch (t->type) {
    case T_EOF:
      return "end of template";
    case T_EXPR_CLOSE:
      return "'}}'";
    case T_STMT_CLOSE:
      return "'%}'";
    case T_TEXT:
      return "text";
    default:
      return preft_ja_strndup(P->c, t->s, t->len > 40 ? 40 : t->len);
  }
}

static void expect_op(parser *P, const char *op) {
  const jtok *t = next(P);
  if (!is_op(t, op)) preft_jfail(P->c, t->line, "expected '%s', found %s", op, tokdesc(P, t));
}

static const char *expect_name(parser *P) {
  const jtok *t = next(P);
  if (t->type != T_NAME) preft_jfail(P->c, t->line, "expected a name, found %s", tokdesc(P, t));
  return preft_ja_strndup(P->c, t->s, t->len);
}

static jnode *node(parser *P, jkind k, int line) {
  jnode *n = preft_ja_alloc(P->c, sizeof *n);
  n->kind = k;
  n->line = line;
  return n;
}

typedef struct nodelist {
  jnode **v;
  const char **kw;
  int n, cap;
} nodelist;

static void nl_push(parser *P, nodelist *l, jnode *x, const char *kw) {
  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 8;
    jnode **nv = preft_ja_alloc(P->c, (size_t)l->cap * sizeof *nv);
    const char **nk = preft_ja_alloc(P->c, (size_t)l->cap * sizeof *nk);
    if (l->n) {
      memcpy(nv, l->v, (size_t)l->n * sizeof *nv);
      memcpy(nk, l->kw, (size_t)l->n * sizeof *nk);
    }
    l->v = nv;
    l->kw = nk;
  }
  l->kw[l->n] = kw;
  l->v[l->n++] = x;
}

static jnode *parse_expr(parser *P);
static jnode *parse_or(parser *P);

static jv *lit(parser *P, jvtype t) {
  jv *v = preft_ja_alloc(P->c, sizeof *v);
  v->t = t;
  return v;
}

/* (args, kw=args) after the '(' has been consumed. */
static void parse_args(parser *P, jnode *n) {
  nodelist l = {0};
  while (!is_op(peek(P), ")")) {
    const char *kw = NULL;
    if (peek(P)->type == T_NAME && is_op(&P->t[P->i + 1], "=")) {
      kw = expect_name(P);
      next(P);
    }
    nl_push(P, &l, parse_expr(P), kw);
    if (!is_op(peek(P), ",")) break;
    next(P);
  }
  expect_op(P, ")");
  n->args = l.v;
  n->kw = l.kw;
  n->nargs = l.n;
}

static jnode *parse_primary(parser *P) {
  const jtok *t = next(P);
  jnode *n;
  switch (t->type) {
    case T_STRING: {
      n = node(P, E_LIT, t->line);
      n->lit = lit(P, V_STR);
      /* adjacent string literals concatenate */
      jsb b = {0};
      preft_jsb_add(P->c, &b, t->s, t->len);
      while (peek(P)->type == T_STRING) {
        const jtok *u = next(P);
        preft_jsb_add(P->c, &b, u->s, u->len);
      }
      n->lit->s.s = b.s;
      n->lit->s.n = b.n;
      return n;
    }
    case T_INT:
      n = node(P, E_LIT, t->line);
      n->lit = lit(P, V_INT);
      n->lit->i = t->ival;
      return n;
    case T_FLOAT:
      n = node(P, E_LIT, t->line);
      n->lit = lit(P, V_FLOAT);
      n->lit->f = t->fval;
      return n;
    case T_NAME:
      if (is_name(t, "true") || is_name(t, "True") || is_name(t, "false") || is_name(t, "False")) {
        n = node(P, E_LIT, t->line);
        n->lit = lit(P, V_BOOL);
        n->lit->b = t->s[0] == 't' || t->s[0] == 'T';
        return n;
      }
      if (is_name(t, "none") || is_name(t, "None")) {
        n = node(P, E_LIT, t->line);
        n->lit = lit(P, V_NONE);
        return n;
      }
      n = node(P, E_NAME, t->line);
      n->name = preft_ja_strndup(P->c, t->s, t->len);
      n->name_len = t->len;
      return n;
    case T_OP:
      if (is_op(t, "(")) {
        if (is_op(peek(P), ")")) { /* empty tuple */
          next(P);
          return node(P, E_TUPLE, t->line);
        }
        jnode *e = parse_expr(P);
        if (is_op(peek(P), ",")) {
          nodelist l = {0};
          nl_push(P, &l, e, NULL);
          while (is_op(peek(P), ",")) {
            next(P);
            if (is_op(peek(P), ")")) break;
            nl_push(P, &l, parse_expr(P), NULL);
          }
          e = node(P, E_TUPLE, t->line);
          e->args = l.v;
          e->nargs = l.n;
        }
        expect_op(P, ")");
        return e;
      }
      if (is_op(t, "[")) {
        nodelist l = {0};
        while (!is_op(peek(P), "]")) {
          nl_push(P, &l, parse_expr(P), NULL);
          if (!is_op(peek(P), ",")) break;
          next(P);
        }
        expect_op(P, "]");
        n = node(P, E_LIST, t->line);
        n->args = l.v;
        n->nargs = l.n;
        return n;
      }
      if (is_op(t, "{")) {
        nodelist l = {0};
        while (!is_op(peek(P), "}")) {
          nl_push(P, &l, parse_expr(P), NULL);
          expect_op(P, ":");
          nl_push(P, &l, parse_expr(P), NULL);
          if (!is_op(peek(P), ",")) break;
          next(P);
        }
        expect_op(P, "}");
        n = node(P, E_DICT, t->line);
        n->args = l.v;
        n->nargs = l.n;
        return n;
      }
      break;
    default:
      break;
  }
  preft_jfail(P->c, t->line, "unexpected %s in an expression", tokdesc(P, t));
}

static jnode *parse_filter_or_test_args(parser *P, jnode *n) {
  if (is_op(peek(P), "(")) {
    next(P);
    parse_args(P, n);
  }
  return n;
}

static jnode *parse_postfix(parser *P, jnode *n) {
  for (;;) {
    const jtok *t = peek(P);
    if (is_op(t, ".")) {
      next(P);
      const jtok *a = next(P);
      if (a->type != T_NAME && a->type != T_INT)
        preft_jfail(P->c, a->line, "expected an attribute name after '.'");
      jnode *x = node(P, E_ATTR, t->line);
      x->a = n;
      x->name = preft_ja_strndup(P->c, a->s, a->len);
      x->name_len = a->len;
      n = x;
    } else if (is_op(t, "[")) {
      next(P);
      jnode *parts[3] = {NULL, NULL, NULL};
      int k = 0;
      bool slice = false;
      while (!is_op(peek(P), "]")) {
        if (is_op(peek(P), ":")) {
          next(P);
          slice = true;
          if (++k > 2) preft_jfail(P->c, t->line, "too many ':' in a slice");
          continue;
        }
        parts[k] = parse_expr(P);
      }
      next(P);
      jnode *x = node(P, slice ? E_SLICE : E_INDEX, t->line);
      x->a = n;
      if (slice) {
        x->args = preft_ja_alloc(P->c, 3 * sizeof *x->args);
        memcpy(x->args, parts, sizeof parts);
        x->nargs = 3;
      } else {
        if (!parts[0]) preft_jfail(P->c, t->line, "empty subscript []");
        x->b = parts[0];
      }
      n = x;
    } else if (is_op(t, "(")) {
      next(P);
      jnode *x = node(P, E_CALL, t->line);
      x->a = n;
      parse_args(P, x);
      n = x;
    } else if (is_op(t, "|")) {
      next(P);
      jnode *x = node(P, E_FILTER, t->line);
      x->a = n;
      x->name = expect_name(P);
      parse_filter_or_test_args(P, x);
      n = x;
    } else {
      return n;
    }
  }
}

static jnode *parse_unary(parser *P) {
  const jtok *t = peek(P);
  if (is_op(t, "-") || is_op(t, "+")) {
    next(P);
    jnode *x = node(P, is_op(t, "-") ? E_NEG : E_POS, t->line);
    x->a = parse_unary(P);
    return x;
  }
  return parse_postfix(P, parse_primary(P));
}

static jnode *binop(parser *P, const char *op, jnode *a, jnode *b, int line) {
  jnode *x = node(P, E_BIN, line);
  x->name = op;
  x->a = a;
  x->b = b;
  return x;
}

/* operand (op operand)* for the operators ops (NULL-terminated), left-associative. */
static jnode *parse_binary(parser *P, const char *const *ops, jnode *(*operand)(parser *P)) {
  jnode *a = operand(P);
  for (;;) {
    const jtok *t = peek(P);
    const char *op = NULL;
    for (int k = 0; ops[k] && !op; k++)
      if (is_op(t, ops[k])) op = ops[k];
    if (!op) return a;
    next(P);
    a = binop(P, op, a, operand(P), t->line);
  }
}

static jnode *parse_pow(parser *P) {
  static const char *const ops[] = {"**", NULL};
  return parse_binary(P, ops, parse_unary);
}

static jnode *parse_mul(parser *P) {
  static const char *const ops[] = {"*", "/", "//", "%", NULL};
  return parse_binary(P, ops, parse_pow);
}

static jnode *parse_concat(parser *P) {
  static const char *const ops[] = {"~", NULL};
  return parse_binary(P, ops, parse_mul);
}

static jnode *parse_add(parser *P) {
  static const char *const ops[] = {"+", "-", NULL};
  return parse_binary(P, ops, parse_concat);
}

static jnode *parse_compare(parser *P) {
  jnode *a = parse_add(P);
  for (;;) {
    const jtok *t = peek(P);
    const char *op = NULL;
    if (is_op(t, "=="))
      op = "==";
    else if (is_op(t, "!="))
      op = "!=";
    else if (is_op(t, "<"))
      op = "<";
    else if (is_op(t, "<="))
      op = "<=";
    else if (is_op(t, ">"))
      op = ">";
    else if (is_op(t, ">="))
      op = ">=";
    else if (is_name(t, "in"))
      op = "in";
    else if (is_name(t, "not") && is_name(&P->t[P->i + 1], "in")) {
      next(P);
      op = "not in";
    } else if (is_name(t, "is")) {
      next(P);
      jnode *x = node(P, E_TEST, t->line);
      x->a = a;
      if (is_name(peek(P), "not")) {
        next(P);
        x->negated = true;
      }
      const jtok *nm = next(P);
      if (nm->type != T_NAME) preft_jfail(P->c, nm->line, "expected a test name after 'is'");
      x->name = preft_ja_strndup(P->c, nm->s, nm->len);
      /* a test takes (args) or one bare argument: `is divisibleby 3` */
      if (is_op(peek(P), "(")) {
        next(P);
        parse_args(P, x);
      } else if (peek(P)->type == T_INT || peek(P)->type == T_STRING || peek(P)->type == T_FLOAT) {
        x->args = preft_ja_alloc(P->c, sizeof *x->args);
        x->kw = preft_ja_alloc(P->c, sizeof *x->kw);
        x->args[0] = parse_primary(P);
        x->nargs = 1;
      }
      a = x;
      continue;
    }
    if (!op) return a;
    next(P);
    a = binop(P, op, a, parse_add(P), t->line);
  }
}

static jnode *parse_not(parser *P) {
  if (is_name(peek(P), "not")) {
    int line = next(P)->line;
    jnode *x = node(P, E_NOT, line);
    x->a = parse_not(P);
    return x;
  }
  return parse_compare(P);
}

/* operand (keyword operand)*, left-associative: `a and b and c`, `a or b`. */
static jnode *parse_chain(parser *P, const char *keyword, jkind kind, jnode *(*operand)(parser *P)) {
  jnode *a = operand(P);
  while (is_name(peek(P), keyword)) {
    int line = next(P)->line;
    jnode *x = node(P, kind, line);
    x->a = a;
    x->b = operand(P);
    a = x;
  }
  return a;
}

static jnode *parse_and(parser *P) { return parse_chain(P, "and", E_AND, parse_not); }
static jnode *parse_or(parser *P) { return parse_chain(P, "or", E_OR, parse_and); }

static jnode *parse_expr(parser *P) {
  jnode *a = parse_or(P);
  while (is_name(peek(P), "if")) {
    int line = next(P)->line;
    jnode *x = node(P, E_COND, line);
    x->b = a;
    x->a = parse_or(P);
    if (is_name(peek(P), "else")) {
      next(P);
      x->c = parse_expr(P);
    }
    a = x;
  }
  return a;
}

/* ---- statements ---- */

static void expect_stmt_close(parser *P) {
  const jtok *t = next(P);
  if (t->type != T_STMT_CLOSE) preft_jfail(P->c, t->line, "expected '%%}', found %s", tokdesc(P, t));
}

/* Parses statements until one of the block keywords `ends` opens a tag;
 * leaves P at that keyword (after the {%). */
static nodelist parse_body(parser *P, const char *const *ends, const char **found);

/* The statements up to one of `ends` (see parse_body) into *body / *n. */
static void parse_block(parser *P, const char *const *ends, const char **found, jnode ***body, int *n) {
  nodelist l = parse_body(P, ends, found);
  *body = l.v;
  *n = l.n;
}

/* Copies the nt names of tg into n's targets (arena). */
static void set_targets(parser *P, jnode *n, const char **tg, int nt) {
  n->targets = preft_ja_alloc(P->c, (size_t)(nt + 1) * sizeof *n->targets);
  memcpy(n->targets, tg, (size_t)nt * sizeof *tg);
  n->ntargets = nt;
}

/* {% if c %} ... {% elif c %} ... {% else %} ... {% endif %}: each elif a
 * nested N_IF in the orelse of the one before. */
static jnode *parse_if(parser *P, int line) {
  static const char *const ends[] = {"elif", "else", "endif", NULL}, *const end_if[] = {"endif", NULL};
  jnode *n = node(P, N_IF, line);
  n->a = parse_expr(P);
  expect_stmt_close(P);
  const char *found;
  parse_block(P, ends, &found, &n->body, &n->nbody);
  jnode *cur = n;
  while (!strcmp(found, "elif")) {
    jnode *e = node(P, N_IF, peek(P)->line);
    e->a = parse_expr(P);
    expect_stmt_close(P);
    parse_block(P, ends, &found, &e->body, &e->nbody);
    cur->orelse = preft_ja_alloc(P->c, sizeof *cur->orelse);
    cur->orelse[0] = e;
    cur->norelse = 1;
    cur = e;
  }
  if (!strcmp(found, "else")) {
    expect_stmt_close(P);
    parse_block(P, end_if, &found, &cur->orelse, &cur->norelse);
  }
  expect_stmt_close(P);
  return n;
}

/* {% for a, b in xs if c %} ... {% else %} ... {% endfor %} */
static jnode *parse_for(parser *P, int line) {
  static const char *const ends[] = {"else", "endfor", NULL}, *const end_for[] = {"endfor", NULL};
  jnode *n = node(P, N_FOR, line);
  const char *tg[8];
  int nt = 0;
  bool paren = is_op(peek(P), "(");
  if (paren) next(P);
  do {
    if (nt && is_op(peek(P), ",")) next(P);
    if (nt == 8) preft_jfail(P->c, line, "too many loop variables");
    tg[nt++] = expect_name(P);
  } while (is_op(peek(P), ","));
  if (paren) expect_op(P, ")");
  set_targets(P, n, tg, nt);
  const jtok *in = next(P);
  if (!is_name(in, "in")) preft_jfail(P->c, in->line, "expected 'in' in a for loop");
  n->a = parse_or(P); /* not parse_expr: `if` here filters the loop */
  if (is_name(peek(P), "if")) {
    next(P);
    n->b = parse_expr(P);
  }
  if (is_name(peek(P), "recursive")) preft_jfail(P->c, line, "unsupported: recursive for loops");
  expect_stmt_close(P);
  const char *found;
  parse_block(P, ends, &found, &n->body, &n->nbody);
  if (!strcmp(found, "else")) {
    expect_stmt_close(P);
    parse_block(P, end_for, &found, &n->orelse, &n->norelse);
  }
  expect_stmt_close(P);
  return n;
}

/* The value of {% set a, b = x, y %} after the '=': one expression, or a
 * tuple of several. */
static jnode *parse_set_value(parser *P, int line) {
  jnode *a = parse_expr(P);
  if (!is_op(peek(P), ",")) return a;
  nodelist l = {0};
  nl_push(P, &l, a, NULL);
  while (is_op(peek(P), ",")) {
    next(P);
    nl_push(P, &l, parse_expr(P), NULL);
  }
  jnode *tu = node(P, E_TUPLE, line);
  tu->args = l.v;
  tu->nargs = l.n;
  return tu;
}

/* {% set x = v %}, {% set ns.attr = v %}, {% set a, b = v %}, or the block
 * form {% set x %} ... {% endset %}. */
static jnode *parse_set(parser *P, int line) {
  static const char *const ends[] = {"endset", NULL};
  const char *tg[8];
  int nt = 0;
  const char *attr = NULL;
  tg[nt++] = expect_name(P);
  if (is_op(peek(P), ".")) {
    next(P);
    attr = expect_name(P);
  }
  while (is_op(peek(P), ",")) {
    next(P);
    if (nt == 8) preft_jfail(P->c, line, "too many targets in set");
    tg[nt++] = expect_name(P);
  }
  jnode *n = node(P, N_SET, line);
  set_targets(P, n, tg, nt);
  n->attr = attr;
  if (is_op(peek(P), "=")) {
    next(P);
    n->a = parse_set_value(P, line);
    expect_stmt_close(P);
    return n;
  }
  if (is_op(peek(P), "|")) preft_jfail(P->c, line, "unsupported: filtered block set");
  expect_stmt_close(P);
  n->kind = N_SET_BLOCK;
  const char *found;
  parse_block(P, ends, &found, &n->body, &n->nbody);
  expect_stmt_close(P);
  return n;
}

/* {% macro name(a, b=default) %} ... {% endmacro %} */
static jnode *parse_macro(parser *P, int line) {
  static const char *const ends[] = {"endmacro", NULL};
  jnode *n = node(P, N_MACRO, line);
  n->name = expect_name(P);
  expect_op(P, "(");
  nodelist defaults = {0};
  const char *params[32];
  int np = 0;
  while (!is_op(peek(P), ")")) {
    if (np == 32) preft_jfail(P->c, line, "too many macro parameters");
    params[np] = expect_name(P);
    jnode *d = NULL;
    if (is_op(peek(P), "=")) {
      next(P);
      d = parse_expr(P);
    }
    nl_push(P, &defaults, d, NULL);
    np++;
    if (!is_op(peek(P), ",")) break;
    next(P);
  }
  expect_op(P, ")");
  expect_stmt_close(P);
  set_targets(P, n, params, np);
  n->args = defaults.v;
  n->nargs = defaults.n;
  const char *found;
  parse_block(P, ends, &found, &n->body, &n->nbody);
  if (peek(P)->type == T_NAME) next(P); /* {% endmacro name %} */
  expect_stmt_close(P);
  return n;
}

static jnode *parse_break(parser *P, int line) {
  expect_stmt_close(P);
  return node(P, N_BREAK, line);
}

static jnode *parse_continue(parser *P, int line) {
  expect_stmt_close(P);
  return node(P, N_CONTINUE, line);
}

/* The statement whose keyword kw follows a {%; fails naming an unsupported one. */
static jnode *parse_statement(parser *P, const jtok *kw) {
  static const struct {
    const char *keyword;
    jnode *(*parse)(parser *P, int line);
  } statements[] = {
      {"if", parse_if},       {"for", parse_for},     {"set", parse_set},
      {"macro", parse_macro}, {"break", parse_break}, {"continue", parse_continue},
  };
  for (size_t i = 0; i < sizeof statements / sizeof statements[0]; i++)
    if (is_name(kw, statements[i].keyword)) return statements[i].parse(P, kw->line);
  preft_jfail(P->c, kw->line, "unsupported statement '{%% %.*s %%}'", (int)kw->len, kw->s);
}

static nodelist parse_body(parser *P, const char *const *ends, const char **found) {
  nodelist l = {0};
  for (;;) {
    const jtok *t = next(P);
    if (t->type == T_EOF) {
      if (!ends) {
        *found = NULL;
        return l;
      }
      const char *want = ends[0];
      for (int k = 0; ends[k]; k++)
        if (!strncmp(ends[k], "end", 3)) want = ends[k];
      preft_jfail(P->c, t->line, "missing {%% %s %%}", want);
    }
    if (t->type == T_TEXT) {
      jnode *x = node(P, N_TEXT, t->line);
      x->name = t->s;
      x->name_len = t->len;
      nl_push(P, &l, x, NULL);
    } else if (t->type == T_EXPR_OPEN) {
      jnode *x = node(P, N_OUTPUT, t->line);
      x->a = parse_expr(P);
      const jtok *cl = next(P);
      if (cl->type != T_EXPR_CLOSE) preft_jfail(P->c, cl->line, "expected '}}', found %s", tokdesc(P, cl));
      nl_push(P, &l, x, NULL);
    } else if (t->type == T_STMT_OPEN) {
      const jtok *kw = next(P);
      if (kw->type != T_NAME) preft_jfail(P->c, kw->line, "expected a statement keyword after '{%%'");
      for (int k = 0; ends && ends[k]; k++)
        if (is_name(kw, ends[k])) {
          *found = ends[k];
          return l;
        }
      if (kw->len >= 3 && (!strncmp(kw->s, "end", 3) || is_name(kw, "elif") || is_name(kw, "else")))
        preft_jfail(P->c, kw->line, "unexpected {%% %.*s %%}", (int)kw->len, kw->s);
      nl_push(P, &l, parse_statement(P, kw), NULL);
    } else {
      preft_jfail(P->c, t->line, "unexpected %s", tokdesc(P, t));
    }
  }
}

jprog preft_jinja_parse(jctx *c, const jtoks *toks) {
  parser P = {.c = c, .t = toks->v, .n = toks->n};
  const char *found;
  nodelist l = parse_body(&P, NULL, &found);
  return (jprog){l.v, l.n};
}
