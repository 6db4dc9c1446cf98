/* strmap.c - open-addressing hash maps (see strmap.h). Linear probing; the
 * hash is a 64-bit multiply-mix over 8-byte words, good enough for token
 * strings and fast for the short keys that dominate. */
#include "text/strmap.h"

#include <string.h>

#include "base/error.h"

uint64_t preft_hash_bytes(const void *p, size_t n) {
  const uint8_t *s = p;
  uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xff51afd7ed558ccdull);
  while (n >= 8) {
    uint64_t w;
    memcpy(&w, s, 8);
    h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
    h ^= h >> 31;
    s += 8;
    n -= 8;
  }
  uint64_t w = 0;
  for (size_t i = 0; i < n; i++) w |= (uint64_t)s[i] << (8 * i);
  h = (h ^ w) * 0x94d049bb133111ebull;
  h ^= h >> 29;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 32;
  return h ? h : 1;
}

static size_t pow2_at_least(size_t n) {
  size_t c = 16;
  while (c < n) c <<= 1;
  return c;
}

void preft_strmap_init(preft_strmap *m, size_t expected) {
  memset(m, 0, sizeof *m);
  m->cap = pow2_at_least(expected * 2 + 1);
  m->slots = preft_xcalloc(m->cap, sizeof *m->slots);
  m->arena_cap = 64 + expected * 8;
  m->arena = preft_xmalloc(m->arena_cap);
}

void preft_strmap_free(preft_strmap *m) {
  free(m->slots);
  free(m->arena);
  memset(m, 0, sizeof *m);
}

void preft_strmap_clear(preft_strmap *m) {
  memset(m->slots, 0, m->cap * sizeof *m->slots);
  m->count = 0;
  m->arena_len = 0;
}

static void strmap_grow(preft_strmap *m) {
  size_t ncap = m->cap * 2;
  preft_strmap_slot *ns = preft_xcalloc(ncap, sizeof *ns);
  for (size_t i = 0; i < m->cap; i++) {
    if (!m->slots[i].hash) continue;
    size_t j = m->slots[i].hash & (ncap - 1);
    while (ns[j].hash) j = (j + 1) & (ncap - 1);
    ns[j] = m->slots[i];
  }
  free(m->slots);
  m->slots = ns;
  m->cap = ncap;
}

bool preft_strmap_put(preft_strmap *m, const void *key, size_t len, int32_t value) {
  PREFT_ASSERT(len < UINT32_MAX);
  if ((m->count + 1) * 2 > m->cap) strmap_grow(m);
  uint64_t h = preft_hash_bytes(key, len);
  size_t j = h & (m->cap - 1);
  while (m->slots[j].hash) {
    preft_strmap_slot *s = &m->slots[j];
    if (s->hash == h && s->len == len && !memcmp(m->arena + s->off, key, len)) {
      s->value = value;
      return false;
    }
    j = (j + 1) & (m->cap - 1);
  }
  if (m->arena_len + len + 1 > m->arena_cap) {
    while (m->arena_len + len + 1 > m->arena_cap) m->arena_cap *= 2;
    m->arena = preft_xrealloc(m->arena, m->arena_cap);
  }
  PREFT_ASSERT(m->arena_len + len < UINT32_MAX);
  memcpy(m->arena + m->arena_len, key, len);
  m->arena[m->arena_len + len] = 0;
  m->slots[j] =
      (preft_strmap_slot){.hash = h, .off = (uint32_t)m->arena_len, .len = (uint32_t)len, .value = value};
  m->arena_len += len + 1;
  m->count++;
  return true;
}

bool preft_strmap_get(const preft_strmap *m, const void *key, size_t len, int32_t *value) {
  uint64_t h = preft_hash_bytes(key, len);
  size_t j = h & (m->cap - 1);
  while (m->slots[j].hash) {
    const preft_strmap_slot *s = &m->slots[j];
    if (s->hash == h && s->len == len && !memcmp(m->arena + s->off, key, len)) {
      *value = s->value;
      return true;
    }
    j = (j + 1) & (m->cap - 1);
  }
  return false;
}

static inline uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return x;
}

void preft_u64map_init(preft_u64map *m, size_t expected) {
  m->cap = pow2_at_least(expected * 2 + 1);
  m->count = 0;
  m->slots = preft_xmalloc(m->cap * sizeof *m->slots);
  memset(m->slots, 0xff, m->cap * sizeof *m->slots);
}

void preft_u64map_free(preft_u64map *m) {
  free(m->slots);
  memset(m, 0, sizeof *m);
}

static void u64map_insert(preft_u64slot *slots, size_t cap, uint64_t key, uint64_t value, size_t *count) {
  size_t j = mix64(key) & (cap - 1);
  while (slots[j].key != UINT64_MAX) {
    if (slots[j].key == key) {
      slots[j].val = value;
      return;
    }
    j = (j + 1) & (cap - 1);
  }
  slots[j].key = key;
  slots[j].val = value;
  (*count)++;
}

void preft_u64map_put(preft_u64map *m, uint64_t key, uint64_t value) {
  PREFT_ASSERT(key != UINT64_MAX);
  if ((m->count + 1) * 2 > m->cap) {
    size_t ncap = m->cap * 2, n = 0;
    preft_u64slot *ns = preft_xmalloc(ncap * sizeof *ns);
    memset(ns, 0xff, ncap * sizeof *ns);
    for (size_t i = 0; i < m->cap; i++)
      if (m->slots[i].key != UINT64_MAX) u64map_insert(ns, ncap, m->slots[i].key, m->slots[i].val, &n);
    free(m->slots);
    m->slots = ns;
    m->cap = ncap;
  }
  u64map_insert(m->slots, m->cap, key, value, &m->count);
}

bool preft_u64map_get(const preft_u64map *m, uint64_t key, uint64_t *value) {
  size_t j = mix64(key) & (m->cap - 1);
  while (m->slots[j].key != UINT64_MAX) {
    if (m->slots[j].key == key) {
      *value = m->slots[j].val;
      return true;
    }
    j = (j + 1) & (m->cap - 1);
  }
  return false;
}
