/* jinja_lexer.c - the arena, errors, and the tokenizer of the Jinja subset.
 *
 * Before lexing, the template is preprocessed as transformers' environment
 * (and @huggingface/jinja) does: one trailing newline dropped; lstrip_blocks
 * removes spaces/tabs before a {% or {# that starts a line; trim_blocks drops
 * the newline right after %} or #}; {% generation %} markers disappear.
 * Whitespace control: {%- / {{- / {#- strip the whitespace before the tag,
 * -%} / -}} / -#} the whitespace after it.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "text/jinja_int.h"
#include "text/unicode.h"

void *preft_ja_alloc(jctx *c, size_t n) {
  n = (n + 15) & ~(size_t)15;
  if (!c->arena || c->arena->used + n > c->arena->cap) {
    size_t cap = n > 65536 ? n : 65536;
    if (cap > JINJA_MAX_ARENA - c->arena_bytes)
      preft_jfail(c, 0, "rendering needs more than %zu MiB of memory", JINJA_MAX_ARENA >> 20);
    c->arena_bytes += cap;
    jblock *b = preft_xmalloc(sizeof *b + cap);
    b->next = c->arena;
    b->used = 0;
    b->cap = cap;
    c->arena = b;
  }
  void *p = c->arena->data + c->arena->used;
  c->arena->used += n;
  memset(p, 0, n);
  return p;
}

char *preft_ja_strndup(jctx *c, const char *s, size_t n) {
  char *d = preft_ja_alloc(c, n + 1);
  if (n) memcpy(d, s, n);
  d[n] = 0;
  return d;
}

void preft_ja_free_all(jctx *c) {
  while (c->arena) {
    jblock *n = c->arena->next;
    free(c->arena);
    c->arena = n;
  }
}

_Noreturn void preft_jfail(jctx *c, int line, const char *fmt, ...) {
  char msg[900];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  const char *src = c->source ? c->source : "chat template";
  if (line > 0)
    preft_fail(c->err, "%s line %d: %s", src, line, msg);
  else
    preft_fail(c->err, "%s: %s", src, msg);
  longjmp(c->fail, 1);
}

void preft_jsb_add(jctx *c, jsb *b, const char *s, size_t n) {
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 64;
    while (cap < b->n + n + 1) cap *= 2;
    char *ns = preft_ja_alloc(c, cap);
    if (b->n) memcpy(ns, b->s, b->n);
    b->s = ns;
    b->cap = cap;
  }
  if (n) memcpy(b->s + b->n, s, n);
  b->n += n;
  b->s[b->n] = 0;
}

/* ---- preprocessing ---- */

static bool starts(const char *s, const char *p) { return !strncmp(s, p, strlen(p)); }

/* Appends the source line of `count` bytes just added to a preprocessed text. */
static void add_lines(jctx *c, int **lines, size_t *cap, size_t at, size_t count, int line) {
  if (at + count + 1 > *cap) {
    size_t ncap = *cap ? *cap * 2 : 256;
    while (ncap < at + count + 1) ncap *= 2;
    int *nl = preft_ja_alloc(c, ncap * sizeof *nl);
    if (at) memcpy(nl, *lines, at * sizeof *nl);
    *lines = nl;
    *cap = ncap;
  }
  for (size_t k = 0; k <= count; k++) (*lines)[at + k] = line; /* and the end, for the next token */
}

/* The template after trim_blocks, lstrip_blocks and {% generation %}
 * removal; *line_of[i] is the source line of byte i (and of the end), since
 * the newlines trim_blocks drops still count in error messages. */
