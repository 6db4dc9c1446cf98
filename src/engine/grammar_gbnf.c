/* grammar_gbnf.c - GBNF text to a byte-level preft_grammar (grammar.h).
 *
 *   root  ::= item ("," ws item)*      # comments run to the end of the line
 *   item  ::= "literal" | [a-z0-9_] | [^"\\] | . | name | (group) | x? | x* | x+ | x{2,5}
 *
 * A rule ends at the end of its line unless inside parentheses or right
 * after a '|'. Code points are compiled to their UTF-8 bytes (see
 * grammar.h); \xHH, \uHHHH and \UHHHHHHHH name code points. */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/grammar.h"

#define MAX_REPEAT 4096
#define MAX_ELEMS (1 << 22)

typedef struct {
  preft_gelem *v;
  int n, cap;
} elist;

typedef struct {
  char *name;
  elist *alts;
  int n_alts, cap_alts;
  bool defined;
  int line; /* first use or definition, for errors */
} brule;

typedef struct {
  const char *p;
  int line;
  const char *line_start;
  brule *rules;
  int n_rules, cap_rules;
  uint64_t (*sets)[4];
  int n_sets, cap_sets;
  int any_rule; /* the rule of '.', -1 until used */
  long total_elems;
  preft_error *err;
  bool failed;
} gb;

