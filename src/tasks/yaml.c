/* yaml.c - the YAML subset of task.yaml (see yaml.h). The text is split
 * into lines with their indentation; block nodes are read by recursive
 * descent over the lines. A sequence item "- x" is read by moving that
 * line's start past the dash, so "- key: v" and "- - x" need nothing
 * special. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "tasks/text_buf.h"
#include "tasks/yaml.h"

#define YAML_MAX_DEPTH 64

typedef struct yline {
  const char *s; /* the line, without its newline */
  int len;
  int indent; /* column of the content */
  int no;     /* 1-based line number */
} yline;

typedef struct yp {
  yline *lines;
  int n, i, depth;
  const char *file;
  preft_error *err;
} yp;

static int yfail(yp *y, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int yfail(yp *y, int line, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return preft_fail(y->err, "%s:%d: %s", y->file, line, msg);
}

static const char *content(const yline *l) { return l->s + l->indent; }
static int content_len(const yline *l) { return l->len - l->indent; }
static bool is_blank(const yline *l) { return content_len(l) == 0 || content(l)[0] == '#'; }
static bool is_item(const yline *l) {
  int n = content_len(l);
  const char *c = content(l);
  return n >= 1 && c[0] == '-' && (n == 1 || c[1] == ' ');
}

static void skip_blank(yp *y) {
  while (y->i < y->n && is_blank(&y->lines[y->i])) y->i++;
}

/* ---- scalars ---- */

static bool all_digits(const char *s, size_t n, int base) {
  if (!n) return false;
  for (size_t k = 0; k < n; k++) {
    char c = s[k];
    int v = c >= '0' && c <= '9'   ? c - '0'
            : c >= 'a' && c <= 'f' ? c - 'a' + 10
            : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                   : 99;
    if (v >= base) return false;
  }
  return true;
}

static bool is_float_text(const char *s) {
  /* [-+]? ( \.[0-9]+ | [0-9]+ ( \.[0-9]* )? ) ( [eE] [-+]? [0-9]+ )? */
  const char *p = s;
  if (*p == '+' || *p == '-') p++;
  int before = 0, after = 0;
  while (*p >= '0' && *p <= '9') p++, before++;
  if (*p == '.') {
    p++;
    while (*p >= '0' && *p <= '9') p++, after++;
  }
  if (!before && !after) return false;
  if (*p == 'e' || *p == 'E') {
    p++;
    if (*p == '+' || *p == '-') p++;
    int e = 0;
    while (*p >= '0' && *p <= '9') p++, e++;
    if (!e) return false;
  }
  return *p == 0;
}

/* A plain scalar typed by YAML 1.2's core schema; takes s. */
static preft_tv *typed_scalar(char *s, int line) {
  preft_tv *v;
  size_t n = strlen(s);
  if (!n || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL")) {
    free(s);
    return preft_tv_new(PREFT_TV_NULL, line);
  }
  if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE") || !strcmp(s, "false") ||
      !strcmp(s, "False") || !strcmp(s, "FALSE")) {
    v = preft_tv_new(PREFT_TV_BOOL, line);
    v->b = s[0] == 't' || s[0] == 'T';
    free(s);
    return v;
  }
  const char *d = s + (s[0] == '+' || s[0] == '-');
  int base = 0;
  const char *digits = NULL;
  if (all_digits(d, strlen(d), 10))
    base = 10, digits = s;
  else if (s[0] == '0' && s[1] == 'o' && all_digits(s + 2, n - 2, 8))
    base = 8, digits = s + 2;
  else if (s[0] == '0' && s[1] == 'x' && all_digits(s + 2, n - 2, 16))
    base = 16, digits = s + 2;
  if (base) {
    errno = 0;
    long long x = strtoll(digits, NULL, base);
    if (errno != ERANGE) {
      v = preft_tv_new(PREFT_TV_INT, line);
      v->i = x;
      free(s);
      return v;
    }
  }
  bool inf = !strcmp(d, ".inf") || !strcmp(d, ".Inf") || !strcmp(d, ".INF");
  bool nan = !strcmp(s, ".nan") || !strcmp(s, ".NaN") || !strcmp(s, ".NAN");
  if (inf || nan || is_float_text(s) || base) {
    v = preft_tv_new(PREFT_TV_FLOAT, line);
    v->f = nan ? NAN : inf ? (s[0] == '-' ? -INFINITY : INFINITY) : strtod(s, NULL);
    free(s);
    return v;
  }
  v = preft_tv_new(PREFT_TV_STRING, line);
  v->str = s;
  return v;
}