static char *preprocess(jctx *c, const char *src, int **line_of) {
  size_t n = strlen(src);
  if (n && src[n - 1] == '\n') n--;
  jsb out = {0};
  preft_jsb_add(c, &out, "", 0);
  int *lines = NULL, src_line = 1;
  size_t lines_cap = 0;
  add_lines(c, &lines, &lines_cap, 0, 0, 1);
  size_t i = 0;
  bool line_start = true;
  while (i < n) {
    if (line_start) { /* lstrip_blocks: spaces/tabs before {% {# {- at line start */
      size_t j = i;
      while (j < n && (src[j] == ' ' || src[j] == '\t')) j++;
      if (j + 1 < n && src[j] == '{' && (src[j + 1] == '%' || src[j + 1] == '#' || src[j + 1] == '-')) i = j;
    }
    line_start = false;
    char ch = src[i];
    /* trim_blocks: newline after %} or #} (or -}) */
    if (ch == '}' && i > 0 && (src[i - 1] == '%' || src[i - 1] == '#' || src[i - 1] == '-') && i + 1 < n &&
        src[i + 1] == '\n') {
      add_lines(c, &lines, &lines_cap, out.n, 1, src_line);
      preft_jsb_add(c, &out, "}", 1);
      i += 2;
      src_line++;
      line_start = true;
      continue;
    }
    add_lines(c, &lines, &lines_cap, out.n, 1, src_line);
    preft_jsb_add(c, &out, &src[i], 1);
    if (ch == '\n') line_start = true, src_line++;
    i++;
  }
  add_lines(c, &lines, &lines_cap, out.n, 0, src_line);
  /* {% generation %} / {% endgeneration %} markers vanish (keeping or
   * stripping the surrounding whitespace as their dashes say) */
  jsb res = {0};
  preft_jsb_add(c, &res, "", 0);
  int *res_lines = NULL;
  size_t res_cap = 0;
  add_lines(c, &res_lines, &res_cap, 0, 0, 1);
  const char *s = out.s;
  size_t m = out.n;
  i = 0;
  while (i < m) {
    if (s[i] == '{' && i + 1 < m && s[i + 1] == '%') {
      size_t j = i + 2;
      bool lstrip = false, rstrip = false;
      if (j < m && s[j] == '-') lstrip = true, j++;
      while (j < m && isspace((unsigned char)s[j])) j++;
      if (starts(s + j, "end")) j += 3;
      if (starts(s + j, "generation")) {
        j += 10;
        while (j < m && isspace((unsigned char)s[j])) j++;
        if (j < m && s[j] == '-') rstrip = true, j++;
        if (starts(s + j, "%}")) {
          j += 2;
          if (lstrip)
            while (res.n && isspace((unsigned char)res.s[res.n - 1])) res.s[--res.n] = 0;
          if (rstrip)
            while (j < m && isspace((unsigned char)s[j])) j++;
          i = j;
          continue;
        }
      }
    }
    add_lines(c, &res_lines, &res_cap, res.n, 1, lines[i]);
    preft_jsb_add(c, &res, &s[i], 1);
    i++;
  }
  add_lines(c, &res_lines, &res_cap, res.n, 0, lines[m]);
  *line_of = res_lines;
  return res.s;
}

/* ---- lexing ---- */

typedef struct lexer {
  jctx *c;
  const char *s;
  size_t i, n;
  int line;           /* the source line at i */
  const int *line_of; /* [n + 1] source line of each byte */
  jtok *v;
  int nt, cap;
} lexer;

static jtok *push(lexer *L, jtok_type t, const char *s, size_t len) {
  if (L->nt == L->cap) {
    L->cap = L->cap ? L->cap * 2 : 256;
    jtok *nv = preft_ja_alloc(L->c, (size_t)L->cap * sizeof *nv);
    if (L->nt) memcpy(nv, L->v, (size_t)L->nt * sizeof *nv);
    L->v = nv;
  }
  jtok *t2 = &L->v[L->nt++];
  memset(t2, 0, sizeof *t2);
  t2->type = t;
  t2->s = s;
  t2->len = len;
  t2->line = L->line;
  return t2;
}

static bool is_ws(char ch) {
  return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v';
}

static void advance(lexer *L, size_t k) {
  L->i = k < L->n - L->i ? L->i + k : L->n;
  L->line = L->line_of[L->i];
}

