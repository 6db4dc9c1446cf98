/* normalizer.c - the normalizers of tokenizer.json: NFC, NFD, NFKC, NFKD,
 * Lowercase, Replace, Prepend, Strip, StripAccents, BertNormalizer and
 * Sequence. Input and output are valid UTF-8; ASCII-only text skips the
 * Unicode normal forms (they are the identity on ASCII). */
#include <string.h>
#include <utf8proc.h>

#include "text/tokenizer_int.h"

static const char *jstr(const cJSON *j, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int jbool(const cJSON *j, const char *key, int dflt) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
  if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
  return dflt; /* absent or null */
}

int preft_normalizer_from_json(preft_normalizer **out, const cJSON *j, preft_error *err) {
  *out = NULL;
  if (!j || cJSON_IsNull(j)) return 0;
  const char *type = jstr(j, "type");
  if (!type) return preft_fail(err, "normalizer: missing string field 'type'");
  preft_normalizer *n = preft_xcalloc(1, sizeof *n);
  if (!strcmp(type, "NFC"))
    n->type = NORM_NFC;
  else if (!strcmp(type, "NFD"))
    n->type = NORM_NFD;
  else if (!strcmp(type, "NFKC"))
    n->type = NORM_NFKC;
  else if (!strcmp(type, "NFKD"))
    n->type = NORM_NFKD;
  else if (!strcmp(type, "Lowercase"))
    n->type = NORM_LOWERCASE;
  else if (!strcmp(type, "StripAccents"))
    n->type = NORM_STRIP_ACCENTS;
  else if (!strcmp(type, "Strip")) {
    n->type = NORM_STRIP;
    n->strip_left = jbool(j, "strip_left", 1);
    n->strip_right = jbool(j, "strip_right", 1);
  } else if (!strcmp(type, "Prepend")) {
    n->type = NORM_PREPEND;
    const char *p = jstr(j, "prepend");
    if (!p) goto missing;
    n->content = preft_xstrdup(p);
  } else if (!strcmp(type, "Replace")) {
    n->type = NORM_REPLACE;
    const char *c = jstr(j, "content");
    if (!c) goto missing;
    n->content = preft_xstrdup(c);
    if (preft_pattern_from_json(&n->pattern, cJSON_GetObjectItemCaseSensitive(j, "pattern"),
                                "normalizer Replace", err))
      goto fail;
  } else if (!strcmp(type, "BertNormalizer")) {
    n->type = NORM_BERT;
    n->clean_text = jbool(j, "clean_text", 1);
    n->handle_chinese = jbool(j, "handle_chinese_chars", 1);
    n->lowercase = jbool(j, "lowercase", 1);
    n->strip_accents = jbool(j, "strip_accents", n->lowercase); /* null: follows lowercase */
  } else if (!strcmp(type, "Sequence")) {
    n->type = NORM_SEQUENCE;
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "normalizers");
    if (!cJSON_IsArray(arr)) goto missing;
    int k = cJSON_GetArraySize(arr);
    n->children = preft_xcalloc((size_t)k + 1, sizeof *n->children);
    const cJSON *c;
    cJSON_ArrayForEach(c, arr) {
      if (preft_normalizer_from_json(&n->children[n->n_children], c, err)) {
        preft_fail_prefix(err, "normalizer Sequence[%d]", n->n_children);
        goto fail;
      }
      if (n->children[n->n_children]) n->n_children++;
    }
  } else {
    preft_fail(err,
               "normalizer: unsupported type '%s' (supported: NFC NFD NFKC NFKD Lowercase Replace Prepend "
               "Strip StripAccents BertNormalizer Sequence)",
               type);
    goto fail;
  }
  *out = n;
  return 0;
missing:
  preft_fail(err, "normalizer %s: missing or malformed field", type);
fail:
  preft_normalizer_free(n);
  return -1;
}

void preft_normalizer_free(preft_normalizer *n) {
  if (!n) return;
  for (int i = 0; i < n->n_children; i++) preft_normalizer_free(n->children[i]);
  free(n->children);
  preft_pattern_free(&n->pattern);
  free(n->content);
  free(n);
}

static bool is_ascii(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] >= 0x80) return false;
  return true;
}

