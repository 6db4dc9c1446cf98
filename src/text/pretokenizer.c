/* pretokenizer.c - the pre-tokenizers of tokenizer.json: Split (regex or
 * string, all five behaviours, invert), ByteLevel, Metaspace, Digits,
 * Whitespace, WhitespaceSplit, Punctuation, BertPreTokenizer, Sequence.
 *
 * A pre-tokenizer turns spans of a buffer into smaller spans (pieces); the
 * ones that rewrite text (Metaspace, ByteLevel's prefix space) append the new
 * text to the buffer and point into it. Splitting follows the Rust
 * tokenizers crate: find matches, label the text as (span, is_match) runs,
 * then merge or drop runs by behaviour.
 */
#include <string.h>
#include <utf8proc.h>

#include "text/tokenizer_int.h"

static const char *GPT2_REGEX =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char *WHITESPACE_REGEX = "\\w+|[^\\w\\s]+";

static const char *jstr(const cJSON *j, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int jbool(const cJSON *j, const char *key, int dflt) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
  return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

static int parse_behavior(const char *b, preft_split_behavior *out) {
  if (!b) return -1;
  if (!strcmp(b, "Removed"))
    *out = SPLIT_REMOVED;
  else if (!strcmp(b, "Isolated"))
    *out = SPLIT_ISOLATED;
  else if (!strcmp(b, "MergedWithPrevious"))
    *out = SPLIT_MERGED_PREV;
  else if (!strcmp(b, "MergedWithNext"))
    *out = SPLIT_MERGED_NEXT;
  else if (!strcmp(b, "Contiguous"))
    *out = SPLIT_CONTIGUOUS;
  else
    return -1;
  return 0;
}

int preft_pretokenizer_from_json(preft_pretokenizer **out, const cJSON *j, preft_error *err) {
  *out = NULL;
  if (!j || cJSON_IsNull(j)) return 0;
  const char *type = jstr(j, "type");
  if (!type) return preft_fail(err, "pre_tokenizer: missing string field 'type'");
  preft_pretokenizer *p = preft_xcalloc(1, sizeof *p);
  if (!strcmp(type, "Split")) {
    p->type = PRE_SPLIT;
    if (preft_pattern_from_json(&p->pattern, cJSON_GetObjectItemCaseSensitive(j, "pattern"),
                                "pre_tokenizer Split", err))
      goto fail;
    if (parse_behavior(jstr(j, "behavior"), &p->behavior)) {
      preft_fail(err,
                 "pre_tokenizer Split: 'behavior' must be Removed, Isolated, MergedWithPrevious, "
                 "MergedWithNext or Contiguous");
      goto fail;
    }
    p->invert = jbool(j, "invert", 0);
  } else if (!strcmp(type, "ByteLevel")) {
    p->type = PRE_BYTELEVEL;
    p->add_prefix_space = jbool(j, "add_prefix_space", 1);
    p->use_regex = jbool(j, "use_regex", 1);
    if (p->use_regex && preft_pattern_compile_regex(&p->pattern, GPT2_REGEX, err)) goto fail;
  } else if (!strcmp(type, "Metaspace")) {
    p->type = PRE_METASPACE;
    const char *r = jstr(j, "replacement");
    if (!r) r = "\xE2\x96\x81";
    if (strlen(r) >= sizeof p->replacement || !*r) {
      preft_fail(err, "pre_tokenizer Metaspace: 'replacement' must be one character");
      goto fail;
    }
    strcpy(p->replacement, r);
    const char *scheme = jstr(j, "prepend_scheme");
    if (scheme) {
      if (!strcmp(scheme, "always"))
        p->prepend_scheme = PREPEND_ALWAYS;
      else if (!strcmp(scheme, "first"))
        p->prepend_scheme = PREPEND_FIRST;
      else if (!strcmp(scheme, "never"))
        p->prepend_scheme = PREPEND_NEVER;
      else {
        preft_fail(err, "pre_tokenizer Metaspace: unknown prepend_scheme '%s'", scheme);
        goto fail;
      }
    } else {
      p->prepend_scheme = jbool(j, "add_prefix_space", 1) ? PREPEND_ALWAYS : PREPEND_NEVER;
    }
    p->split = jbool(j, "split", 1);
  } else if (!strcmp(type, "Digits")) {
    p->type = PRE_DIGITS;
    p->individual_digits = jbool(j, "individual_digits", 0);
  } else if (!strcmp(type, "Whitespace")) {
    p->type = PRE_WHITESPACE;
    if (preft_pattern_compile_regex(&p->pattern, WHITESPACE_REGEX, err)) goto fail;
  } else if (!strcmp(type, "WhitespaceSplit")) {
    p->type = PRE_WHITESPACE_SPLIT;
  } else if (!strcmp(type, "BertPreTokenizer")) {
    p->type = PRE_BERT;
  } else if (!strcmp(type, "Punctuation")) {
    p->type = PRE_PUNCTUATION;
    const char *b = jstr(j, "behavior");
    p->behavior = SPLIT_ISOLATED;
    if (b && parse_behavior(b, &p->behavior)) {
      preft_fail(err, "pre_tokenizer Punctuation: unknown behavior '%s'", b);
      goto fail;
    }
  } else if (!strcmp(type, "Sequence")) {
    p->type = PRE_SEQUENCE;
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "pretokenizers");
    if (!cJSON_IsArray(arr)) {
      preft_fail(err, "pre_tokenizer Sequence: missing array 'pretokenizers'");
      goto fail;
    }
    p->children = preft_xcalloc((size_t)cJSON_GetArraySize(arr) + 1, sizeof *p->children);
    const cJSON *c;
    cJSON_ArrayForEach(c, arr) {
      if (preft_pretokenizer_from_json(&p->children[p->n_children], c, err)) {
        preft_fail_prefix(err, "pre_tokenizer Sequence[%d]", p->n_children);
        goto fail;
      }
      if (p->children[p->n_children]) p->n_children++;
    }
  } else {
    preft_fail(err,
               "pre_tokenizer: unsupported type '%s' (supported: Split ByteLevel Metaspace Digits Whitespace "
               "WhitespaceSplit Punctuation BertPreTokenizer Sequence)",
               type);
    goto fail;
  }
  *out = p;
  return 0;
fail:
  preft_pretokenizer_free(p);
  return -1;
}