/* Python rstrip of the previous text token. */
static void strip_prev_text(lexer *L) {
  if (L->nt && L->v[L->nt - 1].type == T_TEXT) {
    jtok *t = &L->v[L->nt - 1];
    while (t->len && is_ws(t->s[t->len - 1])) t->len--;
    if (!t->len) L->nt--;
  }
}

static void skip_ws(lexer *L) {
  while (L->i < L->n && is_ws(L->s[L->i])) advance(L, 1);
}

static const char *OPS[] = {"==", "!=", "<=", ">=", "//", "**", "+", "-", "*", "/", "%", "~", "<",
                            ">",  "(",  ")",  "[",  "]",  "{",  "}", ".", ",", ":", "|", "="};

static void lex_string(lexer *L, char q) {
  jsb b = {0};
  preft_jsb_add(L->c, &b, "", 0);
  int line = L->line;
  advance(L, 1);
  while (L->i < L->n && L->s[L->i] != q) {
    char ch = L->s[L->i];
    if (ch == '\\' && L->i + 1 < L->n) {
      char e = L->s[L->i + 1];
      const char *rep = NULL;
      char tmp[4];
      switch (e) {
        case 'n':
          rep = "\n";
          break;
        case 't':
          rep = "\t";
          break;
        case 'r':
          rep = "\r";
          break;
        case 'b':
          rep = "\b";
          break;
        case 'f':
          rep = "\f";
          break;
        case 'v':
          rep = "\v";
          break;
        case '0':
          rep = "";
          break;
        case '\\':
          rep = "\\";
          break;
        case '\'':
          rep = "'";
          break;
        case '"':
          rep = "\"";
          break;
        case 'x':
        case 'u': {
          int len = e == 'x' ? 2 : 4;
          int32_t cp = 0;
          for (int k = 0; k < len; k++) {
            char h = L->i + 2 + (size_t)k < L->n ? L->s[L->i + 2 + (size_t)k] : 0;
            if (!isxdigit((unsigned char)h))
              preft_jfail(L->c, L->line, "invalid \\%c escape in a string literal", e);
            cp = cp * 16 + (isdigit((unsigned char)h) ? h - '0' : (tolower((unsigned char)h) - 'a' + 10));
          }
          preft_jsb_add(L->c, &b, tmp, (size_t)preft_utf8_encode(cp, tmp));
          advance(L, 2 + (size_t)len);
          continue;
        }
        default:
          preft_jfail(L->c, L->line, "unsupported escape '\\%c' in a string literal", e);
      }
      preft_jsb_add(L->c, &b, rep, strlen(rep));
      advance(L, 2);
      continue;
    }
    preft_jsb_add(L->c, &b, &ch, 1);
    advance(L, 1);
  }
  if (L->i >= L->n) preft_jfail(L->c, line, "unterminated string literal");
  advance(L, 1);
  jtok *t = push(L, T_STRING, b.s, b.n);
  t->line = line;
}

