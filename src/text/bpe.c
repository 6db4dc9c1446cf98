/* bpe.c - the BPE model of tokenizer.json: vocabulary, merges, and the merge
 * loop of the Rust tokenizers crate (Word::merge_all): repeatedly apply the
 * lowest-ranked adjacent pair, leftmost first, with a binary heap of
 * (rank, position) and a doubly linked list of symbols. Stale heap entries
 * are recognised by re-checking the pair. Supports byte-level vocabularies
 * (symbols are bytes), SentencePiece-style ones (symbols are characters,
 * byte_fallback to <0xXX>, unk with fuse_unk), ignore_merges,
 * continuing_subword_prefix and end_of_word_suffix.
 *
 * A cache maps recent pieces to their ids; it is shared by concurrent
 * encoders under a mutex that is only try-locked, so contention skips the
 * cache instead of waiting.
 */
#include <string.h>

#include "text/tokenizer_int.h"

#define CACHE_MAX_PIECE 256
#define CACHE_MAX_ENTRIES (1u << 18)
#define CACHE_MAX_IDS (1u << 22)

typedef struct sym {
  int32_t id;
  int32_t prev, next; /* -1 = none */
  int32_t len;        /* bytes covered; 0 = merged away */
} sym;

typedef struct heap {
  uint64_t *v; /* rank << 32 | pos */
  size_t n, cap;
} heap;

static void heap_push(heap *h, uint64_t x) {
  if (h->n == h->cap) {
    h->cap = h->cap ? h->cap * 2 : 64;
    h->v = preft_xrealloc(h->v, h->cap * sizeof *h->v);
  }
  size_t i = h->n++;
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (h->v[p] <= x) break;
    h->v[i] = h->v[p];
    i = p;
  }
  h->v[i] = x;
}

static uint64_t heap_pop(heap *h) {
  uint64_t top = h->v[0], x = h->v[--h->n];
  size_t i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= h->n) break;
    if (c + 1 < h->n && h->v[c + 1] < h->v[c]) c++;
    if (h->v[c] >= x) break;
    h->v[i] = h->v[c];
    i = c;
  }
  if (h->n) h->v[i] = x;
  return top;
}

static inline bool merge_lookup(const preft_bpe *b, int32_t l, int32_t r, uint32_t *rank, int32_t *id) {
  uint64_t v;
  if (!preft_u64map_get(&b->merges, (uint64_t)(uint32_t)l << 32 | (uint32_t)r, &v)) return false;
  *rank = (uint32_t)(v >> 32);
  *id = (int32_t)(uint32_t)v;
  return true;
}

static void sym_push(sym **s, size_t *n, size_t *cap, int32_t id, int32_t len) {
  if (*n == *cap) {
    *cap = *cap ? *cap * 2 : 64;
    *s = preft_xrealloc(*s, *cap * sizeof **s);
  }
  (*s)[*n] = (sym){.id = id, .prev = (int32_t)*n - 1, .next = (int32_t)*n + 1, .len = len};
  (*n)++;
}

/* Builds the initial symbols of a character-level (non byte-level) word. */
static void char_symbols(const preft_bpe *b, const char *s, size_t n, sym **syms, size_t *ns, size_t *cap) {
  int32_t unk_len = 0; /* pending fused unk */
  bool unk_pending = false;
  preft_buf key = {0};
  size_t i = 0;
  while (i < n) {
    size_t k = (size_t)preft_utf8_seqlen((uint8_t)s[i]);
    if (i + k > n) k = n - i;
    key.len = 0;
    if (i > 0 && b->cont_prefix) preft_buf_puts(&key, b->cont_prefix);
    preft_buf_append(&key, s + i, k);
    if (i + k == n && b->eow_suffix) preft_buf_puts(&key, b->eow_suffix);
    int32_t id;
    if (preft_strmap_get(&b->vocab, key.data, key.len, &id)) {
      if (unk_pending) sym_push(syms, ns, cap, b->unk_id, unk_len), unk_pending = false;
      sym_push(syms, ns, cap, id, (int32_t)k);
    } else {
      bool done = false;
      if (b->byte_fallback) {
        bool all = true;
        for (size_t j = 0; j < key.len; j++)
          if (b->byte_ids[(uint8_t)key.data[j]] < 0) all = false;
        if (all) {
          for (size_t j = 0; j < key.len; j++) sym_push(syms, ns, cap, b->byte_ids[(uint8_t)key.data[j]], 1);
          done = true;
        }
      }
      if (!done && b->unk_id >= 0) {
        if (unk_pending && b->fuse_unk) {
          unk_len += (int32_t)k;
        } else {
          if (unk_pending) sym_push(syms, ns, cap, b->unk_id, unk_len);
          unk_pending = true;
          unk_len = (int32_t)k;
        }
      }
    }
    i += k;
  }
  if (unk_pending) sym_push(syms, ns, cap, b->unk_id, unk_len);
  preft_buf_free(&key);
}

