/* strmap.h - small open-addressing hash maps used by the tokenizer.
 *
 * preft_strmap maps byte strings (not NUL-terminated, may contain any byte)
 * to int32 values. Keys are copied into an internal arena, so callers may
 * free their buffers after an insert. preft_u64map maps 64-bit keys to 64-bit
 * values (used for BPE merge pairs). Both grow by doubling at 50% load;
 * lookups are a hash, one probe sequence and a memcmp.
 *
 * Neither map is thread-safe for writers; concurrent readers are fine.
 */
#ifndef PREFT_TEXT_STRMAP_H
#define PREFT_TEXT_STRMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct preft_strmap_slot {
  uint64_t hash; /* 0 = empty */
  uint32_t off;  /* key offset in the arena */
  uint32_t len;
  int32_t value;
} preft_strmap_slot;

typedef struct preft_strmap {
  preft_strmap_slot *slots;
  size_t cap; /* power of two */
  size_t count;
  char *arena;
  size_t arena_len, arena_cap;
} preft_strmap;

void preft_strmap_init(preft_strmap *m, size_t expected);
void preft_strmap_free(preft_strmap *m);
void preft_strmap_clear(preft_strmap *m);
/* Inserts or overwrites. Returns true when the key was new. */
bool preft_strmap_put(preft_strmap *m, const void *key, size_t len, int32_t value);
/* Returns true and sets *value when found. */
bool preft_strmap_get(const preft_strmap *m, const void *key, size_t len, int32_t *value);
/* The stored copy of the key of slot i (for iteration: slots with hash != 0). */
static inline const char *preft_strmap_key(const preft_strmap *m, size_t i) {
  return m->arena + m->slots[i].off;
}

uint64_t preft_hash_bytes(const void *p, size_t n);

typedef struct preft_u64slot {
  uint64_t key; /* UINT64_MAX = empty */
  uint64_t val;
} preft_u64slot;

typedef struct preft_u64map {
  preft_u64slot *slots; /* key and value side by side: one cache miss per probe */
  size_t cap, count;
} preft_u64map;

void preft_u64map_init(preft_u64map *m, size_t expected);
void preft_u64map_free(preft_u64map *m);
void preft_u64map_put(preft_u64map *m, uint64_t key, uint64_t value); /* key != UINT64_MAX */
bool preft_u64map_get(const preft_u64map *m, uint64_t key, uint64_t *value);

#endif