/* Lexes the inside of {{ }} or {% %}; returns at the closing tag. */
static void lex_tag(lexer *L, bool expr) {
  int depth = 0;
  for (;;) {
    skip_ws(L);
    if (L->i >= L->n) preft_jfail(L->c, L->line, "unclosed %s tag", expr ? "{{" : "{%");
    const char *p = L->s + L->i;
    const char *close = expr ? "}}" : "%}";
    if (p[0] == '-' && !strncmp(p + 1, close, 2) && (expr ? depth == 0 : true)) {
      push(L, expr ? T_EXPR_CLOSE : T_STMT_CLOSE, close, 2);
      advance(L, 3);
      skip_ws(L);
      return;
    }
    if (!strncmp(p, close, 2) && depth == 0) {
      push(L, expr ? T_EXPR_CLOSE : T_STMT_CLOSE, close, 2);
      advance(L, 2);
      return;
    }
    char ch = p[0];
    if (ch == '\'' || ch == '"') {
      lex_string(L, ch);
      continue;
    }
    if (isdigit((unsigned char)ch)) {
      size_t j = 0;
      while (isdigit((unsigned char)p[j]) || p[j] == '_') j++;
      bool is_float = false;
      if (p[j] == '.' && isdigit((unsigned char)p[j + 1])) {
        is_float = true;
        j++;
        while (isdigit((unsigned char)p[j])) j++;
      }
      if ((p[j] == 'e' || p[j] == 'E') &&
          (isdigit((unsigned char)p[j + 1]) ||
           ((p[j + 1] == '-' || p[j + 1] == '+') && isdigit((unsigned char)p[j + 2])))) {
        is_float = true;
        j += 2;
        while (isdigit((unsigned char)p[j])) j++;
      }
      char num[64];
      size_t k = 0;
      for (size_t q = 0; q < j && k < sizeof num - 1; q++)
        if (p[q] != '_') num[k++] = p[q];
      num[k] = 0;
      jtok *t = push(L, is_float ? T_FLOAT : T_INT, p, j);
      errno = 0;
      if (is_float)
        t->fval = strtod(num, NULL);
      else
        t->ival = strtoll(num, NULL, 10);
      if ((!is_float && errno == ERANGE) || k == sizeof num - 1)
        preft_jfail(L->c, L->line,
                    "number literal %.*s does not fit in a 64-bit %s (preft has no big integers)",
                    (int)(j < 40 ? j : 40), p, is_float ? "float" : "integer");
      advance(L, j);
      continue;
    }
    if (isalpha((unsigned char)ch) || ch == '_') {
      size_t j = 0;
      while (isalnum((unsigned char)p[j]) || p[j] == '_') j++;
      push(L, T_NAME, p, j);
      advance(L, j);
      continue;
    }
    bool matched = false;
    for (size_t k = 0; k < sizeof OPS / sizeof OPS[0]; k++) {
      size_t ol = strlen(OPS[k]);
      if (!strncmp(p, OPS[k], ol)) {
        if (OPS[k][0] == '{' || OPS[k][0] == '[' || OPS[k][0] == '(') depth++;
        if (OPS[k][0] == '}' || OPS[k][0] == ']' || OPS[k][0] == ')') depth--;
        push(L, T_OP, OPS[k], ol);
        advance(L, ol);
        matched = true;
        break;
      }
    }
    if (!matched) preft_jfail(L->c, L->line, "unexpected character '%c'", ch);
  }
}

jtoks preft_jinja_lex(jctx *c, const char *tmpl) {
  lexer L = {.c = c, .line = 1};
  int *line_of;
  L.s = preprocess(c, tmpl, &line_of);
  L.line_of = line_of;
  L.n = strlen(L.s);
  while (L.i < L.n) {
    const char *p = L.s + L.i;
    if (p[0] == '{' && (p[1] == '{' || p[1] == '%' || p[1] == '#')) {
      bool strip = p[2] == '-';
      if (p[1] == '#') {
        const char *e = strstr(p + 2, "#}");
        if (!e) preft_jfail(c, L.line, "unclosed comment {#");
        if (strip) strip_prev_text(&L);
        bool after = e > p + 2 && e[-1] == '-';
        advance(&L, (size_t)(e + 2 - p));
        if (after) skip_ws(&L);
        continue;
      }
      if (strip) strip_prev_text(&L);
      bool expr = p[1] == '{';
      push(&L, expr ? T_EXPR_OPEN : T_STMT_OPEN, p, 2);
      advance(&L, strip ? 3 : 2);
      lex_tag(&L, expr);
      continue;
    }
    size_t j = 0;
    while (L.i + j < L.n && !(p[j] == '{' && (p[j + 1] == '{' || p[j + 1] == '%' || p[j + 1] == '#'))) j++;
    jtok *t = push(&L, T_TEXT, p, j);
    (void)t;
    advance(&L, j);
  }
  push(&L, T_EOF, "", 0);
  return (jtoks){L.v, L.nt};
}
