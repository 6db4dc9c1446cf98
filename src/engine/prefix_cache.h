/* prefix_cache.h - reuse of full KV blocks across requests with the same
 * prefix.
 *
 * A block is identified by a chained key: hash(parent block's key, salt,
 * the block's tokens), where salt names what else shaped its keys and
 * values: the adapter registration, the mode, and (for ReFT adapters with
 * last-position interventions) the prompt length. Two requests share a block
 * only if every token before it and in it, and the salt, are equal. Keys are
 * 64-bit hashes (collisions are astronomically unlikely, not impossible).
 *
 * Cached blocks stay in the KV pool after their sequences end; when the
 * pool runs dry the least recently used unreferenced one is evicted
 * (installed as the KV cache's evict hook).
 */
#ifndef PREFT_ENGINE_PREFIX_CACHE_H
#define PREFT_ENGINE_PREFIX_CACHE_H

#include <stdint.h>

#include "model/kv_cache.h"

typedef struct preft_prefix_cache {
  preft_kv_cache *kv;
  uint64_t *block_key; /* [n_blocks] key of each cached block */
  uint64_t *last_use;  /* [n_blocks] */
  uint64_t clock;
  uint64_t *keys; /* open addressing, 0 = empty */
  int *vals;
  size_t cap, count;
} preft_prefix_cache;

void preft_prefix_init(preft_prefix_cache *pc, preft_kv_cache *kv);
void preft_prefix_free(preft_prefix_cache *pc);

/* Key of a block of tokens following the block with key parent (0 for the
 * first block). Never 0. */
uint64_t preft_prefix_key(uint64_t parent, uint64_t salt, const int *tokens, int n);

/* The cached block with this key, or -1. Marks it recently used. */
int preft_prefix_lookup(preft_prefix_cache *pc, uint64_t key);
/* Remembers that block holds the positions named by key (no-op if the key
 * is already cached). */
void preft_prefix_insert(preft_prefix_cache *pc, uint64_t key, int block);
/* Cached blocks (referenced or not). */
int preft_prefix_count(const preft_prefix_cache *pc);

#endif