static preft_tv *string_value(char *s, int line) {
  preft_tv *v = preft_tv_new(PREFT_TV_STRING, line);
  v->str = s;
  return v;
}

static int hexval(char c) {
  return c >= '0' && c <= '9'   ? c - '0'
         : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                : -1;
}

/* The escape after a backslash in a double-quoted scalar; *p is past the backslash. */
static int dq_escape(yp *y, int line, const char **p, const char *end, text_buf *b) {
  if (*p >= end) return yfail(y, line, "a backslash at the end of a line in a double-quoted scalar");
  char c = *(*p)++;
  static const char simple[][2] = {{'a', '\a'}, {'b', '\b'}, {'t', '\t'}, {'\t', '\t'}, {'n', '\n'},
                                   {'v', '\v'}, {'f', '\f'}, {'r', '\r'}, {'e', 0x1b},  {' ', ' '},
                                   {'"', '"'},  {'/', '/'},  {'\\', '\\'}};
  for (size_t k = 0; k < sizeof simple / sizeof simple[0]; k++)
    if (simple[k][0] == c) {
      text_buf_putc(b, simple[k][1]);
      return 0;
    }
  int digits = c == 'x' ? 2 : c == 'u' ? 4 : c == 'U' ? 8 : 0;
  uint32_t cp = 0;
  if (c == 'N')
    cp = 0x85;
  else if (c == '_')
    cp = 0xa0;
  else if (c == 'L')
    cp = 0x2028;
  else if (c == 'P')
    cp = 0x2029;
  else if (!digits) {
    if (c == '0') return yfail(y, line, "a NUL character (\\0) in a string is not supported");
    return yfail(y, line, "unknown escape \\%c in a double-quoted scalar", c >= 0x20 && c < 0x7f ? c : '?');
  }
  for (int k = 0; k < digits; k++) {
    int v = *p < end ? hexval(**p) : -1;
    if (v < 0) return yfail(y, line, "\\%c escape needs %d hex digits", c, digits);
    cp = cp << 4 | (uint32_t)v;
    (*p)++;
  }
  if (cp == 0) return yfail(y, line, "a NUL character in a string is not supported");
  if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    return yfail(y, line, "escape U+%X is not a Unicode scalar value", cp);
  text_buf_utf8(b, cp);
  return 0;
}

/* Rest of the line after a value: only spaces and a comment. */
static int expect_line_end(yp *y, int line, const char *p, const char *end) {
  while (p < end && *p == ' ') p++;
  if (p < end && *p != '#')
    return yfail(y, line, "unexpected text after a value: '%.*s'", (int)(end - p > 40 ? 40 : end - p), p);
  return 0;
}

/* A quoted scalar starting at s (in line y->i, whose remaining text ends at
 * end); may continue on later lines, which are folded (a line break becomes
 * a space, k empty lines become k newlines). Leaves y->i after its last line. */
static int quoted_scalar(yp *y, const char *s, const char *end, preft_tv **out) {
  char q = *s;
  int line = y->lines[y->i].no;
  const char *p = s + 1;
  text_buf b = {0};
  for (;;) {
    if (p >= end) {
      /* the scalar continues on the next line: fold */
      while (b.n && (b.s[b.n - 1] == ' ' || b.s[b.n - 1] == '\t')) b.s[--b.n] = 0;
      int breaks = 0;
      y->i++;
      while (y->i < y->n && content_len(&y->lines[y->i]) == 0) breaks++, y->i++;
      if (y->i >= y->n) {
        text_buf_free(&b);
        return yfail(y, line, "unterminated %s-quoted scalar", q == '"' ? "double" : "single");
      }
      if (b.n && b.s[b.n - 1] == '\n' && !breaks) {
        /* escaped line break ("\" at the end of the line): joined as is */
      } else if (breaks) {
        for (int k = 0; k < breaks; k++) text_buf_putc(&b, '\n');
      } else {
        text_buf_putc(&b, ' ');
      }
      yline *l = &y->lines[y->i];
      p = content(l);
      end = l->s + l->len;
      continue;
    }
    char c = *p++;
    if (c == q) {
      if (q == '\'' && p < end && *p == '\'') {
        text_buf_putc(&b, '\'');
        p++;
        continue;
      }
      break;
    }
    if (c == '\\' && q == '"') {
      if (p == end) { /* escaped line break: the next line joins without a space */
        y->i++;
        if (y->i >= y->n) {
          text_buf_free(&b);
          return yfail(y, line, "unterminated double-quoted scalar");
        }
        yline *l = &y->lines[y->i];
        p = content(l);
        end = l->s + l->len;
        while (p < end && (*p == ' ' || *p == '\t')) p++;
        continue;
      }
      if (dq_escape(y, y->lines[y->i].no, &p, end, &b) != 0) {
        text_buf_free(&b);
        return -1;
      }
      continue;
    }
    text_buf_putc(&b, c);
  }
  if (expect_line_end(y, y->lines[y->i].no, p, end) != 0) {
    text_buf_free(&b);
    return -1;
  }
  y->i++;
  *out = string_value(text_buf_take(&b), line);
  return 0;
}

