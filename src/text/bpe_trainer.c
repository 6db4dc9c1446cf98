/* bpe_trainer.c - byte-level BPE training (see bpe_trainer.h).
 *
 * Data: words (unique pre-tokens as symbol-id arrays, with counts); pairs
 * (id pair -> count and the list of words containing it, possibly with stale
 * entries); a max-heap of (count, pair) validated lazily as in Hugging Face's
 * trainer: a popped entry whose count changed is pushed back with the new
 * count. Token ids: specials first, then the 256 bytes in byte order, then
 * one per merge.
 */
#include "text/bpe_trainer.h"

#include <cjson/cJSON.h>
#include <string.h>

#include "base/file.h"
#include "text/tokenizer_int.h"

const char *const preft_llama3_regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
    "\\s+(?!\\S)|\\s+";

typedef struct word {
  int32_t *sym;
  int32_t n;
  int64_t count;
} word;

typedef struct pairinfo {
  int32_t a, b;
  int64_t count;
  int32_t *where;
  int32_t nwhere, capwhere;
} pairinfo;

typedef struct hent {
  int64_t count;
  int32_t pair;
} hent;

struct preft_bpe_trainer {
  preft_pattern re;
  preft_strmap counts; /* word bytes -> index into wcount */
  int64_t *wcount;
  size_t nw, capw;
  /* training output */
  char **tokens; /* raw bytes per id (specials verbatim) */
  size_t *tok_len;
  int32_t ntok;
  int n_specials;
  int32_t (*merges)[2];
  size_t n_merges;
};

preft_bpe_trainer *preft_bpe_trainer_new(void) {
  preft_bpe_trainer *tr = preft_xcalloc(1, sizeof *tr);
  preft_error err;
  PREFT_ASSERT(preft_pattern_compile_regex(&tr->re, preft_llama3_regex, &err) == 0);
  preft_strmap_init(&tr->counts, 1 << 16);
  return tr;
}

void preft_bpe_trainer_free(preft_bpe_trainer *tr) {
  if (!tr) return;
  preft_pattern_free(&tr->re);
  preft_strmap_free(&tr->counts);
  free(tr->wcount);
  for (int32_t i = 0; i < tr->ntok; i++) free(tr->tokens[i]);
  free(tr->tokens);
  free(tr->tok_len);
  free(tr->merges);
  free(tr);
}

static void count_word(preft_bpe_trainer *tr, const char *s, size_t n) {
  if (!n) return;
  int32_t idx;
  if (preft_strmap_get(&tr->counts, s, n, &idx)) {
    tr->wcount[idx]++;
    return;
  }
  if (tr->nw == tr->capw) {
    tr->capw = tr->capw ? tr->capw * 2 : 4096;
    tr->wcount = preft_xrealloc(tr->wcount, tr->capw * sizeof *tr->wcount);
  }
  tr->wcount[tr->nw] = 1;
  preft_strmap_put(&tr->counts, s, n, (int32_t)tr->nw);
  tr->nw++;
}

static void feed_valid(preft_bpe_trainer *tr, pcre2_match_data *md, const char *s, size_t n) {
  size_t pos = 0, prev = 0, ms, me;
  while (pos < n && preft_pattern_find(&tr->re, md, s, n, pos, &ms, &me)) {
    if (ms > prev) count_word(tr, s + prev, ms - prev);
    count_word(tr, s + ms, me - ms);
    prev = me;
    pos = me > ms ? me : ms + (size_t)preft_utf8_seqlen((uint8_t)s[ms]);
  }
  if (prev < n) count_word(tr, s + prev, n - prev);
}

int preft_bpe_trainer_feed(preft_bpe_trainer *tr, const char *text, size_t len, preft_error *err) {
  if (tr->n_merges || tr->ntok) return preft_fail(err, "bpe trainer: feed after train");
  pcre2_match_data *md = preft_pattern_match_data(&tr->re);
  size_t pos = 0;
  while (pos < len) { /* invalid UTF-8 runs are words of raw bytes */
    size_t v = pos + preft_utf8_validate((const uint8_t *)text + pos, len - pos);
    if (v > pos) feed_valid(tr, md, text + pos, v - pos);
    if (v >= len) break;
    size_t w = v + preft_utf8_invalid_run((const uint8_t *)text + v, len - v);
    count_word(tr, text + v, w - v);
    pos = w;
  }
  pcre2_match_data_free(md);
  return 0;
}

static bool hent_less(const hent *x, const hent *y, const pairinfo *p) {
  /* max-heap order: higher count first, then the smaller (a, b) */
  if (x->count != y->count) return x->count < y->count;
  const pairinfo *px = &p[x->pair], *py = &p[y->pair];
  if (px->a != py->a) return px->a > py->a;
  return px->b > py->b;
}

