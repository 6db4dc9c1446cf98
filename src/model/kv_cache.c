/* kv_cache.c - block allocation for the paged KV cache (see kv_cache.h). */
#include "model/kv_cache.h"

#include <stdlib.h>
#include <string.h>

size_t preft_kv_block_bytes(int n_layers, int kv_dim, int block_size) {
  return 2 * sizeof(float) * (size_t)n_layers * (size_t)block_size * (size_t)kv_dim;
}

int preft_kv_init(preft_kv_cache *kv, int n_layers, int kv_dim, int block_size, int n_blocks, int max_seqs,
                  int max_ctx, preft_error *err) {
  memset(kv, 0, sizeof *kv);
  if (n_layers <= 0 || kv_dim <= 0 || block_size <= 0 || n_blocks <= 0 || max_seqs <= 0 || max_ctx <= 0)
    return preft_fail(err, "kv cache: every size must be positive");
  size_t elems = (size_t)n_blocks * (size_t)n_layers * (size_t)block_size * (size_t)kv_dim;
  kv->k = malloc(elems * sizeof(float));
  kv->v = malloc(elems * sizeof(float));
  if (!kv->k || !kv->v) {
    free(kv->k);
    free(kv->v);
    memset(kv, 0, sizeof *kv);
    return preft_fail(err, "kv cache: cannot allocate %zu MiB for %d blocks",
                      (2 * elems * sizeof(float)) >> 20, n_blocks);
  }
  kv->n_layers = n_layers;
  kv->kv_dim = kv_dim;
  kv->block_size = block_size;
  kv->n_blocks = n_blocks;
  kv->max_seqs = max_seqs;
  kv->max_ctx = max_ctx;
  kv->max_blocks_per_seq = (max_ctx + block_size - 1) / block_size;
  kv->free_blocks = preft_xmalloc(sizeof(int) * (size_t)n_blocks);
  for (int i = 0; i < n_blocks; i++) kv->free_blocks[i] = n_blocks - 1 - i;
  kv->n_free = n_blocks;
  size_t tsize = (size_t)max_seqs * (size_t)kv->max_blocks_per_seq;
  kv->tables = preft_xmalloc(sizeof(int) * tsize);
  for (size_t i = 0; i < tsize; i++) kv->tables[i] = -1;
  kv->n_mapped = preft_xcalloc((size_t)max_seqs, sizeof(int));
  kv->refs = preft_xcalloc((size_t)n_blocks, sizeof(int));
  kv->cached = preft_xcalloc((size_t)n_blocks, 1);
  return 0;
}

void preft_kv_free(preft_kv_cache *kv) {
  free(kv->k);
  free(kv->v);
  free(kv->free_blocks);
  free(kv->tables);
  free(kv->n_mapped);
  free(kv->refs);
  free(kv->cached);
  memset(kv, 0, sizeof *kv);
}

int preft_kv_reserve(preft_kv_cache *kv, int seq, int n_pos, preft_error *err) {
  PREFT_ASSERT(seq >= 0 && seq < kv->max_seqs);
  if (n_pos > kv->max_ctx)
    return preft_fail(err, "sequence needs %d positions but the context holds at most %d", n_pos,
                      kv->max_ctx);
  int need = (n_pos + kv->block_size - 1) / kv->block_size - kv->n_mapped[seq];
  if (need <= 0) return 0;
  while (kv->n_free < need && kv->evict) {
    int b = kv->evict(kv->evict_ctx);
    if (b < 0) break;
    PREFT_ASSERT(kv->refs[b] == 0 && !kv->cached[b]);
    kv->free_blocks[kv->n_free++] = b;
  }
  if (need > kv->n_free)
    return preft_fail(err, "kv cache full: sequence needs %d more blocks, %d free", need, kv->n_free);
  int *table = kv->tables + (size_t)seq * (size_t)kv->max_blocks_per_seq;
  for (int i = 0; i < need; i++) {
    int b = kv->free_blocks[--kv->n_free];
    kv->refs[b] = 1;
    table[kv->n_mapped[seq]++] = b;
  }
  return 0;
}

void preft_kv_map_shared(preft_kv_cache *kv, int seq, int block) {
  PREFT_ASSERT(seq >= 0 && seq < kv->max_seqs && block >= 0 && block < kv->n_blocks);
  PREFT_ASSERT(kv->n_mapped[seq] < kv->max_blocks_per_seq);
  kv->refs[block]++;
  kv->tables[(size_t)seq * (size_t)kv->max_blocks_per_seq + (size_t)kv->n_mapped[seq]++] = block;
}

void preft_kv_release(preft_kv_cache *kv, int seq) {
  PREFT_ASSERT(seq >= 0 && seq < kv->max_seqs);
  int *table = kv->tables + (size_t)seq * (size_t)kv->max_blocks_per_seq;
  for (int i = 0; i < kv->n_mapped[seq]; i++) {
    int b = table[i];
    PREFT_ASSERT(kv->refs[b] > 0);
    if (--kv->refs[b] == 0 && !kv->cached[b]) kv->free_blocks[kv->n_free++] = b;
    table[i] = -1;
  }
  kv->n_mapped[seq] = 0;
}

int preft_kv_capacity(const preft_kv_cache *kv, int seq) { return kv->n_mapped[seq] * kv->block_size; }
