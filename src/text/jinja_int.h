/* jinja_int.h - internals of the Jinja subset: arena, tokens, AST, values.
 * Everything a render allocates lives in one arena freed at the end, and
 * errors unwind with longjmp to preft_jinja_render, so no path leaks. */
#ifndef PREFT_TEXT_JINJA_INT_H
#define PREFT_TEXT_JINJA_INT_H

#include <setjmp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/error.h"

typedef struct jblock {
  struct jblock *next;
  size_t used, cap;
  char data[];
} jblock;

typedef struct jctx {
  jblock *arena;
  jmp_buf fail;
  preft_error *err;
} jctx;

void *ja_alloc(jctx *c, size_t n);
char *ja_strndup(jctx *c, const char *s, size_t n);
void ja_free_all(jctx *c);
/* Formats "chat template line N: ..." into c->err and unwinds. */
_Noreturn void jfail(jctx *c, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Growable string in the arena. */
typedef struct jsb {
  char *s;
  size_t n, cap;
} jsb;
void jsb_add(jctx *c, jsb *b, const char *s, size_t n);
static inline void jsb_adds(jctx *c, jsb *b, const char *s) { jsb_add(c, b, s, strlen(s)); }

/* ---- tokens ---- */
typedef enum { T_TEXT, T_EXPR_OPEN, T_EXPR_CLOSE, T_STMT_OPEN, T_STMT_CLOSE, T_NAME, T_STRING, T_INT, T_FLOAT, T_OP, T_EOF } jtok_type;

typedef struct jtok {
  jtok_type type;
  const char *s; /* text, name, decoded string, operator */
  size_t len;
  int64_t ival;
  double fval;
  int line;
} jtok;

typedef struct jtoks {
  jtok *v;
  int n;
} jtoks;

jtoks jinja_lex(jctx *c, const char *tmpl);

/* ---- AST ---- */
typedef enum {
  /* statements */
  N_TEXT, N_OUTPUT, N_IF, N_FOR, N_SET, N_SET_BLOCK, N_MACRO, N_BREAK, N_CONTINUE,
  /* expressions */
  E_LIT, E_NAME, E_LIST, E_TUPLE, E_DICT, E_ATTR, E_INDEX, E_SLICE, E_CALL, E_FILTER, E_TEST, E_NEG, E_POS, E_NOT,
  E_BIN, E_AND, E_OR, E_COND,
} jkind;

struct jv;

typedef struct jnode {
  jkind kind;
  int line;
  const char *name; /* E_NAME, E_ATTR attr, E_FILTER/E_TEST name, N_MACRO name, E_BIN op */
  size_t name_len;
  struct jv *lit;
  struct jnode *a, *b, *c; /* operands; N_IF: a = condition; N_FOR: a = iterable, b = filter; N_SET: a = value */
  struct jnode **args;     /* list items, call args, dict keys+values interleaved, filter/test args */
  const char **kw;         /* keyword names parallel to args (NULL for positional) */
  int nargs;
  bool negated;            /* E_TEST: is not */
  const char **targets;    /* N_FOR / N_SET targets, N_MACRO parameter names */
  int ntargets;
  const char *attr;        /* N_SET ns.attr */
  struct jnode **body, **orelse; /* N_IF: then / else (elif chains as a nested N_IF in orelse) */
  int nbody, norelse;
} jnode;

typedef struct jprog {
  jnode **body;
  int nbody;
} jprog;

jprog jinja_parse(jctx *c, const jtoks *toks);

/* ---- values ---- */
typedef enum { V_UNDEF, V_NONE, V_BOOL, V_INT, V_FLOAT, V_STR, V_LIST, V_DICT, V_MACRO, V_FUNC, V_METHOD } jvtype;

typedef struct jv {
  jvtype t;
  bool is_ns;  /* namespace(): a mutable dict */
  bool is_tuple;
  union {
    bool b;
    int64_t i;
    double f;
    struct {
      const char *s;
      size_t n;
    } s;
    struct {
      struct jv **v;
      size_t n, cap;
    } l;
    struct {
      const char **k;
      size_t *kn;
      struct jv **v;
      size_t n, cap;
    } d;
    const jnode *macro;
    struct {
      const char *name;
      struct jv *self;
    } m; /* V_FUNC (self NULL) and V_METHOD */
  };
} jv;

#endif