static int map_key(yp *y, const yline *l, char **key, const char **rest);

/* end of the plain text in [s, end): before a " #" comment, trailing spaces trimmed */
static const char *plain_end(const char *s, const char *end) {
  const char *p = s;
  while (p < end && !(*p == '#' && p > s && (p[-1] == ' ' || p[-1] == '\t'))) p++;
  while (p > s && (p[-1] == ' ' || p[-1] == '\t')) p--;
  return p;
}

static int flow_seq(yp *y, const char *s, const char *end, preft_tv **out) {
  int line = y->lines[y->i].no;
  preft_tv *a = preft_tv_new(PREFT_TV_ARRAY, line);
  const char *p = s + 1;
  for (;;) {
    while (p < end && *p == ' ') p++;
    if (p >= end) goto unterminated;
    if (*p == ']') {
      p++;
      break;
    }
    preft_tv *v;
    if (*p == '"' || *p == '\'') {
      char q = *p;
      text_buf b = {0};
      const char *e = p + 1;
      for (;;) {
        if (e >= end) {
          text_buf_free(&b);
          goto unterminated;
        }
        char c = *e++;
        if (c == q) {
          if (q == '\'' && e < end && *e == '\'') {
            text_buf_putc(&b, '\'');
            e++;
            continue;
          }
          break;
        }
        if (c == '\\' && q == '"') {
          if (dq_escape(y, line, &e, end, &b) != 0) {
            text_buf_free(&b);
            goto fail;
          }
          continue;
        }
        text_buf_putc(&b, c);
      }
      v = string_value(text_buf_take(&b), line);
      p = e;
    } else {
      if (strchr("[{&*!|>%@`", *p)) {
        yfail(y, line, "nested collections, anchors, aliases and tags are not supported in a flow sequence");
        goto fail;
      }
      const char *e = p;
      while (e < end && *e != ',' && *e != ']') e++;
      const char *t = e;
      while (t > p && t[-1] == ' ') t--;
      char *txt = preft_xmalloc((size_t)(t - p) + 1);
      memcpy(txt, p, (size_t)(t - p));
      txt[t - p] = 0;
      v = typed_scalar(txt, line);
      p = e;
    }
    preft_tv_put(a, NULL, v);
    while (p < end && *p == ' ') p++;
    if (p < end && *p == ',') {
      p++;
      continue;
    }
    if (p < end && *p == ']') {
      p++;
      break;
    }
    goto unterminated;
  }
  if (expect_line_end(y, line, p, end) != 0) goto fail;
  y->i++;
  *out = a;
  return 0;
unterminated:
  yfail(y, line, "a flow sequence must close with ']' on the same line");
fail:
  preft_tv_free(a);
  return -1;
}

/* A scalar or flow sequence at s (line y->i); parent: the indent of the node
 * that holds it (continuation lines must be deeper). */
