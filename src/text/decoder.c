/* decoder.c - the decoders of tokenizer.json (ByteLevel, Metaspace,
 * ByteFallback, Fuse, Strip, Replace, WordPiece, BPEDecoder, Sequence), run
 * as a chain over token strings the way the Rust tokenizers crate does
 * (decode_chain), then joined. */
#include <string.h>

#include "text/tokenizer_int.h"

static const char *jstr(const cJSON *j, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

int preft_decoder_from_json(preft_decoder **out, const cJSON *j, preft_error *err) {
  *out = NULL;
  if (!j || cJSON_IsNull(j)) return 0;
  const char *type = jstr(j, "type");
  if (!type) return preft_fail(err, "decoder: missing string field 'type'");
  preft_decoder *d = preft_xcalloc(1, sizeof *d);
  const cJSON *v;
  if (!strcmp(type, "ByteLevel"))
    d->type = DEC_BYTELEVEL;
  else if (!strcmp(type, "ByteFallback"))
    d->type = DEC_BYTEFALLBACK;
  else if (!strcmp(type, "Fuse"))
    d->type = DEC_FUSE;
  else if (!strcmp(type, "Metaspace")) {
    d->type = DEC_METASPACE;
    const char *r = jstr(j, "replacement");
    if (!r) r = "\xE2\x96\x81";
    if (!*r || strlen(r) >= sizeof d->replacement) {
      preft_fail(err, "decoder Metaspace: 'replacement' must be one character");
      goto fail;
    }
    strcpy(d->replacement, r);
    const char *scheme = jstr(j, "prepend_scheme");
    if (scheme)
      d->prepend_scheme = !strcmp(scheme, "never")   ? PREPEND_NEVER
                          : !strcmp(scheme, "first") ? PREPEND_FIRST
                                                     : PREPEND_ALWAYS;
    else
      d->prepend_scheme = cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(j, "add_prefix_space"))
                              ? PREPEND_NEVER
                              : PREPEND_ALWAYS;
  } else if (!strcmp(type, "Strip")) {
    d->type = DEC_STRIP;
    const char *c = jstr(j, "content");
    d->content = preft_xstrdup(c ? c : " ");
    v = cJSON_GetObjectItemCaseSensitive(j, "start");
    d->start = cJSON_IsNumber(v) ? v->valueint : 0;
    v = cJSON_GetObjectItemCaseSensitive(j, "stop");
    d->stop = cJSON_IsNumber(v) ? v->valueint : 0;
  } else if (!strcmp(type, "Replace")) {
    d->type = DEC_REPLACE;
    const char *c = jstr(j, "content");
    d->content = preft_xstrdup(c ? c : "");
    if (preft_pattern_from_json(&d->pattern, cJSON_GetObjectItemCaseSensitive(j, "pattern"),
                                "decoder Replace", err))
      goto fail;
  } else if (!strcmp(type, "WordPiece")) {
    d->type = DEC_WORDPIECE;
    const char *p = jstr(j, "prefix");
    d->content = preft_xstrdup(p ? p : "##");
    d->cleanup = !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(j, "cleanup"));
  } else if (!strcmp(type, "BPEDecoder")) {
    d->type = DEC_BPE;
    const char *s = jstr(j, "suffix");
    d->content = preft_xstrdup(s ? s : "</w>");
  } else if (!strcmp(type, "Sequence")) {
    d->type = DEC_SEQUENCE;
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "decoders");
    if (!cJSON_IsArray(arr)) {
      preft_fail(err, "decoder Sequence: missing array 'decoders'");
      goto fail;
    }
    d->children = preft_xcalloc((size_t)cJSON_GetArraySize(arr) + 1, sizeof *d->children);
    const cJSON *c;
    cJSON_ArrayForEach(c, arr) {
      if (preft_decoder_from_json(&d->children[d->n_children], c, err)) {
        preft_fail_prefix(err, "decoder Sequence[%d]", d->n_children);
        goto fail;
      }
      if (d->children[d->n_children]) d->n_children++;
    }
  } else {
    preft_fail(
        err,
        "decoder: unsupported type '%s' (supported: ByteLevel Metaspace ByteFallback Fuse Strip Replace "
        "WordPiece BPEDecoder Sequence)",
        type);
    goto fail;
  }
  *out = d;
  return 0;