void preft_pretokenizer_free(preft_pretokenizer *p) {
  if (!p) return;
  for (int i = 0; i < p->n_children; i++) preft_pretokenizer_free(p->children[i]);
  free(p->children);
  preft_pattern_free(&p->pattern);
  free(p);
}

bool preft_pretokenizer_is_bytelevel(const preft_pretokenizer *p) {
  if (!p) return false;
  if (p->type == PRE_BYTELEVEL) return true;
  for (int i = 0; i < p->n_children; i++)
    if (preft_pretokenizer_is_bytelevel(p->children[i])) return true;
  return false;
}

/* (offset, length, is_match) runs covering a span. */
typedef struct run {
  size_t off, len;
  bool match;
} run;

typedef struct runs {
  run *v;
  size_t n, cap;
} runs;

static void runs_push(runs *r, size_t off, size_t len, bool match) {
  if (r->n == r->cap) {
    r->cap = r->cap ? r->cap * 2 : 32;
    r->v = preft_xrealloc(r->v, r->cap * sizeof *r->v);
  }
  r->v[r->n++] = (run){.off = off, .len = len, .match = match};
}

/* Applies a split behaviour to labelled runs and appends non-empty pieces. */
static void emit_runs(runs *r, preft_split_behavior b, bool invert, preft_spans *out) {
  if (invert)
    for (size_t i = 0; i < r->n; i++) r->v[i].match = !r->v[i].match;
  size_t first_new = out->n;
  bool prev = false;
  switch (b) {
    case SPLIT_REMOVED:
      for (size_t i = 0; i < r->n; i++)
        if (!r->v[i].match && r->v[i].len) preft_spans_push(out, r->v[i].off, r->v[i].len);
      return;
    case SPLIT_ISOLATED:
      for (size_t i = 0; i < r->n; i++)
        if (r->v[i].len) preft_spans_push(out, r->v[i].off, r->v[i].len);
      return;
    case SPLIT_CONTIGUOUS:  /* runs of the same label join */
    case SPLIT_MERGED_PREV: /* a match joins the non-match before it */
      for (size_t i = 0; i < r->n; i++) {
        bool join = b == SPLIT_CONTIGUOUS ? r->v[i].match == prev : r->v[i].match && !prev;
        if (join && out->n > first_new) {
          preft_span *last = &out->v[out->n - 1];
          last->len = r->v[i].off + r->v[i].len - last->off;
        } else {
          preft_spans_push(out, r->v[i].off, r->v[i].len);
        }
        prev = r->v[i].match;
      }
      break;
    case SPLIT_MERGED_NEXT: {
      /* fold from the right, then reverse what was appended */
      for (size_t k = r->n; k-- > 0;) {
        if (r->v[k].match && !prev && out->n > first_new) {
          preft_span *last = &out->v[out->n - 1];
          last->len = last->off + last->len - r->v[k].off;
          last->off = r->v[k].off;
        } else {
          preft_spans_push(out, r->v[k].off, r->v[k].len);
        }
        prev = r->v[k].match;
      }
      for (size_t a = first_new, z = out->n; a + 1 < z; a++, z--) {
        preft_span t = out->v[a];
        out->v[a] = out->v[z - 1];
        out->v[z - 1] = t;
      }
      break;
    }
  }
  /* drop empty pieces */
  size_t w = first_new;
  for (size_t i = first_new; i < out->n; i++)
    if (out->v[i].len) out->v[w++] = out->v[i];
  out->n = w;
}