typedef struct heap {
  hent *v;
  size_t n, cap;
} heap;

static void heap_push(heap *h, hent e, const pairinfo *p) {
  if (h->n == h->cap) {
    h->cap = h->cap ? h->cap * 2 : 1024;
    h->v = preft_xrealloc(h->v, h->cap * sizeof *h->v);
  }
  size_t i = h->n++;
  while (i > 0) {
    size_t par = (i - 1) / 2;
    if (!hent_less(&h->v[par], &e, p)) break;
    h->v[i] = h->v[par];
    i = par;
  }
  h->v[i] = e;
}

static hent heap_pop(heap *h, const pairinfo *p) {
  hent top = h->v[0], x = h->v[--h->n];
  size_t i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= h->n) break;
    if (c + 1 < h->n && hent_less(&h->v[c], &h->v[c + 1], p)) c++;
    if (!hent_less(&x, &h->v[c], p)) break;
    h->v[i] = h->v[c];
    i = c;
  }
  if (h->n) h->v[i] = x;
  return top;
}

typedef struct pairs {
  pairinfo *v;
  size_t n, cap;
  preft_u64map index;
} pairs;

static int32_t pair_get(pairs *P, int32_t a, int32_t b, bool create) {
  uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b, v;
  if (preft_u64map_get(&P->index, key, &v)) return (int32_t)v;
  if (!create) return -1;
  if (P->n == P->cap) {
    P->cap = P->cap ? P->cap * 2 : 4096;
    P->v = preft_xrealloc(P->v, P->cap * sizeof *P->v);
  }
  P->v[P->n] = (pairinfo){.a = a, .b = b};
  preft_u64map_put(&P->index, key, P->n);
  return (int32_t)P->n++;
}

/* Adds delta to the count of pair (a, b) seen in word w; returns its index
 * (-1 when a decrement finds no such pair). */
static int32_t pair_add(pairs *P, int32_t a, int32_t b, int64_t delta, int32_t w) {
  int32_t k = pair_get(P, a, b, delta > 0);
  if (k < 0) return -1;
  pairinfo *pi = &P->v[k];
  pi->count += delta;
  if (delta > 0 && (pi->nwhere == 0 || pi->where[pi->nwhere - 1] != w)) {
    if (pi->nwhere == pi->capwhere) {
      pi->capwhere = pi->capwhere ? pi->capwhere * 2 : 4;
      pi->where = preft_xrealloc(pi->where, (size_t)pi->capwhere * sizeof *pi->where);
    }
    pi->where[pi->nwhere++] = w;
  }
  return k;
}

typedef struct ivec {
  int32_t *v;
  size_t n, cap;
} ivec;

static void ivec_push(ivec *x, int32_t k) {
  if (x->n == x->cap) {
    x->cap = x->cap ? x->cap * 2 : 256;
    x->v = preft_xrealloc(x->v, x->cap * sizeof *x->v);
  }
  x->v[x->n++] = k;
}

static void add_token(preft_bpe_trainer *tr, const char *s, size_t n) {
  tr->tokens = preft_xrealloc(tr->tokens, (size_t)(tr->ntok + 1) * sizeof *tr->tokens);
  tr->tok_len = preft_xrealloc(tr->tok_len, (size_t)(tr->ntok + 1) * sizeof *tr->tok_len);
  tr->tokens[tr->ntok] = preft_xmalloc(n + 1);
  memcpy(tr->tokens[tr->ntok], s, n);
  tr->tokens[tr->ntok][n] = 0;
  tr->tok_len[tr->ntok++] = n;
}