/* BPE of one piece without the cache; appends ids. */
static void bpe_word(const preft_bpe *b, bool byte_level, const char *s, size_t n, int32_t **ids,
                     size_t *n_ids, size_t *cap) {
  sym stack_syms[64];
  sym *syms = stack_syms;
  size_t ns = 0, scap = 64;
  bool heap_syms = false;
  if (byte_level && !b->cont_prefix && !b->eow_suffix) {
    if (n > 64) {
      syms = preft_xmalloc(n * sizeof *syms);
      heap_syms = true;
    }
    for (size_t i = 0; i < n; i++) {
      int32_t id = b->byte_ids[(uint8_t)s[i]];
      if (id < 0) {
        if (b->unk_id < 0) continue;
        id = b->unk_id;
      }
      syms[ns] = (sym){.id = id, .prev = (int32_t)ns - 1, .next = (int32_t)ns + 1, .len = 1};
      ns++;
    }
  } else {
    sym *dyn = NULL;
    size_t dcap = 0;
    char_symbols(b, s, n, &dyn, &ns, &dcap);
    syms = dyn;
    heap_syms = true;
    (void)scap;
  }
  if (ns == 0) goto out;
  syms[ns - 1].next = -1;

  heap h = {0};
  uint64_t hbuf[64];
  h.v = hbuf;
  h.cap = 64;
  bool h_heap = false;
  for (size_t i = 0; i + 1 < ns; i++) {
    uint32_t rank;
    int32_t nid;
    if (merge_lookup(b, syms[i].id, syms[i + 1].id, &rank, &nid)) {
      if (h.n == h.cap && !h_heap) {
        uint64_t *nv = preft_xmalloc(h.cap * 2 * sizeof *nv);
        memcpy(nv, h.v, h.n * sizeof *nv);
        h.v = nv;
        h.cap *= 2;
        h_heap = true;
      }
      heap_push(&h, (uint64_t)rank << 32 | i);
    }
  }
  while (h.n) {
    uint64_t top = heap_pop(&h);
    uint32_t rank = (uint32_t)(top >> 32);
    size_t pos = (uint32_t)top;
    sym *a = &syms[pos];
    if (a->len == 0 || a->next < 0) continue;
    sym *bb = &syms[a->next];
    uint32_t r2;
    int32_t nid;
    if (!merge_lookup(b, a->id, bb->id, &r2, &nid) || r2 != rank) continue;
    a->id = nid;
    a->len += bb->len;
    bb->len = 0;
    a->next = bb->next;
    if (a->next >= 0) syms[a->next].prev = (int32_t)pos;
    if (h.n + 2 > h.cap && !h_heap) {
      uint64_t *nv = preft_xmalloc(h.cap * 2 * sizeof *nv);
      memcpy(nv, h.v, h.n * sizeof *nv);
      h.v = nv;
      h.cap *= 2;
      h_heap = true;
    }
    if (a->prev >= 0 && merge_lookup(b, syms[a->prev].id, a->id, &r2, &nid))
      heap_push(&h, (uint64_t)r2 << 32 | (uint32_t)a->prev);
    if (a->next >= 0 && merge_lookup(b, a->id, syms[a->next].id, &r2, &nid))
      heap_push(&h, (uint64_t)r2 << 32 | pos);
  }
  if (h_heap) free(h.v);
  for (int32_t i = 0; i >= 0; i = syms[i].next) preft_ids_push(ids, n_ids, cap, syms[i].id);
out:
  if (heap_syms) free(syms);
}