static void pattern_runs(const preft_pattern *pat, pcre2_match_data *md, const char *s, preft_span sp,
                         runs *r) {
  r->n = 0;
  size_t pos = 0, prev = 0, ms, me;
  const char *t = s + sp.off;
  while (pos <= sp.len && preft_pattern_find(pat, md, t, sp.len, pos, &ms, &me)) {
    if (ms > prev) runs_push(r, sp.off + prev, ms - prev, false);
    runs_push(r, sp.off + ms, me - ms, true);
    prev = me;
    if (me == ms) {
      if (ms >= sp.len) break;
      pos = ms + (size_t)preft_utf8_seqlen((uint8_t)t[ms]);
    } else {
      pos = me;
    }
  }
  if (prev < sp.len) runs_push(r, sp.off + prev, sp.len - prev, false);
}

typedef bool (*char_pred)(int32_t cp);

static bool pred_ws(int32_t cp) { return preft_uni_is_whitespace(cp); }
static bool pred_punct(int32_t cp) { return preft_uni_is_punct(cp); }
static bool pred_numeric(int32_t cp) {
  utf8proc_category_t c = utf8proc_category(cp);
  return c == UTF8PROC_CATEGORY_ND || c == UTF8PROC_CATEGORY_NL || c == UTF8PROC_CATEGORY_NO;
}

/* Every character satisfying pred is its own match (Rust's split by char). */
static void char_runs(char_pred pred, const char *s, preft_span sp, runs *r) {
  r->n = 0;
  const uint8_t *u = (const uint8_t *)s + sp.off;
  size_t i = 0, prev = 0;
  while (i < sp.len) {
    size_t at = i;
    int32_t cp = preft_utf8_next(u, sp.len, &i);
    if (cp >= 0 && pred(cp)) {
      if (at > prev) runs_push(r, sp.off + prev, at - prev, false);
      runs_push(r, sp.off + at, i - at, true);
      prev = i;
    }
  }
  if (prev < sp.len) runs_push(r, sp.off + prev, sp.len - prev, false);
}

/* Metaspace: replace spaces, maybe prepend, then split before each
 * replacement character (MergedWithNext). */
static void metaspace(const preft_pretokenizer *p, preft_buf *buf, preft_span sp, bool first,
                      preft_spans *out, runs *r) {
  size_t rl = strlen(p->replacement);
  preft_buf tmp = {0};
  bool prepend = p->prepend_scheme == PREPEND_ALWAYS || (p->prepend_scheme == PREPEND_FIRST && first);
  if (prepend && !(sp.len >= rl && !memcmp(buf->data + sp.off, p->replacement, rl)))
    preft_buf_append(&tmp, p->replacement, rl);
  for (size_t i = 0; i < sp.len; i++) {
    char c = buf->data[sp.off + i];
    if (c == ' ')
      preft_buf_append(&tmp, p->replacement, rl);
    else
      preft_buf_putc(&tmp, c);
  }
  size_t base = buf->len;
  preft_buf_append(buf, tmp.data, tmp.len);
  preft_span ns = {base, tmp.len};
  preft_buf_free(&tmp);
  if (!p->split) {
    if (ns.len) preft_spans_push(out, ns.off, ns.len);
    return;
  }
  preft_pattern lit = {.literal = (char *)p->replacement, .literal_len = rl};
  pattern_runs(&lit, NULL, buf->data, ns, r);
  emit_runs(r, SPLIT_MERGED_NEXT, false, out);
}

