/* toml.c - the strict TOML reader of task files (see toml.h for the
 * subset). One pass over the text with a cursor; every error is
 * "FILE:LINE: what". */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "tasks/text_buf.h"
#include "tasks/toml.h"

#define TOML_MAX_DEPTH 64

typedef struct tp {
  const char *p, *end, *file;
  int line, depth;
  preft_error *err;
} tp;

static int tfail(tp *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int tfail(tp *t, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return preft_fail(t->err, "%s:%d: %s", t->file, t->line, msg);
}

static bool at_end(const tp *t) { return t->p >= t->end; }
static int peek(const tp *t) { return t->p < t->end ? (unsigned char)*t->p : -1; }
static int peek_at(const tp *t, size_t k) { return t->p + k < t->end ? (unsigned char)t->p[k] : -1; }
static bool starts(const tp *t, const char *s) {
  size_t n = strlen(s);
  return (size_t)(t->end - t->p) >= n && !memcmp(t->p, s, n);
}

static void skip_ws(tp *t) {
  while (!at_end(t) && (*t->p == ' ' || *t->p == '\t')) t->p++;
}
static bool at_newline(const tp *t) { return peek(t) == '\n' || (peek(t) == '\r' && peek_at(t, 1) == '\n'); }
static void eat_newline(tp *t) {
  if (peek(t) == '\r') t->p++;
  t->p++;
  t->line++;
}
static void skip_comment(tp *t) {
  if (peek(t) != '#') return;
  while (!at_end(t) && !at_newline(t)) t->p++;
}
/* whitespace, comments and newlines (inside arrays) */
static void skip_ws_nl(tp *t) {
  for (;;) {
    skip_ws(t);
    skip_comment(t);
    if (at_newline(t))
      eat_newline(t);
    else
      return;
  }
}

/* Checks the whole text: valid UTF-8 (no overlong forms, surrogates or code
 * points past U+10FFFF) and no control character but tab, LF and CR LF. */
static int check_text(tp *t) {
  const unsigned char *s = (const unsigned char *)t->p, *e = (const unsigned char *)t->end;
  int line = 1;
  while (s < e) {
    unsigned c = *s;
    if (c == '\n') {
      line++;
      s++;
      continue;
    }
    if (c < 0x80) {
      if ((c < 0x20 && c != '\t' && !(c == '\r' && s + 1 < e && s[1] == '\n')) || c == 0x7f) {
        t->line = line;
        return tfail(t, "control character 0x%02x (only tab and newlines may appear raw)", c);
      }
      s++;
      continue;
    }
    int n = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : c >= 0xc0 ? 1 : -1;
    uint32_t cp = n == 3 ? c & 0x07 : n == 2 ? c & 0x0f : c & 0x1f;
    bool bad = n < 0 || c > 0xf4 || e - s <= n;
    for (int k = 1; !bad && k <= n; k++) {
      if ((s[k] & 0xc0) != 0x80) bad = true;
      cp = cp << 6 | (s[k] & 0x3f);
    }
    if (!bad) {
      uint32_t min = n == 1 ? 0x80 : n == 2 ? 0x800 : 0x10000;
      bad = cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff);
    }
    if (bad) {
      t->line = line;
      return tfail(t, "invalid UTF-8");
    }
    s += n + 1;
  }
  return 0;
}

/* ---- strings ---- */

static int unicode_escape(tp *t, int digits, text_buf *b) {
  uint32_t cp = 0;
  for (int k = 0; k < digits; k++) {
    int c = peek(t);
    int v = c >= '0' && c <= '9'   ? c - '0'
            : c >= 'a' && c <= 'f' ? c - 'a' + 10
            : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                   : -1;
    if (v < 0) return tfail(t, "\\%c escape needs %d hex digits", digits == 4 ? 'u' : 'U', digits);
    cp = cp << 4 | (uint32_t)v;
    t->p++;
  }
  if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    return tfail(t, "escape U+%X is not a Unicode scalar value", cp);
  if (cp == 0) return tfail(t, "a NUL character (\\u0000) in a string is not supported");
  text_buf_utf8(b, cp);
  return 0;
}