static int gfail(gb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int gfail(gb *b, const char *fmt, ...) {
  if (b->failed) return -1;
  char msg[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  b->failed = true;
  return preft_fail(b->err, "grammar line %d column %d: %s", b->line, (int)(b->p - b->line_start) + 1, msg);
}

static void push(gb *b, elist *l, uint8_t type, int32_t arg) {
  if (l->n == l->cap) {
    l->cap = l->cap ? 2 * l->cap : 8;
    l->v = preft_xrealloc(l->v, sizeof *l->v * (size_t)l->cap);
  }
  l->v[l->n++] = (preft_gelem){type, arg};
  if (++b->total_elems > MAX_ELEMS && !b->failed)
    gfail(b, "the grammar is too large (over %d elements)", MAX_ELEMS);
}

static int add_set(gb *b, const uint64_t set[4]) {
  for (int i = 0; i < b->n_sets; i++)
    if (!memcmp(b->sets[i], set, sizeof b->sets[i])) return i;
  if (b->n_sets == b->cap_sets) {
    b->cap_sets = b->cap_sets ? 2 * b->cap_sets : 32;
    b->sets = preft_xrealloc(b->sets, sizeof *b->sets * (size_t)b->cap_sets);
  }
  memcpy(b->sets[b->n_sets], set, sizeof b->sets[0]);
  return b->n_sets++;
}

static int byte_set_range(gb *b, int lo, int hi) {
  uint64_t s[4] = {0};
  for (int c = lo; c <= hi; c++) s[c >> 6] |= 1ull << (c & 63);
  return add_set(b, s);
}

static int new_rule(gb *b, const char *name, size_t len) {
  if (b->n_rules == b->cap_rules) {
    b->cap_rules = b->cap_rules ? 2 * b->cap_rules : 16;
    b->rules = preft_xrealloc(b->rules, sizeof *b->rules * (size_t)b->cap_rules);
  }
  brule *r = &b->rules[b->n_rules];
  memset(r, 0, sizeof *r);
  r->name = preft_xmalloc(len + 1);
  memcpy(r->name, name, len);
  r->name[len] = 0;
  r->line = b->line;
  return b->n_rules++;
}

static int rule_by_name(gb *b, const char *name, size_t len) {
  for (int i = 0; i < b->n_rules; i++)
    if (strlen(b->rules[i].name) == len && !memcmp(b->rules[i].name, name, len)) return i;
  return new_rule(b, name, len);
}

/* A helper rule named after its parent: "parent-N". */
static int helper_rule(gb *b, int parent) {
  char name[160];
  snprintf(name, sizeof name, "%.120s-%d", b->rules[parent].name, b->n_rules);
  int r = new_rule(b, name, strlen(name));
  b->rules[r].defined = true;
  return r;
}

static elist *new_alt(brule *r) {
  if (r->n_alts == r->cap_alts) {
    r->cap_alts = r->cap_alts ? 2 * r->cap_alts : 4;
    r->alts = preft_xrealloc(r->alts, sizeof *r->alts * (size_t)r->cap_alts);
  }
  elist *l = &r->alts[r->n_alts++];
  memset(l, 0, sizeof *l);
  return l;
}

/* ---- lexing ------------------------------------------------------------------------ */

static void skip_space(gb *b, bool newline_ok) {
  for (;;) {
    char c = *b->p;
    if (c == ' ' || c == '\t' || c == '\r') {
      b->p++;
    } else if (c == '#') {
      while (*b->p && *b->p != '\n') b->p++;
    } else if (c == '\n' && newline_ok) {
      b->p++;
      b->line++;
      b->line_start = b->p;
    } else {
      return;
    }
  }
}

static bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

static int hexdig(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* One UTF-8 code point from s; returns its length (1 for an invalid byte, taken as itself). */
static int utf8_decode(const unsigned char *s, uint32_t *cp) {
  if (s[0] < 0x80) return *cp = s[0], 1;
  int n = s[0] >= 0xF0 ? 4 : s[0] >= 0xE0 ? 3 : s[0] >= 0xC0 ? 2 : 1;
  if (n == 1) return *cp = s[0], 1;
  uint32_t v = s[0] & (0x3F >> (n - 1));
  for (int i = 1; i < n; i++) {
    if ((s[i] & 0xC0) != 0x80) return *cp = s[0], 1;
    v = v << 6 | (s[i] & 0x3F);
  }
  *cp = v;
  return n;
}

static int utf8_encode(uint32_t cp, uint8_t *out) {
  if (cp < 0x80) return out[0] = (uint8_t)cp, 1;
  if (cp < 0x800) {
    out[0] = (uint8_t)(0xC0 | cp >> 6);
    out[1] = (uint8_t)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (uint8_t)(0xE0 | cp >> 12);
    out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (uint8_t)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (uint8_t)(0xF0 | cp >> 18);
  out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
  out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
  out[3] = (uint8_t)(0x80 | (cp & 0x3F));
  return 4;
}

/* One character of a literal or class, escapes decoded. */
static int parse_char(gb *b, uint32_t *cp) {
  const unsigned char *s = (const unsigned char *)b->p;
  if (!*s || *s == '\n') return gfail(b, "unexpected end of line inside a literal or class");
  if (*s != '\\') {
    b->p += utf8_decode(s, cp);
    return 0;
  }
  char e = (char)s[1];
  int digits = 0;
  switch (e) {
    case 'n':
      *cp = '\n';
      break;
    case 'r':
      *cp = '\r';
      break;
    case 't':
      *cp = '\t';
      break;
    case 'f':
      *cp = '\f';
      break;
    case 'b':
      *cp = '\b';
      break;
    case '0':
      *cp = 0;
      break;
    case 'x':
      digits = 2;
      break;
    case 'u':
      digits = 4;
      break;
    case 'U':
      digits = 8;
      break;
    case '\\':
    case '"':
    case '\'':
    case '[':
    case ']':
    case '-':
    case '^':
    case '/':
    case '.':
      *cp = (uint32_t)e;
      break;
    default:
      return gfail(b, "unknown escape '\\%c'", e ? e : '0');
  }
  b->p += 2;
  if (digits) {
    uint32_t v = 0;
    for (int i = 0; i < digits; i++) {
      int h = hexdig(b->p[i]);
      if (h < 0) return gfail(b, "'\\%c' needs %d hex digits", e, digits);
      v = v * 16 + (uint32_t)h;
    }
    if (v > 0x10FFFF) return gfail(b, "code point U+%X is past U+10FFFF", v);
    b->p += digits;
    *cp = v;
  }
  return 0;
}

/* ---- character classes -------------------------------------------------------------- */

typedef struct {
  uint32_t lo, hi;
} cprange;

static int cmp_range(const void *a, const void *b) {
  const cprange *x = a, *y = b;
  return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* A sequence of byte ranges (one UTF-8 length). */
typedef struct {
  uint8_t lo[4], hi[4];
  int n;
} byteseq;

typedef struct {
  byteseq *v;
  int n, cap;
} seqlist;

static void seq_push(seqlist *l, byteseq s) {
  if (l->n == l->cap) {
    l->cap = l->cap ? 2 * l->cap : 16;
    l->v = preft_xrealloc(l->v, sizeof *l->v * (size_t)l->cap);
  }
  l->v[l->n++] = s;
}

/* Splits [lo, hi] into ranges whose UTF-8 forms are products of byte ranges
 * (the construction of RE2 / Rust's utf8 sequences). */
static void utf8_split(uint32_t lo, uint32_t hi, seqlist *out) {
  if (lo > hi) return;
  static const uint32_t bounds[] = {0x7F, 0x7FF, 0xFFFF};
  for (int i = 0; i < 3; i++)
    if (lo <= bounds[i] && hi > bounds[i]) {
      utf8_split(lo, bounds[i], out);
      utf8_split(bounds[i] + 1, hi, out);
      return;
    }
  for (int i = 1; i < 4; i++) {
    uint32_t m = (1u << (6 * i)) - 1;
    if ((lo & ~m) != (hi & ~m)) {
      if ((lo & m) != 0) {
        utf8_split(lo, lo | m, out);
        utf8_split((lo | m) + 1, hi, out);
        return;
      }
      if ((hi & m) != m) {
        utf8_split(lo, (hi & ~m) - 1, out);
        utf8_split(hi & ~m, hi, out);
        return;
      }
    }
  }
  byteseq s;
  uint8_t a[4], z[4];
  s.n = utf8_encode(lo, a);
  utf8_encode(hi, z);
  for (int i = 0; i < s.n; i++) {
    s.lo[i] = a[i];
    s.hi[i] = z[i];
  }
  seq_push(out, s);
}

/* The element(s) matching one code point of the ranges: a byte set when all
 * are ASCII, else a reference to a helper rule of byte-range sequences. */
static void emit_ranges(gb *b, int parent, cprange *r, int n, bool negate, elist *out) {
  qsort(r, (size_t)n, sizeof *r, cmp_range);
  int m = 0; /* merge */
  for (int i = 0; i < n; i++) {
    if (m && r[i].lo <= r[m - 1].hi + 1) {
      if (r[i].hi > r[m - 1].hi) r[m - 1].hi = r[i].hi;
    } else {
      r[m++] = r[i];
    }
  }
  cprange *use = r, *big = NULL;
  if (negate) {
    big = preft_xmalloc(sizeof *big * (size_t)(m + 1));
    int k = 0;
    uint32_t next = 0;
    for (int i = 0; i < m; i++) {
      if (r[i].lo > next) big[k++] = (cprange){next, r[i].lo - 1};
      next = r[i].hi + 1;
    }
    if (next <= 0x10FFFF) big[k++] = (cprange){next, 0x10FFFF};
    use = big;
    m = k;
  }
  seqlist seqs = {0};
  for (int i = 0; i < m; i++) { /* no surrogates */
    uint32_t lo = use[i].lo, hi = use[i].hi;
    if (lo < 0xD800 && hi > 0xDFFF) {
      utf8_split(lo, 0xD7FF, &seqs);
      utf8_split(0xE000, hi, &seqs);
    } else if (hi < 0xD800 || lo > 0xDFFF) {
      utf8_split(lo, hi, &seqs);
    } else {
      if (lo < 0xD800) utf8_split(lo, 0xD7FF, &seqs);
      if (hi > 0xDFFF) utf8_split(0xE000, hi, &seqs);
    }
  }
  free(big);
  uint64_t one[4] = {0};
  bool any_one = false, multi = false;
  for (int i = 0; i < seqs.n; i++) {
    if (seqs.v[i].n == 1) {
      for (int c = seqs.v[i].lo[0]; c <= seqs.v[i].hi[0]; c++) one[c >> 6] |= 1ull << (c & 63);
      any_one = true;
    } else {
      multi = true;
    }
  }
  if (!multi) {
    push(b, out, GE_BYTES, add_set(b, one));
  } else {
    int h = helper_rule(b, parent);
    if (any_one) push(b, new_alt(&b->rules[h]), GE_BYTES, add_set(b, one));
    for (int i = 0; i < seqs.n; i++) {
      if (seqs.v[i].n == 1) continue;
      elist *alt = new_alt(&b->rules[h]);
      for (int k = 0; k < seqs.v[i].n; k++)
        push(b, alt, GE_BYTES, byte_set_range(b, seqs.v[i].lo[k], seqs.v[i].hi[k]));
    }
    for (int i = 0; i < b->rules[h].n_alts; i++) push(b, &b->rules[h].alts[i], GE_END, 0);
    push(b, out, GE_RULE, h);
  }
  free(seqs.v);
}

static int parse_class(gb *b, int parent, elist *out) {
  b->p++; /* [ */
  bool negate = false;
  if (*b->p == '^') {
    negate = true;
    b->p++;
  }
  cprange *r = NULL;
  int n = 0, cap = 0;
  while (*b->p != ']') {
    uint32_t lo, hi;
    if (parse_char(b, &lo) != 0) break;
    hi = lo;
    if (b->p[0] == '-' && b->p[1] != ']' && b->p[1]) {
      b->p++;
      if (parse_char(b, &hi) != 0) break;
      if (hi < lo) {
        gfail(b, "character range U+%04X-U+%04X is reversed", lo, hi);
        break;
      }
    }
    if (n == cap) {
      cap = cap ? 2 * cap : 8;
      r = preft_xrealloc(r, sizeof *r * (size_t)cap);
    }
    r[n++] = (cprange){lo, hi};
  }
  if (b->failed) {
    free(r);
    return -1;
  }
  b->p++; /* ] */
  if (n == 0 && !negate) {
    free(r);
    return gfail(b, "empty character class []");
  }
  emit_ranges(b, parent, r ? r : (cprange[1]){{0, 0}}, n, negate, out);
  free(r);
  return 0;
}

/* ---- sequences and repetition ------------------------------------------------------ */

static int parse_alternates(gb *b, int rule, bool nested);

static void copy_elems(gb *b, elist *dst, const preft_gelem *src, int n) {
  for (int i = 0; i < n; i++) push(b, dst, src[i].type, src[i].arg);
}

/* Replaces the last item out[start..n) with its repetition {lo, hi}
 * (hi < 0: unbounded). */
static int repeat(gb *b, int parent, elist *out, int start, int lo, int hi) {
  int len = out->n - start;
  preft_gelem *item = preft_xmalloc(sizeof *item * (size_t)len);
  memcpy(item, out->v + start, sizeof *item * (size_t)len);
  out->n = start;
  for (int i = 0; i < lo; i++) copy_elems(b, out, item, len);
  if (hi < 0) { /* R ::= item R | ε */
    int r = helper_rule(b, parent);
    elist *a = new_alt(&b->rules[r]);
    copy_elems(b, a, item, len);
    push(b, a, GE_RULE, r);
    push(b, a, GE_END, 0);
    push(b, new_alt(&b->rules[r]), GE_END, 0);
    push(b, out, GE_RULE, r);
  } else if (hi > lo) { /* O_k ::= item O_{k-1} | ε, O_1 ::= item | ε */
    int prev = -1;
    for (int k = 0; k < hi - lo; k++) {
      int r = helper_rule(b, parent);
      elist *a = new_alt(&b->rules[r]);
      copy_elems(b, a, item, len);
      if (prev >= 0) push(b, a, GE_RULE, prev);
      push(b, a, GE_END, 0);
      push(b, new_alt(&b->rules[r]), GE_END, 0);
      prev = r;
      if (b->failed) break;
    }
    push(b, out, GE_RULE, prev);
  }
  free(item);
  return b->failed ? -1 : 0;
}

static int parse_int(gb *b, int *out) {
  if (*b->p < '0' || *b->p > '9') return gfail(b, "expected a number in {m,n}");
  long v = 0;
  while (*b->p >= '0' && *b->p <= '9') {
    v = v * 10 + (*b->p++ - '0');
    if (v > MAX_REPEAT) return gfail(b, "repetition count above %d", MAX_REPEAT);
  }
  *out = (int)v;
  return 0;
}

static int parse_sequence(gb *b, int rule, elist *out, bool nested) {
  for (;;) {
    skip_space(b, nested);
    int start = out->n;
    char c = *b->p;
    if (c == '"') {
      b->p++;
      while (*b->p != '"') {
        uint32_t cp;
        if (parse_char(b, &cp) != 0) return -1;
        uint8_t u[4];
        int k = utf8_encode(cp, u);
        for (int i = 0; i < k; i++) push(b, out, GE_BYTES, byte_set_range(b, u[i], u[i]));
      }
      b->p++;
      if (out->n == start) continue; /* "" matches the empty string */
    } else if (c == '[') {
      if (parse_class(b, rule, out) != 0) return -1;
    } else if (c == '.') {
      b->p++;
      if (b->any_rule < 0) {
        cprange all = {0, 0x10FFFF};
        elist tmp = {0};
        emit_ranges(b, rule, &all, 1, false, &tmp);
        b->any_rule = tmp.v[0].arg;
        free(tmp.v);
      }
      push(b, out, GE_RULE, b->any_rule);
    } else if (c == '(') {
      b->p++;
      int h = helper_rule(b, rule);
      if (parse_alternates(b, h, true) != 0) return -1;
      skip_space(b, true);
      if (*b->p != ')') return gfail(b, "expected ')'");
      b->p++;
      push(b, out, GE_RULE, h);
    } else if (is_name_char(c)) {
      const char *s = b->p;
      while (is_name_char(*b->p)) b->p++;
      const char *e = b->p;
      skip_space(b, nested);
      if (b->p[0] == ':' && b->p[1] == ':' && b->p[2] == '=') {
        if (nested) return gfail(b, "a rule definition inside parentheses");
        b->p = s; /* the next rule starts here: this sequence ended at a line break */
        return gfail(b, "expected a line break before the next rule");
      }
      b->p = e;
      push(b, out, GE_RULE, rule_by_name(b, s, (size_t)(e - s)));
    } else {
      return b->failed ? -1 : 0; /* end of the sequence: '|', ')', a line break, the end */
    }
    skip_space(b, nested);
    c = *b->p;
    int lo = -1, hi = -1;
    if (c == '*') {
      lo = 0;
      b->p++;
    } else if (c == '+') {
      lo = 1;
      b->p++;
    } else if (c == '?') {
      lo = 0;
      hi = 1;
      b->p++;
    } else if (c == '{') {
      b->p++;
      skip_space(b, false);
      if (parse_int(b, &lo) != 0) return -1;
      skip_space(b, false);
      hi = lo;
      if (*b->p == ',') {
        b->p++;
        skip_space(b, false);
        hi = -1;
        if (*b->p != '}' && parse_int(b, &hi) != 0) return -1;
        skip_space(b, false);
      }
      if (*b->p != '}') return gfail(b, "expected '}'");
      b->p++;
      if (hi >= 0 && hi < lo) return gfail(b, "{%d,%d}: the maximum is below the minimum", lo, hi);
    }
    if (lo >= 0 && repeat(b, rule, out, start, lo, hi) != 0) return -1;
    if (b->failed) return -1;
  }
}

static int parse_alternates(gb *b, int rule, bool nested) {
  for (;;) {
    new_alt(&b->rules[rule]);
    int idx = b->rules[rule].n_alts - 1;
    elist tmp = {0};
    if (parse_sequence(b, rule, &tmp, nested) != 0) {
      free(tmp.v);
      return -1;
    }
    push(b, &tmp, GE_END, 0);
    b->rules[rule].alts[idx] = tmp; /* parsed aside: helper rules may move b->rules */
    skip_space(b, nested);
    if (*b->p != '|') return 0;
    b->p++;
    skip_space(b, true);
  }
}

/* ---- checks and the flat form ------------------------------------------------------ */

static bool *nullable_rules(const gb *b) {
  bool *nul = preft_xcalloc((size_t)b->n_rules, sizeof *nul);
  for (bool changed = true; changed;) {
    changed = false;
    for (int r = 0; r < b->n_rules; r++) {
      if (nul[r]) continue;
      for (int a = 0; a < b->rules[r].n_alts && !nul[r]; a++) {
        const elist *l = &b->rules[r].alts[a];
        bool all = true;
        for (int i = 0; i < l->n && all; i++)
          if (l->v[i].type == GE_BYTES || (l->v[i].type == GE_RULE && !nul[l->v[i].arg])) all = false;
        if (all) nul[r] = changed = true;
      }
    }
  }
  return nul;
}

/* Depth-first search for a rule reachable from itself through leftmost
 * (possibly nullable-prefixed) references. color: 0 new, 1 on the path, 2 done. */
static int left_rec(const gb *b, const bool *nul, int r, uint8_t *color) {
  color[r] = 1;
  for (int a = 0; a < b->rules[r].n_alts; a++) {
    const elist *l = &b->rules[r].alts[a];
    for (int i = 0; i < l->n; i++) {
      if (l->v[i].type != GE_RULE) break;
      int s = l->v[i].arg;
      if (color[s] == 1) return s;
      if (color[s] == 0) {
        int bad = left_rec(b, nul, s, color);
        if (bad >= 0) return bad;
      }
      if (!nul[s]) break;
    }
  }
  color[r] = 2;
  return -1;
}

static void gb_free(gb *b) {
  for (int r = 0; r < b->n_rules; r++) {
    free(b->rules[r].name);
    for (int a = 0; a < b->rules[r].n_alts; a++) free(b->rules[r].alts[a].v);
    free(b->rules[r].alts);
  }
  free(b->rules);
  free(b->sets);
}

int preft_grammar_parse(const char *text, preft_grammar **out, preft_error *err) {
  *out = NULL;
  gb b = {.p = text, .line = 1, .line_start = text, .any_rule = -1, .err = err};
  for (;;) {
    skip_space(&b, true);
    if (!*b.p) break;
    if (!is_name_char(*b.p)) {
      gfail(&b, "expected a rule name");
      break;
    }
    const char *s = b.p;
    while (is_name_char(*b.p)) b.p++;
    int r = rule_by_name(&b, s, (size_t)(b.p - s));
    if (b.rules[r].defined) {
      gfail(&b, "rule '%s' is defined twice", b.rules[r].name);
      break;
    }
    b.rules[r].defined = true;
    b.rules[r].line = b.line;
    skip_space(&b, false);
    if (strncmp(b.p, "::=", 3) != 0) {
      gfail(&b, "expected '::=' after the rule name '%s'", b.rules[r].name);
      break;
    }
    b.p += 3;
    skip_space(&b, true);
    if (parse_alternates(&b, r, false) != 0) break;
    skip_space(&b, false);
    if (*b.p && *b.p != '\n') {
      gfail(&b, "unexpected '%c'", *b.p);
      break;
    }
  }
  int root = -1;
  for (int r = 0; r < b.n_rules && !b.failed; r++) {
    if (!b.rules[r].defined) {
      b.line = b.rules[r].line;
      b.line_start = b.p;
      preft_fail(err, "grammar: rule '%s' is used but never defined", b.rules[r].name);
      b.failed = true;
    }
    if (!strcmp(b.rules[r].name, "root")) root = r;
  }
  if (!b.failed && root < 0) {
    preft_fail(err, "grammar: no 'root' rule");
    b.failed = true;
  }
  if (!b.failed) {
    bool *nul = nullable_rules(&b);
    uint8_t *color = preft_xcalloc((size_t)b.n_rules, 1);
    for (int r = 0; r < b.n_rules && !b.failed; r++) {
      int bad = color[r] ? -1 : left_rec(&b, nul, r, color);
      if (bad >= 0) {
        preft_fail(err,
                   "grammar: rule '%s' is left-recursive (or repeats something that can match the empty "
                   "string)",
                   b.rules[bad].name);
        b.failed = true;
      }
    }
    free(nul);
    free(color);
  }
  if (b.failed) {
    gb_free(&b);
    return -1;
  }
  preft_grammar *g = preft_xcalloc(1, sizeof *g);
  g->refs = 1;
  g->n_rules = b.n_rules;
  g->root = root;
  g->rule_alt = preft_xmalloc(sizeof(int32_t) * (size_t)(b.n_rules + 1));
  g->rule_names = preft_xmalloc(sizeof(char *) * (size_t)b.n_rules);
  int n_alts = 0, n_elems = 0;
  for (int r = 0; r < b.n_rules; r++) {
    n_alts += b.rules[r].n_alts;
    for (int a = 0; a < b.rules[r].n_alts; a++) n_elems += b.rules[r].alts[a].n;
  }
  g->alt_pos = preft_xmalloc(sizeof(int32_t) * (size_t)(n_alts ? n_alts : 1));
  g->elems = preft_xmalloc(sizeof(preft_gelem) * (size_t)(n_elems ? n_elems : 1));
  int ai = 0;
  for (int r = 0; r < b.n_rules; r++) {
    g->rule_alt[r] = ai;
    g->rule_names[r] = b.rules[r].name;
    b.rules[r].name = NULL;
    for (int a = 0; a < b.rules[r].n_alts; a++) {
      g->alt_pos[ai++] = g->n_elems;
      memcpy(g->elems + g->n_elems, b.rules[r].alts[a].v, sizeof(preft_gelem) * (size_t)b.rules[r].alts[a].n);
      g->n_elems += b.rules[r].alts[a].n;
    }
  }
  g->rule_alt[b.n_rules] = ai;
  g->sets = b.sets;
  g->n_sets = b.n_sets;
  b.sets = NULL;
  gb_free(&b);
  *out = g;
  return 0;
}

preft_grammar *preft_grammar_ref(preft_grammar *g) {
  __atomic_add_fetch(&g->refs, 1, __ATOMIC_RELAXED);
  return g;
}

void preft_grammar_unref(preft_grammar *g) {
  if (!g || __atomic_sub_fetch(&g->refs, 1, __ATOMIC_ACQ_REL) != 0) return;
  for (int r = 0; r < g->n_rules; r++) free(g->rule_names[r]);
  free(g->rule_names);
  free(g->elems);
  free(g->alt_pos);
  free(g->rule_alt);
  free(g->sets);
  free(g);
}