fail:
  preft_decoder_free(d);
  return -1;
}

void preft_decoder_free(preft_decoder *d) {
  if (!d) return;
  for (int i = 0; i < d->n_children; i++) preft_decoder_free(d->children[i]);
  free(d->children);
  preft_pattern_free(&d->pattern);
  free(d->content);
  free(d);
}

/* Replaces every occurrence of `from` by `to` in b. */
static void replace_str(preft_buf *b, const char *from, size_t fl, const char *to, size_t tl) {
  if (!fl || b->len < fl || !memmem(b->data, b->len, from, fl)) return;
  preft_buf o = {0};
  size_t i = 0;
  while (i < b->len) {
    const char *hit = memmem(b->data + i, b->len - i, from, fl);
    if (!hit) break;
    preft_buf_append(&o, b->data + i, (size_t)(hit - (b->data + i)));
    preft_buf_append(&o, to, tl);
    i = (size_t)(hit - b->data) + fl;
  }
  preft_buf_append(&o, b->data + i, b->len - i);
  preft_buf_free(b);
  *b = o;
}

void preft_cleanup_spaces(preft_buf *b) {
  static const char *pairs[][2] = {{" .", "."},     {" ?", "?"},     {" !", "!"},   {" ,", ","},
                                   {" ' ", "'"},    {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"},
                                   {" 've", "'ve"}, {" 're", "'re"}};
  for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++)
    replace_str(b, pairs[i][0], strlen(pairs[i][0]), pairs[i][1], strlen(pairs[i][1]));
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

/* Runs one decoder; tokens[0..*n) may be replaced and *n may shrink. */
static void run_one(const preft_decoder *d, preft_buf *tok, size_t *n) {
  switch (d->type) {
    case DEC_BYTELEVEL: {
      preft_buf bytes = {0}, out = {0};
      for (size_t i = 0; i < *n; i++) {
        size_t mark = bytes.len;
        if (!preft_bytelevel_to_bytes(tok[i].data ? tok[i].data : "", tok[i].len, &bytes)) {
          bytes.len = mark;
          preft_buf_append(&bytes, tok[i].data, tok[i].len);
        }
        preft_buf_free(&tok[i]);
      }
      preft_utf8_append_lossy(&out, (const uint8_t *)bytes.data, bytes.len);
      preft_buf_free(&bytes);
      preft_buf_reserve(&out, 0);
      tok[0] = out;
      *n = 1;
      break;
    }
    case DEC_METASPACE:
      for (size_t i = 0; i < *n; i++) {
        replace_str(&tok[i], d->replacement, strlen(d->replacement), " ", 1);
        if (i == 0 && d->prepend_scheme != PREPEND_NEVER && tok[i].len && tok[i].data[0] == ' ') {
          memmove(tok[i].data, tok[i].data + 1, tok[i].len);
          tok[i].len--;
        }
      }
      break;
    case DEC_BYTEFALLBACK: {
      size_t w = 0;
      preft_buf pend = {0};
      for (size_t i = 0; i <= *n; i++) {
        int byte = -1;
        if (i < *n && tok[i].len == 6 && !memcmp(tok[i].data, "<0x", 3) && tok[i].data[5] == '>') {
          int h = hexval(tok[i].data[3]), l = hexval(tok[i].data[4]);
          if (h >= 0 && l >= 0) byte = h * 16 + l;
        }
        if (byte >= 0) {
          preft_buf_putc(&pend, (char)byte);
          preft_buf_free(&tok[i]);
          continue;
        }
        if (pend.len) {
          preft_buf s = {0};
          if (preft_utf8_validate((const uint8_t *)pend.data, pend.len) == pend.len)
            preft_buf_append(&s, pend.data, pend.len);
          else
            for (size_t k = 0; k < pend.len; k++) preft_buf_append(&s, "\xEF\xBF\xBD", 3);
          pend.len = 0;
          tok[w++] = s; /* w <= i: slot i-... already consumed */
        }
        if (i < *n) tok[w++] = tok[i];
      }
      preft_buf_free(&pend);
      *n = w;
      break;
    }
    case DEC_FUSE: {
      preft_buf o = {0};
      for (size_t i = 0; i < *n; i++) {
        preft_buf_append(&o, tok[i].data, tok[i].len);
        preft_buf_free(&tok[i]);
      }
      preft_buf_reserve(&o, 0);
      tok[0] = o;
      *n = 1;
      break;
    }
    case DEC_STRIP: {
      size_t cl = strlen(d->content);
      for (size_t i = 0; i < *n; i++) {
        size_t a = 0, b = tok[i].len;
        for (int k = 0; k < d->start && b - a >= cl && cl && !memcmp(tok[i].data + a, d->content, cl); k++)
          a += cl;
        for (int k = 0; k < d->stop && b - a >= cl && cl && !memcmp(tok[i].data + b - cl, d->content, cl);
             k++)
          b -= cl;
        memmove(tok[i].data, tok[i].data + a, b - a);
        tok[i].len = b - a;
        if (tok[i].data) tok[i].data[tok[i].len] = 0;
      }
      break;
    }
    case DEC_REPLACE:
      for (size_t i = 0; i < *n; i++) {
        if (d->pattern.re) {
          preft_buf o = {0};
          size_t pos = 0, ms, me;
          pcre2_match_data *md = preft_pattern_match_data(&d->pattern);
          while (pos < tok[i].len &&
                 preft_pattern_find(&d->pattern, md, tok[i].data, tok[i].len, pos, &ms, &me) && me > ms) {
            preft_buf_append(&o, tok[i].data + pos, ms - pos);
            preft_buf_puts(&o, d->content);
            pos = me;
          }
          preft_buf_append(&o, tok[i].data + pos, tok[i].len - pos);
          pcre2_match_data_free(md);
          preft_buf_free(&tok[i]);
          tok[i] = o;
        } else {
          replace_str(&tok[i], d->pattern.literal, d->pattern.literal_len, d->content, strlen(d->content));
        }
      }
      break;
    case DEC_WORDPIECE: {
      size_t pl = strlen(d->content);
      for (size_t i = 0; i < *n; i++) {
        if (i != 0) {
          if (pl && tok[i].len >= pl && !memcmp(tok[i].data, d->content, pl)) {
            memmove(tok[i].data, tok[i].data + pl, tok[i].len - pl + 1);
            tok[i].len -= pl;
          } else {
            preft_buf o = {0};
            preft_buf_putc(&o, ' ');
            preft_buf_append(&o, tok[i].data, tok[i].len);
            preft_buf_free(&tok[i]);
            tok[i] = o;
          }
        }
        if (d->cleanup) preft_cleanup_spaces(&tok[i]);
      }
      break;
    }
    case DEC_BPE:
      for (size_t i = 0; i < *n; i++)
        replace_str(&tok[i], d->content, strlen(d->content), i + 1 == *n ? "" : " ", i + 1 == *n ? 0 : 1);
      break;
    case DEC_SEQUENCE:
      for (int c = 0; c < d->n_children; c++) run_one(d->children[c], tok, n);
      break;
  }
}

void preft_decode_chain(const preft_decoder *d, preft_buf *tokens, size_t n, preft_buf *out) {
  if (n == 0) return;
  if (!d) { /* no decoder: tokens joined by spaces (Hugging Face default) */
    for (size_t i = 0; i < n; i++) {
      if (i) preft_buf_putc(out, ' ');
      preft_buf_append(out, tokens[i].data, tokens[i].len);
      preft_buf_free(&tokens[i]);
    }
    return;
  }
  size_t m = n;
  run_one(d, tokens, &m);
  for (size_t i = 0; i < m; i++) {
    preft_buf_append(out, tokens[i].data, tokens[i].len);
    preft_buf_free(&tokens[i]);
  }
}
