/* rl_verify.c - the deterministic verifier: does a completion match the
 * answer of its prompt (exact, contains, regex, number, first line, first
 * number), or how much of it (digits: partial credit place by place; see
 * preft_rl_match in rl_task.h). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <ctype.h>
#include <math.h>
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "rl/rl_task.h"

static const char *const MATCH_NAMES[] = {"exact",      "contains",     "regex", "number",
                                          "first_line", "first_number", "digits"};
enum { N_MATCH = sizeof MATCH_NAMES / sizeof MATCH_NAMES[0] };

const char *preft_rl_match_name(preft_rl_match m) {
  return (int)m >= 0 && (int)m < N_MATCH ? MATCH_NAMES[m] : "unknown";
}

int preft_rl_match_parse(const char *name) {
  for (int i = 0; i < N_MATCH; i++)
    if (!strcmp(name, MATCH_NAMES[i])) return i;
  return -1;
}

static int is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* [*s, *e) trimmed of surrounding whitespace */
static void trim(const char **s, const char **e) {
  while (*s < *e && is_space(**s)) (*s)++;
  while (*e > *s && is_space((*e)[-1])) (*e)--;
}

static int equal_trimmed(const char *s, const char *e, const char *answer) {
  const char *as = answer, *ae = answer + strlen(answer);
  trim(&s, &e);
  trim(&as, &ae);
  return e - s == ae - as && memcmp(s, as, (size_t)(e - s)) == 0;
}

/* The numbers of a text: an optional '-', digits, optionally '.' and
 * digits. Finds the first (last == 0) or last one; returns 0 if none. */
static int find_number(const char *s, int last, double *out) {
  int found = 0;
  for (const char *p = s; *p;) {
    if (!isdigit((unsigned char)*p)) {
      p++;
      continue;
    }
    const char *start = p > s && p[-1] == '-' ? p - 1 : p;
    while (isdigit((unsigned char)*p)) p++;
    if (*p == '.' && isdigit((unsigned char)p[1])) {
      p++;
      while (isdigit((unsigned char)*p)) p++;
    }
    *out = strtod(start, NULL);
    found = 1;
    if (!last) break;
  }
  return found;
}

static int number_matches(const char *completion, const char *answer, int last) {
  char *end;
  double want = strtod(answer, &end), got;
  if (end == answer || !isfinite(want)) return 0;
  if (!find_number(completion, last, &got)) return 0;
  return got == want || fabs(got - want) <= 1e-9 * fmax(1.0, fabs(want));
}

static int regex_matches(const char *completion, const char *pattern) {
  int code;
  PCRE2_SIZE off;
  pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &code, &off, NULL);
  if (!re) return 0;
  pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
  /* a completion that is not valid UTF-8 (a model can stop inside a
   * character) is matched byte-wise instead of failing */
  int rc = pcre2_match(re, (PCRE2_SPTR)completion, strlen(completion), 0, 0, md, NULL);
  if (rc <= PCRE2_ERROR_UTF8_ERR1 && rc >= PCRE2_ERROR_UTF8_ERR21) {
    pcre2_code_free(re);
    pcre2_match_data_free(md);
    re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, 0, &code, &off, NULL);
    if (!re) return 0;
    md = pcre2_match_data_create_from_pattern(re, NULL);
    rc = pcre2_match(re, (PCRE2_SPTR)completion, strlen(completion), 0, 0, md, NULL);
  }
  pcre2_match_data_free(md);
  pcre2_code_free(re);
  return rc >= 0;
}

/* [*s, *e): the completion's first line after leading blanks, trimmed */
static void first_line(const char *c, const char **s, const char **e) {
  *s = c;
  while (**s && is_space(**s)) (*s)++; /* " 82\n": the line after leading blanks */
  *e = strchr(*s, '\n');
  if (!*e) *e = *s + strlen(*s);
  trim(s, e);
}

/* The share of places where the first line and the answer agree, over the
 * longer of the two: "28" for "28" 1, "29" 0.5, "281" 2/3, "" 0. */
static double digits_credit(const char *c, const char *answer) {
  const char *s, *e, *as = answer, *ae = answer + strlen(answer);
  first_line(c, &s, &e);
  trim(&as, &ae);
  size_t n = (size_t)(e - s), na = (size_t)(ae - as), longer = n > na ? n : na, same = 0;
  if (longer == 0) return 1.0;
  for (size_t i = 0; i < n && i < na; i++) same += s[i] == as[i];
  return same == longer ? 1.0 : (double)same / (double)longer;
}

double preft_rl_verify(const preft_rl_prompt *p, const char *completion) {
  const char *a = p->answer, *c = completion;
  switch (p->match) {
    case PREFT_RL_MATCH_EXACT:
      return equal_trimmed(c, c + strlen(c), a);
    case PREFT_RL_MATCH_CONTAINS:
      return strstr(c, a) != NULL;
    case PREFT_RL_MATCH_REGEX:
      return regex_matches(c, a);
    case PREFT_RL_MATCH_NUMBER:
      return number_matches(c, a, 1);
    case PREFT_RL_MATCH_FIRST_NUMBER:
      return number_matches(c, a, 0);
    case PREFT_RL_MATCH_FIRST_LINE: {
      const char *s, *e;
      first_line(c, &s, &e);
      return equal_trimmed(s, e, a);
    }
    case PREFT_RL_MATCH_DIGITS:
      return digits_credit(c, a);
  }
  return 0.0;
}
