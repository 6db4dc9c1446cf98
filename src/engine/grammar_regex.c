/* grammar_regex.c - regular expressions to GBNF (grammar_front.h): the
 * expression is rewritten into GBNF syntax piece by piece (literals quoted,
 * classes kept, shorthand classes spelled out), and GBNF's compiler does
 * the rest. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "engine/grammar_front.h"
#include "text/unicode.h"

typedef struct {
  const char *re, *p;
  preft_buf out;
  int depth;
  preft_error *err;
} rx;

static int rfail(rx *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int rfail(rx *r, const char *fmt, ...) {
  char msg[300];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return preft_fail(r->err, "regex at offset %d: %s", (int)(r->p - r->re), msg);
}

/* The class body (without brackets) of a shorthand escape, or NULL. */
static const char *shorthand(char c, bool *negated) {
  *negated = c == 'D' || c == 'W' || c == 'S';
  switch (c) {
    case 'd':
    case 'D':
      return "0-9";
    case 'w':
    case 'W':
      return "a-zA-Z0-9_";
    case 's':
    case 'S':
      return " \\t\\n\\r\\f\\x0B";
    default:
      return NULL;
  }
}

/* A single escaped character (after the backslash) as GBNF escape text. */
static int escaped_char(rx *r, char c, char *out, size_t n) {
  switch (c) {
    case 'n':
      snprintf(out, n, "\\n");
      return 0;
    case 't':
      snprintf(out, n, "\\t");
      return 0;
    case 'r':
      snprintf(out, n, "\\r");
      return 0;
    case 'f':
      snprintf(out, n, "\\f");
      return 0;
    case 'v':
      snprintf(out, n, "\\x0B");
      return 0;
    case '0':
      snprintf(out, n, "\\x00");
      return 0;
    default:
      break;
  }
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
    if (c >= '1' && c <= '9') return rfail(r, "backreferences (\\%c) are not supported", c);
    if (c == 'b' || c == 'B' || c == 'A' || c == 'z' || c == 'Z')
      return rfail(r, "the anchor \\%c is not supported", c);
    if (c == 'x' || c == 'u') return rfail(r, "\\%c escapes are not supported; write the character", c);
    return rfail(r, "unknown escape \\%c", c);
  }
  snprintf(out, n, c == '"' || c == '\\' || c == '[' || c == ']' || c == '-' || c == '^' ? "\\%c" : "%c", c);
  return 0;
}

static int parse_alt(rx *r);

static int parse_class(rx *r) {
  r->p++; /* [ */
  preft_buf_putc(&r->out, '[');
  if (*r->p == '^') {
    preft_buf_putc(&r->out, '^');
    r->p++;
  }
  bool first = true;
  while (*r->p && (*r->p != ']' || first)) {
    first = false;
    char c = *r->p;
    if (c == '\\') {
      char e = r->p[1];
      bool neg;
      const char *sh = shorthand(e, &neg);
      if (sh && neg) return rfail(r, "\\%c inside a class is not supported", e);
      if (sh) {
        preft_buf_puts(&r->out, sh);
      } else {
        char t[8];
        if (!e) return rfail(r, "the class is not closed");
        if (escaped_char(r, e, t, sizeof t) != 0) return -1;
        preft_buf_puts(&r->out, t);
      }
      r->p += 2;
    } else if (c == '"') {
      preft_buf_puts(&r->out, "\\\"");
      r->p++;
    } else if (c == '[' && r->p[1] == ':') {
      return rfail(r, "POSIX classes [:name:] are not supported");
    } else if (c == '\n') {
      preft_buf_puts(&r->out, "\\n");
      r->p++;
    } else {
      preft_buf_putc(&r->out, c);
      r->p++;
    }
  }
  if (*r->p != ']') return rfail(r, "the class is not closed");
  r->p++;
  preft_buf_putc(&r->out, ']');
  return 0;
}

