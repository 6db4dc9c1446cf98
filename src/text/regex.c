/* regex.c - the patterns of tokenizer.json ({"Regex": ...} run by PCRE2 with
 * UTF + Unicode properties and JIT; {"String": ...} matched literally), and
 * span lists.
 *
 * Hugging Face compiles its regexes with Oniguruma, whose \s is the Unicode
 * White_Space property; \s and \S are rewritten to \p{White_Space} and
 * \P{White_Space} so PCRE2 agrees on every code point (including U+0085).
 */
#include <string.h>

#include "text/tokenizer_int.h"

void preft_spans_push(preft_spans *s, size_t off, size_t len) {
  if (s->n == s->cap) {
    s->cap = s->cap ? s->cap * 2 : 64;
    s->v = preft_xrealloc(s->v, s->cap * sizeof *s->v);
  }
  s->v[s->n++] = (preft_span){off, len};
}

void preft_spans_free(preft_spans *s) {
  free(s->v);
  memset(s, 0, sizeof *s);
}

int preft_pattern_compile_regex(preft_pattern *p, const char *regex, preft_error *err) {
  memset(p, 0, sizeof *p);
  preft_buf src = {0};
  for (const char *c = regex; *c; c++) {
    if (c[0] == '\\' && c[1]) {
      if (c[1] == 's')
        preft_buf_puts(&src, "\\p{White_Space}");
      else if (c[1] == 'S')
        preft_buf_puts(&src, "\\P{White_Space}");
      else
        preft_buf_append(&src, c, 2);
      c++;
    } else {
      preft_buf_putc(&src, *c);
    }
  }
  int ecode;
  PCRE2_SIZE eoff;
  p->re = pcre2_compile((PCRE2_SPTR)src.data, src.len, PCRE2_UTF | PCRE2_UCP, &ecode, &eoff, NULL);
  preft_buf_free(&src);
  if (!p->re) {
    char msg[256];
    pcre2_get_error_message(ecode, (PCRE2_UCHAR *)msg, sizeof msg);
    return preft_fail(err, "regex /%s/ does not compile: %s (near offset %zu)", regex, msg, (size_t)eoff);
  }
  pcre2_jit_compile(p->re, PCRE2_JIT_COMPLETE); /* best effort: falls back to the interpreter */
  return 0;
}

int preft_pattern_from_json(preft_pattern *p, const cJSON *j, const char *what, preft_error *err) {
  memset(p, 0, sizeof *p);
  if (!cJSON_IsObject(j))
    return preft_fail(err, "%s: 'pattern' must be an object {\"Regex\"|\"String\": ...}", what);
  const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "Regex");
  const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "String");
  if (cJSON_IsString(r)) {
    if (preft_pattern_compile_regex(p, r->valuestring, err)) return preft_fail_prefix(err, "%s", what);
    return 0;
  }
  if (cJSON_IsString(s)) {
    p->literal = preft_xstrdup(s->valuestring);
    p->literal_len = strlen(s->valuestring);
    return 0;
  }
  return preft_fail(err, "%s: 'pattern' needs a string \"Regex\" or \"String\"", what);
}

void preft_pattern_free(preft_pattern *p) {
  if (p->re) pcre2_code_free(p->re);
  free(p->literal);
  memset(p, 0, sizeof *p);
}

pcre2_match_data *preft_pattern_match_data(const preft_pattern *p) {
  return p->re ? pcre2_match_data_create_from_pattern(p->re, NULL) : NULL;
}

bool preft_pattern_find(const preft_pattern *p, pcre2_match_data *md, const char *s, size_t n, size_t start,
                        size_t *mstart, size_t *mend) {
  if (start > n) return false;
  if (!p->re) {
    if (p->literal_len == 0) return false;
    const char *hit = memmem(s + start, n - start, p->literal, p->literal_len);
    if (!hit) return false;
    *mstart = (size_t)(hit - s);
    *mend = *mstart + p->literal_len;
    return true;
  }
  int rc = pcre2_jit_match(p->re, (PCRE2_SPTR)s, n, start, 0, md, NULL);
  if (rc == PCRE2_ERROR_JIT_BADOPTION || rc == PCRE2_ERROR_JIT_STACKLIMIT || rc < -1)
    rc = pcre2_match(p->re, (PCRE2_SPTR)s, n, start, PCRE2_NO_UTF_CHECK, md, NULL);
  if (rc < 0) return false;
  PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
  *mstart = ov[0];
  *mend = ov[1];
  return true;
}