/* After the backslash of a basic string. */
static int escape(tp *t, bool multiline, text_buf *b) {
  int c = peek(t);
  if (c < 0) return tfail(t, "unterminated string");
  t->p++;
  switch (c) {
    case 'b':
      text_buf_putc(b, '\b');
      return 0;
    case 't':
      text_buf_putc(b, '\t');
      return 0;
    case 'n':
      text_buf_putc(b, '\n');
      return 0;
    case 'f':
      text_buf_putc(b, '\f');
      return 0;
    case 'r':
      text_buf_putc(b, '\r');
      return 0;
    case '"':
      text_buf_putc(b, '"');
      return 0;
    case '\\':
      text_buf_putc(b, '\\');
      return 0;
    case 'u':
      return unicode_escape(t, 4, b);
    case 'U':
      return unicode_escape(t, 8, b);
    default:
      break;
  }
  if (multiline && (c == ' ' || c == '\t' || c == '\r' || c == '\n')) {
    /* line-ending backslash: whitespace up to a newline, then all whitespace is trimmed */
    t->p--;
    skip_ws(t);
    if (!at_newline(t)) return tfail(t, "a line-ending backslash must be followed by a newline");
    while (!at_end(t) && (peek(t) == ' ' || peek(t) == '\t' || at_newline(t))) {
      if (at_newline(t))
        eat_newline(t);
      else
        t->p++;
    }
    return 0;
  }
  if (c >= 0x20 && c < 0x7f) return tfail(t, "unknown escape \\%c in a string", c);
  return tfail(t, "unknown escape in a string");
}

/* A string of any of the four kinds; t->p at its first quote. */
static int parse_string(tp *t, char **out) {
  char q = *t->p;
  bool multi = (q == '"' && starts(t, "\"\"\"")) || (q == '\'' && starts(t, "'''"));
  int start_line = t->line;
  text_buf b = {0};
  t->p += multi ? 3 : 1;
  if (multi && at_newline(t)) eat_newline(t); /* a newline right after the opening quotes is trimmed */
  for (;;) {
    if (at_end(t)) {
      t->line = start_line;
      text_buf_free(&b);
      return tfail(t, "unterminated string");
    }
    char c = *t->p;
    if (c == q) {
      if (!multi) {
        t->p++;
        break;
      }
      int n = 0;
      while (peek_at(t, (size_t)n) == q) n++;
      if (n >= 3) {
        if (n > 5) {
          text_buf_free(&b);
          return tfail(t, "too many quotes closing a multi-line string");
        }
        for (int k = 3; k < n; k++) text_buf_putc(&b, q);
        t->p += n;
        break;
      }
      for (int k = 0; k < n; k++) text_buf_putc(&b, q);
      t->p += n;
      continue;
    }
    if (at_newline(t)) {
      if (!multi) {
        text_buf_free(&b);
        return tfail(t, "newline in a one-line string");
      }
      if (*t->p == '\r') t->p++;
      text_buf_putc(&b, '\n');
      t->p++;
      t->line++;
      continue;
    }
    t->p++;
    if (c == '\\' && q == '"') {
      if (escape(t, multi, &b) != 0) {
        text_buf_free(&b);
        return -1;
      }
      continue;
    }
    text_buf_putc(&b, c);
  }
  *out = text_buf_take(&b);
  return 0;
}

/* ---- keys ---- */

