/* jinja_string.c - Python str semantics over UTF-8 bytes: code point
 * counts and offsets, whitespace as str.isspace() sees it, strip, case
 * mapping, replace and split. Shared by filters, tests, methods and
 * string indexing. */
#include <utf8proc.h>

#include "text/jinja_int.h"
#include "text/unicode.h"

size_t preft_jstr_cp_count(const char *s, size_t n) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++) k += ((unsigned char)s[i] & 0xC0) != 0x80;
  return k;
}

/* byte offset of code point index i (clamped) */
size_t preft_jstr_cp_offset(const char *s, size_t n, size_t i) {
  size_t k = 0, b = 0;
  while (b < n && k < i) {
    b++;
    while (b < n && ((unsigned char)s[b] & 0xC0) == 0x80) b++;
    k++;
  }
  return b;
}

bool preft_jstr_is_space(int32_t cp) { return preft_uni_is_whitespace(cp) || (cp >= 0x1C && cp <= 0x1F); }

/* Is cp stripped: one of chars (a string), or whitespace when chars is none? */
static bool strip_hit(int32_t cp, const jv *chars) {
  if (!chars || chars->t != V_STR) return preft_jstr_is_space(cp);
  char enc[4];
  int el = preft_utf8_encode(cp, enc);
  return memmem(chars->s.s, chars->s.n, enc, (size_t)el) != NULL;
}

/* Python str.strip([chars]) on the sides given; chars none (NULL or not a string) strips whitespace. */
jv *preft_jstr_strip(jeval *E, const jv *s, const jv *chars, jstr_side sides) {
  const uint8_t *u = (const uint8_t *)s->s.s;
  size_t a = 0, b = s->s.n;
  int32_t cp;
  int k;
  for (;;) {
    if (!(sides & JSTR_LEFT) || a >= b) break;
    k = preft_utf8_decode(u + a, b - a, &cp);
    if (!k) break;
    if (!strip_hit(cp, chars)) break;
    a += (size_t)k;
  }
  while ((sides & JSTR_RIGHT) && b > a) {
    size_t j = b - 1;
    while (j > a && (u[j] & 0xC0) == 0x80) j--;
    k = preft_utf8_decode(u + j, b - j, &cp);
    if (!k) break;
    if (!strip_hit(cp, chars)) break;
    b = j;
  }
  return preft_jv_str(E, s->s.s + a, b - a);
}

/* Python str.lower/upper/title/capitalize, code point by code point (utf8proc simple case mapping). */
jv *preft_jstr_case(jeval *E, const jv *s, jstr_case_mode mode) {
  jsb b = {0};
  preft_jsb_add(E->c, &b, "", 0);
  const uint8_t *u = (const uint8_t *)s->s.s;
  size_t i = 0;
  bool prev_cased = false, first = true;
  while (i < s->s.n) {
    int32_t cp;
    int k = preft_utf8_decode(u + i, s->s.n - i, &cp);
    if (!k) {
      preft_jsb_add(E->c, &b, (const char *)u + i, 1);
      i++;
      continue;
    }
    int32_t o = cp;
    if (mode == JSTR_LOWER)
      o = utf8proc_tolower(cp);
    else if (mode == JSTR_UPPER)
      o = utf8proc_toupper(cp);
    else if (mode == JSTR_TITLE)
      o = prev_cased ? utf8proc_tolower(cp) : utf8proc_toupper(cp);
    else
      o = first ? utf8proc_toupper(cp) : utf8proc_tolower(cp);
    utf8proc_category_t cat = utf8proc_category(cp);
    prev_cased = cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT;
    first = false;
    char tmp[4];
    preft_jsb_add(E->c, &b, tmp, (size_t)preft_utf8_encode(o, tmp));
    i += (size_t)k;
  }
  return preft_jv_str_take(E, &b);
}

jv *preft_jstr_replace(jeval *E, const jv *s, const jv *from, const jv *to, int64_t count) {
  jsb b = {0};
  preft_jsb_add(E->c, &b, "", 0);
  size_t i = 0;
  int64_t done = 0;
  if (from->s.n == 0) { /* Python inserts between characters */
    for (;;) {
      if (count >= 0 && done >= count) break;
      preft_jsb_add(E->c, &b, to->s.s, to->s.n);
      done++;
      if (i >= s->s.n) break;
      size_t k = (size_t)preft_utf8_seqlen((uint8_t)s->s.s[i]);
      preft_jsb_add(E->c, &b, s->s.s + i, k);
      i += k;
    }
    preft_jsb_add(E->c, &b, s->s.s + i, s->s.n - i);
  } else {
    while (i <= s->s.n) {
      const char *hit =
          (count < 0 || done < count) ? memmem(s->s.s + i, s->s.n - i, from->s.s, from->s.n) : NULL;
      if (!hit) break;
      preft_jsb_add(E->c, &b, s->s.s + i, (size_t)(hit - s->s.s) - i);
      preft_jsb_add(E->c, &b, to->s.s, to->s.n);
      i = (size_t)(hit - s->s.s) + from->s.n;
      done++;
    }
    preft_jsb_add(E->c, &b, s->s.s + i, s->s.n - i);
  }
  return preft_jv_str_take(E, &b);
}

jv *preft_jstr_split(jeval *E, const jv *s, const jv *sep, int64_t maxsplit) {
  jv *l = preft_jv_list(E);
  const char *p = s->s.s;
  size_t n = s->s.n, i = 0;
  if (!sep || sep->t == V_NONE || sep->t == V_UNDEF) {
    const uint8_t *u = (const uint8_t *)p;
    int64_t done = 0;
    for (;;) {
      int32_t cp;
      int k;
      while (i < n && (k = preft_utf8_decode(u + i, n - i, &cp)) && preft_jstr_is_space(cp)) i += (size_t)k;
      if (i >= n) break;
      if (maxsplit >= 0 && done >= maxsplit) {
        size_t e = n;
        while (e > i) { /* rstrip the remainder */
          size_t j = e - 1;
          while (j > i && (u[j] & 0xC0) == 0x80) j--;
          if (!preft_utf8_decode(u + j, e - j, &cp) || !preft_jstr_is_space(cp)) break;
          e = j;
        }
        preft_jv_list_push(E, l, preft_jv_str(E, p + i, e - i));
        break;
      }
      size_t st = i;
      while (i < n && !((k = preft_utf8_decode(u + i, n - i, &cp)) && preft_jstr_is_space(cp)))
        i += k ? (size_t)k : 1;
      preft_jv_list_push(E, l, preft_jv_str(E, p + st, i - st));
      done++;
    }
    return l;
  }
  if (sep->s.n == 0) preft_jfail(E->c, 0, "split: empty separator");
  int64_t done = 0;
  for (;;) {
    const char *hit = (maxsplit < 0 || done < maxsplit) ? memmem(p + i, n - i, sep->s.s, sep->s.n) : NULL;
    if (!hit) {
      preft_jv_list_push(E, l, preft_jv_str(E, p + i, n - i));
      break;
    }
    preft_jv_list_push(E, l, preft_jv_str(E, p + i, (size_t)(hit - p) - i));
    i = (size_t)(hit - p) + sep->s.n;
    done++;
  }
  return l;
}
