/* jinja_int.h - internals of the Jinja subset: arena, tokens, AST, values,
 * and the evaluator's pieces, shared by jinja_lexer.c, jinja_parser.c,
 * jinja_eval.c, jinja_value.c, jinja_string.c, jinja_filters.c and
 * jinja_methods.c. Everything a render allocates lives in one arena freed at
 * the end, and errors unwind with longjmp to preft_jinja_render, so no path
 * leaks. */
#ifndef PREFT_TEXT_JINJA_INT_H
#define PREFT_TEXT_JINJA_INT_H

#include <setjmp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cjson/cJSON.h>

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
  const char *source; /* where the template came from, for errors; NULL: "chat template" */
  size_t arena_bytes; /* allocated so far, at most JINJA_MAX_ARENA */
} jctx;

/* The bound on one render's memory, so a hostile template fails instead of
 * exhausting the machine: every string and value lives in the arena, and
 * since each loop iteration and macro call allocates (its loop variable or
 * frame), this bounds the time too. A real chat template needs a few MiB
 * for a long conversation. */
#define JINJA_MAX_ARENA ((size_t)256 << 20)

/* n zeroed bytes from the arena; fails the render past JINJA_MAX_ARENA in all */
void *preft_ja_alloc(jctx *c, size_t n);
char *preft_ja_strndup(jctx *c, const char *s, size_t n);
void preft_ja_free_all(jctx *c);
/* Formats "SOURCE line N: ..." (SOURCE: jctx.source, else "chat template") into c->err and unwinds. */
_Noreturn void preft_jfail(jctx *c, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Growable string in the arena. */
typedef struct jsb {
  char *s;
  size_t n, cap;
} jsb;
void preft_jsb_add(jctx *c, jsb *b, const char *s, size_t n);
static inline void jsb_adds(jctx *c, jsb *b, const char *s) { preft_jsb_add(c, b, s, strlen(s)); }

/* ---- tokens ---- */
typedef enum {
  T_TEXT,
  T_EXPR_OPEN,
  T_EXPR_CLOSE,
  T_STMT_OPEN,
  T_STMT_CLOSE,
  T_NAME,
  T_STRING,
  T_INT,
  T_FLOAT,
  T_OP,
  T_EOF
} jtok_type;

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

jtoks preft_jinja_lex(jctx *c, const char *tmpl);

/* ---- AST ---- */
typedef enum {
  /* statements */
  N_TEXT,
  N_OUTPUT,
  N_IF,
  N_FOR,
  N_SET,
  N_SET_BLOCK,
  N_MACRO,
  N_BREAK,
  N_CONTINUE,
  /* expressions */
  E_LIT,
  E_NAME,
  E_LIST,
  E_TUPLE,
  E_DICT,
  E_ATTR,
  E_INDEX,
  E_SLICE,
  E_CALL,
  E_FILTER,
  E_TEST,
  E_NEG,
  E_POS,
  E_NOT,
  E_BIN,
  E_AND,
  E_OR,
  E_COND,
} jkind;

struct jv;

typedef struct jnode {
  jkind kind;
  int line;
  const char *name; /* E_NAME, E_ATTR attr, E_FILTER/E_TEST name, N_MACRO name, E_BIN op */
  size_t name_len;
  struct jv *lit;
  struct jnode *a, *b,
      *c;              /* operands; N_IF: a = condition; N_FOR: a = iterable, b = filter; N_SET: a = value */
  struct jnode **args; /* list items, call args, dict keys+values interleaved, filter/test args */
  const char **kw;     /* keyword names parallel to args (NULL for positional) */
  int nargs;
  bool negated;         /* E_TEST: is not */
  const char **targets; /* N_FOR / N_SET targets, N_MACRO parameter names */
  int ntargets;
  const char *attr;              /* N_SET ns.attr */
  struct jnode **body, **orelse; /* N_IF: then / else (elif chains as a nested N_IF in orelse) */
  int nbody, norelse;
} jnode;

typedef struct jprog {
  jnode **body;
  int nbody;
} jprog;

jprog preft_jinja_parse(jctx *c, const jtoks *toks);

/* ---- values ---- */
typedef enum {
  V_UNDEF,
  V_NONE,
  V_BOOL,
  V_INT,
  V_FLOAT,
  V_STR,
  V_LIST,
  V_DICT,
  V_MACRO,
  V_FUNC,
  V_METHOD
} jvtype;

typedef struct jv {
  jvtype t;
  bool is_ns; /* namespace(): a mutable dict */
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

/* How deep printing, tojson and == go into lists and dicts (a namespace can hold itself). */
#define JV_MAX_NEST 200

/* ---- evaluator state (jinja_eval.c) ---- */
struct jframe;

typedef struct jeval {
  jctx *c;
  struct jframe *frames; /* scopes, innermost last */
  int nf, capf;
  jsb out;        /* where output goes; a macro call or block set swaps in its own */
  bool brk, cont; /* a {% break %} / {% continue %} is unwinding the loop body */
  int depth;      /* macro call depth */
} jeval;

/* Evaluated call arguments: positional ones, then keyword (name, value) pairs. */
typedef struct jargs {
  jv *pos[8];
  int npos;
  const char *kw[8];
  jv *kwv[8];
  int nkw;
} jargs;

/* obj.name: a dict member, a bound str/dict method, list.N; undefined otherwise.
 * Fails only on an attribute of an undefined value. */
jv *preft_jinja_getattr(jeval *E, jv *obj, const char *name, size_t nlen, int line);

/* ---- values (jinja_value.c): construction, Python str()/repr(), tojson,
 * comparison, and the argument coercions filters and methods share ---- */
extern jv preft_jv_undef, preft_jv_none;

jv *preft_jv_new(jeval *E, jvtype t);
jv *preft_jv_bool(jeval *E, bool b);
jv *preft_jv_int(jeval *E, int64_t i);
jv *preft_jv_float(jeval *E, double f);
jv *preft_jv_str(jeval *E, const char *s, size_t n); /* copies s */
jv *preft_jv_strz(jeval *E, const char *s);
jv *preft_jv_str_take(jeval *E, const jsb *b); /* wraps b's bytes, no copy */
jv *preft_jv_list(jeval *E);
void preft_jv_list_push(jeval *E, jv *l, jv *x);
jv *preft_jv_dict_get(const jv *d, const char *k, size_t kn); /* NULL when absent */
void preft_jv_dict_set(jeval *E, jv *d, const char *k, size_t kn, jv *x);
jv *preft_jv_from_json(jeval *E, const cJSON *j);
const char *preft_jv_type_name(const jv *v);
bool preft_jv_truthy(const jv *v);
void preft_jv_to_str(jeval *E, jsb *b, const jv *v); /* Python str(v) appended to b */
jv *preft_jv_as_str(jeval *E, const jv *v);          /* v itself when already a string */
/* json.dumps(v, ensure_ascii=False, indent=indent) appended to b; fails on macros and functions */
void preft_jv_to_json(jeval *E, jsb *b, const jv *v, int indent, int level, int line);
bool preft_jv_is_num(const jv *v); /* int, float or bool */
double preft_jv_num(const jv *v);
bool preft_jv_is_intlike(const jv *v); /* int or bool */
int64_t preft_jv_int_of(const jv *v);  /* the integer of an int or bool, 0 otherwise */
/* Python int(d) for a float; fails naming the line on NaN, inf or outside int64 */
int64_t preft_jv_float_to_int(jeval *E, double d, int line);
/* a op b for + - * / // % ** on numbers (jinja_arith.c); ints stay exact and
 * fail on overflow or division by zero instead of wrapping or trapping */
jv *preft_jinja_arith(jeval *E, const char *op, const jv *a, const jv *b, int line);
jv *preft_jinja_negate(jeval *E, const jv *v, int line); /* -v of a number, failing on overflow */
/* Python ==; values nested deeper than JV_MAX_NEST compare unequal */
bool preft_jv_equal(const jv *a, const jv *b);
/* -1, 0, 1 for two numbers or two strings; fails on anything else */
int preft_jv_compare(jeval *E, const jv *a, const jv *b, int line);

/* positional argument i, else keyword name, else NULL */
jv *preft_jarg(const jargs *a, int i, const char *name);
/* v when it is a string (an int for preft_jv_want_int); fails naming `what` otherwise */
const jv *preft_jv_want_str(jeval *E, const jv *v, const char *what, int line);
int64_t preft_jv_want_int(jeval *E, const jv *v, const char *what, int line);
/* list view of an iterable: lists as is, strings by character, dicts by key */
jv *preft_jv_iter_list(jeval *E, jv *v, int line);

/* ---- Python str operations on UTF-8 (jinja_string.c) ---- */
typedef enum { JSTR_LEFT = 1, JSTR_RIGHT = 2, JSTR_BOTH = 3 } jstr_side;
typedef enum { JSTR_LOWER, JSTR_UPPER, JSTR_TITLE, JSTR_CAPITALIZE } jstr_case_mode;

size_t preft_jstr_cp_count(const char *s, size_t n);            /* code points in s */
size_t preft_jstr_cp_offset(const char *s, size_t n, size_t i); /* byte offset of code point i, clamped */
bool preft_jstr_is_space(int32_t cp);                           /* Python str.isspace() of one code point */
jv *preft_jstr_strip(jeval *E, const jv *s, const jv *chars, jstr_side sides);
jv *preft_jstr_case(jeval *E, const jv *s, jstr_case_mode mode);
jv *preft_jstr_replace(jeval *E, const jv *s, const jv *from, const jv *to,
                       int64_t count); /* count < 0: all */
jv *preft_jstr_split(jeval *E, const jv *s, const jv *sep,
                     int64_t maxsplit); /* sep NULL/none: on whitespace */

/* ---- filters and tests (jinja_filters.c) ---- */
jv *preft_jinja_filter(jeval *E, const char *name, jv *v, const jargs *a, int line);
bool preft_jinja_test(jeval *E, const char *name, jv *v, const jargs *a, int line);

/* ---- methods and global functions (jinja_methods.c) ---- */
bool preft_jinja_has_method(const jv *obj, const char *name, size_t nlen);
jv *preft_jinja_call_method(jeval *E, jv *m, const jargs *a, int line);
jv *preft_jinja_builtin(jeval *E, const char *name); /* a V_FUNC for a global function's name, else NULL */
jv *preft_jinja_call_builtin(jeval *E, const char *name, const jargs *a, int line);

#endif