static bool is_bare(int c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

typedef struct key_path {
  char **parts;
  int n;
} key_path;

static void key_path_free(key_path *k) {
  for (int i = 0; i < k->n; i++) free(k->parts[i]);
  free(k->parts);
  k->parts = NULL;
  k->n = 0;
}

static int parse_key(tp *t, key_path *k) {
  for (;;) {
    skip_ws(t);
    char *part = NULL;
    int c = peek(t);
    if (c == '"' || c == '\'') {
      if ((c == '"' && starts(t, "\"\"\"")) || (c == '\'' && starts(t, "'''")))
        return tfail(t, "a key cannot be a multi-line string");
      if (parse_string(t, &part) != 0) return -1;
    } else if (is_bare(c)) {
      const char *s = t->p;
      while (is_bare(peek(t))) t->p++;
      part = preft_xmalloc((size_t)(t->p - s) + 1);
      memcpy(part, s, (size_t)(t->p - s));
      part[t->p - s] = 0;
    } else if (c < 0 || at_newline(t)) {
      return tfail(t, "expected a key");
    } else {
      if (c >= 0x20 && c < 0x7f) return tfail(t, "expected a key, found '%c'", c);
      return tfail(t, "expected a key");
    }
    k->parts = preft_xrealloc(k->parts, (size_t)(k->n + 1) * sizeof *k->parts);
    k->parts[k->n++] = part;
    skip_ws(t);
    if (peek(t) != '.') return 0;
    t->p++;
  }
}

/* ---- numbers, booleans ---- */

/* digits with single underscores between them; returns the count of digits or -1 */
static int digit_run(const char *s, size_t n, int base) {
  int digits = 0;
  for (size_t k = 0; k < n; k++) {
    char c = s[k];
    if (c == '_') {
      if (k == 0 || k + 1 == n || s[k - 1] == '_') return -1;
      continue;
    }
    int v = c >= '0' && c <= '9'   ? c - '0'
            : c >= 'a' && c <= 'f' ? c - 'a' + 10
            : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                   : 99;
    if (v >= base) return -1;
    digits++;
  }
  return digits;
}

static char *strip_underscores(const char *s, size_t n) {
  char *o = preft_xmalloc(n + 1), *w = o;
  for (size_t k = 0; k < n; k++)
    if (s[k] != '_') *w++ = s[k];
  *w = 0;
  return o;
}

static int parse_number(tp *t, preft_tv **out) {
  const char *s = t->p;
  while (!at_end(t) && (is_bare(*t->p) || *t->p == '+' || *t->p == '.' || *t->p == ':')) t->p++;
  size_t n = (size_t)(t->p - s);
  char tok[64];
  snprintf(tok, sizeof tok, "%.*s", n > 40 ? 40 : (int)n, s);
  if (memchr(s, ':', n) || (n >= 5 && digit_run(s, 4, 10) == 4 && s[4] == '-'))
    return tfail(t, "dates and times are not supported (value '%s')", tok);
  if (n == 0) return tfail(t, "expected a value");
  const char *d = s;
  size_t dn = n;
  bool neg = false, sign = false;
  if (*d == '+' || *d == '-') {
    neg = *d == '-';
    sign = true;
    d++;
    dn--;
  }
  if ((dn == 3 && !memcmp(d, "inf", 3)) || (dn == 3 && !memcmp(d, "nan", 3))) {
    preft_tv *v = preft_tv_new(PREFT_TV_FLOAT, t->line);
    v->f = d[0] == 'i' ? (neg ? -INFINITY : INFINITY) : (neg ? -NAN : NAN);
    *out = v;
    return 0;
  }
  if (dn > 2 && d[0] == '0' && (d[1] == 'x' || d[1] == 'o' || d[1] == 'b')) {
    int base = d[1] == 'x' ? 16 : d[1] == 'o' ? 8 : 2;
    if (sign) return tfail(t, "'%s': a hexadecimal, octal or binary integer cannot have a sign", tok);
    if (digit_run(d + 2, dn - 2, base) <= 0) return tfail(t, "'%s' is not a valid integer", tok);
    char *c = strip_underscores(d + 2, dn - 2);
    errno = 0;
    unsigned long long u = strtoull(c, NULL, base);
    free(c);
    if (errno == ERANGE || u > INT64_MAX) return tfail(t, "integer '%s' does not fit in 64 bits", tok);
    preft_tv *v = preft_tv_new(PREFT_TV_INT, t->line);
    v->i = (int64_t)u;
    *out = v;
    return 0;
  }
  /* decimal: INT [. DIGITS] [e|E [+-] DIGITS] */
  size_t k = 0;
  while (k < dn && d[k] != '.' && d[k] != 'e' && d[k] != 'E') k++;
  int idigits = digit_run(d, k, 10);
  if (idigits <= 0) return tfail(t, "'%s' is not a valid value", tok);
  if (d[0] == '0' && idigits > 1) return tfail(t, "'%s': leading zeros are not allowed", tok);
  bool is_float = false;
  if (k < dn && d[k] == '.') {
    size_t f = ++k;
    while (k < dn && d[k] != 'e' && d[k] != 'E') k++;
    if (digit_run(d + f, k - f, 10) <= 0)
      return tfail(t, "'%s': a fraction needs digits after the point", tok);
    is_float = true;
  }
  if (k < dn && (d[k] == 'e' || d[k] == 'E')) {
    k++;
    if (k < dn && (d[k] == '+' || d[k] == '-')) k++;
    if (digit_run(d + k, dn - k, 10) <= 0) return tfail(t, "'%s': an exponent needs digits", tok);
    k = dn;
    is_float = true;
  }
  if (k != dn) return tfail(t, "'%s' is not a valid value", tok);
  char *c = strip_underscores(s, n);
  errno = 0;
  preft_tv *v;
  if (is_float) {
    v = preft_tv_new(PREFT_TV_FLOAT, t->line);
    v->f = strtod(c, NULL);
  } else {
    long long x = strtoll(c, NULL, 10);
    if (errno == ERANGE) {
      free(c);
      return tfail(t, "integer '%s' does not fit in 64 bits", tok);
    }
    v = preft_tv_new(PREFT_TV_INT, t->line);
    v->i = x;
  }
  free(c);
  *out = v;
  return 0;
}

/* ---- values, tables ---- */

static int parse_value(tp *t, preft_tv **out);
static int put_keyval(tp *t, preft_tv *table, bool in_inline);

static void freeze(preft_tv *v) {
  if (v->kind != PREFT_TV_TABLE && v->kind != PREFT_TV_ARRAY) return;
  v->is_frozen = true;
  for (int k = 0; k < v->n; k++) freeze(v->items[k]);
}

static int parse_array(tp *t, preft_tv **out) {
  preft_tv *a = preft_tv_new(PREFT_TV_ARRAY, t->line);
  a->is_frozen = true;
  t->p++; /* [ */
  for (;;) {
    skip_ws_nl(t);
    if (peek(t) == ']') break;
    preft_tv *v;
    if (parse_value(t, &v) != 0) goto fail;
    preft_tv_put(a, NULL, v);
    skip_ws_nl(t);
    if (peek(t) == ',') {
      t->p++;
      continue;
    }
    if (peek(t) == ']') break;
    tfail(t, "expected ',' or ']' in an array");
    goto fail;
  }
  t->p++;
  *out = a;
  return 0;
fail:
  preft_tv_free(a);
  return -1;
}

static int parse_inline_table(tp *t, preft_tv **out) {
  preft_tv *tb = preft_tv_new(PREFT_TV_TABLE, t->line);
  t->p++; /* { */
  skip_ws(t);
  if (at_newline(t) || peek(t) == '#') {
    preft_tv_free(tb);
    return tfail(t, "an inline table must be on one line");
  }
  if (peek(t) == '}') {
    t->p++;
    tb->is_frozen = true;
    *out = tb;
    return 0;
  }
  for (;;) {
    if (put_keyval(t, tb, true) != 0) goto fail;
    skip_ws(t);
    if (peek(t) == ',') {
      t->p++;
      skip_ws(t);
      if (peek(t) == '}') {
        tfail(t, "a trailing comma is not allowed in an inline table");
        goto fail;
      }
      if (at_newline(t) || peek(t) == '#') {
        tfail(t, "an inline table must be on one line");
        goto fail;
      }
      continue;
    }
    if (peek(t) == '}') break;
    tfail(t,
          at_newline(t) ? "an inline table must be on one line" : "expected ',' or '}' in an inline table");
    goto fail;
  }
  t->p++;
  freeze(tb);
  *out = tb;
  return 0;
fail:
  preft_tv_free(tb);
  return -1;
}

static int parse_value(tp *t, preft_tv **out) {
  if (++t->depth > TOML_MAX_DEPTH) return tfail(t, "values nested deeper than %d", TOML_MAX_DEPTH);
  int r, c = peek(t);
  if (c == '"' || c == '\'') {
    int line = t->line;
    char *s;
    r = parse_string(t, &s);
    if (r == 0) {
      *out = preft_tv_new(PREFT_TV_STRING, line);
      (*out)->str = s;
    }
  } else if (c == '[') {
    r = parse_array(t, out);
  } else if (c == '{') {
    r = parse_inline_table(t, out);
  } else if (starts(t, "true") && !is_bare(peek_at(t, 4))) {
    t->p += 4;
    *out = preft_tv_new(PREFT_TV_BOOL, t->line);
    (*out)->b = true;
    r = 0;
  } else if (starts(t, "false") && !is_bare(peek_at(t, 5))) {
    t->p += 5;
    *out = preft_tv_new(PREFT_TV_BOOL, t->line);
    r = 0;
  } else if ((c >= '0' && c <= '9') || c == '+' || c == '-' || c == 'i' || c == 'n') {
    r = parse_number(t, out);
  } else if (c < 0 || at_newline(t)) {
    r = tfail(t, "expected a value");
  } else {
    r = tfail(t, "expected a value (a string, number, boolean, array or inline table)");
  }
  t->depth--;
  return r;
}

static char *key_text(const key_path *k, int upto) {
  text_buf b = {0};
  for (int i = 0; i <= upto && i < k->n; i++) {
    if (i) text_buf_putc(&b, '.');
    text_buf_puts(&b, k->parts[i]);
  }
  return text_buf_take(&b);
}

static int key_clash(tp *t, const key_path *k, int upto, const char *what) {
  char *name = key_text(k, upto);
  tfail(t, "'%s' %s", name, what);
  free(name);
  return -1;
}

/* key = value into table (dotted keys make tables on the way) */
static int put_keyval(tp *t, preft_tv *table, bool in_inline) {
  key_path k = {0};
  int line = t->line;
  if (parse_key(t, &k) != 0) goto fail;
  skip_ws(t);
  if (peek(t) != '=') {
    tfail(t, "expected '=' after the key");
    goto fail;
  }
  t->p++;
  skip_ws(t);
  preft_tv *cur = table;
  for (int i = 0; i + 1 < k.n; i++) {
    preft_tv *next = (preft_tv *)preft_tv_get(cur, k.parts[i]);
    if (!next) {
      next = preft_tv_new(PREFT_TV_TABLE, line);
      next->is_dotted = true;
      preft_tv_put(cur, k.parts[i], next);
    } else if (next->kind != PREFT_TV_TABLE || !next->is_dotted || next->is_frozen) {
      key_clash(t, &k, i,
                next->kind == PREFT_TV_TABLE ? "is a table defined elsewhere: dotted keys cannot add to it"
                                             : "is already defined as a value");
      goto fail;
    }
    cur = next;
  }
  if (preft_tv_get(cur, k.parts[k.n - 1])) {
    key_clash(t, &k, k.n - 1, "is defined twice");
    goto fail;
  }
  preft_tv *v;
  if (parse_value(t, &v) != 0) goto fail;
  v->line = line;
  preft_tv_put(cur, k.parts[k.n - 1], v);
  (void)in_inline;
  key_path_free(&k);
  return 0;
fail:
  key_path_free(&k);
  return -1;
}

/* [a.b] or [[a.b]]: returns the table later key/values go into */
static int parse_header(tp *t, preft_tv *root, preft_tv **cur) {
  bool aot = starts(t, "[[");
  int line = t->line;
  t->p += aot ? 2 : 1;
  key_path k = {0};
  if (parse_key(t, &k) != 0) goto fail;
  skip_ws(t);
  if (aot ? !starts(t, "]]") : peek(t) != ']') {
    tfail(t, aot ? "expected ']]' closing the table header" : "expected ']' closing the table header");
    goto fail;
  }
  t->p += aot ? 2 : 1;
  preft_tv *tb = root;
  for (int i = 0; i + 1 < k.n; i++) {
    preft_tv *next = (preft_tv *)preft_tv_get(tb, k.parts[i]);
    if (!next) {
      next = preft_tv_new(PREFT_TV_TABLE, line);
      preft_tv_put(tb, k.parts[i], next);
    } else if (next->kind == PREFT_TV_ARRAY && next->is_aot) {
      next = next->items[next->n - 1];
    } else if (next->kind != PREFT_TV_TABLE || next->is_frozen) {
      key_clash(t, &k, i, "is already defined as a value");
      goto fail;
    }
    tb = next;
  }
  const char *last = k.parts[k.n - 1];
  preft_tv *ex = (preft_tv *)preft_tv_get(tb, last);
  preft_tv *nt;
  if (aot) {
    if (!ex) {
      ex = preft_tv_new(PREFT_TV_ARRAY, line);
      ex->is_aot = true;
      preft_tv_put(tb, last, ex);
    } else if (!(ex->kind == PREFT_TV_ARRAY && ex->is_aot)) {
      key_clash(t, &k, k.n - 1, "is already defined and is not an array of tables");
      goto fail;
    }
    nt = preft_tv_new(PREFT_TV_TABLE, line);
    nt->is_explicit = true;
    preft_tv_put(ex, NULL, nt);
  } else if (!ex) {
    nt = preft_tv_new(PREFT_TV_TABLE, line);
    nt->is_explicit = true;
    preft_tv_put(tb, last, nt);
  } else if (ex->kind == PREFT_TV_TABLE && !ex->is_explicit && !ex->is_dotted && !ex->is_frozen) {
    nt = ex; /* made implicitly by an earlier [a.b.c]: now defined */
    nt->is_explicit = true;
    nt->line = line;
  } else {
    key_clash(t, &k, k.n - 1,
              ex->kind == PREFT_TV_TABLE ? "is defined twice (a table cannot be reopened)"
                                         : "is already defined as a value");
    goto fail;
  }
  *cur = nt;
  key_path_free(&k);
  return 0;
fail:
  key_path_free(&k);
  return -1;
}

int preft_toml_parse(const char *text, size_t n, const char *file, preft_tv **out, preft_error *err) {
  tp t = {.p = text, .end = text + n, .file = file ? file : "<toml>", .line = 1, .err = err};
  if (check_text(&t) != 0) return -1;
  t.line = 1;
  preft_tv *root = preft_tv_new(PREFT_TV_TABLE, 1), *cur = root;
  root->is_explicit = true;
  for (;;) {
    skip_ws(&t);
    if (at_end(&t)) break;
    int c = peek(&t);
    if (c == '#') {
      skip_comment(&t);
    } else if (at_newline(&t)) {
      eat_newline(&t);
      continue;
    } else if (c == '[') {
      if (parse_header(&t, root, &cur) != 0) goto fail;
    } else {
      if (put_keyval(&t, cur, false) != 0) goto fail;
    }
    skip_ws(&t);
    skip_comment(&t);
    if (at_end(&t)) break;
    if (!at_newline(&t)) {
      tfail(&t, "expected the end of the line after a value or header");
      goto fail;
    }
    eat_newline(&t);
  }
  *out = root;
  return 0;
fail:
  preft_tv_free(root);
  return -1;
}
