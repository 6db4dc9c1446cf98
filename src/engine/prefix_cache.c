/* prefix_cache.c - block keys, a linear-probing key -> block map, and LRU
 * eviction of unreferenced cached blocks (see prefix_cache.h). */
#include "engine/prefix_cache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

static uint64_t process_nonce;
static void init_nonce(void) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  process_nonce = mix64((uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec) ^ mix64((uint64_t)getpid());
}

static uint64_t adapter_identity(const preft_adapter *a, uint64_t generation) {
  if (!a->checksum) { /* made in memory: only this process can know it */
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, init_nonce);
    return mix64(process_nonce ^ mix64(generation));
  }
  uint64_t h = mix64(a->checksum);
  const int64_t v[] = {a->kind,      a->n_layers,   a->dim,       a->max_rank,
                       a->reft_rank, a->reft_first, a->reft_last, a->reft_shared};
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) h = mix64(h ^ (uint64_t)v[i]);
  for (int l = 0; a->lora && l < a->n_layers; l++)
    for (int m = 0; m < PREFT_N_MODULES; m++) {
      const preft_lora_module *lm = &a->lora[(size_t)l * PREFT_N_MODULES + (size_t)m];
      uint32_t scale;
      memcpy(&scale, &lm->scale, sizeof scale);
      h = mix64(h ^ ((uint64_t)lm->rank << 32 | scale));
      h = mix64(h ^ ((uint64_t)lm->a_dtype << 8 | (uint64_t)lm->b_dtype));
    }
  for (int l = 0; a->reft_layer && l < a->n_layers; l++) h = mix64(h ^ (uint64_t)a->reft_layer[l] << l % 64);
  return h;
}

uint64_t preft_prefix_salt(const preft_adapter *a, uint64_t generation, int mode, int reft_last_prompt_len) {
  if (!a) return 0;
  uint64_t salt = mix64(adapter_identity(a, generation) + (uint64_t)mode + 1);
  if (reft_last_prompt_len >= 0) salt = mix64(salt ^ (uint64_t)reft_last_prompt_len);
  return salt ? salt : 1;
}

static uint64_t disk_key(const preft_prefix_cache *pc, uint64_t key) {
  uint64_t k = mix64(key ^ pc->model_id);
  return k ? k : 1;
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
  if (pc->disk) {
    size_t off = (size_t)best * (size_t)kv->n_layers * (size_t)kv->block_size * (size_t)kv->kv_dim;
    preft_prefix_disk_spill(pc->disk, disk_key(pc, pc->block_key[best]), kv->k + off, kv->v + off, false);
  }
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
  preft_prefix_disk_close(pc->disk);
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

void preft_prefix_attach_disk(preft_prefix_cache *pc, preft_prefix_disk *disk, uint64_t model_id) {
  pc->disk = disk;
  pc->model_id = model_id;
}

int preft_prefix_map(preft_prefix_cache *pc, uint64_t key, int seq) {
  preft_kv_cache *kv = pc->kv;
  int block = preft_prefix_lookup(pc, key);
  if (block >= 0) {
    preft_kv_map_shared(kv, seq, block);
    return 1;
  }
  uint64_t dk = disk_key(pc, key);
  if (!pc->disk || !preft_prefix_disk_has(pc->disk, dk)) return 0;
  int n = kv->n_mapped[seq];
  preft_error err;
  if (preft_kv_reserve(kv, seq, (n + 1) * kv->block_size, &err) != 0) return 0;
  block = preft_kv_block_of(kv, seq, n * kv->block_size);
  size_t off = (size_t)block * (size_t)kv->n_layers * (size_t)kv->block_size * (size_t)kv->kv_dim;
  if (preft_prefix_disk_restore(pc->disk, dk, kv->k + off, kv->v + off) != 0) return 0;
  preft_prefix_insert(pc, key, block);
  return 2;
}

void preft_prefix_spill_all(preft_prefix_cache *pc) {
  if (!pc->disk) return;
  preft_kv_cache *kv = pc->kv;
  for (int b = 0; b < kv->n_blocks; b++) {
    if (!kv->cached[b]) continue;
    size_t off = (size_t)b * (size_t)kv->n_layers * (size_t)kv->block_size * (size_t)kv->kv_dim;
    preft_prefix_disk_spill(pc->disk, disk_key(pc, pc->block_key[b]), kv->k + off, kv->v + off, true);
  }
  preft_prefix_disk_flush(pc->disk);
}
