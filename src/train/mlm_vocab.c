/* mlm_vocab.c - a WordPiece vocabulary counted from the pretraining text
 * (see mlm.h): the special tokens, every character seen (as a word start
 * and as "##c"), the most frequent whole words, then the most frequent word
 * endings ("##ing", "##tion") of the words left out, weighted by their
 * counts. Words are split as BertTokenizer's basic tokenizer splits an
 * uncased text: ASCII lower-cased, whitespace, and punctuation (ASCII
 * punctuation, and the General Punctuation block U+2000-U+206F) as tokens
 * of their own. The result is loaded by preft's WordPiece tokenizer like
 * any vocab.txt. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "text/strmap.h"
#include "train/mlm.h"

typedef struct {
  preft_strmap map;
  long *count;
  int n, cap;
} counter;

static void count_add(counter *c, const char *s, size_t len, long k) {
  int32_t v;
  if (preft_strmap_get(&c->map, s, len, &v)) {
    c->count[v] += k;
    return;
  }
  if (c->n == c->cap) {
    c->cap = c->cap ? 2 * c->cap : 4096;
    c->count = preft_xrealloc(c->count, sizeof(long) * (size_t)c->cap);
  }
  preft_strmap_put(&c->map, s, len, c->n);
  c->count[c->n++] = k;
}

static size_t utf8_len(unsigned char b) {
  return b < 0x80 ? 1 : b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
}

static bool is_punct(const unsigned char *p, size_t n) {
  if (n == 1)
    return (p[0] >= 33 && p[0] <= 47) || (p[0] >= 58 && p[0] <= 64) || (p[0] >= 91 && p[0] <= 96) ||
           (p[0] >= 123 && p[0] <= 126);
  return n == 3 && p[0] == 0xe2 && (p[1] == 0x80 || p[1] == 0x81); /* U+2000-U+207F */
}

/* Calls fn for every word (lower-cased) and punctuation token of text. */
static void split_words(const char *text, size_t len, counter *words) {
  char buf[256];
  size_t w = 0;
  for (size_t i = 0; i <= len;) {
    const unsigned char *p = (const unsigned char *)text + i;
    size_t n = i < len ? utf8_len(p[0]) : 1;
    if (i + n > len) n = len - i ? len - i : 1;
    bool space = i == len || p[0] == ' ' || p[0] == '\n' || p[0] == '\t' || p[0] == '\r' ||
                 (n == 2 && p[0] == 0xc2 && p[1] == 0xa0);
    bool punct = i < len && is_punct(p, n);
    if (space || punct) {
      if (w > 0 && w < 100) count_add(words, buf, w, 1);
      w = 0;
      if (punct) count_add(words, (const char *)p, n, 1);
    } else if (w + n < sizeof buf) {
      for (size_t k = 0; k < n; k++)
        buf[w++] = (char)(n == 1 && p[k] >= 'A' && p[k] <= 'Z' ? p[k] + 32 : p[k]);
    } else {
      w = sizeof buf; /* too long: dropped as BertTokenizer makes it [UNK] */
    }
    i += n;
  }
}

typedef struct {
  long count;
  int idx;
} ranked;

static int by_count(const void *a, const void *b) {
  const ranked *x = a, *y = b;
  if (x->count != y->count) return x->count < y->count ? 1 : -1;
  return x->idx - y->idx;
}

/* key strings by index, in one pass over the map */
static const char **keys_by_index(const counter *c, size_t **lens) {
  const char **k = preft_xcalloc((size_t)(c->n ? c->n : 1), sizeof *k);
  *lens = preft_xcalloc((size_t)(c->n ? c->n : 1), sizeof **lens);
  for (size_t i = 0; i < c->map.cap; i++)
    if (c->map.slots[i].hash) {
      k[c->map.slots[i].value] = preft_strmap_key(&c->map, i);
      (*lens)[c->map.slots[i].value] = c->map.slots[i].len;
    }
  return k;
}

