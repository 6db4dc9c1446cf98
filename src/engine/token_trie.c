/* token_trie.c - the vocabulary's byte trie (token_trie.h). */
#include "engine/token_trie.h"

#include <stdlib.h>
#include <string.h>

#include "text/tokenizer.h"

typedef struct {
  const uint8_t *s;
  size_t len;
  int id;
} tok_entry;

static int cmp_entry(const void *a, const void *b) {
  const tok_entry *x = a, *y = b;
  size_t n = x->len < y->len ? x->len : y->len;
  int c = memcmp(x->s, y->s, n);
  if (c) return c;
  if (x->len != y->len) return x->len < y->len ? -1 : 1;
  return x->id - y->id;
}

typedef struct {
  int node, lo, hi, depth;
} work_item;

/* entries sorted by bytes: breadth first, the children of one node are
 * given consecutive indices. */
static void build_sorted(preft_token_trie *t, tok_entry *e, int n) {
  int cap = 1024;
  t->byte = preft_xmalloc((size_t)cap);
  t->first_child = preft_xmalloc(sizeof(int32_t) * (size_t)cap);
  t->n_child = preft_xmalloc(sizeof(int32_t) * (size_t)cap);
  t->parent = preft_xmalloc(sizeof(int32_t) * (size_t)cap);
  t->parent[0] = -1;
  t->tok_node = preft_xmalloc(sizeof(int32_t) * (size_t)t->vocab);
  for (int v = 0; v < t->vocab; v++) t->tok_node[v] = -1;
  int32_t *tok_start = preft_xmalloc(sizeof(int32_t) * (size_t)cap),
          *tok_n = preft_xmalloc(sizeof(int32_t) * (size_t)cap);
  t->toks = preft_xmalloc(sizeof(int32_t) * (size_t)(n ? n : 1));
  t->n_nodes = 1;
  t->byte[0] = 0;
  work_item *q = preft_xmalloc(sizeof *q * (size_t)cap);
  int qh = 0, qt = 0, qcap = cap, n_toks = 0;
  q[qt++] = (work_item){0, 0, n, 0};
  while (qh < qt) {
    work_item w = q[qh++];
    int i = w.lo;
    tok_start[w.node] = n_toks;
    while (i < w.hi && (int)e[i].len == w.depth) {
      t->tok_node[e[i].id] = w.node;
      t->toks[n_toks++] = e[i++].id;
    }
    tok_n[w.node] = n_toks - tok_start[w.node];
    t->first_child[w.node] = t->n_nodes;
    t->n_child[w.node] = 0;
    while (i < w.hi) {
      uint8_t b = e[i].s[w.depth];
      int j = i;
      while (j < w.hi && e[j].s[w.depth] == b) j++;
      if (t->n_nodes == cap) {
        cap *= 2;
        t->byte = preft_xrealloc(t->byte, (size_t)cap);
        t->first_child = preft_xrealloc(t->first_child, sizeof(int32_t) * (size_t)cap);
        t->n_child = preft_xrealloc(t->n_child, sizeof(int32_t) * (size_t)cap);
        t->parent = preft_xrealloc(t->parent, sizeof(int32_t) * (size_t)cap);
        tok_start = preft_xrealloc(tok_start, sizeof(int32_t) * (size_t)cap);
        tok_n = preft_xrealloc(tok_n, sizeof(int32_t) * (size_t)cap);
      }
      int c = t->n_nodes++;
      t->byte[c] = b;
      t->parent[c] = w.node;
      t->n_child[w.node]++;
      if (qt == qcap) {
        qcap *= 2;
        q = preft_xrealloc(q, sizeof *q * (size_t)qcap);
      }
      q[qt++] = (work_item){c, i, j, w.depth + 1};
      i = j;
    }
  }
  free(q);
  /* tokens were appended in breadth-first order too: offsets are monotone */
  t->tok_off = preft_xmalloc(sizeof(int32_t) * (size_t)(t->n_nodes + 1));
  for (int v = 0; v < t->n_nodes; v++) t->tok_off[v] = tok_start[v];
  t->tok_off[t->n_nodes] = n_toks;
  free(tok_start);
  free(tok_n);
  t->n_text_tokens = n_toks;
}

int preft_token_trie_build(preft_token_trie *t, int vocab, const char *const *tokens, const size_t *lens,
                           preft_error *err) {
  memset(t, 0, sizeof *t);
  if (vocab <= 0) return preft_fail(err, "token trie: empty vocabulary");
  t->vocab = vocab;
  tok_entry *e = preft_xmalloc(sizeof *e * (size_t)vocab);
  int n = 0;
  for (int i = 0; i < vocab; i++)
    if (tokens[i] && lens[i] > 0) {
      e[n++] = (tok_entry){(const uint8_t *)tokens[i], lens[i], i};
      if ((int)lens[i] > t->max_len) t->max_len = (int)lens[i];
    }
  qsort(e, (size_t)n, sizeof *e, cmp_entry);
  build_sorted(t, e, n);
  free(e);
  return 0;
}

int preft_token_trie_from_tokenizer(preft_token_trie *t, const preft_tokenizer *tok, int vocab,
                                    preft_error *err) {
  int tv = preft_tokenizer_vocab_size(tok);
  if (vocab < tv) vocab = tv;
  char **bytes = preft_xcalloc((size_t)vocab, sizeof *bytes);
  size_t *lens = preft_xcalloc((size_t)vocab, sizeof *lens);
  for (int i = 0; i < tv; i++) preft_tokenizer_token_bytes(tok, i, &bytes[i], &lens[i]);
  int rc = preft_token_trie_build(t, vocab, (const char *const *)bytes, lens, err);
  for (int i = 0; i < tv; i++) free(bytes[i]);
  free(bytes);
  free(lens);
  return rc;
}

void preft_token_trie_free(preft_token_trie *t) {
  free(t->byte);
  free(t->first_child);
  free(t->n_child);
  free(t->tok_off);
  free(t->toks);
  free(t->parent);
  free(t->tok_node);
  memset(t, 0, sizeof *t);
}