static void unicode_form(const char *s, size_t n, int opts, preft_buf *out) {
  out->len = 0;
  if (is_ascii(s, n)) {
    preft_buf_append(out, s, n);
    return;
  }
  utf8proc_uint8_t *res = NULL;
  utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &res,
                                    (utf8proc_option_t)(UTF8PROC_STABLE | opts));
  if (r < 0) { /* cannot happen for valid UTF-8; keep the text */
    preft_buf_append(out, s, n);
    return;
  }
  preft_buf_append(out, res, (size_t)r);
  free(res);
}

/* Full lowercase mapping as Rust's str::to_lowercase: per code point simple
 * mapping, plus U+0130 -> "i\u0307" and the final-sigma rule. */
static void lowercase(const char *s, size_t n, preft_buf *out) {
  out->len = 0;
  preft_buf_reserve(out, n);
  const uint8_t *u = (const uint8_t *)s;
  size_t i = 0;
  char tmp[4];
  while (i < n) {
    if (u[i] < 0x80) {
      char c = (char)u[i];
      preft_buf_putc(out, c >= 'A' && c <= 'Z' ? (char)(c + 32) : c);
      i++;
      continue;
    }
    int32_t cp;
    int k = preft_utf8_decode(u + i, n - i, &cp);
    if (!k) {
      preft_buf_putc(out, (char)u[i++]);
      continue;
    }
    if (cp == 0x130) {
      preft_buf_append(out, "i\xCC\x87", 3);
    } else if (cp == 0x3A3) {
      /* final sigma: preceded by a letter and not followed by one */
      bool before = false, after = false;
      if (i > 0) {
        size_t j = i - 1;
        while (j > 0 && (u[j] & 0xC0) == 0x80) j--;
        int32_t pc;
        if (preft_utf8_decode(u + j, i - j, &pc))
          before =
              utf8proc_category(pc) >= UTF8PROC_CATEGORY_LU && utf8proc_category(pc) <= UTF8PROC_CATEGORY_LO;
      }
      int32_t nc;
      if (i + 2 < n && preft_utf8_decode(u + i + 2, n - i - 2, &nc))
        after =
            utf8proc_category(nc) >= UTF8PROC_CATEGORY_LU && utf8proc_category(nc) <= UTF8PROC_CATEGORY_LO;
      preft_buf_append(out, (before && !after) ? "\xCF\x82" : "\xCF\x83", 2);
    } else {
      preft_buf_append(out, tmp, (size_t)preft_utf8_encode(utf8proc_tolower(cp), tmp));
    }
    i += (size_t)k;
  }
}

static void replace_all(const preft_pattern *p, const char *content, const char *s, size_t n,
                        preft_buf *out) {
  out->len = 0;
  size_t clen = strlen(content), pos = 0, ms, me;
  pcre2_match_data *md = preft_pattern_match_data(p);
  while (pos <= n && preft_pattern_find(p, md, s, n, pos, &ms, &me)) {
    preft_buf_append(out, s + pos, ms - pos);
    preft_buf_append(out, content, clen);
    if (me == ms) { /* empty match: copy one character and move on */
      if (ms >= n) {
        pos = n + 1;
        break;
      }
      size_t k = (size_t)preft_utf8_seqlen((uint8_t)s[ms]);
      preft_buf_append(out, s + ms, k);
      me = ms + k;
    }
    pos = me;
  }
  if (pos < n) preft_buf_append(out, s + pos, n - pos);
  if (md) pcre2_match_data_free(md);
  if (!out->data) preft_buf_reserve(out, 0);
}

static void strip_marks(const char *s, size_t n, preft_buf *out) {
  out->len = 0;
  const uint8_t *u = (const uint8_t *)s;
  size_t i = 0;
  preft_buf_reserve(out, n);
  while (i < n) {
    size_t at = i;
    int32_t cp = preft_utf8_next(u, n, &i);
    if (cp < 0 || !preft_uni_is_mark_nonspacing(cp)) preft_buf_append(out, s + at, i - at);
  }
}