int preft_mlm_build_vocab(const preft_mlm_text *texts, int n_texts, int vocab_size, const char *path,
                          preft_error *err) {
  counter words = {0}, pieces = {0};
  preft_strmap_init(&words.map, 1 << 16);
  preft_strmap_init(&pieces.map, 1 << 16);
  for (int i = 0; i < n_texts; i++) split_words(texts[i].text, texts[i].len, &words);
  size_t *wlen;
  const char **wkey = keys_by_index(&words, &wlen);
  ranked *r = preft_xmalloc(sizeof *r * (size_t)(words.n ? words.n : 1));
  for (int i = 0; i < words.n; i++) r[i] = (ranked){words.count[i], i};
  qsort(r, (size_t)words.n, sizeof *r, by_count);

  /* the output, deduplicated */
  preft_strmap out;
  preft_strmap_init(&out, (size_t)vocab_size * 2);
  size_t cap = 1 << 16, used = 0;
  char *text = preft_xmalloc(cap);
  int n_out = 0;
#define EMIT(s, len)                                                       \
  do {                                                                     \
    if (n_out < vocab_size && preft_strmap_put(&out, (s), (len), n_out)) { \
      if (used + (len) + 2 > cap) text = preft_xrealloc(text, cap *= 2);   \
      memcpy(text + used, (s), (len));                                     \
      used += (len);                                                       \
      text[used++] = '\n';                                                 \
      n_out++;                                                             \
    }                                                                      \
  } while (0)
  static const char *const special[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
  for (int i = 0; i < 5; i++) EMIT(special[i], strlen(special[i]));
  /* every character, alone and as a continuation */
  for (int i = 0; i < words.n; i++) {
    const char *s = wkey[r[i].idx];
    size_t len = wlen[r[i].idx];
    for (size_t k = 0; k < len;) {
      size_t n = utf8_len((unsigned char)s[k]);
      if (k + n > len) break;
      char piece[8] = "##";
      memcpy(piece + 2, s + k, n);
      EMIT(s + k, n);
      if (!is_punct((const unsigned char *)s + k, n)) EMIT(piece, n + 2);
      k += n;
    }
  }
  int word_budget = n_out + (vocab_size - n_out) * 4 / 5, wi = 0;
  for (; wi < words.n && n_out < word_budget && r[wi].count >= 2; wi++)
    EMIT(wkey[r[wi].idx], wlen[r[wi].idx]);
  /* endings of the words left out */
  for (int i = wi; i < words.n; i++) {
    const char *s = wkey[r[i].idx];
    size_t len = wlen[r[i].idx];
    for (size_t k = 2; k <= 6 && k < len; k++) {
      char piece[16] = "##";
      memcpy(piece + 2, s + len - k, k);
      count_add(&pieces, piece, k + 2, r[i].count * (long)k);
    }
  }
  size_t *plen;
  const char **pkey = keys_by_index(&pieces, &plen);
  ranked *pr = preft_xmalloc(sizeof *pr * (size_t)(pieces.n ? pieces.n : 1));
  for (int i = 0; i < pieces.n; i++) pr[i] = (ranked){pieces.count[i], i};
  qsort(pr, (size_t)pieces.n, sizeof *pr, by_count);
  for (int i = 0; i < pieces.n && n_out < vocab_size; i++) EMIT(pkey[pr[i].idx], plen[pr[i].idx]);
  for (; wi < words.n && n_out < vocab_size; wi++) EMIT(wkey[r[wi].idx], wlen[r[wi].idx]);
#undef EMIT
  int rc = preft_write_atomic(path, text, used, err);
  free(text);
  free(pr);
  free(pkey);
  free(plen);
  free(r);
  free(wkey);
  free(wlen);
  preft_strmap_free(&out);
  preft_strmap_free(&words.map);
  preft_strmap_free(&pieces.map);
  free(words.count);
  free(pieces.count);
  return rc;
}