void preft_bpe_encode(preft_bpe *b, bool byte_level, const char *s, size_t n, int32_t **ids, size_t *n_ids,
                      size_t *cap) {
  if (n == 0) return;
  int32_t id;
  if (byte_level && n == 1 && b->byte_ids[(uint8_t)s[0]] >= 0) {
    preft_ids_push(ids, n_ids, cap, b->byte_ids[(uint8_t)s[0]]);
    return;
  }
  if (b->ignore_merges && preft_strmap_get(&b->vocab, s, n, &id)) {
    preft_ids_push(ids, n_ids, cap, id);
    return;
  }
  bool cacheable = n <= CACHE_MAX_PIECE;
  if (cacheable && pthread_mutex_trylock(&b->cache_lock) == 0) {
    int32_t e;
    if (preft_strmap_get(&b->cache, s, n, &e)) {
      uint64_t ent = b->cache_entries[e];
      size_t off = (size_t)(ent >> 16), cnt = (size_t)(ent & 0xFFFF);
      for (size_t i = 0; i < cnt; i++) preft_ids_push(ids, n_ids, cap, b->cache_ids[off + i]);
      pthread_mutex_unlock(&b->cache_lock);
      return;
    }
    pthread_mutex_unlock(&b->cache_lock);
  } else {
    cacheable = false;
  }
  size_t before = *n_ids;
  bpe_word(b, byte_level, s, n, ids, n_ids, cap);
  size_t cnt = *n_ids - before;
  if (!cacheable || cnt > 0xFFFF || pthread_mutex_trylock(&b->cache_lock) != 0) return;
  if (b->cache_n >= CACHE_MAX_ENTRIES || b->cache_ids_len + cnt > CACHE_MAX_IDS) {
    preft_strmap_clear(&b->cache);
    b->cache_n = 0;
    b->cache_ids_len = 0;
  }
  if (b->cache_ids_len + cnt > b->cache_ids_cap) {
    while (b->cache_ids_len + cnt > b->cache_ids_cap)
      b->cache_ids_cap = b->cache_ids_cap ? b->cache_ids_cap * 2 : 4096;
    b->cache_ids = preft_xrealloc(b->cache_ids, b->cache_ids_cap * sizeof *b->cache_ids);
  }
  if (b->cache_n == b->cache_cap) {
    b->cache_cap = b->cache_cap ? b->cache_cap * 2 : 1024;
    b->cache_entries = preft_xrealloc(b->cache_entries, b->cache_cap * sizeof *b->cache_entries);
  }
  if (cnt) memcpy(b->cache_ids + b->cache_ids_len, *ids + before, cnt * sizeof **ids);
  b->cache_entries[b->cache_n] = (uint64_t)b->cache_ids_len << 16 | cnt;
  preft_strmap_put(&b->cache, s, n, (int32_t)b->cache_n);
  b->cache_n++;
  b->cache_ids_len += cnt;
  pthread_mutex_unlock(&b->cache_lock);
}