static int inline_value(yp *y, const char *s, const char *end, int parent, preft_tv **out) {
  int line = y->lines[y->i].no;
  if (s < end && (*s == '"' || *s == '\'')) return quoted_scalar(y, s, end, out);
  if (s < end && *s == '[') return flow_seq(y, s, end, out);
  if (s < end && *s == '{') return yfail(y, line, "flow mappings ({...}) are not supported");
  if (s < end && (*s == '&' || *s == '*' || *s == '!'))
    return yfail(y, line, "anchors (&), aliases (*) and tags (!) are not supported");
  if (s < end && (*s == '%' || *s == '@' || *s == '`' || *s == '?'))
    return yfail(y, line, "'%c' cannot start a plain scalar", *s);
  text_buf b = {0};
  const char *e = plain_end(s, end);
  text_buf_put(&b, s, (size_t)(e - s));
  bool multi = false;
  y->i++;
  /* continuation lines: deeper than the parent, not comments */
  int breaks = 0;
  for (int j = y->i; j < y->n; j++) {
    yline *l = &y->lines[j];
    if (content_len(l) == 0) {
      breaks++;
      continue;
    }
    if (l->indent <= parent || content(l)[0] == '#') break;
    const char *c = content(l), *ce = plain_end(c, l->s + l->len);
    char *key = NULL;
    const char *rest;
    if (map_key(y, l, &key, &rest) != 0 || key) {
      free(key);
      text_buf_free(&b);
      return yfail(y, l->no, "unexpected indentation ('key: value' inside a plain scalar)");
    }
    if (breaks)
      for (int k = 0; k < breaks; k++) text_buf_putc(&b, '\n');
    else
      text_buf_putc(&b, ' ');
    text_buf_put(&b, c, (size_t)(ce - c));
    breaks = 0;
    multi = true;
    y->i = j + 1;
  }
  char *txt = text_buf_take(&b);
  *out = multi ? string_value(txt, line) : typed_scalar(txt, line);
  return 0;
}

/* A block scalar (| or >); header at [h, end) of line y->i; parent: the
 * indent of the node that holds it. */
static int block_scalar(yp *y, const char *h, const char *end, int parent, preft_tv **out) {
  int line = y->lines[y->i].no;
  bool folded = *h == '>';
  char chomp = 'c';
  int explicit_indent = 0;
  const char *p = h + 1;
  for (int k = 0; k < 2 && p < end; k++) {
    if ((*p == '-' || *p == '+') && chomp == 'c')
      chomp = *p++;
    else if (*p >= '1' && *p <= '9' && !explicit_indent)
      explicit_indent = *p++ - '0';
  }
  if (p < end && *p != ' ')
    return yfail(y, line, "bad block scalar header '%.*s'", (int)(end - h > 20 ? 20 : end - h), h);
  if (expect_line_end(y, line, p, end) != 0) return -1;
  y->i++;
  int base = parent < 0 ? 0 : parent;
  int ind = explicit_indent ? base + explicit_indent : -1;
  if (ind < 0) {
    for (int j = y->i; j < y->n; j++)
      if (content_len(&y->lines[j]) > 0) {
        ind = y->lines[j].indent;
        break;
      }
    if (ind <= parent) ind = parent + 1; /* empty scalar: no line is deeper */
  }
  text_buf b = {0};
  int pending = 0;
  char prev = 0; /* 0 none, 'n' normal line, 'm' more-indented line */
  while (y->i < y->n) {
    yline *l = &y->lines[y->i];
    if (content_len(l) == 0 && l->len <= ind) {
      pending++;
      y->i++;
      continue;
    }
    if (l->indent < ind) {
      if (content_len(l) == 0) {
        pending++;
        y->i++;
        continue;
      }
      break;
    }
    const char *txt = l->s + ind;
    size_t n = (size_t)(l->len - ind);
    char type = (txt[0] == ' ' || txt[0] == '\t') ? 'm' : 'n';
    if (!prev) {
      for (int k = 0; k < pending; k++) text_buf_putc(&b, '\n');
    } else if (folded && prev == 'n' && type == 'n') {
      if (pending)
        for (int k = 0; k < pending; k++) text_buf_putc(&b, '\n');
      else
        text_buf_putc(&b, ' ');
    } else {
      for (int k = 0; k <= pending; k++) text_buf_putc(&b, '\n');
    }
    text_buf_put(&b, txt, n);
    prev = type;
    pending = 0;
    y->i++;
  }
  if (chomp == 'c' && prev) text_buf_putc(&b, '\n');
  if (chomp == '+')
    for (int k = 0; k < pending + (prev ? 1 : 0); k++) text_buf_putc(&b, '\n');
  *out = string_value(text_buf_take(&b), line);
  return 0;
}

/* ---- block collections ---- */

static int node(yp *y, int parent, preft_tv **out);

/* Finds "key:" in a line's content; returns the key (heap) and sets *rest to
 * the text after the colon, or NULL when the line is not a mapping entry. */
