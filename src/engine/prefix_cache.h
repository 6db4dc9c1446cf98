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
 * (installed as the KV cache's evict hook). With a disk tier
 * (prefix_disk.h) an evicted block is first queued for writing to disk,
 * and preft_prefix_map restores a block from disk when memory misses it.
 * Salts are stable across processes (adapter content, not registration
 * order), so the disk tier serves a returning user after a restart too.
 */
#ifndef PREFT_ENGINE_PREFIX_CACHE_H
#define PREFT_ENGINE_PREFIX_CACHE_H

#include <stdint.h>

#include "engine/prefix_disk.h"
#include "model/adapter.h"
#include "model/kv_cache.h"

typedef struct preft_prefix_cache {
  preft_kv_cache *kv;
  uint64_t *block_key; /* [n_blocks] key of each cached block */
  uint64_t *last_use;  /* [n_blocks] */
  uint64_t clock;
  uint64_t *keys; /* open addressing, 0 = empty */
  int *vals;
  size_t cap, count;
  preft_prefix_disk *disk; /* NULL: memory only; owned */
  uint64_t model_id;       /* mixed into disk keys */
} preft_prefix_cache;

void preft_prefix_init(preft_prefix_cache *pc, preft_kv_cache *kv);
void preft_prefix_free(preft_prefix_cache *pc);

/* Key of a block of tokens following the block with key parent (0 for the
 * first block). Never 0. */
uint64_t preft_prefix_key(uint64_t parent, uint64_t salt, const int *tokens, int n);

/* The salt of a request's blocks: NULL adapter (the base model) is 0;
 * otherwise the adapter's identity (its files' checksum and every setting
 * that shapes keys and values, or for an adapter made in memory this
 * process's registration generation), the mode, and, when
 * reft_last_prompt_len >= 0 (ReFT on the last prompt positions), the
 * prompt length. */
uint64_t preft_prefix_salt(const preft_adapter *a, uint64_t generation, int mode, int reft_last_prompt_len);

/* Adds a disk tier (takes ownership; see prefix_disk.h). */
void preft_prefix_attach_disk(preft_prefix_cache *pc, preft_prefix_disk *disk, uint64_t model_id);
/* Maps the block with this key into seq's table as its next block: the
 * cached one, or a new block restored from the disk tier (then cached).
 * Returns 1 (memory hit), 2 (disk hit) or 0 (miss: nothing mapped, though
 * a block may have been reserved for seq). */
int preft_prefix_map(preft_prefix_cache *pc, uint64_t key, int seq);
/* Queues every cached block not on disk yet for writing, and waits for
 * the writes (shutdown). */
void preft_prefix_spill_all(preft_prefix_cache *pc);

/* The cached block with this key, or -1. Marks it recently used. */
int preft_prefix_lookup(preft_prefix_cache *pc, uint64_t key);
/* Remembers that block holds the positions named by key (no-op if the key
 * is already cached). */
void preft_prefix_insert(preft_prefix_cache *pc, uint64_t key, int block);
/* Cached blocks (referenced or not). */
int preft_prefix_count(const preft_prefix_cache *pc);

#endif