int preft_bpe_trainer_train(preft_bpe_trainer *tr, int vocab_size, const char *const *specials,
                            int n_specials, preft_train_progress progress, void *ctx, preft_error *err) {
  if (tr->ntok) return preft_fail(err, "bpe trainer: already trained");
  if (vocab_size < n_specials + 256)
    return preft_fail(err, "vocab size %d is smaller than the %d special tokens plus 256 byte tokens",
                      vocab_size, n_specials);
  for (int i = 0; i < n_specials; i++) add_token(tr, specials[i], strlen(specials[i]));
  tr->n_specials = n_specials;
  for (int b = 0; b < 256; b++) {
    char c = (char)b;
    add_token(tr, &c, 1);
  }
  int32_t byte0 = n_specials;
  /* words */
  word *w = preft_xcalloc(tr->nw + 1, sizeof *w);
  for (size_t i = 0; i < tr->counts.cap; i++) {
    const preft_strmap_slot *s = &tr->counts.slots[i];
    if (!s->hash) continue;
    word *x = &w[s->value];
    x->n = (int32_t)s->len;
    x->count = tr->wcount[s->value];
    x->sym = preft_xmalloc(s->len * sizeof *x->sym);
    const uint8_t *k = (const uint8_t *)preft_strmap_key(&tr->counts, i);
    for (uint32_t j = 0; j < s->len; j++) x->sym[j] = byte0 + k[j];
  }
  pairs P = {0};
  preft_u64map_init(&P.index, 1 << 16);
  for (size_t i = 0; i < tr->nw; i++)
    for (int32_t j = 0; j + 1 < w[i].n; j++)
      pair_add(&P, w[i].sym[j], w[i].sym[j + 1], w[i].count, (int32_t)i);
  heap h = {0};
  for (size_t k = 0; k < P.n; k++)
    if (P.v[k].count > 0) heap_push(&h, (hent){P.v[k].count, (int32_t)k}, P.v);
  size_t target = (size_t)(vocab_size - tr->ntok);
  tr->merges = preft_xmalloc((target + 1) * sizeof *tr->merges);
  preft_buf nt = {0};
  ivec fresh = {0};
  while (tr->n_merges < target && h.n) {
    hent top = heap_pop(&h, P.v);
    pairinfo *pi = &P.v[top.pair];
    if (top.count != pi->count) {
      if (pi->count > 0) heap_push(&h, (hent){pi->count, top.pair}, P.v);
      continue;
    }
    if (top.count < 1) break;
    int32_t a = pi->a, b = pi->b, id = tr->ntok;
    nt.len = 0;
    preft_buf_append(&nt, tr->tokens[a], tr->tok_len[a]);
    preft_buf_append(&nt, tr->tokens[b], tr->tok_len[b]);
    add_token(tr, nt.data, nt.len);
    tr->merges[tr->n_merges][0] = a;
    tr->merges[tr->n_merges][1] = b;
    tr->n_merges++;
    /* rewrite every word that had the pair; the merged pair is gone from all */
    int32_t *where = pi->where, nwhere = pi->nwhere;
    pi->where = NULL;
    pi->nwhere = pi->capwhere = 0;
    pi->count = 0;
    int32_t last = -1;
    fresh.n = 0;
    for (int32_t q = 0; q < nwhere; q++) {
      int32_t wi = where[q];
      if (wi == last) continue;
      last = wi;
      word *x = &w[wi];
      int32_t out = 0;
      for (int32_t j = 0; j < x->n; j++) {
        if (j + 1 < x->n && x->sym[j] == a && x->sym[j + 1] == b) {
          if (out > 0) {
            pair_add(&P, x->sym[out - 1], a, -x->count, wi);
            ivec_push(&fresh, pair_add(&P, x->sym[out - 1], id, x->count, wi));
          }
          if (j + 2 < x->n) {
            pair_add(&P, b, x->sym[j + 2], -x->count, wi);
            ivec_push(&fresh, pair_add(&P, id, x->sym[j + 2], x->count, wi));
          }
          x->sym[out++] = id;
          j++;
        } else {
          x->sym[out++] = x->sym[j];
        }
      }
      x->n = out;
    }
    free(where);
    P.v[top.pair].count = 0;
    /* queue the pairs that contain the new token, once each */
    for (size_t q = 0; q < fresh.n; q++) {
      int32_t k = fresh.v[q];
      if (P.v[k].nwhere < 0) continue;
      if (P.v[k].count > 0) heap_push(&h, (hent){P.v[k].count, k}, P.v);
      P.v[k].nwhere = -P.v[k].nwhere - 1; /* mark as queued */
    }
    for (size_t q = 0; q < fresh.n; q++) {
      int32_t k = fresh.v[q];
      if (P.v[k].nwhere < 0) P.v[k].nwhere = -P.v[k].nwhere - 1;
    }
    if (progress && tr->n_merges % 256 == 0 && tr->n_merges != target) progress(ctx, tr->n_merges, target);
  }
  free(fresh.v);
  preft_buf_free(&nt);
  for (size_t i = 0; i < tr->nw; i++) free(w[i].sym);
  free(w);
  for (size_t k = 0; k < P.n; k++) free(P.v[k].where);
  free(P.v);
  preft_u64map_free(&P.index);
  free(h.v);
  if (progress) progress(ctx, tr->n_merges, tr->n_merges); /* done (maybe early: no pair left) */
  return 0;
}

size_t preft_bpe_trainer_n_merges(const preft_bpe_trainer *tr) { return tr->n_merges; }

/* Writes the tokenizer.json: Llama 3 style pre-tokenizer, ByteLevel decoder,
 * BPE model with ["left", "right"] merges, specials as added tokens. */