static int map_key(yp *y, const yline *l, char **key, const char **rest) {
  const char *c = content(l), *end = l->s + l->len;
  *key = NULL;
  if (*c == '"' || *c == '\'') {
    const char *e = c + 1;
    while (e < end && *e != *c) e += (*c == '"' && *e == '\\') ? 2 : 1;
    if (e >= end) return 0;
    const char *after = e + 1;
    while (after < end && *after == ' ') after++;
    if (after >= end || *after != ':' || (after + 1 < end && after[1] != ' ')) return 0;
    /* parse the quoted key with the scalar reader */
    yp sub = *y;
    yline one = {c, (int)(after - c), 0, l->no};
    sub.lines = &one;
    sub.n = 1;
    sub.i = 0;
    preft_tv *v;
    if (quoted_scalar(&sub, c, after, &v) != 0) return -1;
    *key = v->str;
    v->str = NULL;
    preft_tv_free(v);
    *rest = after + 1;
    return 0;
  }
  if (*c == '[' || *c == '{') return 0;
  for (const char *p = c; p < end; p++) {
    if (*p == '#' && p > c && p[-1] == ' ') return 0;
    if (*p == ':' && (p + 1 == end || p[1] == ' ')) {
      const char *ke = p;
      while (ke > c && ke[-1] == ' ') ke--;
      *key = preft_xmalloc((size_t)(ke - c) + 1);
      memcpy(*key, c, (size_t)(ke - c));
      (*key)[ke - c] = 0;
      *rest = p + 1;
      return 0;
    }
  }
  return 0;
}

/* The value after "key:" (rest of the line at [r, end)), for a mapping at indent ind. */
static int map_value(yp *y, const char *r, const char *end, int ind, preft_tv **out) {
  while (r < end && *r == ' ') r++;
  if (r >= end || *r == '#') {
    int line = y->lines[y->i].no;
    y->i++;
    skip_blank(y);
    if (y->i < y->n && y->lines[y->i].indent > ind) return node(y, ind, out);
    if (y->i < y->n && y->lines[y->i].indent == ind && is_item(&y->lines[y->i])) return node(y, ind - 1, out);
    *out = preft_tv_new(PREFT_TV_NULL, line);
    return 0;
  }
  if (*r == '|' || *r == '>') return block_scalar(y, r, end, ind, out);
  return inline_value(y, r, end, ind, out);
}

static int mapping(yp *y, int ind, preft_tv **out) {
  preft_tv *m = preft_tv_new(PREFT_TV_TABLE, y->lines[y->i].no);
  for (;;) {
    skip_blank(y);
    if (y->i >= y->n) break;
    yline *l = &y->lines[y->i];
    if (l->indent < ind) break;
    if (l->indent > ind) {
      yfail(y, l->no, "unexpected indentation (expected a key at column %d)", ind + 1);
      goto fail;
    }
    if (is_item(l)) {
      yfail(y, l->no, "a sequence item where a key was expected");
      goto fail;
    }
    char *key;
    const char *rest;
    if (map_key(y, l, &key, &rest) != 0) goto fail;
    if (!key) {
      yfail(y, l->no, "expected 'key: value'");
      goto fail;
    }
    if (preft_tv_get(m, key)) {
      yfail(y, l->no, "key '%s' is defined twice", key);
      free(key);
      goto fail;
    }
    preft_tv *v;
    if (map_value(y, rest, l->s + l->len, ind, &v) != 0) {
      free(key);
      goto fail;
    }
    preft_tv_put(m, key, v);
    free(key);
  }
  *out = m;
  return 0;
fail:
  preft_tv_free(m);
  return -1;
}

static int sequence(yp *y, int ind, preft_tv **out) {
  preft_tv *a = preft_tv_new(PREFT_TV_ARRAY, y->lines[y->i].no);
  for (;;) {
    skip_blank(y);
    if (y->i >= y->n) break;
    yline *l = &y->lines[y->i];
    if (l->indent < ind || (l->indent == ind && !is_item(l))) break;
    if (l->indent > ind) {
      yfail(y, l->no, "unexpected indentation in a sequence");
      goto fail;
    }
    const char *r = content(l) + 1, *end = l->s + l->len;
    while (r < end && *r == ' ') r++;
    preft_tv *v;
    int rc;
    if (r >= end || *r == '#') {
      int line = l->no;
      y->i++;
      skip_blank(y);
      if (y->i < y->n && y->lines[y->i].indent > ind) {
        rc = node(y, ind, &v);
      } else {
        v = preft_tv_new(PREFT_TV_NULL, line);
        rc = 0;
      }
    } else if (*r == '|' || *r == '>') {
      rc = block_scalar(y, r, end, ind, &v);
    } else {
      l->indent = (int)(r - l->s); /* the item's content becomes a node of its own */
      rc = node(y, ind, &v);
    }
    if (rc != 0) goto fail;
    preft_tv_put(a, NULL, v);
  }
  *out = a;
  return 0;
fail:
  preft_tv_free(a);
  return -1;
}