static void pretok_one(const preft_pretokenizer *p, preft_buf *buf, const preft_spans *in, bool first,
                       preft_spans *out, runs *r) {
  pcre2_match_data *md = preft_pattern_match_data(&p->pattern);
  for (size_t i = 0; i < in->n; i++) {
    preft_span sp = in->v[i];
    switch (p->type) {
      case PRE_SPLIT:
        pattern_runs(&p->pattern, md, buf->data, sp, r);
        emit_runs(r, p->behavior, p->invert, out);
        break;
      case PRE_BYTELEVEL:
        if (p->add_prefix_space && !(sp.len && buf->data[sp.off] == ' ')) {
          size_t base = buf->len;
          preft_buf_reserve(buf, sp.len + 1); /* the append below reads buf->data */
          preft_buf_putc(buf, ' ');
          preft_buf_append(buf, buf->data + sp.off, sp.len);
          sp = (preft_span){base, sp.len + 1};
        }
        if (p->use_regex) {
          pattern_runs(&p->pattern, md, buf->data, sp, r);
          emit_runs(r, SPLIT_ISOLATED, false, out);
        } else if (sp.len) {
          preft_spans_push(out, sp.off, sp.len);
        }
        break;
      case PRE_METASPACE:
        metaspace(p, buf, sp, first && i == 0, out, r);
        break;
      case PRE_DIGITS:
        char_runs(pred_numeric, buf->data, sp, r);
        emit_runs(r, p->individual_digits ? SPLIT_ISOLATED : SPLIT_CONTIGUOUS, false, out);
        break;
      case PRE_WHITESPACE:
        pattern_runs(&p->pattern, md, buf->data, sp, r);
        emit_runs(r, SPLIT_REMOVED, true, out);
        break;
      case PRE_WHITESPACE_SPLIT:
        char_runs(pred_ws, buf->data, sp, r);
        emit_runs(r, SPLIT_REMOVED, false, out);
        break;
      case PRE_PUNCTUATION:
        char_runs(pred_punct, buf->data, sp, r);
        emit_runs(r, p->behavior, false, out);
        break;
      case PRE_BERT: {
        preft_spans words = {0};
        char_runs(pred_ws, buf->data, sp, r);
        emit_runs(r, SPLIT_REMOVED, false, &words);
        for (size_t w = 0; w < words.n; w++) {
          char_runs(pred_punct, buf->data, words.v[w], r);
          emit_runs(r, SPLIT_ISOLATED, false, out);
        }
        preft_spans_free(&words);
        break;
      }
      case PRE_SEQUENCE: {
        preft_spans sub = {0};
        preft_pretokenize(p, buf, sp, first && i == 0, &sub);
        for (size_t k = 0; k < sub.n; k++) preft_spans_push(out, sub.v[k].off, sub.v[k].len);
        preft_spans_free(&sub);
        break;
      }
    }
  }
  if (md) pcre2_match_data_free(md);
}

void preft_pretokenize(const preft_pretokenizer *p, preft_buf *buf, preft_span span, bool first_section,
                       preft_spans *out) {
  out->n = 0;
  if (!p) {
    if (span.len) preft_spans_push(out, span.off, span.len);
    return;
  }
  runs r = {0};
  if (p->type != PRE_SEQUENCE) {
    preft_spans in = {0};
    preft_spans_push(&in, span.off, span.len);
    pretok_one(p, buf, &in, first_section, out, &r);
    preft_spans_free(&in);
  } else {
    preft_spans cur = {0}, next = {0};
    preft_spans_push(&cur, span.off, span.len);
    for (int c = 0; c < p->n_children; c++) {
      next.n = 0;
      pretok_one(p->children[c], buf, &cur, first_section, &next, &r);
      preft_spans t = cur;
      cur = next;
      next = t;
    }
    out->n = 0;
    for (size_t i = 0; i < cur.n; i++) preft_spans_push(out, cur.v[i].off, cur.v[i].len);
    preft_spans_free(&cur);
    preft_spans_free(&next);
  }
  free(r.v);
}