static const char *jstr_or_null(const cJSON *j, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
  return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

/* Converts a token as written in tokenizer.json to its lookup key. */
static bool token_key(const preft_tokenizer *t, const char *tok, size_t len, preft_buf *out) {
  out->len = 0;
  if (t->byte_level) {
    if (preft_bytelevel_to_bytes(tok, len, out)) return true;
    out->len = 0;
  }
  preft_buf_append(out, tok, len);
  return true;
}

int preft_bpe_from_json(preft_tokenizer *t, const cJSON *model, preft_error *err) {
  preft_bpe *b = &t->bpe;
  const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
  const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
  if (!cJSON_IsObject(vocab)) return preft_fail(err, "model (BPE): 'vocab' must be an object {token: id}");
  if (merges && !cJSON_IsArray(merges) && !cJSON_IsNull(merges))
    return preft_fail(err, "model (BPE): 'merges' must be an array");
  int nv = cJSON_GetArraySize(vocab);
  preft_strmap_init(&b->vocab, (size_t)nv);
  preft_strmap_init(&b->cache, 4096);
  pthread_mutex_init(&b->cache_lock, NULL);
  b->unk_id = -1;
  const cJSON *f = cJSON_GetObjectItemCaseSensitive(model, "byte_fallback");
  b->byte_fallback = cJSON_IsTrue(f);
  b->fuse_unk = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model, "fuse_unk"));
  b->ignore_merges = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model, "ignore_merges"));
  const char *cp = jstr_or_null(model, "continuing_subword_prefix");
  const char *ew = jstr_or_null(model, "end_of_word_suffix");
  b->cont_prefix = cp ? preft_xstrdup(cp) : NULL;
  b->eow_suffix = ew ? preft_xstrdup(ew) : NULL;
  const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
  if (cJSON_IsNumber(dropout) && dropout->valuedouble > 0)
    PREFT_WARN("tokenizer: BPE dropout %.3g ignored (deterministic encoding)", dropout->valuedouble);

  preft_buf key = {0};
  const cJSON *e;
  int idx = 0;
  cJSON_ArrayForEach(e, vocab) {
    if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble >= t->vocab_size ||
        e->valuedouble != (double)e->valueint) {
      preft_buf_free(&key);
      return preft_fail(err, "model.vocab entry %d ('%s'): id must be an integer in [0, %d)", idx, e->string,
                        t->vocab_size);
    }
    size_t len = strlen(e->string);
    token_key(t, e->string, len, &key);
    preft_strmap_put(&b->vocab, key.data, key.len, e->valueint);
    preft_tokenizer_set_token(t, e->valueint, e->string, len);
    idx++;
  }
  const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
  if (cJSON_IsString(unk)) {
    token_key(t, unk->valuestring, strlen(unk->valuestring), &key);
    if (!preft_strmap_get(&b->vocab, key.data, key.len, &b->unk_id)) {
      preft_buf_free(&key);
      return preft_fail(err, "model.unk_token '%s' is not in the vocabulary", unk->valuestring);
    }
  }
  for (int i = 0; i < 256; i++) {
    b->byte_ids[i] = -1;
    char tmp[8];
    int32_t id;
    if (t->byte_level) {
      key.len = 0;
      preft_buf_putc(&key, (char)i);
    } else {
      snprintf(tmp, sizeof tmp, "<0x%02X>", i);
      key.len = 0;
      preft_buf_puts(&key, tmp);
    }
    if (preft_strmap_get(&b->vocab, key.data, key.len, &id)) b->byte_ids[i] = id;
  }

  int nm = merges ? cJSON_GetArraySize(merges) : 0;
  preft_u64map_init(&b->merges, (size_t)nm);
  size_t plen = b->cont_prefix ? strlen(b->cont_prefix) : 0;
  preft_buf merged = {0};
  int rank = 0;
  int rc = 0;
  cJSON_ArrayForEach(e, merges) {
    const char *l, *r;
    size_t ll, rl;
    const char *sp;
    if (cJSON_IsString(e) && (sp = strchr(e->valuestring, ' ')) && !strchr(sp + 1, ' ')) {
      l = e->valuestring;
      ll = (size_t)(sp - l);
      r = sp + 1;
      rl = strlen(r);
    } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 && cJSON_IsString(cJSON_GetArrayItem(e, 0)) &&
               cJSON_IsString(cJSON_GetArrayItem(e, 1))) {
      l = cJSON_GetArrayItem(e, 0)->valuestring;
      r = cJSON_GetArrayItem(e, 1)->valuestring;
      ll = strlen(l);
      rl = strlen(r);
    } else {
      rc = preft_fail(err, "model.merges[%d]: expected \"left right\" or [left, right]", rank);
      break;
    }
    int32_t lid, rid, mid;
    token_key(t, l, ll, &key);
    bool okl = preft_strmap_get(&b->vocab, key.data, key.len, &lid);
    merged.len = 0;
    preft_buf_append(&merged, key.data, key.len);
    token_key(t, r, rl, &key);
    bool okr = preft_strmap_get(&b->vocab, key.data, key.len, &rid);
    size_t skip = (plen && key.len >= plen && !memcmp(key.data, b->cont_prefix, plen)) ? plen : 0;
    preft_buf_append(&merged, key.data + skip, key.len - skip);
    bool okm = preft_strmap_get(&b->vocab, merged.data, merged.len, &mid);
    if (!okl || !okr || !okm) {
      rc = preft_fail(err, "model.merges[%d]: '%.*s %.*s' uses a token that is not in the vocabulary", rank,
                      (int)ll, l, (int)rl, r);
      break;
    }
    preft_u64map_put(&b->merges, (uint64_t)(uint32_t)lid << 32 | (uint32_t)rid,
                     (uint64_t)(uint32_t)rank << 32 | (uint32_t)mid);
    rank++;
  }
  preft_buf_free(&key);
  preft_buf_free(&merged);
  return rc;
}

void preft_bpe_free(preft_bpe *b) {
  if (!b->vocab.slots) return;
  preft_strmap_free(&b->vocab);
  preft_u64map_free(&b->merges);
  preft_strmap_free(&b->cache);
  pthread_mutex_destroy(&b->cache_lock);
  free(b->cache_ids);
  free(b->cache_entries);
  free(b->cont_prefix);
  free(b->eow_suffix);
  memset(b, 0, sizeof *b);
}
