/* added_tokens.c - finding added tokens (special and not) in input text,
 * before the pre-tokenizer runs, as Hugging Face does: a leftmost-longest
 * search with a byte trie, once over the raw text for tokens with
 * normalized=false and once over normalized text for the others; lstrip /
 * rstrip widen a match over neighbouring whitespace, single_word requires
 * non-word characters (or the text edge) on both sides. */
#include <string.h>
#include <utf8proc.h>

#include "text/tokenizer_int.h"

static int32_t trie_child(const preft_added_matcher *m, int32_t node, uint8_t b) {
  for (int32_t c = m->nodes[node].child; c >= 0; c = m->nodes[c].sibling)
    if (m->nodes[c].byte == b) return c;
  return -1;
}

static int32_t trie_new(preft_added_matcher *m, uint8_t b) {
  if (m->n_nodes == m->cap_nodes) {
    m->cap_nodes = m->cap_nodes ? m->cap_nodes * 2 : 256;
    m->nodes = preft_xrealloc(m->nodes, (size_t)m->cap_nodes * sizeof *m->nodes);
  }
  m->nodes[m->n_nodes] = (preft_trie_node){.child = -1, .sibling = -1, .tok = -1, .byte = b};
  return m->n_nodes++;
}

static void trie_insert(preft_added_matcher *m, const char *s, size_t n, int32_t tok) {
  if (n == 0) return;
  const uint8_t *u = (const uint8_t *)s;
  if (m->root[u[0]] < 0) m->root[u[0]] = trie_new(m, u[0]);
  int32_t node = m->root[u[0]];
  for (size_t i = 1; i < n; i++) {
    int32_t c = trie_child(m, node, u[i]);
    if (c < 0) {
      c = trie_new(m, u[i]);
      m->nodes[c].sibling = m->nodes[node].child;
      m->nodes[node].child = c;
    }
    node = c;
  }
  if (m->nodes[node].tok < 0) m->nodes[node].tok = tok; /* first definition wins */
  m->n_tokens++;
}

void preft_added_build(preft_tokenizer *t) {
  preft_added_matcher *ms[2] = {&t->match_raw, &t->match_norm};
  for (int k = 0; k < 2; k++) {
    memset(ms[k], 0, sizeof *ms[k]);
    for (int b = 0; b < 256; b++) ms[k]->root[b] = -1;
  }
  preft_buf norm = {0};
  for (int i = 0; i < t->n_added; i++) {
    const preft_added_token *a = &t->added[i];
    if (a->normalized && t->normalizer) {
      preft_normalize(t->normalizer, a->content, a->len, &norm);
      trie_insert(&t->match_norm, norm.data, norm.len, i);
    } else {
      trie_insert(&t->match_raw, a->content, a->len, i);
    }
  }
  preft_buf_free(&norm);
}

void preft_added_free(preft_added_matcher *m) {
  free(m->nodes);
  memset(m, 0, sizeof *m);
}

static bool is_word_char(int32_t cp) {
  if (cp == '_') return true;
  utf8proc_category_t c = utf8proc_category(cp);
  return (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO) || c == UTF8PROC_CATEGORY_ND ||
         (c >= UTF8PROC_CATEGORY_MN && c <= UTF8PROC_CATEGORY_ME);
}

/* Code point ending at s[end) (for looking left); -1 when none. */
static int32_t cp_before(const uint8_t *s, size_t lo, size_t end, size_t *start) {
  if (end <= lo) return -1;
  size_t j = end - 1;
  while (j > lo && (s[j] & 0xC0) == 0x80 && end - j < 4) j--;
  int32_t cp;
  if (preft_utf8_decode(s + j, end - j, &cp) != (int)(end - j)) {
    *start = end - 1;
    return s[end - 1];
  }
  *start = j;
  return cp;
}

int preft_added_find(const preft_tokenizer *t, const preft_added_matcher *m, const char *s, size_t n,
                     size_t from, size_t *mstart, size_t *mend) {
  if (m->n_tokens == 0) return -1;
  const uint8_t *u = (const uint8_t *)s;
  for (size_t i = from; i < n; i++) {
    int32_t node = m->root[u[i]];
    if (node < 0) continue;
    int32_t best = -1;
    size_t best_end = 0;
    size_t j = i + 1;
    for (;;) {
      if (m->nodes[node].tok >= 0) {
        best = m->nodes[node].tok;
        best_end = j;
      }
      if (j >= n) break;
      node = trie_child(m, node, u[j]);
      if (node < 0) break;
      j++;
    }
    if (best < 0) continue;
    const preft_added_token *a = &t->added[best];
    size_t st = i, en = best_end, tmp;
    if (a->single_word) {
      int32_t cp;
      int32_t prev = cp_before(u, from, st, &tmp);
      bool ok = !(prev >= 0 && is_word_char(prev));
      if (ok && en < n && preft_utf8_decode(u + en, n - en, &cp) && is_word_char(cp)) ok = false;
      if (!ok) continue;
    }
    if (a->lstrip) {
      for (;;) {
        int32_t prev = cp_before(u, from, st, &tmp);
        if (prev < 0 || !preft_uni_is_whitespace(prev)) break;
        st = tmp;
      }
    }
    if (a->rstrip) {
      int32_t cp;
      int k;
      while (en < n && (k = preft_utf8_decode(u + en, n - en, &cp)) && preft_uni_is_whitespace(cp))
        en += (size_t)k;
    }
    *mstart = st;
    *mend = en;
    return best;
  }
  return -1;
}