/* One atom with its quantifier. */
static int parse_atom(rx *r) {
  char c = *r->p;
  if (c == '(') {
    r->p++;
    if (*r->p == '?') {
      if (r->p[1] == ':') {
        r->p += 2;
      } else if (r->p[1] == 'P' && r->p[2] == '<') {
        const char *e = strchr(r->p, '>');
        if (!e) return rfail(r, "the group name is not closed");
        r->p = e + 1;
      } else if (r->p[1] == '<' && r->p[2] != '=' && r->p[2] != '!') {
        const char *e = strchr(r->p, '>');
        if (!e) return rfail(r, "the group name is not closed");
        r->p = e + 1;
      } else {
        return rfail(r, "lookaround and inline flags (?%c are not supported", r->p[1]);
      }
    }
    if (++r->depth > 100) return rfail(r, "groups nest deeper than 100");
    preft_buf_puts(&r->out, "(");
    if (parse_alt(r) != 0) return -1;
    if (*r->p != ')') return rfail(r, "expected ')'");
    r->p++;
    r->depth--;
    preft_buf_puts(&r->out, ")");
  } else if (c == '[') {
    if (parse_class(r) != 0) return -1;
  } else if (c == '.') {
    r->p++;
    preft_buf_puts(&r->out, "[^\\n]");
  } else if (c == '\\') {
    char e = r->p[1];
    bool neg;
    const char *sh = shorthand(e, &neg);
    if (!e) return rfail(r, "a trailing backslash");
    if (sh) {
      preft_buf_puts(&r->out, neg ? "[^" : "[");
      preft_buf_puts(&r->out, sh);
      preft_buf_putc(&r->out, ']');
    } else {
      char t[8];
      if (escaped_char(r, e, t, sizeof t) != 0) return -1;
      preft_buf_putc(&r->out, '"');
      preft_buf_puts(
          &r->out, strcmp(t, "\\[") && strcmp(t, "\\]") && strcmp(t, "\\-") && strcmp(t, "\\^") ? t : t + 1);
      preft_buf_putc(&r->out, '"');
    }
    r->p += 2;
  } else if (c == '^' || c == '$') {
    return rfail(r, "'%c' is only supported at the start ('^') or end ('$') of the expression", c);
  } else if (c == '*' || c == '+' || c == '?' || c == '{') {
    return rfail(r, "'%c' follows nothing", c);
  } else {
    const char *s = r->p;
    int32_t cp;
    int k = preft_utf8_decode((const uint8_t *)s, strlen(s), &cp);
    if (k <= 0) return rfail(r, "invalid UTF-8");
    preft_gbnf_literal(&r->out, s, (size_t)k);
    r->p += k;
  }
  /* quantifier */
  c = *r->p;
  if (c == '*' || c == '+' || c == '?') {
    preft_buf_putc(&r->out, c);
    r->p++;
  } else if (c == '{') {
    const char *e = r->p + 1;
    while ((*e >= '0' && *e <= '9') || *e == ',' || *e == ' ') e++;
    if (*e != '}' || e == r->p + 1) return rfail(r, "a malformed {m,n} quantifier");
    if (r->p[1] == ',')
      preft_buf_puts(&r->out, "{0");
    else
      preft_buf_putc(&r->out, '{');
    preft_buf_append(&r->out, r->p + (r->p[1] == ',' ? 1 : 1), (size_t)(e - r->p - 1));
    preft_buf_putc(&r->out, '}');
    r->p = e + 1;
  } else {
    return 0;
  }
  if (*r->p == '?' || *r->p == '+') r->p++; /* lazy / possessive: the same strings */
  if (*r->p == '*' || *r->p == '+' || *r->p == '?' || *r->p == '{')
    return rfail(r, "a quantifier follows a quantifier");
  return 0;
}

static int parse_alt(rx *r) {
  for (;;) {
    preft_buf_puts(&r->out, "(");
    bool empty = true;
    while (*r->p && *r->p != '|' && *r->p != ')') {
      if (*r->p == '$' && r->p[1] == 0 && r->depth == 0) {
        r->p++;
        break;
      }
      if (!empty) preft_buf_putc(&r->out, ' ');
      if (parse_atom(r) != 0) return -1;
      empty = false;
    }
    if (empty) preft_buf_puts(&r->out, "\"\"");
    preft_buf_puts(&r->out, ")");
    if (*r->p != '|') return 0;
    r->p++;
    preft_buf_puts(&r->out, " | ");
  }
}

int preft_gbnf_from_regex(const char *re, char **out, preft_error *err) {
  rx r = {.re = re, .p = re, .err = err};
  *out = NULL;
  preft_buf_puts(&r.out, "root ::= ");
  if (*r.p == '^') r.p++;
  if (parse_alt(&r) != 0) {
    preft_buf_free(&r.out);
    return -1;
  }
  if (*r.p) {
    rfail(&r, "unbalanced ')'");
    preft_buf_free(&r.out);
    return -1;
  }
  preft_buf_putc(&r.out, '\n');
  *out = preft_buf_take(&r.out, NULL);
  return 0;
}