/* The block node at the next non-blank line (deeper than parent). */
static int node(yp *y, int parent, preft_tv **out) {
  skip_blank(y);
  if (y->i >= y->n) {
    *out = preft_tv_new(PREFT_TV_NULL, y->n ? y->lines[y->n - 1].no : 1);
    return 0;
  }
  if (++y->depth > YAML_MAX_DEPTH)
    return yfail(y, y->lines[y->i].no, "nested deeper than %d", YAML_MAX_DEPTH);
  yline *l = &y->lines[y->i];
  int ind = l->indent, r;
  char *key = NULL;
  const char *rest;
  if (is_item(l)) {
    r = sequence(y, ind, out);
  } else if ((r = map_key(y, l, &key, &rest)) == 0 && key) {
    free(key);
    r = mapping(y, ind, out);
  } else if (r == 0) {
    const char *c = content(l), *end = l->s + l->len;
    if (*c == '|' || *c == '>')
      r = block_scalar(y, c, end, parent, out);
    else
      r = inline_value(y, c, end, parent, out);
  }
  y->depth--;
  return r;
}

int preft_yaml_parse(const char *text, size_t n, const char *file, preft_tv **out, preft_error *err) {
  yp y = {.file = file ? file : "<yaml>", .err = err};
  int cap = 0, no = 0, r = -1;
  const char *p = text, *end = text + n;
  while (p < end) {
    const char *e = memchr(p, '\n', (size_t)(end - p));
    if (!e) e = end;
    no++;
    int len = (int)(e - p);
    if (len > 0 && p[len - 1] == '\r') len--;
    for (int k = 0; k < len; k++) {
      unsigned char c = (unsigned char)p[k];
      if ((c < 0x20 && c != '\t') || c == 0x7f) {
        r = preft_fail(err, "%s:%d: control character 0x%02x", y.file, no, c);
        goto done;
      }
    }
    int ind = 0;
    while (ind < len && p[ind] == ' ') ind++;
    if (ind < len && p[ind] == '\t') {
      int k = ind;
      while (k < len && (p[k] == ' ' || p[k] == '\t')) k++;
      if (k < len && p[k] != '#') {
        r = preft_fail(err, "%s:%d: a tab in the indentation (YAML indents with spaces)", y.file, no);
        goto done;
      }
      ind = len; /* whitespace only */
    }
    if (y.n == cap) {
      cap = cap ? 2 * cap : 64;
      y.lines = preft_xrealloc(y.lines, (size_t)cap * sizeof *y.lines);
    }
    y.lines[y.n++] = (yline){p, len, ind, no};
    p = e + (e < end);
  }
  /* document markers: a leading "---", a trailing "..."; directives and more documents are refused */
  int first = 0;
  while (first < y.n && is_blank(&y.lines[first])) first++;
  for (int k = 0; k < y.n; k++) {
    yline *l = &y.lines[k];
    if (l->indent != 0 || l->len < 1) continue;
    bool dashes = l->len >= 3 && !memcmp(l->s, "---", 3) && (l->len == 3 || l->s[3] == ' ');
    bool dots = l->len >= 3 && !memcmp(l->s, "...", 3) && (l->len == 3 || l->s[3] == ' ');
    if (l->s[0] == '%') {
      r = preft_fail(err, "%s:%d: YAML directives are not supported", y.file, l->no);
      goto done;
    }
    if (dashes && k == first) {
      if (expect_line_end(&y, l->no, l->s + 3, l->s + l->len) != 0) goto done;
      l->indent = l->len; /* now blank */
      continue;
    }
    if (dashes) {
      r = preft_fail(err, "%s:%d: only one YAML document is supported", y.file, l->no);
      goto done;
    }
    if (dots) {
      for (int j = k + 1; j < y.n; j++)
        if (!is_blank(&y.lines[j])) {
          r = preft_fail(err, "%s:%d: text after the end of the document", y.file, y.lines[j].no);
          goto done;
        }
      y.n = k;
      break;
    }
  }
  preft_tv *root;
  if (node(&y, -1, &root) != 0) goto done;
  skip_blank(&y);
  if (y.i < y.n) {
    preft_tv_free(root);
    r = preft_fail(err, "%s:%d: unexpected text (check the indentation)", y.file, y.lines[y.i].no);
    goto done;
  }
  *out = root;
  r = 0;
done:
  free(y.lines);
  return r;
}