int preft_bpe_trainer_write(const preft_bpe_trainer *tr, const char *path, preft_error *err) {
  if (!tr->ntok) return preft_fail(err, "bpe trainer: nothing trained");
  cJSON *root = cJSON_CreateObject();
  cJSON_AddStringToObject(root, "version", "1.0");
  cJSON_AddNullToObject(root, "truncation");
  cJSON_AddNullToObject(root, "padding");
  cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
  for (int i = 0; i < tr->n_specials; i++) {
    cJSON *a = cJSON_CreateObject();
    cJSON_AddNumberToObject(a, "id", i);
    cJSON_AddStringToObject(a, "content", tr->tokens[i]);
    cJSON_AddBoolToObject(a, "single_word", false);
    cJSON_AddBoolToObject(a, "lstrip", false);
    cJSON_AddBoolToObject(a, "rstrip", false);
    cJSON_AddBoolToObject(a, "normalized", false);
    cJSON_AddBoolToObject(a, "special", true);
    cJSON_AddItemToArray(added, a);
  }
  cJSON_AddNullToObject(root, "normalizer");
  cJSON *pre = cJSON_AddObjectToObject(root, "pre_tokenizer");
  cJSON_AddStringToObject(pre, "type", "Sequence");
  cJSON *pres = cJSON_AddArrayToObject(pre, "pretokenizers");
  cJSON *split = cJSON_CreateObject();
  cJSON_AddStringToObject(split, "type", "Split");
  cJSON_AddStringToObject(cJSON_AddObjectToObject(split, "pattern"), "Regex", preft_llama3_regex);
  cJSON_AddStringToObject(split, "behavior", "Isolated");
  cJSON_AddBoolToObject(split, "invert", false);
  cJSON_AddItemToArray(pres, split);
  cJSON *bl = cJSON_CreateObject();
  cJSON_AddStringToObject(bl, "type", "ByteLevel");
  cJSON_AddBoolToObject(bl, "add_prefix_space", false);
  cJSON_AddBoolToObject(bl, "trim_offsets", true);
  cJSON_AddBoolToObject(bl, "use_regex", false);
  cJSON_AddItemToArray(pres, bl);
  cJSON *post = cJSON_AddObjectToObject(root, "post_processor");
  cJSON_AddStringToObject(post, "type", "ByteLevel");
  cJSON_AddBoolToObject(post, "add_prefix_space", false);
  cJSON_AddBoolToObject(post, "trim_offsets", false);
  cJSON_AddBoolToObject(post, "use_regex", false);
  cJSON *dec = cJSON_AddObjectToObject(root, "decoder");
  cJSON_AddStringToObject(dec, "type", "ByteLevel");
  cJSON_AddBoolToObject(dec, "add_prefix_space", false);
  cJSON_AddBoolToObject(dec, "trim_offsets", false);
  cJSON_AddBoolToObject(dec, "use_regex", false);
  cJSON *model = cJSON_AddObjectToObject(root, "model");
  cJSON_AddStringToObject(model, "type", "BPE");
  cJSON_AddNullToObject(model, "dropout");
  cJSON_AddNullToObject(model, "unk_token");
  cJSON_AddNullToObject(model, "continuing_subword_prefix");
  cJSON_AddNullToObject(model, "end_of_word_suffix");
  cJSON_AddBoolToObject(model, "fuse_unk", false);
  cJSON_AddBoolToObject(model, "byte_fallback", false);
  cJSON_AddBoolToObject(model, "ignore_merges", false);
  cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
  preft_buf s = {0};
  char **bl_tok = preft_xcalloc((size_t)tr->ntok, sizeof *bl_tok);
  for (int32_t i = 0; i < tr->ntok; i++) {
    s.len = 0;
    if (i < tr->n_specials)
      preft_buf_append(&s, tr->tokens[i], tr->tok_len[i]);
    else
      preft_bytelevel_from_bytes((const uint8_t *)tr->tokens[i], tr->tok_len[i], &s);
    bl_tok[i] = preft_xstrdup(s.data);
    cJSON_AddItemToObject(vocab, bl_tok[i], cJSON_CreateNumber(i));
  }
  cJSON *merges = cJSON_AddArrayToObject(model, "merges");
  for (size_t m = 0; m < tr->n_merges; m++) {
    cJSON *pr = cJSON_CreateArray();
    cJSON_AddItemToArray(pr, cJSON_CreateString(bl_tok[tr->merges[m][0]]));
    cJSON_AddItemToArray(pr, cJSON_CreateString(bl_tok[tr->merges[m][1]]));
    cJSON_AddItemToArray(merges, pr);
  }
  char *text = cJSON_PrintUnformatted(root);
  cJSON_Delete(root);
  for (int32_t i = 0; i < tr->ntok; i++) free(bl_tok[i]);
  free(bl_tok);
  preft_buf_free(&s);
  if (!text) return preft_fail(err, "%s: out of memory serializing the tokenizer", path);
  int rc = preft_write_atomic(path, text, strlen(text), err);
  free(text);
  return rc;
}
