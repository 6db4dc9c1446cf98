/* prefix_cache.c - block keys, a linear-probing key -> block map, and LRU
 * eviction of unreferenced cached blocks (see prefix_cache.h). */
#include "engine/prefix_cache.h"

#include <stdlib.h>
#include <string.h>

#include "base/error.h"

static uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 33)) * 0xff51afd7ed558ccdull;
  z = (z ^ (z >> 33)) * 0xc4ceb9fe1a85ec53ull;
  return z ^ (z >> 33);
}

uint64_t preft_prefix_key(uint64_t parent, uint64_t salt, const int *tokens, int n) {
  uint64_t h = mix64(parent ^ 0x9e3779b97f4a7c15ull) ^ mix64(salt + 0x632be59bd9b4e019ull);
  for (int i = 0; i < n; i++)
    h = mix64(h ^ ((uint64_t)(uint32_t)tokens[i] + 0x85ebca77c2b2ae63ull * (uint64_t)(i + 1)));
  return h ? h : 1;
}

static size_t slot_of(const preft_prefix_cache *pc, uint64_t key) { return (size_t)(key & (pc->cap - 1)); }

static void map_remove(preft_prefix_cache *pc, uint64_t key) {
  size_t i = slot_of(pc, key);
  while (pc->keys[i] && pc->keys[i] != key) i = (i + 1) & (pc->cap - 1);
  if (!pc->keys[i]) return;
  pc->keys[i] = 0;
  pc->count--;
  /* backward-shift the entries after the hole that probed past it */
  for (size_t j = (i + 1) & (pc->cap - 1); pc->keys[j]; j = (j + 1) & (pc->cap - 1)) {
    size_t home = slot_of(pc, pc->keys[j]);
    if ((j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j))) {
      pc->keys[i] = pc->keys[j];
      pc->vals[i] = pc->vals[j];
      pc->keys[j] = 0;
      i = j;
    }
  }
}

/* Evict hook: forgets the least recently used unreferenced cached block. */
static int evict_lru(void *ctx) {
  preft_prefix_cache *pc = ctx;
  preft_kv_cache *kv = pc->kv;
  int best = -1;
  for (int b = 0; b < kv->n_blocks; b++)
    if (kv->cached[b] && kv->refs[b] == 0 && (best < 0 || pc->last_use[b] < pc->last_use[best])) best = b;
  if (best < 0) return -1;
  map_remove(pc, pc->block_key[best]);
  kv->cached[best] = 0;
  return best;
}

void preft_prefix_init(preft_prefix_cache *pc, preft_kv_cache *kv) {
  memset(pc, 0, sizeof *pc);
  pc->kv = kv;
  pc->block_key = preft_xcalloc((size_t)kv->n_blocks, sizeof(uint64_t));
  pc->last_use = preft_xcalloc((size_t)kv->n_blocks, sizeof(uint64_t));
  pc->cap = 16;
  while (pc->cap < (size_t)kv->n_blocks * 2) pc->cap *= 2;
  pc->keys = preft_xcalloc(pc->cap, sizeof(uint64_t));
  pc->vals = preft_xcalloc(pc->cap, sizeof(int));
  kv->evict = evict_lru;
  kv->evict_ctx = pc;
}

void preft_prefix_free(preft_prefix_cache *pc) {
  if (pc->kv) {
    pc->kv->evict = NULL;
    pc->kv->evict_ctx = NULL;
  }
  free(pc->block_key);
  free(pc->last_use);
  free(pc->keys);
  free(pc->vals);
  memset(pc, 0, sizeof *pc);
}

int preft_prefix_lookup(preft_prefix_cache *pc, uint64_t key) {
  size_t i = slot_of(pc, key);
  while (pc->keys[i]) {
    if (pc->keys[i] == key) {
      int b = pc->vals[i];
      pc->last_use[b] = ++pc->clock;
      return b;
    }
    i = (i + 1) & (pc->cap - 1);
  }
  return -1;
}

void preft_prefix_insert(preft_prefix_cache *pc, uint64_t key, int block) {
  if (pc->kv->cached[block] || preft_prefix_lookup(pc, key) >= 0) return;
  /* at most n_blocks entries (one per cached block) in a table of >= 2x */
  size_t i = slot_of(pc, key);
  while (pc->keys[i]) i = (i + 1) & (pc->cap - 1);
  pc->keys[i] = key;
  pc->vals[i] = block;
  pc->count++;
  pc->kv->cached[block] = 1;
  pc->block_key[block] = key;
  pc->last_use[block] = ++pc->clock;
}

int preft_prefix_count(const preft_prefix_cache *pc) { return (int)pc->count; }