static void bert_clean(const preft_normalizer *nz, const char *s, size_t n, preft_buf *out) {
  out->len = 0;
  const uint8_t *u = (const uint8_t *)s;
  size_t i = 0;
  preft_buf_reserve(out, n);
  while (i < n) {
    size_t at = i;
    int32_t cp = preft_utf8_next(u, n, &i);
    if (cp < 0) cp = u[at]; /* an invalid byte counts as its own value */
    if (nz->clean_text) {
      if (cp == 0 || cp == 0xFFFD) continue;
      bool ws = cp == '\t' || cp == '\n' || cp == '\r' || preft_uni_is_whitespace(cp);
      if (!ws && (preft_uni_is_control(cp) || utf8proc_category(cp) == UTF8PROC_CATEGORY_CN)) continue;
      if (ws) {
        preft_buf_putc(out, ' ');
        continue;
      }
    }
    bool pad = nz->handle_chinese && preft_uni_is_cjk(cp);
    if (pad) preft_buf_putc(out, ' ');
    preft_buf_append(out, s + at, i - at);
    if (pad) preft_buf_putc(out, ' ');
  }
}

static bool is_ws_at(const uint8_t *u, size_t n, size_t i, int *k) {
  int32_t cp;
  *k = preft_utf8_decode(u + i, n - i, &cp);
  if (!*k) {
    *k = 1;
    return false;
  }
  return preft_uni_is_whitespace(cp);
}

static void apply_one(const preft_normalizer *nz, preft_buf *cur, preft_buf *tmp) {
  switch (nz->type) {
    case NORM_NFC:
      unicode_form(cur->data, cur->len, UTF8PROC_COMPOSE, tmp);
      break;
    case NORM_NFD:
      unicode_form(cur->data, cur->len, UTF8PROC_DECOMPOSE, tmp);
      break;
    case NORM_NFKC:
      unicode_form(cur->data, cur->len, UTF8PROC_COMPOSE | UTF8PROC_COMPAT, tmp);
      break;
    case NORM_NFKD:
      unicode_form(cur->data, cur->len, UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT, tmp);
      break;
    case NORM_LOWERCASE:
      lowercase(cur->data, cur->len, tmp);
      break;
    case NORM_REPLACE:
      replace_all(&nz->pattern, nz->content, cur->data, cur->len, tmp);
      break;
    case NORM_STRIP_ACCENTS:
      strip_marks(cur->data, cur->len, tmp);
      break;
    case NORM_PREPEND:
      tmp->len = 0;
      if (cur->len) { /* Hugging Face prepends only to non-empty text */
        preft_buf_puts(tmp, nz->content);
        preft_buf_append(tmp, cur->data, cur->len);
      }
      break;
    case NORM_STRIP: {
      const uint8_t *u = (const uint8_t *)cur->data;
      size_t a = 0, b = cur->len;
      int k;
      if (nz->strip_left)
        while (a < b && is_ws_at(u, b, a, &k)) a += (size_t)k;
      if (nz->strip_right)
        while (b > a) {
          size_t j = b - 1;
          while (j > a && (u[j] & 0xC0) == 0x80) j--;
          if (!is_ws_at(u, b, j, &k)) break;
          b = j;
        }
      tmp->len = 0;
      preft_buf_append(tmp, cur->data + a, b - a);
      break;
    }
    case NORM_BERT:
      bert_clean(nz, cur->data, cur->len, tmp);
      if (nz->strip_accents) {
        unicode_form(tmp->data, tmp->len, UTF8PROC_DECOMPOSE, cur);
        strip_marks(cur->data, cur->len, tmp);
      }
      if (nz->lowercase) {
        lowercase(tmp->data, tmp->len, cur);
        return;
      }
      break;
    case NORM_SEQUENCE:
      for (int i = 0; i < nz->n_children; i++) apply_one(nz->children[i], cur, tmp);
      return;
  }
  preft_buf t = *cur;
  *cur = *tmp;
  *tmp = t;
}

void preft_normalize(const preft_normalizer *nz, const char *s, size_t n, preft_buf *out) {
  out->len = 0;
  preft_buf_append(out, s, n);
  if (!nz) return;
  preft_buf tmp = {0};
  apply_one(nz, out, &tmp);
  preft_buf_free(&tmp);
}
